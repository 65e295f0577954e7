//! Container runtime: upstream's test/e2e/common/node/runtime.go (with its
//! `ConformanceContainer` of container.go) and test/e2e/common/node/containers.go.

use std::time::Duration;

use anyhow::{ensure, Context};
use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{json, Value};

use super::e2epod::{self, eventually};
use super::{agnhost_image, busybox_image, test, uuid};
use crate::{Ctx, Test};

const AREA: &str = "Container runtime";

/// Upstream's `ContainerStatusRetryTimeout` and `ContainerStatusPollInterval`.
const RETRY_TIMEOUT: Duration = Duration::from_secs(5 * 60);
const POLL: Duration = Duration::from_secs(1);

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Container Runtime, Restart Policy, Pod Phases",
            "[sig-node] Container Runtime blackbox test when starting a container that exits should run with the expected status [NodeConformance] [Conformance]",
            expected_status
        ),
        test!(
            AREA,
            "Container Runtime, TerminationMessagePath, non-root user and non-default path",
            "[sig-node] Container Runtime blackbox test on terminated container should report termination message if TerminationMessagePath is set as non-root user and at a non-default path [NodeConformance] [Conformance]",
            message_non_root_custom_path
        ),
        test!(
            AREA,
            "Container Runtime, TerminationMessage, from container's log output of failing container",
            "[sig-node] Container Runtime blackbox test on terminated container should report termination message from log output if TerminationMessagePolicy FallbackToLogsOnError is set [NodeConformance] [Conformance]",
            message_from_logs
        ),
        test!(
            AREA,
            "Container Runtime, TerminationMessage, from log output of succeeding container",
            "[sig-node] Container Runtime blackbox test on terminated container should report termination message as empty when pod succeeds and TerminationMessagePolicy FallbackToLogsOnError is set [NodeConformance] [Conformance]",
            message_empty_on_success
        ),
        test!(
            AREA,
            "Container Runtime, TerminationMessage, from file of succeeding container",
            "[sig-node] Container Runtime blackbox test on terminated container should report termination message from file when pod succeeds and TerminationMessagePolicy FallbackToLogsOnError is set [NodeConformance] [Conformance]",
            message_from_file
        ),
        test!(
            AREA,
            "Containers, without command and arguments",
            "[sig-node] Containers should use the image defaults if command and args are blank [NodeConformance] [Conformance]",
            image_defaults
        ),
        test!(
            AREA,
            "Containers, with arguments",
            "[sig-node] Containers should be able to override the image's default arguments (container cmd) [NodeConformance] [Conformance]",
            override_arguments
        ),
        test!(
            AREA,
            "Containers, with command",
            "[sig-node] Containers should be able to override the image's default command (container entrypoint) [NodeConformance] [Conformance]",
            override_command
        ),
        test!(
            AREA,
            "Containers, with command and arguments",
            "[sig-node] Containers should be able to override the image's default command and arguments [NodeConformance] [Conformance]",
            override_all
        ),
    ]
}

/// Upstream's `ConformanceContainer`: one pod (named after the container) with one
/// container.
struct ConformanceContainer {
    api: Api<Pod>,
    pod: String,
    container: String,
}

impl ConformanceContainer {
    /// Creates the pod of `container` (JSON) with `restart_policy` and `volumes`.
    async fn create(
        ctx: &Ctx,
        container: Value,
        restart_policy: &str,
        volumes: Value,
    ) -> anyhow::Result<ConformanceContainer> {
        let name = container["name"].as_str().unwrap_or_default().to_string();
        let pod = format!("{name}{}", uuid());
        let api = e2epod::api(ctx);
        api.create(
            &PostParams::default(),
            &e2epod::pod(json!({
                "metadata": {"name": pod},
                "spec": {"restartPolicy": restart_policy, "containers": [container], "volumes": volumes},
            }))?,
        )
        .await
        .with_context(|| format!("creating pod {pod:?}"))?;
        Ok(ConformanceContainer {
            api,
            pod,
            container: name,
        })
    }

    async fn get(&self) -> Result<Pod, String> {
        self.api
            .get(&self.pod)
            .await
            .map_err(|e| format!("getting pod {:?}: {e}", self.pod))
    }

    /// The status of the one container.
    async fn status(&self) -> Result<ContainerStatus, String> {
        let p = self.get().await?;
        let statuses = p
            .status
            .and_then(|s| s.container_statuses)
            .unwrap_or_default();
        match statuses.as_slice() {
            [s] if s.name == self.container => Ok(s.clone()),
            _ => Err(format!("unexpected container statuses {statuses:?}")),
        }
    }

