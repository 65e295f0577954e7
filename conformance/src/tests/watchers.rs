//! Watchers: upstream's test/e2e/apimachinery/watch.go. The watch helpers here
//! (upstream's `expectEvent`, `expectNoEvent`, `waitForEvent`) serve other areas too.

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use super::test;
use crate::{Ctx, Test};

const AREA: &str = "Watchers";

const LABEL_KEY: &str = "watch-this-configmap";
const MULTIPLE_A: &str = "multiple-watchers-A";
const MULTIPLE_B: &str = "multiple-watchers-B";
const FROM_RV: &str = "from-resource-version";
const RESTARTED: &str = "watch-closed-and-restarted";
const TO_BE_CHANGED: &str = "label-changed-and-restored";

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "watch-configmaps-with-multiple-watchers",
            "[sig-api-machinery] Watchers should observe add, update, and delete watch notifications on configmaps [Conformance]",
            multiple_watchers
        ),
        test!(
            AREA,
            "watch-configmaps-from-resource-version",
            "[sig-api-machinery] Watchers should be able to start watching from a specific resource version [Conformance]",
            from_resource_version
        ),
        test!(
            AREA,
            "watch-configmaps-closed-and-restarted",
            "[sig-api-machinery] Watchers should be able to restart watching from the last resource version observed by the previous watch [Conformance]",
            closed_and_restarted
        ),
        test!(
            AREA,
            "watch-configmaps-label-changed",
            "[sig-api-machinery] Watchers should observe an object deletion if it stops meeting the requirements of the selector [Conformance]",
            label_changed
        ),
        test!(
            AREA,
            "watch-consistency",
            "[sig-api-machinery] Watchers should receive events on concurrent watches in same order [Conformance]",
            consistency
        ),
    ]
}

/// A watch event's type, as upstream's `watch.EventType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Added,
    Modified,
    Deleted,
}

/// What reading a watch gave.
enum Next<K> {
    Event(Kind, K),
    TimedOut,
    Ended,
}

/// One open watch (upstream's `watch.Interface`).
pub struct Watch<K> {
    stream: BoxStream<'static, kube::Result<WatchEvent<K>>>,
}

impl<K> Watch<K>
where
    K: Clone
        + std::fmt::Debug
        + PartialEq
        + k8s_openapi::serde::de::DeserializeOwned
        + Send
        + 'static,
    K: kube::Resource,
{
    pub async fn open(api: &Api<K>, wp: &WatchParams, rv: &str) -> kube::Result<Watch<K>> {
        Ok(Watch {
            stream: api.watch(wp, rv).await?.boxed(),
        })
    }

    /// The next ADDED, MODIFIED or DELETED event (bookmarks skipped); an error when the
    /// watch ends or reports an error, `None` after `limit`.
    pub async fn next(&mut self, limit: Duration) -> anyhow::Result<Option<(Kind, K)>> {
        match self.next_or_end(limit).await? {
            Next::Event(kind, o) => Ok(Some((kind, o))),
            Next::TimedOut => Ok(None),
            Next::Ended => bail!("Watch closed unexpectedly"),
        }
    }

    /// As [`Watch::next`], the server ending the watch being no error.
    async fn next_or_end(&mut self, limit: Duration) -> anyhow::Result<Next<K>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let ev = match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Ok(Next::TimedOut),
                Ok(None) => return Ok(Next::Ended),
                Ok(Some(ev)) => ev.context("watch failed")?,
            };
            return Ok(match ev {
                WatchEvent::Added(o) => Next::Event(Kind::Added, o),
                WatchEvent::Modified(o) => Next::Event(Kind::Modified, o),
                WatchEvent::Deleted(o) => Next::Event(Kind::Deleted, o),
                WatchEvent::Bookmark(_) => continue,
                WatchEvent::Error(s) => bail!("watch reported an error: {s:?}"),
            });
        }
    }

    /// upstream's `waitForEvent`: reads events until one of `kind` (equal to `obj` when
    /// given) comes, within `limit`; `None` if none did.
    pub async fn wait_for(
        &mut self,
        kind: Kind,
        obj: Option<&K>,
        limit: Duration,
    ) -> anyhow::Result<Option<K>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await? {
                None => return Ok(None),
                Some((k, o)) if k == kind && obj.is_none_or(|e| *e == o) => return Ok(Some(o)),
                Some(_) => {}
            }
        }
    }

    /// upstream's `expectEvent`: the event comes within a minute.
    pub async fn expect(&mut self, kind: Kind, obj: Option<&K>) -> anyhow::Result<K> {
        match self.wait_for(kind, obj, Duration::from_secs(60)).await? {
            Some(o) => Ok(o),
            None => bail!(
                "Timed out waiting for expected watch notification: {kind:?} {}",
                describe(obj)
            ),
        }
    }

    /// upstream's `expectNoEvent`: no such event within 10 seconds.
    pub async fn expect_none(&mut self, kind: Kind, obj: Option<&K>) -> anyhow::Result<()> {
        match self.wait_for(kind, obj, Duration::from_secs(10)).await? {
            Some(o) => bail!(
                "Unexpected watch notification observed: {kind:?} {}",
                describe(Some(&o))
            ),
            None => Ok(()),
        }
    }
}

