//! Desired state through stock kubectl on a cluster of hollow nodes: replication,
//! scheduling constraints, garbage collection, node failure, namespaces, endpoints.

mod support;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use support::{fails, kubectls, ok, Cluster};

struct Env {
    c: Cluster,
    k: PathBuf,
    hollow: hollow::HollowHandle,
    _rt: tokio::runtime::Runtime,
}

impl Env {
    fn start(nodes: usize) -> Env {
        let c = Cluster::start_in(
            tempfile::tempdir().unwrap(),
            &[
                // Longer than the hollow kubelet's 10 s lease renewal, as upstream's 40 s is.
                "--node-monitor-grace-period",
                "15",
                "--default-unreachable-toleration-seconds",
                "2",
                "--default-not-ready-toleration-seconds",
                "2",
            ],
        );
        let rt = tokio::runtime::Runtime::new().unwrap();
        let client = rt.block_on(async { kube::Client::try_from(c.client_config()).unwrap() });
        let cfg = hollow::HollowConfig {
            count: nodes,
            ..Default::default()
        };
        let (fut, handle) = rt
            .block_on(async { hollow::run_with_handle(client, cfg) })
            .unwrap();
        rt.spawn(fut);
        rt.block_on(handle.wait_registered());
        Env {
            c,
            k: kubectls().pop().unwrap(),
            hollow: handle,
            _rt: rt,
        }
    }

    fn run(&self, args: &[&str]) -> String {
        ok(&self.c.kubectl(&self.k, args), &args.join(" "))
    }

    fn apply(&self, yaml: &str) {
        let f = self.c.dir.path().join(format!("{}.yaml", rand_name()));
        std::fs::write(&f, yaml).unwrap();
        self.run(&["apply", "-f", f.to_str().unwrap()]);
    }

    /// `kubectl wait --for=jsonpath=...` (no sleeping: kubectl watches).
    fn wait(&self, what: &str, cond: &str) {
        self.run(&["wait", what, &format!("--for={cond}"), "--timeout=60s"]);
    }

    /// (pod name, node) of the pods with `selector`, Running ones only if `running`.
    fn pods(&self, selector: &str) -> Vec<(String, String, String)> {
        let out = self.run(&[
            "get", "pods", "-l", selector, "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.phase}{\"\\n\"}{end}",
        ]);
        out.lines()
            .map(|l| {
                let mut p = l.split(' ');
                (
                    p.next().unwrap_or("").into(),
                    p.next().unwrap_or("").into(),
                    p.next().unwrap_or("").into(),
                )
            })
            .collect()
    }
}

fn rand_name() -> String {
    format!("{:x}", rand::random::<u64>())
}

fn rc(name: &str, replicas: u32, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1
kind: ReplicationController
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
{extra_spec}      containers:
      - name: c
        image: registry.local/pause:1
"
    )
}

