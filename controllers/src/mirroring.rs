//! EndpointSlice mirroring (upstream's endpointslicemirroring controller): the Endpoints
//! of a Service without a selector (written by their owner, not by the endpoints
//! controller) are mirrored into EndpointSlices managed by
//! `endpointslicemirroring-controller.k8s.io`, one per (ports, address family), owned by
//! the Endpoints (so they go with it). Endpoints labelled
//! `endpointslice.kubernetes.io/skip-mirror=true`, or whose Service is missing or has a
//! selector, have no mirrored slices.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, Service};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::{Error, RETRY};

const SERVICE_NAME: &str = "kubernetes.io/service-name";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGER: &str = "endpointslicemirroring-controller.k8s.io";
const SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
/// Annotations of the Endpoints not copied to its slices.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    "endpoints.kubernetes.io/last-change-trigger-time",
];

struct Ctx {
    client: Client,
}

pub async fn run(client: Client) -> anyhow::Result<()> {
    Controller::new(
        Api::<Endpoints>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        |svc| {
            let ns = svc.namespace()?;
            Some(ObjectRef::new(&svc.name_any()).within(&ns))
        },
    )
    .owns(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGER}")),
    )
    .run(reconcile, error_policy, Arc::new(Ctx { client }))
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "endpointslice mirroring reconcile");
        }
    })
    .await;
    Ok(())
}

fn error_policy(_e: Arc<Endpoints>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "endpointslice mirroring will retry");
    Action::requeue(RETRY)
}

/// The endpoints of each (ports, address type) group, in the order first seen.
type Wanted = Vec<((Vec<SlicePort>, String), Vec<Endpoint>)>;

fn address_type(ip: &str) -> &'static str {
    if ip.contains(':') {
        "IPv6"
    } else {
        "IPv4"
    }
}

fn endpoint(a: &EndpointAddress, ready: bool) -> Endpoint {
    Endpoint {
        addresses: vec![a.ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            ..Default::default()
        }),
        hostname: a.hostname.clone().filter(|h| !h.is_empty()),
        node_name: a.node_name.clone(),
        target_ref: a.target_ref.clone(),
        ..Default::default()
    }
}

/// What the Endpoints' subsets become: endpoints grouped by their ports and family.
pub fn wanted(ep: &Endpoints) -> Wanted {
    let mut out = Wanted::new();
    for subset in ep.subsets.iter().flatten() {
        let ports: Vec<SlicePort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| SlicePort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let addresses = subset.addresses.iter().flatten().map(|a| (a, true)).chain(
            subset
                .not_ready_addresses
                .iter()
                .flatten()
                .map(|a| (a, false)),
        );
        for (a, ready) in addresses {
            let key = (ports.clone(), address_type(&a.ip).to_string());
            match out.iter_mut().find(|(k, _)| *k == key) {
                Some((_, eps)) => eps.push(endpoint(a, ready)),
                None => out.push((key, vec![endpoint(a, ready)])),
            }
        }
    }
    out
}

async fn reconcile(ep: Arc<Endpoints>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = ep.namespace().unwrap_or_default();
    let name = ep.name_any();
    let slices: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = slices
        .list(
            &ListParams::default().labels(&format!("{SERVICE_NAME}={name},{MANAGED_BY}={MANAGER}")),
        )
        .await?
        .items;
    let skip = ep.labels().get(SKIP_MIRROR).map(String::as_str) == Some("true");
    let svc = Api::<Service>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&name)
        .await?;
    let selectorless = svc.as_ref().is_some_and(|s| {
        s.spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .is_none_or(|s| s.is_empty())
    });
    let mut wanted = if skip || !selectorless || ep.metadata.deletion_timestamp.is_some() {
        Wanted::new()
    } else {
        wanted(&ep)
    };

    let mut labels = ep.labels().clone();
    labels.remove(SKIP_MIRROR);
    labels.insert(SERVICE_NAME.into(), name.clone());
    labels.insert(MANAGED_BY.into(), MANAGER.into());
    let mut annotations = ep.annotations().clone();
    for k in NOT_COPIED {
        annotations.remove(*k);
    }
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Endpoints".into(),
        name: name.clone(),
        uid: ep.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let desired =
        |meta: ObjectMeta, ports: &[SlicePort], family: &str, eps: Vec<Endpoint>| EndpointSlice {
            metadata: meta,
            address_type: family.to_string(),
            endpoints: eps,
            ports: (!ports.is_empty()).then(|| ports.to_vec()),
        };
    let pp = PostParams::default();
    for cur in existing {
        let key = (
            cur.ports.clone().unwrap_or_default(),
            cur.address_type.clone(),
        );
        match wanted.iter().position(|(k, _)| *k == key) {
            Some(i) => {
                let (_, eps) = wanted.remove(i);
                if cur.endpoints == eps
                    && cur.metadata.labels.as_ref() == Some(&labels)
                    && cur.annotations() == &annotations
                {
                    continue;
                }
                let mut meta = cur.metadata.clone();
                meta.labels = Some(labels.clone());
                meta.annotations = Some(annotations.clone());
                let next = desired(meta, &key.0, &key.1, eps);
                match slices.replace(&cur.name_any(), &pp, &next).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            None => match slices
                .delete(&cur.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            },
        }
    }
    for ((ports, family), eps) in wanted {
        let meta = ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: Some(ns.clone()),
            labels: Some(labels.clone()),
            annotations: Some(annotations.clone()),
            owner_references: Some(vec![owner.clone()]),
            ..Default::default()
        };
        match slices
            .create(&pp, &desired(meta, &ports, &family, eps))
            .await
        {
            Ok(_) => {}
            // The namespace is going away.
            Err(kube::Error::Api(e)) if e.code == 403 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subsets_become_one_group_per_ports_and_family() {
        let ep: Endpoints = serde_json::from_value(json!({
            "metadata": {"name": "e"},
            "subsets": [
                {"ports": [{"port": 80}], "addresses": [{"ip": "10.1.2.3"}, {"ip": "fd00::1"}],
                 "notReadyAddresses": [{"ip": "10.1.2.4"}]},
                {"ports": [{"port": 80}], "addresses": [{"ip": "10.1.2.5"}]},
                {"ports": [{"name": "x", "port": 81, "protocol": "UDP"}], "addresses": [{"ip": "10.1.2.6"}]},
            ],
        }))
        .unwrap();
        let w = wanted(&ep);
        assert_eq!(w.len(), 3);
        let p80 = vec![SlicePort {
            name: Some(String::new()),
            port: Some(80),
            protocol: Some("TCP".into()),
            app_protocol: None,
        }];
        let group = |family: &str| {
            let key = (p80.clone(), family.to_string());
            w.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, e)| e.clone())
                .unwrap()
        };
        let v4 = group("IPv4");
        let ips: Vec<(&str, Option<bool>)> = v4
            .iter()
            .map(|e| {
                (
                    e.addresses[0].as_str(),
                    e.conditions.as_ref().unwrap().ready,
                )
            })
            .collect();
        assert_eq!(
            ips,
            [
                ("10.1.2.3", Some(true)),
                ("10.1.2.4", Some(false)),
                ("10.1.2.5", Some(true))
            ]
        );
        assert_eq!(group("IPv6")[0].addresses, ["fd00::1"]);
    }
}
