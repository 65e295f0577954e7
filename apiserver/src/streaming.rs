//! `pods/{name}/exec`, `pods/{name}/attach` and `pods/{name}/portforward`: an
//! upgrade-aware proxy to the pod's kubelet, as upstream's `ExecLocation`,
//! `AttachLocation`, `PortForwardLocation` and `UpgradeAwareHandler`.
//!
//! The pod and container are checked as upstream does (the container rules of
//! [`crate::kubelet::container_name`]; a pod without a node is a 400), then the request
//! goes on to the kubelet (`/exec/{ns}/{pod}/{container}?command=…&input=1&output=1&
//! error=1&tty=1`, `/attach/…`, `/portForward/{ns}/{pod}`) with the client's upgrade
//! headers (`Upgrade`, `Connection`, `X-Stream-Protocol-Version`, `Sec-WebSocket-*`) and
//! the API server's kubelet client certificate. When the kubelet answers 101 the client's
//! connection and the kubelet's are spliced both ways; any other answer is relayed as it
//! is (a client offered WebSocket falls back to SPDY/3.1 on it).
//!
//! Port-forward over WebSocket (kubectl ≥ 1.31: `Sec-WebSocket-Protocol:
//! SPDY/3.1+portforward.k8s.io`, SPDY frames carried in binary messages) is unwrapped
//! here, as upstream's tunneling handler does: the kubelet is asked for a plain SPDY/3.1
//! upgrade (`X-Stream-Protocol-Version: portforward.k8s.io`) and the messages' bytes are
//! its stream.
//!
//! Exec and attach over WebSocket `v5.channel.k8s.io` (kubectl ≥ 1.30) are translated to
//! `v4.channel.k8s.io`, which the runtime's streaming server (containerd 1.6) speaks: the
//! same channels and status, message for message. v4 has no way to close stdin (v5's
//! `[255, 0]`), so a v5 request with stdin is answered 400 without asking the kubelet,
//! and kubectl falls back to SPDY/3.1, where closing a stream is part of the protocol.
//! Any other upgrade (SPDY, WebSocket v1–v4: plain `channel.k8s.io` too) is relayed as
//! it is: the runtime's streaming server speaks them all.
//!
//! `pods/{name}/log` asked for with a WebSocket upgrade is served as upstream's
//! `StreamObject` does with `wsstream.NewReader(stream, ping, NewDefaultReaderProtocols())`:
//! the log request is handled as any other (errors are plain HTTP answers), and its body
//! is then sent as WebSocket messages, [`READ_CHUNK`] bytes at most each, after an
//! empty one (the ping), ending with a normal close: binary messages for the subprotocols
//! `binary.k8s.io` and none, base64 text for `base64.binary.k8s.io` (see
//! [`log_over_websocket`]).

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, Method, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::error::{ApiError, ApiResult};
use crate::request::{self, Route, Target};
use crate::App;

/// Whether `route` is one of the streaming subresources served here.
pub fn wanted(route: &Route) -> bool {
    matches!(route, Route::Object(t)
        if t.res.group.is_empty()
            && t.res.plural == "pods"
            && t.name.is_some()
            && matches!(t.sub.as_deref(), Some("exec" | "attach" | "portforward")))
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The query's values for `key`, in order (`command` is repeated).
fn values(query: &str, key: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k) == key).then(|| decode(v))
        })
        .collect()
}

fn flag(query: &str, key: &str) -> bool {
    values(query, key)
        .last()
        .is_some_and(|v| v == "true" || v == "1")
}

/// The kubelet's query for an exec or attach (upstream's `streamParams`: `input`,
/// `output`, `error`, `tty`, and `command` for exec).
fn kubelet_query(query: &str, exec: bool) -> String {
    let mut out = Vec::new();
    if exec {
        for c in values(query, "command") {
            out.push(format!("command={}", request::encode(&c)));
        }
    }
    for (ours, theirs) in [
        ("stdin", "input"),
        ("stdout", "output"),
        ("stderr", "error"),
        ("tty", "tty"),
    ] {
        if flag(query, ours) {
            out.push(format!("{theirs}=1"));
        }
    }
    out.join("&")
}

