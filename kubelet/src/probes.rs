//! Liveness, readiness and startup probes as upstream's prober (`pkg/kubelet/prober`):
//! exec (CRI ExecSync with the probe's timeout), httpGet (from this host to the pod's
//! IP, 200–399 succeeds) and tcpSocket; `initialDelaySeconds`, `periodSeconds`,
//! `timeoutSeconds`, `successThreshold` and `failureThreshold` as upstream counts them.
//!
//! A container's probes start with its container id: readiness starts as failure,
//! liveness as success, startup as unknown (not started). Until the startup probe has
//! succeeded, the other two do not run. A result flips only after `threshold`
//! consecutive outcomes of the other kind. A liveness or startup failure puts its
//! worker on hold until the container is replaced (upstream's `onHold`); the pod worker
//! then kills the container, and the restart policy and back-off take over.
//!
//! [`Tracker`] is pure (it is told outcomes and times); [`run`] performs one probe.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::cri::Cri;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Liveness,
    Readiness,
    Startup,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::Startup => "Startup",
        }
    }
}

/// The probe's settings with upstream's defaults.
#[derive(Clone, Debug)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(p: &Probe) -> Timing {
        let secs = |v: Option<i32>, d: i32| Duration::from_secs(v.unwrap_or(d).max(0) as u64);
        Timing {
            initial_delay: secs(p.initial_delay_seconds, 0),
            period: secs(p.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(p.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

/// One probe of one container (upstream's probe worker, without its goroutine).
#[derive(Clone, Debug)]
pub struct Tracker {
    pub kind: Kind,
    pub timing: Timing,
    /// The result in force.
    pub result: Option<bool>,
    last: Option<bool>,
    run: u32,
    next_at: Option<Instant>,
    pub on_hold: bool,
}

impl Tracker {
    pub fn new(kind: Kind, probe: &Probe) -> Tracker {
        Tracker {
            kind,
            timing: Timing::of(probe),
            result: match kind {
                Kind::Liveness => Some(true),
                Kind::Readiness => Some(false),
                Kind::Startup => None,
            },
            last: None,
            run: 0,
            next_at: None,
            on_hold: false,
        }
    }

    /// Whether a probe is due at `now` for a container running since `running_since`.
    pub fn due(&self, now: Instant, running_since: Instant) -> bool {
        !self.on_hold
            && now.duration_since(running_since) >= self.timing.initial_delay
            && self.next_at.is_none_or(|t| now >= t)
    }

    /// Records an outcome at `now`; returns whether the result in force changed.
    pub fn record(&mut self, ok: bool, now: Instant) -> bool {
        self.next_at = Some(now + self.timing.period);
        if self.last == Some(ok) {
            self.run += 1;
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let threshold = if ok {
            self.timing.success_threshold
        } else {
            self.timing.failure_threshold
        };
        if self.run < threshold {
            return false;
        }
        let changed = self.result != Some(ok);
        self.result = Some(ok);
        if !ok && matches!(self.kind, Kind::Liveness | Kind::Startup) {
            self.on_hold = true;
            self.run = 0;
        }
        changed
    }
}

/// The probes of one container (for one container id).
#[derive(Clone, Debug)]
pub struct Probes {
    pub container_id: String,
    pub running_since: Instant,
    pub startup: Option<Tracker>,
    pub liveness: Option<Tracker>,
    pub readiness: Option<Tracker>,
}

impl Probes {
    pub fn new(c: &Container, container_id: &str, running_since: Instant) -> Probes {
        Probes {
            container_id: container_id.to_string(),
            running_since,
            startup: c
                .startup_probe
                .as_ref()
                .map(|p| Tracker::new(Kind::Startup, p)),
            liveness: c
                .liveness_probe
                .as_ref()
                .map(|p| Tracker::new(Kind::Liveness, p)),
            readiness: c
                .readiness_probe
                .as_ref()
                .map(|p| Tracker::new(Kind::Readiness, p)),
        }
    }

    /// `started`: the startup probe succeeded (or there is none).
    pub fn started(&self) -> bool {
        self.startup.as_ref().is_none_or(|t| t.result == Some(true))
    }

    /// `ready`: started, and the readiness probe succeeds (or there is none).
    pub fn ready(&self) -> bool {
        self.started()
            && self
                .readiness
                .as_ref()
                .is_none_or(|t| t.result == Some(true))
    }

    /// The probes to run now (startup gates the others).
    pub fn due(&self, now: Instant) -> Vec<Kind> {
        if let Some(s) = &self.startup {
            if s.result != Some(true) {
                return if s.due(now, self.running_since) {
                    vec![Kind::Startup]
                } else {
                    vec![]
                };
            }
        }
        [&self.liveness, &self.readiness]
            .into_iter()
            .flatten()
            .filter(|t| t.due(now, self.running_since))
            .map(|t| t.kind)
            .collect()
    }

    pub fn tracker(&mut self, kind: Kind) -> Option<&mut Tracker> {
        match kind {
            Kind::Liveness => self.liveness.as_mut(),
            Kind::Readiness => self.readiness.as_mut(),
            Kind::Startup => self.startup.as_mut(),
        }
    }
}

pub fn probe_of(c: &Container, kind: Kind) -> Option<&Probe> {
    match kind {
        Kind::Liveness => c.liveness_probe.as_ref(),
        Kind::Readiness => c.readiness_probe.as_ref(),
        Kind::Startup => c.startup_probe.as_ref(),
    }
}

/// A port by number or by the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, c: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) if (1..=65535).contains(n) => Ok(*n as u16),
        IntOrString::Int(n) => Err(format!("invalid port number: {n}")),
        IntOrString::String(s) => {
            if let Ok(n) = s.parse::<i32>() {
                return resolve_port(&IntOrString::Int(n), c);
            }
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(s.as_str()))
                .map(|p| p.container_port as u16)
                .ok_or_else(|| format!("couldn't find port: {s}"))
        }
    }
}

/// What a handler (probe or hook) does: exec, httpGet, tcpSocket, grpc or sleep.
pub enum Action {
    /// A `grpc.health.v1.Health/Check` of `service` (probes only).
    Grpc {
        host: String,
        port: u16,
        service: String,
    },
    Exec(Vec<String>),
    Http {
        scheme: String,
        host: String,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    Tcp {
        host: String,
        port: u16,
    },
    Sleep(Duration),
}

/// The action of a probe, toward the pod's IP.
pub fn action_of(p: &Probe, c: &Container, pod_ip: &str) -> Result<Action, String> {
    if let Some(e) = &p.exec {
        return Ok(Action::Exec(e.command.clone().unwrap_or_default()));
    }
    if let Some(h) = &p.http_get {
        return http_action(h, c, pod_ip);
    }
    if let Some(t) = &p.tcp_socket {
        return Ok(Action::Tcp {
            host: t
                .host
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| pod_ip.to_string()),
            port: resolve_port(&t.port, c)?,
        });
    }
    if let Some(g) = &p.grpc {
        return Ok(Action::Grpc {
            host: pod_ip.to_string(),
            port: u16::try_from(g.port).map_err(|_| format!("invalid port number: {}", g.port))?,
            service: g.service.clone().unwrap_or_default(),
        });
    }
    Err("missing probe handler".into())
}

pub fn http_action(
    h: &k8s_openapi::api::core::v1::HTTPGetAction,
    c: &Container,
    pod_ip: &str,
) -> Result<Action, String> {
    let mut path = h.path.clone().unwrap_or_default();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    Ok(Action::Http {
        scheme: h.scheme.clone().unwrap_or_else(|| "HTTP".into()),
        host: h
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| pod_ip.to_string()),
        port: resolve_port(&h.port, c)?,
        path,
        headers: h
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect(),
    })
}

