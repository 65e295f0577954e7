//! The Node object and heartbeat of a hollow node, as pure functions of the configuration,
//! the node's identity and what the API holds: upstream's kubelet registration
//! (`pkg/kubelet/kubelet_node_status.go`), its status setters (`pkg/kubelet/nodestatus`)
//! and its node lease (`pkg/kubelet/nodelease`, `component-helpers/apimachinery/lease`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use serde_json::json;

use crate::ip::{self, Cidr};
use crate::{Error, HollowConfig};

/// `status.nodeInfo.kubeletVersion` of every hollow node.
pub const KUBELET_VERSION: &str = "v1.33.0+rkube";
/// `status.nodeInfo.containerRuntimeVersion`: says plainly there is no runtime.
pub const RUNTIME_VERSION: &str = "hollow://1.0";
pub const OS_IMAGE: &str = "Hollow Linux (rkube hollow node, no containers)";
pub const KERNEL_VERSION: &str = "6.1.0-hollow";
/// `status.daemonEndpoints.kubeletEndpoint.Port` (never listened on).
pub const KUBELET_PORT: i32 = 10250;
pub const EPHEMERAL_STORAGE: &str = "100Gi";
/// `node.kubernetes.io/instance-type` of every hollow node.
pub const INSTANCE_TYPE: &str = "hollow";

/// Where node leases live.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Upstream's `--node-lease-duration-seconds` default.
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// Upstream renews a node lease every quarter of its duration.
pub const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// Upstream's `nodeStatusUpdateFrequency`: how often the status is computed and compared.
pub const STATUS_UPDATE_INTERVAL: Duration = Duration::from_secs(10);
/// Upstream's `nodeStatusReportFrequency`: an unchanged status is written this often.
pub const STATUS_REPORT_INTERVAL: Duration = Duration::from_secs(300);

/// The node conditions the kubelet owns, in the order its setters add them, with the
/// (status, reason, message) a healthy node reports.
const CONDITIONS: [(&str, &str, &str, &str); 4] = [
    (
        "MemoryPressure",
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    (
        "DiskPressure",
        "False",
        "KubeletHasNoDiskPressure",
        "kubelet has no disk pressure",
    ),
    (
        "PIDPressure",
        "False",
        "KubeletHasSufficientPID",
        "kubelet has sufficient PID available",
    ),
    (
        "Ready",
        "True",
        "KubeletReady",
        "kubelet is posting ready status",
    ),
];

/// What makes one hollow node itself: fixed for its life, except `boot_id`, which a
/// restart renews.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeIdentity {
    pub index: usize,
    pub name: String,
    pub ip: Ipv4Addr,
    /// The pod CIDR this node sets on registration (from `pod_cidr_base`), if any.
    pub pod_cidr: Option<Cidr>,
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
}

/// `<prefix>-<index>`.
pub fn node_name(prefix: &str, index: usize) -> String {
    format!("{prefix}-{index}")
}

