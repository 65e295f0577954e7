//! Object defaulting mirroring upstream Kubernetes v1.33 for the core v1 surface:
//! `pkg/apis/core/v1/defaults.go` + `zz_generated.defaults.go` (`SetObjectDefaults_*`),
//! discovery/v1 EndpointPort defaults, the round trip through the internal version
//! (quantity canonicalisation, `serviceAccount`/`podCIDR` aliases, `stringData` merge),
//! plus the service registry's IP-family defaulting for a single-stack IPv4 cluster.
//! [`admit_pod`] is apart: the default-on admission plugins that need no other object
//! (ServiceAccount's `serviceAccountName`, DefaultTolerationSeconds, Priority), which run
//! after a create has recorded its writer's fields.

use crate::validation::{b64_encode, Quantity, VOLUME_SOURCES};
use serde_json::{json, Map, Value};

/// Applies upstream's defaults for `kind` to `obj` in place.
static NOT_READY_TOLERATION: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(300);
static UNREACHABLE_TOLERATION: std::sync::atomic::AtomicI64 =
    std::sync::atomic::AtomicI64::new(300);

/// The tolerationSeconds the DefaultTolerationSeconds admission gives pods for the
/// not-ready and unreachable taints (kube-apiserver's `--default-not-ready-toleration-seconds`
/// and `--default-unreachable-toleration-seconds`, 300 by default). Process-wide.
pub fn set_default_toleration_seconds(not_ready: i64, unreachable: i64) {
    NOT_READY_TOLERATION.store(not_ready, std::sync::atomic::Ordering::Relaxed);
    UNREACHABLE_TOLERATION.store(unreachable, std::sync::atomic::Ordering::Relaxed);
}

pub fn apply_defaults(kind: &str, obj: &mut Value) {
    match kind {
        "Pod" => pod(obj),
        "ReplicationController" => replication_controller(obj),
        // SetObjectDefaults_PodTemplate: the template's pod spec, as a pod's.
        "PodTemplate" => {
            if let Some(t) = opt(obj, "template") {
                pod_spec(child(t, "spec"));
            }
        }
        "Service" => service(obj),
        "Endpoints" => {
            for ss in each(obj, "subsets") {
                for p in each(ss, "ports") {
                    set_if_zero(p, "protocol", "TCP");
                }
            }
        }
        "Namespace" => {
            let name = str_of(obj.pointer("/metadata/name")).to_string();
            if !name.is_empty() {
                child(child(obj, "metadata"), "labels")["kubernetes.io/metadata.name"] =
                    Value::from(name);
            }
            set_if_zero(child(obj, "status"), "phase", "Active");
        }
        "Node" => node(obj),
        "Secret" => secret(obj),
        "EndpointSlice" => {
            for p in each(obj, "ports") {
                set_if_unset(p, "name", "");
                set_if_unset(p, "protocol", "TCP");
            }
        }
        // ConfigMap's `data = {}` default is invisible on the wire (omitempty); Lease,
        // Event, ServiceAccount and Scale have no defaults.
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// JSON helpers
// ---------------------------------------------------------------------------

fn str_of(v: Option<&Value>) -> &str {
    v.and_then(Value::as_str).unwrap_or("")
}

fn as_map(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut().expect("object")
}

/// The object at `k`, created (as `{}`) when absent or null.
fn child<'a>(v: &'a mut Value, k: &str) -> &'a mut Value {
    let e = as_map(v).entry(k).or_insert(Value::Null);
    if !e.is_object() {
        *e = Value::Object(Map::new());
    }
    e
}

/// The value at `k` when present and not null.
fn opt<'a>(v: &'a mut Value, k: &str) -> Option<&'a mut Value> {
    v.get_mut(k).filter(|x| !x.is_null())
}

fn each<'a>(v: &'a mut Value, k: &str) -> impl Iterator<Item = &'a mut Value> {
    v.get_mut(k)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// Sets `k` when absent or null (Go: pointer field is nil).