/// Runs an action with a timeout: success and its output, or failure and why.
pub async fn run(
    cri: &Cri,
    container_id: &str,
    action: &Action,
    timeout: Duration,
) -> Result<String, String> {
    match action {
        Action::Exec(cmd) => {
            let secs = timeout.as_secs().max(1) as i64;
            let r = tokio::time::timeout(
                timeout + Duration::from_secs(2),
                cri.exec_sync(container_id, cmd.clone(), secs),
            )
            .await;
            match r {
                Ok(Ok((0, out))) => Ok(out),
                Ok(Ok((_, out))) => Err(out),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("command {:?} timed out", cmd.join(" "))),
            }
        }
        Action::Http {
            scheme,
            host,
            port,
            path,
            headers,
        } => {
            let tls = scheme.eq_ignore_ascii_case("HTTPS");
            if !tls && !scheme.eq_ignore_ascii_case("HTTP") {
                return Err(format!("unsupported scheme: {scheme}"));
            }
            match tokio::time::timeout(timeout, http_get(tls, host, *port, path, headers)).await {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "Get \"{}://{}{path}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                    if tls { "https" } else { "http" },
                    host_port(host, *port)
                )),
            }
        }
        Action::Tcp { host, port } => {
            let addr = host_port(host, *port);
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
                Ok(Ok(_)) => Ok(String::new()),
                Ok(Err(e)) => Err(format!("dial tcp {addr}: connect: {}", io_reason(&e))),
                Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
            }
        }
        Action::Sleep(d) => {
            tokio::time::sleep((*d).min(timeout)).await;
            Ok(String::new())
        }
        Action::Grpc {
            host,
            port,
            service,
        } => grpc_check(host, *port, service, timeout).await,
    }
}

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

