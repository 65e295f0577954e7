//! Security context: the conformance tests of upstream's
//! test/e2e/common/node/security_context.go, test/e2e/node/security_context.go and
//! test/e2e/common/node/sysctl.go.

use anyhow::{bail, ensure, Context};
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use serde_json::{json, Value};

use super::e2epod::{self, POD_START_TIMEOUT};
use super::{busybox_image, nonewprivs_image, test, uuid};
use crate::{Ctx, Test};

const AREA: &str = "Security context";

/// Upstream's `nonRootTestUserID`.
const NON_ROOT_TEST_USER_ID: i64 = 1000;

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Security Context, runAsUser=65534",
            "[sig-node] Security Context When creating a container with runAsUser should run the container with uid 65534 [LinuxOnly] [NodeConformance] [Conformance]",
            run_as_user_65534
        ),
        test!(
            AREA,
            "Security Context, privileged=false.",
            "[sig-node] Security Context When creating a pod with privileged should run the container as unprivileged when false [LinuxOnly] [NodeConformance] [Conformance]",
            unprivileged
        ),
        test!(
            AREA,
            "Security Context, readOnlyRootFilesystem=false.",
            "[sig-node] Security Context When creating a pod with readOnlyRootFilesystem should run the container with writable rootfs when readOnlyRootFilesystem=false [NodeConformance] [Conformance]",
            writable_rootfs
        ),
        test!(
            AREA,
            "Security Context, test RunAsGroup at container level",
            "[sig-node] Security Context should support container.SecurityContext.RunAsUser And container.SecurityContext.RunAsGroup [LinuxOnly] [Conformance]",
            run_as_group_container
        ),
        test!(
            AREA,
            "Security Context, test RunAsGroup at pod level",
            "[sig-node] Security Context should support pod.Spec.SecurityContext.RunAsUser And pod.Spec.SecurityContext.RunAsGroup [LinuxOnly] [Conformance]",
            run_as_group_pod
        ),
        test!(
            AREA,
            "Security Context, allowPrivilegeEscalation=false.",
            "[sig-node] Security Context when creating containers with AllowPrivilegeEscalation should not allow privilege escalation when false [LinuxOnly] [NodeConformance] [Conformance]",
            no_privilege_escalation
        ),
        test!(
            AREA,
            "Sysctls, reject invalid sysctls",
            "[sig-node] Sysctls [LinuxOnly] [NodeConformance] should reject invalid sysctls [MinimumKubeletVersion:1.21] [Conformance]",
            reject_invalid_sysctls
        ),
        test!(
            AREA,
            "Sysctl, test sysctls",
            "[sig-node] Sysctls [LinuxOnly] [NodeConformance] should support sysctls [MinimumKubeletVersion:1.21] [Environment:NotInUserNS] [Conformance]",
            support_sysctls
        ),
    ]
}

/// The `makeUserPod`s of common/node/security_context.go: one container named as the
/// pod, never restarted, with `security_context`.
fn user_pod(
    name: &str,
    image: &str,
    command: Value,
    security_context: Value,
) -> anyhow::Result<Pod> {
    e2epod::pod(json!({
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "image": image, "name": name, "command": command,
                "securityContext": security_context,
            }],
        },
    }))
}

/// `podClient.Create` then `podClient.WaitForSuccess(podName, PodStartTimeout)`.
async fn create_and_wait_for_success(ctx: &Ctx, p: &Pod) -> anyhow::Result<()> {
    let api = e2epod::api(ctx);
    let created = api
        .create(&PostParams::default(), p)
        .await
        .context("creating the pod")?;
    let name = created.metadata.name.unwrap_or_default();
    e2epod::wait_for_success(&api, &name, POD_START_TIMEOUT).await?;
    Ok(())
}

/// `test $(id -u) -eq 65534` as runAsUser 65534 succeeds.
async fn run_as_user_65534(ctx: Ctx) -> anyhow::Result<()> {
    let userid = 65534;
    let name = format!("busybox-user-{userid}-{}", uuid());
    let p = user_pod(
        &name,
        &busybox_image(),
        json!(["sh", "-c", format!("test $(id -u) -eq {userid}")]),
        json!({"runAsUser": userid}),
    )?;
    create_and_wait_for_success(&ctx, &p).await
}

/// `touch checkfile` in a writable root filesystem succeeds.
async fn writable_rootfs(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("busybox-readonly-false-{}", uuid());
    let p = user_pod(
        &name,
        &busybox_image(),
        json!(["sh", "-c", "touch checkfile"]),
        json!({"readOnlyRootFilesystem": false}),
    )?;
    create_and_wait_for_success(&ctx, &p).await
}

/// An unprivileged container cannot add a network device: its log says
/// "Operation not permitted".
async fn unprivileged(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("busybox-privileged-false-{}", uuid());
    let p = user_pod(
        &name,
        &busybox_image(),
        json!(["sh", "-c", "ip link add dummy0 type dummy || true"]),
        json!({"privileged": false}),
    )?;
    create_and_wait_for_success(&ctx, &p).await?;
    let logs = e2epod::logs(&e2epod::api(&ctx), &name, &name)
        .await
        .with_context(|| format!("GetPodLogs for pod {name:?} failed"))?;
    ensure!(
        logs.contains("Operation not permitted"),
        "unprivileged container shouldn't be able to create dummy device (logs: {logs:?})"
    );
    Ok(())
}

