//! Decoder for `application/vnd.kubernetes.protobuf` request bodies.
//!
//! A body is the magic `k8s\0` followed by a `runtime.Unknown` message (1 typeMeta {1 apiVersion,
//! 2 kind}, 2 raw, 3 contentEncoding, 4 contentType) whose `raw` holds the object encoded per
//! upstream's `generated.proto`. [`decode`] turns it into the object's JSON form, driven by
//! [`SCHEMA`], a declarative table of messages and one generic decoder ([`message`]).

use base64::Engine as _;
use chrono::{DateTime, TimeDelta};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

const MAGIC: &[u8] = b"k8s\0";

/// `time.Time{}.Unix()` in Go: the zero `metav1.Time`, which JSON-encodes as null.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// Envelope kinds that can be decoded: (accepted apiVersions, space-separated or `*` for any;
/// schema message, whose name after the last dot is the kind).
const ROOTS: &[(&str, &str)] = &[
    ("v1", "Namespace"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "ServiceAccount"),
    ("v1", "Service"),
    ("v1", "Endpoints"),
    ("v1", "Event"),
    ("v1", "Binding"),
    ("v1", "Pod"),
    ("v1", "PodTemplate"),
    ("v1", "ReplicationController"),
    ("v1", "ResourceQuota"),
    // client-go encodes DeleteOptions in the group version of the resource being deleted.
    ("*", "DeleteOptions"),
    ("autoscaling/v1", "autoscaling.Scale"),
    ("coordination.k8s.io/v1", "coordination.Lease"),
    ("policy/v1 policy/v1beta1", "policy.Eviction"),
    ("policy/v1", "policy.PodDisruptionBudget"),
    ("discovery.k8s.io/v1", "discovery.EndpointSlice"),
];

/// Decodes a `application/vnd.kubernetes.protobuf` body (with the k8s\0 envelope) into the
/// object's JSON, including "apiVersion" and "kind" from the envelope's typeMeta.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let not_envelope = || "the body is not a Kubernetes protobuf envelope".to_string();
    let rest = body.strip_prefix(MAGIC).ok_or_else(not_envelope)?;
    let (api_version, kind, encoding, raw) = envelope(rest).map_err(|_| not_envelope())?;
    if !encoding.is_empty() {
        return Err(format!(
            "protobuf bodies with contentEncoding {encoding:?} are not supported; send application/json"
        ));
    }
    if kind.is_empty() {
        return Err("the protobuf envelope does not name a kind".into());
    }
    let is_root = |(versions, message): &&(&str, &str)| {
        let accepted = *versions == "*" || versions.split(' ').any(|v| v == api_version);
        accepted && message.rsplit('.').next() == Some(kind.as_str())
    };
    let Some((_, root)) = ROOTS.iter().find(is_root) else {
        return Err(format!(
            "protobuf bodies of kind {kind} ({api_version}) are not supported; send application/json"
        ));
    };
    let fields =
        message(root, raw).map_err(|e| format!("cannot decode protobuf for kind {kind}: {e}"))?;
    let mut object = Map::new();
    object.insert("apiVersion".into(), Value::from(api_version));
    object.insert("kind".into(), Value::from(kind));
    object.extend(fields);
    Ok(Value::Object(object))
}

/// Reads the `runtime.Unknown` envelope: (apiVersion, kind, contentEncoding, raw).
fn envelope(buf: &[u8]) -> Res<(String, String, String, &[u8])> {
    let fields = parse(buf)?;
    let type_meta = parse(len_at(&fields, 1)?)?;
    let text = |fields: &[(u64, Wire)], num| {
        len_at(fields, num).map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let (api_version, kind) = (text(&type_meta, 1)?, text(&type_meta, 2)?);
    Ok((api_version, kind, text(&fields, 3)?, len_at(&fields, 2)?))
}

// ---------------------------------------------------------------------------------------------
// Schema

#[derive(Debug, PartialEq)]
enum Ty {
    Str,
    Bool,
    I32,
    I64,
    /// `bytes`, as base64 in JSON.
    Bytes,
    /// `metav1.Time` {1 seconds, 2 nanos (ignored upstream)}: RFC3339, zero is null.
    Time,
    /// `metav1.MicroTime` {1 seconds, 2 nanos}: RFC3339 with 6 fractional digits.
    MicroTime,
    /// `metav1.Duration` {1 duration (ns)}: Go's `time.Duration.String()`.
    Duration,
    /// `intstr.IntOrString` {1 type, 2 intVal, 3 strVal}: a JSON number or string.
    IntOrString,
    /// `resource.Quantity` {1 string}: the string.
    Quantity,
    /// `metav1.FieldsV1` {1 Raw}: the raw JSON.
    FieldsV1,
    Msg(&'static str),
    List(Box<Ty>),
    /// Repeated entry messages {1 key, 2 value}.
    Map(Box<Ty>, Box<Ty>),
}

/// How a field shows up in JSON, after its Go type and JSON tag.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Value with `omitempty` (also slices and maps): left out when zero or empty.
    OmitEmpty,
    /// Pointer: emitted whenever present on the wire, even if zero.
    Pointer,
    /// Value without `omitempty`, or a struct: emitted with its zero value even when absent.
    Always,
    /// Embedded struct with `json:",inline"`: its fields are merged into the parent.
    Inline,
}

#[derive(Debug)]
struct Field {
    num: u64,
    json: &'static str,
    ty: Ty,
    mode: Mode,
}

type Schema = HashMap<&'static str, Vec<Field>>;

fn schema() -> &'static Schema {
    static PARSED: OnceLock<Schema> = OnceLock::new();
    PARSED.get_or_init(|| parse_schema(SCHEMA))
}

/// Parses [`SCHEMA`]; it is a constant, so malformed text is a bug and panics.
fn parse_schema(text: &'static str) -> Schema {
    let mut schema = Schema::new();
    let mut current = None;
    for token in text.split_whitespace() {
        let Some((json, rest)) = token.split_once('=') else {
            assert!(
                schema.insert(token, Vec::new()).is_none(),
                "duplicate message {token}"
            );
            current = Some(token);
            continue;
        };
        let (num, ty) = rest
            .split_once(':')
            .unwrap_or_else(|| panic!("bad field {token}"));
        let (ty, mode) = match ty.as_bytes().last() {
            Some(b'?') => (&ty[..ty.len() - 1], Mode::Pointer),
            Some(b'!') => (&ty[..ty.len() - 1], Mode::Always),
            _ if json == "*" => (ty, Mode::Inline),
            _ => (ty, Mode::OmitEmpty),
        };
        let field = Field {
            num: num
                .parse()
                .unwrap_or_else(|_| panic!("bad field number in {token}")),
            json,
            ty: parse_ty(ty),
            mode,
        };
        let message = current.unwrap_or_else(|| panic!("field {token} outside a message"));
        schema
            .get_mut(message)
            .expect("current message")
            .push(field);
    }
    schema
}

fn parse_ty(text: &'static str) -> Ty {
    if let Some(item) = text.strip_prefix("[]") {
        return Ty::List(Box::new(parse_ty(item)));
    }
    if let Some((key, value)) = text.strip_prefix('{').and_then(|t| t.split_once('}')) {
        return Ty::Map(Box::new(parse_ty(key)), Box::new(parse_ty(value)));
    }
    match text {
        "s" => Ty::Str,
        "b" => Ty::Bool,
        "i" => Ty::I32,
        "l" => Ty::I64,
        "y" => Ty::Bytes,
        "Time" => Ty::Time,
        "MicroTime" => Ty::MicroTime,
        "Duration" => Ty::Duration,
        "IntOrString" => Ty::IntOrString,
        "Quantity" => Ty::Quantity,
        "FieldsV1" => Ty::FieldsV1,
        name => Ty::Msg(name),
    }
}

// ---------------------------------------------------------------------------------------------
// Wire format

#[derive(Debug, Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Len(&'a [u8]),
    /// 64- or 32-bit fixed-width value; no schema type uses one, so it is only skipped.
    Fixed,
}

/// A decoding failure, with the JSON path to it (innermost segment first).
#[derive(Debug)]
struct Fail {
    msg: String,
    path: Vec<String>,
}

impl Fail {
    fn at(mut self, segment: String) -> Self {
        self.path.push(segment);
        self
    }
}

impl From<String> for Fail {
    fn from(msg: String) -> Self {
        Fail {
            msg,
            path: Vec::new(),
        }
    }
}

impl From<&str> for Fail {
    fn from(msg: &str) -> Self {
        msg.to_string().into()
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut path = String::new();
        for segment in self.path.iter().rev() {
            if !path.is_empty() && !segment.starts_with('[') {
                path.push('.');
            }
            path.push_str(segment);
        }
        match path.is_empty() {
            true => f.write_str(&self.msg),
            false => write!(f, "{path}: {}", self.msg),
        }
    }
}