fn describe<K: kube::Resource>(obj: Option<&K>) -> String {
    match obj {
        Some(o) => format!(
            "{}/{} at resourceVersion {}",
            o.meta().namespace.as_deref().unwrap_or(""),
            o.meta().name.as_deref().unwrap_or(""),
            o.meta().resource_version.as_deref().unwrap_or("")
        ),
        None => "(any object)".into(),
    }
}

/// upstream's `watchConfigMaps`: a watch of the namespace's ConfigMaps whose
/// `watch-this-configmap` label is one of `values`, from `rv`.
async fn watch_config_maps(
    ctx: &Ctx,
    rv: &str,
    values: &[&str],
) -> anyhow::Result<Watch<ConfigMap>> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let selector = format!("{LABEL_KEY} in ({})", values.join(","));
    Watch::open(&api, &WatchParams::default().labels(&selector), rv)
        .await
        .with_context(|| format!("failed to create a watch on configmaps with label: {selector}"))
}

fn labelled(name: &str, value: &str) -> anyhow::Result<ConfigMap> {
    Ok(serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {LABEL_KEY: value}}}),
    )?)
}

/// Get, change, update; again on a conflict (upstream's `updateConfigMap` helper).
async fn update_config_map(
    api: &Api<ConfigMap>,
    name: &str,
    change: impl Fn(&mut ConfigMap),
) -> anyhow::Result<ConfigMap> {
    let mut last = None;
    for _ in 0..5 {
        let mut cm = api
            .get(name)
            .await
            .with_context(|| format!("getting configmap {name}"))?;
        change(&mut cm);
        match api.replace(name, &PostParams::default(), &cm).await {
            Ok(cm) => return Ok(cm),
            Err(kube::Error::Api(s)) if s.code == 409 => last = Some(s),
            Err(e) => return Err(e).with_context(|| format!("failed to update configmap {name}")),
        }
    }
    bail!("failed to update configmap {name}: conflicts: {last:?}")
}

fn set_data(key: &'static str, value: &'static str) -> impl Fn(&mut ConfigMap) {
    move |cm| {
        cm.data
            .get_or_insert_with(Default::default)
            .insert(key.into(), value.into());
    }
}

fn set_label(value: &'static str) -> impl Fn(&mut ConfigMap) {
    move |cm| {
        cm.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(LABEL_KEY.into(), value.into());
    }
}

/// Three label-selector watches see exactly the notifications of the ConfigMaps they select.
async fn multiple_watchers(ctx: Ctx) -> anyhow::Result<()> {
    use Kind::*;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let mut watch_a = watch_config_maps(&ctx, "", &[MULTIPLE_A]).await?;
    let mut watch_b = watch_config_maps(&ctx, "", &[MULTIPLE_B]).await?;
    let mut watch_ab = watch_config_maps(&ctx, "", &[MULTIPLE_A, MULTIPLE_B]).await?;
    let pp = PostParams::default();

    // A configmap with label A: watchers A and AB see it, B does not.
    let a = api
        .create(&pp, &labelled("e2e-watch-test-configmap-a", MULTIPLE_A)?)
        .await
        .context("failed to create a configmap with label multiple-watchers-A")?;
    watch_a.expect(Added, Some(&a)).await?;
    watch_ab.expect(Added, Some(&a)).await?;
    watch_b.expect_none(Added, Some(&a)).await?;

    for value in ["1", "2"] {
        let a = update_config_map(
            &api,
            "e2e-watch-test-configmap-a",
            set_data("mutation", value),
        )
        .await?;
        watch_a.expect(Modified, Some(&a)).await?;
        watch_ab.expect(Modified, Some(&a)).await?;
        watch_b.expect_none(Modified, Some(&a)).await?;
    }

    api.delete("e2e-watch-test-configmap-a", &DeleteParams::default())
        .await
        .context("failed to delete configmap e2e-watch-test-configmap-a")?;
    watch_a.expect(Deleted, None).await?;
    watch_ab.expect(Deleted, None).await?;
    watch_b.expect_none(Deleted, None).await?;

    // A configmap with label B: watchers B and AB see it, A does not.
    let b = api
        .create(&pp, &labelled("e2e-watch-test-configmap-b", MULTIPLE_B)?)
        .await
        .context("failed to create configmap e2e-watch-test-configmap-b")?;
    watch_b.expect(Added, Some(&b)).await?;
    watch_ab.expect(Added, Some(&b)).await?;
    watch_a.expect_none(Added, Some(&b)).await?;

    api.delete("e2e-watch-test-configmap-b", &DeleteParams::default())
        .await
        .context("failed to delete configmap e2e-watch-test-configmap-b")?;
    watch_b.expect(Deleted, None).await?;
    watch_ab.expect(Deleted, None).await?;
    watch_a.expect_none(Deleted, None).await?;
    Ok(())
}

