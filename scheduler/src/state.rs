//! The scheduler's state machine, without I/O: watch events go into the cache and the
//! queue (with upstream informers' relist semantics), the next pod is scheduled on the
//! snapshot and assumed on its node, and binding outcomes confirm or undo that.
//! `lib.rs` feeds it and carries out what it decides.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ReplicationController, Service};
use kube::runtime::watcher;
use tokio::time::Instant;

use crate::cache::{Cache, ControllerKind, ControllerSelector, NodeChange, PodChange};
use crate::cycle::{self, CycleState, Outcome};
use crate::nodeinfo::PodInfo;
use crate::queue::{pod_key, ClusterEvent, Queue};
use crate::selector::Selector;

/// The scheduler name served (an empty `schedulerName` means it too).
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// The watched kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Node,
    Pod,
    Namespace,
    Service,
    ReplicationController,
    ReplicaSet,
    StatefulSet,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Node,
        Kind::Pod,
        Kind::Namespace,
        Kind::Service,
        Kind::ReplicationController,
        Kind::ReplicaSet,
        Kind::StatefulSet,
    ];

    /// Resources the cluster may not serve: the scheduler works without them.
    pub fn optional(self) -> bool {
        matches!(self, Kind::ReplicaSet | Kind::StatefulSet)
    }
}

/// A watch event, or word that an optional kind is not served.
pub enum Update {
    Node(Box<watcher::Event<Node>>),
    Pod(Box<watcher::Event<Pod>>),
    Namespace(Box<watcher::Event<Namespace>>),
    Service(Box<watcher::Event<Service>>),
    ReplicationController(Box<watcher::Event<ReplicationController>>),
    ReplicaSet(Box<watcher::Event<ReplicaSet>>),
    StatefulSet(Box<watcher::Event<StatefulSet>>),
    Unserved(Kind),
}

/// How a binding ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindOutcome {
    Bound,
    /// 409 or 404: already bound, being deleted, or gone. Dropped.
    Gone,
    /// Any other failure: retried after a back-off.
    Failed,
}

/// Whether this scheduler places the pod: ours, not being deleted.
pub fn responsible(pod: &Pod) -> bool {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or("");
    (name.is_empty() || name == SCHEDULER_NAME) && pod.metadata.deletion_timestamp.is_none()
}

fn terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

fn object_key<K: kube::Resource>(o: &K) -> String {
    let m = o.meta();
    match &m.namespace {
        Some(ns) => format!("{ns}/{}", m.name.as_deref().unwrap_or("")),
        None => m.name.clone().unwrap_or_default(),
    }
}

pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

pub struct State {
    pub cache: Cache,
    pub queue: Queue,
    cycle: CycleState,
    /// Kinds whose initial list is complete (or that are not served).
    synced: HashSet<Kind>,
    /// Keys seen since a (re)list began, per kind.
    listing: BTreeMap<Kind, HashSet<String>>,
}

impl State {
    pub fn new(seed: u64) -> State {
        State {
            cache: Cache::new(),
            queue: Queue::new(),
            cycle: CycleState::new(seed),
            synced: HashSet::new(),
            listing: BTreeMap::new(),
        }
    }

    /// Every watch has listed once: scheduling may start (as upstream waits for its
    /// informers to sync).
    pub fn ready(&self) -> bool {
        Kind::ALL.iter().all(|k| self.synced.contains(k))
    }

    /// Pops the next pod and schedules it: a pod that fits is assumed on its node.
    pub fn schedule_next(&mut self, now: Instant) -> Option<(Arc<Pod>, Outcome)> {
        self.queue.flush(now);
        let pod = self.queue.pop()?;
        let info = Arc::new(PodInfo::new(pod.clone()));
        let outcome = cycle::schedule_one(&self.cache, &info, &mut self.cycle);
        match &outcome {
            Outcome::Bind(node) => self.cache.assume(info, node),
            Outcome::Unschedulable { plugins, .. } => {
                self.queue.unschedulable(&info.key, *plugins, now)
            }
        }
        Some((pod, outcome))
    }

