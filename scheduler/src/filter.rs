//! The filters, in upstream's default order, with upstream's failure reasons and codes:
//! NodeUnschedulable, TaintToleration, NodeAffinity (with `nodeSelector`), NodePorts,
//! NodeResourcesFit, PodTopologySpread (`DoNotSchedule` constraints) and
//! InterPodAffinity. [`pre_filter`] computes once per pod what the filters share
//! (upstream's PreFilter); [`filter`] checks one node and returns the first failure.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::cache::Cache;
use crate::nodeinfo::{tolerated, AffinityTerm, CountMemo, NodeInfo, PodInfo, COUNT_MEMO_LIMIT};
use crate::selector::{Op, Requirement, Selector};

pub const ERR_NODE_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const ERR_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub const ERR_NODE_AFFINITY_CONFLICT: &str = "pod affinity terms conflict";
pub const ERR_NODE_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
pub const ERR_TOO_MANY_PODS: &str = "Too many pods";
pub const ERR_SPREAD: &str = "node(s) didn't match pod topology spread constraints";
pub const ERR_SPREAD_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
pub const ERR_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const ERR_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

/// The scheduler's plugins, for recording which ones rejected a pod (so that only a
/// cluster event that may help it moves it back to the active queue).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Plugin {
    NodeUnschedulable,
    TaintToleration,
    NodeAffinity,
    NodePorts,
    NodeResourcesFit,
    PodTopologySpread,
    InterPodAffinity,
}

/// A set of [`Plugin`]s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Plugins(u16);

impl Plugins {
    pub const ALL: Plugins = Plugins(u16::MAX);

    pub fn of(list: &[Plugin]) -> Plugins {
        let mut p = Plugins::default();
        for x in list {
            p.insert(*x);
        }
        p
    }

    pub fn insert(&mut self, p: Plugin) {
        self.0 |= 1 << (p as u16);
    }

    pub fn intersects(self, o: Plugins) -> bool {
        self.0 & o.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// `framework.Code` of a rejection: whether preempting pods on the node might help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Unschedulable,
    UnschedulableAndUnresolvable,
}

/// Why a node cannot take the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub plugin: Plugin,
    pub reasons: Vec<Cow<'static, str>>,
}

impl Status {
    fn new(code: Code, plugin: Plugin, reason: impl Into<Cow<'static, str>>) -> Status {
        Status {
            code,
            plugin,
            reasons: vec![reason.into()],
        }
    }
}

/// A topology spread constraint with its selector parsed (`topologySpreadConstraint`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constraint {
    pub max_skew: i64,
    pub topology_key: String,
    pub selector: Selector,
    pub min_domains: i64,
    pub honor_node_affinity: bool,
    pub honor_node_taints: bool,
}

pub const HOSTNAME: &str = "kubernetes.io/hostname";
pub const ZONE: &str = "topology.kubernetes.io/zone";

/// `filterTopologySpreadConstraints` of the pod's own constraints with this
/// `whenUnsatisfiable` (`matchLabelKeys` merged into the selector).
pub fn pod_spread_constraints(pod: &PodInfo, action: &str) -> Vec<Constraint> {
    let cs = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or_default();
    cs.iter()
        .filter(|c| c.when_unsatisfiable == action)
        .map(|c| {
            let mut selector = Selector::from_label_selector(c.label_selector.as_ref());
            let extra: Vec<Requirement> = c
                .match_label_keys
                .iter()
                .flatten()
                .filter_map(|k| {
                    let v = pod.labels().get(k)?;
                    Requirement::new(k, Op::In, vec![v.clone()])
                })
                .collect();
            selector.add(extra);
            Constraint {
                max_skew: i64::from(c.max_skew),
                topology_key: c.topology_key.clone(),
                selector,
                min_domains: c.min_domains.map(i64::from).unwrap_or(1),
                honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                honor_node_taints: c.node_taints_policy.as_deref() == Some("Honor"),
            }
        })
        .collect()
}

impl Constraint {
    /// `matchNodeInclusionPolicies`.
    pub fn includes(&self, pod: &PodInfo, node: &NodeInfo) -> bool {
        if self.honor_node_affinity && !pod.node_affinity.matches(node.labels(), &node.name) {
            return false;
        }
        if self.honor_node_taints && untolerated_taint(&node.taints, pod.tolerations()).is_some() {
            return false;
        }
        true
    }
}

/// The memo key of a (selector, namespace) pair for [`count_matching`].
pub fn count_key(selector: &Selector, ns: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    selector.hash(&mut h);
    ns.hash(&mut h);
    h.finish()
}

/// `countPodsMatchSelector`: pods of the namespace, not terminating, that match
/// (memoized per node under `key`, from [`count_key`]).
pub fn count_matching(node: &NodeInfo, selector: &Selector, ns: &str, key: u64) -> i64 {
    if let Some(m) = node.count_memo.borrow().get(&key) {
        return m.count;
    }
    let mut m = CountMemo {
        selector: selector.clone(),
        namespace: ns.to_string(),
        count: 0,
    };
    m.count = node.pods.iter().filter(|p| m.counts(p)).count() as i64;
    let n = m.count;
    let mut memo = node.count_memo.borrow_mut();
    if memo.len() >= COUNT_MEMO_LIMIT {
        memo.clear();
    }
    memo.insert(key, m);
    n
}

