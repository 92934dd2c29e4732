//! The Python `kubernetes` client (from the workspace venv) against `gitbacked serve`.

use std::time::Duration;

use crate::kubectl::configmap;
use crate::support::{Lines, Server, eventually};

/// What every script starts with: a client on the server whose URL is the first argument, and `out`
/// to print one JSON line (the tests read the last one).
const PRELUDE: &str = r#"
import json, sys, time
from kubernetes import client, dynamic, watch
config = client.Configuration()
config.host = sys.argv[1]
api = client.ApiClient(config)
def out(value):
    print(json.dumps(value), flush=True)
"#;

fn script(body: &str) -> String {
    format!("{PRELUDE}\n{body}")
}

#[test]
fn core_v1_configmap_lifecycle() {
    let server = Server::start();
    let result = server.python(
        "crud",
        &script(
            r#"
v1 = client.CoreV1Api(api)
made = v1.create_namespaced_config_map("default", client.V1ConfigMap(
    metadata=client.V1ObjectMeta(name="py", labels={"from": "python"}), data={"a": "1"}))
read = v1.read_namespaced_config_map("py", "default")
listed = v1.list_namespaced_config_map("default", label_selector="from=python")
read.data["a"] = "2"
read.data["b"] = "3"
replaced = v1.replace_namespaced_config_map("py", "default", read)
stale = None
try:
    made.data = {"a": "stale"}
    v1.replace_namespaced_config_map("py", "default", made)
except client.ApiException as e:
    stale = e.status
out({
    "created": made.metadata.name, "uid": made.metadata.uid, "rv": made.metadata.resource_version,
    "read": read.metadata.uid, "listed": [i.metadata.name for i in listed.items], "list_rv": listed.metadata.resource_version,
    "replaced": replaced.data, "replaced_rv": replaced.metadata.resource_version, "stale": stale,
})
"#,
        ),
    );
    assert_eq!(result["created"], "py");
    assert_eq!(result["read"], result["uid"]);
    assert_eq!(result["listed"], serde_json::json!(["py"]));
    assert_eq!(result["replaced"], serde_json::json!({"a": "2", "b": "3"}));
    assert_ne!(result["replaced_rv"], result["rv"]);
    assert_eq!(result["stale"], 409, "a replace with a stale resourceVersion is a conflict: {result}");

    let file = server.remote.must_file("default/configmaps/py.yaml");
    assert!(file.contains("a: \"2\"") && file.contains("b: \"3\"") && file.contains("from: python"), "{file}");
    assert_eq!(server.remote.log()[..2], ["update v1 ConfigMap default/py", "create v1 ConfigMap default/py"]);

    let result = server.python(
        "delete",
        &script(
            r#"
v1 = client.CoreV1Api(api)
status = v1.delete_namespaced_config_map("py", "default")
try:
    v1.read_namespaced_config_map("py", "default")
    after = 200
except client.ApiException as e:
    after = e.status
try:
    v1.delete_namespaced_config_map("py", "default")
    again = 200
except client.ApiException as e:
    again = json.loads(e.body)["reason"]
# The client types this answer as a plain object.
out({"status": status["status"], "after": after, "again": again})
"#,
        ),
    );
    assert_eq!(result, serde_json::json!({"status": "Success", "after": 404, "again": "NotFound"}));
    assert_eq!(server.remote.file("default/configmaps/py.yaml"), None);
    assert_eq!(server.remote.log()[0], "delete v1 ConfigMap default/py");
}

