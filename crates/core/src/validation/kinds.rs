//! The validations of built-in kinds that controllers rely on (kube-apiserver's
//! `pkg/apis/*/validation`, in part), in kube-apiserver's words: workload
//! selectors against their template's labels, containers (names, images, ports), Service ports,
//! resource quantities, and the fields that cannot change once set.
//!
//! As for custom resources, an update is not refused for a value it leaves as it was: an object a
//! person committed can still have its other fields and its status written.

use std::collections::BTreeSet;

use super::{NameRule, validate_name};
use crate::GroupKind;
use crate::field::FieldError;
use serde_json::{Value, json};

use crate::selector::LabelSelector;

/// Where the pod template of each workload kind is.
fn pod_template_path(group: &str, kind: &str) -> Option<&'static str> {
    match (group, kind) {
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") | ("", "ReplicationController") => {
            Some("spec.template")
        }
        ("batch", "Job") => Some("spec.template"),
        ("batch", "CronJob") => Some("spec.jobTemplate.spec.template"),
        ("", "PodTemplate") => Some("template"),
        _ => None,
    }
}

/// The violations in `content`, a built-in object of kind `gk` replacing `old`.
pub fn validate(gk: &GroupKind, content: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let (group, kind) = (gk.group.as_str(), gk.kind.as_str());
    let mut errors = Vec::new();
    if (group, kind) == ("", "Pod") {
        pod_spec(content.get("spec"), "spec", &mut errors);
    }
    if let Some(path) = pod_template_path(group, kind) {
        pod_spec(value_at(content, &format!("{path}.spec")), &format!("{path}.spec"), &mut errors);
    }
    match (group, kind) {
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => {
            workload_selector(kind, content, &mut errors)
        }
        ("", "ReplicationController") => controller_selector(content, &mut errors),
        ("", "Service") => service(content, &mut errors),
        _ => {}
    }
    // Ratcheting: what the update leaves as it was is not held against it.
    if let Some(old) = old {
        errors.retain(|e| value_at(content, &e.field) != value_at(old, &e.field));
        immutable(group, kind, content, old, &mut errors);
    }
    errors
}

/// A value at a field path as Kubernetes prints it: `spec.containers[0].name`,
/// `spec.resources.limits[cpu]`.
fn value_at<'a>(value: &'a Value, field: &str) -> Option<&'a Value> {
    let mut current = value;
    for segment in field.split('.').filter(|s| !s.is_empty()) {
        let (name, mut rest) = segment.split_once('[').map_or((segment, ""), |(n, r)| (n, r));
        if !name.is_empty() {
            current = current.get(name)?;
        }
        while let Some((index, after)) = rest.split_once(']') {
            current = match index.parse::<usize>() {
                Ok(i) if current.is_array() => current.get(i)?,
                _ => current.get(index)?,
            };
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    Some(current)
}

fn in_range(n: &Value) -> bool {
    n.as_i64().is_some_and(|p| (1..=65535).contains(&p))
}

const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";

/// An IANA service name: at most 15 characters, lower-case letters, digits and `-`, with a letter,
/// no `-` at either end nor two in a row.
fn is_port_name(s: &str) -> bool {
    s.len() <= 15
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

fn check_protocol(port: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if let Some(protocol) = port.get("protocol").and_then(Value::as_str)
        && !matches!(protocol, "TCP" | "UDP" | "SCTP")
    {
        let supported = ["SCTP", "TCP", "UDP"].map(String::from).to_vec();
        errors.push(FieldError::not_supported(format!("{path}.protocol"), json!(protocol), supported));
    }
}

fn check_port_name(name: &str, field: String, errors: &mut Vec<FieldError>) {
    if !is_port_name(name) {
        let detail = "must contain at least one letter, only lower-case letters, digits and '-', no '-' at either end or twice in a row, and at most 15 characters (IANA_SVC_NAME)";
        errors.push(FieldError::invalid(field, json!(name), detail));
    }
}

/// A pod spec's containers: present, named (DNS labels, unique), with an image, valid ports.
fn pod_spec(spec: Option<&Value>, path: &str, errors: &mut Vec<FieldError>) {
    let Some(spec) = spec else {
        errors.push(FieldError::required(format!("{path}.containers"), ""));
        return;
    };
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(Vec::is_empty) {
        errors.push(FieldError::required(format!("{path}.containers"), ""));
    }
    let mut names = BTreeSet::new();
    for list in ["initContainers", "containers"] {
        for (i, container) in spec.get(list).and_then(Value::as_array).into_iter().flatten().enumerate() {
            let at = format!("{path}.{list}[{i}]");
            match container.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
                None => errors.push(FieldError::required(format!("{at}.name"), "")),
                Some(name) => {
                    if let Err(e) = validate_name(name, NameRule::DnsLabel) {
                        errors.push(FieldError::invalid(format!("{at}.name"), json!(name), e.to_string()));
                    }
                    if !names.insert(name) {
                        errors.push(duplicate(format!("{at}.name"), json!(name)));
                    }
                }
            }
            if container.get("image").and_then(Value::as_str).is_none_or(str::is_empty) {
                errors.push(FieldError::required(format!("{at}.image"), ""));
            }
            container_ports(container, &at, errors);
            resources(container.get("resources"), &format!("{at}.resources"), errors);
        }
    }
}

fn container_ports(container: &Value, at: &str, errors: &mut Vec<FieldError>) {
    let mut port_names = BTreeSet::new();
    for (j, port) in container.get("ports").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let pat = format!("{at}.ports[{j}]");
        match port.get("containerPort") {
            Some(p) if in_range(p) => {}
            Some(p) => errors.push(FieldError::invalid(format!("{pat}.containerPort"), p.clone(), PORT_RANGE)),
            None => errors.push(FieldError::required(format!("{pat}.containerPort"), "")),
        }
        if let Some(p) = port.get("hostPort").filter(|p| p.as_i64() != Some(0) && !in_range(p)) {
            errors.push(FieldError::invalid(format!("{pat}.hostPort"), p.clone(), PORT_RANGE));
        }
        if let Some(name) = port.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
            check_port_name(name, format!("{pat}.name"), errors);
            if !port_names.insert(name) {
                errors.push(duplicate(format!("{pat}.name"), json!(name)));
            }
        }
        check_protocol(port, &pat, errors);
    }
}

