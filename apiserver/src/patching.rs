//! PATCH: JSON patch, merge patch, strategic merge patch and server-side apply.

use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::object;
use crate::patch;
use crate::request::{self, Query, Target};
use crate::App;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

const ACCEPTED: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

impl PatchKind {
    pub fn from_content_type(ct: &str) -> ApiResult<PatchKind> {
        match ct {
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" => Ok(PatchKind::Apply),
            other => Err(request::unsupported_media(other, ACCEPTED)),
        }
    }
}

fn bad_patch(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "the server rejected our request due to an error in our request: {e}"
    ))
}

/// The patched object (not yet checked against the schema).
pub fn apply_patch(
    kind: PatchKind,
    obj_kind: &str,
    current: &Value,
    body: &Bytes,
) -> ApiResult<Value> {
    match kind {
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| bad_patch(format!("invalid JSON patch: {e}")))?;
            let mut doc = current.clone();
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
            Ok(doc)
        }
        PatchKind::Merge => {
            let p = request::decode_json(body)?;
            if !p.is_object() {
                return Err(bad_patch("a merge patch must be a JSON object"));
            }
            Ok(patch::merge_patch(current, &p))
        }
        PatchKind::Strategic => {
            let p = request::decode_json(body)?;
            if !p.is_object() {
                return Err(bad_patch("a strategic merge patch must be a JSON object"));
            }
            patch::strategic_merge_patch(obj_kind, current, &p).map_err(bad_patch)
        }
        // Server-side apply needs field ownership: see `managed::apply`.
        PatchKind::Apply => Err(ApiError::internal(
            "server-side apply is handled by the field manager",
        )),
    }
}

/// The configuration of an apply request.
pub fn applied_config(body: &Bytes, q: &Query) -> ApiResult<Value> {
    let applied = request::decode_yaml(body)?;
    if !applied.is_object() {
        return Err(bad_patch("an apply configuration must be an object"));
    }
    if q.get("fieldManager").is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            "PATCH, application/apply-patch+yaml requests must specify a fieldManager",
        ));
    }
    Ok(applied)
}

/// Server-side apply of an object that does not exist yet: a create.
pub async fn apply_create(
    app: &std::sync::Arc<App>,
    t: &Target,
    name: &str,
    q: &Query,
    body: &Bytes,
) -> ApiResult<Response> {
    let mut applied = applied_config(body, q)?;
    if object::name(&applied) != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            object::name(&applied)
        )));
    }
    object::meta_mut(&mut applied);
    let bytes = Bytes::from(serde_json::to_vec(&applied).unwrap_or_default());
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    let target = Target {
        res: t.res,
        namespace: t.namespace.clone(),
        name: None,
        sub: None,
        watch_path: false,
    };
    let mut q2 = Query::parse(Some(&query_string(q)));
    q2.set(
        crate::handlers::MANAGER,
        q.get(crate::handlers::MANAGER).unwrap_or("unknown"),
    );
    q2.set(
        crate::handlers::APPLIED,
        &serde_json::to_string(&applied).unwrap_or_default(),
    );
    app.create(&target, &q2, &headers, &bytes).await
}

fn query_string(q: &Query) -> String {
    ["fieldManager", "fieldValidation", "dryRun"]
        .iter()
        .filter_map(|k| q.get(k).map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join("&")
}
