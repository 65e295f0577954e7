//! The service proxy, userspace and iptables-free, as a cluster client (through `kube`
//! only). It watches Services and EndpointSlices; each cluster IP (and external IP)
//! becomes a /32 on `lo` through netlink, and a listener on every service port and node
//! port relays TCP connections and UDP flows to the ready endpoints.
//!
//! - [`model`] (pure): the frontends to serve from Services and EndpointSlices.
//! - [`balancer`] (pure): round-robin, fallbacks, `ClientIP` session affinity.
//! - [`relay`]: the listeners and the relaying (TCP by `splice(2)` through pipes, see
//!   `splice`, so the payload never enters the process).
//! - [`dns`]: cluster DNS, node-local, from the same Services and EndpointSlices.
//!
//! The addresses it adds carry its label (`lo:rk<hash>`), so a restarted proxy removes
//! what a dead one left, and never touches other addresses.

pub mod balancer;
pub mod dns;
pub mod model;
pub mod relay;
mod splice;

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use hostnet::{Ipv4Net, Net};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::ResourceExt;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use balancer::Balancer;
use model::{Desired, Frontend, Listen, Protocol};

/// The proxy's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The label of the addresses this proxy adds to `lo` (`lo:` and at most 10 more
    /// bytes): distinct per proxy on one machine.
    pub label: String,
    /// How long an idle UDP flow is kept (kube-proxy's `--udp-timeout`, 250 ms).
    pub udp_idle: Duration,
    /// Cluster DNS on this address (port 53, TCP and UDP) for this domain.
    pub dns: Option<(Ipv4Addr, String)>,
    /// The TCP congestion control of the proxy's own sockets ([`TCP_CONGESTION`] by
    /// default), empty for the host's default.
    pub tcp_congestion: String,
}

/// The congestion control the proxy's TCP legs use unless told otherwise: Linux's
/// default. Both legs are short hops (the client's is on this machine, the endpoint's in
/// the cluster's network), where a host-wide `bbr` paces a relayed stream to a fraction
/// of what `cubic` moves: 2.2 against 3.4–4.2 GiB/s over loopback on the development
/// machine (`bench/results/proxy.md`).
pub const TCP_CONGESTION: &str = "cubic";

/// Upstream kube-proxy's default `--udp-timeout` (userspace mode).
pub const UDP_IDLE: Duration = Duration::from_millis(250);

/// Checked again this often without changes (a listener that could not bind, an address
/// someone removed).
const RESYNC: Duration = Duration::from_secs(10);

