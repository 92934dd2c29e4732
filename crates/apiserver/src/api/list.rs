//! LIST: selectors, and pagination over a consistent snapshot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::Value;

use super::selector::{FieldSelector, LabelSelector};
use super::{Api, Format, Reply, Target, table};
use gitbacked_core::StoredObject;
use gitbacked_core::status::{ApiResult, StatusError};

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
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<String>,
}

/// The filters of a list or watch.
#[derive(Clone, Debug)]
pub struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
    namespace: Option<String>,
}

/// Fields every kind can be selected by, and the extra ones kube-apiserver supports per kind.
fn supported_fields(target: &Target) -> Vec<&'static str> {
    let mut fields = vec!["metadata.name", "metadata.namespace"];
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
        Ok(Filter { labels, fields, namespace: target.namespace.clone() })
    }

    /// Whether an object passes the filters.
    pub fn matches(&self, obj: &StoredObject) -> bool {
        if self.namespace.as_ref().is_some_and(|ns| ns != &obj.key.namespace)
            || !self.labels.matches(|k| obj.labels.get(k))
        {
            return false;
        }
        let needs_body = self.fields.fields().any(|f| !f.starts_with("metadata."));
        let value = needs_body.then(|| obj.value());
        self.fields.matches(|field| match field {
            "metadata.name" => Some(obj.key.name.clone()),
            "metadata.namespace" => Some(obj.key.namespace.clone()),
            other => match value.as_ref()?.pointer(&format!("/{}", other.replace('.', "/")))? {
                Value::String(s) => Some(s.clone()),
                v => Some(v.to_string()),
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
    revision: u64,
    items: Items,
}

impl Snapshots {
    fn keep(&self, revision: u64, items: Items) -> u64 {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let mut lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        lists.retain(|_, s| now.duration_since(s.taken) < SNAPSHOT_TTL);
        let oldest = lists.iter().min_by_key(|(_, s)| s.taken).map(|(id, _)| *id);
        if let Some(oldest) = oldest.filter(|_| lists.len() >= MAX_SNAPSHOTS) {
            lists.remove(&oldest);
        }
        lists.insert(id, Snapshot { taken: now, revision, items });
        id
    }

    fn find(&self, id: u64) -> Option<(u64, Items)> {
        let lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        lists.get(&id).filter(|s| s.taken.elapsed() < SNAPSHOT_TTL).map(|s| (s.revision, s.items.clone()))
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
    /// The objects a list selects, with the resourceVersion of the state they come from.
    pub(super) fn select(&self, target: &Target, params: &ListParams) -> ApiResult<(u64, Vec<Arc<StoredObject>>)> {
        let filter = Filter::new(target, params)?;
        let (revision, items) = self.storage.list(&target.rt.group_kind(), target.namespace.as_deref());
        Ok((revision, items.into_iter().filter(|o| filter.matches(o)).collect()))
    }

    /// LIST.
    pub fn list(&self, target: &Target, params: &ListParams, format: Format) -> ApiResult<Reply> {
        let (revision, items, offset) = match &params.continue_token {
            Some(token) => {
                let (id, offset) =
                    decode_token(token).ok_or_else(|| StatusError::bad_request("invalid continue token"))?;
                let (revision, items) = self.snapshots.find(id).ok_or_else(|| {
                    StatusError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
                })?;
                (revision, items, offset)
            }
            None => {
                let (revision, items) = self.select(target, params)?;
                if params.resource_version_match.as_deref() == Some("Exact")
                    && params.resource_version.as_deref().is_some_and(|rv| rv != revision.to_string())
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
                None => self.snapshots.keep(revision, items.clone()),
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
        let mut body = BytesMut::with_capacity(head.len() + page.iter().map(|o| o.json.len() + 1).sum::<usize>() + 16);
        body.put_slice(&head[..head.len() - 1]);
        body.put_slice(b",\"items\":[");
        for (i, obj) in page.iter().enumerate() {
            if i > 0 {
                body.put_u8(b',');
            }
            body.put_slice(&self.item(target, obj, format));
        }
        body.put_slice(b"]}");
        Ok(Reply::bytes(200, Bytes::from(body)))
    }
}
