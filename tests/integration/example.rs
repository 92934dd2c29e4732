//! The `replicator` example end to end: its controller (the very same source, included below) runs
//! on a store while a person edits Replicators with git and a client patches them through the API.

#[path = "../../examples/replicator/controller.rs"]
mod controller;

use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::support::{Remote, git, open};
use controller::{Replicated, Replicator};

/// How long any one step may take.
const STEP: Duration = Duration::from_secs(30);

/// A Replicator manifest as a person writes it, with comments.
fn replicator_yaml(count: i32) -> String {
    format!(
        "# The web tier's copies.\napiVersion: gitbacked.dev/v1\nkind: Replicator\nmetadata:\n  name: web\n  namespace: default\nspec:\n  count: {count}  # keep it small\n  selector:\n    app: web\n    tier: frontend\n"
    )
}

/// The Replicated objects on the remote's main branch: file path and parsed content.
fn replicated_files(remote: &Remote) -> Vec<(String, Value)> {
    remote
        .files()
        .into_iter()
        .filter(|p| p.ends_with(".yaml"))
        .filter_map(|p| {
            let text = remote.file(&p)?;
            let value: Value = serde_saphyr::from_str(&text).ok()?;
            (value["kind"] == "Replicated").then_some((p, value))
        })
        .collect()
}

/// Polls `check` until it returns `Some`, failing the test after [`STEP`].
async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the remote holds exactly `count` copies `web-0..` that carry the selector labels
/// and a controller reference to `uid`, and the Replicator's status reports them for its current
/// generation; returns that generation.
async fn settled(remote: &Remote, api: &Api<Replicator>, uid: &str, count: usize) -> i64 {
    let what = format!("{count} Replicated objects and a matching status");
    wait_for(&what, async || {
        let rep = api.get("web").await.ok()?;
        let status = rep.status.as_ref()?;
        let generation = rep.metadata.generation?;
        if status.replicas != count as i32 || status.observed_generation != Some(generation) {
            return None;
        }
        let files = replicated_files(remote);
        let mut names: Vec<&str> =
            files.iter().map(|(_, v)| v["metadata"]["name"].as_str().unwrap_or_default()).collect();
        names.sort();
        let expected: Vec<String> = (0..count).map(|i| format!("web-{i}")).collect();
        (names == expected).then_some(())?;
        for (path, value) in &files {
            let meta = &value["metadata"];
            assert_eq!(meta["labels"]["app"], "web", "{path}: {value}");
            assert_eq!(meta["labels"]["tier"], "frontend", "{path}: {value}");
            let owners = meta["ownerReferences"].as_array().expect("ownerReferences");
            assert_eq!(owners.len(), 1, "{path}: {value}");
            assert_eq!(owners[0]["uid"], uid, "{path}: {value}");
            assert_eq!(owners[0]["kind"], "Replicator", "{path}: {value}");
            assert_eq!(owners[0]["controller"], true, "{path}: {value}");
        }
        Some(generation)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replicator_example_scales_with_git_and_the_api() {
    let remote = Remote::new();
    let store = open(&remote).await;
    let client = store.client();

    controller::install_crds(&client).await.unwrap();
    let log = remote.log();
    assert!(
        log.contains(&"create apiextensions.k8s.io/v1 CustomResourceDefinition replicators.gitbacked.dev".into())
            && log
                .contains(&"create apiextensions.k8s.io/v1 CustomResourceDefinition replicateds.gitbacked.dev".into()),
        "{log:?}"
    );
    // Installing again finds both and writes nothing.
    controller::install_crds(&client).await.unwrap();
    assert_eq!(remote.log().len(), log.len());

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(controller::run(client.clone(), async {
        let _ = stopped.await;
    }));

    // A person asks for three copies.
    remote.commit(&[("apps/web.yaml", Some(&replicator_yaml(3)))], "add web replicator");
    let api: Api<Replicator> = Api::namespaced(client.clone(), "default");
    let rep = wait_for("the Replicator to be served", async || api.get("web").await.ok()).await;
    let uid = rep.uid().expect("uid");
    let g1 = settled(&remote, &api, &uid, 3).await;
    let copies: Api<Replicated> = Api::namespaced(client.clone(), "default");
    let served = copies.get("web-2").await.unwrap();
    assert_eq!(served.spec.index, 2);
    assert_eq!(served.owner_references()[0].uid, uid);

    // The person scales down to one.
    remote.commit(&[("apps/web.yaml", Some(&replicator_yaml(1)))], "scale web to 1");
    let g2 = settled(&remote, &api, &uid, 1).await;
    assert!(g2 > g1, "a spec change bumps the generation: {g1} -> {g2}");

    // A client scales up to two through the API; the change lands in the person's file.
    api.patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"count": 2}}))).await.unwrap();
    let g3 = settled(&remote, &api, &uid, 2).await;
    assert!(g3 > g2, "a spec change bumps the generation: {g2} -> {g3}");
    // The controller's status writes and the client's patch changed the person's file only where
    // values changed: comments and layout stay, status goes last.
    let manifest = remote.file("apps/web.yaml").unwrap();
    let expected = replicator_yaml(2);
    assert!(manifest.starts_with(&expected), "{manifest}");
    assert!(manifest[expected.len()..].starts_with("status:\n"), "{manifest}");

    // Every copy came and went as a commit by gitbacked.
    let history = git(&remote.path(), &["log", "--format=%an: %s", "main"]);
    for line in [
        "gitbacked: create gitbacked.dev/v1 Replicated default/web-0",
        "gitbacked: create gitbacked.dev/v1 Replicated default/web-1",
        "gitbacked: create gitbacked.dev/v1 Replicated default/web-2",
        "gitbacked: delete gitbacked.dev/v1 Replicated default/web-1",
        "gitbacked: delete gitbacked.dev/v1 Replicated default/web-2",
    ] {
        assert!(history.lines().any(|l| l == line), "{line:?} in\n{history}");
    }
    let creates = history.lines().filter(|l| l.contains(" Replicated default/web-1")).count();
    assert_eq!(creates, 3, "web-1 created, deleted, created again:\n{history}");

    stop.send(()).unwrap();
    tokio::time::timeout(STEP, running).await.expect("the controller stops").unwrap();
    store.close().await.unwrap();
}
