//! LIST: selectors, and pagination over a consistent snapshot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use super::{Api, Format, Reply, Target, table};
use gitbacked_core::schema::Node;
use gitbacked_core::selector::{FieldSelector, LabelSelector};
use gitbacked_core::status::{ApiResult, StatusError};
use gitbacked_core::{GroupKind, StoredObject};

/// How long a continue token stays valid.
const SNAPSHOT_TTL: Duration = Duration::from_secs(300);
/// How many paginated lists may be in progress at once.
const MAX_SNAPSHOTS: usize = 256;

/// Query parameters of a LIST (and of a WATCH's filters).
#[derive(Clone, Debug, Default)]
pub struct ListParams {
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// `limit`.
    pub limit: Option<usize>,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `resourceVersion`; `None` when unset or empty (the most recent state).
    pub resource_version: Option<u64>,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<ResourceVersionMatch>,
}

/// `resourceVersionMatch`: how a LIST's `resourceVersion` is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceVersionMatch {
    /// Any state at least as new as the resourceVersion.
    NotOlderThan,
    /// Exactly the state at the resourceVersion.
    Exact,
}

impl std::str::FromStr for ResourceVersionMatch {
    type Err = StatusError;

    fn from_str(s: &str) -> ApiResult<Self> {
        match s {
            "NotOlderThan" => Ok(ResourceVersionMatch::NotOlderThan),
            "Exact" => Ok(ResourceVersionMatch::Exact),
            other => Err(list_options_invalid(format!(
                "Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""
            ))),
        }
    }
}

/// 422 Invalid `ListOptions`, as kube-apiserver answers options that break its rules.
fn list_options_invalid(message: String) -> StatusError {
    StatusError::invalid("ListOptions", "meta.k8s.io", "", vec![("resourceVersionMatch".into(), message)])
}

/// How long a LIST waits for a resourceVersion newer than the store's before 504 Timeout (as
/// kube-apiserver's watch cache waits).
const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

impl ListParams {
    /// Checks the options as kube-apiserver does (`ValidateListOptions`), for a LIST or, with
    /// `watch`, a WATCH that sends its initial events.
    pub fn validate(&self, watch: bool) -> ApiResult<()> {
        let Some(matching) = self.resource_version_match else { return Ok(()) };
        let forbidden = |why: &str| Err(list_options_invalid(format!("Forbidden: {why}")));
        if self.continue_token.is_some() {
            return forbidden("resourceVersionMatch is forbidden when continue is provided");
        }
        if watch {
            if matching != ResourceVersionMatch::NotOlderThan {
                return Err(list_options_invalid(
                    "Unsupported value: \"Exact\": supported values: \"NotOlderThan\"".into(),
                ));
            }
            return Ok(());
        }
        match (self.resource_version, matching) {
            (None, _) => forbidden("resourceVersionMatch is forbidden unless resourceVersion is provided"),
            (Some(0), ResourceVersionMatch::Exact) => {
                forbidden("resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"")
            }
            _ => Ok(()),
        }
    }
}

/// The filters of a list or watch.
#[derive(Clone, Debug)]
pub struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
    namespace: Option<String>,
    /// The zero value of each selected field, which an object without the field has
    /// (`spec.unschedulable=false` selects a Node that does not set it), as kube-apiserver's field sets.
    zeros: HashMap<String, &'static str>,
}

/// Fields every kind can be selected by, the extra ones kube-apiserver supports per kind, and a
/// CRD version's `selectableFields`.
fn supported_fields(target: &Target) -> Vec<&str> {
    let mut fields = vec!["metadata.name", "metadata.namespace"];
    let selectable = target.rt.selectable_fields.get(&target.version).into_iter().flatten();
    fields.extend(selectable.map(String::as_str));
    fields.extend_from_slice(match (target.rt.group.as_str(), target.rt.kind.as_str()) {
        ("", "Event") | ("events.k8s.io", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
            "regarding.kind",
            "regarding.name",
            "regarding.namespace",
        ][..],
        ("", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
        ][..],
        ("", "Secret") => &["type"][..],
        ("", "Namespace") => &["status.phase"][..],
        ("", "Node") => &["spec.unschedulable"][..],
        ("apps", "ReplicaSet") | ("", "ReplicationController") => &["status.replicas"][..],
        ("batch", "Job") => &["status.successful"][..],
        _ => &[][..],
    });
    fields
}

