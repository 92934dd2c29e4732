//! Objects as the store holds them: what git says plus the metadata derived from history.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::registry::{GroupKind, Registry, ResourceType};

/// Identity of an object: group, kind, namespace (empty when cluster-scoped) and name (its
/// [`KeyParts`]). Shared, not copied: the store holds a key in several places for each object (the
/// object, its index, the claim of its document), and a clone is a reference count.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey(Arc<KeyParts>);

/// Ordered as its parts are, by value. Keys of one kind and namespace share those parts (see
/// [`ObjectKey::new`]): a pointer comparison settles them, and only names are compared as text,
/// which is most of what building the index of a large repository costs.
impl Ord for ObjectKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        fn shared<T: Ord + ?Sized>(a: &Arc<T>, b: &Arc<T>) -> std::cmp::Ordering {
            if Arc::ptr_eq(a, b) { std::cmp::Ordering::Equal } else { a.cmp(b) }
        }
        let (a, b) = (&*self.0, &*other.0);
        shared(&a.gk, &b.gk).then_with(|| shared(&a.namespace, &b.namespace)).then_with(|| a.name.cmp(&b.name))
    }
}

impl PartialOrd for ObjectKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// What an [`ObjectKey`] is made of.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyParts {
    /// Group and kind, shared by the keys of a kind (see [`ObjectKey::new`]).
    pub gk: Arc<GroupKind>,
    /// Namespace, `""` for cluster-scoped objects; shared by the keys of a namespace.
    pub namespace: Arc<str>,
    /// Name.
    pub name: String,
}

/// The group/kinds and namespaces of keys, each held once: the keys of a repository repeat a few
/// kinds and namespaces, and three of a key's four strings would otherwise be copies (about 80
/// bytes a key).
static SHARED: Shared = Shared(std::sync::LazyLock::new(Default::default));

struct Shared(std::sync::LazyLock<std::sync::Mutex<SharedParts>>);

#[derive(Default)]
struct SharedParts {
    kinds: std::collections::HashSet<Arc<GroupKind>>,
    namespaces: std::collections::HashSet<Arc<str>>,
    /// How many there may be before those no key uses any more are dropped.
    sweep_above: usize,
}

impl Shared {
    /// The shared `gk` and `namespace`.
    fn share(&self, gk: GroupKind, namespace: &str) -> (Arc<GroupKind>, Arc<str>) {
        let mut parts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let gk = match parts.kinds.get(&gk) {
            Some(shared) => shared.clone(),
            None => {
                let gk = Arc::new(gk);
                parts.kinds.insert(gk.clone());
                gk
            }
        };
        let namespace = match parts.namespaces.get(namespace) {
            Some(shared) => shared.clone(),
            None => {
                let namespace: Arc<str> = Arc::from(namespace);
                parts.namespaces.insert(namespace.clone());
                namespace
            }
        };
        // Namespaces come and go: once they have doubled, those held here alone are dropped (a
        // count of one cannot grow meanwhile: only this set, behind its lock, hands them out).
        if parts.kinds.len() + parts.namespaces.len() > parts.sweep_above {
            parts.kinds.retain(|k| Arc::strong_count(k) > 1);
            parts.namespaces.retain(|n| Arc::strong_count(n) > 1);
            parts.sweep_above = 2 * (parts.kinds.len() + parts.namespaces.len()) + 64;
        }
        (gk, namespace)
    }
}

impl std::ops::Deref for ObjectKey {
    type Target = KeyParts;

    fn deref(&self) -> &KeyParts {
        &self.0
    }
}

impl std::fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let KeyParts { gk, namespace, name } = &*self.0;
        f.debug_struct("ObjectKey").field("gk", gk).field("namespace", namespace).field("name", name).finish()
    }
}

impl ObjectKey {
    /// The key of the object `name` of kind `gk` in `namespace` (`""` when cluster-scoped).
    pub fn new(gk: GroupKind, namespace: impl AsRef<str>, name: impl Into<String>) -> Self {
        let (gk, namespace) = SHARED.share(gk, namespace.as_ref());
        ObjectKey(Arc::new(KeyParts { gk, namespace, name: name.into() }))
    }

