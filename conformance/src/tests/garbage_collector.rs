//! Garbage collector: upstream's test/e2e/apimachinery/garbage_collector.go (its
//! ReplicationController and Pod tests; the Deployment, CronJob and custom-resource ones
//! use APIs rkube does not serve).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::{Node, Pod, ReplicationController};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;

use super::{pause_image, test};
use crate::{Ctx, Test};

const AREA: &str = "Garbage collector";

/// Upstream's `gcInformerResyncRetryTimeout`.
const GC_RESYNC: Duration = Duration::from_secs(60);
/// Upstream's `replicaSyncTimeout`.
const REPLICA_SYNC: Duration = Duration::from_secs(120);
/// Upstream's `framework.Poll`.
const POLL: Duration = Duration::from_secs(2);

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Garbage Collector, delete replication controller, propagation policy background",
            "[sig-api-machinery] Garbage collector should delete pods created by rc when not orphaning [Conformance]",
            delete_pods_background
        ),
        test!(
            AREA,
            "Garbage Collector, delete replication controller, propagation policy orphan",
            "[sig-api-machinery] Garbage collector should orphan pods created by rc if delete options say so [Conformance]",
            orphan_pods
        ),
        test!(
            AREA,
            "Garbage Collector, delete replication controller, after owned pods",
            "[sig-api-machinery] Garbage collector should keep the rc around until all its pods are deleted if the deleteOptions says so [Conformance]",
            foreground
        ),
        test!(
            AREA,
            "Garbage Collector, multiple owners",
            "[sig-api-machinery] Garbage collector should not delete dependents that have both valid owner and owner that's waiting for dependents to be deleted [Conformance]",
            multiple_owners
        ),
        test!(
            AREA,
            "Garbage Collector, dependency cycle",
            "[sig-api-machinery] Garbage collector should not be blocked by dependency circle [Conformance]",
            dependency_cycle
        ),
    ]
}

static LABEL_COUNT: AtomicU64 = AtomicU64::new(0);

/// Upstream's `getUniqLabel`.
fn uniq_label(key: &str, value: &str) -> BTreeMap<String, String> {
    let n = LABEL_COUNT.fetch_add(1, Ordering::Relaxed) + 1;
    [(format!("{key}-{n:05}"), format!("{value}-{n:05}"))].into()
}

/// Upstream's `newOwnerRC` (its nginx container: the pause image here).
fn new_owner_rc(
    name: &str,
    replicas: i32,
    labels: &BTreeMap<String, String>,
) -> anyhow::Result<ReplicationController> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": labels,
            "template": {
                "metadata": {"labels": labels},
                "spec": {"terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "nginx", "image": pause_image()}]},
            },
        },
    }))?)
}

/// Upstream's `newGCPod`.
fn new_gc_pod(name: &str) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "nginx", "image": pause_image()}]},
    }))?)
}

/// Upstream's `estimateMaximumPods`: half the ready schedulable nodes' allocatable pods
/// (10 for a node without), within `[min, max]`.
async fn estimate_maximum_pods(ctx: &Ctx, min: i32, max: i32) -> anyhow::Result<i32> {
    let nodes = Api::<Node>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?;
    let mut available = 0i64;
    for n in &nodes.items {
        let schedulable = !n
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        let ready = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if !(schedulable && ready) {
            continue;
        }
        let pods = n
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .and_then(|a| a.get("pods"))
            .and_then(|q| q.0.parse::<i64>().ok());
        available += pods.unwrap_or(10);
    }
    let available = (available as f32 * 0.5) as i64;
    Ok(available.clamp(min as i64, max as i64) as i32)
}