/// A watch from the first update's resourceVersion sees only what came after it.
async fn from_resource_version(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let name = "e2e-watch-test-resource-version";
    api.create(&PostParams::default(), &labelled(name, FROM_RV)?)
        .await
        .with_context(|| format!("failed to create configmap {name}"))?;
    let first = update_config_map(&api, name, set_data("mutation", "1")).await?;
    let second = update_config_map(&api, name, set_data("mutation", "2")).await?;
    api.delete(name, &DeleteParams::default())
        .await
        .with_context(|| format!("failed to delete configmap {name}"))?;

    let rv = first.metadata.resource_version.clone().unwrap_or_default();
    let mut w = watch_config_maps(&ctx, &rv, &[FROM_RV])
        .await
        .with_context(|| format!("from the resource version {rv} returned by the first update"))?;
    w.expect(Kind::Modified, Some(&second)).await?;
    w.expect(Kind::Deleted, None).await?;
    Ok(())
}

/// A watch reopened from the last resourceVersion the closed one saw continues from there.
async fn closed_and_restarted(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let name = "e2e-watch-test-watch-closed";
    let mut broken = watch_config_maps(&ctx, "", &[RESTARTED]).await?;
    let created = api
        .create(&PostParams::default(), &labelled(name, RESTARTED)?)
        .await
        .with_context(|| format!("failed to create configmap {name}"))?;
    update_config_map(&api, name, set_data("mutation", "1")).await?;

    broken.expect(Kind::Added, Some(&created)).await?;
    let last = broken
        .wait_for(Kind::Modified, None, Duration::from_secs(60))
        .await?
        .context("Timed out waiting for second watch notification")?;
    drop(broken);

    let second = update_config_map(&api, name, set_data("mutation", "2")).await?;
    let rv = last.metadata.resource_version.clone().unwrap_or_default();
    let mut restarted = watch_config_maps(&ctx, &rv, &[RESTARTED])
        .await
        .with_context(|| {
            format!("from the last resource version {rv} observed by the first watch")
        })?;
    api.delete(name, &DeleteParams::default())
        .await
        .with_context(|| format!("failed to delete configmap {name}"))?;
    restarted.expect(Kind::Modified, Some(&second)).await?;
    restarted.expect(Kind::Deleted, None).await?;
    Ok(())
}

/// An object that stops matching the selector is DELETED for the watch, is not seen while
/// it does not match, and is ADDED again when it matches again.
async fn label_changed(ctx: Ctx) -> anyhow::Result<()> {
    use Kind::*;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let name = "e2e-watch-test-label-changed";
    let mut w = watch_config_maps(&ctx, "", &[TO_BE_CHANGED]).await?;
    let created = api
        .create(&PostParams::default(), &labelled(name, TO_BE_CHANGED)?)
        .await
        .with_context(|| format!("failed to create configmap {name}"))?;
    let first = update_config_map(&api, name, set_data("mutation", "1")).await?;
    update_config_map(&api, name, set_label("wrong-value"))
        .await
        .context("changing the label value")?;
    w.expect(Added, Some(&created)).await?;
    w.expect(Modified, Some(&first)).await?;
    w.expect(Deleted, None).await?;

    let second = update_config_map(&api, name, set_data("mutation", "2")).await?;
    w.expect_none(Modified, Some(&second)).await?;

    let restored = update_config_map(&api, name, set_label(TO_BE_CHANGED))
        .await
        .context("changing the label value back")?;
    let third = update_config_map(&api, name, set_data("mutation", "3")).await?;
    api.delete(name, &DeleteParams::default())
        .await
        .with_context(|| format!("failed to delete configmap {name}"))?;
    w.expect(Added, Some(&restored)).await?;
    w.expect(Modified, Some(&third)).await?;
    w.expect(Deleted, None).await?;
    Ok(())
}

