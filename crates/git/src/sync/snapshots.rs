//! The snapshot ref, `refs/gitbacked/snapshots/<branch>` ([`crate::snapshot_ref`]): a cold start
//! that does not replay the branch's history.
//!
//! What the store serves is derived from history (see [`crate::store`]), so a process starting on
//! a long history used to replay every commit of it: 10,000 commits cost 46× a start on the tip
//! alone. A snapshot (see [`Snapshot`]) records what that replay derives at one commit X of the
//! branch. With one, the initial sync
//! 1. fetches the branch, its status ref and the snapshot ref in one round, with `--depth=1` when
//!    the mirror holds nothing yet and the remote listed a snapshot ref when the store opened (the
//!    snapshot ref is fetched as a pattern, as the status ref is; without one, history is fetched
//!    whole at once, not its tip and then the rest);
//! 2. reads the snapshot of its subdirectory; a damaged or foreign one is ignored with a warning;
//! 3. deepens the shallow mirror until X is on the tip's first-parent chain: first back to X's
//!    commit time (`--shallow-since`), then by doubling steps, at most [`DEEPEN_ROUNDS`] times;
//! 4. builds the store at X from the snapshot and X's tree ([`Store::restore`], which checks the
//!    rebuild against the snapshot), then replays the commits after X as any sync does.
//!
//! When anything of it fails (no snapshot, X not on the first-parent chain, a rebuild that does
//! not match), the mirror is made whole (`--unshallow`) and history is replayed: a snapshot can make
//! a start faster, never different. The resourceVersions after X are numbered from X's number, so a
//! process that started from a snapshot and one that replayed everything serve the same objects
//! with the same metadata; the first has no events from before X for watches to resume from, and
//! such a watch gets 410 Gone and relists, as after any restart beyond the watch window.
//!
//! The mirror may stay shallow for the life of the process. What reads history beyond the store's
//! own tip copes: a fetch into a shallow mirror brings every new commit; a rewritten history walks
//! past the shallow boundary, which makes the sync fetch all of it first (see
//! [`super::fetch_and_advance`]); `landed()` (whether a push whose answer was lost is on the remote)
//! walks back from the tip to the commit the push was built on, which is never older than X, and
//! a walk that reaches the boundary without finding it answers "not landed", as it should. The
//! `gitbacked log`/`diff`/`check` commands read a repository of the user's, never this mirror.
//!
//! Writers keep the ref fresh: after a push that leaves the branch [`Snapshots::every`] commits
//! or more past the last snapshot, a task off the write path records the store's state at its tip
//! and pushes it as a fast-forward of the snapshot ref (a commit on top of the one fetched, whose
//! tree keeps one file per subdirectory, so that processes serving different subdirectories share
//! the ref). A refused push (another writer was first) is skipped: never forced. Only a process
//! whose numbering is the history's own writes one (see [`Store::snapshot`]).

use std::sync::{Arc, Mutex};

use gix::ObjectId;
use tracing::{debug, info, warn};

use super::{SyncConfig, Tips, advance};
use crate::mirror::remote::{self, Depth, PushOutcome};
use crate::mirror::{GitError, Mirror, RefUpdate};
use crate::store::{Snapshot, Store};

/// How many times a shallow mirror is deepened looking for the snapshot's commit before the whole
/// history is fetched: after `--shallow-since`, 256, 512, … commits more.
pub const DEEPEN_ROUNDS: u32 = 6;

/// The snapshot ref of a branch: how often it is written, and what this process knows of it.
pub(crate) struct Snapshots {
    reference: String,
    /// Commits of the branch between two snapshots this process writes; 0: it writes none.
    every: u64,
    /// The number of the commit the latest snapshot known for this subdirectory is at.
    latest: Mutex<u64>,
    /// The snapshot being written, if any: the next push does not start another, and the sync loop
    /// waits for it before it stops (a push must not outlive the store that made it).
    writing: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Whether the remote listed the snapshot ref when the store opened. Without one the initial
    /// sync replays history, and fetches all of it at once rather than its tip first.
    listed: bool,
}

/// Where a subdirectory's snapshot is in the snapshot ref's tree: one file for each, named by the
/// subdirectory's bytes in hex (`snapshot-` for the root).
fn file_name(subdir: &str) -> String {
    let hex: String = subdir.bytes().map(|b| format!("{b:02x}")).collect();
    format!("snapshot-{hex}")
}

impl Snapshots {
    /// The snapshot ref of `branch`, written every `every` commits (0: never), `listed` by the
    /// remote when the store opened or not.
    pub(crate) fn new(branch: &str, every: u64, listed: bool) -> Self {
        let reference = crate::snapshot_ref(branch);
        Snapshots { reference, every, latest: Mutex::new(0), writing: Mutex::new(None), listed }
    }

