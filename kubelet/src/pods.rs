//! The pods bound to this node. One watch (`spec.nodeName=<node>`) feeds one worker
//! per pod uid; a worker drives CRI toward the pod's spec once a second and on every
//! change of the pod, and reports what it sees as the pod's status and events.
//!
//! A container's life in a worker (the only transitions there are):
//!
//! ```text
//!  (none) ──image present/pulled, created, started──▶ Running ──exits──▶ Exited
//!    │  └─pull fails─▶ ErrImagePull ─▶ ImagePullBackOff ─(10 s … 5 min)─▶ (none)
//!    └─create/start fails─▶ CreateContainerError/RunContainerError ─(back-off)─▶ (none)
//!  Exited ──restartPolicy says restart──▶ (first time at once, then CrashLoopBackOff
//!           for 10 s doubling to 5 min) ──▶ Running (attempt + 1, restartCount + 1)
//!  Exited ──restartPolicy says no──▶ stays Exited (the pod may turn Succeeded/Failed)
//!  Running ──postStart fails / liveness or startup probe fails──▶ stopped ──▶ Exited
//!  any ──deletionTimestamp──▶ stopped (grace period) ──▶ sandbox removed ──▶ pod deleted
//!  any ──activeDeadlineSeconds passed──▶ stopped (grace period), never started again
//!        (the pod Failed, DeadlineExceeded)
//! ```
//!
//! The sandbox comes first: a pod's containers are created only in a ready sandbox. A
//! sandbox that dies is replaced (attempt + 1) unless the pod must not restart. A pod
//! whose phase is terminal has its sandbox stopped and is left alone until deleted.
//! Runtime objects carry the pod's uid as a label: a worker starting on a pod adopts
//! the sandbox and containers already there (a kubelet restart restarts nothing).
//!
//! Ephemeral containers (added through `pods/ephemeralcontainers`) are started in the
//! running sandbox as upstream's `computePodActions` does: once each, even before the
//! pod is initialized, and never restarted; they are reported in
//! `status.ephemeralContainerStatuses` and do not count for the pod's phase or readiness.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::{watcher, WatchStreamExt};
use tokio::sync::watch;

use crate::cri::{self, Cri};
use crate::events::{Recorder, NORMAL, WARNING};
use crate::hooks;
use crate::probes;
use crate::spec::{self, NodeContext, LABEL_CONTAINER_NAME, LABEL_POD_UID};
use crate::status::{self, ContainerView, PodView, State, Terminated};
use crate::volumes;
use crate::{Config, Error};

/// How often a worker looks at its pod's containers (containerd's event stream later).
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Upstream's container restart and image pull back-off: 10 s doubling to 5 minutes.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How long a postStart hook may run.
const POST_START_TIMEOUT: Duration = Duration::from_secs(120);
/// upstream's `minimumGracePeriodInSeconds`.
const MIN_GRACE_SECONDS: i64 = 2;

/// The pods bound to this node by namespace and name, as the kubelet's one watch of them
/// last saw them: for the kubelet's endpoint and the host ports, which follow its changes
/// ([`Registry::changes`]) instead of watching the pods again.
#[derive(Clone)]
pub struct Registry {
    pods: Arc<RwLock<HashMap<(String, String), Pod>>>,
    changed: Arc<watch::Sender<()>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            pods: Arc::default(),
            changed: Arc::new(watch::channel(()).0),
        }
    }
}

impl Registry {
    pub fn get(&self, namespace: &str, name: &str) -> Option<Pod> {
        self.pods
            .read()
            .expect("lock")
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// `f` of the pods as they are now.
    pub fn read<R>(&self, f: impl FnOnce(&mut dyn Iterator<Item = &Pod>) -> R) -> R {
        f(&mut self.pods.read().expect("lock").values())
    }

    /// Marked changed after each change of the pods.
    pub fn changes(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }

    fn key(p: &Pod) -> (String, String) {
        (
            p.metadata.namespace.clone().unwrap_or_default(),
            p.metadata.name.clone().unwrap_or_default(),
        )
    }

    fn set(&self, p: &Pod) {
        self.pods
            .write()
            .expect("lock")
            .insert(Self::key(p), p.clone());
        self.changed.send_replace(());
    }

    fn remove(&self, p: &Pod) {
        let mut m = self.pods.write().expect("lock");
        let key = Self::key(p);
        if m.get(&key).and_then(|o| o.metadata.uid.as_ref()) == p.metadata.uid.as_ref() {
            m.remove(&key);
        }
        drop(m);
        self.changed.send_replace(());
    }

    /// The end of a relist: pods it did not see (by uid) are gone.
    fn retain_uids(&self, seen: &HashSet<String>) {
        self.pods
            .write()
            .expect("lock")
            .retain(|_, p| p.metadata.uid.as_ref().is_some_and(|u| seen.contains(u)));
        self.changed.send_replace(());
    }
}

/// upstream's back-off (`flowcontrol.Backoff`): the first failure is retried at once,
/// the next ones after 10 s doubling to 5 minutes; forgotten after 10 quiet minutes.
#[derive(Clone, Debug, Default)]
pub struct Backoff {
    delay: Option<Duration>,
    updated: Option<Instant>,
}

impl Backoff {
    /// When a retry may happen after a failure at `at`, if that is still ahead.
    pub fn retry_at(&self, at: SystemTime, now: SystemTime) -> Option<SystemTime> {
        let d = self.delay?;
        if self.updated.is_some_and(|u| u.elapsed() > 2 * BACKOFF_MAX) {
            return None;
        }
        let at = at + d;
        (at > now).then_some(at)
    }

    /// Records a retry: the next wait is longer.
    pub fn next(&mut self) {
        let expired = self.updated.is_some_and(|u| u.elapsed() > 2 * BACKOFF_MAX);
        self.delay = Some(match self.delay {
            Some(d) if !expired => (d * 2).min(BACKOFF_MAX),
            _ => BACKOFF_INITIAL,
        });
        self.updated = Some(Instant::now());
    }

    pub fn delay(&self) -> Duration {
        self.delay.unwrap_or(BACKOFF_INITIAL)
    }
}

/// A duration as Go prints it, to the millisecond (`1.234s`, `512ms`, `1m20s`, `5m0s`).
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, frac) = (rest / 1000, rest % 1000);
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

struct Ctx {
    client: kube::Client,
    cri: Cri,
    node: NodeContext,
    host_ip: String,
    recorder: Recorder,
    /// registries.yaml: the credentials sent with each pull.
    registries: crate::registries::Registries,
}

struct Handle {
    tx: watch::Sender<Option<Pod>>,
    task: tokio::task::JoinHandle<()>,
}

