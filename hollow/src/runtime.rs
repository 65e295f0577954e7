//! The running hollow nodes: a task per node (registration, lease, node status), one
//! watch of bound pods and one of nodes feeding caches, and a bounded pool of workers
//! that act on pods through a work queue. All of them end when the run future is
//! dropped (they live in its `JoinSet`).

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use futures::{Future, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Client, ResourceExt};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tracing::Instrument;

use crate::ip::IpAllocator;
use crate::node::{self, NodeIdentity};
use crate::pod::{self, PodAction};
use crate::queue::{self, WorkQueue};
use crate::{Error, HollowConfig, REGISTER_CONCURRENCY, STATUS_WORKERS};

/// Where a hollow node is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// Registering (first start, or restart after a stop).
    Starting,
    /// Registered: renewing its lease, reporting its status and its pods.
    Ready,
    /// Stopped as a crashed machine: nothing renewed, its pods left as they are.
    Stopped,
}

/// A pod's cache and queue key: `namespace/name`.
type PodKey = String;

struct NodeSlot {
    id: NodeIdentity,
    state: watch::Sender<NodeState>,
    /// The Node as the API last showed it (watch, registration or status write).
    observed: Mutex<Option<Arc<Node>>>,
    registered_once: AtomicBool,
}

#[derive(Default)]
struct PodCache {
    pods: HashMap<PodKey, Arc<Pod>>,
    by_node: HashMap<String, HashSet<PodKey>>,
}

struct Shared {
    client: Client,
    cfg: HollowConfig,
    nodes: HashMap<String, Arc<NodeSlot>>,
    order: Vec<Arc<NodeSlot>>,
    pods: Mutex<PodCache>,
    ips: Mutex<IpAllocator>,
    queue: WorkQueue<PodKey>,
    registered: watch::Sender<usize>,
    register_gate: Semaphore,
    /// When the run future was first polled.
    started: OnceLock<Instant>,
    reported: AtomicU64,
    deleted: AtomicU64,
}

/// Locks, recovering the data if a holder panicked (none does: no code under these
/// locks can).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now() -> Time {
    Time(Timestamp::now())
}

