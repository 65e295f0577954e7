//! `make bench`, the node part: pod startup latency through the kubelet beside raw CRI on
//! the same containerd, measured in the same run. A real `rkube server --disable-agent`
//! and a separate `rkube agent` process (the kubelet, with a containerd of its own);
//! pods of the test server image (`pause`), pinned to the agent's node with
//! `spec.nodeName`, the image already imported and warmed before any timing.
//!
//! - kubelet: the time from the create call to the watch event showing
//!   `status.phase: Running` (one watch of the namespace, started before the creates),
//!   for 1 pod at a time and for 30 created at once;
//! - raw: RunPodSandbox + CreateContainer + StartContainer of the same image through CRI
//!   (`kubelet::cri`, k8s-cri over the agent's containerd socket) with the configs the
//!   kubelet's `spec` builds for such a pod, 1 at a time and 30 at once.
//!
//! Target: kubelet p50 (p99) ≤ 1.3 × raw p50 (p99) + 50 ms. Also the agent's resident
//! memory (the kubelet's process) and its containerd's with 30 pods Running. Writes
//! `startup.json` and `startup.md` into `--output`.

#[allow(dead_code)]
#[path = "support/agent.rs"]
mod agent;
#[allow(dead_code)]
mod support;

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use serde_json::{json, Value};

use agent::{pss_mib, rss_mib, Agent};
use kubelet::cri::Cri;
use kubelet::spec::{self, NodeContext, LABEL_POD_NAMESPACE};
use support::cli;
use support::progress::{note, phase};
use support::report::{num, Metric, Report, Target};
use support::server::{ensure_namespace, temp_dir, warm_clients, Server};
use support::stats::{round, summarize};
use support::usage::{loadavg, status_kib};

/// The kubelet's pods' namespace, and the one named in the raw sandboxes' metadata (so
/// the two never share a sandbox name).
const NS: &str = "bench-startup";
const RAW_NS: &str = "bench-startup-raw";
const NODE: &str = "bench-startup";
/// The pod network: a /16 that neither `make run` (10.42) nor the tests (10.50–10.249)
/// use, so the agent's bridge meets no other on this machine.
const CLUSTER_CIDR: &str = "10.252.0.0/16";
/// Pods at once per level, and rounds per level (each side).
const LEVELS: [(usize, usize); 2] = [(1, 20), (30, 5)];
const BURST: usize = 30;
/// Target: kubelet ≤ FACTOR × raw + SLACK_MS.
const FACTOR: f64 = 1.3;
const SLACK_MS: f64 = 50.0;
const NODE_TIMEOUT: Duration = Duration::from_secs(120);
const RUNNING_TIMEOUT: Duration = Duration::from_secs(120);
const GONE_TIMEOUT: Duration = Duration::from_secs(120);
/// A pause between rounds, for what the last one left behind (status writes, events).
const BETWEEN: Duration = Duration::from_millis(500);
const CONTAINER: &str = "pause";

fn main() -> ExitCode {
    cli::main(
        "startup",
        "rkube pod startup: create → Running through the kubelet vs raw CRI".into(),
        run,
        metrics,
    )
}

/// One level (pods at once): both sides' samples.
#[derive(Default)]
struct Level {
    pods: usize,
    rounds: usize,
    kubelet: Vec<Duration>,
    raw: Vec<Duration>,
    raw_calls: RawCalls,
    /// Kubelet side: create call → the kubelet's `sandbox ready` log line.
    to_sandbox: Vec<Duration>,
    /// Kubelet side: that log line → Running seen by the watch, per pod.
    after_sandbox: Vec<Duration>,
    /// Kubelet side: per round, create of the first pod → the last one Running.
    kubelet_round_ms: Vec<f64>,
    raw_round_ms: Vec<f64>,
    /// The machine's 1-minute load average when the level began and ended.
    load: (Option<f64>, Option<f64>),
}

/// The raw side's three calls, separately.
#[derive(Default)]
struct RawCalls {
    sandbox: Vec<Duration>,
    create: Vec<Duration>,
    start: Vec<Duration>,
    /// CreateContainer + StartContainer.
    after_sandbox: Vec<Duration>,
}

