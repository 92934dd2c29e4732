//! Between a Kubernetes protobuf message and the JSON kube-apiserver writes for the same Go value.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage, Value as Proto};
use serde_json::{Map, Number, Value};

use gitbacked_core::clock::rfc3339;
use gitbacked_core::status::{ApiResult, StatusError};

use super::{Facts, GO, invalid};

const QUANTITY: &str = "apimachinery.pkg.api.resource.Quantity";
const INT_OR_STRING: &str = "apimachinery.pkg.util.intstr.IntOrString";
const TIME: &str = "apimachinery.pkg.apis.meta.v1.Time";
const MICRO_TIME: &str = "apimachinery.pkg.apis.meta.v1.MicroTime";
const FIELDS_V1: &str = "apimachinery.pkg.apis.meta.v1.FieldsV1";
const RAW_EXTENSION: &str = "apimachinery.pkg.runtime.RawExtension";
/// The CRD schema's messages, in `apiextensions_apiserver.pkg.apis.apiextensions.{v1,v1beta1}`.
const APIEXTENSIONS: &str = "apiextensions_apiserver.pkg.apis.apiextensions.";

/// RFC 3339 covers years 0001 to 9999.
const TIME_RANGE: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

/// The special form a message has in JSON, by its full name.
enum Form {
    /// `resource.Quantity`: its canonical string.
    Quantity,
    /// `intstr.IntOrString`: a number or a string.
    IntOrString,
    /// `metav1.Time`: RFC 3339 in whole seconds; the zero time is omitted.
    Time,
    /// `metav1.MicroTime`: RFC 3339 with microseconds.
    MicroTime,
    /// `FieldsV1`, `RawExtension`, apiextensions `JSON`: JSON text in a bytes field.
    Embedded,
    /// apiextensions `JSONSchemaPropsOrArray`, `…OrBool`, `…OrStringArray`.
    SchemaOr(&'static str),
    /// A named slice (`type ExtraValue []string`): the list of its field 1.
    Slice,
    /// Every other message: an object of its fields.
    Object,
}

fn form(message: &MessageDescriptor) -> Form {
    match message.full_name() {
        QUANTITY => Form::Quantity,
        INT_OR_STRING => Form::IntOrString,
        TIME => Form::Time,
        MICRO_TIME => Form::MicroTime,
        FIELDS_V1 | RAW_EXTENSION => Form::Embedded,
        name if GO.slices.contains(&name) => Form::Slice,
        name => match name.strip_prefix(APIEXTENSIONS).and_then(|n| n.split_once('.')).map(|(_, n)| n) {
            Some("JSON") => Form::Embedded,
            Some("JSONSchemaPropsOrArray") => Form::SchemaOr("JSONSchemaPropsOrArray"),
            Some("JSONSchemaPropsOrBool") => Form::SchemaOr("JSONSchemaPropsOrBool"),
            Some("JSONSchemaPropsOrStringArray") => Form::SchemaOr("JSONSchemaPropsOrStringArray"),
            _ => Form::Object,
        },
    }
}

/// What the Go type says of a field, if anything.
fn facts(field: &FieldDescriptor) -> Option<&Facts> {
    GO.fields.get(&(field.parent_message().full_name(), field.number()))
}

/// The JSON name of a field.
fn json_name(field: &FieldDescriptor) -> &str {
    facts(field).and_then(|f| f.json).unwrap_or(field.name())
}

fn keeps_zero(field: &FieldDescriptor) -> bool {
    facts(field).is_some_and(|f| f.keep_zero)
}

fn inline(field: &FieldDescriptor) -> bool {
    facts(field).is_some_and(|f| f.inline)
}

fn get<'a>(message: &'a DynamicMessage, name: &str) -> Option<std::borrow::Cow<'a, Proto>> {
    message.descriptor().get_field_by_name(name).filter(|f| message.has_field(f)).map(|f| message.get_field(&f))
}

