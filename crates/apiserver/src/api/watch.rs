//! WATCH: newline-delimited JSON events from any resourceVersion in the retained window, initial
//! events (and streaming lists ending in an `initial-events-end` bookmark), bookmarks, selectors,
//! and an ERROR event with code 410 inside the stream when the resourceVersion is too old. A watch
//! reads the store's log itself until it has caught up, then its kind's dispatcher hands it its
//! lines (see [`dispatch`]).

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use serde_json::json;
use tokio::time::Instant;

use super::list::{Filter, ListParams, ResourceVersionMatch};
use super::{Api, Format, Target, table};
use gitbacked_core::registry::GroupKind;
use gitbacked_core::status::{ApiResult, StatusError};
use gitbacked_core::{EventType, StoredObject, WatchEvent};

mod dispatch;

pub(super) use dispatch::Dispatchers;

/// How often a watch that allows bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(10);
/// The most bytes of pending event lines copied into one chunk.
const CHUNK: usize = 64 * 1024;
/// How long a watch lasts when the client sets no timeout (the apiserver picks 30–60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// Query parameters of a WATCH.
#[derive(Clone, Debug, Default)]
pub struct WatchParams {
    /// Selectors and the resourceVersion to start from.
    pub list: ListParams,
    /// `allowWatchBookmarks`.
    pub allow_bookmarks: bool,
    /// `sendInitialEvents`.
    pub send_initial_events: Option<bool>,
    /// `timeoutSeconds`.
    pub timeout: Option<Duration>,
    /// Objects or Table rows.
    pub format: Format,
}

/// What a watch reports and how: its target, selectors and format. Watches of one target with the
/// same selectors that want objects report the same lines, which the dispatcher works out once for
/// all of them (see [`dispatch`]).
#[derive(Clone)]
struct View {
    target: Target,
    /// The target's serving, and the kind of the store's events it reports: worked out once.
    serving: super::Serving,
    kind: GroupKind,
    filter: Filter,
    /// Whether the filter passes every object of the target (no selector, all namespaces).
    everything: bool,
    /// Whether the filter reads labels only (see [`Filter::by_labels`]).
    by_labels: bool,
    format: Format,
    /// Table column definitions go with the first row only.
    headers_sent: bool,
}

struct Watch {
    api: Api,
    view: View,
    /// Which watches report the same lines as this one; `None` for tables and metadata, which
    /// the dispatcher does not serve.
    class: Option<dispatch::ClassKey>,
    /// The resourceVersion up to which this watch has its events (in `pending` or sent).
    cursor: u64,
    /// Event lines not sent yet, oldest first: lines of this watch's own, frames shared with
    /// other watches (see [`WatchEvent::frame`]) and chunks shared with its class.
    pending: VecDeque<Bytes>,
    /// Where the dispatcher hands this watch its lines while it keeps up; `None` while it reads
    /// the log itself (from a resourceVersion behind the dispatcher's, or after falling behind).
    attached: Option<dispatch::Attachment>,
    changes: tokio::sync::watch::Receiver<u64>,
    deadline: Instant,
    bookmarks: bool,
    next_bookmark: Instant,
    done: bool,
}

/// The event line `{"type":<kind>,"object":<object>}`, newline-terminated.
fn line(kind: &str, object: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object.len() + kind.len() + 24);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

/// Pending lines, whole, as the next chunk to send: the first as it is when the next would not fit
/// beside it (a watcher keeping up sends a shared frame or chunk without a copy), or lines copied
/// into one chunk of up to [`CHUNK`] bytes, so that a watcher behind by thousands of events (a
/// person's commit changing many objects) gets them in a few writes, not one each.
fn take_chunk(pending: &mut VecDeque<Bytes>) -> Option<Bytes> {
    let first = pending.pop_front()?;
    if pending.front().is_none_or(|next| first.len() + next.len() > CHUNK) {
        return Some(first);
    }
    let mut out = BytesMut::with_capacity(CHUNK);
    out.extend_from_slice(&first);
    while let Some(next) = pending.front().filter(|next| out.len() + next.len() <= CHUNK) {
        out.extend_from_slice(next);
        pending.pop_front();
    }
    Some(out.freeze())
}

