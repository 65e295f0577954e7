//! Services: upstream's test/e2e/network/service.go (the API-level ones so far; those
//! needing an exec'd client pod come later).

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchParams};
use serde_json::json;

use super::test;
use super::watchers::{Kind, Watch};
use crate::{Ctx, Test};

const AREA: &str = "Services";

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Kubernetes Service",
            "[sig-network] Services should provide secure master service [Conformance]",
            secure_master_service
        ),
        test!(
            AREA,
            "Find Kubernetes Service in default Namespace",
            "[sig-network] Services should find a service from listing all namespaces [Conformance]",
            find_in_all_namespaces
        ),
        test!(
            AREA,
            "Service, deletes a collection of services",
            "[sig-network] Services should delete a collection of services [Conformance]",
            delete_collection
        ),
        test!(
            AREA,
            "Service, complete ServiceStatus lifecycle",
            "[sig-network] Services should complete a service status lifecycle [Conformance]",
            status_lifecycle
        ),
        test!(
            AREA,
            "Service, endpoints",
            "[sig-network] Services should serve a basic endpoint from pods [Conformance]",
            basic_endpoint
        ),
        test!(
            AREA,
            "Service, endpoints with multiple ports",
            "[sig-network] Services should serve multiport endpoints from pods [Conformance]",
            multiport_endpoints
        ),
    ]
}

/// `default/kubernetes` exists.
async fn secure_master_service(ctx: Ctx) -> anyhow::Result<()> {
    Api::<Service>::namespaced(ctx.client, "default")
        .get("kubernetes")
        .await
        .context("getting the default/kubernetes Service")?;
    Ok(())
}

/// Listing the Services of all namespaces finds `default/kubernetes`.
async fn find_in_all_namespaces(ctx: Ctx) -> anyhow::Result<()> {
    let list = Api::<Service>::all(ctx.client)
        .list(&ListParams::default())
        .await
        .context("fetching services")?;
    let found = list.items.iter().any(|s| {
        s.metadata.name.as_deref() == Some("kubernetes")
            && s.metadata.namespace.as_deref() == Some("default")
    });
    ensure!(
        found,
        "could not find service 'kubernetes' in service list in all namespaces"
    );
    Ok(())
}

/// Three labelled Services deleted as a collection are gone.
async fn delete_collection(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    for prefix in ["e2e-svc-a-", "e2e-svc-b-", "e2e-svc-c-"] {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": format!("{prefix}{}", crate::random_lowercase(5)), "labels": {"e2e-test-service": "delete"}},
            "spec": {"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 80}]},
        }))?;
        api.create(&PostParams::default(), &svc)
            .await
            .context("failed to create Service")?;
    }
    let list = api
        .list(&ListParams::default())
        .await
        .context("failed to list Services")?;
    ensure!(
        list.items.len() == 3,
        "Required count of services out of sync: expected 3, got {}",
        list.items.len()
    );
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("e2e-test-service=delete"),
    )
    .await
    .context("failed to delete service collection")?;
    let list = api
        .list(&ListParams::default())
        .await
        .context("failed to list Services")?;
    ensure!(
        list.items.is_empty(),
        "Required count of services out of sync: expected 0, got {}",
        list.items.len()
    );
    Ok(())
}

/// upstream's `watchtools.Until` on the labelled Services from `rv`: the first event
/// (of `kind`, when given) whose Service `found` accepts, within a minute.
async fn until(
    api: &Api<Service>,
    rv: &str,
    kind: Option<Kind>,
    what: &str,
    found: impl Fn(&Service) -> bool,
) -> anyhow::Result<Service> {
    let mut w = Watch::open(
        api,
        &WatchParams::default().labels("test-service-static=true"),
        rv,
    )
    .await
    .context("watching Services")?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match w.next(left).await? {
            None => bail!("timed out waiting for {what}"),
            Some((k, svc)) if kind.is_none_or(|want| want == k) && found(&svc) => return Ok(svc),
            Some(_) => {}
        }
    }
}

