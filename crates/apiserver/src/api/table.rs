//! Server-side printing: `meta.k8s.io/v1 Table` answers for `kubectl get`, with the columns a user
//! expects for common built-in kinds and a CRD's `additionalPrinterColumns`.

use serde_json::{Value, json};

use super::Target;
use gitbacked_core::StoredObject;
use gitbacked_core::clock::now;

/// What a Table row carries besides its cells (`includeObject`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter.
    pub fn parse(value: Option<&str>) -> Option<Self> {
        match value {
            None | Some("") | Some("Metadata") => Some(IncludeObject::Metadata),
            Some("None") => Some(IncludeObject::None),
            Some("Object") => Some(IncludeObject::Object),
            Some(_) => None,
        }
    }
}

/// A column: header, type, and how to read its cell from an object.
struct Column {
    name: String,
    kind: &'static str,
    priority: u8,
    cell: Cell,
}

enum Cell {
    Name,
    Age,
    /// A JSONPath (`.spec.replicas`), as CRD printer columns declare.
    Path(String, String),
    /// A computed cell.
    Computed(fn(&Value) -> Value),
}

/// Formats an age as kubectl does (`45s`, `4m30s`, `3h`, `2d5h`, `400d`, `3y20d`).
pub fn human_duration(seconds: i64) -> String {
    if seconds < 0 {
        return "<invalid>".into();
    }
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86_400);
    let with = |a: i64, unit_a: &str, b: i64, unit_b: &str| {
        if b == 0 { format!("{a}{unit_a}") } else { format!("{a}{unit_a}{b}{unit_b}") }
    };
    match () {
        _ if seconds < 120 => format!("{seconds}s"),
        _ if minutes < 10 => with(minutes, "m", seconds % 60, "s"),
        _ if minutes < 180 => format!("{minutes}m"),
        _ if hours < 8 => with(hours, "h", minutes % 60, "m"),
        _ if hours < 48 => format!("{hours}h"),
        _ if hours < 24 * 8 => with(days, "d", hours % 24, "h"),
        _ if days < 365 * 2 => format!("{days}d"),
        _ if days < 365 * 8 => with(days / 365, "y", days % 365, "d"),
        _ => format!("{}y", days / 365),
    }
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp (`2006-01-02T15:04:05Z`).
fn parse_rfc3339(s: &str) -> Option<i64> {
    let (date, time) = s.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':').map(|p| p.split('.').next().unwrap_or(p).parse::<i64>());
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400 + hh * 3600 + mm * 60 + ss)
}

fn age(timestamp: Option<i64>) -> Value {
    match timestamp {
        Some(t) => Value::String(human_duration(now() - t)),
        None => Value::String("<unknown>".into()),
    }
}

/// Evaluates the simple JSONPaths printer columns use: `.a.b`, `.a[0].b`, `.a['b.c']`.
fn json_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = value;
    let mut rest = path.trim().trim_start_matches('{').trim_end_matches('}').trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            current = current.get(&r[..end])?;
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let index = r[..end].trim_matches(['\'', '"']);
            current = match index.parse::<usize>() {
                Ok(i) => current.get(i)?,
                Err(_) => current.get(index)?,
            };
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(current)
}

fn text(value: Option<&Value>) -> Value {
    match value {
        None | Some(Value::Null) => Value::String("<none>".into()),
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => v.clone(),
        Some(v) => Value::String(v.to_string()),
    }
}

fn count(v: &Value, fields: &[&str]) -> Value {
    Value::from(fields.iter().filter_map(|f| v.get(*f).and_then(Value::as_object)).map(|m| m.len()).sum::<usize>())
}

fn int_at(v: &Value, path: &str) -> i64 {
    v.pointer(path).and_then(Value::as_i64).unwrap_or(0)
}

