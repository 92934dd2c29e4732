//! Applying a commit to the store: a tree diff against its first parent gives the changed files,
//! their documents give the changed objects, and each changed object becomes one watch event.
//! The cost is proportional to the change, not to the repository.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use tracing::{info, warn};

use super::cache::{ParseCache, Snapshot};
use super::parsed::{self, BlobKey, FileView, ObjectRef};
use gitbacked_core::object::{self, Derived, Head, Location, ObjectKey, StoredObject};
use gitbacked_core::watch::{EventType, WatchEvent};

use super::{Claim, Entry, State};
use crate::mirror::{CommitInfo, FileChange, GitError, Mirror};
use gitbacked_core::document::{self, DocumentError};
use gitbacked_core::registry::{GroupKind, Home, crd_group_kind};
use gix::ObjectId;

/// A commit whose changed files have been read and parsed, ready to apply under the store's lock.
pub struct ParsedCommit {
    info: CommitInfo,
    pub(super) seq: u64,
    changes: Vec<FileChange>,
    files: ParsedFiles,
}

/// The parse results of a commit's changed files: records (see [`parsed`]) in chunks of a few
/// hundred kilobytes, so that the many small allocations of parsing do not outlive the parsing
/// threads, and so that each chunk is freed once the objects of its documents are built.
struct ParsedFiles {
    /// One for each change, `None` for removed files.
    slots: Vec<Option<Slot>>,
    /// For each change, the one document parsed when that is all that changed in a large file.
    partial: Vec<Option<u32>>,
}

/// A chunk of parse records: the parse cache's file as loaded, or what a parsing thread wrote in
/// [`CHUNK`] bytes. A `Vec` behind the `Arc`: neither has to be copied into the other.
type Chunk = Arc<Vec<u8>>;

/// About how many bytes of records a parsing thread writes in one chunk.
const CHUNK: usize = 256 * 1024;

/// Where the parse result of one file is.
enum Slot {
    /// A record body in a chunk.
    Record { chunk: Chunk, body: Range<usize> },
    /// The blob could not be read.
    Unreadable(String),
}

impl ParsedFiles {
    /// The parse result of change `i` and the chunk it borrows from; `None` when the file was removed.
    fn view(&self, i: usize) -> Option<(FileView<'_>, Option<&Chunk>)> {
        let unreadable =
            |message: String| FileView { objects: Vec::new(), errors: vec![DocumentError { line: 1, message }] };
        match self.slots.get(i)?.as_ref()? {
            Slot::Record { chunk, body } => Some(match parsed::decode(&chunk[body.clone()]) {
                Some(view) => (view, Some(chunk)),
                None => (unreadable("the parse result is damaged".into()), None),
            }),
            Slot::Unreadable(message) => Some((unreadable(message.clone()), None)),
        }
    }
}

/// A document's JSON text where it is: in a chunk of records, which it keeps from being freed, or
/// on its own. Documents hold on to their records until their objects are built: the records of an
/// initial sync are freed as the objects that take their place are built, not after all of them.
#[derive(Debug)]
enum Json {
    Record { chunk: Chunk, at: usize, len: u32 },
    Own(Box<str>),
}

impl Json {
    /// `text`, which `chunk` holds (a copy of it otherwise).
    fn in_chunk(chunk: &Chunk, text: &str) -> Self {
        let at = (text.as_ptr() as usize).checked_sub(chunk.as_ptr() as usize);
        match (at, u32::try_from(text.len())) {
            (Some(at), Ok(len)) if at + text.len() <= chunk.len() => Json::Record { chunk: chunk.clone(), at, len },
            _ => Json::Own(text.into()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Json::Record { chunk, at, len } => {
                let bytes = &chunk[*at..*at + *len as usize];
                std::str::from_utf8(bytes).unwrap_or_else(|e| unreachable!("records hold JSON text: {e}"))
            }
            Json::Own(text) => text,
        }
    }

    /// Where the text is, to build objects in the order of their records.
    fn place(&self) -> (usize, usize) {
        match self {
            Json::Record { chunk, at, .. } => (Arc::as_ptr(chunk) as usize, *at),
            Json::Own(text) => (0, text.as_ptr() as usize),
        }
    }
}

/// What one parsing thread produced: its records, the slots of its files (and which of them hold
/// one document of the file only), and the blobs it read and parsed.
struct Parsed {
    chunks: Vec<Vec<u8>>,
    slots: Vec<(usize, Found)>,
    partial: Vec<(usize, u32)>,
    read: Vec<BlobKey>,
    parsed: Vec<BlobKey>,
}

/// Where a parsing thread found the parse result of a file.
enum Found {
    /// A record body in the parse cache.
    Cached(Range<usize>),
    /// A record body in the thread's chunk number `chunk`.
    Parsed { chunk: usize, body: Range<usize> },
    /// The blob could not be read.
    Unreadable(String),
}

/// From this size on, a file changed in one document has only that document parsed again (a
/// 2 MB `install.yaml` of 59 documents costs tens of milliseconds to parse whole).
const PARTIAL_PARSE: usize = 64 * 1024;

/// A changed file to read: change index, path, new blob, old blob when it may be read in part.
type ToParse<'a> = (usize, &'a str, gix::ObjectId, Option<gix::ObjectId>);

