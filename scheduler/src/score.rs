//! The scores, each normalized to 0..=100 as upstream's plugins do and weighted with
//! upstream's default weights: TaintToleration 3, NodeAffinity 2, NodeResourcesFit
//! (LeastAllocated) 1, PodTopologySpread 2, InterPodAffinity 2,
//! NodeResourcesBalancedAllocation 1. A plugin that skips a pod (its PreScore says there
//! is nothing to score) adds nothing.

use std::collections::{HashMap, HashSet};

use crate::cache::Cache;
use crate::filter::{
    count_key, count_matching, merge_term_namespaces, pod_spread_constraints, Constraint, HOSTNAME,
    ZONE,
};
use crate::nodeinfo::{tolerated, NodeInfo, PodInfo, WeightedAffinityTerm};
use crate::selector::{no_labels, NodeTerm};

pub const MAX_NODE_SCORE: i64 = 100;
/// InterPodAffinity's `hardPodAffinityWeight` default.
pub const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScorePlugin {
    TaintToleration,
    NodeAffinity,
    NodeResourcesFit,
    PodTopologySpread,
    InterPodAffinity,
    BalancedAllocation,
}

impl ScorePlugin {
    pub const ALL: [ScorePlugin; 6] = [
        ScorePlugin::TaintToleration,
        ScorePlugin::NodeAffinity,
        ScorePlugin::NodeResourcesFit,
        ScorePlugin::PodTopologySpread,
        ScorePlugin::InterPodAffinity,
        ScorePlugin::BalancedAllocation,
    ];

    /// Upstream's default weight.
    pub fn weight(self) -> i64 {
        match self {
            ScorePlugin::TaintToleration => 3,
            ScorePlugin::NodeAffinity
            | ScorePlugin::PodTopologySpread
            | ScorePlugin::InterPodAffinity => 2,
            ScorePlugin::NodeResourcesFit | ScorePlugin::BalancedAllocation => 1,
        }
    }
}

/// `helper.DefaultNormalizeScore`: scales to 0..=100 by the maximum; `reverse` flips.
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0).max(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        *s = MAX_NODE_SCORE * *s / max;
        if reverse {
            *s = MAX_NODE_SCORE - *s;
        }
    }
}

/// `leastRequestedScore` averaged over cpu and memory (weight 1 each), with the
/// non-zero requests of the node's pods and of the pod.
pub fn least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let resources = [
        (
            node.allocatable.milli_cpu,
            node.non_zero_cpu + pod.non_zero_cpu,
        ),
        (
            node.allocatable.memory,
            node.non_zero_memory + pod.non_zero_memory,
        ),
    ];
    let (mut sum, mut weights) = (0, 0);
    for (alloc, req) in resources {
        if alloc == 0 {
            continue;
        }
        sum += if req > alloc {
            0
        } else {
            (alloc - req) * MAX_NODE_SCORE / alloc
        };
        weights += 1;
    }
    if weights == 0 {
        0
    } else {
        sum / weights
    }
}

