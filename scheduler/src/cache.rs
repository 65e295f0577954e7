//! The scheduler's view of the cluster, fed by watches (upstream's scheduler cache plus
//! the listers its plugins read): nodes with the pods assigned to them, pods this
//! scheduler has assumed onto a node while their binding is in flight, namespace labels,
//! and the selectors of services and controllers for default topology spreading.
//!
//! Pure data: no I/O. An assumed pod counts on its node like a bound one, so a burst of
//! bindings never overcommits; it is confirmed when the watch shows it bound, or
//! forgotten when its binding fails.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::nodeinfo::{NodeInfo, PodInfo};
use crate::selector::{no_labels, Labels, Selector};

#[derive(Debug)]
struct PodEntry {
    node: String,
    assumed: bool,
    info: Arc<PodInfo>,
}

/// The kinds of controller whose selector `DefaultSelector` reads, by owner reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ControllerKind {
    ReplicationController,
    ReplicaSet,
    StatefulSet,
}

/// What a node event changed, for requeueing unschedulable pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeChange {
    Added,
    /// A change that can affect scheduling (labels, taints, allocatable, conditions
    /// other than heartbeats, unschedulable).
    Updated,
    Unchanged,
}

/// What a pod event for an assigned pod did to the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodChange {
    Added,
    /// The pod this scheduler assumed is now seen bound.
    Confirmed,
    /// Labels (or node) changed.
    Updated,
    Unchanged,
}

#[derive(Debug, Default)]
pub struct Cache {
    nodes: HashMap<String, NodeInfo>,
    /// Names of the nodes that have a node object, in the order they arrived.
    order: Vec<String>,
    pods: HashMap<String, PodEntry>,
    namespaces: HashMap<String, Labels>,
    /// namespace → service name → selector (`None`: selects nothing).
    services: HashMap<String, BTreeMap<String, Option<Labels>>>,
    controllers: HashMap<(ControllerKind, String, String), ControllerSelector>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControllerSelector {
    /// A ReplicationController's map selector.
    Map(Labels),
    /// A ReplicaSet's or StatefulSet's label selector.
    Selector(Selector),
}

impl Cache {
    pub fn new() -> Cache {
        Cache::default()
    }

    /// The nodes that can take pods, in a stable order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.order.iter().filter_map(|n| self.nodes.get(n))
    }

