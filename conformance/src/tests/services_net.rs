//! Services, the tests with client pods: upstream's test/e2e/network/service.go (type
//! changes, NodePort, session affinity, same port over TCP and UDP) and
//! service_latency.go.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use super::svcjig::{self, Jig};
use super::test;
use super::{e2enode, e2epod};
use crate::{Ctx, Test};

const AREA: &str = "Services";

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Service endpoint latency, thresholds",
            "[sig-network] Service endpoints latency should not be very high [Conformance]",
            endpoints_latency,
            timeout = Duration::from_secs(900)
        ),
        test!(
            AREA,
            "Service, change type, ClusterIP to ExternalName",
            "[sig-network] Services should be able to change the type from ClusterIP to ExternalName [Conformance]",
            cluster_ip_to_external_name,
            timeout = Duration::from_secs(900)
        ),
        test!(
            AREA,
            "Service, change type, ExternalName to ClusterIP",
            "[sig-network] Services should be able to change the type from ExternalName to ClusterIP [Conformance]",
            external_name_to_cluster_ip,
            timeout = Duration::from_secs(900)
        ),
        test!(
            AREA,
            "Service, change type, ExternalName to NodePort",
            "[sig-network] Services should be able to change the type from ExternalName to NodePort [Conformance]",
            external_name_to_node_port,
            timeout = Duration::from_secs(900)
        ),
        test!(
            AREA,
            "Service, change type, NodePort to ExternalName",
            "[sig-network] Services should be able to change the type from NodePort to ExternalName [Conformance]",
            node_port_to_external_name,
            timeout = Duration::from_secs(900)
        ),
        test!(
            AREA,
            "Service, NodePort Service",
            "[sig-network] Services should be able to create a functioning NodePort service [Conformance]",
            functioning_node_port,
            timeout = Duration::from_secs(900)
        ),
        test!(
            AREA,
            "Service, NodePort type, session affinity to None",
            "[sig-network] Services should be able to switch session affinity for NodePort service [LinuxOnly] [Conformance]",
            switch_affinity_node_port,
            timeout = Duration::from_secs(900)
        ),
        test!(
            AREA,
            "Service, ClusterIP type, session affinity to None",
            "[sig-network] Services should be able to switch session affinity for service with type clusterIP [LinuxOnly] [Conformance]",
            switch_affinity_cluster_ip,
            timeout = Duration::from_secs(900)
        ),
        test!(
            AREA,
            "Service, NodePort type, session affinity to ClientIP",
            "[sig-network] Services should have session affinity work for NodePort service [LinuxOnly] [Conformance]",
            affinity_node_port,
            timeout = Duration::from_secs(900)
        ),
        test!(
            AREA,
            "Service, ClusterIP type, session affinity to ClientIP",
            "[sig-network] Services should have session affinity work for service with type clusterIP [LinuxOnly] [Conformance]",
            affinity_cluster_ip,
            timeout = Duration::from_secs(900)
        ),
        test!(
            AREA,
            "Service, should serve endpoints on same port and different protocols.",
            "[sig-network] Services should serve endpoints on same port and different protocols [Conformance]",
            same_port_different_protocols,
            timeout = Duration::from_secs(900)
        ),
    ]
}

// --- type changes and NodePort -------------------------------------------------------------

/// `getServeHostnameService(name)`: port 80 → 9376/TCP, selector `name: <name>`.
fn serve_hostname_service(name: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": name},
        "spec": {"ports": [{"port": 80, "targetPort": 9376, "protocol": "TCP"}],
                 "selector": {"name": name}},
    })
}

