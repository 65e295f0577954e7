//! Pods on different nodes reach each other (host-gw): the server's node on the host
//! and an `rkube agent` in a network namespace of its own, the two "machines" on one
//! veth link. Each kubelet routes the other node's pod CIDR via the other's node IP
//! through netlink; no overlay, no NAT (the callee sees the caller's pod IP), no
//! iptables. Needs root, iproute2 (the test's own veth and namespace) and the images of
//! scripts/images.sh; the namespace's agent pulls from a registry on the link.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use serde_json::json;
use support::netns::Netns;
use support::{
    get_ready, node_ready, testserver_image, wait_for_within, Agent, AgentPlace, Cluster, Registry,
};

const WAIT: Duration = Duration::from_secs(120);

fn pod_ip(p: &Pod) -> Option<String> {
    let s = p.status.as_ref()?;
    let ready = s
        .conditions
        .as_ref()?
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    ready.then(|| s.pod_ip.clone()).flatten()
}

/// A testserver `netexec` pod on `node`, Ready (its HTTP port answers); its IP.
async fn netexec_on(pods: &Api<Pod>, name: &str, node: &str) -> String {
    let p: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "netexec",
                "image": testserver_image(),
                "args": ["netexec", "--http-port", "8080", "--udp-port", "8081"],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1},
            }],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    let p = wait_for_within(pods, name, &format!("{name} Ready on {node}"), WAIT, |p| {
        pod_ip(p).is_some()
    })
    .await;
    pod_ip(&p).unwrap()
}

fn in_cidr(ip: &str, cidr: &str) -> bool {
    let net: ipnet::Ipv4Net = cidr.parse().unwrap();
    net.contains(&ip.parse::<std::net::Ipv4Addr>().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_on_two_nodes_reach_each_other_through_host_gw_routes() {
    // Dropped last: the namespace outlives the agent in it.
    let ns = Netns::new("hgw");
    // The namespace's node pulls from a registry on the link (the shared one listens on
    // the host's loopback only).
    let reg = Registry::start_on(&ns.host_ip);
    reg.push_built("pause", &support::pause_image());
    reg.push_built("testserver", &testserver_image());

    let cidr = support::unique_cluster_cidr();
    let c = Cluster::start_with_agent(&[
        "--node-name",
        "node-a",
        "--cluster-cidr",
        &cidr,
        "--node-ip",
        &ns.host_ip,
        "--bind-address",
        "0.0.0.0",
    ]);
    let port = c.url.rsplit(':').next().unwrap().trim_end_matches('/');
    let server = format!("https://{}:{port}", ns.host_ip);
    let place = AgentPlace {
        server: &server,
        node_ip: &ns.ns_ip,
        netns: Some(&ns.name),
        registry: reg.url(),
    };
    let b = Agent::start_at(&c, "node-b", &place, &[]);

    let client = c.client();
    let nodes: Api<Node> = Api::all(client.clone());
    let mut cidrs = Vec::new();
    for n in ["node-a", "node-b"] {
        let node = wait_for_within(&nodes, n, &format!("{n} Ready"), WAIT, node_ready).await;
        cidrs.push(node.spec.and_then(|s| s.pod_cidr).expect("a pod CIDR"));
    }
    assert_ne!(cidrs[0], cidrs[1]);

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let a_ip = netexec_on(&pods, "pod-a", "node-a").await;
    let b_ip = netexec_on(&pods, "pod-b", "node-b").await;
    assert!(
        in_cidr(&a_ip, &cidrs[0]),
        "{a_ip} outside node-a's {}",
        cidrs[0]
    );
    assert!(
        in_cidr(&b_ip, &cidrs[1]),
        "{b_ip} outside node-b's {}",
        cidrs[1]
    );

    // The host reaches the other machine's pod through its route via node-b's IP.
    assert_eq!(get_ready(&b_ip, 8080, "/hostname"), (200, "pod-b".into()));

    // Pod to pod across the nodes, both ways, HTTP and UDP; the callee sees the
    // caller's own pod IP (nothing masquerades).
    for (from, from_ip, to, to_ip) in [
        ("pod-a", &a_ip, "pod-b", &b_ip),
        ("pod-b", &b_ip, "pod-a", &a_ip),
    ] {
        let dial = |request: &str, protocol: &str, port: u16| {
            let q = format!(
                "/dial?request={request}&protocol={protocol}&host={to_ip}&port={port}&tries=1"
            );
            // Asked of `from` from the host (node-b's pod through the route as well).
            let (status, body) = get_ready(from_ip, 8080, &q);
            assert_eq!(status, 200, "{from} {q}: {body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(
                v["errors"],
                json!([]),
                "{from} → {to} over {protocol}: {body}"
            );
            v["responses"][0].as_str().unwrap().to_string()
        };
        assert_eq!(dial("hostname", "http", 8080), to, "{from} → {to}");
        assert_eq!(dial("hostname", "udp", 8081), to, "{from} → {to} (UDP)");
        let seen = dial("clientip", "http", 8080);
        assert_eq!(
            seen.rsplit_once(':').map(|(ip, _)| ip),
            Some(from_ip.as_str()),
            "{to} saw {seen}, not {from}'s pod IP"
        );
    }

    // The API server reaches node-b's kubelet on its node IP (logs through the API).
    let logs = pods.logs("pod-b", &Default::default()).await.unwrap();
    assert!(logs.contains("testserver netexec: serving"), "{logs}");
    drop(b);
}
