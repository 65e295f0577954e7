//! ConfigMap volumes: upstream's test/e2e/common/storage/configmap_volume.go; its helpers
//! also make projected_configmap.go's tests (see projected.rs), where the configMap is a
//! source of a projected volume and the names carry "projected-".

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{json, Value};

use super::e2epod::{self, Matcher, POD_SECRET_UPDATE_TIMEOUT};
use super::{agnhost_image, busybox_image, test, uuid};
use crate::{Ctx, Test};

const AREA: &str = "ConfigMap Volume";

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "ConfigMap Volume, without mapping",
            "[sig-storage] ConfigMap should be consumable from pods in volume [NodeConformance] [Conformance]",
            without_mapping
        ),
        test!(
            AREA,
            "ConfigMap Volume, without mapping, volume mode set",
            "[sig-storage] ConfigMap should be consumable from pods in volume with defaultMode set [LinuxOnly] [NodeConformance] [Conformance]",
            without_mapping_default_mode
        ),
        test!(
            AREA,
            "ConfigMap Volume, without mapping, non-root user",
            "[sig-storage] ConfigMap should be consumable from pods in volume as non-root [NodeConformance] [Conformance]",
            without_mapping_non_root
        ),
        test!(
            AREA,
            "ConfigMap Volume, with mapping",
            "[sig-storage] ConfigMap should be consumable from pods in volume with mappings [NodeConformance] [Conformance]",
            with_mapping
        ),
        test!(
            AREA,
            "ConfigMap Volume, with mapping, volume mode set",
            "[sig-storage] ConfigMap should be consumable from pods in volume with mappings and Item mode set [LinuxOnly] [NodeConformance] [Conformance]",
            with_mapping_item_mode
        ),
        test!(
            AREA,
            "ConfigMap Volume, with mapping, non-root user",
            "[sig-storage] ConfigMap should be consumable from pods in volume with mappings as non-root [NodeConformance] [Conformance]",
            with_mapping_non_root
        ),
        test!(
            AREA,
            "ConfigMap Volume, update",
            "[sig-storage] ConfigMap updates should be reflected in volume [NodeConformance] [Conformance]",
            update
        ),
        test!(
            AREA,
            "ConfigMap Volume, text data, binary data",
            "[sig-storage] ConfigMap binary data should be reflected in volume [NodeConformance] [Conformance]",
            binary_data
        ),
        test!(
            AREA,
            "ConfigMap Volume, create, update and delete",
            "[sig-storage] ConfigMap optional updates should be reflected in volume [NodeConformance] [Conformance]",
            optional_updates
        ),
        test!(
            AREA,
            "ConfigMap Volume, multiple volume maps",
            "[sig-storage] ConfigMap should be consumable in multiple volumes in the same pod [NodeConformance] [Conformance]",
            multiple_volumes
        ),
    ]
}

/// How a configMap or secret reaches the pod: as its own volume kind, or as the source of
/// a projected volume (upstream's projected_*.go, whose names carry "projected-").
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Plain,
    Projected,
}

impl Source {
    /// `s` with "projected-" in front for a projected volume.
    pub(super) fn p(self, s: &str) -> String {
        match self {
            Source::Plain => s.to_string(),
            Source::Projected => format!("projected-{s}"),
        }
    }

    /// A volume `name` of the object `kind` ("configMap" or "secret") called `object`:
    /// `items`, `optional` and the mode as given (in a projected volume the mode is the
    /// projected volume's `defaultMode`, as upstream's tests set it).
    pub(super) fn volume(
        self,
        kind: &str,
        name: &str,
        object: &str,
        items: Value,
        optional: Option<bool>,
        default_mode: Option<i32>,
    ) -> Value {
        match self {
            Source::Plain => {
                let mut v =
                    json!({"items": items, "optional": optional, "defaultMode": default_mode});
                if kind == "secret" {
                    v["secretName"] = json!(object);
                } else {
                    v["name"] = json!(object);
                }
                json!({"name": name, kind: v})
            }
            Source::Projected => json!({"name": name, "projected": {
                "sources": [{kind: {"name": object, "items": items, "optional": optional}}],
                "defaultMode": default_mode,
            }}),
        }
    }
}

pub(super) fn configmaps(ctx: &Ctx) -> Api<ConfigMap> {
    Api::namespaced(ctx.client.clone(), &ctx.ns)
}

