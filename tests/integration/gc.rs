//! Garbage collection through ownerReferences: background, orphan and foreground deletion, and
//! owners deleted by a person's commit.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, PostParams, PropagationPolicy};
use serde_json::json;

use crate::support::{Remote, eventually, open, open_with, options, status_of, within};

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

/// A ConfigMap owned by each of `owners`.
fn owned(name: &str, owners: &[&ConfigMap]) -> ConfigMap {
    let refs: Vec<_> = owners
        .iter()
        .map(|o| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": o.metadata.name, "uid": o.metadata.uid}))
        .collect();
    serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": refs}, "data": {"k": "v"}})).unwrap()
}

/// A store on `remote`, and in it a ConfigMap `parent` (returned) with a `child` it owns.
async fn parent_and_child(remote: &Remote) -> (gitbacked::GitStore, Api<ConfigMap>, ConfigMap) {
    let store = open(remote).await;
    let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
    let parent = api.create(&PostParams::default(), &cm("parent")).await.unwrap();
    api.create(&PostParams::default(), &owned("child", &[&parent])).await.unwrap();
    (store, api, parent)
}

fn uids(c: &ConfigMap) -> Vec<String> {
    c.metadata.owner_references.iter().flatten().map(|r| r.uid.clone()).collect()
}

#[tokio::test]
async fn dependents_of_a_deleted_owner_are_deleted_in_the_background() {
    within(60, async {
        let remote = Remote::new();
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let pp = PostParams::default();
        let parent = api.create(&pp, &cm("parent")).await.unwrap();
        let other = api.create(&pp, &cm("other")).await.unwrap();
        api.create(&pp, &owned("child-a", &[&parent])).await.unwrap();
        api.create(&pp, &owned("child-b", &[&parent])).await.unwrap();
        api.create(&pp, &owned("shared", &[&parent, &other])).await.unwrap();

        api.delete("parent", &DeleteParams::default()).await.unwrap();
        eventually("the children are collected", || {
            remote.file("default/configmaps/child-a.yaml").is_none()
                && remote.file("default/configmaps/child-b.yaml").is_none()
        })
        .await;
        // With another owner still there, it stays, without its reference to the deleted one.
        eventually("the shared child lost its deleted owner", || {
            remote.file("default/configmaps/shared.yaml").is_some_and(|f| !f.contains("name: parent"))
        })
        .await;
        store.sync().await.unwrap();
        assert_eq!(uids(&api.get("shared").await.unwrap()), [other.metadata.uid.clone().unwrap()]);
        assert!(status_of(api.get("child-a").await).code == 404);
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn orphan_deletion_keeps_the_dependents_without_their_owner() {
    within(60, async {
        let remote = Remote::new();
        let (store, api, _) = parent_and_child(&remote).await;

        let orphan = DeleteParams { propagation_policy: Some(PropagationPolicy::Orphan), ..Default::default() };
        let answer = api.delete("parent", &orphan).await.unwrap();
        // It waits for the collector under the orphan finalizer.
        let waiting = answer.left().expect("the owner is still there, being deleted");
        assert_eq!(waiting.metadata.finalizers.unwrap_or_default(), ["orphan"]);
        eventually("the owner is gone", || remote.file("default/configmaps/parent.yaml").is_none()).await;
        store.sync().await.unwrap();
        let child = api.get("child").await.unwrap();
        assert!(child.metadata.owner_references.as_ref().is_none_or(Vec::is_empty), "{child:?}");
        assert!(!remote.file("default/configmaps/child.yaml").unwrap().contains("ownerReferences"));
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn foreground_deletion_removes_the_dependents_first() {
    within(60, async {
        let remote = Remote::new();
        let (store, api, parent) = parent_and_child(&remote).await;
        // The child has a finalizer of its own: the owner waits for it.
        let mut held = owned("held", &[&parent]);
        held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
        api.create(&PostParams::default(), &held).await.unwrap();

        let foreground = DeleteParams::foreground();
        let waiting = api.delete("parent", &foreground).await.unwrap().left().expect("being deleted");
        assert!(waiting.metadata.deletion_timestamp.is_some());
        assert_eq!(waiting.metadata.finalizers.unwrap_or_default(), ["foregroundDeletion"]);
        eventually("the plain child is collected", || remote.file("default/configmaps/child.yaml").is_none()).await;
        store.sync().await.unwrap();
        assert!(api.get("held").await.unwrap().metadata.deletion_timestamp.is_some(), "held is being deleted");
        assert!(api.get("parent").await.is_ok(), "the owner waits for its last dependent");

        // The held child's finalizer goes: it is deleted, and then the owner.
        let patch = kube::api::Patch::Merge(json!({"metadata": {"finalizers": null}}));
        api.patch("held", &kube::api::PatchParams::default(), &patch).await.unwrap();
        eventually("the owner follows its dependents", || remote.file("default/configmaps/parent.yaml").is_none())
            .await;
        assert!(remote.file("default/configmaps/held.yaml").is_none());
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn an_owner_deleted_by_a_persons_commit_takes_its_dependents() {
    within(60, async {
        let remote = Remote::new();
        let (store, api, parent) = parent_and_child(&remote).await;
        remote.commit(&[("default/configmaps/parent.yaml", None)], "a person deletes the owner");
        eventually("the child is collected", || remote.file("default/configmaps/child.yaml").is_none()).await;
        // A dependent whose owner is gone is garbage from the start; one whose owner is of a kind
        // that is not served, or has no uid, cannot be judged, and stays.
        let stray = serde_yaml_text(&owned("stray", &[&parent]));
        let mut unknown = owned("unknown-owner", &[&parent]);
        let reference = &mut unknown.metadata.owner_references.as_mut().unwrap()[0];
        (reference.api_version, reference.kind) = ("example.com/v1".into(), "Gadget".into());
        let unknown = serde_yaml_text(&unknown);
        let mut no_uid = owned("no-uid", &[&parent]);
        no_uid.metadata.owner_references.as_mut().unwrap()[0].uid = String::new();
        let no_uid = serde_yaml_text(&no_uid);
        remote.commit(
            &[
                ("default/configmaps/stray.yaml", Some(&stray)),
                ("default/configmaps/unknown.yaml", Some(&unknown)),
                ("default/configmaps/no-uid.yaml", Some(&no_uid)),
            ],
            "dependents of nothing",
        );
        eventually("the stray dependent is collected", || remote.file("default/configmaps/stray.yaml").is_none()).await;
        assert_eq!(remote.log()[0], "delete v1 ConfigMap default/stray");
        assert!(remote.file("default/configmaps/unknown.yaml").is_some());
        assert!(remote.file("default/configmaps/no-uid.yaml").is_some());
        store.sync().await.unwrap();
        assert!(api.get("unknown-owner").await.is_ok());

        store.close().await.unwrap();
    })
    .await;
}

fn serde_yaml_text(c: &ConfigMap) -> String {
    let mut value = serde_json::to_value(c).unwrap();
    value["apiVersion"] = json!("v1");
    value["kind"] = json!("ConfigMap");
    value["metadata"]["namespace"] = json!("default");
    // JSON is YAML.
    serde_json::to_string_pretty(&value).unwrap()
}

#[tokio::test]
async fn without_the_collector_dependents_stay() {
    within(30, async {
        let remote = Remote::new();
        let options = gitbacked::Options { garbage_collector: false, ..options() };
        let store = open_with(&remote, options).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let parent = api.create(&PostParams::default(), &cm("parent")).await.unwrap();
        api.create(&PostParams::default(), &owned("child", &[&parent])).await.unwrap();
        api.delete("parent", &DeleteParams::default()).await.unwrap();
        // A collector acts within milliseconds; give it a second.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert!(remote.file("default/configmaps/child.yaml").is_some());
        assert_eq!(remote.log()[0], "delete v1 ConfigMap default/parent");
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn an_unknown_propagation_policy_is_invalid() {
    within(30, async {
        let remote = Remote::new();
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        api.create(&PostParams::default(), &cm("a")).await.unwrap();
        let request = http::Request::delete("/api/v1/namespaces/default/configmaps/a")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&json!({"propagationPolicy": "Sideways"})).unwrap())
            .unwrap();
        let status: kube::core::Status = store.client().request(request).await.map_or_else(
            |e| match e {
                kube::Error::Api(s) => *s,
                other => panic!("{other}"),
            },
            |_: serde_json::Value| panic!("accepted"),
        );
        assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"), "{status:?}");
        assert!(api.get("a").await.is_ok(), "nothing was deleted");
        store.close().await.unwrap();
    })
    .await;
}
