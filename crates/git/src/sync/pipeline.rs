//! Pushes that overlap. Over a network a push costs two round trips (the ref advertisement, then
//! the update commands with the pack), and a write that arrives during one would wait for it and
//! then for its own. So the next batch is built on top of the commit in flight and pushed before
//! that one is answered: as a plain fast-forward, which receive-pack applies as a compare-and-swap
//! on the value it advertised.
//!
//! - Its push reads the advertisement after the batch below it landed: it lands.
//! - It read the advertisement before: receive-pack refuses it (the ref moved under it). Once the
//!   batch below has landed it is sent again as it is, still a fast-forward.
//! - It landed before the batch below (whose commits it carries): that one is refused, and found
//!   on the remote after all.
//! - Another writer was first: every batch in flight is refused; the loop waits for all of them,
//!   fetches, answers what landed, and replays the rest on the new tip.
//!
//! Batches are answered in order, each once the store reflects its commit: nothing is served
//! before it is on the remote. An object written by a batch in flight is not written again before
//! it lands, so every write is decided on the object as the remote has it. Pushes start at least
//! [`SPACING`] of a push apart, so that the next one's advertisement comes after the previous
//! one's update.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::writer::{self, Batch, Ctx, Staged};
use super::{Pacing, Tips, advance, fetch_and_advance};
use crate::mirror::GitError;
use crate::mirror::remote::{self, PushOutcome};
use gitbacked_core::ObjectKey;

/// How many times a batch is replayed on a moving remote before its writes fail (the write
/// timeout bounds it too).
const MAX_ATTEMPTS: usize = 64;

/// How far apart pushes start, as a share of how long one takes: a push's update reaches the
/// remote about one round trip plus its unpacking after it starts, out of two round trips and the
/// work at both ends, and the next push's advertisement must come after it.
const SPACING: f64 = 0.6;

/// A random delay of up to 10 ms × 2^tries (at most 80 ms) before replaying: enough to break the
/// lockstep of writers refused together, short enough not to lose every turn to the writer that
/// won (see [`Pacing`]).
fn backoff(tries: usize) -> Duration {
    let ceiling = 10u64 << tries.min(3);
    Duration::from_millis(gitbacked_core::uid::random() % ceiling)
}

/// The batches on their way to the remote, oldest first, each built on the one before.
#[derive(Default)]
pub(super) struct Pipeline {
    in_flight: VecDeque<InFlight>,
    /// The objects the batches in flight write.
    busy: HashSet<ObjectKey>,
    /// How long a push takes: a moving average of the recent ones.
    push_time: Option<Duration>,
}

/// A batch whose push is under way.
struct InFlight {
    staged: Staged,
    started: Instant,
    /// Pushed while the batch below it was still on its way.
    overlapped: bool,
    /// Sent a second time after the batch below it landed.
    resent: bool,
    push: JoinHandle<Result<PushOutcome, GitError>>,
}

/// How a push ended.
pub(super) type Outcome = Result<PushOutcome, GitError>;

impl Pipeline {
    /// Whether no push is under way.
    pub(super) fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// The objects written by the batches in flight.
    pub(super) fn busy(&self) -> &HashSet<ObjectKey> {
        &self.busy
    }

    /// The commits the next batch is to be built on: those of the last batch in flight, else the
    /// store's tips.
    pub(super) fn bases(&self, ctx: Ctx<'_>) -> Tips {
        let built = self.in_flight.iter().flat_map(|f| f.staged.built.iter());
        let heads = writer::tips(ctx.config, built);
        Tips { branch: heads.branch.or(ctx.store.tip().0), status: heads.status.or_else(|| ctx.store.status_tip()) }
    }

    /// When the next batch, of `queued` writes, may be pushed while others are in flight: `None`
    /// when it must wait for one to land: `limit` pushes are under way, none has been timed yet,
    /// or it holds fewer than half the writes of the last one. Writers that write again as soon
    /// as they are answered come back together, one batch per push; a few of them late would
    /// otherwise go in a push of their own, and the two groups, each waiting for the other's push
    /// to be far enough along, would never join again.
    pub(super) fn next_launch(&self, limit: usize, queued: usize) -> Option<Instant> {
        let last = self.in_flight.back()?;
        let joins = queued * 2 >= last.staged.committed.len();
        let push_time = self.push_time.filter(|_| self.in_flight.len() < limit && joins)?;
        Some(last.started + push_time.mul_f64(SPACING))
    }

