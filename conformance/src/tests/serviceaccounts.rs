//! ServiceAccounts: upstream's test/e2e/auth/service_accounts.go (the ones without
//! TokenRequest, TokenReview or exec).

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchParams};
use serde_json::json;

use super::test;
use super::watchers::{Kind, Watch};
use crate::{Ctx, Test};

const AREA: &str = "ServiceAccounts";

const ROOT_CA: &str = "kube-root-ca.crt";
/// upstream's `serviceaccount.DefaultAPITokenMountPath`.
const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Service account tokens auto mount optionally",
            "[sig-auth] ServiceAccounts should allow opting out of API token automount [Conformance]",
            automount_opt_out
        ),
        test!(
            AREA,
            "RootCA ConfigMap test",
            "[sig-auth] ServiceAccounts should guarantee kube-root-ca.crt exist in any namespace [Conformance]",
            root_ca_configmap
        ),
        test!(
            AREA,
            "ServiceAccount lifecycle test",
            "[sig-auth] ServiceAccounts should run through the lifecycle of a ServiceAccount [Conformance]",
            lifecycle
        ),
        test!(
            AREA,
            "ServiceAccount, update a ServiceAccount",
            "[sig-auth] ServiceAccounts should update a ServiceAccount [Conformance]",
            update
        ),
    ]
}

/// The token volume is mounted unless the pod, or (when the pod says nothing) its
/// service account, opts out.
async fn automount_opt_out(ctx: Ctx) -> anyhow::Result<()> {
    let sas: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let pp = PostParams::default();
    for (name, automount) in [("mount", true), ("nomount", false)] {
        let sa: ServiceAccount = serde_json::from_value(
            json!({"metadata": {"name": name}, "automountServiceAccountToken": automount}),
        )?;
        sas.create(&pp, &sa)
            .await
            .with_context(|| format!("creating ServiceAccount {name}"))?;
    }
    // (pod, service account, the pod's automountServiceAccountToken, token volume expected)
    let cases: &[(&str, &str, Option<bool>, bool)] = &[
        ("pod-service-account-defaultsa", "default", None, true),
        ("pod-service-account-mountsa", "mount", None, true),
        ("pod-service-account-nomountsa", "nomount", None, false),
        // The pod spec wins when opting in...
        (
            "pod-service-account-defaultsa-mountspec",
            "default",
            Some(true),
            true,
        ),
        (
            "pod-service-account-mountsa-mountspec",
            "mount",
            Some(true),
            true,
        ),
        (
            "pod-service-account-nomountsa-mountspec",
            "nomount",
            Some(true),
            true,
        ),
        // ... and when opting out.
        (
            "pod-service-account-defaultsa-nomountspec",
            "default",
            Some(false),
            false,
        ),
        (
            "pod-service-account-mountsa-nomountspec",
            "mount",
            Some(false),
            false,
        ),
        (
            "pod-service-account-nomountsa-nomountspec",
            "nomount",
            Some(false),
            false,
        ),
    ];
    // The `default` account comes from the namespace's controller.
    wait_for_default_account(&sas).await?;
    for &(pod_name, sa, automount, expect_volume) in cases {
        let mut spec = json!({
            "containers": [{"name": "token-test", "image": super::agnhost_image()}],
            "restartPolicy": "Never",
            "serviceAccountName": sa,
        });
        if let Some(a) = automount {
            spec["automountServiceAccountToken"] = json!(a);
        }
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": pod_name}, "spec": spec}))?;
        let created = pods
            .create(&pp, &pod)
            .await
            .with_context(|| format!("creating pod {pod_name}"))?;
        let has_volume = created
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.volume_mounts.iter().flatten())
            .any(|m| m.mount_path == TOKEN_MOUNT_PATH);
        ensure!(
            has_volume == expect_volume,
            "{pod_name}: expected volume={expect_volume}, got {has_volume} ({:?})",
            created.spec
        );
    }
    Ok(())
}

