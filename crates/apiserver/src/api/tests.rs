//! The API semantics against [`MemoryStorage`]: fast, without git. The integration tests of the
//! workspace test the same semantics through real git.

use std::sync::Arc;

use gitbacked_core::clock::ManualClock;
use gitbacked_core::{MemoryStorage, Reason, StatusError};
use serde_json::{Value, json};

use super::*;

fn api() -> (Api, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_795_612_057));
    let storage = MemoryStorage::new(1000).with_clock(clock.clone());
    (Api::new(Arc::new(storage)).with_clock(clock.clone()), clock)
}

fn target(api: &Api, group: &str, version: &str, plural: &str, namespace: Option<&str>) -> Target {
    api.target(group, version, plural, namespace).expect("served")
}

fn configmaps(api: &Api) -> Target {
    target(api, "", "v1", "configmaps", Some("default"))
}

fn deployments(api: &Api) -> Target {
    target(api, "apps", "v1", "deployments", Some("default"))
}

fn body(reply: &Reply) -> Value {
    serde_json::from_slice(&reply.body).expect("JSON body")
}

fn configmap(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": data})
}

fn deployment(name: &str, replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
}

fn opts() -> WriteOptions {
    WriteOptions { field_manager: Some("tests".into()), ..Default::default() }
}

async fn create(api: &Api, target: &Target, object: Value) -> Value {
    body(&api.create(target, object, &opts()).await.expect("created"))
}

fn reason<T: std::fmt::Debug>(result: ApiResult<T>) -> (u16, Reason) {
    let e: StatusError = result.expect_err("the call fails");
    (e.code, e.reason)
}

#[tokio::test]
async fn create_derives_metadata_and_refuses_a_second_object_of_the_name() {
    let (api, _) = api();
    let t = configmaps(&api);
    let created = create(&api, &t, configmap("a", json!({"k": "v"}))).await;
    let meta = &created["metadata"];
    assert_eq!(meta["resourceVersion"], "1");
    assert_eq!(meta["creationTimestamp"], "2026-11-25T13:07:37Z", "from the injected clock");
    assert!(meta["uid"].as_str().is_some_and(|u| u.len() == 36));
    assert_eq!(reason(api.create(&t, configmap("a", json!({})), &opts()).await), (409, Reason::AlreadyExists));
    let got = body(&api.get(&t, "a", Format::Object).unwrap());
    assert_eq!(got["data"], json!({"k": "v"}));
    assert_eq!(reason(api.get(&t, "missing", Format::Object)), (404, Reason::NotFound));
    // A ConfigMap's deletion answers a Status; a ServiceAccount's, the object, as their registries do.
    let deleted = body(&api.delete(&t, "a", &json!({}), &opts()).await.unwrap());
    assert_eq!((deleted["kind"].as_str(), deleted["status"].as_str()), (Some("Status"), Some("Success")));
    let accounts = target(&api, "", "v1", "serviceaccounts", Some("default"));
    create(&api, &accounts, json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}})).await;
    let deleted = body(&api.delete(&accounts, "sa", &json!({}), &opts()).await.unwrap());
    assert_eq!((deleted["kind"].as_str(), deleted["metadata"]["name"].as_str()), (Some("ServiceAccount"), Some("sa")));
    create(&api, &t, configmap("a", json!({"k": "v"}))).await;
    // Served kind first, as kube-apiserver serializes objects.
    assert!(api.get(&t, "a", Format::Object).unwrap().body.starts_with(br#"{"kind":"ConfigMap","apiVersion":"v1","#));
}

#[tokio::test]
async fn invalid_names_and_kinds_are_refused_before_anything_is_stored() {
    let (api, _) = api();
    let t = configmaps(&api);
    assert_eq!(reason(api.create(&t, configmap("Not_Valid", json!({})), &opts()).await), (422, Reason::Invalid));
    let wrong_kind = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a"}});
    assert_eq!(reason(api.create(&t, wrong_kind, &opts()).await).0, 400);
    let bad_labels = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"x": 1}}});
    assert_eq!(reason(api.create(&t, bad_labels, &opts()).await), (422, Reason::Invalid));
    assert_eq!(api.storage().list(&t.rt.group_kind(), None).1.len(), 0, "nothing was stored");
}