type TopologyCounts = HashMap<(String, String), i64>;

fn count_topology(m: &mut TopologyCounts, node: &NodeInfo, key: &str, by: i64) {
    if let Some(v) = node.labels().get(key) {
        *m.entry((key.to_string(), v.clone())).or_default() += by;
    }
}

/// What InterPodAffinity's PreFilter computes.
#[derive(Debug, Default)]
struct AffinityState {
    required_affinity: Vec<AffinityTerm>,
    required_anti_affinity: Vec<AffinityTerm>,
    /// Existing pods matching all of the incoming pod's affinity terms, per topology pair.
    affinity_counts: TopologyCounts,
    /// Existing pods matching one of its anti-affinity terms, per topology pair.
    anti_affinity_counts: TopologyCounts,
    /// Existing pods whose required anti-affinity terms match the incoming pod.
    existing_anti_affinity_counts: TopologyCounts,
    /// The incoming pod matches all of its own affinity terms.
    matches_own_terms: bool,
}

/// The incoming pod's namespace selectors resolved to namespace names
/// (`mergeAffinityTermNamespacesIfNotEmpty`).
pub fn merge_term_namespaces(cache: &Cache, term: &mut AffinityTerm) {
    if term.namespace_selector.is_empty() || term.namespace_selector == Selector::Nothing {
        return;
    }
    term.namespaces
        .extend(cache.namespaces_matching(&term.namespace_selector));
    term.namespace_selector = Selector::Nothing;
}

fn affinity_pre_filter(pod: &PodInfo, cache: &Cache) -> Option<AffinityState> {
    let ns_labels = cache.namespace_labels(pod.namespace());
    let mut s = AffinityState {
        required_affinity: pod.required_affinity.clone(),
        required_anti_affinity: pod.required_anti_affinity.clone(),
        ..Default::default()
    };
    for t in s
        .required_affinity
        .iter_mut()
        .chain(s.required_anti_affinity.iter_mut())
    {
        merge_term_namespaces(cache, t);
    }
    for node in cache.nodes().filter(|n| n.with_required_anti_affinity > 0) {
        for existing in &node.pods {
            for t in &existing.required_anti_affinity {
                if t.matches(pod, ns_labels) {
                    count_topology(
                        &mut s.existing_anti_affinity_counts,
                        node,
                        &t.topology_key,
                        1,
                    );
                }
            }
        }
    }
    if s.required_affinity.is_empty() && s.required_anti_affinity.is_empty() {
        return (!s.existing_anti_affinity_counts.is_empty()).then_some(s);
    }
    let none = crate::selector::no_labels();
    for node in cache.nodes() {
        for existing in &node.pods {
            if !s.required_affinity.is_empty()
                && s.required_affinity
                    .iter()
                    .all(|t| t.matches(existing, none))
            {
                for t in &s.required_affinity {
                    count_topology(&mut s.affinity_counts, node, &t.topology_key, 1);
                }
            }
            for t in &s.required_anti_affinity {
                if t.matches(existing, none) {
                    count_topology(&mut s.anti_affinity_counts, node, &t.topology_key, 1);
                }
            }
        }
    }
    s.matches_own_terms =
        !s.required_affinity.is_empty() && s.required_affinity.iter().all(|t| t.matches(pod, none));
    Some(s)
}

fn affinity_filter(s: &AffinityState, node: &NodeInfo) -> Option<Status> {
    let labels = node.labels();
    // satisfyPodAffinity
    let mut pods_exist = true;
    for t in &s.required_affinity {
        match labels.get(&t.topology_key) {
            Some(v) => {
                let n = s
                    .affinity_counts
                    .get(&(t.topology_key.clone(), v.clone()))
                    .copied()
                    .unwrap_or(0);
                if n <= 0 {
                    pods_exist = false;
                }
            }
            None => {
                return Some(Status::new(
                    Code::UnschedulableAndUnresolvable,
                    Plugin::InterPodAffinity,
                    ERR_AFFINITY,
                ))
            }
        }
    }
    // The first of a series of pods with affinity to each other may go anywhere its
    // terms' topologies exist, if no pod matches them yet.
    let first_of_series = s.affinity_counts.is_empty() && s.matches_own_terms;
    if !(pods_exist || first_of_series) {
        return Some(Status::new(
            Code::UnschedulableAndUnresolvable,
            Plugin::InterPodAffinity,
            ERR_AFFINITY,
        ));
    }
    // satisfyPodAntiAffinity
    if !s.anti_affinity_counts.is_empty() {
        for t in &s.required_anti_affinity {
            if let Some(v) = labels.get(&t.topology_key) {
                if s.anti_affinity_counts
                    .get(&(t.topology_key.clone(), v.clone()))
                    .is_some_and(|n| *n > 0)
                {
                    return Some(Status::new(
                        Code::Unschedulable,
                        Plugin::InterPodAffinity,
                        ERR_ANTI_AFFINITY,
                    ));
                }
            }
        }
    }
    // satisfyExistingPodsAntiAffinity
    if !s.existing_anti_affinity_counts.is_empty()
        && labels.iter().any(|(k, v)| {
            s.existing_anti_affinity_counts
                .get(&(k.clone(), v.clone()))
                .is_some_and(|n| *n > 0)
        })
    {
        return Some(Status::new(
            Code::Unschedulable,
            Plugin::InterPodAffinity,
            ERR_EXISTING_ANTI_AFFINITY,
        ));
    }
    None
}