/// Runs the pods bound to this node until shutdown (their containers keep running).
pub async fn run(
    client: kube::Client,
    cfg: Arc<Config>,
    cri: Cri,
    registry: Registry,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let facts = crate::node::Facts::read();
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), &cfg.node_name),
        client: client.clone(),
        cri,
        host_ip: cfg.node_ip.to_string(),
        registries: cfg.registries.clone(),
        node: NodeContext {
            agent_dir: cfg.agent_dir.clone(),
            node_name: cfg.node_name.clone(),
            node_ip: cfg.node_ip,
            cluster_dns: cfg.cluster_dns,
            cluster_domain: cfg.cluster_domain.clone(),
            cgroup_root: crate::containerd::Layout::new(&cfg.agent_dir).cgroup_root(),
            host_dns: spec::ResolvConf::read(),
            cpus: facts.cpus,
            memory_bytes: facts.memory_kib * 1024,
        },
    });
    let api: Api<Pod> = Api::all(client);
    let wc = watcher::Config::default().fields(&format!("spec.nodeName={}", cfg.node_name));
    let mut events = watcher(api, wc).default_backoff().boxed();
    let mut workers: HashMap<String, Handle> = HashMap::new();
    let mut listing: Option<HashSet<String>> = None;
    let mut orphans_checked = false;
    let mut reap = tokio::time::interval(Duration::from_secs(5));
    let dispatch = |workers: &mut HashMap<String, Handle>, p: Pod| {
        let Some(uid) = p.metadata.uid.clone() else {
            return;
        };
        registry.set(&p);
        match workers.get(&uid) {
            Some(h) if !h.task.is_finished() => {
                h.tx.send_replace(Some(p));
            }
            _ => {
                let (tx, rx) = watch::channel(Some(p));
                let task = tokio::spawn(worker(ctx.clone(), uid.clone(), rx));
                workers.insert(uid, Handle { tx, task });
            }
        }
    };
    loop {
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(watcher::Event::Init)) => listing = Some(HashSet::new()),
                Some(Ok(watcher::Event::InitApply(p))) => {
                    if let (Some(l), Some(uid)) = (listing.as_mut(), p.metadata.uid.clone()) {
                        l.insert(uid);
                    }
                    dispatch(&mut workers, p);
                }
                Some(Ok(watcher::Event::InitDone)) => {
                    let seen = listing.take().unwrap_or_default();
                    registry.retain_uids(&seen);
                    for (uid, h) in &workers {
                        if !seen.contains(uid) {
                            h.tx.send_replace(None);
                        }
                    }
                    if !orphans_checked {
                        orphans_checked = true;
                        tokio::spawn(remove_orphans(ctx.clone(), seen));
                    }
                }
                Some(Ok(watcher::Event::Apply(p))) => dispatch(&mut workers, p),
                Some(Ok(watcher::Event::Delete(p))) => {
                    registry.remove(&p);
                    if let Some(h) = p.metadata.uid.as_ref().and_then(|u| workers.get(u)) {
                        h.tx.send_replace(None);
                    }
                }
                Some(Err(e)) => tracing::debug!(error = %e, "pod watch"),
                None => return Ok(()),
            },
            _ = reap.tick() => workers.retain(|_, h| !h.task.is_finished()),
            _ = shutdown.changed() => {
                for h in workers.values() {
                    h.task.abort();
                }
                return Ok(());
            }
        }
    }
}

/// Sandboxes of pods the API no longer has (deleted while the kubelet was down) are
/// stopped and removed.
async fn remove_orphans(ctx: Arc<Ctx>, known: HashSet<String>) {
    let Ok(all) = ctx.cri.list_pod_sandboxes(&[]).await else {
        return;
    };
    for sb in all {
        let Some(uid) = sb.labels.get(LABEL_POD_UID) else {
            continue;
        };
        if known.contains(uid) {
            continue;
        }
        tracing::info!(sandbox = %sb.id, %uid, "removing the sandbox of a pod that is gone");
        let _ = ctx.cri.stop_pod_sandbox(&sb.id).await;
        let _ = ctx.cri.remove_pod_sandbox(&sb.id).await;
        if let Some(m) = &sb.metadata {
            let dir = ctx
                .node
                .agent_dir
                .join("pods")
                .join(format!("{}_{}_{}", m.namespace, m.name, m.uid));
            volumes::cleanup(&dir);
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// One pod's worker: adopts what the runtime has of it, then syncs until the pod is
/// gone from the API.
async fn worker(ctx: Arc<Ctx>, uid: String, mut rx: watch::Receiver<Option<Pod>>) {
    let Some(first) = rx.borrow_and_update().clone() else {
        return;
    };
    let mut w = PodWorker::new(ctx, uid);
    w.adopt(&first).await;
    let mut pod = first;
    loop {
        let latest = rx.borrow_and_update().clone();
        if let Some(p) = latest {
            pod = p;
        } else {
            w.teardown(&pod, None).await;
            return;
        }
        if pod.metadata.deletion_timestamp.is_some() {
            if !w.terminated {
                let grace = pod
                    .metadata
                    .deletion_grace_period_seconds
                    .or(pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds))
                    .unwrap_or(30);
                w.teardown(&pod, Some(grace)).await;
                w.terminated = true;
            }
        } else if let Some(newer) = w.sync(&pod).await {
            pod = newer;
        }
        let wait = if w.terminated {
            Duration::from_secs(3600)
        } else {
            SYNC_INTERVAL
        };
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[derive(Clone, Debug)]
enum Run {
    Created,
    Running { started_at: Option<Time> },
    Exited(Terminated),
}

#[derive(Clone, Debug)]
struct Current {
    id: String,
    attempt: u32,
    run: Run,
    image: String,
    image_id: String,
}

/// One container of the pod, across its restarts.
#[derive(Clone, Debug, Default)]
struct Slot {
    current: Option<Current>,
    /// The previous run (lastState), and its container (removed when superseded).
    last: Option<Terminated>,
    last_id: Option<String>,
    /// Why it is not running (ContainerCreating, ErrImagePull, CrashLoopBackOff …).
    waiting: Option<(String, Option<String>)>,
    /// The attempt the next container gets.
    next_attempt: u32,
    crash: Backoff,
    /// Create/start failures wait for this.
    retry_at: Option<SystemTime>,
    pull: Backoff,
    pull_retry_at: Option<SystemTime>,
    pull_error: String,
}

struct Sandbox {
    id: String,
    ip: Option<String>,
    config: cri::PodSandboxConfig,
}

struct PodWorker {
    ctx: Arc<Ctx>,
    uid: String,
    sandbox: Option<Sandbox>,
    next_sandbox_attempt: u32,
    sandbox_backoff: Backoff,
    sandbox_retry_at: Option<SystemTime>,
    slots: HashMap<String, Slot>,
    /// The summary of the last status written, and when.
    written: Option<(serde_json::Value, Instant)>,
    /// The pod's phase is terminal and its sandbox was stopped.
    finished: bool,
    /// Its deletion was carried out.
    terminated: bool,
    /// The host path of each volume, once they were all set up.
    volumes: Option<HashMap<String, PathBuf>>,
    /// When the volumes are set up (API data rewritten) again.
    volumes_next: Option<Instant>,
    /// The managed `/etc/hosts`.
    hosts: Option<PathBuf>,
    /// The probes of each running container with probes.
    probes: HashMap<String, probes::Probes>,
    /// Its activeDeadlineSeconds passed: containers stopped, the pod fails.
    deadline_exceeded: bool,
}

/// Upstream's reason and message of a pod failed by its `activeDeadlineSeconds`.
const DEADLINE_REASON: &str = "DeadlineExceeded";
const DEADLINE_MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

/// Whether the pod has been active longer than its `activeDeadlineSeconds` (upstream's
/// `activeDeadlineHandler`: counted from `status.startTime`).
pub fn past_active_deadline(pod: &Pod, now: Timestamp) -> bool {
    let Some(deadline) = pod.spec.as_ref().and_then(|s| s.active_deadline_seconds) else {
        return false;
    };
    let Some(start) = pod.status.as_ref().and_then(|s| s.start_time.as_ref()) else {
        return false;
    };
    now.duration_since(start.0).as_secs() >= deadline
}

fn nanos_to_time(ns: i64) -> Option<Time> {
    (ns > 0)
        .then(|| Timestamp::from_nanosecond(i128::from(ns)).ok())
        .flatten()
        .map(Time)
}

fn nanos_to_system(ns: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64)
}

/// The pod's ephemeral containers as the containers they run as (upstream runs an
/// `EphemeralContainerCommon` as a `Container`: the same fields, `targetContainerName`
/// aside).
pub fn ephemeral_containers(pod: &Pod) -> Vec<Container> {
    pod.spec
        .iter()
        .flat_map(|s| s.ephemeral_containers.iter().flatten())
        .filter_map(|ec| {
            let mut v = serde_json::to_value(ec).ok()?;
            v.as_object_mut()?.remove("targetContainerName");
            serde_json::from_value(v).ok()
        })
        .collect()
}

fn is_ephemeral(pod: &Pod, name: &str) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| s.ephemeral_containers.iter().flatten())
        .any(|ec| ec.name == name)
}

/// The container's field path in events, as upstream's `ref.GetReference`.
fn field_path_in(pod: &Pod, c: &str, init: bool) -> String {
    if is_ephemeral(pod, c) {
        format!("spec.ephemeralContainers{{{c}}}")
    } else {
        field_path(c, init)
    }
}

fn field_path(c: &str, init: bool) -> String {
    if init {
        format!("spec.initContainers{{{c}}}")
    } else {
        format!("spec.containers{{{c}}}")
    }
}

fn restart_policy(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into())
}

