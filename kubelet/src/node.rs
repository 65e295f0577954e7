//! The Node: registration, status and Lease, as upstream's kubelet keeps them
//! (`pkg/kubelet/kubelet_node_status.go`, `pkg/kubelet/nodestatus`,
//! `pkg/kubelet/nodelease`). The pure builders are the first half of this file; [`run`]
//! is the loop that registers the Node, renews its Lease every 10 s and writes its
//! status when it changes (checked every 10 s, at once when the runtime's network turns
//! ready) or every 5 minutes.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::{watch, Notify};

use crate::cri::Cri;
use crate::{Config, Error, KUBELET_VERSION};

/// Where node leases live.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Upstream's `--node-lease-duration-seconds` default.
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// Upstream renews a node lease every quarter of its duration.
pub const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// Upstream's `nodeStatusUpdateFrequency`.
pub const STATUS_UPDATE_INTERVAL: Duration = Duration::from_secs(10);
/// Upstream's `nodeStatusReportFrequency`: an unchanged status is written this often.
pub const STATUS_REPORT_INTERVAL: Duration = Duration::from_secs(300);
/// Pods a node takes (upstream's `--max-pods` default).
pub const MAX_PODS: u32 = 110;
/// The field manager of the kubelet's writes.
pub const FIELD_MANAGER: &str = "kubelet";

/// What the machine says of itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
    pub kernel_version: String,
    pub os_image: String,
    pub cpus: usize,
    /// MemTotal, in KiB.
    pub memory_kib: u64,
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// PRETTY_NAME of an os-release file.
pub fn pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|l| {
        l.strip_prefix("PRETTY_NAME=")
            .map(|v| v.trim().trim_matches('"').to_string())
    })
}

/// MemTotal of a meminfo file, in KiB.
pub fn mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        l.strip_prefix("MemTotal:")?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    })
}

impl Facts {
    pub fn read() -> Facts {
        let machine_id = read_trim("/etc/machine-id")
            .or_else(|| read_trim("/var/lib/dbus/machine-id"))
            .unwrap_or_default();
        // product_uuid is root-only and absent in some VMs: fall back to the machine ID
        // (as a UUID), as upstream's cadvisor falls back to what it can read.
        let system_uuid = read_trim("/sys/class/dmi/id/product_uuid").unwrap_or_else(|| {
            let m = format!("{machine_id:0<32}");
            format!(
                "{}-{}-{}-{}-{}",
                &m[0..8],
                &m[8..12],
                &m[12..16],
                &m[16..20],
                &m[20..32]
            )
        });
        let cpus = std::fs::read_to_string("/proc/cpuinfo")
            .map(|s| s.lines().filter(|l| l.starts_with("processor")).count())
            .ok()
            .filter(|n| *n > 0)
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(1);
        Facts {
            machine_id,
            system_uuid,
            boot_id: read_trim("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
            kernel_version: read_trim("/proc/sys/kernel/osrelease").unwrap_or_default(),
            os_image: std::fs::read_to_string("/etc/os-release")
                .ok()
                .and_then(|s| pretty_name(&s))
                .unwrap_or_else(|| "Linux".into()),
            cpus,
            memory_kib: std::fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|s| mem_total_kib(&s))
                .unwrap_or(0),
        }
    }
}

/// The node as this kubelet describes it.
#[derive(Clone, Debug)]
pub struct Identity {
    pub name: String,
    pub ip: IpAddr,
    pub port: u16,
    pub labels: Vec<(String, String)>,
    pub taints: Vec<Taint>,
    pub facts: Facts,
    /// `containerd://1.6.20`.
    pub runtime_version: String,
}

impl Identity {
    pub fn new(cfg: &Config, facts: Facts, runtime_version: String) -> Identity {
        Identity {
            name: cfg.node_name.clone(),
            ip: cfg.node_ip,
            port: cfg.port,
            labels: cfg.node_labels.clone(),
            taints: cfg.node_taints.clone(),
            facts,
            runtime_version,
        }
    }
}

/// The node's labels: the kubelet's defaults, then the configured ones.
pub fn labels(id: &Identity) -> BTreeMap<String, String> {
    let mut l: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", id.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", "amd64"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in &id.labels {
        l.insert(k.clone(), v.clone());
    }
    l
}

