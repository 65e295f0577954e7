//! `rkube`: one binary, one cluster. `rkube server` runs the API server, the scheduler,
//! the controllers and (unless `--disable-agent`) the kubelet, on an embedded SQLite store
//! or etcd.

/// jemalloc: at 10,000 pods the server's resident memory was ~1.5 × its live heap under
/// glibc's malloc (per-thread arenas, fragmentation after bursts). Built with one arena
/// per CPU (`.cargo/config.toml`), not its default four: ~260 instead of 275–295 MiB.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

mod join;

#[derive(Parser)]
#[command(
    name = "rkube",
    version,
    about = "A lightweight, Kubernetes-compatible distribution in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (API server, controllers) and, unless disabled, the agent.
    Server(Box<ServerArgs>),
    /// Join an existing server as a node.
    Agent(AgentArgs),
    /// Run simulated nodes (no containers) against a server, to measure the control plane.
    HollowNodes(HollowArgs),
    /// Run only a node's service proxy and cluster DNS against a server (upstream's
    /// kube-proxy on its own: machines without containers, benchmarks).
    Proxy(AgentArgs),
}

#[derive(Args, Debug)]
struct HollowArgs {
    /// URL of the server to join.
    #[arg(long, short = 's')]
    server: String,
    /// The server's join token (<data-dir>/server/token).
    #[arg(long, short = 't')]
    token: String,
    /// How many nodes.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Nodes are named <prefix>-0 .. <prefix>-(count-1).
    #[arg(long, default_value = "hollow")]
    name_prefix: String,
    /// CPUs of each node.
    #[arg(long, default_value = "4")]
    cpu: String,
    /// Memory of each node.
    #[arg(long, default_value = "16Gi")]
    memory: String,
    /// Pods each node takes.
    #[arg(long, default_value_t = 110)]
    pods: u32,
    /// Labels of the nodes (key=value), as k3s's --node-label.
    #[arg(long)]
    node_label: Vec<String>,
    /// Taints of the nodes (key=value:Effect), as k3s's --node-taint.
    #[arg(long)]
    node_taint: Vec<String>,
}

#[derive(Args, Debug)]
struct ServerArgs {
    /// Folder holding state (database, certificates, token).
    #[arg(long, short = 'd', default_value = "/var/lib/rkube")]
    data_dir: PathBuf,
    /// Address the API server listens on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// HTTPS port of the API server.
    #[arg(long, default_value_t = 6443)]
    https_listen_port: u16,
    /// Address advertised to members of the cluster (default: node-ip or 127.0.0.1).
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// Where to write the admin kubeconfig.
    #[arg(long, short = 'o', default_value = "/etc/rkube/rkube.yaml")]
    write_kubeconfig: PathBuf,
    /// File mode of the kubeconfig (octal).
    #[arg(long, default_value = "0600")]
    write_kubeconfig_mode: String,
    /// External datastore (etcd: http(s)://host:2379,...). Default: embedded SQLite.
    #[arg(long, env = "RKUBE_DATASTORE_ENDPOINT")]
    datastore_endpoint: Option<String>,
    /// CA file for TLS to the datastore.
    #[arg(long, env = "RKUBE_DATASTORE_CAFILE")]
    datastore_cafile: Option<PathBuf>,
    /// Client certificate for TLS to the datastore.
    #[arg(long, env = "RKUBE_DATASTORE_CERTFILE")]
    datastore_certfile: Option<PathBuf>,
    /// Client key for TLS to the datastore.
    #[arg(long, env = "RKUBE_DATASTORE_KEYFILE")]
    datastore_keyfile: Option<PathBuf>,
    /// Shared secret agents use to join (default: generated into <data-dir>/server/token).
    #[arg(long, short = 't', env = "RKUBE_TOKEN")]
    token: Option<String>,
    /// Pod network.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    /// Service network.
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cidr: String,
    /// Node port range.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
    /// Extra names and addresses for the serving certificate.
    #[arg(long)]
    tls_san: Vec<String>,
    /// How long a node may stop renewing its lease before it is marked unreachable
    /// (seconds; kube-controller-manager's --node-monitor-grace-period).
    #[arg(long, default_value_t = 40)]
    node_monitor_grace_period: u64,
    /// tolerationSeconds given to pods for the not-ready taint (kube-apiserver's flag).
    #[arg(long, default_value_t = 300)]
    default_not_ready_toleration_seconds: i64,
    /// tolerationSeconds given to pods for the unreachable taint (kube-apiserver's flag).
    #[arg(long, default_value_t = 300)]
    default_unreachable_toleration_seconds: i64,
    /// Automatic compaction of the datastore (kube-apiserver's flag, e.g. 5m0s, 30s): on
    /// etcd how often it compacts, on SQLite the history it keeps at least (default 1m0s
    /// there, 5m0s on etcd).
    #[arg(long, value_parser = parse_duration)]
    etcd_compaction_interval: Option<std::time::Duration>,
    /// Run without the kubelet and proxy: the API and controllers only.
    #[arg(long)]
    disable_agent: bool,
    #[command(flatten)]
    node: NodeArgs,
}

