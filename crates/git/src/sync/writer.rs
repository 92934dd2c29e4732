//! Group commit. A batch of writes becomes one commit on top of the synced tip (or of the batch
//! before it, while that one is still on its way: see the `pipeline` module), its message naming
//! every write, pushed as a fast-forward. When another writer was first, the loop fetches, brings
//! the store up to date and evaluates every write again on the new tip: a write whose precondition
//! no longer holds gets its 409 from its own `mutate`, the others are pushed. Every write is
//! answered only after the push that carries it succeeded.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tracing::warn;

use super::{PendingWrite, SyncConfig, Tips};
use crate::layout;
use crate::metrics::GitMetrics;
use crate::mirror::local::LocalRemote;
use crate::mirror::remote::{self, PushOutcome};
use crate::mirror::{CommitBuilder, GitError, Identity, Mirror, Occupant, RefUpdate};
use crate::status_ref::{self, Bookkeeping, Overlay};
use crate::store::Store;
use gitbacked_core::document;
use gitbacked_core::registry::Registry;
use gitbacked_core::status::{ApiResult, Reason, StatusError};
use gitbacked_core::storage::{Mutation, WriteOutcome};
use gitbacked_core::{ObjectKey, StoredObject};

/// Enters a span around a part of a write, timed by the bench's `write-costs` (issue 15).
macro_rules! cost_span {
    ($name:literal) => {
        tracing::trace_span!(target: "gitbacked::cost", $name).entered()
    };
}

/// What a batch needs on its way to the remote.
#[derive(Clone, Copy)]
pub(super) struct Ctx<'a> {
    pub(super) mirror: &'a Arc<Mirror>,
    pub(super) store: &'a Arc<Store>,
    pub(super) config: &'a SyncConfig,
    /// The remote, when it is on this machine and may be pushed to directly.
    pub(super) local: Option<&'a Arc<LocalRemote>>,
}

/// Writes to take to the remote in one commit.
pub(super) struct Batch {
    pub(super) writes: Vec<PendingWrite>,
    /// How many times these writes have been staged (1 the first time).
    pub(super) tries: usize,
    /// When they fail with 503 if they are not pushed.
    pub(super) deadline: Instant,
}

/// A write that made it into a commit of a batch.
pub(super) struct Committed {
    pub(super) pending: PendingWrite,
    before: Option<Arc<StoredObject>>,
    deleted: bool,
}

/// A batch built into commits, ready to be pushed.
pub(super) struct Staged {
    pub(super) committed: Vec<Committed>,
    pub(super) built: Vec<Built>,
    pub(super) tries: usize,
    pub(super) deadline: Instant,
}

/// Evaluates each write of `batch` against the store and commits its change on top of the
/// previous one, the first on `bases`. A write to an object in `busy` (written by a batch still on
/// its way) or already written in this batch waits in `deferred` for the next batch, so that it
/// sees the first one's result. Returns `None` when nothing is to be pushed (every write answered
/// or deferred).
pub(super) fn stage(
    ctx: Ctx<'_>,
    bases: Tips,
    batch: Batch,
    busy: &HashSet<ObjectKey>,
    deferred: &mut Vec<PendingWrite>,
) -> Option<Staged> {
    let mut staging = Staging::new(ctx.mirror, ctx.store, ctx.config, bases);
    let mut committed: Vec<Committed> = Vec::new();
    let mut written: HashSet<ObjectKey> = HashSet::new();
    for mut pending in batch.writes {
        if written.contains(&pending.write.key) || busy.contains(&pending.write.key) {
            deferred.push(pending);
            continue;
        }
        let before = ctx.store.get(&pending.write.key);
        let key = &pending.write.key;
        let result = (pending.write.mutate)(before.as_deref()).and_then(|mutation| {
            let changed = staging.stage(key, before.as_deref(), &mutation)?;
            Ok((mutation, changed))
        });
        match result {
            Err(e) => {
                let _ = pending.reply.send(Err(e));
            }
            // Nothing to write: the object is already in the requested state.
            Ok((_, false)) => {
                let outcome = before.map(WriteOutcome::Stored).ok_or_else(|| StatusError::internal("nothing to write"));
                let _ = pending.reply.send(outcome);
            }
            Ok((mutation, true)) => {
                written.insert(pending.write.key.clone());
                committed.push(Committed { pending, before, deleted: mutation == Mutation::Delete });
            }
        }
    }
    if committed.is_empty() {
        return None;
    }
    // One commit for the batch: it writes each tree once however many writes it carries, and its
    // message names every write.
    let descriptions: Vec<&str> = committed.iter().map(|c| c.pending.write.description.as_str()).collect();
    let message = match descriptions.as_slice() {
        [one] => one.to_string(),
        many => format!("{} writes\n\n{}", many.len(), many.join("\n")),
    };
    match staging.commit(&message, &ctx.config.author, gitbacked_core::clock::now()) {
        Ok(built) => Some(Staged { committed, built, tries: batch.tries, deadline: batch.deadline }),
        Err(e) => {
            let why = format!("building the commit failed: {e}");
            for c in committed {
                let _ = c.pending.reply.send(Err(StatusError::internal(why.clone())));
            }
            None
        }
    }
}

