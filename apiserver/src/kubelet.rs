//! The API server as a client of the kubelets: `pods/log`, exec, attach and port-forward
//! (see [`crate::streaming`]) are relayed to the kubelet of the pod's node over HTTPS, as
//! upstream's `pkg/registry/core/pod` does.
//!
//! The API server authenticates with its own client certificate
//! (`client-kube-apiserver.crt`, signed by the cluster CA; kubelets require one). Like
//! kube-apiserver without `--kubelet-certificate-authority` (its default, and k3s's for
//! self-signed kubelet certificates), it does not verify the kubelet's serving certificate.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// How long connecting to a kubelet may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct KubeletClient {
    tls: Arc<rustls::ClientConfig>,
}

impl KubeletClient {
    /// A client presenting `cert_pem`/`key_pem`.
    pub fn new(cert_pem: &[u8], key_pem: &[u8]) -> Result<KubeletClient> {
        let certs = rustls_pemfile::certs(&mut &cert_pem[..])
            .collect::<Result<Vec<_>, _>>()
            .context("the kubelet client certificate is unreadable")?;
        let key = rustls_pemfile::private_key(&mut &key_pem[..])?
            .context("the kubelet client key is missing")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
            .with_client_auth_cert(certs, key)?;
        Ok(KubeletClient { tls: Arc::new(tls) })
    }

    /// The TLS configuration presenting the API server's kubelet client certificate.
    pub fn tls(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    /// `GET https://host:port<path_and_query>`: the kubelet's response, body streaming.
    pub async fn get(
        &self,
        host: IpAddr,
        port: u16,
        path_and_query: &str,
    ) -> Result<http::Response<Incoming>, String> {
        self.request(
            host,
            port,
            http::Method::GET,
            path_and_query,
            &http::HeaderMap::new(),
        )
        .await
    }

    /// `method https://host:port<path_and_query>` with `headers` (and no body), on a
    /// connection that may be upgraded: after a 101, `hyper::upgrade::on(response)` is
    /// the kubelet's side of the stream.
    pub async fn request(
        &self,
        host: IpAddr,
        port: u16,
        method: http::Method,
        path_and_query: &str,
        headers: &http::HeaderMap,
    ) -> Result<http::Response<Incoming>, String> {
        let addr = std::net::SocketAddr::new(host, port);
        let mut req = http::Request::builder().method(method).uri(path_and_query);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let req = req
            .header(http::header::HOST, addr.to_string())
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        send_on_own_connection(
            addr,
            Some(self.tls.clone()),
            CONNECT_TIMEOUT,
            "the kubelet at ",
            req,
        )
        .await
    }
}

/// One HTTP/1.1 request on a connection of its own to `addr`, over TLS when `tls` is
/// given; the connection stays for an upgrade (after a 101, `hyper::upgrade::on(response)`
/// is the far side's stream). `peer` prefixes `addr` in errors ("the kubelet at ").
pub(crate) async fn send_on_own_connection<B>(
    addr: std::net::SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    connect_timeout: Duration,
    peer: &str,
    req: http::Request<B>,
) -> Result<http::Response<Incoming>, String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("dial tcp {addr}: i/o timeout"))?
        .map_err(|e| format!("dial tcp {addr}: connect: {}", go_errno(&e)))?;
    let _ = tcp.set_nodelay(true);
    match tls {
        Some(tls) => {
            let name = ServerName::IpAddress(addr.ip().into());
            let tls = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("tls with {peer}{addr}: {e}"))?;
            exchange(tls, req, peer, addr).await
        }
        None => exchange(tcp, req, peer, addr).await,
    }
}

async fn exchange<S, B>(
    io: S,
    req: http::Request<B>,
    peer: &str,
    addr: std::net::SocketAddr,
) -> Result<http::Response<Incoming>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| format!("http with {peer}{addr}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    sender
        .send_request(req)
        .await
        .map_err(|e| format!("{peer}{addr} did not answer: {e}"))
}

