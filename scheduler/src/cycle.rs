//! One scheduling cycle, as upstream's `schedulePod`: PreFilter, Filter over (enough of)
//! the nodes, then Score and pick the best; or the `FitError` message that explains why
//! no node fits, with the PostFilter (preemption) verdict appended as upstream does.
//!
//! rkube does not preempt: a node that failed only for reasons preemption could resolve
//! is reported as upstream reports a node without lower-priority pods
//! ("No preemption victims found for incoming pod").

use std::collections::HashMap;

use crate::cache::Cache;
use crate::filter::{self, Code, Plugin, Plugins, Status};
use crate::nodeinfo::{NodeInfo, PodInfo};
use crate::score;

pub const NO_NODES: &str = "no nodes available to schedule pods";
pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";
pub const PREEMPT_NEVER: &str = "not eligible due to preemptionPolicy=Never.";

/// Upstream's `minFeasibleNodesToFind` and `minFeasibleNodesPercentageToFind`.
const MIN_FEASIBLE_NODES: usize = 100;
const MIN_FEASIBLE_PERCENT: usize = 5;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Bind the pod to this node.
    Bind(String),
    /// No node fits: the message for the pod's condition and event, and the plugins
    /// that rejected it (the cluster events that may help it).
    Unschedulable { message: String, plugins: Plugins },
}

/// A small xorshift generator, for breaking ties between equally scored nodes.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % n
    }
}

/// What carries from one cycle to the next: where the node search starts (upstream
/// rotates it so that all nodes get a turn) and the tie-breaking generator.
#[derive(Clone, Debug)]
pub struct CycleState {
    pub next_start: usize,
    pub rng: Rng,
}

impl CycleState {
    pub fn new(seed: u64) -> CycleState {
        CycleState {
            next_start: 0,
            rng: Rng::new(seed),
        }
    }
}

/// `numFeasibleNodesToFind` with the adaptive default percentage.
pub fn num_feasible_nodes_to_find(n: usize) -> usize {
    if n < MIN_FEASIBLE_NODES {
        return n;
    }
    let percent = 50usize.saturating_sub(n / 125).max(MIN_FEASIBLE_PERCENT);
    (n * percent / 100).max(MIN_FEASIBLE_NODES)
}

/// `FitError.Error()`: `0/N nodes are available:` then either the PreFilter message or
/// the histogram of the nodes' reasons (`count reason`, sorted as strings), then the
/// PostFilter message.
pub fn fit_error_message(
    num_all_nodes: usize,
    pre_filter_msg: Option<&str>,
    reasons: &HashMap<String, usize>,
    post_filter_msg: Option<&str>,
) -> String {
    let mut m = format!("0/{num_all_nodes} nodes are available:");
    match pre_filter_msg {
        Some(p) => {
            m.push(' ');
            m.push_str(p);
            m.push('.');
        }
        None => {
            let mut lines: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
            lines.sort();
            if !lines.is_empty() {
                m.push(' ');
                m.push_str(&lines.join(", "));
                m.push('.');
            }
        }
    }
    if let Some(p) = post_filter_msg {
        m.push(' ');
        m.push_str(p);
    }
    m
}

/// DefaultPreemption's PostFilter message, for a pod no node fits: nodes rejected for
/// reasons preemption cannot resolve (and nodes never evaluated) are "not helpful".
pub fn preemption_message(pod: &PodInfo, num_all_nodes: usize, statuses: &[Status]) -> String {
    let policy = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.preemption_policy.as_deref());
    if policy == Some("Never") {
        return format!("preemption: {PREEMPT_NEVER}");
    }
    let resolvable = statuses
        .iter()
        .filter(|s| s.code == Code::Unschedulable)
        .count();
    let mut reasons = HashMap::new();
    if resolvable > 0 {
        reasons.insert(NO_VICTIMS.to_string(), resolvable);
    }
    if num_all_nodes > resolvable {
        reasons.insert(NOT_HELPFUL.to_string(), num_all_nodes - resolvable);
    }
    format!(
        "preemption: {}",
        fit_error_message(num_all_nodes, None, &reasons, None)
    )
}

fn unschedulable(
    pod: &PodInfo,
    n: usize,
    statuses: &[Status],
    absent: Option<(usize, String)>,
    plugins: Plugins,
) -> Outcome {
    let mut reasons: HashMap<String, usize> = HashMap::new();
    for s in statuses {
        for r in &s.reasons {
            *reasons.entry(r.to_string()).or_default() += 1;
        }
    }
    if let Some((count, reason)) = absent {
        if count > 0 {
            *reasons.entry(reason).or_default() += count;
        }
    }
    let post = preemption_message(pod, n, statuses);
    Outcome::Unschedulable {
        message: fit_error_message(n, None, &reasons, Some(&post)),
        plugins: if plugins.is_empty() {
            Plugins::ALL
        } else {
            plugins
        },
    }
}

