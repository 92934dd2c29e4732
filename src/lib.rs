//! gitbacked: the Kubernetes API served from a git repository.
//!
//! ```no_run
//! # async fn run() -> Result<(), gitbacked::Error> {
//! use std::time::Duration;
//! let store = gitbacked::GitStore::open("file:///srv/state.git", gitbacked::Options {
//!     branch: Some("main".into()),
//!     subdirectory: Some("clusters/dev".into()),
//!     interval: Duration::from_secs(15),
//!     ..Default::default()
//! }).await?;
//! let client: kube::Client = store.client();
//! // Api<K>, watcher, reflector, Controller, finalizer… run unchanged on `client`.
//! store.close().await?;
//! # Ok(()) }
//! ```
//!
//! The workspace's crates, each a seam the compiler enforces:
//! - `gitbacked-core`: objects, resource types, schemas, `Status` errors, the `Storage` contract
//!   and an in-memory storage; no I/O.
//! - `gitbacked-apiserver`: kube-apiserver's semantics over any `Storage`, and the axum Router.
//! - `gitbacked-git`: the git backend (mirror, layout, object index, sync loop).
//! - `gitbacked-gc`: the garbage collector, a controller on the API.
//!
//! This crate puts them together: [`GitStore`] and its [`Options`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use gitbacked_apiserver::api::ServiceCidr;
use gitbacked_apiserver::http::webhook::{self, Webhook};
use gitbacked_apiserver::{Api, Endpoints};
pub use gitbacked_core::Limits;
pub use gitbacked_git::mirror::remote::RemoteError;
use gitbacked_git::status_ref::Bookkeeping;
pub use gitbacked_git::status_ref::{Placement, status_ref};
use gitbacked_git::{Config, GitStorage, mirror::credentials::Credentials};
pub use gitbacked_git::{GitError, Identity, SyncError, lease_ref, snapshot_ref};