fn set_if_unset(v: &mut Value, k: &str, val: impl Into<Value>) {
    if v.get(k).is_none_or(Value::is_null) {
        as_map(v).insert(k.into(), val.into());
    }
}

/// Sets `k` when absent, null, "" or 0 (Go: value field is the zero value).
fn set_if_zero(v: &mut Value, k: &str, val: impl Into<Value>) {
    let zero = match v.get(k) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        _ => false,
    };
    if zero {
        as_map(v).insert(k.into(), val.into());
    }
}

/// `SetDefaults_ResourceList`: round up to milli-units; values are re-serialised the way
/// upstream's `Quantity.MarshalJSON` writes them (canonical form).
fn resource_list(parent: &mut Value, k: &str) {
    for v in parent
        .get_mut(k)
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|m| m.values_mut())
    {
        if let Some(mut q) = Quantity::from_json(v) {
            q.round_up_milli();
            *v = Value::from(q.to_str());
        }
    }
}

fn resources(parent: &mut Value) {
    if let Some(r) = opt(parent, "resources") {
        resource_list(r, "limits");
        resource_list(r, "requests");
    }
}

// ---------------------------------------------------------------------------
// Pods and pod templates
// ---------------------------------------------------------------------------

/// Tag as returned by upstream's `parsers.ParseImageName` (`None` when unparsable).
fn image_tag(image: &str) -> Option<String> {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    let comps: Vec<&str> = name.split('/').collect();
    let has_domain = comps.len() > 1
        && (comps[0].contains(['.', ':'])
            || comps[0] == "localhost"
            || comps[0].chars().any(|c| c.is_ascii_uppercase()));
    let path = if has_domain { &comps[1..] } else { &comps[..] };
    let component_ok = |c: &&str| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || b"._-".contains(x))
    };
    let domain_ok = !has_domain
        || comps[0]
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b".-:[]".contains(&c));
    let tag_ok = tag.is_none_or(|t| {
        !t.is_empty()
            && t.len() <= 128
            && !t.starts_with(['.', '-'])
            && t.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
    });
    let digest_ok = digest.is_none_or(|d| match d.split_once(':') {
        Some((algo, hex)) => {
            let len = match algo {
                "sha256" => 64,
                "sha384" => 96,
                "sha512" => 128,
                _ => return false,
            };
            hex.len() == len
                && hex
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        }
        None => false,
    });
    if name.len() > 255 || !domain_ok || !path.iter().all(component_ok) || !tag_ok || !digest_ok {
        return None;
    }
    Some(match (tag, digest) {
        (Some(t), _) => t.to_string(),
        (None, Some(_)) => String::new(),
        (None, None) => "latest".into(),
    })
}

fn http_get(h: &mut Value) {
    if let Some(g) = opt(h, "httpGet") {
        set_if_zero(g, "path", "/");
        set_if_zero(g, "scheme", "HTTP");
    }
}

/// Downward API item: `fieldRef.apiVersion` default, and `resourceFieldRef.divisor`
/// serialised as upstream does (a zero Quantity is written as "0").
fn field_ref(item: &mut Value) {
    if let Some(f) = opt(item, "fieldRef") {
        set_if_zero(f, "apiVersion", "v1");
    }
    if let Some(r) = opt(item, "resourceFieldRef") {
        set_if_unset(r, "divisor", "0");
        canonical(r, "divisor");
    }
}

/// Re-serialises a quantity field the way `Quantity.MarshalJSON` does.
fn canonical(parent: &mut Value, k: &str) {
    if let Some(v) = parent.get_mut(k) {
        if let Some(q) = Quantity::from_json(v) {
            *v = Value::from(q.to_str());
        }
    }
}