/// Headers passed on to the kubelet: the upgrade negotiation and nothing that
/// authenticates the client to us.
fn forwarded(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (k, v) in headers {
        let n = k.as_str();
        if n == "upgrade"
            || n == "connection"
            || n == "user-agent"
            || n == "origin"
            || n.starts_with("x-stream-protocol")
            || n.starts_with("sec-websocket")
        {
            out.append(k, v.clone());
        }
    }
    out
}

/// The WebSocket subprotocol of kubectl's port-forward tunnel.
const PORT_FORWARD_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

/// The remotecommand protocol kubectl ≥ 1.30 offers over WebSocket.
const V5: &str = "v5.channel.k8s.io";
/// What the runtime's streaming server speaks over WebSocket instead.
const V4: &str = "v4.channel.k8s.io";

/// Whether the request is a WebSocket upgrade offering the subprotocol `proto`.
fn offers(headers: &HeaderMap, proto: &str) -> bool {
    let websocket = headers.get_all(http::header::UPGRADE).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.eq_ignore_ascii_case("websocket"))
    });
    websocket
        && headers
            .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == proto)
}

/// Headers of an upgrade to `protocol`, plus `extra`.
fn upgrade_headers(protocol: &'static str, extra: &[(http::HeaderName, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    h.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static(protocol),
    );
    for (k, v) in extra {
        if let Ok(v) = http::HeaderValue::from_str(v) {
            h.insert(k.clone(), v);
        }
    }
    h
}

/// The kubelet's side of a translated v5 request: a WebSocket upgrade for v4.
fn websocket_v4_headers() -> HeaderMap {
    use tokio_tungstenite::tungstenite::handshake::client::generate_key;
    upgrade_headers(
        "websocket",
        &[
            (http::header::SEC_WEBSOCKET_VERSION, "13".into()),
            (http::header::SEC_WEBSOCKET_PROTOCOL, V4.into()),
            (http::header::SEC_WEBSOCKET_KEY, generate_key()),
        ],
    )
}

/// The kubelet's side of a tunnelled port-forward: a plain SPDY/3.1 upgrade.
fn spdy_port_forward_headers() -> HeaderMap {
    upgrade_headers(
        "SPDY/3.1",
        &[(
            http::HeaderName::from_static("x-stream-protocol-version"),
            "portforward.k8s.io".into(),
        )],
    )
}