/// NodeResourcesBalancedAllocation: 100 × (1 − the standard deviation of the cpu and
/// memory fractions requested), with the actual requests.
pub fn balanced_allocation(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let resources = [
        (
            node.allocatable.milli_cpu,
            node.requested.milli_cpu + pod.requests.milli_cpu,
        ),
        (
            node.allocatable.memory,
            node.requested.memory + pod.requests.memory,
        ),
    ];
    let fractions: Vec<f64> = resources
        .iter()
        .filter(|(alloc, _)| *alloc != 0)
        .map(|(alloc, req)| (*req as f64 / *alloc as f64).min(1.0))
        .collect();
    let std = match fractions.len() {
        2 => ((fractions[0] - fractions[1]) / 2.0).abs(),
        n if n > 2 => {
            let mean = fractions.iter().sum::<f64>() / n as f64;
            (fractions
                .iter()
                .map(|f| (f - mean) * (f - mean))
                .sum::<f64>()
                / n as f64)
                .sqrt()
        }
        _ => 0.0,
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

/// TaintToleration: how many `PreferNoSchedule` taints the pod does not tolerate.
pub fn intolerable_prefer_no_schedule(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let tolerations: Vec<_> = pod
        .tolerations()
        .iter()
        .filter(|t| {
            matches!(
                t.effect.as_deref(),
                None | Some("") | Some("PreferNoSchedule")
            )
        })
        .cloned()
        .collect();
    node.taints
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !tolerated(&tolerations, t))
        .count() as i64
}

/// The pod's preferred node affinity terms with a non-zero weight.
fn preferred_node_terms(pod: &PodInfo) -> Vec<(i64, NodeTerm)> {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .into_iter()
        .flatten()
        .filter(|t| t.weight != 0)
        .map(|t| (i64::from(t.weight), NodeTerm::new(&t.preference)))
        .collect()
}

/// PodTopologySpread's PreScore state.
struct Spread {
    constraints: Vec<Constraint>,
    ignored: HashSet<String>,
    /// Per constraint (other than hostname): topology value → matching pods.
    counts: Vec<HashMap<String, i64>>,
    weights: Vec<f64>,
    /// Per constraint, its [`count_key`].
    keys: Vec<u64>,
}

/// Upstream's system default constraints, on the pod's services and controller.
fn default_constraints(pod: &PodInfo, cache: &Cache) -> Vec<Constraint> {
    let selector = cache.default_selector(pod);
    if selector.is_empty() {
        return Vec::new();
    }
    [(3, HOSTNAME), (5, ZONE)]
        .into_iter()
        .map(|(skew, key)| Constraint {
            max_skew: skew,
            topology_key: key.to_string(),
            selector: selector.clone(),
            min_domains: 1,
            honor_node_affinity: true,
            honor_node_taints: false,
        })
        .collect()
}

fn spread_pre_score(pod: &PodInfo, cache: &Cache, feasible: &[&NodeInfo]) -> Option<Spread> {
    if cache.node_count() == 0 {
        return None;
    }
    let own = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_ref())
        .is_some_and(|c| !c.is_empty());
    let constraints = if own {
        pod_spread_constraints(pod, "ScheduleAnyway")
    } else {
        default_constraints(pod, cache)
    };
    if constraints.is_empty() {
        return None;
    }
    // Only the pod's own constraints need every topology key on a node; system defaults
    // still spread by hostname on nodes without a zone.
    let require_all = own;
    fn has_all(cs: &[Constraint], n: &NodeInfo) -> bool {
        cs.iter().all(|c| n.labels().contains_key(&c.topology_key))
    }
    let mut s = Spread {
        counts: vec![HashMap::new(); constraints.len()],
        weights: Vec::new(),
        ignored: HashSet::new(),
        keys: constraints
            .iter()
            .map(|c| count_key(&c.selector, pod.namespace()))
            .collect(),
        constraints,
    };
    for n in feasible {
        if require_all && !has_all(&s.constraints, n) {
            s.ignored.insert(n.name.clone());
            continue;
        }
        for (i, c) in s.constraints.iter().enumerate() {
            if c.topology_key != HOSTNAME {
                let v = n.labels().get(&c.topology_key).cloned().unwrap_or_default();
                s.counts[i].entry(v).or_insert(0);
            }
        }
    }
    s.weights = s
        .constraints
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let size = if c.topology_key == HOSTNAME {
                feasible.len() - s.ignored.len()
            } else {
                s.counts[i].len()
            };
            ((size + 2) as f64).ln()
        })
        .collect();
    for n in cache.nodes() {
        if require_all && !has_all(&s.constraints, n) {
            continue;
        }
        for (i, c) in s.constraints.iter().enumerate() {
            if !c.includes(pod, n) {
                continue;
            }
            let v = n
                .labels()
                .get(&c.topology_key)
                .map(String::as_str)
                .unwrap_or("");
            if let Some(cnt) = s.counts[i].get_mut(v) {
                *cnt += count_matching(n, &c.selector, pod.namespace(), s.keys[i]);
            }
        }
    }
    Some(s)
}