fn container(c: &mut Value) {
    if str_of(c.get("imagePullPolicy")).is_empty() {
        let tag = image_tag(str_of(c.get("image")));
        let policy = if tag.as_deref() == Some("latest") {
            "Always"
        } else {
            "IfNotPresent"
        };
        as_map(c).insert("imagePullPolicy".into(), policy.into());
    }
    set_if_zero(c, "terminationMessagePath", "/dev/termination-log");
    set_if_zero(c, "terminationMessagePolicy", "File");
    for p in each(c, "ports") {
        set_if_zero(p, "protocol", "TCP");
    }
    for e in each(c, "env") {
        if let Some(vf) = opt(e, "valueFrom") {
            field_ref(vf);
        }
    }
    resources(c);
    for k in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = opt(c, k) {
            set_if_zero(p, "timeoutSeconds", 1);
            set_if_zero(p, "periodSeconds", 10);
            set_if_zero(p, "successThreshold", 1);
            set_if_zero(p, "failureThreshold", 3);
            http_get(p);
            if let Some(g) = opt(p, "grpc") {
                set_if_unset(g, "service", "");
            }
        }
    }
    if let Some(lc) = opt(c, "lifecycle") {
        for k in ["postStart", "preStop"] {
            if let Some(h) = opt(lc, k) {
                http_get(h);
            }
        }
    }
}

fn volume(v: &mut Value) {
    if VOLUME_SOURCES
        .iter()
        .all(|(k, _)| v.get(*k).is_none_or(Value::is_null))
    {
        as_map(v).insert("emptyDir".into(), json!({}));
    }
    if let Some(s) = opt(v, "hostPath") {
        set_if_unset(s, "type", "");
    }
    if let Some(s) = opt(v, "emptyDir") {
        canonical(s, "sizeLimit");
    }
    for k in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = opt(v, k) {
            set_if_unset(s, "defaultMode", 420);
        }
    }
    if let Some(s) = opt(v, "iscsi") {
        set_if_zero(s, "iscsiInterface", "default");
    }
    if let Some(s) = opt(v, "rbd") {
        set_if_zero(s, "pool", "rbd");
        set_if_zero(s, "user", "admin");
        set_if_zero(s, "keyring", "/etc/ceph/keyring");
    }
    if let Some(s) = opt(v, "downwardAPI") {
        each(s, "items").for_each(field_ref);
    }
    if let Some(s) = opt(v, "azureDisk") {
        set_if_unset(s, "cachingMode", "ReadWrite");
        set_if_unset(s, "fsType", "ext4");
        set_if_unset(s, "readOnly", false);
        set_if_unset(s, "kind", "Shared");
    }
    if let Some(s) = opt(v, "projected") {
        for src in each(s, "sources") {
            if let Some(d) = opt(src, "downwardAPI") {
                each(d, "items").for_each(field_ref);
            }
            if let Some(t) = opt(src, "serviceAccountToken") {
                set_if_unset(t, "expirationSeconds", 3600);
            }
        }
    }
    if let Some(s) = opt(v, "scaleIO") {
        set_if_zero(s, "storageMode", "ThinProvisioned");
        set_if_zero(s, "fsType", "xfs");
    }
    if let Some(t) = v
        .pointer_mut("/ephemeral/volumeClaimTemplate")
        .filter(|t| !t.is_null())
    {
        let spec = child(t, "spec");
        set_if_unset(spec, "volumeMode", "Filesystem");
        resources(spec);
    }
}

/// `SetDefaults_PodSpec` plus the per-field defaults generated for every PodSpec.
fn pod_spec(spec: &mut Value) {
    set_if_zero(spec, "dnsPolicy", "ClusterFirst");
    set_if_zero(spec, "restartPolicy", "Always");
    set_if_unset(spec, "securityContext", json!({}));
    set_if_unset(spec, "terminationGracePeriodSeconds", 30);
    set_if_zero(spec, "schedulerName", "default-scheduler");
    each(spec, "volumes").for_each(volume);
    for k in ["initContainers", "containers", "ephemeralContainers"] {
        each(spec, k).for_each(container);
    }
    resource_list(spec, "overhead");
    resources(spec);
}