impl View {
    fn new(target: &Target, filter: Filter, format: Format) -> Self {
        View {
            target: target.clone(),
            serving: super::Serving::of(target),
            kind: target.stored_kind(),
            everything: filter.selects_all(),
            by_labels: filter.by_labels(),
            filter,
            format,
            headers_sent: false,
        }
    }

    fn push(&mut self, api: &Api, kind: EventType, object: &StoredObject, out: &mut VecDeque<Bytes>) {
        let body = match self.format {
            Format::Object | Format::Metadata => api.item(&self.serving, &self.target, object, self.format),
            Format::Table(include) => {
                let meta = json!({"resourceVersion": object.derived.resource_version.to_string()});
                let rows = table::table(&self.target, &[object], meta, include, !self.headers_sent);
                self.headers_sent = true;
                Bytes::from(serde_json::to_vec(&rows).unwrap_or_default())
            }
        };
        out.push_back(line(kind.as_str(), &body));
    }

    /// Pushes a store event as it is: the frame it shares with every watch that serves its
    /// object as stored, or a line of this view's own.
    fn push_event(&mut self, api: &Api, event: &WatchEvent, out: &mut VecDeque<Bytes>) {
        if self.format != Format::Object || !self.serving.as_stored(&event.object) {
            return self.push(api, event.kind, &event.object, out);
        }
        let (serving, target) = (&self.serving, &self.target);
        let frame = event.frame(|| line(event.kind.as_str(), &api.served_as(serving, target, &event.object)));
        out.push_back(frame);
    }

    /// Turns a store event into what this view reports, following its selectors.
    fn offer(&mut self, api: &Api, event: &WatchEvent, out: &mut VecDeque<Bytes>) {
        if *event.object.key.gk != self.kind {
            return;
        }
        if self.everything {
            return self.push_event(api, event, out);
        }
        let now = self.filter.matches(&event.object);
        match event.kind {
            EventType::Modified => {
                let before = match event.previous.as_deref() {
                    Some(_) if self.by_labels && !event.relabeled() => now,
                    Some(previous) => self.filter.matches(previous),
                    None => false,
                };
                match (before, now) {
                    (true, true) => self.push_event(api, event, out),
                    (false, true) => self.push(api, EventType::Added, &event.object, out),
                    (true, false) => self.push(api, EventType::Deleted, &event.object, out),
                    (false, false) => {}
                }
            }
            _ if now => self.push_event(api, event, out),
            _ => {}
        }
    }
}

impl Watch {
    fn bookmark(&mut self, initial_events_end: bool) {
        let mut meta = json!({"resourceVersion": self.cursor.to_string()});
        if initial_events_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let target = &self.view.target;
        let object = json!({"kind": target.rt.kind, "apiVersion": target.api_version(), "metadata": meta});
        self.pending.push_back(line("BOOKMARK", &serde_json::to_vec(&object).unwrap_or_default()));
    }

    fn expired(&mut self, oldest: u64) {
        let status = StatusError::gone(format!("too old resource version: {} ({oldest})", self.cursor)).to_status();
        self.pending.push_back(line("ERROR", &serde_json::to_vec(&status).unwrap_or_default()));
        self.done = true;
    }

    /// Reads the store's events past the cursor.
    fn catch_up(&mut self) {
        self.changes.borrow_and_update();
        match self.api.storage.events_since(&self.view.kind, self.cursor) {
            Err(e) => self.expired(e.oldest),
            Ok(events) => {
                for event in events.iter() {
                    self.view.offer(&self.api, event, &mut self.pending);
                    self.cursor = event.revision();
                }
            }
        }
    }