/// 64-bit FNV-1a, for stable per-node identifiers.
fn fnv1a(seed: u64, data: &[u8]) -> u64 {
    data.iter().fold(seed, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// 32 hex digits derived from the name: the same node gets the same machine ID in
/// every run.
fn stable_hex(name: &str, salt: &str) -> String {
    let a = fnv1a(0xcbf2_9ce4_8422_2325, format!("{salt}/{name}").as_bytes());
    let b = fnv1a(a ^ 0x9e37_79b9_7f4a_7c15, name.as_bytes());
    format!("{a:016x}{b:016x}")
}

impl NodeIdentity {
    /// The identity of node `index` of `cfg`, booted as `boot_id`.
    pub fn new(cfg: &HollowConfig, index: usize, boot_id: &str) -> Result<NodeIdentity, Error> {
        let name = node_name(&cfg.name_prefix, index);
        let ip = ip::node_ip(index).ok_or_else(|| {
            Error::Config(format!(
                "node {name}: no address left in {}",
                ip::NODE_IP_RANGE
            ))
        })?;
        let pod_cidr = match &cfg.pod_cidr_base {
            None => None,
            Some(base) => {
                let base: Cidr = base.parse().map_err(Error::Config)?;
                Some(ip::node_pod_cidr(&base, index).ok_or_else(|| {
                    Error::Config(format!(
                        "node {name}: pod CIDR base {base} has no /{} left for it",
                        ip::NODE_CIDR_MASK
                    ))
                })?)
            }
        };
        let u = stable_hex(&name, "system-uuid");
        Ok(NodeIdentity {
            index,
            machine_id: stable_hex(&name, "machine-id"),
            system_uuid: format!(
                "{}-{}-{}-{}-{}",
                &u[0..8],
                &u[8..12],
                &u[12..16],
                &u[16..20],
                &u[20..32]
            ),
            boot_id: boot_id.to_string(),
            name,
            ip,
            pod_cidr,
        })
    }
}

/// The node's labels: the kubelet's defaults, then the configured ones.
pub fn labels(cfg: &HollowConfig, id: &NodeIdentity) -> BTreeMap<String, String> {
    let mut l: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", id.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", "amd64"),
        ("node.kubernetes.io/instance-type", INSTANCE_TYPE),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in &cfg.labels {
        l.insert(k.clone(), v.clone());
    }
    l
}

/// The annotations the kubelet (and the TTL controller) set on a node.
pub fn annotations() -> BTreeMap<String, String> {
    [
        ("node.alpha.kubernetes.io/ttl", "0"),
        (
            "volumes.kubernetes.io/controller-managed-attach-detach",
            "true",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn resources(cfg: &HollowConfig) -> BTreeMap<String, Quantity> {
    [
        ("cpu", cfg.cpu.clone()),
        ("memory", cfg.memory.clone()),
        ("pods", cfg.pods.to_string()),
        ("ephemeral-storage", EPHEMERAL_STORAGE.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v)))
    .collect()
}

/// The Node the hollow node registers (status included, as the kubelet creates it).
pub fn new_node(cfg: &HollowConfig, id: &NodeIdentity, now: &Time) -> Node {
    let pod_cidr = id.pod_cidr.map(|c| c.to_string());
    Node {
        metadata: ObjectMeta {
            name: Some(id.name.clone()),
            labels: Some(labels(cfg, id)),
            annotations: Some(annotations()),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: pod_cidr.clone(),
            pod_cidrs: pod_cidr.map(|c| vec![c]),
            taints: (!cfg.taints.is_empty()).then(|| cfg.taints.clone()),
            ..Default::default()
        }),
        status: Some(desired_status(cfg, id, None, now)),
    }
}

/// The merge patch that adopts an existing node of the same name (the kubelet's
/// reconciliation on "already exists"): its default and configured labels and the
/// annotations; the pod CIDR only when the node has none (it cannot change once set).
/// Taints are left as they are, as the kubelet registers them only on creation.
pub fn adoption_patch(cfg: &HollowConfig, id: &NodeIdentity, existing: &Node) -> serde_json::Value {
    let mut patch = json!({
        "metadata": {"labels": labels(cfg, id), "annotations": annotations()},
    });
    let has_cidr = existing
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_ref())
        .is_some_and(|c| !c.is_empty());
    if let (false, Some(c)) = (has_cidr, id.pod_cidr) {
        patch["spec"] = json!({"podCIDR": c.to_string(), "podCIDRs": [c.to_string()]});
    }
    patch
}

/// The CIDR the node's pod IPs come from: the node's `spec.podCIDR` (the cluster's node
/// IPAM or our registration set it), else the shared fallback range.
pub fn pod_cidr_of(observed: Option<&Node>) -> Cidr {
    observed
        .and_then(|n| n.spec.as_ref())
        .and_then(|s| s.pod_cidr.as_deref())
        .and_then(|c| c.parse().ok())
        .unwrap_or(ip::FALLBACK_POD_RANGE)
}

/// The status the node reports now, given the one the API holds: conditions the
/// kubelet owns are updated in place (their transition time kept while their status
/// does not change) or appended; other conditions (e.g. NetworkUnavailable) are kept.
pub fn desired_status(
    cfg: &HollowConfig,
    id: &NodeIdentity,
    observed: Option<&NodeStatus>,
    now: &Time,
) -> NodeStatus {
    let mut conditions: Vec<NodeCondition> = observed
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    for (type_, status, reason, message) in CONDITIONS {
        let fresh = NodeCondition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time: Some(now.clone()),
        };
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) => {
                let transition = if c.status == status {
                    c.last_transition_time.clone().or(Some(now.clone()))
                } else {
                    Some(now.clone())
                };
                *c = NodeCondition {
                    last_transition_time: transition,
                    ..fresh
                };
            }
            None => conditions.push(fresh),
        }
    }
    let resources = resources(cfg);
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        conditions: Some(conditions),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: id.ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: id.name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: KUBELET_PORT }),
        }),
        node_info: Some(NodeSystemInfo {
            machine_id: id.machine_id.clone(),
            system_uuid: id.system_uuid.clone(),
            boot_id: id.boot_id.clone(),
            kernel_version: KERNEL_VERSION.into(),
            os_image: OS_IMAGE.into(),
            container_runtime_version: RUNTIME_VERSION.into(),
            kubelet_version: KUBELET_VERSION.into(),
            kube_proxy_version: String::new(),
            operating_system: "linux".into(),
            architecture: "amd64".into(),
            swap: None,
        }),
        ..Default::default()
    }
}