/// Go's wording of a connect error ("connection refused", not Rust's "Connection refused
/// (os error 111)").
fn go_errno(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::HostUnreachable => "no route to host".into(),
        std::io::ErrorKind::NetworkUnreachable => "network is unreachable".into(),
        _ => e.to_string(),
    }
}

/// A TLS client configuration without a certificate that accepts any server (the pods and
/// services proxy's transport, as kube-apiserver's `InsecureSkipVerify` one).
pub fn insecure_tls() -> Arc<rustls::ClientConfig> {
    static TLS: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    TLS.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
            .with_no_client_auth();
        Arc::new(tls)
    })
    .clone()
}

/// Accepts any serving certificate (see the module's doc), still checking the handshake's
/// signatures.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Where a node's kubelet listens: its first InternalIP (then ExternalIP, then a Hostname
/// that is an address, as k3s prefers them) and `daemonEndpoints.kubeletEndpoint.Port`.
pub fn kubelet_address(node: &Value) -> ApiResult<(IpAddr, u16)> {
    let name = node["metadata"]["name"].as_str().unwrap_or_default();
    let status = &node["status"];
    let addrs = status["addresses"].as_array().cloned().unwrap_or_default();
    let ip = ["InternalIP", "ExternalIP", "Hostname"]
        .iter()
        .find_map(|ty| {
            addrs
                .iter()
                .filter(|a| a["type"] == *ty)
                .find_map(|a| a["address"].as_str()?.parse::<IpAddr>().ok())
        })
        .ok_or_else(|| {
            ApiError::new(
                503,
                "ServiceUnavailable",
                format!("node \"{name}\" has no address to reach its kubelet"),
            )
        })?;
    let port = status["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .filter(|p| (1..=65535).contains(p))
        .unwrap_or(10250) as u16;
    Ok((ip, port))
}

/// The container a `pods/log` (or exec, attach) request means: the one named, or the only
/// one; errors as upstream words them.
pub fn container_name(pod: &Value, asked: Option<&str>) -> ApiResult<String> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    };
    let (containers, init, ephemeral) = (
        names("containers"),
        names("initContainers"),
        names("ephemeralContainers"),
    );
    match asked.filter(|c| !c.is_empty()) {
        Some(c) => {
            if containers
                .iter()
                .chain(&init)
                .chain(&ephemeral)
                .any(|n| n == c)
            {
                Ok(c.to_string())
            } else {
                Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )))
            }
        }
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => {
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !init.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            if !ephemeral.is_empty() {
                msg.push_str(&format!(
                    " or one of the ephemeral containers: [{}]",
                    ephemeral.join(" ")
                ));
            }
            Err(ApiError::bad_request(msg))
        }
    }
}

/// Reads at most `max` bytes of an error body from a kubelet.
pub async fn error_text(resp: http::Response<Incoming>, max: usize) -> String {
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while out.len() < max {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    out.extend_from_slice(d);
                }
            }
            _ => break,
        }
    }
    out.truncate(max);
    String::from_utf8_lossy(&out).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_container_is_the_only_one_or_must_be_named() {
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        assert_eq!(container_name(&one, None).unwrap(), "a");
        assert_eq!(container_name(&one, Some("")).unwrap(), "a");
        let e = container_name(&one, Some("b")).unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(e.message, "container b is not valid for pod p");
        let two = json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "a"}, {"name": "b"}],
            "initContainers": [{"name": "i"}],
        }});
        let e = container_name(&two, None).unwrap_err();
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]"
        );
        assert_eq!(container_name(&two, Some("i")).unwrap(), "i");
    }

    #[test]
    fn the_kubelet_is_reached_at_the_internal_ip_and_its_port() {
        let node = json!({"metadata": {"name": "n"}, "status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10251}},
        }});
        assert_eq!(
            kubelet_address(&node).unwrap(),
            ("10.0.0.5".parse().unwrap(), 10251)
        );
        let bare = json!({"metadata": {"name": "n"}, "status": {}});
        assert_eq!(kubelet_address(&bare).unwrap_err().code, 503);
    }
}
