//! kubectl against `gitbacked serve`: what kubectl prints, and what lands in the remote.

use std::time::Duration;

use crate::support::{Server, eventually};

pub const CONFIGMAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels:
    app: web
data:
  k: v
";

pub const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.25
";

pub const NAMESPACE: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: team
";

pub const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    kind: Widget
    listKind: WidgetList
    plural: widgets
    singular: widget
    shortNames: [wd]
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size:
                type: integer
              color:
                type: string
    additionalPrinterColumns:
    - name: Size
      type: integer
      jsonPath: .spec.size
    - name: Color
      type: string
      jsonPath: .spec.color
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
";

pub const WIDGET: &str = "apiVersion: example.com/v1
kind: Widget
metadata:
  name: blue
spec:
  size: 3
  color: azure
";

/// A ConfigMap manifest in `default`.
pub fn configmap(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n  k: \"{value}\"\n"
    )
}

/// The whitespace-separated cells of each line.
fn rows(table: &str) -> Vec<Vec<String>> {
    table.lines().map(|l| l.split_whitespace().map(str::to_string).collect()).collect()
}

/// Creates the ConfigMap `settings` and the Deployment `web` and checks they were committed.
fn create_settings_and_web(server: &Server) {
    let cm = server.manifest("cm.yaml", CONFIGMAP);
    let deploy = server.manifest("deploy.yaml", DEPLOYMENT);
    server.kubectl_ok(&["create", "-f", &cm, "-f", &deploy]);
}

#[test]
fn create_writes_canonical_files_and_commits() {
    let server = Server::start();
    let (cm, deploy, ns) = (
        server.manifest("cm.yaml", CONFIGMAP),
        server.manifest("deploy.yaml", DEPLOYMENT),
        server.manifest("ns.yaml", NAMESPACE),
    );
    let out = server.kubectl_ok(&["create", "-f", &cm, "-f", &deploy, "-f", &ns]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["configmap/settings created", "deployment.apps/web created", "namespace/team created"]
    );

    let file = server.remote.must_file("default/configmaps/settings.yaml");
    assert!(file.contains("kind: ConfigMap") && file.contains("name: settings") && file.contains("k: v"), "{file}");
    assert!(file.contains("namespace: default"), "{file}");
    // Derived metadata is never written.
    assert!(
        !file.contains("resourceVersion") && !file.contains("uid:") && !file.contains("creationTimestamp"),
        "{file}"
    );
    let file = server.remote.must_file("default/deployments.apps/web.yaml");
    assert!(file.contains("kind: Deployment") && file.contains("image: nginx:1.25"), "{file}");
    let file = server.remote.must_file("_cluster/namespaces/team.yaml");
    assert!(file.contains("kind: Namespace") && file.contains("name: team"), "{file}");

    let log = server.remote.log();
    assert_eq!(
        log[..3],
        ["create v1 Namespace team", "create apps/v1 Deployment default/web", "create v1 ConfigMap default/settings"],
        "{log:?}"
    );
    assert_eq!(log.len(), 4, "one commit per object after the person's initial one: {log:?}");

    // Creating it again is AlreadyExists and commits nothing.
    let err = server.kubectl_fails(&["create", "-f", &cm]);
    assert!(err.contains("AlreadyExists") && err.contains("\"settings\" already exists"), "{err}");
    assert_eq!(server.remote.log().len(), 4);
}

