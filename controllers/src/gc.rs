//! The garbage collector (upstream's garbagecollector): objects whose owners are all gone
//! are deleted; an owner deleted with `propagationPolicy: Orphan` first frees its
//! dependents (its `orphan` finalizer), one deleted in the foreground first waits for its
//! blocking dependents to go (its `foregroundDeletion` finalizer).
//!
//! The graph is rebuilt from watch-fed caches of every kind that can own or be owned in
//! rkube's surface; an owner missing from the cache is confirmed missing with a live read
//! before anything is deleted, so a lagging cache never deletes a live object's dependents.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use kube::core::DynamicResourceScope;
use kube::runtime::reflector::{self, store::Writer, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Resource;
use kube::{Client, ResourceExt};
use serde::Deserialize;
use serde_json::json;

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

/// (group, version, kind, plural, namespaced)
const KINDS: &[(&str, &str, &str, &str, bool)] = &[
    ("", "v1", "Pod", "pods", true),
    (
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        true,
    ),
    ("", "v1", "Service", "services", true),
    ("", "v1", "Endpoints", "endpoints", true),
    ("", "v1", "ConfigMap", "configmaps", true),
    ("", "v1", "Secret", "secrets", true),
    ("", "v1", "ServiceAccount", "serviceaccounts", true),
    ("", "v1", "Node", "nodes", false),
    ("coordination.k8s.io", "v1", "Lease", "leases", true),
    (
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        true,
    ),
];

struct Kind {
    ar: ApiResource,
    namespaced: bool,
    store: Store<Meta>,
}

/// What the collector keeps of an object: a metadata-only watch's object (as
/// `PartialObjectMeta`), decoded into the fields the graph reads. The rest — managedFields
/// above all, most of a metadata event's bytes — is skipped by the decoder, not built and
/// dropped.
#[derive(Clone, Debug)]
struct Meta(ObjectMeta);

impl<'de> Deserialize<'de> for Meta {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Meta, D::Error> {
        #[derive(Deserialize)]
        struct Object {
            #[serde(default)]
            metadata: Fields,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase")]
        struct Fields {
            name: Option<String>,
            namespace: Option<String>,
            uid: Option<String>,
            resource_version: Option<String>,
            deletion_timestamp: Option<Time>,
            finalizers: Option<Vec<String>>,
            owner_references: Option<Vec<OwnerReference>>,
        }
        let m = Object::deserialize(d)?.metadata;
        Ok(Meta(ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            resource_version: m.resource_version,
            deletion_timestamp: m.deletion_timestamp,
            finalizers: m.finalizers,
            owner_references: m.owner_references,
            ..ObjectMeta::default()
        }))
    }
}

impl Resource for Meta {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn metadata_api() -> bool {
        true
    }
    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::kind(dt)
    }
    fn group(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::group(dt)
    }
    fn version(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::version(dt)
    }
    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::api_version(dt)
    }
    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.0
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.0
    }
}

pub async fn run(client: Client) -> anyhow::Result<()> {
    let (dirty_tx, mut dirty) = tokio::sync::mpsc::channel::<()>(1);
    let mut kinds = Vec::new();
    let mut tasks = Vec::new();
    for &(group, version, kind, plural, namespaced) in KINDS {
        let ar =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        // Only metadata matters here: a metadata watch, as upstream's collector's informers.
        let api: Api<Meta> = Api::all_with(client.clone(), &ar);
        let writer = Writer::new(ar.clone());
        let store = writer.as_reader();
        let tx = dirty_tx.clone();
        let stream = watcher(api, watcher::Config::default());
        let feed = reflector::reflector(writer, stream)
            .default_backoff()
            .touched_objects()
            .for_each(move |_| {
                let _ = tx.try_send(());
                async {}
            });
        tasks.push(crate::AbortOnDrop(tokio::spawn(feed)));
        kinds.push(Kind {
            ar,
            namespaced,
            store,
        });
    }
    for k in &kinds {
        k.store.wait_until_ready().await?;
    }
    loop {
        if let Err(e) = sweep(&client, &kinds).await {
            tracing::warn!(error = %e, "garbage collection pass failed; retrying");
        }
        // Coalesce bursts of changes: a sweep reads every object, so at most two a second.
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Wait for a change, or look again in a while (owners can vanish between passes).
        let _ = tokio::time::timeout(Duration::from_secs(30), dirty.recv()).await;
    }
}

