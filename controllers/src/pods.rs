//! The controllers' one watch of every pod (as upstream's shared pod informer): a cache
//! of them, trimmed to what controllers read ([`crate::slim_pod`]), an index by
//! controlling owner, and the pods that changed, for the controllers that react to pods.
//!
//! Invariants:
//! - The owner index holds the store's own `Arc`s and is updated under its write lock
//!   together with the store: a reader that saw a pod in the store and then takes the
//!   index's read lock finds that pod (or a newer state of it) in the index.
//! - During a relist both keep serving the state from before it; both switch at its end.
//! - A pod is announced to subscribers after the store holds its new state: a reconcile
//!   it triggers reads that state (or a newer one).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use tokio::sync::mpsc;

use crate::AbortOnDrop;

/// The shared pod cache; clones share it.
#[derive(Clone)]
pub struct Pods {
    pub store: Store<Pod>,
    owners: Arc<RwLock<OwnerIndex>>,
    subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<Arc<Pod>>>>>,
}

impl Pods {
    /// Starts the watch of `api`'s pods; it runs until the guard is dropped.
    pub fn start(api: kube::Api<Pod>) -> (Pods, AbortOnDrop<()>) {
        let (store, writer) = reflector::store();
        let pods = Pods {
            store,
            owners: Arc::default(),
            subscribers: Arc::default(),
        };
        let events = watcher(api, watcher::Config::default())
            .modify(|p| {
                crate::strip(&mut p.metadata);
                crate::slim_pod(p);
            })
            .default_backoff();
        let feed = pods.clone().feed(writer, events);
        (pods, AbortOnDrop(tokio::spawn(feed)))
    }

    async fn feed(
        self,
        mut writer: reflector::store::Writer<Pod>,
        events: impl Stream<Item = Result<Event<Pod>, watcher::Error>>,
    ) {
        let mut events = std::pin::pin!(events);
        while let Some(ev) = events.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!(error = %e, "pod watch failed; retrying");
                    continue;
                }
            };
            let changed = {
                let mut owners = self.owners.write().unwrap();
                writer.apply_watcher_event(&ev);
                match ev {
                    Event::Apply(p) => {
                        let now = self.store.get(&ObjectRef::from_obj(&p));
                        owners.set(now.clone());
                        now
                    }
                    // The store swaps in the relist at its end: so does the index.
                    Event::InitApply(p) => self.store.get(&ObjectRef::from_obj(&p)),
                    Event::InitDone => {
                        owners.rebuild(self.store.state());
                        None
                    }
                    Event::Delete(p) => {
                        owners.remove(&key(&p));
                        Some(Arc::new(p))
                    }
                    Event::Init => None,
                }
            };
            if let Some(p) = changed {
                self.subscribers
                    .lock()
                    .unwrap()
                    .retain(|tx| tx.send(p.clone()).is_ok());
            }
        }
    }

    /// Every pod that changes (or goes) from now on, as the cache holds it after the
    /// change (a deleted pod: its last state).
    pub fn subscribe(&self) -> impl Stream<Item = Arc<Pod>> + Send + 'static {
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.subscribers.lock().unwrap().push(tx);
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    /// The pods of namespace `ns` whose controller is the object with `uid`, and those of
    /// `ns` with no controller at all (candidates for adoption).
    pub fn owned_or_orphaned(&self, ns: &str, uid: &str) -> Vec<Arc<Pod>> {
        self.owners.read().unwrap().owned_or_orphaned(ns, uid)
    }
}

/// Pods by controlling owner uid, pods without a controller by namespace (each by
/// `namespace/name`), sharing the store's `Arc`s.
#[derive(Default)]
struct OwnerIndex {
    owner_of: HashMap<String, Option<String>>,
    by_owner: HashMap<String, HashMap<String, Arc<Pod>>>,
    orphans: HashMap<String, HashMap<String, Arc<Pod>>>,
}

