//! Projected volumes: upstream's test/e2e/common/storage/projected_configmap.go,
//! projected_secret.go, projected_downwardapi.go and projected_combined.go. The configMap
//! and secret ones are configmap_volume.rs' and secrets_volume.rs' tests with the object as
//! a projected volume's source.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use serde_json::{json, Value};

use super::configmap_volume::{self as cmv, Source};
use super::downward_api::resources_pod;
use super::e2epod::{self, Matcher};
use super::secrets_volume as sv;
use super::{agnhost_image, busybox_image, test, uuid};
use crate::{Ctx, Test};

const AREA: &str = "Projected Volume";

pub fn tests() -> Vec<Test> {
    vec![
        // projected_configmap.go
        test!(
            AREA,
            "Projected Volume, ConfigMap, volume mode default",
            "[sig-storage] Projected configMap should be consumable from pods in volume [NodeConformance] [Conformance]",
            cm_default
        ),
        test!(
            AREA,
            "Projected Volume, ConfigMap, volume mode 0400",
            "[sig-storage] Projected configMap should be consumable from pods in volume with defaultMode set [LinuxOnly] [NodeConformance] [Conformance]",
            cm_default_mode
        ),
        test!(
            AREA,
            "Projected Volume, ConfigMap, non-root user",
            "[sig-storage] Projected configMap should be consumable from pods in volume as non-root [NodeConformance] [Conformance]",
            cm_non_root
        ),
        test!(
            AREA,
            "Projected Volume, ConfigMap, mapped",
            "[sig-storage] Projected configMap should be consumable from pods in volume with mappings [NodeConformance] [Conformance]",
            cm_mapped
        ),
        test!(
            AREA,
            "Projected Volume, ConfigMap, mapped, volume mode 0400",
            "[sig-storage] Projected configMap should be consumable from pods in volume with mappings and Item mode set [LinuxOnly] [NodeConformance] [Conformance]",
            cm_mapped_mode
        ),
        test!(
            AREA,
            "Projected Volume, ConfigMap, mapped, non-root user",
            "[sig-storage] Projected configMap should be consumable from pods in volume with mappings as non-root [NodeConformance] [Conformance]",
            cm_mapped_non_root
        ),
        test!(
            AREA,
            "Projected Volume, ConfigMap, update",
            "[sig-storage] Projected configMap updates should be reflected in volume [NodeConformance] [Conformance]",
            cm_update
        ),
        test!(
            AREA,
            "Projected Volume, ConfigMap, create, update and delete",
            "[sig-storage] Projected configMap optional updates should be reflected in volume [NodeConformance] [Conformance]",
            cm_optional_updates
        ),
        test!(
            AREA,
            "Projected Volume, ConfigMap, multiple volume paths",
            "[sig-storage] Projected configMap should be consumable in multiple volumes in the same pod [NodeConformance] [Conformance]",
            cm_multiple_volumes
        ),
        // projected_secret.go
        test!(
            AREA,
            "Projected Volume, Secrets, volume mode default",
            "[sig-storage] Projected secret should be consumable from pods in volume [NodeConformance] [Conformance]",
            secret_default
        ),
        test!(
            AREA,
            "Projected Volume, Secrets, volume mode 0400",
            "[sig-storage] Projected secret should be consumable from pods in volume with defaultMode set [LinuxOnly] [NodeConformance] [Conformance]",
            secret_default_mode
        ),
        test!(
            AREA,
            "Project Volume, Secrets, non-root, custom fsGroup",
            "[sig-storage] Projected secret should be consumable from pods in volume as non-root with defaultMode and fsGroup set [LinuxOnly] [NodeConformance] [Conformance]",
            secret_non_root_fs_group
        ),
        test!(
            AREA,
            "Projected Volume, Secrets, mapped",
            "[sig-storage] Projected secret should be consumable from pods in volume with mappings [NodeConformance] [Conformance]",
            secret_mapped
        ),
        test!(
            AREA,
            "Projected Volume, Secrets, mapped, volume mode 0400",
            "[sig-storage] Projected secret should be consumable from pods in volume with mappings and Item Mode set [LinuxOnly] [NodeConformance] [Conformance]",
            secret_mapped_mode
        ),
        test!(
            AREA,
            "Projected Volume, Secrets, mapped, multiple paths",
            "[sig-storage] Projected secret should be consumable in multiple volumes in a pod [NodeConformance] [Conformance]",
            secret_multiple_volumes
        ),
        test!(
            AREA,
            "Projected Volume, Secrets, create, update delete",
            "[sig-storage] Projected secret optional updates should be reflected in volume [NodeConformance] [Conformance]",
            secret_optional_updates
        ),
        // projected_downwardapi.go
        test!(
            AREA,
            "Projected Volume, DownwardAPI, pod name",
            "[sig-storage] Projected downwardAPI should provide podname only [NodeConformance] [Conformance]",
            dapi_podname
        ),
        test!(
            AREA,
            "Projected Volume, DownwardAPI, volume mode 0400",
            "[sig-storage] Projected downwardAPI should set DefaultMode on files [LinuxOnly] [NodeConformance] [Conformance]",
            dapi_default_mode
        ),
        test!(
            AREA,
            "Projected Volume, DownwardAPI, volume mode 0400",
            "[sig-storage] Projected downwardAPI should set mode on item file [LinuxOnly] [NodeConformance] [Conformance]",
            dapi_item_mode
        ),
        test!(
            AREA,
            "Projected Volume, DownwardAPI, update labels",
            "[sig-storage] Projected downwardAPI should update labels on modification [NodeConformance] [Conformance]",
            dapi_update_labels
        ),
        test!(
            AREA,
            "Projected Volume, DownwardAPI, update annotation",
            "[sig-storage] Projected downwardAPI should update annotations on modification [NodeConformance] [Conformance]",
            dapi_update_annotations
        ),
        test!(
            AREA,
            "Projected Volume, DownwardAPI, CPU limits",
            "[sig-storage] Projected downwardAPI should provide container's cpu limit [NodeConformance] [Conformance]",
            dapi_cpu_limit
        ),
        test!(
            AREA,
            "Projected Volume, DownwardAPI, memory limits",
            "[sig-storage] Projected downwardAPI should provide container's memory limit [NodeConformance] [Conformance]",
            dapi_memory_limit
        ),
        test!(
            AREA,
            "Projected Volume, DownwardAPI, CPU request",
            "[sig-storage] Projected downwardAPI should provide container's cpu request [NodeConformance] [Conformance]",
            dapi_cpu_request
        ),
        test!(
            AREA,
            "Projected Volume, DownwardAPI, memory request",
            "[sig-storage] Projected downwardAPI should provide container's memory request [NodeConformance] [Conformance]",
            dapi_memory_request
        ),
        test!(
            AREA,
            "Projected Volume, DownwardAPI, CPU limit, node allocatable",
            "[sig-storage] Projected downwardAPI should provide node allocatable (cpu) as default cpu limit if the limit is not set [NodeConformance] [Conformance]",
            dapi_default_cpu_limit
        ),
        test!(
            AREA,
            "Projected Volume, DownwardAPI, memory limit, node allocatable",
            "[sig-storage] Projected downwardAPI should provide node allocatable (memory) as default memory limit if the limit is not set [NodeConformance] [Conformance]",
            dapi_default_memory_limit
        ),
        // projected_combined.go
        test!(
            AREA,
            "Projected Volume, multiple projections",
            "[sig-storage] Projected combined should project all components that make up the projection API [Projection] [NodeConformance] [Conformance]",
            combined
        ),
    ]
}