fn joined(v: &Value, list: &str, field: &str) -> Value {
    let items = v.pointer(list).and_then(Value::as_array).into_iter().flatten();
    let values: Vec<&str> = items.filter_map(|i| i.get(field).and_then(Value::as_str)).collect();
    Value::String(if values.is_empty() { "<none>".into() } else { values.join(",") })
}

fn selector(v: &Value, path: &str) -> Value {
    let labels = v.pointer(path).and_then(Value::as_object);
    let pairs: Vec<String> =
        labels.into_iter().flatten().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
    Value::String(if pairs.is_empty() { "<none>".into() } else { pairs.join(",") })
}

fn service_ports(v: &Value) -> Value {
    let ports = v.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten();
    let shown: Vec<String> = ports
        .map(|p| {
            let port = p.get("port").map(|n| n.to_string()).unwrap_or_default();
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort") {
                Some(n) => format!("{port}:{n}/{proto}"),
                None => format!("{port}/{proto}"),
            }
        })
        .collect();
    Value::String(if shown.is_empty() { "<none>".into() } else { shown.join(",") })
}

fn pod_ready(v: &Value) -> Value {
    let statuses = v.pointer("/status/containerStatuses").and_then(Value::as_array);
    let total = v.pointer("/spec/containers").and_then(Value::as_array).map_or(0, Vec::len);
    let ready = statuses.into_iter().flatten().filter(|s| s.get("ready") == Some(&Value::Bool(true))).count();
    Value::String(format!("{ready}/{total}"))
}

fn pod_restarts(v: &Value) -> Value {
    let statuses = v.pointer("/status/containerStatuses").and_then(Value::as_array);
    Value::from(
        statuses.into_iter().flatten().filter_map(|s| s.get("restartCount").and_then(Value::as_i64)).sum::<i64>(),
    )
}

/// An int-or-string as a string, `N/A` where it is not set.
fn or_na(value: Option<&Value>) -> Value {
    match value {
        None | Some(Value::Null) => Value::String("N/A".into()),
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(v) => Value::String(v.to_string()),
    }
}

/// `spec.replicas`, 1 where it is not set.
fn replicas(v: &Value) -> i64 {
    v.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
}

/// A Job's state as kubectl prints it, from its conditions.
fn job_status(v: &Value) -> Value {
    let conditions = v.pointer("/status/conditions").and_then(Value::as_array).into_iter().flatten();
    let holding: Vec<&str> = conditions
        .filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
        .filter_map(|c| c.get("type").and_then(Value::as_str))
        .collect();
    let state = ["Complete", "Failed", "FailureTarget", "SuccessCriteriaMet", "Suspended"]
        .into_iter()
        .find(|s| holding.contains(s))
        .unwrap_or("Running");
    Value::String(state.into())
}

/// A Node's state as kubectl prints it: its Ready condition, and whether it is cordoned.
fn node_status(v: &Value) -> Value {
    let conditions = v.pointer("/status/conditions").and_then(Value::as_array).into_iter().flatten();
    let ready = conditions.into_iter().find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"));
    let mut state = match ready.and_then(|c| c.get("status")).and_then(Value::as_str) {
        Some("True") => "Ready".to_string(),
        Some("False") => "NotReady".to_string(),
        _ => "Unknown".to_string(),
    };
    if v.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
        state.push_str(",SchedulingDisabled");
    }
    Value::String(state)
}

fn col(name: &str, kind: &'static str, priority: u8, cell: Cell) -> Column {
    Column { name: name.into(), kind, priority, cell }
}

fn computed(name: &str, kind: &'static str, priority: u8, f: fn(&Value) -> Value) -> Column {
    col(name, kind, priority, Cell::Computed(f))
}

