//! Kubernetes' protobuf serialization (`application/vnd.kubernetes.protobuf`) of every built-in
//! kind: request bodies are decoded into the JSON form kube-apiserver's JSON of the same object
//! has, and replies and watch events are encoded from it for clients that accept protobuf only.
//!
//! The format: the magic `k8s\0`, then a `runtime.Unknown` message (1 typeMeta {1 apiVersion,
//! 2 kind}, 2 raw, 3 contentEncoding, 4 contentType) whose `raw` is the object's own message.
//!
//! The messages are read and written by [`prost_reflect`] from `k8s.binpb`, the descriptor set of
//! the `generated.proto` files that the `k8s-pb` crate 0.9.0 (Kubernetes 1.35.0) is generated from,
//! compiled with `protoc -I protos --include_imports -o k8s.binpb` over `api`, `apimachinery`
//! (without `testapigroup`), `apiextensions-apiserver` and `kube-aggregator` of k8s-pb's
//! `k8s-pb-codegen/protos`. A kind's message is found through the built-in OpenAPI schema's name for
//! its group, version and kind (`io.k8s.api.apps.v1.Deployment` is `api.apps.v1.Deployment`), so
//! every built-in kind and its list is covered; custom resources have none.
//!
//! What the `.proto` files do not say, Kubernetes' Go types do: which zero values Go's
//! encoding/json writes (pointers and fields without `omitempty`), JSON names that are not the
//! protobuf names, embedded structs whose fields are inlined, and named slices. `fields.txt` holds
//! those facts, written by `scripts/gen-protobuf-fields.py` from the Go types of the same release.
//! Types with their own JSON form (Quantity, IntOrString, Time, MicroTime, RawExtension, FieldsV1,
//! the CRD schema's JSON and its `…Or…` unions) are mapped by hand in [`json`].
//!
//! Malformed input is a 400, never a panic; an unknown kind or a `contentEncoding` a 415.

mod json;
mod maps;

use std::collections::HashMap;
use std::sync::LazyLock;

use bytes::Bytes;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use serde_json::Value;

use gitbacked_core::status::{ApiResult, StatusError};

const MAGIC: &[u8] = b"k8s\0";
/// The media type of Kubernetes' protobuf serialization.
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
const UNKNOWN: &str = "apimachinery.pkg.runtime.Unknown";
const WATCH_EVENT: &str = "apimachinery.pkg.apis.meta.v1.WatchEvent";

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(&include_bytes!("k8s.binpb")[..]).expect("k8s.binpb is a valid descriptor set")
});

/// What `fields.txt` says of one field.
#[derive(Default)]
struct Facts {
    /// Go writes the zero value of this scalar in JSON.
    keep_zero: bool,
    /// The JSON name, where it is not the protobuf name.
    json: Option<&'static str>,
    /// An embedded struct: its fields are written into the enclosing JSON object.
    inline: bool,
}