/// `StartServeHostnameService`: the service, and an RC of `replicas` pods (`/agnhost
/// serve-hostname`) behind it. The pods' names (sorted) and the cluster IP.
async fn start_serve_hostname_service(
    ctx: &Ctx,
    svc: serde_json::Value,
    replicas: i32,
) -> anyhow::Result<(Vec<String>, String)> {
    let svc: Service = serde_json::from_value(svc)?;
    let name = svc.metadata.name.clone().unwrap_or_default();
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    api.create(&PostParams::default(), &svc)
        .await
        .with_context(|| format!("creating service {name}"))?;
    let pods = svcjig::run_rc(
        ctx,
        &name,
        replicas,
        json!({}),
        json!({"name": name, "image": super::agnhost_image(),
               "command": ["/agnhost", "serve-hostname"]}),
    )
    .await?;
    ensure!(
        pods.len() == replicas as usize,
        "incorrect number of running pods: {}",
        pods.len()
    );
    let svc = api.get(&name).await?;
    let ip = svc
        .spec
        .and_then(|s| s.cluster_ip)
        .filter(|ip| !ip.is_empty())
        .with_context(|| format!("service IP is blank for {name}"))?;
    Ok((pods, ip))
}

/// `createAndGetExternalServiceFQDN`.
async fn create_and_get_external_service_fqdn(ctx: &Ctx, name: &str) -> anyhow::Result<String> {
    start_serve_hostname_service(ctx, serve_hostname_service(name), 2)
        .await
        .with_context(|| format!("Expected Service {name} to be running"))?;
    Ok(format!(
        "{name}.{}.svc.{}",
        ctx.ns,
        svcjig::CLUSTER_DNS_DOMAIN
    ))
}

fn http_port_9376(v: &mut serde_json::Value) {
    v["spec"]["ports"] =
        json!([{"port": 80, "name": "http", "protocol": "TCP", "targetPort": 9376}]);
}

fn set_type_and_port(s: &mut Service, t: &str) {
    let spec = s.spec.get_or_insert_with(Default::default);
    spec.type_ = Some(t.into());
    spec.external_name = None;
    spec.ports = Some(vec![serde_json::from_value(
        json!({"port": 80, "name": "http", "protocol": "TCP", "targetPort": 9376}),
    )
    .expect("a service port")]);
}

async fn external_name_to(ctx: Ctx, new_type: &str) -> anyhow::Result<()> {
    let jig = Jig::new(&ctx, "externalname-service");
    jig.create_external_name_service().await?;
    let svc = jig
        .update_service(|s| set_type_and_port(s, new_type))
        .await?;
    jig.create_service_pods(&ctx, 2).await?;
    let exec = svcjig::create_exec_pod(&ctx, "execpod", |_| {}).await?;
    jig.check_service_reachability(&ctx, &svc, &exec).await
}

/// ExternalName → ClusterIP: a cluster IP, reachable by name and IP.
async fn external_name_to_cluster_ip(ctx: Ctx) -> anyhow::Result<()> {
    external_name_to(ctx, "ClusterIP").await
}

/// ExternalName → NodePort: also reachable on the nodes' node port.
async fn external_name_to_node_port(ctx: Ctx) -> anyhow::Result<()> {
    external_name_to(ctx, "NodePort").await
}

async fn to_external_name(ctx: Ctx, name: &str, node_port: bool) -> anyhow::Result<()> {
    let jig = Jig::new(&ctx, name);
    jig.create_tcp_service(|v| {
        if node_port {
            v["spec"]["type"] = json!("NodePort");
        }
    })
    .await?;
    let fqdn = create_and_get_external_service_fqdn(&ctx, "externalsvc").await?;
    let svc = jig
        .update_service(|s| {
            let spec = s.spec.get_or_insert_with(Default::default);
            spec.type_ = Some("ExternalName".into());
            spec.external_name = Some(fqdn.clone());
        })
        .await?;
    if svc
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty())
    {
        bail!("Spec.ClusterIP was not cleared");
    }
    let exec = svcjig::create_exec_pod(&ctx, "execpod", |_| {}).await?;
    jig.check_service_reachability(&ctx, &svc, &exec).await
}

/// ClusterIP → ExternalName (the FQDN of another service): no cluster IP; the name
/// resolves.
async fn cluster_ip_to_external_name(ctx: Ctx) -> anyhow::Result<()> {
    to_external_name(ctx, "clusterip-service", false).await
}

