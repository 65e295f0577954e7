//! `make bench`, the etcd part: pod creates through the API of a real `rkube server` on a
//! real single-member etcd (Debian's etcd-server) at 1, 16 and 64 clients, beside raw etcd
//! puts of the same value size through `etcd-client` at the same concurrency, measured in
//! the same run against the same etcd. Writes `etcd.json` and `etcd.md` into `--output`.

#[allow(dead_code)]
#[path = "../tests/support/etcd.rs"]
mod etcd_cluster;
#[allow(dead_code)]
#[path = "phases/pods.rs"]
mod pods;
#[allow(dead_code)]
mod support;

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use etcd_cluster::EtcdCluster;
use pods::{create_pods, Load, LoadResult, POD_BYTES};
use support::cli;
use support::progress::{note, phase, Progress};
use support::report::{num, Metric, Report, Target};
use support::server::{ensure_namespace, quiesce, temp_dir, Server};
use support::stats::{rate, summarize, Summary};

/// Concurrent clients per level.
const LEVELS: [usize; 3] = [1, 16, 64];
/// The level held to the ratio target.
const REFERENCE_CLIENTS: usize = 16;
/// Writes per level (API creates and raw puts alike), and the time a level may take.
const WRITES: usize = 2000;
const LEVEL_TIME: Duration = Duration::from_secs(60);
/// Pod creates at the reference level ≥ this × raw puts.
const RATIO_TARGET: f64 = 0.7;
/// How long the server may take to finish what a level left behind.
const SETTLE: Duration = Duration::from_secs(120);

fn main() -> ExitCode {
    cli::main(
        "etcd",
        "rkube on etcd: pod creates through the API vs raw etcd puts".into(),
        run,
        |report, levels: &Vec<Level>| metrics(report, levels),
    )
}

/// One concurrency level: the API's creates and the raw puts.
struct Level {
    clients: usize,
    api: LoadResult,
    raw: RawResult,
}

async fn run(report: &mut Report) -> Result<Vec<Level>> {
    phase("starting a single-member etcd on loopback");
    let etcd = tokio::task::spawn_blocking(|| EtcdCluster::start(1)).await?;
    let endpoint = etcd.endpoints();
    note(&format!("etcd at {endpoint}"));
    report
        .context
        .insert("etcd_version".into(), json!(etcd_version()));

    phase("starting rkube server --datastore-endpoint");
    let dir = temp_dir()?;
    let mut server = Server::start_with(
        dir.path(),
        &["--datastore-endpoint".to_string(), endpoint.clone()],
    )
    .await?;
    let cfg = server.config().await?;
    let client = kube::Client::try_from(cfg.clone())?;

    let mut levels = Vec::new();
    for clients in LEVELS {
        quiesce(&client, &format!("before {clients} clients"), SETTLE).await?;
        phase(&format!("raw etcd puts: {WRITES} at {clients} clients"));
        let value_bytes = levels
            .iter()
            .map(|l: &Level| l.api.stored_bytes)
            .max()
            .unwrap_or(POD_BYTES);
        let raw = raw_puts(&endpoint, clients, value_bytes).await?;
        note(&format!(
            "{:.0} puts/s, p50 {:.2} ms, p99 {:.2} ms",
            raw.rate(),
            raw.latency.p50_ms,
            raw.latency.p99_ms
        ));

        phase(&format!(
            "pod creates through the API: {WRITES} at {clients} clients"
        ));
        let ns = format!("bench-etcd-{clients}");
        ensure_namespace(&client, &ns).await?;
        let api = create_pods(
            &cfg,
            &Load {
                ns: &ns,
                prefix: "pod",
                clients,
                count: WRITES,
                max_time: LEVEL_TIME,
                server_pid: server.pid(),
                node: None,
            },
        )
        .await?;
        note(&format!(
            "{:.0} creates/s, p50 {:.2} ms, p99 {:.2} ms ({} errors); {}",
            api.rate(),
            api.latency.p50_ms,
            api.latency.p99_ms,
            api.errors,
            api.spent.line()
        ));
        if let Some(how) = server.exited() {
            bail!("{how}");
        }
        levels.push(Level { clients, api, raw });
    }
    server.stop().await;
    drop(etcd);
    Ok(levels)
}

fn etcd_version() -> Option<String> {
    let out = std::process::Command::new("/usr/bin/etcd")
        .arg("--version")
        .env("ETCD_UNSUPPORTED_ARCH", "")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("etcd Version:"))
        .map(|v| v.trim().to_string())
}

