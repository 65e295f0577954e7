//! SchedulerPredicates [Serial]: upstream's test/e2e/scheduling/predicates.go (its
//! conformance tests).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use super::{agnhost_image, e2enode, e2epod, pause_image, test, uuid};
use crate::{Ctx, Test};

const AREA: &str = "SchedulerPredicates";

/// Upstream's `framework.PodStartShortTimeout`.
const POD_START_SHORT_TIMEOUT: Duration = Duration::from_secs(2 * 60);
/// Upstream's `wait.ForeverTestTimeout`: how long an event is awaited after the action.
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Scheduler, resource limits",
            "[sig-scheduling] SchedulerPredicates [Serial] validates resource limits of pods that are allowed to run [Conformance]",
            resource_limits
        ),
        test!(
            AREA,
            "Scheduler, node selector not matching",
            "[sig-scheduling] SchedulerPredicates [Serial] validates that NodeSelector is respected if not matching [Conformance]",
            node_selector_not_matching
        ),
        test!(
            AREA,
            "Scheduler, node selector matching",
            "[sig-scheduling] SchedulerPredicates [Serial] validates that NodeSelector is respected if matching [Conformance]",
            node_selector_matching
        ),
        // pod5 is expected to stay Pending for all of WaitForPodNotPending's 5 minutes.
        test!(
            AREA,
            "Scheduling, HostPort and Protocol match, HostIPs different but one is default HostIP (0.0.0.0)",
            "[sig-scheduling] SchedulerPredicates [Serial] validates that there exists conflict between pods with same hostPort and protocol but one using 0.0.0.0 hostIP [Conformance]",
            host_port_conflict,
            timeout = Duration::from_secs(10 * 60)
        ),
    ]
}

// ---------------------------------------------------------------------------
// BeforeEach and helpers
// ---------------------------------------------------------------------------

/// Upstream's BeforeEach: all nodes Ready (for a minute at most), the worker nodes, and
/// `CheckTestingNSDeletedExcept`: the other test namespaces gone.
async fn before_each(ctx: &Ctx) -> anyhow::Result<(Vec<Node>, BTreeSet<String>)> {
    e2enode::wait_for_total_healthy(ctx).await?;
    let list = e2enode::ready_schedulable_nodes(ctx).await?;
    let workers = list
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    e2enode::check_testing_ns_deleted_except(ctx).await?;
    Ok((list, workers))
}

fn condition<'a>(p: &'a Pod, type_: &str) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
}

/// Upstream's `GetPodsScheduled`: pods on worker nodes (PodScheduled True) and pods
/// without a node whose PodScheduled is False with reason Unschedulable.
fn pods_scheduled(
    workers: &BTreeSet<String>,
    pods: &[Pod],
) -> anyhow::Result<(Vec<Pod>, Vec<Pod>)> {
    let (mut scheduled, mut not_scheduled) = (Vec::new(), Vec::new());
    for p in pods {
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let name = p.metadata.name.clone().unwrap_or_default();
        if workers.contains(&node) {
            let c = condition(p, "PodScheduled")
                .with_context(|| format!("pod {name} on {node} has no PodScheduled condition"))?;
            ensure!(
                c.status == "True",
                "pod {name} on {node}: PodScheduled {}",
                c.status
            );
            scheduled.push(p.clone());
        } else if node.is_empty() {
            let c = condition(p, "PodScheduled")
                .with_context(|| format!("pod {name} has no node and no PodScheduled condition"))?;
            ensure!(
                c.status == "False",
                "pod {name} without a node: PodScheduled {}",
                c.status
            );
            if c.reason.as_deref() == Some("Unschedulable") {
                not_scheduled.push(p.clone());
            }
        }
    }
    Ok((scheduled, not_scheduled))
}

fn terminated(p: &Pod) -> bool {
    matches!(e2epod::phase(p), "Succeeded" | "Failed")
}

