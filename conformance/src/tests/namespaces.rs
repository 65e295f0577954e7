//! Namespaces: upstream's test/e2e/apimachinery/namespace.go (the [Serial] ones).

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{e2epod, test, uuid};
use crate::{Ctx, Test};

const AREA: &str = "Namespaces";

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Namespace patching",
            "[sig-api-machinery] Namespaces [Serial] should patch a Namespace [Conformance]",
            patch
        ),
        test!(
            AREA,
            "Namespace, apply update to a namespace",
            "[sig-api-machinery] Namespaces [Serial] should apply an update to a Namespace [Conformance]",
            update
        ),
        test!(
            AREA,
            "Namespace, apply finalizer to a namespace",
            "[sig-api-machinery] Namespaces [Serial] should apply a finalizer to a Namespace [Conformance]",
            finalizer
        ),
        test!(
            AREA,
            "Namespace, apply changes to a namespace status",
            "[sig-api-machinery] Namespaces [Serial] should apply changes to a namespace status [Conformance]",
            status
        ),
        test!(
            AREA,
            "namespace-deletion-removes-pods",
            "[sig-api-machinery] Namespaces [Serial] should ensure that all pods are removed when a namespace is deleted [Conformance]",
            deletion_removes_pods
        ),
        test!(
            AREA,
            "namespace-deletion-removes-services",
            "[sig-api-machinery] Namespaces [Serial] should ensure that all services are removed when a namespace is deleted [Conformance]",
            deletion_removes_services
        ),
    ]
}

/// A new namespace, patched with a label: it MUST then have it.
async fn patch(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let suffix: u32 = rand::random::<u32>() % 10_000;
    let name = format!("nspatchtest-{}-{suffix}", uuid());
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"e2e-run": "rkube-conformance"}}
    }))?;
    let created = api
        .create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("failed creating Namespace {name}"))?;
    let result = async {
        super::valid_resource_version(created.metadata.resource_version.as_deref())?;
        let patched = api
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Strategic(json!({"metadata": {"labels": {"testLabel": "testValue"}}})),
            )
            .await
            .with_context(|| format!("failed to patch Namespace {name:?}"))?;
        super::newer_resource_version(
            created.metadata.resource_version.as_deref(),
            patched.metadata.resource_version.as_deref(),
        )?;
        let got = api
            .get(&name)
            .await
            .with_context(|| format!("failed to get Namespace {name:?}"))?;
        let label = got
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("testLabel"));
        ensure!(
            label.map(String::as_str) == Some("testValue"),
            "namespace not patched: {:?}",
            got.metadata.labels
        );
        Ok(())
    }
    .await;
    let _ = api.delete(&name, &DeleteParams::default()).await;
    result
}

/// The test's own namespace gets a label by a read-modify-write PUT (retried on 409).
async fn update(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let ns = ctx.ns.clone();
    let mut last = None;
    // retry.DefaultRetry: 5 steps, 10 ms apart, on conflicts only.
    for _ in 0..5 {
        let mut cur = api
            .get(&ns)
            .await
            .with_context(|| format!("Unable to get Namespace {ns:?}"))?;
        cur.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(ns.clone(), "updated".into());
        match api.replace(&ns, &PostParams::default(), &cur).await {
            Ok(updated) => {
                last = Some(Ok(updated));
                break;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                last = Some(Err(kube::Error::Api(s)));
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(e) => {
                last = Some(Err(e));
                break;
            }
        }
    }
    let updated = last
        .context("no attempt made")?
        .with_context(|| format!("failed to update Namespace: {ns:?}"))?;
    let label = updated.metadata.labels.as_ref().and_then(|l| l.get(&ns));
    ensure!(
        label.map(String::as_str) == Some("updated"),
        "Failed to update namespace {ns:?}. Current Labels: {:?}",
        updated.metadata.labels
    );
    Ok(())
}

/// Upstream's `f.CreateNamespace`: a namespace `name`, labelled as the runner labels its
/// own.
async fn create_namespace(api: &Api<Namespace>, name: &str) -> anyhow::Result<Namespace> {
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"e2e-run": "rkube-conformance"}}
    }))?;
    api.create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("failed to create namespace: {name}"))
}

