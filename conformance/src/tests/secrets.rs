//! Secrets: upstream's test/e2e/common/node/secrets.go and
//! test/e2e/common/storage/secrets_volume.go (the API-only ones so far).

use anyhow::{ensure, Context};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{busybox_image, e2epod, expect_invalid, test, uuid};
use crate::{Ctx, Test};

const AREA: &str = "Secrets";

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Secrets, pod environment from source",
            "[sig-node] Secrets should be consumable via the environment [NodeConformance] [Conformance]",
            env_from
        ),
        test!(
            AREA,
            "Secrets, pod environment field",
            "[sig-node] Secrets should be consumable from pods in env vars [NodeConformance] [Conformance]",
            env_field
        ),
        test!(
            AREA,
            "Secrets, with empty-key",
            "[sig-node] Secrets should fail to create secret due to empty secret key [Conformance]",
            empty_key
        ),
        test!(
            AREA,
            "Secret patching",
            "[sig-node] Secrets should patch a secret [Conformance]",
            patch
        ),
        test!(
            AREA,
            "Secrets Volume, immutability",
            "[sig-storage] Secrets should be immutable if `immutable` field is set [Conformance]",
            immutable
        ),
    ]
}

fn secret(v: serde_json::Value) -> anyhow::Result<Secret> {
    Ok(serde_json::from_value(v)?)
}

/// Upstream's `secretForTest`: data-1..3 = "value-1\n".."value-3\n".
async fn create_test_secret(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    // base64 of "value-1\n", "value-2\n", "value-3\n"
    Api::<Secret>::namespaced(ctx.client.clone(), &ctx.ns)
        .create(
            &PostParams::default(),
            &secret(json!({"metadata": {"name": name},
                           "data": {"data-1": "dmFsdWUtMQo=", "data-2": "dmFsdWUtMgo=", "data-3": "dmFsdWUtMwo="}}))?,
        )
        .await
        .with_context(|| format!("unable to create test secret {name}"))?;
    Ok(())
}

/// Every key of a Secret is an environment variable (envFrom secretRef), also with a prefix.
async fn env_from(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("secret-test-{}", uuid());
    create_test_secret(&ctx, &name).await?;
    let pod = e2epod::pod(json!({
        "metadata": {"name": format!("pod-configmaps-{}", uuid())},
        "spec": {
            "containers": [{
                "name": "env-test", "image": busybox_image(), "command": ["sh", "-c", "env"],
                "envFrom": [
                    {"secretRef": {"name": name}},
                    {"prefix": "p-", "secretRef": {"name": name}},
                ],
            }],
            "restartPolicy": "Never",
        },
    }))?;
    e2epod::test_container_output(
        &ctx,
        "consume secrets",
        pod,
        0,
        &[
            "data-1=value-1",
            "data-2=value-2",
            "data-3=value-3",
            "p-data-1=value-1",
            "p-data-2=value-2",
            "p-data-3=value-3",
        ],
    )
    .await
}

/// A Secret value is an environment variable (secretKeyRef).
async fn env_field(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("secret-test-{}", uuid());
    create_test_secret(&ctx, &name).await?;
    let pod = e2epod::pod(json!({
        "metadata": {"name": format!("pod-secrets-{}", uuid())},
        "spec": {
            "containers": [{
                "name": "secret-env-test", "image": busybox_image(), "command": ["sh", "-c", "env"],
                "env": [{"name": "SECRET_DATA", "valueFrom": {"secretKeyRef": {"name": name, "key": "data-1"}}}],
            }],
            "restartPolicy": "Never",
        },
    }))?;
    e2epod::test_container_output(&ctx, "consume secrets", pod, 0, &["SECRET_DATA=value-1"]).await
}

/// Creating a Secret with an empty key MUST fail.
async fn empty_key(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<Secret> = Api::namespaced(ctx.client, &ctx.ns);
    let name = format!("secret-emptykey-test-{}", uuid());
    // base64("value-1\n")
    let r = api
        .create(
            &PostParams::default(),
            &secret(json!({"metadata": {"name": name}, "data": {"": "dmFsdWUtMQo="}}))?,
        )
        .await;
    ensure!(
        r.is_err(),
        "created secret {name:?} with empty key in namespace {:?}",
        ctx.ns
    );
    Ok(())
}