/// The nonewprivs image's setuid-root binary, run as uid 1000 with
/// allowPrivilegeEscalation false, stays uid 1000 (no_new_privs).
async fn no_privilege_escalation(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("alpine-nnp-false-{}", uuid());
    let p = e2epod::pod(json!({
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "image": nonewprivs_image(), "name": name,
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "runAsUser": NON_ROOT_TEST_USER_ID,
                },
            }],
        },
    }))?;
    create_and_wait_for_success(&ctx, &p).await?;
    e2epod::match_logs(
        &e2epod::api(&ctx),
        &name,
        &name,
        &format!("Effective uid: {NON_ROOT_TEST_USER_ID}"),
    )
    .await
    .with_context(|| format!("Match output for pod {name:?} failed"))
}

/// node/security_context.go's `scTestPod(false, false)` running `sh -c id` with the pod's
/// and the container's security contexts.
fn sc_test_pod(pod_sc: Value, container_sc: Value) -> anyhow::Result<Pod> {
    let name = format!("security-context-{}", uuid());
    e2epod::pod(json!({
        "metadata": {"name": name, "labels": {"name": name}, "annotations": {}},
        "spec": {
            "hostIPC": false,
            "hostPID": false,
            "securityContext": pod_sc,
            "containers": [{
                "name": "test-container", "image": busybox_image(),
                "command": ["sh", "-c", "id"],
                "securityContext": container_sc,
            }],
            "restartPolicy": "Never",
        },
    }))
}

/// runAsUser 1001 and runAsGroup 2002 of the pod: `id` says uid=1001 and gid=2002.
async fn run_as_group_pod(ctx: Ctx) -> anyhow::Result<()> {
    let (user, group) = (1001, 2002);
    let p = sc_test_pod(json!({"runAsUser": user, "runAsGroup": group}), json!(null))?;
    e2epod::test_container_output(
        &ctx,
        "pod.Spec.SecurityContext.RunAsUser",
        p,
        0,
        &[&format!("uid={user}"), &format!("gid={group}")],
    )
    .await
}

/// The container's runAsUser 1002 and runAsGroup 2002 override the pod's 1001 and 2001.
async fn run_as_group_container(ctx: Ctx) -> anyhow::Result<()> {
    let (user, group, override_user, override_group) = (1001, 2001, 1002, 2002);
    let p = sc_test_pod(
        json!({"runAsUser": user, "runAsGroup": group}),
        json!({"runAsUser": override_user, "runAsGroup": override_group}),
    )?;
    e2epod::test_container_output(
        &ctx,
        "pod.Spec.SecurityContext.RunAsUser",
        p,
        0,
        &[
            &format!("uid={override_user}"),
            &format!("gid={override_group}"),
        ],
    )
    .await
}

/// sysctl.go's `testPod`: a busybox pod `sysctl-<uuid>`, never restarted.
fn sysctl_pod(sysctls: Value, command: Option<Value>) -> anyhow::Result<Pod> {
    let name = format!("sysctl-{}", uuid());
    e2epod::pod(json!({
        "metadata": {"name": name, "annotations": {}},
        "spec": {
            "securityContext": {"sysctls": sysctls},
            "containers": [{"name": "test-container", "image": busybox_image(), "command": command}],
            "restartPolicy": "Never",
        },
    }))
}

/// kernel.shm_rmid_forced=1 of the pod is what `sysctl` reads in its container.
async fn support_sysctls(ctx: Ctx) -> anyhow::Result<()> {
    let p = sysctl_pod(
        json!([{"name": "kernel.shm_rmid_forced", "value": "1"}]),
        Some(json!(["/bin/sysctl", "kernel.shm_rmid_forced"])),
    )?;
    let api = e2epod::api(&ctx);
    // Creating a pod with the kernel.shm_rmid_forced sysctl
    let p = api
        .create(&PostParams::default(), &p)
        .await
        .context("creating the pod")?;
    let name = p.metadata.name.clone().unwrap_or_default();
    // Watching for error events or started pod
    if let Some(ev) = e2epod::wait_for_error_event_or_success(&ctx, &p).await? {
        bail!(
            "expected no error event, got {:?}: {:?}",
            ev.reason,
            ev.message
        );
    }
    // Waiting for pod completion
    e2epod::wait_for_not_running(&api, &name, POD_START_TIMEOUT).await?;
    let p = api.get(&name).await?;
    // Checking that the pod succeeded
    ensure!(
        e2epod::phase(&p) == "Succeeded",
        "expected phase Succeeded: {}",
        e2epod::describe(&p)
    );
    // Getting logs from the pod; checking that the sysctl is actually updated
    let log = e2epod::logs(&api, &name, "test-container").await?;
    ensure!(
        log.contains("kernel.shm_rmid_forced = 1"),
        "expected {:?} in the log, got {log:?}",
        "kernel.shm_rmid_forced = 1"
    );
    Ok(())
}

/// A pod with the invalid sysctl names "foo-" and "bar.." is refused, naming them and
/// neither of the valid ones.
async fn reject_invalid_sysctls(ctx: Ctx) -> anyhow::Result<()> {
    let p = sysctl_pod(
        json!([
            {"name": "foo-", "value": "bar"},
            {"name": "kernel.shmmax", "value": "100000000"},
            {"name": "safe-and-unsafe", "value": "100000000"},
            {"name": "bar..", "value": "42"},
        ]),
        None,
    )?;
    // Creating a pod with one valid and two invalid sysctls
    let err = match e2epod::api(&ctx).create(&PostParams::default(), &p).await {
        Ok(_) => bail!("expected an error creating the pod, it was created"),
        Err(e) => e.to_string(),
    };
    for want in [r#"Invalid value: "foo-""#, r#"Invalid value: "bar..""#] {
        ensure!(err.contains(want), "expected {want:?} in the error {err:?}");
    }
    for unwanted in ["safe-and-unsafe", "kernel.shmmax"] {
        ensure!(
            !err.contains(unwanted),
            "expected no {unwanted:?} in the error {err:?}"
        );
    }
    Ok(())
}
