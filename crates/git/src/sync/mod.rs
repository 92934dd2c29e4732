//! The sync loop: the one task that talks to the remote. It polls the remote branch and brings new
//! commits into the store, and it takes batches of writes to the remote (see the `writer` module).
//! Data flows one way: git → store → API; API writes → this loop → git → store.

mod pipeline;
pub(crate) mod snapshots;
mod writer;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use gix::ObjectId;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use gitbacked_core::status::{ApiResult, StatusError};
use gitbacked_core::storage::{Write, WriteOutcome};

use crate::metrics::GitMetrics;
use crate::mirror::local::LocalRemote;
use crate::mirror::{GitError, Identity, Mirror, remote};
use crate::store::{StatusStep, Store};
use pipeline::Pipeline;
use writer::{Batch, Ctx};

/// How the loop reaches and writes the remote.
#[derive(Clone)]
pub struct SyncConfig {
    /// The remote reference this loop reads and writes (`refs/heads/main`).
    pub reference: String,
    /// The status ref that moves with it, when the store keeps bookkeeping there (see
    /// [`crate::status_ref`]).
    pub status_reference: Option<String>,
    /// How often the remote is polled.
    pub interval: Duration,
    /// Author and committer of the commits written.
    pub author: Identity,
    /// Sign commits as git's configuration says.
    pub sign_commits: bool,
    /// How long a write may wait for the remote before it fails with 503.
    pub write_timeout: Duration,
    /// Where git operations are counted and the loop's health is kept.
    pub metrics: Arc<GitMetrics>,
    /// The remote's directory when it is on this machine: its branch is watched closely.
    pub local_remote: Option<std::path::PathBuf>,
    /// Push to a remote on this machine by writing into it directly when `git push` would do
    /// nothing more (see [`crate::mirror::local`]).
    pub direct_push: bool,
    /// How many pushes may be under way at once: the next batch is built on a commit still in
    /// flight (see [`pipeline`]). At least 1.
    pub pushes_in_flight: usize,
    /// The snapshot ref of the branch: read at the initial sync, written now and then after pushes
    /// (see [`snapshots`]). `None` for the lease ref.
    pub(crate) snapshots: Option<Arc<snapshots::Snapshots>>,
}

impl SyncConfig {
    /// The remote references this loop reads and writes: its own, and its status ref if it has one.
    pub(crate) fn references(&self) -> Vec<&str> {
        std::iter::once(self.reference.as_str()).chain(self.status_reference.as_deref()).collect()
    }

    /// Runs a git network operation on this loop's reference and counts it; `outcome` names a
    /// successful result.
    pub(crate) async fn observed<T>(
        &self,
        operation: &'static str,
        run: impl Future<Output = Result<T, GitError>>,
        outcome: impl Fn(&T) -> &'static str,
    ) -> Result<T, GitError> {
        let started = std::time::Instant::now();
        let result = run.await;
        let outcome = result.as_ref().map_or("error", outcome);
        self.metrics.git(&self.reference, operation, outcome, started.elapsed());
        result
    }
}

/// How often a remote on this machine is looked at: reading one ref costs microseconds.
const LOCAL_PEEK: Duration = Duration::from_millis(50);

/// How long a batch may wait for the writers just answered to come back, at least; a tenth of a
/// push when pushes take longer (see [`Regroup`]).
const LINGER: Duration = Duration::from_millis(2);

/// Waits for the writers a push answered to come back with their next writes. A controller
/// answered by one push usually writes again at once; joining the next push costs it far less than
/// a push of its own. Without the wait the writers split into two batches that alternate for
/// good, each waiting for the other's push before its own (over HTTP, where answered clients take
/// milliseconds to write again, 64 writers went as 32 + 32 and waited 2.5–3 pushes a write).
/// Writers that do not write again at once (independent requests) would only be delayed by it:
/// the loop learns how many come back, and while fewer than half do it waits only now and then,
/// to see whether they have started to.
#[derive(Clone, Copy, Debug)]
struct Regroup {
    /// The share of answered writers that came back within the wait, a moving average.
    returning: f64,
    /// Pushes landed, to wait at every [`REGROUP_PROBE`]th one whatever the share.
    landings: u32,
    waiting: Option<Awaited>,
}

/// The writers answered by the last push, awaited.
#[derive(Clone, Copy, Debug)]
struct Awaited {
    answered: usize,
    /// Writes queued when they were answered.
    queued: usize,
    until: tokio::time::Instant,
}