/// Errors from opening or closing a [`GitStore`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// git failed: the remote could not be read, or the local mirror could not be written.
    #[error(transparent)]
    Git(#[from] GitError),
    /// An option is not valid.
    #[error("invalid option: {0}")]
    Options(String),
    /// A sync asked for did not happen.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// A sync loop's task ended abnormally.
    #[error("a sync loop failed")]
    Task(#[source] tokio::task::JoinError),
}

/// How a [`GitStore`] reaches and uses its repository.
#[derive(Clone)]
pub struct Options {
    /// The branch objects live on; default: the remote's default branch (`main` for an empty remote).
    pub branch: Option<String>,
    /// The directory objects live in; default: the repository root.
    pub subdirectory: Option<String>,
    /// How often the remote is polled for new commits.
    pub interval: Duration,
    /// Where the local bare mirror lives, with a cache of what its files parse to, so that a restart
    /// parses only the files it has not seen; default: a temporary directory removed on close.
    pub cache_dir: Option<PathBuf>,
    /// ssh remotes: the private key to authenticate with; default: the ssh agent and ssh config.
    pub ssh_key: Option<PathBuf>,
    /// ssh remotes: the known_hosts file holding the server's host key, checked strictly;
    /// default: ssh's own known_hosts files (an unknown host key fails, it is never accepted).
    pub known_hosts: Option<PathBuf>,
    /// http(s) remotes: a file holding an access token, read before every fetch and push;
    /// default: the `GITBACKED_GIT_TOKEN` environment variable, else git's credential helpers.
    pub git_token_file: Option<PathBuf>,
    /// Create `branch` with the first write when the remote has other branches but not this one;
    /// without it, opening such a remote fails.
    pub create_branch: bool,
    /// Author and committer of the commits written.
    pub author: Identity,
    /// Sign each commit, with the key and format git's own configuration names (`gpg.format`,
    /// `user.signingkey`, in the mirror's, the global or the system configuration).
    pub sign_commits: bool,
    /// How long a write may wait for the remote before it fails with 503 ServiceUnavailable.
    pub write_timeout: Duration,
    /// How long Events live in memory.
    pub event_ttl: Duration,
    /// How many Events, and how many bytes of them, are kept in memory; beyond either the oldest
    /// go first. Default: 10,000 Events and 64 MiB.
    pub event_limits: Limits,
    /// How many watch events are kept for watches resuming from an older resourceVersion.
    pub watch_window: usize,
    /// The secret shared with the git host's webhook: with it the Router serves `POST /hooks/git`,
    /// which syncs now (GitHub, GitLab and Gitea formats; see `gitbacked_apiserver::http::webhook`). Default: not served.
    pub webhook_secret: Option<String>,
    /// Push to a remote that is a bare repository on this machine by writing the new objects and
    /// the ref into it directly, without running `git push`, when receive-pack would do nothing
    /// more (no hooks, no object checks; see `gitbacked_git::mirror::local`). Default: on.
    pub direct_push: bool,
    /// How many pushes of batches of writes may be under way at once: the next batch is built on
    /// the commit of one still in flight and pushed before that one is answered, as a
    /// fast-forward (see `gitbacked_git::sync`). 1 pushes one batch at a time. Default: 4.
    pub pushes_in_flight: usize,
    /// Delete objects whose owners (`metadata.ownerReferences`) are gone, and carry out orphan and
    /// foreground deletion, as kube-controller-manager's garbage collector does (see `gitbacked_gc`); the
    /// deletions are commits like any other. Default: on.
    pub garbage_collector: bool,
    /// The range Service cluster IPs are allocated from (kube-apiserver's
    /// `--service-cluster-ip-range`). Default: `10.96.0.0/12`.
    pub service_cluster_ip_range: ServiceCidr,
    /// Where objects' `status` is kept: in their documents on the branch, or on the status ref
    /// ([`status_ref`]), merged into what is served, so that the branch's history holds people's
    /// intent and the controllers' spec and metadata changes only. Default: inline.
    pub status: Placement,
    /// Where objects' `metadata.managedFields` (server-side apply's field ownership) is kept: in
    /// their documents on the branch, or on the status ref. Default: on the status ref (a first
    /// apply would otherwise add some 60 lines of bookkeeping to a person's file).
    pub managed_fields: Placement,
    /// How many commits the branch moves between two snapshots of derived metadata this process
    /// writes to the snapshot ref ([`snapshot_ref`]) after its pushes; 0 writes none. A cold start
    /// reads the latest snapshot and a shallow fetch instead of replaying the whole history.
    /// Default: 1,000.
    pub snapshot_every: u64,
}

/// Shows every option but the webhook secret, so that logging the options cannot leak it.
impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("branch", &self.branch)
            .field("subdirectory", &self.subdirectory)
            .field("interval", &self.interval)
            .field("cache_dir", &self.cache_dir)
            .field("ssh_key", &self.ssh_key)
            .field("known_hosts", &self.known_hosts)
            .field("git_token_file", &self.git_token_file)
            .field("create_branch", &self.create_branch)
            .field("author", &self.author)
            .field("sign_commits", &self.sign_commits)
            .field("write_timeout", &self.write_timeout)
            .field("event_ttl", &self.event_ttl)
            .field("event_limits", &self.event_limits)
            .field("watch_window", &self.watch_window)
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "***"))
            .field("direct_push", &self.direct_push)
            .field("pushes_in_flight", &self.pushes_in_flight)
            .field("garbage_collector", &self.garbage_collector)
            .field("service_cluster_ip_range", &self.service_cluster_ip_range)
            .field("status", &self.status)
            .field("managed_fields", &self.managed_fields)
            .field("snapshot_every", &self.snapshot_every)
            .finish()
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            branch: None,
            subdirectory: None,
            interval: Duration::from_secs(15),
            cache_dir: None,
            ssh_key: None,
            known_hosts: None,
            git_token_file: None,
            create_branch: false,
            author: Identity::default(),
            sign_commits: false,
            write_timeout: Duration::from_secs(30),
            event_ttl: Duration::from_secs(3600),
            event_limits: Limits::default(),
            watch_window: 100_000,
            webhook_secret: None,
            direct_push: true,
            pushes_in_flight: 4,
            garbage_collector: true,
            service_cluster_ip_range: ServiceCidr::default(),
            status: Placement::Inline,
            managed_fields: Placement::Ref,
            snapshot_every: 1000,
        }
    }
}

