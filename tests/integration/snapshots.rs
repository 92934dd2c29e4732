//! Cold starts from the snapshot ref (`refs/gitbacked/snapshots/<branch>`): a process that starts
//! from a snapshot and a shallow fetch serves what one that replayed the whole history serves, uid,
//! creationTimestamp, resourceVersion and generation alike; a damaged snapshot, or one whose commit
//! is not on the branch, is ignored.

use std::path::Path;

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::{Remote, configmap, eventually, git, git_runs, open_with, options, within};
use gitbacked_test_support::{git_with_input, try_git};

const SNAPSHOT_REF: &str = "refs/gitbacked/snapshots/main";

fn crd(group: &str, kind: &str, plural: &str) -> String {
    let lines = [
        "apiVersion: apiextensions.k8s.io/v1".to_string(),
        "kind: CustomResourceDefinition".into(),
        format!("metadata: {{name: {plural}.{group}}}"),
        "spec:".into(),
        format!("  group: {group}"),
        "  scope: Namespaced".into(),
        format!("  names: {{kind: {kind}, plural: {plural}}}"),
        "  versions:".into(),
        "  - name: v1".into(),
        "    served: true".into(),
        "    storage: true".into(),
        "    schema:".into(),
        "      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}".into(),
    ];
    lines.join("\n") + "\n"
}

fn custom(group: &str, kind: &str, name: &str, size: u32) -> String {
    format!(
        "apiVersion: {group}/v1\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  size: {size}\n"
    )
}

fn deployment(name: &str, namespace: &str, replicas: u32) -> String {
    let lines = [
        "apiVersion: apps/v1".to_string(),
        "kind: Deployment".into(),
        format!("metadata: {{name: {name}, namespace: {namespace}}}"),
        "spec:".into(),
        format!("  replicas: {replicas}"),
        format!("  selector: {{matchLabels: {{app: {name}}}}}"),
        "  template:".into(),
        format!("    metadata: {{labels: {{app: {name}}}}}"),
        "    spec: {containers: [{name: c, image: nginx}]}".into(),
    ];
    lines.join("\n") + "\n"
}

/// Everything served that history derives anything of, as served: the lists of each kind.
const LISTS: [&str; 6] = [
    "/api/v1/configmaps",
    "/apis/apps/v1/deployments",
    "/api/v1/namespaces",
    "/api/v1/serviceaccounts",
    "/apis/example.com/v1/widgets",
    "/apis/tools.example.org/v1/gadgets",
];

async fn get(store: &gitbacked::GitStore, path: &str) -> Value {
    let request = http::Request::get(path).body(axum::body::Body::empty()).unwrap();
    let response = store.router().oneshot(request).await.unwrap();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// What a store serves of every list: the list's resourceVersion and each item whole.
async fn served(store: &gitbacked::GitStore) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for path in LISTS {
        let list = get(store, path).await;
        assert!(list["items"].is_array(), "{path}: {list}");
        out.push((format!("{path} @ {}", list["metadata"]["resourceVersion"]), list["items"].clone()));
    }
    out
}

/// The history before the snapshot: created, changed, moved objects, a key claimed by two
/// documents, a namespace implied by its objects, a custom resource committed before its CRD.
fn history_before(remote: &Remote) {
    commit(
        remote,
        &[
            ("default/a.yaml", Some(configmap("a", "1"))),
            ("default/b.yaml", Some(configmap("b", "1"))),
            ("default/twin-1.yaml", Some(configmap("twin", "first"))),
            ("z/twin-2.yaml", Some(configmap("twin", "second"))),
            ("team/web.yaml", Some(deployment("web", "team", 1))),
            ("widgets/w1.yaml", Some(custom("example.com", "Widget", "w1", 1))),
        ],
        "first objects",
    );
    commit(
        remote,
        &[("default/a.yaml", Some(configmap("a", "2"))), ("team/web.yaml", Some(deployment("web", "team", 2)))],
        "change",
    );
    commit(remote, &[("crds/widgets.yaml", Some(crd("example.com", "Widget", "widgets")))], "the Widget CRD");
    commit(remote, &[("default/b.yaml", None), ("moved/b.yaml", Some(configmap("b", "1")))], "move b");
}

