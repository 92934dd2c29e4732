//! Strategic merge patch (`application/strategic-merge-patch+json`), applied as kube-apiserver
//! applies it (k8s.io/apimachinery `strategicpatch`).
//!
//! It is JSON merge patch, except that lists whose schema says `x-kubernetes-patch-strategy: merge`
//! are merged: lists of maps item by item (matched by `x-kubernetes-patch-merge-key`), lists of
//! primitives as sets. A patch may also carry directives:
//!
//! - `$patch: replace | delete | merge` in a map, or as an item of a list of maps;
//! - `$retainKeys: [..]`: the only keys of the original map to keep;
//! - `$setElementOrder/<list>: [..]`: the order of the merged list;
//! - `$deleteFromPrimitiveList/<list>: [..]`: values to remove from a list of primitives.
//!
//! Directives never reach the result. Malformed patches are 400 BadRequest.

use serde_json::{Map, Value};

use gitbacked_core::schema::Node;
use gitbacked_core::status::{ApiResult, StatusError};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const MERGE: &str = "merge";
const REPLACE: &str = "replace";

type Object = Map<String, Value>;

/// Applies a strategic merge patch to `original` (a whole object as JSON) following the patch
/// strategies and merge keys of `schema` (the schema node of the object's type; `None` = no
/// schema knowledge: behave like JSON merge patch except for directives).
///
/// As kube-apiserver does: maps merge recursively and `null` deletes a key; lists are replaced
/// unless their strategy is `merge`; `$patch: delete` on a map leaves `{}` where the original has
/// the map, nothing where it does not; a value with no counterpart in the original is taken
/// without the `null`s of its maps. A merged list has the patch's items in the patch's order and
/// the others in the original's; an item the patch leaves out goes before a patch item only if the
/// original has it before that item, so items new to the list land ahead of the left-out items
/// still to come, unless `$setElementOrder` places them.
///
/// Unlike kube-apiserver: `$patch: merge` is accepted as the default it names (kube-apiserver
/// rejects it), a `$patch: replace` map with no counterpart in the original is kept (kube-apiserver
/// drops it), and every malformed patch is a 400 BadRequest (kube-apiserver answers some with 500).
pub fn strategic_merge_patch(original: &Value, patch: &Value, schema: Option<Node<'_>>) -> ApiResult<Value> {
    let patch =
        patch.as_object().ok_or_else(|| StatusError::bad_request("a strategic merge patch must be a JSON object"))?;
    let original = original.as_object().cloned().unwrap_or_default();
    merge_map(original, patch, schema).map(Value::Object)
}

/// A `$patch` directive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Directive {
    Replace,
    Delete,
    Merge,
}

/// The `$patch` directive of a map, if any.
fn directive(map: &Object) -> ApiResult<Option<Directive>> {
    let Some(value) = map.get(PATCH) else {
        return Ok(None);
    };
    match value.as_str() {
        Some(REPLACE) => Ok(Some(Directive::Replace)),
        Some("delete") => Ok(Some(Directive::Delete)),
        Some(MERGE) => Ok(Some(Directive::Merge)),
        _ => {
            Err(StatusError::bad_request(format!("unknown patch type: {value} in map: {}", Value::Object(map.clone()))))
        }
    }
}

/// The `$patch` directive of a list item, if it is a map and has one.
fn item_directive(item: &Value) -> ApiResult<Option<Directive>> {
    item.as_object().map(directive).transpose().map(Option::flatten)
}

/// What the schema says about one field of a map.
#[derive(Clone, Copy)]
struct FieldMeta<'a> {
    node: Option<Node<'a>>,
    /// `merge` or `replace`; `retainKeys` only matters to clients computing patches.
    strategy: Option<&'a str>,
    merge_key: Option<&'a str>,
}

impl<'a> FieldMeta<'a> {
    fn of(schema: Option<Node<'a>>, field: &str) -> Self {
        let node = schema.and_then(|s| s.field(field));
        FieldMeta {
            node,
            strategy: node.and_then(|n| n.patch_strategies().into_iter().find(|s| *s != "retainKeys")),
            merge_key: node.and_then(|n| n.patch_merge_key()),
        }
    }

    fn items(&self) -> Option<Node<'a>> {
        self.node.and_then(|n| n.items())
    }
}

/// Merges a patch map into an original map.
fn merge_map(original: Object, patch: &Object, schema: Option<Node>) -> ApiResult<Object> {
    match directive(patch)? {
        Some(Directive::Replace) => merge_fields(Object::new(), patch, schema),
        Some(Directive::Delete) => Ok(Object::new()),
        Some(Directive::Merge) | None => merge_fields(original, patch, schema),
    }
}

