//! Container Probes: the conformance tests of upstream's
//! test/e2e/common/node/container_probe.go ("Probing container"), with its timings.

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams};
use serde_json::{json, Value};

use super::e2epod::{self, POD_START_TIMEOUT};
use super::{agnhost_image, busybox_image, e2erc, test, uuid};
use crate::{Ctx, Test};

const AREA: &str = "Container Probes";

/// Upstream's `probeTestInitialDelaySeconds` and `defaultObservationTimeout`.
const PROBE_TEST_INITIAL_DELAY_SECONDS: i64 = 15;
const DEFAULT_OBSERVATION_TIMEOUT: Duration = Duration::from_secs(4 * 60);

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Pod readiness probe, with initial delay",
            "[sig-node] Probing container with readiness probe should not be ready before initial delay and never restart [NodeConformance] [Conformance]",
            readiness_initial_delay,
            timeout = Duration::from_secs(420)
        ),
        test!(
            AREA,
            "Pod readiness probe, failure",
            "[sig-node] Probing container with readiness probe that fails should never be ready and never restart [NodeConformance] [Conformance]",
            readiness_failing
        ),
        test!(
            AREA,
            "Pod liveness probe, using local file, restart",
            "[sig-node] Probing container should be restarted with a exec \"cat /tmp/health\" liveness probe [NodeConformance] [Conformance]",
            exec_restart,
            timeout = Duration::from_secs(600)
        ),
        test!(
            AREA,
            "Pod liveness probe, using local file, no restart",
            "[sig-node] Probing container should *not* be restarted with a exec \"cat /tmp/health\" liveness probe [NodeConformance] [Conformance]",
            exec_no_restart,
            timeout = Duration::from_secs(600)
        ),
        test!(
            AREA,
            "Pod liveness probe, using http endpoint, restart",
            "[sig-node] Probing container should be restarted with a /healthz http liveness probe [NodeConformance] [Conformance]",
            http_restart,
            timeout = Duration::from_secs(600)
        ),
        test!(
            AREA,
            "Pod liveness probe, using tcp socket, no restart",
            "[sig-node] Probing container should *not* be restarted with a tcp:8080 liveness probe [NodeConformance] [Conformance]",
            tcp_no_restart,
            timeout = Duration::from_secs(600)
        ),
        test!(
            AREA,
            "Pod liveness probe, using http endpoint, multiple restarts (slow)",
            "[sig-node] Probing container should have monotonically increasing restart count [NodeConformance] [Conformance]",
            monotonic_restarts,
            timeout = Duration::from_secs(1920)
        ),
        test!(
            AREA,
            "Pod liveness probe, using http endpoint, failure",
            "[sig-node] Probing container should *not* be restarted with a /healthz http liveness probe [NodeConformance] [Conformance]",
            http_no_restart,
            timeout = Duration::from_secs(600)
        ),
        test!(
            AREA,
            "Pod liveness probe, using grpc call, success",
            "[sig-node] Probing container should *not* be restarted with a GRPC liveness probe [NodeConformance] [Conformance]",
            grpc_no_restart,
            timeout = Duration::from_secs(600)
        ),
        test!(
            AREA,
            "Pod liveness probe, using grpc call, failure",
            "[sig-node] Probing container should be restarted with a GRPC liveness probe [NodeConformance] [Conformance]",
            grpc_restart,
            timeout = Duration::from_secs(600)
        ),
    ]
}

fn exec_handler(cmd: &[&str]) -> Value {
    json!({"exec": {"command": cmd}})
}

fn http_get_handler(path: &str, port: i32) -> Value {
    json!({"httpGet": {"path": path, "port": port}})
}

fn tcp_socket_handler(port: i32) -> Value {
    json!({"tcpSocket": {"port": port}})
}

/// A probe: `handler` and the given fields.
fn probe(handler: Value, fields: Value) -> Value {
    let mut p = handler;
    for (k, v) in fields.as_object().into_iter().flatten() {
        p[k] = v.clone();
    }
    p
}

/// Upstream's `webserverProbeBuilder.build()`: httpGet `/` on 80 (81 when failing), with
/// the initial delay when asked.
fn webserver_probe(failing: bool, initial_delay: bool) -> Value {
    let mut p = http_get_handler("/", if failing { 81 } else { 80 });
    if initial_delay {
        p["initialDelaySeconds"] = json!(PROBE_TEST_INITIAL_DELAY_SECONDS);
    }
    p
}

/// Upstream's `testWebServerPodSpec`: agnhost `test-webserver` on `port`.
fn test_web_server_pod_spec(
    readiness: Value,
    liveness: Value,
    container_name: &str,
    port: i32,
) -> anyhow::Result<Pod> {
    e2epod::pod(json!({
        "metadata": {"name": format!("test-webserver-{}", uuid())},
        "spec": {"containers": [{
            "name": container_name,
            "image": agnhost_image(),
            "args": ["test-webserver"],
            "ports": [{"containerPort": port}],
            "livenessProbe": liveness,
            "readinessProbe": readiness,
        }]},
    }))
}

