//! The CRD finalizer, as apiextensions-apiserver runs it: a CustomResourceDefinition being deleted
//! (it carries `customresourcecleanup.apiextensions.k8s.io` and a `deletionTimestamp`, and is served
//! `Terminating`) has each of its custom resources deleted through the API, each a commit as usual;
//! once none is left, the finalizer goes and the CRD with it. Re-creating the CRD brings nothing back.
//!
//! Creates of its custom resources are refused meanwhile (405); an object of it that has finalizers
//! of its own is waited for, as kube-apiserver waits.

use serde_json::{Value, json};
use tracing::info;

use crate::api::{Api, PatchType, WriteOptions};
use crate::finalizers::CUSTOM_RESOURCE_CLEANUP;
use gitbacked_core::registry::{api_version, crd_group_kind};
use gitbacked_core::{ApiResult, StoredObject};

/// Runs the CRD finalizer until the task is aborted.
pub async fn run(api: Api) {
    crate::controller::run_finalizer(&api, crd_group_kind(), is_terminating, finalize).await
}

fn is_terminating(crd: &StoredObject) -> bool {
    let value = crd.value();
    let finalizers = value.pointer("/metadata/finalizers").and_then(Value::as_array);
    value.pointer("/metadata/deletionTimestamp").is_some()
        && finalizers.is_some_and(|f| f.iter().any(|f| f == CUSTOM_RESOURCE_CLEANUP))
}

/// Deletes the CRD's objects, or, when none is left, removes its finalizer; returns whether the
/// CRD is done.
async fn finalize(api: &Api, crd: &StoredObject) -> ApiResult<bool> {
    let registry = api.storage().registry();
    let served = registry.all().find(|rt| rt.crd.as_deref() == Some(crd.key.name.as_str())).cloned();
    let options = WriteOptions { field_manager: Some("apiextensions-apiserver".into()), ..Default::default() };
    if let Some(rt) = served {
        let (_, objects) = api.storage().list(&rt.group_kind(), None);
        if !objects.is_empty() {
            let version = rt.versions.first().cloned().unwrap_or_default();
            for object in objects.iter().filter(|o| o.value().pointer("/metadata/deletionTimestamp").is_none()) {
                let namespace = Some(&*object.key.namespace).filter(|n| !n.is_empty());
                let target = api.target(&rt.group, &version, &rt.plural, namespace)?;
                info!(object = %object.key, "deleting a custom resource of a CRD being deleted");
                api.delete(&target, &object.key.name, &json!({}), &options).await?;
            }
            return Ok(false);
        }
    }
    let target = api.target("apiextensions.k8s.io", "v1", "customresourcedefinitions", None)?;
    let value = crd.value();
    let remaining: Vec<&Value> = value
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|f| *f != CUSTOM_RESOURCE_CLEANUP)
        .collect();
    let patch = json!({"apiVersion": api_version("apiextensions.k8s.io", "v1"), "metadata": {
        "finalizers": remaining, "resourceVersion": crd.derived.resource_version.to_string()}});
    api.patch(&target, &crd.key.name, PatchType::Merge, patch, None, &options).await?;
    info!(crd = %crd.key.name, "the CRD's custom resources are gone; the CRD is removed");
    Ok(true)
}
