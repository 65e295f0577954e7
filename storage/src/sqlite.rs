//! The embedded backend: one SQLite database in WAL mode with `synchronous=FULL`.
//!
//! Layout: one append-only table `kv`, a row per write (the revision is the row id), so
//! the table is both the current state (the newest row of each key) and the history
//! watches and paged lists read. Compaction removes rows that a newer row at or below the
//! compacted revision supersedes, and deletion tombstones.
//!
//! Writes go through one writer thread, which takes every write queued while the previous
//! transaction committed and commits them together (group commit): a write is answered
//! only after the fsync that makes it durable, and concurrent writers share that fsync.
//! Reads use a small pool of read-only connections and see the last committed snapshot.
//! Recent events are kept in an in-memory ring, so watches rarely touch the database.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::{oneshot, watch};

use crate::{
    prefix_end, Event, EventKind, KeyValue, ListOptions, ListPage, Result, Revision, Store,
    StoreError, WatchStream,
};

/// Tuning of the embedded store.
#[derive(Clone, Debug)]
pub struct Options {
    /// Revisions of history kept by automatic compaction, at least.
    pub retain: i64,
    /// Time of history kept by automatic compaction, at least: a revision is compacted away
    /// only once it is older than this *and* more than `retain` revisions old. A paged list
    /// (its continue tokens read at the list's revision) or a watcher that fell behind has
    /// this long before it gets 410 Gone, however fast the cluster writes.
    pub history: Duration,
    /// Automatic compaction runs once history exceeds `retain` by this many revisions.
    pub compact_slack: i64,
    /// Events kept in memory for watchers.
    pub ring: usize,
    /// Read connections.
    pub readers: usize,
    /// Most writes committed in one transaction.
    pub max_batch: usize,
    /// Automatic compaction on or off (tests of history turn it off).
    pub auto_compact: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            // History is for watchers that fell behind the in-memory ring and for paged
            // lists; once the `history` window has passed, keeping at most half the size
            // of a typical live set keeps the database under twice the live data however
            // many updates it takes.
            retain: 250,
            // Upstream compacts etcd every 5 minutes and kine keeps its last 1000 revisions
            // at each 5-minute compaction; a minute is enough for a paged list of 10,000
            // pods under load or a lagging watcher, and bounds what a burst leaves behind.
            history: Duration::from_secs(60),
            compact_slack: 250,
            ring: 1024,
            readers: 4,
            max_batch: 512,
            auto_compact: true,
        }
    }
}

enum Op {
    Create {
        key: String,
        value: Vec<u8>,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Revision,
    },
}

enum Cmd {
    Write(Op, oneshot::Sender<Result<KeyValue>>),
    Compact(Revision, oneshot::Sender<Result<()>>),
}

struct Shared {
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
    /// Last committed revision.
    committed: AtomicI64,
    /// Compacted revision (as last committed).
    compacted: AtomicI64,
    ring: RwLock<VecDeque<Arc<Event>>>,
    ring_cap: usize,
    notify: watch::Sender<Revision>,
}

/// The embedded SQLite store.
pub struct SqliteStore {
    shared: Arc<Shared>,
    writer: std::sync::mpsc::Sender<Cmd>,
}

