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
//!
//! With the status ref in use (see [`crate::status_ref`]), its changes are steps too: the branch's
//! history read at start is numbered as above, the status ref's tip is the next step, numbered from
//! the clock (see [`clock_step`]), and every step after it (of either ref) takes the next number.
//! Those numbers are this process's: exact for its watches, never reused by a later run.
//!
//! A cold start need not replay the history to derive all of this: a snapshot (see the `snapshot`
//! module) records it at one commit, and the store is rebuilt there from that commit's tree.

mod cache;
mod codec;
mod implied;
mod ingest;
mod overlay;
mod parsed;
mod snapshot;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use gitbacked_core::document::DocumentError;
use gitbacked_core::registry::{GroupKind, Home, Registry};
use gitbacked_core::watch::{Expired, WatchEvents, WatchLog};
use gitbacked_core::{Location, ObjectKey, StoredObject};
use gix::ObjectId;
use tokio::sync::watch;

pub use ingest::ParsedCommit;
pub(crate) use overlay::StatusStep;
pub use snapshot::Snapshot;

/// How many object changes one commit may carry before resourceVersions would collide.
pub const CHANGES_PER_COMMIT: u64 = 1_000_000;

/// The resourceVersion of change `index` (from 1) in commit number `seq`.
pub fn revision(seq: u64, index: u64) -> u64 {
    seq * CHANGES_PER_COMMIT + index.min(CHANGES_PER_COMMIT - 1)
}

/// The number of the first step of the status ref in a process: the milliseconds since 1970. Steps
/// of the status ref are numbered in the order a process sees them, which no other process and no
/// later run shares; from the clock, a restarted process never hands out again a number that a
/// previous run gave another state of an object (that would take more than one step per
/// millisecond since the previous start), so a stale resourceVersion gets 409, never a lost update.
fn clock_step() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX / CHANGES_PER_COMMIT).min(u64::MAX / CHANGES_PER_COMMIT - 1)
}

/// The uid of an object that `commit` created: derived from history, the same in every process.
pub(crate) fn created_uid(key: &ObjectKey, commit: ObjectId) -> gitbacked_core::uid::Uid {
    use std::fmt::Write;
    let mut seed = String::with_capacity(128);
    write!(seed, "{key}@{commit}").unwrap_or_else(|e| unreachable!("writing to a String cannot fail: {e}"));
    gitbacked_core::uid::stable_uid(&seed)
}

/// A document claimed by an object key, or one whose kind is not known yet.
#[derive(Clone, Debug)]
struct Claim {
    location: Location,
    /// The line its document starts on, for reports.
    line: u32,
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
    objects: HashMap<GroupKind, BTreeMap<ObjectKey, Entry>>,
    /// How many objects each namespace holds: a namespace with objects exists.
    namespaces: BTreeMap<String, usize>,
    /// The objects the others imply (see the `implied` module).
    implied: BTreeMap<ObjectKey, Arc<StoredObject>>,
    files: HashMap<Arc<str>, Vec<Claim>>,
    unknown: BTreeMap<Location, Box<str>>,
    invalid: BTreeMap<Arc<str>, Vec<DocumentError>>,
    /// Objects served that fail their type's validation: where they are (and on which line), and
    /// what is wrong.
    rejected: BTreeMap<ObjectKey, (Location, u32, Vec<String>)>,
    /// Objects a commit brought that have not been reviewed for `rejected` yet. Held weakly: one
    /// replaced or removed meanwhile is not reviewed, and costs a pointer, not a copy of its key.
    unreviewed: Vec<std::sync::Weak<StoredObject>>,
    log: WatchLog,
    tip: Option<ObjectId>,
    seq: u64,
    /// What of the objects is kept on the status ref, and what the ref holds.
    bookkeeping: crate::status_ref::Bookkeeping,
    overlays: overlay::Overlays,
    /// The snapshot whose commit is being applied (see [`Store::restore`]): what it records stands
    /// for what that commit would derive.
    restoring: Option<Arc<Snapshot>>,
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
    /// Objects served that fail their type's validation.
    pub invalid_objects: usize,
}

/// The in-memory object store. Readers take a short read lock; the sync loop is the only git writer.
pub struct Store {
    state: RwLock<State>,
    /// The objects kube-apiserver creates for itself (`gitbacked_core::bootstrap`), served where git
    /// has no document for them: on the branch's store only.
    bootstrap: HashMap<GroupKind, BTreeMap<ObjectKey, Arc<StoredObject>>>,
    revision_tx: watch::Sender<u64>,
    parse_cache: Option<Arc<cache::ParseCache>>,
    /// Held for the length of a review, so that one asked for waits for the one under way.
    reviewing: std::sync::Mutex<()>,
}