type Res<T> = Result<T, Fail>;

fn read_varint(buf: &[u8], pos: &mut usize) -> Res<u64> {
    let mut value = 0;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err("varint is too long".into())
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, len: u64) -> Res<&'a [u8]> {
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| pos.checked_add(len));
    let bytes = end
        .and_then(|end| buf.get(*pos..end))
        .ok_or("truncated field")?;
    *pos += bytes.len();
    Ok(bytes)
}

/// Splits a message into its (field number, value) pairs, in wire order.
fn parse(buf: &[u8]) -> Res<Vec<(u64, Wire<'_>)>> {
    let (mut fields, mut pos) = (Vec::new(), 0);
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos)?;
        let (num, wire_type) = (key >> 3, key & 7);
        if num == 0 {
            return Err("invalid field number 0".into());
        }
        let wire = match wire_type {
            0 => Wire::Varint(read_varint(buf, &mut pos)?),
            1 => take(buf, &mut pos, 8).map(|_| Wire::Fixed)?,
            2 => {
                let len = read_varint(buf, &mut pos)?;
                Wire::Len(take(buf, &mut pos, len)?)
            }
            5 => take(buf, &mut pos, 4).map(|_| Wire::Fixed)?,
            _ => return Err(format!("unsupported wire type {wire_type} (field {num})").into()),
        };
        fields.push((num, wire));
    }
    Ok(fields)
}

/// The last length-delimited value of field `num` (empty when absent).
fn len_at<'a>(fields: &[(u64, Wire<'a>)], num: u64) -> Res<&'a [u8]> {
    match fields.iter().rev().find(|(n, _)| *n == num) {
        None => Ok(&[]),
        Some((_, Wire::Len(bytes))) => Ok(bytes),
        Some(_) => Err(format!("field {num} is not length-delimited").into()),
    }
}

