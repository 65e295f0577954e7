//! The proxy subresources: `pods/{id}/proxy[/path]`, `services/{id}/proxy[/path]` and
//! `nodes/{id}/proxy[/path]`, as upstream's `ProxyREST`s and apimachinery's
//! `UpgradeAwareHandler` serve them.
//!
//! - `{id}` is `name`, `name:port` or `scheme:name:port` (`http` or `https`; upstream's
//!   `SplitSchemeNamePort`). A pod without a port is reached at its first container's first
//!   port (else port 80); a service's port is a port name (a number is looked up among the
//!   service's ports) and the endpoint is a random ready address of the Endpoints that is
//!   a pod still holding that IP; a node without a port is its kubelet (HTTPS, with the API
//!   server's kubelet client certificate).
//! - Every method is relayed with its body and query; `Authorization` is not (upstream's
//!   authentication filter strips it), hop-by-hop headers are not, and
//!   `X-Forwarded-{Uri,Host,Proto,For}` are added. An `Upgrade` request is relayed as one.
//! - `GET`/`HEAD` of `.../proxy` without a path answer 301 to `.../proxy/` (query kept).
//! - Responses: `Access-Control-*` headers dropped; a redirect's `Location` and the URLs in
//!   an HTML body (`href`, `src`, ... of the tags upstream's transport rewrites) that
//!   point at the backend are rewritten under the proxy path, so that links keep going
//!   through the API server (`<a href="/x">` → `<a href="/api/v1/.../proxy/x">`).
//! - Errors: 400 `invalid pod request "a:b:c:d"`, 400 `address not allowed` (a pod without
//!   an IP), 503 `no endpoints available for service "s"`, 503 `error trying to reach
//!   service: dial tcp IP:PORT: ...` when the backend cannot be reached.
//!
//! HTTPS backends are not verified (kube-apiserver's proxy transport is
//! `InsecureSkipVerify`, k3s's too).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::request::Target;
use crate::{resources, App};

/// How long connecting to a backend may take (upstream's proxy dialer: 30 s).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest HTML body rewritten; a larger one is relayed as it is.
const MAX_REWRITE: usize = 16 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Pod,
    Service,
    Node,
}

impl Kind {
    fn singular(self) -> &'static str {
        match self {
            Kind::Pod => "pod",
            Kind::Service => "service",
            Kind::Node => "node",
        }
    }
}

/// A request for a proxy subresource, from its path.
#[derive(Debug, PartialEq, Eq)]
pub struct ProxyPath {
    pub kind: Kind,
    pub namespace: Option<String>,
    /// `name`, `name:port` or `scheme:name:port`, decoded.
    pub id: String,
    /// What follows `/proxy`, as sent (still escaped): "" or "/...".
    pub rest: String,
    /// The request path up to and with `/proxy`: where rewritten links point.
    pub prefix: String,
}