/// Creates the configMap `name` with `data`.
pub(super) async fn create_config_map(
    ctx: &Ctx,
    name: &str,
    data: &[(&str, &str)],
) -> anyhow::Result<ConfigMap> {
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ctx.ns.clone()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    };
    create(ctx, &cm).await
}

async fn create(ctx: &Ctx, cm: &ConfigMap) -> anyhow::Result<ConfigMap> {
    let name = cm.metadata.name.clone().unwrap_or_default();
    configmaps(ctx)
        .create(&PostParams::default(), cm)
        .await
        .map_err(|e| anyhow::anyhow!("unable to create test configMap {name}: {e}"))
}

/// Upstream's `newConfigMap`: data-1..3 = value-1..3.
async fn create_new_config_map(ctx: &Ctx, name: &str) -> anyhow::Result<ConfigMap> {
    create_config_map(
        ctx,
        name,
        &[
            ("data-1", "value-1"),
            ("data-2", "value-2"),
            ("data-3", "value-3"),
        ],
    )
    .await
}

/// Upstream's `createConfigMapVolumeMounttestPod` (and `createProjectedConfigMapMounttestPod`):
/// an agnhost pod running `mounttest args` with the configMap's volume mounted read-only.
fn mounttest_pod(
    src: Source,
    volume: &str,
    config_map: &str,
    mount_path: &str,
    args: &[&str],
) -> anyhow::Result<Pod> {
    let mut all = vec!["mounttest"];
    all.extend_from_slice(args);
    let mut p = e2epod::agnhost_pod(
        &format!("pod-{}-{}", src.p("configmaps"), uuid()),
        json!([src.volume("configMap", volume, config_map, json!(null), None, None)]),
        json!([{"name": volume, "mountPath": mount_path, "readOnly": true}]),
        &all,
    )?;
    p.spec.get_or_insert_with(Default::default).restart_policy = Some("Never".into());
    Ok(p)
}

fn config_map_volume(p: &mut Pod) -> Option<&mut k8s_openapi::api::core::v1::Volume> {
    p.spec.as_mut()?.volumes.as_mut()?.first_mut()
}

/// The two E2E functions' common part: a new ConfigMap `name` and a mounttest pod reading
/// `file` (content and mode) from it at `mount`, as `as_user` and with `fs_group` (0: none).
#[allow(clippy::too_many_arguments)]
async fn consumer_pod(
    ctx: &Ctx,
    src: Source,
    name: &str,
    volume: &str,
    mount: &str,
    file: &str,
    as_user: bool,
    fs_group: i64,
) -> anyhow::Result<Pod> {
    create_new_config_map(ctx, name).await?;
    let mut pod = mounttest_pod(
        src,
        volume,
        name,
        mount,
        &[
            &format!("--file_content={file}"),
            &format!("--file_mode={file}"),
        ],
    )?;
    if src == Source::Plain {
        pod.spec
            .get_or_insert_with(Default::default)
            .termination_grace_period_seconds = Some(1);
    }
    if as_user {
        e2epod::set_pod_non_root_user(&mut pod);
    }
    if fs_group != 0 {
        if let Some(sc) = pod.spec.as_mut().and_then(|s| s.security_context.as_mut()) {
            sc.fs_group = Some(fs_group);
        }
    }
    Ok(pod)
}

/// Upstream's `doConfigMapE2EWithoutMappings` (`doProjectedConfigMapE2EWithoutMappings`).
pub(super) async fn do_without_mappings(
    ctx: &Ctx,
    src: Source,
    as_user: bool,
    fs_group: i64,
    default_mode: Option<i32>,
) -> anyhow::Result<()> {
    let name = format!("{}-{}", src.p("configmap-test-volume"), uuid());
    let volume = src.p("configmap-volume");
    let mount = format!("/etc/{}", src.p("configmap-volume"));
    let file = format!("{mount}/data-1");
    let mut pod = consumer_pod(ctx, src, &name, &volume, &mount, &file, as_user, fs_group).await?;
    if let Some(v) = config_map_volume(&mut pod) {
        match src {
            Source::Plain => {
                if let Some(c) = v.config_map.as_mut() {
                    c.default_mode = default_mode;
                }
            }
            Source::Projected => {
                if let Some(pr) = v.projected.as_mut() {
                    pr.default_mode = default_mode;
                }
            }
        }
    }
    let content = format!("content of file \"{file}\": value-1");
    let output = [
        regex::escape(&content),
        e2epod::file_mode_regex(&file, default_mode),
    ];
    let output: Vec<&str> = output.iter().map(String::as_str).collect();
    e2epod::match_container_output(ctx, "consume configMaps", pod, 0, &output, Matcher::Regexp)
        .await
}

