//! Measures the scheduler against a running cluster (the kubeconfig in `KUBECONFIG`):
//! registers fake ready nodes, creates pods, runs [`scheduler::run`] and reports how fast
//! the pods were bound. Nothing runs on the fake nodes.
//!
//! ```text
//! cargo run --release -p rkube-scheduler --example load -- [nodes] [pods] [backlog|stream|builtin]
//! ```
//! `backlog` (the default) creates every pod first and times the scheduler alone;
//! `stream` starts the scheduler first and times creation and binding together;
//! `builtin` is `stream` with the cluster's own scheduler (none runs here). The
//! namespace `sched-load-<time>` and the nodes `load-node-*` are deleted at the end.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

/// This process's user and system CPU time so far, from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let nodes: usize = args.first().map(|s| s.parse()).transpose()?.unwrap_or(100);
    let pods: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(3000);
    let mode = args.get(2).map(String::as_str).unwrap_or("backlog");
    let stream = mode != "backlog";
    // `builtin`: the server runs the scheduler; this process only creates and counts.
    let builtin = mode == "builtin";
    let client = kube::Client::try_default().await?;
    let ns_name = format!(
        "sched-load-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
    );
    let ns_name: &'static str = Box::leak(ns_name.into_boxed_str());

    let ns_api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": ns_name}}))?;
    let _ = ns_api.create(&PostParams::default(), &ns).await;
    let node_api: Api<Node> = Api::all(client.clone());
    futures::stream::iter(0..nodes)
        .map(|i| {
            let api = node_api.clone();
            async move {
                let n: Node = serde_json::from_value(json!({
                    "metadata": {"name": format!("load-node-{i}"), "labels": {
                        "kubernetes.io/hostname": format!("load-node-{i}"),
                        "topology.kubernetes.io/zone": format!("zone-{}", i % 3),
                    }},
                    "status": {
                        "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "110"},
                        "capacity": {"cpu": "64", "memory": "256Gi", "pods": "110"},
                        "conditions": [{"type": "Ready", "status": "True"}],
                    },
                }))?;
                let _ = api.create(&PostParams::default(), &n).await;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;

    let pod_api: Api<Pod> = Api::namespaced(client.clone(), ns_name);
    let create = |pod_api: Api<Pod>| async move {
        let t = Instant::now();
        futures::stream::iter(0..pods)
            .map(|i| {
                let api = pod_api.clone();
                async move {
                    let p: Pod = serde_json::from_value(json!({
                        "metadata": {"name": format!("p-{i}"), "labels": {"app": "load"}},
                        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
                    }))?;
                    api.create(&PostParams::default(), &p).await?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(64)
            .try_collect::<Vec<_>>()
            .await?;
        anyhow::Ok(t.elapsed())
    };

    let bound = {
        let api = pod_api.clone();
        tokio::spawn(async move {
            let mut seen = HashSet::new();
            let mut w = watcher(api, watcher::Config::default()).boxed();
            while let Some(ev) = w.try_next().await? {
                if let watcher::Event::Apply(p) | watcher::Event::InitApply(p) = ev {
                    if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
                        seen.insert(p.metadata.name.clone().unwrap_or_default());
                        if seen.len() >= pods {
                            return anyhow::Ok(Instant::now());
                        }
                    }
                }
            }
            anyhow::bail!("watch ended")
        })
    };

    let start;
    let sched;
    let cpu_before;
    if stream {
        sched = tokio::spawn(async move {
            if builtin {
                std::future::pending::<()>().await;
            }
            scheduler::run(client.clone()).await
        });
        start = Instant::now();
        cpu_before = cpu_time();
        let took = create(pod_api.clone()).await?;
        println!("created {pods} pods in {took:?}");
    } else {
        let took = create(pod_api.clone()).await?;
        println!(
            "created {pods} pods in {took:?} ({:.0}/s)",
            pods as f64 / took.as_secs_f64()
        );
        start = Instant::now();
        cpu_before = cpu_time();
        sched = tokio::spawn(scheduler::run(client.clone()));
    }
    let done = tokio::time::timeout(Duration::from_secs(600), bound).await???;
    let took = done - start;
    println!(
        "bound {pods} pods on {nodes} nodes in {took:?}: {:.0} pods/s",
        pods as f64 / took.as_secs_f64()
    );
    sched.abort();
    println!(
        "this process used {:?} of CPU meanwhile",
        cpu_time() - cpu_before
    );

    let per_node = pod_api
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .fold(
            std::collections::HashMap::<String, usize>::new(),
            |mut m, n| {
                *m.entry(n).or_default() += 1;
                m
            },
        );
    let (min, max) = per_node
        .values()
        .fold((usize::MAX, 0), |(a, b), v| (a.min(*v), b.max(*v)));
    println!(
        "pods per node: min {min}, max {max}, nodes used {}",
        per_node.len()
    );

    let _ = ns_api.delete(ns_name, &DeleteParams::default()).await;
    for i in 0..nodes {
        let _ = node_api
            .delete(&format!("load-node-{i}"), &DeleteParams::default())
            .await;
    }
    Ok(())
}
