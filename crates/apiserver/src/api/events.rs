//! Events are one resource with two views, as in kube-apiserver: core/v1 `Event` is how they are
//! stored, and events.k8s.io/v1 `Event` reads and writes the same objects under other field
//! names (kube-apiserver's conversion between the two): an Event written through one API is read
//! through the other, so kube-runtime's `Recorder` events show in `kubectl get events`.

use serde_json::{Map, Value};

use gitbacked_core::GroupKind;

/// core/v1 field names and their events.k8s.io/v1 names; the other fields are the same in both.
const RENAMED: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// Whether `gk` is the events.k8s.io view of core Events.
pub(super) fn is_view(gk: &GroupKind) -> bool {
    gk.group == "events.k8s.io" && gk.kind == "Event"
}

/// The kind Events are stored as.
pub(super) fn stored_kind() -> GroupKind {
    GroupKind { group: String::new(), kind: "Event".into() }
}

/// A core/v1 Event as events.k8s.io/v1 shows it.
pub(super) fn to_view(event: Value) -> Value {
    rename(event, |(core, view)| (core, view), "events.k8s.io/v1")
}

/// An events.k8s.io/v1 Event as core/v1 stores it.
pub(super) fn to_stored(event: Value) -> Value {
    rename(event, |(core, view)| (view, core), "v1")
}

fn rename(
    event: Value,
    direction: fn((&'static str, &'static str)) -> (&'static str, &'static str),
    api_version: &str,
) -> Value {
    let Value::Object(fields) = event else { return event };
    let mut out = Map::with_capacity(fields.len());
    for (key, value) in fields {
        let renamed = RENAMED.iter().map(|pair| direction(*pair)).find(|(from, _)| *from == key).map(|(_, to)| to);
        let key = match (key.as_str(), renamed) {
            ("apiVersion", _) => {
                out.insert(key, Value::String(api_version.to_string()));
                continue;
            }
            (_, Some(to)) => to.to_string(),
            (_, None) => key,
        };
        out.insert(key, value);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_two_views_are_one_event() {
        let core = json!({"kind": "Event", "apiVersion": "v1", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Started", "message": "started",
            "source": {"component": "kubelet"}, "count": 2, "type": "Normal", "reportingComponent": "c"});
        let view = to_view(core.clone());
        assert_eq!(
            view,
            json!({"kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": {"name": "e"},
            "regarding": {"kind": "Pod", "name": "p"}, "reason": "Started", "note": "started",
            "deprecatedSource": {"component": "kubelet"}, "deprecatedCount": 2, "type": "Normal",
            "reportingController": "c"})
        );
        assert_eq!(to_stored(view), core);
    }
}