/// Serves one streaming request (see the module's doc).
pub async fn serve(
    app: &Arc<App>,
    method: &Method,
    route: Route,
    uri: &http::Uri,
    headers: &HeaderMap,
    upgrade: Option<OnUpgrade>,
) -> ApiResult<Response> {
    let Route::Object(t) = route else {
        return Err(ApiError::internal("not a streaming request"));
    };
    let name = t.name.clone().unwrap_or_default();
    let sub = t.sub.clone().unwrap_or_default();
    if *method != Method::GET && *method != Method::POST {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method} {})",
            uri.path()
        )));
    }
    let ns = t.namespace.clone().unwrap_or_default();
    let (pod, _) = app.get_object(&t, &name).await?;
    // Only an HTTP/1.1 request with upgrade headers can become a stream.
    let Some(client) = upgrade else {
        return Err(ApiError::bad_request("Upgrade request required"));
    };
    let query = uri.query().unwrap_or("");
    let path = match sub.as_str() {
        "exec" | "attach" => {
            let asked = values(query, "container").pop();
            let container = crate::kubelet::container_name(&pod, asked.as_deref())?;
            let q = kubelet_query(query, sub == "exec");
            format!(
                "/{sub}/{}/{}/{}?{q}",
                request::encode(&ns),
                request::encode(&name),
                request::encode(&container)
            )
        }
        _ => format!(
            "/portForward/{}/{}",
            request::encode(&ns),
            request::encode(&name)
        ),
    };
    let Some(node_name) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    };
    let nodes = crate::resources::find("", "v1", "nodes").expect("nodes are served");
    let node_target = Target {
        res: nodes,
        namespace: None,
        name: Some(node_name.to_string()),
        sub: None,
        watch_path: false,
    };
    let (node, _) = app.get_object(&node_target, node_name).await?;
    let (host, port) = crate::kubelet::kubelet_address(&node)?;
    let mode = if sub == "portforward" && offers(headers, PORT_FORWARD_TUNNEL) {
        Mode::Tunnel
    } else if sub != "portforward" && offers(headers, V5) {
        if flag(query, "stdin") {
            return Err(ApiError::bad_request(format!(
                "{V5} with stdin is not served (the runtime speaks {V4}, which cannot \
                 close stdin): use SPDY/3.1"
            )));
        }
        Mode::V5
    } else {
        Mode::Relay
    };
    let (kubelet_method, kubelet_headers) = match mode {
        Mode::Tunnel => (Method::POST, spdy_port_forward_headers()),
        Mode::V5 => (Method::GET, websocket_v4_headers()),
        Mode::Relay => (method.clone(), forwarded(headers)),
    };
    let mut resp = app
        .kubelets
        .request(host, port, kubelet_method, &path, &kubelet_headers)
        .await
        .map_err(|e| ApiError::new(500, "InternalError", e))?;
    let status = resp.status();
    let mut out = Response::builder().status(status);
    if mode != Mode::Relay && status == StatusCode::SWITCHING_PROTOCOLS {
        let key = headers
            .get(http::header::SEC_WEBSOCKET_KEY)
            .map(|k| k.as_bytes())
            .unwrap_or_default();
        out = out
            .header(http::header::CONNECTION, "Upgrade")
            .header(http::header::UPGRADE, "websocket")
            .header(
                http::header::SEC_WEBSOCKET_ACCEPT,
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key),
            )
            .header(
                http::header::SEC_WEBSOCKET_PROTOCOL,
                if mode == Mode::Tunnel {
                    PORT_FORWARD_TUNNEL
                } else {
                    V5
                },
            );
    } else {
        for (k, v) in resp.headers() {
            if !matches!(k.as_str(), "content-length" | "transfer-encoding") {
                out = out.header(k, v);
            }
        }
    }
    if status != StatusCode::SWITCHING_PROTOCOLS {
        // Relayed as it is: kubectl reads a Status from it, or shows its text after
        // "unable to upgrade connection: ".
        return out
            .body(Body::new(resp.into_body()))
            .map_err(|e| ApiError::internal(e.to_string()));
    }
    let backend = hyper::upgrade::on(&mut resp);
    let (pod_ns, pod_name) = (ns.clone(), name.clone());
    tokio::spawn(async move {
        let (client, backend) = match tokio::try_join!(client, backend) {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(namespace = %pod_ns, pod = %pod_name, error = %e, "stream upgrade failed");
                return;
            }
        };
        let (mut a, mut b) = (TokioIo::new(client), TokioIo::new(backend));
        let done = match mode {
            Mode::Tunnel => unwrap_websocket(a, b).await,
            Mode::V5 => v5_to_v4(a, b).await,
            Mode::Relay => tokio::io::copy_bidirectional(&mut a, &mut b).await,
        };
        match done {
            Ok((up, down)) => {
                tracing::debug!(namespace = %pod_ns, pod = %pod_name, up, down, "stream ended")
            }
            Err(e) => {
                tracing::debug!(namespace = %pod_ns, pod = %pod_name, error = %e, "stream ended with an error")
            }
        }
    });
    out.body(Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Upstream's `NewDefaultReaderProtocols`: the subprotocols of a streamed read over
/// WebSocket, and whether they carry binary messages (base64 text otherwise).
const READER_PROTOCOLS: [(&str, bool); 3] = [
    ("", true),
    ("binary.k8s.io", true),
    ("base64.binary.k8s.io", false),
];

/// The most bytes a streamed read sends in one message (upstream's `messageCopy` buffer).
const READ_CHUNK: usize = 2048;

/// Upstream's `wsstream.IsWebSocketRequest`: `Connection: upgrade` and `Upgrade: websocket`.
fn is_websocket(headers: &HeaderMap) -> bool {
    let has = |name: http::header::HeaderName, want: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(want))
    };
    has(http::header::CONNECTION, "upgrade") && has(http::header::UPGRADE, "websocket")
}

