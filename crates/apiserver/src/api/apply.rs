//! Server-side apply and field ownership, as kube-apiserver's field manager does them
//! (sigs.k8s.io/structured-merge-diff under k8s.io/apiserver's fieldmanager): applied
//! configurations merge into the live object by the schema's list and map types, every manager's
//! fields are recorded in `metadata.managedFields`, an apply that would change another manager's
//! field is a conflict unless forced, and a field an applier stops applying is removed unless
//! someone else owns it. Other writes take the fields they change.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use serde_json::{Map, Value, json};

use super::fieldset::{EMPTY, FieldSet, PathElement, Ty, check_lists, path_string};
use gitbacked_core::object::metadata_mut;
use gitbacked_core::schema::Node;
use gitbacked_core::status::{ApiResult, Reason, StatusError};

const APPLY: &str = "Apply";
const UPDATE: &str = "Update";

/// The Update manager kube-apiserver gives the fields of an object first applied to when nobody
/// owned anything in it yet.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Fields no manager owns: identity and what the server derives (kube's stripMeta). Only these
/// exact paths, not what is below them: `.metadata` goes, `.metadata.labels.app` stays.
static STRIPPED: LazyLock<FieldSet> = LazyLock::new(|| {
    let mut set = FieldSet::default();
    for top in ["apiVersion", "kind", "metadata"] {
        set.insert(&[PathElement::Field(top.into())]);
    }
    for field in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        set.insert(&[PathElement::Field("metadata".into()), PathElement::Field(field.into())]);
    }
    set
});

/// Server-side apply of `config` (the applied configuration, a whole object) by `manager` onto
/// `live` (the current object including metadata.managedFields, None when it does not exist yet).
///
/// Returns the new object including updated metadata.managedFields. Without `force`, a field owned
/// by another manager whose value would change is a conflict: 409 with reason `Conflict`, the
/// message kube-apiserver gives (`Apply failed with 1 conflict: conflict with "other" using
/// apps/v1: .spec.replicas`, where `using` marks an Update manager) and one `FieldManagerConflict`
/// cause per field. With `force`, the fields move to `manager`. Fields that `manager` applied
/// before and no longer applies are removed from the object unless another manager owns them too.
///
/// Identity and derived metadata in `config` are never owned; they are merged like everything
/// else, so a `resourceVersion` or `uid` there reaches the caller's precondition check, as in
/// kube-apiserver. A null in `config` removes the field and claims it.
pub fn server_side_apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    schema: Option<Node<'_>>,
    api_version: &str,
    now: &str,
) -> ApiResult<Value> {
    if !config.is_object() {
        return Err(StatusError::bad_request("the applied configuration must be a JSON object"));
    }
    if config.pointer("/metadata/managedFields").is_some_and(|m| !m.is_null()) {
        return Err(StatusError::bad_request("metadata.managedFields must be nil"));
    }
    check_lists(config, schema).map_err(|e| {
        StatusError::bad_request(format!(
            "failed to create typed patch object ({}): {e}",
            describe(config, api_version)
        ))
    })?;
    let ty = Ty::root(schema);
    let old = live.map(without_managed_fields).unwrap_or_else(|| json!({}));
    let mut entries = live.map(managed_entries).unwrap_or_default();
    if live.is_some() && entries.is_empty() {
        let fields = FieldSet::from_object(&old, schema).difference(&STRIPPED);
        entries.push(Entry::new(BEFORE_FIRST_APPLY, UPDATE, api_version, now, fields));
    }
    let applied = FieldSet::from_object(config, schema);
    let mine = entries.iter().position(|e| e.is(manager, APPLY, api_version));
    let mut merged = merge(&old, config, ty);
    if let Some(last) = mine.map(|i| &entries[i].fields) {
        let managed = others(&entries, mine).fold(applied.clone(), |all, (_, e)| all.union(&e.fields));
        prune(&mut merged, last, &managed, ty);
    }

    let diff = compare(&old, &merged, ty);
    // A field the configuration nulls out is removed, and that changes it as much as a new value.
    let changed = diff.modified.union(&diff.added).union(&diff.removed.intersection(&applied));
    let conflicts: Vec<(usize, FieldSet)> = others(&entries, mine)
        .map(|(i, e)| (i, e.fields.intersection(&changed)))
        .filter(|(_, fields)| !fields.is_empty())
        .collect();
    if !force && !conflicts.is_empty() {
        return Err(conflict_error(&entries, &conflicts));
    }
    // Forced or not, nobody else owns what changed or went away any more.
    for (i, entry) in entries.iter_mut().enumerate() {
        if Some(i) != mine {
            entry.fields = entry.fields.difference(&changed).difference(&diff.removed);
        }
    }

    let fields = applied.difference(&STRIPPED);
    match mine {
        Some(i) => {
            let entry = &mut entries[i];
            entry.fields = fields;
            entry.api_version = api_version.to_string();
            // The time says when the manager last changed the object.
            if merged != old {
                entry.time = Some(now.to_string());
            }
        }
        None => entries.push(Entry::new(manager, APPLY, api_version, now, fields)),
    }
    store_entries(&mut merged, entries);
    Ok(merged)
}

