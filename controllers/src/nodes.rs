//! Node lifecycle, node IPAM and pod GC (upstream's nodelifecycle, nodeipam and podgc
//! controllers, and the NoExecute taint manager):
//! - a node whose Lease stops renewing for the grace period turns Ready=Unknown and gets
//!   the `node.kubernetes.io/unreachable` NoSchedule and NoExecute taints; they go when it
//!   reports Ready again;
//! - pods on a node with NoExecute taints they do not tolerate are deleted at once, those
//!   that tolerate them for `tolerationSeconds` after that long;
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
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        if let Err(e) = pass(&client, &cfg, &nodes, &leases, &pods, &mut seen, started).await {
            tracing::warn!(error = %e, "node controllers will retry");
        }
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
    // NoExecute eviction and pod GC.
    let pods_now = pods.state();
    let by_name: HashMap<String, &Arc<Node>> =
        all_nodes.iter().map(|n| (n.name_any(), n)).collect();
    // Nodes missing from the cache, checked once per pass against the API (not per pod).
    let mut gone: HashMap<String, bool> = HashMap::new();
    for p in &pods_now {
        let Some(node_name) = p.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        let api: Api<Pod> = Api::namespaced(client.clone(), &p.namespace().unwrap_or_default());
        let Some(node) = by_name.get(node_name.as_str()) else {
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
            continue;
        };
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(after) = eviction_due(p, &taints(node)) {
            if after <= Duration::ZERO {
                tracing::info!(pod = %p.name_any(), node = %node_name, "evicting: the node has a NoExecute taint the pod does not tolerate");
                ignore_gone(
                    api.delete(&p.name_any(), &DeleteParams::default())
                        .await
                        .map(|_| ()),
                )?;
            }
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

fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect_ok = t
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let key_ok = t.key.as_deref().is_none_or(|k| k.is_empty())
        || t.key.as_deref() == Some(taint.key.as_str());
    let value_ok = match t.operator.as_deref() {
        Some("Exists") => true,
        _ => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
    };
    effect_ok && key_ok && value_ok
}

/// How long until the pod must go because of NoExecute taints (None: it may stay).
fn eviction_due(p: &Pod, taints: &[Taint]) -> Option<Duration> {
    let tolerations = p
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let mut due: Option<Duration> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let Some(t) = tolerations.iter().find(|t| tolerates(t, taint)) else {
            return Some(Duration::ZERO);
        };
        if let Some(secs) = t.toleration_seconds {
            let added = taint
                .time_added
                .as_ref()
                .map(|t| t.0.as_second())
                .unwrap_or(0);
            let left = added + secs - k8s_openapi::jiff::Timestamp::now().as_second();
            let d = Duration::from_secs(left.max(0) as u64);
            due = Some(due.map_or(d, |x| x.min(d)));
        }
    }
    due
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

    #[test]
    fn no_execute_taints_evict_untolerating_pods_now_and_tolerating_ones_later() {
        let taint = Taint {
            key: UNREACHABLE.into(),
            effect: "NoExecute".into(),
            value: None,
            time_added: Some(now()),
        };
        let pod = |tol: serde_json::Value| -> Pod {
            serde_json::from_value(
                json!({"metadata": {"name": "p"}, "spec": {"containers": [], "tolerations": tol}}),
            )
            .unwrap()
        };
        assert_eq!(
            eviction_due(&pod(json!([])), std::slice::from_ref(&taint)),
            Some(Duration::ZERO)
        );
        let later = eviction_due(
            &pod(json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}])),
            std::slice::from_ref(&taint),
        )
        .unwrap();
        assert!(later > Duration::from_secs(298));
        assert_eq!(
            eviction_due(&pod(json!([{"operator": "Exists"}])), &[taint]),
            None
        );
    }
}