fn annotations() -> BTreeMap<String, String> {
    [(
        "volumes.kubernetes.io/controller-managed-attach-detach",
        "true",
    )]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn resources(f: &Facts) -> BTreeMap<String, Quantity> {
    [
        ("cpu", f.cpus.to_string()),
        ("memory", format!("{}Ki", f.memory_kib)),
        ("pods", MAX_PODS.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v)))
    .collect()
}

/// Whether the runtime and its network are ready, and if not, upstream's message
/// (`container runtime network not ready: NetworkReady=false reason:… message:…`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeHealth {
    Ready,
    NotReady(String),
}

/// The runtime's health from its CRI conditions.
pub fn runtime_health(conditions: &[k8s_cri::v1::RuntimeCondition]) -> RuntimeHealth {
    let get = |t: &str| conditions.iter().find(|c| c.r#type == t);
    let describe = |t: &str| match get(t) {
        Some(c) => format!("{t}=false reason:{} message:{}", c.reason, c.message),
        None => format!("{t}=false reason: message:the runtime did not report {t}"),
    };
    if !get("RuntimeReady").is_some_and(|c| c.status) {
        return RuntimeHealth::NotReady(format!(
            "container runtime is down: {}",
            describe("RuntimeReady")
        ));
    }
    if !get("NetworkReady").is_some_and(|c| c.status) {
        return RuntimeHealth::NotReady(format!(
            "container runtime network not ready: {}",
            describe("NetworkReady")
        ));
    }
    RuntimeHealth::Ready
}

/// The Node the kubelet registers (status included, as upstream creates it).
pub fn new_node(id: &Identity, health: &RuntimeHealth, now: &Time) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(id.name.clone()),
            labels: Some(labels(id)),
            annotations: Some(annotations()),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: (!id.taints.is_empty()).then(|| id.taints.clone()),
            ..Default::default()
        }),
        status: Some(desired_status(id, health, None, now)),
    }
}

/// The merge patch that adopts an existing Node of our name (upstream's reconciliation on
/// "already exists"): our default and configured labels and annotations.
pub fn adoption_patch(id: &Identity) -> serde_json::Value {
    json!({"metadata": {"labels": labels(id), "annotations": annotations()}})
}

/// The status the node reports now, given the one the API holds: the kubelet's
/// conditions updated in place (their transition time kept while their status holds),
/// others (NetworkUnavailable, …) kept.
pub fn desired_status(
    id: &Identity,
    health: &RuntimeHealth,
    observed: Option<&NodeStatus>,
    now: &Time,
) -> NodeStatus {
    let ready = match health {
        RuntimeHealth::Ready => (
            "True",
            "KubeletReady".to_string(),
            "kubelet is posting ready status".to_string(),
        ),
        RuntimeHealth::NotReady(m) => ("False", "KubeletNotReady".to_string(), m.clone()),
    };
    let wanted: [(&str, &str, String, String); 4] = [
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory".into(),
            "kubelet has sufficient memory available".into(),
        ),
        (
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure".into(),
            "kubelet has no disk pressure".into(),
        ),
        (
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID".into(),
            "kubelet has sufficient PID available".into(),
        ),
        ("Ready", ready.0, ready.1, ready.2),
    ];
    let mut conditions: Vec<NodeCondition> = observed
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    for (type_, status, reason, message) in wanted {
        let fresh = NodeCondition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: Some(reason),
            message: Some(message),
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
    let res = resources(&id.facts);
    let f = &id.facts;
    NodeStatus {
        capacity: Some(res.clone()),
        allocatable: Some(res),
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
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(id.port),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            machine_id: f.machine_id.clone(),
            system_uuid: f.system_uuid.clone(),
            boot_id: f.boot_id.clone(),
            kernel_version: f.kernel_version.clone(),
            os_image: f.os_image.clone(),
            container_runtime_version: id.runtime_version.clone(),
            kubelet_version: KUBELET_VERSION.into(),
            kube_proxy_version: String::new(),
            operating_system: "linux".into(),
            architecture: "amd64".into(),
            swap: None,
        }),
        // Images and volumes are not reported yet.
        ..observed.cloned().map(keep_others).unwrap_or_default()
    }
}

