//! Admission of custom resources through kube-rs, on a real remote: structural schema validation
//! with kube-apiserver's causes, pruning, defaulting (on write and on read), ratcheting. Each
//! refusal is checked in the remote too: nothing committed.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::wait::{await_condition, conditions};
use serde_json::{Value, json};

use crate::support::{Remote, metrics, open, status_of, within};

/// Sprockets: a required, bounded size; an enum; a pattern; a defaulted mode; a status schema.
const SPROCKETS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: sprockets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: sprockets, kind: Sprocket}
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [size]
              properties:
                size: {type: integer, minimum: 1, maximum: 10}
                color: {type: string, enum: [red, green, blue]}
                name: {type: string, minLength: 3, pattern: '^[a-z]+$'}
                mode: {type: string, default: fast}
                teeth:
                  type: array
                  x-kubernetes-list-type: map
                  x-kubernetes-list-map-keys: [name]
                  items:
                    type: object
                    properties:
                      name: {type: string}
                      depth: {type: integer, default: 2}
            status:
              type: object
              properties:
                phase: {type: string, enum: [Pending, Ready]}
"#;

fn sprockets(client: kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Sprocket");
    Api::namespaced_with(client, "default", &ApiResource::from_gvk(&gvk))
}

fn sprocket(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Sprocket",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec}))
    .unwrap()
}

/// `field: message` of each cause of a 422.
fn causes(status: &kube::core::Status) -> Vec<String> {
    let details = status.details.as_ref().expect("details");
    details.causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
}

/// Creates the Gear CRD through the API, waits until it is Established, and returns the Gears of
/// `default`.
async fn install_gears(crds: &Api<CustomResourceDefinition>, client: kube::Client) -> Api<DynamicObject> {
    let gears: CustomResourceDefinition = serde_saphyr::from_str(GEARS).unwrap();
    crds.create(&PostParams::default(), &gears).await.unwrap();
    established(client.clone(), "gears.example.com").await;
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Gear");
    Api::namespaced_with(client, "default", &ApiResource::from_gvk(&gvk))
}

async fn established(client: kube::Client, name: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    let wait = await_condition(crds, name, conditions::is_crd_established());
    tokio::time::timeout(Duration::from_secs(10), wait).await.expect("Established in time").unwrap();
}

