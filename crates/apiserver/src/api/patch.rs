//! JSON patch (RFC 6902) and JSON merge patch (RFC 7386).

use json_patch::PatchOperation;
use serde_json::Value;

use gitbacked_core::status::{ApiResult, Reason, StatusError};

/// The most operations a JSON patch may hold, as in kube-apiserver.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The most bytes a JSON patch's `copy` operations may copy in all, as kube-apiserver bounds them:
/// 30 copies of a document into itself would otherwise grow it to 2³⁰ times its size.
pub const MAX_JSON_PATCH_COPY_BYTES: usize = 3 * 1024 * 1024;

/// Applies a JSON patch, its operations in order. A `test` of a missing path against `null`
/// succeeds, as in kube-apiserver (kube's finalizer helper relies on it; json-patch refuses it).
/// The work is bounded: at most [`MAX_JSON_PATCH_OPERATIONS`] (413 beyond), and copies of at most
/// [`MAX_JSON_PATCH_COPY_BYTES`] in all (422 beyond, before anything is copied).
pub fn json_patch(target: &Value, patch: &Value) -> ApiResult<Value> {
    let ops =
        patch.as_array().ok_or_else(|| StatusError::bad_request("a JSON patch must be an array of operations"))?;
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(StatusError::too_large(format!(
            "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
            ops.len()
        )));
    }
    let ops: Vec<PatchOperation> = serde_json::from_value(patch.clone())
        .map_err(|e| StatusError::bad_request(format!("invalid JSON patch: {e}")))?;
    let mut doc = target.clone();
    let mut copied = 0usize;
    for op in &ops {
        match op {
            PatchOperation::Test(test) if test.value.is_null() => {
                if pointer_or_null(&doc, test.path.as_str()).is_some() {
                    return Err(invalid(&format!("test operation failed: {} is not null", test.path.as_str())));
                }
                continue;
            }
            PatchOperation::Copy(copy) => {
                let left = MAX_JSON_PATCH_COPY_BYTES - copied;
                let size = doc.pointer(copy.from.as_str()).map_or(Some(0), |v| json_size(v, left));
                copied += size.ok_or_else(|| {
                    invalid(&format!(
                        "the copy operations of the patch copy more than {MAX_JSON_PATCH_COPY_BYTES} bytes"
                    ))
                })?;
            }
            _ => {}
        }
        json_patch::patch_unsafe(&mut doc, std::slice::from_ref(op)).map_err(|e| invalid(&e.to_string()))?;
    }
    Ok(doc)
}

/// The serialized size of `value`, `None` when it is over `limit` (counted without allocating).
fn json_size(value: &Value, limit: usize) -> Option<usize> {
    struct Counter {
        written: usize,
        limit: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.written += buf.len();
            if self.written > self.limit { Err(std::io::ErrorKind::FileTooLarge.into()) } else { Ok(buf.len()) }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { written: 0, limit };
    serde_json::to_writer(&mut counter, value).ok().map(|()| counter.written)
}

/// The value at `path`, `None` when it is missing or null.
fn pointer_or_null<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    doc.pointer(path).filter(|v| !v.is_null())
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
    fn copies_that_would_grow_the_document_without_bound_are_refused() {
        let obj = json!({"data": {"k": "x".repeat(1000)}});
        let bomb: Vec<Value> =
            (0..30).map(|i| json!({"op": "copy", "from": "/data", "path": format!("/data/x{i}")})).collect();
        let e = json_patch(&obj, &Value::Array(bomb)).unwrap_err();
        assert_eq!((e.code, e.reason), (422, Reason::Invalid), "{e}");
        // A few copies are fine.
        let few: Vec<Value> =
            (0..3).map(|i| json!({"op": "copy", "from": "/data/k", "path": format!("/data/c{i}")})).collect();
        assert_eq!(json_patch(&obj, &Value::Array(few)).unwrap()["data"]["c2"], obj["data"]["k"]);
        let many = Value::Array(vec![json!({"op": "test", "path": "/data/k", "value": "x"}); 10_001]);
        assert_eq!(json_patch(&obj, &many).unwrap_err().code, 413);
    }

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
