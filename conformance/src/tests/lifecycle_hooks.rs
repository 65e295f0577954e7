//! Lifecycle hooks: the conformance tests of upstream's
//! test/e2e/common/node/lifecycle_hook.go ("Container Lifecycle Hook"), and "PreStop" of
//! test/e2e/node/pre_stop.go.

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;
use kube::api::DeleteParams;
use serde_json::{json, Value};

use super::e2epod::{self, eventually};
use super::{agnhost_image, busybox_image, e2enode, pause_image, proxy, test};
use crate::{Ctx, Test};

const AREA: &str = "Lifecycle hooks";

/// Upstream's `podCheckInterval`, `postStartWaitTimeout` and `preStopWaitTimeout`.
const POD_CHECK_INTERVAL: Duration = Duration::from_secs(1);
const POST_START_WAIT_TIMEOUT: Duration = Duration::from_secs(2 * 60);
const PRE_STOP_WAIT_TIMEOUT: Duration = Duration::from_secs(30);

const HANDLER_POD: &str = "pod-handle-http-request";
const HANDLER_CONTAINER: &str = "container-handle-http-request";

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Pod Lifecycle, post start exec hook",
            "[sig-node] Container Lifecycle Hook when create a pod with lifecycle hook should execute poststart exec hook properly [NodeConformance] [Conformance]",
            poststart_exec,
            timeout = Duration::from_secs(960)
        ),
        test!(
            AREA,
            "Pod Lifecycle, prestop exec hook",
            "[sig-node] Container Lifecycle Hook when create a pod with lifecycle hook should execute prestop exec hook properly [NodeConformance] [Conformance]",
            prestop_exec,
            timeout = Duration::from_secs(960)
        ),
        test!(
            AREA,
            "Pod Lifecycle, post start http hook",
            "[sig-node] Container Lifecycle Hook when create a pod with lifecycle hook should execute poststart http hook properly [NodeConformance] [Conformance]",
            poststart_http,
            timeout = Duration::from_secs(960)
        ),
        test!(
            AREA,
            "Pod Lifecycle, prestop http hook",
            "[sig-node] Container Lifecycle Hook when create a pod with lifecycle hook should execute prestop http hook properly [NodeConformance] [Conformance]",
            prestop_http,
            timeout = Duration::from_secs(960)
        ),
        test!(
            AREA,
            "Pods, prestop hook",
            "[sig-node] PreStop should call prestop when killing a pod [Conformance]",
            prestop_calls_server
        ),
    ]
}

/// Upstream's `testPreStop`: a `nettest` server pod; a tester pod whose preStop hook
/// posts `{"Source": "prestop"}` to the server's `/write`; the tester is deleted; the
/// server's `/read`, through pods/proxy, counts the call (5 s polls, a minute).
async fn prestop_calls_server(ctx: Ctx) -> anyhow::Result<()> {
    let pods = e2epod::api(&ctx);
    let server = e2epod::pod(json!({
        "metadata": {"name": "server"},
        "spec": {"containers": [{
            "name": "server",
            "image": agnhost_image(),
            "args": ["nettest"],
            "ports": [{"containerPort": 8080}],
        }]},
    }))?;
    pods.create(&Default::default(), &server)
        .await
        .context("creating pod server")?;
    let server = e2epod::wait_for_running(&pods, "server", Duration::from_secs(5 * 60))
        .await
        .context("waiting for server pod to start")?;
    let ip = server
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .context("the server pod has no IP")?;
    let val = r#"{"Source": "prestop"}"#;
    let tester = e2epod::pod(json!({
        "metadata": {"name": "tester"},
        "spec": {"containers": [{
            "name": "tester",
            "image": busybox_image(),
            "command": ["sleep", "600"],
            "lifecycle": {"preStop": {"exec": {"command": [
                "wget", "-O-", format!("--post-data={val}"), format!("http://{ip}:8080/write"),
            ]}}},
        }]},
    }))?;
    pods.create(&Default::default(), &tester)
        .await
        .context("creating pod tester")?;
    e2epod::wait_for_running(&pods, "tester", Duration::from_secs(5 * 60))
        .await
        .context("waiting for tester pod to start")?;
    // Deleting pre-stop pod
    pods.delete("tester", &DeleteParams::default())
        .await
        .context("deleting pod: tester")?;
    let path = format!("/api/v1/namespaces/{}/pods/server/proxy/read", ctx.ns);
    eventually(
        Duration::from_secs(60),
        Duration::from_secs(5),
        "validating pre-stop",
        || async {
            let (status, body) = proxy::get_following_redirects(&ctx.client, &path)
                .await
                .map_err(|e| format!("Error validating prestop: {e:#}"))?;
            let body = String::from_utf8_lossy(&body);
            if status != http::StatusCode::OK {
                return Err(format!("Error validating prestop: {status}: {body}"));
            }
            let state: Value =
                serde_json::from_str(&body).map_err(|e| format!("Error parsing: {e}: {body}"))?;
            let n = state["Received"]["prestop"].as_i64().unwrap_or(0);
            (n != 0).then_some(()).ok_or_else(|| format!("Saw: {body}"))
        },
    )
    .await
}