/// Whether a container that ended with `exit_code` is started again.
/// A restartable init container (a sidecar: `restartPolicy: Always`): started in the
/// init sequence, kept running (and restarted whatever its exit) beside the main
/// containers, stopped after them.
pub fn restartable(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

pub fn should_restart(policy: &str, init: bool, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        // Init containers run to completion: Always is OnFailure for them.
        _ if init => exit_code != 0,
        _ => true,
    }
}

/// The pull policy in force (the API server defaults it; upstream's rule otherwise).
pub fn pull_policy(c: &Container) -> String {
    if let Some(p) = c.image_pull_policy.clone().filter(|p| !p.is_empty()) {
        return p;
    }
    let image = c.image.as_deref().unwrap_or("");
    let name = image.rsplit('/').next().unwrap_or(image);
    let tagged = name.contains(':') && !name.ends_with(":latest");
    if tagged || image.contains('@') {
        "IfNotPresent".into()
    } else {
        "Always".into()
    }
}

fn terminated_of(st: &cri::ContainerStatus) -> Terminated {
    let reason = if !st.reason.is_empty() {
        st.reason.clone()
    } else if st.exit_code == 0 {
        "Completed".into()
    } else {
        "Error".into()
    };
    // As upstream: the runtime's message, then the container's own.
    let mut message = st.message.clone();
    let own = termination_message(st);
    if !own.is_empty() {
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&own);
    }
    Terminated {
        exit_code: st.exit_code,
        reason,
        message,
        started_at: nanos_to_time(st.started_at),
        finished_at: nanos_to_time(st.finished_at),
        container_id: format!("containerd://{}", st.id),
    }
}

/// Upstream's `MaxContainerTerminationMessageLength`.
const TERMINATION_MESSAGE_BYTES: u64 = 4096;

/// The last `n` bytes of the file at `path`.
fn read_tail(path: &str, n: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(n)))?;
    let mut out = Vec::new();
    f.take(n).read_to_end(&mut out)?;
    Ok(out)
}

/// What an exited container says of its end (upstream's `getTerminationMessage` and
/// `readLastStringFromContainerLogs`): the last 4 KiB of the file mounted at its
/// terminationMessagePath; under `FallbackToLogsOnError`, when that is empty or missing
/// and the container failed, the tail of its log.
fn termination_message(st: &cri::ContainerStatus) -> String {
    let annotation = |k: &str| st.annotations.get(k).map(String::as_str).unwrap_or("");
    let path = annotation("io.kubernetes.container.terminationMessagePath");
    let fallback = annotation("io.kubernetes.container.terminationMessagePolicy")
        == "FallbackToLogsOnError"
        && st.exit_code != 0
        && st.reason != "ContainerCannotRun";
    let mount = st
        .mounts
        .iter()
        .find(|m| !path.is_empty() && m.container_path == path);
    let (message, check_logs) = match mount {
        None => (String::new(), fallback),
        Some(m) => match read_tail(&m.host_path, TERMINATION_MESSAGE_BYTES) {
            Ok(data) => (
                String::from_utf8_lossy(&data).into_owned(),
                fallback && data.is_empty(),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), fallback),
            Err(e) => (
                format!("Error on reading termination log {}: {e}", m.host_path),
                false,
            ),
        },
    };
    if !check_logs {
        return message;
    }
    // 80 lines of at most 2 KiB are in the last 256 KiB unless lines are longer, and
    // then only the last 2 KiB of them are kept anyway.
    match read_tail(&st.log_path, 256 << 10) {
        Ok(mut data) => {
            if data.len() == 256 << 10 {
                let first = data.iter().position(|b| *b == b'\n').map_or(0, |i| i + 1);
                data.drain(..first);
            }
            crate::logs::last_string(&data)
        }
        Err(e) => format!("Error on reading termination message from logs: {e}"),
    }
}

fn run_of(st: &cri::ContainerStatus) -> Run {
    match cri::ContainerState::try_from(st.state) {
        Ok(cri::ContainerState::ContainerRunning) => Run::Running {
            started_at: nanos_to_time(st.started_at),
        },
        Ok(cri::ContainerState::ContainerCreated) => Run::Created,
        _ => Run::Exited(terminated_of(st)),
    }
}

fn current_of(st: &cri::ContainerStatus, spec_image: &str) -> Current {
    let image = st
        .image
        .as_ref()
        .map(|i| i.image.clone())
        .filter(|i| !i.is_empty() && !i.starts_with("sha256:"))
        .unwrap_or_else(|| spec_image.to_string());
    Current {
        id: st.id.clone(),
        attempt: st.metadata.as_ref().map(|m| m.attempt).unwrap_or(0),
        run: run_of(st),
        image,
        image_id: st.image_ref.clone(),
    }
}

impl PodWorker {
    fn new(ctx: Arc<Ctx>, uid: String) -> PodWorker {
        PodWorker {
            ctx,
            uid,
            sandbox: None,
            next_sandbox_attempt: 0,
            sandbox_backoff: Backoff::default(),
            sandbox_retry_at: None,
            slots: HashMap::new(),
            written: None,
            finished: false,
            terminated: false,
            volumes: None,
            volumes_next: None,
            hosts: None,
            probes: HashMap::new(),
            deadline_exceeded: false,
        }
    }