/// Checks and normalizes a subdirectory: relative, no `..`, no empty segments.
fn normalize_subdirectory(subdir: Option<&str>) -> Result<String, Error> {
    let subdir = subdir.unwrap_or_default().trim_matches('/');
    if subdir.split('/').any(|s| s == ".." || s == "." || s.starts_with(".git")) && !subdir.is_empty() {
        return Err(Error::Options(format!("subdirectory {subdir:?} must be a plain relative path")));
    }
    if subdir.contains("//") {
        return Err(Error::Options(format!("subdirectory {subdir:?} has an empty segment")));
    }
    Ok(subdir.to_string())
}

/// A local path becomes an absolute one (the mirror runs git in its own directory).
fn normalize_url(url: &str) -> Result<String, Error> {
    if url.contains("://") || (url.contains(':') && !url.starts_with('/') && !url.starts_with('.')) {
        return Ok(url.to_string());
    }
    std::path::absolute(url)
        .map(|p| p.display().to_string())
        .map_err(|e| Error::Options(format!("repository path {url:?}: {e}")))
}

/// A task that stops when its handle is dropped. The garbage collector holds a handle to the
/// stores; without this it would keep their sync loops running after the `GitStore` is gone.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The Kubernetes API on a git repository.
pub struct GitStore {
    storage: GitStorage,
    router: axum::Router,
    tasks: [tokio::task::JoinHandle<()>; 2],
    /// The garbage collector, unless turned off, and the expiry of Events: they run until the
    /// store is closed or dropped.
    background: Vec<AbortOnDrop>,
    _cache: Option<tempfile::TempDir>,
}

/// How often Events are checked for expiry.
const EXPIRY_CHECK: Duration = Duration::from_secs(1);

