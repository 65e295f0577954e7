//! The scheduler: places pending pods on nodes, as kube-scheduler does with its default
//! profile, talking to the cluster only through the API with `kube`.
//!
//! - [`cache`]: nodes, the pods on them (bound, or assumed while their binding is in
//!   flight), namespaces, services and controllers, fed by watches.
//! - [`queue`]: the scheduling queue (active, back-off, unschedulable, gated).
//! - [`filter`], [`score`]: upstream's default filter and score plugins, pure functions
//!   of a pod and a node snapshot; [`cycle`]: one scheduling cycle and the
//!   `FitError` message.
//! - This module: the I/O. One task owns the cache and the queue and schedules pods one
//!   at a time on the in-memory snapshot; bindings (`pods/binding`, at most
//!   [`MAX_BINDINGS_IN_FLIGHT`] at once), status patches and events run beside it.
//!
//! The scheduler never writes a pod except through `pods/binding` and, for a pod no
//! node fits, its `PodScheduled` condition through `pods/status`.

pub mod cache;
pub mod cycle;
pub mod filter;
pub mod nodeinfo;
pub mod quantity;
pub mod queue;
pub mod score;
pub mod selector;
#[cfg(test)]
mod testutil;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Binding, Event, EventSource, Namespace, Node, ObjectReference, Pod, ReplicationController,
    Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::Client;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};
use tracing::{debug, info, warn};

use cache::{Cache, ControllerKind, ControllerSelector, NodeChange, PodChange};
use cycle::{CycleState, Outcome};
use nodeinfo::PodInfo;
use queue::{pod_key, ClusterEvent, Queue};
use selector::Selector;

/// The scheduler name this scheduler serves (and an empty `schedulerName`).
pub const SCHEDULER_NAME: &str = "default-scheduler";
/// How many bindings may be in flight at once.
pub const MAX_BINDINGS_IN_FLIGHT: usize = 16;
fn max_bindings() -> usize {
    static V: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *V.get_or_init(|| std::env::var("XB").ok().and_then(|v| v.parse().ok()).unwrap_or(MAX_BINDINGS_IN_FLIGHT))
}
fn max_writes() -> usize {
    static V: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *V.get_or_init(|| std::env::var("XW").ok().and_then(|v| v.parse().ok()).unwrap_or(MAX_WRITES_IN_FLIGHT))
}
/// How many status patches and events may be in flight at once.
const MAX_WRITES_IN_FLIGHT: usize = 8;
/// Queued status patches and events beyond this are dropped (as upstream's event
/// broadcaster drops when its queue is full).
const WRITE_QUEUE: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("the watches ended")]
    WatchesEnded,
}

/// Schedules pods until the future is dropped; returns only on a fatal error.
pub async fn run(client: kube::Client) -> anyhow::Result<()> {
    let (tx, updates) = mpsc::channel(4096);
    let mut watches = Vec::new();
    watches.push(spawn_watch(
        Api::<Node>::all(client.clone()),
        tx.clone(),
        Kind::Node,
        Update::Node,
    ));
    watches.push(spawn_watch(
        Api::<Pod>::all(client.clone()),
        tx.clone(),
        Kind::Pod,
        Update::Pod,
    ));
    watches.push(spawn_watch(
        Api::<Namespace>::all(client.clone()),
        tx.clone(),
        Kind::Namespace,
        Update::Namespace,
    ));
    watches.push(spawn_watch(
        Api::<Service>::all(client.clone()),
        tx.clone(),
        Kind::Service,
        Update::Service,
    ));
    watches.push(spawn_watch(
        Api::<ReplicationController>::all(client.clone()),
        tx.clone(),
        Kind::ReplicationController,
        Update::ReplicationController,
    ));
    watches.push(spawn_watch(
        Api::<ReplicaSet>::all(client.clone()),
        tx.clone(),
        Kind::ReplicaSet,
        Update::ReplicaSet,
    ));
    watches.push(spawn_watch(
        Api::<StatefulSet>::all(client.clone()),
        tx,
        Kind::StatefulSet,
        Update::StatefulSet,
    ));
    // The watches end with this future.
    let _guard = AbortOnDrop(watches);
    let writes = spawn_writer(client.clone());
    let mut s = Scheduler::new(client, writes);
    Err(s.run(updates).await.into())
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Node,
    Pod,
    Namespace,
    Service,
    ReplicationController,
    ReplicaSet,
    StatefulSet,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::Node,
        Kind::Pod,
        Kind::Namespace,
        Kind::Service,
        Kind::ReplicationController,
        Kind::ReplicaSet,
        Kind::StatefulSet,
    ];

    /// Resources the cluster may not serve: the scheduler works without them.
    fn optional(self) -> bool {
        matches!(self, Kind::ReplicaSet | Kind::StatefulSet)
    }
}