/// The node flags `rkube server` (for its own agent) and `rkube agent` share.
#[derive(Args, Debug)]
struct NodeArgs {
    /// Name of this node (default: the hostname).
    #[arg(long)]
    node_name: Option<String>,
    /// IP address of this node.
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// Labels of this node (key=value).
    #[arg(long)]
    node_label: Vec<String>,
    /// Taints of this node (key=value:Effect).
    #[arg(long)]
    node_taint: Vec<String>,
    /// TCP congestion control of the service proxy's connections (an empty value: the
    /// host's default). Linux's default, because a host-wide bbr halves what the proxy
    /// relays between nearby sockets.
    #[arg(long, default_value = proxy::TCP_CONGESTION)]
    proxy_tcp_congestion: String,
    /// Run no service proxy on this node (k3s's flag).
    #[arg(long)]
    disable_kube_proxy: bool,
    /// HTTPS port of the kubelet's endpoint (logs, exec, attach, port-forward).
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
    /// A running CRI runtime's socket, instead of the containerd rkube runs itself.
    #[arg(long)]
    container_runtime_endpoint: Option<PathBuf>,
    /// Cluster DNS service address.
    #[arg(long, default_value = "10.43.0.10")]
    cluster_dns: IpAddr,
    /// Cluster DNS domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Registry mirrors, credentials and TLS (k3s's registries.yaml; a missing file is
    /// no configuration).
    #[arg(long, default_value = "/etc/rkube/registries.yaml")]
    private_registry: PathBuf,
}

#[derive(Args, Debug)]
struct AgentArgs {
    /// URL of the server to join (https://host:6443).
    #[arg(long, short = 's', env = "RKUBE_URL")]
    server: String,
    /// The server's join token (its <data-dir>/server/token).
    #[arg(long, short = 't', env = "RKUBE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the join token.
    #[arg(long, env = "RKUBE_TOKEN_FILE", conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// Folder holding state (the agent's under <data-dir>/agent).
    #[arg(long, short = 'd', default_value = "/var/lib/rkube")]
    data_dir: PathBuf,
    #[command(flatten)]
    node: NodeArgs,
}

