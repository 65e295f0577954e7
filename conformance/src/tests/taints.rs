//! NoExecuteTaintManager [Serial]: upstream's test/e2e/node/taints.go (its conformance
//! tests). They taint a node the test pods run on with a NoExecute taint; the taint is
//! removed afterwards whatever happens (also when the test is cut short: [`TaintGuard`]).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::mpsc;

use super::{e2enode, e2epod, pause_image, test};
use crate::{Ctx, Test};

const AREA: &str = "Nodes";

const KUBELET_POD_DELETION_DELAY_SECONDS: u64 = 60;
const ADDITIONAL_WAIT_PER_DELETE_SECONDS: u64 = 5;
/// Upstream's `RunPodAndGetNodeName(..., 2*time.Minute)`.
const RUN_POD_TIMEOUT: Duration = Duration::from_secs(2 * 60);

const TAINT_KEY: &str = "kubernetes.io/e2e-evict-taint-key";
const TAINT_VALUE: &str = "evictTaintVal";

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Taint, Pod Eviction on taint removal",
            "[sig-node] NoExecuteTaintManager Single Pod [Serial] removing taint cancels eviction [Disruptive] [Conformance]",
            removing_taint_cancels_eviction,
            timeout = Duration::from_secs(8 * 60)
        ),
        test!(
            AREA,
            "Pod Eviction, Toleration limits",
            "[sig-node] NoExecuteTaintManager Multiple Pods [Serial] evicts pods with minTolerationSeconds [Disruptive] [Conformance]",
            evicts_pods_with_min_toleration_seconds,
            timeout = Duration::from_secs(10 * 60)
        ),
    ]
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Upstream's `getTestTaint`.
fn test_taint() -> Taint {
    Taint {
        key: TAINT_KEY.into(),
        value: Some(TAINT_VALUE.into()),
        effect: "NoExecute".into(),
        time_added: Some(Time(k8s_openapi::jiff::Timestamp::now())),
    }
}

/// Upstream's `createPodForTaintsTest`: a pause pod labelled `group=<label>`, with the
/// test taint's toleration (forever when `toleration_seconds` <= 0) if `has_toleration`.
fn pod_for_taints_test(
    has_toleration: bool,
    toleration_seconds: i64,
    name: &str,
    label: &str,
    ns: &str,
) -> anyhow::Result<Pod> {
    let mut p = json!({
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"group": label},
            "deletionGracePeriodSeconds": 1,
        },
        "spec": {"containers": [{"name": "pause", "image": pause_image()}]},
    });
    if has_toleration {
        let mut t = json!({"key": TAINT_KEY, "value": TAINT_VALUE, "effect": "NoExecute"});
        if toleration_seconds > 0 {
            t["tolerationSeconds"] = json!(toleration_seconds);
        }
        p["spec"]["tolerations"] = json!([t]);
    }
    e2epod::pod(p)
}

/// Upstream's `createTestController`: an informer on the namespace's pods labelled
/// `group=<label>` that sends the name of every pod it sees deleted (a pod missing from
/// a relist counts too, as the informer's `DeletedFinalStateUnknown`). Stops when dropped.
struct DeletionObserver {
    rx: mpsc::UnboundedReceiver<String>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DeletionObserver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn observe_deletions(ctx: &Ctx, label: &str) -> DeletionObserver {
    let (tx, rx) = mpsc::unbounded_channel();
    let api = e2epod::api(ctx);
    let cfg = watcher::Config::default().labels(&format!("group={label}"));
    let task = tokio::spawn(async move {
        let mut known: BTreeSet<String> = BTreeSet::new();
        let mut relisted: BTreeSet<String> = BTreeSet::new();
        let mut events = watcher(api, cfg).boxed();
        while let Some(ev) = events.next().await {
            let Ok(ev) = ev else {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            };
            match ev {
                watcher::Event::Apply(p) => {
                    known.insert(p.metadata.name.unwrap_or_default());
                }
                watcher::Event::Delete(p) => {
                    let name = p.metadata.name.unwrap_or_default();
                    known.remove(&name);
                    let _ = tx.send(name);
                }
                watcher::Event::Init => relisted.clear(),
                watcher::Event::InitApply(p) => {
                    relisted.insert(p.metadata.name.unwrap_or_default());
                }
                watcher::Event::InitDone => {
                    for name in known.difference(&relisted) {
                        let _ = tx.send(name.clone());
                    }
                    known = std::mem::take(&mut relisted);
                }
            }
        }
    });
    DeletionObserver { rx, task }
}

/// Upstream's BeforeEach: `WaitForTotalHealthy` for a minute (its error not checked, as
/// upstream), and `CheckTestingNSDeletedExcept`: the other test namespaces gone.
async fn before_each(ctx: &Ctx) -> anyhow::Result<()> {
    if let Err(e) = e2enode::wait_for_total_healthy(ctx).await {
        eprintln!("WaitForTotalHealthy: {e}");
    }
    e2enode::check_testing_ns_deleted_except(ctx).await
}

/// Upstream's `testutils.RunPodAndGetNodeName`: creates the pod, waits until it runs, and
/// gives its node.
async fn run_pod_and_get_node_name(ctx: &Ctx, pod: &Pod) -> anyhow::Result<String> {
    let api = e2epod::api(ctx);
    let name = pod.metadata.name.clone().unwrap_or_default();
    api.create(&PostParams::default(), pod)
        .await
        .with_context(|| format!("creating pod {name}"))?;
    let p = e2epod::wait_for_running(&api, &name, RUN_POD_TIMEOUT).await?;
    p.spec
        .and_then(|s| s.node_name)
        .with_context(|| format!("pod {name} has no node"))
}

/// Upstream's `Taint.MatchTaint`: same key and effect.
fn match_taint(a: &Taint, b: &Taint) -> bool {
    a.key == b.key && a.effect == b.effect
}

fn node_taints(n: &Node) -> Vec<Taint> {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
}

/// Sets the node's taints to what `change` makes of them, as upstream's
/// `PatchNodeTaints` (a patch of `spec.taints` carrying the resourceVersion it read);
/// again on a conflict.
async fn patch_node_taints(
    ctx: &Ctx,
    node: &str,
    change: impl Fn(Vec<Taint>) -> Option<Vec<Taint>>,
) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    for attempt in 0.. {
        let n = nodes.get(node).await?;
        let Some(taints) = change(node_taints(&n)) else {
            return Ok(());
        };
        let patch = json!({
            "metadata": {"resourceVersion": n.metadata.resource_version},
            "spec": {"taints": taints},
        });
        match nodes
            .patch(node, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < 5 => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("patching the taints of node {node}")),
        }
    }
    unreachable!()
}