    /// Takes over the sandbox and containers the runtime already has for this pod.
    async fn adopt(&mut self, pod: &Pod) {
        let cri = &self.ctx.cri;
        let uid = self.uid.clone();
        let mut sandboxes = match cri.list_pod_sandboxes(&[(LABEL_POD_UID, &uid)]).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(pod = %spec::pod_desc(pod), error = %e, "cannot list the pod's sandboxes");
                return;
            }
        };
        sandboxes.sort_by_key(|s| s.created_at);
        for sb in &sandboxes {
            let attempt = sb.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
            self.next_sandbox_attempt = self.next_sandbox_attempt.max(attempt + 1);
        }
        if let Some(sb) = sandboxes
            .iter()
            .rev()
            .find(|s| s.state == cri::PodSandboxState::SandboxReady as i32)
        {
            let attempt = sb.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
            let ip = cri
                .pod_sandbox_status(&sb.id)
                .await
                .ok()
                .and_then(|s| s.network)
                .map(|n| n.ip)
                .filter(|ip| !ip.is_empty());
            self.sandbox = Some(Sandbox {
                id: sb.id.clone(),
                ip,
                config: spec::sandbox_config(pod, &self.ctx.node, attempt),
            });
        }
        let Ok(containers) = cri.list_containers("", &[(LABEL_POD_UID, &uid)]).await else {
            return;
        };
        let mut by_name: HashMap<String, Vec<cri::ContainerStatus>> = HashMap::new();
        for c in containers {
            let Some(name) = c.labels.get(LABEL_CONTAINER_NAME).cloned() else {
                continue;
            };
            if let Ok(st) = cri.container_status(&c.id).await {
                by_name.entry(name).or_default().push(st);
            }
        }
        let images: HashMap<String, String> = all_containers(pod)
            .map(|(c, _)| (c.name.clone(), c.image.clone().unwrap_or_default()))
            .chain(
                ephemeral_containers(pod)
                    .into_iter()
                    .map(|c| (c.name, c.image.unwrap_or_default())),
            )
            .collect();
        for (name, mut list) in by_name {
            list.sort_by_key(|s| s.metadata.as_ref().map(|m| m.attempt).unwrap_or(0));
            let image = images.get(&name).cloned().unwrap_or_default();
            let slot = self.slots.entry(name).or_default();
            let latest = list.pop().expect("not empty");
            let cur = current_of(&latest, &image);
            slot.next_attempt = cur.attempt + 1;
            slot.current = Some(cur);
            if let Some(prev) = list.pop() {
                slot.last = Some(terminated_of(&prev));
                slot.last_id = Some(prev.id.clone());
            }
            // Older ones are of no use.
            for old in list {
                let _ = cri.remove_container(&old.id).await;
            }
        }
        if self.sandbox.is_some() || !self.slots.is_empty() {
            tracing::info!(pod = %spec::pod_desc(pod), containers = self.slots.len(), "adopted the pod's runtime objects");
        }
    }

    /// Refreshes every container's state from the runtime.
    async fn refresh(&mut self) {
        for slot in self.slots.values_mut() {
            let Some(cur) = slot.current.as_mut() else {
                continue;
            };
            match self.ctx.cri.container_status(&cur.id).await {
                Ok(st) => {
                    cur.run = run_of(&st);
                    if !st.image_ref.is_empty() {
                        cur.image_id = st.image_ref.clone();
                    }
                }
                Err(e) if e.is_not_found() => {
                    // Removed behind our back: started again as a new attempt.
                    slot.next_attempt = slot.next_attempt.max(cur.attempt + 1);
                    slot.current = None;
                }
                Err(e) => tracing::debug!(error = %e, "ContainerStatus failed"),
            }
        }
    }

    /// One pass toward the pod's spec; returns the pod as the status write left it.
    async fn sync(&mut self, pod: &Pod) -> Option<Pod> {
        let observed_phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(observed_phase, Some("Succeeded") | Some("Failed")) {
            if !self.finished {
                self.finish(pod).await;
            }
            return None;
        }
        self.refresh().await;
        if !self.deadline_exceeded && past_active_deadline(pod, Timestamp::now()) {
            self.deadline_exceeded = true;
            self.kill_for_deadline(pod).await;
            self.refresh().await;
        }
        if self.deadline_exceeded {
            // Nothing starts again: the pod reports Failed, then finishes.
            let newer = self.report(pod).await;
            let failed = newer
                .as_ref()
                .unwrap_or(pod)
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                == Some("Failed");
            if failed {
                self.finish(pod).await;
            }
            return newer;
        }
        if self.ensure_sandbox(pod).await && self.ensure_volumes(pod).await {
            let spec = pod.spec.clone().unwrap_or_default();
            let mut initialized = true;
            for c in spec.init_containers.iter().flatten() {
                if restartable(c) {
                    // A sidecar: the sequence goes on once it has started (its startup
                    // probe, if any, succeeded); it is kept running afterwards.
                    self.step(pod, c, true).await;
                    if self.sidecar_started(c) {
                        continue;
                    }
                    initialized = false;
                    break;
                }
                let done = self
                    .slots
                    .get(&c.name)
                    .and_then(|s| s.current.as_ref())
                    .is_some_and(|cur| matches!(&cur.run, Run::Exited(t) if t.exit_code == 0));
                if done {
                    continue;
                }
                initialized = false;
                self.step(pod, c, true).await;
                break;
            }
            if initialized {
                for c in &spec.containers {
                    self.step(pod, c, false).await;
                }
            }
            // Ephemeral containers may start before the pod is initialized.
            for c in ephemeral_containers(pod) {
                self.step_ephemeral(pod, &c).await;
            }
            // The running containers' probes (sidecars' too, before the main containers).
            self.run_probes(pod).await;
        }
        let newer = self.report(pod).await;
        let phase = newer
            .as_ref()
            .unwrap_or(pod)
            .status
            .as_ref()
            .and_then(|s| s.phase.clone());
        if matches!(phase.as_deref(), Some("Succeeded") | Some("Failed")) {
            self.finish(pod).await;
        }
        newer
    }

    /// Whether the sidecar `c` runs and has started: no startup probe, or it succeeded
    /// for the current container.
    fn sidecar_started(&self, c: &Container) -> bool {
        let Some(cur) = self.slots.get(&c.name).and_then(|s| s.current.as_ref()) else {
            return false;
        };
        if !matches!(cur.run, Run::Running { .. }) {
            return false;
        }
        c.startup_probe.is_none()
            || self
                .probes
                .get(&c.name)
                .is_some_and(|p| p.container_id == cur.id && p.started())
    }

    /// The pod reached a terminal phase: its sandbox is stopped (containers and logs
    /// stay until the pod is deleted).
    async fn finish(&mut self, pod: &Pod) {
        self.finished = true;
        if let Some(sb) = &self.sandbox {
            if let Err(e) = self.ctx.cri.stop_pod_sandbox(&sb.id).await {
                tracing::warn!(pod = %spec::pod_desc(pod), error = %e, "cannot stop the sandbox of a finished pod");
            }
        }
    }

    /// Runs the probes that are due of the running containers (concurrently); a
    /// liveness or startup failure kills the container (the restart policy takes over).
    async fn run_probes(&mut self, pod: &Pod) {
        let ctx = self.ctx.clone();
        let spec = pod.spec.clone().unwrap_or_default();
        let pod_ip = if spec::host_network(pod) {
            Some(ctx.host_ip.clone())
        } else {
            self.sandbox.as_ref().and_then(|s| s.ip.clone())
        };
        let pod_ip = pod_ip.unwrap_or_default();
        let now = Instant::now();
        let mut jobs = Vec::new();
        let sidecars = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| restartable(c));
        for c in sidecars.chain(&spec.containers) {
            let running = self
                .slots
                .get(&c.name)
                .and_then(|s| s.current.as_ref())
                .and_then(|cur| match &cur.run {
                    Run::Running { started_at } => Some((cur.id.clone(), started_at.clone())),
                    _ => None,
                });
            let Some((id, started_at)) = running else {
                self.probes.remove(&c.name);
                continue;
            };
            if c.liveness_probe.is_none()
                && c.readiness_probe.is_none()
                && c.startup_probe.is_none()
            {
                continue;
            }
            if self
                .probes
                .get(&c.name)
                .is_none_or(|p| p.container_id != id)
            {
                let ran_for = started_at
                    .and_then(|t| {
                        SystemTime::now()
                            .duration_since(nanos_to_system(t.0.as_nanosecond() as i64))
                            .ok()
                    })
                    .unwrap_or_default();
                let since = now.checked_sub(ran_for).unwrap_or(now);
                self.probes
                    .insert(c.name.clone(), probes::Probes::new(c, &id, since));
            }
            let p = &self.probes[&c.name];
            for kind in p.due(now) {
                let Some(probe) = probes::probe_of(c, kind) else {
                    continue;
                };
                let timing = probes::Timing::of(probe);
                let action = probes::action_of(probe, c, &pod_ip);
                let cri = ctx.cri.clone();
                let id = id.clone();
                let name = c.name.clone();
                jobs.push(async move {
                    let r = match action {
                        Ok(a) => probes::run(&cri, &id, &a, timing.timeout).await,
                        Err(e) => Err(e),
                    };
                    (name, kind, r)
                });
            }
        }
        for (name, kind, r) in futures::future::join_all(jobs).await {
            let is_init = spec
                .init_containers
                .iter()
                .flatten()
                .any(|c| c.name == name);
            let fp = field_path(&name, is_init);
            let ok = r.is_ok();
            if let Err(out) = &r {
                ctx.recorder
                    .pod(
                        pod,
                        Some(&fp),
                        WARNING,
                        "Unhealthy",
                        &format!("{} probe failed: {out}", kind.name()),
                    )
                    .await;
            }
            let Some(p) = self.probes.get_mut(&name) else {
                continue;
            };
            let id = p.container_id.clone();
            let Some(t) = p.tracker(kind) else { continue };
            let changed = t.record(ok, Instant::now());
            if changed && !ok && kind != probes::Kind::Readiness {
                let what = if kind == probes::Kind::Liveness {
                    "liveness"
                } else {
                    "startup"
                };
                ctx.recorder
                    .pod(
                        pod,
                        Some(&fp),
                        NORMAL,
                        "Killing",
                        &format!("Container {name} failed {what} probe, will be restarted"),
                    )
                    .await;
                let c = spec
                    .containers
                    .iter()
                    .chain(spec.init_containers.iter().flatten())
                    .find(|c| c.name == name);
                let grace = c
                    .and_then(|c| probes::probe_of(c, kind))
                    .and_then(|p| p.termination_grace_period_seconds)
                    .or(spec.termination_grace_period_seconds)
                    .unwrap_or(30);
                let cri = ctx.cri.clone();
                let desc = spec::pod_desc(pod);
                let pre_stop = c
                    .and_then(|c| c.lifecycle.as_ref())
                    .and_then(|l| l.pre_stop.clone())
                    .zip(c.cloned());
                let (ctx, pod, fp, ip) = (ctx.clone(), pod.clone(), fp.clone(), pod_ip.clone());
                tokio::spawn(async move {
                    let mut grace = grace.max(MIN_GRACE_SECONDS);
                    if let Some((h, c)) = pre_stop {
                        let t0 = Instant::now();
                        let budget = Duration::from_secs(grace as u64);
                        if let Err(msg) = hooks::run(&cri, &id, &pod, &c, &h, &ip, budget).await {
                            ctx.recorder
                                .pod(&pod, Some(&fp), WARNING, "FailedPreStopHook", &msg)
                                .await;
                        }
                        grace = (grace - t0.elapsed().as_secs() as i64).max(MIN_GRACE_SECONDS);
                    }
                    if let Err(e) = cri.stop_container(&id, grace).await {
                        tracing::warn!(pod = %desc, error = %e, "cannot stop a container that failed its probe");
                    }
                });
            }
        }
    }

    /// The pod outlived its activeDeadlineSeconds (upstream's `killPod` of an evicted
    /// pod): the event, then every container stopped within the grace period.
    async fn kill_for_deadline(&mut self, pod: &Pod) {
        let ctx = self.ctx.clone();
        ctx.recorder
            .pod(pod, None, NORMAL, DEADLINE_REASON, DEADLINE_MESSAGE)
            .await;
        let grace = pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(MIN_GRACE_SECONDS);
        let running: Vec<String> = self
            .slots
            .values()
            .filter_map(|s| s.current.as_ref())
            .filter(|c| !matches!(c.run, Run::Exited(_)))
            .map(|c| c.id.clone())
            .collect();
        let stops = running.iter().map(|id| ctx.cri.stop_container(id, grace));
        for r in futures::future::join_all(stops).await {
            if let Err(e) = r {
                tracing::warn!(pod = %spec::pod_desc(pod), error = %e, "cannot stop a container past the pod's active deadline");
            }
        }
    }

    /// Sets up the pod's volumes and `/etc/hosts` (and rewrites API data every
    /// [`volumes::RESYNC`]); false while they never were.
    async fn ensure_volumes(&mut self, pod: &Pod) -> bool {
        if self.volumes_next.is_some_and(|t| t > Instant::now()) {
            return self.volumes.is_some();
        }
        let ctx = self.ctx.clone();
        let pod_dir = spec::pod_log_dir(&ctx.node.agent_dir, pod);
        let pod_ip = if spec::host_network(pod) {
            Some(ctx.host_ip.clone())
        } else {
            self.sandbox.as_ref().and_then(|s| s.ip.clone())
        };
        if let Some(ip) = &pod_ip {
            match volumes::write_hosts(pod, &pod_dir, ip, &ctx.node.cluster_domain) {
                Ok(p) => self.hosts = Some(p),
                Err(e) => {
                    tracing::warn!(pod = %spec::pod_desc(pod), error = %e, "cannot write /etc/hosts")
                }
            }
        }
        let rt = spec::Runtime {
            pod_ip,
            ..Default::default()
        };
        let result = match volumes::gather(&ctx.client, pod).await {
            Ok(objs) => volumes::setup(pod, &pod_dir, &objs, &ctx.node, &rt),
            Err(message) => Err(volumes::SetupError {
                volume: String::new(),
                message,
            }),
        };
        match result {
            Ok(paths) => {
                self.volumes = Some(paths);
                self.volumes_next = Some(Instant::now() + volumes::RESYNC);
                true
            }
            Err(e) => {
                self.volumes_next = Some(Instant::now() + Duration::from_secs(2));
                let msg = if e.volume.is_empty() {
                    format!("MountVolume.SetUp failed: {}", e.message)
                } else {
                    format!(
                        "MountVolume.SetUp failed for volume {:?} : {}",
                        e.volume, e.message
                    )
                };
                ctx.recorder
                    .pod(pod, None, WARNING, "FailedMount", &msg)
                    .await;
                self.volumes.is_some()
            }
        }
    }

    /// Makes sure the pod has a ready sandbox; false when it has none (yet).
    async fn ensure_sandbox(&mut self, pod: &Pod) -> bool {
        let cri = self.ctx.cri.clone();
        if let Some(sb) = &self.sandbox {
            match cri.pod_sandbox_status(&sb.id).await {
                Ok(st) if st.state == cri::PodSandboxState::SandboxReady as i32 => return true,
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    tracing::debug!(error = %e, "PodSandboxStatus failed");
                    return false;
                }
            }
            // It died: its containers go with it, and a new one is made.
            self.ctx
                .recorder
                .pod(
                    pod,
                    None,
                    NORMAL,
                    "SandboxChanged",
                    "Pod sandbox changed, it will be killed and re-created.",
                )
                .await;
            for slot in self.slots.values() {
                if let Some(cur) = &slot.current {
                    if !matches!(cur.run, Run::Exited(_)) {
                        let _ = cri.stop_container(&cur.id, 0).await;
                    }
                }
            }
            let id = sb.id.clone();
            let _ = cri.stop_pod_sandbox(&id).await;
            let _ = cri.remove_pod_sandbox(&id).await;
            self.sandbox = None;
            self.refresh().await;
        }
        let ran = self
            .slots
            .values()
            .any(|s| s.current.is_some() || s.last.is_some());
        if restart_policy(pod) == "Never" && ran {
            return false;
        }
        let now = SystemTime::now();
        if self.sandbox_retry_at.is_some_and(|t| t > now) {
            return false;
        }
        let log_dir = spec::pod_log_dir(&self.ctx.node.agent_dir, pod);
        if let Err(e) = std::fs::create_dir_all(&log_dir) {
            tracing::warn!(dir = %log_dir.display(), error = %e, "cannot create the pod's log directory");
        }
        let config = spec::sandbox_config(pod, &self.ctx.node, self.next_sandbox_attempt);
        match cri.run_pod_sandbox(config.clone()).await {
            Ok(id) => {
                self.next_sandbox_attempt += 1;
                self.sandbox_retry_at = None;
                let ip = cri
                    .pod_sandbox_status(&id)
                    .await
                    .ok()
                    .and_then(|s| s.network)
                    .map(|n| n.ip)
                    .filter(|ip| !ip.is_empty());
                tracing::info!(pod = %spec::pod_desc(pod), sandbox = %id, ip = ?ip, "sandbox ready");
                self.sandbox = Some(Sandbox { id, ip, config });
                true
            }
            Err(e) => {
                self.sandbox_backoff.next();
                self.sandbox_retry_at = Some(now + self.sandbox_backoff.delay() / 5);
                self.ctx
                    .recorder
                    .pod(
                        pod,
                        None,
                        WARNING,
                        "FailedCreatePodSandBox",
                        &format!("Failed to create pod sandbox: {e}"),
                    )
                    .await;
                false
            }
        }
    }

    /// Moves one container along: nothing while it runs; restart or back off when it
    /// exited; create and start it when it has no container.
    async fn step(&mut self, pod: &Pod, c: &Container, init: bool) {
        let now = SystemTime::now();
        let slot = self.slots.entry(c.name.clone()).or_default();
        match slot.current.as_ref().map(|cur| cur.run.clone()) {
            Some(Run::Running { .. }) | Some(Run::Created) => return,
            Some(Run::Exited(t)) => {
                let restarts = if restartable(c) {
                    should_restart("Always", false, t.exit_code)
                } else {
                    should_restart(&restart_policy(pod), init, t.exit_code)
                };
                if !restarts {
                    slot.waiting = None;
                    return;
                }
                let finished = t
                    .finished_at
                    .as_ref()
                    .map(|f| nanos_to_system(f.0.as_nanosecond() as i64))
                    .unwrap_or(now);
                if slot.crash.retry_at(finished, now).is_some() {
                    let entering =
                        slot.waiting.as_ref().map(|w| w.0.as_str()) != Some("CrashLoopBackOff");
                    let message = format!(
                        "back-off {} restarting failed container={} pod={}",
                        go_duration(slot.crash.delay()),
                        c.name,
                        spec::pod_desc(pod)
                    );
                    slot.waiting = Some(("CrashLoopBackOff".into(), Some(message)));
                    if entering {
                        let msg = format!(
                            "Back-off restarting failed container {} in pod {}",
                            c.name,
                            spec::pod_desc(pod)
                        );
                        self.ctx
                            .recorder
                            .pod(
                                pod,
                                Some(&field_path(&c.name, init)),
                                WARNING,
                                "BackOff",
                                &msg,
                            )
                            .await;
                    }
                    return;
                }
                slot.crash.next();
            }
            None => {
                if slot.retry_at.is_some_and(|t| t > now) {
                    return;
                }
            }
        }
        self.start(pod, c, init).await;
    }

    /// Starts an ephemeral container that has no container yet (a failed create is
    /// retried after its back-off); one that ran is never restarted.
    async fn step_ephemeral(&mut self, pod: &Pod, c: &Container) {
        let slot = self.slots.entry(c.name.clone()).or_default();
        if slot.current.is_some() || slot.retry_at.is_some_and(|t| t > SystemTime::now()) {
            return;
        }
        self.start(pod, c, false).await;
    }

    /// Pulls (per the pull policy), creates and starts the container's next attempt.
    async fn start(&mut self, pod: &Pod, c: &Container, init: bool) {
        let ctx = self.ctx.clone();
        let fp = field_path_in(pod, &c.name, init);
        let Some(sandbox) = self.sandbox.as_ref() else {
            return;
        };
        let (sandbox_id, sandbox_config, pod_ip) = (
            sandbox.id.clone(),
            sandbox.config.clone(),
            sandbox.ip.clone(),
        );
        let image_ref = match self.ensure_image(pod, c, &fp).await {
            Ok(r) => r,
            Err(waiting) => {
                self.slots.entry(c.name.clone()).or_default().waiting = Some(waiting);
                return;
            }
        };
        let no_volumes = HashMap::new();
        let slot = self.slots.entry(c.name.clone()).or_default();
        let attempt = slot
            .current
            .as_ref()
            .map(|cur| cur.attempt + 1)
            .unwrap_or(0)
            .max(slot.next_attempt);
        let log_dir: PathBuf = spec::pod_log_dir(&ctx.node.agent_dir, pod).join(&c.name);
        let _ = std::fs::create_dir_all(&log_dir);
        let hook_ip = pod_ip
            .clone()
            .or_else(|| spec::host_network(pod).then(|| ctx.host_ip.clone()))
            .unwrap_or_default();
        // The environment first: a subPathExpr expands from it (upstream's makeMounts).
        let sources = crate::env::gather(&ctx.client, pod, c).await;
        let volumes_of = self.volumes.as_ref().unwrap_or(&no_volumes);
        let rt = sources.and_then(|sources| {
            let mut rt = spec::Runtime {
                pod_ip: pod_ip.or_else(|| spec::host_network(pod).then(|| ctx.host_ip.clone())),
                sources,
                mounts: Vec::new(),
            };
            let envs = spec::env(pod, c, &ctx.node, &rt)?;
            let mut m = volumes::mounts(pod, c, volumes_of, self.hosts.as_deref(), &envs)?;
            let pod_dir = spec::pod_log_dir(&ctx.node.agent_dir, pod);
            match volumes::termination_log(&pod_dir, c) {
                Ok(t) => m.extend(t),
                Err(e) => {
                    tracing::warn!(pod = %spec::pod_desc(pod), container = %c.name, error = %e, "cannot create the termination-log file")
                }
            }
            rt.mounts = m;
            Ok(rt)
        });
        let slot = self.slots.entry(c.name.clone()).or_default();
        let config = match rt.and_then(|rt| {
            let cfg = spec::container_config(pod, c, attempt, &image_ref, &ctx.node, &rt)?;
            Ok((cfg, crate::env::invalid_key_warnings(pod, c, &rt.sources)))
        }) {
            Ok((cfg, warnings)) => {
                for w in warnings {
                    ctx.recorder
                        .pod(
                            pod,
                            Some(&fp),
                            WARNING,
                            "InvalidEnvironmentVariableNames",
                            &w,
                        )
                        .await;
                }
                cfg
            }
            Err(msg) => {
                slot.waiting = Some(("CreateContainerConfigError".into(), Some(msg.clone())));
                slot.retry_at = Some(SystemTime::now() + Duration::from_secs(2));
                ctx.recorder
                    .pod(pod, Some(&fp), WARNING, "Failed", &format!("Error: {msg}"))
                    .await;
                return;
            }
        };
        let id = match ctx
            .cri
            .create_container(&sandbox_id, config, sandbox_config)
            .await
        {
            Ok(id) => id,
            Err(e) => {
                let msg = e.to_string();
                slot.waiting = Some(("CreateContainerError".into(), Some(msg.clone())));
                slot.crash.next();
                slot.retry_at = Some(SystemTime::now() + slot.crash.delay());
                ctx.recorder
                    .pod(pod, Some(&fp), WARNING, "Failed", &format!("Error: {msg}"))
                    .await;
                return;
            }
        };
        ctx.recorder
            .pod(
                pod,
                Some(&fp),
                NORMAL,
                "Created",
                &format!("Created container: {}", c.name),
            )
            .await;
        let started = ctx.cri.start_container(&id).await;
        // The previous run becomes lastState; the one before it goes.
        if let Some(prev) = slot.current.take() {
            if let Some(old) = slot.last_id.take() {
                let _ = ctx.cri.remove_container(&old).await;
            }
            if let Run::Exited(t) = prev.run {
                slot.last = Some(t);
            }
            slot.last_id = Some(prev.id);
        }
        slot.next_attempt = attempt + 1;
        slot.retry_at = None;
        let image = c.image.clone().unwrap_or_default();
        slot.current = Some(Current {
            id: id.clone(),
            attempt,
            run: Run::Created,
            image: image.clone(),
            image_id: image_ref.clone(),
        });
        match started {
            Ok(()) => {
                slot.waiting = None;
                ctx.recorder
                    .pod(
                        pod,
                        Some(&fp),
                        NORMAL,
                        "Started",
                        &format!("Started container {}", c.name),
                    )
                    .await;
                if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
                    let r =
                        hooks::run(&ctx.cri, &id, pod, c, h, &hook_ip, POST_START_TIMEOUT).await;
                    if let Err(msg) = r {
                        ctx.recorder
                            .pod(pod, Some(&fp), WARNING, "FailedPostStartHook", &msg)
                            .await;
                        ctx.recorder
                            .pod(pod, Some(&fp), NORMAL, "Killing", "FailedPostStartHook")
                            .await;
                        let grace = pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.termination_grace_period_seconds)
                            .unwrap_or(30);
                        if let Err(e) = ctx
                            .cri
                            .stop_container(&id, grace.max(MIN_GRACE_SECONDS))
                            .await
                        {
                            tracing::warn!(pod = %spec::pod_desc(pod), error = %e, "cannot stop a container whose postStart hook failed");
                        }
                    }
                }
            }
            Err(e) => {
                let msg = e.to_string();
                slot.waiting = Some(("RunContainerError".into(), Some(msg.clone())));
                ctx.recorder
                    .pod(pod, Some(&fp), WARNING, "Failed", &format!("Error: {msg}"))
                    .await;
            }
        }
        if let Ok(st) = ctx.cri.container_status(&id).await {
            let cur = current_of(&st, &image);
            if let Some(c) = slot.current.as_mut() {
                c.run = cur.run;
                c.image = cur.image;
                if !cur.image_id.is_empty() {
                    c.image_id = cur.image_id;
                }
            }
            // A container that could not start is an exited one (restart policy decides).
            if matches!(slot.current.as_ref().map(|c| &c.run), Some(Run::Exited(_))) {
                slot.waiting = None;
            }
        }
    }

    /// The image's reference, present or pulled per the pull policy; or the waiting
    /// reason and message.
    async fn ensure_image(
        &mut self,
        pod: &Pod,
        c: &Container,
        fp: &str,
    ) -> Result<String, (String, Option<String>)> {
        let ctx = self.ctx.clone();
        let image = c.image.clone().unwrap_or_default();
        let policy = pull_policy(c);
        let rec = |type_: &'static str, reason: &'static str, msg: String| {
            let ctx = ctx.clone();
            let pod = pod.clone();
            let fp = fp.to_string();
            async move { ctx.recorder.pod(&pod, Some(&fp), type_, reason, &msg).await }
        };
        if policy != "Always" {
            match ctx.cri.image_status(&image).await {
                Ok(Some(img)) => {
                    rec(
                        NORMAL,
                        "Pulled",
                        format!("Container image {image:?} already present on machine"),
                    )
                    .await;
                    return Ok(img.id);
                }
                Ok(None) if policy == "Never" => {
                    let msg = format!(
                        "Container image {image:?} is not present with pull policy of Never"
                    );
                    rec(WARNING, "ErrImageNeverPull", msg.clone()).await;
                    return Err(("ErrImageNeverPull".into(), Some(msg)));
                }
                Ok(None) => {}
                Err(e) => return Err(("ErrImagePull".into(), Some(e.to_string()))),
            }
        }
        let now = SystemTime::now();
        let slot = self.slots.entry(c.name.clone()).or_default();
        if slot.pull_retry_at.is_some_and(|t| t > now) {
            if slot.waiting.as_ref().map(|w| w.0.as_str()) != Some("ImagePullBackOff") {
                rec(
                    NORMAL,
                    "BackOff",
                    format!("Back-off pulling image {image:?}"),
                )
                .await;
            }
            return Err((
                "ImagePullBackOff".into(),
                Some(format!(
                    "Back-off pulling image {image:?}: {}",
                    slot.pull_error
                )),
            ));
        }
        rec(NORMAL, "Pulling", format!("Pulling image {image:?}")).await;
        let t0 = Instant::now();
        let auth = ctx.registries.auth_for(&image);
        match ctx.cri.pull_image(&image, auth.as_ref()).await {
            Ok(r) => {
                let took = go_duration(t0.elapsed());
                let size = ctx
                    .cri
                    .image_status(&r)
                    .await
                    .ok()
                    .flatten()
                    .map(|i| i.size)
                    .unwrap_or(0);
                slot.pull_retry_at = None;
                rec(
                    NORMAL,
                    "Pulled",
                    format!(
                        "Successfully pulled image {image:?} in {took} ({took} including waiting). Image size: {size} bytes."
                    ),
                )
                .await;
                Ok(r)
            }
            Err(e) => {
                let detail = match &e {
                    Error::Cri { status, .. } => status.message().to_string(),
                    other => other.to_string(),
                };
                slot.pull.next();
                slot.pull_retry_at = Some(now + slot.pull.delay());
                slot.pull_error = detail.clone();
                let msg = format!("Failed to pull image {image:?}: {detail}");
                rec(WARNING, "Failed", msg).await;
                rec(WARNING, "Failed", "Error: ErrImagePull".into()).await;
                Err(("ErrImagePull".into(), Some(detail)))
            }
        }
    }

    /// What the worker knows of the pod, for its status.
    fn view(&self, pod: &Pod) -> PodView {
        let spec = pod.spec.clone().unwrap_or_default();
        let has_init = spec.init_containers.as_ref().is_some_and(|i| !i.is_empty());
        let one = |c: &Container, init: bool| -> ContainerView {
            let slot = self.slots.get(&c.name).cloned().unwrap_or_default();
            let spec_image = c.image.clone().unwrap_or_default();
            // upstream's defaultWaitingState: PodInitializing for every container of a
            // pod with init containers.
            let default_wait = if has_init {
                "PodInitializing"
            } else {
                "ContainerCreating"
            };
            let waiting = |w: Option<(String, Option<String>)>| {
                let (reason, message) = w.unwrap_or((default_wait.into(), None));
                State::Waiting { reason, message }
            };
            match &slot.current {
                None => ContainerView {
                    name: c.name.clone(),
                    state: waiting(slot.waiting.clone()),
                    last: slot.last.clone(),
                    restart_count: slot.next_attempt.saturating_sub(1) as i32,
                    image: spec_image,
                    image_id: String::new(),
                    container_id: None,
                    ready: None,
                    started: None,
                    restartable: init && restartable(c),
                },
                Some(cur) => {
                    let probes = self
                        .probes
                        .get(&c.name)
                        .filter(|p| (!init || restartable(c)) && p.container_id == cur.id);
                    let (state, last) = match (&cur.run, &slot.waiting) {
                        (Run::Exited(t), Some(w)) => (waiting(Some(w.clone())), Some(t.clone())),
                        (Run::Exited(t), None) => (State::Terminated(t.clone()), slot.last.clone()),
                        (Run::Running { started_at }, _) => (
                            State::Running {
                                started_at: started_at.clone(),
                            },
                            slot.last.clone(),
                        ),
                        (Run::Created, w) => (waiting(w.clone()), slot.last.clone()),
                    };
                    ContainerView {
                        name: c.name.clone(),
                        state,
                        last,
                        restart_count: cur.attempt as i32,
                        image: if cur.image.is_empty() {
                            spec_image
                        } else {
                            cur.image.clone()
                        },
                        image_id: cur.image_id.clone(),
                        container_id: Some(format!("containerd://{}", cur.id)),
                        ready: probes.map(|p| p.ready()),
                        started: probes.map(|p| p.started()),
                        restartable: init && restartable(c),
                    }
                }
            }
        };
        let sandbox_ready = self.sandbox.is_some();
        PodView {
            sandbox_ready,
            pod_ip: if spec::host_network(pod) {
                sandbox_ready.then(|| self.ctx.host_ip.clone())
            } else {
                self.sandbox.as_ref().and_then(|s| s.ip.clone())
            },
            init: spec
                .init_containers
                .iter()
                .flatten()
                .map(|c| one(c, true))
                .collect(),
            main: spec.containers.iter().map(|c| one(c, false)).collect(),
            ephemeral: ephemeral_containers(pod)
                .iter()
                .map(|c| one(c, false))
                .collect(),
        }
    }

    /// Writes the pod's status when it differs from what the API holds.
    async fn report(&mut self, pod: &Pod) -> Option<Pod> {
        let view = self.view(pod);
        let now = Time(Timestamp::now());
        let mut desired =
            status::pod_status(pod, &view, &self.ctx.host_ip, spec::qos_class(pod), &now);
        if self.deadline_exceeded {
            desired.phase = Some("Failed".into());
            desired.reason = Some(DEADLINE_REASON.into());
            desired.message = Some(DEADLINE_MESSAGE.into());
        }
        if status::status_current(pod.status.as_ref(), &desired) {
            return None;
        }
        let summary = status::summary(&desired);
        // The watch may lag our own write: the same status is not written again soon.
        if self
            .written
            .as_ref()
            .is_some_and(|(s, at)| *s == summary && at.elapsed() < Duration::from_secs(10))
        {
            return None;
        }
        let api: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = pod.metadata.name.clone().unwrap_or_default();
        let patch = status::status_patch(&self.uid, &desired);
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(p) => {
                self.written = Some((summary, Instant::now()));
                Some(p)
            }
            Err(e) => {
                tracing::debug!(pod = %spec::pod_desc(pod), error = %e, "pod status update failed");
                None
            }
        }
    }

    /// Stops the pod's containers (SIGTERM, SIGKILL after the grace period), removes its
    /// sandboxes and logs; with a grace period (a deletion the API asked for), then
    /// deletes the pod object for good, on condition it is still this pod.
    async fn teardown(&mut self, pod: &Pod, grace: Option<i64>) {
        let ctx = self.ctx.clone();
        let spec_grace = pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        let timeout = grace.unwrap_or(spec_grace).max(MIN_GRACE_SECONDS);
        self.refresh().await;
        let spec = pod.spec.clone().unwrap_or_default();
        let inits: HashSet<String> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect();
        let sidecar_names: HashSet<String> = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| restartable(c))
            .map(|c| c.name.clone())
            .collect();
        let mut stops = Vec::new();
        let mut sidecar_stops = Vec::new();
        for (name, slot) in &self.slots {
            let Some(cur) = &slot.current else { continue };
            if matches!(cur.run, Run::Exited(_)) {
                continue;
            }
            if grace.is_some() {
                ctx.recorder
                    .pod(
                        pod,
                        Some(&field_path_in(pod, name, inits.contains(name))),
                        NORMAL,
                        "Killing",
                        &format!("Stopping container {name}"),
                    )
                    .await;
            }
            let cri = ctx.cri.clone();
            let id = cur.id.clone();
            let container = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .find(|c| &c.name == name)
                .cloned();
            let pre_stop = container
                .as_ref()
                .and_then(|c| c.lifecycle.as_ref())
                .and_then(|l| l.pre_stop.clone())
                .filter(|_| grace.is_some());
            let hook_ip = if spec::host_network(pod) {
                Some(ctx.host_ip.clone())
            } else {
                self.sandbox.as_ref().and_then(|s| s.ip.clone())
            }
            .unwrap_or_default();
            let (ctx, pod, fp) = (
                ctx.clone(),
                pod.clone(),
                field_path_in(pod, name, inits.contains(name)),
            );
            let list = if sidecar_names.contains(name) {
                &mut sidecar_stops
            } else {
                &mut stops
            };
            list.push(async move {
                let mut remaining = timeout;
                if let (Some(h), Some(c)) = (pre_stop, container) {
                    let t0 = Instant::now();
                    let budget = Duration::from_secs(timeout.max(0) as u64);
                    if let Err(msg) = hooks::run(&cri, &id, &pod, &c, &h, &hook_ip, budget).await {
                        ctx.recorder
                            .pod(&pod, Some(&fp), WARNING, "FailedPreStopHook", &msg)
                            .await;
                    }
                    remaining = (timeout - t0.elapsed().as_secs() as i64).max(MIN_GRACE_SECONDS);
                }
                cri.stop_container(&id, remaining).await
            });
        }
        // As upstream: the main containers (and their preStop hooks) first, then the
        // sidecars, so that a hook can still use them.
        let main = futures::future::join_all(stops).await;
        let sidecars = futures::future::join_all(sidecar_stops).await;
        for r in main.into_iter().chain(sidecars) {
            if let Err(e) = r {
                tracing::warn!(pod = %spec::pod_desc(pod), error = %e, "cannot stop a container");
            }
        }
        let sandboxes = ctx
            .cri
            .list_pod_sandboxes(&[(LABEL_POD_UID, &self.uid)])
            .await
            .unwrap_or_default();
        for sb in sandboxes {
            if let Err(e) = ctx.cri.stop_pod_sandbox(&sb.id).await {
                tracing::warn!(pod = %spec::pod_desc(pod), error = %e, "cannot stop the sandbox");
            }
            if let Err(e) = ctx.cri.remove_pod_sandbox(&sb.id).await {
                tracing::warn!(pod = %spec::pod_desc(pod), error = %e, "cannot remove the sandbox");
            }
        }
        self.sandbox = None;
        self.slots.clear();
        let pod_dir = spec::pod_log_dir(&ctx.node.agent_dir, pod);
        volumes::cleanup(&pod_dir);
        let _ = std::fs::remove_dir_all(pod_dir);
        self.volumes = None;
        self.volumes_next = None;
        ctx.recorder.forget(&self.uid);
        tracing::info!(pod = %spec::pod_desc(pod), "pod stopped and removed from the runtime");
        if grace.is_some() {
            let api: Api<Pod> = Api::namespaced(
                ctx.client.clone(),
                pod.metadata.namespace.as_deref().unwrap_or("default"),
            );
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(self.uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            match api.delete(&name, &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => {
                    tracing::warn!(pod = %spec::pod_desc(pod), error = %e, "cannot delete the pod")
                }
            }
        }
    }
}

