//! Object validation for the core v1 API surface, mirroring upstream Kubernetes v1.33
//! (`pkg/apis/core/validation`, apimachinery's object-meta/label/name helpers,
//! coordination, discovery and autoscaling Scale validation) on decoded JSON.
//!
//! Errors mirror upstream's `field.ErrorList`: same order of checks, same field paths
//! (including upstream's quirks such as `metadata.taints` for node taints or
//! `spec.LoadBalancerSourceRanges`), and messages equal to `field.Error.ErrorBody()`.
//! Like upstream, an update may yield exact duplicates (generic and kind-specific
//! metadata checks both run); de-duplicate when building the Status message.

use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

type Errs = Vec<FieldError>;

// ---------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------

/// Validates `obj` of kind `kind`; `old` is the stored object on update.
pub fn validate(kind: &str, obj: &Value, old: Option<&Value>, namespaced: bool) -> Vec<FieldError> {
    let md = P::new("metadata");
    match old {
        None => {
            let errs = validate_kind(kind, obj, None, namespaced);
            if !errs.is_empty() {
                return errs;
            }
            // rest.BeforeCreate: generic metadata checks run only after the strategy passed.
            object_meta(obj.g("metadata"), namespaced, name_path_segment, &md)
        }
        Some(old) => {
            // rest.BeforeUpdate: validateCommonFields, then the strategy's ValidateUpdate.
            let mut errs = common_update(obj, old, namespaced);
            errs.extend(validate_kind(kind, obj, Some(old), namespaced));
            errs
        }
    }
}

/// rest.BeforeUpdate's validateCommonFields.
fn common_update(obj: &Value, old: &Value, namespaced: bool) -> Errs {
    let md = P::new("metadata");
    let mut errs = object_meta(obj.g("metadata"), namespaced, name_path_segment, &md);
    errs.extend(object_meta_update(
        obj.g("metadata"),
        old.g("metadata"),
        &md,
    ));
    errs
}

/// An update of `pods/status` (upstream's podStatusStrategy.ValidateUpdate,
/// `ValidatePodStatusUpdate`): the metadata update and the pod's annotation rules; the
/// spec is the stored one and is not validated again.
pub fn pod_status_update(obj: &Value, old: &Value, namespaced: bool) -> Vec<FieldError> {
    let mp = P::new("metadata");
    let mut errs = common_update(obj, old, namespaced);
    errs.extend(core_object_meta_update(
        obj.g("metadata"),
        old.g("metadata"),
        &mp,
    ));
    let (na, ap) = (obj.g("metadata").g("annotations"), mp.ch("annotations"));
    errs.extend(pod_annotation_updates(
        na,
        old.g("metadata").g("annotations"),
        &ap,
    ));
    errs.extend(pod_annotations(na, obj.g("spec"), &ap));
    errs.extend(pod_status_contents(obj, old));
    errs
}

/// The status half of upstream's `ValidatePodStatusUpdate` (v1.33): condition types,
/// `nominatedNodeName` when it changes, `qosClass` immutable (a status without one kept
/// the stored one in `admission::prepare_update`), no terminated container back to
/// running unless the restart policy allows it, and `podIPs` / `hostIPs`. Upstream checks
/// condition types under `metadata` (sic), and nothing in a container status but its
/// state's transition (and fields rkube does not serve).
fn pod_status_contents(obj: &Value, old: &Value) -> Errs {
    let (st, ost) = (obj.g("status"), old.g("status"));
    let sp = P::new("status");
    let mut e = vec![];
    let cp = P::new("metadata").ch("conditions");
    for (i, c) in st.arr("conditions").iter().enumerate() {
        let t = c.st("type");
        if !["PodScheduled", "Ready", "Initialized"].contains(&t) {
            e.extend(qualified(t, &cp.idx(i).ch("Type")));
        }
    }
    let nominated = st.st("nominatedNodeName");
    if nominated != ost.st("nominatedNodeName") && !nominated.is_empty() {
        e.extend(name_check(
            name_subdomain,
            nominated,
            &sp.ch("nominatedNodeName"),
        ));
    }
    if st.st("qosClass") != ost.st("qosClass") {
        e.push(invalid(
            &sp.ch("qosClass"),
            st.st("qosClass"),
            FIELD_IMMUTABLE,
        ));
    }
    let policy = old.g("spec").st("restartPolicy");
    let sidecars: Vec<&str> = old
        .g("spec")
        .arr("initContainers")
        .iter()
        .filter(|c| c.st("restartPolicy") == "Always")
        .map(|c| c.st("name"))
        .collect();
    for (list, policy, skip) in [
        ("containerStatuses", policy, &[][..]),
        ("initContainerStatuses", policy, &sidecars[..]),
        ("ephemeralContainerStatuses", "Never", &[][..]),
    ] {
        e.extend(state_transitions(
            st.arr(list),
            ost.arr(list),
            &sp.ch(list),
            policy,
            skip,
        ));
    }
    e.extend(status_ips(st.arr("podIPs"), &sp.ch("podIPs"), "PodIP"));
    let host_ips = st.arr("hostIPs");
    if let Some(first) = host_ips.first() {
        if first.st("ip") != st.st("hostIP") {
            let p = sp.ch("hostIPs").idx(0).ch("ip");
            e.push(invalid(&p, first.st("ip"), "must be equal to `hostIP`"));
        }
        e.extend(status_ips(host_ips, &sp.ch("hostIPs"), "HostIP"));
    }
    e
}

/// `ValidateContainerStateTransition`: a container that terminated for good (by the
/// restart policy; sidecar init containers restart) may not be reported running again.
fn state_transitions(new: &[Value], old: &[Value], p: &P, policy: &str, skip: &[&str]) -> Errs {
    if policy == "Always" {
        return vec![];
    }
    let mut e = vec![];
    for (i, o) in old.iter().enumerate() {
        let terminated = o.g("state").g("terminated");
        if terminated.is_null()
            || (policy == "OnFailure" && terminated.int("exitCode").unwrap_or(0) != 0)
            || skip.contains(&o.st("name"))
        {
            continue;
        }
        for n in new {
            if n.st("name") == o.st("name") && n.g("state").g("terminated").is_null() {
                e.push(forbidden(
                    &p.idx(i).ch("state"),
                    "may not be transitioned to non-terminated state",
                ));
            }
        }
    }
    e
}

/// upstream's `validatePodIPs` / `validateHostIPs`: each a valid IP, at most one per
/// family, no repeats (`kind`: the Go type a duplicate is reported as).
fn status_ips(ips: &[Value], p: &P, kind: &str) -> Errs {
    let mut e = vec![];
    let parsed: Vec<Option<IpAddr>> = ips.iter().map(|v| parse_ip_sloppy(v.st("ip"))).collect();
    for (i, (v, ip)) in ips.iter().zip(&parsed).enumerate() {
        if ip.is_none() {
            e.push(invalid(
                &p.idx(i),
                v.st("ip"),
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
    }
    if ips.len() <= 1 {
        return e;
    }
    let duplicates = |e: &mut Errs| {
        let mut seen = HashSet::new();
        for (i, v) in ips.iter().enumerate() {
            if !seen.insert(v.st("ip")) {
                e.push(duplicate(&p.idx(i), Bv::Raw(go_ip(v, kind))));
            }
        }
    };
    // Host IPs are checked for repeats before families, pod IPs after.
    if kind == "HostIP" {
        duplicates(&mut e);
    }
    if parsed.iter().any(Option::is_none) {
        e.push(fe(
            "InternalError",
            p,
            "Internal error: failed to check for dual stack with error:ip <nil> is invalid".into(),
        ));
    } else if ips.len() > 2 || !is_dual_stack(parsed.iter().map(|ip| ip.map(|a| is_v4(&a)))) {
        e.push(invalid(
            p,
            Bv::Raw(go_ip_list(ips, kind)),
            "may specify no more than one IP for each IP family",
        ));
    }
    if kind == "PodIP" {
        duplicates(&mut e);
    }
    e
}

/// `%#v` of a `core.PodIP` / `core.HostIP`.
fn go_ip(v: &Value, kind: &str) -> String {
    format!("core.{kind}{{IP:{}}}", go_quote(v.st("ip")))
}

/// `%#v` of a `[]core.PodIP` / `[]core.HostIP`.
fn go_ip_list(ips: &[Value], kind: &str) -> String {
    let items: Vec<String> = ips.iter().map(|v| go_ip(v, kind)).collect();
    format!("[]core.{kind}{{{}}}", items.join(", "))
}

fn validate_kind(kind: &str, obj: &Value, old: Option<&Value>, ns: bool) -> Errs {
    let md = P::new("metadata");
    let meta_create = |f: NameFn| core_object_meta(obj.g("metadata"), ns, f, &md);
    let meta_update = |o: &Value| core_object_meta_update(obj.g("metadata"), o.g("metadata"), &md);
    match (kind, old) {
        ("Pod", None) => pod_create(obj, ns),
        ("Pod", Some(o)) => pod_update(obj, o, ns),
        ("ReplicationController", _) => {
            let mut e = match old {
                Some(o) => meta_update(o),
                None => meta_create(name_subdomain),
            };
            e.extend(rc_spec(obj.g("spec"), &P::new("spec")));
            e
        }
        ("Service", _) => service(obj, old, ns),
        ("Endpoints", _) => {
            let mut e = old.map(meta_update).unwrap_or_default();
            e.extend(meta_create(name_subdomain));
            let subsets = endpoint_subsets(obj.arr("subsets"), &P::new("subsets"));
            if !old.is_some_and(|o| sem_eq(o.g("subsets"), obj.g("subsets"))) {
                e.extend(subsets);
            }
            e
        }
        ("Namespace", None) => {
            let mut e = meta_create(name_dns_label);
            let fp = P::new("spec").ch("finalizers");
            for f in obj.g("spec").strs("finalizers") {
                e.extend(qualified(f, &fp));
                e.extend(kube_finalizer(f, &fp));
            }
            e
        }
        ("Namespace", Some(o)) => meta_update(o),
        ("Node", _) => node(obj, old, ns),
        ("Event", _) => event(obj),
        ("ConfigMap", _) => {
            let mut e = old.map(meta_update).unwrap_or_default();
            if let Some(o) = old {
                e.extend(immutable_data(obj, o, &["data", "binaryData"], false));
            }
            e.extend(meta_create(name_subdomain));
            e.extend(configmap(obj));
            e
        }
        ("Secret", _) => {
            let mut e = old.map(meta_update).unwrap_or_default();
            if let Some(o) = old {
                let (nt, ot) = (obj.st("type"), o.st("type"));
                if nt != ot {
                    e.push(invalid(&P::new("type"), nt, FIELD_IMMUTABLE));
                }
                e.extend(immutable_data(obj, o, &["data"], true));
            }
            e.extend(meta_create(name_subdomain));
            e.extend(secret(obj));
            e
        }
        // ValidatePodTemplate / ValidatePodTemplateUpdate.
        ("PodTemplate", _) => {
            let mut e = match old {
                Some(o) => meta_update(o),
                None => meta_create(name_subdomain),
            };
            e.extend(pod_template_spec(obj.g("template"), &P::new("template")));
            e
        }
        ("ServiceAccount", _) => {
            let mut e = old.map(meta_update).unwrap_or_default();
            e.extend(meta_create(name_subdomain));
            e
        }
        ("Lease", _) => {
            let mut e = match old {
                Some(o) => object_meta_update(obj.g("metadata"), o.g("metadata"), &md),
                None => object_meta(obj.g("metadata"), ns, name_subdomain, &md),
            };
            e.extend(lease_spec(obj.g("spec"), &P::new("spec")));
            e
        }
        ("EndpointSlice", _) => endpoint_slice(obj, old, ns),
        ("Scale", _) => {
            let mut e = meta_create(name_subdomain);
            if let Some(r) = obj.g("spec").int("replicas").filter(|r| *r < 0) {
                e.push(invalid(&P::new("spec").ch("replicas"), r, IS_NEGATIVE));
            }
            e
        }
        _ => match old {
            Some(o) => meta_update(o),
            None => meta_create(name_subdomain),
        },
    }
}

// ---------------------------------------------------------------------------
// field.Error construction and Go-style value rendering
// ---------------------------------------------------------------------------

/// A field path rendered like upstream's `field.Path.String()`.
#[derive(Clone, Debug)]
struct P(String);

impl P {
    fn new(s: &str) -> P {
        // NewPath("") renders as "[]" upstream.
        P(if s.is_empty() { "[]".into() } else { s.into() })
    }
    fn ch(&self, c: &str) -> P {
        P(format!("{}.{}", self.0, c))
    }
    fn idx(&self, i: usize) -> P {
        P(format!("{}[{}]", self.0, i))
    }
    fn key(&self, k: &str) -> P {
        P(format!("{}[{}]", self.0, k))
    }
}

/// An offending value, rendered as `ErrorBody()` renders `BadValue`.
#[derive(Clone, Debug)]
enum Bv {
    S(String),
    I(i64),
    B(bool),
    Null,
    /// Already Go-formatted (`%#v` of structs, slices and maps).
    Raw(String),
}

impl Bv {
    fn render(&self) -> String {
        match self {
            Bv::S(s) => go_quote(s),
            Bv::I(i) => i.to_string(),
            Bv::B(b) => b.to_string(),
            Bv::Null => "null".into(),
            Bv::Raw(r) => r.clone(),
        }
    }
}

impl From<&str> for Bv {
    fn from(s: &str) -> Bv {
        Bv::S(s.into())
    }
}
impl From<String> for Bv {
    fn from(s: String) -> Bv {
        Bv::S(s)
    }
}
impl From<i64> for Bv {
    fn from(i: i64) -> Bv {
        Bv::I(i)
    }
}
impl From<bool> for Bv {
    fn from(b: bool) -> Bv {
        Bv::B(b)
    }
}
/// A pointer field: nil renders as `null`, otherwise the pointee.
impl From<&Value> for Bv {
    fn from(v: &Value) -> Bv {
        match v {
            Value::Null => Bv::Null,
            Value::String(s) => Bv::S(s.clone()),
            Value::Bool(b) => Bv::B(*b),
            Value::Number(n) => n.as_i64().map(Bv::I).unwrap_or(Bv::Raw(n.to_string())),
            Value::Array(a) if a.iter().all(Value::is_string) => {
                Bv::Raw(go_strings(Some(a.iter().map(sval).collect())))
            }
            Value::Object(_) => Bv::Raw(go_map(v)),
            other => Bv::Raw(other.to_string()),
        }
    }
}

/// Go's `strconv.Quote`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            '\x07' => o.push_str("\\a"),
            '\x08' => o.push_str("\\b"),
            '\x0b' => o.push_str("\\v"),
            '\x0c' => o.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\x7f' => o.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// `%#v` of a `[]string` (`None` is a nil slice).
fn go_strings(v: Option<Vec<&str>>) -> String {
    match v {
        None => "[]string(nil)".into(),
        Some(v) => format!(
            "[]string{{{}}}",
            v.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// `%#v` of a `map[string]string` (keys sorted, like fmt does).
fn go_map(v: &Value) -> String {
    let Some(o) = v.as_object() else {
        return "map[string]string(nil)".into();
    };
    let mut kv: Vec<_> = o.iter().map(|(k, v)| (k.as_str(), sval(v))).collect();
    kv.sort();
    let body: Vec<String> = kv
        .iter()
        .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v)))
        .collect();
    format!("map[string]string{{{}}}", body.join(", "))
}

fn fe(reason: &'static str, p: &P, message: String) -> FieldError {
    FieldError {
        reason,
        field: p.0.clone(),
        message,
    }
}
fn with_detail(s: String, d: &str) -> String {
    if d.is_empty() {
        s
    } else {
        format!("{s}: {d}")
    }
}
fn required(p: &P, d: &str) -> FieldError {
    fe(
        "FieldValueRequired",
        p,
        with_detail("Required value".into(), d),
    )
}
fn forbidden(p: &P, d: &str) -> FieldError {
    fe("FieldValueForbidden", p, with_detail("Forbidden".into(), d))
}
fn invalid(p: &P, v: impl Into<Bv>, d: &str) -> FieldError {
    fe(
        "FieldValueInvalid",
        p,
        with_detail(format!("Invalid value: {}", v.into().render()), d),
    )
}
fn not_supported(p: &P, v: impl Into<Bv>, valid: &[&str]) -> FieldError {
    let d = if valid.is_empty() {
        String::new()
    } else {
        let q: Vec<String> = valid.iter().map(|s| go_quote(s)).collect();
        format!("supported values: {}", q.join(", "))
    };
    fe(
        "FieldValueNotSupported",
        p,
        with_detail(format!("Unsupported value: {}", v.into().render()), &d),
    )
}
fn duplicate(p: &P, v: impl Into<Bv>) -> FieldError {
    fe(
        "FieldValueDuplicate",
        p,
        format!("Duplicate value: {}", v.into().render()),
    )
}
fn not_found(p: &P, v: impl Into<Bv>) -> FieldError {
    fe(
        "FieldValueNotFound",
        p,
        format!("Not found: {}", v.into().render()),
    )
}
fn too_long(p: &P, max: usize) -> FieldError {
    fe(
        "FieldValueTooLong",
        p,
        format!("Too long: may not be more than {max} bytes"),
    )
}
fn too_many(p: &P, actual: usize, max: usize) -> FieldError {
    fe(
        "FieldValueTooMany",
        p,
        format!("Too many: {actual}: must have at most {max} items"),
    )
}
fn msgs(p: &P, v: &str, m: Vec<String>) -> Errs {
    m.iter().map(|m| invalid(p, v, m)).collect()
}

const IS_NEGATIVE: &str = "must be greater than or equal to 0";
const NOT_POSITIVE: &str = "must be greater than zero";
const FIELD_IMMUTABLE: &str = "field is immutable";
const FILE_MODE: &str = "must be a number between 0 and 0777 (octal), both inclusive";

// ---------------------------------------------------------------------------
// JSON access
// ---------------------------------------------------------------------------

static NULL: Value = Value::Null;

fn sval(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}
fn ival(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
}
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
    }
}

trait Jx {
    fn g(&self, k: &str) -> &Value;
    fn st(&self, k: &str) -> &str {
        sval(self.g(k))
    }
    fn int(&self, k: &str) -> Option<i64> {
        ival(self.g(k))
    }
    fn arr(&self, k: &str) -> &[Value] {
        self.g(k).as_array().map(Vec::as_slice).unwrap_or(&[])
    }
    fn has(&self, k: &str) -> bool {
        !self.g(k).is_null()
    }
    fn flag(&self, k: &str) -> bool {
        self.g(k).as_bool().unwrap_or(false)
    }
    fn strs(&self, k: &str) -> Vec<&str> {
        self.arr(k).iter().map(sval).collect()
    }
    fn smap(&self, k: &str) -> Vec<(&str, &str)> {
        smap(self.g(k))
    }
}

impl Jx for Value {
    fn g(&self, k: &str) -> &Value {
        self.get(k).unwrap_or(&NULL)
    }
}

fn smap(v: &Value) -> Vec<(&str, &str)> {
    v.as_object()
        .map(|o| o.iter().map(|(k, v)| (k.as_str(), sval(v))).collect())
        .unwrap_or_default()
}

/// Semantic equality in the spirit of `apiequality.Semantic.DeepEqual` on typed objects:
/// absent, null and zero values (and empty lists/maps) compare equal.
pub(crate) fn sem_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.iter().all(|(k, v)| sem_eq(v, y.get(k).unwrap_or(&NULL)))
                && y.iter().all(|(k, v)| x.contains_key(k) || is_empty(v))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| sem_eq(p, q))
        }
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b || (is_empty(a) && is_empty(b)),
    }
}

// ---------------------------------------------------------------------------
// apimachinery/pkg/util/validation string checks
// ---------------------------------------------------------------------------

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const QNAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const QNAME_ERR: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let ex: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{msg} (e.g. {}regex used for validation is '{fmt}')",
        ex.join(" or ")
    )
}
fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}
fn range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

fn is_alnum_lower(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}
/// `^first(mid*last)?$`-shaped formats: non-empty, first/last/middle character classes.
fn shaped(s: &str, first: fn(u8) -> bool, mid: fn(u8) -> bool, last: fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && first(b[0]) && last(b[b.len() - 1]) && b.iter().all(|c| mid(*c))
}
fn label_fmt(s: &str) -> bool {
    shaped(
        s,
        is_alnum_lower,
        |c| is_alnum_lower(c) || c == b'-',
        is_alnum_lower,
    )
}
fn subdomain_fmt(s: &str) -> bool {
    s.split('.').all(label_fmt)
}
fn qname_fmt(s: &str) -> bool {
    let alnum = |c: u8| c.is_ascii_alphanumeric();
    shaped(
        s,
        alnum,
        |c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'),
        alnum,
    )
}

