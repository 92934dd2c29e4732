//! Readiness as the storage reports it: one check per part that can fail on its own, so that
//! `/readyz` names what is wrong (as kube-apiserver lists `[-]etcd failed: …`).

/// One readiness check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// What is checked, e.g. `sync refs/heads/main`.
    pub name: String,
    /// Why it fails; `None` when it passes.
    pub failure: Option<String>,
}

/// What reports readiness: the storage behind the API.
pub trait Health: Send + Sync + 'static {
    /// Every check, passing or not.
    fn checks(&self) -> Vec<HealthCheck>;
}
