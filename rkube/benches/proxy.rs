//! `make bench`, the service proxy part: the data plane of `rkube proxy` (a process of its
//! own, joined to a real `rkube server --disable-agent`) beside the direct path to the
//! endpoint and beside Debian's haproxy in TCP mode for the same backends, measured in
//! the same run over loopback, interleaved round by round:
//!
//! - bulk TCP throughput: 2 GiB one way over one connection, 5 rounds, the median;
//! - request latency: a 64-byte ping-pong over one persistent connection per path, 40
//!   short rounds of 500 (so the paths see the machine's other work alike), p50 and p99
//!   (the proxy's added p50 is its p50 − the direct p50);
//! - connections per second: 4 concurrent clients doing connect, one request, the
//!   answer, close, 5 rounds of 1 s.
//!
//! The backends are tokio servers in this process on the machine's own (non-loopback)
//! address, as the API refuses loopback endpoint addresses; a Service without selector
//! (ClusterIP, a port per backend) with a matching EndpointSlice points the proxy at
//! them. Then 1,000 more such Services (each with its EndpointSlice) are created, and
//! once every one of their cluster IPs answers, the proxy's resident memory (VmRSS) is
//! read. Targets: throughput ≥ 0.8 × direct and ≥ 1.0 × haproxy, added p50 < 50 µs,
//! RSS < 30 MB with 1,000 Services. Writes `proxy.json` and `proxy.md` into `--output`.
//!
//! Needs root (the proxy puts cluster IPs on `lo`) and haproxy (`scripts/deps.sh`).

#[allow(dead_code)]
#[path = "support/haproxy.rs"]
mod haproxy;
#[allow(dead_code)]
mod support;
#[allow(dead_code)]
#[path = "phases/tcp.rs"]
mod tcp;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use serde_json::{json, Value};

use haproxy::Haproxy;
use support::cli;
use support::progress::{note, phase, Progress};
use support::report::{num, Metric, Report, Target};
use support::server::{ensure_namespace, temp_dir, Server};
use support::stats::{mib, round, summarize, Summary};
use support::usage::{cpu_seconds, pss_kib, status_kib};
use tcp::{Backends, Conns};

/// The server's service network, of its own so nothing collides with other clusters on
/// this machine, and the cluster DNS address in it (never given to a Service).
const SERVICE_CIDR: &str = "10.45.0.0/16";
const CLUSTER_DNS: &str = "10.45.0.10";
const NS: &str = "bench-proxy";
/// The ports of the measured Service: one per backend.
const BULK_PORT: u16 = 80;
const ECHO_PORT: u16 = 81;
const ONCE_PORT: u16 = 82;

/// Bytes per bulk transfer, and transfers per path.
const BULK_BYTES: u64 = 2 << 30;
const BULK_ROUNDS: usize = 5;
/// Ping-pong rounds per path, exchanges per round, warm-up exchanges per connection.
const LATENCY_ROUNDS: usize = 40;
const EXCHANGES: usize = 500;
const WARMUP: usize = 500;
/// Connections per second: concurrent clients, rounds per path, time per round.
const CONN_CLIENTS: usize = 4;
const CONN_ROUNDS: usize = 5;
const CONN_TIME: Duration = Duration::from_secs(1);
/// Services for the memory figure.
const SERVICES: usize = 1000;
/// Concurrent creates of those.
const CREATORS: usize = 16;

/// Targets (the words).
const THROUGHPUT_VS_DIRECT: f64 = 0.8;
const THROUGHPUT_VS_HAPROXY: f64 = 1.0;
const ADDED_P50_US: f64 = 50.0;
const RSS_MB: f64 = 30.0;

/// How long the proxy may take to serve a new Service, and 1,000 of them.
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(60);
const PROGRAM_MANY_TIMEOUT: Duration = Duration::from_secs(180);

fn main() -> ExitCode {
    cli::main(
        "proxy",
        "rkube service proxy: TCP through `rkube proxy` vs direct vs haproxy".into(),
        async |report| {
            let c = &mut report.context;
            c.insert("haproxy_version".into(), json!(haproxy::version()));
            c.insert("transport".into(), json!("loopback plain TCP"));
            let r = run(report).await;
            // Also after a failed run: what the proxy left on lo.
            leftover_check(report);
            r
        },
        metrics,
    )
}

/// The three ways to the backends.
const PATHS: [&str; 3] = ["direct", "rkube proxy", "haproxy"];

/// Where a client connects for each backend along one path.
#[derive(Clone, Copy, Debug)]
struct Route {
    bulk: SocketAddr,
    echo: SocketAddr,
    once: SocketAddr,
}

/// The figures of one path.
#[derive(Default)]
struct PathFigures {
    /// MiB/s of each bulk transfer.
    bulk: Vec<f64>,
    latency: Vec<Duration>,
    conns: Conns,
    /// CPU seconds of the relaying process (the rkube proxy or haproxy) per load.
    relay_cpu: [f64; 3],
}

impl PathFigures {
    fn bulk_median(&self) -> f64 {
        median(&self.bulk)
    }

    fn latency_us(&self) -> Summary {
        let mut s = summarize(&self.latency);
        for v in [&mut s.p50_ms, &mut s.p99_ms, &mut s.max_ms, &mut s.mean_ms] {
            *v *= 1000.0;
        }
        s
    }

