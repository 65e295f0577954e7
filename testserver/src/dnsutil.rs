//! The DNS tools of upstream's dnsutils images (jessie-dnsutils: `dig`, `getent`) and
//! agnhost's `dns-suffix` / `dns-server-list`, for the DNS conformance tests' probe
//! scripts (busybox's `hostname -i` does the rest). The image links `/usr/bin/dig` and
//! `/usr/bin/getent` to this binary.
//!
//! - `dig [@server] [-p port] [-x addr] [+short] [+noall] [+answer] [+search|+nosearch]
//!   [+tcp|+notcp|+vc|+novc] name [type]`: one query (UDP unless +tcp; a truncated UDP
//!   reply is retried over TCP, as dig does), printed as dig prints it: `+short` the
//!   answers' data, one a line; else the answer section as `name TTL IN TYPE data`
//!   (with `;; ANSWER SECTION:` and the status unless `+noall`). `+search` walks
//!   resolv.conf's search list as dig does: a name with `ndots` or more dots is tried
//!   as it is first, others after the search domains; the next one is tried on NXDOMAIN.
//!   Exit 0 on an answer (any rcode), 9 when no server answered.
//! - `getent hosts|ahosts name...`: `/etc/hosts`, then DNS (A records, the search list
//!   as glibc walks it); `IP<spaces>name` lines; exit 2 when a name is not found.
//! - `dns-suffix`, `dns-server-list`: resolv.conf's search list / nameservers, joined by
//!   commas (agnhost's).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// `/etc/resolv.conf`, the parts the tools use.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub ndots: usize,
}

impl ResolvConf {
    pub fn parse(text: &str) -> ResolvConf {
        let mut r = ResolvConf {
            ndots: 1,
            ..Default::default()
        };
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut f = line.split_whitespace();
            match f.next() {
                Some("nameserver") => r.servers.extend(f.next().map(str::to_string)),
                Some("search") | Some("domain") => r.searches = f.map(str::to_string).collect(),
                Some("options") => {
                    for o in f {
                        if let Some(n) = o.strip_prefix("ndots:").and_then(|n| n.parse().ok()) {
                            r.ndots = n;
                        }
                    }
                }
                _ => {}
            }
        }
        r
    }

    fn read() -> ResolvConf {
        ResolvConf::parse(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
    }
}

/// The names to try for `name`, in order: dig's (`+search`) and glibc's walk of the
/// search list. A trailing dot: the name only.
pub fn candidates(name: &str, conf: &ResolvConf, search: bool) -> Vec<String> {
    if name.ends_with('.') {
        return vec![name.to_string()];
    }
    let abs = format!("{name}.");
    if !search {
        return vec![abs];
    }
    let dots = name.matches('.').count();
    let searched = conf
        .searches
        .iter()
        .map(|d| format!("{name}.{}.", d.trim_end_matches('.')));
    if dots >= conf.ndots {
        std::iter::once(abs).chain(searched).collect()
    } else {
        searched.chain(std::iter::once(abs)).collect()
    }
}

/// A subcommand of this module, by name (argv[0]'s base name or the first argument).
pub fn run(cmd: &str, args: &[String]) -> Option<i32> {
    Some(match cmd {
        "dig" => dig(args),
        "getent" => getent(args),
        "dns-suffix" => {
            println!("{}", ResolvConf::read().searches.join(","));
            0
        }
        "dns-server-list" => {
            println!("{}", ResolvConf::read().servers.join(","));
            0
        }
        _ => return None,
    })
}

struct DigArgs {
    server: Option<String>,
    port: u16,
    name: Option<String>,
    rtype: RecordType,
    short: bool,
    comments: bool,
    answer: bool,
    search: bool,
    tcp: bool,
}