struct Obj {
    kind: usize,
    ns: Option<String>,
    name: String,
    uid: String,
    deleting: bool,
    finalizers: Vec<String>,
    owners: Vec<OwnerReference>,
}

fn api_for(client: &Client, k: &Kind, ns: Option<&str>) -> Api<DynamicObject> {
    match (k.namespaced, ns) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &k.ar),
        _ => Api::all_with(client.clone(), &k.ar),
    }
}

async fn sweep(client: &Client, kinds: &[Kind]) -> Result<(), kube::Error> {
    let mut objs: Vec<Obj> = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        for o in k.store.state() {
            let o: Arc<Meta> = o;
            objs.push(Obj {
                kind: i,
                ns: o.namespace(),
                name: o.name_any(),
                uid: o.uid().unwrap_or_default(),
                deleting: o.0.deletion_timestamp.is_some(),
                finalizers: o.finalizers().to_vec(),
                owners: o.owner_references().to_vec(),
            });
        }
    }
    let by_uid: HashMap<&str, &Obj> = objs.iter().map(|o| (o.uid.as_str(), o)).collect();
    let graph = Graph {
        client,
        kinds,
        objs: &objs,
        by_uid,
    };
    // Owners being deleted with a finalizer this collector serves.
    for owner in objs.iter().filter(|o| o.deleting) {
        let dependents: Vec<&Obj> = objs
            .iter()
            .filter(|d| d.owners.iter().any(|r| r.uid == owner.uid))
            .collect();
        if owner.finalizers.iter().any(|f| f == ORPHAN) {
            let calls = dependents.iter().map(|d| graph.orphan(owner, d).boxed());
            concurrently(calls.collect()).await?;
            remove_finalizer(client, &kinds[owner.kind], owner, ORPHAN).await?;
        } else if owner.finalizers.iter().any(|f| f == FOREGROUND) {
            let live = dependents.iter().filter(|d| !d.deleting);
            let calls = live.map(|d| graph.delete_for_foreground(owner, d).boxed());
            concurrently(calls.collect()).await?;
            let blocking = dependents.iter().any(|d| {
                d.owners
                    .iter()
                    .any(|r| r.uid == owner.uid && r.block_owner_deletion == Some(true))
            });
            if !blocking {
                remove_finalizer(client, &kinds[owner.kind], owner, FOREGROUND).await?;
            }
        }
    }
    // Dependents whose owners are gone. Only objects with an owner the cache lacks can have
    // one gone: a call (and a boxed future) for each of those, not for every object.
    let orphaned = objs.iter().filter(|o| {
        !o.deleting
            && o.owners
                .iter()
                .any(|r| !graph.by_uid.contains_key(r.uid.as_str()))
    });
    let calls = orphaned.map(|d| graph.collect_if_owners_gone(d).boxed());
    concurrently(calls.collect()).await
}

/// One sweep's view of the cached objects, and what it acts with.
struct Graph<'a> {
    client: &'a Client,
    kinds: &'a [Kind],
    objs: &'a [Obj],
    by_uid: HashMap<&'a str, &'a Obj>,
}

