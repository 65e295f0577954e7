//! The replication controller (upstream's ReplicationManager): keeps `spec.replicas` active
//! pods per ReplicationController, owning them through ownerReferences — adopting matching
//! orphans, releasing pods that stop matching, creating in slow-start batches, deleting the
//! least useful pods first — and reports status.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::events::{reference, Recorder};
use crate::pods::Pods;
use crate::Error;

/// Most pods created or deleted in one sync (upstream's burstReplicas).
const BURST: usize = 500;
/// Most creates or deletes of one sync in flight at once: a batch of 500 at once would
/// open 500 connections (HTTP/1.1) for no more throughput than a few.
const MAX_IN_FLIGHT: usize = 16;
/// How often an RC is reconciled again without a new event.
const RESYNC: Duration = Duration::from_secs(5);
/// How long to wait for the cache to see our own creates and deletes.
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(30);
/// An RC is synced at most this often. Every event of one of its pods asks for a sync, and
/// a sync reads all its pods: an RC of 1,000 pods starting up asked for ~4,000 syncs of
/// 1,000 pods each (12 % of the server's CPU in the scale bench). A sync asked for sooner
/// runs when the interval ends, so the last event is always followed by a sync.
const MIN_SYNC_INTERVAL: Duration = Duration::from_millis(100);

struct Ctx {
    client: Client,
    pods: Pods,
    /// Per RC uid: pods we created or deleted that the cache has not caught up with.
    expectations: Mutex<HashMap<String, Expectations>>,
    /// Per RC uid: when its last full sync started.
    last_sync: Mutex<HashMap<String, Instant>>,
    events: Recorder,
}

#[derive(Default)]
struct Expectations {
    created: Vec<String>,
    deleted: Vec<String>,
    since: Option<Instant>,
}

pub async fn run(client: Client, pods: Pods) -> anyhow::Result<()> {
    let rcs: Api<ReplicationController> = Api::all(client.clone());
    let changed = pods.subscribe();
    pods.store.wait_until_ready().await?;
    let controller = Controller::new(rcs, watcher::Config::default());
    let rc_store = controller.store();
    let ctx = Arc::new(Ctx {
        events: Recorder::new(client.clone(), "replication-controller"),
        client,
        pods,
        expectations: Mutex::new(HashMap::new()),
        last_sync: Mutex::new(HashMap::new()),
    });
    // Pod changes come from the shared pod cache (after it holds them), not a watch of
    // our own.
    let triggers = changed.flat_map(move |pod| futures::stream::iter(owners_of(&rc_store, &pod)));
    controller
        .reconcile_on(triggers)
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "replication reconcile");
            }
        })
        .await;
    Ok(())
}

/// The RCs a pod event concerns: its controller, and every RC whose selector matches it.
fn owners_of(
    rcs: &Store<ReplicationController>,
    pod: &Pod,
) -> Vec<ObjectRef<ReplicationController>> {
    let ns = pod.namespace().unwrap_or_default();
    let mut out: Vec<ObjectRef<ReplicationController>> = Vec::new();
    if let Some(owner) = controller_ref(pod) {
        if owner.kind == "ReplicationController" {
            out.push(ObjectRef::new(&owner.name).within(&ns));
        }
    }
    for rc in rcs.state() {
        if rc.namespace().as_deref() == Some(ns.as_str()) && selects(&rc, pod) {
            let r = ObjectRef::from_obj(rc.as_ref());
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    out
}

fn controller_ref(pod: &Pod) -> Option<&OwnerReference> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
}

/// Whether the RC's (non-empty, equality) selector matches the pod's labels.
fn selects(rc: &ReplicationController, pod: &Pod) -> bool {
    crate::selects(rc.spec.as_ref().and_then(|s| s.selector.as_ref()), pod)
}

fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// Upstream's ActivePods order: the pods to delete first sort first.
fn deletion_rank(pod: &Pod) -> (u8, u8, u8, i64) {
    let assigned = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_some_and(|n| !n.is_empty());
    let phase = match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") => 0,
        Some("Running") => 2,
        _ => 1,
    };
    let restarts: i32 = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.restart_count)
        .sum();
    let created = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .unwrap_or(0);
    // Newer pods go first, then more restarts.
    (
        assigned as u8,
        phase,
        crate::pod_ready(pod) as u8,
        -(created * 1000 + restarts as i64),
    )
}

