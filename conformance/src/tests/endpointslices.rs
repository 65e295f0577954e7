//! Endpoints and EndpointSlices: upstream's test/e2e/network/endpointslice.go,
//! endpointslicemirroring.go and the Endpoint lifecycle test (service.go, later
//! endpoints.go).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIGroup, APIGroupList, APIResourceList};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchParams};
use serde_json::json;

use super::test;
use super::watchers::{Kind, Watch};
use crate::{Ctx, Test};

const AREA: &str = "Endpoints/EndpointSlices";
const SERVICE_NAME: &str = "kubernetes.io/service-name";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "EndpointSlice API",
            "[sig-network] EndpointSlice should have Endpoints and EndpointSlices pointing to API Server [Conformance]",
            pointing_to_api_server
        ),
        test!(
            AREA,
            "EndpointSlice API",
            "[sig-network] EndpointSlice should create and delete Endpoints and EndpointSlices for a Service with a selector specified [Conformance]",
            create_and_delete_for_selector
        ),
        test!(
            AREA,
            "EndpointSlice API",
            "[sig-network] EndpointSlice should create Endpoints and EndpointSlices for Pods matching a Service [Conformance]",
            for_matching_pods
        ),
        test!(
            AREA,
            "EndpointSlice API",
            "[sig-network] EndpointSlice should support creating EndpointSlice API operations [Conformance]",
            api_operations
        ),
        test!(
            AREA,
            "EndpointSlice Mirroring",
            "[sig-network] EndpointSliceMirroring should mirror a custom Endpoints resource through create update and delete [Conformance]",
            mirroring
        ),
        test!(
            AREA,
            "Endpoint resource lifecycle",
            "[sig-network] Services should test the lifecycle of an Endpoint [Conformance]",
            endpoint_lifecycle
        ),
    ]
}

/// upstream's `wait.Poll*`: `check` until it gives `Some`, every `every`, for `limit`
/// (`immediate`: the first check at once). `check` failing ends the poll.
pub async fn poll<T, F, Fut>(
    every: Duration,
    limit: Duration,
    immediate: bool,
    what: &str,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    if !immediate {
        tokio::time::sleep(every).await;
    }
    loop {
        if let Some(t) = check().await? {
            return Ok(t);
        }
        if tokio::time::Instant::now() + every > deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(every).await;
    }
}

fn from_json<T: k8s_openapi::serde::de::DeserializeOwned>(
    v: serde_json::Value,
) -> anyhow::Result<T> {
    Ok(serde_json::from_value(v)?)
}

async fn slices_of(api: &Api<EndpointSlice>, svc: &str) -> anyhow::Result<Vec<EndpointSlice>> {
    Ok(api
        .list(&ListParams::default().labels(&format!("{SERVICE_NAME}={svc}")))
        .await
        .with_context(|| format!("Error fetching EndpointSlices for Service {svc}"))?
        .items)
}

/// `default/kubernetes` has Endpoints and EndpointSlices with the same addresses and ports.
async fn pointing_to_api_server(ctx: Ctx) -> anyhow::Result<()> {
    let (ns, name) = ("default", "kubernetes");
    Api::<Service>::namespaced(ctx.client.clone(), ns)
        .get(name)
        .await
        .context(
            "error obtaining API server \"kubernetes\" Service resource on \"default\" namespace",
        )?;
    let endpoints = Api::<Endpoints>::namespaced(ctx.client.clone(), ns)
        .get(name)
        .await
        .context(
            "error obtaining API server \"kubernetes\" Endpoint resource on \"default\" namespace",
        )?;
    let subsets = endpoints.subsets.clone().unwrap_or_default();
    ensure!(
        !subsets.is_empty(),
        "Expected at least 1 subset in endpoints, got 0: {endpoints:?}"
    );
    let slices = slices_of(&Api::namespaced(ctx.client.clone(), ns), name).await?;
    ensure!(
        !slices.is_empty(),
        "Expected at least 1 EndpointSlice, got 0"
    );
    let mut ep_addresses = BTreeSet::new();
    let mut ep_ports = BTreeSet::new();
    for s in &subsets {
        for a in s
            .addresses
            .iter()
            .flatten()
            .chain(s.not_ready_addresses.iter().flatten())
        {
            ep_addresses.insert(a.ip.clone());
        }
        for p in s.ports.iter().flatten() {
            ep_ports.insert(p.port);
        }
    }
    // The kubernetes service's family (IPv4 here) is the one compared.
    let mut slice_addresses = BTreeSet::new();
    let mut slice_ports = BTreeSet::new();
    for s in slices.iter().filter(|s| s.address_type == "IPv4") {
        for e in &s.endpoints {
            slice_addresses.extend(e.addresses.iter().cloned());
        }
        slice_ports.extend(s.ports.iter().flatten().filter_map(|p| p.port));
    }
    ensure!(
        slice_addresses == ep_addresses && slice_ports == ep_ports,
        "Expected EndpointSlice to have same addresses and port as Endpoints: Endpoints {ep_addresses:?} {ep_ports:?}, EndpointSlices {slice_addresses:?} {slice_ports:?}"
    );
    Ok(())
}

