//! The HTTP surface: one axum `Router` that maps Kubernetes REST paths onto the [`Api`]. The
//! in-process client and `gitbacked serve` use this very Router.

mod auth;
mod metrics;
mod protobuf;
pub mod webhook;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::BodyExt;
use serde_json::Value;

pub use auth::require_bearer_token;
use gitbacked_core::document;
use gitbacked_core::health::Health;
use gitbacked_core::status::{ApiResult, StatusError};
use metrics::ApiMetrics;

use crate::api::table::IncludeObject;
use crate::api::watch::WatchParams;
use crate::api::{Api, FieldValidation, Format, ListParams, PatchType, Reply, Subresource, Target, WriteOptions};
use crate::api::{discovery, openapi};

/// The largest request body accepted, as kube-apiserver's limit.
pub const MAX_BODY: usize = gitbacked_core::limits::MAX_REQUEST_BYTES;

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// What the Router serves besides the API.
pub struct Endpoints {
    /// The metrics of the storage, served at `/metrics` with the API's own.
    pub metrics: prometheus_client::registry::Registry,
    /// The storage's readiness, served at `/readyz`.
    pub health: Arc<dyn Health>,
    /// The git hosts' webhook, served at [`webhook::PATH`].
    pub webhook: webhook::Webhook,
}

/// Builds the Router serving the Kubernetes API over `api`, with health, metrics and the webhook.
pub fn router(api: Api, endpoints: Endpoints) -> Router {
    let Endpoints { mut metrics, health, webhook } = endpoints;
    let api_metrics = ApiMetrics::register(&mut metrics);
    let registry = Arc::new(metrics);
    let state = AppState { api, metrics: api_metrics, health, webhook };
    Router::new()
        .route("/version", get(|| async { json_response(200, &discovery::version()) }))
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/readyz", get(ready))
        .route("/metrics", get(move || async move { render(&registry) }))
        .route("/api", get(core_versions))
        .route("/apis", get(groups))
        .route("/openapi/v3", get(openapi_index))
        .route("/openapi/v3/{*path}", get(openapi_document))
        .route("/api/{*rest}", any(resource))
        .route("/apis/{*rest}", any(resource))
        .route(webhook::PATH, any(webhook::serve))
        .fallback(|req: Request| async move { error_response(&StatusError::no_route(req.uri().path())) })
        .with_state(state)
}

/// What every handler shares.
#[derive(Clone)]
struct AppState {
    api: Api,
    metrics: Arc<ApiMetrics>,
    health: Arc<dyn Health>,
    webhook: webhook::Webhook,
}

/// The metrics in the Prometheus text format.
fn render(registry: &prometheus_client::registry::Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)
        .unwrap_or_else(|e| unreachable!("writing to a String cannot fail: {e}"));
    out
}

async fn ok() -> &'static str {
    "ok"
}

/// 200 `ok` while every check of the storage passes; else 503 listing every check as
/// kube-apiserver does (`[+]name ok`, `[-]name failed: reason`). `?verbose` lists them always.
async fn ready(State(state): State<AppState>, req: Request) -> Response {
    let checks = state.health.checks();
    let healthy = checks.iter().all(|c| c.failure.is_none());
    let verbose = req.uri().query().is_some_and(|q| q.split('&').any(|p| p == "verbose" || p.starts_with("verbose=")));
    if healthy && !verbose {
        return "ok".into_response();
    }
    let mut text: String = checks
        .iter()
        .map(|c| match &c.failure {
            None => format!("[+]{} ok\n", c.name),
            Some(why) => format!("[-]{} failed: {why}\n", c.name),
        })
        .collect();
    let code = if healthy {
        text.push_str("readyz check passed\n");
        StatusCode::OK
    } else {
        text.push_str("readyz check failed\n");
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, text).into_response()
}

fn json_response(code: u16, value: &Value) -> Response {
    reply_response(Reply::json(code, value), "application/json")
}

