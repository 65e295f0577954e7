//! Compaction, through the storage crate: 1000 keys of 1 KiB in a `SqliteStore` with default
//! options, then many updates round-robin; the database's size against the live data, and
//! how long listing every key takes, before and after.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use storage::sqlite::{Options, SqliteStore};
use storage::{ListOptions, Revision, Store};

use crate::support::progress::{note, phase, Counter, Progress};
use crate::support::server::temp_dir;
use crate::support::stats::{mib, rate, summarize, Summary};

const KEYS: usize = 1000;
const VALUE_BYTES: usize = 1024;
/// Concurrent writers; each owns the keys `w, w + WORKERS, …` so no two race on a key.
pub const WORKERS: usize = 64;
const PREFIX: &str = "/registry/bench/";
/// Timed lists of all keys per snapshot.
const LISTS: usize = 200;
const LIST_TIME: Duration = Duration::from_secs(60);
/// The update loop stops here whatever the count asked for.
const MAX_TIME: Duration = Duration::from_secs(600);
/// Updates when `RKUBE_BENCH_UPDATES` is not set.
pub const DEFAULT_UPDATES: u64 = 1_000_000;

pub struct Snapshot {
    pub db_bytes: u64,
    pub wal_bytes: u64,
    pub live_bytes: u64,
    pub rows: i64,
    pub free_pages: i64,
    pub pages: i64,
    pub revision: Revision,
    pub compacted: Revision,
    pub list: Summary,
}

impl Snapshot {
    pub fn json(&self) -> Value {
        json!({
            "db_mib": mib(self.db_bytes),
            "wal_mib": mib(self.wal_bytes),
            "live_mib": mib(self.live_bytes),
            "rows": self.rows,
            "pages": self.pages,
            "free_pages": self.free_pages,
            "revision": self.revision,
            "compacted_revision": self.compacted,
            "list_all_keys": self.list.json(),
        })
    }
}

pub struct CompactionResult {
    pub requested: u64,
    pub updates: u64,
    pub elapsed: Duration,
    pub before: Snapshot,
    pub after: Snapshot,
}

impl CompactionResult {
    pub fn json(&self) -> Value {
        json!({
            "keys": KEYS,
            "value_bytes": VALUE_BYTES,
            "writers": WORKERS,
            "updates_requested": self.requested,
            "updates_done": self.updates,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "updates_per_s": rate(self.updates as usize, self.elapsed),
            "before": self.before.json(),
            "after": self.after.json(),
        })
    }
}

fn key(i: usize) -> String {
    format!("{PREFIX}key-{i:04}")
}

/// A 1 KiB JSON-ish value that differs per key and update.
fn value(i: usize, n: u64) -> Vec<u8> {
    let mut v = format!("{{\"key\":{i},\"update\":{n},\"data\":\"").into_bytes();
    v.resize(VALUE_BYTES - 2, b'x');
    v.extend_from_slice(b"\"}");
    v
}

fn wal_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

async fn snapshot(store: &SqliteStore, path: &Path) -> Result<Snapshot> {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let (db_bytes, wal_bytes) = (size(path), size(&wal_path(path)));
    let (rows, pages, free_pages) = {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let q = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
        (
            q("SELECT COUNT(*) FROM kv")?,
            q("PRAGMA page_count")?,
            q("PRAGMA freelist_count")?,
        )
    };
    let opts = ListOptions {
        prefix: PREFIX,
        ..Default::default()
    };
    let page = store.list(opts.clone()).await?;
    anyhow::ensure!(page.items.len() == KEYS, "{} keys listed", page.items.len());
    let live_bytes = page.items.iter().map(|kv| kv.value.len() as u64).sum();
    let deadline = Instant::now() + LIST_TIME;
    let mut lists = Vec::with_capacity(LISTS);
    for _ in 0..LISTS {
        if Instant::now() >= deadline {
            break;
        }
        let t = Instant::now();
        store.list(opts.clone()).await?;
        lists.push(t.elapsed());
    }
    let s = Snapshot {
        db_bytes,
        wal_bytes,
        live_bytes,
        rows,
        pages,
        free_pages,
        revision: store.current_revision().await?,
        compacted: store.compacted_revision().await?,
        list: summarize(&lists),
    };
    note(&format!(
        "db {:.2} MiB + wal {:.2} MiB for {:.2} MiB live ({} rows, revision {}, compacted {}); list p99 {:.2} ms",
        mib(s.db_bytes),
        mib(s.wal_bytes),
        mib(s.live_bytes),
        s.rows,
        s.revision,
        s.compacted,
        s.list.p99_ms
    ));
    Ok(s)
}

