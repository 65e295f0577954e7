//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! Every write records which manager set which fields, as upstream's field manager does:
//! an update takes ownership of the fields it changes (from whoever had them), an apply
//! owns exactly the fields of its configuration, conflicts with other owners of a field
//! whose value it changes unless forced, and removes the fields it applied before and no
//! longer applies (when nobody else owns them).
//!
//! Field sets are kept as sets of paths, each a list of upstream's FieldsV1 path elements
//! (`f:name` for a field, `k:{"name":"c"}` for an item of a list keyed by merge keys,
//! `v:"x"` for an item of a set). Which lists are keyed comes from the patch schema.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::patch;

pub type Path = Vec<String>;
pub type FieldSet = BTreeSet<Path>;

/// Top-level and metadata fields that are the server's, never owned.
const IGNORED_TOP: &[&str] = &["apiVersion", "kind"];
const OWNED_METADATA: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

/// The fields set in `obj` (of `kind`); `status` only for `Some("status")` writes.
pub fn fieldset(kind: &str, obj: &Value, sub: Option<&str>, has_status: bool) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(o) = obj.as_object() else { return out };
    let root = patch::root_type(kind);
    for (k, v) in o {
        if IGNORED_TOP.contains(&k.as_str()) {
            continue;
        }
        let status_write = sub == Some("status");
        if has_status && (k == "status") != status_write {
            continue;
        }
        if k == "metadata" {
            for (mk, mv) in v.as_object().into_iter().flatten() {
                if OWNED_METADATA.contains(&mk.as_str()) {
                    let (ty, strategy, key) = patch::field_meta(Some("ObjectMeta"), mk);
                    walk_field(
                        &mut out,
                        vec!["f:metadata".into()],
                        mk,
                        mv,
                        (ty, strategy, key),
                    );
                }
            }
            continue;
        }
        let meta = patch::field_meta(root, k);
        walk_field(&mut out, vec![], k, v, meta);
    }
    out
}

fn walk_field(
    out: &mut FieldSet,
    mut path: Path,
    name: &str,
    v: &Value,
    (ty, strategy, key): (Option<&'static str>, &'static str, &'static str),
) {
    path.push(format!("f:{name}"));
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, cv) in m {
                walk_field(out, path.clone(), k, cv, patch::field_meta(ty, k));
            }
        }
        Value::Array(items) if strategy == "merge" && !key.is_empty() => {
            for item in items {
                let Some(id) = item_key(item, key) else {
                    out.insert(path.clone());
                    return;
                };
                let mut ip = path.clone();
                ip.push(id);
                out.insert(ip.clone());
                for (k, cv) in item.as_object().into_iter().flatten() {
                    walk_field(out, ip.clone(), k, cv, patch::field_meta(ty, k));
                }
            }
            if items.is_empty() {
                out.insert(path);
            }
        }
        Value::Array(items) if strategy == "merge" => {
            for item in items {
                let mut ip = path.clone();
                ip.push(format!("v:{item}"));
                out.insert(ip);
            }
            if items.is_empty() {
                out.insert(path);
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

fn item_key(item: &Value, key: &str) -> Option<String> {
    let v = item.get(key)?;
    Some(format!("k:{}", json!({ key: v })))
}

/// The value at `path` in `obj`, if present.
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for el in path {
        cur = if let Some(f) = el.strip_prefix("f:") {
            cur.get(f)?
        } else if let Some(k) = el.strip_prefix("k:") {
            let want: Map<String, Value> = serde_json::from_str(k).ok()?;
            cur.as_array()?
                .iter()
                .find(|i| want.iter().all(|(wk, wv)| i.get(wk) == Some(wv)))?
        } else if let Some(v) = el.strip_prefix("v:") {
            let want: Value = serde_json::from_str(v).ok()?;
            cur.as_array()?.iter().find(|i| **i == want)?
        } else {
            return None;
        };
    }
    Some(cur)
}

/// Removes the field or list item at `path` from `obj`.
fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for el in parent_path {
        let next = if let Some(f) = el.strip_prefix("f:") {
            cur.get_mut(f)
        } else if let Some(k) = el.strip_prefix("k:") {
            let Ok(want) = serde_json::from_str::<Map<String, Value>>(k) else {
                return;
            };
            cur.as_array_mut().and_then(|a| {
                a.iter_mut()
                    .find(|i| want.iter().all(|(wk, wv)| i.get(wk) == Some(wv)))
            })
        } else {
            None
        };
        let Some(n) = next else { return };
        cur = n;
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = last.strip_prefix("k:") {
        if let (Ok(want), Some(a)) = (
            serde_json::from_str::<Map<String, Value>>(k),
            cur.as_array_mut(),
        ) {
            a.retain(|i| !want.iter().all(|(wk, wv)| i.get(wk) == Some(wv)));
        }
    } else if let Some(v) = last.strip_prefix("v:") {
        if let (Ok(want), Some(a)) = (serde_json::from_str::<Value>(v), cur.as_array_mut()) {
            a.retain(|i| *i != want);
        }
    }
}

/// FieldsV1 JSON of a set.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for p in set {
        let mut node = &mut root;
        for el in p {
            node = node
                .entry(el.clone())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("nodes are objects");
        }
        if !p.is_empty() {
            node.insert(".".into(), json!({}));
        }
    }
    // A node marked "." with no other children is written as a bare leaf `{}`.
    fn tidy(m: &mut Map<String, Value>) {
        for (_, v) in m.iter_mut() {
            if let Some(c) = v.as_object_mut() {
                if c.len() == 1 && c.contains_key(".") {
                    c.clear();
                } else {
                    tidy(c);
                }
            }
        }
    }
    tidy(&mut root);
    Value::Object(root)
}