/// `fields.txt` by (message, field number); named slices by message.
struct Go {
    fields: HashMap<(&'static str, u32), Facts>,
    slices: Vec<&'static str>,
}

static GO: LazyLock<Go> = LazyLock::new(|| {
    let mut go = Go { fields: HashMap::new(), slices: Vec::new() };
    for line in include_str!("fields.txt").lines().filter(|l| !l.starts_with('#')) {
        match line.split(' ').collect::<Vec<_>>().as_slice() {
            [message, "slice"] => go.slices.push(message),
            [message, number, fact] => {
                let number = number.parse().expect("fields.txt: a field number");
                let facts = go.fields.entry((message, number)).or_default();
                match (*fact, fact.strip_prefix("json=")) {
                    (_, Some(name)) => facts.json = Some(name),
                    ("inline", None) => facts.inline = true,
                    _ => facts.keep_zero = true,
                }
            }
            _ => panic!("fields.txt: unexpected line {line:?}"),
        }
    }
    go
});

/// The message of a built-in kind (or its list), if it has one.
fn message(group: &str, version: &str, kind: &str) -> Option<MessageDescriptor> {
    let openapi = gitbacked_core::schema::builtin_name(group, version, kind)?;
    POOL.get_message_by_name(&openapi.strip_prefix("io.k8s.")?.replace('-', "_"))
}

/// Whether objects of a group, version and kind have a protobuf form (built-in kinds do, custom
/// resources do not).
pub fn encodable(group: &str, version: &str, kind: &str) -> bool {
    message(group, version, kind).is_some()
}

fn invalid(what: impl std::fmt::Display) -> StatusError {
    StatusError::bad_request(format!("invalid protobuf body: {what}"))
}

fn split(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// Decodes a protobuf request body (magic, envelope, object) into the object's JSON form.
pub fn decode(bytes: &[u8]) -> ApiResult<Value> {
    let body = bytes.strip_prefix(MAGIC).ok_or_else(|| invalid("the body does not start with the magic \"k8s\\0\""))?;
    let unknown = POOL.get_message_by_name(UNKNOWN).expect("runtime.Unknown is in k8s.binpb");
    let envelope = DynamicMessage::decode(unknown, body).map_err(invalid)?;
    let text = |m: &DynamicMessage, name: &str| {
        m.get_field_by_name(name).and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    };
    let type_meta = envelope.get_field_by_name("typeMeta").and_then(|v| v.as_message().cloned());
    let api_version = type_meta.as_ref().map(|t| text(t, "apiVersion")).unwrap_or_default();
    let kind = type_meta.as_ref().map(|t| text(t, "kind")).unwrap_or_default();
    let encoding = text(&envelope, "contentEncoding");
    if !encoding.is_empty() {
        return Err(StatusError::unsupported_media_type(format!(
            "protobuf bodies with contentEncoding {encoding:?} are not supported"
        )));
    }
    let content_type = text(&envelope, "contentType");
    if !content_type.is_empty() && content_type != PROTOBUF {
        return Err(StatusError::unsupported_media_type(format!(
            "protobuf envelopes with contentType {content_type:?} are not supported"
        )));
    }
    let (group, version) = split(&api_version);
    let Some(descriptor) = message(group, version, &kind) else {
        let what =
            if kind.is_empty() { "an object without a kind".to_string() } else { format!("{api_version} {kind}") };
        return Err(StatusError::unsupported_media_type(format!(
            "protobuf bodies are decoded for built-in kinds only, not for {what}; send it as application/json or \
             application/yaml"
        )));
    };
    let raw = envelope.get_field_by_name("raw").and_then(|v| v.as_bytes().cloned()).unwrap_or_default();
    let object = DynamicMessage::decode(descriptor, raw).map_err(invalid)?;
    let mut value = json::to_json(&object)?.unwrap_or_else(|| Value::Object(Default::default()));
    if let Value::Object(fields) = &mut value {
        // apiVersion and kind first, as kube-apiserver writes them.
        let rest = std::mem::take(fields);
        fields.insert("apiVersion".into(), api_version.into());
        fields.insert("kind".into(), kind.into());
        fields.extend(rest);
    }
    Ok(value)
}

/// Encodes a built-in object (or list) in its JSON form as a protobuf reply: magic, envelope,
/// object. `None` for a kind without a protobuf form; an error for JSON that does not fit it.
pub fn encode(value: &Value) -> Option<ApiResult<Bytes>> {
    let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or_default();
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    let (group, version) = split(api_version);
    let descriptor = message(group, version, kind)?;
    Some(json::from_json(&descriptor, value).map(|object| {
        let mut raw = object.encode_to_vec();
        maps::sort_entries(&descriptor, &mut raw);
        envelope(api_version, kind, raw)
    }))
}

/// The magic and a `runtime.Unknown` around an encoded message.
fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Bytes {
    let unknown = POOL.get_message_by_name(UNKNOWN).expect("runtime.Unknown is in k8s.binpb");
    // Its JSON form, whose TypeMeta is inline.
    let value = serde_json::json!({"apiVersion": api_version, "kind": kind});
    let mut envelope = json::from_json(&unknown, &value).expect("runtime.Unknown takes its TypeMeta");
    envelope.set_field_by_name("raw", prost_reflect::Value::Bytes(raw.into()));
    let mut out = MAGIC.to_vec();
    envelope.encode(&mut out).expect("a Vec grows as needed");
    Bytes::from(out)
}

/// One event of a JSON watch stream (`{"type":…,"object":…}`) as a frame of a protobuf watch
/// stream, as kube-apiserver writes them: a 4-byte big-endian length, then a `WatchEvent` in its
/// envelope (of the watched resource's `api_version`, as kube-apiserver writes it) whose object is
/// an encoded object. An object without a protobuf form becomes an ERROR event, so that the
/// stream says why it ends.
pub fn watch_frame(api_version: &str, line: &[u8]) -> Bytes {
    let event: Value = serde_json::from_slice(line).unwrap_or_default();
    let object = &event["object"];
    let (kind, object) = match encode(object) {
        Some(Ok(object)) => (event["type"].as_str().unwrap_or_default(), object),
        failed => {
            let e = failed.and_then(Result::err).unwrap_or_else(|| {
                StatusError::internal(format!(
                    "{} has no protobuf form",
                    object["kind"].as_str().unwrap_or("the object")
                ))
            });
            ("ERROR", encode(&e.to_status()).and_then(Result::ok).unwrap_or_default())
        }
    };
    let descriptor = POOL.get_message_by_name(WATCH_EVENT).expect("WatchEvent is in k8s.binpb");
    let value = serde_json::json!({"type": kind, "object": {}});
    let mut watch_event = json::from_json(&descriptor, &value).expect("WatchEvent takes a type and an object");
    if let Some(prost_reflect::Value::Message(raw)) = watch_event.get_field_by_name_mut("object") {
        raw.set_field_by_name("raw", prost_reflect::Value::Bytes(object));
    }
    let framed = envelope(api_version, "WatchEvent", watch_event.encode_to_vec());
    let length = u32::try_from(framed.len()).unwrap_or(u32::MAX);
    [&length.to_be_bytes()[..], &framed].concat().into()
}

#[cfg(test)]
mod tests;