    fn latest(&self) -> std::sync::MutexGuard<'_, u64> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The initial sync: from the latest snapshot when there is a usable one, else by replaying the
    /// branch's history (see the module docs).
    pub(crate) async fn initial_sync(
        &self,
        mirror: &Arc<Mirror>,
        store: &Arc<Store>,
        config: &SyncConfig,
    ) -> Result<(), GitError> {
        let dir = mirror.dir();
        let mut references = config.references();
        let known = remote::tracked(dir, &config.reference).await?.is_some();
        // A mirror that holds the branch fetches the rest of it as usual: the snapshot ref, with its
        // chain of snapshots, is fetched alone and shallow.
        let snapshot_tip = match known {
            true => fetch(mirror, config, &[&self.reference], Depth::Tip).await?[0],
            false => None,
        };
        if !known {
            references.push(&self.reference);
        }
        let depth = if known || !self.listed { Depth::Full } else { Depth::Tip };
        let fetched = fetch(mirror, config, &references, depth).await?;
        let snapshot_tip = snapshot_tip.or(fetched.get(config.references().len()).copied().flatten());
        let status = config.status_reference.as_ref().and(fetched.get(1).copied().flatten());
        let tips = Tips { branch: fetched[0], status };
        let started = std::time::Instant::now();
        let restored = match (tips.branch, snapshot_tip) {
            (Some(tip), Some(snapshot_tip)) => self.restore(mirror, store, config, tip, snapshot_tip).await,
            _ => Ok(false),
        };
        match restored {
            Ok(true) => {
                advance(mirror, store, tips).await?;
                store.finish_initial_sync();
                let objects = store.stats().objects;
                info!(target: "gitbacked::progress", objects, elapsed = ?started.elapsed(), "initial sync from a snapshot complete");
            }
            Ok(false) | Err(_) => {
                if let Err(e) = restored {
                    warn!(error = %e, "starting from the snapshot failed; replaying history");
                }
                if mirror.is_shallow() {
                    fetch(mirror, config, &config.references(), Depth::Unshallow).await?;
                }
                advance(mirror, store, tips).await?;
            }
        }
        config.metrics.synced(&config.reference);
        Ok(())
    }

    /// Brings the empty `store` to the snapshot's commit, deepening the mirror up to it, when the
    /// snapshot is usable; returns whether it did.
    async fn restore(
        &self,
        mirror: &Arc<Mirror>,
        store: &Arc<Store>,
        config: &SyncConfig,
        tip: ObjectId,
        snapshot_tip: ObjectId,
    ) -> Result<bool, GitError> {
        let Some(snapshot) = blocking(mirror, move |m| Ok(read(m, snapshot_tip))).await? else {
            return Ok(false);
        };
        *self.latest() = snapshot.seq;
        let commit = snapshot.commit;
        let mut round = 0;
        loop {
            // The commit itself must be there too, not only named as a parent: its tree is read.
            let reached = move |m: &Mirror| {
                let reader = m.reader();
                reader.commit_info(commit)?;
                reader.first_parent_chain(Some(commit), tip)
            };
            match blocking(mirror, reached).await {
                Ok(Some(_)) => break,
                Ok(None) => {
                    warn!(%commit, "the snapshot's commit is not on the branch's first-parent chain; ignoring it");
                    return Ok(false);
                }
                // The walk ran past what the shallow mirror holds: fetch more of the history.
                Err(e) if mirror.is_shallow() && round < DEEPEN_ROUNDS => {
                    debug!(error = %e, round, "deepening the shallow mirror towards the snapshot's commit");
                    let depth = match round {
                        0 => Depth::Since(snapshot.time.saturating_sub(1)),
                        n => Depth::Deepen(128 << n),
                    };
                    fetch(mirror, config, &[&config.reference], depth).await?;
                    round += 1;
                }
                Err(e) => {
                    warn!(%commit, error = %e, "the snapshot's commit cannot be reached; ignoring the snapshot");
                    return Ok(false);
                }
            }
        }
        let (seq, objects) = (snapshot.seq, snapshot.len());
        let store = store.clone();
        let restored = blocking(mirror, move |m| {
            let info = m.reader().commit_info(commit)?;
            store.restore(m, snapshot, info)
        })
        .await?;
        if restored {
            info!(%commit, seq, objects, "the store starts from the snapshot");
        }
        Ok(restored)
    }