/// The set described by FieldsV1 JSON.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn go(m: &Map<String, Value>, path: &mut Path, out: &mut FieldSet) {
        for (k, child) in m {
            if k == "." {
                out.insert(path.clone());
                continue;
            }
            path.push(k.clone());
            match child.as_object() {
                Some(c) if !c.is_empty() => go(c, path, out),
                _ => {
                    out.insert(path.clone());
                }
            }
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    if let Some(m) = v.as_object() {
        go(m, &mut vec![], &mut out);
    }
    out
}

/// One managedFields entry.
#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: String,
    subresource: String,
    api_version: String,
    time: String,
    fields: FieldSet,
}

fn read_entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or("").into(),
            operation: e["operation"].as_str().unwrap_or("Update").into(),
            subresource: e["subresource"].as_str().unwrap_or("").into(),
            api_version: e["apiVersion"].as_str().unwrap_or("v1").into(),
            time: e["time"].as_str().unwrap_or("").into(),
            fields: from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

fn entry_json(e: Entry) -> Value {
    let mut v = json!({
        "manager": e.manager,
        "operation": e.operation,
        "apiVersion": e.api_version,
        "time": e.time,
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(&e.fields),
    });
    if !e.subresource.is_empty() {
        v["subresource"] = json!(e.subresource);
    }
    v
}

fn write_entries(obj: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(entry_json)
        .collect();
    let m = crate::object::meta_mut(obj);
    if list.is_empty() {
        m.remove("managedFields");
    } else {
        m.insert("managedFields".into(), Value::Array(list));
    }
}

/// Who a write is attributed to.
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub sub: Option<&'a str>,
    pub kind: &'a str,
    pub has_status: bool,
}