#[test]
fn replication_scheduling_and_garbage_collection() {
    let e = Env::start(3);
    // An RC of 3 reaches 3 ready pods spread over 3 nodes.
    e.apply(&rc("web", 3, ""));
    e.wait("rc/web", "jsonpath={.status.readyReplicas}=3");
    let pods = e.pods("app=web");
    let nodes: std::collections::BTreeSet<&String> = pods.iter().map(|p| &p.1).collect();
    assert_eq!((pods.len(), nodes.len()), (3, 3), "{pods:?}");

    // Deleting a pod brings a replacement.
    let victim = pods[0].0.clone();
    e.run(&["delete", "pod", &victim]);
    e.wait("rc/web", "jsonpath={.status.readyReplicas}=3");
    let after = e.pods("app=web");
    assert!(
        after.iter().all(|p| p.0 != victim) && after.len() == 3,
        "{after:?}"
    );

    // Scaling down deletes the least useful pods first: with every node cordoned, two more
    // replicas stay unscheduled, and scaling back removes exactly those.
    for n in ["hollow-0", "hollow-1", "hollow-2"] {
        e.run(&["cordon", n]);
    }
    e.run(&["scale", "rc", "web", "--replicas=5"]);
    e.wait("rc/web", "jsonpath={.status.replicas}=5");
    e.run(&["scale", "rc", "web", "--replicas=3"]);
    e.wait("rc/web", "jsonpath={.status.replicas}=3");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut now: Vec<String> = e.pods("app=web").into_iter().map(|p| p.0).collect();
        let mut kept: Vec<String> = after.iter().map(|p| p.0.clone()).collect();
        now.sort();
        kept.sort();
        if now == kept {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kept {now:?}, wanted {kept:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for n in ["hollow-0", "hollow-1", "hollow-2"] {
        e.run(&["uncordon", n]);
    }
    // Scaling to 10 and back to 1 converges.
    e.run(&["scale", "rc", "web", "--replicas=10"]);
    e.wait("rc/web", "jsonpath={.status.readyReplicas}=10");
    e.run(&["scale", "rc", "web", "--replicas=1"]);
    e.wait("rc/web", "jsonpath={.status.replicas}=1");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while e.pods("app=web").len() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "scale down did not converge"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // nodeSelector, taints and tolerations, resource requests.
    e.run(&["taint", "node", "hollow-2", "dedicated=db:NoSchedule"]);
    e.apply(&rc(
        "pinned",
        1,
        "      nodeSelector:\n        kubernetes.io/hostname: hollow-1\n",
    ));
    e.apply(&rc(
        "tolerant",
        1,
        "      nodeSelector:\n        kubernetes.io/hostname: hollow-2\n      tolerations:\n      - key: dedicated\n        operator: Equal\n        value: db\n        effect: NoSchedule\n",
    ));
    e.wait("rc/pinned", "jsonpath={.status.readyReplicas}=1");
    e.wait("rc/tolerant", "jsonpath={.status.readyReplicas}=1");
    assert_eq!(e.pods("app=pinned")[0].1, "hollow-1");
    assert_eq!(e.pods("app=tolerant")[0].1, "hollow-2");
    e.apply(&rc("huge", 1, "").replace(
        "image: registry.local/pause:1\n",
        "image: registry.local/pause:1\n        resources:\n          requests:\n            cpu: \"100\"\n",
    ));
    // Required anti-affinity keeps replicas apart; the third cannot fit (hollow-2 is tainted).
    e.apply(&rc(
        "apart",
        3,
        "      affinity:\n        podAntiAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n          - labelSelector:\n              matchLabels:\n                app: apart\n            topologyKey: kubernetes.io/hostname\n",
    ));
    e.wait("rc/apart", "jsonpath={.status.readyReplicas}=2");
    let apart = e.pods("app=apart");
    let placed: std::collections::BTreeSet<&String> = apart
        .iter()
        .filter(|p| p.2 == "Running")
        .map(|p| &p.1)
        .collect();
    assert_eq!(placed.len(), 2, "{apart:?}");
    let pending = apart
        .iter()
        .find(|p| p.2 == "Pending")
        .expect("a pending replica")
        .0
        .clone();
    e.wait(&format!("pod/{pending}"), "condition=PodScheduled=false");
    let huge = e.pods("app=huge")[0].0.clone();
    e.wait(&format!("pod/{huge}"), "condition=PodScheduled=false");
    let events = e.run(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={huge},reason=FailedScheduling"),
        "-o",
        "jsonpath={.items[0].message}",
    ]);
    assert!(
        events.starts_with("0/3 nodes are available:") && events.contains("Insufficient cpu"),
        "{events}"
    );
    let events = e.run(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={pending},reason=FailedScheduling"),
        "-o",
        "jsonpath={.items[0].message}",
    ]);
    assert!(events.starts_with("0/3 nodes are available:"), "{events}");

    // Deleting an RC removes its pods; with --cascade=orphan they stay.
    e.run(&["delete", "rc", "apart"]);
    e.run(&[
        "wait",
        "--for=delete",
        "pods",
        "-l",
        "app=apart",
        "--timeout=60s",
    ]);
    e.run(&["delete", "rc", "pinned", "--cascade=orphan"]);
    let orphan = e.pods("app=pinned");
    assert_eq!(orphan.len(), 1);
    let owners = e.run(&[
        "get",
        "pod",
        &orphan[0].0,
        "-o",
        "jsonpath={.metadata.ownerReferences}",
    ]);
    assert_eq!(owners, "");
}

