//! events.k8s.io/v1 Events are core v1 Events in storage, converted as upstream does
//! (pkg/apis/events/v1 conversion): regarding ↔ involvedObject, note ↔ message,
//! reportingController ↔ reportingComponent, deprecated* ↔ source, first/lastTimestamp, count.

use serde_json::{Map, Value};

/// (events.k8s.io field, core field)
const RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// Renames fields; `forward` maps events.k8s.io names to core names.
fn rename(v: Value, forward: bool, api_version: &str) -> Value {
    let Value::Object(m) = v else { return v };
    let mut out = Map::new();
    for (k, val) in m {
        let key = RENAMES
            .iter()
            .map(|&(e, c)| if forward { (e, c) } else { (c, e) })
            .find(|(from, _)| *from == k)
            .map(|(_, to)| to.to_string())
            .unwrap_or(k);
        out.insert(key, val);
    }
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    Value::Object(out)
}

/// An events.k8s.io/v1 Event as the core v1 Event stored for it.
pub fn to_core(v: Value) -> Value {
    rename(v, true, "v1")
}

/// A stored core v1 Event as events.k8s.io/v1 serves it.
pub fn from_core(v: Value) -> Value {
    rename(v, false, "events.k8s.io/v1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_between_the_two_forms() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "message": "m", "reason": "R",
            "source": {"component": "kubelet"}, "count": 2, "reportingComponent": "kubelet"});
        let ev = from_core(core.clone());
        assert_eq!(ev["apiVersion"], "events.k8s.io/v1");
        assert_eq!(ev["regarding"]["name"], "p");
        assert_eq!(ev["note"], "m");
        assert_eq!(ev["deprecatedCount"], 2);
        assert_eq!(ev["reportingController"], "kubelet");
        assert_eq!(to_core(ev), core);
    }
}