/// Upstream's `busyBoxPodSpec`.
fn busybox_pod_spec(readiness: Value, liveness: Value, cmd: &[&str]) -> anyhow::Result<Pod> {
    e2epod::pod(json!({
        "metadata": {"name": format!("busybox-{}", uuid()), "labels": {"test": "liveness"}},
        "spec": {"containers": [{
            "name": "busybox",
            "image": busybox_image(),
            "command": cmd,
            "livenessProbe": liveness,
            "readinessProbe": readiness,
        }]},
    }))
}

/// Upstream's `livenessPodSpec`: `e2epod.NewAgnhostPod(ns, "liveness-<uuid>", ...,
/// "liveness")` (container "agnhost-container", termination grace period 0).
fn liveness_pod_spec(readiness: Value, liveness: Value) -> anyhow::Result<Pod> {
    e2epod::pod(json!({
        "metadata": {"name": format!("liveness-{}", uuid()), "labels": {"test": "liveness"}},
        "spec": {
            "containers": [{
                "name": "agnhost-container",
                "image": agnhost_image(),
                "args": ["liveness"],
                "livenessProbe": liveness,
                "readinessProbe": readiness,
            }],
            "securityContext": {},
            "terminationGracePeriodSeconds": 0,
        },
    }))
}

/// Upstream's `gRPCServerPodSpec`: agnhost `grpc-health-checking` (gRPC on 5000, HTTP on
/// 8080).
fn grpc_server_pod_spec(
    readiness: Value,
    liveness: Value,
    container_name: &str,
) -> anyhow::Result<Pod> {
    e2epod::pod(json!({
        "metadata": {"name": format!("test-grpc-{}", uuid())},
        "spec": {"containers": [{
            "name": container_name,
            "image": agnhost_image(),
            "command": ["/agnhost", "grpc-health-checking"],
            "ports": [{"containerPort": 5000}, {"containerPort": 8080}],
            "livenessProbe": liveness,
            "readinessProbe": readiness,
        }]},
    }))
}

/// Upstream's `getRestartCount`: the sum over all containers.
fn get_restart_count(p: &Pod) -> i32 {
    let st = p.status.clone().unwrap_or_default();
    st.init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten())
        .map(|c| c.restart_count)
        .sum()
}

/// The restart count of the container `name` (podutil's `GetExistingContainerStatus`:
/// 0 when it has no status yet).
fn container_restart_count(p: &Pod, name: &str) -> i32 {
    let st = p.status.clone().unwrap_or_default();
    st.init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten())
        .find(|c| c.name == name)
        .map(|c| c.restart_count)
        .unwrap_or(0)
}

/// Upstream's `RunLivenessTest`: creates the pod, waits until its first container is no
/// longer waiting, then polls (every 2 s, until `timeout` plus 10 s per restart already
/// seen) its restart count: it must only grow, and end at `expect_num_restarts` or more
/// (0: stay 0). The pod is deleted at the end.
async fn run_liveness_test(
    ctx: &Ctx,
    p: Pod,
    expect_num_restarts: i32,
    timeout: Duration,
) -> anyhow::Result<()> {
    let container_name = p
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.clone())
        .context("the pod has no containers")?;
    let api = e2epod::api(ctx);
    let name = p.metadata.name.clone().unwrap_or_default();
    api.create(&PostParams::default(), &p)
        .await
        .with_context(|| format!("creating pod {name} in namespace {}", ctx.ns))?;
    let r = observe_restarts(ctx, &name, &container_name, expect_num_restarts, timeout).await;
    // DeferCleanup: deleting the pod.
    let d = api
        .delete(&name, &DeleteParams::default().grace_period(0))
        .await
        .map(|_| ())
        .with_context(|| format!("deleting pod {name}"));
    r?;
    d
}