/// A message as JSON; `None` where Go writes nothing (the zero Time, an empty RawExtension).
pub(super) fn to_json(message: &DynamicMessage) -> ApiResult<Option<Value>> {
    let descriptor = message.descriptor();
    Ok(Some(match form(&descriptor) {
        Form::Quantity => {
            let text = get(message, "string").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            Value::String(if text.is_empty() { "0".into() } else { text })
        }
        Form::IntOrString => {
            let is_string = get(message, "type").and_then(|v| v.as_i64()).is_some_and(|t| t == 1);
            if is_string {
                get(message, "strVal").and_then(|v| v.as_str().map(Value::from)).unwrap_or_else(|| "".into())
            } else {
                get(message, "intVal").and_then(|v| v.as_i32()).unwrap_or_default().into()
            }
        }
        Form::Time | Form::MicroTime => {
            let seconds = get(message, "seconds").and_then(|v| v.as_i64());
            let nanos = get(message, "nanos").and_then(|v| v.as_i32()).unwrap_or_default();
            // Go writes the zero time as an empty message.
            let Some(seconds) = seconds.or((nanos != 0).then_some(0)) else { return Ok(None) };
            if !TIME_RANGE.contains(&seconds) || !(0..1_000_000_000).contains(&nanos) {
                return Err(invalid(format!("the time {seconds}s {nanos}ns is out of range")));
            }
            let text = rfc3339(seconds);
            match form(&descriptor) {
                Form::MicroTime => format!("{}.{:06}Z", text.trim_end_matches('Z'), nanos / 1000).into(),
                _ => text.into(),
            }
        }
        Form::Embedded => {
            let raw = message.fields().find_map(|(_, v)| v.as_bytes().cloned()).unwrap_or_default();
            if raw.is_empty() {
                return Ok(None);
            }
            serde_json::from_slice(&raw)
                .map_err(|e| invalid(format!("{}: the raw bytes are not JSON: {e}", descriptor.name())))?
        }
        Form::SchemaOr(union) => {
            let schema = get(message, "schema").map(|s| to_json_value(&s)).transpose()?.flatten();
            let list = message.fields().find(|(f, _)| f.is_list()).map(|(_, v)| to_json_value(v)).transpose()?;
            match (union, list.flatten(), schema) {
                (_, Some(list), _) => list,
                (_, None, Some(schema)) => schema,
                ("JSONSchemaPropsOrBool", None, None) => {
                    get(message, "allows").and_then(|v| v.as_bool()).unwrap_or_default().into()
                }
                _ => return Ok(None),
            }
        }
        Form::Slice => match message.get_field_by_number(1) {
            Some(items) => to_json_value(&items)?.unwrap_or_else(|| Value::Array(Vec::new())),
            None => Value::Array(Vec::new()),
        },
        Form::Object => {
            let mut object = Map::new();
            // In the order the .proto declares them, which is the Go struct's, as encoding/json
            // writes them; field numbers are not (later fields get higher numbers).
            let declared = descriptor.descriptor_proto().field.iter().filter_map(|f| f.number);
            for field in declared.filter_map(|n| descriptor.get_field(u32::try_from(n).ok()?)) {
                if !message.has_field(&field) {
                    continue;
                }
                let value = message.get_field(&field);
                // Go writes every non-pointer field; encoding/json then omits the zero scalars
                // tagged omitempty, which is every one but pointers and the untagged.
                let scalar = !field.is_list() && !field.is_map() && field.kind().as_message().is_none();
                if scalar && value.is_default(&field.kind()) && !keeps_zero(&field) {
                    continue;
                }
                match to_json_value(&value)? {
                    Some(Value::Object(fields)) if inline(&field) => object.extend(fields),
                    Some(json) => {
                        object.insert(json_name(&field).to_string(), json);
                    }
                    None => {}
                }
            }
            Value::Object(object)
        }
    }))
}

