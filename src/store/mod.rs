//! The object store: an in-memory index of the objects at the synced commit, the resource types
//! they belong to, and a bounded log of watch events.
//!
//! ## resourceVersion model
//! Commit number `n` on the branch's first-parent chain (the root commit is 1) and the index `i`
//! (from 1) of a change among the object changes of that commit, ordered by object key, give
//! `resourceVersion = n × 1,000,000 + i`. Every process that reads the same history derives the same
//! numbers, and they survive restarts. A watch resumed from any event's resourceVersion receives
//! exactly the events after it. Objects kept only in memory (Events) take the next numbers after the
//! current one.

mod cache;
mod ingest;
pub mod object;
mod parsed;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use gix::ObjectId;
use serde_json::Value;
use tokio::sync::watch;

use crate::layout::document::DocumentError;
use crate::registry::{GroupKind, Home, Registry};
pub use ingest::ParsedCommit;
pub use object::{Derived, Location, ObjectKey, StoredObject};

/// How many object changes one commit may carry before resourceVersions would collide.
pub const CHANGES_PER_COMMIT: u64 = 1_000_000;

/// The resourceVersion of change `index` (from 1) in commit number `seq`.
pub fn revision(seq: u64, index: u64) -> u64 {
    seq * CHANGES_PER_COMMIT + index.min(CHANGES_PER_COMMIT - 1)
}

/// Type of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// The object appeared.
    Added,
    /// The object changed.
    Modified,
    /// The object is gone; the event carries its last state.
    Deleted,
}

impl EventType {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change to one object.
#[derive(Clone, Debug)]
pub struct WatchEvent {
    /// What happened.
    pub kind: EventType,
    /// The object after the change (before it, for deletions), at the event's resourceVersion.
    pub object: Arc<StoredObject>,
    /// The object before a modification: watches with selectors turn a modification that
    /// enters or leaves the selection into ADDED or DELETED.
    pub previous: Option<Arc<StoredObject>>,
}

impl WatchEvent {
    /// The event's resourceVersion.
    pub fn revision(&self) -> u64 {
        self.object.derived.resource_version
    }
}

/// A watch asked for changes older than the retained window.
#[derive(Debug, PartialEq, Eq)]
pub struct Expired {
    /// The oldest resourceVersion a watch may start from.
    pub oldest: u64,
}

/// A document claimed by an object key, or one whose kind is not known yet.
#[derive(Clone, Debug)]
struct Claim {
    location: Location,
    key: Option<ObjectKey>,
}

/// The winning document for a key, and the other documents that claim the same object.
#[derive(Clone, Debug)]
struct Entry {
    object: Arc<StoredObject>,
    others: Vec<Location>,
}

/// Everything behind the store's lock.
pub(crate) struct State {
    /// The objects this store holds: those of the types at home in its ref.
    home: Home,
    registry: Arc<Registry>,
    objects: HashMap<GroupKind, BTreeMap<(String, String), Entry>>,
    files: HashMap<Arc<str>, Vec<Claim>>,
    unknown: BTreeMap<Location, Box<str>>,
    invalid: BTreeMap<Arc<str>, Vec<DocumentError>>,
    log: VecDeque<WatchEvent>,
    log_capacity: usize,
    log_start: u64,
    revision: u64,
    tip: Option<ObjectId>,
    seq: u64,
    expiry: BTreeMap<(Instant, ObjectKey), ()>,
}

/// Counters for reporting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Objects served.
    pub objects: usize,
    /// Files with at least one document that could not be parsed.
    pub invalid_files: usize,
    /// Documents whose kind is not known (waiting for a CRD).
    pub unknown_documents: usize,
}

/// The in-memory object store. Readers take a short read lock; the sync loop is the only git writer.
pub struct Store {
    state: RwLock<State>,
    revision_tx: watch::Sender<u64>,
    parse_cache: Option<Arc<cache::ParseCache>>,
}

impl Store {
    /// An empty store for the objects kept at `home`, retaining `log_capacity` watch events.
    pub fn new(log_capacity: usize, home: Home) -> Self {
        let state = State {
            home,
            registry: Arc::new(Registry::default()),
            objects: HashMap::new(),
            files: HashMap::new(),
            unknown: BTreeMap::new(),
            invalid: BTreeMap::new(),
            log: VecDeque::new(),
            log_capacity: log_capacity.max(1),
            log_start: 0,
            revision: 0,
            tip: None,
            seq: 0,
            expiry: BTreeMap::new(),
        };
        Store { state: RwLock::new(state), revision_tx: watch::channel(0).0, parse_cache: None }
    }