/// What PodTopologySpread's PreFilter computes for `DoNotSchedule` constraints.
#[derive(Debug)]
struct SpreadState {
    constraints: Vec<Constraint>,
    /// Per constraint: topology value → matching pods.
    counts: Vec<HashMap<String, i64>>,
}

fn spread_pre_filter(pod: &PodInfo, cache: &Cache) -> Option<SpreadState> {
    let constraints = pod_spread_constraints(pod, "DoNotSchedule");
    if constraints.is_empty() {
        return None;
    }
    let mut counts = vec![HashMap::new(); constraints.len()];
    let keys: Vec<u64> = constraints
        .iter()
        .map(|c| count_key(&c.selector, pod.namespace()))
        .collect();
    for node in cache.nodes() {
        let labels = node.labels();
        if !constraints
            .iter()
            .all(|c| labels.contains_key(&c.topology_key))
        {
            continue;
        }
        // As upstream: one count per topology pair (the last constraint with the key
        // wins), added to every constraint with that key.
        let mut pairs: HashMap<&str, i64> = HashMap::new();
        for (c, key) in constraints.iter().zip(&keys) {
            if c.includes(pod, node) {
                let n = count_matching(node, &c.selector, pod.namespace(), *key);
                pairs.insert(c.topology_key.as_str(), n);
            }
        }
        for (key, n) in pairs {
            for (i, c) in constraints.iter().enumerate() {
                if c.topology_key == key {
                    *counts[i].entry(labels[key].clone()).or_default() += n;
                }
            }
        }
    }
    Some(SpreadState {
        constraints,
        counts,
    })
}

fn spread_filter(s: &SpreadState, pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    for (i, c) in s.constraints.iter().enumerate() {
        let Some(value) = node.labels().get(&c.topology_key) else {
            return Some(Status::new(
                Code::UnschedulableAndUnresolvable,
                Plugin::PodTopologySpread,
                ERR_SPREAD_LABEL,
            ));
        };
        let domains = &s.counts[i];
        let mut min = domains
            .values()
            .copied()
            .min()
            .unwrap_or(i64::from(i32::MAX));
        if (domains.len() as i64) < c.min_domains {
            min = 0;
        }
        let self_match = i64::from(c.selector.matches(pod.labels()));
        let n = domains.get(value).copied().unwrap_or(0);
        if n + self_match - min > c.max_skew {
            return Some(Status::new(
                Code::Unschedulable,
                Plugin::PodTopologySpread,
                ERR_SPREAD,
            ));
        }
    }
    None
}

/// Per pod, what the filters share.
#[derive(Debug)]
pub struct PreFilter {
    /// NodeAffinity's PreFilterResult: with `matchFields` on `metadata.name` in every
    /// term, only these nodes are considered.
    pub node_names: Option<HashSet<String>>,
    affinity: Option<AffinityState>,
    spread: Option<SpreadState>,
}

/// Upstream's PreFilter plugins. `Err` carries a rejection of the pod as a whole.
pub fn pre_filter(pod: &PodInfo, cache: &Cache) -> Result<PreFilter, Status> {
    let node_names = node_affinity_names(pod)?;
    Ok(PreFilter {
        node_names,
        affinity: affinity_pre_filter(pod, cache),
        spread: spread_pre_filter(pod, cache),
    })
}

/// NodeAffinity's PreFilter: the node names that `matchFields` allow, if every term
/// names some.
fn node_affinity_names(pod: &PodInfo) -> Result<Option<HashSet<String>>, Status> {
    let terms = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.as_slice())
        .unwrap_or_default();
    if terms.is_empty() {
        return Ok(None);
    }
    let mut names: HashSet<String> = HashSet::new();
    for t in terms {
        let mut term_names: Option<HashSet<String>> = None;
        for f in t.match_fields.iter().flatten() {
            if f.key == "metadata.name" && f.operator == "In" {
                let s: HashSet<String> = f.values.iter().flatten().cloned().collect();
                term_names = Some(match term_names {
                    None => s,
                    Some(prev) => prev.intersection(&s).cloned().collect(),
                });
            }
        }
        match term_names {
            None => return Ok(None),
            Some(s) => names.extend(s),
        }
    }
    if names.is_empty() {
        return Err(Status::new(
            Code::UnschedulableAndUnresolvable,
            Plugin::NodeAffinity,
            ERR_NODE_AFFINITY_CONFLICT,
        ));
    }
    Ok(Some(names))
}

