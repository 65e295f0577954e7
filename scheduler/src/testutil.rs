//! Fixtures for the unit tests: pods and nodes from JSON.

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};

/// Merges `patch` into `base` (objects recursively, anything else replaced).
pub fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

pub fn pod(v: Value) -> Pod {
    serde_json::from_value(v).expect("a pod")
}

/// A ready node with this allocatable cpu, memory and pod count, `extra` merged in.
pub fn node(name: &str, cpu: &str, memory: &str, pods: i64, extra: Value) -> Node {
    let mut v = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": pods.to_string()},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    });
    merge(&mut v, extra);
    serde_json::from_value(v).expect("a node")
}

/// A pod `ns/name` with one container requesting `cpu`/`memory` (omitted when empty),
/// `extra` merged in (a `spec.containers` there replaces the default container).
pub fn pod_req(ns: &str, name: &str, cpu: &str, memory: &str, extra: Value) -> Pod {
    let mut req = serde_json::Map::new();
    if !cpu.is_empty() {
        req.insert("cpu".into(), json!(cpu));
    }
    if !memory.is_empty() {
        req.insert("memory".into(), json!(memory));
    }
    let mut v = json!({
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}")},
        "spec": {
            "schedulerName": "default-scheduler",
            "containers": [{"name": "c", "image": "busybox", "resources": {"requests": req}}],
        },
    });
    merge(&mut v, extra);
    pod(v)
}
