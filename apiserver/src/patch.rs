//! PATCH bodies as kube-apiserver applies them.
//!
//! * `application/merge-patch+json`: RFC 7386 as implemented by
//!   `gopkg.in/evanphx/json-patch.v4` `MergePatch` (the version the apiserver uses).
//! * `application/strategic-merge-patch+json`: a port of
//!   `k8s.io/apimachinery/pkg/util/strategicpatch` `StrategicMergeMapPatch` (v0.33), with the
//!   `patchStrategy`/`patchMergeKey` struct tags of the supported kinds in [`SCHEMA`].
//!
//! Error messages are upstream's `err.Error()` text. The apiserver turns the `invalid patch
//! format of …` errors into 400 BadRequest, `lists of lists are not supported` into 422, and
//! passes every other one through as a 500 InternalError; where upstream's code panics the
//! message is [`PANIC_MESSAGE`] (a text/plain 500).
//!
//! As upstream, values the patch adds are kept as sent but for `$patch` maps and, under a key new
//! to the object, nulls: a `$retainKeys` or a null inside an appended list item, a replaced list
//! or a `$patch: replace` map stays, for the typed decoding of the result to drop (or, with
//! strict field validation, to report).

use serde_json::{Map, Value};

type Obj = Map<String, Value>;
type Res<T> = Result<T, PatchError>;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PatchError {
    #[error("{0}")]
    Invalid(String),
}

/// The text of the 500 (text/plain) kube-apiserver answers with when patching panics, which
/// upstream's code does where Go's `==` or a map lookup meets a map or a list (e.g. a
/// `$setElementOrder` for a list without merge key whose items are maps).
pub const PANIC_MESSAGE: &str =
    "This request caused apiserver to panic. Look in the logs for details.";

fn fail<T>(msg: impl Into<String>) -> Res<T> {
    Err(PatchError::Invalid(msg.into()))
}

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList";
const SET_ORDER: &str = "$setElementOrder";
const ERR_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const ERR_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const ERR_SET_ORDER: &str = "invalid patch format of setElementOrder list";

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

/// Top-level kinds with a schema. All of them embed `ObjectMeta` as `metadata`.
const KINDS: &[&str] = &[
    "Pod",
    "ReplicationController",
    "PodTemplate",
    "Service",
    "Endpoints",
    "Namespace",
    "Node",
    "Event",
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "Lease",
    "EndpointSlice",
    "Scale",
];

/// (Go type, JSON field, field or list element type, patchStrategy, patchMergeKey): every field
/// that carries a patch tag in k8s.io/api core/v1, coordination/v1, discovery/v1, autoscaling/v1
/// and apimachinery meta/v1 (v0.33) and is reachable from [`KINDS`], plus the struct fields on
/// the way to them. Anything else is plain: maps merge recursively, lists are replaced.
type Entry = (Str, Str, Str, Str, Str);
type Str = &'static str;
#[rustfmt::skip]
const SCHEMA: &[Entry] = &[
    ("ObjectMeta", "finalizers", "string", "merge", ""),
    ("ObjectMeta", "ownerReferences", "OwnerReference", "merge", "uid"),
    ("Pod", "spec", "PodSpec", "", ""),
    ("Pod", "status", "PodStatus", "", ""),
    ("PodSpec", "volumes", "Volume", "merge,retainKeys", "name"),
    ("PodSpec", "initContainers", "Container", "merge", "name"),
    ("PodSpec", "containers", "Container", "merge", "name"),
    // EphemeralContainer inlines EphemeralContainerCommon, whose tagged fields equal Container's.
    ("PodSpec", "ephemeralContainers", "Container", "merge", "name"),
    ("PodSpec", "imagePullSecrets", "LocalObjectReference", "merge", "name"),
    ("PodSpec", "hostAliases", "HostAlias", "merge", "ip"),
    ("PodSpec", "topologySpreadConstraints", "TopologySpreadConstraint", "merge", "topologyKey"),
    ("PodSpec", "schedulingGates", "PodSchedulingGate", "merge", "name"),
    ("PodSpec", "resourceClaims", "PodResourceClaim", "merge,retainKeys", "name"),
    ("Container", "ports", "ContainerPort", "merge", "containerPort"),
    ("Container", "env", "EnvVar", "merge", "name"),
    ("Container", "volumeMounts", "VolumeMount", "merge", "mountPath"),
    ("Container", "volumeDevices", "VolumeDevice", "merge", "devicePath"),
    ("Volume", "ephemeral", "EphemeralVolumeSource", "", ""),
    ("EphemeralVolumeSource", "volumeClaimTemplate", "PersistentVolumeClaimTemplate", "", ""),
    ("PersistentVolumeClaimTemplate", "metadata", "ObjectMeta", "", ""),
    ("PodStatus", "conditions", "PodCondition", "merge", "type"),
    ("PodStatus", "hostIPs", "HostIP", "merge", "ip"),
    ("PodStatus", "podIPs", "PodIP", "merge", "ip"),
    ("PodStatus", "resourceClaimStatuses", "PodResourceClaimStatus", "merge,retainKeys", "name"),
    ("PodStatus", "initContainerStatuses", "ContainerStatus", "", ""),
    ("PodStatus", "containerStatuses", "ContainerStatus", "", ""),
    ("PodStatus", "ephemeralContainerStatuses", "ContainerStatus", "", ""),
    ("ContainerStatus", "volumeMounts", "VolumeMountStatus", "merge", "mountPath"),
    ("ContainerStatus", "allocatedResourcesStatus", "ResourceStatus", "merge", "name"),
    ("ReplicationController", "spec", "ReplicationControllerSpec", "", ""),
    ("ReplicationController", "status", "ReplicationControllerStatus", "", ""),
    ("ReplicationControllerSpec", "template", "PodTemplateSpec", "", ""),
    ("ReplicationControllerStatus", "conditions", "ReplicationControllerCondition", "merge", "type"),
    ("PodTemplate", "template", "PodTemplateSpec", "", ""),
    ("PodTemplateSpec", "metadata", "ObjectMeta", "", ""),
    ("PodTemplateSpec", "spec", "PodSpec", "", ""),
    ("Service", "spec", "ServiceSpec", "", ""),
    ("Service", "status", "ServiceStatus", "", ""),
    ("ServiceSpec", "ports", "ServicePort", "merge", "port"),
    ("ServiceStatus", "conditions", "Condition", "merge", "type"),
    ("Namespace", "status", "NamespaceStatus", "", ""),
    ("NamespaceStatus", "conditions", "NamespaceCondition", "merge", "type"),
    ("Node", "spec", "NodeSpec", "", ""),
    ("Node", "status", "NodeStatus", "", ""),
    ("NodeSpec", "podCIDRs", "string", "merge", ""),
    ("NodeStatus", "conditions", "NodeCondition", "merge", "type"),
    ("NodeStatus", "addresses", "NodeAddress", "merge", "type"),
    ("ServiceAccount", "secrets", "ObjectReference", "merge", "name"),
];

/// upstream's patch_test.go `MergeItem`, so its test cases can be ported verbatim.
#[cfg(test)]
#[rustfmt::skip]
const EXTRA: &[Entry] = &[
    ("mergeItem", "mergingList", "mergeItem", "merge", "name"),
    ("mergeItem", "nonMergingList", "mergeItem", "", ""),
    ("mergeItem", "mergingIntList", "int", "merge", ""),
    ("mergeItem", "mergeItemPtr", "mergeItem", "merge", "name"),
    ("mergeItem", "replacingItem", "", "replace", ""),
    ("mergeItem", "retainKeysMap", "retainKeysMergeItem", "retainKeys", ""),
    ("mergeItem", "retainKeysMergingList", "mergeItem", "merge,retainKeys", "name"),
    ("retainKeysMergeItem", "mergingIntList", "int", "merge", ""),
    ("retainKeysMergeItem", "mergingList", "mergeItem", "merge", "name"),
    ("retainKeysMergeItem", "nonMergingList", "mergeItem", "", ""),
];
#[cfg(not(test))]
const EXTRA: &[Entry] = &[];

/// Patch metadata of one field: the type of the field (of its elements for a list), the patch
/// strategy other than `retainKeys` (which only matters client-side), and the merge key.
#[derive(Clone, Copy, Default)]
struct Meta {
    ty: Option<&'static str>,
    strategy: &'static str,
    key: &'static str,
}