fn reply_response(reply: Reply, content_type: &str) -> Response {
    let (reply, content_type) = match content_type {
        protobuf::PROTOBUF => protobuf_reply(reply),
        _ => (reply, content_type),
    };
    let status = StatusCode::from_u16(reply.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, [(header::CONTENT_TYPE, content_type.to_string())], reply.body).into_response();
    for warning in reply.warnings {
        if let Ok(value) = warning_header(&warning) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

/// A successful reply in protobuf; errors (Status) stay JSON, which every client decodes.
fn protobuf_reply(reply: Reply) -> (Reply, &'static str) {
    if !(200..300).contains(&reply.code) {
        return (reply, "application/json");
    }
    match serde_json::from_slice(&reply.body).ok().and_then(|value: Value| protobuf::encode(&value)) {
        Some(Ok(body)) => (Reply { body, ..reply }, protobuf::PROTOBUF),
        Some(Err(e)) => (Reply::json(e.code, &e.to_status()), "application/json"),
        None => (not_acceptable(), "application/json"),
    }
}

/// 406 as kube-apiserver answers a client that accepts only protobuf for an object without a
/// protobuf form (a custom resource).
fn not_acceptable() -> Reply {
    let status = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "only the following media types are accepted: application/json, application/yaml",
        "reason": "NotAcceptable",
        "code": 406,
    });
    Reply::json(406, &status)
}

/// A `Warning` header: RFC 7234 warn-code 299 "miscellaneous persistent warning", as kube-apiserver
/// sends.
fn warning_header(text: &str) -> Result<header::HeaderValue, header::InvalidHeaderValue> {
    header::HeaderValue::from_str(&format!("299 - \"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"")))
}

fn error_response(e: &StatusError) -> Response {
    // kube-apiserver's encoder ends the body with a newline.
    let mut body = serde_json::to_vec(&e.to_status()).unwrap_or_default();
    body.push(b'\n');
    reply_response(Reply::bytes(e.code, Bytes::from(body)), "application/json")
}

fn wants_aggregated(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("as=APIGroupDiscoveryList"))
}

async fn core_versions(State(AppState { api, .. }): State<AppState>, headers: HeaderMap) -> Response {
    if wants_aggregated(&headers) {
        let reply = Reply::bytes(200, Bytes::from(discovery::aggregated(&api.storage().registry(), true).to_string()));
        return reply_response(reply, AGGREGATED);
    }
    json_response(200, &discovery::core_versions())
}

async fn groups(State(AppState { api, .. }): State<AppState>, headers: HeaderMap) -> Response {
    let registry = api.storage().registry();
    if wants_aggregated(&headers) {
        let reply = Reply::bytes(200, Bytes::from(discovery::aggregated(&registry, false).to_string()));
        return reply_response(reply, AGGREGATED);
    }
    json_response(200, &discovery::group_list(&registry))
}

async fn openapi_index(State(AppState { api, .. }): State<AppState>) -> Response {
    json_response(200, &openapi::index(&api.storage().registry()))
}

async fn openapi_document(State(AppState { api, .. }): State<AppState>, req: Request) -> Response {
    let path = req.uri().path().trim_start_matches("/openapi/v3/");
    let (group, version) = match path.split('/').collect::<Vec<_>>().as_slice() {
        ["api", version] => ("", *version),
        ["apis", group, version] => (*group, *version),
        _ => return error_response(&StatusError::no_route(req.uri().path())),
    };
    match openapi::document(&api.storage().registry(), group, version) {
        Some(doc) => json_response(200, &doc),
        None => error_response(&StatusError::no_route(req.uri().path())),
    }
}

/// A request path split into its parts.
#[derive(Debug, PartialEq)]
struct Path<'a> {
    group: &'a str,
    version: &'a str,
    namespace: Option<&'a str>,
    resource: Option<&'a str>,
    name: Option<&'a str>,
    subresource: Option<&'a str>,
}

