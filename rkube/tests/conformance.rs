//! rkube's ported conformance suite (crate `conformance`) against a two-node rkube: the
//! server's node and one `rkube agent`, real containerd. Every selected test must pass;
//! the JUnit XML is written to conformance/results/junit.xml. Needs root.
//! Five parallel tests at a time. `CONFORMANCE_FOCUS=<regex>` runs only the tests whose codename matches (while porting).

mod support;

use std::time::Duration;

use conformance::{Namespaces, Options, Outcome, Summary};
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use support::{node_ready, wait_for_within, Agent, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ported_conformance_suite_passes_on_two_nodes() {
    let cidr = support::unique_cluster_cidr();
    // Both nodes on this machine's own address (not 127.0.0.1): upstream's tests reach
    // nodes from pods at their InternalIP (NodePorts, hostPorts), and a pod's loopback is
    // its own.
    let ip = host_ip();
    let c = Cluster::start_with_agent(&[
        "--node-name",
        "conf-a",
        "--cluster-cidr",
        &cidr,
        "--node-ip",
        &ip,
    ]);
    let place = support::AgentPlace {
        server: &c.url,
        node_ip: &ip,
        netns: None,
        registry: format!("http://{}", support::shared_registry()),
    };
    // Without a service proxy: the server's node already has one on this network.
    let _b = Agent::start_at(&c, "conf-b", &place, &["--disable-kube-proxy"]);
    let nodes: Api<Node> = Api::all(c.client());
    for n in ["conf-a", "conf-b"] {
        wait_for_within(
            &nodes,
            n,
            &format!("{n} Ready"),
            Duration::from_secs(120),
            node_ready,
        )
        .await;
    }

    let focus = std::env::var("CONFORMANCE_FOCUS").ok();
    let opts = Options {
        focus: focus
            .as_deref()
            .map(|f| regex::Regex::new(f).expect("CONFORMANCE_FOCUS")),
        kubeconfig: Some(c.kubeconfig.clone()),
        // Five at once (as a ginkgo run's parallel nodes): 864 s for the 216 tests of
        // session 5, against 1,564 s two at a time.
        parallel: 5,
        ..Options::default()
    };
    let (tests, skipped) = conformance::select(conformance::all(), &opts);
    assert!(focus.is_some() || skipped.is_empty());
    let selected = tests.len();
    let namespaces = Namespaces::default();
    let results = conformance::run(c.client(), tests, &opts, &namespaces).await;
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance/results");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("junit.xml"), conformance::junit::render(&results)).unwrap();
    let summary = Summary::of(&results);
    eprintln!("{}", summary.render());
    let failures: Vec<String> = results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Failed(m) => Some(format!("{}\n  {m}", r.codename)),
            _ => None,
        })
        .collect();
    assert!(failures.is_empty(), "failed:\n{}", failures.join("\n"));
    assert_eq!(results.len(), selected);
}

/// This machine's address on its default route (127.0.0.1 when it has none).
fn host_ip() -> String {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            // No packet is sent: connecting a UDP socket only picks the route.
            s.connect("8.8.8.8:53")?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .map_or_else(|| "127.0.0.1".to_string(), |ip| ip.to_string())
}