/// upstream's `watchtools.RetryWatcher`: a watch reopened from the last resourceVersion
/// it delivered whenever the server ends it.
struct RetryWatch {
    api: Api<ConfigMap>,
    rv: String,
    watch: Option<Watch<ConfigMap>>,
}

impl RetryWatch {
    /// upstream's `waitForNextConfigMapEvent`: the next event's object within 10 s.
    async fn next_config_map(&mut self) -> anyhow::Result<ConfigMap> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let w = match &mut self.watch {
                Some(w) => w,
                None => self.watch.insert(
                    Watch::open(&self.api, &WatchParams::default(), &self.rv)
                        .await
                        .context("Failed to watch configmaps")?,
                ),
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match w.next_or_end(left).await? {
                Next::Event(_, cm) => {
                    self.rv = cm.metadata.resource_version.clone().unwrap_or_default();
                    return Ok(cm);
                }
                Next::TimedOut => bail!("timed out waiting for watch event"),
                // The server ended the watch: reopen it where it stopped.
                Next::Ended => self.watch = None,
            }
        }
    }
}

/// upstream's `produceConfigMapEvents`: creates, updates and deletes ConfigMaps at random,
/// one every `every`, until `stop`.
async fn produce_config_map_events(
    api: Api<ConfigMap>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    every: Duration,
) -> anyhow::Result<()> {
    let name = |i: usize| format!("cm-{i}");
    let mut existing: Vec<usize> = Vec::new();
    let mut tick = tokio::time::interval(every);
    let mut i = 0;
    loop {
        tick.tick().await;
        let mut op = rand::random::<u32>() % 3;
        if existing.is_empty() {
            op = 0;
        }
        let pp = PostParams::default();
        match op {
            0 => {
                let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name(i)}}))?;
                api.create(&pp, &cm).await.with_context(|| {
                    format!("Failed to create configmap {} in namespace", name(i))
                })?;
                existing.push(i);
                i += 1;
            }
            1 => {
                let idx = rand::random::<u32>() as usize % existing.len();
                let n = name(existing[idx]);
                let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": n}}))?;
                api.replace(&n, &pp, &cm)
                    .await
                    .with_context(|| format!("Failed to update configmap {n}"))?;
            }
            _ => {
                let idx = rand::random::<u32>() as usize % existing.len();
                let n = name(existing[idx]);
                api.delete(&n, &DeleteParams::default())
                    .await
                    .with_context(|| format!("Failed to delete configmap {n}"))?;
                existing.remove(idx);
            }
        }
        if stop.try_recv().is_ok() {
            return Ok(());
        }
    }
}

/// Watches started at the resourceVersion of each event of the first one all see the
/// same events, in the same order.
async fn consistency(ctx: Ctx) -> anyhow::Result<()> {
    let iterations = 100;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let list = api
        .list(&ListParams::default())
        .await
        .with_context(|| format!("Failed to list configmaps in the namespace {}", ctx.ns))?;
    let mut rv = list.metadata.resource_version.unwrap_or_default();

    let (stop, stopped) = tokio::sync::oneshot::channel();
    let producer = tokio::spawn(produce_config_map_events(
        api.clone(),
        stopped,
        Duration::from_millis(5),
    ));
    let checked = async {
        let mut watches: Vec<RetryWatch> = Vec::new();
        for _ in 0..iterations {
            watches.push(RetryWatch {
                api: api.clone(),
                rv: rv.clone(),
                watch: None,
            });
            let first = watches[0].next_config_map().await?;
            rv = first.metadata.resource_version.unwrap_or_default();
            for w in &mut watches[1..] {
                let e = w.next_config_map().await?;
                let got = e.metadata.resource_version.unwrap_or_default();
                ensure!(
                    got == rv,
                    "resource version mismatch, expected {rv} but got {got}"
                );
            }
        }
        Ok(())
    }
    .await;
    let _ = stop.send(());
    producer.await.context("the event producer panicked")??;
    checked
}