/// While few answered writers come back, the loop still waits for them after one push in this many.
const REGROUP_PROBE: u32 = 8;

impl Default for Regroup {
    fn default() -> Self {
        Regroup { returning: 1.0, landings: 0, waiting: None }
    }
}

impl Regroup {
    /// A push answered `answered` writes while `queued` others waited; pushes take `push_time`.
    fn landed(&mut self, answered: usize, queued: usize, push_time: Option<Duration>, now: tokio::time::Instant) {
        self.landings = self.landings.wrapping_add(1);
        if answered == 0 || (self.returning < 0.5 && !self.landings.is_multiple_of(REGROUP_PROBE)) {
            return;
        }
        let wait = push_time.map_or(LINGER, |push| (push / 10).max(LINGER));
        self.waiting = Some(Awaited { answered, queued, until: now + wait });
    }

    /// Until when a batch of `queued` writes waits for the answered writers.
    fn hold(&self, queued: usize) -> Option<tokio::time::Instant> {
        self.waiting.filter(|w| queued < w.queued + w.answered).map(|w| w.until)
    }

    /// A batch of `queued` writes goes: learns how many of the awaited writers came back.
    fn launched(&mut self, queued: usize) {
        if let Some(w) = self.waiting.take() {
            let back = queued.saturating_sub(w.queued).min(w.answered) as f64 / w.answered as f64;
            self.returning = self.returning * 0.75 + back * 0.25;
        }
    }
}

/// How long after another writer showed itself (its commits fetched, or a push refused because of
/// them) a loop keeps leaving turns between its pushes.
const CONTENTION_MEMORY: Duration = Duration::from_secs(30);

/// Turns on a remote several processes write to. With a compare-and-swap push, the writer that has
/// just pushed builds its next commit on its own tip at once, while the others must fetch first:
/// left alone it keeps the branch and starves them (the soak test once saw one process acknowledge
/// 142 writes while three others got none in a minute, and a person's 150 pushes all refused). So
/// while other writers are about, a loop waits before each batch for a random time of up to twice
/// its last push, long enough for a refused writer to fetch and push in between.
///
/// A writer that wins every race sees no one: the others' pushes are refused, never its own, and
/// none of their commits arrives. So even alone it leaves one such turn every [`UNSEEN_STREAK`]
/// batches pushed back to back; once one of the others gets a commit in, it is seen.
#[derive(Default)]
pub(crate) struct Pacing {
    others_seen: Option<std::time::Instant>,
    last_push: Option<(std::time::Instant, Duration)>,
    /// Batches started right after the previous push since the last turn left.
    streak: u32,
}

/// How many batches in a row a loop that has seen no other writer pushes before it leaves a turn
/// anyway: one wait of up to two pushes in this many costs a lone writer a few percent of its
/// throughput under sustained load, and nothing otherwise.
const UNSEEN_STREAK: u32 = 16;

impl Pacing {
    /// Another writer's commits arrived, or refused a push.
    pub(crate) fn others_seen(&mut self) {
        self.others_seen = Some(std::time::Instant::now());
    }

    /// Whether other writers showed themselves lately.
    pub(crate) fn contended(&self) -> bool {
        self.others_seen.is_some_and(|t| t.elapsed() < CONTENTION_MEMORY)
    }

    /// A push succeeded after `took` (at most a quarter of a second counts: a push that waited
    /// for an unreachable remote says nothing about turns).
    pub(crate) fn pushed(&mut self, took: Duration) {
        self.last_push = Some((std::time::Instant::now(), took.min(Duration::from_millis(250))));
    }

    /// The wait before the next batch: none unless this loop pushed just now and others write (or
    /// it has pushed [`UNSEEN_STREAK`] batches back to back); then `draw` (random bits) picks it
    /// between zero and twice the last push.
    fn turn(&mut self, draw: u64) -> Duration {
        let took = match self.last_push {
            Some((at, took)) if at.elapsed() < took * 2 => took,
            _ => {
                self.streak = 0;
                return Duration::ZERO;
            }
        };
        self.streak += 1;
        if !self.contended() && self.streak < UNSEEN_STREAK {
            return Duration::ZERO;
        }
        self.streak = 0;
        let nanos = (took * 2).as_nanos().max(1) as u64;
        Duration::from_nanos(draw % nanos)
    }
}

