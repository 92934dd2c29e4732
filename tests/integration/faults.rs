//! Faults: an unreachable remote, and the closest look at a remote on this machine.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;
use tower::ServiceExt;

use crate::support::{Remote, configmap, open_with, options, status_of, within};

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

async fn readyz(store: &gitbacked::GitStore) -> (u16, String) {
    use http_body_util::BodyExt;
    let request = http::Request::get("/readyz").body(axum::body::Body::empty()).unwrap();
    let response = store.router().oneshot(request).await.unwrap();
    let code = response.status().as_u16();
    (code, String::from_utf8_lossy(&response.into_body().collect().await.unwrap().to_bytes()).into_owned())
}

#[tokio::test]
async fn an_unreachable_remote_degrades_reads_stay_and_writes_fail_fast() {
    within(60, async {
        let remote = Remote::new();
        remote.commit(&[("a.yaml", Some(&configmap("a", "1")))], "a");
        let store = open_with(&remote, gitbacked::Options { write_timeout: Duration::from_secs(2), ..options() }).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        assert_eq!(readyz(&store).await, (200, "ok".into()));

        // The remote goes away.
        let away = remote.dir().join("away.git");
        std::fs::rename(remote.path(), &away).unwrap();
        assert!(store.sync().await.is_err());
        let (code, text) = readyz(&store).await;
        assert_eq!(code, 503, "readyz reports the degraded state");
        assert!(text.contains("[-]sync refs/heads/main failed: the repository was not found"), "{text}");
        assert!(
            text.contains("[+]sync refs/gitbacked/leases/main ok")
                || text.contains("[-]sync refs/gitbacked/leases/main"),
            "{text}"
        );
        assert!(!text.contains(&*remote.dir().to_string_lossy()), "no path for unauthenticated callers: {text}");
        assert_eq!(api.get("a").await.unwrap().data.unwrap()["key"], "1", "reads serve the last synced state");
        let started = Instant::now();
        let status = status_of(api.create(&PostParams::default(), &cm("b")).await);
        assert_eq!((status.code, status.reason.as_str()), (503, "ServiceUnavailable"), "{status:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "the write failed after {:?}", started.elapsed());

        // It comes back: sync resumes by itself, writes go through again.
        std::fs::rename(&away, remote.path()).unwrap();
        remote.commit(&[("c.yaml", Some(&configmap("c", "3")))], "c while we were away");
        let deadline = Instant::now() + Duration::from_secs(20);
        while api.get("c").await.is_err() {
            assert!(Instant::now() < deadline, "sync did not resume");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(readyz(&store).await.0, 200);
        api.create(&PostParams::default(), &cm("b")).await.unwrap();
        assert!(remote.file("default/configmaps/b.yaml").is_some());
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_local_remote_is_watched_closely() {
    within(60, async {
        let remote = Remote::new();
        // Polling alone would take an hour: the branch of a local remote is watched instead.
        let store = open_with(&remote, gitbacked::Options { interval: Duration::from_secs(3600), ..options() }).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        remote.commit(&[("fast.yaml", Some(&configmap("fast", "1")))], "fast");
        let pushed = Instant::now();
        while api.get("fast").await.is_err() {
            assert!(pushed.elapsed() < Duration::from_secs(10), "a local push was not noticed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        store.close().await.unwrap();
    })
    .await;
}

/// A push lands, but its answer is lost (the `git push` process dies after the remote moved the
/// branch), and before it is retried someone else commits on top. The retry is refused; the write
/// must still be acknowledged as done, not replayed into a 409 AlreadyExists.
#[tokio::test]
async fn a_push_that_landed_without_an_answer_is_acknowledged() {
    within(60, async {
        let remote = Remote::new();
        let store = open_with(&remote, options()).await;
        // Once, when main moves: put a person's commit on top, then kill the client's `git push`.
        let once = remote.dir().join("hook-ran");
        let hook = format!(
            "#!/bin/sh\n[ \"$1\" = committed ] || exit 0\n[ -e '{once}' ] && exit 0\ntouch '{once}'\n\
             while read old new ref; do\n  [ \"$ref\" = refs/heads/main ] || continue\n  \
             c=$(git commit-tree -p \"$new\" -m 'a commit on top' \"$new^{{tree}}\")\n  \
             git update-ref refs/heads/main \"$c\" \"$new\"\ndone\n\
             push=$(ps -o ppid= -p $PPID | tr -d ' ')\nkill -9 \"$push\"\n",
            once = once.display()
        );
        let path = remote.path().join("hooks/reference-transaction");
        std::fs::write(&path, hook).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let created = api.create(&PostParams::default(), &cm("landed")).await;
        assert!(once.exists(), "the hook did not run");
        let created = created.expect("the write landed, so it is acknowledged");
        assert_eq!(created.data.unwrap()["k"], "v");
        let log = remote.log();
        assert_eq!(log[..2], ["a commit on top", "create v1 ConfigMap default/landed"], "{log:?}");
        assert!(remote.file("default/configmaps/landed.yaml").is_some());
    })
    .await;
}