/// Records field ownership for a non-apply write (create/update/patch) by `manager`: fields whose
/// value changed between `live` and `new` (all fields of `new` on create) move to `manager`'s
/// Update entry and are removed from every other manager's entry. Updates new.metadata.managedFields.
///
/// As in kube-apiserver, managedFields a write sends are taken as they are (`[{}]` clears them),
/// a write that sends none keeps the live ones, and an existing object without managedFields stays
/// untracked until it is first applied to.
pub fn track_update(
    live: Option<&Value>,
    new: &mut Value,
    manager: &str,
    schema: Option<Node<'_>>,
    api_version: &str,
    now: &str,
) {
    if !new.is_object() {
        return;
    }
    let sent = new.pointer("/metadata/managedFields");
    let reset =
        sent.and_then(Value::as_array).is_some_and(|a| a.len() == 1 && a[0].as_object().is_some_and(Map::is_empty));
    let mut entries = if reset { Vec::new() } else { managed_entries(new) };
    if entries.is_empty() && !reset {
        entries = live.map(managed_entries).unwrap_or_default();
    }
    if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.shift_remove("managedFields");
    }
    if live.is_some() && entries.is_empty() {
        return;
    }
    let old = live.map(without_managed_fields).unwrap_or_else(|| json!({}));
    let diff = compare(&old, new, Ty::root(schema));
    let changed = diff.modified.union(&diff.added);
    let mine = entries.iter().position(|e| e.is(manager, UPDATE, api_version));
    for (i, entry) in entries.iter_mut().enumerate() {
        if Some(i) != mine {
            entry.fields = entry.fields.difference(&changed).difference(&diff.removed);
        }
    }
    let taken = changed.difference(&STRIPPED);
    match mine {
        Some(i) => {
            let entry = &mut entries[i];
            entry.fields = entry.fields.difference(&diff.removed).union(&taken);
            if !taken.is_empty() {
                entry.time = Some(now.to_string());
            }
        }
        None => entries.push(Entry::new(manager, UPDATE, api_version, now, taken)),
    }
    store_entries(new, entries);
}

/// One managedFields entry.
#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    subresource: Option<String>,
    time: Option<String>,
    fields: FieldSet,
}

impl Entry {
    fn new(manager: &str, operation: &str, api_version: &str, now: &str, fields: FieldSet) -> Self {
        Entry {
            manager: manager.to_string(),
            operation: operation.to_string(),
            api_version: api_version.to_string(),
            subresource: None,
            time: Some(now.to_string()),
            fields,
        }
    }

    fn decode(entry: &Value) -> Option<Entry> {
        let text = |key: &str| entry.get(key).and_then(Value::as_str).map(str::to_string);
        Some(Entry {
            manager: text("manager").unwrap_or_default(),
            operation: text("operation")?,
            api_version: text("apiVersion").unwrap_or_default(),
            subresource: text("subresource").filter(|s| !s.is_empty()),
            time: text("time"),
            fields: entry.get("fieldsV1").map(FieldSet::from_fields_v1).unwrap_or_default(),
        })
    }

    fn encode(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".into(), json!(self.manager));
        entry.insert("operation".into(), json!(self.operation));
        entry.insert("apiVersion".into(), json!(self.api_version));
        if let Some(time) = &self.time {
            entry.insert("time".into(), json!(time));
        }
        entry.insert("fieldsType".into(), json!("FieldsV1"));
        entry.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if let Some(subresource) = &self.subresource {
            entry.insert("subresource".into(), json!(subresource));
        }
        Value::Object(entry)
    }

    /// Whether this is the entry of `manager`'s `operation` on the main resource. Update entries
    /// are per API version, Apply entries are not (kube's manager identifier).
    fn is(&self, manager: &str, operation: &str, api_version: &str) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.is_none()
            && (operation == APPLY || self.api_version == api_version)
    }

    /// The manager as conflict messages name it.
    fn owner(&self) -> String {
        let mut owner = json!(self.manager).to_string();
        if let Some(subresource) = &self.subresource {
            owner += &format!(" with subresource {}", json!(subresource));
        }
        if self.operation == UPDATE {
            owner += &format!(" using {}", self.api_version);
        }
        owner
    }

    /// The identity order kube-apiserver sorts conflicting managers by.
    fn identity(&self) -> (&str, &str, &str, Option<&str>) {
        (&self.manager, &self.operation, &self.api_version, self.subresource.as_deref())
    }
}

/// The entries other than `mine`, with their positions.
fn others(entries: &[Entry], mine: Option<usize>) -> impl Iterator<Item = (usize, &Entry)> {
    entries.iter().enumerate().filter(move |(i, _)| Some(*i) != mine)
}

fn managed_entries(object: &Value) -> Vec<Entry> {
    let entries = object.pointer("/metadata/managedFields").and_then(Value::as_array);
    entries.into_iter().flatten().filter_map(Entry::decode).collect()
}

fn without_managed_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.shift_remove("managedFields");
    }
    object
}

/// Writes the entries that own something into `metadata.managedFields`, in kube-apiserver's order.
fn store_entries(object: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|a, b| {
        (&a.operation, &a.time, &a.manager, &a.api_version, &a.subresource).cmp(&(
            &b.operation,
            &b.time,
            &b.manager,
            &b.api_version,
            &b.subresource,
        ))
    });
    let meta = metadata_mut(object);
    if entries.is_empty() {
        meta.shift_remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(entries.iter().map(Entry::encode).collect()));
    }
}

