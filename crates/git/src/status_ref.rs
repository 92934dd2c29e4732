//! The status ref, `refs/gitbacked/status/<branch>`: where the machine's bookkeeping of the branch's
//! objects (`status`, `metadata.managedFields`) is kept when it is not written into people's files.
//!
//! A controller writing status every few seconds would otherwise bury the branch's history, and
//! server-side apply's field ownership would fill people's files with entries `kubectl get` hides.
//! On the status ref each object with bookkeeping has a document of its own (its `apiVersion`,
//! `kind`, name, namespace, uid, and the parts kept there), at a path fixed by its key. What is
//! served is the branch's document with those parts replaced by the status ref's: when the ref holds
//! a document for an object (of the same uid), its parts are the object's, present or absent; the
//! branch document's own are served otherwise. Both refs move together: a write that changes both
//! is one atomic push, a compare-and-swap on each, so every process on the remote sees them agree.

use gitbacked_core::registry::{GroupKind, Registry};
use gitbacked_core::{ObjectKey, object};
use serde_json::{Map, Value};

use crate::layout;

/// The ref that keeps the bookkeeping of `branch`'s objects: `refs/gitbacked/status/<branch>`.
pub fn status_ref(branch: &str) -> String {
    format!("refs/gitbacked/status/{branch}")
}

/// Where a part of every object is kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    /// In the object's document on the branch, like the rest of it.
    #[default]
    Inline,
    /// On the status ref (see [`status_ref`]).
    Ref,
}

impl std::str::FromStr for Placement {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "inline" => Ok(Placement::Inline),
            "ref" => Ok(Placement::Ref),
            other => Err(format!("{other:?} is neither `inline` nor `ref`")),
        }
    }
}

/// Where the bookkeeping of the branch's objects is kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bookkeeping {
    /// `status`.
    pub status: Placement,
    /// `metadata.managedFields`.
    pub managed_fields: Placement,
}

/// What the status ref holds for one object.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Overlay {
    /// The object it belongs to: a document left behind by an object that was deleted never
    /// reaches another of the same name.
    pub(crate) uid: Box<str>,
    status: Option<Value>,
    managed_fields: Option<Value>,
}

impl Bookkeeping {
    /// Whether anything is kept on the status ref.
    pub fn uses_ref(self) -> bool {
        self.status == Placement::Ref || self.managed_fields == Placement::Ref
    }

    /// The parts of `object` kept on the status ref: `(status, managedFields)`.
    fn parts(self, object: &Value) -> (Option<&Value>, Option<&Value>) {
        let status = (self.status == Placement::Ref).then(|| object.get("status")).flatten();
        let managed = (self.managed_fields == Placement::Ref).then(|| object.pointer("/metadata/managedFields"));
        (status, managed.flatten())
    }

    /// Whether `object` holds any part kept on the status ref.
    pub(crate) fn holds(self, object: &Value) -> bool {
        let (status, managed) = self.parts(object);
        status.is_some() || managed.is_some()
    }

    /// `object` without the parts kept on the status ref.
    pub(crate) fn without(self, mut object: Value) -> Value {
        self.set(&mut object, None, None);
        object
    }

    /// `object` with the parts kept on the status ref taken from `from` (present or absent).
    pub(crate) fn with_parts_of(self, mut object: Value, from: &Value) -> Value {
        let (status, managed) = self.parts(from);
        let (status, managed) = (status.cloned(), managed.cloned());
        self.set(&mut object, status, managed);
        object
    }

    fn set(self, object: &mut Value, status: Option<Value>, managed: Option<Value>) {
        let Some(map) = object.as_object_mut() else { return };
        if self.status == Placement::Ref {
            match status {
                Some(status) => drop(map.insert("status".into(), status)),
                None => drop(map.shift_remove("status")),
            }
        }
        if self.managed_fields == Placement::Ref {
            match managed {
                Some(managed) => drop(object::metadata_mut(object).insert("managedFields".into(), managed)),
                None => drop(object::metadata_mut(object).shift_remove("managedFields")),
            }
        }
    }

    /// Serves `object` (of uid `uid`) with the parts `overlay` holds for it; a document of another
    /// uid (left by a deleted namesake) changes nothing.
    pub(crate) fn overlay(self, object: &mut Value, uid: &str, overlay: Option<&Overlay>) {
        if let Some(o) = overlay.filter(|o| &*o.uid == uid) {
            self.set(object, o.status.clone(), o.managed_fields.clone());
        }
    }