    /// The key of a document, with its namespace settled by the type's scope: cluster-scoped objects
    /// have none, namespaced ones default to `default`. `None` when the kind is not served.
    pub fn of<'r>(registry: &'r Registry, value: &Value) -> Option<(ObjectKey, &'r Arc<ResourceType>)> {
        let head = Head {
            api_version: value.get("apiVersion")?.as_str()?.into(),
            kind: value.get("kind")?.as_str()?.into(),
            metadata: MetaHead {
                name: Some(value.pointer("/metadata/name")?.as_str()?.into()),
                namespace: value.pointer("/metadata/namespace").and_then(Value::as_str).map(Into::into),
            },
        };
        head.key(registry)
    }

    /// [`ObjectKey::of`] for a document held as JSON text, without building a `Value`.
    pub fn of_json<'r>(registry: &'r Registry, json: &str) -> Option<(ObjectKey, &'r Arc<ResourceType>)> {
        Head::parse(json)?.key(registry)
    }
}

/// The fields of a document that name it, read from JSON text without building a `Value`.
#[derive(serde::Deserialize)]
pub struct Head<'a> {
    #[serde(rename = "apiVersion", borrow)]
    api_version: Cow<'a, str>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    metadata: MetaHead<'a>,
}

#[derive(serde::Deserialize, Default)]
struct MetaHead<'a> {
    #[serde(default, borrow, deserialize_with = "string_or_none")]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "string_or_none")]
    namespace: Option<Cow<'a, str>>,
}

/// A string field, or `None` when it holds anything else (as `Value::as_str` reads it).
fn string_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Field<'a> {
        Text(#[serde(borrow)] Cow<'a, str>),
        Other(serde::de::IgnoredAny),
    }
    Ok(match serde::Deserialize::deserialize(d)? {
        Field::Text(s) => Some(s),
        Field::Other(_) => None,
    })
}

impl<'a> Head<'a> {
    /// The head of a JSON object; `None` when apiVersion or kind is missing or not a string.
    pub fn parse(json: &'a str) -> Option<Self> {
        serde_json::from_str(json).ok()
    }

    /// The document's group and kind.
    pub fn group_kind(&self) -> GroupKind {
        GroupKind::from_api_version(&self.api_version, &self.kind)
    }

    fn key<'r>(&self, registry: &'r Registry) -> Option<(ObjectKey, &'r Arc<ResourceType>)> {
        let gk = self.group_kind();
        let rt = registry.by_kind(&gk)?;
        let name = self.metadata.name.as_deref()?.to_string();
        let namespace = match rt.namespaced {
            true => self
                .metadata
                .namespace
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or(crate::document::IMPLIED_NAMESPACE),
            false => "",
        };
        Some((ObjectKey::new(gk, namespace, name), rt))
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dot = if self.gk.group.is_empty() { "" } else { "." };
        write!(f, "{}{dot}{} ", self.gk.kind, self.gk.group)?;
        if !self.namespace.is_empty() {
            write!(f, "{}/", self.namespace)?;
        }
        f.write_str(&self.name)
    }
}

/// Where an object's document lives in the repository.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// File path relative to the subdirectory.
    pub path: Arc<str>,
    /// Document index in the file.
    pub doc: u32,
    /// Item index inside a `kind: List` document.
    pub item: Option<u32>,
}

/// Metadata fields that are derived from git history and never stored in files.
pub const DERIVED_FIELDS: [&str; 5] = ["resourceVersion", "uid", "creationTimestamp", "generation", "selfLink"];

/// The metadata the store derives for an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Derived {
    /// resourceVersion of the last change.
    pub resource_version: u64,
    /// Stable unique id: a hash of the object's identity and the commit that created it.
    pub uid: crate::uid::Uid,
    /// When the object was created, in seconds since the epoch (served in RFC 3339).
    pub creation_timestamp: i64,
    /// Incremented on every change outside metadata and status.
    pub generation: i64,
}