/// The history after the snapshot: the same kinds of changes, and a kind that a CRD brings later.
fn history_after(remote: &Remote) {
    commit(
        remote,
        &[
            ("default/c.yaml", Some(configmap("c", "1"))),
            ("default/a.yaml", Some(configmap("a", "3"))),
            ("team/web.yaml", Some(deployment("web", "team", 3))),
            ("default/twin-1.yaml", None),
        ],
        "create, change, and the first claim of twin goes",
    );
    commit(
        remote,
        &[
            ("default/a.yaml", None),
            ("elsewhere/a.yaml", Some(configmap("a", "3"))),
            ("gadgets/g1.yaml", Some(custom("tools.example.org", "Gadget", "g1", 1))),
            ("widgets/w2.yaml", Some(custom("example.com", "Widget", "w2", 2))),
        ],
        "move a, a gadget before its CRD",
    );
    commit(remote, &[("crds/gadgets.yaml", Some(crd("tools.example.org", "Gadget", "gadgets")))], "the Gadget CRD");
    commit(remote, &[("team/web.yaml", None), ("moved/b.yaml", None)], "the team namespace empties, b goes");
}

/// A process that writes one object, which leaves a snapshot of the branch at its commit on the
/// snapshot ref; returns the resourceVersion the store was at.
async fn write_snapshot(remote: &Remote) -> u64 {
    let before = snapshot_tip(remote);
    let writer = open_with(remote, gitbacked::Options { snapshot_every: 1, ..options() }).await;
    let api: Api<ConfigMap> = Api::namespaced(writer.client(), "default");
    let written: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "written"}, "data": {"k": "v"}})).unwrap();
    let created = api.create(&PostParams::default(), &written).await.unwrap();
    eventually("a snapshot on the snapshot ref", || snapshot_tip(remote) != before).await;
    writer.close().await.unwrap();
    created.metadata.resource_version.unwrap().parse().unwrap()
}

