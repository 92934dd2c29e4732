//! The subresources of a Pod that act rather than store a part of it: `binding` (a scheduler
//! assigns the pod to a node) and `eviction` (a delete that honours PodDisruptionBudgets).

use serde_json::{Value, json};

use super::{Api, Reply, Target, WriteOptions};
use gitbacked_core::selector::{LabelSelector, label_selector_text};
use gitbacked_core::status::{ApiResult, Reason, StatusError};
use gitbacked_core::storage::Mutation;
use gitbacked_core::{GroupKind, ObjectKey, StoredObject};

/// What kube-apiserver answers a binding or an eviction that was carried out with.
fn created() -> Reply {
    Reply::json(201, &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}))
}

fn check_kind(body: &Value, kind: &str, versions: &[&str]) -> ApiResult<()> {
    let text = |field: &str| body.get(field).and_then(Value::as_str);
    let wrong_kind = text("kind").is_some_and(|k| k != kind);
    if wrong_kind || text("apiVersion").is_some_and(|v| !versions.contains(&v)) {
        return Err(StatusError::bad_request(format!(
            "the API version in the data ({}) and kind ({}) do not match the URL ({}, {kind})",
            text("apiVersion").unwrap_or_default(),
            text("kind").unwrap_or_default(),
            versions[0]
        )));
    }
    Ok(())
}

