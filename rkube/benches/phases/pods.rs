//! Small valid pods and a pool of concurrent clients creating them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::{json, Value};

use crate::support::progress::{Counter, Progress};
use crate::support::server::warm_clients;
use crate::support::stats::{rate, round, summarize, Summary};
use crate::support::usage::{Spent, Usage};

/// Size of a pod's JSON as the client sends it.
pub const POD_BYTES: usize = 2048;
/// A level stops after this many failed creates.
const MAX_ERRORS: usize = 20;
/// One create may take at most this long.
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
const PADDING: &str = "bench.rkube.io/padding";

/// A typical small pod whose JSON is exactly [`POD_BYTES`] long (padded by an annotation).
pub fn pod(name: &str) -> Pod {
    let env: Vec<Value> = (0..8)
        .map(|i| json!({"name": format!("SETTING_{i}"), "value": format!("value-{i}")}))
        .collect();
    let mut pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"app": "bench", "tier": "load", "bench.rkube.io/run": "api"},
            "annotations": {PADDING: ""},
        },
        "spec": {
            "containers": [{
                "name": "app",
                "image": "registry.local/bench/app:1.0",
                "command": ["/bin/app"],
                "args": ["--port=8080", "--log-level=info"],
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "env": env,
                "resources": {
                    "requests": {"cpu": "100m", "memory": "64Mi"},
                    "limits": {"cpu": "500m", "memory": "128Mi"},
                },
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10},
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 5,
        },
    }))
    .expect("the pod template is a valid Pod");
    let base = serde_json::to_vec(&pod).map(|v| v.len()).unwrap_or(0);
    let pad = "x".repeat(POD_BYTES.saturating_sub(base));
    pod.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(PADDING.into(), pad);
    pod
}

/// `count` creates of pods named `<prefix>-NNNNN` in `ns` by `clients` concurrent clients,
/// stopping at `max_time`.
pub struct Load<'a> {
    pub ns: &'a str,
    pub prefix: &'a str,
    pub clients: usize,
    pub count: usize,
    pub max_time: Duration,
    /// The server, to account its CPU time.
    pub server_pid: Option<u32>,
    /// Pods already bound to this node (`spec.nodeName`): the scheduler has nothing to do.
    pub node: Option<&'a str>,
}

pub struct LoadResult {
    pub clients: usize,
    pub prebound: bool,
    pub ok: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub latency: Summary,
    /// Size of a created pod's JSON as the server returns it (≈ what it stores).
    pub stored_bytes: usize,
    pub spent: Spent,
}

impl LoadResult {
    pub fn rate(&self) -> f64 {
        rate(self.ok, self.elapsed)
    }

    pub fn json(&self) -> Value {
        json!({
            "clients": self.clients,
            "prebound": self.prebound,
            "creates": self.ok,
            "errors": self.errors,
            "first_error": self.first_error,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "creates_per_s": self.rate(),
            "latency": self.latency.json(),
            "stored_bytes": self.stored_bytes,
            "usage": self.spent.json(),
            "server_cpu_ms_per_create": self.spent.server_ms_per(self.ok).map(round),
        })
    }
}

#[derive(Default)]
struct WorkerResult {
    latencies: Vec<Duration>,
    first_error: Option<String>,
    stored_bytes: usize,
}

struct Shared {
    api: Api<Pod>,
    prefix: String,
    node: Option<String>,
    count: usize,
    next: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    deadline: Instant,
    done: Counter,
}

pub async fn create_pods(cfg: &kube::Config, load: &Load<'_>) -> Result<LoadResult> {
    let clients = warm_clients(cfg, load.clients).await?;
    let progress = Progress::start(&format!("{} clients", load.clients), load.count as u64);
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let usage = Usage::start(load.server_pid);
    let start = Instant::now();
    let deadline = start + load.max_time;
    let workers: Vec<_> = clients
        .into_iter()
        .map(|client| {
            tokio::spawn(worker(Shared {
                api: Api::namespaced(client, load.ns),
                prefix: load.prefix.to_string(),
                node: load.node.map(str::to_string),
                count: load.count,
                next: next.clone(),
                failed: failed.clone(),
                deadline,
                done: progress.counter.clone(),
            }))
        })
        .collect();
    let mut all = WorkerResult::default();
    for w in futures::future::join_all(workers).await {
        let w = w?;
        all.latencies.extend(w.latencies);
        all.first_error = all.first_error.or(w.first_error);
        all.stored_bytes = all.stored_bytes.max(w.stored_bytes);
    }
    let elapsed = start.elapsed();
    let spent = usage.finish();
    drop(progress);
    let result = LoadResult {
        clients: load.clients,
        prebound: load.node.is_some(),
        ok: all.latencies.len(),
        errors: failed.load(Ordering::Relaxed),
        first_error: all.first_error,
        elapsed,
        latency: summarize(&all.latencies),
        stored_bytes: all.stored_bytes,
        spent,
    };
    if result.ok == 0 {
        bail!(
            "no pod could be created: {}",
            result.first_error.as_deref().unwrap_or("?")
        );
    }
    Ok(result)
}

async fn worker(s: Shared) -> WorkerResult {
    let mut out = WorkerResult::default();
    let pp = PostParams::default();
    while Instant::now() < s.deadline && s.failed.load(Ordering::Relaxed) < MAX_ERRORS {
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if i >= s.count {
            break;
        }
        let mut p = pod(&format!("{}-{i:05}", s.prefix));
        if let Some(spec) = p.spec.as_mut() {
            spec.node_name = s.node.clone();
        }
        let t = Instant::now();
        let err = match tokio::time::timeout(CREATE_TIMEOUT, s.api.create(&pp, &p)).await {
            Ok(Ok(created)) => {
                out.latencies.push(t.elapsed());
                s.done.add(1);
                if out.stored_bytes == 0 {
                    out.stored_bytes = serde_json::to_vec(&created).map_or(0, |v| v.len());
                }
                continue;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {CREATE_TIMEOUT:?}"),
        };
        s.failed.fetch_add(1, Ordering::Relaxed);
        out.first_error.get_or_insert(err);
    }
    out
}