#[tokio::test]
async fn updates_need_the_current_resource_version() {
    let (api, _) = api();
    let t = configmaps(&api);
    let created = create(&api, &t, configmap("a", json!({"k": "1"}))).await;
    let mut update = created.clone();
    update["data"]["k"] = json!("2");
    let updated = body(&api.update(&t, "a", update.clone(), None, &opts()).await.unwrap());
    assert_eq!(
        (updated["data"]["k"].clone(), updated["metadata"]["resourceVersion"].clone()),
        (json!("2"), json!("2"))
    );
    // The same body again carries the old resourceVersion: a lost update is a conflict.
    assert_eq!(reason(api.update(&t, "a", update, None, &opts()).await), (409, Reason::Conflict));
    // Without a resourceVersion the update is unconditional.
    let mut blind = configmap("a", json!({"k": "3"}));
    blind["metadata"].as_object_mut().unwrap().remove("resourceVersion");
    assert_eq!(body(&api.update(&t, "a", blind, None, &opts()).await.unwrap())["data"]["k"], "3");
    assert_eq!(reason(api.update(&t, "b", configmap("b", json!({})), None, &opts()).await), (404, Reason::NotFound));
}

#[tokio::test]
async fn patches_of_every_kind_apply_to_the_current_object() {
    let (api, _) = api();
    let t = deployments(&api);
    create(&api, &t, deployment("web", 1)).await;
    let merge = json!({"metadata": {"labels": {"tier": "front"}}});
    let merged = body(&api.patch(&t, "web", PatchType::Merge, merge, None, &opts()).await.unwrap());
    assert_eq!(merged["metadata"]["labels"], json!({"tier": "front"}));
    let json_patch = json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]);
    let replaced = body(&api.patch(&t, "web", PatchType::Json, json_patch, None, &opts()).await.unwrap());
    assert_eq!(replaced["spec"]["replicas"], 3);
    // Strategic merge keeps list items by their merge key (containers by name).
    let strategic = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "s"}]}}}});
    let both = body(&api.patch(&t, "web", PatchType::Strategic, strategic, None, &opts()).await.unwrap());
    let names: Vec<&str> = both["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sidecar", "c"]);
    let failing = json!([{"op": "test", "path": "/spec/replicas", "value": 7}]);
    assert_eq!(reason(api.patch(&t, "web", PatchType::Json, failing, None, &opts()).await).1, Reason::Invalid);
}

#[tokio::test]
async fn generation_counts_spec_changes_and_status_is_written_only_through_its_subresource() {
    let (api, _) = api();
    let t = deployments(&api);
    let mut with_status = deployment("web", 1);
    with_status["status"] = json!({"replicas": 5});
    let created = create(&api, &t, with_status).await;
    assert_eq!(created["metadata"]["generation"], 1);
    assert!(created.get("status").is_none(), "status is dropped on create");

    let status = json!({"status": {"replicas": 1}});
    let patched =
        body(&api.patch(&t, "web", PatchType::Merge, status, Some(Subresource::Status), &opts()).await.unwrap());
    assert_eq!(
        (patched["status"]["replicas"].clone(), patched["metadata"]["generation"].clone()),
        (json!(1), json!(1))
    );

    // A spec change through /status is ignored; through the object it bumps the generation.
    let spec = json!({"spec": {"replicas": 4}});
    let ignored =
        body(&api.patch(&t, "web", PatchType::Merge, spec.clone(), Some(Subresource::Status), &opts()).await.unwrap());
    assert_eq!(ignored["spec"]["replicas"], 1);
    let changed = body(&api.patch(&t, "web", PatchType::Merge, spec, None, &opts()).await.unwrap());
    assert_eq!((changed["spec"]["replicas"].clone(), changed["metadata"]["generation"].clone()), (json!(4), json!(2)));
    assert_eq!(changed["status"]["replicas"], 1, "a spec write keeps the status");
}

