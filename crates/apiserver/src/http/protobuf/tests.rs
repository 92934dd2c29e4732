use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::*;
use gitbacked_core::status::Reason;

fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    // As Go writes it: contentEncoding and contentType present and empty.
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown {
        type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw.to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    [MAGIC, &unknown.encode_to_vec()].concat()
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

/// ObjectMeta as Go writes it for `kubectl create … NAME`: every non-pointer field, empty or zero,
/// and the zero creationTimestamp as an empty message.
fn meta(name: &str) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: some(name),
        generate_name: some(""),
        namespace: some(""),
        self_link: some(""),
        uid: some(""),
        resource_version: some(""),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        ..Default::default()
    }
}

/// A Deployment as `kubectl create deployment web --image=nginx --replicas=0 --port=80` sends it:
/// Go's zero values included, a pointer set to zero.
fn kubectl_deployment() -> apps::Deployment {
    let labels: std::collections::BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
    let container = core::Container {
        name: some("nginx"),
        image: some("nginx"),
        working_dir: some(""),
        ports: vec![core::ContainerPort {
            name: some(""),
            host_port: Some(0),
            container_port: Some(80),
            protocol: some(""),
            host_ip: some(""),
        }],
        resources: Some(core::ResourceRequirements {
            limits: [("memory".to_string(), Quantity { string: some("64Mi") })].into(),
            ..Default::default()
        }),
        termination_message_path: some(""),
        image_pull_policy: some(""),
        stdin: Some(false),
        stdin_once: Some(false),
        tty: Some(false),
        termination_message_policy: some(""),
        ..Default::default()
    };
    apps::Deployment {
        metadata: Some(meta::ObjectMeta { labels: labels.clone(), ..meta("web") }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(meta::LabelSelector { match_labels: labels.clone(), ..Default::default() }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta { labels, ..meta("") }),
                spec: Some(core::PodSpec {
                    containers: vec![container],
                    restart_policy: some(""),
                    dns_policy: some(""),
                    service_account_name: some(""),
                    host_network: Some(false),
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: some(""),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString { r#type: Some(1), int_val: Some(0), str_val: some("25%") }),
                    max_surge: Some(IntOrString { r#type: Some(0), int_val: Some(2), str_val: some("") }),
                }),
            }),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus::default()),
    }
}

fn deployment_json() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "nginx",
                    "image": "nginx",
                    "ports": [{"containerPort": 80}],
                    "resources": {"limits": {"memory": "64Mi"}},
                }]},
            },
            "strategy": {"rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 2}},
        },
        "status": {},
    })
}

#[test]
fn a_kubectl_deployment_is_its_json_form() {
    let body = envelope("apps/v1", "Deployment", &kubectl_deployment().encode_to_vec());
    let value = decode(&body).unwrap();
    assert_eq!(value, deployment_json());
    let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["apiVersion", "kind", "metadata", "spec", "status"], "in kube-apiserver's order");
}