/// The last varint value of field `num` (0 when absent).
fn varint_at(fields: &[(u64, Wire<'_>)], num: u64) -> Res<u64> {
    match fields.iter().rev().find(|(n, _)| *n == num) {
        None => Ok(0),
        Some((_, Wire::Varint(value))) => Ok(*value),
        Some(_) => Err(format!("field {num} is not a varint").into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Decoder

/// Decodes message `name` into its JSON fields, in Go struct order. Unknown fields are skipped.
fn message(name: &str, buf: &[u8]) -> Res<Map<String, Value>> {
    let fields = schema()
        .get(name)
        .ok_or_else(|| format!("no schema for message {name}"))?;
    let mut seen: Vec<Vec<Wire>> = fields.iter().map(|_| Vec::new()).collect();
    for (num, wire) in parse(buf)? {
        if let Some(i) = fields.iter().position(|f| f.num == num) {
            seen[i].push(wire);
        }
    }
    let mut out = Map::new();
    for (field, wires) in fields.iter().zip(&seen) {
        put(field, wires, &mut out).map_err(|e| match field.mode {
            Mode::Inline => e,
            _ => e.at(field.json.to_string()),
        })?;
    }
    Ok(out)
}

/// Adds one field (all its occurrences on the wire) to `out`.
fn put(field: &Field, wires: &[Wire], out: &mut Map<String, Value>) -> Res<()> {
    let value = match (&field.ty, field.mode) {
        (Ty::Msg(name), Mode::Inline) => {
            out.extend(message(name, &concat(wires)?)?);
            return Ok(());
        }
        (Ty::List(item), _) => Some(Value::Array(list(item, wires)?)),
        (Ty::Map(key, value), _) => Some(Value::Object(map(key, value, wires)?)),
        (ty, mode) if mode == Mode::Always || !wires.is_empty() => single(ty, wires)?,
        _ => None,
    };
    match value {
        Some(v) if !(field.mode == Mode::OmitEmpty && is_empty(&v)) => {
            out.insert(field.json.to_string(), v);
        }
        _ => {}
    }
    Ok(())
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(true) => false,
    }
}

/// A non-repeated field: scalars take the last occurrence, messages merge all (as protobuf
/// does, by concatenation). Absent fields give the zero value. `None` is a JSON null.
fn single(ty: &Ty, wires: &[Wire]) -> Res<Option<Value>> {
    let wire = wires.last();
    let value = match (ty, wire) {
        (Ty::Str | Ty::Bytes, None) => Value::from(""),
        (Ty::Bool, None) => Value::from(false),
        (Ty::I32 | Ty::I64, None) => Value::from(0),
        (Ty::Str, Some(Wire::Len(b))) => Value::from(String::from_utf8_lossy(b)),
        (Ty::Bytes, Some(Wire::Len(b))) => Value::from(base64::prelude::BASE64_STANDARD.encode(b)),
        (Ty::Bool, Some(Wire::Varint(v))) => Value::from(*v != 0),
        (Ty::I32, Some(Wire::Varint(v))) => Value::from(*v as i32),
        (Ty::I64, Some(Wire::Varint(v))) => Value::from(*v as i64),
        (Ty::Str | Ty::Bytes | Ty::Bool | Ty::I32 | Ty::I64, Some(_)) => {
            return Err(format!("wrong wire type for {ty:?}").into())
        }
        _ => return embedded(ty, &concat(wires)?),
    };
    Ok(Some(value))
}

fn concat<'a>(wires: &[Wire<'a>]) -> Res<Cow<'a, [u8]>> {
    if let [Wire::Len(bytes)] = wires {
        return Ok(Cow::Borrowed(bytes));
    }
    let parts = wires.iter().map(|w| match w {
        Wire::Len(bytes) => Ok(*bytes),
        _ => Err(Fail::from("embedded message is not length-delimited")),
    });
    Ok(Cow::Owned(parts.collect::<Res<Vec<_>>>()?.concat()))
}

/// Decodes an embedded message of type `ty`.
fn embedded(ty: &Ty, buf: &[u8]) -> Res<Option<Value>> {
    if let Ty::Msg(name) = ty {
        return Ok(Some(Value::Object(message(name, buf)?)));
    }
    let fields = parse(buf)?;
    let text = |num| len_at(&fields, num).map(String::from_utf8_lossy);
    Ok(Some(match ty {
        Ty::Time | Ty::MicroTime => {
            let seconds = varint_at(&fields, 1)? as i64;
            let nanos = match ty {
                Ty::MicroTime => (varint_at(&fields, 2)? as i32 / 1000 * 1000).into(),
                _ => 0,
            };
            if buf.is_empty() || (seconds == GO_ZERO_TIME && nanos == 0) {
                return Ok(None);
            }
            let time = DateTime::from_timestamp(seconds, 0)
                .and_then(|t| t.checked_add_signed(TimeDelta::nanoseconds(nanos)))
                .ok_or("time out of range")?;
            let format = match ty {
                Ty::MicroTime => "%Y-%m-%dT%H:%M:%S%.6fZ",
                _ => "%Y-%m-%dT%H:%M:%SZ",
            };
            Value::from(time.format(format).to_string())
        }
        Ty::Duration => Value::from(go_duration(varint_at(&fields, 1)? as i64)),
        Ty::IntOrString => match varint_at(&fields, 1)? {
            0 => Value::from(varint_at(&fields, 2)? as i32),
            1 => Value::from(text(3)?),
            other => return Err(format!("invalid IntOrString type {other}").into()),
        },
        Ty::Quantity => match text(1)? {
            q if q.is_empty() => Value::from("0"),
            q => Value::from(q),
        },
        Ty::FieldsV1 => match len_at(&fields, 1)? {
            [] => return Ok(None),
            raw => serde_json::from_slice(raw).map_err(|e| format!("invalid fieldsV1: {e}"))?,
        },
        _ => return Err(format!("{ty:?} is not a message type").into()),
    }))
}

/// A repeated field; varint scalars may also come packed.
fn list(item: &Ty, wires: &[Wire]) -> Res<Vec<Value>> {
    let mut items = Vec::new();
    for wire in wires {
        match (item, wire) {
            (Ty::Bool | Ty::I32 | Ty::I64, Wire::Len(packed)) => {
                let mut pos = 0;
                while pos < packed.len() {
                    let value = Wire::Varint(read_varint(packed, &mut pos)?);
                    items.extend(single(item, &[value])?);
                }
            }
            _ => {
                let value = single(item, std::slice::from_ref(wire));
                let value = value.map_err(|e| e.at(format!("[{}]", items.len())))?;
                items.push(value.unwrap_or(Value::Null));
            }
        }
    }
    Ok(items)
}

/// A map field: repeated entry messages {1 key, 2 value}; later entries win.
fn map(key_ty: &Ty, value_ty: &Ty, wires: &[Wire]) -> Res<Map<String, Value>> {
    let mut out = Map::new();
    for wire in wires {
        let Wire::Len(entry) = wire else {
            return Err("map entry is not length-delimited".into());
        };
        let fields = parse(entry)?;
        let occurrences = |num| -> Vec<Wire> {
            let matching = fields.iter().filter(|(n, _)| *n == num);
            matching.map(|(_, w)| *w).collect()
        };
        let key = match single(key_ty, &occurrences(1))? {
            Some(Value::String(s)) => s,
            other => other.unwrap_or_default().to_string(),
        };
        let value = single(value_ty, &occurrences(2)).map_err(|e| e.at(format!("[{key}]")))?;
        out.insert(key, value.unwrap_or(Value::Null));
    }
    Ok(out)
}

/// Go's `time.Duration.String()`, e.g. "1h0m0s", "1.5s", "300ms", "0s".
fn go_duration(nanos: i64) -> String {
    let u = nanos.unsigned_abs();
    let (digits, unit) = match u {
        0 => return "0s".into(),
        1..=999 => (0, "ns"),
        1_000..=999_999 => (3, "µs"),
        1_000_000..=999_999_999 => (6, "ms"),
        _ => (9, "s"),
    };
    let scale = 10u64.pow(digits);
    let frac = format!("{:0width$}", u % scale, width = digits as usize);
    let frac = match frac.trim_end_matches('0') {
        "" => String::new(),
        frac => format!(".{frac}"),
    };
    let whole = u / scale;
    let sign = if nanos < 0 { "-" } else { "" };
    match (unit, whole / 3600, whole / 60 % 60) {
        ("s", 0, 0) | ("ns" | "µs" | "ms", ..) => format!("{sign}{whole}{frac}{unit}"),
        (_, 0, m) => format!("{sign}{m}m{}{frac}s", whole % 60),
        (_, h, m) => format!("{sign}{h}h{m}m{}{frac}s", whole % 60),
    }
}

// ---------------------------------------------------------------------------------------------
// The schema

/// Messages and their fields, per upstream v1.33 (`k8s.io/api`, `k8s.io/apimachinery` v0.33.9):
/// field numbers and types from `generated.proto`; JSON names, field order (Go struct order) and
/// pointer/omitempty from the `types.go` tags. A token without `=` starts a message; a field is
/// `json=number:type[mode]`. Types: `s` string, `b` bool, `i` int32, `l` int64, `y` bytes,
/// `[]T` repeated, `{K}V` map, Time, MicroTime, Duration, IntOrString, Quantity, FieldsV1, or a
/// message. Modes: `?` pointer (emitted when present), `!` always emitted, none omitempty. A `*`
/// JSON name is an inline embedded struct. core/v1 and meta/v1 names are bare, others prefixed.
const SCHEMA: &str = "
Namespace metadata=1:ObjectMeta! spec=2:NamespaceSpec! status=3:NamespaceStatus!
ConfigMap metadata=1:ObjectMeta! immutable=4:b? data=2:{s}s binaryData=3:{s}y
Secret metadata=1:ObjectMeta! immutable=5:b? data=2:{s}y stringData=4:{s}s type=3:s
ServiceAccount metadata=1:ObjectMeta! secrets=2:[]ObjectReference
    imagePullSecrets=3:[]LocalObjectReference automountServiceAccountToken=4:b?
Service metadata=1:ObjectMeta! spec=2:ServiceSpec! status=3:ServiceStatus!
Endpoints metadata=1:ObjectMeta! subsets=2:[]EndpointSubset
Event metadata=1:ObjectMeta! involvedObject=2:ObjectReference! reason=3:s message=4:s
    source=5:EventSource! firstTimestamp=6:Time! lastTimestamp=7:Time! count=8:i type=9:s
    eventTime=10:MicroTime! series=11:EventSeries? action=12:s related=13:ObjectReference?
    reportingComponent=14:s! reportingInstance=15:s!
DeleteOptions gracePeriodSeconds=1:l? preconditions=2:Preconditions? orphanDependents=3:b?
    propagationPolicy=4:s? dryRun=5:[]s ignoreStoreReadErrorWithClusterBreakingPotential=6:b?
Binding metadata=1:ObjectMeta! target=2:ObjectReference!
autoscaling.Scale metadata=1:ObjectMeta! spec=2:autoscaling.ScaleSpec!
    status=3:autoscaling.ScaleStatus!
coordination.Lease metadata=1:ObjectMeta! spec=2:coordination.LeaseSpec!
policy.Eviction metadata=1:ObjectMeta! deleteOptions=2:DeleteOptions?
Pod metadata=1:ObjectMeta! spec=2:PodSpec! status=3:PodStatus!
ReplicationController metadata=1:ObjectMeta! spec=2:ReplicationControllerSpec!
    status=3:ReplicationControllerStatus!
TypeMeta kind=1:s apiVersion=2:s
ListMeta selfLink=1:s resourceVersion=2:s continue=3:s remainingItemCount=4:l?
discovery.EndpointSlice metadata=1:ObjectMeta! addressType=4:s! endpoints=2:[]discovery.Endpoint
    ports=3:[]discovery.EndpointPort
PodTemplate metadata=1:ObjectMeta! template=2:PodTemplateSpec!
ResourceQuota metadata=1:ObjectMeta! spec=2:ResourceQuotaSpec! status=3:ResourceQuotaStatus!
policy.PodDisruptionBudget metadata=1:ObjectMeta! spec=2:policy.PodDisruptionBudgetSpec!
    status=3:policy.PodDisruptionBudgetStatus!
ObjectMeta name=1:s generateName=2:s namespace=3:s selfLink=4:s uid=5:s resourceVersion=6:s
    generation=7:l creationTimestamp=8:Time! deletionTimestamp=9:Time?
    deletionGracePeriodSeconds=10:l? labels=11:{s}s annotations=12:{s}s
    ownerReferences=13:[]OwnerReference finalizers=14:[]s managedFields=17:[]ManagedFieldsEntry
NamespaceSpec finalizers=1:[]s
NamespaceStatus phase=1:s conditions=2:[]NamespaceCondition
ObjectReference kind=1:s namespace=2:s name=3:s uid=4:s apiVersion=5:s resourceVersion=6:s
    fieldPath=7:s
LocalObjectReference name=1:s
ServiceSpec ports=1:[]ServicePort selector=2:{s}s clusterIP=3:s clusterIPs=18:[]s type=4:s
    externalIPs=5:[]s sessionAffinity=7:s loadBalancerIP=8:s loadBalancerSourceRanges=9:[]s
    externalName=10:s externalTrafficPolicy=11:s healthCheckNodePort=12:i
    publishNotReadyAddresses=13:b sessionAffinityConfig=14:SessionAffinityConfig?
    ipFamilies=19:[]s ipFamilyPolicy=17:s? allocateLoadBalancerNodePorts=20:b?
    loadBalancerClass=21:s? internalTrafficPolicy=22:s? trafficDistribution=23:s?
ServiceStatus loadBalancer=1:LoadBalancerStatus! conditions=2:[]Condition
EndpointSubset addresses=1:[]EndpointAddress notReadyAddresses=2:[]EndpointAddress
    ports=3:[]EndpointPort
EventSource component=1:s host=2:s
EventSeries count=1:i lastObservedTime=2:MicroTime!
Preconditions uid=1:s? resourceVersion=2:s?
autoscaling.ScaleSpec replicas=1:i
autoscaling.ScaleStatus replicas=1:i! selector=2:s
coordination.LeaseSpec holderIdentity=1:s? leaseDurationSeconds=2:i? acquireTime=3:MicroTime?
    renewTime=4:MicroTime? leaseTransitions=5:i? strategy=6:s? preferredHolder=7:s?
PodSpec volumes=1:[]Volume initContainers=20:[]Container containers=2:[]Container
    ephemeralContainers=34:[]EphemeralContainer restartPolicy=3:s
    terminationGracePeriodSeconds=4:l? activeDeadlineSeconds=5:l? dnsPolicy=6:s
    nodeSelector=7:{s}s serviceAccountName=8:s serviceAccount=9:s
    automountServiceAccountToken=21:b? nodeName=10:s hostNetwork=11:b hostPID=12:b hostIPC=13:b
    shareProcessNamespace=27:b? securityContext=14:PodSecurityContext?
    imagePullSecrets=15:[]LocalObjectReference hostname=16:s subdomain=17:s
    affinity=18:Affinity? schedulerName=19:s tolerations=22:[]Toleration
    hostAliases=23:[]HostAlias priorityClassName=24:s priority=25:i? dnsConfig=26:PodDNSConfig?
    readinessGates=28:[]PodReadinessGate runtimeClassName=29:s? enableServiceLinks=30:b?
    preemptionPolicy=31:s? overhead=32:{s}Quantity
    topologySpreadConstraints=33:[]TopologySpreadConstraint setHostnameAsFQDN=35:b? os=36:PodOS?
    hostUsers=37:b? schedulingGates=38:[]PodSchedulingGate resourceClaims=39:[]PodResourceClaim
    resources=40:ResourceRequirements?
PodStatus observedGeneration=17:l phase=1:s conditions=2:[]PodCondition message=3:s reason=4:s
    nominatedNodeName=11:s hostIP=5:s hostIPs=16:[]HostIP podIP=6:s podIPs=12:[]PodIP
    startTime=7:Time? initContainerStatuses=10:[]ContainerStatus
    containerStatuses=8:[]ContainerStatus qosClass=9:s
    ephemeralContainerStatuses=13:[]ContainerStatus resize=14:s
    resourceClaimStatuses=15:[]PodResourceClaimStatus
ReplicationControllerSpec replicas=1:i? minReadySeconds=4:i selector=2:{s}s
    template=3:PodTemplateSpec?
ReplicationControllerStatus replicas=1:i! fullyLabeledReplicas=2:i readyReplicas=4:i
    availableReplicas=5:i observedGeneration=3:l conditions=6:[]ReplicationControllerCondition
discovery.Endpoint addresses=1:[]s conditions=2:discovery.EndpointConditions! hostname=3:s?
    targetRef=4:ObjectReference? deprecatedTopology=5:{s}s nodeName=6:s? zone=7:s?
    hints=8:discovery.EndpointHints?
discovery.EndpointPort name=1:s? protocol=2:s? port=3:i? appProtocol=4:s?
PodTemplateSpec metadata=1:ObjectMeta! spec=2:PodSpec!
ResourceQuotaSpec hard=1:{s}Quantity scopes=2:[]s scopeSelector=3:ScopeSelector?
ResourceQuotaStatus hard=1:{s}Quantity used=2:{s}Quantity
policy.PodDisruptionBudgetSpec minAvailable=1:IntOrString? selector=2:LabelSelector?
    maxUnavailable=3:IntOrString? unhealthyPodEvictionPolicy=4:s?
policy.PodDisruptionBudgetStatus observedGeneration=1:l disruptedPods=2:{s}Time
    disruptionsAllowed=3:i! currentHealthy=4:i! desiredHealthy=5:i! expectedPods=6:i!
    conditions=7:[]Condition
OwnerReference apiVersion=5:s! kind=1:s! name=3:s! uid=4:s! controller=6:b?
    blockOwnerDeletion=7:b?
ManagedFieldsEntry manager=1:s operation=2:s apiVersion=3:s time=4:Time? fieldsType=6:s
    fieldsV1=7:FieldsV1? subresource=8:s
NamespaceCondition type=1:s! status=2:s! lastTransitionTime=4:Time! reason=5:s message=6:s
ServicePort name=1:s protocol=2:s appProtocol=6:s? port=3:i! targetPort=4:IntOrString
    nodePort=5:i
SessionAffinityConfig clientIP=1:ClientIPConfig?
LoadBalancerStatus ingress=1:[]LoadBalancerIngress
Condition type=1:s! status=2:s! observedGeneration=3:l lastTransitionTime=4:Time! reason=5:s!
    message=6:s!
EndpointAddress ip=1:s! hostname=3:s nodeName=4:s? targetRef=2:ObjectReference?
EndpointPort name=1:s port=2:i! protocol=3:s appProtocol=4:s?
Volume name=1:s! *=2:VolumeSource
Container name=1:s! image=2:s command=3:[]s args=4:[]s workingDir=5:s ports=6:[]ContainerPort
    envFrom=19:[]EnvFromSource env=7:[]EnvVar resources=8:ResourceRequirements!
    resizePolicy=23:[]ContainerResizePolicy restartPolicy=24:s? volumeMounts=9:[]VolumeMount
    volumeDevices=21:[]VolumeDevice livenessProbe=10:Probe? readinessProbe=11:Probe?
    startupProbe=22:Probe? lifecycle=12:Lifecycle? terminationMessagePath=13:s
    terminationMessagePolicy=20:s imagePullPolicy=14:s securityContext=15:SecurityContext?
    stdin=16:b stdinOnce=17:b tty=18:b
EphemeralContainer *=1:EphemeralContainerCommon targetContainerName=2:s
PodSecurityContext seLinuxOptions=1:SELinuxOptions?
    windowsOptions=8:WindowsSecurityContextOptions? runAsUser=2:l? runAsGroup=6:l?
    runAsNonRoot=3:b? supplementalGroups=4:[]l supplementalGroupsPolicy=12:s? fsGroup=5:l?
    sysctls=7:[]Sysctl fsGroupChangePolicy=9:s? seccompProfile=10:SeccompProfile?
    appArmorProfile=11:AppArmorProfile? seLinuxChangePolicy=13:s?
Affinity nodeAffinity=1:NodeAffinity? podAffinity=2:PodAffinity?
    podAntiAffinity=3:PodAntiAffinity?
Toleration key=1:s operator=2:s value=3:s effect=4:s tolerationSeconds=5:l?
HostAlias ip=1:s! hostnames=2:[]s
PodDNSConfig nameservers=1:[]s searches=2:[]s options=3:[]PodDNSConfigOption
PodReadinessGate conditionType=1:s!
TopologySpreadConstraint maxSkew=1:i! topologyKey=2:s! whenUnsatisfiable=3:s!
    labelSelector=4:LabelSelector? minDomains=5:i? nodeAffinityPolicy=6:s? nodeTaintsPolicy=7:s?
    matchLabelKeys=8:[]s
PodOS name=1:s!
PodSchedulingGate name=1:s!
PodResourceClaim name=1:s! resourceClaimName=3:s? resourceClaimTemplateName=4:s?
ResourceRequirements limits=1:{s}Quantity requests=2:{s}Quantity claims=3:[]ResourceClaim
PodCondition type=1:s! observedGeneration=7:l status=2:s! lastProbeTime=3:Time!
    lastTransitionTime=4:Time! reason=5:s message=6:s
HostIP ip=1:s!
PodIP ip=1:s!
ContainerStatus name=1:s! state=2:ContainerState! lastState=3:ContainerState! ready=4:b!
    restartCount=5:i! image=6:s! imageID=7:s! containerID=8:s started=9:b?
    allocatedResources=10:{s}Quantity resources=11:ResourceRequirements?
    volumeMounts=12:[]VolumeMountStatus user=13:ContainerUser?
    allocatedResourcesStatus=14:[]ResourceStatus stopSignal=15:s?
PodResourceClaimStatus name=1:s! resourceClaimName=2:s?
ReplicationControllerCondition type=1:s! status=2:s! lastTransitionTime=3:Time! reason=4:s
    message=5:s
discovery.EndpointConditions ready=1:b? serving=2:b? terminating=3:b?
discovery.EndpointHints forZones=1:[]discovery.ForZone forNodes=2:[]discovery.ForNode
ScopeSelector matchExpressions=1:[]ScopedResourceSelectorRequirement
LabelSelector matchLabels=1:{s}s matchExpressions=2:[]LabelSelectorRequirement
ClientIPConfig timeoutSeconds=1:i?
LoadBalancerIngress ip=1:s hostname=2:s ipMode=3:s? ports=4:[]PortStatus
VolumeSource hostPath=1:HostPathVolumeSource? emptyDir=2:EmptyDirVolumeSource?
    gcePersistentDisk=3:GCEPersistentDiskVolumeSource?
    awsElasticBlockStore=4:AWSElasticBlockStoreVolumeSource? gitRepo=5:GitRepoVolumeSource?
    secret=6:SecretVolumeSource? nfs=7:NFSVolumeSource? iscsi=8:ISCSIVolumeSource?
    glusterfs=9:GlusterfsVolumeSource?
    persistentVolumeClaim=10:PersistentVolumeClaimVolumeSource? rbd=11:RBDVolumeSource?
    flexVolume=12:FlexVolumeSource? cinder=13:CinderVolumeSource? cephfs=14:CephFSVolumeSource?
    flocker=15:FlockerVolumeSource? downwardAPI=16:DownwardAPIVolumeSource?
    fc=17:FCVolumeSource? azureFile=18:AzureFileVolumeSource?
    configMap=19:ConfigMapVolumeSource? vsphereVolume=20:VsphereVirtualDiskVolumeSource?
    quobyte=21:QuobyteVolumeSource? azureDisk=22:AzureDiskVolumeSource?
    photonPersistentDisk=23:PhotonPersistentDiskVolumeSource?
    projected=26:ProjectedVolumeSource? portworxVolume=24:PortworxVolumeSource?
    scaleIO=25:ScaleIOVolumeSource? storageos=27:StorageOSVolumeSource? csi=28:CSIVolumeSource?
    ephemeral=29:EphemeralVolumeSource? image=30:ImageVolumeSource?
ContainerPort name=1:s hostPort=2:i containerPort=3:i! protocol=4:s hostIP=5:s
EnvFromSource prefix=1:s configMapRef=2:ConfigMapEnvSource? secretRef=3:SecretEnvSource?
EnvVar name=1:s! value=2:s valueFrom=3:EnvVarSource?
ContainerResizePolicy resourceName=1:s! restartPolicy=2:s!
VolumeMount name=1:s! readOnly=2:b recursiveReadOnly=7:s? mountPath=3:s! subPath=4:s
    mountPropagation=5:s? subPathExpr=6:s
VolumeDevice name=1:s! devicePath=2:s!
Probe *=1:ProbeHandler initialDelaySeconds=2:i timeoutSeconds=3:i periodSeconds=4:i
    successThreshold=5:i failureThreshold=6:i terminationGracePeriodSeconds=7:l?
Lifecycle postStart=1:LifecycleHandler? preStop=2:LifecycleHandler? stopSignal=3:s?
SecurityContext capabilities=1:Capabilities? privileged=2:b? seLinuxOptions=3:SELinuxOptions?
    windowsOptions=10:WindowsSecurityContextOptions? runAsUser=4:l? runAsGroup=8:l?
    runAsNonRoot=5:b? readOnlyRootFilesystem=6:b? allowPrivilegeEscalation=7:b? procMount=9:s?
    seccompProfile=11:SeccompProfile? appArmorProfile=12:AppArmorProfile?
EphemeralContainerCommon name=1:s! image=2:s command=3:[]s args=4:[]s workingDir=5:s
    ports=6:[]ContainerPort envFrom=19:[]EnvFromSource env=7:[]EnvVar
    resources=8:ResourceRequirements! resizePolicy=23:[]ContainerResizePolicy
    restartPolicy=24:s? volumeMounts=9:[]VolumeMount volumeDevices=21:[]VolumeDevice
    livenessProbe=10:Probe? readinessProbe=11:Probe? startupProbe=22:Probe?
    lifecycle=12:Lifecycle? terminationMessagePath=13:s terminationMessagePolicy=20:s
    imagePullPolicy=14:s securityContext=15:SecurityContext? stdin=16:b stdinOnce=17:b tty=18:b
SELinuxOptions user=1:s role=2:s type=3:s level=4:s
WindowsSecurityContextOptions gmsaCredentialSpecName=1:s? gmsaCredentialSpec=2:s?
    runAsUserName=3:s? hostProcess=4:b?
Sysctl name=1:s! value=2:s!
SeccompProfile type=1:s! localhostProfile=2:s?
AppArmorProfile type=1:s! localhostProfile=2:s?
NodeAffinity requiredDuringSchedulingIgnoredDuringExecution=1:NodeSelector?
    preferredDuringSchedulingIgnoredDuringExecution=2:[]PreferredSchedulingTerm
PodAffinity requiredDuringSchedulingIgnoredDuringExecution=1:[]PodAffinityTerm
    preferredDuringSchedulingIgnoredDuringExecution=2:[]WeightedPodAffinityTerm
PodAntiAffinity requiredDuringSchedulingIgnoredDuringExecution=1:[]PodAffinityTerm
    preferredDuringSchedulingIgnoredDuringExecution=2:[]WeightedPodAffinityTerm
PodDNSConfigOption name=1:s value=2:s?
ResourceClaim name=1:s! request=2:s
ContainerState waiting=1:ContainerStateWaiting? running=2:ContainerStateRunning?
    terminated=3:ContainerStateTerminated?
VolumeMountStatus name=1:s! mountPath=2:s! readOnly=3:b recursiveReadOnly=4:s?
ContainerUser linux=1:LinuxContainerUser?
ResourceStatus name=1:s! resources=2:[]ResourceHealth
discovery.ForZone name=1:s!
discovery.ForNode name=1:s!
ScopedResourceSelectorRequirement scopeName=1:s! operator=2:s! values=3:[]s
LabelSelectorRequirement key=1:s! operator=2:s! values=3:[]s
PortStatus port=1:i! protocol=2:s! error=3:s?
HostPathVolumeSource path=1:s! type=2:s?
EmptyDirVolumeSource medium=1:s sizeLimit=2:Quantity?
GCEPersistentDiskVolumeSource pdName=1:s! fsType=2:s partition=3:i readOnly=4:b
AWSElasticBlockStoreVolumeSource volumeID=1:s! fsType=2:s partition=3:i readOnly=4:b
GitRepoVolumeSource repository=1:s! revision=2:s directory=3:s
SecretVolumeSource secretName=1:s items=2:[]KeyToPath defaultMode=3:i? optional=4:b?
NFSVolumeSource server=1:s! path=2:s! readOnly=3:b
ISCSIVolumeSource targetPortal=1:s! iqn=2:s! lun=3:i! iscsiInterface=4:s fsType=5:s readOnly=6:b
    portals=7:[]s chapAuthDiscovery=8:b chapAuthSession=11:b secretRef=10:LocalObjectReference?
    initiatorName=12:s?
GlusterfsVolumeSource endpoints=1:s! path=2:s! readOnly=3:b
PersistentVolumeClaimVolumeSource claimName=1:s! readOnly=2:b
RBDVolumeSource monitors=1:[]s image=2:s! fsType=3:s pool=4:s user=5:s keyring=6:s
    secretRef=7:LocalObjectReference? readOnly=8:b
FlexVolumeSource driver=1:s! fsType=2:s secretRef=3:LocalObjectReference? readOnly=4:b
    options=5:{s}s
CinderVolumeSource volumeID=1:s! fsType=2:s readOnly=3:b secretRef=4:LocalObjectReference?
CephFSVolumeSource monitors=1:[]s path=2:s user=3:s secretFile=4:s
    secretRef=5:LocalObjectReference? readOnly=6:b
FlockerVolumeSource datasetName=1:s datasetUUID=2:s
DownwardAPIVolumeSource items=1:[]DownwardAPIVolumeFile defaultMode=2:i?
FCVolumeSource targetWWNs=1:[]s lun=2:i? fsType=3:s readOnly=4:b wwids=5:[]s
AzureFileVolumeSource secretName=1:s! shareName=2:s! readOnly=3:b
ConfigMapVolumeSource *=1:LocalObjectReference items=2:[]KeyToPath defaultMode=3:i?
    optional=4:b?
VsphereVirtualDiskVolumeSource volumePath=1:s! fsType=2:s storagePolicyName=3:s
    storagePolicyID=4:s
QuobyteVolumeSource registry=1:s! volume=2:s! readOnly=3:b user=4:s group=5:s tenant=6:s
AzureDiskVolumeSource diskName=1:s! diskURI=2:s! cachingMode=3:s? fsType=4:s? readOnly=5:b?
    kind=6:s?
PhotonPersistentDiskVolumeSource pdID=1:s! fsType=2:s
ProjectedVolumeSource sources=1:[]VolumeProjection defaultMode=2:i?
PortworxVolumeSource volumeID=1:s! fsType=2:s readOnly=3:b
ScaleIOVolumeSource gateway=1:s! system=2:s! secretRef=3:LocalObjectReference? sslEnabled=4:b
    protectionDomain=5:s storagePool=6:s storageMode=7:s volumeName=8:s fsType=9:s readOnly=10:b
StorageOSVolumeSource volumeName=1:s volumeNamespace=2:s fsType=3:s readOnly=4:b
    secretRef=5:LocalObjectReference?
CSIVolumeSource driver=1:s! readOnly=2:b? fsType=3:s? volumeAttributes=4:{s}s
    nodePublishSecretRef=5:LocalObjectReference?
EphemeralVolumeSource volumeClaimTemplate=1:PersistentVolumeClaimTemplate?
ImageVolumeSource reference=1:s pullPolicy=2:s
ConfigMapEnvSource *=1:LocalObjectReference optional=2:b?
SecretEnvSource *=1:LocalObjectReference optional=2:b?
EnvVarSource fieldRef=1:ObjectFieldSelector? resourceFieldRef=2:ResourceFieldSelector?
    configMapKeyRef=3:ConfigMapKeySelector? secretKeyRef=4:SecretKeySelector?
ProbeHandler exec=1:ExecAction? httpGet=2:HTTPGetAction? tcpSocket=3:TCPSocketAction?
    grpc=4:GRPCAction?
LifecycleHandler exec=1:ExecAction? httpGet=2:HTTPGetAction? tcpSocket=3:TCPSocketAction?
    sleep=4:SleepAction?
Capabilities add=1:[]s drop=2:[]s
NodeSelector nodeSelectorTerms=1:[]NodeSelectorTerm
PreferredSchedulingTerm weight=1:i! preference=2:NodeSelectorTerm!
PodAffinityTerm labelSelector=1:LabelSelector? namespaces=2:[]s topologyKey=3:s!
    namespaceSelector=4:LabelSelector? matchLabelKeys=5:[]s mismatchLabelKeys=6:[]s
WeightedPodAffinityTerm weight=1:i! podAffinityTerm=2:PodAffinityTerm!
ContainerStateWaiting reason=1:s message=2:s
ContainerStateRunning startedAt=1:Time!
ContainerStateTerminated exitCode=1:i! signal=2:i reason=3:s message=4:s startedAt=5:Time!
    finishedAt=6:Time! containerID=7:s
LinuxContainerUser uid=1:l! gid=2:l! supplementalGroups=3:[]l
ResourceHealth resourceID=1:s! health=2:s
KeyToPath key=1:s! path=2:s! mode=3:i?
DownwardAPIVolumeFile path=1:s! fieldRef=2:ObjectFieldSelector?
    resourceFieldRef=3:ResourceFieldSelector? mode=4:i?
VolumeProjection secret=1:SecretProjection? downwardAPI=2:DownwardAPIProjection?
    configMap=3:ConfigMapProjection? serviceAccountToken=4:ServiceAccountTokenProjection?
    clusterTrustBundle=5:ClusterTrustBundleProjection?
PersistentVolumeClaimTemplate metadata=1:ObjectMeta! spec=2:PersistentVolumeClaimSpec!
ObjectFieldSelector apiVersion=1:s fieldPath=2:s!
ResourceFieldSelector containerName=1:s resource=2:s! divisor=3:Quantity!
ConfigMapKeySelector *=1:LocalObjectReference key=2:s! optional=3:b?
SecretKeySelector *=1:LocalObjectReference key=2:s! optional=3:b?
ExecAction command=1:[]s
HTTPGetAction path=1:s port=2:IntOrString! host=3:s scheme=4:s httpHeaders=5:[]HTTPHeader
TCPSocketAction port=1:IntOrString! host=2:s
GRPCAction port=1:i! service=2:s?
SleepAction seconds=1:l!
NodeSelectorTerm matchExpressions=1:[]NodeSelectorRequirement
    matchFields=2:[]NodeSelectorRequirement
SecretProjection *=1:LocalObjectReference items=2:[]KeyToPath optional=4:b?
DownwardAPIProjection items=1:[]DownwardAPIVolumeFile
ConfigMapProjection *=1:LocalObjectReference items=2:[]KeyToPath optional=4:b?
ServiceAccountTokenProjection audience=1:s expirationSeconds=2:l? path=3:s!
ClusterTrustBundleProjection name=1:s? signerName=2:s? labelSelector=3:LabelSelector?
    optional=5:b? path=4:s!
PersistentVolumeClaimSpec accessModes=1:[]s selector=4:LabelSelector?
    resources=2:VolumeResourceRequirements! volumeName=3:s storageClassName=5:s? volumeMode=6:s?
    dataSource=7:TypedLocalObjectReference? dataSourceRef=8:TypedObjectReference?
    volumeAttributesClassName=9:s?
HTTPHeader name=1:s! value=2:s!
NodeSelectorRequirement key=1:s! operator=2:s! values=3:[]s
VolumeResourceRequirements limits=1:{s}Quantity requests=2:{s}Quantity
TypedLocalObjectReference apiGroup=1:s? kind=2:s! name=3:s!
TypedObjectReference apiGroup=1:s? kind=2:s! name=3:s! namespace=4:s?
";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A field for the test-only encoder: varint, length-delimited, fixed64, fixed32.
    enum P {
        V(u64, u64),
        B(u64, Vec<u8>),
        F64(u64),
        F32(u64),
    }

    fn enc(fields: &[P]) -> Vec<u8> {
        fn varint(out: &mut Vec<u8>, mut v: u64) {
            while v >= 0x80 {
                out.push(v as u8 | 0x80);
                v >>= 7;
            }
            out.push(v as u8);
        }
        let mut out = Vec::new();
        for field in fields {
            match field {
                P::V(n, v) => {
                    varint(&mut out, n << 3);
                    varint(&mut out, *v);
                }
                P::B(n, b) => {
                    varint(&mut out, n << 3 | 2);
                    varint(&mut out, b.len() as u64);
                    out.extend(b);
                }
                P::F64(n) => {
                    varint(&mut out, n << 3 | 1);
                    out.extend([7; 8]);
                }
                P::F32(n) => {
                    varint(&mut out, n << 3 | 5);
                    out.extend([7; 4]);
                }
            }
        }
        out
    }

    fn s(n: u64, v: &str) -> P {
        P::B(n, v.into())
    }
    fn m(n: u64, fields: &[P]) -> P {
        P::B(n, enc(fields))
    }
    fn v(n: u64, x: i64) -> P {
        P::V(n, x as u64)
    }
    /// A map entry of field `n`; `value` must be field 2.
    fn kv(n: u64, key: &str, value: P) -> P {
        m(n, &[s(1, key), value])
    }
    /// `IntOrString` as Go marshals it (every field present).
    fn ios(n: u64, int: i64, text: &str) -> P {
        m(n, &[v(1, (!text.is_empty()).into()), v(2, int), s(3, text)])
    }
    /// `ObjectMeta` as Go marshals it (non-pointer fields always present).
    fn meta(name: &str, extra: Vec<P>) -> P {
        let mut fields = vec![s(1, name), s(2, ""), s(3, ""), s(4, ""), s(5, ""), s(6, "")];
        fields.extend([v(7, 0), m(8, &[])]);
        fields.extend(extra);
        m(1, &fields)
    }
    fn body(api_version: &str, kind: &str, object: &[P]) -> Vec<u8> {
        let type_meta = m(1, &[s(1, api_version), s(2, kind)]);
        let unknown = [type_meta, P::B(2, enc(object)), s(3, ""), s(4, "")];
        [MAGIC.to_vec(), enc(&unknown)].concat()
    }
    fn hex(text: &str) -> Vec<u8> {
        let byte = |b: &str| u8::from_str_radix(b, 16).unwrap();
        text.split_whitespace().map(byte).collect()
    }

    const NOT_ENVELOPE: &str = "the body is not a Kubernetes protobuf envelope";
    const NOV_22: i64 = 1_795_334_400; // 2026-11-22T08:00:00Z

    #[test]
    fn decodes_bodies() {
        let ns = "6b 38 73 00 0a 0f 0a 02 76 31 12 09 4e 61 6d 65 73 70 61 63 65 12 1b 0a 13 \
                  0a 03 66 6f 6f 12 00 1a 00 22 00 2a 00 32 00 38 00 42 00 12 00 1a 02 0a 00 \
                  1a 00 22 00";
        let cases: Vec<(&str, Vec<u8>, Result<Value, &str>)> =
            vec![
            (
                "kubectl 1.33 create ns foo",
                hex(ns),
                Ok(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "foo"},
                          "spec": {}, "status": {}})),
            ),
            (
                "configmap: maps, bytes, pointer bool false, unknown fields skipped",
                body("v1", "ConfigMap", &[
                    meta("x", vec![kv(11, "app", s(2, "x")), P::F64(40)]),
                    kv(2, "a", s(2, "b")),
                    kv(2, "empty", s(2, "")),
                    kv(3, "bin", P::B(2, vec![0, 1, 2])),
                    v(4, 0),
                    v(99, 5),
                    P::F64(98),
                    P::F32(97),
                    s(96, "junk"),
                ]),
                Ok(json!({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "x", "labels": {"app": "x"}},
                          "immutable": false, "data": {"a": "b", "empty": ""},
                          "binaryData": {"bin": "AAEC"}})),
            ),
            (
                "secret: base64 data, last scalar wins, repeated messages merge",
                body("v1", "Secret", &[
                    meta("s", vec![]),
                    m(1, &[s(3, "ns1")]),
                    kv(2, "password", s(2, "s3cret")),
                    s(3, "kubernetes.io/tls"),
                    s(3, "Opaque"),
                ]),
                Ok(json!({"apiVersion": "v1", "kind": "Secret",
                          "metadata": {"name": "s", "namespace": "ns1"},
                          "data": {"password": "czNjcmV0"}, "type": "Opaque"})),
            ),
            (
                "serviceaccount",
                body("v1", "ServiceAccount", &[
                    meta("sa", vec![]),
                    m(2, &[s(3, "tok"), s(1, ""), s(2, "")]),
                    m(3, &[s(1, "reg")]),
                    v(4, 1),
                ]),
                Ok(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"},
                          "secrets": [{"name": "tok"}], "imagePullSecrets": [{"name": "reg"}],
                          "automountServiceAccountToken": true})),
            ),
            (
                "service as kubectl create service clusterip foo --tcp=80:8080 marshals it",
                body("v1", "Service", &[
                    meta("foo", vec![kv(11, "app", s(2, "foo"))]),
                    m(2, &[
                        m(1, &[s(1, "80-8080"), s(2, "TCP"), v(3, 80), ios(4, 8080, ""), v(5, 0)]),
                        m(1, &[s(1, "web"), s(2, "TCP"), s(6, ""), v(3, 443), ios(4, 0, "https")]),
                        m(1, &[v(3, 53)]),
                        kv(2, "app", s(2, "foo")),
                        s(3, ""), s(4, "ClusterIP"), s(7, ""), s(8, ""), s(10, ""), s(11, ""),
                        v(12, 0), v(13, 0),
                        m(14, &[m(1, &[v(1, 10800)])]),
                    ]),
                    m(3, &[m(1, &[])]),
                ]),
                Ok(json!({"apiVersion": "v1", "kind": "Service",
                          "metadata": {"name": "foo", "labels": {"app": "foo"}},
                          "spec": {
                              "ports": [
                                  {"name": "80-8080", "protocol": "TCP", "port": 80,
                                   "targetPort": 8080},
                                  {"name": "web", "protocol": "TCP", "appProtocol": "", "port": 443,
                                   "targetPort": "https"},
                                  {"port": 53}
                              ],
                              "selector": {"app": "foo"}, "type": "ClusterIP",
                              "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}}},
                          "status": {"loadBalancer": {}}})),
            ),
            (
                "pod: inline sources, probes, quantities, affinity, packed ints, pointer zeroes",
                body("v1", "Pod", &[
                    meta("web", vec![v(7, 2), m(8, &[v(1, NOV_22), v(2, 999)]), s(14, "f/g")]),
                    m(2, &[
                        m(1, &[s(1, "cfg"), m(2, &[m(19, &[
                            m(1, &[s(1, "app-config")]),
                            m(2, &[s(1, "a"), s(2, "a.txt")]),
                            v(3, 420),
                        ])])]),
                        m(1, &[s(1, "scratch"), m(2, &[m(2, &[s(1, ""), m(2, &[s(1, "1Gi")])])])]),
                        m(2, &[
                            s(1, "app"), s(2, "nginx:1.27"),
                            m(6, &[s(1, ""), v(2, 0), v(3, 80), s(4, "TCP"), s(5, "")]),
                            m(7, &[s(1, "A"), s(2, "b")]),
                            m(7, &[s(1, "POD"), s(2, ""),
                                   m(3, &[m(1, &[s(1, "v1"), s(2, "metadata.name")])])]),
                            m(8, &[kv(1, "cpu", m(2, &[s(1, "500m")])),
                                   kv(2, "memory", m(2, &[s(1, "128Mi")]))]),
                            m(9, &[s(1, "cfg"), v(2, 1), s(3, "/etc/cfg"), s(4, "")]),
                            m(10, &[m(1, &[m(2, &[s(1, "/healthz"), ios(2, 0, "http"), s(3, ""),
                                                  s(4, "HTTP")])]),
                                    v(2, 5), v(3, 1)]),
                            m(11, &[m(1, &[m(3, &[ios(1, 8080, "")])])]),
                            s(14, "IfNotPresent"),
                            m(15, &[v(4, 0), v(7, 0)]),
                            v(16, 0), v(17, 0), v(18, 0),
                        ]),
                        s(3, "Always"), v(4, 30), s(6, "ClusterFirst"),
                        m(14, &[P::B(4, vec![0xe8, 0x07, 0xd0, 0x0f]), v(4, 3000), v(5, 2000)]),
                        m(18, &[m(1, &[m(1, &[m(1, &[m(1, &[
                            s(1, "kubernetes.io/os"), s(2, "In"), s(3, "linux"),
                        ])])])])]),
                        m(22, &[s(1, "k"), s(2, "Exists"), s(3, ""), s(4, "NoSchedule"), v(5, 60)]),
                        v(30, 1),
                    ]),
                    m(3, &[s(1, "Pending"), m(7, &[])]),
                ]),
                Ok(json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "web", "generation": 2,
                                 "creationTimestamp": "2026-11-22T08:00:00Z",
                                 "finalizers": ["f/g"]},
                    "spec": {
                        "volumes": [
                            {"name": "cfg", "configMap": {"name": "app-config",
                                "items": [{"key": "a", "path": "a.txt"}], "defaultMode": 420}},
                            {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}
                        ],
                        "containers": [{
                            "name": "app", "image": "nginx:1.27",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "env": [{"name": "A", "value": "b"},
                                    {"name": "POD", "valueFrom": {"fieldRef":
                                        {"apiVersion": "v1", "fieldPath": "metadata.name"}}}],
                            "resources": {"limits": {"cpu": "500m"},
                                          "requests": {"memory": "128Mi"}},
                            "volumeMounts": [{"name": "cfg", "readOnly": true,
                                              "mountPath": "/etc/cfg"}],
                            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http",
                                                          "scheme": "HTTP"},
                                              "initialDelaySeconds": 5, "timeoutSeconds": 1},
                            "readinessProbe": {"tcpSocket": {"port": 8080}},
                            "imagePullPolicy": "IfNotPresent",
                            "securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": false}
                        }],
                        "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                        "dnsPolicy": "ClusterFirst",
                        "securityContext": {"supplementalGroups": [1000, 2000, 3000],
                                            "fsGroup": 2000},
                        "affinity": {"nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution":
                                {"nodeSelectorTerms": [{"matchExpressions": [
                                    {"key": "kubernetes.io/os", "operator": "In",
                                     "values": ["linux"]}
                                ]}]}}},
                        "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule",
                                         "tolerationSeconds": 60}],
                        "enableServiceLinks": true
                    },
                    "status": {"phase": "Pending"}})),
            ),
            (
                "replicationcontroller with template",
                body("v1", "ReplicationController", &[
                    meta("rc", vec![]),
                    m(2, &[v(1, 0), kv(2, "app", s(2, "x")), m(3, &[
                        meta("", vec![kv(11, "app", s(2, "x"))]),
                        m(2, &[m(2, &[s(1, "c"), s(2, "busybox"), s(3, "sh"), s(4, "-c")])]),
                    ])]),
                    m(3, &[v(1, 0)]),
                ]),
                Ok(json!({"apiVersion": "v1", "kind": "ReplicationController",
                    "metadata": {"name": "rc"},
                    "spec": {"replicas": 0, "selector": {"app": "x"}, "template": {
                        "metadata": {"labels": {"app": "x"}},
                        "spec": {"containers": [{"name": "c", "image": "busybox",
                            "command": ["sh"], "args": ["-c"], "resources": {}}]}}},
                    "status": {"replicas": 0}})),
            ),
            (
                "lease: MicroTime keeps microseconds",
                body("coordination.k8s.io/v1", "Lease", &[
                    meta("node-a", vec![]),
                    m(2, &[s(1, "node-a"), v(2, 40), m(4, &[v(1, NOV_22), v(2, 123_456_789)]),
                           m(3, &[v(1, NOV_22)]), v(5, 0)]),
                ]),
                Ok(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": "node-a"},
                    "spec": {"holderIdentity": "node-a", "leaseDurationSeconds": 40,
                             "acquireTime": "2026-11-22T08:00:00.000000Z",
                             "renewTime": "2026-11-22T08:00:00.123456Z", "leaseTransitions": 0}})),
            ),
            (
                "event: non-omitempty strings always emitted, zero times dropped",
                body("v1", "Event", &[
                    meta("e1", vec![s(3, "default")]),
                    m(2, &[s(1, "Pod"), s(2, "default"), s(3, "web"), s(5, "v1")]),
                    s(3, "Started"), s(4, "Started container"),
                    m(5, &[s(1, "kubelet"), s(2, "node-a")]),
                    m(6, &[v(1, NOV_22)]), m(7, &[v(1, NOV_22 + 90)]), v(8, 3), s(9, "Normal"),
                    m(10, &[]),
                ]),
                Ok(json!({"apiVersion": "v1", "kind": "Event",
                    "metadata": {"name": "e1", "namespace": "default"},
                    "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web",
                                       "apiVersion": "v1"},
                    "reason": "Started", "message": "Started container",
                    "source": {"component": "kubelet", "host": "node-a"},
                    "firstTimestamp": "2026-11-22T08:00:00Z",
                    "lastTimestamp": "2026-11-22T08:01:30Z", "count": 3, "type": "Normal",
                    "reportingComponent": "", "reportingInstance": ""})),
            ),
            (
                "deleteoptions in any group version",
                body("apps/v1", "DeleteOptions", &[
                    v(1, 0), m(2, &[s(1, "uid-1")]), s(4, "Foreground"), s(5, "All"),
                ]),
                Ok(json!({"apiVersion": "apps/v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                          "preconditions": {"uid": "uid-1"}, "propagationPolicy": "Foreground",
                          "dryRun": ["All"]})),
            ),
            (
                "eviction",
                body("policy/v1", "Eviction", &[meta("web", vec![s(3, "ns")]), m(2, &[v(1, 10)])]),
                Ok(json!({"apiVersion": "policy/v1", "kind": "Eviction",
                          "metadata": {"name": "web", "namespace": "ns"},
                          "deleteOptions": {"gracePeriodSeconds": 10}})),
            ),
            (
                "scale: negative int32 from a ten-byte varint",
                body("autoscaling/v1", "Scale", &[
                    meta("d", vec![]), m(2, &[v(1, -1)]), m(3, &[v(1, 0), s(2, "app=x")]),
                ]),
                Ok(json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                          "metadata": {"name": "d"}, "spec": {"replicas": -1},
                          "status": {"replicas": 0, "selector": "app=x"}})),
            ),
            (
                "binding",
                body("v1", "Binding", &[
                    meta("web", vec![]),
                    m(2, &[s(1, "Node"), s(3, "node-a")]),
                ]),
                Ok(json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "web"},
                          "target": {"kind": "Node", "name": "node-a"}})),
            ),
            (
                "endpoints",
                body("v1", "Endpoints", &[meta("svc", vec![]), m(2, &[
                    m(1, &[s(1, "10.0.0.1"), s(3, ""), m(2, &[s(1, "Pod"), s(3, "web")])]),
                    m(2, &[s(1, "10.0.0.2")]),
                    m(3, &[s(1, ""), v(2, 8080), s(3, "TCP")]),
                ])]),
                Ok(json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "svc"},
                    "subsets": [{"addresses": [{"ip": "10.0.0.1",
                                                "targetRef": {"kind": "Pod", "name": "web"}}],
                                 "notReadyAddresses": [{"ip": "10.0.0.2"}],
                                 "ports": [{"port": 8080, "protocol": "TCP"}]}]})),
            ),
            (
                "endpointslice: discovery EndpointPort numbering differs from core",
                body("discovery.k8s.io/v1", "EndpointSlice", &[
                    meta("svc-abc", vec![]), s(4, "IPv4"),
                    m(2, &[s(1, "10.0.0.1"), m(2, &[v(1, 1)]), s(6, "node-a")]),
                    m(3, &[s(1, "http"), s(2, "TCP"), v(3, 8080)]),
                ]),
                Ok(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": "svc-abc"}, "addressType": "IPv4",
                    "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true},
                                   "nodeName": "node-a"}],
                    "ports": [{"name": "http", "protocol": "TCP", "port": 8080}]})),
            ),
            (
                "managed fields with FieldsV1 JSON",
                body("v1", "ConfigMap", &[meta("x", vec![m(17, &[
                    s(1, "kubectl"), s(2, "Update"), s(3, "v1"), m(4, &[v(1, NOV_22)]),
                    s(6, "FieldsV1"), m(7, &[s(1, r#"{"f:data":{".":{},"f:a":{}}}"#)]), s(8, ""),
                ])])]),
                Ok(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x",
                    "managedFields": [{"manager": "kubectl", "operation": "Update",
                        "apiVersion": "v1",
                        "time": "2026-11-22T08:00:00Z", "fieldsType": "FieldsV1",
                        "fieldsV1": {"f:data": {".": {}, "f:a": {}}}}]}})),
            ),
            (
                "poddisruptionbudget with IntOrString pointers and Time map values",
                body("policy/v1", "PodDisruptionBudget", &[
                    meta("pdb", vec![]),
                    m(2, &[ios(1, 0, "50%"), m(2, &[kv(1, "app", s(2, "x"))])]),
                    m(3, &[kv(2, "web-0", m(2, &[v(1, NOV_22)])), v(3, 0)]),
                ]),
                Ok(json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                    "metadata": {"name": "pdb"},
                    "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "x"}}},
                    "status": {"disruptedPods": {"web-0": "2026-11-22T08:00:00Z"},
                               "disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
                               "expectedPods": 0}})),
            ),
            ("not an envelope", br#"{"kind":"Namespace"}"#.to_vec(), Err(NOT_ENVELOPE)),
            ("broken envelope", hex("6b 38 73 00 0a 05 0a"), Err(NOT_ENVELOPE)),
            (
                "unsupported kind",
                body("apps/v1", "Deployment", &[meta("d", vec![])]),
                Err("kind Deployment (apps/v1) are not supported; send application/json"),
            ),
            (
                "kind in another version",
                body("v2", "Pod", &[]),
                Err("protobuf bodies of kind Pod (v2) are not supported"),
            ),
            ("no kind", body("v1", "", &[]), Err("the protobuf envelope does not name a kind")),
            (
                "content encoding",
                [body("v1", "Pod", &[]), enc(&[s(3, "gzip")])].concat(),
                Err("contentEncoding \"gzip\" are not supported"),
            ),
            (
                "truncated object",
                body("v1", "ConfigMap", &[P::B(1, vec![0x0a, 0x05, 0x61])]),
                Err("cannot decode protobuf for kind ConfigMap: metadata: truncated field"),
            ),
            (
                "wrong wire type",
                body("v1", "Pod", &[m(2, &[m(2, &[v(1, 7)])])]),
                Err("for kind Pod: spec.containers[0].name: wrong wire type"),
            ),
            (
                "bad map value",
                body("v1", "ConfigMap", &[kv(2, "k", v(2, 1))]),
                Err("cannot decode protobuf for kind ConfigMap: data[k]: wrong wire type"),
            ),
            (
                "bad IntOrString",
                body("v1", "Service", &[m(2, &[m(1, &[m(4, &[v(1, 2)])])])]),
                Err("spec.ports[0].targetPort: invalid IntOrString type 2"),
            ),
        ];
        for (name, input, expected) in cases {
            check(name, &input, expected);
        }
    }

    fn check(name: &str, input: &[u8], expected: Result<Value, &str>) {
        match (decode(input), expected) {
            // Compare the text, so that the field order (Go's struct order) is checked too.
            (Ok(got), Ok(want)) => assert_eq!(got.to_string(), want.to_string(), "{name}"),
            (Err(got), Err(want)) => assert!(got.contains(want), "{name}: {got:?} lacks {want:?}"),
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn schema_is_consistent() {
        let schema = schema();
        for (name, fields) in schema {
            for (i, field) in fields.iter().enumerate() {
                assert!(
                    fields[..i].iter().all(|f| f.num != field.num),
                    "{name}.{}",
                    field.json
                );
                let mut ty = &field.ty;
                while let Ty::List(inner) | Ty::Map(_, inner) = ty {
                    ty = inner;
                }
                if let Ty::Msg(target) = ty {
                    assert!(
                        schema.contains_key(target),
                        "{name}.{} -> {target}",
                        field.json
                    );
                }
                assert!(
                    field.mode != Mode::Inline || matches!(field.ty, Ty::Msg(_)),
                    "{name}"
                );
            }
        }
        for (_, root) in ROOTS {
            assert!(schema.contains_key(root), "{root}");
        }
    }

    #[test]
    fn formats_durations_like_go() {
        let cases = [
            (0, "0s"),
            (5, "5ns"),
            (1_500, "1.5µs"),
            (1_500_000, "1.5ms"),
            (1_000_000_000, "1s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_500_000_000, "1h2m3.5s"),
            (-2_000_000_000, "-2s"),
        ];
        for (nanos, want) in cases {
            assert_eq!(go_duration(nanos), want, "{nanos}");
            let wire = enc(&[v(1, nanos)]);
            assert_eq!(
                embedded(&Ty::Duration, &wire).unwrap(),
                Some(Value::from(want))
            );
        }
    }
}
