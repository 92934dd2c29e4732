//! Discovery: `/version`, `/api`, `/apis`, `/api/v1`, `/apis/{group}/{version}`, and the aggregated
//! form (`apidiscovery.k8s.io/v2 APIGroupDiscoveryList`) that kubectl and kube's
//! `Discovery::run_aggregated` ask for.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use serde_json::{Value, json};

use gitbacked_core::registry::{Registry, ResourceType, api_version};

/// The Kubernetes version the API presents (kubectl picks its matching release by it).
pub const KUBERNETES_MINOR: u32 = 33;

/// `GET /version`.
pub fn version() -> Value {
    json!({
        "major": "1", "minor": KUBERNETES_MINOR.to_string(),
        "gitVersion": format!("v1.{KUBERNETES_MINOR}.0+gitbacked.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "", "gitTreeState": "clean", "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64",
    })
}

/// Orders versions as Kubernetes does: GA before beta before alpha, higher numbers first.
fn priority(version: &str) -> Reverse<(u8, u32, u32)> {
    let (major, rest) = version
        .trim_start_matches('v')
        .split_at(version.trim_start_matches('v').find(|c: char| !c.is_ascii_digit()).unwrap_or(version.len() - 1));
    let major: u32 = major.parse().unwrap_or(0);
    let (stage, minor) = if let Some(n) = rest.strip_prefix("beta") {
        (1, n.parse::<u32>().unwrap_or(0))
    } else if let Some(n) = rest.strip_prefix("alpha") {
        (0, n.parse::<u32>().unwrap_or(0))
    } else {
        (2, 0)
    };
    Reverse((stage, major, minor))
}

/// Every group with its served versions, preferred first; the core group is `""`.
fn groups(registry: &Registry) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rt in registry.all() {
        let versions = groups.entry(rt.group.clone()).or_default();
        for v in &rt.versions {
            if !versions.contains(v) {
                versions.push(v.clone());
            }
        }
    }
    for versions in groups.values_mut() {
        versions.sort_by_key(|v| priority(v));
    }
    groups
}

/// `GET /api`.
pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]})
}

/// `GET /apis`.
pub fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = groups(registry)
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(group, versions)| {
            let entries: Vec<Value> =
                versions.iter().map(|v| json!({"groupVersion": api_version(&group, v), "version": v})).collect();
            json!({"name": group, "versions": entries, "preferredVersion": entries[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// A subresource as discovery lists it: its name, the kind it answers (group, version, kind;
/// the resource's own where `None`) and its verbs.
struct Sub {
    name: &'static str,
    kind: Option<(&'static str, &'static str, &'static str)>,
    verbs: &'static [&'static str],
}

const READ_WRITE: &[&str] = &["get", "patch", "update"];

fn subresources(rt: &ResourceType) -> Vec<Sub> {
    let mut subs = Vec::new();
    if rt.status {
        subs.push(Sub { name: "status", kind: None, verbs: READ_WRITE });
    }
    if rt.scale.is_some() {
        subs.push(Sub { name: "scale", kind: Some(("autoscaling", "v1", "Scale")), verbs: READ_WRITE });
    }
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Pod") => subs.extend([
            Sub { name: "binding", kind: Some(("", "v1", "Binding")), verbs: &["create"] },
            Sub { name: "eviction", kind: Some(("policy", "v1", "Eviction")), verbs: &["create"] },
            Sub { name: "ephemeralcontainers", kind: None, verbs: READ_WRITE },
        ]),
        ("", "Namespace") => subs.push(Sub { name: "finalize", kind: None, verbs: &["update"] }),
        ("", "ServiceAccount") => subs.push(Sub {
            name: "token",
            kind: Some(("authentication.k8s.io", "v1", "TokenRequest")),
            verbs: &["create"],
        }),
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            subs.push(Sub { name: "approval", kind: None, verbs: READ_WRITE })
        }
        _ => {}
    }
    subs
}

/// `GET /api/v1` and `GET /apis/{group}/{version}`; `None` when nothing is served there.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for rt in registry.all().filter(|rt| rt.group == group && rt.serves(version)) {
        resources.push(json!({
            "name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced, "kind": rt.kind,
            "verbs": rt.verbs, "shortNames": rt.short_names, "categories": rt.categories,
        }));
        for sub in subresources(rt) {
            let mut resource = json!({
                "name": format!("{}/{}", rt.plural, sub.name), "singularName": "", "namespaced": rt.namespaced,
                "kind": sub.kind.map_or(rt.kind.as_str(), |(_, _, k)| k), "verbs": sub.verbs,
            });
            if let Some((g, v, _)) = sub.kind.filter(|(g, v, _)| (*g, *v) != (group, version)) {
                resource["group"] = json!(g);
                resource["version"] = json!(v);
            }
            resources.push(resource);
        }
    }
    if resources.is_empty() {
        return None;
    }
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": api_version(group, version), "resources": resources}),
    )
}

/// Aggregated discovery of the core group (`/api`) or of all named groups (`/apis`).
pub fn aggregated(registry: &Registry, core: bool) -> Value {
    let items: Vec<Value> = groups(registry)
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|version| {
                    let resources: Vec<Value> = registry
                        .all()
                        .filter(|rt| rt.group == group && rt.serves(version))
                        .map(|rt| {
                            let subs: Vec<Value> = subresources(rt)
                                .into_iter()
                                .map(|sub| {
                                    let (g, v, k) = sub.kind.unwrap_or((&group, version, rt.kind.as_str()));
                                    json!({"subresource": sub.name, "responseKind": {"group": g, "version": v, "kind": k},
                                        "verbs": sub.verbs})
                                })
                                .collect();
                            json!({
                                "resource": rt.plural,
                                "responseKind": {"group": group, "version": version, "kind": rt.kind},
                                "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": rt.singular, "verbs": rt.verbs,
                                "shortNames": rt.short_names, "categories": rt.categories, "subresources": subs,
                            })
                        })
                        .collect();
                    json!({"version": version, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": group}, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_ordered_as_kubernetes_does() {
        let mut v = vec!["v1beta1", "v1", "v2", "v1alpha1", "v2beta2"];
        v.sort_by_key(|v| priority(v));
        assert_eq!(v, ["v2", "v1", "v2beta2", "v1beta1", "v1alpha1"]);
    }

    #[test]
    fn discovery_documents() {
        let r = Registry::default();
        let apps = resource_list(&r, "apps", "v1").unwrap();
        let names: Vec<&str> =
            apps["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert!(
            names.contains(&"deployments")
                && names.contains(&"deployments/scale")
                && names.contains(&"deployments/status")
        );
        let groups = group_list(&r);
        let autoscaling = groups["groups"].as_array().unwrap().iter().find(|g| g["name"] == "autoscaling").unwrap();
        assert_eq!(autoscaling["preferredVersion"]["version"], "v2");
        let core = aggregated(&r, true);
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
        assert!(resource_list(&r, "nope", "v1").is_none());
    }
}
