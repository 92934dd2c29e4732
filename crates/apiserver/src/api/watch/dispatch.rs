//! One dispatcher per watched kind hands each event to every watch of the kind that keeps up with
//! the log, as kube-apiserver's cacher does (`dispatchEvents`): the event is read once, while its
//! object is in cache, instead of by each of a thousand watches waking up and walking the log on
//! its own. Watches of one target with the same selectors report the same lines: the dispatcher
//! works them out once per such class and queues the same chunks for all its watches.
//!
//! A watch reads the log itself until it has caught up with the dispatcher (it starts from an older
//! resourceVersion, or with initial events), then attaches. A watch whose queue holds more than
//! [`QUEUED`] bytes is let go and reads the log itself again from where its queue ends, as every
//! watch did before: it gets `410 Gone` once the log no longer holds its resourceVersion, where
//! kube-apiserver closes a watcher whose buffer is full and its client relists.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

use super::{Api, ListParams, Target, View, take_chunk};
use gitbacked_core::registry::GroupKind;

/// The most events a dispatcher reads in one round, holding its lock: a watch that attaches or
/// ends waits for at most one round.
const ROUND: usize = 1024;
/// The most bytes queued for one watch (chunks shared with its class count in full); beyond them
/// the watch reads the log itself.
const QUEUED: usize = 16 << 20;

/// Which watches report the same lines: those of one target (the resource type as served, its
/// version, the namespace) with the same selectors, that want objects.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct ClassKey {
    /// The served resource type, by identity: the registry replaces it when its CRD changes, and
    /// the class's view holds it, so the address is not reused while the class lives.
    resource_type: usize,
    version: String,
    namespace: Option<String>,
    label_selector: Option<String>,
    field_selector: Option<String>,
}

impl ClassKey {
    /// The class of a watch of `target` with the selectors of `params`.
    pub(super) fn of(target: &Target, params: &ListParams) -> Self {
        ClassKey {
            resource_type: Arc::as_ptr(&target.rt) as usize,
            version: target.version.clone(),
            namespace: target.namespace.clone(),
            label_selector: params.label_selector.clone(),
            field_selector: params.field_selector.clone(),
        }
    }
}

/// The dispatchers of an [`Api`], one per watched kind (created with the kind's first watch).
pub(in crate::api) struct Dispatchers {
    hubs: Mutex<HashMap<GroupKind, Arc<Hub>>>,
    /// The most bytes queued for one watch.
    queued: usize,
}

impl Default for Dispatchers {
    fn default() -> Self {
        Dispatchers { hubs: Mutex::default(), queued: QUEUED }
    }
}

impl Dispatchers {
    /// Dispatchers that queue at most `bytes` for a watch.
    #[cfg(test)]
    pub(in crate::api) fn with_queue(bytes: usize) -> Self {
        Dispatchers { queued: bytes, ..Default::default() }
    }

    /// How many watches of `kind` are attached.
    #[cfg(test)]
    pub(in crate::api) fn attached(&self, kind: &GroupKind) -> usize {
        let hub = self.hubs.lock().unwrap_or_else(|e| e.into_inner()).get(kind).cloned();
        hub.map_or(0, |hub| hub.lock().classes.values().map(|class| class.members.len()).sum())
    }

    /// Attaches a watch of `view`'s kind that has every event up to `cursor` to its kind's
    /// dispatcher; `None` when the dispatcher is at an older resourceVersion with events before
    /// `cursor` still to hand out (the watch keeps reading the log itself).
    pub(super) fn attach(&self, api: &Api, class: &ClassKey, view: &View, cursor: u64) -> Option<Attachment> {
        let hub = {
            let mut hubs = self.hubs.lock().unwrap_or_else(|e| e.into_inner());
            let hub = || Arc::new(Hub::new(view.kind.clone(), self.queued));
            hubs.entry(view.kind.clone()).or_insert_with(hub).clone()
        };
        let inbox = hub.attach(api, class, view, cursor)?;
        Some(Attachment { hub, class: class.clone(), inbox })
    }
}

/// A watch's place at its kind's dispatcher; dropping it detaches the watch.
pub(super) struct Attachment {
    hub: Arc<Hub>,
    class: ClassKey,
    /// Where the dispatcher queues the watch's chunks.
    pub(super) inbox: Arc<Inbox>,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        if let Some(class) = state.classes.get_mut(&self.class) {
            class.members.retain(|inbox| !Arc::ptr_eq(inbox, &self.inbox));
            if class.members.is_empty() {
                state.classes.remove(&self.class);
            }
        }
        if state.classes.is_empty() {
            // The task ends rather than wait for a change with no watch to hand it to.
            self.hub.idle.notify_one();
        }
    }
}

/// Whether the dispatcher still serves a watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Status {
    /// It queues the watch's lines.
    Attached,
    /// It let the watch go (its queue was full, or the log restarted): the watch reads the log
    /// itself from its cursor.
    Released,
    /// The storage closed: the watch ends.
    Closed,
}

struct Queue {
    chunks: VecDeque<Bytes>,
    /// The bytes of `chunks`.
    bytes: usize,
    /// The resourceVersion up to which the dispatcher has handed out events.
    cursor: u64,
    status: Status,
}

/// The chunks a dispatcher queued for one watch.
pub(super) struct Inbox {
    queue: Mutex<Queue>,
    ready: Notify,
}