/// Create, watch, read and patch `/status`, update its conditions, patch the Service,
/// delete it, each change seen by a watch.
async fn status_lifecycle(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let all: Api<Service> = Api::all(ctx.client.clone());
    let ns = ctx.ns.clone();
    let name = format!("test-service-{}", crate::random_lowercase(5));
    let list = all
        .list(&ListParams::default().labels("test-service-static=true"))
        .await
        .context("failed to list Services")?;
    let rv = list.metadata.resource_version.clone().unwrap_or_default();

    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"test-service-static": "true"}},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/internal-vip",
                 "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 80}]},
    }))?;
    api.create(&PostParams::default(), &svc)
        .await
        .context("failed to create Service")?;
    let ours = |s: &Service| {
        s.metadata.name.as_deref() == Some(name.as_str())
            && s.metadata.namespace.as_deref() == Some(ns.as_str())
    };
    let label = |s: &Service, k: &str| s.metadata.labels.as_ref().and_then(|l| l.get(k)).cloned();
    let annotation = |s: &Service, k: &str| {
        s.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(k))
            .cloned()
    };
    until(&api, &rv, None, "the Service to be added", |s| {
        ours(s) && label(s, "test-service-static").as_deref() == Some("true")
    })
    .await
    .with_context(|| format!("Failed to locate Service {name} in namespace {ns}"))?;

    api.get_status(&name).await.with_context(|| {
        format!("Failed to fetch ServiceStatus of Service {name} in namespace {ns}")
    })?;
    let lb_status = json!({"ingress": [{"ip": "203.0.113.1"}]});
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {"patchedstatus": "true"}},
                             "status": {"loadBalancer": lb_status}}),
        ),
    )
    .await
    .context("Could not patch service status")?;
    until(&api, &rv, None, "the Service status to be patched", |s| {
        ours(s) && annotation(s, "patchedstatus").as_deref() == Some("true")
    })
    .await
    .with_context(|| format!("failed to locate Service {name} in namespace {ns}"))?;

    // retry.RetryOnConflict(retry.DefaultRetry, ...)
    let mut updated = None;
    for _ in 0..5 {
        let mut cur = api
            .get(&name)
            .await
            .with_context(|| format!("Unable to retrieve service {name}"))?;
        let status = cur.status.get_or_insert_with(Default::default);
        status
            .conditions
            .get_or_insert_with(Default::default)
            .push(Condition {
                type_: "StatusUpdate".into(),
                status: "True".into(),
                reason: "E2E".into(),
                message: "Set from e2e test".into(),
                // Go sends its zero time (null); k8s-openapi has no such value.
                last_transition_time: Time(k8s_openapi::jiff::Timestamp::now()),
                observed_generation: None,
            });
        match api
            .replace_status(&name, &PostParams::default(), &cur)
            .await
        {
            Ok(s) => {
                updated = Some(s);
                break;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            Err(e) => return Err(e).context("Failed to UpdateStatus"),
        }
    }
    updated.context("Failed to UpdateStatus: conflicts")?;
    until(&api, &rv, None, "the Service status to be updated", |s| {
        if !(ours(s) && annotation(s, "patchedstatus").as_deref() == Some("true")) {
            return false;
        }
        // As upstream: the first condition decides.
        s.status
            .as_ref()
            .and_then(|st| st.conditions.as_ref())
            .and_then(|c| c.first())
            .is_some_and(|c| {
                c.type_ == "StatusUpdate" && c.reason == "E2E" && c.message == "Set from e2e test"
            })
    })
    .await
    .with_context(|| format!("failed to locate Service {name} in namespace {ns}"))?;

    // json.Marshal(v1.Service{ObjectMeta: {Labels: {"test-service": "patched"}}})
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Strategic(json!({"metadata": {"labels": {"test-service": "patched"},
                                              "creationTimestamp": null},
                                 "spec": {}, "status": {"loadBalancer": {}}})),
    )
    .await
    .context("failed to patch service")?;
    until(&api, &rv, None, "the Service to be patched", |s| {
        ours(s) && label(s, "test-service").as_deref() == Some("patched")
    })
    .await
    .with_context(|| format!("failed to locate Service {name} in namespace {ns}"))?;

    api.delete(&name, &DeleteParams::default())
        .await
        .context("failed to delete the Service")?;
    until(
        &api,
        &rv,
        Some(Kind::Deleted),
        "the Service to be deleted",
        |s| ours(s) && label(s, "test-service-static").as_deref() == Some("true"),
    )
    .await
    .with_context(|| format!("failed to delete Service {name} in namespace {ns}"))?;
    Ok(())
}

/// Expected container ports by pod name (upstream's `portsByPodName`).
type PortsByPodName<'a> = &'a [(&'a str, &'a [i32])];