/// A Go-style duration: `5m0s`, `30s`, `1m30s`, `500ms`, `1h`.
fn parse_duration(s: &str) -> Result<std::time::Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .with_context(|| format!("duration {s:?} lacks a unit (h, m, s, ms)"))?;
        let n: f64 = rest[..end]
            .parse()
            .with_context(|| format!("duration {s:?}: bad number"))?;
        rest = &rest[end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            u => bail!("duration {s:?}: unknown unit {u:?} (use h, m, s or ms)"),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

fn parse_port_range(s: &str) -> Result<(u16, u16)> {
    let (a, b) = s
        .split_once('-')
        .with_context(|| format!("--service-node-port-range {s:?} must look like 30000-32767"))?;
    let (a, b): (u16, u16) = (a.trim().parse()?, b.trim().parse()?);
    if a == 0 || a > b {
        bail!("--service-node-port-range {s:?}: the first port must be between 1 and the last");
    }
    Ok((a, b))
}

async fn server(args: ServerArgs) -> Result<()> {
    if args.token.is_some() {
        bail!("--token is not supported yet: the join token is generated into <data-dir>/server/token");
    }
    let service_cidr = args
        .service_cidr
        .parse()
        .map_err(|e| anyhow::anyhow!("--service-cidr: {e}"))?;
    let advertise = args
        .advertise_address
        .or(args.node.node_ip)
        .unwrap_or_else(|| {
            if args.bind_address.is_unspecified() {
                IpAddr::from([127, 0, 0, 1])
            } else {
                args.bind_address
            }
        });
    let mode = u32::from_str_radix(args.write_kubeconfig_mode.trim_start_matches("0o"), 8)
        .with_context(|| {
            format!(
                "--write-kubeconfig-mode {:?} is not an octal mode",
                args.write_kubeconfig_mode
            )
        })?;
    let cfg = apiserver::Config {
        data_dir: args.data_dir.clone(),
        bind_address: args.bind_address,
        port: args.https_listen_port,
        advertise_address: advertise,
        service_cidr,
        cluster_cidr: args.cluster_cidr.clone(),
        cluster_dns: args.node.cluster_dns,
        node_port_range: parse_port_range(&args.service_node_port_range)?,
        tls_sans: args.tls_san.clone(),
    };
    apiserver::defaults::set_default_toleration_seconds(
        args.default_not_ready_toleration_seconds,
        args.default_unreachable_toleration_seconds,
    );
    let store = storage::open_with(
        args.datastore_endpoint.as_deref(),
        &storage::TlsFiles {
            ca_file: args.datastore_cafile.clone(),
            cert_file: args.datastore_certfile.clone(),
            key_file: args.datastore_keyfile.clone(),
        },
        &args.data_dir,
        args.etcd_compaction_interval,
    )
    .await
    .context("cannot open the datastore")?;
    let server = apiserver::Server::new(cfg, store).await?;
    let addr = server.local_addr()?;
    let host = if addr.ip().is_unspecified() {
        advertise
    } else {
        addr.ip()
    };
    let url = format!("https://{}", std::net::SocketAddr::new(host, addr.port()));
    apiserver::pki::write_kubeconfig(&server.pki, &url, &args.write_kubeconfig, mode)
        .with_context(|| {
            format!(
                "cannot write the kubeconfig to {}",
                args.write_kubeconfig.display()
            )
        })?;
    tracing::info!(kubeconfig = %args.write_kubeconfig.display(), %url, "wrote kubeconfig");
    eprintln!(
        "rkube server listening on {url}\nkubeconfig: {}\ntry: kubectl --kubeconfig {} get namespaces",
        args.write_kubeconfig.display(),
        args.write_kubeconfig.display()
    );
    let (tx, rx) = tokio::sync::watch::channel(false);
    let tx = std::sync::Arc::new(tx);
    stop_on_signal(tx.clone());
    let client_ca_pem = std::fs::read_to_string(&server.pki.ca_cert)
        .with_context(|| format!("cannot read {}", server.pki.ca_cert.display()))?;
    let mut ready = server.app.ready.subscribe();
    // The scheduler, controllers, kubelet and proxy in this process are clients of the API
    // like any other, served in process (no TLS or TCP over loopback).
    let client = kube::Client::new(server.local_service(), "default");
    let serving = tokio::spawn(server.run(rx.clone()));
    ready
        .wait_for(|r| *r)
        .await
        .context("the API server stopped before it was ready")?;
    let identity = format!(
        "{}_{}",
        args.node.node_name.clone().unwrap_or_else(hostname),
        std::process::id()
    );
    let scheduler = {
        let elector = controllers::leader::Elector::new(
            client.clone(),
            "kube-scheduler",
            &identity,
            Default::default(),
        );
        let client = client.clone();
        let mut rx = rx.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = elector.run(|| scheduler::run(client.clone())) => r,
                _ = rx.changed() => Ok(()),
            }
        })
    };
    let node_cfg = controllers::nodes::NodeConfig {
        grace_period: std::time::Duration::from_secs(args.node_monitor_grace_period),
        cluster_cidr: args.cluster_cidr.clone(),
    };
    let root_ca = client_ca_pem.clone();
    let mut agent = if args.disable_agent {
        None
    } else {
        let cfg = kubelet_config(&args.node, &args.data_dir, advertise, client_ca_pem)?;
        let proxy = (!args.node.disable_kube_proxy)
            .then(|| proxy_config(&args.node, &args.data_dir.join("agent")));
        Some(tokio::spawn(run_node(
            client.clone(),
            cfg,
            proxy,
            rx.clone(),
        )))
    };
    let controllers = tokio::spawn(async move {
        controllers::run(client, &identity, Default::default(), node_cfg, root_ca, rx).await
    });
    let agent_ended = async {
        match agent.as_mut() {
            Some(a) => a.await,
            None => std::future::pending().await,
        }
    };
    // Any component ending is fatal: the process exits and its supervisor restarts it.
    let result = tokio::select! {
        r = serving => r.context("the API server panicked")?,
        r = controllers => r.context("the controllers panicked")?,
        r = scheduler => r.context("the scheduler panicked")?,
        r = agent_ended => r.context("the kubelet panicked")?.context("kubelet"),
    };
    stop_agent(&tx, agent).await;
    result
}