async fn observe_restarts(
    ctx: &Ctx,
    name: &str,
    container_name: &str,
    expect_num_restarts: i32,
    timeout: Duration,
) -> anyhow::Result<()> {
    let api = e2epod::api(ctx);
    // To check for the container is ever started, wait for it to be in a non-waiting state.
    e2epod::wait_for(&api, name, timeout, "container not waiting", |p| {
        let st = p.status.clone().unwrap_or_default();
        st.init_container_statuses
            .iter()
            .flatten()
            .chain(st.container_statuses.iter().flatten())
            .any(|c| {
                c.name == container_name
                    && c.state
                        .as_ref()
                        .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
            })
    })
    .await?;
    // Checking the pod's current state and verifying that restartCount is present.
    let p = api
        .get(name)
        .await
        .with_context(|| format!("getting pod {name} in namespace {}", ctx.ns))?;
    let initial = container_restart_count(&p, container_name);
    let deadline =
        tokio::time::Instant::now() + timeout + Duration::from_secs(10 * initial.max(0) as u64);
    let mut last = initial;
    let mut observed = 0;
    let mut p = p;
    while tokio::time::Instant::now() < deadline {
        p = api
            .get(name)
            .await
            .with_context(|| format!("getting pod {name}"))?;
        let count = container_restart_count(&p, container_name);
        if count != last && count < last {
            bail!(
                "Restart count should increment monotonically: restart cont of pod {}/{name} changed from {last} to {count}",
                ctx.ns
            );
        }
        observed = count - initial;
        if expect_num_restarts > 0 && observed >= expect_num_restarts {
            break;
        }
        last = count;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    if (expect_num_restarts == 0 && observed > 0)
        || (expect_num_restarts > 0 && observed < expect_num_restarts)
    {
        bail!(
            "pod {}/{name} - expected number of restarts: {expect_num_restarts}, found restarts: {observed}. Pod status: {}.",
            ctx.ns,
            e2epod::describe(&p)
        );
    }
    Ok(())
}

/// A readiness probe with a 15 s initial delay: the pod becomes ready, not before 15 s
/// after its container started, and is never restarted.
async fn readiness_initial_delay(ctx: Ctx) -> anyhow::Result<()> {
    let container_name = "test-webserver";
    let api = e2epod::api(&ctx);
    let p = test_web_server_pod_spec(
        webserver_probe(false, true),
        Value::Null,
        container_name,
        80,
    )?;
    let p = api.create(&PostParams::default(), &p).await?;
    let name = p.metadata.name.clone().unwrap_or_default();
    // `WaitTimeoutForPodReadyInNamespace`: Running and Ready; a pod that ended is an error.
    e2epod::wait_for(&api, &name, POD_START_TIMEOUT, "running and ready", |p| {
        e2erc::running_and_ready(p) || matches!(e2epod::phase(p), "Succeeded" | "Failed")
    })
    .await?;
    let p = api.get(&name).await?;
    ensure!(
        e2erc::running_and_ready(&p),
        "pod {}/{name} should be ready: {}",
        ctx.ns,
        e2epod::describe(&p)
    );
    // We assume the pod became ready when the container became ready (one container).
    let st = p.status.clone().unwrap_or_default();
    let ready_time = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .and_then(|c| c.last_transition_time.clone())
        .context("no ready condition can be found for pod")?
        .0;
    let started_time = st
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == container_name)
        .with_context(|| format!("cannot find container named {container_name:?}"))?
        .state
        .as_ref()
        .and_then(|s| s.running.as_ref())
        .context("container is not running")?
        .started_at
        .clone()
        .context("container has no startedAt")?
        .0;
    let initial_delay =
        k8s_openapi::jiff::SignedDuration::from_secs(PROBE_TEST_INITIAL_DELAY_SECONDS);
    ensure!(
        ready_time.duration_since(started_time) >= initial_delay,
        "Pod became ready before it's {initial_delay:?} initial delay (container started at {started_time}, pod became ready at {ready_time})"
    );
    let restarts = get_restart_count(&p);
    ensure!(
        restarts == 0,
        "pod should have a restart count of 0 but got {restarts}"
    );
    Ok(())
}

