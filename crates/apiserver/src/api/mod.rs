//! Kubernetes API semantics, independent of how objects are stored: get, list, watch, create,
//! update, patch and delete as kube-apiserver does them, against a [`Storage`].

mod admission;
mod authorization;
mod events;
mod pods;

pub use admission::{InvalidServiceCidr, ServiceCidr};
pub mod apply;
mod authentication;
mod crd;
pub mod discovery;
pub mod fieldset;
mod list;
pub mod openapi;
pub mod patch;
pub mod strategic;
pub mod table;
pub mod watch;

#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{Map, Value, json};

use gitbacked_core::defaults;
use gitbacked_core::object::{Derived, metadata_mut, strip_derived};
use gitbacked_core::registry::{ResourceType, api_version, crd_group_kind, split_api_version};
use gitbacked_core::schema::Node;
use gitbacked_core::status::{ApiResult, Reason, StatusError, Subject};
use gitbacked_core::storage::{MutateFn, Mutation, Storage, Write, WriteOutcome};
use gitbacked_core::uid::stable_uid;
use gitbacked_core::validation::{
    InvalidSyntax, NameRule, validate_label_value, validate_name, validate_qualified_name,
};
use gitbacked_core::{Clock, GroupKind, ObjectKey, StoredObject, SystemClock};
pub use list::{ListParams, ResourceVersionMatch};

/// The resource a request addresses: its type, the version it is served at, and the namespace.
#[derive(Clone, Debug)]
pub struct Target {
    /// The resource type.
    pub rt: Arc<ResourceType>,
    /// The version in the URL.
    pub version: String,
    /// The namespace in the URL, if any.
    pub namespace: Option<String>,
}

impl Target {
    /// `apiVersion` of the URL.
    pub fn api_version(&self) -> String {
        api_version(&self.rt.group, &self.version)
    }

    fn key(&self, name: &str) -> ObjectKey {
        let namespace =
            if self.rt.namespaced { self.namespace.clone().unwrap_or_else(|| "default".into()) } else { String::new() };
        ObjectKey::new(self.stored_kind(), namespace, name)
    }

    /// The kind its objects are stored as: their own, but core/v1 Event for events.k8s.io Events
    /// (one resource, two views; see the `events` module).
    pub fn stored_kind(&self) -> GroupKind {
        let gk = self.rt.group_kind();
        if events::is_view(&gk) { events::stored_kind() } else { gk }
    }

    fn subject<'a>(&'a self, name: &'a str) -> Subject<'a> {
        Subject { group: &self.rt.group, resource: &self.rt.plural, name }
    }
}

/// How objects are rendered in answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// The objects themselves.
    #[default]
    Object,
    /// A `meta.k8s.io/v1 Table` (server-side printing for kubectl).
    Table(table::IncludeObject),
    /// `PartialObjectMetadata`: only metadata (kube's metadata watches, `Controller::owns`).
    Metadata,
}

/// A subresource addressed by a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subresource {
    /// `/status`: only `.status` changes.
    Status,
    /// `/scale`: a `autoscaling/v1 Scale` view of the replicas.
    Scale,
    /// `/approval` of a CertificateSigningRequest: only `.status.conditions` changes.
    Approval,
    /// `/ephemeralcontainers` of a Pod: only `.spec.ephemeralContainers` changes.
    EphemeralContainers,
    /// `/finalize` of a Namespace: only `.spec.finalizers` changes.
    Finalize,
}

impl Subresource {
    /// Its name in URLs and commit messages.
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Approval => "approval",
            Subresource::EphemeralContainers => "ephemeralcontainers",
            Subresource::Finalize => "finalize",
        }
    }

    /// The part of the object a write through it changes; `None` for scale, which has a view of
    /// its own.
    fn owns(self) -> Option<&'static [&'static str]> {
        match self {
            Subresource::Status => Some(&["status"]),
            Subresource::Approval => Some(&["status", "conditions"]),
            Subresource::EphemeralContainers => Some(&["spec", "ephemeralContainers"]),
            Subresource::Finalize => Some(&["spec", "finalizers"]),
            Subresource::Scale => None,
        }
    }
}

/// `to` with the value at `path` taken from `from` (removed where `from` has none).
fn replace_at(to: &mut Value, from: &Value, path: &[&str]) {
    let Some((last, parents)) = path.split_last() else { return };
    let taken = parents.iter().try_fold(from, |v, k| v.get(k)).and_then(|v| v.get(last)).cloned();
    let mut target = to;
    for key in parents {
        if !target.is_object() {
            *target = Value::Object(Map::new());
        }
        target = target
            .as_object_mut()
            .map(|m| m.entry(*key).or_insert_with(|| json!({})))
            .unwrap_or_else(|| unreachable!());
    }
    match (target.as_object_mut(), taken) {
        (Some(map), Some(value)) => {
            map.insert(last.to_string(), value);
        }
        (Some(map), None) => {
            map.remove(*last);
        }
        (None, _) => {}
    }
}

/// What to do with fields the type's schema does not declare (`fieldValidation`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Keep going and say so in `Warning` headers (the apiserver's default).
    #[default]
    Warn,
    /// Reject the request with 400 BadRequest.
    Strict,
}

/// Options shared by writes.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: validate and answer, write nothing.
    pub dry_run: bool,
    /// `fieldValidation`.
    pub field_validation: FieldValidation,
    /// `fieldManager` (or the client's user agent): who owns the fields a write sets.
    pub field_manager: Option<String>,
    /// `force`: an apply takes fields other managers own.
    pub force: bool,
}

impl WriteOptions {
    fn manager(&self) -> &str {
        self.field_manager.as_deref().unwrap_or("unknown")
    }
}

