//! The scheduler: places pending pods on nodes, as kube-scheduler does with its default
//! profile, talking to the cluster only through the API with `kube`.
//!
//! - [`cache`]: nodes, the pods on them (bound, or assumed while their binding is in
//!   flight), namespaces, services and controllers, fed by watches.
//! - [`queue`]: the scheduling queue (active, back-off, unschedulable, gated).
//! - [`filter`], [`score`]: upstream's default filter and score plugins, pure functions
//!   of a pod and a node snapshot; [`cycle`]: one scheduling cycle and the `FitError`
//!   message; [`state`]: the state machine tying watch events, the queue, the cache and
//!   binding outcomes together.
//! - This module: the I/O. One task owns the state and schedules pods one at a time on
//!   the in-memory snapshot; bindings (`pods/binding`, at most
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
pub mod state;
#[cfg(test)]
mod testutil;

use std::collections::HashMap;
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

use cycle::Outcome;
use queue::pod_key;
pub use state::SCHEDULER_NAME;
use state::{split_key, BindOutcome, Kind, State, Update};

/// How many bindings may be in flight at once.
pub const MAX_BINDINGS_IN_FLIGHT: usize = 32;
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
    let c = &client;
    let watches = vec![
        spawn_watch(Api::<Node>::all(c.clone()), tx.clone(), Kind::Node, |e| {
            Update::Node(Box::new(e))
        }),
        spawn_slim_watch(
            Api::<Pod>::all(c.clone()),
            tx.clone(),
            Kind::Pod,
            |e| Update::Pod(Box::new(e)),
            slim_pod,
        ),
        spawn_watch(
            Api::<Namespace>::all(c.clone()),
            tx.clone(),
            Kind::Namespace,
            |e| Update::Namespace(Box::new(e)),
        ),
        spawn_watch(
            Api::<Service>::all(c.clone()),
            tx.clone(),
            Kind::Service,
            |e| Update::Service(Box::new(e)),
        ),
        spawn_watch(
            Api::<ReplicationController>::all(c.clone()),
            tx.clone(),
            Kind::ReplicationController,
            |e| Update::ReplicationController(Box::new(e)),
        ),
        spawn_watch(
            Api::<ReplicaSet>::all(c.clone()),
            tx.clone(),
            Kind::ReplicaSet,
            |e| Update::ReplicaSet(Box::new(e)),
        ),
        spawn_watch(
            Api::<StatefulSet>::all(c.clone()),
            tx,
            Kind::StatefulSet,
            |e| Update::StatefulSet(Box::new(e)),
        ),
    ];
    // The watches end with this future.
    let _guard = AbortOnDrop(watches);
    let writes = spawn_writer(client.clone());
    let mut s = Scheduler::new(client, writes);
    Err(s.run(updates).await.into())
}

/// What the scheduler never reads of a pod, dropped before the pod is queued or cached
/// (it holds every assigned pod): volumes (k8s-openapi's `Volume` is 3 KB before any
/// content), container statuses, and of each container all but what requests, host ports
/// and sidecar accounting need (name, ports, resources, restartPolicy).
fn slim_pod(pod: &mut Pod) {
    if let Some(status) = pod.status.as_mut() {
        status.container_statuses = None;
        status.init_container_statuses = None;
        status.ephemeral_container_statuses = None;
    }
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    spec.volumes = None;
    spec.ephemeral_containers = None;
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        *c = k8s_openapi::api::core::v1::Container {
            name: std::mem::take(&mut c.name),
            ports: c.ports.take(),
            resources: c.resources.take(),
            restart_policy: c.restart_policy.take(),
            ..Default::default()
        };
    }
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
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
    spawn_slim_watch(api, tx, kind, wrap, |_| {})
}

