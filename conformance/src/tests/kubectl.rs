//! Kubectl client and Kubectl logs: upstream's test/e2e/kubectl/kubectl.go and logs.go.
//! They run the `kubectl` binary (`KUBECTL`, else `kubectl` on the PATH) as upstream's
//! `e2ekubectl` does: `--kubeconfig=<the cluster's>` and `--namespace=<the test's>`.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use regex::Regex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{agnhost_image, busybox_image, e2epod, httpd_image, pause_image, proxy, test};
use crate::{Ctx, Test};

const AREA: &str = "Kubectl";

/// Upstream's `podRunningTimeoutArg` (`framework.PodStartShortTimeout`).
const POD_RUNNING_TIMEOUT_ARG: &str = "--pod-running-timeout=2m0s";
/// Upstream's `framework.Poll`.
const POLL: Duration = Duration::from_secs(2);
/// Upstream's `framework.ServiceStartTimeout`.
const SERVICE_START_TIMEOUT: Duration = Duration::from_secs(3 * 60);

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Kubectl, check version v1",
            "[sig-cli] Kubectl client Kubectl api-versions should check if v1 is in available api versions [Conformance]",
            api_versions
        ),
        test!(
            AREA,
            "Kubectl, cluster info",
            "[sig-cli] Kubectl client Kubectl cluster-info should check if Kubernetes control plane services is included in cluster-info [Conformance]",
            cluster_info
        ),
        test!(
            AREA,
            "Kubectl, describe pod or rc",
            "[sig-cli] Kubectl client Kubectl describe should check if kubectl describe prints relevant information for rc and pods [Conformance]",
            describe
        ),
        test!(
            AREA,
            "Kubectl, create service, replication controller",
            "[sig-cli] Kubectl client Kubectl expose should create services for rc [Conformance]",
            expose
        ),
        test!(
            AREA,
            "Kubectl, label update",
            "[sig-cli] Kubectl client Kubectl label should update the label on a resource [Conformance]",
            label
        ),
        test!(
            AREA,
            "Kubectl, patch to annotate",
            "[sig-cli] Kubectl client Kubectl patch should add annotations for pods in rc [Conformance]",
            patch
        ),
        test!(
            AREA,
            "Kubectl, replace",
            "[sig-cli] Kubectl client Kubectl replace should update a single-container pod's image [Conformance]",
            replace
        ),
        test!(
            AREA,
            "Kubectl, run pod",
            "[sig-cli] Kubectl client Kubectl run pod should create a pod from an image when restart is Never [Conformance]",
            run_pod
        ),
        test!(
            AREA,
            "Kubectl, server-side dry-run Pod",
            "[sig-cli] Kubectl client Kubectl server-side dry-run should check if kubectl can dry-run update Pods [Conformance]",
            dry_run
        ),
        test!(
            AREA,
            "Kubectl, version",
            "[sig-cli] Kubectl client Kubectl version should check is all data is printed [Conformance]",
            version
        ),
        test!(
            AREA,
            "Kubectl, proxy port zero",
            "[sig-cli] Kubectl client Proxy server should support proxy with --port 0 [Conformance]",
            proxy_port_zero
        ),
        test!(
            AREA,
            "Kubectl, proxy socket",
            "[sig-cli] Kubectl client Proxy server should support --unix-socket=/path [Conformance]",
            proxy_unix_socket
        ),
        test!(
            AREA,
            "Kubectl, logs",
            "[sig-cli] Kubectl logs logs should be able to retrieve and filter logs [Conformance]",
            logs
        ),
        test!(
            AREA,
            "Kubectl, replication controller",
            "[sig-cli] Kubectl client Update Demo should create and stop a replication controller [Conformance]",
            update_demo_create_and_stop
        ),
        test!(
            AREA,
            "Kubectl, scale replication controller",
            "[sig-cli] Kubectl client Update Demo should scale a replication controller [Conformance]",
            update_demo_scale
        ),
    ]
}

// ---------------------------------------------------------------------------
// e2ekubectl
// ---------------------------------------------------------------------------

/// `kubectl --kubeconfig=… --namespace=<ns> args…` (upstream's `KubectlCmd`).
fn kubectl_cmd(ctx: &Ctx, args: &[&str]) -> tokio::process::Command {
    let bin = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let mut cmd = tokio::process::Command::new(bin);
    if let Some(k) = &ctx.kubeconfig {
        cmd.arg(format!("--kubeconfig={}", k.display()));
    }
    cmd.arg(format!("--namespace={}", ctx.ns));
    cmd.args(args);
    cmd.kill_on_drop(true);
    cmd
}

/// Upstream's `RunKubectl` / `RunKubectlInput`: stdout, or an error with stderr.
async fn run_kubectl_input(
    ctx: &Ctx,
    input: Option<&str>,
    args: &[&str],
) -> anyhow::Result<String> {
    let mut cmd = kubectl_cmd(ctx, args);
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("starting kubectl")?;
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(data.as_bytes()).await?;
        drop(stdin);
    }
    let out = child.wait_with_output().await?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "error running kubectl {}: {}\nstdout: {stdout}\nstderr: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

