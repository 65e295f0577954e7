//! The verbs on resources: get, list, watch, create, update, patch, delete,
//! deletecollection, and the status, scale and binding subresources.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Map, Value};
use storage::{EventKind, ListOptions, StoreError};

use crate::error::{ApiError, ApiResult, Cause, Target as ErrTarget};
use crate::object::{self, meta_mut};
use crate::request::{self, Accept, Query, Target};
use crate::resources::Resource;
use crate::selector::{FieldSelector, LabelSelector};
use crate::{admission, managed, table, App};

pub fn json_response(code: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = (code, body).into_response();
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// A `text/plain` response (logs).
fn text_response(body: Body) -> Response {
    let mut r = Response::new(body);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

/// Query keys the server sets for itself (never sent by clients: they hold a NUL).
pub const MANAGER: &str = "\0manager";
pub const APPLIED: &str = "\0applied";

fn writer<'a>(
    t: &'a Target,
    q: &'a Query,
    sub: Option<&'a str>,
    api_version: &'a str,
) -> managed::Writer<'a> {
    managed::Writer {
        manager: q.get(MANAGER).unwrap_or("unknown"),
        api_version,
        sub,
        kind: t.res.kind,
        has_status: t.res.has_status,
    }
}

fn err_target<'a>(t: &'a Target, name: &'a str) -> ErrTarget<'a> {
    ErrTarget {
        group: t.res.group,
        resource: t.res.plural,
        name,
    }
}

/// Selectors of a list or watch.
pub struct Filter {
    label: LabelSelector,
    field: FieldSelector,
    res: &'static Resource,
}

impl Filter {
    fn from_query(res: &'static Resource, q: &Query) -> ApiResult<Filter> {
        let label = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let field = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?
            .convert(res.group, res.plural)
            .map_err(ApiError::bad_request)?;
        Ok(Filter { label, field, res })
    }

    pub fn is_empty(&self) -> bool {
        self.label.is_empty() && self.field.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        (self.label.is_empty() || self.label.matches(&object::labels(obj)))
            && (self.field.is_empty()
                || self.field.matches(&crate::selector::object_fields(
                    self.res.group,
                    self.res.plural,
                    obj,
                )))
    }
}

/// A watch event line of type `ty` for the stored object `bytes` at revision `rev`, written
/// without decoding it.
fn spliced_event(ty: &str, bytes: &[u8], rev: i64) -> Bytes {
    let mut line = Vec::with_capacity(bytes.len() + 64);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(ty.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    object::splice_resource_version(&mut line, bytes, rev);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

/// The continue token: upstream's format, base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":"key"}`.
fn encode_continue(rv: i64, start_after: &str, prefix: &str) -> String {
    use base64::Engine;
    let rel = start_after.strip_prefix(prefix).unwrap_or(start_after);
    let tok = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{rel}\u{0000}")});
    base64::engine::general_purpose::URL_SAFE.encode(tok.to_string())
}

fn decode_continue(tok: &str, prefix: &str) -> ApiResult<(i64, String)> {
    use base64::Engine;
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    };
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(tok)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tok))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_i64().ok_or_else(bad)?;
    let start = v["start"].as_str().ok_or_else(bad)?;
    let start = start.strip_suffix('\u{0000}').unwrap_or(start);
    if start.contains("..") || start.starts_with('/') {
        return Err(bad());
    }
    Ok((rv, format!("{prefix}{start}")))
}

