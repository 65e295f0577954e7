//! The kubelet: registers this machine as a Node and runs the pods bound to it on
//! containerd, through CRI (runtime.v1 over containerd's socket), as upstream's kubelet
//! does. Like every cluster client, it talks to the cluster only through the API with
//! `kube`.
//!
//! - [`containerd`]: the containerd this agent supervises (config, start, restart, stop),
//!   the air-gap image import, the CNI network of the node, and the teardown of all of it.
//! - [`cri`]: a thin typed client of CRI's RuntimeService and ImageService.
//! - [`node`]: the Node, its status and its Lease in `kube-node-lease`.
//! - [`spec`]: what CRI is asked for a pod (sandbox and container configs, env, DNS),
//!   pure.
//! - [`env`]: what a container's environment refers to (ConfigMaps, Secrets, services).
//! - [`status`]: the pod status reported from what CRI says, pure.
//! - [`pods`]: the pods bound to this node: one worker per pod drives CRI toward the
//!   pod's spec and reports its status and events.
//! - [`volumes`]: a pod's volumes on the node (emptyDir, hostPath, API data through
//!   upstream's atomic writer), `/etc/hosts`, and the containers' mounts.
//! - [`registries`]: k3s's `registries.yaml` (mirrors, credentials, TLS) as containerd
//!   `hosts.toml` files and CRI pull credentials.
//! - [`routes`]: host-gw, the routes to other nodes' pod CIDRs via their node IPs.
//! - [`probes`]: liveness, readiness and startup probes (exec, httpGet, tcpSocket).
//! - [`hooks`]: postStart and preStop lifecycle hooks.
//! - [`logs`]: the CRI log format, pure.
//! - [`server`]: the kubelet's HTTPS endpoint (`/healthz`, `/containerLogs`, and the
//!   streaming requests of [`stream`]: exec, attach, port-forward relayed to the runtime).

pub mod containerd;
pub mod cri;
pub mod env;
mod events;
pub mod hooks;
pub mod hostports;
pub mod logs;
pub mod node;
pub mod pods;
pub mod probes;
pub mod registries;
pub mod routes;
pub mod server;
pub mod spec;
pub mod status;
pub mod stream;
pub mod volumes;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use k8s_openapi::api::core::v1::Taint;

/// The kubelet's configuration (the `rkube server`/`rkube agent` node flags).
#[derive(Clone, Debug)]
pub struct Config {
    /// The Node's name.
    pub node_name: String,
    /// The node's InternalIP (pods' hostIP).
    pub node_ip: IpAddr,
    /// Everything the agent keeps: `containerd/`, `images/`, `pods/` (logs), `tls/`.
    pub agent_dir: PathBuf,
    /// The port of the kubelet's HTTPS endpoint (upstream's 10250).
    pub port: u16,
    /// The cluster DNS service's address (pods' nameserver under ClusterFirst).
    pub cluster_dns: IpAddr,
    /// The cluster's DNS domain (`cluster.local`).
    pub cluster_domain: String,
    /// An existing CRI socket to use instead of a containerd of our own.
    pub runtime_endpoint: Option<PathBuf>,
    /// The CA (PEM) that signs the clients allowed on the kubelet's endpoint.
    pub client_ca_pem: String,
    /// Labels added to the Node's default ones.
    pub node_labels: Vec<(String, String)>,
    /// Taints the Node registers with.
    pub node_taints: Vec<Taint>,
    /// Registry mirrors, credentials and TLS (`--private-registry`, k3s's
    /// registries.yaml): mirrors and TLS reach our own containerd as `certs.d` hosts,
    /// credentials go with each pull.
    pub registries: registries::Registries,
}

/// What can go wrong in the kubelet.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CRI call failed.
    #[error("CRI {call}: {status}")]
    Cri {
        call: &'static str,
        status: Box<tonic::Status>,
    },
    /// The API refused or failed a request.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// A file or process of the agent.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// The machine lacks something the agent needs, or it is set up wrong.
    #[error("{0}")]
    Setup(String),
}

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }

    /// Whether CRI said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Cri { status, .. } if status.code() == tonic::Code::NotFound)
    }
}

/// The kubelet's version as the Node reports it.
pub const KUBELET_VERSION: &str = "v1.33.0+rkube";