impl Store {
    /// An empty store for the objects kept at `home`, retaining `log_capacity` watch events.
    pub fn new(log_capacity: usize, home: Home) -> Self {
        let state = State {
            home,
            registry: Arc::new(Registry::default()),
            objects: HashMap::new(),
            namespaces: BTreeMap::new(),
            implied: BTreeMap::new(),
            files: HashMap::new(),
            unknown: BTreeMap::new(),
            invalid: BTreeMap::new(),
            rejected: BTreeMap::new(),
            unreviewed: Default::default(),
            log: WatchLog::new(log_capacity),
            tip: None,
            seq: 0,
            bookkeeping: Default::default(),
            overlays: Default::default(),
            restoring: None,
        };
        let mut state = state;
        state.seed_implied();
        let mut bootstrap: HashMap<GroupKind, BTreeMap<ObjectKey, Arc<StoredObject>>> = HashMap::new();
        if home == Home::Branch {
            for object in gitbacked_core::bootstrap::objects() {
                let key = object.key.clone();
                bootstrap.entry(GroupKind::clone(&key.gk)).or_default().insert(key, Arc::new(object));
            }
        }
        Store {
            state: RwLock::new(state),
            bootstrap,
            revision_tx: watch::channel(0).0,
            parse_cache: None,
            reviewing: std::sync::Mutex::new(()),
        }
    }

    /// Keeps what files parse to in `dir` (see the `cache` module), so that a restart does not parse the
    /// files it already knows again.
    pub fn with_parse_cache(mut self, dir: &std::path::Path) -> Self {
        self.parse_cache = Some(Arc::new(cache::ParseCache::open(dir.join(cache::FILE_NAME))));
        self
    }

    /// Serves the bookkeeping `bookkeeping` places on the status ref from there (see
    /// [`crate::status_ref`]).
    pub fn with_bookkeeping(self, bookkeeping: crate::status_ref::Bookkeeping) -> Self {
        self.write().bookkeeping = bookkeeping;
        self
    }

    /// What of the objects is kept on the status ref.
    pub fn bookkeeping(&self) -> crate::status_ref::Bookkeeping {
        self.read().bookkeeping
    }

    /// The status ref's commit the store reflects.
    pub fn status_tip(&self) -> Option<ObjectId> {
        self.read().overlays.tip
    }

    /// Applies a step of the status ref (see [`StatusStep`]) as the next numbered step.
    pub(crate) fn apply_status(&self, mirror: &crate::mirror::Mirror, step: StatusStep) {
        let revision = {
            let mut state = self.write();
            let seq = state.next_step(state.seq + 1, true);
            state.apply_status_step(mirror, step, seq);
            state.log.revision()
        };
        self.revision_tx.send_replace(revision);
    }

    /// Reads and parses a commit (see [`ParsedCommit`]) through the parse cache.
    pub(crate) fn read_commit(
        &self,
        mirror: &crate::mirror::Mirror,
        info: crate::mirror::CommitInfo,
        seq: u64,
        previous: Option<ObjectId>,
    ) -> Result<ParsedCommit, crate::mirror::GitError> {
        // A file whose documents all parsed may have only its changed document parsed again.
        let flawless = |path: &str| !self.read().invalid.contains_key(path);
        ParsedCommit::read(mirror, self.parse_cache.as_deref(), info, seq, previous, &flawless)
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
        let state = self.read();
        state.get(key).or_else(|| {
            let bootstrap = self.bootstrap.get(&key.gk).and_then(|o| o.get(key));
            bootstrap.or_else(|| state.implied.get(key)).cloned()
        })
    }

