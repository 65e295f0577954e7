//! Kubelet: upstream's test/e2e/common/node/kubelet.go and the conformance tests of
//! test/e2e/common/node/expansion.go (Variable Expansion).

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use serde_json::{json, Value};

use super::e2epod::{self, eventually};
use super::{agnhost_image, busybox_image, test, uuid};
use crate::{Ctx, Test};

const AREA: &str = "Kubelet";

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Kubelet, log output, default",
            "[sig-node] Kubelet when scheduling a busybox command in a pod should print the output to logs [NodeConformance] [Conformance]",
            print_output_to_logs
        ),
        test!(
            AREA,
            "Kubelet, failed pod, terminated reason",
            "[sig-node] Kubelet when scheduling a busybox command that always fails in a pod should have an terminated reason [NodeConformance] [Conformance]",
            terminated_reason
        ),
        test!(
            AREA,
            "Kubelet, failed pod, delete",
            "[sig-node] Kubelet when scheduling a busybox command that always fails in a pod should be possible to delete [NodeConformance] [Conformance]",
            failed_pod_delete
        ),
        test!(
            AREA,
            "Kubelet, hostAliases",
            "[sig-node] Kubelet when scheduling an agnhost Pod with hostAliases should write entries to /etc/hosts [NodeConformance] [Conformance]",
            host_aliases
        ),
        test!(
            AREA,
            "Kubelet, pod with read only root file system",
            "[sig-node] Kubelet when scheduling a read only busybox container should not write to root filesystem [LinuxOnly] [NodeConformance] [Conformance]",
            read_only_root
        ),
        test!(
            AREA,
            "Kubelet, managed etc hosts",
            "[sig-node] KubeletManagedEtcHosts should test kubelet managed /etc/hosts file [NodeConformance] [Conformance]",
            managed_etc_hosts
        ),
        test!(
            AREA,
            "Environment variables, expansion",
            "[sig-node] Variable Expansion should allow composing env vars into new env vars [NodeConformance] [Conformance]",
            compose_env
        ),
        test!(
            AREA,
            "Environment variables, command expansion",
            "[sig-node] Variable Expansion should allow substituting values in a container's command [NodeConformance] [Conformance]",
            substitute_in_command
        ),
        test!(
            AREA,
            "Environment variables, command argument expansion",
            "[sig-node] Variable Expansion should allow substituting values in a container's args [NodeConformance] [Conformance]",
            substitute_in_args
        ),
    ]
}

/// A one-container busybox pod that is not restarted.
fn busybox_pod(name: &str, command: &[&str], security_context: Value) -> anyhow::Result<Pod> {
    e2epod::pod(json!({
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"image": busybox_image(), "name": name, "command": command, "securityContext": security_context}],
        },
    }))
}

