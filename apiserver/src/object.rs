//! Helpers over objects as JSON: metadata access, timestamps, names, stored encoding.

use rand::Rng;
use serde_json::{Map, Value};

/// `metadata` of an object, created if absent.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = Value::Object(Map::new());
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or("")
}

pub fn namespace(obj: &Value) -> Option<&str> {
    meta_str(obj, "namespace")
}

pub fn labels(obj: &Value) -> Map<String, Value> {
    obj.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Now, as upstream writes `metav1.Time` (RFC 3339, seconds).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn rfc3339_in(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Upstream's name generator: the prefix plus five characters from a reduced alphabet.
pub fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    let prefix = if prefix.len() > 58 {
        &prefix[..58]
    } else {
        prefix
    };
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// The bytes stored for an object: its JSON without `resourceVersion` (the store's
/// revision is the resource version).
pub fn encode_stored(obj: &Value) -> Vec<u8> {
    serde_json::to_vec(&WithoutResourceVersion(obj)).expect("JSON values always encode")
}

/// Whether two objects are stored as the same: equal but for `metadata.resourceVersion`
/// (and the order of fields, which JSON objects do not have).
pub fn same_when_stored(a: &Value, b: &Value) -> bool {
    fn equal_but(a: &Map<String, Value>, b: &Map<String, Value>, skip: &str) -> bool {
        let len = |m: &Map<String, Value>| m.len() - usize::from(m.contains_key(skip));
        len(a) == len(b) && a.iter().all(|(k, v)| k == skip || b.get(k) == Some(v))
    }
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter().all(|(k, v)| match (k.as_str(), v, b.get(k)) {
                    ("metadata", Value::Object(am), Some(Value::Object(bm))) => {
                        equal_but(am, bm, "resourceVersion")
                    }
                    (_, v, other) => other == Some(v),
                })
        }
        _ => a == b,
    }
}

/// Serializes an object as it is but for `metadata.resourceVersion`, without copying it
/// (a pod's update encodes the object twice; a deep copy each time cost more than the
/// encoding).
struct WithoutResourceVersion<'a>(&'a Value);

impl serde::Serialize for WithoutResourceVersion<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Value::Object(top) = self.0 else {
            return self.0.serialize(s);
        };
        let mut m = s.serialize_map(Some(top.len()))?;
        for (k, v) in top {
            match v {
                Value::Object(meta) if k == "metadata" => {
                    m.serialize_entry(k, &Skipping(meta, "resourceVersion"))?
                }
                _ => m.serialize_entry(k, v)?,
            }
        }
        m.end()
    }
}

/// A JSON object without one of its keys.
struct Skipping<'a>(&'a serde_json::Map<String, Value>, &'static str);

impl serde::Serialize for Skipping<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let n = self.0.len() - usize::from(self.0.contains_key(self.1));
        let mut m = s.serialize_map(Some(n))?;
        for (k, v) in self.0.iter().filter(|(k, _)| *k != self.1) {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// The PartialObjectMetadata of an object read from the store (resource version set),
/// parsing only its metadata: the rest of the bytes is skimmed, never built.
pub fn decode_stored_metadata(bytes: &[u8], rev: i64) -> Value {
    #[derive(serde::Deserialize)]
    struct OnlyMetadata {
        #[serde(default)]
        metadata: Map<String, Value>,
    }
    let mut metadata = serde_json::from_slice::<OnlyMetadata>(bytes)
        .map(|o| o.metadata)
        .unwrap_or_default();
    metadata.insert("resourceVersion".into(), Value::String(rev.to_string()));
    crate::table::partial_object_metadata(Value::Object(metadata))
}

/// An object read from the store, with its resource version set.
pub fn decode_stored(bytes: &[u8], rev: i64) -> Value {
    let mut v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    if v.is_object() {
        meta_mut(&mut v).insert("resourceVersion".into(), Value::String(rev.to_string()));
    }
    v
}

/// Walks `obj` by a dotted path, e.g. `spec.nodeName`.
pub fn path<'a>(obj: &'a Value, p: &str) -> Option<&'a Value> {
    p.split('.').try_fold(obj, |v, k| v.get(k))
}

/// Appends the stored object `bytes` to `out` with `metadata.resourceVersion` set to `rev`,
/// without decoding it (stored objects are written by [`encode_stored`]: `metadata` is an
/// object that comes before any field that could contain the text `"metadata":{`).
pub fn splice_resource_version(out: &mut Vec<u8>, bytes: &[u8], rev: i64) {
    const META: &[u8] = b"\"metadata\":{";
    match bytes.windows(META.len()).position(|w| w == META) {
        Some(i) => {
            let at = i + META.len();
            out.extend_from_slice(&bytes[..at]);
            out.extend_from_slice(format!("\"resourceVersion\":\"{rev}\"").as_bytes());
            if bytes.get(at) != Some(&b'}') {
                out.push(b',');
            }
            out.extend_from_slice(&bytes[at..]);
        }
        None => {
            let v = decode_stored(bytes, rev);
            out.extend_from_slice(&serde_json::to_vec(&v).unwrap_or_default());
        }
    }
}