    /// Takes what the dispatcher queued for this watch; back to reading the log itself when the
    /// dispatcher let it go.
    fn receive(&mut self) {
        let Some(attachment) = &self.attached else { return };
        match attachment.inbox.take(&mut self.pending, &mut self.cursor) {
            dispatch::Status::Attached => {}
            dispatch::Status::Released => self.attached = None,
            dispatch::Status::Closed => self.done = true,
        }
    }

    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(chunk) = take_chunk(&mut self.pending) {
                return Some(chunk);
            }
            if self.done || Instant::now() >= self.deadline {
                return None;
            }
            self.receive();
            if self.attached.is_none() && self.pending.is_empty() && !self.done {
                self.catch_up();
                // Caught up with the log: from now on the dispatcher hands this watch its lines.
                if let (true, false, Some(class)) = (self.pending.is_empty(), self.done, &self.class) {
                    self.attached = self.api.dispatchers.attach(&self.api, class, &self.view, self.cursor);
                }
            }
            if !self.pending.is_empty() || self.done {
                continue;
            }
            let wake = if self.bookmarks { self.next_bookmark.min(self.deadline) } else { self.deadline };
            let (attached, changes) = (&self.attached, &mut self.changes);
            let queued = async {
                match attached {
                    Some(attachment) => {
                        attachment.inbox.queued().await;
                        true
                    }
                    None => changes.changed().await.is_ok(),
                }
            };
            // `None`: the time for a bookmark, or the end of the watch, came.
            let open = tokio::select! {
                open = queued => Some(open),
                _ = tokio::time::sleep_until(wake) => None,
            };
            match open {
                Some(open) => self.done |= !open,
                None if self.bookmarks && Instant::now() >= self.next_bookmark => {
                    self.next_bookmark = Instant::now() + BOOKMARK_INTERVAL;
                    // The bookmark goes after what the dispatcher queued, at its resourceVersion.
                    self.receive();
                    self.bookmark(false);
                }
                None => {}
            }
        }
    }
}

impl Api {
    /// WATCH: a stream of newline-terminated JSON watch events; each item holds one or more whole
    /// lines.
    pub fn watch(
        &self,
        target: &Target,
        params: &WatchParams,
    ) -> ApiResult<impl Stream<Item = Bytes> + Send + 'static + use<>> {
        let filter = Filter::new(target, &params.list)?;
        params.list.validate(true)?;
        let rv = params.list.resource_version;
        let initial = match params.send_initial_events {
            Some(true) => {
                if params.list.resource_version_match != Some(ResourceVersionMatch::NotOlderThan) {
                    return Err(StatusError::invalid(
                        "ListOptions",
                        "meta.k8s.io",
                        "",
                        vec![(
                            "resourceVersionMatch".into(),
                            "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan".into(),
                        )],
                    ));
                }
                true
            }
            Some(false) => false,
            // Without a resourceVersion (or with "0"), a watch starts with the current state.
            None => rv.is_none_or(|rv| rv == 0),
        };
        let changes = self.storage.subscribe(&target.stored_kind());
        let timeout = params.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let mut watch = Watch {
            api: self.clone(),
            view: View::new(target, filter, params.format),
            class: (params.format == Format::Object).then(|| dispatch::ClassKey::of(target, &params.list)),
            cursor: 0,
            pending: VecDeque::new(),
            attached: None,
            changes,
            deadline: Instant::now() + timeout,
            bookmarks: params.allow_bookmarks,
            next_bookmark: Instant::now() + BOOKMARK_INTERVAL,
            done: false,
        };
        if initial {
            let (revision, items) = self.select(target, &params.list)?;
            watch.cursor = revision;
            for obj in &items {
                watch.view.push(self, EventType::Added, obj, &mut watch.pending);
            }
            if params.send_initial_events == Some(true) {
                watch.bookmark(true);
            }
        } else {
            watch.cursor = rv.unwrap_or(0);
        }
        Ok(futures::stream::unfold(watch, |mut w| async move { w.next().await.map(|line| (line, w)) }))
    }
}
