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
//! Layout: [`git`] (local objects with gix, fetch and push with the git CLI), [`layout`] (which files
//! hold objects and where new ones go), [`registry`] (resource types), [`store`] (the in-memory index
//! and watch log), [`sync`] (the loop that polls and pushes), [`api`] (Kubernetes semantics) and
//! [`http`] (the axum Router).

pub mod api;
pub mod gc;
pub mod git;
pub mod http;
pub mod layout;
pub mod metrics;
pub mod registry;
pub mod schema;
pub mod store;
pub mod sync;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use git::Identity;
use git::{GitError, Mirror, remote};
use registry::Home;
use store::Store;

/// Errors from opening or closing a [`GitStore`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// git failed: the remote could not be read, or the local mirror could not be written.
    #[error(transparent)]
    Git(#[from] GitError),
    /// An option is not valid.
    #[error("invalid option: {0}")]
    Options(String),
    /// The sync loop ended abnormally.
    #[error("the sync loop failed: {0}")]
    Sync(String),
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
    /// How many watch events are kept for watches resuming from an older resourceVersion.
    pub watch_window: usize,
    /// The secret shared with the git host's webhook: with it the Router serves `POST /hooks/git`,
    /// which syncs now (GitHub, GitLab and Gitea formats; see [`http::webhook`]). Default: not served.
    pub webhook_secret: Option<String>,
    /// Push to a remote that is a bare repository on this machine by writing the new objects and
    /// the ref into it directly, without running `git push`, when receive-pack would do nothing
    /// more (no hooks, no object checks; see [`git::local`]). Default: on.
    pub direct_push: bool,
    /// Delete objects whose owners (`metadata.ownerReferences`) are gone, and carry out orphan and
    /// foreground deletion, as kube-controller-manager's garbage collector does (see [`gc`]); the
    /// deletions are commits like any other. Default: on.
    pub garbage_collector: bool,
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
            .field("watch_window", &self.watch_window)
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "***"))
            .field("direct_push", &self.direct_push)
            .field("garbage_collector", &self.garbage_collector)
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
            watch_window: 100_000,
            webhook_secret: None,
            direct_push: true,
            garbage_collector: true,
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

/// The directory of a remote on this machine (a path or `file://` URL).
fn local_path(url: &str) -> Option<PathBuf> {
    let path = url.strip_prefix("file://").unwrap_or(url);
    (path.starts_with('/') && std::path::Path::new(path).exists()).then(|| PathBuf::from(path))
}

/// The ref that keeps the Leases of `branch`: `refs/gitbacked/leases/<branch>`. Leader election
/// renews a Lease every few seconds; on a ref of its own that history never floods the branch
/// people read, while every process on the remote still sees it (fetched and pushed with the same
/// fast-forward compare-and-swap as the branch).
pub fn lease_ref(branch: &str) -> String {
    format!("refs/gitbacked/leases/{branch}")
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
    handle: sync::Handle,
    router: axum::Router,
    tasks: [tokio::task::JoinHandle<()>; 2],
    /// The garbage collector ([`gc`]), unless turned off: it runs until the store is closed or dropped.
    gc: Option<AbortOnDrop>,
    _cache: Option<tempfile::TempDir>,
}

impl GitStore {
    /// Opens the repository at `url` (a local path, `file://`, `git://`, `ssh://` or `https://`)
    /// and returns once the initial sync is complete.
    pub async fn open(url: &str, options: Options) -> Result<Self, Error> {
        let subdir = normalize_subdirectory(options.subdirectory.as_deref())?;
        http::webhook::check_secret(options.webhook_secret.as_deref()).map_err(Error::Options)?;
        let url = normalize_url(url)?;
        let (cache_dir, cache) = match &options.cache_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("gitbacked-")
                    .tempdir()
                    .map_err(|e| Error::Options(e.to_string()))?;
                (tmp.path().join("mirror.git"), Some(tmp))
            }
        };
        let mirror = Arc::new(Mirror::open_or_init(&cache_dir, &subdir)?);
        let credentials = git::credentials::Credentials {
            ssh_key: options.ssh_key.clone(),
            known_hosts: options.known_hosts.clone(),
            token_file: options.git_token_file.clone(),
        };
        remote::configure(mirror.dir(), &url, &credentials).await?;
        let branch = remote::resolve_branch(mirror.dir(), options.branch.as_deref(), options.create_branch).await?;
        let store = Store::new(options.watch_window, Home::Branch);
        // The branch's only: lease renewals would fill the cache with blobs read once.
        let store = Arc::new(match &options.cache_dir {
            Some(dir) => store.with_parse_cache(dir),
            None => store,
        });
        let metrics = Arc::new(metrics::Metrics::new(store.clone()));
        let config = sync::SyncConfig {
            reference: format!("refs/heads/{branch}"),
            interval: options.interval,
            author: options.author.clone(),
            sign_commits: options.sign_commits,
            write_timeout: options.write_timeout,
            event_ttl: options.event_ttl,
            metrics: metrics.clone(),
            local_remote: local_path(&url),
            direct_push: options.direct_push,
        };
        let lease_config = sync::SyncConfig { reference: lease_ref(&branch), ..config.clone() };
        let lease_store = Arc::new(Store::new(options.watch_window, Home::Leases));
        let (branch, leases) = tokio::try_join!(
            sync::Channel::start(mirror.clone(), store, config),
            sync::Channel::start(mirror, lease_store, lease_config),
        )?;
        let handle = sync::Handle::new(branch.0, leases.0, options.event_ttl);
        let hook = handle.clone();
        let webhook = http::webhook::Webhook::new(options.webhook_secret.as_deref(), move || {
            let handle = hook.clone();
            async move { handle.sync_now().await }
        });
        let router = http::router(api::Api::new(Arc::new(handle.clone())), metrics, webhook);
        let collector = api::Api::new(Arc::new(handle.clone()));
        let gc = options.garbage_collector.then(|| AbortOnDrop(tokio::spawn(gc::run(collector))));
        Ok(GitStore { handle, router, tasks: [branch.1, leases.1], gc, _cache: cache })
    }

    /// A kube client talking to this store in-process. Must be called inside a Tokio runtime.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.router.clone(), "default")
    }

    /// The axum Router serving the Kubernetes API, for serving over HTTP.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// The object store.
    pub fn store(&self) -> &Arc<Store> {
        self.handle.store()
    }

    /// Checks the remote now instead of waiting for the next poll; returns once the store reflects it.
    pub async fn sync(&self) -> Result<(), Error> {
        self.handle.sync_now().await.map_err(Error::Sync)
    }

    /// The store of the Leases, which live on their own ref (see [`lease_ref`]).
    pub fn lease_store(&self) -> &Arc<Store> {
        self.handle.lease_store()
    }

    /// Stops the sync loops after the writes in flight, and removes a temporary mirror.
    pub async fn close(self) -> Result<(), Error> {
        drop(self.gc);
        self.handle.shutdown().await;
        for task in self.tasks {
            task.await.map_err(|e| Error::Sync(e.to_string()))?;
        }
        Ok(())
    }
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
