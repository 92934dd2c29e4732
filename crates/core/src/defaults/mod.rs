//! The defaults kube-apiserver gives built-in objects (its `SetDefaults_*` functions and
//! declarative defaults, `pkg/apis/*/v1/defaults.go`), and the status a new object starts with.
//!
//! gitbacked applies them when it serves an object, not when it stores one: a file holds what a
//! person or a client set, and reads show what kube-apiserver would have stored. A write goes
//! through [`strip`], which leaves out of the file every value the defaults give back, unless
//! the file already had it: a `kubectl apply` of a short manifest, or a client writing back what it
//! read, adds no default to the file, and a person's explicit `replicas: 1` stays.

mod kinds;

use serde_json::Value;

use crate::registry::GroupKind;

/// The most removals tried per write: each is one defaulting of the object.
const MAX_TRIALS: usize = 512;

/// Whether objects of `gk` have defaults.
pub fn applies(gk: &GroupKind) -> bool {
    kinds::defaulter(&gk.group, &gk.kind).is_some()
}

/// The labels of an object as served, where its kind's defaults add some (a Namespace's
/// `kubernetes.io/metadata.name`, a Job's or ReplicationController's template labels), so that
/// label selectors see what clients see; `None` where they add none.
pub fn labels(gk: &GroupKind, content: &Value) -> Option<Value> {
    if !adds_labels(gk) {
        return None;
    }
    let mut served = content.clone();
    apply(gk, "v1", &mut served);
    served.pointer("/metadata/labels").cloned()
}

/// Whether the defaults of `gk` add labels (see [`labels`]).
pub fn adds_labels(gk: &GroupKind) -> bool {
    matches!((gk.group.as_str(), gk.kind.as_str()), ("", "Namespace" | "ReplicationController") | ("batch", "Job"))
}

/// Fills in the defaults of a built-in object of `gk`, served at `version`.
pub fn apply(gk: &GroupKind, version: &str, content: &mut Value) {
    if let Some(defaulter) = kinds::defaulter(&gk.group, &gk.kind) {
        defaulter(version, content);
    }
}

/// Fills in the defaulted fields that are keys of list maps (`protocol` of container and Service
/// ports) in an applied configuration, as kube-apiserver does before server-side apply merges it:
/// `{containerPort: 80}` is then the item `{containerPort: 80, protocol: TCP}` it has, not another.
/// Nothing else is defaulted, so that the applier owns only what it applied.
pub fn apply_list_keys(gk: &GroupKind, version: &str, config: &mut Value) {
    let mut defaulted = config.clone();
    apply(gk, version, &mut defaulted);
    copy_list_keys(config, &defaulted);
}

/// The list-map key fields that have defaults.
const DEFAULTED_KEYS: [&str; 1] = ["protocol"];

fn copy_list_keys(config: &mut Value, defaulted: &Value) {
    match (config, defaulted) {
        (Value::Object(map), Value::Object(full)) => {
            for (key, value) in map.iter_mut() {
                if let Some(full) = full.get(key) {
                    copy_list_keys(value, full);
                }
            }
        }
        (Value::Array(items), Value::Array(full)) => {
            for (item, full) in items.iter_mut().zip(full) {
                if let (Value::Object(map), Value::Object(defaults)) = (&mut *item, full) {
                    for key in DEFAULTED_KEYS {
                        if let (false, Some(v)) = (map.contains_key(key), defaults.get(key)) {
                            map.insert(key.to_string(), v.clone());
                        }
                    }
                }
                copy_list_keys(item, full);
            }
        }
        _ => {}
    }
}

/// Removes from `content`, about to be stored, what [`apply`] would give back when it is served,
/// where `file` (what is stored now; `None` for a new object) does not have it either.
pub fn strip(gk: &GroupKind, version: &str, content: &mut Value, file: Option<&Value>) {
    let Some(defaulter) = kinds::defaulter(&gk.group, &gk.kind) else { return };
    let mut candidates = Vec::new();
    absent_from(content, file, &mut Vec::new(), &mut candidates);
    let mut trials = 0;
    for path in candidates {
        strip_at(content, &path, &|v| defaulter(version, v), &mut trials);
    }
}

