//! Subpath: the conformance tests of upstream's test/e2e/storage/subpath.go ("Atomic
//! writer volumes"), with `SubpathTestPod` and `TestBasicSubpath(File)` of
//! test/e2e/storage/testsuites/subpath.go.

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, PostParams};
use serde_json::{json, Value};

use super::e2epod;
use super::{agnhost_image, test};
use crate::{Ctx, Test};

const AREA: &str = "Subpath";

/// testsuites' `volumePath`, `volumeName`, `probeVolumePath` and `retryDuration`.
const VOLUME_PATH: &str = "/test-volume";
const VOLUME_NAME: &str = "test-volume";
const PROBE_VOLUME_PATH: &str = "/probe-volume";
const RETRY_DURATION: u32 = 20;

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "SubPath: Reading content from a secret volume.",
            "[sig-storage] Subpath Atomic writer volumes should support subpaths with secret pod [Conformance]",
            secret_pod
        ),
        test!(
            AREA,
            "SubPath: Reading content from a configmap volume.",
            "[sig-storage] Subpath Atomic writer volumes should support subpaths with configmap pod [Conformance]",
            configmap_pod
        ),
        test!(
            AREA,
            "SubPath: Reading content from a configmap volume.",
            "[sig-storage] Subpath Atomic writer volumes should support subpaths with configmap pod with mountPath of existing file [Conformance]",
            configmap_pod_existing_file
        ),
        test!(
            AREA,
            "SubPath: Reading content from a downwardAPI volume.",
            "[sig-storage] Subpath Atomic writer volumes should support subpaths with downward pod [Conformance]",
            downward_pod
        ),
        test!(
            AREA,
            "SubPath: Reading content from a projected volume.",
            "[sig-storage] Subpath Atomic writer volumes should support subpaths with projected pod [Conformance]",
            projected_pod
        ),
    ]
}

/// The `BeforeEach`: secret "my-secret" (secret-key: secret-value) and configMap
/// "my-configmap" (configmap-key: configmap-value); already existing is fine.
async fn setting_up_data(ctx: &Ctx) -> anyhow::Result<()> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "my-secret"},
        // "secret-value", base64.
        "data": {"secret-key": "c2VjcmV0LXZhbHVl"},
    }))?;
    match secrets.create(&PostParams::default(), &secret).await {
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        r => {
            r.context("while creating secret")?;
        }
    }
    let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "my-configmap"},
        "data": {"configmap-key": "configmap-value"},
    }))?;
    match configmaps.create(&PostParams::default(), &cm).await {
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        r => {
            r.context("while creating configmap")?;
        }
    }
    Ok(())
}

/// `generateSuffixForPodName`: non-alphanumerics to '-', then '-' and 4 random
/// lower-case alphanumerics.
fn suffix_for(s: &str) -> String {
    let base: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let rand: String = super::uuid()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(4)
        .collect();
    format!("{base}-{rand}").to_lowercase()
}

/// `SubpathTestPod(f, subpath, volumeType, source, LevelBaseline)` after
/// `removeUnusedContainers` and `setReadCommand(file, containers[0])`: of its three init
/// containers and two containers only the subpath container is left, reading `file` in
/// a loop (agnhost `mounttest --file_content_in_loop`), the volume mounted with
/// `subPath` at `mount_path`.
fn subpath_test_pod(
    subpath: &str,
    volume_type: &str,
    source: Value,
    mount_path: &str,
    file: &str,
) -> anyhow::Result<Pod> {
    let suffix = suffix_for(volume_type);
    let mut volume = json!({"name": VOLUME_NAME});
    for (k, v) in source.as_object().into_iter().flatten() {
        volume[k] = v.clone();
    }
    e2epod::pod(json!({
        "metadata": {"name": format!("pod-subpath-test-{suffix}")},
        "spec": {
            "containers": [{
                "name": format!("test-container-subpath-{suffix}"),
                "image": agnhost_image(),
                "args": [
                    "mounttest",
                    format!("--file_content_in_loop={file}"),
                    format!("--retry_time={RETRY_DURATION}"),
                ],
                "volumeMounts": [
                    {"name": VOLUME_NAME, "mountPath": mount_path, "subPath": subpath},
                    {"name": "liveness-probe-volume", "mountPath": PROBE_VOLUME_PATH},
                ],
                "securityContext": {"privileged": false},
            }],
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "volumes": [volume, {"name": "liveness-probe-volume", "emptyDir": {}}],
            "securityContext": {"seLinuxOptions": {"level": "s0:c0,c1"}},
        },
    }))
}