#[test]
fn get_prints_tables_and_every_output_format() {
    let server = Server::start();
    create_settings_and_web(&server);

    let table = rows(&server.kubectl_ok(&["get", "configmaps"]));
    assert_eq!(table[0], ["NAME", "DATA", "AGE"]);
    assert_eq!(table[1][..2], ["settings", "1"]);
    assert_eq!(table.len(), 2, "{table:?}");

    let table = rows(&server.kubectl_ok(&["get", "deployments"]));
    assert_eq!(table[0], ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert_eq!(table[1][..4], ["web", "0/1", "0", "0"]);

    let table = rows(&server.kubectl_ok(&["get", "deploy", "-o", "wide"]));
    assert_eq!(table[0], ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]);
    assert_eq!(table[1][5..], ["web", "nginx:1.25", "app=web"]);

    let json: serde_json::Value =
        serde_json::from_str(&server.kubectl_ok(&["get", "cm", "settings", "-o", "json"])).unwrap();
    assert_eq!(json["kind"], "ConfigMap");
    assert_eq!(json["data"]["k"], "v");
    assert_eq!(json["metadata"]["namespace"], "default");
    assert!(json["metadata"]["resourceVersion"].as_str().is_some_and(|rv| !rv.is_empty()), "{json}");
    assert!(json["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36), "{json}");

    let list: serde_json::Value = serde_json::from_str(&server.kubectl_ok(&["get", "deploy", "-o", "json"])).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.25");

    let yaml = server.kubectl_ok(&["get", "cm", "settings", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: ConfigMap\n") && yaml.contains("  k: v\n") && yaml.contains("  name: settings\n"),
        "{yaml}"
    );

    assert_eq!(server.kubectl_ok(&["get", "cm,deploy", "-o", "name"]), "configmap/settings\ndeployment.apps/web\n");
    assert_eq!(server.kubectl_ok(&["get", "cm", "settings", "-o", "jsonpath={.data.k}"]), "v");
    assert_eq!(
        server.kubectl_ok(&["get", "deploy", "-o", "jsonpath={.items[*].spec.template.spec.containers[*].image}"]),
        "nginx:1.25"
    );
    assert_eq!(
        server.kubectl_ok(&["get", "cm", "-o", "custom-columns=N:.metadata.name,K:.data.k", "--no-headers"]).trim(),
        "settings   v"
    );

    let err = server.kubectl_fails(&["get", "cm", "missing"]);
    assert!(err.contains("Error from server (NotFound): configmaps \"missing\" not found"), "{err}");
}

#[test]
fn get_with_namespaces_and_selectors() {
    let server = Server::start();
    create_settings_and_web(&server);
    let ns = server.manifest("ns.yaml", NAMESPACE);
    server.kubectl_ok(&["create", "-f", &ns]);
    server.create_configmap("team", "other", &[("a", "1"), ("b", "2")]);
    assert!(server.remote.must_file("team/configmaps/other.yaml").contains("namespace: team"));

    let all = rows(&server.kubectl_ok(&["get", "cm", "-A"]));
    assert_eq!(all[0], ["NAMESPACE", "NAME", "DATA", "AGE"]);
    let names: Vec<(&str, &str, &str)> =
        all[1..].iter().map(|r| (r[0].as_str(), r[1].as_str(), r[2].as_str())).collect();
    assert_eq!(names, [("default", "settings", "1"), ("team", "other", "2")]);

    assert_eq!(server.kubectl_ok(&["get", "cm", "-n", "team", "-o", "name"]), "configmap/other\n");
    assert_eq!(server.kubectl_ok(&["get", "cm", "-o", "name"]), "configmap/settings\n");
    assert_eq!(
        server.kubectl_ok(&["get", "cm,deploy", "-A", "-l", "app=web", "-o", "name"]),
        "configmap/settings\ndeployment.apps/web\n"
    );
    assert_eq!(server.kubectl_ok(&["get", "cm", "-A", "-l", "app!=web", "-o", "name"]), "configmap/other\n");
    assert_eq!(server.kubectl_ok(&["get", "cm", "-A", "-l", "app in (db)", "-o", "name"]), "");
    assert_eq!(
        server.kubectl_ok(&["get", "cm", "-A", "--field-selector", "metadata.name=other", "-o", "name"]),
        "configmap/other\n"
    );
    assert_eq!(
        server.kubectl_ok(&["get", "cm", "-A", "--field-selector", "metadata.namespace!=team", "-o", "name"]),
        "configmap/settings\n"
    );
    let none = server.kubectl(&["get", "cm", "-l", "app=nothing"]);
    assert!(String::from_utf8_lossy(&none.stderr).contains("No resources found in default namespace."));

    let err = server.kubectl_fails(&["get", "cm", "--field-selector", "data.k=v"]);
    assert!(err.contains("Error from server (BadRequest)") && err.contains("data.k"), "{err}");
    let table = rows(&server.kubectl_ok(&["get", "namespaces"]));
    assert_eq!(table[0][..2], ["NAME", "STATUS"]);
    assert!(table.iter().any(|r| r[0] == "team"), "{table:?}");
}

#[test]
fn get_watch_streams_a_persons_push() {
    let server = Server::start();
    server.create_configmap("default", "first", &[("k", "v")]);
    let mut watch = server.spawn_kubectl(&["get", "configmaps", "--watch"]);
    watch.wait_for("the header", Duration::from_secs(30), |l| l.split_whitespace().eq(["NAME", "DATA", "AGE"]));
    watch.wait_for("the first ConfigMap", Duration::from_secs(30), |l| l.starts_with("first "));

    server.remote.commit(&[("default/pushed.yaml", Some(&configmap("pushed", "from-git")))], "a person adds pushed");
    let row = watch.wait_for("the pushed ConfigMap", Duration::from_secs(30), |l| l.starts_with("pushed "));
    assert_eq!(row.split_whitespace().nth(1), Some("1"), "{row}");

    // A change through the API shows up as well.
    server.kubectl_ok(&["label", "configmap", "first", "seen=yes"]);
    watch.wait_for("the labeled ConfigMap", Duration::from_secs(30), |l| l.starts_with("first "));
    // The person's file stays where the person put it.
    assert!(server.remote.must_file("default/pushed.yaml").contains("from-git"));

    // With the event types: the person's change and removal.
    let mut events = server.spawn_kubectl(&["get", "configmaps", "--watch-only", "--output-watch-events", "-v=6"]);
    events.wait_for("the watch request", Duration::from_secs(30), |l| {
        l.starts_with("stderr: ") && l.contains("\"Response\"") && l.contains("watch=true")
    });
    server.kubectl_ok(&["annotate", "configmap", "first", "ready=yes"]);
    events.wait_for("the annotated ConfigMap", Duration::from_secs(30), |l| {
        l.starts_with("MODIFIED ") && l.contains(" first ")
    });
    server.remote.commit(&[("default/pushed.yaml", Some(&configmap("pushed", "changed")))], "a person changes pushed");
    events.wait_for("the changed ConfigMap", Duration::from_secs(30), |l| {
        l.starts_with("MODIFIED ") && l.contains(" pushed ")
    });
    server.remote.commit(&[("default/pushed.yaml", None)], "a person removes pushed");
    events.wait_for("the removed ConfigMap", Duration::from_secs(30), |l| {
        l.starts_with("DELETED ") && l.contains(" pushed ")
    });
}

#[test]
fn wait_for_jsonpath_and_for_delete() {
    let server = Server::start();
    server.remote.commit(&[("default/gate.yaml", Some(&configmap("gate", "closed")))], "a person adds gate");
    server.wait_served("default", "configmap/gate");

    // -v=6 logs each request: the person pushes once kubectl's watch is open, so the condition is
    // met by a watch event rather than by the first list.
    let is_watch = |l: &str| l.starts_with("stderr: ") && l.contains("\"Response\"") && l.contains("watch=true");
    let mut waiting =
        server.spawn_kubectl(&["wait", "-v=6", "--for=jsonpath={.data.k}=open", "configmap/gate", "--timeout=60s"]);
    waiting.wait_for("kubectl wait's watch request", Duration::from_secs(60), is_watch);
    server.remote.commit(&[("default/gate.yaml", Some(&configmap("gate", "open")))], "a person opens the gate");
    waiting.wait_for("condition met", Duration::from_secs(60), |l| l == "configmap/gate condition met");

    let mut waiting = server.spawn_kubectl(&["wait", "-v=6", "--for=delete", "configmap/gate", "--timeout=60s"]);
    waiting.wait_for("kubectl wait's watch request", Duration::from_secs(60), is_watch);
    server.remote.commit(&[("default/gate.yaml", None)], "a person removes the gate");
    waiting.wait_for("condition met", Duration::from_secs(60), |l| l == "configmap/gate condition met");
    let err = server.kubectl_fails(&["get", "configmap", "gate"]);
    assert!(err.contains("NotFound"), "{err}");
}

#[test]
fn replace_patch_label_and_annotate_change_the_file() {
    let server = Server::start();
    let cm = server.manifest("cm.yaml", CONFIGMAP);
    server.kubectl_ok(&["create", "-f", &cm]);
    let path = "default/configmaps/settings.yaml";

    let replaced = server.manifest("replaced.yaml", &CONFIGMAP.replace("k: v", "k: replaced\n  extra: \"1\""));
    assert_eq!(server.kubectl_ok(&["replace", "-f", &replaced]), "configmap/settings replaced\n");
    let file = server.remote.must_file(path);
    assert!(file.contains("k: replaced") && file.contains("extra: \"1\""), "{file}");
    assert_eq!(server.remote.log()[0], "update v1 ConfigMap default/settings");

    let out = server.kubectl_ok(&[
        "patch",
        "configmap",
        "settings",
        "--type=merge",
        "-p",
        r#"{"data":{"merged":"yes","extra":null}}"#,
    ]);
    assert_eq!(out, "configmap/settings patched\n");
    let file = server.remote.must_file(path);
    assert!(file.contains("merged: \"yes\"") || file.contains("merged: 'yes'"), "{file}");
    assert!(!file.contains("extra"), "{file}");
    assert_eq!(server.remote.log()[0], "patch v1 ConfigMap default/settings");

    let out = server.kubectl_ok(&[
        "patch",
        "configmap",
        "settings",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/data/k","value":"json-patched"},{"op":"remove","path":"/data/merged"}]"#,
    ]);
    assert_eq!(out, "configmap/settings patched\n");
    let file = server.remote.must_file(path);
    assert!(file.contains("k: json-patched") && !file.contains("merged"), "{file}");

    // A failing JSON patch test commits nothing.
    let commits = server.remote.log().len();
    let err = server.kubectl_fails(&[
        "patch",
        "configmap",
        "settings",
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/data/k","value":"other"}]"#,
    ]);
    assert!(err.contains("The request is invalid") && err.contains("value did not match"), "{err}");
    assert_eq!(server.remote.log().len(), commits);

    assert_eq!(server.kubectl_ok(&["label", "configmap", "settings", "tier=backend"]), "configmap/settings labeled\n");
    let file = server.remote.must_file(path);
    assert!(file.contains("tier: backend") && file.contains("app: web"), "{file}");

    assert_eq!(
        server.kubectl_ok(&["annotate", "configmap", "settings", "owner=alice"]),
        "configmap/settings annotated\n"
    );
    assert!(server.remote.must_file(path).contains("owner: alice"));

    assert_eq!(server.kubectl_ok(&["label", "configmap", "settings", "tier-"]), "configmap/settings unlabeled\n");
    let file = server.remote.must_file(path);
    assert!(!file.contains("tier") && file.contains("owner: alice"), "{file}");

    // A stale resourceVersion on replace is a conflict.
    let stale = server.manifest(
        "stale.yaml",
        &CONFIGMAP.replace("  name: settings\n", "  name: settings\n  resourceVersion: \"1000001\"\n"),
    );
    let err = server.kubectl_fails(&["replace", "-f", &stale]);
    assert!(err.contains("Conflict") || err.contains("the object has been modified"), "{err}");
}

#[test]
fn delete_removes_the_file() {
    let server = Server::start();
    create_settings_and_web(&server);
    assert_eq!(server.kubectl_ok(&["delete", "configmap", "settings"]), "configmap \"settings\" deleted\n");
    assert_eq!(server.remote.file("default/configmaps/settings.yaml"), None);
    assert_eq!(server.remote.log()[0], "delete v1 ConfigMap default/settings");

    let deploy = server.manifest("deploy.yaml", DEPLOYMENT);
    assert_eq!(server.kubectl_ok(&["delete", "-f", &deploy]), "deployment.apps \"web\" deleted\n");
    assert_eq!(server.remote.files(), ["README.md"]);

    let err = server.kubectl_fails(&["delete", "configmap", "settings"]);
    assert!(err.contains("NotFound"), "{err}");
}

#[test]
fn delete_cascades_in_the_background_or_orphans() {
    let server = Server::start();
    let uid_of = |name: &str| server.kubectl_ok(&["get", "configmap", name, "-o", "jsonpath={.metadata.uid}"]);
    let child = |name: &str, owner: &str, uid: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  ownerReferences:\n  - apiVersion: v1\n    \
             kind: ConfigMap\n    name: {owner}\n    uid: {uid}\ndata:\n  k: v\n"
        )
    };
    for owner in ["kept", "gone"] {
        server.kubectl_ok(&["create", "configmap", &format!("{owner}-parent"), "--from-literal=k=v"]);
        let uid = uid_of(&format!("{owner}-parent"));
        let manifest = server
            .manifest(&format!("{owner}.yaml"), &child(&format!("{owner}-child"), &format!("{owner}-parent"), &uid));
        server.kubectl_ok(&["apply", "-f", &manifest]);
    }
    // --cascade=orphan: the child stays, without its owner reference.
    server.kubectl_ok(&["delete", "configmap", "kept-parent", "--cascade=orphan"]);
    eventually("the orphaned owner is gone", || server.remote.file("default/configmaps/kept-parent.yaml").is_none());
    let kept = server.remote.file("default/configmaps/kept-child.yaml").expect("the child stays");
    assert!(!kept.contains("\n  ownerReferences:"), "{kept}");
    // The default, background: the child follows its owner.
    server.kubectl_ok(&["delete", "configmap", "gone-parent"]);
    eventually("the child is collected", || server.remote.file("default/configmaps/gone-child.yaml").is_none());
    assert_eq!(server.remote.log()[0], "delete v1 ConfigMap default/gone-child");
}

#[test]
fn diff_is_a_dry_run_that_commits_nothing() {
    let server = Server::start();
    let cm = server.manifest("cm.yaml", CONFIGMAP);
    server.kubectl_ok(&["apply", "-f", &cm]);
    let head = server.remote.head();

    let changed = server.manifest("changed.yaml", &CONFIGMAP.replace("k: v", "k: changed"));
    let out = server.kubectl(&["diff", "-f", &changed]);
    let diff = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "kubectl diff exits 1 when there are differences: {diff}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(diff.contains("-  k: v\n") && diff.contains("+  k: changed\n"), "{diff}");

    // A new object is diffed with a dry-run create.
    let new = server.manifest("new.yaml", &configmap("brand-new", "x"));
    let out = server.kubectl(&["diff", "-f", &new]);
    let diff = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{diff}");
    assert!(diff.contains("+  name: brand-new"), "{diff}");

    // The applied manifest itself: no differences, exit 0.
    let out = server.kubectl(&["diff", "-f", &cm]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));

    assert_eq!(server.remote.head(), head, "kubectl diff committed");
    assert!(server.remote.must_file("default/configmaps/settings.yaml").contains("k: v"));
    assert_eq!(server.remote.file("default/configmaps/brand-new.yaml"), None);
    server.kubectl_fails(&["get", "configmap", "brand-new"]);
}

