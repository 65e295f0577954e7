//! Errors as upstream reports them: every failure reaches the client as a `metav1.Status`.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{json, Value};
use storage::StoreError;

/// One cause of an error (metav1.StatusCause).
#[derive(Clone, Debug, PartialEq)]
pub struct Cause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

impl Cause {
    pub fn new(reason: &str, message: impl Into<String>, field: &str) -> Self {
        Cause {
            reason: reason.to_string(),
            message: message.into(),
            field: field.to_string(),
        }
    }
}

/// An API error: an HTTP code, a reason and a message, plus optional details.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Box<Value>>,
    pub retry_after: Option<u64>,
    /// The Status's `metadata.continue` (upstream's inconsistent-continue token on a 410).
    pub list_continue: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The identity of what an error is about: group, kind (the resource, plural), name.
pub struct Target<'a> {
    pub group: &'a str,
    pub resource: &'a str,
    pub name: &'a str,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
            list_continue: None,
        }
    }

    fn qualified(group: &str, resource: &str) -> String {
        if group.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}.{group}")
        }
    }

    fn details(t: &Target<'_>) -> Value {
        let mut d = json!({"name": t.name, "kind": t.resource});
        if !t.group.is_empty() {
            d["group"] = json!(t.group);
        }
        d
    }

    pub fn not_found(t: Target<'_>) -> Self {
        let mut e = Self::new(
            404,
            "NotFound",
            format!(
                "{} \"{}\" not found",
                Self::qualified(t.group, t.resource),
                t.name
            ),
        );
        e.details = Some(Box::new(Self::details(&t)));
        e
    }

    pub fn already_exists(t: Target<'_>) -> Self {
        let mut e = Self::new(
            409,
            "AlreadyExists",
            format!(
                "{} \"{}\" already exists",
                Self::qualified(t.group, t.resource),
                t.name
            ),
        );
        e.details = Some(Box::new(Self::details(&t)));
        e
    }

    pub fn conflict(t: Target<'_>, why: &str) -> Self {
        let mut e = Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {why}",
                Self::qualified(t.group, t.resource),
                t.name
            ),
        );
        e.details = Some(Box::new(Self::details(&t)));
        e
    }

    pub fn stale(t: Target<'_>) -> Self {
        Self::conflict(
            t,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 Invalid with one cause per field, as upstream's NewInvalid.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let joined = if causes.len() == 1 {
            format!("{}: {}", causes[0].field, causes[0].message)
        } else {
            let parts: Vec<String> = causes
                .iter()
                .map(|c| {
                    if c.field.is_empty() {
                        c.message.clone()
                    } else {
                        format!("{}: {}", c.field, c.message)
                    }
                })
                .collect();
            format!("[{}]", parts.join(", "))
        };
        let gk = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{gk} \"{name}\" is invalid: {joined}"),
        );
        let mut d = json!({"name": name, "kind": kind});
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        d["causes"] = Value::Array(
            causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect(),
        );
        e.details = Some(Box::new(d));
        e
    }

    /// An error answered by another server (a kubelet), with its code kept, as upstream's
    /// `NewGenericServerResponse`.
    pub fn generic(code: u16, msg: impl Into<String>) -> Self {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            410 => "Gone",
            422 => "Invalid",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        Self::new(code, reason, msg)
    }

    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", msg)
    }

    pub fn method_not_allowed(msg: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", msg)
    }

    pub fn gone(msg: impl Into<String>) -> Self {
        Self::new(410, "Expired", msg)
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(500, "InternalError", msg)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn unavailable(msg: impl Into<String>) -> Self {
        let mut e = Self::new(503, "ServiceUnavailable", msg);
        e.retry_after = Some(1);
        e
    }

    pub fn too_large() -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        )
    }

    /// Maps a storage error for one object.
    pub fn from_store(e: StoreError, t: Target<'_>) -> Self {
        match e {
            StoreError::NotFound(_) => Self::not_found(t),
            StoreError::AlreadyExists(_) => Self::already_exists(t),
            StoreError::Conflict { .. } => Self::stale(t),
            other => Self::from(other),
        }
    }

    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": if self.code < 400 { "Success" } else { "Failure" },
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = (**d).clone();
        }
        if let Some(c) = &self.list_continue {
            s["metadata"]["continue"] = json!(c);
        }
        if let Some(r) = self.retry_after {
            let d = s
                .as_object_mut()
                .unwrap()
                .entry("details")
                .or_insert_with(|| json!({}));
            d["retryAfterSeconds"] = json!(r);
        }
        s
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Compacted { requested, .. } => ApiError::gone(format!(
                "too old resource version: {requested} ({})",
                match &e {
                    StoreError::Compacted { compacted, .. } => *compacted,
                    _ => 0,
                }
            )),
            StoreError::FutureRevision { requested, current } => {
                let mut e = ApiError::new(
                    504,
                    "Timeout",
                    format!("Too large resource version: {requested}, current: {current}"),
                );
                e.details = Some(Box::new(
                    json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
                ));
                e
            }
            StoreError::Unavailable(m) => ApiError::unavailable(m),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.status()).unwrap_or_default();
        let mut resp = (code, body).into_response();
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        if let Some(r) = self.retry_after {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(r));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_continue_carries_the_inconsistent_token_in_the_status() {
        let e = ApiError {
            list_continue: Some("tok".into()),
            ..ApiError::gone("too old")
        };
        let s = e.status();
        assert_eq!(s["code"], 410);
        assert_eq!(s["reason"], "Expired");
        assert_eq!(s["metadata"]["continue"], "tok");
        assert_eq!(ApiError::gone("x").status()["metadata"], json!({}));
    }
}
