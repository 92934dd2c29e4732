//! WATCH: newline-delimited JSON events from any resourceVersion in the retained window, initial
//! events (and streaming lists ending in an `initial-events-end` bookmark), bookmarks, selectors,
//! and an ERROR event with code 410 inside the stream when the resourceVersion is too old.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use serde_json::json;
use tokio::time::Instant;

use super::list::{Filter, ListParams, ResourceVersionMatch};
use super::{Api, Format, Target, table};
use gitbacked_core::status::{ApiResult, StatusError};
use gitbacked_core::{EventType, StoredObject, WatchEvent};

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

struct Watch {
    api: Api,
    target: Target,
    /// The target's serving, and the kind of the store's events it reports: worked out once.
    serving: super::Serving,
    kind: gitbacked_core::registry::GroupKind,
    filter: Filter,
    /// Whether the filter passes every object of the target (no selector, all namespaces).
    everything: bool,
    /// Whether the filter reads labels only (see [`Filter::by_labels`]).
    by_labels: bool,
    cursor: u64,
    /// Event lines not sent yet, oldest first: lines of this watch's own and frames shared
    /// with other watches (see [`WatchEvent::frame`]).
    pending: VecDeque<Bytes>,
    changes: tokio::sync::watch::Receiver<u64>,
    deadline: Instant,
    bookmarks: bool,
    next_bookmark: Instant,
    done: bool,
    format: Format,
    /// Table column definitions go with the first row only.
    headers_sent: bool,
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

impl Watch {
    fn bookmark(&mut self, initial_events_end: bool) {
        let mut meta = json!({"resourceVersion": self.cursor.to_string()});
        if initial_events_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({"kind": self.target.rt.kind, "apiVersion": self.target.api_version(), "metadata": meta});
        self.pending.push_back(line("BOOKMARK", &serde_json::to_vec(&object).unwrap_or_default()));
    }

    fn expired(&mut self, oldest: u64) {
        let status = StatusError::gone(format!("too old resource version: {} ({oldest})", self.cursor)).to_status();
        self.pending.push_back(line("ERROR", &serde_json::to_vec(&status).unwrap_or_default()));
        self.done = true;
    }

    fn push(&mut self, kind: EventType, object: &StoredObject) {
        let body = match self.format {
            Format::Object | Format::Metadata => self.api.item(&self.serving, &self.target, object, self.format),
            Format::Table(include) => {
                let meta = json!({"resourceVersion": object.derived.resource_version.to_string()});
                let rows = table::table(&self.target, &[object], meta, include, !self.headers_sent);
                self.headers_sent = true;
                Bytes::from(serde_json::to_vec(&rows).unwrap_or_default())
            }
        };
        self.pending.push_back(line(kind.as_str(), &body));
    }

    /// Pushes a store event as it is: the frame it shares with every watch that serves its
    /// object as stored, or a line of this watch's own.
    fn push_event(&mut self, event: &WatchEvent) {
        if self.format != Format::Object || !self.serving.as_stored(&event.object) {
            return self.push(event.kind, &event.object);
        }
        let (api, serving, target) = (&self.api, &self.serving, &self.target);
        let frame = event.frame(|| line(event.kind.as_str(), &api.served_as(serving, target, &event.object)));
        self.pending.push_back(frame);
    }

    /// Turns a store event into what this watch reports, following its selectors.
    fn offer(&mut self, event: &WatchEvent) {
        if event.object.key.gk != self.kind {
            return;
        }
        if self.everything {
            return self.push_event(event);
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
                    (true, true) => self.push_event(event),
                    (false, true) => self.push(EventType::Added, &event.object),
                    (true, false) => self.push(EventType::Deleted, &event.object),
                    (false, false) => {}
                }
            }
            _ if now => self.push_event(event),
            _ => {}
        }
    }

    /// Reads the store's events past the cursor.
    fn catch_up(&mut self) {
        self.changes.borrow_and_update();
        match self.api.storage.events_since(&self.kind, self.cursor) {
            Err(e) => self.expired(e.oldest),
            Ok(events) => {
                for event in events.iter() {
                    self.offer(event);
                    self.cursor = event.revision();
                }
            }
        }
    }

    /// The lines pending, whole: the first as it is when the next would not fit beside it (a
    /// watcher keeping up sends a shared frame without a copy), or lines copied into one chunk of
    /// up to [`CHUNK`] bytes, so that a watcher behind by thousands of events (a person's commit
    /// changing many objects) gets them in a few writes, not one each.
    fn take_pending(&mut self) -> Option<Bytes> {
        let first = self.pending.pop_front()?;
        if self.pending.front().is_none_or(|next| first.len() + next.len() > CHUNK) {
            return Some(first);
        }
        let mut out = BytesMut::with_capacity(CHUNK);
        out.extend_from_slice(&first);
        while let Some(next) = self.pending.front().filter(|next| out.len() + next.len() <= CHUNK) {
            out.extend_from_slice(next);
            self.pending.pop_front();
        }
        Some(out.freeze())
    }

    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(chunk) = self.take_pending() {
                return Some(chunk);
            }
            if self.done || Instant::now() >= self.deadline {
                return None;
            }
            self.catch_up();
            if !self.pending.is_empty() || self.done {
                continue;
            }
            let wake = if self.bookmarks { self.next_bookmark.min(self.deadline) } else { self.deadline };
            tokio::select! {
                changed = self.changes.changed() => {
                    if changed.is_err() {
                        self.done = true;
                    }
                }
                _ = tokio::time::sleep_until(wake) => {
                    if self.bookmarks && Instant::now() >= self.next_bookmark {
                        self.next_bookmark = Instant::now() + BOOKMARK_INTERVAL;
                        self.bookmark(false);
                    }
                }
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
            target: target.clone(),
            serving: super::Serving::of(target),
            kind: target.stored_kind(),
            everything: filter.selects_all(),
            by_labels: filter.by_labels(),
            filter,
            cursor: 0,
            pending: VecDeque::new(),
            changes,
            deadline: Instant::now() + timeout,
            bookmarks: params.allow_bookmarks,
            next_bookmark: Instant::now() + BOOKMARK_INTERVAL,
            done: false,
            format: params.format,
            headers_sent: false,
        };
        if initial {
            let (revision, items) = self.select(target, &params.list)?;
            watch.cursor = revision;
            for obj in &items {
                watch.push(EventType::Added, obj);
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