/// An object served by the API.
#[derive(Clone, Debug)]
pub struct StoredObject {
    /// Identity.
    pub key: ObjectKey,
    /// Where it lives in git; `None` for objects kept in memory only (Events).
    pub location: Option<Location>,
    /// Derived metadata.
    pub derived: Derived,
    /// `metadata.labels`, for selectors without parsing.
    pub labels: Labels,
    /// The served JSON without its derived metadata, which [`StoredObject::json`] splices in when
    /// it is served: kept in every object's bytes, it made them half as large again.
    document: Box<[u8]>,
    /// Where the derived metadata goes in `document`: the offset of `metadata`'s closing brace.
    splice: usize,
    /// Whether `generation` is served (see [`crate::registry::has_generation`]), decided once.
    generation: bool,
    /// The object with the defaults of its built-in kind (see [`crate::defaults`]), at its own
    /// version: worked out on its first read, kept as long as the object. Boxed: most objects are
    /// never read so, and 24 bytes fewer put every object in a smaller allocation.
    pub defaulted: std::sync::OnceLock<Box<Bytes>>,
}

/// The derived metadata as served: the members that go at the end of `metadata`, with the comma
/// before them, written without the machinery of `fmt` (a LIST writes them for every item).
fn write_members(object: &StoredObject, out: &mut Vec<u8>) {
    let d = &object.derived;
    if object.document[..object.splice].last() != Some(&b'{') {
        out.push(b',');
    }
    out.extend_from_slice(b"\"uid\":\"");
    out.extend_from_slice(d.uid.as_bytes());
    out.extend_from_slice(b"\",\"resourceVersion\":\"");
    write_number(out, d.resource_version, false);
    out.push(b'"');
    if object.generation {
        out.extend_from_slice(b",\"generation\":");
        write_number(out, d.generation.unsigned_abs(), d.generation < 0);
    }
    out.extend_from_slice(b",\"creationTimestamp\":\"");
    let timestamp = crate::clock::Rfc3339(d.creation_timestamp);
    match timestamp.bytes() {
        Some(bytes) => out.extend_from_slice(&bytes),
        None => out.extend_from_slice(timestamp.to_string().as_bytes()),
    }
    out.push(b'"');
}

/// Writes a number in decimal, as serde_json does.
fn write_number(out: &mut Vec<u8>, mut n: u64, negative: bool) {
    let mut digits = [0; 21];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        at -= 1;
        digits[at] = b'-';
    }
    out.extend_from_slice(&digits[at..]);
}

/// Room for the derived metadata that [`StoredObject::json`] splices in: a uid, two 20-digit
/// numbers, a timestamp and the names (~120 bytes for most objects).
pub const DERIVED_JSON_ROOM: usize = 176;

impl StoredObject {
    /// Builds the served object from stored content, the namespace the key settled on, and derived metadata.
    pub fn new(key: ObjectKey, location: Option<Location>, mut content: Value, derived: Derived) -> Self {
        let meta = metadata_mut(&mut content);
        settle_metadata(&key, meta);
        // Callers pass content without derived metadata (files never hold it): removed here too, so
        // that it is served once, where it is spliced.
        for field in SPLICED_FIELDS {
            meta.remove(field);
        }
        let labels = match crate::defaults::labels(&key.gk, &content) {
            Some(served) => Labels::of(Some(&served)),
            None => Labels::of(content.pointer("/metadata/labels")),
        };
        let (document, splice) = serialize_served(content);
        Self::assemble(key, location, derived, labels, document, splice)
    }

    /// [`StoredObject::new`] of [`strip_derived`] of a document held as the compact JSON that
    /// serde_json writes, without building its `Value`: `metadata` alone is parsed, the other
    /// members are copied as they are. Building the objects of an initial sync is most of its
    /// apply, and this is several times cheaper. `None` where it is not enough: the kinds whose
    /// defaults add labels, a document without `metadata` or with a member name in escapes.
    pub fn from_json(key: ObjectKey, location: Option<Location>, json: &str, derived: Derived) -> Option<Self> {
        if crate::defaults::adds_labels(&key.gk) {
            return None;
        }
        let Members(members) = serde_json::from_str(json).ok()?;
        let (_, metadata) = members.iter().find(|(name, _)| *name == "metadata")?;
        let mut meta: Map<String, Value> = serde_json::from_str(metadata.get()).ok()?;
        strip_derived_fields(&mut meta);
        settle_metadata(&key, &mut meta);
        let labels = Labels::of(meta.get("labels"));
        // Served as `serialize_served` writes them: `kind` and `apiVersion` first.
        let first = ["kind", "apiVersion"].into_iter().filter_map(|f| members.iter().find(|(name, _)| *name == f));
        let rest = members.iter().filter(|(name, _)| *name != "kind" && *name != "apiVersion");
        let mut document = Vec::with_capacity(json.len());
        let mut splice = 0;
        document.push(b'{');
        for (i, (name, value)) in first.chain(rest).enumerate() {
            if i > 0 {
                document.push(b',');
            }
            write_json(&mut document, name);
            document.push(b':');
            match *name == "metadata" {
                true => {
                    write_json(&mut document, &meta);
                    splice = document.len() - 1;
                }
                false => document.extend_from_slice(value.get().as_bytes()),
            }
        }
        document.push(b'}');
        Some(Self::assemble(key, location, derived, labels, document.into_boxed_slice(), splice))
    }