impl Filter {
    /// Parses the selectors of a request.
    pub fn new(target: &Target, params: &ListParams) -> ApiResult<Self> {
        let labels = LabelSelector::parse(params.label_selector.as_deref().unwrap_or_default())?;
        let fields =
            FieldSelector::parse(params.field_selector.as_deref().unwrap_or_default(), &supported_fields(target))?;
        let schema = Node::of(&target.rt, &target.version);
        let zeros = fields
            .fields()
            .map(|field| {
                let node = schema.and_then(|root| field.split('.').try_fold(root, |n, part| n.field(part)));
                let zero = match node.and_then(|n| n.value().get("type")).and_then(Value::as_str) {
                    Some("boolean") => "false",
                    Some("integer" | "number") => "0",
                    _ => "",
                };
                (field.to_string(), zero)
            })
            .collect();
        Ok(Filter { labels, fields, namespace: target.namespace.clone(), zeros })
    }

    /// Whether every object of the target passes the filters: no selector, every namespace.
    pub fn selects_all(&self) -> bool {
        self.namespace.is_none() && self.labels.is_empty() && self.fields.fields().next().is_none()
    }

    /// Whether the filters read no field but the name and namespace (which a modification does
    /// not change).
    pub fn by_labels(&self) -> bool {
        self.fields.fields().all(|f| f.starts_with("metadata."))
    }

    /// Whether an object passes the filters.
    pub fn matches(&self, obj: &StoredObject) -> bool {
        if self.namespace.as_ref().is_some_and(|ns| ns.as_str() != &*obj.key.namespace)
            || !self.labels.matches(|k| obj.labels.get(k))
        {
            return false;
        }
        let needs_body = self.fields.fields().any(|f| !f.starts_with("metadata."));
        let value = needs_body.then(|| obj.value());
        self.fields.matches(|field| match field {
            "metadata.name" => Some(obj.key.name.clone()),
            "metadata.namespace" => Some(obj.key.namespace.to_string()),
            other => match value.as_ref()?.pointer(&format!("/{}", other.replace('.', "/"))) {
                Some(Value::String(s)) => Some(s.clone()),
                None | Some(Value::Null) => self.zeros.get(other).map(|z| z.to_string()),
                Some(v) => Some(v.to_string()),
            },
        })
    }
}

/// Lists being paged through: continue tokens point into them, so every page comes from one
/// consistent state.
#[derive(Default)]
pub(super) struct Snapshots {
    lists: Mutex<HashMap<u64, Snapshot>>,
    next: std::sync::atomic::AtomicU64,
}

/// The selected objects of one list, as they were when its first page was read.
type Items = Arc<Vec<Arc<StoredObject>>>;

struct Snapshot {
    taken: Instant,
    /// The resource listed: a continue token is valid for it alone.
    resource: (GroupKind, Option<String>),
    revision: u64,
    items: Items,
}

/// The resource a LIST reads: its kind, and its namespace (`None` across all).
fn resource_of(target: &Target) -> (GroupKind, Option<String>) {
    (target.stored_kind(), target.namespace.clone())
}

impl Snapshots {
    fn keep(&self, target: &Target, revision: u64, items: Items) -> u64 {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let mut lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        lists.retain(|_, s| now.duration_since(s.taken) < SNAPSHOT_TTL);
        let oldest = lists.iter().min_by_key(|(_, s)| s.taken).map(|(id, _)| *id);
        if let Some(oldest) = oldest.filter(|_| lists.len() >= MAX_SNAPSHOTS) {
            lists.remove(&oldest);
        }
        lists.insert(id, Snapshot { taken: now, resource: resource_of(target), revision, items });
        id
    }

    /// The snapshot of a continue token: 400 when it was issued for another resource, 410 when
    /// it is gone.
    fn find(&self, id: u64, target: &Target) -> ApiResult<(u64, Items)> {
        let lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        match lists.get(&id).filter(|s| s.taken.elapsed() < SNAPSHOT_TTL) {
            Some(s) if s.resource == resource_of(target) => Ok((s.revision, s.items.clone())),
            Some(_) => Err(StatusError::bad_request("invalid continue token: it was issued for another resource")),
            None => Err(StatusError::gone(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            )),
        }
    }
}