#[test]
fn a_stopped_nodes_pods_are_replaced_and_namespaces_and_endpoints_follow() {
    let e = Env::start(3);
    e.apply(&rc("web", 3, ""));
    e.wait("rc/web", "jsonpath={.status.readyReplicas}=3");
    let before = e.pods("app=web");
    let dead = before[0].1.clone();
    assert!(e.hollow.stop_node(&dead));
    // The node goes Unknown and unreachable; its pod is evicted after the 2 s toleration
    // and replaced on the other nodes.
    e.wait(&format!("node/{dead}"), "condition=Ready=Unknown");
    let taints = e.run(&["get", "node", &dead, "-o", "jsonpath={.spec.taints[*].key}"]);
    assert!(
        taints.contains("node.kubernetes.io/unreachable"),
        "{taints}"
    );
    e.run(&[
        "wait",
        &format!("pod/{}", before[0].0),
        "--for=jsonpath={.metadata.deletionTimestamp}",
        "--timeout=60s",
    ]);
    // As upstream's taint manager: the pod got its DisruptionTarget condition before the
    // deletion, and a TaintManagerEviction event.
    let cond = e.run(&[
        "get",
        "pod",
        &before[0].0,
        "--ignore-not-found",
        "-o",
        "jsonpath={.metadata.name}:{.status.conditions[?(@.type==\"DisruptionTarget\")].reason}",
    ]);
    // (Unless the pod is already gone.)
    assert!(
        cond.is_empty() || cond.ends_with(":DeletionByTaintManager"),
        "DisruptionTarget reason {cond:?}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let msgs = e.run(&[
            "get",
            "events",
            "--field-selector",
            &format!(
                "involvedObject.name={},reason=TaintManagerEviction",
                before[0].0
            ),
            "-o",
            "jsonpath={.items[*].message}",
        ]);
        if msgs.contains(&format!("Marking for deletion Pod default/{}", before[0].0)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no TaintManagerEviction event: {msgs:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let running: Vec<_> = e
            .pods("app=web")
            .into_iter()
            .filter(|p| p.2 == "Running" && p.1 != dead)
            .collect();
        if running.len() == 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no replacement: {running:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A Service's Endpoints follow the ready pods.
    e.run(&["expose", "rc", "web", "--port=80"]);
    e.wait("endpoints/web", "jsonpath={.subsets[0].addresses[2].ip}");
    // The slice also lists the evicted, terminating pod (not ready), as upstream does.
    let slices = e.run(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
        "-o",
        "jsonpath={range .items[0].endpoints[*]}{.addresses[0]} {.conditions.ready}{\"\\n\"}{end}",
    ]);
    let ready = slices.lines().filter(|l| l.ends_with(" true")).count();
    assert_eq!(ready, 3, "{slices}");

    // Deleting a namespace removes its RCs, pods, services and endpoints.
    e.run(&["create", "namespace", "doomed"]);
    e.apply(&rc("app", 2, "").replace(
        "metadata:\n  name: app\n",
        "metadata:\n  name: app\n  namespace: doomed\n",
    ));
    e.run(&[
        "-n",
        "doomed",
        "wait",
        "rc/app",
        "--for=jsonpath={.status.readyReplicas}=2",
        "--timeout=60s",
    ]);
    e.run(&["-n", "doomed", "expose", "rc", "app", "--port=80"]);
    e.run(&["delete", "namespace", "doomed", "--timeout=60s"]);
    let err = fails(
        &e.c.kubectl(&e.k, &["get", "namespace", "doomed"]),
        "get deleted ns",
    );
    assert!(err.contains("NotFound"), "{err}");
}

/// A template the API refuses: the RC reports ReplicaFailure (reason FailedCreate, the
/// API's message) and a FailedCreate event, creates nothing, and recovers once the cause
/// is gone. minReadySeconds: ready pods count as available only after that long.
#[test]
fn replica_failure_events_and_min_ready_seconds() {
    let e = Env::start(2);
    e.apply(&rc("locked", 3, "      serviceAccountName: missing\n"));
    e.wait(
        "rc/locked",
        "jsonpath={.status.conditions[0].reason}=FailedCreate",
    );
    let cond = e.run(&[
        "get",
        "rc",
        "locked",
        "-o",
        "jsonpath={.status.conditions[0].type} {.status.conditions[0].status}|{.status.conditions[0].message}",
    ]);
    let expected = "pods \"locked-\" is forbidden: error looking up service account \
                    default/missing: serviceaccount \"missing\" not found";
    assert_eq!(cond, format!("ReplicaFailure True|{expected}"));
    assert!(e.pods("app=locked").is_empty());
    let events = e.run(&[
        "get",
        "events",
        "-o",
        "jsonpath={range .items[?(@.involvedObject.name==\"locked\")]}{.type} {.reason} {.source.component}: {.message}{\"\\n\"}{end}",
    ]);
    assert!(
        events.contains(&format!(
            "Warning FailedCreate replication-controller: Error creating: {expected}"
        )),
        "{events}"
    );

    // The cause goes: the pods come, the condition goes, each create is an event.
    e.run(&["create", "serviceaccount", "missing"]);
    e.wait("rc/locked", "jsonpath={.status.readyReplicas}=3");
    let conditions = e.run(&["get", "rc", "locked", "-o", "jsonpath={.status.conditions}"]);
    assert_eq!(conditions, "", "ReplicaFailure stays after recovery");
    let events = e.run(&[
        "get",
        "events",
        "-o",
        "jsonpath={range .items[?(@.reason==\"SuccessfulCreate\")]}{.message}{\"\\n\"}{end}",
    ]);
    for (pod, _, _) in e.pods("app=locked") {
        assert!(
            events.lines().any(|l| l == format!("Created pod: {pod}")),
            "no SuccessfulCreate event for {pod}: {events}"
        );
    }

    // minReadySeconds: ready first, available only once each pod has been ready that long.
    const MIN_READY: i64 = 10;
    e.apply(&rc("slow", 2, "").replace(
        "spec:\n  replicas: 2\n",
        &format!("spec:\n  replicas: 2\n  minReadySeconds: {MIN_READY}\n"),
    ));
    e.wait("rc/slow", "jsonpath={.status.readyReplicas}=2");
    let available = e.run(&[
        "get",
        "rc",
        "slow",
        "-o",
        "jsonpath={.status.availableReplicas}",
    ]);
    assert!(
        available.is_empty() || available == "0",
        "available at once despite minReadySeconds: {available}"
    );
    e.wait("rc/slow", "jsonpath={.status.availableReplicas}=2");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ready_since = e.run(&[
        "get",
        "pods",
        "-l",
        "app=slow",
        "-o",
        "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Ready\")].lastTransitionTime}{\"\\n\"}{end}",
    ]);
    for t in ready_since.lines() {
        let at = k8s_openapi::jiff::Timestamp::from_str(t)
            .unwrap_or_else(|_| panic!("Ready lastTransitionTime {t:?}"))
            .as_second();
        // Timestamps have whole seconds: allow one for rounding.
        assert!(
            now - at >= MIN_READY - 1,
            "available {}s after Ready (minReadySeconds {MIN_READY})",
            now - at
        );
    }
}
