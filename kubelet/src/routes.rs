//! host-gw, as flannel's backend of that name: each node routes every other node's pod
//! CIDR via that node's InternalIP, through netlink. No overlay, no NAT, no iptables: the
//! nodes must share a link (the gateway has to be directly reachable). Routes carry
//! [`hostnet::ROUTE_PROTOCOL`] and this agent's metric ([`metric`]), so the ones of nodes
//! that are gone (also while this kubelet was down) are found and removed, and several
//! agents on one machine (tests) leave each other's routes alone.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hostnet::{Ipv4Net, Net, Route, ROUTE_PROTOCOL};
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use tokio::sync::watch;

use crate::Config;

/// Routes are checked again this often even without Node changes (someone may have
/// removed one by hand).
const RESYNC: Duration = Duration::from_secs(30);

/// The metric of the routes of the agent at `agent_dir`: stable, and distinct for the
/// agents of one machine (from the hash that names its bridge).
pub fn metric(agent_dir: &std::path::Path) -> u32 {
    let name = crate::containerd::agent_name(agent_dir);
    let h = u32::from_str_radix(name.trim_start_matches("rkube-"), 16).unwrap_or(0);
    0x4000 + (h % 0x4000)
}

/// The routes this node wants: for each other node with a pod CIDR and an IPv4
/// InternalIP, `podCIDR via InternalIP`. Nodes on this node's own address (several
/// nodes of one machine, as tests run them) need none, nor do loopback ones.
pub fn desired(nodes: &[Arc<Node>], me: &str, my_ip: IpAddr, metric: u32) -> BTreeSet<Route> {
    let mut out = BTreeSet::new();
    for n in nodes {
        if n.metadata.name.as_deref() == Some(me) {
            continue;
        }
        let Some(cidr) = n
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_deref())
            .and_then(|c| c.parse::<Ipv4Net>().ok())
        else {
            continue;
        };
        let ip = n
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .and_then(|a| a.address.parse::<Ipv4Addr>().ok());
        let Some(ip) = ip else { continue };
        if IpAddr::V4(ip) == my_ip || ip.is_loopback() || ip.is_unspecified() {
            continue;
        }
        out.insert(Route {
            destination: cidr.trunc(),
            gateway: Some(ip),
            metric,
        });
    }
    out
}

