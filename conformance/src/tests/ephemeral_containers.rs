//! Ephemeral containers: upstream's test/e2e/common/node/ephemeral_containers.go (the
//! `pods/ephemeralcontainers` subresource, and the kubelet starting an ephemeral
//! container in a running pod).

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use k8s_openapi::api::core::v1::{EphemeralContainer, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::e2epod;
use super::{agnhost_image, busybox_image, test};
use crate::{Ctx, Test};

const AREA: &str = "Ephemeral Containers";
const POD_NAME: &str = "ephemeral-containers-target-pod";

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Ephemeral Container Creation",
            "[sig-node] Ephemeral Containers [NodeConformance] will start an ephemeral container in an existing pod [Conformance]",
            start_ephemeral_container
        ),
        test!(
            AREA,
            "Ephemeral Container, update ephemeral containers",
            "[sig-node] Ephemeral Containers [NodeConformance] should update the ephemeral containers in an existing pod [Conformance]",
            update_ephemeral_containers
        ),
    ]
}

/// Upstream's `e2epod.GenerateScriptCmd` (Linux).
fn script_cmd(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

/// Upstream's `PodClient.AddEphemeralContainerSync`: a strategic-merge patch of
/// `pods/ephemeralcontainers` that adds `ec`, then `WaitForContainerRunning` on it.
async fn add_ephemeral_container_sync(
    api: &Api<Pod>,
    pod: &Pod,
    ec: &EphemeralContainer,
    timeout: Duration,
) -> anyhow::Result<()> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    // CreateTwoWayMergePatch(pod, pod + ec): the list merges by name.
    let patch = json!({"spec": {"ephemeralContainers": [ec]}});
    api.patch_ephemeral_containers(&name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .with_context(|| format!("Failed to patch ephemeral containers in pod {name:?}"))?;
    let ec_name = ec.name.clone();
    e2epod::wait_for(
        api,
        &name,
        timeout,
        &format!("running its container {ec_name:?}"),
        |p| {
            let st = p.status.clone().unwrap_or_default();
            st.container_statuses
                .iter()
                .flatten()
                .chain(st.init_container_statuses.iter().flatten())
                .chain(st.ephemeral_container_statuses.iter().flatten())
                .any(|c| c.name == ec_name && c.state.as_ref().is_some_and(|s| s.running.is_some()))
        },
    )
    .await
    .map(|_| ())
}

/// The part both tests share: a running target pod (generation 1), an ephemeral
/// container added (generation 2) that runs, can be exec'd into and logs.
async fn target_pod_with_debugger(api: &Api<Pod>) -> anyhow::Result<Pod> {
    // creating a target pod
    let pod = e2epod::pod(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": POD_NAME},
        "spec": {"containers": [{
            "name": "test-container-1",
            "image": busybox_image(),
            "command": ["/bin/sleep"],
            "args": ["10000"],
        }]},
    }))?;
    let pod = e2epod::create_sync(api, &pod).await?;
    ensure!(
        pod.metadata.generation == Some(1),
        "expected the pod's generation to be 1, got {:?}",
        pod.metadata.generation
    );

    // adding an ephemeral container
    let ec_name = "debugger";
    let ec: EphemeralContainer = serde_json::from_value(json!({
        "name": ec_name,
        "image": busybox_image(),
        "command": script_cmd("while true; do echo polo; sleep 2; done"),
        "stdin": true,
        "tty": true,
    }))?;
    add_ephemeral_container_sync(api, &pod, &ec, Duration::from_secs(60))
        .await
        .with_context(|| format!("Failed to patch ephemeral containers in pod {POD_NAME:?}"))?;

    // verifying the pod's generation is 2
    let pod = api.get(POD_NAME).await.context("failed to query for pod")?;
    ensure!(
        pod.metadata.generation == Some(2),
        "expected the pod's generation to be 2, got {:?}",
        pod.metadata.generation
    );

    // checking pod container endpoints
    let output = e2epod::exec(api, POD_NAME, ec_name, &["/bin/echo", "marco"]).await?;
    ensure!(
        output.contains("marco"),
        "expected {output:?} to contain \"marco\""
    );
    let log = e2epod::logs(api, POD_NAME, ec_name)
        .await
        .with_context(|| {
            format!("Failed to get logs for pod {POD_NAME:?} ephemeral container {ec_name:?}")
        })?;
    ensure!(log.contains("polo"), "expected {log:?} to contain \"polo\"");
    Ok(pod)
}

/// Adding an ephemeral container to a running pod starts it.
async fn start_ephemeral_container(ctx: Ctx) -> anyhow::Result<()> {
    let api = e2epod::api(&ctx);
    target_pod_with_debugger(&api).await?;
    Ok(())
}

/// The ephemeral containers read through `pods/ephemeralcontainers`.
async fn ephemeral_containers_of(api: &Api<Pod>) -> anyhow::Result<Vec<EphemeralContainer>> {
    let p = api
        .get_subresource("ephemeralcontainers", POD_NAME)
        .await
        .context("can't get ephermalcontainers")?;
    Ok(p.spec
        .and_then(|s| s.ephemeral_containers)
        .unwrap_or_default())
}

/// An update of `pods/ephemeralcontainers` adds a second ephemeral container.
async fn update_ephemeral_containers(ctx: Ctx) -> anyhow::Result<()> {
    let api = e2epod::api(&ctx);
    target_pod_with_debugger(&api).await?;

    // checking pod has only one ephemeralcontainer
    let ecs = ephemeral_containers_of(&api).await?;
    ensure!(
        ecs.len() == 1,
        "checking ephemeralContainer count: expected 1, got {}",
        ecs.len()
    );

    // adding another ephemeralcontainer to the pod (retry.RetryOnConflict with
    // retry.DefaultRetry: 5 tries)
    let mut done = false;
    for _ in 0..5 {
        let mut p = api
            .get(POD_NAME)
            .await
            .with_context(|| format!("Unable to retrieve pod {POD_NAME}"))?;
        let spec = p.spec.get_or_insert_with(Default::default);
        spec.ephemeral_containers
            .get_or_insert_with(Vec::new)
            .push(serde_json::from_value(json!({
                "name": "debugger2",
                "image": agnhost_image(),
                "imagePullPolicy": "IfNotPresent",
                "terminationMessagePolicy": "File",
            }))?);
        match api
            .replace_ephemeral_containers(POD_NAME, &PostParams::default(), &p)
            .await
        {
            Ok(_) => {
                done = true;
                break;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(e).context("Failed to update ephemeral container."),
        }
    }
    if !done {
        bail!("Failed to update ephemeral container.: conflicts, 5 times");
    }

    // checking pod has only two ephemeralcontainers
    let ecs = ephemeral_containers_of(&api).await?;
    ensure!(
        ecs.len() == 2,
        "checking ephemeralContainer count: expected 2, got {}",
        ecs.len()
    );
    Ok(())
}
