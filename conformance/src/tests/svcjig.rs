//! What upstream's service and networking tests take from `framework/service` (the
//! `TestJig`), `framework/rc` (`RunRC`), `framework/node` and `framework/pod`
//! (`CreateExecPodOrFail`, `RunHostCmd`): services of a jig, replication controllers of
//! serving pods, exec client pods and the reachability checks run from them.

use std::time::Duration;

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use kube::api::{Api, PostParams};
use serde_json::json;

use super::{e2enode, e2epod};
use crate::Ctx;

/// Upstream's `e2eservice.ServiceEndpointsTimeout`.
pub const SERVICE_ENDPOINTS_TIMEOUT: Duration = Duration::from_secs(2 * 60);
/// Upstream's `e2eservice.ServiceReachabilityShortPollTimeout`.
pub const SERVICE_REACHABILITY_SHORT_POLL_TIMEOUT: Duration = Duration::from_secs(2 * 60);
/// Upstream's `e2eservice.NodePortRange` (30000-32767).
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<i32> = 30000..=32767;
/// Upstream's `framework.TestContext.ClusterDNSDomain` default.
pub const CLUSTER_DNS_DOMAIN: &str = "cluster.local";

/// Upstream's `e2eservice.TestJig`: a service named `name` whose selector and labels are
/// `testid: <name>-<uuid>`.
pub struct Jig {
    pub client: kube::Client,
    pub ns: String,
    pub name: String,
    pub labels: serde_json::Value,
}

impl Jig {
    pub fn new(ctx: &Ctx, name: &str) -> Jig {
        Jig {
            client: ctx.client.clone(),
            ns: ctx.ns.clone(),
            name: name.to_string(),
            labels: json!({"testid": format!("{name}-{}", super::uuid())}),
        }
    }

    pub fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// `CreateTCPService`: port 80/TCP, the jig's selector, then `tweak`.
    pub async fn create_tcp_service(
        &self,
        tweak: impl FnOnce(&mut serde_json::Value),
    ) -> anyhow::Result<Service> {
        let mut v = json!({
            "metadata": {"name": self.name, "labels": self.labels},
            "spec": {"selector": self.labels, "ports": [{"protocol": "TCP", "port": 80}]},
        });
        tweak(&mut v);
        let svc: Service = serde_json::from_value(v)?;
        let want = svc.spec.as_ref().and_then(|s| s.type_.clone());
        let got = self
            .services()
            .create(&PostParams::default(), &svc)
            .await
            .with_context(|| format!("failed to create TCP Service {:?}", self.name))?;
        sanity_check(got, want.as_deref())
    }