#[tokio::test]
async fn custom_resources_are_validated_pruned_and_defaulted_before_any_commit() {
    within(90, async {
        let remote = Remote::new();
        remote.commit(&[("crds/sprockets.yaml", Some(SPROCKETS))], "the CRD");
        let store = open(&remote).await;
        established(store.client(), "sprockets.example.com").await;
        let api = sprockets(store.client());
        let commits = remote.commit_count();

        // Every violation at once, worded as kube-apiserver words them; nothing committed.
        let bad =
            sprocket("bad", json!({"size": 0, "color": "pink", "name": "AB", "teeth": [{"name": "a"}, {"name": "a"}]}));
        let status = status_of(api.create(&PostParams::default(), &bad).await);
        assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"), "{status:?}");
        assert_eq!(
            causes(&status),
            [
                "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1",
                "spec.color: Unsupported value: \"pink\": supported values: \"red\", \"green\", \"blue\"",
                "spec.name: Invalid value: \"AB\": spec.name in body should be at least 3 chars long",
                "spec.name: Invalid value: \"AB\": spec.name in body should match '^[a-z]+$'",
                "spec.teeth[1]: Duplicate value: {\"name\":\"a\"}",
            ]
        );
        assert!(status.message.starts_with("Sprocket.example.com \"bad\" is invalid: ["), "{}", status.message);
        let missing =
            status_of(api.create(&PostParams::default(), &sprocket("missing", json!({"color": "red"}))).await);
        assert_eq!(causes(&missing), ["spec.size: Required value"]);
        // Server-side apply and dry-run are admitted the same way.
        let apply = PatchParams::apply("test");
        let applied = api.patch("applied", &apply, &Patch::Apply(sprocket("applied", json!({"size": 11})))).await;
        assert_eq!(status_of(applied).code, 422);
        let dry = PostParams { dry_run: true, ..Default::default() };
        assert_eq!(status_of(api.create(&dry, &bad).await).code, 422);
        store.sync().await.unwrap();
        assert_eq!(remote.commit_count(), commits, "nothing committed");

        // A valid one: unknown fields pruned, defaults filled in, and so committed.
        let good = sprocket("good", json!({"size": 2, "extra": "dropped", "teeth": [{"name": "a"}]}));
        let created = api.create(&PostParams::default(), &good).await.unwrap();
        assert_eq!(created.data["spec"], json!({"size": 2, "mode": "fast", "teeth": [{"name": "a", "depth": 2}]}));
        let file = remote.must_file("default/sprockets.example.com/good.yaml");
        assert!(file.contains("mode: fast") && file.contains("depth: 2") && !file.contains("extra"), "{file}");

        // fieldValidation=Strict refuses the unknown field instead (400), Warn keeps going.
        let strict =
            PatchParams { field_validation: Some(kube::api::ValidationDirective::Strict), ..Default::default() };
        let extra = Patch::Merge(json!({"spec": {"extra": 1}}));
        let refused = status_of(api.patch("good", &strict, &extra).await);
        assert_eq!((refused.code, refused.reason.as_str()), (400, "BadRequest"), "{refused:?}");
        assert!(refused.message.contains("unknown field \"spec.extra\""), "{}", refused.message);

        // Patches and the status subresource, with the status schema.
        let patch = Patch::Merge(json!({"spec": {"size": 20}}));
        let too_big = status_of(api.patch("good", &PatchParams::default(), &patch).await);
        assert_eq!(
            causes(&too_big),
            ["spec.size: Invalid value: 20: spec.size in body should be less than or equal to 10"]
        );
        let phase = Patch::Merge(json!({"status": {"phase": "Broken"}}));
        let bad_status = status_of(api.patch_status("good", &PatchParams::default(), &phase).await);
        assert_eq!(
            causes(&bad_status),
            ["status.phase: Unsupported value: \"Broken\": supported values: \"Pending\", \"Ready\""]
        );
        let commits = remote.commit_count();
        store.sync().await.unwrap();
        assert_eq!(remote.commit_count(), commits, "nothing committed");
        let ready = Patch::Merge(json!({"status": {"phase": "Ready"}}));
        let patched = api.patch_status("good", &PatchParams::default(), &ready).await.unwrap();
        assert_eq!(patched.data["status"]["phase"], "Ready");
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn what_a_person_commits_is_served_defaulted_and_ratcheted() {
    within(90, async {
        let remote = Remote::new();
        // Committed without the defaulted fields, and with a size the schema refuses.
        // Second in its file, after a note of the person's own.
        let person = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n  namespace: default\n---\n\
                      apiVersion: example.com/v1\nkind: Sprocket\nmetadata:\n  name: old\n  namespace: default\n\
                      spec:\n  size: 0 # too small, but it is what was agreed\n  teeth:\n  - name: a\n";
        remote.commit(&[("crds/sprockets.yaml", Some(SPROCKETS)), ("sprockets/old.yaml", Some(person))], "by hand");
        let store = open(&remote).await;
        established(store.client(), "sprockets.example.com").await;
        let api = sprockets(store.client());

        // Served as committed, with the defaults apiextensions applies on read; the file untouched.
        let served = api.get("old").await.unwrap();
        assert_eq!(served.data["spec"], json!({"size": 0, "mode": "fast", "teeth": [{"name": "a", "depth": 2}]}));
        assert_eq!(remote.must_file("sprockets/old.yaml"), person);
        // Reported: the object, its file and document, and what admission would say.
        let report = store.report();
        assert_eq!(report.invalid_objects.len(), 1, "{report:?}");
        let invalid = &report.invalid_objects[0];
        assert_eq!((invalid.path.as_str(), invalid.document, invalid.line), ("sprockets/old.yaml", 2, 6));
        assert_eq!(
            invalid.problems,
            ["spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"]
        );
        assert!(metrics(&store).await.lines().any(|l| l == "gitbacked_invalid_objects 1"));

        // A write that leaves the invalid value as it is goes through (ratcheting)...
        let label = Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}}));
        api.patch("old", &PatchParams::default(), &label).await.unwrap();
        assert!(remote.must_file("sprockets/old.yaml").contains("team: a"));
        // ...one that changes it to another invalid value does not.
        let commits = remote.commit_count();
        let worse = Patch::Merge(json!({"spec": {"size": -1}}));
        let refused = status_of(api.patch("old", &PatchParams::default(), &worse).await);
        assert_eq!(
            causes(&refused),
            ["spec.size: Invalid value: -1: spec.size in body should be greater than or equal to 1"]
        );
        store.sync().await.unwrap();
        assert_eq!(remote.commit_count(), commits, "nothing committed");
        store.close().await.unwrap();
    })
    .await;
}

