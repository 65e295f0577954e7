//! Networking: upstream's test/e2e/common/network/networking.go (Granular Checks: Pods,
//! through `framework/network`'s `NetworkingTestConfig`: a netexec "netserver" pod per
//! node, a test pod dialling through netexec's `/dial`, a host-network pod running curl
//! and nc) and test/e2e/network/hostport.go.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use serde_json::json;

use super::svcjig;
use super::test;
use super::{e2enode, e2epod};
use crate::{Ctx, Test};

const AREA: &str = "Networking";

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Networking, intra pod http",
            "[sig-network] Networking Granular Checks: Pods should function for intra-pod communication: http [NodeConformance] [Conformance]",
            intra_pod_http,
            timeout = Duration::from_secs(900)
        ),
        test!(
            AREA,
            "Networking, intra pod udp",
            "[sig-network] Networking Granular Checks: Pods should function for intra-pod communication: udp [NodeConformance] [Conformance]",
            intra_pod_udp,
            timeout = Duration::from_secs(900)
        ),
        test!(
            AREA,
            "Networking, intra pod http, from node",
            "[sig-network] Networking Granular Checks: Pods should function for node-pod communication: http [LinuxOnly] [NodeConformance] [Conformance]",
            node_pod_http,
            timeout = Duration::from_secs(900)
        ),
        test!(
            AREA,
            "Networking, intra pod http, from node",
            "[sig-network] Networking Granular Checks: Pods should function for node-pod communication: udp [LinuxOnly] [NodeConformance] [Conformance]",
            node_pod_udp,
            timeout = Duration::from_secs(900)
        ),
        test!(
            AREA,
            "Scheduling, HostPort matching and HostIP and Protocol not-matching",
            "[sig-network] HostPort validates that there is no conflict between pods with same hostPort but different hostIP and protocol [LinuxOnly] [Conformance]",
            host_port_no_conflict
        ),
    ]
}

// --- HostPort ------------------------------------------------------------------------------

/// `createHostPortPodOnNode`: netexec on 8080 (TCP and UDP) exposed as `port`/`protocol`
/// on `host_ip` of the node; waits until it is ready.
async fn create_host_port_pod_on_node(
    ctx: &Ctx,
    name: &str,
    host_ip: &str,
    port: i32,
    protocol: &str,
    node: &str,
) -> anyhow::Result<()> {
    let p = e2epod::pod(json!({
        "metadata": {"name": name},
        "spec": {
            "containers": [{
                "name": "agnhost", "image": super::agnhost_image(),
                "args": ["netexec", "--http-port=8080", "--udp-port=8080"],
                "ports": [{"hostPort": port, "containerPort": 8080, "protocol": protocol, "hostIP": host_ip}],
                "readinessProbe": {"httpGet": {"path": "/hostname", "port": 8080, "scheme": "HTTP"}},
            }],
            "nodeName": node,
        },
    }))?;
    e2epod::api(ctx)
        .create(&PostParams::default(), &p)
        .await
        .with_context(|| format!("error creating pod {name}"))?;
    svcjig::wait_for_ready(ctx, name, e2epod::POD_START_TIMEOUT)
        .await
        .with_context(|| format!("wait for pod {name} timeout"))?;
    Ok(())
}

