//! Controllers: each drives the cluster toward the desired state, talking to it only
//! through the API with `kube`, never through the API server's or the store's types.
//!
//! - [`namespace`]: a deleted namespace loses its contents, then its `kubernetes`
//!   finalizer (and so goes away); every active namespace has a `default` ServiceAccount.
//! - [`replication`]: ReplicationControllers keep their replicas.
//! - [`endpoints`]: Endpoints and EndpointSlices follow Service selectors and pod readiness.
//! - [`nodes`]: node lifecycle (unreachable taints, NoExecute eviction), node IPAM, pod GC.
//! - [`mirroring`]: EndpointSlices mirroring the Endpoints of Services without a selector.
//! - [`rootca`]: every namespace's `kube-root-ca.crt` ConfigMap (the cluster CA).
//! - [`gc`]: objects whose owners are gone go too; orphan and foreground deletion.
//! - [`pods`]: the one watch of pods the controllers share, indexed by owner.
//! - [`leader`]: Lease-based leader election; only the leader's controllers act.

pub mod endpoints;
pub mod events;
pub mod gc;
pub mod leader;
pub mod mirroring;
pub mod namespace;
pub mod nodes;
pub mod pods;
pub mod replication;
pub mod rootca;

use std::time::Duration;

/// The lease the controllers' leader holds (as kube-controller-manager's).
pub const LEASE: &str = "kube-controller-manager";

/// Runs every controller, while this process holds the controllers' lease, until
/// `shutdown` fires; returns the first fatal error. `identity` names this process in the
/// lease (unique per server). `root_ca` is the cluster CA (PEM) published to every
/// namespace.
pub async fn run(
    client: kube::Client,
    identity: &str,
    timings: leader::Timings,
    nodes: nodes::NodeConfig,
    root_ca: String,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let elector = leader::Elector::new(client.clone(), LEASE, identity, timings);
    tokio::select! {
        r = elector.run(|| all(client.clone(), nodes.clone(), root_ca.clone())) => r,
        _ = shutdown.changed() => Ok(()),
    }
}

/// Every controller; the first to end ends them all. The controllers that read pods share
/// one watch-fed cache of them (as upstream's shared informers), the largest thing they
/// hold; those that react to pod changes are triggered from it (no watch of their own).
async fn all(
    client: kube::Client,
    node_cfg: nodes::NodeConfig,
    root_ca: String,
) -> anyhow::Result<()> {
    let (pods, _feed) = pods::Pods::start(kube::Api::all(client.clone()));
    tokio::select! {
        r = nodes::run(client.clone(), node_cfg, pods.store.clone()) => r,
        r = namespace::run(client.clone()) => r,
        r = rootca::run(client.clone(), root_ca) => r,
        r = replication::run(client.clone(), pods.clone()) => r,
        r = gc::run(client.clone()) => r,
        r = endpoints::run(client.clone(), pods) => r,
        r = mirroring::run(client.clone()) => r,
    }
}

/// A watch-fed cache of every `K`, and the task feeding it (which ends with the guard).
pub fn cache<K>(api: kube::Api<K>) -> (kube::runtime::reflector::Store<K>, AbortOnDrop<()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    use futures::StreamExt;
    use kube::runtime::{reflector, watcher, WatchStreamExt};
    let (store, writer) = reflector::store();
    let feed = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default()).modify(|o| strip(o.meta_mut())),
    )
    .default_backoff()
    .touched_objects()
    .for_each(|_| async {});
    (store, AbortOnDrop(tokio::spawn(feed)))
}

/// What no controller reads and caches need not hold: managedFields are most of a cached
/// object's memory (their FieldsV1 trees), the last-applied annotation a copy of the object.
pub fn strip(meta: &mut kube::api::ObjectMeta) {
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// What no controller reads of a pod, dropped from the shared pod cache (10,000 pods: 55 MB):
/// its volumes (k8s-openapi's `Volume` is 3 KB before any content) and, of each container,
/// all but its name, image, ports and resources. Status stays whole (restart counts rank
/// pods for deletion; conditions and IPs make endpoints).
pub fn slim_pod(pod: &mut k8s_openapi::api::core::v1::Pod) {
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    spec.volumes = None;
    spec.ephemeral_containers = None;
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        *c = k8s_openapi::api::core::v1::Container {
            name: std::mem::take(&mut c.name),
            image: c.image.take(),
            ports: c.ports.take(),
            resources: c.resources.take(),
            ..Default::default()
        };
    }
}

/// Whether the pod's Ready condition is True.
pub fn pod_ready(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Whether a non-empty equality selector (an RC's or a Service's) matches the pod.
pub fn selects(
    selector: Option<&std::collections::BTreeMap<String, String>>,
    pod: &k8s_openapi::api::core::v1::Pod,
) -> bool {
    let labels = kube::ResourceExt::labels(pod);
    selector.is_some_and(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// A spawned task that ends with its owner (e.g. when leadership is lost).
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long a reconcile that could not finish waits before trying again.
pub const RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    #[test]
    fn slim_pod_keeps_ports_resources_and_status() {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "ownerReferences": [{"apiVersion": "v1",
                "kind": "ReplicationController", "name": "rc", "uid": "u", "controller": true}]},
            "spec": {
                "volumes": [{"name": "v", "emptyDir": {}}],
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "containers": [{"name": "c", "image": "x", "args": ["a"],
                    "env": [{"name": "A", "value": "1"}],
                    "ports": [{"name": "http", "containerPort": 80}],
                    "resources": {"requests": {"cpu": "1"}}}],
            },
            "status": {"podIP": "10.42.0.5",
                "containerStatuses": [{"name": "c", "image": "x", "imageID": "", "ready": true, "restartCount": 3}]},
        }))
        .unwrap();
        slim_pod(&mut pod);
        let spec = pod.spec.as_ref().unwrap();
        assert!(spec.volumes.is_none());
        assert!(spec.tolerations.is_some());
        let c = &spec.containers[0];
        assert_eq!((c.name.as_str(), c.image.as_deref()), ("c", Some("x")));
        assert_eq!(c.ports.as_ref().unwrap()[0].name.as_deref(), Some("http"));
        assert!(c.resources.is_some() && c.env.is_none() && c.args.is_none());
        let status = pod.status.as_ref().unwrap();
        assert_eq!(
            status.container_statuses.as_ref().unwrap()[0].restart_count,
            3
        );
        assert_eq!(pod.metadata.owner_references.as_ref().unwrap().len(), 1);
    }
}
