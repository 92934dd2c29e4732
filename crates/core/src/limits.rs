//! The limits of what is served, in one place: what a request may carry, and the budget the
//! reader of the repository parses files with. A write is held to both: its body is checked on
//! arrival, and the file it stages is read back with the reader's budget before anything is
//! committed (so nothing is acknowledged that would not be served).

use serde_json::Value;

use crate::status::{Reason, StatusError};

/// The largest request body, as kube-apiserver's limit (3 MiB).
pub const MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024;

/// The deepest nesting of maps and lists in a document the reader parses (and a request may
/// carry): serde-saphyr's stack guard.
pub const MAX_DEPTH: usize = 64;

/// The most nodes (maps, lists and scalars) in one document the reader parses.
pub const MAX_NODES: usize = 250_000;

/// The budget the reader parses every YAML document with: [`MAX_DEPTH`], [`MAX_NODES`], and
/// serde-saphyr's defaults for the rest (aliases, anchors, scalar bytes).
pub fn yaml_budget() -> serde_saphyr::Budget {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_nodes = MAX_NODES;
    budget
}

/// Checks that a request's object fits the reader's budget: 422 when it nests deeper than
/// [`MAX_DEPTH`], 413 when it has more than [`MAX_NODES`] nodes. Counted without recursion.
pub fn check_object(value: &Value) -> Result<(), StatusError> {
    let (mut nodes, mut stack) = (0usize, vec![(value, 1usize)]);
    while let Some((v, depth)) = stack.pop() {
        nodes += 1;
        if nodes > MAX_NODES {
            return Err(StatusError::new(
                Reason::RequestEntityTooLarge,
                format!("the object has more than {MAX_NODES} values; at most {MAX_NODES} are stored"),
            ));
        }
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Object(m) => {
                // Keys are nodes of their own for the reader.
                nodes += m.len();
                Box::new(m.values())
            }
            Value::Array(a) => Box::new(a.iter()),
            _ => continue,
        };
        if depth > MAX_DEPTH {
            return Err(StatusError::new(
                Reason::Invalid,
                format!("the object nests deeper than {MAX_DEPTH} levels; at most {MAX_DEPTH} are stored"),
            ));
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn nested(depth: usize) -> Value {
        (1..depth).fold(json!({}), |inner, _| json!({ "a": inner }))
    }

    #[test]
    fn depth_and_nodes_are_bounded() {
        assert!(check_object(&nested(MAX_DEPTH)).is_ok());
        assert_eq!(check_object(&nested(MAX_DEPTH + 1)).unwrap_err().code, 422);
        let wide = Value::Object((0..MAX_NODES).map(|i| (i.to_string(), json!(1))).collect());
        assert_eq!(check_object(&wide).unwrap_err().code, 413);
    }

    #[test]
    fn the_reader_and_the_request_check_agree_on_nodes() {
        // 11 nodes besides the entries (two each): the root, 4 keys, 2 scalars, `metadata` with a
        // key and a scalar, and `data`.
        let mut fits = Vec::new();
        for entries in [(MAX_NODES - 11) / 2, (MAX_NODES - 11) / 2 + 1] {
            let data: serde_json::Map<String, Value> = (0..entries).map(|i| (format!("k{i}"), json!("v"))).collect();
            let value = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": data});
            let read = crate::document::parse_yaml(&crate::document::to_yaml(&value));
            assert_eq!(check_object(&value).is_ok(), read.is_ok(), "{entries} entries: {:?}", read.err());
            fits.push(read.is_ok());
        }
        assert_eq!(fits, [true, false], "the boundary is between the two");
    }

    #[test]
    fn the_reader_and_the_request_check_agree_on_depth() {
        let mut fits = Vec::new();
        for depth in [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1] {
            let value =
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "x": nested(depth - 1)});
            let read = crate::document::parse_yaml(&crate::document::to_yaml(&value));
            assert_eq!(check_object(&value).is_ok(), read.is_ok(), "depth {depth}: {read:?}");
            fits.push(read.is_ok());
        }
        assert_eq!(fits, [true, true, false]);
    }
}