/// Three pods with hostPort 54323 on one node: TCP on 127.0.0.1, TCP on the node's IP,
/// UDP on the node's IP; all scheduled, each reachable from a host-network pod there.
async fn host_port_no_conflict(ctx: Ctx) -> anyhow::Result<()> {
    use rand::seq::SliceRandom;
    let localhost = "127.0.0.1";
    let nodes = e2enode::bounded_ready_schedulable_nodes(&ctx, 1).await?;
    let node = nodes
        .choose(&mut rand::thread_rng())
        .context("No nodes available")?;
    let node_name = node.metadata.name.clone().unwrap_or_default();
    let host_ip = svcjig::collect_addresses(std::slice::from_ref(node), "InternalIP")
        .into_iter()
        .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
        .context("Failed to get NodeIP")?;
    let port = 54323;
    create_host_port_pod_on_node(&ctx, "pod1", localhost, port, "TCP", &node_name).await?;
    create_host_port_pod_on_node(&ctx, "pod2", &host_ip, port, "TCP", &node_name).await?;
    create_host_port_pod_on_node(&ctx, "pod3", &host_ip, port, "UDP", &node_name).await?;

    // A pod on the host network of the same node.
    let host_exec = e2epod::pod(json!({
        "metadata": {"name": "e2e-host-exec"},
        "spec": {"hostNetwork": true, "nodeName": node_name,
                 "containers": [{"name": "e2e-host-exec", "image": super::agnhost_image()}]},
    }))?;
    let host_exec = e2epod::create_sync(&e2epod::api(&ctx), &host_exec).await?;
    // 5 seconds per connection.
    let timeout = 5;
    let cmd1 = format!(
        "curl -g --connect-timeout {timeout} --interface {host_ip} http://{localhost}:{port}/hostname"
    );
    let cmd2 = format!("curl -g --connect-timeout {timeout} http://{host_ip}:{port}/hostname");
    let cmd3 = format!("nc -vuz -w {timeout} {host_ip} {port}");
    let sh = |cmd: String| {
        let (c, p) = (ctx.client.clone(), host_exec.clone());
        async move { svcjig::exec_full(&c, &p, &["/bin/sh", "-c", &cmd]).await }
    };
    // Five tries to reach the exposed ports.
    for _ in 0..5 {
        let h1 = match sh(cmd1.clone()).await {
            Ok((o, _)) => o,
            Err(e) => {
                eprintln!(
                    "Can not connect to pod(pod1) to serverIP: {localhost}, port: {port}: {e:#}"
                );
                continue;
            }
        };
        let h2 = match sh(cmd2.clone()).await {
            Ok((o, _)) => o,
            Err(e) => {
                eprintln!(
                    "Can not connect to pod(pod2) to serverIP: {host_ip}, port: {port}: {e:#}"
                );
                continue;
            }
        };
        if h1 == h2 {
            eprintln!(
                "pods must have different hostname: pod1 has hostname {h1}, pod2 has hostname {h2}"
            );
            continue;
        }
        if let Err(e) = sh(cmd3.clone()).await {
            eprintln!(
                "Can not connect to pod(pod3) to serverIP: {host_ip}, port: {port} UDP: {e:#}"
            );
            continue;
        }
        return Ok(());
    }
    bail!("Failed to connect to exposed host ports")
}

/// Upstream's `EndpointHTTPPort`, `EndpointUDPPort`, `testContainerHTTPPort`.
const ENDPOINT_HTTP_PORT: i32 = 8083;
const ENDPOINT_UDP_PORT: i32 = 8081;
const TEST_CONTAINER_HTTP_PORT: i32 = 9080;
/// `testTries`, `maxNetProxyPodsCount`, `hitEndpointRetryDelay`.
const TEST_TRIES: usize = 30;
const MAX_NET_PROXY_PODS_COUNT: usize = 10;
const HIT_ENDPOINT_RETRY_DELAY: Duration = Duration::from_secs(2);

/// Upstream's `NetworkingTestConfig` as `NewCoreNetworkingTestConfig` sets it up.
struct Config {
    client: kube::Client,
    endpoint_pods: Vec<Pod>,
    test_container_pod: Pod,
    host_test_container_pod: Option<Pod>,
    max_tries: usize,
}

