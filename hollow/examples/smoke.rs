// Temporary smoke test against a running server (removed before hand-off).
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or("info".into()))
        .init();
    let kc = kube::config::Kubeconfig::read_from(std::env::var("KUBECONFIG")?)?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    let client = kube::Client::try_from(cfg)?;
    let nodes: usize = std::env::var("NODES").unwrap_or("5".into()).parse()?;
    let npods: usize = std::env::var("PODS").unwrap_or("200".into()).parse()?;
    let hc = hollow::HollowConfig {
        count: nodes,
        pod_cidr_base: std::env::var("BASE").ok(),
        ..Default::default()
    };
    let pre = std::env::var("PRECREATE").is_ok();
    let (fut, handle) = hollow::run_with_handle(client.clone(), hc)?;
    let mut fut = Some(fut);
    let mut run = None;
    if !pre {
        run = Some(tokio::spawn(fut.take().unwrap()));
        let t0 = Instant::now();
        handle.wait_registered().await;
        println!("registered in {:?}", t0.elapsed());
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let t1 = Instant::now();
    let mut creates = futures::stream::iter((0..npods).map(|i| {
        let pods = pods.clone();
        async move {
            let p = Pod {
                metadata: ObjectMeta {
                    name: Some(format!("p{i}")),
                    ..Default::default()
                },
                spec: Some(PodSpec {
                    node_name: Some(format!("hollow-{}", i % nodes)),
                    containers: vec![Container {
                        name: "c".into(),
                        image: Some("nginx".into()),
                        ..Default::default()
                    }],
                    init_containers: (i % 10 == 0).then(|| {
                        vec![Container {
                            name: "i".into(),
                            image: Some("busybox".into()),
                            ..Default::default()
                        }]
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            pods.create(&PostParams::default(), &p).await
        }
    }))
    .buffer_unordered(32);
    use futures::StreamExt;
    while let Some(r) = creates.next().await {
        r?;
    }
    println!("created {npods} pods in {:?}", t1.elapsed());
    let t1 = if let Some(f) = fut.take() {
        let t = Instant::now();
        run = Some(tokio::spawn(f));
        t
    } else { t1 };
    loop {
        let l = pods.list(&ListParams::default()).await?;
        let running = l
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        if running == npods {
            println!("all {npods} Running after {:?}", t1.elapsed());
            let ips: std::collections::HashSet<_> = l
                .items
                .iter()
                .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
                .collect();
            println!("distinct pod IPs: {}", ips.len());
            break;
        }
        if t1.elapsed() > Duration::from_secs(120) {
            anyhow::bail!("only {running} running");
        }
        println!("{running} running after {:?}", t1.elapsed());
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let p0 = pods.get("p0").await?;
    println!("{}", serde_json::to_string_pretty(&p0.status)?);
    // Graceful delete: the hollow node deletes it for good.
    pods.delete("p1", &DeleteParams::default()).await?;
    let t2 = Instant::now();
    while pods.get_opt("p1").await?.is_some() {
        if t2.elapsed() > Duration::from_secs(20) {
            anyhow::bail!("p1 not deleted");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("p1 deleted after {:?}", t2.elapsed());
    // Stop a node: its pods are left alone when deleted.
    assert!(handle.stop_node("hollow-0"));
    pods.delete("p0", &DeleteParams::default()).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "p0 after delete on stopped node: present={}",
        pods.get_opt("p0").await?.is_some()
    );
    assert!(handle.restart_node("hollow-0"));
    let t3 = Instant::now();
    while pods.get_opt("p0").await?.is_some() {
        if t3.elapsed() > Duration::from_secs(20) {
            anyhow::bail!("p0 not deleted after restart");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("p0 deleted after restart in {:?}", t3.elapsed());
    if let Ok(secs) = std::env::var("LINGER") {
        tokio::time::sleep(Duration::from_secs(secs.parse()?)).await;
    }
    run.unwrap().abort();
    Ok(())
}
