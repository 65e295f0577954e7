//! The scheduling queue (upstream's `PriorityQueue`): an active queue ordered by pod
//! priority then arrival, a back-off queue (1 s doubling to 10 s per attempt), and the
//! unschedulable pods, which a cluster event that may help them moves back (to back-off
//! while their back-off lasts), and which are retried anyway after 5 minutes. Pods with
//! scheduling gates wait until the gates are removed.
//!
//! Each pod is in exactly one place: [`Place`]. Pure: time is passed in.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use tokio::time::{Duration, Instant};

use crate::filter::{Plugin, Plugins};

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// `podMaxInUnschedulablePodsDuration`.
pub const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(5 * 60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Active,
    Backoff,
    Unschedulable,
    /// Has scheduling gates.
    Gated,
    /// Popped: being scheduled, or its binding is in flight.
    InFlight,
}

/// Cluster events that may make unschedulable pods schedulable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterEvent {
    NodeAdd,
    NodeUpdate,
    AssignedPodAdd,
    AssignedPodDelete,
    NamespaceChange,
}

impl ClusterEvent {
    /// The plugins whose rejections this event may resolve (upstream's
    /// `EventsToRegister`, without queueing hints).
    pub fn plugins(self) -> Plugins {
        use Plugin::*;
        match self {
            ClusterEvent::NodeAdd | ClusterEvent::NodeUpdate => Plugins::ALL,
            ClusterEvent::AssignedPodAdd => Plugins::of(&[InterPodAffinity, PodTopologySpread]),
            ClusterEvent::AssignedPodDelete => Plugins::of(&[
                NodeResourcesFit,
                NodePorts,
                InterPodAffinity,
                PodTopologySpread,
            ]),
            ClusterEvent::NamespaceChange => Plugins::of(&[InterPodAffinity]),
        }
    }
}

#[derive(Debug)]
struct Entry {
    pod: Arc<Pod>,
    priority: i32,
    attempts: u32,
    /// When the pod last entered the queue (ordering, unschedulable age, back-off start).
    timestamp: Instant,
    place: Place,
    plugins: Plugins,
    /// Bumped whenever the pod moves, so that stale heap items are skipped.
    generation: u64,
}

#[derive(Debug, PartialEq, Eq)]
struct ActiveItem {
    priority: i32,
    timestamp: Instant,
    seq: u64,
    key: String,
    generation: u64,
}

impl Ord for ActiveItem {
    fn cmp(&self, o: &Self) -> Ordering {
        self.priority
            .cmp(&o.priority)
            .then_with(|| o.timestamp.cmp(&self.timestamp))
            .then_with(|| o.seq.cmp(&self.seq))
    }
}

impl PartialOrd for ActiveItem {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

#[derive(Debug, Default)]
pub struct Queue {
    entries: HashMap<String, Entry>,
    active: BinaryHeap<ActiveItem>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String, u64)>>,
    unschedulable: HashSet<String>,
    /// (entered, key, generation) of unschedulable pods, oldest first.
    unschedulable_age: VecDeque<(Instant, String, u64)>,
    seq: u64,
}

pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

fn gated(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty())
}

fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// `isPodUpdated` in spirit: a change other than status and bookkeeping.
fn relevant_change(old: &Pod, new: &Pod) -> bool {
    old.spec != new.spec
        || old.metadata.labels != new.metadata.labels
        || old.metadata.annotations != new.metadata.annotations
}

/// `calculateBackoffDuration`: 1 s for the first attempt, doubling, at most 10 s.
pub fn backoff_duration(attempts: u32) -> Duration {
    let mut d = INITIAL_BACKOFF;
    for _ in 1..attempts {
        if d > MAX_BACKOFF - d {
            return MAX_BACKOFF;
        }
        d += d;
    }
    d.min(MAX_BACKOFF)
}