/// Merges the fields of a patch map into an original map, its `$patch` directive already handled.
fn merge_fields(mut original: Object, patch: &Object, schema: Option<Node>) -> ApiResult<Object> {
    if let Some(keys) = patch.get(RETAIN_KEYS) {
        retain_keys(&mut original, patch, keys)?;
    }
    // Lists with a `$setElementOrder` are merged and ordered first, then left alone.
    let mut ordered = Vec::new();
    for (key, order) in patch {
        if let Some(field) = directive_field(key, SET_ELEMENT_ORDER)? {
            set_element_order(&mut original, patch, field, order, schema)?;
            ordered.push(field);
        }
    }
    for (key, value) in patch {
        if key == PATCH || key == RETAIN_KEYS || key.starts_with(SET_ELEMENT_ORDER) || ordered.contains(&key.as_str()) {
            continue;
        }
        if let Some(field) = directive_field(key, DELETE_FROM_PRIMITIVE_LIST)? {
            delete_from_list(&mut original, field, value)?;
            continue;
        }
        if value.is_null() {
            original.shift_remove(key);
            continue;
        }
        let meta = FieldMeta::of(schema, key);
        let merged = match (original.get_mut(key).map(Value::take), value) {
            (Some(Value::Object(current)), Value::Object(patch)) if meta.strategy != Some(REPLACE) => {
                Some(Value::Object(merge_map(current, patch, meta.node)?))
            }
            (Some(Value::Array(current)), Value::Array(patch)) if meta.strategy == Some(MERGE) => {
                Some(Value::Array(merge_list(current, patch, meta)?.0))
            }
            _ => fresh(value, meta.node)?,
        };
        match merged {
            Some(v) => original.insert(key.clone(), v),
            None => original.shift_remove(key),
        };
    }
    Ok(original)
}

/// The field a `<prefix>/<field>` directive key names, `None` for other keys.
fn directive_field<'k>(key: &'k str, prefix: &str) -> ApiResult<Option<&'k str>> {
    match key.strip_prefix(prefix) {
        None => Ok(None),
        Some(rest) => rest
            .strip_prefix('/')
            .map(Some)
            .ok_or_else(|| StatusError::bad_request(format!("invalid patch format: {key} must be {prefix}/<field>"))),
    }
}

