//! What apiextensions does to a custom resource with its structural schema before validating it:
//! pruning of the fields the schema does not declare, then defaulting (nulls of non-nullable
//! fields dropped or replaced by their default, missing fields with a `default` filled in).

use serde_json::{Map, Value};

use super::{BUILTIN, Node, OBJECT_META};
use crate::field::FieldError;

impl Node<'_> {
    /// Removes the fields of `value` that a structural schema does not declare, where it does not
    /// preserve unknown fields; `metadata` keeps only ObjectMeta's fields. Returns what it removed
    /// (`.spec.foo`). A non-structural (built-in) schema prunes nothing.
    pub fn prune(&self, value: &mut Value) -> Vec<String> {
        let mut pruned = Vec::new();
        if self.structural {
            self.prune_at(value, String::new(), &mut pruned);
        }
        pruned
    }

    fn prune_at(&self, value: &mut Value, path: String, pruned: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                let whole_object = self.holds_object();
                let open = self.preserves_unknown_fields();
                map.retain(|key, child| {
                    let child_path = format!("{path}.{key}");
                    if whole_object && matches!(key.as_str(), "apiVersion" | "kind") {
                        return true;
                    }
                    if whole_object && key == "metadata" {
                        prune_metadata(child, &child_path, pruned);
                        return true;
                    }
                    match self.field(key) {
                        Some(node) => {
                            node.prune_at(child, child_path, pruned);
                            true
                        }
                        None if open => true,
                        None => {
                            pruned.push(child_path);
                            false
                        }
                    }
                });
            }
            Value::Array(items) => {
                if let Some(node) = self.items() {
                    for (i, item) in items.iter_mut().enumerate() {
                        node.prune_at(item, format!("{path}[{i}]"), pruned);
                    }
                }
            }
            _ => {}
        }
    }

    /// Whether a structural schema sets a `default` anywhere: only then is there anything for
    /// [`Node::apply_defaults`] to do.
    pub fn has_defaults(&self) -> bool {
        self.structural && crate::registry::declares_defaults(self.value)
    }

    /// Applies the schema's defaults to `value`, as apiextensions defaults a custom resource when
    /// it is written and when it is read: top down, so a default's own fields are defaulted too.
    /// A `null` in a field that is not `nullable` is replaced by the default, or removed.
    pub fn apply_defaults(&self, value: &mut Value) {
        if self.structural {
            self.default_at(value);
        }
    }

    fn default_at(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                if let Some(properties) = self.properties() {
                    for (name, schema) in properties {
                        let node = self.child(schema);
                        fill(map, name, &node);
                    }
                }
                let whole_object = self.holds_object();
                let values = self.values();
                let keys: Vec<String> = map.keys().cloned().collect();
                for key in keys {
                    if whole_object && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                        continue;
                    }
                    if let Some(node) = values.filter(|_| self.properties().is_none_or(|p| !p.contains_key(&key))) {
                        fill(map, &key, &node);
                    }
                    if let (Some(node), Some(child)) = (self.field(&key), map.get_mut(&key)) {
                        node.default_at(child);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(node) = self.items() {
                    for item in items {
                        node.default_at(item);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Sets `map[name]` to the field's default when it is missing (or a `null` the field does not
/// allow); drops such a `null` when there is no default.
fn fill(map: &mut Map<String, Value>, name: &str, node: &Node<'_>) {
    let default = node.value.get("default");
    match map.get(name) {
        None => {
            if let Some(default) = default {
                map.insert(name.to_string(), default.clone());
            }
        }
        Some(Value::Null) if !node.flag("nullable") => match default {
            Some(default) => {
                map.insert(name.to_string(), default.clone());
            }
            None => {
                map.remove(name);
            }
        },
        Some(_) => {}
    }
}

/// What apiextensions refuses in a CRD version's `openAPIV3Schema` (at `path`): nodes without a
/// type, `uniqueItems`, `additionalProperties: false`, patterns that do not compile, defaults the
/// schema itself refuses, CEL rules that do not compile.
pub fn schema_errors(schema: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let root = Node { value: schema, root: true, structural: true };
    root.collect_schema_errors(path, "", 0, &mut errors);
    errors
}

impl Node<'_> {
    fn collect_schema_errors(&self, path: &str, context: &str, depth: usize, errors: &mut Vec<FieldError>) {
        if depth > crate::limits::MAX_DEPTH {
            errors.push(FieldError::forbidden(path, "the schema is nested too deeply"));
            return;
        }
        let typed = self.str("type").is_some_and(|t| !t.is_empty());
        let free = self.flag("x-kubernetes-preserve-unknown-fields") || self.flag("x-kubernetes-int-or-string");
        if self.root && self.str("type") != Some("object") {
            errors.push(FieldError::required(format!("{path}.type"), "must be object at the root"));
        } else if !typed && !free {
            errors.push(FieldError::required(
                format!("{path}.type"),
                format!("must not be empty for specified {context}"),
            ));
        }
        if self.flag("uniqueItems") {
            let detail = "uniqueItems cannot be set to true since the runtime complexity becomes quadratic";
            errors.push(FieldError::forbidden(format!("{path}.uniqueItems"), detail));
        }
        if self.value.get("additionalProperties") == Some(&Value::Bool(false)) {
            errors.push(FieldError::forbidden(format!("{path}.additionalProperties"), "must not be false"));
        }
        self.collect_extension_errors(path, errors);
        if let Some(pattern) = self.str("pattern")
            && super::validate::matches_pattern(pattern, "").is_none()
        {
            let detail = "must be a valid regular expression, but isn't";
            errors.push(FieldError::invalid(format!("{path}.pattern"), Value::String(pattern.into()), detail));
        }
        if let Some(default) = self.value.get("default") {
            let mut refused = Vec::new();
            Node { root: false, ..*self }.check(default, None, "default", &mut refused);
            for e in refused {
                errors.push(FieldError::invalid(format!("{path}.default"), default.clone(), e.body()));
            }
        }
        super::cel::rule_errors(self.value, path, errors);
        for (key, child) in self.properties().into_iter().flatten() {
            self.child(child).collect_schema_errors(
                &format!("{path}.properties[{key}]"),
                "object fields",
                depth + 1,
                errors,
            );
        }
        if let Some(items) = self.value.get("items").filter(|v| v.is_object()) {
            self.child(items).collect_schema_errors(&format!("{path}.items"), "array items", depth + 1, errors);
        }
        if let Some(values) = self.value.get("additionalProperties").filter(|v| v.is_object()) {
            let at = format!("{path}.additionalProperties");
            self.child(values).collect_schema_errors(&at, "additionalProperties", depth + 1, errors);
        }
    }
}

impl Node<'_> {
    /// The `x-kubernetes-*` extensions must agree with each other and with the node's type.
    fn collect_extension_errors(&self, path: &str, errors: &mut Vec<FieldError>) {
        let at = |key: &str| format!("{path}.{key}");
        let list_type = self.list_type();
        if let Some(list_type) = list_type.filter(|t| !matches!(*t, "atomic" | "set" | "map")) {
            let supported = ["atomic", "set", "map"].map(String::from).to_vec();
            errors.push(FieldError::not_supported(at("x-kubernetes-list-type"), Value::from(list_type), supported));
        }
        if list_type.is_some() && self.str("type") != Some("array") {
            errors.push(FieldError::invalid(
                at("type"),
                Value::from(self.str("type").unwrap_or_default()),
                "must be array if x-kubernetes-list-type is set",
            ));
        }
        let keys = self.list_map_keys();
        match (list_type, keys.is_empty()) {
            (Some("map"), true) => errors.push(FieldError::required(
                at("x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            )),
            (Some("map"), false) => {
                let items = self.items();
                for key in keys {
                    let declared = items.and_then(|i| i.properties()).and_then(|p| p.get(key));
                    let required = items
                        .and_then(|i| i.value.get("required"))
                        .and_then(Value::as_array)
                        .is_some_and(|r| r.iter().any(|k| k == key));
                    let defaulted = declared.is_some_and(|d| d.get("default").is_some());
                    if declared.is_none() || !(required || defaulted) {
                        let detail =
                            "entries must all be names of required properties, or of properties with a default";
                        errors.push(FieldError::invalid(at("x-kubernetes-list-map-keys"), Value::from(key), detail));
                    }
                }
            }
            (_, false) => errors.push(FieldError::forbidden(
                at("x-kubernetes-list-map-keys"),
                "must not be set if x-kubernetes-list-type is not map",
            )),
            (_, true) => {}
        }
        if let Some(map_type) = self.map_type().filter(|t| !matches!(*t, "granular" | "atomic")) {
            let supported = ["granular", "atomic"].map(String::from).to_vec();
            errors.push(FieldError::not_supported(at("x-kubernetes-map-type"), Value::from(map_type), supported));
        }
        if self.flag("x-kubernetes-int-or-string") && self.str("type").is_some() {
            let value = Value::from(self.str("type").unwrap_or_default());
            errors.push(FieldError::invalid(at("type"), value, "must be empty if x-kubernetes-int-or-string is true"));
        }
        if self.embedded_resource() && self.str("type") != Some("object") {
            errors.push(FieldError::required(at("type"), "must be object if x-kubernetes-embedded-resource is true"));
        }
        if self.value.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
            errors.push(FieldError::invalid(
                at("x-kubernetes-preserve-unknown-fields"),
                Value::Bool(false),
                "must be true or undefined",
            ));
        }
    }
}

/// Keeps the fields of ObjectMeta, as decoding into it does.
fn prune_metadata(metadata: &mut Value, path: &str, pruned: &mut Vec<String>) {
    let Some(known) = BUILTIN.get(OBJECT_META).and_then(|m| m.get("properties")).and_then(Value::as_object) else {
        return;
    };
    if let Some(map) = metadata.as_object_mut() {
        map.retain(|key, _| {
            let keep = known.contains_key(key);
            if !keep {
                pruned.push(format!("{path}.{key}"));
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::registry::crd_resource_type;
    use crate::schema::Node;

    #[test]
    fn unknown_fields_are_pruned_and_defaults_applied() {
        let rt = crd_resource_type(&json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com",
            "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object",
                "properties": {"spec": {"type": "object", "properties": {
                    "size": {"type": "integer", "default": 1},
                    "mode": {"type": "object", "default": {}, "properties": {"name": {"type": "string", "default": "fast"}}},
                    "items": {"type": "array", "items": {"type": "object", "properties": {
                        "weight": {"type": "integer", "default": 5}, "name": {"type": "string"}}}},
                    "limits": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                        "max": {"type": "integer", "default": 9}}}},
                    "note": {"type": "string"},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}}}]}}))
        .unwrap();
        let node = Node::of(&rt, "v1").unwrap();
        assert!(node.has_defaults());
        let mut value = json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "bogus": 1, "labels": {"a": "b"}},
            "spec": {"extra": true, "note": null, "items": [{"name": "a", "x": 1}], "limits": {"cpu": {}},
                "free": {"anything": {"goes": 1}}},
            "status": {"ready": true}});
        assert_eq!(node.prune(&mut value), [".metadata.bogus", ".spec.extra", ".spec.items[0].x", ".status"]);
        node.apply_defaults(&mut value);
        assert_eq!(
            value,
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "labels": {"a": "b"}},
                "spec": {"size": 1, "mode": {"name": "fast"}, "items": [{"name": "a", "weight": 5}],
                    "limits": {"cpu": {"max": 9}}, "free": {"anything": {"goes": 1}}}})
        );
        let builtin = Node::builtin("", "v1", "ConfigMap").unwrap();
        assert!(!builtin.has_defaults());
        let mut cm = json!({"data": {"a": "b"}, "bogus": 1});
        assert!(builtin.prune(&mut cm).is_empty());
    }

    #[test]
    fn schemas_apiextensions_refuses() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "untyped": {"description": "no type"},
            "tags": {"type": "array", "uniqueItems": true, "items": {"type": "string", "pattern": "(unclosed"}},
            "size": {"type": "integer", "minimum": 1, "default": 0},
            "free": {"x-kubernetes-preserve-unknown-fields": true},
            "port": {"x-kubernetes-int-or-string": true},
            "keyed": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "counted": {"type": "integer", "x-kubernetes-list-type": "set"}},
            "x-kubernetes-validations": [{"rule": "self.size >"}]}}});
        let errors: Vec<String> = super::schema_errors(&schema, "s").iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 7, "{errors:#?}");
        for expected in [
            "s.properties[spec].x-kubernetes-validations[0].rule: Invalid value: \"self.size >\": compilation failed",
            "s.properties[spec].properties[untyped].type: Required value: must not be empty for specified object fields",
            "s.properties[spec].properties[tags].uniqueItems: Forbidden",
            "s.properties[spec].properties[tags].items.pattern: Invalid value: \"(unclosed\"",
            "s.properties[spec].properties[size].default: Invalid value: 0: Invalid value: 0: default in body should be greater than or equal to 1",
            "s.properties[spec].properties[keyed].x-kubernetes-list-map-keys: Invalid value: \"name\": entries must all be names of required properties",
            "s.properties[spec].properties[counted].type: Invalid value: \"integer\": must be array if x-kubernetes-list-type is set",
        ] {
            assert!(errors.iter().any(|e| e.starts_with(expected)), "{expected} not in {errors:#?}");
        }
    }
}