#[test]
fn explain_and_discovery() {
    let server = Server::start();
    let out = server.kubectl_ok(&["explain", "deployment.spec.replicas"]);
    assert!(out.contains("GROUP:      apps") && out.contains("KIND:       Deployment"), "{out}");
    assert!(out.contains("FIELD: replicas <integer>") && out.contains("DESCRIPTION:"), "{out}");
    let out = server.kubectl_ok(&["explain", "configmap"]);
    assert!(out.contains("KIND:       ConfigMap") && out.contains("data\t<map[string]string>"), "{out}");

    let resources = rows(&server.kubectl_ok(&["api-resources"]));
    assert_eq!(resources[0], ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]);
    for expected in [
        &["configmaps", "cm", "v1", "true", "ConfigMap"][..],
        &["deployments", "deploy", "apps/v1", "true", "Deployment"],
        &["namespaces", "ns", "v1", "false", "Namespace"],
        &["customresourcedefinitions", "crd,crds", "apiextensions.k8s.io/v1", "false", "CustomResourceDefinition"],
    ] {
        assert!(resources.iter().any(|r| r == expected), "no {expected:?} in api-resources: {resources:?}");
    }
    let namespaced = server.kubectl_ok(&["api-resources", "--namespaced=false", "-o", "name"]);
    assert!(
        namespaced.lines().any(|l| l == "namespaces") && !namespaced.lines().any(|l| l == "configmaps"),
        "{namespaced}"
    );

    let versions: Vec<String> = server.kubectl_ok(&["api-versions"]).lines().map(str::to_string).collect();
    for expected in ["v1", "apps/v1", "apiextensions.k8s.io/v1", "batch/v1", "rbac.authorization.k8s.io/v1"] {
        assert!(versions.iter().any(|v| v == expected), "no {expected} in api-versions: {versions:?}");
    }
    let version = server.kubectl_ok(&["version", "-o", "json"]);
    let version: serde_json::Value = serde_json::from_str(&version).unwrap();
    assert_eq!(version["serverVersion"]["major"], "1", "{version}");
}

