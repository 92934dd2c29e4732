//! Kubernetes semantics over git: finalizers with kube's helper, the status subresource and
//! generation, list selectors and pagination, dryRun, generateName and delete preconditions.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, Event as Finalizer};
use serde_json::json;

use crate::support::{Remote, configmap, open, status_of, within};

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"key": value}})).unwrap()
}

fn value_of(c: &ConfigMap) -> String {
    c.data.as_ref().unwrap()["key"].clone()
}

const FINALIZER: &str = "gitbacked.test/cleanup";

/// Runs kube's finalizer helper once on the current object; counts the Apply and Cleanup calls.
async fn reconcile(
    api: &Api<ConfigMap>,
    obj: ConfigMap,
    applied: &Arc<AtomicUsize>,
    cleaned: &Arc<AtomicUsize>,
) -> Result<Action, finalizer::Error<std::io::Error>> {
    let (applied, cleaned) = (applied.clone(), cleaned.clone());
    finalizer::finalizer(api, FINALIZER, Arc::new(obj), |event| async move {
        match event {
            Finalizer::Apply(_) => applied.fetch_add(1, Ordering::SeqCst),
            Finalizer::Cleanup(_) => cleaned.fetch_add(1, Ordering::SeqCst),
        };
        Ok::<_, std::io::Error>(Action::await_change())
    })
    .await
}

