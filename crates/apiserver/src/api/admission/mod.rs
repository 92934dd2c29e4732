//! Admission: the checks of a type that a decided write must pass before anything is stored,
//! after the generic ones (names, metadata, preconditions). A refused write answers a `Status`
//! and stores nothing.
//!
//! Custom resources are pruned, defaulted and validated with their CRD's schema (see
//! `gitbacked_core::schema`); built-in kinds, with their defaults (`gitbacked_core::defaults`), with
//! their schema and `gitbacked_core::validation::kinds`; Services get their addresses
//! (`allocation`), Secrets their `stringData` merged.

mod allocation;

use std::borrow::Cow;

pub use allocation::{InvalidServiceCidr, ServiceAllocator, ServiceCidr};

use gitbacked_core::defaults;
use gitbacked_core::registry::{api_version, crd_group_kind, split_api_version};
use gitbacked_core::schema::{Node, schema_errors};
use gitbacked_core::storage::{Mutation, Storage};
use gitbacked_core::validation::kinds;
use gitbacked_core::{ApiResult, FieldError, ObjectKey, ResourceType, StatusError, StoredObject};
use serde_json::Value;

/// The largest Event kept: etcd's default request limit (`--max-request-bytes`, 1.5 MiB), which
/// is what bounds an Event in kube-apiserver.
pub(crate) const MAX_EVENT_BYTES: usize = 1536 * 1024;

/// Limits of events.k8s.io Events (and core Events with an `eventTime`), as kube-apiserver's
/// event validation sets them.
const NOTE_LIMIT: usize = 1024;
const REASON_LIMIT: usize = 128;
const ACTION_LIMIT: usize = 128;
const REPORTING_INSTANCE_LIMIT: usize = 128;

/// A span around a part of admission, timed by the bench's `write-costs` (issue 15).
macro_rules! span {
    ($name:literal) => {
        tracing::trace_span!(target: "gitbacked::cost", $name)
    };
}

/// Admits a decided mutation of `key` that replaces `current`, or refuses it. A custom resource
/// is pruned and defaulted here, as apiextensions does, before it is validated.
pub(crate) fn admit(
    storage: &dyn Storage,
    services: &ServiceAllocator,
    key: &ObjectKey,
    current: Option<&StoredObject>,
    mutation: &mut Mutation,
) -> ApiResult<()> {
    let Mutation::Put(content) = mutation else { return Ok(()) };
    let registry = storage.registry();
    if let Some(rt) = registry.by_kind(&key.gk).filter(|rt| rt.crd.is_some()) {
        admit_custom_resource(rt, key, current, content)?;
    }
    check_types(storage, key, content)?;
    match (key.gk.group.as_str(), key.gk.kind.as_str()) {
        ("", "Secret") => merge_string_data(content),
        ("", "Service") => {
            let old = current.map(StoredObject::content);
            services
                .allocate(storage, key, old.as_ref(), content)
                .map_err(|errors| StatusError::invalid_fields("Service", "", &key.name, &errors))?;
        }
        _ => {}
    }
    if let Some(rt) = registry.by_kind(&key.gk).filter(|rt| rt.crd.is_none()) {
        admit_builtin(rt, key, current, content)?;
    }
    match (key.gk.group.as_str(), key.gk.kind.as_str()) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => admit_crd(storage, key, content),
        ("" | "events.k8s.io", "Event") => admit_event(key, content),
        _ => Ok(()),
    }
}

/// A Secret's `stringData` is a write-only convenience: its entries replace those of `data`,
/// base64-encoded, and it is not stored, as kube-apiserver's conversion does.
fn merge_string_data(secret: &mut Value) {
    use base64::Engine;
    let Some(map) = secret.as_object_mut() else { return };
    let Some(Value::Object(strings)) = map.remove("stringData") else { return };
    let data = map.entry("data").or_insert_with(|| Value::Object(Default::default()));
    if data.is_null() {
        *data = Value::Object(Default::default());
    }
    let Some(data) = data.as_object_mut() else { return };
    // Values are strings: `check_types` refused any other.
    for (key, value) in strings {
        if let Value::String(text) = value {
            data.insert(key, Value::String(base64::engine::general_purpose::STANDARD.encode(text)));
        }
    }
}

/// Prunes, defaults and validates a custom resource with its CRD's schema at the version it is
/// written in; refuses it (422) with every violation.
fn admit_custom_resource(
    rt: &ResourceType,
    key: &ObjectKey,
    current: Option<&StoredObject>,
    content: &mut Value,
) -> ApiResult<()> {
    let written = content.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let version = split_api_version(written).1.to_string();
    let Some(schema) = Node::of(rt, &version) else { return Ok(()) };
    span!("defaults").in_scope(|| {
        schema.prune(content);
        schema.apply_defaults(content);
    });
    let old = current.map(StoredObject::content);
    let errors = span!("validate").in_scope(|| schema.validate(content, old.as_ref()));
    if !errors.is_empty() {
        return Err(StatusError::invalid_fields(&rt.kind, &rt.group, &key.name, &errors));
    }
    // Written in the storage version, as kube-apiserver stores it (conversion `None`: the
    // apiVersion changes, and what the storage version's schema does not declare is dropped).
    if let Some(storage) = rt.storage_version.as_deref().filter(|s| *s != version.as_str())
        && let Some(stored) = Node::of(rt, storage)
    {
        content["apiVersion"] = Value::String(api_version(&rt.group, storage));
        stored.prune(content);
        stored.apply_defaults(content);
    }
    Ok(())
}

