//! ReplicationController: upstream's test/e2e/apps/rc.go.

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::json;

use super::e2epod::{self, eventually};
use super::{agnhost_image, e2erc, httpd_image, proxy, test, uuid};
use crate::{Ctx, Test};

const AREA: &str = "ReplicationController";

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Replication Controller, adopt matching pods",
            "[sig-apps] ReplicationController should adopt matching pods on creation [Conformance]",
            adopt_matching_pods
        ),
        test!(
            AREA,
            "Replication Controller, release pods",
            "[sig-apps] ReplicationController should release no longer matching pods [Conformance]",
            release_pods
        ),
        test!(
            AREA,
            "Replication Controller, lifecycle",
            "[sig-apps] ReplicationController should test the lifecycle of a ReplicationController [Conformance]",
            lifecycle
        ),
        test!(
            AREA,
            "Replication Controller, get and update ReplicationController scale",
            "[sig-apps] ReplicationController should get and update a ReplicationController scale [Conformance]",
            scale
        ),
        test!(
            AREA,
            "Replication Controller, run basic image",
            "[sig-apps] ReplicationController should serve a basic image on each replica with a public image [Conformance]",
            serve_basic_image
        ),
    ]
}

/// Upstream's `TestReplicationControllerServeImageOrFail`: an RC of one
/// `serve-hostname` replica; the pod runs, is ready, and answers its name through
/// pods/proxy (`e2epod.WaitForPodsResponding`: 2 s polls, 2 minutes).
async fn serve_basic_image(ctx: Ctx) -> anyhow::Result<()> {
    let name = format!("my-hostname-basic-{}", uuid());
    let mut rc = new_rc(&name, 1, json!({"name": name}), &name, &agnhost_image())?;
    if let Some(c) = rc
        .spec
        .as_mut()
        .and_then(|s| s.template.as_mut())
        .and_then(|t| t.spec.as_mut())
        .and_then(|s| s.containers.first_mut())
    {
        c.args = Some(vec!["serve-hostname".into()]);
        c.ports = Some(vec![serde_json::from_value(
            json!({"containerPort": 9376}),
        )?]);
    }
    Api::<ReplicationController>::namespaced(ctx.client.clone(), &ctx.ns)
        .create(&PostParams::default(), &rc)
        .await
        .context("creating the replication controller")?;
    let api = e2epod::api(&ctx);
    let pods = pods_created(&api, &name, 1).await?;
    for p in &pods {
        let pod = p.metadata.name.as_deref().unwrap_or_default();
        e2epod::wait_for(
            &api,
            pod,
            Duration::from_secs(5 * 60),
            "running and ready",
            e2erc::running_and_ready,
        )
        .await?;
    }
    for p in &pods {
        let pod = p.metadata.name.clone().unwrap_or_default();
        let path = format!("/api/v1/namespaces/{}/pods/{pod}/proxy", ctx.ns);
        eventually(
            Duration::from_secs(120),
            Duration::from_secs(2),
            &format!("pod {pod} to answer its name through pods/proxy"),
            || async {
                let (status, body) = proxy::get_following_redirects(&ctx.client, &path)
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                let body = String::from_utf8_lossy(&body);
                if status != http::StatusCode::OK {
                    return Err(format!("status {status}: {body}"));
                }
                (body == pod).then_some(()).ok_or_else(|| {
                    format!("Controller {name}: Replica {pod} expected name, got {body:?}")
                })
            },
        )
        .await?;
    }
    Ok(())
}

/// Upstream's `newRC`: `replicas` pods of one container `image_name` running `image`,
/// labelled `labels`, grace period 0.
fn new_rc(
    name: &str,
    replicas: i32,
    labels: serde_json::Value,
    image_name: &str,
    image: &str,
) -> anyhow::Result<ReplicationController> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "template": {
                "metadata": {"labels": labels},
                "spec": {"terminationGracePeriodSeconds": 0, "containers": [{"name": image_name, "image": image}]},
            },
        },
    }))?)
}

