//! The kubelet's HTTPS endpoint (upstream's port 10250): a self-signed serving
//! certificate under `<agent-dir>/tls/` (as upstream's kubelet makes when given none),
//! client certificates required and verified against the cluster CA. Serves
//! `GET /healthz` and `GET /containerLogs/{namespace}/{pod}/{container}` with upstream's
//! query (`follow`, `tailLines`, `timestamps`, `sinceSeconds`, `sinceTime`, `previous`,
//! `limitBytes`). The API server relays `pods/log` here, and the streaming requests
//! (`/exec`, `/attach`, `/portForward`: see [`crate::stream`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::jiff::Timestamp;
use rcgen::{CertificateParams, DnType, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::cri::{self, Cri};
use crate::logs::{self, Options, Renderer};
use crate::pods::Registry;
use crate::spec::{LABEL_CONTAINER_NAME, LABEL_POD_UID};
use crate::stream;
use crate::{Config, Error};

type Body = BoxBody<Bytes, Infallible>;

fn text(code: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(msg.into())).boxed());
    *r.status_mut() = code;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The serving certificate and key (PEM): made once, kept in `dir`.
fn serving_cert(dir: &Path, cfg: &Config) -> Result<(String, String), Error> {
    let crt = dir.join("kubelet.crt");
    let key = dir.join("kubelet.key");
    if let (Ok(c), Ok(k)) = (std::fs::read_to_string(&crt), std::fs::read_to_string(&key)) {
        return Ok((c, k));
    }
    std::fs::create_dir_all(dir).map_err(Error::io(format!("create {}", dir.display())))?;
    let setup =
        |e: rcgen::Error| Error::Setup(format!("cannot make the kubelet's certificate: {e}"));
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(setup)?;
    let mut sans = vec![
        SanType::DnsName("localhost".try_into().map_err(setup)?),
        SanType::IpAddress([127, 0, 0, 1].into()),
        SanType::IpAddress(cfg.node_ip),
    ];
    if let Ok(n) = cfg.node_name.as_str().try_into() {
        sans.push(SanType::DnsName(n));
    }
    params.subject_alt_names = sans;
    let secs = Timestamp::now().as_second();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{}@{secs}", cfg.node_name));
    let now = rcgen::date_time_ymd(2000, 1, 1);
    params.not_before = now;
    params.not_after = rcgen::date_time_ymd(2099, 1, 1);
    let kp = KeyPair::generate().map_err(setup)?;
    let cert = params.self_signed(&kp).map_err(setup)?;
    let (c, k) = (cert.pem(), kp.serialize_pem());
    std::fs::write(&crt, &c).map_err(Error::io(format!("write {}", crt.display())))?;
    std::fs::write(&key, &k).map_err(Error::io(format!("write {}", key.display())))?;
    Ok((c, k))
}

/// rustls: our certificate; clients must present one the cluster CA signed.
pub fn tls_config(cfg: &Config) -> Result<rustls::ServerConfig, Error> {
    let (crt, key) = serving_cert(&cfg.agent_dir.join("tls"), cfg)?;
    let bad = |what: &str| Error::Setup(format!("the kubelet's {what} is unreadable"));
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut crt.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| bad("certificate"))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key.as_bytes())
        .ok()
        .flatten()
        .ok_or_else(|| bad("key"))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut cfg.client_ca_pem.as_bytes()) {
        let c = c.map_err(|_| bad("client CA"))?;
        roots
            .add(c)
            .map_err(|e| Error::Setup(format!("client CA: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| Error::Setup(format!("client CA: {e}")))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Setup(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| Error::Setup(format!("the kubelet's certificate: {e}")))?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

#[derive(Clone)]
struct App {
    cri: Cri,
    registry: Registry,
}

/// Listens on `port` on all addresses, as upstream (0: a free port; the Node reports the
/// port it got).
pub async fn listen(port: u16) -> Result<TcpListener, Error> {
    let addr = SocketAddr::from(([0, 0, 0, 0], port));
    TcpListener::bind(addr)
        .await
        .map_err(Error::io(format!("listen on {addr} (--kubelet-port)")))
}

/// Serves the endpoint on `listener` until shutdown.
pub async fn run(
    cfg: Arc<Config>,
    listener: TcpListener,
    cri: Cri,
    registry: Registry,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(&cfg)?));
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "kubelet endpoint listening");
    }
    let app = App { cri, registry };
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(app.handle(req).await) }
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