    /// A binding ended.
    pub fn bound(&mut self, key: &str, outcome: BindOutcome, now: Instant) {
        match outcome {
            BindOutcome::Bound => self.queue.done(key),
            BindOutcome::Gone => {
                self.cache.forget(key);
                self.queue.done(key);
                self.queue.move_all(ClusterEvent::AssignedPodDelete, now);
            }
            BindOutcome::Failed => {
                self.cache.forget(key);
                self.queue.error(key, now);
                self.queue.move_all(ClusterEvent::AssignedPodDelete, now);
            }
        }
    }

    pub fn apply(&mut self, u: Update, now: Instant) {
        match u {
            Update::Node(e) => self.apply_event(Kind::Node, *e, now, Self::on_node, |s, k, _| {
                s.cache.remove_node(k)
            }),
            Update::Pod(e) => {
                self.apply_event(Kind::Pod, *e, now, Self::on_pod, Self::on_pod_deleted)
            }
            Update::Namespace(e) => {
                self.apply_event(Kind::Namespace, *e, now, Self::on_namespace, |s, k, _| {
                    s.cache.remove_namespace(k)
                })
            }
            Update::Service(e) => {
                self.apply_event(Kind::Service, *e, now, Self::on_service, |s, k, _| {
                    let (ns, name) = split_key(k);
                    s.cache.remove_service(ns, name)
                })
            }
            Update::ReplicationController(e) => self.apply_event(
                Kind::ReplicationController,
                *e,
                now,
                |s, rc: ReplicationController, _| {
                    let sel = rc
                        .spec
                        .as_ref()
                        .and_then(|s| s.selector.clone())
                        .unwrap_or_default();
                    s.set_controller(
                        ControllerKind::ReplicationController,
                        &rc.metadata,
                        ControllerSelector::Map(sel),
                    )
                },
                |s, k, _| s.remove_controller(ControllerKind::ReplicationController, k),
            ),
            Update::ReplicaSet(e) => self.apply_event(
                Kind::ReplicaSet,
                *e,
                now,
                |s, rs: ReplicaSet, _| {
                    let sel = Selector::from_label_selector(rs.spec.as_ref().map(|s| &s.selector));
                    s.set_controller(
                        ControllerKind::ReplicaSet,
                        &rs.metadata,
                        ControllerSelector::Selector(sel),
                    )
                },
                |s, k, _| s.remove_controller(ControllerKind::ReplicaSet, k),
            ),
            Update::StatefulSet(e) => self.apply_event(
                Kind::StatefulSet,
                *e,
                now,
                |s, ss: StatefulSet, _| {
                    let sel = Selector::from_label_selector(ss.spec.as_ref().map(|s| &s.selector));
                    s.set_controller(
                        ControllerKind::StatefulSet,
                        &ss.metadata,
                        ControllerSelector::Selector(sel),
                    )
                },
                |s, k, _| s.remove_controller(ControllerKind::StatefulSet, k),
            ),
            Update::Unserved(kind) => {
                self.synced.insert(kind);
            }
        }
    }

    fn apply_event<K: kube::Resource>(
        &mut self,
        kind: Kind,
        e: watcher::Event<K>,
        now: Instant,
        on_apply: fn(&mut Self, K, Instant),
        on_delete: fn(&mut Self, &str, Instant),
    ) {
        match e {
            watcher::Event::Init => {
                self.listing.insert(kind, HashSet::new());
            }
            watcher::Event::InitApply(o) => {
                if let Some(seen) = self.listing.get_mut(&kind) {
                    seen.insert(object_key(&o));
                }
                on_apply(self, o, now);
            }
            watcher::Event::InitDone => {
                let seen = self.listing.remove(&kind).unwrap_or_default();
                for k in self.known_keys(kind) {
                    if !seen.contains(&k) {
                        on_delete(self, &k, now);
                    }
                }
                self.synced.insert(kind);
            }
            watcher::Event::Apply(o) => on_apply(self, o, now),
            watcher::Event::Delete(o) => on_delete(self, &object_key(&o), now),
        }
    }

