//! The objects the branch's objects imply (see `gitbacked_core::bootstrap`): the Namespace of a
//! namespace that holds objects but has no document, and each namespace's `default`
//! ServiceAccount. They are kept up to date commit by commit, with watch events like any object:
//! one appears (ADDED) when its namespace does, goes (DELETED) with it, and a document that takes
//! its place, or leaves it in place, is a change of it (MODIFIED).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use gitbacked_core::bootstrap::{Appeared, EPOCH, SYSTEM_NAMESPACES, default_service_account, implied_namespace};
use gitbacked_core::registry::{GroupKind, Home};
use gitbacked_core::watch::{EventType, WatchEvent};
use gitbacked_core::{ObjectKey, StoredObject};

use super::{State, revision};

fn namespace_kind() -> GroupKind {
    GroupKind { group: String::new(), kind: "Namespace".into() }
}

fn service_account_kind() -> GroupKind {
    GroupKind { group: String::new(), kind: "ServiceAccount".into() }
}

fn default_account(namespace: &str) -> ObjectKey {
    ObjectKey::new(service_account_kind(), namespace, "default")
}

/// The implied object `key` (a Namespace, or a namespace's `default` ServiceAccount) as it
/// `appeared`.
pub(super) fn implied_object(key: &ObjectKey, appeared: Appeared) -> StoredObject {
    match *key.gk == namespace_kind() {
        true => implied_namespace(&key.name, appeared),
        false => default_service_account(&key.namespace, appeared),
    }
}

impl State {
    /// The implied objects of a new store: the system namespaces' `default` ServiceAccounts.
    pub(super) fn seed_implied(&mut self) {
        if self.home != Home::Branch {
            return;
        }
        for namespace in SYSTEM_NAMESPACES {
            let account = default_service_account(namespace, (1, EPOCH));
            self.implied.insert(default_account(namespace), Arc::new(account));
        }
    }

    fn has_document(&self, key: &ObjectKey) -> bool {
        self.objects.get(&key.gk).is_some_and(|o| o.contains_key(key))
    }

    /// Brings the implied objects of the namespaces a commit's `events` concern in line with the
    /// objects, adding the events of their changes; an object that appears is created at the
    /// commit's `time`.
    pub(super) fn settle_implied(&mut self, seq: u64, time: i64, events: &mut Vec<WatchEvent>) {
        if self.home != Home::Branch {
            return;
        }
        // One pass over the events (all of a repository's at the initial sync): the namespaces
        // they concern, and where the events of the implied objects' keys are.
        let (namespace, account) = (namespace_kind(), service_account_kind());
        let mut affected: BTreeSet<&str> = BTreeSet::new();
        let mut found: HashMap<ObjectKey, usize> = HashMap::new();
        for (i, key) in events.iter().map(|e| &e.object.key).enumerate() {
            let is_namespace = *key.gk == namespace;
            affected.insert(if is_namespace { &key.name } else { &key.namespace });
            if is_namespace || (*key.gk == account && key.name == "default") {
                found.entry(key.clone()).or_insert(i);
            }
        }
        let affected: Vec<String> = affected.into_iter().filter(|ns| !ns.is_empty()).map(String::from).collect();
        for namespace in affected {
            let key = ObjectKey::new(namespace_kind(), "", namespace.clone());
            let system = SYSTEM_NAMESPACES.contains(&namespace.as_str());
            let holds_objects = self.namespaces.contains_key(&namespace);
            let documented = self.has_document(&key);
            let implied = holds_objects && !documented && !system;
            let at = found.get(&key).copied();
            self.settle(key, implied, seq, events, at, |rv| implied_namespace(&namespace, (rv, time)));
            let account = default_account(&namespace);
            let exists = system || documented || holds_objects;
            let implied = exists && !self.has_document(&account);
            let at = found.get(&account).copied();
            self.settle(account, implied, seq, events, at, |rv| default_service_account(&namespace, (rv, time)));
        }
    }

    /// Makes the implied object `key` exist or not, as `wanted` says, with its event. The commit's
    /// event of `key`, if it has one, is `events[at]`.
    fn settle(
        &mut self,
        key: ObjectKey,
        wanted: bool,
        seq: u64,
        events: &mut Vec<WatchEvent>,
        at: Option<usize>,
        make: impl Fn(u64) -> StoredObject,
    ) {
        let next = revision(seq, events.len() as u64 + 1);
        let event = |kind: EventType, events: &[WatchEvent]| at.filter(|&i| events[i].kind == kind);
        match (self.implied.get(&key).cloned(), wanted) {
            (None, true) => {
                // A document went and leaves it implied: to watchers, the object changed.
                let object = match event(EventType::Deleted, events) {
                    Some(i) => {
                        let e = &mut events[i];
                        let object = Arc::new(make(e.object.derived.resource_version));
                        let document = std::mem::replace(&mut e.object, object.clone());
                        (e.kind, e.previous) = (EventType::Modified, Some(document));
                        object
                    }
                    None => {
                        let object = Arc::new(make(next));
                        events.push(WatchEvent::new(EventType::Added, object.clone(), None));
                        object
                    }
                };
                self.implied.insert(key, object);
            }
            (Some(old), false) => {
                self.implied.remove(&key);
                // A document takes its place: to watchers, the object changed.
                match event(EventType::Added, events) {
                    Some(i) => (events[i].kind, events[i].previous) = (EventType::Modified, Some(old)),
                    None => {
                        let object = Arc::new(old.at_revision(next));
                        events.push(WatchEvent::new(EventType::Deleted, object, None));
                    }
                }
            }
            _ => {}
        }
    }
}