#[tokio::test]
async fn finalizers_hold_a_deletion_until_kubes_helper_cleans_up() {
    within(60, async {
        let remote = Remote::new();
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let (applied, cleaned) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let created = api.create(&PostParams::default(), &cm("f", "1")).await.unwrap();

        // First pass: the helper adds its finalizer (JSON patch: test /metadata/finalizers == null, add).
        reconcile(&api, created.clone(), &applied, &cleaned).await.unwrap();
        let with = api.get("f").await.unwrap();
        assert_eq!(with.metadata.finalizers, Some(vec![FINALIZER.to_string()]));
        assert!(remote.file("default/configmaps/f.yaml").unwrap().contains(FINALIZER));
        assert_eq!(remote.log()[0], "patch v1 ConfigMap default/f");
        assert_eq!(applied.load(Ordering::SeqCst), 0);

        // From a stale copy without finalizers, the null test fails: the helper reports it.
        let err = reconcile(&api, created.clone(), &applied, &cleaned).await.unwrap_err();
        assert!(matches!(err, finalizer::Error::AddFinalizer(kube::Error::Api(ref s)) if s.code == 422), "{err:?}");

        // Second pass: Apply.
        reconcile(&api, with.clone(), &applied, &cleaned).await.unwrap();
        assert_eq!(applied.load(Ordering::SeqCst), 1);

        // Delete marks the object; it stays readable and in git.
        let deleting = api.delete("f", &DeleteParams::default()).await.unwrap();
        let deleting = deleting.left().expect("an object with finalizers is returned, not a Status");
        let stamp = deleting.metadata.deletion_timestamp.clone().expect("deletionTimestamp set");
        let got = api.get("f").await.unwrap();
        assert_eq!(got.metadata.deletion_timestamp, Some(stamp.clone()));
        let file = remote.file("default/configmaps/f.yaml").unwrap();
        assert!(file.contains("deletionTimestamp") && file.contains(FINALIZER), "{file}");
        // Deleting again changes nothing.
        let again = api.delete("f", &DeleteParams::default()).await.unwrap().left().unwrap();
        assert_eq!(again.metadata.deletion_timestamp, Some(stamp.clone()));

        // deletionTimestamp cannot be changed or removed by an update or a patch.
        let mut moved = got.clone();
        moved.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            stamp.0 + k8s_openapi::jiff::SignedDuration::from_hours(24),
        ));
        let r1 = api.replace("f", &PostParams::default(), &moved).await;
        let r2 = api
            .patch("f", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"deletionTimestamp": null}})))
            .await;
        // As kube-apiserver does (rest.BeforeUpdate), the old timestamp is kept silently.
        assert_eq!(r1.unwrap().metadata.deletion_timestamp, Some(stamp.clone()));
        assert_eq!(r2.unwrap().metadata.deletion_timestamp, Some(stamp.clone()));
        let got = api.get("f").await.unwrap();
        assert_eq!(got.metadata.deletion_timestamp, Some(stamp.clone()));
        assert_eq!(got.metadata.finalizers, Some(vec![FINALIZER.to_string()]));

        // No new finalizers while the object is being deleted (kube-apiserver: 422 Invalid).
        let status = status_of(
            api.patch(
                "f",
                &PatchParams::default(),
                &Patch::Json::<()>(
                    serde_json::from_value(json!([
                        {"op": "add", "path": "/metadata/finalizers/-", "value": "late.test/x"}
                    ]))
                    .unwrap(),
                ),
            )
            .await,
        );
        assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"), "{status:?}");
        let got = api.get("f").await.unwrap();
        assert_eq!(got.metadata.finalizers, Some(vec![FINALIZER.to_string()]));

        // Cleanup, then the finalizer's removal deletes the object and its file.
        reconcile(&api, got, &applied, &cleaned).await.unwrap();
        assert_eq!(cleaned.load(Ordering::SeqCst), 1);
        assert_eq!(status_of(api.get("f").await).code, 404);
        assert_eq!(remote.file("default/configmaps/f.yaml"), None);

        // An update cannot mark an object for deletion either.
        let other = api.create(&PostParams::default(), &cm("g", "1")).await.unwrap();
        let mut marked = other.clone();
        marked.metadata.deletion_timestamp = Some(stamp.clone());
        marked.metadata.finalizers = Some(vec!["x.test/keep".into()]);
        let r3 = api.replace("g", &PostParams::default(), &marked).await;
        // kube-apiserver answers 422 (the field is immutable); ignoring it keeps the object too.
        match r3 {
            Ok(g) => assert_eq!(g.metadata.deletion_timestamp, None),
            Err(e) => assert_eq!(status_of::<()>(Err(e)).code, 422),
        }
        let g = api.get("g").await.unwrap();
        assert_eq!(g.metadata.deletion_timestamp, None);
        assert!(!remote.file("default/configmaps/g.yaml").unwrap().contains("deletionTimestamp"));
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn the_last_of_several_finalizers_completes_the_deletion() {
    within(60, async {
        let remote = Remote::new();
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let (applied, cleaned) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut obj = cm("two", "1");
        obj.metadata.finalizers = Some(vec!["other.test/first".into(), FINALIZER.into()]);
        api.create(&PostParams::default(), &obj).await.unwrap();
        api.delete("two", &DeleteParams::default()).await.unwrap();

        let current = api.get("two").await.unwrap();
        reconcile(&api, current, &applied, &cleaned).await.unwrap();
        assert_eq!(cleaned.load(Ordering::SeqCst), 1);
        let left = api.get("two").await.unwrap();
        assert_eq!(left.metadata.finalizers, Some(vec!["other.test/first".to_string()]));
        assert!(left.metadata.deletion_timestamp.is_some());

        let patched = api
            .patch("two", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
            .await
            .unwrap();
        assert_eq!(patched.metadata.name.as_deref(), Some("two"));
        assert_eq!(status_of(api.get("two").await).code, 404);
        assert_eq!(remote.file("default/configmaps/two.yaml"), None);
        store.close().await.unwrap();
    })
    .await;
}

fn deployment() -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}
        },
        "status": {"replicas": 7}
    }))
    .unwrap()
}

fn generation(d: &Deployment) -> i64 {
    d.metadata.generation.unwrap()
}

fn status_replicas(d: &Deployment) -> Option<i32> {
    d.status.as_ref().and_then(|s| s.replicas)
}