/// `TestBasicSubpathFile`: the pod's log has `contents`; the pod is deleted.
async fn test_basic_subpath(ctx: &Ctx, contents: &str, p: Pod) -> anyhow::Result<()> {
    e2epod::test_container_output(ctx, "atomic-volume-subpath", p, 0, &[contents]).await
}

async fn secret_pod(ctx: Ctx) -> anyhow::Result<()> {
    setting_up_data(&ctx).await?;
    let p = subpath_test_pod(
        "secret-key",
        "secret",
        json!({"secret": {"secretName": "my-secret"}}),
        VOLUME_PATH,
        VOLUME_PATH,
    )?;
    test_basic_subpath(&ctx, "secret-value", p).await
}

async fn configmap_pod(ctx: Ctx) -> anyhow::Result<()> {
    setting_up_data(&ctx).await?;
    let p = subpath_test_pod(
        "configmap-key",
        "configmap",
        json!({"configMap": {"name": "my-configmap"}}),
        VOLUME_PATH,
        VOLUME_PATH,
    )?;
    test_basic_subpath(&ctx, "configmap-value", p).await
}

/// The subPath mounted onto a file the image has: /etc/resolv.conf.
async fn configmap_pod_existing_file(ctx: Ctx) -> anyhow::Result<()> {
    setting_up_data(&ctx).await?;
    let file = "/etc/resolv.conf";
    let p = subpath_test_pod(
        "configmap-key",
        "configmap",
        json!({"configMap": {"name": "my-configmap"}}),
        file,
        file,
    )?;
    test_basic_subpath(&ctx, "configmap-value", p).await
}

async fn downward_pod(ctx: Ctx) -> anyhow::Result<()> {
    setting_up_data(&ctx).await?;
    let p = subpath_test_pod(
        "downward/podname",
        "downwardAPI",
        json!({"downwardAPI": {"items": [{"path": "downward/podname", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}]}}),
        VOLUME_PATH,
        VOLUME_PATH,
    )?;
    let name = p.metadata.name.clone().unwrap_or_default();
    test_basic_subpath(&ctx, &name, p).await
}

async fn projected_pod(ctx: Ctx) -> anyhow::Result<()> {
    setting_up_data(&ctx).await?;
    let p = subpath_test_pod(
        "projected/configmap-key",
        "projected",
        json!({"projected": {"sources": [{"configMap": {
            "name": "my-configmap",
            "items": [{"path": "projected/configmap-key", "key": "configmap-key"}],
        }}]}}),
        VOLUME_PATH,
        VOLUME_PATH,
    )?;
    test_basic_subpath(&ctx, "configmap-value", p).await
}

// --- VolumeSubpathEnvExpansion: test/e2e/common/node/expansion.go ----------------------

const EXPANSION_AREA: &str = "VolumeSubpathEnvExpansion";

/// Upstream's `framework.PodStartShortTimeout`.
const POD_START_SHORT_TIMEOUT: Duration = Duration::from_secs(2 * 60);