/// The kubelet's configuration from the node flags: shared by the server's own agent and
/// `rkube agent`. `default_ip` is the node IP when `--node-ip` is not given.
fn kubelet_config(
    node: &NodeArgs,
    data_dir: &std::path::Path,
    default_ip: IpAddr,
    client_ca_pem: String,
) -> Result<kubelet::Config> {
    Ok(kubelet::Config {
        node_name: node.node_name.clone().unwrap_or_else(hostname),
        node_ip: node.node_ip.unwrap_or(default_ip),
        agent_dir: data_dir.join("agent"),
        port: node.kubelet_port,
        cluster_dns: node.cluster_dns,
        cluster_domain: node.cluster_domain.clone(),
        runtime_endpoint: node.container_runtime_endpoint.clone(),
        client_ca_pem,
        node_labels: parse_labels(&node.node_label)?,
        node_taints: parse_taints(&node.node_taint)?,
        registries: kubelet::registries::load(&node.private_registry)
            .context("--private-registry")?,
    })
}

/// What runs on every node: the kubelet and (unless disabled) the service proxy. Either
/// failing ends both; on `stop` both finish their shutdown.
async fn run_node(
    client: kube::Client,
    cfg: kubelet::Config,
    proxy: Option<proxy::Config>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let kubelet = kubelet::run(client.clone(), cfg, stop.clone());
    let Some(proxy_cfg) = proxy else {
        return kubelet.await;
    };
    let proxy = async {
        proxy::run(client, proxy_cfg, stop)
            .await
            .context("service proxy")
    };
    tokio::try_join!(kubelet, proxy).map(|_| ())
}

/// SIGINT or SIGTERM turns `stop` true.
fn stop_on_signal(stop: std::sync::Arc<tokio::sync::watch::Sender<bool>>) {
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
}

/// On the way out the agent stops its containerd (the pods keep running).
async fn stop_agent(
    tx: &tokio::sync::watch::Sender<bool>,
    agent: Option<tokio::task::JoinHandle<Result<()>>>,
) {
    let _ = tx.send(true);
    if let Some(a) = agent.filter(|a| !a.is_finished()) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(15), a).await;
    }
}

/// `rkube agent`: joins the server at `--server` with the token and runs the kubelet
/// until SIGINT/SIGTERM.
async fn agent(args: AgentArgs) -> Result<()> {
    let joined = join::join(&args.server, &join_token(&args)?).await?;
    let default_ip = match args.node.node_ip {
        Some(ip) => ip,
        None => route_to(&args.server).await.with_context(|| {
            format!(
                "cannot tell this node's IP from the route to {}: set --node-ip",
                args.server
            )
        })?,
    };
    let cfg = kubelet_config(&args.node, &args.data_dir, default_ip, joined.ca_pem)?;
    eprintln!(
        "rkube agent: node {} ({}) joining {}",
        cfg.node_name, cfg.node_ip, args.server
    );
    let (tx, rx) = tokio::sync::watch::channel(false);
    let tx = std::sync::Arc::new(tx);
    stop_on_signal(tx.clone());
    let proxy = (!args.node.disable_kube_proxy)
        .then(|| proxy_config(&args.node, &args.data_dir.join("agent")));
    let mut kubelet = tokio::spawn(run_node(joined.client, cfg, proxy, rx));
    let result = (&mut kubelet)
        .await
        .context("the kubelet panicked")?
        .context("kubelet");
    stop_agent(&tx, Some(kubelet)).await;
    result
}