    fn conns_per_s(&self) -> f64 {
        self.conns.ok as f64 / self.conns.elapsed.as_secs_f64().max(1e-9)
    }

    fn json(&self) -> Value {
        let l = self.latency_us();
        let c = summarize(&self.conns.latencies);
        json!({
            "bulk_mib_per_s": self.bulk.iter().map(|x| round(*x)).collect::<Vec<_>>(),
            "bulk_median_mib_per_s": round(self.bulk_median()),
            "latency_us": {
                "count": l.count,
                "p50": round(l.p50_ms),
                "p99": round(l.p99_ms),
                "max": round(l.max_ms),
                "mean": round(l.mean_ms),
            },
            "connections": {
                "ok": self.conns.ok,
                "errors": self.conns.errors,
                "first_error": self.conns.first_error,
                "elapsed_s": round(self.conns.elapsed.as_secs_f64()),
                "per_s": round(self.conns_per_s()),
                "latency": c.json(),
            },
            "relay_cpu_s": {
                "bulk": round(self.relay_cpu[0]),
                "latency": round(self.relay_cpu[1]),
                "connections": round(self.relay_cpu[2]),
            },
        })
    }
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

struct Results {
    paths: [PathFigures; 3],
    /// The host's default TCP congestion control (what the clients use), and the bulk
    /// transfers (MiB/s) of a client on the proxy's own (`proxy::TCP_CONGESTION`),
    /// direct and through the proxy, measured in the same rounds: the relay's cost
    /// without a difference of congestion control between the paths.
    host_congestion: String,
    like_for_like: [Vec<f64>; 2],
    /// CPU seconds in those transfers: of this process (the client and the sink) on
    /// the direct ones, of the proxy on the relayed ones.
    like_for_like_cpu: [f64; 2],
    /// The proxy's VmRSS (KiB) with the one measured Service, before and after the
    /// traffic.
    rss_before_kib: u64,
    before_anon_kib: u64,
    before_file_kib: u64,
    rss_one_kib: u64,
    /// With 1,000 more, once all answer: the proxy that served the traffic, and a fresh
    /// one started with them there.
    running: Mem,
    fresh: Mem,
    /// From the first create to the last Service created, and to all answering; from
    /// the fresh proxy's start to all answering.
    create_s: f64,
    all_answer_s: f64,
    fresh_answer_s: f64,
    /// From the measured Service's create to its cluster IP answering.
    first_answer_ms: f64,
}

async fn run(report: &mut Report) -> Result<Results> {
    phase("backends (sink, echo, reply-once) on this machine's own address");
    let own = BackendAddress::pick()?;
    let backends = Backends::start(own.ip).await?;
    note(&format!(
        "{} ({}): bulk {}, echo {}, once {}",
        own.ip, own.how, backends.bulk, backends.echo, backends.once
    ));
    report.detail("backend_address", json!(own.how));

    phase(&format!(
        "starting rkube server --disable-agent --service-cidr {SERVICE_CIDR}"
    ));
    let dir = temp_dir()?;
    let mut server = Server::start_with(
        dir.path(),
        &[
            "--service-cidr".to_string(),
            SERVICE_CIDR.to_string(),
            "--cluster-dns".to_string(),
            CLUSTER_DNS.to_string(),
        ],
    )
    .await?;
    let url = server.url().context("the server told no URL")?.to_string();
    let client = server.client().await?;

    phase("starting rkube proxy");
    let mut proxy = ProxyProcess::start(&url, &dir.path().join("server/token"))?;
    note(&format!(
        "pid {}, addresses labelled {} on lo",
        proxy.pid, proxy.label
    ));
    ensure_namespace(&client, NS).await?;

    phase("Service bench-proxy/backends (no selector) and its EndpointSlice");
    let created = Instant::now();
    let ports = [
        ("bulk", BULK_PORT, backends.bulk.port()),
        ("echo", ECHO_PORT, backends.echo.port()),
        ("once", ONCE_PORT, backends.once.port()),
    ];
    let cluster_ip = create_service(&client, "backends", &ports, own.ip).await?;
    let via_proxy = Route {
        bulk: SocketAddr::new(cluster_ip, BULK_PORT),
        echo: SocketAddr::new(cluster_ip, ECHO_PORT),
        once: SocketAddr::new(cluster_ip, ONCE_PORT),
    };
    wait_answers(&mut proxy, &mut server, via_proxy, PROGRAM_TIMEOUT).await?;
    let first_answer_ms = created.elapsed().as_secs_f64() * 1e3;
    let rss_before_kib = status_kib(proxy.pid, "VmRSS:").context("the proxy's VmRSS")?;
    let before_anon_kib = status_kib(proxy.pid, "RssAnon:").unwrap_or(0);
    let before_file_kib = status_kib(proxy.pid, "RssFile:").unwrap_or(0);
    report.detail(
        "proxy_1_service_before_traffic",
        json!({
            "rss_kib": rss_before_kib,
            "rss_anon_kib": before_anon_kib,
            "rss_file_kib": before_file_kib,
            "pss_kib": pss_kib(proxy.pid),
        }),
    );
    note(&format!(
        "{cluster_ip} answers through the proxy {first_answer_ms:.0} ms after the create; proxy VmRSS {:.1} MiB",
        rss_before_kib as f64 / 1024.0
    ));

    phase("starting haproxy (mode tcp) for the same backends");
    let mut ha = Haproxy::start(&[backends.bulk, backends.echo, backends.once]).await?;
    let via_haproxy = Route {
        bulk: ha.fronts[0],
        echo: ha.fronts[1],
        once: ha.fronts[2],
    };
    tcp::answers(
        via_haproxy.bulk,
        via_haproxy.echo,
        via_haproxy.once,
        Duration::from_secs(5),
    )
    .await
    .context("through haproxy")?;
    note(&format!(
        "haproxy {} (pid {}) on {}, {}, {}",
        haproxy::version().unwrap_or_default(),
        ha.pid().unwrap_or(0),
        via_haproxy.bulk,
        via_haproxy.echo,
        via_haproxy.once
    ));
    let direct = Route {
        bulk: backends.bulk,
        echo: backends.echo,
        once: backends.once,
    };
    let routes = [direct, via_proxy, via_haproxy];
    let relay_pids = [None, Some(proxy.pid), ha.pid()];
    let mut paths: [PathFigures; 3] = Default::default();

    let relay_cpu = |i: usize| {
        relay_pids[i]
            .and_then(|p| cpu_seconds(&p.to_string()))
            .unwrap_or(0.0)
    };

    let host_congestion = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let proxys_congestion = proxy::relay::congestion(proxy::TCP_CONGESTION)
        .with_context(|| format!("the proxy's congestion control {}", proxy::TCP_CONGESTION))?;
    let mut like_for_like: [Vec<f64>; 2] = Default::default();
    let mut like_for_like_cpu = [0.0; 2];
    let own_pid = std::process::id().to_string();
    let cpu_of = |i: usize| match i {
        0 => cpu_seconds(&own_pid).unwrap_or(0.0),
        _ => relay_cpu(i),
    };
    phase(&format!(
        "bulk throughput: {} MiB one way, {BULK_ROUNDS} rounds of direct, proxy, haproxy \
         (clients on the host's {host_congestion}), then direct and proxy from a client on {}",
        BULK_BYTES >> 20,
        proxy::TCP_CONGESTION
    ));
    for r in 0..BULK_ROUNDS {
        for (i, route) in routes.iter().enumerate() {
            let cpu = relay_cpu(i);
            let t =
                tokio::time::timeout(Duration::from_secs(120), tcp::bulk(route.bulk, BULK_BYTES))
                    .await
                    .with_context(|| format!("bulk through {}: no end within 120 s", PATHS[i]))?
                    .with_context(|| format!("bulk through {}", PATHS[i]))?;
            paths[i].relay_cpu[0] += relay_cpu(i) - cpu;
            let rate = mib(BULK_BYTES) / t.as_secs_f64();
            paths[i].bulk.push(rate);
            note(&format!(
                "round {}: {:<11} {rate:>7.0} MiB/s",
                r + 1,
                PATHS[i]
            ));
        }
        for (i, route) in routes[..2].iter().enumerate() {
            let cpu = cpu_of(i);
            let t = tokio::time::timeout(
                Duration::from_secs(120),
                tcp::bulk_with(route.bulk, BULK_BYTES, &proxys_congestion),
            )
            .await
            .with_context(|| format!("bulk through {}: no end within 120 s", PATHS[i]))?
            .with_context(|| format!("bulk through {}", PATHS[i]))?;
            like_for_like_cpu[i] += cpu_of(i) - cpu;
            let rate = mib(BULK_BYTES) / t.as_secs_f64();
            like_for_like[i].push(rate);
            note(&format!(
                "round {}: {:<11} {rate:>7.0} MiB/s (client on {})",
                r + 1,
                PATHS[i],
                proxy::TCP_CONGESTION
            ));
        }
    }

    phase(&format!(
        "request latency: {}-byte ping-pong, {LATENCY_ROUNDS} rounds of {EXCHANGES} per path",
        tcp::MSG
    ));
    let mut conns = Vec::new();
    for (i, route) in routes.iter().enumerate() {
        let c = tokio::time::timeout(
            Duration::from_secs(60),
            tcp::PingPong::connect(route.echo, WARMUP),
        )
        .await
        .with_context(|| format!("ping-pong through {}: no warm-up within 60 s", PATHS[i]))?
        .with_context(|| format!("ping-pong through {}", PATHS[i]))?;
        conns.push(c);
    }
    const SHOWN: usize = 10;
    for r in 0..LATENCY_ROUNDS {
        for (i, c) in conns.iter_mut().enumerate() {
            let cpu = relay_cpu(i);
            let samples = tokio::time::timeout(Duration::from_secs(60), c.exchange(EXCHANGES))
                .await
                .with_context(|| format!("ping-pong through {}: no end within 60 s", PATHS[i]))?
                .with_context(|| format!("ping-pong through {}", PATHS[i]))?;
            paths[i].relay_cpu[1] += relay_cpu(i) - cpu;
            paths[i].latency.extend(samples);
        }
        if (r + 1) % SHOWN == 0 {
            let mut line = format!("rounds {}-{}:", r + 2 - SHOWN, r + 1);
            for (i, p) in paths.iter().enumerate() {
                let s = summarize(&p.latency[p.latency.len() - SHOWN * EXCHANGES..]);
                line.push_str(&format!(
                    "  {} p50 {:.1} µs p99 {:.1} µs;",
                    PATHS[i],
                    s.p50_ms * 1e3,
                    s.p99_ms * 1e3
                ));
            }
            note(&line);
        }
    }
    drop(conns);

    phase(&format!(
        "connections per second: {CONN_CLIENTS} clients, {CONN_ROUNDS} rounds of {} s per path",
        CONN_TIME.as_secs()
    ));
    for r in 0..CONN_ROUNDS {
        let mut line = format!("round {}:", r + 1);
        for (i, route) in routes.iter().enumerate() {
            let cpu = relay_cpu(i);
            let c = tcp::connections(route.once, CONN_CLIENTS, CONN_TIME).await?;
            paths[i].relay_cpu[2] += relay_cpu(i) - cpu;
            line.push_str(&format!(
                "  {} {:.0}/s{};",
                PATHS[i],
                c.ok as f64 / c.elapsed.as_secs_f64(),
                if c.errors > 0 {
                    format!(" ({} errors)", c.errors)
                } else {
                    String::new()
                }
            ));
            let all = &mut paths[i].conns;
            all.ok += c.ok;
            all.errors += c.errors;
            all.elapsed += c.elapsed;
            if all.first_error.is_none() {
                all.first_error = c.first_error;
            }
            all.latencies.extend(c.latencies);
        }
        note(&line);
    }
    for (i, p) in paths.iter().enumerate() {
        if p.conns.errors > 0 {
            report.note(format!(
                "{} connections through {} failed (first: {})",
                p.conns.errors,
                PATHS[i],
                p.conns.first_error.as_deref().unwrap_or("?")
            ));
        }
    }
    ha.stop();

    // Let the connections of the last phase close before reading memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_one_kib = status_kib(proxy.pid, "VmRSS:").context("the proxy's VmRSS")?;
    note(&format!(
        "proxy VmRSS with 1 Service (after the traffic): {:.1} MiB",
        rss_one_kib as f64 / 1024.0
    ));

    phase(&format!(
        "{SERVICES} Services without selector, each with an EndpointSlice to the echo backend"
    ));
    let start = Instant::now();
    let progress = Progress::start("Services", SERVICES as u64);
    let counter = progress.counter.clone();
    let echo_port = backends.echo.port();
    let backend_ip = own.ip;
    let ips: Vec<(usize, IpAddr)> = futures::stream::iter(0..SERVICES)
        .map(|i| {
            let (client, counter) = (client.clone(), counter.clone());
            async move {
                let ip = create_service(
                    &client,
                    &format!("svc-{i:04}"),
                    &[("", 80, echo_port)],
                    backend_ip,
                )
                .await?;
                counter.add(1);
                anyhow::Ok((i, ip))
            }
        })
        .buffer_unordered(CREATORS)
        .try_collect()
        .await?;
    drop(progress);
    let create_s = start.elapsed().as_secs_f64();
    note(&format!("created in {create_s:.1} s"));
    let mut ips = ips;
    ips.sort();
    let mut addrs: Vec<SocketAddr> = ips.iter().map(|(_, ip)| SocketAddr::new(*ip, 80)).collect();
    addrs.push(via_proxy.echo);
    wait_all(&mut proxy, &addrs).await?;
    let all_answer_s = start.elapsed().as_secs_f64();
    note(&format!(
        "all {} Services answer {all_answer_s:.1} s after the first create",
        addrs.len()
    ));
    let running = memory_settled(&proxy, "").await?;
    report.detail(
        "proxy_addresses_on_lo",
        json!(count_lo_addresses(&proxy.label)),
    );
    stop_proxy(&mut proxy, report).await;
    drop(proxy);

    phase(&format!(
        "a fresh rkube proxy, started with the {SERVICES} Services there"
    ));
    let start = Instant::now();
    let mut fresh = ProxyProcess::start(&url, &dir.path().join("server/token"))?;
    wait_all(&mut fresh, &addrs).await?;
    let fresh_answer_s = start.elapsed().as_secs_f64();
    note(&format!(
        "all {} Services answer {fresh_answer_s:.1} s after its start",
        addrs.len()
    ));
    let fresh_mem = memory_settled(&fresh, "fresh proxy: ").await?;
    stop_proxy(&mut fresh, report).await;
    drop(fresh);

    phase("stopping the server");
    drop(ha);
    server.stop().await;
    drop(backends);
    drop(own);

    Ok(Results {
        paths,
        host_congestion,
        like_for_like,
        like_for_like_cpu,
        rss_before_kib,
        before_anon_kib,
        before_file_kib,
        rss_one_kib,
        running,
        fresh: fresh_mem,
        create_s,
        all_answer_s,
        fresh_answer_s,
        first_answer_ms,
    })
}

/// A proxy's resident memory: VmRSS at once and 5 s later, and its peak; of the later
/// reading, the anonymous (heap, stacks) and file-backed (the binary's pages) parts.
#[derive(Clone, Copy, Debug, Default)]
struct Mem {
    rss_kib: u64,
    rss_later_kib: u64,
    hwm_kib: u64,
    anon_kib: u64,
    file_kib: u64,
    /// Proportional set size: shared pages (the binary's, which the server maps too)
    /// split among the processes that map them.
    pss_kib: u64,
    threads: u64,
}

impl Mem {
    /// The figure: the larger of the two readings.
    fn rss_kib(&self) -> u64 {
        self.rss_kib.max(self.rss_later_kib)
    }