/// What of a status matters for "has it changed": everything the hollow node reports
/// but the heartbeat and transition times.
#[derive(PartialEq, Debug)]
struct Reported<'a> {
    capacity: Option<&'a BTreeMap<String, Quantity>>,
    allocatable: Option<&'a BTreeMap<String, Quantity>>,
    addresses: Option<&'a Vec<NodeAddress>>,
    daemon_endpoints: Option<&'a NodeDaemonEndpoints>,
    node_info: Option<&'a NodeSystemInfo>,
    conditions: Vec<(&'a str, &'a str, Option<&'a str>, Option<&'a str>)>,
}

fn reported(s: &NodeStatus) -> Reported<'_> {
    Reported {
        capacity: s.capacity.as_ref(),
        allocatable: s.allocatable.as_ref(),
        addresses: s.addresses.as_ref(),
        daemon_endpoints: s.daemon_endpoints.as_ref(),
        node_info: s.node_info.as_ref(),
        conditions: s
            .conditions
            .iter()
            .flatten()
            .map(|c| {
                (
                    c.type_.as_str(),
                    c.status.as_str(),
                    c.reason.as_deref(),
                    c.message.as_deref(),
                )
            })
            .collect(),
    }
}

/// Whether `desired` says something the API's status does not (upstream's
/// `nodeStatusHasChanged`): only then, or every [`STATUS_REPORT_INTERVAL`], is the
/// status written.
pub fn status_differs(observed: Option<&NodeStatus>, desired: &NodeStatus) -> bool {
    match observed {
        None => true,
        Some(o) => reported(o) != reported(desired),
    }
}

/// The merge patch of `nodes/status` that reports `status`.
pub fn status_patch(status: &NodeStatus) -> serde_json::Value {
    json!({ "status": status })
}

fn owner(node_name: &str, node_uid: Option<&str>) -> Option<Vec<OwnerReference>> {
    node_uid.map(|uid| {
        vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: node_name.to_string(),
            uid: uid.to_string(),
            ..Default::default()
        }]
    })
}

/// The node's lease `kube-node-lease/<node>`, owned by the Node (so it goes with it).
pub fn new_lease(node_name: &str, node_uid: Option<&str>, now: &MicroTime) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(node_name.to_string()),
            namespace: Some(LEASE_NAMESPACE.to_string()),
            owner_references: owner(node_name, node_uid),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node_name.to_string()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            renew_time: Some(now.clone()),
            ..Default::default()
        }),
    }
}

