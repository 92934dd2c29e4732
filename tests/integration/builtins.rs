//! Built-in kinds as kube-apiserver's registries make them: defaults served and not written,
//! initial status, type strategies, addresses the server allocates, namespaces, Events' two views
//! and the subresources that only store data.

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::support::{Remote, open, status_of, within};

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

        // Applying what was created is idempotent: the defaulted key of a port (`protocol`) matches
        // the applied item, as in kube-apiserver (the Python client's e2e test does this).
        let with_port: Deployment = object(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ported"}, "spec": {
            "selector": {"matchLabels": {"app": "p"}}, "template": {"metadata": {"labels": {"app": "p"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}}}));
        deployments.create(&PostParams::default(), &with_port).await.unwrap();
        let applied = deployments.patch("ported", &PatchParams::apply("e2e"), &Patch::Apply(&with_port)).await.unwrap();
        let ports = &applied.spec.unwrap().template.spec.unwrap().containers[0].ports.clone().unwrap();
        assert_eq!(ports.len(), 1, "{ports:?}");

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
        let metadata = namespaces.get_metadata("team").await.unwrap();
        assert_eq!(metadata.metadata.labels.unwrap()["kubernetes.io/metadata.name"], "team", "in the metadata view too");
        // Label selectors see the labels as served.
        let selected = namespaces.list(&kube::api::ListParams::default().labels("kubernetes.io/metadata.name=team")).await.unwrap();
        assert_eq!(selected.items.len(), 1);
        assert!(ns["metadata"].get("generation").is_none(), "{ns}");
        let classes: Api<StorageClass> = Api::all(client.clone());
        let class = as_json(&classes.create(&PostParams::default(), &object(json!({"metadata": {"name": "fast"}, "provisioner": "x"}))).await.unwrap());
        assert_eq!((class["reclaimPolicy"].as_str(), class["volumeBindingMode"].as_str()), (Some("Delete"), Some("Immediate")));

        // A Node keeps the status it registers with; allocatable defaults to capacity.
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
        let node = object(json!({"metadata": {"name": "n1"}, "status": {"capacity": {"cpu": "4"}, "nodeInfo": {
            "architecture": "amd64", "bootID": "", "containerRuntimeVersion": "", "kernelVersion": "", "kubeProxyVersion": "",
            "kubeletVersion": "v1.33.0", "machineID": "", "operatingSystem": "linux", "osImage": "", "systemUUID": ""}}}));
        let created = as_json(&nodes.create(&PostParams::default(), &node).await.unwrap());
        assert_eq!(created["status"]["capacity"], json!({"cpu": "4"}));
        assert_eq!(created["status"]["allocatable"], json!({"cpu": "4"}));
        assert_eq!(created["status"]["nodeInfo"]["kubeletVersion"], "v1.33.0");

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

