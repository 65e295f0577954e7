//! `make bench`: the API server's figures against a real `rkube server --disable-agent`
//! (release build) on loopback, and the storage crate's compaction, in one run. Writes
//! `api.json` and `api.md` into `--output` (relative paths are taken from the workspace
//! root). `RKUBE_BENCH_UPDATES` scales the compaction phase.

mod phases;
mod support;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use serde_json::json;

use phases::pods::{create_pods, Load, LoadResult, POD_BYTES};
use phases::{compaction, list, peer, startup, watch};
use support::progress::{elapsed, note, phase};
use support::report::{num, Metric, Report, Target};
use support::server::{ensure_namespace, temp_dir, Server};
use support::stats::mib;

/// Concurrent clients of the create phase.
const LEVELS: [usize; 3] = [1, 16, 64];
/// Creates per level, and the time a level may take at most.
const CREATES: usize = 2000;
const LEVEL_TIME: Duration = Duration::from_secs(60);
/// The level compared with the peer and held to the latency target.
const REFERENCE_CLIENTS: usize = 16;
/// "list p99 not grown": allowed noise between two runs of the same list.
const LIST_NOISE: f64 = 1.25;

struct Args {
    output: PathBuf,
    updates: u64,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the workspace")
        .to_path_buf()
}

fn parse_args() -> Result<Args> {
    let mut output = PathBuf::from("bench/results");
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--output" => {
                output = it
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--output needs a folder"))?
                    .into()
            }
            // cargo bench passes --bench; filters mean nothing here.
            _ => {}
        }
    }
    if output.is_relative() {
        output = workspace_root().join(output);
    }
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
    elapsed();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut report = Report::default();
    context(&mut report, &args);
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    rt.block_on(run(&args, &mut report));
    drop(rt);
    report
        .context
        .insert("duration_s".into(), json!(elapsed().round()));
    phase(&format!("writing {}", args.output.display()));
    if let Err(e) = report.write(&args.output) {
        eprintln!("cannot write the results: {e:#}");
        return ExitCode::FAILURE;
    }
    println!("\n{}", report.markdown());
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run(args: &Args, report: &mut Report) {
    let r = startup::run().await;
    if let Some(s) = report.keep("startup", r) {
        startup_metrics(report, &s);
    }
    api_phases(report).await;
    let r = compaction::run(args.updates).await;
    if let Some(c) = report.keep("compaction", r) {
        compaction_metrics(report, &c);
    }
}