    /// `CreateExternalNameService`: `foo.example.com`, the jig's selector.
    pub async fn create_external_name_service(&self) -> anyhow::Result<Service> {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": self.name, "labels": self.labels},
            "spec": {"selector": self.labels, "externalName": "foo.example.com", "type": "ExternalName"},
        }))?;
        let got = self
            .services()
            .create(&PostParams::default(), &svc)
            .await
            .with_context(|| format!("failed to create ExternalName Service {:?}", self.name))?;
        sanity_check(got, Some("ExternalName"))
    }

    /// `UpdateService`: get, change, update, up to 3 times on conflicts; sanity-checked.
    pub async fn update_service(&self, change: impl Fn(&mut Service)) -> anyhow::Result<Service> {
        let api = self.services();
        for _ in 0..3 {
            let mut svc = api
                .get(&self.name)
                .await
                .with_context(|| format!("failed to get Service {:?}", self.name))?;
            change(&mut svc);
            let want = svc.spec.as_ref().and_then(|s| s.type_.clone());
            match api.replace(&self.name, &PostParams::default(), &svc).await {
                Ok(got) => return sanity_check(got, want.as_deref()),
                Err(kube::Error::Api(s)) if s.code == 409 || s.code == 504 => continue,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("failed to update Service {:?}", self.name))
                }
            }
        }
        bail!("too many retries updating Service {:?}", self.name)
    }

    /// `CreateServicePods`: an RC of `replica` pods with the jig's labels serving their
    /// hostname on TCP and UDP 9376 (`serve-hostname --http=false --tcp --udp`).
    pub async fn create_service_pods(&self, ctx: &Ctx, replica: i32) -> anyhow::Result<()> {
        run_rc(
            ctx,
            &self.name,
            replica,
            self.labels.clone(),
            json!({"name": self.name, "image": super::agnhost_image(),
                   "command": ["/agnhost", "serve-hostname", "--http=false", "--tcp", "--udp"]}),
        )
        .await
        .map(|_| ())
    }

    /// `waitForAvailableEndpoint`: the Service's Endpoints get a ready address.
    pub async fn wait_for_available_endpoint(&self, timeout: Duration) -> anyhow::Result<()> {
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), &self.ns);
        let name = self.name.clone();
        e2epod::eventually(timeout, Duration::from_secs(1), "an available endpoint", || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let ep = api.get_opt(&name).await.map_err(|e| e.to_string())?;
                let ready = ep
                    .and_then(|e| e.subsets)
                    .and_then(|s| s.into_iter().next())
                    .and_then(|s| s.addresses)
                    .is_some_and(|a| !a.is_empty());
                if ready {
                    Ok(())
                } else {
                    Err("no ready address yet".into())
                }
            }
        })
        .await
        .with_context(|| {
            format!(
                "no subset of available IP address found for the endpoint {} within timeout {timeout:?}",
                self.name
            )
        })
    }

    /// `CheckServiceReachability`: by type, from `pod`.
    pub async fn check_service_reachability(
        &self,
        ctx: &Ctx,
        svc: &Service,
        pod: &Pod,
    ) -> anyhow::Result<()> {
        let t = svc.spec.as_ref().and_then(|s| s.type_.clone());
        let svc = sanity_check(svc.clone(), t.as_deref())?;
        match t.as_deref().unwrap_or("ClusterIP") {
            "ClusterIP" => self.check_cluster_ip_reachability(&svc, pod).await,
            "NodePort" => self.check_node_port_reachability(ctx, &svc, pod).await,
            "ExternalName" => check_external_service_reachability(&self.client, &svc, pod).await,
            t => bail!("unsupported service type {t:?} to verify service reachability"),
        }
    }

    async fn check_cluster_ip_reachability(&self, svc: &Service, pod: &Pod) -> anyhow::Result<()> {
        let spec = svc.spec.clone().unwrap_or_default();
        let ip = spec.cluster_ip.clone().unwrap_or_default();
        self.wait_for_available_endpoint(SERVICE_ENDPOINTS_TIMEOUT)
            .await?;
        for sp in spec.ports.iter().flatten() {
            let proto = sp.protocol.as_deref().unwrap_or("TCP");
            let name = svc.metadata.name.as_deref().unwrap_or_default();
            test_endpoint_reachability(
                &self.client,
                name,
                sp.port,
                proto,
                pod,
                SERVICE_REACHABILITY_SHORT_POLL_TIMEOUT,
            )
            .await?;
            test_reachability_over_cluster_ip(&self.client, &ip, sp.port, proto, pod).await?;
        }
        Ok(())
    }

    async fn check_node_port_reachability(
        &self,
        ctx: &Ctx,
        svc: &Service,
        pod: &Pod,
    ) -> anyhow::Result<()> {
        let spec = svc.spec.clone().unwrap_or_default();
        let ip = spec.cluster_ip.clone().unwrap_or_default();
        // Only 2 nodes, as upstream.
        let nodes = e2enode::bounded_ready_schedulable_nodes(ctx, 2).await?;
        self.wait_for_available_endpoint(SERVICE_ENDPOINTS_TIMEOUT)
            .await?;
        for sp in spec.ports.iter().flatten() {
            let proto = sp.protocol.as_deref().unwrap_or("TCP");
            let name = svc.metadata.name.as_deref().unwrap_or_default();
            test_endpoint_reachability(
                &self.client,
                name,
                sp.port,
                proto,
                pod,
                SERVICE_REACHABILITY_SHORT_POLL_TIMEOUT,
            )
            .await?;
            test_reachability_over_cluster_ip(&self.client, &ip, sp.port, proto, pod).await?;
            test_reachability_over_node_ports(
                &self.client,
                &nodes,
                sp.node_port.unwrap_or(0),
                proto,
                pod,
                &ip,
            )
            .await?;
        }
        Ok(())
    }
}