    async fn phase(&self) -> Result<String, String> {
        Ok(e2epod::phase(&self.get().await?).to_string())
    }

    /// Upstream's `podutil.IsPodReady`: the Ready condition is True.
    async fn is_ready(&self) -> anyhow::Result<bool> {
        let p = self.api.get(&self.pod).await?;
        Ok(p.status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"))
    }

    /// Deletes with grace period 0.
    async fn delete(&self) -> anyhow::Result<()> {
        self.api
            .delete(&self.pod, &DeleteParams::default().grace_period(0))
            .await
            .with_context(|| format!("deleting pod {:?}", self.pod))?;
        Ok(())
    }

    async fn wait_phase(&self, want: &str) -> anyhow::Result<()> {
        eventually(
            RETRY_TIMEOUT,
            POLL,
            &format!("pod {:?} phase {want}", self.pod),
            || async {
                match self.phase().await? {
                    p if p == want => Ok(()),
                    p => Err(format!("phase {p:?}")),
                }
            },
        )
        .await
    }
}

/// Upstream's `GetContainerState`.
fn state_name(s: Option<&ContainerState>) -> &'static str {
    match s {
        Some(s) if s.waiting.is_some() => "Waiting",
        Some(s) if s.running.is_some() => "Running",
        Some(s) if s.terminated.is_some() => "Terminated",
        _ => "Unknown",
    }
}

