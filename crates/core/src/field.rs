//! Field errors as kube-apiserver words them (`k8s.io/apimachinery/pkg/util/validation/field`):
//! `spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1`.
//! A list of them becomes one 422 `Invalid` [`StatusError`] whose `details.causes` carry each.

use std::fmt;

use serde_json::{Value, json};

use crate::status::{Reason, StatusError};

/// What is wrong with a field; each renders as the Kubernetes error type does.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldErrorType {
    /// `Required value`.
    Required,
    /// `Invalid value: <value>`.
    Invalid(Value),
    /// `Invalid value: <value>`, for a value of the wrong JSON type.
    TypeInvalid(Value),
    /// `Unsupported value: <value>: supported values: "a", "b"`.
    NotSupported(Value, Vec<String>),
    /// `Duplicate value: <value>`.
    Duplicate(Value),
    /// `Too long` (the value is not repeated).
    TooLong,
    /// `Too many: <count>`.
    TooMany(usize),
    /// `Forbidden`.
    Forbidden,
}

/// One invalid field: where (`spec.ports[0].port`), what, and the detail.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// The field's path as Kubernetes prints it.
    pub field: String,
    /// The kind of error, with the offending value where Kubernetes prints it.
    pub kind: FieldErrorType,
    /// The explanation after the value.
    pub detail: String,
}

impl FieldError {
    /// `Required value`, with an optional detail.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError { field: field.into(), kind: FieldErrorType::Required, detail: detail.into() }
    }

    /// `Invalid value: <value>: <detail>`.
    pub fn invalid(field: impl Into<String>, value: Value, detail: impl Into<String>) -> Self {
        FieldError { field: field.into(), kind: FieldErrorType::Invalid(value), detail: detail.into() }
    }

    /// `Unsupported value: <value>: supported values: …`.
    pub fn not_supported(field: impl Into<String>, value: Value, supported: Vec<String>) -> Self {
        let detail = match supported.is_empty() {
            true => String::new(),
            false => {
                let quoted: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
                format!("supported values: {}", quoted.join(", "))
            }
        };
        FieldError { field: field.into(), kind: FieldErrorType::NotSupported(value, supported), detail }
    }

    /// `Forbidden: <detail>`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError { field: field.into(), kind: FieldErrorType::Forbidden, detail: detail.into() }
    }

    /// The cause type of a `Status` (`FieldValueInvalid`).
    pub fn reason(&self) -> &'static str {
        match self.kind {
            FieldErrorType::Required => "FieldValueRequired",
            FieldErrorType::Invalid(_) => "FieldValueInvalid",
            FieldErrorType::TypeInvalid(_) => "FieldValueTypeInvalid",
            FieldErrorType::NotSupported(..) => "FieldValueNotSupported",
            FieldErrorType::Duplicate(_) => "FieldValueDuplicate",
            FieldErrorType::TooLong => "FieldValueTooLong",
            FieldErrorType::TooMany(_) => "FieldValueTooMany",
            FieldErrorType::Forbidden => "FieldValueForbidden",
        }
    }

    /// The message without the field: `Invalid value: 0: spec.size in body should be …`.
    pub fn body(&self) -> String {
        let (label, value) = match &self.kind {
            FieldErrorType::Required => ("Required value", None),
            FieldErrorType::Forbidden => ("Forbidden", None),
            FieldErrorType::TooLong => ("Too long", None),
            FieldErrorType::Invalid(v) | FieldErrorType::TypeInvalid(v) => ("Invalid value", Some(render(v))),
            FieldErrorType::NotSupported(v, _) => ("Unsupported value", Some(render(v))),
            FieldErrorType::Duplicate(v) => ("Duplicate value", Some(render(v))),
            FieldErrorType::TooMany(n) => ("Too many", Some(n.to_string())),
        };
        let mut body = match value {
            Some(value) => format!("{label}: {value}"),
            None => label.to_string(),
        };
        if !self.detail.is_empty() {
            body.push_str(": ");
            body.push_str(&self.detail);
        }
        body
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// A value as Go's field errors print it: strings quoted, numbers and booleans bare, `null`.
fn render(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

impl StatusError {
    /// 422 Invalid for `errors` of the object `kind` `name` (`Foo.example.com "x" is invalid: …`),
    /// each error a cause. Identical messages are reported once, as Kubernetes aggregates them.
    pub fn invalid_fields(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> Self {
        let mut seen = std::collections::HashSet::new();
        let errors: Vec<&FieldError> = errors.iter().filter(|e| seen.insert(e.to_string())).collect();
        let summary: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        let summary = match summary.len() {
            1 => summary[0].clone(),
            _ => format!("[{}]", summary.join(", ")),
        };
        let qualified = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
        let causes: Vec<Value> =
            errors.iter().map(|e| json!({"reason": e.reason(), "message": e.body(), "field": e.field})).collect();
        StatusError {
            details: Some(json!({"name": name, "group": group, "kind": kind, "causes": causes})),
            ..StatusError::new(Reason::Invalid, format!("{qualified} \"{name}\" is invalid: {summary}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_kubernetes_prints_them() {
        let e = FieldError::invalid("spec.size", json!(0), "spec.size in body should be greater than or equal to 1");
        assert_eq!(
            e.to_string(),
            "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"
        );
        let e = FieldError::not_supported("spec.color", json!("pink"), vec!["red".into(), "green".into()]);
        assert_eq!(e.to_string(), r#"spec.color: Unsupported value: "pink": supported values: "red", "green""#);
        assert_eq!(FieldError::required("spec.size", "").to_string(), "spec.size: Required value");
        let status = StatusError::invalid_fields(
            "Foo",
            "example.com",
            "a",
            &[FieldError::required("spec.size", ""), FieldError::required("spec.size", "")],
        );
        assert_eq!(status.message, "Foo.example.com \"a\" is invalid: spec.size: Required value");
        assert_eq!(status.details.unwrap()["causes"][0]["reason"], "FieldValueRequired");
    }
}