fn lookup(ty: Option<&str>, field: &str) -> Meta {
    let Some(ty) = ty else { return Meta::default() };
    if field == "metadata" && KINDS.contains(&ty) {
        return Meta {
            ty: Some("ObjectMeta"),
            ..Meta::default()
        };
    }
    SCHEMA
        .iter()
        .chain(EXTRA)
        .find(|e| e.0 == ty && e.1 == field)
        .map(|&(_, _, t, s, key)| Meta {
            ty: (!t.is_empty()).then_some(t),
            strategy: s.split(',').find(|s| *s != "retainKeys").unwrap_or(""),
            key,
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// JSON merge patch
// ---------------------------------------------------------------------------------------------

/// RFC 7386 JSON merge patch (null deletes; non-object patch replaces), with evanphx/json-patch
/// v4's pruning: nulls are dropped from object values newly added (also inside arrays) and from a
/// patch that replaces a non-object, but kept as array elements.
pub fn merge_patch(original: &Value, patch: &Value) -> Value {
    match (original, patch) {
        (Value::Object(o), Value::Object(p)) => {
            let mut o = o.clone();
            merge_docs(&mut o, p);
            Value::Object(o)
        }
        (_, Value::Object(_) | Value::Array(_)) => pruned(patch.clone()),
        _ => patch.clone(),
    }
}

fn merge_docs(doc: &mut Obj, patch: &Obj) {
    for (k, v) in patch {
        match (doc.get_mut(k), v) {
            (_, Value::Null) => {
                doc.shift_remove(k);
            }
            (Some(Value::Object(cur)), Value::Object(p)) => merge_docs(cur, p),
            // replacing an object by a non-object keeps the patch value as is
            (Some(cur @ Value::Object(_)), v) => *cur = v.clone(),
            (Some(cur), v) if !cur.is_null() => *cur = pruned(v.clone()),
            (_, v) => {
                doc.insert(k.clone(), pruned(v.clone()));
            }
        }
    }
}

fn pruned(mut v: Value) -> Value {
    discard_nulls(&mut v);
    v
}

// ---------------------------------------------------------------------------------------------
// Strategic merge patch
// ---------------------------------------------------------------------------------------------

/// Strategic merge patch of an object of the given top-level kind (core v1 "Pod",
/// "ReplicationController", "Service", "Endpoints", "Namespace", "Node", "Event", "ConfigMap",
/// "Secret", "ServiceAccount"; coordination.k8s.io/v1 "Lease"; discovery.k8s.io/v1
/// "EndpointSlice"; autoscaling/v1 "Scale"). Kinds not listed behave with no merge keys (lists
/// replaced).
pub fn strategic_merge_patch(
    kind: &str,
    original: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    let Value::Object(original) = original else {
        return fail("invalid JSON document");
    };
    let patch = match patch {
        Value::Object(p) => p.clone(),
        // the apiserver decodes the body into a map: `null` leaves it empty
        Value::Null => Obj::new(),
        other => {
            let t = match other {
                Value::String(_) => "string",
                Value::Number(_) => "number",
                Value::Bool(_) => "bool",
                _ => "array",
            };
            return fail(format!(
                "json: cannot unmarshal {t} into Go value of type map[string]interface {{}}"
            ));
        }
    };
    let root = KINDS
        .iter()
        .chain(EXTRA.iter().map(|e| &e.0))
        .find(|k| **k == kind)
        .copied();
    merge_map(original.clone(), patch, root).map(Value::Object)
}

/// upstream `mergeMap` with `MergeParallelList` and `IgnoreUnmatchedNulls` set.
fn merge_map(mut original: Obj, mut patch: Obj, ty: Option<&'static str>) -> Res<Obj> {
    if let Some(directive) = patch.get(PATCH) {
        return match directive.as_str() {
            Some("replace") => {
                patch.shift_remove(PATCH);
                Ok(patch)
            }
            Some("delete") => Ok(Obj::new()),
            _ => fail(bad_patch_type(directive, &patch)),
        };
    }
    retain_keys(&mut original, &mut patch)?;
    set_element_order(&mut original, &mut patch, ty)?;

    for (k, pv) in patch {
        let delete_list = k.starts_with(DELETE_PRIMITIVE);
        let k = if delete_list {
            match extract_key(&k, DELETE_PRIMITIVE, ERR_PRIMITIVE_LIST)? {
                "" => k, // upstream keeps the prefixed key when the field name is empty
                field => field.to_owned(),
            }
        } else {
            k
        };
        if pv.is_null() {
            original.shift_remove(&k);
            continue;
        }
        let same_type = original.get(&k).map(go_type) == Some(go_type(&pv));
        match (original.get_mut(&k), pv) {
            (Some(Value::Object(o)), Value::Object(p)) => {
                let m = lookup(ty, &k);
                *o = match m.strategy {
                    "replace" => p,
                    _ => merge_map(std::mem::take(o), p, m.ty)?,
                };
            }
            (Some(Value::Array(o)), Value::Array(p)) => {
                *o = merge_slice_handler(std::mem::take(o), p, lookup(ty, &k), delete_list)?.0;
            }
            (Some(o), pv) if same_type => *o = pv,
            _ if delete_list => {}
            (_, mut pv) => {
                discard_nulls(&mut pv);
                match remove_directives(pv) {
                    Some(v) => original.insert(k, v),
                    None => original.shift_remove(&k),
                };
            }
        }
    }
    Ok(original)
}

/// `$retainKeys`: drop the keys of `original` not listed; every non-null key of the patch must
/// be listed.
fn retain_keys(original: &mut Obj, patch: &mut Obj) -> Res<()> {
    let Some(keep) = patch.shift_remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(keep) = keep else {
        return fail(ERR_RETAIN_KEYS);
    };
    keep.iter().try_for_each(go_hashable)?;
    let kept = |k: &str| keep.iter().any(|x| x.as_str() == Some(k));
    let unlisted = patch.iter().any(|(k, v)| {
        !(v.is_null() || k.starts_with(DELETE_PRIMITIVE) || k.starts_with(SET_ORDER) || kept(k))
    });
    if unlisted {
        return fail(ERR_RETAIN_KEYS);
    }
    original.retain(|k, _| kept(k));
    Ok(())
}

/// upstream `mergePatchIntoOriginal`: merges each list that has a `$setElementOrder/<field>` and
/// orders the result: `$setElementOrder` first, then the patch's order, then the live order.
fn set_element_order(original: &mut Obj, patch: &mut Obj, ty: Option<&'static str>) -> Res<()> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ORDER))
        .cloned()
        .collect();
    for key in keys {
        let order = match patch.shift_remove(&key) {
            Some(Value::Array(order)) => order,
            v => return fail(bad_arg_type("[]interface {}", &v.unwrap_or_default())),
        };
        let field = extract_key(&key, SET_ORDER, ERR_SET_ORDER)?.to_owned();
        let as_list = |v: Option<&Value>| match v {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a.clone())),
            Some(v) => fail(bad_arg_type("[]interface {}", v)),
        };
        let original_list = as_list(original.get(&field))?;
        let patch_list = as_list(patch.get(&field))?;
        let m = lookup(ty, &field);
        validate_set_order(patch_list.as_deref().unwrap_or_default(), &order, m.key)?;
        let (merged, server_order) = match (original_list, patch_list.clone()) {
            (Some(o), None) => (o.clone(), o),
            (None, Some(p)) => (
                p.into_iter().filter_map(remove_directives).collect(),
                Vec::new(),
            ),
            (Some(o), Some(p)) => merge_slice_handler(o, p, m, false)?,
            (None, None) => continue,
        };
        let (items, server_only) = partition(merged, &order, m.key)?;
        let kind = elem_type(&[&server_order, patch_list.as_deref().unwrap_or_default()])?;
        let both = normalize_element_order(
            items,
            server_only,
            &order,
            &server_order,
            m.key,
            kind == GoType::Map,
        )?;
        original.insert(field.clone(), Value::Array(both));
        patch.shift_remove(&field);
    }
    Ok(())
}

/// `$setElementOrder` must list the (non-deleted) patch items in the same relative order.
fn validate_set_order(patch_list: &[Value], order: &[Value], key: &str) -> Res<()> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let mut items = Vec::new();
    for v in patch_list {
        match v.as_object() {
            _ if key.is_empty() => items.push(v),
            None => return fail(bad_arg_type("map[string]interface {}", v)),
            Some(m) if m.get(PATCH).and_then(Value::as_str) != Some("delete") => items.push(v),
            _ => {}
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < items.len() && j < order.len() {
        if items[i].get(PATCH).is_some() {
            i += 1;
            continue;
        }
        if merge_key_value_equal(items[i], &order[j], key)? {
            i += 1;
        }
        j += 1;
    }
    if i < items.len() {
        return fail(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ORDER} list:\n{}\n",
            go_list(patch_list),
            go_list(order)
        ));
    }
    Ok(())
}

