//! The defaults of each built-in kind, after kube-apiserver's `SetDefaults_*` functions and the
//! declarative `+default` markers of its types, and the status its strategies give new objects.

use serde_json::{Map, Value, json};

/// Fills in one kind's defaults, for the version the object is served at.
pub(super) type Defaulter = fn(&str, &mut Value);

/// The defaulter of a built-in kind, if it has defaults.
pub(super) fn defaulter(group: &str, kind: &str) -> Option<Defaulter> {
    Some(match (group, kind) {
        ("", "Pod") => pod,
        ("", "PodTemplate") => |_, o| template_at(o, &["template"]),
        ("", "ReplicationController") => replication_controller,
        ("", "Service") => service,
        ("", "Namespace") => namespace,
        ("", "Secret") => |_, o| set(o, "type", json!("Opaque")),
        ("", "PersistentVolume") => persistent_volume,
        ("", "PersistentVolumeClaim") => |_, o| persistent_volume_claim(o),
        ("", "Endpoints") => endpoints,
        ("", "Node") => node,
        ("", "LimitRange") => limit_range,
        ("apps", "Deployment") => deployment,
        ("apps", "ReplicaSet") => |_, o| {
            set(spec(o), "replicas", json!(1));
            template_at(o, &["spec", "template"]);
        },
        ("apps", "StatefulSet") => stateful_set,
        ("apps", "DaemonSet") => daemon_set,
        ("batch", "Job") => job,
        ("batch", "CronJob") => cron_job,
        ("storage.k8s.io", "StorageClass") => |_, o| {
            set(o, "reclaimPolicy", json!("Delete"));
            set(o, "volumeBindingMode", json!("Immediate"));
        },
        ("storage.k8s.io", "CSIDriver") => csi_driver,
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => role_binding,
        ("scheduling.k8s.io", "PriorityClass") => |_, o| set(o, "preemptionPolicy", json!("PreemptLowerPriority")),
        ("networking.k8s.io", "NetworkPolicy") => network_policy,
        ("autoscaling", "HorizontalPodAutoscaler") => horizontal_pod_autoscaler,
        _ => return None,
    })
}

/// Sets `key` of an object to `value` where it is absent (or null, as Go reads null).
fn set(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        let slot = map.entry(key).or_insert(Value::Null);
        if slot.is_null() {
            *slot = value;
        }
    }
}

/// Sets `key` of an object to `value`, present or not.
fn put(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        map.insert(key.to_string(), value);
    }
}

/// The object at `key`, created empty where it is absent. A value of another type (which
/// validation refuses in writes, and a person may commit) is returned as it is: it takes no default.
fn child<'a>(object: &'a mut Value, key: &str) -> &'a mut Value {
    match object {
        Value::Object(map) => {
            let slot = map.entry(key).or_insert(Value::Null);
            if slot.is_null() {
                *slot = json!({});
            }
            slot
        }
        other => other,
    }
}

fn spec(object: &mut Value) -> &mut Value {
    child(object, "spec")
}

/// The items of a list field, if it is one.
fn items<'a>(object: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    object.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten().filter(|v| v.is_object())
}

/// The value at a path of keys, if every step is there.
fn at<'a>(object: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter().try_fold(object, |v, key| v.get_mut(*key)).filter(|v| v.is_object())
}

fn pod(_: &str, o: &mut Value) {
    let spec = spec(o);
    pod_spec(spec);
    // Pods only (not templates): requests default to limits, service links are on, and a host
    // network pod's container ports are host ports.
    for key in ["containers", "initContainers"] {
        for container in items(spec, key) {
            let Some(limits) = container.pointer("/resources/limits").and_then(Value::as_object).cloned() else {
                continue;
            };
            let requests = child(child(container, "resources"), "requests");
            for (resource, quantity) in limits {
                set(requests, &resource, quantity);
            }
        }
    }
    set(spec, "enableServiceLinks", json!(true));
    if spec.get("hostNetwork") == Some(&Value::Bool(true)) {
        for key in ["containers", "initContainers"] {
            for container in items(spec, key) {
                for port in items(container, "ports") {
                    if let Some(p) = port.get("containerPort").cloned() {
                        set(port, "hostPort", p);
                    }
                }
            }
        }
    }
    let qos = qos_class(o.get("spec").unwrap_or(&Value::Null));
    let status = child(o, "status");
    set(status, "phase", json!("Pending"));
    set(status, "qosClass", json!(qos));
}