/// A service selecting nothing still gets (empty) Endpoints and an EndpointSlice, which
/// go when the service goes.
async fn create_and_delete_for_selector(ctx: Ctx) -> anyhow::Result<()> {
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let endpoints: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let slices: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let name = "example-empty-selector";
    services
        .create(
            &PostParams::default(),
            &from_json(json!({"metadata": {"name": name}, "spec": {
                "selector": {"does-not-match-anything": "endpoints-and-endpoint-slices-should-still-be-created"},
                "ports": [{"name": "example", "port": 80, "protocol": "TCP"}]}}))?,
        )
        .await
        .context("error creating Service")?;

    let (two, forever) = (Duration::from_secs(2), Duration::from_secs(30));
    poll(two, forever, true, "Endpoints for the Service", || async {
        Ok(endpoints.get_opt(name).await.ok().flatten())
    })
    .await
    .with_context(|| format!("No Endpoints found for Service {}/{name}", ctx.ns))?;
    let slice = poll(
        two,
        forever,
        true,
        "an EndpointSlice for the Service",
        || async { Ok(slices_of(&slices, name).await?.into_iter().next()) },
    )
    .await
    .with_context(|| format!("No EndpointSlice found for Service {}/{name}", ctx.ns))?;
    let managed_by = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY));
    ensure!(
        managed_by.map(String::as_str) == Some("endpointslice-controller.k8s.io"),
        "Expected EndpointSlice to have {MANAGED_BY} label with endpointslice-controller.k8s.io value, got {:?}",
        slice.metadata.labels
    );
    ensure!(
        slice.endpoints.is_empty(),
        "Expected EndpointSlice to have 0 endpoints, got {}: {:?}",
        slice.endpoints.len(),
        slice.endpoints
    );

    services
        .delete(name, &DeleteParams::default())
        .await
        .context("error deleting Service")?;
    poll(two, forever, true, "the Endpoints to go", || async {
        Ok(endpoints.get_opt(name).await?.is_none().then_some(()))
    })
    .await
    .with_context(|| {
        format!(
            "Endpoints resource not deleted after Service {}/{name} was deleted",
            ctx.ns
        )
    })?;
    poll(
        two,
        Duration::from_secs(90),
        true,
        "the EndpointSlices to go",
        || async { Ok(slices_of(&slices, name).await?.is_empty().then_some(())) },
    )
    .await
    .with_context(|| {
        format!(
            "EndpointSlice resource not deleted after Service {}/{name} was deleted",
            ctx.ns
        )
    })?;
    Ok(())
}

fn pod_with_ports(name: &str, labels: &[&str], ports: &[(&str, i32)]) -> anyhow::Result<Pod> {
    let labels: BTreeMap<&str, &str> = labels.iter().map(|l| (*l, "on")).collect();
    let ports: Vec<_> = ports
        .iter()
        .map(|(n, p)| json!({"name": n, "containerPort": p}))
        .collect();
    from_json(
        json!({"metadata": {"name": name, "labels": labels}, "spec": {"containers": [
        {"name": "container1", "image": super::agnhost_image(), "ports": ports}]}}),
    )
}