/// Upstream's `NamespaceInterface.Finalize`: `PUT /api/v1/namespaces/{name}/finalize`.
async fn finalize(client: &kube::Client, ns: &Namespace) -> kube::Result<Namespace> {
    let name = ns.metadata.name.as_deref().unwrap_or_default();
    let body = serde_json::to_vec(ns).map_err(kube::Error::SerdeError)?;
    let req = http::Request::put(format!("/api/v1/namespaces/{name}/finalize"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(kube::Error::HttpError)?;
    client.request(req).await
}

fn finalizers(ns: &Namespace) -> Vec<String> {
    ns.spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default()
}

/// Get, change and `finalize` the namespace; again on a conflict (`retry.DefaultRetry`).
async fn finalize_retrying(
    client: &kube::Client,
    name: &str,
    change: impl Fn(&mut Vec<String>),
) -> anyhow::Result<Namespace> {
    let api: Api<Namespace> = Api::all(client.clone());
    for _ in 0..5 {
        let mut ns = api
            .get(name)
            .await
            .with_context(|| format!("Unable to get Namespace {name:?}"))?;
        let mut f = finalizers(&ns);
        change(&mut f);
        ns.spec.get_or_insert_with(Default::default).finalizers = Some(f);
        match finalize(client, &ns).await {
            Ok(ns) => return Ok(ns),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            Err(e) => return Err(e.into()),
        }
    }
    bail!("conflicts, 5 times")
}

/// A new namespace gets a fake finalizer through the finalize subresource, which it MUST
/// then have; removing it the same way MUST succeed and it MUST be gone.
async fn finalizer(ctx: Ctx) -> anyhow::Result<()> {
    const FAKE: &str = "e2e.example.com/fakeFinalizer";
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let name = format!("e2e-ns-{}", crate::random_lowercase(5));
    create_namespace(&api, &name)
        .await
        .context("failed creating Namespace")?;
    let result = async {
        let updated = finalize_retrying(&ctx.client, &name, |f| f.push(FAKE.into()))
            .await
            .with_context(|| format!("failed to add finalizer to the namespace: {name:?}"))?;
        ensure!(
            finalizers(&updated).iter().any(|f| f == FAKE),
            "Finalizer {FAKE:?} was not found. Namespace {name:?} has {:?}",
            finalizers(&updated)
        );
        let updated = finalize_retrying(&ctx.client, &name, |f| f.retain(|x| x != FAKE))
            .await
            .with_context(|| format!("failed to remove finalizer from namespace: {name:?}"))?;
        ensure!(
            !finalizers(&updated).iter().any(|f| f == FAKE),
            "Finalizer {FAKE:?} was found. Namespace {name:?} has {:?}",
            finalizers(&updated)
        );
        Ok(())
    }
    .await;
    let _ = api.delete(&name, &DeleteParams::default()).await;
    result
}

/// The last condition of a namespace's status: (type, reason, message).
fn last_condition(ns: &Namespace) -> Option<(String, String, String)> {
    let c = ns.status.as_ref()?.conditions.as_ref()?.last()?;
    Some((
        c.type_.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    ))
}

/// The test's namespace's status reads phase Active; a merge patch of the status
/// subresource (with an annotation) and an update of it each MUST leave the new values.
async fn status(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let ns = ctx.ns.clone();

    let got = api
        .get_status(&ns)
        .await
        .with_context(|| format!("failed to fetch NamespaceStatus {ns}"))?;
    let phase = got.status.as_ref().and_then(|s| s.phase.clone());
    ensure!(
        phase.as_deref() == Some("Active"),
        "The phase returned was {phase:?}"
    );

    let patched = api
        .patch_status(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"annotations": {"e2e-patched-ns-status": ns}},
                "status": {"conditions": [{
                    "type": "StatusPatch", "status": "True",
                    "reason": "E2E", "message": "Patched by an e2e test",
                }]},
            })),
        )
        .await
        .context("Failed to patch status")?;
    let ann = patched
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("e2e-patched-ns-status"));
    ensure!(
        ann == Some(&ns),
        "patched object should have the applied annotation, got {:?}",
        patched.metadata.annotations
    );
    let last = last_condition(&patched).context("patched status has no conditions")?;
    ensure!(last.1 == "E2E", "The Reason returned was {:?}", last.1);
    ensure!(
        last.2 == "Patched by an e2e test",
        "The Message returned was {:?}",
        last.2
    );

    let mut updated = None;
    for _ in 0..5 {
        let mut cur = api
            .get_status(&ns)
            .await
            .with_context(|| format!("failed to fetch NamespaceStatus {ns}"))?;
        let st = cur.status.get_or_insert_with(Default::default);
        st.conditions
            .get_or_insert_with(Default::default)
            .push(serde_json::from_value(json!({
                "type": "StatusUpdate", "status": "True",
                "reason": "E2E", "message": "Updated by an e2e test",
            }))?);
        match api.replace_status(&ns, &PostParams::default(), &cur).await {
            Ok(n) => {
                updated = Some(n);
                break;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            Err(e) => {
                return Err(e).with_context(|| format!("failed to update namespace status {ns}"))
            }
        }
    }
    let updated = updated
        .with_context(|| format!("failed to update namespace status {ns}: conflicts, 5 times"))?;
    let conds = updated.status.as_ref().and_then(|s| s.conditions.clone());
    let last = last_condition(&updated).context("updated status has no conditions")?;
    ensure!(
        last.0 == "StatusUpdate",
        "updated object should have the approved condition, got {conds:?}"
    );
    ensure!(
        last.2 == "Updated by an e2e test",
        "The Message returned was {:?}",
        last.2
    );
    Ok(())
}