impl Inbox {
    fn new(cursor: u64) -> Self {
        let queue = Queue { chunks: VecDeque::new(), bytes: 0, cursor, status: Status::Attached };
        Inbox { queue: Mutex::new(queue), ready: Notify::new() }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the queued chunks to `pending` and the cursor to the dispatcher's.
    pub(super) fn take(&self, pending: &mut VecDeque<Bytes>, cursor: &mut u64) -> Status {
        let mut queue = self.lock();
        pending.extend(queue.chunks.drain(..));
        queue.bytes = 0;
        *cursor = queue.cursor;
        queue.status
    }

    /// Resolves when chunks were queued or the status changed since the last call.
    pub(super) async fn queued(&self) {
        self.ready.notified().await;
    }

    /// Queues a round's chunks, up to `cursor`; `false` (and the watch released) when the queue
    /// would hold more than `limit` bytes.
    fn deliver(&self, chunks: &[Bytes], cursor: u64, limit: usize) -> bool {
        let mut queue = self.lock();
        let bytes: usize = chunks.iter().map(Bytes::len).sum();
        if queue.bytes + bytes > limit {
            self.release(queue, Status::Released);
            return false;
        }
        queue.chunks.extend(chunks.iter().cloned());
        queue.bytes += bytes;
        queue.cursor = cursor;
        drop(queue);
        if bytes > 0 {
            self.ready.notify_one();
        }
        true
    }

    fn release(&self, mut queue: MutexGuard<'_, Queue>, status: Status) {
        queue.status = status;
        drop(queue);
        self.ready.notify_one();
    }
}

/// Watches of one class: their view, and where their lines go.
struct Class {
    view: View,
    members: Vec<Arc<Inbox>>,
    /// The round's lines, before they are cut into chunks.
    lines: VecDeque<Bytes>,
}

struct HubState {
    /// The resourceVersion up to which the events were handed out.
    cursor: u64,
    classes: HashMap<ClassKey, Class>,
    /// Whether the dispatching task runs.
    running: bool,
}

/// The dispatcher of one kind.
struct Hub {
    kind: GroupKind,
    /// The most bytes queued for one watch.
    queued: usize,
    state: Mutex<HubState>,
    /// Notified when the last watch detaches.
    idle: Notify,
}

/// What a round left to do.
enum Round {
    /// Events remain past the round's.
    More,
    /// Every event was handed out.
    CaughtUp,
    /// No watch is attached: the task ends.
    Stop,
}

impl Hub {
    fn new(kind: GroupKind, queued: usize) -> Self {
        let state = HubState { cursor: 0, classes: HashMap::new(), running: false };
        Hub { kind, queued, state: Mutex::new(state), idle: Notify::new() }
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn attach(self: &Arc<Self>, api: &Api, class: &ClassKey, view: &View, cursor: u64) -> Option<Arc<Inbox>> {
        let mut state = self.lock();
        if state.classes.is_empty() {
            state.cursor = cursor;
        } else if cursor != state.cursor {
            // The watch may start where the dispatcher is, or later if no event came between.
            let events = api.storage().events_since(&self.kind, state.cursor).ok()?;
            if cursor < state.cursor || events.iter().next().is_some_and(|e| e.revision() <= cursor) {
                return None;
            }
        }
        let inbox = Arc::new(Inbox::new(cursor));
        state
            .classes
            .entry(class.clone())
            .or_insert_with(|| Class { view: view.clone(), members: Vec::new(), lines: VecDeque::new() })
            .members
            .push(inbox.clone());
        if !state.running {
            state.running = true;
            tokio::spawn(self.clone().run(api.clone()));
        }
        Some(inbox)
    }

    /// Hands out the kind's events as they come, until no watch is attached.
    async fn run(self: Arc<Self>, api: Api) {
        let mut changes = api.storage().subscribe(&self.kind);
        loop {
            match self.round(&api) {
                Round::Stop => return,
                // Let the watches send what was queued before the next round.
                Round::More => tokio::task::yield_now().await,
                Round::CaughtUp => {
                    let changed = tokio::select! {
                        changed = changes.changed() => changed,
                        _ = self.idle.notified() => Ok(()),
                    };
                    if changed.is_err() {
                        return self.release_all(Status::Closed);
                    }
                }
            }
        }
    }

    /// Lets every watch go with `status`; the task ends.
    fn release_all(&self, status: Status) {
        let mut state = self.lock();
        for class in std::mem::take(&mut state.classes).into_values() {
            for inbox in class.members {
                inbox.release(inbox.lock(), status);
            }
        }
        state.running = false;
    }

    /// Hands out up to [`ROUND`] events past the cursor: each event is offered to every class
    /// while its object is in cache, then each class's lines are cut into chunks once and queued
    /// for every watch of the class.
    fn round(&self, api: &Api) -> Round {
        let mut state = self.lock();
        if state.classes.is_empty() {
            state.running = false;
            return Round::Stop;
        }
        let Ok(events) = api.storage().events_since(&self.kind, state.cursor) else {
            // The log restarted: each watch finds out where it stands on its own.
            drop(state);
            self.release_all(Status::Released);
            return Round::Stop;
        };
        let state = &mut *state;
        for event in events.iter().take(ROUND) {
            for class in state.classes.values_mut() {
                class.view.offer(api, event, &mut class.lines);
            }
            state.cursor = event.revision();
        }
        let cursor = state.cursor;
        for class in state.classes.values_mut() {
            let chunks: Vec<Bytes> = std::iter::from_fn(|| take_chunk(&mut class.lines)).collect();
            class.members.retain(|inbox| inbox.deliver(&chunks, cursor, self.queued));
        }
        state.classes.retain(|_, class| !class.members.is_empty());
        match events.len() > ROUND {
            true => Round::More,
            false => Round::CaughtUp,
        }
    }
}
