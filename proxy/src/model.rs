//! What the proxy should serve, from Services and EndpointSlices (pure): one
//! [`Frontend`] per address, port and protocol a Service answers on, with the ready
//! endpoints behind it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// TCP or UDP (SCTP is not proxied).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    fn parse(p: Option<&str>) -> Option<Protocol> {
        match p.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            _ => None,
        }
    }
}

/// Where a frontend listens: a cluster or external IP and the service port, or any
/// address of the node and a node port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Listen {
    pub addr: SocketAddr,
    pub protocol: Protocol,
}

/// One listener's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontend {
    /// `namespace/name:port-name`, for logs.
    pub service: String,
    /// Ready endpoints, in a stable order.
    pub endpoints: Vec<SocketAddr>,
    /// `sessionAffinity: ClientIP` and its timeout.
    pub affinity: Option<Duration>,
}

/// Upstream's default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: Duration = Duration::from_secs(10_800);

/// Everything to serve: the frontends, and the addresses that must be local for them
/// (cluster and external IPs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub frontends: BTreeMap<Listen, Frontend>,
    pub addresses: BTreeSet<Ipv4Addr>,
}

/// The namespace and name of the service an IPv4 EndpointSlice belongs to (its
/// `kubernetes.io/service-name` label).
pub fn owning_service(s: &EndpointSlice) -> Option<(String, String)> {
    if s.address_type != "IPv4" {
        return None;
    }
    let ns = s.metadata.namespace.clone()?;
    let svc = s
        .metadata
        .labels
        .as_ref()?
        .get("kubernetes.io/service-name")?;
    Some((ns, svc.clone()))
}

/// The frontends of `services`, fed by `slices` (by their `kubernetes.io/service-name`
/// label). Headless and ExternalName services have none; a service port without ready
/// endpoints still gets its listener (connections to it are refused).
pub fn desired(services: &[Arc<Service>], slices: &[Arc<EndpointSlice>]) -> Desired {
    let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for s in slices {
        if let Some(key) = owning_service(s) {
            by_service.entry(key).or_default().push(s);
        }
    }
    let mut out = Desired::default();
    for svc in services {
        let (Some(ns), Some(name), Some(spec)) = (
            svc.metadata.namespace.as_deref(),
            svc.metadata.name.as_deref(),
            svc.spec.as_ref(),
        ) else {
            continue;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let cluster_ip = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
        let external: Vec<Ipv4Addr> = spec
            .external_ips
            .iter()
            .flatten()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u64::try_from(t).ok())
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
        });
        let node_ports = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
        let slices = by_service
            .get(&(ns.to_string(), name.to_string()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        for port in spec.ports.iter().flatten() {
            let Some(protocol) = Protocol::parse(port.protocol.as_deref()) else {
                continue;
            };
            let Ok(p) = u16::try_from(port.port) else {
                continue;
            };
            let fe = Frontend {
                service: match port.name.as_deref() {
                    Some(n) if !n.is_empty() => format!("{ns}/{name}:{n}"),
                    _ => format!("{ns}/{name}"),
                },
                endpoints: ready_endpoints(slices, port, protocol),
                affinity,
            };
            // A headless service (clusterIP None) has no cluster IP to listen on.
            let ips = cluster_ip.into_iter().chain(external.iter().copied());
            for ip in ips {
                out.addresses.insert(ip);
                out.frontends.insert(
                    Listen {
                        addr: SocketAddr::new(IpAddr::V4(ip), p),
                        protocol,
                    },
                    fe.clone(),
                );
            }
            if node_ports && cluster_ip.is_some() {
                if let Some(np) = port.node_port.and_then(|n| u16::try_from(n).ok()) {
                    out.frontends.insert(
                        Listen {
                            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), np),
                            protocol,
                        },
                        fe,
                    );
                }
            }
        }
    }
    out
}