async fn cm_default(ctx: Ctx) -> anyhow::Result<()> {
    cmv::do_without_mappings(&ctx, Source::Projected, false, 0, None).await
}

async fn cm_default_mode(ctx: Ctx) -> anyhow::Result<()> {
    cmv::do_without_mappings(&ctx, Source::Projected, false, 0, Some(0o400)).await
}

async fn cm_non_root(ctx: Ctx) -> anyhow::Result<()> {
    cmv::do_without_mappings(&ctx, Source::Projected, true, 0, None).await
}

async fn cm_mapped(ctx: Ctx) -> anyhow::Result<()> {
    cmv::do_with_mappings(&ctx, Source::Projected, false, 0, None).await
}

async fn cm_mapped_mode(ctx: Ctx) -> anyhow::Result<()> {
    cmv::do_with_mappings(&ctx, Source::Projected, false, 0, Some(0o400)).await
}

async fn cm_mapped_non_root(ctx: Ctx) -> anyhow::Result<()> {
    cmv::do_with_mappings(&ctx, Source::Projected, true, 0, None).await
}

async fn cm_update(ctx: Ctx) -> anyhow::Result<()> {
    cmv::do_update(&ctx, Source::Projected).await
}

async fn cm_optional_updates(ctx: Ctx) -> anyhow::Result<()> {
    cmv::do_optional_updates(&ctx, Source::Projected).await
}