/// NodePort → ExternalName: cluster IP and node port released; the name resolves.
async fn node_port_to_external_name(ctx: Ctx) -> anyhow::Result<()> {
    to_external_name(ctx, "nodeport-service", true).await
}

/// A NodePort service of two pods is reachable by name, cluster IP and node ports.
async fn functioning_node_port(ctx: Ctx) -> anyhow::Result<()> {
    let jig = Jig::new(&ctx, "nodeport-test");
    let svc = jig
        .create_tcp_service(|v| {
            v["spec"]["type"] = json!("NodePort");
            http_port_9376(v);
        })
        .await?;
    jig.create_service_pods(&ctx, 2).await?;
    let exec = svcjig::create_exec_pod(&ctx, "execpod", |_| {}).await?;
    jig.check_service_reachability(&ctx, &svc, &exec).await
}

// --- session affinity ------------------------------------------------------------------------

/// Upstream's `AffinityTimeout`.
const AFFINITY_TIMEOUT: Duration = Duration::from_secs(2 * 60);
/// Upstream's `AffinityConfirmCount`.
const AFFINITY_CONFIRM_COUNT: usize = 15;

/// Upstream's `affinityTracker`: the hosts that answered, in order.
#[derive(Default, Debug)]
pub struct AffinityTracker {
    pub host_trace: Vec<String>,
}

impl AffinityTracker {
    /// `checkHostTrace(count)`: whether `count` answers were seen, and whether the last
    /// `count` (or all, when fewer) came from one host.
    pub fn check_host_trace(&self, count: usize) -> (bool, bool) {
        let fulfilled = self.host_trace.len() >= count;
        let Some(host) = self.host_trace.last() else {
            return (fulfilled, true);
        };
        let last = &self.host_trace[self.host_trace.len().saturating_sub(count)..];
        (fulfilled, last.iter().all(|h| h == host))
    }
}

/// Upstream's `checkAffinity` from an exec pod: asks `ip:port` 16 times per round
/// (`curl`), every 30 s for 2 minutes, until the last 15 answers show what is expected.
async fn check_affinity(
    client: &kube::Client,
    exec: &Pod,
    ip: &str,
    port: i32,
    should_hold: bool,
) -> anyhow::Result<()> {
    let interval = Duration::from_secs(2 * AFFINITY_CONFIRM_COUNT as u64);
    let curl = format!("curl -q -s --connect-timeout 2 http://{ip}:{port}/");
    let cmd = format!("for i in $(seq 0 {AFFINITY_CONFIRM_COUNT}); do echo; {curl} ; done");
    let mut tracker = AffinityTracker::default();
    let deadline = tokio::time::Instant::now() + AFFINITY_TIMEOUT;
    loop {
        match svcjig::run_host_cmd(client, exec, &cmd).await {
            Ok(out) => {
                for h in out.split('\n') {
                    let h = h.trim();
                    if !h.is_empty() {
                        tracker.host_trace.push(h.to_string());
                    }
                }
            }
            Err(e) => {
                eprintln!("Failed to get response from {ip}:{port}. Retry until timeout: {e:#}")
            }
        }
        let (fulfilled, holds) = tracker.check_host_trace(AFFINITY_CONFIRM_COUNT);
        if fulfilled && holds == should_hold {
            return Ok(());
        }
        if tokio::time::Instant::now() + interval > deadline {
            let why = if !fulfilled {
                "Connection timed out or not enough responses."
            } else if should_hold {
                "Affinity should hold but didn't."
            } else {
                "Affinity shouldn't hold but did."
            };
            bail!("{why} {:?}", tracker.host_trace);
        }
        tokio::time::sleep(interval).await;
    }
}