/// A write waiting for its push.
pub(crate) struct PendingWrite {
    write: Write,
    reply: oneshot::Sender<ApiResult<WriteOutcome>>,
}

/// Requests to the loop.
pub(crate) enum Command {
    /// Apply a write and reply once it is pushed.
    Write(PendingWrite),
    /// Check the remote now (webhooks, tests) and reply once the store is up to date.
    SyncNow(oneshot::Sender<Result<(), GitError>>),
    /// Stop after the writes in flight.
    Shutdown,
}

/// Where the loop is.
enum State {
    /// Waiting for a write, the end of a push, a request or the next poll.
    Idle,
    /// Checking the remote for new commits (and answering who asked for it).
    Poll(Option<oneshot::Sender<Result<(), GitError>>>),
    /// Staging a batch of writes and starting its push.
    Write(Batch),
    /// The oldest push under way ended so.
    Settle(pipeline::Outcome),
    /// Every handle is gone and every write answered.
    Stopped,
}

/// What the loop reads and writes.
struct Remote {
    mirror: Arc<Mirror>,
    store: Arc<Store>,
    config: SyncConfig,
    /// The remote, when it is on this machine.
    local: Option<Arc<LocalRemote>>,
}

impl Remote {
    fn ctx(&self) -> Ctx<'_> {
        let local = self.local.as_ref().filter(|_| self.config.direct_push);
        Ctx { mirror: &self.mirror, store: &self.store, config: &self.config, local }
    }
}

/// The loop's own data.
pub(crate) struct Syncer {
    remote: Remote,
    commands: mpsc::Receiver<Command>,
    /// Writes received for the next batch, and when the first of them came with the turn it
    /// leaves other writers.
    queue: Vec<PendingWrite>,
    queued: Option<(tokio::time::Instant, Duration)>,
    /// Writes to objects that a batch under way writes: queued again once one lands.
    deferred: Vec<PendingWrite>,
    /// Polls asked for while pushes were under way: run once none is.
    sync_requests: VecDeque<oneshot::Sender<Result<(), GitError>>>,
    next_poll: tokio::time::Instant,
    /// The writers answered by the last push, waited for.
    regroup: Regroup,
    /// Turns with other writers on the remote.
    pacing: Pacing,
    /// The pushes under way.
    pipeline: Pipeline,
    /// No more commands: stop once every write received is answered.
    stopping: bool,
}

impl Syncer {
    /// Fetches the branch and brings the store to its tip; the initial sync.
    pub(crate) async fn start(
        mirror: Arc<Mirror>,
        store: Arc<Store>,
        config: SyncConfig,
    ) -> Result<(Self, mpsc::Sender<Command>), GitError> {
        match &config.snapshots {
            Some(snapshots) => snapshots.initial_sync(&mirror, &store, &config).await?,
            None => fetch_and_advance(&mirror, &store, &config).await?,
        }
        let (tx, commands) = mpsc::channel(1024);
        let local = config.local_remote.as_deref().and_then(LocalRemote::open).map(Arc::new);
        let next_poll = tokio::time::Instant::now() + jitter(config.interval);
        let syncer = Syncer {
            remote: Remote { mirror, store, config, local },
            commands,
            queue: Vec::new(),
            queued: None,
            deferred: Vec::new(),
            sync_requests: VecDeque::new(),
            next_poll,
            regroup: Regroup::default(),
            pacing: Pacing::default(),
            pipeline: Pipeline::default(),
            stopping: false,
        };
        Ok((syncer, tx))
    }

    /// Runs until every handle is dropped.
    pub(crate) async fn run(mut self) {
        let mut state = State::Idle;
        loop {
            state = self.step(state).await;
            if matches!(state, State::Stopped) {
                break;
            }
        }
        if let Some(snapshots) = &self.remote.config.snapshots {
            snapshots.finish().await;
        }
        debug!("sync loop stopped");
    }

