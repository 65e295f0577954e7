//! What the scheduler knows of a pod and of a node, precomputed once per object (as
//! upstream's `framework.PodInfo` and `framework.NodeInfo`): requests, host ports,
//! affinity terms, and per node the pods on it and the sums of their requests.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Container, Node, Pod, PodAffinityTerm, PodSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::quantity;
use crate::selector::{no_labels, Labels, RequiredNodeAffinity, Selector};

/// Upstream's `schedutil.DefaultMilliCPURequest`: what a container without a cpu request
/// counts for when scoring.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Upstream's `schedutil.DefaultMemoryRequest` (200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// `framework.Resource`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub allowed_pods: i64,
    /// Extended resources, hugepages and other prefixed resources.
    pub scalar: BTreeMap<String, i64>,
}

/// `IsScalarResourceName`: extended (`domain/name`), `hugepages-*`, prefixed native
/// (`kubernetes.io/…`) and attachable volume resources.
pub fn is_scalar(name: &str) -> bool {
    name.contains('/') || name.starts_with("hugepages-") || name.starts_with("attachable-volumes-")
}

impl Resources {
    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Resources {
        let mut r = Resources::default();
        for (name, q) in list.into_iter().flatten() {
            r.set(name, &q.0);
        }
        r
    }

    fn set(&mut self, name: &str, q: &str) {
        match name {
            "cpu" => self.milli_cpu = quantity::milli_value(q).unwrap_or(0),
            "memory" => self.memory = quantity::value(q).unwrap_or(0),
            "ephemeral-storage" => self.ephemeral_storage = quantity::value(q).unwrap_or(0),
            "pods" => self.allowed_pods = quantity::value(q).unwrap_or(0),
            n if is_scalar(n) => {
                self.scalar
                    .insert(n.to_string(), quantity::value(q).unwrap_or(0));
            }
            _ => {}
        }
    }

    pub fn add(&mut self, o: &Resources) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral_storage += o.ephemeral_storage;
        self.allowed_pods += o.allowed_pods;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    pub fn sub(&mut self, o: &Resources) {
        self.milli_cpu -= o.milli_cpu;
        self.memory -= o.memory;
        self.ephemeral_storage -= o.ephemeral_storage;
        self.allowed_pods -= o.allowed_pods;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    pub fn max(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        self.allowed_pods = self.allowed_pods.max(o.allowed_pods);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }

    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|v| *v == 0)
    }
}

/// A container's requests; with `non_missing`, an absent cpu or memory request counts as
/// upstream's defaults (`NonMissingContainerRequests`).
fn container_requests(c: &Container, non_missing: bool) -> Resources {
    let list = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let mut r = Resources::from_list(list);
    if non_missing {
        if !list.is_some_and(|l| l.contains_key("cpu")) {
            r.milli_cpu += DEFAULT_MILLI_CPU_REQUEST;
        }
        if !list.is_some_and(|l| l.contains_key("memory")) {
            r.memory += DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// `resourcehelper.PodRequests`: the sum of the containers, at least each init container
/// plus the sidecars started before it (sidecars — restartable init containers — also add
/// to the sum), plus the pod overhead.
pub fn pod_requests(pod: &Pod, non_missing: bool) -> Resources {
    let mut reqs = Resources::default();
    let Some(spec) = &pod.spec else {
        return reqs;
    };
    for c in &spec.containers {
        reqs.add(&container_requests(c, non_missing));
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, non_missing);
        let during = if c.restart_policy.as_deref() == Some("Always") {
            reqs.add(&r);
            sidecars.add(&r);
            sidecars.clone()
        } else {
            let mut t = r;
            t.add(&sidecars);
            t
        };
        init_max.max(&during);
    }
    reqs.max(&init_max);
    if let Some(o) = &spec.overhead {
        reqs.add(&Resources::from_list(Some(o)));
    }
    reqs
}

/// A host port a pod uses: (host IP, protocol, port), sanitized as `HostPortInfo` does
/// (`0.0.0.0` and `TCP` when empty).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

/// `schedutil.GetHostPorts`: the ports of the init containers and containers that have a
/// host port.
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.unwrap_or(0) > 0)
        .map(|p| HostPort {
            ip: match p.host_ip.as_deref() {
                None | Some("") => "0.0.0.0".to_string(),
                Some(ip) => ip.to_string(),
            },
            protocol: match p.protocol.as_deref() {
                None | Some("") => "TCP".to_string(),
                Some(p) => p.to_string(),
            },
            port: p.host_port.unwrap_or(0),
        })
        .collect()
}