/// `sanityCheckService`: the type, cluster IP and node ports a service of `want` type
/// must have.
pub fn sanity_check(svc: Service, want: Option<&str>) -> anyhow::Result<Service> {
    let want = want.unwrap_or("ClusterIP");
    let spec = svc.spec.clone().unwrap_or_default();
    let got = spec.type_.as_deref().unwrap_or("ClusterIP");
    if got != want {
        bail!("unexpected Spec.Type ({got}) for service, expected {want}");
    }
    let cluster_ip = spec.cluster_ip.clone().unwrap_or_default();
    if want != "ExternalName" {
        if let Some(n) = spec.external_name.as_deref().filter(|n| !n.is_empty()) {
            bail!("unexpected Spec.ExternalName ({n}) for service, expected empty");
        }
        if cluster_ip.is_empty() {
            bail!("didn't get ClusterIP for non-ExternalName service");
        }
    } else if !cluster_ip.is_empty() {
        bail!("unexpected Spec.ClusterIP ({cluster_ip}) for ExternalName service, expected empty");
    }
    let expect_node_ports = want != "ClusterIP" && want != "ExternalName";
    for (i, p) in spec.ports.iter().flatten().enumerate() {
        let np = p.node_port.unwrap_or(0);
        if (np != 0) != expect_node_ports {
            bail!("unexpected Spec.Ports[{i}].NodePort ({np}) for service");
        }
        if np != 0 && !NODE_PORT_RANGE.contains(&np) {
            bail!("out-of-range nodePort ({np}) for service");
        }
    }
    Ok(svc)
}

/// The cluster IP unless it is "" or "None" (no cluster IP to test).
async fn test_reachability_over_cluster_ip(
    client: &kube::Client,
    ip: &str,
    port: i32,
    proto: &str,
    pod: &Pod,
) -> anyhow::Result<()> {
    if ip.parse::<std::net::IpAddr>().is_ok() {
        test_endpoint_reachability(
            client,
            ip,
            port,
            proto,
            pod,
            SERVICE_REACHABILITY_SHORT_POLL_TIMEOUT,
        )
        .await?;
    }
    Ok(())
}

/// `testReachabilityOverNodePorts`: every node's internal address (loopback ones
/// skipped: a pod cannot reach its node that way) and external address of the cluster
/// IP's family, on the node port.
async fn test_reachability_over_node_ports(
    client: &kube::Client,
    nodes: &[Node],
    node_port: i32,
    proto: &str,
    pod: &Pod,
    cluster_ip: &str,
) -> anyhow::Result<()> {
    let v4 = cluster_ip
        .parse::<std::net::IpAddr>()
        .map(|i| i.is_ipv4())
        .unwrap_or(true);
    for (kind, skip_loopback) in [("InternalIP", true), ("ExternalIP", false)] {
        for a in collect_addresses(nodes, kind) {
            let Ok(ip) = a.parse::<std::net::IpAddr>() else {
                continue;
            };
            if skip_loopback && ip.is_loopback() {
                continue;
            }
            if ip.is_ipv4() != v4 {
                continue;
            }
            test_endpoint_reachability(
                client,
                &a,
                node_port,
                proto,
                pod,
                SERVICE_REACHABILITY_SHORT_POLL_TIMEOUT,
            )
            .await?;
        }
    }
    Ok(())
}

/// `checkExternalServiceReachability`: the service's FQDN resolves in the pod.
async fn check_external_service_reachability(
    client: &kube::Client,
    svc: &Service,
    pod: &Pod,
) -> anyhow::Result<()> {
    let name = format!(
        "{}.{}.svc.{CLUSTER_DNS_DOMAIN}",
        svc.metadata.name.as_deref().unwrap_or_default(),
        svc.metadata.namespace.as_deref().unwrap_or_default()
    );
    let cmd = format!("nslookup {name}");
    e2epod::eventually(
        SERVICE_REACHABILITY_SHORT_POLL_TIMEOUT,
        e2epod::POLL,
        &format!("ExternalName service {name} to resolve to IP"),
        || async {
            run_host_cmd(client, pod, &cmd)
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:#}"))
        },
    )
    .await
}

/// `testEndpointReachability`: `echo hostName | nc -v -t|-u -w 2 HOST PORT` in the pod,
/// every second until it answers something, for at most `timeout`.
pub async fn test_endpoint_reachability(
    client: &kube::Client,
    host: &str,
    port: i32,
    proto: &str,
    pod: &Pod,
    timeout: Duration,
) -> anyhow::Result<()> {
    let flag = match proto {
        "TCP" => "-t",
        "UDP" => "-u",
        p => bail!("service reachability check is not supported for {p}"),
    };
    let cmd = format!("echo hostName | nc -v {flag} -w 2 {host} {port}");
    e2epod::eventually(timeout, Duration::from_secs(1), &cmd, || async {
        match run_host_cmd(client, pod, &cmd).await {
            Ok(out) if !out.trim().is_empty() => Ok(()),
            Ok(_) => Err("no answer".to_string()),
            Err(e) => Err(format!("{e:#}")),
        }
    })
    .await
    .with_context(|| {
        format!("service is not reachable within {timeout:?} timeout on endpoint {host}:{port} over {proto} protocol")
    })
}