enum Update {
    Node(watcher::Event<Node>),
    Pod(watcher::Event<Pod>),
    Namespace(watcher::Event<Namespace>),
    Service(watcher::Event<Service>),
    ReplicationController(watcher::Event<ReplicationController>),
    ReplicaSet(watcher::Event<ReplicaSet>),
    StatefulSet(watcher::Event<StatefulSet>),
    /// An optional resource is not served.
    Unserved(Kind),
}

fn spawn_watch<K>(
    api: Api<K>,
    tx: mpsc::Sender<Update>,
    kind: Kind,
    wrap: fn(watcher::Event<K>) -> Update,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
{
    tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(item) = stream.next().await {
            match item {
                Ok(ev) => {
                    if tx.send(wrap(ev)).await.is_err() {
                        return;
                    }
                }
                Err(watcher::Error::InitialListFailed(kube::Error::Api(s)))
                    if kind.optional() && s.code == 404 =>
                {
                    debug!(?kind, "not served; scheduling without it");
                    let _ = tx.send(Update::Unserved(kind)).await;
                    return;
                }
                Err(e) => warn!(?kind, error = %e, "watch failed; retrying"),
            }
        }
    })
}

/// A write beside the scheduling loop: fire and forget.
enum Write {
    Event(Box<Event>),
    Status {
        namespace: String,
        name: String,
        patch: serde_json::Value,
    },
}

fn spawn_writer(client: Client) -> mpsc::Sender<Write> {
    let (tx, rx) = mpsc::channel::<Write>(WRITE_QUEUE);
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|w| (w, rx)) });
    tokio::spawn(write_all(client, stream));
    tx
}

async fn write_all(client: Client, writes: impl Stream<Item = Write>) {
    writes
        .for_each_concurrent(max_writes(), |w| {
            let client = client.clone();
            async move {
                match w {
                    Write::Event(ev) => {
                        let ns = ev.metadata.namespace.clone().unwrap_or_default();
                        let api: Api<Event> = Api::namespaced(client, &ns);
                        if let Err(e) = api.create(&PostParams::default(), &ev).await {
                            debug!(error = %e, "event not recorded");
                        }
                    }
                    Write::Status {
                        namespace,
                        name,
                        patch,
                    } => {
                        let api: Api<Pod> = Api::namespaced(client, &namespace);
                        let pp = PatchParams {
                            field_manager: Some("kube-scheduler".into()),
                            ..Default::default()
                        };
                        if let Err(e) = api.patch_status(&name, &pp, &Patch::Strategic(patch)).await
                        {
                            debug!(%namespace, %name, error = %e, "pod condition not updated");
                        }
                    }
                }
            }
        })
        .await;
}

/// What became of a binding.
struct Bound {
    key: String,
    pod: Arc<Pod>,
    node: String,
    result: Result<(), kube::Error>,
}

/// The scheduling loop's state: owned by one task, so the cache, the queue and every
/// scheduling decision are consistent without locks.
struct Scheduler {
    client: Client,
    cache: Cache,
    queue: Queue,
    cycle: CycleState,
    /// Kinds whose initial list is complete (or that are not served).
    synced: HashSet<Kind>,
    /// Keys seen since a (re)list began, per kind.
    listing: BTreeMap<KindKey, HashSet<String>>,
    in_flight: usize,
    bound_tx: mpsc::UnboundedSender<Bound>,
    bound_rx: mpsc::UnboundedReceiver<Bound>,
    writes: mpsc::Sender<Write>,
    instance: String,
}