/// upstream's `validateEndpointsPortsOrFail`: within 3 minutes, the Service's Endpoints
/// (ready addresses) and its EndpointSlices (all endpoints) map exactly the expected pods
/// (by uid) to exactly their expected ports.
async fn validate_endpoints_ports(
    ctx: &Ctx,
    service: &str,
    expected: PortsByPodName<'_>,
) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::{Endpoints, Pod};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use std::collections::BTreeMap;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let mut want: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (name, ports) in expected {
        let pod = pods
            .get(name)
            .await
            .with_context(|| format!("failed to translate pod name {name} to UID"))?;
        let mut ports = ports.to_vec();
        ports.sort();
        want.insert(pod.metadata.uid.unwrap_or_default(), ports);
    }
    let normalize = |mut m: BTreeMap<String, Vec<i32>>| {
        m.values_mut().for_each(|v| v.sort());
        m
    };
    let ep_api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let es_api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let mut last = String::new();
    loop {
        let mut from_endpoints: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        if let Ok(ep) = ep_api.get(service).await {
            for ss in ep.subsets.iter().flatten() {
                for port in ss.ports.iter().flatten() {
                    for a in ss.addresses.iter().flatten() {
                        let uid = a
                            .target_ref
                            .as_ref()
                            .and_then(|r| r.uid.clone())
                            .unwrap_or_default();
                        from_endpoints.entry(uid).or_default().push(port.port);
                    }
                }
            }
            let from_endpoints = normalize(from_endpoints);
            if from_endpoints == want {
                let slices = es_api
                    .list(
                        &ListParams::default()
                            .labels(&format!("kubernetes.io/service-name={service}")),
                    )
                    .await;
                if let Ok(slices) = slices {
                    let mut from_slices: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                    for s in &slices.items {
                        for port in s.ports.iter().flatten().filter_map(|p| p.port) {
                            for e in &s.endpoints {
                                let uid = e
                                    .target_ref
                                    .as_ref()
                                    .and_then(|r| r.uid.clone())
                                    .unwrap_or_default();
                                from_slices.entry(uid).or_default().push(port);
                            }
                        }
                    }
                    let from_slices = normalize(from_slices);
                    if from_slices == want {
                        return Ok(());
                    }
                    last = format!("endpoint slices {from_slices:?}");
                }
            } else {
                last = format!("endpoints {from_endpoints:?}");
            }
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "error waiting for service {service} in namespace {} to expose endpoints {expected:?} (by uid {want:?}): found {last}",
                ctx.ns
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// upstream's `createPodOrFail`: an agnhost pod with the service's labels, ports and args.
async fn create_pod(
    ctx: &Ctx,
    name: &str,
    labels: &serde_json::Value,
    ports: serde_json::Value,
    args: &[&str],
) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Pod;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "agnhost-container", "image": super::agnhost_image(),
                                 "args": args, "ports": ports}]},
    }))?;
    Api::<Pod>::namespaced(ctx.client.clone(), &ctx.ns)
        .create(&PostParams::default(), &pod)
        .await
        .with_context(|| format!("failed to create pod {name} in namespace {}", ctx.ns))?;
    Ok(())
}

async fn delete_pod(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Pod;
    Api::<Pod>::namespaced(ctx.client.clone(), &ctx.ns)
        .delete(name, &DeleteParams::default())
        .await
        .with_context(|| format!("failed to delete pod {name} in namespace {}", ctx.ns))?;
    Ok(())
}

/// upstream's `CheckServiceReachability` for a ClusterIP service: from a client pod, the
/// service answers TCP by name on its first port, then by cluster IP on every port
/// (`echo hostName | nc -w 2 HOST PORT`, each retried every 2 s for 2 minutes). Upstream
/// execs the command in a pod; here a busybox pod runs them and its exit says.
async fn check_service_reachability(ctx: &Ctx, svc: &Service) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Pod;
    let name = svc.metadata.name.clone().unwrap_or_default();
    let spec = svc.spec.clone().unwrap_or_default();
    let ip = spec.cluster_ip.clone().unwrap_or_default();
    let ports: Vec<i32> = spec.ports.iter().flatten().map(|p| p.port).collect();
    let mut targets = vec![format!("{name} {}", ports[0])];
    targets.extend(ports.iter().map(|p| format!("{ip} {p}")));
    let script = targets
        .iter()
        .map(|t| {
            format!(
                "ok=; for i in $(seq 60); do if echo hostName | nc -w 2 {t} >/dev/null; then ok=1; break; fi; sleep 2; done; \
                 if [ -z \"$ok\" ]; then echo \"{t}: not reachable\"; exit 1; fi; echo \"{t}: reachable\"; "
            )
        })
        .collect::<String>();
    let pod_name = format!("execpod-{}", crate::random_lowercase(5));
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": pod_name},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "agnhost-container", "image": super::busybox_image(),
                                 "command": ["sh", "-c", script]}]},
    }))?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    pods.create(&PostParams::default(), &pod)
        .await
        .context("creating the client pod")?;
    let done = super::e2epod::wait_for(
        &pods,
        &pod_name,
        Duration::from_secs(200),
        "Succeeded or Failed",
        |p| matches!(super::e2epod::phase(p), "Succeeded" | "Failed"),
    )
    .await;
    if let Ok(p) = &done {
        if super::e2epod::phase(p) == "Succeeded" {
            return Ok(());
        }
    }
    let logs = pods
        .logs(&pod_name, &Default::default())
        .await
        .unwrap_or_default();
    let why = match done {
        Ok(p) => super::e2epod::describe(&p),
        Err(e) => format!("{e:#}"),
    };
    bail!("service {name} is not reachable from a pod ({why}): {logs}");
}

