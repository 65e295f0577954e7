//! Downward API: upstream's test/e2e/common/node/downwardapi.go (environment) and
//! test/e2e/common/storage/downwardapi_volume.go (volume).

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use super::e2epod::{self, Matcher};
use super::{agnhost_image, busybox_image, test, uuid};
use crate::{Ctx, Test};

const AREA: &str = "Downward API";

/// Upstream's `e2enetwork.RegexIPv4` and `RegexIPv6`.
const REGEX_IPV4: &str = "(?:\\d+)\\.(?:\\d+)\\.(?:\\d+)\\.(?:\\d+)";
const REGEX_IPV6: &str = "(?:(?:(?:[0-9a-fA-F]{1,4}:){6}|::(?:[0-9a-fA-F]{1,4}:){5}|(?:[0-9a-fA-F]{1,4})?::(?:[0-9a-fA-F]{1,4}:){4}|(?:(?:[0-9a-fA-F]{1,4}:){0,1}[0-9a-fA-F]{1,4})?::(?:[0-9a-fA-F]{1,4}:){3}|(?:(?:[0-9a-fA-F]{1,4}:){0,2}[0-9a-fA-F]{1,4})?::(?:[0-9a-fA-F]{1,4}:){2}|(?:(?:[0-9a-fA-F]{1,4}:){0,3}[0-9a-fA-F]{1,4})?::[0-9a-fA-F]{1,4}:|(?:(?:[0-9a-fA-F]{1,4}:){0,4}[0-9a-fA-F]{1,4})?::)(?:[0-9a-fA-F]{1,4}:[0-9a-fA-F]{1,4}|(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?))|(?:(?:[0-9a-fA-F]{1,4}:){0,5}[0-9a-fA-F]{1,4})?::[0-9a-fA-F]{1,4}|(?:(?:[0-9a-fA-F]{1,4}:){0,6}[0-9a-fA-F]{1,4})?::)";

/// How long the update tests wait for the volume to show a change (`podLogTimeout`),
/// polling every `framework.Poll`.
const POD_LOG_TIMEOUT: Duration = Duration::from_secs(3 * 60);

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "DownwardAPI, environment for name, namespace and ip",
            "[sig-node] Downward API should provide pod name, namespace and IP address as env vars [NodeConformance] [Conformance]",
            env_name_namespace_ip
        ),
        test!(
            AREA,
            "DownwardAPI, environment for host ip",
            "[sig-node] Downward API should provide host IP as an env var [NodeConformance] [Conformance]",
            env_host_ip
        ),
        test!(
            AREA,
            "DownwardAPI, environment for CPU and memory limits and requests",
            "[sig-node] Downward API should provide container's limits.cpu/memory and requests.cpu/memory as env vars [NodeConformance] [Conformance]",
            env_resources
        ),
        test!(
            AREA,
            "DownwardAPI, environment for default CPU and memory limits and requests",
            "[sig-node] Downward API should provide default limits.cpu/memory from node allocatable [NodeConformance] [Conformance]",
            env_default_limits
        ),
        test!(
            AREA,
            "DownwardAPI, environment for Pod UID",
            "[sig-node] Downward API should provide pod UID as env vars [NodeConformance] [Conformance]",
            env_pod_uid
        ),
        test!(
            AREA,
            "DownwardAPI volume, pod name",
            "[sig-storage] Downward API volume should provide podname only [NodeConformance] [Conformance]",
            volume_podname
        ),
        test!(
            AREA,
            "DownwardAPI volume, volume mode 0400",
            "[sig-storage] Downward API volume should set DefaultMode on files [LinuxOnly] [NodeConformance] [Conformance]",
            volume_default_mode
        ),
        test!(
            AREA,
            "DownwardAPI volume, file mode 0400",
            "[sig-storage] Downward API volume should set mode on item file [LinuxOnly] [NodeConformance] [Conformance]",
            volume_item_mode
        ),
        test!(
            AREA,
            "DownwardAPI volume, update label",
            "[sig-storage] Downward API volume should update labels on modification [NodeConformance] [Conformance]",
            volume_update_labels
        ),
        test!(
            AREA,
            "DownwardAPI volume, update annotations",
            "[sig-storage] Downward API volume should update annotations on modification [NodeConformance] [Conformance]",
            volume_update_annotations
        ),
        test!(
            AREA,
            "DownwardAPI volume, CPU limits",
            "[sig-storage] Downward API volume should provide container's cpu limit [NodeConformance] [Conformance]",
            volume_cpu_limit
        ),
        test!(
            AREA,
            "DownwardAPI volume, memory limits",
            "[sig-storage] Downward API volume should provide container's memory limit [NodeConformance] [Conformance]",
            volume_memory_limit
        ),
        test!(
            AREA,
            "DownwardAPI volume, CPU request",
            "[sig-storage] Downward API volume should provide container's cpu request [NodeConformance] [Conformance]",
            volume_cpu_request
        ),
        test!(
            AREA,
            "DownwardAPI volume, memory request",
            "[sig-storage] Downward API volume should provide container's memory request [NodeConformance] [Conformance]",
            volume_memory_request
        ),
        test!(
            AREA,
            "DownwardAPI volume, CPU limit, default node allocatable",
            "[sig-storage] Downward API volume should provide node allocatable (cpu) as default cpu limit if the limit is not set [NodeConformance] [Conformance]",
            volume_default_cpu_limit
        ),
        test!(
            AREA,
            "DownwardAPI volume, memory limit, default node allocatable",
            "[sig-storage] Downward API volume should provide node allocatable (memory) as default memory limit if the limit is not set [NodeConformance] [Conformance]",
            volume_default_memory_limit
        ),
    ]
}

