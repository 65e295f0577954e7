//! The kubelet on a real containerd with real images: `rkube server` with its agent
//! registers its Node and runs pods (busybox from scripts/images.sh, imported from
//! `<data-dir>/agent/images/`). Each test has its own server, containerd and pod network
//! (its own /16 cluster CIDR, so two tests' bridges never share a subnet), and removes
//! all of it when it ends, failed or not. Needs root (containerd, runc, CNI).

mod support;

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::wait::await_condition;
use serde_json::json;
use support::{busybox, kubectls, ok, wait_for, Cluster};

const NODE: &str = "kubelet-test";
const WAIT: Duration = Duration::from_secs(90);

/// A cluster with its agent, on a cluster CIDR of its own (returned). These tests prove
/// the air-gap import too: the agent gets its images as archives, not from a registry.
fn start_cluster() -> (Cluster, String) {
    let cidr = support::unique_cluster_cidr();
    let c = Cluster::start_with_agent_airgap(&["--node-name", NODE, "--cluster-cidr", &cidr]);
    (c, cidr)
}

fn start() -> Cluster {
    start_cluster().0
}

fn pod(name: &str, script: &str, restart: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 2,
            "containers": [{
                "name": "main",
                "image": busybox(),
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script],
            }],
        },
    }))
    .unwrap()
}

fn status(p: &Pod) -> serde_json::Value {
    serde_json::to_value(p.status.clone().unwrap_or_default()).unwrap()
}

fn ready(p: &Pod) -> bool {
    let s = status(p);
    s["phase"] == "Running"
        && s["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Whether `ip` (a.b.c.d) is in `cidr` (a.b.c.d/n).
fn in_cidr(ip: &str, cidr: &str) -> bool {
    let (net, bits) = cidr.split_once('/').unwrap();
    let v = |s: &str| u32::from(s.parse::<std::net::Ipv4Addr>().unwrap());
    let bits: u32 = bits.parse().unwrap();
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    v(ip) & mask == v(net) & mask
}

/// Waits (by watch) until events with all of `reasons` exist for the pod.
async fn await_events(client: &kube::Client, pod: &str, reasons: &[&str]) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    let fs = format!("involvedObject.name={pod}");
    let have = |evs: &[Event]| {
        reasons
            .iter()
            .all(|r| evs.iter().any(|e| e.reason.as_deref() == Some(r)))
    };
    let list = api.list(&ListParams::default().fields(&fs)).await.unwrap();
    let mut seen = list.items;
    if have(&seen) {
        return seen;
    }
    let rv = list.metadata.resource_version.unwrap_or_default();
    let mut stream = api
        .watch(&WatchParams::default().fields(&fs), &rv)
        .await
        .unwrap()
        .boxed();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !have(&seen) {
        match tokio::time::timeout_at(deadline, stream.try_next()).await {
            Ok(Ok(Some(WatchEvent::Added(e)))) | Ok(Ok(Some(WatchEvent::Modified(e)))) => {
                seen.push(e)
            }
            Ok(Ok(Some(_))) => {}
            other => {
                let got: Vec<_> = seen
                    .iter()
                    .map(|e| (e.reason.clone(), e.message.clone()))
                    .collect();
                panic!("events {reasons:?} of {pod}: {other:?}; have {got:?}");
            }
        }
    }
    seen
}

/// A client of the kubelet's own endpoint with the admin's client certificate (or none).
fn kubelet_client(c: &Cluster, with_cert: bool) -> kube::Client {
    let tls = c.dir.path().join("server").join("tls");
    let port = c.kubelet_port().expect("kubelet port");
    let user = if with_cert {
        format!(
            "{{client-certificate: {}, client-key: {}}}",
            tls.join("client-admin.crt").display(),
            tls.join("client-admin.key").display()
        )
    } else {
        "{}".into()
    };
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster: {{server: 'https://127.0.0.1:{port}', insecure-skip-tls-verify: true}}\nusers:\n- name: u\n  user: {user}\ncontexts:\n- name: c\n  context: {{cluster: k, user: u}}\ncurrent-context: c\n"
    );
    let file = c.dir.path().join(format!("kubelet-{with_cert}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    let kc = kube::config::Kubeconfig::read_from(&file).unwrap();
    let cfg = tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(kube::Config::from_custom_kubeconfig(
            kc,
            &Default::default(),
        ))
    })
    .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

/// Processes whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmd)
                .contains(marker)
                .then_some(pid)
        })
        .collect()
}

