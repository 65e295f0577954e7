//! The namespace lifecycle (upstream's namespace controller) and the `default`
//! ServiceAccount of every namespace (upstream's serviceaccounts controller).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, ObjectMeta, PostParams};
use kube::discovery::{verbs, Discovery, Scope};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::{Error, RETRY};

const FINALIZER: &str = "kubernetes";

struct Ctx {
    client: Client,
}

pub async fn run(client: Client) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let accounts: Api<ServiceAccount> = Api::all(client.clone());
    Controller::new(namespaces, watcher::Config::default())
        .watches(accounts, watcher::Config::default(), |sa| {
            sa.namespace().map(|ns| ObjectRef::new(&ns))
        })
        .run(reconcile, error_policy, Arc::new(Ctx { client }))
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "namespace reconcile");
            }
        })
        .await;
    Ok(())
}

fn error_policy(_ns: Arc<Namespace>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "namespace controller will retry");
    Action::requeue(RETRY)
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let name = ns.name_any();
    if ns.metadata.deletion_timestamp.is_some() {
        let finalizers = ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.clone())
            .unwrap_or_default();
        if !finalizers.iter().any(|f| f == FINALIZER) {
            return Ok(Action::await_change());
        }
        let remaining = delete_contents(&ctx.client, &name).await?;
        if remaining > 0 {
            tracing::info!(namespace = %name, remaining, "waiting for namespace contents to go");
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        finalize(&ctx.client, &ns).await?;
        tracing::info!(namespace = %name, "namespace finalized");
        return Ok(Action::await_change());
    }
    ensure_default_account(&ctx.client, &name).await?;
    Ok(Action::await_change())
}

async fn ensure_default_account(client: &Client, ns: &str) -> Result<(), Error> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    if api.get_opt("default").await?.is_some() {
        return Ok(());
    }
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("default".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &sa).await {
        Ok(_) => Ok(()),
        // Already there, or the namespace started terminating meanwhile.
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes everything in the namespace; returns how many objects remain.
async fn delete_contents(client: &Client, ns: &str) -> Result<usize, Error> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut remaining = 0;
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if caps.scope != Scope::Namespaced || !caps.supports_operation(verbs::LIST) {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
            let items = api.list(&ListParams::default()).await?.items;
            if items.is_empty() {
                continue;
            }
            if caps.supports_operation(verbs::DELETE_COLLECTION) {
                api.delete_collection(&DeleteParams::background(), &ListParams::default())
                    .await?;
            } else {
                for o in &items {
                    let _ = api.delete(&o.name_any(), &DeleteParams::background()).await;
                }
            }
            remaining += api.list(&ListParams::default()).await?.items.len();
        }
    }
    Ok(remaining)
}

async fn finalize(client: &Client, ns: &Namespace) -> Result<(), Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut ns = ns.clone();
    if let Some(spec) = ns.spec.as_mut() {
        if let Some(f) = spec.finalizers.as_mut() {
            f.retain(|x| x != FINALIZER);
        }
    }
    match api
        .replace_subresource::<Namespace>("finalize", &ns.name_any(), &PostParams::default(), &ns)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
