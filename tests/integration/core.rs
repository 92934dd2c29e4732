//! The core API over git: CRUD lands in the remote, a person's commits become watch events.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{Remote, configmap, open};

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"key": value}})).unwrap()
}

#[tokio::test]
async fn crud_lands_in_the_remote() {
    let remote = Remote::new();
    let store = open(&remote).await;
    let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");

    let created = api.create(&PostParams::default(), &cm("web", "one")).await.unwrap();
    let rv1 = created.metadata.resource_version.clone().unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    let file = remote.file("default/configmaps/web.yaml").expect("file pushed");
    assert!(file.contains("key: one") && !file.contains("resourceVersion") && !file.contains("uid"), "{file}");
    assert_eq!(remote.log()[0], "create v1 ConfigMap default/web");

    let mut got = api.get("web").await.unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);
    got.data.as_mut().unwrap().insert("key".into(), "two".into());
    let updated = api.replace("web", &PostParams::default(), &got).await.unwrap();
    assert_ne!(updated.metadata.resource_version.as_ref(), Some(&rv1));
    assert!(remote.file("default/configmaps/web.yaml").unwrap().contains("key: two"));

    // A stale resourceVersion conflicts.
    let err = api.replace("web", &PostParams::default(), &got).await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.is_conflict()), "{err:?}");

    let patched =
        api.patch("web", &PatchParams::default(), &Patch::Merge(json!({"data": {"extra": "x"}}))).await.unwrap();
    assert_eq!(patched.data.unwrap()["extra"], "x");
    assert_eq!(remote.log()[0], "patch v1 ConfigMap default/web");

    let err = api.create(&PostParams::default(), &cm("web", "again")).await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.is_already_exists()), "{err:?}");

    let deleted = api.delete("web", &DeleteParams::default()).await.unwrap();
    assert!(deleted.is_right(), "immediate deletion answers a Status");
    assert_eq!(remote.file("default/configmaps/web.yaml"), None);
    let err = api.get("web").await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.is_not_found()), "{err:?}");
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_persons_commits_are_served() {
    let remote = Remote::new();
    remote.commit(&[("apps/a.yaml", Some(&configmap("a", "1")))], "add a");
    let store = open(&remote).await;
    let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
    assert_eq!(api.get("a").await.unwrap().data.unwrap()["key"], "1");

    remote.commit(&[("apps/b.yaml", Some(&configmap("b", "2"))), ("apps/a.yaml", Some(&configmap("a", "3")))], "edit");
    store.sync().await.unwrap();
    assert_eq!(api.get("a").await.unwrap().data.unwrap()["key"], "3");
    assert_eq!(api.get("b").await.unwrap().data.unwrap()["key"], "2");

    remote.commit(&[("apps/a.yaml", None)], "remove a");
    store.sync().await.unwrap();
    assert!(api.get("a").await.is_err());
    store.close().await.unwrap();
}

#[tokio::test]
async fn kubes_recorder_publishes_events_that_stay_out_of_git() {
    use k8s_openapi::api::events::v1::Event as K8sEvent;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};

    let remote = Remote::new();
    let store = open(&remote).await;
    let client = store.client();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let subject = api.create(&PostParams::default(), &cm("subject", "1")).await.unwrap();
    let commits = remote.log().len();

    let reporter = Reporter { controller: "test-controller".into(), instance: Some("pod-1".into()) };
    let recorder = Recorder::new(client.clone(), reporter);
    let reference = kube::Resource::object_ref(&subject, &());
    let event = Event {
        type_: EventType::Normal,
        reason: "Synced".into(),
        note: Some("hello".into()),
        action: "Sync".into(),
        secondary: None,
    };
    // The second publish of the same event patches its series count.
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();

    let events: Api<K8sEvent> = Api::namespaced(client.clone(), "default");
    let listed = events.list(&Default::default()).await.unwrap().items;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].reason.as_deref(), Some("Synced"));
    assert_eq!(listed[0].series.as_ref().map(|s| s.count), Some(2));

    // One resource, two views: the Recorder's events.k8s.io Event is a core/v1 Event
    // (`kubectl get events`), and the other way round.
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let seen = core.get(listed[0].metadata.name.as_deref().unwrap()).await.unwrap();
    assert_eq!(
        (seen.message.as_deref(), seen.reporting_component.as_deref()),
        (Some("hello"), Some("test-controller"))
    );
    assert_eq!(seen.involved_object.name.as_deref(), Some("subject"));
    assert_eq!(seen.series.as_ref().and_then(|s| s.count), Some(2));
    let written = core
        .create(&PostParams::default(), &crate::support::core_event("old-style", "written as core/v1"))
        .await
        .unwrap();
    let viewed = events.get("old-style").await.unwrap();
    assert_eq!(viewed.note.as_deref(), Some("written as core/v1"));
    assert_eq!(viewed.regarding.as_ref().and_then(|r| r.name.as_deref()), written.involved_object.name.as_deref());
    assert_eq!(viewed.metadata.uid, written.metadata.uid);
    assert_eq!(core.list(&Default::default()).await.unwrap().items.len(), 2);
    assert_eq!(remote.log().len(), commits, "events are never committed");
    store.close().await.unwrap();
}
