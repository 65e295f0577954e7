//! Label selectors (`metav1.LabelSelector`, label maps) and node selectors
//! (`NodeSelectorTerm` with `matchExpressions` and `matchFields`), matched as upstream's
//! `labels.Selector` and `component-helpers/scheduling/corev1/nodeaffinity` do.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

pub type Labels = BTreeMap<String, String>;

/// The empty label set, for objects without labels.
pub fn no_labels() -> &'static Labels {
    static EMPTY: Labels = BTreeMap::new();
    &EMPTY
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: Vec<String>,
    /// The one value of `Gt`/`Lt`, parsed.
    bound: i64,
}

impl Requirement {
    /// A requirement, validated as `labels.NewRequirement` does (value counts, integer
    /// bounds); `None` when invalid.
    pub fn new(key: &str, op: Op, values: Vec<String>) -> Option<Requirement> {
        let mut bound = 0;
        match op {
            Op::In | Op::NotIn if values.is_empty() => return None,
            Op::Exists | Op::DoesNotExist if !values.is_empty() => return None,
            Op::Gt | Op::Lt => {
                if values.len() != 1 {
                    return None;
                }
                bound = values[0].parse::<i64>().ok()?;
            }
            _ => {}
        }
        Some(Requirement {
            key: key.to_string(),
            op,
            values,
            bound,
        })
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.key);
        match self.op {
            Op::In => v.is_some_and(|v| self.values.contains(v)),
            Op::NotIn => !v.is_some_and(|v| self.values.contains(v)),
            Op::Exists => v.is_some(),
            Op::DoesNotExist => v.is_none(),
            Op::Gt => v
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|n| n > self.bound),
            Op::Lt => v
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|n| n < self.bound),
        }
    }
}

/// A parsed label selector: `Nothing` matches no set, `Match(vec![])` every set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Selector {
    Nothing,
    Match(Vec<Requirement>),
}

impl Selector {
    pub fn everything() -> Selector {
        Selector::Match(Vec::new())
    }

    /// `metav1.LabelSelectorAsSelector`: a missing selector matches nothing, an empty one
    /// everything; an invalid one (bad operator or values) is treated as matching nothing.
    pub fn from_label_selector(ls: Option<&LabelSelector>) -> Selector {
        let Some(ls) = ls else {
            return Selector::Nothing;
        };
        let mut reqs = Vec::new();
        for (k, v) in ls.match_labels.iter().flatten() {
            reqs.push(Requirement::new(k, Op::In, vec![v.clone()]).expect("one value"));
        }
        for e in ls.match_expressions.iter().flatten() {
            let op = match e.operator.as_str() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                _ => return Selector::Nothing,
            };
            match Requirement::new(&e.key, op, e.values.clone().unwrap_or_default()) {
                Some(r) => reqs.push(r),
                None => return Selector::Nothing,
            }
        }
        Selector::Match(reqs)
    }

    /// `labels.SelectorFromSet`: every pair must be present (an empty map matches all).
    pub fn from_map(m: &Labels) -> Selector {
        Selector::Match(
            m.iter()
                .map(|(k, v)| Requirement::new(k, Op::In, vec![v.clone()]).expect("one value"))
                .collect(),
        )
    }

    /// `Selector.Empty()`: true only for the selector that matches everything.
    pub fn is_empty(&self) -> bool {
        matches!(self, Selector::Match(r) if r.is_empty())
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        match self {
            Selector::Nothing => false,
            Selector::Match(reqs) => reqs.iter().all(|r| r.matches(labels)),
        }
    }

    /// `Selector.Add`: adds requirements (a `Nothing` selector stays `Nothing`).
    pub fn add(&mut self, more: impl IntoIterator<Item = Requirement>) {
        if let Selector::Match(reqs) = self {
            reqs.extend(more);
        }
    }

    pub fn requirements(&self) -> &[Requirement] {
        match self {
            Selector::Nothing => &[],
            Selector::Match(r) => r,
        }
    }
}

/// A parsed `NodeSelectorTerm` (the requirements are ANDed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeTerm {
    labels: Vec<Requirement>,
    /// `matchFields` on `metadata.name`: (In?, name).
    fields: Vec<(bool, String)>,
    /// A term with an invalid requirement never matches (upstream reports the parse error
    /// and treats the term as not matching).
    valid: bool,
}

