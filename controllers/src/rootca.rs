//! The root CA publisher (upstream's pkg/controller/certificates/rootcacertpublisher):
//! every active namespace has a `kube-root-ca.crt` ConfigMap holding the cluster CA
//! (`ca.crt`) and the description annotation; one deleted is created again, one changed
//! is put back.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::{Error, RETRY};

pub const NAME: &str = "kube-root-ca.crt";
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver \
     when using internal endpoints such as the internal service IP or kubernetes.default.svc. \
     No other usage is guaranteed across distributions of Kubernetes clusters.";

struct Ctx {
    client: Client,
    root_ca: String,
}

/// Publishes `root_ca` (PEM) into every namespace until the stream of namespaces ends.
pub async fn run(client: Client, root_ca: String) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let maps: Api<ConfigMap> = Api::all(client.clone());
    let only_ours = watcher::Config::default().fields(&format!("metadata.name={NAME}"));
    Controller::new(namespaces, watcher::Config::default())
        .watches(maps, only_ours, |cm| {
            cm.namespace().map(|ns| ObjectRef::new(&ns))
        })
        .run(reconcile, error_policy, Arc::new(Ctx { client, root_ca }))
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "root CA publisher reconcile");
            }
        })
        .await;
    Ok(())
}

fn error_policy(_ns: Arc<Namespace>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "root CA publisher will retry");
    Action::requeue(RETRY)
}

/// What the ConfigMap's data must be.
fn data(root_ca: &str) -> BTreeMap<String, String> {
    [("ca.crt".to_string(), root_ca.to_string())].into()
}

/// The ConfigMap as it should be, from the one there is (`None`: it is right as it is).
pub fn reconciled(current: &ConfigMap, root_ca: &str) -> Option<ConfigMap> {
    let want = data(root_ca);
    let described = current
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DESCRIPTION_ANNOTATION))
        .is_some_and(|d| !d.is_empty());
    if current.data.as_ref() == Some(&want) && described {
        return None;
    }
    let mut cm = current.clone();
    cm.data = Some(want);
    cm.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into());
    Some(cm)
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let active = ns.metadata.deletion_timestamp.is_none()
        && ns
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_none_or(|p| p == "Active");
    if !active {
        return Ok(Action::await_change());
    }
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns.name_any());
    match api.get_opt(NAME).await? {
        None => {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(NAME.into()),
                    annotations: Some(
                        [(DESCRIPTION_ANNOTATION.to_string(), DESCRIPTION.to_string())].into(),
                    ),
                    ..Default::default()
                },
                data: Some(data(&ctx.root_ca)),
                ..Default::default()
            };
            match api.create(&PostParams::default(), &cm).await {
                // Created meanwhile (its event brings us back), or the namespace is gone
                // or terminating: nothing to retry.
                Ok(_) => {}
                Err(kube::Error::Api(e)) if [403, 404, 409].contains(&e.code) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Some(current) => {
            if let Some(cm) = reconciled(&current, &ctx.root_ca) {
                match api.replace(NAME, &PostParams::default(), &cm).await {
                    Ok(_) => {}
                    // Changed or deleted meanwhile: its event brings us back.
                    Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(data: Option<&str>, described: bool) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(NAME.into()),
                annotations: described
                    .then(|| [(DESCRIPTION_ANNOTATION.to_string(), "x".to_string())].into()),
                ..Default::default()
            },
            data: data.map(|d| [("ca.crt".to_string(), d.to_string())].into()),
            ..Default::default()
        }
    }

    #[test]
    fn reconciles_data_and_annotation_only_when_they_differ() {
        let ca = "-----BEGIN CERTIFICATE-----\n...";
        assert!(reconciled(&cm(Some(ca), true), ca).is_none());
        for current in [cm(Some(""), true), cm(None, true), cm(Some(ca), false)] {
            let fixed = reconciled(&current, ca).expect("a change");
            assert_eq!(fixed.data, Some(data(ca)));
            assert!(reconciled(&fixed, ca).is_none());
        }
        // Extra keys go: the data is exactly the CA.
        let mut extra = cm(Some(ca), true);
        extra
            .data
            .as_mut()
            .unwrap()
            .insert("other".into(), "v".into());
        assert_eq!(reconciled(&extra, ca).unwrap().data, Some(data(ca)));
    }
}