/// `$retainKeys`: drops the original's keys not listed; every key the patch sets must be listed.
fn retain_keys(original: &mut Object, patch: &Object, keys: &Value) -> ApiResult<()> {
    let Value::Array(keys) = keys else {
        return Err(StatusError::bad_request("invalid patch format of retainKeys: $retainKeys must be a list"));
    };
    let listed = |k: &str| keys.iter().any(|x| x.as_str() == Some(k));
    let is_directive = |k: &str| {
        k == PATCH || k == RETAIN_KEYS || k.starts_with(SET_ELEMENT_ORDER) || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
    };
    if let Some((k, _)) = patch.iter().find(|(k, v)| !v.is_null() && !is_directive(k) && !listed(k)) {
        return Err(StatusError::bad_request(format!("invalid patch format of retainKeys: {k} is not in $retainKeys")));
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// `$deleteFromPrimitiveList/<field>`: removes every occurrence of the listed values.
fn delete_from_list(original: &mut Object, field: &str, values: &Value) -> ApiResult<()> {
    let values = match values {
        // As in kube-apiserver, a null list deletes the field, like any null.
        Value::Null => {
            original.shift_remove(field);
            return Ok(());
        }
        Value::Array(values) if values.iter().all(|v| !v.is_object() && !v.is_array()) => values,
        _ => {
            return Err(StatusError::bad_request(format!(
                "invalid patch format of primitive list: {DELETE_FROM_PRIMITIVE_LIST}/{field} must be a list of primitives"
            )));
        }
    };
    if let Some(Value::Array(items)) = original.get_mut(field) {
        items.retain(|item| !values.iter().any(|v| same(item, v)));
    }
    Ok(())
}

/// `$setElementOrder/<field>`: merges the patch's list (if any) into the original's, then orders the
/// result: the listed items as listed, the original's other items around them where the original
/// places them.
fn set_element_order(
    original: &mut Object,
    patch: &Object,
    field: &str,
    order: &Value,
    schema: Option<Node>,
) -> ApiResult<()> {
    let invalid = || StatusError::bad_request(format!("invalid patch format of setElementOrder list for {field}"));
    let Value::Array(order) = order else {
        return Err(invalid());
    };
    let meta = FieldMeta::of(schema, field);
    let key = meta.merge_key;
    let patch_list = match patch.get(field) {
        None => None,
        Some(Value::Array(list)) => Some(list),
        Some(_) => return Err(invalid()),
    };
    if let Some(list) = patch_list {
        check_order(list, order, key)?;
    }
    let current = match original.get_mut(field).map(Value::take) {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) => Some(list),
        Some(_) => return Err(invalid()),
    };
    let (merged, server) = match (current, patch_list) {
        (None, None) => return Ok(()),
        (None, Some(list)) => (fresh_list(list, meta.items())?, Vec::new()),
        (Some(current), None) => {
            let server = keys_of(&current, key);
            (current, server)
        }
        (Some(current), Some(list)) if meta.strategy == Some(MERGE) => merge_list(current, list, meta)?,
        (Some(current), Some(list)) => (fresh_list(list, meta.items())?, keys_of(&current, key)),
    };
    let wanted = order.iter().map(|o| key_of(o, key)).collect::<ApiResult<Vec<_>>>()?;
    original.insert(field.to_string(), Value::Array(normalize_order(merged, &wanted, &server, key)?));
    Ok(())
}

/// The patch's list must name its items (deletions and directives aside) in the order of the
/// `$setElementOrder` list.
fn check_order(list: &[Value], order: &[Value], key: Option<&str>) -> ApiResult<()> {
    let items: Vec<&Value> = list.iter().filter(|item| item.get(PATCH).is_none()).collect();
    let mut matched = 0;
    for wanted in order {
        if matched == items.len() {
            break;
        }
        if same(key_of(items[matched], key)?, key_of(wanted, key)?) {
            matched += 1;
        }
    }
    if matched < items.len() {
        return Err(StatusError::bad_request(format!(
            "the order in patch list {} doesn't match {SET_ELEMENT_ORDER} list {}",
            Value::Array(list.to_vec()),
            Value::Array(order.to_vec())
        )));
    }
    Ok(())
}

/// Merges a patch list into an original list whose strategy is `merge`. Returns the merged list
/// and the keys of the original's items as kube-apiserver sees them afterwards (see below).
fn merge_list(original: Vec<Value>, patch: &[Value], meta: FieldMeta) -> ApiResult<(Vec<Value>, Vec<Value>)> {
    if !of_maps(&original, patch)? {
        // A set of primitives: the union.
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for item in original.iter().chain(patch) {
            if !merged.iter().any(|m| same(m, item)) {
                merged.push(item.clone());
            }
        }
        let wanted: Vec<&Value> = patch.iter().collect();
        return Ok((normalize_order(merged, &wanted, &original, None)?, original));
    }
    let key = meta
        .merge_key
        .ok_or_else(|| StatusError::bad_request("cannot merge a list of maps without a merge key in the schema"))?;
    let length = original.len();
    let mut merged = original;
    let mut replace = false;
    let mut items = Vec::with_capacity(patch.len());
    for item in patch {
        match item_directive(item)? {
            Some(Directive::Delete) => {
                let gone = key_of(item, Some(key))?;
                merged.retain(|m| !m.get(key).is_some_and(|k| same(k, gone)));
            }
            Some(Directive::Replace) => replace = true,
            Some(Directive::Merge) | None => items.push(item),
        }
    }
    // kube-apiserver merges the original's slice in place: deletions shift its items left and new
    // items fill the freed slots. A `$setElementOrder` then orders against that slice, still as long
    // as the original, so new items that filled freed slots count as the original's.
    let mut in_place = keys_of(&merged, Some(key));
    if replace {
        let list = fresh_list(items, meta.items())?;
        for item in &list {
            key_of(item, Some(key))?;
        }
        return Ok((list, in_place));
    }
    let server = merged.iter().map(|m| key_of(m, Some(key)).cloned()).collect::<ApiResult<Vec<_>>>()?;
    let mut wanted = Vec::with_capacity(items.len());
    for item in items {
        let value = key_of(item, Some(key))?;
        wanted.push(value);
        match (merged.iter_mut().find(|m| m.get(key).is_some_and(|k| same(k, value))), item.as_object()) {
            (Some(Value::Object(current)), Some(patch)) => {
                *current = merge_map(std::mem::take(current), patch, meta.items())?
            }
            _ => {
                if let Some(new) = fresh(item, meta.items())? {
                    in_place.push(value.clone());
                    merged.push(new);
                }
            }
        }
    }
    in_place.truncate(length);
    Ok((normalize_order(merged, &wanted, &server, Some(key))?, in_place))
}

/// Whether the items of both lists are maps; they must all be of one JSON type, and not lists.
fn of_maps(original: &[Value], patch: &[Value]) -> ApiResult<bool> {
    let mut items = original.iter().chain(patch);
    let Some(first) = items.next() else {
        return Ok(false);
    };
    if first.is_array() {
        return Err(StatusError::bad_request("lists of lists are not supported by strategic merge patch"));
    }
    if items.any(|v| std::mem::discriminant(v) != std::mem::discriminant(first)) {
        return Err(StatusError::bad_request(format!(
            "list element types are not identical: {} and {}",
            Value::Array(original.to_vec()),
            Value::Array(patch.to_vec())
        )));
    }
    Ok(first.is_object())
}

/// Orders a merged list as kube-apiserver does: the items `wanted` names (merge key values, or the
/// primitives themselves), in that order; the others in the order of `server`; the two
/// interleaved so that an item `server` places before a wanted one stays before it.
fn normalize_order(
    merged: Vec<Value>,
    wanted: &[&Value],
    server: &[Value],
    key: Option<&str>,
) -> ApiResult<Vec<Value>> {
    fn position<'v>(list: impl IntoIterator<Item = &'v Value>, value: &Value) -> Option<usize> {
        list.into_iter().position(|x| same(x, value))
    }
    let (mut asked, mut others) = (Vec::new(), Vec::new());
    for item in merged {
        let k = key_of(&item, key)?;
        let in_server = position(server, k);
        match position(wanted.iter().copied(), k) {
            Some(at) => asked.push((at, in_server, item)),
            None => others.push((in_server.unwrap_or(usize::MAX), in_server, item)),
        }
    }
    asked.sort_by_key(|(at, ..)| *at);
    others.sort_by_key(|(at, ..)| *at);
    let mut out = Vec::with_capacity(asked.len() + others.len());
    let (mut asked, mut others) = (asked.into_iter().peekable(), others.into_iter().peekable());
    loop {
        let other_first = match (others.peek(), asked.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((_, other, _)), Some((_, next, _))) => matches!((other, next), (Some(o), Some(n)) if o < n),
        };
        let next = if other_first { others.next() } else { asked.next() };
        out.extend(next.map(|(_, _, item)| item));
    }
    Ok(out)
}

