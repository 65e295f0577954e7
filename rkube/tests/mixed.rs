//! Desired state with a real kubelet among hollow nodes: an RC whose replicas must stay
//! apart lands one on the server's own node, where it really runs (busybox on containerd,
//! an IP of the node's pod CIDR, its log through `kubectl logs`); a deleted replica comes
//! back and runs again. Needs root (containerd), as `tests/kubelet.rs`.

mod support;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use support::{busybox, kubectls, ok, Cluster};

const NODE: &str = "mixed-real";

#[test]
fn replicas_spread_over_a_real_kubelet_and_hollow_nodes() {
    let cidr = support::unique_cluster_cidr();
    let c = Cluster::start_with_agent(&["--node-name", NODE, "--cluster-cidr", &cidr]);
    let k = kubectls().pop().unwrap();
    let run = |args: &[&str]| ok(&c.kubectl(&k, args), &args.join(" "));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(async { kube::Client::try_from(c.client_config()).unwrap() });
    let cfg = hollow::HollowConfig {
        count: 2,
        ..Default::default()
    };
    let (fut, handle) = rt
        .block_on(async { hollow::run_with_handle(client, cfg) })
        .unwrap();
    rt.spawn(fut);
    rt.block_on(handle.wait_registered());
    rt.block_on(async {
        let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(c.client());
        let ready = kube::runtime::wait::await_condition(nodes, NODE, |n: Option<&_>| {
            n.and_then(|n: &k8s_openapi::api::core::v1::Node| n.status.as_ref())
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        tokio::time::timeout(std::time::Duration::from_secs(90), ready)
            .await
            .expect("the real node is not Ready within 90 s")
            .expect("node watch");
    });

    let rc = format!(
        "apiVersion: v1
kind: ReplicationController
metadata:
  name: apart
spec:
  replicas: 3
  selector:
    app: apart
  template:
    metadata:
      labels:
        app: apart
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                app: apart
      containers:
      - name: c
        image: {}
        imagePullPolicy: IfNotPresent
        command: [sh, -c, 'echo running on $(hostname); exec sleep 3600']
",
        busybox()
    );
    let f = c.dir.path().join("apart.yaml");
    std::fs::write(&f, rc).unwrap();
    run(&["apply", "-f", f.to_str().unwrap()]);
    run(&[
        "wait",
        "rc/apart",
        "--for=jsonpath={.status.readyReplicas}=3",
        "--timeout=120s",
    ]);
    let on_real = || -> (String, String) {
        let out = run(&[
            "get",
            "pods",
            "-l",
            "app=apart",
            "--field-selector",
            &format!("spec.nodeName={NODE}"),
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.podIP}{\"\\n\"}{end}",
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "one replica on the real node: {out:?}");
        let (name, ip) = lines[0].split_once(' ').unwrap();
        (name.to_string(), ip.to_string())
    };
    let nodes = run(&[
        "get",
        "pods",
        "-l",
        "app=apart",
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
    ]);
    let distinct: std::collections::BTreeSet<&str> = nodes.split(' ').collect();
    assert_eq!(distinct.len(), 3, "replicas share a node: {nodes}");

    // The replica on the real node runs for real: an IP of the node's pod CIDR, its log.
    let pod_cidr = run(&["get", "node", NODE, "-o", "jsonpath={.spec.podCIDR}"]);
    let prefix = pod_cidr.rsplit_once('.').unwrap().0.to_string() + ".";
    let (name, ip) = on_real();
    assert!(ip.starts_with(&prefix), "{ip} outside {pod_cidr}");
    let log = run(&["logs", &name]);
    assert_eq!(log.trim(), format!("running on {name}"));

    // Deleted, it comes back on the only node its anti-affinity allows, and runs again.
    run(&["delete", "pod", &name]);
    let again = rt.block_on(async { ready_replacement(c.client(), &name).await });
    let ip2 = run(&["get", "pod", &again, "-o", "jsonpath={.status.podIP}"]);
    assert_ne!(again, name);
    assert!(ip2.starts_with(&prefix), "{ip2} outside {pod_cidr}");
    let log = run(&["logs", &again]);
    assert_eq!(log.trim(), format!("running on {again}"));
    drop(handle);
}

/// Watches the real node's pods until a Ready one other than `old` is there; its name.
async fn ready_replacement(client: kube::Client, old: &str) -> String {
    let api: kube::Api<Pod> = kube::Api::namespaced(client, "default");
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={NODE}"));
    let mut events = watcher(api, cfg).boxed();
    let wait = async {
        while let Some(ev) = events.next().await {
            if let Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = ev {
                let name = p.metadata.name.clone().unwrap_or_default();
                let ready = p
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                if name != old && ready && p.metadata.deletion_timestamp.is_none() {
                    return name;
                }
            }
        }
        panic!("the pod watch ended");
    };
    tokio::time::timeout(std::time::Duration::from_secs(120), wait)
        .await
        .expect("no Ready replacement on the real node within 120 s")
}