#[test]
fn embedded_structs_are_inlined_in_the_go_structs_order() {
    use k8s_pb::api::networking::v1 as networking;
    let path = networking::HttpIngressPath {
        path: some("/"),
        path_type: some("Prefix"),
        backend: Some(networking::IngressBackend {
            service: Some(networking::IngressServiceBackend {
                name: some("web"),
                port: Some(networking::ServiceBackendPort { name: some(""), number: Some(80) }),
            }),
            resource: None,
        }),
    };
    let rule = networking::IngressRule {
        host: some("example.com"),
        ingress_rule_value: Some(networking::IngressRuleValue {
            http: Some(networking::HttpIngressRuleValue { paths: vec![path] }),
        }),
    };
    let ingress = networking::Ingress {
        metadata: Some(meta("site")),
        spec: Some(networking::IngressSpec { rules: vec![rule], ..Default::default() }),
        status: None,
    };
    let value = decode(&envelope("networking.k8s.io/v1", "Ingress", &ingress.encode_to_vec())).unwrap();
    let path = &value["spec"]["rules"][0]["http"]["paths"][0];
    assert_eq!(
        path,
        &json!({"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}})
    );
    // The Go struct's order, not the field numbers' (pathType is 3, backend 2).
    let keys: Vec<&String> = path.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["path", "pathType", "backend"]);
}

#[test]
fn encoded_replies_decode_to_the_same_object_with_k8s_pb() {
    let value = deployment_json();
    let bytes = encode(&value).unwrap().unwrap();
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(bytes.strip_prefix(MAGIC).unwrap()).unwrap();
    let type_meta = unknown.type_meta.unwrap();
    assert_eq!((type_meta.api_version.as_deref(), type_meta.kind.as_deref()), (Some("apps/v1"), Some("Deployment")));
    let deployment = apps::Deployment::decode(unknown.raw.unwrap().as_slice()).unwrap();
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(0));
    let strategy = spec.strategy.unwrap().rolling_update.unwrap();
    assert_eq!(strategy.max_unavailable.unwrap(), IntOrString { r#type: Some(1), int_val: None, str_val: some("25%") });
    assert_eq!(strategy.max_surge.unwrap(), IntOrString { r#type: Some(0), int_val: Some(2), str_val: None });
    let container = &spec.template.unwrap().spec.unwrap().containers[0];
    assert_eq!(container.resources.as_ref().unwrap().limits["memory"].string.as_deref(), Some("64Mi"));
    assert_eq!(decode(&bytes).unwrap(), value);
}

/// Objects of many kinds through encode and decode unchanged: every special JSON form.
#[test]
fn round_trips_keep_every_special_form() {
    let objects = [
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default",
            "creationTimestamp": "2023-11-14T22:13:20Z", "deletionGracePeriodSeconds": -1,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "0000-1111",
                "controller": true, "blockOwnerDeletion": false}],
            "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                "time": "2023-11-14T22:13:20Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:k": {}}}}]},
            "data": {"bin": "AJ+Slv8=", "k": "dg=="}, "type": "kubernetes.io/tls", "immutable": false}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}, "spec": {
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "named", "port": 81, "targetPort": "web", "nodePort": 30001}],
            "type": "NodePort", "allocateLoadBalancerNodePorts": false}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "image": "busybox", "env": [{"name": "K",
                "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": false}}}],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5},
                "securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": false}}],
            "volumes": [{"name": "config", "configMap": {"name": "settings", "defaultMode": 420}},
                {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}],
            "enableServiceLinks": false, "terminationGracePeriodSeconds": 0}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"}, "spec": {
            "ingressClassName": "nginx", "rules": [{"host": "example.com", "http": {"paths": [{"path": "/api",
                "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
            "spec": {"storageClassName": "", "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}),
        json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
            "spec": {"hard": {"cpu": "1", "memory": "1Gi", "pods": "10"}}}),
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "p"},
            "spec": {"minAvailable": "50%", "selector": {"matchExpressions": [{"key": "app", "operator": "In",
                "values": ["a", "b"]}]}}}),
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "eventTime": "2024-02-29T12:00:00.123456Z", "reason": "Started", "action": "Start",
            "reportingController": "c", "reportingInstance": "i"}),
        json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "r"},
            "data": {"spec": {"template": {"x": [1, "two", null]}}}, "revision": 3}),
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "metadata": {},
            "spec": {"user": "u", "extra": {"scopes": ["a", "b"]}, "nonResourceAttributes": {"path": "/x", "verb": "get"}}}),
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "gears.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "gears", "kind": "Gear"}, "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                    "properties": {"spec": {"type": "object", "default": {"size": 1},
                        "additionalProperties": false, "x-kubernetes-validations": [{"rule": "self.size > 0"}],
                        "properties": {"size": {"type": "integer", "enum": [1, 2]},
                            "tags": {"type": "array", "items": {"type": "string"}},
                            "any": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                            "labels": {"type": "object", "additionalProperties": {"type": "string"}}}}}}}}]}}),
        json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {"resourceVersion": "7"},
            "items": [{"metadata": {"name": "a"}, "data": {"k": "v"}}, {"metadata": {"name": "b"}}]}),
    ];
    for object in objects {
        let bytes = encode(&object).unwrap().unwrap_or_else(|e| panic!("{object}: {}", e.message));
        assert_eq!(decode(&bytes).unwrap(), object);
    }
}

/// A frame's envelope: apiVersion, kind and the message.
fn frame(bytes: &[u8]) -> (String, String, Vec<u8>) {
    let length = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    assert_eq!(bytes.len(), 4 + length);
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(bytes[4..].strip_prefix(MAGIC).unwrap()).unwrap();
    let type_meta = unknown.type_meta.unwrap();
    (type_meta.api_version.unwrap(), type_meta.kind.unwrap(), unknown.raw.unwrap())
}