/// `e2eoutput.RunHostCmd`: `/bin/sh -x -c CMD` in the pod's first container; its stdout.
pub async fn run_host_cmd(client: &kube::Client, pod: &Pod, cmd: &str) -> anyhow::Result<String> {
    let (out, _err) = exec_full(client, pod, &["/bin/sh", "-x", "-c", cmd]).await?;
    Ok(out)
}

/// Runs `command` in the pod's first container: its stdout and stderr (untrimmed) when it
/// succeeded, an error (with both) when not.
pub async fn exec_full(
    client: &kube::Client,
    pod: &Pod,
    command: &[&str],
) -> anyhow::Result<(String, String)> {
    use tokio::io::AsyncReadExt;
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let ap = kube::api::AttachParams::default()
        .container(&container)
        .stdin(false)
        .stdout(true)
        .stderr(true);
    let mut p = api
        .exec(&name, command.to_vec(), &ap)
        .await
        .with_context(|| format!("exec {command:?} in {name}/{container}"))?;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut so = p.stdout().context("no stdout")?;
    let mut se = p.stderr().context("no stderr")?;
    let status = p.take_status().context("no status")?;
    let (r1, r2) = tokio::join!(so.read_to_end(&mut out), se.read_to_end(&mut err));
    r1.and(r2)
        .with_context(|| format!("reading the output of {command:?}"))?;
    let status = status.await;
    let (out, err) = (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    );
    match status {
        Some(s) if s.status.as_deref() == Some("Success") => Ok((out, err)),
        s => bail!(
            "exec {command:?} in {name}/{container} failed: {:?}; stdout {out:?}, stderr {err:?}",
            s.and_then(|s| s.message)
        ),
    }
}

/// The node's addresses of `kind` (`e2enode.CollectAddresses`).
pub fn collect_addresses(nodes: &[Node], kind: &str) -> Vec<String> {
    nodes
        .iter()
        .flat_map(|n| n.status.iter().flat_map(|s| s.addresses.iter().flatten()))
        .filter(|a| a.type_ == kind)
        .map(|a| a.address.clone())
        .collect()
}

/// `e2epod.CreateExecPodOrFail`: an agnhost pod (`pause`) named from `generate_name`,
/// running; `tweak` changes it first.
pub async fn create_exec_pod(
    ctx: &Ctx,
    generate_name: &str,
    tweak: impl FnOnce(&mut serde_json::Value),
) -> anyhow::Result<Pod> {
    let mut v = json!({
        "metadata": {"generateName": generate_name},
        "spec": {"containers": [{"name": "agnhost-container", "image": super::agnhost_image(), "args": ["pause"]}],
                 "terminationGracePeriodSeconds": 0},
    });
    tweak(&mut v);
    let api = e2epod::api(ctx);
    let p = api
        .create(&PostParams::default(), &serde_json::from_value(v)?)
        .await
        .context("creating the exec pod")?;
    let name = p.metadata.name.clone().unwrap_or_default();
    e2epod::wait_for_running(&api, &name, e2epod::POD_START_TIMEOUT).await
}

/// `e2epod.WaitTimeoutForPodReadyInNamespace`.
pub async fn wait_for_ready(ctx: &Ctx, name: &str, timeout: Duration) -> anyhow::Result<Pod> {
    e2epod::wait_for(
        &e2epod::api(ctx),
        name,
        timeout,
        "running and ready",
        super::e2erc::running_and_ready,
    )
    .await
}

/// `e2erc.RunRC` ([`super::e2erc::run`]): the names of its pods, sorted.
pub async fn run_rc(
    ctx: &Ctx,
    name: &str,
    replicas: i32,
    labels: serde_json::Value,
    container: serde_json::Value,
) -> anyhow::Result<Vec<String>> {
    let pods = super::e2erc::run(ctx, name, replicas, &labels, container).await?;
    let mut names: Vec<String> = pods
        .into_iter()
        .map(|p| p.metadata.name.unwrap_or_default())
        .collect();
    names.sort();
    Ok(names)
}
