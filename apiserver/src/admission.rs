//! What happens to an object between decoding and storing: normalization against its
//! schema (unknown fields), system metadata, defaulting, kind-specific admission
//! (service IPs and node ports, namespace finalizers, pod status on create) and validation.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;

use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult, Cause};
use crate::object::{self, meta_mut};
use crate::resources::Resource;
use crate::{defaults, validation, App};

/// Decodes into the kind's type and back: the stored form. Reports unknown fields as
/// `fieldValidation` asks (Strict: 400, Warn — the default — : warnings, Ignore).
///
/// `stored` is the object as stored, when `obj` was made from it (a patch): the fields
/// `obj` left as they were are in stored form already and are neither decoded nor
/// checked again (a status patch leaves a pod's metadata and spec alone).
pub fn normalize(
    res: &Resource,
    kind: &str,
    obj: Value,
    field_validation: Option<&str>,
    duplicates: &[String],
    stored: Option<&Value>,
) -> ApiResult<(Value, Vec<String>)> {
    let f = if kind == "Scale" {
        |v: Value| -> Result<Value, serde_json::Error> {
            let s: k8s_openapi::api::autoscaling::v1::Scale = serde_json::from_value(v)?;
            serde_json::to_value(s)
        }
    } else {
        res.normalize
    };
    let version = obj["apiVersion"]
        .as_str()
        .and_then(|a| a.rsplit('/').next())
        .unwrap_or("v1")
        .to_string();
    let cannot = |e: String| {
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}"
        ))
    };
    let (obj, unchanged) = match stored.and_then(Value::as_object) {
        Some(stored) if kind != "Scale" => set_aside_unchanged(obj, stored),
        _ => (obj, None),
    };
    let out = f(obj.clone()).map_err(|e| cannot(e.to_string()))?;
    let mut unknown = Vec::new();
    unknown_fields(&obj, &out, &mut String::new(), &mut unknown);
    let out = match unchanged {
        Some(u) => u.put_back(out),
        None => out,
    };
    let mut msgs: Vec<String> = unknown
        .iter()
        .map(|p| format!("unknown field \"{p}\""))
        .collect();
    msgs.extend(
        duplicates
            .iter()
            .map(|p| format!("duplicate field \"{p}\"")),
    );
    let mut warnings = Vec::new();
    match field_validation.unwrap_or("Warn") {
        "Strict" if !msgs.is_empty() => {
            return Err(cannot(format!(
                "strict decoding error: {}",
                msgs.join(", ")
            )))
        }
        "Strict" | "Ignore" => {}
        "Warn" => warnings = msgs,
        other => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}"
            )))
        }
    }
    Ok((out, warnings))
}

/// The top-level fields of an object that are as stored, set aside while the rest is
/// normalized, and the stored order of all its fields.
struct Unchanged<'a> {
    fields: Map<String, Value>,
    stored: &'a Map<String, Value>,
}

/// Splits `obj` into the fields that differ from `stored` and those that do not; None
/// when nothing is equal or `obj` has a top-level field `stored` lacks (normalized
/// whole, so that the result's field order is the type's).
fn set_aside_unchanged(obj: Value, stored: &Map<String, Value>) -> (Value, Option<Unchanged<'_>>) {
    let Value::Object(obj) = obj else {
        return (obj, None);
    };
    let same = |k: &str, v: &Value| !matches!(k, "apiVersion" | "kind") && stored.get(k) == Some(v);
    if !obj.keys().all(|k| stored.contains_key(k)) || !obj.iter().any(|(k, v)| same(k, v)) {
        return (Value::Object(obj), None);
    }
    let (fields, changed): (Map<String, Value>, Map<String, Value>) =
        obj.into_iter().partition(|(k, v)| same(k, v));
    (Value::Object(changed), Some(Unchanged { fields, stored }))
}

impl Unchanged<'_> {
    /// The normalized fields with the unchanged ones back, in the stored order.
    fn put_back(mut self, normalized: Value) -> Value {
        let Value::Object(mut normalized) = normalized else {
            return normalized;
        };
        let mut out = Map::new();
        for k in self.stored.keys() {
            // The type writes `metadata` even when it was set aside: the stored one wins.
            let n = normalized.remove(k);
            if let Some(v) = self.fields.remove(k).or(n) {
                out.insert(k.clone(), v);
            }
        }
        // Fields the type writes that the stored object lacked (none but `metadata`).
        out.extend(normalized);
        Value::Object(out)
    }
}

