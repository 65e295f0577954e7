//! LIST of a namespace holding 10,000 pods, through `Api<Pod>::list` (and, to tell the
//! server's share from the client's decoding, as raw bytes).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::{json, Value};

use super::pods::{create_pods, Load, LoadResult};
use crate::support::progress::{note, phase};
use crate::support::server::{ensure_namespace, get_raw};
use crate::support::stats::{summarize, Summary};

const NS: &str = "bench-list";
pub const PODS: usize = 10_000;
const CLIENTS: usize = 64;
/// Timed lists (after one untimed warm-up).
const LISTS: usize = 5;
const MAX_TIME: Duration = Duration::from_secs(180);

pub struct ListResult {
    pub fill: LoadResult,
    pub items: usize,
    pub typed: Summary,
    pub raw: Summary,
    pub raw_bytes: usize,
}

impl ListResult {
    pub fn json(&self) -> Value {
        json!({
            "fill": self.fill.json(),
            "items": self.items,
            "typed_list": self.typed.json(),
            "raw_list": self.raw.json(),
            "raw_list_bytes": self.raw_bytes,
        })
    }
}

pub async fn run(cfg: &kube::Config) -> Result<ListResult> {
    let client = kube::Client::try_from(cfg.clone())?;
    ensure_namespace(&client, NS).await?;
    phase(&format!(
        "LIST: creating {PODS} pods in {NS} ({CLIENTS} clients)"
    ));
    let fill = create_pods(
        cfg,
        &Load {
            ns: NS,
            prefix: "pod",
            clients: CLIENTS,
            count: PODS,
            max_time: Duration::from_secs(600),
        },
    )
    .await?;
    note(&format!(
        "created {} pods at {:.0}/s ({} errors)",
        fill.ok,
        fill.rate(),
        fill.errors
    ));

    phase(&format!(
        "LIST: {LISTS} full lists of {NS} (Api<Pod>::list)"
    ));
    let api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let lp = ListParams::default();
    let items = api.list(&lp).await.context("warm-up list")?.items.len();
    note(&format!("warm-up list: {items} items"));
    let deadline = Instant::now() + MAX_TIME;
    let mut typed = Vec::new();
    for _ in 0..LISTS {
        if Instant::now() >= deadline {
            break;
        }
        let t = Instant::now();
        let n = api.list(&lp).await?.items.len();
        typed.push(t.elapsed());
        note(&format!(
            "list: {n} items in {:.1} ms",
            t.elapsed().as_secs_f64() * 1e3
        ));
    }

    phase(&format!(
        "LIST: {LISTS} raw GETs of the same list (bytes only)"
    ));
    let path = format!("/api/v1/namespaces/{NS}/pods");
    let mut raw = Vec::new();
    let mut raw_bytes = 0;
    for _ in 0..LISTS {
        if Instant::now() >= deadline {
            break;
        }
        let t = Instant::now();
        let (code, body) = get_raw(&client, &path).await?;
        raw.push(t.elapsed());
        anyhow::ensure!(code == 200, "GET {path}: status {code}");
        raw_bytes = body.len();
        note(&format!(
            "raw list: {:.1} MiB in {:.1} ms",
            raw_bytes as f64 / 1048576.0,
            t.elapsed().as_secs_f64() * 1e3
        ));
    }
    Ok(ListResult {
        fill,
        items,
        typed: summarize(&typed),
        raw: summarize(&raw),
        raw_bytes,
    })
}