fn field_ref(name: &str, path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}})
}

fn resource_ref(name: &str, resource: &str) -> Value {
    json!({"name": name, "valueFrom": {"resourceFieldRef": {"resource": resource}}})
}

/// Upstream's `testDownwardAPI`: a busybox `env` pod with requests 250m/32Mi and limits
/// 1250m/64Mi, its output matched by regexps.
async fn test_downward_api(
    ctx: &Ctx,
    name: &str,
    env: Value,
    expectations: &[&str],
) -> anyhow::Result<()> {
    let pod = e2epod::pod(json!({
        "metadata": {"name": name, "labels": {"name": name}},
        "spec": {
            "containers": [{
                "name": "dapi-container", "image": busybox_image(), "command": ["sh", "-c", "env"],
                "resources": {"requests": {"cpu": "250m", "memory": "32Mi"}, "limits": {"cpu": "1250m", "memory": "64Mi"}},
                "env": env,
            }],
            "restartPolicy": "Never",
        },
    }))?;
    test_downward_api_using_pod(ctx, pod, expectations).await
}

async fn test_downward_api_using_pod(
    ctx: &Ctx,
    pod: Pod,
    expectations: &[&str],
) -> anyhow::Result<()> {
    e2epod::match_container_output(
        ctx,
        "downward api env vars",
        pod,
        0,
        expectations,
        Matcher::Regexp,
    )
    .await
}

async fn env_name_namespace_ip(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("downward-api-{}", uuid());
    let env = json!([
        field_ref("POD_NAME", "metadata.name"),
        field_ref("POD_NAMESPACE", "metadata.namespace"),
        field_ref("POD_IP", "status.podIP"),
    ]);
    let expect = [
        format!("POD_NAME={name}"),
        format!("POD_NAMESPACE={}", ctx.ns),
        format!("POD_IP={REGEX_IPV4}|{REGEX_IPV6}"),
    ];
    let expect: Vec<&str> = expect.iter().map(String::as_str).collect();
    test_downward_api(&ctx, &name, env, &expect).await
}

async fn env_host_ip(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("downward-api-{}", uuid());
    let env = json!([field_ref("HOST_IP", "status.hostIP")]);
    let expect = format!("HOST_IP={REGEX_IPV4}|{REGEX_IPV6}");
    test_downward_api(&ctx, &name, env, &[&expect]).await
}

async fn env_resources(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("downward-api-{}", uuid());
    let env = json!([
        resource_ref("CPU_LIMIT", "limits.cpu"),
        resource_ref("MEMORY_LIMIT", "limits.memory"),
        resource_ref("CPU_REQUEST", "requests.cpu"),
        resource_ref("MEMORY_REQUEST", "requests.memory"),
    ]);
    test_downward_api(
        &ctx,
        &name,
        env,
        &[
            "CPU_LIMIT=2",
            "MEMORY_LIMIT=67108864",
            "CPU_REQUEST=1",
            "MEMORY_REQUEST=33554432",
        ],
    )
    .await
}

