//! PodTemplates: upstream's test/e2e/common/node/podtemplates.go.

use std::time::Duration;

use anyhow::{ensure, Context};
use k8s_openapi::api::core::v1::PodTemplate;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{agnhost_image, e2epod, test, uuid};
use crate::{random_lowercase, Ctx, Test};

const AREA: &str = "PodTemplates";

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "PodTemplate lifecycle",
            "[sig-node] PodTemplates should run the lifecycle of PodTemplates [Conformance]",
            lifecycle
        ),
        test!(
            AREA,
            "PodTemplate, delete a collection",
            "[sig-node] PodTemplates should delete a collection of pod templates [Conformance]",
            delete_collection
        ),
        test!(
            AREA,
            "PodTemplate, replace",
            "[sig-node] PodTemplates should replace a pod template [Conformance]",
            replace
        ),
    ]
}

fn template(v: serde_json::Value) -> anyhow::Result<PodTemplate> {
    Ok(serde_json::from_value(v)?)
}

async fn lifecycle(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<PodTemplate> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let all: Api<PodTemplate> = Api::all(ctx.client.clone());
    let name = format!("nginx-pod-template-{}", uuid());
    // In all namespaces, as upstream (to hit that endpoint).
    let static_sel = ListParams::default().labels("podtemplate-static=true");
    let list = all
        .list(&static_sel)
        .await
        .context("failed to list all PodTemplates")?;
    ensure!(list.items.is_empty(), "unable to find templates");

    api.create(
        &PostParams::default(),
        &template(json!({
            "metadata": {"name": name, "labels": {"podtemplate-static": "true"}},
            "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}},
        }))?,
    )
    .await
    .context("failed to create PodTemplate")?;
    let read = api
        .get(&name)
        .await
        .context("failed to get created PodTemplate")?;
    ensure!(read.metadata.name.as_deref() == Some(name.as_str()));

    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Strategic(json!({"metadata": {"labels": {"podtemplate": "patched"}}})),
    )
    .await
    .context("failed to patch PodTemplate")?;
    let read = api.get(&name).await.context("failed to get PodTemplate")?;
    let label = read
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("podtemplate"))
        .map(String::as_str);
    ensure!(
        label == Some("patched"),
        "failed to patch template, new label not found: {:?}",
        read.metadata.labels
    );

    api.delete(&name, &DeleteParams::default())
        .await
        .context("failed to delete PodTemplate")?;
    let list = all
        .list(&static_sel)
        .await
        .context("failed to list PodTemplate")?;
    ensure!(
        list.items.is_empty(),
        "PodTemplate list returned items, failed to delete PodTemplate"
    );
    Ok(())
}

async fn delete_collection(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<PodTemplate> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let names = [
        "test-podtemplate-1",
        "test-podtemplate-2",
        "test-podtemplate-3",
    ];
    for n in names {
        api.create(
            &PostParams::default(),
            &template(json!({
                "metadata": {"name": n, "labels": {"podtemplate-set": "true"}},
                "template": {"spec": {"containers": [{"name": "token-test", "image": agnhost_image()}]}},
            }))?,
        )
        .await
        .context("failed to create pod template")?;
    }
    let sel = ListParams::default().labels("podtemplate-set=true");
    let list = api
        .list(&sel)
        .await
        .context("failed to get a list of pod templates")?;
    ensure!(
        list.items.len() == names.len(),
        "looking for expected number of pod templates: got {}",
        list.items.len()
    );
    api.delete_collection(&DeleteParams::default(), &sel)
        .await
        .context("failed to delete all pod templates")?;
    e2epod::eventually(
        Duration::from_secs(60),
        Duration::from_secs(1),
        "the pod templates to be gone",
        || {
            let (api, sel) = (api.clone(), sel.clone());
            async move {
                match api.list(&sel).await {
                    Ok(l) if l.items.is_empty() => Ok(()),
                    Ok(l) => Err(format!("{} pod templates left", l.items.len())),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
    )
    .await
    .context("failed to count required pod templates")
}

async fn replace(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<PodTemplate> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let name = format!("podtemplate-{}", random_lowercase(5));
    api.create(
        &PostParams::default(),
        &template(json!({
            "metadata": {"name": name},
            "template": {"spec": {"containers": [{"name": "e2e-test", "image": agnhost_image()}]}},
        }))?,
    )
    .await
    .context("failed to create pod template")?;
    let mut tries = 0;
    let updated = loop {
        let mut pt = api
            .get(&name)
            .await
            .with_context(|| format!("Unable to get pod template {name}"))?;
        pt.metadata.annotations = Some([("updated".to_string(), "true".to_string())].into());
        match api.replace(&name, &PostParams::default(), &pt).await {
            Err(kube::Error::Api(s)) if s.code == 409 && tries < 5 => tries += 1,
            r => break r?,
        }
    };
    let got = updated
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("updated"))
        .map(String::as_str);
    ensure!(
        got == Some("true"),
        "updated object should have the applied annotation: {:?}",
        updated.metadata.annotations
    );
    Ok(())
}