fn service(
    name: &str,
    selector: &str,
    port_name: &str,
    target: serde_json::Value,
) -> anyhow::Result<Service> {
    from_json(json!({"metadata": {"name": name}, "spec": {
        "selector": {selector: "on"}, "publishNotReadyAddresses": true,
        "ports": [{"name": port_name, "port": 80, "targetPort": target, "protocol": "TCP"}]}}))
}

/// upstream's `ensurePodTargetRef`.
fn ensure_pod_target_ref(
    pod: &Pod,
    target: Option<&k8s_openapi::api::core::v1::ObjectReference>,
) -> anyhow::Result<()> {
    let t = target.context("Expected TargetRef to not be nil")?;
    ensure!(
        t.kind.as_deref() == Some("Pod"),
        "Expected TargetRef.Kind to be Pod, got {:?}",
        t.kind
    );
    ensure!(
        t.namespace == pod.metadata.namespace,
        "Expected TargetRef.Namespace to be {:?}, got {:?}",
        pod.metadata.namespace,
        t.namespace
    );
    ensure!(
        t.name == pod.metadata.name,
        "Expected TargetRef.Name to be {:?}, got {:?}",
        pod.metadata.name,
        t.name
    );
    ensure!(
        t.uid == pod.metadata.uid,
        "Expected TargetRef.UID to be {:?}, got {:?}",
        pod.metadata.uid,
        t.uid
    );
    Ok(())
}