/// The columns of a kind: the familiar ones for common built-ins, printer columns for CRDs.
fn columns(target: &Target) -> Vec<Column> {
    let rt = &target.rt;
    let name = col("Name", "string", 0, Cell::Name);
    let age = || col("Age", "date", 0, Cell::Age);
    if rt.crd.is_some() {
        let mut cols = vec![name];
        let mut has_age = false;
        for c in &rt.printer_columns {
            let header = c.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
            let path = c.get("jsonPath").and_then(Value::as_str).unwrap_or_default().to_string();
            let kind = match c.get("type").and_then(Value::as_str) {
                Some("integer") => "integer",
                Some("number") => "number",
                Some("boolean") => "boolean",
                Some("date") => "date",
                _ => "string",
            };
            has_age |= kind == "date" && path == ".metadata.creationTimestamp";
            let priority = c.get("priority").and_then(Value::as_u64).unwrap_or(0).min(9) as u8;
            cols.push(col(&header, kind, priority, Cell::Path(path, kind.into())));
        }
        if !has_age {
            cols.push(age());
        }
        return cols;
    }
    let mut cols = vec![name];
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "ConfigMap") => cols.push(computed("Data", "integer", 0, |v| count(v, &["data", "binaryData"]))),
        ("", "Secret") => {
            cols.push(computed("Type", "string", 0, |v| text(v.get("type"))));
            cols.push(computed("Data", "integer", 0, |v| count(v, &["data", "stringData"])));
        }
        ("", "Namespace") => cols.push(computed("Status", "string", 0, |v| {
            Value::String(v.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Active").into())
        })),
        ("apps", "Deployment") => {
            cols.push(computed("Ready", "string", 0, |v| {
                Value::String(format!(
                    "{}/{}",
                    int_at(v, "/status/readyReplicas"),
                    v.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
                ))
            }));
            cols.push(computed("Up-to-date", "integer", 0, |v| Value::from(int_at(v, "/status/updatedReplicas"))));
            cols.push(computed("Available", "integer", 0, |v| Value::from(int_at(v, "/status/availableReplicas"))));
            cols.push(age());
            cols.push(computed("Containers", "string", 1, |v| joined(v, "/spec/template/spec/containers", "name")));
            cols.push(computed("Images", "string", 1, |v| joined(v, "/spec/template/spec/containers", "image")));
            cols.push(computed("Selector", "string", 1, |v| selector(v, "/spec/selector/matchLabels")));
            return cols;
        }
        ("", "Service") => {
            cols.push(computed("Type", "string", 0, |v| {
                Value::String(v.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP").into())
            }));
            cols.push(computed("Cluster-IP", "string", 0, |v| text(v.pointer("/spec/clusterIP"))));
            cols.push(computed("External-IP", "string", 0, |v| {
                let ips = v
                    .pointer("/spec/externalIPs")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","));
                Value::String(ips.filter(|s| !s.is_empty()).unwrap_or_else(|| "<none>".into()))
            }));
            cols.push(computed("Port(s)", "string", 0, service_ports));
            cols.push(age());
            cols.push(computed("Selector", "string", 1, |v| selector(v, "/spec/selector")));
            return cols;
        }
        ("", "Pod") => {
            cols.push(computed("Ready", "string", 0, pod_ready));
            cols.push(computed("Status", "string", 0, |v| {
                Value::String(v.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Pending").into())
            }));
            cols.push(computed("Restarts", "integer", 0, pod_restarts));
            cols.push(age());
            cols.push(computed("IP", "string", 1, |v| text(v.pointer("/status/podIP"))));
            cols.push(computed("Node", "string", 1, |v| text(v.pointer("/spec/nodeName"))));
            return cols;
        }
        ("apps", "ReplicaSet") => {
            cols.push(computed("Desired", "integer", 0, |v| Value::from(replicas(v))));
            cols.push(computed("Current", "integer", 0, |v| Value::from(int_at(v, "/status/replicas"))));
            cols.push(computed("Ready", "integer", 0, |v| Value::from(int_at(v, "/status/readyReplicas"))));
        }
        ("apps", "StatefulSet") => cols.push(computed("Ready", "string", 0, |v| {
            Value::String(format!("{}/{}", int_at(v, "/status/readyReplicas"), replicas(v)))
        })),
        ("apps", "DaemonSet") => {
            cols.push(computed("Desired", "integer", 0, |v| Value::from(int_at(v, "/status/desiredNumberScheduled"))));
            cols.push(computed("Current", "integer", 0, |v| Value::from(int_at(v, "/status/currentNumberScheduled"))));
            cols.push(computed("Ready", "integer", 0, |v| Value::from(int_at(v, "/status/numberReady"))));
            cols.push(computed("Up-to-date", "integer", 0, |v| {
                Value::from(int_at(v, "/status/updatedNumberScheduled"))
            }));
            cols.push(computed("Available", "integer", 0, |v| Value::from(int_at(v, "/status/numberAvailable"))));
            cols.push(computed("Node Selector", "string", 0, |v| selector(v, "/spec/template/spec/nodeSelector")));
        }
        ("batch", "Job") => {
            cols.push(computed("Status", "string", 0, job_status));
            cols.push(computed("Completions", "string", 0, |v| {
                let wanted = v.pointer("/spec/completions").and_then(Value::as_i64).unwrap_or(1);
                Value::String(format!("{}/{wanted}", int_at(v, "/status/succeeded")))
            }));
        }
        ("batch", "CronJob") => {
            cols.push(computed("Schedule", "string", 0, |v| text(v.pointer("/spec/schedule"))));
            cols.push(computed("Timezone", "string", 0, |v| text(v.pointer("/spec/timeZone"))));
            cols.push(computed("Suspend", "boolean", 0, |v| {
                Value::Bool(v.pointer("/spec/suspend") == Some(&Value::Bool(true)))
            }));
            cols.push(computed("Active", "integer", 0, |v| {
                Value::from(v.pointer("/status/active").and_then(Value::as_array).map_or(0, Vec::len))
            }));
            cols.push(computed("Last Schedule", "string", 0, |v| match v.pointer("/status/lastScheduleTime") {
                Some(Value::String(t)) => self::age(parse_rfc3339(t)),
                _ => Value::String("<none>".into()),
            }));
        }
        ("", "Node") => {
            cols.push(computed("Status", "string", 0, node_status));
            cols.push(age());
            cols.push(computed("Version", "string", 0, |v| text(v.pointer("/status/nodeInfo/kubeletVersion"))));
            return cols;
        }
        ("", "ComponentStatus") => {
            cols.push(computed("Status", "string", 0, |v| {
                let healthy = v.pointer("/conditions/0/status").and_then(Value::as_str);
                Value::String(
                    match healthy {
                        Some("True") => "Healthy",
                        Some("False") => "Unhealthy",
                        _ => "Unknown",
                    }
                    .into(),
                )
            }));
            cols.push(computed("Message", "string", 0, |v| text(v.pointer("/conditions/0/message"))));
            cols.push(computed("Error", "string", 0, |v| text(v.pointer("/conditions/0/error"))));
            return cols;
        }
        ("policy", "PodDisruptionBudget") => {
            cols.push(computed("Min Available", "string", 0, |v| or_na(v.pointer("/spec/minAvailable"))));
            cols.push(computed("Max Unavailable", "string", 0, |v| or_na(v.pointer("/spec/maxUnavailable"))));
            cols.push(computed("Allowed Disruptions", "integer", 0, |v| {
                Value::from(int_at(v, "/status/disruptionsAllowed"))
            }));
        }
        ("storage.k8s.io", "StorageClass") => {
            cols.push(computed("Provisioner", "string", 0, |v| text(v.get("provisioner"))));
            cols.push(computed("ReclaimPolicy", "string", 0, |v| text(v.get("reclaimPolicy"))));
            cols.push(computed("VolumeBindingMode", "string", 0, |v| text(v.get("volumeBindingMode"))));
            cols.push(computed("AllowVolumeExpansion", "string", 0, |v| {
                Value::String((v.get("allowVolumeExpansion") == Some(&Value::Bool(true))).to_string())
            }));
        }
        ("", "PersistentVolumeClaim") => {
            cols.push(computed("Status", "string", 0, |v| text(v.pointer("/status/phase"))));
            cols.push(computed("Volume", "string", 0, |v| text(v.pointer("/spec/volumeName"))));
            cols.push(computed("Capacity", "string", 0, |v| text(v.pointer("/status/capacity/storage"))));
            cols.push(computed("Storageclass", "string", 0, |v| text(v.pointer("/spec/storageClassName"))));
        }
        ("coordination.k8s.io", "Lease") => cols.push(computed("Holder", "string", 0, |v| {
            Value::String(v.pointer("/spec/holderIdentity").and_then(Value::as_str).unwrap_or_default().into())
        })),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            cols.push(col("Created At", "date", 0, Cell::Path(".metadata.creationTimestamp".into(), "string".into())));
            return cols;
        }
        _ => {}
    }
    cols.push(age());
    cols
}