/// `grpc.health.v1.HealthCheckResponse` (status 1 is SERVING).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// The names of `HealthCheckResponse.ServingStatus`.
fn serving_status_name(s: i32) -> String {
    match s {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        n => n.to_string(),
    }
}

/// upstream's gRPC prober (pkg/probe/grpc): a plain-text connection to `host:port` and a
/// `grpc.health.v1.Health/Check` of `service`, within `timeout`; SERVING succeeds, with
/// upstream's messages for each failure.
pub async fn grpc_check(
    host: &str,
    port: u16,
    service: &str,
    timeout: Duration,
) -> Result<String, String> {
    let addr = host_port(host, port);
    let ep = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("error: failed to connect service at {addr:?}: {e}"))?
        .user_agent("kube-probe/1.33")
        .map_err(|e| format!("error: failed to connect service at {addr:?}: {e}"))?
        .connect_timeout(timeout);
    let ch = match tokio::time::timeout(timeout, ep.connect()).await {
        Ok(Ok(ch)) => ch,
        Ok(Err(e)) => return Err(format!("error: failed to connect service at {addr:?}: {e}")),
        Err(_) => {
            return Err(format!(
                "timeout: failed to connect service {addr:?} within {timeout:?}"
            ))
        }
    };
    let mut g = tonic::client::Grpc::new(ch);
    let call = async {
        g.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        g.unary(
            tonic::Request::new(HealthCheckRequest {
                service: service.to_string(),
            }),
            http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check"),
            tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default(),
        )
        .await
    };
    let resp = match tokio::time::timeout(timeout, call).await {
        Ok(Ok(r)) => r.into_inner(),
        Ok(Err(s)) if s.code() == tonic::Code::Unimplemented => {
            return Err(format!("error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}", s.message()))
        }
        Ok(Err(s)) if s.code() == tonic::Code::DeadlineExceeded => {
            return Err(format!("timeout: health rpc did not complete within {timeout:?}"))
        }
        Ok(Err(s)) => return Err(format!("error: health rpc probe failed: {s}")),
        Err(_) => return Err(format!("timeout: health rpc did not complete within {timeout:?}")),
    };
    if resp.status != 1 {
        return Err(format!(
            "service unhealthy (responded with {:?})",
            serving_status_name(resp.status)
        ));
    }
    Ok("service healthy".into())
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        _ => e.to_string(),
    }
}

/// upstream's HTTPS probes do not verify the server's certificate.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