/// A field's value as JSON; `None` for what Go leaves out (an empty list or map).
fn to_json_value(value: &Proto) -> ApiResult<Option<Value>> {
    Ok(Some(match value {
        Proto::Bool(b) => (*b).into(),
        Proto::I32(n) => (*n).into(),
        Proto::I64(n) => (*n).into(),
        Proto::U32(n) => (*n).into(),
        Proto::U64(n) => (*n).into(),
        Proto::F32(n) => number(f64::from(*n))?,
        Proto::F64(n) => number(*n)?,
        Proto::String(s) => s.clone().into(),
        // Go's encoding/json writes []byte as base64.
        Proto::Bytes(b) => STANDARD.encode(b).into(),
        Proto::EnumNumber(n) => (*n).into(),
        Proto::Message(m) => return to_json(m),
        Proto::List(items) => {
            if items.is_empty() {
                return Ok(None);
            }
            let items: ApiResult<Vec<Value>> =
                items.iter().map(|i| to_json_value(i).map(|v| v.unwrap_or(Value::Null))).collect();
            Value::Array(items?)
        }
        Proto::Map(entries) => {
            if entries.is_empty() {
                return Ok(None);
            }
            // Go's encoding/json sorts map keys.
            let mut sorted = BTreeMap::new();
            for (key, value) in entries {
                sorted.insert(map_key(key), to_json_value(value)?.unwrap_or(Value::Null));
            }
            Value::Object(sorted.into_iter().collect())
        }
    }))
}

fn number(n: f64) -> ApiResult<Value> {
    Number::from_f64(n).map(Value::Number).ok_or_else(|| invalid(format!("{n} is not a JSON number")))
}