    async fn step(&mut self, state: State) -> State {
        match state {
            State::Idle => {
                let idle = self.pipeline.is_empty();
                if self.stopping && idle && self.queue.is_empty() && self.deferred.is_empty() {
                    return State::Stopped;
                }
                if idle && let Some(reply) = self.sync_requests.pop_front() {
                    return State::Poll(Some(reply));
                }
                let launch = self.launch_at();
                let local = self.remote.local.as_ref().filter(|_| idle);
                let peek = tokio::time::sleep(if local.is_some() { LOCAL_PEEK } else { self.remote.config.interval });
                tokio::select! {
                    biased;
                    outcome = self.pipeline.outcome() => State::Settle(outcome),
                    _ = tokio::time::sleep_until(launch.unwrap_or(self.next_poll)), if launch.is_some() => {
                        State::Write(self.take_batch())
                    }
                    command = self.commands.recv(), if !self.stopping => {
                        self.receive(command);
                        State::Idle
                    }
                    _ = tokio::time::sleep_until(self.next_poll), if idle => State::Poll(None),
                    _ = peek, if idle => match local.map(|l| self.remote.config.references().iter().map(|r| l.tip(r)).collect::<Vec<_>>()) {
                        Some(tips) if self.moved(&tips) => State::Poll(None),
                        _ => State::Idle,
                    },
                }
            }
            State::Poll(reply) => {
                self.next_poll = tokio::time::Instant::now() + jitter(self.remote.config.interval);
                let result = self.poll().await;
                if let Err(e) = &result {
                    warn!(error = %e, "sync with the remote failed; serving the last synced state");
                    self.remote.config.metrics.sync_failed(&self.remote.config.reference, e);
                }
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
                State::Idle
            }
            State::Write(batch) => {
                let ctx = self.remote.ctx();
                let bases = self.pipeline.bases(ctx);
                if let Some(staged) = writer::stage(ctx, bases, batch, self.pipeline.busy(), &mut self.deferred) {
                    self.pipeline.launch(ctx, staged);
                }
                State::Idle
            }
            State::Settle(outcome) => {
                let (answered, replay) = self.pipeline.settle(self.remote.ctx(), &mut self.pacing, outcome).await;
                let (waiting, now) = (self.queue.len() + self.deferred.len(), tokio::time::Instant::now());
                self.regroup.landed(answered, waiting, self.pipeline.push_time(), now);
                // Writes that waited for an object under way go with the next batch, first.
                if !self.deferred.is_empty() {
                    self.queued = self.queued.or(Some((tokio::time::Instant::now(), Duration::ZERO)));
                    self.queue.splice(0..0, self.deferred.drain(..));
                }
                replay.map_or(State::Idle, State::Write)
            }
            State::Stopped => State::Stopped,
        }
    }

    /// Takes a command received while waiting.
    fn receive(&mut self, command: Option<Command>) {
        match command {
            Some(Command::Write(w)) => {
                if self.queue.is_empty() {
                    // Right after this loop's own push, other writers get a turn first (see
                    // [`Pacing`]); writes that arrive meanwhile join the batch.
                    let turn = match self.pipeline.is_empty() {
                        true => self.pacing.turn(gitbacked_core::uid::random()),
                        false => Duration::ZERO,
                    };
                    self.queued = Some((tokio::time::Instant::now(), turn));
                }
                self.queue.push(w);
            }
            Some(Command::SyncNow(reply)) => self.sync_requests.push_back(reply),
            None | Some(Command::Shutdown) => {
                self.stopping = true;
                self.commands.close();
            }
        }
    }

    /// When the queued writes go as a batch: after the turn; while pushes are under way, once the
    /// pipeline lets the next one start; and while writers just answered are not all back, up to
    /// the [`Regroup`]'s wait. `None`: nothing queued, or a push must land first.
    fn launch_at(&self) -> Option<tokio::time::Instant> {
        let (first, turn) = self.queued.filter(|_| !self.queue.is_empty())?;
        let at = match self.pipeline.is_empty() {
            true => first + turn,
            false => {
                // Pushes overlap, but not while other writers want turns or a poll waits for
                // them to end.
                let overlap = !self.pacing.contended() && self.sync_requests.is_empty();
                let limit = if overlap { self.remote.config.pushes_in_flight } else { 1 };
                tokio::time::Instant::from_std(self.pipeline.next_launch(limit, self.queue.len())?)
            }
        };
        Some(self.regroup.hold(self.queue.len()).map_or(at, |until| at.max(until)))
    }

    /// The queued writes as a batch, with those already sent to the loop.
    fn take_batch(&mut self) -> Batch {
        while let Ok(command) = self.commands.try_recv() {
            self.receive(Some(command));
        }
        self.queued = None;
        self.regroup.launched(self.queue.len());
        let writes = std::mem::take(&mut self.queue);
        Batch { writes, tries: 1, deadline: std::time::Instant::now() + self.remote.config.write_timeout }
    }

