//! A client library (`kube`) against a real server: watches, optimistic concurrency,
//! compaction.

mod support;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams, WatchEvent, WatchParams};
use support::Cluster;

fn cm(name: &str, v: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some([("v".to_string(), v.to_string())].into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_a_resource_version_sees_every_later_change_in_order() {
    let c = Cluster::start();
    let api: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let first = api
        .create(&PostParams::default(), &cm("a", "0"))
        .await
        .unwrap();
    let rv = first.metadata.resource_version.clone().unwrap();
    let mut want = Vec::new();
    let mut cur = first;
    for i in 1..=20 {
        cur.data = Some([("v".to_string(), i.to_string())].into());
        cur = api
            .replace("a", &PostParams::default(), &cur)
            .await
            .unwrap();
        want.push(("MODIFIED", "a".to_string(), i.to_string()));
        if i % 5 == 0 {
            let name = format!("b{i}");
            api.create(&PostParams::default(), &cm(&name, "x"))
                .await
                .unwrap();
            want.push(("ADDED", name.clone(), "x".into()));
            api.delete(&name, &DeleteParams::default()).await.unwrap();
            want.push(("DELETED", name, "x".into()));
        }
    }
    let events: Vec<_> = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .try_filter(support::not_root_ca)
        .take(want.len())
        .try_collect()
        .await
        .unwrap();
    let got: Vec<(&str, String, String)> = events
        .iter()
        .map(|e| {
            let (ty, o) = match e {
                WatchEvent::Added(o) => ("ADDED", o),
                WatchEvent::Modified(o) => ("MODIFIED", o),
                WatchEvent::Deleted(o) => ("DELETED", o),
                other => panic!("unexpected event {other:?}"),
            };
            (
                ty,
                o.metadata.name.clone().unwrap(),
                o.data.as_ref().unwrap()["v"].clone(),
            )
        })
        .collect();
    assert_eq!(got, want);
    let rvs: Vec<i64> = events
        .iter()
        .map(|e| match e {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => o
                .metadata
                .resource_version
                .as_ref()
                .unwrap()
                .parse()
                .unwrap(),
            _ => 0,
        })
        .collect();
    assert!(
        rvs.windows(2).all(|w| w[0] < w[1]),
        "resource versions increase: {rvs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_update_gets_409_conflict() {
    let c = Cluster::start();
    let api: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let v1 = api
        .create(&PostParams::default(), &cm("c", "1"))
        .await
        .unwrap();
    let mut v2 = v1.clone();
    v2.data = Some([("v".to_string(), "2".to_string())].into());
    api.replace("c", &PostParams::default(), &v2).await.unwrap();
    let mut stale = v1.clone();
    stale.data = Some([("v".to_string(), "3".to_string())].into());
    match api.replace("c", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
            assert_eq!(
                s.message,
                "Operation cannot be fulfilled on configmaps \"c\": the object has been modified; please apply your changes to the latest version and try again"
            );
        }
        other => panic!("stale update answered {other:?}"),
    }
    assert_eq!(api.get("c").await.unwrap().data.unwrap()["v"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_compacted_revision_gets_410_gone() {
    // History is kept a second at least (1 minute by default), and a few hundred revisions.
    let c = Cluster::start_in(
        tempfile::tempdir().unwrap(),
        &["--etcd-compaction-interval", "1s"],
    );
    let api: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let first = api
        .create(&PostParams::default(), &cm("w", "0"))
        .await
        .unwrap();
    let old_rv = first.metadata.resource_version.clone().unwrap();
    let started = std::time::Instant::now();
    // Enough writes for automatic compaction (which keeps a few hundred revisions) to pass old_rv.
    let mut tasks = Vec::new();
    for t in 0..16 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("w{t}");
            let mut cur = api
                .create(&PostParams::default(), &cm(&name, "0"))
                .await
                .unwrap();
            for i in 0..110 {
                cur.data = Some([("v".to_string(), i.to_string())].into());
                cur = api
                    .replace(&name, &PostParams::default(), &cur)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Once old_rv is older than the window (tracked in marks of up to a second) and far
    // enough behind, a write compacts it away (the store compacts after answering a write
    // and before taking the next). How soon depends on how fast the writes above went, so
    // write on until a watch from old_rv is refused, for 30 s at most.
    let deadline = started + std::time::Duration::from_secs(30);
    for i in 0.. {
        api.create(&PostParams::default(), &cm(&format!("x{i}"), "0"))
            .await
            .unwrap();
        let mut w = api
            .watch(&WatchParams::default(), &old_rv)
            .await
            .unwrap()
            .boxed();
        match w.next().await {
            Some(Ok(WatchEvent::Error(e))) => {
                assert_eq!(e.code, 410);
                assert_eq!(e.reason, "Expired");
                assert!(
                    e.message
                        .starts_with(&format!("too old resource version: {}", old_rv)),
                    "{}",
                    e.message
                );
                return;
            }
            other => assert!(
                std::time::Instant::now() < deadline,
                "a watch from revision {old_rv} was still served after 30 s of writes: {other:?}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_warn_by_default_and_evictions_delete() {
    use k8s_openapi::api::core::v1::Pod;
    let c = Cluster::start();
    let client = c.client();
    let body = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"e"},"spec":{"bogus":1,"containers":[{"name":"c","image":"busybox"}]}}"#;
    let req = http::Request::builder()
        .method("POST")
        .uri("/api/v1/namespaces/default/pods")
        .header("content-type", "application/json")
        .body(kube::client::Body::from(body.to_vec()))
        .unwrap();
    let resp = client.send(req).await.unwrap();
    assert_eq!(resp.status(), 201);
    let warning = resp
        .headers()
        .get("warning")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(warning, r#"299 - "unknown field \"spec.bogus\"""#);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.evict("e", &Default::default()).await.unwrap();
    assert!(pods.get_opt("e").await.unwrap().is_none());
}

/// A metadata watch (`Accept: …;as=PartialObjectMetadata`, what `Api<PartialObjectMeta<K>>`
/// and upstream's garbage collector use) gets PartialObjectMetadata objects, label-selected,
/// from its initial list and from the changes after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_watch_gets_partial_object_metadata() {
    use kube::core::PartialObjectMeta;
    let c = Cluster::start();
    let api: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let meta: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(c.client(), "default");
    let mut labelled = cm("labelled", "0");
    labelled.metadata.labels = Some([("app".to_string(), "x".to_string())].into());
    let first = api.create(&PostParams::default(), &labelled).await.unwrap();
    let rv = first.metadata.resource_version.clone().unwrap();
    let selected = WatchParams::default().labels("app=x");
    let initial = meta.watch(&selected, "0").await.unwrap().take(1);
    let mut events: Vec<_> = initial.try_collect().await.unwrap();
    api.create(&PostParams::default(), &cm("other", "0"))
        .await
        .unwrap();
    api.delete("labelled", &DeleteParams::default())
        .await
        .unwrap();
    let changes = meta.watch(&selected, &rv).await.unwrap().take(1);
    events.extend(changes.try_collect::<Vec<_>>().await.unwrap());
    let got: Vec<(&str, String, String)> = events
        .iter()
        .map(|e| {
            let (ty, o) = match e {
                WatchEvent::Added(o) => ("ADDED", o),
                WatchEvent::Deleted(o) => ("DELETED", o),
                other => panic!("unexpected event {other:?}"),
            };
            let kind = o.types.as_ref().map(|t| t.kind.clone()).unwrap_or_default();
            (ty, o.metadata.name.clone().unwrap(), kind)
        })
        .collect();
    let partial = "PartialObjectMetadata".to_string();
    assert_eq!(
        got,
        [
            ("ADDED", "labelled".into(), partial.clone()),
            ("DELETED", "labelled".into(), partial)
        ]
    );
}

/// Field ownership as upstream records it: a create owns the fields of the object as
/// sent and defaulted (`dnsPolicy`), not those admission adds (the service account token
/// volume); a `pods/status` patch gets an entry of its own and leaves the creator's as it
/// was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_fields_follow_who_set_what() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Patch, PatchParams, PostParams};
    let c = Cluster::start();
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(c.client(), "default");
    support::wait_for(&accounts, "default", "the default service account", |_| {
        true
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(c.client(), "default");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "owned"},
        // Left alone by the scheduler: its status writes would add an entry.
        "spec": {"schedulerName": "none", "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    let create = PostParams {
        field_manager: Some("creator".into()),
        ..Default::default()
    };
    let created = pods.create(&create, &pod).await.unwrap();
    let spec = created.spec.as_ref().unwrap();
    assert!(spec.volumes.as_ref().is_some_and(|v| !v.is_empty()));
    let entries = |p: &Pod| -> Vec<serde_json::Value> {
        p.metadata
            .managed_fields
            .iter()
            .flatten()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect()
    };
    let mine = entries(&created);
    assert_eq!(mine.len(), 1, "{mine:?}");
    let owned = &mine[0]["fieldsV1"]["f:spec"];
    assert!(owned["f:containers"]["k:{\"name\":\"c\"}"]
        .get("f:image")
        .is_some());
    assert!(owned.get("f:dnsPolicy").is_some(), "{owned}");
    assert!(owned.get("f:volumes").is_none(), "{owned}");
    // Set by admission after the create recorded its writer's fields (upstream: nobody's).
    assert_eq!(spec.service_account_name.as_deref(), Some("default"));
    assert_eq!(spec.priority, Some(0));
    let tolerated: Vec<_> = spec
        .tolerations
        .iter()
        .flatten()
        .map(|t| (t.key.clone().unwrap_or_default(), t.toleration_seconds))
        .collect();
    assert_eq!(
        tolerated,
        [
            ("node.kubernetes.io/not-ready".to_string(), Some(300)),
            ("node.kubernetes.io/unreachable".to_string(), Some(300))
        ]
    );
    for f in [
        "f:serviceAccountName",
        "f:serviceAccount",
        "f:tolerations",
        "f:priority",
        "f:preemptionPolicy",
    ] {
        assert!(owned.get(f).is_none(), "{f} owned by the creator: {owned}");
    }
    let status = serde_json::json!({"status": {"phase": "Running", "podIP": "10.42.0.9"}});
    let patched = pods
        .patch_status(
            "owned",
            &PatchParams::apply("kubelet-ish"),
            &Patch::Merge(&status),
        )
        .await
        .unwrap();
    let after = entries(&patched);
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(after[0], mine[0]);
    assert_eq!(after[1]["manager"], "kubelet-ish");
    assert_eq!(after[1]["subresource"], "status");
    assert!(after[1]["fieldsV1"]["f:status"].get("f:podIP").is_some());
}

/// managedFields are the server's record: a client that sends its own with an update
/// does not rewrite them, whether the object had any before or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_cannot_rewrite_managed_fields() {
    use kube::api::PostParams;
    let c = Cluster::start();
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let bare: ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "bare"}})).unwrap();
    let created = cms.create(&PostParams::default(), &bare).await.unwrap();
    // A ConfigMap with nothing in it: no field is anyone's.
    assert!(created.metadata.managed_fields.is_none());
    let mut forged = created.clone();
    forged.metadata.managed_fields = Some(vec![serde_json::from_value(serde_json::json!({
        "manager": "forger", "operation": "Update", "apiVersion": "v1",
        "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {"f:x": {}}}},
    }))
    .unwrap()]);
    forged.data = Some([("k".to_string(), "v".to_string())].into());
    let params = PostParams {
        field_manager: Some("writer".into()),
        ..Default::default()
    };
    let updated = cms.replace("bare", &params, &forged).await.unwrap();
    let managers: Vec<String> = updated
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|e| e.manager.clone())
        .collect();
    assert_eq!(managers, ["writer"]);
}