fn all_containers(pod: &Pod) -> impl Iterator<Item = (&Container, bool)> {
    let spec = pod.spec.as_ref();
    spec.into_iter()
        .flat_map(|s| s.init_containers.iter().flatten().map(|c| (c, true)))
        .chain(
            spec.into_iter()
                .flat_map(|s| s.containers.iter().map(|c| (c, false))),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_signals_its_changes_and_forgets_what_a_relist_did_not_see() {
        let pod = |name: &str, uid: &str| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "ns", "uid": uid}}))
            .unwrap()
        };
        let r = Registry::default();
        let mut changes = r.changes();
        assert!(!changes.has_changed().unwrap());
        r.set(&pod("a", "ua"));
        r.set(&pod("b", "ub"));
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        // A delete of an older pod of the same name leaves the newer one.
        r.remove(&pod("b", "old-b"));
        assert!(r.get("ns", "b").is_some());
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        r.retain_uids(&HashSet::from(["ua".to_string()]));
        assert!(changes.has_changed().unwrap());
        assert!(r.get("ns", "b").is_none());
        assert_eq!(r.read(|pods| pods.count()), 1);
    }

    #[test]
    fn go_durations() {
        let cases = [
            (0, "0s"),
            (512, "512ms"),
            (1000, "1s"),
            (1234, "1.234s"),
            (1500, "1.5s"),
            (10_000, "10s"),
            (80_000, "1m20s"),
            (300_000, "5m0s"),
            (3_661_000, "1h1m1s"),
        ];
        for (ms, want) in cases {
            assert_eq!(go_duration(Duration::from_millis(ms)), want, "{ms}");
        }
    }

    #[test]
    fn backoff() {
        let mut b = Backoff::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        // First failure: retried at once.
        assert_eq!(b.retry_at(t0, t0), None);
        let mut delays = Vec::new();
        for _ in 0..7 {
            b.next();
            delays.push(b.delay().as_secs());
        }
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(
            b.retry_at(t0, t0 + Duration::from_secs(1)),
            Some(t0 + Duration::from_secs(300))
        );
        assert_eq!(b.retry_at(t0, t0 + Duration::from_secs(301)), None);
    }

    #[test]
    fn active_deadline() {
        let pod = |deadline: Option<i64>, start: Option<i64>| {
            serde_json::from_value::<Pod>(serde_json::json!({
                "spec": {"containers": [], "activeDeadlineSeconds": deadline},
                "status": {"startTime": start.map(|s| Timestamp::from_second(s).unwrap().to_string())},
            }))
            .unwrap()
        };
        let at = |s| Timestamp::from_second(s).unwrap();
        assert!(!past_active_deadline(&pod(None, Some(100)), at(10_000)));
        assert!(!past_active_deadline(&pod(Some(5), None), at(10_000)));
        assert!(!past_active_deadline(&pod(Some(5), Some(100)), at(104)));
        assert!(past_active_deadline(&pod(Some(5), Some(100)), at(105)));
    }

    #[test]
    fn policies() {
        // (restart policy, init, exit code, restart)
        let cases = [
            ("Always", false, 0, true),
            ("Always", false, 1, true),
            ("OnFailure", false, 0, false),
            ("OnFailure", false, 3, true),
            ("Never", false, 3, false),
            ("Always", true, 0, false),
            ("Always", true, 1, true),
            ("Never", true, 1, false),
        ];
        for (p, init, code, want) in cases {
            assert_eq!(should_restart(p, init, code), want, "{p} {init} {code}");
        }
        let c = |image: &str, policy: Option<&str>| Container {
            name: "c".into(),
            image: Some(image.into()),
            image_pull_policy: policy.map(str::to_string),
            ..Default::default()
        };
        let cases = [
            (c("busybox", None), "Always"),
            (c("busybox:latest", None), "Always"),
            (c("docker.io/rkube/busybox:1.35", None), "IfNotPresent"),
            (c("localhost:5000/busybox", None), "Always"),
            (c("busybox@sha256:abc", None), "IfNotPresent"),
            (c("busybox", Some("Never")), "Never"),
        ];
        for (container, want) in cases {
            assert_eq!(pull_policy(&container), want, "{:?}", container.image);
        }
    }

    #[test]
    fn ephemeral_containers_run_as_containers() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "containers": [{"name": "main", "image": "busybox"}],
                "ephemeralContainers": [{
                    "name": "debugger", "image": "busybox", "command": ["sh"],
                    "stdin": true, "tty": true, "targetContainerName": "main",
                }],
            },
        }))
        .unwrap();
        let ecs = ephemeral_containers(&pod);
        assert_eq!(ecs.len(), 1);
        assert_eq!(ecs[0].name, "debugger");
        assert_eq!(ecs[0].image.as_deref(), Some("busybox"));
        assert_eq!(ecs[0].command, Some(vec!["sh".to_string()]));
        assert_eq!((ecs[0].stdin, ecs[0].tty), (Some(true), Some(true)));
        let cases = [
            ("debugger", false, "spec.ephemeralContainers{debugger}"),
            ("main", false, "spec.containers{main}"),
            ("init", true, "spec.initContainers{init}"),
        ];
        for (name, init, want) in cases {
            assert_eq!(field_path_in(&pod, name, init), want);
        }
    }
}
