//! The garbage collector: what kube-controller-manager's does, for the objects kept on the branch.
//!
//! An object lists its owners in `metadata.ownerReferences` (kind, name and uid). For each one, the
//! owner is *solid* (an object of that kind and name with that uid exists), *dangling* (none does:
//! it was deleted, or deleted and created again with a new uid) or *waiting* (it is being deleted
//! in the foreground). As kube-controller-manager decides:
//! - with a solid owner, the object stays, and references to dangling or waiting owners are removed;
//! - with no solid owner but a waiting one, the object is deleted in the foreground too;
//! - with only dangling owners, it is deleted (in the background).
//!
//! An owner deleted with `propagationPolicy: Orphan` carries the `orphan` finalizer: its dependents
//! lose their reference to it, then the finalizer goes and the owner with it. One deleted with
//! `Foreground` carries `foregroundDeletion` until no object names it as owner any more.
//!
//! An owner of a kind that is not served, or named without a uid, cannot be looked up, so its
//! dependents are left alone.
//!
//! The collector keeps an index of owner references, updated from the store's events, so each
//! change costs what it touches. Every write goes through the API, with the uid (and for updates
//! the resourceVersion) of what was looked at as precondition: a write that lost a race fails, and
//! the object is looked at again.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tracing::{debug, warn};

use gitbacked_apiserver::Api;
use gitbacked_apiserver::api::{PatchType, Target, WriteOptions};
use gitbacked_apiserver::finalizers::{FOREGROUND, ORPHAN};
use gitbacked_core::{EventType, GroupKind, ObjectKey, Reason, StatusError, StoredObject};

/// Why the collector could not carry out a step; the object is looked at again.
#[derive(Debug, thiserror::Error)]
enum GcError {
    /// The object's kind is not served any more.
    #[error("{0} is not served")]
    NotServed(String),
    /// The API refused the write (a lost race is a 409 Conflict).
    #[error(transparent)]
    Api(#[from] StatusError),
}

/// How long the collector waits before looking again at objects whose writes failed.
const RETRY: Duration = Duration::from_secs(1);

/// One entry of `metadata.ownerReferences`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct OwnerRef {
    api_version: String,
    kind: String,
    name: String,
    uid: String,
}

/// What an owner reference points at now.
#[derive(Debug, PartialEq, Eq)]
enum Owner {
    Solid,
    Dangling,
    Waiting,
}

/// The owner references of every object that has any, both ways.
#[derive(Default)]
struct Index {
    owners: HashMap<ObjectKey, Vec<OwnerRef>>,
    dependents: HashMap<String, BTreeSet<ObjectKey>>,
}

impl Index {
    /// Records the object's current owner references (none for a deleted object); returns the
    /// ones it had.
    fn set(&mut self, key: &ObjectKey, refs: Vec<OwnerRef>) -> Vec<OwnerRef> {
        let before = self.owners.remove(key).unwrap_or_default();
        for old in &before {
            if let Some(set) = self.dependents.get_mut(&old.uid) {
                set.remove(key);
                if set.is_empty() {
                    self.dependents.remove(&old.uid);
                }
            }
        }
        if !refs.is_empty() {
            for r in &refs {
                self.dependents.entry(r.uid.clone()).or_default().insert(key.clone());
            }
            self.owners.insert(key.clone(), refs);
        }
        before
    }

    fn dependents_of(&self, uid: &str) -> Vec<ObjectKey> {
        self.dependents.get(uid).map(|set| set.iter().cloned().collect()).unwrap_or_default()
    }
}

/// Whether the served JSON of an object holds `text`: a check before parsing it.
fn mentions(object: &StoredObject, text: &str) -> bool {
    std::str::from_utf8(object.document_json()).is_ok_and(|json| json.contains(text))
}

/// The owner references of a served object; none without the field (checked without parsing).
fn owner_refs(object: &StoredObject) -> Vec<OwnerRef> {
    if !mentions(object, "\"ownerReferences\"") {
        return Vec::new();
    }
    let value = object.value();
    let refs = value.pointer("/metadata/ownerReferences").and_then(Value::as_array);
    let field = |r: &Value, name: &str| r.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
    refs.into_iter()
        .flatten()
        .map(|r| OwnerRef {
            api_version: field(r, "apiVersion"),
            kind: field(r, "kind"),
            name: field(r, "name"),
            uid: field(r, "uid"),
        })
        .collect()
}

