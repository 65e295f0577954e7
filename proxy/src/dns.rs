//! Cluster DNS, node-local: each node's proxy answers on the cluster DNS address (a /32
//! on `lo`, like a service IP) from the Services and EndpointSlices it already watches,
//! with the records of upstream's DNS specification (as CoreDNS's kubernetes plugin):
//!
//! - `<svc>.<ns>.svc.<domain>`: A of the cluster IP; for a headless service, A of each
//!   ready endpoint; for an ExternalName service, a CNAME.
//! - `<hostname>.<svc>.<ns>.svc.<domain>`: a headless service's endpoint (its
//!   `hostname`, else its IP with dashes).
//! - `_<port>._<proto>.<svc>.<ns>.svc.<domain>`: SRV of a named port.
//! - `<a-b-c-d>.<ns>.pod.<domain>`: A a.b.c.d.
//!
//! Other names under the domain are NXDOMAIN (or NODATA when the name exists with other
//! types), with the zone's SOA; names outside it go to the node's resolvers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, PTR, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// TTL of every answer (CoreDNS's kubernetes plugin default).
pub const TTL: u32 = 5;

/// A named port: name, protocol (lower case), number.
pub type NamedPort = (String, String, u16);

/// A ready endpoint: IP, hostname, and its named ports' numbers.
pub type Endpoint = (Ipv4Addr, Option<String>, Vec<NamedPort>);

/// One service as DNS sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub cluster_ip: Option<Ipv4Addr>,
    pub headless: bool,
    pub external_name: Option<String>,
    pub ports: Vec<NamedPort>,
    pub endpoints: Vec<Endpoint>,
}

/// The services by namespace and name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Index {
    pub services: BTreeMap<(String, String), Entry>,
}

impl Index {
    pub fn build(services: &[Arc<Service>], slices: &[Arc<EndpointSlice>]) -> Index {
        let mut idx = Index::default();
        for s in services {
            let (Some(ns), Some(name), Some(spec)) = (
                s.metadata.namespace.clone(),
                s.metadata.name.clone(),
                s.spec.as_ref(),
            ) else {
                continue;
            };
            let external = (spec.type_.as_deref() == Some("ExternalName"))
                .then(|| spec.external_name.clone())
                .flatten();
            let cip = spec.cluster_ip.as_deref();
            idx.services.insert(
                (ns, name),
                Entry {
                    cluster_ip: cip.and_then(|ip| ip.parse().ok()),
                    headless: cip == Some("None"),
                    external_name: external,
                    ports: spec
                        .ports
                        .iter()
                        .flatten()
                        .filter_map(|p| {
                            let name = p.name.clone().filter(|n| !n.is_empty())?;
                            let proto = p.protocol.as_deref().unwrap_or("TCP").to_lowercase();
                            Some((name, proto, u16::try_from(p.port).ok()?))
                        })
                        .collect(),
                    endpoints: Vec::new(),
                },
            );
        }
        for sl in slices {
            let Some(key) = crate::model::owning_service(sl) else {
                continue;
            };
            let Some(entry) = idx.services.get_mut(&key) else {
                continue;
            };
            let ports: Vec<NamedPort> = sl
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    let name = p.name.clone().filter(|n| !n.is_empty())?;
                    let proto = p.protocol.as_deref().unwrap_or("TCP").to_lowercase();
                    Some((name, proto, u16::try_from(p.port?).ok()?))
                })
                .collect();
            for e in &sl.endpoints {
                if !e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true) {
                    continue;
                }
                if let Some(ip) = e.addresses.first().and_then(|a| a.parse().ok()) {
                    entry
                        .endpoints
                        .push((ip, e.hostname.clone(), ports.clone()));
                }
            }
            entry.endpoints.sort();
            entry.endpoints.dedup();
        }
        idx
    }
}

/// What a name under the cluster domain is.
enum Found {
    /// The name exists with these records (possibly none of the asked type).
    Records(Vec<Record>),
    /// No such name.
    Missing,
}