fn parse_dig(args: &[String]) -> Result<DigArgs, String> {
    let mut d = DigArgs {
        server: None,
        port: 53,
        name: None,
        rtype: RecordType::A,
        short: false,
        comments: true,
        answer: true,
        search: false,
        tcp: false,
    };
    let mut typed = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(s) = a.strip_prefix('@') {
            d.server = Some(s.to_string());
        } else if a == "-p" {
            d.port = it
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or("-p needs a port")?;
        } else if a == "-x" {
            let ip: IpAddr = it
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or("-x needs an address")?;
            d.name = Some(Name::from(ip).to_string());
            d.rtype = RecordType::PTR;
            typed = true;
        } else if let Some(opt) = a.strip_prefix('+') {
            match opt {
                "short" => d.short = true,
                "noall" => {
                    d.comments = false;
                    d.answer = false;
                }
                "all" => {
                    d.comments = true;
                    d.answer = true;
                }
                "answer" => d.answer = true,
                "noanswer" => d.answer = false,
                "comments" => d.comments = true,
                "nocomments" => d.comments = false,
                "search" => d.search = true,
                "nosearch" => d.search = false,
                "tcp" | "vc" => d.tcp = true,
                "notcp" | "novc" => d.tcp = false,
                _ => {} // other display and query options: dig's defaults are fine
            }
        } else if a.starts_with('-') {
            return Err(format!("unsupported option {a}"));
        } else if d.name.is_none() {
            d.name = Some(a.clone());
        } else if !typed {
            d.rtype =
                RecordType::from_str(&a.to_uppercase()).map_err(|_| format!("unknown type {a}"))?;
            typed = true;
        } else if !a.eq_ignore_ascii_case("IN") {
            return Err(format!("unexpected argument {a}"));
        }
    }
    Ok(d)
}

/// One exchange with `server`, over TCP when asked or when the UDP reply is truncated.
pub fn exchange(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
    tcp: bool,
) -> std::io::Result<Message> {
    let mut q = Message::query();
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(name.clone(), rtype));
    let req = q.to_vec().map_err(std::io::Error::other)?;
    let timeout = Some(Duration::from_secs(5));
    let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    if !tcp {
        let local: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().expect("addr")
        } else {
            "[::]:0".parse().expect("addr")
        };
        let s = UdpSocket::bind(local)?;
        s.set_read_timeout(timeout)?;
        s.connect(server)?;
        s.send(&req)?;
        let mut buf = vec![0u8; 65_535];
        loop {
            let n = s.recv(&mut buf)?;
            let m = Message::from_vec(&buf[..n]).map_err(|e| bad(e.to_string()))?;
            if m.metadata.id != q.metadata.id {
                continue;
            }
            if !m.metadata.truncation {
                return Ok(m);
            }
            break;
        }
    }
    let mut c = TcpStream::connect_timeout(&server, Duration::from_secs(5))?;
    c.set_read_timeout(timeout)?;
    let len = u16::try_from(req.len()).map_err(|e| bad(e.to_string()))?;
    c.write_all(&len.to_be_bytes())?;
    c.write_all(&req)?;
    let mut l = [0u8; 2];
    c.read_exact(&mut l)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(l))];
    c.read_exact(&mut buf)?;
    Message::from_vec(&buf).map_err(|e| bad(e.to_string()))
}

/// dig's presentation of one record: `name TTL IN TYPE data`.
pub fn record_line(r: &Record) -> String {
    format!("{}\t{}\tIN\t{}\t{}", r.name, r.ttl, r.record_type(), r.data)
}

fn servers(conf: &ResolvConf, server: Option<&str>, port: u16) -> Vec<SocketAddr> {
    let list: Vec<String> = match server {
        Some(s) => vec![s.to_string()],
        None => conf.servers.clone(),
    };
    list.iter()
        .filter_map(|s| s.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, port))
        .collect()
}