fn spread_score(s: &Spread, pod: &PodInfo, node: &NodeInfo) -> i64 {
    if s.ignored.contains(&node.name) {
        return 0;
    }
    let mut score = 0.0;
    for (i, c) in s.constraints.iter().enumerate() {
        let Some(v) = node.labels().get(&c.topology_key) else {
            continue;
        };
        let cnt = if c.topology_key == HOSTNAME {
            count_matching(node, &c.selector, pod.namespace(), s.keys[i])
        } else {
            s.counts[i].get(v).copied().unwrap_or(0)
        };
        score += cnt as f64 * s.weights[i] + (c.max_skew - 1) as f64;
    }
    score.round() as i64
}

fn spread_normalize(s: &Spread, nodes: &[&NodeInfo], scores: &mut [i64]) {
    let valid = |i: usize| !s.ignored.contains(&nodes[i].name);
    let (mut min, mut max) = (i64::MAX, 0);
    for (i, sc) in scores.iter().enumerate() {
        if valid(i) {
            min = min.min(*sc);
            max = max.max(*sc);
        }
    }
    for (i, sc) in scores.iter_mut().enumerate() {
        *sc = if !valid(i) {
            0
        } else if max == 0 {
            MAX_NODE_SCORE
        } else {
            MAX_NODE_SCORE * (max + min - *sc) / max
        };
    }
}

/// InterPodAffinity's PreScore: topology key → value → accumulated weight.
type TopologyScore = HashMap<String, HashMap<String, i64>>;

fn affinity_pre_score(pod: &PodInfo, cache: &Cache) -> Option<TopologyScore> {
    let has_constraints =
        !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
    let merged = |terms: &[WeightedAffinityTerm]| -> Vec<WeightedAffinityTerm> {
        terms
            .iter()
            .map(|t| {
                let mut t = t.clone();
                merge_term_namespaces(cache, &mut t.term);
                t
            })
            .collect()
    };
    let preferred = merged(&pod.preferred_affinity);
    let preferred_anti = merged(&pod.preferred_anti_affinity);
    let ns_labels = cache.namespace_labels(pod.namespace());
    let none = no_labels();
    let mut topo = TopologyScore::new();
    for node in cache.nodes() {
        if !has_constraints && node.with_affinity == 0 {
            continue;
        }
        let labels = node.labels();
        if labels.is_empty() {
            continue;
        }
        let mut add = |key: &str, w: i64| {
            if let Some(v) = labels.get(key) {
                *topo
                    .entry(key.to_string())
                    .or_default()
                    .entry(v.clone())
                    .or_default() += w;
            }
        };
        for existing in &node.pods {
            if !has_constraints && !existing.has_affinity() {
                continue;
            }
            for t in &preferred {
                if t.term.matches(existing, none) {
                    add(&t.term.topology_key, t.weight);
                }
            }
            for t in &preferred_anti {
                if t.term.matches(existing, none) {
                    add(&t.term.topology_key, -t.weight);
                }
            }
            for t in &existing.required_affinity {
                if t.matches(pod, ns_labels) {
                    add(&t.topology_key, HARD_POD_AFFINITY_WEIGHT);
                }
            }
            for t in &existing.preferred_affinity {
                if t.term.matches(pod, ns_labels) {
                    add(&t.term.topology_key, t.weight);
                }
            }
            for t in &existing.preferred_anti_affinity {
                if t.term.matches(pod, ns_labels) {
                    add(&t.term.topology_key, -t.weight);
                }
            }
        }
    }
    (!topo.is_empty()).then_some(topo)
}

