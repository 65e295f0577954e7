//! `nc` as agnhost's image has it (Alpine's netcat-openbsd), for what upstream's tests run
//! through `exec`: `nc [-46vztuN] [-w SEC] HOST PORT`.
//!
//! - TCP (the default, `-t`): connect within `-w` seconds, copy stdin to the connection
//!   and the connection to stdout until the peer closes it (or, with `-w`, until it is
//!   idle that long); `-z` only connects. `-v` says `Connection to HOST PORT port
//!   [tcp/*] succeeded!` on stderr.
//! - UDP (`-u`): stdin's bytes as one datagram, then the answers to stdout until `-w`
//!   seconds pass without one; a refused port (ICMP) is a failure. `-z` sends probes
//!   (`X`) and succeeds unless one is refused.
//!
//! Names are resolved as the pod's resolver does (`/etc/hosts`, then `/etc/resolv.conf`'s
//! nameservers with its search list and `ndots`), by [`resolve`]: a static glibc binary
//! has no NSS modules to do it.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

/// What the command line asked.
#[derive(Debug, PartialEq, Eq)]
pub struct Opts {
    pub udp: bool,
    pub zero: bool,
    pub verbose: bool,
    pub timeout: Option<Duration>,
    pub host: String,
    pub port: u16,
}

/// netcat-openbsd's options (the ones tests use; `-4 -6 -n -N -q` taken and ignored).
pub fn parse(args: &[String]) -> Result<Opts, String> {
    let (mut udp, mut zero, mut verbose, mut timeout) = (false, false, false, None);
    let mut pos = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(flags) = a.strip_prefix('-').filter(|f| !f.is_empty()) else {
            pos.push(a.clone());
            continue;
        };
        for (i, c) in flags.char_indices() {
            match c {
                'u' => udp = true,
                't' => udp = false,
                'z' => zero = true,
                'v' => verbose = true,
                '4' | '6' | 'n' | 'N' | 'd' | 'D' | 'k' => {}
                'w' | 'q' | 'i' | 'p' | 's' => {
                    let rest = &flags[i + 1..];
                    let v = if rest.is_empty() {
                        it.next()
                            .cloned()
                            .ok_or(format!("option -{c} needs a value"))?
                    } else {
                        rest.to_string()
                    };
                    if c == 'w' {
                        let n: u64 = v.parse().map_err(|_| format!("timeout {v:?} invalid"))?;
                        timeout = Some(Duration::from_secs(n));
                    }
                    break;
                }
                c => return Err(format!("invalid option -- '{c}'")),
            }
        }
    }
    let [host, port] = pos.as_slice() else {
        return Err("usage: nc [-46tuvz] [-w timeout] destination port".into());
    };
    let port = port
        .parse()
        .map_err(|_| format!("port number invalid: {port}"))?;
    Ok(Opts {
        udp,
        zero,
        verbose,
        timeout,
        host: host.clone(),
        port,
    })
}

/// `nc` with `args` (argv without argv[0]): the process's exit code.
pub fn main(args: &[String]) -> i32 {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("nc: {e}");
            return 1;
        }
    };
    let ip = match resolve(&o.host) {
        Ok(ip) => ip,
        Err(e) => {
            eprintln!(
                "nc: getaddrinfo for host \"{}\" port {}: {e}",
                o.host, o.port
            );
            return 1;
        }
    };
    let addr = SocketAddr::new(ip, o.port);
    let r = if o.udp { udp(&o, addr) } else { tcp(&o, addr) };
    match r {
        Ok(()) => 0,
        Err(e) => {
            let proto = if o.udp { "udp" } else { "tcp" };
            eprintln!(
                "nc: connect to {} port {} ({proto}) failed: {e}",
                o.host, o.port
            );
            1
        }
    }
}

fn tcp(o: &Opts, addr: SocketAddr) -> std::io::Result<()> {
    let c = match o.timeout {
        Some(t) => TcpStream::connect_timeout(&addr, t)?,
        None => TcpStream::connect(addr)?,
    };
    if o.verbose {
        eprintln!(
            "Connection to {} {} port [tcp/*] succeeded!",
            o.host, o.port
        );
    }
    if o.zero {
        return Ok(());
    }
    c.set_read_timeout(o.timeout)?;
    let mut w = c.try_clone()?;
    // stdin to the connection; its end is not a half-close (netcat-openbsd without -N).
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut w);
    });
    let mut r = c;
    let mut out = std::io::stdout().lock();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.write_all(&buf[..n])?;
                out.flush()?;
            }
            // -w: idle that long.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => return Err(e),
        }
    }
    let _ = r.shutdown(Shutdown::Both);
    Ok(())
}