/// Upstream's `execAffinityTestForNonLBServiceWithOptionalTransition`.
async fn affinity_test(
    ctx: Ctx,
    name: &str,
    svc_type: &str,
    transition: bool,
) -> anyhow::Result<()> {
    let mut svc = serve_hostname_service(name);
    svc["spec"]["type"] = json!(svc_type);
    svc["spec"]["sessionAffinity"] = json!("ClientIP");
    start_serve_hostname_service(&ctx, svc, 3)
        .await
        .with_context(|| {
            format!(
                "failed to create replication controller with service in the namespace: {}",
                ctx.ns
            )
        })?;
    let jig = Jig::new(&ctx, name);
    let svc = jig
        .services()
        .get(name)
        .await
        .with_context(|| format!("failed to fetch service: {name} in namespace: {}", ctx.ns))?;
    let spec = svc.spec.clone().unwrap_or_default();
    let (ip, port) = if svc_type == "NodePort" {
        let nodes = e2enode::bounded_ready_schedulable_nodes(&ctx, usize::MAX).await?;
        let v6 = spec.cluster_ip.as_deref().unwrap_or_default().contains(':');
        let ip = svcjig::collect_addresses(&nodes, "InternalIP")
            .into_iter()
            .find(|a| a.contains(':') == v6)
            .context("failed to get Node internal IP")?;
        let np = spec
            .ports
            .iter()
            .flatten()
            .next()
            .and_then(|p| p.node_port)
            .unwrap_or(0);
        (ip, np)
    } else {
        (spec.cluster_ip.clone().unwrap_or_default(), 80)
    };
    let exec = svcjig::create_exec_pod(&ctx, "execpod-affinity", |_| {}).await?;
    // The check's Service must be the fetched one (with its type), for the jig's sanity
    // check.
    jig_check(&ctx, name, &svc, &exec).await?;
    let client = &ctx.client;
    if !transition {
        return check_affinity(client, &exec, &ip, port, true)
            .await
            .with_context(|| format!("Failed to check affinity for service {}/{name}", ctx.ns));
    }
    jig.update_service(|s| {
        s.spec.get_or_insert_with(Default::default).session_affinity = Some("None".into())
    })
    .await?;
    check_affinity(client, &exec, &ip, port, false)
        .await
        .with_context(|| {
            format!(
                "Failed to check affinity for service {}/{name} without session affinity",
                ctx.ns
            )
        })?;
    jig.update_service(|s| {
        s.spec.get_or_insert_with(Default::default).session_affinity = Some("ClientIP".into())
    })
    .await?;
    check_affinity(client, &exec, &ip, port, true)
        .await
        .with_context(|| {
            format!(
                "Failed to check affinity for service {}/{name} with session affinity",
                ctx.ns
            )
        })
}

/// `jig.CheckServiceReachability` for a service the jig did not create (its selector is
/// `name: <name>`): the jig's name is the service's.
async fn jig_check(ctx: &Ctx, name: &str, svc: &Service, exec: &Pod) -> anyhow::Result<()> {
    Jig::new(ctx, name)
        .check_service_reachability(ctx, svc, exec)
        .await
}

async fn affinity_cluster_ip(ctx: Ctx) -> anyhow::Result<()> {
    affinity_test(ctx, "affinity-clusterip", "ClusterIP", false).await
}

async fn switch_affinity_cluster_ip(ctx: Ctx) -> anyhow::Result<()> {
    affinity_test(ctx, "affinity-clusterip-transition", "ClusterIP", true).await
}

async fn affinity_node_port(ctx: Ctx) -> anyhow::Result<()> {
    affinity_test(ctx, "affinity-nodeport", "NodePort", false).await
}

async fn switch_affinity_node_port(ctx: Ctx) -> anyhow::Result<()> {
    affinity_test(ctx, "affinity-nodeport-transition", "NodePort", true).await
}

// --- same port, two protocols ----------------------------------------------------------------