fn encode_token(id: u64, offset: usize, revision: u64) -> String {
    format!("{id}.{offset}.{revision}")
}

fn decode_token(token: &str) -> Option<(u64, usize)> {
    let mut parts = token.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

impl Api {
    /// Waits until the store has reached the LIST's `resourceVersion` (up to 3 s); 504 Timeout
    /// with `ResourceVersionTooLarge` when it has not, as kube-apiserver answers.
    pub async fn await_resource_version(&self, target: &Target, params: &ListParams) -> ApiResult<()> {
        let Some(wanted) = params.resource_version.filter(|_| params.continue_token.is_none()) else { return Ok(()) };
        let gk = target.stored_kind();
        let mut changes = self.storage.subscribe(&gk);
        let deadline = tokio::time::Instant::now() + FRESHNESS_WAIT;
        loop {
            let current = self.storage.revision(&gk);
            if current >= wanted {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(StatusError::resource_version_too_large(wanted, self.storage.revision(&gk))),
            }
        }
    }

    /// The objects a list selects, with the resourceVersion of the state they come from.
    pub(super) fn select(&self, target: &Target, params: &ListParams) -> ApiResult<(u64, Vec<Arc<StoredObject>>)> {
        let filter = Filter::new(target, params)?;
        let (revision, items) = self.storage.list(&target.stored_kind(), target.namespace.as_deref());
        Ok((revision, items.into_iter().filter(|o| filter.matches(o)).collect()))
    }

    /// LIST.
    pub fn list(&self, target: &Target, params: &ListParams, format: Format) -> ApiResult<Reply> {
        let (revision, items, offset) = match &params.continue_token {
            Some(token) => {
                let (id, offset) =
                    decode_token(token).ok_or_else(|| StatusError::bad_request("invalid continue token"))?;
                let (revision, items) = self.snapshots.find(id, target)?;
                (revision, items, offset)
            }
            None => {
                let (revision, items) = self.select(target, params)?;
                if params.resource_version_match == Some(ResourceVersionMatch::Exact)
                    && params.resource_version.is_some_and(|rv| rv != revision)
                {
                    return Err(StatusError::gone("too old resource version: only the latest state is kept"));
                }
                (revision, Arc::new(items), 0)
            }
        };
        let end = params.limit.filter(|l| *l > 0).map_or(items.len(), |l| (offset + l).min(items.len()));
        let page = items.get(offset..end).unwrap_or_default();
        let mut meta = serde_json::json!({"resourceVersion": revision.to_string()});
        if end < items.len() {
            let id = match &params.continue_token {
                Some(token) => decode_token(token).map(|(id, _)| id).unwrap_or_default(),
                None => self.snapshots.keep(target, revision, items.clone()),
            };
            meta["continue"] = Value::String(encode_token(id, end, revision));
            meta["remainingItemCount"] = Value::from(items.len() - end);
        }
        if let Format::Table(include) = format {
            let rows: Vec<&StoredObject> = page.iter().map(|o| o.as_ref()).collect();
            return Ok(Reply::json(200, &table::table(target, &rows, meta, include, true)));
        }
        // Items are already serialized: splice their bytes instead of building a JSON tree.
        let (api_version, kind) = match format {
            Format::Metadata => ("meta.k8s.io/v1".to_string(), "PartialObjectMetadataList".to_string()),
            _ => (target.api_version(), format!("{}List", target.rt.kind)),
        };
        let head = serde_json::json!({"apiVersion": api_version, "kind": kind, "metadata": meta});
        let head = serde_json::to_vec(&head).unwrap_or_default();
        let items =
            page.iter().map(|o| o.document_json().len() + gitbacked_core::object::DERIVED_JSON_ROOM).sum::<usize>();
        let mut body = Vec::with_capacity(head.len() + items + 16);
        body.extend_from_slice(&head[..head.len() - 1]);
        body.extend_from_slice(b",\"items\":[");
        let serving = super::Serving::of(target);
        for (i, obj) in page.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            self.append_item(&serving, target, obj, format, &mut body);
        }
        body.extend_from_slice(b"]}");
        Ok(Reply::bytes(200, Bytes::from(body)))
    }
}