    /// Keeps what files parse to in `dir` (see [`cache`]), so that a restart does not parse the
    /// files it already knows again.
    pub fn with_parse_cache(mut self, dir: &std::path::Path) -> Self {
        self.parse_cache = Some(Arc::new(cache::ParseCache::open(dir.join(cache::FILE_NAME))));
        self
    }

    /// Reads and parses a commit (see [`ParsedCommit`]) through the parse cache.
    pub(crate) fn read_commit(
        &self,
        mirror: &crate::git::Mirror,
        info: crate::git::CommitInfo,
        seq: u64,
        previous: Option<ObjectId>,
    ) -> Result<ParsedCommit, crate::git::GitError> {
        ParsedCommit::read(mirror, self.parse_cache.as_deref(), info, seq, previous)
    }

    /// Ends the initial sync (or the reading of a rewritten history): the parse cache frees what it
    /// loaded and drops the blobs that were not read.
    pub(crate) fn finish_initial_sync(&self) {
        if let Some(cache) = &self.parse_cache {
            cache.finish_initial_sync();
        }
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the objects of this store are kept.
    pub fn home(&self) -> Home {
        self.read().home
    }

    /// The served resource types.
    pub fn registry(&self) -> Arc<Registry> {
        self.read().registry.clone()
    }

    /// One object.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<StoredObject>> {
        self.read().get(key)
    }

    /// All objects of a kind (in one namespace, or all), ordered by namespace and name, with the
    /// resourceVersion of the state they were read from.
    pub fn list(&self, gk: &GroupKind, namespace: Option<&str>) -> (u64, Vec<Arc<StoredObject>>) {
        let state = self.read();
        let Some(objects) = state.objects.get(gk) else {
            return (state.revision, Vec::new());
        };
        let items = match namespace {
            Some(ns) => objects
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, e)| e.object.clone())
                .collect(),
            None => objects.values().map(|e| e.object.clone()).collect(),
        };
        (state.revision, items)
    }

    /// The current resourceVersion.
    pub fn revision(&self) -> u64 {
        self.read().revision
    }

    /// The commit the store reflects and its number on the first-parent chain.
    pub fn tip(&self) -> (Option<ObjectId>, u64) {
        let state = self.read();
        (state.tip, state.seq)
    }

    /// Events after `since`, oldest first.
    pub fn events_since(&self, since: u64) -> Result<Vec<WatchEvent>, Expired> {
        let state = self.read();
        if since < state.log_start || since > state.revision {
            return Err(Expired { oldest: state.log_start });
        }
        let first = state.log.partition_point(|e| e.revision() <= since);
        Ok(state.log.range(first..).cloned().collect())
    }

    /// Notified with the new resourceVersion after every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision_tx.subscribe()
    }

    /// Counters for metrics and readiness.
    pub fn stats(&self) -> Stats {
        let state = self.read();
        Stats {
            objects: state.objects.values().map(BTreeMap::len).sum(),
            invalid_files: state.invalid.len(),
            unknown_documents: state.unknown.len(),
        }
    }

    /// Files that have documents which could not be parsed, with the problems.
    pub fn invalid_files(&self) -> Vec<(String, Vec<DocumentError>)> {
        self.read().invalid.iter().map(|(p, e)| (p.to_string(), e.clone())).collect()
    }

    /// Applies parsed commits (see [`ParsedCommit`]) in order.
    pub(crate) fn apply(&self, mirror: &crate::git::Mirror, commit: ParsedCommit) {
        let revision = {
            let mut state = self.write();
            state.apply_commit(mirror, commit);
            state.revision
        };
        self.revision_tx.send_replace(revision);
    }

    /// An empty store to read a rewritten history into: its numbering continues after everything
    /// this store has handed out, so that no old resourceVersion can name a new state.
    pub(crate) fn successor(&self) -> Store {
        let state = self.read();
        let next = Store { parse_cache: self.parse_cache.clone(), ..Store::new(state.log_capacity, state.home) };
        {
            let mut fresh = next.write();
            fresh.seq = state.seq;
            fresh.revision = state.revision;
        }
        next
    }

    /// Takes over the state of a successor (see [`Store::successor`]) once the rewritten history is
    /// read. Objects kept in memory stay; every watch, running or resuming from before, gets 410
    /// Gone and relists.
    pub(crate) fn replace_with(&self, successor: Store) {
        let revision = {
            let mut state = self.write();
            let ephemeral: Vec<_> = state
                .objects
                .values()
                .flat_map(|m| m.values())
                .filter(|e| e.object.location.is_none())
                .cloned()
                .collect();
            *state = successor.state.into_inner().unwrap_or_else(|e| e.into_inner());
            for entry in ephemeral {
                state.insert(entry);
            }
            state.log.clear();
            state.log_start = state.revision;
            state.revision
        };
        self.revision_tx.send_replace(revision);
    }

    /// Stores an in-memory-only object (Events), or deletes it (`None`); returns the stored object
    /// (the deleted one for deletions). `ttl` sets when it expires.
    pub fn put_ephemeral(&self, key: &ObjectKey, content: Option<Value>, ttl: Duration) -> Option<Arc<StoredObject>> {
        let (result, revision) = {
            let mut state = self.write();
            let result = state.put_ephemeral(key, content, ttl);
            (result, state.revision)
        };
        self.revision_tx.send_replace(revision);
        result
    }

    /// Deletes in-memory objects whose time to live has passed.
    pub fn expire_ephemeral(&self) {
        let now = Instant::now();
        let expired: Vec<ObjectKey> =
            self.read().expiry.range(..(now, min_key())).map(|((_, k), _)| k.clone()).collect();
        for key in expired {
            self.put_ephemeral(&key, None, Duration::ZERO);
        }
    }
}

