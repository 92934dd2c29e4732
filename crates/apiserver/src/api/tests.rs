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

/// A watch of `target` from `revision` with a label selector, in objects.
fn watch_from(
    api: &Api,
    target: &Target,
    revision: u64,
    selector: Option<&str>,
) -> impl futures::Stream<Item = bytes::Bytes> + Unpin + use<> {
    let list = ListParams {
        label_selector: selector.map(str::to_string),
        resource_version: Some(revision),
        ..Default::default()
    };
    Box::pin(api.watch(target, &watch::WatchParams { list, ..Default::default() }).expect("watching"))
}

/// Polls a watch once, so that it attaches to its kind's dispatcher; it has nothing to send yet.
fn attach(watch: &mut (impl futures::Stream<Item = bytes::Bytes> + Unpin)) {
    use futures::{FutureExt, StreamExt};
    assert!(watch.next().now_or_never().is_none(), "nothing to send yet");
}

/// The resourceVersion of an object as sent.
fn resource_version(object: &str) -> u64 {
    let object: Value = serde_json::from_str(object).unwrap();
    object["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_handed_their_events_by_the_dispatcher_send_what_a_watch_reading_the_log_sends() {
    let (api, _) = api();
    let (cm, deploy) = (configmaps(&api), deployments(&api));
    // Watches resume from a resourceVersion after this write (from 0 they would list first).
    create(&api, &deploy, deployment("first", 1)).await;
    let start = api.storage().revision(&cm.stored_kind());
    let labelled = |i: usize, round: usize| {
        let mut object = configmap(&format!("cm-{i}"), json!({"round": round.to_string()}));
        object["metadata"]["labels"] = json!({"team": if (i + round).is_multiple_of(3) { "blue" } else { "red" }});
        object
    };
    // Ten watches of every ConfigMap and ten of the blue ones, attached before the writes.
    let mut early: Vec<_> =
        (0..20).map(|w| (w % 2 == 1, watch_from(&api, &cm, start, (w % 2 == 1).then_some("team=blue")))).collect();
    for (_, watch) in &mut early {
        attach(watch);
    }
    assert_eq!(api.dispatchers.attached(&cm.stored_kind()), 20);
    for i in 0..40 {
        create(&api, &cm, labelled(i, 0)).await;
        if i % 10 == 0 {
            create(&api, &deploy, deployment(&format!("web-{i}"), 1)).await;
        }
    }
    // Relabelled: a third leave the blue ones (DELETED for the blue watches), a third enter them (ADDED).
    for i in 0..40 {
        api.update(&cm, &format!("cm-{i}"), labelled(i, 1), None, &opts()).await.unwrap();
    }
    // Watches resuming from the start while the dispatcher hands out the events: each reads the
    // log itself, then attaches.
    let mut late: Vec<_> =
        [false, true].map(|blue| (blue, watch_from(&api, &cm, start, blue.then_some("team=blue")))).into();
    for i in (0..40).step_by(4) {
        api.delete(&cm, &format!("cm-{i}"), &json!({}), &opts()).await.unwrap();
    }
    // What a watch reading the log sends: one started after every write.
    let mut reference = Vec::new();
    for (blue, n) in [(false, 90), (true, 44)] {
        let events = next_events(&mut watch_from(&api, &cm, start, blue.then_some("team=blue")), n).await;
        let count = |kind: &str| events.iter().filter(|(k, _)| k == kind).count();
        let counts = [count("ADDED"), count("MODIFIED"), count("DELETED")];
        assert_eq!(counts, if blue { [27, 0, 17] } else { [40, 40, 10] }, "blue: {blue}");
        assert!(events.iter().all(|(_, object)| object.contains(r#""kind":"ConfigMap""#)));
        reference.push(events);
    }
    for (blue, watch) in early.iter_mut().chain(&mut late) {
        let n = reference[*blue as usize].len();
        assert_eq!(next_events(watch, n).await, reference[*blue as usize], "blue: {blue}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_resuming_during_a_burst_of_several_rounds_get_each_event_once_in_order() {
    let storage = MemoryStorage::new(10_000);
    let api = Api::new(Arc::new(storage));
    let cm = configmaps(&api);
    create(&api, &cm, configmap("first", json!({}))).await;
    let start = api.storage().revision(&cm.stored_kind());
    let mut attached = watch_from(&api, &cm, start, None);
    attach(&mut attached);
    let writes = 3000;
    let writer = {
        let (api, cm) = (api.clone(), cm.clone());
        tokio::spawn(async move {
            for i in 0..writes {
                create(&api, &cm, configmap(&format!("cm-{i}"), json!({}))).await;
            }
        })
    };
    // Watches resuming from the start and from where the burst is, while it goes on.
    let mut resumed = vec![(start, watch_from(&api, &cm, start, None))];
    for step in 1..4 {
        while api.storage().revision(&cm.stored_kind()) < start + step * 700 {
            tokio::task::yield_now().await;
        }
        let from = api.storage().revision(&cm.stored_kind());
        resumed.push((from, watch_from(&api, &cm, from, None)));
        resumed.push((start, watch_from(&api, &cm, start, None)));
    }
    writer.await.unwrap();
    for (from, watch) in std::iter::once((start, &mut attached)).chain(resumed.iter_mut().map(|(f, w)| (*f, w))) {
        let n = (start + writes as u64 - from) as usize;
        let revisions: Vec<u64> = next_events(watch, n).await.iter().map(|(_, o)| resource_version(o)).collect();
        assert_eq!(revisions, (from + 1..=start + writes as u64).collect::<Vec<_>>(), "from {from}");
    }
}

#[tokio::test]
async fn a_watch_the_dispatcher_lets_go_reads_the_log_itself_and_gets_410_gone_once_it_is_too_old() {
    // A log of 10 events, and queues of one byte: each delivery lets its watch go.
    let mut api = Api::new(Arc::new(MemoryStorage::new(10)));
    api.dispatchers = Arc::new(watch::Dispatchers::with_queue(1));
    let cm = configmaps(&api);
    create(&api, &cm, configmap("first", json!({}))).await;
    let start = api.storage().revision(&cm.stored_kind());
    let mut watch = watch_from(&api, &cm, start, None);
    attach(&mut watch);
    assert_eq!(api.dispatchers.attached(&cm.stored_kind()), 1);
    for i in 0..5 {
        create(&api, &cm, configmap(&format!("cm-{i}"), json!({}))).await;
    }
    let revisions: Vec<u64> = next_events(&mut watch, 5).await.iter().map(|(_, o)| resource_version(o)).collect();
    assert_eq!(revisions, (start + 1..=start + 5).collect::<Vec<_>>());
    // Attached again; twenty writes later its resourceVersion has left the log.
    attach(&mut watch);
    for i in 5..25 {
        create(&api, &cm, configmap(&format!("cm-{i}"), json!({}))).await;
    }
    let (kind, status) = next_events(&mut watch, 1).await.remove(0);
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!((kind.as_str(), &status["code"], &status["reason"]), ("ERROR", &json!(410), &json!("Expired")));
    use futures::StreamExt;
    assert!(watch.next().await.is_none(), "the watch ends after the error");
}

#[tokio::test]
async fn a_watch_of_a_kind_gets_none_of_another_kind_watched_beside_it() {
    let (api, _) = api();
    let (cm, deploy) = (configmaps(&api), deployments(&api));
    let mut cms = watch_from_now(&api, &cm, None, Format::Object);
    let mut deploys = watch_from_now(&api, &deploy, None, Format::Object);
    attach(&mut cms);
    attach(&mut deploys);
    create(&api, &deploy, deployment("web", 1)).await;
    create(&api, &cm, configmap("a", json!({}))).await;
    create(&api, &deploy, deployment("api", 1)).await;
    let names = |events: Vec<(String, String)>| -> Vec<String> {
        events.iter().map(|(_, o)| serde_json::from_str::<Value>(o).unwrap()["metadata"]["name"].to_string()).collect()
    };
    assert_eq!(names(next_events(&mut cms, 1).await), [r#""a""#]);
    assert_eq!(names(next_events(&mut deploys, 2).await), [r#""web""#, r#""api""#]);
    // Nothing else came for the ConfigMaps.
    attach(&mut cms);
}
