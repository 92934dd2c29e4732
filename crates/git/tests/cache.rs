//! The parse cache in the cache directory: a restart reads the files it knows from it, and serves
//! exactly what a cold start serves, even when the cache file is damaged.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gitbacked_core::GroupKind;
use gitbacked_git::mirror::credentials::Credentials;
use gitbacked_git::{Config, GitStorage};
use gitbacked_test_support::Remote;

/// A storage on a remote, with its sync loops.
struct Opened {
    storage: GitStorage,
    tasks: [tokio::task::JoinHandle<()>; 2],
    _tmp: Option<tempfile::TempDir>,
}

impl Opened {
    async fn close(self) {
        self.storage.shutdown().await;
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

/// Opens a storage on `remote`; with `cache`, the mirror and its parse cache live there.
async fn open_at(remote: &Remote, cache: Option<&Path>) -> Opened {
    let tmp = cache.is_none().then(|| tempfile::tempdir().unwrap());
    let mirror_dir = cache.map(Path::to_path_buf).unwrap_or_else(|| tmp.as_ref().unwrap().path().join("mirror.git"));
    let config = Config {
        url: remote.path().display().to_string(),
        branch: None,
        create_branch: false,
        subdirectory: String::new(),
        mirror_dir,
        parse_cache: cache.is_some(),
        credentials: Credentials::default(),
        interval: Duration::from_millis(100),
        author: Default::default(),
        sign_commits: false,
        write_timeout: Duration::from_secs(20),
        event_ttl: Duration::from_secs(3600),
        event_limits: Default::default(),
        watch_window: 100_000,
        direct_push: true,
        pushes_in_flight: 4,
        bookkeeping: Default::default(),
        snapshot_every: 0,
    };
    let mut metrics = prometheus_client::registry::Registry::default();
    let (storage, tasks) = GitStorage::open(config, &mut metrics).await.expect("storage opens");
    Opened { storage, tasks, _tmp: tmp }
}

async fn open(remote: &Remote) -> Opened {
    open_at(remote, None).await
}

fn configmap(name: &str, data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n  key: \"{data}\"\n"
    )
}

async fn within<F: std::future::Future>(secs: u64, body: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), body).await.expect("the test finishes in time")
}

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.dev\nspec:\n  group: example.dev\n  scope: Namespaced\n  names: {plural: widgets, singular: widget, kind: Widget}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}\n";
const LIST: &str = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: s1, namespace: default}, stringData: {a: b}}\n- {apiVersion: v1, kind: Secret, metadata: {name: s2, namespace: default}}\n";
const BROKEN: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep\n  namespace: default\ndata: [unclosed\n";

/// A history with what the parse results carry: several documents and lists in a file, a JSON file,
/// two documents claiming one object, a CRD and its objects, and a file that broke after a commit.
fn remote() -> Remote {
    let remote = Remote::new();
    let multi = format!("{}---\n{}", configmap("m1", "one"), configmap("m2", "cache-canary"));
    remote.commit(
        &[
            ("a/multi.yaml", Some(&multi)),
            ("a/list.yaml", Some(LIST)),
            ("a/cm.json", Some(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"j","namespace":"default"}}"#)),
            ("b/dup1.yaml", Some(&configmap("dup", "first"))),
            ("b/dup2.yaml", Some(&configmap("dup", "second"))),
            ("c/widget.yaml", Some("apiVersion: example.dev/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: default\nspec: {size: 3}\n")),
            ("crd.yaml", Some(CRD)),
            ("broken.yaml", Some(&configmap("keep", "as-it-was"))),
        ],
        "objects",
    );
    let changed = format!("{}---\n{}", configmap("m1", "changed"), configmap("m2", "cache-canary"));
    remote.commit(&[("broken.yaml", Some(BROKEN)), ("a/multi.yaml", Some(&changed))], "changes");
    remote
}

/// Everything a store serves from git: objects, watch events, counters and reported problems.
fn served(opened: &Opened) -> String {
    let store = opened.storage.branch_store();
    let kinds = [
        ("", "ConfigMap"),
        ("", "Secret"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("example.dev", "Widget"),
    ];
    let mut out =
        format!("revision {} {:?} {:?} {:?}\n", store.revision(), store.tip(), store.stats(), store.invalid_files());
    for (group, kind) in kinds {
        let (_, objects) = store.list(&GroupKind { group: group.into(), kind: kind.into() }, None);
        for o in objects {
            out.push_str(&format!("{:?} {}\n", o.location, String::from_utf8_lossy(&o.json())));
        }
    }
    for e in store.events_since(0).unwrap().iter() {
        out.push_str(&format!("{} {} {}\n", e.kind.as_str(), e.revision(), e.object.key));
    }
    out
}

fn cache_file(mirror: &Path) -> PathBuf {
    mirror.join("gitbacked-parse-cache")
}

/// Opens, records what is served, and closes.
async fn serve_once(remote: &Remote, cache: &Path) -> String {
    let store = open_at(remote, Some(cache)).await;
    let served = served(&store);
    store.close().await;
    served
}

#[tokio::test]
async fn a_restart_on_the_parse_cache_serves_what_a_cold_start_does() {
    within(60, async {
        let remote = remote();
        let cold = open(&remote).await;
        let expected = served(&cold);
        cold.close().await;
        assert!(
            expected.contains("cache-canary") && expected.contains("as-it-was") && !expected.contains("\"second\""),
            "{expected}"
        );

        let dir = tempfile::tempdir().unwrap();
        let mirror = dir.path().join("mirror.git");
        assert_eq!(serve_once(&remote, &mirror).await, expected);
        let written = std::fs::read(cache_file(&mirror)).unwrap();
        assert!(written.windows(12).any(|w| w == b"cache-canary"), "the parse results are in the cache");

        assert_eq!(serve_once(&remote, &mirror).await, expected);
        // Every file came from the cache: a file parsed again would have been appended.
        assert_eq!(std::fs::read(cache_file(&mirror)).unwrap(), written);

        // New commits while stopped: their files are parsed and added.
        remote.commit(&[("a/new.yaml", Some(&configmap("new", "later")))], "more");
        let cold = open(&remote).await;
        let expected = served(&cold);
        cold.close().await;
        assert_eq!(serve_once(&remote, &mirror).await, expected);
        assert!(std::fs::read(cache_file(&mirror)).unwrap().len() > written.len());
    })
    .await;
}

#[tokio::test]
async fn a_damaged_parse_cache_is_ignored_from_the_damage_on() {
    within(60, async {
        let remote = remote();
        let cold = open(&remote).await;
        let expected = served(&cold);
        cold.close().await;

        let dir = tempfile::tempdir().unwrap();
        let mirror = dir.path().join("mirror.git");
        serve_once(&remote, &mirror).await;
        let file = cache_file(&mirror);
        let mut bytes = std::fs::read(&file).unwrap();
        let complete = bytes.len();

        // A changed value inside a record, as a bad disk would: the checksum no longer matches.
        let at = bytes.windows(12).position(|w| w == b"cache-canary").unwrap();
        bytes[at] = b'C';
        std::fs::write(&file, &bytes).unwrap();
        let served_now = serve_once(&remote, &mirror).await;
        assert_eq!(served_now, expected);
        assert!(!served_now.contains("Cache-canary"));
        assert_eq!(std::fs::read(&file).unwrap().len(), complete, "the dropped records are written again");

        // A torn write at the end (kill -9), then garbage.
        let mut bytes = std::fs::read(&file).unwrap();
        bytes.truncate(bytes.len() - 5);
        bytes.extend_from_slice(b"\xff\xff\xff\x7fgarbage");
        std::fs::write(&file, &bytes).unwrap();
        assert_eq!(serve_once(&remote, &mirror).await, expected);

        // Not a cache at all.
        std::fs::write(&file, b"something else entirely").unwrap();
        assert_eq!(serve_once(&remote, &mirror).await, expected);
        assert_eq!(serve_once(&remote, &mirror).await, expected);
    })
    .await;
}

#[tokio::test]
async fn a_rewritten_history_is_read_through_the_parse_cache() {
    within(60, async {
        let remote = remote();
        let dir = tempfile::tempdir().unwrap();
        let mirror = dir.path().join("mirror.git");
        let store = open_at(&remote, Some(&mirror)).await;

        // A force-push while the store runs: the whole new history is read again.
        remote.amend(&[("a/amended.yaml", Some(&configmap("amended", "yes")))], "changes, amended");
        store.storage.sync_now().await.unwrap();
        let configmaps = GroupKind { group: String::new(), kind: "ConfigMap".into() };
        assert!(store.storage.branch_store().list(&configmaps, None).1.iter().any(|o| o.key.name == "amended"));
        store.close().await;
        let written = std::fs::read(cache_file(&mirror)).unwrap();

        let cold = open(&remote).await;
        let expected = served(&cold);
        cold.close().await;
        assert_eq!(serve_once(&remote, &mirror).await, expected);
        // Every blob of both histories was written once, and found again.
        assert_eq!(std::fs::read(cache_file(&mirror)).unwrap(), written);
    })
    .await;
}