/// The merge key value of a list item, or the item itself in a list of primitives.
fn key_of<'v>(item: &'v Value, key: Option<&str>) -> ApiResult<&'v Value> {
    match key {
        None => Ok(item),
        Some(k) => item
            .get(k)
            .ok_or_else(|| StatusError::bad_request(format!("map: {item} does not contain declared merge key: {k}"))),
    }
}

/// The merge key values of the items that have one (the items themselves without a merge key).
fn keys_of(items: &[Value], key: Option<&str>) -> Vec<Value> {
    items.iter().filter_map(|item| key_of(item, key).ok()).cloned().collect()
}

/// A patch value with nothing to merge into: itself, without directives or the `null`s of its maps
/// (kube-apiserver drops those nulls, and its decoding drops directive keys). `None` when it is a
/// map deleting itself.
fn fresh(value: &Value, schema: Option<Node>) -> ApiResult<Option<Value>> {
    Ok(match value {
        Value::Object(map) => match directive(map)? {
            Some(Directive::Delete) => None,
            _ => Some(Value::Object(merge_fields(Object::new(), map, schema)?)),
        },
        Value::Array(items) => Some(Value::Array(fresh_list(items, schema.and_then(|s| s.items()))?)),
        other => Some(other.clone()),
    })
}

/// A patch list with nothing to merge into: its items without directives, minus `$patch: delete`
/// items and bare `{"$patch": ...}` markers.
fn fresh_list<'v>(items: impl IntoIterator<Item = &'v Value>, schema: Option<Node>) -> ApiResult<Vec<Value>> {
    let mut out = Vec::new();
    for item in items {
        let marker = item.as_object().is_some_and(|m| m.len() == 1 && m.contains_key(PATCH));
        match fresh(item, schema)? {
            Some(v) if !marker => out.push(v),
            _ => {}
        }
    }
    Ok(out)
}