/// Endpoints follow pods that come and go behind a service; the service forwards to them.
async fn basic_endpoint(ctx: Ctx) -> anyhow::Result<()> {
    let name = "endpoint-test2";
    let labels = json!({"testid": format!("{name}-{}", super::uuid())});
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    // jig.CreateTCPServiceWithPort(nil, 80)
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"selector": labels, "ports": [{"protocol": "TCP", "port": 80}]},
    }))?;
    let svc = api
        .create(&PostParams::default(), &svc)
        .await
        .with_context(|| format!("creating service {name} in namespace {}", ctx.ns))?;
    validate_endpoints_ports(&ctx, name, &[]).await?;
    let ports = json!([{"containerPort": 80}]);
    let args = ["netexec", "--http-port", "80"];
    create_pod(&ctx, "pod1", &labels, ports.clone(), &args).await?;
    validate_endpoints_ports(&ctx, name, &[("pod1", &[80])]).await?;
    check_service_reachability(&ctx, &svc)
        .await
        .context("Checking if the Service forwards traffic to pod1")?;
    create_pod(&ctx, "pod2", &labels, ports, &args).await?;
    validate_endpoints_ports(&ctx, name, &[("pod1", &[80]), ("pod2", &[80])]).await?;
    check_service_reachability(&ctx, &svc)
        .await
        .context("Checking if the Service forwards traffic to pod1 and pod2")?;
    delete_pod(&ctx, "pod1").await?;
    validate_endpoints_ports(&ctx, name, &[("pod2", &[80])]).await?;
    check_service_reachability(&ctx, &svc)
        .await
        .context("Checking if the Service forwards traffic to pod2")?;
    delete_pod(&ctx, "pod2").await?;
    validate_endpoints_ports(&ctx, name, &[]).await?;
    Ok(())
}

/// Each pod resolves only the named port it has; endpoints follow them per port.
async fn multiport_endpoints(ctx: Ctx) -> anyhow::Result<()> {
    let name = "multi-endpoint-test";
    let labels = json!({"testid": format!("{name}-{}", super::uuid())});
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"selector": labels, "ports": [
            {"name": "portname1", "port": 80, "targetPort": "svc1", "protocol": "TCP"},
            {"name": "portname2", "port": 81, "targetPort": "svc2", "protocol": "TCP"}]},
    }))?;
    let svc = api
        .create(&PostParams::default(), &svc)
        .await
        .with_context(|| format!("creating service {name} in namespace {}", ctx.ns))?;
    let (port1, port2) = (100, 101);
    validate_endpoints_ports(&ctx, name, &[]).await?;
    create_pod(
        &ctx,
        "pod1",
        &labels,
        json!([{"name": "svc1", "containerPort": port1}]),
        &["netexec", "--http-port", "100"],
    )
    .await?;
    validate_endpoints_ports(&ctx, name, &[("pod1", &[port1])]).await?;
    create_pod(
        &ctx,
        "pod2",
        &labels,
        json!([{"name": "svc2", "containerPort": port2}]),
        &["netexec", "--http-port", "101"],
    )
    .await?;
    validate_endpoints_ports(&ctx, name, &[("pod1", &[port1]), ("pod2", &[port2])]).await?;
    check_service_reachability(&ctx, &svc)
        .await
        .context("Checking if the Service forwards traffic to pods")?;
    delete_pod(&ctx, "pod1").await?;
    validate_endpoints_ports(&ctx, name, &[("pod2", &[port2])]).await?;
    delete_pod(&ctx, "pod2").await?;
    validate_endpoints_ports(&ctx, name, &[]).await?;
    Ok(())
}
