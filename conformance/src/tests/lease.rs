//! Lease: upstream's test/e2e/common/node/lease.go.

use anyhow::{bail, ensure, Context};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::test;
use crate::{Ctx, Test};

const AREA: &str = "Lease";

pub fn tests() -> Vec<Test> {
    vec![test!(
        AREA,
        "lease API should be available",
        "[sig-node] Lease lease API should be available [Conformance]",
        lease_api
    )]
}

/// Go's `time.Time{}.Add(secs * time.Second)`: `secs` after 0001-01-01T00:00:00Z.
fn micro(secs: i64) -> MicroTime {
    let zero: k8s_openapi::jiff::Timestamp = "0001-01-01T00:00:00Z".parse().expect("timestamp");
    MicroTime(zero + k8s_openapi::jiff::SignedDuration::from_secs(secs))
}

fn spec(holder: &str, duration: i32, acquire: i64, renew: i64, transitions: i32) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(holder.into()),
        lease_duration_seconds: Some(duration),
        acquire_time: Some(micro(acquire)),
        renew_time: Some(micro(renew)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    }
}

fn same_spec(want: &Option<LeaseSpec>, got: &Option<LeaseSpec>) -> anyhow::Result<()> {
    ensure!(
        want == got,
        "Leases don't match: expected {want:?}, got {got:?}"
    );
    Ok(())
}

async fn lease_api(ctx: Ctx) -> anyhow::Result<()> {
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let name = "lease";
    let lease = Lease {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(spec("holder", 30, 2, 5, 0)),
    };
    let mut created = leases
        .create(&PostParams::default(), &lease)
        .await
        .context("creating Lease failed")?;
    let read = leases.get(name).await.context("couldn't read Lease")?;
    same_spec(&lease.spec, &read.spec)?;

    created.spec = Some(spec("holder2", 30, 20, 50, 1));
    leases
        .replace(name, &PostParams::default(), &created)
        .await
        .context("updating Lease failed")?;
    let read = leases.get(name).await.context("couldn't read Lease")?;
    same_spec(&created.spec, &read.spec)?;

    // The two-way strategic merge patch from the read Lease to this spec: every spec field
    // differs, nothing else does.
    let patched = spec("holder3", 60, 50, 70, 2);
    let patch = json!({"spec": serde_json::to_value(&patched)?});
    leases
        .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .context("patching Lease failed")?;
    let read = leases.get(name).await.context("couldn't read Lease")?;
    same_spec(&Some(patched), &read.spec)?;

    let lease2 = Lease {
        metadata: kube::api::ObjectMeta {
            name: Some("lease2".into()),
            labels: Some([("deletecollection".to_string(), "true".to_string())].into()),
            ..Default::default()
        },
        spec: Some(spec("holder", 30, 2, 5, 0)),
    };
    leases
        .create(&PostParams::default(), &lease2)
        .await
        .context("creating Lease failed")?;
    let list = leases
        .list(&ListParams::default())
        .await
        .context("couldn't list Leases")?;
    ensure!(
        list.items.len() == 2,
        "expected 2 Leases, got {}",
        list.items.len()
    );

    leases
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("deletecollection=true"),
        )
        .await
        .context("couldn't delete collection")?;
    let list = leases
        .list(&ListParams::default())
        .await
        .context("couldn't list Leases")?;
    ensure!(
        list.items.len() == 1,
        "expected 1 Lease, got {}",
        list.items.len()
    );

    leases
        .delete(name, &DeleteParams::default())
        .await
        .context("deleting Lease failed")?;
    match leases.get(name).await {
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        other => bail!("expected IsNotFound error, got {other:?}"),
    }
    Api::<Lease>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await
        .context("couldn't list Leases from all namespace")?;
    Ok(())
}
