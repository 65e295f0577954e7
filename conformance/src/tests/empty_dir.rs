//! EmptyDir: the conformance tests of upstream's test/e2e/common/storage/empty_dir.go
//! (EmptyDir volumes) and test/e2e/storage/empty_dir_wrapper.go (EmptyDir wrapper volumes).

use std::time::Duration;

use anyhow::{ensure, Context};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use super::e2epod::{self, POD_START_TIMEOUT};
use super::{agnhost_image, busybox_image, test, uuid};
use crate::{Ctx, Test};

const AREA: &str = "EmptyDir";

/// Upstream's `volumePath`, `containerName`, `volumeName` and `nonRootUID`.
const VOLUME_PATH: &str = "/test-volume";
const CONTAINER_NAME: &str = "test-container";
const VOLUME_NAME: &str = "test-volume";
const NON_ROOT_UID: i64 = 1001;

/// `e2epod.InfiniteSleepCommand`.
const INFINITE_SLEEP: &str = "trap exit TERM; while true; do sleep 1; done";

#[derive(Clone, Copy, PartialEq)]
enum Medium {
    Default,
    Memory,
}

macro_rules! mode_test {
    ($f:ident, $perm:expr, $uid:expr, $medium:expr) => {
        async fn $f(ctx: Ctx) -> anyhow::Result<()> {
            do_test_file(&ctx, $perm, $uid, $medium).await
        }
    };
}

mode_test!(root_0644_tmpfs, "0644", 0, Medium::Memory);
mode_test!(root_0666_tmpfs, "0666", 0, Medium::Memory);
mode_test!(root_0777_tmpfs, "0777", 0, Medium::Memory);
mode_test!(non_root_0644_tmpfs, "0644", NON_ROOT_UID, Medium::Memory);
mode_test!(non_root_0666_tmpfs, "0666", NON_ROOT_UID, Medium::Memory);
mode_test!(non_root_0777_tmpfs, "0777", NON_ROOT_UID, Medium::Memory);
mode_test!(root_0644_default, "0644", 0, Medium::Default);
mode_test!(root_0666_default, "0666", 0, Medium::Default);
mode_test!(root_0777_default, "0777", 0, Medium::Default);
mode_test!(non_root_0644_default, "0644", NON_ROOT_UID, Medium::Default);
mode_test!(non_root_0666_default, "0666", NON_ROOT_UID, Medium::Default);
mode_test!(non_root_0777_default, "0777", NON_ROOT_UID, Medium::Default);

async fn volume_mode_tmpfs(ctx: Ctx) -> anyhow::Result<()> {
    do_test_volume_mode(&ctx, 0, Medium::Memory).await
}