/// Upstream's `RunKubectlOrDie`.
async fn kubectl(ctx: &Ctx, args: &[&str]) -> anyhow::Result<String> {
    run_kubectl_input(ctx, None, args).await
}

/// Upstream's `RunKubectlOrDieInput`.
async fn kubectl_input(ctx: &Ctx, input: &str, args: &[&str]) -> anyhow::Result<String> {
    run_kubectl_input(ctx, Some(input), args).await
}

/// Upstream's `checkOutputReturnError`: each requirement's first item is searched from
/// the current line on; the others must be on that line.
fn check_output(output: &str, required: &[&[&str]]) -> anyhow::Result<()> {
    let lines: Vec<&str> = output.split('\n').collect();
    let mut current = 0;
    for req in required {
        while current < lines.len() && !lines[current].contains(req[0]) {
            current += 1;
        }
        if current == lines.len() {
            bail!("failed to find {} in {output}", req[0]);
        }
        for item in &req[1..] {
            if !lines[current].contains(item) {
                bail!("failed to find {item} in {}", lines[current]);
            }
        }
    }
    Ok(())
}

/// Upstream's `checkKubectlOutputWithRetry`: for a minute, every second.
async fn check_kubectl_output_with_retry(
    ctx: &Ctx,
    required: &[&[&str]],
    args: &[&str],
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let out = kubectl(ctx, args).await?;
        match check_output(&out, required) {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// Upstream's `checkContainersImage`: true when the pod does *not* have exactly one
/// container with that image.
fn containers_image_differs(p: &Pod, image: &str) -> bool {
    let cs = p
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or(&[]);
    cs.len() != 1 || cs[0].image.as_deref() != Some(image)
}

/// Upstream's `agnhost-primary-controller.json.in`.
fn agnhost_controller_json() -> String {
    serde_json::json!({
        "kind": "ReplicationController", "apiVersion": "v1",
        "metadata": {"name": "agnhost-primary", "labels": {"app": "agnhost", "role": "primary"}},
        "spec": {
            "replicas": 1,
            "selector": {"app": "agnhost", "role": "primary"},
            "template": {
                "metadata": {"labels": {"app": "agnhost", "role": "primary"}},
                "spec": {"containers": [{"name": "agnhost-primary", "image": agnhost_image(),
                    "ports": [{"name": "agnhost-server", "containerPort": 6379}]}]},
            },
        },
    })
    .to_string()
}

/// Upstream's `agnhost-primary-service.json`.
const AGNHOST_SERVICE_JSON: &str = r#"{
   "kind": "Service",
   "apiVersion": "v1",
   "metadata": {
      "name": "agnhost-primary",
      "labels": {"app": "agnhost", "role": "primary"}
   },
   "spec": {
      "ports": [{"port": 6379, "targetPort": "agnhost-server"}],
      "selector": {"app": "agnhost", "role": "primary"}
   }
}"#;

/// The Running pods labelled app=agnhost (upstream's `clusterState().ForEach`).
async fn running_agnhost_pods(ctx: &Ctx) -> anyhow::Result<Vec<Pod>> {
    let pods = e2epod::api(ctx)
        .list(&ListParams::default().labels("app=agnhost"))
        .await?;
    Ok(pods
        .items
        .into_iter()
        .filter(|p| e2epod::phase(p) == "Running")
        .collect())
}

/// Upstream's `waitForOrFailWithDebug(atLeast)`: that many Running app=agnhost pods
/// within `PodStartTimeout`.
async fn wait_for_agnhost(ctx: &Ctx, at_least: usize) -> anyhow::Result<()> {
    e2epod::eventually(
        e2epod::POD_START_TIMEOUT,
        POLL,
        "Agnhost primary to start",
        || async {
            match running_agnhost_pods(ctx).await {
                Ok(p) if p.len() >= at_least => Ok(()),
                Ok(p) => Err(format!("Verified {} of {at_least} pods", p.len())),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
}

/// Upstream's `e2eoutput.LookForStringInLog`.
async fn look_for_string_in_log(
    ctx: &Ctx,
    pod: &str,
    container: &str,
    needle: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    e2epod::eventually(timeout, POLL, &format!("{needle:?} in the log"), || async {
        match kubectl(ctx, &["logs", pod, container]).await {
            Ok(l) if l.contains(needle) => Ok(l),
            Ok(l) => Err(format!("log so far: {l:?}")),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
}

/// Upstream's `cleanupKubectlInputs`: `kubectl delete --grace-period=0 --force -f -`, then
/// `assertCleanup`: nothing left with the selectors (rc, svc, pods without a deletion
/// timestamp), polled for a minute.
async fn cleanup_kubectl_inputs(ctx: &Ctx, input: &str, selectors: &[&str]) -> anyhow::Result<()> {
    kubectl_input(
        ctx,
        input,
        &["delete", "--grace-period=0", "--force", "-f", "-"],
    )
    .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    'poll: loop {
        let mut left = String::new();
        for sel in selectors {
            let r = kubectl(ctx, &["get", "rc,svc", "-l", sel, "--no-headers"]).await?;
            if !r.is_empty() {
                left = format!("Resources left running after stop:\n{r}");
            } else {
                let pods = kubectl(
                    ctx,
                    &["get", "pods", "-l", sel, "-o",
                      "go-template={{ range .items }}{{ if not .metadata.deletionTimestamp }}{{ .metadata.name }}{{ \"\\n\" }}{{ end }}{{ end }}"],
                )
                .await?;
                if !pods.is_empty() {
                    left = format!("Pods left unterminated after stop:\n{pods}");
                }
            }
            if !left.is_empty() {
                if tokio::time::Instant::now() >= deadline {
                    bail!("{left}");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue 'poll;
            }
        }
        return Ok(());
    }
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

async fn api_versions(ctx: Ctx) -> anyhow::Result<()> {
    let out = kubectl(&ctx, &["api-versions"]).await?;
    ensure!(out.contains("v1"), "No v1 in kubectl api-versions: {out}");
    Ok(())
}

async fn cluster_info(ctx: Ctx) -> anyhow::Result<()> {
    let out = kubectl(&ctx, &["cluster-info"]).await?;
    for item in ["Kubernetes control plane", "is running at"] {
        ensure!(
            out.contains(item),
            "Missing {item} in kubectl cluster-info: {out}"
        );
    }
    Ok(())
}

async fn describe(ctx: Ctx) -> anyhow::Result<()> {
    let ns = ctx.ns.as_str();
    let agnhost = agnhost_image();
    kubectl_input(&ctx, &agnhost_controller_json(), &["create", "-f", "-"]).await?;
    kubectl_input(&ctx, AGNHOST_SERVICE_JSON, &["create", "-f", "-"]).await?;
    wait_for_agnhost(&ctx, 1).await?;

    for p in running_agnhost_pods(&ctx).await? {
        let name = p.metadata.name.clone().unwrap_or_default();
        let out = kubectl(&ctx, &["describe", "pod", &name]).await?;
        check_output(
            &out,
            &[
                &["Name:", "agnhost-primary-"],
                &["Namespace:", ns],
                &["Node:"],
                &["Labels:", "app=agnhost"],
                &["role=primary"],
                &["Annotations:"],
                &["Status:", "Running"],
                &["IP:"],
                &["Controlled By:", "ReplicationController/agnhost-primary"],
                &["Image:", &agnhost],
                &["State:", "Running"],
                &["QoS Class:", "BestEffort"],
            ],
        )
        .context("kubectl describe pod")?;
    }

    check_kubectl_output_with_retry(
        &ctx,
        &[
            &["Name:", "agnhost-primary"],
            &["Namespace:", ns],
            &["Selector:", "app=agnhost,role=primary"],
            &["Labels:", "app=agnhost"],
            &["role=primary"],
            &["Annotations:"],
            &["Replicas:", "1 current", "1 desired"],
            &[
                "Pods Status:",
                "1 Running",
                "0 Waiting",
                "0 Succeeded",
                "0 Failed",
            ],
            &["Pod Template:"],
            &["Image:", &agnhost],
            &["Events:"],
        ],
        &["describe", "rc", "agnhost-primary"],
    )
    .await
    .context("kubectl describe rc")?;

    let out = kubectl(&ctx, &["describe", "service", "agnhost-primary"]).await?;
    check_output(
        &out,
        &[
            &["Name:", "agnhost-primary"],
            &["Namespace:", ns],
            &["Labels:", "app=agnhost"],
            &["role=primary"],
            &["Annotations:"],
            &["Selector:", "app=agnhost", "role=primary"],
            &["Type:", "ClusterIP"],
            &["IP:"],
            &["Port:", "<unset>", "6379/TCP"],
            &["Endpoints:"],
            &["Session Affinity:", "None"],
        ],
    )
    .context("kubectl describe service")?;

    let nodes = Api::<Node>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?;
    let node = nodes.items.first().context("no nodes")?;
    let node_name = node.metadata.name.clone().unwrap_or_default();
    let out = kubectl(&ctx, &["describe", "node", &node_name]).await?;
    check_output(
        &out,
        &[
            &["Name:", &node_name],
            &["Labels:"],
            &["Annotations:"],
            &["CreationTimestamp:"],
            &["Conditions:"],
            &[
                "Type",
                "Status",
                "LastHeartbeatTime",
                "LastTransitionTime",
                "Reason",
                "Message",
            ],
            &["Addresses:"],
            &["Capacity:"],
            &["Version:"],
            &["Kernel Version:"],
            &["OS Image:"],
            &["Container Runtime Version:"],
            &["Kubelet Version:"],
            &["Kube-Proxy Version:"],
            &["Pods:"],
        ],
    )
    .context("kubectl describe node")?;

    let out = kubectl(&ctx, &["describe", "namespace", ns]).await?;
    check_output(
        &out,
        &[
            &["Name:", ns],
            &["Labels:"],
            &["Annotations:"],
            &["Status:", "Active"],
        ],
    )
    .context("kubectl describe namespace")
}

async fn expose(ctx: Ctx) -> anyhow::Result<()> {
    const AGNHOST_PORT: i32 = 6379;
    kubectl_input(&ctx, &agnhost_controller_json(), &["create", "-f", "-"]).await?;
    wait_for_agnhost(&ctx, 1).await?;
    for p in running_agnhost_pods(&ctx).await? {
        let name = p.metadata.name.clone().unwrap_or_default();
        look_for_string_in_log(
            &ctx,
            &name,
            "agnhost-primary",
            "Paused",
            e2epod::POD_START_TIMEOUT,
        )
        .await?;
    }

    let validate_service = |name: &'static str, service_port: i32| {
        let ctx = ctx.clone();
        async move {
            let slices: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ctx.ns);
            let sel = format!("kubernetes.io/service-name={name}");
            // Upstream's GetContainerPortsByPodUID over the service's slices.
            let deadline = tokio::time::Instant::now() + SERVICE_START_TIMEOUT;
            loop {
                tokio::time::sleep(POLL).await;
                let list = slices.list(&ListParams::default().labels(&sel)).await?;
                let mut by_uid: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
                for s in &list.items {
                    for port in s.ports.iter().flatten() {
                        for ep in &s.endpoints {
                            if let Some(uid) = ep.target_ref.as_ref().and_then(|r| r.uid.clone()) {
                                by_uid.entry(uid).or_default().push(port.port.unwrap_or(0));
                            }
                        }
                    }
                }
                if by_uid.is_empty() {
                    ensure!(
                        tokio::time::Instant::now() < deadline,
                        "timed out waiting for endpoints of {name}"
                    );
                    continue;
                }
                ensure!(by_uid.len() == 1, "Too many endpoints found: {by_uid:?}");
                for ports in by_uid.values() {
                    ensure!(
                        ports[0] == AGNHOST_PORT,
                        "Wrong endpoint port: {}",
                        ports[0]
                    );
                }
                break;
            }
            let svc = Api::<Service>::namespaced(ctx.client.clone(), &ctx.ns)
                .get(name)
                .await?;
            let ports = svc.spec.and_then(|s| s.ports).unwrap_or_default();
            ensure!(ports.len() == 1, "1 port is expected, got {ports:?}");
            ensure!(
                ports[0].port == service_port,
                "Wrong service port: {}",
                ports[0].port
            );
            let target = match &ports[0].target_port {
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i)) => *i,
                // intstr's IntValue: a string's integer value, else 0.
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s)) => {
                    s.parse().unwrap_or(0)
                }
                None => 0,
            };
            ensure!(target == AGNHOST_PORT, "Wrong target port: {target}");
            anyhow::Ok(())
        }
    };
    let wait_service = |name: &'static str| {
        let ctx = ctx.clone();
        async move {
            let svcs: Api<Service> = Api::namespaced(ctx.client.clone(), &ctx.ns);
            e2epod::eventually(
                SERVICE_START_TIMEOUT,
                POLL,
                &format!("service {name}"),
                || {
                    let svcs = svcs.clone();
                    async move {
                        match svcs.get_opt(name).await {
                            Ok(Some(_)) => Ok(()),
                            Ok(None) => Err("not found".to_string()),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                },
            )
            .await
        }
    };

    let target = format!("--target-port={AGNHOST_PORT}");
    kubectl(
        &ctx,
        &[
            "expose",
            "rc",
            "agnhost-primary",
            "--name=rm2",
            "--port=1234",
            &target,
        ],
    )
    .await?;
    wait_service("rm2").await?;
    validate_service("rm2", 1234).await?;

    kubectl(
        &ctx,
        &[
            "expose",
            "service",
            "rm2",
            "--name=rm3",
            "--port=2345",
            &target,
        ],
    )
    .await?;
    wait_service("rm3").await?;
    validate_service("rm3", 2345).await
}

/// Upstream's `pause-pod.yaml.in`.
fn pause_pod_yaml() -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: pause\n  labels:\n    name: pause\nspec:\n  containers:\n  - name: pause\n    image: {}\n    ports:\n    - containerPort: 80\n",
        pause_image()
    )
}

async fn label(ctx: Ctx) -> anyhow::Result<()> {
    let yaml = pause_pod_yaml();
    kubectl_input(&ctx, &yaml, &["create", "-f", "-"]).await?;
    let r = async {
        e2epod::wait_for(
            &e2epod::api(&ctx),
            "pause",
            e2epod::POD_START_TIMEOUT,
            "ready",
            e2epod::is_ready,
        )
        .await?;
        let (name, value) = ("testing-label", "testing-label-value");
        kubectl(
            &ctx,
            &["label", "pods", "pause", &format!("{name}={value}")],
        )
        .await?;
        let out = kubectl(&ctx, &["get", "pod", "pause", "-L", name]).await?;
        ensure!(
            out.contains(value),
            "Failed updating label {name} to the pod pause: {out}"
        );
        kubectl(&ctx, &["label", "pods", "pause", &format!("{name}-")]).await?;
        let out = kubectl(&ctx, &["get", "pod", "pause", "-L", name]).await?;
        ensure!(
            !out.contains(value),
            "Failed removing label {name} of the pod pause: {out}"
        );
        anyhow::Ok(())
    }
    .await;
    let cleanup = cleanup_kubectl_inputs(&ctx, &yaml, &["name=pause"]).await;
    r.and(cleanup)
}

async fn patch(ctx: Ctx) -> anyhow::Result<()> {
    kubectl_input(&ctx, &agnhost_controller_json(), &["create", "-f", "-"]).await?;
    wait_for_agnhost(&ctx, 1).await?;
    for p in running_agnhost_pods(&ctx).await? {
        let name = p.metadata.name.clone().unwrap_or_default();
        kubectl(
            &ctx,
            &[
                "patch",
                "pod",
                &name,
                "-p",
                r#"{"metadata":{"annotations":{"x":"y"}}}"#,
            ],
        )
        .await?;
    }
    for p in running_agnhost_pods(&ctx).await? {
        let found = p
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.get("x").map(String::as_str) == Some("y"));
        ensure!(
            found,
            "Added annotation not found on {:?}: {:?}",
            p.metadata.name,
            p.metadata.annotations
        );
    }
    Ok(())
}

