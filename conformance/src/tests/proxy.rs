//! Proxy: upstream's test/e2e/network/proxy.go (pods/proxy and services/proxy).

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::api::{Api, ListParams, PostParams};
use serde_json::{json, Value};

use super::e2epod::{self, eventually};
use super::{agnhost_image, e2erc, test};
use crate::{Ctx, Test};

const AREA: &str = "Proxy";

/// Upstream's `proxyAttempts`: every case, this many times.
const PROXY_ATTEMPTS: usize = 20;
/// Upstream's `proxyHTTPCallTimeout`.
const PROXY_CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "Proxy, logs service endpoint",
            "[sig-network] Proxy version v1 should proxy through a service and a pod [Conformance]",
            through_service_and_pod
        ),
        test!(
            AREA,
            "Proxy, validate ProxyWithPath responses",
            "[sig-network] Proxy version v1 A set of valid responses are returned for both pod and service ProxyWithPath [Conformance]",
            proxy_with_path
        ),
        test!(
            AREA,
            "Proxy, validate Proxy responses",
            "[sig-network] Proxy version v1 A set of valid responses are returned for both pod and service Proxy [Conformance]",
            proxy_responses
        ),
    ]
}

/// A request through the client's transport: (status, body).
async fn request(
    client: &kube::Client,
    method: &str,
    path: &str,
) -> anyhow::Result<(http::StatusCode, Vec<u8>)> {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .body(kube::client::Body::from(Vec::new()))?;
    let resp = client.send(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect_bytes().await?;
    Ok((status, body.to_vec()))
}

/// A GET as client-go's: a redirect (the API server's 301 from `.../proxy` to
/// `.../proxy/`) is followed, up to 10 times.
pub(super) async fn get_following_redirects(
    client: &kube::Client,
    path: &str,
) -> anyhow::Result<(http::StatusCode, Vec<u8>)> {
    let mut path = path.to_string();
    for _ in 0..10 {
        let req = http::Request::get(&path).body(kube::client::Body::from(Vec::new()))?;
        let resp = client.send(req).await?;
        let status = resp.status();
        let location = resp
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match location {
            Some(to) if status.is_redirection() => path = to,
            _ => return Ok((status, resp.into_body().collect_bytes().await?.to_vec())),
        }
    }
    bail!("GET {path}: stopped after 10 redirects")
}

/// Go's `net.JoinSchemeNamePort`.
fn join_scheme_name_port(scheme: &str, name: &str, port: &str) -> String {
    match (scheme, port) {
        ("", "") => name.to_string(),
        ("", p) => format!("{name}:{p}"),
        (s, p) => format!("{s}:{name}:{p}"),
    }
}

/// Upstream's `waitForEndpoint`: a minute for the Endpoints to have an address.
async fn wait_for_endpoint(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let eps: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    eventually(
        Duration::from_secs(60),
        Duration::from_secs(2),
        &format!("endpoints of {name}"),
        || async {
            let e = eps
                .get_opt(name)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("Endpoint is not ready yet (not found)")?;
            let ready = e
                .subsets
                .as_ref()
                .and_then(|s| s.first())
                .is_some_and(|s| s.addresses.as_ref().is_some_and(|a| !a.is_empty()));
            ready
                .then_some(())
                .ok_or_else(|| "Endpoint is not ready yet".to_string())
        },
    )
    .await
}

/// An RC with one porter pod serving on many ports (plain and TLS), a service over named
/// and numbered target ports; every path through services/proxy and pods/proxy gives
/// the port's text (HTML links rewritten under the proxy path), 20 times each, in
/// parallel, each under 30 s.
async fn through_service_and_pod(ctx: Ctx) -> anyhow::Result<()> {
    let start = Instant::now();
    let labels = json!({"proxy-service-target": "true"});
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"generateName": "proxy-service-"},
        "spec": {
            "selector": labels,
            "ports": [
                {"name": "portname1", "port": 80, "targetPort": "dest1"},
                {"name": "portname2", "port": 81, "targetPort": 162},
                {"name": "tlsportname1", "port": 443, "targetPort": "tlsdest1"},
                {"name": "tlsportname2", "port": 444, "targetPort": 462},
            ],
        },
    }))?;
    let svc = services
        .create(&PostParams::default(), &svc)
        .await
        .context("creating the service")?;
    let svc_name = svc.metadata.name.clone().unwrap_or_default();

    // starting an echo server on multiple ports
    let env = [
        ("SERVE_PORT_80", r#"<a href="/rewriteme">test</a>"#),
        ("SERVE_PORT_1080", r#"<a href="/rewriteme">test</a>"#),
        ("SERVE_PORT_160", "foo"),
        ("SERVE_PORT_162", "bar"),
        ("SERVE_TLS_PORT_443", r#"<a href="/tlsrewriteme">test</a>"#),
        ("SERVE_TLS_PORT_460", "tls baz"),
        ("SERVE_TLS_PORT_462", "tls qux"),
    ];
    let container = json!({
        "image": agnhost_image(),
        "command": ["/agnhost", "porter"],
        "env": env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
        "ports": [
            {"name": "dest1", "containerPort": 160},
            {"name": "dest2", "containerPort": 162},
            {"name": "tlsdest1", "containerPort": 460},
            {"name": "tlsdest2", "containerPort": 462},
        ],
        "readinessProbe": {
            "httpGet": {"port": 80},
            "initialDelaySeconds": 1,
            "timeoutSeconds": 5,
            "periodSeconds": 10,
        },
    });
    let pods = e2erc::run(&ctx, &svc_name, 1, &labels, container).await?;
    let result = async {
        wait_for_endpoint(&ctx, &svc_name).await?;
        let pod_name = pods[0].metadata.name.clone().unwrap_or_default();
        let prefix = format!("/api/v1/namespaces/{}", ctx.ns);
        let svc_url = |scheme: &str, port: &str| {
            format!(
                "{prefix}/services/{}/proxy",
                join_scheme_name_port(scheme, &svc_name, port)
            )
        };
        let pod_url = |scheme: &str, port: &str| {
            format!(
                "{prefix}/pods/{}/proxy",
                join_scheme_name_port(scheme, &pod_name, port)
            )
        };
        let rewritten = |url: String, to: &str| format!(r#"<a href="{url}/{to}">test</a>"#);
        let expectations: Vec<(String, String)> = vec![
            (svc_url("", "portname1") + "/", "foo".into()),
            (svc_url("http", "portname1") + "/", "foo".into()),
            (svc_url("", "portname2") + "/", "bar".into()),
            (svc_url("http", "portname2") + "/", "bar".into()),
            (svc_url("https", "tlsportname1") + "/", "tls baz".into()),
            (svc_url("https", "tlsportname2") + "/", "tls qux".into()),
            (pod_url("", "") + "/", rewritten(pod_url("", ""), "rewriteme")),
            (pod_url("", "1080") + "/", rewritten(pod_url("", "1080"), "rewriteme")),
            (pod_url("http", "1080") + "/", rewritten(pod_url("http", "1080"), "rewriteme")),
            (pod_url("", "160") + "/", "foo".into()),
            (pod_url("http", "160") + "/", "foo".into()),
            (pod_url("", "162") + "/", "bar".into()),
            (pod_url("http", "162") + "/", "bar".into()),
            (pod_url("https", "443") + "/", rewritten(pod_url("https", "443"), "tlsrewriteme")),
            (pod_url("https", "460") + "/", "tls baz".into()),
            (pod_url("https", "462") + "/", "tls qux".into()),
        ];
        eprintln!(
            "setup took {:?}, running {} cases, {PROXY_ATTEMPTS} attempts per case, {} total attempts",
            start.elapsed(),
            expectations.len(),
            expectations.len() * PROXY_ATTEMPTS
        );
        let mut errs = Vec::new();
        for i in 0..PROXY_ATTEMPTS {
            let round = expectations.iter().map(|(path, want)| {
                let client = ctx.client.clone();
                async move {
                    let t = Instant::now();
                    let got = request(&client, "GET", path).await;
                    let d = t.elapsed();
                    let mut errs = Vec::new();
                    match got {
                        Err(e) => errs.push(format!("{i}: path {path} gave error: {e}")),
                        Ok((status, body)) => {
                            let body = String::from_utf8_lossy(&body);
                            if status != http::StatusCode::OK {
                                errs.push(format!("{i}: path {path} gave status: {status}: {body}"));
                            } else if body != *want {
                                errs.push(format!("{i}: path {path}: wanted {want}, got {body}"));
                            }
                        }
                    }
                    if d > PROXY_CALL_TIMEOUT {
                        errs.push(format!("{i}: path {path} took {d:?} > {PROXY_CALL_TIMEOUT:?}"));
                    }
                    errs
                }
            });
            for e in futures::future::join_all(round).await {
                errs.extend(e);
            }
        }
        if !errs.is_empty() {
            bail!("{}", errs.join("\n"));
        }
        Ok(())
    }
    .await;
    e2erc::delete_and_wait_for_gc(&ctx, &svc_name).await?;
    result
}

/// The porter pod `agnhost` (`--json-response`, port 80 answers "foo") labelled `key:
/// value`, running, and the service `svc` in front of it.
async fn porter_and_service(ctx: &Ctx, key: &str, value: &str, svc: &str) -> anyhow::Result<()> {
    let pods = e2epod::api(ctx);
    let pod = e2epod::pod(json!({
        "metadata": {"name": "agnhost", "labels": {key: value}},
        "spec": {
            "containers": [{
                "image": agnhost_image(),
                "name": "agnhost",
                "command": ["/agnhost", "porter", "--json-response"],
                "env": [{"name": "SERVE_PORT_80", "value": "foo"}],
            }],
            "restartPolicy": "Never",
        },
    }))?;
    pods.create(&PostParams::default(), &pod)
        .await
        .context("failed to create pod")?;
    // checkPodStatus: 1 s polls for a minute until the labelled pod is Running.
    let selector = format!("{key}={value}");
    eventually(
        Duration::from_secs(60),
        Duration::from_secs(1),
        "Pod didn't start within time out period",
        || async {
            let list = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| e.to_string())?;
            let phase = list.items.first().map(e2epod::phase).unwrap_or_default();
            (phase == "Running")
                .then_some(())
                .ok_or_else(|| format!("Pod Quantity: {} Status: {phase}", list.items.len()))
        },
    )
    .await?;
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let s: Service = serde_json::from_value(json!({
        "metadata": {"name": svc, "namespace": ctx.ns, "labels": {key: value}},
        "spec": {
            "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}],
            "selector": {key: value},
        },
    }))?;
    services
        .create(&PostParams::default(), &s)
        .await
        .context("Failed to create the service")?;
    Ok(())
}

/// Upstream's `validateProxyVerbRequest`, polled (10 ms, a minute): 200, and for all but
/// HEAD a JSON body naming the method and the porter's text.
async fn validate_proxy_verb_request(
    client: &kube::Client,
    url: &str,
    verb: &str,
    msg: &str,
) -> anyhow::Result<()> {
    eventually(
        Duration::from_secs(60),
        Duration::from_millis(10),
        &format!("{verb} {url} to answer"),
        || async {
            let (status, body) = request(client, verb, url)
                .await
                .map_err(|e| e.to_string())?;
            if verb == "HEAD" {
                return (status == http::StatusCode::OK)
                    .then_some(())
                    .ok_or_else(|| format!("StatusCode:{status}"));
            }
            let jr: Value = serde_json::from_slice(&body)
                .map_err(|e| format!("Failed to process jsonResponse. {e}"))?;
            let ok = status == http::StatusCode::OK && jr["Body"] == msg && jr["Method"] == verb;
            ok.then_some(()).ok_or_else(|| {
                format!(
                    "StatusCode:{status} | Response:{} | Method:{}",
                    jr["Body"], jr["Method"]
                )
            })
        },
    )
    .await
}

/// Every method through pods/proxy/{path} and services/proxy/{path} reaches the pod.
async fn proxy_with_path(ctx: Ctx) -> anyhow::Result<()> {
    porter_and_service(&ctx, "test", "response", "test-service").await?;
    let ns = &ctx.ns;
    for kind in ["pods/agnhost", "services/test-service"] {
        for verb in ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"] {
            let url = format!("/api/v1/namespaces/{ns}/{kind}/proxy/some/path/with/{verb}");
            validate_proxy_verb_request(&ctx.client, &url, verb, "foo").await?;
        }
    }
    Ok(())
}

/// Upstream's `validateRedirectRequest`: 301.
async fn validate_redirect_request(
    client: &kube::Client,
    verb: &str,
    url: &str,
) -> anyhow::Result<()> {
    let (status, _) = request(client, verb, url).await?;
    ensure!(
        status == http::StatusCode::MOVED_PERMANENTLY,
        "{verb} {url}: the resp.StatusCode returned: {status}, expected 301"
    );
    Ok(())
}

/// Every method but GET and HEAD through pods/proxy and services/proxy (no path) reaches
/// the pod; GET and HEAD there are redirected (301) to the path with a slash.
async fn proxy_responses(ctx: Ctx) -> anyhow::Result<()> {
    porter_and_service(
        &ctx,
        "e2e-test",
        "proxy-endpoints",
        "e2e-proxy-test-service",
    )
    .await?;
    let ns = &ctx.ns;
    let kinds = ["pods/agnhost", "services/e2e-proxy-test-service"];
    for kind in kinds {
        for verb in ["DELETE", "OPTIONS", "PATCH", "POST", "PUT"] {
            let url = format!("/api/v1/namespaces/{ns}/{kind}/proxy?method={verb}");
            validate_proxy_verb_request(&ctx.client, &url, verb, "foo").await?;
        }
    }
    for verb in ["GET", "HEAD"] {
        for kind in kinds {
            let url = format!("/api/v1/namespaces/{ns}/{kind}/proxy?method={verb}");
            validate_redirect_request(&ctx.client, verb, &url).await?;
        }
    }
    Ok(())
}