/// The segments of a request path, each percent-decoded once, as kube-apiserver decodes them: a
/// name like `view pods` arrives as `view%20pods`. 400 for an escape that is not UTF-8.
fn decode_segments(path: &str) -> ApiResult<Vec<String>> {
    path.trim_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|d| d.into_owned())
                .map_err(|_| StatusError::bad_request(format!("the path segment {s:?} is not UTF-8 once decoded")))
        })
        .collect()
}

fn parse_path(segments: &[String]) -> Option<Path<'_>> {
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    if rest.iter().any(|s| s.is_empty()) {
        return None;
    }
    // `namespaces/{ns}/{resource}…` addresses namespaced objects; `namespaces/{name}/status` is a
    // subresource of a Namespace.
    let (namespace, rest) = match rest {
        ["namespaces", ns, resource, tail @ ..] if !matches!(*resource, "status" | "finalize") => (Some(*ns), {
            let mut v = vec![*resource];
            v.extend_from_slice(tail);
            v
        }),
        _ => (None, rest.to_vec()),
    };
    if rest.len() > 3 {
        return None;
    }
    Some(Path {
        group,
        version,
        namespace,
        resource: rest.first().copied(),
        name: rest.get(1).copied(),
        subresource: rest.get(2).copied(),
    })
}

/// A request's query parameters by name.
type Query = HashMap<String, String>;

fn query(req: &Request) -> ApiResult<Query> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.uri().query().unwrap_or_default())
        .map_err(|e| StatusError::bad_request(format!("invalid query: {e}")))?;
    Ok(pairs.into_iter().collect())
}

fn parse_bool(q: &HashMap<String, String>, key: &str) -> ApiResult<bool> {
    // As Go's strconv.ParseBool reads them.
    match q.get(key).map(String::as_str) {
        None | Some("" | "0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some(other) => Err(StatusError::bad_request(format!("invalid value for {key}: {other:?}"))),
    }
}

fn parse_number<T: std::str::FromStr>(q: &HashMap<String, String>, key: &str) -> ApiResult<Option<T>> {
    q.get(key)
        .filter(|v| !v.is_empty())
        .map(|v| v.parse().map_err(|_| StatusError::bad_request(format!("invalid value for {key}: {v:?}"))))
        .transpose()
}

fn list_params(q: &HashMap<String, String>) -> ApiResult<ListParams> {
    Ok(ListParams {
        label_selector: q.get("labelSelector").cloned(),
        field_selector: q.get("fieldSelector").cloned(),
        limit: parse_number(q, "limit")?,
        continue_token: q.get("continue").filter(|c| !c.is_empty()).cloned(),
        resource_version: q
            .get("resourceVersion")
            .filter(|v| !v.is_empty())
            .map(|v| v.parse().map_err(|_| StatusError::bad_request(format!("invalid resource version: {v:?}"))))
            .transpose()?,
        resource_version_match: q
            .get("resourceVersionMatch")
            .filter(|c| !c.is_empty())
            .map(|m| m.parse())
            .transpose()?,
    })
}

/// Table output when the client asks for `as=Table` (kubectl get), metadata only for
/// `as=PartialObjectMetadata[List]`, objects otherwise.
fn format(headers: &HeaderMap, q: &HashMap<String, String>) -> ApiResult<Format> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let asks = |what: &[&str]| {
        accept.split(',').any(|media| {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            what.iter().any(|w| params.contains(w)) && params.contains(&"g=meta.k8s.io")
        })
    };
    if asks(&["as=PartialObjectMetadata", "as=PartialObjectMetadataList"]) {
        return Ok(Format::Metadata);
    }
    if !asks(&["as=Table"]) {
        return Ok(Format::Object);
    }
    let include = q.get("includeObject").map(String::as_str);
    let include = IncludeObject::parse(include)
        .ok_or_else(|| StatusError::bad_request("includeObject must be None, Metadata or Object"))?;
    Ok(Format::Table(include))
}