    fn assemble(
        key: ObjectKey,
        location: Option<Location>,
        derived: Derived,
        labels: Labels,
        document: Box<[u8]>,
        splice: usize,
    ) -> Self {
        let generation = crate::registry::has_generation(&key.gk);
        StoredObject { key, location, derived, labels, document, splice, generation, defaulted: Default::default() }
    }

    /// The served JSON: the document with the derived metadata at the end of `metadata`
    /// (`uid`, `resourceVersion`, `generation` for the kinds that have one, `creationTimestamp`).
    pub fn json(&self) -> Bytes {
        let mut json = Vec::with_capacity(self.document.len() + DERIVED_JSON_ROOM);
        self.append_json(&mut json);
        Bytes::from(json)
    }

    /// Appends the served JSON (see [`StoredObject::json`]) to `out`, for answers that hold many.
    pub fn append_json(&self, out: &mut Vec<u8>) {
        let (head, tail) = self.document.split_at(self.splice);
        out.extend_from_slice(head);
        write_members(self, out);
        out.extend_from_slice(tail);
    }

    /// The length of the served JSON.
    pub fn json_len(&self) -> usize {
        let mut members = Vec::with_capacity(DERIVED_JSON_ROOM);
        write_members(self, &mut members);
        self.document.len() + members.len()
    }

    /// The served JSON without the derived metadata: for readers that look for what the document
    /// holds (its `kind` and `apiVersion` first, a field's name) without splicing it in.
    pub fn document_json(&self) -> &[u8] {
        &self.document
    }

    /// The served object.
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json()).unwrap_or_else(|e| unreachable!("stored JSON parses: {e}"))
    }

    /// The object as it is stored in git: the served object without derived metadata.
    pub fn content(&self) -> Value {
        let value = serde_json::from_slice(&self.document).unwrap_or_else(|e| unreachable!("stored JSON parses: {e}"));
        strip_derived(value)
    }

    /// The same object at another resourceVersion (a DELETED event carries the deletion's).
    pub fn at_revision(&self, resource_version: u64) -> Self {
        let derived = Derived { resource_version, ..self.derived.clone() };
        StoredObject { derived, defaulted: Default::default(), ..self.clone() }
    }
}

/// The derived fields [`StoredObject::json`] splices in.
const SPLICED_FIELDS: [&str; 4] = ["uid", "resourceVersion", "generation", "creationTimestamp"];

/// The members of a JSON object, in order, their values as they are written. Member names must
/// be free of escapes, and appear once (the JSON serde_json writes of a `Value`).
struct Members<'a>(Vec<(&'a str, &'a serde_json::value::RawValue)>);

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members: Vec<(&'de str, &'de serde_json::value::RawValue)> = Vec::new();
                while let Some(member) = map.next_entry()? {
                    if members.iter().any(|(name, _)| *name == member.0) {
                        return Err(serde::de::Error::custom("a member appears twice"));
                    }
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// What [`StoredObject::new`] settles in `metadata`: the namespace of the key, or none.
fn settle_metadata(key: &ObjectKey, meta: &mut Map<String, Value>) {
    if !key.namespace.is_empty() {
        meta.insert("namespace".into(), Value::String(key.namespace.to_string()));
    } else {
        meta.remove("namespace");
    }
}

fn write_json(out: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
    serde_json::to_writer(out, value).unwrap_or_else(|e| unreachable!("JSON values serialize: {e}"));
}

/// An object's served JSON, boxed (`to_vec` leaves up to half of its buffer unused, for the
/// object's lifetime), and the offset of the closing brace of its `metadata`, which it has.
fn serialize_served(content: Value) -> (Box<[u8]>, usize) {
    let Value::Object(map) = served_order(content) else { unreachable!("metadata was just set: an object") };
    let mut json = vec![b'{'];
    let mut splice = 0;
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        // What `serde_json::to_vec` writes for the whole map, a member at a time.
        write_json(&mut json, key);
        json.push(b':');
        write_json(&mut json, value);
        if key == "metadata" {
            splice = json.len() - 1;
        }
    }
    json.push(b'}');
    (json.into_boxed_slice(), splice)
}