fn affinity_score(topo: &TopologyScore, node: &NodeInfo) -> i64 {
    let labels = node.labels();
    topo.iter()
        .filter_map(|(k, vals)| labels.get(k).map(|v| vals.get(v).copied().unwrap_or(0)))
        .sum()
}

fn min_max_normalize(scores: &mut [i64]) {
    let min = scores.iter().copied().min().unwrap_or(0);
    let max = scores.iter().copied().max().unwrap_or(0);
    let diff = max - min;
    for s in scores.iter_mut() {
        *s = if diff > 0 {
            (MAX_NODE_SCORE as f64 * ((*s - min) as f64 / diff as f64)) as i64
        } else {
            0
        };
    }
}

/// One plugin's normalized scores for the feasible nodes; `None` when it skips the pod.
pub fn plugin_scores(
    plugin: ScorePlugin,
    pod: &PodInfo,
    cache: &Cache,
    nodes: &[&NodeInfo],
) -> Option<Vec<i64>> {
    let each = |f: &dyn Fn(&NodeInfo) -> i64| nodes.iter().map(|n| f(n)).collect::<Vec<i64>>();
    match plugin {
        ScorePlugin::TaintToleration => {
            let mut s = each(&|n| intolerable_prefer_no_schedule(pod, n));
            default_normalize(&mut s, true);
            Some(s)
        }
        ScorePlugin::NodeAffinity => {
            let terms = preferred_node_terms(pod);
            if terms.is_empty() {
                return None;
            }
            let mut s = each(&|n| {
                terms
                    .iter()
                    .filter(|(_, t)| t.matches(n.labels(), &n.name))
                    .map(|(w, _)| w)
                    .sum()
            });
            default_normalize(&mut s, false);
            Some(s)
        }
        ScorePlugin::NodeResourcesFit => Some(each(&|n| least_allocated(pod, n))),
        ScorePlugin::BalancedAllocation => {
            // Best-effort pods are not balanced (upstream #129138).
            if pod.requests.milli_cpu == 0 && pod.requests.memory == 0 {
                return None;
            }
            Some(each(&|n| balanced_allocation(pod, n)))
        }
        ScorePlugin::PodTopologySpread => {
            let st = spread_pre_score(pod, cache, nodes)?;
            let mut s = each(&|n| spread_score(&st, pod, n));
            spread_normalize(&st, nodes, &mut s);
            Some(s)
        }
        ScorePlugin::InterPodAffinity => {
            let topo = affinity_pre_score(pod, cache)?;
            let mut s = each(&|n| affinity_score(&topo, n));
            min_max_normalize(&mut s);
            Some(s)
        }
    }
}