/// Resident memory with the burst's pods Running.
#[derive(Clone, Copy, Default)]
struct Memory {
    agent_mib: f64,
    containerd_mib: f64,
    /// The shims' VmRSS summed, and their proportional share (Pss) summed.
    shims_rss_mib: f64,
    shims_pss_mib: f64,
    shims: usize,
}

impl Memory {
    fn json(&self) -> Value {
        json!({
            "agent_rss_mib": round(self.agent_mib),
            "containerd_rss_mib": round(self.containerd_mib),
            "shims_rss_mib": round(self.shims_rss_mib),
            "shims_pss_mib": round(self.shims_pss_mib),
            "shims": self.shims,
        })
    }
}

struct Results {
    levels: Vec<Level>,
    idle: Memory,
    /// The highest sample with 30 pods Running (by the agent's RSS).
    busy: Memory,
    agent_hwm_mib: Option<f64>,
    image: String,
    containerd_version: String,
}

async fn run(report: &mut Report) -> Result<Results> {
    phase("starting rkube server --disable-agent");
    let dir = temp_dir()?;
    let mut server = Server::start_with(
        dir.path(),
        &["--cluster-cidr".to_string(), CLUSTER_CIDR.to_string()],
    )
    .await?;
    let url = server
        .url()
        .context("the server logged no URL")?
        .to_string();
    phase("starting rkube agent (the kubelet, with a containerd of its own)");
    let mut agent = Agent::start(&url, &dir.path().join("server/token"), NODE, &[])?;
    note(&format!(
        "agent pid {}, data dir {}, log {}",
        agent.pid().unwrap_or(0),
        agent.dir.path().display(),
        agent.log.display()
    ));
    let r = measure(&mut server, &mut agent, report).await;
    if r.is_err() {
        eprintln!("--- rkube agent log (end) ---\n{}", agent.log_tail(40));
    }
    phase("stopping the agent (and removing what it left) and the server");
    agent.stop().await;
    server.stop().await;
    r
}