/// The proxy request `path` names, if it names one.
pub fn parse(path: &str) -> Option<ProxyPath> {
    let segs: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    let (kind, namespace, id, consumed) = match segs.as_slice() {
        ["api", "v1", "namespaces", ns, plural, id, "proxy", ..] => {
            let kind = match *plural {
                "pods" => Kind::Pod,
                "services" => Kind::Service,
                _ => return None,
            };
            (kind, Some(decode(ns)), *id, 7)
        }
        ["api", "v1", "nodes", id, "proxy", ..] => (Kind::Node, None, *id, 5),
        _ => return None,
    };
    if id.is_empty() {
        return None;
    }
    let prefix = format!("/{}", segs[..consumed].join("/"));
    let rest = path[prefix.len()..].to_string();
    Some(ProxyPath {
        kind,
        namespace,
        id: decode(id),
        rest,
        prefix,
    })
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Upstream's `SplitSchemeNamePort`: (scheme, name, port), or None when invalid.
pub fn split_scheme_name_port(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    (!name.is_empty() && matches!(scheme, "" | "http" | "https")).then_some((scheme, name, port))
}

/// Where a proxy request goes.
struct Location {
    https: bool,
    addr: SocketAddr,
    /// The kubelet's client certificate is presented (a node's kubelet port).
    kubelet: bool,
}

/// The backend a request means, as upstream's `ResourceLocation`s decide.
async fn locate(app: &Arc<App>, p: &ProxyPath) -> ApiResult<Location> {
    let invalid =
        || ApiError::bad_request(format!("invalid {} request {:?}", p.kind.singular(), p.id));
    let (scheme, name, port) = split_scheme_name_port(&p.id).ok_or_else(invalid)?;
    let ns = p.namespace.as_deref();
    match p.kind {
        Kind::Pod => {
            let pod = get(app, "pods", ns, name).await?;
            let port = if port.is_empty() {
                first_container_port(&pod).unwrap_or(80)
            } else {
                port.parse().map_err(|_| invalid())?
            };
            let ip = pod["status"]["podIP"]
                .as_str()
                .and_then(|s| s.parse::<IpAddr>().ok())
                .filter(global_unicast)
                .ok_or_else(|| ApiError::bad_request("address not allowed"))?;
            Ok(Location {
                https: scheme == "https",
                addr: SocketAddr::new(ip, port),
                kubelet: false,
            })
        }
        Kind::Service => {
            let mut port_name = port.to_string();
            if let Ok(number) = port.parse::<i64>() {
                let svc = get(app, "services", ns, name).await?;
                port_name = svc["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|sp| sp["port"].as_i64() == Some(number))
                    .map(|sp| sp["name"].as_str().unwrap_or_default().to_string())
                    .ok_or_else(|| {
                        ApiError::new(
                            503,
                            "ServiceUnavailable",
                            format!("no service port {number} found for service {name:?}"),
                        )
                    })?;
            }
            let eps = get(app, "endpoints", ns, name).await?;
            let no_endpoints = |what: &str| {
                ApiError::new(
                    503,
                    "ServiceUnavailable",
                    format!("no endpoints available for service {what:?}"),
                )
            };
            let subsets = eps["subsets"].as_array().cloned().unwrap_or_default();
            if subsets.is_empty() {
                return Err(no_endpoints(name));
            }
            let seed = rand::random::<usize>() % subsets.len();
            for i in 0..subsets.len() {
                let ss = &subsets[(seed + i) % subsets.len()];
                let addrs = ss["addresses"].as_array().cloned().unwrap_or_default();
                if addrs.is_empty() {
                    continue;
                }
                let Some(ep_port) = ss["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|sp| sp["name"].as_str().unwrap_or_default() == port_name)
                else {
                    continue;
                };
                let Some(ep_port) = ep_port["port"].as_u64().and_then(|n| u16::try_from(n).ok())
                else {
                    continue;
                };
                let seed = rand::random::<usize>() % addrs.len();
                for j in 0..addrs.len() {
                    let addr = &addrs[(seed + j) % addrs.len()];
                    if !is_pod_address(app, ns, addr).await {
                        continue;
                    }
                    if let Some(ip) = addr["ip"].as_str().and_then(|s| s.parse().ok()) {
                        return Ok(Location {
                            https: scheme == "https",
                            addr: SocketAddr::new(ip, ep_port),
                            kubelet: false,
                        });
                    }
                }
            }
            Err(no_endpoints(&p.id))
        }
        Kind::Node => {
            let node = get(app, "nodes", None, name).await?;
            let (ip, kubelet_port) = crate::kubelet::kubelet_address(&node)?;
            if port.is_empty() || port == kubelet_port.to_string() {
                return Ok(Location {
                    https: true,
                    addr: SocketAddr::new(ip, kubelet_port),
                    kubelet: true,
                });
            }
            Ok(Location {
                https: scheme == "https",
                addr: SocketAddr::new(ip, port.parse().map_err(|_| invalid())?),
                kubelet: false,
            })
        }
    }
}

async fn get(app: &Arc<App>, plural: &str, ns: Option<&str>, name: &str) -> ApiResult<Value> {
    let res = resources::find("", "v1", plural).expect("core resources are served");
    let t = Target {
        res,
        namespace: ns.map(str::to_string),
        name: Some(name.to_string()),
        sub: None,
        watch_path: false,
    };
    Ok(app.get_object(&t, name).await?.0)
}

/// Upstream's `isValidAddress`: an endpoint address is proxied to only when it is a pod of
/// the namespace that still has that IP.
async fn is_pod_address(app: &Arc<App>, ns: Option<&str>, addr: &Value) -> bool {
    let target = &addr["targetRef"];
    if target.is_null() || target["namespace"].as_str() != ns {
        return false;
    }
    let Some(pod_name) = target["name"].as_str() else {
        return false;
    };
    let Ok(pod) = get(app, "pods", ns, pod_name).await else {
        return false;
    };
    let ip = addr["ip"].as_str();
    pod["status"]["podIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| p["ip"].as_str() == ip)
}

fn first_container_port(pod: &Value) -> Option<u16> {
    pod["spec"]["containers"]
        .as_array()?
        .iter()
        .find_map(|c| c["ports"].as_array()?.first()?["containerPort"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
}

/// Go's `IP.IsGlobalUnicast`.
fn global_unicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_multicast()
                || v4.is_link_local()
                || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// Request headers not relayed: hop-by-hop ones (RFC 7230 §6.1, as Go's ReverseProxy) and
/// the credentials the API server consumed.
const DROPPED: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "authorization",
];

/// Serves one proxy request.
pub async fn serve(
    app: &Arc<App>,
    p: ProxyPath,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
    upgrade: Option<OnUpgrade>,
) -> ApiResult<Response> {
    let loc = locate(app, &p).await?;
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    if p.rest.is_empty() && (*method == Method::GET || *method == Method::HEAD) {
        let to = format!("{}/{query}", uri.path());
        return Ok((StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, to)]).into_response());
    }
    let path = if p.rest.is_empty() { "/" } else { &p.rest };
    let wants_upgrade = headers.get(header::UPGRADE).is_some_and(|v| !v.is_empty())
        && headers.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str()
                .unwrap_or_default()
                .to_ascii_lowercase()
                .contains("upgrade")
        });

    let mut req = http::Request::builder()
        .method(method.clone())
        .uri(format!("{path}{query}"));
    for (k, v) in headers {
        if DROPPED.contains(&k.as_str()) || k == header::HOST {
            continue;
        }
        if k == header::UPGRADE && !wants_upgrade {
            continue;
        }
        req = req.header(k, v);
    }
    if wants_upgrade {
        req = req.header(header::CONNECTION, "Upgrade");
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    req = req
        .header(header::HOST, loc.addr.to_string())
        .header("X-Forwarded-Uri", uri.to_string())
        .header("X-Forwarded-Host", &host)
        .header("X-Forwarded-Proto", "https");
    let req = req
        .body(body)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;

    let unreachable = |e: String| {
        ApiError::new(
            503,
            "ServiceUnavailable",
            format!("error trying to reach service: {e}"),
        )
    };
    let resp = send(app, &loc, req).await.map_err(unreachable)?;

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let (parts, body) = resp.into_parts();
        let backend = hyper::upgrade::on(http::Response::from_parts(parts.clone(), body));
        if let Some(client) = upgrade {
            tokio::spawn(async move {
                if let (Ok(b), Ok(c)) = (backend.await, client.await) {
                    let (mut b, mut c) = (TokioIo::new(b), TokioIo::new(c));
                    let _ = tokio::io::copy_bidirectional(&mut c, &mut b).await;
                }
            });
        }
        return Ok(http::Response::from_parts(parts, Body::empty()));
    }

    let rewriter = Rewriter {
        prefix: &p.prefix,
        backend: loc.addr.to_string(),
    };
    let (mut parts, body) = resp.into_parts();
    parts.headers = response_headers(&parts.headers, &rewriter);
    let html = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("text/html")
        });
    let encoding = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !html || *method == Method::HEAD || !matches!(encoding.as_str(), "" | "gzip") {
        return Ok(http::Response::from_parts(parts, Body::new(body)));
    }
    let raw = match http_body_util::Limited::new(body, MAX_REWRITE)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) => return Err(unreachable(format!("reading the response: {e}"))),
    };
    let rewritten = if encoding == "gzip" {
        gunzip(&raw).map(|doc| gzip(rewriter.html(&String::from_utf8_lossy(&doc)).as_bytes()))
    } else {
        Some(rewriter.html(&String::from_utf8_lossy(&raw)).into_bytes())
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(http::Response::from_parts(
        parts,
        Body::from(rewritten.map(Bytes::from).unwrap_or(raw)),
    ))
}

