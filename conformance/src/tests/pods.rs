//! Pods: upstream's test/e2e/common/node/pods.go and the QOS test of
//! test/e2e/node/pods.go ("Pods Extended"). The websocket tests open their WebSocket as
//! upstream's `e2ewebsocket.OpenWebSocketForURL` does, with the subprotocol they name
//! (`channel.k8s.io`, `binary.k8s.io`; `kube`'s own `connect` offers only
//! v4/v5.channel.k8s.io), through the `kube` client's connection and credentials.

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::{json, Value};

use super::e2epod::{self, eventually};
use super::{agnhost_image, busybox_image, httpd_image, pause_image, test, uuid};
use crate::{Ctx, Test};

const AREA: &str = "Pods";

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Pods, assigned hostip",
            "[sig-node] Pods should get a host IP [NodeConformance] [Conformance]",
            host_ip
        ),
        test!(
            AREA,
            "Pods, lifecycle",
            "[sig-node] Pods should be submitted and removed [NodeConformance] [Conformance]",
            submitted_and_removed
        ),
        test!(
            AREA,
            "Pods, update",
            "[sig-node] Pods should be updated [NodeConformance] [Conformance]",
            updated
        ),
        test!(
            AREA,
            "Pods, ActiveDeadlineSeconds",
            "[sig-node] Pods should allow activeDeadlineSeconds to be updated [NodeConformance] [Conformance]",
            active_deadline_seconds
        ),
        test!(
            AREA,
            "Pods, service environment variables",
            "[sig-node] Pods should contain environment variables for services [NodeConformance] [Conformance]",
            service_env_vars
        ),
        test!(
            AREA,
            "Pods, delete a collection",
            "[sig-node] Pods should delete a collection of pods [Conformance]",
            delete_collection
        ),
        test!(
            AREA,
            "Pods, completes the lifecycle of a Pod and the PodStatus",
            "[sig-node] Pods should run through the lifecycle of Pods and PodStatus [Conformance]",
            lifecycle_and_status
        ),
        test!(
            AREA,
            "Pods, patching status",
            "[sig-node] Pods should patch a pod status [Conformance]",
            patch_status
        ),
        test!(
            AREA,
            "Pods, remote command execution over websocket",
            "[sig-node] Pods should support remote command execution over websockets [NodeConformance] [Conformance]",
            exec_over_websocket
        ),
        test!(
            AREA,
            "Pods, logs from websockets",
            "[sig-node] Pods should support retrieving logs from the container over websockets [NodeConformance] [Conformance]",
            logs_over_websocket
        ),
        test!(
            AREA,
            "Pods, QOS",
            "[sig-node] Pods Extended Pods Set QOS Class should be set on Pods with matching resource requests and limits for memory and cpu [Conformance]",
            qos_class
        ),
    ]
}

/// Upstream's `e2epod.MustMixinRestrictedPodSecurity`: the pod and its containers made
/// to pass the restricted Pod Security level (non-root uid 1000, RuntimeDefault
/// seccomp, no privilege escalation, all capabilities dropped).
fn restricted(mut pod: Value) -> anyhow::Result<Pod> {
    pod["spec"]["securityContext"] = json!({
        "runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"},
    });
    if let Some(cs) = pod["spec"]["containers"].as_array_mut() {
        for c in cs {
            c["securityContext"] =
                json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}});
        }
    }
    e2epod::pod(pod)
}

/// A label value as upstream's `strconv.Itoa(time.Now().Nanosecond())`.
fn nanos() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        .to_string()
}

/// The pods with label `time=<value>`.
async fn list_by_time(api: &Api<Pod>, value: &str) -> anyhow::Result<Vec<Pod>> {
    Ok(api
        .list(&ListParams::default().labels(&format!("time={value}")))
        .await
        .context("failed to query for pods")?
        .items)
}