#[test]
fn scale_deployment() {
    let server = Server::start();
    create_settings_and_web(&server);
    assert_eq!(server.kubectl_ok(&["scale", "deployment", "web", "--replicas=3"]), "deployment.apps/web scaled\n");
    let file = server.remote.must_file("default/deployments.apps/web.yaml");
    assert!(file.contains("replicas: 3"), "{file}");
    assert_eq!(server.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]), "3");
}

#[test]
fn scale_subresource_writes_the_replicas() {
    // The part of `kubectl scale` that works today: the write reaches the remote, the scale
    // subresource reads back, and only the PATCH answer is wrong (see `scale_deployment`).
    let server = Server::start();
    create_settings_and_web(&server);
    let _ = server.kubectl(&["scale", "deployment", "web", "--replicas=3"]);
    let file = server.remote.must_file("default/deployments.apps/web.yaml");
    assert!(file.contains("replicas: 3"), "{file}");
    let scale = server.http("GET", "/apis/apps/v1/namespaces/default/deployments/web/scale", &[], None).json();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 3);
}

/// Creates the Widget CRD and waits until kubectl can use the new resource.
fn create_widget_crd(server: &Server) {
    let crd = server.manifest("crd.yaml", CRD);
    assert_eq!(
        server.kubectl_ok(&["create", "-f", &crd]),
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created\n"
    );
    server.remote.must_file("_cluster/customresourcedefinitions.apiextensions.k8s.io/widgets.example.com.yaml");
    eventually("kubectl to know widgets", || server.kubectl(&["get", "widgets"]).status.success());
}