/// The `responses` of a `NetexecDialResponse` (`{"responses": [...], "errors": [...]}`;
/// Go writes `null` for none).
fn dial_responses(body: &str) -> Result<Vec<String>, serde_json::Error> {
    let v: serde_json::Value = serde_json::from_str(body)?;
    Ok(v["responses"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

impl Config {
    /// `setupCore`: a netserver pod per ready schedulable node (at most 10), ready; the
    /// test pod, and with `host_network` the host-network exec pod, running.
    async fn setup_core(ctx: &Ctx, host_network: bool) -> anyhow::Result<Config> {
        let selector = format!("selector-{}", super::uuid());
        let api = e2epod::api(ctx);
        let nodes = e2enode::bounded_ready_schedulable_nodes(ctx, MAX_NET_PROXY_PODS_COUNT).await?;
        let probe = json!({"initialDelaySeconds": 10, "timeoutSeconds": 30, "periodSeconds": 10,
                           "successThreshold": 1, "failureThreshold": 3,
                           "httpGet": {"path": "/healthz", "port": ENDPOINT_HTTP_PORT}});
        let mut names = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            let hostname = n
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/hostname"))
                .cloned()
                .unwrap_or_default();
            let name = format!("netserver-{i}");
            let p = e2epod::pod(json!({
                "metadata": {"name": name, "labels": {&selector: "true"}},
                "spec": {
                    "containers": [{
                        "name": "webserver", "image": super::agnhost_image(),
                        "imagePullPolicy": "IfNotPresent",
                        "args": ["netexec", format!("--http-port={ENDPOINT_HTTP_PORT}"),
                                 format!("--udp-port={ENDPOINT_UDP_PORT}")],
                        "ports": [{"name": "http", "containerPort": ENDPOINT_HTTP_PORT},
                                  {"name": "udp", "containerPort": ENDPOINT_UDP_PORT, "protocol": "UDP"}],
                        "livenessProbe": probe, "readinessProbe": probe,
                    }],
                    "nodeSelector": {"kubernetes.io/hostname": hostname},
                },
            }))?;
            api.create(&PostParams::default(), &p)
                .await
                .with_context(|| format!("creating pod {name}"))?;
            names.push(name);
        }
        let mut endpoint_pods = Vec::new();
        for name in &names {
            endpoint_pods.push(svcjig::wait_for_ready(ctx, name, e2epod::POD_START_TIMEOUT).await?);
        }

        // createTestPods
        let test_pod = e2epod::pod(json!({
            "metadata": {"name": "test-container-pod"},
            "spec": {"containers": [{
                "name": "webserver", "image": super::agnhost_image(), "imagePullPolicy": "IfNotPresent",
                "args": ["netexec", format!("--http-port={TEST_CONTAINER_HTTP_PORT}")],
                "ports": [{"name": "http", "containerPort": TEST_CONTAINER_HTTP_PORT}],
            }]},
        }))?;
        api.create(&PostParams::default(), &test_pod)
            .await
            .context("creating test-container-pod")?;
        if host_network {
            // e2epod.NewExecPodSpec(ns, "host-test-container-pod", true)
            let host = e2epod::pod(json!({
                "metadata": {"name": "host-test-container-pod"},
                "spec": {"containers": [{"name": "agnhost-container", "image": super::agnhost_image(), "args": ["pause"]}],
                         "hostNetwork": true, "terminationGracePeriodSeconds": 0},
            }))?;
            api.create(&PostParams::default(), &host)
                .await
                .context("creating host-test-container-pod")?;
        }
        let test_container_pod =
            e2epod::wait_for_running(&api, "test-container-pod", e2epod::POD_START_TIMEOUT).await?;
        let host_test_container_pod = if host_network {
            Some(
                e2epod::wait_for_running(
                    &api,
                    "host-test-container-pod",
                    e2epod::POD_START_TIMEOUT,
                )
                .await?,
            )
        } else {
            None
        };
        let ep = endpoint_pods.len();
        Ok(Config {
            client: ctx.client.clone(),
            endpoint_pods,
            test_container_pod,
            host_test_container_pod,
            max_tries: ep * ep + TEST_TRIES,
        })
    }

    /// `DialFromTestContainer` → `DialFromContainer` with the `hostname` dial command:
    /// the test pod's netexec asks `target:port` (once per try); done when the answers
    /// are exactly `expected` (and `min_tries` passed); an unexpected answer fails at once.
    async fn dial_from_test_container(
        &self,
        protocol: &str,
        target: &str,
        port: i32,
        max_tries: usize,
        min_tries: usize,
        expected: &BTreeSet<String>,
    ) -> anyhow::Result<()> {
        let ip = pod_ip(&self.test_container_pod);
        let cmd = format!(
            "curl -g -q -s 'http://{ip}:{TEST_CONTAINER_HTTP_PORT}/dial?request=hostname&protocol={protocol}&host={target}&port={port}&tries=1'"
        );
        let mut responses = BTreeSet::new();
        for i in 0..max_tries {
            match self.shell(&self.test_container_pod, &cmd).await {
                Err(e) => eprintln!("GetResponseFromContainer: {e:#}"),
                Ok((out, _)) => match dial_responses(&out) {
                    Err(e) => eprintln!("failed to unmarshal curl response {out:?}: {e}"),
                    Ok(rs) => {
                        for resp in rs {
                            let t = resp.trim();
                            if !t.is_empty() {
                                responses.insert(t.to_string());
                            }
                        }
                        if !responses.is_subset(expected) {
                            bail!(
                                "received unexpected responses... \nAttempt {i}\nCommand {cmd}\nretrieved {responses:?}\nexpected {expected:?}"
                            );
                        }
                        if (&responses == expected || responses.is_empty() && expected.is_empty())
                            && i + 1 >= min_tries
                        {
                            return Ok(());
                        }
                    }
                },
            }
            tokio::time::sleep(HIT_ENDPOINT_RETRY_DELAY).await;
        }
        bail!(
            "did not find expected responses... \nTries {max_tries}\nCommand {cmd}\nretrieved {responses:?}\nexpected {expected:?}"
        )
    }

    /// `DialFromNode`: curl (http) or nc (udp) in the host-network pod; a try fails when
    /// the command fails or writes to stderr.
    async fn dial_from_node(
        &self,
        protocol: &str,
        target: &str,
        port: i32,
        max_tries: usize,
        min_tries: usize,
        expected: &BTreeSet<String>,
    ) -> anyhow::Result<()> {
        let pod = self
            .host_test_container_pod
            .as_ref()
            .context("no host test container pod")?;
        let cmd = if protocol == "udp" {
            format!("echo hostName | nc -w 1 -u {target} {port}")
        } else {
            format!(
                "curl -g -q -s --max-time 15 --connect-timeout 1 http://{target}:{port}/hostName"
            )
        };
        let filter = format!("{cmd} | grep -v '^\\s*$'");
        let mut eps = BTreeSet::new();
        for i in 0..max_tries {
            match self.shell(pod, &filter).await {
                Ok((out, err)) if err.is_empty() => {
                    let t = out.trim();
                    if !t.is_empty() {
                        eps.insert(t.to_string());
                    }
                }
                Ok((out, err)) => {
                    eprintln!("Failed to execute {filter:?}: stdout {out:?}, stderr {err:?}")
                }
                Err(e) => eprintln!("Failed to execute {filter:?}: {e:#}"),
            }
            if &eps == expected && i + 1 >= min_tries {
                return Ok(());
            }
            tokio::time::sleep(HIT_ENDPOINT_RETRY_DELAY).await;
        }
        bail!(
            "failed to find expected endpoints, \ntries {max_tries}\nCommand {cmd}\nretrieved {eps:?}\nexpected {expected:?}"
        )
    }

    /// `ExecShellInPodWithFullOutput`: `/bin/sh -c CMD` in the pod's first container.
    async fn shell(&self, pod: &Pod, cmd: &str) -> anyhow::Result<(String, String)> {
        svcjig::exec_full(&self.client, pod, &["/bin/sh", "-c", cmd]).await
    }
}

fn pod_ip(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default()
}

fn host_ip(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.host_ip.clone())
        .unwrap_or_default()
}

fn one(name: &Option<String>) -> BTreeSet<String> {
    name.iter().cloned().collect()
}

/// `checkPodToPodConnectivity`: breadth first, once per endpoint pod; the ones that
/// failed again with the full number of tries.
async fn check_pod_to_pod(config: &Config, protocol: &str, port: i32) -> anyhow::Result<()> {
    let mut failed: Vec<&Pod> = Vec::new();
    for p in &config.endpoint_pods {
        eprintln!(
            "Breadth first check of {} on host {}...",
            pod_ip(p),
            host_ip(p)
        );
        if config
            .dial_from_test_container(protocol, &pod_ip(p), port, 1, 0, &one(&p.metadata.name))
            .await
            .is_err()
        {
            failed.push(p);
        }
    }
    let mut errors = Vec::new();
    for p in failed {
        if let Err(e) = config
            .dial_from_test_container(
                protocol,
                &pod_ip(p),
                port,
                config.max_tries,
                0,
                &one(&p.metadata.name),
            )
            .await
        {
            errors.push(format!("{e:#}"));
        }
    }
    if !errors.is_empty() {
        bail!(
            "failed,  {} out of {} connections failed: {}",
            errors.len(),
            config.endpoint_pods.len(),
            errors.join("\n")
        );
    }
    Ok(())
}

async fn intra_pod_http(ctx: Ctx) -> anyhow::Result<()> {
    let config = Config::setup_core(&ctx, false).await?;
    check_pod_to_pod(&config, "http", ENDPOINT_HTTP_PORT).await
}

async fn intra_pod_udp(ctx: Ctx) -> anyhow::Result<()> {
    let config = Config::setup_core(&ctx, false).await?;
    check_pod_to_pod(&config, "udp", ENDPOINT_UDP_PORT).await
}

async fn node_pod(ctx: Ctx, protocol: &str, port: i32) -> anyhow::Result<()> {
    let config = Config::setup_core(&ctx, true).await?;
    for p in &config.endpoint_pods {
        config
            .dial_from_node(
                protocol,
                &pod_ip(p),
                port,
                config.max_tries,
                0,
                &one(&p.metadata.name),
            )
            .await
            .with_context(|| format!("Error dialing {protocol} from node to pod"))?;
    }
    Ok(())
}

async fn node_pod_http(ctx: Ctx) -> anyhow::Result<()> {
    node_pod(ctx, "http", ENDPOINT_HTTP_PORT).await
}

async fn node_pod_udp(ctx: Ctx) -> anyhow::Result<()> {
    node_pod(ctx, "udp", ENDPOINT_UDP_PORT).await
}