/// Upstream's `doConfigMapE2EWithMappings` (`doProjectedConfigMapE2EWithMappings`).
pub(super) async fn do_with_mappings(
    ctx: &Ctx,
    src: Source,
    as_user: bool,
    fs_group: i64,
    item_mode: Option<i32>,
) -> anyhow::Result<()> {
    let name = format!("{}-{}", src.p("configmap-test-volume-map"), uuid());
    let volume = src.p("configmap-volume");
    let mount = format!("/etc/{}", src.p("configmap-volume"));
    let file = format!("{mount}/path/to/data-2");
    let mut pod = consumer_pod(ctx, src, &name, &volume, &mount, &file, as_user, fs_group).await?;
    let items = vec![k8s_openapi::api::core::v1::KeyToPath {
        key: "data-2".into(),
        path: "path/to/data-2".into(),
        mode: None,
    }];
    if let Some(v) = config_map_volume(&mut pod) {
        match src {
            Source::Plain => {
                if let Some(c) = v.config_map.as_mut() {
                    c.items = Some(items);
                }
            }
            Source::Projected => {
                if let Some(c) = v
                    .projected
                    .as_mut()
                    .and_then(|p| p.sources.as_mut())
                    .and_then(|s| s.first_mut())
                    .and_then(|s| s.config_map.as_mut())
                {
                    c.items = Some(items);
                }
            }
        }
    }
    if item_mode.is_some() {
        if let Some(v) = config_map_volume(&mut pod) {
            match src {
                Source::Plain => {
                    if let Some(i) = v
                        .config_map
                        .as_mut()
                        .and_then(|c| c.items.as_mut())
                        .and_then(|i| i.first_mut())
                    {
                        i.mode = item_mode;
                    }
                }
                // As upstream: the projected volume's defaultMode.
                Source::Projected => {
                    if let Some(pr) = v.projected.as_mut() {
                        pr.default_mode = item_mode;
                    }
                }
            }
        }
    }
    // As upstream: the mode only when no fsGroup adjusts it.
    let mut output = vec![regex::escape(&format!(
        "content of file \"{file}\": value-2"
    ))];
    if fs_group == 0 {
        output.push(e2epod::file_mode_regex(&file, item_mode));
    }
    let output: Vec<&str> = output.iter().map(String::as_str).collect();
    e2epod::match_container_output(ctx, "consume configMaps", pod, 0, &output, Matcher::Regexp)
        .await
}

/// The "updates should be reflected in volume" test of either source.
pub(super) async fn do_update(ctx: &Ctx, src: Source) -> anyhow::Result<()> {
    let timeout = POD_SECRET_UPDATE_TIMEOUT;
    let retry = format!("--retry_time={}", timeout.as_secs());
    let name = format!("{}-{}", src.p("configmap-test-upd"), uuid());
    let volume = src.p("configmap-volume");
    let mount = format!("/etc/{}", src.p("configmap-volume"));
    let mut cm = create_config_map(ctx, &name, &[("data-1", "value-1")]).await?;
    let pod = mounttest_pod(
        src,
        &volume,
        &name,
        &mount,
        &[
            "--break_on_expected_content=false",
            &retry,
            &format!("--file_content_in_loop={mount}/data-1"),
        ],
    )?;
    let api = e2epod::api(ctx);
    let pod = e2epod::create_sync(&api, &pod).await?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let container = "agnhost-container";
    e2epod::eventually_log_contains(&api, &pod_name, container, "value-1", timeout).await?;

    // Updating the configmap; an empty resourceVersion forces the update.
    cm.metadata.resource_version = None;
    cm.data
        .get_or_insert_with(Default::default)
        .insert("data-1".into(), "value-2".into());
    configmaps(ctx)
        .replace(&name, &PostParams::default(), &cm)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "Failed to update configmap {name:?} in namespace {:?}: {e}",
                ctx.ns
            )
        })?;
    // waiting to observe update in volume
    e2epod::eventually_log_contains(&api, &pod_name, container, "value-2", timeout).await
}