/// Whether every commit of `built` is on the first-parent chain of its reference as the store now
/// reflects it.
pub(super) async fn landed(ctx: Ctx<'_>, built: &[Built]) -> bool {
    for b in built {
        let Some(tip) = reflected(ctx, &b.reference) else { return false };
        let (mirror, base, head) = (ctx.mirror.clone(), b.base, b.head);
        let chain = tokio::task::spawn_blocking(move || mirror.reader().first_parent_chain(base, tip)).await;
        if !matches!(chain, Ok(Ok(Some(commits))) if commits.iter().any(|c| c.id == head)) {
            return false;
        }
    }
    true
}

/// The commit the store reflects of `reference`: the branch's tip, or the status ref's.
pub(super) fn reflected(ctx: Ctx<'_>, reference: &str) -> Option<gix::ObjectId> {
    match reference == ctx.config.reference {
        true => ctx.store.tip().0,
        false => ctx.store.status_tip(),
    }
}

/// A commit of a batch, and the reference it is to move.
pub(super) struct Built {
    pub(super) reference: String,
    pub(super) base: Option<gix::ObjectId>,
    pub(super) head: gix::ObjectId,
}

impl Built {
    /// The update of the remote reference that pushes it.
    pub(super) fn update(&self) -> RefUpdate {
        RefUpdate { reference: self.reference.clone(), commit: self.head }
    }
}

/// Where the store is to be read to once the batches that built `built`, oldest first, are
/// pushed: the last commit of each reference.
pub(super) fn tips<'a>(config: &SyncConfig, built: impl DoubleEndedIterator<Item = &'a Built> + Clone) -> Tips {
    let head =
        |reference: Option<&str>| built.clone().rev().find(|b| Some(b.reference.as_str()) == reference).map(|b| b.head);
    Tips { branch: head(Some(&config.reference)), status: head(config.status_reference.as_deref()) }
}

/// The changes of a batch, on their way into commits: the branch's, and the status ref's when the
/// store keeps bookkeeping there (see [`crate::status_ref`]).
struct Staging<'a> {
    config: &'a SyncConfig,
    registry: Arc<Registry>,
    bookkeeping: Bookkeeping,
    branch: (Option<gix::ObjectId>, CommitBuilder),
    status: Option<(Option<gix::ObjectId>, CommitBuilder)>,
    /// Objects the batch creates, with what of them goes on the status ref: staged there once the
    /// branch's commit, which their uid derives from, is built.
    created: Vec<(ObjectKey, Value)>,
}

impl<'a> Staging<'a> {
    /// Changes on top of `bases`, the commits of each reference the batch is built on.
    fn new(mirror: &Mirror, store: &Store, config: &'a SyncConfig, bases: Tips) -> Self {
        let builder = |base| (base, mirror.builder(base, config.sign_commits));
        Staging {
            config,
            registry: store.registry(),
            bookkeeping: store.bookkeeping(),
            branch: builder(bases.branch),
            status: config.status_reference.as_ref().map(|_| builder(bases.status)),
            created: Vec::new(),
        }
    }