/// The answer to `query` (a parsed request), or `None` when the name is outside
/// `domain` (forward it).
pub fn answer(idx: &Index, domain: &Name, query: &Message) -> Option<Message> {
    let q = query.queries.first()?;
    let name = q.name().to_lowercase();
    let found = if domain.zone_of(&name) {
        lookup(idx, domain, &name)
    } else {
        // A reverse name of a service's or a headless endpoint's IP (CoreDNS's kubernetes
        // plugin serves in-addr.arpa and falls through for other addresses).
        Found::Records(vec![reverse(idx, domain, &name)?])
    };
    let mut resp = Message::response(query.metadata.id, query.metadata.op_code);
    resp.metadata.authoritative = true;
    resp.metadata.recursion_desired = query.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.add_query(q.clone());
    match found {
        Found::Records(records) => {
            let qt = q.query_type();
            let matching: Vec<Record> = records
                .into_iter()
                .filter(|r| {
                    r.record_type() == qt
                        || qt == RecordType::ANY
                        // A CNAME answers every type but itself is the answer.
                        || r.record_type() == RecordType::CNAME
                })
                .collect();
            if matching.is_empty() {
                resp.add_authority(soa(domain));
            } else {
                resp.add_answers(matching);
            }
        }
        Found::Missing => {
            resp.metadata.response_code = ResponseCode::NXDomain;
            resp.add_authority(soa(domain));
        }
    }
    Some(resp)
}

fn soa(domain: &Name) -> Record {
    let n = |s: &str| {
        Name::from_str(s)
            .expect("name")
            .append_domain(domain)
            .expect("name")
    };
    Record::from_rdata(
        domain.clone(),
        TTL,
        RData::SOA(SOA::new(
            n("ns.dns"),
            n("hostmaster"),
            1,
            7200,
            1800,
            86400,
            TTL,
        )),
    )
}

fn lookup(idx: &Index, domain: &Name, name: &Name) -> Found {
    // The labels below the domain, outermost first: [svc|pod, ns, ...].
    let below = name.num_labels().saturating_sub(domain.num_labels()) as usize;
    let labels: Vec<String> = name
        .iter()
        .take(below)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .rev()
        .collect();
    let a = |ip: Ipv4Addr| Record::from_rdata(name.clone(), TTL, RData::A(A(ip)));
    match labels
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => Found::Records(vec![soa(domain)]),
        ["svc"] | ["pod"] => Found::Records(vec![]),
        ["svc", ns] => {
            if idx.services.keys().any(|(n, _)| n == ns) {
                Found::Records(vec![])
            } else {
                Found::Missing
            }
        }
        ["pod", _ns] => Found::Records(vec![]),
        ["pod", _ns, dashed] => match dashed.replace('-', ".").parse::<Ipv4Addr>() {
            Ok(ip) => Found::Records(vec![a(ip)]),
            Err(_) => Found::Missing,
        },
        ["svc", ns, svc] => {
            let Some(e) = idx.services.get(&(ns.to_string(), svc.to_string())) else {
                return Found::Missing;
            };
            if let Some(ext) = &e.external_name {
                return match Name::from_str(ext) {
                    Ok(target) => {
                        let target = if target.is_fqdn() {
                            target
                        } else {
                            let mut t = target;
                            t.set_fqdn(true);
                            t
                        };
                        Found::Records(vec![Record::from_rdata(
                            name.clone(),
                            TTL,
                            RData::CNAME(CNAME(target)),
                        )])
                    }
                    Err(_) => Found::Records(vec![]),
                };
            }
            if e.headless {
                let ips: BTreeSet<Ipv4Addr> = e.endpoints.iter().map(|(ip, _, _)| *ip).collect();
                return Found::Records(ips.into_iter().map(a).collect());
            }
            Found::Records(e.cluster_ip.into_iter().map(a).collect())
        }
        ["svc", ns, svc, host] if !host.starts_with('_') => {
            let Some(e) = idx.services.get(&(ns.to_string(), svc.to_string())) else {
                return Found::Missing;
            };
            let ips: Vec<Record> = e
                .endpoints
                .iter()
                .filter(|(ip, h, _)| endpoint_label(*ip, h.as_deref()) == *host)
                .map(|(ip, _, _)| a(*ip))
                .collect();
            if e.headless && !ips.is_empty() {
                Found::Records(ips)
            } else {
                Found::Missing
            }
        }
        ["svc", ns, svc, proto, port] if proto.starts_with('_') && port.starts_with('_') => {
            let Some(e) = idx.services.get(&(ns.to_string(), svc.to_string())) else {
                return Found::Missing;
            };
            let (port, proto) = (&port[1..], &proto[1..]);
            let Some((_, _, svc_port)) = e.ports.iter().find(|(n, p, _)| n == port && p == proto)
            else {
                return Found::Missing;
            };
            let svc_name =
                Name::from_str(&format!("{svc}.{ns}.svc")).and_then(|n| n.append_domain(domain));
            let Ok(svc_name) = svc_name else {
                return Found::Missing;
            };
            let srv = |target: Name, p: u16| {
                Record::from_rdata(name.clone(), TTL, RData::SRV(SRV::new(0, 100, p, target)))
            };
            if !e.headless {
                return Found::Records(vec![srv(svc_name, *svc_port)]);
            }
            let mut out = Vec::new();
            for (ip, h, ports) in &e.endpoints {
                let Some((_, _, target_port)) =
                    ports.iter().find(|(n, p, _)| n == port && p == proto)
                else {
                    continue;
                };
                let label = endpoint_label(*ip, h.as_deref());
                if let Ok(t) = Name::from_str(&label).and_then(|l| l.append_domain(&svc_name)) {
                    out.push(srv(t, *target_port));
                }
            }
            Found::Records(out)
        }
        _ => Found::Missing,
    }
}