#[tokio::test]
async fn services_get_addresses_unique_across_processes() {
    within(90, async {
        let remote = Remote::new();
        let slow = gitbacked::Options { interval: std::time::Duration::from_secs(3600), ..crate::support::options() };
        let (a, b) = (open(&remote).await, crate::support::open_with(&remote, slow).await);
        let services: Api<Service> = Api::namespaced(a.client(), "default");
        let service = |name: &str, spec: Value| -> Service { object(json!({"metadata": {"name": name}, "spec": spec})) };
        let port = json!([{"port": 80}]);

        let mut ips = std::collections::BTreeSet::new();
        for name in ["one", "two", "three"] {
            let created = as_json(&services.create(&PostParams::default(), &service(name, json!({"ports": port}))).await.unwrap());
            let ip = created["spec"]["clusterIP"].as_str().unwrap().to_string();
            let parsed: std::net::Ipv4Addr = ip.parse().unwrap();
            // In 10.96.0.0/12, and not the `kubernetes` Service's.
            assert!(parsed.octets()[0] == 10 && (96..112).contains(&parsed.octets()[1]) && ip != "10.96.0.1", "{ip}");
            assert_eq!(created["spec"]["clusterIPs"], json!([ip]));
            let file = remote.must_file(&format!("default/services/{name}.yaml"));
            assert!(file.contains(&format!("clusterIP: \"{ip}\"")), "{file}");
            ips.insert(ip);
        }
        assert_eq!(ips.len(), 3, "{ips:?}");

        // Headless and ExternalName Services get no address; a replace without the address keeps it.
        let headless = as_json(&services.create(&PostParams::default(), &service("headless", json!({"clusterIP": "None", "ports": port}))).await.unwrap());
        assert_eq!((headless["spec"]["clusterIP"].as_str(), &headless["spec"]["clusterIPs"]), (Some("None"), &json!(["None"])));
        let external = as_json(&services.create(&PostParams::default(), &service("ext", json!({"type": "ExternalName", "externalName": "example.com"}))).await.unwrap());
        assert!(external["spec"].get("clusterIP").is_none(), "{external}");
        let one = services.get("one").await.unwrap();
        let mut without = one.clone();
        without.spec.as_mut().unwrap().cluster_ip = None;
        without.spec.as_mut().unwrap().cluster_ips = None;
        let replaced = services.replace("one", &PostParams::default(), &without).await.unwrap();
        assert_eq!(replaced.spec.unwrap().cluster_ip, one.spec.unwrap().cluster_ip);

        // NodePort Services get node ports in 30000-32767; a port taken is refused.
        let node = as_json(&services.create(&PostParams::default(), &service("node", json!({"type": "NodePort", "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}))).await.unwrap());
        let node_ports: Vec<i64> = node["spec"]["ports"].as_array().unwrap().iter().map(|p| p["nodePort"].as_i64().unwrap()).collect();
        assert!(node_ports.iter().all(|p| (30000..=32767).contains(p)) && node_ports[0] != node_ports[1], "{node_ports:?}");
        assert_eq!(node["spec"]["externalTrafficPolicy"], "Cluster");
        let taken = status_of(services.create(&PostParams::default(), &service("node2", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": node_ports[0]}]}))).await);
        assert_eq!((taken.code, taken.reason.as_str()), (422, "Invalid"));
        assert_eq!(causes(&taken), [format!("spec.ports[0].nodePort: Invalid value: {}: provided port is already allocated", node_ports[0])]);
        let outside = status_of(services.create(&PostParams::default(), &service("node3", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}))).await);
        assert!(causes(&outside)[0].contains("provided port is not in the valid range. The range of valid ports is 30000-32767"), "{outside:?}");

        // Another process that has not seen these Services yet asks for one's address: its write
        // is replayed on the remote's new tip, and refused there.
        let taken_ip = ips.iter().next().unwrap().clone();
        let other: Api<Service> = Api::namespaced(b.client(), "default");
        let commits = remote.commit_count();
        let refused = status_of(other.create(&PostParams::default(), &service("late", json!({"clusterIP": taken_ip, "ports": port}))).await);
        assert_eq!(causes(&refused), [format!("spec.clusterIPs[0]: Invalid value: \"{taken_ip}\": failed to allocate IP {taken_ip}: provided IP is already allocated")]);
        let outside = status_of(other.create(&PostParams::default(), &service("far", json!({"clusterIP": "192.168.0.1", "ports": port}))).await);
        assert!(causes(&outside)[0].contains("is not in the valid range. The range of valid IPs is 10.96.0.0/12"), "{outside:?}");
        a.sync().await.unwrap();
        assert_eq!(remote.commit_count(), commits, "nothing committed");
        a.close().await.unwrap();
        b.close().await.unwrap();
    })
    .await;
}

fn causes(status: &kube::core::Status) -> Vec<String> {
    let details = status.details.as_ref().expect("details");
    details.causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
}

#[tokio::test]
async fn namespaces_exist_by_their_objects_and_are_deleted_with_them() {
    use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
    use kube::api::DeleteParams;
    within(90, async {
        let remote = Remote::new();
        remote.commit(
            &[("team-a/settings.yaml", Some(&crate::support::configmap("x", "1").replace("default", "team-a")))],
            "by hand",
        );
        let store = open(&remote).await;
        let client = store.client();

        // A namespace that holds objects is served, with its default ServiceAccount.
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let names: Vec<String> = namespaces
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|n| n.metadata.name.unwrap())
            .collect();
        assert_eq!(names, ["default", "kube-node-lease", "kube-public", "kube-system", "team-a"]);
        let team = namespaces.get("team-a").await.unwrap();
        assert_eq!(team.status.unwrap().phase.as_deref(), Some("Active"));
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "team-a");
        let listed = accounts.list(&Default::default()).await.unwrap().items;
        assert_eq!(listed.iter().map(|a| a.metadata.name.clone().unwrap()).collect::<Vec<_>>(), ["default"]);
        Api::<ServiceAccount>::namespaced(client.clone(), "kube-system").get("default").await.unwrap();

        // Watchers see an implied namespace (and its ServiceAccount) come and go with its objects.
        let from = namespaces.list(&Default::default()).await.unwrap().metadata.resource_version.unwrap();
        let mut watch = namespaces.watch(&kube::api::WatchParams::default(), &from).await.unwrap().boxed();
        let accounts_all: Api<ServiceAccount> = Api::all(client.clone());
        let accounts_from = accounts_all.list(&Default::default()).await.unwrap().metadata.resource_version.unwrap();
        let mut account_watch =
            accounts_all.watch(&kube::api::WatchParams::default(), &accounts_from).await.unwrap().boxed();
        let file = crate::support::configmap("c", "1").replace("default", "team-c");
        remote.commit(&[("team-c/c.yaml", Some(&file))], "a new namespace by its object");
        let next = |event: Option<Result<kube::api::WatchEvent<Namespace>, kube::Error>>| match event {
            Some(Ok(kube::api::WatchEvent::Added(n))) => ("ADDED", n.metadata.name.unwrap()),
            Some(Ok(kube::api::WatchEvent::Deleted(n))) => ("DELETED", n.metadata.name.unwrap()),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(next(watch.next().await), ("ADDED", "team-c".to_string()));
        match account_watch.next().await {
            Some(Ok(kube::api::WatchEvent::Added(a))) => assert_eq!(a.metadata.namespace.as_deref(), Some("team-c")),
            other => panic!("unexpected {other:?}"),
        }
        remote.commit(&[("team-c/c.yaml", None)], "its object goes");
        assert_eq!(next(watch.next().await), ("DELETED", "team-c".to_string()));

        // Nothing is created in a namespace that does not exist.
        let configmaps = |ns: &str| Api::<ConfigMap>::namespaced(client.clone(), ns);
        let cm: ConfigMap = object(json!({"metadata": {"name": "y"}, "data": {"k": "v"}}));
        let commits = remote.commit_count();
        let missing = status_of(configmaps("nowhere").create(&PostParams::default(), &cm).await);
        assert_eq!(
            (missing.code, missing.reason.as_str(), missing.message.as_str()),
            (404, "NotFound", "namespaces \"nowhere\" not found")
        );
        store.sync().await.unwrap();
        assert_eq!(remote.commit_count(), commits, "nothing committed");

        // Deleting a namespace makes it Terminating, refuses creates into it, deletes what is in it
        // (commits as usual), then the namespace.
        namespaces.create(&PostParams::default(), &object(json!({"metadata": {"name": "team-b"}}))).await.unwrap();
        configmaps("team-b").create(&PostParams::default(), &cm).await.unwrap();
        let held: ConfigMap = object(json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}));
        configmaps("team-b").create(&PostParams::default(), &held).await.unwrap();
        let deleting = namespaces.delete("team-b", &DeleteParams::default()).await.unwrap().left().unwrap();
        assert_eq!(deleting.status.unwrap().phase.as_deref(), Some("Terminating"));
        let refused = status_of(
            configmaps("team-b").create(&PostParams::default(), &object(json!({"metadata": {"name": "z"}}))).await,
        );
        assert_eq!((refused.code, refused.reason.as_str()), (403, "Forbidden"), "{refused:?}");
        assert!(remote.files().iter().all(|f| !f.ends_with("/z.yaml")), "{:?}", remote.files());
        assert!(
            refused
                .message
                .ends_with("unable to create new content in namespace team-b because it is being terminated"),
            "{}",
            refused.message
        );
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while configmaps("team-b").get_opt("y").await.unwrap().is_some() {
            assert!(tokio::time::Instant::now() < deadline, "the namespace's objects were not deleted");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // An object with a finalizer of its own is waited for.
        assert!(namespaces.get_opt("team-b").await.unwrap().is_some());
        let release = Patch::Merge(json!({"metadata": {"finalizers": null}}));
        configmaps("team-b").patch("held", &PatchParams::default(), &release).await.unwrap();
        namespaces.delete("team-a", &DeleteParams::default()).await.unwrap();
        while namespaces.get_opt("team-b").await.unwrap().is_some()
            || namespaces.get_opt("team-a").await.unwrap().is_some()
        {
            assert!(tokio::time::Instant::now() < deadline, "the namespaces were not removed");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        store.sync().await.unwrap();
        assert_eq!(remote.files(), ["README.md"]);
        let log = remote.log();
        assert!(log.iter().any(|m| m == "delete v1 ConfigMap team-b/y"), "{log:?}");
        assert!(log.iter().any(|m| m == "update finalize of v1 Namespace team-a"), "{log:?}");
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn scale_binding_and_eviction() {
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use kube::api::EvictParams;
    within(60, async {
        let remote = Remote::new();
        let store = open(&remote).await;
        let client = store.client();

        // A Scale PUT as client-go's scale client sends it; the selector in its string form.
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let web: Deployment = object(json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]},
            "template": {"metadata": {"labels": {"app": "web", "tier": "a"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}));
        deployments.create(&PostParams::default(), &web).await.unwrap();
        let scale = deployments.get_scale("web").await.unwrap();
        assert_eq!(scale.spec.as_ref().unwrap().replicas, Some(1));
        assert_eq!(scale.status.as_ref().unwrap().selector.as_deref(), Some("app=web,tier in (a,b)"));
        let put: kube::core::subresource::Scale = object(json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": 4}}));
        let scaled = deployments.replace_scale("web", &PostParams::default(), &put).await.unwrap();
        assert_eq!(scaled.spec.unwrap().replicas, Some(4));
        assert!(remote.must_file("default/deployments.apps/web.yaml").contains("replicas: 4"));

        // A scheduler binds a pod to a node, once.
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let pod: Pod = object(json!({"metadata": {"name": "p", "labels": {"app": "p"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}));
        pods.create(&PostParams::default(), &pod).await.unwrap();
        let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
            "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}});
        pods.create_subresource::<Value, kube::core::Status>("binding", "p", &PostParams::default(), &binding).await.unwrap();
        let bound = pods.get("p").await.unwrap();
        assert_eq!(bound.spec.unwrap().node_name.as_deref(), Some("node-1"));
        let scheduled = bound.status.unwrap().conditions.unwrap();
        assert_eq!((scheduled[0].type_.as_str(), scheduled[0].status.as_str()), ("PodScheduled", "True"));
        assert!(remote.must_file("default/pods/p.yaml").contains("nodeName: node-1"));
        let again = status_of(pods.create_subresource::<Value, kube::core::Status>("binding", "p", &PostParams::default(), &binding).await);
        assert_eq!((again.code, again.message.as_str()), (409, "Operation cannot be fulfilled on pods \"p\": pod p is already assigned to node \"node-1\""));

        // The `bindings` resource (what `kubectl create -f binding.yaml` posts to) binds too, and
        // stores no Binding.
        let bindings = Api::<kube::api::DynamicObject>::namespaced_with(
            client.clone(),
            "default",
            &kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::Binding>(&()),
        );
        pods.create(&PostParams::default(), &object(json!({"metadata": {"name": "q"},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}))).await.unwrap();
        let bind_q: kube::api::DynamicObject = object(json!({"apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": "q"}, "target": {"kind": "Node", "name": "node-2"}}));
        bindings.create(&PostParams::default(), &bind_q).await.unwrap();
        assert_eq!(pods.get("q").await.unwrap().spec.unwrap().node_name.as_deref(), Some("node-2"));
        assert!(remote.files().iter().all(|f| !f.contains("bindings")), "{:?}", remote.files());

        // Access reviews are answered, never stored: gitbacked authorizes every authenticated request.
        use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
        let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
        let review: SelfSubjectAccessReview = object(json!({"spec": {"resourceAttributes": {"verb": "delete", "resource": "pods"}}}));
        let answered = reviews.create(&PostParams::default(), &review).await.unwrap();
        assert!(answered.status.unwrap().allowed);
        let files = remote.files();
        assert!(files.iter().all(|f| !f.contains("review")), "{files:?}");

        // An eviction honours the PodDisruptionBudget that covers a running pod.
        pods.patch_status("p", &PatchParams::default(), &Patch::Merge(json!({"status": {"phase": "Running"}}))).await.unwrap();
        let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
        let pdb: PodDisruptionBudget = object(json!({"metadata": {"name": "pdb"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "p"}}}}));
        budgets.create(&PostParams::default(), &pdb).await.unwrap();
        let budget_status = |allowed: i32| Patch::Merge(json!({"status": {"disruptionsAllowed": allowed, "observedGeneration": 1,
            "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1}}));
        budgets.patch_status("pdb", &PatchParams::default(), &budget_status(0)).await.unwrap();
        let commits = remote.commit_count();
        let refused = status_of(pods.evict("p", &EvictParams::default()).await);
        assert_eq!((refused.code, refused.reason.as_str()), (429, "TooManyRequests"), "{refused:?}");
        store.sync().await.unwrap();
        assert_eq!(remote.commit_count(), commits, "a refused eviction commits nothing");
        assert_eq!(refused.details.unwrap().causes[0].message, "The disruption budget pdb needs 1 healthy pods and has 1 currently");
        assert!(pods.get_opt("p").await.unwrap().is_some());
        budgets.patch_status("pdb", &PatchParams::default(), &budget_status(1)).await.unwrap();
        pods.evict("p", &EvictParams::default()).await.unwrap();
        assert!(pods.get_opt("p").await.unwrap().is_none());
        let status = budgets.get("pdb").await.unwrap().status.unwrap();
        assert_eq!(status.disruptions_allowed, 0);
        assert!(status.disrupted_pods.unwrap().contains_key("p"));

        // Discovery lists them.
        let resources = client.list_core_api_resources("v1").await.unwrap().resources;
        let names: Vec<(&str, Vec<String>)> = resources.iter().map(|r| (r.name.as_str(), r.verbs.clone())).collect();
        for (name, verb) in [("pods/binding", "create"), ("pods/eviction", "create"), ("namespaces/finalize", "update"),
            ("pods/ephemeralcontainers", "patch"), ("serviceaccounts/token", "create")] {
            assert!(names.iter().any(|(n, v)| *n == name && v.iter().any(|x| x == verb)), "{name} in {names:?}");
        }
        store.close().await.unwrap();
    })
    .await;
}
