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
    serde_json::json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
