//! meta.k8s.io/v1 Table and PartialObjectMetadata responses, from the printers' columns.

use serde_json::{json, Value};

use crate::printers;
use crate::resources::Resource;

/// PartialObjectMetadata of an object.
pub fn partial_metadata(obj: &Value) -> Value {
    partial_object_metadata(obj.get("metadata").cloned().unwrap_or_else(|| json!({})))
}

/// The PartialObjectMetadata holding `metadata`.
pub fn partial_object_metadata(metadata: Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
    })
}

/// A Table of `items`; `include` is the `includeObject` parameter (None, Metadata, Object).
pub fn to_table(
    res: &Resource,
    items: &[Value],
    rv: &str,
    include: Option<&str>,
    with_columns: bool,
    cont: Option<String>,
) -> Value {
    let now = chrono::Utc::now();
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let object = match include.unwrap_or("Metadata") {
                "None" => Value::Null,
                "Object" => obj.clone(),
                _ => partial_metadata(obj),
            };
            let mut row = json!({"cells": printers::cells(res.group, res.plural, obj, now)});
            if !object.is_null() {
                row["object"] = object;
            }
            row
        })
        .collect();
    let mut meta = json!({"resourceVersion": rv});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    let mut t = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "rows": rows,
    });
    if with_columns {
        t["columnDefinitions"] = printers::columns(res.group, res.plural)
            .into_iter()
            .map(|c| {
                json!({"name": c.name, "type": c.type_, "format": c.format,
                       "description": c.description, "priority": c.priority})
            })
            .collect();
    } else {
        t["columnDefinitions"] = Value::Null;
    }
    t
}