    /// All objects of a kind (in one namespace, or all), ordered by namespace and name, with the
    /// resourceVersion of the state they were read from.
    pub fn list(&self, gk: &GroupKind, namespace: Option<&str>) -> (u64, Vec<Arc<StoredObject>>) {
        let state = self.read();
        let in_scope = |k: &ObjectKey| namespace.is_none_or(|n| n == &*k.namespace);
        let stored = state.objects.get(gk);
        let mut items: Vec<Arc<StoredObject>> = match (stored, namespace) {
            (None, _) => Vec::new(),
            (Some(objects), Some(ns)) => objects
                .range(ObjectKey::new(gk.clone(), ns, "")..)
                .take_while(|(k, _)| &*k.namespace == ns)
                .map(|(_, e)| e.object.clone())
                .collect(),
            (Some(objects), None) => objects.values().map(|e| e.object.clone()).collect(),
        };
        // Bootstrap objects git has no document for, and implied ones, in key order among the others.
        let mut missing: Vec<Arc<StoredObject>> = (self.bootstrap.get(gk).into_iter().flatten())
            .filter(|(k, _)| in_scope(k) && stored.is_none_or(|o| !o.contains_key(*k)))
            .map(|(_, o)| o.clone())
            .collect();
        let implied =
            state.implied.iter().filter(|(k, _)| *k.gk == *gk && namespace.is_none_or(|n| n == &*k.namespace));
        missing.extend(implied.map(|(_, o)| o.clone()));
        if !missing.is_empty() {
            items.extend(missing);
            items.sort_by(|a, b| (&a.key.namespace, &a.key.name).cmp(&(&b.key.namespace, &b.key.name)));
        }
        (state.log.revision(), items)
    }

    /// The current resourceVersion.
    pub fn revision(&self) -> u64 {
        self.read().log.revision()
    }

    /// The branch's commit the store reflects, and the number of the store's last step (the
    /// commit's number on the first-parent chain, unless steps of the status ref came between).
    pub fn tip(&self) -> (Option<ObjectId>, u64) {
        let state = self.read();
        (state.tip, state.seq)
    }

    /// Events after `since`, oldest first.
    pub fn events_since(&self, since: u64) -> Result<WatchEvents, Expired> {
        self.read().log.since(since)
    }

    /// Notified with the new resourceVersion after every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision_tx.subscribe()
    }

    /// Counters for metrics and readiness (`invalid_objects` as of the last [`Store::review`]).
    pub fn stats(&self) -> Stats {
        let state = self.read();
        Stats {
            objects: state.objects.values().map(BTreeMap::len).sum(),
            invalid_files: state.invalid.len(),
            unknown_documents: state.unknown.len(),
            invalid_objects: state.rejected.len(),
        }
    }

    /// Files that have documents which could not be parsed, with the problems.
    pub fn invalid_files(&self) -> Vec<(String, Vec<DocumentError>)> {
        self.read().invalid.iter().map(|(p, e)| (p.to_string(), e.clone())).collect()
    }

    /// Objects served that fail their type's validation: the object, its file and document, the line
    /// the document starts on, and the problems as kube-apiserver would word them.
    pub fn invalid_objects(&self) -> Vec<(ObjectKey, Location, u32, Vec<String>)> {
        self.review();
        self.read().rejected.iter().map(|(k, (l, line, p))| (k.clone(), l.clone(), *line, p.clone())).collect()
    }

    /// Checks the objects the last commits brought as admission would, and reports (logs, and
    /// keeps for [`Store::invalid_objects`]) those that fail. It runs beside the sync, not in it:
    /// the objects are validated without the lock, and a result is kept only if the object has not
    /// changed meanwhile.
    pub fn review(&self) {
        let _reviewing = self.reviewing.lock().unwrap_or_else(|e| e.into_inner());
        // A sync that changed nothing leaves nothing to review: no write lock then.
        if self.read().unreviewed.is_empty() {
            return;
        }
        let (registry, objects) = {
            let mut state = self.write();
            let unreviewed = std::mem::take(&mut state.unreviewed);
            let current = |o: &Arc<StoredObject>| state.get(&o.key).is_some_and(|c| Arc::ptr_eq(&c, o));
            let objects: Vec<Arc<StoredObject>> =
                unreviewed.iter().filter_map(std::sync::Weak::upgrade).filter(current).collect();
            (state.registry.clone(), objects)
        };
        if objects.is_empty() {
            return;
        }
        let reviewed: Vec<(Arc<StoredObject>, Vec<String>)> = objects
            .into_iter()
            .map(|o| {
                let problems = gitbacked_core::check::problems_of(&registry, &o.key, &o.content());
                (o, problems)
            })
            .collect();
        let mut state = self.write();
        for (object, problems) in reviewed {
            let current = state.get(&object.key).is_some_and(|c| Arc::ptr_eq(&c, &object));
            if let (true, Some(location)) = (current, &object.location) {
                state.record_violations(&object.key, location, problems);
            }
        }
    }

    /// Applies a parsed commit (see [`ParsedCommit`]), with the step of the status ref that came
    /// with it (see [`State::apply_commit`]).
    pub(crate) fn apply(&self, mirror: &crate::mirror::Mirror, mut commit: ParsedCommit, status: Option<StatusStep>) {
        let revision = {
            let mut state = self.write();
            commit.seq = state.next_step(commit.seq, status.is_some());
            state.apply_commit(mirror, commit, status);
            state.log.revision()
        };
        self.revision_tx.send_replace(revision);
    }

    /// An empty store to read a rewritten history into: its numbering continues after everything
    /// this store has handed out, so that no old resourceVersion can name a new state.
    pub(crate) fn successor(&self) -> Store {
        let state = self.read();
        let next = Store { parse_cache: self.parse_cache.clone(), ..Store::new(state.log.capacity(), state.home) };
        {
            let mut fresh = next.write();
            fresh.seq = state.seq;
            fresh.log.advance_to(state.log.revision());
            fresh.bookkeeping = state.bookkeeping;
            fresh.overlays = state.overlays.clone();
        }
        next
    }

    /// Takes over the state of a successor (see [`Store::successor`]) once the rewritten history is
    /// read. Every watch, running or resuming from before, gets 410 Gone and relists.
    pub(crate) fn replace_with(&self, successor: Store) {
        let revision = {
            let mut state = self.write();
            *state = successor.state.into_inner().unwrap_or_else(|e| e.into_inner());
            state.log.restart();
            state.log.revision()
        };
        self.revision_tx.send_replace(revision);
    }
}