impl Queue {
    pub fn new() -> Queue {
        Queue::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn place(&self, key: &str) -> Option<Place> {
        self.entries.get(key).map(|e| e.place)
    }

    pub fn keys(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// Adds a pending pod, or updates the one with its key.
    pub fn add(&mut self, pod: Arc<Pod>, now: Instant) {
        let key = pod_key(&pod);
        if let Some(e) = self.entries.get_mut(&key) {
            if e.pod.metadata.uid == pod.metadata.uid {
                return self.update(&key, pod, now);
            }
            self.delete(&key);
        }
        let place = if gated(&pod) {
            Place::Gated
        } else {
            Place::Active
        };
        self.entries.insert(
            key.clone(),
            Entry {
                priority: priority(&pod),
                pod,
                attempts: 0,
                timestamp: now,
                place: Place::Gated,
                plugins: Plugins::default(),
                generation: 0,
            },
        );
        if place == Place::Active {
            self.activate(&key);
        }
    }

    fn update(&mut self, key: &str, pod: Arc<Pod>, now: Instant) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        let changed = relevant_change(&e.pod, &pod);
        let reprioritized = priority(&pod) != e.priority;
        e.priority = priority(&pod);
        e.pod = pod;
        match e.place {
            Place::Gated if !gated(&e.pod) => {
                e.timestamp = now;
                self.activate(key);
            }
            Place::Active if reprioritized => self.activate(key),
            Place::Unschedulable if changed => self.requeue(key, now),
            _ => {}
        }
    }

    pub fn delete(&mut self, key: &str) {
        if self.entries.remove(key).is_some() {
            self.unschedulable.remove(key);
        }
    }

    fn bump(&mut self, key: &str, place: Place) -> Option<&mut Entry> {
        let e = self.entries.get_mut(key)?;
        if e.place == Place::Unschedulable {
            self.unschedulable.remove(key);
        }
        e.place = place;
        e.generation += 1;
        Some(e)
    }

    fn activate(&mut self, key: &str) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(e) = self.bump(key, Place::Active) {
            let item = ActiveItem {
                priority: e.priority,
                timestamp: e.timestamp,
                seq,
                key: key.to_string(),
                generation: e.generation,
            };
            self.active.push(item);
        }
    }

    fn backoff_until(e: &Entry) -> Instant {
        e.timestamp + backoff_duration(e.attempts)
    }