/// `FindMatchingUntoleratedTaint` over `NoSchedule` and `NoExecute` taints.
pub fn untolerated_taint<'a>(taints: &'a [Taint], tolerations: &[Toleration]) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerated(tolerations, t))
}

pub fn node_unschedulable(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    if !node.unschedulable() {
        return None;
    }
    let taint = Taint {
        key: "node.kubernetes.io/unschedulable".to_string(),
        effect: "NoSchedule".to_string(),
        ..Default::default()
    };
    (!tolerated(pod.tolerations(), &taint)).then(|| {
        Status::new(
            Code::UnschedulableAndUnresolvable,
            Plugin::NodeUnschedulable,
            ERR_NODE_UNSCHEDULABLE,
        )
    })
}

pub fn taint_toleration(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    let t = untolerated_taint(&node.taints, pod.tolerations())?;
    Some(Status::new(
        Code::UnschedulableAndUnresolvable,
        Plugin::TaintToleration,
        format!(
            "node(s) had untolerated taint {{{}: {}}}",
            t.key,
            t.value.as_deref().unwrap_or("")
        ),
    ))
}

pub fn node_affinity(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    (!pod.node_affinity.matches(node.labels(), &node.name)).then(|| {
        Status::new(
            Code::UnschedulableAndUnresolvable,
            Plugin::NodeAffinity,
            ERR_NODE_AFFINITY,
        )
    })
}

pub fn node_ports(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    pod.host_ports
        .iter()
        .any(|p| node.used_ports.conflicts(p))
        .then(|| Status::new(Code::Unschedulable, Plugin::NodePorts, ERR_NODE_PORTS))
}

/// NodeResourcesFit: every insufficient resource is a reason; a request larger than the
/// node's whole allocatable makes the rejection unresolvable (preemption cannot help).
pub fn fit(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    let mut reasons: Vec<Cow<'static, str>> = Vec::new();
    let mut code = Code::Unschedulable;
    if node.pods.len() as i64 + 1 > node.allocatable.allowed_pods {
        reasons.push(ERR_TOO_MANY_PODS.into());
    }
    let (req, alloc, used) = (&pod.requests, &node.allocatable, &node.requested);
    let mut check = |want: i64, alloc: i64, used: i64, reason: Cow<'static, str>| {
        if want > 0 && want > alloc - used {
            reasons.push(reason);
            if want > alloc {
                code = Code::UnschedulableAndUnresolvable;
            }
        }
    };
    if !req.is_zero() {
        check(
            req.milli_cpu,
            alloc.milli_cpu,
            used.milli_cpu,
            "Insufficient cpu".into(),
        );
        check(
            req.memory,
            alloc.memory,
            used.memory,
            "Insufficient memory".into(),
        );
        check(
            req.ephemeral_storage,
            alloc.ephemeral_storage,
            used.ephemeral_storage,
            "Insufficient ephemeral-storage".into(),
        );
        for (name, want) in &req.scalar {
            check(
                *want,
                alloc.scalar.get(name).copied().unwrap_or(0),
                used.scalar.get(name).copied().unwrap_or(0),
                format!("Insufficient {name}").into(),
            );
        }
    }
    (!reasons.is_empty()).then_some(Status {
        code,
        plugin: Plugin::NodeResourcesFit,
        reasons,
    })
}

