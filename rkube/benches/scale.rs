//! `make bench`, the desired-state part: a real `rkube server` (scheduler and controllers
//! inside) with 100 hollow nodes (`rkube hollow-nodes`, another process), and
//! ReplicationControllers totalling 10,000 pods. Measures pods scheduled and bound per
//! second, the time from a pod's creation to its binding (p50, p99), the time until all
//! are reported Running, and the server's memory at the end. Writes `scale.json` and
//! `scale.md` into `--output`.
//!
//! Times are taken by one watch of the namespace's pods: a pod is created when the watch
//! first sees it, bound when it first sees its `spec.nodeName`, Running when it first sees
//! `status.phase: Running`.

#[allow(dead_code)]
#[path = "phases/peer.rs"]
mod peer;
#[allow(dead_code)]
mod support;

use std::collections::HashMap;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, ReplicationController};
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use serde_json::json;

use support::cli;
use support::progress::{note, phase, Progress};
use support::report::{Metric, Report, Target};
use support::server::{ensure_namespace, temp_dir, Server};
use support::stats::{rate, summarize, Summary};

const NODES: usize = 100;
const RCS: usize = 10;
const REPLICAS: usize = 1000;
/// How long the pods may take to all be Running before the phase gives up.
const RUNNING_TIMEOUT: Duration = Duration::from_secs(600);
const NODES_TIMEOUT: Duration = Duration::from_secs(120);
const NS: &str = "bench-scale";
/// The target for the server's resident memory at the end.
const SERVER_RSS_MB: f64 = 300.0;

fn main() -> ExitCode {
    cli::main(
        "scale",
        format!(
            "rkube desired state at scale: {NODES} hollow nodes, {} pods",
            RCS * REPLICAS
        ),
        async |_| run().await,
        metrics,
    )
}

/// The hollow-nodes process, killed when dropped.
struct Hollow(Child);

impl Drop for Hollow {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Default, Clone, Copy)]
struct Seen {
    created: Option<Instant>,
    bound: Option<Instant>,
    running: Option<Instant>,
}

struct ScaleResult {
    pods: usize,
    /// From the first RC create to the last binding / the last Running.
    bound_after: Duration,
    running_after: Duration,
    /// From the first pod seen to the last binding.
    binding_window: Duration,
    to_binding: Summary,
    to_running: Summary,
    rss_mib: f64,
    hwm_mib: f64,
    hollow_rss_mib: Option<f64>,
    spent: support::usage::Spent,
    /// Raw SQLite, durable, one row per transaction, of values as large as a stored pod:
    /// measured after the run, on the same machine.
    peer: peer::PeerResult,
}

/// Durable writes each pod takes at least: its create, its binding, its Running status.
const WRITES_PER_POD: f64 = 3.0;

