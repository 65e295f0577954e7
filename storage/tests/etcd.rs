//! What only the etcd backend has: connecting, TLS, failures of etcd, compaction made by
//! others, automatic compaction shared by several servers, the key prefix.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use storage::etcd::{EtcdOptions, EtcdStore};
use storage::{ListOptions, Store, StoreError, TlsFiles};

mod etcd_server;
use etcd_server::EtcdServer;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn unavailable(r: Result<impl Sized, StoreError>) -> String {
    match r {
        Err(StoreError::Unavailable(m)) => m,
        Err(e) => panic!("expected Unavailable, got {e:?}"),
        Ok(_) => panic!("expected Unavailable, got a success"),
    }
}

#[tokio::test]
async fn connect_fails_fast_and_says_what_to_check() {
    let port = free_port();
    let ep = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let msg = unavailable(
        EtcdStore::connect(EtcdOptions {
            endpoints: vec![ep.clone()],
            connect_timeout: Duration::from_secs(2),
            ..Default::default()
        })
        .await,
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(msg.contains(&ep), "{msg}");
    assert!(msg.contains("check that etcd is running"), "{msg}");

    // Through `storage::open`, with the default timeouts: still bounded.
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let msg = unavailable(storage::open(Some(&ep), &TlsFiles::default(), dir.path()).await);
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(msg.contains(&ep), "{msg}");
}

#[tokio::test]
async fn open_checks_its_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let msg = unavailable(
        storage::open(
            Some("https://127.0.0.1:1"),
            &TlsFiles::default(),
            dir.path(),
        )
        .await,
    );
    assert!(msg.contains("CA"), "{msg}");
    let tls = TlsFiles {
        ca_file: Some(dir.path().join("ca.pem")),
        ..Default::default()
    };
    let msg = unavailable(storage::open(Some("http://127.0.0.1:1"), &tls, dir.path()).await);
    assert!(msg.contains("https://"), "{msg}");
    let msg = unavailable(
        storage::open(
            Some("http://127.0.0.1:1,https://127.0.0.1:2"),
            &TlsFiles::default(),
            dir.path(),
        )
        .await,
    );
    assert!(msg.contains("mix"), "{msg}");
    let msg = unavailable(storage::open(Some("mysql://x"), &TlsFiles::default(), dir.path()).await);
    assert!(msg.contains("unsupported"), "{msg}");
}

#[tokio::test]
async fn open_chooses_etcd_and_accepts_several_endpoints() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = storage::open(Some(&etcd.endpoint()), &TlsFiles::default(), dir.path())
        .await
        .unwrap();
    let kv = s.create("/registry/x", b"1".to_vec()).await.unwrap();
    // A second endpoint that is down does not stop the client.
    let both = format!("{}, http://127.0.0.1:{}", etcd.endpoint(), free_port());
    let s2 = storage::open(Some(&both), &TlsFiles::default(), dir.path())
        .await
        .unwrap();
    assert_eq!(s2.get("/registry/x").await.unwrap(), Some(kv));
    assert!(
        !dir.path().join("server").exists(),
        "an etcd store writes nothing locally"
    );
}

#[tokio::test]
async fn tls_with_client_certificates() {
    let etcd = EtcdServer::start_tls().await;
    let certs = etcd.tls.as_ref().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsFiles {
        ca_file: Some(certs.ca.clone()),
        cert_file: Some(certs.client_cert.clone()),
        key_file: Some(certs.client_key.clone()),
    };
    assert!(etcd.endpoint().starts_with("https://"));
    let s = storage::open(Some(&etcd.endpoint()), &tls, dir.path())
        .await
        .unwrap();
    let kv = s.create("/registry/tls", b"secret".to_vec()).await.unwrap();
    assert_eq!(s.get("/registry/tls").await.unwrap(), Some(kv.clone()));
    let mut w = s.watch("/registry/", kv.mod_revision - 1).await.unwrap();
    assert_eq!(w.next().await.unwrap().unwrap().kv, kv);

    // Without the client certificate etcd refuses the handshake: a prompt, clear error.
    let mut opts = etcd.options();
    opts.cert_file = None;
    opts.key_file = None;
    opts.connect_timeout = Duration::from_secs(2);
    let msg = unavailable(EtcdStore::connect(opts).await);
    assert!(msg.contains("client certificate"), "{msg}");
}