impl NodeTerm {
    pub fn new(term: &NodeSelectorTerm) -> NodeTerm {
        let mut t = NodeTerm {
            labels: Vec::new(),
            fields: Vec::new(),
            valid: true,
        };
        for e in term.match_expressions.iter().flatten() {
            match node_requirement(e) {
                Some(r) => t.labels.push(r),
                None => t.valid = false,
            }
        }
        for f in term.match_fields.iter().flatten() {
            let values = f.values.as_deref().unwrap_or_default();
            let ok = f.key == "metadata.name" && values.len() == 1;
            match f.operator.as_str() {
                "In" if ok => t.fields.push((true, values[0].clone())),
                "NotIn" if ok => t.fields.push((false, values[0].clone())),
                _ => t.valid = false,
            }
        }
        t
    }

    pub fn matches(&self, labels: &Labels, node_name: &str) -> bool {
        if !self.valid || (self.labels.is_empty() && self.fields.is_empty()) {
            return false;
        }
        if !self.labels.iter().all(|r| r.matches(labels)) {
            return false;
        }
        if node_name.is_empty() {
            return true;
        }
        self.fields
            .iter()
            .all(|(is_in, name)| (name == node_name) == *is_in)
    }
}

fn node_requirement(e: &NodeSelectorRequirement) -> Option<Requirement> {
    let op = match e.operator.as_str() {
        "In" => Op::In,
        "NotIn" => Op::NotIn,
        "Exists" => Op::Exists,
        "DoesNotExist" => Op::DoesNotExist,
        "Gt" => Op::Gt,
        "Lt" => Op::Lt,
        _ => return None,
    };
    Requirement::new(&e.key, op, e.values.clone().unwrap_or_default())
}

/// Terms ORed, as a `NodeSelector`.
pub fn node_selector_terms(ns: &NodeSelector) -> Vec<NodeTerm> {
    ns.node_selector_terms.iter().map(NodeTerm::new).collect()
}

/// `nodeaffinity.RequiredNodeAffinity`: the pod's `nodeSelector` and its required node
/// affinity terms, both of which a node must satisfy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequiredNodeAffinity {
    node_selector: Option<Selector>,
    terms: Option<Vec<NodeTerm>>,
}

impl RequiredNodeAffinity {
    pub fn new(node_selector: Option<&Labels>, required: Option<&NodeSelector>) -> Self {
        RequiredNodeAffinity {
            node_selector: node_selector
                .filter(|m| !m.is_empty())
                .map(Selector::from_map),
            terms: required.map(node_selector_terms),
        }
    }

    /// Nothing to check (no node selector and no required terms).
    pub fn is_empty(&self) -> bool {
        self.node_selector.is_none() && self.terms.is_none()
    }

    pub fn matches(&self, labels: &Labels, node_name: &str) -> bool {
        if let Some(s) = &self.node_selector {
            if !s.matches(labels) {
                return false;
            }
        }
        match &self.terms {
            Some(terms) => terms.iter().any(|t| t.matches(labels, node_name)),
            None => true,
        }
    }