async fn volume_mode_default(ctx: Ctx) -> anyhow::Result<()> {
    do_test_volume_mode(&ctx, 0, Medium::Default).await
}

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "EmptyDir, medium memory, volume mode default",
            "[sig-storage] EmptyDir volumes volume on tmpfs should have the correct mode [LinuxOnly] [NodeConformance] [Conformance]",
            volume_mode_tmpfs
        ),
        test!(
            AREA,
            "EmptyDir, medium memory, volume mode 0644",
            "[sig-storage] EmptyDir volumes should support (root,0644,tmpfs) [LinuxOnly] [NodeConformance] [Conformance]",
            root_0644_tmpfs
        ),
        test!(
            AREA,
            "EmptyDir, medium memory, volume mode 0666",
            "[sig-storage] EmptyDir volumes should support (root,0666,tmpfs) [LinuxOnly] [NodeConformance] [Conformance]",
            root_0666_tmpfs
        ),
        test!(
            AREA,
            "EmptyDir, medium memory, volume mode 0777",
            "[sig-storage] EmptyDir volumes should support (root,0777,tmpfs) [LinuxOnly] [NodeConformance] [Conformance]",
            root_0777_tmpfs
        ),
        test!(
            AREA,
            "EmptyDir, medium memory, volume mode 0644, non-root user",
            "[sig-storage] EmptyDir volumes should support (non-root,0644,tmpfs) [LinuxOnly] [NodeConformance] [Conformance]",
            non_root_0644_tmpfs
        ),
        test!(
            AREA,
            "EmptyDir, medium memory, volume mode 0666,, non-root user",
            "[sig-storage] EmptyDir volumes should support (non-root,0666,tmpfs) [LinuxOnly] [NodeConformance] [Conformance]",
            non_root_0666_tmpfs
        ),
        test!(
            AREA,
            "EmptyDir, medium memory, volume mode 0777, non-root user",
            "[sig-storage] EmptyDir volumes should support (non-root,0777,tmpfs) [LinuxOnly] [NodeConformance] [Conformance]",
            non_root_0777_tmpfs
        ),
        test!(
            AREA,
            "EmptyDir, medium default, volume mode default",
            "[sig-storage] EmptyDir volumes volume on default medium should have the correct mode [LinuxOnly] [NodeConformance] [Conformance]",
            volume_mode_default
        ),
        test!(
            AREA,
            "EmptyDir, medium default, volume mode 0644",
            "[sig-storage] EmptyDir volumes should support (root,0644,default) [LinuxOnly] [NodeConformance] [Conformance]",
            root_0644_default
        ),
        test!(
            AREA,
            "EmptyDir, medium default, volume mode 0666",
            "[sig-storage] EmptyDir volumes should support (root,0666,default) [LinuxOnly] [NodeConformance] [Conformance]",
            root_0666_default
        ),
        test!(
            AREA,
            "EmptyDir, medium default, volume mode 0777",
            "[sig-storage] EmptyDir volumes should support (root,0777,default) [LinuxOnly] [NodeConformance] [Conformance]",
            root_0777_default
        ),
        test!(
            AREA,
            "EmptyDir, medium default, volume mode 0644",
            "[sig-storage] EmptyDir volumes should support (non-root,0644,default) [LinuxOnly] [NodeConformance] [Conformance]",
            non_root_0644_default
        ),
        test!(
            AREA,
            "EmptyDir, medium default, volume mode 0666",
            "[sig-storage] EmptyDir volumes should support (non-root,0666,default) [LinuxOnly] [NodeConformance] [Conformance]",
            non_root_0666_default
        ),
        test!(
            AREA,
            "EmptyDir, medium default, volume mode 0777",
            "[sig-storage] EmptyDir volumes should support (non-root,0777,default) [LinuxOnly] [NodeConformance] [Conformance]",
            non_root_0777_default
        ),
        test!(
            AREA,
            "EmptyDir, Shared volumes between containers",
            "[sig-storage] EmptyDir volumes pod should support shared volumes between containers [Conformance]",
            shared_volumes
        ),
        test!(
            AREA,
            "EmptyDir Wrapper Volume, Secret and ConfigMap volumes, no conflict",
            "[sig-storage] EmptyDir wrapper volumes should not conflict [Conformance]",
            wrapper_no_conflict
        ),
    ]
}

fn format_medium(medium: Medium) -> &'static str {
    match medium {
        Medium::Memory => "tmpfs",
        Medium::Default => "node default medium",
    }
}

/// Upstream's `testPodWithVolume`: agnhost (its args set by the caller) with an emptyDir
/// of `medium` at `path`, run as `uid` unless 0 (the image's user, root).
fn test_pod_with_volume(
    uid: i64,
    path: &str,
    medium: Medium,
    args: Vec<String>,
) -> anyhow::Result<Pod> {
    let source = match medium {
        Medium::Memory => json!({"medium": "Memory"}),
        Medium::Default => json!({}),
    };
    let mut sc = json!({"seLinuxOptions": {"level": "s0"}});
    if uid != 0 {
        sc["runAsUser"] = json!(uid);
    }
    e2epod::pod(json!({
        "metadata": {"name": format!("pod-{}", uuid())},
        "spec": {
            "containers": [{
                "name": CONTAINER_NAME,
                "image": agnhost_image(),
                "args": args,
                "volumeMounts": [{"name": VOLUME_NAME, "mountPath": path}],
            }],
            "securityContext": sc,
            "restartPolicy": "Never",
            "volumes": [{"name": VOLUME_NAME, "emptyDir": source}],
        },
    }))
}

