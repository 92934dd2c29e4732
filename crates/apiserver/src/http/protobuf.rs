//! Request bodies in `application/vnd.kubernetes.protobuf`, which kubectl's typed generator commands
//! (`kubectl create configmap|secret generic|namespace|serviceaccount`) send. The body is decoded into
//! the JSON the apiserver's JSON form of the same object has, and from there on it is an ordinary body.
//!
//! The format: the magic `k8s\0`, then a `runtime.Unknown` message (1 typeMeta {1 apiVersion,
//! 2 kind}, 2 raw, 3 contentEncoding, 4 contentType) whose `raw` is the object's own message, as in
//! Kubernetes' `generated.proto` files. Only v1 ConfigMap, Secret, Namespace and ServiceAccount are
//! decoded; other kinds are refused with 415 so that nothing is stored half-decoded. Fields this
//! decoder does not know are skipped by wire type. Malformed input is a 400, never a panic: every
//! read is bounds-checked.

use serde_json::{Map, Value};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gitbacked_core::clock::rfc3339;
use gitbacked_core::status::{ApiResult, StatusError};

const MAGIC: &[u8] = b"k8s\0";
const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// Decodes a protobuf request body (magic, envelope, object) into the object's JSON form.
pub fn decode(bytes: &[u8]) -> ApiResult<Value> {
    let body = bytes.strip_prefix(MAGIC).ok_or_else(|| invalid("the body does not start with the magic \"k8s\\0\""))?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    let (mut encoding, mut content_type) = (String::new(), String::new());
    let mut r = Reader::new(body, "Unknown");
    while let Some((number, field)) = r.next()? {
        match number {
            1 => {
                let mut t = Reader::new(r.message(number, field)?, "TypeMeta");
                while let Some((number, field)) = t.next()? {
                    match number {
                        1 => api_version = t.string(number, field)?,
                        2 => kind = t.string(number, field)?,
                        _ => {}
                    }
                }
            }
            2 => raw = r.bytes(number, field)?,
            3 => encoding = r.string(number, field)?,
            4 => content_type = r.string(number, field)?,
            _ => {}
        }
    }
    if !encoding.is_empty() {
        return Err(StatusError::unsupported_media_type(format!(
            "protobuf bodies with contentEncoding {encoding:?} are not supported"
        )));
    }
    if !content_type.is_empty() && content_type != PROTOBUF {
        return Err(StatusError::unsupported_media_type(format!(
            "protobuf envelopes with contentType {content_type:?} are not supported"
        )));
    }
    let decode_object: fn(&[u8], &mut Map<String, Value>) -> ApiResult<()> = match (api_version.as_str(), kind.as_str())
    {
        ("v1", "ConfigMap") => config_map,
        ("v1", "Secret") => secret,
        ("v1", "Namespace") => namespace,
        ("v1", "ServiceAccount") => service_account,
        _ => {
            let what =
                if kind.is_empty() { "an object without a kind".to_string() } else { format!("{api_version} {kind}") };
            return Err(StatusError::unsupported_media_type(format!(
                "protobuf bodies are decoded for v1 ConfigMap, Secret, Namespace and ServiceAccount only, not for \
                 {what}; send it as application/json or application/yaml"
            )));
        }
    };
    let mut object = Map::new();
    object.insert("apiVersion".into(), api_version.into());
    object.insert("kind".into(), kind.into());
    decode_object(raw, &mut object)?;
    Ok(Value::Object(object))
}

fn invalid(what: impl std::fmt::Display) -> StatusError {
    StatusError::bad_request(format!("invalid protobuf body: {what}"))
}

