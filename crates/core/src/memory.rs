//! A [`Storage`] that keeps objects in memory: the home of Events (with a time to live), and the
//! second backend that the API semantics are tested against without git.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::clock::{Clock, SystemClock};
use crate::object::{Derived, ObjectKey, StoredObject};
use crate::registry::{GroupKind, Registry, crd_group_kind};
use crate::status::{ApiResult, StatusError};
use crate::storage::{Mutation, Storage, Write, WriteOutcome};
use crate::uid::stable_uid;
use crate::watch::{EventType, Expired, WatchEvent, WatchEvents, WatchLog};

/// How much a [`MemoryStorage`] keeps: beyond either bound the objects written longest ago are
/// dropped first (each with a DELETED event), as their time to live would have dropped them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// At most this many objects.
    pub objects: usize,
    /// At most this many bytes of serialized objects.
    pub bytes: usize,
}

impl Default for Limits {
    /// 10,000 objects and 64 MiB.
    fn default() -> Self {
        Limits { objects: 10_000, bytes: 64 << 20 }
    }
}

/// Objects in memory. Every write is applied at once and numbered with the next resourceVersion.
/// With a time to live, objects expire that long after their last write (see
/// [`MemoryStorage::expire`]); [`Limits`] bound what is kept. CustomResourceDefinitions written to
/// it serve their types.
pub struct MemoryStorage {
    state: Mutex<State>,
    revision_tx: watch::Sender<u64>,
    ttl: Option<Duration>,
    limits: Limits,
    clock: Arc<dyn Clock>,
}

struct State {
    registry: Arc<Registry>,
    objects: BTreeMap<ObjectKey, Arc<StoredObject>>,
    log: WatchLog,
    /// Every object by the resourceVersion of its last write, oldest first, with the time of that
    /// write (seconds on the clock): the order of expiry and of eviction.
    written: BTreeMap<u64, (ObjectKey, i64)>,
    /// The serialized size of every object.
    bytes: usize,
}

