//! The replicator controller: for every `Replicator`, keep exactly `spec.count` `Replicated`
//! objects, labeled with `spec.selector` and owned by the Replicator, and record what was done in
//! its status.
//!
//! Nothing here knows about git: it is a plain kube-rs controller on a `kube::Client`. The example
//! binary (`main.rs`) runs it on a [`gitbacked::GitStore`]; the integration test includes this file
//! and runs the very same code.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::watcher;
use kube::{Client, CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{info, warn};

/// Asks for `count` copies of a `Replicated` object, labeled with `selector`.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "gitbacked.dev",
    version = "v1",
    kind = "Replicator",
    namespaced,
    status = "ReplicatorStatus",
    shortname = "rep"
)]
pub struct ReplicatorSpec {
    /// How many `Replicated` objects to keep.
    pub count: i32,
    /// Labels every `Replicated` object carries.
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
}

/// What the controller last did for a Replicator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicatorStatus {
    /// The `metadata.generation` the status describes.
    pub observed_generation: Option<i64>,
    /// How many `Replicated` objects exist.
    pub replicas: i32,
}

/// One copy made by a Replicator.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(group = "gitbacked.dev", version = "v1", kind = "Replicated", namespaced)]
pub struct ReplicatedSpec {
    /// The copy's position, from 0 to `count - 1`.
    pub index: i32,
}

/// Errors of a reconciliation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API refused a request.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The object lacks a field the API always sets.
    #[error("the object has no {0}")]
    Missing(&'static str),
}

/// What every reconciliation shares.
pub struct Context {
    /// The client to the API.
    pub client: Client,
}

/// Creates the `Replicator` and `Replicated` CRDs unless they exist, and waits until both are
/// Established, as controllers do against kube-apiserver.
pub async fn install_crds(client: &Client) -> Result<(), kube::Error> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [Replicator::crd(), Replicated::crd()] {
        let name = crd.name_any();
        if crds.get_opt(&name).await?.is_none() {
            info!(crd = %name, "installing CustomResourceDefinition");
            match crds.create(&PostParams::default(), &crd).await {
                Err(kube::Error::Api(s)) if s.is_already_exists() => {}
                result => drop(result?),
            }
        }
        let established = await_condition(crds.clone(), &name, conditions::is_crd_established());
        match tokio::time::timeout(Duration::from_secs(30), established).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(crd = %name, error = %e, "waiting for the CRD to be Established failed"),
            Err(_) => warn!(crd = %name, "the CRD is not Established after 30 s; going on"),
        }
    }
    Ok(())
}

/// Brings the `Replicated` objects of one Replicator to `spec.count` and records the result.
pub async fn reconcile(rep: Arc<Replicator>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = rep.name_any();
    let ns = rep.namespace().ok_or(Error::Missing("namespace"))?;
    let owner = rep.controller_owner_ref(&()).ok_or(Error::Missing("uid"))?;
    let api: Api<Replicated> = Api::namespaced(ctx.client.clone(), &ns);

    // The copies this Replicator controls, whatever their names or labels.
    let owned: Vec<Replicated> = api
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter(|r| r.owner_references().iter().any(|o| o.uid == owner.uid && o.controller == Some(true)))
        .collect();
    let count = rep.spec.count.max(0);
    let wanted: Vec<String> = (0..count).map(|i| format!("{name}-{i}")).collect();

    // Scale down: remove copies beyond `count`.
    for extra in owned.iter().filter(|r| !wanted.contains(&r.name_any())) {
        info!(replicator = %name, replicated = %extra.name_any(), "scaling down: deleting");
        match api.delete(&extra.name_any(), &DeleteParams::default()).await {
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            result => drop(result?),
        }
    }

    // Scale up: create missing copies; relabel copies whose labels drifted from the selector.
    for (index, child) in (0..).zip(&wanted) {
        match owned.iter().find(|r| &r.name_any() == child) {
            None => {
                info!(replicator = %name, replicated = %child, "scaling up: creating");
                let mut copy = Replicated::new(child, ReplicatedSpec { index });
                copy.metadata.labels = Some(rep.spec.selector.clone());
                copy.metadata.owner_references = Some(vec![owner.clone()]);
                api.create(&PostParams::default(), &copy).await?;
            }
            Some(copy) if !rep.spec.selector.iter().all(|(k, v)| copy.labels().get(k) == Some(v)) => {
                info!(replicator = %name, replicated = %child, "relabeling");
                let labels = Patch::Merge(json!({"metadata": {"labels": rep.spec.selector}}));
                api.patch(child, &PatchParams::default(), &labels).await?;
            }
            Some(_) => {}
        }
    }

    let status = ReplicatorStatus { observed_generation: rep.meta().generation, replicas: count };
    Api::<Replicator>::namespaced(ctx.client.clone(), &ns)
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({ "status": status })))
        .await?;
    info!(replicator = %name, replicas = count, "reconciled");
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Retries a failed reconciliation after a short pause.
pub fn error_policy(rep: Arc<Replicator>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(replicator = %rep.name_any(), %error, "reconcile failed; retrying in 2s");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the controller on Replicators and the Replicated objects they own until `shutdown`
/// completes.
pub async fn run(client: Client, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let replicators = Api::<Replicator>::all(client.clone());
    let replicated = Api::<Replicated>::all(client.clone());
    Controller::new(replicators, watcher::Config::default())
        .owns(replicated, watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, Arc::new(Context { client }))
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "controller");
            }
        })
        .await;
}