fn error_policy(_rc: Arc<ReplicationController>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "replication controller will retry");
    Action::requeue(crate::RETRY)
}

async fn reconcile(rc: Arc<ReplicationController>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = rc.namespace().unwrap_or_default();
    let uid = rc.uid().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    if rc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if let Some(wait) = too_soon(&ctx.last_sync, &uid, Instant::now()) {
        return Ok(Action::requeue(wait));
    }
    // Wait until the cache has seen what we did last time (looked up by name: a reconcile
    // that waits costs as much as the pods it waits for, not as the namespace's pods).
    {
        let mut exp = ctx.expectations.lock().unwrap();
        if let Some(e) = exp.get_mut(&uid) {
            // Whether the cache has the pod, and without a deletionTimestamp.
            let live = |n: &str| {
                ctx.pods
                    .store
                    .get(&ObjectRef::new(n).within(&ns))
                    .map(|p| p.metadata.deletion_timestamp.is_none())
            };
            e.created.retain(|n| live(n).is_none());
            e.deleted.retain(|n| live(n) == Some(true));
            let waiting = !(e.created.is_empty() && e.deleted.is_empty());
            if waiting && e.since.is_some_and(|s| s.elapsed() < EXPECTATION_TIMEOUT) {
                return Ok(Action::requeue(Duration::from_millis(200)));
            }
            exp.remove(&uid);
        }
    }
    ctx.last_sync
        .lock()
        .unwrap()
        .insert(uid.clone(), Instant::now());
    // Only our pods and the namespace's orphans can be ours after this reconcile.
    let all = ctx.pods.owned_or_orphaned(&ns, &uid);
    // Adopt matching orphans, release owned pods that stopped matching.
    let mut owned: Vec<Arc<Pod>> = Vec::new();
    for p in &all {
        let owner = controller_ref(p);
        let mine = owner.is_some_and(|o| o.uid == uid);
        let matches = selects(&rc, p);
        if mine && matches {
            owned.push(p.clone());
        } else if mine && !matches {
            release(&pods_api, p, &uid).await?;
        } else if owner.is_none() && matches && p.metadata.deletion_timestamp.is_none() {
            adopt(&pods_api, p, &rc).await?;
            owned.push(p.clone());
        }
    }
    let active: Vec<&Arc<Pod>> = owned.iter().filter(|p| is_active(p)).collect();
    let want = rc
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0) as usize;
    let mut created = Vec::new();
    let mut deleted = Vec::new();
    let mut failure = None;
    if active.len() < want {
        let missing = (want - active.len()).min(BURST);
        let template = pod_from_template(&rc);
        let pp = PostParams::default();
        // Only the names are kept: a batch's created pods, whole, held 500 × 26 KB.
        let create = || async {
            let pod = pods_api.create(&pp, &template).await?;
            Ok::<_, kube::Error>(pod.name_any())
        };
        let (made, err) = slow_start(missing, create).await;
        for name in made {
            ctx.events.record(
                reference(&*rc),
                "Normal",
                "SuccessfulCreate",
                &format!("Created pod: {name}"),
            );
            created.push(name);
        }
        if let Some(e) = err {
            let msg = api_message(e);
            ctx.events.record(
                reference(&*rc),
                "Warning",
                "FailedCreate",
                &format!("Error creating: {msg}"),
            );
            failure = Some(msg);
        }
    } else if active.len() > want {
        let mut victims: Vec<&Arc<Pod>> = active.clone();
        victims.sort_by_key(|p| deletion_rank(p));
        let extra = (active.len() - want).min(BURST);
        let futs: Vec<_> = victims[..extra]
            .iter()
            .map(|p| {
                let name = p.name_any();
                let api = pods_api.clone();
                async move {
                    (
                        name.clone(),
                        api.delete(&name, &DeleteParams::default()).await,
                    )
                }
            })
            .collect();
        let results: Vec<_> = futures::stream::iter(futs)
            .buffer_unordered(MAX_IN_FLIGHT)
            .collect()
            .await;
        for (name, r) in results {
            match r {
                Ok(_) => {
                    ctx.events.record(
                        reference(&*rc),
                        "Normal",
                        "SuccessfulDelete",
                        &format!("Deleted pod: {name}"),
                    );
                    deleted.push(name);
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    let msg = api_message(e);
                    ctx.events.record(
                        reference(&*rc),
                        "Warning",
                        "FailedDelete",
                        &format!("Error deleting: {msg}"),
                    );
                    failure = Some(msg);
                }
            }
        }
    }
    if !created.is_empty() || !deleted.is_empty() {
        ctx.expectations.lock().unwrap().insert(
            uid.clone(),
            Expectations {
                created,
                deleted,
                since: Some(Instant::now()),
            },
        );
    }
    update_status(&ctx.client, &rc, &owned, failure).await?;
    // The pod cache read here is fed by its own watch, which can lag behind the event that
    // triggered this reconcile: look again shortly (a resync, as upstream's informers do).
    Ok(Action::requeue(RESYNC))
}

