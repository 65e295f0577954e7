//! ConfigMaps: upstream's test/e2e/common/node/configmap.go and
//! test/e2e/common/storage/configmap_volume.go (its API-only ones so far).

use anyhow::{ensure, Context};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{busybox_image, e2epod, expect_invalid, test, uuid};
use crate::{Ctx, Test};

const AREA: &str = "ConfigMaps";

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "ConfigMap, from environment variables",
            "[sig-node] ConfigMap should be consumable via the environment [NodeConformance] [Conformance]",
            env_from
        ),
        test!(
            AREA,
            "ConfigMap, from environment field",
            "[sig-node] ConfigMap should be consumable via environment variable [NodeConformance] [Conformance]",
            env_field
        ),
        test!(
            AREA,
            "ConfigMap, with empty-key",
            "[sig-node] ConfigMap should fail to create ConfigMap with empty key [Conformance]",
            empty_key
        ),
        test!(
            AREA,
            "ConfigMap lifecycle",
            "[sig-node] ConfigMap should run through a ConfigMap lifecycle [Conformance]",
            lifecycle
        ),
        test!(
            AREA,
            "ConfigMap Volume, immutability",
            "[sig-storage] ConfigMap should be immutable if `immutable` field is set [Conformance]",
            immutable
        ),
    ]
}

fn cm(v: serde_json::Value) -> anyhow::Result<ConfigMap> {
    Ok(serde_json::from_value(v)?)
}

/// Upstream's `newConfigMap`: data-1..3 = value-1..3.
async fn create_test_config_map(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    Api::<ConfigMap>::namespaced(ctx.client.clone(), &ctx.ns)
        .create(
            &PostParams::default(),
            &cm(json!({"metadata": {"name": name},
                       "data": {"data-1": "value-1", "data-2": "value-2", "data-3": "value-3"}}))?,
        )
        .await
        .with_context(|| format!("unable to create test configMap {name}"))?;
    Ok(())
}

/// Every key of a ConfigMap is an environment variable (envFrom configMapRef), also with a prefix.
async fn env_from(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("configmap-test-{}", uuid());
    create_test_config_map(&ctx, &name).await?;
    let pod = e2epod::pod(json!({
        "metadata": {"name": format!("pod-configmaps-{}", uuid())},
        "spec": {
            "containers": [{
                "name": "env-test", "image": busybox_image(), "command": ["sh", "-c", "env"],
                "envFrom": [
                    {"configMapRef": {"name": name}},
                    {"prefix": "p-", "configMapRef": {"name": name}},
                ],
            }],
            "restartPolicy": "Never",
        },
    }))?;
    e2epod::test_container_output(
        &ctx,
        "consume configMaps",
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

/// A ConfigMap value is an environment variable (configMapKeyRef).
async fn env_field(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("configmap-test-{}", uuid());
    create_test_config_map(&ctx, &name).await?;
    let pod = e2epod::pod(json!({
        "metadata": {"name": format!("pod-configmaps-{}", uuid())},
        "spec": {
            "containers": [{
                "name": "env-test", "image": busybox_image(), "command": ["sh", "-c", "env"],
                "env": [{"name": "CONFIG_DATA_1", "valueFrom": {"configMapKeyRef": {"name": name, "key": "data-1"}}}],
            }],
            "restartPolicy": "Never",
        },
    }))?;
    e2epod::test_container_output(
        &ctx,
        "consume configMaps",
        pod,
        0,
        &["CONFIG_DATA_1=value-1"],
    )
    .await
}

/// Creating a ConfigMap with an empty key MUST fail.
async fn empty_key(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client, &ctx.ns);
    let name = format!("configmap-test-emptyKey-{}", uuid());
    let r = api
        .create(
            &PostParams::default(),
            &cm(json!({"metadata": {"name": name}, "data": {"": "value-1"}}))?,
        )
        .await;
    ensure!(
        r.is_err(),
        "created configMap {name:?} with empty key in namespace {:?}",
        ctx.ns
    );
    Ok(())
}

/// Create, patch, find by label across namespaces, delete by collection.
async fn lifecycle(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let name = format!("test-configmap{}", uuid());
    let created = api
        .create(
            &PostParams::default(),
            &cm(
                json!({"metadata": {"name": name, "labels": {"test-configmap-static": "true"}},
                       "data": {"valueName": "value"}}),
            )?,
        )
        .await
        .context("failed to create ConfigMap")?;
    super::valid_resource_version(created.metadata.resource_version.as_deref())?;
    let got = api.get(&name).await.context("failed to get ConfigMap")?;
    let data = |c: &ConfigMap, k: &str| c.data.as_ref().and_then(|d| d.get(k)).cloned();
    let label = |c: &ConfigMap, k: &str| c.metadata.labels.as_ref().and_then(|l| l.get(k)).cloned();
    ensure!(
        data(&got, "valueName").as_deref() == Some("value"),
        "unexpected data: {:?}",
        got.data
    );
    ensure!(
        label(&got, "test-configmap-static").as_deref() == Some("true"),
        "unexpected labels: {:?}",
        got.metadata.labels
    );

    // The body Go's json.Marshal of a v1.ConfigMap makes (creationTimestamp null).
    let patched = api
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"creationTimestamp": null, "labels": {"test-configmap": "patched"}},
                                     "data": {"valueName": "value1"}})),
        )
        .await
        .context("failed to patch ConfigMap")?;
    super::newer_resource_version(
        created.metadata.resource_version.as_deref(),
        patched.metadata.resource_version.as_deref(),
    )?;

    let all: Api<ConfigMap> = Api::all(ctx.client.clone());
    let list = all
        .list(&ListParams::default().labels("test-configmap=patched"))
        .await
        .context("failed to list ConfigMaps with LabelSelector")?;
    let found = list.items.iter().any(|c| {
        c.metadata.name.as_deref() == Some(name.as_str())
            && c.metadata.namespace.as_deref() == Some(ctx.ns.as_str())
            && label(c, "test-configmap-static").as_deref() == Some("true")
            && label(c, "test-configmap").as_deref() == Some("patched")
            && data(c, "valueName").as_deref() == Some("value1")
    });
    ensure!(
        found,
        "failed to find ConfigMap {}/{name} by label selector",
        ctx.ns
    );

    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("test-configmap-static=true"),
    )
    .await
    .context("failed to delete ConfigMap collection with LabelSelector")?;
    let left = api
        .list(&ListParams::default().labels("test-configmap-static=true"))
        .await
        .context("failed to list ConfigMap by LabelSelector")?;
    ensure!(
        left.items.is_empty(),
        "ConfigMap is still present after being deleted by collection"
    );
    Ok(())
}

