//! JSON patch (RFC 6902) and JSON merge patch (RFC 7386).

use serde_json::Value;

use gitbacked_core::status::{ApiResult, Reason, StatusError};

/// Applies a JSON patch. A `test` of a missing path against `null` succeeds, as in kube-apiserver
/// (kube's finalizer helper relies on it); json-patch rejects it, so such tests are checked here.
pub fn json_patch(target: &Value, patch: &Value) -> ApiResult<Value> {
    let ops =
        patch.as_array().ok_or_else(|| StatusError::bad_request("a JSON patch must be an array of operations"))?;
    let mut kept = Vec::with_capacity(ops.len());
    let mut doc = target.clone();
    for op in ops {
        let is_null_test =
            op.get("op").and_then(Value::as_str) == Some("test") && op.get("value") == Some(&Value::Null);
        let path = op.get("path").and_then(Value::as_str).unwrap_or_default();
        if is_null_test && pointer_or_null(&doc, path).is_none() {
            // Applied in order: earlier operations may have created the path.
            apply_ops(&mut doc, std::mem::take(&mut kept))?;
            if pointer_or_null(&doc, path).is_some() {
                return Err(invalid(&format!("test operation failed: {path} is not null")));
            }
            continue;
        }
        kept.push(op.clone());
    }
    apply_ops(&mut doc, kept)?;
    Ok(doc)
}

/// The value at `path`, `None` when it is missing or null.
fn pointer_or_null<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    doc.pointer(path).filter(|v| !v.is_null())
}

fn apply_ops(doc: &mut Value, ops: Vec<Value>) -> ApiResult<()> {
    if ops.is_empty() {
        return Ok(());
    }
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops))
        .map_err(|e| StatusError::bad_request(format!("invalid JSON patch: {e}")))?;
    json_patch::patch(doc, &patch).map_err(|e| invalid(&e.to_string()))
}

fn invalid(message: &str) -> StatusError {
    StatusError::new(
        Reason::Invalid,
        format!("the server rejected our request due to an error in our request: {message}"),
    )
}

/// Applies a JSON merge patch.
pub fn merge_patch(target: &Value, patch: &Value) -> ApiResult<Value> {
    if !patch.is_object() {
        return Err(StatusError::bad_request("a merge patch must be a JSON object"));
    }
    let mut doc = target.clone();
    json_patch::merge(&mut doc, patch);
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finalizer_helper_patches() {
        let obj = json!({"metadata": {"name": "a"}});
        let add = json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                         {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}]);
        let with = json_patch(&obj, &add).unwrap();
        assert_eq!(with["metadata"]["finalizers"], json!(["f"]));
        // Once present, the same test fails: the helper then knows someone else added finalizers.
        assert_eq!(json_patch(&with, &add).unwrap_err().code, 422);
        let remove = json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "f"},
                            {"op": "remove", "path": "/metadata/finalizers/0"}]);
        assert_eq!(json_patch(&with, &remove).unwrap()["metadata"]["finalizers"], json!([]));
        assert_eq!(json_patch(&obj, &json!({"op": "x"})).unwrap_err().code, 400);
    }

    #[test]
    fn merge_patch_removes_nulls() {
        let obj = json!({"a": 1, "b": {"c": 2, "d": 3}});
        assert_eq!(
            merge_patch(&obj, &json!({"b": {"c": null}, "e": 4})).unwrap(),
            json!({"a": 1, "b": {"d": 3}, "e": 4})
        );
        assert_eq!(merge_patch(&obj, &json!([1])).unwrap_err().reason, Reason::BadRequest);
    }
}
