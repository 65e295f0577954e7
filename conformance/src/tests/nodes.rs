//! Nodes: upstream's test/e2e/architecture/conformance.go and
//! test/e2e/node/node_lifecycle.go (the NoExecuteTaintManager ones come later).

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::test;
use crate::{Ctx, Test};

const AREA: &str = "Nodes";

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Conformance tests minimum number of nodes.",
            "[sig-architecture] Conformance Tests should have at least two untainted nodes [Conformance]",
            two_untainted_nodes
        ),
        test!(
            AREA,
            "Node, resource lifecycle",
            "[sig-node] Node Lifecycle should run through the lifecycle of a node [Conformance]",
            lifecycle
        ),
    ]
}

fn condition(node: &Node, type_: &str) -> Option<String> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.clone())
}

/// upstream's `IsNodeSchedulable`: not cordoned, Ready, network available.
fn schedulable(node: &Node) -> bool {
    let cordoned = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    !cordoned
        && condition(node, "Ready").as_deref() == Some("True")
        && condition(node, "NetworkUnavailable").as_deref() != Some("True")
}

/// upstream's `isNodeUntainted`: a pod without tolerations tolerates its NoSchedule and
/// NoExecute taints, i.e. there are none.
fn untainted(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .all(|t| t.effect != "NoSchedule" && t.effect != "NoExecute")
}

fn describe(nodes: &[&Node]) -> Vec<String> {
    nodes
        .iter()
        .map(|n| n.metadata.name.clone().unwrap_or_default())
        .collect()
}

/// Every node becomes schedulable and untainted (within 10 minutes), and at least two are.
async fn two_untainted_nodes(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(ctx.client.clone());
    // framework.WaitForAllNodesSchedulable: every 30 s, for 10 minutes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    let nodes = loop {
        let list = api
            .list(&ListParams::default())
            .await
            .context("listing nodes")?;
        let not_ready: Vec<&Node> = list
            .items
            .iter()
            .filter(|n| !(schedulable(n) && untainted(n)))
            .collect();
        if not_ready.is_empty() {
            break list.items;
        }
        if tokio::time::Instant::now() + Duration::from_secs(30) > deadline {
            bail!(
                "timed out waiting for all nodes to be schedulable: not yet {:?}",
                describe(&not_ready)
            );
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
    };
    let ready: Vec<&Node> = nodes
        .iter()
        .filter(|n| schedulable(n) && untainted(n))
        .collect();
    ensure!(
        ready.len() >= 2,
        "Conformance requires at least two nodes: ready and schedulable are {:?}",
        describe(&ready)
    );
    Ok(())
}

/// A fake (unschedulable) Node is created, read, patched, found by label, updated and
/// deleted.
async fn lifecycle(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(ctx.client.clone());
    let name = format!("e2e-fake-node-{}", crate::random_lowercase(5));
    let fake: Node = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"unschedulable": true},
        "status": {"phase": "Running", "conditions": [
            {"status": "True", "message": "Set from e2e test", "reason": "E2E", "type": "Ready"}]},
    }))?;
    let created = api
        .create(&PostParams::default(), &fake)
        .await
        .with_context(|| format!("failed to create node {name:?}"))?;
    let result = async {
        ensure!(
            created.metadata.name.as_deref() == Some(name.as_str()),
            "Checking that the node has been created: got {:?}",
            created.metadata.name
        );
        let got = api
            .get(&name)
            .await
            .with_context(|| format!("Failed to retrieve Node {name:?}"))?;
        ensure!(
            got.metadata.name.as_deref() == Some(name.as_str()),
            "Checking that the retrieved name has been found: got {:?}",
            got.metadata.name
        );

        let label = |n: &Node| {
            n.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(&name))
                .cloned()
        };
        let patched = api
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Strategic(json!({"metadata": {"labels": {&name: "patched"}}})),
            )
            .await
            .with_context(|| format!("Failed to patch {name:?}"))?;
        ensure!(
            label(&patched).as_deref() == Some("patched"),
            "Checking that patched label has been applied: {:?}",
            patched.metadata.labels
        );
        let selector = format!("{name}=patched");
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .context("failed to list nodes")?;
        ensure!(
            list.items.len() == 1,
            "confirm that the patched node has been found: {selector} lists {} nodes",
            list.items.len()
        );

        // retry.RetryOnConflict(retry.DefaultRetry, ...): the node controllers write it too.
        let mut updated = None;
        for _ in 0..5 {
            let mut cur = api
                .get(&name)
                .await
                .with_context(|| format!("Unable to get {name:?}"))?;
            cur.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(name.clone(), "updated".into());
            match api.replace(&name, &PostParams::default(), &cur).await {
                Ok(n) => {
                    updated = Some(n);
                    break;
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(e) => return Err(e).with_context(|| format!("failed to update {name:?}")),
            }
        }
        let updated = updated.with_context(|| format!("failed to update {name:?}: conflicts"))?;
        ensure!(
            label(&updated).as_deref() == Some("updated"),
            "Checking that updated label has been applied: {:?}",
            updated.metadata.labels
        );
        Ok(())
    }
    .await;
    let deleted = api.delete(&name, &DeleteParams::default()).await;
    result?;
    deleted.context("failed to delete node")?;

    // gomega.Eventually(3 minutes, every 5 s)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        match api.get_opt(&name).await {
            Ok(None) => return Ok(()),
            Ok(Some(_)) if tokio::time::Instant::now() >= deadline => {
                bail!("Timeout while waiting to confirm Node deletion: node still exists: {name}")
            }
            Ok(Some(_)) => tokio::time::sleep(Duration::from_secs(5)).await,
            Err(e) => return Err(e).context("nodeClient.Get returned an unexpected error"),
        }
    }
}