/// Upstream's `WaitForDefaultServiceAccountInNamespace`: polls (2 s) for the `default`
/// ServiceAccount, for at most 2 minutes (`ServiceAccountProvisionTimeout`).
async fn wait_for_default_service_account(client: &kube::Client, ns: &str) -> anyhow::Result<()> {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    e2epod::eventually(
        Duration::from_secs(120),
        Duration::from_secs(2),
        &format!("a default service account to be provisioned in namespace {ns}"),
        || async {
            match sas.get_opt("default").await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err("not found".to_string()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
}

/// Deletes the namespace and polls (1 s) until a get of it is NotFound, for `limit`.
async fn delete_and_wait_gone(
    api: &Api<Namespace>,
    name: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    api.delete(name, &DeleteParams::default())
        .await
        .with_context(|| format!("failed to delete namespace: {name}"))?;
    e2epod::eventually(
        limit,
        Duration::from_secs(1),
        &format!("namespace {name} to be removed"),
        || async {
            match api.get_opt(name).await {
                Ok(None) => Ok(()),
                Ok(Some(ns)) => Err(format!(
                    "still there, phase {:?}",
                    ns.status.and_then(|s| s.phase)
                )),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
}

/// A namespace with a running pod is deleted: the namespace MUST be gone within 60 s
/// plus the pod's grace period, and, recreated, MUST have no such pod.
async fn deletion_removes_pods(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let name = format!("nsdeletetest-{}", crate::random_lowercase(5));
    create_namespace(&api, &name).await?;
    let result = async {
        wait_for_default_service_account(&ctx.client, &name)
            .await
            .with_context(|| {
                format!("failure while waiting for a default service account to be provisioned in namespace: {name}")
            })?;
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &name);
        let pod = e2epod::pod(json!({
            "metadata": {"name": "test-pod"},
            "spec": {"containers": [{"name": "nginx", "image": super::pause_image()}]},
        }))?;
        let pod = pods
            .create(&PostParams::default(), &pod)
            .await
            .with_context(|| format!("failed to create pod test-pod in namespace: {name}"))?;
        e2epod::wait_for_running(&pods, "test-pod", e2epod::POD_START_TIMEOUT).await?;
        let grace = pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        let limit = Duration::from_secs(60 + grace.max(0) as u64);
        delete_and_wait_gone(&api, &name, limit).await?;
        // Upstream recreates it under a new random name; the same name tells more.
        create_namespace(&api, &name).await?;
        match pods.get_opt("test-pod").await {
            Ok(None) | Err(_) => Ok(()),
            Ok(Some(p)) => bail!(
                "pod test-pod is still in the recreated namespace {name}: {}",
                e2epod::describe(&p)
            ),
        }
    }
    .await;
    let _ = api.delete(&name, &DeleteParams::default()).await;
    result
}

/// A namespace with a service is deleted: the namespace MUST be gone within 60 s and,
/// recreated, MUST have no such service.
async fn deletion_removes_services(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let name = format!("nsdeletetest-{}", crate::random_lowercase(5));
    create_namespace(&api, &name).await?;
    let result = async {
        wait_for_default_service_account(&ctx.client, &name)
            .await
            .with_context(|| {
                format!("failure while waiting for a default service account to be provisioned in namespace: {name}")
            })?;
        let svcs: Api<Service> = Api::namespaced(ctx.client.clone(), &name);
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "test-service"},
            "spec": {
                "selector": {"foo": "bar", "baz": "blah"},
                "ports": [{"port": 80, "targetPort": 80}],
            },
        }))?;
        svcs.create(&PostParams::default(), &svc)
            .await
            .with_context(|| format!("failed to create service test-service in namespace {name}"))?;
        delete_and_wait_gone(&api, &name, Duration::from_secs(60)).await?;
        // Upstream recreates it under a new random name; the same name tells more.
        create_namespace(&api, &name).await?;
        match svcs.get_opt("test-service").await {
            Ok(None) | Err(_) => Ok(()),
            Ok(Some(s)) => bail!(
                "service test-service is still in the recreated namespace {name}: {:?}",
                s.metadata
            ),
        }
    }
    .await;
    let _ = api.delete(&name, &DeleteParams::default()).await;
    result
}