/// JSON equality, numbers compared by value (as Go compares decoded JSON numbers).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment_schema() -> Option<Node<'static>> {
        Node::builtin("apps", "v1", "Deployment")
    }

    fn pod_schema() -> Option<Node<'static>> {
        Node::builtin("", "v1", "Pod")
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [
                        {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}],
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                        {"name": "log", "image": "fluentd:1", "args": ["-v", "-c", "/etc/fluentd.conf"]}
                    ]}
                }
            }
        })
    }

    fn patch_deployment(patch: Value) -> Value {
        strategic_merge_patch(&deployment(), &patch, deployment_schema()).unwrap()
    }

    /// Applies `patch` to a pod with only `spec` (and `metadata` when given).
    fn patch_pod(original: Value, patch: Value) -> ApiResult<Value> {
        strategic_merge_patch(&original, &patch, pod_schema())
    }

    fn containers(obj: &Value) -> &Value {
        &obj["spec"]["template"]["spec"]["containers"]
    }

    fn names(list: &Value) -> Vec<&str> {
        list.as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect()
    }

    fn contains_directive(value: &Value) -> bool {
        match value {
            Value::Object(m) => m.iter().any(|(k, v)| k.starts_with('$') || contains_directive(v)),
            Value::Array(items) => items.iter().any(contains_directive),
            _ => false,
        }
    }

    fn failure(result: ApiResult<Value>) -> (u16, String) {
        let err = result.unwrap_err();
        (err.code, err.message)
    }

    #[test]
    fn containers_merge_by_name() {
        let patched = patch_deployment(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "log", "image": "fluentd:2"}
        ]}}}}));
        let list = containers(&patched);
        assert_eq!(names(list), ["web", "log"]);
        assert_eq!(list[1], json!({"name": "log", "image": "fluentd:2", "args": ["-v", "-c", "/etc/fluentd.conf"]}));
        assert_eq!(list[0], containers(&deployment())[0]);
        // Everything else is untouched.
        assert_eq!(patched["spec"]["strategy"], deployment()["spec"]["strategy"]);
        assert_eq!(patched["metadata"], deployment()["metadata"]);
    }

    #[test]
    fn env_merges_by_name() {
        let patched = patch_deployment(json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "env": [
            {"name": "B", "value": "two"},
            {"name": "C", "value": "3"},
            {"name": "A", "$patch": "delete"}
        ]}]}}}}));
        // B changes in place, C is added, A is deleted.
        assert_eq!(containers(&patched)[0]["env"], json!([{"name": "B", "value": "two"}, {"name": "C", "value": "3"}]));
        assert_eq!(containers(&patched)[0]["image"], "nginx:1");
    }

    #[test]
    fn adding_a_container() {
        let patched = patch_deployment(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "sidecar", "image": "envoy:1"}
        ]}}}}));
        // Without $setElementOrder kube-apiserver puts items new to a merged list first.
        assert_eq!(names(containers(&patched)), ["sidecar", "web", "log"]);
        assert_eq!(containers(&patched)[0], json!({"name": "sidecar", "image": "envoy:1"}));
        // With it, where it says.
        let patched = patch_deployment(json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}, {"name": "sidecar"}],
            "containers": [{"name": "sidecar", "image": "envoy:1"}]
        }}}}));
        assert_eq!(names(containers(&patched)), ["web", "log", "sidecar"]);
    }

    #[test]
    fn deleting_a_container() {
        let patched = patch_deployment(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "$patch": "delete"}
        ]}}}}));
        assert_eq!(names(containers(&patched)), ["log"]);
        // Deleting an item the list does not have is a no-op.
        let patched = patch_deployment(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "nope", "$patch": "delete"}
        ]}}}}));
        assert_eq!(containers(&patched), containers(&deployment()));
        // Every item with the key goes.
        let original = json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "image": "x"}, {"name": "a"}]}});
        let patched =
            patch_pod(original, json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}})).unwrap();
        assert_eq!(patched["spec"]["containers"], json!([{"name": "b", "image": "x"}]));
    }

    #[test]
    fn replace_directive_on_a_list() {
        let patched = patch_deployment(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "only", "image": "busybox"},
            {"$patch": "replace"}
        ]}}}}));
        assert_eq!(containers(&patched), &json!([{"name": "only", "image": "busybox"}]));
        // A lone marker empties the list.
        let patched =
            patch_deployment(json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}]}}}}));
        assert_eq!(containers(&patched), &json!([]));
    }

    #[test]
    fn replace_directive_on_a_map() {
        let patched = patch_deployment(json!({"metadata": {"labels": {"$patch": "replace", "app": "api"}}}));
        assert_eq!(patched["metadata"]["labels"], json!({"app": "api"}));
        assert_eq!(patched["metadata"]["name"], "web");
        // At the top level it replaces the whole object.
        let patched = patch_deployment(json!({"$patch": "replace", "kind": "Deployment"}));
        assert_eq!(patched, json!({"kind": "Deployment"}));
    }

    #[test]
    fn delete_directive_on_a_map() {
        // As kube-apiserver: the map is emptied, the key stays.
        let patched = patch_deployment(json!({"metadata": {"labels": {"$patch": "delete"}}}));
        assert_eq!(patched["metadata"]["labels"], json!({}));
        // A map that was not there is not added.
        let patched = patch_deployment(json!({"metadata": {"annotations": {"$patch": "delete"}}}));
        assert!(patched["metadata"].get("annotations").is_none());
    }

    #[test]
    fn merge_directive_is_the_default() {
        let patched = patch_deployment(json!({"metadata": {"labels": {"$patch": "merge", "tier": "back"}}}));
        assert_eq!(patched["metadata"]["labels"], json!({"app": "web", "tier": "back"}));
    }

    #[test]
    fn null_deletes() {
        let patched = patch_deployment(json!({
            "metadata": {"labels": {"tier": null, "missing": null}},
            "spec": {"strategy": null, "template": {"spec": {"containers": [{"name": "web", "ports": null}]}}}
        }));
        assert_eq!(patched["metadata"]["labels"], json!({"app": "web"}));
        assert!(patched["spec"].get("strategy").is_none());
        assert!(containers(&patched)[0].get("ports").is_none());
        // A new map is taken without its nulls; nulls inside a list of primitives stay.
        let patched = patch_deployment(json!({"metadata": {"annotations": {"a": "1", "b": null}},
            "spec": {"template": {"spec": {"containers": [{"name": "log", "args": ["x", null]}]}}}}));
        assert_eq!(patched["metadata"]["annotations"], json!({"a": "1"}));
        assert_eq!(containers(&patched)[1]["args"], json!(["x", null]));
    }

    #[test]
    fn labels_merge() {
        let patched = patch_deployment(json!({"metadata": {"labels": {"tier": "back", "team": "core"}}}));
        assert_eq!(patched["metadata"]["labels"], json!({"app": "web", "tier": "back", "team": "core"}));
        // Original key order is kept, new keys appended.
        let keys: Vec<&String> = patched["metadata"]["labels"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["app", "tier", "team"]);
    }

    #[test]
    fn lists_without_strategy_are_replaced() {
        let patched = patch_deployment(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "log", "args": ["-q"]}
        ]}}}}));
        assert_eq!(containers(&patched)[1]["args"], json!(["-q"]));
        let pod = json!({"spec": {"tolerations": [{"key": "a", "operator": "Exists"}]}});
        let patched = patch_pod(pod, json!({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}})).unwrap();
        assert_eq!(patched["spec"]["tolerations"], json!([{"key": "b", "operator": "Exists"}]));
    }

    #[test]
    fn finalizers_are_a_set() {
        let pod = json!({"metadata": {"name": "p", "finalizers": ["a", "b"]}});
        let patched = patch_pod(pod.clone(), json!({"metadata": {"finalizers": ["b", "c"]}})).unwrap();
        assert_eq!(patched["metadata"]["finalizers"], json!(["a", "b", "c"]));
        // A value new to the list, alone, goes first (the apiserver's ordering).
        let patched = patch_pod(pod.clone(), json!({"metadata": {"finalizers": ["c"]}})).unwrap();
        assert_eq!(patched["metadata"]["finalizers"], json!(["c", "a", "b"]));
        // Already present: nothing changes.
        let patched = patch_pod(pod.clone(), json!({"metadata": {"finalizers": ["a"]}})).unwrap();
        assert_eq!(patched["metadata"]["finalizers"], json!(["a", "b"]));
        // Upstream case "preserve the order from the patch in a merging int list".
        let patched = patch_pod(
            json!({"metadata": {"finalizers": ["1", "2", "3"]}}),
            json!({"metadata": {"finalizers": ["3", "1"]}}),
        )
        .unwrap();
        assert_eq!(patched["metadata"]["finalizers"], json!(["2", "3", "1"]));
        // Added to an object without finalizers.
        let patched =
            patch_pod(json!({"metadata": {"name": "p"}}), json!({"metadata": {"finalizers": ["a"]}})).unwrap();
        assert_eq!(patched["metadata"]["finalizers"], json!(["a"]));
    }

    #[test]
    fn delete_from_primitive_list() {
        let pod = json!({"metadata": {"finalizers": ["a", "b", "c", "b"]}});
        let patched =
            patch_pod(pod.clone(), json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]}})).unwrap();
        assert_eq!(patched["metadata"], json!({"finalizers": ["a", "c"]}));
        // With an addition and an order, as kubectl sends them.
        let patched = patch_pod(
            pod,
            json!({"metadata": {
                "$setElementOrder/finalizers": ["c", "a", "d"],
                "$deleteFromPrimitiveList/finalizers": ["b"],
                "finalizers": ["d"]
            }}),
        )
        .unwrap();
        assert_eq!(patched["metadata"], json!({"finalizers": ["c", "a", "d"]}));
        // Works on lists without the merge strategy too; never adds a missing list.
        let pod = json!({"spec": {"containers": [{"name": "c", "args": ["1", "2", "3"]}]}});
        let patched = patch_pod(
            pod,
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]},
                "spec": {"containers": [{"name": "c", "$deleteFromPrimitiveList/args": ["2"]}]}}),
        )
        .unwrap();
        assert_eq!(patched, json!({"spec": {"containers": [{"name": "c", "args": ["1", "3"]}]}, "metadata": {}}));
    }

    #[test]
    fn set_element_order() {
        // Upstream "set elements order in a list with server-only items 2": the server-only item 9
        // stays after the item the original put before it.
        let original = json!({"spec": {"containers": [
            {"name": "1", "image": "a"}, {"name": "2"}, {"name": "9"}, {"name": "3"}, {"name": "4"}
        ]}});
        let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "2"}, {"name": "1"}, {"name": "4"}, {"name": "3"}]}});
        let patched = patch_pod(original, patch).unwrap();
        assert_eq!(names(&patched["spec"]["containers"]), ["2", "1", "9", "4", "3"]);
        assert_eq!(patched["spec"]["containers"][1], json!({"name": "1", "image": "a"}));
        assert!(!contains_directive(&patched));

        // Upstream "add map and delete map from merging list" (three-way): the new item fills the slot
        // of the deleted one, so it stays after the server-only item 4.
        let original =
            json!({"spec": {"containers": [{"name": "1"}, {"name": "2", "image": "b"}, {"name": "4", "image": "c"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "2"}, {"name": "3"}],
            "containers": [{"name": "3"}, {"name": "1", "$patch": "delete"}]
        }});
        let patched = patch_pod(original, patch).unwrap();
        assert_eq!(
            patched["spec"]["containers"],
            json!([{"name": "2", "image": "b"}, {"name": "4", "image": "c"}, {"name": "3"}])
        );

        // Upstream "... with conflict".
        let original = json!({"spec": {"containers": [{"name": "1", "image": "a"}, {"name": "4", "image": "c"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "2"}, {"name": "3"}],
            "containers": [{"name": "2"}, {"name": "3"}, {"name": "1", "$patch": "delete"}]
        }});
        let patched = patch_pod(original, patch).unwrap();
        assert_eq!(names(&patched["spec"]["containers"]), ["4", "2", "3"]);

        // Upstream "merge lists of maps": new items placed by the order.
        let original = json!({"spec": {"containers": [{"name": "1", "image": "a"}, {"name": "2", "image": "b"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "4"}, {"name": "1"}, {"name": "2"}, {"name": "3"}],
            "containers": [{"name": "4", "image": "d"}, {"name": "3", "image": "c"}]
        }});
        let patched = patch_pod(original, patch).unwrap();
        assert_eq!(names(&patched["spec"]["containers"]), ["4", "1", "2", "3"]);

        // Primitives: upstream "add an item in a list of primitives and preserve order".
        let patched = patch_pod(
            json!({"metadata": {"finalizers": ["1", "4", "2"]}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["3", "1", "2"], "finalizers": ["3"]}}),
        )
        .unwrap();
        assert_eq!(patched["metadata"]["finalizers"], json!(["3", "1", "4", "2"]));

        // Upstream "behavior of set element order for a merging int list with duplicate".
        let patched = patch_pod(
            json!({"metadata": {"finalizers": ["1", "2", "3", "2", "4"]}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["2", "1", "4", "3", "2"]}}),
        )
        .unwrap();
        assert_eq!(patched["metadata"]["finalizers"], json!(["2", "2", "1", "4", "3"]));

        // A list the original lacks.
        let patched = patch_pod(
            json!({"spec": {}}),
            json!({"spec": {"$setElementOrder/volumes": [{"name": "b"}, {"name": "a"}],
                "volumes": [{"name": "b", "emptyDir": {}}, {"name": "a", "emptyDir": {}}]}}),
        )
        .unwrap();
        assert_eq!(names(&patched["spec"]["volumes"]), ["b", "a"]);
        assert!(!contains_directive(&patched));
    }

    #[test]
    fn set_element_order_must_match_the_patch_list() {
        let original = json!({"spec": {"containers": [{"name": "1"}, {"name": "3"}, {"name": "2"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
            "containers": [{"name": "3", "image": "x"}, {"name": "1", "image": "y"}]
        }});
        let (code, message) = failure(patch_pod(original, patch));
        assert_eq!(code, 400);
        assert!(message.contains("doesn't match"), "{message}");
        // Items the patch list lacks may be named.
        let original = json!({"spec": {"containers": [{"name": "1"}, {"name": "3"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
            "containers": [{"name": "3", "image": "x"}, {"name": "1", "image": "y"}]
        }});
        let patched = patch_pod(original, patch).unwrap();
        assert_eq!(patched["spec"]["containers"], json!([{"name": "3", "image": "x"}, {"name": "1", "image": "y"}]));
    }

    #[test]
    fn retain_keys() {
        // kubectl switching a Deployment from RollingUpdate to Recreate.
        let patched = patch_deployment(json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}));
        assert_eq!(patched["spec"]["strategy"], json!({"type": "Recreate"}));
        // Without the directive, a plain merge keeps rollingUpdate.
        let patched = patch_deployment(json!({"spec": {"strategy": {"type": "Recreate"}}}));
        assert_eq!(patched["spec"]["strategy"]["rollingUpdate"], json!({"maxSurge": 1, "maxUnavailable": 0}));
        // Listed keys are kept and merged.
        let patched = patch_deployment(json!({"spec": {"strategy": {
            "$retainKeys": ["type", "rollingUpdate"], "rollingUpdate": {"maxSurge": 2}
        }}}));
        assert_eq!(
            patched["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}})
        );
        // A key the patch sets must be listed.
        let (code, message) = failure(strategic_merge_patch(
            &deployment(),
            &json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
            deployment_schema(),
        ));
        assert_eq!(code, 400);
        assert!(message.contains("retainKeys"), "{message}");
        // On items of a `merge,retainKeys` list: a volume switching from configMap to secret.
        let pod = json!({"spec": {"volumes": [
            {"name": "cfg", "configMap": {"name": "c"}}, {"name": "data", "emptyDir": {}}
        ]}});
        let patch = json!({"spec": {"volumes": [
            {"name": "cfg", "$retainKeys": ["name", "secret"], "secret": {"secretName": "s"}}
        ]}});
        let patched = patch_pod(pod, patch).unwrap();
        assert_eq!(
            patched["spec"]["volumes"],
            json!([{"name": "cfg", "secret": {"secretName": "s"}}, {"name": "data", "emptyDir": {}}])
        );
    }

    #[test]
    fn owner_references_merge_by_uid() {
        let pod = json!({"metadata": {"ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1"},
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "u2"}
        ]}});
        let patched =
            patch_pod(pod.clone(), json!({"metadata": {"ownerReferences": [{"uid": "u1", "controller": true}]}}))
                .unwrap();
        assert_eq!(
            patched["metadata"]["ownerReferences"][0],
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": true})
        );
        assert_eq!(patched["metadata"]["ownerReferences"][1]["uid"], "u2");
        let patched =
            patch_pod(pod, json!({"metadata": {"ownerReferences": [{"uid": "u2", "$patch": "delete"}]}})).unwrap();
        assert_eq!(patched["metadata"]["ownerReferences"].as_array().unwrap().len(), 1);
        assert_eq!(patched["metadata"]["ownerReferences"][0]["uid"], "u1");
    }

    #[test]
    fn ports_merge_by_number() {
        let pod =
            json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}, {"containerPort": 443}]}]}});
        // 443.0 names the same port as 443 (Go compares decoded numbers by value).
        let patch =
            json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 443.0, "name": "https"}]}]}});
        let patched = patch_pod(pod, patch).unwrap();
        let ports = &patched["spec"]["containers"][0]["ports"];
        assert_eq!(ports.as_array().unwrap().len(), 2);
        assert_eq!(ports[0], json!({"containerPort": 80}));
        assert_eq!(ports[1]["name"], "https");
    }

    #[test]
    fn no_schema_behaves_like_merge_patch() {
        let original = deployment();
        let patch = json!({
            "metadata": {"labels": {"tier": null, "new": "x"}},
            "spec": {"template": {"spec": {"containers": [{"name": "only", "image": "busybox"}]}}}
        });
        let patched = strategic_merge_patch(&original, &patch, None).unwrap();
        let mut expected = original.clone();
        json_patch::merge(&mut expected, &patch);
        assert_eq!(patched, expected);
        // Directives still apply.
        let patched = strategic_merge_patch(
            &original,
            &json!({"metadata": {"labels": {"$patch": "replace", "a": "b"}, "$retainKeys": ["labels"]}}),
            None,
        )
        .unwrap();
        assert_eq!(patched["metadata"], json!({"labels": {"a": "b"}}));
        // Fields the schema does not know behave the same way.
        let patched = patch_deployment(json!({"spec": {"unknown": {"a": [1]}}}));
        assert_eq!(patched["spec"]["unknown"], json!({"a": [1]}));
    }

    #[test]
    fn directives_never_reach_the_result() {
        let patched = patch_deployment(json!({"spec": {
            "template": {"spec": {
                "$setElementOrder/containers": [{"name": "new"}, {"name": "web"}, {"name": "log"}],
                "containers": [{"name": "new", "image": "x", "resources": {"$patch": "replace", "limits": {"cpu": "1"}},
                    "$setElementOrder/env": [{"name": "B"}, {"name": "A"}],
                    "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}, {"name": "Z", "$patch": "delete"}],
                    "$deleteFromPrimitiveList/args": ["x"],
                    "volumeMounts": [{"$patch": "replace"}, {"mountPath": "/m", "name": "v"}]}],
                "volumes": [{"name": "v", "$retainKeys": ["name", "emptyDir"], "emptyDir": {}}],
                "affinity": {"nodeAffinity": {"$patch": "delete"}}
            }}
        }}));
        assert!(!contains_directive(&patched), "{patched:#}");
        let new = &containers(&patched)[0];
        assert_eq!(names(containers(&patched)), ["new", "web", "log"]);
        assert_eq!(new["resources"], json!({"limits": {"cpu": "1"}}));
        assert_eq!(new["env"], json!([{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]));
        assert_eq!(new["volumeMounts"], json!([{"mountPath": "/m", "name": "v"}]));
        assert_eq!(patched["spec"]["template"]["spec"]["volumes"], json!([{"name": "v", "emptyDir": {}}]));
        assert_eq!(patched["spec"]["template"]["spec"]["affinity"], json!({}));
    }

    #[test]
    fn kubectl_client_side_apply() {
        let last_applied = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"}}"#;
        let patch = json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": last_applied}},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [{"image": "nginx:2", "name": "web"}]
            }}}
        });
        let patched = patch_deployment(patch);
        assert_eq!(
            patched["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
            last_applied
        );
        let list = containers(&patched);
        // web takes the new image and keeps the rest; log, which kubectl does not manage, stays after it.
        assert_eq!(names(list), ["web", "log"]);
        assert_eq!(list[0]["image"], "nginx:2");
        assert_eq!(list[0]["env"], containers(&deployment())[0]["env"]);
        assert_eq!(list[1], containers(&deployment())[1]);
        assert!(!contains_directive(&patched));
        // Removing a container it applied before: kubectl sends a delete and the new order.
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{"name": "log", "$patch": "delete"}]
        }}}});
        assert_eq!(names(containers(&patch_deployment(patch))), ["web"]);
    }

    #[test]
    fn errors() {
        let bad = |patch: Value| failure(strategic_merge_patch(&deployment(), &patch, deployment_schema()));
        for patch in [json!([]), json!("x"), json!(null)] {
            assert_eq!(bad(patch).0, 400);
        }
        let (code, message) = bad(json!({"metadata": {"labels": {"$patch": "bogus"}}}));
        assert_eq!(code, 400);
        assert!(message.contains("unknown patch type"), "{message}");
        let (code, message) = bad(json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}));
        assert_eq!(code, 400);
        assert!(message.contains("merge key: name"), "{message}");
        let (code, _) = bad(json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete"}]}}}}));
        assert_eq!(code, 400);
        let (code, _) =
            bad(json!({"spec": {"template": {"spec": {"containers": [{"name": "x", "$patch": "bogus"}]}}}}));
        assert_eq!(code, 400);
        // Malformed directive keys and values.
        assert_eq!(bad(json!({"metadata": {"$setElementOrderfinalizers": []}})).0, 400);
        assert_eq!(bad(json!({"metadata": {"$setElementOrder/finalizers": "a"}})).0, 400);
        assert_eq!(bad(json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}})).0, 400);
        assert_eq!(bad(json!({"spec": {"strategy": {"$retainKeys": "type"}}})).0, 400);
        // Items of different types in a merged list.
        assert_eq!(bad(json!({"spec": {"template": {"spec": {"containers": ["web"]}}}})).0, 400);
    }
}
