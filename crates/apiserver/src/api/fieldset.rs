//! Sets of field paths: the fields of an object a manager owns, as server-side apply records them
//! in `metadata.managedFields` (`fieldsV1`), and the schema facts that decide what each step of a
//! path is: a struct field or map entry (`f:`), the item of a map list (`k:`) or of a set list
//! (`v:`), or an atomic value owned as a whole.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use serde_json::{Map, Value};

use gitbacked_core::schema::Node;

/// One step of a path into an object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// `f:name`: a field of a struct or an entry of a map.
    Field(String),
    /// `k:{...}`: the item of a map list with these key fields, as JSON with sorted keys.
    Key(String),
    /// `v:...`: the item of a set list with this value, as JSON.
    Value(String),
    /// `i:N`: an item by position. Never produced here (lists are keyed or atomic), but read and
    /// written back when another server recorded it.
    Index(usize),
}

impl PathElement {
    /// The element as a `fieldsV1` key.
    fn to_key(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(key) => format!("k:{key}"),
            PathElement::Value(value) => format!("v:{value}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a `fieldsV1` key.
    fn parse(key: &str) -> Option<PathElement> {
        let (kind, rest) = key.split_once(':')?;
        match kind {
            "f" => Some(PathElement::Field(rest.to_string())),
            "k" => match serde_json::from_str::<Value>(rest).ok()? {
                key @ Value::Object(_) => Some(PathElement::Key(canonical_json(&key))),
                _ => None,
            },
            "v" => serde_json::from_str::<Value>(rest).ok().map(|v| PathElement::Value(canonical_json(&v))),
            "i" => rest.parse().ok().map(PathElement::Index),
            _ => None,
        }
    }
}

/// structured-merge-diff's notation, used in conflict messages: `.spec`, `[name="web"]`, `[="x"]`, `[0]`.
impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parsed = |json: &str| serde_json::from_str::<Value>(json).unwrap_or(Value::Null);
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(key) => {
                let fields = match parsed(key) {
                    Value::Object(fields) => fields,
                    _ => Map::new(),
                };
                let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(value) => write!(f, "[={}]", parsed(value)),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path as conflict messages print it: `.spec.template.spec.containers[name="web"].image`.
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(PathElement::to_string).collect()
}

/// A set of field paths, convertible to and from the `fieldsV1` format of managedFields.
///
/// A path is in the set when its last element is a member of the node its prefix leads to; a node
/// can be a member and have children at once (`".": {}` in `fieldsV1`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

/// The empty set, to descend into where a set has no children.
pub(crate) static EMPTY: FieldSet = FieldSet { members: BTreeSet::new(), children: BTreeMap::new() };

impl FieldSet {
    /// The fields an applied configuration sets: its leaves, each item of a keyed or set list,
    /// atomic lists and maps as a whole, empty or null values, and the entries of maps whose keys
    /// are not declared fields (as structured-merge-diff's `ToFieldSet`).
    pub fn from_object(value: &Value, schema: Option<Node<'_>>) -> FieldSet {
        let ty = Ty::root(schema);
        ty.entries(value).map(|entries| collect(entries, ty)).unwrap_or_default()
    }

    /// Decodes `fieldsV1`. Keys that are not path elements are skipped.
    pub fn from_fields_v1(v: &Value) -> FieldSet {
        v.as_object().map(FieldSet::from_fields_map).unwrap_or_default()
    }

    fn from_fields_map(map: &Map<String, Value>) -> FieldSet {
        let mut set = FieldSet::default();
        for (key, inner) in map {
            let Some(pe) = PathElement::parse(key) else { continue };
            let inner = inner.as_object().filter(|o| !o.is_empty());
            let member = inner.is_none_or(|o| o.contains_key("."));
            set.add(pe, member, inner.map(FieldSet::from_fields_map).unwrap_or_default());
        }
        set
    }

    /// Encodes as `fieldsV1`, elements in structured-merge-diff's order (fields, keys, values, indexes).
    pub fn to_fields_v1(&self) -> Value {
        let elements: BTreeSet<&PathElement> = self.members.iter().chain(self.children.keys()).collect();
        let mut out = Map::new();
        for pe in elements {
            let mut inner = Map::new();
            if let Some(child) = self.children.get(pe) {
                if self.members.contains(pe) {
                    inner.insert(".".into(), Value::Object(Map::new()));
                }
                if let Value::Object(fields) = child.to_fields_v1() {
                    inner.extend(fields);
                }
            }
            out.insert(pe.to_key(), Value::Object(inner));
        }
        Value::Object(out)
    }

    /// Adds a path.
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether a path is in the set.
    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// Whether the set has no paths.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    /// The paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, theirs) in &other.children {
            let merged = match out.children.get(pe) {
                Some(ours) => ours.union(theirs),
                None => theirs.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    /// The paths of `self` not in `other` (a path's descendants are not removed with it).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let mut children = BTreeMap::new();
        for (pe, ours) in &self.children {
            let rest = match other.children.get(pe) {
                Some(theirs) => ours.difference(theirs),
                None => ours.clone(),
            };
            if !rest.is_empty() {
                children.insert(pe.clone(), rest);
            }
        }
        FieldSet { members, children }
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.intersection(&other.members).cloned().collect();
        let mut children = BTreeMap::new();
        for (pe, ours) in &self.children {
            if let Some(both) = other.children.get(pe).map(|theirs| ours.intersection(theirs)).filter(|s| !s.is_empty())
            {
                children.insert(pe.clone(), both);
            }
        }
        FieldSet { members, children }
    }

    /// Every path, members of a node before its children's (structured-merge-diff's order).
    pub fn paths(&self) -> Vec<Vec<PathElement>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
        for pe in &self.members {
            let mut path = prefix.clone();
            path.push(pe.clone());
            out.push(path);
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The set below `pe`.
    pub(crate) fn child(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.children.get(pe)
    }

    /// Whether the set claims `pe` itself: as a member or, for a declared struct field, by owning
    /// something below it (structured-merge-diff's `EnsureNamedFieldsAreMembers`, which pruning
    /// uses so that a struct field nobody owns anything in goes away as a whole).
    pub(crate) fn claims(&self, pe: &PathElement, declared: bool) -> bool {
        self.members.contains(pe) || (declared && self.children.contains_key(pe))
    }

    fn add(&mut self, pe: PathElement, member: bool, children: FieldSet) {
        if !children.is_empty() {
            self.children.insert(pe.clone(), children);
        }
        if member {
            self.members.insert(pe);
        }
    }
}

/// The fields below a value, given its entries.
fn collect(entries: Vec<(PathElement, &Value)>, ty: Ty<'_>) -> FieldSet {
    let mut set = FieldSet::default();
    for (pe, value) in entries {
        let child_ty = ty.child(&pe);
        let (leaf, children) = match child_ty.entries(value) {
            Some(grandchildren) => (false, collect(grandchildren, child_ty)),
            None => (true, FieldSet::default()),
        };
        let member = match &pe {
            // An empty struct is owned as such; map entries are owned besides what is in them.
            PathElement::Field(name) => leaf || value.as_object().is_some_and(Map::is_empty) || !ty.declares(name),
            _ => true,
        };
        set.add(pe, member, children);
    }
    set
}

/// Why the items of a list cannot be merged by their keys.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ListError {
    /// An item of a map list is not a map.
    #[error("element {0}: associative list with keys has an element that is not a map")]
    NotAMap(usize),
    /// An item of a map list has none of the key fields.
    #[error("element {index}: associative list with keys has an element that omits key field \"{key}\"")]
    MissingKey {
        /// The item.
        index: usize,
        /// The first key field.
        key: String,
    },
    /// Two items have the same key (map lists) or value (set lists).
    #[error("duplicate entries for key {0}")]
    Duplicate(PathElement),
}

/// A list that cannot be merged, and where it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {error}")]
pub(crate) struct UnmergeableList {
    /// The list's path, as structured-merge-diff prints it.
    path: String,
    /// What is wrong.
    error: ListError,
}

/// Checks that the lists of an applied configuration can be merged: every item of a map list has
/// its keys, and no two items of a map or set list are the same.
pub(crate) fn check_lists(value: &Value, schema: Option<Node<'_>>) -> Result<(), UnmergeableList> {
    check(value, Ty::root(schema), &mut Vec::new())
}

fn check(value: &Value, ty: Ty<'_>, path: &mut Vec<PathElement>) -> Result<(), UnmergeableList> {
    let entries = match value {
        Value::Array(items) => {
            match ty.elements(items).map_err(|error| UnmergeableList { path: path_string(path), error })? {
                Some(elements) => elements.into_iter().zip(items).collect(),
                None => return Ok(()),
            }
        }
        _ => ty.entries(value).unwrap_or_default(),
    };
    for (pe, child) in entries {
        let child_ty = ty.child(&pe);
        path.push(pe);
        check(child, child_ty, path)?;
        path.pop();
    }
    Ok(())
}

/// How a list merges.
enum ListType<'a> {
    /// Replaced as a whole.
    Atomic,
    /// Items are scalars merged by value.
    Set,
    /// Items are objects merged by these key fields.
    Map(Vec<&'a str>),
}

/// A position in an object's schema. Without a schema (`node` is `None`), lists are atomic and
/// maps granular, as structured-merge-diff deduces for untyped values.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ty<'a> {
    node: Option<Node<'a>>,
    /// The top of an object, where `apiVersion`, `kind` and `metadata` are always declared.
    root: bool,
}

impl<'a> Ty<'a> {
    /// The top of an object of `schema`.
    pub(crate) fn root(schema: Option<Node<'a>>) -> Self {
        Ty { node: schema, root: true }
    }