#[test]
fn custom_objects_on_a_crd() {
    let server = Server::start();
    let result = server.python(
        "custom",
        &script(
            r#"
ext = client.ApiextensionsV1Api(api)
ext.create_custom_resource_definition({
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget", "listKind": "GadgetList"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "properties": {"size": {"type": "integer"}, "color": {"type": "string"}}}}}}}]}})
co = client.CustomObjectsApi(api)
gadget = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"size": 1}}
deadline = time.time() + 20
while True:
    try:
        made = co.create_namespaced_custom_object("example.com", "v1", "default", "gadgets", gadget)
        break
    except client.ApiException as e:
        if e.status != 404 or time.time() > deadline:
            raise
        time.sleep(0.2)
got = co.get_namespaced_custom_object("example.com", "v1", "default", "gadgets", "g1")
got["spec"]["size"] = 2
replaced = co.replace_namespaced_custom_object("example.com", "v1", "default", "gadgets", "g1", got)
patched = co.patch_namespaced_custom_object("example.com", "v1", "default", "gadgets", "g1", {"spec": {"color": "red"}})
listed = co.list_namespaced_custom_object("example.com", "v1", "default", "gadgets")
everywhere = co.list_cluster_custom_object("example.com", "v1", "gadgets")
out({"made": made["metadata"]["name"], "replaced": replaced["spec"], "patched": patched["spec"],
     "listed": [i["metadata"]["name"] for i in listed["items"]], "kind": listed["kind"],
     "everywhere": [i["metadata"]["namespace"] + "/" + i["metadata"]["name"] for i in everywhere["items"]]})
"#,
        ),
    );
    assert_eq!(result["made"], "g1");
    assert_eq!(result["replaced"], serde_json::json!({"size": 2}));
    assert_eq!(result["patched"], serde_json::json!({"size": 2, "color": "red"}));
    assert_eq!(result["listed"], serde_json::json!(["g1"]));
    assert_eq!(result["kind"], "GadgetList");
    assert_eq!(result["everywhere"], serde_json::json!(["default/g1"]));

    server.remote.must_file("_cluster/customresourcedefinitions.apiextensions.k8s.io/gadgets.example.com.yaml");
    let file = server.remote.must_file("default/gadgets.example.com/g1.yaml");
    assert!(file.contains("kind: Gadget") && file.contains("size: 2") && file.contains("color: red"), "{file}");
    assert_eq!(
        server.remote.log()[..3],
        [
            "patch example.com/v1 Gadget default/g1",
            "update example.com/v1 Gadget default/g1",
            "create example.com/v1 Gadget default/g1"
        ]
    );

    let result = server.python(
        "custom-delete",
        &script(
            r#"
co = client.CustomObjectsApi(api)
status = co.delete_namespaced_custom_object("example.com", "v1", "default", "gadgets", "g1")
left = co.list_namespaced_custom_object("example.com", "v1", "default", "gadgets")["items"]
out({"status": status.get("status"), "left": len(left)})
"#,
        ),
    );
    assert_eq!(result, serde_json::json!({"status": "Success", "left": 0}));
    assert_eq!(server.remote.file("default/gadgets.example.com/g1.yaml"), None);
}

#[test]
fn watch_streams_a_persons_push() {
    let server = Server::start();
    server.create_configmap("default", "before", &[("k", "v")]);
    let mut cmd = server.python_command(
        "watch",
        &script(
            r#"
v1 = client.CoreV1Api(api)
listed = v1.list_namespaced_config_map("default")
out({"ready": listed.metadata.resource_version, "names": [i.metadata.name for i in listed.items]})
w = watch.Watch()
for event in w.stream(v1.list_namespaced_config_map, "default", resource_version=listed.metadata.resource_version,
                      timeout_seconds=60):
    o = event["object"]
    out({"type": event["type"], "name": o.metadata.name, "data": o.data, "rv": o.metadata.resource_version})
    if event["type"] == "ADDED" and o.metadata.name == "pushed":
        w.stop()
"#,
        ),
    );
    let mut lines = Lines::spawn(&mut cmd);
    let ready = lines.wait_for("the list", Duration::from_secs(60), |l| l.starts_with("{\"ready\""));
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["names"], serde_json::json!(["before"]));

    server.remote.commit(&[("default/pushed.yaml", Some(&configmap("pushed", "from-git")))], "a person adds pushed");
    let added = lines.wait_for("the ADDED event", Duration::from_secs(60), |l| l.contains("\"name\": \"pushed\""));
    let added: serde_json::Value = serde_json::from_str(&added).unwrap();
    assert_eq!(added["type"], "ADDED", "{added}");
    assert_eq!(added["data"], serde_json::json!({"k": "from-git"}));
    let (list_rv, event_rv): (u64, u64) =
        (ready["ready"].as_str().unwrap().parse().unwrap(), added["rv"].as_str().unwrap().parse().unwrap());
    assert!(event_rv > list_rv, "the event ({event_rv}) comes after the list ({list_rv})");
    assert!(
        !lines.seen.iter().any(|l| l.contains("\"name\": \"before\"")),
        "a watch from the list's resourceVersion replayed an older object: {:?}",
        lines.seen
    );
}