/// The ready endpoints of a service port: the slices' port of the same name and
/// protocol, the endpoints whose `ready` is not false.
fn ready_endpoints(
    slices: &[&EndpointSlice],
    port: &ServicePort,
    protocol: Protocol,
) -> Vec<SocketAddr> {
    let want_name = port.name.as_deref().unwrap_or("");
    let mut out = BTreeSet::new();
    for s in slices {
        let Some(target) = s.ports.iter().flatten().find_map(|p| {
            (p.name.as_deref().unwrap_or("") == want_name
                && Protocol::parse(p.protocol.as_deref()) == Some(protocol))
            .then_some(p.port)
            .flatten()
        }) else {
            continue;
        };
        let Ok(target) = u16::try_from(target) else {
            continue;
        };
        for e in &s.endpoints {
            let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if !ready {
                continue;
            }
            if let Some(ip) = e.addresses.first().and_then(|a| a.parse::<IpAddr>().ok()) {
                out.insert(SocketAddr::new(ip, target));
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Arc<Service> {
        Arc::new(serde_json::from_value(v).unwrap())
    }
    fn slice(v: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(serde_json::from_value(v).unwrap())
    }
    fn listen(addr: &str, protocol: Protocol) -> Listen {
        Listen {
            addr: addr.parse().unwrap(),
            protocol,
        }
    }

    #[test]
    fn frontends_of_cluster_ips_node_ports_and_external_ips() {
        let services = vec![
            svc(json!({"metadata": {"namespace": "ns", "name": "web"},
                "spec": {"type": "NodePort", "clusterIP": "10.43.0.20", "externalIPs": ["192.0.2.50"],
                         "sessionAffinity": "ClientIP",
                         "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                         "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080},
                                   {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053},
                                   {"name": "sctp", "port": 99, "protocol": "SCTP"}]}})),
            svc(json!({"metadata": {"namespace": "ns", "name": "headless"},
                "spec": {"clusterIP": "None", "ports": [{"port": 80}]}})),
            svc(json!({"metadata": {"namespace": "ns", "name": "ext"},
                "spec": {"type": "ExternalName", "externalName": "example.com", "ports": [{"port": 80}]}})),
            svc(json!({"metadata": {"namespace": "ns", "name": "plain"},
                "spec": {"clusterIP": "10.43.0.21", "ports": [{"port": 81, "targetPort": 9000}]}})),
        ];
        let slices = vec![
            slice(json!({"metadata": {"namespace": "ns", "name": "web-1",
                    "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                          {"name": "dns", "port": 5353, "protocol": "UDP"}],
                "endpoints": [
                    {"addresses": ["10.42.0.5"], "conditions": {"ready": true}},
                    {"addresses": ["10.42.0.4"]},
                    {"addresses": ["10.42.0.6"], "conditions": {"ready": false}}]})),
            slice(json!({"metadata": {"namespace": "ns", "name": "web-2",
                    "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": ["10.42.1.9"], "conditions": {"ready": true}}]})),
            // Another namespace's service of the same name: not ours.
            slice(json!({"metadata": {"namespace": "other", "name": "web-x",
                    "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": ["10.9.9.9"]}]})),
        ];
        let d = desired(&services, &slices);
        let keys: Vec<Listen> = d.frontends.keys().copied().collect();
        assert_eq!(
            keys,
            vec![
                listen("0.0.0.0:30053", Protocol::Udp),
                listen("0.0.0.0:30080", Protocol::Tcp),
                listen("10.43.0.20:53", Protocol::Udp),
                listen("10.43.0.20:80", Protocol::Tcp),
                listen("10.43.0.21:81", Protocol::Tcp),
                listen("192.0.2.50:53", Protocol::Udp),
                listen("192.0.2.50:80", Protocol::Tcp),
            ]
        );
        let http = &d.frontends[&listen("10.43.0.20:80", Protocol::Tcp)];
        assert_eq!(http.service, "ns/web:http");
        let eps: Vec<String> = http.endpoints.iter().map(|e| e.to_string()).collect();
        assert_eq!(eps, ["10.42.0.4:8080", "10.42.0.5:8080", "10.42.1.9:8080"]);
        assert_eq!(http.affinity, Some(Duration::from_secs(60)));
        assert_eq!(d.frontends[&listen("0.0.0.0:30080", Protocol::Tcp)], *http);
        let dns = &d.frontends[&listen("10.43.0.20:53", Protocol::Udp)];
        let eps: Vec<String> = dns.endpoints.iter().map(|e| e.to_string()).collect();
        assert_eq!(eps, ["10.42.0.4:5353", "10.42.0.5:5353"]);
        let plain = &d.frontends[&listen("10.43.0.21:81", Protocol::Tcp)];
        assert_eq!(plain.service, "ns/plain");
        assert!(plain.endpoints.is_empty());
        assert_eq!(plain.affinity, None);
        let addrs: Vec<String> = d.addresses.iter().map(|a| a.to_string()).collect();
        assert_eq!(addrs, ["10.43.0.20", "10.43.0.21", "192.0.2.50"]);
    }

    #[test]
    fn client_ip_affinity_defaults_to_three_hours() {
        let services = vec![svc(json!({"metadata": {"namespace": "ns", "name": "s"},
            "spec": {"clusterIP": "10.43.0.9", "sessionAffinity": "ClientIP", "ports": [{"port": 80}]}}))];
        let d = desired(&services, &[]);
        assert_eq!(
            d.frontends[&listen("10.43.0.9:80", Protocol::Tcp)].affinity,
            Some(DEFAULT_AFFINITY_TIMEOUT)
        );
    }
}
