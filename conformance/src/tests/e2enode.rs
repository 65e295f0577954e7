//! What upstream's tests take from `test/e2e/framework/node` (and the framework's
//! `CheckTestingNSDeletedExcept`, which the [Serial] tests' `BeforeEach` calls beside it):
//! which nodes are ready and schedulable, waiting for all of them to be Ready, and waiting
//! for the other test namespaces to go.

use std::time::Duration;

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Api, ListParams};

use super::e2epod::eventually;
use crate::Ctx;

/// The node's Ready condition is True.
pub fn ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// What `GetReadySchedulableNodes` keeps: Ready, not unschedulable, and without a
/// NoSchedule or NoExecute taint (which a pod without tolerations would not tolerate).
pub fn ready_schedulable(n: &Node) -> bool {
    let spec = n.spec.as_ref();
    let tainted = spec
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .any(|t| t.effect == "NoSchedule" || t.effect == "NoExecute");
    ready(n) && !spec.and_then(|s| s.unschedulable).unwrap_or(false) && !tainted
}

/// `e2enode.GetReadySchedulableNodes`.
pub async fn ready_schedulable_nodes(ctx: &Ctx) -> anyhow::Result<Vec<Node>> {
    bounded_ready_schedulable_nodes(ctx, usize::MAX).await
}

/// `e2enode.GetBoundedReadySchedulableNodes`: at most `max` of them, at least one.
pub async fn bounded_ready_schedulable_nodes(ctx: &Ctx, max: usize) -> anyhow::Result<Vec<Node>> {
    let nodes = Api::<Node>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await
        .context("listing nodes")?;
    let ok: Vec<Node> = nodes
        .items
        .into_iter()
        .filter(ready_schedulable)
        .take(max)
        .collect();
    if ok.is_empty() {
        bail!("there are currently no ready, schedulable nodes in the cluster");
    }
    Ok(ok)
}

/// `e2enode.GetRandomReadySchedulableNode` (the first one: which one does not matter to
/// the tests that call it).
pub async fn random_ready_schedulable_node(ctx: &Ctx) -> anyhow::Result<String> {
    let nodes = bounded_ready_schedulable_nodes(ctx, 1).await?;
    Ok(nodes[0].metadata.name.clone().unwrap_or_default())
}

/// `e2enode.WaitForTotalHealthy` for a minute: every node Ready; the error names those
/// that are not.
pub async fn wait_for_total_healthy(ctx: &Ctx) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    eventually(
        Duration::from_secs(60),
        Duration::from_secs(2),
        "all nodes Ready",
        || async {
            match nodes.list(&ListParams::default()).await {
                Ok(l) if l.items.iter().all(ready) => Ok(()),
                Ok(l) => Err(format!(
                    "not ready: {:?}",
                    l.items
                        .iter()
                        .filter(|n| !ready(n))
                        .map(|n| n.metadata.name.clone().unwrap_or_default())
                        .collect::<Vec<_>>()
                )),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
}

/// The framework's `CheckTestingNSDeletedExcept`: waits (15 minutes at most) until no
/// test namespace but this test's own is left, so a [Serial] test sees no other test's
/// pods.
pub async fn check_testing_ns_deleted_except(ctx: &Ctx) -> anyhow::Result<()> {
    let nss: Api<Namespace> = Api::all(ctx.client.clone());
    eventually(
        Duration::from_secs(15 * 60),
        Duration::from_secs(2),
        "the other test namespaces to be deleted",
        || async {
            match nss.list(&ListParams::default().labels("e2e-run")).await {
                Ok(l) => {
                    let others: Vec<String> = l
                        .items
                        .iter()
                        .filter_map(|n| n.metadata.name.clone())
                        .filter(|n| *n != ctx.ns)
                        .collect();
                    if others.is_empty() {
                        Ok(())
                    } else {
                        Err(format!("namespaces left: {others:?}"))
                    }
                }
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
}