/// What of an observed status the kubelet does not own here and keeps as it is.
fn keep_others(s: NodeStatus) -> NodeStatus {
    NodeStatus {
        images: s.images,
        volumes_attached: s.volumes_attached,
        volumes_in_use: s.volumes_in_use,
        config: s.config,
        features: s.features,
        runtime_handlers: s.runtime_handlers,
        ..Default::default()
    }
}

type Reported<'a> = (
    Option<&'a BTreeMap<String, Quantity>>,
    Option<&'a BTreeMap<String, Quantity>>,
    Option<&'a Vec<NodeAddress>>,
    Option<&'a NodeDaemonEndpoints>,
    Option<&'a NodeSystemInfo>,
    Vec<(&'a str, &'a str, Option<&'a str>, Option<&'a str>)>,
);

fn reported(s: &NodeStatus) -> Reported<'_> {
    (
        s.capacity.as_ref(),
        s.allocatable.as_ref(),
        s.addresses.as_ref(),
        s.daemon_endpoints.as_ref(),
        s.node_info.as_ref(),
        s.conditions
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
    )
}

/// Whether `desired` says something the API's status does not (upstream's
/// `nodeStatusHasChanged`: heartbeat and transition times aside).
pub fn status_differs(observed: Option<&NodeStatus>, desired: &NodeStatus) -> bool {
    observed.is_none_or(|o| reported(o) != reported(desired))
}

fn owner(node: &str, uid: Option<&str>) -> Option<Vec<OwnerReference>> {
    uid.map(|uid| {
        vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: node.to_string(),
            uid: uid.to_string(),
            ..Default::default()
        }]
    })
}

/// `kube-node-lease/<node>`, held by the node, owned by the Node.
pub fn new_lease(node: &str, uid: Option<&str>, now: &MicroTime) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(node.to_string()),
            namespace: Some(LEASE_NAMESPACE.to_string()),
            owner_references: owner(node, uid),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.to_string()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            renew_time: Some(now.clone()),
            ..Default::default()
        }),
    }
}