/// The finalizers of an object that is being deleted; none when it is not.
fn terminating_finalizers(object: &StoredObject) -> Vec<String> {
    if !mentions(object, "\"deletionTimestamp\"") {
        return Vec::new();
    }
    let value = object.value();
    let finalizers = value.pointer("/metadata/finalizers").and_then(Value::as_array);
    finalizers.into_iter().flatten().filter_map(|f| f.as_str().map(str::to_string)).collect()
}

/// The collector's state.
struct Collector {
    api: Api,
    /// A kind kept on the branch: its events are every branch object's.
    anchor: GroupKind,
    index: Index,
    /// Objects to look at: dependents whose owners changed, and owners being deleted.
    dirty: BTreeSet<ObjectKey>,
}

/// Runs the collector until the task is aborted.
pub async fn run(api: Api) {
    let anchor = GroupKind { group: String::new(), kind: "ConfigMap".into() };
    let mut changes = api.storage().subscribe(&anchor);
    let mut collector = Collector { api, anchor, index: Index::default(), dirty: BTreeSet::new() };
    let mut seen = collector.rebuild();
    loop {
        collector.collect().await;
        let retry = !collector.dirty.is_empty();
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(RETRY), if retry => {}
        }
        let events = collector.api.storage().events_since(&collector.anchor, seen);
        match events {
            Ok(events) => {
                for event in events.iter() {
                    seen = seen.max(event.object.derived.resource_version);
                    collector.observe(event.kind, &event.object);
                }
            }
            // Fell out of the event log: read everything again.
            Err(_) => seen = collector.rebuild(),
        }
    }
}

impl Collector {
    /// Indexes every object of the branch; returns the resourceVersion of that state.
    fn rebuild(&mut self) -> u64 {
        let storage = self.api.storage().clone();
        let revision = storage.revision(&self.anchor);
        self.index = Index::default();
        let registry = storage.registry();
        // The kinds whose events the anchor's carry: Leases have a store and a ref of their own.
        for rt in registry.all().filter(|rt| rt.home != gitbacked_core::Home::Leases) {
            for object in storage.list(&rt.group_kind(), None).1 {
                self.observe(EventType::Added, &object);
            }
        }
        revision
    }

    /// Updates the index with a change, and marks what it may concern.
    fn observe(&mut self, kind: EventType, object: &Arc<StoredObject>) {
        let refs = if kind == EventType::Deleted { Vec::new() } else { owner_refs(object) };
        if !refs.is_empty() {
            self.dirty.insert(object.key.clone());
        }
        if kind == EventType::Deleted || !refs.is_empty() || self.index.owners.contains_key(&object.key) {
            // Owners it no longer names may have been waiting for it (foreground deletion).
            for before in self.index.set(&object.key, refs) {
                self.dirty.extend(self.owner_key(&before, &object.key.namespace));
            }
        }
        // Its dependents: the owner was deleted, recreated, or started a deletion.
        self.dirty.extend(self.index.dependents_of(&object.derived.uid));
        if kind != EventType::Deleted && !terminating_finalizers(object).is_empty() {
            self.dirty.insert(object.key.clone());
        }
    }

    /// Looks at every marked object; what could not be written stays marked.
    async fn collect(&mut self) {
        for key in std::mem::take(&mut self.dirty) {
            let Some(object) = self.api.storage().get(&key) else {
                continue;
            };
            if let Err(e) = self.attend(&object).await {
                debug!(object = %key, error = %e, "garbage collection will try again");
                self.dirty.insert(key);
            }
        }
    }

    /// Acts on one object as a dependent, and as an owner being deleted.
    async fn attend(&mut self, object: &StoredObject) -> Result<(), GcError> {
        let refs = self.index.owners.get(&object.key).cloned().unwrap_or_default();
        // An object being deleted (it still has finalizers) is not deleted again: only its own
        // orphan or foreground finalizer is the collector's business.
        let finalizers = terminating_finalizers(object);
        if !refs.is_empty() && finalizers.is_empty() {
            let states: Vec<Owner> = refs.iter().map(|r| self.owner(r, &object.key.namespace)).collect();
            if states.contains(&Owner::Solid) {
                let keep: Vec<&OwnerRef> =
                    refs.iter().zip(&states).filter(|(_, s)| **s == Owner::Solid).map(|(r, _)| r).collect();
                if keep.len() < refs.len() {
                    return self.set_owner_refs(object, &keep).await;
                }
            } else if states.contains(&Owner::Waiting) {
                return self.delete(object, "Foreground").await;
            } else {
                return self.delete(object, "Background").await;
            }
        }
        let dependents = self.index.dependents_of(&object.derived.uid);
        if finalizers.iter().any(|f| f == ORPHAN) {
            for key in &dependents {
                let Some(dependent) = self.api.storage().get(key) else { continue };
                let keep: Vec<&OwnerRef> =
                    self.index.owners.get(key).into_iter().flatten().filter(|r| r.uid != object.derived.uid).collect();
                self.set_owner_refs(&dependent, &keep).await?;
            }
            return self.remove_finalizer(object, &finalizers, ORPHAN).await;
        }
        if finalizers.iter().any(|f| f == FOREGROUND) && dependents.is_empty() {
            return self.remove_finalizer(object, &finalizers, FOREGROUND).await;
        }
        Ok(())
    }