#[test]
fn dynamic_client_gets_and_lists_a_persons_objects() {
    let server = Server::start();
    let deployment = crate::kubectl::DEPLOYMENT.replace("  name: web\n", "  name: web\n  namespace: default\n");
    server.remote.commit(
        &[("apps/web.yaml", Some(&deployment)), ("default/settings.yaml", Some(&configmap("settings", "v")))],
        "a person adds a deployment and a configmap",
    );
    eventually("the person's objects to be served", || {
        server.http("GET", "/apis/apps/v1/namespaces/default/deployments/web", &[], None).status == 200
            && server.http("GET", "/api/v1/namespaces/default/configmaps/settings", &[], None).status == 200
    });
    let result = server.python(
        "dynamic",
        &script(
            r#"
d = dynamic.DynamicClient(api)
deployments = d.resources.get(api_version="apps/v1", kind="Deployment")
configmaps = d.resources.get(api_version="v1", kind="ConfigMap")
web = deployments.get(name="web", namespace="default")
listed = deployments.get(namespace="default")
selected = deployments.get(label_selector="app=web")
cms = configmaps.get(namespace="default", field_selector="metadata.name=settings")
patched = configmaps.patch(name="settings", namespace="default", body={"data": {"k": "dynamic"}},
                           content_type="application/merge-patch+json")
out({"replicas": web.spec.replicas, "image": web.spec.template.spec.containers[0].image,
     "listed": [i.metadata.name for i in listed.items], "selected": [i.metadata.name for i in selected.items],
     "cms": [i.data.k for i in cms.items], "patched": patched.data.k,
     "namespaced": deployments.namespaced, "plural": deployments.name})
"#,
        ),
    );
    assert_eq!(
        result,
        serde_json::json!({"replicas": 1, "image": "nginx:1.25", "listed": ["web"], "selected": ["web"], "cms": ["v"],
                           "patched": "dynamic", "namespaced": true, "plural": "deployments"})
    );
    // The patch went back to the person's file, in the person's quoting, changing that line only.
    let file = server.remote.must_file("default/settings.yaml");
    assert_eq!(file, configmap("settings", "dynamic"));
    assert_eq!(server.remote.log()[0], "patch v1 ConfigMap default/settings");
}

#[test]
fn dynamic_client_server_side_apply() {
    let server = Server::start();
    let result = server.python(
        "ssa",
        &script(
            r#"
d = dynamic.DynamicClient(api)
configmaps = d.resources.get(api_version="v1", kind="ConfigMap")
body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied", "namespace": "default"}, "data": {"a": "1"}}
first = configmaps.server_side_apply(body=body, namespace="default", field_manager="python")
body["data"] = {"a": "2", "b": "3"}
second = configmaps.server_side_apply(body=body, namespace="default", field_manager="python")
managers = [m.manager for m in (second.metadata.managedFields or [])]
out({"first": first.data.a, "second": second.to_dict()["data"], "managers": managers})
"#,
        ),
    );
    assert_eq!(result["first"], "1");
    assert_eq!(result["second"], serde_json::json!({"a": "2", "b": "3"}));
    assert_eq!(result["managers"], serde_json::json!(["python"]));
    let file = server.remote.must_file("default/configmaps/applied.yaml");
    assert!(file.contains("a: \"2\"") && file.contains("b: \"3\""), "{file}");
}

#[test]
fn typed_clients_decode_a_persons_unquoted_scalars() {
    let server = Server::start();
    let unquoted = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: unquoted\n  namespace: default\ndata:\n  k: 0\n  b: true\n";
    server.remote.commit(
        &[("default/good.yaml", Some(&configmap("good", "fine"))), ("default/unquoted.yaml", Some(unquoted))],
        "a person adds a ConfigMap with unquoted scalars",
    );
    server.wait_served("default", "configmap/good");
    // The object is either skipped with a warning (as a document that does not parse) or served with
    // its values as strings: either way the list stays readable by typed clients.
    let result = server.python(
        "typed",
        &script(
            r#"
v1 = client.CoreV1Api(api)
items = v1.list_namespaced_config_map("default").items
out({i.metadata.name: i.data for i in items})
"#,
        ),
    );
    assert_eq!(result["good"], serde_json::json!({"k": "fine"}));
    if let Some(data) = result.get("unquoted") {
        assert_eq!(data, &serde_json::json!({"k": "0", "b": "true"}));
    }
    let out = server.kubectl(&["describe", "configmaps"]);
    assert!(out.status.success(), "kubectl describe: {}", String::from_utf8_lossy(&out.stderr));
}