fn snapshot_tip(remote: &Remote) -> Option<String> {
    let out = try_git(&remote.path(), &["rev-parse", "--verify", "--quiet", SNAPSHOT_REF]);
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A copy of the remote without its snapshot ref: what a process that replays everything reads.
fn without_snapshots(remote: &Remote, into: &Path) -> String {
    let copy = into.join("copy.git");
    git(into, &["clone", "--quiet", "--mirror", remote.path().to_str().unwrap(), copy.to_str().unwrap()]);
    git(&copy, &["update-ref", "-d", SNAPSHOT_REF]);
    format!("file://{}", copy.display())
}

/// Opens a store whose mirror is in `cache` (so that it can be looked at).
async fn open_cached(url: &str, cache: &Path) -> gitbacked::GitStore {
    let options = gitbacked::Options { cache_dir: Some(cache.to_path_buf()), snapshot_every: 0, ..options() };
    gitbacked::GitStore::open(url, options).await.expect("store opens")
}

/// Whether the mirror in `cache` holds the remote's first commit (a shallow fetch does not).
fn holds_root(cache: &Path, remote: &Remote) -> bool {
    let root = git(&remote.path(), &["rev-list", "--max-parents=0", "main"]);
    try_git(cache, &["cat-file", "-e", root.trim()]).status.success()
}

#[tokio::test]
async fn a_start_from_a_snapshot_serves_what_a_replay_of_the_whole_history_serves() {
    within(180, async {
        let remote = Remote::new();
        history_before(&remote);
        // The shallow fetch reaches back to the snapshot's commit by commit time (seconds): with
        // the history before it a few seconds older, the fetch leaves that history out.
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let at_snapshot = write_snapshot(&remote).await;
        history_after(&remote);

        let tmp = tempfile::tempdir().unwrap();
        let full = open_cached(&without_snapshots(&remote, tmp.path()), &tmp.path().join("full")).await;
        let from_snapshot = open_cached(&remote.url(), &tmp.path().join("snap")).await;
        assert!(holds_root(&tmp.path().join("full"), &remote), "the replay fetched everything");
        // At once: with no snapshot ref listed, not the tip first and then the rest.
        assert_eq!(git_runs(&full, "fetch", "ok").await, 1);
        assert!(!tmp.path().join("full/shallow").exists() && tmp.path().join("snap/shallow").exists());
        assert!(
            !holds_root(&tmp.path().join("snap"), &remote),
            "the start from the snapshot fetched part of the history"
        );
        let expected = served(&full).await;
        assert_eq!(served(&from_snapshot).await, expected);
        // The objects are what the history says: the test would show nothing if they were not there.
        let text = serde_json::to_string(&expected).unwrap();
        for name in ["\"c\"", "\"twin\"", "\"second\"", "\"w1\"", "\"w2\"", "\"g1\"", "\"written\""] {
            assert!(text.contains(name), "{name} is served");
        }
        assert!(!text.contains("\"team\""), "the team namespace is gone with its objects");

        // Watches: from the snapshot's resourceVersion on, the same events; from before it, the
        // process that started from the snapshot has none to give and says 410.
        commit(&remote, &[("default/d.yaml", Some(configmap("d", "1"))), ("elsewhere/a.yaml", None)], "one more");
        git(&tmp.path().join("copy.git"), &["fetch", "--quiet", "origin", "+refs/heads/main:refs/heads/main"]);
        full.sync().await.unwrap();
        from_snapshot.sync().await.unwrap();
        let events = |store: &gitbacked::GitStore, rv: u64| {
            let api: Api<ConfigMap> = Api::all(store.client());
            async move {
                let stream = api.watch(&WatchParams::default().timeout(1), &rv.to_string()).await.unwrap();
                let events: Vec<WatchEvent<ConfigMap>> = stream.try_collect().await.unwrap();
                events
                    .into_iter()
                    .map(|e| match e {
                        WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                            (o.metadata.name.unwrap(), o.metadata.resource_version.unwrap())
                        }
                        WatchEvent::Error(status) => (format!("error {}", status.code), String::new()),
                        WatchEvent::Bookmark(_) => ("bookmark".into(), String::new()),
                    })
                    .collect::<Vec<_>>()
            }
        };
        let after = events(&full, at_snapshot).await;
        assert!(after.iter().any(|(n, _)| n == "d") && after.iter().any(|(n, _)| n == "c"), "{after:?}");
        assert_eq!(events(&from_snapshot, at_snapshot).await, after);
        assert!(!events(&full, at_snapshot - 1).await.is_empty());
        assert_eq!(events(&from_snapshot, at_snapshot - 1).await, [("error 410".to_string(), String::new())]);
        // And it keeps serving the same after that commit.
        assert_eq!(served(&from_snapshot).await, served(&full).await);
        full.close().await.unwrap();
        from_snapshot.close().await.unwrap();
    })
    .await;
}

/// Commits `file` (the snapshot of the root) with `content` on top of the remote's snapshot ref.
fn replace_snapshot(remote: &Remote, content: &[u8]) {
    let dir = remote.path();
    let blob_file = remote.dir().join("blob");
    std::fs::write(&blob_file, content).unwrap();
    let blob = git(&dir, &["hash-object", "-w", blob_file.to_str().unwrap()]);
    let tree = git_with_input(&dir, &["mktree"], format!("100644 blob {}\tsnapshot-\n", blob.trim()).as_bytes());
    let parent = snapshot_tip(remote).unwrap();
    let commit = git(&dir, &["commit-tree", tree.trim(), "-p", &parent, "-m", "a snapshot of another kind"]);
    git(&dir, &["update-ref", SNAPSHOT_REF, commit.trim(), &parent]);
}