/// Whether the request is a `GET pods/{name}/log` to be answered over WebSocket.
pub fn wants_log_websocket(method: &Method, route: &Route, headers: &HeaderMap) -> bool {
    *method == Method::GET
        && matches!(route, Route::Object(t)
            if t.res.group.is_empty()
                && t.res.plural == "pods"
                && t.name.is_some()
                && t.sub.as_deref() == Some("log"))
        && is_websocket(headers)
}

/// Upstream's wsstream `handshake`: the first subprotocol the client offers (none
/// offered counts as `""`) that the server allows; the error when there is none.
fn negotiate<'a>(
    headers: &HeaderMap,
    allowed: &[(&'a str, bool)],
) -> Result<(&'a str, bool), String> {
    let offered: Vec<String> = headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    let wanted = if offered.is_empty() {
        vec![String::new()]
    } else {
        offered.clone()
    };
    for p in &wanted {
        if let Some(a) = allowed.iter().find(|(a, _)| a == p) {
            return Ok(*a);
        }
    }
    let names: Vec<&str> = allowed.iter().map(|(a, _)| *a).collect();
    Err(format!(
        "requested protocol(s) are not supported: {offered:?}; supports {names:?}"
    ))
}

/// The WebSocket messages of one read of a streamed body: binary, or base64 text.
fn read_message(chunk: &[u8], binary: bool) -> tokio_tungstenite::tungstenite::Message {
    use base64::Engine;
    use tokio_tungstenite::tungstenite::Message;
    if binary {
        Message::binary(bytes::Bytes::copy_from_slice(chunk))
    } else {
        Message::text(base64::engine::general_purpose::STANDARD.encode(chunk))
    }
}

/// Serves the answer `resp` of a `pods/log` request over the client's WebSocket (see
/// the module's doc). An error answer, or a request that cannot be upgraded, is
/// answered as it is.
pub fn log_over_websocket(
    resp: Response,
    headers: &HeaderMap,
    upgrade: Option<OnUpgrade>,
) -> Response {
    if !resp.status().is_success() {
        return resp;
    }
    let Some(client) = upgrade else {
        return resp;
    };
    let (protocol, binary) = match negotiate(headers, &READER_PROTOCOLS) {
        Ok(p) => p,
        Err(msg) => {
            return Response::builder()
                .status(StatusCode::FORBIDDEN)
                .body(Body::from(msg))
                .unwrap_or_default()
        }
    };
    let key = headers
        .get(http::header::SEC_WEBSOCKET_KEY)
        .map(|k| k.as_bytes())
        .unwrap_or_default();
    let mut out = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(
            http::header::SEC_WEBSOCKET_ACCEPT,
            tokio_tungstenite::tungstenite::handshake::derive_accept_key(key),
        );
    if !protocol.is_empty() {
        out = out.header(http::header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    let body = resp.into_body();
    tokio::spawn(async move {
        let client = match client.await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "log stream upgrade failed");
                return;
            }
        };
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(client),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        if let Err(e) = copy_to_websocket(body, ws, binary).await {
            tracing::debug!(error = %e, "log stream over WebSocket ended with an error");
        }
    });
    out.body(Body::empty()).unwrap_or_default()
}

/// Upstream's wsstream `Reader.handle`: sends the ping (an empty message), then `body`
/// in messages of at most [`READ_CHUNK`] bytes, then a normal close; stops early when
/// the client closes (what it sends is otherwise ignored).
async fn copy_to_websocket<S>(body: Body, ws: S, binary: bool) -> std::io::Result<()>
where
    S: futures::Sink<
            tokio_tungstenite::tungstenite::Message,
            Error = tokio_tungstenite::tungstenite::Error,
        > + futures::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures::{SinkExt, StreamExt};
    let io = |e: tokio_tungstenite::tungstenite::Error| std::io::Error::other(e.to_string());
    let (mut tx, mut rx) = ws.split();
    let client_gone = async {
        while let Some(Ok(m)) = rx.next().await {
            if m.is_close() {
                break;
            }
        }
    };
    let send = async {
        tx.send(read_message(&[], binary)).await.map_err(io)?;
        let mut data = body.into_data_stream();
        while let Some(chunk) = data.next().await {
            let chunk = chunk.map_err(std::io::Error::other)?;
            for part in chunk.chunks(READ_CHUNK) {
                tx.send(read_message(part, binary)).await.map_err(io)?;
            }
        }
        Ok::<_, std::io::Error>(())
    };
    let result = tokio::select! {
        r = send => r,
        _ = client_gone => Ok(()),
    };
    let _ = tx.send(normal_close()).await;
    let _ = tx.close().await;
    result
}