impl ParsedCommit {
    /// Diffs `info` against the subdirectory tree `previous` and parses the new versions of the
    /// changed files, on all cores when there are many. Files whose blob is in the parse `cache` are
    /// not read; the others are added to it. Of a large file whose documents all parsed before
    /// (`flawless`) and that changed in one document, that document alone is parsed.
    pub(crate) fn read(
        mirror: &Mirror,
        cache: Option<&ParseCache>,
        info: CommitInfo,
        seq: u64,
        previous: Option<gix::ObjectId>,
        flawless: &dyn Fn(&str) -> bool,
    ) -> Result<Self, GitError> {
        let changes = mirror.reader().diff(previous, info.subtree, crate::layout::holds_objects)?;
        let to_parse: Vec<ToParse<'_>> = changes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((i, c.path.as_str(), c.new?, c.old.filter(|_| flawless(&c.path)))))
            .collect();
        let cached = cache.map(ParseCache::snapshot).unwrap_or_default();
        let threads =
            if to_parse.len() < 256 { 1 } else { std::thread::available_parallelism().map_or(1, |n| n.get()) };
        let next = AtomicUsize::new(0);
        let results: Vec<Parsed> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let (cached, files, next) = (&cached, &to_parse, &next);
                    scope.spawn(move || parse_files(mirror, cached, files, next))
                })
                .collect();
            // Dropping `finished` when the workers are done ends the progress reports at once.
            let (finished, done) = std::sync::mpsc::channel::<()>();
            if threads > 1 {
                let (next, total) = (&next, to_parse.len());
                scope.spawn(move || report_progress(next, total, &done));
            }
            // A thread that panicked must not make its files look removed.
            let results =
                workers.into_iter().map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect();
            drop(finished);
            results
        });
        let mut slots: Vec<Option<Slot>> = changes.iter().map(|_| None).collect();
        let mut partial: Vec<Option<u32>> = changes.iter().map(|_| None).collect();
        for Parsed { chunks, slots: found, partial: parts, read, parsed } in results {
            if let Some(cache) = cache {
                cache.update(read, &parsed, &chunks);
            }
            let chunks: Vec<Chunk> = chunks.into_iter().map(Arc::new).collect();
            for (i, found) in found {
                slots[i] = Some(match found {
                    Found::Cached(body) => Slot::Record { chunk: cached.buffer.clone(), body },
                    Found::Parsed { chunk, body } => Slot::Record { chunk: chunks[chunk].clone(), body },
                    Found::Unreadable(message) => Slot::Unreadable(message),
                });
            }
            for (i, doc) in parts {
                partial[i] = Some(doc);
            }
        }
        Ok(ParsedCommit { info, seq, changes, files: ParsedFiles { slots, partial } })
    }
}

/// Logs every second how many of `total` files the parsing threads have taken, and the rate,
/// until `done` is dropped: a large initial sync shows that it is moving.
fn report_progress(next: &AtomicUsize, total: usize, done: &std::sync::mpsc::Receiver<()>) {
    let started = std::time::Instant::now();
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done.recv_timeout(std::time::Duration::from_secs(1)) {
        let files = next.load(Ordering::Relaxed).min(total);
        let rate = files as f64 / started.elapsed().as_secs_f64();
        info!(target: "gitbacked::progress", files, total, rate = rate.round(), "reading files");
    }
}