/// A running pod reports the IP of its node.
async fn host_ip(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("pod-hostip-{}", uuid());
    let api = e2epod::api(&ctx);
    e2epod::create_sync(
        &api,
        &restricted(json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "test", "image": pause_image()}]},
        }))?,
    )
    .await?;
    eventually(
        Duration::from_secs(120),
        Duration::from_secs(5),
        &format!("the hostIP of pod {name}"),
        || async {
            let p = api
                .get(&name)
                .await
                .map_err(|e| format!("Failed to get pod {name:?}: {e}"))?;
            match p.status.and_then(|s| s.host_ip).filter(|ip| !ip.is_empty()) {
                Some(_) => Ok(()),
                None => Err("no hostIP".to_string()),
            }
        },
    )
    .await
}

/// Creation and graceful deletion are seen by a watch (ADDED, then DELETED with a
/// deletionTimestamp and a non-zero grace period); the label finds the pod, then not.
async fn submitted_and_removed(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("pod-submit-remove-{}", uuid());
    let value = nanos();
    let api = e2epod::api(&ctx);
    let pod = restricted(json!({
        "metadata": {"name": name, "labels": {"name": "foo", "time": value}},
        "spec": {"containers": [{"name": "pause", "image": pause_image()}]},
    }))?;
    let list = api
        .list(&ListParams::default().labels(&format!("time={value}")))
        .await
        .context("failed to query for pods")?;
    ensure!(
        list.items.is_empty(),
        "expected no pods, found {}",
        list.items.len()
    );
    let rv = list.metadata.resource_version.unwrap_or_default();
    let mut events = api
        .watch(
            &WatchParams::default().labels(&format!("time={value}")),
            &rv,
        )
        .await
        .context("setting up the watch")?
        .boxed();

    api.create(&PostParams::default(), &pod)
        .await
        .context("submitting the pod")?;
    let pods = list_by_time(&api, &value).await?;
    ensure!(pods.len() == 1, "expected 1 pod, found {}", pods.len());

    match tokio::time::timeout(e2epod::POD_START_TIMEOUT, events.try_next()).await {
        Ok(Ok(Some(WatchEvent::Added(_)))) => {}
        Ok(Ok(Some(other))) => bail!("Failed to observe pod creation: {other:?}"),
        Ok(Ok(None)) => bail!("the watch ended before the pod's creation was seen"),
        Ok(Err(e)) => bail!("watch failed: {e}"),
        Err(_) => bail!("Timeout while waiting for pod creation"),
    }

    e2epod::wait_for_running(&api, &name, e2epod::POD_START_TIMEOUT).await?;
    api.get(&name)
        .await
        .context("failed to GET scheduled pod")?;
    api.delete(&name, &DeleteParams::default().grace_period(30))
        .await
        .context("failed to delete pod")?;

    let last = tokio::time::timeout(e2epod::POD_DELETION_TIMEOUT, async {
        while let Some(ev) = events.try_next().await? {
            match ev {
                WatchEvent::Deleted(p) => return Ok(p),
                WatchEvent::Error(e) => bail!("watch closed with error: {e:?}"),
                _ => {}
            }
        }
        bail!("the watch ended before the pod's deletion was seen")
    })
    .await
    .map_err(|_| anyhow::anyhow!("timed out waiting for pod deletion"))??;
    ensure!(
        last.metadata.deletion_timestamp.is_some(),
        "the deleted pod has no deletionTimestamp"
    );
    let grace = last.spec.and_then(|s| s.termination_grace_period_seconds);
    ensure!(
        grace.is_some_and(|g| g != 0),
        "expected a non-zero terminationGracePeriodSeconds on the deleted pod, got {grace:?}"
    );
    let pods = list_by_time(&api, &value).await?;
    ensure!(pods.is_empty(), "expected no pods, found {}", pods.len());
    Ok(())
}