/// Creates worker `w`'s keys; their revisions.
async fn create_keys(store: Arc<SqliteStore>, w: usize) -> Result<Vec<(usize, Revision)>> {
    let mut own = Vec::new();
    for i in (w..KEYS).step_by(WORKERS) {
        let kv = store.create(&key(i), value(i, 0)).await?;
        own.push((i, kv.mod_revision));
    }
    Ok(own)
}

/// `quota` updates of worker `w`'s keys in turn, each conditional on the last revision.
async fn update_keys(
    store: Arc<SqliteStore>,
    mut own: Vec<(usize, Revision)>,
    quota: u64,
    done: Counter,
    deadline: Instant,
) -> Result<u64> {
    let mut n = 0;
    while n < quota && Instant::now() < deadline {
        for (i, rev) in own.iter_mut() {
            if n == quota {
                break;
            }
            n += 1;
            let kv = store
                .update(&key(*i), value(*i, n), *rev)
                .await
                .with_context(|| format!("update {n} of {}", key(*i)))?;
            *rev = kv.mod_revision;
            done.add(1);
        }
    }
    Ok(n)
}

pub async fn run(updates: u64) -> Result<CompactionResult> {
    phase(&format!(
        "compaction: SqliteStore (default options), {KEYS} keys of {VALUE_BYTES} B"
    ));
    let dir = temp_dir()?;
    let path = dir.path().join("state.db");
    let store = Arc::new(SqliteStore::open(&path, Options::default())?);
    let creators = (0..WORKERS).map(|w| tokio::spawn(create_keys(store.clone(), w)));
    let mut owned = Vec::new();
    for c in futures::future::join_all(creators).await {
        owned.push(c??);
    }
    let before = snapshot(&store, &path).await?;

    phase(&format!(
        "compaction: {updates} updates round-robin ({WORKERS} concurrent writers)"
    ));
    let progress = Progress::start("updates", updates);
    let start = Instant::now();
    let deadline = start + MAX_TIME;
    let per = updates / WORKERS as u64;
    let extra = updates % WORKERS as u64;
    let workers = owned.into_iter().enumerate().map(|(w, own)| {
        let quota = per + u64::from((w as u64) < extra);
        tokio::spawn(update_keys(
            store.clone(),
            own,
            quota,
            progress.counter.clone(),
            deadline,
        ))
    });
    let mut done = 0;
    for w in futures::future::join_all(workers).await {
        done += w??;
    }
    let elapsed = start.elapsed();
    drop(progress);
    note(&format!(
        "{done} updates in {:.1} s ({:.0}/s)",
        elapsed.as_secs_f64(),
        rate(done as usize, elapsed)
    ));
    // Compaction keeps at least `history` (a minute) of revisions: what the database holds
    // once that window has passed is the steady state measured. The first write after it
    // compacts; the second is answered only after that compaction (one writer thread).
    let window = Options::default().history;
    note(&format!(
        "waiting {} s for the history window to pass",
        window.as_secs() + 2
    ));
    tokio::time::sleep(window + Duration::from_secs(2)).await;
    for i in 0..2 {
        store
            .create(&format!("/bench/after-window/{i}"), vec![0; 16])
            .await?;
    }
    let after = snapshot(&store, &path).await?;
    Ok(CompactionResult {
        requested: updates,
        updates: done,
        elapsed,
        before,
        after,
    })
}