fn params() -> PostParams {
    PostParams {
        field_manager: Some(pod::FIELD_MANAGER.into()),
        ..Default::default()
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(pod::FIELD_MANAGER.into()),
        ..Default::default()
    }
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Whether `new` is at least as recent as `old` (resourceVersions compared as numbers
/// when both are; otherwise the newcomer wins).
fn not_older(old: Option<&String>, new: Option<&String>) -> bool {
    match (
        old.and_then(|v| v.parse::<u64>().ok()),
        new.and_then(|v| v.parse::<u64>().ok()),
    ) {
        (Some(o), Some(n)) => n >= o,
        _ => true,
    }
}

fn pod_key(p: &Pod) -> PodKey {
    format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any())
}

fn node_of(p: &Pod) -> Option<&str> {
    p.spec.as_ref().and_then(|s| s.node_name.as_deref())
}

impl NodeSlot {
    fn observed(&self) -> Option<Arc<Node>> {
        lock(&self.observed).clone()
    }

    fn observe(&self, n: Node) {
        let mut o = lock(&self.observed);
        let newer = o.as_ref().is_none_or(|old| {
            not_older(
                old.metadata.resource_version.as_ref(),
                n.metadata.resource_version.as_ref(),
            )
        });
        if newer {
            *o = Some(Arc::new(n));
        }
    }

    fn forget(&self) {
        *lock(&self.observed) = None;
    }

    fn state(&self) -> NodeState {
        *self.state.borrow()
    }
}

impl PodCache {
    /// Stores `pod` unless the cache holds a newer version; returns the uid of a
    /// different pod it replaces (whose address is then freed).
    fn upsert(&mut self, key: PodKey, pod: Pod) -> Option<String> {
        let mut replaced = None;
        if let Some(old) = self.pods.get(&key) {
            if old.metadata.uid == pod.metadata.uid {
                if !not_older(
                    old.metadata.resource_version.as_ref(),
                    pod.metadata.resource_version.as_ref(),
                ) {
                    return None;
                }
            } else {
                replaced = old.metadata.uid.clone();
                if let Some(n) = node_of(old) {
                    if let Some(set) = self.by_node.get_mut(n) {
                        set.remove(&key);
                    }
                }
            }
        }
        if let Some(n) = node_of(&pod) {
            self.by_node
                .entry(n.to_string())
                .or_default()
                .insert(key.clone());
        }
        self.pods.insert(key, Arc::new(pod));
        replaced
    }

    fn remove(&mut self, key: &str) -> Option<Arc<Pod>> {
        let old = self.pods.remove(key)?;
        if let Some(n) = node_of(&old) {
            if let Some(set) = self.by_node.get_mut(n) {
                set.remove(key);
            }
        }
        Some(old)
    }

    fn keys_on(&self, node: &str) -> Vec<PodKey> {
        self.by_node
            .get(node)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Stops and restarts single hollow nodes of a running [`crate::run_with_handle`]
/// future; cheap to clone.
#[derive(Clone)]
pub struct HollowHandle {
    shared: Arc<Shared>,
}

impl HollowHandle {
    /// The names of the nodes, in order.
    pub fn node_names(&self) -> Vec<String> {
        self.shared
            .order
            .iter()
            .map(|s| s.id.name.clone())
            .collect()
    }

    /// Where the node is in its life; None for a name that is not one of ours.
    pub fn node_state(&self, name: &str) -> Option<NodeState> {
        self.shared.nodes.get(name).map(|s| s.state())
    }

    /// Stops the node as a crashed machine: its lease and status are no longer
    /// renewed, its pods no longer updated or deleted, and nothing is cleaned up.
    /// False when the name is not one of ours or the node is already stopped.
    pub fn stop_node(&self, name: &str) -> bool {
        let Some(slot) = self.shared.nodes.get(name) else {
            return false;
        };
        slot.state.send_if_modified(|s| {
            if *s == NodeState::Stopped {
                return false;
            }
            *s = NodeState::Stopped;
            true
        })
    }

    /// Starts a stopped node again, as a rebooted machine's kubelet: it registers (or
    /// adopts its Node, which it recreates if it was deleted) with a new boot ID, and
    /// resumes its lease, its status and its pods (which keep their status and IPs).
    /// False when the name is not one of ours or the node is not stopped.
    pub fn restart_node(&self, name: &str) -> bool {
        let Some(slot) = self.shared.nodes.get(name) else {
            return false;
        };
        slot.state.send_if_modified(|s| {
            if *s != NodeState::Stopped {
                return false;
            }
            *s = NodeState::Starting;
            true
        })
    }

    /// Waits until every node has registered once (only while the run future is
    /// polled).
    pub async fn wait_registered(&self) {
        let count = self.shared.order.len();
        let mut rx = self.shared.registered.subscribe();
        let _ = rx.wait_for(|n| *n >= count).await;
    }
}

pub(crate) fn start(
    client: Client,
    cfg: HollowConfig,
) -> Result<
    (
        impl Future<Output = anyhow::Result<()>> + Send + 'static,
        HollowHandle,
    ),
    Error,
> {
    let identities = cfg.identities()?;
    let order: Vec<Arc<NodeSlot>> = identities
        .into_iter()
        .map(|id| {
            Arc::new(NodeSlot {
                id,
                state: watch::Sender::new(NodeState::Starting),
                observed: Mutex::new(None),
                registered_once: AtomicBool::new(false),
            })
        })
        .collect();
    let nodes = order
        .iter()
        .map(|s| (s.id.name.clone(), s.clone()))
        .collect();
    let (queue, delayed) = WorkQueue::new();
    let shared = Arc::new(Shared {
        client,
        cfg,
        nodes,
        order,
        pods: Mutex::new(PodCache::default()),
        ips: Mutex::new(IpAllocator::new()),
        queue,
        registered: watch::Sender::new(0),
        register_gate: Semaphore::new(REGISTER_CONCURRENCY),
        started: OnceLock::new(),
        reported: AtomicU64::new(0),
        deleted: AtomicU64::new(0),
    });
    let handle = HollowHandle {
        shared: shared.clone(),
    };
    Ok((run(shared, delayed), handle))
}

async fn run(
    shared: Arc<Shared>,
    delayed: mpsc::UnboundedReceiver<(Duration, PodKey)>,
) -> anyhow::Result<()> {
    shared.started.get_or_init(Instant::now);
    tracing::info!(
        count = shared.order.len(),
        prefix = %shared.cfg.name_prefix,
        "starting hollow nodes (no containers behind them)"
    );
    let mut tasks = JoinSet::new();
    {
        let s = shared.clone();
        tasks.spawn(async move { queue::pump_delayed(&s.queue, delayed).await });
    }
    tasks.spawn(watch_pods(shared.clone()));
    tasks.spawn(watch_nodes(shared.clone()));
    tasks.spawn(log_progress(shared.clone()));
    for _ in 0..STATUS_WORKERS {
        tasks.spawn(worker(shared.clone()));
    }
    for slot in &shared.order {
        let span = tracing::info_span!("hollow_node", node = %slot.id.name);
        tasks.spawn(node_life(shared.clone(), slot.clone()).instrument(span));
    }
    match tasks.join_next().await {
        Some(Err(e)) => anyhow::bail!("a hollow-node task failed: {e}"),
        _ => anyhow::bail!("a hollow-node task ended unexpectedly"),
    }
}

// ---- nodes ----

/// One node's life: register, then heartbeat until stopped; again after a restart.
async fn node_life(shared: Arc<Shared>, slot: Arc<NodeSlot>) {
    let mut state = slot.state.subscribe();
    loop {
        if state.wait_for(|s| *s != NodeState::Stopped).await.is_err() {
            return;
        }
        let mut stopped = slot.state.subscribe();
        tokio::select! {
            _ = stopped.wait_for(|s| *s == NodeState::Stopped) => {
                tracing::info!(node = %slot.id.name, "hollow node stopped");
            }
            _ = live(&shared, &slot) => {}
        }
    }
}

/// Registers the node and keeps it alive (never returns).
async fn live(shared: &Shared, slot: &NodeSlot) {
    let mut id = slot.id.clone();
    id.boot_id = uuid::Uuid::new_v4().to_string();
    let (node, created) = register(shared, &id).await;
    let uid = node.metadata.uid.clone();
    slot.observe(node);
    slot.state.send_if_modified(|s| {
        if *s != NodeState::Starting {
            return false;
        }
        *s = NodeState::Ready;
        true
    });
    tracing::debug!(node = %id.name, created, "hollow node registered");
    if !slot.registered_once.swap(true, Ordering::SeqCst) {
        let mut all = false;
        shared.registered.send_modify(|n| {
            *n += 1;
            all = *n == shared.order.len();
        });
        if all {
            tracing::info!(
                count = shared.order.len(),
                elapsed_ms = shared
                    .started
                    .get()
                    .map_or(0, |t| t.elapsed().as_millis() as u64),
                "registered {} hollow nodes",
                shared.order.len()
            );
        }
    } else {
        tracing::info!(node = %id.name, "hollow node restarted");
    }
    let keys = lock(&shared.pods).keys_on(&id.name);
    for k in keys {
        shared.queue.add(k);
    }
    heartbeat(shared, slot, &id, uid, created).await
}

/// Creates the Node, or adopts the existing one of the same name; retries with
/// back-off until it succeeds. Returns the Node and whether it was created.
async fn register(shared: &Shared, id: &NodeIdentity) -> (Node, bool) {
    let api: Api<Node> = Api::all(shared.client.clone());
    let mut attempt = 0;
    loop {
        let result = {
            let _permit = shared.register_gate.acquire().await;
            try_register(&api, &shared.cfg, id).await
        };
        match result {
            Ok(r) => return r,
            Err(e) => {
                tracing::warn!(node = %id.name, error = %e, "cannot register the node; retrying")
            }
        }
        tokio::time::sleep(queue::backoff(attempt)).await;
        attempt += 1;
    }
}

async fn try_register(
    api: &Api<Node>,
    cfg: &HollowConfig,
    id: &NodeIdentity,
) -> Result<(Node, bool), kube::Error> {
    match api
        .create(&params(), &node::new_node(cfg, id, &now()))
        .await
    {
        Ok(n) => Ok((n, true)),
        Err(e) if api_code(&e) == Some(409) => {
            let existing = api.get(&id.name).await?;
            let patch = node::adoption_patch(cfg, id, &existing);
            let n = api
                .patch(&id.name, &patch_params(), &Patch::Merge(&patch))
                .await?;
            tracing::info!(node = %id.name, "adopted the existing node");
            Ok((n, false))
        }
        Err(e) => Err(e),
    }
}

/// Renews the lease and reports the status, on upstream's schedule.
async fn heartbeat(
    shared: &Shared,
    slot: &NodeSlot,
    id: &NodeIdentity,
    uid: Option<String>,
    created: bool,
) {
    let leases: Api<Lease> = Api::namespaced(shared.client.clone(), node::LEASE_NAMESPACE);
    let nodes: Api<Node> = Api::all(shared.client.clone());
    let mut lease: Option<Lease> = None;
    // A node created with its status has just reported it.
    let mut last_report = created.then(Instant::now);
    let mut gone = false;
    let mut lease_tick = tokio::time::interval(node::LEASE_RENEW_INTERVAL);
    lease_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut status_tick = tokio::time::interval(node::STATUS_UPDATE_INTERVAL);
    status_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = lease_tick.tick() => {
                renew_lease(&leases, &mut lease, &id.name, uid.as_deref()).await;
            }
            _ = status_tick.tick() => {
                sync_status(&nodes, &shared.cfg, slot, id, &mut last_report, &mut gone).await;
            }
        }
    }
}

/// Renews the node's lease, creating it if missing; up to five tries (upstream's
/// `maxUpdateRetries`) with a growing pause, then waits for the next interval.
async fn renew_lease(api: &Api<Lease>, cached: &mut Option<Lease>, name: &str, uid: Option<&str>) {
    let mut pause = Duration::from_millis(200);
    for attempt in 1..=5 {
        match try_renew(api, cached, name, uid).await {
            Ok(()) => return,
            Err(e) => {
                *cached = None;
                if attempt == 5 {
                    tracing::warn!(node = %name, error = %e, "cannot renew the node lease; retrying at the next interval");
                    return;
                }
                tracing::debug!(node = %name, error = %e, "cannot renew the node lease; retrying");
            }
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
}

async fn try_renew(
    api: &Api<Lease>,
    cached: &mut Option<Lease>,
    name: &str,
    uid: Option<&str>,
) -> Result<(), kube::Error> {
    let now = MicroTime(Timestamp::now());
    let current = match cached.take() {
        Some(l) => l,
        None => match api.get_opt(name).await? {
            Some(l) => l,
            None => {
                let l = api
                    .create(&params(), &node::new_lease(name, uid, &now))
                    .await?;
                *cached = Some(l);
                return Ok(());
            }
        },
    };
    let renewed = node::renewed_lease(&current, name, uid, &now);
    *cached = Some(api.replace(name, &params(), &renewed).await?);
    Ok(())
}

/// Writes the node status when it changed or is due (upstream's
/// `nodeStatusReportFrequency`).
async fn sync_status(
    api: &Api<Node>,
    cfg: &HollowConfig,
    slot: &NodeSlot,
    id: &NodeIdentity,
    last_report: &mut Option<Instant>,
    gone: &mut bool,
) {
    let observed = slot.observed();
    let observed_status = observed.as_ref().and_then(|n| n.status.as_ref());
    let desired = node::desired_status(cfg, id, observed_status, &now());
    let due = last_report.is_none_or(|t| t.elapsed() >= node::STATUS_REPORT_INTERVAL);
    if !due && !node::status_differs(observed_status, &desired) {
        return;
    }
    let patch = node::status_patch(&desired);
    match api
        .patch_status(&id.name, &patch_params(), &Patch::Merge(&patch))
        .await
    {
        Ok(n) => {
            slot.observe(n);
            *last_report = Some(Instant::now());
            *gone = false;
        }
        Err(e) if api_code(&e) == Some(404) => {
            if !*gone {
                tracing::warn!(node = %id.name, "the Node was deleted; like a kubelet, the hollow node does not register again until restarted");
                *gone = true;
            }
        }
        Err(e) => {
            tracing::warn!(node = %id.name, error = %e, "cannot update the node status; retrying at the next interval");
        }
    }
}

/// Keeps each node's observed Node current.
async fn watch_nodes(shared: Arc<Shared>) {
    let api: Api<Node> = Api::all(shared.client.clone());
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listed: HashSet<String> = HashSet::new();
    while let Some(ev) = events.next().await {
        match ev {
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitApply(n)) | Ok(Event::Apply(n)) => {
                if let Some(slot) = shared.nodes.get(&n.name_any()) {
                    listed.insert(n.name_any());
                    slot.observe(n);
                }
            }
            Ok(Event::InitDone) => {
                for slot in &shared.order {
                    if !listed.contains(&slot.id.name) {
                        slot.forget();
                    }
                }
            }
            Ok(Event::Delete(n)) => {
                if let Some(slot) = shared.nodes.get(&n.name_any()) {
                    slot.forget();
                }
            }
            Err(e) => tracing::warn!(error = %e, "node watch failed; retrying"),
        }
    }
}

// ---- pods ----

/// The one watch of bound pods: keeps the cache of those bound to our nodes and queues
/// every change.
async fn watch_pods(shared: Arc<Shared>) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let config = watcher::Config::default().fields("spec.nodeName!=");
    // managedFields are most of a pod's memory; status writes never need them.
    let mut events = watcher::watcher(api, config)
        .modify(|p| p.metadata.managed_fields = None)
        .default_backoff()
        .boxed();
    let mut relist: Option<HashMap<PodKey, Pod>> = None;
    let ours = |p: &Pod| node_of(p).is_some_and(|n| shared.nodes.contains_key(n));
    while let Some(ev) = events.next().await {
        match ev {
            Ok(Event::Init) => relist = Some(HashMap::new()),
            Ok(Event::InitApply(p)) => {
                if ours(&p) {
                    relist
                        .get_or_insert_with(HashMap::new)
                        .insert(pod_key(&p), p);
                }
            }
            Ok(Event::InitDone) => {
                let listed = relist.take().unwrap_or_default();
                let stale: Vec<PodKey> = {
                    let cache = lock(&shared.pods);
                    cache
                        .pods
                        .keys()
                        .filter(|k| !listed.contains_key(*k))
                        .cloned()
                        .collect()
                };
                for k in stale {
                    forget_pod(&shared, &k);
                }
                let n = listed.len();
                for (k, p) in listed {
                    apply_pod(&shared, k, p);
                }
                tracing::debug!(pods = n, "pods bound to hollow nodes listed");
            }
            Ok(Event::Apply(p)) => {
                let k = pod_key(&p);
                if ours(&p) {
                    apply_pod(&shared, k, p);
                } else {
                    forget_pod(&shared, &k);
                }
            }
            Ok(Event::Delete(p)) => forget_pod(&shared, &pod_key(&p)),
            Err(e) => tracing::warn!(error = %e, "pod watch failed; retrying"),
        }
    }
}

fn apply_pod(shared: &Shared, key: PodKey, pod: Pod) {
    let replaced = lock(&shared.pods).upsert(key.clone(), pod);
    if let Some(uid) = replaced {
        lock(&shared.ips).release(&uid);
    }
    shared.queue.add(key);
}

fn forget_pod(shared: &Shared, key: &str) {
    let old = lock(&shared.pods).remove(key);
    if let Some(uid) = old.and_then(|p| p.metadata.uid.clone()) {
        lock(&shared.ips).release(&uid);
    }
    shared.queue.forget(&key.to_string());
}

async fn worker(shared: Arc<Shared>) {
    loop {
        let key = shared.queue.get().await;
        match sync_pod(&shared, &key).await {
            Ok(()) => shared.queue.forget(&key),
            Err(e) => {
                // A request the API refuses (other than for load) will not pass by
                // itself: worth seeing. Anything else is transient.
                let refused = match &e {
                    Error::Kube(k) => {
                        api_code(k).is_some_and(|c| (400..500).contains(&c) && c != 429)
                    }
                    _ => true,
                };
                if refused {
                    tracing::warn!(pod = %key, error = %e, "pod sync failed; retrying");
                } else {
                    tracing::debug!(pod = %key, error = %e, "pod sync failed; retrying");
                }
                shared.queue.retry(key.clone());
            }
        }
        shared.queue.done(&key);
    }
}

/// Does what the pod's node does next with it (nothing unless the node is Ready).
async fn sync_pod(shared: &Shared, key: &str) -> Result<(), Error> {
    let Some(p) = lock(&shared.pods).pods.get(key).cloned() else {
        return Ok(());
    };
    let Some(slot) = node_of(&p).and_then(|n| shared.nodes.get(n)) else {
        return Ok(());
    };
    if slot.state() != NodeState::Ready {
        return Ok(());
    }
    let ns = p.namespace().unwrap_or_default();
    let name = p.name_any();
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &ns);
    match pod::next_action(&p) {
        PodAction::Leave => Ok(()),
        PodAction::Delete { uid } => {
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid,
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(&name, &dp).await {
                Ok(_) => {
                    shared.deleted.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(namespace = %ns, pod = %name, "pod deleted");
                    Ok(())
                }
                // Gone already, or another pod of the same name now.
                Err(e) if matches!(api_code(&e), Some(404) | Some(409)) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        PodAction::ReportRunning => {
            let uid = p.metadata.uid.clone().unwrap_or_default();
            let pod_ip: Ipv4Addr = if pod::uses_host_network(&p) {
                slot.id.ip
            } else {
                let cidr = node::pod_cidr_of(slot.observed().as_deref());
                lock(&shared.ips)
                    .assign(&uid, pod::reported_ip(&p), cidr)
                    .ok_or(Error::NoPodAddress(cidr))?
            };
            let desired =
                pod::running_status(&p, slot.id.ip, pod_ip, &now(), &mut pod::new_container_id);
            if pod::status_current(p.status.as_ref(), &desired) {
                return Ok(());
            }
            let patch = pod::status_patch(p.metadata.uid.as_deref(), &desired);
            match api
                .patch_status(&name, &patch_params(), &Patch::Merge(&patch))
                .await
            {
                Ok(updated) => {
                    shared.reported.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(namespace = %ns, pod = %name, ip = %pod_ip, "pod reported running");
                    let k = key.to_string();
                    let replaced = lock(&shared.pods).upsert(k, updated);
                    if let Some(uid) = replaced {
                        lock(&shared.ips).release(&uid);
                    }
                    Ok(())
                }
                Err(e) if matches!(api_code(&e), Some(404) | Some(409)) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// Logs progress every 10 s while something changes.
async fn log_progress(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    let mut last = (0, 0, 0, 0);
    loop {
        tick.tick().await;
        let ready = shared
            .order
            .iter()
            .filter(|s| s.state() == NodeState::Ready)
            .count();
        let pods = lock(&shared.pods).pods.len();
        let now = (
            ready,
            pods,
            shared.reported.load(Ordering::Relaxed),
            shared.deleted.load(Ordering::Relaxed),
        );
        if now != last {
            tracing::info!(
                ready_nodes = now.0,
                nodes = shared.order.len(),
                pods = now.1,
                statuses_written = now.2,
                pods_deleted = now.3,
                queued = shared.queue.len(),
                "hollow nodes"
            );
            last = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use kube::api::ObjectMeta;

    fn pod(name: &str, uid: &str, rv: &str, node: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(uid.into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn resource_version_order() {
        let s = |v: &str| Some(v.to_string());
        let cases: &[(Option<String>, Option<String>, bool)] = &[
            (s("5"), s("6"), true),
            (s("6"), s("6"), true),
            (s("7"), s("6"), false),
            (s("10"), s("9"), false),
            (None, s("1"), true),
            (s("abc"), s("1"), true),
        ];
        for (old, new, want) in cases {
            assert_eq!(
                not_older(old.as_ref(), new.as_ref()),
                *want,
                "{old:?} → {new:?}"
            );
        }
    }

    #[test]
    fn pod_cache() {
        let mut c = PodCache::default();
        let k = "ns/a".to_string();
        assert_eq!(c.upsert(k.clone(), pod("a", "u1", "5", "n0")), None);
        // Older versions do not replace newer ones.
        assert_eq!(c.upsert(k.clone(), pod("a", "u1", "4", "n0")), None);
        assert_eq!(c.pods[&k].metadata.resource_version.as_deref(), Some("5"));
        assert_eq!(c.keys_on("n0"), vec![k.clone()]);
        // Same name, another pod (recreated on another node): the old uid is returned.
        assert_eq!(
            c.upsert(k.clone(), pod("a", "u2", "9", "n1")),
            Some("u1".into())
        );
        assert!(c.keys_on("n0").is_empty());
        assert_eq!(c.keys_on("n1"), vec![k.clone()]);
        assert!(c.remove(&k).is_some());
        assert!(c.keys_on("n1").is_empty());
        assert!(c.remove(&k).is_none());
        assert_eq!(pod_key(&pod("a", "u", "1", "n")), "ns/a");
    }
}
