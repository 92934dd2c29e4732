//! The status ref's documents in the store (see [`crate::status_ref`]): kept beside the branch's
//! objects, merged into them when they are served. A step of the status ref is numbered like a
//! commit of the branch: the next number after the store's current one.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use gitbacked_core::watch::{EventType, WatchEvent};
use gitbacked_core::{ObjectKey, StoredObject, document, object};
use gix::ObjectId;
use tracing::warn;

use super::{Entry, State};
use crate::mirror::{GitError, Mirror};
use crate::status_ref::Overlay;

/// The documents of the status ref, by object and by file.
#[derive(Clone, Default)]
pub(crate) struct Overlays {
    by_key: HashMap<ObjectKey, Overlay>,
    by_file: HashMap<Arc<str>, Vec<ObjectKey>>,
    /// The status ref's commit they were read from.
    pub(crate) tip: Option<ObjectId>,
}

impl Overlays {
    pub(crate) fn get(&self, key: &ObjectKey) -> Option<&Overlay> {
        self.by_key.get(key)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// The files of the status ref a step changed: each path with its new content (`None`: removed).
pub(crate) struct StatusStep {
    tip: ObjectId,
    files: Vec<(Arc<str>, Option<Vec<u8>>)>,
}

impl StatusStep {
    /// Reads what changed on the status ref from the commit `from` (none: an empty ref) to `to`.
    pub(crate) fn read(mirror: &Mirror, from: Option<ObjectId>, to: ObjectId) -> Result<Self, GitError> {
        let reader = mirror.reader();
        let old = from.map(|c| reader.commit_info(c)).transpose()?.and_then(|i| i.subtree);
        let new = reader.commit_info(to)?.subtree;
        let mut files = Vec::new();
        for change in reader.diff(old, new, crate::layout::holds_objects)? {
            let bytes = change.new.map(|id| reader.blob(id)).transpose()?;
            files.push((Arc::from(change.path.as_str()), bytes));
        }
        Ok(StatusStep { tip: to, files })
    }
}

impl State {
    /// Applies a step of the status ref as the step numbered `seq`: the objects whose bookkeeping
    /// it changed are served anew, with their events.
    pub(crate) fn apply_status_step(&mut self, mirror: &Mirror, step: StatusStep, seq: u64) {
        let mut events = Vec::new();
        for key in self.read_status_step(step) {
            self.serve_bookkeeping(mirror, &key, seq, &mut events);
        }
        for event in events {
            self.log.record(event);
        }
        self.seq = seq;
    }

    /// Takes in what a step of the status ref holds; returns the objects it concerns, to be
    /// served anew (see [`State::serve_bookkeeping`]).
    pub(crate) fn read_status_step(&mut self, step: StatusStep) -> BTreeSet<ObjectKey> {
        let mut touched = BTreeSet::new();
        for (path, bytes) in step.files {
            for key in self.overlays.by_file.remove(&path).unwrap_or_default() {
                self.overlays.by_key.remove(&key);
                touched.insert(key);
            }
            let Some(bytes) = bytes else { continue };
            let parsed = document::parse_file(&path, &bytes);
            for e in &parsed.errors {
                warn!(file = %path, line = e.line, error = %e.message, "skipping a document of the status ref");
            }
            let read: Vec<(ObjectKey, Overlay)> =
                parsed.objects.iter().filter_map(|o| Overlay::read(&o.value)).collect();
            let keys: Vec<ObjectKey> = read.iter().map(|(k, _)| k.clone()).collect();
            for (key, overlay) in read {
                self.overlays.by_key.insert(key.clone(), overlay);
                touched.insert(key);
            }
            if !keys.is_empty() {
                self.overlays.by_file.insert(path, keys);
            }
        }
        self.overlays.tip = Some(step.tip);
        touched
    }

    /// Serves an object with the bookkeeping the status ref now holds for it.
    pub(crate) fn serve_bookkeeping(
        &mut self,
        mirror: &Mirror,
        key: &ObjectKey,
        seq: u64,
        events: &mut Vec<WatchEvent>,
    ) {
        let Some(Entry { object: before, others }) = self.entry(key).cloned() else { return };
        let old = before.content();
        let uid = before.derived.uid.as_str();
        let content = match self.overlays.get(key).filter(|o| &*o.uid == uid) {
            Some(overlay) => {
                let mut content = old.clone();
                self.bookkeeping.overlay(&mut content, uid, Some(overlay));
                content
            }
            // Nothing on the ref for it any more: its document's own parts are served again.
            None => match (&before.location, self.tip) {
                (Some(location), Some(tip)) => super::ingest::read_document(mirror, tip, location, key, self)
                    .map(|json| object::strip_derived(super::ingest::parse_json(&json)))
                    .unwrap_or_else(|| old.clone()),
                _ => old.clone(),
            },
        };
        if content == old {
            return;
        }
        let resource_version = super::revision(seq, events.len() as u64 + 1);
        let status = self.registry.by_kind(&key.gk).is_some_and(|rt| rt.status);
        let derived = before.derived.after_change(resource_version, &old, &content, status);
        let stored = Arc::new(StoredObject::new(key.clone(), before.location.clone(), content, derived));
        self.insert(Entry { object: stored.clone(), others });
        events.push(WatchEvent::new(EventType::Modified, stored, Some(before)));
    }
}