/// A label update is found by the new label.
async fn updated(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("pod-update-{}", uuid());
    let value = nanos();
    let api = e2epod::api(&ctx);
    e2epod::create_sync(
        &api,
        &restricted(json!({
            "metadata": {"name": name, "labels": {"name": "foo", "time": value}},
            "spec": {"containers": [{"name": "pause", "image": pause_image()}]},
        }))?,
    )
    .await?;
    let pods = list_by_time(&api, &value).await?;
    ensure!(pods.len() == 1, "expected 1 pod, found {}", pods.len());
    let value = nanos();
    e2epod::update(&api, &name, |p| {
        p.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("time".into(), value.clone());
    })
    .await?;
    e2epod::wait_for_running(&api, &name, e2epod::POD_START_TIMEOUT).await?;
    let pods = list_by_time(&api, &value).await?;
    ensure!(
        pods.len() == 1,
        "expected 1 pod with the updated label, found {}",
        pods.len()
    );
    Ok(())
}

/// activeDeadlineSeconds set on a running pod ends it: Failed, DeadlineExceeded.
async fn active_deadline_seconds(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("pod-update-activedeadlineseconds-{}", uuid());
    let value = nanos();
    let api = e2epod::api(&ctx);
    e2epod::create_sync(
        &api,
        &restricted(json!({
            "metadata": {"name": name, "labels": {"name": "foo", "time": value}},
            "spec": {"containers": [{"name": "pause", "image": pause_image()}]},
        }))?,
    )
    .await?;
    let pods = list_by_time(&api, &value).await?;
    ensure!(pods.len() == 1, "expected 1 pod, found {}", pods.len());
    e2epod::update(&api, &name, |p| {
        if let Some(s) = p.spec.as_mut() {
            s.active_deadline_seconds = Some(5);
        }
    })
    .await?;
    // Upstream's WaitForPodTerminatedInNamespace.
    let p = e2epod::wait_for(&api, &name, e2epod::POD_START_TIMEOUT, "terminated", |p| {
        matches!(e2epod::phase(p), "Failed" | "Succeeded")
    })
    .await?;
    let reason = p
        .status
        .as_ref()
        .and_then(|s| s.reason.clone())
        .unwrap_or_default();
    ensure!(
        e2epod::phase(&p) == "Failed" && reason == "DeadlineExceeded",
        "Expected pod {name:?} in namespace {:?} to be terminated with reason \"DeadlineExceeded\", got {}, reason {reason:?}",
        ctx.ns,
        e2epod::describe(&p)
    );
    Ok(())
}

/// A pod created after a service has the service's docker-link variables.
async fn service_env_vars(ctx: Ctx) -> anyhow::Result<()> {
    let server = format!("server-envvars-{}", uuid());
    let api = e2epod::api(&ctx);
    e2epod::create_sync(
        &api,
        &restricted(json!({
            "metadata": {"name": server, "labels": {"name": server}},
            "spec": {"containers": [{"name": "srv", "image": agnhost_image(), "ports": [{"containerPort": 9376}]}]},
        }))?,
    )
    .await?;
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "fooservice", "labels": {"name": "fooservice"}},
        "spec": {"ports": [{"port": 8765, "targetPort": 8080}], "selector": {"name": server}},
    }))?;
    Api::<Service>::namespaced(ctx.client.clone(), &ctx.ns)
        .create(&PostParams::default(), &svc)
        .await
        .context("failed to create service")?;
    let client = format!("client-envvars-{}", uuid());
    let pod = restricted(json!({
        "metadata": {"name": client, "labels": {"name": client}},
        "spec": {
            "containers": [{"name": "env3cont", "image": busybox_image(), "command": ["sh", "-c", "env"]}],
            "restartPolicy": "Never",
        },
    }))?;
    let expected = [
        "FOOSERVICE_SERVICE_HOST=",
        "FOOSERVICE_SERVICE_PORT=",
        "FOOSERVICE_PORT=",
        "FOOSERVICE_PORT_8765_TCP_PORT=",
        "FOOSERVICE_PORT_8765_TCP_PROTO=",
        "FOOSERVICE_PORT_8765_TCP=",
        "FOOSERVICE_PORT_8765_TCP_ADDR=",
    ];
    // The kubelet may not know the service yet: up to 3 attempts, as upstream.
    let mut last = None;
    for _ in 0..3 {
        match e2epod::match_container_output(
            &ctx,
            "service environment variables",
            pod.clone(),
            0,
            &expected,
            e2epod::Matcher::Substring,
        )
        .await
        {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("3 attempts"))
        .context("Container should have service environment variables set")
}