/// v1 ConfigMap: 1 metadata, 2 data, 3 binaryData, 4 immutable.
fn config_map(raw: &[u8], object: &mut Map<String, Value>) -> ApiResult<()> {
    let (mut metadata, mut immutable) = (Map::new(), None);
    let (mut data, mut binary_data) = (Map::new(), Map::new());
    let mut r = Reader::new(raw, "ConfigMap");
    while let Some((number, field)) = r.next()? {
        match number {
            1 => metadata = object_meta(r.message(number, field)?)?,
            2 => map_entry(r.message(number, field)?, &mut data, Text)?,
            3 => map_entry(r.message(number, field)?, &mut binary_data, Base64)?,
            4 => immutable = Some(r.bool(number, field)?),
            _ => {}
        }
    }
    object.insert("metadata".into(), metadata.into());
    insert_some(object, "immutable", immutable);
    insert_nonempty(object, "data", data);
    insert_nonempty(object, "binaryData", binary_data);
    Ok(())
}

/// v1 Secret: 1 metadata, 2 data (bytes), 3 type, 4 stringData, 5 immutable.
fn secret(raw: &[u8], object: &mut Map<String, Value>) -> ApiResult<()> {
    let (mut metadata, mut immutable, mut kind) = (Map::new(), None, String::new());
    let (mut data, mut string_data) = (Map::new(), Map::new());
    let mut r = Reader::new(raw, "Secret");
    while let Some((number, field)) = r.next()? {
        match number {
            1 => metadata = object_meta(r.message(number, field)?)?,
            2 => map_entry(r.message(number, field)?, &mut data, Base64)?,
            3 => kind = r.string(number, field)?,
            4 => map_entry(r.message(number, field)?, &mut string_data, Text)?,
            5 => immutable = Some(r.bool(number, field)?),
            _ => {}
        }
    }
    object.insert("metadata".into(), metadata.into());
    insert_some(object, "immutable", immutable);
    insert_nonempty(object, "data", data);
    insert_nonempty(object, "stringData", string_data);
    if !kind.is_empty() {
        object.insert("type".into(), kind.into());
    }
    Ok(())
}

/// v1 Namespace: 1 metadata, 2 spec {1 finalizers}, 3 status (not decoded: the server owns it).
fn namespace(raw: &[u8], object: &mut Map<String, Value>) -> ApiResult<()> {
    let (mut metadata, mut finalizers) = (Map::new(), Vec::new());
    let mut r = Reader::new(raw, "Namespace");
    while let Some((number, field)) = r.next()? {
        match number {
            1 => metadata = object_meta(r.message(number, field)?)?,
            2 => {
                let mut s = Reader::new(r.message(number, field)?, "NamespaceSpec");
                while let Some((number, field)) = s.next()? {
                    if number == 1 {
                        finalizers.push(Value::from(s.string(number, field)?));
                    }
                }
            }
            _ => {}
        }
    }
    let mut spec = Map::new();
    insert_nonempty_list(&mut spec, "finalizers", finalizers);
    object.insert("metadata".into(), metadata.into());
    object.insert("spec".into(), spec.into());
    Ok(())
}

/// v1 ServiceAccount: 1 metadata, 2 secrets (ObjectReference), 3 imagePullSecrets
/// (LocalObjectReference {1 name}), 4 automountServiceAccountToken.
fn service_account(raw: &[u8], object: &mut Map<String, Value>) -> ApiResult<()> {
    let (mut metadata, mut automount) = (Map::new(), None);
    let (mut secrets, mut pull_secrets) = (Vec::new(), Vec::new());
    let mut r = Reader::new(raw, "ServiceAccount");
    while let Some((number, field)) = r.next()? {
        match number {
            1 => metadata = object_meta(r.message(number, field)?)?,
            2 => secrets.push(Value::Object(object_reference(r.message(number, field)?)?)),
            3 => {
                let mut reference = Map::new();
                let mut l = Reader::new(r.message(number, field)?, "LocalObjectReference");
                while let Some((number, field)) = l.next()? {
                    if number == 1 {
                        insert_nonempty_string(&mut reference, "name", l.string(number, field)?);
                    }
                }
                pull_secrets.push(Value::Object(reference));
            }
            4 => automount = Some(r.bool(number, field)?),
            _ => {}
        }
    }
    object.insert("metadata".into(), metadata.into());
    insert_nonempty_list(object, "secrets", secrets);
    insert_nonempty_list(object, "imagePullSecrets", pull_secrets);
    insert_some(object, "automountServiceAccountToken", automount);
    Ok(())
}

