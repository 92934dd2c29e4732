//! kube-rs over HTTP, configured from a kubeconfig, behaves as in-process: the same Router served
//! on a loopback port.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use crate::support::{Remote, configmap, open};

#[tokio::test]
async fn kube_over_http_from_a_kubeconfig() {
    let remote = Remote::new();
    let store = open(&remote).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, store.router()).into_future());

    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: g\n  cluster:\n    server: http://{address}\nusers:\n- name: g\n  user:\n    token: t\ncontexts:\n- name: g\n  context:\n    cluster: g\n    user: g\n    namespace: default\ncurrent-context: g\n"
    );
    let kubeconfig = Kubeconfig::from_yaml(&kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(client);

    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "over-http"}, "data": {"k": "v"}})).unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    assert!(remote.file("default/configmaps/over-http.yaml").unwrap().contains("k: v"));

    // A watcher over HTTP sees a person's push.
    let mut events = watcher(api.clone(), watcher::Config::default()).applied_objects().boxed();
    let first = tokio::time::timeout(std::time::Duration::from_secs(20), events.try_next()).await.unwrap().unwrap();
    assert_eq!(first.unwrap().metadata.name.as_deref(), Some("over-http"));
    remote.commit(&[("pushed.yaml", Some(&configmap("pushed", "1")))], "a person pushes");
    let next = tokio::time::timeout(std::time::Duration::from_secs(20), events.try_next()).await.unwrap().unwrap();
    assert_eq!(next.unwrap().metadata.name.as_deref(), Some("pushed"));

    let err = api.get("missing").await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.is_not_found()), "{err:?}");
    server.abort();
    store.close().await.unwrap();
}