/// Three pods running, deleted by one deletecollection, are all gone.
async fn delete_collection(ctx: Ctx) -> anyhow::Result<()> {
    let api = e2epod::api(&ctx);
    for name in ["test-pod-1", "test-pod-2", "test-pod-3"] {
        api.create(
            &PostParams::default(),
            &restricted(json!({
                "metadata": {"name": name, "labels": {"type": "Testing"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"image": agnhost_image(), "name": "token-test"}],
                    "restartPolicy": "Never",
                },
            }))?,
        )
        .await
        .context("failed to create pod")?;
    }
    // WaitForPodsRunningReady(3): all three running and ready.
    eventually(
        e2epod::POD_START_TIMEOUT,
        Duration::from_secs(2),
        "3 pods running and ready",
        || async {
            let pods = api
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let ready = pods
                .items
                .iter()
                .filter(|p| {
                    e2epod::phase(p) == "Running"
                        && p.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|cs| {
                                cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                })
                .count();
            if ready == 3 {
                Ok(())
            } else {
                Err(format!("{ready} of 3 running and ready"))
            }
        },
    )
    .await
    .context("3 pods not found running.")?;
    api.delete_collection(
        &DeleteParams::default().grace_period(1),
        &ListParams::default().labels("type=Testing"),
    )
    .await
    .context("failed to delete collection of pods")?;
    eventually(
        Duration::from_secs(5 * 60),
        Duration::from_secs(1),
        "all pods to be deleted",
        || async {
            let n = api
                .list(&ListParams::default().labels("type=Testing"))
                .await
                .map_err(|e| e.to_string())?
                .items
                .len();
            if n == 0 {
                Ok(())
            } else {
                Err(format!(
                    "Pod quantity {n} is different from expected quantity 0"
                ))
            }
        },
    )
    .await
    .context("found a pod(s)")
}