/// Runs the kubelet until `shutdown` turns true: starts (or connects to) the container
/// runtime, registers the Node, runs the pods bound to it and serves the kubelet's
/// endpoint. Pods keep running when it stops (their shims outlive containerd); the next
/// start adopts them.
pub async fn run(
    client: kube::Client,
    cfg: Config,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.agent_dir)
        .with_context(|| format!("cannot create {}", cfg.agent_dir.display()))?;
    let listener = server::listen(cfg.port).await?;
    let mut cfg = cfg;
    cfg.port = listener.local_addr().map(|a| a.port()).unwrap_or(cfg.port);
    let layout = containerd::Layout::new(&cfg.agent_dir);
    // Our own containerd, unless the configuration names a runtime socket.
    let (socket, own) = match &cfg.runtime_endpoint {
        Some(sock) => {
            if !sock.exists() {
                anyhow::bail!(
                    "--container-runtime-endpoint {}: no socket there (start that runtime, or leave the flag out to run rkube's own containerd)",
                    sock.display()
                );
            }
            (sock.clone(), None)
        }
        None => {
            registries::write_hosts(&layout.certs_d, &cfg.registries)?;
            let c = containerd::Containerd::start(&layout, shutdown.clone()).await?;
            (layout.socket.clone(), Some(c))
        }
    };
    let own_runtime = own.is_some();
    let result =
        run_with_runtime(client, cfg, layout, socket, own_runtime, listener, shutdown).await;
    // Our containerd goes with us, however we end (its shims, so the pods, stay).
    if let Some(c) = own {
        c.stopped().await;
    }
    result
}

async fn run_with_runtime(
    client: kube::Client,
    cfg: Config,
    layout: containerd::Layout,
    socket: PathBuf,
    own_runtime: bool,
    listener: tokio::net::TcpListener,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let cri = cri::Cri::connect(&socket).await?;
    // containerd answers on its socket before its CRI plugin has recovered its state
    // ("server is not initialized yet").
    let mut tries = 0;
    let version = loop {
        match cri.version().await {
            Ok(v) => break v,
            Err(e) if tries < 300 => {
                tries += 1;
                tracing::debug!(error = %e, "waiting for CRI");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e).context("the container runtime did not answer within 30 s"),
        }
    };
    tracing::info!(
        runtime = %version.runtime_name,
        version = %version.runtime_version,
        socket = %socket.display(),
        "container runtime ready"
    );
    containerd::import_images(&socket, &cfg.agent_dir.join("images")).await;

    let cfg = Arc::new(cfg);
    let (node_tx, node_rx) = tokio::sync::watch::channel(None);
    let poke = Arc::new(tokio::sync::Notify::new());
    let node_task = tokio::spawn(node::run(
        client.clone(),
        cfg.clone(),
        cri.clone(),
        format!("{}://{}", version.runtime_name, version.runtime_version),
        node_tx,
        poke.clone(),
        shutdown.clone(),
    ));
    let network_task = tokio::spawn(containerd::run_network(
        layout,
        own_runtime,
        node_rx,
        poke,
        shutdown.clone(),
    ));
    // The pod network between nodes is ours when the runtime (and its CNI) is.
    let routes_task = if own_runtime {
        tokio::spawn(routes::run(client.clone(), cfg.clone(), shutdown.clone()))
    } else {
        let mut s = shutdown.clone();
        tokio::spawn(async move {
            let _ = s.changed().await;
            Ok(())
        })
    };
    let registry = pods::Registry::default();
    let hostports_task = tokio::spawn(hostports::run(registry.clone(), shutdown.clone()));
    let pods_task = tokio::spawn(pods::run(
        client.clone(),
        cfg.clone(),
        cri.clone(),
        registry.clone(),
        shutdown.clone(),
    ));
    let server_task = tokio::spawn(server::run(
        cfg.clone(),
        listener,
        cri.clone(),
        registry,
        shutdown.clone(),
    ));
    // Any part ending ends the kubelet (the binary treats that as fatal).
    let names = [
        "node heartbeat",
        "pod network",
        "routes to other nodes",
        "pods",
        "kubelet server",
        "host ports",
    ];
    let tasks = vec![
        node_task,
        network_task,
        routes_task,
        pods_task,
        server_task,
        hostports_task,
    ];
    let (r, i, rest) = futures::future::select_all(tasks).await;
    for t in rest {
        t.abort();
    }
    match r {
        Ok(r) => r.with_context(|| names[i]),
        Err(e) => Err(anyhow::anyhow!("the {} panicked: {e}", names[i])),
    }
}