/// `e2epod.SetAffinity` + `SetNodeSelection`: required node affinity on the node's name.
fn node_affinity(node: &str) -> Value {
    json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    ]}}})
}

/// The `BeforeEach`: the netexec pod that logs the hooks' requests, on a ready node; its
/// IP and node.
async fn create_handler_pod(ctx: &Ctx) -> anyhow::Result<(String, String)> {
    let node = e2enode::random_ready_schedulable_node(ctx).await?;
    let p = e2epod::pod(json!({
        "metadata": {"name": HANDLER_POD},
        "spec": {
            "containers": [{"name": HANDLER_CONTAINER, "image": agnhost_image(), "args": ["netexec"]}],
            "securityContext": {},
            "terminationGracePeriodSeconds": 0,
            "affinity": node_affinity(&node),
        },
    }))?;
    let created = e2epod::create_sync(&e2epod::api(ctx), &p).await?;
    let ip = created
        .status
        .and_then(|s| s.pod_ip)
        .context("the handler pod has no IP")?;
    Ok((ip, node))
}

/// Upstream's `getPodWithHook`.
fn pod_with_hook(
    name: &str,
    image: &str,
    lifecycle: Value,
    affinity: Option<Value>,
) -> anyhow::Result<Pod> {
    e2epod::pod(json!({
        "metadata": {"name": name},
        "spec": {
            "containers": [{"name": name, "image": image, "lifecycle": lifecycle}],
            "affinity": affinity,
        },
    }))
}

/// `MatchContainerOutput` of the handler container against `re`, retried every second
/// for `timeout`.
async fn wait_for_handler_log(ctx: &Ctx, re: &str, timeout: Duration) -> anyhow::Result<()> {
    let api = e2epod::api(ctx);
    eventually(
        timeout,
        POD_CHECK_INTERVAL,
        &format!("{re:?} in the handler's log"),
        || {
            let api = api.clone();
            async move {
                e2epod::match_logs(&api, HANDLER_POD, HANDLER_CONTAINER, re)
                    .await
                    .map_err(|e| format!("{e:#}"))
            }
        },
    )
    .await
}