/// upstream's `expectEndpointsAndSlices`: the service's Endpoints and EndpointSlices
/// point at exactly `pods`, with the service's ports (or, for a named port, each pod's).
async fn expect_endpoints_and_slices(
    ctx: &Ctx,
    svc: &Service,
    pods: &[&Pod],
    num_subsets: usize,
    num_slices: usize,
    named_port: bool,
) -> anyhow::Result<()> {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let slices_api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let ep_api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let (five, two_min) = (Duration::from_secs(5), Duration::from_secs(120));
    let slices = poll(
        five,
        two_min,
        true,
        "EndpointSlices to match expectations",
        || async {
            let items = slices_of(&slices_api, &name).await?;
            let endpoints: usize = items.iter().map(|s| s.endpoints.len()).sum();
            Ok(
                (!items.is_empty() && items.len() >= num_slices && endpoints >= pods.len())
                    .then_some(items),
            )
        },
    )
    .await
    .context("Timed out waiting for EndpointSlices to match expectations")?;
    let endpoints = poll(
        five,
        two_min,
        false,
        "Endpoints to match expectations",
        || async {
            let Some(ep) = ep_api.get_opt(&name).await? else {
                return Ok(None);
            };
            let subsets = ep.subsets.clone().unwrap_or_default();
            let ips: usize = subsets
                .iter()
                .map(|s| {
                    s.addresses.as_ref().map_or(0, Vec::len)
                        + s.not_ready_addresses.as_ref().map_or(0, Vec::len)
                })
                .sum();
            Ok((subsets.len() == num_subsets && ips == pods.len()).then_some(ep))
        },
    )
    .await
    .context("Timed out waiting for Endpoints to match expectations")?;

    let by_ip: BTreeMap<String, &Pod> = pods
        .iter()
        .map(|p| {
            let ip = p
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .unwrap_or_default();
            (ip, *p)
        })
        .collect();
    let svc_ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    let target_int = |i: usize| match &svc_ports[i].target_port {
        Some(IntOrString::Int(n)) => *n,
        _ => 0,
    };
    let target_name = match &svc_ports[0].target_port {
        Some(IntOrString::String(s)) => s.clone(),
        Some(IntOrString::Int(n)) => n.to_string(),
        None => String::new(),
    };
    // The container port a named service port resolves to on `pod`.
    let named = |pod: &Pod| -> Option<i32> {
        pod.spec.as_ref()?.containers[0]
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(target_name.as_str()))
            .map(|p| p.container_port)
    };
    ensure!(
        endpoints.metadata.name.as_deref() == Some(name.as_str()),
        "Expected Endpoints name to be {name}, got {:?}",
        endpoints.metadata.name
    );
    let mut total = 0;
    for subset in endpoints.subsets.iter().flatten() {
        let addresses: Vec<_> = subset
            .addresses
            .iter()
            .flatten()
            .chain(subset.not_ready_addresses.iter().flatten())
            .collect();
        total += addresses.len();
        let ports = subset.ports.clone().unwrap_or_default();
        ensure!(
            ports.len() == svc_ports.len(),
            "Expected subset to have {} ports, got {}",
            svc_ports.len(),
            ports.len()
        );
        if !named_port {
            for (i, p) in ports.iter().enumerate() {
                let sp = &svc_ports[i];
                ensure!(
                    p.name == sp.name,
                    "Expected port name to be {:?}, got {:?}",
                    sp.name,
                    p.name
                );
                ensure!(
                    p.protocol == sp.protocol,
                    "Expected protocol to be {:?}, got {:?}",
                    sp.protocol,
                    p.protocol
                );
                ensure!(
                    p.port == target_int(i),
                    "Expected port to be {}, got {}",
                    target_int(i),
                    p.port
                );
            }
        }
        for a in addresses {
            let pod = by_ip
                .get(&a.ip)
                .with_context(|| format!("Unexpected address with IP: {}", a.ip))?;
            ensure_pod_target_ref(pod, a.target_ref.as_ref())?;
            if let (true, Some(want)) = (named_port, named(pod)) {
                ensure!(
                    ports[0].port == want,
                    "Expected subset port to be {want}, got {}",
                    ports[0].port
                );
                ensure!(
                    ports[0].name == svc_ports[0].name,
                    "Expected subset port name to be {:?}, got {:?}",
                    svc_ports[0].name,
                    ports[0].name
                );
            }
        }
    }
    ensure!(
        total == pods.len(),
        "Expected {} addresses, got {total}",
        pods.len()
    );
    ensure!(
        !pods.is_empty() || slices.len() == 1,
        "Expected 1 EndpointSlice, got {}",
        slices.len()
    );

    let mut slice_addresses = BTreeSet::new();
    for slice in &slices {
        let ports = slice.ports.clone().unwrap_or_default();
        for e in &slice.endpoints {
            ensure!(
                !e.addresses.is_empty(),
                "Expected EndpointSlice endpoint to have at least 1 address"
            );
            slice_addresses.insert(e.addresses[0].clone());
        }
        if pods.is_empty() {
            ensure!(
                ports.is_empty(),
                "Expected EndpointSlice to have 0 ports, got {}",
                ports.len()
            );
        } else {
            ensure!(
                ports.len() == svc_ports.len(),
                "Expected EndpointSlice to have {} ports, got {}",
                svc_ports.len(),
                ports.len()
            );
        }
        if !named_port {
            for (i, p) in ports.iter().enumerate() {
                let sp = &svc_ports[i];
                ensure!(
                    p.name == sp.name,
                    "Expected port name to be {:?}, got {:?}",
                    sp.name,
                    p.name
                );
                ensure!(
                    p.protocol == sp.protocol,
                    "Expected protocol to be {:?}, got {:?}",
                    sp.protocol,
                    p.protocol
                );
                ensure!(
                    p.port == Some(target_int(i)),
                    "Expected port to be {}, got {:?}",
                    target_int(i),
                    p.port
                );
            }
        }
        for e in &slice.endpoints {
            let pod = by_ip
                .get(&e.addresses[0])
                .with_context(|| format!("Unexpected address with IP: {}", e.addresses[0]))?;
            ensure_pod_target_ref(pod, e.target_ref.as_ref())?;
            if let (true, Some(want)) = (named_port, named(pod)) {
                ensure!(
                    ports[0].port == Some(want),
                    "Expected EndpointSlice port to be {want}, got {:?}",
                    ports[0].port
                );
                ensure!(
                    ports[0].name == svc_ports[0].name,
                    "Expected EndpointSlice port name to be {:?}, got {:?}",
                    svc_ports[0].name,
                    ports[0].name
                );
            }
        }
    }
    ensure!(
        slice_addresses.len() == pods.len(),
        "Expected {} addresses, got {}",
        pods.len(),
        slice_addresses.len()
    );
    Ok(())
}