/// The PTR record of `name` (`d.c.b.a.in-addr.arpa.`) when a.b.c.d is a service's
/// cluster IP (`<svc>.<ns>.svc.<domain>`) or a headless service's ready endpoint
/// (`<hostname-or-dashed-ip>.<svc>.<ns>.svc.<domain>`).
fn reverse(idx: &Index, domain: &Name, name: &Name) -> Option<Record> {
    let net = name.parse_arpa_name().ok()?;
    let IpAddr::V4(ip) = net.addr() else {
        return None;
    };
    if net.prefix_len() != 32 {
        return None;
    }
    let target = idx.services.iter().find_map(|((ns, svc), e)| {
        if e.cluster_ip == Some(ip) && !e.headless {
            return Some(format!("{svc}.{ns}.svc"));
        }
        let (_, h, _) = e.endpoints.iter().find(|(eip, _, _)| *eip == ip)?;
        e.headless
            .then(|| format!("{}.{svc}.{ns}.svc", endpoint_label(ip, h.as_deref())))
    })?;
    let target = Name::from_str(&target).ok()?.append_domain(domain).ok()?;
    Some(Record::from_rdata(
        name.clone(),
        TTL,
        RData::PTR(PTR(target)),
    ))
}

/// A headless endpoint's DNS label: its hostname, else its IP with dashes.
fn endpoint_label(ip: Ipv4Addr, hostname: Option<&str>) -> String {
    match hostname {
        Some(h) if !h.is_empty() => h.to_lowercase(),
        _ => ip.to_string().replace('.', "-"),
    }
}

/// The server: UDP and TCP on `addr:53`, answers from `index`, other names relayed to
/// `upstreams`.
pub struct Server {
    pub domain: Name,
    pub index: Arc<RwLock<Index>>,
    pub upstreams: Vec<SocketAddr>,
}