/// Upstream's `e2enode.AddOrUpdateTaintOnNode` and `ExpectNodeHasTaint`.
async fn add_taint(ctx: &Ctx, node: &str, taint: &Taint) -> anyhow::Result<()> {
    patch_node_taints(ctx, node, |mut ts| {
        match ts.iter_mut().find(|t| match_taint(t, taint)) {
            Some(t) if t == taint => return None,
            Some(t) => *t = taint.clone(),
            None => ts.push(taint.clone()),
        }
        Some(ts)
    })
    .await?;
    let n = Api::<Node>::all(ctx.client.clone()).get(node).await?;
    ensure!(
        node_taints(&n).iter().any(|t| match_taint(t, taint)),
        "Failed to find taint {}={}:{} on node {node}",
        taint.key,
        taint.value.as_deref().unwrap_or_default(),
        taint.effect
    );
    Ok(())
}

/// Upstream's `e2enode.RemoveTaintOffNode`: the taint goes, and is verified gone.
async fn remove_taint(client: &kube::Client, node: &str, taint: &Taint) -> anyhow::Result<()> {
    let ctx = Ctx {
        client: client.clone(),
        ns: String::new(),
        kubeconfig: None,
    };
    patch_node_taints(&ctx, node, |ts| {
        if !ts.iter().any(|t| match_taint(t, taint)) {
            return None;
        }
        Some(ts.into_iter().filter(|t| !match_taint(t, taint)).collect())
    })
    .await?;
    let n = Api::<Node>::all(client.clone()).get(node).await?;
    ensure!(
        !node_taints(&n).iter().any(|t| match_taint(t, taint)),
        "Failed removing taint {} of the node {node}",
        taint.key
    );
    Ok(())
}

/// The `defer RemoveTaintOffNode`: [`TaintGuard::remove`] at the end; if the test is
/// dropped before (its time limit), the removal is started from `Drop`.
struct TaintGuard {
    client: kube::Client,
    node: String,
    taint: Taint,
    armed: bool,
}

impl TaintGuard {
    fn new(ctx: &Ctx, node: &str, taint: &Taint) -> TaintGuard {
        TaintGuard {
            client: ctx.client.clone(),
            node: node.to_string(),
            taint: taint.clone(),
            armed: true,
        }
    }

    /// Removes the taint now (once).
    async fn remove(&mut self) -> anyhow::Result<()> {
        if !self.armed {
            return Ok(());
        }
        let r = remove_taint(&self.client, &self.node, &self.taint).await;
        if r.is_ok() {
            self.armed = false;
        }
        r
    }
}

