//! Node lifecycle, node IPAM and pod GC (upstream's nodelifecycle, nodeipam and podgc
//! controllers, and the NoExecute taint manager):
//! - a node whose Lease stops renewing for the grace period turns Ready=Unknown and gets
//!   the `node.kubernetes.io/unreachable` NoSchedule and NoExecute taints; they go when it
//!   reports Ready again;
//! - the NoExecute taint manager (upstream's tainteviction controller): a pod on a node
//!   with NoExecute taints it does not all tolerate is evicted at once; one that tolerates
//!   them all is evicted after the least `tolerationSeconds` of the tolerations used (counted
//!   from when the eviction was scheduled), never when none of them has a limit; a scheduled
//!   eviction is cancelled when the taints go, the tolerations change to forever, or the pod
//!   goes. An eviction sets the pod's `DisruptionTarget` condition, then deletes it, with
//!   upstream's `TaintManagerEviction` events;
//! - each node gets a /24 of the cluster CIDR as its podCIDR;
//! - pods bound to nodes that no longer exist are force-deleted.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::events::Recorder;

pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Settings of the node controllers.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// How long a node may go without renewing its lease (`--node-monitor-grace-period`).
    pub grace_period: Duration,
    /// The pod network, cut into a /24 per node.
    pub cluster_cidr: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            grace_period: Duration::from_secs(40),
            cluster_cidr: "10.42.0.0/16".into(),
        }
    }
}

pub async fn run(client: Client, cfg: NodeConfig, pods: Store<Pod>) -> anyhow::Result<()> {
    let (nodes, _n) = crate::cache(Api::<Node>::all(client.clone()));
    let (leases, _l) = crate::cache(Api::<Lease>::namespaced(client.clone(), "kube-node-lease"));
    nodes.wait_until_ready().await?;
    leases.wait_until_ready().await?;
    pods.wait_until_ready().await?;
    let started = Instant::now();
    // (lease renew time as seen, when we first saw it) per node.
    let mut seen: HashMap<String, (String, Instant)> = HashMap::new();
    let mut evictions = TaintEviction::default();
    let recorder = Recorder::new(client.clone(), TAINT_EVICTION_CONTROLLER);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        if let Err(e) = pass(&client, &cfg, &nodes, &leases, &pods, &mut seen, started).await {
            tracing::warn!(error = %e, "node controllers will retry");
        }
        taint_eviction_pass(&client, &recorder, &nodes, &pods, &mut evictions).await;
    }
}