/// The weighted sum of every plugin's normalized score, per feasible node.
pub fn score_nodes(pod: &PodInfo, cache: &Cache, nodes: &[&NodeInfo]) -> Vec<i64> {
    let mut total = vec![0; nodes.len()];
    for p in ScorePlugin::ALL {
        if let Some(s) = plugin_scores(p, pod, cache, nodes) {
            for (t, s) in total.iter_mut().zip(s) {
                *t += s * p.weight();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{merge, node, pod_req};
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::{json, Value};
    use std::sync::Arc;

    /// The normalized scores of `plugin` for `pod` over `nodes` (all feasible), with
    /// `existing` bound pods and `services` (namespace, name, selector); `None` = skipped.
    fn check(
        name: &str,
        plugin: ScorePlugin,
        pod: Pod,
        nodes: Vec<Node>,
        existing: Vec<Pod>,
        services: &[(&str, &str, Value)],
        want: Option<&[i64]>,
    ) {
        let mut cache = Cache::new();
        for n in nodes {
            cache.upsert_node(n);
        }
        for p in existing {
            cache.upsert_pod(Arc::new(p));
        }
        for (ns, svc, sel) in services {
            cache.set_service(ns, svc, serde_json::from_value(sel.clone()).unwrap());
        }
        let pi = PodInfo::new(Arc::new(pod));
        let feasible: Vec<&NodeInfo> = cache.nodes().collect();
        let got = plugin_scores(plugin, &pi, &cache, &feasible);
        assert_eq!(got.as_deref(), want, "{name}");
    }

    fn zone(name: &str, z: &str) -> Node {
        node(
            name,
            "4",
            "8Gi",
            110,
            json!({"metadata": {"labels": {ZONE: z}}}),
        )
    }

    fn on(name: &str, node: &str, labels: Value, extra: Value) -> Pod {
        let mut e = json!({"metadata": {"labels": labels}, "spec": {"nodeName": node}});
        merge(&mut e, extra);
        pod_req("default", name, "", "", e)
    }

    #[test]
    fn resources() {
        let nodes = || {
            vec![
                node("big", "4", "8Gi", 110, json!({})),
                node("small", "2", "4Gi", 110, json!({})),
            ]
        };
        let p = || pod_req("default", "p", "1", "1Gi", json!({}));
        let be = || pod_req("default", "p", "", "", json!({}));
        check(
            "least allocated",
            ScorePlugin::NodeResourcesFit,
            p(),
            nodes(),
            vec![],
            &[],
            Some(&[81, 62]),
        );
        check(
            "least allocated, best effort counts defaults",
            ScorePlugin::NodeResourcesFit,
            be(),
            nodes(),
            vec![],
            &[],
            Some(&[97, 95]),
        );
        check(
            "least allocated with existing pods",
            ScorePlugin::NodeResourcesFit,
            p(),
            nodes(),
            vec![pod_req(
                "default",
                "e",
                "2",
                "4Gi",
                json!({"spec": {"nodeName": "big"}}),
            )],
            &[],
            Some(&[31, 62]),
        );
        check(
            "least allocated, overcommitted is 0",
            ScorePlugin::NodeResourcesFit,
            pod_req("default", "p", "3", "1Gi", json!({})),
            nodes(),
            vec![],
            &[],
            Some(&[56, 37]),
        );
        check(
            "balanced",
            ScorePlugin::BalancedAllocation,
            p(),
            nodes(),
            vec![],
            &[],
            Some(&[93, 87]),
        );
        check(
            "balanced even",
            ScorePlugin::BalancedAllocation,
            pod_req("default", "p", "2", "4Gi", json!({})),
            nodes(),
            vec![],
            &[],
            Some(&[100, 100]),
        );
        check(
            "balanced skips best effort",
            ScorePlugin::BalancedAllocation,
            be(),
            nodes(),
            vec![],
            &[],
            None,
        );
    }

    #[test]
    fn taint_toleration() {
        let nodes = || {
            vec![
                node("n1", "4", "8Gi", 110, json!({})),
                node(
                    "n2",
                    "4",
                    "8Gi",
                    110,
                    json!({"spec": {"taints": [{"key": "a", "effect": "PreferNoSchedule"}]}}),
                ),
                node(
                    "n3",
                    "4",
                    "8Gi",
                    110,
                    json!({"spec": {"taints": [{"key": "a", "effect": "PreferNoSchedule"}, {"key": "b", "value": "x", "effect": "PreferNoSchedule"}, {"key": "c", "effect": "NoSchedule"}]}}),
                ),
            ]
        };
        let p = |tol: Value| {
            pod_req(
                "default",
                "p",
                "",
                "",
                json!({"spec": {"tolerations": tol}}),
            )
        };
        check(
            "untolerated",
            ScorePlugin::TaintToleration,
            p(json!([])),
            nodes(),
            vec![],
            &[],
            Some(&[100, 50, 0]),
        );
        check(
            "one tolerated",
            ScorePlugin::TaintToleration,
            p(json!([{"key": "b", "value": "x", "effect": "PreferNoSchedule"}])),
            nodes(),
            vec![],
            &[],
            Some(&[100, 0, 0]),
        );
        check(
            "NoSchedule tolerations do not count",
            ScorePlugin::TaintToleration,
            p(json!([{"key": "a", "operator": "Exists", "effect": "NoSchedule"}])),
            nodes(),
            vec![],
            &[],
            Some(&[100, 50, 0]),
        );
        check(
            "all tolerated",
            ScorePlugin::TaintToleration,
            p(json!([{"operator": "Exists"}])),
            nodes(),
            vec![],
            &[],
            Some(&[100, 100, 100]),
        );
    }

    #[test]
    fn node_affinity() {
        let nodes = || {
            vec![
                node(
                    "n1",
                    "4",
                    "8Gi",
                    110,
                    json!({"metadata": {"labels": {"disk": "ssd", "gen": "3"}}}),
                ),
                node(
                    "n2",
                    "4",
                    "8Gi",
                    110,
                    json!({"metadata": {"labels": {"disk": "hdd", "gen": "5"}}}),
                ),
                node("n3", "4", "8Gi", 110, json!({})),
            ]
        };
        let p = |terms: Value| {
            pod_req(
                "default",
                "p",
                "",
                "",
                json!({"spec": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": terms}}}}),
            )
        };
        check(
            "weights summed and normalized",
            ScorePlugin::NodeAffinity,
            p(
                json!([{"weight": 10, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}, {"weight": 5, "preference": {"matchExpressions": [{"key": "gen", "operator": "Exists"}]}}]),
            ),
            nodes(),
            vec![],
            &[],
            Some(&[100, 33, 0]),
        );
        check(
            "nothing matches",
            ScorePlugin::NodeAffinity,
            p(
                json!([{"weight": 10, "preference": {"matchExpressions": [{"key": "x", "operator": "Exists"}]}}]),
            ),
            nodes(),
            vec![],
            &[],
            Some(&[0, 0, 0]),
        );
        check(
            "no preferences skip",
            ScorePlugin::NodeAffinity,
            pod_req("default", "p", "", "", json!({})),
            nodes(),
            vec![],
            &[],
            None,
        );
    }

    #[test]
    fn topology_spread() {
        let nodes = || vec![zone("a1", "a"), zone("a2", "a"), zone("b1", "b")];
        let web = |name: &str, node: &str| on(name, node, json!({"app": "web"}), json!({}));
        let existing = || {
            vec![
                web("w1", "a1"),
                web("w2", "a1"),
                web("w3", "b1"),
                on("o", "a2", json!({"app": "other"}), json!({})),
            ]
        };
        let svc: &[(&str, &str, Value)] = &[("default", "web", json!({"app": "web"}))];
        let p = || {
            pod_req(
                "default",
                "p",
                "",
                "",
                json!({"metadata": {"labels": {"app": "web"}}}),
            )
        };
        check(
            "default constraints by service",
            ScorePlugin::PodTopologySpread,
            p(),
            nodes(),
            existing(),
            svc,
            Some(&[75, 100, 100]),
        );
        check(
            "no service, no controller: skip",
            ScorePlugin::PodTopologySpread,
            p(),
            nodes(),
            existing(),
            &[],
            None,
        );
        check(
            "service in another namespace",
            ScorePlugin::PodTopologySpread,
            p(),
            nodes(),
            existing(),
            &[("other", "web", json!({"app": "web"}))],
            None,
        );
        check(
            "no matching pods yet",
            ScorePlugin::PodTopologySpread,
            p(),
            nodes(),
            vec![],
            svc,
            Some(&[100, 100, 100]),
        );
        let own = pod_req(
            "default",
            "p",
            "",
            "",
            json!({"metadata": {"labels": {"app": "web"}}, "spec": {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "web"}}}]}}),
        );
        let mut with_unzoned = nodes();
        with_unzoned.push(node("x1", "4", "8Gi", 110, json!({})));
        check(
            "own ScheduleAnyway constraint; unzoned node ignored",
            ScorePlugin::PodTopologySpread,
            own,
            with_unzoned,
            existing(),
            &[],
            Some(&[33, 33, 100, 0]),
        );
    }

    #[test]
    fn inter_pod_affinity() {
        let nodes = || vec![zone("a1", "a"), zone("a2", "a"), zone("b1", "b")];
        let existing = || vec![on("db", "a1", json!({"app": "db"}), json!({}))];
        let pref = |kind: &str, weight: i64, key: &str, app: &str| {
            pod_req(
                "default",
                "p",
                "",
                "",
                json!({"metadata": {"labels": {"app": "me"}}, "spec": {"affinity": {kind: {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": weight, "podAffinityTerm": {"topologyKey": key, "labelSelector": {"matchLabels": {"app": app}}}}]}}}}),
            )
        };
        check(
            "preferred affinity",
            ScorePlugin::InterPodAffinity,
            pref("podAffinity", 10, ZONE, "db"),
            nodes(),
            existing(),
            &[],
            Some(&[100, 100, 0]),
        );
        check(
            "preferred anti-affinity",
            ScorePlugin::InterPodAffinity,
            pref("podAntiAffinity", 5, HOSTNAME, "db"),
            nodes(),
            existing(),
            &[],
            Some(&[0, 100, 100]),
        );
        check(
            "nothing matches: skip",
            ScorePlugin::InterPodAffinity,
            pref("podAffinity", 10, ZONE, "nope"),
            nodes(),
            existing(),
            &[],
            None,
        );
        check(
            "no terms anywhere: skip",
            ScorePlugin::InterPodAffinity,
            pod_req("default", "p", "", "", json!({})),
            nodes(),
            existing(),
            &[],
            None,
        );
        let friend = on(
            "friend",
            "b1",
            json!({"app": "friend"}),
            json!({"spec": {"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 7, "podAffinityTerm": {"topologyKey": ZONE, "labelSelector": {"matchLabels": {"app": "me"}}}}]}}}}),
        );
        let me = || {
            pod_req(
                "default",
                "p",
                "",
                "",
                json!({"metadata": {"labels": {"app": "me"}}}),
            )
        };
        check(
            "existing pod's preferred affinity",
            ScorePlugin::InterPodAffinity,
            me(),
            nodes(),
            vec![friend],
            &[],
            Some(&[0, 0, 100]),
        );
        let required = on(
            "req",
            "a2",
            json!({"app": "req"}),
            json!({"spec": {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": HOSTNAME, "labelSelector": {"matchLabels": {"app": "me"}}}]}}}}),
        );
        check(
            "existing pod's required affinity counts as weight 1",
            ScorePlugin::InterPodAffinity,
            me(),
            nodes(),
            vec![required],
            &[],
            Some(&[0, 100, 0]),
        );
        let hater = on(
            "hater",
            "a1",
            json!({"app": "hater"}),
            json!({"spec": {"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 3, "podAffinityTerm": {"topologyKey": ZONE, "labelSelector": {"matchLabels": {"app": "me"}}}}]}}}}),
        );
        check(
            "existing pod's preferred anti-affinity",
            ScorePlugin::InterPodAffinity,
            me(),
            nodes(),
            vec![hater],
            &[],
            Some(&[0, 0, 100]),
        );
    }

    #[test]
    fn weighted_total() {
        let mut cache = Cache::new();
        cache.upsert_node(node("big", "4", "8Gi", 110, json!({})));
        cache.upsert_node(node(
            "small",
            "2",
            "4Gi",
            110,
            json!({"spec": {"taints": [{"key": "a", "effect": "PreferNoSchedule"}]}}),
        ));
        let pi = PodInfo::new(Arc::new(pod_req("default", "p", "1", "1Gi", json!({}))));
        let nodes: Vec<&NodeInfo> = cache.nodes().collect();
        // taints 3×(100, 0) + least allocated (81, 62) + balanced (93, 87)
        assert_eq!(
            score_nodes(&pi, &cache, &nodes),
            vec![300 + 81 + 93, 62 + 87]
        );
    }
}