    /// Starts pushing a staged batch.
    pub(super) fn launch(&mut self, ctx: Ctx<'_>, staged: Staged) {
        self.busy.extend(staged.committed.iter().map(|c| c.pending.write.key.clone()));
        let overlapped = !self.in_flight.is_empty();
        let push = spawn_push(ctx, &staged, if overlapped { "overlapping" } else { "alone" });
        self.in_flight.push_back(InFlight { staged, started: Instant::now(), overlapped, resent: false, push });
    }

    /// How the oldest push in flight ends; pending while there is none.
    pub(super) async fn outcome(&mut self) -> Outcome {
        match self.in_flight.front_mut() {
            Some(front) => ended(&mut front.push).await,
            None => std::future::pending().await,
        }
    }

    /// How long a push takes, once one has been timed.
    pub(super) fn push_time(&self) -> Option<Duration> {
        self.push_time
    }

    /// Takes the oldest push's `outcome` into account: answers its writes once it landed, sends it
    /// again, or waits for every push in flight and returns the writes to stage again on the
    /// remote's new tip. Returns how many writes were answered as pushed, and those to replay.
    pub(super) async fn settle(
        &mut self,
        ctx: Ctx<'_>,
        pacing: &mut Pacing,
        outcome: Outcome,
    ) -> (usize, Option<Batch>) {
        let Some(front) = self.in_flight.pop_front() else { return (0, None) };
        match outcome {
            Ok(PushOutcome::Pushed) => (self.answer(ctx, pacing, vec![front]).await, None),
            Ok(PushOutcome::Rejected) if front.overlapped && !front.resent && on_bases(ctx, &front.staged) => {
                // Its push read the advertisement before the batch below it landed: now that one
                // is in the store, this one is a fast-forward of the remote again, unless another
                // writer came in between (then it is refused again and replayed).
                debug!("an overlapping push read the remote before the push below it landed: sending it again");
                let push = spawn_push(ctx, &front.staged, "again");
                let again = InFlight { started: Instant::now(), resent: true, push, ..front };
                self.in_flight.push_front(again);
                (0, None)
            }
            outcome => self.drain(ctx, pacing, front, outcome).await,
        }
    }

    /// Answers batches whose pushes landed (the last one's push carried the others'
    /// commits), once the store reflects them; returns how many writes.
    async fn answer(&mut self, ctx: Ctx<'_>, pacing: &mut Pacing, landed: Vec<InFlight>) -> usize {
        let Some(last) = landed.last() else { return 0 };
        let took = last.started.elapsed();
        pacing.pushed(took);
        self.push_time = Some(match self.push_time {
            Some(average) => average.mul_f64(0.75) + took.mul_f64(0.25),
            None => took,
        });
        ctx.config.metrics.pushes_blocked(&ctx.config.reference, None);
        let tips = writer::tips(ctx.config, landed.iter().flat_map(|f| f.staged.built.iter()));
        for (reference, head) in
            [(Some(&ctx.config.reference), tips.branch), (ctx.config.status_reference.as_ref(), tips.status)]
        {
            if let (Some(reference), Some(head)) = (reference, head)
                && let Err(e) = remote::record_push(ctx.mirror, reference, head)
            {
                warn!(error = %e, "recording the push in the mirror failed");
            }
        }
        let applied = advance(ctx.mirror, ctx.store, tips).await;
        let answered = landed.iter().map(|f| f.staged.committed.len()).sum();
        for batch in landed {
            for c in &batch.staged.committed {
                self.busy.remove(&c.pending.write.key);
            }
            writer::answer(ctx.store, batch.staged.committed, &applied);
        }
        if let Some(snapshots) = &ctx.config.snapshots {
            snapshots.after_push(ctx.mirror, ctx.store, ctx.config);
        }
        answered
    }