async fn cm_multiple_volumes(ctx: Ctx) -> anyhow::Result<()> {
    cmv::do_multiple_volumes(&ctx, Source::Projected).await
}

async fn secret_default(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("projected-secret-test-{}", uuid());
    sv::do_without_mapping(&ctx, Source::Projected, None, &name, None, None).await
}

async fn secret_default_mode(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("projected-secret-test-{}", uuid());
    sv::do_without_mapping(&ctx, Source::Projected, Some(0o400), &name, None, None).await
}

async fn secret_non_root_fs_group(ctx: Ctx) -> anyhow::Result<()> {
    sv::do_non_root_fs_group(&ctx, Source::Projected).await
}

async fn secret_mapped(ctx: Ctx) -> anyhow::Result<()> {
    sv::do_with_mapping(&ctx, Source::Projected, None).await
}

async fn secret_mapped_mode(ctx: Ctx) -> anyhow::Result<()> {
    sv::do_with_mapping(&ctx, Source::Projected, Some(0o400)).await
}

async fn secret_multiple_volumes(ctx: Ctx) -> anyhow::Result<()> {
    sv::do_multiple_volumes(&ctx, Source::Projected).await
}

async fn secret_optional_updates(ctx: Ctx) -> anyhow::Result<()> {
    sv::do_optional_updates(&ctx, Source::Projected).await
}

/// How long the downwardAPI update tests wait for a change (upstream's `podLogTimeout`).
const DAPI_POD_LOG_TIMEOUT: Duration = Duration::from_secs(2 * 60);