#[tokio::test]
async fn a_watch_ends_with_unavailable_when_etcd_dies() {
    let mut etcd = EtcdServer::start().await;
    let s = etcd.store().await;
    let start = s.current_revision().await.unwrap();
    let mut w = s.watch("/w/", start).await.unwrap();
    s.create("/w/a", vec![]).await.unwrap();
    assert!(w.next().await.unwrap().is_ok());
    etcd.kill();
    let end = tokio::time::timeout(Duration::from_secs(20), w.next())
        .await
        .expect("the watch noticed nothing");
    let msg = unavailable(end.unwrap());
    assert!(msg.contains(&etcd.endpoint()), "{msg}");
    assert!(tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .is_none());
    // Requests fail promptly too.
    let started = Instant::now();
    unavailable(s.get("/w/a").await);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_quiet_watch_stays_open() {
    // The watch asks for progress after 1 s of silence and gives up 5 s after asking:
    // etcd 3.4 answers, so a quiet watch lives on.
    let etcd = EtcdServer::start().await;
    let s = etcd.store().await;
    let start = s.current_revision().await.unwrap();
    let mut w = s.watch("/q/", start).await.unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let kv = s.create("/q/a", vec![]).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.unwrap().kv, kv);
}

#[tokio::test]
async fn a_hung_etcd_is_noticed() {
    let etcd = EtcdServer::start().await;
    let s = etcd.store().await;
    let start = s.current_revision().await.unwrap();
    let mut w = s.watch("/w/", start).await.unwrap();
    etcd.pause();
    let started = Instant::now();
    // request_timeout is 5 s, the progress interval 1 s.
    let msg = unavailable(s.get("/w/a").await);
    assert!(msg.contains("no answer"), "{msg}");
    let end = tokio::time::timeout(Duration::from_secs(20), w.next())
        .await
        .expect("the watch of a frozen etcd waited silently");
    unavailable(end.unwrap());
    assert!(started.elapsed() < Duration::from_secs(15));
    etcd.resume();
    // The same client works again once etcd answers.
    let kv = s.create("/w/b", vec![]).await.unwrap();
    assert_eq!(s.get("/w/b").await.unwrap(), Some(kv));
}

#[tokio::test]
async fn the_store_recovers_when_etcd_restarts() {
    let mut etcd = EtcdServer::start().await;
    let s = etcd.store().await;
    let a = s.create("/r/a", b"1".to_vec()).await.unwrap();
    etcd.kill();
    unavailable(s.get("/r/a").await);
    etcd.restart().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = loop {
        match s.get("/r/a").await {
            Ok(v) => break v,
            Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("after the restart: {e:?}"),
        }
    };
    assert_eq!(got, Some(a.clone()));
    let b = s
        .update("/r/a", b"2".to_vec(), a.mod_revision)
        .await
        .unwrap();
    assert_eq!(b.mod_revision, a.mod_revision + 1);
}