struct RawResult {
    value_bytes: usize,
    ok: usize,
    elapsed: Duration,
    latency: Summary,
}

impl RawResult {
    fn rate(&self) -> f64 {
        rate(self.ok, self.elapsed)
    }

    fn json(&self) -> Value {
        json!({
            "value_bytes": self.value_bytes,
            "puts": self.ok,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "puts_per_s": self.rate(),
            "latency": self.latency.json(),
        })
    }
}

/// [`WRITES`] single-key puts of `value_bytes` by `clients` concurrent etcd clients (each
/// its own connection, connected before the clock starts), on keys of their own.
async fn raw_puts(endpoint: &str, clients: usize, value_bytes: usize) -> Result<RawResult> {
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        let mut c = etcd_client::Client::connect([endpoint], None)
            .await
            .with_context(|| format!("connecting to etcd at {endpoint}"))?;
        c.status().await.context("etcd status")?;
        conns.push(c);
    }
    let value = Arc::new(vec![b'x'; value_bytes]);
    let next = Arc::new(AtomicUsize::new(0));
    let progress = Progress::start(&format!("{clients} clients"), WRITES as u64);
    let start = Instant::now();
    let deadline = start + LEVEL_TIME;
    let workers: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            let (value, next, done) = (value.clone(), next.clone(), progress.counter.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= WRITES {
                        break;
                    }
                    let key = format!("/bench/raw/{clients}/pod-{i:05}");
                    let t = Instant::now();
                    c.put(key, value.as_slice(), None).await?;
                    latencies.push(t.elapsed());
                    done.add(1);
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(WRITES);
    for w in futures::future::join_all(workers).await {
        all.extend(w??);
    }
    let elapsed = start.elapsed();
    drop(progress);
    Ok(RawResult {
        value_bytes,
        ok: all.len(),
        elapsed,
        latency: summarize(&all),
    })
}

fn metrics(report: &mut Report, levels: &[Level]) {
    for l in levels {
        let (api, raw) = (&l.api, &l.raw);
        let at = if l.clients == 1 {
            "1 client".to_string()
        } else {
            format!("{} clients", l.clients)
        };
        let mut m = Metric::new(
            key(l.clients, "creates_per_s"),
            format!("pod creates/s through the API on etcd, {at} (peer: raw etcd puts/s)"),
            api.rate(),
            "/s",
        )
        .peer(raw.rate());
        if l.clients == REFERENCE_CLIENTS {
            m = m.target(Target::RatioAtLeast(RATIO_TARGET));
        }
        report.add(m);
        report.add(
            Metric::new(
                key(l.clients, "p50_ms"),
                format!("create p50, {at} (peer: raw put p50)"),
                api.latency.p50_ms,
                "ms",
            )
            .peer(raw.latency.p50_ms),
        );
        report.add(
            Metric::new(
                key(l.clients, "p99_ms"),
                format!("create p99, {at} (peer: raw put p99)"),
                api.latency.p99_ms,
                "ms",
            )
            .peer(raw.latency.p99_ms),
        );
    }
    report.detail(
        "levels",
        json!(levels
            .iter()
            .map(|l| json!({"clients": l.clients, "api": l.api.json(), "raw": l.raw.json()}))
            .collect::<Vec<_>>()),
    );
    let sizes = levels
        .iter()
        .map(|l| l.raw.value_bytes.to_string())
        .collect::<Vec<_>>()
        .join("/");
    report.note(format!(
        "Each level: {WRITES} raw puts (values of {sizes} B: a pod as the server returned it, \
         managedFields included) by independent etcd-client connections, then {WRITES} pod \
         creates ({POD_BYTES} B of JSON as sent, unscheduled: the server's scheduler and its \
         FailedScheduling writes share the etcd) by independent kube clients; one etcd member \
         on the same disk and cores. Server CPU per create: {}.",
        levels
            .iter()
            .map(|l| format!(
                "{} ms ({} clients)",
                l.api.spent.server_ms_per(l.api.ok).map_or("?".into(), num),
                l.clients
            ))
            .collect::<Vec<_>>()
            .join(", ")
    ));
}

/// Metric keys are static: one per level and figure.
fn key(clients: usize, what: &str) -> &'static str {
    Box::leak(format!("etcd_{clients}_{what}").into_boxed_str())
}
