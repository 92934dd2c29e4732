//! The git backend of gitbacked: a [`GitStorage`] serving the objects of a git repository.
//!
//! - [`mirror`]: git I/O. gix reads and writes objects in a bare mirror; the git CLI fetches and
//!   pushes, and a bare repository on this machine may be pushed to directly ([`mirror::local`]).
//! - [`layout`]: which files hold objects, and where a new object is written.
//! - [`store`]: the index of the objects at the synced commit, with the resourceVersion model,
//!   the watch log, the ingest of commits and the parse cache.
//! - [`sync`]: the loop of one ref that polls and pushes, with group commit and replay.
//! - [`GitStorage`]: the [`Storage`](gitbacked_core::Storage) that routes each kind to its home:
//!   the branch, the lease ref, or memory (Events).
//! - [`metrics`]: git operations, the stores' contents and the health of each loop.

pub mod layout;
pub mod metrics;
pub mod mirror;
pub mod status_ref;
pub mod storage;
pub mod store;
pub mod sync;

pub use mirror::{GitError, Identity};
pub use storage::{Config, GitStorage};
pub use sync::SyncError;

/// The ref that keeps the Leases of `branch`: `refs/gitbacked/leases/<branch>`. Leader election
/// renews a Lease every few seconds; on a ref of its own that history never floods the branch
/// people read, while every process on the remote still sees it (fetched and pushed with the same
/// fast-forward compare-and-swap as the branch).
pub fn lease_ref(branch: &str) -> String {
    format!("refs/gitbacked/leases/{branch}")
}

/// The ref that keeps snapshots of what the history of `branch` derives (uids, creation times,
/// resourceVersions): `refs/gitbacked/snapshots/<branch>`. A cold start reads the latest one and
/// fetches the branch shallowly instead of replaying its whole history (see `sync::snapshots`).
pub fn snapshot_ref(branch: &str) -> String {
    format!("refs/gitbacked/snapshots/{branch}")
}
