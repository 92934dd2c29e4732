//! Git citizenship (issue 14): writes through the API change only what changed in a person's
//! files. Comments, indentation, quotes, flow maps, key order and the neighbouring documents stay
//! byte for byte; a write that changes nothing commits nothing.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::support::{Remote, metrics, open, within};

/// A person's file: a Deployment written their way, and a ConfigMap after it.
const PERSON: &str = r#"# The web front end. Owned by the web team.
apiVersion: apps/v1
kind: Deployment
metadata:
    name: "web"
    labels: {app: web, tier: "front"}   # the selector below matches these
spec:
    replicas: 2 # raised for the launch
    selector:
        matchLabels: {app: web}

    # The pods.
    template:
        metadata:
            labels: {app: web, tier: "front"}
        spec:
            containers:
                - name: "web"
                  image: "registry.example.com/web:1.4.2"
                  args: ["--port", "8080"]
                  resources:
                      limits: {memory: "512Mi"}
---
# Settings, kept next to the workload.
apiVersion: v1
kind: ConfigMap
metadata:
    name: web-settings
data:
    mode: "0644"
"#;

const JSON_FILE: &str = "{\n    \"apiVersion\": \"v1\",\n    \"kind\": \"ConfigMap\",\n    \"metadata\": {\n        \"name\": \"flags\"\n    },\n    \"data\": {\n        \"beta\": \"off\",\n        \"color\": \"blue\"\n    }\n}\n";

/// The lines removed and added between two versions of a file (one hunk: the common head and
/// tail are left out).
fn hunk(before: &str, after: &str) -> (Vec<String>, Vec<String>) {
    let (a, b): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let room = a.len().min(b.len()) - head;
    let tail = a.iter().rev().zip(b.iter().rev()).take(room).take_while(|(x, y)| x == y).count();
    let owned = |lines: &[&str]| lines.iter().map(|l| l.to_string()).collect();
    (owned(&a[head..a.len() - tail]), owned(&b[head..b.len() - tail]))
}

fn lines(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|l| l.to_string()).collect()
}