/// `lease` renewed at `now` by the node (its resourceVersion kept, so a concurrent
/// writer makes the update fail rather than be overwritten), owned by the Node with
/// uid `node_uid` when it is known.
pub fn renewed_lease(
    lease: &Lease,
    node_name: &str,
    node_uid: Option<&str>,
    now: &MicroTime,
) -> Lease {
    let mut l = lease.clone();
    let spec = l.spec.get_or_insert_with(Default::default);
    spec.holder_identity = Some(node_name.to_string());
    spec.lease_duration_seconds = Some(LEASE_DURATION_SECONDS);
    spec.renew_time = Some(now.clone());
    // Owned by this Node: a lease left by an earlier Node of the same name (deleted and
    // registered again) would otherwise be collected with the old one.
    if let Some(mine) = owner(node_name, node_uid) {
        let mut refs: Vec<OwnerReference> = l
            .metadata
            .owner_references
            .take()
            .into_iter()
            .flatten()
            .filter(|r| r.kind != "Node")
            .collect();
        refs.extend(mine);
        l.metadata.owner_references = Some(refs);
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Taint;
    use k8s_openapi::jiff::Timestamp;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn cfg() -> HollowConfig {
        HollowConfig {
            count: 3,
            name_prefix: "hollow".into(),
            labels: vec![("tier".into(), "bench".into())],
            taints: vec![Taint {
                key: "hollow".into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn cond<'a>(s: &'a NodeStatus, type_: &str) -> &'a NodeCondition {
        s.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_)
            .unwrap()
    }

    #[test]
    fn identity() {
        let plain = cfg();
        let with_base = HollowConfig {
            pod_cidr_base: Some("10.244.0.0/16".into()),
            ..cfg()
        };
        // (config, index, (name, ip, pod CIDR) or None for an error)
        type Want<'a> = Option<(&'a str, &'a str, Option<&'a str>)>;
        let cases: Vec<(&HollowConfig, usize, Want)> = vec![
            (&plain, 0, Some(("hollow-0", "10.250.0.1", None))),
            (&plain, 2, Some(("hollow-2", "10.250.0.3", None))),
            (
                &with_base,
                0,
                Some(("hollow-0", "10.250.0.1", Some("10.244.0.0/24"))),
            ),
            (
                &with_base,
                7,
                Some(("hollow-7", "10.250.0.8", Some("10.244.7.0/24"))),
            ),
            (&with_base, 256, None),
            (&plain, 65534, None),
        ];
        for (c, index, want) in cases {
            let got = NodeIdentity::new(c, index, "boot").ok().map(|id| {
                (
                    id.name,
                    id.ip.to_string(),
                    id.pod_cidr.map(|c| c.to_string()),
                )
            });
            let want =
                want.map(|(n, ip, cidr)| (n.to_string(), ip.to_string(), cidr.map(str::to_string)));
            assert_eq!(got, want, "#{index}");
        }
        let bad = HollowConfig {
            pod_cidr_base: Some("fd00::/48".into()),
            ..cfg()
        };
        assert!(NodeIdentity::new(&bad, 0, "b").is_err());
        // Stable and distinct machine identifiers.
        let a = NodeIdentity::new(&cfg(), 0, "x").unwrap();
        let a2 = NodeIdentity::new(&cfg(), 0, "y").unwrap();
        let b = NodeIdentity::new(&cfg(), 1, "x").unwrap();
        assert_eq!(
            (a.machine_id.clone(), a.system_uuid.clone()),
            (a2.machine_id, a2.system_uuid)
        );
        assert_ne!(a.machine_id, b.machine_id);
        assert_eq!(a.machine_id.len(), 32);
        assert_eq!(a.system_uuid.len(), 36);
    }

    #[test]
    fn node_object() {
        let c = HollowConfig {
            pod_cidr_base: Some("10.244.0.0/16".into()),
            ..cfg()
        };
        let id = NodeIdentity::new(&c, 1, "boot-1").unwrap();
        let node = new_node(&c, &id, &t(100));
        let v = serde_json::to_value(&node).unwrap();
        // (JSON pointer, expected value)
        let cases: &[(&str, serde_json::Value)] = &[
            ("/metadata/name", json!("hollow-1")),
            (
                "/metadata/labels/kubernetes.io~1hostname",
                json!("hollow-1"),
            ),
            ("/metadata/labels/kubernetes.io~1os", json!("linux")),
            ("/metadata/labels/kubernetes.io~1arch", json!("amd64")),
            (
                "/metadata/labels/node.kubernetes.io~1instance-type",
                json!("hollow"),
            ),
            ("/metadata/labels/tier", json!("bench")),
            (
                "/metadata/annotations/node.alpha.kubernetes.io~1ttl",
                json!("0"),
            ),
            ("/spec/podCIDR", json!("10.244.1.0/24")),
            ("/spec/podCIDRs", json!(["10.244.1.0/24"])),
            (
                "/spec/taints",
                json!([{"key": "hollow", "effect": "NoSchedule"}]),
            ),
            (
                "/status/capacity",
                json!({"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"}),
            ),
            (
                "/status/allocatable",
                json!({"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"}),
            ),
            (
                "/status/addresses",
                json!([{"type": "InternalIP", "address": "10.250.0.2"}, {"type": "Hostname", "address": "hollow-1"}]),
            ),
            ("/status/daemonEndpoints/kubeletEndpoint/Port", json!(10250)),
            ("/status/nodeInfo/kubeletVersion", json!("v1.33.0+rkube")),
            (
                "/status/nodeInfo/containerRuntimeVersion",
                json!("hollow://1.0"),
            ),
            ("/status/nodeInfo/operatingSystem", json!("linux")),
            ("/status/nodeInfo/architecture", json!("amd64")),
            ("/status/nodeInfo/bootID", json!("boot-1")),
            ("/status/conditions/0/type", json!("MemoryPressure")),
            ("/status/conditions/0/status", json!("False")),
            (
                "/status/conditions/0/reason",
                json!("KubeletHasSufficientMemory"),
            ),
            (
                "/status/conditions/1/reason",
                json!("KubeletHasNoDiskPressure"),
            ),
            (
                "/status/conditions/2/reason",
                json!("KubeletHasSufficientPID"),
            ),
            ("/status/conditions/3/type", json!("Ready")),
            ("/status/conditions/3/status", json!("True")),
            ("/status/conditions/3/reason", json!("KubeletReady")),
            (
                "/status/conditions/3/message",
                json!("kubelet is posting ready status"),
            ),
            (
                "/status/conditions/3/lastHeartbeatTime",
                json!("1970-01-01T00:01:40Z"),
            ),
        ];
        for (ptr, want) in cases {
            assert_eq!(v.pointer(ptr), Some(want), "{ptr}");
        }
        for ptr in [
            "/status/nodeInfo/machineID",
            "/status/nodeInfo/systemUUID",
            "/status/nodeInfo/osImage",
            "/status/nodeInfo/kernelVersion",
        ] {
            assert!(
                v.pointer(ptr)
                    .and_then(|s| s.as_str())
                    .is_some_and(|s| !s.is_empty()),
                "{ptr}"
            );
        }
        // No pod CIDR base: spec.podCIDR is left to the cluster; no taints: none set.
        let plain = HollowConfig::default();
        let id = NodeIdentity::new(&plain, 0, "b").unwrap();
        let v = serde_json::to_value(new_node(&plain, &id, &t(0))).unwrap();
        assert_eq!(v.pointer("/spec/podCIDR"), None);
        assert_eq!(v.pointer("/spec/taints"), None);
        assert_eq!(v.pointer("/metadata/name"), Some(&json!("hollow-0")));
    }

    #[test]
    fn status_conditions_and_changes() {
        let c = cfg();
        let id = NodeIdentity::new(&c, 0, "boot-1").unwrap();
        let first = desired_status(&c, &id, None, &t(10));
        // The next report keeps transition times, bumps heartbeats, and is no change.
        let second = desired_status(&c, &id, Some(&first), &t(20));
        assert_eq!(cond(&second, "Ready").last_transition_time, Some(t(10)));
        assert_eq!(cond(&second, "Ready").last_heartbeat_time, Some(t(20)));
        assert!(!status_differs(Some(&first), &second));
        assert!(status_differs(None, &second));

        // (what happened to the API's status, whether it is a change, Ready's transition time)
        let mut unknown = first.clone();
        for c in unknown.conditions.iter_mut().flatten() {
            c.status = "Unknown".into();
            c.reason = Some("NodeStatusUnknown".into());
        }
        let mut network = first.clone();
        network.conditions.as_mut().unwrap().insert(
            0,
            NodeCondition {
                type_: "NetworkUnavailable".into(),
                status: "False".into(),
                reason: Some("RouteCreated".into()),
                ..Default::default()
            },
        );
        let mut rebooted_id = id.clone();
        rebooted_id.boot_id = "boot-2".into();
        let cases: Vec<(&str, NodeStatus, &NodeIdentity, bool, Time)> = vec![
            ("unchanged", first.clone(), &id, false, t(10)),
            ("node controller set Unknown", unknown, &id, true, t(30)),
            ("other condition added", network, &id, false, t(10)),
            ("rebooted", first.clone(), &rebooted_id, true, t(10)),
            ("empty", NodeStatus::default(), &id, true, t(30)),
        ];
        for (what, observed, id, changed, transition) in cases {
            let desired = desired_status(&c, id, Some(&observed), &t(30));
            assert_eq!(status_differs(Some(&observed), &desired), changed, "{what}");
            assert_eq!(cond(&desired, "Ready").status, "True", "{what}");
            assert_eq!(
                cond(&desired, "Ready").last_transition_time,
                Some(transition),
                "{what}"
            );
        }
        // Other conditions are kept, in place.
        let mut network = first.clone();
        network.conditions.as_mut().unwrap().insert(
            0,
            NodeCondition {
                type_: "NetworkUnavailable".into(),
                status: "False".into(),
                ..Default::default()
            },
        );
        let d = desired_status(&c, &id, Some(&network), &t(40));
        let types: Vec<_> = d
            .conditions
            .iter()
            .flatten()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(
            types,
            [
                "NetworkUnavailable",
                "MemoryPressure",
                "DiskPressure",
                "PIDPressure",
                "Ready"
            ]
        );
        assert_eq!(
            status_patch(&d)["status"]["conditions"][0]["type"],
            "NetworkUnavailable"
        );
    }

    #[test]
    fn adoption() {
        let c = HollowConfig {
            pod_cidr_base: Some("10.244.0.0/16".into()),
            ..cfg()
        };
        let id = NodeIdentity::new(&c, 3, "b").unwrap();
        let with_cidr = Node {
            spec: Some(NodeSpec {
                pod_cidr: Some("10.99.0.0/24".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        // (existing node, expected spec in the patch)
        let cases: Vec<(Node, serde_json::Value)> = vec![
            (
                Node::default(),
                json!({"podCIDR": "10.244.3.0/24", "podCIDRs": ["10.244.3.0/24"]}),
            ),
            (with_cidr.clone(), serde_json::Value::Null),
        ];
        for (existing, spec) in cases {
            let p = adoption_patch(&c, &id, &existing);
            assert_eq!(p["spec"], spec);
            assert_eq!(
                p["metadata"]["labels"]["kubernetes.io/hostname"],
                "hollow-3"
            );
            assert_eq!(p["metadata"]["labels"]["tier"], "bench");
            assert_eq!(
                p["metadata"]["annotations"]["node.alpha.kubernetes.io/ttl"],
                "0"
            );
            assert!(p["spec"]["taints"].is_null());
        }
        // Pod IPs come from the node's CIDR once it has one.
        let empty = Node::default();
        let cidrs: Vec<(Option<&Node>, &str)> = vec![
            (None, "10.251.0.0/16"),
            (Some(&empty), "10.251.0.0/16"),
            (Some(&with_cidr), "10.99.0.0/24"),
        ];
        for (node, want) in cidrs {
            assert_eq!(pod_cidr_of(node).to_string(), want);
        }
    }

    #[test]
    fn leases() {
        let now = MicroTime(Timestamp::from_second(50).unwrap());
        let later = MicroTime(Timestamp::from_second(60).unwrap());
        let l = new_lease("hollow-0", Some("uid-1"), &now);
        let v = serde_json::to_value(&l).unwrap();
        let cases: &[(&str, serde_json::Value)] = &[
            ("/metadata/name", json!("hollow-0")),
            ("/metadata/namespace", json!("kube-node-lease")),
            ("/metadata/ownerReferences/0/kind", json!("Node")),
            ("/metadata/ownerReferences/0/uid", json!("uid-1")),
            ("/spec/holderIdentity", json!("hollow-0")),
            ("/spec/leaseDurationSeconds", json!(40)),
        ];
        for (ptr, want) in cases {
            assert_eq!(v.pointer(ptr), Some(want), "{ptr}");
        }
        let mut stored = l.clone();
        stored.metadata.resource_version = Some("7".into());
        stored.metadata.owner_references = None;
        let r = renewed_lease(&stored, "hollow-0", Some("uid-2"), &later);
        assert_eq!(r.spec.as_ref().unwrap().renew_time, Some(later.clone()));
        assert_eq!(r.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(
            r.metadata.owner_references.as_ref().unwrap()[0].uid,
            "uid-2"
        );
        let unowned = new_lease("hollow-0", None, &now);
        assert!(unowned.metadata.owner_references.is_none());
        // Unknown node uid: the lease's owners are left as they are.
        let kept = renewed_lease(&l, "hollow-0", None, &later);
        assert_eq!(kept.metadata.owner_references, l.metadata.owner_references);
        let again = renewed_lease(&r, "hollow-0", Some("uid-2"), &later);
        assert_eq!(again.metadata.owner_references.unwrap().len(), 1);
    }
}