/// Refuses a built-in object with a resource quantity that does not parse (400, as the decoder
/// does), or that, defaulted, fails its kind's validations (422). What is stored leaves out the
/// defaults the file did not have (`gitbacked_core::defaults`): they are served, not written.
fn admit_builtin(
    rt: &ResourceType,
    key: &ObjectKey,
    current: Option<&StoredObject>,
    content: &mut Value,
) -> ApiResult<()> {
    let version = content.get("apiVersion").and_then(Value::as_str).map(split_api_version).unwrap_or_default().1;
    let version = version.to_string();
    if kinds::bad_quantity(&key.gk, content).is_some() {
        return Err(StatusError::bad_request(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            kind = rt.kind
        )));
    }
    let file = current.map(StoredObject::content);
    // Validated as served: with the kind's defaults, if it has any.
    let defaulted = |value: &Value| {
        let mut value = value.clone();
        defaults::apply(&key.gk, &version, &mut value);
        value
    };
    let (new, old) = span!("defaults").in_scope(|| match defaults::applies(&key.gk) {
        true => (Cow::Owned(defaulted(content)), file.as_ref().map(defaulted).map(Cow::Owned)),
        false => (Cow::Borrowed(&*content), file.as_ref().map(Cow::Borrowed)),
    });
    // The schema's required fields and enums (its types were checked before), then the kind's own
    // rules.
    let errors = span!("validate").in_scope(|| {
        let mut errors = Node::of(rt, &version).map(|s| s.validate(&new, old.as_deref())).unwrap_or_default();
        errors.extend(kinds::validate(&key.gk, &new, old.as_deref()));
        errors
    });
    if !errors.is_empty() {
        return Err(StatusError::invalid_fields(&rt.kind, &rt.group, &key.name, &errors));
    }
    span!("strip").in_scope(|| defaults::strip(&key.gk, &version, content, file.as_ref()));
    Ok(())
}

/// Refuses (400) a built-in object with a value a typed client could not decode (`data: 5` in a
/// ConfigMap), as kube-apiserver's decoder refuses it.
fn check_types(storage: &dyn Storage, key: &ObjectKey, content: &Value) -> ApiResult<()> {
    let registry = storage.registry();
    let Some(rt) = registry.by_kind(&key.gk).filter(|rt| rt.crd.is_none()) else { return Ok(()) };
    let api_version = content.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let (_, version) = split_api_version(api_version);
    let Some(schema) = Node::of(rt, version) else { return Ok(()) };
    let mismatches = span!("types").in_scope(|| schema.type_mismatches(content));
    match mismatches.first() {
        None => Ok(()),
        Some(m) => Err(StatusError::bad_request(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: json: cannot unmarshal {found} into {path} of type {expected}",
            kind = rt.kind,
            found = m.found,
            path = m.path.trim_start_matches('.'),
            expected = m.expected,
        ))),
    }
}

/// Refuses (422) a CustomResourceDefinition that does not describe a type that can be served,
/// that would take the place of a built-in type, or whose schemas apiextensions refuses.
fn admit_crd(storage: &dyn Storage, key: &ObjectKey, content: &Value) -> ApiResult<()> {
    debug_assert_eq!(*key.gk, crd_group_kind());
    let mut registry = (*storage.registry()).clone();
    registry.remove_crd(&key.name);
    registry.apply_crd(content).map_err(|e| e.to_status(&key.name))?;
    let versions = content.pointer("/spec/versions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let mut errors = Vec::new();
    for (i, version) in versions.iter().enumerate() {
        let path = format!("spec.versions[{i}].schema.openAPIV3Schema");
        match version.pointer("/schema/openAPIV3Schema") {
            Some(schema) => errors.extend(schema_errors(schema, &path)),
            None => errors.push(FieldError::required(path, "schemas are required")),
        }
    }
    match errors.is_empty() {
        true => Ok(()),
        false => {
            Err(StatusError::invalid_fields("CustomResourceDefinition", "apiextensions.k8s.io", &key.name, &errors))
        }
    }
}

/// Refuses an Event larger than etcd would store (413), and a new-style Event (with an
/// `eventTime`) whose texts are longer than kube-apiserver allows (422).
fn admit_event(key: &ObjectKey, content: &Value) -> ApiResult<()> {
    let size = serde_json::to_vec(content).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_EVENT_BYTES {
        return Err(StatusError::too_large(format!(
            "the Event is {size} bytes; an Event may have at most {MAX_EVENT_BYTES} bytes"
        )));
    }
    let new_style = key.gk.group == "events.k8s.io" || content.get("eventTime").is_some_and(|t| !t.is_null());
    if !new_style {
        return Ok(());
    }
    // The text is `message` in core/v1 and `note` in events.k8s.io/v1.
    let message = if key.gk.group.is_empty() { "message" } else { "note" };
    let text = |field: &str| content.get(field).and_then(Value::as_str).unwrap_or_default();
    let causes: Vec<(String, String)> = [
        (message, NOTE_LIMIT),
        ("reason", REASON_LIMIT),
        ("action", ACTION_LIMIT),
        ("reportingInstance", REPORTING_INSTANCE_LIMIT),
    ]
    .into_iter()
    .filter(|(field, limit)| text(field).len() > *limit)
    .map(|(field, limit)| (field.to_string(), format!("Invalid value: \"\": can have at most {limit} characters")))
    .collect();
    if causes.is_empty() { Ok(()) } else { Err(StatusError::invalid("Event", &key.gk.group, &key.name, causes)) }
}