async fn measure(server: &mut Server, agent: &mut Agent, report: &mut Report) -> Result<Results> {
    let cfg = server.config().await?;
    let client = kube::Client::try_from(cfg.clone())?;
    let image = agent::image("RKUBE_TESTSERVER_IMAGE")?;
    wait_node(&client, agent).await?;

    phase("connecting to the agent's containerd over CRI");
    let cri = Cri::connect(&agent.containerd_socket()).await?;
    let containerd_version = cri
        .version()
        .await
        .map(|v| format!("{} {}", v.runtime_name, v.runtime_version))
        .unwrap_or_default();
    report
        .context
        .insert("containerd".into(), json!(containerd_version));
    let image_ref = wait_image(&cri, &image).await?;
    note(&format!("{image} is {image_ref}"));
    let raw = RawSide::new(cri.clone(), agent, &image, &image_ref);

    ensure_namespace(&client, NS).await?;
    wait_service_account(&client).await?;
    let mut events = PodEvents::start(client.clone()).await?;
    let clients = warm_clients(&cfg, BURST).await?;
    let idle = memory(agent);
    note(&format!(
        "idle: agent VmRSS {:.1} MiB, its containerd {:.1} MiB",
        idle.agent_mib, idle.containerd_mib
    ));

    phase("warm-up: one pod through the kubelet, one raw sandbox");
    let warm = KubeletSide {
        clients: &clients,
        cri: &cri,
        image: &image,
        agent,
    };
    warm.round(&mut events, &["warm-up".to_string()], false)
        .await
        .context("warm-up pod")?;
    raw.round(&["warm-up".to_string()])
        .await
        .context("warm-up raw sandbox")?;

    let mut levels = Vec::new();
    let mut busy = Memory::default();
    for (pods, rounds) in LEVELS {
        phase(&format!(
            "{}, {rounds} rounds each side (raw CRI and kubelet, alternating)",
            at_once(pods)
        ));
        let mut level = Level {
            pods,
            rounds,
            load: (loadavg(), None),
            ..Level::default()
        };
        for r in 0..rounds {
            let names: Vec<String> = (0..pods)
                .map(|i| format!("p{pods}-r{r:02}-{i:02}"))
                .collect();
            let kubelet = KubeletSide {
                clients: &clients,
                cri: &cri,
                image: &image,
                agent,
            };
            // Alternate which side goes first, so neither always follows the other's
            // clean-up.
            let (k, w) = if r % 2 == 0 {
                let w = raw.round(&names).await?;
                tokio::time::sleep(BETWEEN).await;
                (kubelet.round(&mut events, &names, pods > 1).await?, w)
            } else {
                let k = kubelet.round(&mut events, &names, pods > 1).await?;
                tokio::time::sleep(BETWEEN).await;
                (k, raw.round(&names).await?)
            };
            tokio::time::sleep(BETWEEN).await;
            let ks = summarize(&k.latencies);
            let ws = summarize(&w.latencies);
            note(&format!(
                "round {}/{rounds}: kubelet p50 {:.0} ms max {:.0} ms; raw p50 {:.0} ms max {:.0} ms",
                r + 1,
                ks.p50_ms,
                ks.max_ms,
                ws.p50_ms,
                ws.max_ms
            ));
            if let Some(m) = k.memory {
                note(&format!(
                    "with {pods} Running: agent VmRSS {:.1} MiB, containerd {:.1} MiB, {} shims Pss {:.1} MiB",
                    m.agent_mib, m.containerd_mib, m.shims, m.shims_pss_mib
                ));
                if m.agent_mib > busy.agent_mib {
                    busy = m;
                }
            }
            level.kubelet.extend(k.latencies);
            level.to_sandbox.extend(k.to_sandbox);
            level.after_sandbox.extend(k.after_sandbox);
            level.kubelet_round_ms.push(k.wall.as_secs_f64() * 1e3);
            level.raw.extend(w.latencies);
            level.raw_calls.sandbox.extend(w.calls.sandbox);
            level.raw_calls.create.extend(w.calls.create);
            level.raw_calls.start.extend(w.calls.start);
            level.raw_calls.after_sandbox.extend(w.calls.after_sandbox);
            level.raw_round_ms.push(w.wall.as_secs_f64() * 1e3);
            if let Some(how) = agent.exited() {
                bail!("{how}");
            }
            if let Some(how) = server.exited() {
                bail!("{how}");
            }
        }
        level.load.1 = loadavg();
        levels.push(level);
    }
    events.stop();
    let agent_hwm_mib = agent
        .pid()
        .and_then(|p| status_kib(p, "VmHWM:"))
        .map(|k| k as f64 / 1024.0);
    Ok(Results {
        levels,
        idle,
        busy,
        agent_hwm_mib,
        image,
        containerd_version,
    })
}

/// Waits until the agent's Node is Ready with a pod CIDR (its CNI network is then
/// written).
async fn wait_node(client: &kube::Client, agent: &mut Agent) -> Result<()> {
    phase(&format!("waiting for node {NODE} to be Ready"));
    let nodes: Api<Node> = Api::all(client.clone());
    let start = Instant::now();
    loop {
        if let Some(n) = nodes.get_opt(NODE).await? {
            let ready = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let cidr = n.spec.as_ref().and_then(|s| s.pod_cidr.clone());
            if let (true, Some(cidr)) = (ready, cidr) {
                note(&format!(
                    "Ready after {:.1} s, pod CIDR {cidr}",
                    start.elapsed().as_secs_f64()
                ));
                return Ok(());
            }
        }
        if let Some(how) = agent.exited() {
            bail!("{how}");
        }
        if start.elapsed() > NODE_TIMEOUT {
            bail!(
                "node {NODE} not Ready with a pod CIDR within {NODE_TIMEOUT:?}; the agent's log ends with:\n{}",
                agent.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The image's ID once the agent's containerd has imported it.
async fn wait_image(cri: &Cri, image: &str) -> Result<String> {
    let start = Instant::now();
    loop {
        if let Some(i) = cri.image_status(image).await? {
            return Ok(i.id);
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("{image} is not in the agent's containerd after 60 s (was it imported?)");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Pods are admitted only once their namespace has its `default` ServiceAccount.
async fn wait_service_account(client: &kube::Client) -> Result<()> {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), NS);
    let start = Instant::now();
    while sas.get_opt("default").await?.is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            bail!("no ServiceAccount {NS}/default after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The pod both sides start: the test server's `pause`, pinned to the agent's node.
fn pod(name: &str, image: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS, "labels": {"app": "bench-startup"}},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": CONTAINER,
                "image": image,
                "args": ["pause"],
                "imagePullPolicy": "IfNotPresent",
            }],
        },
    }))
    .expect("a valid pod")
}