#[tokio::test]
async fn compaction_by_another_server_is_learned() {
    let etcd = EtcdServer::start().await;
    let one = etcd.store().await;
    let two = etcd.store().await;
    let a = one.create("/k/a", b"1".to_vec()).await.unwrap();
    let mut rev = a.mod_revision;
    for i in 0..5u8 {
        rev = one.update("/k/a", vec![i], rev).await.unwrap().mod_revision;
    }
    assert_eq!(two.compacted_revision().await.unwrap(), 0);
    one.compact(rev).await.unwrap();
    // Compacting again, or below, is not an error (as in SQLite).
    one.compact(rev - 1).await.unwrap();
    two.compact(rev).await.unwrap();
    let fresh = etcd.store().await;
    assert_eq!(fresh.compacted_revision().await.unwrap(), rev);
    let fresh = etcd.store().await;
    assert_eq!(
        fresh.watch("/k/", a.mod_revision).await.err(),
        Some(StoreError::Compacted {
            requested: a.mod_revision,
            compacted: rev
        })
    );
    let fresh = etcd.store().await;
    assert_eq!(
        fresh
            .list(ListOptions {
                prefix: "/k/",
                revision: rev - 1,
                ..Default::default()
            })
            .await
            .err(),
        Some(StoreError::Compacted {
            requested: rev - 1,
            compacted: rev
        })
    );
    assert_eq!(fresh.compacted_revision().await.unwrap(), rev);
    // The compacted revision itself is still readable and watchable from.
    fresh
        .list(ListOptions {
            prefix: "/k/",
            revision: rev,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut w = fresh.watch("/k/", rev).await.unwrap();
    let b = one.create("/k/b", vec![]).await.unwrap();
    assert_eq!(w.next().await.unwrap().unwrap().kv, b);
    let current = one.current_revision().await.unwrap();
    assert_eq!(
        one.compact(current + 5).await,
        Err(StoreError::FutureRevision {
            requested: current + 5,
            current
        })
    );
}

#[tokio::test]
async fn automatic_compaction_is_shared_by_servers() {
    let etcd = EtcdServer::start().await;
    let interval = Duration::from_millis(300);
    let open = || {
        let mut opts = etcd.options();
        opts.compaction_interval = interval;
        EtcdStore::connect(opts)
    };
    let started = Instant::now();
    let one: Arc<dyn Store> = Arc::new(open().await.unwrap());
    let two: Arc<dyn Store> = Arc::new(open().await.unwrap());
    let first = one.create("/h/a", vec![0]).await.unwrap();
    let mut rev = first.mod_revision;
    // Writes, while ticks go by.
    while started.elapsed() < interval * 8 {
        rev = two.update("/h/a", vec![1], rev).await.unwrap().mod_revision;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let compacted = one.compacted_revision().await.unwrap();
    assert!(
        compacted > first.mod_revision,
        "nothing compacted after {elapsed:?} (compacted {compacted})"
    );
    assert!(
        compacted < rev,
        "compaction keeps at least one interval of history"
    );
    assert!(matches!(
        two.list(ListOptions {
            prefix: "/h/",
            revision: first.mod_revision,
            ..Default::default()
        })
        .await,
        Err(StoreError::Compacted { .. })
    ));
    // One compaction per interval between both servers, not one each: the coordination
    // key's version counts successful swaps.
    let raw = raw_version(&etcd, "compact_rev_key").await;
    let ticks = (started.elapsed().as_millis() / interval.as_millis()) as i64;
    assert!(
        raw >= 2 && raw <= ticks + 1,
        "{raw} swaps in {ticks} intervals with two servers"
    );
}

/// The etcd `version` of a raw key (via etcdctl, so independently of the store).
async fn raw_version(etcd: &EtcdServer, key: &str) -> i64 {
    let out = tokio::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", etcd.endpoint()))
        .args(["get", key, "-w", "fields"])
        .output()
        .await
        .expect("etcdctl is not installed: run `make deps`");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("\"Version\" : "))
        .unwrap_or_else(|| panic!("no version in etcdctl's answer: {text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_prefix_separates_stores() {
    let etcd = EtcdServer::start().await;
    let open = |prefix: &str| {
        let mut opts = etcd.options();
        opts.prefix = prefix.to_string();
        EtcdStore::connect(opts)
    };
    let a = open("/a").await.unwrap();
    let b = open("/b").await.unwrap();
    let start = a.current_revision().await.unwrap();
    let mut wb = b.watch("/registry/", start).await.unwrap();
    a.create("/registry/x", b"a".to_vec()).await.unwrap();
    let bx = b.create("/registry/x", b"b".to_vec()).await.unwrap();
    assert_eq!(a.get("/registry/x").await.unwrap().unwrap().value, b"a");
    let page = b
        .list(ListOptions {
            prefix: "/registry/",
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items, vec![bx.clone()]);
    assert_eq!(wb.next().await.unwrap().unwrap().kv, bx);
    assert_eq!(a.count("/registry/").await.unwrap(), 1);
    // The raw key carries the prefix.
    assert_eq!(raw_version(&etcd, "/b/registry/x").await, 1);
}