    /// The oldest push was refused or failed: waits for the others, answers those that landed,
    /// fails the writes of a push that failed and returns those of a refused one (and of every
    /// batch built on it) to be staged again on the remote's new tip.
    async fn drain(
        &mut self,
        ctx: Ctx<'_>,
        pacing: &mut Pacing,
        front: InFlight,
        outcome: Outcome,
    ) -> (usize, Option<Batch>) {
        let mut settled = vec![(front, outcome)];
        while let Some(mut next) = self.in_flight.pop_front() {
            let outcome = ended(&mut next.push).await;
            settled.push((next, outcome));
        }
        self.busy.clear();
        // A batch whose push landed carried every batch below it.
        let last = settled.iter().rposition(|(_, o)| matches!(o, Ok(PushOutcome::Pushed)));
        let mut answered = 0;
        if let Some(last) = last {
            let rest = settled.split_off(last + 1);
            answered = self.answer(ctx, pacing, settled.into_iter().map(|(f, _)| f).collect()).await;
            settled = rest;
        }
        let mut rest = settled.into_iter();
        let Some((first, outcome)) = rest.next() else { return (answered, None) };
        let batches = std::iter::once(first).chain(rest.map(|(f, _)| f));
        if let Err(e) = outcome {
            warn!(error = %e, "push failed");
            if matches!(e, GitError::Remote(remote::RemoteError::StaleLock { .. })) {
                ctx.config.metrics.pushes_blocked(&ctx.config.reference, Some(&e));
            }
            // The batches above it were built on its commit.
            writer::fail_all(batches.flat_map(|f| f.staged.committed).map(|c| c.pending), &e.to_string());
            return (answered, None);
        }
        pacing.others_seen();
        let batches: Vec<Staged> = batches.map(|f| f.staged).collect();
        let tries = batches.iter().map(|s| s.tries).max().unwrap_or(1);
        // Writers that keep colliding back off by a random, growing delay, so that one of them gets
        // through instead of all retrying in lockstep.
        tokio::time::sleep(backoff(tries)).await;
        if let Err(e) = fetch_and_advance(ctx.mirror, ctx.store, ctx.config).await {
            warn!(error = %e, "fetch after a rejected push failed");
        }
        let deadline = batches.iter().map(|s| s.deadline).min().unwrap_or_else(Instant::now);
        let mut writes = Vec::new();
        for staged in batches {
            if writer::landed(ctx, &staged.built).await {
                debug!("the commits are on the remote after all: an earlier push landed");
                answered += staged.committed.len();
                writer::answer(ctx.store, staged.committed, &Ok(()));
            } else {
                writes.extend(staged.committed.into_iter().map(|c| c.pending));
            }
        }
        if writes.is_empty() {
            return (answered, None);
        }
        debug!(tries, "push rejected: another writer was first; replaying on the new tip");
        if tries >= MAX_ATTEMPTS || Instant::now() >= deadline {
            writer::fail_all(writes, "the remote kept moving; gave up replaying");
            return (answered, None);
        }
        (answered, Some(Batch { writes, tries: tries + 1, deadline }))
    }
}

/// Whether the store's tips are the commits `staged` was built on (the batch below it landed and
/// nothing else is known to have).
fn on_bases(ctx: Ctx<'_>, staged: &Staged) -> bool {
    staged.built.iter().all(|b| writer::reflected(ctx, &b.reference) == b.base)
}

/// How a push task ended (a task that panicked or was cancelled counts as a failed push).
async fn ended(push: &mut JoinHandle<Outcome>) -> Outcome {
    push.await.unwrap_or_else(|e| Err(GitError::Command(format!("push: {e}"))))
}

/// Pushes the commits of `staged` in a task of its own; `start` says how (see
/// [`crate::metrics::PushLabels`]).
fn spawn_push(ctx: Ctx<'_>, staged: &Staged, start: &'static str) -> JoinHandle<Outcome> {
    ctx.config.metrics.push_started(&ctx.config.reference, start);
    let updates: Vec<_> = staged.built.iter().map(writer::Built::update).collect();
    let (mirror, config, local, deadline) =
        (ctx.mirror.clone(), ctx.config.clone(), ctx.local.cloned(), staged.deadline);
    tokio::spawn(async move { writer::push_until(&mirror, &config, local.as_ref(), &updates, deadline).await })
}
