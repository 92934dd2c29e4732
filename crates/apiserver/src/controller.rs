//! The loop the API's own controllers (the CRD and namespace finalizers) run in: a pass whenever
//! objects of a kind change, and again every second while one waits.

use std::future::Future;
use std::time::Duration;

use crate::api::Api;
use gitbacked_core::GroupKind;

/// How soon an object still waiting to be finalized is looked at again.
const RETRY: Duration = Duration::from_secs(1);

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