/// Services by int port, by named port, and selecting nothing get the Endpoints and
/// EndpointSlices of their pods; deleted slices come back.
async fn for_matching_pods(ctx: Ctx) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let pp = PostParams::default();
    pods.create(
        &pp,
        &pod_with_ports("pod1", &["pod1", "shared12"], &[("example-name", 3000)])?,
    )
    .await
    .context("creating pod1")?;
    pods.create(
        &pp,
        &pod_with_ports(
            "pod2",
            &["pod2", "shared12"],
            &[("example-name", 3001), ("other-port", 3002)],
        )?,
    )
    .await
    .context("creating pod2")?;
    let svc1 = services
        .create(
            &pp,
            &service("example-int-port", "pod1", "example", json!(3000))?,
        )
        .await
        .context("creating Service example-int-port")?;
    let svc2 = services
        .create(
            &pp,
            &service(
                "example-named-port",
                "shared12",
                "http",
                json!("example-name"),
            )?,
        )
        .await
        .context("creating Service example-named-port")?;
    let svc3 = services
        .create(
            &pp,
            &service("example-no-match", "pod3", "example-no-match", json!(8080))?,
        )
        .await
        .context("creating Service example-no-match")?;

    let has_ip = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.pod_ips.as_ref())
            .is_some_and(|ips| !ips.is_empty())
    };
    let (pod1, pod2) = poll(
        Duration::from_secs(5),
        Duration::from_secs(180),
        false,
        "Pods to have IPs assigned",
        || async {
            let (p1, p2) = (pods.get("pod1").await?, pods.get("pod2").await?);
            Ok((has_ip(&p1) && has_ip(&p2)).then_some((p1, p2)))
        },
    )
    .await
    .context("timed out waiting for Pods to have IPs assigned")?;

    expect_endpoints_and_slices(&ctx, &svc1, &[&pod1], 1, 1, false)
        .await
        .context("referencing a single matching pod")?;
    expect_endpoints_and_slices(&ctx, &svc2, &[&pod1, &pod2], 2, 2, true)
        .await
        .context("referencing matching pods with named port")?;
    expect_endpoints_and_slices(&ctx, &svc3, &[], 0, 1, false)
        .await
        .context("creating empty Endpoints and EndpointSlices for no matching Pods")?;

    let slices: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    for s in slices_of(&slices, "example-named-port").await? {
        let n = s.metadata.name.clone().unwrap_or_default();
        slices
            .delete(&n, &DeleteParams::default())
            .await
            .with_context(|| format!("Error deleting {}/{n} EndpointSlice", ctx.ns))?;
    }
    expect_endpoints_and_slices(&ctx, &svc2, &[&pod1, &pod2], 2, 2, true)
        .await
        .context("recreating EndpointSlices after they've been deleted")?;
    Ok(())
}

