//! `make bench`: the API server's figures against a real `rkube server --disable-agent`
//! (release build) on loopback, and the storage crate's compaction, in one run. Writes
//! `api.json` and `api.md` into `--output` (relative paths are taken from the workspace
//! root). `RKUBE_BENCH_UPDATES` scales the compaction phase.

mod phases;
#[allow(dead_code)] // shared by the three benchmarks, each uses part of it
mod support;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use phases::pods::{create_pods, Load, LoadResult, POD_BYTES};
use phases::{compaction, list, peer, startup, watch};
use support::cli;
use support::progress::{note, phase};
use support::report::{num, Metric, Report, Target};
use support::server::{ensure_namespace, quiesce, temp_dir, Quiet, Server};
use support::stats::mib;

/// Concurrent clients of the create levels, and whether their pods come bound to a node
/// already (then the scheduler has nothing to do: what remains is the API server's cost).
const LEVELS: [(usize, bool); 4] = [(1, false), (16, false), (64, false), (16, true)];
/// The node pre-bound pods name.
const NODE: &str = "bench-node";
/// Creates per level, and the time a level may take at most.
const CREATES: usize = 2000;
const LEVEL_TIME: Duration = Duration::from_secs(60);
/// The level compared with the peer and held to the latency target.
const REFERENCE_CLIENTS: usize = 16;
/// "list p99 not grown": allowed noise between two runs of the same list.
const LIST_NOISE: f64 = 1.25;
/// How long the server may take to finish what a phase left behind before the next one.
const SETTLE: Duration = Duration::from_secs(120);

struct Args {
    output: PathBuf,
    updates: u64,
}

fn parse_args() -> Result<Args> {
    let output = cli::output_dir()?;
    let updates = match std::env::var("RKUBE_BENCH_UPDATES") {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .map_err(|e| anyhow::anyhow!("RKUBE_BENCH_UPDATES={v:?}: {e}"))?,
        Err(_) => compaction::DEFAULT_UPDATES,
    };
    Ok(Args { output, updates })
}

fn main() -> ExitCode {
    let mut report = Report {
        title: "rkube API benchmark".into(),
        ..Report::default()
    };
    cli::context(&mut report);
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::FAILURE;
        }
    };
    report
        .context
        .insert("compaction_updates".into(), json!(args.updates));
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    rt.block_on(run(&args, &mut report));
    drop(rt);
    cli::finish(&mut report, &args.output, "api")
}

async fn run(args: &Args, report: &mut Report) {
    let r = startup::run().await;
    if let Some(s) = report.keep("startup", r) {
        startup_metrics(report, &s);
    }
    api_phases(report, &args.output).await;
    let r = compaction::run(args.updates).await;
    if let Some(c) = report.keep("compaction", r) {
        compaction_metrics(report, &c);
    }
}

/// Whether the server has died (then recorded as a failure, its log kept in `output`).
fn died(report: &mut Report, server: &mut Server, output: &Path) -> bool {
    let Some(how) = server.exited() else {
        return false;
    };
    let kept = output.join("api-server.log");
    let _ = std::fs::create_dir_all(output);
    let _ = std::fs::copy(&server.log, &kept);
    report.keep::<()>(
        "server",
        Err(anyhow::anyhow!("{how}\n(full log: {})", kept.display())),
    );
    true
}

