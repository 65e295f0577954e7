//! hostnet against the real kernel (needs root): addresses, routes and links on a veth
//! pair of the test's own, removed at the end. The pair is made with `ip` (the test's
//! tool, not the product's).

use std::net::Ipv4Addr;
use std::process::Command;

use hostnet::{Ipv4Net, Net, Route, ROUTE_PROTOCOL};

/// A veth pair that goes away on drop.
struct Veth(String);

impl Veth {
    fn new(name: &str) -> Veth {
        let _ = Command::new("ip").args(["link", "del", name]).output();
        let peer = format!("{name}p");
        let ok = Command::new("ip")
            .args(["link", "add", name, "type", "veth", "peer", "name", &peer])
            .status()
            .expect("ip runs");
        assert!(ok.success(), "ip link add {name} (this test needs root)");
        for l in [name, peer.as_str()] {
            assert!(Command::new("ip")
                .args(["link", "set", l, "up"])
                .status()
                .unwrap()
                .success());
        }
        Veth(name.to_string())
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

fn ip_route_show(proto: u8) -> String {
    let out = Command::new("ip")
        .args(["-4", "route", "show", "proto", &proto.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn addresses_routes_and_links_on_the_real_kernel() {
    // Distinct per process, so parallel runs on one machine don't meet.
    let n = std::process::id() % 200 + 20;
    let name = format!("rkhn{n}");
    let veth = Veth::new(&name);
    let net = Net::connect().unwrap();

    let link = net.link_index(&name).await.unwrap();
    assert_eq!(
        net.link_name(link).await.unwrap().as_deref(),
        Some(name.as_str())
    );
    assert!(matches!(
        net.link_index("rkhn-none").await,
        Err(hostnet::Error::NoLink(_))
    ));

    // Addresses: add (twice: idempotent), list, delete (twice: idempotent).
    let a: Ipv4Net = format!("10.253.{n}.1/30").parse().unwrap();
    let b: Ipv4Net = format!("10.253.{n}.9/32").parse().unwrap();
    let label = format!("{name}:x");
    for _ in 0..2 {
        net.add_address(link, a, None).await.unwrap();
        net.add_address(link, b, Some(&label)).await.unwrap();
    }
    let got = net.addresses(link).await.unwrap();
    assert_eq!(got, vec![(a, name.clone()), (b, label.clone())]);

    // A route via the peer's side of the /30, tagged: listed by protocol, replaced in
    // place, visible to `ip route`, deleted.
    let gw = Ipv4Addr::new(10, 253, n as u8, 2);
    let r = Route {
        destination: format!("10.252.{n}.0/24").parse().unwrap(),
        gateway: Some(gw),
        metric: 4242,
    };
    // The same destination with another metric (another owner) lives beside it.
    let other = Route {
        metric: 4343,
        ..r.clone()
    };
    for _ in 0..2 {
        net.replace_route(&r, ROUTE_PROTOCOL).await.unwrap();
        net.replace_route(&other, ROUTE_PROTOCOL).await.unwrap();
    }
    let ours = net.routes(ROUTE_PROTOCOL).await.unwrap();
    assert!(ours.contains(&r) && ours.contains(&other), "{ours:?}");
    assert_eq!(
        ours.iter()
            .filter(|x| x.destination == r.destination)
            .count(),
        2
    );
    let shown = ip_route_show(ROUTE_PROTOCOL);
    assert!(
        shown.contains(&format!("10.252.{n}.0/24 via {gw} dev {name} metric 4242")),
        "{shown}"
    );
    // Other protocols' routes are not ours (the kernel's connected /30 is there).
    assert!(!ours.iter().any(|x| x.destination == a.trunc()), "{ours:?}");

    // A gateway that is not on a connected network: the kernel's refusal comes back.
    let far = Route {
        destination: format!("10.251.{n}.0/24").parse().unwrap(),
        gateway: Some(Ipv4Addr::new(198, 51, 100, 77)),
        metric: 0,
    };
    let e = net.replace_route(&far, ROUTE_PROTOCOL).await.unwrap_err();
    assert_eq!(e.errno(), Some(101), "ENETUNREACH expected: {e}");
    assert!(e.to_string().contains("10.251."), "{e}");

    for _ in 0..2 {
        net.delete_route(&r, ROUTE_PROTOCOL).await.unwrap();
    }
    let left = net.routes(ROUTE_PROTOCOL).await.unwrap();
    assert!(!left.contains(&r) && left.contains(&other), "{left:?}");
    net.delete_route(&other, ROUTE_PROTOCOL).await.unwrap();

    for _ in 0..2 {
        net.delete_address(link, b).await.unwrap();
    }
    let got: Vec<Ipv4Net> = net
        .addresses(link)
        .await
        .unwrap()
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(got, vec![a]);

    // The link itself, and then deleting it again is no error.
    net.delete_link(&name).await.unwrap();
    assert!(!net.link_exists(&name).await.unwrap());
    net.delete_link(&name).await.unwrap();
    drop(veth);
}
