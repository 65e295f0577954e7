//! Secret volumes: upstream's test/e2e/common/storage/secrets_volume.go; its helpers also
//! make projected_secret.go's tests (see projected.rs).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use super::configmap_volume::Source;
use super::e2epod::{self, Matcher, NON_ROOT_TEST_USER_ID, POD_SECRET_UPDATE_TIMEOUT};
use super::{agnhost_image, test, uuid};
use crate::{Ctx, Test};

const AREA: &str = "Secrets Volume";

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Secrets Volume, default",
            "[sig-storage] Secrets should be consumable from pods in volume [NodeConformance] [Conformance]",
            default
        ),
        test!(
            AREA,
            "Secrets Volume, volume mode 0400",
            "[sig-storage] Secrets should be consumable from pods in volume with defaultMode set [LinuxOnly] [NodeConformance] [Conformance]",
            default_mode
        ),
        test!(
            AREA,
            "Secrets Volume, volume mode 0440, fsGroup 1001 and uid 1000",
            "[sig-storage] Secrets should be consumable from pods in volume as non-root with defaultMode and fsGroup set [LinuxOnly] [NodeConformance] [Conformance]",
            non_root_fs_group
        ),
        test!(
            AREA,
            "Secrets Volume, mapping",
            "[sig-storage] Secrets should be consumable from pods in volume with mappings [NodeConformance] [Conformance]",
            mapping
        ),
        test!(
            AREA,
            "Secrets Volume, mapping, volume mode 0400",
            "[sig-storage] Secrets should be consumable from pods in volume with mappings and Item Mode set [LinuxOnly] [NodeConformance] [Conformance]",
            mapping_item_mode
        ),
        test!(
            AREA,
            "Secrets Volume, volume mode default, secret with same name in different namespace",
            "[sig-storage] Secrets should be able to mount in a volume regardless of a different secret existing with same name in different namespace [NodeConformance] [Conformance]",
            same_name_other_namespace
        ),
        test!(
            AREA,
            "Secrets Volume, mapping multiple volume paths",
            "[sig-storage] Secrets should be consumable in multiple volumes in a pod [NodeConformance] [Conformance]",
            multiple_volumes
        ),
        test!(
            AREA,
            "Secrets Volume, create, update and delete",
            "[sig-storage] Secrets optional updates should be reflected in volume [NodeConformance] [Conformance]",
            optional_updates
        ),
    ]
}

fn secrets(ctx: &Ctx, ns: &str) -> Api<Secret> {
    Api::namespaced(ctx.client.clone(), ns)
}

fn secret(ns: &str, name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    }
}

/// Upstream's `secretForTest`: data-1..3 = "value-1\n".."value-3\n".
fn secret_for_test(ns: &str, name: &str) -> Secret {
    secret(
        ns,
        name,
        &[
            ("data-1", "value-1\n"),
            ("data-2", "value-2\n"),
            ("data-3", "value-3\n"),
        ],
    )
}

async fn create_secret(ctx: &Ctx, s: &Secret) -> anyhow::Result<Secret> {
    let ns = s
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| ctx.ns.clone());
    let name = s.metadata.name.clone().unwrap_or_default();
    secrets(ctx, &ns)
        .create(&PostParams::default(), s)
        .await
        .map_err(|e| anyhow::anyhow!("unable to create test secret {name}: {e}"))
}

/// Upstream's `doSecretE2EWithoutMapping` (`doProjectedSecretE2EWithoutMapping`).
pub(super) async fn do_without_mapping(
    ctx: &Ctx,
    src: Source,
    default_mode: Option<i32>,
    secret_name: &str,
    fs_group: Option<i64>,
    uid: Option<i64>,
) -> anyhow::Result<()> {
    let volume = src.p("secret-volume");
    let mount = format!("/etc/{}", src.p("secret-volume"));
    let file = format!("{mount}/data-1");
    create_secret(ctx, &secret_for_test(&ctx.ns, secret_name)).await?;
    let security_context = if fs_group.is_some() || uid.is_some() {
        json!({"fsGroup": fs_group, "runAsUser": uid})
    } else {
        json!(null)
    };
    let pod = e2epod::pod(json!({
        "metadata": {"name": format!("pod-{}-{}", src.p("secrets"), uuid()), "namespace": ctx.ns},
        "spec": {
            "volumes": [src.volume("secret", &volume, secret_name, json!(null), None, default_mode)],
            "containers": [{
                "name": src.p("secret-volume-test"), "image": agnhost_image(),
                "args": ["mounttest", format!("--file_content={file}"), format!("--file_mode={file}")],
                "volumeMounts": [{"name": volume, "mountPath": mount}],
            }],
            "restartPolicy": "Never",
            "securityContext": security_context,
        },
    }))?;
    let output = [
        regex::escape(&format!("content of file \"{file}\": value-1")),
        e2epod::file_mode_regex(&file, default_mode),
    ];
    let output: Vec<&str> = output.iter().map(String::as_str).collect();
    e2epod::match_container_output(ctx, "consume secrets", pod, 0, &output, Matcher::Regexp).await
}

