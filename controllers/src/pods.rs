//! The controllers' one watch of every pod (as upstream's shared pod informer): a cache
//! of them, trimmed to what controllers read ([`crate::slim_pod`]), an index by
//! controlling owner, and the pods that changed, for the controllers that react to pods.
//!
//! Invariants:
//! - The owner index is updated before the store, so it holds at least every pod the
//!   store holds: a lookup through the index never misses a pod the store has.
//! - A pod is announced to subscribers after the store holds its new state: a reconcile
//!   it triggers reads that state (or a newer one).

use std::collections::{HashMap, HashSet};
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
            self.owners.write().unwrap().apply(&ev);
            writer.apply_watcher_event(&ev);
            let changed = match ev {
                Event::Apply(p) | Event::InitApply(p) => self.store.get(&ObjectRef::from_obj(&p)),
                Event::Delete(p) => Some(Arc::new(p)),
                Event::Init | Event::InitDone => None,
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
        let names: Vec<String> = {
            let owners = self.owners.read().unwrap();
            let owned = owners.by_owner.get(uid).into_iter().flatten();
            let orphans = owners.orphans.get(ns).into_iter().flatten();
            owned.chain(orphans).cloned().collect()
        };
        names
            .iter()
            .filter_map(|key| {
                let (pod_ns, name) = key.split_once('/')?;
                (pod_ns == ns).then_some(())?;
                self.store.get(&ObjectRef::new(name).within(pod_ns))
            })
            .collect()
    }
}

/// Pod keys (`namespace/name`) by controlling owner uid; pods without a controller by
/// namespace.
#[derive(Default)]
struct OwnerIndex {
    owner_of: HashMap<String, Option<String>>,
    by_owner: HashMap<String, HashSet<String>>,
    orphans: HashMap<String, HashSet<String>>,
    /// A relist in progress: what it has seen so far (swapped in when it ends, as the
    /// store does).
    relist: Option<HashMap<String, Option<String>>>,
}

impl OwnerIndex {
    fn apply(&mut self, ev: &Event<Pod>) {
        match ev {
            Event::Init => self.relist = Some(HashMap::new()),
            Event::InitApply(p) => {
                if let Some(r) = self.relist.as_mut() {
                    r.insert(key(p), controller_uid(p));
                }
                self.set(key(p), controller_uid(p));
            }
            Event::InitDone => {
                let seen = self.relist.take().unwrap_or_default();
                let gone: Vec<String> = self
                    .owner_of
                    .keys()
                    .filter(|k| !seen.contains_key(*k))
                    .cloned()
                    .collect();
                for k in gone {
                    self.remove(&k);
                }
            }
            Event::Apply(p) => self.set(key(p), controller_uid(p)),
            Event::Delete(p) => self.remove(&key(p)),
        }
    }

    fn set(&mut self, key: String, owner: Option<String>) {
        if self.owner_of.get(&key) == Some(&owner) {
            return;
        }
        self.remove(&key);
        match &owner {
            Some(uid) => self.by_owner.entry(uid.clone()).or_default(),
            None => self.orphans.entry(namespace_of(&key)).or_default(),
        }
        .insert(key.clone());
        self.owner_of.insert(key, owner);
    }

    fn remove(&mut self, key: &str) {
        let Some(owner) = self.owner_of.remove(key) else {
            return;
        };
        let (map, group) = match owner {
            Some(uid) => (&mut self.by_owner, uid),
            None => (&mut self.orphans, namespace_of(key)),
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

fn namespace_of(key: &str) -> String {
    key.split_once('/')
        .map(|(ns, _)| ns)
        .unwrap_or("")
        .to_string()
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
            .cloned()
            .collect();
        v.sort();
        v
    }

    #[test]
    fn owner_index_follows_adoption_release_deletion_and_relists() {
        let mut ix = OwnerIndex::default();
        ix.apply(&Event::Apply(pod("a", Some("u1"))));
        ix.apply(&Event::Apply(pod("b", Some("u1"))));
        ix.apply(&Event::Apply(pod("c", None)));
        assert_eq!(owned(&ix, "u1"), ["ns/a", "ns/b"]);
        assert!(ix.orphans["ns"].contains("ns/c"));
        // c adopted by u2, b released.
        ix.apply(&Event::Apply(pod("c", Some("u2"))));
        ix.apply(&Event::Apply(pod("b", None)));
        assert_eq!(owned(&ix, "u1"), ["ns/a"]);
        assert_eq!(owned(&ix, "u2"), ["ns/c"]);
        assert_eq!(ix.orphans["ns"].len(), 1);
        ix.apply(&Event::Delete(pod("a", Some("u1"))));
        assert!(!ix.by_owner.contains_key("u1"));
        // A relist that no longer has b: b goes at its end, not before.
        ix.apply(&Event::Init);
        ix.apply(&Event::InitApply(pod("c", Some("u2"))));
        assert!(ix.orphans.contains_key("ns"));
        ix.apply(&Event::InitDone);
        assert!(!ix.orphans.contains_key("ns"));
        assert_eq!(owned(&ix, "u2"), ["ns/c"]);
        assert_eq!(ix.owner_of.len(), 1);
    }
}