fn response_headers(from: &HeaderMap, rewriter: &Rewriter<'_>) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (k, v) in from {
        let name = k.as_str();
        if name.starts_with("access-control-")
            || matches!(
                name,
                "connection"
                    | "keep-alive"
                    | "proxy-connection"
                    | "te"
                    | "trailer"
                    | "transfer-encoding"
            )
        {
            continue;
        }
        if *k == header::LOCATION {
            if let Ok(loc) = v.to_str() {
                if let Ok(v) = HeaderValue::from_str(&rewriter.url(loc)) {
                    out.append(k.clone(), v);
                }
                continue;
            }
        }
        out.append(k.clone(), v.clone());
    }
    out
}

fn gunzip(b: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b).read_to_end(&mut out).ok()?;
    Some(out)
}

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = w.write_all(b);
    w.finish().unwrap_or_default()
}

/// Sends `req` to the backend on a connection of its own (kept for an upgrade).
async fn send(
    app: &Arc<App>,
    loc: &Location,
    req: http::Request<Body>,
) -> Result<http::Response<hyper::body::Incoming>, String> {
    let tls = match (loc.https, loc.kubelet) {
        (false, _) => None,
        (true, true) => Some(app.kubelets.tls()),
        (true, false) => Some(crate::kubelet::insecure_tls()),
    };
    crate::kubelet::send_on_own_connection(loc.addr, tls, CONNECT_TIMEOUT, "", req).await
}

