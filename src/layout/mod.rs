//! The repository layout: which files hold objects, and where a new object is written.
//!
//! Objects live in `*.yaml`, `*.yml` and `*.json` files anywhere under the subdirectory. An object
//! created through the API is written to
//! `<subdir>/<namespace or _cluster>/<plural>[.<group>]/<name>.yaml`, or one level down, in
//! `<…>/<plural>[.<group>]/<xx>/<name>.yaml`, once that directory holds [`FLAT_LIMIT`] files.
//!
//! git stores a directory as one tree object that every change in it rewrites whole, and a push
//! sends it whole: a write to a directory of 5,000 files costs a 230 KB tree. The second level
//! (256 buckets, chosen by a hash of the name) keeps every tree a write rewrites small however
//! many objects a namespace holds, while directories of a few hundred objects stay flat to read.

pub mod document;

use crate::registry::ResourceType;

/// Whether a path (relative to the subdirectory) names a file that may hold objects.
pub fn holds_objects(path: &str) -> bool {
    [".yaml", ".yml", ".json"].iter().any(|ext| path.ends_with(ext))
}

/// How many files a kind's directory holds before new objects go into buckets one level down.
pub const FLAT_LIMIT: usize = 256;

/// The directory, relative to the subdirectory, that holds the objects of type `rt` created in
/// `namespace`: `<namespace or _cluster>/<plural>[.<group>]`.
pub fn kind_dir(rt: &ResourceType, namespace: Option<&str>) -> String {
    let dir = namespace.unwrap_or("_cluster");
    if rt.group.is_empty() { format!("{dir}/{}", rt.plural) } else { format!("{dir}/{}.{}", rt.plural, rt.group) }
}

/// The bucket of a name: two hex digits of its 64-bit FNV-1a hash. Part of the layout on disk:
/// it never changes.
pub fn bucket(name: &str) -> String {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{:02x}", hash & 0xff)
}

/// The path, relative to the subdirectory, of a new object `name` in the kind directory `dir`
/// (see [`kind_dir`]) that already holds `files` files: `<dir>/<name>.yaml`, or
/// `<dir>/<bucket>/<name>.yaml` from [`FLAT_LIMIT`] files on. `name` must already be valid (see
/// [`validate_name`]).
pub fn canonical_path(dir: &str, name: &str, files: usize) -> String {
    if files < FLAT_LIMIT { format!("{dir}/{name}.yaml") } else { format!("{dir}/{}/{name}.yaml", bucket(name)) }
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
        let cm = kind_dir(r.by_plural("", "v1", "configmaps").unwrap(), Some("default"));
        assert_eq!(canonical_path(&cm, "web", 0), "default/configmaps/web.yaml");
        let ns = kind_dir(r.by_plural("", "v1", "namespaces").unwrap(), None);
        assert_eq!(canonical_path(&ns, "dev", 3), "_cluster/namespaces/dev.yaml");
        let deploy = kind_dir(r.by_plural("apps", "v1", "deployments").unwrap(), Some("a"));
        assert_eq!(canonical_path(&deploy, "b", FLAT_LIMIT - 1), "a/deployments.apps/b.yaml");
    }

    #[test]
    fn a_full_directory_spreads_new_objects_over_256_buckets() {
        assert_eq!(canonical_path("default/configmaps", "web", FLAT_LIMIT), "default/configmaps/f1/web.yaml");
        // FNV-1a: fixed forever, since it names directories in people's repositories.
        assert_eq!(bucket(""), "25");
        assert_eq!(bucket("a"), "8c");
        let buckets: std::collections::HashSet<String> = (0..10_000).map(|i| bucket(&format!("cm-{i}"))).collect();
        assert_eq!(buckets.len(), 256, "every bucket is used");
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