/// A close frame with status 1000: client-go takes any other (even none) for an error.
fn normal_close() -> tokio_tungstenite::tungstenite::Message {
    use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
    tokio_tungstenite::tungstenite::Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

/// How a streaming request reaches the kubelet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The client's upgrade as it is, bytes spliced.
    Relay,
    /// Port-forward's SPDY tunnelled in WebSocket: unwrapped to plain SPDY.
    Tunnel,
    /// WebSocket v5.channel.k8s.io to v4.channel.k8s.io, message for message.
    V5,
}

/// Relays WebSocket messages between a v5.channel.k8s.io client and a v4.channel.k8s.io
/// server until both are closed: the messages up and down. (Only requests without stdin
/// come here, so v5's stdin close has nothing to close.)
async fn v5_to_v4<C, B>(client: C, backend: B) -> std::io::Result<(u64, u64)>
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{protocol::Role, Message};
    use tokio_tungstenite::WebSocketStream;
    let c = WebSocketStream::from_raw_socket(client, Role::Server, None).await;
    let b = WebSocketStream::from_raw_socket(backend, Role::Client, None).await;
    let (mut c_tx, mut c_rx) = c.split();
    let (mut b_tx, mut b_rx) = b.split();
    let up = async {
        let mut n = 0u64;
        while let Some(Ok(m)) = c_rx.next().await {
            match m {
                Message::Binary(d) if d.first() == Some(&255) => {}
                Message::Binary(_) | Message::Text(_) => {
                    n += 1;
                    if b_tx.send(m).await.is_err() {
                        break;
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = b_tx.close().await;
        Ok::<_, std::io::Error>(n)
    };
    let down = async {
        let mut n = 0u64;
        while let Some(Ok(m)) = b_rx.next().await {
            match m {
                Message::Binary(_) | Message::Text(_) => {
                    n += 1;
                    if c_tx.send(m).await.is_err() {
                        break;
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = c_tx.send(normal_close()).await;
        let _ = c_tx.close().await;
        Ok::<_, std::io::Error>(n)
    };
    tokio::try_join!(up, down)
}

/// Splices a WebSocket (binary messages) to a byte stream until both directions end:
/// the bytes up and down.
async fn unwrap_websocket<C, B>(client: C, backend: B) -> std::io::Result<(u64, u64)>
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::{protocol::Role, Message};
    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(client, Role::Server, None).await;
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut rd, mut wr) = tokio::io::split(backend);
    let up = async {
        let mut n = 0u64;
        while let Some(m) = ws_rx.next().await {
            match m {
                Ok(Message::Binary(b)) => {
                    wr.write_all(&b).await?;
                    n += b.len() as u64;
                }
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = wr.shutdown().await;
        Ok::<_, std::io::Error>(n)
    };
    let down = async {
        let mut n = 0u64;
        let mut buf = vec![0u8; 32 << 10];
        loop {
            let got = rd.read(&mut buf).await?;
            if got == 0 {
                break;
            }
            n += got as u64;
            let msg = Message::binary(bytes::Bytes::copy_from_slice(&buf[..got]));
            if ws_tx.send(msg).await.is_err() {
                break;
            }
        }
        let _ = ws_tx.send(normal_close()).await;
        let _ = ws_tx.close().await;
        Ok::<_, std::io::Error>(n)
    };
    tokio::try_join!(up, down)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_options_become_the_kubelets_query() {
        let q = "command=sh&command=-c&command=echo+a%20b&container=c&stdin=true&stdout=true&stderr=false&tty=true";
        assert_eq!(
            kubelet_query(q, true),
            "command=sh&command=%2Dc&command=echo%20a%20b&input=1&output=1&tty=1"
        );
        assert_eq!(kubelet_query(q, false), "input=1&output=1&tty=1");
        assert_eq!(values(q, "container"), vec!["c".to_string()]);
    }

    #[test]
    fn websocket_subprotocols_are_recognised() {
        let ws = |proto: &str| {
            let mut h = HeaderMap::new();
            h.insert("upgrade", "websocket".parse().unwrap());
            h.insert("sec-websocket-protocol", proto.parse().unwrap());
            h
        };
        assert!(offers(&ws("v5.channel.k8s.io"), V5));
        assert!(offers(&ws("v4.channel.k8s.io, v5.channel.k8s.io"), V5));
        assert!(!offers(&ws("v4.channel.k8s.io"), V5));
        assert!(offers(
            &ws("SPDY/3.1+portforward.k8s.io"),
            PORT_FORWARD_TUNNEL
        ));
        let mut spdy = HeaderMap::new();
        spdy.insert("upgrade", "SPDY/3.1".parse().unwrap());
        spdy.insert("x-stream-protocol-version", V5.parse().unwrap());
        assert!(!offers(&spdy, V5));
    }

    #[test]
    fn log_websocket_protocols_are_negotiated_as_upstreams() {
        let offer = |protos: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert("connection", "Upgrade".parse().unwrap());
            h.insert("upgrade", "websocket".parse().unwrap());
            if let Some(p) = protos {
                h.insert("sec-websocket-protocol", p.parse().unwrap());
            }
            h
        };
        type Negotiated = Result<(&'static str, bool), ()>;
        let cases: &[(Option<&str>, Negotiated)] = &[
            (None, Ok(("", true))),
            (Some("binary.k8s.io"), Ok(("binary.k8s.io", true))),
            (
                Some("base64.binary.k8s.io"),
                Ok(("base64.binary.k8s.io", false)),
            ),
            // The client's order decides.
            (
                Some("base64.binary.k8s.io, binary.k8s.io"),
                Ok(("base64.binary.k8s.io", false)),
            ),
            (Some("channel.k8s.io"), Err(())),
        ];
        for (offered, want) in cases {
            let got = negotiate(&offer(*offered), &READER_PROTOCOLS).map_err(|_| ());
            assert_eq!(&got, want, "{offered:?}");
        }
        assert!(is_websocket(&offer(None)));
        let mut h = HeaderMap::new();
        h.insert("upgrade", "websocket".parse().unwrap());
        assert!(!is_websocket(&h), "no Connection: upgrade");
    }

    #[tokio::test]
    async fn a_log_is_sent_as_a_ping_then_chunks_then_a_close() {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::{protocol::Role, Message};
        use tokio_tungstenite::WebSocketStream;
        for binary in [true, false] {
            let (a, b) = tokio::io::duplex(1 << 16);
            let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
            let mut client = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
            let log = vec![b'x'; READ_CHUNK + 10];
            let task = tokio::spawn(copy_to_websocket(Body::from(log), server, binary));
            let mut got = Vec::new();
            while let Some(Ok(m)) = client.next().await {
                got.push(m);
            }
            task.await.unwrap().unwrap();
            let data = |n: usize| read_message(&vec![b'x'; n], binary);
            assert_eq!(got.len(), 4, "{got:?}");
            assert_eq!(got[0], read_message(&[], binary));
            assert_eq!(got[1], data(READ_CHUNK));
            assert_eq!(got[2], data(10));
            assert!(matches!(&got[3], Message::Close(Some(f)) if f.code == 1000u16.into()));
            if !binary {
                assert_eq!(got[2], Message::text("eHh4eHh4eHh4eA=="));
            }
        }
    }

    #[test]
    fn only_the_upgrade_headers_are_forwarded() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer secret".parse().unwrap());
        h.insert("upgrade", "SPDY/3.1".parse().unwrap());
        h.insert("connection", "Upgrade".parse().unwrap());
        h.insert(
            "x-stream-protocol-version",
            "v4.channel.k8s.io".parse().unwrap(),
        );
        let f = forwarded(&h);
        assert!(f.get("authorization").is_none());
        assert_eq!(f.len(), 3);
    }
}