async fn run() -> Result<ScaleResult> {
    phase("starting rkube server");
    let dir = temp_dir()?;
    let server = Server::start(dir.path()).await?;
    let url = server
        .url()
        .context("the server logged no URL")?
        .to_string();
    let cfg = server.config().await?;
    let client = kube::Client::try_from(cfg.clone())?;
    let token = std::fs::read_to_string(dir.path().join("server/token"))
        .context("reading the server's join token")?;

    phase(&format!("starting {NODES} hollow nodes"));
    let log = std::fs::File::create(dir.path().join("hollow.log"))?;
    let hollow = Hollow(
        Command::new(env!("CARGO_BIN_EXE_rkube"))
            .args(["hollow-nodes", "--server", &url, "--token", token.trim()])
            .args(["--count", &NODES.to_string()])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start rkube hollow-nodes")?,
    );
    wait_nodes_ready(&client).await?;

    ensure_namespace(&client, NS).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Seen)>();
    let watch = tokio::spawn(async move {
        let mut stream = watcher(pods, watcher::Config::default()).boxed();
        while let Some(ev) = stream.next().await {
            let now = Instant::now();
            let pod = match ev {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
                Ok(_) => continue,
                Err(e) => {
                    note(&format!("pod watch: {e} (it resumes)"));
                    continue;
                }
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            let bound = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some();
            let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            let seen = Seen {
                created: Some(now),
                bound: bound.then_some(now),
                running: running.then_some(now),
            };
            if tx.send((name, seen)).is_err() {
                break;
            }
        }
    });

    let total = RCS * REPLICAS;
    phase(&format!(
        "creating {RCS} ReplicationControllers of {REPLICAS} replicas"
    ));
    let usage = support::usage::Usage::start(server.pid());
    let start = Instant::now();
    let rcs: Api<ReplicationController> = Api::namespaced(client.clone(), NS);
    for i in 0..RCS {
        rcs.create(&PostParams::default(), &rc(i)).await?;
    }
    let progress = Progress::start("pods Running", total as u64);
    let mut seen: HashMap<String, Seen> = HashMap::with_capacity(total);
    let mut running = 0;
    let deadline = start + RUNNING_TIMEOUT;
    while running < total {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((name, s))) = tokio::time::timeout(left, rx.recv()).await else {
            let bound = seen.values().filter(|s| s.bound.is_some()).count();
            bail!(
                "after {:?}: {} pods seen, {bound} bound, {running} Running of {total} \
                 (server log {}, hollow log {})",
                RUNNING_TIMEOUT,
                seen.len(),
                server.log.display(),
                dir.path().join("hollow.log").display()
            );
        };
        let e = seen.entry(name).or_default();
        e.created = e.created.or(s.created);
        e.bound = e.bound.or(s.bound);
        if e.running.is_none() && s.running.is_some() {
            e.running = s.running;
            running += 1;
            progress.counter.add(1);
        }
    }
    drop(progress);
    let spent = usage.finish();
    watch.abort();
    let memory = server.memory()?;
    let hollow_rss_mib = support::usage::rss_kib(hollow.0.id()).map(|k| k as f64 / 1024.0);
    let one = Api::<Pod>::namespaced(client.clone(), NS)
        .list(&kube::api::ListParams::default().limit(1))
        .await?;
    let pod_bytes = one
        .items
        .first()
        .map_or(2048, |p| serde_json::to_vec(p).map_or(2048, |v| v.len()));
    drop((hollow, server));
    let peer = tokio::task::spawn_blocking(move || peer::raw_inserts(pod_bytes, "after the run"))
        .await??;

    let all: Vec<&Seen> = seen.values().collect();
    let first_seen = all.iter().filter_map(|s| s.created).min().unwrap_or(start);
    let last_bound = all.iter().filter_map(|s| s.bound).max().unwrap_or(start);
    let last_running = all.iter().filter_map(|s| s.running).max().unwrap_or(start);
    let to_binding: Vec<Duration> = all
        .iter()
        .filter_map(|s| Some(s.bound? - s.created?))
        .collect();
    let to_running: Vec<Duration> = all
        .iter()
        .filter_map(|s| Some(s.running? - s.created?))
        .collect();
    Ok(ScaleResult {
        pods: all.len(),
        bound_after: last_bound - start,
        running_after: last_running - start,
        binding_window: last_bound - first_seen,
        to_binding: summarize(&to_binding),
        to_running: summarize(&to_running),
        rss_mib: memory.rss_mib(),
        hwm_mib: memory.hwm_mib(),
        hollow_rss_mib,
        spent,
        peer,
    })
}

async fn wait_nodes_ready(client: &kube::Client) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut stream = watcher(nodes, watcher::Config::default()).boxed();
    let mut ready = std::collections::HashSet::new();
    let deadline = Instant::now() + NODES_TIMEOUT;
    while ready.len() < NODES {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(ev)) = tokio::time::timeout(left, stream.next()).await else {
            bail!(
                "only {} of {NODES} hollow nodes Ready after {NODES_TIMEOUT:?}",
                ready.len()
            );
        };
        if let watcher::Event::Apply(n) | watcher::Event::InitApply(n) = ev? {
            let is_ready = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if is_ready {
                ready.insert(n.metadata.name.unwrap_or_default());
            }
        }
    }
    note(&format!("{NODES} nodes Ready"));
    Ok(())
}