pub(crate) fn is_dns1123_label(v: &str) -> Vec<String> {
    let mut e = vec![];
    if v.len() > 63 {
        e.push(max_len_error(63));
    }
    if !label_fmt(v) {
        if subdomain_fmt(v) {
            e.push("must not contain dots".into());
        } else {
            e.push(regex_error(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    e
}

pub(crate) fn is_dns1123_subdomain(v: &str) -> Vec<String> {
    let mut e = vec![];
    if v.len() > 253 {
        e.push(max_len_error(253));
    }
    if !subdomain_fmt(v) {
        e.push(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    e
}

fn is_dns1035_label(v: &str) -> Vec<String> {
    let mut e = vec![];
    if v.len() > 63 {
        e.push(max_len_error(63));
    }
    if !shaped(
        v,
        |c| c.is_ascii_lowercase(),
        |c| is_alnum_lower(c) || c == b'-',
        is_alnum_lower,
    ) {
        e.push(regex_error(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    e
}

pub(crate) fn is_qualified_name(v: &str) -> Vec<String> {
    let mut e = vec![];
    let parts: Vec<&str> = v.split('/').collect();
    let name = match parts.as_slice() {
        [n] => *n,
        [prefix, n] => {
            if prefix.is_empty() {
                e.push("prefix part must be non-empty".into());
            } else {
                e.extend(is_dns1123_subdomain(prefix).into_iter().map(|m| format!("prefix part {m}")));
            }
            *n
        }
        _ => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QNAME_ERR, QNAME_FMT, &["MyName", "my.name", "123-abc"])
            )]
        }
    };
    if name.is_empty() {
        e.push("name part must be non-empty".into());
    } else if name.len() > 63 {
        e.push(format!("name part {}", max_len_error(63)));
    }
    if !qname_fmt(name) {
        e.push(format!(
            "name part {}",
            regex_error(QNAME_ERR, QNAME_FMT, &["MyName", "my.name", "123-abc"])
        ));
    }
    e
}

pub(crate) fn is_valid_label_value(v: &str) -> Vec<String> {
    let mut e = vec![];
    if v.len() > 63 {
        e.push(max_len_error(63));
    }
    if !v.is_empty() && !qname_fmt(v) {
        e.push(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    e
}

fn has_chdir_prefix(v: &str) -> Option<String> {
    match v {
        "." => Some("must not be '.'".into()),
        ".." => Some("must not be '..'".into()),
        _ if v.starts_with("..") => Some("must not start with '..'".into()),
        _ => None,
    }
}

pub(crate) fn is_config_map_key(v: &str) -> Vec<String> {
    let mut e = vec![];
    if v.len() > 253 {
        e.push(max_len_error(253));
    }
    if v.is_empty()
        || !v
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
    {
        e.push(regex_error(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            "[-._a-zA-Z0-9]+",
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    e.extend(has_chdir_prefix(v));
    e
}

fn is_valid_port_name(v: &str) -> Vec<String> {
    let mut e = vec![];
    if v.len() > 15 {
        e.push(max_len_error(15));
    }
    if v.is_empty() || !v.bytes().all(|c| is_alnum_lower(c) || c == b'-') {
        e.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !v.bytes().any(|c| c.is_ascii_lowercase()) {
        e.push("must contain at least one letter (a-z)".into());
    }
    if v.contains("--") {
        e.push("must not contain consecutive hyphens".into());
    }
    if v.starts_with('-') || v.ends_with('-') {
        e.push("must not begin or end with a hyphen".into());
    }
    e
}

fn is_relaxed_env_var_name(v: &str) -> Vec<String> {
    let mut e = vec![];
    if v.is_empty() {
        e.push("environment variable name must be non-empty".into());
    }
    if v.chars().any(|c| !(' '..='~').contains(&c) || c == '=') {
        e.push(
            "a valid environment variable name must consist only of printable ASCII characters other than '='".into(),
        );
    }
    e
}

fn is_valid_port_num(p: i64) -> Vec<String> {
    if (1..=65535).contains(&p) {
        vec![]
    } else {
        vec![range_error(1, 65535)]
    }
}

// Name validation functions (apimachinery ValidateNameFunc).
type NameFn = fn(&str, bool) -> Vec<String>;

fn mask_trailing_dash(n: &str) -> String {
    if n.len() > 1 && n.ends_with('-') {
        let mut cs: Vec<char> = n.chars().collect();
        cs.truncate(cs.len().saturating_sub(2));
        cs.push('a');
        cs.into_iter().collect()
    } else {
        n.into()
    }
}
fn name_subdomain(n: &str, prefix: bool) -> Vec<String> {
    is_dns1123_subdomain(&if prefix {
        mask_trailing_dash(n)
    } else {
        n.into()
    })
}
fn name_dns_label(n: &str, prefix: bool) -> Vec<String> {
    is_dns1123_label(&if prefix {
        mask_trailing_dash(n)
    } else {
        n.into()
    })
}
fn name_dns1035(n: &str, prefix: bool) -> Vec<String> {
    is_dns1035_label(&if prefix {
        mask_trailing_dash(n)
    } else {
        n.into()
    })
}
fn name_path_segment(n: &str, prefix: bool) -> Vec<String> {
    if !prefix && (n == "." || n == "..") {
        return vec![format!("may not be '{n}'")];
    }
    ["/", "%"]
        .iter()
        .filter(|s| n.contains(*s))
        .map(|s| format!("may not contain '{s}'"))
        .collect()
}

fn dns_label(v: &str, p: &P) -> Errs {
    msgs(p, v, is_dns1123_label(v))
}
fn dns_subdomain(v: &str, p: &P) -> Errs {
    msgs(p, v, is_dns1123_subdomain(v))
}
fn qualified(v: &str, p: &P) -> Errs {
    msgs(p, v, is_qualified_name(v))
}
fn name_check(f: NameFn, v: &str, p: &P) -> Errs {
    msgs(p, v, f(v, false))
}

// ---------------------------------------------------------------------------
// IP / CIDR parsing (k8s.io/utils/net "sloppy" parsers; StrictIPCIDRValidation is off in 1.33)
// ---------------------------------------------------------------------------

fn parse_ipv4_sloppy(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut o = [0u8; 4];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let v = p.trim_start_matches('0');
        if v.len() > 3 {
            return None;
        }
        o[i] = if v.is_empty() {
            0
        } else {
            v.parse::<u16>().ok().filter(|n| *n <= 255)? as u8
        };
    }
    Some(Ipv4Addr::from(o))
}

pub(crate) fn parse_ip_sloppy(s: &str) -> Option<IpAddr> {
    match s.bytes().find(|c| *c == b'.' || *c == b':') {
        Some(b'.') => parse_ipv4_sloppy(s).map(IpAddr::V4),
        Some(b':') => s.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        _ => None,
    }
}

/// Whether Go would treat the address as IPv4 (`ip.To4() != nil`).
fn is_v4(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => true,
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
    }
}

fn parse_cidr_sloppy(s: &str) -> Option<(IpAddr, u32)> {
    let (ip, bits) = s.split_once('/')?;
    let ip = parse_ip_sloppy(ip)?;
    if bits.is_empty() || !bits.bytes().all(|c| c.is_ascii_digit()) || bits.len() > 4 {
        return None;
    }
    let n: u32 = bits.parse().ok()?;
    let max = if matches!(ip, IpAddr::V4(_)) { 32 } else { 128 };
    (n <= max).then_some((ip, n))
}

fn ip_legacy(p: &P, v: &str, old: &[&str]) -> Errs {
    if old.contains(&v) || parse_ip_sloppy(v).is_some() {
        return vec![];
    }
    vec![invalid(
        p,
        v,
        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
    )]
}

fn cidr_legacy(p: &P, v: &str, old: &[&str]) -> Errs {
    if old.contains(&v) || parse_cidr_sloppy(v).is_some() {
        return vec![];
    }
    vec![invalid(
        p,
        v,
        "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
    )]
}

/// `ValidateEndpointIP`.
fn endpoint_ip(v: &str, p: &P) -> Errs {
    let Some(ip) = parse_ip_sloppy(v) else {
        return vec![invalid(p, v, "must be a valid IP address")];
    };
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    let (unspec, loopback, ll_unicast, ll_multicast) = match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            (
                a.is_unspecified(),
                o[0] == 127,
                o[0] == 169 && o[1] == 254,
                o[0] == 224 && o[1] == 0 && o[2] == 0,
            )
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            (
                a.is_unspecified(),
                a.is_loopback(),
                s[0] & 0xffc0 == 0xfe80,
                s[0] & 0xff0f == 0xff02,
            )
        }
    };
    let mut e = vec![];
    if unspec {
        e.push(invalid(p, v, &format!("may not be unspecified ({v})")));
    }
    if loopback {
        e.push(invalid(
            p,
            v,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    if ll_unicast {
        e.push(invalid(
            p,
            v,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    if ll_multicast {
        e.push(invalid(
            p,
            v,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
    e
}

/// `netutils.IsDualStackIPStrings` / `IsDualStackCIDRStrings` on already-valid values.
fn is_dual_stack(families: impl Iterator<Item = Option<bool>>) -> bool {
    let (mut v4, mut v6) = (false, false);
    for f in families {
        match f {
            Some(true) => v4 = true,
            Some(false) => v6 = true,
            None => return false,
        }
    }
    v4 && v6
}

// ---------------------------------------------------------------------------
// resource.Quantity
// ---------------------------------------------------------------------------

const NANO: u128 = 1_000_000_000;
pub(crate) const QUANTITY_ERR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum QFormat {
    DecimalSI,
    BinarySI,
    DecimalExponent,
}

/// A parsed quantity, exact to nano units (upstream rounds finer values up).
#[derive(Clone, Debug)]
pub(crate) struct Quantity {
    pub(crate) nano: i128,
    pub(crate) format: QFormat,
    /// The input string when upstream keeps it verbatim (already canonical).
    cached: Option<String>,
    /// Scale of upstream's int64 fast path (`None` when it used inf.Dec).
    scale: Option<i32>,
}

fn pow_sat(base: u128, exp: u32) -> u128 {
    base.checked_pow(exp).unwrap_or(u128::MAX)
}
fn ceil_div(a: u128, b: u128) -> u128 {
    a / b + u128::from(!a.is_multiple_of(b))
}

impl Quantity {
    /// `resource.ParseQuantity` (JSON numbers are accepted as their text, like UnmarshalJSON).
    pub(crate) fn from_json(v: &Value) -> Option<Quantity> {
        match v {
            Value::String(s) => Quantity::parse(s.trim()),
            Value::Number(n) => Quantity::parse(&n.to_string()),
            _ => None,
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Quantity> {
        if s.is_empty() {
            return None;
        }
        if s == "0" {
            return Some(Quantity {
                nano: 0,
                format: QFormat::DecimalSI,
                cached: Some(s.into()),
                scale: Some(0),
            });
        }
        let (positive, num, denom, suffix) = scan_quantity(s)?;
        let (base, exp, mut format) = interpret_suffix(suffix)?;
        let shifted = format!("{num}{denom}");
        let (mut cached, mut scale) = (None, None);
        match format {
            QFormat::BinarySI => {
                if exp >= 0 && denom.is_empty() {
                    let precision = 15 - num.len() as i32 - (exp as f32 * 3.0 / 10.0) as i32 - 1;
                    if precision >= 0 {
                        scale = Some(0);
                        let value: i64 = shifted.parse().ok()?;
                        if exp % 10 == 0 && value & 7 != 0 {
                            cached = Some(s.to_string());
                        }
                    }
                }
            }
            _ => {
                if 18 - (num.len() + denom.len()) as i32 >= 0 {
                    let sc = exp - denom.len() as i32;
                    if sc >= -9 {
                        scale = Some(sc);
                        if sc % 3 == 0 && !shifted.ends_with("000") && !shifted.starts_with('0') {
                            cached = Some(s.to_string());
                        }
                    }
                }
            }
        }
        // Exact value in nano units, rounded up (away from zero).
        let digits = shifted.trim_start_matches('0');
        let mut m: u128 = if digits.len() > 38 {
            u128::MAX
        } else {
            digits.parse().unwrap_or(0)
        };
        let mut p10 = 9 - denom.len() as i32;
        if base == 2 {
            m = m.saturating_mul(pow_sat(2, exp as u32));
        } else {
            p10 += exp;
        }
        let mut mag = if p10 >= 0 {
            m.saturating_mul(pow_sat(10, p10 as u32))
        } else {
            let d = pow_sat(10, (-p10) as u32);
            if d == u128::MAX {
                u128::from(m != 0)
            } else {
                ceil_div(m, d)
            }
        };
        if scale.is_none() && format == QFormat::BinarySI {
            mag = mag.min(i64::MAX as u128 * NANO);
            if mag > 0 && mag < NANO {
                format = QFormat::DecimalSI;
            }
        }
        let mag = mag.min(i128::MAX as u128 / 2) as i128;
        Some(Quantity {
            nano: if positive { mag } else { -mag },
            format,
            cached,
            scale,
        })
    }

    /// `Quantity.String()`.
    pub(crate) fn to_str(&self) -> String {
        self.cached.clone().unwrap_or_else(|| self.canonical())
    }

    fn canonical(&self) -> String {
        if self.nano == 0 {
            return "0".into();
        }
        let mag = self.nano.unsigned_abs();
        let mut format = self.format;
        if format == QFormat::BinarySI && (mag < 1024 * NANO || !mag.is_multiple_of(NANO)) {
            format = QFormat::DecimalSI;
        }
        let (num, suffix) = if format == QFormat::BinarySI {
            let (mut v, mut e) = (mag / NANO, 0);
            while e < 6 && v % 1024 == 0 {
                v /= 1024;
                e += 1;
            }
            (v, ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][e].to_string())
        } else {
            let (mut m, mut e) = (mag, -9i32);
            while m % 10 == 0 {
                m /= 10;
                e += 1;
            }
            let r = e.rem_euclid(3);
            m *= 10u128.pow(r as u32);
            e -= r;
            let si = ["n", "u", "m", "", "k", "M", "G", "T", "P", "E"];
            let s = match format {
                QFormat::DecimalSI if (-9..=18).contains(&e) => {
                    si[((e + 9) / 3) as usize].to_string()
                }
                _ if e == 0 => String::new(),
                _ => format!("e{e}"),
            };
            (m, s)
        };
        format!("{}{num}{suffix}", if self.nano < 0 { "-" } else { "" })
    }

    /// `RoundUp(resource.Milli)` as done by `SetDefaults_ResourceList`.
    pub(crate) fn round_up_milli(&mut self) {
        if self.scale.is_some_and(|s| s >= -3) {
            return;
        }
        self.cached = None;
        let mag = ceil_div(self.nano.unsigned_abs(), 1_000_000) * 1_000_000;
        self.nano = if self.nano < 0 {
            -(mag as i128)
        } else {
            mag as i128
        };
    }

    /// `ScaledValue`: ceil(q / 10^scale) away from zero; `scale_nano` = 10^(9+scale).
    fn scaled(&self, scale_nano: u128) -> i128 {
        let v = ceil_div(self.nano.unsigned_abs(), scale_nano) as i128;
        if self.nano < 0 {
            -v
        } else {
            v
        }
    }
    fn value(&self) -> i128 {
        self.scaled(NANO)
    }
    fn milli_value(&self) -> i128 {
        self.scaled(1_000_000)
    }
}

fn scan_quantity(s: &str) -> Option<(bool, String, String, &str)> {
    let b = s.as_bytes();
    let end = b.len();
    let (mut pos, mut positive) = (0, true);
    match b.first() {
        Some(b'-') => {
            positive = false;
            pos = 1;
        }
        Some(b'+') => pos = 1,
        _ => {}
    }
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Some((positive, "0".into(), String::new(), ""));
    }
    let start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let mut num = s[start..pos].to_string();
    if num.is_empty() {
        num = "0".into();
    }
    let mut denom = String::new();
    if pos < end && b[pos] == b'.' {
        pos += 1;
        let ds = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = s[ds..pos].to_string();
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    (pos == end).then(|| (positive, num, denom, &s[suffix_start..]))
}

fn interpret_suffix(s: &str) -> Option<(u32, i32, QFormat)> {
    const DEC: [(&str, i32); 10] = [
        ("n", -9),
        ("u", -6),
        ("m", -3),
        ("", 0),
        ("k", 3),
        ("M", 6),
        ("G", 9),
        ("T", 12),
        ("P", 15),
        ("E", 18),
    ];
    const BIN: [(&str, i32); 6] = [
        ("Ki", 10),
        ("Mi", 20),
        ("Gi", 30),
        ("Ti", 40),
        ("Pi", 50),
        ("Ei", 60),
    ];
    if let Some((_, e)) = DEC.iter().find(|(k, _)| *k == s) {
        return Some((10, *e, QFormat::DecimalSI));
    }
    if let Some((_, e)) = BIN.iter().find(|(k, _)| *k == s) {
        return Some((2, *e, QFormat::BinarySI));
    }
    if s.len() > 1 && (s.starts_with('e') || s.starts_with('E')) {
        let e: i64 = s[1..].parse().ok()?;
        return Some((10, e as i32, QFormat::DecimalExponent));
    }
    None
}

// ---------------------------------------------------------------------------
// base64 (Go encoding/base64 StdEncoding, as used for []byte in JSON)
// ---------------------------------------------------------------------------

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub(crate) fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let clean: Vec<u8> = s.bytes().filter(|c| *c != b'\r' && *c != b'\n').collect();
    if !clean.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for (ci, chunk) in clean.chunks(4).enumerate() {
        let last = ci == clean.len() / 4 - 1;
        let mut n = 0u32;
        let mut pad = 0;
        for (i, c) in chunk.iter().enumerate() {
            let v = if *c == b'=' && last && i >= 2 {
                pad += 1;
                0
            } else if pad > 0 {
                return None;
            } else {
                B64.iter().position(|x| x == c)? as u32
            };
            n = n << 6 | v;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

pub(crate) fn b64_encode(b: &[u8]) -> String {
    let mut o = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, c)| n | (*c as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                o.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                o.push('=');
            }
        }
    }
    o
}

// ---------------------------------------------------------------------------
// ObjectMeta (apimachinery/pkg/api/validation/objectmeta.go + core wrappers)
// ---------------------------------------------------------------------------

fn labels(v: &Value, p: &P) -> Errs {
    let mut e = vec![];
    for (k, val) in smap(v) {
        e.extend(qualified(k, p));
        e.extend(msgs(p, val, is_valid_label_value(val)));
    }
    e
}

fn annotations(v: &Value, p: &P) -> Errs {
    let mut e = vec![];
    let mut total = 0;
    for (k, val) in smap(v) {
        e.extend(
            is_qualified_name(&k.to_lowercase())
                .iter()
                .map(|m| invalid(p, k, m)),
        );
        total += k.len() + val.len();
    }
    if total > 256 * 1024 {
        e.push(too_long(p, 256 * 1024));
    }
    e
}

fn go_owner_ref(r: &Value) -> String {
    let ptr = |k: &str| {
        if r.has(k) {
            "(*bool)(0xc000000000)"
        } else {
            "(*bool)(nil)"
        }
    };
    format!(
        "v1.OwnerReference{{APIVersion:{}, Kind:{}, Name:{}, UID:{}, Controller:{}, BlockOwnerDeletion:{}}}",
        go_quote(r.st("apiVersion")),
        go_quote(r.st("kind")),
        go_quote(r.st("name")),
        go_quote(r.st("uid")),
        ptr("controller"),
        ptr("blockOwnerDeletion")
    )
}

fn owner_refs(refs: &[Value], p: &P) -> Errs {
    let mut e = vec![];
    let mut first_controller = String::new();
    for r in refs {
        let (av, kind, name) = (r.st("apiVersion"), r.st("kind"), r.st("name"));
        let (group, version) = match av.matches('/').count() {
            _ if av.is_empty() || av == "/" => ("", ""),
            0 => ("", av),
            1 => av.split_once('/').unwrap_or_default(),
            _ => ("", ""),
        };
        if version.is_empty() {
            e.push(invalid(
                &p.ch("apiVersion"),
                av,
                "version must not be empty",
            ));
        }
        if kind.is_empty() {
            e.push(invalid(&p.ch("kind"), kind, "kind must not be empty"));
        }
        if name.is_empty() {
            e.push(invalid(&p.ch("name"), name, "name must not be empty"));
        }
        if r.st("uid").is_empty() {
            e.push(invalid(&p.ch("uid"), "", "uid must not be empty"));
        }
        if group.is_empty() && version == "v1" && kind == "Event" {
            e.push(invalid(
                p,
                Bv::Raw(go_owner_ref(r)),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.g("controller").as_bool() == Some(true) {
            let cur = format!("{kind}/{name}");
            if first_controller.is_empty() {
                first_controller = cur;
            } else {
                let all: Vec<String> = refs.iter().map(go_owner_ref).collect();
                e.push(invalid(
                    p,
                    Bv::Raw(format!("[]v1.OwnerReference{{{}}}", all.join(", "))),
                    &format!("Only one reference can have Controller set to true. Found \"true\" in references for {first_controller} and {cur}"),
                ));
            }
        }
    }
    e
}

fn finalizers(list: &[&str], p: &P) -> Errs {
    let mut e: Errs = list.iter().flat_map(|f| qualified(f, p)).collect();
    if list.contains(&"orphan") && list.contains(&"foregroundDeletion") {
        e.push(invalid(
            p,
            Bv::Raw(go_strings(Some(list.to_vec()))),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    e
}

/// `validateKubeFinalizerName`.
fn kube_finalizer(f: &str, p: &P) -> Errs {
    if !f.contains('/') && !["kubernetes", "orphan", "foregroundDeletion"].contains(&f) {
        return vec![invalid(
            p,
            f,
            "name is neither a standard finalizer name nor is it fully qualified",
        )];
    }
    vec![]
}

fn managed_fields(list: &[Value], p: &P) -> Errs {
    let mut e = vec![];
    for (i, mf) in list.iter().enumerate() {
        let ip = p.idx(i);
        let op = mf.st("operation");
        if op != "Apply" && op != "Update" {
            e.push(invalid(
                &ip.ch("operation"),
                op,
                "must be `Apply` or `Update`",
            ));
        }
        let ft = mf.st("fieldsType");
        if !ft.is_empty() && ft != "FieldsV1" {
            e.push(invalid(&ip.ch("fieldsType"), ft, "must be `FieldsV1`"));
        }
        let manager = mf.st("manager");
        if manager.len() > 128 {
            e.push(too_long(&ip.ch("manager"), 128));
        }
        for (pos, c) in manager.char_indices().filter(|(_, c)| c.is_control()) {
            e.push(invalid(
                &ip.ch("manager"),
                manager,
                &format!("invalid character U+{:04X} (at position {pos})", c as u32),
            ));
        }
        if mf.st("subresource").len() > 256 {
            e.push(too_long(&ip.ch("subresource"), 256));
        }
    }
    e
}

/// apimachinery `ValidateObjectMetaAccessor`.
fn object_meta(m: &Value, ns_required: bool, name_fn: NameFn, p: &P) -> Errs {
    let mut e = vec![];
    let gen = m.st("generateName");
    if !gen.is_empty() {
        e.extend(msgs(&p.ch("generateName"), gen, name_fn(gen, true)));
    }
    let name = m.st("name");
    if name.is_empty() {
        e.push(required(&p.ch("name"), "name or generateName is required"));
    } else {
        e.extend(name_check(name_fn, name, &p.ch("name")));
    }
    let ns = m.st("namespace");
    if ns_required {
        if ns.is_empty() {
            e.push(required(&p.ch("namespace"), ""));
        } else {
            e.extend(name_check(name_dns_label, ns, &p.ch("namespace")));
        }
    } else if !ns.is_empty() {
        e.push(forbidden(&p.ch("namespace"), "not allowed on this type"));
    }
    if let Some(g) = m.int("generation").filter(|g| *g < 0) {
        e.push(invalid(&p.ch("generation"), g, IS_NEGATIVE));
    }
    e.extend(common_meta(m, p));
    e.extend(finalizers(&m.strs("finalizers"), &p.ch("finalizers")));
    e
}

fn common_meta(m: &Value, p: &P) -> Errs {
    let mut e = labels(m.g("labels"), &p.ch("labels"));
    e.extend(annotations(m.g("annotations"), &p.ch("annotations")));
    e.extend(owner_refs(
        m.arr("ownerReferences"),
        &p.ch("ownerReferences"),
    ));
    e.extend(managed_fields(
        m.arr("managedFields"),
        &p.ch("managedFields"),
    ));
    e
}

/// Go's `time.Time.String()` for an RFC 3339 timestamp (UTC assumed for `Z`).
fn go_time(v: &Value) -> String {
    let s = sval(v);
    let Some((date, rest)) = s.split_once('T') else {
        return "0001-01-01 00:00:00 +0000 UTC".into();
    };
    let (time, zone) = match rest.strip_suffix('Z') {
        Some(t) => (t, "+0000 UTC".to_string()),
        None => {
            let i = rest.rfind(['+', '-']).unwrap_or(rest.len());
            let z = rest[i..].replace(':', "");
            (&rest[..i], format!("{z} {z}"))
        }
    };
    let time = match time.split_once('.') {
        Some((t, f)) if !f.trim_end_matches('0').is_empty() => {
            format!("{t}.{}", f.trim_end_matches('0'))
        }
        Some((t, _)) => t.to_string(),
        None => time.to_string(),
    };
    format!("{date} {time} {zone}")
}

/// apimachinery `ValidateObjectMetaAccessorUpdate`.
fn object_meta_update(n: &Value, o: &Value, p: &P) -> Errs {
    let mut e = vec![];
    if o.has("deletionTimestamp") {
        let old: HashSet<&str> = o.strs("finalizers").into_iter().collect();
        let mut extra: Vec<&str> = n
            .strs("finalizers")
            .into_iter()
            .filter(|f| !old.contains(f))
            .collect();
        extra.sort();
        extra.dedup();
        if !extra.is_empty() {
            e.push(forbidden(
                &p.ch("finalizers"),
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers {}",
                    go_strings(Some(extra))
                ),
            ));
        }
    }
    if n.st("resourceVersion").is_empty() {
        e.push(invalid(
            &p.ch("resourceVersion"),
            "",
            "must be specified for an update",
        ));
    }
    let (ng, og) = (
        n.int("generation").unwrap_or(0),
        o.int("generation").unwrap_or(0),
    );
    if ng < og {
        e.push(invalid(&p.ch("generation"), ng, "must not be decremented"));
    }
    for k in ["name", "namespace", "uid"] {
        if n.st(k) != o.st(k) {
            e.push(invalid(&p.ch(k), n.st(k), FIELD_IMMUTABLE));
        }
    }
    if n.st("creationTimestamp") != o.st("creationTimestamp") {
        e.push(invalid(
            &p.ch("creationTimestamp"),
            Bv::Raw(go_time(n.g("creationTimestamp"))),
            FIELD_IMMUTABLE,
        ));
    }
    if n.g("deletionTimestamp") != o.g("deletionTimestamp") {
        let v = if n.has("deletionTimestamp") {
            Bv::Raw(go_time(n.g("deletionTimestamp")))
        } else {
            Bv::Null
        };
        e.push(invalid(&p.ch("deletionTimestamp"), v, FIELD_IMMUTABLE));
    }
    if n.int("deletionGracePeriodSeconds") != o.int("deletionGracePeriodSeconds") {
        e.push(invalid(
            &p.ch("deletionGracePeriodSeconds"),
            n.g("deletionGracePeriodSeconds"),
            FIELD_IMMUTABLE,
        ));
    }
    e.extend(common_meta(n, p));
    e
}

/// core `ValidateObjectMeta`: apimachinery checks plus legacy finalizer names.
fn core_object_meta(m: &Value, ns_required: bool, name_fn: NameFn, p: &P) -> Errs {
    let mut e = object_meta(m, ns_required, name_fn, p);
    e.extend(core_finalizers(m, p));
    e
}
fn core_object_meta_update(n: &Value, o: &Value, p: &P) -> Errs {
    let mut e = object_meta_update(n, o, p);
    e.extend(core_finalizers(n, p));
    e
}
fn core_finalizers(m: &Value, p: &P) -> Errs {
    let fp = p.ch("finalizers");
    m.strs("finalizers")
        .iter()
        .enumerate()
        .flat_map(|(i, f)| kube_finalizer(f, &fp.idx(i)))
        .collect()
}

fn label_selector(sel: &Value, p: &P) -> Errs {
    if sel.is_null() {
        return vec![];
    }
    let mut e = labels(sel.g("matchLabels"), &p.ch("matchLabels"));
    for (i, r) in sel.arr("matchExpressions").iter().enumerate() {
        let rp = p.ch("matchExpressions").idx(i);
        let vals = r.strs("values");
        match r.st("operator") {
            "In" | "NotIn" if vals.is_empty() => e.push(required(
                &rp.ch("values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !vals.is_empty() => e.push(forbidden(
                &rp.ch("values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            op => e.push(invalid(
                &rp.ch("operator"),
                op,
                "not a valid selector operator",
            )),
        }
        e.extend(qualified(r.st("key"), &rp.ch("key")));
        for (j, v) in vals.iter().enumerate() {
            e.extend(msgs(&rp.ch("values").idx(j), v, is_valid_label_value(v)));
        }
    }
    e
}

// ---------------------------------------------------------------------------
// Pods: volumes
// ---------------------------------------------------------------------------

/// Volume source fields in upstream's check order, with the path used for the
/// "more than 1 volume type" error (upstream typos preserved).
pub(crate) const VOLUME_SOURCES: &[(&str, &str)] = &[
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
];

/// Simple "required string fields" checks of legacy volume plugins.
fn volume_required_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "gcePersistentDisk" => &["pdName"],
        "awsElasticBlockStore" | "cinder" | "portworxVolume" => &["volumeID"],
        "iscsi" => &["targetPortal", "iqn"],
        "glusterfs" => &["endpoints", "path"],
        "rbd" => &["monitors", "image"],
        "cephfs" => &["monitors"],
        "flexVolume" => &["driver"],
        "azureFile" => &["secretName", "shareName"],
        "vsphereVolume" => &["volumePath"],
        "photonPersistentDisk" => &["pdID"],
        "azureDisk" => &["diskName", "diskURI"],
        "storageos" => &["volumeName"],
        "scaleIO" => &["gateway", "system", "volumeName"],
        "persistentVolumeClaim" => &["claimName"],
        "ephemeral" => &["volumeClaimTemplate"],
        _ => &[],
    }
}

fn file_mode(v: &Value, p: &P) -> Errs {
    match ival(v) {
        Some(m) if !(0..=0o777).contains(&m) => vec![invalid(p, m, FILE_MODE)],
        _ => vec![],
    }
}

fn is_abs(p: &str) -> bool {
    p.starts_with('/')
}

fn no_backsteps(t: &str, p: &P) -> Errs {
    if t.split(['/', '\\']).any(|s| s == "..") {
        vec![invalid(p, t, "must not contain '..'")]
    } else {
        vec![]
    }
}

fn local_descending_path(t: &str, p: &P) -> Errs {
    let mut e = vec![];
    if is_abs(t) {
        e.push(invalid(p, t, "must be a relative path"));
    }
    e.extend(no_backsteps(t, p));
    e
}

fn local_non_reserved_path(t: &str, p: &P) -> Errs {
    let mut e = local_descending_path(t, p);
    if t.starts_with("..") && !t.starts_with("../") {
        e.push(invalid(p, t, "must not start with '..'"));
    }
    e
}

fn key_to_path(kp: &Value, p: &P) -> Errs {
    let mut e = vec![];
    if kp.st("key").is_empty() {
        e.push(required(&p.ch("key"), ""));
    }
    let path = kp.st("path");
    if path.is_empty() {
        e.push(required(&p.ch("path"), ""));
    }
    e.extend(local_non_reserved_path(path, &p.ch("path")));
    e.extend(file_mode(kp.g("mode"), &p.ch("mode")));
    e
}

const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

fn downward_file(f: &Value, p: &P) -> Errs {
    let mut e = vec![];
    let path = f.st("path");
    if path.is_empty() {
        e.push(required(&p.ch("path"), ""));
    }
    e.extend(local_non_reserved_path(path, &p.ch("path")));
    if f.has("fieldRef") {
        e.extend(object_field_selector(
            f.g("fieldRef"),
            VOLUME_FIELD_PATHS,
            &p.ch("fieldRef"),
        ));
        if f.has("resourceFieldRef") {
            e.push(invalid(
                p,
                "resource",
                "fieldRef and resourceFieldRef can not be specified simultaneously",
            ));
        }
    } else if f.has("resourceFieldRef") {
        e.extend(resource_field_selector(
            f.g("resourceFieldRef"),
            &p.ch("resourceFieldRef"),
            true,
        ));
    } else {
        e.push(required(
            p,
            "one of fieldRef and resourceFieldRef is required",
        ));
    }
    e.extend(file_mode(f.g("mode"), &p.ch("mode")));
    e
}

fn projected_sources(src: &Value, p: &P) -> Errs {
    let mut e = vec![];
    let mut paths: HashSet<String> = HashSet::new();
    let mut add_path = |e: &mut Errs, path: &str, value: &str| {
        if !paths.insert(path.to_string()) {
            e.push(invalid(p, value, "conflicting duplicate paths"));
        }
    };
    for (i, s) in src.arr("sources").iter().enumerate() {
        let sp = p.ch("sources").idx(i);
        let mut n = 0;
        for kind in ["secret", "configMap"] {
            let v = s.g(kind);
            if v.is_null() {
                continue;
            }
            n += 1;
            let pp = sp.ch(kind);
            if v.st("name").is_empty() {
                e.push(required(&pp.ch("name"), ""));
            }
            for (j, kp) in v.arr("items").iter().enumerate() {
                e.extend(key_to_path(kp, &pp.ch("items").idx(j)));
                if !kp.st("path").is_empty() {
                    add_path(&mut e, kp.st("path"), v.st("name"));
                }
            }
        }
        if s.has("downwardAPI") {
            n += 1;
            for f in s.g("downwardAPI").arr("items") {
                e.extend(downward_file(f, &sp.ch("downwardAPI")));
                if !f.st("path").is_empty() {
                    add_path(&mut e, f.st("path"), f.st("path"));
                }
            }
        }
        let sat = s.g("serviceAccountToken");
        if !sat.is_null() {
            n += 1;
            let exp = sat.int("expirationSeconds").unwrap_or(0);
            let ep = sp.ch("serviceAccountToken").ch("expirationSeconds");
            if exp < 600 {
                e.push(invalid(
                    &ep,
                    exp,
                    "may not specify a duration less than 10 minutes",
                ));
            }
            if exp > 1 << 32 {
                e.push(invalid(
                    &ep,
                    exp,
                    "may not specify a duration larger than 2^32 seconds",
                ));
            }
            if sat.st("path").is_empty() {
                e.push(required(&p.ch("path"), ""));
            } else {
                e.extend(local_non_reserved_path(sat.st("path"), &p.ch("path")));
            }
        }
        let ctb = s.g("clusterTrustBundle");
        if !ctb.is_null() {
            n += 1;
            let cp = sp.ch("clusterTrustBundle");
            match (ctb.has("name"), ctb.has("signerName")) {
                (true, true) => e.push(invalid(
                    &cp,
                    Bv::Raw("&core.ClusterTrustBundleProjection{...}".into()),
                    "only one of name and signerName may be used",
                )),
                (true, false) if ctb.st("name").is_empty() => {
                    e.push(required(&cp.ch("name"), "must be a valid object name"))
                }
                (false, false) => {
                    e.push(required(&cp, "either name or signerName must be specified"))
                }
                _ => {}
            }
            if ctb.st("path").is_empty() {
                e.push(required(&cp.ch("path"), ""));
            }
            e.extend(local_non_reserved_path(ctb.st("path"), &cp.ch("path")));
            add_path(&mut e, ctb.st("path"), ctb.st("path"));
        }
        if n > 1 {
            e.push(forbidden(
                &sp,
                "may not specify more than 1 volume type per source",
            ));
        }
    }
    e
}

fn volume_source(v: &Value, kind: &str, p: &P, is_pod: bool) -> Errs {
    let s = v.g(kind);
    let mut e: Errs = volume_required_fields(kind)
        .iter()
        .filter(|f| is_empty(s.g(f)))
        .map(|f| required(&p.ch(f), ""))
        .collect();
    match kind {
        "emptyDir" if Quantity::from_json(s.g("sizeLimit")).is_some_and(|q| q.nano < 0) => {
            e.push(forbidden(
                &p.ch("sizeLimit"),
                "SizeLimit field must be a valid resource quantity",
            ));
        }
        "hostPath" => {
            let path = s.st("path");
            if path.is_empty() {
                return vec![required(&p.ch("path"), "")];
            }
            e.extend(no_backsteps(path, &p.ch("path")));
            const TYPES: &[&str] = &[
                "",
                "BlockDevice",
                "CharDevice",
                "Directory",
                "DirectoryOrCreate",
                "File",
                "FileOrCreate",
                "Socket",
            ];
            if let Some(t) = s.g("type").as_str().filter(|t| !TYPES.contains(t)) {
                e.push(not_supported(&p.ch("type"), t, TYPES));
            }
        }
        "gitRepo" => {
            if s.st("repository").is_empty() {
                e.push(required(&p.ch("repository"), ""));
            }
            e.extend(local_descending_path(s.st("directory"), &p.ch("directory")));
        }
        "gcePersistentDisk" | "awsElasticBlockStore" => {
            if let Some(n) = s.int("partition").filter(|n| !(0..=255).contains(n)) {
                e.push(invalid(&p.ch("partition"), n, &range_error(1, 255)));
            }
        }
        "secret" | "configMap" => {
            let name_key = if kind == "secret" {
                "secretName"
            } else {
                "name"
            };
            if s.st(name_key).is_empty() {
                e.push(required(&p.ch(name_key), ""));
            }
            e.extend(file_mode(s.g("defaultMode"), &p.ch("defaultMode")));
            for (i, kp) in s.arr("items").iter().enumerate() {
                e.extend(key_to_path(kp, &p.ch("items").idx(i)));
            }
        }
        "nfs" => {
            for k in ["server", "path"] {
                if s.st(k).is_empty() {
                    e.push(required(&p.ch(k), ""));
                }
            }
            if !is_abs(s.st("path")) {
                e.push(invalid(
                    &p.ch("path"),
                    s.st("path"),
                    "must be an absolute path",
                ));
            }
        }
        "iscsi" => {
            if let Some(l) = s.int("lun").filter(|l| !(0..=255).contains(l)) {
                e.push(invalid(&p.ch("lun"), l, &range_error(0, 255)));
            }
        }
        "downwardAPI" => {
            e.extend(file_mode(s.g("defaultMode"), &p.ch("defaultMode")));
            for f in s.arr("items") {
                e.extend(downward_file(f, p));
            }
        }
        "projected" => {
            e.extend(file_mode(s.g("defaultMode"), &p.ch("defaultMode")));
            e.extend(projected_sources(s, p));
        }
        "csi" => {
            let d = s.st("driver");
            let dp = p.ch("driver");
            if d.is_empty() {
                e.push(required(&dp, ""));
            }
            if d.len() > 63 {
                e.push(too_long(&dp, 63));
            }
            e.extend(msgs(&dp, d, is_dns1123_subdomain(&d.to_lowercase())));
            let nps = s.g("nodePublishSecretRef");
            if !nps.is_null() {
                if nps.st("name").is_empty() {
                    e.push(required(&p.ch("nodePublishSecretRef").ch("name"), ""));
                } else {
                    e.extend(name_check(name_subdomain, nps.st("name"), &p.ch("name")));
                }
            }
        }
        "image" => {
            if is_pod && s.st("reference").is_empty() {
                e.push(required(&p.ch("reference"), ""));
            }
            e.extend(pull_policy(s.st("pullPolicy"), &p.ch("pullPolicy")));
        }
        _ => {}
    }
    e
}

type Volumes<'a> = HashMap<&'a str, &'a Value>;

fn volumes<'a>(
    list: &'a [Value],
    pod_name: Option<&str>,
    p: &P,
    is_pod: bool,
) -> (Volumes<'a>, Errs) {
    let mut errs = vec![];
    let mut vols: Volumes = HashMap::new();
    let created_pvcs: HashSet<String> = match pod_name.filter(|n| !n.is_empty()) {
        Some(pn) => list
            .iter()
            .filter(|v| v.has("ephemeral"))
            .map(|v| format!("{pn}-{}", v.st("name")))
            .collect(),
        None => HashSet::new(),
    };
    for (i, v) in list.iter().enumerate() {
        let ip = p.idx(i);
        let name = v.st("name");
        let mut el = vec![];
        let mut count = 0;
        for (kind, fpath) in VOLUME_SOURCES {
            if !v.has(kind) {
                continue;
            }
            if count > 0 {
                el.push(forbidden(
                    &ip.ch(fpath),
                    "may not specify more than 1 volume type",
                ));
                continue;
            }
            count += 1;
            let vp = ip.ch(match *kind {
                "gcePersistentDisk" => "persistentDisk",
                k => k,
            });
            el.extend(volume_source(v, kind, &vp, is_pod));
            if *kind == "ephemeral" && !name.is_empty() {
                if let Some(pn) = pod_name.filter(|n| !n.is_empty()) {
                    let pvc = format!("{pn}-{name}");
                    for m in is_dns1123_subdomain(&pvc) {
                        el.push(invalid(
                            &ip.ch("name"),
                            name,
                            &format!("PVC name {}: {m}", go_quote(&pvc)),
                        ));
                    }
                }
            }
        }
        if count == 0 {
            el.push(required(&ip, "must specify a volume type"));
        }
        if name.is_empty() {
            el.push(required(&ip.ch("name"), ""));
        } else {
            el.extend(dns_label(name, &ip.ch("name")));
        }
        if vols.contains_key(name) {
            el.push(duplicate(&ip.ch("name"), name));
        }
        if el.is_empty() {
            vols.insert(name, v);
        } else {
            errs.extend(el);
        }
        let claim = v.g("persistentVolumeClaim").st("claimName");
        if v.has("persistentVolumeClaim") && created_pvcs.contains(claim) {
            errs.push(invalid(
                &ip.ch("persistentVolumeClaim").ch("claimName"),
                claim,
                "must not reference a PVC that gets created for an ephemeral volume",
            ));
        }
    }
    (vols, errs)
}

// ---------------------------------------------------------------------------
// Pods: containers
// ---------------------------------------------------------------------------

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

fn protocol(v: &str, p: &P) -> Errs {
    match v {
        "" => vec![required(p, "")],
        v if PROTOCOLS.contains(&v) => vec![],
        v => vec![not_supported(p, v, PROTOCOLS)],
    }
}

fn container_ports(ports: &[Value], p: &P) -> Errs {
    let mut e = vec![];
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let ip = p.idx(i);
        let name = port.st("name");
        if !name.is_empty() {
            let m = is_valid_port_name(name);
            if !m.is_empty() {
                e.extend(msgs(&ip.ch("name"), name, m));
            } else if !names.insert(name) {
                e.push(duplicate(&ip.ch("name"), name));
            }
        }
        match port.int("containerPort").unwrap_or(0) {
            0 => e.push(required(&ip.ch("containerPort"), "")),
            cp => e.extend(
                is_valid_port_num(cp)
                    .iter()
                    .map(|m| invalid(&ip.ch("containerPort"), cp, m)),
            ),
        }
        let hp = port.int("hostPort").unwrap_or(0);
        if hp != 0 {
            e.extend(
                is_valid_port_num(hp)
                    .iter()
                    .map(|m| invalid(&ip.ch("hostPort"), hp, m)),
            );
        }
        e.extend(protocol(port.st("protocol"), &ip.ch("protocol")));
    }
    e
}

fn object_field_selector(fs: &Value, allowed: &[&str], p: &P) -> Errs {
    let (av, fp) = (fs.st("apiVersion"), fs.st("fieldPath"));
    if av.is_empty() {
        return vec![required(&p.ch("apiVersion"), "")];
    }
    if fp.is_empty() {
        return vec![required(&p.ch("fieldPath"), "")];
    }
    if av != "v1" {
        return vec![invalid(
            &p.ch("fieldPath"),
            fp,
            &format!("error converting fieldPath: unsupported pod version: {av}"),
        )];
    }
    let convert_err = |m: String| {
        vec![invalid(
            &p.ch("fieldPath"),
            fp,
            &format!("error converting fieldPath: {m}"),
        )]
    };
    // fieldpath.SplitMaybeSubscriptedPath, then podshelper.ConvertDownwardAPIFieldLabel
    let split = fp
        .strip_suffix("']")
        .and_then(|s| s.split_once("['"))
        .filter(|(p, _)| !p.is_empty());
    if let Some((path, sub)) = split {
        return match path {
            "metadata.annotations" => qualified(&sub.to_lowercase(), p),
            "metadata.labels" => qualified(sub, p),
            _ => convert_err(format!("field label does not support subscript: {fp}")),
        };
    }
    const KNOWN: &[&str] = &[
        "metadata.annotations",
        "metadata.labels",
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.serviceAccountName",
        "spec.schedulerName",
        "status.phase",
        "status.hostIP",
        "status.hostIPs",
        "status.podIP",
        "status.podIPs",
    ];
    let fp = if fp == "spec.host" {
        "spec.nodeName"
    } else {
        fp
    };
    if !KNOWN.contains(&fp) {
        return convert_err(format!("field label not supported: {fp}"));
    }
    if !allowed.contains(&fp) {
        return vec![not_supported(&p.ch("fieldPath"), fp, allowed)];
    }
    vec![]
}

fn resource_field_selector(fs: &Value, p: &P, volume: bool) -> Errs {
    let mut e = vec![];
    let res = fs.st("resource");
    if volume && fs.st("containerName").is_empty() {
        e.push(required(&p.ch("containerName"), ""));
    } else if res.is_empty() {
        e.push(required(&p.ch("resource"), ""));
    } else if !RESOURCE_FIELD_PATHS.contains(&res)
        && !res.starts_with("requests.hugepages-")
        && !res.starts_with("limits.hugepages-")
    {
        e.push(not_supported(&p.ch("resource"), res, RESOURCE_FIELD_PATHS));
    }
    let Some(d) = Quantity::from_json(fs.g("divisor")).filter(|q| q.nano != 0) else {
        return e;
    };
    let d = d.to_str();
    const MEM: &[&str] = &[
        "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
    ];
    const MEM_LIST: &str = "1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei";
    let dp = p.ch("divisor");
    let what = match res {
        "limits.cpu" | "requests.cpu" if !["1m", "1"].contains(&d.as_str()) => {
            Some("only divisor's values 1m and 1 are supported with the cpu resource".to_string())
        }
        "limits.memory" | "requests.memory" if !MEM.contains(&d.as_str()) => {
            Some(format!("only divisor's values {MEM_LIST} are supported with the memory resource"))
        }
        "limits.ephemeral-storage" | "requests.ephemeral-storage" if !MEM.contains(&d.as_str()) => {
            Some(format!("only divisor's values {MEM_LIST} are supported with the local ephemeral storage resource"))
        }
        _ => None,
    };
    e.extend(what.map(|m| invalid(&dp, res, &m)));
    if (res.starts_with("requests.hugepages-") || res.starts_with("limits.hugepages-"))
        && !MEM.contains(&d.as_str())
    {
        e.push(invalid(
            &dp,
            res,
            &format!("only divisor's values {MEM_LIST} are supported with the hugepages resource"),
        ));
    }
    e
}

fn key_selector(s: &Value, p: &P) -> Errs {
    let mut e = name_check(name_subdomain, s.st("name"), &p.ch("name"));
    let key = s.st("key");
    if key.is_empty() {
        e.push(required(&p.ch("key"), ""));
    } else {
        e.extend(msgs(&p.ch("key"), key, is_config_map_key(key)));
    }
    e
}

fn env(vars: &[Value], p: &P) -> Errs {
    let mut e = vec![];
    for (i, ev) in vars.iter().enumerate() {
        let ip = p.idx(i);
        let name = ev.st("name");
        if name.is_empty() {
            e.push(required(&ip.ch("name"), ""));
        } else {
            e.extend(msgs(&ip.ch("name"), name, is_relaxed_env_var_name(name)));
        }
        let vf = ev.g("valueFrom");
        if vf.is_null() {
            continue;
        }
        let vp = ip.ch("valueFrom");
        let mut n = 0;
        if vf.has("fieldRef") {
            n += 1;
            e.extend(object_field_selector(
                vf.g("fieldRef"),
                ENV_FIELD_PATHS,
                &vp.ch("fieldRef"),
            ));
        }
        if vf.has("resourceFieldRef") {
            n += 1;
            e.extend(resource_field_selector(
                vf.g("resourceFieldRef"),
                &vp.ch("resourceFieldRef"),
                false,
            ));
        }
        for k in ["configMapKeyRef", "secretKeyRef"] {
            if vf.has(k) {
                n += 1;
                e.extend(key_selector(vf.g(k), &vp.ch(k)));
            }
        }
        if n == 0 {
            e.push(invalid(
                &vp,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if !ev.st("value").is_empty() {
            e.push(invalid(
                &vp,
                "",
                "may not be specified when `value` is not empty",
            ));
        } else if n > 1 {
            e.push(invalid(
                &vp,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
    e
}

fn env_from(list: &[Value], p: &P) -> Errs {
    let mut e = vec![];
    for (i, ev) in list.iter().enumerate() {
        let ip = p.idx(i);
        let prefix = ev.st("prefix");
        if !prefix.is_empty() {
            e.extend(msgs(
                &ip.ch("prefix"),
                prefix,
                is_relaxed_env_var_name(prefix),
            ));
        }
        let mut n = 0;
        for k in ["configMapRef", "secretRef"] {
            let r = ev.g(k);
            if r.is_null() {
                continue;
            }
            n += 1;
            let name = r.st("name");
            if name.is_empty() {
                e.push(required(&ip.ch(k).ch("name"), ""));
            } else {
                e.extend(msgs(&ip.ch(k).ch("name"), name, name_subdomain(name, true)));
            }
        }
        if n == 0 {
            e.push(invalid(
                p,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if n > 1 {
            e.push(invalid(
                p,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
    e
}

fn volume_mounts(c: &Value, vols: &Volumes, p: &P) -> Errs {
    let mut e = vec![];
    let devices: Vec<(&str, &str)> = c
        .arr("volumeDevices")
        .iter()
        .map(|d| (d.st("name"), d.st("devicePath")))
        .collect();
    let privileged = c.g("securityContext").flag("privileged");
    let mut points = HashSet::new();
    for (i, m) in c.arr("volumeMounts").iter().enumerate() {
        let ip = p.idx(i);
        let (name, mp) = (m.st("name"), m.st("mountPath"));
        if name.is_empty() {
            e.push(required(&ip.ch("name"), ""));
        }
        if !vols.contains_key(name) {
            e.push(not_found(&ip.ch("name"), name));
        }
        if mp.is_empty() {
            e.push(required(&ip.ch("mountPath"), ""));
        }
        if !points.insert(mp) {
            e.push(invalid(&ip.ch("mountPath"), mp, "must be unique"));
        }
        if devices.iter().any(|(n, _)| *n == name) {
            e.push(invalid(
                &ip.ch("name"),
                name,
                "must not already exist in volumeDevices",
            ));
        }
        if devices.iter().any(|(_, d)| *d == mp) {
            e.push(invalid(
                &ip.ch("mountPath"),
                mp,
                "must not already exist as a path in volumeDevices",
            ));
        }
        let (sub, subx) = (m.st("subPath"), m.st("subPathExpr"));
        if !sub.is_empty() {
            e.extend(local_descending_path(sub, &p.ch("subPath")));
        }
        if !subx.is_empty() {
            if !sub.is_empty() {
                e.push(invalid(
                    &ip.ch("subPathExpr"),
                    subx,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            e.extend(local_descending_path(subx, &p.ch("subPathExpr")));
        }
        let prop = m.g("mountPropagation").as_str();
        if let Some(mpg) = prop {
            const PROPS: &[&str] = &["Bidirectional", "HostToContainer", "None"];
            let pp = p.ch("mountPropagation");
            if !PROPS.contains(&mpg) {
                e.push(not_supported(&pp, mpg, PROPS));
            }
            if mpg == "Bidirectional" && !privileged {
                e.push(forbidden(
                    &pp,
                    "Bidirectional mount propagation is available only to privileged containers",
                ));
            }
        }
        if let Some(rro) = m.g("recursiveReadOnly").as_str() {
            let rp = p.ch("recursiveReadOnly");
            match rro {
                "Disabled" => {}
                "Enabled" | "IfPossible" => {
                    if !m.flag("readOnly") {
                        e.push(forbidden(
                            &rp,
                            "may only be specified when readOnly is true",
                        ));
                    }
                    if prop.is_some_and(|x| x != "None") {
                        e.push(forbidden(
                            &rp,
                            "may only be specified when mountPropagation is None or not specified",
                        ));
                    }
                }
                v => e.push(not_supported(
                    &rp,
                    v,
                    &["Disabled", "Enabled", "IfPossible"],
                )),
            }
        }
    }
    e
}

fn volume_devices(c: &Value, vols: &Volumes, p: &P) -> Errs {
    let mut e = vec![];
    let mounts: Vec<(&str, &str)> = c
        .arr("volumeMounts")
        .iter()
        .map(|m| (m.st("name"), m.st("mountPath")))
        .collect();
    let (mut paths, mut names) = (HashSet::new(), HashSet::new());
    for (i, d) in c.arr("volumeDevices").iter().enumerate() {
        let ip = p.idx(i);
        let (name, dp) = (d.st("name"), d.st("devicePath"));
        let vol = vols.get(name);
        if name.is_empty() {
            e.push(required(&ip.ch("name"), ""));
        }
        if names.contains(name) {
            e.push(invalid(&ip.ch("name"), name, "must be unique"));
        }
        match vol {
            Some(v) if !v.has("persistentVolumeClaim") && !v.has("ephemeral") => e.push(invalid(
                &ip.ch("name"),
                name,
                "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode",
            )),
            None => e.push(not_found(&ip.ch("name"), name)),
            _ => {}
        }
        if dp.is_empty() {
            e.push(required(&ip.ch("devicePath"), ""));
        }
        if paths.contains(dp) {
            e.push(invalid(&ip.ch("devicePath"), dp, "must be unique"));
        }
        if !dp.is_empty() && !no_backsteps(dp, p).is_empty() {
            e.push(invalid(
                &ip.ch("devicePath"),
                dp,
                "can not contain backsteps ('..')",
            ));
        } else {
            paths.insert(dp);
        }
        if mounts.iter().any(|(n, _)| *n == name) {
            e.push(invalid(
                &ip.ch("name"),
                name,
                "must not already exist in volumeMounts",
            ));
        }
        if mounts.iter().any(|(_, m)| *m == dp) {
            e.push(invalid(
                &ip.ch("devicePath"),
                dp,
                "must not already exist as a path in volumeMounts",
            ));
        }
        if !name.is_empty() {
            names.insert(name);
        }
    }
    e
}

fn pull_policy(v: &str, p: &P) -> Errs {
    match v {
        "Always" | "IfNotPresent" | "Never" => vec![],
        "" => vec![required(p, "")],
        v => vec![not_supported(p, v, &["Always", "IfNotPresent", "Never"])],
    }
}

const STANDARD_RESOURCES: &[&str] = &[
    "configmaps",
    "cpu",
    "ephemeral-storage",
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "memory",
    "persistentvolumeclaims",
    "pods",
    "replicationcontrollers",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
    "requests.storage",
    "resourcequotas",
    "secrets",
    "services",
    "services.loadbalancers",
    "services.nodeports",
    "storage",
];
const INTEGER_RESOURCES: &[&str] = &[
    "configmaps",
    "persistentvolumeclaims",
    "pods",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "services",
    "services.loadbalancers",
    "services.nodeports",
];

fn is_native_resource(n: &str) -> bool {
    !n.contains('/') || n.contains("kubernetes.io/")
}
fn is_hugepages(n: &str) -> bool {
    n.starts_with("hugepages-")
}
fn overcommit_allowed(n: &str) -> bool {
    is_native_resource(n) && !is_hugepages(n)
}

fn container_resource_name(n: &str, p: &P) -> Errs {
    let mut e = msgs(p, n, is_qualified_name(n));
    if e.is_empty() && !n.contains('/') && !STANDARD_RESOURCES.contains(&n) {
        e.push(invalid(
            p,
            n,
            "must be a standard resource type or fully qualified",
        ));
    }
    if !n.contains('/') {
        if !["cpu", "memory", "ephemeral-storage"].contains(&n) && !is_hugepages(n) {
            e.push(invalid(p, n, "must be a standard resource for containers"));
        }
    } else if !is_native_resource(n)
        && (n.starts_with("requests.") || !is_qualified_name(&format!("requests.{n}")).is_empty())
    {
        e.push(invalid(
            p,
            n,
            "doesn't follow extended resource name standard",
        ));
    }
    e
}

/// `ValidateResourceQuantityValue`.
fn quantity_value(name: &str, q: &Quantity, p: &P) -> Errs {
    let mut e = vec![];
    if q.nano < 0 {
        e.push(invalid(p, q.to_str(), IS_NEGATIVE));
    }
    if INTEGER_RESOURCES.contains(&name) && q.milli_value() % 1000 != 0 {
        e.push(invalid(p, q.to_str(), "must be an integer"));
    }
    e
}

/// Parses a resource list; unparsable quantities are reported (upstream: a decode error).
fn quantities<'a>(v: &'a Value, p: &P, e: &mut Errs) -> Vec<(&'a str, Quantity)> {
    let mut out = vec![];
    for (k, q) in v.as_object().into_iter().flatten() {
        match Quantity::from_json(q) {
            Some(mut q) => {
                q.round_up_milli();
                out.push((k.as_str(), q));
            }
            None => e.push(invalid(&p.key(k), Bv::from(q), QUANTITY_ERR)),
        }
    }
    out
}

fn hugepage_value(name: &str, q: &Quantity, p: &P) -> Errs {
    let page = Quantity::parse(&name["hugepages-".len()..]);
    let ok = page.is_some_and(|pg| {
        pg.nano > 0 && pg.milli_value() % 1000 == 0 && q.value() % pg.value() == 0
    });
    if ok {
        vec![]
    } else {
        let s = q.to_str();
        vec![invalid(
            p,
            s.as_str(),
            &format!("{s} is not positive integer multiple of {name}"),
        )]
    }
}

fn resource_requirements(r: &Value, p: &P) -> Errs {
    let mut e = vec![];
    let (lp, rp) = (p.ch("limits"), p.ch("requests"));
    let limits = quantities(r.g("limits"), &lp, &mut e);
    let requests = quantities(r.g("requests"), &rp, &mut e);
    let (mut cpu_mem, mut huge) = (false, false);
    for (name, q) in &limits {
        let fp = lp.key(name);
        e.extend(container_resource_name(name, &fp));
        e.extend(quantity_value(name, q, &fp));
        if is_hugepages(name) {
            huge = true;
            e.extend(hugepage_value(name, q, &fp));
        }
        cpu_mem |= *name == "cpu" || *name == "memory";
    }
    for (name, q) in &requests {
        let fp = rp.key(name);
        e.extend(container_resource_name(name, &fp));
        e.extend(quantity_value(name, q, &fp));
        match limits.iter().find(|(n, _)| n == name) {
            Some((_, l)) if q.nano != l.nano && !overcommit_allowed(name) => e.push(invalid(
                &rp,
                q.to_str(),
                &format!("must be equal to {name} limit of {}", l.to_str()),
            )),
            Some((_, l)) if q.nano > l.nano => e.push(invalid(
                &rp,
                q.to_str(),
                &format!(
                    "must be less than or equal to {name} limit of {}",
                    l.to_str()
                ),
            )),
            None if !overcommit_allowed(name) => e.push(required(
                &lp,
                "Limit must be set for non overcommitable resources",
            )),
            _ => {}
        }
        if is_hugepages(name) {
            huge = true;
            e.extend(hugepage_value(name, q, &fp));
        }
        cpu_mem |= *name == "cpu" || *name == "memory";
    }
    if !cpu_mem && huge {
        e.push(forbidden(p, "HugePages require cpu or memory"));
    }
    e
}

fn resize_policy(list: &[Value], p: &P, restart: &str) -> Errs {
    let mut e = vec![];
    let mut seen = HashSet::new();
    for (i, rp) in list.iter().enumerate() {
        let (res, pol) = (rp.st("resourceName"), rp.st("restartPolicy"));
        if !seen.insert(res) {
            e.push(duplicate(&p.idx(i), res));
        }
        match res {
            "cpu" | "memory" => {}
            "" => e.push(required(p, "")),
            v => e.push(not_supported(p, v, &["cpu", "memory"])),
        }
        match pol {
            "NotRequired" | "RestartContainer" => {}
            "" => e.push(required(p, "")),
            v => e.push(not_supported(p, v, &["NotRequired", "RestartContainer"])),
        }
        if restart == "Never" && pol != "NotRequired" {
            e.push(invalid(
                p,
                pol,
                "must be 'NotRequired' when `restartPolicy` is 'Never'",
            ));
        }
    }
    e
}

fn id_range(v: &Value, p: &P) -> Errs {
    match ival(v) {
        Some(id) if !(0..=i32::MAX as i64).contains(&id) => {
            vec![invalid(p, id, &range_error(0, i32::MAX as i64))]
        }
        _ => vec![],
    }
}

fn seccomp_profile(sp: &Value, p: &P) -> Errs {
    if sp.is_null() {
        return vec![];
    }
    let mut e = vec![];
    let t = sp.st("type");
    const TYPES: &[&str] = &["Localhost", "RuntimeDefault", "Unconfined"];
    match t {
        "" => e.push(required(
            &p.ch("type"),
            "type is required when seccompProfile is set",
        )),
        t if !TYPES.contains(&t) => e.push(not_supported(&p.ch("type"), t, TYPES)),
        _ => {}
    }
    if t == "Localhost" {
        match sp.g("localhostProfile").as_str() {
            None => e.push(required(
                &p.ch("localhostProfile"),
                "must be set when seccomp type is Localhost",
            )),
            Some(l) => e.extend(local_descending_path(l, &p.ch("localhostProfile"))),
        }
    } else if sp.has("localhostProfile") {
        let raw = format!(
            "&core.SeccompProfile{{Type:{}, LocalhostProfile:(*string)(0xc000000000)}}",
            go_quote(t)
        );
        e.push(invalid(
            &p.ch("localhostProfile"),
            Bv::Raw(raw),
            "can only be set when seccomp type is Localhost",
        ));
    }
    e
}

fn apparmor_profile(ap: &Value, p: &P) -> Errs {
    if ap.is_null() {
        return vec![];
    }
    let lp = p.ch("localhostProfile");
    match ap.st("type") {
        "Localhost" => match ap.g("localhostProfile").as_str() {
            None => vec![required(&lp, "must be set when AppArmor type is Localhost")],
            Some(l) => {
                let mut e = vec![];
                if l.trim() != l {
                    e.push(invalid(&lp, l, "must not be padded with whitespace"));
                } else if l.is_empty() {
                    e.push(required(&lp, "must be set when AppArmor type is Localhost"));
                }
                if l.len() > 4095 {
                    e.push(too_long(&lp, 4095));
                }
                e
            }
        },
        "RuntimeDefault" | "Unconfined" if ap.has("localhostProfile") => {
            vec![invalid(
                &lp,
                ap.g("localhostProfile"),
                "can only be set when AppArmor type is Localhost",
            )]
        }
        "RuntimeDefault" | "Unconfined" => vec![],
        "" => vec![required(
            &p.ch("type"),
            "type is required when appArmorProfile is set",
        )],
        t => vec![not_supported(
            &p.ch("type"),
            t,
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )],
    }
}

fn container_security_context(sc: &Value, p: &P, host_users: bool) -> Errs {
    if sc.is_null() {
        return vec![];
    }
    let mut e = id_range(sc.g("runAsUser"), &p.ch("runAsUser"));
    e.extend(id_range(sc.g("runAsGroup"), &p.ch("runAsGroup")));
    if let Some(pm) = sc.g("procMount").as_str() {
        if pm != "Default" && pm != "Unmasked" {
            e.push(not_supported(
                &p.ch("procMount"),
                pm,
                &["Default", "Unmasked"],
            ));
        }
        if host_users && pm == "Unmasked" {
            e.push(invalid(
                &p.ch("procMount"),
                pm,
                "`hostUsers` must be false to use `Unmasked`",
            ));
        }
    }
    e.extend(seccomp_profile(
        sc.g("seccompProfile"),
        &p.ch("seccompProfile"),
    ));
    if sc.g("allowPrivilegeEscalation").as_bool() == Some(false) {
        let raw = Bv::Raw("&core.SecurityContext{...}".into());
        if sc.flag("privileged") {
            e.push(invalid(
                p,
                raw.clone(),
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
        for cap in sc.g("capabilities").strs("add") {
            if cap == "CAP_SYS_ADMIN" {
                e.push(invalid(
                    p,
                    raw.clone(),
                    "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
                ));
            }
        }
    }
    e.extend(apparmor_profile(
        sc.g("appArmorProfile"),
        &p.ch("appArmorProfile"),
    ));
    e
}

fn port_num_or_name(v: &Value, p: &P) -> Errs {
    match v {
        Value::String(s) => msgs(p, s, is_valid_port_name(s)),
        v => {
            let n = ival(v).unwrap_or(0);
            is_valid_port_num(n)
                .iter()
                .map(|m| invalid(p, n, m))
                .collect()
        }
    }
}

/// `validateHandler` for probe (`sleep` = false) and lifecycle handlers.
fn handler(h: &Value, grace: Option<i64>, p: &P, lifecycle: bool) -> Errs {
    let mut e = vec![];
    let mut n = 0;
    let kinds: &[&str] = if lifecycle {
        &["exec", "httpGet", "tcpSocket", "sleep"]
    } else {
        &["exec", "httpGet", "tcpSocket", "grpc"]
    };
    for kind in kinds {
        let a = h.g(kind);
        if a.is_null() {
            continue;
        }
        let kp = p.ch(kind);
        if n > 0 {
            e.push(forbidden(&kp, "may not specify more than 1 handler type"));
            continue;
        }
        n += 1;
        match *kind {
            "exec" if a.arr("command").is_empty() => e.push(required(&kp.ch("command"), "")),
            "httpGet" => {
                if a.st("path").is_empty() {
                    e.push(required(&kp.ch("path"), ""));
                }
                e.extend(port_num_or_name(a.g("port"), &kp.ch("port")));
                let scheme = a.st("scheme");
                if scheme != "HTTP" && scheme != "HTTPS" {
                    e.push(not_supported(&kp.ch("scheme"), scheme, &["HTTP", "HTTPS"]));
                }
                for hdr in a.arr("httpHeaders") {
                    let name = hdr.st("name");
                    if name.is_empty()
                        || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                    {
                        e.push(invalid(
                            &kp.ch("httpHeaders"),
                            name,
                            &regex_error(
                                "a valid HTTP header must consist of alphanumeric characters or '-'",
                                "[-A-Za-z0-9]+",
                                &["X-Header-Name"],
                            ),
                        ));
                    }
                }
            }
            "tcpSocket" => e.extend(port_num_or_name(a.g("port"), &kp.ch("port"))),
            "grpc" => e.extend(port_num_or_name(
                &Value::from(a.int("port").unwrap_or(0)),
                &kp.ch("port"),
            )),
            "sleep" => {
                let s = a.int("seconds").unwrap_or(0);
                if let Some(g) = grace.filter(|g| s < 0 || s > *g) {
                    e.push(invalid(
                        &kp,
                        s,
                        &format!("must be non-negative and less than terminationGracePeriodSeconds ({g})"),
                    ));
                }
            }
            _ => {}
        }
    }
    if n == 0 {
        e.push(required(p, "must specify a handler type"));
    }
    e
}

fn probe(pr: &Value, grace: Option<i64>, p: &P, kind: &str) -> Errs {
    if pr.is_null() {
        return vec![];
    }
    let mut e = handler(pr, grace, p, false);
    for f in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        if let Some(v) = pr.int(f).filter(|v| *v < 0) {
            e.push(invalid(&p.ch(f), v, IS_NEGATIVE));
        }
    }
    if let Some(t) = pr.int("terminationGracePeriodSeconds").filter(|t| *t <= 0) {
        e.push(invalid(
            &p.ch("terminationGracePeriodSeconds"),
            t,
            "must be greater than 0",
        ));
    }
    let st = pr.int("successThreshold").unwrap_or(0);
    if kind != "readinessProbe" && st != 1 {
        e.push(invalid(&p.ch("successThreshold"), st, "must be 1"));
    }
    if kind == "readinessProbe" && pr.has("terminationGracePeriodSeconds") {
        e.push(invalid(
            &p.ch("terminationGracePeriodSeconds"),
            pr.g("terminationGracePeriodSeconds"),
            "must not be set for readinessProbes",
        ));
    }
    e
}

fn lifecycle_and_probes(c: &Value, grace: Option<i64>, p: &P) -> Errs {
    let mut e = vec![];
    let lc = c.g("lifecycle");
    if !lc.is_null() {
        for h in ["postStart", "preStop"] {
            if lc.has(h) {
                e.extend(handler(lc.g(h), grace, &p.ch("lifecycle").ch(h), true));
            }
        }
    }
    for k in ["livenessProbe", "readinessProbe", "startupProbe"] {
        e.extend(probe(c.g(k), grace, &p.ch(k), k));
    }
    e
}

/// Pod-wide context for container validation.
struct PodCx {
    grace: Option<i64>,
    host_users: bool,
    restart: String,
}

fn container_common(c: &Value, vols: &Volumes, p: &P, cx: &PodCx) -> Errs {
    let mut e = vec![];
    let name = c.st("name");
    if name.is_empty() {
        e.push(required(&p.ch("name"), ""));
    } else {
        e.extend(dns_label(name, &p.ch("name")));
    }
    if c.st("image").is_empty() {
        e.push(required(&p.ch("image"), ""));
    }
    match c.st("terminationMessagePolicy") {
        "File" | "FallbackToLogsOnError" => {}
        "" => e.push(required(&p.ch("terminationMessagePolicy"), "")),
        v => e.push(not_supported(
            &p.ch("terminationMessagePolicy"),
            v,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    e.extend(container_ports(c.arr("ports"), &p.ch("ports")));
    e.extend(env(c.arr("env"), &p.ch("env")));
    e.extend(env_from(c.arr("envFrom"), &p.ch("envFrom")));
    e.extend(volume_mounts(c, vols, &p.ch("volumeMounts")));
    e.extend(volume_devices(c, vols, &p.ch("volumeDevices")));
    e.extend(pull_policy(
        c.st("imagePullPolicy"),
        &p.ch("imagePullPolicy"),
    ));
    e.extend(resource_requirements(c.g("resources"), &p.ch("resources")));
    e.extend(resize_policy(
        c.arr("resizePolicy"),
        &p.ch("resizePolicy"),
        &cx.restart,
    ));
    e.extend(container_security_context(
        c.g("securityContext"),
        &p.ch("securityContext"),
        cx.host_users,
    ));
    e
}

fn host_port_conflicts(containers: &[&Value], p: &P) -> Errs {
    let mut e = vec![];
    let mut seen = HashSet::new();
    for (ci, c) in containers.iter().enumerate() {
        for (pi, port) in c.arr("ports").iter().enumerate() {
            let hp = port.int("hostPort").unwrap_or(0);
            if hp == 0 {
                continue;
            }
            let key = format!("{}/{}/{hp}", port.st("protocol"), port.st("hostIP"));
            if !seen.insert(key.clone()) {
                e.push(duplicate(
                    &p.idx(ci).ch("ports").idx(pi).ch("hostPort"),
                    key,
                ));
            }
        }
    }
    e
}

fn containers(list: &[Value], vols: &Volumes, p: &P, cx: &PodCx) -> Errs {
    if list.is_empty() {
        return vec![required(p, "")];
    }
    let mut e = vec![];
    let mut names = HashSet::new();
    for (i, c) in list.iter().enumerate() {
        let cp = p.idx(i);
        e.extend(container_common(c, vols, &cp, cx));
        if !names.insert(c.st("name")) {
            e.push(duplicate(&cp.ch("name"), c.st("name")));
        }
        e.extend(lifecycle_and_probes(c, cx.grace, &cp));
        if c.has("restartPolicy") {
            e.push(forbidden(
                &cp.ch("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    e.extend(host_port_conflicts(&list.iter().collect::<Vec<_>>(), p));
    e
}

fn init_containers(list: &[Value], regular: &[Value], vols: &Volumes, p: &P, cx: &PodCx) -> Errs {
    let mut e = vec![];
    let mut names: HashSet<&str> = regular.iter().map(|c| c.st("name")).collect();
    for (i, c) in list.iter().enumerate() {
        let cp = p.idx(i);
        e.extend(container_common(c, vols, &cp, cx));
        let mut restart_always = false;
        if let Some(rp) = c.g("restartPolicy").as_str() {
            if rp != "Always" {
                e.push(not_supported(&cp.ch("restartPolicy"), rp, &["Always"]));
            }
            restart_always = rp == "Always";
        }
        let name = c.st("name");
        if names.contains(name) {
            e.push(duplicate(&cp.ch("name"), name));
        } else if !name.is_empty() {
            names.insert(name);
        }
        e.extend(host_port_conflicts(&[c], p));
        if restart_always {
            e.extend(lifecycle_and_probes(c, cx.grace, &cp));
        } else {
            for k in [
                "lifecycle",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
            ] {
                if c.has(k) {
                    e.push(forbidden(
                        &cp.ch(k),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }
    e
}

/// The fields an ephemeral container may not have (upstream's
/// `allowedEphemeralContainerFields` with `false`).
const EPHEMERAL_FORBIDDEN_FIELDS: [&str; 8] = [
    "ports",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
];

/// Upstream's `validateEphemeralContainers`: each is a valid container (as a pod's),
/// named uniquely among all the pod's containers, targeting an existing non-ephemeral
/// container, without ports, resources, probes, lifecycle or subPath mounts.
fn ephemeral_containers(spec: &Value, vols: &Volumes, p: &P, cx: &PodCx) -> Errs {
    let mut e = vec![];
    let others: HashSet<&str> = spec
        .arr("containers")
        .iter()
        .chain(spec.arr("initContainers"))
        .map(|c| c.st("name"))
        .collect();
    let mut all = others.clone();
    for (i, c) in spec.arr("ephemeralContainers").iter().enumerate() {
        let cp = p.idx(i);
        e.extend(container_common(c, vols, &cp, cx));
        let name = c.st("name");
        if !all.insert(name) {
            e.push(duplicate(&cp.ch("name"), name));
        }
        let target = c.st("targetContainerName");
        if !target.is_empty() && !others.contains(target) {
            e.push(not_found(&cp.ch("targetContainerName"), target));
        }
        for k in EPHEMERAL_FORBIDDEN_FIELDS {
            let zero = match c.g(k) {
                Value::Null => true,
                Value::Object(m) => m
                    .values()
                    .all(|v| v.is_null() || v == &serde_json::json!({})),
                Value::Array(a) => a.is_empty(),
                Value::String(s) => s.is_empty(),
                _ => false,
            };
            if !zero {
                e.push(forbidden(
                    &cp.ch(k),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
        for (j, vm) in c.arr("volumeMounts").iter().enumerate() {
            for k in ["subPath", "subPathExpr"] {
                if !vm.st(k).is_empty() {
                    e.push(forbidden(
                        &cp.ch("volumeMounts").idx(j).ch(k),
                        "cannot be set for an Ephemeral Container",
                    ));
                }
            }
        }
    }
    e
}

// ---------------------------------------------------------------------------
// Pods: spec-level checks
// ---------------------------------------------------------------------------

fn taint_effect(eff: &str, allow_empty: bool, p: &P) -> Errs {
    match eff {
        "" if !allow_empty => vec![required(p, "")],
        "NoSchedule" | "PreferNoSchedule" | "NoExecute" => vec![],
        v => vec![not_supported(
            p,
            v,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
        )],
    }
}

fn tolerations(list: &[Value], p: &P) -> Errs {
    let mut e = vec![];
    for (i, t) in list.iter().enumerate() {
        let ip = p.idx(i);
        let (key, op, val, eff) = (t.st("key"), t.st("operator"), t.st("value"), t.st("effect"));
        if !key.is_empty() {
            e.extend(qualified(key, &ip.ch("key")));
        }
        if key.is_empty() && op != "Exists" {
            e.push(invalid(
                &ip.ch("operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.has("tolerationSeconds") && eff != "NoExecute" {
            e.push(invalid(
                &ip.ch("effect"),
                eff,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let m = is_valid_label_value(val);
                if !m.is_empty() {
                    e.push(invalid(&ip.ch("operator"), val, &m.join(";")));
                }
            }
            "Exists" if !val.is_empty() => e.push(invalid(
                &ip.ch("operator"),
                val,
                "value must be empty when `operator` is 'Exists'",
            )),
            "Exists" => {}
            op => e.push(not_supported(&ip.ch("operator"), op, &["Equal", "Exists"])),
        }
        if !eff.is_empty() {
            e.extend(taint_effect(eff, true, &ip.ch("effect")));
        }
    }
    e
}

fn node_selector_term(term: &Value, allow_invalid: bool, p: &P) -> Errs {
    let mut e = vec![];
    for (j, rq) in term.arr("matchExpressions").iter().enumerate() {
        let rp = p.ch("matchExpressions").idx(j);
        let vals = rq.strs("values");
        match rq.st("operator") {
            "In" | "NotIn" if vals.is_empty() => e.push(required(
                &rp.ch("values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !vals.is_empty() => e.push(forbidden(
                &rp.ch("values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "Gt" | "Lt" if vals.len() != 1 => e.push(required(
                &rp.ch("values"),
                "must be specified single value when `operator` is 'Lt' or 'Gt'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => {}
            op => e.push(invalid(
                &rp.ch("operator"),
                op,
                "not a valid selector operator",
            )),
        }
        e.extend(qualified(rq.st("key"), &rp.ch("key")));
        if !allow_invalid {
            for (k, v) in vals.iter().enumerate() {
                e.extend(msgs(&rp.ch("values").idx(k), v, is_valid_label_value(v)));
            }
        }
    }
    for (j, rq) in term.arr("matchFields").iter().enumerate() {
        let rp = p.ch("matchFields").idx(j);
        let vals = rq.strs("values");
        match rq.st("operator") {
            "In" | "NotIn" if vals.len() != 1 => e.push(required(
                &rp.ch("values"),
                "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
            )),
            "In" | "NotIn" => {}
            op => e.push(invalid(
                &rp.ch("operator"),
                op,
                "not a valid selector operator",
            )),
        }
        if rq.st("key") != "metadata.name" {
            e.push(invalid(
                &rp.ch("key"),
                rq.st("key"),
                "not a valid field selector key",
            ));
        } else {
            for (k, v) in vals.iter().enumerate() {
                e.extend(name_check(name_subdomain, v, &rp.ch("values").idx(k)));
            }
        }
    }
    e
}

fn pod_affinity_term(t: &Value, p: &P) -> Errs {
    let mut e = label_selector(t.g("labelSelector"), &p.ch("labelSelector"));
    e.extend(label_selector(
        t.g("namespaceSelector"),
        &p.ch("namespaceSelector"),
    ));
    for ns in t.strs("namespaces") {
        e.extend(name_check(name_dns_label, ns, &p.ch("namespace")));
    }
    let tk = t.st("topologyKey");
    if tk.is_empty() {
        e.push(required(&p.ch("topologyKey"), "can not be empty"));
    }
    e.extend(qualified(tk, &p.ch("topologyKey")));
    e
}

fn weight(t: &Value, p: &P) -> Errs {
    match t.int("weight").unwrap_or(0) {
        w if !(1..=100).contains(&w) => {
            vec![invalid(&p.ch("weight"), w, "must be in the range 1-100")]
        }
        _ => vec![],
    }
}

fn affinity(a: &Value, p: &P) -> Errs {
    let mut e = vec![];
    let (req, pref) = (
        "requiredDuringSchedulingIgnoredDuringExecution",
        "preferredDuringSchedulingIgnoredDuringExecution",
    );
    let na = a.g("nodeAffinity");
    if !na.is_null() {
        let np = p.ch("nodeAffinity");
        if na.has(req) {
            let tp = np.ch(req).ch("nodeSelectorTerms");
            let terms = na.g(req).arr("nodeSelectorTerms");
            if terms.is_empty() {
                e.push(required(&tp, "must have at least one node selector term"));
            }
            for (i, t) in terms.iter().enumerate() {
                e.extend(node_selector_term(t, false, &tp.idx(i)));
            }
        }
        for (i, t) in na.arr(pref).iter().enumerate() {
            let ip = np.ch(pref).idx(i);
            e.extend(weight(t, &ip));
            e.extend(node_selector_term(
                t.g("preference"),
                true,
                &ip.ch("preference"),
            ));
        }
    }
    for kind in ["podAffinity", "podAntiAffinity"] {
        let pa = a.g(kind);
        if pa.is_null() {
            continue;
        }
        let kp = p.ch(kind);
        for (i, t) in pa.arr(req).iter().enumerate() {
            e.extend(pod_affinity_term(t, &kp.ch(req).idx(i)));
        }
        for (i, t) in pa.arr(pref).iter().enumerate() {
            let ip = kp.ch(pref).idx(i);
            e.extend(weight(t, &ip));
            e.extend(pod_affinity_term(
                t.g("podAffinityTerm"),
                &ip.ch("podAffinityTerm"),
            ));
        }
    }
    e
}

fn topology_spread(list: &[Value], p: &P) -> Errs {
    let mut e = vec![];
    for (i, c) in list.iter().enumerate() {
        let sp = p.idx(i);
        let skew = c.int("maxSkew").unwrap_or(0);
        if skew <= 0 {
            e.push(invalid(&sp.ch("maxSkew"), skew, NOT_POSITIVE));
        }
        let (key, action) = (c.st("topologyKey"), c.st("whenUnsatisfiable"));
        if key.is_empty() {
            e.push(required(&sp.ch("topologyKey"), "can not be empty"));
        }
        if action != "DoNotSchedule" && action != "ScheduleAnyway" {
            e.push(not_supported(
                &sp.ch("whenUnsatisfiable"),
                action,
                &["DoNotSchedule", "ScheduleAnyway"],
            ));
        }
        if list[i + 1..]
            .iter()
            .any(|o| o.st("topologyKey") == key && o.st("whenUnsatisfiable") == action)
        {
            e.push(duplicate(
                &sp.ch("{topologyKey, whenUnsatisfiable}"),
                format!("{{{key}, {action}}}"),
            ));
        }
        if let Some(md) = c.int("minDomains") {
            if md <= 0 {
                e.push(invalid(&sp.ch("minDomains"), md, NOT_POSITIVE));
            }
            if action != "DoNotSchedule" {
                e.push(invalid(
                    &sp.ch("minDomains"),
                    md,
                    &format!(
                        "can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {action}"
                    ),
                ));
            }
        }
        for k in ["nodeAffinityPolicy", "nodeTaintsPolicy"] {
            if let Some(v) = c.g(k).as_str().filter(|v| *v != "Honor" && *v != "Ignore") {
                e.push(not_supported(&sp.ch(k), v, &["Honor", "Ignore"]));
            }
        }
        e.extend(label_selector(
            c.g("labelSelector"),
            &sp.ch("labelSelector"),
        ));
    }
    e
}

fn dns_config(spec: &Value, p: &P) -> Errs {
    let cfg = spec.g("dnsConfig");
    if spec.st("dnsPolicy") == "None" {
        if cfg.is_null() {
            return vec![required(
                p,
                "must provide `dnsConfig` when `dnsPolicy` is None",
            )];
        }
        if cfg.arr("nameservers").is_empty() {
            return vec![required(
                &p.ch("nameservers"),
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            )];
        }
    }
    if cfg.is_null() {
        return vec![];
    }
    let mut e = vec![];
    let ns = cfg.strs("nameservers");
    if ns.len() > 3 {
        e.push(invalid(
            &p.ch("nameservers"),
            Bv::Raw(go_strings(Some(ns.clone()))),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, n) in ns.iter().enumerate() {
        e.extend(ip_legacy(&p.ch("nameservers").idx(i), n, &[]));
    }
    let searches = cfg.strs("searches");
    let raw = || Bv::Raw(go_strings(Some(searches.clone())));
    if searches.len() > 32 {
        e.push(invalid(
            &p.ch("searches"),
            raw(),
            "must not have more than 32 search paths",
        ));
    }
    if searches.join(" ").len() > 2048 {
        e.push(invalid(
            &p.ch("searches"),
            raw(),
            "must not have more than 2048 characters (including spaces) in the search list",
        ));
    }
    for (i, s) in searches.iter().enumerate() {
        if *s == "." {
            continue;
        }
        let s = s.strip_suffix('.').unwrap_or(s);
        let label = |l: &str| {
            let l = l.strip_prefix('_').unwrap_or(l);
            shaped(
                l,
                is_alnum_lower,
                |c| is_alnum_lower(c) || c == b'-' || c == b'_',
                is_alnum_lower,
            )
        };
        let sp = p.ch("searches").idx(i);
        if s.len() > 253 {
            e.push(invalid(&sp, s, &max_len_error(253)));
        }
        if !s.split('.').all(label) {
            e.push(invalid(&sp, s, &regex_error(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '_', '-' or '.', and must start and end with an alphanumeric character",
                DNS1123_SUBDOMAIN_FMT,
                &["example.com"],
            )));
        }
    }
    for (i, o) in cfg.arr("options").iter().enumerate() {
        if o.st("name").is_empty() {
            e.push(required(&p.ch("options").idx(i), "must not be empty"));
        }
    }
    e
}

const SYSCTL_REGEX: &str =
    "^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$";

fn sysctls(spec: &Value, sc: &Value, p: &P) -> Errs {
    let mut e = vec![];
    let mut seen = HashSet::new();
    let seg = |s: &str| {
        shaped(
            s,
            is_alnum_lower,
            |c| is_alnum_lower(c) || c == b'-' || c == b'_',
            is_alnum_lower,
        )
    };
    for (i, s) in sc.arr("sysctls").iter().enumerate() {
        let np = p.idx(i).ch("name");
        let name = s.st("name");
        if name.is_empty() {
            e.push(required(&np, ""));
        } else if name.len() > 253 || !name.split(['.', '/']).all(seg) {
            e.push(invalid(
                &np,
                name,
                &format!("must have at most 253 characters and match regex {SYSCTL_REGEX}"),
            ));
        } else if seen.contains(name) {
            e.push(duplicate(&np, name));
        }
        // utilsysctl.GetNamespace on the dotted form
        let dotted = if name
            .find(['.', '/'])
            .is_some_and(|i| name.as_bytes()[i] == b'/')
        {
            name.chars()
                .map(|c| {
                    if c == '/' {
                        '.'
                    } else if c == '.' {
                        '/'
                    } else {
                        c
                    }
                })
                .collect()
        } else {
            name.to_string()
        };
        let ipc = dotted == "kernel.sem"
            || ["kernel.shm", "kernel.msg", "fs.mqueue."]
                .iter()
                .any(|p| dotted.starts_with(p));
        if spec.flag("hostNetwork") && dotted.starts_with("net.") {
            e.push(invalid(
                &np,
                name,
                "may not be specified when 'hostNetwork' is true",
            ));
        } else if spec.flag("hostIPC") && ipc {
            e.push(invalid(
                &np,
                name,
                "may not be specified when 'hostIPC' is true",
            ));
        }
        seen.insert(name);
    }
    e
}

fn pod_security_context(spec: &Value, p: &P) -> Errs {
    let sc = spec.g("securityContext");
    if sc.is_null() {
        return vec![];
    }
    let sp = p.ch("securityContext");
    let mut e = vec![];
    for k in ["fsGroup", "runAsUser", "runAsGroup"] {
        e.extend(id_range(sc.g(k), &sp.ch(k)));
    }
    for (i, g) in sc.arr("supplementalGroups").iter().enumerate() {
        e.extend(id_range(g, &sp.ch("supplementalGroups").idx(i)));
    }
    if spec.flag("shareProcessNamespace") && spec.flag("hostPID") {
        e.push(invalid(
            &sp.ch("shareProcessNamespace"),
            true,
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }
    e.extend(sysctls(spec, sc, &sp.ch("sysctls")));
    let enums: [(&str, &[&str]); 3] = [
        ("fsGroupChangePolicy", &["Always", "OnRootMismatch"]),
        ("supplementalGroupsPolicy", &["Merge", "Strict"]),
        ("seLinuxChangePolicy", &["MountOption", "Recursive"]),
    ];
    for (k, allowed) in enums {
        if let Some(v) = sc.g(k).as_str().filter(|v| !allowed.contains(v)) {
            e.push(not_supported(&sp.ch(k), v, allowed));
        }
        if k == "fsGroupChangePolicy" {
            e.extend(seccomp_profile(
                sc.g("seccompProfile"),
                &sp.ch("seccompProfile"),
            ));
            e.extend(apparmor_profile(
                sc.g("appArmorProfile"),
                &sp.ch("appArmorProfile"),
            ));
        }
    }
    e
}

/// Visits init, regular and ephemeral containers like `podshelper.VisitContainersWithPath`.
fn all_containers<'a>(spec: &'a Value, p: &P) -> Vec<(&'a Value, P)> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| {
            spec.arr(k)
                .iter()
                .enumerate()
                .map(move |(i, c)| (c, p.ch(k).idx(i)))
        })
        .collect()
}

fn os_checks(spec: &Value, p: &P) -> Errs {
    let os = spec.g("os");
    if os.is_null() {
        return vec![];
    }
    let name = os.st("name");
    if name.is_empty() {
        return vec![required(&p.ch("os").ch("name"), "cannot be empty")];
    }
    let sc = spec.g("securityContext");
    let scp = p.ch("securityContext");
    let mut e = vec![];
    match name {
        "linux" => {
            if sc.has("windowsOptions") {
                e.push(forbidden(
                    &scp.ch("windowsOptions"),
                    "windows options cannot be set for a linux pod",
                ));
            }
            for (c, cp) in all_containers(spec, p) {
                if c.g("securityContext").has("windowsOptions") {
                    e.push(forbidden(
                        &cp.ch("securityContext").ch("windowsOptions"),
                        "windows options cannot be set for a linux pod",
                    ));
                }
            }
        }
        "windows" => {
            const MSG: &str = "cannot be set for a windows pod";
            if !sc.is_null() {
                let pod_fields: [(&str, &Value, P); 15] = [
                    ("appArmorProfile", sc, scp.clone()),
                    ("seLinuxOptions", sc, scp.clone()),
                    ("hostUsers", spec, p.clone()),
                    ("hostPID", spec, p.clone()),
                    ("hostIPC", spec, p.clone()),
                    ("seccompProfile", sc, scp.clone()),
                    ("fsGroup", sc, scp.clone()),
                    ("fsGroupChangePolicy", sc, scp.clone()),
                    ("sysctls", sc, scp.clone()),
                    ("shareProcessNamespace", spec, p.clone()),
                    ("runAsUser", sc, scp.clone()),
                    ("runAsGroup", sc, scp.clone()),
                    ("supplementalGroups", sc, scp.clone()),
                    ("supplementalGroupsPolicy", sc, scp.clone()),
                    ("seLinuxChangePolicy", sc, scp.clone()),
                ];
                for (k, src, base) in pod_fields {
                    let set = match k {
                        "hostPID" | "hostIPC" => src.flag(k),
                        "sysctls" => !src.arr(k).is_empty(),
                        _ => src.has(k),
                    };
                    if set {
                        e.push(forbidden(&base.ch(k), MSG));
                    }
                }
            }
            const CONTAINER_FIELDS: [&str; 10] = [
                "appArmorProfile",
                "seLinuxOptions",
                "seccompProfile",
                "capabilities",
                "readOnlyRootFilesystem",
                "privileged",
                "allowPrivilegeEscalation",
                "procMount",
                "runAsUser",
                "runAsGroup",
            ];
            for (c, cp) in all_containers(spec, p) {
                let csc = c.g("securityContext");
                for k in CONTAINER_FIELDS.iter().filter(|k| csc.has(k)) {
                    e.push(forbidden(&cp.ch("securityContext").ch(k), MSG));
                }
            }
        }
        other => e.push(not_supported(&p.ch("os"), other, &["linux", "windows"])),
    }
    e
}

/// Effective service account name (`serviceAccount` is a deprecated alias).
fn sa_name(spec: &Value) -> &str {
    match spec.st("serviceAccountName") {
        "" => spec.st("serviceAccount"),
        n => n,
    }
}

/// `ValidatePodSpec`.
fn pod_spec(spec: &Value, pod_name: Option<&str>, p: &P, is_pod: bool) -> Errs {
    let mut e = vec![];
    if !spec.has("terminationGracePeriodSeconds") {
        e.push(required(&p.ch("terminationGracePeriodSeconds"), ""));
    }
    let cx = PodCx {
        grace: spec.int("terminationGracePeriodSeconds"),
        host_users: spec.g("hostUsers").as_bool().unwrap_or(true),
        restart: spec.st("restartPolicy").to_string(),
    };
    let (vols, ve) = volumes(spec.arr("volumes"), pod_name, &p.ch("volumes"), is_pod);
    e.extend(ve);
    e.extend(containers(
        spec.arr("containers"),
        &vols,
        &p.ch("containers"),
        &cx,
    ));
    e.extend(init_containers(
        spec.arr("initContainers"),
        spec.arr("containers"),
        &vols,
        &p.ch("initContainers"),
        &cx,
    ));
    e.extend(ephemeral_containers(
        spec,
        &vols,
        &p.ch("ephemeralContainers"),
        &cx,
    ));
    if spec.flag("hostNetwork") {
        for (i, c) in spec.arr("containers").iter().enumerate() {
            for (j, port) in c.arr("ports").iter().enumerate() {
                let (hp, cp) = (
                    port.int("hostPort").unwrap_or(0),
                    port.int("containerPort").unwrap_or(0),
                );
                if (is_pod || hp != 0) && hp != cp {
                    let pp = p.ch("containers").idx(i).ch("ports").idx(j).ch("hostPort");
                    e.push(invalid(
                        &pp,
                        hp,
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }
    let rpp = p.ch("restartPolicy");
    match cx.restart.as_str() {
        "Always" | "OnFailure" | "Never" => {}
        "" => e.push(required(&rpp, "")),
        v => e.push(not_supported(&rpp, v, &["Always", "OnFailure", "Never"])),
    }
    let dpp = p.ch("dnsPolicy");
    match spec.st("dnsPolicy") {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => e.push(required(&dpp, "")),
        v => e.push(not_supported(
            &dpp,
            v,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    e.extend(labels(spec.g("nodeSelector"), &p.ch("nodeSelector")));
    e.extend(pod_security_context(spec, p));
    e.extend(affinity(spec.g("affinity"), &p.ch("affinity")));
    e.extend(dns_config(spec, &p.ch("dnsConfig")));
    for (i, g) in spec.arr("readinessGates").iter().enumerate() {
        e.extend(qualified(
            g.st("conditionType"),
            &p.ch("readinessGates").idx(i).ch("conditionType"),
        ));
    }
    let mut gates = HashSet::new();
    for (i, g) in spec.arr("schedulingGates").iter().enumerate() {
        let gp = p.ch("schedulingGates").idx(i);
        e.extend(qualified(g.st("name"), &gp));
        if !gates.insert(g.st("name")) {
            e.push(duplicate(&gp, g.st("name")));
        }
    }
    e.extend(topology_spread(
        spec.arr("topologySpreadConstraints"),
        &p.ch("topologySpreadConstraints"),
    ));
    if spec.g("hostUsers").as_bool() == Some(false) {
        for (k, path) in [
            ("hostNetwork", "hostNetwork"),
            ("hostPID", "HostPID"),
            ("hostIPC", "HostIPC"),
        ] {
            if spec.flag(k) {
                e.push(forbidden(&p.ch(path), "when `pod.Spec.HostUsers` is false"));
            }
        }
    }
    let sa = sa_name(spec);
    if !sa.is_empty() {
        e.extend(name_check(name_subdomain, sa, &p.ch("serviceAccountName")));
    }
    for (k, f) in [
        ("nodeName", name_subdomain as NameFn),
        ("priorityClassName", name_subdomain),
    ] {
        if !spec.st(k).is_empty() {
            e.extend(name_check(f, spec.st(k), &p.ch(k)));
        }
    }
    if let Some(ads) = spec
        .int("activeDeadlineSeconds")
        .filter(|v| !(1..=i32::MAX as i64).contains(v))
    {
        e.push(invalid(
            &p.ch("activeDeadlineSeconds"),
            ads,
            &range_error(1, i32::MAX as i64),
        ));
    }
    for k in ["hostname", "subdomain"] {
        if !spec.st(k).is_empty() {
            e.extend(dns_label(spec.st(k), &p.ch(k)));
        }
    }
    e.extend(tolerations(spec.arr("tolerations"), &p.ch("tolerations")));
    for (i, ha) in spec.arr("hostAliases").iter().enumerate() {
        let hp = p.ch("hostAliases").idx(i);
        e.extend(ip_legacy(&hp.ch("ip"), ha.st("ip"), &[]));
        for (j, h) in ha.strs("hostnames").iter().enumerate() {
            e.extend(dns_subdomain(h, &hp.ch("hostnames").idx(j)));
        }
    }
    if let Some(rc) = spec.g("runtimeClassName").as_str() {
        e.extend(name_check(name_subdomain, rc, &p.ch("runtimeClassName")));
    }
    if let Some(pp) = spec.g("preemptionPolicy").as_str() {
        match pp {
            "PreemptLowerPriority" | "Never" => {}
            "" => e.push(required(&p.ch("preemptionPolicy"), "")),
            v => e.push(not_supported(
                &p.ch("preemptionPolicy"),
                v,
                &["PreemptLowerPriority", "Never"],
            )),
        }
    }
    if spec.has("overhead") {
        let r = serde_json::json!({ "limits": spec.g("overhead") });
        e.extend(resource_requirements(&r, &p.ch("overhead")));
    }
    e.extend(os_checks(spec, p));
    e
}

const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
const APPARMOR_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";
const SECCOMP_POD: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";
const TOLERATIONS_ANNOTATION: &str = "scheduler.alpha.kubernetes.io/tolerations";
const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// `ValidatePodSpecificAnnotations`.
fn pod_annotations(ann: &Value, spec: &Value, p: &P) -> Errs {
    let mut e = vec![];
    if let Some(v) = ann.get(MIRROR_ANNOTATION) {
        if spec.st("nodeName").is_empty() {
            e.push(invalid(
                &p.key(MIRROR_ANNOTATION),
                sval(v),
                "must set spec.nodeName if mirror pod annotation is set",
            ));
        }
    }
    let tol = ann.st(TOLERATIONS_ANNOTATION);
    if !tol.is_empty() {
        match serde_json::from_str::<Value>(tol) {
            Ok(Value::Array(list)) => e.extend(tolerations(&list, &p.ch(TOLERATIONS_ANNOTATION))),
            Ok(_) => e.push(invalid(
                p,
                TOLERATIONS_ANNOTATION,
                "json: cannot unmarshal into Go value of type []core.Toleration",
            )),
            Err(err) => e.push(invalid(p, TOLERATIONS_ANNOTATION, &err.to_string())),
        }
    }
    if let Some(v) = ann.get(DELETION_COST).map(sval) {
        let first_ok =
            v.starts_with('-') || v == "0" || v.starts_with(|c: char| ('1'..='9').contains(&c));
        if !first_ok || v.parse::<i32>().is_err() {
            e.push(invalid(&p.key(DELETION_COST), v, "must be a 32bit integer"));
        }
    }
    for (k, v) in smap(ann) {
        if k != SECCOMP_POD && !k.starts_with(SECCOMP_CONTAINER_PREFIX) {
            continue;
        }
        let kp = p.ch(k);
        match v {
            "runtime/default" | "docker/default" | "unconfined" => {}
            v if v.starts_with("localhost/") => {
                e.extend(local_descending_path(&v["localhost/".len()..], &kp))
            }
            v => e.push(invalid(&kp, v, "must be a valid seccomp profile")),
        }
    }
    let names: HashSet<&str> = all_containers(spec, p)
        .iter()
        .map(|(c, _)| c.st("name"))
        .collect();
    for (k, v) in smap(ann) {
        let Some(cname) = k.strip_prefix(APPARMOR_PREFIX) else {
            continue;
        };
        if !names.contains(cname) {
            e.push(invalid(&p.key(k), cname, "container not found"));
        }
        if !(v.is_empty()
            || v == "runtime/default"
            || v == "unconfined"
            || v.starts_with("localhost/"))
        {
            e.push(invalid(
                &p.key(k),
                v,
                &format!("invalid AppArmor profile name: {}", go_quote(v)),
            ));
        }
    }
    e
}

fn seccomp_fields_match(meta: &Value, spec: &Value, p: &P) -> Errs {
    let ann = meta.g("annotations");
    let check = |field: &Value, annotation: Option<&str>, fp: P| -> Option<FieldError> {
        let a = annotation?;
        if field.is_null() {
            return None;
        }
        let bad_type = match field.st("type") {
            "Unconfined" => a != "unconfined",
            "RuntimeDefault" => a != "runtime/default" && a != "docker/default",
            "Localhost" => {
                let Some(prof) = a.strip_prefix("localhost/") else {
                    return Some(forbidden(
                        &fp.ch("type"),
                        "seccomp type in annotation and field must match",
                    ));
                };
                if field.g("localhostProfile").as_str() != Some(prof) {
                    return Some(forbidden(
                        &fp.ch("localhostProfile"),
                        "seccomp profile in annotation and field must match",
                    ));
                }
                false
            }
            _ => false,
        };
        bad_type.then(|| {
            forbidden(
                &fp.ch("type"),
                "seccomp type in annotation and field must match",
            )
        })
    };
    let mut e: Errs = check(
        spec.g("securityContext").g("seccompProfile"),
        ann.get(SECCOMP_POD).map(sval),
        p.ch("securityContext").ch("seccompProfile"),
    )
    .into_iter()
    .collect();
    for (c, cp) in all_containers(spec, p) {
        let key = format!("{SECCOMP_CONTAINER_PREFIX}{}", c.st("name"));
        e.extend(check(
            c.g("securityContext").g("seccompProfile"),
            ann.get(&key).map(sval),
            cp.ch("securityContext").ch("seccompProfile"),
        ));
    }
    e
}

fn pod_metadata_and_spec(pod: &Value, ns: bool) -> Errs {
    let (meta, spec) = (pod.g("metadata"), pod.g("spec"));
    let (mp, sp) = (P::new("metadata"), P::new("spec"));
    let mut e = core_object_meta(meta, ns, name_subdomain, &mp);
    e.extend(pod_annotations(
        meta.g("annotations"),
        spec,
        &mp.ch("annotations"),
    ));
    e.extend(pod_spec(spec, Some(meta.st("name")), &sp, true));
    if sa_name(spec).is_empty() {
        for (vi, v) in spec.arr("volumes").iter().enumerate() {
            for (si, s) in v.g("projected").arr("sources").iter().enumerate() {
                if s.has("serviceAccountToken") {
                    let pp = sp
                        .ch("volumes")
                        .idx(vi)
                        .ch("projected")
                        .ch("sources")
                        .idx(si)
                        .ch("serviceAccountToken");
                    e.push(forbidden(
                        &pp,
                        "must not be specified when serviceAccountName is not set",
                    ));
                }
            }
        }
    }
    for k in ["containers", "initContainers"] {
        for (i, c) in spec.arr(k).iter().enumerate() {
            let img = c.st("image");
            if img.trim() != img {
                e.push(invalid(
                    &sp.ch(k).idx(i).ch("image"),
                    img,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
    e
}

fn pod_create(pod: &Value, ns: bool) -> Errs {
    let (meta, spec) = (pod.g("metadata"), pod.g("spec"));
    let sp = P::new("spec");
    let mut e = pod_metadata_and_spec(pod, ns);
    if !spec.arr("ephemeralContainers").is_empty() {
        e.push(forbidden(
            &sp.ch("ephemeralContainers"),
            "cannot be set on create",
        ));
    }
    if !spec.st("nodeName").is_empty() && !spec.arr("schedulingGates").is_empty() {
        e.push(forbidden(
            &sp.ch("nodeName"),
            "cannot be set until all schedulingGates have been cleared",
        ));
    }
    e.extend(seccomp_fields_match(meta, spec, &sp));
    e
}

const UPDATABLE_POD_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Lists differing paths (a stand-in for upstream's `cmp.Diff` text).
fn diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    if sem_eq(a, b) {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x
                .keys()
                .chain(y.keys().filter(|k| !x.contains_key(*k)))
                .collect();
            keys.dedup();
            for k in keys {
                diff(
                    x.get(k).unwrap_or(&NULL),
                    y.get(k).unwrap_or(&NULL),
                    &format!("{path}.{k}"),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(p, q, &format!("{path}[{i}]"), out);
            }
        }
        _ => {
            out.push(format!("- \t{path}: {a}"));
            out.push(format!("+ \t{path}: {b}"));
        }
    }
}

/// Upstream's `ValidatePodEphemeralContainersUpdate` (with `rest.BeforeUpdate`'s common
/// metadata checks): the pod as a whole is valid, and the ephemeral containers it had
/// are all there, unchanged (only additions).
pub fn pod_ephemeral_containers_update(new: &Value, old: &Value, ns: bool) -> Vec<FieldError> {
    let md = P::new("metadata");
    let mut e = object_meta(new.g("metadata"), ns, name_path_segment, &md);
    e.extend(object_meta_update(
        new.g("metadata"),
        old.g("metadata"),
        &md,
    ));
    e.extend(core_object_meta_update(
        new.g("metadata"),
        old.g("metadata"),
        &md,
    ));
    e.extend(pod_metadata_and_spec(new, ns));
    if old
        .g("metadata")
        .g("annotations")
        .get(MIRROR_ANNOTATION)
        .is_some()
    {
        return vec![forbidden(
            &P::new(""),
            "static pods do not support ephemeral containers",
        )];
    }
    let sp = P::new("spec").ch("ephemeralContainers");
    let added = new.g("spec").arr("ephemeralContainers");
    for o in old.g("spec").arr("ephemeralContainers") {
        let name = o.st("name");
        match added.iter().find(|n| n.st("name") == name) {
            None => e.push(forbidden(
                &sp,
                &format!("existing ephemeral containers {name:?} may not be removed\n"),
            )),
            Some(n) if !sem_eq(o, n) => {
                let mut lines = vec![];
                diff(o, n, name, &mut lines);
                e.push(forbidden(
                    &sp.ch(name),
                    &format!(
                        "existing ephemeral containers {name:?} may not be changed\n{}",
                        lines.join("\n")
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    e
}

/// ValidatePodSpecificAnnotationUpdates: AppArmor and mirror-pod annotations are fixed.
fn pod_annotation_updates(na: &Value, oa: &Value, ap: &P) -> Errs {
    let mut e = Errs::new();
    for (k, ov) in smap(oa) {
        if na.get(k).map(sval) == Some(ov) {
            continue;
        }
        if k.starts_with(APPARMOR_PREFIX) {
            e.push(forbidden(
                &ap.key(k),
                "may not remove or update AppArmor annotations",
            ));
        }
        if k == MIRROR_ANNOTATION {
            e.push(forbidden(
                &ap.key(k),
                "may not remove or update mirror pod annotation",
            ));
        }
    }
    for (k, _) in smap(na).into_iter().filter(|(k, _)| oa.get(*k).is_none()) {
        if k.starts_with(APPARMOR_PREFIX) {
            e.push(forbidden(&ap.key(k), "may not add AppArmor annotations"));
        }
        if k == MIRROR_ANNOTATION {
            e.push(forbidden(&ap.key(k), "may not add mirror pod annotation"));
        }
    }
    e
}

fn pod_update(new: &Value, old: &Value, ns: bool) -> Errs {
    let mp = P::new("metadata");
    let ap = mp.ch("annotations");
    let sp = P::new("spec");
    let (nspec, ospec) = (new.g("spec"), old.g("spec"));
    let mut e = core_object_meta_update(new.g("metadata"), old.g("metadata"), &mp);
    e.extend(pod_metadata_and_spec(new, ns));
    let (na, oa) = (
        new.g("metadata").g("annotations"),
        old.g("metadata").g("annotations"),
    );
    e.extend(pod_annotation_updates(na, oa, &ap));
    e.extend(pod_annotations(na, nspec, &ap));

    for k in ["containers", "initContainers"] {
        let (nc, oc) = (nspec.arr(k), ospec.arr(k));
        if nc.len() != oc.len() {
            e.push(forbidden(
                &sp.ch(k),
                "pod updates may not add or remove containers",
            ));
            return e;
        }
        for (i, c) in nc.iter().enumerate() {
            let img = c.st("image");
            if img.is_empty() {
                e.push(required(&sp.ch(k).idx(i).ch("image"), ""));
            }
            if img.trim() != img {
                e.push(invalid(
                    &sp.ch(k).idx(i).ch("image"),
                    img,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
    let adp = sp.ch("activeDeadlineSeconds");
    match (
        nspec.int("activeDeadlineSeconds"),
        ospec.int("activeDeadlineSeconds"),
    ) {
        (Some(n), _) if !(0..=i32::MAX as i64).contains(&n) => {
            e.push(invalid(&adp, n, &range_error(0, i32::MAX as i64)));
            return e;
        }
        (Some(n), Some(o)) if o < n => {
            e.push(invalid(
                &adp,
                n,
                "must be less than or equal to previous value",
            ));
            return e;
        }
        (None, Some(_)) => e.push(invalid(
            &adp,
            Bv::Null,
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }
    // validateOnlyAddedTolerations
    let tp = sp.ch("tolerations");
    let (nt, ot) = (nspec.arr("tolerations"), ospec.arr("tolerations"));
    let kept = ot.iter().all(|o| {
        nt.iter().any(|n| {
            let mut o = o.clone();
            if let Some(m) = o.as_object_mut() {
                m.insert("tolerationSeconds".into(), n.g("tolerationSeconds").clone());
            }
            sem_eq(&o, n)
        })
    });
    if kept {
        e.extend(tolerations(nt, &tp));
    } else {
        e.push(forbidden(
            &tp,
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
    // validateOnlyDeletedSchedulingGates
    let old_gates: HashSet<&str> = ospec
        .arr("schedulingGates")
        .iter()
        .map(|g| g.st("name"))
        .collect();
    for (i, g) in nspec.arr("schedulingGates").iter().enumerate() {
        if !old_gates.contains(g.st("name")) {
            e.push(forbidden(
                &sp.ch("schedulingGates").idx(i).ch("name"),
                &format!(
                    "only deletion is allowed, but found new scheduling gate '{}'",
                    g.st("name")
                ),
            ));
        }
    }
    if sem_eq(nspec, ospec) {
        return e;
    }
    let mut munged = nspec.clone();
    if let Some(m) = munged.as_object_mut() {
        for k in ["containers", "initContainers"] {
            if let Some(list) = m.get_mut(k).and_then(Value::as_array_mut) {
                for (c, o) in list.iter_mut().zip(ospec.arr(k)) {
                    if let Some(c) = c.as_object_mut() {
                        c.insert("image".into(), o.g("image").clone());
                    }
                }
            }
        }
        for k in ["activeDeadlineSeconds", "schedulingGates", "tolerations"] {
            m.insert(k.into(), ospec.g(k).clone());
        }
        let tg = "terminationGracePeriodSeconds";
        if ospec.int(tg).is_some_and(|g| g < 0) && nspec.int(tg) == Some(1) {
            m.insert(tg.into(), ospec.g(tg).clone());
        }
        if !ospec.arr("schedulingGates").is_empty() {
            // Gated pods may mutate node selector / node affinity (restrictions not modelled).
            m.insert("nodeSelector".into(), ospec.g("nodeSelector").clone());
            let na = ospec.g("affinity").g("nodeAffinity").clone();
            if let Some(a) = m.get_mut("affinity").and_then(Value::as_object_mut) {
                a.insert("nodeAffinity".into(), na);
            } else if !na.is_null() {
                m.insert("affinity".into(), serde_json::json!({ "nodeAffinity": na }));
            }
        }
    }
    if !sem_eq(&munged, ospec) {
        let mut lines = vec![];
        diff(ospec, &munged, "spec", &mut lines);
        let detail = format!(
            "pod updates may not change fields other than {UPDATABLE_POD_FIELDS}\n{}",
            lines.join("\n")
        );
        e.push(forbidden(&sp, &detail));
    }
    e
}

// ---------------------------------------------------------------------------
// ReplicationController
// ---------------------------------------------------------------------------

fn pod_template_spec(t: &Value, p: &P) -> Errs {
    let (meta, spec) = (t.g("metadata"), t.g("spec"));
    let mut e = labels(meta.g("labels"), &p.ch("labels"));
    e.extend(annotations(meta.g("annotations"), &p.ch("annotations")));
    e.extend(pod_annotations(
        meta.g("annotations"),
        spec,
        &p.ch("annotations"),
    ));
    e.extend(pod_spec(spec, None, &p.ch("spec"), false));
    e.extend(seccomp_fields_match(meta, spec, &p.ch("spec")));
    if !spec.arr("ephemeralContainers").is_empty() {
        e.push(forbidden(
            &p.ch("spec").ch("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    e
}

fn rc_spec(spec: &Value, p: &P) -> Errs {
    let mut e = vec![];
    if let Some(m) = spec.int("minReadySeconds").filter(|m| *m < 0) {
        e.push(invalid(&p.ch("minReadySeconds"), m, IS_NEGATIVE));
    }
    let selector = spec.smap("selector");
    if selector.is_empty() {
        e.push(required(&p.ch("selector"), ""));
    }
    match spec.int("replicas") {
        None => e.push(required(&p.ch("replicas"), "")),
        Some(r) if r < 0 => e.push(invalid(&p.ch("replicas"), r, IS_NEGATIVE)),
        _ => {}
    }
    let tp = p.ch("template");
    let t = spec.g("template");
    if t.is_null() {
        e.push(required(&tp, ""));
        return e;
    }
    let tl = t.g("metadata").g("labels");
    if !selector.is_empty()
        && !selector
            .iter()
            .all(|(k, v)| tl.get(*k).map(sval) == Some(*v))
    {
        e.push(invalid(
            &tp.ch("metadata").ch("labels"),
            Bv::Raw(go_map(tl)),
            "`selector` does not match template `labels`",
        ));
    }
    e.extend(pod_template_spec(t, &tp));
    let rp = t.g("spec").st("restartPolicy");
    if rp != "Always" {
        e.push(not_supported(
            &tp.ch("spec").ch("restartPolicy"),
            rp,
            &["Always"],
        ));
    }
    if t.g("spec").has("activeDeadlineSeconds") {
        e.push(forbidden(
            &tp.ch("spec").ch("activeDeadlineSeconds"),
            "activeDeadlineSeconds in ReplicationController is not Supported",
        ));
    }
    e
}

// ---------------------------------------------------------------------------
// Service
// ---------------------------------------------------------------------------

fn needs_cluster_ip(s: &Value) -> bool {
    s.g("spec").st("type") != "ExternalName"
}

/// The registry's clusterIP bookkeeping before validation (`patchAllocatedValues`,
/// `normalizeClusterIPs`, `dropTypeDependentFields`), applied to a copy.
fn normalize_service(new: &Value, old: Option<&Value>) -> Value {
    let mut svc = new.clone();
    let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) else {
        return svc;
    };
    let get =
        |m: &serde_json::Map<String, Value>, k: &str| m.get(k).cloned().unwrap_or(Value::Null);
    match old {
        None => {
            if !sval(&get(spec, "clusterIP")).is_empty() && is_empty(&get(spec, "clusterIPs")) {
                let ip = get(spec, "clusterIP");
                spec.insert("clusterIPs".into(), Value::Array(vec![ip]));
            }
        }
        Some(old) => {
            let os = old.g("spec");
            if needs_cluster_ip(old) && needs_cluster_ip(new) {
                if sval(&get(spec, "clusterIP")).is_empty() {
                    spec.insert("clusterIP".into(), os.g("clusterIP").clone());
                }
                if is_empty(&get(spec, "clusterIPs")) && !os.arr("clusterIPs").is_empty() {
                    spec.insert("clusterIPs".into(), os.g("clusterIPs").clone());
                }
            }
            let (nip, oip) = (
                sval(&get(spec, "clusterIP")).to_string(),
                os.st("clusterIP"),
            );
            let same_plural = sem_eq(&get(spec, "clusterIPs"), os.g("clusterIPs"));
            if nip != oip && same_plural {
                let v = if nip.is_empty() {
                    Value::Null
                } else {
                    Value::Array(vec![Value::from(nip.clone())])
                };
                spec.insert("clusterIPs".into(), v);
            } else if !nip.is_empty() && is_empty(&get(spec, "clusterIPs")) {
                spec.insert("clusterIPs".into(), Value::Array(vec![Value::from(nip)]));
            }
            if needs_cluster_ip(old) && !needs_cluster_ip(new) {
                if os.st("clusterIP") == sval(&get(spec, "clusterIP"))
                    && sem_eq(&get(spec, "clusterIPs"), os.g("clusterIPs"))
                {
                    spec.remove("clusterIP");
                    spec.remove("clusterIPs");
                }
                for k in ["ipFamilies", "ipFamilyPolicy"] {
                    if sem_eq(&get(spec, k), os.g(k)) {
                        spec.remove(k);
                    }
                }
            }
            let node_port_type = |t: &str| t == "NodePort" || t == "LoadBalancer";
            let new_type = sval(&get(spec, "type")).to_string();
            if node_port_type(os.st("type")) && !node_port_type(&new_type) {
                let old_ports: HashSet<i64> = os
                    .arr("ports")
                    .iter()
                    .filter_map(|p| p.int("nodePort"))
                    .collect();
                let ports = spec.get_mut("ports").and_then(Value::as_array_mut);
                if let Some(ports) = ports {
                    if ports
                        .iter()
                        .filter_map(|p| p.int("nodePort").filter(|n| *n != 0))
                        .all(|n| old_ports.contains(&n))
                    {
                        ports
                            .iter_mut()
                            .filter_map(Value::as_object_mut)
                            .for_each(|p| {
                                p.remove("nodePort");
                            });
                    }
                }
                if sval(&get(spec, "externalTrafficPolicy")) == os.st("externalTrafficPolicy") {
                    spec.remove("externalTrafficPolicy");
                }
            }
            let hc = |t: &str, s: &Value| {
                t == "LoadBalancer" && s.st("externalTrafficPolicy") == "Local"
            };
            let new_spec_view = Value::Object(spec.clone());
            if hc(os.st("type"), os)
                && !hc(&new_type, &new_spec_view)
                && new_spec_view.int("healthCheckNodePort") == os.int("healthCheckNodePort")
            {
                spec.remove("healthCheckNodePort");
            }
            if os.st("type") == "LoadBalancer" && new_type != "LoadBalancer" {
                for k in ["allocateLoadBalancerNodePorts", "loadBalancerClass"] {
                    if new_spec_view.has(k) && new_spec_view.g(k) == os.g(k) {
                        spec.remove(k);
                    }
                }
            }
        }
    }
    svc
}

fn go_service_port_key(protocol: &str, port: i64) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        go_quote(protocol)
    )
}

fn service(obj: &Value, old: Option<&Value>, ns: bool) -> Errs {
    let svc = normalize_service(obj, old);
    let old_n = old.map(|o| normalize_service(o, None));
    let mp = P::new("metadata");
    let mut e = vec![];
    if let (Some(o), Some(on)) = (old, &old_n) {
        e.extend(core_object_meta_update(
            svc.g("metadata"),
            o.g("metadata"),
            &mp,
        ));
        e.extend(service_update(&svc, on));
    }
    e.extend(service_create(&svc, old_n.as_ref(), ns));
    e
}

fn is_headless(spec: &Value) -> bool {
    let ips = spec.strs("clusterIPs");
    ips.len() == 1 && ips[0] == "None"
}

fn service_update(svc: &Value, old: &Value) -> Errs {
    let (ns, os) = (svc.g("spec"), old.g("spec"));
    let sp = P::new("spec");
    let mut e = vec![];
    let external_name = ns.st("type") == "ExternalName" || os.st("type") == "ExternalName";
    let (nh, oh) = (is_headless(ns), is_headless(os));
    // validateUpgradeDowngradeClusterIPs
    if !(external_name || nh && oh) {
        let (nips, oips) = (ns.strs("clusterIPs"), os.strs("clusterIPs"));
        let raw = || {
            Bv::Raw(go_strings(if ns.has("clusterIPs") {
                Some(nips.clone())
            } else {
                None
            }))
        };
        let cp = sp.ch("clusterIPs");
        if nips.len() == oips.len() {
            for (i, ip) in oips.iter().enumerate() {
                if *ip != nips[i] {
                    e.push(invalid(&cp.idx(i), raw(), "may not change once set"));
                }
            }
        } else if oips.len() > nips.len() {
            if nips.is_empty() {
                e.push(invalid(
                    &cp.idx(0),
                    raw(),
                    "primary clusterIP can not be unset",
                ));
            }
            if !oips.is_empty() && !nips.is_empty() && nips[0] != oips[0] {
                e.push(invalid(&cp.idx(0), raw(), "may not change once set"));
            }
            if nips.len() == 1 && ns.st("ipFamilyPolicy") != "SingleStack" {
                e.push(invalid(
                    &sp.ch("ipFamilyPolicy"),
                    ns.g("ipFamilyPolicy"),
                    "must be set to 'SingleStack' when releasing the secondary clusterIP",
                ));
            }
        } else if !oips.is_empty() && nips[0] != oips[0] {
            e.push(invalid(&cp.idx(0), raw(), "may not change once set"));
        }
    }
    // validateUpgradeDowngradeIPFamilies
    if !external_name && nh == oh && !nh {
        let (nf, of) = (ns.strs("ipFamilies"), os.strs("ipFamilies"));
        let fp = sp.ch("ipFamilies").idx(0);
        let fams = || Bv::Raw(go_strings(Some(nf.clone())).replace("[]string", "[]core.IPFamily"));
        let ips = || Bv::Raw(go_strings(Some(ns.strs("clusterIPs"))));
        if nf.len() == of.len() {
            for (i, f) in of.iter().enumerate() {
                if *f != nf[i] {
                    e.push(invalid(&fp, fams(), "may not change once set"));
                }
            }
        } else if of.len() > nf.len() {
            if ns.arr("clusterIPs").is_empty() {
                e.push(invalid(&fp, fams(), "primary ipFamily can not be unset"));
            }
            if !nf.is_empty() && nf[0] != of[0] {
                e.push(invalid(&fp, ips(), "may not change once set"));
            }
            if nf.len() == 1 && ns.st("ipFamilyPolicy") != "SingleStack" {
                e.push(invalid(
                    &sp.ch("ipFamilyPolicy"),
                    ns.g("ipFamilyPolicy"),
                    "must be set to 'SingleStack' when releasing the secondary ipFamily",
                ));
            }
        } else if !of.is_empty() && !nf.is_empty() && nf[0] != of[0] {
            e.push(invalid(&fp, ips(), "may not change once set"));
        }
    }
    e.extend(lb_class(ns, Some(os), &sp));
    let needs_hc =
        |s: &Value| s.st("type") == "LoadBalancer" && s.st("externalTrafficPolicy") == "Local";
    if needs_hc(ns)
        && needs_hc(os)
        && ns.int("healthCheckNodePort") != os.int("healthCheckNodePort")
    {
        e.push(forbidden(&sp.ch("healthCheckNodePort"), FIELD_IMMUTABLE));
    }
    e
}

fn service_port(port: &Value, require_name: bool, names: &mut HashSet<String>, p: &P) -> Errs {
    let mut e = vec![];
    let name = port.st("name");
    if require_name && name.is_empty() {
        e.push(required(&p.ch("name"), ""));
    } else if !name.is_empty() {
        e.extend(dns_label(name, &p.ch("name")));
        if !names.insert(name.to_string()) {
            e.push(duplicate(&p.ch("name"), name));
        }
    }
    let num = port.int("port").unwrap_or(0);
    e.extend(
        is_valid_port_num(num)
            .iter()
            .map(|m| invalid(&p.ch("port"), num, m)),
    );
    e.extend(protocol(port.st("protocol"), &p.ch("protocol")));
    e.extend(port_num_or_name(port.g("targetPort"), &p.ch("targetPort")));
    if let Some(ap) = port.g("appProtocol").as_str() {
        e.extend(qualified(ap, &p.ch("appProtocol")));
    }
    e
}

/// `ValidateService`.
fn service_create(svc: &Value, old: Option<&Value>, ns: bool) -> Errs {
    let (meta, spec) = (svc.g("metadata"), svc.g("spec"));
    let (mp, sp) = (P::new("metadata"), P::new("spec"));
    let mut e = core_object_meta(meta, ns, name_dns1035, &mp);
    let ann = meta.g("annotations");
    const HINTS: &str = "service.kubernetes.io/topology-aware-hints";
    const MODE: &str = "service.kubernetes.io/topology-mode";
    if let (Some(h), Some(m)) = (ann.get(HINTS), ann.get(MODE)) {
        if h != m {
            e.push(invalid(
                &mp.ch("annotations").key(MODE),
                sval(m),
                &format!("must match annotations[{HINTS}] when both are specified"),
            ));
        }
    }
    let typ = spec.st("type");
    let headless = is_headless(spec);
    let ports = spec.arr("ports");
    if ports.is_empty() && !headless && typ != "ExternalName" {
        e.push(required(&sp.ch("ports"), ""));
    }
    let cips = spec.strs("clusterIPs");
    match typ {
        "LoadBalancer" | "NodePort" if headless => e.push(invalid(
            &sp.ch("clusterIPs").idx(0),
            cips[0],
            &format!("may not be set to 'None' for {typ} services"),
        )),
        "ExternalName" => {
            for (k, has) in [
                ("clusterIPs", !cips.is_empty()),
                ("ipFamilies", !spec.arr("ipFamilies").is_empty()),
                ("ipFamilyPolicy", spec.has("ipFamilyPolicy")),
            ] {
                if has {
                    e.push(forbidden(
                        &sp.ch(k),
                        "may not be set for ExternalName services",
                    ));
                }
            }
            let cname = spec.st("externalName");
            let cname = cname.strip_suffix('.').unwrap_or(cname);
            if cname.is_empty() {
                e.push(required(&sp.ch("externalName"), ""));
            } else {
                e.extend(dns_subdomain(cname, &sp.ch("externalName")));
            }
        }
        _ => {}
    }
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        e.extend(service_port(
            port,
            ports.len() > 1,
            &mut names,
            &sp.ch("ports").idx(i),
        ));
    }
    if spec.has("selector") {
        e.extend(labels(spec.g("selector"), &sp.ch("selector")));
    }
    let aff = spec.st("sessionAffinity");
    match aff {
        "" => e.push(required(&sp.ch("sessionAffinity"), "")),
        "ClientIP" | "None" => {}
        v => e.push(not_supported(
            &sp.ch("sessionAffinity"),
            v,
            &["ClientIP", "None"],
        )),
    }
    let sac = spec.g("sessionAffinityConfig");
    let sacp = sp.ch("sessionAffinityConfig");
    if aff == "ClientIP" {
        const WHEN: &str = "when session affinity type is ClientIP";
        let tp = sacp.ch("clientIP").ch("timeoutSeconds");
        if sac.is_null() {
            e.push(required(&sacp, WHEN));
        } else if !sac.has("clientIP") {
            e.push(required(&sacp.ch("clientIP"), WHEN));
        } else {
            match sac.g("clientIP").int("timeoutSeconds") {
                None => e.push(required(&tp, WHEN)),
                Some(t) if t <= 0 || t > 86400 => e.push(invalid(
                    &tp,
                    t,
                    "must be greater than 0 and less than 86400",
                )),
                _ => {}
            }
        }
    } else if aff == "None" && !sac.is_null() {
        e.push(forbidden(
            &sacp,
            "must not be set when session affinity is None",
        ));
    }
    e.extend(cluster_ips_related(spec, old.map(|o| o.g("spec")), &sp));
    let old_ext: Vec<&str> = old
        .map(|o| o.g("spec").strs("externalIPs"))
        .unwrap_or_default();
    for (i, ip) in spec.strs("externalIPs").iter().enumerate() {
        let ip_p = sp.ch("externalIPs").idx(i);
        let errs = ip_legacy(&ip_p, ip, &old_ext);
        if errs.is_empty() {
            e.extend(endpoint_ip(ip, &ip_p));
        }
        e.extend(errs);
    }
    const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    match typ {
        "" => e.push(required(&sp.ch("type"), "")),
        t if !TYPES.contains(&t) => e.push(not_supported(&sp.ch("type"), t, TYPES)),
        _ => {}
    }
    if typ == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if port.int("nodePort").unwrap_or(0) != 0 {
                e.push(forbidden(
                    &sp.ch("ports").idx(i).ch("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut node_ports = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let np = port.int("nodePort").unwrap_or(0);
        if np != 0 && !node_ports.insert((port.st("protocol"), np)) {
            e.push(duplicate(&sp.ch("ports").idx(i).ch("nodePort"), np));
        }
    }
    let mut seen = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let key = (port.st("protocol"), port.int("port").unwrap_or(0));
        if !seen.insert(key) {
            e.push(duplicate(
                &sp.ch("ports").idx(i),
                Bv::Raw(go_service_port_key(key.0, key.1)),
            ));
        }
    }
    const SOURCE_RANGES_ANN: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";
    let ranges = spec.strs("loadBalancerSourceRanges");
    if !ranges.is_empty() {
        let fp = sp.ch("LoadBalancerSourceRanges");
        if typ != "LoadBalancer" {
            e.push(forbidden(
                &fp,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        let existing: Vec<&str> = old
            .map(|o| o.g("spec").strs("loadBalancerSourceRanges"))
            .unwrap_or_default();
        let existing: Vec<&str> = existing.iter().map(|s| s.trim()).collect();
        for (i, r) in ranges.iter().enumerate() {
            e.extend(cidr_legacy(&fp.idx(i), r.trim(), &existing));
        }
    } else if let Some(val) = ann.get(SOURCE_RANGES_ANN).map(sval) {
        let fp = mp.ch("annotations").key(SOURCE_RANGES_ANN);
        if typ != "LoadBalancer" {
            e.push(forbidden(
                &fp,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        let old_val = old
            .and_then(|o| o.g("metadata").g("annotations").get(SOURCE_RANGES_ANN))
            .map(sval);
        if old_val != Some(val) && !val.trim().is_empty() {
            for c in val.trim().split(',') {
                e.extend(cidr_legacy(&fp, c.trim(), &[]));
            }
        }
    }
    let alnp = "allocateLoadBalancerNodePorts";
    if spec.has(alnp) && typ != "LoadBalancer" {
        e.push(forbidden(
            &sp.ch(alnp),
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if typ == "LoadBalancer" && !spec.has(alnp) {
        e.push(required(&P::new(alnp), ""));
    }
    e.extend(lb_class(spec, None, &sp));
    // validateServiceExternalTrafficPolicy
    let etp = spec.st("externalTrafficPolicy");
    let accessible = typ == "LoadBalancer"
        || typ == "NodePort"
        || (typ == "ClusterIP" && !spec.arr("externalIPs").is_empty());
    if !accessible {
        if !etp.is_empty() {
            e.push(invalid(
                &sp.ch("externalTrafficPolicy"),
                etp,
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        e.push(required(&sp.ch("externalTrafficPolicy"), ""));
    } else if etp != "Cluster" && etp != "Local" {
        e.push(not_supported(
            &sp.ch("externalTrafficPolicy"),
            etp,
            &["Cluster", "Local"],
        ));
    }
    let hc = spec.int("healthCheckNodePort").unwrap_or(0);
    let hcp = sp.ch("healthCheckNodePort");
    if !(typ == "LoadBalancer" && etp == "Local") {
        if hc != 0 {
            e.push(invalid(
                &hcp,
                hc,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        }
    } else if hc == 0 {
        e.push(required(&hcp, ""));
    } else {
        e.extend(is_valid_port_num(hc).iter().map(|m| invalid(&hcp, hc, m)));
    }
    let itp = sp.ch("internalTrafficPolicy");
    match spec.g("internalTrafficPolicy").as_str() {
        None if ["NodePort", "LoadBalancer", "ClusterIP"].contains(&typ) => {
            e.push(required(&itp, ""))
        }
        Some(v) if v != "Cluster" && v != "Local" => {
            e.push(not_supported(&itp, v, &["Cluster", "Local"]))
        }
        _ => {}
    }
    if let Some(td) = spec
        .g("trafficDistribution")
        .as_str()
        .filter(|t| *t != "PreferClose")
    {
        e.push(not_supported(
            &sp.ch("trafficDistribution"),
            td,
            &["PreferClose"],
        ));
    }
    e
}

/// `validateLoadBalancerClassField` (run for the update and again by `ValidateService`).
fn lb_class(spec: &Value, old: Option<&Value>, sp: &P) -> Errs {
    let (lb, class) = (
        spec.st("type") == "LoadBalancer",
        spec.g("loadBalancerClass"),
    );
    let cp = sp.ch("loadBalancerClass");
    let mut e = vec![];
    if old
        .is_some_and(|o| lb && o.st("type") == "LoadBalancer" && o.g("loadBalancerClass") != class)
    {
        e.push(invalid(&cp, class, "may not change once set"));
    }
    match class.as_str() {
        Some(c) if lb => e.extend(qualified(c, &cp)),
        Some(_) => e.push(forbidden(
            &cp,
            "may only be used when `type` is 'LoadBalancer'",
        )),
        None => {}
    }
    e
}

/// `ValidateServiceClusterIPsRelatedFields`.
fn cluster_ips_related(spec: &Value, old: Option<&Value>, sp: &P) -> Errs {
    if spec.st("type") == "ExternalName" {
        return vec![];
    }
    let mut e = vec![];
    let cp = sp.ch("clusterIPs");
    let ips = spec.strs("clusterIPs");
    let raw = || {
        Bv::Raw(go_strings(if spec.has("clusterIPs") {
            Some(ips.clone())
        } else {
            None
        }))
    };
    let cip = spec.st("clusterIP");
    if !cip.is_empty() {
        if ips.is_empty() {
            e.push(required(&cp, ""));
        } else if ips[0] != cip {
            e.push(invalid(&cp, raw(), "first value must match `clusterIP`"));
        }
    } else if !ips.is_empty() {
        e.push(invalid(
            &cp,
            raw(),
            "must be empty when `clusterIP` is not specified",
        ));
    }
    let mut seen = HashSet::new();
    for (i, f) in spec.strs("ipFamilies").iter().enumerate() {
        let fp = sp.ch("ipFamilies").idx(i);
        if *f != "IPv4" && *f != "IPv6" {
            e.push(not_supported(&fp, *f, &["IPv4", "IPv6"]));
        }
        if !seen.insert(*f) {
            e.push(duplicate(&fp, *f));
        }
    }
    const POLICIES: &[&str] = &["PreferDualStack", "RequireDualStack", "SingleStack"];
    if let Some(pol) = spec
        .g("ipFamilyPolicy")
        .as_str()
        .filter(|p| !POLICIES.contains(p))
    {
        e.push(not_supported(&sp.ch("ipFamilyPolicy"), pol, POLICIES));
    }
    let existing: Vec<&str> = old.map(|o| o.strs("clusterIPs")).unwrap_or_default();
    let mut bad = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && *ip == "None" {
            if ips.len() > 1 {
                bad = true;
                e.push(invalid(
                    &cp,
                    raw(),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        let errs = ip_legacy(&cp.idx(i), ip, &existing);
        bad |= !errs.is_empty();
        e.extend(errs);
    }
    if ips.len() > 2 {
        e.push(invalid(&cp, raw(), "may only hold up to 2 values"));
    }
    if bad {
        return e;
    }
    if ips.len() > 1 && !is_dual_stack(ips.iter().map(|ip| parse_ip_sloppy(ip).map(|i| is_v4(&i))))
    {
        e.push(invalid(
            &cp,
            raw(),
            "may specify no more than one IP for each IP family",
        ));
    }
    if !is_headless(spec) {
        for (i, (ip, fam)) in ips.iter().zip(spec.strs("ipFamilies")).enumerate() {
            let v6 = parse_ip_sloppy(ip).is_some_and(|a| !is_v4(&a));
            if fam == "IPv4" && v6 {
                e.push(invalid(
                    &cp.idx(i),
                    *ip,
                    &format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if fam == "IPv6" && !v6 {
                e.push(invalid(
                    &cp.idx(i),
                    *ip,
                    &format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
    e
}

// ---------------------------------------------------------------------------
// Endpoints / EndpointSlice
// ---------------------------------------------------------------------------

fn endpoint_subsets(subsets: &[Value], p: &P) -> Errs {
    let mut e = vec![];
    for (i, ss) in subsets.iter().enumerate() {
        let ip = p.idx(i);
        if ss.arr("addresses").is_empty() && ss.arr("notReadyAddresses").is_empty() {
            e.push(required(
                &ip,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for k in ["addresses", "notReadyAddresses"] {
            for (j, a) in ss.arr(k).iter().enumerate() {
                let ap = ip.ch(k).idx(j);
                e.extend(ip_legacy(&ap.ch("ip"), a.st("ip"), &[]));
                if !a.st("hostname").is_empty() {
                    e.extend(dns_label(a.st("hostname"), &ap.ch("hostname")));
                }
                if let Some(n) = a.g("nodeName").as_str() {
                    e.extend(name_check(name_subdomain, n, &ap.ch("nodeName")));
                }
                e.extend(endpoint_ip(a.st("ip"), &ap.ch("ip")));
            }
        }
        let ports = ss.arr("ports");
        for (j, port) in ports.iter().enumerate() {
            let pp = ip.ch("ports").idx(j);
            let name = port.st("name");
            if ports.len() > 1 && name.is_empty() {
                e.push(required(&pp.ch("name"), ""));
            } else if !name.is_empty() {
                e.extend(dns_label(name, &pp.ch("name")));
            }
            let n = port.int("port").unwrap_or(0);
            e.extend(
                is_valid_port_num(n)
                    .iter()
                    .map(|m| invalid(&pp.ch("port"), n, m)),
            );
            e.extend(protocol(port.st("protocol"), &pp.ch("protocol")));
            if let Some(ap) = port.g("appProtocol").as_str() {
                e.extend(qualified(ap, &pp.ch("appProtocol")));
            }
        }
    }
    e
}

fn endpoint_slice(obj: &Value, old: Option<&Value>, ns: bool) -> Errs {
    let mut e = core_object_meta(obj.g("metadata"), ns, name_subdomain, &P::new("metadata"));
    let at = obj.st("addressType");
    const TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
    match at {
        "" => e.push(required(&P::new("addressType"), "")),
        t if !TYPES.contains(&t) => e.push(not_supported(&P::new("addressType"), t, TYPES)),
        _ => {}
    }
    let pp = P::new("ports");
    let ports = obj.arr("ports");
    if ports.len() > 20000 {
        e.push(too_many(&pp, ports.len(), 20000));
    } else {
        let mut names = HashSet::new();
        for (i, port) in ports.iter().enumerate() {
            let ip = pp.idx(i);
            let name = port.st("name");
            if !name.is_empty() {
                e.extend(dns_label(name, &ip.ch("name")));
            }
            if !names.insert(name) {
                e.push(duplicate(&ip.ch("name"), name));
            }
            match port.g("protocol").as_str() {
                None => e.push(required(&ip.ch("protocol"), "")),
                Some(pr) if !PROTOCOLS.contains(&pr) => {
                    e.push(not_supported(&ip.ch("protocol"), pr, PROTOCOLS))
                }
                _ => {}
            }
            if let Some(ap) = port.g("appProtocol").as_str() {
                e.extend(qualified(ap, &ip.ch("appProtocol")));
            }
        }
    }
    if old.is_none_or(|o| !sem_eq(o.g("endpoints"), obj.g("endpoints"))) {
        e.extend(slice_endpoints(
            obj.arr("endpoints"),
            at,
            &P::new("endpoints"),
        ));
    }
    if let Some(o) = old {
        if o.st("addressType") != at {
            e.push(invalid(&P::new("addressType"), at, FIELD_IMMUTABLE));
        }
    }
    e
}

fn slice_endpoints(eps: &[Value], at: &str, p: &P) -> Errs {
    if eps.len() > 1000 {
        return vec![too_many(p, eps.len(), 1000)];
    }
    let mut e = vec![];
    for (i, ep) in eps.iter().enumerate() {
        let ip = p.idx(i);
        let ap = ip.ch("addresses");
        let addrs = ep.strs("addresses");
        if addrs.is_empty() {
            e.push(required(&ap, "must contain at least 1 address"));
        } else if addrs.len() > 100 {
            e.push(too_many(&ap, addrs.len(), 100));
        }
        for (j, a) in addrs.iter().enumerate() {
            let aip = ap.idx(j);
            match at {
                "IPv4" | "IPv6" => {
                    let errs = ip_legacy(&aip, a, &[]);
                    if errs.is_empty() {
                        let v4 = parse_ip_sloppy(a).is_some_and(|x| is_v4(&x));
                        if at == "IPv4" && !v4 {
                            e.push(invalid(&aip, *a, "must be an IPv4 address"));
                        }
                        if at == "IPv6" && v4 {
                            e.push(invalid(&aip, *a, "must be an IPv6 address"));
                        }
                        e.extend(endpoint_ip(a, &aip));
                    }
                    e.extend(errs);
                }
                "FQDN" => e.extend(fqdn(a, &aip)),
                _ => {}
            }
        }
        if let Some(n) = ep.g("nodeName").as_str() {
            e.extend(name_check(name_subdomain, n, &ip.ch("nodeName")));
        }
        let tp = ip.ch("deprecatedTopology");
        let topo = ep.smap("deprecatedTopology");
        if topo.len() > 16 {
            e.push(too_many(&tp, topo.len(), 16));
        }
        e.extend(labels(ep.g("deprecatedTopology"), &tp));
        if let Some(h) = ep.g("hostname").as_str() {
            e.extend(dns_label(h, &ip.ch("hostname")));
        }
        let fz = ep.g("hints").arr("forZones");
        let zp = ip.ch("hints").ch("forZones");
        if fz.len() > 8 {
            e.push(too_many(&zp, fz.len(), 8));
            continue;
        }
        let mut zones = HashSet::new();
        for (j, z) in fz.iter().enumerate() {
            let np = zp.idx(j).ch("name");
            if !zones.insert(z.st("name")) {
                e.push(duplicate(&np, z.st("name")));
            }
            e.extend(msgs(&np, z.st("name"), is_valid_label_value(z.st("name"))));
        }
    }
    e
}

/// `IsFullyQualifiedDomainName`.
fn fqdn(name: &str, p: &P) -> Errs {
    if name.is_empty() {
        return vec![required(p, "")];
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let sub = is_dns1123_subdomain(name);
    if !sub.is_empty() {
        return vec![invalid(p, name, &sub.join(","))];
    }
    if name.split('.').count() < 2 {
        return vec![invalid(
            p,
            name,
            "should be a domain with at least two segments separated by dots",
        )];
    }
    for l in name.split('.') {
        let m = is_dns1123_label(l);
        if !m.is_empty() {
            return vec![invalid(p, l, &m.join(","))];
        }
    }
    vec![]
}

// ---------------------------------------------------------------------------
// Node, Event, ConfigMap, Secret, Lease
// ---------------------------------------------------------------------------

fn node_taints(list: &[Value], p: &P) -> Errs {
    let mut e = vec![];
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    for (i, t) in list.iter().enumerate() {
        let ip = p.idx(i);
        let (key, val, eff) = (t.st("key"), t.st("value"), t.st("effect"));
        e.extend(qualified(key, &ip.ch("key")));
        let m = is_valid_label_value(val);
        if !m.is_empty() {
            e.push(invalid(&ip.ch("value"), val, &m.join(";")));
        }
        e.extend(taint_effect(eff, false, &ip.ch("effect")));
        if !seen.insert((eff, key)) {
            let time = if t.has("timeAdded") {
                "(*v1.Time)(0xc000000000)"
            } else {
                "(*v1.Time)(nil)"
            };
            let raw = format!(
                "core.Taint{{Key:{}, Value:{}, Effect:{}, TimeAdded:{time}}}",
                go_quote(key),
                go_quote(val),
                go_quote(eff)
            );
            let mut d = duplicate(&ip, Bv::Raw(raw));
            d.message
                .push_str(": taints must be unique by key and effect pair");
            e.push(d);
        }
    }
    e
}

fn node_annotations(ann: &Value, p: &P) -> Errs {
    const TAINTS: &str = "scheduler.alpha.kubernetes.io/taints";
    let t = ann.st(TAINTS);
    if t.is_empty() {
        return vec![];
    }
    match serde_json::from_str::<Value>(t) {
        Ok(Value::Array(list)) => node_taints(&list, &p.ch(TAINTS)),
        Ok(_) => vec![invalid(
            p,
            TAINTS,
            "json: cannot unmarshal into Go value of type []core.Taint",
        )],
        Err(err) => vec![invalid(p, TAINTS, &err.to_string())],
    }
}

fn node_resources(node: &Value) -> Errs {
    let mut e = vec![];
    for k in ["capacity", "allocatable"] {
        let base = P::new("status").ch(k);
        for (name, q) in node.g("status").g(k).as_object().into_iter().flatten() {
            let rp = base.ch(name);
            match Quantity::from_json(q) {
                Some(mut q) => {
                    q.round_up_milli();
                    e.extend(quantity_value(name, &q, &rp));
                }
                None => e.push(invalid(&rp, Bv::from(q), QUANTITY_ERR)),
            }
        }
    }
    e
}

/// Effective `podCIDRs` after v1 -> internal conversion (`podCIDR` is authoritative).
fn node_pod_cidrs(spec: &Value) -> Vec<&str> {
    let (single, list) = (spec.st("podCIDR"), spec.strs("podCIDRs"));
    if !single.is_empty() && (list.is_empty() || list[0] != single) {
        vec![single]
    } else {
        list
    }
}

fn node(obj: &Value, old: Option<&Value>, ns: bool) -> Errs {
    let mp = P::new("metadata");
    let (meta, spec) = (obj.g("metadata"), obj.g("spec"));
    let mut e = match old {
        Some(o) => core_object_meta_update(meta, o.g("metadata"), &mp),
        None => core_object_meta(meta, ns, name_subdomain, &mp),
    };
    e.extend(node_annotations(
        meta.g("annotations"),
        &mp.ch("annotations"),
    ));
    let taints = spec.arr("taints");
    let Some(old) = old else {
        if !taints.is_empty() {
            e.extend(node_taints(taints, &mp.ch("taints")));
        }
        e.extend(node_resources(obj));
        let cidrs = node_pod_cidrs(spec);
        let cp = P::new("spec").ch("podCIDRs");
        for (i, c) in cidrs.iter().enumerate() {
            e.extend(cidr_legacy(&cp.idx(i), c, &[]));
        }
        if cidrs.len() > 1 {
            let dual = is_dual_stack(
                cidrs
                    .iter()
                    .map(|c| parse_cidr_sloppy(c).map(|(ip, _)| matches!(ip, IpAddr::V4(_)))),
            );
            if !dual || cidrs.len() > 2 {
                e.push(invalid(
                    &cp,
                    Bv::Raw(go_strings(Some(cidrs))),
                    "may specify no more than one CIDR for each IP family",
                ));
            }
        }
        return e;
    };
    e.extend(node_resources(obj));
    let mut addrs = HashSet::new();
    for (i, a) in obj.g("status").arr("addresses").iter().enumerate() {
        if !addrs.insert((a.st("type"), a.st("address"))) {
            let raw = format!(
                "core.NodeAddress{{Type:{}, Address:{}}}",
                go_quote(a.st("type")),
                go_quote(a.st("address"))
            );
            e.push(duplicate(
                &P::new("status").ch("addresses").idx(i),
                Bv::Raw(raw),
            ));
        }
    }
    let (nc, oc) = (node_pod_cidrs(spec), node_pod_cidrs(old.g("spec")));
    let cp = P::new("spec").ch("podCIDRs");
    const CIDR_MSG: &str = "node updates may not change podCIDR except from \"\" to valid";
    if !oc.is_empty() {
        if oc.len() != nc.len() {
            e.push(forbidden(&cp, CIDR_MSG));
        } else {
            e.extend(
                oc.iter()
                    .zip(&nc)
                    .filter(|(a, b)| a != b)
                    .map(|_| forbidden(&cp, CIDR_MSG)),
            );
        }
    }
    let opid = old.g("spec").st("providerID");
    if !opid.is_empty() && opid != spec.st("providerID") {
        e.push(forbidden(
            &P::new("spec").ch("providerID"),
            "node updates may not change providerID except from \"\" to valid",
        ));
    }
    if !taints.is_empty() {
        e.extend(node_taints(taints, &mp.ch("taints")));
    }
    if spec.st("externalID") != old.g("spec").st("externalID") {
        e.push(forbidden(
            &P::new("spec").ch("externalID"),
            "may not be updated",
        ));
    }
    e
}

/// `legacyValidateEvent` (the only validation for core/v1 Events).
fn event(ev: &Value) -> Errs {
    let mut e = vec![];
    let ns = ev.g("metadata").st("namespace");
    let io_ns = ev.g("involvedObject").st("namespace");
    let iop = P::new("involvedObject").ch("namespace");
    const MISMATCH: &str = "does not match event.namespace";
    if !ev.has("eventTime") {
        if io_ns.is_empty() {
            if !ns.is_empty() && ns != "default" {
                e.push(invalid(&iop, io_ns, MISMATCH));
            }
        } else if ns != io_ns {
            e.push(invalid(&iop, io_ns, MISMATCH));
        }
    } else {
        if io_ns.is_empty() && ns != "default" && ns != "kube-system" {
            e.push(invalid(&iop, io_ns, MISMATCH));
        }
        let rc = ev.st("reportingComponent");
        let rcp = P::new("reportingComponent");
        if rc.is_empty() {
            e.push(required(&rcp, ""));
        }
        e.extend(qualified(rc, &rcp));
        for (k, limit, req) in [
            ("reportingInstance", 128, true),
            ("action", 128, true),
            ("reason", 128, true),
            ("message", 1024, false),
        ] {
            let v = ev.st(k);
            if req && v.is_empty() {
                e.push(required(&P::new(k), ""));
            }
            if v.len() > limit {
                e.push(invalid(
                    &P::new(k),
                    "",
                    &format!("can have at most {limit} characters"),
                ));
            }
        }
    }
    e.extend(dns_subdomain(ns, &P::new("namespace")));
    e
}

fn immutable_data(new: &Value, old: &Value, keys: &[&str], secret: bool) -> Errs {
    if old.g("immutable").as_bool() != Some(true) {
        return vec![];
    }
    const MSG: &str = "field is immutable when `immutable` is set";
    let mut e = vec![];
    if new.g("immutable").as_bool() != Some(true) {
        e.push(forbidden(&P::new("immutable"), MSG));
    }
    for k in keys {
        let data = |v: &Value| {
            if secret {
                secret_data(v)
            } else {
                v.g(k).clone()
            }
        };
        if !sem_eq(&data(new), &data(old)) {
            e.push(forbidden(&P::new(k), MSG));
        }
    }
    e
}

/// Secret `data` with `stringData` merged in (v1 -> internal conversion).
fn secret_data(s: &Value) -> Value {
    let mut d = s.g("data").clone();
    for (k, v) in smap(s.g("stringData")) {
        if !d.is_object() {
            d = Value::Object(Default::default());
        }
        d[k] = Value::from(b64_encode(v.as_bytes()));
    }
    d
}

const MAX_SECRET_SIZE: usize = 1024 * 1024;

fn configmap(cm: &Value) -> Errs {
    let mut e = vec![];
    let (data, bin) = (cm.g("data"), cm.g("binaryData"));
    let mut total = 0;
    for (k, v) in smap(data) {
        let kp = P::new("data").key(k);
        e.extend(msgs(&kp, k, is_config_map_key(k)));
        if bin.get(k).is_some() {
            e.push(invalid(&kp, k, "duplicate of key present in binaryData"));
        }
        total += v.len();
    }
    for (k, v) in smap(bin) {
        e.extend(msgs(&P::new("binaryData").key(k), k, is_config_map_key(k)));
        total += b64_decode(v).map_or(v.len(), |b| b.len());
    }
    if total > MAX_SECRET_SIZE {
        e.push(too_long(&P::new(""), MAX_SECRET_SIZE));
    }
    e
}

/// A Go-like `json.Unmarshal` error for docker config payloads.
fn json_object_error(bytes: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(_)) | Ok(Value::Null) => None,
        Ok(v) => {
            let t = match v {
                Value::Array(_) => "array",
                Value::String(_) => "string",
                Value::Number(_) => "number",
                _ => "bool",
            };
            Some(format!(
                "json: cannot unmarshal {t} into Go value of type map[string]interface {{}}"
            ))
        }
        Err(err) if err.is_eof() => Some("unexpected end of JSON input".into()),
        Err(_) => {
            let c = bytes
                .iter()
                .find(|c| !c.is_ascii_whitespace())
                .copied()
                .unwrap_or(b'?') as char;
            Some(format!(
                "invalid character '{c}' looking for beginning of value"
            ))
        }
    }
}

fn secret(s: &Value) -> Errs {
    let mut e = vec![];
    let dp = P::new("data");
    let data = secret_data(s);
    let decoded: Vec<(&str, Vec<u8>)> = smap(&data)
        .into_iter()
        .map(|(k, v)| (k, b64_decode(v).unwrap_or_default()))
        .collect();
    let mut total = 0;
    for (k, v) in &decoded {
        e.extend(msgs(&dp.key(k), k, is_config_map_key(k)));
        total += v.len();
    }
    if total > MAX_SECRET_SIZE {
        e.push(too_long(&dp, MAX_SECRET_SIZE));
    }
    let get = |k: &str| {
        decoded
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.as_slice())
    };
    match s.st("type") {
        "kubernetes.io/service-account-token" => {
            const SA: &str = "kubernetes.io/service-account.name";
            if s.g("metadata").g("annotations").st(SA).is_empty() {
                e.push(required(&P::new("metadata").ch("annotations").key(SA), ""));
            }
        }
        t @ ("kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson") => {
            let key = if t == "kubernetes.io/dockercfg" {
                ".dockercfg"
            } else {
                ".dockerconfigjson"
            };
            match get(key) {
                None => e.push(required(&dp.key(key), "")),
                Some(b) => e.extend(
                    json_object_error(b)
                        .map(|m| invalid(&dp.key(key), "<secret contents redacted>", &m)),
                ),
            }
        }
        "kubernetes.io/basic-auth" if get("username").is_none() && get("password").is_none() => {
            e.push(required(&dp.key("username"), ""));
            e.push(required(&dp.key("password"), ""));
        }
        "kubernetes.io/ssh-auth" if get("ssh-privatekey").is_none_or(|b| b.is_empty()) => {
            e.push(required(&dp.key("ssh-privatekey"), ""))
        }
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if get(k).is_none() {
                    e.push(required(&dp.key(k), ""));
                }
            }
        }
        _ => {}
    }
    e
}

fn lease_spec(spec: &Value, p: &P) -> Errs {
    let mut e = vec![];
    if let Some(d) = spec.int("leaseDurationSeconds").filter(|d| *d <= 0) {
        e.push(invalid(
            &p.ch("leaseDurationSeconds"),
            d,
            "must be greater than 0",
        ));
    }
    if let Some(t) = spec.int("leaseTransitions").filter(|t| *t < 0) {
        e.push(invalid(&p.ch("leaseTransitions"), t, IS_NEGATIVE));
    }
    let strategy = spec.g("strategy").as_str();
    if let Some(st) = strategy {
        let sp = p.ch("strategy").ch("strategy");
        if !st.contains('/') {
            if st != "OldestEmulationVersion" {
                e.push(not_supported(&sp, st, &["OldestEmulationVersion"]));
            }
        } else {
            e.extend(qualified(st, &sp));
        }
    }
    if !spec.st("preferredHolder").is_empty() && strategy.is_none_or(str::is_empty) {
        e.push(forbidden(
            &p.ch("preferredHolder"),
            "may only be specified if `strategy` is defined",
        ));
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults::apply_defaults;
    use serde_json::json;

    /// RFC 7386 merge patch, used to derive cases from valid base objects.
    fn merge(mut base: Value, patch: Value) -> Value {
        match (base.as_object_mut(), patch) {
            (Some(b), Value::Object(p)) => {
                for (k, v) in p {
                    if v.is_null() {
                        b.remove(&k);
                    } else {
                        let cur = b.remove(&k).unwrap_or(Value::Null);
                        b.insert(k, merge(cur, v));
                    }
                }
                base
            }
            (_, p) => p,
        }
    }

    fn pod(patch: Value) -> Value {
        let base = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "resourceVersion": "1"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        merge(base, patch)
    }
    #[test]
    fn a_pod_status_update_validates_the_metadata_not_the_spec() {
        let fields = |errs: Vec<FieldError>| -> Vec<String> {
            errs.into_iter()
                .map(|e| format!("{}: {}", e.field, e.reason))
                .collect()
        };
        let old = pod(json!({}));
        let status = pod(json!({"status": {"phase": "Running"}}));
        assert_eq!(
            fields(pod_status_update(&status, &old, true)),
            Vec::<String>::new()
        );
        // The spec is the stored one (prepare_update copies it): not validated again.
        let stored_bad = pod(json!({"spec": {"containers": [{"name": "c", "image": " x"}]}}));
        assert_eq!(
            fields(pod_status_update(&stored_bad, &stored_bad, true)),
            Vec::<String>::new()
        );
        assert!(!validate("Pod", &stored_bad, Some(&stored_bad), true).is_empty());
        // Metadata still is: labels, immutable fields, the mirror-pod annotation.
        let relabelled = pod(json!({"metadata": {"labels": {"-bad-": "x"}}}));
        let errs = fields(pod_status_update(&relabelled, &old, true));
        assert!(!errs.is_empty());
        assert!(
            errs.iter()
                .all(|e| e == "metadata.labels: FieldValueInvalid"),
            "{errs:?}"
        );
        let renamed = pod(json!({"metadata": {"uid": "other"}}));
        assert!(
            !pod_status_update(&renamed, &pod(json!({"metadata": {"uid": "u"}})), true).is_empty()
        );
        let mirrored = pod(json!({"metadata": {"annotations": {MIRROR_ANNOTATION: "x"}}}));
        assert_eq!(
            fields(pod_status_update(&mirrored, &old, true)),
            [
                format!("metadata.annotations[{MIRROR_ANNOTATION}]: FieldValueForbidden"),
                format!("metadata.annotations[{MIRROR_ANNOTATION}]: FieldValueInvalid"),
            ]
        );
    }

    #[test]
    fn a_pod_status_update_validates_the_status_as_upstream() {
        let msgs = |old: Value, new: Value| -> Vec<String> {
            pod_status_update(&pod(new), &pod(old), true)
                .into_iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect()
        };
        let ok: Vec<String> = vec![];
        let terminated = json!({"name": "c", "state": {"terminated": {"exitCode": 0}}});
        let failed = json!({"name": "c", "state": {"terminated": {"exitCode": 1}}});
        let running = json!({"name": "c", "state": {"running": {}}});
        let never = |statuses: Value| json!({"spec": {"restartPolicy": "Never"}, "status": {"containerStatuses": statuses}});
        let on_failure = |statuses: Value| json!({"spec": {"restartPolicy": "OnFailure"}, "status": {"containerStatuses": statuses}});
        let cases: Vec<(&str, Value, Value, Vec<String>)> = vec![
            ("standard and qualified condition types", json!({}),
                json!({"status": {"conditions": [{"type": "Ready"}, {"type": "example.com/Custom"}, {"type": "ContainersReady"}]}}),
                ok.clone()),
            ("a condition type that is no qualified name", json!({}),
                json!({"status": {"conditions": [{"type": "Ready"}, {"type": "not ok"}]}}),
                vec!["metadata.conditions[1].Type: Invalid value: \"not ok\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".into()]),
            ("nominatedNodeName changed to a bad name", json!({}),
                json!({"status": {"nominatedNodeName": "Node_1"}}),
                vec!["status.nominatedNodeName: Invalid value: \"Node_1\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into()]),
            ("a bad nominatedNodeName left as it was", json!({"status": {"nominatedNodeName": "Node_1"}}),
                json!({"status": {"nominatedNodeName": "Node_1"}}), ok.clone()),
            ("qosClass changed", json!({"status": {"qosClass": "BestEffort"}}),
                json!({"status": {"qosClass": "Guaranteed"}}),
                vec!["status.qosClass: Invalid value: \"Guaranteed\": field is immutable".into()]),
            ("terminated back to running under Never", never(json!([terminated])), never(json!([running])),
                vec!["status.containerStatuses[0].state: Forbidden: may not be transitioned to non-terminated state".into()]),
            ("the same under Always", json!({"spec": {"restartPolicy": "Always"}, "status": {"containerStatuses": [terminated]}}),
                json!({"spec": {"restartPolicy": "Always"}, "status": {"containerStatuses": [running]}}), ok.clone()),
            ("failed back to running under OnFailure", on_failure(json!([failed])), on_failure(json!([running])), ok.clone()),
            ("succeeded back to running under OnFailure", on_failure(json!([terminated])), on_failure(json!([running])),
                vec!["status.containerStatuses[0].state: Forbidden: may not be transitioned to non-terminated state".into()]),
            ("dual-stack pod IPs", json!({}),
                json!({"status": {"podIP": "10.42.0.5", "podIPs": [{"ip": "10.42.0.5"}, {"ip": "fd00::5"}]}}), ok.clone()),
            ("a pod IP that is no IP", json!({}),
                json!({"status": {"podIPs": [{"ip": "10.42.0.256"}]}}),
                vec!["status.podIPs[0]: Invalid value: \"10.42.0.256\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".into()]),
            ("two pod IPs of one family, the same twice", json!({}),
                json!({"status": {"podIPs": [{"ip": "10.42.0.5"}, {"ip": "10.42.0.5"}]}}),
                vec![
                    "status.podIPs: Invalid value: []core.PodIP{core.PodIP{IP:\"10.42.0.5\"}, core.PodIP{IP:\"10.42.0.5\"}}: may specify no more than one IP for each IP family".into(),
                    "status.podIPs[1]: Duplicate value: core.PodIP{IP:\"10.42.0.5\"}".into(),
                ]),
            ("hostIPs not led by hostIP", json!({}),
                json!({"status": {"hostIP": "192.0.2.1", "hostIPs": [{"ip": "192.0.2.2"}]}}),
                vec!["status.hostIPs[0].ip: Invalid value: \"192.0.2.2\": must be equal to `hostIP`".into()]),
        ];
        for (what, old, new, want) in cases {
            assert_eq!(msgs(old, new), want, "{what}");
        }
    }

    fn ctr(patch: Value) -> Value {
        pod(json!({"spec": {"containers": [merge(json!({"name": "c", "image": "nginx"}), patch)]}}))
    }
    fn rc(patch: Value) -> Value {
        let base = json!({"metadata": {"name": "r", "namespace": "default", "resourceVersion": "1"},
            "spec": {"template": {"metadata": {"labels": {"app": "a"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        merge(base, patch)
    }
    fn svc(patch: Value) -> Value {
        let base = json!({"metadata": {"name": "s", "namespace": "default", "resourceVersion": "1"},
            "spec": {"selector": {"app": "a"}, "ports": [{"port": 80}], "clusterIP": "10.0.0.10"}});
        merge(base, patch)
    }
    fn meta(name: &str, ns: Option<&str>) -> Value {
        let mut m = json!({"name": name, "resourceVersion": "1"});
        if let Some(ns) = ns {
            m["namespace"] = json!(ns);
        }
        m
    }
    fn namespaced(kind: &str) -> bool {
        !matches!(kind, "Namespace" | "Node")
    }

    struct Case {
        name: &'static str,
        kind: &'static str,
        obj: Value,
        old: Option<Value>,
        want: Vec<(&'static str, &'static str)>,
    }
    fn case(
        name: &'static str,
        kind: &'static str,
        obj: Value,
        want: &[(&'static str, &'static str)],
    ) -> Case {
        Case {
            name,
            kind,
            obj,
            old: None,
            want: want.to_vec(),
        }
    }
    fn update(
        name: &'static str,
        kind: &'static str,
        obj: Value,
        old: Value,
        want: &[(&'static str, &'static str)],
    ) -> Case {
        Case {
            name,
            kind,
            obj,
            old: Some(old),
            want: want.to_vec(),
        }
    }

    const REQ: &str = "FieldValueRequired";
    const INV: &str = "FieldValueInvalid";
    const NSUP: &str = "FieldValueNotSupported";
    const DUP: &str = "FieldValueDuplicate";
    const FORB: &str = "FieldValueForbidden";
    const NF: &str = "FieldValueNotFound";

    /// Defaults each object (as the apiserver does on decode), validates, and compares
    /// the (field, reason) list in order.
    fn run(cases: Vec<Case>) {
        let mut failures = vec![];
        for mut c in cases {
            apply_defaults(c.kind, &mut c.obj);
            if let Some(o) = c.old.as_mut() {
                apply_defaults(c.kind, o);
            }
            let got = validate(c.kind, &c.obj, c.old.as_ref(), namespaced(c.kind));
            let pairs: Vec<(&str, &str)> =
                got.iter().map(|e| (e.field.as_str(), e.reason)).collect();
            if pairs != c.want {
                failures.push(format!("{}: want {:?}\n  got {:#?}", c.name, c.want, got));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn validation_table() {
        let cm = |data: Value| json!({"metadata": meta("cm", Some("default")), "data": data});
        let sec = |patch: Value| merge(json!({"metadata": meta("s", Some("default"))}), patch);
        let vol_pod = |vols: Value, mounts: Value| {
            pod(
                json!({"spec": {"volumes": vols, "containers": [{"name": "c", "image": "nginx", "volumeMounts": mounts}]}}),
            )
        };
        run(vec![
            // ---- Pod
            case("pod ok", "Pod", pod(json!({})), &[]),
            case(
                "pod no containers",
                "Pod",
                pod(json!({"spec": {"containers": []}})),
                &[("spec.containers", REQ)],
            ),
            case(
                "pod no image",
                "Pod",
                ctr(json!({"image": null})),
                &[("spec.containers[0].image", REQ)],
            ),
            case(
                "pod bad name",
                "Pod",
                pod(json!({"metadata": {"name": "Foo"}})),
                &[("metadata.name", INV)],
            ),
            case(
                "pod no namespace",
                "Pod",
                pod(json!({"metadata": {"namespace": null}})),
                &[("metadata.namespace", REQ)],
            ),
            case(
                "pod bad container name",
                "Pod",
                ctr(json!({"name": "Bad_Name"})),
                &[("spec.containers[0].name", INV)],
            ),
            case(
                "pod dup container",
                "Pod",
                pod(
                    json!({"spec": {"containers": [{"name": "c", "image": "a"}, {"name": "c", "image": "b"}]}}),
                ),
                &[("spec.containers[1].name", DUP)],
            ),
            case(
                "pod port range",
                "Pod",
                ctr(json!({"ports": [{"containerPort": 70000}]})),
                &[("spec.containers[0].ports[0].containerPort", INV)],
            ),
            case(
                "pod port protocol",
                "Pod",
                ctr(json!({"ports": [{"containerPort": 80, "protocol": "FOO"}]})),
                &[("spec.containers[0].ports[0].protocol", NSUP)],
            ),
            case(
                "pod dup port names",
                "Pod",
                ctr(
                    json!({"ports": [{"name": "http", "containerPort": 80}, {"name": "http", "containerPort": 81}]}),
                ),
                &[("spec.containers[0].ports[1].name", DUP)],
            ),
            case(
                "pod pull policy",
                "Pod",
                ctr(json!({"imagePullPolicy": "Sometimes"})),
                &[("spec.containers[0].imagePullPolicy", NSUP)],
            ),
            case(
                "pod restart policy",
                "Pod",
                pod(json!({"spec": {"restartPolicy": "Sometimes"}})),
                &[("spec.restartPolicy", NSUP)],
            ),
            case(
                "pod dns policy",
                "Pod",
                pod(json!({"spec": {"dnsPolicy": "Bogus"}})),
                &[("spec.dnsPolicy", NSUP)],
            ),
            case(
                "pod mount unknown volume",
                "Pod",
                vol_pod(json!([]), json!([{"name": "v", "mountPath": "/x"}])),
                &[("spec.containers[0].volumeMounts[0].name", NF)],
            ),
            case(
                "pod two volume sources",
                "Pod",
                vol_pod(
                    json!([{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}]),
                    json!([]),
                ),
                &[("spec.volumes[0].hostPath", FORB)],
            ),
            case(
                "pod dup volumes",
                "Pod",
                vol_pod(
                    json!([{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]),
                    json!([]),
                ),
                &[("spec.volumes[1].name", DUP)],
            ),
            case(
                "pod bad volume name",
                "Pod",
                vol_pod(json!([{"name": "V_1", "emptyDir": {}}]), json!([])),
                &[("spec.volumes[0].name", INV)],
            ),
            case(
                "pod requests > limits",
                "Pod",
                ctr(json!({"resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}})),
                &[("spec.containers[0].resources.requests", INV)],
            ),
            case(
                "pod bad quantity",
                "Pod",
                ctr(json!({"resources": {"requests": {"memory": "12x"}}})),
                &[("spec.containers[0].resources.requests[memory]", INV)],
            ),
            case(
                "pod unknown resource",
                "Pod",
                ctr(json!({"resources": {"requests": {"gpu": "1"}}})),
                &[
                    ("spec.containers[0].resources.requests[gpu]", INV),
                    ("spec.containers[0].resources.requests[gpu]", INV),
                ],
            ),
            case(
                "pod deadline",
                "Pod",
                pod(json!({"spec": {"activeDeadlineSeconds": 0}})),
                &[("spec.activeDeadlineSeconds", INV)],
            ),
            case(
                "pod env name",
                "Pod",
                ctr(json!({"env": [{"name": "A=B", "value": "x"}]})),
                &[("spec.containers[0].env[0].name", INV)],
            ),
            case(
                "pod env fieldRef",
                "Pod",
                ctr(
                    json!({"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}}]}),
                ),
                &[(
                    "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath",
                    NSUP,
                )],
            ),
            case(
                "pod toleration exists+value",
                "Pod",
                pod(
                    json!({"spec": {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}}),
                ),
                &[("spec.tolerations[0].operator", INV)],
            ),
            case(
                "pod toleration effect",
                "Pod",
                pod(
                    json!({"spec": {"tolerations": [{"key": "k", "operator": "Exists", "effect": "Sometimes"}]}}),
                ),
                &[("spec.tolerations[0].effect", NSUP)],
            ),
            case(
                "pod node selector",
                "Pod",
                pod(json!({"spec": {"nodeSelector": {"k": "bad value"}}})),
                &[("spec.nodeSelector", INV)],
            ),
            case(
                "pod host network port",
                "Pod",
                pod(
                    json!({"spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80, "hostPort": 81}]}]}}),
                ),
                &[("spec.containers[0].ports[0].hostPort", INV)],
            ),
            case(
                "pod liveness success threshold",
                "Pod",
                ctr(json!({"livenessProbe": {"tcpSocket": {"port": 80}, "successThreshold": 2}})),
                &[("spec.containers[0].livenessProbe.successThreshold", INV)],
            ),
            case(
                "pod probe without handler",
                "Pod",
                ctr(json!({"readinessProbe": {"periodSeconds": 5}})),
                &[("spec.containers[0].readinessProbe", REQ)],
            ),
            case(
                "pod label key",
                "Pod",
                pod(json!({"metadata": {"labels": {"-bad": "x"}}})),
                &[("metadata.labels", INV)],
            ),
            case(
                "pod finalizer",
                "Pod",
                pod(json!({"metadata": {"finalizers": ["foo"]}})),
                &[("metadata.finalizers[0]", INV)],
            ),
            case(
                "pod ephemeral on create",
                "Pod",
                pod(json!({"spec": {"ephemeralContainers": [{"name": "e", "image": "busybox"}]}})),
                &[("spec.ephemeralContainers", FORB)],
            ),
            update(
                "pod update restartPolicy",
                "Pod",
                pod(json!({"spec": {"restartPolicy": "Never"}})),
                pod(json!({})),
                &[("spec", FORB)],
            ),
            update(
                "pod update image",
                "Pod",
                ctr(json!({"image": "nginx:2", "imagePullPolicy": "Always"})),
                pod(json!({})),
                &[],
            ),
            update(
                "pod update add toleration",
                "Pod",
                pod(json!({"spec": {"tolerations": [{"key": "k", "operator": "Exists"}]}})),
                pod(json!({})),
                &[],
            ),
            update(
                "pod update rename",
                "Pod",
                pod(json!({"metadata": {"name": "q"}})),
                pod(json!({})),
                &[("metadata.name", INV), ("metadata.name", INV)],
            ),
            update(
                "pod update no resourceVersion",
                "Pod",
                pod(json!({"metadata": {"resourceVersion": null}})),
                pod(json!({})),
                &[
                    ("metadata.resourceVersion", INV),
                    ("metadata.resourceVersion", INV),
                ],
            ),
            // ---- ReplicationController
            case("rc ok", "ReplicationController", rc(json!({})), &[]),
            case(
                "rc selector mismatch",
                "ReplicationController",
                rc(json!({"spec": {"selector": {"app": "b"}}})),
                &[("spec.template.metadata.labels", INV)],
            ),
            case(
                "rc restart policy",
                "ReplicationController",
                rc(json!({"spec": {"template": {"spec": {"restartPolicy": "Never"}}}})),
                &[("spec.template.spec.restartPolicy", NSUP)],
            ),
            case(
                "rc replicas",
                "ReplicationController",
                rc(json!({"spec": {"replicas": -1}})),
                &[("spec.replicas", INV)],
            ),
            case(
                "rc min ready",
                "ReplicationController",
                rc(json!({"spec": {"minReadySeconds": -1}})),
                &[("spec.minReadySeconds", INV)],
            ),
            case(
                "rc no template",
                "ReplicationController",
                rc(json!({"spec": {"template": null}})),
                &[("spec.selector", REQ), ("spec.template", REQ)],
            ),
            update(
                "rc update selector",
                "ReplicationController",
                rc(json!({"spec": {"selector": {"app": "a"}}})),
                rc(json!({})),
                &[],
            ),
            // ---- Service
            case("svc ok", "Service", svc(json!({})), &[]),
            case(
                "svc bad name",
                "Service",
                svc(json!({"metadata": {"name": "1svc"}})),
                &[("metadata.name", INV)],
            ),
            case(
                "svc no ports",
                "Service",
                svc(json!({"spec": {"ports": []}})),
                &[("spec.ports", REQ)],
            ),
            case(
                "svc headless no ports",
                "Service",
                svc(json!({"spec": {"ports": [], "clusterIP": "None"}})),
                &[],
            ),
            case(
                "svc port range",
                "Service",
                svc(json!({"spec": {"ports": [{"port": 70000}]}})),
                &[
                    ("spec.ports[0].port", INV),
                    ("spec.ports[0].targetPort", INV),
                ],
            ),
            case(
                "svc unnamed ports",
                "Service",
                svc(json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}})),
                &[("spec.ports[0].name", REQ), ("spec.ports[1].name", REQ)],
            ),
            case(
                "svc dup ports",
                "Service",
                svc(
                    json!({"spec": {"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}}),
                ),
                &[("spec.ports[1]", DUP)],
            ),
            case(
                "svc target port name",
                "Service",
                svc(json!({"spec": {"ports": [{"port": 80, "targetPort": "Http"}]}})),
                &[("spec.ports[0].targetPort", INV)],
            ),
            case(
                "svc bad type",
                "Service",
                svc(json!({"spec": {"type": "Foo"}})),
                &[("spec.type", NSUP)],
            ),
            case(
                "svc external name missing",
                "Service",
                svc(json!({"spec": {"type": "ExternalName", "clusterIP": null, "selector": null}})),
                &[("spec.externalName", REQ)],
            ),
            case(
                "svc nodePort on ClusterIP",
                "Service",
                svc(json!({"spec": {"ports": [{"port": 80, "nodePort": 30000}]}})),
                &[("spec.ports[0].nodePort", FORB)],
            ),
            case(
                "svc bad clusterIP",
                "Service",
                svc(json!({"spec": {"clusterIP": "abc"}})),
                &[("spec.clusterIPs[0]", INV)],
            ),
            case(
                "svc affinity",
                "Service",
                svc(json!({"spec": {"sessionAffinity": "Sticky"}})),
                &[("spec.sessionAffinity", NSUP)],
            ),
            case(
                "svc nodeport ok",
                "Service",
                svc(
                    json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}}),
                ),
                &[],
            ),
            update(
                "svc update clusterIP",
                "Service",
                svc(json!({"spec": {"clusterIP": "10.0.0.11", "clusterIPs": ["10.0.0.11"]}})),
                svc(json!({})),
                &[("spec.clusterIPs[0]", INV)],
            ),
            update(
                "svc update omitted clusterIP",
                "Service",
                svc(json!({"spec": {"clusterIP": null}})),
                svc(json!({})),
                &[],
            ),
            update(
                "svc update to ExternalName",
                "Service",
                svc(
                    json!({"spec": {"type": "ExternalName", "externalName": "example.com", "selector": null}}),
                ),
                svc(json!({})),
                &[],
            ),
            // ---- Endpoints / EndpointSlice
            case(
                "endpoints bad ip",
                "Endpoints",
                json!({"metadata": meta("e", Some("default")), "subsets": [{"addresses": [{"ip": "1.2.3"}], "ports": [{"port": 80}]}]}),
                &[
                    ("subsets[0].addresses[0].ip", INV),
                    ("subsets[0].addresses[0].ip", INV),
                ],
            ),
            case(
                "endpoints loopback",
                "Endpoints",
                json!({"metadata": meta("e", Some("default")), "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 0}]}]}),
                &[
                    ("subsets[0].addresses[0].ip", INV),
                    ("subsets[0].ports[0].port", INV),
                ],
            ),
            case(
                "slice address type",
                "EndpointSlice",
                json!({"metadata": meta("es", Some("default")), "addressType": "IP", "endpoints": []}),
                &[("addressType", NSUP)],
            ),
            case(
                "slice wrong family",
                "EndpointSlice",
                json!({"metadata": meta("es", Some("default")), "addressType": "IPv6", "endpoints": [{"addresses": ["10.1.2.3"]}], "ports": [{"port": 80}]}),
                &[("endpoints[0].addresses[0]", INV)],
            ),
            // ---- PodTemplate
            case(
                "podtemplate ok",
                "PodTemplate",
                json!({"metadata": meta("t", Some("default")), "template": {"spec": {"containers": [{"name": "c", "image": "i",
                    "imagePullPolicy": "IfNotPresent", "terminationMessagePolicy": "File"}],
                    "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}}}),
                &[],
            ),
            case(
                "podtemplate no containers",
                "PodTemplate",
                json!({"metadata": meta("t", Some("default")), "template": {"spec": {"containers": [],
                    "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}}}),
                &[("template.spec.containers", REQ)],
            ),
            // ---- ConfigMap / Secret
            case("cm ok", "ConfigMap", cm(json!({"a.b": "x"})), &[]),
            case(
                "cm bad key",
                "ConfigMap",
                cm(json!({"a b": "x"})),
                &[("data[a b]", INV)],
            ),
            case(
                "cm dot key",
                "ConfigMap",
                cm(json!({"..": "x"})),
                &[("data[..]", INV)],
            ),
            case(
                "cm dup binary",
                "ConfigMap",
                merge(cm(json!({"k": "x"})), json!({"binaryData": {"k": "eA=="}})),
                &[("data[k]", INV)],
            ),
            case(
                "cm too big",
                "ConfigMap",
                cm(json!({"k": "x".repeat(MAX_SECRET_SIZE + 1)})),
                &[("[]", "FieldValueTooLong")],
            ),
            update(
                "cm immutable",
                "ConfigMap",
                merge(cm(json!({"k": "y"})), json!({"immutable": true})),
                merge(cm(json!({"k": "x"})), json!({"immutable": true})),
                &[("data", FORB)],
            ),
            case(
                "secret dockerconfigjson",
                "Secret",
                sec(json!({"type": "kubernetes.io/dockerconfigjson", "data": {}})),
                &[("data[.dockerconfigjson]", REQ)],
            ),
            case(
                "secret sa token",
                "Secret",
                sec(json!({"type": "kubernetes.io/service-account-token"})),
                &[(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    REQ,
                )],
            ),
            case(
                "secret stringData key",
                "Secret",
                sec(json!({"stringData": {"a/b": "x"}})),
                &[("data[a/b]", INV)],
            ),
            update(
                "secret type",
                "Secret",
                sec(json!({"type": "Foo"})),
                sec(json!({})),
                &[("type", INV)],
            ),
            // ---- Namespace / Node / ServiceAccount
            case(
                "ns ok",
                "Namespace",
                json!({"metadata": meta("team-a", None)}),
                &[],
            ),
            case(
                "ns dots",
                "Namespace",
                json!({"metadata": meta("a.b", None)}),
                &[("metadata.name", INV)],
            ),
            case(
                "ns namespace forbidden",
                "Namespace",
                json!({"metadata": meta("a", Some("x"))}),
                &[("metadata.namespace", FORB)],
            ),
            case(
                "node bad cidr",
                "Node",
                json!({"metadata": meta("n1", None), "spec": {"podCIDR": "10.0.0.0/33"}}),
                &[("spec.podCIDRs[0]", INV)],
            ),
            case(
                "node taint effect",
                "Node",
                json!({"metadata": meta("n1", None), "spec": {"taints": [{"key": "k", "effect": "Never"}]}}),
                &[("metadata.taints[0].effect", NSUP)],
            ),
            update(
                "node podCIDR immutable",
                "Node",
                json!({"metadata": meta("n1", None), "spec": {"podCIDR": "10.0.1.0/24"}}),
                json!({"metadata": meta("n1", None), "spec": {"podCIDR": "10.0.0.0/24"}}),
                &[("spec.podCIDRs", FORB)],
            ),
            case(
                "sa ok",
                "ServiceAccount",
                json!({"metadata": meta("default", Some("default"))}),
                &[],
            ),
            // ---- Event / Lease / Scale
            case(
                "event ns mismatch",
                "Event",
                json!({"metadata": meta("e.1", Some("default")), "involvedObject": {"kind": "Pod", "namespace": "other"}}),
                &[("involvedObject.namespace", INV)],
            ),
            case(
                "event path segment name",
                "Event",
                json!({"metadata": meta("a/b", Some("default")), "involvedObject": {"kind": "Pod", "namespace": "default"}}),
                &[("metadata.name", INV)],
            ),
            case(
                "lease duration",
                "Lease",
                json!({"metadata": meta("l", Some("default")), "spec": {"leaseDurationSeconds": 0}}),
                &[("spec.leaseDurationSeconds", INV)],
            ),
            case(
                "scale replicas",
                "Scale",
                json!({"metadata": meta("r", Some("default")), "spec": {"replicas": -1}}),
                &[("spec.replicas", INV)],
            ),
        ]);
    }

    fn messages(kind: &str, mut obj: Value) -> Vec<String> {
        apply_defaults(kind, &mut obj);
        validate(kind, &obj, None, namespaced(kind))
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn ephemeral_containers_updates() {
        let with = |ecs: Value| {
            let mut p = pod(json!({"spec": {"ephemeralContainers": ecs}}));
            apply_defaults("Pod", &mut p);
            p
        };
        let dbg = json!({"name": "debugger", "image": "busybox", "stdin": true, "tty": true});
        let none = with(json!([]));
        let one = with(json!([dbg.clone()]));
        type Want = Vec<(&'static str, &'static str)>;
        let cases: Vec<(&str, Value, &Value, Want)> = vec![
            ("add one", one.clone(), &none, vec![]),
            (
                "add another",
                with(json!([dbg.clone(), {"name": "debugger2", "image": "agnhost"}])),
                &one,
                vec![],
            ),
            (
                "remove",
                none.clone(),
                &one,
                vec![("spec.ephemeralContainers", FORB)],
            ),
            (
                "change",
                with(json!([merge(dbg.clone(), json!({"image": "nginx"}))])),
                &one,
                vec![("spec.ephemeralContainers.debugger", FORB)],
            ),
            (
                "same name as a container",
                with(json!([{"name": "c", "image": "busybox"}])),
                &none,
                vec![("spec.ephemeralContainers[0].name", DUP)],
            ),
            (
                "unknown target",
                with(json!([merge(
                    dbg.clone(),
                    json!({"targetContainerName": "x"})
                )])),
                &none,
                vec![("spec.ephemeralContainers[0].targetContainerName", NF)],
            ),
            (
                "ports and probes",
                with(json!([merge(
                    dbg.clone(),
                    json!({"ports": [{"containerPort": 80}], "readinessProbe": {"exec": {"command": ["true"]}}})
                )])),
                &none,
                vec![
                    ("spec.ephemeralContainers[0].ports", FORB),
                    ("spec.ephemeralContainers[0].readinessProbe", FORB),
                ],
            ),
        ];
        for (name, new, old, want) in cases {
            let got = pod_ephemeral_containers_update(&new, old, true);
            let pairs: Vec<(&str, &str)> =
                got.iter().map(|e| (e.field.as_str(), e.reason)).collect();
            assert_eq!(pairs, want, "{name}: {got:#?}");
        }
        // A plain pod update still may not touch them.
        let got = validate("Pod", &one, Some(&none), true);
        assert!(
            got.iter().any(|e| e.field == "spec" && e.reason == FORB),
            "{got:#?}"
        );
    }

    #[test]
    fn exact_messages() {
        assert_eq!(
            messages("Pod", pod(json!({"metadata": {"name": "Foo"}}))),
            ["metadata.name: Invalid value: \"Foo\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]
        );
        assert_eq!(
            messages("Pod", ctr(json!({"imagePullPolicy": "Foo"}))),
            ["spec.containers[0].imagePullPolicy: Unsupported value: \"Foo\": supported values: \"Always\", \"IfNotPresent\", \"Never\""]
        );
        assert_eq!(
            messages("Pod", ctr(json!({"ports": [{"containerPort": 70000}]}))),
            ["spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"]
        );
        assert_eq!(
            messages("Pod", ctr(json!({"image": ""}))),
            ["spec.containers[0].image: Required value"]
        );
        assert_eq!(
            messages("ReplicationController", rc(json!({"spec": {"selector": {"app": "b"}}}))),
            ["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"a\"}: `selector` does not match template `labels`"]
        );
        assert_eq!(
            messages("Service", svc(json!({"spec": {"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}}))),
            ["spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}"]
        );
        assert_eq!(
            messages("Namespace", json!({"metadata": {"name": "a.b"}})),
            ["metadata.name: Invalid value: \"a.b\": must not contain dots"]
        );
        assert_eq!(
            messages(
                "ConfigMap",
                json!({"metadata": meta("c", Some("d")), "data": {"x": "y".repeat(MAX_SECRET_SIZE + 1)}})
            ),
            ["[]: Too long: may not be more than 1048576 bytes"]
        );
        assert_eq!(
            messages("Pod", pod(json!({"metadata": {"labels": {"a": "b c"}}}))),
            ["metadata.labels: Invalid value: \"b c\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]
        );
        assert_eq!(
            messages("Pod", ctr(json!({"resources": {"limits": {"cpu": "500m"}, "requests": {"cpu": "1"}}}))),
            ["spec.containers[0].resources.requests: Invalid value: \"1\": must be less than or equal to cpu limit of 500m"]
        );
    }

    #[test]
    fn quantities_canonicalize() {
        let cases = [
            ("0.5", "500m"),
            ("1000m", "1"),
            ("1000", "1k"),
            ("2048", "2048"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("100m", "100m"),
            ("1e3", "1e3"),
            ("12e6", "12e6"),
            ("1.0", "1"),
            ("0.1m", "1m"),
            ("1n", "1m"),
            ("-1", "-1"),
            ("512Ki", "512Ki"),
            ("0", "0"),
            ("1.5", "1500m"),
        ];
        for (input, want) in cases {
            let mut q = Quantity::parse(input).unwrap_or_else(|| panic!("parse {input}"));
            q.round_up_milli();
            assert_eq!(q.to_str(), want, "{input}");
        }
        for bad in ["", "abc", "1.2.3", "1Mi3", "5 Gi", "1ki"] {
            assert!(Quantity::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(b64_decode(&b64_encode(b"hello!?")).unwrap(), b"hello!?");
        assert_eq!(b64_encode(b"ab"), "YWI=");
        assert!(b64_decode("YWI").is_none());
        assert_eq!(go_quote("a\"b\n"), "\"a\\\"b\\n\"");
        assert!(parse_ip_sloppy("010.1.2.3").is_some());
        assert!(parse_ip_sloppy("1.2.3.256").is_none());
        assert!(parse_cidr_sloppy("fd00::/64").is_some());
        assert_eq!(mask_trailing_dash("abc-"), "aba");
        assert_eq!(is_qualified_name("a/b/c").len(), 1);
        assert_eq!(is_qualified_name("").len(), 2);
    }
}
