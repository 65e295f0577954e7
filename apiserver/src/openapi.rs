//! OpenAPI v3: one document per group-version, with the schemas of `k8s-openapi`, the
//! operations of every served resource (declaring `fieldValidation` on writes, so kubectl
//! leaves validation to the server) and `x-kubernetes-group-version-kind` on kinds and
//! operations (for `kubectl explain`).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use k8s_openapi::api::{autoscaling, coordination, core::v1 as core, discovery};
use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};
use sha2::Digest;

use crate::discovery::KUBE_GIT_VERSION;
use crate::resources::{Resource, RESOURCES};

pub struct Docs {
    /// "api/v1" → (hash, document bytes)
    pub docs: BTreeMap<String, (String, Vec<u8>)>,
    pub index: Vec<u8>,
}

pub fn docs() -> &'static Docs {
    static DOCS: OnceLock<Docs> = OnceLock::new();
    DOCS.get_or_init(build)
}

fn schema_name(r: &Resource) -> String {
    let g = match r.group {
        "" => "core".to_string(),
        g => g.split('.').next().unwrap_or(g).to_string(),
    };
    format!("io.k8s.api.{g}.{}.{}", r.version, r.kind)
}

fn schemas() -> Map<String, Value> {
    let mut gen = SchemaSettings::openapi3().into_generator();
    macro_rules! add {
        ($($t:ty),*) => { $( let _ = gen.subschema_for::<$t>(); )* };
    }
    add!(
        core::Pod,
        core::ReplicationController,
        core::PodTemplate,
        core::Service,
        core::Endpoints,
        core::Namespace,
        core::Node,
        core::Event,
        core::ConfigMap,
        core::Secret,
        core::ServiceAccount,
        core::Binding,
        coordination::v1::Lease,
        discovery::v1::EndpointSlice,
        autoscaling::v1::Scale,
        k8s_openapi::api::events::v1::Event,
        k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta,
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Status,
        k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions
    );
    let mut defs: Map<String, Value> = gen.take_definitions(true).into_iter().collect();
    let gvk = |name: &str, group: &str, version: &str, kind: &str| {
        (
            name.to_string(),
            json!([{"group": group, "version": version, "kind": kind}]),
        )
    };
    for r in RESOURCES {
        let s = schema_name(r);
        defs.insert(format!("{s}List"), json!({
            "description": format!("{}List is a list of {} objects.", r.kind, r.kind),
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{s}")}},
                "metadata": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"},
            },
        }));
    }
    for (ty, field, strategy, key) in crate::patch::patch_tags() {
        let suffixes: Vec<String> = if ty == "Container" {
            vec![".Container".into(), ".EphemeralContainer".into()]
        } else {
            vec![format!(".{ty}")]
        };
        for (name, schema) in defs.iter_mut() {
            if !suffixes.iter().any(|s| name.ends_with(s.as_str())) {
                continue;
            }
            if let Some(Value::Object(prop)) = schema.pointer_mut(&format!("/properties/{field}")) {
                prop.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
                if !key.is_empty() {
                    prop.insert("x-kubernetes-patch-merge-key".into(), json!(key));
                }
            }
        }
    }
    let mut marks = vec![
        gvk(
            "io.k8s.api.autoscaling.v1.Scale",
            "autoscaling",
            "v1",
            "Scale",
        ),
        gvk("io.k8s.api.core.v1.Binding", "", "v1", "Binding"),
        gvk(
            "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
            "",
            "v1",
            "Status",
        ),
    ];
    for r in RESOURCES {
        marks.push(gvk(&schema_name(r), r.group, r.version, r.kind));
        marks.push(gvk(
            &format!("{}List", schema_name(r)),
            r.group,
            r.version,
            &format!("{}List", r.kind),
        ));
    }
    for (name, ext) in marks {
        if let Some(Value::Object(s)) = defs.get_mut(&name) {
            s.insert("x-kubernetes-group-version-kind".into(), ext);
        }
    }
    defs
}