    /// Whether the remote's tips of this loop's references (as [`SyncConfig::references`] lists
    /// them) are not those the store reflects.
    fn moved(&self, tips: &[Option<ObjectId>]) -> bool {
        let reflected = [self.remote.store.tip().0, self.remote.store.status_tip()];
        tips.iter().zip(reflected).any(|(tip, reflected)| tip.is_some() && *tip != reflected)
    }

    /// A cheap look at the remote tips; fetches and applies only when one moved.
    async fn poll(&mut self) -> Result<(), GitError> {
        let Remote { mirror, store, config, .. } = &self.remote;
        let (dir, references) = (mirror.dir(), config.references());
        let tips = config.observed("ls-remote", remote::remote_tips(dir, &references), |_| "ok").await?;
        if self.moved(&tips) {
            // This loop's own pushes move the store's tip as they land: these are someone else's.
            self.pacing.others_seen();
            fetch_and_advance(mirror, store, config).await?;
        }
        config.metrics.synced(&config.reference);
        // A stale lock in a remote on this machine blocks pushes even while reads go on.
        let blocked = writer::stale_lock(config);
        config.metrics.pushes_blocked(&config.reference, blocked.as_ref());
        Ok(())
    }
}

fn jitter(interval: Duration) -> Duration {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    // Up to 10% more, so that many processes do not poll in lockstep.
    interval + interval.mul_f64(f64::from(nanos % 1000) / 10_000.0)
}

/// Fetches the loop's references and brings the store to the fetched tips.
pub(crate) async fn fetch_and_advance(
    mirror: &Arc<Mirror>,
    store: &Arc<Store>,
    config: &SyncConfig,
) -> Result<(), GitError> {
    let references = config.references();
    let fetched = config.observed("fetch", remote::fetch(mirror.dir(), &references), |_| "ok").await?;
    let tips = Tips { branch: fetched[0], status: fetched.get(1).copied().flatten() };
    match advance(mirror, store, tips).await {
        // A shallow mirror (see [`snapshots`]) lacks what a rewritten history is read from: the
        // walk back from the new tip runs past its oldest commit. With all of it, read it again.
        Err(e) if mirror.is_shallow() => {
            warn!(error = %e, "the branch cannot be read in the shallow mirror; fetching all of its history");
            let depth = remote::Depth::Unshallow;
            config.observed("fetch", remote::fetch_with(mirror.dir(), &references, depth), |_| "ok").await?;
            advance(mirror, store, tips).await?;
        }
        other => other?,
    }
    config.metrics.synced(&config.reference);
    Ok(())
}

/// Where a loop's references are to be read to: `None` leaves one where the store has it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tips {
    /// The loop's own reference (the branch).
    pub(crate) branch: Option<ObjectId>,
    /// Its status ref.
    pub(crate) status: Option<ObjectId>,
}

/// Applies every commit on the first-parent chain from the store's tip to the branch's new tip, one
/// by one, so that resourceVersions match those of any other process reading the same history;
/// then the status ref's change as one step (its history is bookkeeping: only its tip counts). A
/// rewritten history (force-push) is read again from the start into a successor store whose
/// numbering continues after the old one, and every watch gets 410.
pub(crate) async fn advance(mirror: &Arc<Mirror>, store: &Arc<Store>, tips: Tips) -> Result<(), GitError> {
    let (mirror, store) = (mirror.clone(), store.clone());
    tokio::task::spawn_blocking(move || {
        // Timed by the bench's `write-costs` (issue 15).
        let _cost = tracing::trace_span!(target: "gitbacked::cost", "apply").entered();
        let status = tips.status.filter(|tip| Some(*tip) != store.status_tip());
        let mut step = status.map(|tip| StatusStep::read(&mirror, store.status_tip(), tip)).transpose()?;
        if let Some(tip) = tips.branch {
            advance_branch(&mirror, &store, tip, &mut step)?;
        }
        // The branch did not move: the status ref's change is a step of its own.
        if let Some(step) = step {
            store.apply_status(&mirror, step);
            debug!(tip = ?status, "synced the status ref");
        }
        Ok(())
    })
    .await
    .map_err(|e| GitError::Command(format!("sync task failed: {e}")))?
}

