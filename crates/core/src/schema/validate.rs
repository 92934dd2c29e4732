//! Validation of a custom resource against its CRD's structural schema, as apiextensions does it
//! (kube-openapi's schema validator, `x-kubernetes-list-type` uniqueness, embedded resources),
//! with kube-apiserver's words: `spec.size: Invalid value: 0: spec.size in body should be
//! greater than or equal to 1`.
//!
//! Every violation is reported at once. On an update, a value equal to the one it replaces is
//! not validated again (validation ratcheting, on by default since Kubernetes 1.30): an object
//! that became invalid when its CRD tightened can still have its other fields written.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use serde_json::{Map, Value};

use super::{Node, json_type};
use crate::field::{FieldError, FieldErrorType};

impl Node<'_> {
    /// The violations of the schema in `value`, an object of the schema's type. `old` is the
    /// object it replaces, for ratcheting. The object's `metadata` is left to the generic checks.
    pub fn validate(&self, value: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        self.check(value, old, "", &mut errors);
        errors
    }

    pub(super) fn check(&self, value: &Value, old: Option<&Value>, path: &str, errors: &mut Vec<FieldError>) {
        if old == Some(value) {
            return;
        }
        let in_body = |what: String| format!("{path} in body {what}");
        if value.is_null() {
            // A built-in type's decoder reads null as the zero value; a CRD's schema says whether null is valid.
            if self.structural && !self.flag("nullable") && (self.int_or_string() || self.str("type").is_some()) {
                let expected = self.str("type").unwrap_or("integer,string");
                errors.push(type_invalid(path, "null", in_body(format!("must be of type {expected}: \"null\""))));
            }
            return;
        }
        if let Some(expected) = self.type_violation(value) {
            let found = json_type(value);
            errors.push(type_invalid(path, found, in_body(format!("must be of type {expected}: \"{found}\""))));
            return;
        }
        if let Some(allowed) = self.value.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            let supported =
                allowed.iter().map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).collect();
            errors.push(FieldError::not_supported(path, value.clone(), supported));
        }
        match value {
            Value::Number(n) => self.check_number(n.as_f64().unwrap_or_default(), value, path, errors),
            Value::String(s) => self.check_string(s, value, path, errors),
            Value::Array(items) => self.check_array(items, old.and_then(Value::as_array), path, errors),
            Value::Object(map) => self.check_object(map, old.and_then(Value::as_object), path, errors),
            Value::Bool(_) | Value::Null => {}
        }
        self.check_combinators(value, path, errors);
        self.check_rules(value, old, path, errors);
    }

    fn int_or_string(&self) -> bool {
        self.flag("x-kubernetes-int-or-string")
    }

    /// The type the schema asks for when `value` is not of it.
    fn type_violation(&self, value: &Value) -> Option<&'static str> {
        let got = json_type(value);
        let integral = |v: &Value| v.as_f64().is_some_and(|f| f.fract() == 0.0);
        if self.int_or_string() {
            return (!(got == "string" || integral(value))).then_some("integer,string");
        }
        match self.str("type")? {
            "integer" if !integral(value) => Some("integer"),
            "number" if !value.is_number() => Some("number"),
            "string" if got != "string" => Some("string"),
            "boolean" if got != "boolean" => Some("boolean"),
            "object" if got != "object" => Some("object"),
            "array" if got != "array" => Some("array"),
            _ => None,
        }
    }

    fn number(&self, key: &str) -> Option<f64> {
        self.value.get(key).and_then(Value::as_f64)
    }

    fn count(&self, key: &str) -> Option<usize> {
        self.value.get(key).and_then(Value::as_u64).map(|n| n as usize)
    }

    fn check_number(&self, n: f64, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
        let mut invalid =
            |what: String| errors.push(FieldError::invalid(path, value.clone(), format!("{path} in body {what}")));
        if let Some(min) = self.number("minimum") {
            match self.flag("exclusiveMinimum") {
                true if n <= min => invalid(format!("should be greater than {}", go_number(min))),
                false if n < min => invalid(format!("should be greater than or equal to {}", go_number(min))),
                _ => {}
            }
        }
        if let Some(max) = self.number("maximum") {
            match self.flag("exclusiveMaximum") {
                true if n >= max => invalid(format!("should be less than {}", go_number(max))),
                false if n > max => invalid(format!("should be less than or equal to {}", go_number(max))),
                _ => {}
            }
        }
        if let Some(factor) = self.number("multipleOf").filter(|f| *f > 0.0) {
            let quotient = n / factor;
            if (quotient - quotient.round()).abs() > 1e-9 {
                invalid(format!("should be a multiple of {}", go_number(factor)));
            }
        }
        let format = self.str("format").unwrap_or_default();
        if format == "int32" && value.is_i64() && i32::try_from(value.as_i64().unwrap_or_default()).is_err() {
            invalid("must be of type int32".to_string());
        }
    }

    fn check_string(&self, s: &str, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
        let chars = s.chars().count();
        if let Some(min) = self.count("minLength")
            && chars < min
        {
            errors.push(FieldError::invalid(
                path,
                value.clone(),
                format!("{path} in body should be at least {min} chars long"),
            ));
        }
        if let Some(max) = self.count("maxLength")
            && chars > max
        {
            let unit = if max == 1 { "byte" } else { "bytes" };
            errors.push(FieldError {
                field: path.to_string(),
                kind: FieldErrorType::TooLong,
                detail: format!("may not be more than {max} {unit}"),
            });
        }
        if let Some(pattern) = self.str("pattern")
            && matches_pattern(pattern, s) == Some(false)
        {
            errors.push(FieldError::invalid(path, value.clone(), format!("{path} in body should match '{pattern}'")));
        }
        if let Some(format) = self.str("format")
            && !self.int_or_string()
            && !is_format(format, s)
        {
            let detail = format!("{path} in body must be of type {format}: {s:?}");
            errors.push(FieldError {
                field: path.to_string(),
                kind: FieldErrorType::TypeInvalid(value.clone()),
                detail,
            });
        }
    }

    /// `minItems`/`maxItems` of an array, `minProperties`/`maxProperties` of an object.
    fn check_count(&self, path: &str, count: usize, [min_key, max_key, noun]: [&str; 3], errors: &mut Vec<FieldError>) {
        if let Some(min) = self.count(min_key)
            && count < min
        {
            let detail = format!("{path} in body should have at least {min} {noun}");
            errors.push(FieldError::invalid(path, Value::from(count), detail));
        }
        if let Some(max) = self.count(max_key)
            && count > max
        {
            errors.push(too_many(path, count, max));
        }
    }

    fn check_array(&self, items: &[Value], old: Option<&Vec<Value>>, path: &str, errors: &mut Vec<FieldError>) {
        self.check_count(path, items.len(), ["minItems", "maxItems", "items"], errors);
        if self.flag("uniqueItems") && (1..items.len()).any(|i| items[..i].contains(&items[i])) {
            let detail = format!("{path} in body shouldn't contain duplicates");
            errors.push(FieldError::invalid(path, Value::String(String::new()), detail));
        }
        let keys = self.list_map_keys();
        match self.list_type() {
            Some("set") => {
                for (i, item) in items.iter().enumerate() {
                    if items[..i].contains(item) {
                        errors.push(duplicate(&format!("{path}[{i}]"), item.clone()));
                    }
                }
            }
            Some("map") => {
                let key_of = |item: &Value| -> Value {
                    let fields = keys.iter().map(|k| (k.to_string(), item.get(*k).cloned().unwrap_or(Value::Null)));
                    Value::Object(fields.collect())
                };
                let mut seen = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let key = key_of(item);
                    if seen.contains(&key) {
                        errors.push(duplicate(&format!("{path}[{i}]"), key.clone()));
                    }
                    seen.push(key);
                }
            }
            _ => {}
        }
        let Some(node) = self.items() else { return };
        for (i, item) in items.iter().enumerate() {
            // The item it replaces: the one with the same keys (map), the same value (set).
            let before = match self.list_type() {
                Some("map") => old.into_iter().flatten().find(|o| keys.iter().all(|k| o.get(*k) == item.get(*k))),
                Some("set") => old.into_iter().flatten().find(|o| *o == item),
                _ => None,
            };
            node.check(item, before, &format!("{path}[{i}]"), errors);
        }
    }

    fn check_object(
        &self,
        map: &Map<String, Value>,
        old: Option<&Map<String, Value>>,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        let child_path = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
        let whole_object = self.holds_object();
        for required in self.value.get("required").and_then(Value::as_array).into_iter().flatten() {
            let Some(name) = required.as_str() else { continue };
            let unchanged = old.is_some_and(|o| !o.contains_key(name));
            let exempt = unchanged || (whole_object && name == "metadata");
            if !map.contains_key(name) && !exempt {
                errors.push(FieldError::required(child_path(name), ""));
            }
        }
        if self.embedded_resource() {
            for name in ["apiVersion", "kind"] {
                if map.get(name).and_then(Value::as_str).is_none_or(str::is_empty) {
                    errors.push(FieldError::required(child_path(name), "must not be empty"));
                }
            }
        }
        self.check_count(path, map.len(), ["minProperties", "maxProperties", "properties"], errors);
        for (key, child) in map {
            if whole_object && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(node) = self.field(key) {
                node.check(child, old.and_then(|o| o.get(key)), &child_path(key), errors);
            }
        }
    }

    /// `allOf`, `anyOf`, `oneOf` and `not`: value validations over the same value.
    fn check_combinators(&self, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
        let branches = |key: &str| -> Vec<Vec<FieldError>> {
            let schemas = self.value.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            schemas.iter().map(|s| self.child(s).validate_branch(value, path)).collect()
        };
        for failures in branches("allOf") {
            errors.extend(failures);
        }
        let combined =
            |what: &str| FieldError::invalid(path, Value::String(String::new()), format!("{path} in body {what}"));
        let any = branches("anyOf");
        if !any.is_empty() && any.iter().all(|f| !f.is_empty()) {
            errors.push(combined("must validate at least one schema (anyOf)"));
        }
        let one = branches("oneOf");
        if !one.is_empty() && one.iter().filter(|f| f.is_empty()).count() != 1 {
            errors.push(combined("must validate one and only one schema (oneOf)"));
        }
        if let Some(not) = self.value.get("not")
            && self.child(not).validate_branch(value, path).is_empty()
        {
            errors.push(combined("shouldn't validate the schema (not)"));
        }
    }

    fn validate_branch(&self, value: &Value, path: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        self.check(value, None, path, &mut errors);
        errors
    }
}