/// ObjectReference: 1 kind, 2 namespace, 3 name, 4 uid, 5 apiVersion, 6 resourceVersion, 7 fieldPath
/// (all `omitempty` in JSON).
fn object_reference(bytes: &[u8]) -> ApiResult<Map<String, Value>> {
    const NAMES: [&str; 7] = ["kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"];
    let mut values: [String; 7] = Default::default();
    let mut r = Reader::new(bytes, "ObjectReference");
    while let Some((number, field)) = r.next()? {
        if let Some(slot) = values.get_mut((number as usize).wrapping_sub(1)) {
            *slot = r.string(number, field)?;
        }
    }
    let mut reference = Map::new();
    for (name, value) in NAMES.iter().zip(values) {
        insert_nonempty_string(&mut reference, name, value);
    }
    Ok(reference)
}

/// meta/v1 ObjectMeta: 1 name, 2 generateName, 3 namespace, 4 selfLink, 5 uid, 6 resourceVersion,
/// 7 generation, 8 creationTimestamp, 9 deletionTimestamp, 10 deletionGracePeriodSeconds, 11 labels,
/// 12 annotations, 13 ownerReferences, 14 finalizers; 17 managedFields and the rest are skipped.
fn object_meta(bytes: &[u8]) -> ApiResult<Map<String, Value>> {
    const STRINGS: [&str; 6] = ["name", "generateName", "namespace", "selfLink", "uid", "resourceVersion"];
    let mut strings: [String; 6] = Default::default();
    let (mut generation, mut created, mut deleted, mut grace) = (0, None, None, None);
    let (mut labels, mut annotations) = (Map::new(), Map::new());
    let (mut owners, mut finalizers) = (Vec::new(), Vec::new());
    let mut r = Reader::new(bytes, "ObjectMeta");
    while let Some((number, field)) = r.next()? {
        match number {
            1..=6 => strings[number as usize - 1] = r.string(number, field)?,
            7 => generation = r.int64(number, field)?,
            8 => created = time(r.message(number, field)?)?,
            9 => deleted = time(r.message(number, field)?)?,
            10 => grace = Some(r.int64(number, field)?),
            11 => map_entry(r.message(number, field)?, &mut labels, Text)?,
            12 => map_entry(r.message(number, field)?, &mut annotations, Text)?,
            13 => owners.push(Value::Object(owner_reference(r.message(number, field)?)?)),
            14 => finalizers.push(Value::from(r.string(number, field)?)),
            _ => {}
        }
    }
    let mut meta = Map::new();
    for (name, value) in STRINGS.iter().zip(strings) {
        insert_nonempty_string(&mut meta, name, value);
    }
    if generation != 0 {
        meta.insert("generation".into(), generation.into());
    }
    insert_some(&mut meta, "creationTimestamp", created);
    insert_some(&mut meta, "deletionTimestamp", deleted);
    insert_some(&mut meta, "deletionGracePeriodSeconds", grace);
    insert_nonempty(&mut meta, "labels", labels);
    insert_nonempty(&mut meta, "annotations", annotations);
    insert_nonempty_list(&mut meta, "ownerReferences", owners);
    insert_nonempty_list(&mut meta, "finalizers", finalizers);
    Ok(meta)
}