/// Upstream's `doSecretE2EWithMapping` (`doProjectedSecretE2EWithMapping`, where the mode
/// is the projected volume's defaultMode).
pub(super) async fn do_with_mapping(
    ctx: &Ctx,
    src: Source,
    mode: Option<i32>,
) -> anyhow::Result<()> {
    let name = format!("{}-{}", src.p("secret-test-map"), uuid());
    let volume = src.p("secret-volume");
    let mount = format!("/etc/{}", src.p("secret-volume"));
    let file = format!("{mount}/new-path-data-1");
    create_secret(ctx, &secret_for_test(&ctx.ns, &name)).await?;
    let (item_mode, default_mode) = match src {
        Source::Plain => (mode, None),
        Source::Projected => (None, mode),
    };
    let items = json!([{"key": "data-1", "path": "new-path-data-1", "mode": item_mode}]);
    let pod = e2epod::pod(json!({
        "metadata": {"name": format!("pod-{}-{}", src.p("secrets"), uuid())},
        "spec": {
            "volumes": [src.volume("secret", &volume, &name, items, None, default_mode)],
            "containers": [{
                "name": src.p("secret-volume-test"), "image": agnhost_image(),
                "args": ["mounttest", format!("--file_content={file}"), format!("--file_mode={file}")],
                "volumeMounts": [{"name": volume, "mountPath": mount}],
            }],
            "restartPolicy": "Never",
        },
    }))?;
    let output = [
        regex::escape(&format!("content of file \"{file}\": value-1")),
        e2epod::file_mode_regex(&file, mode),
    ];
    let output: Vec<&str> = output.iter().map(String::as_str).collect();
    e2epod::match_container_output(ctx, "consume secrets", pod, 0, &output, Matcher::Regexp).await
}

/// The "consumable in multiple volumes in a pod" test of either source.
pub(super) async fn do_multiple_volumes(ctx: &Ctx, src: Source) -> anyhow::Result<()> {
    let name = format!("{}-{}", src.p("secret-test"), uuid());
    let (volume, volume2) = (src.p("secret-volume"), src.p("secret-volume-2"));
    let (mount, mount2) = (format!("/etc/{volume}"), format!("/etc/{volume2}"));
    let file = format!("{mount}/data-1");
    create_secret(ctx, &secret_for_test(&ctx.ns, &name)).await?;
    let pod = e2epod::pod(json!({
        "metadata": {"name": format!("pod-{}-{}", src.p("secrets"), uuid())},
        "spec": {
            "volumes": [
                src.volume("secret", &volume, &name, json!(null), None, None),
                src.volume("secret", &volume2, &name, json!(null), None, None),
            ],
            "containers": [{
                "name": "secret-volume-test", "image": agnhost_image(),
                "args": ["mounttest", format!("--file_content={file}"), format!("--file_mode={file}")],
                "volumeMounts": [
                    {"name": volume, "mountPath": mount, "readOnly": true},
                    {"name": volume2, "mountPath": mount2, "readOnly": true},
                ],
            }],
            "restartPolicy": "Never",
        },
    }))?;
    let output = [
        regex::escape(&format!("content of file \"{file}\": value-1")),
        e2epod::file_mode_regex(&file, None),
    ];
    let output: Vec<&str> = output.iter().map(String::as_str).collect();
    e2epod::match_container_output(ctx, "consume secrets", pod, 0, &output, Matcher::Regexp).await
}