/// Parses files (change index, path, blob), taking batches from `next` on, into chunks of records,
/// or finds them in the cache.
fn parse_files(mirror: &Mirror, cached: &Snapshot, files: &[ToParse<'_>], next: &AtomicUsize) -> Parsed {
    /// Files taken at a time: threads take work until none is left, as files differ in size.
    const BATCH: usize = 64;
    let reader = mirror.blob_reader(files.len());
    let mut out =
        Parsed { chunks: Vec::new(), slots: Vec::new(), partial: Vec::new(), read: Vec::new(), parsed: Vec::new() };
    let mut records: Vec<u8> = Vec::new();
    let batches = std::iter::from_fn(|| {
        let start = next.fetch_add(BATCH, Ordering::Relaxed);
        files.get(start..files.len().min(start + BATCH))
    });
    for &(i, path, blob, old) in batches.flatten() {
        let key = (blob, document::is_json(path));
        out.read.push(key);
        let hit = cached.index.get(&key).filter(|body| parsed::decode(&cached.buffer[(*body).clone()]).is_some());
        let slot = match hit {
            Some(body) => Found::Cached(body.clone()),
            None => match reader.blob(blob) {
                Ok(bytes) => {
                    // The record of one document is not the file's: it stays out of the cache.
                    let changed = old
                        .filter(|_| bytes.len() >= PARTIAL_PARSE)
                        .and_then(|old| document::changed_document(path, &reader.blob(old).ok()?, &bytes));
                    let parsed = match changed {
                        Some(doc) => {
                            out.partial.push((i, doc));
                            document::parse_document(path, &bytes, doc)
                        }
                        None => {
                            out.parsed.push(key);
                            document::parse_file(path, &bytes)
                        }
                    };
                    if records.len() >= CHUNK {
                        out.chunks.push(close(std::mem::take(&mut records)));
                    }
                    let body = parsed::write_record(&mut records, key, &parsed);
                    Found::Parsed { chunk: out.chunks.len(), body }
                }
                Err(e) => Found::Unreadable(e.to_string()),
            },
        };
        out.slots.push((i, slot));
    }
    out.chunks.push(close(records));
    out
}

/// A chunk of records as kept until its documents are built: spare room would stay that long.
fn close(mut records: Vec<u8>) -> Vec<u8> {
    records.shrink_to_fit();
    records
}

/// A document that claims a key during one commit: its content when known.
#[derive(Debug)]
enum Candidate {
    /// The document that was already the winner; its content is the current object's.
    Current,
    /// A document that lost before; read it again from git if it wins now.
    Unread,
    /// A document added in this commit, as JSON text.
    New(Json),
}

/// A key touched by the commit: its object before, and every document claiming it after.
struct Touched {
    before: Option<Arc<StoredObject>>,
    candidates: Candidates,
}

/// A document a commit adds: where it is, the line it starts on, its JSON, and its key once it is
/// known (see [`State::name_all`]).
struct Added {
    location: Location,
    line: u32,
    json: Json,
    key: Option<ObjectKey>,
}

/// A document that claims a known key in a commit: its location and JSON.
struct Claimed {
    key: ObjectKey,
    location: Location,
    json: Json,
}

/// A key that one new document creates, at the resourceVersion it takes in the commit: the
/// document's location and its JSON, until the object is built.
struct Creation {
    resource_version: u64,
    key: ObjectKey,
    location: Location,
    json: Option<Json>,
}

impl Touched {
    /// The claim of the one new document that claims `key`, which no object had; the key as it
    /// was otherwise.
    fn creation(mut self, key: ObjectKey) -> Result<Claimed, (ObjectKey, Self)> {
        if self.before.is_some() || self.candidates.0.len() != 1 {
            return Err((key, self));
        }
        match self.candidates.0.pop() {
            Some((location, Candidate::New(json))) => Ok(Claimed { key, location, json }),
            Some(other) => {
                self.candidates.0.push(other);
                Err((key, self))
            }
            None => Err((key, self)),
        }
    }
}

/// The documents claiming one key, ordered by location. A sorted `Vec`: nearly always one, and a
/// `BTreeMap` node would cost half a kilobyte for each of a repository's objects during the initial sync.
#[derive(Default)]
struct Candidates(Vec<(Location, Candidate)>);

impl Candidates {
    fn insert(&mut self, location: Location, candidate: Candidate) {
        match self.0.binary_search_by(|(l, _)| l.cmp(&location)) {
            Ok(i) => self.0[i].1 = candidate,
            Err(i) => {
                self.0.reserve_exact(1);
                self.0.insert(i, (location, candidate));
            }
        }
    }

    fn remove(&mut self, location: &Location) {
        if let Ok(i) = self.0.binary_search_by(|(l, _)| l.cmp(location)) {
            self.0.remove(i);
        }
    }

    fn pop_first(&mut self) -> Option<(Location, Candidate)> {
        (!self.0.is_empty()).then(|| self.0.remove(0))
    }

    fn locations(&self) -> impl Iterator<Item = &Location> {
        self.0.iter().map(|(l, _)| l)
    }
}

impl State {
    /// Applies one parsed commit, and the step of the status ref pushed with it if any (one step
    /// for both, so that watchers never see the one without the other), and records its events.
    pub(crate) fn apply_commit(&mut self, mirror: &Mirror, commit: ParsedCommit, status: Option<super::StatusStep>) {
        let ParsedCommit { info, seq, changes, files } = commit;
        let bookkept = status.map(|step| self.read_status_step(step)).unwrap_or_default();
        let mut touched: BTreeMap<ObjectKey, Touched> = BTreeMap::new();
        let mut added: Vec<Added> = Vec::new();
        // Room for the files the commit adds at once: a map grown one file at a time would hash
        // every path again at each doubling.
        self.files.reserve(changes.iter().filter(|c| c.old.is_none()).count());
        for (i, change) in changes.iter().enumerate() {
            let path: Arc<str> = Arc::from(change.path.as_str());
            let (file, chunk) = files.view(i).unzip();
            let chunk = chunk.flatten();
            // Of a file read in part, the claims of the other documents stand as they are.
            let partial = files.partial[i];
            let (standing, claims): (Vec<Claim>, Vec<Claim>) = (self.files.remove(&path).unwrap_or_default())
                .into_iter()
                .partition(|c| partial.is_some_and(|doc| c.location.doc != doc));
            if !standing.is_empty() {
                self.files.insert(path.clone(), standing);
            }
            // A document that stops parsing keeps its objects as they last were: a person's typo
            // must not read as a deletion to controllers.
            let kept: HashSet<ObjectKey> = match &file {
                Some(f) if !f.errors.is_empty() => {
                    let reclaimed: HashSet<ObjectKey> = f.objects.iter().filter_map(|o| self.key_of(o.json)).collect();
                    claims.iter().filter_map(|c| c.key.clone()).filter(|k| !reclaimed.contains(k)).collect()
                }
                _ => HashSet::new(),
            };
            for claim in claims {
                match claim.key {
                    Some(key) if kept.contains(&key) => {
                        self.files.entry(path.clone()).or_default().push(Claim { key: Some(key), ..claim })
                    }
                    Some(key) => {
                        self.touch(&mut touched, &key).candidates.remove(&claim.location);
                    }
                    None => {
                        self.unknown.remove(&claim.location);
                    }
                }
            }
            self.invalid.remove(&path);
            let Some(file) = file else {
                continue;
            };
            for e in &file.errors {
                warn!(file = %change.path, line = e.line, error = %e.message, "skipping a document that does not parse");
            }
            if !file.errors.is_empty() {
                self.invalid.insert(path.clone(), file.errors);
            }
            for ObjectRef { doc, item, line, json } in file.objects {
                let json = chunk.map_or_else(|| Json::Own(json.into()), |chunk| Json::in_chunk(chunk, json));
                added.push(Added { location: Location { path: path.clone(), doc, item }, line, json, key: None });
            }
        }
        // The file list of a large commit is no small part of the memory of the rest of it; the
        // chunks of records are held by the documents from now on.
        drop((changes, files));
        // CRDs first: the types they define decide how the other documents are read.
        self.name_all(&mut added);
        let crd = crd_group_kind();
        let (crds, mut others): (Vec<_>, Vec<_>) =
            added.into_iter().partition(|a| a.key.as_ref().is_some_and(|k| *k.gk == crd));
        for Claimed { key, location, json } in self.claim(crds) {
            self.touch(&mut touched, &key).candidates.insert(location, Candidate::New(json));
        }
        let crd_keys: Vec<ObjectKey> = touched.keys().filter(|k| *k.gk == crd).cloned().collect();
        let mut events = Vec::new();
        let mut registry_changed = false;
        for key in crd_keys {
            let Some(t) = touched.remove(&key) else {
                continue;
            };
            let resource_version = super::revision(seq, events.len() as u64 + 1);
            let after = self.resolve(mirror, &info, resource_version, key.clone(), t, &mut events);
            registry_changed |= self.update_registry(&key, after.as_deref());
        }
        if registry_changed {
            self.name_all(&mut others);
        }
        let claimed = self.claim(others);
        if registry_changed {
            self.reclassify(mirror, &info, &mut touched);
        }
        let fresh = self.settle_claims(&mut touched, claimed);
        // Objects whose bookkeeping alone changed (the others are resolved with them).
        let bookkept_only: Vec<&ObjectKey> = bookkept
            .iter()
            .filter(|k| !touched.contains_key(*k) && fresh.binary_search_by(|c| c.key.cmp(k)).is_err())
            .collect();
        // Keys are numbered in key order. Those that a single new document creates (nearly every
        // key of an initial sync) are built last, on all cores; the others are resolved one at a time.
        let mut creations: Vec<Creation> = Vec::new();
        for next in merge_by_key(std::mem::take(&mut touched), fresh) {
            let resource_version = super::revision(seq, (events.len() + creations.len()) as u64 + 1);
            match next {
                Ok(Claimed { key, location, json }) => {
                    creations.push(Creation { resource_version, key, location, json: Some(json) })
                }
                Err((key, t)) => {
                    self.resolve(mirror, &info, resource_version, key, t, &mut events);
                }
            }
        }
        self.create(&info, creations, &mut events);
        for key in bookkept_only {
            self.serve_bookkeeping(mirror, key, seq, &mut events);
        }
        self.settle_implied(seq, info.time, &mut events);
        for event in events {
            self.log.record(event);
        }
        self.tip = Some(info.id);
        self.seq = seq;
    }

    fn touch<'t>(&self, touched: &'t mut BTreeMap<ObjectKey, Touched>, key: &ObjectKey) -> &'t mut Touched {
        touched.entry(key.clone()).or_insert_with(|| {
            let entry = self.entry(key);
            let mut candidates = Candidates::default();
            if let Some(e) = entry {
                if let Some(loc) = &e.object.location {
                    candidates.insert(loc.clone(), Candidate::Current);
                }
                for loc in &e.others {
                    candidates.insert(loc.clone(), Candidate::Unread);
                }
            }
            Touched { before: entry.map(|e| e.object.clone()), candidates }
        })
    }

    /// Finds the key of each document (see [`State::key_of`]), on all cores when there are many: it
    /// means reading every document's JSON, and most of the documents of an initial sync are claimed
    /// one by one afterwards.
    fn name_all(&self, added: &mut [Added]) {
        on_all_cores(added, |run| run.iter_mut().for_each(|a| a.key = self.key_of(a.json.as_str())));
    }

    /// Records which documents claim which objects, file by file, and returns the claims to
    /// settle (see [`State::settle_claims`]). A document whose kind is not known waits for it.
    fn claim(&mut self, added: Vec<Added>) -> Vec<Claimed> {
        let mut claimed = Vec::with_capacity(added.len());
        let mut added = added.into_iter().peekable();
        while let Some(first) = added.next() {
            let path = first.location.path.clone();
            // Exactly the room the claims need: spare capacity would stay for as long as the file.
            let mut claims = Vec::with_capacity(1);
            let mut next = Some(first);
            while let Some(Added { location, line, json, key }) = next {
                claims.push(Claim { location: location.clone(), line, key: key.clone() });
                match key {
                    Some(key) => claimed.push(Claimed { key, location, json }),
                    None => self.wait_for_kind(location, json),
                }
                next = added.next_if(|a| Arc::ptr_eq(&a.location.path, &path));
            }
            claims.shrink_to_fit();
            match self.files.entry(path) {
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    e.get_mut().reserve_exact(claims.len());
                    e.get_mut().extend(claims);
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(claims);
                }
            }
        }
        claimed
    }

    /// Keeps a document of a kind not served here until its CRD is known; or ignores it, with a
    /// warning, when its kind lives elsewhere.
    fn wait_for_kind(&mut self, location: Location, json: Json) {
        let gk = group_kind(json.as_str());
        match self.registry.by_kind(&gk).map(|rt| rt.home) {
            Some(Home::Memory) => {
                warn!(file = %location.path, kind = %gk.kind, "Events are kept in memory only; ignoring one found in git")
            }
            Some(Home::Leases) => warn!(file = %location.path, kind = %gk.kind,
                "Leases are kept on their own ref (refs/gitbacked/leases/<branch>); ignoring one found on the branch"),
            Some(Home::Branch) => warn!(file = %location.path, group = %gk.group, kind = %gk.kind,
                "only Leases are read from the lease ref; ignoring this document"),
            None => {
                warn!(file = %location.path, group = %gk.group, kind = %gk.kind, "document of an unknown kind waits for its CRD");
                self.unknown.insert(location, json.as_str().into());
            }
        }
    }

    /// Sorts the claims of a commit by key, and returns those of keys that no object had and that
    /// one document alone claims (nearly every key of an initial sync), in key order; the others
    /// join `touched`. Sorting a million claims costs a fraction of adding them to a tree one
    /// at a time, and most keys need no tree.
    fn settle_claims(&self, touched: &mut BTreeMap<ObjectKey, Touched>, mut claimed: Vec<Claimed>) -> Vec<Claimed> {
        sort_claims(&mut claimed);
        let mut fresh = Vec::with_capacity(claimed.len());
        let mut claims = claimed.into_iter().peekable();
        while let Some(first) = claims.next() {
            let alone = claims.peek().is_none_or(|next| next.key != first.key);
            if alone && !touched.contains_key(&first.key) && self.entry(&first.key).is_none() {
                fresh.push(first);
                continue;
            }
            let t = self.touch(touched, &first.key);
            t.candidates.insert(first.location, Candidate::New(first.json));
            while let Some(next) = claims.next_if(|c| c.key == first.key) {
                t.candidates.insert(next.location, Candidate::New(next.json));
            }
        }
        fresh
    }

    /// The key of a document, `None` when its kind is not served (unknown) or not kept here.
    fn key_of(&self, json: &str) -> Option<ObjectKey> {
        ObjectKey::of_json(&self.registry, json).filter(|(_, rt)| rt.home == self.home).map(|(key, _)| key)
    }

    /// Settles a touched key: picks the winning document and records the event (at
    /// `resource_version`), if any.
    fn resolve(
        &mut self,
        mirror: &Mirror,
        info: &CommitInfo,
        resource_version: u64,
        key: ObjectKey,
        t: Touched,
        events: &mut Vec<WatchEvent>,
    ) -> Option<Arc<StoredObject>> {
        let Touched { before, mut candidates } = t;
        let read = |location: &Location, candidate: Candidate| match candidate {
            Candidate::Current => before.as_ref().map(|b| b.content()),
            Candidate::New(json) => Some(object::strip_derived(parse_json(json.as_str()))),
            Candidate::Unread => read_document(mirror, info.id, location, &key, self)
                .map(|json| object::strip_derived(parse_json(&json))),
        };
        // The first document by path wins; one that cannot be read any more is dropped. When
        // several claim the object, the first valid one wins: a document shaped like the object
        // but not a valid one of its kind (a kustomize patch of a CRD) never hides the real one.
        let mut readable: Vec<(Location, Value)> = Vec::new();
        let mut unread: Vec<Location> = Vec::new();
        while let Some((location, candidate)) = candidates.pop_first() {
            match read(&location, candidate) {
                Some(content) => readable.push((location, content)),
                None if readable.is_empty() => {}
                None => unread.push(location),
            }
        }
        // Weighing claims needs what admission would say of them: known for the winner then, left
        // to the review otherwise (see `Store::review`), which keeps it off the sync's path.
        let (mut chosen, mut problems) = (0, None);
        if readable.len() > 1 {
            for (i, (_, content)) in readable.iter().enumerate() {
                let found = gitbacked_core::check::problems_of(&self.registry, &key, content);
                if found.is_empty() {
                    (chosen, problems) = (i, Some(found));
                    break;
                }
                if i == 0 {
                    problems = Some(found);
                }
            }
        }
        let winner = (chosen < readable.len()).then(|| readable.remove(chosen));
        let others: Vec<Location> = readable.into_iter().map(|(l, _)| l).chain(unread).collect();
        if !others.is_empty() {
            warn!(object = %key, winner = ?winner.as_ref().map(|w| &w.0.path), others = ?others.iter().map(|l| &l.path).collect::<Vec<_>>(),
                "several documents claim the same object; the first valid one by path wins");
        }
        match (before, winner) {
            (None, None) => None,
            (Some(old), None) => {
                self.rejected.remove(&key);
                self.remove(&key);
                let object = Arc::new(old.at_revision(resource_version));
                events.push(WatchEvent::new(EventType::Deleted, object, None));
                None
            }
            (None, Some((location, content))) => {
                let object = Arc::new(self.created(info, resource_version, key, location, content));
                self.add(object.clone(), others, problems, events);
                Some(object)
            }
            (Some(old), Some((location, mut content))) => {
                if !self.overlays.is_empty() {
                    self.bookkeeping.overlay(&mut content, &old.derived.uid, self.overlays.get(&key));
                }
                let old_content = old.content();
                let (derived, kind) = match old_content == content {
                    true => (old.derived.clone(), None),
                    false => {
                        let status = self.registry.by_kind(&key.gk).is_some_and(|rt| rt.status);
                        let derived = old.derived.after_change(resource_version, &old_content, &content, status);
                        (derived, Some(EventType::Modified))
                    }
                };
                // Unchanged where it was: the object stays as it is, and so does its review.
                let unchanged = kind.is_none() && old.location.as_ref() == Some(&location);
                let review = match (kind, problems) {
                    (Some(_), Some(found)) => {
                        self.record_violations(&key, &location, found);
                        false
                    }
                    _ => !unchanged,
                };
                let stored = match unchanged {
                    true => old.clone(),
                    false => Arc::new(StoredObject::new(key, Some(location), content, derived)),
                };
                if review {
                    self.unreviewed.push(Arc::downgrade(&stored));
                }
                self.insert(Entry { object: stored.clone(), others });
                if let Some(kind) = kind {
                    events.push(WatchEvent::new(kind, stored.clone(), Some(old)));
                }
                Some(stored)
            }
        }
    }

    /// The object a commit creates (see [`State::created_derived`]).
    fn created(
        &self,
        info: &CommitInfo,
        resource_version: u64,
        key: ObjectKey,
        location: Location,
        content: Value,
    ) -> StoredObject {
        let derived = self.created_derived(info, resource_version, &key);
        self.built(key, location, content, derived)
    }

    /// The derived metadata of an object a commit creates: its uid derived from its key and the
    /// commit, or as the snapshot being restored records it.
    fn created_derived(&self, info: &CommitInfo, resource_version: u64, key: &ObjectKey) -> Derived {
        self.restored_derived(key).unwrap_or_else(|| Derived {
            resource_version,
            uid: super::created_uid(key, info.id),
            creation_timestamp: info.time,
            generation: 1,
        })
    }

    /// An object as served, its bookkeeping from the status ref.
    fn built(&self, key: ObjectKey, location: Location, mut content: Value, derived: Derived) -> StoredObject {
        if !self.overlays.is_empty() {
            self.bookkeeping.overlay(&mut content, &derived.uid, self.overlays.get(&key));
        }
        StoredObject::new(key, Some(location), content, derived)
    }

    /// Serves a created object, with its ADDED event. What admission would say of it is known
    /// (`problems`) when several documents claimed it; otherwise it waits for the review.
    fn add(
        &mut self,
        object: Arc<StoredObject>,
        others: Vec<Location>,
        problems: Option<Vec<String>>,
        events: &mut Vec<WatchEvent>,
    ) {
        match (problems, &object.location) {
            (Some(found), Some(location)) => self.record_violations(&object.key, location, found),
            _ => self.unreviewed.push(Arc::downgrade(&object)),
        }
        self.insert(Entry { object: object.clone(), others });
        events.push(WatchEvent::new(EventType::Added, object, None));
    }

    /// Creates the objects of `creations` (see [`Touched::creation`]) and records their events
    /// among `events`, in the order of their resourceVersions. Building them (from their JSON
    /// text, see [`StoredObject::from_json`]) is most of an initial sync's apply: with many, it runs
    /// on all cores, and they join the index in one pass. They are built in the order of their records, each dropping its document as
    /// it goes, so that a chunk of records is freed as soon as its objects are built: the records
    /// and the objects built from them are never all in memory at once.
    fn create(&mut self, info: &CommitInfo, mut creations: Vec<Creation>, events: &mut Vec<WatchEvent>) {
        if creations.is_empty() {
            return;
        }
        creations.sort_unstable_by_key(|c| c.json.as_ref().map(Json::place));
        let this = &*self;
        let build = |run: &mut [Creation]| -> Vec<(u64, Arc<StoredObject>)> {
            let each = run.iter_mut().filter_map(|c| {
                let json = c.json.take()?;
                let derived = this.created_derived(info, c.resource_version, &c.key);
                // From the JSON text where no bookkeeping of the status ref is laid over it.
                let quick = match this.overlays.get(&c.key) {
                    None => {
                        StoredObject::from_json(c.key.clone(), Some(c.location.clone()), json.as_str(), derived.clone())
                    }
                    Some(_) => None,
                };
                let object = quick.unwrap_or_else(|| {
                    let content = object::strip_derived(parse_json(json.as_str()));
                    this.built(c.key.clone(), c.location.clone(), content, derived)
                });
                Some((c.resource_version, Arc::new(object)))
            });
            each.collect()
        };
        let built = on_all_cores(&mut creations, build);
        drop(creations);
        let mut built: Vec<(u64, Arc<StoredObject>)> = built.into_iter().flatten().collect();
        built.sort_unstable_by_key(|(resource_version, _)| *resource_version);
        let resolved = events.len();
        self.unreviewed.extend(built.iter().map(|(_, object)| Arc::downgrade(object)));
        events.extend(built.iter().map(|(_, object)| WatchEvent::new(EventType::Added, object.clone(), None)));
        self.insert_new(built.into_iter().map(|(_, object)| object).collect());
        if resolved > 0 {
            // Two sorted runs, the resolved keys' events and the created ones': a linear merge.
            events.sort_by_key(|e| e.object.derived.resource_version);
        }
    }

    /// Remembers (and logs) what admission would refuse in an object a commit brought, or forgets
    /// that it had any. The object is served either way: git is the truth.
    pub(super) fn record_violations(&mut self, key: &ObjectKey, location: &Location, found: Vec<String>) {
        if found.is_empty() {
            self.rejected.remove(key);
            return;
        }
        let claims = self.files.get(&location.path).into_iter().flatten();
        let line = claims.filter(|c| &c.location == location).map(|c| c.line).next().unwrap_or(1);
        warn!(object = %key, file = %location.path, line, problems = ?found,
            "a committed object fails validation; it is served as committed");
        self.rejected.insert(key.clone(), (location.clone(), line, found));
    }

    /// Adds, changes or removes the type a CRD defines; returns whether the registry changed.
    fn update_registry(&mut self, key: &ObjectKey, crd: Option<&StoredObject>) -> bool {
        let mut registry = (*self.registry).clone();
        let changed = match crd {
            Some(obj) => match registry.apply_crd(&obj.value()) {
                Ok(changed) => changed,
                Err(e) => {
                    warn!(crd = %key.name, field = %e.field(), error = %e, "ignoring a CustomResourceDefinition");
                    registry.remove_crd(&key.name)
                }
            },
            None => registry.remove_crd(&key.name),
        };
        if changed {
            self.registry = Arc::new(registry);
        }
        changed
    }

    /// After the set of types changed: documents of newly known kinds become objects, objects of
    /// kinds no longer known wait again.
    fn reclassify(&mut self, mirror: &Mirror, info: &CommitInfo, touched: &mut BTreeMap<ObjectKey, Touched>) {
        let gone: Vec<GroupKind> =
            self.objects.keys().filter(|gk| self.registry.by_kind(gk).is_none()).cloned().collect();
        for gk in gone {
            let keys: Vec<ObjectKey> =
                self.objects.get(&gk).map(|m| m.values().map(|e| e.object.key.clone()).collect()).unwrap_or_default();
            for key in keys {
                let locations: Vec<Location> = self.touch(touched, &key).candidates.locations().cloned().collect();
                for location in locations {
                    if let Some(json) = read_document(mirror, info.id, &location, &key, self) {
                        self.unknown.insert(location.clone(), json);
                    }
                    self.set_claim_key(&location, None);
                }
                if let Some(t) = touched.get_mut(&key) {
                    t.candidates = Candidates::default();
                }
            }
        }
        let known: Vec<Location> =
            self.unknown.iter().filter(|(_, v)| self.key_of(v).is_some()).map(|(l, _)| l.clone()).collect();
        for location in known {
            if let Some(json) = self.unknown.remove(&location) {
                let key = self.key_of(&json);
                self.set_claim_key(&location, key.clone());
                if let Some(key) = key {
                    self.touch(touched, &key).candidates.insert(location, Candidate::New(Json::Own(json)));
                }
            }
        }
    }

    fn set_claim_key(&mut self, location: &Location, key: Option<ObjectKey>) {
        if let Some(claims) = self.files.get_mut(&location.path) {
            for claim in claims.iter_mut().filter(|c| &c.location == location) {
                claim.key = key.clone();
            }
        }
    }
}

