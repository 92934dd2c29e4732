//! Watch events: what changed, at which resourceVersion.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::object::StoredObject;

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
    /// Whether the labels changed in a modification.
    relabeled: bool,
    /// The event as watches send it, serialized by the first watch that sends it and shared by
    /// the others (see [`WatchEvent::frame`]).
    frame: OnceLock<Bytes>,
}

impl WatchEvent {
    /// An event of `kind` for `object`, with the object's state before a modification.
    pub fn new(kind: EventType, object: Arc<StoredObject>, previous: Option<Arc<StoredObject>>) -> Self {
        let relabeled = previous.as_ref().is_some_and(|p| p.labels != object.labels);
        WatchEvent { kind, object, previous, relabeled, frame: OnceLock::new() }
    }

    /// Whether a modification changed the object's labels: a watch that selects by labels
    /// alone passes the object before it as it passes the object after it when they did not.
    pub fn relabeled(&self) -> bool {
        self.relabeled
    }

    /// The event's resourceVersion.
    pub fn revision(&self) -> u64 {
        self.object.derived.resource_version
    }

    /// The event as every watch that serves the object as it is stored sends it (`kind` as it
    /// is, the object at its own version): serialized by `serialize` for the first such watch,
    /// then shared, as kube-apiserver's watch cache shares an object's serialization among its
    /// watchers (`cachingObject`). Every caller must serialize the same bytes.
    pub fn frame(&self, serialize: impl FnOnce() -> Bytes) -> Bytes {
        self.frame.get_or_init(serialize).clone()
    }
}

/// A watch asked for changes older than the retained window.
#[derive(Debug, PartialEq, Eq)]
pub struct Expired {
    /// The oldest resourceVersion a watch may start from.
    pub oldest: u64,
}

/// How many events a block of the log holds, at most.
const BLOCK: usize = 1024;

/// A run of consecutive events of the log, filled in order and never changed once written: the
/// log appends to its newest block while watches read the events before it, without a copy.
type Block = Arc<[OnceLock<WatchEvent>]>;

/// The changes kept for watches that resume from an older resourceVersion: a window of at most
/// `capacity` events, oldest first, and the current resourceVersion.
///
/// The events are kept in blocks that [`WatchLog::since`] hands out shared: a watch behind by
/// thousands of events reads them where the log keeps them. A block goes once all its events have
/// left the window, so up to one block's worth of events beyond the window stays in memory.
#[derive(Debug)]
pub struct WatchLog {
    blocks: VecDeque<Block>,
    /// Where the oldest event kept is in the first block.
    first: usize,
    /// How many events are kept.
    len: usize,
    capacity: usize,
    /// The resourceVersion just before the oldest event kept: the oldest a watch may resume from.
    start: u64,
    revision: u64,
}

impl WatchLog {
    /// An empty log keeping at most `capacity` events (at least one).
    pub fn new(capacity: usize) -> Self {
        WatchLog { blocks: VecDeque::new(), first: 0, len: 0, capacity: capacity.max(1), start: 0, revision: 0 }
    }

    /// How many events the log keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The current resourceVersion: that of the newest change.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Moves the current resourceVersion forward without an event (a commit that changed no object).
    pub fn advance_to(&mut self, revision: u64) {
        self.revision = self.revision.max(revision);
    }

    /// The block size: small windows keep small blocks.
    fn block_len(&self) -> usize {
        self.capacity.min(BLOCK)
    }

    /// The `i`th event kept, oldest first.
    fn get(&self, i: usize) -> Option<&WatchEvent> {
        let at = self.first + i;
        let block_len = self.block_len();
        self.blocks.get(at / block_len)?.get(at % block_len)?.get()
    }

    /// Appends an event, dropping the oldest beyond the capacity.
    pub fn record(&mut self, event: WatchEvent) {
        self.revision = self.revision.max(event.revision());
        let block_len = self.block_len();
        let end = self.first + self.len;
        if end == self.blocks.len() * block_len {
            self.blocks.push_back((0..block_len).map(|_| OnceLock::new()).collect());
        }
        if let Some(slot) = self.blocks.back().and_then(|block| block.get(end % block_len)) {
            let _ = slot.set(event);
            self.len += 1;
        }
        while self.len > self.capacity {
            self.start = self.get(0).map_or(self.start, WatchEvent::revision);
            self.first += 1;
            self.len -= 1;
            if self.first == block_len {
                self.blocks.pop_front();
                self.first = 0;
            }
        }
    }

