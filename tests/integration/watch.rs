//! Watches: a person's commits as events through kube's watcher and reflector, resuming from any
//! event's resourceVersion, 410 for a resourceVersion outside the window, streaming lists, and
//! Events that live in memory only.

use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent};
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

use crate::support::{Remote, configmap, core_event, eventually, open, open_with, options, within};

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"key": value}})).unwrap()
}

fn name_of(c: &ConfigMap) -> String {
    c.metadata.name.clone().unwrap()
}

/// The next item of a stream, failing the test when none comes within 10 seconds.
async fn next<S: Stream + Unpin>(stream: &mut S) -> S::Item {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event within 10s")
        .expect("the stream goes on")
}

/// A watcher event reduced to what the tests compare: its variant and the object's name and value.
fn describe(event: &watcher::Event<ConfigMap>) -> String {
    let show = |c: &ConfigMap| {
        format!("{}={}", name_of(c), c.data.as_ref().and_then(|d| d.get("key")).cloned().unwrap_or_default())
    };
    match event {
        watcher::Event::Init => "Init".into(),
        watcher::Event::InitApply(c) => format!("InitApply {}", show(c)),
        watcher::Event::InitDone => "InitDone".into(),
        watcher::Event::Apply(c) => format!("Apply {}", show(c)),
        watcher::Event::Delete(c) => format!("Delete {}", show(c)),
    }
}

/// A raw watch event as (type, name, resourceVersion).
fn raw(event: &WatchEvent<ConfigMap>) -> (String, String, String) {
    let (kind, obj) = match event {
        WatchEvent::Added(o) => ("ADDED", o),
        WatchEvent::Modified(o) => ("MODIFIED", o),
        WatchEvent::Deleted(o) => ("DELETED", o),
        other => panic!("unexpected event {other:?}"),
    };
    (kind.to_string(), name_of(obj), obj.metadata.resource_version.clone().unwrap())
}

/// Every event of a watch that ends after `timeout_secs`.
async fn watch_all(api: &Api<ConfigMap>, rv: &str, timeout_secs: u32) -> Vec<(String, String, String)> {
    let wp = WatchParams::default().timeout(timeout_secs);
    let stream = api.watch(&wp, rv).await.unwrap();
    let events: Vec<WatchEvent<ConfigMap>> =
        tokio::time::timeout(Duration::from_secs(u64::from(timeout_secs) + 10), stream.try_collect())
            .await
            .expect("the watch ends at its timeout")
            .unwrap();
    events.iter().map(raw).collect()
}