/// Runs the filters in upstream's order; the first failure is the node's status.
pub fn filter(pre: &PreFilter, pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    node_unschedulable(pod, node)
        .or_else(|| taint_toleration(pod, node))
        .or_else(|| node_affinity(pod, node))
        .or_else(|| node_ports(pod, node))
        .or_else(|| fit(pod, node))
        .or_else(|| {
            pre.spread
                .as_ref()
                .and_then(|s| spread_filter(s, pod, node))
        })
        .or_else(|| pre.affinity.as_ref().and_then(|s| affinity_filter(s, node)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{merge, node, pod_req};
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::{json, Value};
    use std::sync::Arc;

    /// Schedules `pod` against `nodes` (with `existing` bound pods) and checks each node's
    /// outcome: `""` when it fits, else the status's reasons joined with `; `, prefixed with
    /// `!` when unresolvable; `namespaces` are (name, labels).
    fn check(
        name: &str,
        pod: Pod,
        nodes: Vec<Node>,
        existing: Vec<Pod>,
        namespaces: Value,
        want: &[&str],
    ) {
        let mut cache = Cache::new();
        for n in nodes {
            cache.upsert_node(n);
        }
        for p in existing {
            cache.upsert_pod(Arc::new(p));
        }
        for (ns, labels) in namespaces.as_object().unwrap() {
            cache.set_namespace(ns, serde_json::from_value(labels.clone()).unwrap());
        }
        let pi = PodInfo::new(Arc::new(pod));
        let got: Vec<String> = match pre_filter(&pi, &cache) {
            Err(s) => vec![format!("prefilter: {}", s.reasons.join("; "))],
            Ok(pre) => cache
                .nodes()
                .map(|n| {
                    if pre
                        .node_names
                        .as_ref()
                        .is_some_and(|s| !s.contains(&n.name))
                    {
                        return "skipped".to_string();
                    }
                    match filter(&pre, &pi, n) {
                        None => String::new(),
                        Some(s) => format!(
                            "{}{}",
                            if s.code == Code::UnschedulableAndUnresolvable {
                                "!"
                            } else {
                                ""
                            },
                            s.reasons.join("; ")
                        ),
                    }
                })
                .collect(),
        };
        assert_eq!(got, want, "{name}");
    }

    fn n(name: &str, extra: Value) -> Node {
        node(name, "4", "8Gi", 110, extra)
    }

    fn p(extra: Value) -> Pod {
        pod_req("default", "incoming", "1", "1Gi", extra)
    }

    fn on(name: &str, node: &str, labels: Value, extra: Value) -> Pod {
        let mut e = json!({"metadata": {"labels": labels}, "spec": {"nodeName": node}});
        merge(&mut e, extra);
        pod_req("default", name, "100m", "", e)
    }

    fn zone(name: &str, z: &str) -> Node {
        n(name, json!({"metadata": {"labels": {ZONE: z}}}))
    }

    #[test]
    fn node_unschedulable_and_readiness() {
        let cordoned = || n("n1", json!({"spec": {"unschedulable": true}}));
        check(
            "cordoned",
            p(json!({})),
            vec![cordoned(), n("n2", json!({}))],
            vec![],
            json!({}),
            &["!node(s) were unschedulable", ""],
        );
        check(
            "tolerates unschedulable",
            p(
                json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}}),
            ),
            vec![cordoned()],
            vec![],
            json!({}),
            &[""],
        );
        let not_ready = n(
            "n1",
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
        );
        let unknown = n(
            "n2",
            json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
        );
        let no_conditions: Node = serde_json::from_value(json!({"metadata": {"name": "n3"}, "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}})).unwrap();
        check(
            "not ready",
            p(json!({})),
            vec![not_ready.clone(), unknown.clone(), no_conditions],
            vec![],
            json!({}),
            &[
                "!node(s) had untolerated taint {node.kubernetes.io/not-ready: }",
                "!node(s) had untolerated taint {node.kubernetes.io/unreachable: }",
                "!node(s) had untolerated taint {node.kubernetes.io/not-ready: }",
            ],
        );
        check(
            "tolerates not-ready",
            p(
                json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}, {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoSchedule"}]}}),
            ),
            vec![not_ready, unknown],
            vec![],
            json!({}),
            &["", ""],
        );
    }

    #[test]
    fn taints() {
        let nodes = || {
            vec![
                n(
                    "cp",
                    json!({"spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}}),
                ),
                n(
                    "gpu",
                    json!({"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoExecute"}]}}),
                ),
                n(
                    "soft",
                    json!({"spec": {"taints": [{"key": "soft", "value": "x", "effect": "PreferNoSchedule"}]}}),
                ),
            ]
        };
        check(
            "untolerated",
            p(json!({})),
            nodes(),
            vec![],
            json!({}),
            &[
                "!node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }",
                "!node(s) had untolerated taint {dedicated: gpu}",
                "",
            ],
        );
        check(
            "tolerated by Equal and Exists",
            p(
                json!({"spec": {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu"}, {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]}}),
            ),
            nodes(),
            vec![],
            json!({}),
            &["", "", ""],
        );
        check(
            "wrong value or effect",
            p(
                json!({"spec": {"tolerations": [{"key": "dedicated", "value": "cpu"}, {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoExecute"}]}}),
            ),
            nodes(),
            vec![],
            json!({}),
            &[
                "!node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }",
                "!node(s) had untolerated taint {dedicated: gpu}",
                "",
            ],
        );
        check(
            "tolerate everything",
            p(json!({"spec": {"tolerations": [{"operator": "Exists"}]}})),
            nodes(),
            vec![],
            json!({}),
            &["", "", ""],
        );
    }

    #[test]
    fn node_affinity_and_selector() {
        let nodes = || {
            vec![
                n(
                    "n1",
                    json!({"metadata": {"labels": {"disk": "ssd", "gen": "3"}}}),
                ),
                n(
                    "n2",
                    json!({"metadata": {"labels": {"disk": "hdd", "gen": "5"}}}),
                ),
                n("n3", json!({})),
            ]
        };
        let aff = |terms: Value| json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}});
        const NA: &str = "!node(s) didn't match Pod's node affinity/selector";
        check(
            "nodeSelector",
            p(json!({"spec": {"nodeSelector": {"disk": "ssd"}}})),
            nodes(),
            vec![],
            json!({}),
            &["", NA, NA],
        );
        check(
            "In",
            p(aff(
                json!([{"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd", "nvme"]}]}]),
            )),
            nodes(),
            vec![],
            json!({}),
            &[NA, "", NA],
        );
        check(
            "NotIn",
            p(aff(
                json!([{"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["hdd"]}]}]),
            )),
            nodes(),
            vec![],
            json!({}),
            &["", NA, ""],
        );
        check(
            "Exists",
            p(aff(
                json!([{"matchExpressions": [{"key": "disk", "operator": "Exists"}]}]),
            )),
            nodes(),
            vec![],
            json!({}),
            &["", "", NA],
        );
        check(
            "DoesNotExist",
            p(aff(
                json!([{"matchExpressions": [{"key": "disk", "operator": "DoesNotExist"}]}]),
            )),
            nodes(),
            vec![],
            json!({}),
            &[NA, NA, ""],
        );
        check(
            "Gt",
            p(aff(
                json!([{"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["4"]}]}]),
            )),
            nodes(),
            vec![],
            json!({}),
            &[NA, "", NA],
        );
        check(
            "Lt",
            p(aff(
                json!([{"matchExpressions": [{"key": "gen", "operator": "Lt", "values": ["4"]}]}]),
            )),
            nodes(),
            vec![],
            json!({}),
            &["", NA, NA],
        );
        check(
            "terms are ORed",
            p(aff(
                json!([{"matchExpressions": [{"key": "gen", "operator": "Lt", "values": ["4"]}]}, {"matchExpressions": [{"key": "disk", "operator": "DoesNotExist"}]}]),
            )),
            nodes(),
            vec![],
            json!({}),
            &["", NA, ""],
        );
        check(
            "selector and affinity both apply",
            p({
                let mut v =
                    aff(json!([{"matchExpressions": [{"key": "disk", "operator": "Exists"}]}]));
                merge(&mut v, json!({"spec": {"nodeSelector": {"gen": "5"}}}));
                v
            }),
            nodes(),
            vec![],
            json!({}),
            &[NA, "", NA],
        );
        check(
            "matchFields narrows the nodes",
            p(aff(
                json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]),
            )),
            nodes(),
            vec![],
            json!({}),
            &["skipped", "", "skipped"],
        );
        check(
            "matchFields with label expressions",
            p(aff(
                json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}], "matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]),
            )),
            nodes(),
            vec![],
            json!({}),
            &["skipped", NA, "skipped"],
        );
        check(
            "matchFields conflict",
            p(aff(
                json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}, {"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]),
            )),
            nodes(),
            vec![],
            json!({}),
            &["prefilter: pod affinity terms conflict"],
        );
    }

    #[test]
    fn host_ports() {
        let port = |ip: &str, proto: &str, port: i64| {
            let mut p = json!({"containerPort": 80, "hostPort": port});
            if !ip.is_empty() {
                p["hostIP"] = json!(ip);
            }
            if !proto.is_empty() {
                p["protocol"] = json!(proto);
            }
            json!({"spec": {"containers": [{"name": "c", "image": "i", "ports": [p]}]}})
        };
        let existing = || {
            vec![
                on("a", "n1", json!({}), port("", "", 8080)),
                on("b", "n2", json!({}), port("10.0.0.1", "UDP", 53)),
            ]
        };
        let nodes = || vec![n("n1", json!({})), n("n2", json!({}))];
        const P: &str = "node(s) didn't have free ports for the requested pod ports";
        check(
            "same port",
            p(port("", "", 8080)),
            nodes(),
            existing(),
            json!({}),
            &[P, ""],
        );
        check(
            "specific IP against wildcard",
            p(port("10.0.0.2", "TCP", 8080)),
            nodes(),
            existing(),
            json!({}),
            &[P, ""],
        );
        check(
            "other protocol",
            p(port("", "UDP", 8080)),
            nodes(),
            existing(),
            json!({}),
            &["", ""],
        );
        check(
            "wildcard against specific IP",
            p(port("", "UDP", 53)),
            nodes(),
            existing(),
            json!({}),
            &["", P],
        );
        check(
            "other specific IP",
            p(port("10.0.0.2", "UDP", 53)),
            nodes(),
            existing(),
            json!({}),
            &["", ""],
        );
        check(
            "no host port",
            p(
                json!({"spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 8080}]}]}}),
            ),
            nodes(),
            existing(),
            json!({}),
            &["", ""],
        );
    }

    #[test]
    fn resources() {
        let nodes = || {
            vec![
                node("n1", "2", "4Gi", 110, json!({})),
                node(
                    "n2",
                    "4",
                    "8Gi",
                    2,
                    json!({"status": {"allocatable": {"ephemeral-storage": "10Gi", "example.com/gpu": "1"}}}),
                ),
            ]
        };
        let existing = || {
            vec![
                pod_req(
                    "default",
                    "a",
                    "1500m",
                    "3Gi",
                    json!({"spec": {"nodeName": "n1"}}),
                ),
                pod_req(
                    "default",
                    "b",
                    "1",
                    "1Gi",
                    json!({"spec": {"nodeName": "n2"}}),
                ),
            ]
        };
        check(
            "fits",
            pod_req("default", "x", "500m", "1Gi", json!({})),
            nodes(),
            existing(),
            json!({}),
            &["", ""],
        );
        check(
            "cpu",
            pod_req("default", "x", "600m", "", json!({})),
            nodes(),
            existing(),
            json!({}),
            &["Insufficient cpu", ""],
        );
        check(
            "cpu and memory",
            pod_req("default", "x", "1", "2Gi", json!({})),
            nodes(),
            existing(),
            json!({}),
            &["Insufficient cpu; Insufficient memory", ""],
        );
        check(
            "larger than any node",
            pod_req("default", "x", "3", "", json!({})),
            nodes(),
            existing(),
            json!({}),
            &["!Insufficient cpu", ""],
        );
        check(
            "larger than every node",
            pod_req("default", "x", "5", "", json!({})),
            nodes(),
            existing(),
            json!({}),
            &["!Insufficient cpu", "!Insufficient cpu"],
        );
        check(
            "no requests always fit resources",
            pod_req("default", "x", "", "", json!({})),
            nodes(),
            existing(),
            json!({}),
            &["", ""],
        );
        let with = |r: Value| {
            pod_req(
                "default",
                "x",
                "",
                "",
                json!({"spec": {"containers": [{"name": "c", "image": "i", "resources": {"requests": r}}]}}),
            )
        };
        check(
            "ephemeral storage",
            with(json!({"ephemeral-storage": "1Gi"})),
            nodes(),
            existing(),
            json!({}),
            &["!Insufficient ephemeral-storage", ""],
        );
        check(
            "extended resource",
            with(json!({"example.com/gpu": "1"})),
            nodes(),
            existing(),
            json!({}),
            &["!Insufficient example.com/gpu", ""],
        );
        check(
            "extended resource over",
            with(json!({"example.com/gpu": "2"})),
            nodes(),
            existing(),
            json!({}),
            &[
                "!Insufficient example.com/gpu",
                "!Insufficient example.com/gpu",
            ],
        );
        check(
            "init container max",
            pod_req(
                "default",
                "x",
                "100m",
                "",
                json!({"spec": {"initContainers": [{"name": "i", "image": "i", "resources": {"requests": {"cpu": "1"}}}]}}),
            ),
            nodes(),
            existing(),
            json!({}),
            &["Insufficient cpu", ""],
        );
        check(
            "overhead",
            pod_req(
                "default",
                "x",
                "400m",
                "",
                json!({"spec": {"overhead": {"cpu": "200m"}}}),
            ),
            nodes(),
            existing(),
            json!({}),
            &["Insufficient cpu", ""],
        );
        let full = vec![
            pod_req(
                "default",
                "a",
                "1500m",
                "3Gi",
                json!({"spec": {"nodeName": "n1"}}),
            ),
            pod_req("default", "b", "", "", json!({"spec": {"nodeName": "n2"}})),
            pod_req("default", "c", "", "", json!({"spec": {"nodeName": "n2"}})),
        ];
        check(
            "pod count",
            pod_req("default", "x", "", "", json!({})),
            nodes(),
            full.clone(),
            json!({}),
            &["", "Too many pods"],
        );
        check(
            "pod count and cpu",
            pod_req("default", "x", "1", "", json!({})),
            nodes(),
            full,
            json!({}),
            &["Insufficient cpu", "Too many pods"],
        );
    }

    #[test]
    fn spread_constraints() {
        let tsc = |key: &str, skew: i64, when: &str, extra: Value| {
            let mut c = json!({"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when, "labelSelector": {"matchLabels": {"app": "web"}}});
            merge(&mut c, extra);
            json!({"metadata": {"labels": {"app": "web"}}, "spec": {"topologySpreadConstraints": [c]}})
        };
        let nodes = || {
            vec![
                zone("a1", "a"),
                zone("a2", "a"),
                zone("b1", "b"),
                n("x1", json!({})),
            ]
        };
        let web = |name: &str, node: &str| on(name, node, json!({"app": "web"}), json!({}));
        let existing = || {
            vec![
                web("w1", "a1"),
                web("w2", "a2"),
                on("o", "b1", json!({"app": "other"}), json!({})),
            ]
        };
        const S: &str = "node(s) didn't match pod topology spread constraints";
        const L: &str =
            "!node(s) didn't match pod topology spread constraints (missing required label)";
        check(
            "zone skew 1",
            p(tsc(ZONE, 1, "DoNotSchedule", json!({}))),
            nodes(),
            existing(),
            json!({}),
            &[S, S, "", L],
        );
        check(
            "zone skew 3",
            p(tsc(ZONE, 3, "DoNotSchedule", json!({}))),
            nodes(),
            existing(),
            json!({}),
            &["", "", "", L],
        );
        check(
            "ScheduleAnyway is no filter",
            p(tsc(ZONE, 1, "ScheduleAnyway", json!({}))),
            nodes(),
            existing(),
            json!({}),
            &["", "", "", ""],
        );
        check(
            "hostname",
            p(tsc(HOSTNAME, 1, "DoNotSchedule", json!({}))),
            nodes(),
            existing(),
            json!({}),
            &[S, S, "", ""],
        );
        check(
            "minDomains above the domain count",
            p(tsc(ZONE, 2, "DoNotSchedule", json!({"minDomains": 3}))),
            nodes(),
            existing(),
            json!({}),
            &[S, S, "", L],
        );
        check(
            "a node excluded by node affinity is no domain",
            p({
                let mut v = tsc(ZONE, 1, "DoNotSchedule", json!({}));
                merge(&mut v, json!({"spec": {"nodeSelector": {ZONE: "a"}}}));
                v
            }),
            nodes(),
            existing(),
            json!({}),
            &[
                "",
                "",
                "!node(s) didn't match Pod's node affinity/selector",
                "!node(s) didn't match Pod's node affinity/selector",
            ],
        );
        check(
            "matchLabelKeys narrows the selector",
            pod_req(
                "default",
                "incoming",
                "1",
                "1Gi",
                json!({"metadata": {"labels": {"app": "web", "rev": "2"}}, "spec": {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}, "matchLabelKeys": ["rev"]}]}}),
            ),
            nodes(),
            existing(),
            json!({}),
            &["", "", "", L],
        );
    }

    #[test]
    fn inter_pod_affinity() {
        let nodes = || {
            vec![
                zone("a1", "a"),
                zone("a2", "a"),
                zone("b1", "b"),
                n("x1", json!({})),
            ]
        };
        let term = |key: &str, labels: Value, extra: Value| {
            let mut t = json!({"topologyKey": key, "labelSelector": {"matchLabels": labels}});
            merge(&mut t, extra);
            t
        };
        let affinity = |kind: &str, t: Value| json!({"metadata": {"labels": {"app": "me"}}, "spec": {"affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [t]}}}});
        let existing = || {
            vec![
                on("db", "a1", json!({"app": "db"}), json!({})),
                on("cache", "b1", json!({"app": "cache"}), json!({})),
                pod_req(
                    "other",
                    "db2",
                    "",
                    "",
                    json!({"metadata": {"labels": {"app": "db"}}, "spec": {"nodeName": "b1"}}),
                ),
            ]
        };
        const A: &str = "!node(s) didn't match pod affinity rules";
        const AA: &str = "node(s) didn't match pod anti-affinity rules";
        const E: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
        check(
            "affinity by zone",
            p(affinity(
                "podAffinity",
                term(ZONE, json!({"app": "db"}), json!({})),
            )),
            nodes(),
            existing(),
            json!({}),
            &["", "", A, A],
        );
        check(
            "affinity by host",
            p(affinity(
                "podAffinity",
                term(HOSTNAME, json!({"app": "db"}), json!({})),
            )),
            nodes(),
            existing(),
            json!({}),
            &["", A, A, A],
        );
        check(
            "affinity in listed namespaces",
            p(affinity(
                "podAffinity",
                term(ZONE, json!({"app": "db"}), json!({"namespaces": ["other"]})),
            )),
            nodes(),
            existing(),
            json!({}),
            &[A, A, "", A],
        );
        check(
            "affinity by namespace selector",
            p(affinity(
                "podAffinity",
                term(
                    ZONE,
                    json!({"app": "db"}),
                    json!({"namespaceSelector": {"matchLabels": {"team": "x"}}}),
                ),
            )),
            nodes(),
            existing(),
            json!({"default": {}, "other": {"team": "x"}}),
            &[A, A, "", A],
        );
        check(
            "affinity with an empty namespace selector means all namespaces",
            p(affinity(
                "podAffinity",
                term(ZONE, json!({"app": "db"}), json!({"namespaceSelector": {}})),
            )),
            nodes(),
            existing(),
            json!({}),
            &["", "", "", A],
        );
        check(
            "first pod of a self-affine series",
            p(affinity(
                "podAffinity",
                term(ZONE, json!({"app": "me"}), json!({})),
            )),
            nodes(),
            existing(),
            json!({}),
            &["", "", "", A],
        );
        check(
            "no match and not self-affine",
            p(affinity(
                "podAffinity",
                term(ZONE, json!({"app": "nope"}), json!({})),
            )),
            nodes(),
            existing(),
            json!({}),
            &[A, A, A, A],
        );
        check(
            "anti-affinity by zone",
            p(affinity(
                "podAntiAffinity",
                term(ZONE, json!({"app": "db"}), json!({})),
            )),
            nodes(),
            existing(),
            json!({}),
            &[AA, AA, "", ""],
        );
        check(
            "anti-affinity by host",
            p(affinity(
                "podAntiAffinity",
                term(HOSTNAME, json!({"app": "cache"}), json!({})),
            )),
            nodes(),
            existing(),
            json!({}),
            &["", "", AA, ""],
        );
        let guard = on(
            "guard",
            "a2",
            json!({"app": "guard"}),
            json!({"spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(ZONE, json!({"app": "me"}), json!({}))]}}}}),
        );
        check(
            "existing pod's anti-affinity",
            p(json!({"metadata": {"labels": {"app": "me"}}})),
            nodes(),
            vec![guard.clone()],
            json!({}),
            &[E, E, "", ""],
        );
        check(
            "existing anti-affinity does not match",
            p(json!({"metadata": {"labels": {"app": "you"}}})),
            nodes(),
            vec![guard],
            json!({}),
            &["", "", "", ""],
        );
    }
}
