//! Applying a commit to the store: a tree diff against its first parent gives the changed files,
//! their documents give the changed objects, and each changed object becomes one watch event.
//! The cost is proportional to the change, not to the repository.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;
use tracing::warn;

use super::object::{self, Derived, Location, ObjectKey, StoredObject};
use super::{Claim, Entry, EventType, State, WatchEvent};
use crate::git::{CommitInfo, FileChange, GitError, Mirror};
use crate::layout::document::{self, FoundObject, ParsedFile};
use crate::registry::{GroupKind, Home, crd_group_kind};

/// A commit whose changed files have been read and parsed, ready to apply under the store's lock.
pub struct ParsedCommit {
    info: CommitInfo,
    seq: u64,
    changes: Vec<FileChange>,
    parsed: HashMap<String, ParsedFile>,
}

impl ParsedCommit {
    /// Diffs `info` against the subdirectory tree `previous` and parses the new versions of the
    /// changed files, on all cores when there are many.
    pub fn read(
        mirror: &Mirror,
        info: CommitInfo,
        seq: u64,
        previous: Option<gix::ObjectId>,
    ) -> Result<Self, GitError> {
        let changes = mirror.reader().diff(previous, info.subtree)?;
        let to_parse: Vec<(&str, gix::ObjectId)> =
            changes.iter().filter_map(|c| Some((c.path.as_str(), c.new?))).collect();
        let threads =
            if to_parse.len() < 256 { 1 } else { std::thread::available_parallelism().map_or(1, |n| n.get()) };
        let chunk = to_parse.len().div_ceil(threads).max(1);
        let parsed = std::thread::scope(|scope| {
            let workers: Vec<_> = to_parse
                .chunks(chunk)
                .map(|files| {
                    scope.spawn(move || {
                        let reader = mirror.reader();
                        files
                            .iter()
                            .map(|(path, blob)| {
                                let parsed = match reader.blob(*blob) {
                                    Ok(bytes) => document::parse_file(path, &bytes),
                                    Err(e) => ParsedFile {
                                        objects: Vec::new(),
                                        errors: vec![document::DocumentError { line: 1, message: e.to_string() }],
                                    },
                                };
                                (path.to_string(), parsed)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
        });
        Ok(ParsedCommit { info, seq, changes, parsed })
    }
}

/// A document that claims a key during one commit: its content when known.
#[derive(Clone, Debug)]
enum Candidate {
    /// The document that was already the winner; its content is the current object's.
    Current,
    /// A document that lost before; read it again from git if it wins now.
    Unread,
    /// A document added in this commit.
    New(Value),
}

/// A key touched by the commit: its object before, and every document claiming it after.
struct Touched {
    before: Option<Arc<StoredObject>>,
    candidates: BTreeMap<Location, Candidate>,
}

impl State {
    /// Applies one parsed commit and records its events.
    pub(crate) fn apply_commit(&mut self, mirror: &Mirror, commit: ParsedCommit) {
        let ParsedCommit { info, seq, changes, mut parsed } = commit;
        let mut touched: BTreeMap<ObjectKey, Touched> = BTreeMap::new();
        let mut added: Vec<(Location, Value)> = Vec::new();
        for change in &changes {
            let path: Arc<str> = Arc::from(change.path.as_str());
            let file = parsed.remove(&change.path);
            // A document that stops parsing keeps its objects as they last were: a person's typo
            // must not read as a deletion to controllers.
            let kept: HashSet<ObjectKey> = match &file {
                Some(f) if !f.errors.is_empty() => {
                    let reclaimed: HashSet<ObjectKey> =
                        f.objects.iter().filter_map(|o| self.key_of(&o.value)).collect();
                    let old = self.files.get(&path).into_iter().flatten();
                    old.filter_map(|c| c.key.clone()).filter(|k| !reclaimed.contains(k)).collect()
                }
                _ => HashSet::new(),
            };
            for claim in self.files.remove(&path).unwrap_or_default() {
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
            for FoundObject { doc, item, value } in file.objects {
                added.push((Location { path: path.clone(), doc, item }, value));
            }
        }
        // CRDs first: the types they define decide how the other documents are read.
        let crd = crd_group_kind();
        let (crds, others): (Vec<_>, Vec<_>) = added.into_iter().partition(|(_, v)| group_kind(v) == crd);
        for (location, value) in crds {
            self.claim(&mut touched, location, value);
        }
        let crd_keys: Vec<ObjectKey> = touched.keys().filter(|k| k.gk == crd).cloned().collect();
        let mut events = Vec::new();
        let mut registry_changed = false;
        for key in crd_keys {
            let Some(t) = touched.remove(&key) else {
                continue;
            };
            let after = self.resolve(mirror, &info, seq, &key, t, &mut events);
            registry_changed |= self.update_registry(&key, after.as_deref());
        }
        for (location, value) in others {
            self.claim(&mut touched, location, value);
        }
        if registry_changed {
            self.reclassify(mirror, &info, &mut touched);
        }
        for (key, t) in std::mem::take(&mut touched) {
            self.resolve(mirror, &info, seq, &key, t, &mut events);
        }
        for WatchEvent { kind, object, previous } in events {
            self.record(kind, object, previous);
        }
        self.tip = Some(info.id);
        self.seq = seq;
    }

    fn touch<'a>(&self, touched: &'a mut BTreeMap<ObjectKey, Touched>, key: &ObjectKey) -> &'a mut Touched {
        touched.entry(key.clone()).or_insert_with(|| {
            let entry = self.entry(key);
            let mut candidates = BTreeMap::new();
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

    /// Records that a document claims an object (or waits for its kind to be known).
    fn claim(&mut self, touched: &mut BTreeMap<ObjectKey, Touched>, location: Location, value: Value) {
        let key = self.key_of(&value);
        if let Some(key) = &key {
            self.touch(touched, key).candidates.insert(location.clone(), Candidate::New(value));
        } else {
            let gk = group_kind(&value);
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
                    self.unknown.insert(location.clone(), value);
                }
            }
        }
        self.files.entry(location.path.clone()).or_default().push(Claim { location, key });
    }

    /// The key of a document, `None` when its kind is not served (unknown) or not kept here.
    fn key_of(&self, value: &Value) -> Option<ObjectKey> {
        ObjectKey::of(&self.registry, value).filter(|(_, rt)| rt.home == self.home).map(|(key, _)| key)
    }

    /// Settles a touched key: picks the winning document and records the event, if any.
    fn resolve(
        &mut self,
        mirror: &Mirror,
        info: &CommitInfo,
        seq: u64,
        key: &ObjectKey,
        t: Touched,
        events: &mut Vec<WatchEvent>,
    ) -> Option<Arc<StoredObject>> {
        let resource_version = super::revision(seq, events.len() as u64 + 1);
        let Touched { before, mut candidates } = t;
        // The first document by path wins; one that cannot be read any more is dropped.
        let winner = loop {
            let Some((location, candidate)) = candidates.pop_first() else {
                break None;
            };
            let content = match candidate {
                Candidate::Current => before.as_ref().map(|b| b.content()),
                Candidate::New(v) => Some(object::strip_derived(v)),
                Candidate::Unread => read_document(mirror, info, &location, key, self),
            };
            if let Some(content) = content {
                break Some((location, content));
            }
        };
        let others: Vec<Location> = candidates.into_keys().collect();
        if !others.is_empty() {
            warn!(object = %key, winner = ?winner.as_ref().map(|w| &w.0.path), others = ?others.iter().map(|l| &l.path).collect::<Vec<_>>(),
                "several documents claim the same object; the first by path wins");
        }
        match (before, winner) {
            (None, None) => None,
            (Some(old), None) => {
                self.remove(key);
                let object = Arc::new(old.at_revision(resource_version));
                events.push(WatchEvent { kind: EventType::Deleted, object, previous: None });
                None
            }
            (before, Some((location, content))) => {
                let (derived, kind) = match &before {
                    None => (
                        Derived {
                            resource_version,
                            uid: object::stable_uid(&format!("{key}@{}", info.id)),
                            creation_timestamp: object::rfc3339(info.time),
                            generation: 1,
                        },
                        Some(EventType::Added),
                    ),
                    Some(old) => {
                        let old_content = old.content();
                        if old_content == content {
                            (old.derived.clone(), None)
                        } else {
                            let status = self.registry.by_kind(&key.gk).is_some_and(|rt| rt.status);
                            let derived = old.derived.after_change(resource_version, &old_content, &content, status);
                            (derived, Some(EventType::Modified))
                        }
                    }
                };
                let stored = Arc::new(StoredObject::new(key.clone(), Some(location), content, derived));
                self.insert(Entry { object: stored.clone(), others });
                if let Some(kind) = kind {
                    events.push(WatchEvent { kind, object: stored.clone(), previous: before });
                }
                Some(stored)
            }
        }
    }

    /// Adds, changes or removes the type a CRD defines; returns whether the registry changed.
    fn update_registry(&mut self, key: &ObjectKey, crd: Option<&StoredObject>) -> bool {
        let mut registry = (*self.registry).clone();
        let changed = match crd {
            Some(obj) => match registry.apply_crd(&obj.value()) {
                Ok(changed) => changed,
                Err(e) => {
                    warn!(crd = %key.name, error = %e, "ignoring a CustomResourceDefinition");
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
                let locations: Vec<Location> = self.touch(touched, &key).candidates.keys().cloned().collect();
                for location in locations {
                    if let Some(value) = read_document(mirror, info, &location, &key, self) {
                        self.unknown.insert(location.clone(), value);
                    }
                    self.set_claim_key(&location, None);
                }
                if let Some(t) = touched.get_mut(&key) {
                    t.candidates.clear();
                }
            }
        }
        let known: Vec<Location> =
            self.unknown.iter().filter(|(_, v)| self.key_of(v).is_some()).map(|(l, _)| l.clone()).collect();
        for location in known {
            if let Some(value) = self.unknown.remove(&location) {
                let key = self.key_of(&value);
                self.set_claim_key(&location, key.clone());
                if let Some(key) = key {
                    self.touch(touched, &key).candidates.insert(location, Candidate::New(value));
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

fn group_kind(value: &Value) -> GroupKind {
    GroupKind::from_api_version(
        value.get("apiVersion").and_then(Value::as_str).unwrap_or_default(),
        value.get("kind").and_then(Value::as_str).unwrap_or_default(),
    )
}

/// Reads the document at `location` from the commit again, checking that it still claims `key`.
fn read_document(
    mirror: &Mirror,
    info: &CommitInfo,
    location: &Location,
    key: &ObjectKey,
    state: &State,
) -> Option<Value> {
    let bytes = mirror.reader().file_at(info.id, &location.path).ok()??;
    let parsed = document::parse_file(&location.path, &bytes);
    let found = parsed.objects.into_iter().find(|o| o.doc == location.doc && o.item == location.item)?;
    let matches = state.key_of(&found.value).as_ref() == Some(key) || group_kind(&found.value) == key.gk;
    matches.then(|| object::strip_derived(found.value))
}
