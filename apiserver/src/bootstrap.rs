//! Objects every cluster has from the start: the system namespaces and the `kubernetes`
//! service (with its endpoints) pointing at this API server.

use serde_json::{json, Value};

use crate::admission;
use crate::object;
use crate::App;

async fn ensure(app: &App, res: &str, ns: Option<&str>, mut obj: Value) -> anyhow::Result<()> {
    let r = crate::resources::find(
        obj["apiVersion"]
            .as_str()
            .and_then(|a| a.rsplit_once('/'))
            .map(|(g, _)| g)
            .unwrap_or(""),
        "v1",
        res,
    )
    .expect("bootstrap resource is served");
    let key = r.key(ns, object::name(&obj));
    if app.store.get(&key).await?.is_some() {
        return Ok(());
    }
    admission::prepare_create(r, &mut obj, ns);
    match app.store.create(&key, object::encode_stored(&obj)).await {
        Ok(_) | Err(storage::StoreError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub async fn run(app: &App) -> anyhow::Result<()> {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        ensure(
            app,
            "namespaces",
            None,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await?;
        ensure(
            app,
            "serviceaccounts",
            Some(ns),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
        )
        .await?;
    }
    let ip = app.cfg.service_cidr.nth(1).to_string();
    ensure(app, "services", Some("default"), json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip], "sessionAffinity": "None",
                 "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": app.cfg.port}]},
    })).await?;
    let addr = app.cfg.advertise_address.to_string();
    ensure(app, "endpoints", Some("default"), json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": addr}], "ports": [{"name": "https", "port": app.cfg.port, "protocol": "TCP"}]}],
    })).await?;
    ensure(app, "endpointslices", Some("default"), json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [addr], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": app.cfg.port, "protocol": "TCP"}],
    })).await?;
    Ok(())
}
