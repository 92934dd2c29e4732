//! The repository side: restarts, several writers on one remote, files a person gets wrong,
//! multi-document files, paths that try to leave the repository, and CRDs arriving by commit.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::json;

use crate::support::{Remote, configmap, git, open, open_with, options, status_of, within};

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"key": value}})).unwrap()
}

fn names(list: &[ConfigMap]) -> Vec<String> {
    list.iter().map(|c| c.metadata.name.clone().unwrap()).collect()
}

fn value_of(c: &ConfigMap) -> String {
    c.data.as_ref().unwrap()["key"].clone()
}

fn set_value(c: &mut ConfigMap, value: &str) {
    c.data.get_or_insert_with(Default::default).insert("key".into(), value.into());
}

/// Two stores on one remote, as two processes would open it, with a ConfigMap API on each.
async fn two_writers(remote: &Remote) -> (gitbacked::GitStore, gitbacked::GitStore, Api<ConfigMap>, Api<ConfigMap>) {
    let (one, two) = (open(remote).await, open(remote).await);
    let (api1, api2) = (Api::namespaced(one.client(), "default"), Api::namespaced(two.client(), "default"));
    (one, two, api1, api2)
}

#[tokio::test]
async fn a_restart_keeps_uids_and_resource_versions() {
    within(60, async {
        let remote = Remote::new();
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let a = api.create(&PostParams::default(), &cm("a", "1")).await.unwrap();
        let b = api.create(&PostParams::default(), &cm("b", "1")).await.unwrap();
        let mut b2 = b.clone();
        set_value(&mut b2, "2");
        let b2 = api.replace("b", &PostParams::default(), &b2).await.unwrap();
        let revision = store.report().resource_version;
        store.close().await.unwrap();

        // A new process with a fresh cache derives the same metadata from the same history.
        let cache = tempfile::tempdir().unwrap();
        let reopened =
            open_with(&remote, gitbacked::Options { cache_dir: Some(cache.path().join("mirror.git")), ..options() })
                .await;
        assert_eq!(reopened.report().resource_version, revision);
        let api: Api<ConfigMap> = Api::namespaced(reopened.client(), "default");
        for (before, name) in [(&a, "a"), (&b2, "b")] {
            let after = api.get(name).await.unwrap();
            assert_eq!(after.metadata.uid, before.metadata.uid, "{name}");
            assert_eq!(after.metadata.resource_version, before.metadata.resource_version, "{name}");
            assert_eq!(after.metadata.creation_timestamp, before.metadata.creation_timestamp, "{name}");
            assert_eq!(after.data, before.data, "{name}");
        }

        // An update carrying the resourceVersion read before the restart still applies.
        let mut stale = a.clone();
        set_value(&mut stale, "from-before-the-restart");
        let updated = api.replace("a", &PostParams::default(), &stale).await.unwrap();
        assert_eq!(updated.metadata.uid, a.metadata.uid);
        assert_ne!(updated.metadata.resource_version, a.metadata.resource_version);
        assert!(remote.file("default/configmaps/a.yaml").unwrap().contains("from-before-the-restart"));
        let after_update = updated.metadata.resource_version.clone();
        reopened.close().await.unwrap();

        // Reopening on the kept cache agrees too.
        let again =
            open_with(&remote, gitbacked::Options { cache_dir: Some(cache.path().join("mirror.git")), ..options() })
                .await;
        let api: Api<ConfigMap> = Api::namespaced(again.client(), "default");
        let a3 = api.get("a").await.unwrap();
        assert_eq!(a3.metadata.resource_version, after_update);
        assert_eq!(a3.metadata.uid, a.metadata.uid);
        again.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn two_writers_on_one_object_one_wins_the_other_conflicts() {
    within(60, async {
        let remote = Remote::new();
        let (one, two, api1, api2) = two_writers(&remote).await;
        api1.create(&PostParams::default(), &cm("shared", "0")).await.unwrap();
        two.sync().await.unwrap();

        let mut o1 = api1.get("shared").await.unwrap();
        let mut o2 = api2.get("shared").await.unwrap();
        assert_eq!(o1.metadata.resource_version, o2.metadata.resource_version);
        set_value(&mut o1, "one");
        set_value(&mut o2, "two");
        let commits = remote.commit_count();
        let pp = PostParams::default();
        let (r1, r2) = tokio::join!(api1.replace("shared", &pp, &o1), api2.replace("shared", &pp, &o2));
        let (winner, loser) = match (r1, r2) {
            (Ok(w), Err(e)) => (w, Err::<ConfigMap, _>(e)),
            (Err(e), Ok(w)) => (w, Err(e)),
            (r1, r2) => panic!("expected exactly one success: {r1:?} / {r2:?}"),
        };
        let status = status_of(loser);
        assert!(status.is_conflict(), "{status:?}");
        assert_eq!(status.reason, "Conflict");
        assert_eq!(status.code, 409);

        assert_eq!(remote.commit_count(), commits + 1, "exactly one update commit: {:?}", remote.log());
        assert_eq!(remote.log()[0], "update v1 ConfigMap default/shared");
        let file = remote.file("default/configmaps/shared.yaml").unwrap();
        // The person's quotes are kept (issue 14).
        assert!(file.contains(&format!("key: \"{}\"", value_of(&winner))), "{file}");
        one.close().await.unwrap();
        two.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn two_writers_on_different_objects_both_land() {
    within(60, async {
        let remote = Remote::new();
        let one = open(&remote).await;
        let api1: Api<ConfigMap> = Api::namespaced(one.client(), "default");
        for name in ["x", "y", "p", "q"] {
            api1.create(&PostParams::default(), &cm(name, "0")).await.unwrap();
        }
        // The second writer does not poll: it learns about the first one's commits only when its
        // own push is rejected.
        let two = open_with(&remote, gitbacked::Options { interval: Duration::from_secs(3600), ..options() }).await;
        let api2: Api<ConfigMap> = Api::namespaced(two.client(), "default");
        let pp = PostParams::default();

        // Concurrently.
        let mut x = api1.get("x").await.unwrap();
        let mut y = api2.get("y").await.unwrap();
        set_value(&mut x, "x-one");
        set_value(&mut y, "y-two");
        let (rx, ry) = tokio::join!(api1.replace("x", &pp, &x), api2.replace("y", &pp, &y));
        rx.unwrap();
        ry.unwrap();

        // Deterministically: the second writer is behind, its push is rejected and replayed.
        let mut p = api1.get("p").await.unwrap();
        let mut q = api2.get("q").await.unwrap();
        set_value(&mut p, "p-one");
        api1.replace("p", &pp, &p).await.unwrap();
        set_value(&mut q, "q-two");
        let q2 = api2.replace("q", &pp, &q).await.unwrap();
        assert_eq!(value_of(&q2), "q-two");
        // The replayed write was made on top of the first writer's commit.
        assert_eq!(value_of(&api2.get("p").await.unwrap()), "p-one", "the second store caught up while replaying");

        let log = remote.log();
        for subject in [
            "update v1 ConfigMap default/x",
            "update v1 ConfigMap default/y",
            "update v1 ConfigMap default/p",
            "update v1 ConfigMap default/q",
        ] {
            assert_eq!(log.iter().filter(|s| *s == subject).count(), 1, "{subject} in {log:?}");
        }
        assert_eq!(log[0], "update v1 ConfigMap default/q");
        assert!(git(&remote.path(), &["log", "--merges", "--format=%H", "main"]).is_empty(), "history stays linear");
        for (name, value) in [("x", "x-one"), ("y", "y-two"), ("p", "p-one"), ("q", "q-two")] {
            let file = remote.file(&format!("default/configmaps/{name}.yaml")).unwrap();
            assert!(file.contains(&format!("key: \"{value}\"")), "{name}: {file}");
        }
        one.sync().await.unwrap();
        two.sync().await.unwrap();
        for api in [&api1, &api2] {
            let all = api.list(&ListParams::default()).await.unwrap().items;
            let values: Vec<String> = all.iter().map(value_of).collect();
            assert_eq!(values, ["p-one", "q-two", "x-one", "y-two"]);
        }
        one.close().await.unwrap();
        two.close().await.unwrap();
    })
    .await;
}

const BROKEN: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndata: [unclosed\n";

#[tokio::test]
async fn broken_yaml_is_skipped_and_reported() {
    within(60, async {
        let remote = Remote::new();
        remote.commit(&[("apps/good.yaml", Some(&configmap("good", "1")))], "good");
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");

        // Line 1-7: m1, 8: ---, 9-12: broken document (error at 12 or 13), 13: ---, 14-: m3.
        let multi = format!(
            "{}---\nkind: ConfigMap\nmetadata:\n  name: [nope\n  x: }}\n---\n{}",
            configmap("m1", "1"),
            configmap("m3", "3")
        );
        remote.commit(
            &[
                ("apps/bad.yaml", Some(BROKEN)),
                ("apps/multi.yaml", Some(&multi)),
                ("apps/other.yaml", Some(&configmap("other", "2"))),
            ],
            "a person's mistakes",
        );
        store.sync().await.unwrap();
        let served = api.list(&ListParams::default()).await.unwrap().items;
        assert_eq!(names(&served), ["good", "m1", "m3", "other"]);

        let invalid = store.report().invalid_files;
        let files: Vec<&str> = invalid.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(files, ["apps/bad.yaml", "apps/multi.yaml"], "{invalid:?}");
        let bad_line = invalid[0].problems[0].0;
        assert!((5..=6).contains(&bad_line), "{invalid:?}");
        assert_eq!(invalid[1].problems.len(), 1, "{invalid:?}");
        let multi_line = invalid[1].problems[0].0;
        assert!((9..=13).contains(&multi_line), "{invalid:?}");
        assert_eq!(store.report().invalid_files.len(), 2);

        // Later commits keep syncing.
        remote.commit(&[("apps/later.yaml", Some(&configmap("later", "x")))], "later");
        store.sync().await.unwrap();
        assert_eq!(value_of(&api.get("later").await.unwrap()), "x");

        // Fixing the file serves it and clears the report.
        remote.commit(&[("apps/bad.yaml", Some(&configmap("broken", "fixed")))], "fix");
        store.sync().await.unwrap();
        assert_eq!(value_of(&api.get("broken").await.unwrap()), "fixed");
        let files: Vec<String> = store.report().invalid_files.into_iter().map(|f| f.path).collect();
        assert_eq!(files, ["apps/multi.yaml"]);

        // Writes through the API still work next to a file with a broken document.
        let mut m3 = api.get("m3").await.unwrap();
        set_value(&mut m3, "33");
        api.replace("m3", &PostParams::default(), &m3).await.unwrap();
        let text = remote.file("apps/multi.yaml").unwrap();
        assert!(text.contains("name: [nope"), "the broken document is kept: {text}");
        assert!(text.contains("key: '33'") || text.contains("key: \"33\""), "{text}");

        // A store opened on the same history sees the same.
        let other = open(&remote).await;
        let files: Vec<String> = other.report().invalid_files.into_iter().map(|f| f.path).collect();
        assert_eq!(files, ["apps/multi.yaml"]);
        other.close().await.unwrap();

        // A file that breaks keeps serving what it last held: a typo is not a deletion.
        remote.commit(&[("apps/other.yaml", Some("apiVersion: v1\nkind: ConfigMap\nmetadata: [broken\n"))], "typo");
        store.sync().await.unwrap();
        assert_eq!(value_of(&api.get("other").await.unwrap()), "2");
        let files: Vec<String> = store.report().invalid_files.into_iter().map(|f| f.path).collect();
        assert_eq!(files, ["apps/multi.yaml", "apps/other.yaml"]);
        remote.commit(&[("apps/other.yaml", None)], "remove the broken file");
        store.sync().await.unwrap();
        assert!(api.get("other").await.is_err(), "removing the file does delete");
        store.close().await.unwrap();
    })
    .await;
}

const DOC1: &str = "# Maps of the web app.\n# Owned by team A.\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: first  # the first one\n  namespace: default\ndata:\n  key: \"1\"   # keep this comment\n";
const DOC2: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: second\n  namespace: default\ndata:\n  key: \"2\"\n";
const DOC3: &str = "# the third map\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  namespace: default\n  name: third\ndata: {key: \"3\"}  # flow style\n# end of file\n";

#[tokio::test]
async fn updating_one_document_of_a_multi_document_file_leaves_the_others_untouched() {
    within(60, async {
        let remote = Remote::new();
        let text = format!("{DOC1}---\n{DOC2}---\n{DOC3}");
        remote.commit(&[("apps/maps.yaml", Some(&text))], "three maps");
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let listed = api.list(&ListParams::default()).await.unwrap().items;
        assert_eq!(names(&listed), ["first", "second", "third"]);

        let mut second = api.get("second").await.unwrap();
        set_value(&mut second, "22");
        let commits = remote.commit_count();
        api.replace("second", &PostParams::default(), &second).await.unwrap();
        assert_eq!(remote.commit_count(), commits + 1);
        assert_eq!(remote.last_changed_files(), ["apps/maps.yaml"]);
        let new = remote.file("apps/maps.yaml").unwrap();
        let head = format!("{DOC1}---\n");
        let tail = format!("---\n{DOC3}");
        assert!(new.starts_with(&head), "first document changed:\n{new}");
        assert!(new.ends_with(&tail), "third document changed:\n{new}");
        let middle = &new[head.len()..new.len() - tail.len()];
        assert!(middle.contains("name: second") && middle.contains("22"), "{middle}");
        assert!(!middle.contains("resourceVersion") && !middle.contains("uid"), "{middle}");
        assert_eq!(value_of(&api.get("second").await.unwrap()), "22");
        assert_eq!(value_of(&api.get("first").await.unwrap()), "1");
        assert_eq!(value_of(&api.get("third").await.unwrap()), "3");

        // Deleting the middle one keeps its neighbours as they were too.
        api.delete("second", &DeleteParams::default()).await.unwrap();
        let new = remote.file("apps/maps.yaml").unwrap();
        assert!(new.starts_with(&head) && new.ends_with(&tail), "{new}");
        assert!(!new.contains("second"), "{new}");
        let listed = api.list(&ListParams::default()).await.unwrap().items;
        assert_eq!(names(&listed), ["first", "third"]);
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_leading_comment_of_the_rewritten_document_is_kept() {
    within(60, async {
        let remote = Remote::new();
        let text = format!("{DOC1}---\n# about the second map\n{DOC2}---\n{DOC3}");
        remote.commit(&[("apps/maps.yaml", Some(&text))], "three maps");
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let mut second = api.get("second").await.unwrap();
        set_value(&mut second, "22");
        api.replace("second", &PostParams::default(), &second).await.unwrap();
        let new = remote.file("apps/maps.yaml").unwrap();
        assert!(new.starts_with(&format!("{DOC1}---\n# about the second map\n")), "{new}");
        assert!(new.ends_with(&format!("---\n{DOC3}")), "{new}");
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn names_and_namespaces_cannot_escape_the_repository() {
    within(60, async {
        let remote = Remote::new();
        let store = open(&remote).await;
        let client = store.client();
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let commits = remote.log();
        let files = remote.files();

        for name in ["../../etc/passwd", "a/b", "..", "../x", ".git"] {
            let status = status_of(api.create(&PostParams::default(), &cm(name, "x")).await);
            assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"), "{name}: {status:?}");
        }
        // Through a namespace in the URL.
        for ns in ["../x", "..", "a..b", "UPPER"] {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
            let status = status_of(api.create(&PostParams::default(), &cm("ok", "x")).await);
            assert!((400..500).contains(&status.code), "{ns}: {status:?}");
        }
        // Through the namespace in the body.
        let mut body = cm("ok", "x");
        body.metadata.namespace = Some("../x".into());
        let status = status_of(api.create(&PostParams::default(), &body).await);
        assert!((400..500).contains(&status.code), "{status:?}");
        // A Namespace called so.
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "../x"}})).unwrap();
        let status = status_of(namespaces.create(&PostParams::default(), &ns).await);
        assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"), "{status:?}");

        assert_eq!(remote.log(), commits, "nothing was committed");
        assert_eq!(remote.files(), files);
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_subdirectory_confines_reads_and_writes() {
    within(60, async {
        let remote = Remote::new();
        remote.commit(
            &[
                ("clusters/dev/apps/a.yaml", Some(&configmap("a", "dev"))),
                ("clusters/prod/apps/b.yaml", Some(&configmap("b", "prod"))),
                ("c.yaml", Some(&configmap("c", "root"))),
                ("clusters/dev-other/d.yaml", Some(&configmap("d", "sibling"))),
            ],
            "layout",
        );
        let store =
            open_with(&remote, gitbacked::Options { subdirectory: Some("clusters/dev".into()), ..options() }).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let listed = api.list(&ListParams::default()).await.unwrap().items;
        assert_eq!(names(&listed), ["a"]);

        // Commits outside the subdirectory change nothing.
        let revision = store.report().resource_version;
        remote.commit(
            &[("clusters/prod/apps/b.yaml", Some(&configmap("b", "prod2"))), ("e.yaml", Some(&configmap("e", "root")))],
            "elsewhere",
        );
        store.sync().await.unwrap();
        assert_eq!(store.report().resource_version, revision);
        assert_eq!(names(&api.list(&ListParams::default()).await.unwrap().items), ["a"]);

        api.create(&PostParams::default(), &cm("new", "1")).await.unwrap();
        assert_eq!(remote.last_changed_files(), ["clusters/dev/default/configmaps/new.yaml"]);
        let mut a = api.get("a").await.unwrap();
        set_value(&mut a, "dev2");
        api.replace("a", &PostParams::default(), &a).await.unwrap();
        assert_eq!(remote.last_changed_files(), ["clusters/dev/apps/a.yaml"]);
        assert!(remote.file("clusters/prod/apps/b.yaml").unwrap().contains("prod2"));
        assert_eq!(remote.file("default/configmaps/new.yaml"), None);
        store.close().await.unwrap();

        // A subdirectory that tries to leave the repository is refused.
        for bad in ["../x", "clusters/../..", ".git", "a//b"] {
            let opened = gitbacked::GitStore::open(
                &remote.url(),
                gitbacked::Options { subdirectory: Some(bad.into()), ..options() },
            )
            .await;
            assert!(matches!(opened, Err(gitbacked::Error::Options(_))), "{bad}: {:?}", opened.err());
        }
    })
    .await;
}

#[tokio::test]
async fn symlinks_are_not_followed() {
    within(60, async {
        let remote = Remote::new();
        // A host file outside the repository that would be a valid object if it were read.
        let host = tempfile::tempdir().unwrap();
        let outside = host.path().join("leak.yaml");
        std::fs::write(&outside, configmap("leak", "secret")).unwrap();
        remote.commit(&[("apps/ok.yaml", Some(&configmap("ok", "1")))], "ok");
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");

        let outside_path = outside.clone();
        remote.commit_with("symlinks", move |dir| {
            std::os::unix::fs::symlink("/etc/passwd", dir.join("x.yaml")).unwrap();
            std::os::unix::fs::symlink(&outside_path, dir.join("apps/leak.yaml")).unwrap();
            std::os::unix::fs::symlink("ok.yaml", dir.join("apps/twin.yaml")).unwrap();
            std::fs::create_dir_all(dir.join("default/configmaps")).unwrap();
            std::os::unix::fs::symlink(&outside_path, dir.join("default/configmaps/evil.yaml")).unwrap();
        });
        let modes = git(&remote.path(), &["ls-tree", "-r", "main"]);
        assert!(modes.contains("120000"), "symlinks were committed: {modes}");
        store.sync().await.unwrap();
        let listed = api.list(&ListParams::default()).await.unwrap().items;
        assert_eq!(names(&listed), ["ok"]);
        assert!(store.report().invalid_files.is_empty());

        // The store keeps syncing.
        remote.commit(&[("apps/more.yaml", Some(&configmap("more", "2")))], "more");
        store.sync().await.unwrap();
        assert_eq!(names(&api.list(&ListParams::default()).await.unwrap().items), ["more", "ok"]);

        // Creating an object whose file would be the symlink leaves the link as the person put it,
        // writes a regular file in the bucket instead, and never touches what the link points at.
        api.create(&PostParams::default(), &cm("evil", "mine")).await.unwrap();
        let entry = git(&remote.path(), &["ls-tree", "main", "default/configmaps/evil.yaml"]);
        assert!(entry.starts_with("120000"), "{entry}");
        let bucketed = format!("default/configmaps/{}/evil.yaml", gitbacked_git::layout::bucket("evil"));
        let entry = git(&remote.path(), &["ls-tree", "main", &bucketed]);
        assert!(entry.starts_with("100644"), "{entry}");
        let file = remote.file(&bucketed).unwrap();
        assert!(file.contains("key: mine") && !file.contains("leak"), "{file}");
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), configmap("leak", "secret"));
        store.close().await.unwrap();
    })
    .await;
}

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    kind: Widget
    plural: widgets
    singular: widget
    listKind: WidgetList
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

const GADGET_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.tools.example.org
spec:
  group: tools.example.org
  scope: Cluster
  names:
    kind: Gadget
    plural: gadgets
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

fn widget(name: &str, size: u32) -> String {
    format!(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  size: {size}\n"
    )
}

fn widgets_api(client: kube::Client) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"));
    Api::namespaced_with(client, "default", &ar)
}

#[tokio::test]
async fn crds_and_custom_resources_arrive_by_commit() {
    within(60, async {
        let remote = Remote::new();
        let store = open(&remote).await;
        let client = store.client();
        let widgets = widgets_api(client.clone());
        assert_eq!(
            status_of(widgets.list(&ListParams::default()).await).code,
            404
        );

        // The CRD and its resources in one commit.
        remote.commit(
            &[
                ("crds/widgets.yaml", Some(CRD)),
                ("apps/w.yaml", Some(&format!("{}---\n{}", widget("w1", 1), widget("w2", 2)))),
            ],
            "widgets",
        );
        store.sync().await.unwrap();
        let listed = widgets.list(&ListParams::default()).await.unwrap().items;
        let got: Vec<(String, serde_json::Value)> = listed
            .iter()
            .map(|w| (w.metadata.name.clone().unwrap(), w.data["spec"]["size"].clone()))
            .collect();
        assert_eq!(got, [("w1".into(), json!(1)), ("w2".into(), json!(2))]);

        // Written through the API, a custom resource lands in git.
        let w3: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w3"}, "spec": {"size": 3}
        }))
        .unwrap();
        widgets.create(&PostParams::default(), &w3).await.unwrap();
        let file = remote
            .file("default/widgets.example.com/w3.yaml")
            .expect("custom resource committed");
        assert!(file.contains("size: 3"), "{file}");

        // A custom resource pushed before its CRD waits for it.
        remote.commit(
            &[(
                "tools/g.yaml",
                Some("apiVersion: tools.example.org/v1alpha1\nkind: Gadget\nmetadata:\n  name: g1\nspec:\n  color: red\n"),
            )],
            "gadget first",
        );
        store.sync().await.unwrap();
        assert_eq!(store.report().unknown_documents, 1);
        let gadgets: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &ApiResource::from_gvk(&GroupVersionKind::gvk("tools.example.org", "v1alpha1", "Gadget")),
        );
        assert_eq!(status_of(gadgets.get("g1").await).code, 404);
        remote.commit(&[("crds/gadgets.yaml", Some(GADGET_CRD))], "gadget crd");
        store.sync().await.unwrap();
        let g1 = gadgets.get("g1").await.unwrap();
        assert_eq!(g1.data["spec"]["color"], "red");
        assert_eq!(store.report().unknown_documents, 0);

        // Discovery lists the new groups.
        let discovery = kube::Discovery::new(client.clone())
            .run_aggregated()
            .await
            .unwrap();
        assert!(discovery.has_group("example.com"));
        assert!(discovery.has_group("tools.example.org"));
        let group = discovery.get("example.com").unwrap();
        let kinds: Vec<String> = group
            .recommended_resources()
            .into_iter()
            .map(|(ar, _)| ar.kind)
            .collect();
        assert_eq!(kinds, ["Widget"]);

        // Removing the CRD stops serving its resources.
        remote.commit(&[("crds/gadgets.yaml", None)], "drop gadgets");
        store.sync().await.unwrap();
        assert_eq!(status_of(gadgets.get("g1").await).code, 404);
        store.close().await.unwrap();
    })
    .await;
}

/// Events of a watch until it ends or stays quiet for `quiet`, as "TYPE name" (ERROR with its code).
async fn drain<S>(mut stream: S, quiet: Duration) -> Vec<String>
where
    S: futures::Stream<Item = Result<kube::api::WatchEvent<ConfigMap>, kube::Error>> + Unpin,
{
    use kube::api::WatchEvent as E;
    let mut seen = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout(quiet, stream.next()).await {
        let name = |c: ConfigMap| c.metadata.name.unwrap();
        match event.unwrap() {
            E::Error(status) => seen.push(format!("ERROR {}", status.code)),
            E::Added(c) => seen.push(format!("ADDED {}", name(c))),
            E::Modified(c) => seen.push(format!("MODIFIED {}", name(c))),
            E::Deleted(c) => seen.push(format!("DELETED {}", name(c))),
            E::Bookmark(_) => {}
        }
    }
    seen
}

fn told(seen: &[String]) -> bool {
    seen.first().is_some_and(|e| e == "ERROR 410")
        || (seen.iter().any(|e| e == "DELETED b") && seen.iter().any(|e| e == "ADDED c"))
}

#[tokio::test]
async fn a_rewritten_history_is_read_again() {
    within(60, async {
        let remote = Remote::new();
        remote.commit(&[("apps/a.yaml", Some(&configmap("a", "1")))], "a");
        remote.commit(&[("apps/b.yaml", Some(&configmap("b", "1")))], "b");
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let before = api.list(&ListParams::default()).await.unwrap();
        let old_rv = before.metadata.resource_version.clone().unwrap();
        assert_eq!(names(&before.items), ["a", "b"]);
        let active = api.watch(&kube::api::WatchParams::default(), &old_rv).await.unwrap().boxed();
        let stale_a = api.get("a").await.unwrap();

        // The newest commit is replaced by one that adds c instead of b.
        remote.amend(&[("apps/b.yaml", None), ("apps/c.yaml", Some(&configmap("c", "1")))], "c instead of b");
        store.sync().await.unwrap();
        assert_eq!(names(&api.list(&ListParams::default()).await.unwrap().items), ["a", "c"]);
        assert_eq!(status_of(api.get("b").await).code, 404);

        // A client that was at the old state must not go on as if nothing happened: either it is
        // told its resourceVersion is gone (410), or it receives the changes (b deleted, c added).
        let running = drain(active, Duration::from_secs(1)).await;
        let resumed = api.watch(&kube::api::WatchParams::default(), &old_rv).await.unwrap().boxed();
        let resumed = drain(resumed, Duration::from_secs(1)).await;
        assert!(
            told(&running) && told(&resumed),
            "after the rewrite, a watch running from {old_rv} saw {running:?}, one resumed from it saw {resumed:?}"
        );
        // No resourceVersion handed out before the rewrite lets a write through after it.
        let err = api.replace("a", &PostParams::default(), &stale_a).await.unwrap_err();
        assert!(matches!(&err, kube::Error::Api(s) if s.is_conflict()), "{err:?}");
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_moved_file_keeps_its_objects_and_later_writes_follow_it() {
    within(60, async {
        let remote = Remote::new();
        remote.commit(&[("apps/a.yaml", Some(&configmap("a", "1")))], "a");
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let a = api.get("a").await.unwrap();

        remote.commit_with("move a", |dir| {
            std::fs::create_dir_all(dir.join("team")).unwrap();
            git(dir, &["mv", "apps/a.yaml", "team/a.yaml"]);
        });
        store.sync().await.unwrap();
        let moved = api.get("a").await.unwrap();
        assert_eq!(moved.metadata.uid, a.metadata.uid);
        assert_eq!(moved.metadata.resource_version, a.metadata.resource_version, "a move changes nothing");

        let mut update = moved.clone();
        update.data.as_mut().unwrap().insert("key".into(), "2".into());
        api.replace("a", &PostParams::default(), &update).await.unwrap();
        assert_eq!(remote.last_changed_files(), ["team/a.yaml"]);
        assert_eq!(remote.file("apps/a.yaml"), None);
        assert!(
            remote.file("team/a.yaml").unwrap().contains("key: '2'")
                || remote.file("team/a.yaml").unwrap().contains("key: \"2\"")
        );
        api.delete("a", &DeleteParams::default()).await.unwrap();
        assert_eq!(remote.file("team/a.yaml"), None);
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn when_two_files_claim_one_object_the_first_by_path_wins() {
    within(60, async {
        let remote = Remote::new();
        remote.commit(
            &[("b/dup.yaml", Some(&configmap("dup", "from-b"))), ("a/dup.yaml", Some(&configmap("dup", "from-a")))],
            "two claims",
        );
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        assert_eq!(value_of(&api.get("dup").await.unwrap()), "from-a");
        assert_eq!(api.list(&ListParams::default()).await.unwrap().items.len(), 1);

        // An update goes to the winning file only.
        let mut dup = api.get("dup").await.unwrap();
        set_value(&mut dup, "updated");
        api.replace("dup", &PostParams::default(), &dup).await.unwrap();
        assert_eq!(remote.last_changed_files(), ["a/dup.yaml"]);
        assert!(remote.file("b/dup.yaml").unwrap().contains("from-b"));

        // When the winner goes, the other claim is served.
        remote.commit(&[("a/dup.yaml", None)], "drop a");
        store.sync().await.unwrap();
        assert_eq!(value_of(&api.get("dup").await.unwrap()), "from-b");
        remote.commit(&[("b/dup.yaml", None)], "drop b");
        store.sync().await.unwrap();
        assert_eq!(status_of(api.get("dup").await).code, 404);
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn two_writers_creating_one_name_one_gets_already_exists() {
    within(60, async {
        let remote = Remote::new();
        let (one, two, api1, api2) = two_writers(&remote).await;
        let commits = remote.commit_count();
        let pp = PostParams::default();
        let (c1, c2) = (cm("same", "one"), cm("same", "two"));
        let (r1, r2) = tokio::join!(api1.create(&pp, &c1), api2.create(&pp, &c2));
        let loser = match (r1, r2) {
            (Ok(_), Err(e)) | (Err(e), Ok(_)) => e,
            (r1, r2) => panic!("expected exactly one success: {r1:?} / {r2:?}"),
        };
        let status = status_of::<()>(Err(loser));
        assert!(status.is_already_exists(), "{status:?}");
        assert_eq!(remote.commit_count(), commits + 1);
        assert_eq!(
            git(&remote.path(), &["ls-tree", "-r", "--name-only", "main"])
                .lines()
                .filter(|f| f.contains("same"))
                .count(),
            1
        );
        one.close().await.unwrap();
        two.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn creating_next_to_a_persons_file_at_the_canonical_path_appends() {
    within(60, async {
        let remote = Remote::new();
        // The person's file at the path the API would use for "web" holds another object.
        let theirs = format!("# kept\n{}", configmap("other", "1"));
        remote.commit(&[("default/configmaps/web.yaml", Some(&theirs))], "theirs");
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        api.create(&PostParams::default(), &cm("web", "mine")).await.unwrap();
        let text = remote.file("default/configmaps/web.yaml").unwrap();
        assert!(text.starts_with(&theirs), "{text}");
        assert_eq!(names(&api.list(&ListParams::default()).await.unwrap().items), ["other", "web"]);
        assert_eq!(value_of(&api.get("other").await.unwrap()), "1");
        api.delete("web", &DeleteParams::default()).await.unwrap();
        assert_eq!(remote.file("default/configmaps/web.yaml").unwrap(), theirs);
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_full_kind_directory_gets_new_objects_in_buckets_one_level_down() {
    within(60, async {
        let remote = Remote::new();
        let limit = gitbacked_git::layout::FLAT_LIMIT;
        // One file short of the limit, and a bucket directory, which does not count.
        let mut files: Vec<(String, String)> = (0..limit - 1)
            .map(|i| (format!("default/configmaps/p-{i}.yaml"), configmap(&format!("p-{i}"), "1")))
            .collect();
        files.push(("default/configmaps/00/q.yaml".into(), configmap("q", "1")));
        let files: Vec<(&str, Option<&str>)> = files.iter().map(|(p, t)| (p.as_str(), Some(t.as_str()))).collect();
        remote.commit(&files, "a full directory");
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        api.create(&PostParams::default(), &cm("last-flat", "1")).await.unwrap();
        assert!(remote.file("default/configmaps/last-flat.yaml").is_some());

        // The directory is full: the next object goes into the bucket its name hashes to.
        api.create(&PostParams::default(), &cm("web", "1")).await.unwrap();
        let bucketed = format!("default/configmaps/{}/web.yaml", gitbacked_git::layout::bucket("web"));
        assert_eq!(bucketed, "default/configmaps/f1/web.yaml");
        assert!(remote.file(&bucketed).unwrap().contains("name: web"));
        // Updates and deletes find it there; other directories stay flat.
        let mut web = api.get("web").await.unwrap();
        web.data = Some([("key".to_string(), "2".to_string())].into());
        api.replace("web", &PostParams::default(), &web).await.unwrap();
        assert!(remote.file(&bucketed).unwrap().contains("key: \"2\""), "{:?}", remote.file(&bucketed));
        let other: Api<ConfigMap> = Api::namespaced(store.client(), "kube-public");
        other.create(&PostParams::default(), &cm("web", "1")).await.unwrap();
        assert!(remote.file("kube-public/configmaps/web.yaml").is_some());
        api.delete("web", &DeleteParams::default()).await.unwrap();
        assert!(remote.file(&bucketed).is_none());
        assert_eq!(api.list(&ListParams::default()).await.unwrap().items.len(), limit + 1);
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn derived_metadata_in_files_is_ignored_and_a_recreated_object_gets_a_new_uid() {
    within(60, async {
        let remote = Remote::new();
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: default\n  uid: not-a-real-uid\n  resourceVersion: \"5\"\n  generation: 42\n  creationTimestamp: \"2001-01-01T00:00:00Z\"\ndata:\n  key: \"1\"\n";
        remote.commit(&[("apps/a.yaml", Some(text))], "a with derived fields");
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let a = api.get("a").await.unwrap();
        assert_ne!(a.metadata.uid.as_deref(), Some("not-a-real-uid"));
        assert_ne!(a.metadata.resource_version.as_deref(), Some("5"));
        // ConfigMaps carry no generation in kube-apiserver.
        assert_eq!(a.metadata.generation, None);
        let created = a.metadata.creation_timestamp.clone().unwrap();
        assert_ne!(created.0.to_string(), "2001-01-01T00:00:00Z");

        // An update through the API does not write them back; it may rewrite the person's copy.
        let mut update = a.clone();
        set_value(&mut update, "2");
        api.replace("a", &PostParams::default(), &update).await.unwrap();
        let file = remote.file("apps/a.yaml").unwrap();
        assert!(!file.contains("uid") && !file.contains("resourceVersion") && !file.contains("generation:"), "{file}");

        // Deleted and created again: a new uid.
        api.delete("a", &DeleteParams::default()).await.unwrap();
        let again = api.create(&PostParams::default(), &cm("a", "3")).await.unwrap();
        assert_ne!(again.metadata.uid, a.metadata.uid);
        store.close().await.unwrap();
    })
    .await;
}

/// A CRD whose versions have no name: it describes no type that can be served.
const NAMELESS_VERSIONS_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets}
  versions:
  - served: true
    storage: true
"#;

#[tokio::test]
async fn a_crd_with_invalid_versions_is_skipped_when_committed_and_refused_on_write() {
    within(60, async {
        let remote = Remote::new();
        remote.commit(
            &[
                ("crds/widgets.yaml", Some(NAMELESS_VERSIONS_CRD)),
                ("apps/w.yaml", Some(&widget("w1", 1))),
                ("apps/cm.yaml", Some(&configmap("still-served", "yes"))),
            ],
            "a CRD without version names",
        );
        let store = open(&remote).await;
        let client = store.client();
        // The sync goes on: the rest is served, the CRD's kind is not.
        let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        assert!(configmaps.get("still-served").await.is_ok());
        assert_eq!(status_of(widgets_api(client.clone()).list(&ListParams::default()).await).code, 404);
        assert_eq!(store.report().unknown_documents, 1, "the widget waits for a valid CRD");

        // Through the API, the same CRD is 422 and nothing is committed.
        let commits = remote.commit_count();
        let crds: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &ApiResource::from_gvk(&GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition")),
        );
        let mut other: serde_json::Value = serde_saphyr::from_str(NAMELESS_VERSIONS_CRD).unwrap();
        other["metadata"]["name"] = "gadgets.example.com".into();
        other["spec"]["names"] = serde_json::json!({"kind": "Gadget", "plural": "gadgets"});
        let other: DynamicObject = serde_json::from_value(other).unwrap();
        let status = status_of(crds.create(&PostParams::default(), &other).await);
        assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"), "{status:?}");
        assert!(status.message.contains("spec.versions"), "{status:?}");
        store.sync().await.unwrap();
        assert_eq!(remote.commit_count(), commits, "nothing was committed");

        // Once the person names the version, the kind is served.
        remote.commit(&[("crds/widgets.yaml", Some(CRD))], "name the version");
        store.sync().await.unwrap();
        let widgets = widgets_api(client).list(&ListParams::default()).await.unwrap();
        assert_eq!(widgets.items.len(), 1);
        store.close().await.unwrap();
    })
    .await;
}

fn takeover_crd(group: &str, plural: &str, kind: &str) -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: \"{plural}.{group}\"\nspec:\n  group: \"{group}\"\n  scope: Namespaced\n  names: {{kind: {kind}, plural: \"{plural}\"}}\n  versions:\n  - {{name: v1, served: true, storage: true}}\n"
    )
}

#[tokio::test]
async fn a_crd_never_takes_over_a_builtin_api() {
    within(60, async {
        let remote = Remote::new();
        // A person's CRDs that claim built-in resources are skipped.
        remote.commit(
            &[
                ("crds/deployments.yaml", Some(&takeover_crd("apps", "deployments", "Other"))),
                ("crds/ingresses.yaml", Some(&takeover_crd("networking.k8s.io", "ingresses", "Other"))),
                ("crds/pods.yaml", Some(&takeover_crd("", "pods", "Other"))),
            ],
            "CRDs shaped like built-ins",
        );
        let store = open(&remote).await;
        let client = store.client();
        let deployments = Api::<DynamicObject>::namespaced_with(
            client.clone(),
            "default",
            &ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment")),
        );
        let ingresses: Api<k8s_openapi::api::networking::v1::Ingress> = Api::namespaced(client.clone(), "default");
        assert!(deployments.list(&ListParams::default()).await.is_ok());
        assert!(ingresses.list(&ListParams::default()).await.is_ok());
        let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "default");
        assert!(pods.list(&ListParams::default()).await.is_ok());

        // Through the API they are refused with 422, and nothing is committed.
        let commits = remote.commit_count();
        let crds: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &ApiResource::from_gvk(&GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition")),
        );
        for (group, plural) in
            [("networking.k8s.io", "networkpolicies"), ("", "services"), ("example.com", "x/../../pwn"), (".", "dots")]
        {
            let crd: DynamicObject = serde_saphyr::from_str(&takeover_crd(group, plural, "Other")).unwrap();
            let status = status_of(crds.create(&PostParams::default(), &crd).await);
            assert_eq!(status.code, 422, "{group}/{plural}: {status:?}");
        }
        store.sync().await.unwrap();
        assert_eq!(remote.commit_count(), commits, "nothing was committed");

        // Deleting the person's CRDs leaves the built-ins served, here and after a restart.
        remote.commit(&[("crds/deployments.yaml", None), ("crds/ingresses.yaml", None)], "remove them");
        store.sync().await.unwrap();
        assert!(ingresses.list(&ListParams::default()).await.is_ok());
        store.close().await.unwrap();
        let reopened = open(&remote).await;
        let ingresses: Api<k8s_openapi::api::networking::v1::Ingress> = Api::namespaced(reopened.client(), "default");
        assert!(ingresses.list(&ListParams::default()).await.is_ok());
        reopened.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn crds_become_established_as_controllers_wait_for() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::runtime::wait::{await_condition, conditions};
    within(60, async {
        let remote = Remote::new();
        // One committed by a person, one created through the API.
        remote.commit(&[("crds/widgets.yaml", Some(CRD))], "a CRD");
        let store = open(&remote).await;
        let crds: Api<CustomResourceDefinition> = Api::all(store.client());
        let wait = |name: &'static str| {
            let crds = crds.clone();
            async move {
                tokio::time::timeout(
                    Duration::from_secs(10),
                    await_condition(crds, name, conditions::is_crd_established()),
                )
                .await
                .expect("Established in time")
                .unwrap()
                .unwrap()
            }
        };
        let widgets = wait("widgets.example.com").await;
        let status = widgets.status.unwrap();
        assert_eq!(status.accepted_names.unwrap().kind, "Widget");
        assert_eq!(status.stored_versions, Some(vec!["v1".to_string()]));
        let gadget: CustomResourceDefinition = serde_saphyr::from_str(GADGET_CRD).unwrap();
        crds.create(&PostParams::default(), &gadget).await.unwrap();
        wait("gadgets.tools.example.org").await;
        // The status is derived, never written to the person's file or the API's.
        assert!(!remote.file("crds/widgets.yaml").unwrap().contains("status"));
        let written = remote.files().into_iter().find(|f| f.contains("gadgets")).unwrap();
        assert!(!remote.file(&written).unwrap().contains("conditions"), "{written}");
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_document_shaped_like_a_crd_never_hides_the_real_one() {
    within(60, async {
        let remote = Remote::new();
        // As in prometheus-operator's examples: a kustomize patch that claims the CRD's identity
        // (only spec.conversion) sorts first by path.
        let patch = r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"}, "spec": {"conversion": {"strategy": "Webhook"}}}"#;
        remote.commit(
            &[("a/patch.json", Some(patch)), ("b/crd.yaml", Some(CRD)), ("c/w.yaml", Some(&widget("w1", 1)))],
            "both",
        );
        let store = open(&remote).await;
        let widgets = widgets_api(store.client()).list(&ListParams::default()).await.unwrap();
        assert_eq!(widgets.items.len(), 1, "the valid CRD is served and its kind with it");
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_git_revert_of_a_controllers_commit_is_an_ordinary_change_for_every_process() {
    within(60, async {
        let remote = Remote::new();
        remote.commit(&[("apps/settings.yaml", Some(&configmap("settings", "person")))], "by hand");
        let (a, b, api_a, api_b) = two_writers(&remote).await;
        // A controller changes the value; a person reverts its commit.
        let mut current = api_a.get("settings").await.unwrap();
        current.data = Some([("key".to_string(), "controller".to_string())].into());
        api_a.replace("settings", &PostParams::default(), &current).await.unwrap();
        let written = api_a.get("settings").await.unwrap();
        remote.commit_with("revert the controller", |dir| {
            git(dir, &["revert", "--no-edit", "HEAD"]);
        });
        for store in [&a, &b] {
            store.sync().await.unwrap();
        }
        for api in [&api_a, &api_b] {
            let seen = api.get("settings").await.unwrap();
            assert_eq!(seen.data.unwrap()["key"], "person");
            assert_ne!(seen.metadata.resource_version, written.metadata.resource_version);
            assert_eq!(seen.metadata.uid, written.metadata.uid, "the same object, changed back");
        }
        assert_eq!(remote.must_file("apps/settings.yaml"), configmap("settings", "person"));
        a.close().await.unwrap();
        b.close().await.unwrap();
    })
    .await;
}

/// A large file of `count` ConfigMaps with long values, `changed` holding `value`.
fn large_file(count: usize, changed: usize, value: &str) -> String {
    let filler = "x".repeat(2000);
    (0..count)
        .map(|i| {
            let v = if i == changed { value } else { "same" };
            format!("# document {i}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big-{i}\ndata:\n  key: {v}\n  filler: {filler}\n")
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

#[tokio::test]
async fn a_commit_changing_one_document_of_a_large_file_changes_that_object_alone() {
    within(60, async {
        let remote = Remote::new();
        // 60 documents of ~2 KB: large enough that only the changed document is read again.
        remote.commit(&[("install.yaml", Some(&large_file(60, 0, "same")))], "install");
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let listed = api.list(&ListParams::default()).await.unwrap();
        assert_eq!(listed.items.len(), 60);
        let since = listed.metadata.resource_version.unwrap();
        let mut events = api.watch(&kube::api::WatchParams::default(), &since).await.unwrap().boxed();

        remote.commit(&[("install.yaml", Some(&large_file(60, 17, "changed")))], "change one");
        store.sync().await.unwrap();
        match events.next().await {
            Some(Ok(kube::api::WatchEvent::Modified(c))) => {
                assert_eq!((c.metadata.name.as_deref(), value_of(&c).as_str()), (Some("big-17"), "changed"))
            }
            other => panic!("expected big-17's change, got {other:?}"),
        }
        assert_eq!(api.list(&ListParams::default()).await.unwrap().items.len(), 60);
        assert_eq!(value_of(&api.get("big-16").await.unwrap()), "same");

        // A typo in that document keeps its object as it was and is reported; the next commit
        // that fixes it, and another that changes a second document, are read as usual.
        let broken = large_file(60, 17, "changed").replace("  key: changed", "  key: [changed");
        remote.commit(&[("install.yaml", Some(&broken))], "typo");
        store.sync().await.unwrap();
        assert_eq!(value_of(&api.get("big-17").await.unwrap()), "changed");
        assert_eq!(store.report().invalid_files.len(), 1, "{:?}", store.report().invalid_files);
        remote.commit(&[("install.yaml", Some(&large_file(60, 3, "third")))], "fix and change another");
        store.sync().await.unwrap();
        assert!(store.report().invalid_files.is_empty());
        assert_eq!(value_of(&api.get("big-3").await.unwrap()), "third");
        assert_eq!(value_of(&api.get("big-17").await.unwrap()), "same");
        // A write through the API into it afterwards reads back as usual.
        let mut one = api.get("big-40").await.unwrap();
        set_value(&mut one, "written");
        api.replace("big-40", &PostParams::default(), &one).await.unwrap();
        assert!(remote.must_file("install.yaml").contains("key: written"));
        assert_eq!(api.list(&ListParams::default()).await.unwrap().items.len(), 60);
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_large_commit_is_numbered_in_key_order_whatever_thread_built_its_objects() {
    within(120, async {
        // Enough new objects for the store to build them on all cores, and one key claimed twice
        // in the middle, which is resolved on its own between two runs of them.
        let remote = Remote::new();
        let expected: Vec<String> = (0..1500).map(|i| format!("cm-{i:04}")).collect();
        let mut files: Vec<(String, String)> =
            expected.iter().map(|n| (format!("default/configmaps/{n}.yaml"), configmap(n, "1"))).collect();
        files.push(("dup/cm-0750.yaml".into(), configmap("cm-0750", "loses")));
        let staged: Vec<(&str, Option<&str>)> = files.iter().map(|(p, c)| (p.as_str(), Some(c.as_str()))).collect();
        remote.commit(&staged, "1,500 ConfigMaps at once");

        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let listed = api.list(&ListParams::default()).await.unwrap().items;
        assert_eq!(names(&listed), expected, "every object, in key order");
        let versions: Vec<u64> =
            listed.iter().map(|c| c.metadata.resource_version.as_deref().unwrap().parse().unwrap()).collect();
        assert!(versions.windows(2).all(|w| w[1] == w[0] + 1), "one event each, numbered by key: {versions:?}");
        let uids: std::collections::HashSet<_> = listed.iter().map(|c| c.metadata.uid.clone().unwrap()).collect();
        assert_eq!(uids.len(), expected.len());
        assert_eq!(value_of(&listed[750]), "1", "the first document by path wins");

        // Another process, built on the other path (from the parse cache), derives the same.
        let cache = tempfile::tempdir().unwrap();
        let cached = || gitbacked::Options { cache_dir: Some(cache.path().join("mirror.git")), ..options() };
        open_with(&remote, cached()).await.close().await.unwrap();
        let again = open_with(&remote, cached()).await;
        let relisted =
            Api::<ConfigMap>::namespaced(again.client(), "default").list(&ListParams::default()).await.unwrap();
        let identity = |l: &[ConfigMap]| -> Vec<_> {
            l.iter().map(|c| (c.metadata.uid.clone(), c.metadata.resource_version.clone(), value_of(c))).collect()
        };
        assert_eq!(identity(&relisted.items), identity(&listed));
        again.close().await.unwrap();
        store.close().await.unwrap();
    })
    .await;
}