const GEARS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gears.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gears, kind: Gear}
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
                replicas: {type: integer}
                maxReplicas: {type: integer}
              x-kubernetes-validations:
                - rule: self.replicas <= self.maxReplicas
                  messageExpression: "'replicas (' + string(self.replicas) + ') must not exceed ' + string(self.maxReplicas)"
                - rule: self.replicas >= oldSelf.replicas
                  message: gears never scale down
                  fieldPath: .replicas
                  reason: FieldValueForbidden
"#;

#[tokio::test]
async fn cel_rules_and_crds_apiextensions_refuses() {
    within(90, async {
        let remote = Remote::new();
        let store = open(&remote).await;
        let crds: Api<CustomResourceDefinition> = Api::all(store.client());
        let commits = remote.commit_count();

        // A CRD whose rule does not compile, or whose schema is not structural: 422, nothing committed.
        let mut broken: CustomResourceDefinition = serde_saphyr::from_str(GEARS).unwrap();
        let mut schema = serde_json::to_value(&broken.spec.versions[0].schema).unwrap();
        schema["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"][0]["rule"] =
            json!("self.replicas <=");
        schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["untyped"] = json!({"description": "no type"});
        broken.spec.versions[0].schema = serde_json::from_value(schema).unwrap();
        let status = status_of(crds.create(&PostParams::default(), &broken).await);
        assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"), "{status:?}");
        let fields: Vec<String> = status.details.unwrap().causes.into_iter().map(|c| c.field).collect();
        let at = "spec.versions[0].schema.openAPIV3Schema.properties[spec]";
        assert_eq!(
            fields,
            [format!("{at}.x-kubernetes-validations[0].rule"), format!("{at}.properties[untyped].type")]
        );
        store.sync().await.unwrap();
        assert_eq!(remote.commit_count(), commits, "nothing committed");

        let api = install_gears(&crds, store.client()).await;
        let gear = |replicas: i64| -> DynamicObject {
            serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Gear",
                "metadata": {"name": "g", "namespace": "default"}, "spec": {"replicas": replicas, "maxReplicas": 5}}))
            .unwrap()
        };
        let commits = remote.commit_count();
        let refused = status_of(api.create(&PostParams::default(), &gear(6)).await);
        assert_eq!(causes(&refused), ["spec: Invalid value: \"object\": replicas (6) must not exceed 5"]);
        store.sync().await.unwrap();
        assert_eq!(remote.commit_count(), commits, "nothing committed");

        // The transition rule holds on updates only.
        api.create(&PostParams::default(), &gear(3)).await.unwrap();
        let down = Patch::Merge(json!({"spec": {"replicas": 2}}));
        let refused = status_of(api.patch("g", &PatchParams::default(), &down).await);
        assert_eq!(causes(&refused), ["spec.replicas: Forbidden: gears never scale down"]);
        let refused = refused.details.unwrap();
        assert_eq!(refused.causes[0].reason, "FieldValueForbidden");
        let up = Patch::Merge(json!({"spec": {"replicas": 4}}));
        assert_eq!(api.patch("g", &PatchParams::default(), &up).await.unwrap().data["spec"]["replicas"], 4);
        assert!(remote.must_file("default/gears.example.com/g.yaml").contains("replicas: 4"));
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn deleting_a_crd_deletes_its_custom_resources_first() {
    use kube::api::DeleteParams;
    within(90, async {
        let remote = Remote::new();
        let store = open(&remote).await;
        let crds: Api<CustomResourceDefinition> = Api::all(store.client());
        let api = install_gears(&crds, store.client()).await;
        let gear = |name: &str, finalizers: Value| -> DynamicObject {
            serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Gear",
                "metadata": {"name": name, "namespace": "default", "finalizers": finalizers},
                "spec": {"replicas": 1, "maxReplicas": 5}}))
            .unwrap()
        };
        api.create(&PostParams::default(), &gear("free", json!([]))).await.unwrap();
        api.create(&PostParams::default(), &gear("held", json!(["example.com/hold"]))).await.unwrap();
        let held = "default/gears.example.com/held.yaml";
        assert!(remote.file("default/gears.example.com/free.yaml").is_some() && remote.file(held).is_some());

        // The CRD is marked, served Terminating, and its objects are deleted (commits as usual).
        let deleting = crds.delete("gears.example.com", &DeleteParams::default()).await.unwrap();
        let deleting = deleting.left().expect("the CRD, still there");
        assert!(deleting.metadata.deletion_timestamp.is_some());
        let conditions = deleting.status.unwrap().conditions.unwrap();
        assert!(conditions.iter().any(|c| c.type_ == "Terminating" && c.status == "True"), "{conditions:?}");
        let refused = status_of(api.create(&PostParams::default(), &gear("late", json!([]))).await);
        assert_eq!((refused.code, refused.reason.as_str()), (405, "MethodNotAllowed"), "{refused:?}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while remote.file("default/gears.example.com/free.yaml").is_some() {
            assert!(tokio::time::Instant::now() < deadline, "the free gear was not deleted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // One with a finalizer of its own is waited for, and so is the CRD (its deletion is the
        // finalizer's next write).
        while api.get("held").await.unwrap().metadata.deletion_timestamp.is_none() {
            assert!(tokio::time::Instant::now() < deadline, "the held gear was not marked");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(crds.get_opt("gears.example.com").await.unwrap().is_some());
        let release = Patch::Merge(json!({"metadata": {"finalizers": null}}));
        api.patch("held", &PatchParams::default(), &release).await.unwrap();
        while crds.get_opt("gears.example.com").await.unwrap().is_some() {
            assert!(tokio::time::Instant::now() < deadline, "the CRD was not removed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        store.sync().await.unwrap();
        assert!(remote.files().iter().all(|f| !f.contains("gears")), "{:?}", remote.files());

        // Re-created, it brings nothing back.
        let api = install_gears(&crds, store.client()).await;
        assert!(api.list(&Default::default()).await.unwrap().items.is_empty());
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn built_in_objects_are_validated_as_kube_apiserver_validates_them() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
    within(90, async {
        let remote = Remote::new();
        // A person's Deployment without an image: served, and still scalable.
        let person = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: by-hand\n  namespace: default\nspec:\n  \
                      selector:\n    matchLabels: {app: a}\n  template:\n    metadata:\n      labels: {app: a}\n    spec:\n      \
                      containers:\n      - name: a\n";
        remote.commit(&[("apps/by-hand.yaml", Some(person))], "by hand");
        let store = open(&remote).await;
        let report = store.report();
        assert_eq!(report.invalid_objects.len(), 1, "{report:?}");
        assert_eq!(report.invalid_objects[0].problems, ["spec.template.spec.containers[0].image: Required value"]);
        let client = store.client();
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let commits = remote.commit_count();
        let deployment = |app: &str, labels: &str, image: Option<&str>| -> Deployment {
            serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {
                "selector": {"matchLabels": {"app": app}},
                "template": {"metadata": {"labels": {"app": labels}}, "spec": {"containers": [{"name": "web", "image": image}]}}}}))
            .unwrap()
        };
        let refused = status_of(deployments.create(&PostParams::default(), &deployment("web", "api", None)).await);
        assert_eq!((refused.code, refused.reason.as_str()), (422, "Invalid"), "{refused:?}");
        assert_eq!(
            causes(&refused),
            [
                "spec.template.spec.containers[0].image: Required value",
                "spec.template.metadata.labels: Invalid value: {\"app\":\"api\"}: `selector` does not match template `labels`",
            ]
        );
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        let service: Service = serde_json::from_value(json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 0}]}})).unwrap();
        let refused = status_of(services.create(&PostParams::default(), &service).await);
        // targetPort defaults to the port, and is then refused with it, as kube-apiserver does.
        assert_eq!(
            causes(&refused),
            [
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
            ]
        );
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i",
            "resources": {"limits": {"memory": "lots"}}}]}}))
        .unwrap();
        let refused = status_of(pods.create(&PostParams::default(), &pod).await);
        assert_eq!((refused.code, refused.reason.as_str()), (400, "BadRequest"), "{refused:?}");
        assert!(refused.message.contains("quantities must match the regular expression"), "{}", refused.message);
        let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let meta = |extra: Value| -> ConfigMap {
            serde_json::from_value(json!({"metadata": extra, "data": {"k": "v"}})).unwrap()
        };
        let bad_finalizer = status_of(configmaps.create(&PostParams::default(), &meta(json!({"name": "f", "finalizers": ["not a name"]}))).await);
        assert_eq!(bad_finalizer.details.unwrap().causes[0].field, "metadata.finalizers[0]");
        let owner = json!({"name": "o", "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": ""}]});
        let bad_owner = status_of(configmaps.create(&PostParams::default(), &meta(owner)).await);
        assert_eq!(causes(&bad_owner), ["metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty"]);
        store.sync().await.unwrap();
        assert_eq!(remote.commit_count(), commits, "nothing committed");

        // Immutable fields.
        deployments.create(&PostParams::default(), &deployment("web", "web", Some("nginx"))).await.unwrap();
        let moved = Patch::Merge(json!({"spec": {"selector": {"matchLabels": {"app": "api"}},
            "template": {"metadata": {"labels": {"app": "api"}}}}}));
        let refused = status_of(deployments.patch("web", &PatchParams::default(), &moved).await);
        assert_eq!(causes(&refused), ["spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"api\"}}: field is immutable"]);
        let mut frozen = meta(json!({"name": "frozen"}));
        frozen.immutable = Some(true);
        configmaps.create(&PostParams::default(), &frozen).await.unwrap();
        let thaw = Patch::Merge(json!({"data": {"k": "changed"}}));
        let refused = status_of(configmaps.patch("frozen", &PatchParams::default(), &thaw).await);
        assert_eq!(causes(&refused), ["data: Forbidden: field is immutable when `immutable` is set"]);
        let commits = remote.commit_count();
        store.sync().await.unwrap();
        assert_eq!(remote.commit_count(), commits, "nothing committed");
        assert!(remote.must_file("default/configmaps/frozen.yaml").contains("k: v"));

        // The person's Deployment is scaled although it has no image: that is not what changed.
        let scale = Patch::Merge(json!({"spec": {"replicas": 3}}));
        deployments.patch("by-hand", &PatchParams::default(), &scale).await.unwrap();
        assert!(remote.must_file("apps/by-hand.yaml").contains("replicas: 3"));
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn custom_resources_are_written_in_the_storage_version() {
    within(90, async {
        let remote = Remote::new();
        let store = open(&remote).await;
        let crds: Api<CustomResourceDefinition> = Api::all(store.client());
        let crd = |storage: &str| -> CustomResourceDefinition {
            let version = |name: &str, props: Value| json!({"name": name, "served": true, "storage": name == storage,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": props}}}}});
            serde_json::from_value(json!({"metadata": {"name": "cogs.example.com"}, "spec": {"group": "example.com",
                "scope": "Namespaced", "names": {"plural": "cogs", "kind": "Cog"}, "versions": [
                    version("v1", json!({"name": {"type": "string"}, "old": {"type": "integer"}})),
                    version("v2", json!({"name": {"type": "string"}, "extra": {"type": "string"}}))]}}))
            .unwrap()
        };
        let apply = PatchParams::apply("test").force();
        crds.patch("cogs.example.com", &apply, &Patch::Apply(crd("v1"))).await.unwrap();
        established(store.client(), "cogs.example.com").await;
        let cogs = |version: &str| {
            let gvk = GroupVersionKind::gvk("example.com", version, "Cog");
            Api::<DynamicObject>::namespaced_with(store.client(), "default", &ApiResource::from_gvk(&gvk))
        };
        let cog = |version: &str, spec: Value| -> DynamicObject {
            serde_json::from_value(json!({"apiVersion": format!("example.com/{version}"), "kind": "Cog",
                "metadata": {"name": "c", "namespace": "default"}, "spec": spec}))
            .unwrap()
        };
        // Written at v2 while v1 is the storage version: stored as v1, without what v1 does not declare.
        let created = cogs("v2").create(&PostParams::default(), &cog("v2", json!({"name": "a", "extra": "x"}))).await.unwrap();
        assert_eq!((created.types.unwrap().api_version.as_str(), &created.data["spec"]), ("example.com/v2", &json!({"name": "a"})));
        let file = remote.must_file("default/cogs.example.com/c.yaml");
        assert!(file.starts_with("apiVersion: example.com/v1\n") && !file.contains("extra"), "{file}");
        let stored = |crd: CustomResourceDefinition| crd.status.unwrap().stored_versions.unwrap();
        assert_eq!(stored(crds.get("cogs.example.com").await.unwrap()), ["v1"]);

        // Storage moves to v2: the v1 object stays listed in storedVersions until it is written again.
        crds.patch("cogs.example.com", &apply, &Patch::Apply(crd("v2"))).await.unwrap();
        assert_eq!(stored(crds.get("cogs.example.com").await.unwrap()), ["v1", "v2"]);
        let rewritten = Patch::Merge(json!({"spec": {"extra": "y"}}));
        cogs("v2").patch("c", &PatchParams::default(), &rewritten).await.unwrap();
        assert!(remote.must_file("default/cogs.example.com/c.yaml").starts_with("apiVersion: example.com/v2\n"));
        assert_eq!(stored(crds.get("cogs.example.com").await.unwrap()), ["v2"]);
        store.close().await.unwrap();
    })
    .await;
}