/// The "optional updates should be reflected in volume" test of either source: three
/// optional configMap volumes, one configMap deleted, one updated, one created.
pub(super) async fn do_optional_updates(ctx: &Ctx, src: Source) -> anyhow::Result<()> {
    let timeout = POD_SECRET_UPDATE_TIMEOUT;
    let retry = format!("--retry_time={}", timeout.as_secs());
    let mount = format!("/etc/{}", src.p("configmap-volumes"));
    let delete_name = format!("cm-test-opt-del-{}", uuid());
    let update_name = format!("cm-test-opt-upd-{}", uuid());
    let create_name = format!("cm-test-opt-create-{}", uuid());
    let (delete_c, update_c, create_c) = (
        "delcm-volume-test",
        "updcm-volume-test",
        "createcm-volume-test",
    );
    let (delete_v, update_v, create_v) = ("deletecm-volume", "updatecm-volume", "createcm-volume");

    create_config_map(ctx, &delete_name, &[("data-1", "value-1")]).await?;
    let mut update_cm = create_config_map(ctx, &update_name, &[("data-1", "value-1")]).await?;

    let container = |name: &str, vol: &str, sub: &str, file: &str| {
        json!({
            "name": name, "image": agnhost_image(),
            "args": ["mounttest", "--break_on_expected_content=false", retry,
                     format!("--file_content_in_loop={mount}/{sub}/{file}")],
            "volumeMounts": [{"name": vol, "mountPath": format!("{mount}/{sub}"), "readOnly": true}],
        })
    };
    let vol =
        |name: &str, cm: &str| src.volume("configMap", name, cm, json!(null), Some(true), None);
    let pod = e2epod::pod(json!({
        "metadata": {"name": format!("pod-{}-{}", src.p("configmaps"), uuid())},
        "spec": {
            "volumes": [vol(delete_v, &delete_name), vol(update_v, &update_name), vol(create_v, &create_name)],
            "containers": [
                container(delete_c, delete_v, "delete", "data-1"),
                container(update_c, update_v, "update", "data-3"),
                container(create_c, create_v, "create", "data-1"),
            ],
            "restartPolicy": "Never",
        },
    }))?;
    let api = e2epod::api(ctx);
    let pod = e2epod::create_sync(&api, &pod).await?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let log = |c: &'static str, want: String| {
        let (api, pod_name) = (api.clone(), pod_name.clone());
        async move { e2epod::eventually_log_contains(&api, &pod_name, c, &want, timeout).await }
    };
    log(
        create_c,
        format!("Error reading file {mount}/create/data-1"),
    )
    .await?;
    log(
        update_c,
        format!("Error reading file {mount}/update/data-3"),
    )
    .await?;
    log(delete_c, "value-1".into()).await?;

    // Deleting the first, updating the second, creating the third.
    configmaps(ctx)
        .delete(&delete_name, &DeleteParams::default())
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "Failed to delete configmap {delete_name:?} in namespace {:?}: {e}",
                ctx.ns
            )
        })?;
    update_cm.metadata.resource_version = None;
    let data = update_cm.data.get_or_insert_with(Default::default);
    data.remove("data-1");
    data.insert("data-3".into(), "value-3".into());
    configmaps(ctx)
        .replace(&update_name, &PostParams::default(), &update_cm)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "Failed to update configmap {update_name:?} in namespace {:?}: {e}",
                ctx.ns
            )
        })?;
    create_config_map(ctx, &create_name, &[("data-1", "value-1")]).await?;

    // waiting to observe update in volume
    log(create_c, "value-1".into()).await?;
    log(update_c, "value-3".into()).await?;
    log(
        delete_c,
        format!("Error reading file {mount}/delete/data-1"),
    )
    .await
}