/// upstream's `validateEndpointsPortsWithProtocolsOrFail`: within 3 minutes the Service's
/// Endpoints and EndpointSlices map exactly the pods to exactly their (port, protocol)s.
async fn validate_endpoints_ports_with_protocols(
    ctx: &Ctx,
    service: &str,
    expected: &[(&str, &[(i32, &str)])],
) -> anyhow::Result<()> {
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    type Ports = HashMap<String, BTreeSet<(i32, String)>>;
    let pods = e2epod::api(ctx);
    let mut want: Ports = HashMap::new();
    for (name, ports) in expected {
        let uid = pods.get(name).await?.metadata.uid.unwrap_or_default();
        want.insert(
            uid,
            ports.iter().map(|(p, pr)| (*p, pr.to_string())).collect(),
        );
    }
    let ep_api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let es_api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
    e2epod::eventually(
        Duration::from_secs(180),
        Duration::from_secs(1),
        &format!("service {service} to expose endpoints {expected:?}"),
        || async {
            let ep = ep_api.get(service).await.map_err(|e| e.to_string())?;
            let mut got: Ports = HashMap::new();
            for ss in ep.subsets.iter().flatten() {
                for a in ss.addresses.iter().flatten() {
                    let uid = a
                        .target_ref
                        .as_ref()
                        .and_then(|r| r.uid.clone())
                        .unwrap_or_default();
                    for p in ss.ports.iter().flatten() {
                        got.entry(uid.clone())
                            .or_default()
                            .insert((p.port, p.protocol.clone().unwrap_or_else(|| "TCP".into())));
                    }
                }
            }
            if got != want {
                return Err(format!("endpoints {got:?}"));
            }
            let slices = es_api.list(&lp).await.map_err(|e| e.to_string())?;
            let mut got: Ports = HashMap::new();
            for s in &slices.items {
                for e in &s.endpoints {
                    let uid = e
                        .target_ref
                        .as_ref()
                        .and_then(|r| r.uid.clone())
                        .unwrap_or_default();
                    for p in s.ports.iter().flatten() {
                        got.entry(uid.clone()).or_default().insert((
                            p.port.unwrap_or(0),
                            p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        ));
                    }
                }
            }
            if got != want {
                return Err(format!("endpoint slices {got:?}"));
            }
            Ok(())
        },
    )
    .await
}

/// One service with port 80 over TCP and UDP to one pod serving both; then TCP only,
/// then UDP only, the other protocol stopping.
async fn same_port_different_protocols(ctx: Ctx) -> anyhow::Result<()> {
    let name = "multiprotocol-test";
    let labels = json!({"app": "multiport"});
    let tcp = json!({"name": "tcp-port", "port": 80, "targetPort": 80, "protocol": "TCP"});
    let udp = json!({"name": "udp-port", "port": 80, "targetPort": 80, "protocol": "UDP"});
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"type": "ClusterIP", "selector": labels, "ports": [tcp, udp]},
    }))?;
    let svc = api
        .create(&PostParams::default(), &svc)
        .await
        .context("failed to create Service")?;
    let ip = svc
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .unwrap_or_default();
    // createPodOrFail
    let pod = e2epod::pod(json!({
        "metadata": {"name": "pod1", "labels": labels},
        "spec": {"containers": [{"name": "agnhost-container", "image": super::agnhost_image(),
            "args": ["netexec", "--http-port", "80", "--udp-port", "80"],
            "env": [{"name": "FOO", "value": " "}],
            "ports": [{"name": "tcp-port", "containerPort": 80, "protocol": "TCP"},
                      {"name": "udp-port", "containerPort": 80, "protocol": "UDP"}]}],
                 "terminationGracePeriodSeconds": 0},
    }))?;
    e2epod::create_sync(&e2epod::api(&ctx), &pod).await?;
    validate_endpoints_ports_with_protocols(&ctx, name, &[("pod1", &[(80, "TCP"), (80, "UDP")])])
        .await?;

    let exec = svcjig::create_exec_pod(&ctx, "execpod", |_| {}).await?;
    let c = &ctx.client;
    let reach = |proto: &'static str, timeout: Duration| {
        let (ip, exec) = (ip.clone(), exec.clone());
        async move { svcjig::test_endpoint_reachability(c, &ip, 80, proto, &exec, timeout).await }
    };
    reach("TCP", Duration::from_secs(30))
        .await
        .context("Failed to connect to Service TCP port")?;
    reach("UDP", Duration::from_secs(30))
        .await
        .context("Failed to connect to Service UDP port")?;

    for (keep, gone, keep_proto, gone_proto) in
        [(&tcp, "UDP", "TCP", "UDP"), (&udp, "TCP", "UDP", "TCP")]
    {
        let mut s = api.get(name).await.context("failed to get Service")?;
        s.spec.get_or_insert_with(Default::default).ports =
            Some(vec![serde_json::from_value(keep.clone())?]);
        api.replace(name, &PostParams::default(), &s)
            .await
            .context("failed to update Service")?;
        reach(keep_proto, Duration::from_secs(30))
            .await
            .with_context(|| format!("Failed to connect to Service {keep_proto} port"))?;
        // Eventually (30 s, every 5 s) a 6 s reachability check fails.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if reach(gone_proto, Duration::from_secs(6)).await.is_err() {
                break;
            }
            if tokio::time::Instant::now() + Duration::from_secs(5) > deadline {
                bail!("the Service still forwards {gone} traffic 30s after the port was removed");
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }
    Ok(())
}