    pub fn node_count(&self) -> usize {
        self.order.len()
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name).filter(|n| n.node.is_some())
    }

    pub fn node_names(&self) -> Vec<String> {
        self.order.clone()
    }

    pub fn upsert_node(&mut self, node: Node) -> NodeChange {
        let name = node.metadata.name.clone().unwrap_or_default();
        let info = self
            .nodes
            .entry(name.clone())
            .or_insert_with(|| NodeInfo::new(&name));
        let change = match &info.node {
            None => NodeChange::Added,
            Some(old) if scheduling_properties_changed(old, &node) => NodeChange::Updated,
            Some(_) => NodeChange::Unchanged,
        };
        if change == NodeChange::Added {
            self.order.push(name);
        }
        info.set_node(Arc::new(node));
        change
    }

    pub fn remove_node(&mut self, name: &str) {
        self.order.retain(|n| n != name);
        if let Some(info) = self.nodes.get_mut(name) {
            if info.pods.is_empty() {
                self.nodes.remove(name);
            } else {
                info.node = None;
                info.taints.clear();
            }
        }
    }

    /// Adds or updates an assigned pod (one with `spec.nodeName`), confirming it if this
    /// scheduler had assumed it.
    pub fn upsert_pod(&mut self, pod: Arc<Pod>) -> PodChange {
        let info = Arc::new(PodInfo::assigned(pod));
        let node = info.node_name().to_string();
        let change = match self.pods.get(&info.key) {
            None => PodChange::Added,
            Some(e) if e.assumed && e.info.uid == info.uid => PodChange::Confirmed,
            Some(e) if e.node != node || e.info.labels() != info.labels() => PodChange::Updated,
            Some(_) => PodChange::Unchanged,
        };
        self.remove_pod(&info.key);
        self.insert(info, node, false);
        change
    }

    fn insert(&mut self, info: Arc<PodInfo>, node: String, assumed: bool) {
        self.nodes
            .entry(node.clone())
            .or_insert_with(|| NodeInfo::new(&node))
            .add_pod(info.clone());
        self.pods.insert(
            info.key.clone(),
            PodEntry {
                node,
                assumed,
                info,
            },
        );
    }

    /// Removes a pod (assigned or assumed); returns whether it was in the cache.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        let Some(e) = self.pods.remove(key) else {
            return false;
        };
        if let Some(n) = self.nodes.get_mut(&e.node) {
            n.remove_pod(key);
            if n.node.is_none() && n.pods.is_empty() {
                self.nodes.remove(&e.node);
            }
        }
        true
    }

    /// Counts the pod on `node` until it is confirmed or forgotten.
    pub fn assume(&mut self, info: Arc<PodInfo>, node: &str) {
        self.remove_pod(&info.key);
        self.insert(info, node.to_string(), true);
    }

    /// Drops an assumed pod (its binding failed); a confirmed pod stays.
    pub fn forget(&mut self, key: &str) {
        if self.pods.get(key).is_some_and(|e| e.assumed) {
            self.remove_pod(key);
        }
    }

    pub fn contains_pod(&self, key: &str) -> bool {
        self.pods.contains_key(key)
    }

    /// The uid of the cached pod with this key, and whether it is only assumed.
    pub fn pod_state(&self, key: &str) -> Option<(&str, bool)> {
        self.pods.get(key).map(|e| (e.info.uid.as_str(), e.assumed))
    }

    /// Keys of the pods the watch has shown assigned (assumed pods excluded).
    pub fn assigned_pod_keys(&self) -> Vec<String> {
        self.pods
            .iter()
            .filter(|(_, e)| !e.assumed)
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// Sets a namespace's labels; returns whether they changed.
    pub fn set_namespace(&mut self, name: &str, labels: Labels) -> bool {
        self.namespaces.insert(name.to_string(), labels.clone()) != Some(labels)
    }

    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    pub fn namespace_names(&self) -> Vec<String> {
        self.namespaces.keys().cloned().collect()
    }

    pub fn namespace_labels(&self, name: &str) -> &Labels {
        self.namespaces.get(name).unwrap_or(no_labels())
    }

    /// Names of the namespaces whose labels match.
    pub fn namespaces_matching(&self, sel: &Selector) -> Vec<String> {
        self.namespaces
            .iter()
            .filter(|(_, l)| sel.matches(l))
            .map(|(n, _)| n.clone())
            .collect()
    }

    pub fn set_service(&mut self, ns: &str, name: &str, selector: Option<Labels>) {
        self.services
            .entry(ns.to_string())
            .or_default()
            .insert(name.to_string(), selector);
    }

    pub fn remove_service(&mut self, ns: &str, name: &str) {
        if let Some(m) = self.services.get_mut(ns) {
            m.remove(name);
            if m.is_empty() {
                self.services.remove(ns);
            }
        }
    }

    pub fn service_keys(&self) -> Vec<String> {
        self.services
            .iter()
            .flat_map(|(ns, m)| m.keys().map(move |n| format!("{ns}/{n}")))
            .collect()
    }

    pub fn set_controller(
        &mut self,
        kind: ControllerKind,
        ns: &str,
        name: &str,
        sel: ControllerSelector,
    ) {
        self.controllers
            .insert((kind, ns.to_string(), name.to_string()), sel);
    }

    pub fn remove_controller(&mut self, kind: ControllerKind, ns: &str, name: &str) {
        self.controllers
            .remove(&(kind, ns.to_string(), name.to_string()));
    }

    pub fn controller_keys(&self, kind: ControllerKind) -> Vec<String> {
        self.controllers
            .keys()
            .filter(|k| k.0 == kind)
            .map(|k| format!("{}/{}", k.1, k.2))
            .collect()
    }

    /// `helper.DefaultSelector`: the union of the selectors of the services that select
    /// the pod, and of its controlling ReplicationController, ReplicaSet or StatefulSet.
    pub fn default_selector(&self, pod: &PodInfo) -> Selector {
        let mut set = Labels::new();
        for sel in self
            .services
            .get(pod.namespace())
            .into_iter()
            .flat_map(|m| m.values())
            .flatten()
        {
            if Selector::from_map(sel).matches(pod.labels()) {
                set.extend(sel.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        let mut selector = Selector::from_map(&set);
        let owner = pod
            .pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true));
        let Some(owner) = owner else {
            return selector;
        };
        let kind = match (owner.api_version.as_str(), owner.kind.as_str()) {
            ("v1", "ReplicationController") => ControllerKind::ReplicationController,
            ("apps/v1", "ReplicaSet") => ControllerKind::ReplicaSet,
            ("apps/v1", "StatefulSet") => ControllerKind::StatefulSet,
            _ => return selector,
        };
        let key = (kind, pod.namespace().to_string(), owner.name.clone());
        match self.controllers.get(&key) {
            Some(ControllerSelector::Map(m)) => {
                set.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
                selector = Selector::from_map(&set);
            }
            Some(ControllerSelector::Selector(s)) => {
                selector.add(s.requirements().iter().cloned());
            }
            None => {}
        }
        selector
    }
}

/// Upstream's `nodeSchedulingPropertiesChange`: a node update matters to unschedulable
/// pods when it changes what the filters read (heartbeat times do not).
fn scheduling_properties_changed(old: &Node, new: &Node) -> bool {
    let spec = |n: &Node| {
        let s = n.spec.as_ref();
        (
            s.and_then(|s| s.unschedulable).unwrap_or(false),
            s.and_then(|s| s.taints.clone()).unwrap_or_default(),
        )
    };
    let status = |n: &Node| {
        let s = n.status.as_ref();
        let conds: Vec<(String, String)> = s
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect();
        (s.and_then(|s| s.allocatable.clone()), conds)
    };
    old.metadata.labels != new.metadata.labels
        || old.metadata.annotations != new.metadata.annotations
        || spec(old) != spec(new)
        || status(old) != status(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{node, pod_req};
    use serde_json::json;

    enum Step {
        Node(Node),
        DeleteNode(&'static str),
        Pod(Pod),
        Assume(Pod, &'static str),
        Forget(&'static str),
        DeletePod(&'static str),
    }

    /// Applies the steps; checks each step's reported change and, at the end,
    /// (node, pod count, requested milli-cpu) for every schedulable node, in order.
    fn check(steps: Vec<(Step, &str)>, want: &[(&str, usize, i64)]) {
        let mut c = Cache::new();
        for (step, expect) in steps {
            let got = match step {
                Step::Node(n) => format!("{:?}", c.upsert_node(n)),
                Step::DeleteNode(n) => {
                    c.remove_node(n);
                    String::new()
                }
                Step::Pod(p) => format!("{:?}", c.upsert_pod(Arc::new(p))),
                Step::Assume(p, n) => {
                    c.assume(Arc::new(PodInfo::new(Arc::new(p))), n);
                    String::new()
                }
                Step::Forget(k) => {
                    c.forget(k);
                    String::new()
                }
                Step::DeletePod(k) => c.remove_pod(k).to_string(),
            };
            assert_eq!(got, expect);
        }
        let got: Vec<(String, usize, i64)> = c
            .nodes()
            .map(|n| (n.name.clone(), n.pods.len(), n.requested.milli_cpu))
            .collect();
        let want: Vec<(String, usize, i64)> = want
            .iter()
            .map(|(n, p, r)| (n.to_string(), *p, *r))
            .collect();
        assert_eq!(got, want);
    }

    fn bound(name: &str, node: &str, cpu: &str) -> Pod {
        pod_req("ns", name, cpu, "", json!({"spec": {"nodeName": node}}))
    }

    #[test]
    fn assume_confirm_forget() {
        let n1 = || node("n1", "4", "8Gi", 110, json!({}));
        let n2 = || node("n2", "4", "8Gi", 110, json!({}));
        check(
            vec![
                (Step::Node(n1()), "Added"),
                (Step::Node(n2()), "Added"),
                (Step::Node(n1()), "Unchanged"),
                (
                    Step::Node(node(
                        "n1",
                        "4",
                        "8Gi",
                        110,
                        json!({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}),
                    )),
                    "Updated",
                ),
                (
                    Step::Node(node(
                        "n1",
                        "4",
                        "8Gi",
                        110,
                        json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:00:00Z"}]}}),
                    )),
                    "Updated",
                ),
                (
                    Step::Node(node(
                        "n1",
                        "4",
                        "8Gi",
                        110,
                        json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:00:10Z"}]}}),
                    )),
                    "Unchanged",
                ),
                (Step::Pod(bound("a", "n1", "1")), "Added"),
                (Step::Pod(bound("a", "n1", "1")), "Unchanged"),
                (
                    Step::Assume(pod_req("ns", "b", "500m", "", json!({})), "n2"),
                    "",
                ),
                (
                    Step::Assume(pod_req("ns", "c", "250m", "", json!({})), "n2"),
                    "",
                ),
                (Step::Pod(bound("b", "n2", "500m")), "Confirmed"),
                // A confirmed pod is not forgotten; an assumed one is.
                (Step::Forget("ns/b"), ""),
                (Step::Forget("ns/c"), ""),
                (Step::DeletePod("ns/zzz"), "false"),
                (Step::Pod(bound("d", "n3", "1")), "Added"),
            ],
            &[("n1", 1, 1000), ("n2", 1, 500)],
        );
        // A pod on a node not seen yet counts there once the node arrives; a deleted node
        // with pods is no candidate.
        check(
            vec![
                (Step::Pod(bound("a", "n1", "1")), "Added"),
                (Step::Node(n1()), "Added"),
                (Step::Node(n2()), "Added"),
                (Step::Pod(bound("b", "n2", "1")), "Added"),
                (Step::DeleteNode("n2"), ""),
                (Step::DeletePod("ns/a"), "true"),
            ],
            &[("n1", 0, 0)],
        );
    }

    #[test]
    fn default_selector() {
        let mut c = Cache::new();
        c.set_service(
            "ns",
            "web",
            Some([("app".to_string(), "web".to_string())].into()),
        );
        c.set_service("ns", "all", Some(Labels::new()));
        c.set_service("ns", "none", None);
        c.set_service(
            "other",
            "web2",
            Some([("tier".to_string(), "fe".to_string())].into()),
        );
        c.set_controller(
            ControllerKind::ReplicationController,
            "ns",
            "rc",
            ControllerSelector::Map([("rc".to_string(), "1".to_string())].into()),
        );
        c.set_controller(
            ControllerKind::ReplicaSet,
            "ns",
            "rs",
            ControllerSelector::Selector(Selector::from_label_selector(Some(
                &serde_json::from_value(json!({"matchLabels": {"rs": "1"}})).unwrap(),
            ))),
        );
        let owner = |kind: &str, api: &str, name: &str| json!({"metadata": {"ownerReferences": [{"apiVersion": api, "kind": kind, "name": name, "uid": "u", "controller": true}]}});
        type Case = (
            serde_json::Value,
            serde_json::Value,
            &'static [(&'static str, &'static str)],
            bool,
        );
        let cases: Vec<Case> = vec![
            // (labels, extra, a label set that must match, whether the selector is empty)
            (json!({"x": "y"}), json!({}), &[], true),
            (
                json!({"app": "web", "tier": "fe"}),
                json!({}),
                &[("app", "web")],
                false,
            ),
            (
                json!({"rc": "1"}),
                owner("ReplicationController", "v1", "rc"),
                &[("rc", "1")],
                false,
            ),
            (
                json!({"rs": "1", "app": "web"}),
                owner("ReplicaSet", "apps/v1", "rs"),
                &[("rs", "1"), ("app", "web")],
                false,
            ),
            (
                json!({"rs": "1"}),
                owner("ReplicaSet", "apps/v1", "missing"),
                &[],
                true,
            ),
            (
                json!({"rs": "1"}),
                owner("Job", "batch/v1", "rs"),
                &[],
                true,
            ),
        ];
        for (labels, extra, must, empty) in cases {
            let mut e = json!({"metadata": {"labels": labels}});
            crate::testutil::merge(&mut e, extra);
            let p = PodInfo::new(Arc::new(pod_req("ns", "p", "", "", e)));
            let s = c.default_selector(&p);
            assert_eq!(s.is_empty(), empty, "{labels}");
            let set: Labels = must
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert!(s.matches(&set), "{labels}: {s:?} should match {set:?}");
        }
    }
}
