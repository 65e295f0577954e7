//! The storage contract: one suite, run against every backend.

use std::sync::Arc;

use futures::StreamExt;
use storage::{EventKind, ListOptions, Store, StoreError};

mod etcd_server;

/// A backend under test: a fresh store, and a way to reopen it on the same state.
trait Backend {
    async fn open(&self) -> Arc<dyn Store>;
}

struct Sqlite {
    dir: tempfile::TempDir,
    opts: storage::sqlite::Options,
}

impl Sqlite {
    fn new() -> Self {
        Self::with(storage::sqlite::Options {
            auto_compact: false,
            ..Default::default()
        })
    }
    fn with(opts: storage::sqlite::Options) -> Self {
        Sqlite {
            dir: tempfile::tempdir().unwrap(),
            opts,
        }
    }
}

impl Backend for Sqlite {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(
            storage::sqlite::SqliteStore::open(
                &self.dir.path().join("state.db"),
                self.opts.clone(),
            )
            .unwrap(),
        )
    }
}

/// Its own etcd per test (revisions are global to an etcd); reopening is a new client.
struct Etcd {
    server: etcd_server::EtcdServer,
}

impl Etcd {
    async fn start() -> Self {
        Etcd {
            server: etcd_server::EtcdServer::start().await,
        }
    }
}

impl Backend for Etcd {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(self.server.store().await)
    }
}

fn list_all(prefix: &str) -> ListOptions<'_> {
    ListOptions {
        prefix,
        ..Default::default()
    }
}

async fn crud(s: Arc<dyn Store>) {
    let a = s.create("/r/a", b"1".to_vec()).await.unwrap();
    assert_eq!(a.create_revision, a.mod_revision);
    assert_eq!(s.current_revision().await.unwrap(), a.mod_revision);
    assert_eq!(
        s.create("/r/a", b"2".to_vec()).await,
        Err(StoreError::AlreadyExists("/r/a".into()))
    );
    let got = s.get("/r/a").await.unwrap().unwrap();
    assert_eq!(got, a);
    let b = s
        .update("/r/a", b"2".to_vec(), a.mod_revision)
        .await
        .unwrap();
    assert_eq!(b.mod_revision, a.mod_revision + 1);
    assert_eq!(b.create_revision, a.create_revision);
    match s.update("/r/a", b"3".to_vec(), a.mod_revision).await {
        Err(StoreError::Conflict { current, .. }) => assert_eq!(current, b.mod_revision),
        other => panic!("stale update answered {other:?}"),
    }
    assert!(matches!(
        s.update("/r/missing", b"x".to_vec(), 1).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.delete("/r/a", a.mod_revision).await,
        Err(StoreError::Conflict { .. })
    ));
    let d = s.delete("/r/a", b.mod_revision).await.unwrap();
    assert_eq!(d.value, b"2");
    assert!(s.get("/r/a").await.unwrap().is_none());
    assert!(matches!(
        s.delete("/r/a", 0).await,
        Err(StoreError::NotFound(_))
    ));
    // A deleted key can be created again, as a new incarnation.
    let again = s.create("/r/a", b"4".to_vec()).await.unwrap();
    assert!(again.create_revision > d.mod_revision);
}

