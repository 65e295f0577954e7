//! A network namespace joined to the host by a veth pair: a second "machine" on one
//! link with the host, for a node of its own. Made with `ip` (the tests' tool; the
//! product uses netlink). Removed on drop.

use std::process::Command;

pub struct Netns {
    /// The `ip netns` name (`/var/run/netns/<name>`).
    pub name: String,
    /// The host's end of the link, and its address.
    pub host_link: String,
    pub host_ip: String,
    /// The namespace's address.
    pub ns_ip: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {}: {} (these tests need root and iproute2)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

impl Netns {
    /// A namespace `rkt-<tag>-<pid>` linked to the host on 10.254.<k>.0/30 (host .1,
    /// namespace .2), both ends and the namespace's loopback up.
    pub fn new(tag: &str) -> Netns {
        let pid = std::process::id();
        let k = pid % 250;
        let name = format!("rkt-{tag}-{pid}");
        let host_link = format!("rkv{k}h");
        let ns_link = format!("rkv{k}n");
        // What a killed earlier run of this test may have left.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let _ = Command::new("ip")
            .args(["link", "del", &host_link])
            .output();
        let n = Netns {
            host_ip: format!("10.254.{k}.1"),
            ns_ip: format!("10.254.{k}.2"),
            name,
            host_link,
        };
        ip(&["netns", "add", &n.name]);
        ip(&[
            "link",
            "add",
            &n.host_link,
            "type",
            "veth",
            "peer",
            "name",
            &ns_link,
            "netns",
            &n.name,
        ]);
        ip(&[
            "addr",
            "add",
            &format!("{}/30", n.host_ip),
            "dev",
            &n.host_link,
        ]);
        ip(&["link", "set", &n.host_link, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["-n", n.name.as_str()];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["addr", "add", &format!("{}/30", n.ns_ip), "dev", &ns_link]);
        inside(&["link", "set", &ns_link, "up"]);
        inside(&["link", "set", "lo", "up"]);
        n
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace takes its end of the veth pair, and so the host's.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_link])
            .output();
    }
}