fn decode(seg: &str) -> String {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl App {
    async fn handle(&self, req: Request<hyper::body::Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let segs: Vec<String> = path
            .trim_start_matches('/')
            .split('/')
            .map(decode)
            .collect();
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let kind = match segs.as_slice() {
            ["exec", _, _, c] | ["exec", _, _, _, c] => Some(stream::Kind::Exec(c)),
            ["attach", _, _, c] | ["attach", _, _, _, c] => Some(stream::Kind::Attach(c)),
            ["portForward", _, _] | ["portForward", _, _, _] => Some(stream::Kind::PortForward),
            _ => None,
        };
        if let Some(kind) = kind {
            let (ns, pod) = (segs[1], segs[2]);
            return stream::serve(&self.cri, &self.registry, kind, ns, pod, req).await;
        }
        if req.method() != http::Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served here");
        }
        match segs.as_slice() {
            ["healthz"] => text(StatusCode::OK, "ok"),
            ["containerLogs", ns, pod, container] => {
                self.container_logs(ns, pod, container, &query).await
            }
            _ => text(StatusCode::NOT_FOUND, "404 page not found"),
        }
    }

    async fn container_logs(
        &self,
        ns: &str,
        pod_name: &str,
        container: &str,
        query: &str,
    ) -> Response<Body> {
        let Some(pod) = self.registry.get(ns, pod_name) else {
            return text(
                StatusCode::NOT_FOUND,
                format!("pod {pod_name:?} does not exist"),
            );
        };
        let spec = pod.spec.clone().unwrap_or_default();
        let known = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .any(|c| c.name == container)
            || spec
                .ephemeral_containers
                .iter()
                .flatten()
                .any(|c| c.name == container);
        if !known {
            return text(
                StatusCode::NOT_FOUND,
                format!("container {container:?} not found in pod {pod_name:?}"),
            );
        }
        let opts = match Options::from_query(query, Timestamp::now()) {
            Ok(o) => o,
            Err(e) => return text(StatusCode::BAD_REQUEST, e),
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut list = match self
            .cri
            .list_containers(
                "",
                &[(LABEL_POD_UID, &uid), (LABEL_CONTAINER_NAME, container)],
            )
            .await
        {
            Ok(l) => l,
            Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        list.sort_by_key(|c| {
            std::cmp::Reverse(c.metadata.as_ref().map(|m| m.attempt).unwrap_or(0))
        });
        let chosen = if opts.previous {
            list.get(1)
        } else {
            list.first()
        };
        let Some(chosen) = chosen else {
            let msg = if opts.previous {
                format!("previous terminated container {container:?} in pod {pod_name:?} not found")
            } else {
                format!("container {container:?} in pod {pod_name:?} is waiting to start: ContainerCreating")
            };
            return text(StatusCode::BAD_REQUEST, msg);
        };
        let status = match self.cri.container_status(&chosen.id).await {
            Ok(s) => s,
            Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(16);
        let cri = self.cri.clone();
        tokio::spawn(stream_log(cri, status, opts, tx));
        let body = StreamBody::new(tokio_stream_rx(rx)).boxed();
        let mut r = Response::new(body);
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        );
        r
    }
}

fn tokio_stream_rx(
    mut rx: mpsc::Receiver<Result<Frame<Bytes>, Infallible>>,
) -> impl futures::Stream<Item = Result<Frame<Bytes>, Infallible>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn running(st: &cri::ContainerStatus) -> bool {
    matches!(
        cri::ContainerState::try_from(st.state),
        Ok(cri::ContainerState::ContainerRunning) | Ok(cri::ContainerState::ContainerCreated)
    )
}

/// Writes the log to `tx`: what the file holds (from `tailLines` back), then, when
/// following, what is appended until the container has exited or the client is gone.
async fn stream_log(
    cri: Cri,
    status: cri::ContainerStatus,
    opts: Options,
    tx: mpsc::Sender<Result<Frame<Bytes>, Infallible>>,
) {
    let path = status.log_path.clone();
    let follow = opts.follow;
    let tail = opts.tail_lines;
    let mut r = Renderer::new(opts);
    let send = |out: Vec<u8>| {
        let tx = tx.clone();
        async move { out.is_empty() || tx.send(Ok(Frame::data(Bytes::from(out)))).await.is_ok() }
    };
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            tracing::debug!(%path, error = %e, "cannot open the container's log");
            return;
        }
    };
    let mut data = Vec::new();
    if file.read_to_end(&mut data).await.is_err() {
        return;
    }
    let start = tail.map(|n| logs::tail_start(&data, n)).unwrap_or(0);
    let mut pending: Vec<u8> = data[start..].to_vec();
    let mut out = Vec::new();
    let used = r.chunk(&pending, &mut out);
    pending.drain(..used);
    if !send(out).await || r.done() || !follow {
        return;
    }
    let mut pos = data.len() as u64;
    let mut alive = running(&status);
    let mut checks = 0u32;
    loop {
        let mut more = Vec::new();
        if file.seek(std::io::SeekFrom::Start(pos)).await.is_ok() {
            let _ = file.read_to_end(&mut more).await;
        }
        if more.is_empty() {
            if !alive {
                return;
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            checks += 1;
            // Once a second: has the container ended? (Read again before ending.)
            if checks.is_multiple_of(10) {
                alive = cri
                    .container_status(&status.id)
                    .await
                    .map(|s| running(&s))
                    .unwrap_or(false);
            }
            continue;
        }
        pos += more.len() as u64;
        pending.extend_from_slice(&more);
        let mut out = Vec::new();
        let used = r.chunk(&pending, &mut out);
        pending.drain(..used);
        if !send(out).await || r.done() {
            return;
        }
    }
}
