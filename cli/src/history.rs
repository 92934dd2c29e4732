//! `gitbacked log` and `gitbacked diff`: the history of one object, and what changed between two
//! revisions, read from git with the reader the server uses.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use gitbacked_core::check;
use gitbacked_core::document::{parse_file, to_yaml};
use gitbacked_core::object::{ObjectKey, strip_derived};
use gitbacked_core::registry::{Home, Registry, ResourceType};
use serde_json::Value;

use crate::repo::Repo;

/// The type `kubectl` would understand by `resource`: a plural, singular, short name or kind,
/// optionally with its group (`deployments.apps`).
fn resolve<'r>(registry: &'r Registry, resource: &str) -> anyhow::Result<&'r ResourceType> {
    let wanted = resource.to_ascii_lowercase();
    let matches = |rt: &ResourceType, name: &str| {
        rt.plural == name
            || rt.singular == name
            || rt.kind.to_ascii_lowercase() == name
            || rt.short_names.iter().any(|s| s == name)
    };
    let found = registry.all().find(|rt| {
        let (name, group) = wanted.split_once('.').map_or((wanted.as_str(), None), |(n, g)| (n, Some(g)));
        matches(rt, name) && group.is_none_or(|g| rt.group == g)
    });
    found.map(|rt| &**rt).with_context(|| format!("the server doesn't have a resource type {resource:?}"))
}

/// The objects of a tree that the server would serve from the branch: the first document by path
/// for each.
fn served_objects(registry: &Registry, files: &[(String, Vec<u8>)]) -> BTreeMap<ObjectKey, (String, Value)> {
    let (_, found, _) = check::objects(files);
    let mut objects = BTreeMap::new();
    for (path, object) in found {
        let Some((key, rt)) = ObjectKey::of(registry, &object.value) else { continue };
        if rt.home == Home::Branch {
            objects.entry(key).or_insert_with(|| (path, strip_derived(object.value)));
        }
    }
    objects
}

/// The name `kubectl diff` gives an object's file: `apps.v1.Deployment.default.web`.
fn diff_name(object: &Value, key: &ObjectKey) -> String {
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default().replace('/', ".");
    let mut name = format!("{api_version}.{}", key.gk.kind);
    if !key.namespace.is_empty() {
        name.push('.');
        name.push_str(&key.namespace);
    }
    format!("{name}.{}", key.name)
}

fn unified(before: Option<&Value>, after: Option<&Value>, from: &str, to: &str) -> String {
    let text = |v: Option<&Value>| v.map(to_yaml).unwrap_or_default();
    let (a, b) = (text(before), text(after));
    similar::TextDiff::from_lines(&a, &b).unified_diff().context_radius(3).header(from, to).to_string()
}

/// `gitbacked diff REV1 [REV2]`: the objects added, changed and removed, as `kubectl diff` prints
/// them; whether anything differs.
pub fn diff(repo: &Repo, from: &str, to: &str) -> anyhow::Result<bool> {
    let (old_files, new_files) = (repo.at_revision(from)?, repo.at_revision(to)?);
    let (registry, _, _) = check::objects(&new_files);
    let (old_registry, _, _) = check::objects(&old_files);
    let (old, new) = (served_objects(&old_registry, &old_files), served_objects(&registry, &new_files));
    let mut keys: Vec<&ObjectKey> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut differs = false;
    for key in keys {
        let (before, after) = (old.get(key).map(|(_, v)| v), new.get(key).map(|(_, v)| v));
        if before == after {
            continue;
        }
        differs = true;
        let name = diff_name(after.or(before).unwrap_or(&Value::Null), key);
        let (a, b) = (format!("{from}/{name}"), format!("{to}/{name}"));
        println!("diff -u -N {a} {b}");
        print!("{}", unified(before, after, &a, &b));
    }
    Ok(differs)
}

/// What a commit did to the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// It appeared.
    Created,
    /// Its content changed (maybe in another file).
    Changed,
    /// It went to another file, unchanged.
    Moved,
    /// It was removed.
    Deleted,
}