fn memory(agent: &Agent) -> Memory {
    let shims = agent.shim_pids();
    Memory {
        agent_mib: agent.pid().map_or(f64::NAN, |p| rss_mib(&[p])),
        containerd_mib: agent.containerd_pid().map_or(f64::NAN, |p| rss_mib(&[p])),
        shims_rss_mib: rss_mib(&shims),
        shims_pss_mib: pss_mib(&shims),
        shims: shims.len(),
    }
}

// --- the kubelet side ---------------------------------------------------------------

/// What the namespace's pod watch saw.
enum Seen {
    Synced,
    Pod(Box<Pod>, Instant),
    Gone(String),
}

/// One watch of [`NS`]'s pods, started before any create: when each pod was first seen
/// Running, and which are gone.
struct PodEvents {
    rx: tokio::sync::mpsc::UnboundedReceiver<Seen>,
    task: tokio::task::JoinHandle<()>,
    running: HashMap<String, Instant>,
    last: HashMap<String, Pod>,
    gone: HashSet<String>,
    api: Api<Pod>,
}

impl PodEvents {
    async fn start(client: kube::Client) -> Result<PodEvents> {
        let api: Api<Pod> = Api::namespaced(client, NS);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let stream_api = api.clone();
        let task = tokio::spawn(async move {
            let mut stream = watcher(stream_api, watcher::Config::default()).boxed();
            while let Some(ev) = stream.next().await {
                let now = Instant::now();
                let seen = match ev {
                    Ok(watcher::Event::InitDone) => Seen::Synced,
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                        Seen::Pod(Box::new(p), now)
                    }
                    Ok(watcher::Event::Delete(p)) => {
                        Seen::Gone(p.metadata.name.unwrap_or_default())
                    }
                    Ok(watcher::Event::Init) => continue,
                    Err(e) => {
                        note(&format!("pod watch: {e} (it resumes)"));
                        continue;
                    }
                };
                if tx.send(seen).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, rx.recv()).await {
                Ok(Some(Seen::Synced)) => break,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => bail!("the pod watch did not start within 30 s"),
            }
        }
        Ok(PodEvents {
            rx,
            task,
            running: HashMap::new(),
            last: HashMap::new(),
            gone: HashSet::new(),
            api,
        })
    }

