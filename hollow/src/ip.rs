//! Fake addresses: one InternalIP per hollow node from `10.250.0.0/16`, one /24 pod CIDR
//! per node from a configured base, and pod IPs from the node's pod CIDR (or, while the
//! node has none, from the shared `10.251.0.0/16`). Nothing ever connects to them; they
//! only have to be distinct. IPv4 only.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Where node InternalIPs come from (`10.250.x.y`).
pub const NODE_IP_RANGE: Cidr = Cidr::new_unchecked(Ipv4Addr::new(10, 250, 0, 0), 16);
/// Where pod IPs come from when the pod's node has no pod CIDR.
pub const FALLBACK_POD_RANGE: Cidr = Cidr::new_unchecked(Ipv4Addr::new(10, 251, 0, 0), 16);
/// The size of the pod CIDR given to each node from a configured base (upstream's
/// `--node-cidr-mask-size` default for IPv4).
pub const NODE_CIDR_MASK: u8 = 24;

/// An IPv4 network, `a.b.c.d/p`, held with its host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: Ipv4Addr,
    prefix: u8,
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl Cidr {
    const fn new_unchecked(network: Ipv4Addr, prefix: u8) -> Cidr {
        Cidr { network, prefix }
    }

    /// The network holding `addr` with the given prefix length (host bits cleared), as
    /// Go's `net.ParseCIDR` returns it; None when `prefix > 32`.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Cidr> {
        (prefix <= 32).then(|| Cidr {
            network: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.network)
    }

    /// The addresses handed to pods: all but the network address, the first host (a CNI
    /// bridge's gateway) and the broadcast address; every address of a /31 or /32.
    pub fn pod_range(&self) -> (u32, u32) {
        let first = u32::from(self.network);
        let last = first | !mask(self.prefix);
        if self.prefix >= 31 {
            (first, last)
        } else if self.prefix == 30 {
            (first + 1, last - 1)
        } else {
            (first + 2, last - 1)
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let bad = || format!("invalid IPv4 CIDR {s:?}");
        let (addr, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        Cidr::new(addr, prefix).ok_or_else(bad)
    }
}

/// The InternalIP of the hollow node with this index: `10.250.x.y`, host number
/// `index + 1`; None past the range's 65534 hosts.
pub fn node_ip(index: usize) -> Option<Ipv4Addr> {
    let host = u32::try_from(index).ok()?.checked_add(1)?;
    (host < 0xffff).then(|| Ipv4Addr::from(u32::from(NODE_IP_RANGE.network) + host))
}

/// The pod CIDR of the hollow node with this index: the index-th /24 of `base`; None
/// when `base` is narrower than a /24 or holds fewer than `index + 1` of them.
pub fn node_pod_cidr(base: &Cidr, index: usize) -> Option<Cidr> {
    if base.prefix > NODE_CIDR_MASK {
        return None;
    }
    let subnets = 1u64 << (NODE_CIDR_MASK - base.prefix);
    let index = u64::try_from(index).ok()?;
    if index >= subnets {
        return None;
    }
    let network = u32::from(base.network) + ((index as u32) << (32 - u32::from(NODE_CIDR_MASK)));
    Cidr::new(Ipv4Addr::from(network), NODE_CIDR_MASK)
}

/// The free and used pod addresses of one network, handed out round robin (so an
/// address just released is not reused at once, as host-local IPAM does).
#[derive(Debug)]
pub struct IpPool {
    first: u32,
    last: u32,
    next: u32,
    used: HashSet<u32>,
}

impl IpPool {
    pub fn new(cidr: Cidr) -> IpPool {
        let (first, last) = cidr.pod_range();
        IpPool {
            first,
            last,
            next: first,
            used: HashSet::new(),
        }
    }

    fn capacity(&self) -> u64 {
        u64::from(self.last - self.first) + 1
    }

    fn in_range(&self, ip: u32) -> bool {
        (self.first..=self.last).contains(&ip)
    }

    /// The next free address, or None when the pool is exhausted.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        if self.used.len() as u64 >= self.capacity() {
            return None;
        }
        loop {
            let ip = self.next;
            self.next = if ip == self.last { self.first } else { ip + 1 };
            if self.used.insert(ip) {
                return Some(Ipv4Addr::from(ip));
            }
        }
    }

    /// Marks `ip` used; false when it is outside the pool or already used.
    pub fn reserve(&mut self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        self.in_range(ip) && self.used.insert(ip)
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&u32::from(ip));
    }

    pub fn used(&self) -> usize {
        self.used.len()
    }
}