/// How long the RC with `uid` must wait before its next full sync ([`MIN_SYNC_INTERVAL`]
/// after its last one started), if at all. Forgets RCs not synced for a while.
fn too_soon(
    last_sync: &Mutex<HashMap<String, Instant>>,
    uid: &str,
    now: Instant,
) -> Option<Duration> {
    let mut last = last_sync.lock().unwrap();
    if last.len() > 1024 {
        last.retain(|_, t| now.duration_since(*t) < MIN_SYNC_INTERVAL);
    }
    let since = now.duration_since(*last.get(uid)?);
    MIN_SYNC_INTERVAL
        .checked_sub(since)
        .filter(|d| !d.is_zero())
}

/// Upstream's `slowStartBatch`: calls `create` `count` times in batches of 1, 2, 4, …,
/// each batch concurrently, and stops after the first batch with a failure, so a template
/// the API refuses costs one request, not `count`. What was made, and the first failure.
async fn slow_start<T, E, F, Fut>(count: usize, create: F) -> (Vec<T>, Option<E>)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut made = Vec::new();
    let mut batch = 1;
    while made.len() < count {
        let n = batch.min(count - made.len());
        let mut failure = None;
        let futs: Vec<Fut> = (0..n).map(|_| create()).collect();
        let results: Vec<_> = futures::stream::iter(futs)
            .buffer_unordered(MAX_IN_FLIGHT)
            .collect()
            .await;
        for r in results {
            match r {
                Ok(t) => made.push(t),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if failure.is_some() {
            return (made, failure);
        }
        batch *= 2;
    }
    (made, None)
}

/// The message of an API error (what upstream puts in events and conditions).
fn api_message(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message,
        other => other.to_string(),
    }
}