fn type_invalid(path: &str, found: &str, detail: String) -> FieldError {
    FieldError { field: path.to_string(), kind: FieldErrorType::TypeInvalid(Value::String(found.to_string())), detail }
}

fn too_many(path: &str, actual: usize, max: usize) -> FieldError {
    FieldError {
        field: path.to_string(),
        kind: FieldErrorType::TooMany(actual),
        detail: format!("must have at most {max} items"),
    }
}

fn duplicate(path: &str, value: Value) -> FieldError {
    FieldError { field: path.to_string(), kind: FieldErrorType::Duplicate(value), detail: String::new() }
}

/// A float as Go's `%v` prints it: `1`, not `1.0`.
fn go_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 { format!("{}", n as i64) } else { n.to_string() }
}

/// Compiled patterns, bounded: a CRD names few, and a hostile one cannot grow this without end.
static PATTERNS: LazyLock<Mutex<HashMap<String, Option<regex::Regex>>>> = LazyLock::new(Mutex::default);
const MAX_PATTERNS: usize = 1024;
/// The largest compiled program a pattern may take (the regex crate's `size_limit`).
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// Whether `s` matches `pattern`; `None` when the pattern does not compile (the CRD's admission
/// refuses those; a committed CRD's bad pattern validates nothing).
pub(crate) fn matches_pattern(pattern: &str, s: &str) -> Option<bool> {
    let mut cache = PATTERNS.lock().unwrap_or_else(|e| e.into_inner());
    if !cache.contains_key(pattern) {
        if cache.len() >= MAX_PATTERNS {
            cache.clear();
        }
        let compiled = regex::RegexBuilder::new(pattern).size_limit(PATTERN_SIZE_LIMIT).build().ok();
        cache.insert(pattern.to_string(), compiled);
    }
    cache.get(pattern).and_then(|r| r.as_ref()).map(|r| r.is_match(s))
}