#[tokio::test]
async fn server_side_apply_creates_then_conflicts_with_other_managers_unless_forced() {
    let (api, _) = api();
    let t = configmaps(&api);
    let alice = WriteOptions { field_manager: Some("alice".into()), ..Default::default() };
    let bob = WriteOptions { field_manager: Some("bob".into()), ..Default::default() };
    let applied = body(&api.apply(&t, "a", configmap("a", json!({"k": "alice"})), None, &alice).await.unwrap());
    assert_eq!(applied["metadata"]["managedFields"][0]["manager"], "alice");
    assert_eq!(applied["metadata"]["managedFields"][0]["time"], "2026-11-25T13:07:37Z");
    assert_eq!(
        reason(api.apply(&t, "a", configmap("a", json!({"k": "bob"})), None, &bob).await),
        (409, Reason::Conflict)
    );
    let forced = WriteOptions { force: true, ..bob };
    let taken = body(&api.apply(&t, "a", configmap("a", json!({"k": "bob"})), None, &forced).await.unwrap());
    assert_eq!(taken["data"]["k"], "bob");
}

#[tokio::test]
async fn finalizers_hold_a_deleted_object_until_they_are_removed() {
    let (api, clock) = api();
    let t = configmaps(&api);
    let mut held = configmap("a", json!({}));
    held["metadata"]["finalizers"] = json!(["example.com/wait"]);
    create(&api, &t, held).await;
    clock.set(1_795_612_100);
    let deleting = body(&api.delete(&t, "a", &json!({}), &opts()).await.unwrap());
    assert_eq!(deleting["metadata"]["deletionTimestamp"], "2026-11-25T13:08:20Z");
    assert!(api.storage().get(&t.key("a")).is_some(), "still there while a finalizer is left");
    let release = json!({"metadata": {"finalizers": null}});
    api.patch(&t, "a", PatchType::Merge, release, None, &opts()).await.unwrap();
    assert!(api.storage().get(&t.key("a")).is_none(), "gone with its last finalizer");
}

#[tokio::test]
async fn delete_preconditions_are_checked_against_the_current_object() {
    let (api, _) = api();
    let t = configmaps(&api);
    create(&api, &t, configmap("a", json!({}))).await;
    let wrong = json!({"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}});
    assert_eq!(reason(api.delete(&t, "a", &wrong, &opts()).await), (409, Reason::Conflict));
    let stale = json!({"preconditions": {"resourceVersion": "99"}});
    assert_eq!(reason(api.delete(&t, "a", &stale, &opts()).await), (409, Reason::Conflict));
    api.delete(&t, "a", &json!({"preconditions": {"resourceVersion": "1"}}), &opts()).await.unwrap();
    assert_eq!(reason(api.delete(&t, "a", &json!({}), &opts()).await), (404, Reason::NotFound));
}

#[tokio::test]
async fn lists_honour_label_and_field_selectors() {
    let (api, _) = api();
    let t = configmaps(&api);
    for (name, tier) in [("a", "front"), ("b", "back"), ("c", "front")] {
        let mut cm = configmap(name, json!({}));
        cm["metadata"]["labels"] = json!({"tier": tier});
        create(&api, &t, cm).await;
    }
    let names = |params: ListParams| -> Vec<String> {
        let list = body(&api.list(&t, &params, Format::Object).unwrap());
        list["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect()
    };
    let labels = |s: &str| ListParams { label_selector: Some(s.into()), ..Default::default() };
    assert_eq!(names(labels("tier=front")), ["a", "c"]);
    assert_eq!(names(labels("tier notin (front)")), ["b"]);
    assert_eq!(names(ListParams { field_selector: Some("metadata.name!=a".into()), ..Default::default() }), ["b", "c"]);
    let bad = ListParams { field_selector: Some("data.k=v".into()), ..Default::default() };
    assert_eq!(reason(api.list(&t, &bad, Format::Object)), (400, Reason::BadRequest));
    let page = body(&api.list(&t, &ListParams { limit: Some(2), ..Default::default() }, Format::Object).unwrap());
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(page["metadata"]["continue"].as_str().is_some_and(|c| !c.is_empty()));

    // A field the object does not set has its zero value, as in kube-apiserver's field sets.
    let nodes = target(&api, "", "v1", "nodes", None);
    create(&api, &nodes, json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "plain"}})).await;
    create(
        &api,
        &nodes,
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cordoned"}, "spec": {"unschedulable": true}}),
    )
    .await;
    let node_names = |selector: &str| -> Vec<String> {
        let params = ListParams { field_selector: Some(selector.into()), ..Default::default() };
        let list = body(&api.list(&nodes, &params, Format::Object).unwrap());
        list["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(node_names("spec.unschedulable=false"), ["plain"]);
    assert_eq!(node_names("spec.unschedulable==true"), ["cordoned"]);
}

#[tokio::test]
async fn dry_run_answers_without_storing() {
    let (api, _) = api();
    let t = configmaps(&api);
    let dry = WriteOptions { dry_run: true, ..opts() };
    let answered = body(&api.create(&t, configmap("a", json!({"k": "v"})), &dry).await.unwrap());
    assert_eq!(answered["data"]["k"], "v");
    assert!(api.storage().get(&t.key("a")).is_none());
    assert_eq!(api.storage().revision(&t.rt.group_kind()), 0);
}

#[tokio::test]
async fn a_crd_with_invalid_versions_is_refused_with_422() {
    let (api, _) = api();
    let t = target(&api, "apiextensions.k8s.io", "v1", "customresourcedefinitions", None);
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"served": true, "storage": true}]}});
    let (code, why) = reason(api.create(&t, crd, &opts()).await);
    assert_eq!((code, why), (422, Reason::Invalid));
    assert!(api.storage().list(&t.rt.group_kind(), None).1.is_empty());
}

