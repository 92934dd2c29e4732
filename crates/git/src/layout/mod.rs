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
//!
//! A name longer than [`MAX_STEM`] bytes gets a shortened file name (see [`file_name`]): file
//! systems refuse components over 255 bytes, and a 253-character name would otherwise make every
//! `git clone` fail. The object in the file keeps its real name.

use gitbacked_core::registry::ResourceType;

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

/// The 64-bit FNV-1a hash of a name. Part of the layout on disk: it never changes.
fn fnv1a(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The bucket of a name: two hex digits of its 64-bit FNV-1a hash.
pub fn bucket(name: &str) -> String {
    format!("{:02x}", fnv1a(name) & 0xff)
}

/// The longest name used as it is in a file name; every component of a path gitbacked writes
/// stays far below the 255 bytes file systems allow (a kind directory is at most 253).
pub const MAX_STEM: usize = 100;

/// The file name of object `name`: `<name>.yaml`, or for a name longer than [`MAX_STEM`] bytes,
/// its first 80 bytes and its hash (`<prefix>-<16 hex digits>.yaml`), distinct for distinct names.
pub fn file_name(name: &str) -> String {
    if name.len() <= MAX_STEM {
        return format!("{name}.yaml");
    }
    let mut end = 80;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{:016x}.yaml", &name[..end], fnv1a(name))
}

/// The path, relative to the subdirectory, of a new object `name` in the kind directory `dir`
/// (see [`kind_dir`]) that already holds `files` files: `<dir>/<file>`, or `<dir>/<bucket>/<file>`
/// from [`FLAT_LIMIT`] files on, with the [`file_name`] of `name`. `name` must already be valid
/// (see `gitbacked_core::validation::validate_name`).
pub fn canonical_path(dir: &str, name: &str, files: usize) -> String {
    let file = file_name(name);
    if files < FLAT_LIMIT { format!("{dir}/{file}") } else { format!("{dir}/{}/{file}", bucket(name)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitbacked_core::registry::Registry;

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
    fn long_names_get_short_distinct_file_names() {
        assert_eq!(file_name("web"), "web.yaml");
        let long = format!("{}.example.com", "a".repeat(241));
        let other = format!("{}.example.org", "a".repeat(241));
        assert_eq!(long.len(), 253);
        let (one, two) = (file_name(&long), file_name(&other));
        assert!(one.len() <= 120 && one.starts_with(&"a".repeat(80)), "{one}");
        assert_ne!(one, two);
        // RBAC names may hold any character but `/` and `%`: the cut stays on a character boundary.
        let wide = "é".repeat(200);
        assert!(file_name(&wide).len() <= 120);
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
}