async fn pass(
    client: &Client,
    cfg: &NodeConfig,
    nodes: &Store<Node>,
    leases: &Store<Lease>,
    pods: &Store<Pod>,
    seen: &mut HashMap<String, (String, Instant)>,
    started: Instant,
) -> Result<(), kube::Error> {
    let nodes_api: Api<Node> = Api::all(client.clone());
    let all_nodes = nodes.state();
    let names: BTreeSet<String> = all_nodes.iter().map(|n| n.name_any()).collect();
    seen.retain(|n, _| names.contains(n));
    // Node IPAM.
    let used: BTreeSet<String> = all_nodes
        .iter()
        .filter_map(|n| n.spec.as_ref().and_then(|s| s.pod_cidr.clone()))
        .collect();
    let mut used = used;
    for n in &all_nodes {
        if n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some() {
            continue;
        }
        if let Some(cidr) = next_cidr(&cfg.cluster_cidr, &used) {
            used.insert(cidr.clone());
            let patch = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
            ignore_gone(
                nodes_api
                    .patch(
                        &n.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await,
            )?;
        }
    }
    // Heartbeats.
    let all_leases: HashMap<String, Arc<Lease>> = leases
        .state()
        .into_iter()
        .map(|l| (l.name_any(), l))
        .collect();
    for n in &all_nodes {
        let name = n.name_any();
        let renew = all_leases
            .get(&name)
            .and_then(|l| {
                l.spec
                    .as_ref()
                    .and_then(|s| s.renew_time.as_ref())
                    .map(|t| t.0.to_string())
            })
            .unwrap_or_default();
        let entry = seen
            .entry(name.clone())
            .or_insert((renew.clone(), Instant::now()));
        if entry.0 != renew {
            *entry = (renew, Instant::now());
        }
        let silent = entry.1.elapsed().min(started.elapsed());
        let ready = condition(n, "Ready");
        let tainted = taints(n).iter().any(|t| t.key == UNREACHABLE);
        if silent > cfg.grace_period && ready.as_deref() != Some("Unknown") {
            tracing::info!(node = %name, "node stopped renewing its lease: Ready=Unknown, tainted unreachable");
            mark_unknown(client, n).await?;
            mark_pods_not_ready(client, &name, &pods.state()).await?;
        } else if silent <= cfg.grace_period && ready.as_deref() == Some("True") && tainted {
            tracing::info!(node = %name, "node is back: removing the unreachable taints");
            set_taints(
                client,
                n,
                taints(n)
                    .into_iter()
                    .filter(|t| t.key != UNREACHABLE)
                    .collect(),
            )
            .await?;
        }
    }
    // Pod GC (NoExecute eviction is the taint manager's, below).
    let pods_now = pods.state();
    let by_name: HashMap<String, &Arc<Node>> =
        all_nodes.iter().map(|n| (n.name_any(), n)).collect();
    // Nodes missing from the cache, checked once per pass against the API (not per pod).
    let mut gone: HashMap<String, bool> = HashMap::new();
    for p in &pods_now {
        let Some(node_name) = p.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        if by_name.contains_key(node_name.as_str()) {
            continue;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), &p.namespace().unwrap_or_default());
        // The node is gone (and the cache is not just starting): force-delete.
        if started.elapsed() <= Duration::from_secs(5) {
            continue;
        }
        let is_gone = match gone.get(&node_name) {
            Some(g) => *g,
            None => {
                let g = nodes_api.get_opt(&node_name).await?.is_none();
                gone.insert(node_name.clone(), g);
                g
            }
        };
        if is_gone {
            ignore_gone(
                api.delete(
                    &p.name_any(),
                    &DeleteParams {
                        grace_period_seconds: Some(0),
                        ..Default::default()
                    },
                )
                .await
                .map(|_| ()),
            )?;
        }
    }
    Ok(())
}

fn ignore_gone<T>(r: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

fn condition(n: &Node, ty: &str) -> Option<String> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == ty)
        .map(|c| c.status.clone())
}

fn taints(n: &Node) -> Vec<Taint> {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

async fn set_taints(client: &Client, n: &Node, taints: Vec<Taint>) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let patch =
        json!({"metadata": {"resourceVersion": n.resource_version()}, "spec": {"taints": taints}});
    ignore_gone(
        api.patch(
            &n.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await,
    )
}

/// Every condition Unknown (as upstream's "Kubelet stopped posting node status."), and the
/// unreachable taints.
async fn mark_unknown(client: &Client, n: &Node) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let mut conditions: Vec<NodeCondition> = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    for c in conditions.iter_mut() {
        c.status = "Unknown".into();
        c.reason = Some("NodeStatusUnknown".into());
        c.message = Some("Kubelet stopped posting node status.".into());
        c.last_transition_time = Some(now());
    }
    let status = json!({"status": {"conditions": conditions}});
    ignore_gone(
        api.patch_status(
            &n.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(&status),
        )
        .await,
    )?;
    let mut ts: Vec<Taint> = taints(n)
        .into_iter()
        .filter(|t| t.key != UNREACHABLE)
        .collect();
    for effect in ["NoSchedule", "NoExecute"] {
        ts.push(Taint {
            key: UNREACHABLE.into(),
            effect: effect.into(),
            value: None,
            time_added: (effect == "NoExecute").then(now),
        });
    }
    let fresh = api.get(&n.name_any()).await?;
    set_taints(client, &fresh, ts).await
}

/// As upstream's MarkPodsNotReady: the pods of an unreachable node are no longer Ready.
async fn mark_pods_not_ready(
    client: &Client,
    node: &str,
    pods: &[std::sync::Arc<Pod>],
) -> Result<(), kube::Error> {
    for p in pods {
        if p.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node) {
            continue;
        }
        if !crate::pod_ready(p) {
            continue;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), &p.namespace().unwrap_or_default());
        let patch = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": now()}
        ]}});
        ignore_gone(
            api.patch_status(
                &p.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await,
        )?;
    }
    Ok(())
}

/// The component upstream's taint manager records its events as.
const TAINT_EVICTION_CONTROLLER: &str = "taint-eviction-controller";