pub fn expansion_tests() -> Vec<Test> {
    vec![
        test!(
            EXPANSION_AREA,
            "VolumeSubpathEnvExpansion, subpath expansion",
            "[sig-node] Variable Expansion should allow substituting values in a volume subpath [Conformance]",
            substitute_in_subpath
        ),
        test!(
            EXPANSION_AREA,
            "VolumeSubpathEnvExpansion, subpath with absolute path",
            "[sig-node] Variable Expansion should fail substituting values in a volume subpath with absolute path [Conformance]",
            fail_absolute_subpath
        ),
        test!(
            EXPANSION_AREA,
            "VolumeSubpathEnvExpansion, subpath with backticks",
            "[sig-node] Variable Expansion should fail substituting values in a volume subpath with backticks [Conformance]",
            fail_backticks_subpath
        ),
        test!(
            EXPANSION_AREA,
            "VolumeSubpathEnvExpansion, subpath test writes",
            "[sig-node] Variable Expansion should succeed in writing subpaths in container [Conformance]",
            subpath_writes,
            timeout = Duration::from_secs(480)
        ),
        test!(
            EXPANSION_AREA,
            "VolumeSubpathEnvExpansion, subpath ready from failed state",
            "[sig-node] Variable Expansion should verify that a failing subpath expansion can be modified during the lifecycle of a container [Slow] [Conformance]",
            subpath_from_failed_state,
            timeout = Duration::from_secs(480)
        ),
    ]
}

/// expansion.go's `newPod`: one busybox container "dapi-container", never restarted.
fn expansion_pod(command: Value, env: Value, mounts: Value, volumes: Value) -> anyhow::Result<Pod> {
    let name = format!("var-expansion-{}", super::uuid());
    e2epod::pod(json!({
        "metadata": {"name": name, "labels": {"name": name}},
        "spec": {
            "containers": [{
                "name": "dapi-container",
                "image": super::busybox_image(),
                "command": command,
                "env": env,
                "volumeMounts": mounts,
            }],
            "restartPolicy": "Never",
            "volumes": volumes,
        },
    }))
}

fn workdir1() -> Value {
    json!([{"name": "workdir1", "emptyDir": {}}])
}

/// `subPathExpr: $(POD_NAME)` (the pod's name) makes the directory of that name in the
/// volume.
async fn substitute_in_subpath(ctx: Ctx) -> anyhow::Result<()> {
    let mut p = expansion_pod(
        json!([]),
        json!([{"name": "POD_NAME", "value": "foo"}]),
        json!([
            {"name": "workdir1", "mountPath": "/logscontainer", "subPathExpr": "$(POD_NAME)"},
            {"name": "workdir1", "mountPath": "/testcontainer"},
        ]),
        workdir1(),
    )?;
    let name = p.metadata.name.clone().unwrap_or_default();
    let c = &mut p.spec.as_mut().context("spec")?.containers[0];
    c.env.as_mut().context("env")?[0].value = Some(name.clone());
    c.command = Some(vec![
        "sh".into(),
        "-c".into(),
        format!("test -d /testcontainer/{name};echo $?"),
    ]);
    e2epod::test_container_output(&ctx, "substitution in volume subpath", p, 0, &["0"]).await
}

/// expansion.go's `testPodFailSubpath`: the container waits with reason
/// CreateContainerConfigError (`WaitForPodContainerToFail`, 2 minutes); the pod is
/// deleted.
async fn test_pod_fail_subpath(ctx: &Ctx, p: Pod) -> anyhow::Result<()> {
    let api = e2epod::api(ctx);
    let p = api.create(&PostParams::default(), &p).await?;
    let name = p.metadata.name.clone().unwrap_or_default();
    let r = e2epod::wait_for(
        &api,
        &name,
        POD_START_SHORT_TIMEOUT,
        "its container waiting with reason CreateContainerConfigError",
        |p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs.first())
                .and_then(|c| c.state.as_ref())
                .and_then(|s| s.waiting.as_ref())
                .is_some_and(|w| w.reason.as_deref() == Some("CreateContainerConfigError"))
        },
    )
    .await
    .context("while waiting for the pod container to fail");
    let d = e2epod::delete_sync(&api, &name, &Default::default()).await;
    r?;
    d
}

/// `subPathExpr` expanding to an absolute path (/tmp) is refused by the kubelet.
async fn fail_absolute_subpath(ctx: Ctx) -> anyhow::Result<()> {
    let p = expansion_pod(
        Value::Null,
        json!([{"name": "POD_NAME", "value": "/tmp"}]),
        json!([{"name": "workdir1", "mountPath": "/logscontainer", "subPathExpr": "$(POD_NAME)"}]),
        workdir1(),
    )?;
    test_pod_fail_subpath(&ctx, p).await
}