/// The quality of service class of a pod spec: `Guaranteed` when every container's cpu and
/// memory limits are set and equal their requests, `BestEffort` when no container asks for either.
fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_array))
        .flatten()
        .collect();
    let quantity = |c: &Value, kind: &str, resource: &str| {
        c.pointer(&format!("/resources/{kind}/{resource}")).and_then(Value::as_str).and_then(crate::quantity::parse)
    };
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        for resource in ["cpu", "memory"] {
            let (requests, limits) = (quantity(c, "requests", resource), quantity(c, "limits", resource));
            any |= requests.is_some_and(|q| q != 0.0) || limits.is_some_and(|q| q != 0.0);
            guaranteed &= limits.is_some() && requests.is_none_or(|r| Some(r) == limits);
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// `SetDefaults_PodSpec` and the defaults of what a pod spec holds.
fn pod_spec(spec: &mut Value) {
    set(spec, "dnsPolicy", json!("ClusterFirst"));
    set(spec, "restartPolicy", json!("Always"));
    set(spec, "securityContext", json!({}));
    set(spec, "terminationGracePeriodSeconds", json!(30));
    set(spec, "schedulerName", json!("default-scheduler"));
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        for c in items(spec, key) {
            container(c);
        }
    }
    for v in items(spec, "volumes") {
        volume(v);
    }
}

fn container(c: &mut Value) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    let policy = if image_tag(image) == "latest" { "Always" } else { "IfNotPresent" };
    set(c, "imagePullPolicy", json!(policy));
    set(c, "terminationMessagePath", json!("/dev/termination-log"));
    set(c, "terminationMessagePolicy", json!("File"));
    // A struct Go always serializes.
    set(c, "resources", json!({}));
    for port in items(c, "ports") {
        set(port, "protocol", json!("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = at(c, &[probe]) {
            set(p, "timeoutSeconds", json!(1));
            set(p, "periodSeconds", json!(10));
            set(p, "successThreshold", json!(1));
            set(p, "failureThreshold", json!(3));
            if let Some(get) = at(p, &["httpGet"]) {
                set(get, "path", json!("/"));
                set(get, "scheme", json!("HTTP"));
            }
        }
    }
    for hook in ["postStart", "preStop"] {
        if let Some(get) = at(c, &["lifecycle", hook, "httpGet"]) {
            set(get, "path", json!("/"));
            set(get, "scheme", json!("HTTP"));
        }
    }
    for env in items(c, "env") {
        if let Some(field) = at(env, &["valueFrom", "fieldRef"]) {
            set(field, "apiVersion", json!("v1"));
        }
    }
}

/// The tag of an image reference, `latest` where it has none; empty for a digest.
fn image_tag(image: &str) -> &str {
    if image.contains('@') {
        return "";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':').map_or("latest", |(_, tag)| tag)
}

fn volume(v: &mut Value) {
    const SOURCES: [&str; 29] = [
        "hostPath",
        "emptyDir",
        "gcePersistentDisk",
        "awsElasticBlockStore",
        "gitRepo",
        "secret",
        "nfs",
        "iscsi",
        "glusterfs",
        "persistentVolumeClaim",
        "rbd",
        "flexVolume",
        "cinder",
        "cephfs",
        "flocker",
        "downwardAPI",
        "fc",
        "azureFile",
        "configMap",
        "vsphereVolume",
        "quobyte",
        "azureDisk",
        "photonPersistentDisk",
        "projected",
        "portworxVolume",
        "scaleIO",
        "storageos",
        "csi",
        "ephemeral",
    ];
    let has_source = SOURCES.iter().chain(&["image"]).any(|s| v.get(*s).is_some_and(|x| !x.is_null()));
    if !has_source {
        set(v, "emptyDir", json!({}));
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = at(v, &[source]) {
            set(s, "defaultMode", json!(420));
        }
    }
    if let Some(s) = at(v, &["hostPath"]) {
        set(s, "type", json!(""));
    }
    if let Some(projected) = at(v, &["projected"]) {
        for source in items(projected, "sources") {
            if let Some(token) = at(source, &["serviceAccountToken"]) {
                set(token, "expirationSeconds", json!(3600));
            }
        }
    }
    if let Some(s) = at(v, &["ephemeral", "volumeClaimTemplate"]) {
        set(spec(s), "volumeMode", json!("Filesystem"));
    }
}

/// Pod template defaults at `path` (a PodTemplateSpec).
fn template_at(o: &mut Value, path: &[&str]) {
    if let Some(spec) = at(o, path).and_then(|t| at(t, &["spec"])) {
        pod_spec(spec);
    }
}

/// The labels of the pod template at `spec.template`, if it has any.
fn template_labels(o: &Value) -> Option<Value> {
    o.pointer("/spec/template/metadata/labels").filter(|l| l.as_object().is_some_and(|m| !m.is_empty())).cloned()
}

/// An object without labels takes `labels` (its template's).
fn labels_if_none(o: &mut Value, labels: Value) {
    let meta = child(o, "metadata");
    if meta.get("labels").and_then(Value::as_object).is_none_or(Map::is_empty) {
        put(meta, "labels", labels);
    }
}

