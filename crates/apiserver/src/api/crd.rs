//! The status of CustomResourceDefinitions, as apiextensions-apiserver maintains it:
//! `acceptedNames`, `storedVersions` and the conditions `NamesAccepted` and `Established`
//! (`Terminating` while the CRD is being deleted).
//!
//! It is derived whenever a CRD is served, from the CRD's spec and the types the registry serves,
//! never stored in git: every process reading the same history derives the same status, across
//! restarts, and a person's file is never rewritten to carry it. Condition times are the CRD's
//! `creationTimestamp` (its deletion's for `Terminating`), so they agree everywhere too.

use gitbacked_core::Registry;
use gitbacked_core::registry::crd_resource_type;
use serde_json::{Value, json};

/// The status of the CRD `crd` (its spec and metadata as stored) given the served types.
pub(super) fn status(registry: &Registry, crd: &Value) -> Value {
    let name = crd.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let created = crd.pointer("/metadata/creationTimestamp").cloned().unwrap_or(Value::Null);
    let condition = |kind: &str, ok: bool, reason: &str, message: String| {
        json!({"type": kind, "status": if ok { "True" } else { "False" }, "lastTransitionTime": created,
            "reason": reason, "message": message})
    };
    let rt = match crd_resource_type(crd) {
        Ok(rt) => rt,
        Err(e) => {
            let message = format!("{}: {e}", e.field());
            return json!({"acceptedNames": {"plural": "", "kind": ""}, "storedVersions": [], "conditions": [
                condition("NamesAccepted", false, "InvalidNames", message),
                condition("Established", false, "NotAccepted", "not all names are accepted".into()),
            ]});
        }
    };
    let accepted = registry.by_kind(&rt.group_kind()).is_some_and(|t| t.crd.as_deref() == Some(name));
    let storage = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .and_then(|v| v.get("name").cloned());
    let mut conditions = if accepted {
        vec![
            condition("NamesAccepted", true, "NoConflicts", "no conflicts found".into()),
            condition("Established", true, "InitialNamesAccepted", "the initial names have been accepted".into()),
        ]
    } else {
        vec![
            condition("NamesAccepted", false, "NameConflict", format!("{} is already in use", rt.plural)),
            condition("Established", false, "NotAccepted", "not all names are accepted".into()),
        ]
    };
    if let Some(deleted) = crd.pointer("/metadata/deletionTimestamp") {
        conditions.push(json!({"type": "Terminating", "status": "True", "lastTransitionTime": deleted,
            "reason": "InstanceDeletionInProgress", "message": "CustomResource deletion is in progress"}));
    }
    let list_kind = crd.pointer("/spec/names/listKind").cloned().unwrap_or_else(|| json!(format!("{}List", rt.kind)));
    let mut names = json!({"plural": rt.plural, "singular": rt.singular, "kind": rt.kind, "listKind": list_kind});
    if !rt.short_names.is_empty() {
        names["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        names["categories"] = json!(rt.categories);
    }
    json!({
        "acceptedNames": if accepted { names } else { json!({"plural": "", "kind": ""}) },
        "storedVersions": storage.into_iter().collect::<Vec<_>>(),
        "conditions": conditions,
    })
}
