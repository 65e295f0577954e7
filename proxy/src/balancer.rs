//! Which endpoint a new connection or flow goes to (pure): round-robin over the ready
//! endpoints, the next ones as fallbacks when a connect fails, and `ClientIP` session
//! affinity (a client keeps its endpoint while it is ready and the affinity has not
//! timed out since the client's last connection), as upstream's userspace proxier.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Balancer {
    endpoints: Vec<SocketAddr>,
    next: usize,
    affinity: Option<Duration>,
    sticky: HashMap<IpAddr, (SocketAddr, Instant)>,
}

impl Balancer {
    pub fn new(endpoints: Vec<SocketAddr>, affinity: Option<Duration>) -> Balancer {
        Balancer {
            endpoints,
            next: 0,
            affinity,
            sticky: HashMap::new(),
        }
    }

    /// New endpoints (or affinity): clients stuck to endpoints that are gone are freed.
    pub fn update(&mut self, endpoints: Vec<SocketAddr>, affinity: Option<Duration>) {
        if affinity.is_none() {
            self.sticky.clear();
        } else {
            self.sticky.retain(|_, (ep, _)| endpoints.contains(ep));
        }
        self.endpoints = endpoints;
        self.affinity = affinity;
        if self.next >= self.endpoints.len() {
            self.next = 0;
        }
    }

    /// The endpoints to try for a new connection from `client`, in order: its sticky
    /// endpoint first (if any and not expired), then round-robin from the next one.
    pub fn candidates(&mut self, client: IpAddr, now: Instant) -> Vec<SocketAddr> {
        let n = self.endpoints.len();
        if n == 0 {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(n);
        if let (Some(timeout), Some((ep, last))) = (self.affinity, self.sticky.get(&client)) {
            if now.saturating_duration_since(*last) < timeout && self.endpoints.contains(ep) {
                out.push(*ep);
            }
        }
        let start = self.next;
        self.next = (self.next + 1) % n;
        for i in 0..n {
            let ep = self.endpoints[(start + i) % n];
            if !out.contains(&ep) {
                out.push(ep);
            }
        }
        out
    }

    /// `client` is now connected to `ep` (refreshes its affinity).
    pub fn connected(&mut self, client: IpAddr, ep: SocketAddr, now: Instant) {
        if let Some(timeout) = self.affinity {
            self.sticky.insert(client, (ep, now));
            // Forget clients whose affinity ran out, now and then.
            if self.sticky.len() > 1024 {
                self.sticky
                    .retain(|_, (_, last)| now.saturating_duration_since(*last) < timeout);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(n: u8) -> Vec<SocketAddr> {
        (1..=n)
            .map(|i| format!("10.0.0.{i}:80").parse().unwrap())
            .collect()
    }

    #[test]
    fn round_robin_with_the_rest_as_fallbacks() {
        let mut b = Balancer::new(eps(3), None);
        let c: IpAddr = "10.1.0.1".parse().unwrap();
        let now = Instant::now();
        let firsts: Vec<SocketAddr> = (0..6).map(|_| b.candidates(c, now)[0]).collect();
        assert_eq!(firsts, [eps(3), eps(3)].concat());
        let all = b.candidates(c, now);
        assert_eq!(all, eps(3));
        assert!(Balancer::new(vec![], None).candidates(c, now).is_empty());
    }

    #[test]
    fn client_ip_affinity_sticks_until_timeout_or_endpoint_goes() {
        let t = Duration::from_secs(10);
        let mut b = Balancer::new(eps(3), Some(t));
        let (c1, c2): (IpAddr, IpAddr) = ("10.1.0.1".parse().unwrap(), "10.1.0.2".parse().unwrap());
        let now = Instant::now();
        let first = b.candidates(c1, now)[0];
        b.connected(c1, first, now);
        for i in 1..5 {
            let at = now + Duration::from_secs(i);
            assert_eq!(b.candidates(c1, at)[0], first, "sticky at +{i}s");
            b.connected(c1, first, at);
        }
        // Another client is balanced as usual.
        assert_ne!(b.candidates(c2, now)[0], first);
        // Idle longer than the timeout: round robin again (some other endpoint next).
        let later = now + Duration::from_secs(4) + t;
        let got: Vec<SocketAddr> = (0..3).map(|_| b.candidates(c1, later)[0]).collect();
        assert!(got.iter().any(|e| *e != first), "{got:?}");
        // The sticky endpoint leaves: the client goes elsewhere.
        b.connected(c1, first, later);
        b.update(
            eps(3).into_iter().filter(|e| *e != first).collect(),
            Some(t),
        );
        assert_ne!(b.candidates(c1, later)[0], first);
    }
}
