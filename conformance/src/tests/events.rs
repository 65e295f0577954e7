//! Events: upstream's test/e2e/instrumentation/core_events.go (core/v1) and
//! test/e2e/instrumentation/events.go (events.k8s.io/v1).

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::api::events::v1::Event as EventV1;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::test;
use crate::{Ctx, Test};

const AREA: &str = "Events";

/// `time.Unix(1505828956, 0)`, as upstream's tests set it.
const SOME_TIME: &str = "2017-09-19T13:49:16.000000Z";

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Event, manage lifecycle of an Event",
            "[sig-instrumentation] Events should manage the lifecycle of an event [Conformance]",
            core_lifecycle
        ),
        test!(
            AREA,
            "Event, delete a collection",
            "[sig-instrumentation] Events should delete a collection of events [Conformance]",
            core_delete_collection
        ),
        test!(
            AREA,
            "New Event resource lifecycle, testing a single event",
            "[sig-instrumentation] Events API should ensure that an event can be fetched, patched, deleted, and listed [Conformance]",
            v1_lifecycle
        ),
        test!(
            AREA,
            "New Event resource lifecycle, testing a list of events",
            "[sig-instrumentation] Events API should delete a collection of events [Conformance]",
            v1_delete_collection
        ),
    ]
}

/// A core/v1 Event as upstream's core_events.go creates them.
fn core_event(ns: &str, name: &str, label: &str, message: &str) -> anyhow::Result<Event> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {label: "true"}},
        "message": message, "reason": "Test", "type": "Normal", "count": 1,
        "involvedObject": {"namespace": ns},
    }))?)
}

/// upstream's `newTestEvent` (events.k8s.io/v1).
fn v1_event(ns: &str, name: &str, label: &str) -> anyhow::Result<EventV1> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {label: "true"}},
        "regarding": {"namespace": ns},
        "eventTime": SOME_TIME,
        "note": format!("This is {name}"),
        "action": "Do", "reason": "Test", "type": "Normal",
        "reportingController": "test-controller", "reportingInstance": "test-node",
    }))?)
}

fn in_list<K: kube::Resource>(items: &[K], ns: &str, name: &str) -> bool {
    items.iter().any(|e| {
        e.meta().name.as_deref() == Some(name) && e.meta().namespace.as_deref() == Some(ns)
    })
}

fn names<K: kube::Resource>(items: &[K]) -> Vec<String> {
    items
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e.meta().namespace.as_deref().unwrap_or(""),
                e.meta().name.as_deref().unwrap_or("")
            )
        })
        .collect()
}

/// What the control plane sets and the comparisons leave out.
fn clear_server_fields(meta: &mut kube::api::ObjectMeta) {
    meta.resource_version = None;
    meta.managed_fields = None;
}

/// Create, find across namespaces, patch the message, update with a series, delete.
async fn core_lifecycle(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<Event> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let all: Api<Event> = Api::all(ctx.client.clone());
    let name = "event-test";
    api.create(
        &PostParams::default(),
        &core_event(&ctx.ns, name, "testevent-constant", "This is a test event")?,
    )
    .await
    .context("failed to create test event")?;

    let lp = ListParams::default().labels("testevent-constant=true");
    let list = all.list(&lp).await.context("failed list all events")?;
    ensure!(
        in_list(&list.items, &ctx.ns, name),
        "unable to find test event {name} in namespace {}, full list of events is {:?}",
        ctx.ns,
        names(&list.items)
    );

    let patched_message = "This is a test event - patched";
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Strategic(json!({"message": patched_message})),
    )
    .await
    .context("failed to patch the test event")?;
    let event = api
        .get(name)
        .await
        .context("failed to fetch the test event")?;
    ensure!(
        event.message.as_deref() == Some(patched_message),
        "test event message does not match patch message: expected {patched_message:?}, got {:?}",
        event.message
    );

    let mut test_event = api.get(name).await.context("failed to get test event")?;
    test_event.series = Some(serde_json::from_value(
        json!({"count": 100, "lastObservedTime": SOME_TIME}),
    )?);
    clear_server_fields(&mut test_event.metadata);
    api.replace(name, &PostParams::default(), &test_event)
        .await
        .context("failed to update the test event")?;
    let mut event = api.get(name).await.context("failed to get test event")?;
    clear_server_fields(&mut event.metadata);
    ensure!(
        event == test_event,
        "test event wasn't properly updated: sent {test_event:?}, got back {event:?}"
    );

    api.delete(name, &DeleteParams::default())
        .await
        .context("failed to delete the test event")?;
    let list = all.list(&lp).await.context("fail to list all events")?;
    ensure!(
        !in_list(&list.items, &ctx.ns, name),
        "Should not have found test event {name} in namespace {}, full list of events {:?}",
        ctx.ns,
        names(&list.items)
    );
    Ok(())
}

