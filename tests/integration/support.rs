//! Test fixtures: the shared remote of `gitbacked-test-support`, and a GitStore opened on it.

use std::time::Duration;

use gitbacked::{GitStore, Options};
pub use gitbacked_test_support::{Remote, git};

/// Options for tests: fast polling.
pub fn options() -> Options {
    Options { interval: Duration::from_millis(100), write_timeout: Duration::from_secs(20), ..Default::default() }
}

/// Opens a store on the remote.
pub async fn open(remote: &Remote) -> GitStore {
    GitStore::open(&remote.url(), options()).await.expect("store opens")
}

/// Waits (bounded) until `check` holds.
pub async fn eventually<F: FnMut() -> bool>(what: &str, mut check: F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A ConfigMap manifest.
pub fn configmap(name: &str, data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n  key: \"{data}\"\n"
    )
}

// ---------------------------------------------------------------------------------------------
// Helpers for the watch, repo and semantics modules.

/// Runs a test body, failing it when it takes longer than `secs` seconds.
pub async fn within<F: std::future::Future>(secs: u64, body: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(secs), body).await {
        Ok(out) => out,
        Err(_) => panic!("the test did not finish within {secs}s"),
    }
}

/// Opens a store on the remote with options of one's own (fast polling unless overridden).
pub async fn open_with(remote: &Remote, options: Options) -> GitStore {
    GitStore::open(&remote.url(), options).await.expect("store opens")
}

/// The `Status` of a failed kube call; panics on success or on a non-API error.
pub fn status_of<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A core/v1 Event about ConfigMap `default/a`.
pub fn core_event(name: &str, message: &str) -> k8s_openapi::api::core::v1::Event {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "involvedObject": {"kind": "ConfigMap", "namespace": "default", "name": "a", "apiVersion": "v1"},
        "reason": "Tested", "message": message, "type": "Normal",
    }))
    .unwrap()
}

/// How many runs of the git `operation` (`fetch`, `push`, `direct-push`, …) on the branch with
/// `outcome` the store counted.
pub async fn git_runs(store: &gitbacked::GitStore, operation: &str, outcome: &str) -> u64 {
    let labels = [
        "reference=\"refs/heads/main\"".to_string(),
        format!("operation=\"{operation}\""),
        format!("outcome=\"{outcome}\""),
    ];
    counted(store, "gitbacked_git_operations_total", &labels).await
}

/// The sum of the counter `name` over its series that have every one of `labels` (`key="value"`).
pub async fn counted(store: &gitbacked::GitStore, name: &str, labels: &[String]) -> u64 {
    let series = format!("{name}{{");
    metrics(store)
        .await
        .lines()
        .filter(|l| l.starts_with(&series) && labels.iter().all(|x| l.contains(x.as_str())))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The text of `/metrics`.
pub async fn metrics(store: &gitbacked::GitStore) -> String {
    use tower::ServiceExt;
    let request = http::Request::get("/metrics").body(axum::body::Body::empty()).unwrap();
    let response = store.router().oneshot(request).await.unwrap();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}