/// `lease` renewed at `now` (its resourceVersion kept, so a concurrent writer makes the
/// update fail rather than be overwritten), owned by the Node with `uid` when known.
pub fn renewed_lease(lease: &Lease, node: &str, uid: Option<&str>, now: &MicroTime) -> Lease {
    let mut l = lease.clone();
    let spec = l.spec.get_or_insert_with(Default::default);
    spec.holder_identity = Some(node.to_string());
    spec.lease_duration_seconds = Some(LEASE_DURATION_SECONDS);
    spec.renew_time = Some(now.clone());
    if let Some(mine) = owner(node, uid) {
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

fn now() -> Time {
    Time(Timestamp::now())
}

/// Registers the Node, then keeps its Lease and status current until shutdown. The
/// Node as the API holds it is published on `node_tx` (its pod CIDR, its uid).
pub async fn run(
    client: kube::Client,
    cfg: Arc<Config>,
    cri: Cri,
    runtime_version: String,
    node_tx: watch::Sender<Option<Node>>,
    poke: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let id = Identity::new(&cfg, Facts::read(), runtime_version);
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);

    // Our Node as the API holds it, from a watch.
    let mut node_rx = node_tx.subscribe();
    let watch_task = {
        let nodes = nodes.clone();
        let name = id.name.clone();
        tokio::spawn(async move {
            use kube::runtime::WatchStreamExt;
            let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
            let mut events = watcher(nodes, cfg).default_backoff().boxed();
            while let Some(ev) = events.next().await {
                match ev {
                    Ok(watcher::Event::Apply(n)) | Ok(watcher::Event::InitApply(n)) => {
                        node_tx.send_replace(Some(n));
                    }
                    Ok(watcher::Event::Delete(_)) => {
                        node_tx.send_replace(None);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "node watch"),
                }
            }
        })
    };
    let _abort = AbortOnDrop(watch_task);

    let mut registered = false;
    let mut last_write: Option<Instant> = None;
    let mut next_lease = Instant::now();
    let mut next_status = Instant::now();
    loop {
        let health = match cri.status().await {
            Ok(c) => runtime_health(&c),
            Err(e) => RuntimeHealth::NotReady(format!("container runtime is down: {e}")),
        };
        if !registered {
            match register(&nodes, &id, &health).await {
                Ok(()) => {
                    registered = true;
                    tracing::info!(node = %id.name, "node registered");
                }
                Err(e) => tracing::warn!(error = %e, "node registration failed; retrying"),
            }
        }
        let observed = node_rx.borrow_and_update().clone();
        if registered && observed.is_none() && last_write.is_some() {
            // Deleted while we run: register again, as upstream does after a restart.
            registered = false;
            last_write = None;
            continue;
        }
        let uid = observed.as_ref().and_then(|n| n.metadata.uid.clone());
        // The lease is owned by the Node: it is written once the Node's uid is known.
        if registered && uid.is_some() && Instant::now() >= next_lease {
            match renew_lease(&leases, &id.name, uid.as_deref()).await {
                Ok(()) => next_lease = Instant::now() + LEASE_RENEW_INTERVAL,
                Err(e) => {
                    tracing::warn!(error = %e, "node lease renewal failed");
                    next_lease = Instant::now() + Duration::from_secs(1);
                }
            }
        }
        if registered && Instant::now() >= next_status {
            if let Some(n) = observed.as_ref() {
                let desired = desired_status(&id, &health, n.status.as_ref(), &now());
                let stale = last_write.is_none_or(|t| t.elapsed() >= STATUS_REPORT_INTERVAL);
                if stale || status_differs(n.status.as_ref(), &desired) {
                    let pp = PatchParams::default();
                    match nodes
                        .patch_status(&id.name, &pp, &Patch::Merge(json!({"status": desired})))
                        .await
                    {
                        Ok(_) => {
                            last_write = Some(Instant::now());
                            tracing::debug!(node = %id.name, "node status written");
                        }
                        Err(e) => tracing::warn!(error = %e, "node status update failed"),
                    }
                }
            }
            next_status = Instant::now() + STATUS_UPDATE_INTERVAL;
        }
        // Until the runtime's network is ready, look again every second.
        let wait = if health == RuntimeHealth::Ready && observed.is_some() {
            next_lease.min(next_status)
        } else {
            next_status = next_status.min(Instant::now() + Duration::from_secs(1));
            Instant::now() + Duration::from_secs(1)
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wait.into()) => {}
            _ = poke.notified() => next_status = Instant::now(),
            r = node_rx.changed(), if observed.is_none() => { let _ = r; }
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn register(nodes: &Api<Node>, id: &Identity, health: &RuntimeHealth) -> Result<(), Error> {
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match nodes.create(&pp, &new_node(id, health, &now())).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let pp = PatchParams::default();
            nodes
                .patch(&id.name, &pp, &Patch::Merge(adoption_patch(id)))
                .await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

async fn renew_lease(leases: &Api<Lease>, node: &str, uid: Option<&str>) -> Result<(), Error> {
    let now = MicroTime(Timestamp::now());
    match leases.get_opt(node).await? {
        None => {
            leases
                .create(&PostParams::default(), &new_lease(node, uid, &now))
                .await?;
        }
        Some(l) => {
            leases
                .replace(
                    node,
                    &PostParams::default(),
                    &renewed_lease(&l, node, uid, &now),
                )
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_cri::v1::RuntimeCondition;

    fn identity() -> Identity {
        Identity {
            name: "n1".into(),
            ip: "192.168.1.5".parse().unwrap(),
            port: 10250,
            labels: vec![("tier".into(), "edge".into())],
            taints: vec![],
            facts: Facts {
                machine_id: "m".into(),
                system_uuid: "u".into(),
                boot_id: "b".into(),
                kernel_version: "6.1.0".into(),
                os_image: "Debian GNU/Linux 12 (bookworm)".into(),
                cpus: 2,
                memory_kib: 1024,
            },
            runtime_version: "containerd://1.6.20".into(),
        }
    }

    fn t(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn machine_files() {
        assert_eq!(
            pretty_name("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            Some("Debian GNU/Linux 12 (bookworm)".into())
        );
        assert_eq!(pretty_name("NAME=x"), None);
        assert_eq!(
            mem_total_kib("MemTotal:       24567890 kB\nMemFree: 1 kB\n"),
            Some(24567890)
        );
        let f = Facts::read();
        assert!(f.cpus >= 1 && f.memory_kib > 0);
        assert_eq!(f.system_uuid.len(), 36, "{}", f.system_uuid);
    }

    #[test]
    fn node_object() {
        let id = identity();
        let v = serde_json::to_value(new_node(&id, &RuntimeHealth::Ready, &t(100))).unwrap();
        let cases: &[(&str, serde_json::Value)] = &[
            ("/metadata/name", json!("n1")),
            ("/metadata/labels/kubernetes.io~1hostname", json!("n1")),
            ("/metadata/labels/kubernetes.io~1os", json!("linux")),
            ("/metadata/labels/kubernetes.io~1arch", json!("amd64")),
            ("/metadata/labels/tier", json!("edge")),
            (
                "/status/capacity",
                json!({"cpu": "2", "memory": "1024Ki", "pods": "110"}),
            ),
            (
                "/status/allocatable",
                json!({"cpu": "2", "memory": "1024Ki", "pods": "110"}),
            ),
            (
                "/status/addresses",
                json!([{"type": "InternalIP", "address": "192.168.1.5"}, {"type": "Hostname", "address": "n1"}]),
            ),
            ("/status/daemonEndpoints/kubeletEndpoint/Port", json!(10250)),
            ("/status/nodeInfo/kubeletVersion", json!("v1.33.0+rkube")),
            (
                "/status/nodeInfo/containerRuntimeVersion",
                json!("containerd://1.6.20"),
            ),
            ("/status/nodeInfo/operatingSystem", json!("linux")),
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
        ];
        for (ptr, want) in cases {
            assert_eq!(v.pointer(ptr), Some(want), "{ptr}");
        }
    }

    #[test]
    fn readiness_from_the_runtime() {
        let c = |t: &str, ok: bool| RuntimeCondition {
            r#type: t.into(),
            status: ok,
            reason: if ok { "" } else { "NetworkPluginNotReady" }.into(),
            message: if ok { "" } else { "cni plugin not initialized" }.into(),
        };
        let cases: Vec<(Vec<RuntimeCondition>, Option<&str>)> = vec![
            (vec![c("RuntimeReady", true), c("NetworkReady", true)], None),
            (
                vec![c("RuntimeReady", true), c("NetworkReady", false)],
                Some("container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:cni plugin not initialized"),
            ),
            (vec![], Some("container runtime is down: RuntimeReady=false reason: message:the runtime did not report RuntimeReady")),
        ];
        for (conds, want) in cases {
            let h = runtime_health(&conds);
            match want {
                None => assert_eq!(h, RuntimeHealth::Ready),
                Some(m) => assert_eq!(h, RuntimeHealth::NotReady(m.into())),
            }
        }
        // Not ready → Ready=False/KubeletNotReady; back → transition time moves.
        let id = identity();
        let down = RuntimeHealth::NotReady("x".into());
        let first = desired_status(&id, &down, None, &t(10));
        let ready = |s: &NodeStatus| {
            s.conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "Ready")
                .cloned()
                .unwrap()
        };
        assert_eq!(ready(&first).status, "False");
        assert_eq!(ready(&first).reason.as_deref(), Some("KubeletNotReady"));
        let same = desired_status(&id, &down, Some(&first), &t(20));
        assert!(!status_differs(Some(&first), &same));
        assert_eq!(ready(&same).last_transition_time, Some(t(10)));
        let up = desired_status(&id, &RuntimeHealth::Ready, Some(&first), &t(30));
        assert!(status_differs(Some(&first), &up));
        assert_eq!(ready(&up).last_transition_time, Some(t(30)));
    }

    #[test]
    fn leases() {
        let now = MicroTime(Timestamp::from_second(50).unwrap());
        let l = new_lease("n1", Some("uid-1"), &now);
        let v = serde_json::to_value(&l).unwrap();
        assert_eq!(v["metadata"]["namespace"], "kube-node-lease");
        assert_eq!(v["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        assert_eq!(v["spec"]["holderIdentity"], "n1");
        assert_eq!(v["spec"]["leaseDurationSeconds"], 40);
        let later = MicroTime(Timestamp::from_second(60).unwrap());
        let mut stored = l.clone();
        stored.metadata.resource_version = Some("7".into());
        let r = renewed_lease(&stored, "n1", Some("uid-2"), &later);
        assert_eq!(r.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(r.spec.unwrap().renew_time, Some(later));
        assert_eq!(r.metadata.owner_references.unwrap()[0].uid, "uid-2");
    }
}