impl Drop for TaintGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (client, node, taint) = (self.client.clone(), self.node.clone(), self.taint.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                for _ in 0..10 {
                    match remove_taint(&client, &node, &taint).await {
                        Ok(()) => return,
                        Err(e) => eprintln!("removing the test taint off node {node}: {e:#}"),
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
    }
}

/// Waits up to `after` for a deletion: Some(name) if one was seen.
async fn deletion_within(obs: &mut DeletionObserver, after: Duration) -> Option<String> {
    tokio::time::timeout(after, obs.rx.recv())
        .await
        .ok()
        .flatten()
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// A pod tolerates the taint for 10 s; its node gets the NoExecute taint, which is removed
/// right away; the pod is not evicted during the next 75 s (past its toleration time).
async fn removing_taint_cancels_eviction(ctx: Ctx) -> anyhow::Result<()> {
    before_each(&ctx).await?;
    let pod_name = "taint-eviction-4";
    let pod = pod_for_taints_test(
        true,
        (2 * ADDITIONAL_WAIT_PER_DELETE_SECONDS) as i64,
        pod_name,
        pod_name,
        &ctx.ns,
    )?;
    let mut observed = observe_deletions(&ctx, pod_name);

    // 1. Run a pod with short toleration
    let node = run_pod_and_get_node_name(&ctx, &pod).await?;
    eprintln!("Pod is running on {node}. Tainting Node");

    // 2. Taint the node running this pod with a no-execute taint
    let taint = test_taint();
    let mut guard = TaintGuard::new(&ctx, &node, &taint);
    add_taint(&ctx, &node, &taint).await?;

    let r = async {
        // 3. Wait some time. Upstream's timer is `time.NewTimer(additionalWaitPerDeleteSeconds)`:
        //    5 (nanoseconds), kept as it is.
        if let Some(name) = deletion_within(
            &mut observed,
            Duration::from_nanos(ADDITIONAL_WAIT_PER_DELETE_SECONDS),
        )
        .await
        {
            bail!("Pod was evicted despite toleration ({name:?})");
        }
        eprintln!("Pod wasn't evicted. Proceeding");

        // 4. Remove the taint
        eprintln!("Removing taint from Node");
        guard.remove().await?;

        // 5. See if Pod won't be evicted.
        let wait = Duration::from_secs(
            KUBELET_POD_DELETION_DELAY_SECONDS + 3 * ADDITIONAL_WAIT_PER_DELETE_SECONDS,
        );
        if let Some(name) = deletion_within(&mut observed, wait).await {
            bail!("Pod was evicted despite toleration ({name:?})");
        }
        eprintln!("Pod wasn't evicted. Test successful");
        anyhow::Ok(())
    }
    .await;
    let cleanup = guard.remove().await;
    r.and(cleanup)
}

/// Two pods on one node tolerate the taint for 5 s and 25 s; the node gets the NoExecute
/// taint; both pods are evicted within 110 s.
async fn evicts_pods_with_min_toleration_seconds(ctx: Ctx) -> anyhow::Result<()> {
    before_each(&ctx).await?;
    let pod_group = "taint-eviction-b";
    let mut observed = observe_deletions(&ctx, pod_group);

    // 1. Run two pods both with toleration; one with tolerationSeconds=5, the other with 25
    let pod1 = pod_for_taints_test(
        true,
        ADDITIONAL_WAIT_PER_DELETE_SECONDS as i64,
        &format!("{pod_group}1"),
        pod_group,
        &ctx.ns,
    )?;
    let mut pod2 = pod_for_taints_test(
        true,
        (5 * ADDITIONAL_WAIT_PER_DELETE_SECONDS) as i64,
        &format!("{pod_group}2"),
        pod_group,
        &ctx.ns,
    )?;

    let node_name = run_pod_and_get_node_name(&ctx, &pod1).await?;
    let node = Api::<Node>::all(ctx.client.clone()).get(&node_name).await?;
    let Some(host) = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("kubernetes.io/hostname"))
        .cloned()
    else {
        bail!("error getting kubernetes.io/hostname label on node {node_name}");
    };
    eprintln!("Pod1 is running on {node_name}. Tainting Node");
    // ensure pod2 lands on the same node as pod1
    pod2.spec
        .as_mut()
        .context("pod2 has no spec")?
        .node_selector = Some([("kubernetes.io/hostname".to_string(), host)].into());
    run_pod_and_get_node_name(&ctx, &pod2).await?;
    // Wait for pods to be running state before eviction happens
    let api = e2epod::api(&ctx);
    for p in [&pod1, &pod2] {
        let name = p.metadata.name.clone().unwrap_or_default();
        e2epod::wait_for_running(&api, &name, e2epod::POD_START_TIMEOUT).await?;
    }
    eprintln!("Pod2 is running on {node_name}. Tainting Node");

    // 2. Taint the nodes running those pods with a no-execute taint
    let taint = test_taint();
    let mut guard = TaintGuard::new(&ctx, &node_name, &taint);
    add_taint(&ctx, &node_name, &taint).await?;

    let r = async {
        // 3. Wait to see if both pods get evicted in between [5, 25] seconds
        let deadline = tokio::time::Instant::now()
            + Duration::from_secs(
                KUBELET_POD_DELETION_DELAY_SECONDS + 10 * ADDITIONAL_WAIT_PER_DELETE_SECONDS,
            );
        let mut evicted = 0;
        while evicted != 2 {
            match tokio::time::timeout_at(deadline, observed.rx.recv()).await {
                Ok(Some(name)) => {
                    eprintln!("Noticed Pod {name:?} gets evicted.");
                    evicted += 1;
                }
                Ok(None) => bail!("the pod informer stopped"),
                Err(_) => bail!(
                    "Failed to evict all Pods. {} pod(s) is not evicted.",
                    2 - evicted
                ),
            }
        }
        anyhow::Ok(())
    }
    .await;
    let cleanup = guard.remove().await;
    r.and(cleanup)
}