/// Upstream's `Toleration.ToleratesTaint`.
fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    if t.key
        .as_deref()
        .is_some_and(|k| !k.is_empty() && k != taint.key)
    {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// Upstream's `GetMatchingTolerations`: whether every taint is tolerated, and for each
/// taint the first toleration that tolerates it.
fn matching_tolerations<'a>(
    taints: &[Taint],
    tolerations: &'a [Toleration],
) -> (bool, Vec<&'a Toleration>) {
    let mut used = Vec::new();
    for taint in taints {
        match tolerations.iter().find(|t| tolerates(t, taint)) {
            Some(t) => used.push(t),
            None => return (false, Vec::new()),
        }
    }
    (true, used)
}

/// Upstream's `getMinTolerationTime`: the least `tolerationSeconds` of the tolerations used
/// (zero when one is zero or negative, or when none is used), None for forever (none of
/// them has a limit).
fn min_toleration_time(used: &[&Toleration]) -> Option<Duration> {
    if used.is_empty() {
        return Some(Duration::ZERO);
    }
    let mut min: Option<i64> = None;
    for t in used {
        if let Some(secs) = t.toleration_seconds {
            if secs <= 0 {
                return Some(Duration::ZERO);
            }
            min = Some(min.map_or(secs, |m| m.min(secs)));
        }
    }
    min.map(|s| Duration::from_secs(s as u64))
}

/// A pod's entry in the taint manager's queue (upstream's `TimedWorkerQueue`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    /// An eviction scheduled at `created` to happen at `fire_at`.
    Scheduled { created: Instant, fire_at: Instant },
    /// An eviction that happened: kept (as upstream's nil worker) so that it is not added
    /// again until the pod goes.
    Done,
}

/// The taint manager's scheduled evictions, by pod (`namespace/name`), deciding as
/// upstream's `processPodOnNode` does. Its answers are what to record: the pods whose
/// scheduled eviction was cancelled.
#[derive(Default)]
struct TaintEviction {
    work: HashMap<String, Work>,
}

impl TaintEviction {
    /// Upstream's `CancelWork`: true when a scheduled eviction was cancelled (its
    /// "Cancelling deletion" event is due).
    fn cancel(&mut self, key: &str) -> bool {
        matches!(self.work.remove(key), Some(Work::Scheduled { .. }))
    }

    /// Upstream's `AddWork`: nothing when the pod already has an entry.
    fn add(&mut self, key: &str, created: Instant, fire_at: Instant) {
        self.work
            .entry(key.to_string())
            .or_insert(Work::Scheduled { created, fire_at });
    }

    /// Upstream's `processPodOnNode` for a pod on a node with the NoExecute `taints`:
    /// whether a scheduled eviction was cancelled.
    fn process(
        &mut self,
        key: &str,
        tolerations: &[Toleration],
        taints: &[Taint],
        now: Instant,
    ) -> bool {
        if taints.is_empty() {
            return self.cancel(key);
        }
        let (all, used) = matching_tolerations(taints, tolerations);
        if !all {
            // Not all tolerated: away at once.
            let cancelled = self.cancel(key);
            self.add(key, now, now);
            return cancelled;
        }
        let Some(min) = min_toleration_time(&used) else {
            // Tolerated forever.
            return self.cancel(key);
        };
        let trigger = now + min;
        let mut cancelled = false;
        match self.work.get(key) {
            Some(Work::Scheduled { created, .. }) => {
                if *created + min < trigger {
                    return false;
                }
                cancelled = self.cancel(key);
            }
            // Done: AddWork skips an existing key.
            Some(Work::Done) => return false,
            None => {}
        }
        self.add(key, now, trigger);
        cancelled
    }

    /// The scheduled evictions due at `now`, marked done (a failed one is [`Self::failed`]).
    fn due(&mut self, now: Instant) -> Vec<String> {
        let mut keys = Vec::new();
        for (k, w) in self.work.iter_mut() {
            if let Work::Scheduled { fire_at, .. } = w {
                if *fire_at <= now {
                    keys.push(k.clone());
                    *w = Work::Done;
                }
            }
        }
        keys.sort();
        keys
    }

    /// An eviction that failed is forgotten (upstream deletes the worker on error), so the
    /// next look at the pod schedules it again.
    fn failed(&mut self, key: &str) {
        if self.work.get(key) == Some(&Work::Done) {
            self.work.remove(key);
        }
    }
}