/// `namespace/name; group/version, Kind=kind`, as kube-apiserver names an object in apply errors.
fn describe(config: &Value, api_version: &str) -> String {
    let text = |path: &str| config.pointer(path).and_then(Value::as_str).unwrap_or_default();
    let api_version = config.get("apiVersion").and_then(Value::as_str).unwrap_or(api_version);
    let group_version = if api_version.contains('/') { api_version.to_string() } else { format!("/{api_version}") };
    format!("{}/{}; {group_version}, Kind={}", text("/metadata/namespace"), text("/metadata/name"), text("/kind"))
}

/// The 409 for fields other managers own, worded as kube-apiserver words it.
fn conflict_error(entries: &[Entry], conflicts: &[(usize, FieldSet)]) -> StatusError {
    let mut owners: Vec<(&Entry, Vec<String>)> = conflicts
        .iter()
        .map(|(i, fields)| (&entries[*i], fields.paths().iter().map(|p| path_string(p)).collect()))
        .collect();
    owners.sort_by(|a, b| a.0.identity().cmp(&b.0.identity()));
    let causes: Vec<Value> = owners
        .iter()
        .flat_map(|(entry, paths)| {
            let message = format!("conflict with {}", entry.owner());
            paths.iter().map(move |p| json!({"reason": "FieldManagerConflict", "message": message, "field": p}))
        })
        .collect();
    let message = match owners.as_slice() {
        [(entry, paths)] if paths.len() == 1 => {
            format!("Apply failed with 1 conflict: conflict with {}: {}", entry.owner(), paths[0])
        }
        _ => {
            let lines: Vec<String> = owners
                .iter()
                .flat_map(|(entry, paths)| {
                    std::iter::once(format!("conflicts with {}:", entry.owner()))
                        .chain(paths.iter().map(|p| format!("- {p}")))
                })
                .collect();
            format!("Apply failed with {} conflicts: {}", causes.len(), lines.join("\n"))
        }
    };
    StatusError { details: Some(json!({"causes": causes})), ..StatusError::new(Reason::Conflict, message) }
}

/// The configuration merged into the live object: granular maps key by key, map and set lists item
/// by item, everything else (scalars, atomic values) replaced.
fn merge(live: &Value, config: &Value, ty: Ty<'_>) -> Value {
    match (live, config) {
        (Value::Object(live_map), Value::Object(config_map)) if !ty.is_atomic_map() => {
            let mut out = live_map.clone();
            for (key, value) in config_map {
                if value.is_null() {
                    out.shift_remove(key);
                    continue;
                }
                let merged = match live_map.get(key) {
                    Some(current) => merge(current, value, ty.field(key)),
                    None => without_nulls(value),
                };
                out.insert(key.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(live_items), Value::Array(config_items)) => {
            match (ty.elements(live_items), ty.elements(config_items)) {
                (Ok(Some(live_keys)), Ok(Some(config_keys))) => {
                    Value::Array(merge_lists(live_items, &live_keys, config_items, &config_keys, ty.items()))
                }
                _ => without_nulls(config),
            }
        }
        _ => without_nulls(config),
    }
}

/// Merges keyed lists as structured-merge-diff orders them: live-only items stay where they are,
/// the configuration's items come in its order, and an item in both is placed where the
/// configuration puts it relative to the other shared items.
fn merge_lists(
    live: &[Value],
    live_keys: &[PathElement],
    config: &[Value],
    config_keys: &[PathElement],
    item_ty: Ty<'_>,
) -> Vec<Value> {
    let live_at: HashMap<&PathElement, usize> = live_keys.iter().enumerate().map(|(i, k)| (k, i)).collect();
    let in_config: HashSet<&PathElement> = config_keys.iter().collect();
    let mut shared = config_keys.iter().filter(|k| live_at.contains_key(k));
    let mut next_shared = shared.next();
    let mut done = HashSet::new();
    let mut out = Vec::with_capacity(live.len().max(config.len()));
    let (mut l, mut c) = (0, 0);
    while l < live.len() || c < config.len() {
        let (live_key, config_key) = (live_keys.get(l), config_keys.get(c));
        if let Some(key) = live_key {
            if !in_config.contains(key) {
                out.push(live[l].clone());
                l += 1;
                continue;
            }
            // A shared item comes out when the configuration reaches it.
            if config_key != Some(key) && (done.contains(key) || next_shared != Some(key) || config_key.is_none()) {
                l += 1;
                continue;
            }
        }
        let Some(key) = config_key else { break };
        out.push(match live_at.get(key) {
            Some(&i) => merge(&live[i], &config[c], item_ty),
            None => without_nulls(&config[c]),
        });
        done.insert(key);
        if next_shared == Some(key) {
            next_shared = shared.next();
        }
        if live_key == Some(key) {
            l += 1;
        }
        c += 1;
    }
    out
}

/// The value without null map entries: a null in a configuration asks for the field to be unset.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), without_nulls(v))).collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        _ => value.clone(),
    }
}

/// Removes what the applier owned last time (`last`) and nobody owns now (`managed`: every other
/// manager and the applier's new configuration). A struct field counts as owned by whoever owns
/// something in it, so one left with nothing owned goes as a whole.
fn prune(value: &mut Value, last: &FieldSet, managed: &FieldSet, ty: Ty<'_>) {
    let disowned = |pe: &PathElement, declared: bool| last.claims(pe, declared) && !managed.claims(pe, declared);
    match value {
        Value::Object(map) if !ty.is_atomic_map() => {
            map.retain(|key, _| !disowned(&PathElement::Field(key.clone()), ty.declares(key)));
            for (key, child) in map.iter_mut() {
                let pe = PathElement::Field(key.clone());
                if let Some(below) = last.child(&pe) {
                    prune(child, below, managed.child(&pe).unwrap_or(&EMPTY), ty.field(key));
                }
            }
        }
        Value::Array(items) => {
            let Ok(Some(keys)) = ty.elements(items) else { return };
            let mut kept = Vec::with_capacity(items.len());
            for (pe, mut item) in keys.into_iter().zip(items.drain(..)) {
                if disowned(&pe, false) {
                    continue;
                }
                if let Some(below) = last.child(&pe) {
                    prune(&mut item, below, managed.child(&pe).unwrap_or(&EMPTY), ty.items());
                }
                kept.push(item);
            }
            *items = kept;
        }
        _ => {}
    }
}