impl Api {
    /// `POST pods/{name}/binding`: assigns the pod to the Binding's target node (`spec.nodeName`)
    /// and marks it scheduled; 409 when it is assigned already.
    pub async fn bind(&self, target: &Target, name: &str, binding: Value, opts: &WriteOptions) -> ApiResult<Reply> {
        check_kind(&binding, "Binding", &["v1"])?;
        let node = binding.pointer("/target/name").and_then(Value::as_str).unwrap_or_default().to_string();
        if node.is_empty() {
            return Err(StatusError::invalid(
                "Binding",
                "",
                name,
                vec![("target.name".into(), "Required value".into())],
            ));
        }
        let (t, subject, clock) = (target.clone(), name.to_string(), self.clock.clone());
        let mutate = move |current: Option<&StoredObject>| {
            let current = current.ok_or_else(|| StatusError::not_found(t.subject(&subject)))?;
            let mut pod = current.content();
            if pod.pointer("/metadata/deletionTimestamp").is_some() {
                return Err(StatusError::conflict(
                    t.subject(&subject),
                    &format!("pod {subject} is being deleted, cannot be assigned to a host"),
                ));
            }
            if let Some(assigned) = pod.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()) {
                return Err(StatusError::conflict(
                    t.subject(&subject),
                    &format!("pod {subject} is already assigned to node \"{assigned}\""),
                ));
            }
            if !pod.get("spec").is_some_and(Value::is_object) {
                return Err(StatusError::bad_request(format!("pod {subject} has no spec to assign")));
            }
            pod["spec"]["nodeName"] = Value::String(node.clone());
            let conditions = pod.pointer_mut("/status/conditions").and_then(Value::as_array_mut).map(std::mem::take);
            let mut conditions: Vec<Value> =
                conditions.unwrap_or_default().into_iter().filter(|c| c["type"] != "PodScheduled").collect();
            conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null,
                "lastTransitionTime": clock.timestamp()}));
            if !pod.get("status").is_some_and(Value::is_object) {
                pod["status"] = json!({});
            }
            pod["status"]["conditions"] = Value::Array(conditions);
            Ok(Mutation::Put(pod))
        };
        self.write(target, target.key(name), "bind", opts, Box::new(mutate)).await?;
        Ok(created())
    }

    /// `POST pods/{name}/eviction`: deletes the pod, unless the PodDisruptionBudget that covers it
    /// allows no disruption (429), and counts the disruption in the budget's status.
    pub async fn evict(&self, target: &Target, name: &str, eviction: Value, opts: &WriteOptions) -> ApiResult<Reply> {
        check_kind(&eviction, "Eviction", &["policy/v1", "policy/v1beta1"])?;
        let key = target.key(name);
        let pod = self.storage.get(&key).ok_or_else(|| StatusError::not_found(target.subject(name)))?.value();
        let options = eviction.get("deleteOptions").cloned().unwrap_or(Value::Null);
        // Pods not running (or already going) disrupt nothing, as kube-apiserver's eviction sees it.
        let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Pending");
        let ignores_budgets =
            matches!(phase, "Pending" | "Succeeded" | "Failed") || pod.pointer("/metadata/deletionTimestamp").is_some();
        if !ignores_budgets {
            self.take_disruption(&key, &pod, opts).await?;
        }
        self.delete(target, name, &options, opts).await?;
        Ok(created())
    }

    /// Counts one disruption against the budget covering `pod`, or refuses (429).
    async fn take_disruption(&self, key: &ObjectKey, pod: &Value, opts: &WriteOptions) -> ApiResult<()> {
        let labels = pod.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
        let label = |k: &str| labels.get(k).and_then(Value::as_str);
        let gk = GroupKind { group: "policy".into(), kind: "PodDisruptionBudget".into() };
        let (_, budgets) = self.storage.list(&gk, Some(&key.namespace));
        let covering: Vec<StoredObject> = budgets
            .iter()
            .filter(|b| {
                let selector = b.value().pointer("/spec/selector").cloned().unwrap_or(Value::Null);
                let parsed = label_selector_text(&selector).and_then(|t| LabelSelector::parse(&t).ok());
                !selector.is_null() && parsed.is_some_and(|s| s.matches(label))
            })
            .map(|b| (**b).clone())
            .collect();
        let budget = match covering.as_slice() {
            [] => return Ok(()),
            [one] => one,
            _ => {
                return Err(StatusError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
        };
        let value = budget.value();
        let status = value.get("status").cloned().unwrap_or(json!({}));
        let number = |field: &str| status.get(field).and_then(Value::as_i64).unwrap_or(0);
        let generation = value.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
        let why = if number("observedGeneration") < generation {
            Some(format!("The disruption budget {} is still being processed by the server.", budget.key.name))
        } else if number("disruptionsAllowed") <= 0 {
            Some(format!(
                "The disruption budget {} needs {} healthy pods and has {} currently",
                budget.key.name,
                number("desiredHealthy"),
                number("currentHealthy")
            ))
        } else {
            None
        };
        if let Some(why) = why {
            let mut refused = StatusError::new(
                Reason::TooManyRequests,
                "Cannot evict pod as it would violate the pod's disruption budget.",
            );
            refused.details = Some(json!({"causes": [{"reason": "DisruptionBudget", "message": why}]}));
            return Err(refused);
        }
        let budgets = self.target("policy", "v1", "poddisruptionbudgets", Some(&key.namespace))?;
        let (pod_name, now, expected) = (key.name.clone(), self.clock.timestamp(), budget.derived.resource_version);
        let mutate = move |current: Option<&StoredObject>| {
            let current = current.ok_or_else(|| StatusError::conflict(budgets_subject(), "the budget is gone"))?;
            if current.derived.resource_version != expected {
                return Err(StatusError::conflict(budgets_subject(), "the budget changed; try again"));
            }
            let mut content = current.content();
            let allowed = content.pointer("/status/disruptionsAllowed").and_then(Value::as_i64).unwrap_or(0);
            if !content.get("status").is_some_and(Value::is_object) {
                content["status"] = json!({});
            }
            content["status"]["disruptionsAllowed"] = json!(allowed - 1);
            if !content["status"].get("disruptedPods").is_some_and(Value::is_object) {
                content["status"]["disruptedPods"] = json!({});
            }
            content["status"]["disruptedPods"][&pod_name] = json!(now);
            Ok(Mutation::Put(content))
        };
        self.write(&budgets, budget.key.clone(), "evict a pod under", opts, Box::new(mutate)).await?;
        Ok(())
    }
}

fn budgets_subject() -> gitbacked_core::status::Subject<'static> {
    gitbacked_core::status::Subject { group: "policy", resource: "poddisruptionbudgets", name: "" }
}