/// Upstream's `projectedDownwardAPIVolumeBasePod`: projected volume "podinfo" with one
/// downwardAPI source: the pod's name and the resources of "client-container" (plus labels
/// and annotations when given, `applyLabelsAndAnnotationsToProjectedDownwardAPIPod`).
fn dapi_base_pod(
    name: &str,
    labels: Value,
    annotations: Value,
    container: Value,
    item_mode: Option<i32>,
    default_mode: Option<i32>,
) -> anyhow::Result<Pod> {
    let res = |path: &str, resource: &str| json!({"path": path, "resourceFieldRef": {"containerName": "client-container", "resource": resource}});
    let mut items = vec![
        json!({"path": "podname", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}, "mode": item_mode}),
        res("cpu_limit", "limits.cpu"),
        res("cpu_request", "requests.cpu"),
        res("memory_limit", "limits.memory"),
        res("memory_request", "requests.memory"),
    ];
    if labels.as_object().is_some_and(|l| !l.is_empty()) {
        items.push(json!({"path": "labels", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}}));
    }
    if annotations.as_object().is_some_and(|a| !a.is_empty()) {
        items.push(json!({"path": "annotations", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.annotations"}}));
    }
    e2epod::pod(json!({
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {
            "volumes": [{"name": "podinfo", "projected": {
                "sources": [{"downwardAPI": {"items": items}}],
                "defaultMode": default_mode,
            }}],
            "containers": [container],
            "restartPolicy": "Never",
        },
    }))
}

/// Upstream's `projectedDownwardAPIVolumePodForModeTest`.
fn dapi_mode_pod(
    name: &str,
    file: &str,
    item_mode: Option<i32>,
    default_mode: Option<i32>,
) -> anyhow::Result<Pod> {
    dapi_base_pod(
        name,
        json!(null),
        json!(null),
        json!({
            "name": "client-container", "image": agnhost_image(),
            "args": ["mounttest", format!("--file_mode={file}")],
            "volumeMounts": [{"name": "podinfo", "mountPath": "/etc/podinfo"}],
        }),
        item_mode,
        default_mode,
    )
}

/// Upstream's `projectedDownwardAPIVolumePodForUpdateTest`.
fn dapi_update_pod(
    name: &str,
    labels: Value,
    annotations: Value,
    file: &str,
) -> anyhow::Result<Pod> {
    dapi_base_pod(
        name,
        labels,
        annotations,
        json!({
            "name": "client-container", "image": agnhost_image(),
            "args": ["mounttest", "--break_on_expected_content=false", "--retry_time=1200",
                     format!("--file_content_in_loop={file}")],
            "volumeMounts": [{"name": "podinfo", "mountPath": "/etc/podinfo", "readOnly": false}],
        }),
        None,
        None,
    )
}

/// As upstream, the podname and resource tests of projected_downwardapi.go use the plain
/// downwardAPI volume pods of downwardapi_volume.go.
async fn dapi_simple(ctx: Ctx, file: &str, resources: bool, want: &str) -> anyhow::Result<()> {
    let name = format!("downwardapi-volume-{}", uuid());
    let pod = resources_pod(&name, file, resources)?;
    let want = if want.is_empty() {
        format!("{name}\n")
    } else {
        want.to_string()
    };
    e2epod::test_container_output(&ctx, "downward API volume plugin", pod, 0, &[&want]).await
}

async fn dapi_podname(ctx: Ctx) -> anyhow::Result<()> {
    dapi_simple(ctx, "/etc/podinfo/podname", false, "").await
}

async fn dapi_cpu_limit(ctx: Ctx) -> anyhow::Result<()> {
    dapi_simple(ctx, "/etc/podinfo/cpu_limit", true, "2\n").await
}

async fn dapi_memory_limit(ctx: Ctx) -> anyhow::Result<()> {
    dapi_simple(ctx, "/etc/podinfo/memory_limit", true, "67108864\n").await
}

async fn dapi_cpu_request(ctx: Ctx) -> anyhow::Result<()> {
    dapi_simple(ctx, "/etc/podinfo/cpu_request", true, "1\n").await
}

async fn dapi_memory_request(ctx: Ctx) -> anyhow::Result<()> {
    dapi_simple(ctx, "/etc/podinfo/memory_request", true, "33554432\n").await
}

async fn dapi_default_limit(ctx: Ctx, file: &str) -> anyhow::Result<()> {
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

async fn dapi_default_cpu_limit(ctx: Ctx) -> anyhow::Result<()> {
    dapi_default_limit(ctx, "/etc/podinfo/cpu_limit").await
}

async fn dapi_default_memory_limit(ctx: Ctx) -> anyhow::Result<()> {
    dapi_default_limit(ctx, "/etc/podinfo/memory_limit").await
}

async fn dapi_default_mode(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("downwardapi-volume-{}", uuid());
    let pod = dapi_mode_pod(&name, "/etc/podinfo/podname", None, Some(0o400))?;
    e2epod::test_container_output(
        &ctx,
        "downward API volume plugin",
        pod,
        0,
        &["mode of file \"/etc/podinfo/podname\": -r--------"],
    )
    .await
}

async fn dapi_item_mode(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("downwardapi-volume-{}", uuid());
    let pod = dapi_mode_pod(&name, "/etc/podinfo/podname", Some(0o400), None)?;
    e2epod::test_container_output(
        &ctx,
        "downward API volume plugin",
        pod,
        0,
        &["mode of file \"/etc/podinfo/podname\": -r--------"],
    )
    .await
}

async fn dapi_update_labels(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("labelsupdate{}", uuid());
    let pod = dapi_update_pod(
        &name,
        json!({"key1": "value1", "key2": "value2"}),
        json!({}),
        "/etc/podinfo/labels",
    )?;
    let api = e2epod::api(&ctx);
    e2epod::create_sync(&api, &pod).await?;
    let c = "client-container";
    e2epod::eventually_log_contains(&api, &name, c, "key1=\"value1\"\n", DAPI_POD_LOG_TIMEOUT)
        .await?;
    e2epod::update(&api, &name, |p| {
        p.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("key3".into(), "value3".into());
    })
    .await?;
    e2epod::eventually_log_contains(&api, &name, c, "key3=\"value3\"\n", DAPI_POD_LOG_TIMEOUT).await
}

async fn dapi_update_annotations(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("annotationupdate{}", uuid());
    let pod = dapi_update_pod(
        &name,
        json!({}),
        json!({"builder": "bar"}),
        "/etc/podinfo/annotations",
    )?;
    let api = e2epod::api(&ctx);
    e2epod::create_sync(&api, &pod).await?;
    let c = "client-container";
    e2epod::eventually_log_contains(&api, &name, c, "builder=\"bar\"\n", DAPI_POD_LOG_TIMEOUT)
        .await?;
    e2epod::update(&api, &name, |p| {
        p.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert("builder".into(), "foo".into());
    })
    .await?;
    e2epod::eventually_log_contains(&api, &name, c, "builder=\"foo\"\n", DAPI_POD_LOG_TIMEOUT).await
}

/// One projected volume with a downwardAPI, a secret and a configMap source, read by cat.
async fn combined(ctx: Ctx) -> anyhow::Result<()> {
    let pod_name = format!("projected-volume-{}", uuid());
    let secret_name = format!("secret-projected-all-test-volume-{}", uuid());
    let cm_name = format!("configmap-projected-all-test-volume-{}", uuid());
    cmv::create_config_map(&ctx, &cm_name, &[("configmap-data", "configmap-value-1")]).await?;
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(secret_name.clone()),
            namespace: Some(ctx.ns.clone()),
            ..Default::default()
        },
        data: Some(
            [(
                "secret-data".to_string(),
                ByteString(b"secret-value-1".to_vec()),
            )]
            .into(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(ctx.client.clone(), &ctx.ns)
        .create(&PostParams::default(), &secret)
        .await
        .map_err(|e| anyhow::anyhow!("unable to create test secret {secret_name}: {e}"))?;
    let pod = e2epod::pod(json!({
        "metadata": {"name": pod_name},
        "spec": {
            "volumes": [{"name": "podinfo", "projected": {"sources": [
                {"downwardAPI": {"items": [{"path": "podname", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}]}},
                {"secret": {"name": secret_name}},
                {"configMap": {"name": cm_name}},
            ]}}],
            "containers": [{
                "name": "projected-all-volume-test", "image": busybox_image(),
                "command": ["sh", "-c", "cat /all/podname && cat /all/secret-data && cat /all/configmap-data"],
                "volumeMounts": [{"name": "podinfo", "mountPath": "/all", "readOnly": false}],
            }],
            "restartPolicy": "Never",
        },
    }))?;
    e2epod::test_container_output(
        &ctx,
        "Check all projections for projected volume plugin",
        pod,
        0,
        &[&pod_name, "secret-value-1", "configmap-value-1"],
    )
    .await
}
