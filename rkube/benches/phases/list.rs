//! LIST of a namespace holding 10,000 pods through `Api<Pod>::list`; then, to tell where
//! the time goes, the same list as raw bytes (no client decoding) and with a label selector
//! that matches nothing (the server reads and decodes every pod but sends none).

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::{json, Value};

use super::pods::{create_pods, Load, LoadResult};
use crate::support::progress::{note, phase};
use crate::support::server::{ensure_namespace, get_raw, quiesce, Quiet, Server};
use crate::support::stats::{round, summarize, Summary};
use crate::support::usage::Usage;

const NS: &str = "bench-list";
pub const PODS: usize = 10_000;
const CLIENTS: usize = 64;
/// Timed lists (after one untimed warm-up), and of each diagnostic kind.
const LISTS: usize = 5;
const DIAGNOSTIC_LISTS: usize = 3;
/// How long the server may take to finish the work the fill left behind.
const SETTLE: Duration = Duration::from_secs(180);
const MAX_TIME: Duration = Duration::from_secs(240);

/// Repeated timings of one request, with what each cost the server.
#[derive(Default)]
pub struct Series {
    ms: Vec<Duration>,
    server_cpu_ms: Vec<Option<f64>>,
    rss_mib: Vec<Option<f64>>,
}

impl Series {
    pub fn summary(&self) -> Summary {
        summarize(&self.ms)
    }

    fn json(&self) -> Value {
        json!({
            "latency": self.summary().json(),
            "server_cpu_ms": self.server_cpu_ms.iter().map(|c| c.map(round)).collect::<Vec<_>>(),
            "server_rss_mib_after": self.rss_mib.iter().map(|c| c.map(round)).collect::<Vec<_>>(),
        })
    }
}

/// Runs `f` `n` times (bounded by `deadline`); `f` describes its result.
async fn series<F, Fut>(
    label: &str,
    n: usize,
    server: &Server,
    deadline: Instant,
    mut f: F,
) -> Result<Series>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<String>>,
{
    let mut s = Series::default();
    for _ in 0..n {
        if Instant::now() >= deadline {
            break;
        }
        let usage = Usage::start(server.pid());
        let what = f().await?;
        let spent = usage.finish();
        let rss = server.memory().ok().map(|m| m.rss_mib());
        s.ms.push(Duration::from_secs_f64(spent.wall_s));
        s.server_cpu_ms.push(spent.server_cpu_s.map(|c| c * 1e3));
        s.rss_mib.push(rss);
        note(&format!(
            "{label}: {what} in {:.1} ms (server CPU {} ms, VmRSS {} MiB)",
            spent.wall_s * 1e3,
            spent
                .server_cpu_s
                .map_or("?".into(), |c| format!("{:.0}", c * 1e3)),
            rss.map_or("?".into(), |r| format!("{r:.0}")),
        ));
    }
    Ok(s)
}

pub struct ListResult {
    pub fill: LoadResult,
    /// What the server still wrote after the fill before it was idle.
    pub settle: Quiet,
    pub rss_mib_before: Option<f64>,
    pub items: usize,
    pub typed: Series,
    pub raw: Series,
    pub raw_bytes: usize,
    pub none: Series,
}

impl ListResult {
    pub fn json(&self) -> Value {
        json!({
            "fill": self.fill.json(),
            "settle_after_fill": self.settle.json(),
            "server_rss_mib_before_lists": self.rss_mib_before.map(round),
            "items": self.items,
            "typed_list": self.typed.json(),
            "raw_list": self.raw.json(),
            "raw_list_bytes": self.raw_bytes,
            "selector_matching_nothing": self.none.json(),
        })
    }
}

pub async fn run(cfg: &kube::Config, server: &Server) -> Result<ListResult> {
    let client = kube::Client::try_from(cfg.clone())?;
    ensure_namespace(&client, NS).await?;
    phase(&format!(
        "LIST: creating {PODS} pods in {NS} ({CLIENTS} clients)"
    ));
    let fill = create_pods(
        cfg,
        &Load {
            ns: NS,
            prefix: "pod",
            clients: CLIENTS,
            count: PODS,
            max_time: Duration::from_secs(600),
            server_pid: server.pid(),
            node: None,
        },
    )
    .await?;
    note(&format!(
        "created {} pods at {:.0}/s ({} errors)",
        fill.ok,
        fill.rate(),
        fill.errors
    ));
    let settle = quiesce(&client, "after the fill", SETTLE).await?;
    let rss_before = server.memory().ok().map(|m| m.rss_mib());
    note(&format!(
        "VmRSS before the lists: {} MiB",
        rss_before.map_or("?".into(), |r| format!("{r:.0}"))
    ));

    phase(&format!(
        "LIST: {LISTS} full lists of {NS} (Api<Pod>::list)"
    ));
    let api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let all = ListParams::default();
    let t = Instant::now();
    let items = api.list(&all).await.context("warm-up list")?.items.len();
    note(&format!(
        "warm-up list: {items} items in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    ));
    let deadline = Instant::now() + MAX_TIME;
    let (api, all) = (&api, &all);
    let typed = series("list", LISTS, server, deadline, || async move {
        Ok(format!("{} items", api.list(all).await?.items.len()))
    })
    .await?;

    phase(&format!(
        "LIST: {LISTS} raw GETs of the same list (bytes only)"
    ));
    let path = format!("/api/v1/namespaces/{NS}/pods");
    let raw_bytes = std::cell::Cell::new(0);
    let (client, path_ref, bytes) = (&client, &path, &raw_bytes);
    let raw = series(
        "raw list",
        DIAGNOSTIC_LISTS,
        server,
        deadline,
        || async move {
            let (code, body) = get_raw(client, path_ref).await?;
            anyhow::ensure!(code == 200, "GET {path_ref}: status {code}");
            bytes.set(body.len());
            Ok(format!("{:.1} MiB", body.len() as f64 / 1048576.0))
        },
    )
    .await?;

    phase(&format!(
        "LIST: {DIAGNOSTIC_LISTS} lists with a label selector matching none of the {PODS} pods"
    ));
    let nothing = ListParams::default().labels("bench.rkube.io/absent=true");
    let nothing = &nothing;
    let none = series(
        "empty selector list",
        DIAGNOSTIC_LISTS,
        server,
        deadline,
        || async move { Ok(format!("{} items", api.list(nothing).await?.items.len())) },
    )
    .await?;
    Ok(ListResult {
        fill,
        settle,
        rss_mib_before: rss_before,
        items,
        typed,
        raw,
        raw_bytes: raw_bytes.get(),
        none,
    })
}