/// Records an update (create, PUT, non-apply PATCH) from `old` (None: a create) to `new`:
/// the writer takes the fields it changed from every other manager.
///
/// `new` carries `old`'s managedFields. Entries that own none of the changed or removed
/// fields are left as they are (an update usually changes a few fields of a large object).
pub fn track_update(w: &Writer<'_>, old: Option<&Value>, new: &mut Value) {
    let Some(old) = old else {
        let fields = fieldset(w.kind, new, w.sub, w.has_status);
        let entries = vec![update_entry(w, fields)];
        write_entries(new, entries);
        return;
    };
    let changes = changes(w, old, new);
    if changes.changed.is_empty() && changes.removed.is_empty() {
        return;
    }
    let sub = w.sub.unwrap_or("");
    let mine = |e: &Value| {
        e["manager"].as_str().unwrap_or("") == w.manager
            && e["operation"].as_str().unwrap_or("Update") == "Update"
            && e["subresource"].as_str().unwrap_or("") == sub
    };
    let meta = crate::object::meta_mut(new);
    let mut entries = match meta.get_mut("managedFields") {
        Some(Value::Array(entries)) => std::mem::take(entries),
        _ => Vec::new(),
    };
    let mut found = false;
    entries.retain_mut(|e| {
        let is_mine = !found && mine(e);
        found |= is_mine;
        let touched = changes
            .changed
            .iter()
            .chain(&changes.removed)
            .any(|p| fields_v1_holds(&e["fieldsV1"], p));
        if !touched && !is_mine {
            return true;
        }
        let mut fields = from_fields_v1(&e["fieldsV1"]);
        fields.retain(|p| !changes.changed.contains(p) && !changes.removed.contains(p));
        if is_mine {
            fields.extend(changes.changed.iter().cloned());
            e["time"] = json!(crate::object::now_rfc3339());
            e["apiVersion"] = json!(w.api_version);
        }
        e["fieldsV1"] = to_fields_v1(&fields);
        !fields.is_empty()
    });
    if !found && !changes.changed.is_empty() {
        entries.push(entry_json(update_entry(w, changes.changed)));
    }
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(entries));
    }
}

fn update_entry(w: &Writer<'_>, fields: FieldSet) -> Entry {
    Entry {
        manager: w.manager.to_string(),
        operation: "Update".into(),
        subresource: w.sub.unwrap_or("").to_string(),
        api_version: w.api_version.to_string(),
        time: crate::object::now_rfc3339(),
        fields,
    }
}

/// Whether FieldsV1 JSON holds `path` itself (as a leaf or a node marked ".").
fn fields_v1_holds(v: &Value, path: &[String]) -> bool {
    let mut node = v;
    for el in path {
        match node.get(el) {
            Some(n) => node = n,
            None => return false,
        }
    }
    node.as_object()
        .is_some_and(|m| m.is_empty() || m.contains_key("."))
}

/// What an update changed, in the writer's view of the object (see [`fieldset`]).
#[derive(Debug, Default, PartialEq)]
struct Changes {
    /// Fields of the new object whose value differs from the old one's (or that are new).
    changed: FieldSet,
    /// Fields of the old object that the new one no longer has.
    removed: FieldSet,
}

/// The fields `old` → `new` changed: the fields of `new` whose values differ from
/// `old`'s and the fields of `old` gone from `new`. Walks both objects together and
/// skips equal subtrees, so its cost follows the size of the change.
fn changes(w: &Writer<'_>, old: &Value, new: &Value) -> Changes {
    let mut out = Changes::default();
    let root = patch::root_type(w.kind);
    let status_write = w.sub == Some("status");
    let tracked = |k: &str| {
        !IGNORED_TOP.contains(&k)
            && k != "metadata"
            && !(w.has_status && (k == "status") != status_write)
    };
    for (k, o, n) in union(old.as_object(), new.as_object()) {
        if tracked(k) {
            diff_field(
                &mut out,
                &mut Vec::new(),
                k,
                o,
                n,
                patch::field_meta(root, k),
            );
        }
    }
    if !(w.has_status && status_write) {
        let old_meta = old.get("metadata").and_then(Value::as_object);
        let new_meta = new.get("metadata").and_then(Value::as_object);
        for (k, o, n) in union(old_meta, new_meta) {
            if OWNED_METADATA.contains(&k) {
                let mut path = vec!["f:metadata".to_string()];
                diff_field(
                    &mut out,
                    &mut path,
                    k,
                    o,
                    n,
                    patch::field_meta(Some("ObjectMeta"), k),
                );
            }
        }
    }
    out
}

/// The keys of two objects with the value of each in either: `new`'s order, then the
/// keys only `old` has.
fn union<'a>(
    old: Option<&'a Map<String, Value>>,
    new: Option<&'a Map<String, Value>>,
) -> impl Iterator<Item = (&'a str, Option<&'a Value>, Option<&'a Value>)> {
    let from_new = new
        .into_iter()
        .flatten()
        .map(move |(k, n)| (k.as_str(), old.and_then(|o| o.get(k)), Some(n)));
    let only_old = old
        .into_iter()
        .flatten()
        .filter(move |(k, _)| new.is_none_or(|n| !n.contains_key(*k)))
        .map(|(k, o)| (k.as_str(), Some(o), None));
    from_new.chain(only_old)
}