fn cell(column: &Column, obj: &StoredObject, value: &Value) -> Value {
    match &column.cell {
        Cell::Name => Value::String(obj.key.name.clone()),
        Cell::Age => age(Some(obj.derived.creation_timestamp)),
        Cell::Path(path, kind) if kind == "date" => {
            age(json_path(value, path).and_then(Value::as_str).and_then(parse_rfc3339))
        }
        Cell::Path(path, _) => match json_path(value, path) {
            None | Some(Value::Null) => Value::String("<none>".into()),
            Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => v.clone(),
            Some(v) => Value::String(v.to_string()),
        },
        Cell::Computed(f) => f(value),
    }
}

/// A Table of objects. `meta` is the list metadata (resourceVersion, continue).
pub fn table(target: &Target, objects: &[&StoredObject], meta: Value, include: IncludeObject, headers: bool) -> Value {
    let columns = columns(target);
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            // As the object is served: with its defaults (a person's Pod shows `Pending`).
            let value = super::live(target, obj);
            let cells: Vec<Value> = columns.iter().map(|c| cell(c, obj, &value)).collect();
            let mut row = json!({"cells": cells});
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": value["metadata"]});
                }
                IncludeObject::Object => row["object"] = value,
            }
            row
        })
        .collect();
    let mut table = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "rows": rows});
    if headers {
        table["columnDefinitions"] = columns
            .iter()
            .map(|c| {
                let format = if matches!(c.cell, Cell::Name) { "name" } else { "" };
                json!({"name": c.name, "type": c.kind, "format": format, "description": c.name, "priority": c.priority})
            })
            .collect();
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl() {
        for (s, expected) in [
            (5, "5s"),
            (119, "119s"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600 + 120, "3h2m"),
            (10 * 3600, "10h"),
            (50 * 3600, "2d2h"),
            (400 * 86_400, "400d"),
            (3 * 365 * 86_400, "3y"),
        ] {
            assert_eq!(human_duration(s), expected, "{s}");
        }
    }

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        let t = gitbacked_core::clock::rfc3339(1_795_612_057);
        assert_eq!(parse_rfc3339(&t), Some(1_795_612_057));
    }

    #[test]
    fn printer_column_paths() {
        let v = json!({"spec": {"count": 3, "items": [{"name": "a"}]}, "metadata": {"labels": {"a.b/c": "x"}}});
        assert_eq!(json_path(&v, ".spec.count"), Some(&json!(3)));
        assert_eq!(json_path(&v, ".spec.items[0].name"), Some(&json!("a")));
        assert_eq!(json_path(&v, ".metadata.labels['a.b/c']"), Some(&json!("x")));
        assert_eq!(json_path(&v, ".spec.missing"), None);
    }
}