/// Polls the container's log (upstream: every 4 s for a minute) until it equals `want`.
async fn wait_for_log(
    api: &Api<Pod>,
    name: &str,
    lp: &(dyn Fn() -> LogParams + Sync),
    want: &str,
) -> anyhow::Result<()> {
    eventually(
        Duration::from_secs(60),
        Duration::from_secs(4),
        &format!("the log of pod {name:?} to be {want:?}"),
        || async {
            match api.logs(name, &lp()).await {
                Ok(l) if l == want => Ok(()),
                Ok(l) => Err(format!("log {l:?}")),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
}

/// stdout of a running container is its log (read since an hour ago).
async fn print_output_to_logs(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("busybox-scheduling-{}", uuid());
    let api = e2epod::api(&ctx);
    e2epod::create_sync(
        &api,
        &busybox_pod(
            &name,
            &["sh", "-c", "echo 'Hello World' ; sleep 240"],
            json!(null),
        )?,
    )
    .await?;
    let since = || LogParams {
        since_time: Timestamp::now()
            .checked_sub(SignedDuration::from_hours(1))
            .ok(),
        ..Default::default()
    };
    wait_for_log(&api, &name, &since, "Hello World\n").await
}

/// The `BeforeEach` of "a busybox command that always fails": a `/bin/false` pod.
async fn create_bin_false(ctx: &Ctx) -> anyhow::Result<(Api<Pod>, String)> {
    let name = format!("bin-false{}", uuid());
    let api = e2epod::api(ctx);
    api.create(
        &PostParams::default(),
        &busybox_pod(&name, &["/bin/false"], json!(null))?,
    )
    .await
    .context("creating the /bin/false pod")?;
    Ok((api, name))
}

/// The failed container is terminated with a non-zero exit code and a reason.
async fn terminated_reason(ctx: Ctx) -> anyhow::Result<()> {
    let (api, name) = create_bin_false(&ctx).await?;
    eventually(
        e2epod::POD_START_TIMEOUT,
        Duration::from_secs(4),
        "a terminated container with a non-zero exit code and a reason",
        || async {
            let p = api.get(&name).await.map_err(|e| e.to_string())?;
            let st = p.status.clone().unwrap_or_default();
            let statuses = st.container_statuses.clone().unwrap_or_default();
            if statuses.len() != 1 {
                return Err(format!("expected only one container in the pod {name:?}"));
            }
            let Some(t) = statuses[0].state.as_ref().and_then(|s| s.terminated.as_ref()) else {
                return Err(format!(
                    "expected state to be terminated. Got pod status: {}",
                    e2epod::describe(&p)
                ));
            };
            if t.exit_code == 0 || t.reason.as_deref().unwrap_or("").is_empty() {
                return Err(format!(
                    "expected non-zero exitCode and non-empty terminated state reason. Got exitCode: {} and terminated state reason: {:?}",
                    t.exit_code, t.reason
                ));
            }
            Ok(())
        },
    )
    .await
}

/// The failed pod can be deleted.
async fn failed_pod_delete(ctx: Ctx) -> anyhow::Result<()> {
    let (api, name) = create_bin_false(&ctx).await?;
    api.delete(&name, &DeleteParams::default())
        .await
        .context("deleting Pod")?;
    Ok(())
}

/// hostAliases are entries of the container's /etc/hosts (agnhost `etc-hosts`).
async fn host_aliases(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("agnhost-host-aliases{}", uuid());
    let api = e2epod::api(&ctx);
    api.create(
        &PostParams::default(),
        &e2epod::pod(json!({
            "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "agnhost-container", "image": agnhost_image(), "args": ["etc-hosts"]}],
                "hostAliases": [{"ip": "123.45.67.89", "hostnames": ["foo", "bar"]}],
            },
        }))?,
    )
    .await
    .context("creating the pod")?;
    e2epod::wait_for_not_running(&api, &name, e2epod::POD_START_TIMEOUT).await?;
    let hosts = api
        .logs(&name, &LogParams::default())
        .await
        .context("getting the pod's logs")?;
    anyhow::ensure!(
        hosts.contains("123.45.67.89\tfoo\tbar"),
        "expected hosts file to contain entries from HostAliases. Got:\n{hosts}"
    );
    Ok(())
}

/// With readOnlyRootFilesystem, writing to / fails.
async fn read_only_root(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("busybox-readonly-fs{}", uuid());
    let api = e2epod::api(&ctx);
    e2epod::create_sync(
        &api,
        &busybox_pod(
            &name,
            &["/bin/sh", "-c", "echo test > /file; sleep 240"],
            json!({"readOnlyRootFilesystem": true}),
        )?,
    )
    .await?;
    wait_for_log(
        &api,
        &name,
        &LogParams::default,
        "/bin/sh: can't create /file: Read-only file system\n",
    )
    .await
}

/// upstream's `etcHostsPartialContent`.
const ETC_HOSTS_PARTIAL_CONTENT: &str = "# Kubernetes-managed hosts file.";

/// Upstream's `assertManagedStatus`: `/etc/hosts` of the container is (or is not)
/// kubelet-managed: it starts with the kubelet's header and differs from the node's
/// (mounted at /etc/hosts-original). Retried for 30 s.
async fn assert_managed_status(
    api: &Api<Pod>,
    pod: &str,
    expected: bool,
    container: &str,
) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    let mut hosts = String::new();
    let mut retries = 0;
    while start.elapsed() < Duration::from_secs(30) {
        hosts = e2epod::exec(api, pod, container, &["cat", "/etc/hosts"]).await?;
        let original = e2epod::exec(api, pod, container, &["cat", "/etc/hosts-original"]).await?;
        if !hosts.is_empty() && !original.is_empty() {
            let managed = hosts.starts_with(ETC_HOSTS_PARTIAL_CONTENT) && hosts != original;
            if managed == expected {
                return Ok(());
            }
        }
        retries += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if expected {
        anyhow::bail!("/etc/hosts file should be kubelet managed (name: {container}, retries: {retries}). /etc/hosts contains {hosts:?}")
    } else {
        anyhow::bail!("/etc/hosts file should no be kubelet managed (name: {container}, retries: {retries}). /etc/hosts contains {hosts:?}")
    }
}

/// A pod's /etc/hosts is the kubelet's, unless a container mounts one or the pod uses
/// the host's network.
async fn managed_etc_hosts(ctx: Ctx) -> anyhow::Result<()> {
    let api = e2epod::api(&ctx);
    let original = json!({"name": "host-etc-hosts", "mountPath": "/etc/hosts-original"});
    let hosts = json!({"name": "host-etc-hosts", "mountPath": "/etc/hosts"});
    let container = |name: &str, mounts: Value| json!({"name": name, "image": agnhost_image(), "volumeMounts": mounts});
    let volumes = json!([{"name": "host-etc-hosts", "hostPath": {"path": "/etc/hosts", "type": "FileOrCreate"}}]);
    e2epod::create_sync(
        &api,
        &e2epod::pod(json!({
            "metadata": {"name": "test-pod"},
            "spec": {
                "containers": [
                    container("busybox-1", json!([original])),
                    container("busybox-2", json!([original])),
                    container("busybox-3", json!([original, hosts])),
                ],
                "volumes": volumes,
            },
        }))?,
    )
    .await?;
    e2epod::create_sync(
        &api,
        &e2epod::pod(json!({
            "metadata": {"name": "test-host-network-pod"},
            "spec": {
                "hostNetwork": true,
                "securityContext": {},
                "containers": [
                    container("busybox-1", json!([original])),
                    container("busybox-2", json!([original])),
                ],
                "volumes": volumes,
            },
        }))?,
    )
    .await?;
    assert_managed_status(&api, "test-pod", true, "busybox-1").await?;
    assert_managed_status(&api, "test-pod", true, "busybox-2").await?;
    assert_managed_status(&api, "test-pod", false, "busybox-3").await?;
    assert_managed_status(&api, "test-host-network-pod", false, "busybox-1").await?;
    assert_managed_status(&api, "test-host-network-pod", false, "busybox-2").await
}

/// Upstream's `newPod` of expansion.go: a busybox container "dapi-container" with
/// `command` and `env`, restartPolicy Never.
fn expansion_pod(command: &[&str], env: Value) -> anyhow::Result<Pod> {
    let name = format!("var-expansion-{}", uuid());
    e2epod::pod(json!({
        "metadata": {"name": name, "labels": {"name": name}},
        "spec": {
            "containers": [{"name": "dapi-container", "image": busybox_image(), "command": command, "env": env}],
            "restartPolicy": "Never",
        },
    }))
}

async fn compose_env(ctx: Ctx) -> anyhow::Result<()> {
    let p = expansion_pod(
        &["sh", "-c", "env"],
        json!([
            {"name": "FOO", "value": "foo-value"},
            {"name": "BAR", "value": "bar-value"},
            {"name": "FOOBAR", "value": "$(FOO);;$(BAR)"},
        ]),
    )?;
    e2epod::test_container_output(
        &ctx,
        "env composition",
        p,
        0,
        &[
            "FOO=foo-value",
            "BAR=bar-value",
            "FOOBAR=foo-value;;bar-value",
        ],
    )
    .await
}

async fn substitute_in_command(ctx: Ctx) -> anyhow::Result<()> {
    let p = expansion_pod(
        &["sh", "-c", "TEST_VAR=wrong echo \"$(TEST_VAR)\""],
        json!([{"name": "TEST_VAR", "value": "test-value"}]),
    )?;
    e2epod::test_container_output(
        &ctx,
        "substitution in container's command",
        p,
        0,
        &["test-value"],
    )
    .await
}

async fn substitute_in_args(ctx: Ctx) -> anyhow::Result<()> {
    let mut p = expansion_pod(
        &["sh", "-c"],
        json!([{"name": "TEST_VAR", "value": "test-value"}]),
    )?;
    if let Some(c) = p.spec.as_mut().and_then(|s| s.containers.first_mut()) {
        c.args = Some(vec!["TEST_VAR=wrong echo \"$(TEST_VAR)\"".into()]);
    }
    e2epod::test_container_output(
        &ctx,
        "substitution in container's args",
        p,
        0,
        &["test-value"],
    )
    .await
}