/// The host ports in use on a node: IP → (protocol, port) → how many pods hold it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsedPorts(HashMap<String, HashMap<(String, i32), u32>>);

impl UsedPorts {
    pub fn add(&mut self, p: &HostPort) {
        *self
            .0
            .entry(p.ip.clone())
            .or_default()
            .entry((p.protocol.clone(), p.port))
            .or_default() += 1;
    }

    pub fn remove(&mut self, p: &HostPort) {
        if let Some(m) = self.0.get_mut(&p.ip) {
            let k = (p.protocol.clone(), p.port);
            if let Some(n) = m.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&k);
                }
            }
            if m.is_empty() {
                self.0.remove(&p.ip);
            }
        }
    }

    /// `HostPortInfo.CheckConflict`: `0.0.0.0` conflicts with the port on any IP; another
    /// IP with the same IP or `0.0.0.0`.
    pub fn conflicts(&self, p: &HostPort) -> bool {
        if p.port <= 0 {
            return false;
        }
        let k = (p.protocol.clone(), p.port);
        if p.ip == "0.0.0.0" {
            return self.0.values().any(|m| m.contains_key(&k));
        }
        ["0.0.0.0", p.ip.as_str()]
            .iter()
            .any(|ip| self.0.get(*ip).is_some_and(|m| m.contains_key(&k)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `framework.AffinityTerm`: a pod (anti-)affinity term with its selectors parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AffinityTerm {
    pub namespaces: HashSet<String>,
    pub selector: Selector,
    pub topology_key: String,
    pub namespace_selector: Selector,
}

impl AffinityTerm {
    /// `newAffinityTerm`: without namespaces and namespace selector, the term is about the
    /// pod's own namespace.
    pub fn new(pod_namespace: &str, t: &PodAffinityTerm) -> AffinityTerm {
        let mut namespaces: HashSet<String> = t.namespaces.iter().flatten().cloned().collect();
        if namespaces.is_empty() && t.namespace_selector.is_none() {
            namespaces.insert(pod_namespace.to_string());
        }
        AffinityTerm {
            namespaces,
            selector: Selector::from_label_selector(t.label_selector.as_ref()),
            topology_key: t.topology_key.clone(),
            namespace_selector: Selector::from_label_selector(t.namespace_selector.as_ref()),
        }
    }

    /// `AffinityTerm.Matches`: the pod is in one of the term's namespaces (or one whose
    /// labels `ns_labels` match the namespace selector) and its labels match.
    pub fn matches(&self, pod: &PodInfo, ns_labels: &Labels) -> bool {
        (self.namespaces.contains(pod.namespace()) || self.namespace_selector.matches(ns_labels))
            && self.selector.matches(pod.labels())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightedAffinityTerm {
    pub weight: i64,
    pub term: AffinityTerm,
}

/// Everything the filters and scores need of one pod, computed once.
#[derive(Debug)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    /// `namespace/name`.
    pub key: String,
    pub uid: String,
    /// Requests as the fit filter counts them (`Requested`).
    pub requests: Resources,
    /// Cpu and memory requests with upstream's defaults for missing ones (`NonZeroRequested`).
    pub non_zero_cpu: i64,
    pub non_zero_memory: i64,
    pub host_ports: Vec<HostPort>,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<WeightedAffinityTerm>,
    pub preferred_anti_affinity: Vec<WeightedAffinityTerm>,
    pub node_affinity: RequiredNodeAffinity,
    pub priority: i32,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let affinity = spec.and_then(|s| s.affinity.as_ref());
        let pa = affinity.and_then(|a| a.pod_affinity.as_ref());
        let paa = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let terms = |ts: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            ts.into_iter()
                .flatten()
                .map(|t| AffinityTerm::new(&ns, t))
                .collect()
        };
        let weighted = |ts: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| {
            ts.into_iter()
                .flatten()
                .map(|t| WeightedAffinityTerm {
                    weight: i64::from(t.weight),
                    term: AffinityTerm::new(&ns, &t.pod_affinity_term),
                })
                .collect::<Vec<_>>()
        };
        let non_zero = pod_requests(&pod, true);
        let na = affinity.and_then(|a| a.node_affinity.as_ref());
        PodInfo {
            key: format!("{ns}/{name}"),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            requests: pod_requests(&pod, false),
            non_zero_cpu: non_zero.milli_cpu,
            non_zero_memory: non_zero.memory,
            host_ports: host_ports(&pod),
            required_affinity: terms(pa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            required_anti_affinity: terms(paa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_affinity: weighted(pa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_anti_affinity: weighted(paa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            node_affinity: RequiredNodeAffinity::new(
                spec.and_then(|s| s.node_selector.as_ref()),
                na.and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
            ),
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            pod,
        }
    }

    /// The info of a pod bound to a node, as the cache holds it for as long as the pod
    /// lives: what the filters and scores read of other pods is computed above; of the
    /// pod itself only its metadata (no annotations), node name and tolerations are kept.
    pub fn assigned(pod: Arc<Pod>) -> PodInfo {
        let mut info = PodInfo::new(pod);
        let skeleton = Pod {
            metadata: ObjectMeta {
                annotations: None,
                ..info.pod.metadata.clone()
            },
            spec: Some(PodSpec {
                node_name: Some(info.node_name().to_string()),
                tolerations: Some(info.tolerations().to_vec()).filter(|t| !t.is_empty()),
                ..Default::default()
            }),
            status: None,
        };
        info.pod = Arc::new(skeleton);
        info
    }

    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or("")
    }

    pub fn labels(&self) -> &Labels {
        self.pod.metadata.labels.as_ref().unwrap_or(no_labels())
    }

    pub fn tolerations(&self) -> &[Toleration] {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default()
    }

    pub fn node_name(&self) -> &str {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or("")
    }

    pub fn terminating(&self) -> bool {
        self.pod.metadata.deletion_timestamp.is_some()
    }

    /// Has any pod affinity or anti-affinity term (upstream's `PodsWithAffinity`).
    pub fn has_affinity(&self) -> bool {
        !(self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }
}

/// `v1.Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if e != taint.effect {
            return false;
        }
    }
    if let Some(k) = t.key.as_deref().filter(|k| !k.is_empty()) {
        if k != taint.key {
            return false;
        }
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The taint the node lifecycle controller would put on a node whose `Ready` condition is
/// not `True` (`node.kubernetes.io/not-ready`, or `unreachable` when `Unknown`), so that
/// such a node is filtered exactly as upstream filters it, tolerations included.
pub fn readiness_taint(node: &Node) -> Option<Taint> {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.as_str());
    let key = match ready {
        Some("True") => return None,
        Some("Unknown") => "node.kubernetes.io/unreachable",
        _ => "node.kubernetes.io/not-ready",
    };
    Some(Taint {
        key: key.to_string(),
        effect: "NoSchedule".to_string(),
        ..Default::default()
    })
}

/// One node and the pods assigned (or assumed) to it.
#[derive(Debug, Default)]
pub struct NodeInfo {
    pub name: String,
    /// `None` while pods name a node the scheduler has not seen (upstream's "imaginary
    /// node"); such a node is never a candidate.
    pub node: Option<Arc<Node>>,
    /// The node's taints plus the readiness taint, if any.
    pub taints: Vec<Taint>,
    pub allocatable: Resources,
    pub requested: Resources,
    pub non_zero_cpu: i64,
    pub non_zero_memory: i64,
    pub pods: Vec<Arc<PodInfo>>,
    pub used_ports: UsedPorts,
    /// How many of the pods have any (anti-)affinity term, and required anti-affinity.
    pub with_affinity: usize,
    pub with_required_anti_affinity: usize,
    /// Counts of matching pods, by [`crate::filter::count_key`]: pods of one controller
    /// are scheduled in a row, and spreading them would otherwise scan every pod of every
    /// node for each of them. Kept up to date as pods come and go (a pod added to the
    /// node is counted into each entry it matches), so binding one pod costs one check
    /// per entry instead of a rescan of the node's pods per entry.
    pub(crate) count_memo: RefCell<HashMap<u64, CountMemo>>,
}

/// At most this many (selector, namespace) counts are kept per node; past it the memo
/// starts over, so selectors of controllers long gone do not cost every later pod a check.
pub(crate) const COUNT_MEMO_LIMIT: usize = 32;

/// One memoized count of [`crate::filter::count_matching`].
#[derive(Debug)]
pub(crate) struct CountMemo {
    pub selector: Selector,
    pub namespace: String,
    pub count: i64,
}

impl CountMemo {
    /// `countPodsMatchSelector`'s test for one pod.
    pub fn counts(&self, p: &PodInfo) -> bool {
        !p.terminating() && p.namespace() == self.namespace && self.selector.matches(p.labels())
    }

    fn update(memo: &mut HashMap<u64, CountMemo>, p: &PodInfo, by: i64) {
        for m in memo.values_mut() {
            if m.counts(p) {
                m.count += by;
            }
        }
    }
}

impl NodeInfo {
    pub fn new(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// Sets (or replaces) the node object.
    pub fn set_node(&mut self, node: Arc<Node>) {
        let status = node.status.as_ref();
        let alloc = status
            .and_then(|s| s.allocatable.as_ref())
            .or_else(|| status.and_then(|s| s.capacity.as_ref()));
        self.allocatable = Resources::from_list(alloc);
        let mut taints: Vec<Taint> = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        if let Some(t) = readiness_taint(&node) {
            if !taints
                .iter()
                .any(|x| x.key == t.key && x.effect == t.effect)
            {
                taints.push(t);
            }
        }
        self.taints = taints;
        self.node = Some(node);
    }

    pub fn labels(&self) -> &Labels {
        self.node
            .as_ref()
            .and_then(|n| n.metadata.labels.as_ref())
            .unwrap_or(no_labels())
    }

    pub fn unschedulable(&self) -> bool {
        self.node
            .as_ref()
            .and_then(|n| n.spec.as_ref())
            .and_then(|s| s.unschedulable)
            .unwrap_or(false)
    }

    pub fn add_pod(&mut self, p: Arc<PodInfo>) {
        CountMemo::update(self.count_memo.get_mut(), &p, 1);
        self.requested.add(&p.requests);
        self.non_zero_cpu += p.non_zero_cpu;
        self.non_zero_memory += p.non_zero_memory;
        for hp in &p.host_ports {
            self.used_ports.add(hp);
        }
        if p.has_affinity() {
            self.with_affinity += 1;
        }
        if !p.required_anti_affinity.is_empty() {
            self.with_required_anti_affinity += 1;
        }
        self.pods.push(p);
    }

    /// Removes the pod with this key; returns it if it was there.
    pub fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.key == key)?;
        let p = self.pods.swap_remove(i);
        CountMemo::update(self.count_memo.get_mut(), &p, -1);
        self.requested.sub(&p.requests);
        self.non_zero_cpu -= p.non_zero_cpu;
        self.non_zero_memory -= p.non_zero_memory;
        for hp in &p.host_ports {
            self.used_ports.remove(hp);
        }
        if p.has_affinity() {
            self.with_affinity -= 1;
        }
        if !p.required_anti_affinity.is_empty() {
            self.with_required_anti_affinity -= 1;
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{node, pod};
    use serde_json::{json, Value};

    #[test]
    fn matching_counts_follow_the_pods_added_and_removed() {
        use crate::filter::{count_key, count_matching};
        let labelled = |ns: &str, name: &str, app: &str, extra: Value| {
            let mut v = json!({"metadata": {"labels": {"app": app}}});
            crate::testutil::merge(&mut v, extra);
            Arc::new(PodInfo::new(Arc::new(crate::testutil::pod_req(
                ns, name, "", "", v,
            ))))
        };
        let sel = Selector::from_map(&[("app".to_string(), "a".to_string())].into());
        let key = count_key(&sel, "ns");
        let mut n = NodeInfo::new("n1");
        n.add_pod(labelled("ns", "p1", "a", json!({})));
        assert_eq!(count_matching(&n, &sel, "ns", key), 1);
        // Counted into the memo as they come: another match, another namespace, another
        // app, and a terminating match (not counted, as countPodsMatchSelector).
        n.add_pod(labelled("ns", "p2", "a", json!({})));
        n.add_pod(labelled("other", "p3", "a", json!({})));
        n.add_pod(labelled("ns", "p4", "b", json!({})));
        let gone = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}});
        n.add_pod(labelled("ns", "p5", "a", gone));
        assert_eq!(count_matching(&n, &sel, "ns", key), 2);
        n.remove_pod("ns/p1");
        n.remove_pod("ns/p4");
        n.remove_pod("ns/p5");
        assert_eq!(count_matching(&n, &sel, "ns", key), 1);
        // A fresh count of the same pods agrees with the kept one.
        n.count_memo.get_mut().clear();
        assert_eq!(count_matching(&n, &sel, "ns", key), 1);
        // Past the limit the memo starts over instead of growing.
        for i in 0..COUNT_MEMO_LIMIT + 1 {
            let s = Selector::from_map(&[("app".to_string(), format!("x{i}"))].into());
            count_matching(&n, &s, "ns", count_key(&s, "ns"));
        }
        assert!(n.count_memo.borrow().len() <= COUNT_MEMO_LIMIT);
    }

    #[test]
    fn an_assigned_pods_info_keeps_what_others_read_and_drops_the_rest() {
        let p = crate::testutil::pod_req(
            "ns",
            "p",
            "500m",
            "1Gi",
            json!({
                "metadata": {"labels": {"app": "a"}, "annotations": {"big": "x"}},
                "spec": {"nodeName": "n1",
                    "tolerations": [{"key": "k", "operator": "Exists"}],
                    "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": {"matchLabels": {"app": "a"}}, "topologyKey": "kubernetes.io/hostname"}]}},
                    "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80, "hostPort": 80}],
                        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]},
                "status": {"phase": "Running"},
            }),
        );
        let full = PodInfo::new(Arc::new(p.clone()));
        let kept = PodInfo::assigned(Arc::new(p));
        assert_eq!(kept.requests, full.requests);
        assert_eq!(kept.host_ports, full.host_ports);
        assert_eq!(kept.required_anti_affinity.len(), 1);
        assert_eq!((kept.key.as_str(), kept.uid.as_str()), ("ns/p", "uid-ns-p"));
        assert_eq!(kept.labels(), full.labels());
        assert_eq!(kept.node_name(), "n1");
        assert_eq!(kept.tolerations().len(), 1);
        assert!(kept.pod.status.is_none() && kept.pod.metadata.annotations.is_none());
        assert!(kept.pod.spec.as_ref().unwrap().containers.is_empty());
    }

    /// (pod spec, requests, non-zero cpu, non-zero memory)
    fn check(cases: &[(Value, Resources, i64, i64)]) {
        for (spec, want, nz_cpu, nz_mem) in cases {
            let p = PodInfo::new(Arc::new(pod(
                json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec}),
            )));
            assert_eq!(p.requests, *want, "requests of {spec}");
            assert_eq!(
                (p.non_zero_cpu, p.non_zero_memory),
                (*nz_cpu, *nz_mem),
                "non-zero requests of {spec}"
            );
        }
    }

    fn res(cpu: i64, mem: i64) -> Resources {
        Resources {
            milli_cpu: cpu,
            memory: mem,
            ..Default::default()
        }
    }

    fn c(cpu: &str, mem: &str) -> Value {
        let mut r = serde_json::Map::new();
        if !cpu.is_empty() {
            r.insert("cpu".into(), json!(cpu));
        }
        if !mem.is_empty() {
            r.insert("memory".into(), json!(mem));
        }
        json!({"name": "c", "image": "i", "resources": {"requests": r}})
    }

    #[test]
    fn pod_requests_table() {
        let sidecar = |cpu: &str, mem: &str| {
            let mut v = c(cpu, mem);
            v["restartPolicy"] = json!("Always");
            v
        };
        check(&[
            (
                json!({"containers": [{"name": "c", "image": "i"}]}),
                res(0, 0),
                100,
                DEFAULT_MEMORY_REQUEST,
            ),
            (
                json!({"containers": [c("1", "1Gi"), c("500m", "")]}),
                res(1500, 1 << 30),
                1500,
                (1 << 30) + DEFAULT_MEMORY_REQUEST,
            ),
            (json!({"containers": [c("0", "0")]}), res(0, 0), 0, 0),
            // Init containers: the max of each, against the sum of the containers.
            (
                json!({"initContainers": [c("2", "1G"), c("2", "3G")], "containers": [c("2", "1G"), c("1", "1G")]}),
                res(3000, 3_000_000_000),
                3000,
                3_000_000_000,
            ),
            // A sidecar adds to the sum and to every later init container.
            (
                json!({"initContainers": [sidecar("1", "1Gi"), c("2", "1Gi")], "containers": [c("1", "1Gi")]}),
                res(3000, 2 << 30),
                3000,
                2 << 30,
            ),
            // Overhead is added.
            (
                json!({"containers": [c("1", "1Gi")], "overhead": {"cpu": "250m", "memory": "120Mi"}}),
                res(1250, (1 << 30) + 120 * 1024 * 1024),
                1250,
                (1 << 30) + 120 * 1024 * 1024,
            ),
            (
                json!({"containers": [{"name": "c", "image": "i", "resources": {"requests": {"ephemeral-storage": "1Gi", "example.com/gpu": "2", "hugepages-2Mi": "4Mi", "unknown": "5"}}}]}),
                Resources {
                    ephemeral_storage: 1 << 30,
                    scalar: [
                        ("example.com/gpu".to_string(), 2),
                        ("hugepages-2Mi".to_string(), 4 << 20),
                    ]
                    .into(),
                    ..Default::default()
                },
                100,
                DEFAULT_MEMORY_REQUEST,
            ),
        ]);
    }

    #[test]
    fn node_info_accounting() {
        let mut ni = NodeInfo::new("n1");
        ni.set_node(Arc::new(node("n1", "4", "8Gi", 110, json!({}))));
        assert_eq!(
            ni.allocatable,
            Resources {
                milli_cpu: 4000,
                memory: 8 << 30,
                allowed_pods: 110,
                ..Default::default()
            }
        );
        assert!(ni.taints.is_empty());
        let p = Arc::new(PodInfo::new(Arc::new(pod(
            json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}}),
        ))));
        ni.add_pod(p);
        assert_eq!(
            (ni.non_zero_cpu, ni.non_zero_memory, ni.pods.len()),
            (100, DEFAULT_MEMORY_REQUEST, 1)
        );
        assert!(ni.used_ports.conflicts(&HostPort {
            ip: "10.0.0.1".into(),
            protocol: "TCP".into(),
            port: 8080
        }));
        assert!(ni.remove_pod("ns/p").is_some());
        assert_eq!(
            (ni.non_zero_cpu, ni.non_zero_memory, ni.pods.len()),
            (0, 0, 0)
        );
        assert!(ni.used_ports.is_empty());
        assert!(ni.remove_pod("ns/p").is_none());
    }
}
