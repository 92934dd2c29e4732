//! The same edits through the lossless YAML editors of crates.io, to choose one (issue 14):
//! `yaml-edit` (a rowan concrete syntax tree) and `nondestructive`. Each gets one document's text,
//! and is driven the way `document::rewrite` drives its own editor: the old and new values are
//! walked together, and each changed scalar is set, each added key inserted, each removed one
//! removed, through the library's API. The result must read back (with the reader, `parse_yaml`)
//! as the new value, and is measured as minimal or not like `document::rewrite`'s own.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;

use serde_json::{Map, Value};

/// An editor under comparison: the document's text, its value and the new value → the new text,
/// `None` when it cannot (an error, or a panic).
pub type Editor = fn(&str, &Value, &Value) -> Option<String>;

/// The editors compared, by name; and the baseline: the document serialized anew, as every write
/// did before issue 14.
pub const EDITORS: [(&str, Editor); 3] = [
    ("yaml-edit 0.3", yaml_edit),
    ("nondestructive 0.0.29", nondestructive),
    ("baseline: serialized anew (to_yaml)", |_, _, new| Some(gitbacked_core::document::to_yaml(new))),
];

/// Runs an editor, a panic counting as a failure.
pub fn run(editor: Editor, text: &str, old: &Value, new: &Value) -> Option<String> {
    catch_unwind(AssertUnwindSafe(|| editor(text, old, new))).ok().flatten()
}

fn yaml_edit(text: &str, old: &Value, new: &Value) -> Option<String> {
    let doc = yaml_edit::Document::from_str(text).ok()?;
    let map = doc.as_mapping()?;
    ye_map(&map, old.as_object()?, new.as_object()?)?;
    Some(doc.to_string())
}

fn ye_value(v: &Value) -> yaml_edit::YamlValue {
    use yaml_edit::YamlValue;
    match v {
        Value::Null => YamlValue::scalar(yaml_edit::ScalarValue::null()),
        Value::Bool(b) => YamlValue::scalar(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => YamlValue::scalar(i),
            None => YamlValue::scalar(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => YamlValue::scalar(s.as_str()),
        Value::Array(items) => YamlValue::Sequence(items.iter().map(ye_value).collect()),
        Value::Object(map) => YamlValue::Mapping(map.iter().map(|(k, v)| (k.clone(), ye_value(v))).collect()),
    }
}

fn ye_map(map: &yaml_edit::Mapping, old: &Map<String, Value>, new: &Map<String, Value>) -> Option<()> {
    for (k, o) in old {
        match new.get(k) {
            None => {
                map.remove(k.as_str())?;
            }
            Some(n) if n == o => {}
            Some(n) => match (o, n) {
                (Value::Object(o), Value::Object(n)) if !n.is_empty() => ye_map(&map.get_mapping(k.as_str())?, o, n)?,
                (Value::Array(o), Value::Array(n)) if !n.is_empty() => ye_seq(&map.get_sequence(k.as_str())?, o, n)?,
                _ => map.set(k.as_str(), ye_value(n)),
            },
        }
    }
    for (k, n) in new.iter().filter(|(k, _)| !old.contains_key(*k)) {
        map.set(k.as_str(), ye_value(n));
    }
    Some(())
}

fn ye_seq(seq: &yaml_edit::Sequence, old: &[Value], new: &[Value]) -> Option<()> {
    let (prefix, paired, removed, added) = align(old, new);
    for i in prefix..prefix + paired {
        match (&old[i], &new[i]) {
            (o, n) if o == n => {}
            (Value::Object(o), Value::Object(n)) if !n.is_empty() => {
                ye_map(seq.get(i)?.as_mapping()?, o, n)?;
            }
            (_, n) => {
                seq.set(i, ye_value(n));
            }
        }
    }
    for _ in 0..removed {
        seq.remove(prefix + paired)?;
    }
    for (j, n) in new[prefix + paired..prefix + paired + added].iter().enumerate() {
        seq.insert(prefix + paired + j, ye_value(n));
    }
    Some(())
}

/// Common prefix, then pairs, then removed and added items (as `document::rewrite` aligns them).
fn align(old: &[Value], new: &[Value]) -> (usize, usize, usize, usize) {
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let room = old.len().min(new.len()) - prefix;
    let suffix = old.iter().rev().zip(new.iter().rev()).take(room).take_while(|(a, b)| a == b).count();
    let (old_mid, new_mid) = (old.len() - suffix - prefix, new.len() - suffix - prefix);
    let paired = old_mid.min(new_mid);
    (prefix, paired, old_mid - paired, new_mid - paired)
}

fn nondestructive(text: &str, old: &Value, new: &Value) -> Option<String> {
    let mut doc = nondestructive::yaml::from_slice(text).ok()?;
    let map = doc.as_mut().into_mapping_mut()?;
    nd_map(map, old.as_object()?, new.as_object()?)?;
    Some(doc.to_string())
}

fn nd_set(mut value: nondestructive::yaml::ValueMut<'_>, v: &Value) -> Option<()> {
    use nondestructive::yaml::{Null, Separator};
    match v {
        Value::Null => value.set_null(Null::Keyword),
        Value::Bool(b) => value.set_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => value.set_i64(i),
            None => value.set_f64(n.as_f64()?),
        },
        Value::String(s) => value.set_string(s.as_str()),
        Value::Array(items) => {
            let mut seq = value.make_sequence();
            for item in items {
                nd_set(seq.push(Separator::Auto), item)?;
            }
        }
        Value::Object(map) => {
            let mut m = value.make_mapping();
            for (k, item) in map {
                nd_set(m.insert(k.as_str(), Separator::Auto), item)?;
            }
        }
    }
    Some(())
}

fn nd_map(
    mut map: nondestructive::yaml::MappingMut<'_>,
    old: &Map<String, Value>,
    new: &Map<String, Value>,
) -> Option<()> {
    use nondestructive::yaml::Separator;
    for (k, o) in old {
        match new.get(k) {
            None => {
                map.remove(k.as_str()).then_some(())?;
            }
            Some(n) if n == o => {}
            Some(n) => {
                let value = map.get_mut(k.as_str())?;
                match (o, n) {
                    (Value::Object(o), Value::Object(n)) if !n.is_empty() => nd_map(value.into_mapping_mut()?, o, n)?,
                    (Value::Array(o), Value::Array(n)) if !n.is_empty() => nd_seq(value.into_sequence_mut()?, o, n)?,
                    _ => nd_set(value, n)?,
                }
            }
        }
    }
    for (k, n) in new.iter().filter(|(k, _)| !old.contains_key(*k)) {
        nd_set(map.insert(k.as_str(), Separator::Auto), n)?;
    }
    Some(())
}

fn nd_seq(mut seq: nondestructive::yaml::SequenceMut<'_>, old: &[Value], new: &[Value]) -> Option<()> {
    use nondestructive::yaml::Separator;
    let (prefix, paired, removed, added) = align(old, new);
    for i in prefix..prefix + paired {
        match (&old[i], &new[i]) {
            (o, n) if o == n => {}
            (Value::Object(o), Value::Object(n)) if !n.is_empty() => {
                nd_map(seq.get_mut(i)?.into_mapping_mut()?, o, n)?;
            }
            (_, n) => nd_set(seq.get_mut(i)?, n)?,
        }
    }
    for _ in 0..removed {
        seq.remove(prefix + paired).then_some(())?;
    }
    for (j, n) in new[prefix + paired..prefix + paired + added].iter().enumerate() {
        nd_set(seq.insert(prefix + paired + j, Separator::Auto), n)?;
    }
    Some(())
}