impl GitStore {
    /// Opens the repository at `url` (a local path, `file://`, `git://`, `ssh://` or `https://`)
    /// and returns once the initial sync is complete.
    pub async fn open(url: &str, options: Options) -> Result<Self, Error> {
        let subdirectory = normalize_subdirectory(options.subdirectory.as_deref())?;
        webhook::check_secret(options.webhook_secret.as_deref()).map_err(|e| Error::Options(e.to_string()))?;
        let url = normalize_url(url)?;
        let (mirror_dir, cache) = match &options.cache_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("gitbacked-")
                    .tempdir()
                    .map_err(|e| Error::Options(e.to_string()))?;
                (tmp.path().join("mirror.git"), Some(tmp))
            }
        };
        let config = Config {
            url,
            branch: options.branch.clone(),
            create_branch: options.create_branch,
            subdirectory,
            mirror_dir,
            parse_cache: options.cache_dir.is_some(),
            credentials: Credentials {
                ssh_key: options.ssh_key.clone(),
                known_hosts: options.known_hosts.clone(),
                token_file: options.git_token_file.clone(),
            },
            interval: options.interval,
            author: options.author.clone(),
            sign_commits: options.sign_commits,
            write_timeout: options.write_timeout,
            event_ttl: options.event_ttl,
            event_limits: options.event_limits,
            watch_window: options.watch_window,
            direct_push: options.direct_push,
            pushes_in_flight: options.pushes_in_flight,
            bookkeeping: Bookkeeping { status: options.status, managed_fields: options.managed_fields },
            snapshot_every: options.snapshot_every,
        };
        let mut metrics = prometheus_client::registry::Registry::with_prefix("gitbacked");
        let (storage, tasks) = GitStorage::open(config, &mut metrics).await?;
        let hook = storage.clone();
        let webhook = Webhook::new(options.webhook_secret.as_deref(), move || {
            let storage = hook.clone();
            async move { storage.sync_now().await }
        });
        let api = Api::new(Arc::new(storage.clone())).with_service_cidr(options.service_cluster_ip_range);
        let health = storage.health();
        let router = gitbacked_apiserver::router(api.clone(), Endpoints { metrics, health, webhook });
        let events = storage.events().clone();
        let mut background = vec![AbortOnDrop(tokio::spawn(async move {
            let mut tick = tokio::time::interval(EXPIRY_CHECK);
            loop {
                tick.tick().await;
                events.expire();
            }
        }))];
        background.push(AbortOnDrop(tokio::spawn(gitbacked_apiserver::crd_finalizer::run(api.clone()))));
        background.push(AbortOnDrop(tokio::spawn(gitbacked_apiserver::namespace_finalizer::run(api.clone()))));
        if options.garbage_collector {
            background.push(AbortOnDrop(tokio::spawn(gitbacked_gc::run(api))));
        }
        Ok(GitStore { storage, router, tasks, background, _cache: cache })
    }

    /// A kube client talking to this store in-process. Must be called inside a Tokio runtime.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.router.clone(), "default")
    }

    /// The axum Router serving the Kubernetes API, for serving over HTTP.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// Checks the remote now instead of waiting for the next poll; returns once the store reflects it.
    pub async fn sync(&self) -> Result<(), Error> {
        Ok(self.storage.sync_now().await?)
    }

    /// What the branch's store holds, for reports: its resourceVersion, the objects served, and
    /// the files skipped because they do not parse.
    pub fn report(&self) -> Report {
        let store = self.storage.branch_store();
        let stats = store.stats();
        Report {
            resource_version: store.revision(),
            objects: stats.objects,
            unknown_documents: stats.unknown_documents,
            invalid_files: store
                .invalid_files()
                .into_iter()
                .map(|(path, errors)| InvalidFile {
                    path,
                    problems: errors.into_iter().map(|e| (e.line, e.message)).collect(),
                })
                .collect(),
            invalid_objects: store
                .invalid_objects()
                .into_iter()
                .map(|(key, location, line, problems)| InvalidObject {
                    object: key.to_string(),
                    path: location.path.to_string(),
                    document: location.doc as usize + 1,
                    line: u64::from(line),
                    problems,
                })
                .collect(),
        }
    }

    /// Stops the sync loops after the writes in flight, and removes a temporary mirror.
    pub async fn close(self) -> Result<(), Error> {
        drop(self.background);
        self.storage.shutdown().await;
        for task in self.tasks {
            task.await.map_err(Error::Task)?;
        }
        Ok(())
    }
}

/// What the branch's store holds (see [`GitStore::report`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The current resourceVersion of the branch's objects.
    pub resource_version: u64,
    /// How many objects are served from the branch.
    pub objects: usize,
    /// Documents whose kind is not served (yet): they wait for their CRD.
    pub unknown_documents: usize,
    /// Files with documents that do not parse, skipped.
    pub invalid_files: Vec<InvalidFile>,
    /// Objects served as committed although admission would refuse them.
    pub invalid_objects: Vec<InvalidObject>,
}

/// An object a person committed that fails its type's validation (it is served all the same).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidObject {
    /// The object (`example.com/Widget default/a`).
    pub object: String,
    /// The file it is in, relative to the subdirectory.
    pub path: String,
    /// Which document of the file (from 1).
    pub document: usize,
    /// The line that document starts on (from 1; its `---` marker where it has one).
    pub line: u64,
    /// What is wrong, as kube-apiserver words it (`spec.size: Invalid value: 0: …`).
    pub problems: Vec<String>,
}

/// A file with documents that do not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidFile {
    /// Its path, relative to the subdirectory.
    pub path: String,
    /// Each problem: the line it is on (from 1), and what is wrong.
    pub problems: Vec<(u64, String)>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_webhook_secret_is_not_printed() {
        let options = super::Options { webhook_secret: Some("hunter2".into()), ..Default::default() };
        let shown = format!("{options:?}");
        assert!(!shown.contains("hunter2") && shown.contains("webhook_secret: Some(\"***\")"), "{shown}");
    }
}