#[tokio::test]
async fn status_is_written_through_its_subresource_and_generation_follows_the_spec() {
    within(60, async {
        let remote = Remote::new();
        let store = open(&remote).await;
        let api: Api<Deployment> = Api::namespaced(store.client(), "default");
        let path = "default/deployments.apps/web.yaml";

        let created = api.create(&PostParams::default(), &deployment()).await.unwrap();
        assert_eq!(generation(&created), 1);
        assert_eq!(status_replicas(&created), None, "status is not set by a create");
        assert!(!remote.file(path).unwrap().contains("status"));

        // A main-resource update that changes status: the status part is ignored.
        let mut d = created.clone();
        d.status = Some(serde_json::from_value(json!({"replicas": 3})).unwrap());
        let commits = remote.commit_count();
        let updated = api.replace("web", &PostParams::default(), &d).await.unwrap();
        assert_eq!(status_replicas(&updated), None);
        assert_eq!(generation(&updated), 1);
        assert_eq!(remote.commit_count(), commits, "nothing changed, nothing committed");

        // replace_status changes only status, even when the body carries a different spec.
        let mut d = api.get("web").await.unwrap();
        d.status = Some(serde_json::from_value(json!({"replicas": 3})).unwrap());
        d.spec.as_mut().unwrap().replicas = Some(9);
        d.metadata.labels.as_mut().unwrap().insert("ignored".into(), "yes".into());
        let s = api.replace_status("web", &PostParams::default(), &d).await.unwrap();
        assert_eq!(status_replicas(&s), Some(3));
        assert_eq!(s.spec.as_ref().unwrap().replicas, Some(1));
        assert!(!s.metadata.labels.as_ref().unwrap().contains_key("ignored"));
        assert_eq!(generation(&s), 1);
        assert_eq!(remote.log()[0], "update status of apps/v1 Deployment default/web");
        assert!(remote.file(path).unwrap().contains("status"));

        let s = api
            .patch_status(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 5}, "status": {"availableReplicas": 2}})),
            )
            .await
            .unwrap();
        let status = s.status.clone().unwrap();
        assert_eq!((status.replicas, status.available_replicas), (Some(3), Some(2)));
        assert_eq!(s.spec.as_ref().unwrap().replicas, Some(1));
        assert_eq!(generation(&s), 1);
        assert_eq!(api.get_status("web").await.unwrap().status, Some(status.clone()));

        // Labels do not bump generation; the spec does, and status survives a main update.
        let l = api
            .patch("web", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"tier": "front"}}})))
            .await
            .unwrap();
        assert_eq!(generation(&l), 1);
        let mut d = l.clone();
        d.spec.as_mut().unwrap().replicas = Some(2);
        d.status = None;
        let g = api.replace("web", &PostParams::default(), &d).await.unwrap();
        assert_eq!(generation(&g), 2);
        assert_eq!(g.status, Some(status.clone()));

        // A person's commit that changes the spec bumps generation; labels or status do not.
        let edit = |from: &str, to: &str, message: &str| {
            let text = remote.file(path).unwrap();
            assert!(text.contains(from), "{text}");
            remote.commit(&[(path, Some(&text.replacen(from, to, 1)))], message);
        };
        edit("nginx:1", "nginx:2", "new image");
        store.sync().await.unwrap();
        let p = api.get("web").await.unwrap();
        assert_eq!(generation(&p), 3);
        assert_eq!(p.spec.unwrap().template.spec.unwrap().containers[0].image.as_deref(), Some("nginx:2"));
        edit("tier: front", "tier: back", "relabel");
        store.sync().await.unwrap();
        let p = api.get("web").await.unwrap();
        assert_eq!(p.metadata.labels.as_ref().unwrap()["tier"], "back");
        assert_eq!(generation(&p), 3);
        edit("availableReplicas: 2", "availableReplicas: 1", "status by hand");
        store.sync().await.unwrap();
        let p = api.get("web").await.unwrap();
        assert_eq!(p.status.as_ref().unwrap().available_replicas, Some(1));
        assert_eq!(generation(&p), 3);
        store.close().await.unwrap();
    })
    .await;
}

