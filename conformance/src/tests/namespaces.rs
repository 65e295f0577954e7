//! Namespaces: upstream's test/e2e/apimachinery/namespace.go (the [Serial] API ones so
//! far).

use anyhow::{ensure, Context};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{test, uuid};
use crate::{Ctx, Test};

const AREA: &str = "Namespaces";

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Namespace patching",
            "[sig-api-machinery] Namespaces [Serial] should patch a Namespace [Conformance]",
            patch
        ),
        test!(
            AREA,
            "Namespace, apply update to a namespace",
            "[sig-api-machinery] Namespaces [Serial] should apply an update to a Namespace [Conformance]",
            update
        ),
    ]
}

/// A new namespace, patched with a label: it MUST then have it.
async fn patch(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let suffix: u32 = rand::random::<u32>() % 10_000;
    let name = format!("nspatchtest-{}-{suffix}", uuid());
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"e2e-run": "rkube-conformance"}}
    }))?;
    let created = api
        .create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("failed creating Namespace {name}"))?;
    let result = async {
        super::valid_resource_version(created.metadata.resource_version.as_deref())?;
        let patched = api
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Strategic(json!({"metadata": {"labels": {"testLabel": "testValue"}}})),
            )
            .await
            .with_context(|| format!("failed to patch Namespace {name:?}"))?;
        super::newer_resource_version(
            created.metadata.resource_version.as_deref(),
            patched.metadata.resource_version.as_deref(),
        )?;
        let got = api
            .get(&name)
            .await
            .with_context(|| format!("failed to get Namespace {name:?}"))?;
        let label = got
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("testLabel"));
        ensure!(
            label.map(String::as_str) == Some("testValue"),
            "namespace not patched: {:?}",
            got.metadata.labels
        );
        Ok(())
    }
    .await;
    let _ = api.delete(&name, &DeleteParams::default()).await;
    result
}

/// The test's own namespace gets a label by a read-modify-write PUT (retried on 409).
async fn update(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let ns = ctx.ns.clone();
    let mut last = None;
    // retry.DefaultRetry: 5 steps, 10 ms apart, on conflicts only.
    for _ in 0..5 {
        let mut cur = api
            .get(&ns)
            .await
            .with_context(|| format!("Unable to get Namespace {ns:?}"))?;
        cur.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(ns.clone(), "updated".into());
        match api.replace(&ns, &PostParams::default(), &cur).await {
            Ok(updated) => {
                last = Some(Ok(updated));
                break;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                last = Some(Err(kube::Error::Api(s)));
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(e) => {
                last = Some(Err(e));
                break;
            }
        }
    }
    let updated = last
        .context("no attempt made")?
        .with_context(|| format!("failed to update Namespace: {ns:?}"))?;
    let label = updated.metadata.labels.as_ref().and_then(|l| l.get(&ns));
    ensure!(
        label.map(String::as_str) == Some("updated"),
        "Failed to update namespace {ns:?}. Current Labels: {:?}",
        updated.metadata.labels
    );
    Ok(())
}
