//! The server's own surface: authentication, health, version, metrics, discovery, the
//! join token, and restarts reusing the generated PKI.

mod support;

use support::{json, raw, Cluster};

/// A client with no credentials (trusting the cluster CA).
fn anonymous(c: &Cluster) -> kube::Client {
    let mut cfg = c.client_config();
    cfg.auth_info = Default::default();
    kube::Client::try_from(cfg).unwrap()
}

fn with_token(c: &Cluster, token: &str) -> kube::Client {
    let mut cfg = c.client_config();
    cfg.auth_info = kube::config::AuthInfo {
        token: Some(token.to_string().into()),
        ..Default::default()
    };
    kube::Client::try_from(cfg).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_requests_get_401_except_health_and_version() {
    let c = Cluster::start();
    let anon = anonymous(&c);
    for path in ["/healthz", "/livez", "/readyz"] {
        let (code, body) = raw(&anon, "GET", path, None, vec![]).await;
        assert_eq!((code, body.as_slice()), (200, b"ok".as_slice()), "{path}");
    }
    let (code, body) = raw(&anon, "GET", "/version", None, vec![]).await;
    assert_eq!(code, 200);
    let v = json(&body);
    assert_eq!(
        (v["major"].as_str(), v["minor"].as_str()),
        (Some("1"), Some("33"))
    );
    for path in [
        "/api/v1/namespaces",
        "/api",
        "/apis",
        "/metrics",
        "/openapi/v3",
    ] {
        let (code, body) = raw(&anon, "GET", path, None, vec![]).await;
        assert_eq!(code, 401, "{path}");
        let s = json(&body);
        assert_eq!(
            (s["reason"].as_str(), s["code"].as_u64()),
            (Some("Unauthorized"), Some(401))
        );
    }
    // The join token authenticates as a bearer token; a wrong one does not.
    let token = std::fs::read_to_string(c.dir.path().join("server/token")).unwrap();
    assert!(
        token.starts_with("K10") && token.contains("::server:"),
        "{token}"
    );
    let (code, _) = raw(
        &with_token(&c, token.trim()),
        "GET",
        "/api/v1/namespaces",
        None,
        vec![],
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = raw(
        &with_token(&c, "K10bogus::server:nope"),
        "GET",
        "/api/v1/namespaces",
        None,
        vec![],
    )
    .await;
    assert_eq!(code, 401);
}

/// Secrets: no controller of the server's own reads them (its requests count too, and the
/// root CA publisher looks for ConfigMaps that are not there yet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_verb_resource_and_code() {
    let c = Cluster::start();
    let client = c.client();
    for _ in 0..3 {
        raw(
            &client,
            "GET",
            "/api/v1/namespaces/default/secrets",
            None,
            vec![],
        )
        .await;
    }
    raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/secrets/missing",
        None,
        vec![],
    )
    .await;
    let (code, body) = raw(&client, "GET", "/metrics", None, vec![]).await;
    assert_eq!(code, 200);
    let text = String::from_utf8(body).unwrap();
    let line = |prefix: &str| -> Option<u64> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
    };
    assert_eq!(
        line("apiserver_request_total{code=\"200\",component=\"apiserver\",group=\"\",resource=\"secrets\",scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1\",dry_run=\"\"}"),
        Some(3),
        "{text}"
    );
    assert_eq!(
        line("apiserver_request_total{code=\"404\",component=\"apiserver\",group=\"\",resource=\"secrets\",scope=\"resource\",subresource=\"\",verb=\"GET\",version=\"v1\",dry_run=\"\"}"),
        Some(1),
        "{text}"
    );
    assert!(text.contains("# TYPE apiserver_request_duration_seconds histogram"));
    assert_eq!(
        line("apiserver_request_duration_seconds_count{component=\"apiserver\",group=\"\",resource=\"secrets\",scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1\",dry_run=\"\"}"),
        Some(3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reuses_the_pki_and_keeps_the_state() {
    let mut c = Cluster::start();
    let ca = std::fs::read(c.dir.path().join("server/tls/server-ca.crt")).unwrap();
    let kubeconfig = std::fs::read(&c.kubeconfig).unwrap();
    let client = c.client();
    let (code, _) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some("application/json"),
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"kept"}}"#.to_vec(),
    )
    .await;
    assert_eq!(code, 201);
    c.restart();
    assert_eq!(
        std::fs::read(c.dir.path().join("server/tls/server-ca.crt")).unwrap(),
        ca
    );
    // The kubeconfig written again carries the same CA and admin credentials.
    let cred = |k: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(k)
            .lines()
            .filter(|l| l.contains("-data:"))
            .map(str::to_string)
            .collect()
    };
    let again = std::fs::read(&c.kubeconfig).unwrap();
    assert_eq!(cred(&again).len(), 3);
    assert_eq!(cred(&again), cred(&kubeconfig));
    let (code, _) = raw(
        &c.client(),
        "GET",
        "/api/v1/namespaces/default/configmaps/kept",
        None,
        vec![],
    )
    .await;
    assert_eq!(code, 200);
}