/// Asks the servers in turn; the first reply.
fn ask(servers: &[SocketAddr], name: &Name, rtype: RecordType, tcp: bool) -> Option<Message> {
    for s in servers {
        match exchange(*s, name, rtype, tcp) {
            Ok(m) => return Some(m),
            Err(e) => eprintln!(";; communications error to {s}: {e}"),
        }
    }
    None
}

fn dig(args: &[String]) -> i32 {
    let d = match parse_dig(args) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("dig: {e}");
            return 1;
        }
    };
    let conf = ResolvConf::read();
    let servers = servers(&conf, d.server.as_deref(), d.port);
    if servers.is_empty() {
        eprintln!(";; no servers could be reached");
        return 9;
    }
    let name = d.name.clone().unwrap_or_else(|| ".".into());
    let mut last = None;
    for candidate in candidates(&name, &conf, d.search) {
        let Ok(n) = Name::from_str(&candidate) else {
            eprintln!("dig: '{candidate}' is not a legal name");
            return 10;
        };
        let Some(m) = ask(&servers, &n, d.rtype, d.tcp) else {
            return 9;
        };
        let nx = m.metadata.response_code == ResponseCode::NXDomain;
        last = Some(m);
        if !nx {
            break;
        }
    }
    let Some(m) = last else { return 9 };
    let mut out = String::new();
    if d.short {
        for r in &m.answers {
            out.push_str(&format!("{}\n", r.data));
        }
    } else {
        if d.comments {
            out.push_str(&format!(
                ";; ->>HEADER<<- opcode: QUERY, status: {}, id: {}\n",
                m.metadata.response_code.to_str().to_uppercase(),
                m.metadata.id
            ));
        }
        if d.answer && !m.answers.is_empty() {
            if d.comments {
                out.push_str(";; ANSWER SECTION:\n");
            }
            for r in &m.answers {
                out.push_str(&record_line(r));
                out.push('\n');
            }
        }
    }
    print!("{out}");
    0
}

/// The addresses `/etc/hosts` text gives `name` (case-insensitive, any of a line's names).
pub fn hosts_lookup(hosts: &str, name: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in hosts.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut f = line.split_whitespace();
        let Some(ip) = f.next() else { continue };
        let names: Vec<&str> = f.collect();
        if names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            out.push((ip.to_string(), names.join(" ")));
        }
    }
    out
}

