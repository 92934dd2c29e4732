//! Prometheus metrics of the API: requests by verb, resource and code, their latency, and the
//! watches open.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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

/// The API's metrics.
#[derive(Debug)]
pub(crate) struct ApiMetrics {
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<LatencyLabels, Histogram, fn() -> Histogram>,
    open_watches: Gauge,
}

impl ApiMetrics {
    /// The metrics, registered in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Arc<Self> {
        let latency = || Histogram::new(exponential_buckets(0.0001, 4.0, 10));
        let metrics = ApiMetrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency as fn() -> Histogram),
            open_watches: Gauge::default(),
        };
        registry.register("apiserver_requests", "API requests by verb, resource and code", metrics.requests.clone());
        registry.register("apiserver_request_duration_seconds", "API request latency", metrics.request_seconds.clone());
        registry.register("open_watches", "watch streams currently open", metrics.open_watches.clone());
        Arc::new(metrics)
    }

    /// Records an API request.
    pub(crate) fn request(&self, verb: &str, resource: &str, code: u16, elapsed: Duration) {
        let labels = RequestLabels { verb: verb.to_string(), resource: resource.to_string(), code };
        self.requests.get_or_create(&labels).inc();
        let latency = LatencyLabels { verb: labels.verb, resource: labels.resource };
        self.request_seconds.get_or_create(&latency).observe(elapsed.as_secs_f64());
    }

    /// A guard counting an open watch for as long as it lives.
    pub(crate) fn watch_opened(self: &Arc<Self>) -> WatchGuard {
        self.open_watches.inc();
        WatchGuard(self.clone())
    }
}

/// Decrements the open-watch gauge when dropped.
pub(crate) struct WatchGuard(Arc<ApiMetrics>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.open_watches.dec();
    }
}