async fn paged_list_is_consistent(s: Arc<dyn Store>) {
    for i in 0..10 {
        s.create(&format!("/p/{i:02}"), vec![i]).await.unwrap();
    }
    s.create("/q/other", vec![]).await.unwrap();
    let first = s
        .list(ListOptions {
            prefix: "/p/",
            limit: 4,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(first.items.len(), 4);
    assert!(first.more);
    assert_eq!(first.remaining, 6, "keys left after the first page");
    // Writes after the first page are not seen by later pages of the same list.
    let k = s.get("/p/05").await.unwrap().unwrap();
    s.update("/p/05", vec![99], k.mod_revision).await.unwrap();
    s.create("/p/99", vec![]).await.unwrap();
    let mut keys: Vec<String> = first.items.iter().map(|kv| kv.key.clone()).collect();
    let mut after = keys.last().cloned();
    loop {
        let page = s
            .list(ListOptions {
                prefix: "/p/",
                start_after: after.as_deref(),
                revision: first.revision,
                limit: 4,
            })
            .await
            .unwrap();
        for kv in &page.items {
            if kv.key == "/p/05" {
                assert_eq!(kv.value, vec![5], "page read the newer value");
            }
        }
        keys.extend(page.items.iter().map(|kv| kv.key.clone()));
        // Counted at the list's revision: /p/99, created since, is not among them.
        assert_eq!(page.remaining as usize, 10 - keys.len());
        if !page.more {
            break;
        }
        after = keys.last().cloned();
    }
    let want: Vec<String> = (0..10).map(|i| format!("/p/{i:02}")).collect();
    assert_eq!(keys, want);
    assert_eq!(s.count("/p/").await.unwrap(), 11);
    let now = s.list(list_all("/p/")).await.unwrap();
    assert_eq!(now.items.len(), 11);
}

async fn watch_sees_every_change_in_order(s: Arc<dyn Store>) {
    let start = s.current_revision().await.unwrap();
    let mut w = s.watch("/w/", start).await.unwrap();
    let a = s.create("/w/a", b"1".to_vec()).await.unwrap();
    s.create("/x/ignored", b"1".to_vec()).await.unwrap();
    let a2 = s
        .update("/w/a", b"2".to_vec(), a.mod_revision)
        .await
        .unwrap();
    let d = s.delete("/w/a", a2.mod_revision).await.unwrap();
    let evs: Vec<_> = (&mut w).take(3).collect().await;
    let evs: Vec<_> = evs.into_iter().map(Result::unwrap).collect();
    assert_eq!(evs[0].kind, EventKind::Put);
    assert_eq!(evs[0].kv, a);
    assert!(evs[0].prev.is_none());
    assert_eq!(evs[1].kv, a2);
    assert_eq!(evs[1].prev.as_ref().unwrap().value, b"1");
    assert_eq!(evs[2].kind, EventKind::Delete);
    assert_eq!(evs[2].kv.mod_revision, d.mod_revision);
    assert_eq!(evs[2].kv.value, b"2");
    // A watch from an earlier revision replays the same events.
    let replay: Vec<_> = s.watch("/w/", start).await.unwrap().take(3).collect().await;
    let replay: Vec<_> = replay.into_iter().map(Result::unwrap).collect();
    assert_eq!(replay, evs);
}

async fn concurrent_writers_get_distinct_revisions(s: Arc<dyn Store>) {
    let start = s.current_revision().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for j in 0..20 {
                revs.push(
                    s.create(&format!("/c/{i}-{j}"), vec![0; 256])
                        .await
                        .unwrap()
                        .mod_revision,
                );
            }
            revs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let want: Vec<i64> = (start + 1..=start + 640).collect();
    assert_eq!(all, want, "revisions are one contiguous counter");
    assert_eq!(s.list(list_all("/c/")).await.unwrap().items.len(), 640);
}

async fn compaction_answers_gone(s: Arc<dyn Store>) {
    let a = s.create("/k/a", b"1".to_vec()).await.unwrap();
    let mut rev = a.mod_revision;
    for i in 0..10u8 {
        rev = s.update("/k/a", vec![i], rev).await.unwrap().mod_revision;
    }
    s.create("/k/b", b"b".to_vec()).await.unwrap();
    s.compact(rev).await.unwrap();
    assert_eq!(s.compacted_revision().await.unwrap(), rev);
    assert!(matches!(
        s.watch("/k/", a.mod_revision).await,
        Err(StoreError::Compacted { .. })
    ));
    assert!(matches!(
        s.list(ListOptions {
            prefix: "/k/",
            revision: a.mod_revision,
            ..Default::default()
        })
        .await,
        Err(StoreError::Compacted { .. })
    ));
    // Current values survive; a watch from the compacted revision still works.
    assert_eq!(s.get("/k/a").await.unwrap().unwrap().value, vec![9]);
    assert_eq!(s.list(list_all("/k/")).await.unwrap().items.len(), 2);
    let mut w = s.watch("/k/", rev).await.unwrap();
    let ev = w.next().await.unwrap().unwrap();
    assert_eq!(ev.kv.key, "/k/b");
}

async fn edge_cases(s: Arc<dyn Store>) {
    let a = s.create("/e/a", b"1".to_vec()).await.unwrap();
    // Unconditional writes (expected 0) need the key to exist.
    let a2 = s.update("/e/a", b"2".to_vec(), 0).await.unwrap();
    assert_eq!(a2.create_revision, a.create_revision);
    assert_eq!(a2.mod_revision, a.mod_revision + 1);
    assert_eq!(
        s.update("/e/missing", b"x".to_vec(), 0).await,
        Err(StoreError::NotFound("/e/missing".into()))
    );
    assert_eq!(
        s.delete("/e/missing", 7).await,
        Err(StoreError::NotFound("/e/missing".into()))
    );
    assert_eq!(
        s.update("/e/a", b"3".to_vec(), a.mod_revision).await,
        Err(StoreError::Conflict {
            key: "/e/a".into(),
            expected: a.mod_revision,
            current: a2.mod_revision,
        })
    );
    assert_eq!(
        s.delete("/e/a", a.mod_revision).await,
        Err(StoreError::Conflict {
            key: "/e/a".into(),
            expected: a.mod_revision,
            current: a2.mod_revision,
        })
    );
    // Paging boundaries.
    s.create("/e/b", b"b".to_vec()).await.unwrap();
    let exact = s
        .list(ListOptions {
            prefix: "/e/",
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(exact.items.len(), 2);
    assert!(!exact.more, "a page holding the last key says no more");
    let after_last = s
        .list(ListOptions {
            prefix: "/e/",
            start_after: Some("/e/b"),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(after_last.items.is_empty() && !after_last.more);
    let current = s.current_revision().await.unwrap();
    assert_eq!(exact.revision, current);
    assert_eq!(
        s.list(ListOptions {
            prefix: "/e/",
            revision: current + 10,
            ..Default::default()
        })
        .await
        .unwrap_err(),
        StoreError::FutureRevision {
            requested: current + 10,
            current,
        }
    );
    // A watch from a future revision waits for it.
    let mut w = s.watch("/e/", current + 1).await.unwrap();
    let b = s.update("/e/b", b"b2".to_vec(), 0).await.unwrap();
    assert_eq!(b.mod_revision, current + 1);
    // Delete: the answer and the event carry the last value and the incarnation.
    let d = s.delete("/e/a", 0).await.unwrap();
    assert_eq!(d.key, "/e/a");
    assert_eq!(d.value, b"2");
    assert_eq!(d.create_revision, a.create_revision);
    assert_eq!(d.mod_revision, current + 2);
    let ev = w.next().await.unwrap().unwrap();
    assert_eq!(ev.kind, EventKind::Delete);
    assert_eq!(ev.kv, d);
    assert_eq!(ev.prev, Some(a2));
    assert_eq!(s.count("/e/").await.unwrap(), 1);
    assert_eq!(s.get("/e/a").await.unwrap(), None);
}

macro_rules! contract {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            #[tokio::test]
            async fn crud() {
                let b = $make;
                super::crud(b.open().await).await
            }
            #[tokio::test]
            async fn paged_list_is_consistent() {
                let b = $make;
                super::paged_list_is_consistent(b.open().await).await
            }
            #[tokio::test]
            async fn watch_sees_every_change_in_order() {
                let b = $make;
                super::watch_sees_every_change_in_order(b.open().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_writers_get_distinct_revisions() {
                let b = $make;
                super::concurrent_writers_get_distinct_revisions(b.open().await).await
            }
            #[tokio::test]
            async fn edge_cases() {
                let b = $make;
                super::edge_cases(b.open().await).await
            }
            #[tokio::test]
            async fn compaction_answers_gone() {
                let b = $make;
                super::compaction_answers_gone(b.open().await).await
            }
            #[tokio::test]
            async fn state_and_watches_survive_reopen() {
                let b = $make;
                let s = b.open().await;
                let start = s.current_revision().await.unwrap();
                let a = s.create("/r/a", b"1".to_vec()).await.unwrap();
                s.update("/r/a", b"2".to_vec(), a.mod_revision)
                    .await
                    .unwrap();
                drop(s);
                let s = b.open().await;
                assert_eq!(s.get("/r/a").await.unwrap().unwrap().value, b"2");
                assert_eq!(s.current_revision().await.unwrap(), a.mod_revision + 1);
                let evs: Vec<_> = s.watch("/r/", start).await.unwrap().take(2).collect().await;
                assert_eq!(evs[1].as_ref().unwrap().prev.as_ref().unwrap().value, b"1");
                let next = s.create("/r/b", vec![]).await.unwrap();
                assert_eq!(next.mod_revision, a.mod_revision + 2);
            }
        }
    };
}

contract!(sqlite, Sqlite::new());
contract!(etcd, Etcd::start().await);

/// Automatic compaction keeps the database near the size of the live data.
#[tokio::test]
async fn sqlite_auto_compaction_bounds_history() {
    let b = Sqlite::with(storage::sqlite::Options {
        retain: 100,
        compact_slack: 50,
        history: std::time::Duration::ZERO,
        ..Default::default()
    });
    let s = b.open().await;
    let mut revs = Vec::new();
    for i in 0..20 {
        revs.push(
            s.create(&format!("/h/{i}"), vec![0; 512])
                .await
                .unwrap()
                .mod_revision,
        );
    }
    for round in 0..50 {
        for (i, rev) in revs.iter_mut().enumerate() {
            *rev = s
                .update(&format!("/h/{i}"), vec![round; 512], *rev)
                .await
                .unwrap()
                .mod_revision;
        }
    }
    let current = s.current_revision().await.unwrap();
    let compacted = s.compacted_revision().await.unwrap();
    assert!(
        current - compacted <= 150,
        "history not compacted: {compacted}..{current}"
    );
    let conn = rusqlite_count(&b.dir.path().join("state.db"));
    assert!(conn <= 20 + 150, "{conn} rows kept for 20 live keys");
}

fn rusqlite_count(path: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT COUNT(*) FROM kv", [], |r| r.get(0))
        .unwrap()
}

/// Automatic compaction keeps at least `history` of revisions, however many are written:
/// a paged list can be continued at its revision and a watch can resume from it within
/// that window; once the window has passed, the next write compacts.
#[tokio::test]
async fn sqlite_auto_compaction_keeps_the_history_window() {
    let window = std::time::Duration::from_secs(2);
    let b = Sqlite::with(storage::sqlite::Options {
        retain: 10,
        compact_slack: 10,
        history: window,
        ..Default::default()
    });
    let s = b.open().await;
    let started = std::time::Instant::now();
    for i in 0..20 {
        s.create(&format!("/w/{i:02}"), vec![0; 64]).await.unwrap();
    }
    let first = s
        .list(ListOptions {
            prefix: "/w/",
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    // Far more writes than `retain` + `compact_slack`.
    for round in 0..30u8 {
        for i in 0..20 {
            let key = format!("/w/{i:02}");
            let cur = s.get(&key).await.unwrap().unwrap();
            s.update(&key, vec![round; 64], cur.mod_revision)
                .await
                .unwrap();
        }
    }
    assert!(
        started.elapsed() < window,
        "the writes took longer than the window: the machine is too slow for this test"
    );
    assert_eq!(
        s.compacted_revision().await.unwrap(),
        0,
        "compacted within the window"
    );
    let rest = s
        .list(ListOptions {
            prefix: "/w/",
            start_after: first.items.last().map(|kv| kv.key.as_str()),
            revision: first.revision,
            limit: 0,
        })
        .await
        .expect("a paged list continues at its revision within the window");
    assert_eq!(first.items.len() + rest.items.len(), 20);
    assert!(rest.items.iter().all(|kv| kv.value == vec![0; 64]));

    // After the window, a write compacts what is older than it (the writer compacts after
    // answering it, before it takes the next write: the second write orders the check).
    tokio::time::sleep(window + std::time::Duration::from_millis(100)).await;
    s.create("/x/1", vec![1]).await.unwrap();
    let head = s.create("/x/2", vec![1]).await.unwrap().mod_revision;
    let compacted = s.compacted_revision().await.unwrap();
    assert!(
        compacted > first.revision && compacted <= head - 10,
        "compacted to {compacted} (list at {}, head {head})",
        first.revision
    );
}