/// Whether `s` is of the string `format`, for the formats apiextensions knows; others pass.
pub(crate) fn is_format(format: &str, s: &str) -> bool {
    match format.replace(['-', '_'], "").as_str() {
        "datetime" => is_date_time(s),
        "date" => is_date(s),
        "byte" => is_base64(s),
        "uuid" | "uuid3" | "uuid4" | "uuid5" => is_uuid(s),
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => s.split_once('/').is_some_and(|(ip, bits)| {
            let max = if ip.contains(':') { 128 } else { 32 };
            ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= max)
        }),
        "hostname" => crate::validation::is_dns_subdomain(&s.to_ascii_lowercase()),
        "email" => s.split_once('@').is_some_and(|(user, host)| !user.is_empty() && host.contains('.')),
        "mac" => {
            let parts: Vec<&str> = s.split([':', '-']).collect();
            matches!(parts.len(), 6 | 8 | 20)
                && parts.iter().all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
        }
        "duration" => is_duration(s),
        "uri" => s.split_once(':').is_some_and(|(scheme, _)| {
            scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }),
        "hexcolor" => s.len() == 7 && s.starts_with('#') && s[1..].chars().all(|c| c.is_ascii_hexdigit()),
        _ => true,
    }
}

fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

fn is_date(s: &str) -> bool {
    let mut parts = s.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else { return false };
    digits(y, 4).is_some()
        && digits(m, 2).is_some_and(|m| (1..=12).contains(&m))
        && digits(d, 2).is_some_and(|d| (1..=31).contains(&d))
}