#[test]
fn custom_resources_with_printer_columns() {
    let server = Server::start();
    create_widget_crd(&server);
    let widget = server.manifest("widget.yaml", WIDGET);
    // Without client validation: see `custom_resource_created_with_default_validation`.
    assert_eq!(server.kubectl_ok(&["create", "--validate=false", "-f", &widget]), "widget.example.com/blue created\n");
    let file = server.remote.must_file("default/widgets.example.com/blue.yaml");
    assert!(file.contains("kind: Widget") && file.contains("color: azure"), "{file}");
    assert_eq!(server.remote.log()[0], "create example.com/v1 Widget default/blue");

    let table = rows(&server.kubectl_ok(&["get", "widgets"]));
    assert_eq!(table[0], ["NAME", "SIZE", "COLOR", "AGE"]);
    assert_eq!(table[1][..3], ["blue", "3", "azure"]);
    let table = rows(&server.kubectl_ok(&["get", "wd", "-A"]));
    assert_eq!(table[0], ["NAMESPACE", "NAME", "SIZE", "COLOR", "AGE"]);
    assert_eq!(server.kubectl_ok(&["get", "widget.example.com/blue", "-o", "jsonpath={.spec.size}"]), "3");

    let resources = rows(&server.kubectl_ok(&["api-resources", "--api-group=example.com"]));
    assert!(resources.iter().any(|r| r == &["widgets", "wd", "example.com/v1", "true", "Widget"]), "{resources:?}");

    server.kubectl_ok(&["patch", "widget", "blue", "--type=merge", "-p", r#"{"spec":{"size":7}}"#]);
    assert!(server.remote.must_file("default/widgets.example.com/blue.yaml").contains("size: 7"));
    let table = rows(&server.kubectl_ok(&["get", "widgets"]));
    assert_eq!(table[1][..3], ["blue", "7", "azure"]);
    server.kubectl_ok(&["delete", "widget", "blue"]);
    assert_eq!(server.remote.file("default/widgets.example.com/blue.yaml"), None);
}

#[test]
fn custom_resource_created_with_default_validation() {
    let server = Server::start();
    create_widget_crd(&server);
    let widget = server.manifest("widget.yaml", WIDGET);
    assert_eq!(server.kubectl_ok(&["create", "-f", &widget]), "widget.example.com/blue created\n");
    assert!(server.remote.must_file("default/widgets.example.com/blue.yaml").contains("color: azure"));
    // An unknown field is still refused.
    let bad = server
        .manifest("bad.yaml", &WIDGET.replace("name: blue", "name: bad").replace("size: 3", "size: 3\n  shape: round"));
    let err = server.kubectl_fails(&["create", "-f", &bad]);
    assert!(err.contains("unknown field \"spec.shape\""), "{err}");
}

#[test]
fn apply_creates_then_patches_strategically() {
    let server = Server::start();
    let deploy = server.manifest("deploy.yaml", DEPLOYMENT);
    assert_eq!(server.kubectl_ok(&["apply", "-f", &deploy]), "deployment.apps/web created\n");
    let file = server.remote.must_file("default/deployments.apps/web.yaml");
    assert!(file.contains("kubectl.kubernetes.io/last-applied-configuration"), "{file}");
    assert_eq!(server.remote.log()[0], "create apps/v1 Deployment default/web");

    // Unchanged: nothing to do, nothing committed.
    assert_eq!(server.kubectl_ok(&["apply", "-f", &deploy]), "deployment.apps/web unchanged\n");
    assert_eq!(server.remote.log().len(), 2);

    let changed = server.manifest("deploy2.yaml", &DEPLOYMENT.replace("nginx:1.25", "nginx:1.27"));
    assert_eq!(server.kubectl_ok(&["apply", "-f", &changed]), "deployment.apps/web configured\n");
    let file = server.remote.must_file("default/deployments.apps/web.yaml");
    assert!(file.contains("image: nginx:1.27") && !file.contains("nginx:1.25\n"), "{file}");
    assert_eq!(server.remote.log()[0], "patch apps/v1 Deployment default/web");
    assert_eq!(
        server.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[*].image}"]),
        "nginx:1.27"
    );
    // The strategic merge kept one container (merged by name), not a second one.
    assert_eq!(
        server.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[*].name}"]),
        "web"
    );

    // A field dropped from the manifest is removed (last-applied-configuration three-way merge).
    let fewer = server.manifest(
        "deploy3.yaml",
        &DEPLOYMENT.replace("nginx:1.25", "nginx:1.27").replace("  labels:\n    app: web\nspec:", "spec:"),
    );
    assert_eq!(server.kubectl_ok(&["apply", "-f", &fewer]), "deployment.apps/web configured\n");
    assert_eq!(server.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.metadata.labels}"]), "");
}

#[test]
fn apply_server_side() {
    let server = Server::start();
    let deploy = server.manifest("deploy.yaml", DEPLOYMENT);
    assert_eq!(
        server.kubectl_ok(&["apply", "--server-side", "-f", &deploy]),
        "deployment.apps/web serverside-applied\n"
    );
    assert!(server.remote.must_file("default/deployments.apps/web.yaml").contains("image: nginx:1.25"));
    let changed = server.manifest("deploy2.yaml", &DEPLOYMENT.replace("nginx:1.25", "nginx:1.27"));
    assert_eq!(
        server.kubectl_ok(&["apply", "--server-side", "-f", &changed]),
        "deployment.apps/web serverside-applied\n"
    );
    assert!(server.remote.must_file("default/deployments.apps/web.yaml").contains("image: nginx:1.27"));
    let managers = server.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert!(managers.contains("kubectl"), "{managers}");
    // Another manager changing the same field without --force-conflicts is a conflict.
    let other = server.manifest("deploy3.yaml", &DEPLOYMENT.replace("nginx:1.25", "nginx:1.28"));
    let err = server.kubectl_fails(&["apply", "--server-side", "--field-manager=other", "-f", &other]);
    assert!(err.contains("conflict"), "{err}");
}