/// OwnerReference: 1 kind, 3 name, 4 uid, 5 apiVersion, 6 controller, 7 blockOwnerDeletion.
fn owner_reference(bytes: &[u8]) -> ApiResult<Map<String, Value>> {
    let (mut api_version, mut kind, mut name, mut uid) = (String::new(), String::new(), String::new(), String::new());
    let (mut controller, mut block) = (None, None);
    let mut r = Reader::new(bytes, "OwnerReference");
    while let Some((number, field)) = r.next()? {
        match number {
            1 => kind = r.string(number, field)?,
            3 => name = r.string(number, field)?,
            4 => uid = r.string(number, field)?,
            5 => api_version = r.string(number, field)?,
            6 => controller = Some(r.bool(number, field)?),
            7 => block = Some(r.bool(number, field)?),
            _ => {}
        }
    }
    let mut owner = Map::new();
    owner.insert("apiVersion".into(), api_version.into());
    owner.insert("kind".into(), kind.into());
    owner.insert("name".into(), name.into());
    owner.insert("uid".into(), uid.into());
    insert_some(&mut owner, "controller", controller);
    insert_some(&mut owner, "blockOwnerDeletion", block);
    Ok(owner)
}

/// meta/v1 Time {1 seconds, 2 nanos}. Go writes the zero time as an empty message, and the JSON form
/// has whole seconds only (apimachinery drops nanos when it decodes).
fn time(bytes: &[u8]) -> ApiResult<Option<String>> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let mut seconds = 0;
    let mut r = Reader::new(bytes, "Time");
    while let Some((number, field)) = r.next()? {
        if number == 1 {
            seconds = r.int64(number, field)?;
        }
    }
    // RFC 3339 covers years 0001 to 9999.
    if !(-62_135_596_800..=253_402_300_799).contains(&seconds) {
        return Err(invalid(format!("the time {seconds} (seconds since 1970) is out of range")));
    }
    Ok(Some(rfc3339(seconds)))
}

/// How a map entry's value (field 2) becomes JSON.
#[derive(Clone, Copy)]
enum MapValue {
    /// `string`: a JSON string.
    Text,
    /// `bytes`: base64, as Go's encoding/json writes `[]byte`.
    Base64,
}
use MapValue::{Base64, Text};

/// One entry of a proto map (a message {1 key, 2 value}). The last entry for a key wins.
fn map_entry(bytes: &[u8], into: &mut Map<String, Value>, kind: MapValue) -> ApiResult<()> {
    let (mut key, mut value) = (String::new(), Value::from(""));
    let mut r = Reader::new(bytes, "map entry");
    while let Some((number, field)) = r.next()? {
        match (number, kind) {
            (1, _) => key = r.string(number, field)?,
            (2, Text) => value = r.string(number, field)?.into(),
            (2, Base64) => value = STANDARD.encode(r.bytes(number, field)?).into(),
            _ => {}
        }
    }
    into.insert(key, value);
    Ok(())
}

fn insert_some(map: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(value) = value {
        map.insert(key.into(), value.into());
    }
}

fn insert_nonempty(map: &mut Map<String, Value>, key: &str, value: Map<String, Value>) {
    if !value.is_empty() {
        map.insert(key.into(), value.into());
    }
}

fn insert_nonempty_list(map: &mut Map<String, Value>, key: &str, value: Vec<Value>) {
    if !value.is_empty() {
        map.insert(key.into(), value.into());
    }
}

fn insert_nonempty_string(map: &mut Map<String, Value>, key: &str, value: String) {
    if !value.is_empty() {
        map.insert(key.into(), value.into());
    }
}

/// A field's value as it is on the wire.
enum Field<'a> {
    Varint(u64),
    Fixed64,
    Fixed32,
    Bytes(&'a [u8]),
}

impl Field<'_> {
    fn wire_type(&self) -> &'static str {
        match self {
            Field::Varint(_) => "varint",
            Field::Fixed64 => "fixed64",
            Field::Fixed32 => "fixed32",
            Field::Bytes(_) => "length-delimited",
        }
    }
}