/// One step of an object's history.
#[derive(Debug, serde::Serialize)]
pub struct Step {
    commit: String,
    author: String,
    date: String,
    message: String,
    action: Action,
    /// The file holding the object after the commit (before it, for a deletion).
    path: String,
    /// The file it was in before, when it moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    /// The object after the commit; `None` once deleted.
    object: Option<Value>,
    /// The diff of the object's YAML.
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
}

/// `gitbacked log KIND/NAME`: the commits of `rev`'s first-parent history that changed the
/// object, oldest first, across moves between files.
pub fn log(repo: &Repo, rev: &str, object: &str, namespace: Option<&str>, patch: bool) -> anyhow::Result<Vec<Step>> {
    let Some((resource, name)) = object.split_once('/') else {
        bail!("name the object as KIND/NAME, e.g. deployment/web")
    };
    let files = repo.at_revision(rev)?;
    let (registry, _, _) = check::objects(&files);
    let rt = resolve(&registry, resource)?;
    let namespace = if rt.namespaced { namespace.unwrap_or("default") } else { "" };
    let key = ObjectKey::new(rt.group_kind(), namespace, name);
    let mut reader = repo.reader()?;
    let mut current: Option<(String, Value)> = None;
    let mut steps = Vec::new();
    for commit in repo.history(rev)? {
        let changed: Vec<String> = commit.files.iter().filter_map(|f| repo.relative_path(f)).collect();
        let mut claims: Vec<(String, Value)> = Vec::new();
        for (full, path) in commit.files.iter().filter_map(|f| Some((f, repo.relative_path(f)?))) {
            let Some(bytes) = reader.read(&format!("{}:{full}", commit.id))? else { continue };
            let claim = parse_file(&path, &bytes)
                .objects
                .into_iter()
                .find(|o| ObjectKey::of(&registry, &o.value).is_some_and(|(k, _)| k == key));
            if let Some(found) = claim {
                claims.push((path, strip_derived(found.value)));
            }
        }
        // The file that held it, if the commit left it alone, holds it still.
        if let Some(held) = current.as_ref().filter(|(path, _)| !changed.contains(path)) {
            claims.push(held.clone());
        }
        claims.sort_by(|a, b| a.0.cmp(&b.0));
        let next = claims.into_iter().next();
        let action = match (&current, &next) {
            (None, None) => None,
            (None, Some(_)) => Some(Action::Created),
            (Some(_), None) => Some(Action::Deleted),
            (Some((_, before)), Some((_, after))) if before != after => Some(Action::Changed),
            (Some((from, _)), Some((to, _))) if from != to => Some(Action::Moved),
            _ => None,
        };
        if let Some(action) = action {
            let (before, after) = (current.as_ref().map(|(_, v)| v), next.as_ref().map(|(_, v)| v));
            let path = next.as_ref().or(current.as_ref()).map(|(p, _)| p.clone()).unwrap_or_default();
            let from = current.as_ref().map(|(p, _)| p.clone()).filter(|p| *p != path);
            steps.push(Step {
                commit: commit.id,
                author: commit.author,
                date: commit.date,
                message: commit.message,
                action,
                patch: patch.then(|| unified(before, after, "before", "after")),
                object: after.cloned(),
                path,
                from,
            });
        }
        current = next;
    }
    Ok(steps)
}

/// Prints a history as `git log` would.
pub fn print_log(steps: &[Step]) {
    for step in steps.iter().rev() {
        println!("commit {}\nAuthor: {}\nDate:   {}\n", step.commit, step.author, step.date);
        for line in step.message.lines() {
            println!("    {line}");
        }
        let what = match (step.action, &step.from) {
            (Action::Created, _) => format!("created in {}", step.path),
            (Action::Deleted, _) => format!("deleted from {}", step.path),
            (Action::Moved, from) => format!("moved from {} to {}", from.as_deref().unwrap_or_default(), step.path),
            (Action::Changed, Some(from)) => format!("changed, and moved from {from} to {}", step.path),
            (Action::Changed, None) => format!("changed in {}", step.path),
        };
        println!("\n    {what}\n");
        if let Some(patch) = &step.patch {
            println!("{patch}");
        }
    }
}
