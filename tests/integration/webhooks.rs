//! `POST /hooks/git`: a git host's webhook makes the store sync now instead of at the next poll.
//!
//! The store reads the remote over `git://` from a `git daemon` on a loopback port, as it would a
//! remote on another machine (a remote on this machine is watched directly and needs no webhook),
//! and polls it only once an hour: whatever it serves after a person's push came through the webhook.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use gitbacked::{GitStore, Options};
use gitbacked_apiserver::http::webhook::signature;
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use serde_json::Value;
use tower::ServiceExt;

use crate::support::{Remote, configmap, options, within};
use gitbacked_test_support::servers::{Server, git_daemon};

const SECRET: &str = "It's a Secret to Everybody";

/// A push event, roughly as GitHub sends it (only the signature over the bytes matters).
const PUSH: &str = r#"{"ref":"refs/heads/main","before":"0000000","after":"1111111","repository":{"full_name":"acme/state"},"pusher":{"name":"a-person"}}"#;

/// `git daemon` serving the remote on a loopback port; stopped on drop.
struct Daemon {
    _server: Server,
    url: String,
}

impl Daemon {
    fn start(remote: &Remote) -> Self {
        let (server, port) = git_daemon(remote.dir(), &remote.dir().join("daemon.log"));
        Daemon { _server: server, url: format!("git://127.0.0.1:{port}/remote.git") }
    }
}

/// A store on the remote through `daemon`, polling once an hour, with `secret` for the webhook.
async fn open(daemon: &Daemon, secret: Option<&str>) -> GitStore {
    let options =
        Options { interval: Duration::from_secs(3600), webhook_secret: secret.map(str::to_string), ..options() };
    GitStore::open(&daemon.url, options).await.expect("store opens")
}

/// POSTs `body` to /hooks/git with `headers` through the store's Router.
async fn post(store: &GitStore, headers: &[(&str, String)], body: &str) -> (StatusCode, Value) {
    let mut request = Request::post("/hooks/git").header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = store.router().oneshot(request.body(Body::from(body.to_string())).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn served(store: &GitStore, name: &str) -> bool {
    Api::<ConfigMap>::default_namespaced(store.client()).get_opt(name).await.unwrap().is_some()
}

fn github(secret: &str, body: &str) -> (&'static str, String) {
    ("x-hub-signature-256", format!("sha256={}", signature(secret.as_bytes(), body.as_bytes())))
}

fn gitea(secret: &str, body: &str) -> (&'static str, String) {
    ("x-gitea-signature", signature(secret.as_bytes(), body.as_bytes()))
}

fn gitlab(token: &str) -> (&'static str, String) {
    ("x-gitlab-token", token.to_string())
}

#[tokio::test]
async fn a_signed_webhook_syncs_at_once_for_github_gitlab_and_gitea() {
    within(120, async {
        let remote = Remote::new();
        let daemon = Daemon::start(&remote);
        let store = open(&daemon, Some(SECRET)).await;
        let senders = [
            ("from-github", vec![github(SECRET, PUSH), ("x-github-event", "push".into())]),
            ("from-gitlab", vec![gitlab(SECRET), ("x-gitlab-event", "Push Hook".into())]),
            ("from-gitea", vec![gitea(SECRET, PUSH), ("x-gitea-event", "push".into())]),
        ];
        for (name, headers) in senders {
            let file = format!("default/{name}.yaml");
            remote.commit(&[(&file, Some(&configmap(name, "1")))], &format!("a person adds {name}"));
            assert!(!served(&store, name).await, "{name}: the store polls once an hour");
            let started = Instant::now();
            let (code, status) = post(&store, &headers, PUSH).await;
            assert_eq!(code, StatusCode::OK, "{name}: {status}");
            assert_eq!((status["kind"].as_str(), status["status"].as_str()), (Some("Status"), Some("Success")));
            // 200 means the store is up to date: the object is served right away.
            assert!(served(&store, name).await, "{name} is served once the webhook answered");
            assert!(started.elapsed() < Duration::from_secs(10), "{name}: the webhook took {:?}", started.elapsed());
        }
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_wrong_or_missing_signature_is_401_and_syncs_nothing() {
    within(120, async {
        let remote = Remote::new();
        let daemon = Daemon::start(&remote);
        let store = open(&daemon, Some(SECRET)).await;
        remote.commit(&[("default/pushed.yaml", Some(&configmap("pushed", "1")))], "a person pushes");

        let other_body = PUSH.replace("main", "other");
        let rejected: Vec<(&str, Vec<(&str, String)>)> = vec![
            ("no signature header", vec![("x-github-event", "push".into())]),
            ("GitHub, another secret", vec![github("not the secret", PUSH)]),
            ("GitHub, another body", vec![github(SECRET, &other_body)]),
            ("GitHub, malformed", vec![("x-hub-signature-256", "sha256=xyz".into())]),
            ("GitHub, Gitea's form", vec![("x-hub-signature-256", signature(SECRET.as_bytes(), PUSH.as_bytes()))]),
            ("GitLab, another token", vec![gitlab("not the secret")]),
            ("GitLab, empty token", vec![gitlab("")]),
            ("Gitea, another secret", vec![gitea("not the secret", PUSH)]),
            ("a good and a bad signature", vec![github(SECRET, PUSH), gitlab("not the secret")]),
        ];
        for (what, headers) in rejected {
            let (code, status) = post(&store, &headers, PUSH).await;
            assert_eq!(code, StatusCode::UNAUTHORIZED, "{what}: {status}");
            assert_eq!(
                (
                    status["kind"].as_str(),
                    status["status"].as_str(),
                    status["reason"].as_str(),
                    status["code"].as_u64()
                ),
                (Some("Status"), Some("Failure"), Some("Unauthorized"), Some(401)),
                "{what}"
            );
        }
        // Nothing was triggered: the push is still unseen a moment later.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!served(&store, "pushed").await, "a rejected webhook synced the store");
        assert!(remote.file("default/pushed.yaml").is_some());

        // The same push, announced with the secret, is seen.
        let (code, _) = post(&store, &[github(SECRET, PUSH)], PUSH).await;
        assert_eq!(code, StatusCode::OK);
        assert!(served(&store, "pushed").await);
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn without_a_secret_the_endpoint_is_not_served() {
    within(120, async {
        let remote = Remote::new();
        let daemon = Daemon::start(&remote);
        let store = open(&daemon, None).await;
        remote.commit(&[("default/pushed.yaml", Some(&configmap("pushed", "1")))], "a person pushes");
        let (code, status) = post(&store, &[github(SECRET, PUSH)], PUSH).await;
        assert_eq!((code, status["reason"].as_str()), (StatusCode::NOT_FOUND, Some("NotFound")));
        assert!(!served(&store, "pushed").await);
        store.close().await.unwrap();

        // A blank secret would let an empty X-Gitlab-Token through: refused.
        let blank = Options { webhook_secret: Some(" \n".into()), ..options() };
        assert!(matches!(GitStore::open(&remote.url(), blank).await, Err(gitbacked::Error::Options(_))));
    })
    .await;
}