/// A readiness probe that always fails: the pod is not ready for a whole minute, and is
/// never restarted.
async fn readiness_failing(ctx: Ctx) -> anyhow::Result<()> {
    let api = e2epod::api(&ctx);
    let p = test_web_server_pod_spec(
        webserver_probe(true, false),
        Value::Null,
        "test-webserver",
        80,
    )?;
    let p = api.create(&PostParams::default(), &p).await?;
    let name = p.metadata.name.clone().unwrap_or_default();
    // gomega.Consistently(1 minute, every second): never ready.
    let end = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < end {
        let p = api.get(&name).await?;
        ensure!(
            !e2epod::is_ready(&p),
            "pod should not be ready: {}",
            e2epod::describe(&p)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let p = api.get(&name).await?;
    ensure!(
        !e2erc::running_and_ready(&p),
        "pod {}/{name} should be not ready",
        ctx.ns
    );
    let restarts = get_restart_count(&p);
    ensure!(
        restarts == 0,
        "pod should have a restart count of 0 but got {restarts}"
    );
    Ok(())
}

/// `cat /tmp/health` fails once the container removed the file after 10 s: one restart.
async fn exec_restart(ctx: Ctx) -> anyhow::Result<()> {
    let cmd = [
        "/bin/sh",
        "-c",
        "echo ok >/tmp/health; sleep 10; rm -rf /tmp/health; sleep 600",
    ];
    let liveness = probe(
        exec_handler(&["cat", "/tmp/health"]),
        json!({"initialDelaySeconds": 15, "timeoutSeconds": 5, "failureThreshold": 1}),
    );
    let p = busybox_pod_spec(Value::Null, liveness, &cmd)?;
    run_liveness_test(&ctx, p, 1, DEFAULT_OBSERVATION_TIMEOUT).await
}

/// `cat /tmp/health` keeps succeeding: no restart in 4 minutes.
async fn exec_no_restart(ctx: Ctx) -> anyhow::Result<()> {
    let cmd = ["/bin/sh", "-c", "echo ok >/tmp/health; sleep 600"];
    let liveness = probe(
        exec_handler(&["cat", "/tmp/health"]),
        json!({"initialDelaySeconds": 15, "timeoutSeconds": 5, "failureThreshold": 1}),
    );
    let p = busybox_pod_spec(Value::Null, liveness, &cmd)?;
    run_liveness_test(&ctx, p, 0, DEFAULT_OBSERVATION_TIMEOUT).await
}

/// agnhost liveness's /healthz fails after 10 s: one restart.
async fn http_restart(ctx: Ctx) -> anyhow::Result<()> {
    let liveness = probe(
        http_get_handler("/healthz", 8080),
        json!({"initialDelaySeconds": 15, "failureThreshold": 1}),
    );
    let p = liveness_pod_spec(Value::Null, liveness)?;
    run_liveness_test(&ctx, p, 1, DEFAULT_OBSERVATION_TIMEOUT).await
}

/// agnhost liveness's port 8080 stays open (its /healthz failing does not matter to a
/// tcpSocket probe): no restart.
async fn tcp_no_restart(ctx: Ctx) -> anyhow::Result<()> {
    let liveness = probe(
        tcp_socket_handler(8080),
        json!({"initialDelaySeconds": 15, "failureThreshold": 1}),
    );
    let p = liveness_pod_spec(Value::Null, liveness)?;
    run_liveness_test(&ctx, p, 0, DEFAULT_OBSERVATION_TIMEOUT).await
}

/// /healthz fails 10 s after each start: 5 restarts, counted monotonically, within the
/// restart back-off.
async fn monotonic_restarts(ctx: Ctx) -> anyhow::Result<()> {
    let liveness = probe(
        http_get_handler("/healthz", 8080),
        json!({"initialDelaySeconds": 5, "failureThreshold": 1}),
    );
    let p = liveness_pod_spec(Value::Null, liveness)?;
    // ~2 minutes backoff timeouts + 4 minutes defaultObservationTimeout + 2 minutes for
    // each pod restart.
    let timeout =
        Duration::from_secs(2 * 60) + DEFAULT_OBSERVATION_TIMEOUT + Duration::from_secs(4 * 2 * 60);
    run_liveness_test(&ctx, p, 5, timeout).await
}

/// httpGet / on test-webserver keeps succeeding: no restart.
async fn http_no_restart(ctx: Ctx) -> anyhow::Result<()> {
    let liveness = probe(
        http_get_handler("/", 80),
        json!({"initialDelaySeconds": 15, "timeoutSeconds": 5, "failureThreshold": 5}),
    );
    let p = test_web_server_pod_spec(Value::Null, liveness, "test-webserver", 80)?;
    run_liveness_test(&ctx, p, 0, DEFAULT_OBSERVATION_TIMEOUT).await
}

/// A gRPC health check of agnhost grpc-health-checking on 5000 keeps succeeding: no
/// restart.
async fn grpc_no_restart(ctx: Ctx) -> anyhow::Result<()> {
    let liveness = json!({
        "grpc": {"port": 5000},
        "initialDelaySeconds": PROBE_TEST_INITIAL_DELAY_SECONDS,
        "timeoutSeconds": 5,
        "failureThreshold": 1,
    });
    let p = grpc_server_pod_spec(Value::Null, liveness, "agnhost")?;
    run_liveness_test(&ctx, p, 0, DEFAULT_OBSERVATION_TIMEOUT).await
}

/// A gRPC health check on a port nothing listens on (2333) fails: one restart.
async fn grpc_restart(ctx: Ctx) -> anyhow::Result<()> {
    let liveness = json!({
        "grpc": {"port": 2333},
        "initialDelaySeconds": PROBE_TEST_INITIAL_DELAY_SECONDS * 4,
        "timeoutSeconds": 5,
        "failureThreshold": 1,
    });
    let p = grpc_server_pod_spec(Value::Null, liveness, "agnhost")?;
    run_liveness_test(&ctx, p, 1, DEFAULT_OBSERVATION_TIMEOUT).await
}