/// The media type of replies: protobuf when the client accepts it and nothing else; JSON
/// otherwise (client-go configured for protobuf adds `*/*` and reads the reply by its type).
fn reply_type(headers: &HeaderMap) -> &'static str {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mut media = accept.split(',').map(|m| m.split(';').next().unwrap_or_default().trim()).filter(|m| !m.is_empty());
    let first = media.next();
    if first.is_some_and(|m| m.eq_ignore_ascii_case(protobuf::PROTOBUF))
        && media.all(|m| m.eq_ignore_ascii_case(protobuf::PROTOBUF))
    {
        protobuf::PROTOBUF
    } else {
        "application/json"
    }
}

fn write_options(q: &HashMap<String, String>, headers: &HeaderMap) -> ApiResult<WriteOptions> {
    let dry_run = match q.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(StatusError::bad_request(format!("invalid dryRun value {other:?}: only All is supported")));
        }
    };
    let field_validation = match q.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(StatusError::bad_request(format!(
                "fieldValidation must be Ignore, Warn or Strict, not {other:?}"
            )));
        }
    };
    // Without fieldManager, the apiserver names the manager after the client's user agent.
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).and_then(|ua| ua.split('/').next());
    let field_manager =
        q.get("fieldManager").filter(|m| !m.is_empty()).cloned().or_else(|| user_agent.map(str::to_string));
    if field_manager.as_ref().is_some_and(|m| m.len() > 128) {
        return Err(StatusError::bad_request("fieldManager must be at most 128 characters"));
    }
    Ok(WriteOptions { dry_run, field_validation, field_manager, force: parse_bool(q, "force")? })
}

async fn read_body(body: Body) -> ApiResult<Bytes> {
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(StatusError::too_large(format!("the request body is larger than {MAX_BODY} bytes")))
        }
        Err(e) => Err(StatusError::bad_request(format!("reading the request body failed: {e}"))),
    }
}