/// `kind` and `apiVersion` first, as kube-apiserver serializes objects (clients that report
/// decoding errors by column, kube's among them, see the same positions); files keep their order.
fn served_order(content: Value) -> Value {
    let Value::Object(mut map) = content else { return content };
    let mut served = serde_json::Map::with_capacity(map.len());
    for key in ["kind", "apiVersion"] {
        // Shifted out, not swapped: the other keys keep the document's order.
        if let Some(value) = map.shift_remove(key) {
            served.insert(key.to_string(), value);
        }
    }
    served.extend(map);
    Value::Object(served)
}

/// The served JSON's prefix up to `apiVersion`'s value, for readers that want it without parsing.
pub fn served_prefix(kind: &str, api_version: &str) -> String {
    format!("{{\"kind\":\"{kind}\",\"apiVersion\":\"{api_version}\",")
}

/// An object's labels, sorted by key, in one allocation (every stored object carries them): for
/// each label, the lengths of its key and value (`u32`, little endian), then their bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels(Box<[u8]>);

impl Labels {
    /// The string-valued entries of a `metadata.labels` map.
    pub fn of(labels: Option<&Value>) -> Self {
        let mut entries: Vec<(&str, &str)> = labels
            .and_then(Value::as_object)
            .map(|l| l.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?))).collect())
            .unwrap_or_default();
        entries.sort_unstable();
        let mut packed = Vec::with_capacity(entries.iter().map(|(k, v)| 8 + k.len() + v.len()).sum());
        for (key, value) in entries {
            for length in [key.len(), value.len()] {
                packed.extend_from_slice(&u32::try_from(length).unwrap_or(u32::MAX).to_le_bytes());
            }
            packed.extend_from_slice(key.as_bytes());
            packed.extend_from_slice(value.as_bytes());
        }
        Labels(packed.into_boxed_slice())
    }

    /// The value of a label. A scan, not a binary search: objects have few labels, and a key of
    /// another length is passed over without comparing bytes (selectors of watches read labels
    /// for every event).
    pub fn get(&self, key: &str) -> Option<&str> {
        let mut rest = &self.0[..];
        while !rest.is_empty() {
            let length = |at: usize| Some(u32::from_le_bytes(rest.get(at..at + 4)?.try_into().ok()?) as usize);
            let (k, v) = (length(0)?, length(4)?);
            let entry = rest.get(8..8 + k + v)?;
            if k == key.len() && &entry[..k] == key.as_bytes() {
                return std::str::from_utf8(&entry[k..]).ok();
            }
            rest = &rest[8 + k + v..];
        }
        None
    }
}

/// `metadata` of an object as a mutable map, created if missing.
pub fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = Value::Object(Map::new());
    }
    object["metadata"].as_object_mut().unwrap_or_else(|| unreachable!("metadata was just made an object"))
}

/// Removes the derived metadata fields. `managedFields` stay: field ownership is state that
/// server-side apply keeps in git.
pub fn strip_derived(mut object: Value) -> Value {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        strip_derived_fields(meta);
    }
    object
}

fn strip_derived_fields(meta: &mut Map<String, Value>) {
    for field in DERIVED_FIELDS {
        meta.remove(field);
    }
}