#[tokio::test]
async fn a_crd_is_served_with_the_status_apiextensions_would_give_it() {
    let (api, _) = api();
    let t = target(&api, "apiextensions.k8s.io", "v1", "customresourcedefinitions", None);
    let crd = |name: &str, plural: &str, kind: &str| {
        let schema = json!({"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}});
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": name},
            "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": plural, "kind": kind, "shortNames": ["wd"]},
                "versions": [{"name": "v1beta1", "served": true, "storage": false, "schema": schema}, {"name": "v1", "served": true, "storage": true, "schema": schema}]},
            "status": {"conditions": [{"type": "Established", "status": "False"}]}})
    };
    let created = create(&api, &t, crd("widgets.example.com", "widgets", "Widget")).await;
    let status = &created["status"];
    assert_eq!(status["acceptedNames"]["kind"], "Widget");
    assert_eq!(status["acceptedNames"]["listKind"], "WidgetList");
    assert_eq!(status["acceptedNames"]["shortNames"], json!(["wd"]));
    assert_eq!(status["storedVersions"], json!(["v1"]));
    let conditions: Vec<(String, String)> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["type"].as_str().unwrap().into(), c["status"].as_str().unwrap().into()))
        .collect();
    assert_eq!(conditions, [("NamesAccepted".into(), "True".into()), ("Established".into(), "True".into())]);
    assert_eq!(status["conditions"][1]["lastTransitionTime"], created["metadata"]["creationTimestamp"]);
    // The same on every read, and a status sent by a client is not stored.
    let reply = api.get(&t, "widgets.example.com", Format::Object).unwrap();
    assert!(reply.body.starts_with(br#"{"kind":"CustomResourceDefinition","apiVersion":"#), "kind first here too");
    let got = body(&reply);
    assert_eq!(got["status"], *status);
    let stored = api.storage().get(&t.key("widgets.example.com")).unwrap();
    assert!(stored.value().get("status").is_none());
}

/// A watch of `target` from the current resourceVersion, in `format`, with a label selector.
fn watch_from_now(
    api: &Api,
    target: &Target,
    selector: Option<&str>,
    format: Format,
) -> impl futures::Stream<Item = bytes::Bytes> + Unpin + use<> {
    let revision = api.storage().revision(&target.stored_kind());
    let list = ListParams {
        label_selector: selector.map(str::to_string),
        resource_version: Some(revision),
        ..Default::default()
    };
    Box::pin(api.watch(target, &watch::WatchParams { list, format, ..Default::default() }).expect("watching"))
}

/// The next `n` events of a watch: their types, and their objects as sent.
async fn next_events(
    watch: &mut (impl futures::Stream<Item = bytes::Bytes> + Unpin),
    n: usize,
) -> Vec<(String, String)> {
    use futures::StreamExt;
    let mut events = Vec::new();
    while events.len() < n {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), watch.next()).await.unwrap().unwrap();
        for line in std::str::from_utf8(&chunk).unwrap().lines() {
            let event: Value = serde_json::from_str(line).expect("a JSON event line");
            let kind = event["type"].as_str().unwrap_or_default().to_string();
            let object =
                line.strip_prefix(&format!("{{\"type\":\"{kind}\",\"object\":")).and_then(|l| l.strip_suffix('}'));
            events.push((kind, object.expect("the object, as sent").to_string()));
        }
    }
    events
}