    fn back_off(&mut self, key: &str) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(e) = self.bump(key, Place::Backoff) {
            let item = (Self::backoff_until(e), seq, key.to_string(), e.generation);
            self.backoff.push(Reverse(item));
        }
    }

    /// Moves an unschedulable pod back: to back-off while its back-off lasts.
    fn requeue(&mut self, key: &str, now: Instant) {
        let Some(e) = self.entries.get(key) else {
            return;
        };
        if e.attempts > 0 && Self::backoff_until(e) > now {
            self.back_off(key);
        } else {
            self.activate(key);
        }
    }

    /// Takes the next pod to schedule (after [`Queue::flush`]).
    pub fn pop(&mut self) -> Option<Arc<Pod>> {
        while let Some(item) = self.active.pop() {
            let Some(e) = self.entries.get_mut(&item.key) else {
                continue;
            };
            if e.place != Place::Active || e.generation != item.generation {
                continue;
            }
            e.place = Place::InFlight;
            e.generation += 1;
            e.attempts += 1;
            return Some(e.pod.clone());
        }
        None
    }

    /// The popped pod fits no node; `plugins` rejected it.
    pub fn unschedulable(&mut self, key: &str, plugins: Plugins, now: Instant) {
        let Some(e) = self.bump(key, Place::Unschedulable) else {
            return;
        };
        e.timestamp = now;
        e.plugins = plugins;
        let generation = e.generation;
        self.unschedulable.insert(key.to_string());
        self.unschedulable_age
            .push_back((now, key.to_string(), generation));
    }

    /// The popped pod failed for another reason (its binding failed): back off.
    pub fn error(&mut self, key: &str, now: Instant) {
        if let Some(e) = self.entries.get_mut(key) {
            e.timestamp = now;
            self.back_off(key);
        }
    }

    /// The popped pod is bound (or gone): forget it.
    pub fn done(&mut self, key: &str) {
        self.delete(key);
    }

    /// A cluster event: moves the unschedulable pods that a plugin it concerns rejected.
    pub fn move_all(&mut self, event: ClusterEvent, now: Instant) {
        let plugins = event.plugins();
        let keys: Vec<String> = self
            .unschedulable
            .iter()
            .filter(|k| {
                self.entries
                    .get(*k)
                    .is_some_and(|e| e.plugins.intersects(plugins))
            })
            .cloned()
            .collect();
        for k in keys {
            self.requeue(&k, now);
        }
    }

    /// Moves finished back-offs to the active queue, and unschedulable pods that have
    /// waited 5 minutes back.
    pub fn flush(&mut self, now: Instant) {
        while let Some(Reverse((at, _, _, _))) = self.backoff.peek() {
            if *at > now {
                break;
            }
            let Reverse((_, _, key, generation)) = self.backoff.pop().expect("peeked");
            if self
                .entries
                .get(&key)
                .is_some_and(|e| e.place == Place::Backoff && e.generation == generation)
            {
                self.activate(&key);
            }
        }
        while let Some((at, _, _)) = self.unschedulable_age.front() {
            if *at + MAX_UNSCHEDULABLE > now {
                break;
            }
            let (_, key, generation) = self.unschedulable_age.pop_front().expect("peeked");
            if self
                .entries
                .get(&key)
                .is_some_and(|e| e.place == Place::Unschedulable && e.generation == generation)
            {
                self.requeue(&key, now);
            }
        }
    }

    /// When [`Queue::flush`] next has something to do.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let b = self.backoff.peek().map(|Reverse((at, ..))| *at);
        let u = self
            .unschedulable_age
            .front()
            .map(|(at, ..)| *at + MAX_UNSCHEDULABLE);
        match (b, u) {
            (Some(b), Some(u)) => Some(b.min(u)),
            (b, u) => b.or(u),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::pod_req;
    use serde_json::{json, Value};

    enum Op {
        /// Add (or update) pod `name` with this extra JSON.
        Add(&'static str, Value),
        Delete(&'static str),
        /// Pop; expect this pod (or none: "").
        Pop(&'static str),
        Unschedulable(&'static str, &'static [Plugin]),
        Error(&'static str),
        Done(&'static str),
        Move(ClusterEvent),
        /// Advance the clock by this many milliseconds, then flush.
        Wait(u64),
        /// Expect the pod's place.
        At(&'static str, Option<Place>),
        /// Expect the next wake-up, in milliseconds from now.
        Wakeup(Option<u64>),
    }

    fn check(name: &str, ops: Vec<Op>) {
        let mut q = Queue::new();
        let mut now = Instant::now();
        let key = |n: &str| format!("ns/{n}");
        for (i, op) in ops.into_iter().enumerate() {
            let at = format!("{name}: step {i}");
            match op {
                Op::Add(n, extra) => q.add(Arc::new(pod_req("ns", n, "", "", extra)), now),
                Op::Delete(n) => q.delete(&key(n)),
                Op::Pop(want) => {
                    q.flush(now);
                    let got = q
                        .pop()
                        .map(|p| p.metadata.name.clone().unwrap())
                        .unwrap_or_default();
                    assert_eq!(got, want, "{at}");
                }
                Op::Unschedulable(n, p) => q.unschedulable(&key(n), Plugins::of(p), now),
                Op::Error(n) => q.error(&key(n), now),
                Op::Done(n) => q.done(&key(n)),
                Op::Move(ev) => q.move_all(ev, now),
                Op::Wait(ms) => {
                    now += Duration::from_millis(ms);
                    q.flush(now);
                }
                Op::At(n, want) => assert_eq!(q.place(&key(n)), want, "{at}"),
                Op::Wakeup(want) => assert_eq!(
                    q.next_wakeup().map(|t| (t - now).as_millis() as u64),
                    want,
                    "{at}"
                ),
            }
        }
    }

    use ClusterEvent::*;
    use Op::*;
    use Plugin::*;

    #[test]
    fn ordering() {
        check(
            "priority then arrival",
            vec![
                Add("a", json!({})),
                Add("b", json!({"spec": {"priority": 10}})),
                Add("c", json!({})),
                Add("d", json!({"spec": {"priority": 10}})),
                Pop("b"),
                Pop("d"),
                Pop("a"),
                Pop("c"),
                Pop(""),
            ],
        );
        check(
            "a priority change reorders",
            vec![
                Add("a", json!({})),
                Add("b", json!({})),
                Add("b", json!({"spec": {"priority": 5}})),
                Pop("b"),
                Pop("a"),
            ],
        );
        check(
            "deleted pods are not popped",
            vec![
                Add("a", json!({})),
                Add("b", json!({})),
                Delete("a"),
                Pop("b"),
                Pop(""),
            ],
        );
        check(
            "gated until the gates go",
            vec![
                Add("a", json!({"spec": {"schedulingGates": [{"name": "g"}]}})),
                At("a", Some(Place::Gated)),
                Pop(""),
                Add("a", json!({"spec": {"schedulingGates": []}})),
                Pop("a"),
                At("a", Some(Place::InFlight)),
            ],
        );
        check(
            "an in-flight pod is not requeued by updates",
            vec![
                Add("a", json!({})),
                Pop("a"),
                Add("a", json!({"metadata": {"labels": {"x": "y"}}})),
                At("a", Some(Place::InFlight)),
                Pop(""),
                Done("a"),
                At("a", None),
            ],
        );
    }

    #[test]
    fn unschedulable_and_backoff() {
        check(
            "moved by a relevant event, after its back-off",
            vec![
                Add("a", json!({})),
                Pop("a"),
                Unschedulable("a", &[NodeResourcesFit]),
                At("a", Some(Place::Unschedulable)),
                Move(AssignedPodAdd),
                At("a", Some(Place::Unschedulable)),
                Wakeup(Some(300_000)),
                Move(AssignedPodDelete),
                At("a", Some(Place::Backoff)),
                Wakeup(Some(1000)),
                Wait(999),
                At("a", Some(Place::Backoff)),
                Wait(1),
                At("a", Some(Place::Active)),
                Pop("a"),
                // Second attempt: 2 s of back-off.
                Unschedulable("a", &[TaintToleration]),
                Wait(1500),
                Move(NodeUpdate),
                At("a", Some(Place::Backoff)),
                Wait(499),
                At("a", Some(Place::Backoff)),
                Wait(1),
                Pop("a"),
            ],
        );
        check(
            "moved straight to active once the back-off is over",
            vec![
                Add("a", json!({})),
                Pop("a"),
                Unschedulable("a", &[NodeAffinity]),
                Wait(5000),
                Move(NodeAdd),
                At("a", Some(Place::Active)),
            ],
        );
        check(
            "flushed after five minutes",
            vec![
                Add("a", json!({})),
                Pop("a"),
                Unschedulable("a", &[NodeResourcesFit]),
                Wait(299_999),
                At("a", Some(Place::Unschedulable)),
                Wait(1),
                At("a", Some(Place::Active)),
                Wakeup(None),
            ],
        );
        check(
            "a spec change requeues; a status change does not",
            vec![
                Add("a", json!({})),
                Pop("a"),
                Unschedulable("a", &[NodeResourcesFit]),
                Add(
                    "a",
                    json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False"}]}}),
                ),
                At("a", Some(Place::Unschedulable)),
                Add(
                    "a",
                    json!({"spec": {"tolerations": [{"operator": "Exists"}]}}),
                ),
                At("a", Some(Place::Backoff)),
            ],
        );
        check(
            "binding errors back off, doubling up to 10 s",
            vec![
                Add("a", json!({})),
                Pop("a"),
                Error("a"),
                Wakeup(Some(1000)),
                Wait(1000),
                Pop("a"),
                Error("a"),
                Wakeup(Some(2000)),
                Wait(2000),
                Pop("a"),
                Error("a"),
                Wakeup(Some(4000)),
                Wait(4000),
                Pop("a"),
                Error("a"),
                Wakeup(Some(8000)),
                Wait(8000),
                Pop("a"),
                Error("a"),
                Wakeup(Some(10000)),
                Wait(10000),
                Pop("a"),
            ],
        );
        check(
            "a pod deleted while unschedulable is gone",
            vec![
                Add("a", json!({})),
                Pop("a"),
                Unschedulable("a", &[NodeResourcesFit]),
                Delete("a"),
                Move(NodeAdd),
                Wait(300_000),
                Pop(""),
                At("a", None),
            ],
        );
    }

    #[test]
    fn backoff_durations() {
        for (attempts, secs) in [(0, 1), (1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (40, 10)] {
            assert_eq!(
                backoff_duration(attempts),
                Duration::from_secs(secs),
                "{attempts} attempts"
            );
        }
    }
}