/// The kinds of patch bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`
    Json,
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`: built-in types only.
    Strategic,
}

/// The answer to a request: a status code, a JSON body (pre-serialized where possible) and
/// warnings for the client.
#[derive(Clone, Debug, Default)]
pub struct Reply {
    /// HTTP status code.
    pub code: u16,
    /// JSON body.
    pub body: Bytes,
    /// Texts of `Warning` headers.
    pub warnings: Vec<String>,
}

impl Reply {
    /// A JSON answer.
    pub fn json(code: u16, value: &Value) -> Self {
        Reply { code, body: Bytes::from(serde_json::to_vec(value).unwrap_or_default()), warnings: Vec::new() }
    }

    /// An answer whose body is already serialized.
    pub fn bytes(code: u16, body: Bytes) -> Self {
        Reply { code, body, warnings: Vec::new() }
    }
}

/// Checks a request body against the type's schema as `fieldValidation` asks; returns warnings.
fn check_fields(target: &Target, value: &Value, opts: &WriteOptions) -> ApiResult<Vec<String>> {
    if opts.field_validation == FieldValidation::Ignore {
        return Ok(Vec::new());
    }
    let Some(schema) = Node::of(&target.rt, &target.version) else { return Ok(Vec::new()) };
    let unknown = schema.unknown_fields(value);
    match (opts.field_validation, unknown.first()) {
        (_, None) => Ok(Vec::new()),
        (FieldValidation::Strict, Some(_)) => {
            let fields: Vec<String> =
                unknown.iter().map(|f| format!("unknown field \"{}\"", f.trim_start_matches('.'))).collect();
            Err(StatusError::bad_request(format!("strict decoding error: {}", fields.join(", "))))
        }
        _ => Ok(unknown.iter().map(|f| format!("unknown field \"{}\"", f.trim_start_matches('.'))).collect()),
    }
}

/// The Kubernetes API over a storage.
#[derive(Clone)]
pub struct Api {
    storage: Arc<dyn Storage>,
    snapshots: Arc<list::Snapshots>,
    clock: Arc<dyn Clock>,
    token_key: Arc<authentication::TokenKey>,
    services: Arc<admission::ServiceAllocator>,
    /// The watches' dispatchers, one per watched kind.
    dispatchers: Arc<watch::Dispatchers>,
}

impl Api {
    /// The API over `storage`, on the system clock.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        let token_key = Arc::new(authentication::TokenKey::random());
        Api {
            storage,
            snapshots: Arc::default(),
            clock: Arc::new(SystemClock),
            token_key,
            services: Arc::default(),
            dispatchers: Arc::default(),
        }
    }

    /// Service cluster IPs are allocated from `cidr` (default `10.96.0.0/12`).
    pub fn with_service_cidr(mut self, cidr: ServiceCidr) -> Self {
        self.services = Arc::new(admission::ServiceAllocator::new(cidr));
        self
    }

    /// Timestamps the API writes (`deletionTimestamp`, `managedFields`) come from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The clock the API stamps writes with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The storage behind the API.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Resolves `/apis/{group}/{version}/{plural}` to a served type.
    pub fn target(&self, group: &str, version: &str, plural: &str, namespace: Option<&str>) -> ApiResult<Target> {
        let registry = self.storage.registry();
        let rt = registry
            .by_plural(group, version, plural)
            .ok_or_else(|| StatusError::no_route(&format!("{}/{plural}", api_version(group, version))))?;
        if namespace.is_some() && !rt.namespaced {
            return Err(StatusError::no_route(&format!("{plural} is not namespaced")));
        }
        if let Some(ns) = namespace {
            validate_name(ns, NameRule::DnsLabel)
                .map_err(|e| StatusError::bad_request(format!("invalid namespace: {e}")))?;
        }
        Ok(Target { rt: rt.clone(), version: version.to_string(), namespace: namespace.map(str::to_string) })
    }

    /// The object as served at the target's version (see [`live`]), a CRD with its derived status.
    fn served(&self, target: &Target, obj: &StoredObject) -> Bytes {
        self.served_as(&Serving::of(target), target, obj)
    }

    /// [`Api::served`] with what the target decides worked out beforehand (see [`Serving`]).
    fn served_as(&self, serving: &Serving, target: &Target, obj: &StoredObject) -> Bytes {
        if serving.as_stored(obj) {
            if !serving.defaults {
                return obj.json();
            }
            let defaulted = || Box::new(Bytes::from(serde_json::to_vec(&live(target, obj)).unwrap_or_default()));
            return Bytes::clone(obj.defaulted.get_or_init(defaulted));
        }
        let mut value = live(target, obj);
        if serving.crd {
            let stored = self.stored_versions(&obj.key.name);
            value["status"] = crd::status(&self.storage.registry(), &value, &stored);
        }
        // `value` keeps the served order (kind first): apiVersion is replaced in place.
        Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
    }

    /// The versions the objects of the CRD `name` are stored in.
    fn stored_versions(&self, name: &str) -> std::collections::BTreeSet<String> {
        let registry = self.storage.registry();
        let Some(rt) = registry.all().find(|rt| rt.crd.as_deref() == Some(name)) else { return Default::default() };
        let (_, objects) = self.storage.list(&rt.group_kind(), None);
        // Served JSON starts with kind and apiVersion: read it without parsing the rest.
        let lead = gitbacked_core::object::served_prefix(&rt.kind, "");
        let lead = lead.trim_end_matches("\",").as_bytes();
        objects
            .iter()
            .filter_map(|o| {
                let head = o.document_json().strip_prefix(lead);
                let fast = head.and_then(|h| Some(&h[..h.iter().position(|b| *b == b'"')?]));
                let api_version = match fast.map(std::str::from_utf8) {
                    Some(Ok(v)) => v.to_string(),
                    _ => o.value().get("apiVersion")?.as_str()?.to_string(),
                };
                Some(split_api_version(&api_version).1.to_string())
            })
            .collect()
    }

    /// One object as an item of an answer: the object, or its `PartialObjectMetadata`.
    fn item(&self, serving: &Serving, target: &Target, obj: &StoredObject, format: Format) -> Bytes {
        match format {
            Format::Metadata => {
                // Defaults reach metadata too (a Namespace's name label, a Job's labels).
                let value = if has_defaults(&target.rt) { live(target, obj) } else { obj.value() };
                let partial = partial_object_metadata(value.get("metadata").cloned().unwrap_or_default());
                Bytes::from(serde_json::to_vec(&partial).unwrap_or_default())
            }
            _ => self.served_as(serving, target, obj),
        }
    }

    /// Appends [`Api::item`] to an answer that holds many: an object served as it is stored is
    /// written in place rather than copied from bytes of its own.
    fn append_item(&self, serving: &Serving, target: &Target, obj: &StoredObject, format: Format, out: &mut Vec<u8>) {
        match format {
            Format::Object if serving.as_stored(obj) && !serving.defaults => obj.append_json(out),
            _ => out.extend_from_slice(&self.item(serving, target, obj, format)),
        }
    }

    /// GET one object.
    pub fn get(&self, target: &Target, name: &str, format: Format) -> ApiResult<Reply> {
        let obj = self.storage.get(&target.key(name)).ok_or_else(|| StatusError::not_found(target.subject(name)))?;
        match format {
            Format::Object | Format::Metadata => {
                Ok(Reply::bytes(200, self.item(&Serving::of(target), target, &obj, format)))
            }
            Format::Table(include) => {
                let meta = json!({"resourceVersion": obj.derived.resource_version.to_string()});
                Ok(Reply::json(200, &table::table(target, &[&obj], meta, include, true)))
            }
        }
    }

    /// GET a scale subresource.
    pub fn get_scale(&self, target: &Target, name: &str) -> ApiResult<Reply> {
        self.scale_reply(target, &target.key(name))
    }

    /// POST an object.
    pub async fn create(&self, target: &Target, mut body: Value, opts: &WriteOptions) -> ApiResult<Reply> {
        check_kind(target, &body)?;
        // A review is an answer, not an object: nothing is stored.
        match (target.rt.group.as_str(), target.rt.kind.as_str()) {
            ("authentication.k8s.io", "TokenReview") => return self.review_token(body),
            (group, kind) if authorization::is_review(group, kind) => {
                return self.review(kind, &target.api_version(), body);
            }
            // A Binding binds the pod it names (as `pods/{name}/binding` does).
            ("", "Binding") => {
                let name = body.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
                let pods = self.target("", "v1", "pods", target.namespace.as_deref())?;
                return self.bind(&pods, &name, body, opts).await;
            }
            _ => {}
        }
        let warnings = check_fields(target, &body, opts)?;
        let meta = metadata_mut(&mut body);
        let name = match (meta.get("name").and_then(Value::as_str), meta.get("generateName").and_then(Value::as_str)) {
            (Some(n), _) if !n.is_empty() => n.to_string(),
            (_, Some(prefix)) if !prefix.is_empty() => format!("{prefix}{}", random_suffix()),
            _ => {
                return Err(StatusError::invalid(
                    &target.rt.kind,
                    &target.rt.group,
                    "",
                    vec![("metadata.name".into(), "Required value: name or generateName is required".into())],
                ));
            }
        };
        meta.insert("name".into(), Value::String(name.clone()));
        let key = self.key_for_body(target, &name, &body)?;
        self.check_crd_not_terminating(target)?;
        self.check_namespace_lifecycle(target, &key)?;
        let content = prepare_new(target, &key, body)?;
        let subject = (target.rt.group.clone(), target.rt.plural.clone(), name.clone());
        let mutate = move |current: Option<&StoredObject>| match current {
            Some(_) => {
                Err(StatusError::already_exists(Subject { group: &subject.0, resource: &subject.1, name: &subject.2 }))
            }
            None => Ok(Mutation::Put(content.clone())),
        };
        let reply = self.write(target, key, "create", opts, Box::new(mutate)).await?;
        Ok(Reply { code: 201, warnings, ..reply })
    }

    /// PUT an object or its status.
    pub async fn update(
        &self,
        target: &Target,
        name: &str,
        body: Value,
        sub: Option<Subresource>,
        opts: &WriteOptions,
    ) -> ApiResult<Reply> {
        // A Scale is written to /scale, in autoscaling/v1 whatever the object's version.
        if sub == Some(Subresource::Scale) {
            return self.update_scale(target, name, body, opts).await;
        }
        check_kind(target, &body)?;
        let warnings = check_fields(target, &body, opts)?;
        let body_name = body.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        if body_name != name {
            return Err(StatusError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let key = self.key_for_body(target, name, &body)?;
        let t = target.clone();
        let manager = opts.manager().to_string();
        let subject_name = name.to_string();
        let clock = self.clock.clone();
        let mutate = move |current: Option<&StoredObject>| {
            let current = current.ok_or_else(|| StatusError::not_found(t.subject(&subject_name)))?;
            check_preconditions(&t, current, &body)?;
            settle(&t, current, body.clone(), sub, Some(&manager), &clock.timestamp())
        };
        let verb = sub.map_or("update".to_string(), |s| format!("update {} of", s.name()));
        let reply = self.write(target, key, &verb, opts, Box::new(mutate)).await?;
        Ok(Reply { warnings, ..reply })
    }

    /// PATCH an object or its status.
    pub async fn patch(
        &self,
        target: &Target,
        name: &str,
        kind: PatchType,
        patch: Value,
        sub: Option<Subresource>,
        opts: &WriteOptions,
    ) -> ApiResult<Reply> {
        if kind == PatchType::Strategic && target.rt.crd.is_some() {
            return Err(StatusError::unsupported_media_type(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ));
        }
        let warnings = match (kind, sub) {
            (PatchType::Merge | PatchType::Strategic, sub) if sub != Some(Subresource::Scale) => {
                check_fields(target, &patch, opts)?
            }
            _ => Vec::new(),
        };
        let key = target.key(name);
        let t = target.clone();
        let manager = opts.manager().to_string();
        let subject_name = name.to_string();
        let clock = self.clock.clone();
        let mutate = move |current: Option<&StoredObject>| {
            let current = current.ok_or_else(|| StatusError::not_found(t.subject(&subject_name)))?;
            let served = live(&t, current);
            if sub == Some(Subresource::Scale) {
                let scale = scale_of(&t, current)?;
                let patched = apply_patch(kind, &scale, &patch, Node::builtin("autoscaling", "v1", "Scale"))?;
                check_preconditions(&t, current, &patched)?;
                return scaled(&t, current, &patched);
            }
            let patched = apply_patch(kind, &served, &patch, Node::of(&t.rt, &t.version))?;
            check_kind(&t, &patched)?;
            if name_of(&patched) != subject_name {
                return Err(StatusError::bad_request("metadata.name cannot be changed by a patch"));
            }
            check_preconditions(&t, current, &patched)?;
            settle(&t, current, patched, sub, Some(&manager), &clock.timestamp())
        };
        let verb = sub.map_or("patch".to_string(), |s| format!("patch {} of", s.name()));
        let reply = self.write(target, key.clone(), &verb, opts, Box::new(mutate)).await?;
        if sub == Some(Subresource::Scale) && !opts.dry_run {
            return self.scale_reply(target, &key);
        }
        Ok(Reply { warnings, ..reply })
    }

    /// Server-side apply (`application/apply-patch+yaml`): merges the applied configuration by
    /// field ownership, creating the object when it is missing; 409 on conflicts unless forced.
    pub async fn apply(
        &self,
        target: &Target,
        name: &str,
        mut config: Value,
        sub: Option<Subresource>,
        opts: &WriteOptions,
    ) -> ApiResult<Reply> {
        let manager = opts
            .field_manager
            .clone()
            .ok_or_else(|| StatusError::bad_request("PATCH, fieldManager is required for apply requests"))?;
        check_kind(target, &config)?;
        // An applied configuration may leave the name to the URL, as kube-apiserver allows.
        if name_of(&config).is_empty() {
            metadata_mut(&mut config).insert("name".into(), Value::String(name.to_string()));
        }
        if name_of(&config) != name {
            return Err(StatusError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                name_of(&config)
            )));
        }
        let warnings = check_fields(target, &config, opts)?;
        if target.rt.crd.is_none() {
            defaults::apply_list_keys(&target.rt.group_kind(), &target.version, &mut config);
        }
        if sub.is_none() && target.rt.status {
            // Status is applied through /status only.
            config.as_object_mut().map(|c| c.remove("status"));
        }
        let key = self.key_for_body(target, name, &config)?;
        let created = self.storage.get(&key).is_none();
        if created {
            self.check_crd_not_terminating(target)?;
            self.check_namespace_lifecycle(target, &key)?;
        }
        let (t, force, k) = (target.clone(), opts.force, key.clone());
        let clock = self.clock.clone();
        let mutate = move |current: Option<&StoredObject>| {
            let schema = Node::of(&t.rt, &t.version);
            let now = clock.timestamp();
            let live = current.map(|c| live(&t, c));
            let applied =
                apply::server_side_apply(live.as_ref(), &config, &manager, force, schema, &t.api_version(), &now)?;
            match current {
                None if sub.is_some() => Err(StatusError::not_found(t.subject(&k.name))),
                None => prepare_new(&t, &k, applied).map(Mutation::Put),
                Some(current) => {
                    check_preconditions(&t, current, &applied)?;
                    settle(&t, current, applied, sub, None, &now)
                }
            }
        };
        let reply = self.write(target, key, "apply", opts, Box::new(mutate)).await?;
        Ok(Reply { code: if created && !opts.dry_run { 201 } else { reply.code }, warnings, ..reply })
    }

    /// DELETE an object: marks it (deletionTimestamp) while it has finalizers, removes it otherwise.
    /// `propagationPolicy` Orphan and Foreground add the garbage collector's finalizer (see
    /// the garbage collector); Background, the default, leaves the dependents to the collector.
    pub async fn delete(&self, target: &Target, name: &str, options: &Value, opts: &WriteOptions) -> ApiResult<Reply> {
        let key = target.key(name);
        let t = target.clone();
        let mut finalizers: Vec<&str> = propagation_finalizer(options)?.into_iter().collect();
        // A CRD goes only once its custom resources are gone (see `crd_finalizer`).
        if *key.gk == crd_group_kind() {
            finalizers.push(crate::finalizers::CUSTOM_RESOURCE_CLEANUP);
        }
        let preconditions = options.get("preconditions").cloned().unwrap_or(Value::Null);
        let subject_name = name.to_string();
        let clock = self.clock.clone();
        let mutate = move |current: Option<&StoredObject>| {
            let current = current.ok_or_else(|| StatusError::not_found(t.subject(&subject_name)))?;
            check_deletable(&t, current)?;
            let check = json!({"metadata": {
                "uid": preconditions.get("uid").cloned().unwrap_or(Value::Null),
                "resourceVersion": preconditions.get("resourceVersion").cloned().unwrap_or(Value::Null)}});
            check_preconditions(&t, current, &check)?;
            let mut content = current.content();
            let meta = metadata_mut(&mut content);
            for finalizer in &finalizers {
                let list = meta.entry("finalizers").or_insert_with(|| Value::Array(Vec::new()));
                if let Some(list) = list.as_array_mut().filter(|l| !l.iter().any(|f| f == finalizer)) {
                    list.push(Value::from(*finalizer));
                }
            }
            if !holds_deletion(&current.key.gk, &content) {
                return Ok(Mutation::Delete);
            }
            let meta = metadata_mut(&mut content);
            if !meta.contains_key("deletionTimestamp") {
                meta.insert("deletionTimestamp".into(), Value::String(clock.timestamp()));
                meta.insert("deletionGracePeriodSeconds".into(), Value::from(0));
            }
            Ok(Mutation::Put(content))
        };
        let reply = self.write(target, key, "delete", opts, Box::new(mutate)).await?;
        Ok(reply)
    }

    /// DELETE a collection: every object the selectors match, one by one.
    pub async fn delete_collection(
        &self,
        target: &Target,
        params: &ListParams,
        options: &Value,
        opts: &WriteOptions,
    ) -> ApiResult<Reply> {
        let (_, items) = self.select(target, params)?;
        let mut deleted = Vec::new();
        for obj in items {
            let scoped =
                Target { namespace: Some(obj.key.namespace.to_string()).filter(|n| !n.is_empty()), ..target.clone() };
            match self.delete(&scoped, &obj.key.name, options, opts).await {
                Ok(_) => deleted.push(serde_json::from_slice::<Value>(&self.served(target, &obj)).unwrap_or_default()),
                Err(e) if e.reason == Reason::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let list = json!({"apiVersion": target.api_version(), "kind": format!("{}List", target.rt.kind),
            "metadata": {"resourceVersion": self.storage.revision(&target.stored_kind()).to_string()}, "items": deleted});
        Ok(Reply::json(200, &list))
    }

    /// Refuses (405) to create a custom resource while its CRD is being deleted, as apiextensions does.
    fn check_crd_not_terminating(&self, target: &Target) -> ApiResult<()> {
        let Some(crd) = &target.rt.crd else { return Ok(()) };
        let key = ObjectKey::new(crd_group_kind(), "", crd.clone());
        let terminating =
            self.storage.get(&key).is_some_and(|c| c.value().pointer("/metadata/deletionTimestamp").is_some());
        match terminating {
            true => Err(StatusError::method_not_allowed(
                "create not allowed while custom resource definition is terminating",
            )),
            false => Ok(()),
        }
    }

    /// NamespaceLifecycle: nothing is created in a namespace that does not exist (404), or that is
    /// being deleted (403).
    fn check_namespace_lifecycle(&self, target: &Target, key: &ObjectKey) -> ApiResult<()> {
        if key.namespace.is_empty() {
            return Ok(());
        }
        let gk = GroupKind { group: String::new(), kind: "Namespace".into() };
        let namespace = ObjectKey::new(gk, "", key.namespace.to_string());
        let system = gitbacked_core::bootstrap::SYSTEM_NAMESPACES.contains(&&*key.namespace);
        let found = self.storage.get(&namespace);
        if found.is_none() && system {
            // They always exist, whatever a storage holds.
            return Ok(());
        }
        let found = found.ok_or_else(|| {
            StatusError::not_found(Subject { group: "", resource: "namespaces", name: &key.namespace })
        })?;
        match found.value().pointer("/metadata/deletionTimestamp") {
            Some(_) => Err(StatusError::forbidden(format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                target.rt.plural, key.name, key.namespace
            ))),
            None => Ok(()),
        }
    }

    /// The key of an object sent in a body, checking its namespace against the URL.
    fn key_for_body(&self, target: &Target, name: &str, body: &Value) -> ApiResult<ObjectKey> {
        let namespace = body.pointer("/metadata/namespace").and_then(Value::as_str).filter(|n| !n.is_empty());
        if target.rt.namespaced {
            if target.namespace.is_none() {
                return Err(StatusError::method_not_allowed(format!(
                    "{} is namespaced: write it under /namespaces/{{namespace}}",
                    target.rt.plural
                )));
            }
            if namespace.is_some_and(|n| Some(n) != target.namespace.as_deref()) {
                return Err(StatusError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        validate_name(name, target.rt.name_rule()).map_err(|e| {
            StatusError::invalid(
                &target.rt.kind,
                &target.rt.group,
                name,
                vec![("metadata.name".into(), format!("Invalid value: {e}"))],
            )
        })?;
        Ok(target.key(name))
    }

    async fn write(
        &self,
        target: &Target,
        key: ObjectKey,
        verb: &str,
        opts: &WriteOptions,
        mut mutate: MutateFn,
    ) -> ApiResult<Reply> {
        // The last content a mutation asked for: the answer when removing the last finalizer deletes.
        let last: Arc<Mutex<Option<Value>>> = Arc::default();
        let description = format!("{verb} {} {} {}", target.api_version(), target.rt.kind, display_name(&key));
        // Written through the events.k8s.io view, an Event is stored as core/v1 has it.
        let view = events::is_view(&target.rt.group_kind());
        let mut mutate: MutateFn = Box::new(move |current: Option<&StoredObject>| match mutate(current)? {
            Mutation::Put(content) if view => Ok(Mutation::Put(events::to_stored(content))),
            mutation => Ok(mutation),
        });
        if opts.dry_run {
            let current = self.storage.get(&key);
            let mut mutation = mutate(current.as_deref())?;
            admission::admit(self.storage.as_ref(), &self.services, &key, current.as_deref(), &mut mutation)?;
            return Ok(self.preview(target, &key, current.as_deref(), mutation));
        }
        let remember = last.clone();
        let (storage, services, admitted) = (self.storage.clone(), self.services.clone(), key.clone());
        let wrapped = move |current: Option<&StoredObject>| {
            // The parts of a write, timed by the bench's `write-costs` (issue 15).
            let mut mutation =
                tracing::trace_span!(target: "gitbacked::cost", "mutate").in_scope(|| mutate(current))?;
            tracing::trace_span!(target: "gitbacked::cost", "admission")
                .in_scope(|| admission::admit(storage.as_ref(), &services, &admitted, current, &mut mutation))?;
            if let (Mutation::Delete, Some(c)) = (&mutation, current) {
                *remember.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.content());
            }
            Ok(mutation)
        };
        let outcome = self.storage.write(Write { key: key.clone(), description, mutate: Box::new(wrapped) }).await?;
        Ok(match outcome {
            WriteOutcome::Stored(obj) => Reply::bytes(200, self.served(target, &obj)),
            // The registries of some kinds answer a deletion with the object deleted.
            WriteOutcome::Deleted(before) if verb == "delete" && returns_deleted_object(&target.rt) => {
                Reply::bytes(200, self.served(target, &before))
            }
            WriteOutcome::Deleted(before)
                if verb == "delete" || before.value().pointer("/metadata/deletionTimestamp").is_none() =>
            {
                Reply::json(
                    200,
                    &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": key.name, "group": target.rt.group, "kind": target.rt.plural, "uid": before.derived.uid}}),
                )
            }
            // An update that removed the last finalizer of an object being deleted: the object is
            // gone; answer with the state the update asked for.
            WriteOutcome::Deleted(before) => {
                let content = last.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_else(|| before.content());
                let obj = StoredObject::new(key, None, content, before.derived.clone());
                Reply::bytes(200, self.served(target, &obj))
            }
        })
    }

    /// What a write would store, without storing it (`dryRun=All`).
    fn preview(&self, target: &Target, key: &ObjectKey, current: Option<&StoredObject>, mutation: Mutation) -> Reply {
        match (mutation, current) {
            (Mutation::Delete, Some(c)) => Reply::bytes(200, self.served(target, c)),
            (Mutation::Delete, None) => Reply::json(200, &json!({})),
            (Mutation::Put(content), current) => {
                let derived = match current {
                    Some(c) => {
                        c.derived.after_change(c.derived.resource_version, &c.content(), &content, target.rt.status)
                    }
                    None => Derived {
                        resource_version: 0,
                        uid: stable_uid(&format!("{key}@dry-run@{}", random_suffix())),
                        creation_timestamp: self.clock.now(),
                        generation: 1,
                    },
                };
                let obj = StoredObject::new(key.clone(), None, content, derived);
                let mut value = obj.value();
                if current.is_none() {
                    value["metadata"]["resourceVersion"] = Value::String(String::new());
                }
                Reply::json(if current.is_some() { 200 } else { 201 }, &value)
            }
        }
    }

    async fn update_scale(&self, target: &Target, name: &str, body: Value, opts: &WriteOptions) -> ApiResult<Reply> {
        let text = |field: &str| body.get(field).and_then(Value::as_str);
        if text("kind").is_some_and(|k| k != "Scale") || text("apiVersion").is_some_and(|v| v != "autoscaling/v1") {
            return Err(StatusError::bad_request(format!(
                "the API version in the data ({}) and kind ({}) do not match the URL (autoscaling/v1, Scale)",
                text("apiVersion").unwrap_or_default(),
                text("kind").unwrap_or_default()
            )));
        }
        let key = target.key(name);
        let t = target.clone();
        let subject_name = name.to_string();
        let mutate = move |current: Option<&StoredObject>| {
            let current = current.ok_or_else(|| StatusError::not_found(t.subject(&subject_name)))?;
            check_preconditions(&t, current, &body)?;
            scaled(&t, current, &body)
        };
        let reply = self.write(target, key.clone(), "scale", opts, Box::new(mutate)).await?;
        if opts.dry_run {
            return Ok(reply);
        }
        self.scale_reply(target, &key)
    }

    /// The Scale of an object.
    fn scale_reply(&self, target: &Target, key: &ObjectKey) -> ApiResult<Reply> {
        let obj = self.storage.get(key).ok_or_else(|| StatusError::not_found(target.subject(&key.name)))?;
        Ok(Reply::json(200, &scale_of(target, &obj)?))
    }
}

/// Whether objects of `rt` are served with defaults their files may leave out.
/// What serving a target's objects depends on, worked out once for a LIST or a WATCH, which serve
/// thousands of them: the start every object stored at the target's version has, whether defaults
/// apply, whether they are CRDs (served with their derived status), and whether they are custom
/// resources.
#[derive(Clone)]
pub(super) struct Serving {
    prefix: String,
    defaults: bool,
    crd: bool,
    custom: bool,
}

impl Serving {
    pub(super) fn of(target: &Target) -> Self {
        Serving {
            prefix: gitbacked_core::object::served_prefix(&target.rt.kind, &target.api_version()),
            defaults: has_defaults(&target.rt),
            crd: target.stored_kind() == crd_group_kind(),
            custom: target.rt.crd.is_some(),
        }
    }

    /// Whether the target serves `obj` as it is stored: at the object's own version, as its
    /// JSON, or with the defaults of its built-in kind, which never change (a CRD's may). Such
    /// an object is served the same bytes by every target that serves it so, worked out once per
    /// object (see [`gitbacked_core::StoredObject::defaulted`] and
    /// [`gitbacked_core::WatchEvent::frame`]).
    pub(super) fn as_stored(&self, obj: &StoredObject) -> bool {
        !self.crd && (!self.defaults || !self.custom) && obj.document_json().starts_with(self.prefix.as_bytes())
    }
}

fn has_defaults(rt: &ResourceType) -> bool {
    rt.defaulted || (rt.crd.is_none() && defaults::applies(&rt.group_kind()))
}

/// An object as clients see it at the target's version, and as patches and applies find it: with
/// the defaults its file leaves out (its CRD's, as apiextensions defaults on read, or those of its
/// built-in kind; see `gitbacked_core::defaults`).
fn live(target: &Target, obj: &StoredObject) -> Value {
    let mut value = obj.value();
    if events::is_view(&target.rt.group_kind()) {
        value = events::to_view(value);
    }
    value["apiVersion"] = Value::String(target.api_version());
    if target.rt.crd.is_none() {
        defaults::apply(&target.rt.group_kind(), &target.version, &mut value);
    } else if let Some(schema) = Node::of(&target.rt, &target.version).filter(|_| target.rt.defaulted) {
        schema.apply_defaults(&mut value);
    }
    value
}

/// The `PartialObjectMetadata` view of an object with `metadata` (`Accept: …;as=PartialObjectMetadata`).
pub fn partial_object_metadata(metadata: Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata})
}

impl Reply {
    /// The answer as `format` asks: an object answered by a write becomes its
    /// `PartialObjectMetadata` when the client asked for that view (kube's `patch_metadata`).
    pub fn viewed_as(self, format: Format) -> Reply {
        let Format::Metadata = format else { return self };
        let Ok(mut object) = serde_json::from_slice::<Value>(&self.body) else { return self };
        if !(200..300).contains(&self.code) || object.get("kind").and_then(Value::as_str) == Some("Status") {
            return self;
        }
        let partial = partial_object_metadata(object.get_mut("metadata").map(Value::take).unwrap_or_default());
        Reply { body: Bytes::from(serde_json::to_vec(&partial).unwrap_or_default()), ..self }
    }
}

fn display_name(key: &ObjectKey) -> String {
    if key.namespace.is_empty() { key.name.clone() } else { format!("{}/{}", key.namespace, key.name) }
}

fn name_of(body: &Value) -> &str {
    body.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()
}

fn apply_patch(
    kind: PatchType,
    target: &Value,
    patch: &Value,
    schema: Option<gitbacked_core::schema::Node<'_>>,
) -> ApiResult<Value> {
    match kind {
        PatchType::Json => patch::json_patch(target, patch),
        PatchType::Merge => patch::merge_patch(target, patch),
        PatchType::Strategic => strategic::strategic_merge_patch(target, patch, schema),
    }
}

/// The body's apiVersion and kind, when given, must be the URL's.
fn check_kind(target: &Target, body: &Value) -> ApiResult<()> {
    if !body.is_object() {
        return Err(StatusError::bad_request("the body must be a JSON object"));
    }
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or(&target.rt.kind);
    let api_version =
        body.get("apiVersion").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| target.api_version());
    if kind != target.rt.kind || api_version != target.api_version() {
        return Err(StatusError::bad_request(format!(
            "the API version in the data ({api_version}) and kind ({kind}) do not match the URL ({}, {})",
            target.api_version(),
            target.rt.kind
        )));
    }
    Ok(())
}

/// The finalizer a delete's `propagationPolicy` (or the older `orphanDependents`) asks for:
/// `orphan` for Orphan, `foregroundDeletion` for Foreground, none for Background.
fn propagation_finalizer(options: &Value) -> ApiResult<Option<&'static str>> {
    let policy = options.get("propagationPolicy").and_then(Value::as_str);
    let orphan = options.get("orphanDependents").and_then(Value::as_bool);
    let invalid = |field: &str, why: String| StatusError::invalid("DeleteOptions", "", "", vec![(field.into(), why)]);
    match (policy, orphan) {
        (Some(_), Some(_)) => Err(invalid(
            "propagationPolicy",
            "Invalid value: orphanDependents and deletion propagation policy cannot be both set".into(),
        )),
        (Some("Orphan"), None) | (None, Some(true)) => Ok(Some(crate::finalizers::ORPHAN)),
        (Some("Foreground"), None) => Ok(Some(crate::finalizers::FOREGROUND)),
        (Some("Background"), None) | (None, Some(false)) | (None, None) => Ok(None),
        (Some(other), None) => Err(invalid(
            "propagationPolicy",
            format!("Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""),
        )),
    }
}

/// Whether kube-apiserver's registry of the kind answers a deletion with the deleted object
/// (`ReturnDeletedObject`) rather than a `Status`.
fn returns_deleted_object(rt: &ResourceType) -> bool {
    matches!(
        (rt.group.as_str(), rt.kind.as_str()),
        (
            "",
            "Pod"
                | "Service"
                | "ServiceAccount"
                | "PersistentVolumeClaim"
                | "PersistentVolume"
                | "PodTemplate"
                | "ResourceQuota"
        ) | (
            "storage.k8s.io",
            "StorageClass"
                | "CSIDriver"
                | "CSINode"
                | "CSIStorageCapacity"
                | "VolumeAttachment"
                | "VolumeAttributesClass"
        ) | ("resource.k8s.io", "ResourceClaim" | "ResourceClaimTemplate" | "DeviceClass" | "ResourceSlice")
    )
}

/// The namespaces kube-apiserver keeps may not be deleted (NamespaceLifecycle), nor may a
/// bootstrap object that git has no document for: it would still be served.
fn check_deletable(target: &Target, current: &StoredObject) -> ApiResult<()> {
    let key = &current.key;
    if is_namespace(&key.gk) && gitbacked_core::bootstrap::SYSTEM_NAMESPACES.contains(&key.name.as_str()) {
        return Err(StatusError::forbidden(format!(
            "namespaces \"{}\" is forbidden: this namespace may not be deleted",
            key.name
        )));
    }
    // Any other namespace may go, also one implied by the objects in it: they go with it.
    if gitbacked_core::bootstrap::is_bootstrap(current) && !is_namespace(&key.gk) {
        return Err(StatusError::forbidden(format!(
            "{} \"{}\" is forbidden: it is one of the objects the server itself provides; write it to git to own it",
            target.rt.plural, key.name
        )));
    }
    Ok(())
}

fn is_namespace(gk: &GroupKind) -> bool {
    gk.group.is_empty() && gk.kind == "Namespace"
}

/// The finalizers that hold an object's deletion: `metadata.finalizers`, and a Namespace's
/// `spec.finalizers` as served (`kubernetes` unless set otherwise), which the namespace
/// finalizer removes through `/finalize` once the namespace is empty.
fn holds_deletion(gk: &GroupKind, content: &Value) -> bool {
    let non_empty = |v: Option<&Value>| v.and_then(Value::as_array).is_some_and(|f| !f.is_empty());
    if non_empty(content.pointer("/metadata/finalizers")) {
        return true;
    }
    if !is_namespace(gk) {
        return false;
    }
    let mut served = content.clone();
    defaults::apply(gk, "v1", &mut served);
    non_empty(served.pointer("/spec/finalizers"))
}

/// resourceVersion and uid preconditions carried by a body.
fn check_preconditions(target: &Target, current: &StoredObject, body: &Value) -> ApiResult<()> {
    let name = &current.key.name;
    let field = |path: &str| body.pointer(path).and_then(Value::as_str).filter(|s| !s.is_empty());
    if field("/metadata/resourceVersion").is_some_and(|rv| rv != current.derived.resource_version.to_string()) {
        return Err(StatusError::conflict(
            target.subject(name),
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    if let Some(uid) = field("/metadata/uid").filter(|uid| *uid != current.derived.uid) {
        return Err(StatusError::conflict(
            target.subject(name),
            &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", current.derived.uid),
        ));
    }
    Ok(())
}

/// The content to store for a new object.
fn prepare_new(target: &Target, key: &ObjectKey, body: Value) -> ApiResult<Value> {
    let mut content = strip_derived(body);
    content["apiVersion"] = Value::String(target.api_version());
    content["kind"] = Value::String(target.rt.kind.clone());
    let meta = metadata_mut(&mut content);
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    if key.namespace.is_empty() {
        meta.remove("namespace");
    } else {
        meta.insert("namespace".into(), Value::String(key.namespace.to_string()));
    }
    validate_metadata(target, &key.name, meta)?;
    // Status is written through /status only; a Node keeps the status it is created with, as its
    // registry does (a kubelet registers its node with its status).
    let keeps_status = (target.rt.group.as_str(), target.rt.kind.as_str()) == ("", "Node");
    if let Some(map) = content.as_object_mut().filter(|_| target.rt.status && !keeps_status) {
        map.remove("status");
    }
    Ok(ordered(content))
}

/// The content an update stores: status or everything but status, lifecycle fields kept, and
/// field ownership recorded for `tracked_by` (`None` when an apply already recorded it).
fn settle(
    target: &Target,
    current: &StoredObject,
    new: Value,
    sub: Option<Subresource>,
    tracked_by: Option<&str>,
    now: &str,
) -> ApiResult<Mutation> {
    let old = current.content();
    let mut content = match sub.and_then(Subresource::owns) {
        Some(path) => {
            let mut content = old.clone();
            replace_at(&mut content, &new, path);
            content
        }
        None => {
            let mut content = strip_derived(new);
            if target.rt.status {
                match old.get("status") {
                    Some(s) => content["status"] = s.clone(),
                    None => {
                        content.as_object_mut().map(|m| m.remove("status"));
                    }
                }
            }
            content
        }
    };
    content["apiVersion"] = Value::String(target.api_version());
    content["kind"] = Value::String(target.rt.kind.clone());
    let old_meta = old.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
    let meta = metadata_mut(&mut content);
    // deletionTimestamp is immutable once set, and cannot be set by an update.
    for field in ["deletionTimestamp", "deletionGracePeriodSeconds"] {
        match old_meta.get(field) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    match old_meta.get("namespace") {
        Some(ns) => meta.insert("namespace".into(), ns.clone()),
        None => meta.remove("namespace"),
    };
    validate_metadata(target, &current.key.name, meta)?;
    let terminating = meta.contains_key("deletionTimestamp");
    // No new finalizers once the object is being deleted, as kube-apiserver validates.
    let old_finalizers = old_meta.get("finalizers").and_then(Value::as_array).cloned().unwrap_or_default();
    let added: Vec<&str> = (meta.get("finalizers").and_then(Value::as_array).into_iter().flatten())
        .filter(|f| terminating && !old_finalizers.contains(f))
        .filter_map(Value::as_str)
        .collect();
    if !added.is_empty() {
        let why = format!(
            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
        );
        return Err(StatusError::invalid(
            &target.rt.kind,
            &target.rt.group,
            &current.key.name,
            vec![("metadata.finalizers".into(), why)],
        ));
    }
    if terminating && !holds_deletion(&current.key.gk, &content) {
        return Ok(Mutation::Delete);
    }
    if let Some(manager) = tracked_by {
        let schema = Node::of(&target.rt, &target.version);
        apply::track_update(Some(&old), &mut content, manager, schema, &target.api_version(), now);
    }
    Ok(Mutation::Put(ordered(content)))
}

/// The most bytes all annotations of an object may take, keys and values (kube-apiserver's
/// `TotalAnnotationSizeLimitB`).
const MAX_ANNOTATION_BYTES: usize = 256 * 1024;

/// Labels, annotations and finalizers must have the shapes and syntax kube-apiserver accepts.
fn validate_metadata(target: &Target, name: &str, meta: &Map<String, Value>) -> ApiResult<()> {
    let mut causes = Vec::new();
    let invalid = |field: String, value: &str, why: InvalidSyntax| (field, format!("Invalid value: {value:?}: {why}"));
    for field in ["labels", "annotations"] {
        match meta.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    if let Err(why) = validate_qualified_name(k) {
                        causes.push(invalid(format!("metadata.{field}"), k, why));
                    }
                    match v.as_str() {
                        None => {
                            causes.push((format!("metadata.{field}.{k}"), "Invalid value: must be a string".into()))
                        }
                        Some(v) if field == "labels" => {
                            if let Err(why) = validate_label_value(v) {
                                causes.push(invalid("metadata.labels".into(), v, why));
                            }
                        }
                        Some(_) => {}
                    }
                }
                let size: usize = m.iter().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum();
                if field == "annotations" && size > MAX_ANNOTATION_BYTES {
                    causes.push((
                        "metadata.annotations".into(),
                        format!("Too long: must have at most {MAX_ANNOTATION_BYTES} bytes"),
                    ));
                }
            }
            Some(_) => causes.push((format!("metadata.{field}"), "Invalid value: must be a map of strings".into())),
        }
    }
    match meta.get("finalizers") {
        None | Some(Value::Null) => {}
        Some(Value::Array(f)) if f.iter().all(Value::is_string) => {
            for (i, finalizer) in f.iter().filter_map(Value::as_str).enumerate() {
                if let Err(why) = validate_qualified_name(finalizer) {
                    causes.push(invalid(format!("metadata.finalizers[{i}]"), finalizer, why));
                }
            }
        }
        Some(_) => causes.push(("metadata.finalizers".into(), "Invalid value: must be a list of strings".into())),
    }
    causes.extend(owner_reference_causes(meta.get("ownerReferences")));
    if causes.is_empty() { Ok(()) } else { Err(StatusError::invalid(&target.rt.kind, &target.rt.group, name, causes)) }
}

/// What kube-apiserver refuses in `metadata.ownerReferences`: empty apiVersion, kind, name or uid,
/// and more than one controller.
fn owner_reference_causes(refs: Option<&Value>) -> Vec<(String, String)> {
    let refs = match refs {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(refs)) => refs,
        Some(_) => return vec![("metadata.ownerReferences".into(), "Invalid value: must be a list".into())],
    };
    let mut causes = Vec::new();
    for r in refs {
        for (field, what) in [("apiVersion", "version"), ("kind", "kind"), ("name", "name"), ("uid", "uid")] {
            if r.get(field).and_then(Value::as_str).is_none_or(str::is_empty) {
                causes.push((
                    format!("metadata.ownerReferences.{field}"),
                    format!("Invalid value: \"\": {what} must not be empty"),
                ));
            }
        }
    }
    let controllers: Vec<String> = refs
        .iter()
        .filter(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|r| {
            format!(
                "{}/{}",
                r.get("kind").and_then(Value::as_str).unwrap_or_default(),
                r.get("name").and_then(Value::as_str).unwrap_or_default()
            )
        })
        .collect();
    if controllers.len() > 1 {
        causes.push((
            "metadata.ownerReferences".into(),
            format!("Invalid value: Only one reference can have Controller set to true. Found \"true\" in references for {}", controllers.join(" and ")),
        ));
    }
    causes
}

/// Puts apiVersion, kind and metadata first, as the apiserver writes objects.
fn ordered(value: Value) -> Value {
    let Value::Object(mut map) = value else {
        return value;
    };
    let mut out = Map::new();
    for key in ["apiVersion", "kind", "metadata"] {
        if let Some(v) = map.remove(key) {
            out.insert(key.to_string(), v);
        }
    }
    out.extend(map);
    Value::Object(out)
}

/// Five random characters from the apiserver's alphabet, for generateName.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bits = gitbacked_core::uid::random();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(bits % ALPHABET.len() as u64) as usize] as char;
            bits /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// Reads a `.a.b` path.
fn at_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    value.pointer(&path.replace('.', "/"))
}

/// The `autoscaling/v1 Scale` view of an object.
fn scale_of(target: &Target, obj: &StoredObject) -> ApiResult<Value> {
    let scale =
        target.rt.scale.as_ref().ok_or_else(|| StatusError::no_route(&format!("{}/scale", target.rt.plural)))?;
    let value = live(target, obj);
    let selector = scale.label_selector_path.as_deref().and_then(|p| at_path(&value, p)).cloned();
    let mut status = json!({"replicas": at_path(&value, &scale.status_replicas_path).cloned().unwrap_or(json!(0))});
    let selector = match selector {
        Some(Value::String(s)) => Some(s),
        Some(structured @ Value::Object(_)) => gitbacked_core::selector::label_selector_text(&structured),
        _ => None,
    };
    if let Some(selector) = selector {
        status["selector"] = Value::String(selector);
    }
    Ok(json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": obj.key.name, "namespace": obj.key.namespace, "uid": obj.derived.uid,
            "resourceVersion": obj.derived.resource_version.to_string(), "creationTimestamp": gitbacked_core::clock::rfc3339(obj.derived.creation_timestamp)},
        "spec": {"replicas": at_path(&value, &scale.spec_replicas_path).cloned().unwrap_or(json!(0))},
        "status": status,
    }))
}

/// The object with the replicas of a Scale applied.
fn scaled(target: &Target, current: &StoredObject, scale: &Value) -> ApiResult<Mutation> {
    let path =
        target.rt.scale.as_ref().map(|s| s.spec_replicas_path.clone()).ok_or_else(|| StatusError::no_route("scale"))?;
    let replicas = scale.pointer("/spec/replicas").and_then(Value::as_i64).ok_or_else(|| {
        StatusError::invalid(
            "Scale",
            "autoscaling",
            &current.key.name,
            vec![("spec.replicas".into(), "Required value".into())],
        )
    })?;
    let mut content = current.content();
    let mut cursor = &mut content;
    let parts: Vec<&str> = path.trim_start_matches('.').split('.').collect();
    for part in &parts[..parts.len() - 1] {
        if !cursor.get(*part).is_some_and(Value::is_object) {
            cursor[*part] = json!({});
        }
        cursor = &mut cursor[*part];
    }
    cursor[parts[parts.len() - 1]] = Value::from(replicas);
    Ok(Mutation::Put(content))
}