impl Graph<'_> {
    /// The `orphan` finalizer: `d` loses its reference to `owner`.
    async fn orphan(&self, owner: &Obj, d: &Obj) -> Result<(), kube::Error> {
        let refs: Vec<&OwnerReference> = d.owners.iter().filter(|r| r.uid != owner.uid).collect();
        self.set_owners(d, &refs).await
    }

    /// The `foregroundDeletion` finalizer, for one dependent of `owner` (upstream's
    /// attemptToDeleteItem): a dependent with another owner that stays (a "solid" one) is
    /// kept and only loses its references to owners that are gone or waiting for their own
    /// dependents to go; otherwise it is deleted.
    async fn delete_for_foreground(&self, owner: &Obj, d: &Obj) -> Result<(), kube::Error> {
        let (client, kind) = (self.client, &self.kinds[d.kind]);
        let mut solid = false;
        let mut dropped: Vec<&str> = vec![owner.uid.as_str()];
        for r in d.owners.iter().filter(|r| r.uid != owner.uid) {
            match self.by_uid.get(r.uid.as_str()) {
                Some(o) if o.deleting && o.finalizers.iter().any(|f| f == FOREGROUND) => {
                    dropped.push(r.uid.as_str())
                }
                Some(_) => solid = true,
                None if owner_exists(client, self.kinds, d, r).await? => solid = true,
                None => dropped.push(r.uid.as_str()),
            }
        }
        if solid {
            let refs: Vec<&OwnerReference> = d
                .owners
                .iter()
                .filter(|r| !dropped.contains(&r.uid.as_str()))
                .collect();
            return self.set_owners(d, &refs).await;
        }
        if !self
            .objs
            .iter()
            .any(|x| x.owners.iter().any(|r| r.uid == d.uid))
        {
            // Without dependents of its own it goes in the background (upstream's default
            // policy for an object without an orphan or foreground finalizer).
            return delete(client, kind, d, "Background").await;
        }
        // With dependents: in the foreground. Upstream's cycle guard: one that has a
        // dependent waiting for its own dependents first makes its references non-blocking.
        let cycle = self.objs.iter().any(|x| {
            x.deleting
                && x.finalizers.iter().any(|f| f == FOREGROUND)
                && x.owners.iter().any(|r| r.uid == d.uid)
        });
        if cycle
            && d.owners
                .iter()
                .any(|r| r.block_owner_deletion == Some(true))
        {
            let refs: Vec<OwnerReference> = d
                .owners
                .iter()
                .cloned()
                .map(|mut r| {
                    if r.block_owner_deletion == Some(true) {
                        r.block_owner_deletion = Some(false);
                    }
                    r
                })
                .collect();
            patch_meta(client, kind, d, json!({"ownerReferences": refs})).await?;
        }
        delete(client, kind, d, "Foreground").await
    }

    /// A dependent some of whose owners are gone (confirmed by live reads): deleted when all
    /// are, else it loses its references to them. The cache may lag behind (another
    /// sweep's patches, a relist): the decision is on the dependent as it is now, as
    /// upstream's attemptToDeleteItem reads it live.
    async fn collect_if_owners_gone(&self, d: &Obj) -> Result<(), kube::Error> {
        let (client, kind) = (self.client, &self.kinds[d.kind]);
        let mut absent = Vec::new();
        for r in &d.owners {
            if !self.by_uid.contains_key(r.uid.as_str())
                && !owner_exists(client, self.kinds, d, r).await?
            {
                absent.push(r);
            }
        }
        if absent.is_empty() {
            return Ok(());
        }
        let api = api_for(client, kind, d.ns.as_deref());
        let Some(live) = api.get_opt(&d.name).await? else {
            return Ok(());
        };
        if live.uid().as_deref() != Some(d.uid.as_str())
            || live.metadata.deletion_timestamp.is_some()
        {
            return Ok(());
        }
        let owners = live.owner_references();
        absent.retain(|a| owners.iter().any(|r| r.uid == a.uid));
        if absent.is_empty() {
            return Ok(());
        }
        if absent.len() == owners.len() {
            tracing::info!(name = %d.name, namespace = ?d.ns, kind = %kind.ar.kind, "deleting: its owners are gone");
            return delete(client, kind, d, "Background").await;
        }
        let refs: Vec<&OwnerReference> = owners
            .iter()
            .filter(|r| !absent.iter().any(|a| a.uid == r.uid))
            .collect();
        self.set_owners(d, &refs).await
    }

    /// Replaces `d`'s ownerReferences (none: the field goes).
    async fn set_owners(&self, d: &Obj, refs: &[&OwnerReference]) -> Result<(), kube::Error> {
        let meta = json!({"ownerReferences": or_null(refs)});
        patch_meta(self.client, &self.kinds[d.kind], d, meta).await
    }
}

/// How many of a sweep's API calls may be in flight at once (upstream's collector runs
/// 20 workers): a sweep that deleted or patched 100 dependents one after another took
/// tens of seconds on a busy cluster, and a foreground owner waits for the next sweep.
const IN_FLIGHT: usize = 16;