/// `Kind` as an ordered map key.
type KindKey = u8;

fn kind_key(k: Kind) -> KindKey {
    k as u8
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Whether this scheduler places the pod: ours, unassigned, not being deleted, not done.
fn responsible(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let name = spec.and_then(|s| s.scheduler_name.as_deref()).unwrap_or("");
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

fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

impl Scheduler {
    fn new(client: Client, writes: mpsc::Sender<Write>) -> Scheduler {
        let (bound_tx, bound_rx) = mpsc::unbounded_channel();
        Scheduler {
            client,
            cache: Cache::new(),
            queue: Queue::new(),
            cycle: CycleState::new(now_nanos() as u64),
            synced: HashSet::new(),
            listing: BTreeMap::new(),
            in_flight: 0,
            bound_tx,
            bound_rx,
            writes,
            instance: format!("{SCHEDULER_NAME}-{}", hostname()),
        }
    }

    fn ready(&self) -> bool {
        Kind::ALL.iter().all(|k| self.synced.contains(k))
    }

    async fn run(&mut self, mut updates: mpsc::Receiver<Update>) -> Error {
        let mut was_ready = false;
        loop {
            // Apply what the watches delivered, and binding outcomes, before deciding.
            for _ in 0..1024 {
                match updates.try_recv() {
                    Ok(u) => self.apply(u),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => return Error::WatchesEnded,
                }
            }
            while let Ok(b) = self.bound_rx.try_recv() {
                self.on_bound(b);
            }
            let now = Instant::now();
            self.queue.flush(now);
            if self.ready() {
                if !was_ready {
                    was_ready = true;
                    info!(
                        nodes = self.cache.node_count(),
                        pending = self.queue.len(),
                        "scheduler caches synced"
                    );
                }
                if self.in_flight < max_bindings() {
                    if let Some(pod) = self.queue.pop() {
                        self.schedule(pod, now);
                        continue;
                    }
                }
            }
            let wake = self
                .queue
                .next_wakeup()
                .unwrap_or(now + Duration::from_secs(60));
            tokio::select! {
                u = updates.recv() => match u {
                    Some(u) => self.apply(u),
                    None => return Error::WatchesEnded,
                },
                Some(b) = self.bound_rx.recv() => self.on_bound(b),
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    fn schedule(&mut self, pod: Arc<Pod>, now: Instant) {
        let info = Arc::new(PodInfo::new(pod.clone()));
        let key = info.key.clone();
        match cycle::schedule_one(&self.cache, &info, &mut self.cycle) {
            Outcome::Bind(node) => {
                self.cache.assume(info, &node);
                self.in_flight += 1;
                self.spawn_bind(key, pod, node);
            }
            Outcome::Unschedulable { message, plugins } => {
                debug!(pod = %key, %message, "unschedulable");
                self.queue.unschedulable(&key, plugins, now);
                self.report_failure(&pod, "Unschedulable", &message);
            }
        }
    }

    fn spawn_bind(&self, key: String, pod: Arc<Pod>, node: String) {
        let client = self.client.clone();
        let tx = self.bound_tx.clone();
        tokio::spawn(async move {
            let (ns, name) = split_key(&key);
            let api: Api<Pod> = Api::namespaced(client, ns);
            let binding = Binding {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    namespace: Some(ns.to_string()),
                    uid: pod.metadata.uid.clone(),
                    ..Default::default()
                },
                target: ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Node".into()),
                    name: Some(node.clone()),
                    ..Default::default()
                },
            };
            let result = api
                .create_subresource::<_, serde_json::Value>(
                    "binding",
                    name,
                    &PostParams::default(),
                    &binding,
                )
                .await
                .map(|_| ());
            let _ = tx.send(Bound {
                key,
                pod,
                node,
                result,
            });
        });
    }

    fn on_bound(&mut self, b: Bound) {
        self.in_flight -= 1;
        let now = Instant::now();
        match b.result {
            Ok(()) => {
                debug!(pod = %b.key, node = %b.node, "bound");
                self.queue.done(&b.key);
                let msg = format!("Successfully assigned {} to {}", b.key, b.node);
                self.event(&b.pod, "Normal", "Scheduled", "Binding", &msg);
            }
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                // Already bound (or being deleted, or gone): nothing to do.
                debug!(pod = %b.key, reason = %s.message, "not bound");
                self.cache.forget(&b.key);
                self.queue.done(&b.key);
                self.queue.move_all(ClusterEvent::AssignedPodDelete, now);
            }
            Err(e) => {
                warn!(pod = %b.key, node = %b.node, error = %e, "binding failed");
                self.cache.forget(&b.key);
                self.queue.error(&b.key, now);
                self.queue.move_all(ClusterEvent::AssignedPodDelete, now);
                self.report_failure(&b.pod, "SchedulerError", &format!("Binding rejected: {e}"));
            }
        }
    }

    /// The pod's `PodScheduled` condition (patched only if it changes) and a
    /// `FailedScheduling` event.
    fn report_failure(&self, pod: &Pod, reason: &str, message: &str) {
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
        let same = current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message)
        });
        if !same {
            let transition = match current {
                Some(c) if c.status == "False" => c.last_transition_time.clone(),
                _ => None,
            }
            .unwrap_or_else(|| Time(k8s_openapi::jiff::Timestamp::now()));
            let patch = json!({"status": {"conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": reason,
                "message": message,
                "lastProbeTime": null,
                "lastTransitionTime": transition,
            }]}});
            self.write(Write::Status {
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                name: pod.metadata.name.clone().unwrap_or_default(),
                patch,
            });
        }
        self.event(pod, "Warning", "FailedScheduling", "Scheduling", message);
    }

    fn event(&self, pod: &Pod, type_: &str, reason: &str, action: &str, message: &str) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let mut message = message.to_string();
        if message.len() > 1024 {
            let mut cut = 1024;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{:x}", now_nanos())),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: Some(ns),
                name: Some(name),
                uid: pod.metadata.uid.clone(),
                resource_version: pod.metadata.resource_version.clone(),
                ..Default::default()
            },
            reason: Some(reason.into()),
            message: Some(message),
            type_: Some(type_.into()),
            action: Some(action.into()),
            source: Some(EventSource {
                component: Some(SCHEDULER_NAME.into()),
                host: None,
            }),
            reporting_component: Some(SCHEDULER_NAME.into()),
            reporting_instance: Some(self.instance.clone()),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            ..Default::default()
        };
        self.write(Write::Event(Box::new(ev)));
    }

    fn write(&self, w: Write) {
        if self.writes.try_send(w).is_err() {
            debug!("write queue full; dropped a status patch or event");
        }
    }

    /// Applies a watch event, with upstream informers' relist semantics: what a relist
    /// did not show is deleted.
    fn apply(&mut self, u: Update) {
        match u {
            Update::Node(e) => {
                self.apply_event(Kind::Node, e, Self::on_node, Self::on_node_deleted)
            }
            Update::Pod(e) => self.apply_event(Kind::Pod, e, Self::on_pod, Self::on_pod_deleted),
            Update::Namespace(e) => {
                self.apply_event(Kind::Namespace, e, Self::on_namespace, |s, k| {
                    s.cache.remove_namespace(k)
                })
            }
            Update::Service(e) => self.apply_event(Kind::Service, e, Self::on_service, |s, k| {
                let (ns, name) = split_key(k);
                s.cache.remove_service(ns, name)
            }),
            Update::ReplicationController(e) => {
                self.apply_event(Kind::ReplicationController, e, Self::on_rc, |s, k| {
                    let (ns, name) = split_key(k);
                    s.cache
                        .remove_controller(ControllerKind::ReplicationController, ns, name)
                })
            }
            Update::ReplicaSet(e) => self.apply_event(Kind::ReplicaSet, e, Self::on_rs, |s, k| {
                let (ns, name) = split_key(k);
                s.cache
                    .remove_controller(ControllerKind::ReplicaSet, ns, name)
            }),
            Update::StatefulSet(e) => {
                self.apply_event(Kind::StatefulSet, e, Self::on_ss, |s, k| {
                    let (ns, name) = split_key(k);
                    s.cache
                        .remove_controller(ControllerKind::StatefulSet, ns, name)
                })
            }
            Update::Unserved(kind) => {
                self.synced.insert(kind);
            }
        }
    }

    fn apply_event<K: kube::Resource>(
        &mut self,
        kind: Kind,
        e: watcher::Event<K>,
        on_apply: fn(&mut Self, K),
        on_delete: fn(&mut Self, &str),
    ) {
        match e {
            watcher::Event::Init => {
                self.listing.insert(kind_key(kind), HashSet::new());
            }
            watcher::Event::InitApply(o) => {
                if let Some(seen) = self.listing.get_mut(&kind_key(kind)) {
                    seen.insert(object_key(&o));
                }
                on_apply(self, o);
            }
            watcher::Event::InitDone => {
                let seen = self.listing.remove(&kind_key(kind)).unwrap_or_default();
                for k in self.known_keys(kind) {
                    if !seen.contains(&k) {
                        on_delete(self, &k);
                    }
                }
                self.synced.insert(kind);
            }
            watcher::Event::Apply(o) => on_apply(self, o),
            watcher::Event::Delete(o) => on_delete(self, &object_key(&o)),
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

    fn on_node(&mut self, node: Node) {
        let now = Instant::now();
        match self.cache.upsert_node(node) {
            NodeChange::Added => self.queue.move_all(ClusterEvent::NodeAdd, now),
            NodeChange::Updated => self.queue.move_all(ClusterEvent::NodeUpdate, now),
            NodeChange::Unchanged => {}
        }
    }

    fn on_node_deleted(&mut self, name: &str) {
        self.cache.remove_node(name);
    }

    fn on_pod(&mut self, pod: Pod) {
        let now = Instant::now();
        let key = pod_key(&pod);
        if terminal(&pod) {
            return self.on_pod_deleted(&key);
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
                // Assumed, its binding in flight: this is an older view of it.
                return;
            }
            // A new pod with the old one's name: the old one is gone.
            self.on_pod_deleted(&key);
        }
        if responsible(&pod) {
            self.queue.add(Arc::new(pod), now);
        } else {
            self.queue.delete(&key);
        }
    }

    fn on_pod_deleted(&mut self, key: &str) {
        self.queue.delete(key);
        if self.cache.remove_pod(key) {
            self.queue
                .move_all(ClusterEvent::AssignedPodDelete, Instant::now());
        }
    }

    fn on_namespace(&mut self, ns: Namespace) {
        let name = ns.metadata.name.clone().unwrap_or_default();
        if self
            .cache
            .set_namespace(&name, ns.metadata.labels.unwrap_or_default())
        {
            self.queue
                .move_all(ClusterEvent::NamespaceChange, Instant::now());
        }
    }

    fn on_service(&mut self, svc: Service) {
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let selector = svc.spec.and_then(|s| s.selector);
        self.cache.set_service(&ns, &name, selector);
    }

    fn on_rc(&mut self, rc: ReplicationController) {
        let ns = rc.metadata.namespace.clone().unwrap_or_default();
        let name = rc.metadata.name.clone().unwrap_or_default();
        let sel = rc.spec.and_then(|s| s.selector).unwrap_or_default();
        self.cache.set_controller(
            ControllerKind::ReplicationController,
            &ns,
            &name,
            ControllerSelector::Map(sel),
        );
    }

    fn on_rs(&mut self, rs: ReplicaSet) {
        let ns = rs.metadata.namespace.clone().unwrap_or_default();
        let name = rs.metadata.name.clone().unwrap_or_default();
        let sel = Selector::from_label_selector(rs.spec.as_ref().map(|s| &s.selector));
        self.cache.set_controller(
            ControllerKind::ReplicaSet,
            &ns,
            &name,
            ControllerSelector::Selector(sel),
        );
    }

    fn on_ss(&mut self, ss: StatefulSet) {
        let ns = ss.metadata.namespace.clone().unwrap_or_default();
        let name = ss.metadata.name.clone().unwrap_or_default();
        let sel = Selector::from_label_selector(ss.spec.as_ref().map(|s| &s.selector));
        self.cache.set_controller(
            ControllerKind::StatefulSet,
            &ns,
            &name,
            ControllerSelector::Selector(sel),
        );
    }
}