impl Server {
    /// The reply to one request message (raw bytes in, raw bytes out).
    async fn reply(&self, req: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let msg = match Message::from_vec(req) {
            Ok(m) => m,
            Err(_) => {
                // Too broken to answer with its id: FORMERR with the id if there is one.
                let id = req.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]))?;
                return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                    .to_vec()
                    .ok();
            }
        };
        if msg.metadata.message_type != MessageType::Query {
            return None;
        }
        let local = {
            let idx = self.index.read().expect("dns index");
            answer(&idx, &self.domain, &msg)
        };
        match local {
            Some(resp) => resp.to_vec().ok(),
            None => self.forward(req, msg.metadata.id, tcp).await,
        }
    }

    async fn forward(&self, req: &[u8], id: u16, tcp: bool) -> Option<Vec<u8>> {
        for up in &self.upstreams {
            let r = if tcp {
                forward_tcp(*up, req).await
            } else {
                forward_udp(*up, req).await
            };
            match r {
                Ok(bytes) => return Some(bytes),
                Err(e) => tracing::debug!(upstream = %up, error = %e, "dns forward"),
            }
        }
        Message::error_msg(id, OpCode::Query, ResponseCode::ServFail)
            .to_vec()
            .ok()
    }

    pub async fn serve_udp(self: Arc<Self>, sock: UdpSocket) {
        let sock = Arc::new(sock);
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            let (me, sock, req) = (self.clone(), sock.clone(), buf[..n].to_vec());
            tokio::spawn(async move {
                if let Some(resp) = me.reply(&req, false).await {
                    let resp = if resp.len() > 512 && !has_edns(&req) {
                        truncated(&req).unwrap_or(resp)
                    } else {
                        resp
                    };
                    let _ = sock.send_to(&resp, peer).await;
                }
            });
        }
    }

    pub async fn serve_tcp(self: Arc<Self>, l: TcpListener) {
        loop {
            let Ok((mut conn, _)) = l.accept().await else {
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                loop {
                    let Ok(len) = conn.read_u16().await else {
                        return;
                    };
                    let mut req = vec![0u8; usize::from(len)];
                    if conn.read_exact(&mut req).await.is_err() {
                        return;
                    }
                    let Some(resp) = me.reply(&req, true).await else {
                        return;
                    };
                    let Ok(n) = u16::try_from(resp.len()) else {
                        return;
                    };
                    if conn.write_u16(n).await.is_err() || conn.write_all(&resp).await.is_err() {
                        return;
                    }
                }
            });
        }
    }
}

fn has_edns(req: &[u8]) -> bool {
    Message::from_vec(req).is_ok_and(|m| m.edns.is_some())
}

/// The query with TC set and no records: the client retries over TCP.
fn truncated(req: &[u8]) -> Option<Vec<u8>> {
    let q = Message::from_vec(req).ok()?;
    let mut r = Message::response(q.metadata.id, q.metadata.op_code);
    r.metadata.truncation = true;
    r.metadata.recursion_desired = q.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    r.add_queries(q.queries.iter().cloned());
    r.to_vec().ok()
}

const FORWARD_TIMEOUT: Duration = Duration::from_secs(3);

async fn forward_udp(up: SocketAddr, req: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if up.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = UdpSocket::bind(local).await?;
    s.connect(up).await?;
    s.send(req).await?;
    let mut buf = vec![0u8; 65_535];
    let n = tokio::time::timeout(FORWARD_TIMEOUT, s.recv(&mut buf))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
    buf.truncate(n);
    Ok(buf)
}

async fn forward_tcp(up: SocketAddr, req: &[u8]) -> std::io::Result<Vec<u8>> {
    let work = async {
        let mut c = tokio::net::TcpStream::connect(up).await?;
        let len = u16::try_from(req.len())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "too long"))?;
        c.write_u16(len).await?;
        c.write_all(req).await?;
        let n = c.read_u16().await?;
        let mut buf = vec![0u8; usize::from(n)];
        c.read_exact(&mut buf).await?;
        Ok(buf)
    };
    tokio::time::timeout(FORWARD_TIMEOUT, work)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))?
}