/// A bounds-checked reader of one message's fields.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    message: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], message: &'static str) -> Self {
        Reader { buf, pos: 0, message }
    }

    /// The next field's number and value; `None` at the end of the message.
    fn next(&mut self) -> ApiResult<Option<(u32, Field<'a>)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|n| (1..=0x1fff_ffff).contains(n))
            .ok_or_else(|| invalid(format!("{}: field number {} is out of range", self.message, key >> 3)))?;
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Fixed64
            }
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| self.truncated())?;
                Field::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Field::Fixed32
            }
            wire => {
                return Err(invalid(format!(
                    "{}: field {number} has wire type {wire}, which is not supported",
                    self.message
                )));
            }
        };
        Ok(Some((number, field)))
    }

    fn varint(&mut self) -> ApiResult<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = *self.buf.get(self.pos).ok_or_else(|| self.truncated())?;
            self.pos += 1;
            if i == 9 && byte > 1 {
                return Err(invalid(format!("{}: a varint overflows 64 bits", self.message)));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(invalid(format!("{}: a varint is longer than 10 bytes", self.message)))
    }

    fn take(&mut self, len: usize) -> ApiResult<&'a [u8]> {
        let end = self.pos.checked_add(len).filter(|&end| end <= self.buf.len()).ok_or_else(|| self.truncated())?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn truncated(&self) -> StatusError {
        invalid(format!("{} is truncated", self.message))
    }

    fn mismatch(&self, number: u32, field: &Field<'_>, expected: &str) -> StatusError {
        invalid(format!("{}: field {number} has wire type {}, expected {expected}", self.message, field.wire_type()))
    }

    fn bytes(&self, number: u32, field: Field<'a>) -> ApiResult<&'a [u8]> {
        match field {
            Field::Bytes(bytes) => Ok(bytes),
            other => Err(self.mismatch(number, &other, "length-delimited")),
        }
    }

    fn message(&self, number: u32, field: Field<'a>) -> ApiResult<&'a [u8]> {
        self.bytes(number, field)
    }

    fn string(&self, number: u32, field: Field<'a>) -> ApiResult<String> {
        let bytes = self.bytes(number, field)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| invalid(format!("{}: field {number} is not valid UTF-8", self.message)))
    }

    fn uint(&self, number: u32, field: Field<'a>) -> ApiResult<u64> {
        match field {
            Field::Varint(value) => Ok(value),
            other => Err(self.mismatch(number, &other, "varint")),
        }
    }

    fn int64(&self, number: u32, field: Field<'a>) -> ApiResult<i64> {
        // int64 is the two's complement of the varint.
        self.uint(number, field).map(|v| v as i64)
    }

    fn bool(&self, number: u32, field: Field<'a>) -> ApiResult<bool> {
        self.uint(number, field).map(|v| v != 0)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use gitbacked_core::status::Reason;

    // A tiny encoder, as Go's generated code writes (every non-pointer string, even empty).
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn key(number: u32, wire: u8) -> Vec<u8> {
        let mut out = Vec::new();
        varint(&mut out, u64::from(number) << 3 | u64::from(wire));
        out
    }

    fn len_field(number: u32, bytes: &[u8]) -> Vec<u8> {
        let mut out = key(number, 2);
        varint(&mut out, bytes.len() as u64);
        out.extend_from_slice(bytes);
        out
    }

    fn str_field(number: u32, s: &str) -> Vec<u8> {
        len_field(number, s.as_bytes())
    }

    fn var_field(number: u32, v: u64) -> Vec<u8> {
        let mut out = key(number, 0);
        varint(&mut out, v);
        out
    }

    fn msg(fields: &[Vec<u8>]) -> Vec<u8> {
        fields.concat()
    }

    fn entry(number: u32, k: &str, v: &[u8]) -> Vec<u8> {
        len_field(number, &msg(&[str_field(1, k), len_field(2, v)]))
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = msg(&[str_field(1, api_version), str_field(2, kind)]);
        let unknown = msg(&[len_field(1, &type_meta), len_field(2, raw), str_field(3, ""), str_field(4, "")]);
        [MAGIC, &unknown].concat()
    }

    /// ObjectMeta as Go writes it for `kubectl create … NAME`: empty strings, generation 0 and an
    /// empty creationTimestamp included.
    fn meta(name: &str, extra: &[Vec<u8>]) -> Vec<u8> {
        let mut fields = vec![
            str_field(1, name),
            str_field(2, ""),
            str_field(3, ""),
            str_field(4, ""),
            str_field(5, ""),
            str_field(6, ""),
            var_field(7, 0),
            len_field(8, &[]),
        ];
        fields.extend_from_slice(extra);
        msg(&fields)
    }

    #[test]
    fn configmap_with_labels_annotations_and_binary_data() {
        let metadata = meta(
            "settings",
            &[
                str_field(3, "team"),
                entry(11, "app", b"web"),
                entry(11, "tier", b"front"),
                entry(12, "note", b"hello world"),
                str_field(14, "example.com/keep"),
                len_field(17, b"\x0a\x07kubectl"), // managedFields: skipped
            ],
        );
        let raw = msg(&[
            len_field(1, &metadata),
            entry(2, "a", b"1"),
            entry(2, "b", b"two words"),
            entry(3, "bin", &[0, 159, 146, 150, 255]),
            var_field(4, 1),
            str_field(99, "a field from the future"),
        ]);
        let value = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "settings",
                    "namespace": "team",
                    "labels": {"app": "web", "tier": "front"},
                    "annotations": {"note": "hello world"},
                    "finalizers": ["example.com/keep"],
                },
                "immutable": true,
                "data": {"a": "1", "b": "two words"},
                "binaryData": {"bin": "AJ+Slv8="},
            })
        );
    }

    #[test]
    fn kubectl_create_configmap_body() {
        // `kubectl create configmap literal --from-literal=a=1`: no immutable, no binaryData.
        let raw = msg(&[len_field(1, &meta("literal", &[])), entry(2, "a", b"1")]);
        let value = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
        assert_eq!(
            value,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "literal"}, "data": {"a": "1"}})
        );
    }

    #[test]
    fn secret_data_is_base64() {
        let raw = msg(&[
            len_field(1, &meta("s", &[entry(11, "app", b"db")])),
            entry(2, "k", b"v"),
            entry(2, "bin", &[0xff, 0xfe]),
            str_field(3, "Opaque"),
            entry(4, "plain", b"text"),
            var_field(5, 0),
        ]);
        let value = decode(&envelope("v1", "Secret", &raw)).unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "s", "labels": {"app": "db"}},
                "immutable": false,
                "data": {"k": "dg==", "bin": "//4="},
                "stringData": {"plain": "text"},
                "type": "Opaque",
            })
        );
    }

    #[test]
    fn namespace_spec_and_no_status() {
        let status = msg(&[str_field(1, "Active")]);
        let raw = msg(&[
            len_field(1, &meta("n", &[])),
            len_field(2, &msg(&[str_field(1, "kubernetes")])),
            len_field(3, &status),
        ]);
        let value = decode(&envelope("v1", "Namespace", &raw)).unwrap();
        assert_eq!(
            value,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}, "spec": {"finalizers": ["kubernetes"]}})
        );
        // As `kubectl create namespace n` sends it: an empty spec.
        let raw = msg(&[len_field(1, &meta("n", &[])), len_field(2, &[]), len_field(3, &msg(&[str_field(1, "")]))]);
        let value = decode(&envelope("v1", "Namespace", &raw)).unwrap();
        assert_eq!(value, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}, "spec": {}}));
    }

    #[test]
    fn service_account_references() {
        let secret_ref =
            msg(&[str_field(1, "Secret"), str_field(2, "default"), str_field(3, "token"), str_field(7, "")]);
        let raw = msg(&[
            len_field(1, &meta("sa", &[])),
            len_field(2, &secret_ref),
            len_field(3, &msg(&[str_field(1, "registry")])),
            var_field(4, 0),
        ]);
        let value = decode(&envelope("v1", "ServiceAccount", &raw)).unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "sa"},
                "secrets": [{"kind": "Secret", "namespace": "default", "name": "token"}],
                "imagePullSecrets": [{"name": "registry"}],
                "automountServiceAccountToken": false,
            })
        );
        let raw = msg(&[len_field(1, &meta("sa", &[]))]);
        let value = decode(&envelope("v1", "ServiceAccount", &raw)).unwrap();
        assert_eq!(value, json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}}));
    }

    #[test]
    fn object_meta_every_field() {
        let time = |seconds: u64| msg(&[var_field(1, seconds), var_field(2, 5)]);
        let owner = msg(&[
            str_field(1, "Deployment"),
            str_field(3, "web"),
            str_field(4, "0000-1111"),
            str_field(5, "apps/v1"),
            var_field(6, 1),
            var_field(7, 0),
        ]);
        let metadata = msg(&[
            str_field(1, ""),
            str_field(2, "web-"),
            str_field(3, "default"),
            str_field(4, "/api/v1/x"),
            str_field(5, "abcd"),
            str_field(6, "42"),
            var_field(7, 3),
            len_field(8, &time(1_700_000_000)),
            len_field(9, &time(0)),
            var_field(10, 30),
            len_field(13, &owner),
            len_field(16, b"initializers are skipped"),
        ]);
        let raw = msg(&[len_field(1, &metadata)]);
        let value = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
        assert_eq!(
            value["metadata"],
            json!({
                "generateName": "web-",
                "namespace": "default",
                "selfLink": "/api/v1/x",
                "uid": "abcd",
                "resourceVersion": "42",
                "generation": 3,
                "creationTimestamp": "2023-11-14T22:13:20Z",
                "deletionTimestamp": "1970-01-01T00:00:00Z",
                "deletionGracePeriodSeconds": 30,
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "0000-1111",
                    "controller": true, "blockOwnerDeletion": false,
                }],
            })
        );
        // A negative int64 is a ten-byte varint.
        let raw = msg(&[len_field(1, &msg(&[var_field(10, -1i64 as u64)]))]);
        let value = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
        assert_eq!(value["metadata"]["deletionGracePeriodSeconds"], json!(-1));
    }

    #[test]
    fn unknown_fields_of_every_wire_type_are_skipped() {
        let mut raw = msg(&[len_field(1, &meta("x", &[])), entry(2, "a", b"1")]);
        raw.extend(var_field(20, 300));
        raw.extend(key(21, 1));
        raw.extend([1, 2, 3, 4, 5, 6, 7, 8]);
        raw.extend(key(22, 5));
        raw.extend([1, 2, 3, 4]);
        raw.extend(len_field(23, b"\xff\xfe not UTF-8 but unknown"));
        let value = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
        assert_eq!(value["data"], json!({"a": "1"}));
    }

    #[test]
    fn other_kinds_are_unsupported_media_types_naming_the_kind() {
        let e = decode(&envelope("apps/v1", "Deployment", &len_field(1, &meta("web", &[])))).unwrap_err();
        assert_eq!((e.code, e.reason), (415, Reason::UnsupportedMediaType));
        assert!(e.message.contains("apps/v1 Deployment"), "{}", e.message);
        let e = decode(&envelope("v2", "ConfigMap", &[])).unwrap_err();
        assert!(e.code == 415 && e.message.contains("v2 ConfigMap"), "{}", e.message);

        let type_meta = msg(&[str_field(1, "v1"), str_field(2, "ConfigMap")]);
        let gzip = [MAGIC, &msg(&[len_field(1, &type_meta), len_field(2, &[]), str_field(3, "gzip")])].concat();
        let e = decode(&gzip).unwrap_err();
        assert!(e.code == 415 && e.message.contains("gzip"), "{}", e.message);
        let json = [MAGIC, &msg(&[len_field(1, &type_meta), str_field(4, "application/json")])].concat();
        assert_eq!(decode(&json).unwrap_err().code, 415);
    }

    fn bad(bytes: &[u8]) -> String {
        let e = decode(bytes).unwrap_err();
        assert_eq!((e.code, e.reason), (400, Reason::BadRequest), "{}", e.message);
        e.message
    }

    #[test]
    fn malformed_bodies_are_bad_requests() {
        assert!(bad(b"").contains("magic"));
        assert!(bad(b"{\"kind\":\"ConfigMap\"}").contains("magic"));
        assert!(bad(b"k8s").contains("magic"));
        // A varint that never ends, and one that overflows.
        assert!(bad(&[MAGIC, &[0x0a, 0xff, 0xff]].concat()).contains("truncated"));
        assert!(bad(&[MAGIC, &[0x08], &[0xff; 9], &[0x02]].concat()).contains("overflows"));
        assert!(bad(&[MAGIC, &[0x08], &[0x80; 10], &[0x00]].concat()).contains("overflows"));
        // A length beyond the end, and a huge one.
        assert!(bad(&[MAGIC, &[0x12, 0x05, b'a']].concat()).contains("truncated"));
        assert!(bad(&[MAGIC, &[0x12], &[0xff; 9], &[0x01]].concat()).contains("truncated"));
        // Field number 0, groups, wire types 6 and 7.
        assert!(bad(&[MAGIC, &[0x02, 0x00]].concat()).contains("field number"));
        assert!(bad(&[MAGIC, &[0x0b]].concat()).contains("wire type 3"));
        assert!(bad(&[MAGIC, &[0x0e]].concat()).contains("wire type 6"));
        // A known field with the wrong wire type, and a string that is not UTF-8.
        let wrong = msg(&[len_field(1, &msg(&[var_field(1, 1)]))]);
        assert!(bad(&envelope("v1", "ConfigMap", &wrong)).contains("ObjectMeta: field 1 has wire type varint"));
        let wrong = msg(&[str_field(4, "yes")]);
        assert!(bad(&envelope("v1", "ConfigMap", &wrong)).contains("expected varint"));
        let not_utf8 = msg(&[len_field(1, &msg(&[len_field(1, b"\xff\xfe")]))]);
        assert!(bad(&envelope("v1", "Secret", &not_utf8)).contains("UTF-8"));
        // A time out of RFC 3339's range.
        let far = msg(&[len_field(1, &msg(&[len_field(8, &var_field(1, 1 << 62))]))]);
        assert!(bad(&envelope("v1", "Namespace", &far)).contains("out of range"));
    }

    #[test]
    fn every_truncation_of_a_valid_body_fails_cleanly() {
        let metadata = meta("settings", &[entry(11, "app", b"web"), entry(12, "a", b"b")]);
        let bodies = [
            envelope("v1", "ConfigMap", &msg(&[len_field(1, &metadata), entry(2, "a", b"1"), entry(3, "b", b"\x00")])),
            envelope("v1", "Secret", &msg(&[len_field(1, &metadata), entry(2, "k", b"v"), str_field(3, "Opaque")])),
            envelope("v1", "Namespace", &msg(&[len_field(1, &metadata), len_field(2, &str_field(1, "kubernetes"))])),
            envelope("v1", "ServiceAccount", &msg(&[len_field(1, &metadata), len_field(3, &str_field(1, "r"))])),
        ];
        for body in &bodies {
            assert!(decode(body).is_ok());
            for end in 0..body.len() {
                if let Err(e) = decode(&body[..end]) {
                    assert!(matches!(e.code, 400 | 415), "{end}: {}", e.message);
                }
            }
            // Every single-byte corruption: an answer, never a panic.
            for i in MAGIC.len()..body.len() {
                for byte in [0x00, 0x07, 0x7f, 0x80, 0xff] {
                    let mut corrupt = body.clone();
                    corrupt[i] = byte;
                    if let Err(e) = decode(&corrupt) {
                        assert!(matches!(e.code, 400 | 415), "{}", e.message);
                    }
                }
            }
        }
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for round in 0..5000 {
            let len = round % 64;
            let mut body = MAGIC.to_vec();
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                body.push(state as u8);
            }
            if let Err(e) = decode(&body) {
                assert!(matches!(e.code, 400 | 415), "{}", e.message);
            }
        }
    }
}
