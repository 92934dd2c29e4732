//! Server-side apply and strategic merge patch through kube-rs, in-process.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{Remote, open};

fn deployment(replicas: i32, image: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]}}}
    })
}

#[tokio::test]
async fn server_side_apply_owns_fields_and_conflicts() {
    let remote = Remote::new();
    let store = open(&remote).await;
    let api: Api<Deployment> = Api::namespaced(store.client(), "default");

    // Apply creates the object; its field ownership is kept in git, on the status ref (the
    // default), not in the file.
    let ops = PatchParams::apply("ops");
    let created = api.patch("web", &ops, &Patch::Apply(deployment(2, "nginx:1"))).await.unwrap();
    assert_eq!(created.spec.as_ref().unwrap().replicas, Some(2));
    let managers: Vec<_> = created
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|m| (m.manager.unwrap(), m.operation.unwrap()))
        .collect();
    assert_eq!(managers, [("ops".to_string(), "Apply".to_string())]);
    let file = remote.file("default/deployments.apps/web.yaml").unwrap();
    assert!(!file.contains("managedFields"), "{file}");
    let ownership = gitbacked_test_support::git(
        &remote.path(),
        &["show", "refs/gitbacked/status/main:default/deployments.apps/f1/web.yaml"],
    );
    assert!(ownership.contains("managedFields") && ownership.contains("manager: ops"), "{ownership}");
    assert_eq!(remote.log()[0], "apply apps/v1 Deployment default/web");

    // Re-applying the same configuration changes nothing: no commit.
    let commits = remote.log().len();
    api.patch("web", &ops, &Patch::Apply(deployment(2, "nginx:1"))).await.unwrap();
    assert_eq!(remote.log().len(), commits);

    // Another manager changing a field ops owns conflicts, naming the field.
    let ci = PatchParams::apply("ci");
    let err = api.patch("web", &ci, &Patch::Apply(deployment(5, "nginx:1"))).await.unwrap_err();
    let kube::Error::Api(status) = &err else { panic!("{err:?}") };
    assert!(status.is_conflict(), "{status:?}");
    assert!(status.message.contains(".spec.replicas") && status.message.contains("\"ops\""), "{}", status.message);
    assert_eq!(remote.log().len(), commits, "nothing is written on a conflict");

    // Forcing takes the field over; ops no longer owns it.
    let forced = api.patch("web", &ci.clone().force(), &Patch::Apply(deployment(5, "nginx:1"))).await.unwrap();
    assert_eq!(forced.spec.as_ref().unwrap().replicas, Some(5));
    assert!(remote.file("default/deployments.apps/web.yaml").unwrap().contains("replicas: 5"));

    // ops stops applying the image: the field is removed only if nobody else owns it. ci applied
    // the same image, so it stays.
    let mut without_image = deployment(5, "x");
    without_image["spec"]["template"]["spec"]["containers"][0].as_object_mut().unwrap().remove("image");
    without_image["spec"].as_object_mut().unwrap().remove("replicas");
    let after = api.patch("web", &ops, &Patch::Apply(without_image)).await.unwrap();
    let containers = after.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(containers[0].image.as_deref(), Some("nginx:1"));
    store.close().await.unwrap();
}

#[tokio::test]
async fn leases_change_hands_only_by_force() {
    let remote = Remote::new();
    let store = open(&remote).await;
    let api: Api<Lease> = Api::namespaced(store.client(), "default");
    let lease = |holder: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "leader"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}})
    };
    api.patch("leader", &PatchParams::apply("a"), &Patch::Apply(lease("a"))).await.unwrap();
    let err = api.patch("leader", &PatchParams::apply("b"), &Patch::Apply(lease("b"))).await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.is_conflict()), "{err:?}");
    // The holder renews with a strategic merge patch.
    let renewed = api
        .patch("leader", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"leaseDurationSeconds": 20}})))
        .await
        .unwrap();
    assert_eq!(renewed.spec.unwrap().lease_duration_seconds, Some(20));
    let taken = api.patch("leader", &PatchParams::apply("b").force(), &Patch::Apply(lease("b"))).await.unwrap();
    assert_eq!(taken.spec.unwrap().holder_identity.as_deref(), Some("b"));
    store.close().await.unwrap();
}

#[tokio::test]
async fn strategic_merge_patch_merges_containers_by_name() {
    let remote = Remote::new();
    let store = open(&remote).await;
    let api: Api<Deployment> = Api::namespaced(store.client(), "default");
    let mut d = deployment(1, "nginx:1");
    d["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "side", "image": "busybox:1"}));
    api.create(&PostParams::default(), &serde_json::from_value(d).unwrap()).await.unwrap();
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "busybox:2"}]}}}});
    let patched = api.patch("web", &PatchParams::default(), &Patch::Strategic(patch)).await.unwrap();
    let images: Vec<_> =
        patched.spec.unwrap().template.spec.unwrap().containers.into_iter().map(|c| c.image.unwrap()).collect();
    assert_eq!(images, ["nginx:1", "busybox:2"]);
    let file = remote.file("default/deployments.apps/web.yaml").unwrap();
    assert!(file.contains("image: nginx:1") && file.contains("image: busybox:2"), "{file}");
    store.close().await.unwrap();
}