impl State {
    /// The number of a step that would be `seq`: the first one with a change of the status ref in
    /// this process is numbered from the clock (see [`clock_step`]).
    fn next_step(&self, seq: u64, status: bool) -> u64 {
        match status && self.overlays.tip.is_none() {
            true => seq.max(clock_step()),
            false => seq,
        }
    }

    fn get(&self, key: &ObjectKey) -> Option<Arc<StoredObject>> {
        let entry = self.objects.get(&key.gk)?.get(key)?;
        Some(entry.object.clone())
    }

    fn entry(&self, key: &ObjectKey) -> Option<&Entry> {
        self.objects.get(&key.gk)?.get(key)
    }

    fn insert(&mut self, entry: Entry) {
        let key = entry.object.key.clone();
        // Looked up before it is cloned: nearly every object's kind already has its map.
        let objects = match self.objects.get_mut(&key.gk) {
            Some(objects) => objects,
            None => self.objects.entry(GroupKind::clone(&key.gk)).or_default(),
        };
        if objects.insert(key.clone(), entry).is_none() {
            self.count_in_namespace(&key.namespace, 1);
        }
    }

    /// Counts `added` objects more in `namespace` (none for cluster-scoped objects, `""`).
    fn count_in_namespace(&mut self, namespace: &str, added: usize) {
        match self.namespaces.get_mut(namespace) {
            Some(count) => *count += added,
            None if namespace.is_empty() => {}
            None => {
                self.namespaces.insert(namespace.to_string(), added);
            }
        }
    }

    /// Inserts objects whose keys the store does not hold, in key order: the index of a kind that
    /// gets at least as many as it had (every kind at the initial sync) is built in one pass, not
    /// searched once for each.
    fn insert_new(&mut self, objects: Vec<Arc<StoredObject>>) {
        let mut objects = objects.into_iter().peekable();
        while let Some(first) = objects.next() {
            let gk = first.key.gk.clone();
            let mut run = vec![first];
            while let Some(object) = objects.next_if(|o| o.key.gk == gk) {
                run.push(object);
            }
            let index = self.objects.entry(GroupKind::clone(&gk)).or_default();
            let entries = run.iter().map(|o| (o.key.clone(), Entry { object: o.clone(), others: Vec::new() }));
            if index.len() <= run.len() {
                index.append(&mut entries.collect());
            } else {
                index.extend(entries);
            }
            for same in run.chunk_by(|a, b| a.key.namespace == b.key.namespace) {
                self.count_in_namespace(&same[0].key.namespace, same.len());
            }
        }
    }

    fn remove(&mut self, key: &ObjectKey) -> Option<Entry> {
        let objects = self.objects.get_mut(&key.gk)?;
        let removed = objects.remove(key);
        if objects.is_empty() {
            self.objects.remove(&key.gk);
        }
        if removed.is_some()
            && let Some(count) = self.namespaces.get_mut(&*key.namespace)
        {
            *count -= 1;
            if *count == 0 {
                self.namespaces.remove(&*key.namespace);
            }
        }
        removed
    }
}