fn merge_key_value_equal(left: &Value, right: &Value, key: &str) -> Res<bool> {
    if key.is_empty() {
        return go_eq(left, right);
    }
    fn value<'a>(v: &'a Value, key: &str) -> Res<&'a Value> {
        match v {
            Value::Object(m) => m.get(key).map_or_else(|| fail(no_merge_key(m, key)), Ok),
            v => fail(bad_arg_type("map[string]interface {}", v)),
        }
    }
    go_eq(value(left, key)?, value(right, key)?)
}

/// Splits `$deleteFromPrimitiveList/<field>` or `$setElementOrder/<field>` into `<field>`.
fn extract_key<'a>(s: &'a str, prefix: &str, error: &str) -> Res<&'a str> {
    match s.split_once('/') {
        Some((p, rest)) if p == prefix => Ok(rest),
        _ => fail(error),
    }
}

/// A merged list, and the live list as upstream's caller still sees it: a Go slice header of
/// the original length, whose backing array `mergeSlice` deleted from and appended to in place.
type Merged = (Vec<Value>, Vec<Value>);

fn merge_slice_handler(
    original: Vec<Value>,
    patch: Vec<Value>,
    m: Meta,
    delete_list: bool,
) -> Res<Merged> {
    if m.strategy == "merge" || delete_list {
        merge_slice(original, patch, m, delete_list)
    } else {
        Ok((patch, original))
    }
}

/// upstream `mergeSlice`: union of primitives, or merge of maps by merge key, with the order
/// normalized so that patch items keep the patch's order and server-only items are interleaved
/// where the live list had them (items new to the list come before the server-only items that
/// follow them).
fn merge_slice(original: Vec<Value>, patch: Vec<Value>, m: Meta, delete_list: bool) -> Res<Merged> {
    if original.is_empty() && patch.is_empty() {
        return Ok((original, Vec::new()));
    }
    let kind = elem_type(&[&original, &patch])?;
    if kind != GoType::Map {
        if delete_list {
            let kept = original
                .iter()
                .filter(|v| !patch.contains(v))
                .cloned()
                .collect();
            return Ok((kept, original));
        }
        let mut merged = Vec::new();
        for v in original.iter().chain(&patch) {
            if !merged.contains(v) {
                merged.push(v.clone());
            }
        }
        let (items, server_only) = partition(merged, &patch, "")?;
        return Ok((
            normalize_element_order(items, server_only, &patch, &original, "", false)?,
            original,
        ));
    }
    if m.key.is_empty() {
        return fail(format!(
            "cannot merge lists without merge key for {}",
            m.ty.unwrap_or("")
        ));
    }
    let (mut view, len, rest, replace) = special_elements(original, patch, m.key)?;
    let (original, patch) = if replace {
        (rest, Vec::new())
    } else {
        (view[..len].to_vec(), rest)
    };
    let merged = merge_by_key(original.clone(), &patch, m)?;
    if !replace {
        // merged maps over the kept items, the first appended items over the freed tail
        let n = view.len().min(merged.len());
        view[..n].clone_from_slice(&merged[..n]);
    }
    let (items, server_only) = partition(merged, &patch, m.key)?;
    Ok((
        normalize_element_order(items, server_only, &patch, &original, m.key, true)?,
        view,
    ))
}

/// Applies list elements carrying `$patch`: `delete` removes every element with that merge key
/// value (in place, as Go's `append(s[:i], s[i+1:]...)`: the first `len` items of the returned
/// list remain), `replace` (the returned flag) makes the other patch elements the whole list.
fn special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Res<(Vec<Value>, usize, Vec<Value>, bool)> {
    let (mut len, mut rest, mut replace) = (original.len(), Vec::new(), false);
    for v in patch {
        let Some(m) = v.as_object() else {
            unreachable!("elements checked to be maps")
        };
        let Some(directive) = m.get(PATCH) else {
            rest.push(v);
            continue;
        };
        match directive.as_str() {
            Some("delete") => match m.get(key) {
                Some(kv) => {
                    while let Some(i) = find_by_key(&original[..len], key, kv)? {
                        let last = original[len - 1].clone();
                        original[i..len].rotate_left(1);
                        original[len - 1] = last;
                        len -= 1;
                    }
                }
                None => return fail(no_merge_key(m, key)),
            },
            Some("replace") => replace = true,
            Some("merge") => return fail("merging lists cannot yet be specified in the patch"),
            _ => return fail(bad_patch_type(directive, m)),
        }
    }
    Ok((original, len, rest, replace))
}

/// Merges each patch element into the original element with the same merge key value, or
/// appends it (as is) when there is none.
fn merge_by_key(mut original: Vec<Value>, patch: &[Value], m: Meta) -> Res<Vec<Value>> {
    for v in patch {
        let p = v.as_object().expect("elements checked to be maps");
        let Some(kv) = p.get(m.key) else {
            return fail(no_merge_key(p, m.key));
        };
        match find_by_key(&original, m.key, kv)? {
            Some(i) => {
                let Value::Object(o) = std::mem::take(&mut original[i]) else {
                    unreachable!()
                };
                original[i] = Value::Object(merge_map(o, p.clone(), m.ty)?);
            }
            None => original.push(v.clone()),
        }
    }
    Ok(original)
}

fn find_by_key(list: &[Value], key: &str, value: &Value) -> Res<Option<usize>> {
    for (i, v) in list.iter().enumerate() {
        match v.as_object() {
            None => return fail(format!("value for key {i} is not a map")),
            Some(m) => match m.get(key) {
                Some(v) if go_eq(v, value)? => return Ok(Some(i)),
                _ => {}
            },
        }
    }
    Ok(None)
}

/// Splits `merged` into the items present in `by` (compared by merge key for maps) and the rest.
fn partition(merged: Vec<Value>, by: &[Value], key: &str) -> Res<(Vec<Value>, Vec<Value>)> {
    let (mut inside, mut outside) = (Vec::new(), Vec::new());
    if key.is_empty() {
        by.iter().try_for_each(go_hashable)?;
    }
    for v in merged {
        let found = if key.is_empty() {
            go_hashable(&v)?;
            by.contains(&v)
        } else {
            let Some(m) = v.as_object() else {
                return fail(bad_arg_type("map[string]interface {}", &v));
            };
            let Some(kv) = m.get(key) else {
                return fail(no_merge_key(m, key));
            };
            find_by_key(by, key, kv)?.is_some()
        };
        if found { &mut inside } else { &mut outside }.push(v);
    }
    Ok((inside, outside))
}

/// Sorts `patch_items` by `patch_order` and `server_only` by `server_order`, then interleaves
/// them (upstream `normalizeElementOrder` + `mergeSortedSlice`).
fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: &str,
    is_map: bool,
) -> Res<Vec<Value>> {
    let right = normalize_slice_order(patch_items, patch_order, key, is_map)?;
    let left = normalize_slice_order(server_only, server_order, key, is_map)?;
    let (mut left, mut right) = (left.into_iter().peekable(), right.into_iter().peekable());
    let mut out = Vec::new();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => return Ok(out),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (index(server_order, l, key, is_map)?, index(server_order, r, key, is_map)?),
                (Some(a), Some(b)) if a < b
            ),
        };
        out.extend(if take_left { left.next() } else { right.next() });
    }
}