/// What changed between two versions of an object, as structured-merge-diff's `Compare`: paths
/// that appeared (with everything below them), disappeared, or hold another leaf value.
#[derive(Debug, Default)]
struct Comparison {
    added: FieldSet,
    removed: FieldSet,
    modified: FieldSet,
}

fn compare(old: &Value, new: &Value, ty: Ty<'_>) -> Comparison {
    let mut comparison = Comparison::default();
    diff(Some(old), Some(new), ty, &mut Vec::new(), &mut comparison);
    comparison
}

/// Compares the values at `path` and below. A value that is a container on both sides (a granular
/// map, or a keyed list) differs only through its entries; anything else is a leaf.
fn diff(old: Option<&Value>, new: Option<&Value>, ty: Ty<'_>, path: &mut Vec<PathElement>, out: &mut Comparison) {
    let old_entries = old.and_then(|v| ty.entries(v));
    let new_entries = new.and_then(|v| ty.entries(v));
    if let (Some(a), Some(b)) = (old, new) {
        let containers = old_entries.is_some() && new_entries.is_some() && a.is_array() == b.is_array();
        if !containers && a != b {
            out.modified.insert(path);
        }
    }
    let old_entries = old_entries.unwrap_or_default();
    let new_entries = new_entries.unwrap_or_default();
    let new_at: HashMap<&PathElement, &Value> = new_entries.iter().map(|(pe, v)| (pe, *v)).collect();
    let in_old: HashSet<&PathElement> = old_entries.iter().map(|(pe, _)| pe).collect();
    for (pe, value) in &old_entries {
        let now = new_at.get(pe).copied();
        path.push(pe.clone());
        if now.is_none() {
            out.removed.insert(path);
        }
        diff(Some(value), now, ty.child(pe), path, out);
        path.pop();
    }
    for (pe, value) in new_entries.iter().filter(|(pe, _)| !in_old.contains(pe)) {
        path.push(pe.clone());
        out.added.insert(path);
        diff(None, Some(value), ty.child(pe), path, out);
        path.pop();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use gitbacked_core::registry::ResourceType;

    const T0: &str = "2026-01-01T00:00:00Z";
    const T1: &str = "2026-01-01T00:01:00Z";
    const T2: &str = "2026-01-01T00:02:00Z";

    fn deployment() -> Option<Node<'static>> {
        Node::builtin("apps", "v1", "Deployment")
    }

    fn apply(live: Option<&Value>, config: &Value, manager: &str, force: bool) -> ApiResult<Value> {
        server_side_apply(live, config, manager, force, deployment(), "apps/v1", T0)
    }

    fn apply_at(live: &Value, config: &Value, manager: &str, now: &str) -> Value {
        server_side_apply(Some(live), config, manager, false, deployment(), "apps/v1", now).unwrap()
    }

    fn update(live: Option<&Value>, new: &Value, manager: &str) -> Value {
        let mut new = new.clone();
        track_update(live, &mut new, manager, deployment(), "apps/v1", T1);
        new
    }

    fn config(spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    /// `fieldsV1` of a manager's entry, `None` when it has none.
    fn owned(object: &Value, manager: &str, operation: &str) -> Option<Value> {
        let entries = object.pointer("/metadata/managedFields")?.as_array()?;
        let entry = entries.iter().find(|e| e["manager"] == manager && e["operation"] == operation)?;
        Some(entry["fieldsV1"].clone())
    }

    fn managers(object: &Value) -> Vec<(String, String)> {
        let entries = object.pointer("/metadata/managedFields").and_then(Value::as_array).cloned().unwrap_or_default();
        entries
            .iter()
            .map(|e| (e["manager"].as_str().unwrap().into(), e["operation"].as_str().unwrap().into()))
            .collect()
    }

    fn containers(object: &Value) -> Vec<Value> {
        object.pointer("/spec/template/spec/containers").and_then(Value::as_array).cloned().unwrap_or_default()
    }

    fn with_containers(list: Value) -> Value {
        config(json!({"template": {"spec": {"containers": list}}}))
    }

    #[test]
    fn apply_creates_the_object_and_records_the_applier() {
        let cfg = config(json!({
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}},
        }));
        let created = apply(None, &cfg, "kubectl", false).unwrap();
        let mut expected = cfg.clone();
        expected["metadata"]["managedFields"] = json!([{
            "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": T0, "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}},
                },
            }},
        }]);
        assert_eq!(created, expected);
    }

    #[test]
    fn applying_the_same_configuration_again_changes_nothing() {
        let cfg = config(json!({"replicas": 2}));
        let created = apply(None, &cfg, "kubectl", false).unwrap();
        assert_eq!(apply_at(&created, &cfg, "kubectl", T2), created);
    }

    #[test]
    fn managers_applying_different_fields_each_own_theirs() {
        let a = apply(None, &config(json!({"replicas": 2})), "a", false).unwrap();
        let b_config = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"team": "b"}}, "spec": {"paused": true}});
        let both = apply(Some(&a), &b_config, "b", false).unwrap();
        assert_eq!(both["spec"], json!({"replicas": 2, "paused": true}));
        assert_eq!(both["metadata"]["labels"], json!({"team": "b"}));
        assert_eq!(owned(&both, "a", "Apply").unwrap(), json!({"f:spec": {"f:replicas": {}}}));
        assert_eq!(
            owned(&both, "b", "Apply").unwrap(),
            json!({"f:metadata": {"f:labels": {"f:team": {}}}, "f:spec": {"f:paused": {}}})
        );
    }

    #[test]
    fn changing_a_field_another_applier_owns_is_a_conflict() {
        let a = apply(None, &config(json!({"replicas": 2})), "a", false).unwrap();
        let err = apply(Some(&a), &config(json!({"replicas": 3})), "b", false).unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(err.reason, Reason::Conflict);
        assert_eq!(err.message, "Apply failed with 1 conflict: conflict with \"a\": .spec.replicas");
        assert_eq!(
            err.details,
            Some(
                json!({"causes": [{"reason": "FieldManagerConflict", "message": "conflict with \"a\"", "field": ".spec.replicas"}]})
            )
        );
    }

    #[test]
    fn applying_the_same_value_shares_ownership() {
        let a = apply(None, &config(json!({"replicas": 2})), "a", false).unwrap();
        let shared = apply(Some(&a), &config(json!({"replicas": 2})), "b", false).unwrap();
        assert_eq!(shared["spec"]["replicas"], 2);
        assert_eq!(owned(&shared, "a", "Apply"), owned(&shared, "b", "Apply"));
        assert_eq!(owned(&shared, "b", "Apply").unwrap(), json!({"f:spec": {"f:replicas": {}}}));
    }

    #[test]
    fn forcing_takes_the_field_from_its_owner() {
        let a = apply(None, &config(json!({"replicas": 2, "paused": false})), "a", false).unwrap();
        let forced = apply(Some(&a), &config(json!({"replicas": 3})), "b", true).unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        assert_eq!(owned(&forced, "b", "Apply").unwrap(), json!({"f:spec": {"f:replicas": {}}}));
        assert_eq!(owned(&forced, "a", "Apply").unwrap(), json!({"f:spec": {"f:paused": {}}}));
        // A manager left owning nothing loses its entry.
        let all = apply(Some(&forced), &config(json!({"replicas": 4, "paused": true})), "b", true).unwrap();
        assert_eq!(managers(&all), [("b".to_string(), "Apply".to_string())]);
    }

    #[test]
    fn a_field_the_applier_stops_applying_is_removed() {
        let a = apply(None, &config(json!({"replicas": 2, "paused": true})), "a", false).unwrap();
        let dropped = apply(Some(&a), &config(json!({"replicas": 2})), "a", false).unwrap();
        assert_eq!(dropped["spec"], json!({"replicas": 2}));
        assert_eq!(owned(&dropped, "a", "Apply").unwrap(), json!({"f:spec": {"f:replicas": {}}}));
        // A struct with nothing owned left goes as a whole, fields nobody owns with it.
        let strategy = config(json!({"strategy": {"rollingUpdate": {"maxSurge": 1}}}));
        let mut with = apply(Some(&dropped), &strategy, "a", false).unwrap();
        with["spec"]["strategy"]["type"] = json!("RollingUpdate");
        let without = apply(Some(&with), &config(json!({"replicas": 2})), "a", false).unwrap();
        assert_eq!(without["spec"], json!({"replicas": 2}));
        // Labels go, the metadata they were in stays.
        let labeled =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"x": "1"}}});
        let unlabeled = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
        let labels = apply(Some(&without), &labeled, "a", false).unwrap();
        let gone = apply(Some(&labels), &unlabeled, "a", false).unwrap();
        assert_eq!(gone["metadata"], json!({"name": "web", "namespace": "default"}));
        assert_eq!(managers(&gone), Vec::<(String, String)>::new());
    }

    #[test]
    fn a_field_another_manager_owns_too_is_kept() {
        let a = apply(None, &config(json!({"replicas": 2, "paused": true})), "a", false).unwrap();
        let shared = apply(Some(&a), &config(json!({"paused": true})), "b", false).unwrap();
        let kept = apply(Some(&shared), &config(json!({"replicas": 2})), "a", false).unwrap();
        assert_eq!(kept["spec"], json!({"replicas": 2, "paused": true}));
        assert_eq!(owned(&kept, "b", "Apply").unwrap(), json!({"f:spec": {"f:paused": {}}}));
        // An Update manager's fields are kept as well.
        let mut controlled = kept.clone();
        controlled["spec"]["minReadySeconds"] = json!(5);
        let controlled = update(Some(&kept), &controlled, "controller");
        let a_too =
            apply(Some(&controlled), &config(json!({"replicas": 2, "minReadySeconds": 5})), "a", false).unwrap();
        let after = apply(Some(&a_too), &config(json!({"replicas": 2})), "a", false).unwrap();
        assert_eq!(after["spec"]["minReadySeconds"], 5);
    }

    #[test]
    fn containers_merge_by_name_and_each_applier_owns_its_own() {
        let a = apply(None, &with_containers(json!([{"name": "web", "image": "nginx"}])), "a", false).unwrap();
        let b_config = with_containers(json!([{"name": "sidecar", "image": "envoy"}]));
        let both = apply(Some(&a), &b_config, "b", false).unwrap();
        assert_eq!(
            containers(&both),
            [json!({"name": "web", "image": "nginx"}), json!({"name": "sidecar", "image": "envoy"})]
        );
        let web = json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}});
        let sidecar = json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"sidecar\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}});
        assert_eq!(owned(&both, "a", "Apply").unwrap(), web);
        assert_eq!(owned(&both, "b", "Apply").unwrap(), sidecar);
        // b changing a's container's image conflicts on that field only.
        let err =
            apply(Some(&both), &with_containers(json!([{"name": "web", "image": "httpd"}])), "b", false).unwrap_err();
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"a\": .spec.template.spec.containers[name=\"web\"].image"
        );
        // a adding a container and updating its own keeps b's in place.
        let a_again =
            with_containers(json!([{"name": "init", "image": "busybox"}, {"name": "web", "image": "nginx:2"}]));
        let three = apply(Some(&both), &a_again, "a", false).unwrap();
        let names: Vec<Value> = containers(&three).iter().map(|c| c["name"].clone()).collect();
        assert_eq!(names, [json!("init"), json!("web"), json!("sidecar")]);
        assert_eq!(containers(&three)[1]["image"], "nginx:2");
        // a dropping its containers removes them and leaves b's.
        let only_b = apply(Some(&three), &with_containers(json!([])), "a", false).unwrap();
        assert_eq!(containers(&only_b), [json!({"name": "sidecar", "image": "envoy"})]);
        assert_eq!(managers(&only_b), [("b".to_string(), "Apply".to_string())]);
    }

    #[test]
    fn finalizers_are_a_set() {
        let finalizers = |list: Value| json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "finalizers": list}});
        let a = apply(None, &finalizers(json!(["example.com/a"])), "a", false).unwrap();
        let both = apply(Some(&a), &finalizers(json!(["example.com/b"])), "b", false).unwrap();
        assert_eq!(both["metadata"]["finalizers"], json!(["example.com/a", "example.com/b"]));
        assert_eq!(
            owned(&both, "b", "Apply").unwrap(),
            json!({"f:metadata": {"f:finalizers": {"v:\"example.com/b\"": {}}}})
        );
        let dropped = apply(Some(&both), &finalizers(json!([])), "a", false).unwrap();
        assert_eq!(dropped["metadata"]["finalizers"], json!(["example.com/b"]));
        assert_eq!(owned(&dropped, "a", "Apply"), None);
    }

    #[test]
    fn atomic_lists_are_replaced_and_owned_whole() {
        let args = |list: Value| with_containers(json!([{"name": "web", "args": list}]));
        let a = apply(None, &args(json!(["-a", "-b"])), "a", false).unwrap();
        let replaced = apply(Some(&a), &args(json!(["-c"])), "a", false).unwrap();
        assert_eq!(containers(&replaced)[0]["args"], json!(["-c"]));
        let err = apply(Some(&replaced), &args(json!(["-c", "-d"])), "b", false).unwrap_err();
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"a\": .spec.template.spec.containers[name=\"web\"].args"
        );
        let forced = apply(Some(&replaced), &args(json!(["-c", "-d"])), "b", true).unwrap();
        assert_eq!(containers(&forced)[0]["args"], json!(["-c", "-d"]));
    }

    #[test]
    fn an_update_takes_the_fields_it_changes_and_later_applies_conflict() {
        let applied = apply(None, &config(json!({"replicas": 2, "paused": false})), "kubectl", false).unwrap();
        let mut scaled = applied.clone();
        scaled["spec"]["replicas"] = json!(5);
        let scaled = update(Some(&applied), &scaled, "controller");
        assert_eq!(owned(&scaled, "kubectl", "Apply").unwrap(), json!({"f:spec": {"f:paused": {}}}));
        assert_eq!(owned(&scaled, "controller", "Update").unwrap(), json!({"f:spec": {"f:replicas": {}}}));
        assert_eq!(scaled["metadata"]["managedFields"][1]["time"], T1);
        let err = apply(Some(&scaled), &config(json!({"replicas": 2, "paused": false})), "kubectl", false).unwrap_err();
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"controller\" using apps/v1: .spec.replicas"
        );
        assert_eq!(
            err.details.unwrap()["causes"],
            json!([{"reason": "FieldManagerConflict", "message": "conflict with \"controller\" using apps/v1", "field": ".spec.replicas"}])
        );
        // Re-applying the live value is fine and shares the field again.
        let agreed = apply(Some(&scaled), &config(json!({"replicas": 5, "paused": false})), "kubectl", false).unwrap();
        assert_eq!(owned(&agreed, "kubectl", "Apply").unwrap(), json!({"f:spec": {"f:paused": {}, "f:replicas": {}}}));
        assert!(owned(&agreed, "controller", "Update").is_some());
    }

    #[test]
    fn updates_record_what_they_change() {
        let object = config(json!({"replicas": 1, "template": {"metadata": {"labels": {"app": "web"}}}}));
        let created = update(None, &object, "creator");
        let fields = owned(&created, "creator", "Update").unwrap();
        let set = FieldSet::from_fields_v1(&fields);
        let replicas = [PathElement::Field("spec".into()), PathElement::Field("replicas".into())];
        assert!(set.has(&replicas));
        assert!(fields["f:metadata"].get("f:name").is_none());
        // An update that changes nothing keeps the entry and its time.
        let again = update(Some(&created), &created, "creator");
        assert_eq!(again, created);
        // Removing a field drops it from its owner; an owner left with nothing loses its entry.
        let mut unset = created.clone();
        unset["spec"] = json!({});
        let unset = update(Some(&created), &unset, "other");
        assert!(!FieldSet::from_fields_v1(&owned(&unset, "creator", "Update").unwrap()).has(&replicas));
        // Update entries are per API version.
        let mut changed = created.clone();
        changed["spec"]["replicas"] = json!(3);
        let mut v1beta = changed.clone();
        track_update(Some(&created), &mut v1beta, "creator", deployment(), "apps/v1beta2", T2);
        assert_eq!(managers(&v1beta).len(), 2);
    }

    #[test]
    fn objects_without_managed_fields_stay_untracked_until_applied_to() {
        let untracked = config(json!({"replicas": 2}));
        let mut scaled = untracked.clone();
        scaled["spec"]["replicas"] = json!(3);
        let scaled = update(Some(&untracked), &scaled, "controller");
        assert!(scaled["metadata"].get("managedFields").is_none());
        // The first apply finds every field owned by before-first-apply.
        let err = apply(Some(&scaled), &config(json!({"replicas": 4})), "kubectl", false).unwrap_err();
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas"
        );
        let applied = apply(Some(&scaled), &config(json!({"replicas": 3, "paused": true})), "kubectl", false).unwrap();
        assert_eq!(
            managers(&applied),
            [("kubectl".to_string(), "Apply".to_string()), ("before-first-apply".to_string(), "Update".to_string())]
        );
    }

    #[test]
    fn updates_may_set_or_clear_managed_fields() {
        let applied = apply(None, &config(json!({"replicas": 2})), "a", false).unwrap();
        let mut cleared = applied.clone();
        cleared["metadata"]["managedFields"] = json!([{}]);
        let cleared = update(Some(&applied), &cleared, "b");
        assert!(cleared["metadata"].get("managedFields").is_none());
        let mut set = applied.clone();
        set["metadata"]["managedFields"][0]["manager"] = json!("renamed");
        let set = update(Some(&applied), &set, "b");
        assert_eq!(managers(&set), [("renamed".to_string(), "Apply".to_string())]);
        // Sending none keeps the live ones.
        let mut none = applied.clone();
        none["metadata"].as_object_mut().unwrap().remove("managedFields");
        assert_eq!(update(Some(&applied), &none, "b"), applied);
    }

    #[test]
    fn lease_holders_conflict() {
        let lease = |holder: &str| {
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "leader", "namespace": "default"},
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}})
        };
        let schema = Node::builtin("coordination.k8s.io", "v1", "Lease");
        let take = |live: Option<&Value>, holder: &str, force: bool| {
            server_side_apply(live, &lease(holder), holder, force, schema, "coordination.k8s.io/v1", T0)
        };
        let held = take(None, "a", false).unwrap();
        let err = take(Some(&held), "b", false).unwrap_err();
        assert_eq!((err.code, err.reason), (409, Reason::Conflict));
        assert_eq!(err.message, "Apply failed with 1 conflict: conflict with \"a\": .spec.holderIdentity");
        // The holder renews; a new holder takes over by force.
        assert_eq!(take(Some(&held), "a", false).unwrap(), held);
        let taken = take(Some(&held), "b", true).unwrap();
        assert_eq!(taken["spec"]["holderIdentity"], "b");
        assert_eq!(
            owned(&taken, "b", "Apply").unwrap(),
            json!({"f:spec": {"f:holderIdentity": {}, "f:leaseDurationSeconds": {}}})
        );
        // a keeps the duration, which b applied with the same value.
        assert_eq!(owned(&taken, "a", "Apply").unwrap(), json!({"f:spec": {"f:leaseDurationSeconds": {}}}));
    }

    #[test]
    fn several_conflicts_are_listed_by_manager() {
        let a = apply(None, &config(json!({"replicas": 2, "paused": true})), "a", false).unwrap();
        let mut updated = a.clone();
        updated["spec"]["minReadySeconds"] = json!(5);
        let updated = update(Some(&a), &updated, "ctl");
        let err =
            apply(Some(&updated), &config(json!({"replicas": 3, "paused": false, "minReadySeconds": 1})), "b", false)
                .unwrap_err();
        assert_eq!(
            err.message,
            "Apply failed with 3 conflicts: conflicts with \"a\":\n- .spec.paused\n- .spec.replicas\n\
             conflicts with \"ctl\" using apps/v1:\n- .spec.minReadySeconds"
        );
        let fields: Vec<&str> = err.details.as_ref().unwrap()["causes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, [".spec.paused", ".spec.replicas", ".spec.minReadySeconds"]);
    }

    #[test]
    fn identity_and_derived_metadata_are_not_owned() {
        let cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7", "uid": "u", "generation": 3,
                "annotations": {"a": "1"}}});
        let created = apply(None, &cfg, "a", false).unwrap();
        assert_eq!(owned(&created, "a", "Apply").unwrap(), json!({"f:metadata": {"f:annotations": {"f:a": {}}}}));
        // The resourceVersion is left for the caller's precondition check.
        assert_eq!(created["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn bad_configurations_are_refused() {
        let mut with_managed = config(json!({}));
        with_managed["metadata"]["managedFields"] = json!([]);
        let err = apply(None, &with_managed, "a", false).unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (400, "metadata.managedFields must be nil"));
        let err = apply(None, &with_containers(json!([{"image": "nginx"}])), "a", false).unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(
            err.message,
            "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): .spec.template.spec.containers: \
             element 0: associative list with keys has an element that omits key field \"name\""
        );
        assert_eq!(apply(None, &json!([]), "a", false).unwrap_err().code, 400);
    }

    #[test]
    fn nulls_unset_fields_and_claim_them() {
        let a = apply(None, &config(json!({"replicas": 2, "paused": true})), "a", false).unwrap();
        let err = apply(Some(&a), &config(json!({"replicas": null})), "b", false).unwrap_err();
        assert_eq!(err.message, "Apply failed with 1 conflict: conflict with \"a\": .spec.replicas");
        let unset = apply(Some(&a), &config(json!({"replicas": null, "paused": true})), "a", false).unwrap();
        assert_eq!(unset["spec"], json!({"paused": true}));
        assert_eq!(owned(&unset, "a", "Apply").unwrap(), json!({"f:spec": {"f:paused": {}, "f:replicas": {}}}));
    }

    #[test]
    fn unchanged_applies_keep_the_time_and_changes_renew_it() {
        let created = apply(None, &config(json!({"replicas": 2})), "a", false).unwrap();
        let same = apply_at(&created, &config(json!({"replicas": 2})), "a", T2);
        assert_eq!(same["metadata"]["managedFields"][0]["time"], T0);
        let changed = apply_at(&created, &config(json!({"replicas": 3})), "a", T2);
        assert_eq!(changed["metadata"]["managedFields"][0]["time"], T2);
    }

    /// A custom resource whose schema has a keyed list, a granular map of objects and an untyped field.
    fn widget() -> ResourceType {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port"],
                    "items": {"type": "object", "properties": {"port": {"type": "integer"}, "name": {"type": "string"}}}},
                "routes": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                    "path": {"type": "string"}, "weight": {"type": "integer"}}}},
                "hosts": {"type": "array", "x-kubernetes-patch-strategy": "merge", "items": {"type": "string"}},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            }},
        }});
        ResourceType {
            group: "example.com".into(),
            versions: vec!["v1".into()],
            kind: "Widget".into(),
            plural: "widgets".into(),
            singular: "widget".into(),
            namespaced: true,
            status: false,
            scale: None,
            short_names: Vec::new(),
            categories: Vec::new(),
            verbs: Vec::new(),
            home: gitbacked_core::registry::Home::Branch,
            printer_columns: Vec::new(),
            schemas: BTreeMap::from([("v1".to_string(), schema)]),
            defaulted: false,
            deprecations: BTreeMap::new(),
            selectable_fields: BTreeMap::new(),
            storage_version: None,
            crd: Some("widgets.example.com".into()),
        }
    }

    #[test]
    fn custom_resources_follow_their_schema() {
        let rt = widget();
        let schema = Node::of(&rt, "v1");
        let widget = |spec: Value| json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec});
        let run = |live: Option<&Value>, spec: Value, manager: &str| {
            server_side_apply(live, &widget(spec), manager, false, schema, "example.com/v1", T0)
        };
        let a = run(
            None,
            json!({"ports": [{"port": 80}], "routes": {"home": {"path": "/"}}, "hosts": ["a"], "extra": {"x": [1]}}),
            "a",
        )
        .unwrap();
        assert_eq!(
            owned(&a, "a", "Apply").unwrap(),
            json!({"f:spec": {
                "f:extra": {"f:x": {}},
                "f:hosts": {"v:\"a\"": {}},
                "f:ports": {"k:{\"port\":80}": {".": {}, "f:port": {}}},
                "f:routes": {"f:home": {".": {}, "f:path": {}}},
            }})
        );
        let b =
            run(Some(&a), json!({"ports": [{"port": 443}], "routes": {"api": {"path": "/api"}}, "hosts": ["b"]}), "b")
                .unwrap();
        assert_eq!(b["spec"]["ports"], json!([{"port": 80}, {"port": 443}]));
        assert_eq!(b["spec"]["routes"], json!({"home": {"path": "/"}, "api": {"path": "/api"}}));
        assert_eq!(b["spec"]["hosts"], json!(["a", "b"]));
        // An untyped list is atomic.
        let err = run(Some(&b), json!({"extra": {"x": [2]}}), "b").unwrap_err();
        assert_eq!(err.message, "Apply failed with 1 conflict: conflict with \"a\": .spec.extra.x");
        // a letting go of its route removes the whole entry.
        let dropped =
            run(Some(&b), json!({"ports": [{"port": 80}], "hosts": ["a"], "extra": {"x": [1]}}), "a").unwrap();
        assert_eq!(dropped["spec"]["routes"], json!({"api": {"path": "/api"}}));
    }

    #[test]
    fn without_a_schema_lists_are_replaced() {
        let object = |list: Value| json!({"apiVersion": "v1", "kind": "Thing", "metadata": {"name": "t"}, "spec": {"list": list}});
        let run =
            |live: Option<&Value>, list: Value| server_side_apply(live, &object(list), "a", false, None, "v1", T0);
        let first = run(None, json!([{"name": "x"}])).unwrap();
        let second = run(Some(&first), json!([{"name": "y"}])).unwrap();
        assert_eq!(second["spec"]["list"], json!([{"name": "y"}]));
        assert_eq!(owned(&second, "a", "Apply").unwrap(), json!({"f:spec": {".": {}, "f:list": {}}}));
    }
}
