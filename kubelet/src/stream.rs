//! The kubelet's streaming endpoints, as upstream's kubelet serves them without
//! `--redirect-container-streaming`: `/exec/{ns}/{pod}/{container}`,
//! `/attach/{ns}/{pod}/{container}` and `/portForward/{ns}/{pod}` (GET or POST with the
//! client's `Upgrade` headers) ask CRI for a URL on the runtime's streaming server
//! (`Exec`, `Attach`, `PortForward`) and proxy the upgrade there: the request goes on
//! with its upgrade headers, and once the runtime answers 101 the bytes are spliced both
//! ways. The protocol (SPDY/3.1 or WebSocket, channel.k8s.io v1–v4,
//! portforward.k8s.io) is negotiated between the client and the runtime; an answer other
//! than 101 is relayed as it is (clients fall back on it).
//!
//! The query is upstream's (`remotecommand` options): `command` (repeated), `input`,
//! `output`, `error`, `tty` (`1` or `true`).

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::cri::{self, Cri};
use crate::pods::Registry;
use crate::spec::{LABEL_CONTAINER_NAME, LABEL_POD_UID};

type Body = BoxBody<Bytes, Infallible>;

/// What an exec or attach asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Options {
    /// Reads upstream's query (`command=…&input=1&output=1&error=1&tty=1`).
    pub fn from_query(query: &str) -> Options {
        let mut o = Options::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = decode(v);
            let on = v == "1" || v == "true";
            match decode(k).as_str() {
                "command" => o.command.push(v),
                "input" | "stdin" => o.stdin = on,
                "output" | "stdout" => o.stdout = on,
                "error" | "stderr" => o.stderr = on,
                "tty" => o.tty = on,
                _ => {}
            }
        }
        o
    }
}

fn text(code: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(msg.into())).boxed());
    *r.status_mut() = code;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The kind of stream asked for.
pub enum Kind<'a> {
    Exec(&'a str),
    Attach(&'a str),
    PortForward,
}

/// Serves one streaming request for pod `ns/name`.
pub async fn serve(
    cri: &Cri,
    registry: &Registry,
    kind: Kind<'_>,
    ns: &str,
    name: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    if req.method() != http::Method::GET && req.method() != http::Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "405: Method Not Allowed");
    }
    let Some(pod) = registry.get(ns, name) else {
        return text(StatusCode::NOT_FOUND, "pod does not exist");
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let opts = Options::from_query(req.uri().query().unwrap_or(""));
    let url = match kind {
        Kind::Exec(c) | Kind::Attach(c) => {
            let Some(id) = running_container(cri, &uid, c).await else {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("container not found ({c:?})"),
                );
            };
            if let Kind::Exec(_) = kind {
                if opts.command.is_empty() {
                    return text(
                        StatusCode::BAD_REQUEST,
                        "you must specify at least one command for the container",
                    );
                }
                cri.exec(cri::ExecRequest {
                    container_id: id,
                    cmd: opts.command.clone(),
                    tty: opts.tty,
                    stdin: opts.stdin,
                    stdout: opts.stdout,
                    stderr: opts.stderr,
                })
                .await
            } else {
                // The TTY of an attach is the container's own (it cannot change once
                // started), as upstream's kubelet decides.
                let tty = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.containers.iter().find(|x| x.name == c))
                    .and_then(|x| x.tty)
                    .unwrap_or(false);
                cri.attach(cri::AttachRequest {
                    container_id: id,
                    stdin: opts.stdin,
                    tty,
                    stdout: opts.stdout,
                    stderr: opts.stderr && !tty,
                })
                .await
            }
        }
        Kind::PortForward => match ready_sandbox(cri, &uid).await {
            Some(id) => cri.port_forward(&id).await,
            None => {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("pod not found (\"{name}_{ns}\")"),
                )
            }
        },
    };
    match url {
        Ok(url) => proxy_upgrade(&url, req).await,
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The id of the newest running container `name` of pod `uid`.
async fn running_container(cri: &Cri, uid: &str, name: &str) -> Option<String> {
    let list = cri
        .list_containers("", &[(LABEL_POD_UID, uid), (LABEL_CONTAINER_NAME, name)])
        .await
        .ok()?;
    list.into_iter()
        .filter(|c| c.state == cri::ContainerState::ContainerRunning as i32)
        .max_by_key(|c| c.metadata.as_ref().map(|m| m.attempt).unwrap_or(0))
        .map(|c| c.id)
}

/// The id of pod `uid`'s ready sandbox.
async fn ready_sandbox(cri: &Cri, uid: &str) -> Option<String> {
    let list = cri.list_pod_sandboxes(&[(LABEL_POD_UID, uid)]).await.ok()?;
    list.into_iter()
        .filter(|s| s.state == cri::PodSandboxState::SandboxReady as i32)
        .max_by_key(|s| s.created_at)
        .map(|s| s.id)
}

/// Headers that belong to this hop only and are not passed on (the upgrade headers are
/// set again explicitly).
fn passes(name: &http::HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "host" | "content-length" | "transfer-encoding" | "authorization" | "keep-alive"
    )
}

