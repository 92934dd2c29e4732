//! kubectl's generators send their objects as `application/vnd.kubernetes.protobuf`; clients that
//! accept protobuf only get it back, watch streams included.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_pb::api::apps::v1 as apps;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;

use crate::kubectl::{CRD, WIDGET};
use crate::support::{Server, eventually, self_signed_certificate};

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// `kubectl create KIND …` prints `KIND/NAME created`; returns the file that landed in the remote.
fn create(server: &Server, args: &[&str], created: &str, file: &str) -> String {
    let mut all = vec!["create"];
    all.extend_from_slice(args);
    assert_eq!(server.kubectl_ok(&all), format!("{created} created\n"), "kubectl {}", all.join(" "));
    server.remote.must_file(file)
}

fn jsonpath(server: &Server, what: &str, path: &str) -> String {
    server.kubectl_ok(&["get", what, "-o", &format!("jsonpath={path}")])
}

/// Each of `lines` is a line of `file`, indented or a list item.
fn has(file: &str, lines: &[&str]) {
    for line in lines {
        let found = file.lines().map(str::trim_start).any(|l| l == *line || l.strip_prefix("- ") == Some(line));
        assert!(found, "no line {line:?} in\n{file}");
    }
}

/// A certificate and key for `kubectl create secret tls`, made by openssl.
fn certificate(server: &Server) -> Option<(String, String)> {
    let (cert, key) = self_signed_certificate(&server.path(""), "/CN=example.com", None)?;
    Some((cert.display().to_string(), key.display().to_string()))
}

