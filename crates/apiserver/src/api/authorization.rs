//! The reviews kube-apiserver answers without storing anything, besides TokenReview (see
//! `authentication`): SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectAccessReview,
//! SelfSubjectRulesReview and SelfSubjectReview, which `kubectl auth can-i` and `kubectl auth
//! whoami` send.
//!
//! gitbacked authorizes every request it authenticates (with `--token-file`, the one bearer token;
//! without it, loopback only), as a cluster whose only user is its administrator: every access is
//! allowed, every rule granted, and the user is `kubernetes-admin` in `system:masters`.

use serde_json::{Value, json};

use super::{Api, Reply};
use gitbacked_core::status::{ApiResult, StatusError};

/// Why every access is allowed, as a review's `reason` says it.
const REASON: &str = "gitbacked authorizes every authenticated request";

/// Whether objects of the kind are reviews: answered, never stored.
pub(super) fn is_review(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        (
            "authorization.k8s.io",
            "SubjectAccessReview" | "LocalSubjectAccessReview" | "SelfSubjectAccessReview" | "SelfSubjectRulesReview"
        ) | ("authentication.k8s.io", "SelfSubjectReview")
    )
}

impl Api {
    /// Answers a review (201, the review with its `status`), as kube-apiserver does; stores nothing.
    pub(super) fn review(&self, kind: &str, api_version: &str, review: Value) -> ApiResult<Reply> {
        let spec = review.get("spec").cloned().unwrap_or_else(|| json!({}));
        let status = match kind {
            "SelfSubjectRulesReview" => {
                if spec.get("namespace").and_then(Value::as_str).is_none_or(str::is_empty) {
                    return Err(StatusError::invalid(
                        kind,
                        "authorization.k8s.io",
                        "",
                        vec![("spec.namespace".into(), "Required value".into())],
                    ));
                }
                json!({"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}], "incomplete": false})
            }
            "SelfSubjectReview" => json!({"userInfo": {"username": "kubernetes-admin",
                "groups": ["system:masters", "system:authenticated"]}}),
            _ => {
                let attributes = spec.get("resourceAttributes").or_else(|| spec.get("nonResourceAttributes"));
                if attributes.is_none() {
                    return Err(StatusError::invalid(
                        kind,
                        "authorization.k8s.io",
                        "",
                        vec![(
                            "spec.resourceAttributes".into(),
                            "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified".into(),
                        )],
                    ));
                }
                json!({"allowed": true, "reason": REASON})
            }
        };
        let mut metadata = review.get("metadata").cloned().unwrap_or_else(|| json!({}));
        if let Some(meta) = metadata.as_object_mut() {
            meta.insert("creationTimestamp".into(), Value::Null);
        }
        let mut answer = json!({"kind": kind, "apiVersion": api_version, "metadata": metadata, "status": status});
        if kind != "SelfSubjectReview" {
            answer["spec"] = spec;
        }
        Ok(Reply::json(201, &answer))
    }
}
