//! Prometheus metrics of the git side: fetch, push and ls-remote runs, the stores' contents, and
//! how far each sync loop is behind the remote. Each loop (the branch, the lease ref) reports its
//! own health, so that one loop's success never hides the other's failure.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use gitbacked_core::clock::now;
use gitbacked_core::health::{Health, HealthCheck};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::mirror::GitError;
use crate::store::Store;

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

/// Labels of a document an API write changed in an existing file.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DocumentLabels {
    /// `edited` (only the changed values' lines), `written-anew` (the minimal edit could not be
    /// made: the person's comments in the document are gone), `unchanged` or `removed`.
    pub how: &'static str,
}

/// Labels of a push of a batch of writes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PushLabels {
    /// The remote reference: `refs/heads/<branch>`, or the lease ref.
    pub reference: String,
    /// `alone` (no other push under way), `overlapping` (built on a batch whose push is under
    /// way) or `again` (an overlapping push sent a second time: it read the remote before the
    /// batch below it landed).
    pub start: &'static str,
}

/// The health of one sync loop.
#[derive(Clone, Debug, Default)]
struct LoopHealth {
    /// When the store last matched the remote (seconds since the epoch).
    last_sync: i64,
    /// Why the last sync failed, until one succeeds again.
    error: Option<String>,
    /// Why pushes cannot land (a stale lock in the remote), until they can again.
    push_error: Option<String>,
}

/// The metrics and the health of the sync loops.
#[derive(Debug)]
pub struct GitMetrics {
    git: Family<GitLabels, Counter>,
    git_seconds: Family<GitLatencyLabels, Histogram, fn() -> Histogram>,
    documents: Family<DocumentLabels, Counter>,
    pushes: Family<PushLabels, Counter>,
    loops: Mutex<BTreeMap<String, LoopHealth>>,
}

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 4.0, 10))
}

impl GitMetrics {
    /// Metrics registered in `registry`, with the contents of `stores` read at every scrape.
    pub fn register(registry: &mut Registry, stores: Vec<Arc<Store>>) -> Arc<Self> {
        let metrics = Arc::new(GitMetrics {
            git: Family::default(),
            git_seconds: Family::new_with_constructor(latency as fn() -> Histogram),
            documents: Family::default(),
            pushes: Family::default(),
            loops: Mutex::default(),
        });
        registry.register("git_operations", "git fetch, push and ls-remote runs by outcome", metrics.git.clone());
        registry.register("git_operation_duration_seconds", "git operation latency", metrics.git_seconds.clone());
        registry.register(
            "documents_written",
            "documents of existing files that API writes changed, by how: edited in place or written anew",
            metrics.documents.clone(),
        );
        registry.register(
            "git_pushes",
            "pushes of batches of writes by how they started: alone, overlapping a push under way, or sent again",
            metrics.pushes.clone(),
        );
        registry.register_collector(Box::new(Contents { stores, metrics: metrics.clone() }));
        metrics
    }

    fn loops(&self) -> MutexGuard<'_, BTreeMap<String, LoopHealth>> {
        self.loops.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a git operation.
    pub fn git(&self, reference: &str, operation: &'static str, outcome: &'static str, elapsed: Duration) {
        let reference = reference.to_string();
        self.git.get_or_create(&GitLabels { reference: reference.clone(), operation, outcome }).inc();
        self.git_seconds.get_or_create(&GitLatencyLabels { reference, operation }).observe(elapsed.as_secs_f64());
    }

    /// Counts a push of a batch of writes to `reference`, and how it started (see [`PushLabels`]).
    pub fn push_started(&self, reference: &str, start: &'static str) {
        self.pushes.get_or_create(&PushLabels { reference: reference.to_string(), start }).inc();
    }

    /// Counts a document of an existing file that a write changed, and how (see [`DocumentLabels`]).
    pub fn document_written(&self, how: &'static str) {
        self.documents.get_or_create(&DocumentLabels { how }).inc();
    }

    /// Notes that the loop of `reference` matches the remote now.
    pub fn synced(&self, reference: &str) {
        let mut loops = self.loops();
        let health = loops.entry(reference.to_string()).or_default();
        health.last_sync = now();
        health.error = None;
    }

    /// Notes whether pushes of `reference` are blocked (by a stale lock in the remote): readiness
    /// reports it until they can land again.
    pub fn pushes_blocked(&self, reference: &str, blocked: Option<&GitError>) {
        self.loops().entry(reference.to_string()).or_default().push_error = blocked.map(GitError::summary);
    }

    /// Notes that the loop of `reference` could not read the remote: its store serves its last
    /// synced state. Readiness reports the error's [summary](GitError::summary).
    pub fn sync_failed(&self, reference: &str, error: &GitError) {
        self.loops().entry(reference.to_string()).or_default().error = Some(error.summary());
    }
}

/// One check per sync loop: `sync <reference>`, failing with the loop's last error.
impl Health for GitMetrics {
    fn checks(&self) -> Vec<HealthCheck> {
        self.loops()
            .iter()
            .map(|(reference, h)| HealthCheck {
                name: format!("sync {reference}"),
                failure: h.error.clone().or_else(|| h.push_error.clone()),
            })
            .collect()
    }
}

/// Gauges read from the stores at every scrape.
struct Contents {
    stores: Vec<Arc<Store>>,
    metrics: Arc<GitMetrics>,
}

impl std::fmt::Debug for Contents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contents").field("stores", &self.stores.len()).finish_non_exhaustive()
    }
}

impl Collector for Contents {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.stores.iter().map(|s| {
            s.review();
            s.stats()
        });
        let (objects, invalid, unknown, rejected) = stats.fold((0, 0, 0, 0), |(o, i, u, r), s| {
            (o + s.objects, i + s.invalid_files, u + s.unknown_documents, r + s.invalid_objects)
        });
        let lag = self.metrics.loops().values().map(|h| now() - h.last_sync).max().unwrap_or_default();
        let gauges: [(&str, &str, i64); 5] = [
            ("objects", "objects served", objects as i64),
            ("invalid_objects", "objects served as committed that fail their type's validation", rejected as i64),
            ("invalid_files", "files with documents that do not parse (skipped)", invalid as i64),
            ("unknown_kind_documents", "documents whose kind is not served yet", unknown as i64),
            ("sync_lag_seconds", "seconds since the store last matched the remote", lag),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_loop_keeps_its_own_health() {
        let metrics = GitMetrics::register(&mut Registry::default(), Vec::new());
        metrics.synced("refs/heads/main");
        let unreachable = crate::mirror::remote::RemoteError::Unreachable {
            url: "/srv/secret/path.git".into(),
            detail: "fatal: could not read from /srv/secret/path.git".into(),
        };
        metrics.sync_failed("refs/gitbacked/leases/main", &GitError::Remote(unreachable));
        // A good poll of the branch does not hide the lease loop's failure.
        metrics.synced("refs/heads/main");
        let failing: Vec<_> = metrics.checks().into_iter().filter_map(|c| Some((c.name, c.failure?))).collect();
        assert_eq!(
            failing,
            [("sync refs/gitbacked/leases/main".to_string(), "the remote cannot be reached".to_string())],
            "named, and without the remote's path"
        );
        metrics.synced("refs/gitbacked/leases/main");
        assert!(metrics.checks().iter().all(|c| c.failure.is_none()));
        assert_eq!(metrics.checks().len(), 2);
    }
}