/// Discovery lists discovery.k8s.io/v1 endpointslices; create, get, list, watch, patch,
/// update, delete and deletecollection work.
async fn api_operations(ctx: Ctx) -> anyhow::Result<()> {
    let client = &ctx.client;
    let groups: APIGroupList = client
        .request(http::Request::get("/apis").body(Vec::new())?)
        .await
        .context("getting /apis")?;
    ensure!(
        groups
            .groups
            .iter()
            .any(|g| g.name == "discovery.k8s.io" && g.versions.iter().any(|v| v.version == "v1")),
        "expected discovery API group/version, got {:?}",
        groups.groups.iter().map(|g| &g.name).collect::<Vec<_>>()
    );
    let group: APIGroup = client
        .request(http::Request::get("/apis/discovery.k8s.io").body(Vec::new())?)
        .await
        .context("getting /apis/discovery.k8s.io")?;
    ensure!(
        group.versions.iter().any(|v| v.version == "v1"),
        "expected discovery API version, got {:?}",
        group.versions
    );
    let resources: APIResourceList = client
        .request(http::Request::get("/apis/discovery.k8s.io/v1").body(Vec::new())?)
        .await
        .context("getting /apis/discovery.k8s.io/v1")?;
    ensure!(
        resources
            .resources
            .iter()
            .any(|r| r.name == "endpointslices"),
        "expected endpointslices, got {:?}",
        resources
            .resources
            .iter()
            .map(|r| &r.name)
            .collect::<Vec<_>>()
    );

    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &ctx.ns);
    // f.UniqueName is the test namespace's name.
    let selector = format!("special-label={}", ctx.ns);
    let template: EndpointSlice = from_json(json!({
        "metadata": {"generateName": "e2e-example-ing", "labels": {"special-label": ctx.ns}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["1.2.3.4", "5.6.7.8"]}, {"addresses": ["2.2.3.4", "6.6.7.8"]}],
    }))?;
    let pp = PostParams::default();
    api.create(&pp, &template).await.context("creating")?;
    api.create(&pp, &template).await.context("creating")?;
    let created = api.create(&pp, &template).await.context("creating")?;
    let created_name = created.metadata.name.clone().unwrap_or_default();
    let got = api.get(&created_name).await.context("getting")?;
    ensure!(
        got.metadata.uid == created.metadata.uid,
        "got uid {:?}, created {:?}",
        got.metadata.uid,
        created.metadata.uid
    );
    let lp = ListParams::default().labels(&selector);
    let list = api.list(&lp).await.context("listing")?;
    ensure!(
        list.items.len() == 3,
        "filtered list should have 3 items, got {}",
        list.items.len()
    );
    let rv = list.metadata.resource_version.clone().unwrap_or_default();
    let mut w = Watch::open(&api, &WatchParams::default().labels(&selector), &rv)
        .await
        .context("watching")?;

    let all: Api<EndpointSlice> = Api::all(client.clone());
    let cluster_list = all.list(&lp).await.context("cluster-wide listing")?;
    ensure!(
        cluster_list.items.len() == 3,
        "filtered list should have 3 items, got {}",
        cluster_list.items.len()
    );
    Watch::open(&all, &WatchParams::default().labels(&selector), &rv)
        .await
        .context("cluster-wide watching")?;

    let patched = api
        .patch(
            &created_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"patched": "true"}}})),
        )
        .await
        .context("patching")?;
    let annotation = |s: &EndpointSlice, k: &str| {
        s.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(k))
            .cloned()
    };
    ensure!(
        annotation(&patched, "patched").as_deref() == Some("true"),
        "patched object should have the applied annotation, got {:?}",
        patched.metadata.annotations
    );
    let mut updated = None;
    for _ in 0..5 {
        let mut cur = api.get(&created_name).await.context("updating")?;
        cur.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert("updated".into(), "true".into());
        match api.replace(&created_name, &pp, &cur).await {
            Ok(s) => {
                updated = Some(s);
                break;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e).context("updating"),
        }
    }
    let updated = updated.context("updating: conflicts")?;
    ensure!(
        annotation(&updated, "updated").as_deref() == Some("true"),
        "updated object should have the applied annotation, got {:?}",
        updated.metadata.annotations
    );

    // The watch from the list's version sees the modifications (and nothing else).
    loop {
        match w.next(Duration::from_secs(30)).await? {
            None => bail!("timed out waiting for watch event"),
            Some((kind, s)) => {
                ensure!(
                    kind == Kind::Modified,
                    "expected a MODIFIED event, got {kind:?}"
                );
                if annotation(&s, "patched").as_deref() == Some("true") {
                    break;
                }
            }
        }
    }

    api.delete(&created_name, &DeleteParams::default())
        .await
        .context("deleting")?;
    match api.get(&created_name).await {
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        other => bail!("expected 404, got {other:?}"),
    }
    let list = api.list(&lp).await.context("listing")?;
    ensure!(
        list.items.len() == 2,
        "filtered list should have 2 items, got {}",
        list.items.len()
    );
    ensure!(
        !list
            .items
            .iter()
            .any(|s| s.metadata.name.as_deref() == Some(created_name.as_str())),
        "listing after deleting createdEPS"
    );
    api.delete_collection(&DeleteParams::default(), &lp)
        .await
        .context("deleting a collection")?;
    let list = api.list(&lp).await.context("listing")?;
    ensure!(
        list.items.is_empty(),
        "filtered list should have 0 items, got {}",
        list.items.len()
    );
    Ok(())
}