#[test]
fn create_configmap_from_literals() {
    // kubectl's typed clients send these bodies as application/vnd.kubernetes.protobuf.
    let server = Server::start();
    let out = server.kubectl_ok(&["create", "configmap", "literal", "--from-literal=a=1", "--from-literal=b=2"]);
    assert_eq!(out, "configmap/literal created\n");
    let file = server.remote.must_file("default/configmaps/literal.yaml");
    assert!(file.contains("a: \"1\"") && file.contains("b: \"2\""), "{file}");
    assert_eq!(server.kubectl_ok(&["create", "namespace", "made"]), "namespace/made created\n");
    server.remote.must_file("_cluster/namespaces/made.yaml");
}

#[test]
fn create_secret_namespace_and_serviceaccount_from_generators() {
    let server = Server::start();
    let out = server.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "s",
        "--from-literal=k=v",
        "--from-literal=other=two words",
    ]);
    assert_eq!(out, "secret/s created\n");
    let file = server.remote.must_file("default/secrets/s.yaml");
    assert!(file.contains("k: dg==") && file.contains("other: dHdvIHdvcmRz"), "{file}");
    assert!(file.contains("kind: Secret") && file.contains("name: s"), "{file}");
    assert_eq!(server.kubectl_ok(&["get", "secret", "s", "-o", "jsonpath={.data.k}"]), "dg==");

    assert_eq!(server.kubectl_ok(&["create", "namespace", "n"]), "namespace/n created\n");
    let file = server.remote.must_file("_cluster/namespaces/n.yaml");
    // YAML 1.1 reads a bare n as false, so the name is quoted.
    assert!(file.contains("kind: Namespace") && file.contains("name: \"n\""), "{file}");

    assert_eq!(server.kubectl_ok(&["create", "serviceaccount", "sa"]), "serviceaccount/sa created\n");
    let file = server.remote.must_file("default/serviceaccounts/sa.yaml");
    assert!(file.contains("kind: ServiceAccount") && file.contains("name: sa"), "{file}");
    assert_eq!(server.kubectl_ok(&["get", "serviceaccount", "sa", "-o", "jsonpath={.metadata.name}"]), "sa");
}

#[test]
fn create_deployment_from_image() {
    let server = Server::start();
    let out = server.kubectl_ok(&["create", "deployment", "made", "--image=nginx:1.27"]);
    assert_eq!(out, "deployment.apps/made created\n");
    server.remote.must_file("default/deployments.apps/made.yaml");
}

#[test]
fn kubectl_writes_keep_a_persons_file_layout() {
    let server = Server::start();
    let original = "# Team settings, kept by hand\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\n  namespace: default\ndata:\n  k: v\n---\n# The second one\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: two\n  namespace: default\ndata:\n  k: w\n";
    server.remote.commit(&[("team/settings.yaml", Some(original))], "a person adds two ConfigMaps in one file");
    server.wait_served("default", "configmap/two");
    let first = &original[..original.find("---").unwrap()];

    // A label on the second document leaves the first one byte for byte.
    server.kubectl_ok(&["label", "configmap", "two", "edited=by-kubectl"]);
    let file = server.remote.must_file("team/settings.yaml");
    assert!(file.starts_with(first), "the first document changed:\n{file}");
    assert!(file.contains("# The second one") && file.contains("edited: by-kubectl"), "{file}");
    assert_eq!(server.remote.files(), ["README.md", "team/settings.yaml"]);

    // kubectl edit, with a scripted editor, writes back to the person's document.
    let mut edit = server.kubectl_command("kubeconfig", &["edit", "configmap", "one"]);
    edit.env("KUBE_EDITOR", "sed -i -e 's/^  k: v$/  k: edited/'");
    let out = crate::support::run_bounded(&mut edit, crate::support::COMMAND_TIMEOUT);
    assert!(out.status.success(), "kubectl edit failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "configmap/one edited\n");
    let file = server.remote.must_file("team/settings.yaml");
    assert!(file.starts_with("# Team settings, kept by hand\n") && file.contains("k: edited"), "{file}");
    assert!(file.contains("edited: by-kubectl"), "{file}");
    assert_eq!(server.remote.log()[0], "patch v1 ConfigMap default/one");

    // A delete removes one document and keeps the other in the file.
    server.kubectl_ok(&["delete", "configmap", "one"]);
    let file = server.remote.must_file("team/settings.yaml");
    assert!(!file.contains("name: one") && file.contains("name: two") && file.contains("# The second one"), "{file}");
    server.kubectl_ok(&["delete", "configmap", "two"]);
    assert_eq!(server.remote.files(), ["README.md"]);
}

#[test]
fn apply_and_delete_a_multi_document_manifest() {
    let server = Server::start();
    let all = server.manifest("all.yaml", &format!("{NAMESPACE}---\n{CONFIGMAP}---\n{DEPLOYMENT}"));
    let out = server.kubectl_ok(&["apply", "-f", &all]);
    assert_eq!(out, "namespace/team created\nconfigmap/settings created\ndeployment.apps/web created\n");
    assert_eq!(
        server.remote.files(),
        [
            "README.md",
            "_cluster/namespaces/team.yaml",
            "default/configmaps/settings.yaml",
            "default/deployments.apps/web.yaml"
        ]
    );
    let out = server.kubectl_ok(&["delete", "-f", &all]);
    assert_eq!(out, "namespace \"team\" deleted\nconfigmap \"settings\" deleted\ndeployment.apps \"web\" deleted\n");
    // kubectl waits for the namespace to go: marked Terminating, then finalized once empty (the
    // finalize may share a commit with another write: group commit).
    assert_eq!(server.remote.files(), ["README.md"]);
    let messages = crate::support::git(&server.remote.path(), &["log", "--reverse", "--format=%B", "main"]);
    let position = |m: &str| messages.find(m).unwrap_or_else(|| panic!("{m} in {messages}"));
    assert!(position("delete v1 Namespace team") < position("update finalize of v1 Namespace team"), "{messages}");
}

#[test]
fn set_image_and_rollout_restart_patch_the_file() {
    let server = Server::start();
    create_settings_and_web(&server);
    let path = "default/deployments.apps/web.yaml";
    assert_eq!(
        server.kubectl_ok(&["set", "image", "deployment/web", "web=nginx:1.27"]),
        "deployment.apps/web image updated\n"
    );
    let file = server.remote.must_file(path);
    assert!(file.contains("image: nginx:1.27") && !file.contains("nginx:1.25"), "{file}");
    assert_eq!(server.remote.log()[0], "patch apps/v1 Deployment default/web");

    assert_eq!(server.kubectl_ok(&["rollout", "restart", "deployment", "web"]), "deployment.apps/web restarted\n");
    let file = server.remote.must_file(path);
    assert!(file.contains("kubectl.kubernetes.io/restartedAt"), "{file}");
    let generation = server.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.metadata.generation}"]);
    assert_eq!(generation, "3", "two changes of the pod template after the create");
}