/// Requests no greater than limits, as kube-apiserver compares them.
fn resources(resources: Option<&Value>, at: &str, errors: &mut Vec<FieldError>) {
    let Some(resources) = resources else { return };
    let quantity = |section: &str, name: &str| {
        resources
            .get(section)?
            .get(name)?
            .as_str()
            .and_then(crate::quantity::parse)
            .or_else(|| resources.get(section)?.get(name)?.as_f64())
    };
    for (name, request) in resources.get("requests").and_then(Value::as_object).into_iter().flatten() {
        if let (Some(asked), Some(limit)) = (quantity("requests", name), quantity("limits", name))
            && asked > limit
        {
            let limit_text = resources.pointer(&format!("/limits/{name}")).map(render).unwrap_or_default();
            let detail = format!("must be less than or equal to {name} limit of {limit_text}");
            errors.push(FieldError::invalid(format!("{at}.requests[{name}]"), request.clone(), detail));
        }
    }
}

fn render(value: &Value) -> String {
    value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string())
}

fn duplicate(field: String, value: Value) -> FieldError {
    FieldError { field, kind: crate::field::FieldErrorType::Duplicate(value), detail: String::new() }
}

fn template_labels<'a>(content: &'a Value, path: &str) -> Option<&'a serde_json::Map<String, Value>> {
    value_at(content, &format!("{path}.metadata.labels"))?.as_object()
}

/// A Deployment's, ReplicaSet's, StatefulSet's or DaemonSet's selector: present, not empty, and
/// matching its template's labels.
fn workload_selector(kind: &str, content: &Value, errors: &mut Vec<FieldError>) {
    let selector = content.pointer("/spec/selector").filter(|s| !s.is_null());
    let Some(selector) = selector else {
        errors.push(FieldError::required("spec.selector", ""));
        return;
    };
    let Some(text) = crate::selector::label_selector_text(selector) else {
        errors.push(FieldError::invalid("spec.selector", selector.clone(), "invalid label selector"));
        return;
    };
    if text.is_empty() {
        let detail = format!("empty selector is invalid for {}", kind.to_lowercase());
        errors.push(FieldError::invalid("spec.selector", selector.clone(), detail));
        return;
    }
    let Ok(parsed) = LabelSelector::parse(&text) else {
        errors.push(FieldError::invalid("spec.selector", selector.clone(), "invalid label selector"));
        return;
    };
    let labels = template_labels(content, "spec.template");
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    if !parsed.matches(get) {
        let value = labels.cloned().map(Value::Object).unwrap_or(Value::Null);
        errors.push(FieldError::invalid(
            "spec.template.metadata.labels",
            value,
            "`selector` does not match template `labels`",
        ));
    }
}

/// A ReplicationController's selector (a plain map) against its template's labels.
fn controller_selector(content: &Value, errors: &mut Vec<FieldError>) {
    let Some(selector) = content.pointer("/spec/selector").and_then(Value::as_object).filter(|s| !s.is_empty()) else {
        return;
    };
    let labels = template_labels(content, "spec.template");
    if !selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v)) {
        let value = labels.cloned().map(Value::Object).unwrap_or(Value::Null);
        errors.push(FieldError::invalid(
            "spec.template.metadata.labels",
            value,
            "`selector` does not match template `labels`",
        ));
    }
}

