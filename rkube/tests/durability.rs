//! Acknowledged writes survive kill -9.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use support::{raw, try_raw, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_creates_survive_kill_9() {
    let mut c = Cluster::start();
    let client = c.client();
    let stop = Arc::new(AtomicBool::new(false));
    let (first_acks, mut acks_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut tasks = Vec::new();
    for w in 0..32 {
        let client = client.clone();
        let stop = stop.clone();
        let first_acks = first_acks.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let name = format!("w{w}-{i}");
                let body = format!(
                    r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","labels":{{"writer":"w{w}"}}}},"data":{{"payload":"{}"}}}}"#,
                    "x".repeat(512 + i % 700)
                );
                let req = try_raw(&client, "POST", "/api/v1/namespaces/default/configmaps", Some("application/json"), body.into_bytes());
                // The server dies under us: an error or no answer is expected then.
                let Ok(Ok((code, bytes))) = tokio::time::timeout(std::time::Duration::from_secs(5), req).await else {
                    break;
                };
                if code == 201 {
                    acked.push((name, bytes));
                    let _ = first_acks.send(());
                }
            }
            acked
        }));
    }
    // Kill once a good number of creates have been acknowledged.
    for _ in 0..2000 {
        acks_rx.recv().await.unwrap();
    }
    c.kill9();
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(acked.len() >= 2000, "{} acknowledged", acked.len());
    c.restart();
    let client = c.client();
    for (name, created) in &acked {
        let (code, got) = raw(
            &client,
            "GET",
            &format!("/api/v1/namespaces/default/configmaps/{name}"),
            None,
            vec![],
        )
        .await;
        assert_eq!(code, 200, "acknowledged {name} is gone after kill -9");
        assert_eq!(
            &got, created,
            "{name} differs from what its create answered"
        );
    }
}