/// Three labelled events, deleted as a collection by their label, are gone.
async fn core_delete_collection(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<Event> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let event_names = ["test-event-1", "test-event-2", "test-event-3"];
    for name in event_names {
        api.create(
            &PostParams::default(),
            &core_event(&ctx.ns, name, "testevent-set", &format!("This is {name}"))?,
        )
        .await
        .context("failed to create event")?;
    }
    let lp = ListParams::default().labels("testevent-set=true");
    let list = api
        .list(&lp)
        .await
        .context("failed to get a list of events")?;
    ensure!(
        list.items.len() == event_names.len(),
        "looking for expected number of pod templates events: expected {}, got {:?}",
        event_names.len(),
        names(&list.items)
    );
    api.delete_collection(&DeleteParams::default(), &lp)
        .await
        .context("failed to delete the test event")?;
    // wait.PollUntilContextTimeout(1 s, 1 min): the list becomes empty.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let list = api.list(&lp).await.context("requesting list of events")?;
        if list.items.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "failed to count required events: expected 0, still {:?}",
                names(&list.items)
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// events.k8s.io/v1: create, list (both scopes, and by field on either API), patch the
/// note, update with a series, delete.
async fn v1_lifecycle(ctx: Ctx) -> anyhow::Result<()> {
    let core: Api<Event> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let api: Api<EventV1> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let all: Api<EventV1> = Api::all(ctx.client.clone());
    let name = "event-test";
    api.create(
        &PostParams::default(),
        &v1_event(&ctx.ns, name, "testevent-constant")?,
    )
    .await
    .context("failed to create test event")?;

    let lp = ListParams::default().labels("testevent-constant=true");
    let exists = |api: Api<EventV1>| {
        let (lp, ns) = (lp.clone(), ctx.ns.clone());
        async move {
            let list = api.list(&lp).await.context("failed to list events")?;
            anyhow::Ok(in_list(&list.items, &ns, name))
        }
    };
    ensure!(
        exists(all.clone()).await?,
        "failed to find test event in list with cluster scope"
    );
    ensure!(
        exists(api.clone()).await?,
        "failed to find test event in list with namespace scope"
    );

    let filtered = core
        .list(&ListParams::default().fields("source=test-controller"))
        .await
        .context("failed to get filtered list")?;
    ensure!(
        filtered.items.len() == 1 && filtered.items[0].metadata.name.as_deref() == Some(name),
        "listing core/v1 events by source=test-controller: expected single event {name}, got {:?}",
        names(&filtered.items)
    );
    let filtered = api
        .list(&ListParams::default().fields("reportingController=test-controller"))
        .await
        .context("failed to get filtered list")?;
    ensure!(
        filtered.items.len() == 1 && filtered.items[0].metadata.name.as_deref() == Some(name),
        "listing events.k8s.io/v1 events by reportingController=test-controller: expected single event {name}, got {:?}",
        names(&filtered.items)
    );

    let mut test_event = api.get(name).await.context("failed to get test event")?;
    let patched_note = "This is a test event - patched";
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Strategic(json!({"note": patched_note})),
    )
    .await
    .context("failed to patch the test event")?;
    let mut event = api.get(name).await.context("failed to get test event")?;
    clear_server_fields(&mut event.metadata);
    clear_server_fields(&mut test_event.metadata);
    test_event.note = Some(patched_note.into());
    ensure!(
        event == test_event,
        "test event wasn't properly patched: expected {test_event:?}, got {event:?}"
    );

    test_event.series = Some(serde_json::from_value(
        json!({"count": 100, "lastObservedTime": SOME_TIME}),
    )?);
    api.replace(name, &PostParams::default(), &test_event)
        .await
        .context("failed to update the test event")?;
    let mut event = api.get(name).await.context("failed to get test event")?;
    clear_server_fields(&mut event.metadata);
    ensure!(
        event == test_event,
        "test event wasn't properly updated: sent {test_event:?}, got back {event:?}"
    );

    api.delete(name, &DeleteParams::default())
        .await
        .context("failed to delete the test event")?;
    ensure!(
        !exists(all).await?,
        "should not have found test event after deletion (cluster scope)"
    );
    ensure!(
        !exists(api).await?,
        "should not have found test event after deletion (namespace scope)"
    );
    Ok(())
}

/// events.k8s.io/v1: three labelled events, deleted as a collection, are gone.
async fn v1_delete_collection(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<EventV1> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let event_names = ["test-event-1", "test-event-2", "test-event-3"];
    for name in event_names {
        api.create(
            &PostParams::default(),
            &v1_event(&ctx.ns, name, "testevent-set")?,
        )
        .await
        .context("failed to create event")?;
    }
    let lp = ListParams::default().labels("testevent-set=true");
    let list = api
        .list(&lp)
        .await
        .context("failed to get a list of events")?;
    ensure!(
        list.items.len() == event_names.len(),
        "unexpected event list: expected {} events, got {:?}",
        event_names.len(),
        names(&list.items)
    );
    api.delete_collection(&DeleteParams::default(), &lp)
        .await
        .context("failed to delete the test event")?;
    let list = api
        .list(&lp)
        .await
        .context("failed to get a list of events")?;
    ensure!(
        list.items.is_empty(),
        "unexpected event list: expected none, got {:?}",
        names(&list.items)
    );
    Ok(())
}