/// 25 ConfigMaps in default (labels: tier front/back/db for most, canary on some, none on a few)
/// and 2 in another namespace, in one commit.
fn many(remote: &Remote) {
    let mut files = Vec::new();
    for i in 0..25 {
        let mut labels = Vec::new();
        if i % 5 != 4 {
            labels.push(format!("tier: {}", ["front", "back", "db"][i % 3]));
        }
        if i.is_multiple_of(4) {
            labels.push("canary: \"true\"".into());
        }
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("  labels:\n{}", labels.iter().map(|l| format!("    {l}\n")).collect::<String>())
        };
        let text = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:02}\n  namespace: default\n{labels}data:\n  key: \"{i}\"\n"
        );
        files.push((format!("apps/cm-{i:02}.yaml"), text));
    }
    files.push(("other/x.yaml".into(), configmap("x", "1").replace("default", "other")));
    files.push(("other/z.yaml".into(), configmap("z", "1").replace("default", "other")));
    let refs: Vec<(&str, Option<&str>)> = files.iter().map(|(p, t)| (p.as_str(), Some(t.as_str()))).collect();
    remote.commit(&refs, "many");
}

fn expected(pred: impl Fn(usize) -> bool) -> Vec<String> {
    (0..25).filter(|i| pred(*i)).map(|i| format!("cm-{i:02}")).collect()
}

