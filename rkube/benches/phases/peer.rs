//! The peer: raw SQLite, durable (WAL + synchronous=FULL), one row per transaction, one
//! thread, a fresh database file.

use std::time::{Duration, Instant};

use anyhow::Result;
use rusqlite::{params, Connection};
use serde_json::{json, Value};

use crate::support::progress::{phase, Progress};
use crate::support::server::temp_dir;
use crate::support::stats::{rate, summarize, Summary};

const INSERTS: usize = 3000;
const MAX_TIME: Duration = Duration::from_secs(10);

pub struct PeerResult {
    pub label: String,
    pub value_bytes: usize,
    pub inserts: usize,
    pub elapsed: Duration,
    pub latency: Summary,
}

impl PeerResult {
    pub fn rate(&self) -> f64 {
        rate(self.inserts, self.elapsed)
    }

    pub fn json(&self) -> Value {
        json!({
            "run": self.label,
            "value_bytes": self.value_bytes,
            "inserts": self.inserts,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "inserts_per_s": self.rate(),
            "latency": self.latency.json(),
        })
    }
}

/// Single-row durable inserts of `value_bytes`-long values (blocking: run it off the runtime).
pub fn raw_inserts(value_bytes: usize, label: &str) -> Result<PeerResult> {
    phase(&format!(
        "peer ({label}): raw SQLite inserts of {value_bytes} B, WAL + synchronous=FULL, 1 row/txn"
    ));
    let dir = temp_dir()?;
    let mut conn = Connection::open(dir.path().join("peer.db"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE kv (id INTEGER PRIMARY KEY, key TEXT NOT NULL, value BLOB NOT NULL)",
    )?;
    let value = vec![b'x'; value_bytes];
    let progress = Progress::start("raw inserts", INSERTS as u64);
    let mut latencies = Vec::with_capacity(INSERTS);
    let start = Instant::now();
    for i in 0..INSERTS {
        if start.elapsed() >= MAX_TIME {
            break;
        }
        let t = Instant::now();
        let tx = conn.transaction()?;
        tx.prepare_cached("INSERT INTO kv (key, value) VALUES (?1, ?2)")?
            .execute(params![format!("/registry/pods/peer/pod-{i:05}"), value])?;
        tx.commit()?;
        latencies.push(t.elapsed());
        progress.counter.add(1);
    }
    let elapsed = start.elapsed();
    Ok(PeerResult {
        label: label.to_string(),
        value_bytes,
        inserts: latencies.len(),
        elapsed,
        latency: summarize(&latencies),
    })
}
