//! [`GitStorage`]: the [`Storage`] behind the API. Each kind has a home: the branch people read,
//! the lease ref next to it (leader election renews every few seconds, which must not flood the
//! branch's history), or memory with a time to live (Events). Reads come from the stores; writes
//! go through the sync loop of the kind's ref, or straight into memory.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use gitbacked_core::registry::{GroupKind, Home, Registry};
use gitbacked_core::status::ApiResult;
use gitbacked_core::storage::{Storage, Write, WriteOutcome};
use gitbacked_core::{Expired, MemoryStorage, ObjectKey, StoredObject, WatchEvents};
use tokio::sync::watch;

use crate::metrics::GitMetrics;
use crate::mirror::credentials::Credentials;
use crate::mirror::{GitError, Identity, Mirror, remote};
use crate::store::Store;
use crate::sync::snapshots::Snapshots;
use crate::sync::{Channel, SyncConfig, SyncError};

/// How a [`GitStorage`] reaches and writes its repository.
#[derive(Clone, Debug)]
pub struct Config {
    /// The remote: an absolute local path, or a `file://`, `git://`, `ssh://` or `https://` URL.
    pub url: String,
    /// The branch; `None` for the remote's default branch.
    pub branch: Option<String>,
    /// Create the branch with the first write when the remote lacks it.
    pub create_branch: bool,
    /// The directory objects live in, relative and normalized; empty for the root.
    pub subdirectory: String,
    /// Where the bare mirror lives.
    pub mirror_dir: std::path::PathBuf,
    /// Keep a cache of parsed files next to the mirror, so a restart parses only what changed.
    pub parse_cache: bool,
    /// How fetch and push authenticate.
    pub credentials: Credentials,
    /// How often the remote is polled.
    pub interval: std::time::Duration,
    /// Author and committer of the commits written.
    pub author: Identity,
    /// Sign commits as git's configuration says.
    pub sign_commits: bool,
    /// How long a write may wait for the remote.
    pub write_timeout: std::time::Duration,
    /// How long Events live in memory.
    pub event_ttl: std::time::Duration,
    /// How much of the Events is kept in memory.
    pub event_limits: gitbacked_core::Limits,
    /// How many watch events each store keeps.
    pub watch_window: usize,
    /// Push directly into a bare repository on this machine when `git push` would do nothing more.
    pub direct_push: bool,
    /// How many pushes may be under way at once (at least 1).
    pub pushes_in_flight: usize,
    /// Where `status` and `metadata.managedFields` of the branch's objects are kept.
    pub bookkeeping: crate::status_ref::Bookkeeping,
    /// How many commits the branch moves between two snapshots this process writes; 0: none (see
    /// [`crate::sync::snapshots`]).
    pub snapshot_every: u64,
}

/// The directory of a remote on this machine (an absolute path or `file://` URL).
fn local_path(url: &str) -> Option<std::path::PathBuf> {
    let path = url.strip_prefix("file://").unwrap_or(url);
    (path.starts_with('/') && std::path::Path::new(path).exists()).then(|| std::path::PathBuf::from(path))
}

/// Where a kind's objects are read and written.
enum Route<'a> {
    Git(&'a Channel),
    Memory,
}

/// The storage of one repository: the branch, the lease ref and the Events in memory.
#[derive(Clone)]
pub struct GitStorage {
    branch: Channel,
    leases: Channel,
    events: Arc<MemoryStorage>,
    metrics: Arc<GitMetrics>,
}