/// Known built-in PriorityClasses (value); other names need a PriorityClass lookup.
fn builtin_priority(class: &str) -> Option<i64> {
    match class {
        "" => Some(0),
        "system-node-critical" => Some(2_000_001_000),
        "system-cluster-critical" => Some(2_000_000_000),
        _ => None,
    }
}

fn pod(p: &mut Value) {
    let spec = child(p, "spec");
    // v1 -> internal: `serviceAccount` is an alias of `serviceAccountName`.
    if str_of(spec.get("serviceAccountName")).is_empty() {
        let sa = spec.get("serviceAccount").cloned().unwrap_or(Value::Null);
        if !str_of(Some(&sa)).is_empty() {
            as_map(spec).insert("serviceAccountName".into(), sa);
        }
    }
    // SetDefaults_Pod
    for k in ["containers", "initContainers"] {
        for c in each(spec, k) {
            let Some(limits) = c
                .pointer("/resources/limits")
                .and_then(Value::as_object)
                .filter(|l| !l.is_empty())
                .cloned()
            else {
                continue;
            };
            let req = child(child(c, "resources"), "requests");
            for (name, q) in limits {
                as_map(req).entry(name).or_insert(q);
            }
        }
    }
    set_if_unset(spec, "enableServiceLinks", true);
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for k in ["containers", "initContainers"] {
            for port in each(spec, k).flat_map(|c| each(c, "ports")) {
                let cp = port.get("containerPort").cloned().unwrap_or(Value::Null);
                set_if_zero(port, "hostPort", cp);
            }
        }
    }
    pod_spec(spec);
    // v1 -> internal: negative grace periods are forced to 1 for pods.
    if spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|g| g < 0)
    {
        as_map(spec).insert("terminationGracePeriodSeconds".into(), 1.into());
    }
    // internal -> v1: `serviceAccount` mirrors `serviceAccountName`.
    mirror_service_account(spec);
}

fn mirror_service_account(spec: &mut Value) {
    let sa = str_of(spec.get("serviceAccountName")).to_string();
    if !sa.is_empty() {
        as_map(spec).insert("serviceAccount".into(), sa.into());
    }
}

/// The default-on admission plugins that need no other object, on a defaulted pod:
/// ServiceAccount's `serviceAccountName`, DefaultTolerationSeconds and Priority. Apart
/// from defaulting because upstream runs them after the create handler has recorded what
/// the writer set: nobody owns these fields in managedFields.
pub fn admit_pod(p: &mut Value) {
    let mirror = p
        .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_some();
    let spec = child(p, "spec");
    // Admission: ServiceAccount (mirror pods are left alone).
    if !mirror {
        set_if_zero(spec, "serviceAccountName", "default");
    }
    // Admission: DefaultTolerationSeconds.
    let tolerates = |key: &str| {
        spec.get("tolerations")
            .and_then(Value::as_array)
            .is_some_and(|ts| {
                ts.iter().any(|t| {
                    let (k, e) = (str_of(t.get("key")), str_of(t.get("effect")));
                    (k == key || k.is_empty()) && (e == "NoExecute" || e.is_empty())
                })
            })
    };
    let missing: Vec<&str> = [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ]
    .into_iter()
    .filter(|k| !tolerates(k))
    .collect();
    for key in missing {
        let secs = if key.ends_with("not-ready") {
            NOT_READY_TOLERATION.load(std::sync::atomic::Ordering::Relaxed)
        } else {
            UNREACHABLE_TOLERATION.load(std::sync::atomic::Ordering::Relaxed)
        };
        let t = json!({ "key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": secs });
        let list = as_map(spec).entry("tolerations").or_insert(Value::Null);
        if !list.is_array() {
            *list = json!([]);
        }
        list.as_array_mut().expect("array").push(t);
    }
    // Admission: Priority (no global default PriorityClass; built-in classes only).
    if let Some(value) = builtin_priority(str_of(spec.get("priorityClassName"))) {
        set_if_unset(spec, "priority", value);
        set_if_unset(spec, "preemptionPolicy", "PreemptLowerPriority");
    }
    mirror_service_account(spec);
}