/// The "consumable in multiple volumes in the same pod" test of either source.
pub(super) async fn do_multiple_volumes(ctx: &Ctx, src: Source) -> anyhow::Result<()> {
    let name = format!("{}-{}", src.p("configmap-test-volume"), uuid());
    let (volume, volume2) = (src.p("configmap-volume"), src.p("configmap-volume-2"));
    let (mount, mount2) = (format!("/etc/{volume}"), format!("/etc/{volume2}"));
    create_new_config_map(ctx, &name).await?;
    let pod = e2epod::pod(json!({
        "metadata": {"name": format!("pod-{}-{}", src.p("configmaps"), uuid())},
        "spec": {
            "volumes": [
                src.volume("configMap", &volume, &name, json!(null), None, None),
                src.volume("configMap", &volume2, &name, json!(null), None, None),
            ],
            "containers": [{
                "name": src.p("configmap-volume-test"), "image": agnhost_image(),
                "args": ["mounttest", format!("--file_content={mount}/data-1")],
                "volumeMounts": [
                    {"name": volume, "mountPath": mount, "readOnly": true},
                    {"name": volume2, "mountPath": mount2, "readOnly": true},
                ],
            }],
            "restartPolicy": "Never",
        },
    }))?;
    let want = format!("content of file \"{mount}/data-1\": value-1");
    e2epod::test_container_output(ctx, "consume configMaps", pod, 0, &[&want]).await
}

async fn without_mapping(ctx: Ctx) -> anyhow::Result<()> {
    do_without_mappings(&ctx, Source::Plain, false, 0, None).await
}

async fn without_mapping_default_mode(ctx: Ctx) -> anyhow::Result<()> {
    do_without_mappings(&ctx, Source::Plain, false, 0, Some(0o400)).await
}

async fn without_mapping_non_root(ctx: Ctx) -> anyhow::Result<()> {
    do_without_mappings(&ctx, Source::Plain, true, 0, None).await
}

async fn with_mapping(ctx: Ctx) -> anyhow::Result<()> {
    do_with_mappings(&ctx, Source::Plain, false, 0, None).await
}

async fn with_mapping_item_mode(ctx: Ctx) -> anyhow::Result<()> {
    do_with_mappings(&ctx, Source::Plain, false, 0, Some(0o400)).await
}

async fn with_mapping_non_root(ctx: Ctx) -> anyhow::Result<()> {
    do_with_mappings(&ctx, Source::Plain, true, 0, None).await
}

async fn update(ctx: Ctx) -> anyhow::Result<()> {
    do_update(&ctx, Source::Plain).await
}

async fn optional_updates(ctx: Ctx) -> anyhow::Result<()> {
    do_optional_updates(&ctx, Source::Plain).await
}

async fn multiple_volumes(ctx: Ctx) -> anyhow::Result<()> {
    do_multiple_volumes(&ctx, Source::Plain).await
}

/// A configMap with text and binary data: one container prints the text in a loop, a
/// busybox one hexdumps the binary.
async fn binary_data(ctx: Ctx) -> anyhow::Result<()> {
    let timeout = POD_SECRET_UPDATE_TIMEOUT;
    let retry = format!("--retry_time={}", timeout.as_secs());
    let name = format!("configmap-test-upd-{}", uuid());
    let volume = "configmap-volume";
    let mount = "/etc/configmap-volume";
    let binary_container = "configmap-volume-binary-test";
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ctx.ns.clone()),
            ..Default::default()
        },
        data: Some([("data-1".to_string(), "value-1".to_string())].into()),
        binary_data: Some(
            [(
                "dump.bin".to_string(),
                ByteString(vec![0xde, 0xca, 0xfe, 0xba, 0xd0, 0xfe, 0xff]),
            )]
            .into(),
        ),
        ..Default::default()
    };
    create(&ctx, &cm).await?;
    let mut pod = mounttest_pod(
        Source::Plain,
        volume,
        &name,
        mount,
        &[
            "--break_on_expected_content=false",
            &retry,
            "--file_content_in_loop=/etc/configmap-volume/data-1",
        ],
    )?;
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.containers.push(serde_json::from_value(json!({
        "name": binary_container, "image": busybox_image(),
        "command": ["hexdump", "-C", "/etc/configmap-volume/dump.bin"],
        "volumeMounts": [{"name": volume, "mountPath": mount, "readOnly": true}],
    }))?);
    let api = e2epod::api(&ctx);
    let created = api.create(&PostParams::default(), &pod).await?;
    let pod_name = created.metadata.name.clone().unwrap_or_default();
    e2epod::wait_for_running(&api, &pod_name, e2epod::POD_START_TIMEOUT).await?;
    // Waiting for pod with text data
    e2epod::eventually_log_contains(&api, &pod_name, "agnhost-container", "value-1", timeout)
        .await?;
    // Waiting for pod with binary data
    e2epod::eventually_log_contains(
        &api,
        &pod_name,
        binary_container,
        "de ca fe ba d0 fe ff",
        timeout,
    )
    .await
}