/// What a selector can read of an object read from the store, parsed without the rest: the
/// top level's scalars; `metadata`'s scalars and its labels; the scalars of each other
/// top-level object (`spec`, `status`, an event's `involvedObject`, …) and of the objects
/// in their arrays (`status.podIPs`). Every field [`crate::selector::object_fields`] reads
/// is among them, so a watch matches field and label selectors on this view instead of a
/// whole parse (a pod's managed fields, containers and volumes are skimmed, never built).
pub fn decode_selectable(bytes: &[u8]) -> Value {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Pruned(Keep::Top)
        .deserialize(&mut de)
        .ok()
        .flatten()
        .unwrap_or(Value::Null)
}

/// How much of a JSON value [`Pruned`] keeps, by where it is.
#[derive(Clone, Copy, PartialEq)]
enum Keep {
    /// The object itself.
    Top,
    /// `metadata`: its scalars and labels.
    Metadata,
    /// A member of the top level other than `metadata`.
    TopMember,
    /// A member of such an object: scalars, and arrays of objects.
    Nested,
    /// An element of such an array.
    Element,
    /// Scalars only.
    Scalar,
    /// All of it.
    Whole,
}

/// Parses a value, keeping what [`Keep`] says; `None` for a value skimmed over.
struct Pruned(Keep);

impl<'de> serde::de::DeserializeSeed<'de> for Pruned {
    type Value = Option<Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        if self.0 == Keep::Whole {
            return <Value as serde::Deserialize>::deserialize(d).map(Some);
        }
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Pruned {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Option<Value>, E> {
        Ok(Some(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Option<Value>, E> {
        Ok(Some(Value::String(v.to_string())))
    }

    fn visit_unit<E>(self) -> Result<Option<Value>, E> {
        Ok(Some(Value::Null))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<Option<Value>, A::Error> {
        if matches!(self.0, Keep::Nested | Keep::Scalar | Keep::Whole) {
            while map
                .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                .is_some()
            {}
            return Ok(None);
        }
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let keep = match self.0 {
                Keep::Top if key == "metadata" => Keep::Metadata,
                Keep::Top => Keep::TopMember,
                Keep::Metadata if key == "labels" => Keep::Whole,
                Keep::TopMember => Keep::Nested,
                // Metadata's other members and an array's objects' members.
                _ => Keep::Scalar,
            };
            if let Some(v) = map.next_value_seed(Pruned(keep))? {
                out.insert(key, v);
            }
        }
        Ok(Some(Value::Object(out)))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> Result<Option<Value>, A::Error> {
        if self.0 != Keep::Nested {
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            return Ok(None);
        }
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Pruned(Keep::Element))? {
            out.extend(v);
        }
        Ok(Some(Value::Array(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Objects of the kinds with field selectors, with fields at every depth they are read.
    fn selectable_samples() -> Vec<(&'static str, &'static str, Value)> {
        vec![
            (
                "",
                "pods",
                json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "x", "tier": "db"},
                    "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}],
                    "ownerReferences": [{"name": "rc", "uid": "u"}]},
                "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "s",
                    "serviceAccountName": "sa", "hostNetwork": true,
                    "containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}],
                    "affinity": {"nodeAffinity": {}}},
                "status": {"phase": "Running", "nominatedNodeName": "n2",
                    "podIPs": [{"ip": "10.42.0.5"}], "conditions": [{"type": "Ready", "status": "True"}]}}),
            ),
            (
                "",
                "pods",
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "q"},
                "spec": {}, "status": {"podIP": "10.42.0.6", "podIPs": [{"ip": "10.42.0.6"}]}}),
            ),
            (
                "",
                "events",
                json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "ns"},
                "involvedObject": {"kind": "Pod", "namespace": "ns", "name": "p", "uid": "u",
                    "apiVersion": "v1", "resourceVersion": "7", "fieldPath": "spec.containers{c}"},
                "reason": "Started", "type": "Normal", "source": {"component": "kubelet", "host": "n1"}}),
            ),
            (
                "events.k8s.io",
                "events",
                json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": "e2"}, "regarding": {"kind": "Node", "name": "n1"},
                "reportingController": "c", "deprecatedSource": {"component": "d"}}),
            ),
            (
                "",
                "secrets",
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                "type": "Opaque", "data": {"k": "dg=="}}),
            ),
            (
                "",
                "namespaces",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Terminating"}}),
            ),
            (
                "",
                "nodes",
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                "spec": {"unschedulable": true, "taints": [{"key": "k", "effect": "NoSchedule"}]},
                "status": {"images": [{"names": ["a", "b"], "sizeBytes": 1}]}}),
            ),
            (
                "",
                "replicationcontrollers",
                json!({"apiVersion": "v1", "kind": "ReplicationController",
                "metadata": {"name": "rc"}, "spec": {"replicas": 3, "template": {"metadata": {}}},
                "status": {"replicas": 2}}),
            ),
            (
                "",
                "services",
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
                "spec": {"clusterIP": "10.43.0.9", "type": "NodePort", "ports": [{"port": 80}]}}),
            ),
        ]
    }

    #[test]
    fn the_selectable_view_holds_what_selectors_read() {
        for (group, resource, obj) in selectable_samples() {
            let view = decode_selectable(&encode_stored(&obj));
            assert_eq!(
                crate::selector::object_fields(group, resource, &view),
                crate::selector::object_fields(group, resource, &obj),
                "{resource}: {view}"
            );
            assert_eq!(labels(&view), labels(&obj), "{resource}");
        }
        let pod = decode_selectable(&encode_stored(&selectable_samples()[0].2));
        assert!(pod["metadata"].get("managedFields").is_none(), "{pod}");
        assert!(pod["spec"].get("affinity").is_none(), "{pod}");
        assert_eq!(
            pod["spec"]["containers"],
            json!([{"name": "c", "image": "i"}])
        );
        assert_eq!(decode_selectable(b"not json"), Value::Null);
    }

    #[test]
    fn splicing_matches_decoding() {
        for obj in [
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}),
            json!({"kind": "X"}),
        ] {
            let stored = encode_stored(&obj);
            let mut out = Vec::new();
            splice_resource_version(&mut out, &stored, 42);
            let spliced: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(spliced, decode_stored(&stored, 42));
        }
    }

    #[test]
    fn stored_bytes_are_the_object_without_its_resource_version() {
        let obj = json!({"kind": "Pod", "metadata": {"name": "p", "resourceVersion": "7", "uid": "u"},
            "spec": {"resourceVersion": "kept"}});
        let stored: Value = serde_json::from_slice(&encode_stored(&obj)).unwrap();
        assert_eq!(
            stored,
            json!({"kind": "Pod", "metadata": {"name": "p", "uid": "u"},
            "spec": {"resourceVersion": "kept"}})
        );
        // Keys keep their order, so an unchanged object encodes to the same bytes.
        assert_eq!(
            String::from_utf8(encode_stored(&obj)).unwrap(),
            r#"{"kind":"Pod","metadata":{"name":"p","uid":"u"},"spec":{"resourceVersion":"kept"}}"#
        );
        assert_eq!(encode_stored(&json!([1])), b"[1]");
    }
}