/// The namespace's `default` ServiceAccount exists (upstream's framework waits for it
/// before a test; our runner does not).
async fn wait_for_default_account(sas: &Api<ServiceAccount>) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if sas.get_opt("default").await?.is_some() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the default ServiceAccount did not appear within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// upstream's `wait.Poll(500ms, ForeverTestTimeout)` on the root CA ConfigMap until
/// `done` says it is as wanted (`None`: not found yet).
async fn poll_root_ca(
    api: &Api<ConfigMap>,
    what: &str,
    done: impl Fn(&ConfigMap) -> bool,
) -> anyhow::Result<()> {
    // wait.ForeverTestTimeout
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let cm = api
            .get_opt(ROOT_CA)
            .await
            .with_context(|| format!("getting {ROOT_CA}"))?;
        if cm.as_ref().is_some_and(&done) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out waiting for {what}: last seen {cm:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `kube-root-ca.crt` exists in a new namespace, comes back when deleted and is put
/// right when changed.
async fn root_ca_configmap(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    poll_root_ca(&api, "the root ca configmap", |_| true).await?;

    api.delete(ROOT_CA, &DeleteParams::default().grace_period(0))
        .await
        .context("deleting the root ca configmap")?;
    poll_root_ca(&api, "a new root ca configmap created", |_| true).await?;

    let emptied: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": ROOT_CA}, "data": {"ca.crt": ""}}))?;
    api.replace(ROOT_CA, &PostParams::default(), &emptied)
        .await
        .context("updating the root ca configmap")?;
    poll_root_ca(&api, "the root ca configmap reconciled", |cm| {
        cm.data
            .as_ref()
            .and_then(|d| d.get("ca.crt"))
            .is_some_and(|v| !v.is_empty())
    })
    .await
}

/// Create, watch (ADDED), patch (MODIFIED), find across namespaces, delete the
/// namespace's collection (DELETED).
async fn lifecycle(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let name = "testserviceaccount";
    let selector = "test-serviceaccount-static=true";
    let sa: ServiceAccount = serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"test-serviceaccount-static": "true"}}}),
    )?;
    let created = api
        .create(&PostParams::default(), &sa)
        .await
        .context("failed to create a ServiceAccount")?;
    let got = api
        .get(name)
        .await
        .context("failed to fetch the created ServiceAccount")?;
    ensure!(
        created.metadata.uid == got.metadata.uid,
        "the created ServiceAccount has uid {:?}, the fetched one {:?}",
        created.metadata.uid,
        got.metadata.uid
    );

    let mut w = Watch::open(
        &api,
        &WatchParams::default().labels(selector).timeout(180),
        "",
    )
    .await
    .context("failed to setup watch on newly created ServiceAccount")?;
    let until = Duration::from_secs(180);
    w.wait_for(Kind::Added, None, until)
        .await?
        .context("failed to find ADDED event")?;

    // json.Marshal(v1.ServiceAccount{AutomountServiceAccountToken: &false})
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Strategic(json!({"metadata": {"creationTimestamp": null},
                                 "automountServiceAccountToken": false})),
    )
    .await
    .context("failed to patch the ServiceAccount")?;
    w.wait_for(Kind::Modified, None, until)
        .await?
        .context("failed to find MODIFIED event")?;

    let all: Api<ServiceAccount> = Api::all(ctx.client.clone());
    let list = all
        .list(&ListParams::default().labels(selector))
        .await
        .context("failed to list ServiceAccounts by LabelSelector")?;
    let found = list.items.iter().any(|s| {
        s.metadata.name.as_deref() == Some(name)
            && s.metadata.namespace.as_deref() == Some(ctx.ns.as_str())
            && s.automount_service_account_token == Some(false)
    });
    ensure!(found, "failed to find the created ServiceAccount");

    api.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .context("failed to delete the ServiceAccount by Collection")?;
    w.wait_for(Kind::Deleted, None, until)
        .await?
        .context("failed to find DELETED event")?;
    Ok(())
}

/// automountServiceAccountToken false on create, true after an update.
async fn update(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let name = format!("e2e-sa-{}", crate::random_lowercase(5));
    let sa: ServiceAccount = serde_json::from_value(
        json!({"metadata": {"name": name}, "automountServiceAccountToken": false}),
    )?;
    let created = api
        .create(&PostParams::default(), &sa)
        .await
        .with_context(|| format!("creating ServiceAccount {name:?}"))?;
    ensure!(
        created.automount_service_account_token == Some(false),
        "Failed to set AutomountServiceAccountToken: expected false, got {:?}",
        created.automount_service_account_token
    );
    // retry.RetryOnConflict(retry.DefaultRetry, ...)
    let mut updated = None;
    for _ in 0..5 {
        let mut cur = api
            .get(&name)
            .await
            .with_context(|| format!("Unable to get ServiceAccount {name:?}"))?;
        cur.automount_service_account_token = Some(true);
        match api.replace(&name, &PostParams::default(), &cur).await {
            Ok(sa) => {
                updated = Some(sa);
                break;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            Err(e) => return Err(e).context("Failed to update ServiceAccount"),
        }
    }
    let updated = updated.context("Failed to update ServiceAccount: conflicts")?;
    ensure!(
        updated.automount_service_account_token == Some(true),
        "Failed to set AutomountServiceAccountToken: expected true, got {:?}",
        updated.automount_service_account_token
    );
    Ok(())
}
