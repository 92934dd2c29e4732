//! Offline checks of a tree of files, with the reader and the validation the server uses: what
//! `gitbacked check` reports before a commit, and what the server would report after it.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::document::{self, FoundObject};
use crate::object::{ObjectKey, strip_derived};
use crate::registry::{GroupKind, Home, Registry, crd_group_kind};
use crate::validation::validate_name;

/// What is wrong with a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Problem {
    /// The document cannot be read (YAML or JSON syntax, or not UTF-8): the server skips it.
    Unreadable,
    /// A CustomResourceDefinition the server cannot serve.
    InvalidDefinition,
    /// An object of a kind no CRD in the tree defines: the server keeps it waiting for one.
    UnknownKind,
    /// An object of a kind that is not read from the branch (Events, Leases): the server ignores it.
    Ignored,
    /// Another document claims the same object; the first by path wins.
    Duplicate,
    /// A name the kind does not allow.
    InvalidName,
    /// The object fails its kind's schema, rules or CEL validations: served, but reported.
    Invalid,
}

/// One finding: where, about which object, and what.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The file, relative to the checked directory.
    pub path: String,
    /// The line the problem is on, or the document starts on (from 1).
    pub line: u64,
    /// The object concerned, as `Kind.group namespace/name`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The kind of problem.
    pub problem: Problem,
    /// What is wrong, in kube-apiserver's words where it has them.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: ", self.path, self.line)?;
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// What is wrong with `content` as an object of its kind, as far as claims are weighed and committed
/// objects reported: a CRD must describe a type that can be served, any other object must pass
/// its schema (see [`crate::schema::violations`]).
pub fn problems_of(registry: &Registry, key: &ObjectKey, content: &Value) -> Vec<String> {
    if *key.gk == crd_group_kind() {
        return crate::registry::crd_resource_type(content)
            .err()
            .map(|e| vec![format!("{}: {e}", e.field())])
            .unwrap_or_default();
    }
    let Some(rt) = registry.by_kind(&key.gk) else { return Vec::new() };
    crate::schema::violations(rt, content).iter().map(ToString::to_string).collect()
}

fn describe(key: &ObjectKey) -> String {
    let kind = if key.gk.group.is_empty() { key.gk.kind.clone() } else { format!("{}.{}", key.gk.kind, key.gk.group) };
    if key.namespace.is_empty() {
        format!("{kind} {}", key.name)
    } else {
        format!("{kind} {}/{}", key.namespace, key.name)
    }
}

/// The objects of a tree: files (path, bytes) in any order; those that cannot hold objects are
/// skipped. Returns the registry its CRDs make and every object found, by path, with the
/// documents that could not be read.
pub fn objects(files: &[(String, Vec<u8>)]) -> (Registry, Vec<(String, FoundObject)>, Vec<Finding>) {
    let mut files: Vec<&(String, Vec<u8>)> = files.iter().filter(|(p, _)| holds_objects(p)).collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let (mut found, mut findings) = (Vec::new(), Vec::new());
    for (path, bytes) in files {
        let parsed = document::parse_file(path, bytes);
        for e in parsed.errors {
            findings.push(Finding {
                path: path.clone(),
                line: e.line,
                object: None,
                problem: Problem::Unreadable,
                message: e.message,
            });
        }
        found.extend(parsed.objects.into_iter().map(|o| (path.clone(), o)));
    }
    let mut registry = Registry::default();
    for (path, object) in &found {
        let is_crd = object.value.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
            && object.value.get("apiVersion").and_then(Value::as_str) == Some("apiextensions.k8s.io/v1");
        if is_crd && let Err(e) = registry.apply_crd(&object.value) {
            let name = object.value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            findings.push(Finding {
                path: path.clone(),
                line: u64::from(object.line),
                object: Some(format!("CustomResourceDefinition.apiextensions.k8s.io {name}")),
                problem: Problem::InvalidDefinition,
                message: e.to_status(name).message,
            });
        }
    }
    (registry, found, findings)
}

/// Whether a path names a file that may hold objects.
fn holds_objects(path: &str) -> bool {
    [".yaml", ".yml", ".json"].iter().any(|ext| path.ends_with(ext))
}