#[test]
fn every_kubectl_generator() {
    let server = Server::start();

    let file = create(
        &server,
        &["deployment", "web", "--image=nginx:1.27", "--replicas=3", "--port=80"],
        "deployment.apps/web",
        "default/deployments.apps/web.yaml",
    );
    has(&file, &["replicas: 3", "image: nginx:1.27", "- containerPort: 80", "app: web"]);
    assert!(!file.contains("creationTimestamp: null") && !file.contains("paused"), "Go's zero values:\n{file}");
    assert_eq!(jsonpath(&server, "deployment/web", "{.spec.template.spec.containers[0].image}"), "nginx:1.27");
    assert_eq!(jsonpath(&server, "deployment/web", "{.spec.replicas}"), "3");

    let file = create(
        &server,
        &["job", "once", "--image=busybox:1.36", "--", "echo", "hi"],
        "job.batch/once",
        "default/jobs.batch/once.yaml",
    );
    has(&file, &["image: busybox:1.36", "restartPolicy: Never", "- echo", "- hi"]);
    assert_eq!(jsonpath(&server, "job/once", "{.spec.template.spec.containers[0].command}"), r#"["echo","hi"]"#);

    let file = create(
        &server,
        &["cronjob", "nightly", "--image=busybox:1.36", "--schedule=*/5 * * * *", "--", "date"],
        "cronjob.batch/nightly",
        "default/cronjobs.batch/nightly.yaml",
    );
    has(&file, &["schedule: \"*/5 * * * *\"", "restartPolicy: OnFailure", "- date"]);
    assert_eq!(jsonpath(&server, "cronjob/nightly", "{.spec.schedule}"), "*/5 * * * *");

    let file =
        create(&server, &["service", "clusterip", "cip", "--tcp=80:8080"], "service/cip", "default/services/cip.yaml");
    // `type: ClusterIP` and `protocol: TCP` are defaults: served, not written (README, Semantics).
    has(&file, &["port: 80", "targetPort: 8080"]);
    assert!(!file.contains("type: ClusterIP") && !file.contains("protocol: TCP"), "{file}");
    assert_eq!(jsonpath(&server, "service/cip", "{.spec.ports[0].targetPort}"), "8080");
    assert_eq!(jsonpath(&server, "service/cip", "{.spec.type} {.spec.ports[0].protocol}"), "ClusterIP TCP");
    let file = create(
        &server,
        &["service", "nodeport", "np", "--tcp=81:web", "--node-port=30081"],
        "service/np",
        "default/services/np.yaml",
    );
    has(&file, &["type: NodePort", "port: 81", "targetPort: web", "nodePort: 30081"]);
    assert_eq!(jsonpath(&server, "service/np", "{.spec.ports[0].nodePort}"), "30081");
    let file =
        create(&server, &["service", "loadbalancer", "lb", "--tcp=443:8443"], "service/lb", "default/services/lb.yaml");
    has(&file, &["type: LoadBalancer", "port: 443", "targetPort: 8443"]);
    assert_eq!(jsonpath(&server, "service/lb", "{.spec.type}"), "LoadBalancer");
    let file = create(
        &server,
        &["service", "externalname", "ext", "--external-name=example.com"],
        "service/ext",
        "default/services/ext.yaml",
    );
    has(&file, &["type: ExternalName", "externalName: example.com"]);
    assert_eq!(jsonpath(&server, "service/ext", "{.spec.externalName}"), "example.com");

    let file = create(
        &server,
        &["role", "reader", "--verb=get,list", "--resource=pods,configmaps", "--resource-name=one"],
        "role.rbac.authorization.k8s.io/reader",
        "default/roles.rbac.authorization.k8s.io/reader.yaml",
    );
    has(&file, &["- get", "- list", "- pods", "- configmaps", "- one"]);
    assert_eq!(jsonpath(&server, "role/reader", "{.rules[0].verbs}"), r#"["get","list"]"#);
    let file = create(
        &server,
        &["rolebinding", "readers", "--role=reader", "--user=alice", "--serviceaccount=default:robot"],
        "rolebinding.rbac.authorization.k8s.io/readers",
        "default/rolebindings.rbac.authorization.k8s.io/readers.yaml",
    );
    has(&file, &["kind: Role", "name: reader", "name: alice", "kind: ServiceAccount", "name: robot"]);
    assert_eq!(jsonpath(&server, "rolebinding/readers", "{.subjects[*].name}"), "alice robot");
    let file = create(
        &server,
        &["clusterrole", "node-reader", "--verb=get", "--resource=nodes", "--non-resource-url=/healthz"],
        "clusterrole.rbac.authorization.k8s.io/node-reader",
        "_cluster/clusterroles.rbac.authorization.k8s.io/node-reader.yaml",
    );
    has(&file, &["- nodes", "- get", "- /healthz"]);
    assert_eq!(jsonpath(&server, "clusterrole/node-reader", "{.rules[1].nonResourceURLs[0]}"), "/healthz");
    let file = create(
        &server,
        &["clusterrolebinding", "node-readers", "--clusterrole=node-reader", "--group=devs"],
        "clusterrolebinding.rbac.authorization.k8s.io/node-readers",
        "_cluster/clusterrolebindings.rbac.authorization.k8s.io/node-readers.yaml",
    );
    has(&file, &["kind: ClusterRole", "kind: Group", "name: devs"]);
    assert_eq!(jsonpath(&server, "clusterrolebinding/node-readers", "{.roleRef.name}"), "node-reader");

    let file = create(
        &server,
        &["priorityclass", "high", "--value=1000", "--description=important", "--preemption-policy=Never"],
        "priorityclass.scheduling.k8s.io/high",
        "_cluster/priorityclasses.scheduling.k8s.io/high.yaml",
    );
    has(&file, &["value: 1000", "description: important", "preemptionPolicy: Never"]);
    assert_eq!(jsonpath(&server, "priorityclass/high", "{.value}"), "1000");

    let file = create(
        &server,
        &["quota", "q", "--hard=cpu=1,memory=1G,pods=10", "--scopes=NotTerminating"],
        "resourcequota/q",
        "default/resourcequotas/q.yaml",
    );
    has(&file, &["cpu: \"1\"", "memory: 1G", "pods: \"10\"", "- NotTerminating"]);
    assert_eq!(jsonpath(&server, "resourcequota/q", "{.spec.hard.memory}"), "1G");

    let file = create(
        &server,
        &["poddisruptionbudget", "by-count", "--selector=app=web", "--min-available=1"],
        "poddisruptionbudget.policy/by-count",
        "default/poddisruptionbudgets.policy/by-count.yaml",
    );
    has(&file, &["minAvailable: 1", "app: web"]);
    let file = create(
        &server,
        &["poddisruptionbudget", "by-share", "--selector=app=web", "--max-unavailable=50%"],
        "poddisruptionbudget.policy/by-share",
        "default/poddisruptionbudgets.policy/by-share.yaml",
    );
    has(&file, &["maxUnavailable: 50%"]);
    assert_eq!(jsonpath(&server, "pdb/by-count", "{.spec.minAvailable}"), "1");
    assert_eq!(jsonpath(&server, "pdb/by-share", "{.spec.maxUnavailable}"), "50%");

    let file = create(
        &server,
        &["ingress", "site", "--class=nginx", "--rule=example.com/api*=web:80", "--rule=example.com/=web:http"],
        "ingress.networking.k8s.io/site",
        "default/ingresses.networking.k8s.io/site.yaml",
    );
    has(&file, &["ingressClassName: nginx", "host: example.com", "path: /api", "pathType: Prefix", "number: 80"]);
    has(&file, &["pathType: Exact", "name: http"]);
    assert_eq!(jsonpath(&server, "ingress/site", "{.spec.rules[0].http.paths[*].backend.service.name}"), "web web");

    if let Some((cert, key)) = certificate(&server) {
        let file = create(
            &server,
            &["secret", "tls", "tls", &format!("--cert={cert}"), &format!("--key={key}")],
            "secret/tls",
            "default/secrets/tls.yaml",
        );
        has(&file, &["type: kubernetes.io/tls"]);
        let pem = std::fs::read_to_string(&cert).unwrap();
        let data = jsonpath(&server, "secret/tls", "{.data.tls\\.crt}");
        assert!(file.contains("tls.crt:") && file.contains(&data), "{file}");
        assert_eq!(STANDARD.decode(&data).unwrap(), pem.as_bytes());
    }
    let file = create(
        &server,
        &[
            "secret",
            "docker-registry",
            "registry",
            "--docker-server=registry.example.com",
            "--docker-username=robot",
            "--docker-password=s3cret",
            "--docker-email=robot@example.com",
        ],
        "secret/registry",
        "default/secrets/registry.yaml",
    );
    has(&file, &["type: kubernetes.io/dockerconfigjson"]);
    let config = jsonpath(&server, "secret/registry", "{.data.\\.dockerconfigjson}");
    assert!(file.contains(".dockerconfigjson:") && file.contains(&config), "{file}");
    let decoded: serde_json::Value = serde_json::from_slice(&STANDARD.decode(&config).unwrap()).unwrap();
    assert_eq!(decoded["auths"]["registry.example.com"]["username"], "robot");
    assert_eq!(decoded["auths"]["registry.example.com"]["auth"], "cm9ib3Q6czNjcmV0");

    let file = create(
        &server,
        &["configmap", "settings", "--from-literal=a=1", "--from-literal=b=two words"],
        "configmap/settings",
        "default/configmaps/settings.yaml",
    );
    has(&file, &["a: \"1\"", "b: two words"]);
    assert_eq!(jsonpath(&server, "configmap/settings", "{.data.b}"), "two words");
    let file = create(&server, &["namespace", "team"], "namespace/team", "_cluster/namespaces/team.yaml");
    has(&file, &["name: team"]);
    let file =
        create(&server, &["serviceaccount", "robot"], "serviceaccount/robot", "default/serviceaccounts/robot.yaml");
    has(&file, &["name: robot"]);
    assert_eq!(jsonpath(&server, "serviceaccount/robot", "{.metadata.name}"), "robot");
}

/// The envelope of a protobuf reply: its apiVersion, kind and object bytes.
fn unwrap(body: &[u8]) -> (String, String, Vec<u8>) {
    let raw = body.strip_prefix(b"k8s\0").unwrap_or_else(|| panic!("no magic: {}", String::from_utf8_lossy(body)));
    let unknown = Unknown::decode(raw).unwrap();
    let type_meta = unknown.type_meta.unwrap();
    (type_meta.api_version.unwrap(), type_meta.kind.unwrap(), unknown.raw.unwrap())
}

#[test]
fn clients_that_accept_protobuf_only_get_protobuf() {
    let server = Server::start();
    server.kubectl_ok(&["create", "deployment", "web", "--image=nginx:1.27", "--replicas=2"]);
    let path = "/apis/apps/v1/namespaces/default/deployments/web";
    let json = server.http("GET", path, &[], None).json();

    let reply = server.http("GET", path, &[("Accept", PROTOBUF)], None);
    assert_eq!((reply.status, reply.header("content-type")), (200, Some(PROTOBUF)), "{}", reply.text());
    let (api_version, kind, raw) = unwrap(&reply.body);
    assert_eq!((api_version.as_str(), kind.as_str()), ("apps/v1", "Deployment"));
    let deployment = apps::Deployment::decode(raw.as_slice()).unwrap();
    let metadata = deployment.metadata.unwrap();
    assert_eq!(metadata.name.as_deref(), json["metadata"]["name"].as_str());
    assert_eq!(metadata.uid.as_deref(), json["metadata"]["uid"].as_str());
    assert_eq!(metadata.resource_version.as_deref(), json["metadata"]["resourceVersion"].as_str());
    assert_eq!(metadata.labels.get("app").map(String::as_str), Some("web"));
    assert!(metadata.creation_timestamp.unwrap().seconds.unwrap() > 1_700_000_000);
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.unwrap().spec.unwrap();
    assert_eq!(pod.containers[0].image.as_deref(), Some("nginx:1.27"));
    assert_eq!(pod.containers[0].image.as_deref(), json["spec"]["template"]["spec"]["containers"][0]["image"].as_str());

    // Lists too; a client that accepts JSON as well gets JSON.
    let reply = server.http("GET", "/apis/apps/v1/namespaces/default/deployments", &[("Accept", PROTOBUF)], None);
    let (_, kind, raw) = unwrap(&reply.body);
    assert_eq!(kind, "DeploymentList");
    let list = apps::DeploymentList::decode(raw.as_slice()).unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].metadata.as_ref().unwrap().name.as_deref(), Some("web"));
    let both = format!("{PROTOBUF}, application/json");
    let reply = server.http("GET", path, &[("Accept", &both)], None);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json()["spec"]["replicas"], 2);

    // A watch: length-prefixed frames, each a WatchEvent whose object is an encoded Deployment.
    let watch = "/apis/apps/v1/namespaces/default/deployments?watch=true&timeoutSeconds=1";
    let reply = server.http("GET", watch, &[("Accept", PROTOBUF)], None);
    assert_eq!(reply.header("content-type"), Some("application/vnd.kubernetes.protobuf;stream=watch"));
    let length = u32::from_be_bytes(reply.body[..4].try_into().unwrap()) as usize;
    let (api_version, kind, raw) = unwrap(&reply.body[4..4 + length]);
    assert_eq!((api_version.as_str(), kind.as_str()), ("apps/v1", "WatchEvent"));
    let event = k8s_pb::apimachinery::pkg::apis::meta::v1::WatchEvent::decode(raw.as_slice()).unwrap();
    assert_eq!(event.r#type.as_deref(), Some("ADDED"));
    let (_, kind, raw) = unwrap(&event.object.unwrap().raw.unwrap());
    assert_eq!(kind, "Deployment");
    let deployment = apps::Deployment::decode(raw.as_slice()).unwrap();
    assert_eq!(deployment.metadata.unwrap().name.as_deref(), Some("web"));

    // A custom resource has no protobuf form: 406 NotAcceptable, as kube-apiserver answers.
    let crd = server.manifest("crd.yaml", CRD);
    server.kubectl_ok(&["create", "-f", &crd]);
    eventually("kubectl to know widgets", || server.kubectl(&["get", "widgets"]).status.success());
    let widget = server.manifest("widget.yaml", WIDGET);
    server.kubectl_ok(&["create", "--validate=false", "-f", &widget]);
    let path = "/apis/example.com/v1/namespaces/default/widgets";
    let reply = server.http("GET", &format!("{path}/blue"), &[("Accept", PROTOBUF)], None);
    assert_eq!(reply.status, 406, "{}", reply.text());
    assert_eq!(reply.json()["reason"], "NotAcceptable");
    assert_eq!(server.http("GET", path, &[("Accept", PROTOBUF)], None).status, 406);
    assert_eq!(server.http("GET", &format!("{path}/blue"), &[("Accept", &both)], None).status, 200);
}
