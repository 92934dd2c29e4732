//! What the API semantics need from storage: reads from the store, and writes that are
//! evaluated against the latest state (again after every replay) and acknowledged once durable.
//! The API never knows what is behind it: git (the `gitbacked-git` crate), or memory
//! ([`crate::MemoryStorage`]).

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::watch;

use crate::object::{ObjectKey, StoredObject};
use crate::registry::{GroupKind, Registry};
use crate::status::ApiResult;
use crate::watch::{Expired, WatchEvents};

/// What a write does to its object, decided against the object's current state.
#[derive(Clone, Debug, PartialEq)]
pub enum Mutation {
    /// Store this content (derived metadata stripped).
    Put(Value),
    /// Remove the object.
    Delete,
}

/// Decides a write's mutation from the current object.
pub type MutateFn = Box<dyn FnMut(Option<&StoredObject>) -> ApiResult<Mutation> + Send>;

/// A write to one object. `mutate` sees the current object and decides; it runs again whenever the
/// write is replayed on a newer state (after another writer was first), so its preconditions
/// (resourceVersion, existence) are checked against what is really there.
pub struct Write {
    /// The object written.
    pub key: ObjectKey,
    /// What the write is, for the commit message (`update apps/v1 Deployment default/web`).
    pub description: String,
    /// Decides the mutation from the current object.
    pub mutate: MutateFn,
}

/// The result of an acknowledged write.
#[derive(Clone, Debug)]
pub enum WriteOutcome {
    /// The object as stored (unchanged when the write changed nothing).
    Stored(Arc<StoredObject>),
    /// The object was removed; this was its last state.
    Deleted(Arc<StoredObject>),
}

/// Storage behind the API.
pub trait Storage: Send + Sync + 'static {
    /// The served resource types.
    fn registry(&self) -> Arc<Registry>;
    /// One object.
    fn get(&self, key: &ObjectKey) -> Option<Arc<StoredObject>>;
    /// Objects of a kind, in one namespace or all, ordered by namespace and name, and the
    /// resourceVersion of that state.
    fn list(&self, gk: &GroupKind, namespace: Option<&str>) -> (u64, Vec<Arc<StoredObject>>);
    /// The current resourceVersion of the objects of a kind.
    fn revision(&self, gk: &GroupKind) -> u64;
    /// Every event after a resourceVersion among the objects kept with those of a kind, oldest
    /// first (other kinds' events included: the caller filters), shared with the store's log.
    fn events_since(&self, gk: &GroupKind, revision: u64) -> Result<WatchEvents, Expired>;
    /// Changes of the current resourceVersion of the objects of a kind.
    fn subscribe(&self, gk: &GroupKind) -> watch::Receiver<u64>;
    /// Applies a write; resolves once it is durable.
    fn write(&self, write: Write) -> BoxFuture<'static, ApiResult<WriteOutcome>>;
}