/// Upstream's `proxy.Transport` URL rewriting.
struct Rewriter<'a> {
    /// The request path up to `/proxy` (upstream's `PathPrepend`).
    prefix: &'a str,
    /// The backend's `host:port`: absolute URLs to it are rewritten too.
    backend: String,
}

/// The attributes holding URLs, by tag (upstream's `atomsToAttrs`).
const URL_ATTRS: &[(&str, &[&str])] = &[
    ("a", &["href"]),
    ("applet", &["codebase"]),
    ("area", &["href"]),
    ("audio", &["src"]),
    ("base", &["href"]),
    ("blockquote", &["cite"]),
    ("body", &["background"]),
    ("button", &["formaction"]),
    ("command", &["icon"]),
    ("del", &["cite"]),
    ("embed", &["src"]),
    ("form", &["action"]),
    ("frame", &["longdesc", "src"]),
    ("head", &["profile"]),
    ("html", &["manifest"]),
    ("iframe", &["longdesc", "src"]),
    ("img", &["longdesc", "src", "usemap"]),
    ("input", &["src", "usemap", "formaction"]),
    ("ins", &["cite"]),
    ("link", &["href"]),
    ("object", &["classid", "codebase", "data", "usemap"]),
    ("q", &["cite"]),
    ("script", &["src"]),
    ("source", &["src"]),
    ("video", &["poster", "src"]),
];