fn getent(args: &[String]) -> i32 {
    let Some((db, keys)) = args.split_first() else {
        eprintln!("usage: getent hosts|ahosts NAME...");
        return 1;
    };
    if db != "hosts" && db != "ahosts" && db != "ahostsv4" {
        eprintln!("getent: unsupported database {db}");
        return 1;
    }
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let conf = ResolvConf::read();
    let servers = servers(&conf, None, 53);
    let mut code = 0;
    for key in keys {
        if let Ok(ip) = key.parse::<IpAddr>() {
            println!("{ip:<15} {key}");
            continue;
        }
        let local = hosts_lookup(&hosts, key);
        if let Some((ip, names)) = local.first() {
            println!("{ip:<15} {names}");
            continue;
        }
        let mut found = false;
        for candidate in candidates(key, &conf, true) {
            let Ok(n) = Name::from_str(&candidate) else {
                break;
            };
            let Some(m) = ask(&servers, &n, RecordType::A, false) else {
                break;
            };
            let ips: Vec<String> = m
                .answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.0.to_string()),
                    _ => None,
                })
                .collect();
            if !ips.is_empty() {
                let shown = candidate.trim_end_matches('.');
                for ip in ips {
                    println!("{ip:<15} {shown}");
                }
                found = true;
                break;
            }
        }
        if !found {
            code = 2;
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf() -> ResolvConf {
        ResolvConf::parse(
            "search ns.svc.cluster.local svc.cluster.local cluster.local\n\
             nameserver 10.43.0.10\noptions ndots:5 edns0\n",
        )
    }

    #[test]
    fn resolv_conf() {
        let c = conf();
        assert_eq!(c.servers, ["10.43.0.10"]);
        assert_eq!(
            c.searches,
            ["ns.svc.cluster.local", "svc.cluster.local", "cluster.local"]
        );
        assert_eq!(c.ndots, 5);
        assert_eq!(ResolvConf::parse("nameserver 1.1.1.1\n").ndots, 1);
    }

    #[test]
    fn search_order() {
        let c = conf();
        // Fewer dots than ndots: the search domains, then the name itself.
        assert_eq!(
            candidates("web.ns", &c, true),
            [
                "web.ns.ns.svc.cluster.local.",
                "web.ns.svc.cluster.local.",
                "web.ns.cluster.local.",
                "web.ns."
            ]
        );
        // Without +search, or with a trailing dot: the name only.
        assert_eq!(candidates("web.ns", &c, false), ["web.ns."]);
        assert_eq!(candidates("a.b.", &c, true), ["a.b."]);
        // ndots or more: the name first.
        let c1 = ResolvConf {
            ndots: 1,
            searches: vec!["x.y".into()],
            ..Default::default()
        };
        assert_eq!(candidates("a.b", &c1, true), ["a.b.", "a.b.x.y."]);
        assert_eq!(candidates("a", &c1, true), ["a.x.y.", "a."]);
    }

    #[test]
    fn dig_arguments() {
        let a: Vec<String> = "+notcp +noall +answer +search _http._tcp.svc.ns.svc SRV"
            .split(' ')
            .map(String::from)
            .collect();
        let d = parse_dig(&a).unwrap();
        assert!(!d.tcp && d.search && d.answer && !d.comments && !d.short);
        assert_eq!(d.name.as_deref(), Some("_http._tcp.svc.ns.svc"));
        assert_eq!(d.rtype, RecordType::SRV);
        let a: Vec<String> = ["+short", "-x", "10.43.0.1"].map(String::from).to_vec();
        let d = parse_dig(&a).unwrap();
        assert_eq!(d.name.as_deref(), Some("1.0.43.10.in-addr.arpa."));
        assert_eq!(d.rtype, RecordType::PTR);
        let a: Vec<String> = ["@10.0.0.1", "-p", "10053", "+tcp", "x.example", "cname"]
            .map(String::from)
            .to_vec();
        let d = parse_dig(&a).unwrap();
        assert_eq!((d.server.as_deref(), d.port), (Some("10.0.0.1"), 10053));
        assert_eq!(d.rtype, RecordType::CNAME);
        assert!(d.tcp);
    }

    #[test]
    fn hosts_file() {
        let hosts = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n\
                     10.42.0.5\tq-2.svc-2.ns.svc.cluster.local\tq-2\n";
        assert_eq!(
            hosts_lookup(hosts, "Q-2"),
            [(
                "10.42.0.5".to_string(),
                "q-2.svc-2.ns.svc.cluster.local q-2".to_string()
            )]
        );
        assert!(hosts_lookup(hosts, "q-3").is_empty());
    }

    /// Against a one-shot UDP server: the query goes out, the answer is read back.
    #[test]
    fn udp_exchange() {
        let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = srv.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 512];
            let (n, peer) = srv.recv_from(&mut buf).unwrap();
            let q = Message::from_vec(&buf[..n]).unwrap();
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.add_queries(q.queries.clone());
            r.add_answer(Record::from_rdata(
                q.queries[0].name().clone(),
                5,
                RData::A(hickory_proto::rr::rdata::A([10, 43, 0, 1].into())),
            ));
            srv.send_to(&r.to_vec().unwrap(), peer).unwrap();
        });
        let n = Name::from_str("kubernetes.default.svc.cluster.local.").unwrap();
        let m = exchange(addr, &n, RecordType::A, false).unwrap();
        assert_eq!(
            record_line(&m.answers[0]),
            "kubernetes.default.svc.cluster.local.\t5\tIN\tA\t10.43.0.1"
        );
    }
}