    /// The key of the object an owner reference of an object in `namespace` names; `None` when its
    /// kind is not served.
    fn owner_key(&self, r: &OwnerRef, namespace: &str) -> Option<ObjectKey> {
        let group = r.api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or_default();
        let gk = GroupKind { group: group.to_string(), kind: r.kind.clone() };
        let namespaced = self.api.storage().registry().by_kind(&gk)?.namespaced;
        let namespace = if namespaced { namespace.to_string() } else { String::new() };
        Some(ObjectKey::new(gk, namespace, r.name.clone()))
    }

    /// What an owner reference of an object in `namespace` points at. An owner of a kind that is
    /// not served, or named without a uid, cannot be looked up: it counts as solid, as
    /// kube-controller-manager leaves such a dependent alone.
    fn owner(&self, r: &OwnerRef, namespace: &str) -> Owner {
        // Without a uid (kube-apiserver refuses that, a file may have it) nothing can be judged.
        let Some(key) = self.owner_key(r, namespace).filter(|_| !r.uid.is_empty()) else {
            return Owner::Solid;
        };
        match self.api.storage().get(&key) {
            Some(owner) if owner.derived.uid == r.uid => {
                if terminating_finalizers(&owner).iter().any(|f| f == FOREGROUND) {
                    Owner::Waiting
                } else {
                    Owner::Solid
                }
            }
            _ => Owner::Dangling,
        }
    }

    fn target(&self, key: &ObjectKey) -> Result<Target, GcError> {
        let registry = self.api.storage().registry();
        let rt = registry.by_kind(&key.gk).ok_or_else(|| GcError::NotServed(key.gk.kind.clone()))?.clone();
        let namespace = (!key.namespace.is_empty()).then(|| key.namespace.to_string());
        Ok(Target { version: rt.preferred_version().to_string(), rt, namespace })
    }

    async fn delete(&self, object: &StoredObject, policy: &str) -> Result<(), GcError> {
        let options = json!({"propagationPolicy": policy, "preconditions": {"uid": object.derived.uid}});
        let target = self.target(&object.key)?;
        debug!(object = %object.key, policy, "garbage collecting");
        match self.api.delete(&target, &object.key.name, &options, &write_options()).await {
            Ok(_) => Ok(()),
            Err(e) if e.reason == Reason::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn set_owner_refs(&self, object: &StoredObject, keep: &[&OwnerRef]) -> Result<(), GcError> {
        let refs: Vec<Value> = object
            .value()
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|r| keep.iter().any(|k| r.get("uid").and_then(Value::as_str) == Some(k.uid.as_str())))
            .cloned()
            .collect();
        let refs = if refs.is_empty() { Value::Null } else { Value::Array(refs) };
        self.patch(object, json!({"ownerReferences": refs})).await
    }

    async fn remove_finalizer(&self, object: &StoredObject, finalizers: &[String], gone: &str) -> Result<(), GcError> {
        let left: Vec<&String> = finalizers.iter().filter(|f| *f != gone).collect();
        self.patch(object, json!({"finalizers": left})).await
    }

    /// A merge patch of `metadata`, on the object's resourceVersion and uid.
    async fn patch(&self, object: &StoredObject, mut metadata: Value) -> Result<(), GcError> {
        metadata["resourceVersion"] = json!(object.derived.resource_version.to_string());
        metadata["uid"] = json!(object.derived.uid);
        let target = self.target(&object.key)?;
        let patch = json!({"metadata": metadata});
        let result = self.api.patch(&target, &object.key.name, PatchType::Merge, patch, None, &write_options()).await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.reason == Reason::NotFound => Ok(()),
            Err(e) => {
                if e.reason != Reason::Conflict {
                    warn!(object = %object.key, error = %e.message, "garbage collection could not update the object");
                }
                Err(e.into())
            }
        }
    }
}

fn write_options() -> WriteOptions {
    WriteOptions { field_manager: Some("generic-garbage-collector".into()), ..Default::default() }
}