fn internal(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull => {
            StoreError::Unavailable(format!("the disk holding the database is full: {e}"))
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    rev INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    create_rev INTEGER NOT NULL,
    prev_rev INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS kv_key_rev ON kv(key, rev);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// The newest row of a key.
const GET: &str =
    "SELECT key, value, create_rev, rev, deleted FROM kv WHERE key = ?1 ORDER BY rev DESC LIMIT 1";

fn open_conn(path: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // Plans that do not depend on the values bound: otherwise SQLite re-prepared the
    // `key = ?1 ORDER BY rev DESC LIMIT 1` reads on every run (4 % of the server's CPU at
    // the scale bench), and these queries have one good plan whatever the key.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    if !read_only {
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Checkpoint every 1 MiB of WAL and truncate it back to that size afterwards, so
        // the WAL does not stay at its high-water mark.
        conn.pragma_update(None, "wal_autocheckpoint", 256)?;
        conn.pragma_update(None, "journal_size_limit", 1024 * 1024)?;
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

fn read_meta(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(0))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path, opts: Options) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let conn = open_conn(path, false).map_err(|e| {
            StoreError::Unavailable(format!("cannot open database {}: {e}", path.display()))
        })?;
        conn.execute_batch(SCHEMA).map_err(internal)?;
        let max_rev: i64 = conn
            .query_row("SELECT COALESCE(MAX(rev), 0) FROM kv", [], |r| r.get(0))
            .map_err(internal)?;
        let compacted = read_meta(&conn, "compact_rev").map_err(internal)?;
        let committed = max_rev.max(compacted);

        let mut readers = Vec::new();
        for _ in 0..opts.readers.max(1) {
            readers.push(open_conn(path, true).map_err(internal)?);
        }
        let (notify, _) = watch::channel(committed);
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            readers: Mutex::new(readers),
            committed: AtomicI64::new(committed),
            compacted: AtomicI64::new(compacted),
            ring: RwLock::new(VecDeque::with_capacity(opts.ring.min(64))),
            ring_cap: opts.ring.max(1),
            notify,
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = Writer {
            conn,
            shared: shared.clone(),
            rev: committed,
            opts,
            marks: VecDeque::new(),
            mark_started: Instant::now(),
            last_compact: Instant::now(),
        };
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Internal(format!("cannot start writer thread: {e}")))?;
        Ok(SqliteStore { shared, writer: tx })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    async fn write(&self, op: Op) -> Result<KeyValue> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(Cmd::Write(op, tx))
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?
    }

    /// Runs `f` on this thread with an idle read connection; None when none is idle.
    fn read_now<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Option<Result<T>> {
        let mut conn = self.shared.readers.lock().unwrap().pop()?;
        let out = f(&mut conn);
        self.shared.readers.lock().unwrap().push(conn);
        Some(out)
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Shared) -> Result<T> + Send + 'static,
    {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let conn = shared.readers.lock().unwrap().pop();
            let mut conn = match conn {
                Some(c) => c,
                None => open_conn(&shared.path, true).map_err(internal)?,
            };
            let out = f(&mut conn, &shared);
            shared.readers.lock().unwrap().push(conn);
            out
        })
        .await
        .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?
    }
}

type Row = (String, Vec<u8>, i64, i64);

fn row_kv(r: Row) -> KeyValue {
    KeyValue {
        key: r.0,
        value: r.1,
        create_revision: r.2,
        mod_revision: r.3,
    }
}