/// A restart counter in a memory-backed emptyDir: the container fails its first run,
/// succeeds its second, then runs forever; under each restart policy the restart
/// count, phase, readiness and state are as upstream expects, and the pod can be deleted.
async fn expected_status(ctx: Ctx) -> anyhow::Result<()> {
    let script = "\nf=/restart-count/restartCount\ncount=$(echo 'hello' >> $f ; wc -l $f | awk {'print $1'})\nif [ $count -eq 1 ]; then\n\texit 1\nfi\nif [ $count -eq 2 ]; then\n\texit 0\nfi\nwhile true; do sleep 1; done\n";
    let volumes = json!([{"name": "restart-count", "emptyDir": {"medium": "Memory"}}]);
    let cases = [
        ("terminate-cmd-rpa", "Always", "Running", "Running", 2, true),
        (
            "terminate-cmd-rpof",
            "OnFailure",
            "Succeeded",
            "Terminated",
            1,
            false,
        ),
        (
            "terminate-cmd-rpn",
            "Never",
            "Failed",
            "Terminated",
            0,
            false,
        ),
    ];
    for (name, policy, phase, state, restarts, ready) in cases {
        let container = json!({
            "name": name,
            "image": busybox_image(),
            "command": ["sh", "-c", script],
            "volumeMounts": [{"mountPath": "/restart-count", "name": "restart-count"}],
        });
        let c = ConformanceContainer::create(&ctx, container, policy, volumes.clone()).await?;
        eventually(
            RETRY_TIMEOUT,
            POLL,
            &format!("container {name:?}: RestartCount {restarts}"),
            || async {
                match c.status().await?.restart_count {
                    n if n == restarts => Ok(()),
                    n => Err(format!("restartCount {n}")),
                }
            },
        )
        .await?;
        c.wait_phase(phase)
            .await
            .with_context(|| format!("container {name:?}"))?;
        let is_ready = c.is_ready().await?;
        ensure!(
            is_ready == ready,
            "container {name:?}: expected Ready {ready}, got {is_ready}"
        );
        let status = c.status().await.map_err(anyhow::Error::msg)?;
        let got = state_name(status.state.as_ref());
        ensure!(
            got == state,
            "container {name:?}: expected state {state}, got {got} ({:?})",
            status.state
        );
        c.delete().await?;
        eventually(
            RETRY_TIMEOUT,
            POLL,
            &format!("pod {:?} to be gone", c.pod),
            || async {
                match c.api.get_opt(&c.pod).await {
                    Ok(None) => Ok(()),
                    Ok(Some(_)) => Err("still present".to_string()),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await?;
    }
    Ok(())
}

/// Upstream's `matchTerminationMessage`: the container (restartPolicy Never) ends in
/// `phase`, terminated, with termination message `want`; then it is deleted.
async fn match_termination_message(
    ctx: &Ctx,
    mut container: Value,
    phase: &str,
    want: &str,
) -> anyhow::Result<()> {
    container["name"] = json!("termination-message-container");
    let c = ConformanceContainer::create(ctx, container, "Never", json!(null)).await?;
    c.wait_phase(phase).await?;
    let status = c.status().await.map_err(anyhow::Error::msg)?;
    let got = state_name(status.state.as_ref());
    ensure!(
        got == "Terminated",
        "the container should be terminated, is {got} ({:?})",
        status.state
    );
    let message = status
        .state
        .and_then(|s| s.terminated)
        .and_then(|t| t.message)
        .unwrap_or_default();
    ensure!(
        message == want,
        "expected termination message {want:?}, got {message:?}"
    );
    c.delete().await
}

async fn message_non_root_custom_path(ctx: Ctx) -> anyhow::Result<()> {
    let container = json!({
        "image": busybox_image(),
        "command": ["/bin/sh", "-c"],
        "args": ["/bin/echo -n DONE > /dev/termination-custom-log"],
        "terminationMessagePath": "/dev/termination-custom-log",
        "securityContext": {"runAsUser": 10000},
    });
    match_termination_message(&ctx, container, "Succeeded", "DONE").await
}

async fn message_from_logs(ctx: Ctx) -> anyhow::Result<()> {
    let container = json!({
        "image": busybox_image(),
        "command": ["/bin/sh", "-c"],
        "args": ["/bin/echo -n DONE; /bin/false"],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
    });
    match_termination_message(&ctx, container, "Failed", "DONE").await
}

async fn message_empty_on_success(ctx: Ctx) -> anyhow::Result<()> {
    let container = json!({
        "image": busybox_image(),
        "command": ["/bin/sh", "-c"],
        "args": ["/bin/echo -n DONE; /bin/true"],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
    });
    match_termination_message(&ctx, container, "Succeeded", "").await
}

async fn message_from_file(ctx: Ctx) -> anyhow::Result<()> {
    let container = json!({
        "image": busybox_image(),
        "command": ["/bin/sh", "-c"],
        "args": ["/bin/echo -n OK > /dev/termination-log; /bin/echo DONE; /bin/true"],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
    });
    match_termination_message(&ctx, container, "Succeeded", "OK").await
}

/// Upstream's `entrypointTestPod`: an agnhost pod (`e2epod.NewAgnhostPod`) with the
/// given args, grace period 1 s, restartPolicy Never.
fn entrypoint_test_pod(args: Option<&[&str]>, command: Option<&[&str]>) -> anyhow::Result<Pod> {
    let mut container = json!({"name": "agnhost-container", "image": agnhost_image()});
    if let Some(a) = args {
        container["args"] = json!(a);
    }
    if let Some(c) = command {
        container["command"] = json!(c);
    }
    e2epod::pod(json!({
        "metadata": {"name": format!("client-containers-{}", uuid())},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 1, "restartPolicy": "Never"},
    }))
}

/// No command or args: the image's entrypoint and args (`/agnhost pause`, which prints
/// "Paused").
async fn image_defaults(ctx: Ctx) -> anyhow::Result<()> {
    let api = e2epod::api(&ctx);
    let p = e2epod::create_sync(&api, &entrypoint_test_pod(None, None)?).await?;
    let name = p.metadata.name.unwrap_or_default();
    eventually(
        Duration::from_secs(3),
        Duration::from_secs(2),
        "the log to contain \"Paused\"",
        || async {
            let l = e2epod::logs(&api, &name, "agnhost-container")
                .await
                .map_err(|e| format!("{e:#}"))?;
            if l.contains("Paused") {
                Ok(())
            } else {
                Err(format!("log {l:?}"))
            }
        },
    )
    .await
}

async fn override_arguments(ctx: Ctx) -> anyhow::Result<()> {
    let p = entrypoint_test_pod(Some(&["entrypoint-tester", "override", "arguments"]), None)?;
    e2epod::test_container_output(
        &ctx,
        "override arguments",
        p,
        0,
        &["[/agnhost entrypoint-tester override arguments]"],
    )
    .await
}

async fn override_command(ctx: Ctx) -> anyhow::Result<()> {
    let p = entrypoint_test_pod(Some(&["entrypoint-tester"]), Some(&["/agnhost-2"]))?;
    e2epod::test_container_output(
        &ctx,
        "override command",
        p,
        0,
        &["[/agnhost-2 entrypoint-tester]"],
    )
    .await
}

async fn override_all(ctx: Ctx) -> anyhow::Result<()> {
    let p = entrypoint_test_pod(
        Some(&["entrypoint-tester", "override", "arguments"]),
        Some(&["/agnhost-2"]),
    )?;
    e2epod::test_container_output(
        &ctx,
        "override all",
        p,
        0,
        &["[/agnhost-2 entrypoint-tester override arguments]"],
    )
    .await
}