/// Keeps the routes of [`desired`] in the kernel until `shutdown`; they stay when the
/// kubelet stops (pods keep talking), as flannel leaves them.
pub async fn run(
    client: kube::Client,
    cfg: Arc<Config>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), crate::Error> {
    if let Err(e) = hostnet::enable_ipv4_forwarding() {
        tracing::warn!(error = %e, "pods will not reach other nodes: IPv4 forwarding is off (run as root)");
    }
    let net = match Net::connect() {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "no routes to other nodes' pods");
            let _ = shutdown.changed().await;
            return Ok(());
        }
    };
    let (store, writer) = reflector::store();
    let nodes = Api::<Node>::all(client);
    // The watch runs on its own, so the store fills while a pass is under way; each
    // change pokes the loop (a burst of them is one pass).
    let changed = Arc::new(tokio::sync::Notify::new());
    let poke = changed.clone();
    let watch = tokio::spawn(
        reflector(writer, watcher(nodes, watcher::Config::default()))
            .default_backoff()
            .touched_objects()
            .for_each(move |e| {
                match e {
                    Ok(_) => poke.notify_one(),
                    Err(e) => tracing::debug!(error = %e, "node watch"),
                }
                futures::future::ready(())
            }),
    );
    let _stop_watch = AbortOnDrop(watch);
    tokio::select! {
        r = store.wait_until_ready() => if r.is_err() { return Ok(()) },
        _ = shutdown.changed() => return Ok(()),
    }
    let mut tick = tokio::time::interval(RESYNC);
    // The last failure per route, logged once until it changes.
    let mut failing: HashMap<Route, String> = HashMap::new();
    let metric = metric(&cfg.agent_dir);
    loop {
        let want = desired(&store.state(), &cfg.node_name, cfg.node_ip, metric);
        sync(&net, &want, metric, &mut failing).await;
        tokio::select! {
            _ = changed.notified() => {}
            _ = tick.tick() => {}
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One pass: removes our routes that are not wanted, adds or replaces the wanted ones.
async fn sync(
    net: &Net,
    want: &BTreeSet<Route>,
    metric: u32,
    failing: &mut HashMap<Route, String>,
) {
    let have: BTreeSet<Route> = match net.routes(ROUTE_PROTOCOL).await {
        Ok(r) => r.into_iter().filter(|r| r.metric == metric).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list routes");
            return;
        }
    };
    for r in have.difference(want) {
        match net.delete_route(r, ROUTE_PROTOCOL).await {
            Ok(()) => {
                tracing::info!(destination = %r.destination, "removed the route of a node that is gone")
            }
            Err(e) => tracing::warn!(error = %e, "cannot remove a stale route"),
        }
    }
    failing.retain(|r, _| want.contains(r));
    for r in want.difference(&have) {
        match net.replace_route(r, ROUTE_PROTOCOL).await {
            Ok(()) => {
                failing.remove(r);
                tracing::info!(destination = %r.destination, gateway = ?r.gateway, "route to a node's pods");
            }
            Err(e) => {
                let msg = e.to_string();
                if failing.get(r) != Some(&msg) {
                    tracing::warn!(
                        error = %msg,
                        "pods of that node are unreachable from here: host-gw needs the nodes on one link (the gateway must be directly reachable)"
                    );
                    failing.insert(r.clone(), msg);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeSpec, NodeStatus};

    fn node(name: &str, cidr: Option<&str>, ip: Option<&str>) -> Arc<Node> {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.spec = Some(NodeSpec {
            pod_cidr: cidr.map(Into::into),
            ..Default::default()
        });
        n.status = Some(NodeStatus {
            addresses: Some(
                ip.into_iter()
                    .map(|ip| NodeAddress {
                        type_: "InternalIP".into(),
                        address: ip.into(),
                    })
                    .chain([NodeAddress {
                        type_: "Hostname".into(),
                        address: name.into(),
                    }])
                    .collect(),
            ),
            ..Default::default()
        });
        Arc::new(n)
    }

    #[test]
    fn routes_to_other_nodes_pod_cidrs_via_their_internal_ips() {
        let me: IpAddr = "10.0.0.1".parse().unwrap();
        let nodes = vec![
            node("a", Some("10.42.0.0/24"), Some("10.0.0.1")),
            node("b", Some("10.42.1.0/24"), Some("10.0.0.2")),
            // No pod CIDR yet, no address yet, IPv6 only, loopback, my own address,
            // a pod CIDR that is not one: no route.
            node("c", None, Some("10.0.0.3")),
            node("d", Some("10.42.3.0/24"), None),
            node("e", Some("10.42.4.0/24"), Some("fd00::5")),
            node("f", Some("10.42.5.0/24"), Some("127.0.0.1")),
            node("g", Some("10.42.6.0/24"), Some("10.0.0.1")),
            node("h", Some("bogus"), Some("10.0.0.8")),
            // A CIDR written with host bits is routed as its network.
            node("i", Some("10.42.9.7/24"), Some("10.0.0.9")),
        ];
        let got: Vec<String> = desired(&nodes, "a", me, 7)
            .iter()
            .map(|r| {
                format!(
                    "{} via {} metric {}",
                    r.destination,
                    r.gateway.unwrap(),
                    r.metric
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                "10.42.1.0/24 via 10.0.0.2 metric 7",
                "10.42.9.0/24 via 10.0.0.9 metric 7"
            ]
        );
        let (a, b) = (
            metric(std::path::Path::new("/var/lib/rkube-a/agent")),
            metric(std::path::Path::new("/var/lib/rkube-b/agent")),
        );
        assert_ne!(a, b);
        assert!((0x4000..0x8000).contains(&a), "{a}");
    }
}