/// RFC 3339: `2006-01-02T15:04:05Z`, with optional fractions and a numeric offset.
fn is_date_time(s: &str) -> bool {
    let Some((date, time)) = s.split_once(['T', 't', ' ']) else { return false };
    let (clock, zone) = match time.strip_suffix(['Z', 'z']) {
        Some(clock) => (clock, None),
        None => match time.rfind(['+', '-']) {
            Some(i) => (&time[..i], Some(&time[i + 1..])),
            None => return false,
        },
    };
    let clock = clock.split_once('.').map_or(clock, |(whole, fraction)| {
        if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) { "invalid" } else { whole }
    });
    let hms: Vec<&str> = clock.split(':').collect();
    let valid_clock = hms.len() == 3
        && digits(hms[0], 2).is_some_and(|h| h < 24)
        && digits(hms[1], 2).is_some_and(|m| m < 60)
        && digits(hms[2], 2).is_some_and(|s| s <= 60);
    let valid_zone = zone.is_none_or(|z| {
        z.split_once(':')
            .is_some_and(|(h, m)| digits(h, 2).is_some_and(|h| h < 24) && digits(m, 2).is_some_and(|m| m < 60))
    });
    is_date(date) && valid_clock && valid_zone
}

fn is_base64(s: &str) -> bool {
    let trimmed = s.trim_end_matches('=');
    s.len().is_multiple_of(4)
        && s.len() - trimmed.len() <= 2
        && trimmed.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A duration as Go's strfmt reads it: `1h30m`, `2 days`, `500ms`.
fn is_duration(s: &str) -> bool {
    const UNITS: [&str; 22] = [
        "ns", "us", "µs", "ms", "s", "m", "h", "d", "w", "sec", "secs", "second", "seconds", "min", "mins", "minute",
        "minutes", "hour", "hours", "day", "days", "week",
    ];
    let mut rest = s.trim();
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if number_end == 0 {
            return false;
        }
        rest = rest[number_end..].trim_start();
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c.is_whitespace()).unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        if !UNITS.contains(&unit) && unit != "weeks" {
            return false;
        }
        rest = rest[unit_end..].trim_start();
    }
    true
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::registry::crd_resource_type;
    use crate::schema::Node;

    fn widgets(schema: serde_json::Value) -> crate::ResourceType {
        crd_resource_type(&json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com",
            "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": schema}}]}}))
        .unwrap()
    }

    fn messages(rt: &crate::ResourceType, value: serde_json::Value, old: Option<serde_json::Value>) -> Vec<String> {
        let node = Node::of(rt, "v1").unwrap();
        node.validate(&value, old.as_ref()).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn every_violation_is_reported_in_kubernetes_words() {
        let rt = widgets(
            json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["size", "name"],
            "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 10},
                "name": {"type": "string", "minLength": 3, "maxLength": 5, "pattern": "^[a-z]+$"},
                "color": {"type": "string", "enum": ["red", "green", "blue"]},
                "ratio": {"type": "number", "exclusiveMaximum": true, "maximum": 1, "multipleOf": 0.25},
                "when": {"type": "string", "format": "date-time"},
                "port": {"x-kubernetes-int-or-string": true},
                "tags": {"type": "array", "maxItems": 2, "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}},
                "labels": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string"}},
                "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}
            }}}}),
        );
        let bad = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {
            "size": 0, "name": "AB", "color": "pink", "ratio": 1.1, "when": "yesterday", "port": true,
            "tags": ["a", "b", "a"], "ports": [{"name": "x", "port": "80"}, {"name": "x", "port": 81}],
            "labels": {"a": "1", "b": 2}, "template": {"kind": "Pod"}}});
        assert_eq!(
            messages(&rt, bad, None),
            [
                "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1",
                "spec.name: Invalid value: \"AB\": spec.name in body should be at least 3 chars long",
                "spec.name: Invalid value: \"AB\": spec.name in body should match '^[a-z]+$'",
                "spec.color: Unsupported value: \"pink\": supported values: \"red\", \"green\", \"blue\"",
                "spec.ratio: Invalid value: 1.1: spec.ratio in body should be less than 1",
                "spec.ratio: Invalid value: 1.1: spec.ratio in body should be a multiple of 0.25",
                "spec.when: Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\"",
                "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"",
                "spec.tags: Too many: 3: must have at most 2 items",
                "spec.tags[2]: Duplicate value: \"a\"",
                "spec.ports[1]: Duplicate value: {\"name\":\"x\"}",
                "spec.ports[0].port: Invalid value: \"string\": spec.ports[0].port in body must be of type integer: \"string\"",
                "spec.labels: Too many: 2: must have at most 1 items",
                "spec.labels.b: Invalid value: \"integer\": spec.labels.b in body must be of type string: \"integer\"",
                "spec.template.apiVersion: Required value: must not be empty",
            ]
        );
        let missing = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"name": "toolong"}});
        assert_eq!(
            messages(&rt, missing, None),
            ["spec.size: Required value", "spec.name: Too long: may not be more than 5 bytes"]
        );
        let good = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {
            "size": 3, "name": "abc", "color": "red", "ratio": 0.5, "when": "2026-12-01T10:00:00.5+01:00", "port": "http",
            "tags": ["a"], "ports": [{"name": "x", "port": 80}], "labels": {"a": "1"},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}}});
        assert_eq!(messages(&rt, good, None), Vec::<String>::new());
    }

    #[test]
    fn unchanged_values_are_not_validated_again() {
        let rt = widgets(json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["size"],
            "properties": {"size": {"type": "integer", "minimum": 1}, "name": {"type": "string"}}}}}));
        let old = json!({"spec": {"size": 0, "name": "a"}});
        assert!(messages(&rt, json!({"spec": {"size": 0, "name": "b"}}), Some(old.clone())).is_empty());
        assert_eq!(
            messages(&rt, json!({"spec": {"size": -1, "name": "b"}}), Some(old)),
            ["spec.size: Invalid value: -1: spec.size in body should be greater than or equal to 1"]
        );
        let without = json!({"spec": {"name": "a"}});
        assert!(messages(&rt, json!({"spec": {"name": "b"}}), Some(without)).is_empty());
    }

    #[test]
    fn formats() {
        use super::is_format;
        for (format, good, bad) in [
            ("date-time", "2026-01-02T03:04:05Z", "2026-01-02"),
            ("date", "2026-01-02", "2026-13-02"),
            ("byte", "aGVsbG8=", "hello!"),
            ("uuid", "123e4567-e89b-12d3-a456-426614174000", "123e4567"),
            ("ipv4", "10.0.0.1", "10.0.0.256"),
            ("cidr", "10.0.0.0/8", "10.0.0.0/33"),
            ("duration", "1h30m", "soon"),
            ("hostname", "a.example.com", "-a"),
        ] {
            assert!(is_format(format, good), "{format} {good}");
            assert!(!is_format(format, bad), "{format} {bad}");
        }
    }
}