/// Pod IPs of every hollow node, by pod uid: an address belongs to at most one pod.
#[derive(Debug, Default)]
pub struct IpAllocator {
    pools: HashMap<Cidr, IpPool>,
    by_pod: HashMap<String, Ipv4Addr>,
    owner: HashMap<Ipv4Addr, String>,
}

impl IpAllocator {
    pub fn new() -> IpAllocator {
        IpAllocator::default()
    }

    fn pool(&mut self, cidr: Cidr) -> &mut IpPool {
        let owner = &self.owner;
        self.pools.entry(cidr).or_insert_with(|| {
            let mut pool = IpPool::new(cidr);
            for ip in owner.keys() {
                pool.reserve(*ip);
            }
            pool
        })
    }

    /// The address of the pod with this uid: the one it already has; else `reported` (the
    /// podIP it already reports, e.g. from an earlier run) when no other pod holds it;
    /// else a new one from `cidr`. None when `cidr` is exhausted.
    pub fn assign(
        &mut self,
        uid: &str,
        reported: Option<Ipv4Addr>,
        cidr: Cidr,
    ) -> Option<Ipv4Addr> {
        if let Some(ip) = self.by_pod.get(uid) {
            return Some(*ip);
        }
        let ip = match reported {
            Some(ip) if !self.owner.contains_key(&ip) => {
                for pool in self.pools.values_mut() {
                    pool.reserve(ip);
                }
                ip
            }
            _ => self.pool(cidr).allocate()?,
        };
        self.by_pod.insert(uid.to_string(), ip);
        self.owner.insert(ip, uid.to_string());
        Some(ip)
    }

    /// Frees the address of the pod with this uid (when it is gone).
    pub fn release(&mut self, uid: &str) {
        if let Some(ip) = self.by_pod.remove(uid) {
            self.owner.remove(&ip);
            for pool in self.pools.values_mut() {
                pool.release(ip);
            }
        }
    }

    /// The address the pod with this uid holds, if any.
    pub fn get(&self, uid: &str) -> Option<Ipv4Addr> {
        self.by_pod.get(uid).copied()
    }

