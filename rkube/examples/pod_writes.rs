//! The API server's work for one pod's life at scale, in one process, to count its cost:
//! `--pods N` pods are created (as an RC creates them), bound (as the scheduler binds
//! them) and reported Running (the `pods/status` merge patch a hollow node sends), on
//! the embedded SQLite store, through the in-process API the server's own components use.
//!
//! `--until create|bind|status` stops after a phase, so the cost of each phase is the
//! difference of two runs. Under `valgrind --tool=callgrind` the instruction counts are
//! repeatable, unlike the times on a shared machine:
//!
//! ```text
//! cargo build --release -p rkube --example pod_writes
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
//!     target/release/examples/pod_writes --pods 200 --until status
//! callgrind_annotate /tmp/cg.out | head -40
//! ```

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

// The allocator of the rkube binary: allocation is a good part of the cost counted.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Phase {
    Create,
    Bind,
    Status,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let mut pods = 100usize;
    let mut until = Phase::Status;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--pods", Some(n)) => pods = n.parse().context("--pods takes a number")?,
            ("--until", Some(p)) => {
                until = match p.as_str() {
                    "create" => Phase::Create,
                    "bind" => Phase::Bind,
                    "status" => Phase::Status,
                    other => anyhow::bail!("--until {other}: create, bind or status"),
                }
            }
            _ => anyhow::bail!("usage: pod_writes [--pods N] [--until create|bind|status]"),
        }
    }
    let dir = tempfile::tempdir()?;
    let store = storage::open_with(None, &storage::TlsFiles::default(), dir.path(), None).await?;
    let cfg = apiserver::Config {
        data_dir: dir.path().to_path_buf(),
        bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 0,
        advertise_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        service_cidr: "10.43.0.0/16".parse().map_err(anyhow::Error::msg)?,
        cluster_cidr: "10.42.0.0/16".into(),
        cluster_dns: IpAddr::V4(Ipv4Addr::new(10, 43, 0, 10)),
        node_port_range: (30000, 32767),
        tls_sans: vec![],
    };
    let server = apiserver::Server::new(cfg, store).await?;
    let app = server.app.clone();
    let client = kube::Client::new(server.local_service(), "default");
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(server.run(stopped));
    app.ready
        .subscribe()
        .wait_for(|ready| *ready)
        .await
        .context("the server stopped before it was ready")?;

    let api: Api<Pod> = Api::namespaced(client, "default");
    let params = PatchParams::default();
    for i in 0..pods {
        let name = format!("pod-{i}");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "writes"}},
            "spec": {"containers": [{
                "name": "app",
                "image": "registry.local/bench/app:1.0",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            }]},
        }))?;
        let pod = api.create(&PostParams::default(), &pod).await?;
        if until < Phase::Bind {
            continue;
        }
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name},
            "target": {"kind": "Node", "name": "node-0"},
        });
        let _: serde_json::Value = api
            .create_subresource("binding", &name, &PostParams::default(), &binding)
            .await?;
        if until < Phase::Status {
            continue;
        }
        let mut bound = pod.clone();
        bound.spec.get_or_insert_with(Default::default).node_name = Some("node-0".into());
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let mut ids = hollow::pod::new_container_id;
        let status = hollow::pod::running_status(
            &bound,
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 42, 0, (i % 250) as u8 + 2),
            &now,
            &mut ids,
        );
        let patch = hollow::pod::status_patch(pod.metadata.uid.as_deref(), &status);
        api.patch_status(&name, &params, &Patch::Merge(&patch))
            .await?;
    }
    Ok(())
}