async fn env_default_limits(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("downward-api-{}", uuid());
    let pod = e2epod::pod(json!({
        "metadata": {"name": name, "labels": {"name": name}},
        "spec": {
            "containers": [{
                "name": "dapi-container", "image": busybox_image(), "command": ["sh", "-c", "env"],
                "env": [resource_ref("CPU_LIMIT", "limits.cpu"), resource_ref("MEMORY_LIMIT", "limits.memory")],
            }],
            "restartPolicy": "Never",
        },
    }))?;
    test_downward_api_using_pod(&ctx, pod, &["CPU_LIMIT=[1-9]", "MEMORY_LIMIT=[1-9]"]).await
}

async fn env_pod_uid(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("downward-api-{}", uuid());
    let env = json!([field_ref("POD_UID", "metadata.uid")]);
    test_downward_api(
        &ctx,
        &name,
        env,
        &["POD_UID=[a-z0-9]{8}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{12}"],
    )
    .await
}

/// Upstream's `downwardAPIVolumeBasePod`: volume "podinfo" with the pod's name and the
/// resources of "client-container" as files (plus labels and annotations when given).
fn base_pod(
    name: &str,
    labels: Value,
    annotations: Value,
    containers: Value,
) -> anyhow::Result<Pod> {
    let res = |path: &str, resource: &str| json!({"path": path, "resourceFieldRef": {"containerName": "client-container", "resource": resource}});
    let mut items = vec![
        json!({"path": "podname", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}),
        res("cpu_limit", "limits.cpu"),
        res("cpu_request", "requests.cpu"),
        res("memory_limit", "limits.memory"),
        res("memory_request", "requests.memory"),
    ];
    // applyLabelsAndAnnotationsToDownwardAPIPod
    if labels.as_object().is_some_and(|l| !l.is_empty()) {
        items.push(json!({"path": "labels", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}}));
    }
    if annotations.as_object().is_some_and(|a| !a.is_empty()) {
        items.push(json!({"path": "annotations", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.annotations"}}));
    }
    e2epod::pod(json!({
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {
            "volumes": [{"name": "podinfo", "downwardAPI": {"items": items}}],
            "containers": containers,
            "restartPolicy": "Never",
        },
    }))
}

/// An agnhost `mounttest` container "client-container" with the volume at /etc/podinfo.
fn client_container(args: &[&str], resources: Value) -> Value {
    let mut args_all = vec!["mounttest"];
    args_all.extend_from_slice(args);
    json!({
        "name": "client-container", "image": agnhost_image(), "args": args_all,
        "resources": resources,
        "volumeMounts": [{"name": "podinfo", "mountPath": "/etc/podinfo"}],
    })
}

/// Upstream's `downwardAPIVolumePodForModeTest`.
fn mode_test_pod(
    name: &str,
    item_mode: Option<i32>,
    default_mode: Option<i32>,
) -> anyhow::Result<Pod> {
    let mut pod = base_pod(
        name,
        json!(null),
        json!(null),
        json!([client_container(
            &["--file_mode=/etc/podinfo/podname"],
            json!(null)
        )]),
    )?;
    let d = pod
        .spec
        .as_mut()
        .and_then(|s| s.volumes.as_mut())
        .and_then(|v| v[0].downward_api.as_mut())
        .context("the pod's downwardAPI volume")?;
    if let Some(m) = item_mode {
        if let Some(item) = d.items.as_mut().and_then(|i| i.first_mut()) {
            item.mode = Some(m);
        }
    }
    if default_mode.is_some() {
        d.default_mode = default_mode;
    }
    Ok(pod)
}

/// A pod whose client container prints one file of the volume (with the container's
/// resources when `resources`): upstream's `downwardAPIVolumePodForSimpleTest`,
/// `downwardAPIVolumeForContainerResources` and `downwardAPIVolumeForDefaultContainerResources`.
pub(super) fn resources_pod(name: &str, file: &str, resources: bool) -> anyhow::Result<Pod> {
    let r = if resources {
        json!({"requests": {"cpu": "250m", "memory": "32Mi"}, "limits": {"cpu": "1250m", "memory": "64Mi"}})
    } else {
        json!(null)
    };
    base_pod(
        name,
        json!(null),
        json!(null),
        json!([client_container(&[&format!("--file_content={file}")], r)]),
    )
}

async fn volume_podname(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("downwardapi-volume-{}", uuid());
    let pod = resources_pod(&name, "/etc/podinfo/podname", false)?;
    let want = format!("{name}\n");
    e2epod::test_container_output(&ctx, "downward API volume plugin", pod, 0, &[&want]).await
}

async fn volume_default_mode(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("downwardapi-volume-{}", uuid());
    let pod = mode_test_pod(&name, None, Some(0o400))?;
    e2epod::test_container_output(
        &ctx,
        "downward API volume plugin",
        pod,
        0,
        &["mode of file \"/etc/podinfo/podname\": -r--------"],
    )
    .await
}

async fn volume_item_mode(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("downwardapi-volume-{}", uuid());
    let pod = mode_test_pod(&name, Some(0o400), None)?;
    e2epod::test_container_output(
        &ctx,
        "downward API volume plugin",
        pod,
        0,
        &["mode of file \"/etc/podinfo/podname\": -r--------"],
    )
    .await
}

/// Upstream's `downwardAPIVolumePodForUpdateTest`: the client container prints the file
/// every 2 s for 120 s.
fn update_test_pod(
    name: &str,
    labels: Value,
    annotations: Value,
    file: &str,
) -> anyhow::Result<Pod> {
    base_pod(
        name,
        labels,
        annotations,
        json!([client_container(
            &[
                "--break_on_expected_content=false",
                "--retry_time=120",
                &format!("--file_content_in_loop={file}"),
            ],
            json!(null)
        )]),
    )
}

/// Polls the client container's log until it contains `want`.
async fn wait_for_output(ctx: &Ctx, pod: &str, want: &str) -> anyhow::Result<()> {
    let api = e2epod::api(ctx);
    e2epod::eventually_log_contains(&api, pod, "client-container", want, POD_LOG_TIMEOUT).await
}

async fn volume_update_labels(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("labelsupdate{}", uuid());
    let pod = update_test_pod(
        &name,
        json!({"key1": "value1", "key2": "value2"}),
        json!({}),
        "/etc/podinfo/labels",
    )?;
    let api = e2epod::api(&ctx);
    e2epod::create_sync(&api, &pod).await?;
    wait_for_output(&ctx, &name, "key1=\"value1\"\n").await?;
    e2epod::update(&api, &name, |p| {
        p.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("key3".into(), "value3".into());
    })
    .await?;
    wait_for_output(&ctx, &name, "key3=\"value3\"\n").await
}

async fn volume_update_annotations(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("annotationupdate{}", uuid());
    let pod = update_test_pod(
        &name,
        json!({}),
        json!({"builder": "bar"}),
        "/etc/podinfo/annotations",
    )?;
    let api = e2epod::api(&ctx);
    e2epod::create_sync(&api, &pod).await?;
    wait_for_output(&ctx, &name, "builder=\"bar\"\n").await?;
    e2epod::update(&api, &name, |p| {
        p.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert("builder".into(), "foo".into());
    })
    .await?;
    wait_for_output(&ctx, &name, "builder=\"foo\"\n").await
}

async fn volume_resource(ctx: Ctx, file: &str, want: &str) -> anyhow::Result<()> {
    let name = format!("downwardapi-volume-{}", uuid());
    let pod = resources_pod(&name, file, true)?;
    e2epod::test_container_output(&ctx, "downward API volume plugin", pod, 0, &[want]).await
}

async fn volume_cpu_limit(ctx: Ctx) -> anyhow::Result<()> {
    volume_resource(ctx, "/etc/podinfo/cpu_limit", "2\n").await
}

async fn volume_memory_limit(ctx: Ctx) -> anyhow::Result<()> {
    volume_resource(ctx, "/etc/podinfo/memory_limit", "67108864\n").await
}

async fn volume_cpu_request(ctx: Ctx) -> anyhow::Result<()> {
    volume_resource(ctx, "/etc/podinfo/cpu_request", "1\n").await
}

async fn volume_memory_request(ctx: Ctx) -> anyhow::Result<()> {
    volume_resource(ctx, "/etc/podinfo/memory_request", "33554432\n").await
}

async fn volume_default_limit(ctx: Ctx, file: &str) -> anyhow::Result<()> {
    let name = format!("downwardapi-volume-{}", uuid());
    let pod = resources_pod(&name, file, false)?;
    e2epod::match_container_output(
        &ctx,
        "downward API volume plugin",
        pod,
        0,
        &["[1-9]"],
        Matcher::Regexp,
    )
    .await
}

async fn volume_default_cpu_limit(ctx: Ctx) -> anyhow::Result<()> {
    volume_default_limit(ctx, "/etc/podinfo/cpu_limit").await
}

async fn volume_default_memory_limit(ctx: Ctx) -> anyhow::Result<()> {
    volume_default_limit(ctx, "/etc/podinfo/memory_limit").await
}