#[test]
fn get_pages_through_a_long_list() {
    let server = Server::start();
    let files: Vec<(String, String)> =
        (0..7).map(|i| (format!("default/many/cm-{i}.yaml"), configmap(&format!("cm-{i}"), &i.to_string()))).collect();
    let files: Vec<(&str, Option<&str>)> = files.iter().map(|(p, c)| (p.as_str(), Some(c.as_str()))).collect();
    server.remote.commit(&files, "a person adds seven ConfigMaps");
    server.wait_served("default", "configmap/cm-6");
    let names = server.kubectl_ok(&["get", "configmaps", "--chunk-size=2", "-o", "name"]);
    let expected: Vec<String> = (0..7).map(|i| format!("configmap/cm-{i}")).collect();
    assert_eq!(names.lines().collect::<Vec<_>>(), expected);
    let table = rows(&server.kubectl_ok(&["get", "configmaps", "--chunk-size=3"]));
    assert_eq!(table.len(), 8, "one header and seven rows: {table:?}");
    assert_eq!(table.iter().filter(|r| r[0] == "NAME").count(), 1, "{table:?}");
    let sorted = server.kubectl_ok(&["get", "cm", "--sort-by=.data.k", "-o", "jsonpath={.items[*].metadata.name}"]);
    assert_eq!(sorted, "cm-0 cm-1 cm-2 cm-3 cm-4 cm-5 cm-6");
    // `kubectl delete --all` lists, then deletes each one.
    let out = server.kubectl_ok(&["delete", "configmaps", "--all"]);
    assert_eq!(out.lines().count(), 7, "{out}");
    assert_eq!(server.remote.files(), ["README.md"]);
}

/// RBAC names may hold characters that URLs escape; kubectl sends them percent-encoded.
#[test]
fn names_with_escaped_characters_round_trip() {
    let server = Server::start();
    let role = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: view pods\nrules:\n- apiGroups: [\"\"]\n  resources: [pods]\n  verbs: [get]\n";
    let path = server.manifest("role.yaml", role);
    server.kubectl_ok(&["apply", "-f", &path]);
    let got = server.kubectl_ok(&["get", "clusterrole", "view pods", "-o", "jsonpath={.metadata.name}"]);
    assert_eq!(got, "view pods");
    let again = server.kubectl_ok(&["apply", "-f", &path]);
    assert!(again.contains("unchanged"), "{again}");
    assert_eq!(
        server.remote.log().iter().filter(|c| c.contains("ClusterRole view pods")).count(),
        1,
        "{:?}",
        server.remote.log()
    );
    server.kubectl_ok(&["delete", "clusterrole", "view pods"]);
    assert!(server.remote.files().iter().all(|f| !f.contains("view pods")), "{:?}", server.remote.files());
}

/// `kubectl wait --for=condition=Established` returns, as installers of CRDs expect.
#[test]
fn kubectl_waits_for_a_crd_to_be_established() {
    let server = Server::start();
    let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {plural: widgets, kind: Widget}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}\n";
    let path = server.manifest("crd.yaml", crd);
    server.kubectl_ok(&["apply", "-f", &path]);
    let out = server.kubectl_ok(&["wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=20s"]);
    assert!(out.contains("condition met"), "{out}");
}

const PARTS_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: parts.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: parts, kind: Part}
  versions:
  - name: v1beta1
    served: true
    storage: false
    deprecated: true
    deprecationWarning: example.com/v1beta1 Part is deprecated; use example.com/v1
    schema: &schema
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
              color: {type: string, enum: [red, green], default: red}
            x-kubernetes-validations:
            - rule: self.size < 10 || self.color == 'green'
              message: big parts are green
  - name: v1
    served: true
    storage: true
    schema: *schema
    selectableFields:
    - jsonPath: .spec.color
";