/// Checks a tree (see [`objects`]): every finding, by path and line.
pub fn check(files: &[(String, Vec<u8>)]) -> Vec<Finding> {
    let (registry, found, mut findings) = objects(files);
    let mut claimed: BTreeMap<ObjectKey, (String, u32)> = BTreeMap::new();
    for (path, object) in &found {
        let finding = |problem, object_name: Option<String>, message: String| Finding {
            path: path.clone(),
            line: u64::from(object.line),
            object: object_name,
            problem,
            message,
        };
        let Some((key, rt)) = ObjectKey::of(&registry, &object.value) else {
            let api_version = object.value.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
            let kind = object.value.get("kind").and_then(Value::as_str).unwrap_or_default();
            let gk = GroupKind::from_api_version(api_version, kind);
            let message = match registry.by_kind(&gk) {
                Some(_) => format!("{api_version} is not a served version of {kind}"),
                None => format!(
                    "no CustomResourceDefinition defines kind {kind} in {api_version}: the object waits for one"
                ),
            };
            findings.push(finding(Problem::UnknownKind, None, message));
            continue;
        };
        let name = Some(describe(&key));
        match rt.home {
            Home::Memory => {
                findings.push(finding(Problem::Ignored, name, "Events are kept in memory, never read from git".into()));
                continue;
            }
            Home::Leases => {
                let why = "Leases are kept on their own ref (refs/gitbacked/leases/<branch>), not read from the branch";
                findings.push(finding(Problem::Ignored, name, why.into()));
                continue;
            }
            Home::Branch => {}
        }
        if let Some((first, line)) = claimed.get(&key) {
            let message = format!("{first}:{line} claims the same object first; this document is not served");
            findings.push(finding(Problem::Duplicate, name, message));
            continue;
        }
        claimed.insert(key.clone(), (path.clone(), object.line));
        if let Err(e) = validate_name(&key.name, rt.name_rule()) {
            findings.push(finding(Problem::InvalidName, name.clone(), format!("metadata.name: Invalid value: {e}")));
        }
        for problem in problems_of(&registry, &key, &strip_derived(object.value.clone())) {
            findings.push(finding(Problem::Invalid, name.clone(), problem));
        }
    }
    findings.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> (String, Vec<u8>) {
        (path.to_string(), text.as_bytes().to_vec())
    }

    #[test]
    fn a_tree_is_checked_as_the_server_reads_it() {
        let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gears.example.com\n\
                   spec:\n  group: example.com\n  names: {kind: Gear, plural: gears, singular: gear, listKind: GearList}\n  \
                   scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      \
                   openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            type: object\n            \
                   properties:\n              teeth: {type: integer, minimum: 1}\n";
        let files = [
            file("crds/gear.yaml", crd),
            file("a/gears.yaml", "apiVersion: example.com/v1\nkind: Gear\nmetadata: {name: g}\nspec: {teeth: 0}\n"),
            file("a/ok.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\n"),
            file("b/again.yaml", "# same\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"),
            file("b/broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [\n"),
            file("b/widget.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"),
            file("b/bad-name.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_A_Name}\n"),
            file("README.md", "not read"),
        ];
        let found: Vec<(String, u64, Problem)> =
            check(&files).into_iter().map(|f| (f.path, f.line, f.problem)).collect();
        assert_eq!(
            found,
            [
                ("a/gears.yaml".into(), 1, Problem::Invalid),
                ("b/again.yaml".into(), 1, Problem::Duplicate),
                ("b/bad-name.yaml".into(), 1, Problem::InvalidName),
                ("b/broken.yaml".into(), 3, Problem::Unreadable),
                ("b/widget.yaml".into(), 1, Problem::UnknownKind),
            ]
        );
        let invalid = check(&files).into_iter().next().unwrap();
        assert_eq!(
            invalid.to_string(),
            "a/gears.yaml:1: Gear.example.com default/g: spec.teeth: Invalid value: 0: spec.teeth in body should be greater than or equal to 1"
        );
        assert!(
            check(&files[1..3].iter().chain(&files[..1]).cloned().collect::<Vec<_>>())
                .iter()
                .all(|f| f.problem == Problem::Invalid)
        );
    }
}