/// Upstream's `testPodWithHook`: adds the "container-redirect" sidecar (netexec on the
/// test pod's IP, a restartable init container with a startup probe), creates the pod,
/// checks the postStart hook reached the handler, deletes the pod (grace period 15 s),
/// checks the preStop hook reached the handler.
async fn test_pod_with_hook(ctx: &Ctx, mut p: Pod) -> anyhow::Result<()> {
    let sidecar = serde_json::from_value(json!({
        "name": "container-redirect",
        "image": agnhost_image(),
        "args": ["netexec", "--udp-port", "-1"],
        "restartPolicy": "Always",
        "startupProbe": {"httpGet": {"scheme": "HTTP", "path": "/echo?msg=startup", "port": 8080}},
    }))?;
    let spec = p.spec.as_mut().context("spec")?;
    let lifecycle = spec.containers[0].lifecycle.clone().unwrap_or_default();
    let mut inits = vec![sidecar];
    inits.extend(spec.init_containers.take().unwrap_or_default());
    spec.init_containers = Some(inits);
    let api = e2epod::api(ctx);
    let name = p.metadata.name.clone().unwrap_or_default();
    // create the pod with lifecycle hook
    e2epod::create_sync(&api, &p).await?;
    if lifecycle.post_start.is_some() {
        // check poststart hook
        wait_for_handler_log(ctx, r"GET /echo\?msg=poststart", POST_START_WAIT_TIMEOUT).await?;
    }
    // delete the pod with lifecycle hook
    e2epod::delete_sync(&api, &name, &DeleteParams::default().grace_period(15)).await?;
    if lifecycle.pre_stop.is_some() {
        // check prestop hook
        wait_for_handler_log(ctx, r"GET /echo\?msg=prestop", PRE_STOP_WAIT_TIMEOUT).await?;
    }
    Ok(())
}

/// Upstream's `netexecConnect`: a netexec `/dial` of `req` at `target`:8080.
fn netexec_connect(target: &str, req: &str) -> String {
    let escaped: String = url_query_escape(req.trim_start_matches('/'));
    format!("/dial?host={target}&port=8080&request={escaped}")
}

/// Go's `url.QueryEscape`.
fn url_query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn url_of(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

/// A postStart exec hook curls the handler.
async fn poststart_exec(ctx: Ctx) -> anyhow::Result<()> {
    let (ip, _) = create_handler_pod(&ctx).await?;
    let lifecycle = json!({"postStart": {"exec": {"command": [
        "sh", "-c", format!("curl http://{}:8080/echo?msg=poststart", url_of(&ip)),
    ]}}});
    let p = pod_with_hook(
        "pod-with-poststart-exec-hook",
        &agnhost_image(),
        lifecycle,
        None,
    )?;
    test_pod_with_hook(&ctx, p).await
}

/// A preStop exec hook curls the handler.
async fn prestop_exec(ctx: Ctx) -> anyhow::Result<()> {
    let (ip, _) = create_handler_pod(&ctx).await?;
    let lifecycle = json!({"preStop": {"exec": {"command": [
        "sh", "-c", format!("curl http://{}:8080/echo?msg=prestop", url_of(&ip)),
    ]}}});
    let p = pod_with_hook(
        "pod-with-prestop-exec-hook",
        &agnhost_image(),
        lifecycle,
        None,
    )?;
    test_pod_with_hook(&ctx, p).await
}

/// A postStart httpGet hook to the pod's own sidecar, which dials the handler (same node).
async fn poststart_http(ctx: Ctx) -> anyhow::Result<()> {
    let (ip, node) = create_handler_pod(&ctx).await?;
    let lifecycle = json!({"postStart": {"httpGet": {
        "path": netexec_connect(&ip, "/echo?msg=poststart"), "port": 8080,
    }}});
    let p = pod_with_hook(
        "pod-with-poststart-http-hook",
        &pause_image(),
        lifecycle,
        Some(node_affinity(&node)),
    )?;
    test_pod_with_hook(&ctx, p).await
}

/// A preStop httpGet hook to the pod's own sidecar, which dials the handler (same node).
async fn prestop_http(ctx: Ctx) -> anyhow::Result<()> {
    let (ip, node) = create_handler_pod(&ctx).await?;
    let lifecycle = json!({"preStop": {"httpGet": {
        "path": netexec_connect(&ip, "/echo?msg=prestop"), "port": 8080,
    }}});
    let p = pod_with_hook(
        "pod-with-prestop-http-hook",
        &pause_image(),
        lifecycle,
        Some(node_affinity(&node)),
    )?;
    test_pod_with_hook(&ctx, p).await
}