fn rc(i: usize) -> ReplicationController {
    serde_json::from_value(json!({
        "metadata": {"name": format!("scale-{i}")},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"app": format!("scale-{i}")},
            "template": {
                "metadata": {"labels": {"app": format!("scale-{i}")}},
                "spec": {"containers": [{
                    "name": "app",
                    "image": "registry.local/bench/app:1.0",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }]},
            },
        },
    }))
    .expect("a valid ReplicationController")
}

fn metrics(report: &mut Report, s: &ScaleResult) {
    let bound_per_s = rate(s.pods, s.binding_window);
    report.add(
        Metric::new(
            "scale_bound_per_s",
            "pods scheduled and bound per second (first pod seen → last binding)",
            bound_per_s,
            "/s",
        )
        .peer(s.peer.rate() / WRITES_PER_POD)
        .target(Target::AtLeast(1000.0)),
    );
    report.add(Metric::new(
        "scale_to_binding_p50_ms",
        "pod creation → binding, p50",
        s.to_binding.p50_ms,
        "ms",
    ));
    report.add(Metric::new(
        "scale_to_binding_p99_ms",
        "pod creation → binding, p99",
        s.to_binding.p99_ms,
        "ms",
    ));
    report.add(
        Metric::new(
            "scale_all_running_s",
            format!("RCs created → all {} pods Running", s.pods),
            s.running_after.as_secs_f64(),
            "s",
        )
        .target(Target::Below(30.0)),
    );
    // The "300 MB": megabytes of 10^6 bytes (286 MiB), as the proxy benchmark reads
    // its "30 MB".
    let mb = |mib: f64| mib * 1_048_576.0 / 1e6;
    report.add(
        Metric::new(
            "scale_server_rss_mb",
            "server VmRSS at the end (MB of 10^6 bytes)",
            mb(s.rss_mib),
            "MB",
        )
        .target(Target::Below(SERVER_RSS_MB)),
    );
    report.add(Metric::new(
        "scale_server_hwm_mb",
        "server peak VmRSS (VmHWM)",
        mb(s.hwm_mib),
        "MB",
    ));
    if let Some(h) = s.hollow_rss_mib {
        report.add(Metric::new(
            "scale_hollow_rss_mib",
            format!("hollow-nodes process ({NODES} nodes) VmRSS at the end"),
            h,
            "MiB",
        ));
    }
    report.note(format!(
        "Peer of the pods/s row: raw SQLite on this machine after the run, durable (WAL + \
         synchronous=FULL), one {} B row (a stored pod's size) per transaction, one thread: \
         {:.0} inserts/s, divided by the {WRITES_PER_POD} durable writes a pod takes at least \
         (create, binding, Running status) = {:.0} pods/s: what the store alone would allow if \
         each write were its own transaction and cost nothing else.",
        s.peer.value_bytes,
        s.peer.rate(),
        s.peer.rate() / WRITES_PER_POD
    ));
    report.note(format!(
        "{RCS} RCs of {REPLICAS} replicas created one after another; the last binding came {:.1} s \
         and the last Running {:.1} s after the first RC create; creation → Running p50 {:.0} ms, \
         p99 {:.0} ms. {}. Server and hollow nodes share the machine's cores with this \
         benchmark's watch.",
        s.bound_after.as_secs_f64(),
        s.running_after.as_secs_f64(),
        s.to_running.p50_ms,
        s.to_running.p99_ms,
        s.spent.line()
    ));
    report.detail(
        "scale",
        json!({
            "nodes": NODES,
            "pods": s.pods,
            "bound_after_s": s.bound_after.as_secs_f64(),
            "running_after_s": s.running_after.as_secs_f64(),
            "binding_window_s": s.binding_window.as_secs_f64(),
            "to_binding": s.to_binding.json(),
            "to_running": s.to_running.json(),
            "server_rss_mib": s.rss_mib,
            "server_hwm_mib": s.hwm_mib,
            "hollow_rss_mib": s.hollow_rss_mib,
            "usage": s.spent.json(),
            "peer": s.peer.json(),
        }),
    );
}