/// A Service's type and ports.
fn service(content: &Value, errors: &mut Vec<FieldError>) {
    let spec = content.get("spec").unwrap_or(&Value::Null);
    let kind = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP");
    if !matches!(kind, "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName") {
        let supported = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"].map(String::from).to_vec();
        errors.push(FieldError::not_supported("spec.type", json!(kind), supported));
    }
    let ports = spec.get("ports").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    if ports.is_empty() && kind != "ExternalName" && !headless {
        errors.push(FieldError::required("spec.ports", ""));
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        match port.get("port") {
            Some(p) if in_range(p) => {}
            Some(p) => errors.push(FieldError::invalid(format!("{at}.port"), p.clone(), PORT_RANGE)),
            None => errors.push(FieldError::required(format!("{at}.port"), "")),
        }
        match port.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
            None if ports.len() > 1 => errors.push(FieldError::required(format!("{at}.name"), "")),
            None => {}
            Some(name) if !names.insert(name) => errors.push(duplicate(format!("{at}.name"), json!(name))),
            Some(_) => {}
        }
        match port.get("targetPort") {
            Some(Value::String(name)) => check_port_name(name, format!("{at}.targetPort"), errors),
            Some(p) if !p.is_null() && !in_range(p) => {
                errors.push(FieldError::invalid(format!("{at}.targetPort"), p.clone(), PORT_RANGE))
            }
            _ => {}
        }
        check_protocol(port, &at, errors);
    }
}

/// Fields that may not change once set.
fn immutable(group: &str, kind: &str, new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
    let changed = |path: &str| value_at(new, path) != value_at(old, path);
    let is_immutable = |path: &str, errors: &mut Vec<FieldError>| {
        if changed(path) {
            let value = value_at(new, path).cloned().unwrap_or(Value::Null);
            errors.push(FieldError::invalid(path, value, "field is immutable"));
        }
    };
    match (group, kind) {
        ("", "ConfigMap" | "Secret") => {
            if old.get("immutable") == Some(&Value::Bool(true)) {
                let detail = "field is immutable when `immutable` is set";
                for field in ["immutable", "data", "binaryData", "stringData"] {
                    if changed(field) && !(field == "stringData" && new.get(field).is_none()) {
                        errors.push(FieldError::forbidden(field, detail));
                    }
                }
            }
            if kind == "Secret" && old.get("type").is_some() {
                is_immutable("type", errors);
            }
        }
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") => is_immutable("spec.selector", errors),
        ("apps", "StatefulSet") => {
            let mutable = [
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ];
            let strip = |v: &Value| {
                let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
                if let Some(map) = spec.as_object_mut() {
                    map.retain(|k, _| !mutable.contains(&k.as_str()));
                }
                spec
            };
            if strip(new) != strip(old) {
                errors.push(FieldError::forbidden(
                    "spec",
                    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                ));
            }
        }
        ("batch", "Job") => {
            is_immutable("spec.selector", errors);
            is_immutable("spec.template", errors);
            is_immutable("spec.completions", errors);
        }
        ("", "Service") if value_at(old, "spec.clusterIP").and_then(Value::as_str).is_some_and(|ip| !ip.is_empty()) => {
            is_immutable("spec.clusterIP", errors)
        }
        ("", "PersistentVolumeClaim") => {
            let strip = |v: &Value| {
                let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
                if let Some(map) = spec.as_object_mut() {
                    map.remove("volumeAttributesClassName");
                    if let Some(resources) = map.get_mut("resources").and_then(Value::as_object_mut) {
                        resources.remove("requests");
                    }
                }
                spec
            };
            if strip(new) != strip(old) {
                errors.push(FieldError::forbidden(
                    "spec",
                    "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
                ));
            }
        }
        ("storage.k8s.io", "StorageClass") => {
            for field in ["parameters", "provisioner", "reclaimPolicy"] {
                if changed(field) {
                    errors.push(FieldError::forbidden(field, format!("updates to {field} are forbidden.")));
                }
            }
            is_immutable("volumeBindingMode", errors);
        }
        _ => {}
    }
}

