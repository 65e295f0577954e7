//! `rkube agent` joining a server, end to end on this machine: the server with its own
//! agent (node A) and a separate `rkube agent` process (node B, its own data dir,
//! containerd, kubelet port and CNI bridge). Proves the join (pinned CA, token), the
//! server → agent kubelet path (logs and exec through the API server, the kubelet trusting
//! the cluster CA it fetched), and node lifecycle when the agent dies. Needs root
//! (containerd, runc, CNI) and the images of scripts/images.sh.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use serde_json::json;
use support::{busybox, fails, kubectls, ok, run_rkube, wait_for_within, Agent, Cluster, Registry};

const WAIT: Duration = Duration::from_secs(90);

fn ready_status(n: &Node) -> Option<String> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_agent_runs_pods_serves_logs_and_exec_and_goes_unknown_when_killed() {
    let cidr = support::unique_cluster_cidr();
    let c = Cluster::start_with_agent(&[
        "--node-name",
        "node-a",
        "--cluster-cidr",
        &cidr,
        // Longer than the kubelets' 10 s lease renewal, short for the test.
        "--node-monitor-grace-period",
        "20",
    ]);

    // A wrong secret (right CA hash) and a wrong CA hash: the agent exits non-zero at once.
    let token = std::fs::read_to_string(c.dir.path().join("server/token")).unwrap();
    let token = token.trim();
    let (prefix, _) = token.rsplit_once(':').unwrap();
    let bad_secret = format!("{prefix}:not-the-secret");
    let bad_hash = format!("K10{}::server:x", "0".repeat(64));
    let scratch = tempfile::tempdir().unwrap();
    let scratch_dir = scratch.path().to_str().unwrap();
    for (t, want) in [
        (bad_secret.as_str(), "refused the join token"),
        (bad_hash.as_str(), "does not match the join token"),
        ("nonsense", "not a full join token"),
    ] {
        let (status, err) = run_rkube(
            &[
                "agent",
                "--server",
                &c.url,
                "--token",
                t,
                "--data-dir",
                scratch_dir,
            ],
            Duration::from_secs(30),
        );
        let status = status.unwrap_or_else(|| panic!("agent with token {t:?} did not exit: {err}"));
        assert!(
            !status.success(),
            "agent with a wrong token succeeded: {err}"
        );
        assert!(err.contains(want), "token {t:?}: want {want:?} in:\n{err}");
    }
    // An unreachable server.
    let port = support::free_port();
    let (status, err) = run_rkube(
        &[
            "agent",
            "--server",
            &format!("https://127.0.0.1:{port}"),
            "--token",
            token,
            "--data-dir",
            scratch_dir,
        ],
        Duration::from_secs(30),
    );
    assert!(status.is_some_and(|s| !s.success()), "{err}");
    assert!(
        err.contains("is the server running? check --server"),
        "{err}"
    );
    kubelet::containerd::teardown(&scratch.path().join("agent"));

    let mut b = Agent::start(&c, "node-b", &["--node-label", "rkube.test/side=b"]);
    let client = c.client();
    let nodes: Api<Node> = Api::all(client.clone());
    let mut cidrs = Vec::new();
    for name in ["node-a", "node-b"] {
        let n = wait_for_within(
            &nodes,
            name,
            &format!("{name} Ready with a podCIDR"),
            WAIT,
            |n| {
                ready_status(n).as_deref() == Some("True")
                    && n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some()
            },
        )
        .await;
        cidrs.push(n.spec.unwrap().pod_cidr.unwrap());
    }
    assert_ne!(cidrs[0], cidrs[1], "two nodes, one podCIDR");
    let nb = nodes.get("node-b").await.unwrap();
    assert_eq!(
        nb.metadata
            .labels
            .unwrap()
            .get("rkube.test/side")
            .map(String::as_str),
        Some("b")
    );
    let port = nb
        .status
        .unwrap()
        .daemon_endpoints
        .unwrap()
        .kubelet_endpoint
        .unwrap()
        .port;
    assert_eq!(port, i32::from(b.port));

    // A pod selected onto B runs there.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let p: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "on-b", "namespace": "default"},
        "spec": {
            "nodeSelector": {"rkube.test/side": "b"},
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "c",
                "image": busybox(),
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "echo hello from b; exec sleep 3600"],
            }],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    let running = wait_for_within(&pods, "on-b", "pod on-b Running", WAIT, |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    })
    .await;
    assert_eq!(
        running.spec.as_ref().unwrap().node_name.as_deref(),
        Some("node-b")
    );
    let ip = running.status.unwrap().pod_ip.unwrap_or_default();
    let prefix = cidrs[1].rsplit_once('.').unwrap().0.to_string();
    assert!(
        ip.starts_with(&format!("{prefix}.")),
        "pod IP {ip} outside {}",
        cidrs[1]
    );

    // Logs and exec through the API server, to B's kubelet.
    let kubectl = kubectls().pop().unwrap();
    let mut logs = String::new();
    for _ in 0..50 {
        logs = ok(&c.kubectl(&kubectl, &["logs", "on-b"]), "kubectl logs");
        if logs.contains("hello from b") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(logs, "hello from b\n");
    let out = ok(
        &c.kubectl(
            &kubectl,
            &["exec", "on-b", "--", "sh", "-c", "echo $((6*7)); hostname"],
        ),
        "kubectl exec",
    );
    assert_eq!(out, "42\non-b\n");
    let err = fails(
        &c.kubectl(&kubectl, &["exec", "on-b", "--", "sh", "-c", "exit 3"]),
        "kubectl exec exit 3",
    );
    assert!(err.contains("exit code 3"), "{err}");

    // kill -9: B's lease goes silent, the node controller marks it Unknown.
    b.kill9();
    let killed = std::time::Instant::now();
    wait_for_within(
        &nodes,
        "node-b",
        "node-b Ready=Unknown after its agent died",
        Duration::from_secs(60),
        |n| ready_status(n).as_deref() == Some("Unknown"),
    )
    .await;
    eprintln!("node-b Unknown {:?} after kill -9", killed.elapsed());
    let a = nodes.get("node-a").await.unwrap();
    assert_eq!(ready_status(&a).as_deref(), Some("True"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registries_yaml_mirrors_docker_io_to_a_plain_http_registry() {
    let reg = Registry::start();
    // busybox under a name that exists nowhere but in this registry, and the pause
    // image (the sandbox image is pulled through the mirror as well).
    let image = "docker.io/mirrored/busybox:1";
    reg.push("busybox", &busybox(), "mirrored/busybox:1");
    reg.push_built("pause", &support::pause_image());

    let conf = tempfile::tempdir().unwrap();
    let yaml = support::registries_yaml(conf.path(), &reg.url());
    // A broken file is a startup error naming the file and the line.
    let bad = conf.path().join("bad.yaml");
    std::fs::write(&bad, "mirrors:\n  docker.io:\n    endpoints: []\n").unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let (status, err) = run_rkube(
        &[
            "server",
            "--data-dir",
            scratch.path().to_str().unwrap(),
            "--bind-address",
            "127.0.0.1",
            "--https-listen-port",
            "0",
            "--kubelet-port",
            &support::free_port().to_string(),
            "--write-kubeconfig",
            scratch.path().join("kc.yaml").to_str().unwrap(),
            "--private-registry",
            bad.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    kubelet::containerd::teardown(&scratch.path().join("agent"));
    assert!(status.is_some_and(|s| !s.success()), "{err}");
    assert!(
        err.contains(&format!("{}: line 3", bad.display())),
        "want the file and line in:\n{err}"
    );

    let cidr = support::unique_cluster_cidr();
    let c = Cluster::start_with_agent(&[
        "--node-name",
        "mirror-test",
        "--cluster-cidr",
        &cidr,
        "--private-registry",
        yaml.to_str().unwrap(),
    ]);
    let pods: Api<Pod> = Api::namespaced(c.client(), "default");
    let p: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "mirrored", "namespace": "default"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "c",
                "image": image,
                "imagePullPolicy": "Always",
                "command": ["sh", "-c", "exec sleep 3600"],
            }],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    wait_for_within(&pods, "mirrored", "mirrored pod Running", WAIT, |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    })
    .await;
    let hosts = std::fs::read_to_string(
        c.dir
            .path()
            .join("agent/containerd/certs.d/docker.io/hosts.toml"),
    )
    .unwrap();
    assert!(
        hosts.contains(&format!("[host.\"http://{}\"]", reg.addr)),
        "{hosts}"
    );
    let kubectl = kubectls().pop().unwrap();
    let events = ok(
        &c.kubectl(
            &kubectl,
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=mirrored",
                "-o",
                "jsonpath={.items[*].message}",
            ],
        ),
        "kubectl get events",
    );
    assert!(
        events.contains(&format!("Successfully pulled image \"{image}\"")),
        "{events}"
    );
}