/// Upstream's `WaitForStableCluster`: until every pod (not terminated) of the cluster is
/// scheduled.
async fn wait_for_stable_cluster(ctx: &Ctx, workers: &BTreeSet<String>) -> anyhow::Result<usize> {
    let all: Api<Pod> = Api::all(ctx.client.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10 * 60);
    loop {
        let pods: Vec<Pod> = all
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|p| !terminated(p))
            .collect();
        let (scheduled, not_scheduled) = pods_scheduled(workers, &pods)?;
        if not_scheduled.is_empty() {
            return Ok(scheduled.len());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("Timed out waiting for stable cluster");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Upstream's `verifyResult`: how many of the namespace's pods are scheduled and not.
async fn verify_result(
    ctx: &Ctx,
    workers: &BTreeSet<String>,
    expected_scheduled: usize,
    expected_not_scheduled: usize,
) -> anyhow::Result<()> {
    let pods = e2epod::api(ctx).list(&ListParams::default()).await?;
    let (scheduled, not_scheduled) = pods_scheduled(workers, &pods.items)?;
    let names = |ps: &[Pod]| {
        ps.iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect::<Vec<_>>()
    };
    ensure!(
        not_scheduled.len() == expected_not_scheduled,
        "Not scheduled Pods: {:?}, expected {expected_not_scheduled}",
        names(&not_scheduled)
    );
    ensure!(
        scheduled.len() == expected_scheduled,
        "Scheduled Pods: {:?}, expected {expected_scheduled}",
        names(&scheduled)
    );
    Ok(())
}

/// Upstream's `pausePodConfig` as JSON pieces.
#[derive(Default)]
struct PausePod {
    name: String,
    labels: BTreeMap<String, String>,
    node_selector: BTreeMap<String, String>,
    affinity: Option<Value>,
    resources: Option<Value>,
}

/// Upstream's `initPausePod`: restricted security, the pause image, grace period 1.
fn init_pause_pod(conf: &PausePod) -> anyhow::Result<Pod> {
    let mut container = json!({
        "name": conf.name, "image": pause_image(),
        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
    });
    if let Some(r) = &conf.resources {
        container["resources"] = r.clone();
    }
    let mut spec = json!({
        "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "terminationGracePeriodSeconds": 1,
    });
    if !conf.node_selector.is_empty() {
        spec["nodeSelector"] = json!(conf.node_selector);
    }
    if let Some(a) = &conf.affinity {
        spec["affinity"] = a.clone();
    }
    e2epod::pod(json!({
        "metadata": {"name": conf.name, "labels": conf.labels},
        "spec": spec,
    }))
}

/// Upstream's `createPausePod`.
async fn create_pause_pod(ctx: &Ctx, conf: &PausePod) -> anyhow::Result<Pod> {
    e2epod::api(ctx)
        .create(&PostParams::default(), &init_pause_pod(conf)?)
        .await
        .with_context(|| format!("creating pod {}", conf.name))
}

/// Upstream's `GetNodeThatCanRunPod` (`runPodAndGetNodeName` with pod "without-label"):
/// runs a pause pod, deletes it (grace 0), and gives its node.
async fn node_that_can_run_pod(ctx: &Ctx) -> anyhow::Result<String> {
    let conf = PausePod {
        name: "without-label".into(),
        ..Default::default()
    };
    create_pause_pod(ctx, &conf).await?;
    let pods = e2epod::api(ctx);
    let p = e2epod::wait_for_running(&pods, "without-label", POD_START_SHORT_TIMEOUT).await?;
    pods.delete("without-label", &DeleteParams::default().grace_period(0))
        .await
        .context("Explicitly delete pod here to free the resource it takes")?;
    p.spec
        .and_then(|s| s.node_name)
        .context("the pod has no node")
}

/// Upstream's `AddOrUpdateLabelOnNode` and `ExpectNodeHasLabel`.
async fn add_label(ctx: &Ctx, node: &str, k: &str, v: &str) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    nodes
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {k: v}}})),
        )
        .await
        .with_context(|| format!("labelling node {node} {k}={v}"))?;
    let n = nodes.get(node).await?;
    let got = n
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(k))
        .map(String::as_str);
    ensure!(
        got == Some(v),
        "node {node} label {k} is {got:?}, expected {v}"
    );
    Ok(())
}

/// Upstream's `RemoveLabelOffNode`: the label goes, and stays gone.
async fn remove_label(ctx: &Ctx, node: &str, k: &str) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    nodes
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {k: null}}})),
        )
        .await
        .with_context(|| format!("removing label {k} off node {node}"))?;
    let n = nodes.get(node).await?;
    ensure!(
        !n.metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(k)),
        "Failed removing label {k} of the node {node}"
    );
    Ok(())
}