/// Brings the store to the branch's `tip`; a step of the status ref (`status`) is taken with the
/// last commit, as one step, unless the history was rewritten.
fn advance_branch(
    mirror: &Arc<Mirror>,
    store: &Arc<Store>,
    tip: ObjectId,
    status: &mut Option<StatusStep>,
) -> Result<(), GitError> {
    let (current, seq) = store.tip();
    if current == Some(tip) {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let reader = mirror.reader();
    let commits = match reader.first_parent_chain(current, tip)? {
        Some(chain) => {
            let previous = current.map(|c| reader.commit_info(c)).transpose()?.and_then(|i| i.subtree);
            let commits = read_chain(mirror, store, chain, seq, previous, status)?;
            if current.is_none() {
                store.finish_initial_sync();
            }
            commits
        }
        None => {
            warn!(%tip, "the branch history was rewritten; reading it again from the start");
            let successor = store.successor();
            let chain = reader.first_parent_chain(None, tip)?.unwrap_or_default();
            let commits = read_chain(mirror, &successor, chain, seq, None, &mut None)?;
            successor.finish_initial_sync();
            store.replace_with(successor);
            commits
        }
    };
    let elapsed = started.elapsed();
    if current.is_none() {
        let objects = store.stats().objects;
        let rate = (objects as f64 / elapsed.as_secs_f64()).round();
        info!(target: "gitbacked::progress", objects, ?elapsed, rate, "initial sync complete");
    }
    info!(commits, %tip, ?elapsed, "synced");
    // What the commits brought is reviewed (and reported) beside the sync, not on its path.
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.review());
    Ok(())
}

/// Applies a first-parent chain of commits, numbering them after `seq`, the last one with the step
/// of the status ref `status` (taken); returns how many.
fn read_chain(
    mirror: &Mirror,
    store: &Store,
    chain: Vec<crate::mirror::CommitInfo>,
    mut seq: u64,
    mut previous: Option<ObjectId>,
    status: &mut Option<StatusStep>,
) -> Result<usize, GitError> {
    let commits = chain.len();
    for (i, info) in chain.into_iter().enumerate() {
        seq += 1;
        let subtree = info.subtree;
        let with = if i + 1 == commits { status.take() } else { None };
        let (id, started) = (info.id, std::time::Instant::now());
        let commit = store.read_commit(mirror, info, seq, previous)?;
        let read = started.elapsed();
        store.apply(mirror, commit, with);
        tracing::debug!(%id, ?read, applied = ?started.elapsed() - read, "commit read and applied");
        seq = store.tip().1;
        previous = subtree;
    }
    Ok(commits)
}

/// One reference of the remote (the branch, or the lease ref) with its store and its sync loop.
#[derive(Clone)]
pub(crate) struct Channel {
    pub(crate) store: Arc<Store>,
    commands: mpsc::Sender<Command>,
}

impl Channel {
    /// Brings `store` to the tip of `config.reference` (the initial sync), then runs its loop in a
    /// task of its own.
    pub(crate) async fn start(
        mirror: Arc<Mirror>,
        store: Arc<Store>,
        config: SyncConfig,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), GitError> {
        let (syncer, commands) = Syncer::start(mirror, store.clone(), config).await?;
        Ok((Channel { store, commands }, tokio::spawn(syncer.run())))
    }

    /// Checks the remote now; resolves once the store reflects what was found.
    pub(crate) async fn sync_now(&self) -> Result<(), SyncError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::SyncNow(tx)).await.map_err(|_| SyncError::Stopped)?;
        Ok(rx.await.map_err(|_| SyncError::Stopped)??)
    }

    /// Takes a write to the remote; resolves once it is pushed (or failed).
    pub(crate) async fn write(&self, write: Write) -> ApiResult<WriteOutcome> {
        let (reply, rx) = oneshot::channel();
        let stopped = || StatusError::unavailable("the sync loop has stopped");
        self.commands.send(Command::Write(PendingWrite { write, reply })).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Stops the loop after the writes in flight.
    pub(crate) async fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown).await;
    }
}

