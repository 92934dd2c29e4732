//! The repository layout: which files hold objects, and where a new object is written.
//!
//! Objects live in `*.yaml`, `*.yml` and `*.json` files anywhere under the subdirectory. An object
//! created through the API is written to
//! `<subdir>/<namespace or _cluster>/<plural>[.<group>]/<name>.yaml`.

pub mod document;

use crate::registry::ResourceType;

/// Whether a path (relative to the subdirectory) names a file that may hold objects.
pub fn holds_objects(path: &str) -> bool {
    [".yaml", ".yml", ".json"].iter().any(|ext| path.ends_with(ext))
}

/// The path, relative to the subdirectory, where a new object of type `rt` is written.
/// `namespace` and `name` must already be valid (see [`validate_name`]).
pub fn canonical_path(rt: &ResourceType, namespace: Option<&str>, name: &str) -> String {
    let dir = namespace.unwrap_or("_cluster");
    let resource = if rt.group.is_empty() { rt.plural.clone() } else { format!("{}.{}", rt.plural, rt.group) };
    format!("{dir}/{resource}/{name}.yaml")
}

/// The rule an object name must follow, as kube-apiserver validates it per kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 DNS label: namespaces.
    DnsLabel,
    /// RFC 1123 DNS subdomain: most kinds.
    DnsSubdomain,
    /// Any string usable as a URL path segment: RBAC kinds.
    PathSegment,
}

impl NameRule {
    /// The rule for names of objects of `rt`.
    pub fn for_type(rt: &ResourceType) -> Self {
        match (rt.group.as_str(), rt.kind.as_str()) {
            ("", "Namespace") => NameRule::DnsLabel,
            ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
            _ => NameRule::DnsSubdomain,
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Checks a name against a rule; the error reads like the apiserver's.
pub fn validate_name(name: &str, rule: NameRule) -> Result<(), String> {
    let ok = match rule {
        NameRule::DnsLabel => is_dns_label(name),
        NameRule::DnsSubdomain => name.len() <= 253 && name.split('.').all(is_dns_label),
        NameRule::PathSegment => {
            !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '%', '\\', '\0'])
        }
    };
    if ok {
        return Ok(());
    }
    Err(match rule {
        NameRule::DnsLabel => format!(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc'), got {name:?}"
        ),
        NameRule::DnsSubdomain => format!(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com'), got {name:?}"
        ),
        NameRule::PathSegment => {
            format!("may not be '.' or '..' and may not contain '/', '%' or '\\', got {name:?}")
        }
    })
}

/// Joins the subdirectory and a relative path into a repository path.
pub fn in_subdir(subdir: &str, relative: &str) -> String {
    if subdir.is_empty() { relative.to_string() } else { format!("{subdir}/{relative}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn canonical_paths_stay_inside_the_subdirectory() {
        let r = Registry::default();
        let cm = r.by_plural("", "v1", "configmaps").unwrap();
        assert_eq!(canonical_path(cm, Some("default"), "web"), "default/configmaps/web.yaml");
        let ns = r.by_plural("", "v1", "namespaces").unwrap();
        assert_eq!(canonical_path(ns, None, "dev"), "_cluster/namespaces/dev.yaml");
        let deploy = r.by_plural("apps", "v1", "deployments").unwrap();
        assert_eq!(canonical_path(deploy, Some("a"), "b"), "a/deployments.apps/b.yaml");
    }

    #[test]
    fn names_are_validated_per_kind() {
        for bad in ["../etc", "a/b", "..", "Upper", "-a", "a-", "", "a..b"] {
            assert!(validate_name(bad, NameRule::DnsSubdomain).is_err(), "{bad}");
        }
        assert!(validate_name("web.example-1", NameRule::DnsSubdomain).is_ok());
        assert!(validate_name("a.b", NameRule::DnsLabel).is_err());
        assert!(validate_name("system:controller", NameRule::PathSegment).is_ok());
        for bad in ["..", ".", "a/b", "a%2F"] {
            assert!(validate_name(bad, NameRule::PathSegment).is_err(), "{bad}");
        }
    }
}