/// Upstream's `WaitForSchedulerAfterAction` with `expectSuccess = false`: after the
/// action, a Warning FailedScheduling event whose name starts with the pod's.
async fn wait_for_failed_scheduling_after<F, Fut>(
    ctx: &Ctx,
    pod: &str,
    action: F,
) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    action().await?;
    let events: Api<Event> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let observed = e2epod::eventually(
        EVENT_TIMEOUT,
        Duration::from_secs(1),
        "FailedScheduling",
        || async {
            match events.list(&ListParams::default()).await {
                Ok(l)
                    if l.items.iter().any(|e| {
                        e.metadata
                            .name
                            .as_deref()
                            .is_some_and(|n| n.starts_with(pod))
                            && e.type_.as_deref() == Some("Warning")
                            && e.reason.as_deref() == Some("FailedScheduling")
                    }) =>
                {
                    Ok(())
                }
                Ok(_) => Err("no such event".to_string()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
    observed.with_context(|| {
        format!("Did not observe failed event after performing the supplied action for pod {pod}")
    })
}

fn cpu_milli(q: &str) -> anyhow::Result<i64> {
    let q = q.trim();
    if let Some(m) = q.strip_suffix('m') {
        return Ok(m.parse()?);
    }
    let v: f64 = q.parse().with_context(|| format!("cpu quantity {q:?}"))?;
    Ok((v * 1000.0).ceil() as i64)
}

/// Upstream's `getRequestedCPU`: the containers' CPU requests, in millicores.
fn requested_cpu(p: &Pod) -> anyhow::Result<i64> {
    let mut sum = 0;
    for c in p.spec.iter().flat_map(|s| s.containers.iter()) {
        if let Some(q) = c
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("cpu"))
        {
            sum += cpu_milli(&q.0)?;
        }
    }
    Ok(sum)
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

async fn resource_limits(ctx: Ctx) -> anyhow::Result<()> {
    let (node_list, workers) = before_each(&ctx).await?;
    wait_for_stable_cluster(&ctx, &workers).await?;
    let mut max_allocatable = 0i64;
    let mut allocatable: BTreeMap<String, i64> = BTreeMap::new();
    for n in node_list.iter().filter(|n| e2enode::ready(n)) {
        let name = n.metadata.name.clone().unwrap_or_default();
        add_label(&ctx, &name, "node", &name).await?;
        let cpu = n
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .and_then(|a| a.get("cpu"))
            .with_context(|| format!("node {name} has no allocatable cpu"))?;
        let m = cpu_milli(&cpu.0)?;
        allocatable.insert(name, m);
        max_allocatable = max_allocatable.max(m);
    }
    let r = async {
        let all = Api::<Pod>::all(ctx.client.clone())
            .list(&ListParams::default())
            .await?;
        for p in &all.items {
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
            if let Some(left) = allocatable.get_mut(&node) {
                if !terminated(p) {
                    *left -= requested_cpu(p)?;
                }
            }
        }
        // One pod per node taking 70% of the CPU left there.
        let mut fillers = Vec::new();
        for (node, cpu) in &allocatable {
            let requested = cpu * 7 / 10;
            let conf = PausePod {
                name: format!("filler-pod-{}", uuid()),
                resources: Some(json!({"limits": {"cpu": format!("{requested}m")},
                                        "requests": {"cpu": format!("{requested}m")}})),
                affinity: Some(json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": "node", "operator": "In", "values": [node]}]}]}}})),
                ..Default::default()
            };
            fillers.push(create_pause_pod(&ctx, &conf).await?);
        }
        for p in &fillers {
            let name = p.metadata.name.clone().unwrap_or_default();
            e2epod::wait_for_running(&e2epod::api(&ctx), &name, e2epod::POD_START_TIMEOUT).await?;
        }
        // Another pod asking for half the largest node's CPU cannot fit anywhere.
        let conf = PausePod {
            name: "additional-pod".into(),
            labels: [("name".to_string(), "additional".to_string())].into(),
            resources: Some(json!({"limits": {"cpu": format!("{}m", max_allocatable * 5 / 10)}})),
            ..Default::default()
        };
        wait_for_failed_scheduling_after(&ctx, "additional-pod", || async {
            create_pause_pod(&ctx, &conf).await.map(drop)
        })
        .await?;
        verify_result(&ctx, &workers, fillers.len(), 1).await
    }
    .await;
    let mut cleanup = Ok(());
    for node in allocatable.keys() {
        if let Err(e) = remove_label(&ctx, node, "node").await {
            cleanup = Err(e);
        }
    }
    r.and(cleanup)
}

async fn node_selector_not_matching(ctx: Ctx) -> anyhow::Result<()> {
    let (_, workers) = before_each(&ctx).await?;
    wait_for_stable_cluster(&ctx, &workers).await?;
    let conf = PausePod {
        name: "restricted-pod".into(),
        labels: [("name".to_string(), "restricted".to_string())].into(),
        node_selector: [("label".to_string(), "nonempty".to_string())].into(),
        ..Default::default()
    };
    wait_for_failed_scheduling_after(&ctx, "restricted-pod", || async {
        create_pause_pod(&ctx, &conf).await.map(drop)
    })
    .await?;
    verify_result(&ctx, &workers, 0, 1).await
}

/// Upstream's `WaitForPodNotPending` (`PodStartTimeout`).
async fn wait_for_pod_not_pending(ctx: &Ctx, name: &str) -> anyhow::Result<Pod> {
    e2epod::wait_for(
        &e2epod::api(ctx),
        name,
        e2epod::POD_START_TIMEOUT,
        "not pending",
        |p| !matches!(e2epod::phase(p), "Pending" | ""),
    )
    .await
}

async fn node_selector_matching(ctx: Ctx) -> anyhow::Result<()> {
    before_each(&ctx).await?;
    let node = node_that_can_run_pod(&ctx).await?;
    let k = format!("kubernetes.io/e2e-{}", uuid());
    let v = "42";
    add_label(&ctx, &node, &k, v).await?;
    let r = async {
        let conf = PausePod {
            name: "with-labels".into(),
            node_selector: [(k.clone(), v.to_string())].into(),
            ..Default::default()
        };
        create_pause_pod(&ctx, &conf).await?;
        // Scheduled, not necessarily running (the kubelet may not know the label yet).
        wait_for_pod_not_pending(&ctx, "with-labels").await?;
        let p = e2epod::api(&ctx).get("with-labels").await?;
        let got = p.spec.and_then(|s| s.node_name).unwrap_or_default();
        ensure!(
            got == node,
            "pod with-labels is on {got:?}, expected {node:?}"
        );
        anyhow::Ok(())
    }
    .await;
    r.and(remove_label(&ctx, &node, &k).await)
}

/// Upstream's `getNodeHostIP`: the node's first InternalIP.
async fn node_host_ip(ctx: &Ctx, node: &str) -> anyhow::Result<String> {
    let n = Api::<Node>::all(ctx.client.clone()).get(node).await?;
    n.status
        .and_then(|s| s.addresses)
        .unwrap_or_default()
        .into_iter()
        .find(|a| a.type_ == "InternalIP" && a.address.parse::<std::net::Ipv4Addr>().is_ok())
        .map(|a| a.address)
        .with_context(|| format!("node {node} has no InternalIP"))
}

/// Upstream's `createHostPortPodOnNode`.
async fn create_host_port_pod_on_node(
    ctx: &Ctx,
    name: &str,
    host_ip: &str,
    port: i32,
    node_selector: &BTreeMap<String, String>,
    expect_scheduled: bool,
) -> anyhow::Result<()> {
    let mut port_spec = json!({"hostPort": port, "containerPort": 8080, "protocol": "TCP"});
    if !host_ip.is_empty() {
        port_spec["hostIP"] = json!(host_ip);
    }
    let pod = e2epod::pod(json!({
        "metadata": {"name": name},
        "spec": {
            "containers": [{
                "name": "agnhost", "image": agnhost_image(),
                "args": ["netexec", "--http-port=8080", "--udp-port=8080"],
                "ports": [port_spec],
                "readinessProbe": {"httpGet": {"path": "/hostname", "port": 8080, "scheme": "HTTP"}},
            }],
            "nodeSelector": node_selector,
        },
    }))?;
    e2epod::api(ctx)
        .create(&PostParams::default(), &pod)
        .await
        .with_context(|| format!("creating pod {name}"))?;
    let r = wait_for_pod_not_pending(ctx, name).await;
    match (expect_scheduled, r) {
        (true, Err(e)) => Err(e),
        (false, Ok(p)) => bail!(
            "pod {name} left Pending, expected it not to be scheduled: {}",
            e2epod::describe(&p)
        ),
        _ => Ok(()),
    }
}

async fn host_port_conflict(ctx: Ctx) -> anyhow::Result<()> {
    before_each(&ctx).await?;
    let node = node_that_can_run_pod(&ctx).await?;
    let host_ip = node_host_ip(&ctx, &node).await?;
    let k = format!("kubernetes.io/e2e-{}", uuid());
    let v = "95";
    let selector: BTreeMap<String, String> = [(k.clone(), v.to_string())].into();
    add_label(&ctx, &node, &k, v).await?;
    let r = async {
        let port = 54322;
        create_host_port_pod_on_node(&ctx, "pod4", "", port, &selector, true).await?;
        create_host_port_pod_on_node(&ctx, "pod5", &host_ip, port, &selector, false).await
    }
    .await;
    r.and(remove_label(&ctx, &node, &k).await)
}