/// Updates succeed until `immutable` is set; then data changes and unsetting it are
/// Invalid, metadata changes and deletion still succeed.
async fn immutable(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client, &ctx.ns);
    let pp = PostParams::default();
    let mut cur = api
        .create(
            &pp,
            &cm(json!({"metadata": {"name": "immutable"},
                       "data": {"data-1": "value-1", "data-2": "value-2", "data-3": "value-3"}}))?,
        )
        .await
        .context("Failed to create config map \"immutable\"")?;
    let set = |c: &mut ConfigMap, k: &str, v: &str| {
        c.data
            .get_or_insert_with(Default::default)
            .insert(k.into(), v.into());
    };
    set(&mut cur, "data-4", "value-4");
    cur = api
        .replace("immutable", &pp, &cur)
        .await
        .context("Failed to update config map \"immutable\"")?;
    cur.immutable = Some(true);
    cur = api
        .replace("immutable", &pp, &cur)
        .await
        .context("Failed to mark config map \"immutable\" as immutable")?;
    let mut changed = cur.clone();
    set(&mut changed, "data-5", "value-5");
    expect_invalid(
        api.replace("immutable", &pp, &changed).await,
        "updating the data of an immutable ConfigMap",
    )?;
    let mut cur = api
        .get("immutable")
        .await
        .context("Failed to get config map \"immutable\"")?;
    ensure!(
        cur.immutable == Some(true),
        "currentConfigMap {:?} can be switched from immutable to mutable",
        cur.metadata.name
    );
    cur.immutable = Some(false);
    expect_invalid(
        api.replace("immutable", &pp, &cur).await,
        "making an immutable ConfigMap mutable",
    )?;
    let mut cur = api
        .get("immutable")
        .await
        .context("Failed to get config map \"immutable\"")?;
    cur.metadata.labels = Some([("label1".to_string(), "value1".to_string())].into());
    api.replace("immutable", &pp, &cur)
        .await
        .context("Failed to update config map \"immutable\"")?;
    api.delete("immutable", &DeleteParams::default())
        .await
        .context("Failed to delete config map \"immutable\"")?;
    Ok(())
}