#[tokio::test]
async fn lists_select_by_labels_and_fields_and_paginate() {
    within(60, async {
        let remote = Remote::new();
        many(&remote);
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let names =
            |items: Vec<ConfigMap>| -> Vec<String> { items.into_iter().map(|c| c.metadata.name.unwrap()).collect() };
        let select = |selector: &'static str| {
            let api = api.clone();
            async move { names(api.list(&ListParams::default().labels(selector)).await.unwrap().items) }
        };
        let tier = |i: usize| (i % 5 != 4).then(|| ["front", "back", "db"][i % 3]);
        let canary = |i: usize| i.is_multiple_of(4);

        assert_eq!(select("tier=front").await, expected(|i| tier(i) == Some("front")));
        assert_eq!(select("tier==front").await, expected(|i| tier(i) == Some("front")));
        assert_eq!(select("tier!=front").await, expected(|i| tier(i) != Some("front")));
        assert_eq!(select("tier in (front,db)").await, expected(|i| matches!(tier(i), Some("front" | "db"))));
        assert_eq!(select("tier notin (front,db)").await, expected(|i| !matches!(tier(i), Some("front" | "db"))));
        assert_eq!(select("canary").await, expected(canary));
        assert_eq!(select("!canary").await, expected(|i| !canary(i)));
        assert_eq!(select("tier,!canary").await, expected(|i| tier(i).is_some() && !canary(i)));
        assert_eq!(select("tier=back,canary=true").await, expected(|i| tier(i) == Some("back") && canary(i)));
        assert_eq!(select("tier=nope").await, Vec::<String>::new());

        let by_name = api.list(&ListParams::default().fields("metadata.name=cm-07")).await.unwrap().items;
        assert_eq!(names(by_name), ["cm-07"]);
        let not_name =
            api.list(&ListParams::default().fields("metadata.name!=cm-07,metadata.namespace=default")).await.unwrap();
        assert_eq!(not_name.items.len(), 24);
        let all: Api<ConfigMap> = Api::all(store.client());
        let other = all.list(&ListParams::default().fields("metadata.namespace=other")).await.unwrap().items;
        assert_eq!(names(other), ["x", "z"]);
        assert_eq!(all.list(&ListParams::default()).await.unwrap().items.len(), 27);

        let status = status_of(api.list(&ListParams::default().fields("data.key=3")).await);
        assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"), "{status:?}");
        let status = status_of(api.list(&ListParams::default().labels("tier in (front")).await);
        assert_eq!(status.code, 400, "{status:?}");

        // Pages of 7 over 25 objects; a write in the middle does not disturb the pages.
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        let mut first_rv = None;
        loop {
            let mut lp = ListParams::default().limit(7);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            let page = api.list(&lp).await.unwrap();
            pages += 1;
            assert!(page.items.len() <= 7);
            first_rv.get_or_insert(page.metadata.resource_version.clone());
            assert_eq!(page.metadata.resource_version, *first_rv.as_ref().unwrap(), "pages come from one state");
            seen.extend(names(page.items));
            if pages == 2 {
                api.create(&PostParams::default(), &cm("cm-99", "late")).await.unwrap();
                api.delete("cm-24", &DeleteParams::default()).await.unwrap();
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(t) => {
                    assert!(page.metadata.remaining_item_count.unwrap() > 0);
                    token = Some(t);
                }
                None => break,
            }
        }
        assert_eq!(pages, 4);
        assert_eq!(seen, expected(|_| true), "every object once, in order");
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), 25);

        // A continue token that names no snapshot is gone (410); one that does not parse is a 400.
        let status = status_of(api.list(&ListParams::default().limit(5).continue_token("987654.5.1")).await);
        assert_eq!(status.code, 410, "{status:?}");
        let status = status_of(api.list(&ListParams::default().limit(5).continue_token("nonsense")).await);
        assert_eq!(status.code, 400, "{status:?}");

        // Pagination with a selector.
        let mut lp = ListParams::default().labels("!canary").limit(5);
        let mut selected = Vec::new();
        loop {
            let page = api.list(&lp).await.unwrap();
            selected.extend(names(page.items));
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(t) => lp = ListParams::default().labels("!canary").limit(5).continue_token(&t),
                None => break,
            }
        }
        let mut want = expected(|i| !canary(i) && i != 24);
        want.push("cm-99".into());
        assert_eq!(selected, want);
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn dry_run_answers_and_commits_nothing() {
    within(60, async {
        let remote = Remote::new();
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        api.create(&PostParams::default(), &cm("real", "1")).await.unwrap();
        let log = remote.log();
        let file = remote.file("default/configmaps/real.yaml").unwrap();
        let dry = PostParams { dry_run: true, ..Default::default() };

        let created = api.create(&dry, &cm("ghost", "1")).await.unwrap();
        assert_eq!(created.metadata.name.as_deref(), Some("ghost"));
        assert_eq!(value_of(&created), "1");
        assert_eq!(status_of(api.get("ghost").await).code, 404);
        // A dry-run create still checks what a real one would.
        assert!(status_of(api.create(&dry, &cm("real", "x")).await).is_already_exists());
        assert_eq!(status_of(api.create(&dry, &cm("Bad_Name", "x")).await).code, 422);

        let mut real = api.get("real").await.unwrap();
        real.data.as_mut().unwrap().insert("key".into(), "2".into());
        let replaced = api.replace("real", &dry, &real).await.unwrap();
        assert_eq!(value_of(&replaced), "2");
        let patched = api
            .patch(
                "real",
                &PatchParams { dry_run: true, ..Default::default() },
                &Patch::Merge(json!({"data": {"key": "3"}})),
            )
            .await
            .unwrap();
        assert_eq!(value_of(&patched), "3");
        assert_eq!(value_of(&api.get("real").await.unwrap()), "1");
        // A stale resourceVersion conflicts in a dry run too.
        let mut stale = real.clone();
        stale.metadata.resource_version = Some("1".into());
        assert!(status_of(api.replace("real", &dry, &stale).await).is_conflict());

        let deleted = api.delete("real", &DeleteParams::default().dry_run()).await.unwrap();
        let _ = deleted;
        assert_eq!(value_of(&api.get("real").await.unwrap()), "1");

        assert_eq!(remote.log(), log, "nothing was committed");
        assert_eq!(remote.file("default/configmaps/real.yaml").unwrap(), file);
        assert_eq!(remote.file("default/configmaps/ghost.yaml"), None);
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn generate_name_and_delete_preconditions() {
    within(60, async {
        let remote = Remote::new();
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");

        let mut names = BTreeSet::new();
        for _ in 0..3 {
            let body: ConfigMap =
                serde_json::from_value(json!({"metadata": {"generateName": "gen-"}, "data": {"k": "v"}})).unwrap();
            let created = api.create(&PostParams::default(), &body).await.unwrap();
            let name = created.metadata.name.clone().unwrap();
            assert!(name.starts_with("gen-") && name.len() == "gen-".len() + 5, "{name}");
            assert_eq!(created.metadata.generate_name.as_deref(), Some("gen-"));
            assert!(remote.file(&format!("default/configmaps/{name}.yaml")).is_some());
            names.insert(name);
        }
        assert_eq!(names.len(), 3, "generated names differ: {names:?}");
        // With both, the name wins.
        let body: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "named", "generateName": "gen-"}})).unwrap();
        assert_eq!(api.create(&PostParams::default(), &body).await.unwrap().metadata.name.as_deref(), Some("named"));
        let empty: ConfigMap = serde_json::from_value(json!({"metadata": {}})).unwrap();
        assert_eq!(status_of(api.create(&PostParams::default(), &empty).await).code, 422);

        let target = api.create(&PostParams::default(), &cm("target", "1")).await.unwrap();
        let uid = target.metadata.uid.clone().unwrap();
        let rv = target.metadata.resource_version.clone().unwrap();
        let log = remote.log();
        let with = |uid: Option<&str>, rv: Option<&str>| {
            DeleteParams::default()
                .preconditions(Preconditions { uid: uid.map(str::to_string), resource_version: rv.map(str::to_string) })
        };
        let wrong_uid = "00000000-0000-5000-0000-000000000000";
        for dp in [with(Some(wrong_uid), None), with(None, Some("1")), with(Some(&uid), Some("1"))] {
            let status = status_of(api.delete("target", &dp).await);
            assert!(status.is_conflict(), "{status:?}");
            assert_eq!(status.reason, "Conflict");
        }
        assert_eq!(remote.log(), log, "a failed precondition commits nothing");
        assert!(api.get("target").await.is_ok());
        api.delete("target", &with(Some(&uid), Some(&rv))).await.unwrap();
        assert_eq!(status_of(api.get("target").await).code, 404);
        assert_eq!(remote.file("default/configmaps/target.yaml"), None);
        store.close().await.unwrap();
    })
    .await;
}