/// Watch the pod run, patch its labels and image, turn its Ready conditions False
/// through pods/status, delete it by collection and watch it go.
async fn lifecycle_and_status(ctx: Ctx) -> anyhow::Result<()> {
    let api = e2epod::api(&ctx);
    let name = "pod-test";
    let labels = "test-pod-static=true";
    let watch_until = |rv: String, timeout: Duration, cond: fn(&WatchEvent<Pod>) -> bool| {
        let api = api.clone();
        async move {
            let mut events = api
                .watch(&WatchParams::default().labels(labels), &rv)
                .await?
                .boxed();
            let r = tokio::time::timeout(timeout, async {
                while let Some(ev) = events.try_next().await? {
                    if cond(&ev) {
                        return Ok::<bool, kube::Error>(true);
                    }
                }
                Ok(false)
            })
            .await;
            Ok::<bool, kube::Error>(matches!(r, Ok(Ok(true))))
        }
    };
    let all: Api<Pod> = Api::all(ctx.client.clone());
    let list = all
        .list(&ListParams::default().labels(labels))
        .await
        .context("failed to list Pods")?;
    let rv = list.metadata.resource_version.unwrap_or_default();
    api.create(
        &PostParams::default(),
        &restricted(json!({
            "metadata": {"name": name, "labels": {"test-pod-static": "true"}},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": name, "image": agnhost_image()}]},
        }))?,
    )
    .await
    .with_context(|| format!("failed to create Pod {name} in namespace {}", ctx.ns))?;
    // Upstream only logs when the watch does not see it; the GET decides.
    let _ = watch_until(rv, e2epod::POD_START_TIMEOUT, |ev| match ev {
        WatchEvent::Added(p) | WatchEvent::Modified(p) => e2epod::phase(p) == "Running",
        _ => false,
    })
    .await;
    let p = api.get(name).await.context("failed to get Pod")?;
    ensure!(
        e2epod::phase(&p) == "Running",
        "failed to see Pod {name} in namespace {} running: {}",
        ctx.ns,
        e2epod::describe(&p)
    );

    let rv = p.metadata.resource_version.clone().unwrap_or_default();
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Strategic(json!({
            "metadata": {"labels": {"test-pod": "patched"}},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": name, "image": httpd_image()}]},
        })),
    )
    .await
    .with_context(|| format!("failed to patch Pod {name} in namespace {}", ctx.ns))?;
    let _ = watch_until(rv, Duration::from_secs(30), |ev| {
        matches!(ev, WatchEvent::Modified(p) if p.metadata.labels.as_ref().and_then(|l| l.get("test-pod-static")).map(String::as_str) == Some("true"))
    })
    .await;
    let p = api.get(name).await.context("failed to fetch Pod")?;
    let patched = p
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("test-pod"))
        .cloned();
    ensure!(
        patched.as_deref() == Some("patched"),
        "failed to patch Pod - missing label: {:?}",
        p.metadata.labels
    );
    let image = p
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone());
    ensure!(
        image.as_deref() == Some(httpd_image().as_str()),
        "failed to patch Pod - wrong image: {image:?}"
    );

    // Ready and ContainersReady True → False through pods/status (on conflict, again).
    let mut updated = None;
    for _ in 0..5 {
        let mut st = api
            .get_status(name)
            .await
            .context("failed to fetch PodStatus")?;
        let mut count = 0;
        for c in st
            .status
            .iter_mut()
            .flat_map(|s| s.conditions.iter_mut().flatten())
        {
            if (c.type_ == "Ready" || c.type_ == "ContainersReady") && c.status == "True" {
                c.status = "False".into();
                count += 1;
            }
        }
        ensure!(
            count == 2,
            "failed to patch all relevant Pod conditions: {count} of 2"
        );
        match api.replace_status(name, &PostParams::default(), &st).await {
            Ok(p) => {
                updated = Some(p);
                break;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(e).context("failed to update PodStatus"),
        }
    }
    let updated = updated.context("failed to update PodStatus: conflicts, 5 times")?;
    let false_count = updated
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .filter(|c| (c.type_ == "Ready" || c.type_ == "ContainersReady") && c.status == "False")
        .count();
    ensure!(
        false_count == 2,
        "failed to update PodStatus - field patch count doesn't match the total: {false_count} of 2"
    );

    let rv = updated
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    api.delete_collection(
        &DeleteParams::default().grace_period(1),
        &ListParams::default().labels(labels),
    )
    .await
    .context("failed to delete Pod by collection")?;
    let _ = watch_until(rv, Duration::from_secs(5 * 60), |ev| {
        matches!(ev, WatchEvent::Deleted(p) if p.metadata.labels.as_ref().and_then(|l| l.get("test-pod-static")).map(String::as_str) == Some("true"))
    })
    .await;
    match api.get(name).await {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => bail!("expected IsNotFound error, got {e}"),
        Ok(p) => bail!(
            "pod {name} found in namespace {}, but it should be deleted: {}",
            ctx.ns,
            e2epod::describe(&p)
        ),
    }
}

/// A merge patch of pods/status sets its message and reason (and an annotation).
async fn patch_status(ctx: Ctx) -> anyhow::Result<()> {
    let suffix: String = uuid()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(5)
        .collect();
    let name = format!("pod-{suffix}");
    let api = e2epod::api(&ctx);
    e2epod::create_sync(
        &api,
        &restricted(json!({
            "metadata": {"name": name, "labels": {"e2e": name}},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "agnhost", "image": agnhost_image()}]},
        }))?,
    )
    .await
    .context("Pod didn't start within time out period")?;
    let p = api
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"annotations": {"patchedstatus": "true"}},
                "status": {"message": "Patched by e2e test", "reason": "E2E"},
            })),
        )
        .await
        .with_context(|| format!("failed to patch pod: {name:?}"))?;
    let st = p.status.unwrap_or_default();
    ensure!(
        st.message.as_deref() == Some("Patched by e2e test"),
        "Status.Message for {name:?} was {:?} but expected it to be \"Patched by e2e test\"",
        st.message
    );
    ensure!(
        st.reason.as_deref() == Some("E2E"),
        "Status.Reason for {name:?} was {:?} but expected it to be \"E2E\"",
        st.reason
    );
    Ok(())
}