fn no_execute_taints(n: &Node) -> Vec<Taint> {
    taints(n)
        .into_iter()
        .filter(|t| t.effect == "NoExecute")
        .collect()
}

/// The object reference upstream's taint manager records its events about.
fn pod_reference(ns: &str, name: &str) -> k8s_openapi::api::core::v1::ObjectReference {
    k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(ns.into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

fn emit_cancel(recorder: &Recorder, key: &str) {
    let (ns, name) = split_key(key);
    recorder.record(
        pod_reference(ns, name),
        "Normal",
        "TaintManagerEviction",
        &format!("Cancelling deletion of Pod {key}"),
    );
}

/// One look of the taint manager at every pod: cancelled evictions recorded, due ones
/// carried out (concurrently, as upstream's timed workers).
async fn taint_eviction_pass(
    client: &Client,
    recorder: &Recorder,
    nodes: &Store<Node>,
    pods: &Store<Pod>,
    evictions: &mut TaintEviction,
) {
    let now = Instant::now();
    let taints_by_node: HashMap<String, Vec<Taint>> = nodes
        .state()
        .iter()
        .map(|n| (n.name_any(), no_execute_taints(n)))
        .collect();
    let mut live: BTreeSet<String> = BTreeSet::new();
    for p in pods.state() {
        let key = format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any());
        live.insert(key.clone());
        let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        // A node the cache does not have (deleted): nothing changes (as upstream).
        let Some(taints) = taints_by_node.get(node) else {
            continue;
        };
        let tolerations = p
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        if evictions.process(&key, &tolerations, taints, now) {
            emit_cancel(recorder, &key);
        }
    }
    // Pods that went: their scheduled evictions are cancelled.
    let gone: Vec<String> = evictions
        .work
        .keys()
        .filter(|k| !live.contains(*k))
        .cloned()
        .collect();
    for key in gone {
        if evictions.cancel(&key) {
            emit_cancel(recorder, &key);
        }
    }
    let due = evictions.due(now);
    let results = futures::future::join_all(due.into_iter().map(|key| async move {
        let (ns, name) = split_key(&key);
        tracing::info!(pod = %key, "taint manager: deleting the pod (NoExecute taint)");
        recorder.record(
            pod_reference(ns, name),
            "Normal",
            "TaintManagerEviction",
            &format!("Marking for deletion Pod {key}"),
        );
        let mut last = Ok(());
        for _ in 0..5 {
            last = add_condition_and_delete_pod(client, ns, name).await;
            if last.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (key, last)
    }))
    .await;
    for (key, r) in results {
        if let Err(e) = r {
            tracing::warn!(pod = %key, error = %e, "taint manager: could not delete the pod");
            evictions.failed(&key);
        }
    }
}

/// The `DisruptionTarget` condition upstream's taint manager sets before deleting.
fn disruption_target() -> serde_json::Value {
    json!({
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "DeletionByTaintManager",
        "message": "Taint manager: deleting due to NoExecute taint",
    })
}

/// Whether `p` already has the condition (upstream's `UpdatePodCondition` then changes
/// nothing).
fn has_disruption_target(p: &Pod) -> bool {
    let want = disruption_target();
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            c.type_ == "DisruptionTarget"
                && c.status == want["status"]
                && c.reason.as_deref() == want["reason"].as_str()
                && c.message.as_deref() == want["message"].as_str()
        })
}

/// Upstream's `addConditionAndDeletePod`: get the pod, add the `DisruptionTarget`
/// condition (a status patch with the pod's uid as precondition), delete it.
async fn add_condition_and_delete_pod(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod = api.get(name).await?;
    if !has_disruption_target(&pod) {
        let mut cond = disruption_target();
        cond["lastTransitionTime"] = json!(now());
        let patch = json!({
            "metadata": {"uid": pod.metadata.uid},
            "status": {"conditions": [cond]},
        });
        api.patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await?;
    }
    api.delete(name, &DeleteParams::default()).await?;
    Ok(())
}

