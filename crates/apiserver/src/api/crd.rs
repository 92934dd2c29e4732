//! The status of CustomResourceDefinitions, as apiextensions-apiserver maintains it:
//! `acceptedNames`, `storedVersions` and the conditions `NamesAccepted` and `Established`
//! (`NonStructuralSchema` for a committed CRD whose schema is not structural, `Terminating` while
//! the CRD is being deleted).
//!
//! It is derived whenever a CRD is served, from the CRD's spec and the types the registry serves,
//! never stored in git: every process reading the same history derives the same status, across
//! restarts, and a person's file is never rewritten to carry it. Condition times are the CRD's
//! `creationTimestamp` (its deletion's for `Terminating`), so they agree everywhere too.

use gitbacked_core::Registry;
use gitbacked_core::registry::crd_resource_type;
use gitbacked_core::schema::schema_errors;
use std::collections::BTreeSet;

use serde_json::{Value, json};

/// The status of the CRD `crd` (its spec and metadata as stored) given the served types and the
/// versions its objects are stored in.
pub(super) fn status(registry: &Registry, crd: &Value, stored: &BTreeSet<String>) -> Value {
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
    // storedVersions: the storage version and every version an object is still stored in, in the
    // CRD's order, as apiextensions keeps the list until storage is migrated.
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let stored_versions: Vec<&str> = versions
        .iter()
        .filter(|v| {
            let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
            v.get("storage").and_then(Value::as_bool) == Some(true) || stored.contains(name)
        })
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .collect();
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
    // A schema that is not structural (a committed CRD: the API refuses them) is served, and said.
    let violations: Vec<String> = versions
        .iter()
        .enumerate()
        .filter_map(|(i, v)| Some((i, v.pointer("/schema/openAPIV3Schema")?)))
        .flat_map(|(i, schema)| schema_errors(schema, &format!("spec.versions[{i}].schema.openAPIV3Schema")))
        .filter(|e| {
            e.field.ends_with(".type")
                || e.field.ends_with(".uniqueItems")
                || e.field.ends_with(".additionalProperties")
        })
        .map(|e| e.to_string())
        .collect();
    if !violations.is_empty() {
        conditions.push(condition("NonStructuralSchema", true, "Violations", violations.join(", ")));
    }
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
        "storedVersions": stored_versions,
        "conditions": conditions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_that_is_not_structural_is_said_so() {
        let crd = json!({"metadata": {"name": "widgets.example.com", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                    "type": "object", "properties": {"spec": {"description": "no type"}}}}}]}});
        let mut registry = Registry::default();
        registry.apply_crd(&crd).unwrap();
        let status = status(&registry, &crd, &BTreeSet::from(["v0".to_string()]));
        assert_eq!(status["storedVersions"], json!(["v1"]));
        let conditions = status["conditions"].as_array().unwrap();
        let established = conditions.iter().find(|c| c["type"] == "Established").unwrap();
        assert_eq!(established["status"], "True");
        let non_structural = conditions.iter().find(|c| c["type"] == "NonStructuralSchema").unwrap();
        assert_eq!(non_structural["reason"], "Violations");
        assert_eq!(
            non_structural["message"],
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"
        );
    }
}