    fn take(&mut self, s: Seen) {
        match s {
            Seen::Synced => {}
            Seen::Pod(p, at) => {
                let name = p.metadata.name.clone().unwrap_or_default();
                if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                    self.running.entry(name.clone()).or_insert(at);
                }
                self.last.insert(name, *p);
            }
            Seen::Gone(name) => {
                self.gone.insert(name);
            }
        }
    }

    /// When each of `names` was first seen Running.
    async fn wait_running(&mut self, names: &[String]) -> Result<Vec<Instant>> {
        let deadline = Instant::now() + RUNNING_TIMEOUT;
        while !names.iter().all(|n| self.running.contains_key(n)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(s)) => self.take(s),
                Ok(None) => bail!("the pod watch ended"),
                Err(_) => {
                    let late: Vec<String> = names
                        .iter()
                        .filter(|n| !self.running.contains_key(*n))
                        .map(|n| format!("{n}: {}", self.describe(n)))
                        .collect();
                    bail!(
                        "{} of {} pods not Running after {RUNNING_TIMEOUT:?}:\n{}",
                        late.len(),
                        names.len(),
                        late.join("\n")
                    );
                }
            }
        }
        Ok(names.iter().map(|n| self.running[n]).collect())
    }

    /// Waits until `names` are gone from the API (the watch's deletes, or a list).
    async fn wait_gone(&mut self, names: &[String]) -> Result<()> {
        let deadline = Instant::now() + GONE_TIMEOUT;
        let mut next_list = Instant::now() + Duration::from_secs(5);
        while !names.iter().all(|n| self.gone.contains(n)) {
            if Instant::now() > deadline {
                bail!("pods still in the API {GONE_TIMEOUT:?} after their deletion");
            }
            match tokio::time::timeout(Duration::from_millis(500), self.rx.recv()).await {
                Ok(Some(s)) => self.take(s),
                Ok(None) => bail!("the pod watch ended"),
                Err(_) => {}
            }
            if Instant::now() > next_list {
                next_list = Instant::now() + Duration::from_secs(5);
                let have: HashSet<String> = self
                    .api
                    .list(&ListParams::default())
                    .await?
                    .items
                    .into_iter()
                    .filter_map(|p| p.metadata.name)
                    .collect();
                for n in names {
                    if !have.contains(n) {
                        self.gone.insert(n.clone());
                    }
                }
            }
        }
        Ok(())
    }

    /// The pod's phase and its container's state as last seen.
    fn describe(&self, name: &str) -> String {
        let Some(p) = self.last.get(name) else {
            return "never seen".into();
        };
        let st = p.status.clone().unwrap_or_default();
        let waiting: Vec<String> = st
            .container_statuses
            .iter()
            .flatten()
            .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
            .map(|w| {
                format!(
                    "{} {}",
                    w.reason.clone().unwrap_or_default(),
                    w.message.clone().unwrap_or_default()
                )
            })
            .collect();
        format!(
            "phase {}, waiting: {}",
            st.phase.unwrap_or_else(|| "-".into()),
            waiting.join("; ")
        )
    }

    fn stop(&self) {
        self.task.abort();
    }
}

struct KubeletSide<'a> {
    clients: &'a [kube::Client],
    cri: &'a Cri,
    image: &'a str,
    agent: &'a Agent,
}

struct KubeletRound {
    latencies: Vec<Duration>,
    to_sandbox: Vec<Duration>,
    after_sandbox: Vec<Duration>,
    wall: Duration,
    memory: Option<Memory>,
}

impl KubeletSide<'_> {
    /// Creates `names` at once, times each to Running, then deletes them and waits
    /// until they are gone from the API and from the runtime. With `sample`, reads the
    /// memory figures while they all run.
    async fn round(
        &self,
        events: &mut PodEvents,
        names: &[String],
        sample: bool,
    ) -> Result<KubeletRound> {
        let creates = names.iter().enumerate().map(|(i, name)| {
            let api: Api<Pod> = Api::namespaced(self.clients[i % self.clients.len()].clone(), NS);
            let body = pod(name, self.image);
            async move {
                let wall = SystemTime::now();
                let t = Instant::now();
                api.create(&PostParams::default(), &body)
                    .await
                    .with_context(|| format!("creating pod {name}"))?;
                anyhow::Ok((t, wall))
            }
        });
        let begun = Instant::now();
        let created = futures::future::try_join_all(creates).await?;
        let running = events.wait_running(names).await?;
        let wall = running.iter().max().map_or(Duration::ZERO, |m| *m - begun);
        let memory = sample.then(|| memory(self.agent));
        let latencies: Vec<Duration> = created
            .iter()
            .zip(&running)
            .map(|((t, _), r)| *r - *t)
            .collect();
        let ready = sandbox_ready_times(&self.agent.log);
        let (mut to_sandbox, mut after_sandbox) = (Vec::new(), Vec::new());
        for ((n, (_, wall)), total) in names.iter().zip(&created).zip(&latencies) {
            if let Some(d) = ready.get(n).and_then(|r| r.duration_since(*wall).ok()) {
                to_sandbox.push(d);
                after_sandbox.push(total.saturating_sub(d));
            }
        }

        let deletes = names.iter().enumerate().map(|(i, name)| {
            let api: Api<Pod> = Api::namespaced(self.clients[i % self.clients.len()].clone(), NS);
            async move {
                match api.delete(name, &DeleteParams::default()).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                    Err(e) => Err(anyhow!(e).context(format!("deleting pod {name}"))),
                }
            }
        });
        futures::future::try_join_all(deletes).await?;
        events.wait_gone(names).await?;
        wait_no_sandboxes(self.cri, NS).await?;
        Ok(KubeletRound {
            latencies,
            to_sandbox,
            after_sandbox,
            wall,
            memory,
        })
    }
}