/// Create, find across namespaces, patch (data and a label), delete by collection.
async fn patch(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let all: Api<Secret> = Api::all(ctx.client.clone());
    let name = format!("test-secret-{}", uuid());
    let created = api
        .create(
            &PostParams::default(),
            &secret(
                json!({"metadata": {"name": name, "labels": {"testsecret-constant": "true"}},
                           "data": {"key": "dmFsdWU="}, "type": "Opaque"}),
            )?,
        )
        .await
        .context("failed to create secret")?;
    super::valid_resource_version(created.metadata.resource_version.as_deref())?;
    let list = all
        .list(&ListParams::default().labels("testsecret-constant=true"))
        .await
        .context("failed to list secrets")?;
    ensure!(!list.items.is_empty(), "no secrets found");
    let mine = |s: &Secret| {
        s.metadata.name.as_deref() == Some(name.as_str())
            && s.metadata.namespace.as_deref() == Some(ctx.ns.as_str())
    };
    ensure!(
        list.items.iter().any(mine),
        "unable to find secret {}/{name} by name",
        ctx.ns
    );

    // Go marshals the []byte of base64("value1") as base64 again.
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Strategic(json!({"data": {"key": "ZG1Gc2RXVXg="}, "metadata": {"labels": {"testsecret": "true"}}})),
    )
    .await
    .context("failed to patch secret")?;
    let got = api.get(&name).await.context("failed to get secret")?;
    super::newer_resource_version(
        created.metadata.resource_version.as_deref(),
        got.metadata.resource_version.as_deref(),
    )?;
    let stored = got
        .data
        .as_ref()
        .and_then(|d| d.get("key"))
        .map(|ByteString(b)| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    ensure!(
        stored == "dmFsdWUx",
        "found secret, but the data wasn't updated from the patch: {stored:?}"
    );

    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("testsecret=true"),
    )
    .await
    .context("failed to delete patched secret")?;
    let list = all
        .list(&ListParams::default().labels("testsecret-constant=true"))
        .await
        .context("failed to list secrets")?;
    ensure!(
        !list.items.iter().any(mine),
        "secret {}/{name} was not deleted successfully",
        ctx.ns
    );
    Ok(())
}

/// As the ConfigMap one: immutable Secrets refuse data changes and going back.
async fn immutable(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<Secret> = Api::namespaced(ctx.client, &ctx.ns);
    let pp = PostParams::default();
    let b = |s: &str| ByteString(s.as_bytes().to_vec());
    let mut cur = api
        .create(
            &pp,
            &Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some("immutable".into()),
                    ..Default::default()
                },
                data: Some(
                    [
                        ("data-1", "value-1\n"),
                        ("data-2", "value-2\n"),
                        ("data-3", "value-3\n"),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), b(v)))
                    .collect(),
                ),
                ..Default::default()
            },
        )
        .await
        .context("Failed to create secret \"immutable\"")?;
    cur.data
        .get_or_insert_with(Default::default)
        .insert("data-4".into(), b("value-4\n"));
    cur = api
        .replace("immutable", &pp, &cur)
        .await
        .context("Failed to update secret \"immutable\"")?;
    cur.immutable = Some(true);
    cur = api
        .replace("immutable", &pp, &cur)
        .await
        .context("Failed to mark secret \"immutable\" as immutable")?;
    let mut changed = cur.clone();
    changed
        .data
        .get_or_insert_with(Default::default)
        .insert("data-5".into(), b("value-5\n"));
    expect_invalid(
        api.replace("immutable", &pp, &changed).await,
        "updating the data of an immutable Secret",
    )?;
    let mut cur = api
        .get("immutable")
        .await
        .context("Failed to get secret \"immutable\"")?;
    ensure!(
        cur.immutable == Some(true),
        "currentSecret {:?} can be switched from immutable to mutable",
        cur.metadata.name
    );
    cur.immutable = Some(false);
    expect_invalid(
        api.replace("immutable", &pp, &cur).await,
        "making an immutable Secret mutable",
    )?;
    let mut cur = api
        .get("immutable")
        .await
        .context("Failed to get secret \"immutable\"")?;
    cur.metadata.labels = Some([("label1".to_string(), "value1".to_string())].into());
    api.replace("immutable", &pp, &cur)
        .await
        .context("Failed to update secret \"immutable\"")?;
    api.delete("immutable", &DeleteParams::default())
        .await
        .context("Failed to delete secret \"immutable\"")?;
    Ok(())
}