/// `subPathExpr` expanding to ".." is refused by the kubelet.
async fn fail_backticks_subpath(ctx: Ctx) -> anyhow::Result<()> {
    let p = expansion_pod(
        Value::Null,
        json!([{"name": "POD_NAME", "value": ".."}]),
        json!([{"name": "workdir1", "mountPath": "/logscontainer", "subPathExpr": "$(POD_NAME)"}]),
        workdir1(),
    )?;
    test_pod_fail_subpath(&ctx, p).await
}

/// The env and mounts of the last two tests: `$(ANNOTATION)/$(POD_NAME)`, ANNOTATION
/// from the annotation "mysubpath".
fn annotated_subpath_pod(annotations: Value) -> anyhow::Result<Pod> {
    let mut p = expansion_pod(
        json!(["sh", "-c", "tail -f /dev/null"]),
        json!([
            {"name": "POD_NAME", "value": "foo"},
            {"name": "ANNOTATION", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.annotations['mysubpath']"}}},
        ]),
        json!([
            {"name": "workdir1", "mountPath": "/subpath_mount", "subPathExpr": "$(ANNOTATION)/$(POD_NAME)"},
            {"name": "workdir1", "mountPath": "/volume_mount"},
        ]),
        workdir1(),
    )?;
    p.metadata.annotations = Some(serde_json::from_value(annotations)?);
    Ok(p)
}

/// A file written under the expanded subpath through the whole volume is seen in the
/// subpath mount; changing the annotation later keeps the pod running.
async fn subpath_writes(ctx: Ctx) -> anyhow::Result<()> {
    let p = annotated_subpath_pod(json!({"mysubpath": "mypath"}))?;
    let api = e2epod::api(&ctx);
    let p = api.create(&PostParams::default(), &p).await?;
    let name = p.metadata.name.clone().unwrap_or_default();
    e2epod::wait_for_running(&api, &name, POD_START_SHORT_TIMEOUT)
        .await
        .context("while waiting for pod to be running")?;
    // creating a file in subpath
    e2epod::exec(
        &api,
        &name,
        "dapi-container",
        &["/bin/sh", "-c", "touch /volume_mount/mypath/foo/test.log"],
    )
    .await
    .context("expected to be able to write to subpath")?;
    // test for file in mounted path
    e2epod::exec(
        &api,
        &name,
        "dapi-container",
        &["/bin/sh", "-c", "test -f /subpath_mount/test.log"],
    )
    .await
    .context("expected to be able to verify file")?;
    // updating the annotation value
    e2epod::update(&api, &name, |p| {
        p.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert("mysubpath".into(), "mynewpath".into());
    })
    .await?;
    e2epod::wait_for_running(&api, &name, POD_START_SHORT_TIMEOUT)
        .await
        .context("while waiting for annotated pod to be running")?;
    e2epod::delete_sync(&api, &name, &Default::default())
        .await
        .context("failed to delete pod")
}

/// Without the annotation the subpath expands to an absolute path and the pod cannot run;
/// once the annotation is set it runs.
async fn subpath_from_failed_state(ctx: Ctx) -> anyhow::Result<()> {
    let p = annotated_subpath_pod(json!({"notmysubpath": "mypath"}))?;
    let api = e2epod::api(&ctx);
    let p = api.create(&PostParams::default(), &p).await?;
    let name = p.metadata.name.clone().unwrap_or_default();
    // creating the pod with failed condition: it must not be running in 2 minutes.
    if e2epod::wait_for_running(&api, &name, POD_START_SHORT_TIMEOUT)
        .await
        .is_ok()
    {
        anyhow::bail!("while waiting for pod to be running: expected an error, the pod runs");
    }
    // updating the pod
    e2epod::update(&api, &name, |p| {
        p.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert("mysubpath".into(), "mypath".into());
    })
    .await?;
    e2epod::wait_for_running(&api, &name, POD_START_SHORT_TIMEOUT)
        .await
        .context("while waiting for pod to be running")?;
    e2epod::delete_sync(&api, &name, &Default::default())
        .await
        .context("failed to delete pod")
}