    /// After a push that left the store at the branch's tip: writes a snapshot in the background
    /// when the branch has moved [`Snapshots::every`] commits since the latest one known.
    pub(crate) fn after_push(self: &Arc<Self>, mirror: &Arc<Mirror>, store: &Arc<Store>, config: &SyncConfig) {
        let seq = store.tip().1;
        // A store that has numbered steps of the status ref has no snapshot to give (see
        // `Store::snapshot`): nothing is fetched for it.
        let due = self.every > 0 && seq >= self.latest().saturating_add(self.every) && store.status_tip().is_none();
        let mut writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        if !due || writing.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let (this, mirror, store, config) = (self.clone(), mirror.clone(), store.clone(), config.clone());
        *writing = Some(tokio::spawn(async move {
            match this.write(&mirror, &store, &config).await {
                Ok(Some(seq)) => info!(reference = %this.reference, seq, "wrote a snapshot"),
                Ok(None) => debug!(reference = %this.reference, "no snapshot written"),
                Err(e) => {
                    warn!(reference = %this.reference, error = %e, "writing a snapshot failed; trying again after a later push")
                }
            }
        }));
    }

    /// Waits for the snapshot being written, if any, to be pushed or to fail.
    pub(crate) async fn finish(&self) {
        let Some(task) = self.writing.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        if let Err(e) = task.await {
            warn!(reference = %self.reference, error = %e, "writing a snapshot stopped");
        }
    }

    /// Writes a snapshot of the store at its tip on top of the snapshot ref's latest commit and
    /// pushes it; returns the number of the commit it is at, `None` when none was needed or could
    /// be made, or another writer's push was first.
    async fn write(
        &self,
        mirror: &Arc<Mirror>,
        store: &Arc<Store>,
        config: &SyncConfig,
    ) -> Result<Option<u64>, GitError> {
        let parent = fetch(mirror, config, &[&self.reference], Depth::Tip).await?[0];
        let (store, author, every) = (store.clone(), config.author.clone(), self.every);
        let built = blocking(mirror, move |m| {
            // Another writer's snapshot may be recent enough.
            let existing = parent.and_then(|p| read(m, p));
            let (tip, seq) = store.tip();
            if let Some(existing) = existing.filter(|e| seq < e.seq.saturating_add(every)) {
                return Ok(Err(existing.seq));
            }
            let Some(tip) = tip else { return Ok(Ok(None)) };
            let time = m.reader().commit_info(tip)?.time;
            let Some(snapshot) = store.snapshot(time, m.subdir()) else { return Ok(Ok(None)) };
            let mut builder = m.at_root().builder(parent, false);
            builder.stage(&file_name(m.subdir()), Some(snapshot.encode()));
            let message = format!(
                "snapshot of {} (commit {} of the branch, {} objects)",
                snapshot.commit,
                snapshot.seq,
                snapshot.len()
            );
            let commit = builder.commit(&message, &author, gitbacked_core::clock::now())?;
            Ok(Ok(Some((commit, snapshot.seq))))
        })
        .await?;
        let (commit, seq) = match built {
            Err(existing) => {
                *self.latest() = existing;
                return Ok(None);
            }
            Ok(None) => return Ok(None),
            Ok(Some(built)) => built,
        };
        let update = [RefUpdate { reference: self.reference.clone(), commit }];
        let outcome = |o: &PushOutcome| if *o == PushOutcome::Pushed { "ok" } else { "rejected" };
        match config.observed("push", remote::push(mirror.dir(), &update), outcome).await? {
            PushOutcome::Pushed => {
                remote::record_push(mirror, &self.reference, commit)?;
                *self.latest() = seq;
                Ok(Some(seq))
            }
            PushOutcome::Rejected => Ok(None),
        }
    }
}

/// The snapshot of `mirror`'s subdirectory at the snapshot ref's commit `tip`: `None` when it holds
/// none, or one that cannot be read (with a warning: it is ignored, never trusted).
fn read(mirror: &Mirror, tip: ObjectId) -> Option<Snapshot> {
    let name = file_name(mirror.subdir());
    let bytes = match mirror.at_root().reader().file_at(tip, &name) {
        Ok(bytes) => bytes?,
        Err(e) => {
            warn!(%tip, error = %e, "the snapshot cannot be read; ignoring it");
            return None;
        }
    };
    let snapshot = Snapshot::decode(&bytes, mirror.subdir());
    if snapshot.is_none() {
        warn!(%tip, file = %name, bytes = bytes.len(), "the snapshot is damaged or of another version; ignoring it");
    }
    snapshot
}

/// Fetches `references` (see [`remote::fetch_with`]), counted as the loop's fetches.
async fn fetch(
    mirror: &Mirror,
    config: &SyncConfig,
    references: &[&str],
    depth: Depth,
) -> Result<Vec<Option<ObjectId>>, GitError> {
    config.observed("fetch", remote::fetch_with(mirror.dir(), references, depth), |_| "ok").await
}

/// Runs `work` on the mirror on a blocking thread.
async fn blocking<T: Send + 'static>(
    mirror: &Arc<Mirror>,
    work: impl FnOnce(&Mirror) -> Result<T, GitError> + Send + 'static,
) -> Result<T, GitError> {
    let mirror = mirror.clone();
    tokio::task::spawn_blocking(move || work(&mirror))
        .await
        .map_err(|e| GitError::Command(format!("snapshot task failed: {e}")))?
}