impl Rewriter<'_> {
    /// Upstream's `rewriteURL`: a path-absolute URL (or an absolute one to the backend)
    /// moves under the proxy prefix; relative URLs and other hosts stay.
    fn url(&self, u: &str) -> String {
        let (host, rest) = match u.split_once("://") {
            Some((scheme, after))
                if !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                let end = after.find(['/', '?', '#']).unwrap_or(after.len());
                (Some(&after[..end]), &after[end..])
            }
            _ => (None, u),
        };
        if host.is_some_and(|h| h != self.backend) || !rest.starts_with('/') {
            return u.to_string();
        }
        let end = rest.find(['?', '#']).unwrap_or(rest.len());
        let (path, tail) = rest.split_at(end);
        if path.starts_with(self.prefix) {
            return rest.to_string();
        }
        // path.Join(prefix, path), the trailing slash kept.
        let mut joined = clean(&format!("{}/{}", self.prefix, path));
        if path.ends_with('/') && !joined.ends_with('/') {
            joined.push('/');
        }
        format!("{joined}{tail}")
    }

    /// Rewrites the URL attributes of the start tags in `doc`; everything else is kept.
    fn html(&self, doc: &str) -> String {
        let mut out = String::with_capacity(doc.len() + 64);
        let mut rest = doc;
        while let Some(at) = rest.find('<') {
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            let Some(tag) = parse_tag(rest) else {
                out.push('<');
                rest = &rest[1..];
                continue;
            };
            let raw = &rest[..tag.len];
            rest = &rest[tag.len..];
            let attrs = URL_ATTRS
                .iter()
                .find(|(t, _)| t.eq_ignore_ascii_case(&tag.name))
                .map(|(_, a)| *a);
            match attrs {
                Some(attrs) if tag.attrs.iter().any(|(k, _)| attrs.contains(&k.as_str())) => {
                    out.push('<');
                    out.push_str(&tag.name.to_ascii_lowercase());
                    for (k, v) in &tag.attrs {
                        let v = if attrs.contains(&k.as_str()) {
                            self.url(v)
                        } else {
                            v.clone()
                        };
                        out.push_str(&format!(" {k}=\"{}\"", escape(&v)));
                    }
                    out.push_str(if tag.self_closing { "/>" } else { ">" });
                }
                _ => out.push_str(raw),
            }
        }
        out.push_str(rest);
        out
    }
}

/// Go's `path.Clean` of an absolute path.
fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Go's `html.EscapeString`.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

/// The few entities attribute values use, unescaped.
fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

struct Tag {
    name: String,
    attrs: Vec<(String, String)>,
    self_closing: bool,
    /// Bytes of the tag in the document, `<` to `>`.
    len: usize,
}