#[tokio::test]
async fn writes_change_only_what_changed() {
    within(90, async {
        let remote = Remote::new();
        remote.commit(&[("apps/web.yaml", Some(PERSON)), ("apps/flags.json", Some(JSON_FILE))], "by hand");
        let store = open(&remote).await;
        let deployments: Api<Deployment> = Api::namespaced(store.client(), "default");
        let configmaps: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let params = PatchParams::default();
        let neighbour = &PERSON[PERSON.find("---").unwrap()..];

        // One value: one line, its comment kept; the namespace stays implicit.
        deployments.patch("web", &params, &Patch::Merge(json!({"spec": {"replicas": 3}}))).await.unwrap();
        let file = remote.must_file("apps/web.yaml");
        assert_eq!(
            hunk(PERSON, &file),
            (lines(&["    replicas: 2 # raised for the launch"]), lines(&["    replicas: 3 # raised for the launch"]))
        );

        // Counted as a document edited in place (`gitbacked_documents_written`).
        let edited = metrics(&store).await;
        assert!(
            edited.lines().any(|l| l.starts_with("gitbacked_documents_written_total{how=\"edited\"} ")),
            "{edited}"
        );
        assert!(!edited.contains("how=\"written-anew\""), "{edited}");

        // A label goes into the flow map it joins.
        let before = file;
        deployments
            .patch("web", &params, &Patch::Merge(json!({"metadata": {"labels": {"team": "web"}}})))
            .await
            .unwrap();
        let file = remote.must_file("apps/web.yaml");
        assert_eq!(
            hunk(&before, &file),
            (
                lines(&[r#"    labels: {app: web, tier: "front"}   # the selector below matches these"#]),
                lines(&[r#"    labels: {app: web, tier: "front", team: web}   # the selector below matches these"#])
            )
        );

        // A status goes last, in the file's indentation; the next one changes only its lines.
        let before = file;
        let status = json!({"status": {"observedGeneration": 2, "replicas": 3, "readyReplicas": 1}});
        deployments.patch_status("web", &params, &Patch::Merge(status)).await.unwrap();
        let file = remote.must_file("apps/web.yaml");
        let added = "status:\n    observedGeneration: 2\n    readyReplicas: 1\n    replicas: 3\n";
        let (removed, added_lines) = hunk(&before, &file);
        assert!(removed.is_empty(), "{file}");
        assert_eq!(added_lines.len(), 4, "{file}");
        assert!(file.starts_with(&before[..before.find("---").unwrap()]), "{file}");
        for line in added.lines() {
            assert!(added_lines.iter().any(|l| l == line), "{line:?} not in {added_lines:?}");
        }
        assert_eq!(added_lines[0], "status:");
        let before = file;
        deployments.patch_status("web", &params, &Patch::Merge(json!({"status": {"readyReplicas": 3}}))).await.unwrap();
        let file = remote.must_file("apps/web.yaml");
        assert_eq!(hunk(&before, &file), (lines(&["    readyReplicas: 1"]), lines(&["    readyReplicas: 3"])));

        // The neighbouring document is untouched, byte for byte, and the namespace stays implicit.
        assert!(file.ends_with(neighbour), "{file}");
        assert!(!file.contains("namespace"), "{file}");

        // Its own write: the quotes of a value that needs them are kept.
        let before = file;
        configmaps.patch("web-settings", &params, &Patch::Merge(json!({"data": {"mode": "0600"}}))).await.unwrap();
        let file = remote.must_file("apps/web.yaml");
        assert_eq!(hunk(&before, &file), (lines(&[r#"    mode: "0644""#]), lines(&[r#"    mode: "0600""#])));

        // JSON keeps its indentation and key order.
        configmaps.patch("flags", &params, &Patch::Merge(json!({"data": {"beta": "on"}}))).await.unwrap();
        let json_file = remote.must_file("apps/flags.json");
        assert_eq!(
            hunk(JSON_FILE, &json_file),
            (lines(&[r#"        "beta": "off","#]), lines(&[r#"        "beta": "on","#]))
        );

        // A write that changes nothing commits nothing, and leaves the bytes alone.
        let commits = remote.commit_count();
        deployments.patch("web", &params, &Patch::Merge(json!({"spec": {"replicas": 3}}))).await.unwrap();
        configmaps.patch("flags", &params, &Patch::Merge(json!({"data": {"beta": "on"}}))).await.unwrap();
        assert_eq!(remote.commit_count(), commits, "nothing committed");
        assert_eq!(remote.must_file("apps/web.yaml"), file);
        store.close().await.unwrap();
    })
    .await;
}

/// The files on the remote's status ref.
fn status_ref_files(remote: &Remote) -> Vec<String> {
    let out = gitbacked_test_support::try_git(
        &remote.path(),
        &["ls-tree", "-r", "--name-only", "refs/gitbacked/status/main"],
    );
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

/// The status ref's document of the object in `<kind dir>/<name>.yaml`, as the remote holds it.
fn on_status_ref(remote: &Remote, kind_dir: &str, name: &str) -> Option<String> {
    let path = status_ref_files(remote)
        .into_iter()
        .find(|p| p.starts_with(kind_dir) && p.ends_with(&format!("/{name}.yaml")))?;
    Some(gitbacked_test_support::git(&remote.path(), &["show", &format!("refs/gitbacked/status/main:{path}")]))
}

#[tokio::test]
async fn status_and_managed_fields_on_the_status_ref_leave_the_branch_to_people() {
    use futures::StreamExt;
    use gitbacked::Placement;
    use kube::api::DeleteParams;
    within(120, async {
        let remote = Remote::new();
        remote.commit(&[("apps/web.yaml", Some(PERSON))], "by hand");
        let on_ref = || gitbacked::Options {
            status: Placement::Ref,
            managed_fields: Placement::Ref,
            ..crate::support::options()
        };
        let store = crate::support::open_with(&remote, on_ref()).await;
        let deployments: Api<Deployment> = Api::namespaced(store.client(), "default");
        let configmaps: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let params = PatchParams::default();
        let commits = remote.commit_count();

        // A status write: no commit on the branch, the person's file untouched; one on the ref.
        let status = json!({"status": {"observedGeneration": 1, "replicas": 2, "readyReplicas": 1}});
        let written = deployments.patch_status("web", &params, &Patch::Merge(status)).await.unwrap();
        assert_eq!(written.status.as_ref().and_then(|s| s.ready_replicas), Some(1));
        assert_eq!(remote.commit_count(), commits, "{:?}", remote.log());
        assert_eq!(remote.must_file("apps/web.yaml"), PERSON);
        assert_eq!(remote.log_of("refs/gitbacked/status/main").len(), 1);
        let document = on_status_ref(&remote, "default/deployments.apps/", "web").expect("the status is on the ref");
        assert!(document.contains("readyReplicas: 1") && document.contains(written.metadata.uid.as_deref().unwrap()));
        // The served object is the person's document with the ref's status.
        let served = deployments.get("web").await.unwrap();
        assert_eq!(served.spec.as_ref().and_then(|s| s.replicas), Some(2));
        assert_eq!(served.status.as_ref().and_then(|s| s.replicas), Some(2));
        assert_eq!(served.metadata.resource_version, written.metadata.resource_version);

        // A spec change is the branch's, and it bumps the generation; the status stays.
        deployments.patch("web", &params, &Patch::Merge(json!({"spec": {"replicas": 3}}))).await.unwrap();
        assert_eq!(remote.commit_count(), commits + 1);
        assert_eq!(
            hunk(PERSON, &remote.must_file("apps/web.yaml")),
            (lines(&["    replicas: 2 # raised for the launch"]), lines(&["    replicas: 3 # raised for the launch"]))
        );
        let served = deployments.get("web").await.unwrap();
        assert_eq!((served.metadata.generation, served.status.and_then(|s| s.ready_replicas)), (Some(2), Some(1)));

        // Server-side apply: the file holds what was applied, the ownership is on the ref.
        let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app"}, "data": {"a": "1"}});
        let apply = PatchParams::apply("deployer");
        let since = configmaps.list(&Default::default()).await.unwrap().metadata.resource_version.unwrap();
        let mut cm_events = configmaps.watch(&kube::api::WatchParams::default(), &since).await.unwrap().boxed();
        let created = configmaps.patch("app", &apply, &Patch::Apply(&applied)).await.unwrap();
        assert_eq!(created.metadata.managed_fields.as_ref().map(Vec::len), Some(1));
        // Both refs moved in one push, and watchers see one event: the object with its ownership.
        match cm_events.next().await {
            Some(Ok(kube::api::WatchEvent::Added(cm))) => {
                assert_eq!(cm.metadata.managed_fields.as_ref().map(Vec::len), Some(1));
                assert_eq!(cm.metadata.resource_version, created.metadata.resource_version);
            }
            other => panic!("expected the applied ConfigMap, got {other:?}"),
        }
        configmaps.patch("web-settings", &params, &Patch::Merge(json!({"data": {"mode": "0600"}}))).await.unwrap();
        match cm_events.next().await {
            Some(Ok(kube::api::WatchEvent::Modified(cm))) => {
                assert_eq!(cm.metadata.name.as_deref(), Some("web-settings"))
            }
            other => panic!("expected the next write's event, not a second one of the apply: {other:?}"),
        }
        let file = remote.must_file("default/configmaps/app.yaml");
        assert!(!file.contains("managedFields") && file.contains("a: '1'") || file.contains("a: \"1\""), "{file}");
        let ownership = on_status_ref(&remote, "default/configmaps/", "app").expect("the ownership is on the ref");
        assert!(
            ownership.contains("manager: deployer") && ownership.contains(created.metadata.uid.as_deref().unwrap())
        );
        // Applying the same again changes nothing anywhere.
        let (branch, status_commits) = (remote.commit_count(), remote.log_of("refs/gitbacked/status/main").len());
        configmaps.patch("app", &apply, &Patch::Apply(&applied)).await.unwrap();
        assert_eq!(
            (remote.commit_count(), remote.log_of("refs/gitbacked/status/main").len()),
            (branch, status_commits)
        );

        // Another process, pushing with git (an atomic push of both refs), serves the same objects
        // and writes status the first one sees.
        let other = crate::support::open_with(&remote, gitbacked::Options { direct_push: false, ..on_ref() }).await;
        let theirs: Api<Deployment> = Api::namespaced(other.client(), "default");
        let seen = theirs.get("web").await.unwrap();
        assert_eq!(seen.metadata.uid, written.metadata.uid);
        assert_eq!(seen.status.as_ref().and_then(|s| s.ready_replicas), Some(1));
        let theirs_cm: Api<ConfigMap> = Api::namespaced(other.client(), "default");
        assert_eq!(theirs_cm.get("app").await.unwrap().metadata.managed_fields, created.metadata.managed_fields);
        let since = deployments.get("web").await.unwrap().metadata.resource_version.unwrap();
        let mut events = deployments.watch(&kube::api::WatchParams::default(), &since).await.unwrap().boxed();
        theirs.patch_status("web", &params, &Patch::Merge(json!({"status": {"readyReplicas": 3}}))).await.unwrap();
        store.sync().await.unwrap();
        match events.next().await {
            Some(Ok(kube::api::WatchEvent::Modified(d))) => {
                assert_eq!(d.status.and_then(|s| s.ready_replicas), Some(3));
                assert!(d.metadata.resource_version.unwrap().parse::<u64>().unwrap() > since.parse::<u64>().unwrap());
            }
            other => panic!("expected the status change at the watch, got {other:?}"),
        }
        let served = deployments.get("web").await.unwrap();
        assert_eq!(served.status.and_then(|s| s.ready_replicas), Some(3));
        assert_eq!(remote.commit_count(), branch, "status writes never reach the branch");
        // A status write on a stale resourceVersion is refused, and neither ref moves.
        let status_commits = remote.log_of("refs/gitbacked/status/main").len();
        let mut stale = written.clone();
        stale.status.as_mut().unwrap().ready_replicas = Some(9);
        let refused = deployments.replace_status("web", &Default::default(), &stale).await;
        assert_eq!(crate::support::status_of(refused).code, 409);
        assert_eq!(
            (remote.commit_count(), remote.log_of("refs/gitbacked/status/main").len()),
            (branch, status_commits)
        );

        // A create with its status and ownership through the other process, then a delete: both
        // refs move together, and nothing of the object is left on either.
        let temp = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "temp"}, "data": {"k": "v"}});
        let made = theirs_cm.patch("temp", &PatchParams::apply("maker"), &Patch::Apply(&temp)).await.unwrap();
        let document = on_status_ref(&remote, "default/configmaps/", "temp").expect("created with its ownership");
        assert!(document.contains(made.metadata.uid.as_deref().unwrap()), "{document}");
        assert!(on_status_ref(&remote, "default/configmaps/", "temp").is_some(), "{:?}", status_ref_files(&remote));
        theirs_cm.delete("temp", &DeleteParams::default()).await.unwrap();
        assert!(on_status_ref(&remote, "default/configmaps/", "temp").is_none(), "{:?}", status_ref_files(&remote));
        assert!(!remote.files().iter().any(|f| f.ends_with("/temp.yaml")));
        other.close().await.unwrap();

        // A restart reads the ref again.
        store.close().await.unwrap();
        let store = crate::support::open_with(&remote, on_ref()).await;
        let deployments: Api<Deployment> = Api::namespaced(store.client(), "default");
        let served = deployments.get("web").await.unwrap();
        assert_eq!(served.status.and_then(|s| s.ready_replicas), Some(3));
        assert_eq!(served.metadata.uid, written.metadata.uid);
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn managed_fields_go_into_the_file_when_asked() {
    within(60, async {
        let remote = Remote::new();
        remote.commit(&[("apps/web.yaml", Some(PERSON))], "by hand");
        let inline = gitbacked::Options { managed_fields: gitbacked::Placement::Inline, ..crate::support::options() };
        let store = crate::support::open_with(&remote, inline).await;
        let configmaps: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-settings"},
                             "data": {"mode": "0644"}});
        configmaps.patch("web-settings", &PatchParams::apply("deployer"), &Patch::Apply(&applied)).await.unwrap();
        let file = remote.must_file("apps/web.yaml");
        assert!(file.contains("managedFields:") && file.contains("manager: deployer"), "{file}");
        assert!(status_ref_files(&remote).is_empty(), "nothing on the status ref");
        store.close().await.unwrap();
    })
    .await;
}