fn param(name: &str, desc: &str) -> Value {
    json!({"name": name, "in": "query", "description": desc, "schema": {"type": "string", "uniqueItems": true}})
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}})
}

fn op(
    r: &Resource,
    action: &str,
    id: &str,
    schema: &str,
    writes: bool,
    kind: Option<(&str, &str, &str)>,
) -> Value {
    let (g, v, k) = kind.unwrap_or((r.group, r.version, r.kind));
    let content =
        json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}});
    let mut o = json!({
        "tags": [if r.group.is_empty() { "core_v1".to_string() } else { format!("{}_{}", r.group.split('.').next().unwrap_or(""), r.version) }],
        "operationId": id,
        "responses": {"200": {"description": "OK", "content": content.clone()}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": g, "version": v, "kind": k},
    });
    let mut params = vec![param(
        "pretty",
        "If 'true', then the output is pretty printed.",
    )];
    if writes {
        params.push(param(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
        ));
        params.push(param("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."));
        params.push(param("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn (default) - Strict"));
        o["requestBody"] = json!({"content": content, "required": true});
    }
    o["parameters"] = Value::Array(params);
    o
}

fn paths_for(r: &Resource) -> Vec<(String, Value)> {
    let base = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    let coll = if r.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{base}/{}", r.plural)
    };
    let s = schema_name(r);
    let list = format!("{s}List");
    let k = r.kind;
    let mut out = Vec::new();
    let mut common = vec![];
    if r.namespaced {
        common.push(path_param("namespace"));
    }
    let mut c = json!({
        "get": op(r, "list", &format!("list{k}"), &list, false, None),
        "post": op(r, "post", &format!("create{k}"), &s, true, None),
        "parameters": common.clone(),
    });
    if r.verbs.contains(&"deletecollection") {
        c["delete"] = op(
            r,
            "deletecollection",
            &format!("deleteCollection{k}"),
            "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
            false,
            None,
        );
    }
    out.push((coll.clone(), c));
    let mut item_params = common.clone();
    item_params.push(path_param("name"));
    let mut patch = op(r, "patch", &format!("patch{k}"), &s, true, None);
    patch["requestBody"] = json!({"content": {
        "application/json-patch+json": {"schema": {"type": "object"}},
        "application/merge-patch+json": {"schema": {"type": "object"}},
        "application/strategic-merge-patch+json": {"schema": {"type": "object"}},
        "application/apply-patch+yaml": {"schema": {"type": "object"}},
    }, "required": true});
    patch["parameters"].as_array_mut().unwrap().push(param(
        "force",
        "Force is going to \"force\" Apply requests.",
    ));
    out.push((
        format!("{coll}/{{name}}"),
        json!({
            "get": op(r, "get", &format!("read{k}"), &s, false, None),
            "put": op(r, "put", &format!("replace{k}"), &s, true, None),
            "patch": patch,
            "delete": op(r, "delete", &format!("delete{k}"), &s, false, None),
            "parameters": item_params.clone(),
        }),
    ));
    for sub in r.subresources {
        let p = format!("{coll}/{{name}}/{}", sub.name);
        let (schema, kind) = match sub.name {
            "scale" => (
                "io.k8s.api.autoscaling.v1.Scale".to_string(),
                Some(("autoscaling", "v1", "Scale")),
            ),
            "status" | "ephemeralcontainers" | "resize" | "finalize" => (s.clone(), None),
            _ => continue,
        };
        let mut e = json!({"parameters": item_params.clone()});
        for verb in sub.verbs {
            let (m, a) = match *verb {
                "get" => ("get", "get"),
                "update" => ("put", "put"),
                "patch" => ("patch", "patch"),
                _ => continue,
            };
            let id = format!("{a}{k}{}", capitalize(sub.name));
            e[m] = op(r, a, &id, &schema, m != "get", kind);
        }
        out.push((p, e));
    }
    out
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn build() -> Docs {
    let schemas = schemas();
    let mut by_gv: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for r in RESOURCES {
        let key = if r.group.is_empty() {
            format!("api/{}", r.version)
        } else {
            format!("apis/{}/{}", r.group, r.version)
        };
        let paths = by_gv.entry(key).or_default();
        for (p, v) in paths_for(r) {
            paths.insert(p, v);
        }
    }
    let mut docs = BTreeMap::new();
    let mut index = Map::new();
    for (gv, paths) in by_gv {
        let doc = json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": KUBE_GIT_VERSION},
            "paths": paths,
            "components": {"schemas": schemas},
        });
        let bytes = serde_json::to_vec(&doc).unwrap_or_default();
        let hash: String = sha2::Sha512::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        index.insert(
            gv.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={hash}")}),
        );
        docs.insert(gv, (hash, bytes));
    }
    let index = serde_json::to_vec(&json!({"paths": index})).unwrap_or_default();
    Docs { docs, index }
}