#[test]
fn watch_events_are_frames_of_encoded_objects() {
    let line = serde_json::to_vec(&json!({"type": "MODIFIED", "object": deployment_json()})).unwrap();
    let (api_version, kind, raw) = frame(&watch_frame("apps/v1", &line));
    assert_eq!((api_version.as_str(), kind.as_str()), ("apps/v1", "WatchEvent"));
    let event = meta::WatchEvent::decode(raw.as_slice()).unwrap();
    assert_eq!(event.r#type.as_deref(), Some("MODIFIED"));
    let object = event.object.unwrap().raw.unwrap();
    assert_eq!(decode(&object).unwrap(), deployment_json());

    // An object without a protobuf form ends the stream with an ERROR event saying so.
    let gear = json!({"type": "ADDED", "object": {"apiVersion": "example.com/v1", "kind": "Gear"}});
    let (_, _, raw) = frame(&watch_frame("example.com/v1", &serde_json::to_vec(&gear).unwrap()));
    let event = meta::WatchEvent::decode(raw.as_slice()).unwrap();
    assert_eq!(event.r#type.as_deref(), Some("ERROR"));
    let status = decode(&event.object.unwrap().raw.unwrap()).unwrap();
    assert_eq!((status["kind"].as_str(), status["code"].as_i64()), (Some("Status"), Some(500)));
    assert!(status["message"].as_str().unwrap().contains("Gear has no protobuf form"), "{status}");
}

#[test]
fn custom_resources_have_no_protobuf_form() {
    assert!(encode(&json!({"apiVersion": "example.com/v1", "kind": "Gear", "metadata": {"name": "g"}})).is_none());
    assert!(!encodable("example.com", "v1", "Gear"));
    assert!(encodable("apps", "v1", "Deployment") && encodable("apps", "v1", "DeploymentList"));
    assert!(encodable("", "v1", "Status") && encodable("autoscaling", "v1", "Scale"));
    let unfit = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": 3}});
    assert_eq!(encode(&unfit).unwrap().unwrap_err().code, 500);
}

#[test]
fn every_generated_fact_names_a_field_that_exists() {
    for (message, number) in GO.fields.keys() {
        let descriptor = POOL.get_message_by_name(message).unwrap_or_else(|| panic!("{message}"));
        assert!(descriptor.get_field(*number).is_some(), "{message} {number}");
    }
    for message in &GO.slices {
        assert!(POOL.get_message_by_name(message).is_some(), "{message}");
    }
}

#[test]
fn other_kinds_are_unsupported_media_types_naming_the_kind() {
    let e = decode(&envelope("example.com/v1", "Gear", &[])).unwrap_err();
    assert_eq!((e.code, e.reason), (415, Reason::UnsupportedMediaType));
    assert!(e.message.contains("example.com/v1 Gear"), "{}", e.message);
    let e = decode(&envelope("v2", "ConfigMap", &[])).unwrap_err();
    assert!(e.code == 415 && e.message.contains("v2 ConfigMap"), "{}", e.message);
    let e = decode(&envelope("", "", &[])).unwrap_err();
    assert!(e.code == 415 && e.message.contains("without a kind"), "{}", e.message);

    let mut unknown =
        k8s_pb::apimachinery::pkg::runtime::Unknown::decode(&envelope("v1", "ConfigMap", &[])[4..]).unwrap();
    unknown.content_encoding = some("gzip");
    let e = decode(&[MAGIC, &unknown.encode_to_vec()].concat()).unwrap_err();
    assert!(e.code == 415 && e.message.contains("gzip"), "{}", e.message);
    unknown.content_encoding = None;
    unknown.content_type = some("application/json");
    assert_eq!(decode(&[MAGIC, &unknown.encode_to_vec()].concat()).unwrap_err().code, 415);
}

fn bad(bytes: &[u8]) -> String {
    let e = decode(bytes).unwrap_err();
    assert_eq!((e.code, e.reason), (400, Reason::BadRequest), "{}", e.message);
    e.message
}

#[test]
fn malformed_bodies_are_bad_requests() {
    assert!(bad(b"").contains("magic"));
    assert!(bad(b"{\"kind\":\"ConfigMap\"}").contains("magic"));
    assert!(bad(b"k8s").contains("magic"));
    // A varint that never ends, and one that overflows.
    bad(&[MAGIC, &[0x0a, 0xff, 0xff]].concat());
    bad(&[MAGIC, &[0x08], &[0xff; 9], &[0x02]].concat());
    bad(&[MAGIC, &[0x08], &[0x80; 10], &[0x00]].concat());
    // A length beyond the end, and a huge one.
    bad(&[MAGIC, &[0x12, 0x05, b'a']].concat());
    bad(&[MAGIC, &[0x12], &[0xff; 9], &[0x01]].concat());
    // Field number 0, an unmatched group end, wire types 6 and 7.
    bad(&[MAGIC, &[0x02, 0x00]].concat());
    bad(&[MAGIC, &[0x0c]].concat());
    bad(&[MAGIC, &[0x0e]].concat());
    // A known field with the wrong wire type, a string that is not UTF-8, raw bytes that are not JSON.
    let wrong = [0x0a, 0x02, 0x08, 0x01]; // ObjectMeta { name: varint 1 }
    bad(&envelope("v1", "ConfigMap", &wrong));
    let not_utf8 = core::ConfigMap { metadata: Some(meta("x")), ..Default::default() }.encode_to_vec();
    let mut not_utf8 = not_utf8.clone();
    let at = not_utf8.iter().position(|&b| b == b'x').unwrap();
    not_utf8[at] = 0xff;
    assert!(bad(&envelope("v1", "ConfigMap", &not_utf8)).contains("UTF-8"));
    let revision = apps::ControllerRevision {
        data: Some(k8s_pb::apimachinery::pkg::runtime::RawExtension { raw: Some(b"\x00not json".to_vec()) }),
        ..Default::default()
    };
    assert!(bad(&envelope("apps/v1", "ControllerRevision", &revision.encode_to_vec())).contains("not JSON"));
    // A time out of RFC 3339's range.
    let far = meta::ObjectMeta {
        creation_timestamp: Some(meta::Time { seconds: Some(1 << 62), nanos: None }),
        ..Default::default()
    };
    let far = core::Namespace { metadata: Some(far), ..Default::default() };
    assert!(bad(&envelope("v1", "Namespace", &far.encode_to_vec())).contains("out of range"));
}

#[test]
fn every_truncation_and_corruption_of_a_valid_body_fails_cleanly() {
    let body = envelope("apps/v1", "Deployment", &kubectl_deployment().encode_to_vec());
    for end in 0..body.len() {
        if let Err(e) = decode(&body[..end]) {
            assert!(matches!(e.code, 400 | 415), "{end}: {}", e.message);
        }
    }
    // Every single-byte corruption: an answer, never a panic.
    for i in MAGIC.len()..body.len() {
        for byte in [0x00, 0x07, 0x7f, 0x80, 0xff] {
            let mut corrupt = body.clone();
            corrupt[i] = byte;
            if let Err(e) = decode(&corrupt) {
                assert!(matches!(e.code, 400 | 415), "{}", e.message);
            }
        }
    }
}

#[test]
fn random_garbage_never_panics() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let prefix = envelope("apps/v1", "Deployment", &[]);
    for round in 0..5000 {
        let len = round % 64;
        // Half the rounds are garbage objects in a valid envelope.
        let mut raw = Vec::new();
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            raw.push(state as u8);
        }
        let body = if round % 2 == 0 { [MAGIC, &raw].concat() } else { envelope("apps/v1", "Deployment", &raw) };
        if let Err(e) = decode(&body) {
            assert!(matches!(e.code, 400 | 415), "{}", e.message);
        }
    }
    assert!(decode(&prefix).is_ok());
}