    /// The schema of field `name` (or of a map's entries).
    pub(crate) fn field(&self, name: &str) -> Ty<'a> {
        let node = match self.node {
            Some(node) => node.field(name),
            // Metadata is ObjectMeta even for an object without a schema.
            None if self.root && name == "metadata" => {
                Node::builtin("", "v1", "ConfigMap").and_then(|cm| cm.field("metadata"))
            }
            None => None,
        };
        Ty { node, root: false }
    }

    /// The schema of a list's items.
    pub(crate) fn items(&self) -> Ty<'a> {
        Ty { node: self.node.and_then(|n| n.items()), root: false }
    }

    /// The schema below a path element.
    pub(crate) fn child(&self, pe: &PathElement) -> Ty<'a> {
        match pe {
            PathElement::Field(name) => self.field(name),
            _ => self.items(),
        }
    }

    /// Whether `name` is a declared field of a struct rather than a key of a map.
    pub(crate) fn declares(&self, name: &str) -> bool {
        (self.root && matches!(name, "apiVersion" | "kind" | "metadata"))
            || self.node.and_then(|n| n.properties()).is_some_and(|p| p.contains_key(name))
    }

    /// Whether objects here are replaced as a whole (`x-kubernetes-map-type: atomic`).
    pub(crate) fn is_atomic_map(&self) -> bool {
        self.node.is_some_and(|n| n.map_type() == Some("atomic"))
    }

    /// The list type. Without `x-kubernetes-list-type`, the patch strategy decides as Kubernetes'
    /// schema conversion does: `merge` with a merge key is a map list, without one a set.
    fn list_type(&self) -> ListType<'a> {
        let Some(node) = self.node else { return ListType::Atomic };
        match node.list_type() {
            Some("set") => ListType::Set,
            Some("map") if !node.list_map_keys().is_empty() => ListType::Map(node.list_map_keys()),
            Some(_) => ListType::Atomic,
            None if node.patch_strategies().contains(&"merge") => match node.patch_merge_key() {
                Some(key) => ListType::Map(vec![key]),
                None => ListType::Set,
            },
            None => ListType::Atomic,
        }
    }

    /// The path elements of a list's items, `None` for an atomic list. An error when an item of a
    /// map list has none of the keys, or two items have the same key or value.
    pub(crate) fn elements(&self, items: &[Value]) -> Result<Option<Vec<PathElement>>, ListError> {
        let keys = match self.list_type() {
            ListType::Atomic => return Ok(None),
            ListType::Set => None,
            ListType::Map(keys) => Some(keys),
        };
        let item_ty = self.items();
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let pe = match &keys {
                None => PathElement::Value(canonical_json(item)),
                Some(keys) => item_ty.key_of(keys, item, i)?,
            };
            if !seen.insert(pe.clone()) {
                return Err(ListError::Duplicate(pe));
            }
            out.push(pe);
        }
        Ok(Some(out))
    }

    /// The `k:` element of a map list's item. A missing key field takes its schema default; one
    /// without a default is left out of the key (the built-in schemas here carry no defaults, and
    /// ports are routinely written without `protocol`), but an item needs at least one key.
    fn key_of(&self, keys: &[&str], item: &Value, index: usize) -> Result<PathElement, ListError> {
        let fields = item.as_object().ok_or(ListError::NotAMap(index))?;
        let mut sorted = keys.to_vec();
        sorted.sort_unstable();
        let mut key = Map::new();
        for name in sorted {
            let default = || self.field(name).node.and_then(|n| n.value().get("default"));
            if let Some(v) = fields.get(name).filter(|v| !v.is_null()).or_else(default) {
                key.insert(name.to_string(), canonical(v));
            }
        }
        if key.is_empty() {
            return Err(ListError::MissingKey { index, key: keys.first().copied().unwrap_or_default().to_string() });
        }
        Ok(PathElement::Key(Value::Object(key).to_string()))
    }

    /// The children of a value: the entries of a granular map or the items of a map or set list,
    /// `None` for a leaf (scalars, atomic values, and lists whose items cannot be told apart).
    pub(crate) fn entries<'v>(&self, value: &'v Value) -> Option<Vec<(PathElement, &'v Value)>> {
        match value {
            Value::Object(map) if !self.is_atomic_map() => {
                Some(map.iter().map(|(k, v)| (PathElement::Field(k.clone()), v)).collect())
            }
            Value::Array(items) => {
                let elements = self.elements(items).ok().flatten()?;
                Some(elements.into_iter().zip(items).collect())
            }
            _ => None,
        }
    }
}