    fn known_keys(&self, kind: Kind) -> Vec<String> {
        match kind {
            Kind::Node => self.cache.node_names(),
            Kind::Pod => {
                let mut k = self.cache.assigned_pod_keys();
                k.extend(self.queue.keys());
                k
            }
            Kind::Namespace => self.cache.namespace_names(),
            Kind::Service => self.cache.service_keys(),
            Kind::ReplicationController => self
                .cache
                .controller_keys(ControllerKind::ReplicationController),
            Kind::ReplicaSet => self.cache.controller_keys(ControllerKind::ReplicaSet),
            Kind::StatefulSet => self.cache.controller_keys(ControllerKind::StatefulSet),
        }
    }

    fn on_node(&mut self, node: Node, now: Instant) {
        match self.cache.upsert_node(node) {
            NodeChange::Added => self.queue.move_all(ClusterEvent::NodeAdd, now),
            NodeChange::Updated => self.queue.move_all(ClusterEvent::NodeUpdate, now),
            NodeChange::Unchanged => {}
        }
    }

    fn on_pod(&mut self, pod: Pod, now: Instant) {
        let key = pod_key(&pod);
        if terminal(&pod) {
            // Finished pods hold nothing (upstream does not even watch them).
            return self.on_pod_deleted(&key, now);
        }
        let assigned = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        if assigned {
            self.queue.delete(&key);
            match self.cache.upsert_pod(Arc::new(pod)) {
                PodChange::Added | PodChange::Updated | PodChange::Confirmed => {
                    self.queue.move_all(ClusterEvent::AssignedPodAdd, now)
                }
                PodChange::Unchanged => {}
            }
            return;
        }
        if let Some((uid, _)) = self.cache.pod_state(&key) {
            if Some(uid) == pod.metadata.uid.as_deref() {
                // Assumed, its binding in flight: an older view of it.
                return;
            }
            // A new pod with the old one's name: the old one is gone.
            self.on_pod_deleted(&key, now);
        }
        if responsible(&pod) {
            self.queue.add(Arc::new(pod), now);
        } else {
            self.queue.delete(&key);
        }
    }

    fn on_pod_deleted(&mut self, key: &str, now: Instant) {
        self.queue.delete(key);
        if self.cache.remove_pod(key) {
            self.queue.move_all(ClusterEvent::AssignedPodDelete, now);
        }
    }

    fn on_namespace(&mut self, ns: Namespace, now: Instant) {
        let name = ns.metadata.name.clone().unwrap_or_default();
        if self
            .cache
            .set_namespace(&name, ns.metadata.labels.unwrap_or_default())
        {
            self.queue.move_all(ClusterEvent::NamespaceChange, now);
        }
    }

    fn on_service(&mut self, svc: Service, _: Instant) {
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        self.cache
            .set_service(&ns, &name, svc.spec.and_then(|s| s.selector));
    }

    fn set_controller(
        &mut self,
        kind: ControllerKind,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        sel: ControllerSelector,
    ) {
        let ns = meta.namespace.as_deref().unwrap_or("");
        let name = meta.name.as_deref().unwrap_or("");
        self.cache.set_controller(kind, ns, name, sel);
    }