    /// Stages one mutation on the branch and the status ref, each read back as the repository is
    /// read: a change the reader would not serve as written is undone and refused (422, or 413
    /// when the reader's budget is what refuses it), so that nothing is committed that is not
    /// served. Returns `false` when the mutation changes nothing.
    fn stage(&mut self, key: &ObjectKey, before: Option<&StoredObject>, mutation: &Mutation) -> ApiResult<bool> {
        let in_git = before.filter(|b| b.location.is_some());
        match (mutation, in_git) {
            (Mutation::Put(content), Some(old)) if &old.content() == content => return Ok(false),
            (Mutation::Delete, None) => return Ok(false),
            _ => {}
        }
        let marks = (self.branch.1.staged(), self.status.as_ref().map(|(_, b)| b.staged()));
        let result = self.stage_both(key, in_git, mutation);
        if result.is_err() {
            self.branch.1.unstage(marks.0);
            if let (Some((_, status)), Some(mark)) = (&mut self.status, marks.1) {
                status.unstage(mark);
            }
        }
        result
    }

    fn stage_both(&mut self, key: &ObjectKey, before: Option<&StoredObject>, mutation: &Mutation) -> ApiResult<bool> {
        let (bookkeeping, registry, metrics) = (self.bookkeeping, &*self.registry, &*self.config.metrics);
        let staged = stage_change(&mut self.branch.1, registry, metrics, bookkeeping, key, before, mutation)?;
        if let Some((path, written)) = &staged.branch {
            read_back(&self.branch.1, registry, key, written, path)?;
        }
        if self.status.is_none() {
            return Ok(staged.branch.is_some());
        }
        let status_changed = match (before, mutation) {
            (Some(old), Mutation::Put(content)) => {
                self.stage_status(key, &old.derived.uid, Some(content), staged.file_parts)?
            }
            (Some(old), Mutation::Delete) => self.stage_status(key, &old.derived.uid, None, false)?,
            (None, Mutation::Put(content)) => {
                if self.bookkeeping.holds(content) {
                    self.created.push((key.clone(), content.clone()));
                }
                false
            }
            (None, Mutation::Delete) => false,
        };
        Ok(staged.branch.is_some() || status_changed)
    }

    /// Stages the status ref's document of `key` (of uid `uid`) for `content` (`None`: removed):
    /// one is kept while the object has bookkeeping, or while its branch document holds parts
    /// that the ref's document hides (`file_parts`). Returns whether it changed.
    fn stage_status(
        &mut self,
        key: &ObjectKey,
        uid: &str,
        content: Option<&Value>,
        file_parts: bool,
    ) -> ApiResult<bool> {
        let internal = |e: &dyn std::fmt::Display| StatusError::internal(format!("writing the status of {key}: {e}"));
        let Some((_, builder)) = &mut self.status else { return Ok(false) };
        let path = status_ref::path(&self.registry, key).ok_or_else(|| internal(&"its kind is not served"))?;
        let wanted =
            content.filter(|c| self.bookkeeping.holds(c) || file_parts).map(|c| self.bookkeeping.document(key, uid, c));
        let read = |bytes: Option<Vec<u8>>| {
            let parsed = document::parse_file(&path, bytes.as_deref().unwrap_or_default());
            parsed.objects.iter().find_map(|o| Overlay::read(&o.value).filter(|(k, _)| k == key)).map(|(_, o)| o)
        };
        let current = read(builder.read(&path).map_err(|e| internal(&e))?);
        let overlay = wanted.as_ref().and_then(|w| Overlay::read(w).map(|(_, o)| o));
        if current == overlay {
            return Ok(false);
        }
        builder.stage(&path, wanted.as_ref().map(|w| document::to_yaml(w).into_bytes()));
        if read(builder.read(&path).map_err(|e| internal(&e))?) != overlay {
            return Err(internal(&"its document on the status ref does not read back as written"));
        }
        Ok(true)
    }

    /// Builds the batch's commits: the branch's, then the status ref's (with the bookkeeping of
    /// the objects the branch's commit creates).
    fn commit(mut self, message: &str, author: &Identity, time: i64) -> Result<Vec<Built>, GitError> {
        let mut built = Vec::new();
        if self.branch.1.staged() > 0 {
            let head = self.branch.1.commit(message, author, time)?;
            for (key, content) in std::mem::take(&mut self.created) {
                let uid = crate::store::created_uid(&key, head);
                self.stage_status(&key, &uid, Some(&content), false).map_err(|e| GitError::Command(e.to_string()))?;
            }
            built.push(Built { reference: self.config.reference.clone(), base: self.branch.0, head });
        }
        if let (Some((base, builder)), Some(reference)) = (&mut self.status, &self.config.status_reference)
            && builder.staged() > 0
        {
            let head = builder.commit(message, author, time)?;
            built.push(Built { reference: reference.clone(), base: *base, head });
        }
        Ok(built)
    }
}

