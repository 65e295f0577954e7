//! HTTPS with rustls: client certificates signed by the cluster CA and bearer tokens
//! authenticate; everything else is anonymous (and gets 401 outside the health paths).
//! Clients in the server's own process are served by [`LocalService`] instead.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::pki::Pki;

/// Who is making a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    Anonymous,
    User { name: String, groups: Vec<String> },
}

impl Identity {
    /// The cluster's administrator (what the written kubeconfig's certificate names).
    pub fn admin() -> Identity {
        Identity::User {
            name: "system:admin".into(),
            groups: vec!["system:masters".into()],
        }
    }
}

fn load_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} holds no PEM certificate", path.display()))
}

fn load_key(path: &std::path::Path) -> Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())?
        .with_context(|| format!("{} holds no private key", path.display()))
}

pub fn tls_config(pki: &Pki) -> Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(&pki.ca_cert)? {
        roots.add(c)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(&pki.serving_cert)?, load_key(&pki.serving_key)?)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The user named by a verified client certificate: CN is the user, O the groups.
pub fn identity_from_cert(der: &[u8]) -> Identity {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Identity::Anonymous;
    };
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or("")
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .collect();
    if name.is_empty() {
        Identity::Anonymous
    } else {
        Identity::User { name, groups }
    }
}

/// Accepts connections until `shutdown` fires; each is served by `router` with the
/// client's certificate identity in the request extensions.
pub async fn serve(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    router: axum::Router,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    loop {
        let (tcp, peer): (_, SocketAddr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let identity = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| identity_from_cert(c))
                .unwrap_or(Identity::Anonymous);
            let svc =
                hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(identity.clone());
                    req.extensions_mut().insert(peer);
                    router.clone().oneshot(req.map(axum::body::Body::new))
                });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

/// The API for clients in the server's own process (the scheduler, the controllers, the
/// server's kubelet and proxy), as a `tower::Service` for `kube::Client::new`: requests
/// take the same route as over HTTPS, as the cluster's administrator, without TLS, TCP or
/// HTTP framing (a watch's body is the server's stream itself). Each request runs on a task
/// of its own, as a connection's would, so a client that gives up on a write does not cut
/// it short. Upgrades (exec, attach, port-forward) need a connection: they are not served.
#[derive(Clone)]
pub struct LocalService {
    router: axum::Router,
}

impl LocalService {
    pub fn new(router: axum::Router) -> LocalService {
        LocalService { router }
    }
}

impl<B> tower::Service<http::Request<B>> for LocalService
where
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = http::Response<axum::body::Body>;
    type Error = axum::BoxError;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(Identity::admin());
        let served = tokio::spawn(self.router.clone().oneshot(req));
        Box::pin(async move {
            match served.await {
                Ok(Ok(resp)) => Ok(resp),
                Ok(Err(never)) => match never {},
                Err(e) => Err(format!("the API server's handler failed: {e}").into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_local_service_serves_the_router_as_the_admin() {
        let router =
            axum::Router::new().fallback(|req: http::Request<axum::body::Body>| async move {
                let who = format!("{:?}", req.extensions().get::<Identity>());
                let body = axum::body::to_bytes(req.into_body(), 1024).await.unwrap();
                format!("{who} {}", String::from_utf8_lossy(&body))
            });
        let req = http::Request::post("/api/v1/namespaces")
            .body(String::from("{}"))
            .unwrap();
        let resp = LocalService::new(router).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        assert_eq!(
            String::from_utf8_lossy(&body),
            format!("{:?} {{}}", Some(Identity::admin()))
        );
    }
}