/// A selectorless service's own Endpoints are mirrored into an EndpointSlice through
/// create, update and delete.
async fn mirroring(ctx: Ctx) -> anyhow::Result<()> {
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let ep_api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let slices: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let name = "example-custom-endpoints";
    services
        .create(
            &PostParams::default(),
            &from_json(json!({"metadata": {"name": name}, "spec": {
                "ports": [{"name": "example", "port": 80, "protocol": "TCP"}]}}))?,
        )
        .await
        .context("error creating Service")?;
    let endpoints = |ip: &str| -> anyhow::Result<Endpoints> {
        from_json(json!({"metadata": {"name": name},
            "subsets": [{"ports": [{"port": 80}], "addresses": [{"ip": ip}]}]}))
    };
    let (two, twelve) = (Duration::from_secs(2), Duration::from_secs(12));
    let failed = || format!("Did not find matching EndpointSlice for {}/{name}", ctx.ns);

    ep_api
        .create(&PostParams::default(), &endpoints("10.1.2.3")?)
        .await
        .context("Unexpected error creating Endpoints")?;
    poll(two, twelve, true, "a mirrored EndpointSlice", || async {
        let items = match slices_of(&slices, name).await {
            Ok(items) if !items.is_empty() => items,
            _ => return Ok(None),
        };
        for s in &items {
            let ports = s.ports.clone().unwrap_or_default();
            ensure!(
                ports.len() == 1,
                "Expected EndpointSlice to have 1 Port, got {}",
                ports.len()
            );
            ensure!(
                ports[0].port == Some(80),
                "Expected port to be 80, got {:?}",
                ports[0].port
            );
            ensure!(
                s.endpoints.len() == 1,
                "Expected EndpointSlice to have 1 endpoints, got {}",
                s.endpoints.len()
            );
            let addrs = &s.endpoints[0].addresses;
            ensure!(
                addrs.len() == 1,
                "Expected EndpointSlice endpoint to have 1 address, got {}",
                addrs.len()
            );
            ensure!(
                addrs[0] == "10.1.2.3",
                "Expected EndpointSlice to have 10.1.2.3 as address, got {}",
                addrs[0]
            );
        }
        Ok(Some(()))
    })
    .await
    .with_context(failed)?;

    // An update without a resourceVersion (the object as first sent, new address).
    ep_api
        .replace(name, &PostParams::default(), &endpoints("10.2.3.4")?)
        .await
        .context("Unexpected error updating Endpoints")?;
    poll(
        two,
        twelve,
        true,
        "the mirrored EndpointSlice updated",
        || async {
            let items = slices_of(&slices, name).await?;
            let ok = items.len() == 1 && {
                let s = &items[0];
                let ports = s.ports.clone().unwrap_or_default();
                ports.len() == 1
                    && ports[0].port == Some(80)
                    && s.endpoints.len() == 1
                    && s.endpoints[0].addresses == ["10.2.3.4"]
            };
            Ok(ok.then_some(()))
        },
    )
    .await
    .with_context(failed)?;

    ep_api
        .delete(name, &DeleteParams::default())
        .await
        .context("Unexpected error deleting Endpoints")?;
    poll(two, twelve, true, "no mirrored EndpointSlices", || async {
        Ok(slices_of(&slices, name).await?.is_empty().then_some(()))
    })
    .await
    .with_context(failed)?;
    Ok(())
}

/// upstream's `watchtools.Until` on the labelled Endpoints from `rv`: the first event of
/// `kind` within 30 s.
async fn until(api: &Api<Endpoints>, rv: &str, kind: Kind) -> anyhow::Result<Endpoints> {
    let mut w = Watch::open(
        api,
        &WatchParams::default().labels("test-endpoint-static=true"),
        rv,
    )
    .await
    .context("watching Endpoints")?;
    loop {
        match w.next(Duration::from_secs(30)).await? {
            None => bail!("failed to see {kind:?} event"),
            Some((k, ep)) if k == kind => {
                let label = ep
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("test-endpoint-static"));
                if label.map(String::as_str) == Some("true") {
                    return Ok(ep);
                }
            }
            Some(_) => {}
        }
    }
}

