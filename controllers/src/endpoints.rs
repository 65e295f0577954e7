//! Endpoints and EndpointSlices from Service selectors and pod readiness (upstream's
//! endpoint and endpointslice controllers): ready pods are addresses, not-ready ones
//! `notReadyAddresses` (unless the service publishes them), named target ports are
//! resolved per pod, and pods resolving ports differently land in different subsets and
//! slices. Services without a selector are left to their owners.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::pods::Pods;
use crate::Error;

const SERVICE_NAME: &str = "kubernetes.io/service-name";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const MANAGER: &str = "endpointslice-controller.k8s.io";

struct Ctx {
    client: Client,
    pods: Store<Pod>,
}

pub async fn run(client: Client, pods: Pods) -> anyhow::Result<()> {
    tokio::select! {
        r = reconcile_all(client.clone(), pods) => r,
        r = delete_endpoints_of_deleted_services(client) => r,
    }
}

/// As upstream's endpoints controller: a Service's Endpoints go when the Service does
/// (its EndpointSlices are owned by it and go through the garbage collector).
async fn delete_endpoints_of_deleted_services(client: Client) -> anyhow::Result<()> {
    use kube::runtime::WatchStreamExt;
    let mut events = watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .boxed();
    while let Some(ev) = events.next().await {
        let Ok(watcher::Event::Delete(svc)) = ev else {
            continue;
        };
        let api: Api<Endpoints> =
            Api::namespaced(client.clone(), &svc.namespace().unwrap_or_default());
        match api.delete(&svc.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                tracing::warn!(error = %e, service = %svc.name_any(), "deleting the Endpoints of a deleted Service")
            }
        }
    }
    Ok(())
}

async fn reconcile_all(client: Client, pods: Pods) -> anyhow::Result<()> {
    let changed = pods.subscribe();
    pods.store.wait_until_ready().await?;
    let controller = Controller::new(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let services = controller.store();
    // Pod changes come from the shared pod cache (after it holds them).
    let triggers = changed.flat_map(move |pod| futures::stream::iter(services_of(&services, &pod)));
    controller
        .reconcile_on(triggers)
        .owns(
            Api::<EndpointSlice>::all(client.clone()),
            watcher::Config::default(),
        )
        .run(
            reconcile,
            error_policy,
            Arc::new(Ctx {
                client,
                pods: pods.store,
            }),
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "endpoints reconcile");
            }
        })
        .await;
    Ok(())
}

fn services_of(services: &Store<Service>, pod: &Pod) -> Vec<ObjectRef<Service>> {
    services
        .state()
        .into_iter()
        .filter(|s| s.namespace() == pod.namespace() && selects(s, pod))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

fn selects(svc: &Service, pod: &Pod) -> bool {
    crate::selects(svc.spec.as_ref().and_then(|s| s.selector.as_ref()), pod)
}

fn error_policy(_s: Arc<Service>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "endpoints controller will retry");
    Action::requeue(crate::RETRY)
}

/// The container port a service port targets on this pod (named ports resolved per pod).
fn resolve_port(pod: &Pod, target: Option<&IntOrString>, port: i32, protocol: &str) -> Option<i32> {
    match target {
        None => Some(port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| {
                p.name.as_deref() == Some(name)
                    && p.protocol.as_deref().unwrap_or("TCP") == protocol
            })
            .map(|p| p.container_port),
    }
}

/// A service port as resolved on a pod: (name, target port number, protocol).
type ResolvedPort = (Option<String>, i32, String);
/// Pods by the way they resolve the service's ports.
type Groups = BTreeMap<Vec<ResolvedPort>, Group>;