    /// How many addresses are held.
    pub fn len(&self) -> usize {
        self.by_pod.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_pod.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parse() {
        let cases: &[(&str, Result<&str, ()>)] = &[
            ("10.244.0.0/16", Ok("10.244.0.0/16")),
            ("10.244.3.7/16", Ok("10.244.0.0/16")),
            (" 192.168.1.0/24 ", Ok("192.168.1.0/24")),
            ("0.0.0.0/0", Ok("0.0.0.0/0")),
            ("10.0.0.1/32", Ok("10.0.0.1/32")),
            ("10.0.0.0/33", Err(())),
            ("10.0.0.0", Err(())),
            ("10.0.0/8", Err(())),
            ("fd00::/64", Err(())),
            ("10.0.0.0/x", Err(())),
        ];
        for (input, want) in cases {
            let got = input.parse::<Cidr>().map(|c| c.to_string()).map_err(|_| ());
            assert_eq!(got, want.map(str::to_string), "{input}");
        }
    }

    #[test]
    fn cidr_contains_and_range() {
        let cases: &[(&str, &str, bool)] = &[
            ("10.244.1.0/24", "10.244.1.0", true),
            ("10.244.1.0/24", "10.244.1.255", true),
            ("10.244.1.0/24", "10.244.2.0", false),
            ("10.251.0.0/16", "10.251.200.3", true),
            ("10.251.0.0/16", "10.250.0.1", false),
            ("0.0.0.0/0", "1.2.3.4", true),
        ];
        for (cidr, addr, want) in cases {
            let c: Cidr = cidr.parse().unwrap();
            assert_eq!(c.contains(ip(addr)), *want, "{cidr} ∋ {addr}");
        }
        let ranges: &[(&str, &str, &str)] = &[
            ("10.244.1.0/24", "10.244.1.2", "10.244.1.254"),
            ("10.251.0.0/16", "10.251.0.2", "10.251.255.254"),
            ("10.0.0.0/30", "10.0.0.1", "10.0.0.2"),
            ("10.0.0.0/31", "10.0.0.0", "10.0.0.1"),
            ("10.0.0.9/32", "10.0.0.9", "10.0.0.9"),
        ];
        for (cidr, first, last) in ranges {
            let (a, b) = cidr.parse::<Cidr>().unwrap().pod_range();
            assert_eq!(
                (Ipv4Addr::from(a), Ipv4Addr::from(b)),
                (ip(first), ip(last)),
                "{cidr}"
            );
        }
    }

    #[test]
    fn node_ips() {
        let cases: &[(usize, Option<&str>)] = &[
            (0, Some("10.250.0.1")),
            (1, Some("10.250.0.2")),
            (254, Some("10.250.0.255")),
            (255, Some("10.250.1.0")),
            (99, Some("10.250.0.100")),
            (65533, Some("10.250.255.254")),
            (65534, None),
            (usize::MAX, None),
        ];
        for (index, want) in cases {
            assert_eq!(node_ip(*index), want.map(ip), "index {index}");
        }
        let all: HashSet<_> = (0..65534).map(|i| node_ip(i).unwrap()).collect();
        assert_eq!(all.len(), 65534);
        assert!(all.iter().all(|a| NODE_IP_RANGE.contains(*a)));
    }

    #[test]
    fn node_pod_cidrs() {
        let cases: &[(&str, usize, Option<&str>)] = &[
            ("10.244.0.0/16", 0, Some("10.244.0.0/24")),
            ("10.244.0.0/16", 1, Some("10.244.1.0/24")),
            ("10.244.0.0/16", 255, Some("10.244.255.0/24")),
            ("10.244.0.0/16", 256, None),
            ("10.0.0.0/8", 256, Some("10.1.0.0/24")),
            ("192.168.7.0/24", 0, Some("192.168.7.0/24")),
            ("192.168.7.0/24", 1, None),
            ("192.168.7.0/25", 0, None),
        ];
        for (base, index, want) in cases {
            let got = node_pod_cidr(&base.parse().unwrap(), *index).map(|c| c.to_string());
            assert_eq!(got.as_deref(), *want, "{base} #{index}");
        }
    }

    #[test]
    fn pool_round_robin_and_exhaustion() {
        let mut pool = IpPool::new("10.0.0.0/29".parse().unwrap()); // .2 ..= .6
        let got: Vec<_> = (0..5).map(|_| pool.allocate().unwrap()).collect();
        let want: Vec<_> = (2..=6).map(|h| Ipv4Addr::new(10, 0, 0, h)).collect();
        assert_eq!(got, want);
        assert_eq!(pool.allocate(), None);
        pool.release(ip("10.0.0.3"));
        assert_eq!(pool.allocate(), Some(ip("10.0.0.3")));
        assert!(!pool.reserve(ip("10.0.0.3")), "already used");
        assert!(
            !pool.reserve(ip("10.0.0.1")),
            "gateway is outside the range"
        );
        pool.release(ip("10.0.0.5"));
        pool.release(ip("10.0.0.6"));
        // Round robin continues after the last handed out (.3), not from the start.
        assert_eq!(pool.allocate(), Some(ip("10.0.0.5")));
        assert_eq!(pool.used(), 4);
    }

    #[test]
    fn allocator_by_pod() {
        let net: Cidr = "10.244.0.0/24".parse().unwrap();
        let mut a = IpAllocator::new();
        // Steps: (uid, reported, want); "release:uid" frees.
        let steps: &[(&str, Option<&str>, Option<&str>)] = &[
            ("p1", None, Some("10.244.0.2")),
            ("p1", None, Some("10.244.0.2")), // stable for the same pod
            ("p2", None, Some("10.244.0.3")),
            ("p3", Some("10.244.0.9"), Some("10.244.0.9")), // keeps what it reports
            ("p4", Some("10.244.0.9"), Some("10.244.0.4")), // taken: a new one
            ("release:p2", None, None),
            ("p5", None, Some("10.244.0.5")),
            ("p6", Some("10.251.0.7"), Some("10.251.0.7")), // reported from another range
        ];
        for (uid, reported, want) in steps {
            if let Some(uid) = uid.strip_prefix("release:") {
                a.release(uid);
                assert_eq!(a.get(uid), None);
                continue;
            }
            let got = a.assign(uid, reported.map(ip), net);
            assert_eq!(got, want.map(ip), "{uid}");
        }
        assert_eq!(a.len(), 5);
        // A pool created later honours addresses already held inside it.
        let fallback = FALLBACK_POD_RANGE;
        let mut seen = HashSet::new();
        for i in 0..10 {
            let got = a.assign(&format!("f{i}"), None, fallback).unwrap();
            assert_ne!(got, ip("10.251.0.7"));
            assert!(seen.insert(got));
        }
    }

    #[test]
    fn allocator_exhausted() {
        let net: Cidr = "10.0.0.0/30".parse().unwrap(); // .1 ..= .2
        let mut a = IpAllocator::new();
        assert!(a.assign("a", None, net).is_some());
        assert!(a.assign("b", None, net).is_some());
        assert_eq!(a.assign("c", None, net), None);
        a.release("a");
        assert!(a.assign("c", None, net).is_some());
    }
}