/// [`changes`] for the field `name` under `path`: equal values change nothing; objects
/// on both sides are compared field by field; anything else (scalars, lists, a change of
/// shape) is compared path by path as [`fieldset`] lists them.
fn diff_field(
    out: &mut Changes,
    path: &mut Path,
    name: &str,
    old: Option<&Value>,
    new: Option<&Value>,
    (ty, strategy, key): (Option<&'static str>, &'static str, &'static str),
) {
    if old == new {
        return;
    }
    match (old, new) {
        (Some(Value::Object(o)), Some(Value::Object(n))) if !o.is_empty() && !n.is_empty() => {
            path.push(format!("f:{name}"));
            for (k, o, n) in union(Some(o), Some(n)) {
                diff_field(out, path, k, o, n, patch::field_meta(ty, k));
            }
            path.pop();
        }
        (Some(Value::Array(o)), Some(Value::Array(n)))
            if strategy == "merge" && !key.is_empty() =>
        {
            match (keyed_items(o, key), keyed_items(n, key)) {
                (Some(old_items), Some(new_items)) => {
                    path.push(format!("f:{name}"));
                    diff_items(out, path, &old_items, &new_items, ty);
                    path.pop();
                }
                _ => diff_field_sets(out, path, name, old, new, (ty, strategy, key)),
            }
        }
        _ => diff_field_sets(out, path, name, old, new, (ty, strategy, key)),
    }
}

/// The items of a non-empty list keyed by `key` by their path element (`k:{...}`), when
/// every item has the key and no two share it (else None: compared as whole sets).
fn keyed_items<'a>(items: &'a [Value], key: &str) -> Option<Vec<(String, &'a Value)>> {
    let mut out: Vec<(String, &Value)> = Vec::with_capacity(items.len());
    for item in items {
        let id = item_key(item, key)?;
        if out.iter().any(|(seen, _)| *seen == id) {
            return None;
        }
        out.push((id, item));
    }
    (!out.is_empty()).then_some(out)
}