// --- endpoint latency ------------------------------------------------------------------------

/// What the single Endpoints watcher has seen: the first Endpoints with an address per
/// name, and who waits for which.
#[derive(Default)]
struct Seen {
    names: HashMap<String, ()>,
}

/// Upstream's `runServiceLatencies` and the test's percentiles: 200 Services (15 at a
/// time) selecting a running pause pod; from each create to its Endpoints having an
/// address, seen by one watch. Median under 20 s, 99th percentile under 50 s, at least
/// 100 samples, at most 5% errors.
async fn endpoints_latency(ctx: Ctx) -> anyhow::Result<()> {
    const LIMIT_MEDIAN: Duration = Duration::from_secs(20);
    const LIMIT_TAIL: Duration = Duration::from_secs(50);
    const TOTAL_TRIALS: usize = 200;
    const PARALLEL_TRIALS: usize = 15;
    const MIN_SAMPLE_SIZE: usize = 100;
    const ACCEPTABLE_FAILURE_RATIO: f32 = 0.05;

    let name = "svc-latency-rc";
    svcjig::run_rc(
        &ctx,
        name,
        1,
        json!({}),
        json!({"name": name, "image": super::pause_image()}),
    )
    .await?;

    // One watcher (as kube-proxy consumes endpoints), synced before anything is timed.
    let seen = Arc::new((Mutex::new(Seen::default()), tokio::sync::Notify::new()));
    let eps: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let (synced_tx, synced_rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = {
        let seen = seen.clone();
        tokio::spawn(async move {
            use kube::runtime::watcher::{watcher, Config, Event};
            let mut s = watcher(eps, Config::default()).boxed();
            let mut synced = Some(synced_tx);
            while let Some(ev) = s.next().await {
                let add = |e: Endpoints| {
                    let has = e
                        .subsets
                        .as_ref()
                        .and_then(|s| s.first())
                        .and_then(|s| s.addresses.as_ref())
                        .is_some_and(|a| !a.is_empty());
                    if has {
                        let n = e.metadata.name.unwrap_or_default();
                        seen.0.lock().expect("seen").names.insert(n, ());
                        seen.1.notify_waiters();
                    }
                };
                match ev {
                    Ok(Event::Apply(e)) | Ok(Event::InitApply(e)) => add(e),
                    Ok(Event::InitDone) => {
                        if let Some(tx) = synced.take() {
                            let _ = tx.send(());
                        }
                    }
                    _ => {}
                }
            }
        })
    };
    let _abort = AbortOnDrop(watcher);
    tokio::time::timeout(Duration::from_secs(60), synced_rx)
        .await
        .context("the Endpoints watcher did not sync")??;

    let one = |seen: Arc<(Mutex<Seen>, tokio::sync::Notify)>| {
        let api: Api<Service> = Api::namespaced(ctx.client.clone(), &ctx.ns);
        async move {
            let svc: Service = serde_json::from_value(json!({
                "metadata": {"generateName": "latency-svc-"},
                "spec": {"ports": [{"protocol": "TCP", "port": 80}], "selector": {"name": name},
                         "type": "ClusterIP", "sessionAffinity": "None"},
            }))?;
            let start = tokio::time::Instant::now();
            let got = api.create(&PostParams::default(), &svc).await?;
            let n = got.metadata.name.unwrap_or_default();
            let wait = async {
                loop {
                    let notified = seen.1.notified();
                    if seen.0.lock().expect("seen").names.contains_key(&n) {
                        return;
                    }
                    notified.await;
                }
            };
            // The watcher stops only when the test does; a trial has the test's time.
            tokio::time::timeout(Duration::from_secs(600), wait)
                .await
                .map_err(|_| anyhow::anyhow!("never got a result for endpoint {n}"))?;
            anyhow::Ok(start.elapsed())
        }
    };
    // Run one and throw it away: the pod's readiness has propagated.
    one(seen.clone()).await?;
    let results: Vec<anyhow::Result<Duration>> = futures::stream::iter(0..TOTAL_TRIALS)
        .map(|_| one(seen.clone()))
        .buffer_unordered(PARALLEL_TRIALS)
        .collect()
        .await;
    let mut failing = Vec::new();
    let mut d: Vec<Duration> = Vec::new();
    let mut errs = 0;
    for r in results {
        match r {
            Ok(x) => d.push(x),
            Err(e) => {
                eprintln!("Got error: {e:#}");
                errs += 1;
            }
        }
    }
    if errs > 0 && errs as f32 / TOTAL_TRIALS as f32 > ACCEPTABLE_FAILURE_RATIO {
        failing.push(format!(
            "Not all RC/pod/service trials succeeded: error ratio {} is higher than the acceptable ratio {ACCEPTABLE_FAILURE_RATIO}",
            errs as f32 / TOTAL_TRIALS as f32
        ));
    }
    d.sort();
    let n = d.len();
    if n < MIN_SAMPLE_SIZE {
        failing.push(format!("Did not get a good sample size: {d:?}"));
    }
    if n < 2 {
        failing.push("Less than two runs succeeded; aborting.".into());
        bail!("{}", failing.join("\n"));
    }
    let p50 = percentile(&d, 50);
    let p90 = percentile(&d, 90);
    let p99 = percentile(&d, 99);
    eprintln!(
        "service endpoint latency: 50 %ile {p50:?}, 90 %ile {p90:?}, 99 %ile {p99:?}, {n} samples"
    );
    if p50 > LIMIT_MEDIAN {
        failing.push(format!(
            "Median latency should be less than {LIMIT_MEDIAN:?}"
        ));
    }
    if p99 > LIMIT_TAIL {
        failing.push(format!(
            "Tail (99 percentile) latency should be less than {LIMIT_TAIL:?}"
        ));
    }
    if !failing.is_empty() {
        bail!(
            "{}\n50, 90, 99 percentiles: {p50:?} {p90:?} {p99:?}",
            failing.join("\n")
        );
    }
    Ok(())
}

/// Upstream's percentile of sorted samples: the `n*p/100`-th, the last when beyond.
pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let n = sorted.len();
    let est = n * p / 100;
    sorted[est.min(n - 1)]
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn affinity_tracker_as_upstream() {
        let mut t = AffinityTracker::default();
        assert_eq!(t.check_host_trace(3), (false, true));
        t.host_trace = vec!["a".into(), "b".into(), "b".into()];
        assert_eq!(t.check_host_trace(3), (true, false));
        assert_eq!(t.check_host_trace(2), (true, true));
        t.host_trace.push("b".into());
        assert_eq!(t.check_host_trace(3), (true, true));
        assert_eq!(t.check_host_trace(10), (false, false));
    }

    #[test]
    fn percentiles_as_upstream() {
        let d: Vec<Duration> = (1..=10).map(Duration::from_secs).collect();
        assert_eq!(percentile(&d, 50), Duration::from_secs(6));
        assert_eq!(percentile(&d, 99), Duration::from_secs(10));
        assert_eq!(percentile(&d, 100), Duration::from_secs(10));
    }
}