fn owner_reference(rc: &ReplicationController) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "ReplicationController".into(),
        name: rc.name_any(),
        uid: rc.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn pod_from_template(rc: &ReplicationController) -> Pod {
    let template = rc
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rc.name_any())),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![owner_reference(rc)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

async fn adopt(api: &Api<Pod>, pod: &Pod, rc: &ReplicationController) -> Result<(), Error> {
    let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
    refs.push(owner_reference(rc));
    set_owner_refs(api, pod, refs).await
}

async fn release(api: &Api<Pod>, pod: &Pod, uid: &str) -> Result<(), Error> {
    let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
    refs.retain(|o| o.uid != uid);
    set_owner_refs(api, pod, refs).await
}

/// Replaces the pod's ownerReferences (none: the field goes), if it is still the same pod.
async fn set_owner_refs(api: &Api<Pod>, pod: &Pod, refs: Vec<OwnerReference>) -> Result<(), Error> {
    let refs = if refs.is_empty() {
        serde_json::Value::Null
    } else {
        json!(refs)
    };
    let patch = json!({"metadata": {"ownerReferences": refs, "uid": pod.uid()}});
    match api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn update_status(
    client: &Client,
    rc: &ReplicationController,
    owned: &[Arc<Pod>],
    failure: Option<String>,
) -> Result<(), Error> {
    let active: Vec<&Arc<Pod>> = owned.iter().filter(|p| is_active(p)).collect();
    let template_labels = rc
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let fully = active
        .iter()
        .filter(|p| {
            template_labels
                .iter()
                .all(|(k, v)| p.labels().get(k) == Some(v))
        })
        .count();
    let ready: Vec<&&Arc<Pod>> = active.iter().filter(|p| crate::pod_ready(p)).collect();
    let min_ready = rc
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0) as i64;
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let available = ready
        .iter()
        .filter(|p| {
            min_ready == 0
                || p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .into_iter()
                    .flatten()
                    .find(|c| c.type_ == "Ready")
                    .and_then(|c| c.last_transition_time.as_ref())
                    .is_some_and(|t| now - t.0.as_second() >= min_ready)
        })
        .count();
    let old = rc.status.clone().unwrap_or_default();
    let mut conditions = old.conditions.clone().unwrap_or_default();
    conditions.retain(|c| c.type_ != "ReplicaFailure");
    if let Some(msg) = &failure {
        conditions.push(k8s_openapi::api::core::v1::ReplicationControllerCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some("FailedCreate".into()),
            message: Some(msg.clone()),
            last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            )),
        });
    }
    let status = json!({
        "replicas": active.len(),
        "fullyLabeledReplicas": fully,
        "readyReplicas": ready.len(),
        "availableReplicas": available,
        "observedGeneration": rc.metadata.generation,
        "conditions": if conditions.is_empty() { serde_json::Value::Null } else { json!(conditions) },
    });
    let current = json!({
        "replicas": old.replicas,
        "fullyLabeledReplicas": old.fully_labeled_replicas.unwrap_or(0),
        "readyReplicas": old.ready_replicas.unwrap_or(0),
        "availableReplicas": old.available_replicas.unwrap_or(0),
        "observedGeneration": old.observed_generation,
        "conditions": old.conditions.filter(|c| !c.is_empty()),
    });
    if status == current {
        return Ok(());
    }
    let api: Api<ReplicationController> =
        Api::namespaced(client.clone(), &rc.namespace().unwrap_or_default());
    match api
        .patch_status(
            &rc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": status})),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(node: Option<&str>, phase: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [], "nodeName": node},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap()
    }

    #[test]
    fn least_useful_pods_are_deleted_first() {
        let ready = pod(Some("n"), "Running", true);
        let not_ready = pod(Some("n"), "Running", false);
        let pending = pod(Some("n"), "Pending", false);
        let unassigned = pod(None, "Pending", false);
        let mut all = [&ready, &not_ready, &pending, &unassigned];
        all.sort_by_key(|p| deletion_rank(p));
        assert_eq!(all, [&unassigned, &pending, &not_ready, &ready]);
    }

    #[test]
    fn an_rc_waits_out_the_interval_since_its_last_sync() {
        let t0 = Instant::now();
        let last = Mutex::new(HashMap::from([("a".to_string(), t0)]));
        assert_eq!(too_soon(&last, "b", t0), None, "never synced");
        assert_eq!(too_soon(&last, "a", t0), Some(MIN_SYNC_INTERVAL));
        let later = t0 + MIN_SYNC_INTERVAL / 4;
        assert_eq!(too_soon(&last, "a", later), Some(MIN_SYNC_INTERVAL * 3 / 4));
        assert_eq!(too_soon(&last, "a", t0 + MIN_SYNC_INTERVAL), None);
        assert_eq!(too_soon(&last, "a", t0 + MIN_SYNC_INTERVAL * 2), None);
    }

    /// Creates with a fake API that fails from its `fail_from`-th call on: the calls made.
    async fn attempts(count: usize, fail_from: usize) -> (usize, usize, bool) {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let (made, err) = slow_start(count, || {
            let i = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if i >= fail_from {
                    Err("refused")
                } else {
                    Ok(i)
                }
            }
        })
        .await;
        (calls.into_inner(), made.len(), err.is_some())
    }

    #[tokio::test]
    async fn slow_start_doubles_batches_and_stops_after_a_failing_one() {
        // Everything succeeds: all made, no failure.
        assert_eq!(attempts(10, usize::MAX).await, (10, 10, false));
        // The very first create fails: one call, not ten.
        assert_eq!(attempts(10, 0).await, (1, 0, true));
        // Batches 1, 2, 4 succeed (7); the batch of 8 has failures from call 9 on and is
        // the last one tried.
        assert_eq!(attempts(100, 9).await, (15, 9, true));
    }
}
