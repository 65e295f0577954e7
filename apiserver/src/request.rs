//! Request parsing: the URL into a route, the query string, bodies and media types.

use std::collections::HashMap;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::resources::{self, Resource};

/// Largest request body accepted (upstream's 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Where a request goes.
#[derive(Debug)]
pub enum Route {
    Api,
    ApiVersion,
    Apis,
    Group(String),
    GroupVersion(String, String),
    Object(Target),
    Version,
    Health(&'static str),
    Metrics,
    /// The cluster CA (k3s's `/cacerts`), for agents to pin against the join token.
    CaCerts,
    OpenApiV2,
    OpenApiV3,
    OpenApiV3Doc(String),
    NotFound,
}

/// A request for a resource, a collection, or a subresource.
#[derive(Debug)]
pub struct Target {
    pub res: &'static Resource,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
    /// The legacy `/watch/` path prefix was used.
    pub watch_path: bool,
}

pub fn route(path: &str) -> Route {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["api"] => Route::Api,
        ["api", "v1"] => Route::ApiVersion,
        ["apis"] => Route::Apis,
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v] => Route::GroupVersion(g.to_string(), v.to_string()),
        ["api", "v1", rest @ ..] => object_route("", "v1", rest),
        ["apis", g, v, rest @ ..] => object_route(g, v, rest),
        ["version"] => Route::Version,
        ["healthz", ..] => Route::Health("healthz"),
        ["livez", ..] => Route::Health("livez"),
        ["readyz", ..] => Route::Health("readyz"),
        ["metrics"] => Route::Metrics,
        ["cacerts"] => Route::CaCerts,
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3,
        ["openapi", "v3", rest @ ..] => Route::OpenApiV3Doc(rest.join("/")),
        _ => Route::NotFound,
    }
}

fn object_route(group: &str, version: &str, segs: &[&str]) -> Route {
    let (watch_path, segs) = match segs {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, segs),
    };
    let found = |plural: &str| resources::find(group, version, plural);
    let owned = |s: &&str| s.to_string();
    let target = match segs {
        ["namespaces", ns, plural, rest @ ..]
            if !(rest.is_empty() && (*plural == "status" || *plural == "finalize")) =>
        {
            let Some(res) = found(plural) else {
                return Route::NotFound;
            };
            if !res.namespaced || rest.len() > 2 {
                return Route::NotFound;
            }
            Target {
                res,
                namespace: Some(ns.to_string()),
                name: rest.first().map(owned),
                sub: rest.get(1).map(owned),
                watch_path,
            }
        }
        [plural, rest @ ..] if rest.len() <= 2 => {
            let Some(res) = found(plural) else {
                return Route::NotFound;
            };
            if res.namespaced && !rest.is_empty() {
                return Route::NotFound;
            }
            Target {
                res,
                namespace: None,
                name: rest.first().map(owned),
                sub: rest.get(1).map(owned),
                watch_path,
            }
        }
        _ => return Route::NotFound,
    };
    if target.name.as_deref() == Some("") {
        return Route::NotFound;
    }
    Route::Object(target)
}

/// The query string, decoded.
#[derive(Debug, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        let mut m = HashMap::new();
        for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode(k);
            // Keys starting with NUL are the server's own (see handlers::MANAGER).
            if !k.starts_with('\0') {
                m.insert(k, decode(v));
            }
        }
        Query(m)
    }

    pub fn set(&mut self, k: &str, v: &str) {
        self.0.insert(k.to_string(), v.to_string());
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true") | Some("1"))
    }

    pub fn int(&self, k: &str) -> ApiResult<Option<i64>> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value for {k}: {v:?} is not an integer"))
            }),
        }
    }
}

/// Percent-encodes a path segment or query value.
pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The media type of a request body, without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Decodes a JSON or YAML object body.
pub fn decode_body(headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    let ct = content_type(headers);
    match ct.as_str() {
        "" | "application/json" | "*/*" => decode_json(body),
        "application/yaml" | "application/apply-patch+yaml" => decode_yaml(body),
        "application/vnd.kubernetes.protobuf" => crate::proto::decode(body).map_err(|e| {
            if e.contains("not supported") {
                unsupported_media(&ct, &["application/json", "application/yaml"])
            } else {
                ApiError::bad_request(e)
            }
        }),
        other => Err(unsupported_media(
            other,
            &["application/json", "application/yaml"],
        )),
    }
}

pub fn unsupported_media(ct: &str, accepted: &[&str]) -> ApiError {
    ApiError::new(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: {}",
            if accepted.is_empty() {
                ct.to_string()
            } else {
                accepted.join(", ")
            }
        ),
    )
}

pub fn decode_json(body: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the object provided is unrecognized: invalid JSON: {e}"
        ))
    })
}

pub fn decode_yaml(body: &[u8]) -> ApiResult<Value> {
    let v: serde_yaml::Value = serde_yaml::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))?;
    serde_json::to_value(v)
        .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))
}

/// What the client accepts as a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    Json,
    Table,
    PartialMetadata,
    PartialMetadataList,
}

pub fn accept(headers: &HeaderMap) -> ApiResult<Accept> {
    let Some(a) = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(Accept::Json);
    };
    let mut plain_ok = false;
    for part in a.split(',') {
        let mut params = part.split(';').map(str::trim);
        let mt = params.next().unwrap_or("").to_ascii_lowercase();
        let mut as_ = "";
        let mut g = "";
        for p in params {
            if let Some(v) = p.strip_prefix("as=") {
                as_ = v;
            } else if let Some(v) = p.strip_prefix("g=") {
                g = v;
            }
        }
        if !(mt == "application/json" || mt == "*/*" || mt == "application/*") {
            continue;
        }
        match (as_, g) {
            ("Table", "meta.k8s.io") => return Ok(Accept::Table),
            ("PartialObjectMetadata", "meta.k8s.io") => return Ok(Accept::PartialMetadata),
            ("PartialObjectMetadataList", "meta.k8s.io") => return Ok(Accept::PartialMetadataList),
            ("", _) => plain_ok = true,
            _ => {}
        }
    }
    if plain_ok {
        Ok(Accept::Json)
    } else {
        Err(ApiError::new(
            406,
            "NotAcceptable",
            format!("only the following media types are accepted: application/json, application/yaml; got {a}"),
        ))
    }
}

/// Paths of object keys that appear twice in a JSON body (e.g. `spec.replicas`), which
/// `fieldValidation` reports as duplicate fields. Malformed JSON yields none (decoding
/// reports it).
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::cell::RefCell;

    struct Walk<'a> {
        path: String,
        out: &'a RefCell<Vec<String>>,
    }
    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(k) = m.next_key::<String>()? {
                let p = if self.path.is_empty() {
                    k.clone()
                } else {
                    format!("{}.{k}", self.path)
                };
                if !seen.insert(k) {
                    self.out.borrow_mut().push(p.clone());
                }
                m.next_value_seed(Walk {
                    path: p,
                    out: self.out,
                })?;
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
            let mut i = 0;
            while s
                .next_element_seed(Walk {
                    path: format!("{}[{i}]", self.path),
                    out: self.out,
                })?
                .is_some()
            {
                i += 1;
            }
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    }
    let out = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(body);
    let _ = Walk {
        path: String::new(),
        out: &out,
    }
    .deserialize(&mut de);
    out.into_inner()
}