#[tokio::test]
async fn a_damaged_snapshot_or_one_of_a_commit_not_on_the_branch_is_ignored() {
    within(180, async {
        let remote = Remote::new();
        history_before(&remote);
        write_snapshot(&remote).await;
        history_after(&remote);
        let tmp = tempfile::tempdir().unwrap();
        let full = open_cached(&without_snapshots(&remote, tmp.path()), &tmp.path().join("full")).await;
        let expected = served(&full).await;
        full.close().await.unwrap();

        // A damaged snapshot: its bytes with one flipped, then plain garbage.
        let good = git(&remote.path(), &["rev-parse", &format!("{SNAPSHOT_REF}:snapshot-")]);
        let mut bytes = git_bytes(&remote.path(), &["cat-file", "blob", good.trim()]);
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        for (n, content) in [bytes, b"garbage".to_vec()].into_iter().enumerate() {
            replace_snapshot(&remote, &content);
            let cache = tmp.path().join(format!("damaged-{n}"));
            let store = open_cached(&remote.url(), &cache).await;
            assert!(holds_root(&cache, &remote), "the history was replayed");
            assert_eq!(served(&store).await, expected, "damaged snapshot {n}");
            store.close().await.unwrap();
        }

        // A snapshot of another history: its commit is not on this branch.
        let other = Remote::new();
        history_before(&other);
        write_snapshot(&other).await;
        let foreign = git(&other.path(), &["rev-parse", &format!("{SNAPSHOT_REF}:snapshot-")]);
        let foreign = git_bytes(&other.path(), &["cat-file", "blob", foreign.trim()]);
        replace_snapshot(&remote, &foreign);
        let cache = tmp.path().join("foreign");
        let store = open_cached(&remote.url(), &cache).await;
        assert!(holds_root(&cache, &remote), "the history was replayed");
        assert_eq!(served(&store).await, expected, "a snapshot of a commit not on the branch");
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn writers_keep_the_snapshot_ref_a_fast_forward_chain_out_of_the_branch() {
    within(120, async {
        let remote = Remote::new();
        history_before(&remote);
        let writer = open_with(&remote, gitbacked::Options { snapshot_every: 2, ..options() }).await;
        let api: Api<ConfigMap> = Api::namespaced(writer.client(), "default");
        let create = |name: String| {
            let api = api.clone();
            async move {
                let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
                api.create(&PostParams::default(), &cm).await.unwrap();
            }
        };
        create("w0".into()).await;
        eventually("a first snapshot", || snapshot_tip(&remote).is_some()).await;
        let first = snapshot_tip(&remote).unwrap();
        for i in 1..5 {
            create(format!("w{i}")).await;
        }
        eventually("a second snapshot", || snapshot_tip(&remote).is_some_and(|t| t != first)).await;
        writer.close().await.unwrap();
        // The second is a commit on top of the first: the ref was never forced.
        let chain = git(&remote.path(), &["rev-list", "--first-parent", SNAPSHOT_REF]);
        assert!(chain.lines().count() >= 2 && chain.lines().any(|c| c == first), "{chain}");
        // The branch does not show it: a person's clone has no snapshot in its files.
        assert!(!remote.files().iter().any(|f| f.contains("snapshot")), "{:?}", remote.files());
    })
    .await;
}

#[tokio::test]
async fn closing_the_store_waits_for_the_snapshot_being_written() {
    within(60, async {
        let remote = Remote::new();
        history_before(&remote);
        let writer = open_with(&remote, gitbacked::Options { snapshot_every: 1, ..options() }).await;
        let api: Api<ConfigMap> = Api::namespaced(writer.client(), "default");
        let written: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "last"}})).unwrap();
        // The push that lands the write starts a snapshot before the write is answered.
        api.create(&PostParams::default(), &written).await.unwrap();
        writer.close().await.unwrap();
        let at_close = snapshot_tip(&remote);
        assert!(at_close.is_some(), "the snapshot under way was pushed before close returned");
        // Nothing of the closed store pushes afterwards.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(snapshot_tip(&remote), at_close);
    })
    .await;
}

/// Runs git in `dir` and returns its output as bytes.
fn git_bytes(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = try_git(dir, args);
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The person commits files (`None` removes one).
fn commit(remote: &Remote, files: &[(&str, Option<String>)], message: &str) {
    let staged: Vec<(&str, Option<&str>)> = files.iter().map(|(p, c)| (*p, c.as_deref())).collect();
    remote.commit(&staged, message);
}