const HTTPD_POD: &str = "e2e-test-httpd-pod";

async fn run_pod(ctx: Ctx) -> anyhow::Result<()> {
    let image = httpd_image();
    let r = async {
        kubectl(
            &ctx,
            &[
                "run",
                HTTPD_POD,
                "--restart=Never",
                POD_RUNNING_TIMEOUT_ARG,
                &format!("--image={image}"),
            ],
        )
        .await?;
        let pod = e2epod::api(&ctx)
            .get(HTTPD_POD)
            .await
            .with_context(|| format!("Failed getting pod {HTTPD_POD}"))?;
        ensure!(
            !containers_image_differs(&pod, &image),
            "Failed creating pod {HTTPD_POD} with expected image {image}"
        );
        let rp = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref());
        ensure!(
            rp == Some("Never"),
            "Failed creating a pod with correct restart policy for --restart=Never: {rp:?}"
        );
        anyhow::Ok(())
    }
    .await;
    let after = kubectl(&ctx, &["delete", "pods", HTTPD_POD])
        .await
        .map(drop);
    r.and(after)
}

async fn replace(ctx: Ctx) -> anyhow::Result<()> {
    let image = httpd_image();
    let r = async {
        kubectl(
            &ctx,
            &[
                "run",
                HTTPD_POD,
                &format!("--image={image}"),
                POD_RUNNING_TIMEOUT_ARG,
                &format!("--labels=run={HTTPD_POD}"),
            ],
        )
        .await?;
        // testutils.WaitForPodsWithLabelRunning
        e2epod::wait_for_running(&e2epod::api(&ctx), HTTPD_POD, e2epod::POD_START_TIMEOUT)
            .await
            .with_context(|| format!("Failed getting pod {HTTPD_POD}"))?;
        let json = kubectl(&ctx, &["get", "pod", HTTPD_POD, "-o", "json"]).await?;
        ensure!(
            json.contains(HTTPD_POD),
            "Failed to find pod {HTTPD_POD} in [{json}]"
        );
        let busybox = busybox_image();
        let json = json.replacen(&image, &busybox, 1);
        kubectl_input(&ctx, &json, &["replace", "-f", "-"]).await?;
        let pod = e2epod::api(&ctx)
            .get(HTTPD_POD)
            .await
            .with_context(|| format!("Failed getting pod {HTTPD_POD}"))?;
        ensure!(
            !containers_image_differs(&pod, &busybox),
            "Failed creating pod with expected image {busybox}"
        );
        anyhow::Ok(())
    }
    .await;
    let after = kubectl(&ctx, &["delete", "pods", HTTPD_POD])
        .await
        .map(drop);
    r.and(after)
}

