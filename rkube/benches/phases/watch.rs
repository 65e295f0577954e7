//! Watch fan-out: 100 watchers of one namespace from a resourceVersion, then a series of
//! creates; for every (event, watcher) the time from the write's start and from its
//! acknowledgement to the watcher receiving it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::{json, Value};

use super::pods::pod;
use crate::support::progress::{note, phase, Counter, Progress};
use crate::support::server::{ensure_namespace, warm_clients, Server};
use crate::support::stats::{summarize, Summary};
use crate::support::usage::{Spent, Usage};

const NS: &str = "bench-watch";
pub const WATCHERS: usize = 100;
pub const WRITES: usize = 200;
/// Pause between two creates, so latency rather than a backlog is measured.
pub const GAP: Duration = Duration::from_millis(10);
const MAX_TIME: Duration = Duration::from_secs(120);
const WARM: &str = "w-warm";

pub struct WatchResult {
    pub deliveries: usize,
    pub expected: usize,
    pub from_ack: Summary,
    pub from_start: Summary,
    pub before_ack: usize,
    pub write_latency: Summary,
    pub errors: Vec<String>,
    /// Over the timed creates and their deliveries.
    pub spent: Spent,
}

impl WatchResult {
    pub fn json(&self) -> Value {
        json!({
            "watchers": WATCHERS,
            "writes": WRITES,
            "gap_ms": GAP.as_millis() as u64,
            "deliveries": self.deliveries,
            "expected": self.expected,
            "from_ack": self.from_ack.json(),
            "from_write_start": self.from_start.json(),
            "delivered_before_ack": self.before_ack,
            "write_latency": self.write_latency.json(),
            "watcher_errors": self.errors,
            "usage": self.spent.json(),
        })
    }
}

/// Index of a benchmark pod (`w-00042` → 42).
fn index(name: &str) -> Option<usize> {
    name.strip_prefix("w-")?.parse().ok()
}

/// One watcher: when it received each benchmark pod.
async fn watcher(
    api: Api<Pod>,
    rv: String,
    warm: Arc<AtomicUsize>,
    delivered: Counter,
    deadline: Instant,
) -> Result<Vec<(usize, Instant)>> {
    let wp = WatchParams::default().timeout(MAX_TIME.as_secs() as u32);
    let mut stream = api.watch(&wp, &rv).await?.boxed();
    let mut got = Vec::with_capacity(WRITES);
    while got.len() < WRITES {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = match tokio::time::timeout(left, stream.next()).await {
            Ok(Some(ev)) => ev?,
            Ok(None) => bail!("the watch ended after {} events", got.len()),
            Err(_) => bail!("timed out after {} events", got.len()),
        };
        let at = Instant::now();
        match ev {
            // Only the creates are timed: later changes (the scheduler's status updates)
            // arrive as MODIFIED and are skipped.
            WatchEvent::Added(p) => {
                let name = p.metadata.name.unwrap_or_default();
                if name == WARM {
                    warm.fetch_add(1, Ordering::Relaxed);
                } else if let Some(i) = index(&name) {
                    got.push((i, at));
                    delivered.add(1);
                }
            }
            WatchEvent::Error(e) => bail!("watch error: {e}"),
            WatchEvent::Modified(_) | WatchEvent::Deleted(_) | WatchEvent::Bookmark(_) => {}
        }
    }
    Ok(got)
}

pub async fn run(cfg: &kube::Config, server: &Server) -> Result<WatchResult> {
    let client = kube::Client::try_from(cfg.clone())?;
    ensure_namespace(&client, NS).await?;
    let api: Api<Pod> = Api::namespaced(client, NS);
    let rv = api
        .list(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .context("a list without resourceVersion")?;
    phase(&format!(
        "watch: {WATCHERS} watchers of {NS} from resourceVersion {rv}"
    ));
    let deadline = Instant::now() + MAX_TIME;
    let warm = Arc::new(AtomicUsize::new(0));
    let progress = Progress::start("deliveries", (WATCHERS * WRITES) as u64);
    let watchers: Vec<_> = warm_clients(cfg, WATCHERS)
        .await?
        .into_iter()
        .map(|c| {
            tokio::spawn(watcher(
                Api::namespaced(c, NS),
                rv.clone(),
                warm.clone(),
                progress.counter.clone(),
                deadline,
            ))
        })
        .collect();

    // Every watcher has seen this one before anything is timed: all streams are open.
    let pp = PostParams::default();
    api.create(&pp, &pod(WARM)).await?;
    let warm_deadline = Instant::now() + Duration::from_secs(30);
    while warm.load(Ordering::Relaxed) < WATCHERS && Instant::now() < warm_deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    note(&format!(
        "{}/{WATCHERS} watchers received the warm-up pod",
        warm.load(Ordering::Relaxed)
    ));

    phase(&format!(
        "watch: {WRITES} creates, one every {} ms",
        GAP.as_millis()
    ));
    let usage = Usage::start(server.pid());
    let mut starts = Vec::with_capacity(WRITES);
    let mut acks = Vec::with_capacity(WRITES);
    for i in 0..WRITES {
        if Instant::now() >= deadline {
            break;
        }
        let p = pod(&format!("w-{i:05}"));
        let start = Instant::now();
        api.create(&pp, &p).await?;
        starts.push(start);
        acks.push(Instant::now());
        tokio::time::sleep(GAP).await;
    }

    let mut from_ack = Vec::new();
    let mut from_start = Vec::new();
    let mut before_ack = 0;
    let mut errors = Vec::new();
    for w in futures::future::join_all(watchers).await {
        match w? {
            Ok(got) => {
                for (i, at) in got {
                    let (Some(s), Some(a)) = (starts.get(i), acks.get(i)) else {
                        continue;
                    };
                    before_ack += usize::from(at < *a);
                    from_ack.push(at.saturating_duration_since(*a));
                    from_start.push(at - *s);
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    let spent = usage.finish();
    drop(progress);
    note(&spent.line());
    let write_latency: Vec<Duration> = acks.iter().zip(&starts).map(|(a, s)| *a - *s).collect();
    let expected = WATCHERS * acks.len();
    note(&format!(
        "{}/{expected} deliveries, {} watcher errors",
        from_ack.len(),
        errors.len()
    ));
    if from_ack.is_empty() {
        bail!("no watcher received anything: {errors:?}");
    }
    errors.truncate(5);
    Ok(WatchResult {
        deliveries: from_ack.len(),
        expected,
        from_ack: summarize(&from_ack),
        from_start: summarize(&from_start),
        before_ack,
        write_latency: summarize(&write_latency),
        errors,
        spent,
    })
}
