//! Times scheduling cycles alone (no API): 100 nodes in 3 zones, then pods scheduled
//! and assumed one after another, as bare pods and as the pods of a service (which
//! spreads them by hostname and zone).
//!
//! `cargo run --release -p rkube-scheduler --example cycles -- [nodes] [pods]`

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Node, Pod};
use scheduler::cache::Cache;
use scheduler::cycle::{schedule_one, CycleState, Outcome};
use scheduler::nodeinfo::PodInfo;
use serde_json::json;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let nodes: usize = args.first().map(|s| s.parse()).transpose()?.unwrap_or(100);
    let pods: usize = args
        .get(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    for service in [false, true] {
        let mut cache = Cache::new();
        for i in 0..nodes {
            let n: Node = serde_json::from_value(json!({
                "metadata": {"name": format!("n{i}"), "labels": {
                    "kubernetes.io/hostname": format!("n{i}"),
                    "topology.kubernetes.io/zone": format!("z{}", i % 3),
                }},
                "status": {
                    "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "250"},
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }))?;
            cache.upsert_node(n);
        }
        if service {
            cache.set_service(
                "default",
                "web",
                Some([("app".to_string(), "web".to_string())].into()),
            );
        }
        let mut st = CycleState::new(1);
        let start = Instant::now();
        let mut bound = 0;
        for i in 0..pods {
            let p: Pod = serde_json::from_value(json!({
                "metadata": {"name": format!("p{i}"), "namespace": "default", "uid": format!("u{i}"), "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
            }))?;
            let info = Arc::new(PodInfo::new(Arc::new(p)));
            if let Outcome::Bind(node) = schedule_one(&cache, &info, &mut st) {
                cache.assume(info, &node);
                bound += 1;
            }
        }
        let took = start.elapsed();
        println!(
            "{} pods ({}) on {nodes} nodes: {bound} bound in {took:?}, {:.0} cycles/s",
            pods,
            if service { "of a service" } else { "bare" },
            pods as f64 / took.as_secs_f64()
        );
    }
    Ok(())
}