/// Whether a change bumps `generation`: anything outside `metadata`, and outside `status` when the
/// type has a status subresource.
pub fn spec_changed(old: &Value, new: &Value, status_subresource: bool) -> bool {
    let counted = |k: &str| k != "metadata" && !(status_subresource && k == "status");
    let outside = |v: &Value| -> Map<String, Value> {
        v.as_object()
            .map(|m| m.iter().filter(|(k, _)| counted(k)).map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    };
    outside(old) != outside(new)
}

impl Derived {
    /// The derived metadata after the content changed from `old` to `new`.
    pub fn after_change(&self, resource_version: u64, old: &Value, new: &Value, status_subresource: bool) -> Derived {
        let generation = self.generation + i64::from(spec_changed(old, new, status_subresource));
        Derived { resource_version, generation, ..self.clone() }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn labels_are_found_by_key_whatever_their_order_and_length() {
        let long = "v".repeat(300);
        let labels =
            json!({"tier": "web", "app.kubernetes.io/name": "shop", "n": 3, "é": "ü", "long": long, "": "empty"});
        let packed = Labels::of(Some(&labels));
        assert_eq!(packed.get("tier"), Some("web"));
        assert_eq!(packed.get("app.kubernetes.io/name"), Some("shop"));
        assert_eq!(packed.get("é"), Some("ü"));
        assert_eq!(packed.get("long"), Some(long.as_str()));
        assert_eq!(packed.get(""), Some("empty"));
        assert_eq!(packed.get("n"), None, "only string values are labels");
        assert_eq!(packed.get("zzz"), None);
        assert_eq!(packed.get("a"), None);
        assert_eq!(Labels::of(None).get("tier"), None);
        assert_eq!(Labels::of(Some(&json!("not a map"))).get("tier"), None);
    }

    #[test]
    fn keys_share_their_kind_and_namespace_and_the_unused_ones_are_dropped() {
        let gk = || GroupKind::from_api_version("v1", "ConfigMap");
        let (a, b) = (ObjectKey::new(gk(), "shared-ns", "a"), ObjectKey::new(gk(), "shared-ns", "b"));
        assert!(Arc::ptr_eq(&a.gk, &b.gk) && Arc::ptr_eq(&a.namespace, &b.namespace));
        assert_eq!((a.gk.kind.as_str(), &*a.namespace, a.name.as_str()), ("ConfigMap", "shared-ns", "a"));
        // Namespaces that come and go do not pile up: once no key uses one, a sweep drops it.
        for n in 0..2_000 {
            ObjectKey::new(gk(), format!("gone-{n}"), "x");
        }
        let held = SHARED.0.lock().unwrap().namespaces.iter().filter(|n| n.starts_with("gone-")).count();
        assert!(held < 1_000, "{held} namespaces no key uses are still held");
        assert!(SHARED.0.lock().unwrap().namespaces.contains("shared-ns"), "one in use stays");
    }

    #[test]
    fn keys_are_ordered_by_their_parts_as_text_shared_or_not() {
        let kinds = [("v1", "ConfigMap"), ("v1", "Secret"), ("apps/v1", "Deployment"), ("example.dev/v1", "ConfigMap")];
        let mut keys = Vec::new();
        for (api_version, kind) in kinds {
            for namespace in ["", "a", "b", "ab"] {
                for name in ["x", "y", "x-1", "Y"] {
                    keys.push(ObjectKey::new(GroupKind::from_api_version(api_version, kind), namespace, name));
                }
            }
        }
        // A key whose parts are not the shared ones compares the same.
        let unshared = |k: &ObjectKey| {
            let parts =
                KeyParts { gk: Arc::new((*k.gk).clone()), namespace: Arc::from(&*k.namespace), name: k.name.clone() };
            ObjectKey(Arc::new(parts))
        };
        // Displayed as uids are derived from it (see `created_uid`): the text must not change.
        let shown: Vec<String> = [&keys[5], &keys[32], &keys[48]].iter().map(|k| k.to_string()).collect();
        assert_eq!(shown, ["ConfigMap a/y", "Deployment.apps x", "ConfigMap.example.dev x"]);
        let text = |k: &ObjectKey| (k.gk.group.clone(), k.gk.kind.clone(), k.namespace.to_string(), k.name.clone());
        for a in &keys {
            for b in &keys {
                assert_eq!(a.cmp(b), text(a).cmp(&text(b)), "{a} and {b}");
                assert_eq!(unshared(a).cmp(b), text(a).cmp(&text(b)), "{a} and {b}");
                assert_eq!(a == b, text(a) == text(b));
            }
        }
    }

    #[test]
    fn an_object_built_from_its_json_is_the_one_built_from_its_value() {
        let derived = Derived {
            resource_version: 42,
            uid: crate::uid::stable_uid("u-1"),
            creation_timestamp: 1_700_000_000,
            generation: 3,
        };
        let cm = || GroupKind::from_api_version("v1", "ConfigMap");
        let cases = [
            (
                ObjectKey::new(cm(), "ns", "a"),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns", "labels": {"x": "1", "n": 2}}, "data": {"k": "v"}}),
            ),
            // Served with kind and apiVersion first, whatever the file's order.
            (
                ObjectKey::new(cm(), "ns", "a"),
                json!({"data": {"k": "v"}, "metadata": {"name": "a"}, "apiVersion": "v1", "kind": "ConfigMap"}),
            ),
            // Derived metadata in the file is dropped (each removal moves the last member), the
            // namespace set to the key's, or removed for a cluster-scoped one.
            (
                ObjectKey::new(cm(), "default", "b"),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"resourceVersion": "9", "name": "b", "uid": "x", "labels": {}, "generation": 7, "annotations": {"a": "b"}, "selfLink": "/x", "creationTimestamp": null}}),
            ),
            (
                ObjectKey::new(GroupKind::from_api_version("rbac.authorization.k8s.io/v1", "ClusterRole"), "", "c"),
                json!({"kind": "ClusterRole", "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": {"namespace": "stray", "name": "c"}, "rules": []}),
            ),
            (
                ObjectKey::new(cm(), "other", "d"),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "ns", "name": "d", "managedFields": [{"manager": "m"}]}, "data": {"é": "ü \" \\ \n \u{0001}", "f": 1.5, "big": 18446744073709551615u64, "neg": -3, "e": 1e300, "t": true, "z": null}}),
            ),
            (ObjectKey::new(cm(), "ns", "e"), json!({"metadata": {"name": "e"}})),
            (
                ObjectKey::new(GroupKind::from_api_version("example.dev/v1", "Widget"), "ns", "w"),
                json!({"apiVersion": "example.dev/v1", "kind": "Widget", "spec": {"metadata": {"x": 1}, "kind": "inner"}, "metadata": {"name": "w"}, "status": {}}),
            ),
        ];
        for (key, content) in cases {
            let json = serde_json::to_string(&content).unwrap();
            let from_value = StoredObject::new(key.clone(), None, strip_derived(content), derived.clone());
            let from_json = StoredObject::from_json(key, None, &json, derived.clone()).expect(&json);
            assert_eq!(String::from_utf8_lossy(&from_json.document), String::from_utf8_lossy(&from_value.document));
            assert_eq!((from_json.splice, from_json.generation), (from_value.splice, from_value.generation));
            assert_eq!(from_json.labels, from_value.labels);
            assert_eq!(from_json.json(), from_value.json());
        }
        // Where it is not enough, the caller builds the object from its value.
        let namespace = ObjectKey::new(GroupKind::from_api_version("v1", "Namespace"), "", "n");
        let declined = [
            (namespace, r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"n"}}"#),
            (ObjectKey::new(cm(), "ns", "a"), r#"{"apiVersion":"v1","kind":"ConfigMap"}"#),
            (
                ObjectKey::new(cm(), "ns", "a"),
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"d\u0061ta":{}}"#,
            ),
            (ObjectKey::new(cm(), "ns", "a"), r#"{"kind":"ConfigMap","metadata":{"name":"a"},"kind":"Secret"}"#),
            (ObjectKey::new(cm(), "ns", "a"), r#"{"kind":"ConfigMap","metadata":[]}"#),
        ];
        for (key, json) in declined {
            assert!(StoredObject::from_json(key, None, json, derived.clone()).is_none(), "{json}");
        }
    }

    /// The served JSON as it was built before the derived metadata was spliced in: inserted into
    /// the object's metadata, then serialized whole.
    fn inserted(key: &ObjectKey, mut content: Value, derived: &Derived) -> Vec<u8> {
        let meta = metadata_mut(&mut content);
        match key.namespace.is_empty() {
            false => meta.insert("namespace".into(), Value::String(key.namespace.to_string())),
            true => meta.remove("namespace"),
        };
        meta.insert("uid".into(), Value::String(derived.uid.to_string()));
        meta.insert("resourceVersion".into(), Value::String(derived.resource_version.to_string()));
        if crate::registry::has_generation(&key.gk) {
            meta.insert("generation".into(), Value::from(derived.generation));
        }
        meta.insert("creationTimestamp".into(), Value::String(crate::clock::rfc3339(derived.creation_timestamp)));
        serde_json::to_vec(&served_order(content)).unwrap()
    }

    #[test]
    fn derived_metadata_is_spliced_where_it_was_inserted() {
        let derived = Derived {
            resource_version: 18_446_744_073_709_551_615,
            uid: crate::uid::stable_uid("seed"),
            creation_timestamp: 1_795_612_057,
            generation: i64::MIN,
        };
        let (cm, deployment, namespace) = (
            GroupKind::from_api_version("v1", "ConfigMap"),
            GroupKind::from_api_version("apps/v1", "Deployment"),
            GroupKind::from_api_version("v1", "Namespace"),
        );
        let cases = [
            (
                ObjectKey::new(cm.clone(), "ns", "a"),
                json!({"data": {"k": "v"}, "metadata": {"name": "a"}, "apiVersion": "v1", "kind": "ConfigMap"}),
            ),
            // Members after metadata, metadata's own after name, a namespace replaced in place.
            (
                ObjectKey::new(deployment, "ns", "d"),
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"namespace": "other", "name": "d", "labels": {"app": "é\"\n"}}, "spec": {"replicas": 2}}),
            ),
            // Cluster-scoped: a namespace in the file is dropped.
            (
                ObjectKey::new(namespace.clone(), "", "n"),
                json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "n", "namespace": "x", "annotations": {}}}),
            ),
            // Empty metadata, and none at all.
            (
                ObjectKey::new(namespace.clone(), "", "e"),
                json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {}}),
            ),
            (ObjectKey::new(namespace, "", "m"), json!({"kind": "Namespace", "apiVersion": "v1"})),
            // A custom resource with a field named like metadata deeper down.
            (
                ObjectKey::new(GroupKind::from_api_version("example.dev/v1", "Widget"), "ns", "w"),
                json!({"apiVersion": "example.dev/v1", "kind": "Widget", "spec": {"metadata": {"x": 1}}, "metadata": {"name": "w"}, "status": {}}),
            ),
        ];
        for (key, content) in cases {
            let stored = StoredObject::new(key.clone(), None, content.clone(), derived.clone());
            let expected = inserted(&key, content.clone(), &derived);
            assert_eq!(String::from_utf8_lossy(&stored.json()), String::from_utf8_lossy(&expected));
            assert_eq!(stored.json_len(), expected.len());
            let mut appended = b"[".to_vec();
            stored.append_json(&mut appended);
            assert_eq!(appended[1..], expected[..]);
            assert_eq!(stored.value(), serde_json::from_slice::<Value>(&expected).unwrap());
            assert_eq!(stored.content(), strip_derived(stored.value()));
            // Derived metadata in the content is served once, where it is spliced.
            let mut with_derived = content;
            metadata_mut(&mut with_derived).insert("uid".into(), json!("from-a-file"));
            let again = StoredObject::new(key, None, with_derived, derived.clone());
            assert_eq!(again.json(), stored.json());
            let later = stored.at_revision(7);
            assert_eq!(later.value()["metadata"]["resourceVersion"], "7");
            assert_eq!(strip_derived(later.value()), strip_derived(stored.value()));
        }
    }

    /// A store holds one for each object, in an `Arc` (16 bytes more): within 176 bytes, that is
    /// jemalloc's 192-byte class. A field that grows it past shows here first.
    #[test]
    fn a_stored_object_fits_in_176_bytes() {
        assert!(std::mem::size_of::<StoredObject>() <= 176, "{} bytes", std::mem::size_of::<StoredObject>());
    }
}
