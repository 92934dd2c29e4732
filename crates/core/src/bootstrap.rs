//! The objects kube-apiserver creates for itself on a new cluster, which clients expect to find: the
//! namespaces `default`, `kube-system`, `kube-public` and `kube-node-lease`, the Service
//! `default/kubernetes`, the bootstrap ClusterRoles `cluster-admin`, `admin`, `edit` and `view`, and
//! the ComponentStatuses.
//!
//! Likewise every namespace that objects in git are in exists, and every namespace has its
//! `default` ServiceAccount ([`implied_namespace`], [`default_service_account`]).
//!
//! gitbacked serves them without writing them to git: a repository is not filled with files nobody
//! asked for. A document a person commits for one of them takes its place; a write through the API
//! commits it as a file like any other object. They carry no location, a stable uid, the resourceVersion
//! 1 and the epoch as creation time, so every process serves the same objects.

use serde_json::{Value, json};

use crate::object::{Derived, ObjectKey, StoredObject};
use crate::registry::GroupKind;
use crate::uid::stable_uid;

/// The namespaces kube-apiserver creates, which may not be deleted.
pub const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// The ClusterIP of `default/kubernetes`: the first address of kube-apiserver's default service CIDR
/// (`10.96.0.0/12`).
const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
}

fn cluster_role(name: &str, rules: Value, aggregate_from: Option<&str>) -> Value {
    let mut role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
        "rules": rules});
    if let Some(label) = aggregate_from {
        role["aggregationRule"] =
            json!({"clusterRoleSelectors": [{"matchLabels": {format!("rbac.authorization.k8s.io/{label}"): "true"}}]});
    }
    role
}

fn component_status(name: &str) -> Value {
    // There is no scheduler, controller manager or etcd to ask: their health is unknown.
    json!({"apiVersion": "v1", "kind": "ComponentStatus", "metadata": {"name": name},
        "conditions": [{"type": "Healthy", "status": "Unknown", "message": "gitbacked runs no such component"}]})
}

/// The bootstrap objects' contents.
pub fn contents() -> Vec<Value> {
    let mut objects: Vec<Value> = SYSTEM_NAMESPACES.iter().map(|n| namespace(n)).collect();
    objects.push(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": KUBERNETES_SERVICE_IP, "clusterIPs": [KUBERNETES_SERVICE_IP],
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
            "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster"},
        "status": {"loadBalancer": {}}}));
    objects.push(cluster_role(
        "cluster-admin",
        json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        None,
    ));
    for (name, label) in [("admin", "aggregate-to-admin"), ("edit", "aggregate-to-edit"), ("view", "aggregate-to-view")]
    {
        objects.push(cluster_role(name, json!([]), Some(label)));
    }
    objects.extend(["scheduler", "controller-manager", "etcd-0"].map(component_status));
    objects
}

/// Whether `object` is a bootstrap object as served (no document in git stands for it).
pub fn is_bootstrap(object: &StoredObject) -> bool {
    object.location.is_none() && object.derived.uid == bootstrap_uid(&object.key)
}

fn bootstrap_uid(key: &ObjectKey) -> crate::uid::Uid {
    stable_uid(&format!("{key}@bootstrap"))
}

/// The bootstrap objects as stored objects.
pub fn objects() -> Vec<StoredObject> {
    contents().into_iter().map(|c| stored(c, (1, EPOCH))).collect()
}

/// When an implied object appeared: the resourceVersion and the time (seconds since the epoch) of
/// the change that brought it.
pub type Appeared = (u64, i64);

/// The epoch, when the bootstrap objects appear.
pub const EPOCH: i64 = 0;

/// A namespace that objects in git are in, without a Namespace document: served as an active
/// namespace, as it would exist in a cluster that holds those objects.
pub fn implied_namespace(name: &str, appeared: Appeared) -> StoredObject {
    stored(namespace(name), appeared)
}

/// The `default` ServiceAccount of a namespace, which kube-controller-manager creates in every
/// namespace and pods run as when they name none.
pub fn default_service_account(namespace: &str, appeared: Appeared) -> StoredObject {
    let content =
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": namespace}});
    stored(content, appeared)
}

/// A served object standing for no document, with a uid of its identity.
fn stored(content: Value, (resource_version, created): Appeared) -> StoredObject {
    let text = |p: &str| content.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    let api_version = text("/apiVersion");
    let group = api_version.rsplit_once('/').map(|(g, _)| g.to_string()).unwrap_or_default();
    let key =
        ObjectKey::new(GroupKind { group, kind: text("/kind") }, text("/metadata/namespace"), text("/metadata/name"));
    let derived = Derived { resource_version, uid: bootstrap_uid(&key), creation_timestamp: created, generation: 1 };
    StoredObject::new(key, None, content, derived)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bootstrap_objects_are_the_ones_clients_expect() {
        let objects = super::objects();
        let names: Vec<String> = objects.iter().map(|o| o.key.to_string()).collect();
        for expected in ["default", "kube-system", "kubernetes", "cluster-admin", "scheduler"] {
            assert!(
                names.iter().any(|n| n.ends_with(&format!("/{expected}")) || n.ends_with(&format!(" {expected}"))),
                "{expected} in {names:?}"
            );
        }
        let service = objects.iter().find(|o| o.key.name == "kubernetes").unwrap();
        assert_eq!(&*service.key.namespace, "default");
        assert_eq!(service.value()["metadata"]["uid"], super::objects()[4].value()["metadata"]["uid"], "stable uids");
        assert!(super::is_bootstrap(service));
    }
}