/// One group of pods resolving the service's ports the same way.
#[derive(Default)]
struct Group {
    ready: Vec<Arc<Pod>>,
    not_ready: Vec<Arc<Pod>>,
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    if svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_none_or(|s| s.is_empty())
        || svc.metadata.deletion_timestamp.is_some()
    {
        return Ok(Action::await_change());
    }
    let spec = svc.spec.clone().unwrap_or_default();
    let ports = spec.ports.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let mut groups: Groups = BTreeMap::new();
    for pod in ctx.pods.state() {
        if pod.namespace().as_deref() != Some(ns.as_str()) || !selects(&svc, &pod) {
            continue;
        }
        let status = pod.status.as_ref();
        let ip = status.and_then(|s| s.pod_ip.clone()).unwrap_or_default();
        let terminal = matches!(
            status.and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        if ip.is_empty() || terminal {
            continue;
        }
        // As upstream: a port the pod does not resolve is left out for that pod (a pod
        // resolving none of the service's ports is no endpoint).
        let key: Vec<ResolvedPort> = ports
            .iter()
            .filter_map(|p| {
                let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                resolve_port(&pod, p.target_port.as_ref(), p.port, &proto)
                    .map(|n| (p.name.clone(), n, proto))
            })
            .collect();
        if key.is_empty() && !ports.is_empty() {
            continue;
        }
        let g = groups.entry(key).or_default();
        let ready = crate::pod_ready(&pod) && pod.metadata.deletion_timestamp.is_none();
        if ready || publish_not_ready {
            g.ready.push(pod.clone());
        } else {
            g.not_ready.push(pod.clone());
        }
    }
    // Endpoints leave terminating pods out (unless published); slices keep them, marked.
    let endpoints_groups: BTreeMap<_, Group> = groups
        .iter()
        .map(|(k, g)| {
            let live = |ps: &Vec<Arc<Pod>>| -> Vec<Arc<Pod>> {
                ps.iter()
                    .filter(|p| publish_not_ready || p.metadata.deletion_timestamp.is_none())
                    .cloned()
                    .collect()
            };
            (
                k.clone(),
                Group {
                    ready: live(&g.ready),
                    not_ready: live(&g.not_ready),
                },
            )
        })
        .collect();
    write_endpoints(&ctx.client, &svc, &endpoints_groups).await?;
    write_slices(&ctx.client, &svc, &groups).await?;
    let _ = name;
    // The pod cache has its own watch and can lag behind the triggering event: resync.
    Ok(Action::requeue(std::time::Duration::from_secs(5)))
}

fn target_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.namespace(),
        name: Some(pod.name_any()),
        uid: pod.uid(),
        ..Default::default()
    }
}

/// The pod's `spec.hostname` when its `spec.subdomain` names the service (upstream's
/// endpoints and EndpointSlice controllers: the name DNS gives the endpoint).
fn endpoint_hostname(svc: &Service, pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.clone().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == Some(svc.name_any().as_str())
        && pod.namespace() == svc.namespace())
    .then_some(hostname)
}

fn address(svc: &Service, pod: &Pod) -> EndpointAddress {
    EndpointAddress {
        ip: pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_default(),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        target_ref: Some(target_ref(pod)),
        hostname: endpoint_hostname(svc, pod),
    }
}