#[tokio::test]
async fn a_watch_with_a_label_selector_sees_objects_enter_and_leave_it_as_added_and_deleted() {
    let (api, _) = api();
    let t = configmaps(&api);
    let labelled = |team: &str, value: &str| {
        let mut object = configmap("a", json!({"k": value}));
        object["metadata"]["labels"] = json!({"team": team, "app": "a"});
        object
    };
    create(&api, &t, labelled("red", "1")).await;
    let mut selected = watch_from_now(&api, &t, Some("team=blue"), Format::Object);
    let mut everything = watch_from_now(&api, &t, None, Format::Object);
    for (team, value) in [("blue", "1"), ("blue", "2"), ("red", "2")] {
        api.update(&t, "a", labelled(team, value), None, &opts()).await.unwrap();
    }
    let seen = |events: Vec<(String, String)>| -> Vec<(String, String, String)> {
        let team_and_value = |o: &str| {
            let o: Value = serde_json::from_str(o).unwrap();
            (o["metadata"]["labels"]["team"].as_str().unwrap().into(), o["data"]["k"].as_str().unwrap().into())
        };
        events.into_iter().map(|(kind, o)| (kind, team_and_value(&o).0, team_and_value(&o).1)).collect()
    };
    let event = |kind: &str, team: &str, value: &str| (kind.to_string(), team.to_string(), value.to_string());
    assert_eq!(
        seen(next_events(&mut selected, 3).await),
        [event("ADDED", "blue", "1"), event("MODIFIED", "blue", "2"), event("DELETED", "red", "2")]
    );
    assert_eq!(
        seen(next_events(&mut everything, 3).await),
        [event("MODIFIED", "blue", "1"), event("MODIFIED", "blue", "2"), event("MODIFIED", "red", "2")]
    );
}

#[tokio::test]
async fn watches_serving_an_event_differently_each_send_their_own_serving() {
    let (api, _) = api();
    let (cm, deploy) = (configmaps(&api), deployments(&api));
    create(&api, &cm, configmap("a", json!({"k": "1"}))).await;
    create(&api, &deploy, deployment("web", 1)).await;
    // Deployments are served with their defaults, ConfigMaps as stored; each also as metadata.
    let mut watches = Vec::new();
    for (target, name) in [(&cm, "a"), (&deploy, "web")] {
        for format in [Format::Object, Format::Metadata, Format::Object] {
            watches.push((target, name, format, watch_from_now(&api, target, None, format)));
        }
    }
    api.update(&cm, "a", configmap("a", json!({"k": "2"})), None, &opts()).await.unwrap();
    api.update(&deploy, "web", deployment("web", 2), None, &opts()).await.unwrap();
    for (target, name, format, watch) in &mut watches {
        let sent = next_events(watch, 1).await;
        let served = api.get(target, name, *format).unwrap().body;
        let served = std::str::from_utf8(&served).unwrap().to_string();
        assert_eq!(sent, [("MODIFIED".to_string(), served)], "{} as {format:?}", target.rt.kind);
    }
}