/// Reads events after `after` from the database; returns them and the revision read up to.
fn db_events(
    conn: &mut Connection,
    prefix: &str,
    after: Revision,
    upto: Revision,
    limit: usize,
) -> Result<(Vec<Event>, Revision)> {
    let tx = conn.transaction().map_err(internal)?;
    let compacted = read_meta(&tx, "compact_rev").map_err(internal)?;
    if after < compacted {
        return Err(StoreError::Compacted {
            requested: after,
            compacted,
        });
    }
    let end = prefix_end(prefix);
    let mut out = Vec::new();
    let mut reached = upto;
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT rev, key, create_rev, prev_rev, deleted, value FROM kv
                 WHERE rev > ?1 AND rev <= ?2 AND key >= ?3 AND key < ?4
                 ORDER BY rev LIMIT ?5",
            )
            .map_err(internal)?;
        let rows = stmt
            .query_map(params![after, upto, prefix, end, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Vec<u8>>(5)?,
                ))
            })
            .map_err(internal)?;
        let mut prev_stmt = tx
            .prepare_cached("SELECT key, value, create_rev, rev FROM kv WHERE rev = ?1")
            .map_err(internal)?;
        let mut n = 0;
        for row in rows {
            let (rev, key, create_rev, prev_rev, deleted, value) = row.map_err(internal)?;
            n += 1;
            let prev = if prev_rev > 0 {
                prev_stmt
                    .query_row([prev_rev], |r| {
                        Ok(row_kv((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    })
                    .optional()
                    .map_err(internal)?
            } else {
                None
            };
            let kind = if deleted != 0 {
                EventKind::Delete
            } else {
                EventKind::Put
            };
            out.push(Event {
                kind,
                kv: KeyValue {
                    key,
                    value,
                    create_revision: create_rev,
                    mod_revision: rev,
                },
                prev,
            });
            if n == limit {
                reached = rev;
            }
        }
    }
    Ok((out, reached))
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        fn get(conn: &mut Connection, key: &str) -> Result<Option<KeyValue>> {
            let mut stmt = conn.prepare_cached(GET).map_err(internal)?;
            let row = stmt
                .query_row([key], |r| {
                    Ok((
                        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?),
                        r.get::<_, i64>(4)?,
                    ))
                })
                .optional()
                .map_err(internal)?;
            Ok(row.and_then(|(kv, deleted)| (deleted == 0).then(|| row_kv(kv))))
        }
        // A read by key is one prepared lookup of an index in the page cache: it runs on
        // the caller's thread (handing it to a blocking thread cost more than the read)
        // when a connection is free.
        if let Some(got) = self.read_now(|conn| get(conn, key)) {
            return got;
        }
        let key = key.to_string();
        self.read(move |conn, _| get(conn, &key)).await
    }

    async fn list(&self, opts: ListOptions<'_>) -> Result<ListPage> {
        let prefix = opts.prefix.to_string();
        let start_after = opts.start_after.map(str::to_string);
        let revision = opts.revision;
        let limit = opts.limit;
        self.read(move |conn, shared| {
            let current = shared.committed.load(Ordering::Acquire);
            let tx = conn.transaction().map_err(internal)?;
            let compacted = read_meta(&tx, "compact_rev").map_err(internal)?;
            let at = if revision == 0 { current } else { revision };
            if at > current {
                return Err(StoreError::FutureRevision {
                    requested: at,
                    current,
                });
            }
            if at < compacted {
                return Err(StoreError::Compacted {
                    requested: at,
                    compacted,
                });
            }
            let end = prefix_end(&prefix);
            let lower = start_after.clone().unwrap_or_else(|| prefix.clone());
            let cmp = if start_after.is_some() { ">" } else { ">=" };
            let sql = format!(
                "SELECT kv.key, kv.value, kv.create_rev, kv.rev FROM kv
                 JOIN (SELECT MAX(rev) AS r FROM kv WHERE key {cmp} ?1 AND key < ?2 AND rev <= ?3
                       GROUP BY key) m ON kv.rev = m.r
                 WHERE kv.deleted = 0 ORDER BY kv.key LIMIT ?4"
            );
            let fetch = if limit == 0 { -1 } else { limit as i64 + 1 };
            let mut items = {
                let mut stmt = tx.prepare_cached(&sql).map_err(internal)?;
                let rows = stmt
                    .query_map(params![lower, end, at, fetch], |r| {
                        Ok(row_kv((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    })
                    .map_err(internal)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(internal)?
            };
            let more = limit > 0 && items.len() > limit;
            let mut remaining = 0;
            if more {
                items.truncate(limit);
                let count_sql = format!(
                    "SELECT COUNT(*) FROM kv
                     JOIN (SELECT MAX(rev) AS r FROM kv WHERE key {cmp} ?1 AND key < ?2 AND rev <= ?3
                           GROUP BY key) m ON kv.rev = m.r
                     WHERE kv.deleted = 0"
                );
                let total: i64 = tx
                    .prepare_cached(&count_sql)
                    .and_then(|mut st| st.query_row(params![lower, end, at], |r| r.get(0)))
                    .map_err(internal)?;
                remaining = (total.max(0) as u64).saturating_sub(items.len() as u64);
            }
            Ok(ListPage {
                items,
                revision: at,
                more,
                remaining,
            })
        })
        .await
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        let prefix = prefix.to_string();
        self.read(move |conn, _| {
            let end = prefix_end(&prefix);
            let n: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM kv JOIN (SELECT MAX(rev) AS r FROM kv
                     WHERE key >= ?1 AND key < ?2 GROUP BY key) m ON kv.rev = m.r
                     WHERE kv.deleted = 0",
                    params![prefix, end],
                    |r| r.get(0),
                )
                .map_err(internal)?;
            Ok(n as u64)
        })
        .await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        self.write(Op::Create {
            key: key.to_string(),
            value,
        })
        .await
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue> {
        self.write(Op::Update {
            key: key.to_string(),
            value,
            expected,
        })
        .await
    }

    async fn delete(&self, key: &str, expected: Revision) -> Result<KeyValue> {
        self.write(Op::Delete {
            key: key.to_string(),
            expected,
        })
        .await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let compacted = self.shared.compacted.load(Ordering::Acquire);
        if after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted,
            });
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event>>(256);
        let shared = self.shared.clone();
        let prefix = prefix.to_string();
        let mut changed = shared.notify.subscribe();
        let store_reader = SqliteReader {
            shared: shared.clone(),
        };
        tokio::spawn(async move {
            let mut last = after;
            loop {
                let committed = shared.committed.load(Ordering::Acquire);
                if committed <= last {
                    tokio::select! {
                        r = changed.changed() => if r.is_err() { return },
                        _ = tx.closed() => return,
                    }
                    continue;
                }
                let batch = match store_reader.events_after(&prefix, last, committed).await {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                let (events, reached) = batch;
                for ev in events {
                    if tx.send(Ok(ev)).await.is_err() {
                        return;
                    }
                }
                last = reached;
            }
        });
        Ok(Box::pin(tokio_stream_from(rx)))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(Cmd::Compact(revision, tx))
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.shared.committed.load(Ordering::Acquire))
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.shared.compacted.load(Ordering::Acquire))
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

struct SqliteReader {
    shared: Arc<Shared>,
}

impl SqliteReader {
    /// Events under `prefix` after `after` up to `upto`, from the ring when it holds them.
    async fn events_after(
        &self,
        prefix: &str,
        after: Revision,
        upto: Revision,
    ) -> Result<(Vec<Event>, Revision)> {
        {
            let ring = self.shared.ring.read().unwrap();
            if let Some(front) = ring.front() {
                if front.revision() <= after + 1 {
                    let start = (after + 1 - front.revision()) as usize;
                    let mut out = Vec::new();
                    let mut reached = after;
                    for ev in ring.iter().skip(start) {
                        if ev.revision() > upto {
                            break;
                        }
                        reached = ev.revision();
                        if ev.kv.key.starts_with(prefix) {
                            out.push((**ev).clone());
                        }
                    }
                    return Ok((out, reached.max(after)));
                }
            }
        }
        let shared = self.shared.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || {
            let conn = shared.readers.lock().unwrap().pop();
            let mut conn = match conn {
                Some(c) => c,
                None => open_conn(&shared.path, true).map_err(internal)?,
            };
            let out = db_events(&mut conn, &prefix, after, upto, 1000);
            shared.readers.lock().unwrap().push(conn);
            out
        })
        .await
        .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?
    }
}

struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    rev: Revision,
    opts: Options,
    /// (when, the revision then), about one a second over the `history` window: which
    /// revisions are old enough to compact.
    marks: VecDeque<(Instant, Revision)>,
    mark_started: Instant,
    last_compact: Instant,
}

struct Current {
    rev: i64,
    create_rev: i64,
    deleted: bool,
    value: Vec<u8>,
}

impl Writer {
    fn run(mut self, rx: std::sync::mpsc::Receiver<Cmd>) {
        while let Ok(first) = rx.recv() {
            let mut writes = Vec::new();
            let mut compacts = Vec::new();
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                match cmd {
                    Cmd::Write(op, reply) => writes.push((op, reply)),
                    Cmd::Compact(rev, reply) => compacts.push((rev, reply)),
                }
                if writes.len() < self.opts.max_batch {
                    next = rx.try_recv().ok();
                }
            }
            if !writes.is_empty() {
                self.commit_batch(writes);
            }
            for (rev, reply) in compacts {
                let _ = reply.send(self.compact(rev));
            }
            if self.opts.auto_compact {
                self.auto_compact();
            }
        }
    }

    /// Compacts what is both older than `history` and more than `retain` revisions old,
    /// once that is `compact_slack` revisions or more (or 5 minutes have passed).
    fn auto_compact(&mut self) {
        let now = Instant::now();
        let history = self.opts.history;
        let old = if history.is_zero() {
            self.rev
        } else {
            // A mark (t, rev): every revision up to rev was written by t. One mark per
            // second of writes, moved forward while its second lasts.
            match self.marks.back_mut() {
                Some(back) if now.duration_since(self.mark_started) < Duration::from_secs(1) => {
                    *back = (now, self.rev);
                }
                _ => {
                    self.mark_started = now;
                    self.marks.push_back((now, self.rev));
                }
            }
            while self
                .marks
                .get(1)
                .is_some_and(|(t, _)| now.duration_since(*t) >= history)
            {
                self.marks.pop_front();
            }
            match self.marks.front() {
                Some(&(t, rev)) if now.duration_since(t) >= history => rev,
                _ => return,
            }
        };
        let target = old.min(self.rev - self.opts.retain);
        let compacted = self.shared.compacted.load(Ordering::Acquire);
        if target - compacted > self.opts.compact_slack
            || (self.last_compact.elapsed() > Duration::from_secs(300) && target > compacted)
        {
            self.last_compact = now;
            if let Err(e) = self.compact(target) {
                tracing::warn!(error = %e, "automatic compaction failed");
            }
        }
    }

    fn current(tx: &rusqlite::Transaction<'_>, key: &str) -> rusqlite::Result<Option<Current>> {
        let mut stmt = tx.prepare_cached(
            "SELECT rev, create_rev, deleted, value FROM kv WHERE key = ?1 ORDER BY rev DESC LIMIT 1",
        )?;
        stmt.query_row([key], |r| {
            Ok(Current {
                rev: r.get(0)?,
                create_rev: r.get(1)?,
                deleted: r.get::<_, i64>(2)? != 0,
                value: r.get(3)?,
            })
        })
        .optional()
    }

    fn apply(tx: &rusqlite::Transaction<'_>, rev: Revision, op: &Op) -> Result<Event> {
        let key = match op {
            Op::Create { key, .. } | Op::Update { key, .. } | Op::Delete { key, .. } => key,
        };
        let cur = Self::current(tx, key).map_err(internal)?;
        let live = cur.as_ref().filter(|c| !c.deleted);
        let prev = live.map(|c| KeyValue {
            key: key.clone(),
            value: c.value.clone(),
            create_revision: c.create_rev,
            mod_revision: c.rev,
        });
        let (create_rev, prev_rev, deleted, value, kind) = match op {
            Op::Create { value, .. } => {
                if live.is_some() {
                    return Err(StoreError::AlreadyExists(key.clone()));
                }
                (rev, 0, false, value.clone(), EventKind::Put)
            }
            Op::Update {
                value, expected, ..
            } => {
                let c = live.ok_or_else(|| StoreError::NotFound(key.clone()))?;
                if *expected != 0 && c.rev != *expected {
                    return Err(StoreError::Conflict {
                        key: key.clone(),
                        expected: *expected,
                        current: c.rev,
                    });
                }
                (c.create_rev, c.rev, false, value.clone(), EventKind::Put)
            }
            Op::Delete { expected, .. } => {
                let c = live.ok_or_else(|| StoreError::NotFound(key.clone()))?;
                if *expected != 0 && c.rev != *expected {
                    return Err(StoreError::Conflict {
                        key: key.clone(),
                        expected: *expected,
                        current: c.rev,
                    });
                }
                (
                    c.create_rev,
                    c.rev,
                    true,
                    c.value.clone(),
                    EventKind::Delete,
                )
            }
        };
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO kv (rev, key, create_rev, prev_rev, deleted, value)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(internal)?;
        stmt.execute(params![
            rev,
            key,
            create_rev,
            prev_rev,
            deleted as i64,
            value
        ])
        .map_err(internal)?;
        Ok(Event {
            kind,
            kv: KeyValue {
                key: key.clone(),
                value,
                create_revision: create_rev,
                mod_revision: rev,
            },
            prev,
        })
    }

    fn commit_batch(&mut self, writes: Vec<(Op, oneshot::Sender<Result<KeyValue>>)>) {
        let tx = match self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        {
            Ok(tx) => tx,
            Err(e) => {
                let err = internal(e);
                for (_, reply) in writes {
                    let _ = reply.send(Err(err.clone()));
                }
                return;
            }
        };
        let mut rev = self.rev;
        let mut results = Vec::with_capacity(writes.len());
        for (op, reply) in writes {
            match Self::apply(&tx, rev + 1, &op) {
                Ok(ev) => {
                    rev += 1;
                    results.push((Ok(ev), reply));
                }
                Err(e) => results.push((Err(e), reply)),
            }
        }
        if let Err(e) = tx.commit() {
            let err = internal(e);
            tracing::error!(error = %err, "database commit failed; writes refused");
            for (_, reply) in results {
                let _ = reply.send(Err(err.clone()));
            }
            return;
        }
        self.rev = rev;
        let mut events = Vec::new();
        let mut replies = Vec::with_capacity(results.len());
        for (res, reply) in results {
            match res {
                Ok(ev) => {
                    let kv = ev.kv.clone();
                    events.push(Arc::new(ev));
                    replies.push((Ok(kv), reply));
                }
                Err(e) => replies.push((Err(e), reply)),
            }
        }
        if !events.is_empty() {
            let mut ring = self.shared.ring.write().unwrap();
            for ev in events {
                if ring.len() == self.shared.ring_cap {
                    ring.pop_front();
                }
                ring.push_back(ev);
            }
        }
        self.shared.committed.store(rev, Ordering::Release);
        self.shared.notify.send_replace(rev);
        for (res, reply) in replies {
            let _ = reply.send(res);
        }
    }

    fn compact(&mut self, revision: Revision) -> Result<()> {
        let compacted = self.shared.compacted.load(Ordering::Acquire);
        if revision <= compacted {
            return Ok(());
        }
        if revision > self.rev {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current: self.rev,
            });
        }
        loop {
            let tx = self.conn.transaction().map_err(internal)?;
            tx.execute(
                "INSERT INTO meta (name, value) VALUES ('compact_rev', ?1)
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                [revision],
            )
            .map_err(internal)?;
            let n = tx
                .execute(
                    "DELETE FROM kv WHERE rev IN (
                       SELECT rev FROM kv WHERE rev <= ?1 AND (deleted = 1 OR EXISTS (
                         SELECT 1 FROM kv k2 WHERE k2.key = kv.key AND k2.rev > kv.rev AND k2.rev <= ?1))
                       LIMIT 5000)",
                    [revision],
                )
                .map_err(internal)?;
            tx.commit().map_err(internal)?;
            self.shared.compacted.store(revision, Ordering::Release);
            if n < 5000 {
                break;
            }
        }
        let _ = self.conn.execute_batch("PRAGMA incremental_vacuum;");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_by_key_is_prepared_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db"), Options::default()).unwrap();
        for i in 0..20 {
            let key = format!("/registry/pods/ns/p{}", i % 3);
            if i < 3 {
                store.create(&key, b"{}".to_vec()).await.unwrap();
            } else {
                store.update(&key, b"{}".to_vec(), 0).await.unwrap();
            }
            store.get(&key).await.unwrap().unwrap();
        }
        let (runs, reprepared) = store
            .read(|conn, _| {
                let stmt = conn.prepare_cached(GET).map_err(internal)?;
                Ok((
                    stmt.get_status(rusqlite::StatementStatus::Run),
                    stmt.get_status(rusqlite::StatementStatus::RePrepare),
                ))
            })
            .await
            .unwrap();
        assert!(runs >= 20, "the reads ran on this connection ({runs})");
        assert_eq!(reprepared, 0, "re-prepared in {runs} runs");
    }
}