/// Create throughput, the peer, LIST and watch against one server.
async fn api_phases(report: &mut Report, output: &Path) {
    phase("starting the server for the API phases");
    let dir = temp_dir();
    let Some(dir) = report.keep("server", dir) else {
        return;
    };
    let r = Server::start(dir.path()).await;
    let Some(mut server) = report.keep("server", r) else {
        return;
    };
    note(&format!(
        "server {} (pid {}), data dir {}",
        server.url().unwrap_or("?"),
        server.pid().unwrap_or(0),
        dir.path().display()
    ));
    let r = server.config().await;
    let Some(cfg) = report.keep("server", r) else {
        return;
    };

    let mut levels = Vec::new();
    let mut peers = Vec::new();
    let mut dead = false;
    let mut settles = Vec::new();
    let mut memory = Vec::new();
    for (clients, prebound) in LEVELS {
        let level = level_name(clients, prebound);
        let label = format!("before the level of {level}");
        if let Some(q) = settle(report, &cfg, &label).await {
            settles.push(json!({"when": label, "quiet": q.json()}));
        }
        // The peer runs just before and just after the level it is compared with.
        let bracket = clients == REFERENCE_CLIENTS && !prebound;
        if bracket {
            peers.extend(run_peer(report, stored_size(&levels), "before").await);
        }
        phase(&format!("create: {CREATES} pods, {level}"));
        let r = create_level(&cfg, clients, prebound.then_some(NODE), server.pid()).await;
        if let Some(l) = report.keep(&format!("create ({level})"), r) {
            note(&format!(
                "{:.0} creates/s, p50 {:.2} ms, p99 {:.2} ms ({} errors)",
                l.rate(),
                l.latency.p50_ms,
                l.latency.p99_ms,
                l.errors
            ));
            note(&l.spent.line());
            levels.push(l);
        }
        if let Ok(m) = server.memory() {
            let pods: usize = levels.iter().map(|l| l.ok).sum();
            note(&format!(
                "server VmRSS {:.0} MiB with {pods} pods stored",
                m.rss_mib()
            ));
            memory.push(json!({"pods": pods, "rss_mib": m.rss_mib()}));
        }
        if bracket {
            peers.extend(run_peer(report, stored_size(&levels), "after").await);
        }
        dead = died(report, &mut server, output);
        if dead {
            break;
        }
    }
    create_metrics(report, &levels, &peers);
    report.detail("server_rss_after_levels", json!(memory));
    if dead {
        return;
    }

    let r = list::run(&cfg, &server).await;
    if let Some(l) = report.keep("list", r) {
        list_metrics(report, &l);
    }
    if died(report, &mut server, output) {
        return;
    }
    if let Some(q) = settle(report, &cfg, "before the watch phase").await {
        settles.push(json!({"when": "before the watch phase", "quiet": q.json()}));
    }
    let r = watch::run(&cfg, &server).await;
    if let Some(w) = report.keep("watch", r) {
        watch_metrics(report, &w);
    }
    if died(report, &mut server, output) {
        return;
    }

    phase("idle after load: writes and memory");
    if let Some(q) = settle(report, &cfg, "after the watch phase").await {
        settles.push(json!({"when": "after the watch phase", "quiet": q.json()}));
    }
    report.detail("settle", json!(settles));
    let r = after_load(&server, &cfg).await;
    if let Some((writes, memory)) = report.keep("idle after load", r) {
        report.add(
            Metric::new(
                "idle_writes_after_load_per_s",
                "writes/s of the idle server after the load above",
                writes.per_sec(),
                "/s",
            )
            .target(Target::AtMost(1.0)),
        );
        report.add(Metric::new(
            "rss_after_load_mib",
            format!(
                "VmRSS after the load above (~{} pods stored)",
                CREATES * LEVELS.len() + list::PODS + watch::WRITES + 1
            ),
            memory.rss_mib(),
            "MiB",
        ));
        report.detail(
            "after_load",
            json!({"idle_writes": writes.json(), "rss_mib": memory.rss_mib(), "hwm_mib": memory.hwm_mib()}),
        );
    }
    server.stop().await;
}

/// Waits for the server to finish what the last phase left behind.
async fn settle(report: &mut Report, cfg: &kube::Config, label: &str) -> Option<Quiet> {
    let r = match kube::Client::try_from(cfg.clone()) {
        Ok(client) => quiesce(&client, label, SETTLE).await,
        Err(e) => Err(e.into()),
    };
    report.keep("settle", r)
}

/// Size of a stored pod (as the server returns it), once a level has created some.
fn stored_size(levels: &[LoadResult]) -> usize {
    match levels.iter().map(|l| l.stored_bytes).max() {
        Some(n) if n > 0 => n,
        _ => POD_BYTES,
    }
}

async fn run_peer(report: &mut Report, value_bytes: usize, when: &str) -> Option<peer::PeerResult> {
    let label = format!("{when} the {REFERENCE_CLIENTS}-client level");
    let r = tokio::task::spawn_blocking(move || peer::raw_inserts(value_bytes, &label)).await;
    let p = report.keep("peer", r.map_err(anyhow::Error::from).and_then(|r| r))?;
    note(&format!(
        "{:.0} inserts/s, p50 {:.2} ms, p99 {:.2} ms",
        p.rate(),
        p.latency.p50_ms,
        p.latency.p99_ms
    ));
    Some(p)
}

fn level_name(clients: usize, prebound: bool) -> String {
    let who = if clients == 1 {
        "1 client".to_string()
    } else {
        format!("{clients} clients")
    };
    if prebound {
        format!("{who}, pods pre-bound (no scheduling)")
    } else {
        who
    }
}

async fn create_level(
    cfg: &kube::Config,
    clients: usize,
    node: Option<&str>,
    server_pid: Option<u32>,
) -> Result<LoadResult> {
    let ns = format!(
        "bench-create-{clients}{}",
        if node.is_some() { "-bound" } else { "" }
    );
    ensure_namespace(&kube::Client::try_from(cfg.clone())?, &ns).await?;
    create_pods(
        cfg,
        &Load {
            ns: &ns,
            prefix: "pod",
            clients,
            count: CREATES,
            max_time: LEVEL_TIME,
            server_pid,
            node,
        },
    )
    .await
}