/// Picks the highest score; ties are broken uniformly at random (reservoir sampling, as
/// upstream's `selectHost`).
pub fn select_host(scores: &[i64], rng: &mut Rng) -> usize {
    let mut best = 0;
    let mut count = 1;
    for i in 1..scores.len() {
        if scores[i] > scores[best] {
            best = i;
            count = 1;
        } else if scores[i] == scores[best] {
            count += 1;
            if rng.below(count) == 0 {
                best = i;
            }
        }
    }
    best
}

/// Schedules one pod against the cache.
pub fn schedule_one(cache: &Cache, pod: &PodInfo, st: &mut CycleState) -> Outcome {
    let n = cache.node_count();
    if n == 0 {
        return Outcome::Unschedulable {
            message: NO_NODES.to_string(),
            plugins: Plugins::ALL,
        };
    }
    let pre = match filter::pre_filter(pod, cache) {
        Ok(p) => p,
        Err(status) => {
            // Every node gets the PreFilter's (unresolvable) status.
            let post = preemption_message(pod, n, &[]);
            let msg = status.reasons.join(", ");
            return Outcome::Unschedulable {
                message: fit_error_message(n, Some(&msg), &HashMap::new(), Some(&post)),
                plugins: Plugins::of(&[status.plugin]),
            };
        }
    };
    let mut plugins = Plugins::default();
    let candidates: Vec<&NodeInfo> = match &pre.node_names {
        None => cache.nodes().collect(),
        Some(names) => {
            plugins.insert(Plugin::NodeAffinity);
            cache.nodes().filter(|n| names.contains(&n.name)).collect()
        }
    };
    let absent = (
        n - candidates.len(),
        "node(s) didn't satisfy plugin(s) [NodeAffinity]".to_string(),
    );
    let want = num_feasible_nodes_to_find(candidates.len());
    let mut feasible: Vec<&NodeInfo> = Vec::new();
    let mut statuses: Vec<Status> = Vec::new();
    let len = candidates.len();
    let start = if len == 0 { 0 } else { st.next_start % len };
    let mut processed = 0;
    for i in 0..len {
        if feasible.len() >= want {
            break;
        }
        let node = candidates[(start + i) % len];
        processed += 1;
        match filter::filter(&pre, pod, node) {
            None => feasible.push(node),
            Some(s) => {
                plugins.insert(s.plugin);
                statuses.push(s);
            }
        }
    }
    if len > 0 {
        st.next_start = (start + processed) % len;
    }
    match feasible.len() {
        0 => unschedulable(pod, n, &statuses, Some(absent), plugins),
        1 => Outcome::Bind(feasible[0].name.clone()),
        _ => {
            let scores = score::score_nodes(pod, cache, &feasible);
            Outcome::Bind(feasible[select_host(&scores, &mut st.rng)].name.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{node, pod_req};
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::json;
    use std::sync::Arc;

    /// Schedules each pod in turn (a bound pod is assumed on its node, as the scheduler
    /// does) and checks the outcomes: the node name, or the unschedulable message.
    fn check(name: &str, nodes: Vec<Node>, existing: Vec<Pod>, pods: Vec<Pod>, want: &[&str]) {
        let mut cache = Cache::new();
        for n in nodes {
            cache.upsert_node(n);
        }
        for p in existing {
            cache.upsert_pod(Arc::new(p));
        }
        let mut st = CycleState::new(42);
        let mut got = Vec::new();
        for p in pods {
            let pi = Arc::new(PodInfo::new(Arc::new(p)));
            match schedule_one(&cache, &pi, &mut st) {
                Outcome::Bind(node) => {
                    cache.assume(pi, &node);
                    got.push(node);
                }
                Outcome::Unschedulable { message, .. } => got.push(message),
            }
        }
        assert_eq!(got, want, "{name}");
    }

    fn cp(name: &str) -> Node {
        node(
            name,
            "4",
            "8Gi",
            110,
            json!({"spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}}),
        )
    }

    fn p(name: &str, cpu: &str) -> Pod {
        pod_req("default", name, cpu, "", json!({}))
    }

    #[test]
    fn messages() {
        check(
            "no nodes",
            vec![],
            vec![],
            vec![p("a", "1")],
            &["no nodes available to schedule pods"],
        );
        check(
            "taint and too big",
            vec![cp("cp"), node("w1", "2", "4Gi", 110, json!({})), node("w2", "2", "4Gi", 110, json!({}))],
            vec![],
            vec![p("a", "3")],
            &["0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."],
        );
        check(
            "taint and full",
            vec![cp("cp"), node("w1", "2", "4Gi", 110, json!({})), node("w2", "2", "4Gi", 110, json!({}))],
            vec![
                pod_req("default", "x", "2", "", json!({"spec": {"nodeName": "w1"}})),
                pod_req("default", "y", "2", "", json!({"spec": {"nodeName": "w2"}})),
            ],
            vec![p("c", "1")],
            &[
                "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.",
            ],
        );
        check(
            "several reasons on one node are each counted",
            vec![node("w1", "1", "1Gi", 110, json!({})), node("w2", "1", "1Gi", 110, json!({}))],
            vec![],
            vec![pod_req("default", "a", "2", "2Gi", json!({}))],
            &["0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."],
        );
        check(
            "preemptionPolicy Never",
            vec![node("w1", "1", "1Gi", 110, json!({}))],
            vec![],
            vec![pod_req("default", "a", "2", "", json!({"spec": {"preemptionPolicy": "Never"}}))],
            &["0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never."],
        );
        check(
            "prefilter rejection",
            vec![node("w1", "1", "1Gi", 110, json!({})), node("w2", "1", "1Gi", 110, json!({}))],
            vec![],
            vec![pod_req(
                "default",
                "a",
                "",
                "",
                json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["w1"]}, {"key": "metadata.name", "operator": "In", "values": ["w2"]}]}]}}}}}),
            )],
            &["0/2 nodes are available: pod affinity terms conflict. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."],
        );
        check(
            "daemon pod pinned to a full node",
            vec![node("w1", "1", "1Gi", 110, json!({})), node("w2", "1", "1Gi", 110, json!({})), node("w3", "1", "1Gi", 110, json!({}))],
            vec![pod_req("default", "x", "1", "", json!({"spec": {"nodeName": "w2"}}))],
            vec![pod_req(
                "default",
                "a",
                "100m",
                "",
                json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["w2"]}]}]}}}}}),
            )],
            &["0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't satisfy plugin(s) [NodeAffinity]. preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling."],
        );
    }

    #[test]
    fn histogram_sorting() {
        let reasons: HashMap<String, usize> = [
            ("Insufficient cpu".to_string(), 10),
            ("node(s) were unschedulable".to_string(), 2),
            ("Insufficient memory".to_string(), 2),
        ]
        .into();
        let cases: Vec<(Option<&str>, Option<&str>, &str)> = vec![
            (None, None, "0/14 nodes are available: 10 Insufficient cpu, 2 Insufficient memory, 2 node(s) were unschedulable."),
            (Some("pre"), Some("post"), "0/14 nodes are available: pre. post"),
        ];
        for (pre, post, want) in cases {
            assert_eq!(fit_error_message(14, pre, &reasons, post), want);
        }
        assert_eq!(
            fit_error_message(0, None, &HashMap::new(), None),
            "0/0 nodes are available:"
        );
    }

    #[test]
    fn placement() {
        // Least allocated spreads a burst evenly; assumed pods count.
        check(
            "burst spreads",
            vec![
                node("w1", "5", "8Gi", 110, json!({})),
                node("w2", "4", "8Gi", 110, json!({})),
            ],
            vec![],
            (0..4).map(|i| p(&format!("p{i}"), "1")).collect(),
            &["w1", "w2", "w1", "w2"],
        );
        check(
            "prefers the emptier node",
            vec![
                node("w1", "4", "8Gi", 110, json!({})),
                node("w2", "4", "8Gi", 110, json!({})),
            ],
            vec![pod_req(
                "default",
                "x",
                "2",
                "2Gi",
                json!({"spec": {"nodeName": "w1"}}),
            )],
            vec![p("a", "1")],
            &["w2"],
        );
        check(
            "bursts never overcommit",
            vec![node("w1", "2", "8Gi", 110, json!({})), node("w2", "1", "8Gi", 110, json!({}))],
            vec![],
            (0..4).map(|i| p(&format!("p{i}"), "1")).collect(),
            &["w1", "w2", "w1", "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."],
        );
    }

    #[test]
    fn feasible_node_count() {
        for (n, want) in [
            (0, 0),
            (50, 50),
            (100, 100),
            (200, 100),
            (1000, 420),
            (5000, 500),
            (6000, 300),
        ] {
            assert_eq!(num_feasible_nodes_to_find(n), want, "{n} nodes");
        }
    }

    #[test]
    fn tie_breaking() {
        let mut rng = Rng::new(7);
        let mut seen = [0; 3];
        for _ in 0..300 {
            seen[select_host(&[5, 9, 9, 1][..3], &mut rng)] += 1;
        }
        assert_eq!(seen[0], 0);
        assert!(seen[1] > 50 && seen[2] > 50, "{seen:?}");
        assert_eq!(select_host(&[1, 3, 2], &mut rng), 1);
    }
}