#[cfg(test)]
mod same_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_stored_the_same_are_equal_but_for_their_resource_version() {
        let a = json!({"kind": "Pod", "metadata": {"name": "p", "resourceVersion": "1", "labels": {"a": "b"}},
                       "spec": {"x": 1}});
        let same = [
            json!({"kind": "Pod", "metadata": {"name": "p", "resourceVersion": "2", "labels": {"a": "b"}},
                   "spec": {"x": 1}}),
            json!({"kind": "Pod", "metadata": {"labels": {"a": "b"}, "name": "p"}, "spec": {"x": 1}}),
            json!({"spec": {"x": 1}, "metadata": {"name": "p", "labels": {"a": "b"}}, "kind": "Pod"}),
        ];
        for b in &same {
            assert!(same_when_stored(&a, b), "{b}");
            assert!(same_when_stored(b, &a), "{b}");
            assert_eq!(
                serde_json::from_slice::<Value>(&encode_stored(&a)).unwrap(),
                serde_json::from_slice::<Value>(&encode_stored(b)).unwrap()
            );
        }
        let different = [
            json!({"kind": "Pod", "metadata": {"name": "p", "labels": {"a": "c"}}, "spec": {"x": 1}}),
            json!({"kind": "Pod", "metadata": {"name": "p", "resourceVersion": "1"}, "spec": {"x": 1}}),
            json!({"kind": "Pod", "metadata": {"name": "p", "resourceVersion": "1", "labels": {"a": "b"}}}),
            json!({"kind": "Pod", "metadata": {"name": "p", "resourceVersion": "1", "labels": {"a": "b"}, "uid": "u"},
                   "spec": {"x": 1}}),
            json!({"kind": "Pod", "metadata": {"name": "p", "generation": 1, "labels": {"a": "b"}},
                   "spec": {"x": 1}}),
        ];
        for b in &different {
            assert!(!same_when_stored(&a, b), "{b}");
            assert!(!same_when_stored(b, &a), "{b}");
        }
    }
}