fn map_key(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

/// Why JSON does not fit a message.
fn unfit(path: &str, what: impl std::fmt::Display) -> StatusError {
    StatusError::internal(format!("the object cannot be encoded as protobuf: {path}: {what}"))
}

/// A message from its JSON form. JSON fields the message does not have are left out, as Go's
/// decoder leaves them.
pub(super) fn from_json(descriptor: &MessageDescriptor, value: &Value) -> ApiResult<DynamicMessage> {
    message_from_json(descriptor, value, "")
}

fn message_from_json(descriptor: &MessageDescriptor, value: &Value, path: &str) -> ApiResult<DynamicMessage> {
    let mut message = DynamicMessage::new(descriptor.clone());
    // try_: a descriptor that does not have what the JSON says is an error, not a panic.
    let mut set = |name: &str, v: Proto| message.try_set_field_by_name(name, v).map_err(|e| unfit(path, e));
    match (form(descriptor), value) {
        (Form::Quantity, Value::String(s)) => set("string", Proto::String(s.clone()))?,
        (Form::Quantity, Value::Number(n)) => set("string", Proto::String(n.to_string()))?,
        (Form::IntOrString, Value::Number(n)) => {
            let n = n.as_i64().and_then(|n| i32::try_from(n).ok()).ok_or_else(|| unfit(path, "not an int32"))?;
            set("type", Proto::I64(0))?;
            set("intVal", Proto::I32(n))?;
        }
        (Form::IntOrString, Value::String(s)) => {
            set("type", Proto::I64(1))?;
            set("strVal", Proto::String(s.clone()))?;
        }
        (Form::Time | Form::MicroTime, Value::String(s)) => {
            let time = chrono::DateTime::parse_from_rfc3339(s).map_err(|e| unfit(path, e))?;
            set("seconds", Proto::I64(time.timestamp()))?;
            let nanos = time.timestamp_subsec_nanos();
            if nanos != 0 {
                set("nanos", Proto::I32(i32::try_from(nanos).unwrap_or_default()))?;
            }
        }
        (Form::Embedded, value) => {
            let field = descriptor.fields().next().ok_or_else(|| unfit(path, "no raw field"))?;
            let raw = serde_json::to_vec(value).map_err(|e| unfit(path, e))?;
            message.try_set_field(&field, Proto::Bytes(raw.into())).map_err(|e| unfit(path, e))?;
        }
        (Form::SchemaOr(union), value) => {
            for field in descriptor.fields() {
                let fits = match (field.kind().as_message(), field.is_list(), value) {
                    (Some(_), false, Value::Object(_)) => true,
                    (_, true, Value::Array(_)) => true,
                    (None, false, Value::Bool(_)) => union == "JSONSchemaPropsOrBool",
                    _ => false,
                };
                if fits {
                    message.try_set_field(&field, field_from_json(&field, value, path)?).map_err(|e| unfit(path, e))?;
                    if union == "JSONSchemaPropsOrBool" && value.is_object() {
                        message.try_set_field_by_name("allows", Proto::Bool(true)).map_err(|e| unfit(path, e))?;
                    }
                    return Ok(message);
                }
            }
            return Err(unfit(path, format!("{value} is not a {union}")));
        }
        (Form::Slice, Value::Array(_)) => {
            let field = descriptor.get_field(1).ok_or_else(|| unfit(path, "no items field"))?;
            message.try_set_field(&field, field_from_json(&field, value, path)?).map_err(|e| unfit(path, e))?;
        }
        (Form::Object, Value::Object(object)) => {
            for field in descriptor.fields() {
                let name = json_name(&field);
                let value = if inline(&field) { Some(value) } else { object.get(name) };
                let Some(value) = value.filter(|v| !v.is_null()) else { continue };
                let path = format!("{path}.{name}");
                let value = field_from_json(&field, value, &path)?;
                message.try_set_field(&field, value).map_err(|e| unfit(&path, e))?;
            }
        }
        (_, value) => return Err(unfit(path, format!("{value} does not fit {}", descriptor.name()))),
    }
    Ok(message)
}

/// A field's value from JSON: a list, a map or one value.
fn field_from_json(field: &FieldDescriptor, value: &Value, path: &str) -> ApiResult<Proto> {
    if field.is_map() {
        let Value::Object(entries) = value else { return Err(unfit(path, "not an object")) };
        let entry = field.kind();
        let entry = entry.as_message().ok_or_else(|| unfit(path, "a map without entries"))?;
        let value_field = entry.map_entry_value_field();
        let mut map = HashMap::new();
        for (key, value) in entries {
            if value.is_null() {
                continue;
            }
            map.insert(
                MapKey::String(key.clone()),
                one_from_json(&value_field.kind(), value, &format!("{path}.{key}"))?,
            );
        }
        return Ok(Proto::Map(map));
    }
    if field.is_list() {
        let Value::Array(items) = value else { return Err(unfit(path, "not an array")) };
        let items: ApiResult<Vec<Proto>> = items
            .iter()
            .enumerate()
            .map(|(i, item)| one_from_json(&field.kind(), item, &format!("{path}[{i}]")))
            .collect();
        return Ok(Proto::List(items?));
    }
    one_from_json(&field.kind(), value, path)
}

fn one_from_json(kind: &Kind, value: &Value, path: &str) -> ApiResult<Proto> {
    let int = |v: &Value| v.as_i64().ok_or_else(|| unfit(path, format!("{v} is not an integer")));
    let uint = |v: &Value| v.as_u64().ok_or_else(|| unfit(path, format!("{v} is not an unsigned integer")));
    let narrow = |e| unfit(path, e);
    Ok(match (kind, value) {
        (Kind::Message(m), v) => Proto::Message(message_from_json(m, v, path)?),
        (Kind::String, Value::String(s)) => Proto::String(s.clone()),
        (Kind::Bytes, Value::String(s)) => Proto::Bytes(STANDARD.decode(s).map_err(|e| unfit(path, e))?.into()),
        (Kind::Bool, Value::Bool(b)) => Proto::Bool(*b),
        (Kind::Int32 | Kind::Sint32 | Kind::Sfixed32, v) => Proto::I32(i32::try_from(int(v)?).map_err(narrow)?),
        (Kind::Int64 | Kind::Sint64 | Kind::Sfixed64, v) => Proto::I64(int(v)?),
        (Kind::Uint32 | Kind::Fixed32, v) => Proto::U32(u32::try_from(uint(v)?).map_err(narrow)?),
        (Kind::Uint64 | Kind::Fixed64, v) => Proto::U64(uint(v)?),
        (Kind::Double, Value::Number(n)) => Proto::F64(n.as_f64().unwrap_or_default()),
        (Kind::Float, Value::Number(n)) => Proto::F32(n.as_f64().unwrap_or_default() as f32),
        (Kind::Enum(_), v) => Proto::EnumNumber(i32::try_from(int(v)?).map_err(narrow)?),
        (kind, v) => return Err(unfit(path, format!("{v} is not a {kind:?}"))),
    })
}