/// Upstream's `doTest0644`, `doTest0666` and `doTest0777`: mounttest creates a file of
/// mode `perm` in the volume and reads back its mode and content (and the volume's mount
/// type when it is tmpfs).
async fn do_test_file(ctx: &Ctx, perm: &str, uid: i64, medium: Medium) -> anyhow::Result<()> {
    let file_path = format!("{VOLUME_PATH}/test-file");
    let p = test_pod_with_volume(
        uid,
        VOLUME_PATH,
        medium,
        vec![
            "mounttest".into(),
            format!("--fs_type={VOLUME_PATH}"),
            format!("--new_file_{perm}={file_path}"),
            format!("--file_perm={file_path}"),
        ],
    )?;
    let perms = match perm {
        "0644" => "-rw-r--r--",
        "0666" => "-rw-rw-rw-",
        _ => "-rwxrwxrwx",
    };
    let mut out = vec![
        format!("perms of file \"/test-volume/test-file\": {perms}"),
        "content of file \"/test-volume/test-file\": mount-tester new file".to_string(),
    ];
    if medium == Medium::Memory {
        out.push("mount type of \"/test-volume\": tmpfs".into());
    }
    let msg = format!("emptydir {perm} on {}", format_medium(medium));
    let out: Vec<&str> = out.iter().map(String::as_str).collect();
    e2epod::test_container_output(ctx, &msg, p, 0, &out).await
}

/// Upstream's `doTestVolumeMode`: the volume's directory is rwxrwxrwx (and tmpfs when it
/// is memory-backed).
async fn do_test_volume_mode(ctx: &Ctx, uid: i64, medium: Medium) -> anyhow::Result<()> {
    let p = test_pod_with_volume(
        uid,
        VOLUME_PATH,
        medium,
        vec![
            "mounttest".into(),
            format!("--fs_type={VOLUME_PATH}"),
            format!("--file_perm={VOLUME_PATH}"),
        ],
    )?;
    let mut out = vec!["perms of file \"/test-volume\": -rwxrwxrwx"];
    if medium == Medium::Memory {
        out.push("mount type of \"/test-volume\": tmpfs");
    }
    let msg = format!("emptydir volume type on {}", format_medium(medium));
    e2epod::test_container_output(ctx, &msg, p, 0, &out).await
}

/// Two busybox containers share an emptyDir: the file the sub container writes is what
/// the main container reads.
async fn shared_volumes(ctx: Ctx) -> anyhow::Result<()> {
    let volume_name = "shared-data";
    let main_mount = "/usr/share/volumeshare";
    let sub_mount = "/pod-data";
    let main_file = format!("{main_mount}/shareddata.txt");
    let sub_file = format!("{sub_mount}/shareddata.txt");
    let message = "Hello from the busy-box sub-container";
    let main_name = "busybox-main-container";
    let sub_name = "busybox-sub-container";
    let name = format!("pod-sharedvolume-{}", uuid());
    let p = e2epod::pod(json!({
        "metadata": {"name": name},
        "spec": {
            "volumes": [{"name": volume_name, "emptyDir": {}}],
            "containers": [
                {
                    "name": main_name, "image": busybox_image(),
                    "command": ["/bin/sh"], "args": ["-c", INFINITE_SLEEP],
                    "volumeMounts": [{"name": volume_name, "mountPath": main_mount}],
                },
                {
                    "name": sub_name, "image": busybox_image(),
                    "command": ["/bin/sh"], "args": ["-c", format!("echo {message} > {sub_file}")],
                    "volumeMounts": [{"name": volume_name, "mountPath": sub_mount}],
                },
            ],
            "terminationGracePeriodSeconds": 0,
            "restartPolicy": "Never",
        },
    }))?;
    let api = e2epod::api(&ctx);
    // Creating Pod
    api.create(&PostParams::default(), &p)
        .await
        .context("creating the pod")?;
    e2epod::wait_for_running(&api, &name, POD_START_TIMEOUT).await?;
    // Reading file content from the main container (`ExecShellInContainer`)
    let result = e2epod::exec(
        &api,
        &name,
        main_name,
        &["/bin/sh", "-c", &format!("cat {main_file}")],
    )
    .await?;
    ensure!(
        result == message,
        "failed to match expected string {message:?} with {result:?}"
    );
    Ok(())
}