/// A GET as upstream's HTTP prober makes it (`kube-probe/<version>`, 200–399 succeeds;
/// the first 10 KiB of the body are the output; HTTPS without verification).
pub(crate) async fn http_get(
    tls: bool,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> Result<String, String> {
    let addr = host_port(host, port);
    let url = format!("{}://{addr}{path}", if tls { "https" } else { "http" });
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("Get {url:?}: dial tcp {addr}: connect: {}", io_reason(&e)))?;
    let mut req = format!("GET {path} HTTP/1.1\r\n");
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if !has("host") {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    if !has("user-agent") {
        req.push_str("User-Agent: kube-probe/1.33\r\n");
    }
    if !has("accept") {
        req.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    let buf = if tls {
        let name =
            ServerName::try_from(host.to_string()).map_err(|e| format!("Get {url:?}: {e}"))?;
        let s = tls_connector()?
            .connect(name, tcp)
            .await
            .map_err(|e| format!("Get {url:?}: {e}"))?;
        exchange(s, &req).await
    } else {
        exchange(tcp, &req).await
    }
    .map_err(|e| format!("Get {url:?}: {e}"))?;
    let text = String::from_utf8_lossy(&buf);
    let code: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("Get {url:?}: malformed HTTP response"))?;
    let body: String = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.chars().take(10 * 1024).collect())
        .unwrap_or_default();
    if (200..400).contains(&code) {
        Ok(body)
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

/// Sends the request and reads the response (to its end or 16 KiB).
async fn exchange<S>(mut s: S, req: &str) -> std::io::Result<Vec<u8>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(req.as_bytes()).await?;
    s.flush().await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match s.read(&mut chunk).await {
            Ok(n) => n,
            // A TLS peer that closes without close_notify still answered.
            Err(e) if !buf.is_empty() && e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e),
        };
        if n == 0 || buf.len() > 16 * 1024 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(json: serde_json::Value) -> Probe {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_grpc_probe_checks_the_pod_ip_and_its_port() {
        let c: Container = serde_json::from_value(serde_json::json!({"name": "c"})).unwrap();
        let p = probe(serde_json::json!({"grpc": {"port": 5000, "service": "s"}}));
        match action_of(&p, &c, "10.0.0.7") {
            Ok(Action::Grpc {
                host,
                port,
                service,
            }) => assert_eq!(
                (host.as_str(), port, service.as_str()),
                ("10.0.0.7", 5000, "s")
            ),
            _ => panic!("not a grpc action"),
        }
        let p = probe(serde_json::json!({"grpc": {"port": 70000}}));
        assert!(action_of(&p, &c, "10.0.0.7").is_err());
        assert_eq!(serving_status_name(2), "NOT_SERVING");
    }

    #[tokio::test]
    async fn a_grpc_probe_fails_as_upstream_says() {
        // Nothing listens: a connection failure.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = grpc_check("127.0.0.1", port, "", Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(e.starts_with("error: failed to connect service at"), "{e}");
        // A server that accepts and never answers: the RPC times out.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((c, _)) = l.accept().await {
                conns.push(c);
            }
        });
        let e = grpc_check("127.0.0.1", port, "", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(e.starts_with("timeout: "), "{e}");
        held.abort();
    }

    #[test]
    fn thresholds_and_initial_results() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut r = Tracker::new(
            Kind::Readiness,
            &probe(
                serde_json::json!({"periodSeconds": 2, "successThreshold": 2,
                                      "failureThreshold": 2, "initialDelaySeconds": 3}),
            ),
        );
        assert_eq!(r.result, Some(false));
        assert!(!r.due(s(1), t0), "initial delay");
        assert!(r.due(s(3), t0));
        assert!(!r.record(true, s(3)), "one success of two");
        assert!(!r.due(s(4), t0), "period");
        assert!(r.record(true, s(5)));
        assert_eq!(r.result, Some(true));
        assert!(!r.record(false, s(7)));
        assert!(!r.record(true, s(9)), "the failure run is broken");
        assert!(!r.record(false, s(11)));
        assert!(r.record(false, s(13)));
        assert_eq!(r.result, Some(false));
        assert!(!r.on_hold, "readiness keeps probing");

        let mut l = Tracker::new(Kind::Liveness, &probe(serde_json::json!({})));
        assert_eq!(l.result, Some(true));
        assert_eq!(l.timing.period, Duration::from_secs(10));
        assert!(!l.record(false, s(0)));
        assert!(!l.record(false, s(10)));
        assert!(l.record(false, s(20)));
        assert!(l.on_hold && !l.due(s(100), t0));
    }

    /// A one-shot server on loopback answering `status` (over TLS with `tls`); its port
    /// and the request it got.
    async fn serve(tls: bool, status: &'static str) -> (u16, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let acceptor = tls.then(|| {
            let kp = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
                .unwrap()
                .self_signed(&kp)
                .unwrap();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let cfg = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![cert.der().clone()],
                    rustls::pki_types::PrivateKeyDer::try_from(kp.serialize_der()).unwrap(),
                )
                .unwrap();
            tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
        });
        let task = tokio::spawn(async move {
            let (tcp, _) = l.accept().await.unwrap();
            let reply = format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\nok");
            let mut buf = vec![0u8; 4096];
            match acceptor {
                Some(a) => {
                    let mut s = a.accept(tcp).await.unwrap();
                    let n = s.read(&mut buf).await.unwrap();
                    s.write_all(reply.as_bytes()).await.unwrap();
                    s.shutdown().await.unwrap();
                    String::from_utf8_lossy(&buf[..n]).into_owned()
                }
                None => {
                    let mut s = tcp;
                    let n = s.read(&mut buf).await.unwrap();
                    s.write_all(reply.as_bytes()).await.unwrap();
                    String::from_utf8_lossy(&buf[..n]).into_owned()
                }
            }
        });
        (port, task)
    }

    #[tokio::test]
    async fn http_and_https_gets() {
        let headers = vec![("X-Probe".to_string(), "1".to_string())];
        let (port, req) = serve(false, "200 OK").await;
        assert_eq!(
            http_get(false, "127.0.0.1", port, "/healthz", &headers).await,
            Ok("ok".to_string())
        );
        let req = req.await.unwrap();
        assert!(req.starts_with("GET /healthz HTTP/1.1\r\n"), "{req}");
        for h in ["User-Agent: kube-probe/1.33", "X-Probe: 1", "Accept: */*"] {
            assert!(req.contains(h), "{h} in {req}");
        }
        let (port, _) = serve(false, "503 Service Unavailable").await;
        assert_eq!(
            http_get(false, "127.0.0.1", port, "/", &[]).await,
            Err("HTTP probe failed with statuscode: 503".to_string())
        );
        let (port, _) = serve(true, "302 Found").await;
        assert_eq!(
            http_get(true, "127.0.0.1", port, "/", &[]).await,
            Ok("ok".to_string())
        );
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        assert_eq!(
            http_get(false, "127.0.0.1", port, "/x", &[]).await,
            Err(format!(
                "Get \"http://127.0.0.1:{port}/x\": dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );
    }

    #[test]
    fn startup_gates_the_others() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c",
            "ports": [{"name": "http", "containerPort": 8080}],
            "startupProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
            "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1},
            "readinessProbe": {"httpGet": {"port": 8080, "path": "ready"}, "periodSeconds": 1},
        }))
        .unwrap();
        let t0 = Instant::now();
        let mut p = Probes::new(&c, "id", t0);
        assert!(!p.started() && !p.ready());
        assert_eq!(p.due(t0), [Kind::Startup]);
        p.tracker(Kind::Startup).unwrap().record(true, t0);
        assert!(p.started() && !p.ready());
        assert_eq!(p.due(t0), [Kind::Liveness, Kind::Readiness]);
        p.tracker(Kind::Readiness).unwrap().record(true, t0);
        assert!(p.ready());
        match action_of(c.liveness_probe.as_ref().unwrap(), &c, "10.1.2.3").unwrap() {
            Action::Tcp { host, port } => assert_eq!((host.as_str(), port), ("10.1.2.3", 8080)),
            _ => panic!("tcp"),
        }
        match action_of(c.readiness_probe.as_ref().unwrap(), &c, "10.1.2.3").unwrap() {
            Action::Http { path, port, .. } => assert_eq!((path.as_str(), port), ("/ready", 8080)),
            _ => panic!("http"),
        }
        assert_eq!(
            resolve_port(&IntOrString::String("nope".into()), &c).unwrap_err(),
            "couldn't find port: nope"
        );
    }
}