/// The first /24 of `cluster` not in `used`.
fn next_cidr(cluster: &str, used: &BTreeSet<String>) -> Option<String> {
    let (ip, bits) = cluster.split_once('/')?;
    let base: Ipv4Addr = ip.parse().ok()?;
    let bits: u32 = bits.parse().ok()?;
    if bits > 24 {
        return None;
    }
    let count = 1u32 << (24 - bits);
    (0..count)
        .map(|i| format!("{}/24", Ipv4Addr::from(u32::from(base) + (i << 8))))
        .find(|c| !used.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_are_handed_out_in_order() {
        let mut used = BTreeSet::new();
        assert_eq!(
            next_cidr("10.42.0.0/16", &used).as_deref(),
            Some("10.42.0.0/24")
        );
        used.insert("10.42.0.0/24".to_string());
        assert_eq!(
            next_cidr("10.42.0.0/16", &used).as_deref(),
            Some("10.42.1.0/24")
        );
        assert_eq!(next_cidr("10.42.0.0/24", &used), None);
    }

    fn taint(key: &str, value: Option<&str>) -> Taint {
        Taint {
            key: key.into(),
            effect: "NoExecute".into(),
            value: value.map(Into::into),
            time_added: Some(now()),
        }
    }

    fn tolerations(v: serde_json::Value) -> Vec<Toleration> {
        serde_json::from_value(v).unwrap()
    }

    fn scheduled_in(te: &TaintEviction, key: &str, now: Instant) -> Option<Duration> {
        match te.work.get(key) {
            Some(Work::Scheduled { fire_at, .. }) => Some(fire_at.duration_since(now)),
            _ => None,
        }
    }

    #[test]
    fn tolerations_match_taints_as_upstreams_tolerates_taint() {
        let t = taint("k", Some("v"));
        let tol = |v: serde_json::Value| -> Toleration { serde_json::from_value(v).unwrap() };
        assert!(tolerates(&tol(json!({"key": "k", "value": "v"})), &t));
        assert!(tolerates(
            &tol(json!({"key": "k", "operator": "Equal", "value": "v", "effect": "NoExecute"})),
            &t
        ));
        assert!(!tolerates(&tol(json!({"key": "k", "value": "w"})), &t));
        assert!(!tolerates(
            &tol(json!({"key": "k", "value": "v", "effect": "NoSchedule"})),
            &t
        ));
        assert!(tolerates(
            &tol(json!({"key": "k", "operator": "Exists"})),
            &t
        ));
        assert!(tolerates(&tol(json!({"operator": "Exists"})), &t));
        assert!(!tolerates(
            &tol(json!({"key": "other", "operator": "Exists"})),
            &t
        ));
        // An unknown operator tolerates nothing.
        assert!(!tolerates(
            &tol(json!({"key": "k", "operator": "Lt", "value": "v"})),
            &t
        ));
    }

    #[test]
    fn min_toleration_time_is_the_least_limit_of_the_tolerations_used() {
        let ts = tolerations(json!([
            {"key": "a", "operator": "Exists", "tolerationSeconds": 25},
            {"key": "b", "operator": "Exists", "tolerationSeconds": 5},
            {"key": "c", "operator": "Exists"},
            {"key": "d", "operator": "Exists", "tolerationSeconds": 0},
        ]));
        let (all, used) =
            matching_tolerations(&[taint("a", None), taint("b", None), taint("c", None)], &ts);
        assert!(all);
        assert_eq!(min_toleration_time(&used), Some(Duration::from_secs(5)));
        let (_, used) = matching_tolerations(&[taint("c", None)], &ts);
        assert_eq!(min_toleration_time(&used), None, "no limit: forever");
        let (_, used) = matching_tolerations(&[taint("a", None), taint("d", None)], &ts);
        assert_eq!(min_toleration_time(&used), Some(Duration::ZERO));
        let (all, used) = matching_tolerations(&[taint("a", None), taint("x", None)], &ts);
        assert!(!all && used.is_empty());
        // The first toleration that tolerates a taint is the one used.
        let ts = tolerations(json!([
            {"operator": "Exists"},
            {"key": "a", "operator": "Exists", "tolerationSeconds": 5},
        ]));
        let (_, used) = matching_tolerations(&[taint("a", None)], &ts);
        assert_eq!(min_toleration_time(&used), None);
    }

    #[test]
    fn untolerated_taints_evict_at_once_and_tolerated_ones_after_the_least_limit() {
        let t0 = Instant::now();
        let mut te = TaintEviction::default();
        let taints = [taint(
            "kubernetes.io/e2e-evict-taint-key",
            Some("evictTaintVal"),
        )];
        assert!(!te.process("ns/none", &[], &taints, t0));
        let short = tolerations(
            json!([{"key": "kubernetes.io/e2e-evict-taint-key", "value": "evictTaintVal", "effect": "NoExecute", "tolerationSeconds": 5}]),
        );
        let long = tolerations(
            json!([{"key": "kubernetes.io/e2e-evict-taint-key", "value": "evictTaintVal", "effect": "NoExecute", "tolerationSeconds": 25}]),
        );
        let forever = tolerations(
            json!([{"key": "kubernetes.io/e2e-evict-taint-key", "value": "evictTaintVal", "effect": "NoExecute"}]),
        );
        assert!(!te.process("ns/p1", &short, &taints, t0));
        assert!(!te.process("ns/p2", &long, &taints, t0));
        assert!(!te.process("ns/p3", &forever, &taints, t0));
        assert_eq!(scheduled_in(&te, "ns/none", t0), Some(Duration::ZERO));
        assert_eq!(scheduled_in(&te, "ns/p1", t0), Some(Duration::from_secs(5)));
        assert_eq!(
            scheduled_in(&te, "ns/p2", t0),
            Some(Duration::from_secs(25))
        );
        assert!(!te.work.contains_key("ns/p3"));
        // Looking again later keeps the schedule (counted from when it was made).
        let t1 = t0 + Duration::from_secs(3);
        assert!(!te.process("ns/p1", &short, &taints, t1));
        assert_eq!(scheduled_in(&te, "ns/p1", t0), Some(Duration::from_secs(5)));
        assert_eq!(te.due(t0), vec!["ns/none".to_string()]);
        assert_eq!(te.due(t1), Vec::<String>::new());
        assert_eq!(
            te.due(t0 + Duration::from_secs(5)),
            vec!["ns/p1".to_string()]
        );
        // Done: not scheduled again while the pod is there.
        assert!(!te.process("ns/p1", &short, &taints, t0 + Duration::from_secs(6)));
        assert_eq!(te.work.get("ns/p1"), Some(&Work::Done));
        assert_eq!(
            te.due(t0 + Duration::from_secs(30)),
            vec!["ns/p2".to_string()]
        );
        // A failed eviction is forgotten, so scheduled anew.
        te.failed("ns/p2");
        assert!(!te.work.contains_key("ns/p2"));
        // The pod going after its eviction: no cancel event.
        assert!(!te.cancel("ns/p1"));
    }

    #[test]
    fn removing_the_taint_or_tolerating_forever_cancels_a_scheduled_eviction() {
        let t0 = Instant::now();
        let mut te = TaintEviction::default();
        let taints = [taint("k", Some("v"))];
        let ten = tolerations(
            json!([{"key": "k", "value": "v", "effect": "NoExecute", "tolerationSeconds": 10}]),
        );
        assert!(!te.process("ns/p", &ten, &taints, t0));
        assert!(scheduled_in(&te, "ns/p", t0).is_some());
        // The taint goes: cancelled (with its event), nothing due later.
        assert!(te.process("ns/p", &ten, &[], t0 + Duration::from_secs(1)));
        assert!(te.work.is_empty());
        assert!(te.due(t0 + Duration::from_secs(60)).is_empty());
        // No second cancel event.
        assert!(!te.process("ns/p", &ten, &[], t0 + Duration::from_secs(2)));
        // The taint back: scheduled anew from then.
        let t3 = t0 + Duration::from_secs(3);
        assert!(!te.process("ns/p", &ten, &taints, t3));
        assert_eq!(scheduled_in(&te, "ns/p", t3), Some(Duration::from_secs(10)));
        // Tolerations now forever: cancelled.
        let forever = tolerations(json!([{"operator": "Exists"}]));
        assert!(te.process("ns/p", &forever, &taints, t3));
        assert!(te.work.is_empty());
        // A pod no longer tolerating: cancelled and due at once.
        assert!(!te.process("ns/p", &ten, &taints, t3));
        assert!(te.process("ns/p", &[], &taints, t3));
        assert_eq!(scheduled_in(&te, "ns/p", t3), Some(Duration::ZERO));
    }

    #[test]
    fn the_disruption_target_condition_is_upstreams() {
        let mut p: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}})).unwrap();
        assert!(!has_disruption_target(&p));
        p.status = Some(
            serde_json::from_value(json!({"conditions": [{
                "type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                "message": "Taint manager: deleting due to NoExecute taint"}]}))
            .unwrap(),
        );
        assert!(has_disruption_target(&p));
    }
}