fn controlled_by(p: &Pod, uid: &str) -> bool {
    p.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// Upstream's `e2epod.PodsCreated`: waits (2 s polls, 2 min) until `replicas` pods
/// labelled name=`name` exist; returns them.
pub(super) async fn pods_created(
    api: &Api<Pod>,
    name: &str,
    replicas: usize,
) -> anyhow::Result<Vec<Pod>> {
    eventually(
        Duration::from_secs(120),
        Duration::from_secs(2),
        &format!("{replicas} pods of {name}"),
        || async {
            let pods = api
                .list(&ListParams::default().labels(&format!("name={name}")))
                .await
                .map_err(|e| e.to_string())?
                .items;
            let live: Vec<Pod> = pods
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            if live.len() == replicas {
                Ok(live)
            } else {
                Err(format!("found {} pods", live.len()))
            }
        },
    )
    .await
}

/// An orphan pod matching a new RC's selector is adopted (or replaced).
async fn adopt_matching_pods(ctx: Ctx) -> anyhow::Result<()> {
    let name = "pod-adoption";
    let pods = e2epod::api(&ctx);
    let p = e2epod::create_sync(
        &pods,
        &e2epod::pod(json!({
            "metadata": {"name": name, "labels": {"name": name}},
            "spec": {"containers": [{"name": name, "image": httpd_image()}]},
        }))?,
    )
    .await?;
    let mut rc = new_rc(name, 1, json!({"name": name}), name, &httpd_image())?;
    if let Some(s) = rc.spec.as_mut() {
        s.selector = Some([("name".to_string(), name.to_string())].into());
    }
    let rcs: Api<ReplicationController> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let rc = rcs
        .create(&PostParams::default(), &rc)
        .await
        .context("creating the replication controller")?;
    let uid = rc.metadata.uid.unwrap_or_default();
    let pod_name = p.metadata.name.unwrap_or_default();
    eventually(
        Duration::from_secs(60),
        Duration::from_secs(1),
        "the orphan pod to be adopted",
        || async {
            match pods.get_opt(&pod_name).await {
                // Deleted by the RC is as good.
                Ok(None) => Ok(()),
                Ok(Some(p)) if controlled_by(&p, &uid) => Ok(()),
                Ok(Some(p)) => Err(format!(
                    "pod still not adopted: ownerReferences {:?}",
                    p.metadata.owner_references
                )),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
}

/// A pod whose labels stop matching its RC is released.
async fn release_pods(ctx: Ctx) -> anyhow::Result<()> {
    let name = "pod-release";
    let mut rc = new_rc(name, 1, json!({"name": name}), name, &httpd_image())?;
    if let Some(s) = rc.spec.as_mut() {
        s.selector = Some([("name".to_string(), name.to_string())].into());
    }
    let rcs: Api<ReplicationController> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let rc = rcs
        .create(&PostParams::default(), &rc)
        .await
        .context("creating the replication controller")?;
    let uid = rc.metadata.uid.unwrap_or_default();
    let pods = e2epod::api(&ctx);
    let created = pods_created(&pods, name, 1).await?;
    let pod_name = created[0].metadata.name.clone().unwrap_or_default();
    eventually(
        Duration::from_secs(60),
        Duration::from_secs(1),
        "the pod's labels to be updated",
        || async {
            let mut p = pods.get(&pod_name).await.map_err(|e| e.to_string())?;
            p.metadata.labels =
                Some([("name".to_string(), "not-matching-name".to_string())].into());
            match pods.replace(&pod_name, &PostParams::default(), &p).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Err("conflict".to_string()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    eventually(
        Duration::from_secs(60),
        Duration::from_secs(1),
        "the pod to be released",
        || async {
            let p = pods.get(&pod_name).await.map_err(|e| e.to_string())?;
            if controlled_by(&p, &uid) {
                Err("pod still belonging to the replication controller".to_string())
            } else {
                Ok(())
            }
        },
    )
    .await
}

fn status_counts(rc: &ReplicationController) -> (i32, i32) {
    let st = rc.status.clone().unwrap_or_default();
    (st.replicas, st.ready_replicas.unwrap_or(0))
}

type Events = futures::stream::BoxStream<'static, kube::Result<WatchEvent<ReplicationController>>>;

/// Upstream's `watchUntilWithoutRetry`: the next event of `w` meeting `cond`, within
/// `limit`.
async fn next(
    w: &mut Events,
    limit: Duration,
    what: &str,
    cond: &(dyn Fn(&WatchEvent<ReplicationController>) -> bool + Sync),
) -> anyhow::Result<WatchEvent<ReplicationController>> {
    let r = tokio::time::timeout(limit, async {
        while let Some(ev) = w.try_next().await? {
            if cond(&ev) {
                return Ok(ev);
            }
        }
        bail!("the watch ended")
    })
    .await;
    match r {
        Ok(r) => r.with_context(|| format!("waiting for {what}")),
        Err(_) => bail!("timed out after {limit:?} waiting for {what}"),
    }
}

/// Create, watch to ready, patch labels, patch status, patch scale, update status,
/// list, delete by collection; the watch sees ADDED, 4 MODIFIED, DELETED.
async fn lifecycle(ctx: Ctx) -> anyhow::Result<()> {
    let name = "rc-test";
    let sel = "test-rc-static=true";
    let rcs: Api<ReplicationController> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let rc: ReplicationController = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"test-rc-static": "true"}},
        "spec": {
            "replicas": 1,
            "selector": {"test-rc-static": "true"},
            "template": {
                "metadata": {"name": name, "labels": {"test-rc-static": "true"}},
                "spec": {"containers": [{"name": name, "image": httpd_image()}]},
            },
        },
    }))?;
    let rv = rcs
        .list(&ListParams::default().labels(sel))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut w = rcs
        .watch(&WatchParams::default().labels(sel), &rv)
        .await
        .context("watching ReplicationControllers")?
        .boxed();
    let mut seen: Vec<&'static str> = Vec::new();
    let rc_of = |ev: &WatchEvent<ReplicationController>| match ev {
        WatchEvent::Added(r) | WatchEvent::Modified(r) | WatchEvent::Deleted(r) => Some(r.clone()),
        _ => None,
    };
    let minute = Duration::from_secs(60);

    rcs.create(&PostParams::default(), &rc)
        .await
        .context("Failed to create ReplicationController")?;
    next(&mut w, minute, "RC to be added", &|ev| {
        matches!(ev, WatchEvent::Added(_))
    })
    .await?;
    seen.push("ADDED");
    next(
        &mut w,
        e2epod::POD_START_TIMEOUT,
        "available Replicas",
        &|ev| rc_of(ev).is_some_and(|r| status_counts(&r) == (1, 1)),
    )
    .await
    .context("RC has not reached ReadyReplicas count of 1")?;

    let patched = rcs
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"test-rc": "patched"}}})),
        )
        .await
        .context("Failed to patch ReplicationController")?;
    let label = patched
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("test-rc"))
        .cloned();
    ensure!(
        label.as_deref() == Some("patched"),
        "failed to patch RC: labels {:?}",
        patched.metadata.labels
    );
    next(&mut w, minute, "RC to be modified", &|ev| {
        matches!(ev, WatchEvent::Modified(_))
    })
    .await?;
    seen.push("MODIFIED");

    let st = rcs
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Strategic(json!({"status": {"readyReplicas": 0, "availableReplicas": 0}})),
        )
        .await
        .context("Failed to patch ReplicationControllerStatus")?;
    let ready = st
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    ensure!(
        ready == 0,
        "ReplicationControllerStatus's readyReplicas does not equal 0: {ready}"
    );
    next(&mut w, minute, "RC to be modified", &|ev| {
        matches!(ev, WatchEvent::Modified(_))
    })
    .await?;
    seen.push("MODIFIED");
    next(&mut w, e2epod::POD_START_TIMEOUT, "1 replica", &|ev| {
        rc_of(ev).is_some_and(|r| status_counts(&r).0 == 1)
    })
    .await
    .context("Failed to find updated ready replica count")?;
    let st = rcs
        .get_status(name)
        .await
        .context("Failed to fetch ReplicationControllerStatus")?;
    ensure!(
        status_counts(&st).0 == 1,
        "ReplicationController ReplicaSet cound does not match initial Replica count: {:?}",
        st.status
    );

    rcs.patch_scale(
        name,
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"replicas": 2}})),
    )
    .await
    .context("Failed to patch ReplicationControllerScale")?;
    next(
        &mut w,
        e2epod::POD_START_TIMEOUT,
        "RC to be modified",
        &|ev| matches!(ev, WatchEvent::Modified(_)),
    )
    .await?;
    seen.push("MODIFIED");
    next(
        &mut w,
        e2epod::POD_START_TIMEOUT,
        "the scale to be the max amount",
        &|ev| {
            rc_of(ev).is_some_and(|r| {
                r.metadata.name.as_deref() == Some(name)
                    && r.metadata.namespace.as_deref() == Some(ctx.ns.as_str())
                    && status_counts(&r) == (2, 2)
            })
        },
    )
    .await
    .context("Failed to find updated ready replica count")?;

    let mut rc = rcs
        .get(name)
        .await
        .context("failed to fetch ReplicationController")?;
    let label = rc
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("test-rc"))
        .cloned();
    ensure!(
        label.as_deref() == Some("patched"),
        "ReplicationController is missing a label from earlier patch"
    );
    let status = rc.status.get_or_insert_with(Default::default);
    status.available_replicas = Some(1);
    status.ready_replicas = Some(1);
    rcs.replace_status(name, &PostParams::default(), &rc)
        .await
        .context("failed to update ReplicationControllerStatus")?;
    next(&mut w, minute, "RC to be modified", &|ev| {
        matches!(ev, WatchEvent::Modified(_))
    })
    .await?;
    seen.push("MODIFIED");

    let all: Api<ReplicationController> = Api::all(ctx.client.clone());
    let list = all
        .list(&ListParams::default().labels(sel))
        .await
        .context("failed to list ReplicationController")?;
    ensure!(
        !list.items.is_empty(),
        "Expected to find a ReplicationController but none was found"
    );
    let found = list.items.iter().any(|r| {
        let l = |k: &str| r.metadata.labels.as_ref().and_then(|l| l.get(k)).cloned();
        r.metadata.name.as_deref() == Some(name)
            && r.metadata.namespace.as_deref() == Some(ctx.ns.as_str())
            && l("test-rc-static").as_deref() == Some("true")
            && l("test-rc").as_deref() == Some("patched")
    });
    ensure!(
        found,
        "ReplicationController doesn't have expected values: {:?}",
        list.items
    );

    rcs.delete_collection(&DeleteParams::default(), &ListParams::default().labels(sel))
        .await
        .context("Failed to delete ReplicationControllers")?;
    if let Err(e) = next(&mut w, minute, "a DELETED watch event", &|ev| {
        matches!(ev, WatchEvent::Deleted(_))
    })
    .await
    {
        let now = match rcs.get_opt(name).await {
            Ok(Some(r)) => format!("the RC is still there: {:?}", r.metadata),
            Ok(None) => "the RC is gone".to_string(),
            Err(e) => format!("cannot get the RC: {e}"),
        };
        return Err(e.context(now));
    }
    seen.push("DELETED");

    let expected = [
        "ADDED", "MODIFIED", "MODIFIED", "MODIFIED", "MODIFIED", "DELETED",
    ];
    ensure!(
        seen == expected,
        "expected watch events {expected:?}, got {seen:?}"
    );
    Ok(())
}