    fn json(&self) -> Value {
        json!({
            "rss_kib": self.rss_kib,
            "rss_5s_later_kib": self.rss_later_kib,
            "hwm_kib": self.hwm_kib,
            "rss_anon_kib": self.anon_kib,
            "rss_file_kib": self.file_kib,
            "pss_kib": self.pss_kib,
            "threads": self.threads,
        })
    }
}

async fn memory_settled(proxy: &ProxyProcess, who: &str) -> Result<Mem> {
    let read = |f: &str| {
        status_kib(proxy.pid, f).with_context(|| format!("no {f} in /proc/{}/status", proxy.pid))
    };
    let rss_kib = read("VmRSS:")?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let m = Mem {
        rss_kib,
        rss_later_kib: read("VmRSS:")?,
        hwm_kib: read("VmHWM:")?,
        anon_kib: read("RssAnon:")?,
        file_kib: read("RssFile:")?,
        pss_kib: pss_kib(proxy.pid).unwrap_or(0),
        threads: read("Threads:")?,
    };
    note(&format!(
        "{who}proxy VmRSS {:.1} MiB, 5 s later {:.1} MiB (anonymous {:.1}, file {:.1}, Pss {:.1}; peak {:.1} MiB; {} threads)",
        m.rss_kib as f64 / 1024.0,
        m.rss_later_kib as f64 / 1024.0,
        m.anon_kib as f64 / 1024.0,
        m.file_kib as f64 / 1024.0,
        m.pss_kib as f64 / 1024.0,
        m.hwm_kib as f64 / 1024.0,
        m.threads
    ));
    Ok(m)
}

/// Waits until the echo backend answers at every one of `addrs`.
async fn wait_all(proxy: &mut ProxyProcess, addrs: &[SocketAddr]) -> Result<()> {
    let deadline = Instant::now() + PROGRAM_MANY_TIMEOUT;
    for a in addrs {
        wait_echo(proxy, *a, deadline)
            .await
            .with_context(|| format!("{a} through the proxy"))?;
    }
    Ok(())
}

/// Stops a proxy with SIGTERM; addresses it left on lo are a failure (and removed).
async fn stop_proxy(proxy: &mut ProxyProcess, report: &mut Report) {
    phase("stopping the proxy (SIGTERM: it removes its addresses from lo)");
    note(&proxy.stop().await);
    let left = count_lo_addresses(&proxy.label);
    if left > 0 {
        report.failures.push(format!(
            "the proxy left {left} addresses labelled {} on lo after SIGTERM",
            proxy.label
        ));
        flush_label(&proxy.label);
    }
}

/// A selectorless ClusterIP Service `name` with `ports` (name, port, targetPort; an empty
/// name for a single unnamed port) and an EndpointSlice with one ready endpoint at
/// `backend`; the cluster IP the API gave it.
async fn create_service(
    client: &kube::Client,
    name: &str,
    ports: &[(&str, u16, u16)],
    backend: IpAddr,
) -> Result<IpAddr> {
    let named = |n: &str, mut v: Value| {
        if !n.is_empty() {
            v["name"] = json!(n);
        }
        v
    };
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "type": "ClusterIP",
            "ports": ports.iter().map(|(n, p, t)| named(n, json!({
                "protocol": "TCP", "port": p, "targetPort": t,
            }))).collect::<Vec<_>>(),
        },
    }))?;
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {
            "name": format!("{name}-1"),
            "labels": {"kubernetes.io/service-name": name},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [backend.to_string()], "conditions": {"ready": true}}],
        "ports": ports.iter().map(|(n, _, t)| named(n, json!({
            "protocol": "TCP", "port": t,
        }))).collect::<Vec<_>>(),
    }))?;
    let created = Api::<Service>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &svc)
        .await
        .with_context(|| format!("creating Service {name}"))?;
    Api::<EndpointSlice>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &slice)
        .await
        .with_context(|| format!("creating the EndpointSlice of {name}"))?;
    let ip = created
        .spec
        .and_then(|s| s.cluster_ip)
        .with_context(|| format!("Service {name} got no cluster IP"))?;
    ip.parse()
        .with_context(|| format!("Service {name}: cluster IP {ip:?}"))
}