impl GitStorage {
    /// Opens the mirror, syncs both refs from the remote, and starts their loops; returns once the
    /// initial sync is complete, with the loops' tasks. Metrics are registered in `metrics`.
    pub async fn open(
        config: Config,
        metrics: &mut prometheus_client::registry::Registry,
    ) -> Result<(Self, [tokio::task::JoinHandle<()>; 2]), GitError> {
        let mirror = Arc::new(Mirror::open_or_init(&config.mirror_dir, &config.subdirectory)?);
        remote::configure(mirror.dir(), &config.url, &config.credentials).await?;
        let (branch, listed) =
            remote::resolve_branch(mirror.dir(), config.branch.as_deref(), config.create_branch).await?;
        let snapshotted = listed.references.contains(&crate::snapshot_ref(&branch));
        let store = Store::new(config.watch_window, Home::Branch).with_bookkeeping(config.bookkeeping);
        // The branch's only: lease renewals would fill the cache with blobs read once.
        let store = Arc::new(match config.parse_cache {
            true => store.with_parse_cache(&config.mirror_dir),
            false => store,
        });
        let lease_store = Arc::new(Store::new(config.watch_window, Home::Leases));
        let git_metrics = GitMetrics::register(metrics, vec![store.clone(), lease_store.clone()]);
        let branch_config = SyncConfig {
            reference: format!("refs/heads/{branch}"),
            status_reference: config.bookkeeping.uses_ref().then(|| crate::status_ref::status_ref(&branch)),
            interval: config.interval,
            author: config.author.clone(),
            sign_commits: config.sign_commits,
            write_timeout: config.write_timeout,
            metrics: git_metrics.clone(),
            local_remote: local_path(&config.url),
            direct_push: config.direct_push,
            pushes_in_flight: config.pushes_in_flight.max(1),
            snapshots: Some(Arc::new(Snapshots::new(&branch, config.snapshot_every, snapshotted))),
        };
        let lease_config = SyncConfig {
            reference: crate::lease_ref(&branch),
            status_reference: None,
            snapshots: None,
            ..branch_config.clone()
        };
        let ((branch, branch_task), (leases, lease_task)) = tokio::try_join!(
            Channel::start(mirror.clone(), store, branch_config),
            Channel::start(mirror, lease_store, lease_config),
        )?;
        let events = Arc::new(
            MemoryStorage::new(config.watch_window).with_ttl(config.event_ttl).with_limits(config.event_limits),
        );
        Ok((GitStorage { branch, leases, events, metrics: git_metrics }, [branch_task, lease_task]))
    }

    /// The health of the sync loops, for `/readyz`.
    pub fn health(&self) -> Arc<GitMetrics> {
        self.metrics.clone()
    }

    /// Checks the remote now; resolves once the stores reflect what was found.
    pub async fn sync_now(&self) -> Result<(), SyncError> {
        let (branch, leases) = tokio::join!(self.branch.sync_now(), self.leases.sync_now());
        branch.and(leases)
    }

    /// Stops both sync loops after the writes in flight.
    pub async fn shutdown(&self) {
        tokio::join!(self.branch.shutdown(), self.leases.shutdown());
    }

    /// The store of the branch.
    pub fn branch_store(&self) -> &Arc<Store> {
        &self.branch.store
    }

    /// The Events, kept in memory.
    pub fn events(&self) -> &Arc<MemoryStorage> {
        &self.events
    }

    fn route(&self, gk: &GroupKind) -> Route<'_> {
        match self.branch.store.registry().by_kind(gk).map(|rt| rt.home) {
            Some(Home::Memory) => Route::Memory,
            Some(Home::Leases) => Route::Git(&self.leases),
            Some(Home::Branch) | None => Route::Git(&self.branch),
        }
    }
}

impl Storage for GitStorage {
    fn registry(&self) -> Arc<Registry> {
        self.branch.store.registry()
    }

    fn get(&self, key: &ObjectKey) -> Option<Arc<StoredObject>> {
        match self.route(&key.gk) {
            Route::Git(channel) => channel.store.get(key),
            Route::Memory => self.events.get(key),
        }
    }

    fn list(&self, gk: &GroupKind, namespace: Option<&str>) -> (u64, Vec<Arc<StoredObject>>) {
        match self.route(gk) {
            Route::Git(channel) => channel.store.list(gk, namespace),
            Route::Memory => self.events.list(gk, namespace),
        }
    }

    fn revision(&self, gk: &GroupKind) -> u64 {
        match self.route(gk) {
            Route::Git(channel) => channel.store.revision(),
            Route::Memory => self.events.revision(gk),
        }
    }

    fn events_since(&self, gk: &GroupKind, revision: u64) -> Result<WatchEvents, Expired> {
        match self.route(gk) {
            Route::Git(channel) => channel.store.events_since(revision),
            Route::Memory => self.events.events_since(gk, revision),
        }
    }

    fn subscribe(&self, gk: &GroupKind) -> watch::Receiver<u64> {
        match self.route(gk) {
            Route::Git(channel) => channel.store.subscribe(),
            Route::Memory => self.events.subscribe(gk),
        }
    }

    fn write(&self, write: Write) -> BoxFuture<'static, ApiResult<WriteOutcome>> {
        match self.route(&write.key.gk) {
            Route::Memory => self.events.write(write),
            Route::Git(channel) => {
                let channel = channel.clone();
                async move { channel.write(write).await }.boxed()
            }
        }
    }
}
