//! Kubernetes `Status` errors: every failure the API answers carries a code **and** a reason,
//! because clients (kube's `is_not_found()`, `is_conflict()`) read the reason.

use serde_json::{Value, json};

/// `StatusReason`: why a call failed, in the words clients match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// 400: the request is malformed.
    BadRequest,
    /// 401: no or a wrong bearer token.
    Unauthorized,
    /// 403: the request is understood and refused.
    Forbidden,
    /// 404: the object or the path does not exist.
    NotFound,
    /// 405: the resource does not support the verb.
    MethodNotAllowed,
    /// 409: an object of that name exists already.
    AlreadyExists,
    /// 409: the object changed since the resourceVersion sent, or fields have other managers.
    Conflict,
    /// 410: the resourceVersion or continue token is older than what is kept.
    Expired,
    /// 413: the request is larger than the server accepts.
    RequestEntityTooLarge,
    /// 415: the body's content type is not understood.
    UnsupportedMediaType,
    /// 422: the object fails validation.
    Invalid,
    /// 429: the request cannot be carried out now (an eviction a disruption budget forbids).
    TooManyRequests,
    /// 500: the server failed.
    InternalError,
    /// 503: the server cannot take the request now (the remote did not take the write in time).
    ServiceUnavailable,
    /// 504: the request did not complete in time.
    Timeout,
}

impl Reason {
    /// The reason as it is written in a `Status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::Unauthorized => "Unauthorized",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Expired => "Expired",
            Reason::RequestEntityTooLarge => "RequestEntityTooLarge",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::Invalid => "Invalid",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::InternalError => "InternalError",
            Reason::ServiceUnavailable => "ServiceUnavailable",
            Reason::Timeout => "Timeout",
        }
    }

    /// The HTTP status code kube-apiserver answers with this reason.
    pub fn code(self) -> u16 {
        match self {
            Reason::BadRequest => 400,
            Reason::Unauthorized => 401,
            Reason::Forbidden => 403,
            Reason::NotFound => 404,
            Reason::MethodNotAllowed => 405,
            Reason::AlreadyExists | Reason::Conflict => 409,
            Reason::Expired => 410,
            Reason::RequestEntityTooLarge => 413,
            Reason::UnsupportedMediaType => 415,
            Reason::Invalid => 422,
            Reason::TooManyRequests => 429,
            Reason::InternalError => 500,
            Reason::ServiceUnavailable => 503,
            Reason::Timeout => 504,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed API call, rendered as a `meta/v1 Status` object.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusError {
    /// HTTP status code.
    pub code: u16,
    /// Why the call failed.
    pub reason: Reason,
    /// Human-readable explanation.
    pub message: String,
    /// `details` of the Status (name, group, kind, causes).
    pub details: Option<Value>,
}

/// What an API call returns on failure.
pub type ApiResult<T> = Result<T, StatusError>;

/// The object an error is about: used in messages and `details`.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// API group of the resource.
    pub group: &'a str,
    /// Resource (plural), as the apiserver names it in errors.
    pub resource: &'a str,
    /// Object name.
    pub name: &'a str,
}

impl Subject<'_> {
    fn qualified(&self) -> String {
        if self.group.is_empty() { self.resource.to_string() } else { format!("{}.{}", self.resource, self.group) }
    }

    fn details(&self) -> Value {
        json!({"name": self.name, "group": self.group, "kind": self.resource})
    }
}

impl StatusError {
    /// An error with `reason`, its code, and a message.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        StatusError { code: reason.code(), reason, message: message.into(), details: None }
    }

    /// 404 NotFound for an object.
    pub fn not_found(s: Subject) -> Self {
        StatusError {
            details: Some(s.details()),
            ..Self::new(Reason::NotFound, format!("{} \"{}\" not found", s.qualified(), s.name))
        }
    }

    /// 404 NotFound for a path the API does not serve.
    pub fn no_route(path: &str) -> Self {
        Self::new(Reason::NotFound, format!("the server could not find the requested resource ({path})"))
    }

    /// 409 AlreadyExists.
    pub fn already_exists(s: Subject) -> Self {
        StatusError {
            details: Some(s.details()),
            ..Self::new(Reason::AlreadyExists, format!("{} \"{}\" already exists", s.qualified(), s.name))
        }
    }

    /// 409 Conflict: the object changed since the resourceVersion the client sent.
    pub fn conflict(s: Subject, why: &str) -> Self {
        StatusError {
            details: Some(s.details()),
            ..Self::new(
                Reason::Conflict,
                format!("Operation cannot be fulfilled on {} \"{}\": {why}", s.qualified(), s.name),
            )
        }
    }

    /// 422 Invalid with one cause per offending field.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<(String, String)>) -> Self {
        let summary: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        let causes: Vec<Value> = causes
            .into_iter()
            .map(|(field, message)| json!({"reason": "FieldValueInvalid", "message": message, "field": field}))
            .collect();
        StatusError {
            details: Some(json!({"name": name, "group": group, "kind": kind, "causes": causes})),
            ..Self::new(Reason::Invalid, format!("{kind} \"{name}\" is invalid: {}", summary.join(", ")))
        }
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(Reason::Forbidden, message)
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Reason::BadRequest, message)
    }

    /// 410 Gone (expired resourceVersion or continue token).
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(Reason::Expired, message)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(Reason::MethodNotAllowed, message)
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(Reason::UnsupportedMediaType, message)
    }

    /// 413 RequestEntityTooLarge.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(Reason::RequestEntityTooLarge, message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(Reason::Unauthorized, "Unauthorized")
    }

    /// 503 ServiceUnavailable: the remote could not take the write in time.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(Reason::ServiceUnavailable, message)
    }

    /// 504 Timeout: a resourceVersion newer than the store's did not arrive in time.
    pub fn resource_version_too_large(wanted: u64, current: u64) -> Self {
        StatusError {
            details: Some(json!({
                "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                "retryAfterSeconds": 1,
            })),
            ..Self::new(Reason::Timeout, format!("Too large resource version: {wanted}, current: {current}"))
        }
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Reason::InternalError, message)
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        // Field order and omitted empty fields as kube-apiserver serializes a Status: clients that
        // compare error bodies (the Python client's tests do) see the same bytes.
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason.as_str(),
        });
        if let Some(mut details) = self.details.clone() {
            if let Some(map) = details.as_object_mut() {
                map.retain(|_, v| v.as_str() != Some("") && !v.is_null());
            }
            status["details"] = details;
        }
        status["code"] = Value::from(self.code);
        status
    }
}

impl std::fmt::Display for StatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.reason, self.code, self.message)
    }
}

impl std::error::Error for StatusError {}