/// [`spawn_watch`], each object also trimmed by `slim` to what the scheduler reads.
fn spawn_slim_watch<K>(
    api: Api<K>,
    tx: mpsc::Sender<Update>,
    kind: Kind,
    wrap: fn(watcher::Event<K>) -> Update,
    slim: fn(&mut K),
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
{
    tokio::spawn(async move {
        // managedFields are most of an object's memory and the scheduler never reads them.
        let mut stream = watcher(api, watcher::Config::default())
            .modify(move |o| {
                o.meta_mut().managed_fields = None;
                slim(o);
            })
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
    /// A repeat of an event: its new count and last timestamp.
    EventRepeat {
        namespace: String,
        name: String,
        patch: serde_json::Value,
    },
    Status {
        namespace: String,
        name: String,
        patch: serde_json::Value,
    },
    /// Two writes in order (a pod's condition before the event about it, as upstream
    /// readers of the event expect the condition there).
    Then(Box<Write>, Box<Write>),
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
        .for_each_concurrent(MAX_WRITES_IN_FLIGHT, |w| write_one(client.clone(), w))
        .await;
}

fn write_one(client: Client, w: Write) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(async move {
        match w {
            Write::Then(first, second) => {
                write_one(client.clone(), *first).await;
                write_one(client, *second).await;
            }
            Write::Event(ev) => {
                let ns = ev.metadata.namespace.clone().unwrap_or_default();
                let api: Api<Event> = Api::namespaced(client, &ns);
                if let Err(e) = api.create(&PostParams::default(), &ev).await {
                    debug!(error = %e, "event not recorded");
                }
            }
            Write::EventRepeat {
                namespace,
                name,
                patch,
            } => {
                let api: Api<Event> = Api::namespaced(client, &namespace);
                let pp = PatchParams::default();
                if let Err(e) = api.patch(&name, &pp, &Patch::Merge(patch)).await {
                    debug!(error = %e, "event not updated");
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
                if let Err(e) = api.patch_status(&name, &pp, &Patch::Strategic(patch)).await {
                    debug!(%namespace, %name, error = %e, "pod condition not updated");
                }
            }
        }
    })
}

/// What became of a binding.
struct Bound {
    key: String,
    pod: Arc<Pod>,
    node: String,
    result: Result<(), kube::Error>,
}

/// The scheduling loop: owns the [`State`], so the cache, the queue and every
/// scheduling decision are consistent without locks.
struct Scheduler {
    client: Client,
    state: State,
    in_flight: usize,
    bound_tx: mpsc::UnboundedSender<Bound>,
    bound_rx: mpsc::UnboundedReceiver<Bound>,
    writes: mpsc::Sender<Write>,
    instance: String,
    /// The last `FailedScheduling` event of each pending pod: a repeat of the same
    /// message counts up that event (as client-go's event correlator does).
    failures: HashMap<String, Repeated>,
}

struct Repeated {
    event: String,
    message: String,
    count: i32,
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

impl Scheduler {
    fn new(client: Client, writes: mpsc::Sender<Write>) -> Scheduler {
        let (bound_tx, bound_rx) = mpsc::unbounded_channel();
        Scheduler {
            client,
            state: State::new(now_nanos() as u64),
            in_flight: 0,
            bound_tx,
            bound_rx,
            writes,
            instance: format!("{SCHEDULER_NAME}-{}", hostname()),
            failures: HashMap::new(),
        }
    }

    async fn run(&mut self, mut updates: mpsc::Receiver<Update>) -> Error {
        let mut was_ready = false;
        let mut cycles: u64 = 0;
        loop {
            // Apply what the watches delivered, and binding outcomes, before deciding.
            for _ in 0..1024 {
                match updates.try_recv() {
                    Ok(u) => self.state.apply(u, Instant::now()),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => return Error::WatchesEnded,
                }
            }
            while let Ok(b) = self.bound_rx.try_recv() {
                self.on_bound(b);
            }
            let now = Instant::now();
            if self.state.ready() {
                if !was_ready {
                    was_ready = true;
                    info!(
                        nodes = self.state.cache.node_count(),
                        pending = self.state.queue.len(),
                        "scheduler caches synced"
                    );
                }
                if self.in_flight < MAX_BINDINGS_IN_FLIGHT {
                    if let Some((pod, outcome)) = self.state.schedule_next(now) {
                        self.carry_out(pod, outcome);
                        cycles += 1;
                        if cycles.is_multiple_of(64) {
                            // A long run of unschedulable pods must not hold the thread.
                            tokio::task::yield_now().await;
                        }
                        continue;
                    }
                }
            }
            let wake = self
                .state
                .queue
                .next_wakeup()
                .unwrap_or(now + Duration::from_secs(60));
            tokio::select! {
                u = updates.recv() => match u {
                    Some(u) => self.state.apply(u, Instant::now()),
                    None => return Error::WatchesEnded,
                },
                Some(b) = self.bound_rx.recv() => self.on_bound(b),
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    fn carry_out(&mut self, pod: Arc<Pod>, outcome: Outcome) {
        let key = pod_key(&pod);
        match outcome {
            Outcome::Bind(node) => {
                self.in_flight += 1;
                self.spawn_bind(key, pod, node);
            }
            Outcome::Unschedulable { message, .. } => {
                debug!(pod = %key, %message, "unschedulable");
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
                self.state.bound(&b.key, BindOutcome::Bound, now);
                self.failures.remove(&b.key);
                let msg = format!("Successfully assigned {} to {}", b.key, b.node);
                let _ = self.event(&b.pod, "Normal", "Scheduled", "Binding", &msg);
            }
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                // Already bound (or being deleted, or gone): nothing to do.
                debug!(pod = %b.key, reason = %s.message, "not bound");
                self.state.bound(&b.key, BindOutcome::Gone, now);
                self.failures.remove(&b.key);
            }
            Err(e) => {
                warn!(pod = %b.key, node = %b.node, error = %e, "binding failed");
                self.state.bound(&b.key, BindOutcome::Failed, now);
                self.report_failure(&b.pod, "SchedulerError", &format!("Binding rejected: {e}"));
            }
        }
    }

    /// The pod's `PodScheduled` condition (patched only if it changes) and a
    /// `FailedScheduling` event (a repeat of the last one counts it up).
    fn report_failure(&mut self, pod: &Pod, reason: &str, message: &str) {
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
        let mut status = None;
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
            status = Some(Write::Status {
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                name: pod.metadata.name.clone().unwrap_or_default(),
                patch,
            });
        }
        let key = pod_key(pod);
        if let Some(r) = self.failures.get_mut(&key) {
            if r.message == message {
                r.count += 1;
                let patch = json!({
                    "count": r.count,
                    "lastTimestamp": Time(k8s_openapi::jiff::Timestamp::now()),
                });
                let w = Write::EventRepeat {
                    namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                    name: r.event.clone(),
                    patch,
                };
                if let Some(s) = status {
                    self.write(s);
                }
                return self.write(w);
            }
        }
        let (event, w) =
            self.event_write(pod, "Warning", "FailedScheduling", "Scheduling", message);
        self.write(match status {
            Some(s) => Write::Then(Box::new(s), Box::new(w)),
            None => w,
        });
        let r = Repeated {
            event,
            message: message.to_string(),
            count: 1,
        };
        self.failures.insert(key, r);
        // Forget pods that left the queue (bound elsewhere, deleted).
        if self.failures.len() > 2 * self.state.queue.len() + 1024 {
            let queue = &self.state.queue;
            self.failures.retain(|k, _| queue.place(k).is_some());
        }
    }

    /// Records an event about the pod; returns the event's name.
    fn event(&self, pod: &Pod, type_: &str, reason: &str, action: &str, message: &str) -> String {
        let (name, w) = self.event_write(pod, type_, reason, action, message);
        self.write(w);
        name
    }

    /// An event about the pod, its name and the write that records it.
    fn event_write(
        &self,
        pod: &Pod,
        type_: &str,
        reason: &str,
        action: &str,
        message: &str,
    ) -> (String, Write) {
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
        let event_name = format!("{name}.{:x}", now_nanos());
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(event_name.clone()),
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
        (event_name, Write::Event(Box::new(ev)))
    }

    fn write(&self, w: Write) {
        if self.writes.try_send(w).is_err() {
            debug!("write queue full; dropped a status patch or event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodeinfo::{host_ports, pod_requests};

    #[test]
    fn slim_pod_keeps_what_requests_ports_and_phase_need() {
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "labels": {"app": "a"}},
            "spec": {
                "nodeName": "n1",
                "volumes": [{"name": "v", "emptyDir": {}}],
                "initContainers": [{"name": "side", "restartPolicy": "Always",
                    "resources": {"requests": {"cpu": "100m"}}, "env": [{"name": "A", "value": "1"}]}],
                "containers": [{"name": "c", "image": "x", "command": ["sh"],
                    "ports": [{"containerPort": 80, "hostPort": 8080}],
                    "resources": {"requests": {"memory": "1Gi"}},
                    "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
            },
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "c", "image": "x", "imageID": "", "ready": true, "restartCount": 0}]},
        }))
        .unwrap();
        let before = pod_requests(&pod, false);
        slim_pod(&mut pod);
        assert_eq!(pod_requests(&pod, false), before);
        assert_eq!(host_ports(&pod).len(), 1);
        let spec = pod.spec.as_ref().unwrap();
        assert!(spec.volumes.is_none());
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        assert!(spec.containers[0].command.is_none() && spec.containers[0].volume_mounts.is_none());
        let init = &spec.init_containers.as_ref().unwrap()[0];
        assert_eq!(init.restart_policy.as_deref(), Some("Always"));
        assert!(init.env.is_none());
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(status.conditions.is_some() && status.container_statuses.is_none());
        assert_eq!(pod.metadata.labels.as_ref().unwrap()["app"], "a");
    }
}