/// The join token of `rkube agent`/`rkube proxy`: --token, else --token-file.
fn join_token(args: &AgentArgs) -> Result<String> {
    Ok(match (&args.token, &args.token_file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read --token-file {}", f.display()))?
            .trim()
            .to_string(),
        (None, None) => bail!("joining needs the server's join token: --token, --token-file or RKUBE_TOKEN (the server keeps it in <data-dir>/server/token)"),
    })
}

/// `rkube proxy`: joins like an agent and runs only the service proxy and cluster DNS.
async fn proxy_only(args: AgentArgs) -> Result<()> {
    let joined = join::join(&args.server, &join_token(&args)?).await?;
    let cfg = proxy_config(&args.node, &args.data_dir.join("agent"));
    eprintln!("rkube proxy: serving the services of {}", args.server);
    let (tx, rx) = tokio::sync::watch::channel(false);
    stop_on_signal(std::sync::Arc::new(tx));
    proxy::run(joined.client, cfg, rx).await
}

/// The service proxy's configuration from the node flags.
fn proxy_config(node: &NodeArgs, agent_dir: &std::path::Path) -> proxy::Config {
    proxy::Config {
        label: kubelet::containerd::lo_label(agent_dir),
        udp_idle: proxy::UDP_IDLE,
        dns: match node.cluster_dns {
            IpAddr::V4(ip) => Some((ip, node.cluster_domain.clone())),
            IpAddr::V6(_) => None,
        },
        tcp_congestion: node.proxy_tcp_congestion.clone(),
    }
}

/// The local address this machine uses to reach `url`'s host (as k3s picks the node IP
/// from the default route).
async fn route_to(url: &str) -> Result<IpAddr> {
    let uri: http::Uri = url.parse()?;
    let host = uri
        .host()
        .context("no host")?
        .trim_matches(|c| c == '[' || c == ']');
    let port = uri.port_u16().unwrap_or(443);
    let addr = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .context("the host has no address")?;
    let bind: std::net::SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let sock = std::net::UdpSocket::bind(bind)?;
    sock.connect(addr)?;
    Ok(sock.local_addr()?.ip())
}

/// `key=value` labels, as k3s's --node-label.
fn parse_labels(labels: &[String]) -> Result<Vec<(String, String)>> {
    labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--node-label {l:?} must be key=value"))
        })
        .collect()
}

fn parse_taints(taints: &[String]) -> Result<Vec<k8s_openapi::api::core::v1::Taint>> {
    taints.iter().map(|t| parse_taint(t)).collect()
}

async fn hollow_nodes(args: HollowArgs) -> Result<()> {
    let client = join::client(&args.server, &args.token).await?;
    let labels = parse_labels(&args.node_label)?;
    let taints = parse_taints(&args.node_taint)?;
    let cfg = hollow::HollowConfig {
        count: args.count,
        name_prefix: args.name_prefix,
        cpu: args.cpu,
        memory: args.memory,
        pods: args.pods,
        labels,
        taints,
        pod_cidr_base: None,
    };
    eprintln!(
        "rkube hollow-nodes: running {} simulated nodes against {}",
        cfg.count, args.server
    );
    tokio::select! {
        r = hollow::run(client, cfg) => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// `key=value:Effect` or `key:Effect`, as k3s's --node-taint.
fn parse_taint(s: &str) -> Result<k8s_openapi::api::core::v1::Taint> {
    let (kv, effect) = s
        .rsplit_once(':')
        .with_context(|| format!("--node-taint {s:?} must be key=value:Effect"))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        bail!("--node-taint {s:?}: the effect must be NoSchedule, PreferNoSchedule or NoExecute");
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (kv.to_string(), None),
    };
    Ok(k8s_openapi::api::core::v1::Taint {
        key,
        value,
        effect: effect.to_string(),
        time_added: None,
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "rkube".into())
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("rkube: error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RKUBE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Server(args) => rt.block_on(server(*args)),
        Command::HollowNodes(args) => rt.block_on(hollow_nodes(args)),
        Command::Agent(args) => rt.block_on(agent(args)),
        Command::Proxy(args) => rt.block_on(proxy_only(args)),
    }
}

#[cfg(test)]
mod duration_tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn go_durations_parse_as_kube_apiserver_flags_do() {
        assert_eq!(parse_duration("5m0s").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("3d").is_err());
    }
}