/// A start tag at the head of `s` (`<name attr=... >`), or None.
fn parse_tag(s: &str) -> Option<Tag> {
    let b = s.as_bytes();
    let mut i = 1;
    if !b.get(i)?.is_ascii_alphabetic() {
        return None;
    }
    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' && b[i] != b'/' {
        i += 1;
    }
    let name = s[1..i].to_string();
    let mut attrs = Vec::new();
    let mut self_closing = false;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        match b.get(i)? {
            b'>' => {
                return Some(Tag {
                    name,
                    attrs,
                    self_closing,
                    len: i + 1,
                });
            }
            b'/' => {
                self_closing = true;
                i += 1;
                continue;
            }
            _ => self_closing = false,
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let key = s[start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut val = String::new();
        if b.get(i) == Some(&b'=') {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            match b.get(i)? {
                q @ (b'"' | b'\'') => {
                    let end = i + 1 + s[i + 1..].find(*q as char)?;
                    val = unescape(&s[i + 1..end]);
                    i = end + 1;
                }
                _ => {
                    let start = i;
                    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                        i += 1;
                    }
                    val = unescape(&s[start..i]);
                }
            }
        }
        if !key.is_empty() {
            attrs.push((key, val));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_paths_name_the_object_and_keep_the_rest() {
        let p = parse("/api/v1/namespaces/ns/pods/https:web:443/proxy/some/path/").unwrap();
        assert_eq!(p.kind, Kind::Pod);
        assert_eq!(p.namespace.as_deref(), Some("ns"));
        assert_eq!(p.id, "https:web:443");
        assert_eq!(p.rest, "/some/path/");
        assert_eq!(p.prefix, "/api/v1/namespaces/ns/pods/https:web:443/proxy");
        let s = parse("/api/v1/namespaces/ns/services/svc:portname1/proxy").unwrap();
        assert_eq!(
            (s.kind, s.id.as_str(), s.rest.as_str()),
            (Kind::Service, "svc:portname1", "")
        );
        let n = parse("/api/v1/nodes/n1:10250/proxy/logs/").unwrap();
        assert_eq!(
            (n.kind, n.namespace, n.rest.as_str()),
            (Kind::Node, None, "/logs/")
        );
        assert_eq!(parse("/api/v1/namespaces/ns/pods/web/log"), None);
        assert_eq!(parse("/api/v1/namespaces/ns/configmaps/c/proxy"), None);
        assert_eq!(parse("/api/v1/namespaces/ns/pods//proxy"), None);
        // Escaped ids are decoded, the rest is relayed as sent.
        let e = parse("/api/v1/namespaces/ns/pods/http%3Aweb%3A80/proxy/a%20b").unwrap();
        assert_eq!((e.id.as_str(), e.rest.as_str()), ("http:web:80", "/a%20b"));
    }

    #[test]
    fn ids_split_as_upstream() {
        assert_eq!(split_scheme_name_port("web"), Some(("", "web", "")));
        assert_eq!(split_scheme_name_port("web:80"), Some(("", "web", "80")));
        assert_eq!(
            split_scheme_name_port("https:web:443"),
            Some(("https", "web", "443"))
        );
        assert_eq!(split_scheme_name_port("ftp:web:21"), None);
        assert_eq!(split_scheme_name_port(":80"), None);
        assert_eq!(split_scheme_name_port("a:b:c:d"), None);
    }

    #[test]
    fn pods_are_reached_at_their_first_declared_port() {
        let pod = serde_json::json!({"spec": {"containers": [
            {"name": "a"},
            {"name": "b", "ports": [{"containerPort": 8080}, {"containerPort": 9090}]},
        ]}});
        assert_eq!(first_container_port(&pod), Some(8080));
        assert_eq!(first_container_port(&serde_json::json!({"spec": {}})), None);
        assert!(global_unicast(&"10.42.0.5".parse().unwrap()));
        assert!(!global_unicast(&"127.0.0.1".parse().unwrap()));
        assert!(!global_unicast(&"0.0.0.0".parse().unwrap()));
        assert!(!global_unicast(&"169.254.1.1".parse().unwrap()));
    }

    fn rewriter() -> Rewriter<'static> {
        Rewriter {
            prefix: "/api/v1/namespaces/ns/pods/web:1080/proxy",
            backend: "10.42.0.5:1080".into(),
        }
    }

    #[test]
    fn urls_to_the_backend_move_under_the_proxy_path() {
        let r = rewriter();
        let p = "/api/v1/namespaces/ns/pods/web:1080/proxy";
        assert_eq!(r.url("/rewriteme"), format!("{p}/rewriteme"));
        assert_eq!(r.url("/dir/"), format!("{p}/dir/"));
        assert_eq!(r.url("/a/../b?x=1#f"), format!("{p}/b?x=1#f"));
        assert_eq!(r.url("http://10.42.0.5:1080/x"), format!("{p}/x"));
        // Relative URLs, other hosts and already prefixed paths stay.
        assert_eq!(r.url("rel/x"), "rel/x");
        assert_eq!(r.url("http://example.com/x"), "http://example.com/x");
        assert_eq!(r.url(&format!("{p}/y")), format!("{p}/y"));
    }

    #[test]
    fn html_links_are_rewritten_and_the_rest_is_kept() {
        let r = rewriter();
        let p = "/api/v1/namespaces/ns/pods/web:1080/proxy";
        assert_eq!(
            r.html(r#"<a href="/rewriteme">test</a>"#),
            format!(r#"<a href="{p}/rewriteme">test</a>"#)
        );
        assert_eq!(
            r.html("<html><body><IMG SRC='/i.png' alt=x><p class=\"c\">1 < 2</p></body></html>"),
            format!(
                "<html><body><img src=\"{p}/i.png\" alt=\"x\"><p class=\"c\">1 < 2</p></body></html>"
            )
        );
        assert_eq!(
            r.html("<link href=\"/s.css\"/><script src=rel.js></script>"),
            format!("<link href=\"{p}/s.css\"/><script src=\"rel.js\"></script>")
        );
        assert_eq!(r.html("no tags & <"), "no tags & <");
    }

    #[test]
    fn redirects_point_back_through_the_proxy() {
        let r = rewriter();
        let mut h = HeaderMap::new();
        h.insert(header::LOCATION, HeaderValue::from_static("/login"));
        h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let out = response_headers(&h, &r);
        assert_eq!(
            out[header::LOCATION],
            "/api/v1/namespaces/ns/pods/web:1080/proxy/login"
        );
        assert!(out.get("access-control-allow-origin").is_none());
        assert_eq!(out[header::CONTENT_TYPE], "text/plain");
    }
}