fn udp(o: &Opts, addr: SocketAddr) -> std::io::Result<()> {
    let local = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let s = UdpSocket::bind(local)?;
    s.connect(addr)?;
    if o.verbose {
        eprintln!(
            "Connection to {} {} port [udp/*] succeeded!",
            o.host, o.port
        );
    }
    if o.zero {
        // netcat-openbsd's udptest: a few probes; a refused one (ICMP) is a failure.
        for _ in 0..3 {
            s.send(b"X")?;
            std::thread::sleep(Duration::from_millis(300));
        }
        s.set_read_timeout(Some(Duration::from_millis(100)))?;
        let mut buf = [0u8; 64];
        return match s.recv(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(e),
            _ => Ok(()),
        };
    }
    let mut data = Vec::new();
    std::io::stdin().lock().read_to_end(&mut data)?;
    if !data.is_empty() {
        s.send(&data)?;
    }
    // Without -w netcat-openbsd waits for answers forever; -w is what tests give.
    s.set_read_timeout(Some(o.timeout.unwrap_or(Duration::from_secs(3600))))?;
    let mut out = std::io::stdout().lock();
    let mut buf = [0u8; 65536];
    loop {
        match s.recv(&mut buf) {
            Ok(n) => {
                out.write_all(&buf[..n])?;
                out.flush()?;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(())
            }
            Err(e) => return Err(e),
        }
    }
}

/// An address for `host`: an IP literal, else `/etc/hosts`, else an A query to the
/// nameservers of `/etc/resolv.conf`, the search list tried as the resolver does (first
/// the name as given when it has `ndots` dots or more, else after the search domains).
pub fn resolve(host: &str) -> Result<IpAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let host = host.trim_end_matches('.');
    if let Ok(hosts) = std::fs::read_to_string("/etc/hosts") {
        if let Some(ip) = from_hosts(&hosts, host) {
            return Ok(ip);
        }
    }
    let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let rc = ResolvConf::parse(&conf);
    let mut last = format!("no nameserver for {host}");
    for name in rc.candidates(host) {
        for ns in &rc.nameservers {
            match query_a(*ns, &name) {
                Ok(Some(ip)) => return Ok(IpAddr::V4(ip)),
                Ok(None) => {
                    last = format!("{name}: no address");
                    break;
                }
                Err(e) => last = e,
            }
        }
    }
    Err(last)
}

fn from_hosts(hosts: &str, name: &str) -> Option<IpAddr> {
    hosts.lines().find_map(|l| {
        let l = l.split('#').next().unwrap_or("");
        let mut f = l.split_whitespace();
        let ip: IpAddr = f.next()?.parse().ok()?;
        f.any(|n| n.eq_ignore_ascii_case(name)).then_some(ip)
    })
}

/// What the resolver reads of resolv.conf.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub ndots: usize,
}

impl ResolvConf {
    pub fn parse(text: &str) -> ResolvConf {
        let mut rc = ResolvConf {
            ndots: 1,
            ..Default::default()
        };
        for l in text.lines() {
            let mut f = l.split_whitespace();
            match f.next() {
                Some("nameserver") => rc
                    .nameservers
                    .extend(f.next().and_then(|a| a.parse::<IpAddr>().ok())),
                Some("search") | Some("domain") => rc.search = f.map(str::to_string).collect(),
                Some("options") => {
                    for o in f {
                        if let Some(n) = o.strip_prefix("ndots:").and_then(|n| n.parse().ok()) {
                            rc.ndots = n;
                        }
                    }
                }
                _ => {}
            }
        }
        rc
    }

    /// The names to ask, in order.
    pub fn candidates(&self, host: &str) -> Vec<String> {
        let searched = self.search.iter().map(|d| format!("{host}.{d}"));
        if host.matches('.').count() >= self.ndots {
            std::iter::once(host.to_string()).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(host.to_string())).collect()
        }
    }
}