#[tokio::test]
async fn a_persons_commits_reach_a_watcher() {
    within(60, async {
        let remote = Remote::new();
        remote.commit(&[("apps/a.yaml", Some(&configmap("a", "1")))], "a");
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let start = api.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
        let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
        let mut raw_events = api.watch(&WatchParams::default(), &start).await.unwrap().boxed();

        assert_eq!(describe(&next(&mut events).await.unwrap()), "Init");
        assert_eq!(describe(&next(&mut events).await.unwrap()), "InitApply a=1");
        assert_eq!(describe(&next(&mut events).await.unwrap()), "InitDone");

        remote.commit(&[("apps/b.yaml", Some(&configmap("b", "2")))], "add b");
        store.sync().await.unwrap();
        assert_eq!(describe(&next(&mut events).await.unwrap()), "Apply b=2");
        remote.commit(&[("apps/a.yaml", Some(&configmap("a", "3")))], "change a");
        store.sync().await.unwrap();
        assert_eq!(describe(&next(&mut events).await.unwrap()), "Apply a=3");
        remote.commit(&[("apps/a.yaml", None)], "remove a");
        store.sync().await.unwrap();
        assert_eq!(describe(&next(&mut events).await.unwrap()), "Delete a=3");
        // Without a sync request: the poll finds it.
        remote.commit(&[("apps/b.yaml", None)], "remove b");
        assert_eq!(describe(&next(&mut events).await.unwrap()), "Delete b=2");

        let types: Vec<(String, String)> = {
            let mut out = Vec::new();
            for _ in 0..4 {
                let (kind, name, _) = raw(&next(&mut raw_events).await.unwrap());
                out.push((kind, name));
            }
            out
        };
        let expected = [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "a"), ("DELETED", "b")];
        assert_eq!(types, expected.map(|(k, n)| (k.to_string(), n.to_string())));
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_reflector_follows_git_and_the_api() {
    within(60, async {
        let remote = Remote::new();
        remote.commit(&[("apps/a.yaml", Some(&configmap("a", "1")))], "a");
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let (reader, writer) = reflector::store::<ConfigMap>();
        let stream = reflector(writer, watcher(api.clone(), watcher::Config::default())).applied_objects();
        let task = tokio::spawn(stream.for_each(|_| async {}));
        reader.wait_until_ready().await.unwrap();
        let values = |r: &reflector::Store<ConfigMap>| {
            let mut v: Vec<String> =
                r.state().iter().map(|c| format!("{}={}", name_of(c), c.data.as_ref().unwrap()["key"])).collect();
            v.sort();
            v
        };
        assert_eq!(values(&reader), ["a=1"]);

        remote.commit(&[("apps/b.yaml", Some(&configmap("b", "2"))), ("apps/a.yaml", None)], "swap");
        api.create(&PostParams::default(), &cm("c", "3")).await.unwrap();
        eventually("the reflector to see b and c only", || values(&reader) == ["b=2", "c=3"]).await;
        task.abort();
        store.close().await.unwrap();
    })
    .await;
}

/// Objects a..d exist; then ONE commit changes five objects: a and b modified, c deleted, e and f added.
fn four_objects(remote: &Remote) {
    remote.commit(
        &[
            ("apps/a.yaml", Some(&configmap("a", "1"))),
            ("apps/b.yaml", Some(&configmap("b", "1"))),
            ("apps/c.yaml", Some(&configmap("c", "1"))),
            ("apps/d.yaml", Some(&configmap("d", "1"))),
        ],
        "four",
    );
}

fn commit_five(remote: &Remote) {
    remote.commit(
        &[
            ("apps/a.yaml", Some(&configmap("a", "2"))),
            ("apps/b.yaml", Some(&configmap("b", "2"))),
            ("apps/c.yaml", None),
            ("apps/ef.yaml", Some(&format!("{}---\n{}", configmap("e", "1"), configmap("f", "1")))),
        ],
        "five changes at once",
    );
}

#[tokio::test]
async fn a_watch_resumes_from_any_events_resource_version() {
    within(60, async {
        let remote = Remote::new();
        four_objects(&remote);
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let before = api.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
        commit_five(&remote);
        store.sync().await.unwrap();

        let events = watch_all(&api, &before, 1).await;
        let shape: Vec<(&str, &str)> = events.iter().map(|(k, n, _)| (k.as_str(), n.as_str())).collect();
        assert_eq!(shape, [("MODIFIED", "a"), ("MODIFIED", "b"), ("DELETED", "c"), ("ADDED", "e"), ("ADDED", "f")]);
        let rvs: Vec<u64> = events.iter().map(|(_, _, rv)| rv.parse().unwrap()).collect();
        assert!(rvs.windows(2).all(|w| w[0] < w[1]), "{rvs:?}");
        let after = api.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
        assert_eq!(after, events[4].2, "the list is at the last event");

        // From each event, exactly the events after it: no loss, no duplicate.
        let resumed = futures::future::join_all(events.iter().map(|(_, _, rv)| watch_all(&api, rv, 1))).await;
        for (i, got) in resumed.iter().enumerate() {
            assert_eq!(got, &events[i + 1..].to_vec(), "resumed from event {i}");
        }

        // And a store started later, from the same history, agrees.
        let other = open(&remote).await;
        let api2: Api<ConfigMap> = Api::namespaced(other.client(), "default");
        assert_eq!(watch_all(&api2, &events[1].2, 1).await, events[2..].to_vec());
        other.close().await.unwrap();
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_too_old_resource_version_gets_410_inside_the_stream() {
    within(60, async {
        let remote = Remote::new();
        four_objects(&remote);
        let store = open_with(&remote, gitbacked::Options { watch_window: 3, ..options() }).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let before = api.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
        commit_five(&remote);
        store.sync().await.unwrap();

        // The HTTP request succeeds; the stream carries the error.
        let mut stream = api.watch(&WatchParams::default(), &before).await.unwrap().boxed();
        match next(&mut stream).await.unwrap() {
            WatchEvent::Error(status) => {
                assert_eq!(status.code, 410, "{status:?}");
                assert!(status.reason == "Expired" || status.reason == "Gone", "{status:?}");
            }
            other => panic!("expected a 410 ERROR event, got {other:?}"),
        }
        let end = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("the stream ends");
        assert!(end.is_none(), "the stream ends after the error: {end:?}");

        // The newest events are still in the window.
        let latest = api.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
        let rv: u64 = latest.parse().unwrap();
        let got = watch_all(&api, &(rv - 2).to_string(), 1).await;
        let names: Vec<&str> = got.iter().map(|(_, n, _)| n.as_str()).collect();
        assert_eq!(names, ["e", "f"]);

        // kube's watcher recovers from the 410 by listing again.
        let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
        assert_eq!(describe(&next(&mut events).await.unwrap()), "Init");
        let mut initial = Vec::new();
        loop {
            match next(&mut events).await.unwrap() {
                watcher::Event::InitApply(c) => initial.push(name_of(&c)),
                watcher::Event::InitDone => break,
                other => panic!("{}", describe(&other)),
            }
        }
        assert_eq!(initial, ["a", "b", "d", "e", "f"]);
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn streaming_lists_send_initial_events_then_live_ones() {
    within(60, async {
        let remote = Remote::new();
        remote
            .commit(&[("apps/a.yaml", Some(&configmap("a", "1"))), ("apps/b.yaml", Some(&configmap("b", "1")))], "two");
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let mut events = watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(describe(&next(&mut events).await.unwrap()));
        }
        assert_eq!(seen, ["Init", "InitApply a=1", "InitApply b=1", "InitDone"]);

        remote.commit(&[("apps/c.yaml", Some(&configmap("c", "1")))], "c");
        store.sync().await.unwrap();
        assert_eq!(describe(&next(&mut events).await.unwrap()), "Apply c=1");
        let mut a = api.get("a").await.unwrap();
        a.data.as_mut().unwrap().insert("key".into(), "2".into());
        api.replace("a", &PostParams::default(), &a).await.unwrap();
        assert_eq!(describe(&next(&mut events).await.unwrap()), "Apply a=2");
        api.delete("b", &DeleteParams::default()).await.unwrap();
        assert_eq!(describe(&next(&mut events).await.unwrap()), "Delete b=1");
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn events_are_served_and_watched_but_never_committed() {
    within(60, async {
        let remote = Remote::new();
        // An Event a person commits is not served either.
        let committed = "apiVersion: v1\nkind: Event\nmetadata:\n  name: from-git\n  namespace: default\ninvolvedObject:\n  kind: ConfigMap\n  name: a\nreason: X\n";
        remote.commit(&[("events/e.yaml", Some(committed))], "an event in git");
        let store = open(&remote).await;
        let api: Api<CoreEvent> = Api::namespaced(store.client(), "default");
        assert!(api.list(&ListParams::default()).await.unwrap().items.is_empty());
        let log = remote.log();
        let files = remote.files();

        let start = api.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
        let mut watch = api.watch(&WatchParams::default(), &start).await.unwrap().boxed();
        let created = api.create(&PostParams::default(), &core_event("e1", "hello")).await.unwrap();
        assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
        assert_eq!(api.get("e1").await.unwrap().message.as_deref(), Some("hello"));
        match next(&mut watch).await.unwrap() {
            WatchEvent::Added(e) => assert_eq!(e.metadata.name.as_deref(), Some("e1")),
            other => panic!("{other:?}"),
        }
        let mut e1 = api.get("e1").await.unwrap();
        e1.message = Some("again".into());
        e1.count = Some(2);
        let updated = api.replace("e1", &PostParams::default(), &e1).await.unwrap();
        assert_eq!(updated.count, Some(2));
        match next(&mut watch).await.unwrap() {
            WatchEvent::Modified(e) => assert_eq!(e.message.as_deref(), Some("again")),
            other => panic!("{other:?}"),
        }
        let selected = api.list(&ListParams::default().fields("reason=Tested")).await.unwrap().items;
        assert_eq!(selected.len(), 1);
        api.delete("e1", &DeleteParams::default()).await.unwrap();
        match next(&mut watch).await.unwrap() {
            WatchEvent::Deleted(e) => assert_eq!(e.metadata.name.as_deref(), Some("e1")),
            other => panic!("{other:?}"),
        }

        // A ConfigMap write after the Event ones: its resourceVersion is above theirs.
        let c = Api::<ConfigMap>::namespaced(store.client(), "default")
            .create(&PostParams::default(), &cm("after", "1"))
            .await
            .unwrap();
        let crv: u64 = c.metadata.resource_version.unwrap().parse().unwrap();
        let erv: u64 = updated.metadata.resource_version.unwrap().parse().unwrap();
        assert!(crv > erv, "{crv} > {erv}");

        api.create(&PostParams::default(), &core_event("e2", "kept in memory")).await.unwrap();
        let mut expected_log = log.clone();
        expected_log.insert(0, "create v1 ConfigMap default/after".into());
        assert_eq!(remote.log(), expected_log, "no Event was committed");
        let mut expected_files = files.clone();
        expected_files.push("default/configmaps/after.yaml".into());
        expected_files.sort();
        let mut now = remote.files();
        now.sort();
        assert_eq!(now, expected_files);
        assert!(remote.files().iter().all(|f| !f.contains("events/e1") && !f.contains("e2")));
        store.close().await.unwrap();
    })
    .await;
}

fn labelled(name: &str, tier: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\n  labels:\n    tier: {tier}\n"
    )
}

#[tokio::test]
async fn a_selected_watch_sees_objects_enter_and_leave_the_selection() {
    within(60, async {
        let remote = Remote::new();
        remote.commit(
            &[("apps/a.yaml", Some(&labelled("a", "front"))), ("apps/b.yaml", Some(&labelled("b", "back")))],
            "two",
        );
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let start = api.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
        // b enters the selection, a leaves it, then a deleted b leaves it again.
        remote.commit(&[("apps/b.yaml", Some(&labelled("b", "front")))], "b to front");
        remote.commit(&[("apps/a.yaml", Some(&labelled("a", "back")))], "a to back");
        remote.commit(&[("apps/a.yaml", Some(&labelled("a", "db")))], "a elsewhere, unseen");
        remote.commit(&[("apps/b.yaml", None)], "remove b");
        store.sync().await.unwrap();
        let collect = |wp: WatchParams| {
            let api = api.clone();
            let start = start.clone();
            async move {
                let stream = api.watch(&wp.timeout(1), &start).await.unwrap();
                let events: Vec<WatchEvent<ConfigMap>> =
                    tokio::time::timeout(Duration::from_secs(15), stream.try_collect()).await.unwrap().unwrap();
                events.iter().map(raw).map(|(k, n, _)| format!("{k} {n}")).collect::<Vec<_>>()
            }
        };
        assert_eq!(collect(WatchParams::default().labels("tier=front")).await, ["ADDED b", "DELETED a", "DELETED b"]);
        assert_eq!(
            collect(WatchParams::default().labels("tier in (back,db)")).await,
            ["DELETED b", "ADDED a", "MODIFIED a"]
        );
        assert_eq!(collect(WatchParams::default().fields("metadata.name=b")).await, ["MODIFIED b", "DELETED b"]);
        store.close().await.unwrap();
    })
    .await;
}