/// The container's main process, once it has exec'd (runc's start returns before its
/// init has become the container's command: nothing to watch, so this polls).
fn await_process(marker: &str) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = main_processes_with(marker);
        if !pids.is_empty() || Instant::now() > deadline {
            return pids;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Of those, the ones whose parent is not one of them (a shell's fork about to exec
/// carries its command line for a moment).
fn main_processes_with(marker: &str) -> Vec<u32> {
    let all = processes_with(marker);
    let parent = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()
    };
    all.iter()
        .copied()
        .filter(|p| parent(*p).is_none_or(|pp| !all.contains(&pp)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_registers_ready_with_a_pod_cidr_and_renews_its_lease() {
    let (c, cluster_cidr) = start_cluster();
    let client = c.client();
    let nodes: Api<Node> = Api::all(client.clone());
    let node = wait_for(&nodes, NODE, "node Ready with a podCIDR", |n: &Node| {
        let v = serde_json::to_value(n).unwrap();
        v["spec"]["podCIDR"].is_string()
            && v["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
    .await;
    let v = serde_json::to_value(&node).unwrap();
    let cpus = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    let cases: &[(&str, serde_json::Value)] = &[
        ("/status/capacity/cpu", json!(cpus.to_string())),
        ("/status/capacity/memory", json!(format!("{mem_kib}Ki"))),
        ("/status/capacity/pods", json!("110")),
        ("/status/allocatable/pods", json!("110")),
        ("/status/nodeInfo/kubeletVersion", json!("v1.33.0+rkube")),
        ("/status/nodeInfo/operatingSystem", json!("linux")),
        ("/status/nodeInfo/architecture", json!("amd64")),
        ("/status/addresses/0/type", json!("InternalIP")),
        ("/status/addresses/0/address", json!("127.0.0.1")),
        (
            "/status/addresses/1",
            json!({"type": "Hostname", "address": NODE}),
        ),
        ("/metadata/labels/kubernetes.io~1hostname", json!(NODE)),
        ("/metadata/labels/kubernetes.io~1os", json!("linux")),
        (
            "/status/daemonEndpoints/kubeletEndpoint/Port",
            json!(c.kubelet_port().unwrap()),
        ),
    ];
    for (ptr, want) in cases {
        assert_eq!(v.pointer(ptr), Some(want), "{ptr}");
    }
    let runtime = v["status"]["nodeInfo"]["containerRuntimeVersion"]
        .as_str()
        .unwrap();
    assert!(runtime.starts_with("containerd://1."), "{runtime}");
    for f in [
        "machineID",
        "bootID",
        "systemUUID",
        "kernelVersion",
        "osImage",
    ] {
        assert!(
            v["status"]["nodeInfo"][f]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "nodeInfo.{f}"
        );
    }
    let cidr = v["spec"]["podCIDR"].as_str().unwrap();
    assert!(
        in_cidr(cidr.split('/').next().unwrap(), &cluster_cidr),
        "{cidr} in {cluster_cidr}"
    );

    // kubectl shows it Ready.
    let k = kubectls().pop().unwrap();
    let out = ok(&c.kubectl(&k, &["get", "nodes"]), "kubectl get nodes");
    let line = out
        .lines()
        .find(|l| l.starts_with(NODE))
        .unwrap_or_else(|| panic!("{NODE} missing:\n{out}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[1], "Ready", "{out}");
    assert_eq!(cols.last(), Some(&"v1.33.0+rkube"), "{out}");

    // The lease: held by the node, owned by the Node, renewed (seen by watch).
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let first = wait_for(&leases, NODE, "node lease", |_: &Lease| true).await;
    let spec = first.spec.clone().unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some(NODE));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let owner = &first.metadata.owner_references.clone().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Node", NODE));
    assert_eq!(Some(&owner.uid), node.metadata.uid.as_ref());
    let t0 = spec.renew_time.clone();
    let renewed = wait_for(&leases, NODE, "a second renewTime", |l: &Lease| {
        l.spec.as_ref().and_then(|s| s.renew_time.clone()) != t0
    })
    .await;
    let (a, b) = (t0.unwrap().0, renewed.spec.unwrap().renew_time.unwrap().0);
    let gap = b.duration_since(a);
    assert!(
        gap.as_secs_f64() > 5.0 && gap.as_secs_f64() < 20.0,
        "renewed after {gap:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busybox_pod_runs_with_an_ip_of_the_node_and_serves_its_logs() {
    let c = start();
    let client = c.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &pod("hello", "echo hello from $(hostname); sleep 3600", "Always"),
    )
    .await
    .unwrap();
    let p = wait_for(&pods, "hello", "pod Running and Ready", ready).await;
    let s = status(&p);
    let nodes: Api<Node> = Api::all(client.clone());
    let node = nodes.get(NODE).await.unwrap();
    let cidr = node.spec.unwrap().pod_cidr.unwrap();
    let ip = s["podIP"].as_str().unwrap();
    assert!(in_cidr(ip, &cidr), "pod IP {ip} outside the node's {cidr}");
    assert_eq!(s["podIPs"], json!([{"ip": ip}]));
    assert_eq!(s["hostIP"], "127.0.0.1");
    assert_eq!(s["qosClass"], "BestEffort");
    assert!(s["startTime"].is_string());
    let cs = &s["containerStatuses"][0];
    assert_eq!(cs["name"], "main");
    assert!(cs["state"]["running"]["startedAt"].is_string(), "{cs}");
    assert_eq!(cs["ready"], true);
    assert_eq!(cs["started"], true);
    assert_eq!(cs["restartCount"], 0);
    assert_eq!(cs["image"], busybox());
    assert!(
        cs["imageID"].as_str().is_some_and(|i| !i.is_empty()),
        "{cs}"
    );
    assert!(
        cs["containerID"]
            .as_str()
            .is_some_and(|i| i.starts_with("containerd://")),
        "{cs}"
    );
    for t in [
        "PodScheduled",
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
    ] {
        assert!(
            s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["type"] == t && c["status"] == "True"),
            "{t}: {}",
            s["conditions"]
        );
    }
    // The host reaches the pod over the node's bridge.
    let ping = std::process::Command::new("/bin/busybox")
        .args(["ping", "-c", "1", "-W", "5", ip])
        .output()
        .unwrap();
    assert!(ping.status.success(), "ping {ip}: {ping:?}");

    let events = await_events(&client, "hello", &["Pulled", "Created", "Started"]).await;
    let msg = |r: &str| {
        events
            .iter()
            .find(|e| e.reason.as_deref() == Some(r))
            .and_then(|e| e.message.clone())
            .unwrap()
    };
    assert_eq!(
        msg("Pulled"),
        format!(
            "Container image \"{}\" already present on machine",
            busybox()
        )
    );
    assert_eq!(msg("Created"), "Created container: main");
    assert_eq!(msg("Started"), "Started container main");
    let started = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("Started"))
        .unwrap();
    assert_eq!(
        started.involved_object.field_path.as_deref(),
        Some("spec.containers{main}")
    );
    assert_eq!(
        started.source.as_ref().and_then(|s| s.host.as_deref()),
        Some(NODE)
    );

    // The kubelet's own endpoint, with the admin's client certificate.
    let kc = kubelet_client(&c, true);
    let want = "hello from hello\n";
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, body) = support::raw(
            &kc,
            "GET",
            "/containerLogs/default/hello/main",
            None,
            vec![],
        )
        .await;
        let body = String::from_utf8_lossy(&body).into_owned();
        if code == 200 && body == want {
            break;
        }
        assert!(Instant::now() < deadline, "logs: {code} {body:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cases: &[(&str, u16, &str)] = &[
        ("/healthz", 200, "ok"),
        ("/containerLogs/default/hello/main?tailLines=1", 200, want),
        (
            "/containerLogs/default/hello/main?limitBytes=5",
            200,
            "hello",
        ),
        (
            "/containerLogs/default/hello/nope",
            404,
            "container \"nope\" not found in pod \"hello\"",
        ),
        (
            "/containerLogs/default/ghost/main",
            404,
            "pod \"ghost\" does not exist",
        ),
        (
            "/containerLogs/default/hello/main?previous=true",
            400,
            "previous terminated container \"main\" in pod \"hello\" not found",
        ),
        (
            "/containerLogs/default/hello/main?tailLines=x",
            400,
            "tailLines: \"x\" must be a non-negative integer",
        ),
    ];
    for (path, code, body) in cases {
        let (got, b) = support::raw(&kc, "GET", path, None, vec![]).await;
        assert_eq!(
            (got, String::from_utf8_lossy(&b).as_ref()),
            (*code, *body),
            "{path}"
        );
    }
    let (_, b) = support::raw(
        &kc,
        "GET",
        "/containerLogs/default/hello/main?timestamps=true",
        None,
        vec![],
    )
    .await;
    let line = String::from_utf8_lossy(&b).into_owned();
    let (ts, rest) = line.split_once(' ').unwrap();
    assert!(ts.parse::<k8s_openapi::jiff::Timestamp>().is_ok(), "{line}");
    assert_eq!(rest, want);
    // follow: the file's content comes at once and the stream stays open.
    let req = http::Request::get("/containerLogs/default/hello/main?follow=true")
        .body(kube::client::Body::empty())
        .unwrap();
    let resp = kc.send(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = http_body_util::BodyDataStream::new(resp.into_body());
    let first = tokio::time::timeout(WAIT, body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&first), want);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), body.next())
            .await
            .is_err(),
        "a followed log of a running container stays open"
    );
    // Through the API server (pods/log is relayed to the kubelet), with stock kubectl.
    let k = kubectls().pop().unwrap();
    let cases: &[&[&str]] = &[
        &["logs", "hello"],
        &["logs", "hello", "-c", "main", "--tail=1"],
        &["logs", "pod/hello", "--limit-bytes=100"],
    ];
    for args in cases {
        assert_eq!(ok(&c.kubectl(&k, args), &args.join(" ")), want, "{args:?}");
    }
    // Without a client certificate there is no TLS session.
    let anon = kubelet_client(&c, false);
    assert!(
        support::try_raw(&anon, "GET", "/healthz", None, vec![])
            .await
            .is_err(),
        "the kubelet answered a client without a certificate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_containers_back_off_and_never_restart_ends_failed() {
    let c = start();
    let client = c.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &pod("crash", "echo crashing; exit 1", "Always"),
    )
    .await
    .unwrap();
    pods.create(&PostParams::default(), &pod("once", "exit 3", "Never"))
        .await
        .unwrap();

    let failed = wait_for(
        &pods,
        "once",
        "restartPolicy Never pod Failed",
        |p: &Pod| status(p)["phase"] == "Failed",
    )
    .await;
    let s = status(&failed);
    let t = &s["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["exitCode"], 3, "{s}");
    assert_eq!(t["reason"], "Error", "{s}");
    assert!(t["finishedAt"].is_string(), "{s}");
    assert_eq!(s["containerStatuses"][0]["restartCount"], 0);
    let ready = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(
        (&ready["status"], &ready["reason"]),
        (&json!("False"), &json!("PodCompleted"))
    );

    // Restarted at once the first time, then after a 10 s back-off: CrashLoopBackOff
    // is seen on the way to restartCount 2.
    let mut saw_backoff = false;
    let mut stream = kube::runtime::watcher(
        pods.clone(),
        kube::runtime::watcher::Config::default().fields("metadata.name=crash"),
    )
    .boxed();
    let deadline = tokio::time::Instant::now() + WAIT;
    let last = loop {
        let Ok(ev) = tokio::time::timeout_at(deadline, stream.next()).await else {
            let now = pods.get("crash").await.unwrap();
            panic!("no restartCount 2 within {WAIT:?}: {:#}", status(&now));
        };
        let ev = ev.unwrap().unwrap();
        let p = match ev {
            kube::runtime::watcher::Event::Apply(p)
            | kube::runtime::watcher::Event::InitApply(p) => p,
            _ => continue,
        };
        let cs = status(&p)["containerStatuses"][0].clone();
        if cs["state"]["waiting"]["reason"] == "CrashLoopBackOff" {
            saw_backoff = true;
            let m = cs["state"]["waiting"]["message"].as_str().unwrap_or("");
            assert!(
                m.starts_with("back-off 10s restarting failed container=main pod=crash_default("),
                "{m}"
            );
            assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1, "{cs}");
            assert_eq!(status(&p)["phase"], "Running");
        }
        if cs["restartCount"].as_i64().unwrap_or(0) >= 2 && saw_backoff {
            break p;
        }
    };
    let cs = &status(&last)["containerStatuses"][0];
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1, "{cs}");
    assert_eq!(cs["lastState"]["terminated"]["reason"], "Error", "{cs}");
    // The previous run's log, through the API server.
    let k = kubectls().pop().unwrap();
    let prev = ok(
        &c.kubectl(&k, &["logs", "crash", "--previous"]),
        "kubectl logs --previous",
    );
    assert_eq!(prev, "crashing\n");
    let events = await_events(&client, "crash", &["BackOff"]).await;
    let backoff = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("BackOff"))
        .unwrap();
    assert_eq!(backoff.type_.as_deref(), Some("Warning"));
    assert!(
        backoff
            .message
            .as_deref()
            .unwrap()
            .starts_with("Back-off restarting failed container main in pod crash_default("),
        "{backoff:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_running_pod_stops_its_containers_and_removes_it_within_its_grace_period() {
    let c = start();
    let client = c.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let marker = format!("rkube-marker-{}", rand::random::<u32>());
    // sh ends on SIGTERM (its trap); $0 carries the marker into its command line.
    let mut p = pod(
        "doomed",
        "trap 'exit 0' TERM; while true; do sleep 1; done",
        "Always",
    );
    p.spec.as_mut().unwrap().containers[0]
        .command
        .as_mut()
        .unwrap()
        .push(marker.clone());
    pods.create(&PostParams::default(), &p).await.unwrap();
    let running = wait_for(&pods, "doomed", "pod Running", ready).await;
    assert!(
        !await_process(&marker).is_empty(),
        "the container's process is not on the machine"
    );
    let uid = running.metadata.uid.clone().unwrap();

    let t0 = Instant::now();
    pods.delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    let gone = tokio::time::timeout(
        WAIT,
        await_condition(pods.clone(), "doomed", |p: Option<&Pod>| {
            p.is_none_or(|p| p.metadata.uid.as_deref() != Some(uid.as_str()))
        }),
    )
    .await;
    let took = t0.elapsed();
    assert!(gone.is_ok(), "the pod was not removed within {WAIT:?}");
    assert!(
        took < Duration::from_secs(2 + 3),
        "the pod took {took:?} to go (grace period 2 s)"
    );
    assert!(
        processes_with(&marker).is_empty(),
        "the container's process outlived its pod"
    );
    let events = await_events(&client, "doomed", &["Killing"]).await;
    let kill = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("Killing"))
        .unwrap();
    assert_eq!(kill.message.as_deref(), Some("Stopping container main"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pull_shows_err_image_pull_then_image_pull_back_off() {
    let c = start();
    let client = c.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // Nothing listens on port 1: the pull fails at once.
    let image = "127.0.0.1:1/rkube/missing:1.0";
    let mut p = pod("nopull", "true", "Always");
    p.spec.as_mut().unwrap().containers[0].image = Some(image.into());
    pods.create(&PostParams::default(), &p).await.unwrap();
    let reason = |p: &Pod| {
        status(p)["containerStatuses"][0]["state"]["waiting"]["reason"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let first = wait_for(&pods, "nopull", "ErrImagePull", |p: &Pod| {
        reason(p) == "ErrImagePull"
    })
    .await;
    assert_eq!(status(&first)["phase"], "Pending");
    wait_for(&pods, "nopull", "ImagePullBackOff", |p: &Pod| {
        reason(p) == "ImagePullBackOff"
    })
    .await;
    let events = await_events(&client, "nopull", &["Pulling", "Failed", "BackOff"]).await;
    let messages: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e.reason.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default(),
            )
        })
        .collect();
    let has = |reason: &str, prefix: &str| {
        messages
            .iter()
            .any(|(r, m)| r == reason && m.starts_with(prefix))
    };
    assert!(
        has("Pulling", &format!("Pulling image \"{image}\"")),
        "{messages:?}"
    );
    assert!(
        has("Failed", &format!("Failed to pull image \"{image}\": ")),
        "{messages:?}"
    );
    assert!(has("Failed", "Error: ErrImagePull"), "{messages:?}");
    assert!(
        has("BackOff", &format!("Back-off pulling image \"{image}\"")),
        "{messages:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_kubelet_adopts_running_containers() {
    let mut c = start();
    let client = c.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let marker = format!("rkube-marker-{}", rand::random::<u32>());
    let mut p = pod(
        "survivor",
        "echo up; while true; do sleep 1; done",
        "Always",
    );
    p.spec.as_mut().unwrap().containers[0]
        .command
        .as_mut()
        .unwrap()
        .push(marker.clone());
    pods.create(&PostParams::default(), &p).await.unwrap();
    let before = wait_for(&pods, "survivor", "pod Running", ready).await;
    let pids = await_process(&marker);
    assert_eq!(pids.len(), 1, "{pids:?}");
    let id_before = status(&before)["containerStatuses"][0]["containerID"].clone();

    // kill -9 the server (and so the kubelet); its containerd and the shims outlive it.
    c.restart();
    let client = c.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // The new kubelet serves the pod's logs: it knows the pod and found its container.
    let kc = kubelet_client(&c, true);
    let deadline = Instant::now() + WAIT;
    loop {
        let r = support::try_raw(
            &kc,
            "GET",
            "/containerLogs/default/survivor/main",
            None,
            vec![],
        )
        .await;
        if let Ok((200, body)) = &r {
            assert_eq!(String::from_utf8_lossy(body), "up\n");
            break;
        }
        assert!(Instant::now() < deadline, "logs after the restart: {r:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = std::fs::read_to_string(&c.log).unwrap();
    assert!(
        log.contains("adopted the pod's runtime objects"),
        "no adoption in the server log"
    );
    let after = pods.get("survivor").await.unwrap();
    assert!(ready(&after), "{:#}", status(&after));
    let s = status(&after);
    assert_eq!(s["containerStatuses"][0]["containerID"], id_before);
    assert_eq!(s["containerStatuses"][0]["restartCount"], 0);
    assert_eq!(
        processes_with(&marker),
        pids,
        "the container's process changed"
    );
    let events = await_events(&client, "survivor", &["Started"]).await;
    let starts = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Started"))
        .map(|e| e.count.unwrap_or(1))
        .sum::<i32>();
    assert_eq!(starts, 1, "the container was started again");

    // containerd dies: the kubelet starts it again; the pod lives on, new pods run.
    let config = c.dir.path().join("agent/containerd/config.toml");
    let containerd: Vec<u32> = processes_with(&config.display().to_string())
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.starts_with(b"/usr/bin/containerd\0"))
        })
        .collect();
    assert_eq!(containerd.len(), 1, "{containerd:?}");
    let killed = std::process::Command::new("kill")
        .args(["-9", &containerd[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    pods.create(
        &PostParams::default(),
        &pod("newcomer", "sleep 3600", "Always"),
    )
    .await
    .unwrap();
    wait_for(&pods, "newcomer", "a pod after containerd restarted", ready).await;
    let log = std::fs::read_to_string(&c.log).unwrap();
    assert!(log.contains("containerd exited: restarting it"), "{log}");
    assert_eq!(
        main_processes_with(&marker),
        pids,
        "the first pod's process changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_network_and_init_containers() {
    let c = start();
    let client = c.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut host = pod("hostnet", "sleep 3600", "Always");
    host.spec.as_mut().unwrap().host_network = Some(true);
    pods.create(&PostParams::default(), &host).await.unwrap();
    let mut init = pod("withinit", "cat /work/greeting; sleep 3600", "Always");
    let mut first = init.spec.as_ref().unwrap().containers[0].clone();
    first.name = "prepare".into();
    first.command = Some(vec!["sh".into(), "-c".into(), "echo prepared".into()]);
    init.spec.as_mut().unwrap().init_containers = Some(vec![first]);
    pods.create(&PostParams::default(), &init).await.unwrap();

    let h = wait_for(&pods, "hostnet", "host-network pod Ready", ready).await;
    let s = status(&h);
    assert_eq!(s["podIP"], "127.0.0.1", "{s}");
    assert_eq!(s["hostIP"], "127.0.0.1", "{s}");

    let i = wait_for(&pods, "withinit", "pod with an init container Ready", ready).await;
    let s = status(&i);
    let done = &s["initContainerStatuses"][0];
    assert_eq!(done["name"], "prepare", "{s}");
    assert_eq!(done["state"]["terminated"]["exitCode"], 0, "{s}");
    assert_eq!(done["state"]["terminated"]["reason"], "Completed", "{s}");
    assert_eq!(done["ready"], true, "{s}");
    let initialized = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Initialized")
        .unwrap();
    assert_eq!(initialized["status"], "True");
    let kc = kubelet_client(&c, true);
    let (code, body) = support::raw(
        &kc,
        "GET",
        "/containerLogs/default/withinit/prepare",
        None,
        vec![],
    )
    .await;
    assert_eq!(
        (code, String::from_utf8_lossy(&body).as_ref()),
        (200, "prepared\n")
    );
}