/// Sends `req` (method and headers, no body) to `url` on the runtime's streaming server
/// (plain HTTP on loopback) and relays its answer; a 101 is followed by splicing the two
/// upgraded connections until both ends are done.
async fn proxy_upgrade(url: &str, req: Request<Incoming>) -> Response<Body> {
    let bad = |e: String| text(StatusCode::INTERNAL_SERVER_ERROR, e);
    let Ok(uri) = url.parse::<http::Uri>() else {
        return bad(format!("the runtime returned an unusable URL {url:?}"));
    };
    let Some(auth) = uri.authority().cloned() else {
        return bad(format!("the runtime returned an unusable URL {url:?}"));
    };
    let port = auth.port_u16().unwrap_or(80);
    let tcp = match tokio::net::TcpStream::connect((auth.host(), port)).await {
        Ok(t) => t,
        Err(e) => return bad(format!("dial {auth}: {e}")),
    };
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await {
        Ok(x) => x,
        Err(e) => return bad(format!("http with the runtime's streaming server: {e}")),
    };
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut out = Request::builder().method(req.method().clone()).uri(path);
    for (k, v) in req.headers() {
        if passes(k) {
            out = out.header(k, v);
        }
    }
    let out = match out
        .header(http::header::HOST, auth.as_str())
        .body(Empty::<Bytes>::new())
    {
        Ok(r) => r,
        Err(e) => return bad(e.to_string()),
    };
    let mut resp = match sender.send_request(out).await {
        Ok(r) => r,
        Err(e) => {
            return bad(format!(
                "the runtime's streaming server did not answer: {e}"
            ))
        }
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    if status != StatusCode::SWITCHING_PROTOCOLS {
        let body = resp.into_body().boxed();
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let mut r = Response::new(Full::new(body).boxed());
        *r.status_mut() = status;
        for (k, v) in &headers {
            if passes(k) {
                r.headers_mut().append(k, v.clone());
            }
        }
        return r;
    }
    let backend = hyper::upgrade::on(&mut resp);
    let client = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let (client, backend) = match tokio::try_join!(client, backend) {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "stream upgrade failed");
                return;
            }
        };
        let (mut a, mut b) = (TokioIo::new(client), TokioIo::new(backend));
        if let Err(e) = tokio::io::copy_bidirectional(&mut a, &mut b).await {
            tracing::debug!(error = %e, "stream ended with an error");
        }
    });
    let mut r = Response::new(Empty::<Bytes>::new().boxed());
    *r.status_mut() = status;
    for (k, v) in &headers {
        if passes(k) {
            r.headers_mut().append(k, v.clone());
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_upstreams() {
        let o =
            Options::from_query("command=sh&command=-c&command=echo%20a+b&input=1&output=1&tty=1");
        assert_eq!(
            o,
            Options {
                command: vec!["sh".into(), "-c".into(), "echo a b".into()],
                stdin: true,
                stdout: true,
                stderr: false,
                tty: true,
            }
        );
    }
}