impl App {
    pub async fn serve_object(
        self: &Arc<Self>,
        method: &Method,
        t: Target,
        q: Query,
        headers: &HeaderMap,
        body: Bytes,
    ) -> ApiResult<Response> {
        if let Some(ns) = &t.namespace {
            if ns.is_empty() {
                return Err(ApiError::not_found(err_target(&t, "")));
            }
        }
        let accept = request::accept(headers)?;
        let mut q = q;
        let manager = match q.get("fieldManager") {
            Some(m) if !m.is_empty() => m.to_string(),
            _ => headers
                .get(http::header::USER_AGENT)
                .and_then(|u| u.to_str().ok())
                .and_then(|u| u.split('/').next())
                .filter(|u| !u.is_empty())
                .unwrap_or("unknown")
                .to_string(),
        };
        q.set(MANAGER, &manager);
        match (&t.name, t.sub.as_deref()) {
            (None, _) => match *method {
                Method::GET if t.watch_path || q.flag("watch") => self.watch(&t, &q, accept).await,
                Method::GET => self.list(&t, &q, accept).await,
                Method::POST => self.create(&t, &q, headers, &body).await,
                Method::DELETE => self.delete_collection(&t, &q, headers, &body).await,
                _ => Err(method_not_allowed(method, &t)),
            },
            (Some(name), None) => {
                let name = name.clone();
                if t.watch_path {
                    return self.watch(&t, &q, accept).await;
                }
                match *method {
                    Method::GET => {
                        let (obj, _) = self.get_object(&t, &name).await?;
                        Ok(self.render_one(&t, obj, accept, &q))
                    }
                    Method::PUT => self.update(&t, &name, None, &q, headers, &body).await,
                    Method::PATCH => self.patch(&t, &name, None, &q, headers, &body).await,
                    Method::DELETE => self.delete(&t, &name, &q, headers, &body).await,
                    _ => Err(method_not_allowed(method, &t)),
                }
            }
            (Some(name), Some(sub)) => {
                let name = name.clone();
                let sub = sub.to_string();
                self.serve_subresource(method, &t, &name, &sub, q, headers, body, accept)
                    .await
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn serve_subresource(
        self: &Arc<Self>,
        method: &Method,
        t: &Target,
        name: &str,
        sub: &str,
        q: Query,
        headers: &HeaderMap,
        body: Bytes,
        accept: Accept,
    ) -> ApiResult<Response> {
        let Some(def) = t.res.subresource(sub) else {
            return Err(ApiError::not_found(err_target(t, name)));
        };
        match (sub, method.clone()) {
            ("status", Method::GET)
            | ("ephemeralcontainers", Method::GET)
            | ("resize", Method::GET) => {
                let (obj, _) = self.get_object(t, name).await?;
                Ok(self.render_one(t, obj, accept, &q))
            }
            ("status" | "finalize" | "ephemeralcontainers" | "resize", Method::PUT) => {
                self.update(t, name, Some(sub), &q, headers, &body).await
            }
            ("status" | "ephemeralcontainers" | "resize", Method::PATCH) => {
                self.patch(t, name, Some(sub), &q, headers, &body).await
            }
            ("scale", Method::GET) => {
                let (obj, _) = self.get_object(t, name).await?;
                Ok(json_response(StatusCode::OK, &admission::to_scale(&obj)))
            }
            ("scale", Method::PUT) => self.update(t, name, Some(sub), &q, headers, &body).await,
            ("scale", Method::PATCH) => self.patch(t, name, Some(sub), &q, headers, &body).await,
            ("binding", Method::POST) => self.bind(t, name, &q, headers, &body).await,
            ("eviction", Method::POST) => self.evict(t, name, &q, headers, &body).await,
            ("log", Method::GET) => self.pod_log(t, name, &q).await,
            // exec, attach and portforward never come here: see crate::streaming.
            ("log" | "exec" | "attach" | "portforward" | "proxy", _) => Err(ApiError::new(
                503,
                "ServiceUnavailable",
                format!(
                    "{} of {} \"{name}\" is not available: no kubelet serves this node yet \
                     (the server runs without an agent)",
                    sub, t.res.singular
                ),
            )),
            _ => {
                if def.verbs.is_empty() {
                    Err(ApiError::not_found(err_target(t, name)))
                } else {
                    Err(method_not_allowed(method, t))
                }
            }
        }
    }

    /// `GET pods/{name}/log`: checked as upstream's `LogLocation`, then relayed to the
    /// kubelet of the pod's node (`/containerLogs/{ns}/{pod}/{container}`), its body
    /// streamed back as it comes (`follow`).
    async fn pod_log(&self, t: &Target, name: &str, q: &Query) -> ApiResult<Response> {
        let mut causes = Vec::new();
        let mut positive = |field: &str, min: i64| -> ApiResult<Option<i64>> {
            let v = q.int(field)?;
            if let Some(n) = v.filter(|n| *n < min) {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {n}: must be greater than {}",
                        if min == 0 { "or equal to 0" } else { "0" }
                    ),
                    field,
                ));
            }
            Ok(v)
        };
        positive("tailLines", 0)?;
        positive("limitBytes", 1)?;
        let since = positive("sinceSeconds", 1)?;
        if since.is_some() && q.get("sinceTime").is_some_and(|s| !s.is_empty()) {
            causes.push(Cause::new(
                "FieldValueForbidden",
                "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
                "",
            ));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid("", "PodLogOptions", name, causes));
        }
        let (pod, _) = self.get_object(t, name).await?;
        let container = crate::kubelet::container_name(&pod, q.get("container"))?;
        let Some(node_name) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
            // Not scheduled: nothing to read yet (upstream answers an empty log).
            return Ok(text_response(Body::empty()));
        };
        let nodes = crate::resources::find("", "v1", "nodes").expect("nodes are served");
        let node_target = Target {
            res: nodes,
            namespace: None,
            name: Some(node_name.to_string()),
            sub: None,
            watch_path: false,
        };
        let (node, _) = self.get_object(&node_target, node_name).await?;
        let (host, port) = crate::kubelet::kubelet_address(&node)?;
        let ns = t.namespace.as_deref().unwrap_or_default();
        let mut path = format!(
            "/containerLogs/{}/{}/{}",
            request::encode(ns),
            request::encode(name),
            request::encode(&container)
        );
        let params: Vec<String> = [
            "follow",
            "previous",
            "timestamps",
            "sinceSeconds",
            "sinceTime",
            "tailLines",
            "limitBytes",
        ]
        .iter()
        .filter_map(|k| {
            q.get(k)
                .filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", request::encode(v)))
        })
        .collect();
        if !params.is_empty() {
            path.push('?');
            path.push_str(&params.join("&"));
        }
        let resp = self
            .kubelets
            .get(host, port, &path)
            .await
            .map_err(|e| ApiError::new(500, "InternalError", e))?;
        if !resp.status().is_success() {
            let code = resp.status().as_u16();
            let text = crate::kubelet::error_text(resp, 4096).await;
            return Err(ApiError::generic(code, text));
        }
        Ok(text_response(Body::new(resp.into_body())))
    }

    /// The current object and its revision.
    pub async fn get_object(&self, t: &Target, name: &str) -> ApiResult<(Value, i64)> {
        let key = t.res.key(t.namespace.as_deref(), name);
        match self.store.get(&key).await? {
            Some(kv) => Ok((t.res.decode(&kv.value, kv.mod_revision), kv.mod_revision)),
            None => Err(ApiError::not_found(err_target(t, name))),
        }
    }

    fn render_one(&self, t: &Target, obj: Value, accept: Accept, q: &Query) -> Response {
        match accept {
            Accept::Table => {
                let rv = object::meta_str(&obj, "resourceVersion")
                    .unwrap_or("")
                    .to_string();
                json_response(
                    StatusCode::OK,
                    &table::to_table(t.res, &[obj], &rv, q.get("includeObject"), true, None),
                )
            }
            Accept::PartialMetadata | Accept::PartialMetadataList => {
                json_response(StatusCode::OK, &table::partial_metadata(&obj))
            }
            Accept::Json => json_response(StatusCode::OK, &obj),
        }
    }

    async fn list(&self, t: &Target, q: &Query, accept: Accept) -> ApiResult<Response> {
        let filter = Filter::from_query(t.res, q)?;
        let prefix = t.res.prefix(t.namespace.as_deref());
        let limit = q.int("limit")?.unwrap_or(0).max(0) as usize;
        let (mut revision, mut start_after) = match q.get("continue") {
            // rv -1 (an inconsistent-continue token): at the latest revision.
            Some(c) if !c.is_empty() => {
                let (rv, start) = decode_continue(c, &prefix)?;
                (rv.max(0), Some(start))
            }
            _ => (0, None),
        };
        if revision == 0 {
            if let (Some("Exact"), Some(rv)) =
                (q.get("resourceVersionMatch"), q.get("resourceVersion"))
            {
                revision = rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version {rv:?}"))
                })?;
            }
        }
        // A field selector on metadata.name narrows the scan to one key.
        let only_name = filter.field.required_value("metadata.name");
        // JSON lists are assembled from the stored bytes; a selecting one matches each object
        // on the fields selectors read, never decoding it whole.
        let fast = accept == Accept::Json && t.res.stored_as.is_none();
        let mut raw_items: Vec<(Vec<u8>, i64)> = Vec::new();
        let mut items = Vec::new();
        let mut more;
        let mut remaining;
        let mut last_key = String::new();
        loop {
            let page = self
                .store
                .list(ListOptions {
                    prefix: &prefix,
                    start_after: start_after.as_deref(),
                    revision,
                    limit: if limit == 0 {
                        0
                    } else {
                        (limit - items.len() - raw_items.len()).max(1)
                    },
                })
                .await
                .map_err(|e| match e {
                    // Upstream's handleCompactedErrorForPaging: 410 with a token that goes on
                    // from the same key at the latest revision (rv -1).
                    StoreError::Compacted { .. } if q.get("continue").is_some() => ApiError {
                        list_continue: start_after
                            .as_deref()
                            .map(|k| encode_continue(-1, k, &prefix)),
                        ..ApiError::gone(
                            "The provided continue parameter is too old to display a consistent list result. \
                             You can start a new list without the continue parameter, or use the continue token \
                             in this response to retrieve the remainder of the results. Continuing with the \
                             provided token results in an inconsistent list - objects that were created, \
                             modified, or deleted between the time the first chunk was returned and now may show \
                             up in the list.",
                        )
                    },
                    e => ApiError::from(e),
                })?;
            revision = page.revision;
            more = page.more;
            remaining = page.remaining;
            for kv in page.items {
                last_key = kv.key.clone();
                if let Some(n) = &only_name {
                    if !kv.key.ends_with(&format!("/{n}")) {
                        continue;
                    }
                }
                if fast {
                    if filter.is_empty() || filter.matches(&object::decode_selectable(&kv.value)) {
                        raw_items.push((kv.value, kv.mod_revision));
                    }
                    continue;
                }
                let obj = t.res.decode(&kv.value, kv.mod_revision);
                if filter.matches(&obj) {
                    items.push(obj);
                }
            }
            if !more || limit == 0 || items.len() + raw_items.len() >= limit {
                break;
            }
            start_after = Some(last_key.clone());
        }
        let cont = if more {
            Some(encode_continue(revision, &last_key, &prefix))
        } else {
            None
        };
        // Upstream's etcd3 store: with a continue token and no label or field selector (whose
        // matches the count cannot tell), what is left at the list's revision.
        let remaining_items = (more && filter.is_empty()).then_some(remaining);
        let list_meta = |cont: Option<String>| {
            let mut meta = json!({"resourceVersion": revision.to_string()});
            if let Some(c) = cont {
                meta["continue"] = json!(c);
            }
            if let Some(n) = remaining_items {
                meta["remainingItemCount"] = json!(n);
            }
            meta
        };
        let rv = revision.to_string();
        if fast {
            let meta = list_meta(cont);
            let mut out = Vec::with_capacity(
                raw_items.iter().map(|(b, _)| b.len() + 40).sum::<usize>() + 256,
            );
            out.extend_from_slice(
                format!(
                    "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
                    t.res.kind,
                    t.res.api_version(),
                    meta
                )
                .as_bytes(),
            );
            for (i, (bytes, rev)) in raw_items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                object::splice_resource_version(&mut out, bytes, *rev);
            }
            out.extend_from_slice(b"]}");
            let mut r = (StatusCode::OK, out).into_response();
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            return Ok(r);
        }
        match accept {
            Accept::Table => Ok(json_response(
                StatusCode::OK,
                &table::to_table(t.res, &items, &rv, q.get("includeObject"), true, cont),
            )),
            Accept::PartialMetadata | Accept::PartialMetadataList => {
                let meta = list_meta(cont);
                Ok(json_response(
                    StatusCode::OK,
                    &json!({
                        "kind": "PartialObjectMetadataList",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": meta,
                        "items": items.iter().map(table::partial_metadata).collect::<Vec<_>>(),
                    }),
                ))
            }
            Accept::Json => {
                let meta = list_meta(cont);
                let list = json!({
                    "kind": format!("{}List", t.res.kind),
                    "apiVersion": t.res.api_version(),
                    "metadata": meta,
                    "items": items,
                });
                Ok(json_response(StatusCode::OK, &list))
            }
        }
    }

    async fn watch(self: &Arc<Self>, t: &Target, q: &Query, accept: Accept) -> ApiResult<Response> {
        let filter = Filter::from_query(t.res, q)?;
        let prefix = t.res.prefix(t.namespace.as_deref());
        let name_only = t
            .name
            .clone()
            .or(filter.field.required_value("metadata.name"));
        let rv = q.get("resourceVersion").unwrap_or("");
        let send_initial = q.get("sendInitialEvents") == Some("true");
        // A metadata watch selecting by labels or names only (the garbage collector's) reads
        // only the metadata of each event.
        let metadata_only = matches!(
            accept,
            Accept::PartialMetadata | Accept::PartialMetadataList
        ) && filter.field.is_empty_or_metadata_only();
        let res = t.res;
        let decode = move |bytes: &[u8], rev: i64| -> Value {
            if metadata_only {
                object::decode_stored_metadata(bytes, rev)
            } else {
                res.decode(bytes, rev)
            }
        };
        let mut initial = Vec::new();
        let from: i64 = if rv.is_empty() || rv == "0" || send_initial {
            let page = self
                .store
                .list(ListOptions {
                    prefix: &prefix,
                    ..Default::default()
                })
                .await?;
            for kv in page.items {
                let obj = decode(&kv.value, kv.mod_revision);
                if filter.matches(&obj)
                    && name_only.as_deref().is_none_or(|n| object::name(&obj) == n)
                {
                    initial.push(("ADDED", obj));
                }
            }
            page.revision
        } else {
            rv.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version {rv:?}")))?
        };
        let bookmarks = q.flag("allowWatchBookmarks");
        let timeout = q
            .int("timeoutSeconds")?
            .map(|s| Duration::from_secs(s.max(0) as u64))
            .unwrap_or_else(|| Duration::from_secs(1800 + rand::random::<u64>() % 1800));
        let include = q.get("includeObject").map(str::to_string);
        // As plain lists, events of a plain JSON watch are written from the stored bytes; a
        // selecting one matches each event on the fields selectors read, never decoding it
        // whole (a kubelet's watch of its node's pods).
        let spliced = accept == Accept::Json && res.stored_as.is_none();
        let fast = spliced && filter.is_empty() && name_only.is_none();
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
        let encode = move |ty: &str, obj: Value, first: bool| -> Bytes {
            let obj = match accept {
                Accept::Table if ty != "ERROR" && ty != "BOOKMARK" => {
                    let rv = object::meta_str(&obj, "resourceVersion")
                        .unwrap_or("")
                        .to_string();
                    table::to_table(res, &[obj], &rv, include.as_deref(), first, None)
                }
                Accept::PartialMetadata | Accept::PartialMetadataList
                    if ty != "ERROR" && ty != "BOOKMARK" && !metadata_only =>
                {
                    table::partial_metadata(&obj)
                }
                _ => obj,
            };
            let mut line =
                serde_json::to_vec(&json!({"type": ty, "object": obj})).unwrap_or_default();
            line.push(b'\n');
            Bytes::from(line)
        };
        let stream = self.store.watch(&prefix, from).await;
        let app = self.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let mut first = true;
            let mut last_rv = from;
            for (ty, obj) in initial {
                if tx.send(encode(ty, obj, first)).await.is_err() {
                    return;
                }
                first = false;
            }
            if send_initial && bookmarks {
                let bm = json!({"kind": res.kind, "apiVersion": res.api_version(),
                    "metadata": {"resourceVersion": last_rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
                if tx.send(encode("BOOKMARK", bm, false)).await.is_err() {
                    return;
                }
            }
            let mut stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx
                        .send(encode("ERROR", ApiError::from(e).status(), false))
                        .await;
                    return;
                }
            };
            let mut ticker = tokio::time::interval(Duration::from_secs(60));
            ticker.tick().await;
            loop {
                let ev = tokio::select! {
                    ev = stream.next() => ev,
                    _ = tokio::time::sleep_until(deadline) => return,
                    _ = tx.closed() => return,
                    _ = ticker.tick(), if bookmarks => {
                        let bm = json!({"kind": res.kind, "apiVersion": res.api_version(),
                            "metadata": {"resourceVersion": last_rv.to_string()}});
                        if tx.send(encode("BOOKMARK", bm, false)).await.is_err() { return; }
                        continue;
                    }
                };
                let ev = match ev {
                    Some(Ok(ev)) => ev,
                    Some(Err(e)) => {
                        let _ = tx
                            .send(encode("ERROR", ApiError::from(e).status(), false))
                            .await;
                        return;
                    }
                    None => return,
                };
                last_rv = ev.revision();
                let view = |bytes: &[u8], rev: i64| {
                    if spliced {
                        object::decode_selectable(bytes)
                    } else {
                        decode(bytes, rev)
                    }
                };
                // Every event of an unselective JSON watch matches: nothing is decoded.
                let new = if fast {
                    Value::Null
                } else {
                    view(&ev.kv.value, ev.kv.mod_revision)
                };
                if let Some(n) = &name_only {
                    if object::name(&new) != n {
                        continue;
                    }
                }
                let old_matches = ev.prev.as_ref().is_some_and(|p| {
                    filter.is_empty() || filter.matches(&view(&p.value, p.mod_revision))
                });
                // The event, and whether it carries the object as it was before.
                let (ty, was) = match ev.kind {
                    EventKind::Delete if old_matches => ("DELETED", false),
                    EventKind::Delete => continue,
                    EventKind::Put => match (old_matches, filter.matches(&new)) {
                        (true, true) => ("MODIFIED", false),
                        (false, true) => ("ADDED", false),
                        (true, false) => ("DELETED", true),
                        (false, false) => continue,
                    },
                };
                let bytes = match (was, &ev.prev) {
                    (true, Some(p)) => &p.value,
                    _ => &ev.kv.value,
                };
                let line = if spliced {
                    spliced_event(ty, bytes, ev.kv.mod_revision)
                } else if was {
                    let mut old = decode(bytes, ev.kv.mod_revision);
                    meta_mut(&mut old);
                    encode(ty, old, first)
                } else {
                    encode(ty, new, first)
                };
                if tx.send(line).await.is_err() {
                    return;
                }
                first = false;
            }
        });
        drop(app);
        let body =
            Body::from_stream(tokio_stream_from(rx).map(Ok::<Bytes, std::convert::Infallible>));
        let mut resp = Response::new(body);
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        resp.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-cache, private"),
        );
        Ok(resp)
    }

    /// Decodes, checks and normalizes a request body for `t`; returns the object and warnings.
    fn decode_object(
        &self,
        t: &Target,
        q: &Query,
        headers: &HeaderMap,
        body: &Bytes,
        kind: &str,
        api_version: &str,
    ) -> ApiResult<(Value, Vec<String>)> {
        let obj = request::decode_body(headers, body)?;
        let duplicates = if request::content_type(headers).ends_with("json")
            || request::content_type(headers).is_empty()
        {
            request::duplicate_fields(body)
        } else {
            Vec::new()
        };
        Self::check_object(t, q, obj, kind, api_version, &duplicates, None)
    }

    fn check_object(
        t: &Target,
        q: &Query,
        obj: Value,
        kind: &str,
        api_version: &str,
        duplicates: &[String],
        stored: Option<&Value>,
    ) -> ApiResult<(Value, Vec<String>)> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the object provided is unrecognized: expected a JSON object",
            ));
        }
        let got_kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let got_av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        if !got_kind.is_empty() && got_kind != kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({got_kind}) does not match the expected kind ({kind})"
            )));
        }
        if !got_av.is_empty() && got_av != api_version {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({got_av}) does not match the expected API version ({api_version})"
            )));
        }
        let mut obj = obj;
        obj["kind"] = json!(kind);
        obj["apiVersion"] = json!(api_version);
        admission::normalize(
            t.res,
            kind,
            obj,
            q.get("fieldValidation"),
            duplicates,
            stored,
        )
    }

    pub async fn create(
        &self,
        t: &Target,
        q: &Query,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> ApiResult<Response> {
        let (mut obj, warnings) =
            self.decode_object(t, q, headers, body, t.res.kind, &t.res.api_version())?;
        let ns = t.namespace.clone();
        {
            let m = meta_mut(&mut obj);
            if let (Some(ns), Some(Value::String(body_ns))) = (&ns, m.get("namespace")) {
                if !body_ns.is_empty() && body_ns != ns {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
            }
            let name = m
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let gen = m
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if name.is_empty() && !gen.is_empty() {
                m.insert("name".into(), json!(object::generate_name(&gen)));
            }
        }
        let name = object::name(&obj).to_string();
        if name.is_empty() {
            return Err(ApiError::invalid(
                t.res.group,
                t.res.kind,
                "",
                vec![Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value: name or generateName is required".into(),
                    field: "metadata.name".into(),
                }],
            ));
        }
        if let Some(ns) = &ns {
            self.check_namespace_open(ns).await?;
        }
        admission::prepare_create(t.res, &mut obj, ns.as_deref());
        // As upstream's create handler: the writer owns the fields of its object as
        // decoded and defaulted, not those admission adds (the token volume, tolerations).
        let av = t.res.api_version();
        match q.get(APPLIED) {
            Some(applied) => {
                let applied: Value = serde_json::from_str(applied).unwrap_or_default();
                managed::apply_create(&writer(t, q, None, &av), &mut obj, &applied);
            }
            None => managed::track_update(&writer(t, q, None, &av), None, &mut obj),
        }
        admission::admit_create(self, t.res, &mut obj).await?;
        admission::validate(t.res, &obj, None)?;
        let dry_run = q.get("dryRun") == Some("All");
        if dry_run {
            return Ok(with_warnings(
                json_response(StatusCode::CREATED, &obj),
                &warnings,
            ));
        }
        let key = t.res.key(ns.as_deref(), &name);
        let kv = self
            .store
            .create(&key, t.res.encode(&obj))
            .await
            .map_err(|e| ApiError::from_store(e, err_target(t, &name)))?;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
        Ok(with_warnings(
            json_response(StatusCode::CREATED, &obj),
            &warnings,
        ))
    }

    async fn check_namespace_open(&self, ns: &str) -> ApiResult<()> {
        let key = format!("/registry/namespaces/{ns}");
        match self.store.get(&key).await? {
            None => Err(ApiError::not_found(ErrTarget {
                group: "",
                resource: "namespaces",
                name: ns,
            })),
            Some(kv) => {
                let v = object::decode_stored(&kv.value, kv.mod_revision);
                if v["metadata"].get("deletionTimestamp").is_some() {
                    Err(ApiError::new(
                        403,
                        "Forbidden",
                        format!("unable to create new content in namespace {ns} because it is being terminated"),
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// PUT of the object or of a subresource.
    async fn update(
        &self,
        t: &Target,
        name: &str,
        sub: Option<&str>,
        q: &Query,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> ApiResult<Response> {
        let (kind, av) = match sub {
            Some("scale") => ("Scale", "autoscaling/v1".to_string()),
            _ => (t.res.kind, t.res.api_version()),
        };
        let (new, warnings) = self.decode_object(t, q, headers, body, kind, &av)?;
        let body_name = object::name(&new);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if let (Some(ns), Some(bns)) = (&t.namespace, object::namespace(&new)) {
            if !bns.is_empty() && bns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        let expected_rv = object::meta_str(&new, "resourceVersion")
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        // An update without a resourceVersion is unconditional: a race with another
        // write is tried again at the new revision, as upstream's GuaranteedUpdate does.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (old, rev) = self.get_object(t, name).await?;
            if let Some(e) = &expected_rv {
                if e != &rev.to_string() {
                    return Err(ApiError::stale(err_target(t, name)));
                }
            }
            match self
                .commit_update(t, name, sub, old, rev, new.clone(), q)
                .await
            {
                Err(e) if e.code == 409 && expected_rv.is_none() && attempt < 10 => continue,
                Err(e) => return Err(e),
                Ok(resp) => return Ok(with_warnings(resp, &warnings)),
            }
        }
    }

    /// Applies an update computed from `old` (at `rev`) and the client's `new`.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit_update(
        &self,
        t: &Target,
        name: &str,
        sub: Option<&str>,
        old: Value,
        rev: i64,
        new: Value,
        q: &Query,
    ) -> ApiResult<Response> {
        let mut obj = admission::prepare_update(t.res, sub, &old, new)?;
        admission::admit_update(self, t.res, &old, &mut obj).await?;
        admission::validate_update(t.res, sub, &obj, &old)?;
        if q.get(APPLIED).is_none() {
            let av = t.res.api_version();
            let tracked_sub = sub.filter(|s| *s == "status");
            // Ownership is recorded on the object; a client cannot rewrite it by sending it.
            match old["metadata"].get("managedFields") {
                Some(mf) => meta_mut(&mut obj).insert("managedFields".into(), mf.clone()),
                None => meta_mut(&mut obj).remove("managedFields"),
            };
            managed::track_update(&writer(t, q, tracked_sub, &av), Some(&old), &mut obj);
        }
        let reply = |obj: &Value| -> Response {
            if sub == Some("scale") {
                json_response(StatusCode::OK, &admission::to_scale(obj))
            } else {
                json_response(StatusCode::OK, obj)
            }
        };
        if q.get("dryRun") == Some("All") {
            return Ok(reply(&obj));
        }
        let key = t.res.key(t.namespace.as_deref(), name);
        let unchanged = match t.res.stored_as {
            None => object::same_when_stored(&obj, &old),
            Some(_) => t.res.encode(&obj) == t.res.encode(&old),
        };
        if unchanged {
            // Nothing changed: no write, the object keeps its resourceVersion.
            return Ok(reply(&old));
        }
        // Finalizers removed from an object being deleted: the delete completes.
        // As upstream's ShouldDeleteDuringUpdate: an object being deleted with no grace
        // period left whose last finalizer goes is deleted by that update.
        let finished = old["metadata"].get("deletionTimestamp").is_some()
            && old["metadata"]["deletionGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(0)
                == 0
            && obj["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty())
            && (t.res.plural != "namespaces"
                || obj["spec"]["finalizers"]
                    .as_array()
                    .is_none_or(|f| f.is_empty()));
        if finished {
            let kv = self
                .store
                .delete(&key, rev)
                .await
                .map_err(|e| ApiError::from_store(e, err_target(t, name)))?;
            meta_mut(&mut obj).insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
            return Ok(reply(&obj));
        }
        let kv = self
            .store
            .update(&key, t.res.encode(&obj), rev)
            .await
            .map_err(|e| ApiError::from_store(e, err_target(t, name)))?;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
        Ok(reply(&obj))
    }

    async fn patch(
        self: &Arc<Self>,
        t: &Target,
        name: &str,
        sub: Option<&str>,
        q: &Query,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> ApiResult<Response> {
        let ct = request::content_type(headers);
        let patch_kind = crate::patching::PatchKind::from_content_type(&ct)?;
        // Upstream's GuaranteedUpdate: a write that lost to another one is tried again on
        // the newer object (a busy object, e.g. a pod its kubelet updates); bounded here.
        // The merged object always carries the resourceVersion read, so a patch that set an
        // older one explicitly fails the staleness check above on the retry, as upstream.
        const PATCH_ATTEMPTS: usize = 100;
        for attempt in 0..PATCH_ATTEMPTS {
            let (old, rev) = match self.get_object(t, name).await {
                Ok(x) => x,
                Err(e) if e.code == 404 && patch_kind == crate::patching::PatchKind::Apply => {
                    return crate::patching::apply_create(self, t, name, q, body).await;
                }
                Err(e) => return Err(e),
            };
            let current = if sub == Some("scale") {
                std::borrow::Cow::Owned(admission::to_scale(&old))
            } else {
                std::borrow::Cow::Borrowed(&old)
            };
            let (kind, av) = match sub {
                Some("scale") => ("Scale", "autoscaling/v1".to_string()),
                _ => (t.res.kind, t.res.api_version()),
            };
            let mut q2 = Query::default();
            let patched = if patch_kind == crate::patching::PatchKind::Apply {
                let applied = crate::patching::applied_config(body, q)?;
                let (applied, _) = Self::check_object(t, q, applied, kind, &av, &[], None)?;
                let force = q.flag("force");
                let tracked_sub = sub.filter(|s| *s == "status");
                let merged =
                    managed::apply(&writer(t, q, tracked_sub, &av), &current, &applied, force)
                        .map_err(|c| managed::conflict_error(&c))?;
                for k in ["dryRun", "fieldValidation"] {
                    if let Some(v) = q.get(k) {
                        q2.set(k, v);
                    }
                }
                q2.set(APPLIED, "1");
                merged
            } else {
                crate::patching::apply_patch(patch_kind, kind, &current, body)?
            };
            let q = if q2.get(APPLIED).is_some() { &q2 } else { q };
            let (new, warnings) =
                Self::check_object(t, q, patched, kind, &av, &[], Some(&current))?;
            if object::name(&new) != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    object::name(&new)
                )));
            }
            let requested_rv = object::meta_str(&new, "resourceVersion").map(str::to_string);
            if let Some(r) = &requested_rv {
                if !r.is_empty() && r != &rev.to_string() {
                    return Err(ApiError::stale(err_target(t, name)));
                }
            }
            match self.commit_update(t, name, sub, old, rev, new, q).await {
                Err(e)
                    if e.code == 409 && e.reason == "Conflict" && attempt + 1 < PATCH_ATTEMPTS =>
                {
                    continue
                }
                Err(e) => return Err(e),
                Ok(r) => return Ok(with_warnings(r, &warnings)),
            }
        }
        Err(ApiError::stale(err_target(t, name)))
    }

    async fn bind(
        &self,
        t: &Target,
        name: &str,
        q: &Query,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> ApiResult<Response> {
        let b = request::decode_body(headers, body)?;
        let node = b["target"]["name"].as_str().unwrap_or("").to_string();
        if node.is_empty() {
            return Err(ApiError::invalid(
                "",
                "Binding",
                name,
                vec![Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value".into(),
                    field: "target.name".into(),
                }],
            ));
        }
        let (old, rev) = self.get_object(t, name).await?;
        if old["metadata"].get("deletionTimestamp").is_some() {
            return Err(ApiError::conflict(
                err_target(t, name),
                "pod is being deleted, cannot be assigned to a host",
            ));
        }
        let current = old["spec"]["nodeName"].as_str().unwrap_or("");
        if !current.is_empty() {
            return Err(ApiError::conflict(
                err_target(t, name),
                &format!("pod {name} is already assigned to node \"{current}\""),
            ));
        }
        let mut new = old.clone();
        new["spec"]["nodeName"] = json!(node);
        let conds = new["status"]
            .as_object_mut()
            .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
        if let Some(Value::Array(c)) = conds {
            c.retain(|c| c["type"] != "PodScheduled");
            c.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": object::now_rfc3339()}));
        }
        if q.get("dryRun") == Some("All") {
            return Ok(json_response(
                StatusCode::CREATED,
                &json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","code":201}),
            ));
        }
        let key = t.res.key(t.namespace.as_deref(), name);
        self.store
            .update(&key, object::encode_stored(&new), rev)
            .await
            .map_err(|e| ApiError::from_store(e, err_target(t, name)))?;
        Ok(json_response(
            StatusCode::CREATED,
            &json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","code":201}),
        ))
    }

    /// policy/v1 Eviction: deletes the pod with the eviction's delete options (there are no
    /// PodDisruptionBudgets in rkube's surface to hold it back).
    async fn evict(
        &self,
        t: &Target,
        name: &str,
        q: &Query,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> ApiResult<Response> {
        let ev = request::decode_body(headers, body)?;
        if let Some(k) = ev.get("kind").and_then(Value::as_str) {
            if k != "Eviction" {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind (Eviction)"
                )));
            }
        }
        let ev_name = object::name(&ev);
        if !ev_name.is_empty() && ev_name != name {
            return Err(ApiError::bad_request(
                "name in URL does not match name in Eviction object",
            ));
        }
        let opts = match ev.get("deleteOptions") {
            Some(o) if o.is_object() => o.clone(),
            _ => json!({}),
        };
        let dry_run = q.get("dryRun") == Some("All");
        self.delete_current(t, name, &opts, dry_run).await?;
        Ok(json_response(
            StatusCode::CREATED,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ))
    }

    async fn delete(
        &self,
        t: &Target,
        name: &str,
        q: &Query,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> ApiResult<Response> {
        let opts = delete_options(q, headers, body)?;
        let dry_run = q.get("dryRun") == Some("All")
            || opts["dryRun"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "All"));
        let (code, obj) = self.delete_current(t, name, &opts, dry_run).await?;
        Ok(json_response(code, &obj))
    }

    /// Deletes the object as it is now. As upstream's store: a delete racing another write
    /// (a kubelet's status update) is tried again at the new revision; only the caller's own
    /// preconditions make it a conflict.
    async fn delete_current(
        &self,
        t: &Target,
        name: &str,
        opts: &Value,
        dry_run: bool,
    ) -> ApiResult<(StatusCode, Value)> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (old, rev) = self.get_object(t, name).await?;
            check_delete_preconditions(t, name, &old, rev, opts)?;
            match self.delete_one(t, name, old, rev, opts, dry_run).await {
                Err(e) if e.code == 409 && e.reason == "Conflict" && attempt < 10 => continue,
                result => return result,
            }
        }
    }

    /// Deletes (or starts deleting) one object; returns the HTTP code and the body.
    pub async fn delete_one(
        &self,
        t: &Target,
        name: &str,
        old: Value,
        rev: i64,
        opts: &Value,
        dry_run: bool,
    ) -> ApiResult<(StatusCode, Value)> {
        let key = t.res.key(t.namespace.as_deref(), name);
        let mut obj = old.clone();
        let policy = opts["propagationPolicy"].as_str().unwrap_or("");
        let orphan = opts["orphanDependents"].as_bool();
        let graceful = admission::grace_period(t.res, &old, opts);
        let mut finalizers: Vec<Value> = old["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let add_finalizer = |f: &mut Vec<Value>, name: &str| {
            if !f.iter().any(|x| x == name) {
                f.push(json!(name));
            }
        };
        if policy == "Orphan" || orphan == Some(true) {
            add_finalizer(&mut finalizers, "orphan");
        } else if policy == "Foreground" {
            add_finalizer(&mut finalizers, "foregroundDeletion");
        }
        let already = old["metadata"].get("deletionTimestamp").is_some();
        if !finalizers.is_empty()
            || graceful.is_some_and(|g| g > 0)
            || (t.res.plural == "namespaces")
        {
            // Deletion in progress: mark the object, the finalizers' owners (or the kubelet) finish it.
            let m = meta_mut(&mut obj);
            if !already {
                let grace = graceful.unwrap_or(0);
                m.insert("deletionTimestamp".into(), json!(object::rfc3339_in(grace)));
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            } else if let Some(g) = graceful {
                let cur = m
                    .get("deletionGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(i64::MAX);
                if g < cur {
                    m.insert("deletionTimestamp".into(), json!(object::rfc3339_in(g)));
                    m.insert("deletionGracePeriodSeconds".into(), json!(g));
                }
            }
            if !finalizers.is_empty() {
                m.insert("finalizers".into(), Value::Array(finalizers));
            }
            if t.res.plural == "namespaces" {
                obj["status"]["phase"] = json!("Terminating");
            }
            if graceful == Some(0)
                && obj["metadata"]["finalizers"]
                    .as_array()
                    .is_none_or(|f| f.is_empty())
            {
                // fall through to an immediate delete
            } else {
                if dry_run || obj == old {
                    return Ok((StatusCode::ACCEPTED, obj));
                }
                let kv = self
                    .store
                    .update(&key, t.res.encode(&obj), rev)
                    .await
                    .map_err(|e| ApiError::from_store(e, err_target(t, name)))?;
                meta_mut(&mut obj)
                    .insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
                return Ok((StatusCode::ACCEPTED, obj));
            }
        }
        if dry_run {
            return Ok((StatusCode::OK, obj));
        }
        let kv = self
            .store
            .delete(&key, rev)
            .await
            .map_err(|e| ApiError::from_store(e, err_target(t, name)))?;
        if admission::returns_deleted_object(t.res) {
            meta_mut(&mut obj).insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
            Ok((StatusCode::OK, obj))
        } else {
            let mut details = json!({"name": name, "kind": t.res.plural, "uid": object::meta_str(&old, "uid").unwrap_or("")});
            if !t.res.group.is_empty() {
                details["group"] = json!(t.res.group);
            }
            Ok((
                StatusCode::OK,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
            ))
        }
    }

    async fn delete_collection(
        &self,
        t: &Target,
        q: &Query,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> ApiResult<Response> {
        if !t.res.verbs.contains(&"deletecollection") {
            return Err(method_not_allowed(&Method::DELETE, t));
        }
        let opts = delete_options(q, headers, body)?;
        let filter = Filter::from_query(t.res, q)?;
        let prefix = t.res.prefix(t.namespace.as_deref());
        let page = self
            .store
            .list(ListOptions {
                prefix: &prefix,
                ..Default::default()
            })
            .await?;
        let dry_run = q.get("dryRun") == Some("All");
        let mut deleted = Vec::new();
        for kv in page.items {
            let obj = t.res.decode(&kv.value, kv.mod_revision);
            if !filter.matches(&obj) {
                continue;
            }
            let name = object::name(&obj).to_string();
            let ns = object::namespace(&obj).map(str::to_string);
            let target = Target {
                res: t.res,
                namespace: ns,
                name: Some(name.clone()),
                sub: None,
                watch_path: false,
            };
            // As a single delete: an item written again since the list (a controller
            // updating its status) is deleted at its new revision, not left behind.
            let (mut cur, mut rev) = (obj, kv.mod_revision);
            let mut attempt = 0;
            loop {
                attempt += 1;
                match self
                    .delete_one(&target, &name, cur.clone(), rev, &opts, dry_run)
                    .await
                {
                    Ok(_) => {
                        deleted.push(cur);
                        break;
                    }
                    Err(e) if e.code == 409 && e.reason == "Conflict" && attempt < 10 => {
                        match self.get_object(&target, &name).await {
                            Ok((now, now_rev)) => (cur, rev) = (now, now_rev),
                            Err(e) if e.code == 404 => break,
                            Err(e) => return Err(e),
                        }
                    }
                    Err(e) if e.code == 404 || e.code == 409 => break,
                    Err(e) => return Err(e),
                }
            }
        }
        let rv = self.store.current_revision().await?;
        Ok(json_response(
            StatusCode::OK,
            &json!({"kind": format!("{}List", t.res.kind), "apiVersion": t.res.api_version(),
                "metadata": {"resourceVersion": rv.to_string()}, "items": deleted}),
        ))
    }
}

fn check_delete_preconditions(
    t: &Target,
    name: &str,
    old: &Value,
    rev: i64,
    opts: &Value,
) -> ApiResult<()> {
    if let Some(uid) = opts["preconditions"]["uid"].as_str() {
        if object::meta_str(old, "uid") != Some(uid) {
            return Err(ApiError::conflict(
                err_target(t, name),
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    object::meta_str(old, "uid").unwrap_or("")
                ),
            ));
        }
    }
    if let Some(r) = opts["preconditions"]["resourceVersion"].as_str() {
        if r != rev.to_string() {
            return Err(ApiError::conflict(
                err_target(t, name),
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {r}, ResourceVersion in object meta: {rev}"
                ),
            ));
        }
    }
    Ok(())
}

fn delete_options(q: &Query, headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    let mut opts = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        request::decode_body(headers, body)?
    };
    if !opts.is_object() {
        return Err(ApiError::bad_request(
            "the body of a delete must be DeleteOptions",
        ));
    }
    if let Some(g) = q.int("gracePeriodSeconds")? {
        opts["gracePeriodSeconds"] = json!(g);
    }
    if let Some(p) = q.get("propagationPolicy") {
        opts["propagationPolicy"] = json!(p);
    }
    if let Some(p) = q.get("orphanDependents") {
        opts["orphanDependents"] = json!(p == "true");
    }
    match opts["propagationPolicy"].as_str() {
        None | Some("Orphan" | "Background" | "Foreground") => Ok(opts),
        Some(p) => Err(ApiError::invalid(
            "",
            "DeleteOptions",
            "",
            vec![Cause {
                reason: "FieldValueNotSupported".into(),
                message: format!("Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""),
                field: "propagationPolicy".into(),
            }],
        )),
    }
}

fn method_not_allowed(method: &Method, t: &Target) -> ApiError {
    ApiError::method_not_allowed(format!(
        "the server does not allow this method on the requested resource ({method} {})",
        t.res.plural
    ))
}

pub fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let v = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(h) = http::HeaderValue::from_str(&v) {
            r.headers_mut().append("warning", h);
        }
    }
    r
}

pub fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Keeps `Map` in scope for helpers that build objects.
pub type Object = Map<String, Value>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_including_the_latest_revision() {
        let prefix = "/registry/podtemplates/ns/";
        let tok = encode_continue(42, "/registry/podtemplates/ns/template-0039", prefix);
        assert_eq!(
            decode_continue(&tok, prefix).unwrap(),
            (42, "/registry/podtemplates/ns/template-0039".to_string())
        );
        // An inconsistent-continue token (upstream's rv -1) reads at the latest revision.
        let tok = encode_continue(-1, "/registry/podtemplates/ns/template-0039", prefix);
        assert_eq!(decode_continue(&tok, prefix).unwrap().0, -1);
        assert!(decode_continue("not base64!", prefix).is_err());
    }
}