/// The value with object keys sorted, so equal values have one JSON form.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            Value::Object(keys.into_iter().map(|k| (k.clone(), canonical(&map[k]))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        _ => value.clone(),
    }
}

fn canonical_json(value: &Value) -> String {
    canonical(value).to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment() -> Option<Node<'static>> {
        Node::builtin("apps", "v1", "Deployment")
    }

    fn field(name: &str) -> PathElement {
        PathElement::Field(name.to_string())
    }

    fn path(names: &[&str]) -> Vec<PathElement> {
        names.iter().map(|n| field(n)).collect()
    }

    #[test]
    fn applied_configuration_owns_its_leaves_keyed_items_and_atomic_values() {
        let config = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["example.com/x"]},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "web", "image": "nginx", "args": ["-g", "daemon off;"],
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "resources": {},
                    }]},
                },
            },
        });
        let set = FieldSet::from_object(&config, deployment());
        assert_eq!(
            set.to_fields_v1(),
            json!({
                "f:apiVersion": {}, "f:kind": {},
                "f:metadata": {"f:finalizers": {"v:\"example.com/x\"": {}}, "f:labels": {"f:app": {}}, "f:name": {}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                            ".": {}, "f:args": {}, "f:image": {}, "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                                ".": {}, "f:containerPort": {}, "f:protocol": {},
                            }},
                            "f:resources": {},
                        }}},
                    },
                },
            })
        );
        let image = [
            path(&["spec", "template", "spec", "containers"]),
            vec![PathElement::Key("{\"name\":\"web\"}".into()), field("image")],
        ]
        .concat();
        assert!(set.has(&image));
        assert_eq!(path_string(&image), ".spec.template.spec.containers[name=\"web\"].image");
        assert!(set.has(&path(&["spec", "selector"])));
        assert!(!set.has(&path(&["spec", "selector", "matchLabels"])));
        assert!(!set.has(&path(&["spec"])));
    }

    #[test]
    fn without_a_schema_lists_are_atomic_and_map_entries_are_owned() {
        let config = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"list": [1, 2], "map": {"k": {"x": 1}}}});
        assert_eq!(
            FieldSet::from_object(&config, None).to_fields_v1(),
            json!({
                "f:metadata": {"f:labels": {"f:a": {}}},
                "f:spec": {".": {}, "f:list": {}, "f:map": {".": {}, "f:k": {".": {}, "f:x": {}}}},
            })
        );
    }

    #[test]
    fn fields_v1_round_trips() {
        let v1 = json!({
            "f:metadata": {"f:finalizers": {".": {}, "v:\"a\"": {}}, "f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}}},
                "f:list": {"i:0": {}},
            },
        });
        let set = FieldSet::from_fields_v1(&v1);
        assert_eq!(set.to_fields_v1(), v1);
        assert!(set.has(&path(&["metadata", "labels"])));
        assert!(set.has(&path(&["metadata", "labels", "app"])));
        assert!(!set.has(&path(&["metadata"])));
        assert!(set.has(&[path(&["spec", "list"]), vec![PathElement::Index(0)]].concat()));
        // Keys are normalized: sorted fields, compact JSON.
        let unsorted = FieldSet::from_fields_v1(&json!({"k:{\"protocol\": \"TCP\", \"port\": 80}": {}}));
        assert_eq!(unsorted.to_fields_v1(), json!({"k:{\"port\":80,\"protocol\":\"TCP\"}": {}}));
        assert!(FieldSet::from_fields_v1(&json!({"bogus": {}, "k:[1]": {}})).is_empty());
    }

    #[test]
    fn set_operations() {
        let a = FieldSet::from_fields_v1(&json!({"f:spec": {"f:a": {}, "f:b": {}}, "f:x": {}}));
        let b = FieldSet::from_fields_v1(&json!({"f:spec": {".": {}, "f:b": {}, "f:c": {}}}));
        assert_eq!(
            a.union(&b).to_fields_v1(),
            json!({"f:spec": {".": {}, "f:a": {}, "f:b": {}, "f:c": {}}, "f:x": {}})
        );
        assert_eq!(a.difference(&b).to_fields_v1(), json!({"f:spec": {"f:a": {}}, "f:x": {}}));
        assert_eq!(a.intersection(&b).to_fields_v1(), json!({"f:spec": {"f:b": {}}}));
        assert!(a.intersection(&FieldSet::default()).is_empty());
        assert!(a.difference(&a).is_empty());
        let paths: Vec<String> = a.union(&b).paths().iter().map(|p| path_string(p)).collect();
        assert_eq!(paths, [".spec", ".x", ".spec.a", ".spec.b", ".spec.c"]);
    }

    #[test]
    fn path_elements_print_as_structured_merge_diff_does() {
        let key = PathElement::Key("{\"containerPort\":80,\"protocol\":\"TCP\"}".into());
        assert_eq!(key.to_string(), "[containerPort=80,protocol=\"TCP\"]");
        assert_eq!(PathElement::Value("\"x\"".into()).to_string(), "[=\"x\"]");
        assert_eq!(PathElement::Index(3).to_string(), "[3]");
    }

    #[test]
    fn keyed_lists_need_keys_and_distinct_items() {
        let missing = json!({"spec": {"template": {"spec": {"containers": [{"image": "nginx"}]}}}});
        assert_eq!(
            check_lists(&missing, deployment()).unwrap_err().to_string(),
            ".spec.template.spec.containers: element 0: associative list with keys has an element that omits key field \"name\""
        );
        let twice = json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}});
        assert_eq!(
            check_lists(&twice, deployment()).unwrap_err().to_string(),
            ".spec.template.spec.containers: duplicate entries for key [name=\"a\"]"
        );
        let finalizers = json!({"metadata": {"finalizers": ["x", "x"]}});
        assert_eq!(
            check_lists(&finalizers, None).unwrap_err().to_string(),
            ".metadata.finalizers: duplicate entries for key [=\"x\"]"
        );
        // A port without its protocol is keyed by the port alone.
        let ports =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}]}]}}}});
        assert!(check_lists(&ports, deployment()).is_ok());
        let set = FieldSet::from_object(&ports, deployment());
        let port = path(&["spec", "template", "spec", "containers"])
            .into_iter()
            .chain([PathElement::Key("{\"name\":\"a\"}".into()), field("ports")])
            .chain([PathElement::Key("{\"containerPort\":80}".into())])
            .collect::<Vec<_>>();
        assert!(set.has(&port));
        // Atomic lists may repeat items.
        let args = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "args": ["x", "x"]}]}}}});
        assert!(check_lists(&args, deployment()).is_ok());
    }
}