/// The node's resolvers from resolv.conf text, minus `exclude` (the cluster DNS itself).
pub fn upstreams(resolv_conf: &str, exclude: IpAddr) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
        .filter(|ip| *ip != exclude)
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use serde_json::json;

    fn index() -> Index {
        let svc = |v: serde_json::Value| Arc::new(serde_json::from_value::<Service>(v).unwrap());
        let services = vec![
            svc(json!({"metadata": {"namespace": "ns", "name": "web"},
                "spec": {"clusterIP": "10.43.0.20", "ports": [
                    {"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}})),
            svc(json!({"metadata": {"namespace": "ns", "name": "db"},
                "spec": {"clusterIP": "None", "ports": [{"name": "sql", "port": 5432}]}})),
            svc(json!({"metadata": {"namespace": "ns", "name": "ext"},
                "spec": {"type": "ExternalName", "externalName": "example.com"}})),
        ];
        let slices = vec![Arc::new(
            serde_json::from_value::<EndpointSlice>(json!({
                "metadata": {"namespace": "ns", "name": "db-1",
                             "labels": {"kubernetes.io/service-name": "db"}},
                "addressType": "IPv4",
                "ports": [{"name": "sql", "port": 15432, "protocol": "TCP"}],
                "endpoints": [
                    {"addresses": ["10.42.0.7"], "hostname": "db-0"},
                    {"addresses": ["10.42.0.8"]},
                    {"addresses": ["10.42.0.9"], "conditions": {"ready": false}}]}))
            .unwrap(),
        )];
        Index::build(&services, &slices)
    }

    fn ask(name: &str, t: RecordType) -> Option<Message> {
        let mut q = Message::query();
        q.add_query(Query::query(Name::from_str(name).unwrap(), t));
        let domain = Name::from_str("cluster.local.").unwrap();
        answer(&index(), &domain, &q)
    }

    fn rdata(m: &Message) -> Vec<String> {
        m.answers.iter().map(|r| r.data.to_string()).collect()
    }

    #[test]
    fn services_pods_and_ports() {
        let m = ask("web.ns.svc.cluster.local.", RecordType::A).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert_eq!(rdata(&m), ["10.43.0.20"]);
        assert_eq!(m.answers[0].ttl, TTL);
        // Case does not matter.
        assert_eq!(
            rdata(&ask("WEB.ns.svc.Cluster.Local.", RecordType::A).unwrap()),
            ["10.43.0.20"]
        );
        // Headless: the ready endpoints.
        let m = ask("db.ns.svc.cluster.local.", RecordType::A).unwrap();
        assert_eq!(rdata(&m), ["10.42.0.7", "10.42.0.8"]);
        assert_eq!(
            rdata(&ask("db-0.db.ns.svc.cluster.local.", RecordType::A).unwrap()),
            ["10.42.0.7"]
        );
        assert_eq!(
            rdata(&ask("10-42-0-8.db.ns.svc.cluster.local.", RecordType::A).unwrap()),
            ["10.42.0.8"]
        );
        // ExternalName: a CNAME, whatever was asked.
        let m = ask("ext.ns.svc.cluster.local.", RecordType::A).unwrap();
        assert_eq!(rdata(&m), ["example.com."]);
        // SRV: the service port for a cluster IP, each endpoint's port when headless.
        let m = ask("_http._tcp.web.ns.svc.cluster.local.", RecordType::SRV).unwrap();
        assert_eq!(rdata(&m), ["0 100 80 web.ns.svc.cluster.local."]);
        let m = ask("_dns._udp.web.ns.svc.cluster.local.", RecordType::SRV).unwrap();
        assert_eq!(rdata(&m), ["0 100 53 web.ns.svc.cluster.local."]);
        let m = ask("_sql._tcp.db.ns.svc.cluster.local.", RecordType::SRV).unwrap();
        assert_eq!(
            rdata(&m),
            [
                "0 100 15432 db-0.db.ns.svc.cluster.local.",
                "0 100 15432 10-42-0-8.db.ns.svc.cluster.local."
            ]
        );
        // Pods by dashed IP.
        assert_eq!(
            rdata(&ask("10-42-1-5.ns.pod.cluster.local.", RecordType::A).unwrap()),
            ["10.42.1.5"]
        );
    }

    /// PTR of a cluster IP and of a headless service's endpoints, as CoreDNS's; other
    /// reverse names are forwarded.
    #[test]
    fn reverse_names() {
        let m = ask("20.0.43.10.in-addr.arpa.", RecordType::PTR).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(rdata(&m), ["web.ns.svc.cluster.local."]);
        assert_eq!(
            rdata(&ask("7.0.42.10.in-addr.arpa.", RecordType::PTR).unwrap()),
            ["db-0.db.ns.svc.cluster.local."]
        );
        assert_eq!(
            rdata(&ask("8.0.42.10.in-addr.arpa.", RecordType::PTR).unwrap()),
            ["10-42-0-8.db.ns.svc.cluster.local."]
        );
        // Not ready, or no one's: the node's resolvers.
        assert!(ask("9.0.42.10.in-addr.arpa.", RecordType::PTR).is_none());
        assert!(ask("1.2.0.192.in-addr.arpa.", RecordType::PTR).is_none());
        assert!(ask("0.43.10.in-addr.arpa.", RecordType::PTR).is_none());
    }

    #[test]
    fn missing_names_and_types_and_other_zones() {
        for missing in [
            "nope.ns.svc.cluster.local.",
            "web.other.svc.cluster.local.",
            "db-9.db.ns.svc.cluster.local.",
            "_nope._tcp.web.ns.svc.cluster.local.",
            "x.y.z.w.v.cluster.local.",
            "not-an-ip.ns.pod.cluster.local.",
        ] {
            let m = ask(missing, RecordType::A).unwrap();
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::NXDomain,
                "{missing}"
            );
            assert!(m.answers.is_empty());
            assert_eq!(m.authorities[0].record_type(), RecordType::SOA, "{missing}");
        }
        // The name exists, the type does not: NODATA with the SOA.
        let m = ask("web.ns.svc.cluster.local.", RecordType::AAAA).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
        assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
        assert_eq!(
            ask("ns.svc.cluster.local.", RecordType::A)
                .unwrap()
                .metadata
                .response_code,
            ResponseCode::NoError
        );
        // Outside the cluster domain: forwarded.
        assert!(ask("example.com.", RecordType::A).is_none());
        assert!(ask("cluster.local.example.com.", RecordType::A).is_none());
    }

    /// Names outside the domain go to the node's resolver, byte for byte; without one
    /// that answers, SERVFAIL.
    #[tokio::test]
    async fn other_names_are_forwarded() {
        let upstream = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let up_addr = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 512];
            while let Ok((n, peer)) = upstream.recv_from(&mut buf).await {
                let q = Message::from_vec(&buf[..n]).unwrap();
                let mut r = Message::response(q.metadata.id, OpCode::Query);
                r.add_queries(q.queries.clone());
                r.add_answer(Record::from_rdata(
                    q.queries[0].name().clone(),
                    60,
                    RData::A(A(Ipv4Addr::new(192, 0, 2, 99))),
                ));
                upstream.send_to(&r.to_vec().unwrap(), peer).await.unwrap();
            }
        });
        let server = |ups: Vec<SocketAddr>| Server {
            domain: Name::from_str("cluster.local.").unwrap(),
            index: Arc::new(RwLock::new(index())),
            upstreams: ups,
        };
        let mut q = Message::query();
        q.add_query(Query::query(
            Name::from_str("example.com.").unwrap(),
            RecordType::A,
        ));
        let req = q.to_vec().unwrap();
        let got = server(vec![up_addr]).reply(&req, false).await.unwrap();
        let m = Message::from_vec(&got).unwrap();
        assert_eq!(m.metadata.id, q.metadata.id);
        assert_eq!(rdata(&m), ["192.0.2.99"]);
        // Cluster names never leave the node.
        let mut q2 = Message::query();
        q2.add_query(Query::query(
            Name::from_str("web.ns.svc.cluster.local.").unwrap(),
            RecordType::A,
        ));
        let m = Message::from_vec(
            &server(vec![up_addr])
                .reply(&q2.to_vec().unwrap(), false)
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(rdata(&m), ["10.43.0.20"]);
        // A dead upstream (nothing listens there): SERVFAIL.
        let dead = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap()
        };
        let m = Message::from_vec(&server(vec![dead]).reply(&req, false).await.unwrap()).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        // Garbage: FORMERR with its id.
        let m = Message::from_vec(
            &server(vec![])
                .reply(&[0x12, 0x34, 0xff], false)
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (m.metadata.id, m.metadata.response_code),
            (0x1234, ResponseCode::FormErr)
        );
    }

    #[test]
    fn upstreams_skip_the_cluster_dns() {
        let conf = "# x\nnameserver 10.43.0.10\nnameserver 192.0.2.1\nsearch a b\nnameserver ::1\n";
        let got = upstreams(conf, "10.43.0.10".parse().unwrap());
        assert_eq!(
            got,
            vec!["192.0.2.1:53".parse().unwrap(), "[::1]:53".parse().unwrap()]
        );
    }
}