fn uid_preconditions(uid: Option<&String>) -> DeleteParams {
    DeleteParams {
        preconditions: Some(Preconditions {
            uid: uid.cloned(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    }
}

/// Polls `f` every `interval` for at most `timeout` (as `wait.Poll`, first call after
/// `interval`): `Ok(true)` ends it, an `Err` fails it.
async fn poll<F, Fut>(interval: Duration, timeout: Duration, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        tokio::time::sleep(interval).await;
        if f().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() + interval > deadline {
            bail!("timed out after {timeout:?}");
        }
    }
}

/// Upstream's `waitForReplicas`: the rc's status.replicas reaches its spec.replicas.
async fn wait_for_replicas(
    rcs: &Api<ReplicationController>,
    rc: &ReplicationController,
) -> anyhow::Result<()> {
    let name = rc.metadata.name.clone().unwrap_or_default();
    let want = rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let last = std::sync::Mutex::new(None);
    let r = poll(POLL, REPLICA_SYNC, || {
        let (rcs, name, last) = (rcs.clone(), name.clone(), &last);
        async move {
            let got = rcs.get(&name).await?;
            let n = got.status.as_ref().map_or(0, |s| s.replicas);
            *last.lock().expect("lock") = Some(n);
            Ok(n == want)
        }
    })
    .await;
    let last = *last.lock().expect("lock");
    r.with_context(|| {
        format!("failed to wait for the rc.Status.Replicas ({last:?}) to reach rc.Spec.Replicas ({want})")
    })
}

async fn counts(ctx: &Ctx) -> anyhow::Result<(usize, usize)> {
    let rcs = Api::<ReplicationController>::namespaced(ctx.client.clone(), &ctx.ns)
        .list(&ListParams::default())
        .await
        .context("failed to list replication controllers")?;
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &ctx.ns)
        .list(&ListParams::default())
        .await
        .context("failed to list pods")?;
    Ok((rcs.items.len(), pods.items.len()))
}

fn pod_names(pods: &[Pod]) -> Vec<String> {
    pods.iter()
        .map(|p| {
            format!(
                "{} (deletionTimestamp {:?}, owners {:?})",
                p.metadata.name.as_deref().unwrap_or(""),
                p.metadata.deletion_timestamp,
                p.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .map(|o| o.name.clone())
                    .collect::<Vec<_>>()
            )
        })
        .collect()
}

async fn delete_pods_background(ctx: Ctx) -> anyhow::Result<()> {
    let rcs: Api<ReplicationController> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let labels = uniq_label("gctest", "delete_pods");
    let rc = rcs
        .create(
            &PostParams::default(),
            &new_owner_rc("simpletest.rc", 2, &labels)?,
        )
        .await
        .context("Failed to create replication controller")?;
    // Some pods, not necessarily all: the rc may be deleted before it reaches stasis.
    poll(Duration::from_secs(5), Duration::from_secs(30), || {
        let pods = pods.clone();
        async move { Ok(!pods.list(&ListParams::default()).await?.items.is_empty()) }
    })
    .await
    .context("failed to wait for the rc to create some pods")?;
    let dp = DeleteParams {
        propagation_policy: Some(kube::api::PropagationPolicy::Background),
        ..uid_preconditions(rc.metadata.uid.as_ref())
    };
    rcs.delete("simpletest.rc", &dp)
        .await
        .context("failed to delete the rc")?;
    let last = std::sync::Mutex::new((0, 0));
    let r = poll(
        Duration::from_secs(5),
        Duration::from_secs(60) + GC_RESYNC,
        || {
            let (ctx, last) = (&ctx, &last);
            async move {
                let c = counts(ctx).await?;
                *last.lock().expect("lock") = c;
                Ok(c == (0, 0))
            }
        },
    )
    .await;
    let last = *last.lock().expect("lock");
    if let Err(e) = r {
        let left = pods.list(&ListParams::default()).await?;
        bail!(
            "failed to wait for all pods to be deleted: {e:#} ({} RCs, {} pods); remaining pods are: {:?}",
            last.0,
            last.1,
            pod_names(&left.items)
        );
    }
    Ok(())
}

async fn orphan_pods(ctx: Ctx) -> anyhow::Result<()> {
    let rcs: Api<ReplicationController> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let labels = uniq_label("gctest", "orphan_pods");
    let replicas = estimate_maximum_pods(&ctx, 10, 100).await?;
    let rc = rcs
        .create(
            &PostParams::default(),
            &new_owner_rc("simpletest.rc", replicas, &labels)?,
        )
        .await
        .context("Failed to create replication controller")?;
    wait_for_replicas(&rcs, &rc).await?;
    let dp = DeleteParams {
        propagation_policy: Some(kube::api::PropagationPolicy::Orphan),
        ..uid_preconditions(rc.metadata.uid.as_ref())
    };
    rcs.delete("simpletest.rc", &dp)
        .await
        .context("failed to delete the rc")?;
    poll(
        Duration::from_secs(5),
        Duration::from_secs(120) + GC_RESYNC,
        || {
            let rcs = rcs.clone();
            async move { Ok(rcs.list(&ListParams::default()).await?.items.is_empty()) }
        },
    )
    .await
    .context("waiting for the rc to be deleted")?;
    // Whether the garbage collector mistakenly deletes the pods.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let left = pods
        .list(&ListParams::default())
        .await
        .context("Failed to list pods")?;
    if left.items.len() != replicas as usize {
        bail!("expect {replicas} pods, got {} pods", left.items.len());
    }
    delete_all_now(&pods, &left.items).await;
    Ok(())
}

/// Upstream's `e2epod.DeletePodsWithGracePeriod(pods, 0)` (failures only logged there).
async fn delete_all_now(pods: &Api<Pod>, items: &[Pod]) {
    for p in items {
        if let Some(n) = &p.metadata.name {
            let _ = pods
                .delete(n, &DeleteParams::default().grace_period(0))
                .await;
        }
    }
}

/// Polls until the rc `name` is gone (NotFound); the pods left make the error.
async fn wait_rc_gone(
    rcs: &Api<ReplicationController>,
    pods: &Api<Pod>,
    name: &str,
    interval: Duration,
    timeout: Duration,
) -> anyhow::Result<()> {
    let r = poll(interval, timeout, || {
        let rcs = rcs.clone();
        async move {
            match rcs.get(name).await {
                Ok(_) => Ok(false),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(true),
                Err(e) => Err(e.into()),
            }
        }
    })
    .await;
    if let Err(e) = r {
        let left = pods.list(&ListParams::default()).await?;
        bail!(
            "failed to delete the rc {name}: {e:#}; {} remaining pods: {:?}",
            left.items.len(),
            pod_names(&left.items)
        );
    }
    Ok(())
}

async fn foreground(ctx: Ctx) -> anyhow::Result<()> {
    let rcs: Api<ReplicationController> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let labels = uniq_label("gctest", "delete_pods_foreground");
    let replicas = estimate_maximum_pods(&ctx, 10, 100).await?;
    let rc = rcs
        .create(
            &PostParams::default(),
            &new_owner_rc("simpletest.rc", replicas, &labels)?,
        )
        .await
        .context("Failed to create replication controller")?;
    wait_for_replicas(&rcs, &rc).await?;
    let dp = DeleteParams {
        propagation_policy: Some(kube::api::PropagationPolicy::Foreground),
        ..uid_preconditions(rc.metadata.uid.as_ref())
    };
    rcs.delete("simpletest.rc", &dp)
        .await
        .context("failed to delete the rc")?;
    wait_rc_gone(
        &rcs,
        &pods,
        "simpletest.rc",
        Duration::from_secs(1),
        Duration::from_secs(30) + GC_RESYNC,
    )
    .await?;
    let left = pods.list(&ListParams::default()).await?;
    if !left.items.is_empty() {
        bail!("expected no pods, got {:?}", pod_names(&left.items));
    }
    Ok(())
}

async fn multiple_owners(ctx: Ctx) -> anyhow::Result<()> {
    let rcs: Api<ReplicationController> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let rc1_name = "simpletest-rc-to-be-deleted";
    let replicas = estimate_maximum_pods(&ctx, 10, 100).await?;
    let half = (replicas / 2) as usize;
    let labels_deleted = uniq_label("gctest_d", "valid_and_pending_owners_d");
    let rc1 = rcs
        .create(
            &PostParams::default(),
            &new_owner_rc(rc1_name, replicas, &labels_deleted)?,
        )
        .await
        .context("Failed to create replication controller")?;
    let rc2_name = "simpletest-rc-to-stay";
    let labels_stay = uniq_label("gctest_s", "valid_and_pending_owners_s");
    let rc2 = rcs
        .create(
            &PostParams::default(),
            &new_owner_rc(rc2_name, 0, &labels_stay)?,
        )
        .await
        .context("Failed to create replication controller")?;
    wait_for_replicas(&rcs, &rc1).await?;

    let list = pods
        .list(&ListParams::default())
        .await
        .with_context(|| format!("failed to list pods in namespace: {}", ctx.ns))?;
    let patch = json!({"metadata": {"ownerReferences": [{"apiVersion": "v1",
        "kind": "ReplicationController", "name": rc2_name, "uid": rc2.metadata.uid}]}});
    for p in list.items.iter().take(half) {
        let name = p.metadata.name.as_deref().unwrap_or("");
        pods.patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .with_context(|| {
                format!(
                    "failed to apply to pod {name} in namespace {}, a strategic merge patch: {patch}",
                    ctx.ns
                )
            })?;
    }

    let dp = DeleteParams {
        propagation_policy: Some(kube::api::PropagationPolicy::Foreground),
        ..uid_preconditions(rc1.metadata.uid.as_ref())
    };
    rcs.delete(rc1_name, &dp)
        .await
        .context("failed to delete the rc")?;
    wait_rc_gone(
        &rcs,
        &pods,
        rc1_name,
        Duration::from_secs(5),
        Duration::from_secs(90),
    )
    .await?;
    // Half of the pods stay, each with rc2 as its only owner.
    let left = pods.list(&ListParams::default()).await?;
    if left.items.len() != half {
        bail!(
            "expected {half} pods, got {}: {:?}",
            left.items.len(),
            pod_names(&left.items)
        );
    }
    for p in &left.items {
        if p.metadata.deletion_timestamp.is_some() {
            bail!(
                "expected pod DeletionTimestamp to be nil, got {:?}",
                p.metadata
            );
        }
        let owners = p.metadata.owner_references.as_deref().unwrap_or_default();
        if owners.len() != 1 {
            bail!("expected pod to only have 1 owner, got {owners:?}");
        }
    }
    delete_all_now(&pods, &left.items).await;
    Ok(())
}

async fn dependency_cycle(ctx: Ctx) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let mut created = Vec::new();
    for name in ["pod1", "pod2", "pod3"] {
        let p = pods
            .create(&PostParams::default(), &new_gc_pod(name)?)
            .await
            .with_context(|| format!("failed to create pod {name} in namespace: {}", ctx.ns))?;
        created.push(p);
    }
    let add_ref = |p: &Pod| {
        json!({"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "Pod",
            "name": p.metadata.name, "uid": p.metadata.uid,
            "controller": true, "blockOwnerDeletion": true}]}})
    };
    // pod1 is owned by pod3, pod2 by pod1, pod3 by pod2.
    let pod1 = pods
        .patch(
            "pod1",
            &PatchParams::default(),
            &Patch::Strategic(add_ref(&created[2])),
        )
        .await
        .context("failed to patch pod1")?;
    let pod2 = pods
        .patch(
            "pod2",
            &PatchParams::default(),
            &Patch::Strategic(add_ref(&pod1)),
        )
        .await
        .context("failed to patch pod2")?;
    pods.patch(
        "pod3",
        &PatchParams::default(),
        &Patch::Strategic(add_ref(&pod2)),
    )
    .await
    .context("failed to patch pod3")?;
    let dp = DeleteParams {
        propagation_policy: Some(kube::api::PropagationPolicy::Foreground),
        ..uid_preconditions(pod1.metadata.uid.as_ref())
    };
    pods.delete("pod1", &dp)
        .await
        .with_context(|| format!("failed to delete pod pod1 in namespace: {}", ctx.ns))?;
    let last = std::sync::Mutex::new(Vec::new());
    let r = poll(
        Duration::from_secs(5),
        Duration::from_secs(90) + GC_RESYNC,
        || {
            let (pods, last) = (pods.clone(), &last);
            async move {
                let items = pods.list(&ListParams::default()).await?.items;
                let empty = items.is_empty();
                *last.lock().expect("lock") = items;
                Ok(empty)
            }
        },
    )
    .await;
    if let Err(e) = r {
        bail!(
            "failed to wait for all pods to be deleted: {e:#}; pods are {:?}",
            pod_names(&last.lock().expect("lock"))
        );
    }
    Ok(())
}