/// One A query over UDP (2 s): the first A record of the answer (after any CNAMEs),
/// `None` for NXDOMAIN or no A record.
fn query_a(ns: IpAddr, name: &str) -> Result<Option<Ipv4Addr>, String> {
    let id: u16 = (std::process::id() as u16) ^ 0x5a5a;
    let q = build_query(id, name);
    let local = if ns.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let s = UdpSocket::bind(local).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok();
    s.connect(SocketAddr::new(ns, 53))
        .map_err(|e| e.to_string())?;
    s.send(&q).map_err(|e| format!("{ns}: {e}"))?;
    let mut buf = [0u8; 4096];
    let n = s.recv(&mut buf).map_err(|e| format!("{ns}: {e}"))?;
    parse_answer(&buf[..n], id).ok_or_else(|| format!("{ns}: bad answer for {name}"))
}

pub fn build_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(name.len() + 18);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// `Some(None)`: a valid answer without an address (NXDOMAIN, NODATA); `None`: not an
/// answer to `id`, or a server failure.
pub fn parse_answer(m: &[u8], id: u16) -> Option<Option<Ipv4Addr>> {
    if m.len() < 12 || u16::from_be_bytes([m[0], m[1]]) != id {
        return None;
    }
    match m[3] & 0x0f {
        0 => {}
        3 => return Some(None),
        _ => return None,
    }
    let qd = u16::from_be_bytes([m[4], m[5]]);
    let an = u16::from_be_bytes([m[6], m[7]]);
    let mut i = 12;
    for _ in 0..qd {
        i = skip_name(m, i)? + 4;
    }
    for _ in 0..an {
        i = skip_name(m, i)?;
        let rtype = u16::from_be_bytes([*m.get(i)?, *m.get(i + 1)?]);
        let len = u16::from_be_bytes([*m.get(i + 8)?, *m.get(i + 9)?]) as usize;
        let data = m.get(i + 10..i + 10 + len)?;
        if rtype == 1 && len == 4 {
            return Some(Some(Ipv4Addr::new(data[0], data[1], data[2], data[3])));
        }
        i += 10 + len;
    }
    Some(None)
}

fn skip_name(m: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let l = *m.get(i)?;
        if l == 0 {
            return Some(i + 1);
        }
        if l & 0xc0 == 0xc0 {
            return Some(i + 2);
        }
        i += 1 + l as usize;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn options_as_netcat_openbsd() {
        let o = parse(&args("-vuz -w 5 10.0.0.1 54323")).unwrap();
        assert!(o.udp && o.zero && o.verbose);
        assert_eq!(o.timeout, Some(Duration::from_secs(5)));
        assert_eq!((o.host.as_str(), o.port), ("10.0.0.1", 54323));
        let o = parse(&args("-v -t -w 2 svc 80")).unwrap();
        assert!(!o.udp && !o.zero && o.verbose);
        assert_eq!(o.timeout, Some(Duration::from_secs(2)));
        let o = parse(&args("-w1 -u 10.1.2.3 8081")).unwrap();
        assert!(o.udp && !o.verbose);
        assert_eq!(o.timeout, Some(Duration::from_secs(1)));
        assert!(parse(&args("-x a 1")).is_err());
        assert!(parse(&args("a")).is_err());
        assert!(parse(&args("a port")).is_err());
    }

    #[test]
    fn resolver_search_order_and_messages() {
        let rc = ResolvConf::parse(
            "search ns1.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.43.0.10\noptions ndots:5\n",
        );
        assert_eq!(rc.ndots, 5);
        assert_eq!(
            rc.nameservers,
            vec!["10.43.0.10".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            rc.candidates("web"),
            vec![
                "web.ns1.svc.cluster.local",
                "web.svc.cluster.local",
                "web.cluster.local",
                "web"
            ]
        );
        let rc2 = ResolvConf::parse("nameserver 1.1.1.1\nsearch a\n");
        assert_eq!(rc2.candidates("x.y"), vec!["x.y", "x.y.a"]);
        assert_eq!(
            from_hosts("127.0.0.1 localhost\n10.1.1.1 pod-a # x\n", "pod-a"),
            Some("10.1.1.1".parse().unwrap())
        );

        let q = build_query(7, "a.b");
        assert_eq!(&q[12..], &[1, b'a', 1, b'b', 0, 0, 1, 0, 1]);
        // An answer: the question, a CNAME, then an A record.
        let mut m = q.clone();
        m[2] = 0x81;
        m[3] = 0x80;
        m[7] = 2;
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 5, 0, 2, 0xc0, 12]);
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 2, 3, 4]);
        assert_eq!(parse_answer(&m, 7), Some(Some(Ipv4Addr::new(10, 2, 3, 4))));
        assert_eq!(parse_answer(&m, 8), None);
        m[3] = 0x83;
        assert_eq!(parse_answer(&m, 7), Some(None));
    }
}