fn replication_controller(_: &str, o: &mut Value) {
    if let Some(labels) = template_labels(o) {
        if o.pointer("/spec/selector").and_then(Value::as_object).is_none_or(Map::is_empty) {
            put(spec(o), "selector", labels.clone());
        }
        labels_if_none(o, labels);
    }
    set(spec(o), "replicas", json!(1));
    template_at(o, &["spec", "template"]);
}

fn service(_: &str, o: &mut Value) {
    let spec = spec(o);
    set(spec, "sessionAffinity", json!("None"));
    match spec["sessionAffinity"].as_str() {
        Some("None") => {
            spec.as_object_mut().map(|s| s.shift_remove("sessionAffinityConfig"));
        }
        Some("ClientIP") => {
            let config = child(child(spec, "sessionAffinityConfig"), "clientIP");
            set(config, "timeoutSeconds", json!(10800));
        }
        _ => {}
    }
    set(spec, "type", json!("ClusterIP"));
    for port in items(spec, "ports") {
        set(port, "protocol", json!("TCP"));
        if port.get("targetPort").is_none_or(|t| t.is_null() || *t == json!(0) || *t == json!("")) {
            let target = port.get("port").cloned().unwrap_or(Value::Null);
            put(port, "targetPort", target);
        }
    }
    let kind = spec["type"].as_str().unwrap_or_default().to_string();
    let has_external_ips = spec.get("externalIPs").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    let externally_accessible =
        matches!(kind.as_str(), "NodePort" | "LoadBalancer") || (kind == "ClusterIP" && has_external_ips);
    if externally_accessible {
        set(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if matches!(kind.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP") {
        set(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if kind == "LoadBalancer" {
        set(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    // What the Service registry sets where it allocates addresses: every type but ExternalName is
    // single-stack IPv4 here.
    if kind != "ExternalName" {
        set(spec, "ipFamilyPolicy", json!("SingleStack"));
        set(spec, "ipFamilies", json!(["IPv4"]));
        if let Some(ip) = spec.get("clusterIP").filter(|ip| ip.as_str().is_some_and(|s| !s.is_empty())).cloned() {
            set(spec, "clusterIPs", json!([ip]));
        }
    }
    set(child(o, "status"), "loadBalancer", json!({}));
}

fn namespace(_: &str, o: &mut Value) {
    let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let terminating = o.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null());
    if !name.is_empty() {
        let labels = child(child(o, "metadata"), "labels");
        put(labels, "kubernetes.io/metadata.name", json!(name));
    }
    set(spec(o), "finalizers", json!(["kubernetes"]));
    let status = child(o, "status");
    if terminating {
        put(status, "phase", json!("Terminating"));
    }
    set(status, "phase", json!("Active"));
}

fn persistent_volume(_: &str, o: &mut Value) {
    let spec = spec(o);
    set(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
    set(spec, "volumeMode", json!("Filesystem"));
    set(child(o, "status"), "phase", json!("Pending"));
}

fn persistent_volume_claim(o: &mut Value) {
    set(spec(o), "volumeMode", json!("Filesystem"));
    set(child(o, "status"), "phase", json!("Pending"));
}

fn endpoints(_: &str, o: &mut Value) {
    for subset in items(o, "subsets") {
        for port in items(subset, "ports") {
            set(port, "protocol", json!("TCP"));
        }
    }
}

fn node(_: &str, o: &mut Value) {
    if let Some(status) = at(o, &["status"])
        && let Some(capacity) = status.get("capacity").filter(|c| c.is_object()).cloned()
    {
        set(status, "allocatable", capacity);
    }
}

fn limit_range(_: &str, o: &mut Value) {
    let Some(spec) = at(o, &["spec"]) else { return };
    for item in items(spec, "limits").filter(|i| i.get("type") == Some(&json!("Container"))) {
        let copy_missing = |item: &mut Value, from: &str, to: &str| {
            let source = item.get(from).and_then(Value::as_object).cloned().unwrap_or_default();
            let target = child(item, to);
            for (resource, quantity) in source {
                set(target, &resource, quantity);
            }
        };
        copy_missing(item, "max", "default");
        copy_missing(item, "default", "defaultRequest");
        copy_missing(item, "min", "defaultRequest");
    }
}

fn deployment(_: &str, o: &mut Value) {
    let spec = spec(o);
    set(spec, "replicas", json!(1));
    let strategy = child(spec, "strategy");
    set(strategy, "type", json!("RollingUpdate"));
    if strategy["type"] == "RollingUpdate" {
        let rolling = child(strategy, "rollingUpdate");
        set(rolling, "maxUnavailable", json!("25%"));
        set(rolling, "maxSurge", json!("25%"));
    }
    set(spec, "revisionHistoryLimit", json!(10));
    set(spec, "progressDeadlineSeconds", json!(600));
    template_at(o, &["spec", "template"]);
}

fn stateful_set(_: &str, o: &mut Value) {
    let spec = spec(o);
    set(spec, "replicas", json!(1));
    set(spec, "podManagementPolicy", json!("OrderedReady"));
    let strategy = child(spec, "updateStrategy");
    // A defaulted type brings its rollingUpdate; a partition is defaulted in any rollingUpdate.
    if strategy.get("type").is_none_or(Value::is_null) {
        put(strategy, "type", json!("RollingUpdate"));
        child(strategy, "rollingUpdate");
    }
    if strategy["type"] == "RollingUpdate"
        && let Some(rolling) = at(strategy, &["rollingUpdate"])
    {
        set(rolling, "partition", json!(0));
    }
    set(spec, "revisionHistoryLimit", json!(10));
    let retention = child(spec, "persistentVolumeClaimRetentionPolicy");
    set(retention, "whenDeleted", json!("Retain"));
    set(retention, "whenScaled", json!("Retain"));
    for claim in items(spec, "volumeClaimTemplates") {
        persistent_volume_claim(claim);
    }
    template_at(o, &["spec", "template"]);
}

fn daemon_set(_: &str, o: &mut Value) {
    let spec = spec(o);
    let strategy = child(spec, "updateStrategy");
    set(strategy, "type", json!("RollingUpdate"));
    if strategy["type"] == "RollingUpdate" {
        let rolling = child(strategy, "rollingUpdate");
        set(rolling, "maxUnavailable", json!(1));
        set(rolling, "maxSurge", json!(0));
    }
    set(spec, "revisionHistoryLimit", json!(10));
    template_at(o, &["spec", "template"]);
}

fn job(_: &str, o: &mut Value) {
    job_spec(spec(o));
    if let Some(labels) = template_labels(o) {
        labels_if_none(o, labels);
    }
    template_at(o, &["spec", "template"]);
}

/// `SetDefaults_Job`'s defaults of a job spec.
fn job_spec(spec: &mut Value) {
    let absent = |s: &Value, k: &str| s.get(k).is_none_or(Value::is_null);
    if absent(spec, "completions") && absent(spec, "parallelism") {
        put(spec, "completions", json!(1));
    }
    set(spec, "parallelism", json!(1));
    let per_index = !absent(spec, "backoffLimitPerIndex");
    set(spec, "backoffLimit", json!(if per_index { i32::MAX } else { 6 }));
    set(spec, "completionMode", json!("NonIndexed"));
    set(spec, "suspend", json!(false));
    let replacement = if absent(spec, "podFailurePolicy") { "TerminatingOrFailed" } else { "Failed" };
    set(spec, "podReplacementPolicy", json!(replacement));
}

fn cron_job(_: &str, o: &mut Value) {
    let spec = spec(o);
    set(spec, "concurrencyPolicy", json!("Allow"));
    set(spec, "suspend", json!(false));
    set(spec, "successfulJobsHistoryLimit", json!(3));
    set(spec, "failedJobsHistoryLimit", json!(1));
    template_at(o, &["spec", "jobTemplate", "spec", "template"]);
}

fn csi_driver(_: &str, o: &mut Value) {
    let spec = spec(o);
    set(spec, "attachRequired", json!(true));
    set(spec, "podInfoOnMount", json!(false));
    set(spec, "storageCapacity", json!(false));
    set(spec, "fsGroupPolicy", json!("ReadWriteOnceWithFSType"));
    set(spec, "requiresRepublish", json!(false));
    set(spec, "seLinuxMount", json!(false));
    set(spec, "volumeLifecycleModes", json!(["Persistent"]));
}

fn role_binding(_: &str, o: &mut Value) {
    for subject in items(o, "subjects") {
        match subject.get("kind").and_then(Value::as_str) {
            Some("ServiceAccount") => set(subject, "apiGroup", json!("")),
            Some("User" | "Group") => set(subject, "apiGroup", json!("rbac.authorization.k8s.io")),
            _ => {}
        }
    }
}

fn network_policy(_: &str, o: &mut Value) {
    let spec = spec(o);
    for direction in ["ingress", "egress"] {
        for rule in items(spec, direction) {
            for port in items(rule, "ports") {
                set(port, "protocol", json!("TCP"));
            }
        }
    }
    if spec.get("policyTypes").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        let egress = spec.get("egress").and_then(Value::as_array).is_some_and(|e| !e.is_empty());
        put(spec, "policyTypes", if egress { json!(["Ingress", "Egress"]) } else { json!(["Ingress"]) });
    }
}

fn horizontal_pod_autoscaler(version: &str, o: &mut Value) {
    let spec = spec(o);
    set(spec, "minReplicas", json!(1));
    if version != "v1" && spec.get("metrics").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        let cpu = json!([{"type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]);
        put(spec, "metrics", cpu);
    }
}