/// Answers each write of a pushed commit from the store, once it reflects the commit (`applied`).
pub(super) fn answer(store: &Arc<Store>, committed: Vec<Committed>, applied: &Result<(), GitError>) {
    for c in committed {
        let outcome = match applied {
            Err(e) => Err(StatusError::internal(format!("pushed, but reading the commit back failed: {e}"))),
            Ok(()) if c.deleted => {
                c.before.map(WriteOutcome::Deleted).ok_or_else(|| StatusError::internal("deleted object vanished"))
            }
            Ok(()) => store
                .get(&c.pending.write.key)
                .map(WriteOutcome::Stored)
                .ok_or_else(|| StatusError::internal("written object is not in the store")),
        };
        let _ = c.pending.reply.send(outcome);
    }
}

pub(super) fn fail_all(writes: impl IntoIterator<Item = PendingWrite>, why: &str) {
    for w in writes {
        let _ = w.reply.send(Err(StatusError::unavailable(format!("the write could not be pushed: {why}"))));
    }
}

/// Pushes, retrying failures (not rejections) until the deadline.
pub(super) async fn push_until(
    mirror: &Arc<Mirror>,
    config: &SyncConfig,
    local: Option<&Arc<LocalRemote>>,
    updates: &[RefUpdate],
    deadline: Instant,
) -> Result<PushOutcome, GitError> {
    let mut delay = std::time::Duration::from_millis(50);
    let outcome = |o: &PushOutcome| if *o == PushOutcome::Pushed { "ok" } else { "rejected" };
    loop {
        // A direct push that fails (a file that cannot be written, …) leaves the ref where it was or
        // moved it to `head`; either way `git push` of `head` is right, and says what is wrong.
        let direct = match local {
            Some(local) => push_direct(mirror, local, config, updates).await.unwrap_or_else(|e| {
                warn!(error = %e, "the direct push failed; pushing with git");
                None
            }),
            None => None,
        };
        let pushed = match direct {
            Some(outcome) => Ok(outcome),
            None => config.observed("push", remote::push(mirror.dir(), updates), outcome).await,
        };
        if pushed.as_ref().is_ok_and(|o| *o == PushOutcome::Rejected)
            && let Some(stale) = stale_lock(config)
        {
            return Err(stale);
        }
        match pushed {
            // Only an unreachable remote may come back; refused credentials or a checked-out
            // branch will not, so the writes fail now with the clear reason.
            Err(e) if transient(&e) && Instant::now() + delay < deadline => {
                warn!(error = %e, "push failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// How long a lock file of a remote on this machine may be there before it counts as left by a
/// git process that died: a push holds it for milliseconds.
const STALE_LOCK_AGE: std::time::Duration = std::time::Duration::from_secs(5);

/// The error for a rejected push whose real cause is a stale lock file of the branch in a remote
/// on this machine (a remote elsewhere cannot be looked at).
pub(super) fn stale_lock(config: &SyncConfig) -> Option<GitError> {
    let lock = format!("{}.lock", config.reference);
    let modified = std::fs::metadata(config.local_remote.as_ref()?.join(&lock)).ok()?.modified().ok()?;
    let age = modified.elapsed().ok().filter(|age| *age >= STALE_LOCK_AGE)?;
    Some(GitError::Remote(remote::RemoteError::StaleLock { lock, age_secs: age.as_secs() }))
}

/// A direct push to a remote on this machine, counted as the operation `direct-push`; `None`
/// (not counted) when it must go through `git push`.
async fn push_direct(
    mirror: &Arc<Mirror>,
    local: &Arc<LocalRemote>,
    config: &SyncConfig,
    updates: &[RefUpdate],
) -> Result<Option<PushOutcome>, GitError> {
    let (mirror, local, updates) = (mirror.clone(), local.clone(), updates.to_vec());
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || local.push(&mirror, &updates))
        .await
        .map_err(|e| GitError::Command(format!("direct push: {e}")))?;
    let outcome = match &result {
        Ok(None) => return result,
        Ok(Some(PushOutcome::Pushed)) => "ok",
        Ok(Some(PushOutcome::Rejected)) => "rejected",
        Err(_) => "error",
    };
    config.metrics.git(&config.reference, "direct-push", outcome, started.elapsed());
    result
}

/// Whether a failed push may succeed if tried again.
fn transient(e: &GitError) -> bool {
    use crate::mirror::remote::RemoteError;
    !matches!(
        e,
        GitError::Remote(
            RemoteError::UnknownHostKey { .. }
                | RemoteError::AuthenticationFailed { .. }
                | RemoteError::RepositoryNotFound { .. }
                | RemoteError::CheckedOutBranch { .. }
                | RemoteError::Credentials(_)
                | RemoteError::StaleLock { .. }
        )
    )
}

/// Checks that the staged `path` yields the written object (or no longer holds a deleted one).
fn read_back(
    builder: &CommitBuilder,
    registry: &Registry,
    key: &ObjectKey,
    mutation: &Mutation,
    path: &str,
) -> ApiResult<()> {
    let _cost = cost_span!("read_back");
    let bytes = builder.read(path).map_err(|e| StatusError::internal(format!("writing {key}: {e}")))?;
    let parsed = read_changed(builder, mutation, path, bytes.as_deref().unwrap_or_default())
        .map_err(|e| StatusError::internal(format!("writing {key}: {e}")))?;
    let mut found = parsed.objects.iter().filter(|o| ObjectKey::of(registry, &o.value).is_some_and(|(k, _)| &k == key));
    let served = match mutation {
        // A document that leaves its namespace implicit is written so (see
        // `document::implicit_namespace`): it reads back as the key's namespace.
        Mutation::Put(content) => found.any(|o| *document::implicit_namespace(&o.value, content) == o.value),
        Mutation::Delete => found.next().is_none(),
    };
    if served {
        return Ok(());
    }
    let problem = parsed.errors.first().map_or_else(
        || "the written document reads back as another object".to_string(),
        |e| format!("line {}: {}", e.line, e.message),
    );
    let reason = if problem.contains("budget") || problem.contains("limit") {
        Reason::RequestEntityTooLarge
    } else {
        Reason::Invalid
    };
    Err(StatusError::new(reason, format!("{key} would not be read back from the repository as written: {problem}")))
}

/// What the reader finds in the staged `bytes` of `path` that a put changed. When the put
/// changed one document of a multi-document file and left the rest of the file byte for byte as
/// it was, that document alone is read; otherwise, and for a delete (which must not leave another
/// document claiming the key), the whole file.
fn read_changed(
    builder: &CommitBuilder,
    mutation: &Mutation,
    path: &str,
    bytes: &[u8],
) -> Result<document::ParsedFile, GitError> {
    let doc = match mutation {
        Mutation::Put(_) if document::document_count(path, bytes) == 1 => Some(0),
        Mutation::Put(_) => builder.previous(path)?.and_then(|before| document::changed_document(path, &before, bytes)),
        Mutation::Delete => None,
    };
    Ok(match doc {
        Some(doc) => document::parse_document(path, bytes, doc),
        None => document::parse_file(path, bytes),
    })
}

/// What a mutation staged on the branch.
struct BranchStaged {
    /// The file it changed and what it wrote there, `None` when it changed nothing.
    branch: Option<(String, Mutation)>,
    /// Whether the object's document holds parts kept on the status ref (which it keeps).
    file_parts: bool,
}

/// Stages one mutation's change of the branch's files: the object without the parts kept on the
/// status ref, whose document keeps its own.
fn stage_change(
    builder: &mut CommitBuilder,
    registry: &Registry,
    metrics: &GitMetrics,
    bookkeeping: Bookkeeping,
    key: &ObjectKey,
    before: Option<&StoredObject>,
    mutation: &Mutation,
) -> ApiResult<BranchStaged> {
    let internal = |e: &dyn std::fmt::Display| StatusError::internal(format!("writing {key}: {e}"));
    match (mutation, before.and_then(|b| b.location.as_ref())) {
        (Mutation::Delete, None) => Ok(BranchStaged { branch: None, file_parts: false }),
        (mutation, Some(location)) => {
            let text = read_text(builder, &location.path).map_err(|e| internal(&e))?;
            let ((doc, item), current) =
                find_document(&location.path, &text, key, registry, (location.doc, location.item))
                    .ok_or_else(|| internal(&"its document moved"))?;
            let file_parts = bookkeeping.holds(&current);
            let written = match mutation {
                Mutation::Put(content) => Mutation::Put(bookkeeping.with_parts_of(content.clone(), &current)),
                Mutation::Delete => Mutation::Delete,
            };
            let content = match &written {
                Mutation::Put(content) => Some(content),
                Mutation::Delete => None,
            };
            let new =
                document::rewrite_detailed(&location.path, &text, doc, item, content).map_err(|e| internal(&e))?;
            if new.fidelity == document::Fidelity::Reserialized {
                // Rare (anchors, tags, odd layouts): the person's comments in it are gone.
                warn!(file = %location.path, document = doc + 1, %key, "the document was written anew, not edited in place");
            }
            metrics.document_written(match new.fidelity {
                document::Fidelity::Unchanged => "unchanged",
                document::Fidelity::Minimal => "edited",
                document::Fidelity::Reserialized => "written-anew",
                document::Fidelity::Removed => "removed",
            });
            if new.fidelity == document::Fidelity::Unchanged {
                return Ok(BranchStaged { branch: None, file_parts });
            }
            builder.stage(&location.path, new.text.map(String::into_bytes));
            Ok(BranchStaged { branch: Some((location.path.to_string(), written)), file_parts })
        }
        (Mutation::Put(content), None) => {
            let rt = registry.by_kind(&key.gk).ok_or_else(|| internal(&"its kind is not served"))?;
            let namespace = (!key.namespace.is_empty()).then_some(&*key.namespace);
            let dir = layout::kind_dir(rt, namespace);
            let files = builder.files_in(&dir).map_err(|e| internal(&e))?;
            let path = new_path(builder, key, &dir, files)?;
            let content = bookkeeping.without(content.clone());
            let yaml = document::to_yaml(&content);
            // A file already at the canonical path (a person's) keeps its documents: append.
            let text = match read_text(builder, &path).map_err(|e| internal(&e))? {
                existing if existing.is_empty() => yaml,
                existing if existing.ends_with('\n') => format!("{existing}---\n{yaml}"),
                existing => format!("{existing}\n---\n{yaml}"),
            };
            builder.stage(&path, Some(text.into_bytes()));
            Ok(BranchStaged { branch: Some((path, Mutation::Put(content))), file_parts: false })
        }
    }
}

/// Where a new object goes: its canonical path, else its bucket's, whichever holds nothing or a
/// regular file (to append to). A new object never replaces what a person put there: with both
/// taken by a directory, a symlink, a submodule or a file where a directory belongs, 409 Conflict.
fn new_path(builder: &CommitBuilder, key: &ObjectKey, dir: &str, files: usize) -> ApiResult<String> {
    let canonical = layout::canonical_path(dir, &key.name, files);
    let bucketed = layout::canonical_path(dir, &key.name, layout::FLAT_LIMIT);
    let mut taken = None;
    for path in [canonical, bucketed] {
        match builder.occupant(&path).map_err(|e| StatusError::internal(format!("writing {key}: {e}")))? {
            Occupant::Nothing | Occupant::File => return Ok(path),
            Occupant::Other { path, what } => taken = taken.or(Some((path, what))),
        }
    }
    let (path, what) = taken.unwrap_or_default();
    Err(StatusError::new(
        Reason::Conflict,
        format!("cannot create {key}: {what} is at {path}, and gitbacked never replaces what it did not write"),
    ))
}

fn read_text(builder: &CommitBuilder, path: &str) -> Result<String, GitError> {
    let _cost = cost_span!("read_text");
    let bytes = builder.read(path)?.unwrap_or_default();
    String::from_utf8(bytes).map_err(|_| GitError::NotUtf8 { path: path.to_string() })
}

/// Finds the document holding `key` in a file, with its value: the remembered position when it
/// still matches, else the first document that does.
fn find_document(
    path: &str,
    text: &str,
    key: &ObjectKey,
    registry: &Registry,
    hint: (u32, Option<u32>),
) -> Option<((u32, Option<u32>), Value)> {
    let _cost = cost_span!("find_document");
    let holds = |v: &Value| ObjectKey::of(registry, v).is_some_and(|(k, _)| &k == key);
    // The remembered document alone first: in a large file, parsing the others is most of a write.
    let remembered = document::parse_document(path, text.as_bytes(), hint.0).objects;
    let found = match remembered.into_iter().find(|o| (o.doc, o.item) == hint && holds(&o.value)) {
        Some(found) => found,
        None => document::parse_file(path, text.as_bytes()).objects.into_iter().find(|o| holds(&o.value))?,
    };
    Some(((found.doc, found.item), found.value))
}