/// Why a sync asked for did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The loop has stopped (the store is closed).
    #[error("the sync loop has stopped")]
    Stopped,
    /// The remote could not be read.
    #[error(transparent)]
    Git(#[from] GitError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answered_writers_are_waited_for_while_they_come_back() {
        let now = tokio::time::Instant::now();
        let push = Some(Duration::from_millis(150));
        let mut regroup = Regroup::default();
        // 16 writers answered while 2 writes waited: the batch waits for 18, a tenth of a push.
        regroup.landed(16, 2, push, now);
        let until = now + Duration::from_millis(15);
        assert_eq!(regroup.hold(2), Some(until));
        assert_eq!(regroup.hold(17), Some(until));
        assert_eq!(regroup.hold(18), None, "all back: it goes at once");
        regroup.launched(18);
        assert_eq!(regroup.returning, 1.0);
        // Fast pushes wait the linger at least; nothing answered, nothing awaited.
        regroup.landed(4, 0, Some(Duration::from_millis(3)), now);
        assert_eq!(regroup.hold(0), Some(now + LINGER));
        regroup.launched(4);
        regroup.landed(0, 3, push, now);
        assert_eq!(regroup.hold(3), None);

        // Independent writers: the answered ones do not come back, and the loop stops waiting,
        // but for one push in REGROUP_PROBE.
        let mut open = Regroup::default();
        let mut waits = 0;
        for _ in 0..4 * REGROUP_PROBE {
            open.landed(8, 1, push, now);
            if open.hold(1).is_some() {
                waits += 1;
            }
            open.launched(1);
        }
        assert!(open.returning < 0.5, "{open:?}");
        assert!((4..=7).contains(&waits), "{waits} waits: the first few, then one in {REGROUP_PROBE}");
        // Once they come back again, it waits every time.
        for _ in 0..2 * REGROUP_PROBE {
            open.landed(8, 1, push, now);
            open.launched(9);
        }
        assert!(open.returning > 0.5);
        open.landed(8, 1, push, now);
        assert!(open.hold(1).is_some());
    }

    #[test]
    fn a_loop_takes_turns_while_others_write_or_after_a_long_streak_and_right_after_its_push() {
        let push = Duration::from_millis(40);
        let mut alone = Pacing::default();
        alone.pushed(push);
        for batch in 1..UNSEEN_STREAK {
            assert_eq!(alone.turn(u64::MAX), Duration::ZERO, "alone on the remote: no wait (batch {batch})");
        }
        // A writer that wins every race sees no one: it leaves a turn now and then all the same.
        assert_eq!(alone.turn(u64::MAX), Duration::from_nanos(u64::MAX % 80_000_000), "a turn after a streak");
        assert_eq!(alone.turn(u64::MAX), Duration::ZERO, "and the streak starts over");
        // A batch that does not follow a push at once ends the streak.
        for _ in 2..UNSEEN_STREAK {
            alone.turn(u64::MAX);
        }
        alone.last_push = Some((std::time::Instant::now() - Duration::from_secs(1), push));
        assert_eq!(alone.turn(u64::MAX), Duration::ZERO);
        alone.pushed(push);
        assert_eq!(alone.turn(u64::MAX), Duration::ZERO, "a new streak");

        let mut shared = Pacing::default();
        shared.others_seen();
        assert_eq!(shared.turn(u64::MAX), Duration::ZERO, "nothing pushed yet: no wait");
        shared.pushed(push);
        let window = (push * 2).as_nanos() as u64;
        assert_eq!(shared.turn(0), Duration::ZERO, "the draw picks the wait from zero");
        assert_eq!(shared.turn(window - 1), push * 2 - Duration::from_nanos(1), "up to twice the push");
        assert_eq!(shared.turn(window), Duration::ZERO, "and wraps around");
        assert_eq!(shared.turn(window / 2 + window), push, "a draw in the middle waits one push");

        // A push that waited out an unreachable remote does not make the turns long.
        shared.pushed(Duration::from_secs(20));
        assert_eq!(shared.turn(u64::MAX), Duration::from_nanos(u64::MAX % 500_000_000));
        // Long after the last push, the next batch goes at once.
        shared.last_push = Some((std::time::Instant::now() - Duration::from_secs(1), push));
        assert_eq!(shared.turn(u64::MAX), Duration::ZERO);
        // And once others have been quiet for a while, no more turns.
        shared.pushed(push);
        shared.others_seen = Some(std::time::Instant::now() - CONTENTION_MEMORY);
        assert_eq!(shared.turn(u64::MAX), Duration::ZERO);
    }
}