    fn remove_controller(&mut self, kind: ControllerKind, key: &str) {
        let (ns, name) = split_key(key);
        self.cache.remove_controller(kind, ns, name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Place;
    use crate::testutil::{node, pod_req};
    use serde_json::json;
    use tokio::time::Duration;

    enum Step {
        /// A watch event.
        Watch(Update),
        /// Lists of every kind but these complete (empty).
        SyncAllBut(&'static [Kind]),
        /// Schedules the next pod; expect its name and node ("" when unschedulable), or
        /// nothing ("").
        Schedule(&'static str),
        Bound(&'static str, BindOutcome),
        Wait(u64),
    }

    /// Runs the steps, then checks where each named pod is: a queue place, `bound <node>`
    /// / `assumed <node>` in the cache, or `-` when the scheduler forgot it.
    fn check(name: &str, steps: Vec<Step>, want: &[(&str, &str)]) {
        let mut s = State::new(1);
        let mut now = Instant::now();
        for (i, step) in steps.into_iter().enumerate() {
            match step {
                Step::Watch(u) => s.apply(u, now),
                Step::SyncAllBut(kinds) => {
                    for k in Kind::ALL.iter().filter(|k| !kinds.contains(k)) {
                        s.synced.insert(*k);
                    }
                }
                Step::Schedule(want) => {
                    let got = match s.ready().then(|| s.schedule_next(now)).flatten() {
                        None => String::new(),
                        Some((p, Outcome::Bind(n))) => {
                            format!("{} {n}", p.metadata.name.clone().unwrap())
                        }
                        Some((p, Outcome::Unschedulable { .. })) => {
                            format!("{} ", p.metadata.name.clone().unwrap())
                        }
                    };
                    assert_eq!(got, want, "{name}: step {i}");
                }
                Step::Bound(p, o) => s.bound(&format!("ns/{p}"), o, now),
                Step::Wait(ms) => now += Duration::from_millis(ms),
            }
        }
        for (p, place) in want {
            let key = format!("ns/{p}");
            let got = match (s.queue.place(&key), s.cache.pod_state(&key)) {
                (Some(Place::InFlight), Some((_, true))) | (None, Some((_, true))) => {
                    let node = s
                        .cache
                        .nodes()
                        .find(|n| n.pods.iter().any(|x| x.key == key))
                        .map(|n| n.name.clone())
                        .unwrap_or_default();
                    format!("assumed {node}")
                }
                (None, Some((_, false))) => {
                    let node = s
                        .cache
                        .nodes()
                        .find(|n| n.pods.iter().any(|x| x.key == key))
                        .map(|n| n.name.clone())
                        .unwrap_or_default();
                    format!("bound {node}")
                }
                (Some(place), _) => format!("{place:?}"),
                (None, None) => "-".to_string(),
            };
            assert_eq!(got, *place, "{name}: {p}");
        }
    }

    fn pod_ev(e: watcher::Event<Pod>) -> Update {
        Update::Pod(Box::new(e))
    }

    fn node_ev(e: watcher::Event<Node>) -> Update {
        Update::Node(Box::new(e))
    }

    fn pending(name: &str, cpu: &str) -> Update {
        pod_ev(watcher::Event::Apply(pod_req(
            "ns",
            name,
            cpu,
            "",
            json!({}),
        )))
    }

    fn with(name: &str, cpu: &str, extra: serde_json::Value) -> Update {
        Update::Pod(Box::new(watcher::Event::Apply(pod_req(
            "ns", name, cpu, "", extra,
        ))))
    }

    fn on_node(name: &str, cpu: &str, n: &str) -> Update {
        with(name, cpu, json!({"spec": {"nodeName": n}}))
    }

    fn n1() -> Update {
        node_ev(watcher::Event::Apply(node(
            "n1",
            "2",
            "8Gi",
            110,
            json!({}),
        )))
    }

    use Step::*;

    #[test]
    fn scheduling_waits_for_sync() {
        check(
            "not before every list is done",
            vec![
                Watch(pending("a", "1")),
                SyncAllBut(&[Kind::Node]),
                Schedule(""),
                Watch(Update::Node(Box::new(watcher::Event::Init))),
                Watch(node_ev(watcher::Event::InitApply(node(
                    "n1",
                    "2",
                    "8Gi",
                    110,
                    json!({}),
                )))),
                Schedule(""),
                Watch(Update::Node(Box::new(watcher::Event::InitDone))),
                Schedule("a n1"),
            ],
            &[("a", "assumed n1")],
        );
        check(
            "unserved optional kinds count as synced",
            vec![
                Watch(n1()),
                Watch(pending("a", "1")),
                SyncAllBut(&[Kind::ReplicaSet, Kind::StatefulSet]),
                Schedule(""),
                Watch(Update::Unserved(Kind::ReplicaSet)),
                Watch(Update::Unserved(Kind::StatefulSet)),
                Schedule("a n1"),
            ],
            &[("a", "assumed n1")],
        );
    }

    #[test]
    fn pods() {
        check(
            "assume, confirm by watch, binding result",
            vec![
                SyncAllBut(&[]),
                Watch(n1()),
                Watch(pending("a", "1")),
                Schedule("a n1"),
                Watch(pending("a", "1")),
                Watch(on_node("a", "1", "n1")),
                Bound("a", BindOutcome::Bound),
            ],
            &[("a", "bound n1")],
        );
        check(
            "binding result before the watch",
            vec![
                SyncAllBut(&[]),
                Watch(n1()),
                Watch(pending("a", "1")),
                Schedule("a n1"),
                Bound("a", BindOutcome::Bound),
                Watch(pending("a", "1")),
            ],
            &[("a", "assumed n1")],
        );
        check(
            "a failed binding frees the node and backs off",
            vec![
                SyncAllBut(&[]),
                Watch(n1()),
                Watch(pending("a", "2")),
                Watch(pending("b", "2")),
                Schedule("a n1"),
                Schedule("b "),
                Bound("a", BindOutcome::Failed),
                Schedule(""),
            ],
            &[("a", "Backoff"), ("b", "Backoff")],
        );
        check(
            "a conflict drops the pod",
            vec![
                SyncAllBut(&[]),
                Watch(n1()),
                Watch(pending("a", "1")),
                Schedule("a n1"),
                Bound("a", BindOutcome::Gone),
            ],
            &[("a", "-")],
        );
        check(
            "a deleted bound pod frees its node for an unschedulable one",
            vec![
                SyncAllBut(&[]),
                Watch(n1()),
                Watch(on_node("x", "2", "n1")),
                Watch(pending("a", "1")),
                Schedule("a "),
                Watch(pod_ev(watcher::Event::Delete(pod_req(
                    "ns",
                    "x",
                    "2",
                    "",
                    json!({"spec": {"nodeName": "n1"}}),
                )))),
                Wait(1000),
                Schedule("a n1"),
            ],
            &[("a", "assumed n1"), ("x", "-")],
        );
        check(
            "a finished pod frees its node",
            vec![
                SyncAllBut(&[]),
                Watch(n1()),
                Watch(on_node("x", "2", "n1")),
                Watch(with(
                    "x",
                    "2",
                    json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}}),
                )),
                Watch(pending("a", "1")),
                Schedule("a n1"),
            ],
            &[("x", "-")],
        );
        check(
            "other schedulers' pods, and pods being deleted, are left alone",
            vec![
                SyncAllBut(&[]),
                Watch(n1()),
                Watch(with("a", "1", json!({"spec": {"schedulerName": "other"}}))),
                Watch(with(
                    "b",
                    "1",
                    json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
                )),
                Schedule(""),
            ],
            &[("a", "-"), ("b", "-")],
        );
        check(
            "a node added moves unschedulable pods",
            vec![
                SyncAllBut(&[]),
                Watch(pending("a", "1")),
                Schedule("a "),
                Watch(n1()),
                Schedule(""),
                Wait(1000),
                Schedule("a n1"),
            ],
            &[("a", "assumed n1")],
        );
    }

    #[test]
    fn relist() {
        check(
            "what a relist does not show is gone",
            vec![
                SyncAllBut(&[]),
                Watch(n1()),
                Watch(on_node("x", "1", "n1")),
                Watch(pending("a", "1")),
                Watch(pending("b", "1")),
                Watch(Update::Pod(Box::new(watcher::Event::Init))),
                Watch(pod_ev(watcher::Event::InitApply(pod_req(
                    "ns",
                    "b",
                    "1",
                    "",
                    json!({}),
                )))),
                Watch(Update::Pod(Box::new(watcher::Event::InitDone))),
            ],
            &[("x", "-"), ("a", "-"), ("b", "Active")],
        );
    }
}
