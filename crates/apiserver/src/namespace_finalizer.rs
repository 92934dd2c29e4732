//! The namespace finalizer, as kube-controller-manager's namespace controller runs it: a Namespace
//! being deleted (it has a `deletionTimestamp` and the `kubernetes` finalizer in `spec.finalizers`,
//! and is served `Terminating`) has every object in it deleted through the API, each a commit as
//! usual; once none is left, `/finalize` removes the finalizer and the Namespace goes with it.
//!
//! Creates into it are refused meanwhile (403, NamespaceLifecycle); an object in it that has
//! finalizers of its own is waited for.

use serde_json::{Value, json};
use tracing::info;

use crate::api::{Api, Subresource, WriteOptions};
use gitbacked_core::bootstrap::is_bootstrap;
use gitbacked_core::{ApiResult, GroupKind, Reason, StoredObject};

/// The finalizer of the namespace controller.
const KUBERNETES: &str = "kubernetes";

fn namespace_kind() -> GroupKind {
    GroupKind { group: String::new(), kind: "Namespace".into() }
}

/// Runs the namespace finalizer until the task is aborted.
pub async fn run(api: Api) {
    crate::controller::run_finalizer(&api, namespace_kind(), is_terminating, finalize).await
}

/// The finalizers in `spec.finalizers` as served: `kubernetes` where the file sets none.
fn spec_finalizers(namespace: &StoredObject) -> Vec<Value> {
    let mut value = namespace.value();
    gitbacked_core::defaults::apply(&namespace_kind(), "v1", &mut value);
    value.pointer("/spec/finalizers").and_then(Value::as_array).cloned().unwrap_or_default()
}

fn is_terminating(namespace: &StoredObject) -> bool {
    namespace.value().pointer("/metadata/deletionTimestamp").is_some()
        && spec_finalizers(namespace).iter().any(|f| f == KUBERNETES)
}

/// Deletes the objects in the namespace, or, when none is left, finalizes it; returns whether
/// the namespace is done.
async fn finalize(api: &Api, namespace: &StoredObject) -> ApiResult<bool> {
    let name = namespace.key.name.as_str();
    let options = WriteOptions { field_manager: Some("namespace-controller".into()), ..Default::default() };
    let registry = api.storage().registry();
    let mut left = false;
    for rt in registry.all().filter(|rt| rt.namespaced) {
        let (_, objects) = api.storage().list(&rt.group_kind(), Some(name));
        // What the server implies (the `default` ServiceAccount) goes with the namespace.
        let objects: Vec<_> = objects.into_iter().filter(|o| !is_bootstrap(o)).collect();
        left |= !objects.is_empty();
        let Some(version) = rt.versions.first() else { continue };
        let target = api.target(&rt.group, version, &rt.plural, Some(name))?;
        for object in objects.iter().filter(|o| o.value().pointer("/metadata/deletionTimestamp").is_none()) {
            info!(object = %object.key, "deleting an object of a namespace being deleted");
            match api.delete(&target, &object.key.name, &json!({}), &options).await {
                Err(e) if e.reason != Reason::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    if left {
        return Ok(false);
    }
    let remaining: Vec<Value> = spec_finalizers(namespace).into_iter().filter(|f| f != KUBERNETES).collect();
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name,
        "resourceVersion": namespace.derived.resource_version.to_string()}, "spec": {"finalizers": remaining}});
    let target = api.target("", "v1", "namespaces", None)?;
    api.update(&target, name, body, Some(Subresource::Finalize), &options).await?;
    info!(namespace = %name, "the namespace is empty; it is removed");
    Ok(true)
}