async fn after_load(
    server: &Server,
    cfg: &kube::Config,
) -> Result<(startup::IdleWrites, support::server::Memory)> {
    let client = kube::Client::try_from(cfg.clone())?;
    let usage = support::usage::Usage::start(server.pid());
    let writes = startup::idle_writes(&client, "counting idle writes").await?;
    let spent = usage.finish();
    let memory = server.memory()?;
    note(&format!(
        "idle writes after load: {:.2}/s; VmRSS {:.1} MiB; {}",
        writes.per_sec(),
        memory.rss_mib(),
        spent.line()
    ));
    Ok((writes, memory))
}

fn startup_metrics(report: &mut Report, s: &startup::StartupResult) {
    report.add(
        Metric::new(
            "idle_rss_mib",
            "idle VmRSS, fresh data dir",
            s.idle_memory.rss_mib(),
            "MiB",
        )
        .target(Target::Below(40.0)),
    );
    report.add(
        Metric::new(
            "start_to_readyz_fresh_ms",
            "start to /readyz 200, fresh data dir (median of 3)",
            s.fresh.p50_ms,
            "ms",
        )
        .target(Target::Below(300.0)),
    );
    report.add(
        Metric::new(
            "start_to_readyz_existing_ms",
            "start to /readyz 200, existing data dir (median of 3)",
            s.existing.p50_ms,
            "ms",
        )
        .target(Target::Below(300.0)),
    );
    report.add(
        Metric::new(
            "idle_writes_per_s",
            "writes/s of an idle fresh server (10 s)",
            s.idle_writes.per_sec(),
            "/s",
        )
        .target(Target::AtMost(1.0)),
    );
    report.detail("startup", s.json());
}