/// Create, watch, list, update, patch, delete by collection, as upstream's lifecycle.
async fn endpoint_lifecycle(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let all: Api<Endpoints> = Api::all(ctx.client.clone());
    let name = "testservice";
    let lp = ListParams::default().labels("test-endpoint-static=true");
    let list = all.list(&lp).await.context("failed to list Endpoints")?;
    let created = api
        .create(
            &PostParams::default(),
            &from_json(
                json!({"metadata": {"name": name, "labels": {"test-endpoint-static": "true"}},
                "subsets": [{"addresses": [{"ip": "10.0.0.24"}],
                             "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}]}),
            )?,
        )
        .await
        .context("failed to create Endpoint")?;
    super::valid_resource_version(created.metadata.resource_version.as_deref())?;
    until(
        &api,
        list.metadata.resource_version.as_deref().unwrap_or(""),
        Kind::Added,
    )
    .await?;

    let list = all.list(&lp).await.context("failed to list Endpoints")?;
    let mut found = list
        .items
        .iter()
        .find(|e| {
            e.metadata.name.as_deref() == Some(name)
                && e.metadata.namespace.as_deref() == Some(ctx.ns.as_str())
        })
        .cloned()
        .context("unable to find Endpoint Service in list of Endpoints")?;
    found
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert("test-service".into(), "updated".into());
    api.replace(name, &PostParams::default(), &found)
        .await
        .context("failed to update Endpoint with new label")?;
    until(
        &api,
        list.metadata.resource_version.as_deref().unwrap_or(""),
        Kind::Modified,
    )
    .await?;
    let endpoints = api.get(name).await.context("failed to fetch Endpoint")?;
    let label = |e: &Endpoints| {
        e.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("test-service"))
            .cloned()
    };
    ensure!(
        label(&endpoints).as_deref() == Some("updated"),
        "failed to update Endpoint {name} in namespace {} label not updated: {:?}",
        ctx.ns,
        endpoints.metadata.labels
    );

    let patched = api
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"test-service": "patched"}},
                "subsets": [{"addresses": [{"ip": "10.0.0.25"}],
                             "ports": [{"name": "http-test", "port": 8080}]}]})),
        )
        .await
        .context("failed to patch Endpoint")?;
    super::newer_resource_version(
        created.metadata.resource_version.as_deref(),
        patched.metadata.resource_version.as_deref(),
    )?;
    until(
        &api,
        endpoints.metadata.resource_version.as_deref().unwrap_or(""),
        Kind::Modified,
    )
    .await?;
    let endpoints = api.get(name).await.context("failed to fetch Endpoint")?;
    ensure!(
        label(&endpoints).as_deref() == Some("patched"),
        "failed to patch Endpoint with Label: {:?}",
        endpoints.metadata.labels
    );
    let subset = endpoints
        .subsets
        .as_ref()
        .and_then(|s| s.first())
        .context("failed to patch Endpoint: no subsets")?;
    let address = subset
        .addresses
        .as_ref()
        .and_then(|a| a.first())
        .context("no address")?;
    let port = subset
        .ports
        .as_ref()
        .and_then(|p| p.first())
        .context("no port")?;
    ensure!(
        address.ip == "10.0.0.25",
        "failed to patch Endpoint: ip {:?}",
        address.ip
    );
    ensure!(
        port.name.as_deref() == Some("http-test"),
        "failed to patch Endpoint: port name {:?}",
        port.name
    );
    ensure!(
        port.port == 8080,
        "failed to patch Endpoint: port {}",
        port.port
    );

    api.delete_collection(&DeleteParams::default(), &lp)
        .await
        .context("failed to delete Endpoint by Collection")?;
    until(
        &api,
        endpoints.metadata.resource_version.as_deref().unwrap_or(""),
        Kind::Deleted,
    )
    .await?;
    ensure!(
        api.get(name).await.is_err(),
        "should not be able to fetch Endpoint"
    );
    Ok(())
}
