//! Hostile and careless inputs: each is answered with a `Status`, commits nothing it should not,
//! and never takes the server down.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use crate::support::{Remote, open_with, options, status_of, within};

fn core_event(name: &str, message: &str) -> CoreEvent {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "involvedObject": {"kind": "ConfigMap", "namespace": "default", "name": "a", "apiVersion": "v1"},
        "reason": "Tested", "message": message, "type": "Normal",
    }))
    .unwrap()
}

#[tokio::test]
async fn events_are_bounded_in_count_bytes_and_size() {
    within(60, async {
        let remote = Remote::new();
        let limits = gitbacked::Limits { objects: 5, bytes: 4 << 20 };
        let store = open_with(&remote, gitbacked::Options { event_limits: limits, ..options() }).await;
        let events: Api<CoreEvent> = Api::namespaced(store.client(), "default");
        let commits = remote.commit_count();

        // An Event larger than etcd would take: 413, nothing kept.
        let huge = core_event("huge", &"x".repeat(2_500_000));
        let status = status_of(events.create(&PostParams::default(), &huge).await);
        assert_eq!((status.code, status.reason.as_str()), (413, "RequestEntityTooLarge"), "{status:?}");
        assert!(events.list(&ListParams::default()).await.unwrap().items.is_empty());

        // Beyond the count, the oldest go first, each with a DELETED event.
        let start = events.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
        let mut watch = events.watch(&WatchParams::default(), &start).await.unwrap().boxed();
        for i in 0..8 {
            events.create(&PostParams::default(), &core_event(&format!("e{i}"), "hello")).await.unwrap();
        }
        let mut names: Vec<String> = events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|e| e.metadata.name)
            .collect();
        names.sort();
        assert_eq!(names, ["e3", "e4", "e5", "e6", "e7"]);
        let mut deleted = Vec::new();
        while deleted.len() < 3 {
            match tokio::time::timeout(std::time::Duration::from_secs(10), watch.next()).await {
                Ok(Some(Ok(WatchEvent::Deleted(e)))) => deleted.push(e.metadata.name.unwrap()),
                Ok(Some(Ok(_))) => {}
                other => panic!("unexpected watch item: {other:?}"),
            }
        }
        assert_eq!(deleted, ["e0", "e1", "e2"]);

        // Beyond the bytes, too: five 1 MB Events do not fit in 4 MiB.
        for i in 0..5 {
            events
                .create(&PostParams::default(), &core_event(&format!("big{i}"), &"y".repeat(1_000_000)))
                .await
                .unwrap();
        }
        let kept = events.list(&ListParams::default()).await.unwrap().items;
        let bytes: usize = kept.iter().map(|e| serde_json::to_vec(e).unwrap().len()).sum();
        assert!(bytes <= 4 << 20 && kept.len() == 4, "{} Events of {bytes} bytes", kept.len());

        // A new-style Event's note is at most 1024 characters.
        let new_style: Api<Event> = Api::namespaced(store.client(), "default");
        let long_note: Event = serde_json::from_value(json!({
            "metadata": {"name": "noted"}, "eventTime": "2026-12-01T00:00:00.000000Z",
            "reportingController": "tests/x", "reportingInstance": "i", "action": "Test", "reason": "Tested",
            "note": "z".repeat(1025), "type": "Normal",
        }))
        .unwrap();
        let status = status_of(new_style.create(&PostParams::default(), &long_note).await);
        assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"), "{status:?}");

        store.sync().await.unwrap();
        assert_eq!(remote.commit_count(), commits, "Events are never committed");
        store.close().await.unwrap();
    })
    .await;
}