    pub fn matches_node(&self, node: &Node) -> bool {
        self.matches(
            node.metadata.labels.as_ref().unwrap_or(no_labels()),
            node.metadata.name.as_deref().unwrap_or(""),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn labels(v: Value) -> Labels {
        serde_json::from_value(v).unwrap()
    }

    /// (selector kind, selector JSON, labels, node name, matches?)
    fn check(cases: &[(&str, Value, Value, &str, bool)]) {
        for (kind, sel, lbls, node, want) in cases {
            let l = labels(lbls.clone());
            let got = match *kind {
                "label" => {
                    let ls: Option<LabelSelector> = serde_json::from_value(sel.clone()).unwrap();
                    Selector::from_label_selector(ls.as_ref()).matches(&l)
                }
                "map" => Selector::from_map(&labels(sel.clone())).matches(&l),
                "node" => {
                    let ns: NodeSelector = serde_json::from_value(sel.clone()).unwrap();
                    RequiredNodeAffinity::new(None, Some(&ns)).matches(&l, node)
                }
                "nodeSelector" => {
                    RequiredNodeAffinity::new(Some(&labels(sel.clone())), None).matches(&l, node)
                }
                _ => unreachable!(),
            };
            assert_eq!(got, *want, "{kind} {sel} against {lbls} on {node:?}");
        }
    }

    #[test]
    fn selectors() {
        let a = json!({"app": "a", "tier": "web", "n": "5"});
        check(&[
            ("label", json!(null), a.clone(), "", false),
            ("label", json!({}), a.clone(), "", true),
            (
                "label",
                json!({"matchLabels": {"app": "a"}}),
                a.clone(),
                "",
                true,
            ),
            (
                "label",
                json!({"matchLabels": {"app": "b"}}),
                a.clone(),
                "",
                false,
            ),
            (
                "label",
                json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["a", "b"]}]}),
                a.clone(),
                "",
                true,
            ),
            (
                "label",
                json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["a"]}]}),
                a.clone(),
                "",
                false,
            ),
            (
                "label",
                json!({"matchExpressions": [{"key": "x", "operator": "NotIn", "values": ["a"]}]}),
                a.clone(),
                "",
                true,
            ),
            (
                "label",
                json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}),
                a.clone(),
                "",
                true,
            ),
            (
                "label",
                json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}),
                a.clone(),
                "",
                false,
            ),
            (
                "label",
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": []}]}),
                a.clone(),
                "",
                false,
            ),
            (
                "label",
                json!({"matchExpressions": [{"key": "n", "operator": "Gt", "values": ["1"]}]}),
                a.clone(),
                "",
                false,
            ),
            (
                "label",
                json!({"matchLabels": {"app": "a"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}]}),
                a.clone(),
                "",
                false,
            ),
            ("map", json!({}), a.clone(), "", true),
            (
                "map",
                json!({"app": "a", "tier": "web"}),
                a.clone(),
                "",
                true,
            ),
            (
                "map",
                json!({"app": "a", "tier": "db"}),
                a.clone(),
                "",
                false,
            ),
            ("nodeSelector", json!({"app": "a"}), a.clone(), "n1", true),
            (
                "nodeSelector",
                json!({"disk": "ssd"}),
                a.clone(),
                "n1",
                false,
            ),
            (
                "node",
                json!({"nodeSelectorTerms": [{"matchExpressions": [{"key": "n", "operator": "Gt", "values": ["4"]}]}]}),
                a.clone(),
                "n1",
                true,
            ),
            (
                "node",
                json!({"nodeSelectorTerms": [{"matchExpressions": [{"key": "n", "operator": "Gt", "values": ["5"]}]}]}),
                a.clone(),
                "n1",
                false,
            ),
            (
                "node",
                json!({"nodeSelectorTerms": [{"matchExpressions": [{"key": "n", "operator": "Lt", "values": ["6"]}]}]}),
                a.clone(),
                "n1",
                true,
            ),
            (
                "node",
                json!({"nodeSelectorTerms": [{"matchExpressions": [{"key": "app", "operator": "Lt", "values": ["6"]}]}]}),
                a.clone(),
                "n1",
                false,
            ),
            (
                "node",
                json!({"nodeSelectorTerms": [{"matchExpressions": [{"key": "n", "operator": "Gt", "values": ["x"]}]}]}),
                a.clone(),
                "n1",
                false,
            ),
            (
                "node",
                json!({"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}]}),
                a.clone(),
                "n1",
                true,
            ),
            (
                "node",
                json!({"nodeSelectorTerms": [{"matchExpressions": [{"key": "app", "operator": "In", "values": ["b"]}]}, {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}]}),
                a.clone(),
                "n1",
                true,
            ),
            (
                "node",
                json!({"nodeSelectorTerms": [{}]}),
                a.clone(),
                "n1",
                false,
            ),
            (
                "node",
                json!({"nodeSelectorTerms": []}),
                a.clone(),
                "n1",
                false,
            ),
            (
                "node",
                json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}),
                a.clone(),
                "n1",
                true,
            ),
            (
                "node",
                json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]}),
                a.clone(),
                "n1",
                false,
            ),
            (
                "node",
                json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n2"]}]}]}),
                a.clone(),
                "n1",
                true,
            ),
            (
                "node",
                json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1", "n2"]}]}]}),
                a.clone(),
                "n1",
                false,
            ),
            (
                "node",
                json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["n1"]}]}]}),
                a.clone(),
                "n1",
                false,
            ),
            (
                "node",
                json!({"nodeSelectorTerms": [{"matchExpressions": [{"key": "app", "operator": "In", "values": ["a"]}], "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}),
                a.clone(),
                "n1",
                true,
            ),
        ]);
    }
}