/// Create throughput, the peer, LIST and watch against one server.
async fn api_phases(report: &mut Report) {
    phase("starting the server for the API phases");
    let dir = temp_dir();
    let Some(dir) = report.keep("server", dir) else {
        return;
    };
    let r = Server::start(dir.path()).await;
    let Some(mut server) = report.keep("server", r) else {
        return;
    };
    let r = server.config().await;
    let Some(cfg) = report.keep("server", r) else {
        return;
    };

    let mut levels = Vec::new();
    for clients in LEVELS {
        phase(&format!(
            "create: {CREATES} pods, {clients} concurrent clients"
        ));
        let r = create_level(&cfg, clients).await;
        if let Some(l) = report.keep(&format!("create ({clients} clients)"), r) {
            note(&format!(
                "{:.0} creates/s, p50 {:.2} ms, p99 {:.2} ms ({} errors)",
                l.rate(),
                l.latency.p50_ms,
                l.latency.p99_ms,
                l.errors
            ));
            levels.push(l);
        }
    }
    let stored = levels.iter().map(|l| l.stored_bytes).max().unwrap_or(0);
    let value_bytes = if stored > 0 { stored } else { POD_BYTES };
    let r = tokio::task::spawn_blocking(move || peer::raw_inserts(value_bytes)).await;
    let peer = report.keep("peer", r.map_err(anyhow::Error::from).and_then(|r| r));
    if let Some(p) = &peer {
        note(&format!(
            "{:.0} inserts/s, p50 {:.2} ms, p99 {:.2} ms",
            p.rate(),
            p.latency.p50_ms,
            p.latency.p99_ms
        ));
    }
    create_metrics(report, &levels, peer.as_ref(), value_bytes);

    let r = list::run(&cfg).await;
    if let Some(l) = report.keep("list", r) {
        list_metrics(report, &l);
    }
    let r = watch::run(&cfg).await;
    if let Some(w) = report.keep("watch", r) {
        watch_metrics(report, &w);
    }

    phase("idle after load: writes and memory");
    let r = after_load(&server, &cfg).await;
    if let Some((writes, memory)) = report.keep("idle after load", r) {
        report.add(
            Metric::new(
                "idle_writes_after_load_per_s",
                "writes/s of an idle server after the load above",
                writes.per_sec(),
                "/s",
            )
            .target(Target::AtMost(1.0)),
        );
        report.add(Metric::new(
            "rss_after_load_mib",
            format!(
                "VmRSS after the load above (~{} pods stored)",
                CREATES * LEVELS.len() + list::PODS + watch::WRITES
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

async fn create_level(cfg: &kube::Config, clients: usize) -> Result<LoadResult> {
    let ns = format!("bench-create-{clients}");
    ensure_namespace(&kube::Client::try_from(cfg.clone())?, &ns).await?;
    create_pods(
        cfg,
        &Load {
            ns: &ns,
            prefix: "pod",
            clients,
            count: CREATES,
            max_time: LEVEL_TIME,
        },
    )
    .await
}

async fn after_load(
    server: &Server,
    cfg: &kube::Config,
) -> Result<(startup::IdleWrites, support::server::Memory)> {
    let client = kube::Client::try_from(cfg.clone())?;
    let writes = startup::idle_writes(&client, "counting idle writes").await?;
    let memory = server.memory()?;
    note(&format!(
        "idle writes after load: {:.2}/s; VmRSS {:.1} MiB",
        writes.per_sec(),
        memory.rss_mib()
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

fn create_metrics(
    report: &mut Report,
    levels: &[LoadResult],
    peer: Option<&peer::PeerResult>,
    value_bytes: usize,
) {
    for l in levels {
        let c = l.clients;
        let mut rate = Metric::new(
            "pod_creates_per_s",
            format!("pod creates/s, {c} client(s)"),
            l.rate(),
            "/s",
        );
        if c == REFERENCE_CLIENTS {
            if let Some(p) = peer {
                rate = rate.peer(p.rate()).target(Target::RatioAtLeast(1.0));
            }
        }
        report.add(rate);
        report.add(Metric::new(
            "pod_create_p50_ms",
            format!("pod create p50, {c} client(s)"),
            l.latency.p50_ms,
            "ms",
        ));
        let mut p99 = Metric::new(
            "pod_create_p99_ms",
            format!("pod create p99, {c} client(s)"),
            l.latency.p99_ms,
            "ms",
        );
        if c == REFERENCE_CLIENTS {
            p99 = p99.target(Target::Below(20.0));
        }
        report.add(p99);
    }
    if let Some(p) = peer {
        report.add(Metric::new(
            "peer_raw_sqlite_inserts_per_s",
            format!("peer: raw SQLite durable inserts/s ({value_bytes} B, 1 row/txn)"),
            p.rate(),
            "/s",
        ));
        report.detail("peer", p.json());
    }
    report.detail(
        "create",
        json!(levels.iter().map(LoadResult::json).collect::<Vec<_>>()),
    );
    report.note(format!(
        "Pods are {POD_BYTES} B of JSON as sent (~{value_bytes} B as returned/stored); the peer \
         inserts values of {value_bytes} B. Each level is {CREATES} creates (at most {}s) by \
         independent `kube::Client`s, connections warmed first.",
        LEVEL_TIME.as_secs()
    ));
}

fn list_metrics(report: &mut Report, l: &list::ListResult) {
    let name = format!("LIST {} pods (Api<Pod>::list)", l.items);
    report.add(
        Metric::new(
            "list_10k_p50_ms",
            format!("{name}, p50"),
            l.typed.p50_ms,
            "ms",
        )
        .target(Target::Below(300.0)),
    );
    report.add(
        Metric::new(
            "list_10k_max_ms",
            format!("{name}, max"),
            l.typed.max_ms,
            "ms",
        )
        .target(Target::Below(300.0)),
    );
    report.add(Metric::new(
        "list_10k_raw_p50_ms",
        "same LIST as raw bytes (no client decoding), p50",
        l.raw.p50_ms,
        "ms",
    ));
    report.note(format!(
        "LIST: {} timed lists after a warm-up; the response is {:.1} MiB of JSON.",
        l.typed.count,
        mib(l.raw_bytes as u64)
    ));
    report.detail("list", l.json());
}

fn watch_metrics(report: &mut Report, w: &watch::WatchResult) {
    report.add(Metric::new(
        "watch_delivery_p50_ms",
        format!(
            "watch delivery p50 (from ack), {} watchers",
            watch::WATCHERS
        ),
        w.from_ack.p50_ms,
        "ms",
    ));
    report.add(Metric::new(
        "watch_delivery_p99_ms",
        format!(
            "watch delivery p99 (from ack), {} watchers",
            watch::WATCHERS
        ),
        w.from_ack.p99_ms,
        "ms",
    ));
    report.add(Metric::new(
        "watch_delivery_from_start_p99_ms",
        "watch delivery p99 (from write start)",
        w.from_start.p99_ms,
        "ms",
    ));
    report.note(format!(
        "Watch: {} creates {} ms apart, {}/{} deliveries received, {} before the writer saw \
         its ack (counted as 0 ms from ack).",
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
        format!(" (scaled from the 1,000,000 target figure; RKUBE_BENCH_UPDATES sets it)")
    };
    report.note(format!(
        "Compaction: {} of {} updates{scaled} in {:.0} s ({} writers, 1000 keys of 1 KiB, \
         default options); rows in the table {} → {}. \"Not grown\" allows {}× for noise.",
        c.updates,
        c.requested,
        c.elapsed.as_secs_f64(),
        64,
        b.rows,
        a.rows,
        num(LIST_NOISE)
    ));
    report.detail("compaction", c.json());
}

/// When, where and what was measured.
fn context(report: &mut Report, args: &Args) {
    let git = |a: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(workspace_root())
            .args(a)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "?".into());
    let dirty = git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let c = &mut report.context;
    c.insert("started_utc".into(), json!(utc(now)));
    c.insert(
        "commit".into(),
        json!(format!("{commit}{}", if dirty { "+changes" } else { "" })),
    );
    c.insert("cores".into(), json!(cores));
    c.insert("compaction_updates".into(), json!(args.updates));
}

/// `YYYY-MM-DD HH:MM UTC` from Unix seconds (days to civil date, Howard Hinnant's method).
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02} UTC")
}