fn replication_controller(rc: &mut Value) {
    let labels = rc
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.is_object())
        .cloned();
    let spec = child(rc, "spec");
    if let Some(labels) = labels {
        if spec
            .get("selector")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
        {
            as_map(spec).insert("selector".into(), labels.clone());
        }
        let meta = child(rc, "metadata");
        if meta
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
        {
            as_map(meta).insert("labels".into(), labels);
        }
    }
    let spec = child(rc, "spec");
    set_if_unset(spec, "replicas", 1);
    if let Some(t) = opt(spec, "template") {
        pod_spec(child(t, "spec"));
    }
}

// ---------------------------------------------------------------------------
// Services
// ---------------------------------------------------------------------------

fn service(svc: &mut Value) {
    let selector_empty = svc
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty);
    let spec = child(svc, "spec");
    set_if_zero(spec, "sessionAffinity", "None");
    match str_of(spec.get("sessionAffinity")) {
        "None" => {
            as_map(spec).remove("sessionAffinityConfig");
        }
        "ClientIP"
            if spec
                .pointer("/sessionAffinityConfig/clientIP/timeoutSeconds")
                .is_none_or(Value::is_null) =>
        {
            as_map(spec).insert(
                "sessionAffinityConfig".into(),
                json!({ "clientIP": { "timeoutSeconds": 10800 } }),
            );
        }
        _ => {}
    }
    set_if_zero(spec, "type", "ClusterIP");
    for p in each(spec, "ports") {
        set_if_zero(p, "protocol", "TCP");
        let port = p.get("port").cloned().unwrap_or(Value::Null);
        set_if_zero(p, "targetPort", port);
    }
    let typ = str_of(spec.get("type")).to_string();
    let external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if typ == "LoadBalancer" || typ == "NodePort" || (typ == "ClusterIP" && external_ips) {
        set_if_zero(spec, "externalTrafficPolicy", "Cluster");
    }
    if ["NodePort", "LoadBalancer", "ClusterIP"].contains(&typ.as_str()) {
        set_if_unset(spec, "internalTrafficPolicy", "Cluster");
    }
    if typ == "LoadBalancer" {
        set_if_unset(spec, "allocateLoadBalancerNodePorts", true);
        if let Some(ing) = svc
            .pointer_mut("/status/loadBalancer/ingress")
            .and_then(Value::as_array_mut)
        {
            for i in ing.iter_mut().filter(|i| !str_of(i.get("ip")).is_empty()) {
                set_if_unset(i, "ipMode", "VIP");
            }
        }
    }
    if typ != "ExternalName" {
        ip_families(child(svc, "spec"), selector_empty);
    }
}