    /// Every event after `since`, oldest first; [`Expired`] when `since` is outside the window.
    pub fn since(&self, since: u64) -> Result<WatchEvents, Expired> {
        if since < self.start || since > self.revision {
            return Err(Expired { oldest: self.start });
        }
        // The first event after `since`: events are kept in resourceVersion order.
        let (mut low, mut high) = (0, self.len);
        while low < high {
            let mid = (low + high) / 2;
            match self.get(mid).is_some_and(|e| e.revision() <= since) {
                true => low = mid + 1,
                false => high = mid,
            }
        }
        let block_len = self.block_len();
        let from = self.first + low;
        let end = self.first + self.len;
        let blocks = match from < end {
            true => self.blocks.range(from / block_len..end.div_ceil(block_len)).cloned().collect(),
            false => Vec::new(),
        };
        Ok(WatchEvents { blocks, first: from % block_len, len: end - from })
    }

    /// Forgets every event: a watch from any earlier resourceVersion gets [`Expired`] and relists.
    pub fn restart(&mut self) {
        self.blocks.clear();
        self.first = 0;
        self.len = 0;
        self.start = self.revision;
    }
}

/// Events of a [`WatchLog`] after a resourceVersion, oldest first, read where the log keeps them.
#[derive(Clone, Debug, Default)]
pub struct WatchEvents {
    blocks: Vec<Block>,
    /// Where the first event is in the first block.
    first: usize,
    len: usize,
}

impl WatchEvents {
    /// How many events there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The events, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &WatchEvent> {
        let end = self.first + self.len;
        self.blocks
            .iter()
            .enumerate()
            .flat_map(move |(i, block)| {
                let from = if i == 0 { self.first } else { 0 };
                let to = end.saturating_sub(i * block.len()).min(block.len());
                block.get(from..to).unwrap_or_default()
            })
            .filter_map(OnceLock::get)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::object::{Derived, ObjectKey};
    use crate::registry::GroupKind;

    fn event(revision: u64) -> WatchEvent {
        let key = ObjectKey::new(
            GroupKind { group: String::new(), kind: "ConfigMap".into() },
            "default",
            format!("cm-{revision}"),
        );
        let derived = Derived {
            resource_version: revision,
            uid: crate::uid::stable_uid("cm"),
            creation_timestamp: 0,
            generation: 1,
        };
        let object = StoredObject::new(key, None, json!({"apiVersion": "v1", "kind": "ConfigMap"}), derived);
        WatchEvent::new(EventType::Added, Arc::new(object), None)
    }

    fn revisions(events: &WatchEvents) -> Vec<u64> {
        events.iter().map(WatchEvent::revision).collect()
    }

    #[test]
    fn a_window_over_several_blocks_hands_out_every_event_after_a_revision() {
        let mut log = WatchLog::new(2500);
        for revision in 1..=5000 {
            log.record(event(revision));
        }
        // The oldest 2500 are gone: 2500 is the oldest resourceVersion to resume from.
        assert_eq!(log.since(2499).unwrap_err(), Expired { oldest: 2500 });
        for since in [2500, 3071, 3072, 4096, 4999, 5000] {
            let events = log.since(since).unwrap();
            assert_eq!(events.len(), (5000 - since) as usize);
            assert_eq!(revisions(&events), (since + 1..=5000).collect::<Vec<_>>(), "since {since}");
        }
        assert_eq!(log.since(5001).unwrap_err(), Expired { oldest: 2500 });
        // What a watch holds stays as it was while the log moves on.
        let held = log.since(4990).unwrap();
        for revision in 5001..=8000 {
            log.record(event(revision));
        }
        assert_eq!(revisions(&held), (4991..=5000).collect::<Vec<_>>());
        assert_eq!(revisions(&log.since(7990).unwrap()), (7991..=8000).collect::<Vec<_>>());
    }

    #[test]
    fn a_small_window_keeps_its_capacity_and_a_restart_forgets_everything() {
        let mut log = WatchLog::new(3);
        for revision in 1..=10 {
            log.record(event(revision));
        }
        assert_eq!(revisions(&log.since(7).unwrap()), [8, 9, 10]);
        assert_eq!(log.since(6).unwrap_err(), Expired { oldest: 7 });
        log.restart();
        assert!(log.since(10).unwrap().is_empty());
        assert_eq!(log.since(9).unwrap_err(), Expired { oldest: 10 });
        log.record(event(11));
        assert_eq!(revisions(&log.since(10).unwrap()), [11]);
    }

    #[test]
    fn a_frame_is_serialized_once_and_shared() {
        let event = event(1);
        let first = event.frame(|| Bytes::from_static(b"{\"type\":\"ADDED\"}\n"));
        let second = event.frame(|| unreachable!("serialized once"));
        assert_eq!((first.as_ptr(), first.len()), (second.as_ptr(), second.len()));
    }
}