fn min_key() -> ObjectKey {
    ObjectKey {
        gk: GroupKind { group: String::new(), kind: String::new() },
        namespace: String::new(),
        name: String::new(),
    }
}

impl State {
    fn get(&self, key: &ObjectKey) -> Option<Arc<StoredObject>> {
        let entry = self.objects.get(&key.gk)?.get(&(key.namespace.clone(), key.name.clone()))?;
        Some(entry.object.clone())
    }

    fn entry(&self, key: &ObjectKey) -> Option<&Entry> {
        self.objects.get(&key.gk)?.get(&(key.namespace.clone(), key.name.clone()))
    }

    fn insert(&mut self, entry: Entry) {
        let key = entry.object.key.clone();
        self.objects.entry(key.gk).or_default().insert((key.namespace, key.name), entry);
    }

    fn remove(&mut self, key: &ObjectKey) -> Option<Entry> {
        let objects = self.objects.get_mut(&key.gk)?;
        let removed = objects.remove(&(key.namespace.clone(), key.name.clone()));
        if objects.is_empty() {
            self.objects.remove(&key.gk);
        }
        removed
    }

    fn record(&mut self, kind: EventType, object: Arc<StoredObject>, previous: Option<Arc<StoredObject>>) {
        self.revision = self.revision.max(object.derived.resource_version);
        self.log.push_back(WatchEvent { kind, object, previous });
        while self.log.len() > self.log_capacity {
            if let Some(dropped) = self.log.pop_front() {
                self.log_start = dropped.revision();
            }
        }
    }

    fn put_ephemeral(&mut self, key: &ObjectKey, content: Option<Value>, ttl: Duration) -> Option<Arc<StoredObject>> {
        let before = self.get(key);
        if let Some(old) = &before {
            self.expiry.retain(|(_, k), _| k != &old.key);
        }
        let resource_version = self.revision + 1;
        match content {
            Some(content) => {
                let derived = match &before {
                    Some(old) => old.derived.after_change(resource_version, &old.content(), &content, false),
                    None => Derived {
                        resource_version,
                        uid: object::stable_uid(&format!("{key}@{resource_version}")),
                        creation_timestamp: object::rfc3339(object::now()),
                        generation: 1,
                    },
                };
                let stored = Arc::new(StoredObject::new(key.clone(), None, content, derived));
                self.insert(Entry { object: stored.clone(), others: Vec::new() });
                self.expiry.insert((Instant::now() + ttl, key.clone()), ());
                let kind = if before.is_some() { EventType::Modified } else { EventType::Added };
                self.record(kind, stored.clone(), before);
                Some(stored)
            }
            None => {
                let old = before?;
                self.remove(key);
                self.record(EventType::Deleted, Arc::new(old.at_revision(resource_version)), None);
                Some(old)
            }
        }
    }
}