/// Runs until `shutdown`; then removes its listeners and addresses (established
/// connections end with the process).
pub async fn run(
    client: kube::Client,
    cfg: Config,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let net = Net::connect()?;
    let lo = net.link_index("lo").await?;
    let changed = Arc::new(Notify::new());
    let (services, w1) = watch_into::<Service>(Api::all(client.clone()), changed.clone());
    let (slices, w2) = watch_into::<EndpointSlice>(Api::all(client), changed.clone());
    let _watches = (AbortOnDrop(w1), AbortOnDrop(w2));
    tokio::select! {
        r = async { services.wait_until_ready().await?; slices.wait_until_ready().await } => {
            if r.is_err() { return Ok(()) }
        }
        _ = shutdown.changed() => return Ok(()),
    }
    tracing::info!(label = %cfg.label, "service proxy running");
    let dns = match &cfg.dns {
        Some((addr, domain)) => {
            let domain =
                hickory_proto::rr::Name::from_ascii(format!("{}.", domain.trim_end_matches('.')))
                    .map_err(|e| anyhow::anyhow!("cluster domain {domain:?}: {e}"))?;
            let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            Some(Dns {
                addr: *addr,
                server: Arc::new(dns::Server {
                    domain,
                    index: Arc::default(),
                    upstreams: dns::upstreams(&resolv, IpAddr::V4(*addr)),
                }),
                tasks: None,
            })
        }
        None => None,
    };
    let congestion = match cfg.tcp_congestion.as_str() {
        "" => None,
        name => relay::congestion(name).unwrap_or_else(|e| {
            tracing::warn!(%name, error = %e, "TCP congestion control not available to the proxy, using the host's default (load its module, or pass another name)");
            None
        }),
    };
    let mut p = Proxy {
        net,
        lo,
        cfg,
        congestion,
        listeners: HashMap::new(),
        warned: HashMap::new(),
        dns,
    };
    let mut tick = tokio::time::interval(RESYNC);
    loop {
        let (svcs, sls) = (services.state(), slices.state());
        let mut want = model::desired(&svcs, &sls);
        if let Some(d) = &p.dns {
            want.addresses.insert(d.addr);
            let idx = dns::Index::build(&svcs, &sls);
            let mut cur = d.server.index.write().expect("dns index");
            if *cur != idx {
                *cur = idx;
            }
        }
        p.sync(&want).await;
        p.serve_dns().await;
        tokio::select! {
            _ = changed.notified() => {}
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
    }
    if let Some(Dns {
        tasks: Some((u, t)),
        ..
    }) = p.dns.take()
    {
        u.abort();
        t.abort();
    }
    p.sync(&Desired::default()).await;
    Ok(())
}

/// The node-local DNS server and its two listeners, once bound.
struct Dns {
    addr: Ipv4Addr,
    server: Arc<dns::Server>,
    tasks: Option<(JoinHandle<()>, JoinHandle<()>)>,
}

fn watch_into<K>(api: Api<K>, changed: Arc<Notify>) -> (Store<K>, JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + k8s_openapi::serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let task = tokio::spawn(
        // managedFields are never read here: not kept (most of a store's memory).
        reflector(
            writer,
            watcher(api, watcher::Config::default())
                .modify(|o: &mut K| o.managed_fields_mut().clear()),
        )
        .default_backoff()
        .touched_objects()
        .for_each(move |e| {
            match e {
                Ok(_) => changed.notify_one(),
                Err(e) => tracing::debug!(error = %e, "proxy watch"),
            }
            futures::future::ready(())
        }),
    );
    (store, task)
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Running {
    frontend: Frontend,
    balancer: relay::Shared,
    task: JoinHandle<()>,
}

struct Proxy {
    net: Net,
    lo: u32,
    cfg: Config,
    congestion: relay::Congestion,
    listeners: HashMap<Listen, Running>,
    /// The last error per listener or address, logged once until it changes.
    warned: HashMap<String, String>,
    dns: Option<Dns>,
}

impl Proxy {
    async fn sync(&mut self, want: &Desired) {
        // Listeners that go, first (their addresses may go next).
        let gone: Vec<Listen> = self
            .listeners
            .keys()
            .filter(|k| !want.frontends.contains_key(k))
            .copied()
            .collect();
        for k in gone {
            if let Some(r) = self.listeners.remove(&k) {
                r.task.abort();
                tracing::info!(service = %r.frontend.service, listen = %k.addr, "stopped listening");
            }
        }
        self.sync_addresses(&want.addresses).await;
        for (k, fe) in &want.frontends {
            if let Some(r) = self.listeners.get_mut(k) {
                if r.frontend != *fe {
                    r.balancer
                        .lock()
                        .expect("balancer lock")
                        .update(fe.endpoints.clone(), fe.affinity);
                    r.frontend = fe.clone();
                }
                continue;
            }
            match self.listen(k, fe).await {
                Ok(r) => {
                    self.warned.remove(&k.addr.to_string());
                    tracing::info!(service = %fe.service, listen = %k.addr, protocol = ?k.protocol, endpoints = fe.endpoints.len(), "listening");
                    self.listeners.insert(*k, r);
                }
                Err(e) => self.warn(
                    k.addr.to_string(),
                    format!("{} ({:?} {}): {e}", fe.service, k.protocol, k.addr),
                ),
            }
        }
    }

    async fn listen(&self, k: &Listen, fe: &Frontend) -> std::io::Result<Running> {
        let balancer: relay::Shared =
            Arc::new(Mutex::new(Balancer::new(fe.endpoints.clone(), fe.affinity)));
        let service: Arc<str> = fe.service.clone().into();
        let task = match k.protocol {
            Protocol::Tcp => {
                let l = bind_tcp(k.addr)?;
                tokio::spawn(relay::serve_tcp(
                    l,
                    balancer.clone(),
                    service,
                    self.congestion.clone(),
                ))
            }
            Protocol::Udp => {
                let s = tokio::net::UdpSocket::bind(k.addr).await?;
                tokio::spawn(relay::serve_udp(
                    s,
                    balancer.clone(),
                    service,
                    self.cfg.udp_idle,
                ))
            }
        };
        Ok(Running {
            frontend: fe.clone(),
            balancer,
            task,
        })
    }

    /// Our addresses on `lo`: exactly `want`.
    async fn sync_addresses(&mut self, want: &BTreeSet<Ipv4Addr>) {
        let have: BTreeSet<Ipv4Addr> = match self.net.addresses(self.lo).await {
            Ok(a) => a
                .into_iter()
                .filter(|(net, label)| *label == self.cfg.label && net.prefix_len() == 32)
                .map(|(net, _)| net.addr())
                .collect(),
            Err(e) => {
                self.warn("lo".into(), format!("cannot list the addresses of lo: {e}"));
                return;
            }
        };
        for ip in have.difference(want) {
            let net = Ipv4Net::new(*ip, 32).expect("/32");
            match self.net.delete_address(self.lo, net).await {
                Ok(()) => tracing::info!(address = %ip, "removed a service address from lo"),
                Err(e) => self.warn(ip.to_string(), format!("cannot remove {ip} from lo: {e}")),
            }
        }
        for ip in want.difference(&have) {
            let net = Ipv4Net::new(*ip, 32).expect("/32");
            if let Err(e) = self
                .net
                .add_address(self.lo, net, Some(&self.cfg.label))
                .await
            {
                self.warn(ip.to_string(), format!("cannot add {ip} to lo: {e}"));
            }
        }
    }

    /// Binds the DNS listeners once their address is on lo (retried each pass).
    async fn serve_dns(&mut self) {
        let Some(d) = self.dns.as_ref().filter(|d| d.tasks.is_none()) else {
            return;
        };
        let addr = SocketAddr::new(IpAddr::V4(d.addr), 53);
        let bound = async {
            let udp = tokio::net::UdpSocket::bind(addr).await?;
            let tcp = bind_tcp(addr)?;
            Ok::<_, std::io::Error>((udp, tcp))
        }
        .await;
        match bound {
            Ok((udp, tcp)) => {
                let server = d.server.clone();
                let tasks = (
                    tokio::spawn(server.clone().serve_udp(udp)),
                    tokio::spawn(server.serve_tcp(tcp)),
                );
                tracing::info!(%addr, domain = %d.server.domain, "cluster DNS listening");
                if let Some(d) = self.dns.as_mut() {
                    d.tasks = Some(tasks);
                }
            }
            Err(e) => self.warn(
                "dns".into(),
                format!("cluster DNS cannot listen on {addr}: {e}"),
            ),
        }
    }

    fn warn(&mut self, key: String, msg: String) {
        if self.warned.get(&key) != Some(&msg) {
            tracing::warn!("{msg}");
            self.warned.insert(key, msg);
        }
    }
}

/// A listening TCP socket with SO_REUSEADDR (a restarted proxy rebinds at once, with
/// the connections of the previous one in TIME_WAIT).
fn bind_tcp(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let s = match addr.ip() {
        IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    s.set_reuseaddr(true)?;
    s.bind(addr)?;
    s.listen(1024)
}