/// The scale subresource reads the replicas and changes them.
async fn scale(ctx: Ctx) -> anyhow::Result<()> {
    let suffix: String = uuid()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(5)
        .collect();
    let name = format!("e2e-rc-{suffix}");
    let rcs: Api<ReplicationController> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    rcs.create(
        &PostParams::default(),
        &new_rc(&name, 1, json!({"name": name}), "httpd", &httpd_image())?,
    )
    .await
    .context("Failed to create ReplicationController")?;
    let replicas = |want: i32| {
        let rcs = rcs.clone();
        let name = name.clone();
        async move {
            eventually(
                Duration::from_secs(60),
                Duration::from_secs(1),
                &format!("{want} replicas of {name}"),
                || async {
                    let rc = rcs.get(&name).await.map_err(|e| e.to_string())?;
                    match status_counts(&rc).0 {
                        n if n == want => Ok(()),
                        n => Err(format!("status.replicas {n}")),
                    }
                },
            )
            .await
            .context("failed to confirm the quantity of ReplicationController replicas")
        }
    };
    replicas(1).await?;
    let mut s: Scale = rcs
        .get_scale(&name)
        .await
        .context("Failed to get scale subresource")?;
    let current = s.status.as_ref().map(|st| st.replicas).unwrap_or(0);
    ensure!(
        current == 1,
        "Failed to get the current replica count: {current}"
    );
    s.metadata.resource_version = None;
    s.spec.get_or_insert_with(Default::default).replicas = Some(2);
    rcs.replace_scale(&name, &PostParams::default(), &s)
        .await
        .context("Failed to update scale subresource")?;
    replicas(2).await
}