impl MemoryStorage {
    /// An empty storage of the built-in types, keeping `log_capacity` watch events.
    pub fn new(log_capacity: usize) -> Self {
        let state = State {
            registry: Arc::new(Registry::default()),
            objects: BTreeMap::new(),
            log: WatchLog::new(log_capacity),
            written: BTreeMap::new(),
            bytes: 0,
        };
        MemoryStorage {
            state: Mutex::new(state),
            revision_tx: watch::channel(0).0,
            ttl: None,
            limits: Limits::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Objects expire `ttl` after their last write.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// At most this much is kept.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Timestamps and expiry come from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Deletes the objects whose time to live has passed, each with a DELETED event.
    pub fn expire(&self) {
        let Some(ttl) = self.ttl else { return };
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let now = self.clock.now();
        let revision = {
            let mut state = self.lock();
            while let Some((_, (key, at))) = state.written.first_key_value() {
                if at.saturating_add(ttl) > now {
                    break;
                }
                let key = key.clone();
                state.delete(&key);
            }
            state.log.revision()
        };
        self.revision_tx.send_replace(revision);
    }

    /// Applies a decided mutation.
    fn apply(
        &self,
        key: &ObjectKey,
        mutation: Mutation,
        current: Option<Arc<StoredObject>>,
    ) -> ApiResult<WriteOutcome> {
        let mut state = self.lock();
        let outcome = match mutation {
            Mutation::Put(content) => {
                let resource_version = state.log.revision() + 1;
                let status = state.registry.by_kind(&key.gk).is_some_and(|rt| rt.status);
                let derived = match &current {
                    Some(old) => old.derived.after_change(resource_version, &old.content(), &content, status),
                    None => Derived {
                        resource_version,
                        uid: stable_uid(&format!("{key}@{resource_version}")),
                        creation_timestamp: self.clock.now(),
                        generation: 1,
                    },
                };
                if *key.gk == crd_group_kind() {
                    let mut registry = (*state.registry).clone();
                    registry.apply_crd(&content).map_err(|e| e.to_status(&key.name))?;
                    state.registry = Arc::new(registry);
                }
                let stored = Arc::new(StoredObject::new(key.clone(), None, content, derived));
                if stored.json_len() > self.limits.bytes {
                    return Err(StatusError::too_large(format!(
                        "the object is {} bytes; at most {} are kept",
                        stored.json_len(),
                        self.limits.bytes
                    )));
                }
                state.forget(current.as_deref());
                state.written.insert(resource_version, (key.clone(), self.clock.now()));
                state.bytes += stored.json_len();
                state.objects.insert(key.clone(), stored.clone());
                let kind = if current.is_some() { EventType::Modified } else { EventType::Added };
                state.log.record(WatchEvent::new(kind, stored.clone(), current));
                state.evict(self.limits, key);
                WriteOutcome::Stored(stored)
            }
            Mutation::Delete => {
                let deleted = state.delete(key).ok_or_else(|| StatusError::internal("the object was not found"))?;
                WriteOutcome::Deleted(deleted)
            }
        };
        let revision = state.log.revision();
        drop(state);
        self.revision_tx.send_replace(revision);
        Ok(outcome)
    }
}

impl State {
    /// Takes an object's last write out of the bookkeeping of order and size.
    fn forget(&mut self, object: Option<&StoredObject>) {
        if let Some(old) = object {
            self.written.remove(&old.derived.resource_version);
            self.bytes -= old.json_len();
        }
    }

    /// Removes an object with a DELETED event; returns its last state.
    fn delete(&mut self, key: &ObjectKey) -> Option<Arc<StoredObject>> {
        let old = self.objects.remove(key)?;
        self.forget(Some(&old));
        if *key.gk == crd_group_kind() {
            let mut registry = (*self.registry).clone();
            registry.remove_crd(&key.name);
            self.registry = Arc::new(registry);
        }
        let at = Arc::new(old.at_revision(self.log.revision() + 1));
        self.log.record(WatchEvent::new(EventType::Deleted, at, None));
        Some(old)
    }

    /// Drops the objects written longest ago until the limits hold; `kept` (just written) goes last.
    fn evict(&mut self, limits: Limits, kept: &ObjectKey) {
        while self.objects.len() > limits.objects || self.bytes > limits.bytes {
            let Some(oldest) = self.written.values().map(|(k, _)| k).find(|k| *k != kept).cloned() else { break };
            self.delete(&oldest);
        }
    }
}

impl Storage for MemoryStorage {
    fn registry(&self) -> Arc<Registry> {
        self.lock().registry.clone()
    }

    fn get(&self, key: &ObjectKey) -> Option<Arc<StoredObject>> {
        self.lock().objects.get(key).cloned()
    }

    fn list(&self, gk: &GroupKind, namespace: Option<&str>) -> (u64, Vec<Arc<StoredObject>>) {
        let state = self.lock();
        let from = ObjectKey::new(gk.clone(), namespace.unwrap_or_default(), "");
        let items = state
            .objects
            .range(from..)
            .take_while(|(k, _)| *k.gk == *gk && namespace.is_none_or(|ns| *k.namespace == *ns))
            .map(|(_, o)| o.clone())
            .collect();
        (state.log.revision(), items)
    }

    fn revision(&self, _: &GroupKind) -> u64 {
        self.lock().log.revision()
    }

    fn events_since(&self, _: &GroupKind, revision: u64) -> Result<WatchEvents, Expired> {
        self.lock().log.since(revision)
    }

    fn subscribe(&self, _: &GroupKind) -> watch::Receiver<u64> {
        self.revision_tx.subscribe()
    }

    fn write(&self, mut write: Write) -> BoxFuture<'static, ApiResult<WriteOutcome>> {
        self.expire();
        let current = self.get(&write.key);
        let result = (write.mutate)(current.as_deref()).and_then(|m| self.apply(&write.key, m, current));
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::clock::ManualClock;

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new(GroupKind { group: String::new(), kind: "Event".into() }, "default", name)
    }

    fn put(name: &str) -> Write {
        let content = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": name}});
        Write {
            key: key(name),
            description: format!("create {name}"),
            mutate: Box::new(move |_| Ok(Mutation::Put(content.clone()))),
        }
    }

    #[tokio::test]
    async fn objects_expire_after_their_ttl_with_a_deleted_event() {
        let clock = Arc::new(ManualClock::new(1_000));
        let storage = MemoryStorage::new(100).with_ttl(Duration::from_secs(60)).with_clock(clock.clone());
        let gk = key("a").gk.clone();
        storage.write(put("a")).await.unwrap();
        clock.set(1_030);
        storage.write(put("b")).await.unwrap();
        let created = storage.get(&key("a")).unwrap();
        assert_eq!(crate::clock::rfc3339(created.derived.creation_timestamp), "1970-01-01T00:16:40Z");
        clock.set(1_060);
        storage.expire();
        assert!(storage.get(&key("a")).is_none() && storage.get(&key("b")).is_some());
        let events = storage.events_since(&gk, 0).unwrap();
        let kinds: Vec<_> = events.iter().map(|e| (e.kind, e.object.key.name.as_str(), e.revision())).collect();
        assert_eq!(kinds, [(EventType::Added, "a", 1), (EventType::Added, "b", 2), (EventType::Deleted, "a", 3)]);
        clock.set(1_090);
        storage.expire();
        let (revision, items) = storage.list(&gk, Some("default"));
        assert_eq!((revision, items.len()), (4, 0));
    }

    #[tokio::test]
    async fn beyond_its_limits_the_objects_written_longest_ago_go_first() {
        let storage = MemoryStorage::new(100).with_limits(Limits { objects: 3, bytes: 1 << 20 });
        for name in ["a", "b", "c"] {
            storage.write(put(name)).await.unwrap();
        }
        storage.write(put("a")).await.unwrap(); // written again: now the newest
        storage.write(put("d")).await.unwrap();
        let gk = key("a").gk.clone();
        let names =
            |s: &MemoryStorage| -> Vec<String> { s.list(&gk, None).1.iter().map(|o| o.key.name.clone()).collect() };
        assert_eq!(names(&storage), ["a", "c", "d"], "b was written longest ago");
        let events = storage.events_since(&gk, 0).unwrap();
        let last = events.iter().last().unwrap();
        assert_eq!((last.kind, last.object.key.name.as_str()), (EventType::Deleted, "b"));

        // The bytes bound: each of these objects takes about 100 bytes.
        let one = storage.get(&key("a")).unwrap().json_len();
        let small = MemoryStorage::new(100).with_limits(Limits { objects: 100, bytes: one * 2 + one / 2 });
        for name in ["a", "b", "c"] {
            small.write(put(name)).await.unwrap();
        }
        assert_eq!(names(&small), ["b", "c"]);
        // One object larger than everything kept is refused, and nothing is dropped for it.
        let tiny = MemoryStorage::new(100).with_limits(Limits { objects: 100, bytes: one / 2 });
        let refused = tiny.write(put("a")).await.unwrap_err();
        assert_eq!((refused.code, refused.reason), (413, crate::Reason::RequestEntityTooLarge));
        assert!(tiny.events_since(&gk, 0).unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_crd_written_serves_its_type_until_it_is_deleted() {
        let storage = MemoryStorage::new(10);
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true}]}
        });
        let key = ObjectKey::new(crd_group_kind(), "", "widgets.example.com");
        let write = |mutation: Mutation| Write {
            key: key.clone(),
            description: String::new(),
            mutate: Box::new(move |_| Ok(mutation.clone())),
        };
        storage.write(write(Mutation::Put(crd))).await.unwrap();
        assert!(storage.registry().by_plural("example.com", "v1", "widgets").is_some());
        storage.write(write(Mutation::Delete)).await.unwrap();
        assert!(storage.registry().by_plural("example.com", "v1", "widgets").is_none());
    }
}
