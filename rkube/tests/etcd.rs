//! rkube on a real etcd: several API servers on one etcd, leader hand-over, and a member of
//! a three-member etcd cluster dying under load.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, WatchEvent, WatchParams};
use support::etcd::EtcdCluster;
use support::{json, ok, raw, try_raw, Cluster};

fn on(etcd: &EtcdCluster) -> Cluster {
    Cluster::start_in(
        tempfile::tempdir().unwrap(),
        &["--datastore-endpoint", &etcd.endpoints()],
    )
}

fn kubectl() -> std::path::PathBuf {
    support::kubectls().pop().expect("a kubectl")
}

async fn holder(client: &kube::Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    leases
        .get_opt(controllers_lease())
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec.and_then(|s| s.holder_identity))
}

fn controllers_lease() -> &'static str {
    "kube-controller-manager"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_share_one_etcd_and_hand_over_leadership() {
    let etcd = EtcdCluster::start(1);
    let mut a = on(&etcd);
    let mut b = on(&etcd);
    let (ca, cb) = (a.client(), b.client());

    // kubectl writes through A; a watch on B sees every change, in order.
    let cms_b: Api<ConfigMap> = Api::namespaced(cb.clone(), "default");
    let (_, body) = raw(
        &cb,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        None,
        vec![],
    )
    .await;
    let rv = json(&body)["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let watch = cms_b.watch(&WatchParams::default(), &rv).await.unwrap();
    let k = kubectl();
    for i in 0..5 {
        ok(
            &a.kubectl(
                &k,
                &[
                    "create",
                    "configmap",
                    &format!("c{i}"),
                    "--from-literal=i={i}",
                ],
            ),
            "create through A",
        );
    }
    ok(
        &a.kubectl(&k, &["label", "configmap", "c0", "seen=yes"]),
        "label through A",
    );
    ok(
        &a.kubectl(&k, &["delete", "configmap", "c1"]),
        "delete through A",
    );
    let got: Vec<String> = watch
        .try_filter(support::not_root_ca)
        .take(7)
        .map_ok(|e| match e {
            WatchEvent::Added(o) => format!("ADDED {}", o.metadata.name.unwrap()),
            WatchEvent::Modified(o) => format!("MODIFIED {}", o.metadata.name.unwrap()),
            WatchEvent::Deleted(o) => format!("DELETED {}", o.metadata.name.unwrap()),
            other => format!("{other:?}"),
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        got,
        [
            "ADDED c0",
            "ADDED c1",
            "ADDED c2",
            "ADDED c3",
            "ADDED c4",
            "MODIFIED c0",
            "DELETED c1"
        ]
    );

    // Exactly one of them leads the controllers; killing it hands over within the lease.
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        if let Some(h) = holder(&ca).await {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "nobody took the controllers' lease"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (pa, pb) = (a.pid().unwrap(), b.pid().unwrap());
    let a_leads = leader.ends_with(&format!("_{pa}"));
    assert!(
        a_leads || leader.ends_with(&format!("_{pb}")),
        "lease held by {leader}"
    );
    let (survivor, follower_pid) = if a_leads {
        a.kill9();
        (cb.clone(), pb)
    } else {
        b.kill9();
        (ca.clone(), pa)
    };
    let killed = Instant::now();
    loop {
        if holder(&survivor)
            .await
            .is_some_and(|h| h.ends_with(&format!("_{follower_pid}")))
        {
            break;
        }
        // Lease duration (15 s) plus one retry period (2 s) and a little slack.
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "no hand-over after {:?}",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The new leader's controllers act: a new namespace gets its default service account.
    let k2 = if a_leads { &b } else { &a };
    ok(
        &k2.kubectl(&k, &["create", "namespace", "after-handover"]),
        "create ns",
    );
    let sa = Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(
        survivor.clone(),
        "after-handover",
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while sa.get_opt("default").await.unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the new leader's controllers do not act"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dying_etcd_member_loses_no_acknowledged_write() {
    let mut etcd = EtcdCluster::start(3);
    let c = on(&etcd);
    let client = c.client();
    let stop = Arc::new(AtomicBool::new(false));
    let after_kill = Arc::new(AtomicBool::new(false));
    let ok_after_kill = Arc::new(AtomicUsize::new(0));
    let acked_count = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..32 {
        let (client, stop, after_kill, ok_after_kill, acked_count) = (
            client.clone(),
            stop.clone(),
            after_kill.clone(),
            ok_after_kill.clone(),
            acked_count.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 10_000 {
                let name = format!("w{w}-{i}");
                i += 1;
                let body = format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"i":"{i}"}}}}"#);
                let req = try_raw(&client, "POST", "/api/v1/namespaces/default/configmaps", Some("application/json"), body.into_bytes());
                match tokio::time::timeout(Duration::from_secs(20), req).await {
                    Ok(Ok((201, bytes))) => {
                        if after_kill.load(Ordering::Relaxed) {
                            ok_after_kill.fetch_add(1, Ordering::Relaxed);
                        }
                        acked_count.fetch_add(1, Ordering::Relaxed);
                        acked.push((name, bytes));
                    }
                    // 5xx while etcd elects a new leader; 409 when kube's client retried a
                        // create whose first, unanswered attempt had in fact been applied.
                    Ok(Ok((code, body))) => assert!(
                        code == 503 || code == 504 || code == 500 || code == 409,
                        "unexpected {code}: {}",
                        String::from_utf8_lossy(&body)
                    ),
                    Ok(Err(_)) => {}
                    Err(_) => panic!("a write hung for 20 s while etcd lost a member"),
                }
            }
            acked
        }));
    }
    let wait_for = |n: usize| {
        let acked_count = acked_count.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while acked_count.load(Ordering::Relaxed) < n {
                assert!(
                    Instant::now() < deadline,
                    "writes stalled at {}",
                    acked_count.load(Ordering::Relaxed)
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(300).await;
    etcd.kill9(0);
    after_kill.store(true, Ordering::Relaxed);
    let before = acked_count.load(Ordering::Relaxed);
    wait_for(before + 300).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(
        ok_after_kill.load(Ordering::Relaxed) >= 300,
        "the API stopped answering after the kill"
    );
    for (name, created) in &acked {
        let (code, got) = raw(
            &client,
            "GET",
            &format!("/api/v1/namespaces/default/configmaps/{name}"),
            None,
            vec![],
        )
        .await;
        assert_eq!(code, 200, "acknowledged {name} is missing");
        assert_eq!(
            &got, created,
            "{name} differs from what its create answered"
        );
    }
}

#[test]
fn an_unreachable_etcd_is_a_clear_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args([
            "server",
            "--disable-agent",
            "--https-listen-port",
            "0",
            "--datastore-endpoint",
            "http://127.0.0.1:9",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--write-kubeconfig")
        .arg(dir.path().join("k.yaml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rkube: error: cannot open the datastore")
            && err.contains("http://127.0.0.1:9")
            && err.contains("check that etcd is running"),
        "{err}"
    );
}
