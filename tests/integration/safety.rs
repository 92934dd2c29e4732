//! Hostile and careless inputs: each is answered with a `Status`, commits nothing it should not,
//! and never takes the server down.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use crate::support::{Remote, core_event, open_with, options, status_of, within};
use gitbacked_test_support::git_with_input;

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

/// A request through the store's Router: the status code and the body.
async fn request(
    store: &gitbacked::GitStore,
    method: &str,
    uri: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, bytes::Bytes) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let request = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(axum::body::Body::from(body))
        .unwrap();
    let response = store.router().oneshot(request).await.unwrap();
    let code = response.status().as_u16();
    (code, response.into_body().collect().await.unwrap().to_bytes())
}

/// A GET through the store's Router: the status code and the JSON body.
async fn get(store: &gitbacked::GitStore, uri: &str) -> (u16, serde_json::Value) {
    let (code, body) = request(store, "GET", uri, "application/json", Vec::new()).await;
    (code, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn list_options_are_checked_as_kube_apiserver_checks_them() {
    within(60, async {
        let remote = Remote::new();
        let many: Vec<(String, String)> =
            (0..3).map(|i| (format!("cm/{i}.yaml"), crate::support::configmap(&format!("c{i}"), "v"))).collect();
        let files: Vec<(&str, Option<&str>)> = many.iter().map(|(p, c)| (p.as_str(), Some(c.as_str()))).collect();
        remote.commit(&files, "three");
        let store = open_with(&remote, options()).await;
        let cms = "/api/v1/namespaces/default/configmaps";

        let (code, status) = get(&store, &format!("{cms}?resourceVersion=abc")).await;
        assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")), "{status}");
        // kube-apiserver answers ListOptions that break its rules with 422 Invalid.
        for query in [
            "resourceVersion=1&resourceVersionMatch=Bogus",
            "resourceVersionMatch=NotOlderThan",
            "resourceVersion=0&resourceVersionMatch=Exact",
        ] {
            let (code, status) = get(&store, &format!("{cms}?{query}")).await;
            assert_eq!((code, status["reason"].as_str()), (422, Some("Invalid")), "{query}: {status}");
        }

        // A continue token is good for the resource it was issued for only.
        let (code, page) = get(&store, &format!("{cms}?limit=1")).await;
        assert_eq!(code, 200);
        let token = page["metadata"]["continue"].as_str().unwrap().to_string();
        let (code, _) = get(&store, &format!("{cms}?limit=1&continue={token}")).await;
        assert_eq!(code, 200);
        let (code, status) = get(&store, &format!("/api/v1/namespaces/default/secrets?limit=1&continue={token}")).await;
        assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")), "{status}");

        // A resourceVersion from the future: the apiserver waits, then 504 Timeout.
        let current: u64 = page["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
        let started = std::time::Instant::now();
        let (code, status) =
            get(&store, &format!("{cms}?resourceVersion={}&resourceVersionMatch=NotOlderThan", current + 5_000_000))
                .await;
        assert_eq!((code, status["reason"].as_str()), (504, Some("Timeout")), "{status}");
        assert_eq!(status["details"]["causes"][0]["reason"], "ResourceVersionTooLarge");
        assert!(started.elapsed() >= std::time::Duration::from_secs(2), "it waited for the store first");
        // One the store reaches while waiting is served.
        let next = current - current % 1_000_000 + 1_000_001;
        let uri = format!("{cms}?resourceVersion={next}&resourceVersionMatch=NotOlderThan");
        let wait = get(&store, &uri);
        let commit = async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            remote.commit(&[("cm/late.yaml", Some(&crate::support::configmap("late", "v")))], "late");
            store.sync().await.unwrap();
        };
        let ((code, list), ()) = tokio::join!(wait, commit);
        assert_eq!(code, 200, "{list}");
        assert_eq!(list["items"].as_array().unwrap().len(), 4);
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_watch_with_timeout_seconds_zero_stays_open() {
    within(60, async {
        let remote = Remote::new();
        let store = open_with(&remote, options()).await;
        let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(store.client(), "default");
        let start = api.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
        let mut watch = api.watch(&WatchParams::default().timeout(0), &start).await.unwrap().boxed();
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let cm: k8s_openapi::api::core::v1::ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "later"}})).unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
        match tokio::time::timeout(std::time::Duration::from_secs(10), watch.next()).await {
            Ok(Some(Ok(WatchEvent::Added(c)))) => assert_eq!(c.metadata.name.as_deref(), Some("later")),
            other => panic!("the watch ended or saw something else: {other:?}"),
        }
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_document_that_is_not_utf8_hides_only_itself() {
    within(60, async {
        let remote = Remote::new();
        remote.commit_with("a file with one bad document", |dir| {
            let mut bytes = crate::support::configmap("before", "v").into_bytes();
            bytes.extend_from_slice(b"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndata:\n  k: \"");
            bytes.extend_from_slice(&[0xff, 0xfe]);
            bytes.extend_from_slice(b"\"\n---\n");
            bytes.extend_from_slice(crate::support::configmap("after", "v").as_bytes());
            std::fs::write(dir.join("mixed.yaml"), bytes).unwrap();
        });
        let store = open_with(&remote, options()).await;
        let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(store.client(), "default");
        let mut names: Vec<String> =
            api.list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|c| c.metadata.name).collect();
        names.sort();
        assert_eq!(names, ["after", "before"]);
        let report = store.report();
        assert_eq!(report.invalid_files.len(), 1);
        assert_eq!(report.invalid_files[0].problems, [(14, "the document is not UTF-8".to_string())]);
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_new_object_never_replaces_what_a_person_put_at_its_path() {
    use crate::support::{configmap, git};
    within(60, async {
        let remote = Remote::new();
        remote.commit_with("things in the way", |dir| {
            // A directory named like the file, a plain file where a kind's directory goes, a
            // symlink and a submodule (gitlink) at the paths of new objects.
            std::fs::create_dir_all(dir.join("default/configmaps/web.yaml")).unwrap();
            std::fs::write(dir.join("default/configmaps/web.yaml/keep.yaml"), configmap("keepme", "v")).unwrap();
            std::fs::write(dir.join("default/secrets"), "a person's notes\n").unwrap();
            std::os::unix::fs::symlink("/etc/hostname", dir.join("default/configmaps/link.yaml")).unwrap();
        });
        // A gitlink has nothing in the work tree: `git add --all` would drop it, so it goes in alone.
        let person = remote.person();
        let head = git(&person, &["rev-parse", "HEAD"]);
        let gitlink = format!("160000,{},default/configmaps/sub.yaml", head.trim());
        git(&person, &["update-index", "--add", "--cacheinfo", &gitlink]);
        git(&person, &["commit", "--quiet", "-m", "a submodule"]);
        git(&person, &["push", "--quiet", "origin", "main"]);
        let before = remote.files();
        let store = open_with(&remote, options()).await;
        let client = store.client();
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), "default");
        for name in ["web", "link", "sub"] {
            let cm = serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap();
            cms.create(&PostParams::default(), &cm).await.unwrap();
            let bucketed = format!("default/configmaps/{}/{name}.yaml", gitbacked_git::layout::bucket(name));
            assert!(remote.file(&bucketed).is_some(), "{name} went to its bucket: {:?}", remote.files());
        }
        let after = remote.files();
        for kept in &before {
            assert!(after.contains(kept), "{kept} is gone: {after:?}");
        }
        let tree = git(&remote.path(), &["ls-tree", "-r", "main", "default/configmaps/"]);
        assert!(tree.contains("120000 blob") && tree.contains("160000 commit"), "{tree}");
        assert!(cms.get("keepme").await.is_ok(), "the person's object is still served");

        // A file where the kind's directory belongs blocks every path: 409, nothing committed.
        let commits = remote.commit_count();
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, "default");
        let secret = serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}})).unwrap();
        let status = status_of(secrets.create(&PostParams::default(), &secret).await);
        assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"), "{status:?}");
        assert!(status.message.contains("default/secrets"), "{status:?}");
        store.sync().await.unwrap();
        assert_eq!(remote.commit_count(), commits);
        assert_eq!(remote.file("default/secrets").as_deref(), Some("a person's notes\n"));
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn tree_entries_git_would_not_check_out_are_skipped_and_writes_go_on() {
    use crate::support::{configmap, git};
    within(60, async {
        let remote = Remote::new();
        remote.commit(&[("ok/cm.yaml", Some(&configmap("fine", "v")))], "a good file");
        // Root entries named `..`, `.` and `.git` (git mktree takes them; push accepts them).
        let bare = remote.path();
        let blob = {
            let out = gitbacked_test_support::run_bounded(
                std::process::Command::new("sh")
                    .arg("-c")
                    .arg(format!("printf '%s' \"$0\" | git -C '{}' hash-object -w --stdin", bare.display()))
                    .arg(configmap("sneaky", "v")),
                gitbacked_test_support::COMMAND_TIMEOUT,
            );
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        let inner = git_with_input(&bare, &["mktree"], format!("100644 blob {blob}\tcm.yaml\n").as_bytes());
        let root = git(&bare, &["rev-parse", "main^{tree}"]);
        let mut listing = git(&bare, &["ls-tree", root.trim()]);
        for odd in ["..", ".", ".git"] {
            listing.push_str(&format!("040000 tree {}\t{odd}\n", inner.trim()));
        }
        let tree = git_with_input(&bare, &["mktree"], listing.as_bytes());
        let commit = git(&bare, &["commit-tree", tree.trim(), "-p", "main", "-m", "odd entries"]);
        git(&bare, &["update-ref", "refs/heads/main", commit.trim()]);

        let store = open_with(&remote, options()).await;
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(store.client(), "default");
        let names: Vec<String> =
            cms.list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|c| c.metadata.name).collect();
        assert_eq!(names, ["fine"], "nothing under `..`, `.` or `.git` is read");
        let cm = serde_json::from_value(json!({"metadata": {"name": "after"}, "data": {"k": "v"}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.expect("writes go on");
        assert!(remote.file("default/configmaps/after.yaml").is_some());
        let tree = git(&bare, &["ls-tree", "main"]);
        assert!(tree.contains("\t..\n") && tree.contains("\t.git\n"), "the odd entries are left as they were: {tree}");
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn long_names_keep_every_clone_working() {
    use crate::support::git;
    within(60, async {
        let remote = Remote::new();
        let store = open_with(&remote, options()).await;
        let client = store.client();
        let long = format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61));
        assert_eq!(long.len(), 253);
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), "default");
        let cm = serde_json::from_value(json!({"metadata": {"name": long}, "data": {"k": "v"}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
        let rbac = format!("system:{}", "é".repeat(150));
        let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(client.clone());
        let role = serde_json::from_value(json!({"metadata": {"name": rbac}, "rules": []})).unwrap();
        roles.create(&PostParams::default(), &role).await.unwrap();

        for path in remote.files() {
            assert!(path.split('/').all(|c| c.len() <= 255), "{path}");
        }
        let clone = tempfile::tempdir().unwrap();
        git(clone.path(), &["clone", "--quiet", &remote.url(), "checkout"]);
        // Served by their real names, and written back to the same files.
        let mut got = cms.get(&long).await.unwrap();
        got.data = Some([("k".to_string(), "w".to_string())].into());
        cms.replace(&long, &PostParams::default(), &got).await.unwrap();
        assert_eq!(roles.get(&rbac).await.unwrap().metadata.name.as_deref(), Some(rbac.as_str()));
        let files = remote.files();
        assert_eq!(files.len(), 3, "{files:?}");
        cms.delete(&long, &Default::default()).await.unwrap();
        roles.delete(&rbac, &Default::default()).await.unwrap();
        assert_eq!(remote.files(), ["README.md"]);
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_json_patch_cannot_amplify_a_document() {
    within(60, async {
        let remote = Remote::new();
        let store = open_with(&remote, options()).await;
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(store.client(), "default");
        let cm = serde_json::from_value(json!({"metadata": {"name": "a"}, "data": {"k": "x".repeat(1000)}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
        let commits = remote.commit_count();
        let bomb: Vec<serde_json::Value> =
            (0..30).map(|i| json!({"op": "copy", "from": "/data", "path": format!("/data/x{i}")})).collect();
        let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(bomb)).unwrap();
        let started = std::time::Instant::now();
        let status =
            status_of(cms.patch("a", &kube::api::PatchParams::default(), &kube::api::Patch::<()>::Json(patch)).await);
        assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"), "{status:?}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "refused before the work: {:?}",
            started.elapsed()
        );
        store.sync().await.unwrap();
        assert_eq!(remote.commit_count(), commits, "nothing committed");
        assert_eq!(cms.get("a").await.unwrap().data.unwrap().len(), 1);
        store.close().await.unwrap();
    })
    .await;
}

/// A request through the store's Router with a JSON body: the status code and the JSON answer.
async fn send(
    store: &gitbacked::GitStore,
    method: &str,
    uri: &str,
    content_type: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let (code, body) = request(store, method, uri, content_type, serde_json::to_vec(body).unwrap()).await;
    (code, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
}

fn nested(depth: usize) -> serde_json::Value {
    (1..depth).fold(json!("leaf"), |inner, _| json!({ "a": inner }))
}

#[tokio::test]
async fn nothing_is_acknowledged_that_is_not_read_back() {
    within(120, async {
        let remote = Remote::new();
        let store = open_with(&remote, options()).await;
        let widgets = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "deeps.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "deeps", "kind": "Deep"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
        assert_eq!(send(&store, "POST", widgets, "application/json", &crd).await.0, 201);
        let deeps = "/apis/example.com/v1/namespaces/default/deeps";
        let commits = remote.commit_count();

        // Too deep for the reader: refused on arrival, nothing committed.
        let deep = json!({"apiVersion": "example.com/v1", "kind": "Deep", "metadata": {"name": "d"}, "spec": nested(70)});
        let (code, status) = send(&store, "POST", deeps, "application/json", &deep).await;
        assert_eq!((code, status["reason"].as_str()), (422, Some("Invalid")), "{status}");
        // Too many values (a 2.6 MB ConfigMap of 260k keys): 413.
        let data: serde_json::Map<String, serde_json::Value> = (0..260_000).map(|i| (format!("{i}"), json!("v"))).collect();
        let big = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": data});
        let (code, status) = send(&store, "POST", "/api/v1/namespaces/default/configmaps", "application/json", &big).await;
        assert_eq!((code, status["reason"].as_str()), (413, Some("RequestEntityTooLarge")), "{status}");
        assert_eq!(remote.commit_count(), commits, "nothing committed");

        // A patch that makes a stored object too deep is read back before the commit and refused.
        let shallow = json!({"apiVersion": "example.com/v1", "kind": "Deep", "metadata": {"name": "d"}, "spec": nested(10)});
        assert_eq!(send(&store, "POST", deeps, "application/json", &shallow).await.0, 201);
        let commits = remote.commit_count();
        let deeper = json!({"spec": {"a": nested(64)}});
        let (code, status) = send(&store, "PATCH", &format!("{deeps}/d"), "application/merge-patch+json", &deeper).await;
        assert!(code == 413 || code == 422, "{code} {status}");
        assert!(status["message"].as_str().unwrap().contains("would not be read back"), "{status}");
        store.sync().await.unwrap();
        assert_eq!(remote.commit_count(), commits, "nothing committed");
        // The object is served as it was, and can still be patched and deleted.
        let (code, got) = send(&store, "GET", &format!("{deeps}/d"), "application/json", &json!({})).await;
        assert_eq!((code, &got["spec"]), (200, &nested(10)));
        let fine = json!({"metadata": {"labels": {"ok": "yes"}}});
        assert_eq!(send(&store, "PATCH", &format!("{deeps}/d"), "application/merge-patch+json", &fine).await.0, 200);
        assert_eq!(send(&store, "DELETE", &format!("{deeps}/d"), "application/json", &json!({})).await.0, 200);

        // In a file of several documents, only the one written is read back, and as strictly.
        let deep = |name: &str| format!("apiVersion: example.com/v1\nkind: Deep\nmetadata:\n  name: {name}\n  namespace: default\nspec: {{a: 1}}\n");
        let text = format!("{}---\n{}---\n{}", deep("e1"), deep("e2"), deep("e3"));
        remote.commit(&[("apps/deeps.yaml", Some(&text))], "three deeps");
        store.sync().await.unwrap();
        let commits = remote.commit_count();
        let (code, status) = send(&store, "PATCH", &format!("{deeps}/e2"), "application/merge-patch+json", &deeper).await;
        assert!(code == 413 || code == 422, "{code} {status}");
        assert!(status["message"].as_str().unwrap().contains("would not be read back"), "{status}");
        assert_eq!(remote.commit_count(), commits, "nothing committed");
        // Two writes into the file at once (one commit or two): each is read back on the other.
        let (e1, e3) = (json!({"spec": {"b": 1}}), json!({"spec": {"b": 3}}));
        let (first, third) = (format!("{deeps}/e1"), format!("{deeps}/e3"));
        let (one, three) = tokio::join!(
            send(&store, "PATCH", &first, "application/merge-patch+json", &e1),
            send(&store, "PATCH", &third, "application/merge-patch+json", &e3),
        );
        assert_eq!((one.0, three.0), (200, 200), "{one:?} {three:?}");
        let written = remote.file("apps/deeps.yaml").unwrap();
        assert_eq!(written, text.replacen("{a: 1}", "{a: 1, b: 1}", 1).replace("e3\n  namespace: default\nspec: {a: 1}", "e3\n  namespace: default\nspec: {a: 1, b: 3}"));
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn values_typed_clients_could_not_decode_are_refused() {
    within(60, async {
        let remote = Remote::new();
        let store = open_with(&remote, options()).await;
        let cms = "/api/v1/namespaces/default/configmaps";
        let commits = remote.commit_count();
        for query in ["", "?fieldValidation=Strict"] {
            let wrong_type = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": 5}});
            let (code, status) = send(&store, "POST", &format!("{cms}{query}"), "application/json", &wrong_type).await;
            assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")), "{status}");
            assert!(status["message"].as_str().unwrap().contains("data.k"), "{status}");
            let bad_label = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "labels": {"app": "not a value"}}});
            let (code, status) = send(&store, "POST", &format!("{cms}{query}"), "application/json", &bad_label).await;
            assert_eq!((code, status["reason"].as_str()), (422, Some("Invalid")), "{status}");
            assert_eq!(status["details"]["causes"][0]["field"], "metadata.labels", "{status}");
        }
        let big_annotation = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "annotations": {"note": "x".repeat(300_000)}}});
        let (code, status) = send(&store, "POST", cms, "application/json", &big_annotation).await;
        assert_eq!(code, 422, "{status}");
        assert!(status["message"].as_str().unwrap().contains("Too long: must have at most 262144 bytes"), "{status}");
        store.sync().await.unwrap();
        assert_eq!(remote.commit_count(), commits, "nothing committed");

        // A body without kind and apiVersion takes them from the URL, as kube-apiserver's decoder does.
        let bare = json!({"metadata": {"name": "bare"}, "data": {"k": "v"}});
        let (code, created) = send(&store, "POST", cms, "application/json", &bare).await;
        assert_eq!((code, created["kind"].as_str()), (201, Some("ConfigMap")), "{created}");
        let typed: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(store.client(), "default");
        assert_eq!(typed.list(&ListParams::default()).await.unwrap().items.len(), 1, "typed clients decode the list");
        assert!(remote.file("default/configmaps/bare.yaml").unwrap().contains("kind: ConfigMap"));
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_stale_lock_in_the_remote_is_named_in_the_answer_and_in_readyz() {
    within(60, async {
        let remote = Remote::new();
        let store = open_with(&remote, options()).await;
        let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(store.client(), "default");
        // A git process died while moving the branch a minute ago and left its lock.
        let lock = remote.path().join("refs/heads/main.lock");
        std::fs::write(&lock, "").unwrap();
        let minute_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::options().write(true).open(&lock).unwrap().set_modified(minute_ago).unwrap();

        let started = std::time::Instant::now();
        let cm = serde_json::from_value(json!({"metadata": {"name": "a"}, "data": {"k": "v"}})).unwrap();
        let status = status_of(api.create(&PostParams::default(), &cm).await);
        assert_eq!((status.code, status.reason.as_str()), (503, "ServiceUnavailable"), "{status:?}");
        assert!(status.message.contains("refs/heads/main.lock"), "{status:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "answered at once: {:?}", started.elapsed());
        let (code, text) = readyz_text(&store).await;
        assert_eq!(code, 503, "{text}");
        assert!(text.contains("[-]sync refs/heads/main failed: refs/heads/main.lock in the remote is held"), "{text}");
        assert!(!text.contains(&*remote.dir().to_string_lossy()), "{text}");

        // Once the lock is gone, the next poll clears readiness and writes land.
        std::fs::remove_file(&lock).unwrap();
        store.sync().await.unwrap();
        assert_eq!(readyz_text(&store).await.0, 200);
        api.create(&PostParams::default(), &cm).await.unwrap();
        assert!(remote.file("default/configmaps/a.yaml").is_some());
        store.close().await.unwrap();
    })
    .await;
}

async fn readyz_text(store: &gitbacked::GitStore) -> (u16, String) {
    let (code, body) = request(store, "GET", "/readyz", "text/plain", Vec::new()).await;
    (code, String::from_utf8_lossy(&body).into_owned())
}