/// `run` over `items` cut in one run per core, in order; in one run on this thread when there are
/// few, as starting threads would cost more than it saves.
fn on_all_cores<T: Send, R: Send>(items: &mut [T], run: impl Fn(&mut [T]) -> R + Sync) -> Vec<R> {
    const PARALLEL: usize = 1024;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if items.len() < PARALLEL || threads == 1 {
        return vec![run(items)];
    }
    std::thread::scope(|scope| {
        let (run, size) = (&run, items.len().div_ceil(threads));
        let workers: Vec<_> = items.chunks_mut(size).map(|part| scope.spawn(move || run(part))).collect();
        workers.into_iter().map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}

/// The keys of `touched` and of `fresh` (sorted, none in both) together, in key order: those that
/// one new document creates (see [`Touched::creation`]), and the others to resolve.
fn merge_by_key(
    touched: BTreeMap<ObjectKey, Touched>,
    fresh: Vec<Claimed>,
) -> impl Iterator<Item = Result<Claimed, (ObjectKey, Touched)>> {
    let (mut touched, mut fresh) = (touched.into_iter().peekable(), fresh.into_iter().peekable());
    std::iter::from_fn(move || {
        let touched_first = match (touched.peek(), fresh.peek()) {
            (Some((key, _)), Some(claimed)) => *key < claimed.key,
            (next, _) => next.is_some(),
        };
        match touched_first {
            true => touched.next().map(|(key, t)| t.creation(key)),
            false => fresh.next().map(Ok),
        }
    })
}

/// Sorts claims by key, and the claims of one key by location. A key compared with another is
/// three pointers followed, and a million claims whose names are spread over directories by a
/// hash took 0.5 s to sort so. They are sorted by a prefix of their keys first, which follows none:
/// the ranks of the kind and namespace (which keys share), and the first eight bytes of the name.
fn sort_claims(claimed: &mut Vec<Claimed>) {
    let kinds = ranks(claimed.iter().map(|c| &c.key.gk));
    let namespaces = ranks(claimed.iter().map(|c| &c.key.namespace));
    let prefix = |key: &ObjectKey| {
        let mut name = [0u8; 8];
        let len = key.name.len().min(8);
        name[..len].copy_from_slice(&key.name.as_bytes()[..len]);
        let rank = |ranks: &HashMap<usize, u32>, address| u128::from(ranks.get(&address).copied().unwrap_or(u32::MAX));
        (rank(&kinds, address(&key.gk)) << 96)
            | (rank(&namespaces, address(&key.namespace)) << 64)
            | u128::from(u64::from_be_bytes(name))
    };
    let mut order: Vec<(u128, usize)> = claimed.iter().enumerate().map(|(i, c)| (prefix(&c.key), i)).collect();
    // Equal prefixes are settled by the keys (names that share their first eight bytes), then
    // by the locations: the same order as comparing keys and locations alone.
    order.sort_unstable_by(|(a, i), (b, j)| {
        let (x, y) = (&claimed[*i], &claimed[*j]);
        a.cmp(b).then_with(|| x.key.cmp(&y.key)).then_with(|| x.location.cmp(&y.location))
    });
    let mut slots: Vec<Option<Claimed>> = std::mem::take(claimed).into_iter().map(Some).collect();
    claimed.extend(order.into_iter().filter_map(|(_, i)| slots[i].take()));
}

/// The address of a shared part of keys.
fn address<T: ?Sized>(part: &Arc<T>) -> usize {
    Arc::as_ptr(part).cast::<()>() as usize
}

/// The rank of each shared part (by address) among the distinct values of `parts`, in order.
fn ranks<'a, T: Ord + ?Sized + 'a>(parts: impl Iterator<Item = &'a Arc<T>>) -> HashMap<usize, u32> {
    let mut distinct: Vec<&Arc<T>> = Vec::new();
    let mut seen = HashSet::new();
    let mut last = None;
    // Keys of one file or directory share their parts: one look-up per run.
    for part in parts {
        let at = address(part);
        if last != Some(at) && seen.insert(at) {
            distinct.push(part);
        }
        last = Some(at);
    }
    distinct.sort();
    let mut ranks = HashMap::with_capacity(distinct.len());
    let mut rank = 0u32;
    for (i, part) in distinct.iter().enumerate() {
        if i > 0 && distinct[i - 1] != *part {
            rank += 1;
        }
        ranks.insert(address(part), rank);
    }
    ranks
}

fn group_kind(json: &str) -> GroupKind {
    Head::parse(json).map(|h| h.group_kind()).unwrap_or_else(|| GroupKind::from_api_version("", ""))
}

/// The `Value` of a document the store serialized itself.
pub(super) fn parse_json(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or_else(|e| unreachable!("compact JSON parses: {e}"))
}

/// Reads the document at `location` from the commit again, checking that it still claims `key`.
pub(super) fn read_document(
    mirror: &Mirror,
    commit: ObjectId,
    location: &Location,
    key: &ObjectKey,
    state: &State,
) -> Option<Box<str>> {
    let bytes = mirror.reader().file_at(commit, &location.path).ok()??;
    let parsed = document::parse_file(&location.path, &bytes);
    let found = parsed.objects.into_iter().find(|o| o.doc == location.doc && o.item == location.item)?;
    let json = found.value.to_string();
    let matches = state.key_of(&json).as_ref() == Some(key) || group_kind(&json) == *key.gk;
    matches.then(|| json.into_boxed_str())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what a tracing subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn claims_sort_by_key_then_location_whatever_their_names_share() {
        let kinds =
            [GroupKind::from_api_version("v1", "ConfigMap"), GroupKind::from_api_version("apps/v1", "Deployment")];
        let names =
            ["a", "cm-1", "cm-10", "cm-1\0", "cm-100000000", "cm-10000000", "cm-1000000z", "é-ü", "", "zzzzzzzzzz"];
        let mut claimed = Vec::new();
        // A fixed shuffle: keys spread over kinds, namespaces and names, some claimed twice.
        let mut seed = 7u64;
        for round in 0..3u32 {
            for (k, gk) in kinds.iter().enumerate() {
                for namespace in ["", "default", "ns-1", "ns-10"] {
                    for name in names {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        if round > 0 && !seed.is_multiple_of(3) {
                            continue;
                        }
                        let key = ObjectKey::new(gk.clone(), namespace, name);
                        let location =
                            Location { path: format!("f{}.yaml", seed % 5).into(), doc: round + k as u32, item: None };
                        claimed.push((seed, Claimed { key, location, json: Json::Own("{}".into()) }));
                    }
                }
            }
        }
        claimed.sort_by_key(|(seed, _)| *seed);
        let mut claimed: Vec<Claimed> = claimed.into_iter().map(|(_, c)| c).collect();
        let order = |claims: &[Claimed]| -> Vec<(ObjectKey, Location)> {
            claims.iter().map(|c| (c.key.clone(), c.location.clone())).collect()
        };
        let mut expected = order(&claimed);
        expected.sort();
        sort_claims(&mut claimed);
        assert_eq!(order(&claimed), expected);
        assert!(expected.len() > 80 && expected.windows(2).any(|w| w[0].0 == w[1].0), "keys claimed twice");
    }

    #[test]
    fn a_documents_json_keeps_its_chunk_of_records_until_it_is_dropped() {
        let chunk: Chunk = Arc::new(b"....{\"a\":1}..{\"b\":2}".to_vec());
        let text = |range: Range<usize>| std::str::from_utf8(&chunk[range]).unwrap();
        let (first, second) = (Json::in_chunk(&chunk, text(4..11)), Json::in_chunk(&chunk, text(13..20)));
        assert_eq!((first.as_str(), second.as_str()), (r#"{"a":1}"#, r#"{"b":2}"#));
        assert!(first.place() < second.place(), "ordered as their records");
        assert_eq!(Arc::strong_count(&chunk), 3, "each document holds the chunk");
        // Text from anywhere else is copied.
        let elsewhere = String::from(r#"{"c":3}"#);
        let copied = Json::in_chunk(&chunk, &elsewhere);
        assert!(matches!(copied, Json::Own(_)) && copied.as_str() == elsewhere);
        drop((first, second, copied));
        assert_eq!(Arc::strong_count(&chunk), 1, "freed with the last document read from it");
    }

    #[test]
    fn a_long_parse_reports_its_progress_every_second_until_it_is_done() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
        let next = AtomicUsize::new(4096);
        let (finished, done) = std::sync::mpsc::channel::<()>();
        let stop = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(1500));
            drop(finished);
        });
        // Returns once `finished` is dropped: a parse that never finished would hang the test.
        tracing::subscriber::with_default(subscriber, || report_progress(&next, 10_000, &done));
        stop.join().unwrap();
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(!lines.is_empty(), "no progress line in 1.5 s");
        for line in lines {
            assert!(line.contains("gitbacked::progress") && line.contains("reading files"), "{text}");
            assert!(line.contains("files=4096 total=10000 rate="), "{text}");
        }
    }
}