/// Admission of custom resources as kubectl users meet it: kube-apiserver's causes, nothing
/// committed; a deprecated version warns and every served version serves the object.
#[test]
fn kubectl_meets_crd_validation_and_versions() {
    let server = Server::start();
    server.kubectl_ok(&["apply", "-f", &server.manifest("crd.yaml", PARTS_CRD)]);
    server.kubectl_ok(&["wait", "--for=condition=Established", "crd/parts.example.com", "--timeout=20s"]);
    let commits = server.remote.log().len();
    let part = |version: &str, spec: &str| {
        format!("apiVersion: example.com/{version}\nkind: Part\nmetadata:\n  name: p\nspec:\n{spec}")
    };
    let err = server.kubectl_fails(&["apply", "-f", &server.manifest("small.yaml", &part("v1", "  size: 0\n"))]);
    assert!(
        err.contains("spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"),
        "{err}"
    );
    let err = server.kubectl_fails(&["apply", "-f", &server.manifest("big.yaml", &part("v1", "  size: 12\n"))]);
    assert!(err.contains("spec: Invalid value: \"object\": big parts are green"), "{err}");
    // kubectl validates strictly by default: an unknown field is refused.
    let extra = part("v1", "  size: 3\n  extra: dropped\n");
    let err = server.kubectl_fails(&["apply", "-f", &server.manifest("extra.yaml", &extra)]);
    assert!(err.contains("unknown field \"spec.extra\""), "{err}");
    assert_eq!(server.remote.log().len(), commits, "nothing committed");

    // A deprecated version warns; the object is served at every served version, defaulted, and
    // without validation the unknown field is pruned.
    let ok = part("v1beta1", "  size: 3\n  extra: dropped\n");
    let out = server.kubectl(&["apply", "--validate=false", "-f", &server.manifest("ok.yaml", &ok)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Warning: example.com/v1beta1 Part is deprecated; use example.com/v1"), "{stderr}");
    let v1 = server.kubectl_ok(&["get", "parts.v1.example.com", "p", "-o", "jsonpath={.apiVersion} {.spec}"]);
    assert_eq!(v1, r#"example.com/v1 {"color":"red","size":3}"#);
    let beta = server.kubectl_ok(&["get", "parts.v1beta1.example.com", "p", "-o", "jsonpath={.apiVersion}"]);
    assert_eq!(beta, "example.com/v1beta1");
    let file = server.remote.must_file("default/parts.example.com/p.yaml");
    // (kubectl's last-applied annotation keeps what was sent; the object does not.)
    assert!(file.contains("\n  color: red") && !file.contains("\n  extra:"), "{file}");

    // selectableFields select, in v1 only.
    let red = server.kubectl_ok(&["get", "parts.v1.example.com", "--field-selector", "spec.color=red", "-o", "name"]);
    assert_eq!(red.trim(), "part.example.com/p");
    let green =
        server.kubectl_ok(&["get", "parts.v1.example.com", "--field-selector", "spec.color=green", "-o", "name"]);
    assert_eq!(green.trim(), "");
    let err = server.kubectl_fails(&["get", "parts.v1beta1.example.com", "--field-selector", "spec.color=red"]);
    assert!(err.contains("field label not supported: spec.color"), "{err}");
}

#[test]
fn auth_can_i_and_whoami_are_answered_and_nothing_is_stored() {
    let server = Server::start();
    assert_eq!(server.kubectl_ok(&["auth", "can-i", "delete", "deployments", "-n", "default"]), "yes\n");
    assert_eq!(server.kubectl_ok(&["auth", "can-i", "get", "/healthz"]), "yes\n");
    let rules = server.kubectl_ok(&["auth", "can-i", "--list", "-n", "default"]);
    assert!(rules.lines().any(|l| l.starts_with("*.*") && l.ends_with("[*]")), "{rules}");
    let whoami = server.kubectl_ok(&["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
    assert_eq!(whoami, "kubernetes-admin");
    assert_eq!(server.remote.files(), ["README.md"]);
}

#[test]
fn get_prints_the_columns_of_workloads_nodes_and_budgets() {
    let server = Server::start();
    server.kubectl_ok(&["create", "cronjob", "nightly", "--image=busybox:1.36", "--schedule=0 3 * * *", "--", "date"]);
    server.kubectl_ok(&["create", "job", "once", "--from=cronjob/nightly"]);
    server.kubectl_ok(&["create", "pdb", "budget", "--selector=app=web", "--min-available=1"]);
    let node = server.manifest("node.yaml", "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n");
    server.kubectl_ok(&["create", "-f", &node]);
    server.kubectl_ok(&["cordon", "n1"]);

    let table = rows(&server.kubectl_ok(&["get", "jobs"]));
    assert_eq!(table[0], ["NAME", "STATUS", "COMPLETIONS", "AGE"]);
    assert_eq!(table[1][..3], ["once", "Running", "0/1"]);
    let table = rows(&server.kubectl_ok(&["get", "cronjobs"]));
    assert_eq!(table[0], ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]);
    assert_eq!(table[1][..8], ["nightly", "0", "3", "*", "*", "*", "<none>", "false"]);
    let table = rows(&server.kubectl_ok(&["get", "nodes"]));
    assert_eq!(table[0], ["NAME", "STATUS", "AGE", "VERSION"]);
    assert_eq!(table[1][..2], ["n1", "Unknown,SchedulingDisabled"]);
    let table = rows(&server.kubectl_ok(&["get", "pdb"]));
    assert_eq!(table[0], ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"]);
    assert_eq!(table[1][..4], ["budget", "1", "N/A", "0"]);
    let table = rows(&server.kubectl_ok(&["get", "componentstatuses"]));
    assert_eq!(table[0], ["NAME", "STATUS", "MESSAGE", "ERROR"]);
    assert_eq!(table[1][..2], ["controller-manager", "Unknown"]);
}