/// The "optional updates should be reflected in volume" test of either source: three
/// optional secret volumes, one secret deleted, one updated, one created.
pub(super) async fn do_optional_updates(ctx: &Ctx, src: Source) -> anyhow::Result<()> {
    let timeout = POD_SECRET_UPDATE_TIMEOUT;
    let retry = format!("--retry_time={}", timeout.as_secs());
    let mount = format!("/etc/{}", src.p("secret-volumes"));
    let delete_name = format!("s-test-opt-del-{}", uuid());
    let update_name = format!("s-test-opt-upd-{}", uuid());
    let create_name = format!("s-test-opt-create-{}", uuid());
    let (delete_c, update_c, create_c) = (
        "dels-volume-test",
        "upds-volume-test",
        "creates-volume-test",
    );
    let (delete_v, update_v, create_v) = ("deletes-volume", "updates-volume", "creates-volume");

    create_secret(
        ctx,
        &secret(&ctx.ns, &delete_name, &[("data-1", "value-1")]),
    )
    .await?;
    let mut update_secret = create_secret(
        ctx,
        &secret(&ctx.ns, &update_name, &[("data-1", "value-1")]),
    )
    .await?;

    let container = |name: &str, vol: &str, sub: &str, file: &str| {
        json!({
            "name": name, "image": agnhost_image(),
            "args": ["mounttest", "--break_on_expected_content=false", retry,
                     format!("--file_content_in_loop={mount}/{sub}/{file}")],
            "volumeMounts": [{"name": vol, "mountPath": format!("{mount}/{sub}"), "readOnly": true}],
        })
    };
    let vol = |name: &str, s: &str| src.volume("secret", name, s, json!(null), Some(true), None);
    let pod = e2epod::pod(json!({
        "metadata": {"name": format!("pod-{}-{}", src.p("secrets"), uuid())},
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

    let api_s = secrets(ctx, &ctx.ns);
    api_s
        .delete(&delete_name, &DeleteParams::default())
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "Failed to delete secret {delete_name:?} in namespace {:?}: {e}",
                ctx.ns
            )
        })?;
    update_secret.metadata.resource_version = None;
    let data = update_secret.data.get_or_insert_with(Default::default);
    data.remove("data-1");
    data.insert("data-3".into(), ByteString(b"value-3".to_vec()));
    api_s
        .replace(&update_name, &PostParams::default(), &update_secret)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "Failed to update secret {update_name:?} in namespace {:?}: {e}",
                ctx.ns
            )
        })?;
    create_secret(
        ctx,
        &secret(&ctx.ns, &create_name, &[("data-1", "value-1")]),
    )
    .await?;

    // waiting to observe update in volume
    log(create_c, "value-1".into()).await?;
    log(update_c, "value-3".into()).await?;
    log(
        delete_c,
        format!("Error reading file {mount}/delete/data-1"),
    )
    .await
}

async fn default(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("secret-test-{}", uuid());
    do_without_mapping(&ctx, Source::Plain, None, &name, None, None).await
}

async fn default_mode(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("secret-test-{}", uuid());
    do_without_mapping(&ctx, Source::Plain, Some(0o400), &name, None, None).await
}

pub(super) async fn do_non_root_fs_group(ctx: &Ctx, src: Source) -> anyhow::Result<()> {
    let name = format!("{}-{}", src.p("secret-test"), uuid());
    // setting fsGroup sets mode to at least 440
    do_without_mapping(
        ctx,
        src,
        Some(0o440),
        &name,
        Some(1001),
        Some(NON_ROOT_TEST_USER_ID),
    )
    .await
}

async fn non_root_fs_group(ctx: Ctx) -> anyhow::Result<()> {
    do_non_root_fs_group(&ctx, Source::Plain).await
}

async fn mapping(ctx: Ctx) -> anyhow::Result<()> {
    do_with_mapping(&ctx, Source::Plain, None).await
}

async fn mapping_item_mode(ctx: Ctx) -> anyhow::Result<()> {
    do_with_mapping(&ctx, Source::Plain, Some(0o400)).await
}

async fn multiple_volumes(ctx: Ctx) -> anyhow::Result<()> {
    do_multiple_volumes(&ctx, Source::Plain).await
}

async fn optional_updates(ctx: Ctx) -> anyhow::Result<()> {
    do_optional_updates(&ctx, Source::Plain).await
}

/// Upstream's `f.CreateNamespace("secret-namespace")`: a second namespace (deleted at the
/// end), holding a secret of the same name but other data.
async fn same_name_other_namespace(ctx: Ctx) -> anyhow::Result<()> {
    let secret2_name = format!("secret-test-{}", uuid());
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let ns2_name = format!("e2e-secret-namespace-{}", crate::random_lowercase(5));
    let ns2: Namespace = serde_json::from_value(json!({
        "metadata": {"name": ns2_name, "labels": {"e2e-framework": "secret-namespace", "e2e-run": "rkube-conformance"}}
    }))?;
    namespaces
        .create(&PostParams::default(), &ns2)
        .await
        .map_err(|e| anyhow::anyhow!("unable to create new namespace {ns2_name}: {e}"))?;
    let r = async {
        let mut secret2 = secret(&ns2_name, &secret2_name, &[]);
        secret2.data = Some(
            [(
                "this_should_not_match_content_of_other_secret".to_string(),
                ByteString(b"similarly_this_should_not_match_content_of_other_secret\n".to_vec()),
            )]
            .into(),
        );
        create_secret(&ctx, &secret2).await?;
        do_without_mapping(&ctx, Source::Plain, None, &secret2_name, None, None).await
    }
    .await;
    let _ = namespaces.delete(&ns2_name, &DeleteParams::default()).await;
    r
}
