//! Watch events: what changed, at which resourceVersion.

use std::collections::VecDeque;
use std::sync::Arc;

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

/// The changes kept for watches that resume from an older resourceVersion: a window of at most
/// `capacity` events, oldest first, and the current resourceVersion.
#[derive(Debug)]
pub struct WatchLog {
    events: VecDeque<WatchEvent>,
    capacity: usize,
    /// The resourceVersion just before the oldest event kept: the oldest a watch may resume from.
    start: u64,
    revision: u64,
}

impl WatchLog {
    /// An empty log keeping at most `capacity` events (at least one).
    pub fn new(capacity: usize) -> Self {
        WatchLog { events: VecDeque::new(), capacity: capacity.max(1), start: 0, revision: 0 }
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

    /// Appends an event, dropping the oldest beyond the capacity.
    pub fn record(&mut self, event: WatchEvent) {
        self.revision = self.revision.max(event.revision());
        self.events.push_back(event);
        while self.events.len() > self.capacity {
            if let Some(dropped) = self.events.pop_front() {
                self.start = dropped.revision();
            }
        }
    }

    /// Every event after `since`, oldest first; [`Expired`] when `since` is outside the window.
    pub fn since(&self, since: u64) -> Result<Vec<WatchEvent>, Expired> {
        if since < self.start || since > self.revision {
            return Err(Expired { oldest: self.start });
        }
        let first = self.events.partition_point(|e| e.revision() <= since);
        Ok(self.events.range(first..).cloned().collect())
    }

    /// Forgets every event: a watch from any earlier resourceVersion gets [`Expired`] and relists.
    pub fn restart(&mut self) {
        self.events.clear();
        self.start = self.revision;
    }
}