    /// The status ref's document for `object` (of key `key` and uid `uid`): its identity and the
    /// parts kept on the ref.
    pub(crate) fn document(self, key: &ObjectKey, uid: &str, object: &Value) -> Value {
        let (status, managed) = self.parts(object);
        let mut metadata = Map::new();
        metadata.insert("name".into(), Value::String(key.name.clone()));
        if !key.namespace.is_empty() {
            metadata.insert("namespace".into(), Value::String(key.namespace.to_string()));
        }
        metadata.insert("uid".into(), Value::String(uid.to_string()));
        if let Some(managed) = managed {
            metadata.insert("managedFields".into(), managed.clone());
        }
        let mut document = Map::new();
        document.insert("apiVersion".into(), object.get("apiVersion").cloned().unwrap_or(Value::Null));
        document.insert("kind".into(), Value::String(key.gk.kind.clone()));
        document.insert("metadata".into(), Value::Object(metadata));
        if let Some(status) = status {
            document.insert("status".into(), status.clone());
        }
        Value::Object(document)
    }
}

impl Overlay {
    /// Reads a document of the status ref: the object it is for, and what it holds.
    pub(crate) fn read(document: &Value) -> Option<(ObjectKey, Overlay)> {
        let text = |pointer: &str| document.pointer(pointer).and_then(Value::as_str);
        let gk = GroupKind::from_api_version(text("/apiVersion")?, text("/kind")?);
        let namespace = text("/metadata/namespace").unwrap_or_default().to_string();
        let key = ObjectKey::new(gk, namespace, text("/metadata/name")?);
        let overlay = Overlay {
            uid: text("/metadata/uid")?.into(),
            status: document.get("status").cloned(),
            managed_fields: document.pointer("/metadata/managedFields").cloned(),
        };
        Some((key, overlay))
    }
}

/// Where the status ref keeps the document of `key`: its kind's directory, as on the branch, and
/// always a bucket (the ref may hold a document for every object of a namespace).
pub(crate) fn path(registry: &Registry, key: &ObjectKey) -> Option<String> {
    let rt = registry.by_kind(&key.gk)?;
    let namespace = (!key.namespace.is_empty()).then_some(&*key.namespace);
    Some(layout::canonical_path(&layout::kind_dir(rt, namespace), &key.name, layout::FLAT_LIMIT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BOTH: Bookkeeping = Bookkeeping { status: Placement::Ref, managed_fields: Placement::Ref };

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                            "managedFields": [{"manager": "kubectl"}]},
               "spec": {"replicas": 2}, "status": {"replicas": 2}})
    }

    fn key() -> ObjectKey {
        ObjectKey::new(GroupKind::from_api_version("apps/v1", "Deployment"), "default", "web")
    }

    #[test]
    fn a_document_of_the_ref_reads_back_as_the_parts_it_was_made_of() {
        let document = BOTH.document(&key(), "u-1", &deployment());
        assert_eq!(
            document,
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "web", "namespace": "default", "uid": "u-1",
                                "managedFields": [{"manager": "kubectl"}]},
                   "status": {"replicas": 2}})
        );
        let (read_key, overlay) = Overlay::read(&document).unwrap();
        assert_eq!(read_key, key());
        let mut served = BOTH.without(deployment());
        assert!(!BOTH.holds(&served));
        BOTH.overlay(&mut served, "u-1", Some(&overlay));
        assert_eq!(served, deployment());
    }

    #[test]
    fn the_ref_decides_the_parts_it_keeps_present_or_absent_for_its_uid_only() {
        let only_status = Bookkeeping { status: Placement::Ref, managed_fields: Placement::Inline };
        let (_, overlay) = Overlay::read(&only_status.document(&key(), "u-1", &json!({"apiVersion": "apps/v1"})))
            .expect("a document without parts is one");
        let mut served = deployment();
        only_status.overlay(&mut served, "u-2", Some(&overlay));
        assert_eq!(served, deployment(), "a namesake's document changes nothing");
        only_status.overlay(&mut served, "u-1", Some(&overlay));
        assert_eq!(served.get("status"), None, "no status on the ref: none served");
        assert!(served.pointer("/metadata/managedFields").is_some(), "managedFields stay inline");
        assert_eq!(only_status.with_parts_of(served, &deployment()), deployment());
    }

    #[test]
    fn placements_read_as_the_command_line_spells_them() {
        assert_eq!("ref".parse::<Placement>(), Ok(Placement::Ref));
        assert_eq!("inline".parse::<Placement>(), Ok(Placement::Inline));
        assert!("side".parse::<Placement>().is_err());
        assert!(!Bookkeeping::default().uses_ref());
    }
}