impl OwnerIndex {
    fn owned_or_orphaned(&self, ns: &str, uid: &str) -> Vec<Arc<Pod>> {
        let owned = self.by_owner.get(uid).into_iter().flatten();
        let orphans = self.orphans.get(ns).into_iter().flatten();
        owned
            .chain(orphans)
            .filter(|(k, _)| namespace_of(k) == ns)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// Sets (adds or replaces) a pod.
    fn set(&mut self, pod: Option<Arc<Pod>>) {
        let Some(pod) = pod else { return };
        let key = key(&pod);
        let owner = controller_uid(&pod);
        if self.owner_of.get(&key) != Some(&owner) {
            self.remove(&key);
            self.owner_of.insert(key.clone(), owner.clone());
        }
        match owner {
            Some(uid) => self.by_owner.entry(uid).or_default(),
            None => self
                .orphans
                .entry(namespace_of(&key).to_string())
                .or_default(),
        }
        .insert(key, pod);
    }

    /// Starts over from these pods (the end of a relist).
    fn rebuild(&mut self, pods: Vec<Arc<Pod>>) {
        *self = OwnerIndex::default();
        for p in pods {
            self.set(Some(p));
        }
    }

    fn remove(&mut self, key: &str) {
        let Some(owner) = self.owner_of.remove(key) else {
            return;
        };
        let (map, group) = match owner {
            Some(uid) => (&mut self.by_owner, uid),
            None => (&mut self.orphans, namespace_of(key).to_string()),
        };
        if let Some(set) = map.get_mut(&group) {
            set.remove(key);
            if set.is_empty() {
                map.remove(&group);
            }
        }
    }
}

fn key(p: &Pod) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or(""),
        p.metadata.name.as_deref().unwrap_or("")
    )
}

fn namespace_of(key: &str) -> &str {
    key.split_once('/').map(|(ns, _)| ns).unwrap_or("")
}

fn controller_uid(p: &Pod) -> Option<String> {
    p.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, owner: Option<&str>) -> Pod {
        let refs: Vec<serde_json::Value> = owner
            .map(|uid| {
                serde_json::json!({"apiVersion": "v1", "kind": "ReplicationController",
                    "name": "rc", "uid": uid, "controller": true})
            })
            .into_iter()
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns", "ownerReferences": refs},
        }))
        .unwrap()
    }

    fn owned(ix: &OwnerIndex, uid: &str) -> Vec<String> {
        let mut v: Vec<String> = ix
            .by_owner
            .get(uid)
            .into_iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect();
        v.sort();
        v
    }

    fn set(ix: &mut OwnerIndex, p: Pod) {
        ix.set(Some(Arc::new(p)));
    }

    #[test]
    fn owner_index_follows_adoption_release_deletion_and_relists() {
        let mut ix = OwnerIndex::default();
        set(&mut ix, pod("a", Some("u1")));
        set(&mut ix, pod("b", Some("u1")));
        set(&mut ix, pod("c", None));
        assert_eq!(owned(&ix, "u1"), ["ns/a", "ns/b"]);
        assert!(ix.orphans["ns"].contains_key("ns/c"));
        let names = |v: Vec<Arc<Pod>>| {
            let mut v: Vec<String> = v.iter().map(|p| p.metadata.name.clone().unwrap()).collect();
            v.sort();
            v
        };
        assert_eq!(names(ix.owned_or_orphaned("ns", "u1")), ["a", "b", "c"]);
        assert!(ix.owned_or_orphaned("other", "u1").is_empty());
        // c adopted by u2, b released.
        set(&mut ix, pod("c", Some("u2")));
        set(&mut ix, pod("b", None));
        assert_eq!(owned(&ix, "u1"), ["ns/a"]);
        assert_eq!(owned(&ix, "u2"), ["ns/c"]);
        assert_eq!(ix.orphans["ns"].len(), 1);
        // A newer state of a pod with the same owner replaces the one held.
        let mut newer = pod("a", Some("u1"));
        newer.metadata.resource_version = Some("7".into());
        set(&mut ix, newer);
        let a = ix.owned_or_orphaned("ns", "u1");
        assert_eq!(a.len(), 2);
        assert!(a
            .iter()
            .any(|p| p.metadata.resource_version.as_deref() == Some("7")));
        ix.remove("ns/a");
        assert!(!ix.by_owner.contains_key("u1"));
        // The end of a relist that no longer has b: only c is left.
        ix.rebuild(vec![Arc::new(pod("c", Some("u2")))]);
        assert!(!ix.orphans.contains_key("ns"));
        assert_eq!(owned(&ix, "u2"), ["ns/c"]);
        assert_eq!(ix.owner_of.len(), 1);
    }
}
