//! Hollow nodes: N simulated kubelets in one process, as kwok and kubemark do upstream.
//! Each registers a real Node, renews its Lease and reports the pods bound to it as
//! running, with no containers behind them. They exist to measure the control plane at
//! scale (`rkube hollow-nodes`), and are never used where a test claims real containers:
//! their runtime says `hollow://1.0` and every container and image ID is `hollow://…`.
//!
//! Like every cluster client, this crate talks to the cluster only through the API with
//! `kube`, as one client: one shared watch of bound pods (`spec.nodeName!=`) for all the
//! nodes, one watch of nodes, a bounded pool of workers writing pod status, node
//! registrations a few at a time.
//!
//! - [`node`]: the Node object, its status and its Lease (pure).
//! - [`pod`]: the pod status a hollow node reports and when (pure).
//! - [`ip`]: node and pod addresses (pure).
//! - [`run`] / [`run_with_handle`]: the nodes themselves; [`HollowHandle`] stops
//!   (crashes) and restarts single nodes for node-lifecycle tests.
//!
//! Heartbeats are upstream's: the lease is renewed every 10 s (40 s duration); the node
//! status is computed every 10 s and written only when it changed or every 5 minutes.
//! Pods go from Pending to Running in one `pods/status` write; a pod being deleted is
//! deleted with grace period 0 (on condition of its uid). What is not simulated is
//! listed in [`pod`].

pub mod ip;
pub mod node;
pub mod pod;
mod queue;
mod runtime;

use std::future::Future;

use k8s_openapi::api::core::v1::Taint;

pub use runtime::{HollowHandle, NodeState};

/// How many workers write pod status (and delete pods) at once.
pub const STATUS_WORKERS: usize = 32;
/// How many nodes register at once.
pub const REGISTER_CONCURRENCY: usize = 16;

/// The hollow nodes to run.
#[derive(Clone, Debug)]
pub struct HollowConfig {
    /// How many nodes.
    pub count: usize,
    /// Nodes are `<prefix>-0` .. `<prefix>-(count-1)`.
    pub name_prefix: String,
    /// Capacity (= allocatable) of each node.
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
    /// Labels added to the kubelet's default ones.
    pub labels: Vec<(String, String)>,
    /// Taints the nodes register with.
    pub taints: Vec<Taint>,
    /// Each node's `spec.podCIDR` is the next /24 of this IPv4 CIDR; None leaves it to
    /// the cluster's node IPAM (pods get IPs from `10.251.0.0/16` while a node has none).
    pub pod_cidr_base: Option<String>,
}

impl Default for HollowConfig {
    /// One node `hollow-0` of 4 CPUs, 16Gi and 110 pods.
    fn default() -> Self {
        HollowConfig {
            count: 1,
            name_prefix: "hollow".into(),
            cpu: "4".into(),
            memory: "16Gi".into(),
            pods: 110,
            labels: Vec::new(),
            taints: Vec::new(),
            pod_cidr_base: None,
        }
    }
}

/// Whether `s` is a DNS-1123 label prefix: lowercase alphanumerics and '-', starting
/// with an alphanumeric (the `-<index>` suffix ends it with one).
fn valid_prefix(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 50
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

impl HollowConfig {
    /// The identities of every node, or why the configuration cannot run.
    pub fn identities(&self) -> Result<Vec<node::NodeIdentity>, Error> {
        if self.count == 0 {
            return Err(Error::Config("count must be at least 1".into()));
        }
        if !valid_prefix(&self.name_prefix) {
            return Err(Error::Config(format!(
                "name prefix {:?} does not make valid node names (lowercase alphanumerics, '-' and '.', at most 50 characters)",
                self.name_prefix
            )));
        }
        if self.cpu.trim().is_empty() || self.memory.trim().is_empty() {
            return Err(Error::Config("cpu and memory must be quantities".into()));
        }
        if let Some((k, _)) = self.labels.iter().find(|(k, _)| k.is_empty()) {
            return Err(Error::Config(format!("label key {k:?} is empty")));
        }
        (0..self.count)
            .map(|i| node::NodeIdentity::new(self, i, ""))
            .collect()
    }

    /// The names of the nodes, in order.
    pub fn node_names(&self) -> Vec<String> {
        (0..self.count)
            .map(|i| node::node_name(&self.name_prefix, i))
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid hollow-node configuration: {0}")]
    Config(String),
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("no pod address left in {0}")]
    NoPodAddress(ip::Cidr),
}

/// Registers the nodes and keeps them alive until the future is dropped (or fails:
/// only an invalid configuration or an internal task's end does that; API errors are
/// retried with back-off).
pub async fn run(client: kube::Client, cfg: HollowConfig) -> anyhow::Result<()> {
    let (fut, _handle) = run_with_handle(client, cfg)?;
    fut.await
}

/// As [`run`], with a handle to stop and restart single nodes. The configuration is
/// checked at once; nothing happens until the future is polled, and dropping it stops
/// every node (as a crash would: their leases and pods are left as they are).
pub fn run_with_handle(
    client: kube::Client,
    cfg: HollowConfig,
) -> Result<
    (
        impl Future<Output = anyhow::Result<()>> + Send + 'static,
        HollowHandle,
    ),
    Error,
> {
    runtime::start(client, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        let ok = HollowConfig::default();
        // (change, valid)
        let cases: Vec<(&str, HollowConfig, bool)> = vec![
            ("default", ok.clone(), true),
            (
                "100 nodes",
                HollowConfig {
                    count: 100,
                    ..ok.clone()
                },
                true,
            ),
            (
                "no nodes",
                HollowConfig {
                    count: 0,
                    ..ok.clone()
                },
                false,
            ),
            (
                "too many nodes",
                HollowConfig {
                    count: 65535,
                    ..ok.clone()
                },
                false,
            ),
            (
                "empty prefix",
                HollowConfig {
                    name_prefix: String::new(),
                    ..ok.clone()
                },
                false,
            ),
            (
                "upper-case prefix",
                HollowConfig {
                    name_prefix: "Hollow".into(),
                    ..ok.clone()
                },
                false,
            ),
            (
                "dotted prefix",
                HollowConfig {
                    name_prefix: "bench.hollow".into(),
                    ..ok.clone()
                },
                true,
            ),
            (
                "empty cpu",
                HollowConfig {
                    cpu: String::new(),
                    ..ok.clone()
                },
                false,
            ),
            (
                "empty label key",
                HollowConfig {
                    labels: vec![(String::new(), "v".into())],
                    ..ok.clone()
                },
                false,
            ),
            (
                "CIDR base fits",
                HollowConfig {
                    count: 256,
                    pod_cidr_base: Some("10.244.0.0/16".into()),
                    ..ok.clone()
                },
                true,
            ),
            (
                "CIDR base too small",
                HollowConfig {
                    count: 257,
                    pod_cidr_base: Some("10.244.0.0/16".into()),
                    ..ok.clone()
                },
                false,
            ),
            (
                "CIDR base not a CIDR",
                HollowConfig {
                    pod_cidr_base: Some("10.244.0.0".into()),
                    ..ok.clone()
                },
                false,
            ),
        ];
        for (what, cfg, valid) in cases {
            let got = cfg.identities();
            assert_eq!(got.is_ok(), valid, "{what}: {:?}", got.err());
            if let Ok(ids) = got {
                assert_eq!(ids.len(), cfg.count);
                let names: Vec<_> = ids.into_iter().map(|i| i.name).collect();
                assert_eq!(names, cfg.node_names());
            }
        }
    }
}