/// Stable sort of `items` by their position in `order`; items marked `$patch: delete` go last.
/// Go's `sort.SliceStable` with upstream's comparator, which calls any pair involving an item
/// missing from `order` "less": replicated with an insertion sort (what Go runs for up to 20
/// items; any stable sort when every item is found).
fn normalize_slice_order(
    items: Vec<Value>,
    order: &[Value],
    key: &str,
    is_map: bool,
) -> Res<Vec<Value>> {
    let (items, deleted): (Vec<_>, Vec<_>) = if is_map {
        for v in items.iter().chain(order) {
            match v.as_object() {
                None => return fail(bad_arg_type("map[string]interface {}", v)),
                Some(m) if !m.contains_key(key) => return fail(no_merge_key(m, key)),
                _ => {}
            }
        }
        items
            .into_iter()
            .partition(|v| v.get(PATCH).and_then(Value::as_str) != Some("delete"))
    } else {
        (items, Vec::new())
    };
    // (memoized position, item); positions are looked up lazily, as Go's comparator does
    let mut keyed: Vec<(Option<Option<usize>>, Value)> =
        items.into_iter().map(|v| (None, v)).collect();
    let pos = |e: &mut (Option<Option<usize>>, Value)| -> Res<Option<usize>> {
        if e.0.is_none() {
            e.0 = Some(index(order, &e.1, key, is_map)?);
        }
        Ok(e.0.flatten())
    };
    for i in 1..keyed.len() {
        let mut j = i;
        while j > 0 {
            let less = match pos(&mut keyed[j])? {
                Some(a) => pos(&mut keyed[j - 1])?.is_none_or(|b| a < b),
                None => true,
            };
            if !less {
                break;
            }
            keyed.swap(j, j - 1);
            j -= 1;
        }
    }
    Ok(keyed.into_iter().map(|(_, v)| v).chain(deleted).collect())
}

/// Position of `value` in `list`, comparing merge key values for maps (a missing key compares
/// equal to another missing key, as Go's nil does).
fn index(list: &[Value], value: &Value, key: &str, is_map: bool) -> Res<Option<usize>> {
    fn get<'a>(v: &'a Value, key: &str, is_map: bool) -> &'a Value {
        match v {
            Value::Object(m) if is_map => m.get(key).unwrap_or(&Value::Null),
            _ if is_map => &Value::Null,
            v => v,
        }
    }
    for (i, v) in list.iter().enumerate() {
        if go_eq(get(v, key, is_map), get(value, key, is_map))? {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// Drops every map carrying `$patch` (and the field or element holding it); `None` when `v` is
/// itself such a map.
fn remove_directives(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) if m.contains_key(PATCH) => None,
        Value::Object(m) => Some(Value::Object(
            m.into_iter()
                .filter_map(|(k, v)| remove_directives(v).map(|v| (k, v)))
                .collect(),
        )),
        Value::Array(a) => Some(Value::Array(
            a.into_iter().filter_map(remove_directives).collect(),
        )),
        v => Some(v),
    }
}

/// Removes null-valued keys from every map nested in `v` (null list elements stay).
fn discard_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(discard_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Go type and formatting helpers (for upstream's type checks and error texts)
// ---------------------------------------------------------------------------------------------

/// The Go dynamic type a decoded JSON value has in the apiserver (numbers are int64 when they
/// are integers that fit, else float64).
#[derive(Clone, Copy, PartialEq, Debug)]
enum GoType {
    Nil,
    Bool,
    Int,
    Float,
    String,
    Slice,
    Map,
}

fn go_type(v: &Value) -> GoType {
    match v {
        Value::Null => GoType::Nil,
        Value::Bool(_) => GoType::Bool,
        Value::Number(n) if n.as_i64().is_some() => GoType::Int,
        Value::Number(_) => GoType::Float,
        Value::String(_) => GoType::String,
        Value::Array(_) => GoType::Slice,
        Value::Object(_) => GoType::Map,
    }
}

/// Go's `==` on two decoded JSON values: false for different dynamic types, a runtime panic for
/// two maps or two slices.
fn go_eq(a: &Value, b: &Value) -> Res<bool> {
    match (go_type(a), go_type(b)) {
        (x, y) if x != y => Ok(false),
        (GoType::Map | GoType::Slice, _) => fail(PANIC_MESSAGE),
        _ => Ok(a == b),
    }
}

/// Using a map or a slice as a Go map key panics.
fn go_hashable(v: &Value) -> Res<()> {
    match go_type(v) {
        GoType::Map | GoType::Slice => fail(PANIC_MESSAGE),
        _ => Ok(()),
    }
}

fn go_type_name(v: &Value) -> &'static str {
    match go_type(v) {
        GoType::Nil => "%!s(<nil>)",
        GoType::Bool => "bool",
        GoType::Int => "int64",
        GoType::Float => "float64",
        GoType::String => "string",
        GoType::Slice => "[]interface {}",
        GoType::Map => "map[string]interface {}",
    }
}

/// The one element type of the given lists (upstream `sliceElementType`).
fn elem_type(lists: &[&[Value]]) -> Res<GoType> {
    let mut prev = None;
    for v in lists.iter().copied().flatten() {
        let t = go_type(v);
        match prev {
            // upstream dereferences a nil reflect.Type here
            None if t == GoType::Nil => return fail(PANIC_MESSAGE),
            None if t == GoType::Slice => return fail("lists of lists are not supported"),
            None => prev = Some(t),
            Some(p) if p != t => {
                let all: Vec<String> = lists.iter().map(|l| go_list(l)).collect();
                return fail(format!(
                    "list element types are not identical: [{}]",
                    all.join(" ")
                ));
            }
            _ => {}
        }
    }
    prev.map_or_else(|| fail("no elements in any of the given slices"), Ok)
}

fn bad_arg_type(expected: &str, actual: &Value) -> String {
    format!(
        "expected a {expected}, but received a {}",
        go_type_name(actual)
    )
}

fn no_merge_key(m: &Obj, key: &str) -> String {
    format!(
        "map: {} does not contain declared merge key: {key}",
        go_map(m, false)
    )
}

fn bad_patch_type(directive: &Value, m: &Obj) -> String {
    let t = match directive {
        Value::String(s) => s.clone(),
        Value::Null => "%!s(<nil>)".into(),
        v => go_fmt(v, true),
    };
    format!("unknown patch type: {t} in map: {}", go_map(m, false))
}

/// Go's `fmt` rendering of a decoded JSON value: `%v`, or `%s` when `s_verb`.
fn go_fmt(v: &Value, s_verb: bool) -> String {
    let scalar = |t: &str, text: String| {
        if s_verb {
            format!("%!s({t}={text})")
        } else {
            text
        }
    };
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => scalar("bool", b.to_string()),
        Value::Number(n) => match n.as_i64() {
            Some(i) => scalar("int64", i.to_string()),
            None => scalar("float64", go_float(n.as_f64().unwrap_or_default())),
        },
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter()
                .map(|v| go_fmt(v, s_verb))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Value::Object(m) => go_map(m, s_verb),
    }
}