fn content_type(headers: &HeaderMap) -> String {
    let raw = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    raw.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// Parses an object body: JSON, YAML, or JSON without a content type (the Python client).
fn parse_object(headers: &HeaderMap, bytes: &[u8]) -> ApiResult<Value> {
    let value = match content_type(headers).as_str() {
        "" | "application/json" => {
            serde_json::from_slice(bytes).map_err(|e| StatusError::bad_request(format!("invalid JSON body: {e}")))?
        }
        "application/yaml" => {
            let text = std::str::from_utf8(bytes).map_err(|_| StatusError::bad_request("the body is not UTF-8"))?;
            document::parse_yaml(text)
                .map_err(|e| StatusError::bad_request(format!("invalid YAML body at line {}: {}", e.line, e.message)))?
        }
        "application/vnd.kubernetes.protobuf" => protobuf::decode(bytes)?,
        other => {
            return Err(StatusError::unsupported_media_type(format!(
                "the media type {other:?} is not supported for this request"
            )));
        }
    };
    if !value.is_object() {
        return Err(StatusError::bad_request("the body must be a JSON object"));
    }
    gitbacked_core::limits::check_object(&value)?;
    Ok(value)
}

fn subresource(target: &Target, name: Option<&str>) -> ApiResult<Option<Subresource>> {
    match name {
        None => Ok(None),
        Some("status") if target.rt.status => Ok(Some(Subresource::Status)),
        Some("scale") if target.rt.scale.is_some() => Ok(Some(Subresource::Scale)),
        Some("approval")
            if (target.rt.group.as_str(), target.rt.kind.as_str())
                == ("certificates.k8s.io", "CertificateSigningRequest") =>
        {
            Ok(Some(Subresource::Approval))
        }
        Some("ephemeralcontainers") if (target.rt.group.as_str(), target.rt.kind.as_str()) == ("", "Pod") => {
            Ok(Some(Subresource::EphemeralContainers))
        }
        Some("finalize") if (target.rt.group.as_str(), target.rt.kind.as_str()) == ("", "Namespace") => {
            Ok(Some(Subresource::Finalize))
        }
        Some(other) => Err(StatusError::no_route(&format!("{}/{other}", target.rt.plural))),
    }
}

async fn resource(State(state): State<AppState>, req: Request) -> Response {
    let started = std::time::Instant::now();
    let mut verb = Verb { name: "unknown", resource: String::new(), warning: None };
    let mut response = match serve(&state, req, &mut verb).await {
        Ok(response) => response,
        Err(e) => error_response(&e),
    };
    if let Some(value) = verb.warning.as_deref().and_then(|w| warning_header(w).ok()) {
        response.headers_mut().append(header::WARNING, value);
    }
    state.metrics.request(verb.name, &verb.resource, response.status().as_u16(), started.elapsed());
    response
}

/// What a request did, for metrics, and the deprecation warning of the version it used.
struct Verb {
    name: &'static str,
    resource: String,
    warning: Option<String>,
}

async fn serve(state: &AppState, req: Request, verb: &mut Verb) -> ApiResult<Response> {
    let api = &state.api;
    let uri_path = req.uri().path().to_string();
    let segments = decode_segments(&uri_path)?;
    let path = parse_path(&segments).ok_or_else(|| StatusError::no_route(&uri_path))?;
    let q = query(&req)?;
    let Some(resource) = path.resource else {
        let registry = api.storage().registry();
        let list = discovery::resource_list(&registry, path.group, path.version)
            .ok_or_else(|| StatusError::no_route(&uri_path))?;
        return Ok(json_response(200, &list));
    };
    verb.resource = resource.to_string();
    let target = api.target(path.group, path.version, resource, path.namespace)?;
    verb.warning = target.rt.deprecations.get(&target.version).cloned();
    let method = req.method().clone();
    let mut verb_allowed = |name: &'static str| {
        verb.name = name;
        if target.rt.supports(name) {
            Ok(())
        } else {
            Err(StatusError::method_not_allowed(format!("{name} is not supported on {}", target.rt.plural)))
        }
    };
    // `serviceaccounts/{name}/token` answers a TokenRequest; it stores nothing.
    if path.subresource == Some("token")
        && (target.rt.group.as_str(), target.rt.kind.as_str()) == ("", "ServiceAccount")
    {
        let (Some(name), true) = (path.name, req.method() == Method::POST) else {
            return Err(StatusError::method_not_allowed("serviceaccounts/token only takes POST"));
        };
        verb.name = "create";
        let (parts, body) = req.into_parts();
        let request = parse_object(&parts.headers, &read_body(body).await?)?;
        return Ok(reply_response(api.request_token(&target, name, request).await?, "application/json"));
    }
    // `pods/{name}/binding` and `pods/{name}/eviction` act on the pod.
    if let Some(action @ ("binding" | "eviction")) = path.subresource
        && (target.rt.group.as_str(), target.rt.kind.as_str()) == ("", "Pod")
    {
        let (Some(name), true) = (path.name, req.method() == Method::POST) else {
            return Err(StatusError::method_not_allowed(format!("pods/{action} only takes POST")));
        };
        verb.name = "create";
        let (parts, body) = req.into_parts();
        let request = parse_object(&parts.headers, &read_body(body).await?)?;
        let opts = write_options(&q, &parts.headers)?;
        let reply = match action {
            "binding" => api.bind(&target, name, request, &opts).await?,
            _ => api.evict(&target, name, request, &opts).await?,
        };
        return Ok(reply_response(reply, "application/json"));
    }
    let sub = subresource(&target, path.subresource)?;
    let (headers, body) = {
        let (parts, body) = req.into_parts();
        (parts.headers, body)
    };
    let media = reply_type(&headers);
    if media == protobuf::PROTOBUF && !protobuf::encodable(&target.rt.group, &target.version, &target.rt.kind) {
        return Ok(reply_response(not_acceptable(), "application/json"));
    }
    let reply = match (&method, path.name) {
        (&Method::GET, None) if parse_bool(&q, "watch")? => {
            verb_allowed("watch")?;
            let params = WatchParams {
                list: list_params(&q)?,
                allow_bookmarks: parse_bool(&q, "allowWatchBookmarks")?,
                send_initial_events: q
                    .get("sendInitialEvents")
                    .map(|_| parse_bool(&q, "sendInitialEvents"))
                    .transpose()?,
                // 0 asks for no timeout of the client's own: the server's default applies.
                timeout: parse_number::<u64>(&q, "timeoutSeconds")?.filter(|s| *s > 0).map(Duration::from_secs),
                format: format(&headers, &q)?,
            };
            let stream = api.watch(&target, &params)?;
            let guard = state.metrics.watch_opened();
            let (api_version, content_type) = match media {
                protobuf::PROTOBUF => (Some(target.api_version()), "application/vnd.kubernetes.protobuf;stream=watch"),
                _ => (None, "application/json"),
            };
            let body = Body::from_stream(stream.map(move |lines| {
                let _open = &guard;
                Ok::<_, Infallible>(match &api_version {
                    Some(api_version) => {
                        let mut frames = bytes::BytesMut::new();
                        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                            frames.extend_from_slice(&protobuf::watch_frame(api_version, line));
                        }
                        frames.freeze()
                    }
                    None => lines,
                })
            }));
            return Ok((StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response());
        }
        (&Method::GET, None) => {
            verb_allowed("list")?;
            let params = list_params(&q)?;
            params.validate(false)?;
            api.await_resource_version(&target, &params).await?;
            api.list(&target, &params, format(&headers, &q)?)?
        }
        (&Method::GET, Some(name)) => match verb_allowed("get").map(|_| sub)? {
            Some(Subresource::Scale) => api.get_scale(&target, name)?,
            _ => api.get(&target, name, format(&headers, &q)?)?,
        },
        (&Method::POST, None) => {
            verb_allowed("create")?;
            let body = parse_object(&headers, &read_body(body).await?)?;
            api.create(&target, body, &write_options(&q, &headers)?).await?
        }
        (&Method::PUT, Some(name)) => {
            verb_allowed("update")?;
            let body = parse_object(&headers, &read_body(body).await?)?;
            api.update(&target, name, body, sub, &write_options(&q, &headers)?).await?.viewed_as(format(&headers, &q)?)
        }
        (&Method::PATCH, Some(name)) => {
            verb_allowed("patch")?;
            let bytes = read_body(body).await?;
            let opts = write_options(&q, &headers)?;
            let kind = match content_type(&headers).as_str() {
                "application/json-patch+json" => PatchType::Json,
                "application/merge-patch+json" => PatchType::Merge,
                "application/strategic-merge-patch+json" => PatchType::Strategic,
                "application/apply-patch+yaml" => {
                    let text =
                        std::str::from_utf8(&bytes).map_err(|_| StatusError::bad_request("the body is not UTF-8"))?;
                    let config = document::parse_yaml(text).map_err(|e| {
                        StatusError::bad_request(format!(
                            "invalid apply configuration at line {}: {}",
                            e.line, e.message
                        ))
                    })?;
                    let reply = api.apply(&target, name, config, sub, &opts).await?.viewed_as(format(&headers, &q)?);
                    return Ok(reply_response(reply, media));
                }
                other => {
                    return Err(StatusError::unsupported_media_type(format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {other:?})"
                    )));
                }
            };
            let patch: Value =
                serde_json::from_slice(&bytes).map_err(|e| StatusError::bad_request(format!("invalid patch: {e}")))?;
            api.patch(&target, name, kind, patch, sub, &opts).await?.viewed_as(format(&headers, &q)?)
        }
        (&Method::DELETE, name) => {
            let bytes = read_body(body).await?;
            let options: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
                Value::Null
            } else {
                serde_json::from_slice(&bytes)
                    .map_err(|e| StatusError::bad_request(format!("invalid DeleteOptions: {e}")))?
            };
            let mut opts = write_options(&q, &headers)?;
            opts.dry_run |=
                options.get("dryRun").and_then(Value::as_array).is_some_and(|d| d.iter().any(|v| v == "All"));
            match name {
                Some(name) => {
                    verb_allowed("delete")?;
                    api.delete(&target, name, &options, &opts).await?
                }
                None => {
                    verb_allowed("deletecollection")?;
                    api.delete_collection(&target, &list_params(&q)?, &options, &opts).await?
                }
            }
        }
        _ => {
            return Err(StatusError::method_not_allowed(format!("{method} is not supported on {uri_path}")));
        }
    };
    Ok(reply_response(reply, media))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Health with fixed checks.
    struct Checks(Vec<gitbacked_core::HealthCheck>);

    impl Health for Checks {
        fn checks(&self) -> Vec<gitbacked_core::HealthCheck> {
            self.0.clone()
        }
    }

    async fn readyz(checks: Vec<(&str, Option<&str>)>, uri: &str) -> (u16, String) {
        use tower::ServiceExt;
        let checks = checks
            .into_iter()
            .map(|(name, failure)| gitbacked_core::HealthCheck { name: name.into(), failure: failure.map(Into::into) })
            .collect();
        let endpoints = Endpoints {
            metrics: prometheus_client::registry::Registry::default(),
            health: Arc::new(Checks(checks)),
            webhook: webhook::Webhook::disabled(),
        };
        let storage = Arc::new(gitbacked_core::MemoryStorage::new(10));
        let app = router(Api::new(storage), endpoints);
        let response = app.oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        let code = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (code, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn readyz_names_each_failing_check_with_its_reason() {
        let branch = ("sync refs/heads/main", None);
        let leases = ("sync refs/gitbacked/leases/main", Some("remote unreachable"));
        assert_eq!(readyz(vec![branch], "/readyz").await, (200, "ok".into()));
        let (code, text) = readyz(vec![branch, leases], "/readyz").await;
        assert_eq!(code, 503);
        assert_eq!(
            text,
            "[+]sync refs/heads/main ok\n[-]sync refs/gitbacked/leases/main failed: remote unreachable\nreadyz check failed\n"
        );
        let (code, text) = readyz(vec![branch], "/readyz?verbose").await;
        assert_eq!((code, text.as_str()), (200, "[+]sync refs/heads/main ok\nreadyz check passed\n"));
    }

    /// Group, namespace, resource, name and subresource of a path.
    type Parts = (String, Option<String>, Option<String>, Option<String>, Option<String>);

    fn parse(path: &str) -> Option<Parts> {
        let segments = decode_segments(path).unwrap();
        let p = parse_path(&segments)?;
        let own = |s: Option<&str>| s.map(str::to_string);
        Some((p.group.to_string(), own(p.namespace), own(p.resource), own(p.name), own(p.subresource)))
    }

    #[test]
    fn path_segments_are_decoded_once() {
        let p = parse("/apis/rbac.authorization.k8s.io/v1/clusterroles/view%20pods").unwrap();
        assert_eq!(p.3.as_deref(), Some("view pods"));
        let p = parse("/api/v1/namespaces/default/configmaps/a%2525b").unwrap();
        assert_eq!(p.3.as_deref(), Some("a%25b"), "decoded once, not twice");
        assert!(decode_segments("/api/v1/namespaces/default/configmaps/%ff").is_err());
    }

    #[test]
    fn paths() {
        let some = |s: &str| Some(s.to_string());
        let p = parse("/api/v1/namespaces/default/configmaps/a").unwrap();
        assert_eq!(p, (String::new(), some("default"), some("configmaps"), some("a"), None));
        let p = parse("/api/v1/namespaces/dev/status").unwrap();
        assert_eq!(p, (String::new(), None, some("namespaces"), some("dev"), some("status")));
        let p = parse("/apis/apps/v1/namespaces/x/deployments/web/scale").unwrap();
        assert_eq!((p.0.as_str(), p.4), ("apps", some("scale")));
        assert_eq!(parse("/apis/apps/v1").unwrap().2, None);
        assert!(parse("/apis/apps/v1/a/b/c/d").is_none());
        assert!(parse("/api/v1//x").is_none());
    }
}
