//! The loop the API's own controllers (the CRD and namespace finalizers) run in: a pass whenever
//! objects of a kind change, and again every second while one waits.

use std::future::Future;
use std::time::Duration;

use tracing::debug;

use crate::api::Api;
use gitbacked_core::{ApiResult, GroupKind, StoredObject};

/// How soon an object still waiting to be finalized is looked at again.
const RETRY: Duration = Duration::from_secs(1);

/// Runs `pass` (which answers whether an object still waits) whenever objects of `gk` change,
/// and every second while one waits, until the task is aborted.
async fn run_on_changes<F, Fut>(api: &Api, gk: GroupKind, pass: F)
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

/// Runs a finalizer the API carries out itself until the task is aborted: `finalize` takes one
/// step on each object of `gk` that `is_terminating` picks, and answers whether it is done.
pub(crate) async fn run_finalizer(
    api: &Api,
    gk: GroupKind,
    is_terminating: fn(&StoredObject) -> bool,
    finalize: impl AsyncFn(&Api, &StoredObject) -> ApiResult<bool>,
) {
    let pass = async || {
        let (_, objects) = api.storage().list(&gk, None);
        let mut waiting = false;
        for object in objects.iter().filter(|o| is_terminating(o)) {
            match finalize(api, object).await {
                Ok(done) => waiting |= !done,
                Err(e) => {
                    debug!(object = %object.key, error = %e.message, "the finalizer will try again");
                    waiting = true;
                }
            }
        }
        waiting
    };
    run_on_changes(api, gk.clone(), pass).await
}
