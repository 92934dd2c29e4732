//! `gitbacked check`, `log` and `diff` on real repositories: a person's clone, the bare remote,
//! and check as a git pre-commit hook.

use std::path::Path;
use std::process::{Command, Output};

use gitbacked_test_support::{Remote, git, try_git};

use crate::support::{COMMAND_TIMEOUT, GITBACKED, run_bounded};

fn gitbacked(dir: &Path, args: &[&str]) -> Output {
    run_bounded(Command::new(GITBACKED).current_dir(dir).args(args), COMMAND_TIMEOUT)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const SETTINGS: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  k: v\n";
const CRD: &str = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gears.example.com\n\
spec:\n  group: example.com\n  names: {kind: Gear, plural: gears, singular: gear, listKind: GearList}\n  scope: Namespaced\n  \
versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        \
properties:\n          spec:\n            type: object\n            x-kubernetes-validations:\n            - rule: self.teeth % 2 == 0\n              \
message: teeth come in pairs\n            properties:\n              teeth: {type: integer}\n";

#[test]
fn check_reports_what_the_server_would_with_file_and_line() {
    let remote = Remote::new();
    remote.commit(&[("crds/gear.yaml", Some(CRD)), ("apps/settings.yaml", Some(SETTINGS))], "a clean tree");
    let person = remote.person();
    let clean = gitbacked(&person, &["check"]);
    assert!(clean.status.success(), "{}", String::from_utf8_lossy(&clean.stderr));
    assert_eq!(stdout(&clean), "");

    // Problems in the working tree: broken YAML, a CEL rule, two documents for one object, a kind
    // without a CRD.
    std::fs::write(person.join("apps/broken.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [\n").unwrap();
    std::fs::write(
        person.join("apps/gear.yaml"),
        "# a gear\n---\napiVersion: example.com/v1\nkind: Gear\nmetadata: {name: g}\nspec: {teeth: 3}\n",
    )
    .unwrap();
    std::fs::write(person.join("apps/copy.yaml"), SETTINGS).unwrap();
    std::fs::write(
        person.join("apps/widget.json"),
        r#"{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}"#,
    )
    .unwrap();
    let out = gitbacked(&person, &["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "apps/broken.yaml:3: error: line 3 column 18: unclosed bracket '['\n\
         apps/gear.yaml:2: Gear.example.com default/g: spec: Invalid value: \"object\": teeth come in pairs\n\
         apps/settings.yaml:1: ConfigMap default/settings: apps/copy.yaml:1 claims the same object first; this document is not served\n\
         apps/widget.json:1: no CustomResourceDefinition defines kind Widget in example.com/v1: the object waits for one\n"
    );
    let json: serde_json::Value = serde_json::from_slice(&gitbacked(&person, &["check", "-o", "json"]).stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 4);
    assert_eq!(json[1]["problem"], "Invalid");
    assert_eq!(json[1]["object"], "Gear.example.com default/g");

    // As a pre-commit hook it keeps the commit out; the bare remote, as pushed, is clean.
    let hook = person.join(".git/hooks/pre-commit");
    std::fs::write(&hook, format!("#!/bin/sh\nexec {GITBACKED} check\n")).unwrap();
    git(&person, &["config", "core.hooksPath", ".git/hooks"]);
    std::process::Command::new("chmod").arg("+x").arg(&hook).status().unwrap();
    git(&person, &["add", "--all"]);
    let refused = try_git(&person, &["commit", "-m", "broken"]);
    assert!(!refused.status.success(), "the hook let a broken tree be committed");
    // git shows the hook's output on its stderr.
    let shown = format!("{}{}", String::from_utf8_lossy(&refused.stdout), String::from_utf8_lossy(&refused.stderr));
    assert!(shown.contains("unclosed bracket"), "{shown}");
    let bare = gitbacked(&remote.path(), &["check"]);
    assert!(bare.status.success(), "{}", stdout(&bare));
    git(&person, &["reset", "--quiet", "--hard"]);
    git(&person, &["clean", "--quiet", "-fd"]);
}

#[test]
fn log_follows_an_object_across_files_and_diff_compares_revisions() {
    let remote = Remote::new();
    remote.commit(&[("apps/settings.yaml", Some(SETTINGS))], "add settings");
    remote.commit(&[("apps/settings.yaml", Some(&SETTINGS.replace("k: v", "k: w")))], "change k");
    remote.commit_with("move it", |dir| {
        git(dir, &["mv", "apps/settings.yaml", "apps/all.yaml"]);
    });
    remote.commit(&[("apps/all.yaml", None)], "remove it");
    let out = gitbacked(&remote.person(), &["log", "configmap/settings", "-o", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let steps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let summary: Vec<(String, String, String)> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["message"].as_str().unwrap().into(),
                s["action"].as_str().unwrap().into(),
                s["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected = [
        ("remove it", "deleted", "apps/all.yaml"),
        ("move it", "moved", "apps/all.yaml"),
        ("change k", "changed", "apps/settings.yaml"),
        ("add settings", "created", "apps/settings.yaml"),
    ];
    assert_eq!(summary, expected.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())));
    let text = stdout(&gitbacked(&remote.path(), &["log", "cm/settings", "--patch"]));
    assert!(
        text.contains("    moved from apps/settings.yaml to apps/all.yaml") && text.contains("-  k: v\n+  k: w\n"),
        "{text}"
    );

    let diff = gitbacked(&remote.person(), &["diff", "HEAD~3", "HEAD~2"]);
    assert_eq!(diff.status.code(), Some(1));
    assert_eq!(
        stdout(&diff),
        "diff -u -N HEAD~3/v1.ConfigMap.default.settings HEAD~2/v1.ConfigMap.default.settings\n\
         --- HEAD~3/v1.ConfigMap.default.settings\n+++ HEAD~2/v1.ConfigMap.default.settings\n\
         @@ -3,4 +3,4 @@\n metadata:\n   name: settings\n data:\n-  k: v\n+  k: w\n"
    );
    // A move changes no object.
    let same = gitbacked(&remote.person(), &["diff", "HEAD~2", "HEAD~1"]);
    assert_eq!((same.status.code(), stdout(&same).as_str()), (Some(0), ""));
}