/// The Swagger 2.0 form of all documents (for kubectl before 1.29).
pub fn v2_json() -> &'static Vec<u8> {
    static V2: OnceLock<Vec<u8>> = OnceLock::new();
    V2.get_or_init(|| serde_json::to_vec(&swagger()).unwrap_or_default())
}

/// The Swagger 2.0 document as gnostic's protobuf, which kubectl asks for.
pub fn v2_protobuf() -> &'static Vec<u8> {
    static V2: OnceLock<Vec<u8>> = OnceLock::new();
    V2.get_or_init(|| match crate::openapiv2::encode_document(&swagger()) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the OpenAPI v2 document");
            Vec::new()
        }
    })
}

fn v3_to_v2_refs(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref") {
                *r = r.replace("#/components/schemas/", "#/definitions/");
            }
            for (_, x) in m.iter_mut() {
                v3_to_v2_refs(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(v3_to_v2_refs),
        _ => {}
    }
}

fn swagger() -> Value {
    let mut definitions = schemas();
    for (_, s) in definitions.iter_mut() {
        v3_to_v2_refs(s);
    }
    let mut paths = Map::new();
    for r in RESOURCES {
        for (p, item) in paths_for(r) {
            let mut out = Map::new();
            for (verb, op) in item.as_object().into_iter().flatten() {
                if verb == "parameters" {
                    out.insert(
                        verb.clone(),
                        json!(op
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(v2_param)
                            .collect::<Vec<_>>()),
                    );
                    continue;
                }
                let mut o = op.clone();
                let mut params: Vec<Value> = o["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(v2_param)
                    .collect();
                if let Some(rb) = o.as_object_mut().and_then(|m| m.remove("requestBody")) {
                    let schema = rb["content"]["application/json"]["schema"].clone();
                    let schema = if schema.is_null() {
                        json!({"type": "object"})
                    } else {
                        schema
                    };
                    params.push(
                        json!({"name": "body", "in": "body", "required": true, "schema": schema}),
                    );
                }
                o["parameters"] = Value::Array(params);
                let schema = o["responses"]["200"]["content"]["application/json"]["schema"].clone();
                o["responses"] = json!({"200": {"description": "OK", "schema": schema}, "401": {"description": "Unauthorized"}});
                v3_to_v2_refs(&mut o);
                out.insert(verb.clone(), o);
            }
            paths.insert(p, Value::Object(out));
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": KUBE_GIT_VERSION},
        "paths": paths,
        "definitions": definitions,
    })
}

fn v2_param(p: &Value) -> Value {
    let mut o = json!({"name": p["name"], "in": p["in"], "type": "string", "uniqueItems": true});
    if let Some(d) = p.get("description") {
        o["description"] = d.clone();
    }
    if p["required"] == json!(true) {
        o["required"] = json!(true);
    }
    o
}