/// Equal requests and limits of cpu and memory: QOS class Guaranteed.
async fn qos_class(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("pod-qos-class-{}", uuid());
    let api = e2epod::api(&ctx);
    let res = json!({"cpu": "100m", "memory": "100Mi"});
    api.create(
        &PostParams::default(),
        &e2epod::pod(json!({
            "metadata": {"name": name, "labels": {"name": name}},
            "spec": {"containers": [{
                "name": "agnhost", "image": agnhost_image(), "args": ["pause"],
                "resources": {"limits": res, "requests": res},
            }]},
        }))?,
    )
    .await
    .context("submitting the pod")?;
    let p = api.get(&name).await.context("failed to query for pod")?;
    let qos = p.status.and_then(|s| s.qos_class);
    ensure!(
        qos.as_deref() == Some("Guaranteed"),
        "expected QOS class Guaranteed, got {qos:?}"
    );
    Ok(())
}

type WebSocket =
    tokio_tungstenite::WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// Upstream's `e2ewebsocket.OpenWebSocketForURL`: a GET of `path_and_query` upgraded to
/// WebSocket offering `protocols`, with the client's credentials. As x/net/websocket's
/// client: the answer must be 101 with the right `Sec-WebSocket-Accept`, and a
/// subprotocol it names must be one offered.
async fn open_websocket(
    client: &kube::Client,
    path_and_query: &str,
    protocols: &[&str],
) -> anyhow::Result<WebSocket> {
    use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};
    let key = generate_key();
    let req = http::Request::get(path_and_query)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::SEC_WEBSOCKET_VERSION, "13")
        .header(http::header::SEC_WEBSOCKET_KEY, &key)
        .header(http::header::SEC_WEBSOCKET_PROTOCOL, protocols.join(", "))
        .body(kube::client::Body::from(Vec::new()))?;
    let mut resp = client.send(req).await?;
    if resp.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        bail!("bad status: {}", resp.status());
    }
    let h = resp.headers();
    let accept = h
        .get(http::header::SEC_WEBSOCKET_ACCEPT)
        .and_then(|v| v.to_str().ok());
    if accept != Some(derive_accept_key(key.as_bytes()).as_str()) {
        bail!("bad Sec-WebSocket-Accept: {accept:?}");
    }
    if let Some(p) = h
        .get(http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .filter(|p| !p.is_empty())
    {
        if !protocols.contains(&p) {
            bail!("bad WebSocket subprotocol: {p:?}, offered {protocols:?}");
        }
    }
    let upgraded = hyper::upgrade::on(&mut resp).await?;
    Ok(tokio_tungstenite::WebSocketStream::from_raw_socket(
        hyper_util::rt::TokioIo::new(upgraded),
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await)
}

/// x/net/websocket's `Message.Receive` into a `[]byte`: the next text or binary message;
/// `None` at the end (a close frame, or the connection closed: io.EOF).
async fn receive(ws: &mut WebSocket) -> anyhow::Result<Option<Vec<u8>>> {
    use tokio_tungstenite::tungstenite::{error::ProtocolError, Error, Message};
    loop {
        return match ws.next().await {
            None => Ok(None),
            Some(Ok(Message::Binary(b))) => Ok(Some(b.to_vec())),
            Some(Ok(Message::Text(t))) => Ok(Some(t.as_bytes().to_vec())),
            Some(Ok(Message::Close(_))) => Ok(None),
            Some(Ok(_)) => continue,
            Some(Err(Error::ConnectionClosed | Error::AlreadyClosed))
            | Some(Err(Error::Protocol(ProtocolError::ResetWithoutClosingHandshake))) => Ok(None),
            Some(Err(e)) => Err(e.into()),
        };
    }
}

/// The path and query of a pod subresource, as client-go's request builder makes it
/// (`url.Values.Encode`: keys sorted, values in order).
fn pod_subresource_url(ns: &str, name: &str, sub: &str, params: &[(&str, &str)]) -> String {
    let mut params = params.to_vec();
    params.sort_by_key(|(k, _)| *k);
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_string(),
                b => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let q: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    format!("/api/v1/namespaces/{ns}/pods/{name}/{sub}?{}", q.join("&"))
}

/// An exec over a `channel.k8s.io` WebSocket: its stdout (channel 1) has the output.
async fn exec_over_websocket(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("pod-exec-websocket-{}", uuid());
    let api = e2epod::api(&ctx);
    let pod = e2epod::pod(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{
            "name": "main",
            "image": busybox_image(),
            "command": ["/bin/sh", "-c", "echo container is alive; sleep 600"],
        }]},
    }))?;
    e2epod::create_sync(&api, &pod).await?;
    let url = pod_subresource_url(
        &ctx.ns,
        &name,
        "exec",
        &[
            ("stderr", "1"),
            ("stdout", "1"),
            ("container", "main"),
            ("command", "echo"),
            ("command", "remote execution test"),
        ],
    );
    let mut ws = open_websocket(&ctx.client, &url, &["channel.k8s.io"])
        .await
        .with_context(|| format!("Failed to open websocket to {url}"))?;
    // gomega.Eventually(…, time.Minute, 10*time.Second): the first pass reads the
    // stream to its end, so later passes see what it saw.
    let mut buf = Vec::new();
    let read = async {
        while let Some(msg) = receive(&mut ws)
            .await
            .with_context(|| format!("Failed to read completely from websocket {url}"))?
        {
            if msg.is_empty() {
                continue;
            }
            if msg[0] != 1 {
                if msg.len() == 1 {
                    // skip an empty message on stream other than stdout
                    continue;
                }
                bail!("Got message from server that didn't start with channel 1 (STDOUT): {msg:?}");
            }
            buf.extend_from_slice(&msg[1..]);
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .with_context(|| format!("timed out reading from websocket {url}"))??;
    let out = String::from_utf8_lossy(&buf);
    if buf.is_empty() {
        bail!("unexpected output from server");
    }
    ensure!(
        out.contains("remote execution test"),
        "expected to find 'remote execution test' in {out:?}"
    );
    Ok(())
}

/// A container's log read over a `binary.k8s.io` WebSocket is its output.
async fn logs_over_websocket(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("pod-logs-websocket-{}", uuid());
    let api = e2epod::api(&ctx);
    let pod = e2epod::pod(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{
            "name": "main",
            "image": busybox_image(),
            "command": ["/bin/sh", "-c", "echo container is alive; sleep 10000"],
        }]},
    }))?;
    e2epod::create_sync(&api, &pod).await?;
    let url = pod_subresource_url(&ctx.ns, &name, "log", &[("container", "main")]);
    let mut ws = open_websocket(&ctx.client, &url, &["binary.k8s.io"])
        .await
        .with_context(|| format!("Failed to open websocket to {url}"))?;
    let mut buf = Vec::new();
    while let Some(msg) = receive(&mut ws)
        .await
        .with_context(|| format!("Failed to read completely from websocket {url}"))?
    {
        if String::from_utf8_lossy(&msg).trim().is_empty() {
            continue;
        }
        buf.extend_from_slice(&msg);
    }
    let got = String::from_utf8_lossy(&buf);
    if got != "container is alive\n" {
        bail!("Unexpected websocket logs:\n{got}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::pod_subresource_url;

    #[test]
    fn subresource_urls_are_client_gos() {
        assert_eq!(
            pod_subresource_url(
                "ns",
                "p",
                "exec",
                &[
                    ("stderr", "1"),
                    ("stdout", "1"),
                    ("container", "main"),
                    ("command", "echo"),
                    ("command", "remote execution test"),
                ],
            ),
            "/api/v1/namespaces/ns/pods/p/exec?command=echo&command=remote+execution+test&container=main&stderr=1&stdout=1"
        );
    }
}