async fn dry_run(ctx: Ctx) -> anyhow::Result<()> {
    let image = httpd_image();
    kubectl(
        &ctx,
        &[
            "run",
            HTTPD_POD,
            &format!("--image={image}"),
            POD_RUNNING_TIMEOUT_ARG,
            &format!("--labels=run={HTTPD_POD}"),
        ],
    )
    .await?;
    let spec = format!(
        r#"{{"spec":{{"containers":[{{"name": "{HTTPD_POD}","image": "{}"}}]}}}}"#,
        busybox_image()
    );
    kubectl(
        &ctx,
        &["patch", "pod", HTTPD_POD, "-p", &spec, "--dry-run=server"],
    )
    .await?;
    let pod = e2epod::api(&ctx)
        .get(HTTPD_POD)
        .await
        .with_context(|| format!("Failed getting pod {HTTPD_POD}"))?;
    ensure!(
        !containers_image_differs(&pod, &image),
        "Failed creating pod with expected image {image}"
    );
    kubectl(&ctx, &["delete", "pods", HTTPD_POD]).await?;
    Ok(())
}

async fn version(ctx: Ctx) -> anyhow::Result<()> {
    let out = kubectl(&ctx, &["version"]).await?;
    for item in ["Client Version: ", "Server Version: "] {
        let old = Regex::new(&format!(
            r#"{item}version.Info\{{Major:"\d", Minor:"\d+\+?", GitVersion:"v\d\.\d+\.[\d\w\-\.\+]+", GitCommit:"[0-9a-f]+""#
        ))?;
        let new = Regex::new(&format!(r"{item}v\d\.\d+\.[\d\w\-\.\+]+"))?;
        ensure!(
            old.is_match(&out) || new.is_match(&out),
            "Item {item} value is not valid in {out}"
        );
    }
    Ok(())
}

