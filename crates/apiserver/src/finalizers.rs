//! The finalizers the API sets itself when an object is deleted: with a propagation policy (the
//! garbage collector carries them out), and on every CustomResourceDefinition (the CRD finalizer
//! deletes its custom resources first), and the loop the API's own finalizers run in.

use std::future::Future;
use std::time::Duration;

use crate::api::Api;
use gitbacked_core::GroupKind;

/// How soon an object still waiting to be finalized is looked at again.
const RETRY: Duration = Duration::from_secs(1);

/// The finalizer of an owner whose dependents are being orphaned (`propagationPolicy: Orphan`).
pub const ORPHAN: &str = "orphan";
/// The finalizer of an owner waiting for its dependents to be deleted (`propagationPolicy: Foreground`).
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of a CustomResourceDefinition whose custom resources are being deleted.
pub const CUSTOM_RESOURCE_CLEANUP: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Runs `pass` (which answers whether an object still waits) whenever objects of `gk` change,
/// and every second while one waits, until the task is aborted.
pub(crate) async fn run_on_changes<F, Fut>(api: &Api, gk: GroupKind, pass: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let mut changes = api.storage().subscribe(&gk);
    loop {
        let waiting = pass().await;
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(RETRY), if waiting => {}
        }
    }
}
