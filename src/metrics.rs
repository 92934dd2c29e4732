//! Prometheus metrics: API requests, git operations, watches, and the store's contents.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::Store;

/// Labels of an API request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// Resource (plural), or the discovery path.
    pub resource: String,
    /// HTTP status code.
    pub code: u16,
}

/// Labels of a request's latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    /// Kubernetes verb.
    pub verb: String,
    /// Resource (plural).
    pub resource: String,
}

/// Labels of a git operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GitLabels {
    /// The remote reference: `refs/heads/<branch>`, or the lease ref.
    pub reference: String,
    /// `fetch`, `push`, `direct-push` (written into a bare repository on this machine) or `ls-remote`.
    pub operation: &'static str,
    /// `ok`, `rejected` or `error`.
    pub outcome: &'static str,
}

/// Labels of a git operation's latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GitLatencyLabels {
    /// The remote reference: `refs/heads/<branch>`, or the lease ref.
    pub reference: String,
    /// `fetch`, `push`, `direct-push` (written into a bare repository on this machine) or `ls-remote`.
    pub operation: &'static str,
}

/// Every metric gitbacked reports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<LatencyLabels, Histogram>,
    git: Family<GitLabels, Counter>,
    git_seconds: Family<GitLatencyLabels, Histogram>,
    open_watches: Gauge,
    objects: Gauge,
    invalid_files: Gauge,
    unknown_documents: Gauge,
    sync_lag_seconds: Gauge,
    last_sync: AtomicI64,
    last_error: std::sync::Mutex<Option<String>>,
    store: Arc<Store>,
}

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 4.0, 10))
}

impl Metrics {
    /// Metrics for the store `store`.
    pub fn new(store: Arc<Store>) -> Self {
        let mut registry = Registry::with_prefix("gitbacked");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds = Family::<LatencyLabels, Histogram>::new_with_constructor(latency as fn() -> Histogram);
        let git = Family::<GitLabels, Counter>::default();
        let git_seconds = Family::<GitLatencyLabels, Histogram>::new_with_constructor(latency as fn() -> Histogram);
        let (open_watches, objects, invalid_files, unknown_documents, sync_lag_seconds) =
            (Gauge::default(), Gauge::default(), Gauge::default(), Gauge::default(), Gauge::default());
        registry.register("apiserver_requests", "API requests by verb, resource and code", requests.clone());
        registry.register("apiserver_request_duration_seconds", "API request latency", request_seconds.clone());
        registry.register("git_operations", "git fetch, push and ls-remote runs by outcome", git.clone());
        registry.register("git_operation_duration_seconds", "git operation latency", git_seconds.clone());
        registry.register("open_watches", "watch streams currently open", open_watches.clone());
        registry.register("objects", "objects served", objects.clone());
        registry.register("invalid_files", "files with documents that do not parse (skipped)", invalid_files.clone());
        registry.register(
            "unknown_kind_documents",
            "documents whose kind is not served yet",
            unknown_documents.clone(),
        );
        registry.register(
            "sync_lag_seconds",
            "seconds since the store last matched the remote",
            sync_lag_seconds.clone(),
        );
        Metrics {
            registry,
            requests,
            request_seconds,
            git,
            git_seconds,
            open_watches,
            objects,
            invalid_files,
            unknown_documents,
            sync_lag_seconds,
            last_sync: AtomicI64::new(crate::store::object::now()),
            last_error: std::sync::Mutex::new(None),
            store,
        }
    }

    /// Records an API request.
    pub fn request(&self, verb: &str, resource: &str, code: u16, elapsed: Duration) {
        let labels = RequestLabels { verb: verb.to_string(), resource: resource.to_string(), code };
        self.requests.get_or_create(&labels).inc();
        let latency = LatencyLabels { verb: labels.verb, resource: labels.resource };
        self.request_seconds.get_or_create(&latency).observe(elapsed.as_secs_f64());
    }

    /// Records a git operation.
    pub fn git(&self, reference: &str, operation: &'static str, outcome: &'static str, elapsed: Duration) {
        let reference = reference.to_string();
        self.git.get_or_create(&GitLabels { reference: reference.clone(), operation, outcome }).inc();
        self.git_seconds.get_or_create(&GitLatencyLabels { reference, operation }).observe(elapsed.as_secs_f64());
    }

    /// Notes that the store matches the remote now.
    pub fn synced(&self) {
        self.last_sync.store(crate::store::object::now(), Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Notes that the remote could not be read: the store serves its last synced state.
    pub fn sync_failed(&self, error: &str) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_string());
    }

    /// Why the store may be behind the remote, when the last sync failed.
    pub fn degraded(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A guard counting an open watch for as long as it lives.
    pub fn watch_opened(self: &Arc<Self>) -> WatchGuard {
        self.open_watches.inc();
        WatchGuard(self.clone())
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let stats = self.store.stats();
        self.objects.set(stats.objects as i64);
        self.invalid_files.set(stats.invalid_files as i64);
        self.unknown_documents.set(stats.unknown_documents as i64);
        self.sync_lag_seconds.set(crate::store::object::now() - self.last_sync.load(Ordering::Relaxed));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .unwrap_or_else(|e| unreachable!("writing to a String cannot fail: {e}"));
        out
    }
}

/// Decrements the open-watch gauge when dropped.
pub struct WatchGuard(Arc<Metrics>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.open_watches.dec();
    }
}