/// Reads the first chunk (at most 128 bytes) kubectl proxy writes to stdout, as upstream.
async fn first_output(child: &mut tokio::process::Child) -> anyhow::Result<String> {
    let stdout = child.stdout.as_mut().context("no stdout")?;
    let mut buf = [0u8; 128];
    let n = tokio::time::timeout(Duration::from_secs(60), stdout.read(&mut buf))
        .await
        .context("no output from kubectl proxy within a minute")??;
    ensure!(n > 0, "Expected output from kubectl proxy: EOF");
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A plain HTTP/1.0 GET on `stream`: the body.
async fn http_get<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    path: &str,
) -> anyhow::Result<String> {
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut resp))
        .await
        .context("no response within 30s")??;
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = resp
        .split_once("\r\n\r\n")
        .with_context(|| format!("not an HTTP response: {resp:?}"))?;
    ensure!(head.starts_with("HTTP/"), "not an HTTP response: {head:?}");
    Ok(body.to_string())
}

async fn proxy_port_zero(ctx: Ctx) -> anyhow::Result<()> {
    let mut child = kubectl_cmd(&ctx, &["proxy", "-p", "0", "--disable-filter"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("Failed to start proxy server")?;
    let r = async {
        let out = first_output(&mut child).await?;
        let port: u16 = Regex::new("Starting to serve on 127.0.0.1:([0-9]+)")?
            .captures(&out)
            .and_then(|c| c[1].parse().ok())
            .with_context(|| format!("Failed to parse port from proxy stdout: {out}"))?;
        let conn = tokio::net::TcpStream::connect(("localhost", port)).await?;
        let body = http_get(conn, "/api/").await?;
        let v: k8s_openapi::apimachinery::pkg::apis::meta::v1::APIVersions =
            serde_json::from_str(&body)
                .with_context(|| format!("Failed to parse /api output {body}"))?;
        ensure!(
            !v.versions.is_empty(),
            "Expected at least one supported apiversion, got {v:?}"
        );
        anyhow::Ok(())
    }
    .await;
    let _ = child.kill().await;
    r
}

async fn proxy_unix_socket(ctx: Ctx) -> anyhow::Result<()> {
    let dir =
        std::env::temp_dir().join(format!("kubectl-proxy-unix-{}", crate::random_lowercase(8)));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("test");
    let mut child = kubectl_cmd(
        &ctx,
        &["proxy", &format!("--unix-socket={}", path.display())],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .context("Failed to start kubectl command")?;
    let r = async {
        first_output(&mut child).await?;
        let conn = tokio::net::UnixStream::connect(&path)
            .await
            .with_context(|| format!("Failed get of /api at {}", path.display()))?;
        http_get(conn, "/api")
            .await
            .with_context(|| format!("Failed get of /api at {}", path.display()))?;
        anyhow::Ok(())
    }
    .await;
    let _ = child.kill().await;
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir(&dir);
    r
}

/// logs.go: a pod running agnhost's logs-generator (100 lines over 20 s), its logs through
/// `kubectl logs` with `--tail`, `--limit-bytes`, `--timestamps` and `--since`.
async fn logs(ctx: Ctx) -> anyhow::Result<()> {
    const POD: &str = "logs-generator";
    kubectl(
        &ctx,
        &[
            "run",
            POD,
            &format!("--image={}", agnhost_image()),
            "--restart=Never",
            POD_RUNNING_TIMEOUT_ARG,
            "--",
            "logs-generator",
            "--log-lines-total",
            "100",
            "--run-duration",
            "20s",
        ],
    )
    .await?;
    let r = async {
        // CheckPodsRunningReadyOrSucceeded
        e2epod::wait_for(&e2epod::api(&ctx), POD, e2epod::POD_START_TIMEOUT, "running and ready, or succeeded", |p| {
            e2epod::phase(p) == "Succeeded" || (e2epod::phase(p) == "Running" && e2epod::is_ready(p))
        })
        .await
        .with_context(|| format!("Pod {POD} was not ready"))?;
        look_for_string_in_log(&ctx, POD, POD, "/api/v1/namespaces/kube-system", e2epod::POD_START_TIMEOUT)
            .await?;
        let lines = |out: &str| -> Vec<String> {
            out.trim_end_matches('\n').split('\n').map(str::to_string).collect()
        };

        let out = kubectl(&ctx, &["logs", POD, POD, "--tail=1"]).await?;
        ensure!(!out.is_empty(), "--tail=1: empty output");
        ensure!(lines(&out).len() == 1, "--tail=1: {out:?}");

        let out = kubectl(&ctx, &["logs", POD, POD, "--limit-bytes=1"]).await?;
        ensure!(lines(&out).len() == 1, "--limit-bytes=1: {out:?}");
        ensure!(out.len() == 1, "--limit-bytes=1: {out:?}");

        let out = kubectl(&ctx, &["logs", POD, POD, "--tail=1", "--timestamps"]).await?;
        let l = lines(&out);
        ensure!(l.len() == 1, "--tail=1 --timestamps: {out:?}");
        let words: Vec<&str> = l[0].split(' ').collect();
        ensure!(words.len() > 1, "--timestamps: {out:?}");
        ensure!(
            words[0].parse::<k8s_openapi::jiff::Timestamp>().is_ok(),
            "expected {:?} to be RFC3339 or RFC3339Nano",
            words[0]
        );

        // The granularity is a second: wait so that the start is older than 1 s.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let recent_out = kubectl(&ctx, &["logs", POD, POD, "--since=1s"]).await?;
        let recent = recent_out.split('\n').count();
        let older_out = kubectl(&ctx, &["logs", POD, POD, "--since=24h"]).await?;
        let older = older_out.split('\n').count();
        ensure!(
            recent < older,
            "expected recent({recent}) to be less than older({older})\nrecent lines:\n{recent_out}\nolder lines:\n{older_out}"
        );
        anyhow::Ok(())
    }
    .await;
    let after = kubectl(&ctx, &["delete", "pod", POD]).await.map(drop);
    r.and(after)
}

// ---------------------------------------------------------------------------
// Update Demo
// ---------------------------------------------------------------------------

/// The image upstream's Update Demo calls nautilus
/// (`registry.k8s.io/e2e-test-images/nautilus:1.7`: agnhost with `data.json` and
/// `nautilus.jpg` in its working directory): `CONFORMANCE_NAUTILUS_IMAGE`, else rkube's
/// (scripts/images.sh: the test server image with those two files).
fn nautilus_image() -> String {
    std::env::var("CONFORMANCE_NAUTILUS_IMAGE")
        .unwrap_or_else(|_| "docker.io/rkube/nautilus:1.7".into())
}

/// Upstream's `update-demo/nautilus-rc.yaml.in`: two replicas serving their working
/// directory (`test-webserver`) on port 80.
fn nautilus_rc_yaml() -> String {
    format!(
        r#"apiVersion: v1
kind: ReplicationController
metadata:
  name: update-demo-nautilus
spec:
  replicas: 2
  selector:
    name: update-demo
    version: nautilus
  template:
    metadata:
      labels:
        name: update-demo
        version: nautilus
    spec:
      containers:
      - image: {}
        name: update-demo
        args: ["test-webserver"]
        ports:
        - containerPort: 80
          protocol: TCP
"#,
        nautilus_image()
    )
}

const UPDATE_DEMO_SELECTOR: &str = "name=update-demo";

/// Upstream's `trimDockerRegistry`.
fn trim_docker_registry(image: &str) -> &str {
    let image = image.strip_prefix("docker.io/").unwrap_or(image);
    image.strip_prefix("library/").unwrap_or(image)
}

/// Upstream's `getUDData(jpgExpected)`: the pod's `data.json`, read through pods/proxy,
/// names `jpg_expected`.
async fn ud_data(ctx: &Ctx, pod: &str, jpg_expected: &str) -> anyhow::Result<()> {
    let path = format!("/api/v1/namespaces/{}/pods/{pod}/proxy/data.json", ctx.ns);
    let (status, body) = tokio::time::timeout(
        Duration::from_secs(5 * 60),
        proxy::get_following_redirects(&ctx.client, &path),
    )
    .await
    .context("Failed to retrieve data from container")??;
    let body = String::from_utf8_lossy(&body);
    ensure!(status == http::StatusCode::OK, "{status}: {body}");
    let data: serde_json::Value = serde_json::from_str(&body)?;
    let image = data["image"].as_str().unwrap_or_default();
    ensure!(
        image.contains(jpg_expected),
        "data served up in container is inaccurate, {body} didn't contain {jpg_expected}"
    );
    Ok(())
}

/// Upstream's `validateController`: within `PodStartTimeout` (5 s between rounds),
/// exactly `replicas` pods match `selector`, each with `container` running the image
/// and serving the expected data.
async fn validate_controller(
    ctx: &Ctx,
    image: &str,
    replicas: usize,
    container: &str,
    selector: &str,
    jpg_expected: &str,
) -> anyhow::Result<()> {
    let image = trim_docker_registry(image);
    let pods_template = "--template={{range.items}}{{.metadata.name}} {{end}}";
    let state_template = format!(
        r#"--template={{{{if (exists . "status" "containerStatuses")}}}}{{{{range .status.containerStatuses}}}}{{{{if (and (eq .name "{container}") (exists . "state" "running"))}}}}true{{{{end}}}}{{{{end}}}}{{{{end}}}}"#
    );
    let image_template = format!(
        r#"--template={{{{if (exists . "spec" "containers")}}}}{{{{range .spec.containers}}}}{{{{if eq .name "{container}"}}}}{{{{.image}}}}{{{{end}}}}{{{{end}}}}{{{{end}}}}"#
    );
    let deadline = tokio::time::Instant::now() + e2epod::POD_START_TIMEOUT;
    let mut last = String::new();
    'round: while tokio::time::Instant::now() < deadline {
        let out = kubectl(
            ctx,
            &[
                "get",
                "pods",
                "-o",
                "template",
                pods_template,
                "-l",
                selector,
            ],
        )
        .await?;
        let pods: Vec<&str> = out.split_whitespace().collect();
        if pods.len() != replicas {
            last = format!(
                "Replicas for {selector}: expected={replicas} actual={}",
                pods.len()
            );
            tokio::time::sleep(Duration::from_secs(5)).await;
            continue;
        }
        for pod in &pods {
            let running = kubectl(
                ctx,
                &["get", "pods", pod, "-o", "template", &state_template],
            )
            .await?;
            if running != "true" {
                last = format!("{pod} is created but not running");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue 'round;
            }
            let current = kubectl(
                ctx,
                &["get", "pods", pod, "-o", "template", &image_template],
            )
            .await?;
            if trim_docker_registry(&current) != image {
                last = format!("{pod} is created but running wrong image; expected: {image}, actual: {current}");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue 'round;
            }
            if let Err(e) = ud_data(ctx, pod, jpg_expected).await {
                last = format!("{pod} is running right image but validator function failed: {e:#}");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue 'round;
            }
        }
        return Ok(());
    }
    bail!(
        "Timed out after {} seconds waiting for {selector} pods to reach valid state: {last}",
        e2epod::POD_START_TIMEOUT.as_secs()
    )
}

/// The nautilus RC made with `kubectl create`; its two pods serve; then, for each of
/// `scales`, `kubectl scale` to that many replicas, which serve; at the end `kubectl
/// delete` stops it (`cleanupKubectlInputs`: nothing left).
async fn update_demo(ctx: &Ctx, scales: &[usize]) -> anyhow::Result<()> {
    let rc = nautilus_rc_yaml();
    let image = nautilus_image();
    let validate = |replicas: usize| {
        let image = image.clone();
        async move {
            validate_controller(
                ctx,
                &image,
                replicas,
                "update-demo",
                UPDATE_DEMO_SELECTOR,
                "nautilus.jpg",
            )
            .await
        }
    };
    let result = async {
        kubectl_input(ctx, &rc, &["create", "-f", "-"]).await?;
        validate(2).await?;
        for n in scales {
            let replicas = format!("--replicas={n}");
            kubectl(
                ctx,
                &[
                    "scale",
                    "rc",
                    "update-demo-nautilus",
                    &replicas,
                    "--timeout=5m",
                ],
            )
            .await?;
            validate(*n).await?;
        }
        Ok(())
    }
    .await;
    let cleanup = cleanup_kubectl_inputs(ctx, &rc, &[UPDATE_DEMO_SELECTOR]).await;
    result.and(cleanup)
}

async fn update_demo_create_and_stop(ctx: Ctx) -> anyhow::Result<()> {
    update_demo(&ctx, &[]).await
}

/// Scaled 2 → 1 → 2.
async fn update_demo_scale(ctx: Ctx) -> anyhow::Result<()> {
    update_demo(&ctx, &[1, 2]).await
}