/// [`diff_field`] for the items of a keyed list at `path`: an item is new, gone, equal,
/// or changed (then the item itself and its differing fields are).
fn diff_items(
    out: &mut Changes,
    path: &mut Path,
    old: &[(String, &Value)],
    new: &[(String, &Value)],
    ty: Option<&'static str>,
) {
    let find = |items: &[(String, &'_ Value)], id: &str| -> Option<usize> {
        items.iter().position(|(i, _)| i == id)
    };
    let whole = |set: &mut FieldSet, path: &Path, id: &str, item: &Value| {
        let mut ip = path.clone();
        ip.push(id.to_string());
        set.insert(ip.clone());
        for (k, v) in item.as_object().into_iter().flatten() {
            walk_field(set, ip.clone(), k, v, patch::field_meta(ty, k));
        }
    };
    for (id, n) in new {
        match find(old, id).map(|i| old[i].1) {
            None => whole(&mut out.changed, path, id, n),
            Some(o) if o == *n => {}
            Some(o) => {
                path.push(id.clone());
                out.changed.insert(path.clone());
                for (k, ov, nv) in union(o.as_object(), n.as_object()) {
                    diff_field(out, path, k, ov, nv, patch::field_meta(ty, k));
                }
                path.pop();
            }
        }
    }
    for (id, o) in old {
        if find(new, id).is_none() {
            whole(&mut out.removed, path, id, o);
        }
    }
}

/// [`diff_field`] by listing the paths of both values, as [`fieldset`] does.
fn diff_field_sets(
    out: &mut Changes,
    path: &mut Path,
    name: &str,
    old: Option<&Value>,
    new: Option<&Value>,
    (ty, strategy, key): (Option<&'static str>, &'static str, &'static str),
) {
    let fields = |v: Option<&Value>| {
        let mut set = FieldSet::new();
        if let Some(v) = v {
            walk_field(&mut set, path.clone(), name, v, (ty, strategy, key));
        }
        set
    };
    let (old_set, new_set) = (fields(old), fields(new));
    // Paths below `path`, relative to the field's own value.
    let depth = path.len() + 1;
    out.changed.extend(
        new_set
            .iter()
            .filter(|p| {
                let rel = &p[depth..];
                old.and_then(|v| value_at(v, rel)) != new.and_then(|v| value_at(v, rel))
            })
            .cloned(),
    );
    out.removed.extend(old_set.difference(&new_set).cloned());
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    pub path: String,
}

/// Upstream's rendering of a path, e.g. `.spec.containers[name="c"].image`.
pub fn render_path(p: &[String]) -> String {
    let mut s = String::new();
    for el in p {
        if let Some(f) = el.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = el.strip_prefix("k:") {
            let m: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = el.strip_prefix("v:") {
            s.push_str(&format!("[{v}]"));
        }
    }
    s
}

/// Server-side apply of `applied` by `w.manager` onto `live`; returns the object to store.
pub fn apply(
    w: &Writer<'_>,
    live: &Value,
    applied: &Value,
    force: bool,
) -> Result<Value, Vec<Conflict>> {
    let mut entries = read_entries(live);
    let applied_set = fieldset(w.kind, applied, w.sub, w.has_status);
    let sub = w.sub.unwrap_or("").to_string();
    let mine = |e: &Entry| e.manager == w.manager && e.operation == "Apply" && e.subresource == sub;
    let mut conflicts = Vec::new();
    let mut conflicting: BTreeMap<usize, FieldSet> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        if mine(e) {
            continue;
        }
        for p in applied_set.intersection(&e.fields) {
            let is_item = p.last().is_some_and(|l| !l.starts_with("f:"));
            if !is_item && value_at(applied, p) != value_at(live, p) {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    api_version: e.api_version.clone(),
                    path: render_path(p),
                });
                conflicting.entry(i).or_default().insert(p.clone());
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    for (i, paths) in conflicting {
        entries[i].fields.retain(|p| !paths.contains(p));
    }
    let kind = w.kind;
    let mut merged = patch::strategic_merge_patch(kind, live, &strip_server_fields(applied))
        .unwrap_or_else(|_| live.clone());
    // Fields this manager applied before, no longer applies, and nobody else owns go away.
    let previous = entries
        .iter()
        .find(|e| mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others: FieldSet = entries
        .iter()
        .filter(|e| !mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let mut gone: Vec<&Path> = previous
        .iter()
        .filter(|p| !applied_set.contains(*p) && !others.contains(*p))
        .filter(|p| !applied_set.iter().any(|a| a.starts_with(p)))
        .collect();
    gone.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in gone {
        remove_at(&mut merged, p);
    }
    let now = crate::object::now_rfc3339();
    let unchanged = |a: &Value, b: &Value| {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("managedFields");
            }
            v
        };
        strip(a) == strip(b)
    };
    let same_object = unchanged(&merged, live);
    match entries.iter().position(mine) {
        Some(i) => {
            // A no-op apply changes nothing, not even the time of the entry.
            if !(same_object && entries[i].fields == applied_set) {
                entries[i].time = now;
            }
            entries[i].fields = applied_set;
            entries[i].api_version = w.api_version.to_string();
        }
        None => entries.push(Entry {
            manager: w.manager.to_string(),
            operation: "Apply".into(),
            subresource: sub,
            api_version: w.api_version.to_string(),
            time: now,
            fields: applied_set,
        }),
    }
    write_entries(&mut merged, entries);
    Ok(merged)
}

/// The managedFields of a new object created by apply.
pub fn apply_create(w: &Writer<'_>, obj: &mut Value, applied: &Value) {
    let fields = fieldset(w.kind, applied, w.sub, w.has_status);
    write_entries(
        obj,
        vec![Entry {
            manager: w.manager.to_string(),
            operation: "Apply".into(),
            subresource: String::new(),
            api_version: w.api_version.to_string(),
            time: crate::object::now_rfc3339(),
            fields,
        }],
    );
}

fn strip_server_fields(applied: &Value) -> Value {
    let mut a = applied.clone();
    if let Some(m) = a.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in [
            "managedFields",
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
        ] {
            m.remove(f);
        }
    }
    a
}

/// The 409 upstream answers for apply conflicts.
pub fn conflict_error(conflicts: &[Conflict]) -> crate::error::ApiError {
    let n = conflicts.len();
    let lines: Vec<String> = conflicts
        .iter()
        .map(|c| {
            format!(
                "conflict with \"{}\" using {}: {}",
                c.manager, c.api_version, c.path
            )
        })
        .collect();
    let message = if n == 1 {
        format!("Apply failed with 1 conflict: {}", lines[0])
    } else {
        format!("Apply failed with {n} conflicts: {}", lines.join("\n"))
    };
    let mut e = crate::error::ApiError::new(409, "Conflict", message);
    e.details = Some(Box::new(json!({
        "causes": conflicts.iter().map(|c| json!({
            "reason": "FieldManagerConflict",
            "message": format!("conflict with \"{}\" using {}", c.manager, c.api_version),
            "field": c.path,
        })).collect::<Vec<_>>(),
    })));
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w<'a>(manager: &'a str) -> Writer<'a> {
        Writer {
            manager,
            api_version: "v1",
            sub: None,
            kind: "Pod",
            has_status: true,
        }
    }

    fn pod(image: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
               "spec": {"containers": [{"name": "c", "image": image}]}})
    }

    #[test]
    fn fields_v1_round_trips_upstream_shape() {
        let set = fieldset("Pod", &pod("x"), None, true);
        let v1 = to_fields_v1(&set);
        assert_eq!(
            v1,
            json!({"f:metadata": {"f:labels": {"f:a": {}}},
                   "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}}})
        );
        assert_eq!(from_fields_v1(&v1), set);
    }

    #[test]
    fn updates_take_ownership_and_apply_conflicts() {
        let mut created = pod("x");
        track_update(&w("kubectl-create"), None, &mut created);
        assert_eq!(
            created["metadata"]["managedFields"][0]["manager"],
            "kubectl-create"
        );
        // Applying a different image conflicts with the creator; the same image does not.
        let err = apply(&w("kubectl"), &created, &pod("y"), false).unwrap_err();
        assert_eq!(
            err,
            vec![Conflict {
                manager: "kubectl-create".into(),
                api_version: "v1".into(),
                path: ".spec.containers[name=\"c\"].image".into()
            }]
        );
        let same = apply(&w("kubectl"), &created, &pod("x"), false).unwrap();
        assert_eq!(
            same["metadata"]["managedFields"].as_array().unwrap().len(),
            2
        );
        // Forcing takes the field over.
        let forced = apply(&w("kubectl"), &created, &pod("y"), true).unwrap();
        assert_eq!(forced["spec"]["containers"][0]["image"], "y");
        let creator = from_fields_v1(&forced["metadata"]["managedFields"][0]["fieldsV1"]);
        assert!(!creator.iter().any(|p| p.last().unwrap() == "f:image"));
    }

    /// [`changes`] as the set algebra it short-cuts: every field of both objects listed,
    /// each of the new object's looked up in both.
    fn changes_of_whole_sets(w: &Writer<'_>, old: &Value, new: &Value) -> Changes {
        let new_set = fieldset(w.kind, new, w.sub, w.has_status);
        let old_set = fieldset(w.kind, old, w.sub, w.has_status);
        Changes {
            changed: new_set
                .iter()
                .filter(|p| value_at(old, p) != value_at(new, p))
                .cloned()
                .collect(),
            removed: old_set.difference(&new_set).cloned().collect(),
        }
    }

    #[test]
    fn changes_are_the_whole_sets_difference() {
        let pending = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "b", "gone": "x"}, "finalizers": ["f/1", "f/2"],
                         "ownerReferences": [{"uid": "u1", "kind": "RC", "name": "r"}],
                         "annotations": {"k": "v"}},
            "spec": {"containers": [{"name": "c", "image": "x", "env": [{"name": "A", "value": "1"}]}],
                     "nodeSelector": {"zone": "a"}, "tolerations": []},
            "status": {"phase": "Pending", "qosClass": "BestEffort",
                       "conditions": [{"type": "PodScheduled", "status": "True"}]}});
        let running = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "c", "new": "y"}, "finalizers": ["f/2", "f/3"],
                         "ownerReferences": [{"uid": "u1", "kind": "RC", "name": "r", "controller": true}]},
            "spec": {"containers": [{"name": "c", "image": "y", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                                    {"name": "d", "image": "z"}],
                     "nodeSelector": "not an object", "tolerations": [{"key": "t"}]},
            "status": {"phase": "Running", "qosClass": "BestEffort", "podIP": "10.42.0.2",
                       "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "c", "ready": true, "state": {"running": {"startedAt": "t"}}}]}});
        let mut writers = vec![w("main"), w("status")];
        writers[1].sub = Some("status");
        let mut no_status = w("all");
        no_status.has_status = false;
        writers.push(no_status);
        let mut emptied = running.clone();
        emptied["metadata"]["labels"] = json!({});
        emptied["status"]["conditions"] = json!([]);
        emptied["spec"]["containers"][0] = json!({"name": "c"});
        // Items without their key or sharing one are compared as whole sets.
        emptied["status"]["containerStatuses"] = json!([{"ready": false}, {"name": "c"}]);
        emptied["spec"]["containers"][1]["env"] =
            json!([{"name": "A"}, {"name": "A", "value": "2"}]);
        let pairs = [
            (&pending, &running),
            (&running, &pending),
            (&running, &emptied),
            (&emptied, &pending),
            (&pending, &pending),
        ];
        for w in &writers {
            for (old, new) in pairs {
                let want = changes_of_whole_sets(w, old, new);
                assert_eq!(changes(w, old, new), want, "{:?} {old} → {new}", w.sub);
                if old != new {
                    assert!(!want.changed.is_empty() || !want.removed.is_empty());
                }
            }
        }
    }

    #[test]
    fn an_update_rewrites_only_the_entries_owning_what_it_changed() {
        let mut live = pod("x");
        live["metadata"]["labels"]["other"] = json!("1");
        track_update(&w("creator"), None, &mut live);
        // A second manager owns the label "other"; a third writes status.
        let mut next = live.clone();
        next["metadata"]["labels"]["other"] = json!("2");
        track_update(&w("labeller"), Some(&live), &mut next);
        let mut st = w("kubelet");
        st.sub = Some("status");
        let live = next;
        let mut next = live.clone();
        next["status"] = json!({"phase": "Running"});
        // An entry in a form this server does not write itself is kept as it is.
        next["metadata"]["managedFields"][0]["extra"] = json!("kept");
        let before = next["metadata"]["managedFields"].clone();
        track_update(&st, Some(&live), &mut next);
        let after = next["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(after.len(), 3);
        assert_eq!(after[..2], before.as_array().unwrap()[..]);
        assert_eq!(after[2]["manager"], "kubelet");
        assert_eq!(after[2]["subresource"], "status");
        // The creator loses the image it no longer set; the labeller keeps its label.
        let live = next;
        let mut next = live.clone();
        next["spec"]["containers"][0]["image"] = json!("y");
        track_update(&w("labeller"), Some(&live), &mut next);
        let entries = next["metadata"]["managedFields"].as_array().unwrap();
        let creator = from_fields_v1(&entries[0]["fieldsV1"]);
        let image: Path = ["f:spec", "f:containers", "k:{\"name\":\"c\"}", "f:image"]
            .map(String::from)
            .into();
        assert!(!creator.contains(&image));
        assert_eq!(entries[0]["extra"], "kept");
        let labeller = from_fields_v1(&entries[1]["fieldsV1"]);
        assert!(labeller.contains(&image));
        let label: Path = ["f:metadata", "f:labels", "f:other"]
            .map(String::from)
            .into();
        assert!(labeller.contains(&label));
        assert_eq!(entries[2], live["metadata"]["managedFields"][2]);
        // Nothing changed: the entries stay as they are, times too.
        let mut same = next.clone();
        track_update(&w("labeller"), Some(&next), &mut same);
        assert_eq!(same, next);
    }

    #[test]
    fn apply_removes_fields_it_no_longer_applies() {
        let mut base = pod("x");
        base["metadata"]["labels"]["extra"] = json!("1");
        let mut live = apply(&w("mgr"), &json!({"metadata": {"name": "p"}}), &base, false).unwrap();
        let mut next = pod("x");
        next["metadata"]["labels"] = json!({"a": "b"});
        live = apply(&w("mgr"), &live, &next, false).unwrap();
        assert_eq!(live["metadata"]["labels"], json!({"a": "b"}));
    }
}