/// The fields of `input` that normalizing dropped (`known`), as dotted paths; `path` is
/// where `input` is (a buffer, restored on return).
fn unknown_fields(input: &Value, known: &Value, path: &mut String, out: &mut Vec<String>) {
    let len = path.len();
    match (input, known) {
        (Value::Object(i), Value::Object(k)) => {
            for (key, v) in i {
                if len > 0 {
                    path.push('.');
                }
                path.push_str(key);
                match k.get(key) {
                    None if !v.is_null() => out.push(path.clone()),
                    None => {}
                    Some(kv) => unknown_fields(v, kv, path, out),
                }
                path.truncate(len);
            }
        }
        (Value::Array(i), Value::Array(k)) => {
            for (n, (a, b)) in i.iter().zip(k.iter()).enumerate() {
                path.push_str(&format!("[{n}]"));
                unknown_fields(a, b, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// System metadata and reset status for a new object.
pub fn prepare_create(res: &Resource, obj: &mut Value, ns: Option<&str>) {
    let m = meta_mut(obj);
    for f in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "uid",
        "creationTimestamp",
        "generation",
    ] {
        m.remove(f);
    }
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(object::now_rfc3339()));
    if res.generation {
        m.insert("generation".into(), json!(1));
    }
    match ns {
        Some(ns) if res.namespaced => {
            m.insert("namespace".into(), json!(ns));
        }
        _ => {
            m.remove("namespace");
        }
    }
    defaults::apply_defaults(res.kind, obj);
    match res.plural {
        "pods" => {
            let qos = qos_class(&obj["spec"]);
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        "replicationcontrollers" => obj["status"] = json!({"replicas": 0}),
        "services" => obj["status"] = json!({"loadBalancer": {}}),
        "namespaces" => {
            let name = object::name(obj).to_string();
            let labels = meta_mut(obj).entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        _ => {}
    }
}

/// Upstream's QoS class of a pod spec (`GetPodQOS`): only cpu and memory count, zero
/// quantities do not; Guaranteed when every container limits both and the summed requests
/// equal the summed limits.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(spec["initContainers"].as_array().into_iter().flatten());
    let (mut requests, mut limits) = (BTreeMap::new(), BTreeMap::new());
    let mut guaranteed = true;
    for c in containers {
        let nonzero = |kind: &str, name: &str| {
            c["resources"][kind]
                .get(name)
                .and_then(crate::validation::Quantity::from_json)
                .map(|q| q.nano)
                .filter(|n| *n != 0)
        };
        let mut limited = 0;
        for name in ["cpu", "memory"] {
            if let Some(n) = nonzero("requests", name) {
                *requests.entry(name).or_insert(0) += n;
            }
            if let Some(n) = nonzero("limits", name) {
                limited += 1;
                *limits.entry(name).or_insert(0) += n;
            }
        }
        guaranteed &= limited == 2;
    }
    if requests.is_empty() && limits.is_empty() {
        "BestEffort"
    } else if guaranteed && requests == limits {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// The object an update stores, from the stored `old` and the client's `new`, for the
/// main resource (`sub` None) or a subresource.
pub fn prepare_update(
    res: &Resource,
    sub: Option<&str>,
    old: &Value,
    new: Value,
) -> ApiResult<Value> {
    let mut obj = match sub {
        None => {
            let mut n = new;
            if res.has_status {
                match old.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Some(o) = n.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
            if res.plural == "namespaces" {
                n["spec"] = old["spec"].clone();
            }
            n
        }
        Some("status") => {
            let mut n = new;
            match old.get("spec") {
                Some(s) => n["spec"] = s.clone(),
                None => {
                    if let Some(o) = n.as_object_mut() {
                        o.remove("spec");
                    }
                }
            }
            if let Some(o) = old["metadata"].get("ownerReferences") {
                meta_mut(&mut n).insert("ownerReferences".into(), o.clone());
            }
            // As upstream's pod status strategy: a status without qosClass keeps the old one
            // (it is immutable; validation refuses another).
            let keep_qos =
                res.plural == "pods" && n["status"]["qosClass"].as_str().unwrap_or("").is_empty();
            if let Some(q) = old["status"].get("qosClass").filter(|_| keep_qos) {
                n["status"]["qosClass"] = q.clone();
            }
            n
        }
        Some("scale") => {
            let mut n = old.clone();
            let replicas = new["spec"]["replicas"].as_i64().unwrap_or(0);
            n["spec"]["replicas"] = json!(replicas);
            n
        }
        Some("finalize") => {
            let mut n = old.clone();
            n["spec"]["finalizers"] = new["spec"]["finalizers"].clone();
            if n["spec"]["finalizers"].is_null() {
                n["spec"]["finalizers"] = json!([]);
            }
            n
        }
        Some("ephemeralcontainers") => {
            let mut n = old.clone();
            n["spec"]["ephemeralContainers"] = new["spec"]["ephemeralContainers"].clone();
            n
        }
        Some("resize") => {
            let mut n = old.clone();
            if let (Some(cs), Some(new_cs)) = (
                n["spec"]["containers"].as_array_mut(),
                new["spec"]["containers"].as_array(),
            ) {
                for c in cs.iter_mut() {
                    if let Some(nc) = new_cs.iter().find(|x| x["name"] == c["name"]) {
                        c["resources"] = nc["resources"].clone();
                    }
                }
            }
            n
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "subresource {other} cannot be updated"
            )))
        }
    };
    // System metadata is the server's.
    let om = old["metadata"].as_object().cloned().unwrap_or_default();
    {
        let m = meta_mut(&mut obj);
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "namespace",
            "name",
            "generation",
            "selfLink",
        ] {
            match om.get(f) {
                Some(v) => {
                    m.insert(f.into(), v.clone());
                }
                None => {
                    m.remove(f);
                }
            }
        }
        // Unconditional updates validate as if made at the current version (as upstream).
        match om.get("resourceVersion") {
            Some(v) => m.insert("resourceVersion".into(), v.clone()),
            None => m.remove("resourceVersion"),
        };
    }
    defaults::apply_defaults(res.kind, &mut obj);
    if res.plural == "pods" && sub.is_none() {
        // DefaultTolerationSeconds runs on updates too; the others find their fields
        // set already (or the update changes an immutable field, which validation refuses).
        defaults::admit_pod(&mut obj);
    }
    if res.generation && obj.get("spec") != old.get("spec") {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        meta_mut(&mut obj).insert("generation".into(), json!(g));
    }
    // An object being deleted may lose finalizers but gain none.
    if old["metadata"].get("deletionTimestamp").is_some() {
        let before: HashSet<String> = strings(&old["metadata"]["finalizers"]);
        let after: HashSet<String> = strings(&obj["metadata"]["finalizers"]);
        if let Some(added) = after.difference(&before).next() {
            return Err(ApiError::invalid(
                res.group,
                res.kind,
                object::name(old),
                vec![Cause {
                    reason: "FieldValueForbidden".into(),
                    message: format!(
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{\"{added}\"}}"
                    ),
                    field: "metadata.finalizers".into(),
                }],
            ));
        }
    }
    Ok(obj)
}

fn strings(v: &Value) -> HashSet<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// Validation of an update through `sub` (none: the object itself): as [`validate`],
/// but `pods/ephemeralcontainers` validates as upstream's
/// `ValidatePodEphemeralContainersUpdate`.
pub fn validate_update(
    res: &Resource,
    sub: Option<&str>,
    obj: &Value,
    old: &Value,
) -> ApiResult<()> {
    if res.plural == "pods" && sub == Some("ephemeralcontainers") {
        let errs = validation::pod_ephemeral_containers_update(obj, old, res.namespaced);
        return invalid(res, obj, errs);
    }
    if res.plural == "pods" && sub == Some("status") {
        let errs = validation::pod_status_update(obj, old, res.namespaced);
        return invalid(res, obj, errs);
    }
    validate(res, obj, Some(old))
}

/// Validation of the object (and the update from `old`), as a 422 with one cause per field.
pub fn validate(res: &Resource, obj: &Value, old: Option<&Value>) -> ApiResult<()> {
    let errs = match &res.stored_as {
        // Validated in the stored form (as upstream validates the internal version).
        Some(s) => validation::validate(
            s.kind,
            &(s.to_storage)(obj.clone()),
            old.map(|o| (s.to_storage)(o.clone())).as_ref(),
            res.namespaced,
        ),
        None => validation::validate(res.kind, obj, old, res.namespaced),
    };
    invalid(res, obj, errs)
}

/// `errs` as a 422 with one cause per field (none: fine).
fn invalid(res: &Resource, obj: &Value, errs: Vec<validation::FieldError>) -> ApiResult<()> {
    if errs.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        res.group,
        res.kind,
        object::name(obj),
        errs.into_iter()
            .map(|e| Cause {
                reason: e.reason.to_string(),
                message: e.message,
                field: e.field,
            })
            .collect(),
    ))
}

/// Kind-specific admission on create: service IPs and node ports.
pub async fn admit_create(app: &App, res: &Resource, obj: &mut Value) -> ApiResult<()> {
    if res.plural == "services" {
        allocate_service(app, obj, None).await?;
    }
    if res.plural == "pods" {
        defaults::admit_pod(obj);
        service_account_exists(app, obj).await?;
        service_account_token(app, obj).await?;
    }
    Ok(())
}

/// Where the ServiceAccount admission plugin mounts the API credentials.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The ServiceAccount admission plugin's token volume: unless the pod (or, when the pod
/// says nothing, its service account) opts out, a `kube-api-access-<random>` projected
/// volume (token, `kube-root-ca.crt`, namespace) mounted read-only at
/// [`TOKEN_MOUNT_PATH`] in every container. Mirror pods are left alone.
async fn service_account_token(app: &App, pod: &mut Value) -> ApiResult<()> {
    if pod["metadata"]["annotations"]
        .get("kubernetes.io/config.mirror")
        .is_some()
    {
        return Ok(());
    }
    let automount = match pod["spec"]["automountServiceAccountToken"].as_bool() {
        Some(a) => a,
        None => {
            let sa = pod["spec"]["serviceAccountName"]
                .as_str()
                .unwrap_or("default");
            let ns = object::namespace(pod).unwrap_or("default");
            let stored = app
                .store
                .get(&format!("/registry/serviceaccounts/{ns}/{sa}"))
                .await?;
            // A missing `default` account (see above) is the default: mount.
            stored
                .and_then(|kv| {
                    object::decode_stored(&kv.value, kv.mod_revision)
                        ["automountServiceAccountToken"]
                        .as_bool()
                })
                .unwrap_or(true)
        }
    };
    if automount {
        mount_token_volume(&mut pod["spec"]);
    }
    Ok(())
}

/// Adds the token volume and its mounts to a pod spec, as upstream's
/// `mountServiceAccountToken`: an existing `kube-api-access-*` volume is reused, a
/// container that already mounts something at the path keeps it.
pub fn mount_token_volume(spec: &mut Value) {
    let volumes: Vec<String> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect();
    let existing = volumes
        .iter()
        .find(|n| n.starts_with("kube-api-access-"))
        .cloned();
    let name = existing.clone().unwrap_or_else(|| loop {
        let n = object::generate_name("kube-api-access-");
        if !volumes.contains(&n) {
            break n;
        }
    });
    let mut needed = false;
    for kind in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(kind).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers {
            let mounts = c
                .as_object_mut()
                .map(|c| c.entry("volumeMounts").or_insert_with(|| json!([])));
            let Some(mounts) = mounts.and_then(Value::as_array_mut) else {
                continue;
            };
            if mounts.iter().any(|m| m["mountPath"] == TOKEN_MOUNT_PATH) {
                continue;
            }
            mounts.push(json!({"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH}));
            needed = true;
        }
    }
    if needed && existing.is_none() {
        let volume = json!({"name": name, "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {"configMap": {"name": "kube-root-ca.crt",
                               "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        }});
        match spec.get_mut("volumes").and_then(Value::as_array_mut) {
            Some(vs) => vs.push(volume),
            None => spec["volumes"] = json!([volume]),
        }
    }
}

/// The ServiceAccount admission plugin's check: a pod's service account must exist, else
/// 403 as upstream words it. Deviation: the `default` account is let through when missing,
/// since the namespace controller creates it just after the namespace (upstream rejects
/// such pods until it exists, and clients retry).
async fn service_account_exists(app: &App, pod: &Value) -> ApiResult<()> {
    let sa = pod["spec"]["serviceAccountName"]
        .as_str()
        .unwrap_or("default");
    if sa.is_empty() || sa == "default" {
        return Ok(());
    }
    let ns = object::namespace(pod).unwrap_or("default");
    if app
        .store
        .get(&format!("/registry/serviceaccounts/{ns}/{sa}"))
        .await?
        .is_some()
    {
        return Ok(());
    }
    // admission.NewForbidden names the object by its generateName when it has one.
    let meta = &pod["metadata"];
    let name = meta["generateName"]
        .as_str()
        .filter(|g| !g.is_empty())
        .or(meta["name"].as_str())
        .unwrap_or_default();
    Err(ApiError::new(
        403,
        "Forbidden",
        format!(
            "pods \"{name}\" is forbidden: error looking up service account {ns}/{sa}: \
             serviceaccount \"{sa}\" not found"
        ),
    ))
}

/// Kind-specific admission on update.
pub async fn admit_update(
    app: &App,
    res: &Resource,
    old: &Value,
    obj: &mut Value,
) -> ApiResult<()> {
    if res.plural == "services" {
        allocate_service(app, obj, Some(old)).await?;
    }
    Ok(())
}

fn svc_type(obj: &Value) -> &str {
    obj["spec"]["type"].as_str().unwrap_or("ClusterIP")
}

async fn allocate_service(app: &App, obj: &mut Value, old: Option<&Value>) -> ApiResult<()> {
    let name = object::name(obj).to_string();
    let ty = svc_type(obj).to_string();
    let spec = &mut obj["spec"];
    if let Some(old) = old {
        let old_ty = svc_type(old);
        // Allocated values carry over when the client leaves them out.
        if ty != "ExternalName" && old_ty != "ExternalName" {
            for f in ["clusterIP", "clusterIPs"] {
                if spec.get(f).is_none_or(|v| v.is_null() || v == "") {
                    if let Some(v) = old["spec"].get(f) {
                        spec[f] = v.clone();
                    }
                }
            }
        }
        if let (Some(ports), Some(old_ports)) = (
            spec["ports"].as_array_mut(),
            old["spec"]["ports"].as_array(),
        ) {
            for p in ports.iter_mut() {
                if p.get("nodePort").is_none_or(|v| v.is_null() || v == 0) {
                    if let Some(op) = old_ports
                        .iter()
                        .find(|op| op["port"] == p["port"] && op["protocol"] == p["protocol"])
                    {
                        if let Some(np) = op.get("nodePort") {
                            p["nodePort"] = np.clone();
                        }
                    }
                }
            }
        }
    }
    let mut used = app
        .used_service_allocations(&name, object::namespace(obj).unwrap_or(""))
        .await?;
    let spec = &mut obj["spec"];
    if ty == "ExternalName" {
        if let Some(s) = spec.as_object_mut() {
            s.remove("clusterIP");
            s.remove("clusterIPs");
            s.remove("ipFamilies");
            s.remove("ipFamilyPolicy");
        }
    } else {
        let ip = spec["clusterIP"].as_str().unwrap_or("").to_string();
        if ip.is_empty() {
            // The cluster DNS address is the node-local DNS server's, never a service's.
            if let std::net::IpAddr::V4(dns) = app.cfg.cluster_dns {
                used.ips.insert(dns);
            }
            let ip = app.cfg.service_cidr.allocate(&used.ips).ok_or_else(|| {
                ApiError::internal("failed to allocate a serviceIP: range is full")
            })?;
            spec["clusterIP"] = json!(ip.to_string());
            spec["clusterIPs"] = json!([ip.to_string()]);
        } else if ip != "None" {
            let unchanged = old.is_some_and(|o| o["spec"]["clusterIP"] == json!(ip));
            if !unchanged {
                let parsed: Option<Ipv4Addr> = ip.parse().ok();
                let field_err = |msg: String| service_invalid(&name, "spec.clusterIPs", msg);
                match parsed {
                    Some(p) if !app.cfg.service_cidr.contains(p) => {
                        return Err(field_err(format!(
                            "Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                            app.cfg.service_cidr
                        )))
                    }
                    Some(p) if used.ips.contains(&p) => {
                        return Err(field_err(format!(
                            "Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated"
                        )))
                    }
                    _ => {}
                }
            }
            if spec.get("clusterIPs").is_none_or(Value::is_null) {
                spec["clusterIPs"] = json!([ip]);
            }
        } else {
            spec["clusterIPs"] = json!(["None"]);
        }
    }
    let wants_node_ports = ty == "NodePort" || ty == "LoadBalancer";
    let (lo, hi) = app.cfg.node_port_range;
    let mut taken = used.node_ports.clone();
    if let Some(ports) = spec["ports"].as_array_mut() {
        for (i, p) in ports.iter_mut().enumerate() {
            let np = p["nodePort"].as_i64().unwrap_or(0);
            if !wants_node_ports {
                if let Some(o) = p.as_object_mut() {
                    o.remove("nodePort");
                }
                continue;
            }
            if np == 0 {
                let free = (lo..=hi)
                    .cycle()
                    .skip(rand::random::<u16>() as usize % (hi - lo + 1) as usize)
                    .take((hi - lo + 1) as usize)
                    .find(|n| !taken.contains(n))
                    .ok_or_else(|| {
                        ApiError::internal("failed to allocate a nodePort: range is full")
                    })?;
                taken.insert(free);
                p["nodePort"] = json!(free);
            } else {
                let unchanged = old.is_some_and(|o| {
                    o["spec"]["ports"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|op| op["nodePort"] == json!(np))
                });
                if !unchanged {
                    let field = format!("spec.ports[{i}].nodePort");
                    let field_err = |msg: String| service_invalid(&name, &field, msg);
                    if np < lo as i64 || np > hi as i64 {
                        return Err(field_err(format!(
                            "Invalid value: {np}: provided port is not in the valid range. The range of valid ports is {lo}-{hi}"
                        )));
                    }
                    if taken.contains(&(np as u16)) {
                        return Err(field_err(format!(
                            "Invalid value: {np}: provided port is already allocated"
                        )));
                    }
                }
                taken.insert(np as u16);
            }
        }
    }
    Ok(())
}

fn service_invalid(name: &str, field: &str, message: String) -> ApiError {
    ApiError::invalid(
        "",
        "Service",
        name,
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message,
            field: field.into(),
        }],
    )
}

/// Service IPs and node ports in use.
#[derive(Default)]
pub struct Allocations {
    pub ips: HashSet<Ipv4Addr>,
    pub node_ports: HashSet<u16>,
}

impl App {
    /// What other services hold (excluding `name` in `ns`).
    pub async fn used_service_allocations(&self, name: &str, ns: &str) -> ApiResult<Allocations> {
        let page = self
            .store
            .list(storage::ListOptions {
                prefix: "/registry/services/",
                ..Default::default()
            })
            .await?;
        let mut a = Allocations::default();
        for kv in page.items {
            let s: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
            if object::name(&s) == name && object::namespace(&s).unwrap_or("") == ns {
                continue;
            }
            if let Some(ip) = s["spec"]["clusterIP"].as_str().and_then(|i| i.parse().ok()) {
                a.ips.insert(ip);
            }
            for p in s["spec"]["ports"].as_array().into_iter().flatten() {
                if let Some(n) = p["nodePort"].as_u64() {
                    a.node_ports.insert(n as u16);
                }
            }
        }
        Ok(a)
    }
}

/// The autoscaling/v1 Scale of a replication controller.
pub fn to_scale(rc: &Value) -> Value {
    let m = &rc["metadata"];
    let selector = rc["spec"]["selector"]
        .as_object()
        .map(|s| {
            let mut pairs: Vec<String> = s
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            pairs.sort();
            pairs.join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"],
            "namespace": m["namespace"],
            "uid": m["uid"],
            "resourceVersion": m["resourceVersion"],
            "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": rc["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": rc["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

/// The grace period a delete gets: `None` for kinds deleted at once.
pub fn grace_period(res: &Resource, obj: &Value, opts: &Value) -> Option<i64> {
    if res.plural != "pods" {
        return None;
    }
    let requested = opts["gracePeriodSeconds"].as_i64();
    let unscheduled = obj["spec"]["nodeName"].as_str().unwrap_or("").is_empty();
    let finished = matches!(
        obj["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if unscheduled || finished {
        return Some(0);
    }
    let default = obj["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap_or(30);
    Some(requested.unwrap_or(default).max(0))
}

/// Whether a delete answers with the deleted object rather than a Status.
pub fn returns_deleted_object(res: &Resource) -> bool {
    matches!(
        res.plural,
        "pods" | "services" | "namespaces" | "nodes" | "replicationcontrollers"
    )
}

/// An IPv4 CIDR for service addresses.
#[derive(Clone, Copy, Debug)]
pub struct Cidr {
    pub base: Ipv4Addr,
    pub bits: u8,
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.bits)
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, bits) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR (a.b.c.d/n)"))?;
        let base: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("{ip:?} is not an IPv4 address"))?;
        let bits: u8 = bits
            .parse()
            .map_err(|_| format!("{bits:?} is not a prefix length"))?;
        if !(8..=30).contains(&bits) {
            return Err(format!("prefix length /{bits} must be between /8 and /30"));
        }
        let mask = u32::MAX << (32 - bits);
        Ok(Cidr {
            base: Ipv4Addr::from(u32::from(base) & mask),
            bits,
        })
    }
}

impl Cidr {
    fn size(&self) -> u32 {
        1u32 << (32 - self.bits)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - self.bits);
        u32::from(ip) & mask == u32::from(self.base)
    }

    /// The n-th address of the range (1: the first usable one).
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + n)
    }

    /// A free address, chosen at random as upstream does.
    pub fn allocate(&self, used: &HashSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        let usable = self.size() - 2;
        let start = rand::random::<u32>() % usable;
        (0..usable)
            .map(|i| self.nth(1 + (start + i) % usable))
            .find(|ip| !used.contains(ip) && *ip != self.nth(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_volume_is_mounted_in_every_container_once() {
        let mut spec = json!({
            "initContainers": [{"name": "i", "image": "busybox"}],
            "containers": [
                {"name": "a", "image": "busybox"},
                {"name": "b", "image": "busybox",
                 "volumeMounts": [{"name": "own", "mountPath": TOKEN_MOUNT_PATH}]},
            ],
            "volumes": [{"name": "own", "emptyDir": {}}],
        });
        mount_token_volume(&mut spec);
        let vols = spec["volumes"].as_array().unwrap();
        assert_eq!(vols.len(), 2);
        let name = vols[1]["name"].as_str().unwrap().to_string();
        assert!(
            name.starts_with("kube-api-access-") && name.len() == 21,
            "{name}"
        );
        assert_eq!(
            vols[1]["projected"]["sources"][1]["configMap"]["name"],
            "kube-root-ca.crt"
        );
        let mount = json!({"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
        assert_eq!(spec["initContainers"][0]["volumeMounts"], json!([mount]));
        assert_eq!(spec["containers"][0]["volumeMounts"], json!([mount]));
        // A container mounting its own volume there keeps it.
        assert_eq!(
            spec["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        // Again: nothing changes (the volume is found by its prefix).
        let before = spec.clone();
        mount_token_volume(&mut spec);
        assert_eq!(spec, before);
    }
}

#[cfg(test)]
mod qos_tests {
    use super::*;

    #[test]
    fn qos_class_is_upstreams_get_pod_qos() {
        let spec = |containers: Value| json!({"containers": containers});
        let c = |requests: Value, limits: Value| json!({"name": "c", "resources": {"requests": requests, "limits": limits}});
        let cases = [
            (spec(json!([{"name": "c"}])), "BestEffort"),
            // Only cpu and memory count, and zero is none.
            (
                spec(json!([c(json!({"ephemeral-storage": "1Gi"}), json!({}))])),
                "BestEffort",
            ),
            (
                spec(json!([c(json!({"cpu": "0"}), json!({"memory": "0"}))])),
                "BestEffort",
            ),
            (
                spec(json!([c(
                    json!({"cpu": "1", "memory": "1Gi"}),
                    json!({"cpu": "1", "memory": "1Gi"})
                )])),
                "Guaranteed",
            ),
            // Equal quantities written differently.
            (
                spec(json!([c(
                    json!({"cpu": "1000m", "memory": "1024Mi"}),
                    json!({"cpu": "1", "memory": "1Gi"})
                )])),
                "Guaranteed",
            ),
            (
                spec(json!([c(
                    json!({"cpu": "500m", "memory": "1Gi"}),
                    json!({"cpu": "1", "memory": "1Gi"})
                )])),
                "Burstable",
            ),
            // Every container must limit both.
            (
                spec(
                    json!([c(json!({"cpu": "1", "memory": "1Gi"}), json!({"cpu": "1", "memory": "1Gi"})), {"name": "d"}]),
                ),
                "Burstable",
            ),
            (
                spec(json!([c(json!({}), json!({"cpu": "1"}))])),
                "Burstable",
            ),
        ];
        for (i, (s, want)) in cases.iter().enumerate() {
            assert_eq!(qos_class(s), *want, "case {i}: {s}");
        }
    }
}

#[cfg(test)]
mod normalize_tests {
    use super::*;

    fn pods() -> &'static Resource {
        crate::resources::find("", "v1", "pods").unwrap()
    }

    fn normalize_pod(obj: &Value, stored: Option<&Value>) -> (Value, Vec<String>) {
        normalize(pods(), "Pod", obj.clone(), None, &[], stored).unwrap()
    }

    /// A pod as stored: normalized, with the metadata the server adds.
    fn stored_pod() -> Value {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "uid": "u", "resourceVersion": "7",
                         "labels": {"app": "a"},
                         "managedFields": [{"manager": "m", "operation": "Update", "apiVersion": "v1",
                                            "time": "2026-11-23T08:00:00Z", "fieldsType": "FieldsV1",
                                            "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}}}]},
            "spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "10m"}}}]},
            "status": {"phase": "Pending", "qosClass": "Burstable"}});
        normalize_pod(&pod, None).0
    }

    #[test]
    fn fields_left_as_stored_are_not_normalized_again_and_the_result_is_the_same() {
        let stored = stored_pod();
        let mut running = stored.clone();
        running["status"]["phase"] = json!("Running");
        running["status"]["podIP"] = json!("10.42.0.2");
        running["status"]["conditions"] = json!([{"type": "Ready", "status": "True", "bogus": 1}]);
        let mut relabelled = stored.clone();
        relabelled["metadata"]["labels"]["tier"] = json!("web");
        relabelled["spec"]["containers"][0]["bogus"] = json!(true);
        let mut emptied = stored.clone();
        emptied.as_object_mut().unwrap().remove("status");
        for obj in [&stored, &running, &relabelled, &emptied] {
            let whole = normalize_pod(obj, None);
            let short = normalize_pod(obj, Some(&stored));
            assert_eq!(short, whole);
            // Same fields in the same order: the stored bytes would be the same.
            assert_eq!(
                serde_json::to_string(&short.0).unwrap(),
                serde_json::to_string(&whole.0).unwrap()
            );
        }
        let (_, warnings) = normalize_pod(&running, Some(&stored));
        assert_eq!(warnings, ["unknown field \"status.conditions[0].bogus\""]);
        let (_, warnings) = normalize_pod(&relabelled, Some(&stored));
        assert_eq!(warnings, ["unknown field \"spec.containers[0].bogus\""]);
    }

    #[test]
    fn only_the_fields_that_differ_from_the_stored_object_are_decoded() {
        let stored = stored_pod();
        let mut patched = stored.clone();
        patched["status"]["phase"] = json!("Running");
        let (reduced, unchanged) =
            set_aside_unchanged(patched.clone(), stored.as_object().unwrap());
        let reduced_keys: Vec<&String> = reduced.as_object().unwrap().keys().collect();
        assert_eq!(reduced_keys, ["apiVersion", "kind", "status"]);
        let unchanged = unchanged.unwrap();
        let kept: Vec<&String> = unchanged.fields.keys().collect();
        assert_eq!(kept, ["metadata", "spec"]);
        // A field the stored object lacks: everything is normalized.
        patched["extra"] = json!(1);
        let (whole, none) = set_aside_unchanged(patched.clone(), stored.as_object().unwrap());
        assert!(none.is_none());
        assert_eq!(whole, patched);
    }
}
