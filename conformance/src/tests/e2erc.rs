//! Upstream's `test/utils` `RCConfig`/`RunRC` and `e2erc.DeleteRCAndWaitForGC`: an RC
//! whose pods are all running and ready before the test goes on, and its removal with
//! its pods.

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{json, Value};

use super::e2epod::{describe, eventually, is_ready, phase};
use crate::Ctx;

/// How long `run` waits for the pods (upstream's `RCConfig.Timeout` default).
const TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// testutils' `PodRunningReady`: the pod runs and is Ready.
pub fn running_and_ready(p: &Pod) -> bool {
    phase(p) == "Running" && is_ready(p)
}

/// Creates the RC `name` (selector `name: <name>`) with `replicas` pods of `container`
/// (its name set to `name`, and, as `RCConfig`'s template, a first port 80 before the
/// container's own ports), labelled `name: <name>` plus `labels`, and waits until all of
/// them run and are ready; returns them.
pub async fn run(
    ctx: &Ctx,
    name: &str,
    replicas: i32,
    labels: &Value,
    container: Value,
) -> anyhow::Result<Vec<Pod>> {
    let mut all = json!({"name": name});
    if let Some(extra) = labels.as_object() {
        for (k, v) in extra {
            all[k] = v.clone();
        }
    }
    let mut container = container;
    container["name"] = json!(name);
    let mut ports = vec![json!({"containerPort": 80})];
    ports.extend(container["ports"].as_array().cloned().unwrap_or_default());
    container["ports"] = json!(ports);
    let rc: ReplicationController = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": all},
        "spec": {
            "replicas": replicas,
            "selector": {"name": name},
            "template": {
                "metadata": {"labels": all},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 30},
            },
        },
    }))?;
    Api::<ReplicationController>::namespaced(ctx.client.clone(), &ctx.ns)
        .create(&PostParams::default(), &rc)
        .await
        .with_context(|| format!("creating replication controller {name:?}"))?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let lp = ListParams::default().labels(&format!("name={name}"));
    eventually(
        TIMEOUT,
        Duration::from_secs(1),
        &format!("{replicas} running and ready pods of {name}"),
        || async {
            let list = pods.list(&lp).await.map_err(|e| e.to_string())?.items;
            let live: Vec<Pod> = list
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            if live.len() == replicas as usize && live.iter().all(running_and_ready) {
                Ok(live)
            } else {
                Err(live.iter().map(describe).collect::<Vec<_>>().join("; "))
            }
        },
    )
    .await
}

/// Deletes the RC `name` and waits until its pods are gone.
pub async fn delete_and_wait_for_gc(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let rcs: Api<ReplicationController> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    rcs.delete(name, &DeleteParams::background())
        .await
        .with_context(|| format!("deleting replication controller {name:?}"))?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let lp = ListParams::default().labels(&format!("name={name}"));
    eventually(
        Duration::from_secs(10 * 60),
        Duration::from_secs(1),
        &format!("the pods of {name} to be gone"),
        || async {
            let n = pods.list(&lp).await.map_err(|e| e.to_string())?.items.len();
            if n == 0 {
                Ok(())
            } else {
                Err(format!("{n} pods remain"))
            }
        },
    )
    .await
}