/// Registry-side IP family defaulting (single-stack IPv4 cluster); clusterIP
/// allocation itself is left to the caller.
fn ip_families(spec: &mut Value, selector_empty: bool) {
    let cip = str_of(spec.get("clusterIP")).to_string();
    if !cip.is_empty()
        && spec
            .get("clusterIPs")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
    {
        as_map(spec).insert("clusterIPs".into(), json!([cip]));
    }
    let ips: Vec<String> = spec
        .get("clusterIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| str_of(Some(v)).to_string())
        .collect();
    let mut fams: Vec<String> = spec
        .get("ipFamilies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| str_of(Some(v)).to_string())
        .collect();
    let headless = ips.first().is_some_and(|ip| ip == "None");
    if !headless {
        for ip in ips.iter().skip(fams.len()) {
            fams.push(
                if ip.contains(':') && !ip.contains('.') {
                    "IPv6"
                } else {
                    "IPv4"
                }
                .into(),
            );
        }
    }
    if headless && selector_empty {
        let policy = if fams.len() == 1 {
            "SingleStack"
        } else {
            "RequireDualStack"
        };
        set_if_unset(spec, "ipFamilyPolicy", policy);
        if fams.is_empty() {
            fams.push("IPv4".into());
        }
        if fams.len() < 2 && str_of(spec.get("ipFamilyPolicy")) == "RequireDualStack" {
            fams.push(if fams[0] == "IPv4" { "IPv6" } else { "IPv4" }.into());
        }
    } else {
        set_if_unset(spec, "ipFamilyPolicy", "SingleStack");
        if fams.is_empty() {
            fams.push("IPv4".into());
        }
    }
    as_map(spec).insert("ipFamilies".into(), json!(fams));
}

// ---------------------------------------------------------------------------
// Node, Secret
// ---------------------------------------------------------------------------

fn node(n: &mut Value) {
    let spec = child(n, "spec");
    let single = str_of(spec.get("podCIDR")).to_string();
    let first = spec
        .pointer("/podCIDRs/0")
        .map(|v| str_of(Some(v)).to_string());
    if !single.is_empty() && first.as_deref() != Some(single.as_str()) {
        as_map(spec).insert("podCIDRs".into(), json!([single]));
    } else if let Some(f) = first.filter(|f| !f.is_empty()) {
        as_map(spec).insert("podCIDR".into(), f.into());
    }
    if let Some(status) = opt(n, "status") {
        if status.get("allocatable").is_none_or(Value::is_null) {
            if let Some(cap) = status.get("capacity").filter(|c| !c.is_null()).cloned() {
                as_map(status).insert("allocatable".into(), cap);
            }
        }
        resource_list(status, "capacity");
        resource_list(status, "allocatable");
    }
}

fn secret(s: &mut Value) {
    set_if_zero(s, "type", "Opaque");
    if let Some(Value::Object(sd)) = as_map(s).remove("stringData") {
        let data = child(s, "data");
        for (k, v) in sd {
            data[k.as_str()] = Value::from(b64_encode(str_of(Some(&v)).as_bytes()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected output of a minimal pod `{name: c, image: <image>}` after defaulting.
    fn defaulted_pod(spec_patch: Value) -> Value {
        let mut spec = json!({
            "containers": [{"name": "c", "image": "nginx", "imagePullPolicy": "Always",
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}],
            "enableServiceLinks": true, "dnsPolicy": "ClusterFirst", "restartPolicy": "Always",
            "securityContext": {}, "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler",
            "serviceAccountName": "default", "serviceAccount": "default",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
            "priority": 0, "preemptionPolicy": "PreemptLowerPriority"});
        for (k, v) in spec_patch.as_object().cloned().unwrap_or_default() {
            spec[k.as_str()] = v;
        }
        json!({"metadata": {"name": "p"}, "spec": spec})
    }
    fn pod_in(spec: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": spec})
    }
    fn c(extra: Value) -> Value {
        let mut base = json!({"name": "c", "image": "nginx", "imagePullPolicy": "Always",
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            base[k.as_str()] = v;
        }
        base
    }

    /// (kind, input, expected) — expected is the complete defaulted object.
    fn run(cases: Vec<(&str, Value, Value)>) {
        for (i, (kind, mut input, want)) in cases.into_iter().enumerate() {
            apply_defaults(kind, &mut input);
            if kind == "Pod" {
                admit_pod(&mut input);
            }
            assert_eq!(
                input, want,
                "case {i} ({kind}):\n got {input:#}\nwant {want:#}"
            );
        }
    }

    #[test]
    fn admission_defaults_are_not_defaulting() {
        // What the writer of a pod owns is its object after defaulting: the admission
        // defaults come after (upstream: nobody owns them).
        let mut p = pod_in(json!({"containers": [{"name": "c", "image": "nginx"}]}));
        apply_defaults("Pod", &mut p);
        for f in [
            "serviceAccountName",
            "serviceAccount",
            "tolerations",
            "priority",
            "preemptionPolicy",
        ] {
            assert!(p["spec"].get(f).is_none(), "{f} set by defaulting: {p:#}");
        }
        // The v1 alias is still converted when the writer set one of the two.
        let mut p = pod_in(json!({"containers": [], "serviceAccount": "builder"}));
        apply_defaults("Pod", &mut p);
        assert_eq!(p["spec"]["serviceAccountName"], "builder");
        admit_pod(&mut p);
        assert_eq!(
            p,
            defaulted_pod(
                json!({"containers": [], "serviceAccountName": "builder", "serviceAccount": "builder"})
            )
        );
    }

    #[test]
    fn defaulting_table() {
        run(vec![
            (
                "Pod",
                pod_in(json!({"containers": [{"name": "c", "image": "nginx"}]})),
                defaulted_pod(json!({})),
            ),
            (
                "Pod",
                pod_in(json!({"containers": [
                    {"name": "c", "image": "nginx:1.25"},
                    {"name": "d", "image": "registry.io/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
                    {"name": "e", "image": "nginx:latest", "imagePullPolicy": "Never"},
                    {"name": "f", "image": "localhost:5000/app"}]})),
                defaulted_pod(json!({"containers": [
                    c(json!({"image": "nginx:1.25", "imagePullPolicy": "IfNotPresent"})),
                    c(json!({"name": "d", "image": "registry.io/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "imagePullPolicy": "IfNotPresent"})),
                    c(json!({"name": "e", "image": "nginx:latest", "imagePullPolicy": "Never"})),
                    c(json!({"name": "f", "image": "localhost:5000/app", "imagePullPolicy": "Always"}))]})),
            ),
            (
                "Pod",
                pod_in(json!({"containers": [{"name": "c", "image": "nginx",
                    "resources": {"limits": {"cpu": "0.5", "memory": "1024Mi"}, "requests": {"cpu": "100m"}},
                    "ports": [{"containerPort": 80}],
                    "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]})),
                defaulted_pod(json!({"containers": [c(json!({
                    "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "1Gi"}},
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name", "apiVersion": "v1"}}}]}))]})),
            ),
            (
                "Pod",
                pod_in(json!({"containers": [{"name": "c", "image": "nginx",
                    "livenessProbe": {"httpGet": {"port": 8080}},
                    "readinessProbe": {"grpc": {"port": 9000}, "periodSeconds": 5},
                    "lifecycle": {"preStop": {"httpGet": {"port": 80, "path": "/stop"}}}}]})),
                defaulted_pod(json!({"containers": [c(json!({
                    "livenessProbe": {"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"},
                        "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
                    "readinessProbe": {"grpc": {"port": 9000, "service": ""}, "periodSeconds": 5,
                        "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
                    "lifecycle": {"preStop": {"httpGet": {"port": 80, "path": "/stop", "scheme": "HTTP"}}}}))]})),
            ),
            (
                "Pod",
                pod_in(
                    json!({"containers": [{"name": "c", "image": "nginx"}], "volumes": [
                    {"name": "a"}, {"name": "b", "secret": {"secretName": "s"}}, {"name": "c", "configMap": {"name": "m"}},
                    {"name": "d", "hostPath": {"path": "/x"}},
                    {"name": "e", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]}),
                ),
                defaulted_pod(json!({"volumes": [
                    {"name": "a", "emptyDir": {}}, {"name": "b", "secret": {"secretName": "s", "defaultMode": 420}},
                    {"name": "c", "configMap": {"name": "m", "defaultMode": 420}},
                    {"name": "d", "hostPath": {"path": "/x", "type": ""}},
                    {"name": "e", "projected": {"defaultMode": 420, "sources": [{"serviceAccountToken": {"path": "t", "expirationSeconds": 3600}}]}}]})),
            ),
            (
                "Pod",
                pod_in(
                    json!({"containers": [{"name": "c", "image": "nginx"}], "serviceAccountName": "builder",
                    "priorityClassName": "system-node-critical", "hostNetwork": true,
                    "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]}),
                ),
                defaulted_pod(
                    json!({"serviceAccountName": "builder", "serviceAccount": "builder",
                    "priorityClassName": "system-node-critical", "priority": 2000001000, "hostNetwork": true,
                    "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"},
                        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]}),
                ),
            ),
            (
                "ReplicationController",
                json!({"metadata": {"name": "r"}, "spec": {"template": {"metadata": {"labels": {"app": "a"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}}),
                json!({"metadata": {"name": "r", "labels": {"app": "a"}}, "spec": {"selector": {"app": "a"}, "replicas": 1,
                    "template": {"metadata": {"labels": {"app": "a"}}, "spec": {
                        "containers": [c(json!({"image": "nginx:1", "imagePullPolicy": "IfNotPresent"}))],
                        "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {},
                        "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler"}}}}),
            ),
            (
                "PodTemplate",
                json!({"metadata": {"name": "t"}, "template": {"metadata": {"labels": {"app": "a"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}),
                json!({"metadata": {"name": "t"}, "template": {"metadata": {"labels": {"app": "a"}}, "spec": {
                        "containers": [c(json!({"image": "nginx:1", "imagePullPolicy": "IfNotPresent"}))],
                        "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {},
                        "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler"}}}),
            ),
            (
                "Service",
                json!({"metadata": {"name": "s"}, "spec": {"selector": {"app": "a"}, "ports": [{"port": 80}], "clusterIP": "10.0.0.10"}}),
                json!({"metadata": {"name": "s"}, "spec": {"selector": {"app": "a"},
                    "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], "clusterIP": "10.0.0.10", "clusterIPs": ["10.0.0.10"],
                    "sessionAffinity": "None", "type": "ClusterIP", "internalTrafficPolicy": "Cluster",
                    "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]}}),
            ),
            (
                "Service",
                json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{"port": 443, "targetPort": "https"}]},
                    "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}, {"hostname": "lb.example.com"}]}}}),
                json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP",
                    "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                    "ports": [{"port": 443, "targetPort": "https", "protocol": "TCP"}],
                    "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster", "allocateLoadBalancerNodePorts": true,
                    "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]},
                    "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ipMode": "VIP"}, {"hostname": "lb.example.com"}]}}}),
            ),
            (
                "Service",
                json!({"spec": {"clusterIP": "None", "ports": [{"port": 53, "protocol": "UDP"}]}}),
                json!({"spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 53, "protocol": "UDP", "targetPort": 53}],
                    "sessionAffinity": "None", "type": "ClusterIP", "internalTrafficPolicy": "Cluster",
                    "ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]}}),
            ),
            (
                "Service",
                json!({"spec": {"type": "ExternalName", "externalName": "example.com", "sessionAffinityConfig": {}}}),
                json!({"spec": {"type": "ExternalName", "externalName": "example.com", "sessionAffinity": "None"}}),
            ),
            (
                "Secret",
                json!({"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"b": "hello"}}),
                json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "eA==", "b": "aGVsbG8="}}),
            ),
            (
                "Namespace",
                json!({"metadata": {"name": "team-a"}}),
                json!({"metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "team-a"}}, "status": {"phase": "Active"}}),
            ),
            (
                "Endpoints",
                json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}]}),
                json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}]}),
            ),
            (
                "EndpointSlice",
                json!({"addressType": "IPv4", "ports": [{"port": 80}]}),
                json!({"addressType": "IPv4", "ports": [{"port": 80, "name": "", "protocol": "TCP"}]}),
            ),
            (
                "Node",
                json!({"spec": {"podCIDR": "10.244.0.0/24"}, "status": {"capacity": {"cpu": "4", "memory": "8192Mi", "pods": "110"}}}),
                json!({"spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
                    "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}, "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}),
            ),
            (
                "ConfigMap",
                json!({"metadata": {"name": "c"}}),
                json!({"metadata": {"name": "c"}}),
            ),
        ]);
    }

    #[test]
    fn image_tags() {
        for (image, tag) in [
            ("nginx", Some("latest")),
            ("nginx:1.2", Some("1.2")),
            ("localhost:5000/a/b", Some("latest")),
            ("Nginx", None),
            ("a@sha256:abc", None),
        ] {
            assert_eq!(image_tag(image).as_deref(), tag, "{image}");
        }
    }
}