fn create_metrics(report: &mut Report, levels: &[LoadResult], peers: &[peer::PeerResult]) {
    let peer_rate = (!peers.is_empty())
        .then(|| peers.iter().map(|p| p.rate()).sum::<f64>() / peers.len() as f64);
    for l in levels {
        let c = l.clients;
        let level = level_name(c, l.prebound);
        let reference = c == REFERENCE_CLIENTS && !l.prebound;
        let mut rate = Metric::new(
            "pod_creates_per_s",
            format!("pod creates/s, {level}"),
            l.rate(),
            "/s",
        );
        if let (true, Some(p)) = (reference, peer_rate) {
            rate = rate.peer(p).target(Target::RatioAtLeast(1.0));
        }
        report.add(rate);
        report.add(Metric::new(
            "pod_create_p50_ms",
            format!("pod create p50, {level}"),
            l.latency.p50_ms,
            "ms",
        ));
        let mut p99 = Metric::new(
            "pod_create_p99_ms",
            format!("pod create p99, {level}"),
            l.latency.p99_ms,
            "ms",
        );
        if reference {
            p99 = p99.target(Target::Below(20.0));
        }
        report.add(p99);
    }
    let value_bytes = stored_size(levels);
    if let Some(rate) = peer_rate {
        report.add(Metric::new(
            "peer_raw_sqlite_inserts_per_s",
            format!(
                "peer: raw SQLite durable inserts/s ({value_bytes} B, 1 row/txn; mean of {} runs)",
                peers.len()
            ),
            rate,
            "/s",
        ));
        report.note(format!(
            "Peer runs (just before / after the {REFERENCE_CLIENTS}-client level): {} inserts/s.",
            peers
                .iter()
                .map(|p| format!("{:.0} (p50 {:.2} ms)", p.rate(), p.latency.p50_ms))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        report.detail(
            "peer",
            json!(peers.iter().map(peer::PeerResult::json).collect::<Vec<_>>()),
        );
    }
    report.detail(
        "create",
        json!(levels.iter().map(LoadResult::json).collect::<Vec<_>>()),
    );
    report.note(format!(
        "Pods are {POD_BYTES} B of JSON as sent (~{value_bytes} B as returned, managedFields \
         included); the peer inserts values of {value_bytes} B. Each level is {CREATES} creates \
         (at most {}s) by independent `kube::Client`s, connections warmed first. Server CPU per \
         create: {}.",
        LEVEL_TIME.as_secs(),
        levels
            .iter()
            .map(|l| format!(
                "{} ms ({})",
                l.spent.server_ms_per(l.ok).map_or("?".into(), num),
                level_name(l.clients, l.prebound)
            ))
            .collect::<Vec<_>>()
            .join(", ")
    ));
}

fn list_metrics(report: &mut Report, l: &list::ListResult) {
    let name = format!("LIST {} pods (Api<Pod>::list)", l.items);
    let typed = l.typed.summary();
    report.add(
        Metric::new(
            "list_10k_p50_ms",
            format!("{name}, p50"),
            typed.p50_ms,
            "ms",
        )
        .target(Target::Below(300.0)),
    );
    report.add(
        Metric::new(
            "list_10k_max_ms",
            format!("{name}, max"),
            typed.max_ms,
            "ms",
        )
        .target(Target::Below(300.0)),
    );
    report.add(Metric::new(
        "list_10k_raw_p50_ms",
        "same LIST as raw bytes (no client decoding), p50",
        l.raw.summary().p50_ms,
        "ms",
    ));
    report.add(Metric::new(
        "list_10k_selector_none_p50_ms",
        "same LIST, label selector matching none (server reads, sends nothing), p50",
        l.none.summary().p50_ms,
        "ms",
    ));
    report.add(Metric::new(
        "writes_after_fill",
        format!(
            "revisions written after the {}-pod fill returned, until idle ({:.0} s)",
            list::PODS,
            l.settle.secs
        ),
        l.settle.revisions as f64,
        "",
    ));
    report.note(format!(
        "LIST: {} timed lists after a warm-up, once the server was idle again; the response is \
         {:.1} MiB of JSON.",
        typed.count,
        mib(l.raw_bytes as u64)
    ));
    report.detail("list", l.json());
}

fn watch_metrics(report: &mut Report, w: &watch::WatchResult) {
    let n = watch::WATCHERS;
    report.add(Metric::new(
        "watch_delivery_p50_ms",
        format!("watch delivery p50 (from write start), {n} watchers"),
        w.from_start.p50_ms,
        "ms",
    ));
    report.add(Metric::new(
        "watch_delivery_p99_ms",
        format!("watch delivery p99 (from write start), {n} watchers"),
        w.from_start.p99_ms,
        "ms",
    ));
    report.add(Metric::new(
        "watch_delivery_from_ack_p99_ms",
        "watch delivery p99 (from ack; 0 if before it)",
        w.from_ack.p99_ms,
        "ms",
    ));
    report.add(Metric::new(
        "watch_writer_create_p50_ms",
        "create p50 of the single writer during the fan-out",
        w.write_latency.p50_ms,
        "ms",
    ));
    report.note(format!(
        "Watch: {} creates {} ms apart, {}/{} deliveries received; {} arrived before the writer \
         had its own ack.",
        watch::WRITES,
        watch::GAP.as_millis(),
        w.deliveries,
        w.expected,
        w.before_ack
    ));
    report.detail("watch", w.json());
}

fn compaction_metrics(report: &mut Report, c: &compaction::CompactionResult) {
    let (b, a) = (&c.before, &c.after);
    let live = mib(a.live_bytes);
    report.add(
        Metric::new(
            "compaction_db_wal_mib_before",
            "store db + WAL before updates (peer: live data)",
            mib(b.db_bytes + b.wal_bytes),
            "MiB",
        )
        .peer(mib(b.live_bytes)),
    );
    report.add(
        Metric::new(
            "compaction_db_wal_mib_after",
            format!(
                "store db + WAL after {} updates (peer: live data)",
                c.updates
            ),
            mib(a.db_bytes + a.wal_bytes),
            "MiB",
        )
        .peer(live)
        .target(Target::RatioAtMost(2.0)),
    );
    report.add(
        Metric::new(
            "compaction_db_mib_after",
            format!("store db file alone after {} updates", c.updates),
            mib(a.db_bytes),
            "MiB",
        )
        .peer(live)
        .target(Target::RatioAtMost(2.0)),
    );
    report.add(Metric::new(
        "compaction_list_p99_before_ms",
        "store list of 1000 keys p99, before updates",
        b.list.p99_ms,
        "ms",
    ));
    report.add(
        Metric::new(
            "compaction_list_p99_after_ms",
            "store list of 1000 keys p99, after (peer: before)",
            a.list.p99_ms,
            "ms",
        )
        .peer(b.list.p99_ms)
        .target(Target::RatioAtMost(LIST_NOISE)),
    );
    let scaled = if c.requested == 1_000_000 {
        String::new()
    } else {
        " (scaled from the 1,000,000 target figure; RKUBE_BENCH_UPDATES sets it)".to_string()
    };
    report.note(format!(
        "Compaction: {} of {} updates{scaled} in {:.0} s ({} writers, 1000 keys of 1 KiB, \
         default options; \"after\" is measured once the minute of history compaction keeps \
         has passed); rows in the table {} → {}; store list p50 {} → {} ms. \
         \"Not grown\" allows {}× for noise.",
        c.updates,
        c.requested,
        c.elapsed.as_secs_f64(),
        compaction::WORKERS,
        b.rows,
        a.rows,
        num(b.list.p50_ms),
        num(a.list.p50_ms),
        num(LIST_NOISE)
    ));
    report.detail("compaction", c.json());
}