/// Waits until all three backends answer through `route`.
async fn wait_answers(
    proxy: &mut ProxyProcess,
    server: &mut Server,
    route: Route,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Some(how) = proxy.exited() {
            bail!("{how}");
        }
        if let Some(how) = server.exited() {
            bail!("{how}");
        }
        // Before the address is on lo, a connect would leave by the default route and
        // wait for nothing: short attempts.
        match tcp::answers(
            route.bulk,
            route.echo,
            route.once,
            Duration::from_millis(500),
        )
        .await
        {
            Ok(()) => return Ok(()),
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!(
        "{} does not answer through the proxy within {timeout:?} (last: {last}); the proxy's log ends with:\n{}",
        route.echo.ip(),
        proxy.log_tail()
    )
}

/// Waits until the echo backend answers at `addr` (a Service's cluster IP and port).
async fn wait_echo(proxy: &mut ProxyProcess, addr: SocketAddr, deadline: Instant) -> Result<()> {
    loop {
        let last = match tokio::time::timeout(
            Duration::from_millis(500),
            tcp::ping_pong(addr, 0, 1),
        )
        .await
        {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => format!("{e:#}"),
            Err(_) => "no answer within 500 ms".to_string(),
        };
        if let Some(how) = proxy.exited() {
            bail!("{how}");
        }
        if Instant::now() > deadline {
            bail!("no answer through the proxy in time (last: {last})");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The address the backends listen on: one the API accepts as an endpoint address (not
/// loopback, not link-local) that this machine delivers locally.
struct BackendAddress {
    ip: IpAddr,
    how: String,
    /// A /32 we put on lo ourselves, removed on drop.
    added: Option<String>,
}

/// The fallback address (TEST-NET-2 benchmarking range, RFC 2544) and its label.
const FALLBACK: &str = "198.18.45.1/32";
const FALLBACK_LABEL: &str = "lo:rkbenchpx";

impl BackendAddress {
    /// The source address of the default route (as k3s picks a node IP); without one, a
    /// /32 of our own on lo.
    fn pick() -> Result<BackendAddress> {
        let routed = std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| {
                s.connect("192.0.2.255:9")
                    .or_else(|_| s.connect("8.8.8.8:53"))?;
                s.local_addr()
            })
            .map(|a| a.ip());
        if let Ok(ip @ IpAddr::V4(v4)) = routed {
            if !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified() {
                return Ok(BackendAddress {
                    ip,
                    how: format!("{ip}, the default route's source address"),
                    added: None,
                });
            }
        }
        let ok = Command::new("ip")
            .args(["-4", "addr", "add", FALLBACK, "dev", "lo", "label"])
            .arg(FALLBACK_LABEL)
            .status()
            .context("running ip")?
            .success();
        if !ok {
            bail!("no default route, and `ip addr add {FALLBACK} dev lo` failed");
        }
        let ip: IpAddr = FALLBACK.trim_end_matches("/32").parse()?;
        Ok(BackendAddress {
            ip,
            how: format!("{ip}, a /32 added to lo for the run (no default route)"),
            added: Some(FALLBACK.to_string()),
        })
    }
}

impl Drop for BackendAddress {
    fn drop(&mut self) {
        if let Some(a) = self.added.take() {
            let _ = Command::new("ip")
                .args(["-4", "addr", "del", &a, "dev", "lo"])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// `rkube proxy` joined to the server: the service proxy and cluster DNS alone, with a
/// data dir of its own (its addresses on lo carry a label derived from it). Killed
/// (its PID only) and its addresses removed when dropped.
struct ProxyProcess {
    child: Option<Child>,
    pid: u32,
    _dir: tempfile::TempDir,
    log: PathBuf,
    label: String,
}

impl ProxyProcess {
    fn start(url: &str, token_file: &Path) -> Result<ProxyProcess> {
        let dir = tempfile::Builder::new()
            .prefix("rkube-bench-proxy-")
            .tempdir()?;
        let label = kubelet::containerd::lo_label(&dir.path().join("agent"));
        let log = dir.path().join("proxy.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_rkube"))
            .arg("proxy")
            .args(["--server", url, "--token-file"])
            .arg(token_file)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--cluster-dns", CLUSTER_DNS])
            .env("RKUBE_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("RKUBE_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .context("cannot start rkube proxy")?;
        Ok(ProxyProcess {
            pid: child.id(),
            child: Some(child),
            _dir: dir,
            log,
            label,
        })
    }

    fn exited(&mut self) -> Option<String> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        Some(format!(
            "rkube proxy ended: {status}; its log ends with:\n{}",
            self.log_tail()
        ))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM (the proxy removes its listeners and addresses), SIGKILL after 10 s; how
    /// it went.
    async fn stop(&mut self) -> String {
        let Some(mut child) = self.child.take() else {
            return "the proxy was stopped already".into();
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(status)) = child.try_wait() {
                return format!(
                    "the proxy ended {:.2} s after SIGTERM ({status})",
                    start.elapsed().as_secs_f64()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        "the proxy did not end within 10 s of SIGTERM: killed".into()
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        flush_label(&self.label);
    }
}

/// The IPv4 addresses on lo carrying `label`.
fn count_lo_addresses(label: &str) -> usize {
    Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", "lo", "label", label])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
        .unwrap_or(0)
}

fn flush_label(label: &str) {
    let _ = Command::new("ip")
        .args(["-4", "addr", "flush", "dev", "lo", "label", label])
        .stderr(Stdio::null())
        .status();
}

/// After everything stopped: nothing of ours may be left on lo.
fn leftover_check(report: &mut Report) {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", "lo"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    let ours: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(FALLBACK_LABEL) || l.contains(" 10.45."))
        .collect();
    if !ours.is_empty() {
        report.failures.push(format!(
            "addresses left on lo after the run: {}",
            ours.join("; ")
        ));
    }
}

fn metrics(report: &mut Report, r: &Results) {
    let [d, p, h] = &r.paths;
    let tput = p.bulk_median();
    report.add(
        Metric::new(
            "throughput_vs_direct",
            format!(
                "bulk TCP throughput through the rkube proxy, 1 connection, median of {BULK_ROUNDS} × {} GiB (peer: direct to the endpoint)",
                BULK_BYTES >> 30
            ),
            tput,
            "MiB/s",
        )
        .peer(d.bulk_median())
        .target(Target::RatioAtLeast(THROUGHPUT_VS_DIRECT)),
    );
    let [lfl_direct, lfl_proxy] = [median(&r.like_for_like[0]), median(&r.like_for_like[1])];
    report.add(
        Metric::new(
            "throughput_vs_direct_same_congestion",
            format!(
                "bulk TCP throughput through the rkube proxy, client on {} like the proxy's legs (peer: direct, client on {0})",
                proxy::TCP_CONGESTION
            ),
            lfl_proxy,
            "MiB/s",
        )
        .peer(lfl_direct),
    );
    report.add(
        Metric::new(
            "throughput_vs_haproxy",
            "bulk TCP throughput through the rkube proxy (peer: haproxy, mode tcp)",
            tput,
            "MiB/s",
        )
        .peer(h.bulk_median())
        .target(Target::RatioAtLeast(THROUGHPUT_VS_HAPROXY)),
    );
    let (dl, pl, hl) = (d.latency_us(), p.latency_us(), h.latency_us());
    report.add(
        Metric::new(
            "added_p50_us",
            format!(
                "added p50 request latency through the rkube proxy ({}-byte ping-pong: proxy p50 − direct p50)",
                tcp::MSG
            ),
            pl.p50_ms - dl.p50_ms,
            "µs",
        )
        .target(Target::Below(ADDED_P50_US)),
    );
    report.add(Metric::new(
        "haproxy_added_p50_us",
        "added p50 request latency through haproxy (haproxy p50 − direct p50)",
        hl.p50_ms - dl.p50_ms,
        "µs",
    ));
    report.add(
        Metric::new(
            "latency_p50_us",
            "request latency p50 through the rkube proxy (peer: haproxy)",
            pl.p50_ms,
            "µs",
        )
        .peer(hl.p50_ms),
    );
    report.add(
        Metric::new(
            "latency_p99_us",
            "request latency p99 through the rkube proxy (peer: haproxy)",
            pl.p99_ms,
            "µs",
        )
        .peer(hl.p99_ms),
    );
    report.add(Metric::new(
        "direct_latency_p50_us",
        "request latency p50 direct to the endpoint",
        dl.p50_ms,
        "µs",
    ));
    report.add(Metric::new(
        "direct_latency_p99_us",
        "request latency p99 direct to the endpoint",
        dl.p99_ms,
        "µs",
    ));
    report.add(
        Metric::new(
            "conns_per_s_vs_direct",
            format!(
                "connections/s through the rkube proxy (connect, {}-byte request and answer, close; {CONN_CLIENTS} clients) (peer: direct)",
                tcp::MSG
            ),
            p.conns_per_s(),
            "/s",
        )
        .peer(d.conns_per_s()),
    );
    report.add(
        Metric::new(
            "conns_per_s_vs_haproxy",
            "connections/s through the rkube proxy (peer: haproxy)",
            p.conns_per_s(),
            "/s",
        )
        .peer(h.conns_per_s()),
    );
    let mb = |kib: u64| kib as f64 * 1024.0 / 1e6;
    report.add(
        Metric::new(
            "rss_1000_services_mb",
            format!(
                "rkube proxy resident memory (VmRSS) with {SERVICES} Services + 1, all answering (the proxy that served the traffic above)"
            ),
            mb(r.running.rss_kib()),
            "MB",
        )
        .target(Target::Below(RSS_MB)),
    );
    report.add(Metric::new(
        "rss_1000_services_fresh_mb",
        format!(
            "rkube proxy resident memory with {SERVICES} Services + 1, a fresh proxy started with them there"
        ),
        mb(r.fresh.rss_kib()),
        "MB",
    ));
    report.add(Metric::new(
        "rss_1_service_mb",
        "rkube proxy resident memory with 1 Service, before the traffic",
        mb(r.rss_before_kib),
        "MB",
    ));
    report.add(Metric::new(
        "services_answer_s",
        format!(
            "time from the first of {SERVICES} Service creates until all their cluster IPs answer"
        ),
        r.all_answer_s,
        "s",
    ));

    let gib = mib(BULK_BYTES) / 1024.0 * BULK_ROUNDS as f64;
    report.note(format!(
        "Loopback, plain TCP (no TLS). Bulk: median of {BULK_ROUNDS} transfers of {} GiB each: direct {} MiB/s, rkube proxy {} MiB/s, haproxy {} MiB/s. \
         CPU of the relaying process per GiB: rkube proxy {:.2} s, haproxy {:.2} s.",
        BULK_BYTES >> 30,
        num(d.bulk_median()),
        num(tput),
        num(h.bulk_median()),
        p.relay_cpu[0] / gib,
        h.relay_cpu[0] / gib,
    ));
    report.note(format!(
        "TCP congestion control: the host's default is {host}, which the clients use unless told otherwise, and haproxy for both its legs; \
         the rkube proxy puts its own sockets (both legs) on {cc} (`--proxy-tcp-congestion`, Linux's default). \
         The first row compares what a client on the host's default gets; the second takes the congestion control out of the comparison \
         (client on {cc} both ways: direct {} MiB/s, through the proxy {} MiB/s, medians of {BULK_ROUNDS}, measured in the same rounds). \
         CPU per GiB there: the direct path's client and sink together {:.3} s, the proxy {:.3} s (the second connection's TCP work, no copies): \
         with both cores busy, the proxy's share bounds the relayed rate near direct × {:.2}.",
        num(lfl_direct),
        num(lfl_proxy),
        r.like_for_like_cpu[0] / gib,
        r.like_for_like_cpu[1] / gib,
        r.like_for_like_cpu[0] / (r.like_for_like_cpu[0] + r.like_for_like_cpu[1]).max(1e-9),
        host = r.host_congestion,
        cc = proxy::TCP_CONGESTION,
    ));
    report.note(format!(
        "Latency over {} exchanges per path ({LATENCY_ROUNDS} rounds, interleaved): p50/p99 direct {}/{} µs, rkube proxy {}/{} µs, haproxy {}/{} µs.",
        pl.count,
        num(dl.p50_ms),
        num(dl.p99_ms),
        num(pl.p50_ms),
        num(pl.p99_ms),
        num(hl.p50_ms),
        num(hl.p99_ms),
    ));
    report.note(
        "Absolute latencies on this VM depend on whether its vCPUs sit idle between exchanges (waking a halted vCPU costs tens of µs): \
         in trial runs the direct p50 was about 17 µs while other work kept the cores busy and 60–90 µs on an otherwise idle machine, \
         the added latency of either relay about the same both ways. The paths are compared within one run, in short interleaved rounds \
         over one persistent connection each, so they see the same conditions."
            .to_string(),
    );
    report.note(format!(
        "Connections/s ({CONN_ROUNDS} rounds of {} s per path, interleaved): direct {}, rkube proxy {}, haproxy {}.",
        CONN_TIME.as_secs(),
        num(d.conns_per_s()),
        num(p.conns_per_s()),
        num(h.conns_per_s()),
    ));
    report.note(format!(
        "Memory in MB of 10^6 bytes, VmRSS of /proc/<pid>/status, read when all Services first answered and 5 s later (the larger is the figure). \
         The proxy that served the traffic: {} MB with 1 Service before the traffic ({} MB anonymous, {} MB file-backed), {} MB after it, {}/{} MB with {SERVICES} more \
         ({} MB anonymous — heap, stacks — and {} MB file-backed — the pages of the one rkube binary it runs from, which the server maps too: \
         Pss {} MB; peak VmHWM {} MB); \
         a fresh proxy started with them: {}/{} MB ({} MB anonymous, {} MB file-backed), all answering {:.1} s after its start. \
         Creating the {SERVICES} Services and their slices took {:.1} s.",
        num(mb(r.rss_before_kib)),
        num(mb(r.before_anon_kib)),
        num(mb(r.before_file_kib)),
        num(mb(r.rss_one_kib)),
        num(mb(r.running.rss_kib)),
        num(mb(r.running.rss_later_kib)),
        num(mb(r.running.anon_kib)),
        num(mb(r.running.file_kib)),
        num(mb(r.running.pss_kib)),
        num(mb(r.running.hwm_kib)),
        num(mb(r.fresh.rss_kib)),
        num(mb(r.fresh.rss_later_kib)),
        num(mb(r.fresh.anon_kib)),
        num(mb(r.fresh.file_kib)),
        r.fresh_answer_s,
        r.create_s,
    ));
    report.note(
        "The benchmark's clients and backends, the relaying process and the rest of the machine share the cores: \
         a relay in the path competes for CPU with both ends, which weighs on every relayed figure (rkube proxy and haproxy alike)."
            .to_string(),
    );
    report.note(format!(
        "haproxy {}: mode tcp, default threads, timeouts connect 5 s, client/server 60 s, frontends on 127.0.0.1; \
         the rkube proxy listens on the Service's cluster IP (a /32 on lo). Backends on {}.",
        haproxy::version().unwrap_or_else(|| "?".into()),
        report
            .details
            .get("backend_address")
            .and_then(Value::as_str)
            .unwrap_or("?"),
    ));
    report.detail(
        "paths",
        json!({
            "direct": d.json(),
            "rkube_proxy": p.json(),
            "haproxy": h.json(),
        }),
    );
    report.detail(
        "congestion_control",
        json!({
            "host_default": r.host_congestion,
            "proxy": proxy::TCP_CONGESTION,
            "like_for_like_cpu_s": {
                "client_and_sink_direct": round(r.like_for_like_cpu[0]),
                "rkube_proxy": round(r.like_for_like_cpu[1]),
            },
            "like_for_like_bulk_mib_per_s": {
                "direct": r.like_for_like[0].iter().map(|x| round(*x)).collect::<Vec<_>>(),
                "rkube_proxy": r.like_for_like[1].iter().map(|x| round(*x)).collect::<Vec<_>>(),
            },
        }),
    );
    report.detail(
        "services",
        json!({
            "count": SERVICES,
            "create_s": round(r.create_s),
            "all_answer_s": round(r.all_answer_s),
            "first_service_answer_ms": round(r.first_answer_ms),
            "fresh_proxy_all_answer_s": round(r.fresh_answer_s),
            "rss_1_service_before_traffic_kib": r.rss_before_kib,
            "rss_1_service_after_traffic_kib": r.rss_one_kib,
            "running_proxy": r.running.json(),
            "fresh_proxy": r.fresh.json(),
        }),
    );
}