/// When the kubelet logged `sandbox ready` for each pod (by name), from the agent's log
/// (tracing's RFC 3339 timestamps, UTC).
fn sandbox_ready_times(log: &std::path::Path) -> HashMap<String, SystemTime> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| l.contains("sandbox ready")) {
        let Some(ts) = line.split_whitespace().next() else {
            continue;
        };
        let Ok(t) = k8s_openapi::jiff::Timestamp::from_str(ts) else {
            continue;
        };
        // pod=<name>_<namespace>(<uid>)
        let Some(desc) = line.split_whitespace().find_map(|f| f.strip_prefix("pod=")) else {
            continue;
        };
        let Some(name) = desc.strip_suffix(')').and_then(|d| {
            let (name_ns, _) = d.split_once('(')?;
            name_ns.strip_suffix(&format!("_{NS}"))
        }) else {
            continue;
        };
        out.insert(name.to_string(), SystemTime::from(t));
    }
    out
}

/// Waits until the runtime has no sandbox of `namespace` (the kubelet removes a deleted
/// pod's sandbox after the pod left the API).
async fn wait_no_sandboxes(cri: &Cri, namespace: &str) -> Result<()> {
    let deadline = Instant::now() + GONE_TIMEOUT;
    loop {
        let left = cri
            .list_pod_sandboxes(&[(LABEL_POD_NAMESPACE, namespace)])
            .await?;
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} sandboxes of {namespace} still in the runtime {GONE_TIMEOUT:?} after their pods' deletion",
                left.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// --- the raw side -------------------------------------------------------------------

/// Raw CRI on the agent's containerd, with the configs the kubelet would send for the
/// same pod (its `spec` module): same image, cgroup parent, DNS, log directory.
struct RawSide {
    cri: Cri,
    node: NodeContext,
    image_ref: String,
    image: String,
    round: std::sync::atomic::AtomicUsize,
}

struct RawRound {
    latencies: Vec<Duration>,
    calls: RawCalls,
    wall: Duration,
}

impl RawSide {
    fn new(cri: Cri, agent: &Agent, image: &str, image_ref: &str) -> RawSide {
        let agent_dir = agent.agent_dir();
        let facts = kubelet::node::Facts::read();
        let node = NodeContext {
            cgroup_root: kubelet::containerd::Layout::new(&agent_dir).cgroup_root(),
            agent_dir,
            node_name: NODE.into(),
            node_ip: [127, 0, 0, 1].into(),
            // rkube's defaults (`--cluster-dns`, `--cluster-domain`), as the agent has them.
            cluster_dns: [10, 43, 0, 10].into(),
            cluster_domain: "cluster.local".into(),
            host_dns: spec::ResolvConf::read(),
            cpus: facts.cpus,
            memory_bytes: facts.memory_kib * 1024,
        };
        RawSide {
            cri,
            node,
            image_ref: image_ref.to_string(),
            image: image.to_string(),
            round: Default::default(),
        }
    }

    /// RunPodSandbox + CreateContainer + StartContainer for each of `names` at once,
    /// then every sandbox of [`RAW_NS`] stopped and removed.
    async fn round(&self, names: &[String]) -> Result<RawRound> {
        let n = self
            .round
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut pods = Vec::with_capacity(names.len());
        for name in names {
            let mut p = pod(name, &self.image);
            p.metadata.namespace = Some(RAW_NS.into());
            p.metadata.uid = Some(format!("bench-raw-{}-{n}-{name}", std::process::id()));
            let sandbox = spec::sandbox_config(&p, &self.node, 0);
            let c = &p.spec.as_ref().expect("a spec").containers[0];
            let container = spec::container_config(
                &p,
                c,
                0,
                &self.image_ref,
                &self.node,
                &spec::Runtime::default(),
            )
            .map_err(|e| anyhow!("container config: {e}"))?;
            let log_dir = spec::pod_log_dir(&self.node.agent_dir, &p);
            std::fs::create_dir_all(log_dir.join(CONTAINER))?;
            pods.push((log_dir, sandbox, container));
        }
        let begun = Instant::now();
        let tasks: Vec<_> = pods
            .iter()
            .map(|(_, sandbox, container)| {
                let (cri, sandbox, container) =
                    (self.cri.clone(), sandbox.clone(), container.clone());
                tokio::spawn(async move {
                    let t0 = Instant::now();
                    let id = cri.run_pod_sandbox(sandbox.clone()).await?;
                    let t1 = Instant::now();
                    let cid = cri.create_container(&id, container, sandbox).await?;
                    let t2 = Instant::now();
                    cri.start_container(&cid).await?;
                    let t3 = Instant::now();
                    anyhow::Ok((t1 - t0, t2 - t1, t3 - t2, t3 - t0, t3))
                })
            })
            .collect();
        let results = futures::future::join_all(tasks).await;
        let mut out = RawRound {
            latencies: Vec::new(),
            calls: RawCalls::default(),
            wall: Duration::ZERO,
        };
        let mut failure = None;
        for r in results {
            match r.map_err(anyhow::Error::from).and_then(|r| r) {
                Ok((s, c, st, total, end)) => {
                    out.calls.sandbox.push(s);
                    out.calls.create.push(c);
                    out.calls.start.push(st);
                    out.calls.after_sandbox.push(c + st);
                    out.latencies.push(total);
                    out.wall = out.wall.max(end - begun);
                }
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        self.clean().await?;
        for (log_dir, _, _) in &pods {
            let _ = std::fs::remove_dir_all(log_dir);
        }
        match failure {
            Some(e) => Err(e.context("raw CRI round")),
            None => Ok(out),
        }
    }

    /// Stops and removes every sandbox of [`RAW_NS`] (their containers go with them).
    async fn clean(&self) -> Result<()> {
        let all = self
            .cri
            .list_pod_sandboxes(&[(LABEL_POD_NAMESPACE, RAW_NS)])
            .await?;
        let removals = all.iter().map(|sb| async move {
            self.cri.stop_pod_sandbox(&sb.id).await?;
            self.cri.remove_pod_sandbox(&sb.id).await?;
            anyhow::Ok(())
        });
        futures::future::try_join_all(removals)
            .await
            .context("removing the raw sandboxes")?;
        Ok(())
    }
}

// --- the report ---------------------------------------------------------------------

fn metrics(report: &mut Report, r: &Results) {
    for l in &r.levels {
        let k = summarize(&l.kubelet);
        let w = summarize(&l.raw);
        let at = at_once(l.pods);
        for (q, kv, wv) in [("p50", k.p50_ms, w.p50_ms), ("p99", k.p99_ms, w.p99_ms)] {
            report.add(
                Metric::new(
                    key(l.pods, q),
                    format!("create → Running (watch), {at}, {q} (peer: raw CRI {q}; target 1.3 × raw + 50 ms)"),
                    kv,
                    "ms",
                )
                .peer(wv)
                .target(Target::AtMost(FACTOR * wv + SLACK_MS)),
            );
        }
    }
    report.add(Metric::new(
        "startup_agent_rss_30_mib",
        format!("rkube agent (kubelet) VmRSS with {BURST} pods Running"),
        r.busy.agent_mib,
        "MiB",
    ));
    report.add(Metric::new(
        "startup_containerd_rss_30_mib",
        format!("its containerd's VmRSS with {BURST} pods Running"),
        r.busy.containerd_mib,
        "MiB",
    ));
    report.add(Metric::new(
        "startup_agent_rss_idle_mib",
        "rkube agent (kubelet) VmRSS with no pods",
        r.idle.agent_mib,
        "MiB",
    ));

    let mut level_notes = Vec::new();
    let mut details = Vec::new();
    for l in &r.levels {
        let (k, w) = (summarize(&l.kubelet), summarize(&l.raw));
        let (s, c, st) = (
            summarize(&l.raw_calls.sandbox),
            summarize(&l.raw_calls.create),
            summarize(&l.raw_calls.start),
        );
        let to_sb = summarize(&l.to_sandbox);
        let after = summarize(&l.after_sandbox);
        let raw_after = summarize(&l.raw_calls.after_sandbox);
        level_notes.push(format!(
            "{} ({} rounds, {} samples a side; a p99 of fewer than 100 is the maximum), p50s: raw RunPodSandbox {} ms, \
             CreateContainer {} ms, StartContainer {} ms; kubelet create call → its `sandbox \
             ready` log line {} ms (p99 {}) vs raw RunPodSandbox {} ms (p99 {}); that line → \
             Running seen {} ms (p99 {}) vs raw CreateContainer + StartContainer {} ms (p99 {}). \
             1-minute load {} → {}.",
            at_once(l.pods),
            l.rounds,
            k.count,
            num(s.p50_ms),
            num(c.p50_ms),
            num(st.p50_ms),
            num(to_sb.p50_ms),
            num(to_sb.p99_ms),
            num(s.p50_ms),
            num(s.p99_ms),
            num(after.p50_ms),
            num(after.p99_ms),
            num(raw_after.p50_ms),
            num(raw_after.p99_ms),
            l.load.0.map_or("?".into(), num),
            l.load.1.map_or("?".into(), num),
        ));
        details.push(json!({
            "pods_at_once": l.pods,
            "rounds": l.rounds,
            "kubelet_create_to_running": k.json(),
            "kubelet_create_to_sandbox_ready_log": to_sb.json(),
            "kubelet_sandbox_ready_log_to_running": after.json(),
            "raw_create_plus_start_container": raw_after.json(),
            "kubelet_round_wall_ms": l.kubelet_round_ms.iter().copied().map(round).collect::<Vec<_>>(),
            "raw_total": w.json(),
            "raw_run_pod_sandbox": s.json(),
            "raw_create_container": c.json(),
            "raw_start_container": st.json(),
            "raw_round_wall_ms": l.raw_round_ms.iter().copied().map(round).collect::<Vec<_>>(),
            "loadavg_1m_start": l.load.0.map(round),
            "loadavg_1m_end": l.load.1.map(round),
            "target_p50_ms": round(FACTOR * w.p50_ms + SLACK_MS),
            "target_p99_ms": round(FACTOR * w.p99_ms + SLACK_MS),
        }));
    }
    report.detail("levels", json!(details));
    report.detail(
        "memory",
        json!({
            "idle": r.idle.json(),
            "with_30_running": r.busy.json(),
            "agent_hwm_mib": r.agent_hwm_mib.map(round),
        }),
    );
    report.detail("image", json!(r.image));
    report.note(format!(
        "Pods of {} (`pause`), pinned with spec.nodeName to one `rkube agent` (a separate \
         process with its own containerd, {}) beside `rkube server --disable-agent`, image \
         imported and warmed first. Kubelet side: create call → first watch event with \
         status.phase Running. Raw side: RunPodSandbox + CreateContainer + StartContainer \
         through CRI on the same containerd socket, with the sandbox and container configs the \
         kubelet builds for that pod (pod network through the same CNI bridge). Each round \
         deletes its pods (and waits until the runtime has none) before the next; the two \
         sides alternate which goes first.",
        r.image, r.containerd_version
    ));
    for n in level_notes {
        report.note(n);
    }
    report.note(format!(
        "Memory with {BURST} pods Running (VmRSS): agent {:.1} MiB, its containerd {:.1} MiB; \
         its {} containerd shims {:.1} MiB together by Pss ({:.1} MiB by VmRSS summed); idle \
         agent {:.1} MiB, containerd {:.1} MiB; agent peak (VmHWM) {} MiB.",
        r.busy.agent_mib,
        r.busy.containerd_mib,
        r.busy.shims,
        r.busy.shims_pss_mib,
        r.busy.shims_rss_mib,
        r.idle.agent_mib,
        r.idle.containerd_mib,
        r.agent_hwm_mib.map_or("?".into(), num),
    ));
}

fn at_once(pods: usize) -> String {
    if pods == 1 {
        "1 pod at a time".into()
    } else {
        format!("{pods} pods at once")
    }
}

/// Metric keys are static: one per level and figure.
fn key(pods: usize, what: &str) -> &'static str {
    Box::leak(format!("startup_{pods}_{what}_ms").into_boxed_str())
}