/// One step of a path into a JSON value.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// The paths of `value` that `file` does not have, outermost first.
fn absent_from(value: &Value, file: Option<&Value>, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match (value, file) {
        (_, None) => out.push(path.clone()),
        (Value::Object(map), Some(Value::Object(old))) => {
            for (k, v) in map {
                path.push(Step::Key(k.clone()));
                absent_from(v, old.get(k), path, out);
                path.pop();
            }
        }
        (Value::Array(items), Some(Value::Array(old))) => {
            for (i, v) in items.iter().enumerate() {
                path.push(Step::Index(i));
                absent_from(v, old.get(i), path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Removes the value at `path` if defaulting gives it back as it is; otherwise tries its parts.
fn strip_at(content: &mut Value, path: &[Step], defaults: &dyn Fn(&mut Value), trials: &mut usize) {
    let Some(value) = get(content, path) else { return };
    if !matches!(path.last(), Some(Step::Key(_))) || *trials >= MAX_TRIALS {
        // The root and list items are not removed whole (an item's removal moves the others).
    } else {
        *trials += 1;
        let mut trial = content.clone();
        remove(&mut trial, path);
        defaults(&mut trial);
        if get(&trial, path) == Some(value) {
            remove(content, path);
            return;
        }
    }
    let children: Vec<Step> = match value {
        Value::Object(map) => map.keys().map(|k| Step::Key(k.clone())).collect(),
        Value::Array(items) => (0..items.len()).map(Step::Index).collect(),
        _ => return,
    };
    let mut child = path.to_vec();
    for step in children {
        child.push(step);
        strip_at(content, &child, defaults, trials);
        child.pop();
    }
}

fn get<'a>(value: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, step| match step {
        Step::Key(k) => v.get(k),
        Step::Index(i) => v.get(i),
    })
}

fn remove(value: &mut Value, path: &[Step]) {
    let Some((Step::Key(last), parent)) = path.split_last() else { return };
    let parent = parent.iter().try_fold(value, |v, step| match step {
        Step::Key(k) => v.get_mut(k),
        Step::Index(i) => v.get_mut(i),
    });
    if let Some(Value::Object(map)) = parent {
        map.shift_remove(last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> GroupKind {
        GroupKind { group: String::new(), kind: "Pod".into() }
    }

    #[test]
    fn a_pod_is_served_with_kube_apiservers_defaults_and_initial_status() {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                "readinessProbe": {"httpGet": {"port": 80}}}]}});
        apply(&pod(), "v1", &mut p);
        let c = &p["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always", "no tag is latest");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(c["resources"]["requests"], json!({"cpu": "1", "memory": "1Gi"}));
        assert_eq!(
            c["readinessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
            "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        let spec = &p["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["securityContext"], json!({}));
        assert_eq!(spec["enableServiceLinks"], true);
        assert_eq!(p["status"], json!({"phase": "Pending", "qosClass": "Guaranteed"}));
    }

    #[test]
    fn what_the_defaults_give_back_is_not_stored_unless_the_file_has_it() {
        let short = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}], "restartPolicy": "Never"}});
        let mut served = short.clone();
        apply(&pod(), "v1", &mut served);
        assert_ne!(served, short);
        // A client writing back what it read stores what the file had.
        let mut written = served.clone();
        strip(&pod(), "v1", &mut written, Some(&short));
        assert_eq!(written, short);
        // ... and a new object, only what is not a default.
        let mut created = served.clone();
        strip(&pod(), "v1", &mut created, None);
        assert_eq!(created, short);
        // A value the file has stays, even where it equals the default.
        let explicit = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent"}],
                "dnsPolicy": "ClusterFirst"}});
        let mut written = explicit.clone();
        apply(&pod(), "v1", &mut written);
        written["spec"]["restartPolicy"] = json!("OnFailure");
        strip(&pod(), "v1", &mut written, Some(&explicit));
        let mut expected = explicit.clone();
        expected["spec"]["restartPolicy"] = json!("OnFailure");
        assert_eq!(written, expected);
    }

    #[test]
    fn an_applied_configuration_gets_the_defaults_of_list_keys_only() {
        let mut config = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}]}});
        apply_list_keys(&pod(), "v1", &mut config);
        assert_eq!(
            config["spec"]["containers"][0],
            json!({"name": "c", "image": "nginx",
            "ports": [{"containerPort": 80, "protocol": "TCP"}]})
        );
    }

    #[test]
    fn workloads_get_their_kinds_defaults() {
        let job = GroupKind { group: "batch".into(), kind: "Job".into() };
        let mut j = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"template": {"metadata": {"labels": {"app": "j"}}, "spec": {"containers": []}}}});
        apply(&job, "v1", &mut j);
        assert_eq!(j["metadata"]["labels"], json!({"app": "j"}), "a Job without labels takes its template's");
        assert_eq!((j["spec"]["completions"].clone(), j["spec"]["backoffLimit"].clone()), (json!(1), json!(6)));
        assert_eq!(labels(&job, &j), Some(json!({"app": "j"})));

        let sts = GroupKind { group: "apps".into(), kind: "StatefulSet".into() };
        let mut defaulted = json!({"spec": {}});
        apply(&sts, "v1", &mut defaulted);
        assert_eq!(
            defaulted["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        let mut explicit = json!({"spec": {"updateStrategy": {"type": "RollingUpdate"}}});
        apply(&sts, "v1", &mut explicit);
        assert_eq!(explicit["spec"]["updateStrategy"], json!({"type": "RollingUpdate"}), "as SetDefaults_StatefulSet");

        let ns = GroupKind { group: String::new(), kind: "Namespace".into() };
        let plain = json!({"metadata": {"name": "team"}});
        assert_eq!(labels(&ns, &plain), Some(json!({"kubernetes.io/metadata.name": "team"})));
        assert_eq!(labels(&GroupKind { group: String::new(), kind: "ConfigMap".into() }, &plain), None);
    }

    #[test]
    fn a_changed_default_is_stored() {
        let short = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        let gk = GroupKind { group: "apps".into(), kind: "Deployment".into() };
        let mut served = short.clone();
        apply(&gk, "v1", &mut served);
        assert_eq!(served["spec"]["replicas"], 1);
        assert_eq!(served["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        served["spec"]["replicas"] = json!(3);
        strip(&gk, "v1", &mut served, Some(&short));
        let mut expected = short.clone();
        expected["spec"]["replicas"] = json!(3);
        assert_eq!(served, expected);
    }
}
