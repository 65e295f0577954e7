//! A fresh server: time from spawn to the first 200 of `/readyz` (fresh and existing data
//! dir), idle resident memory, and how often an idle server writes.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{json, Value};

use crate::support::progress::{idle, note, phase};
use crate::support::server::{
    current_revision, poll_readyz, temp_dir, Memory, Server, START_TIMEOUT,
};
use crate::support::stats::{summarize, Summary};

/// Starts measured per kind of data dir.
const RUNS: usize = 3;
/// Delay between two `/readyz` polls.
const POLL: Duration = Duration::from_millis(1);
/// Idle time before reading the resident memory.
const SETTLE: Duration = Duration::from_secs(3);
/// Idle time over which writes are counted.
pub const IDLE_WINDOW: Duration = Duration::from_secs(10);

pub struct StartupResult {
    pub fresh: Summary,
    pub existing: Summary,
    /// Spawn to the `API server ready` log line, fresh data dir.
    pub fresh_logged: Summary,
    pub idle_memory: Memory,
    pub idle_memory_later: Memory,
    pub idle_writes: IdleWrites,
}

impl StartupResult {
    pub fn json(&self) -> Value {
        json!({
            "readyz_fresh": self.fresh.json(),
            "readyz_existing": self.existing.json(),
            "ready_log_line_fresh": self.fresh_logged.json(),
            "idle_rss_mib": self.idle_memory.rss_mib(),
            "idle_hwm_mib": self.idle_memory.hwm_mib(),
            "idle_rss_mib_after_window": self.idle_memory_later.rss_mib(),
            "idle_writes": self.idle_writes.json(),
        })
    }
}

/// Store revisions committed by an idle server over a window.
pub struct IdleWrites {
    pub before: i64,
    pub after: i64,
    pub secs: f64,
}

impl IdleWrites {
    pub fn per_sec(&self) -> f64 {
        (self.after - self.before) as f64 / self.secs
    }

    pub fn json(&self) -> Value {
        json!({
            "rv_before": self.before,
            "rv_after": self.after,
            "window_s": self.secs,
            "writes_per_s": self.per_sec(),
        })
    }
}

/// Counts the revisions an idle server commits over [`IDLE_WINDOW`].
pub async fn idle_writes(client: &kube::Client, label: &str) -> Result<IdleWrites> {
    let before = current_revision(client).await?;
    let t = Instant::now();
    idle(label, IDLE_WINDOW).await;
    let after = current_revision(client).await?;
    Ok(IdleWrites {
        before,
        after,
        secs: t.elapsed().as_secs_f64(),
    })
}

struct Start {
    server: Server,
    readyz: Duration,
    logged: Duration,
}

/// Spawns a server on `dir` and polls `/readyz` as soon as its address is known.
async fn timed_start(dir: &Path) -> Result<Start> {
    let mut server = Server::spawn(dir)?;
    server.wait_listening(START_TIMEOUT).await?;
    let client = server.client().await?;
    let ready = poll_readyz(&client, POLL, START_TIMEOUT).await?;
    let logged = server.wait_ready_logged(START_TIMEOUT).await?;
    let readyz = ready - server.spawned;
    let logged = logged - server.spawned;
    note(&format!(
        "/readyz 200 after {:.1} ms (ready log line after {:.1} ms)",
        readyz.as_secs_f64() * 1e3,
        logged.as_secs_f64() * 1e3
    ));
    Ok(Start {
        server,
        readyz,
        logged,
    })
}

pub async fn run() -> Result<StartupResult> {
    phase(&format!(
        "start to /readyz, fresh data dir (x{RUNS}); idle memory and writes"
    ));
    let kept = temp_dir()?;
    let mut fresh = Vec::new();
    let mut logged = Vec::new();
    let mut idle_state = None;
    for i in 0..RUNS {
        let other;
        let dir = if i == 0 {
            kept.path()
        } else {
            other = temp_dir()?;
            other.path()
        };
        let mut s = timed_start(dir).await?;
        fresh.push(s.readyz);
        logged.push(s.logged);
        if i == 0 {
            idle("idle before reading VmRSS", SETTLE).await;
            let memory = s.server.memory()?;
            note(&format!(
                "idle VmRSS {:.1} MiB (VmHWM {:.1} MiB)",
                memory.rss_mib(),
                memory.hwm_mib()
            ));
            let client = s.server.client().await?;
            let writes = idle_writes(&client, "counting idle writes").await?;
            note(&format!(
                "idle writes: rv {} -> {} ({:.2}/s)",
                writes.before,
                writes.after,
                writes.per_sec()
            ));
            idle_state = Some((memory, s.server.memory()?, writes));
        }
        s.server.stop().await;
    }
    phase(&format!("start to /readyz, existing data dir (x{RUNS})"));
    let mut existing = Vec::new();
    for _ in 0..RUNS {
        let mut s = timed_start(kept.path()).await?;
        existing.push(s.readyz);
        s.server.stop().await;
    }
    let (idle_memory, idle_memory_later, idle_writes) =
        idle_state.expect("the first run measures idling");
    Ok(StartupResult {
        fresh: summarize(&fresh),
        existing: summarize(&existing),
        fresh_logged: summarize(&logged),
        idle_memory,
        idle_memory_later,
        idle_writes,
    })
}