/// empty_dir_wrapper.go's "should not conflict": a pod with a secret volume and a
/// configMap volume (both emptyDir-wrapped in the kubelet) runs; then the secret, the
/// configMap and the pod are deleted.
async fn wrapper_no_conflict(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("emptydir-wrapper-test-{}", uuid());
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    // "value-1\n", base64.
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"namespace": ctx.ns, "name": name},
        "data": {"data-1": "dmFsdWUtMQo="},
    }))?;
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .with_context(|| format!("unable to create test secret {name}"))?;
    let configmap: ConfigMap = serde_json::from_value(json!({
        "metadata": {"namespace": ctx.ns, "name": name},
        "binaryData": {"data-1": "dmFsdWUtMQo="},
    }))?;
    configmaps
        .create(&PostParams::default(), &configmap)
        .await
        .with_context(|| format!("unable to create test configMap {name}"))?;
    let pod_name = format!("pod-secrets-{}", uuid());
    let p = e2epod::pod(json!({
        "metadata": {"name": pod_name},
        "spec": {
            "volumes": [
                {"name": "secret-volume", "secret": {"secretName": name}},
                {"name": "configmap-volume", "configMap": {"name": name}},
            ],
            "containers": [{
                "name": "secret-test",
                "image": agnhost_image(),
                "args": ["test-webserver"],
                "volumeMounts": [
                    {"name": "secret-volume", "mountPath": "/etc/secret-volume", "readOnly": true},
                    {"name": "configmap-volume", "mountPath": "/etc/configmap-volume"},
                ],
            }],
        },
    }))?;
    let api = e2epod::api(&ctx);
    e2epod::create_sync(&api, &p).await?;
    // DeferCleanup: the secret, the configmap and the pod (grace period 0).
    secrets
        .delete(&name, &DeleteParams::default())
        .await
        .with_context(|| format!("unable to delete secret {name}"))?;
    configmaps
        .delete(&name, &DeleteParams::default())
        .await
        .with_context(|| format!("unable to delete configmap {name}"))?;
    api.delete(&pod_name, &DeleteParams::default().grace_period(0))
        .await
        .with_context(|| format!("unable to delete pod {pod_name}"))?;
    Ok(())
}

// --- EmptyDir wrapper volumes, race ------------------------------------------------------

/// Upstream's `wrappedVolumeRaceConfigMapVolumeCount`, `...PodCount`, `...IterationCount`
/// and `wrappedVolumeRaceRCNamePrefix`.
const RACE_CONFIGMAP_VOLUME_COUNT: usize = 50;
const RACE_CONFIGMAP_POD_COUNT: usize = 5;
const RACE_CONFIGMAP_ITERATION_COUNT: usize = 3;
const RACE_RC_NAME_PREFIX: &str = "wrapped-volume-race-";

pub fn serial_tests() -> Vec<Test> {
    vec![test!(
        AREA,
        "EmptyDir Wrapper Volume, ConfigMap volumes, no race",
        "[sig-storage] EmptyDir wrapper volumes should not cause race condition when used for configmaps [Serial] [Conformance]",
        wrapper_no_race,
        timeout = Duration::from_secs(2700)
    )]
}