#[derive(kube::CustomResource, serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[kube(group = "example.com", version = "v1", kind = "Gizmo", namespaced, status = "GizmoStatus")]
pub struct GizmoSpec {
    size: i32,
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
pub struct GizmoStatus {
    ready: bool,
}

#[tokio::test]
async fn a_derived_custom_resource_with_a_status_subresource() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::CustomResourceExt;
    within(60, async {
        let remote = Remote::new();
        let store = open(&remote).await;
        let client = store.client();

        // The CRD is created through the API: committed, then served.
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        crds.create(&PostParams::default(), &Gizmo::crd()).await.unwrap();
        assert!(
            remote.file("_cluster/customresourcedefinitions.apiextensions.k8s.io/gizmos.example.com.yaml").is_some(),
            "{:?}",
            remote.files()
        );
        let api: Api<Gizmo> = Api::namespaced(client.clone(), "default");
        let mut g = Gizmo::new("g", GizmoSpec { size: 1 });
        g.status = Some(GizmoStatus { ready: true });
        let created = api.create(&PostParams::default(), &g).await.unwrap();
        assert_eq!(created.status, None, "status is not written by a create");
        assert_eq!(created.metadata.generation, Some(1));
        assert!(remote.file("default/gizmos.example.com/g.yaml").unwrap().contains("size: 1"));

        let s = api
            .patch_status("g", &PatchParams::default(), &Patch::Merge(json!({"status": {"ready": true}})))
            .await
            .unwrap();
        assert_eq!(s.status, Some(GizmoStatus { ready: true }));
        assert_eq!(s.metadata.generation, Some(1));

        let mut update = s.clone();
        update.spec.size = 2;
        update.status = Some(GizmoStatus { ready: false });
        let u = api.replace("g", &PostParams::default(), &update).await.unwrap();
        assert_eq!(u.spec.size, 2);
        assert_eq!(u.status, Some(GizmoStatus { ready: true }), "status is kept by a main update");
        assert_eq!(u.metadata.generation, Some(2));

        let listed = api.list(&ListParams::default()).await.unwrap().items;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].spec, GizmoSpec { size: 2 });
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn metadata_patches_answer_partial_object_metadata() {
    within(60, async {
        let remote = Remote::new();
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "m"}, "data": {"k": "v"}})).unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
        let patch = Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}}));
        let partial = api.patch_metadata("m", &PatchParams::default(), &patch).await.unwrap();
        assert_eq!(partial.types.as_ref().map(|t| t.kind.as_str()), Some("PartialObjectMetadata"));
        assert_eq!(partial.metadata.labels.unwrap()["team"], "a");
        assert!(remote.must_file("default/configmaps/m.yaml").contains("team: a"));
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn approval_and_ephemeral_containers_write_only_their_part() {
    use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
    use k8s_openapi::api::core::v1::Pod;
    within(60, async {
        let remote = Remote::new();
        let store = open(&remote).await;
        let csrs: Api<CertificateSigningRequest> = Api::all(store.client());
        let csr: CertificateSigningRequest = serde_json::from_value(json!({"metadata": {"name": "c"},
            "spec": {"request": "cmVxdWVzdA==", "signerName": "example.com/signer", "usages": ["client auth"]}}))
        .unwrap();
        csrs.create(&PostParams::default(), &csr).await.unwrap();
        let approve = Patch::Merge(json!({"spec": {"signerName": "example.com/other"},
            "status": {"conditions": [{"type": "Approved", "status": "True", "reason": "Tested", "message": "ok"}]}}));
        csrs.patch_approval("c", &PatchParams::default(), &approve).await.unwrap();
        let approved = csrs.get_approval("c").await.unwrap();
        assert_eq!(approved.status.unwrap().conditions.unwrap()[0].type_, "Approved");
        assert_eq!(approved.spec.signer_name, "example.com/signer", "only the conditions change");
        assert_eq!(remote.log()[0], "patch approval of certificates.k8s.io/v1 CertificateSigningRequest c");
        // A signer writes the certificate through /status; the approval stays.
        let signed = Patch::Merge(json!({"status": {"certificate": "Y2VydA=="}}));
        let after = csrs.patch_status("c", &PatchParams::default(), &signed).await.unwrap().status.unwrap();
        assert_eq!(after.certificate.map(|c| c.0), Some(b"cert".to_vec()));
        assert_eq!(after.conditions.unwrap()[0].type_, "Approved");
        assert_eq!(remote.log()[0], "patch status of certificates.k8s.io/v1 CertificateSigningRequest c");

        let pods: Api<Pod> = Api::namespaced(store.client(), "default");
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]}}))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
        let debug = Patch::Merge(json!({"spec": {"containers": [{"name": "app", "image": "app:2"}],
            "ephemeralContainers": [{"name": "debugger", "image": "busybox"}]}}));
        pods.patch_ephemeral_containers("p", &PatchParams::default(), &debug).await.unwrap();
        let spec = pods.get_ephemeral_containers("p").await.unwrap().spec.unwrap();
        assert_eq!(spec.ephemeral_containers.unwrap()[0].name, "debugger");
        assert_eq!(spec.containers[0].image.as_deref(), Some("app:1"), "only the ephemeral containers change");
        assert!(remote.must_file("default/pods/p.yaml").contains("debugger"));
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_fresh_repository_serves_what_kube_apiserver_creates_for_itself() {
    use k8s_openapi::api::core::v1::{Namespace, Service};
    use k8s_openapi::api::rbac::v1::ClusterRole;
    within(60, async {
        let remote = Remote::new();
        let store = open(&remote).await;
        let client = store.client();
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let names: Vec<String> = namespaces
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        assert_eq!(names, ["default", "kube-node-lease", "kube-public", "kube-system"]);
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        let kubernetes = services.get("kubernetes").await.unwrap();
        assert_eq!(kubernetes.spec.unwrap().cluster_ip.as_deref(), Some("10.96.0.1"));
        let roles: Api<ClusterRole> = Api::all(client.clone());
        assert!(roles.get("cluster-admin").await.unwrap().rules.is_some_and(|r| r[0].verbs == ["*"]));
        assert_eq!(remote.files(), ["README.md"], "nothing written but the fixture's README");

        // The system namespaces may not be deleted, nor may what git has no file for.
        let refused = status_of(namespaces.delete("default", &DeleteParams::default()).await);
        assert_eq!((refused.code, refused.reason.as_str()), (403, "Forbidden"), "{refused:?}");
        let refused = status_of(roles.delete("view", &DeleteParams::default()).await);
        assert_eq!(refused.code, 403);

        // A write makes it a file like any other, which then stands for it.
        let label = Patch::Merge(json!({"metadata": {"labels": {"team": "platform"}}}));
        namespaces.patch("default", &PatchParams::default(), &label).await.unwrap();
        let file = remote.must_file("_cluster/namespaces/default.yaml");
        assert!(file.contains("team: platform"), "{file}");
        let served = namespaces.get("default").await.unwrap();
        assert_eq!(served.metadata.labels.unwrap()["team"], "platform");
        assert_eq!(namespaces.list(&ListParams::default()).await.unwrap().items.len(), 4);
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn service_account_tokens_are_issued_and_reviewed_without_being_stored() {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec, TokenReview, TokenReviewSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    within(60, async {
        let remote = Remote::new();
        let store = open(&remote).await;
        let accounts: Api<ServiceAccount> = Api::namespaced(store.client(), "default");
        let account: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "robot"}})).unwrap();
        accounts.create(&PostParams::default(), &account).await.unwrap();
        let commits = remote.commit_count();
        let audiences = vec!["api".to_string()];
        let request = TokenRequest {
            spec: TokenRequestSpec { audiences: audiences.clone(), ..Default::default() },
            ..Default::default()
        };
        let issued = accounts.create_token_request("robot", &PostParams::default(), &request).await.unwrap();
        let token = issued.status.unwrap().token;
        let reviews: Api<TokenReview> = Api::all(store.client());
        let review = |token: String| TokenReview {
            spec: TokenReviewSpec { audiences: Some(audiences.clone()), token: Some(token) },
            ..Default::default()
        };
        let status = reviews.create(&PostParams::default(), &review(token.clone())).await.unwrap().status.unwrap();
        assert_eq!((status.authenticated, status.audiences), (Some(true), Some(audiences.clone())));
        assert_eq!(status.user.unwrap().username.as_deref(), Some("system:serviceaccount:default:robot"));
        let forged = format!("{}x", &token[..token.len() - 1]);
        let status = reviews.create(&PostParams::default(), &review(forged)).await.unwrap().status.unwrap();
        assert_eq!(status.authenticated, Some(false));
        let missing = accounts.create_token_request("nobody", &PostParams::default(), &request).await;
        assert_eq!(status_of(missing).code, 404);
        store.sync().await.unwrap();
        assert_eq!(remote.commit_count(), commits, "tokens and reviews are answers, not objects");
        store.close().await.unwrap();
    })
    .await;
}