async fn write_endpoints(client: &Client, svc: &Service, groups: &Groups) -> Result<(), Error> {
    let ns = svc.namespace().unwrap_or_default();
    let api: Api<Endpoints> = Api::namespaced(client.clone(), &ns);
    let subsets: Vec<EndpointSubset> = groups
        .iter()
        .filter(|(_, g)| !(g.ready.is_empty() && g.not_ready.is_empty()))
        .map(|(ports, g)| {
            let mut ready: Vec<EndpointAddress> = g.ready.iter().map(|p| address(svc, p)).collect();
            let mut not_ready: Vec<EndpointAddress> =
                g.not_ready.iter().map(|p| address(svc, p)).collect();
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: Some(
                    ports
                        .iter()
                        .map(|(name, port, proto)| EndpointPort {
                            name: name.clone(),
                            port: *port,
                            protocol: Some(proto.clone()),
                            app_protocol: None,
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    let desired = Endpoints {
        metadata: ObjectMeta {
            name: Some(svc.name_any()),
            namespace: Some(ns.clone()),
            labels: svc.metadata.labels.clone(),
            ..Default::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    };
    match api.get_opt(&svc.name_any()).await? {
        None => match api.create(&PostParams::default(), &desired).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 => Ok(()),
            Err(e) => Err(e.into()),
        },
        Some(cur)
            if cur.subsets == desired.subsets && cur.metadata.labels == desired.metadata.labels =>
        {
            Ok(())
        }
        Some(cur) => {
            let mut next = desired;
            next.metadata.resource_version = cur.metadata.resource_version.clone();
            next.metadata.annotations = cur.metadata.annotations.clone();
            match api
                .replace(&svc.name_any(), &PostParams::default(), &next)
                .await
            {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
    }
}

fn endpoint(svc: &Service, pod: &Pod, ready: bool) -> Endpoint {
    let terminating = pod.metadata.deletion_timestamp.is_some();
    Endpoint {
        addresses: vec![pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_default()],
        conditions: Some(EndpointConditions {
            ready: Some(ready && !terminating),
            serving: Some(crate::pod_ready(pod)),
            terminating: Some(terminating),
        }),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        target_ref: Some(target_ref(pod)),
        hostname: endpoint_hostname(svc, pod),
        ..Default::default()
    }
}

async fn write_slices(client: &Client, svc: &Service, groups: &Groups) -> Result<(), Error> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    let existing = api
        .list(
            &ListParams::default().labels(&format!("{SERVICE_NAME}={name},{MANAGED_BY}={MANAGER}")),
        )
        .await?
        .items;
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: name.clone(),
        uid: svc.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME.into(), name.clone());
    labels.insert(MANAGED_BY.into(), MANAGER.into());
    // A service with no endpoints still has one (empty) slice, as upstream.
    let mut wanted: Vec<(Vec<SlicePort>, Vec<Endpoint>)> = groups
        .iter()
        .map(|(ports, g)| {
            let mut eps: Vec<Endpoint> = g.ready.iter().map(|p| endpoint(svc, p, true)).collect();
            eps.extend(g.not_ready.iter().map(|p| endpoint(svc, p, false)));
            eps.sort_by(|a, b| a.addresses.cmp(&b.addresses));
            let ports = ports
                .iter()
                .map(|(n, p, proto)| SlicePort {
                    name: Some(n.clone().unwrap_or_default()),
                    port: Some(*p),
                    protocol: Some(proto.clone()),
                    app_protocol: None,
                })
                .collect();
            (ports, eps)
        })
        .collect();
    if wanted.is_empty() {
        wanted.push((Vec::new(), Vec::new()));
    }
    let mut unused: Vec<&EndpointSlice> = existing.iter().collect();
    for (ports, eps) in wanted {
        let ports_opt = (!ports.is_empty()).then_some(ports);
        // Reuse the slice with the same ports if there is one.
        let found = unused.iter().position(|s| s.ports == ports_opt);
        let desired = |meta: ObjectMeta| EndpointSlice {
            metadata: meta,
            address_type: "IPv4".into(),
            endpoints: eps.clone(),
            ports: ports_opt.clone(),
        };
        match found {
            Some(i) => {
                let cur = unused.remove(i);
                if cur.endpoints == eps && cur.metadata.labels.as_ref() == Some(&labels) {
                    continue;
                }
                let mut meta = cur.metadata.clone();
                meta.labels = Some(labels.clone());
                match api
                    .replace(&cur.name_any(), &PostParams::default(), &desired(meta))
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            None => {
                let meta = ObjectMeta {
                    generate_name: Some(format!("{name}-")),
                    namespace: Some(ns.clone()),
                    labels: Some(labels.clone()),
                    owner_references: Some(vec![owner.clone()]),
                    ..Default::default()
                };
                match api.create(&PostParams::default(), &desired(meta)).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    for s in unused {
        let _ = api.delete(&s.name_any(), &DeleteParams::default()).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A pod's hostname names its endpoint only when its subdomain is the service (in the
    /// service's namespace), as upstream's controllers.
    #[test]
    fn endpoint_hostname_needs_the_subdomain() {
        let svc: Service =
            serde_json::from_value(json!({"metadata": {"namespace": "ns", "name": "sub"}}))
                .unwrap();
        let pod = |ns: &str, spec: serde_json::Value| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"namespace": ns, "name": "p"},
                "spec": spec,
                "status": {"podIP": "10.42.0.5"}}))
            .unwrap()
        };
        let with = pod(
            "ns",
            json!({"containers": [], "hostname": "h", "subdomain": "sub"}),
        );
        assert_eq!(endpoint(&svc, &with, true).hostname.as_deref(), Some("h"));
        assert_eq!(address(&svc, &with).hostname.as_deref(), Some("h"));
        for other in [
            pod("ns", json!({"containers": [], "hostname": "h"})),
            pod(
                "ns",
                json!({"containers": [], "hostname": "h", "subdomain": "other"}),
            ),
            pod(
                "ns2",
                json!({"containers": [], "hostname": "h", "subdomain": "sub"}),
            ),
            pod("ns", json!({"containers": [], "subdomain": "sub"})),
        ] {
            assert_eq!(endpoint(&svc, &other, true).hostname, None);
            assert_eq!(address(&svc, &other).hostname, None);
        }
    }
}
