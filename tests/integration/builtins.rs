//! Built-in kinds as kube-apiserver's registries make them: defaults served and not written,
//! initial status, type strategies, addresses the server allocates, namespaces, Events' two views
//! and the subresources that only store data.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::support::{Remote, open, within};

fn object<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

fn as_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

#[tokio::test]
async fn defaults_are_served_and_not_written_to_files() {
    within(60, async {
        let remote = Remote::new();
        let person = "apiVersion: v1\nkind: Service\nmetadata:\n  name: by-hand\n  namespace: default\nspec:\n  \
                      clusterIP: 10.96.7.7\n  selector: {app: a}\n  ports:\n  - port: 80\n";
        let explicit = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: explicit\n  namespace: default\n\
                        spec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: e\n  template:\n    metadata:\n      \
                        labels:\n        app: e\n    spec:\n      containers:\n      - name: e\n        image: nginx:1.27\n";
        remote.commit(&[("svc.yaml", Some(person)), ("explicit.yaml", Some(explicit))], "by hand");
        let store = open(&remote).await;
        let client = store.client();

        // A person's Service is served as kube-apiserver would have stored it; the file is untouched.
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        let svc = as_json(&services.get("by-hand").await.unwrap());
        assert_eq!(svc["spec"]["type"], "ClusterIP");
        assert_eq!(svc["spec"]["sessionAffinity"], "None");
        assert_eq!(svc["spec"]["ports"], json!([{"port": 80, "protocol": "TCP", "targetPort": 80}]));
        assert_eq!(svc["spec"]["clusterIPs"], json!(["10.96.7.7"]));
        assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(svc["spec"]["ipFamilyPolicy"], "SingleStack");
        assert_eq!(svc["spec"]["internalTrafficPolicy"], "Cluster");
        assert_eq!(svc["status"], json!({"loadBalancer": {}}));
        assert_eq!(remote.must_file("svc.yaml"), person);

        // A Deployment created with few fields is answered with its defaults; its file has none.
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let web: Deployment = object(json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}));
        let created = as_json(&deployments.create(&PostParams::default(), &web).await.unwrap());
        assert_eq!(created["spec"]["replicas"], 1);
        assert_eq!(created["spec"]["strategy"], json!({"type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}));
        assert_eq!(created["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(created["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(created["metadata"]["generation"], 1);
        let pod_spec = &created["spec"]["template"]["spec"];
        assert_eq!(pod_spec["restartPolicy"], "Always");
        assert_eq!(pod_spec["containers"][0]["imagePullPolicy"], "IfNotPresent");
        let file = remote.must_file("default/deployments.apps/web.yaml");
        for default in ["replicas", "strategy", "restartPolicy", "imagePullPolicy", "dnsPolicy", "schedulerName"] {
            assert!(!file.contains(default), "{default} was written:\n{file}");
        }

        // A client writing back what it read, with one change, writes that change only.
        let mut read = deployments.get("web").await.unwrap();
        read.spec.as_mut().unwrap().template.spec.as_mut().unwrap().containers[0].image = Some("nginx:1.28".into());
        deployments.replace("web", &PostParams::default(), &read).await.unwrap();
        // (Key order within the document is issue 14's: compared as lines.)
        let lines = |text: &str| -> std::collections::BTreeSet<String> { text.lines().map(str::to_string).collect() };
        let after = remote.must_file("default/deployments.apps/web.yaml");
        assert_eq!(lines(&after), lines(&file.replace("image: nginx:1.27\n", "image: nginx:1.28\n")), "{after}");
        // Writing it back unchanged commits nothing.
        let commits = remote.commit_count();
        let read = deployments.get("web").await.unwrap();
        deployments.replace("web", &PostParams::default(), &read).await.unwrap();
        store.sync().await.unwrap();
        assert_eq!(remote.commit_count(), commits);

        // A JSON patch finds the defaulted value to replace; a person's explicit default stays.
        let scale = Patch::Json::<()>(serde_json::from_value(json!([
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 3}])).unwrap());
        deployments.patch("web", &PatchParams::default(), &scale).await.unwrap();
        assert!(remote.must_file("default/deployments.apps/web.yaml").contains("replicas: 3"));
        let image = Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "e", "image": "nginx:1.28"}]}}}}));
        deployments.patch("explicit", &PatchParams::default(), &image).await.unwrap();
        assert_eq!(remote.must_file("explicit.yaml"), explicit.replace("nginx:1.27", "nginx:1.28"));

        // A Pod starts Pending with its QoS class, whatever status it was sent with.
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let pod: Pod = object(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx:1.27",
            "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}}]}, "status": {"phase": "Running"}}));
        let created = as_json(&pods.create(&PostParams::default(), &pod).await.unwrap());
        assert_eq!(created["status"], json!({"phase": "Pending", "qosClass": "Guaranteed"}));
        assert_eq!(created["spec"]["containers"][0]["resources"]["requests"], json!({"cpu": "100m", "memory": "64Mi"}));
        assert_eq!(created["spec"]["enableServiceLinks"], true);
        assert_eq!(created["spec"]["terminationGracePeriodSeconds"], 30);
        let file = remote.must_file("default/pods/p.yaml");
        assert!(!file.contains("status") && !file.contains("requests"), "{file}");

        // Namespaces, StorageClasses and Secrets have theirs.
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns = as_json(&namespaces.create(&PostParams::default(), &object(json!({"metadata": {"name": "team"}}))).await.unwrap());
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");
        assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "team");
        assert!(ns["metadata"].get("generation").is_none(), "{ns}");
        let classes: Api<StorageClass> = Api::all(client.clone());
        let class = as_json(&classes.create(&PostParams::default(), &object(json!({"metadata": {"name": "fast"}, "provisioner": "x"}))).await.unwrap());
        assert_eq!((class["reclaimPolicy"].as_str(), class["volumeBindingMode"].as_str()), (Some("Delete"), Some("Immediate")));

        // A Secret's stringData is merged into data and not stored.
        let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
        let secret: Secret = object(json!({"metadata": {"name": "s"}, "data": {"a": "YQ==", "b": "Yg=="},
            "stringData": {"b": "two", "c": "three"}}));
        let created = as_json(&secrets.create(&PostParams::default(), &secret).await.unwrap());
        assert_eq!(created["data"], json!({"a": "YQ==", "b": "dHdv", "c": "dGhyZWU="}));
        assert_eq!(created["type"], "Opaque");
        assert!(created.get("stringData").is_none());
        let file = remote.must_file("default/secrets/s.yaml");
        assert!(!file.contains("stringData") && file.contains("dGhyZWU="), "{file}");
        store.close().await.unwrap();
    })
    .await;
}