#[test]
fn map_entries_are_written_in_key_order_as_go_writes_them() {
    // Enough labels that a HashMap's order is not the sorted one by chance.
    let labels: serde_json::Map<String, Value> =
        (0..40).map(|i| (format!("label-{:02}", (i * 7) % 40), json!(format!("v{i}")))).collect();
    let quantities = json!({"memory": "64Mi", "cpu": "250m", "ephemeral-storage": "1Gi", "nvidia.com/gpu": "1"});
    let value = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": labels, "annotations": {"b": "2", "a": "1", "c": "3"}},
        "spec": {
            "selector": {"matchLabels": {"tier": "front", "app": "web"}},
            "template": {
                "metadata": {"labels": {"tier": "front", "app": "web"}},
                "spec": {
                    "nodeSelector": {"zone": "a", "disk": "ssd"},
                    "containers": [{
                        "name": "nginx",
                        "image": "nginx",
                        "resources": {"limits": quantities, "requests": quantities},
                    }],
                },
            },
        },
    });
    let bytes = encode(&value).unwrap().unwrap();
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(bytes.strip_prefix(MAGIC).unwrap()).unwrap();
    let raw = unknown.raw.unwrap();
    // k8s-pb keeps maps in BTreeMaps: its encoding has every map in key order, as Go's has.
    let deployment = apps::Deployment::decode(raw.as_slice()).unwrap();
    assert_eq!(deployment.metadata.as_ref().unwrap().labels.len(), 40);
    assert_eq!(raw, deployment.encode_to_vec());
    assert_eq!(encode(&value).unwrap().unwrap(), bytes, "the same bytes each time");
}