/// Runs the calls, at most [`IN_FLIGHT`] at once; the first error after all ran.
async fn concurrently(
    calls: Vec<BoxFuture<'_, Result<(), kube::Error>>>,
) -> Result<(), kube::Error> {
    let results: Vec<Result<(), kube::Error>> = futures::stream::iter(calls)
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    results.into_iter().collect()
}

/// A live read of an owner the cache does not hold (the cache may lag behind).
async fn owner_exists(
    client: &Client,
    kinds: &[Kind],
    d: &Obj,
    r: &OwnerReference,
) -> Result<bool, kube::Error> {
    let group = r.api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    let Some(k) = kinds
        .iter()
        .find(|k| k.ar.kind == r.kind && k.ar.group == group)
    else {
        // An owner kind outside this collector's view: never collect on its account.
        return Ok(true);
    };
    match api_for(client, k, d.ns.as_deref()).get_opt(&r.name).await? {
        Some(o) => Ok(o.uid().as_deref() == Some(r.uid.as_str())),
        None => Ok(false),
    }
}

async fn patch_meta(
    client: &Client,
    k: &Kind,
    o: &Obj,
    meta: serde_json::Value,
) -> Result<(), kube::Error> {
    let mut meta = meta;
    meta["uid"] = json!(o.uid);
    let body = json!({"metadata": meta});
    match api_for(client, k, o.ns.as_deref())
        .patch(&o.name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

async fn remove_finalizer(
    client: &Client,
    k: &Kind,
    o: &Obj,
    name: &str,
) -> Result<(), kube::Error> {
    let rest: Vec<&String> = o.finalizers.iter().filter(|f| *f != name).collect();
    patch_meta(client, k, o, json!({"finalizers": or_null(&rest)})).await
}

/// A list for a merge patch: an empty one removes the field, as upstream leaves it.
fn or_null<T: serde::Serialize>(v: &[T]) -> serde_json::Value {
    if v.is_empty() {
        serde_json::Value::Null
    } else {
        json!(v)
    }
}

async fn delete(client: &Client, k: &Kind, o: &Obj, policy: &str) -> Result<(), kube::Error> {
    let dp = match policy {
        "Foreground" => DeleteParams::foreground(),
        _ => DeleteParams::background(),
    };
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some(o.uid.clone()),
            resource_version: None,
        }),
        ..dp
    };
    match api_for(client, k, o.ns.as_deref())
        .delete(&o.name, &dp)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_decodes_to_what_the_graph_reads() {
        let event = json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {
                "name": "web-1", "namespace": "default", "uid": "u1", "resourceVersion": "42",
                "deletionTimestamp": "2026-11-23T12:00:00Z",
                "finalizers": ["foregroundDeletion"],
                "ownerReferences": [{"apiVersion": "v1", "kind": "ReplicationController",
                    "name": "web", "uid": "u0", "blockOwnerDeletion": true}],
                "labels": {"app": "web"},
                "managedFields": [{"manager": "m", "operation": "Update", "apiVersion": "v1",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}}}],
            },
        });
        let m: Meta = serde_json::from_value(event).unwrap();
        assert_eq!(m.name_any(), "web-1");
        assert_eq!(m.namespace().as_deref(), Some("default"));
        assert_eq!(m.uid().as_deref(), Some("u1"));
        assert_eq!(m.resource_version().as_deref(), Some("42"));
        assert!(m.0.deletion_timestamp.is_some());
        assert_eq!(m.finalizers(), ["foregroundDeletion"]);
        let owner = &m.owner_references()[0];
        assert_eq!(
            (owner.uid.as_str(), owner.block_owner_deletion),
            ("u0", Some(true))
        );
        assert!(m.0.managed_fields.is_none() && m.0.labels.is_none());
        // As a watch's object and a list's item: the kind is what the request asked for.
        let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Pod"), "pods");
        assert_eq!(
            Meta::url_path(&ar, Some("default")),
            "/api/v1/namespaces/default/pods"
        );
        assert!(Meta::metadata_api());
    }
}