/// 50 configMaps mounted in each of 5 pods of an RC on one node, 3 times: every pod runs.
async fn wrapper_no_race(ctx: Ctx) -> anyhow::Result<()> {
    let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    // createConfigmapsForRace
    let mut names = Vec::new();
    for i in 0..RACE_CONFIGMAP_VOLUME_COUNT {
        let name = format!("racey-configmap-{i}");
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"namespace": ctx.ns, "name": name},
            "data": {"data-1": "value-1"},
        }))?;
        configmaps.create(&PostParams::default(), &cm).await?;
        names.push(name);
    }
    // makeConfigMapVolumes
    let volumes: Vec<serde_json::Value> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({"name": format!("racey-configmap-{i}"), "configMap": {
                "name": n, "items": [{"key": "data-1", "path": "data-1"}],
            }})
        })
        .collect();
    let mounts: Vec<serde_json::Value> = (0..names.len())
        .map(|i| json!({"name": format!("racey-configmap-{i}"), "mountPath": format!("/etc/config-{i}")}))
        .collect();
    let mut r = Ok(());
    for _ in 0..RACE_CONFIGMAP_ITERATION_COUNT {
        r = test_no_wrapped_volume_race(&ctx, &volumes, &mounts).await;
        if r.is_err() {
            break;
        }
    }
    // DeferCleanup(deleteConfigMaps)
    for n in &names {
        configmaps
            .delete(n, &DeleteParams::default())
            .await
            .with_context(|| format!("unable to delete configMap {n}"))?;
    }
    r
}

/// Upstream's `testNoWrappedVolumeRace`: an RC of 5 pause pods with the volumes, pinned
/// (node affinity on kubernetes.io/hostname) to a ready node; every pod must run; then
/// the RC is deleted and its pods waited away (`DeleteRCAndWaitForGC`).
async fn test_no_wrapped_volume_race(
    ctx: &Ctx,
    volumes: &[serde_json::Value],
    mounts: &[serde_json::Value],
) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::{Node, ReplicationController};
    let rc_name = format!("{RACE_RC_NAME_PREFIX}{}", uuid());
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let target = nodes
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .find(|n| {
            let ready = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let spec = n.spec.clone().unwrap_or_default();
            let tainted = spec
                .taints
                .iter()
                .flatten()
                .any(|t| t.effect == "NoSchedule" || t.effect == "NoExecute");
            ready && !spec.unschedulable.unwrap_or(false) && !tainted
        })
        .context("no ready schedulable node")?;
    let hostname = target
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("kubernetes.io/hostname").cloned())
        .unwrap_or_default();
    // Creating RC which spawns configmap-volume pods
    let rc: ReplicationController = serde_json::from_value(json!({
        "metadata": {"name": rc_name},
        "spec": {
            "replicas": RACE_CONFIGMAP_POD_COUNT,
            "selector": {"name": rc_name},
            "template": {
                "metadata": {"labels": {"name": rc_name}},
                "spec": {
                    "containers": [{
                        "name": "test-container",
                        "image": super::pause_image(),
                        "volumeMounts": mounts,
                    }],
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In", "values": [hostname]}
                        ]}],
                    }}},
                    "dnsPolicy": "Default",
                    "volumes": volumes,
                },
            },
        },
    }))?;
    let rcs: Api<ReplicationController> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    rcs.create(&PostParams::default(), &rc)
        .await
        .context("error creating replication controller")?;
    let api = e2epod::api(ctx);
    let r = async {
        let pods =
            super::replication_controller::pods_created(&api, &rc_name, RACE_CONFIGMAP_POD_COUNT)
                .await
                .context("error creating pods")?;
        // Ensuring each pod is running
        for p in pods {
            if p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let name = p.metadata.name.unwrap_or_default();
            e2epod::wait_for_running(&api, &name, POD_START_TIMEOUT)
                .await
                .with_context(|| format!("Failed waiting for pod {name} to enter running state"))?;
        }
        anyhow::Ok(())
    }
    .await;
    // DeleteRCAndWaitForGC: the RC deleted (background propagation), its pods gone.
    rcs.delete(
        &rc_name,
        &DeleteParams {
            propagation_policy: Some(kube::api::PropagationPolicy::Background),
            ..Default::default()
        },
    )
    .await
    .context("deleting the replication controller")?;
    let lp = kube::api::ListParams::default().labels(&format!("name={rc_name}"));
    let gone = e2epod::eventually(
        std::time::Duration::from_secs(10 * 60),
        std::time::Duration::from_secs(2),
        &format!("the pods of {rc_name} to be gone"),
        || async {
            let n = api.list(&lp).await.map_err(|e| e.to_string())?.items.len();
            if n == 0 {
                Ok(())
            } else {
                Err(format!("{n} pods left"))
            }
        },
    )
    .await;
    r?;
    gone
}