fn go_list(l: &[Value]) -> String {
    format!(
        "[{}]",
        l.iter()
            .map(|v| go_fmt(v, false))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn go_map(m: &Obj, s_verb: bool) -> String {
    let mut entries: Vec<_> = m.iter().collect();
    entries.sort_by_key(|(k, _)| *k);
    let body: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{k}:{}", go_fmt(v, s_verb)))
        .collect();
    format!("map[{}]", body.join(" "))
}

/// `%v` of a float64: shortest digits, exponent form when the decimal exponent is < -4 or >= 6.
fn go_float(f: f64) -> String {
    let e = format!("{f:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        format!("{f}")
    } else {
        format!(
            "{mantissa}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    }
}

/// The schema type of a top-level kind, if the schema knows it.
pub fn root_type(kind: &str) -> Option<&'static str> {
    KINDS.iter().find(|k| **k == kind).copied()
}

/// Patch metadata of `field` in type `ty`: the field's (or its elements') type, the patch
/// strategy (`merge` or empty) and the merge key.
pub fn field_meta(
    ty: Option<&'static str>,
    field: &str,
) -> (Option<&'static str>, &'static str, &'static str) {
    let m = lookup(ty, field);
    (m.ty, m.strategy, m.key)
}

/// The patch tags of the schema: (Go type, JSON field, patchStrategy, patchMergeKey) for each
/// field that has a strategy; OpenAPI publishes them as `x-kubernetes-patch-*`.
pub fn patch_tags() -> impl Iterator<Item = (&'static str, &'static str, &'static str, &'static str)>
{
    SCHEMA
        .iter()
        .chain(EXTRA.iter())
        .filter(|e| !e.3.is_empty())
        .map(|&(ty, field, _, strategy, key)| (ty, field, strategy, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kind that routes a case to [`merge_patch`] instead of [`strategic_merge_patch`].
    const MERGE: &str = "application/merge-patch+json";

    /// Runs (kind, original, patch, expected) cases given as JSON text; an expected text of
    /// `error: <message>` expects that error.
    fn check(cases: &[(&str, &str, &str, &str)]) {
        let json =
            |s: &str| serde_json::from_str::<Value>(s).unwrap_or_else(|e| panic!("{e}: {s}"));
        for &(kind, original, patch, expected) in cases {
            let got = match kind {
                MERGE => Ok(merge_patch(&json(original), &json(patch))),
                _ => strategic_merge_patch(kind, &json(original), &json(patch)),
            };
            let want = match expected.strip_prefix("error: ") {
                Some(msg) => Err(PatchError::Invalid(msg.into())),
                None => Ok(json(expected)),
            };
            assert_eq!(got, want, "{kind}: {original} + {patch}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn kubectl_apply() {
        check(&[
            // changing one container's image
            (
                "Pod",
                r#"{"metadata":{"name":"p","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"a\":1}"}},
                    "spec":{"containers":[{"name":"c","image":"nginx:1","resources":{}}],"restartPolicy":"Always"}}"#,
                r#"{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"a\":2}"}},
                    "spec":{"$setElementOrder/containers":[{"name":"c"}],"containers":[{"image":"nginx:2","name":"c"}]}}"#,
                r#"{"metadata":{"name":"p","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"a\":2}"}},
                    "spec":{"containers":[{"name":"c","image":"nginx:2","resources":{}}],"restartPolicy":"Always"}}"#,
            ),
            // removing a label
            ("Pod", r#"{"metadata":{"labels":{"x":"1","y":"2"}}}"#, r#"{"metadata":{"labels":{"x":null}}}"#, r#"{"metadata":{"labels":{"y":"2"}}}"#),
            // removing an env var
            (
                "Pod",
                r#"{"spec":{"containers":[{"name":"c","env":[{"name":"A","value":"1"},{"name":"B","value":"2"},{"name":"C","value":"3"}]}]}}"#,
                r#"{"spec":{"$setElementOrder/containers":[{"name":"c"}],"containers":[{"$setElementOrder/env":[{"name":"A"},{"name":"C"}],"env":[{"$patch":"delete","name":"B"}],"name":"c"}]}}"#,
                r#"{"spec":{"containers":[{"name":"c","env":[{"name":"A","value":"1"},{"name":"C","value":"3"}]}]}}"#,
            ),
            // adding an env var in the middle
            (
                "Pod",
                r#"{"spec":{"containers":[{"name":"c","env":[{"name":"A","value":"1"},{"name":"B","value":"2"}]}]}}"#,
                r#"{"spec":{"containers":[{"$setElementOrder/env":[{"name":"A"},{"name":"N"},{"name":"B"}],"env":[{"name":"N","value":"n"}],"name":"c"}]}}"#,
                r#"{"spec":{"containers":[{"name":"c","env":[{"name":"A","value":"1"},{"name":"N","value":"n"},{"name":"B","value":"2"}]}]}}"#,
            ),
            // ports merge by containerPort
            (
                "Pod",
                r#"{"spec":{"containers":[{"name":"c","ports":[{"containerPort":80,"protocol":"TCP"}]}]}}"#,
                r#"{"spec":{"containers":[{"$setElementOrder/ports":[{"containerPort":80},{"containerPort":443}],"name":"c","ports":[{"containerPort":443,"protocol":"TCP"}]}]}}"#,
                r#"{"spec":{"containers":[{"name":"c","ports":[{"containerPort":80,"protocol":"TCP"},{"containerPort":443,"protocol":"TCP"}]}]}}"#,
            ),
            // service ports merge by port
            (
                "Service",
                r#"{"spec":{"ports":[{"name":"http","port":80,"targetPort":8080},{"name":"https","port":443,"targetPort":8443}],"type":"ClusterIP"}}"#,
                r#"{"spec":{"$setElementOrder/ports":[{"port":80},{"port":443}],"ports":[{"port":80,"targetPort":9090}]}}"#,
                r#"{"spec":{"ports":[{"name":"http","port":80,"targetPort":9090},{"name":"https","port":443,"targetPort":8443}],"type":"ClusterIP"}}"#,
            ),
            // removing a finalizer
            (
                "ConfigMap",
                r#"{"metadata":{"finalizers":["a","b","c"]}}"#,
                r#"{"metadata":{"$deleteFromPrimitiveList/finalizers":["b"],"$setElementOrder/finalizers":["a","c"]}}"#,
                r#"{"metadata":{"finalizers":["a","c"]}}"#,
            ),
            // adding a finalizer in the middle
            (
                "Secret",
                r#"{"metadata":{"finalizers":["a","b"]}}"#,
                r#"{"metadata":{"$setElementOrder/finalizers":["a","z","b"],"finalizers":["z"]}}"#,
                r#"{"metadata":{"finalizers":["a","z","b"]}}"#,
            ),
            // switching a volume's source: $retainKeys clears the old one
            (
                "Pod",
                r#"{"spec":{"volumes":[{"name":"data","configMap":{"name":"cm","defaultMode":420}},{"name":"tmp","emptyDir":{}}]}}"#,
                r#"{"spec":{"$setElementOrder/volumes":[{"name":"data"},{"name":"tmp"}],"volumes":[{"$retainKeys":["name","secret"],"name":"data","secret":{"secretName":"s"}}]}}"#,
                r#"{"spec":{"volumes":[{"name":"data","secret":{"secretName":"s"}},{"name":"tmp","emptyDir":{}}]}}"#,
            ),
            // reordering containers only
            (
                "Pod",
                r#"{"spec":{"containers":[{"name":"a","image":"x"},{"name":"b","image":"y"}]}}"#,
                r#"{"spec":{"$setElementOrder/containers":[{"name":"b"},{"name":"a"}]}}"#,
                r#"{"spec":{"containers":[{"name":"b","image":"y"},{"name":"a","image":"x"}]}}"#,
            ),
            // replication controller: template containers merge by name
            (
                "ReplicationController",
                r#"{"spec":{"replicas":1,"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i:1"},{"name":"d","image":"j:1"}]}}}}"#,
                r#"{"spec":{"replicas":3,"template":{"spec":{"containers":[{"name":"d","image":"j:2"}]}}}}"#,
                r#"{"spec":{"replicas":3,"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i:1"},{"name":"d","image":"j:2"}]}}}}"#,
            ),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn merge_keys() {
        check(&[
            // without $setElementOrder, items new to a list come first (upstream's order normalization)
            (
                "Pod",
                r#"{"spec":{"containers":[{"name":"c","ports":[{"containerPort":80}]}]}}"#,
                r#"{"spec":{"containers":[{"name":"c","ports":[{"containerPort":443},{"containerPort":80,"name":"http"}]}]}}"#,
                r#"{"spec":{"containers":[{"name":"c","ports":[{"containerPort":443},{"containerPort":80,"name":"http"}]}]}}"#,
            ),
            (
                "Scale",
                r#"{"metadata":{"finalizers":["a","b"]},"spec":{"replicas":1}}"#,
                r#"{"metadata":{"finalizers":["b","z"]},"spec":{"replicas":5}}"#,
                r#"{"metadata":{"finalizers":["a","b","z"]},"spec":{"replicas":5}}"#,
            ),
            ("Event", r#"{"metadata":{"finalizers":["a"]}}"#, r#"{"metadata":{"finalizers":["z"]}}"#, r#"{"metadata":{"finalizers":["z","a"]}}"#),
            (
                "Pod",
                r#"{"metadata":{"ownerReferences":[{"uid":"1","kind":"K","name":"a"},{"uid":"2","kind":"K","name":"b"}]}}"#,
                r#"{"metadata":{"ownerReferences":[{"uid":"2","controller":true}]}}"#,
                r#"{"metadata":{"ownerReferences":[{"uid":"1","kind":"K","name":"a"},{"uid":"2","kind":"K","name":"b","controller":true}]}}"#,
            ),
            // kubelet status update
            (
                "Pod",
                r#"{"status":{"phase":"Pending","conditions":[{"type":"Initialized","status":"True"},{"type":"Ready","status":"False"},{"type":"PodScheduled","status":"True"}],"podIPs":[{"ip":"10.0.0.1"}]}}"#,
                r#"{"status":{"$setElementOrder/conditions":[{"type":"Initialized"},{"type":"Ready"},{"type":"PodScheduled"}],"conditions":[{"status":"True","type":"Ready"}],"phase":"Running","podIPs":[{"ip":"fd00::1"}]}}"#,
                r#"{"status":{"phase":"Running","conditions":[{"type":"Initialized","status":"True"},{"type":"Ready","status":"True"},{"type":"PodScheduled","status":"True"}],"podIPs":[{"ip":"fd00::1"},{"ip":"10.0.0.1"}]}}"#,
            ),
            (
                "Pod",
                r#"{"spec":{"ephemeralContainers":[{"name":"dbg","env":[{"name":"A","value":"1"}]}],"imagePullSecrets":[{"name":"r1"}],"hostAliases":[{"ip":"1.1.1.1","hostnames":["a"]}]}}"#,
                r#"{"spec":{"ephemeralContainers":[{"name":"dbg","env":[{"name":"A","value":"2"}]}],"imagePullSecrets":[{"name":"r2"}],"hostAliases":[{"ip":"1.1.1.1","hostnames":["b"]}]}}"#,
                r#"{"spec":{"ephemeralContainers":[{"name":"dbg","env":[{"name":"A","value":"2"}]}],"imagePullSecrets":[{"name":"r2"},{"name":"r1"}],"hostAliases":[{"ip":"1.1.1.1","hostnames":["b"]}]}}"#,
            ),
            (
                "Node",
                r#"{"spec":{"podCIDRs":["10.0.0.0/24"],"taints":[{"key":"a","effect":"NoSchedule"}]},"status":{"conditions":[{"type":"Ready","status":"False"},{"type":"DiskPressure","status":"False"}],"addresses":[{"type":"InternalIP","address":"10.0.0.5"},{"type":"Hostname","address":"n"}]}}"#,
                r#"{"spec":{"podCIDRs":["fd00::/64"],"taints":[{"key":"b","effect":"NoExecute"}]},"status":{"conditions":[{"type":"Ready","status":"True"}],"addresses":[{"type":"Hostname","address":"n2"}]}}"#,
                r#"{"spec":{"podCIDRs":["fd00::/64","10.0.0.0/24"],"taints":[{"key":"b","effect":"NoExecute"}]},"status":{"conditions":[{"type":"Ready","status":"True"},{"type":"DiskPressure","status":"False"}],"addresses":[{"type":"InternalIP","address":"10.0.0.5"},{"type":"Hostname","address":"n2"}]}}"#,
            ),
            (
                "ServiceAccount",
                r#"{"secrets":[{"name":"a"}],"imagePullSecrets":[{"name":"x"}]}"#,
                r#"{"secrets":[{"name":"b"}],"imagePullSecrets":[{"name":"y"}]}"#,
                r#"{"secrets":[{"name":"b"},{"name":"a"}],"imagePullSecrets":[{"name":"y"}]}"#,
            ),
            (
                "Namespace",
                r#"{"status":{"conditions":[{"type":"A","status":"True"}]}}"#,
                r#"{"status":{"conditions":[{"type":"B","status":"True"}]}}"#,
                r#"{"status":{"conditions":[{"type":"B","status":"True"},{"type":"A","status":"True"}]}}"#,
            ),
            // lists without patch strategy are replaced
            (
                "Pod",
                r#"{"spec":{"tolerations":[{"key":"a"}],"containers":[{"name":"c","args":["x","y"]}]}}"#,
                r#"{"spec":{"tolerations":[{"key":"b"}],"containers":[{"name":"c","args":["z"]}]}}"#,
                r#"{"spec":{"tolerations":[{"key":"b"}],"containers":[{"name":"c","args":["z"]}]}}"#,
            ),
            (
                "EndpointSlice",
                r#"{"endpoints":[{"addresses":["10.0.0.1"]}],"ports":[{"port":80}]}"#,
                r#"{"endpoints":[{"addresses":["10.0.0.2"]}]}"#,
                r#"{"endpoints":[{"addresses":["10.0.0.2"]}],"ports":[{"port":80}]}"#,
            ),
            (
                "Endpoints",
                r#"{"subsets":[{"addresses":[{"ip":"10.0.0.1"}]}]}"#,
                r#"{"subsets":[{"addresses":[{"ip":"10.0.0.2"}]}]}"#,
                r#"{"subsets":[{"addresses":[{"ip":"10.0.0.2"}]}]}"#,
            ),
            // unknown kinds have no merge keys, not even for metadata
            (
                "Deployment",
                r#"{"metadata":{"finalizers":["a"]},"spec":{"template":{"spec":{"containers":[{"name":"a"},{"name":"b"}]}}}}"#,
                r#"{"metadata":{"finalizers":["b"]},"spec":{"template":{"spec":{"containers":[{"name":"b","image":"x"}]}}}}"#,
                r#"{"metadata":{"finalizers":["b"]},"spec":{"template":{"spec":{"containers":[{"name":"b","image":"x"}]}}}}"#,
            ),
            // a $patch: delete removing live items makes the new ones take their slots in the
            // order used for $setElementOrder (upstream's in-place slice edits)
            (
                "ServiceAccount",
                r#"{"secrets":[{"name":"s1"},{"name":"s3"}]}"#,
                r#"{"$setElementOrder/secrets":[{"name":"s2"}],"secrets":[{"name":"s2"},{"$patch":"delete","name":"s1"}]}"#,
                r#"{"secrets":[{"name":"s3"},{"name":"s2"}]}"#,
            ),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn maps_and_nulls() {
        check(&[
            ("ConfigMap", r#"{"data":{"a":"1","b":"2"}}"#, r#"{"data":{"a":null,"c":"3"}}"#, r#"{"data":{"b":"2","c":"3"}}"#),
            // nulls inside new values are dropped
            (
                "Pod",
                r#"{"metadata":{"name":"p"}}"#,
                r#"{"metadata":{"annotations":{"a":"1","b":null}}}"#,
                r#"{"metadata":{"name":"p","annotations":{"a":"1"}}}"#,
            ),
            (
                "Lease",
                r#"{"spec":{"holderIdentity":"a","leaseDurationSeconds":15}}"#,
                r#"{"spec":{"holderIdentity":"b","leaseDurationSeconds":null}}"#,
                r#"{"spec":{"holderIdentity":"b"}}"#,
            ),
            ("Pod", r#"{"spec":{"tolerations":[{"key":"a"}]}}"#, r#"{"spec":{"tolerations":null}}"#, r#"{"spec":{}}"#),
            ("Pod", r#"{"spec":{"nodeName":"n"}}"#, r#"{"spec":{"nodeName":{"a":1}}}"#, r#"{"spec":{"nodeName":{"a":1}}}"#),
            // a null patch is an empty one
            ("Pod", r#"{"a":1}"#, "null", r#"{"a":1}"#),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn directives() {
        check(&[
            // $patch: replace / delete in maps
            (
                "Pod",
                r#"{"spec":{"nodeSelector":{"disk":"ssd","zone":"a"}}}"#,
                r#"{"spec":{"nodeSelector":{"$patch":"replace","zone":"b"}}}"#,
                r#"{"spec":{"nodeSelector":{"zone":"b"}}}"#,
            ),
            ("Pod", r#"{"metadata":{"labels":{"a":"b"}}}"#, r#"{"metadata":{"labels":{"$patch":"delete"}}}"#, r#"{"metadata":{"labels":{}}}"#),
            ("Pod", r#"{"metadata":{"name":"p"},"spec":{}}"#, r#"{"$patch":"delete"}"#, "{}"),
            ("Pod", r#"{"metadata":{"name":"p"},"spec":{}}"#, r#"{"$patch":"replace","spec":{"a":1}}"#, r#"{"spec":{"a":1}}"#),
            // $patch: replace / delete in lists
            (
                "Pod",
                r#"{"spec":{"containers":[{"name":"a"},{"name":"b"}]}}"#,
                r#"{"spec":{"containers":[{"$patch":"replace"},{"name":"n","image":"i"}]}}"#,
                r#"{"spec":{"containers":[{"name":"n","image":"i"}]}}"#,
            ),
            (
                "Pod",
                r#"{"spec":{"containers":[{"name":"a"},{"name":"b"}]}}"#,
                r#"{"spec":{"containers":[{"$patch":"delete","name":"a"}]}}"#,
                r#"{"spec":{"containers":[{"name":"b"}]}}"#,
            ),
            // directives are stripped from values new to the object
            (
                "Pod",
                r#"{"spec":{}}"#,
                r#"{"spec":{"initContainers":[{"name":"x","$patch":"delete"},{"name":"y"}]}}"#,
                r#"{"spec":{"initContainers":[{"name":"y"}]}}"#,
            ),
            // $deleteFromPrimitiveList: absent list, list without merge strategy
            ("Pod", r#"{"metadata":{"name":"p"}}"#, r#"{"metadata":{"$deleteFromPrimitiveList/finalizers":["a"]}}"#, r#"{"metadata":{"name":"p"}}"#),
            (
                "Pod",
                r#"{"spec":{"containers":[{"name":"c","args":["a","b","a"]}]}}"#,
                r#"{"spec":{"containers":[{"name":"c","$deleteFromPrimitiveList/args":["a"]}]}}"#,
                r#"{"spec":{"containers":[{"name":"c","args":["b"]}]}}"#,
            ),
            // $setElementOrder for a list the patch adds
            (
                "Pod",
                r#"{"spec":{}}"#,
                r#"{"spec":{"$setElementOrder/initContainers":[{"name":"y"},{"name":"x"}],"initContainers":[{"name":"y"},{"name":"x","$patch":"delete"}]}}"#,
                r#"{"spec":{"initContainers":[{"name":"y"}]}}"#,
            ),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn errors() {
        let panic = format!("error: {PANIC_MESSAGE}");
        check(&[
            ("Pod", r#"{"spec":{"containers":[{"name":"a"}]}}"#, r#"{"spec":{"containers":[{"image":"nginx"}]}}"#, "error: map: map[image:nginx] does not contain declared merge key: name"),
            ("Pod", r#"{"spec":{"containers":[{"name":"a"}]}}"#, r#"{"spec":{"containers":[{"$patch":"delete"}]}}"#, "error: map: map[$patch:delete] does not contain declared merge key: name"),
            ("Pod", r#"{"spec":{"containers":[{"name":"a"}]}}"#, r#"{"spec":{"containers":[{"$patch":"merge"}]}}"#, "error: merging lists cannot yet be specified in the patch"),
            ("Pod", r#"{"spec":{"containers":[{"name":"a"}]}}"#, r#"{"spec":{"containers":[{"$patch":"bogus","name":"a"}]}}"#, "error: unknown patch type: bogus in map: map[$patch:bogus name:a]"),
            ("Pod", r#"{"metadata":{"labels":{"a":"b"}}}"#, r#"{"metadata":{"labels":{"$patch":"merge","a":1}}}"#, "error: unknown patch type: merge in map: map[$patch:merge a:1]"),
            ("Pod", r#"{"spec":{"volumes":[{"name":"v","emptyDir":{}}]}}"#, r#"{"spec":{"volumes":[{"$retainKeys":["name"],"name":"v","secret":{}}]}}"#, "error: invalid patch format of retainKeys"),
            ("Pod", r#"{"spec":{}}"#, r#"{"spec":{"$retainKeys":"name"}}"#, "error: invalid patch format of retainKeys"),
            ("Pod", r#"{"metadata":{"finalizers":["a"]}}"#, r#"{"metadata":{"$deleteFromPrimitiveList":["a"]}}"#, "error: invalid patch format of primitive list"),
            ("Pod", r#"{"metadata":{"finalizers":["a"]}}"#, r#"{"metadata":{"$setElementOrder":["a"]}}"#, "error: invalid patch format of setElementOrder list"),
            ("Pod", r#"{"metadata":{"finalizers":["a"]}}"#, r#"{"metadata":{"$setElementOrder/finalizers":"a"}}"#, "error: expected a []interface {}, but received a string"),
            ("Pod", r#"{"metadata":{"finalizers":["a"]}}"#, r#"{"metadata":{"finalizers":["b",1]}}"#, "error: list element types are not identical: [[a] [b 1]]"),
            ("Pod", r#"{"metadata":{"finalizers":[]}}"#, r#"{"metadata":{"finalizers":[["a"]]}}"#, "error: lists of lists are not supported"),
            (
                "Pod",
                r#"{"spec":{"containers":[{"name":"a"},{"name":"b"}]}}"#,
                r#"{"spec":{"$setElementOrder/containers":[{"name":"a"},{"name":"b"}],"containers":[{"name":"b","image":"x"},{"name":"a","image":"y"}]}}"#,
                "error: The order in patch list:\n[map[image:x name:b] map[image:y name:a]]\n doesn't match $setElementOrder list:\n[map[name:a] map[name:b]]\n",
            ),
            // upstream panics comparing maps ($setElementOrder on a list without merge key)
            ("Pod", r#"{"spec":{"tolerations":[{"key":"a"}]}}"#, r#"{"spec":{"$setElementOrder/tolerations":[{"key":"a"}],"tolerations":[{"key":"a"}]}}"#, &panic),
            ("Pod", r#"{}"#, r#"[{"a":1}]"#, "error: json: cannot unmarshal array into Go value of type map[string]interface {}"),
        ]);
    }

    /// Cases from k8s.io/apimachinery/pkg/util/strategicpatch/patch_test.go, on its `mergeItem`.
    #[test]
    #[rustfmt::skip]
    fn upstream() {
        check(&[
            // nested patch merge with empty list (two-way)
            ("mergeItem", r#"{"name":"hi"}"#, r#"{"mergingList":[{"name":"hello"},{"$patch":"delete","name":"doesntexist"}]}"#, r#"{"name":"hi","mergingList":[{"name":"hello"}]}"#),
            // delete items in lists of scalars (three-way)
            ("mergeItem", r#"{"mergingIntList":[1,2,3,4]}"#, r#"{"$setElementOrder/mergingIntList":[1,2],"$deleteFromPrimitiveList/mergingIntList":[3]}"#, r#"{"mergingIntList":[1,2,4]}"#),
            // merge lists of maps (three-way)
            ("mergeItem", r#"{"mergingList":[{"name":1,"other":"a"},{"name":2,"value":2,"other":"b"}]}"#, r#"{"$setElementOrder/mergingList":[{"name":4},{"name":1},{"name":2},{"name":3}],"mergingList":[{"name":4,"value":4},{"name":3,"value":3}]}"#, r#"{"mergingList":[{"name":4,"value":4},{"name":1,"other":"a"},{"name":2,"value":2,"other":"b"},{"name":3,"value":3}]}"#),
            // add an item in a list of primitives and preserve order (three-way)
            ("mergeItem", r#"{"mergingIntList":[1,4,2]}"#, r#"{"$setElementOrder/mergingIntList":[3,1,2],"mergingIntList":[3]}"#, r#"{"mergingIntList":[3,1,4,2]}"#),
            // set elements order in a list with server-only items 2 (three-way)
            ("mergeItem", r#"{"mergingList":[{"name":1,"other":"a"},{"name":2,"value":2},{"name":9},{"name":3,"value":3},{"name":4,"value":4}]}"#, r#"{"$setElementOrder/mergingList":[{"name":2},{"name":1},{"name":4},{"name":3}]}"#, r#"{"mergingList":[{"name":2,"value":2},{"name":1,"other":"a"},{"name":9},{"name":4,"value":4},{"name":3,"value":3}]}"#),
            // behavior of set element order for a merging list with duplicate (three-way)
            ("mergeItem", r#"{"mergingList":[{"name":1},{"name":2,"value":"dup1"},{"name":3},{"name":2,"value":"dup2"},{"name":4}]}"#, r#"{"$setElementOrder/mergingList":[{"name":2},{"name":1},{"name":4},{"name":3},{"name":2}]}"#, r#"{"mergingList":[{"name":2,"value":"dup1"},{"name":2,"value":"dup2"},{"name":1},{"name":4},{"name":3}]}"#),
            // retainKeys map should clear defaulted field (three-way)
            ("mergeItem", r#"{"retainKeysMap":{"value":"foo"}}"#, r#"{"retainKeysMap":{"$retainKeys":["other"],"other":"bar"}}"#, r#"{"retainKeysMap":{"other":"bar"}}"#),
            // retainKeys list of maps clears a field (three-way)
            ("mergeItem", r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo","value":"a","other":"x"}]}"#, r#"{"$setElementOrder/retainKeysMergingList":[{"name":"bar"},{"name":"foo"}],"retainKeysMergingList":[{"$retainKeys":["name","value"],"name":"foo"}]}"#, r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo","value":"a"}]}"#),
            // retainKeys map nested merging list with no change (three-way)
            ("mergeItem", r#"{"retainKeysMap":{"name":"foo","mergingList":[{"name":"a"},{"name":"b"},{"name":"c"}]}}"#, r#"{"retainKeysMap":{"$retainKeys":["mergingList","name","value"],"$setElementOrder/mergingList":[{"name":"a"},{"name":"b"}],"value":"bar"}}"#, r#"{"retainKeysMap":{"name":"foo","value":"bar","mergingList":[{"name":"a"},{"name":"b"},{"name":"c"}]}}"#),
            // delete and reorder in one list, reorder in another (three-way)
            ("mergeItem", r#"{"mergingList":[{"name":"a","value":"a"},{"name":"b","value":"b"}],"mergeItemPtr":[{"name":"c","value":"c"},{"name":"d","value":"d"}]}"#, r#"{"$setElementOrder/mergingList":[{"name":"b"}],"$setElementOrder/mergeItemPtr":[{"name":"d"},{"name":"c"}],"mergingList":[{"$patch":"delete","name":"a"}]}"#, r#"{"mergingList":[{"name":"b","value":"b"}],"mergeItemPtr":[{"name":"d","value":"d"},{"name":"c","value":"c"}]}"#),
            // replace RawExtension field and merge list (three-way)
            ("mergeItem", r#"{"name":"my-object","value":"some-value","other":"current-other","mergingList":[{"name":1},{"name":3}],"replacingItem":{"Some":"Generic","Yaml":"Inside","The":"RawExtension","Field":"Period"}}"#, r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"name":2}],"replacingItem":{"Newly":"Modified","Yaml":"Inside","The":"RawExtension"}}"#, r#"{"name":"my-object","value":"some-value","other":"current-other","mergingList":[{"name":1},{"name":2},{"name":3}],"replacingItem":{"Newly":"Modified","Yaml":"Inside","The":"RawExtension"}}"#),
            // $deleteFromPrimitiveList should delete item from a list without merge patch strategy (two-way)
            ("mergeItem", r#"{"nonMergingIntList":[1,2,3]}"#, r#"{"$deleteFromPrimitiveList/nonMergingIntList":[2]}"#, r#"{"nonMergingIntList":[1,3]}"#),
            // add map and delete map from merging list (three-way)
            ("mergeItem", r#"{"mergingList":[{"name":1},{"name":2,"other":"b"},{"name":4,"other":"c"}]}"#, r#"{"$setElementOrder/mergingList":[{"name":2},{"name":3}],"mergingList":[{"name":3},{"name":1,"$patch":"delete"}]}"#, r#"{"mergingList":[{"name":2,"other":"b"},{"name":4,"other":"c"},{"name":3}]}"#),
            // delete missing map from merging list (three-way)
            ("mergeItem", r#"{"mergingList":[{"name":2,"other":"b"}]}"#, r#"{"$setElementOrder/mergingList":[{"name":2}],"mergingList":[{"name":1,"$patch":"delete"}]}"#, r#"{"mergingList":[{"name":2,"other":"b"}]}"#),
            // add field to map in merging list nested in merging list (three-way)
            ("mergeItem", r#"{"mergingList":[{"name":1,"other":"a","mergingList":[{"name":1},{"name":2,"value":2}]},{"name":2,"other":"b"}]}"#, r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"name":1,"mergingList":[{"name":1,"value":1}]}]}"#, r#"{"mergingList":[{"name":1,"other":"a","mergingList":[{"name":1,"value":1},{"name":2,"value":2}]},{"name":2,"other":"b"}]}"#),
            // $setElementOrder contains item that is not present in the int list to be merged (two-way)
            ("mergeItem", r#"{"mergingIntList":[1,3]}"#, r#"{"$setElementOrder/mergingIntList":[3,2,1]}"#, r#"{"mergingIntList":[3,1]}"#),
            // (custom) delete all duplicate entries in a merging list
            (
                "mergeItem",
                r#"{"mergingList":[{"name":1},{"name":1},{"name":2,"value":"a"},{"name":3},{"name":3}]}"#,
                r#"{"mergingList":[{"name":1,"$patch":"delete"},{"name":3,"$patch":"delete"}]}"#,
                r#"{"mergingList":[{"name":2,"value":"a"}]}"#,
            ),
            // (custom) preserve the order from the patch in a merging list 2
            (
                "mergeItem",
                r#"{"mergingList":[{"name":1},{"name":2,"value":"b"},{"name":3}]}"#,
                r#"{"mergingList":[{"name":3,"value":"c"},{"name":1,"value":"a"}]}"#,
                r#"{"mergingList":[{"name":2,"value":"b"},{"name":3,"value":"c"},{"name":1,"value":"a"}]}"#,
            ),
            // (custom) should check if order in $setElementOrder and patch list match
            (
                "mergeItem",
                r#"{"mergingIntList":[1,3,2]}"#,
                r#"{"$setElementOrder/mergingIntList":[1,2,3],"mergingIntList":[3,1]}"#,
                "error: The order in patch list:\n[3 1]\n doesn't match $setElementOrder list:\n[1 2 3]\n",
            ),
        ]);
    }

    /// RFC 7386 appendix A, then evanphx/json-patch's null pruning.
    #[test]
    #[rustfmt::skip]
    fn json_merge_patch() {
        check(&[
            (MERGE, r#"{"a":"b"}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#),
            (MERGE, r#"{"a":"b"}"#, r#"{"b":"c"}"#, r#"{"a":"b","b":"c"}"#),
            (MERGE, r#"{"a":"b"}"#, r#"{"a":null}"#, r#"{}"#),
            (MERGE, r#"{"a":"b","b":"c"}"#, r#"{"a":null}"#, r#"{"b":"c"}"#),
            (MERGE, r#"{"a":["b"]}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#),
            (MERGE, r#"{"a":"c"}"#, r#"{"a":["b"]}"#, r#"{"a":["b"]}"#),
            (MERGE, r#"{"a":{"b":"c"}}"#, r#"{"a":{"b":"d","c":null}}"#, r#"{"a":{"b":"d"}}"#),
            (MERGE, r#"{"a":[{"b":"c"}]}"#, r#"{"a":[1]}"#, r#"{"a":[1]}"#),
            (MERGE, r#"["a","b"]"#, r#"["c","d"]"#, r#"["c","d"]"#),
            (MERGE, r#"{"a":"b"}"#, r#"["c"]"#, r#"["c"]"#),
            (MERGE, r#"{"a":"foo"}"#, "null", "null"),
            (MERGE, r#"{"a":"foo"}"#, r#""bar""#, r#""bar""#),
            (MERGE, r#"{"e":null}"#, r#"{"a":1}"#, r#"{"e":null,"a":1}"#),
            (MERGE, r#"[1,2]"#, r#"{"a":"b","c":null}"#, r#"{"a":"b"}"#),
            (MERGE, r#"{}"#, r#"{"a":{"bb":{"ccc":null}}}"#, r#"{"a":{"bb":{}}}"#),
            // lists are replaced whole: no merge keys
            (
                MERGE,
                r#"{"spec":{"containers":[{"name":"a"},{"name":"b"}]}}"#,
                r#"{"spec":{"containers":[{"name":"b","image":"x"}]}}"#,
                r#"{"spec":{"containers":[{"name":"b","image":"x"}]}}"#,
            ),
            // nulls: pruned from objects in new or type-changing values, kept as list elements
            (MERGE, r#"{"a":1,"b":null}"#, r#"{"a":[{"x":null,"y":1},null],"b":{"z":null}}"#, r#"{"a":[{"y":1},null],"b":{}}"#),
            // ... but not when an object is replaced by a list
            (MERGE, r#"{"a":{"x":1}}"#, r#"{"a":[{"x":null}]}"#, r#"{"a":[{"x":null}]}"#),
        ]);
    }

    #[test]
    fn go_formatting() {
        let v: Value =
            serde_json::from_str(r#"{"b":[1.5,null,1e6,123456.0,0.00001,true],"a":{"z":"s"}}"#)
                .unwrap();
        assert_eq!(
            go_fmt(&v, false),
            "map[a:map[z:s] b:[1.5 <nil> 1e+06 123456 1e-05 true]]"
        );
        assert_eq!(go_fmt(&v, true), "map[a:map[z:s] b:[%!s(float64=1.5) <nil> %!s(float64=1e+06) %!s(float64=123456) %!s(float64=1e-05) %!s(bool=true)]]");
    }
}
