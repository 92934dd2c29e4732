//! OpenAPI v3: `/openapi/v3` lists one document per group-version, each holding the schemas of its
//! types (and every schema they reference). kubectl reads them to validate and to compute
//! client-side apply patches; `kubectl explain` reads their descriptions.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use gitbacked_core::registry::{Registry, ResourceType, api_version};
use gitbacked_core::schema::{BUILTIN, builtin_name};

/// The path of a group-version's document (`api/v1`, `apis/apps/v1`).
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// The component name of a CRD's schema, as the apiserver forms it (`dev.gitbacked.v1.Replicator`).
fn crd_schema_name(rt: &ResourceType, version: &str) -> String {
    let reversed: Vec<&str> = rt.group.split('.').rev().collect();
    format!("{}.{version}.{}", reversed.join("."), rt.kind)
}

/// A CRD's schema with the object envelope and its GVK.
fn crd_schema(rt: &ResourceType, version: &str) -> Value {
    let mut schema = rt.schemas.get(version).cloned().unwrap_or_else(|| json!({"type": "object"}));
    let properties = schema.as_object_mut().map(|s| s.entry("properties").or_insert_with(|| json!({})));
    if let Some(Value::Object(p)) = properties {
        p.insert("apiVersion".into(), json!({"type": "string"}));
        p.insert("kind".into(), json!({"type": "string"}));
        p.insert(
            "metadata".into(),
            json!({"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}),
        );
    }
    schema["x-kubernetes-group-version-kind"] = json!([{"group": rt.group, "version": version, "kind": rt.kind}]);
    if let Some(fields) = rt.selectable_fields.get(version).filter(|f| !f.is_empty()) {
        let published: Vec<Value> = fields.iter().map(|f| json!({"fieldPath": f})).collect();
        schema["x-kubernetes-selectable-fields"] = Value::Array(published);
    }
    schema
}

/// Adds `name` and every schema it references, transitively.
fn add_with_references(name: &str, schemas: &mut Map<String, Value>) {
    let mut pending = vec![name.to_string()];
    let mut seen: BTreeSet<String> = schemas.keys().cloned().collect();
    while let Some(next) = pending.pop() {
        let Some(schema) = BUILTIN.get(&next) else { continue };
        collect_refs(schema, &mut |r| {
            if seen.insert(r.to_string()) {
                pending.push(r.to_string());
            }
        });
        schemas.insert(next, schema.clone());
    }
}

fn collect_refs(value: &Value, found: &mut impl FnMut(&str)) {
    match value {
        Value::Object(map) => {
            if let Some(r) =
                map.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                found(r);
            }
            map.values().for_each(|v| collect_refs(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, found)),
        _ => {}
    }
}

/// The paths of a resource, as the apiserver lists them: clients (`kubectl explain`) find a
/// resource's kind through the `x-kubernetes-group-version-kind` of its operations.
fn add_paths(paths: &mut Map<String, Value>, rt: &ResourceType, group: &str, version: &str, schema: &str) {
    let gvk = json!({"group": group, "version": version, "kind": rt.kind});
    let response = json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}}});
    // kubectl leaves validation to the server when writes declare `fieldValidation`.
    let parameters: Vec<Value> = ["dryRun", "fieldManager", "fieldValidation"]
        .iter()
        .map(|name| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}}))
        .collect();
    let operation = |action: &str| {
        let mut op =
            json!({"x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk, "responses": response});
        if matches!(action, "post" | "put" | "patch") {
            op["parameters"] = Value::Array(parameters.clone());
        }
        op
    };
    let prefix = format!("/{}", gv_path(group, version));
    let collection = match rt.namespaced {
        true => format!("{prefix}/namespaces/{{namespace}}/{}", rt.plural),
        false => format!("{prefix}/{}", rt.plural),
    };
    paths.insert(collection.clone(), json!({"get": operation("list"), "post": operation("post")}));
    paths.insert(
        format!("{collection}/{{name}}"),
        json!({"get": operation("get"), "put": operation("put"), "patch": operation("patch")}),
    );
    if rt.namespaced {
        paths.insert(format!("{prefix}/{}", rt.plural), json!({"get": operation("list")}));
    }
}

/// The document of one group-version, `None` when nothing is served there.
pub fn document(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let types: Vec<&std::sync::Arc<ResourceType>> =
        registry.all().filter(|rt| rt.group == group && rt.serves(version)).collect();
    if types.is_empty() {
        return None;
    }
    let mut schemas = Map::new();
    let mut paths = Map::new();
    for rt in types {
        let schema_name = match &rt.crd {
            None => {
                let Some(name) = builtin_name(group, version, &rt.kind) else { continue };
                add_with_references(name, &mut schemas);
                name.to_string()
            }
            Some(_) => {
                let name = crd_schema_name(rt, version);
                schemas.insert(name.clone(), crd_schema(rt, version));
                add_with_references("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", &mut schemas);
                name
            }
        };
        add_paths(&mut paths, rt, group, version, &schema_name);
    }
    let title = format!("Kubernetes {}", api_version(group, version));
    Some(
        json!({"openapi": "3.0.0", "info": {"title": title, "version": "unversioned"}, "paths": paths, "components": {"schemas": schemas}}),
    )
}

/// A short hash of what a group-version's document is made from, so that clients cache the
/// document until its types change (a CRD is added or edited).
fn fingerprint(registry: &Registry, group: &str, version: &str) -> String {
    let types: Vec<String> =
        registry.all().filter(|rt| rt.group == group && rt.serves(version)).map(|rt| format!("{rt:?}")).collect();
    let seed = format!("{}/{}", env!("CARGO_PKG_VERSION"), types.join("\n"));
    gitbacked_core::uid::stable_uid(&seed).replace('-', "").to_uppercase()
}

/// `GET /openapi/v3`: where each group-version's document is.
pub fn index(registry: &Registry) -> Value {
    let mut gvs: BTreeMap<String, (String, String)> = BTreeMap::new();
    for rt in registry.all() {
        for v in &rt.versions {
            gvs.insert(gv_path(&rt.group, v), (rt.group.clone(), v.clone()));
        }
    }
    let paths: Map<String, Value> = gvs
        .into_iter()
        .map(|(path, (g, v))| {
            let url = format!("/openapi/v3/{path}?hash={}", fingerprint(registry, &g, &v));
            (path, json!({"serverRelativeURL": url}))
        })
        .collect();
    json!({"paths": paths})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_hold_types_and_their_references() {
        let r = Registry::default();
        let apps = document(&r, "apps", "v1").unwrap();
        let schemas = apps["components"]["schemas"].as_object().unwrap();
        assert!(schemas.contains_key("io.k8s.api.apps.v1.Deployment"));
        assert!(schemas.contains_key("io.k8s.api.core.v1.Container"), "referenced types come along");
        assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        let index = index(&r);
        assert!(
            index["paths"]["api/v1"]["serverRelativeURL"].as_str().unwrap().starts_with("/openapi/v3/api/v1?hash=")
        );
        assert!(document(&r, "nope", "v1").is_none());
    }
}