/// The first resource quantity in `content` that does not parse, with where it is: kube-apiserver's
/// decoder refuses such an object (400).
pub fn bad_quantity(gk: &GroupKind, content: &Value) -> Option<String> {
    let (group, kind) = (gk.group.as_str(), gk.kind.as_str());
    let mut specs: Vec<&Value> = Vec::new();
    if (group, kind) == ("", "Pod") {
        specs.extend(content.get("spec"));
    }
    if let Some(path) = pod_template_path(group, kind) {
        specs.extend(value_at(content, &format!("{path}.spec")));
    }
    let containers = specs.into_iter().flat_map(|spec| {
        ["initContainers", "containers"]
            .into_iter()
            .flat_map(|l| spec.get(l).and_then(Value::as_array).into_iter().flatten())
    });
    let mut maps: Vec<&Value> = containers
        .flat_map(|c| ["limits", "requests"].into_iter().filter_map(|s| c.get("resources").and_then(|r| r.get(s))))
        .collect();
    if (group, kind) == ("", "ResourceQuota") {
        maps.extend(content.pointer("/spec/hard"));
    }
    let values = maps.into_iter().filter_map(Value::as_object).flat_map(|m| m.values());
    values
        .filter_map(|v| match v {
            Value::String(s) if crate::quantity::parse(s).is_none() => Some(s.clone()),
            Value::Number(_) | Value::String(_) => None,
            other => Some(other.to_string()),
        })
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: &str, kind: &str) -> GroupKind {
        GroupKind { group: group.into(), kind: kind.into() }
    }

    fn messages(group: &str, kind: &str, content: Value, old: Option<Value>) -> Vec<String> {
        validate(&key(group, kind), &content, old.as_ref()).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn workloads_need_matching_selectors_and_sound_containers() {
        let deployment = json!({"spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [
                {"name": "web", "image": "nginx", "ports": [{"containerPort": 0, "name": "http"}, {"containerPort": 81, "name": "http", "protocol": "tcp"}],
                 "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}},
                {"name": "web"}, {"name": "Bad_Name", "image": "x"}]}}}});
        assert_eq!(
            messages("apps", "Deployment", deployment, None),
            [
                "spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.template.spec.containers[0].ports[1].name: Duplicate value: \"http\"",
                "spec.template.spec.containers[0].ports[1].protocol: Unsupported value: \"tcp\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.template.spec.containers[0].resources.requests[cpu]: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
                "spec.template.spec.containers[1].name: Duplicate value: \"web\"",
                "spec.template.spec.containers[1].image: Required value",
                "spec.template.spec.containers[2].name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc'), got \"Bad_Name\"",
                "spec.template.metadata.labels: Invalid value: {\"app\":\"api\"}: `selector` does not match template `labels`",
            ]
        );
        let expressions = json!({"spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]},
            "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        assert!(messages("apps", "ReplicaSet", expressions, None).is_empty());
        let empty =
            json!({"spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        assert_eq!(
            messages("apps", "DaemonSet", empty, None),
            ["spec.selector: Invalid value: {}: empty selector is invalid for daemonset"]
        );
    }

    #[test]
    fn services_need_ports() {
        let service = json!({"spec": {"type": "Cluster", "ports": [{"port": 80}, {"port": 70000, "name": "b"}]}});
        assert_eq!(
            messages("", "Service", service, None),
            [
                "spec.type: Unsupported value: \"Cluster\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
                "spec.ports[0].name: Required value",
                "spec.ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
            ]
        );
        assert_eq!(messages("", "Service", json!({"spec": {}}), None), ["spec.ports: Required value"]);
        assert!(messages("", "Service", json!({"spec": {"clusterIP": "None"}}), None).is_empty());
    }

    #[test]
    fn immutable_fields_and_ratcheting() {
        let cm = json!({"immutable": true, "data": {"a": "1"}});
        assert_eq!(
            messages("", "ConfigMap", json!({"immutable": true, "data": {"a": "2"}}), Some(cm.clone())),
            ["data: Forbidden: field is immutable when `immutable` is set"]
        );
        assert!(
            messages("", "ConfigMap", json!({"immutable": true, "data": {"a": "1"}, "metadata": {}}), Some(cm))
                .is_empty()
        );
        let deploy = |app: &str, image: Value| {
            json!({"spec": {"selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "c", "image": image}]}}}})
        };
        assert_eq!(
            messages("apps", "Deployment", deploy("b", json!("i")), Some(deploy("a", json!("i")))),
            ["spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"b\"}}: field is immutable"]
        );
        // A committed Deployment without an image can still be scaled.
        let mut scaled = deploy("a", Value::Null);
        scaled["spec"]["replicas"] = json!(3);
        assert!(messages("apps", "Deployment", scaled, Some(deploy("a", Value::Null))).is_empty());
        let class = |p: &str| json!({"provisioner": "x", "parameters": {"type": p}});
        assert_eq!(
            messages("storage.k8s.io", "StorageClass", class("b"), Some(class("a"))),
            ["parameters: Forbidden: updates to parameters are forbidden."]
        );
    }

    #[test]
    fn quantities_that_do_not_parse_are_found() {
        let pod = json!({"spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": {"cpu": "1", "memory": "lots"}}}]}});
        assert_eq!(bad_quantity(&key("", "Pod"), &pod), Some("lots".into()));
        let quota = json!({"spec": {"hard": {"pods": "10", "cpu": 4}}});
        assert_eq!(bad_quantity(&key("", "ResourceQuota"), &quota), None);
    }
}
