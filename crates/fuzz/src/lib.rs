//! Fuzz targets: each takes arbitrary bytes, runs one part of gitbacked that reads untrusted input,
//! and panics when an invariant breaks (a panic of the code itself counts too). libFuzzer drives
//! them through `fuzz/` (`cargo fuzz run <target>`, see FUZZING.md); the test command replays the
//! committed corpus and a bounded number of mutations of it on stable Rust ([`mutate`]).

use std::sync::{Arc, OnceLock};

use gitbacked_apiserver::api::patch::{MAX_JSON_PATCH_COPY_BYTES, json_patch, merge_patch};
use gitbacked_apiserver::api::strategic::strategic_merge_patch;
use gitbacked_core::document::{parse_file, rewrite};
use gitbacked_core::schema::Node;
use gitbacked_core::selector::{FieldSelector, LabelSelector};
use gitbacked_core::validation::{NameRule, validate_name};
use serde_json::Value;

/// A fuzz target: it takes any bytes.
pub type Target = fn(&[u8]);

/// Every target by name, as the corpus directories and `fuzz/fuzz_targets` name them.
pub const TARGETS: [(&str, Target); 5] =
    [("document", document), ("patch", patch), ("selector", selector), ("path", path), ("request", request)];

/// The reader and the rewriter: a file parses without panicking, and every object found reads back
/// as written after its document is rewritten with it, or is gone after it is removed.
pub fn document(data: &[u8]) {
    for path in ["f.yaml", "f.json"] {
        let parsed = parse_file(path, data);
        let Ok(text) = std::str::from_utf8(data) else { continue };
        for found in parsed.objects.iter().take(4) {
            let written =
                rewrite(path, text, found.doc, found.item, Some(&found.value)).expect("a found object rewrites");
            let again = parse_file(path, written.as_deref().unwrap_or_default().as_bytes());
            assert!(
                again.objects.iter().any(|o| o.value == found.value),
                "a rewritten object reads back as written: {found:?}"
            );
            // A changed object (a value that needs quotes added, the first top-level key other
            // than the identity removed) goes through the minimal editor: it reads back too.
            let mut changed = found.value.clone();
            if let Some(meta) = changed.get_mut("metadata").and_then(Value::as_object_mut) {
                let annotations = meta.entry("annotations").or_insert_with(|| Value::Object(Default::default()));
                if let Some(annotations) = annotations.as_object_mut() {
                    annotations.insert("fuzz".into(), Value::String("0644".into()));
                }
            }
            if let Some(map) = changed.as_object_mut()
                && let Some(key) =
                    map.keys().find(|k| !["apiVersion", "kind", "metadata"].contains(&k.as_str())).cloned()
            {
                map.remove(&key);
            }
            let written = rewrite(path, text, found.doc, found.item, Some(&changed)).expect("a found object rewrites");
            let again = parse_file(path, written.as_deref().unwrap_or_default().as_bytes());
            let intended = gitbacked_core::document::implicit_namespace(&found.value, &changed);
            assert!(
                again.objects.iter().any(|o| o.value == *intended),
                "a changed object reads back as written: {found:?}"
            );
            let removed = rewrite(path, text, found.doc, found.item, None).expect("a found object is removed");
            let left = parse_file(path, removed.as_deref().unwrap_or_default().as_bytes());
            assert!(left.objects.len() < parsed.objects.len(), "removing an object leaves one fewer");
        }
    }
}

/// Patches: a document and a patch (two JSON values one after the other); JSON, merge and
/// strategic merge patches never panic, and a JSON patch never grows a document by more than it
/// may copy plus the patch itself.
pub fn patch(data: &[u8]) {
    let mut values = serde_json::Deserializer::from_slice(data).into_iter::<Value>();
    let (Some(Ok(doc)), Some(Ok(ops))) = (values.next(), values.next()) else { return };
    let size = |v: &Value| serde_json::to_vec(v).map_or(0, |b| b.len());
    if let Ok(out) = json_patch(&doc, &ops) {
        let bound = size(&doc) + size(&ops) + MAX_JSON_PATCH_COPY_BYTES;
        assert!(size(&out) <= bound, "a JSON patch grew the document past its budget");
    }
    let _ = merge_patch(&doc, &ops);
    let _ = strategic_merge_patch(&doc, &ops, Node::builtin("apps", "v1", "Deployment"));
}

/// Label and field selectors parse or are refused, and match without panicking.
pub fn selector(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let labels = [("app", "web"), ("tier", "front")];
    if let Ok(selector) = LabelSelector::parse(text) {
        selector.matches(|k| labels.iter().find(|(key, _)| *key == k).map(|(_, v)| *v));
    }
    if let Ok(selector) = FieldSelector::parse(text, &["metadata.name", "metadata.namespace", "status.phase"]) {
        selector.matches(|f| (f == "metadata.name").then(|| "a".to_string()));
    }
}

/// Names that are valid for some kind map to paths inside their kind's directory whose every
/// component a file system takes.
pub fn path(data: &[u8]) {
    let Ok(name) = std::str::from_utf8(data) else { return };
    for rule in [NameRule::DnsLabel, NameRule::DnsSubdomain, NameRule::PathSegment] {
        if validate_name(name, rule).is_err() {
            continue;
        }
        for files in [0, gitbacked_git::layout::FLAT_LIMIT] {
            let path = gitbacked_git::layout::canonical_path("ns/kinds.example.com", name, files);
            let rest = path.strip_prefix("ns/kinds.example.com/").expect("inside the kind's directory");
            for component in rest.split('/') {
                assert!(!component.is_empty() && component != "." && component != "..", "{path}");
                assert!(component.len() <= 255, "{path}");
            }
        }
    }
}

/// Requests: the first byte picks a content type and a verb, the rest is the body, sent through
/// the Router over a [`gitbacked_core::MemoryStorage`]. Whatever the body, the answer is a `Status`
/// or an object, never a 500.
pub fn request(data: &[u8]) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    const TYPES: [&str; 7] = [
        "application/json",
        "application/yaml",
        "application/vnd.kubernetes.protobuf",
        "application/merge-patch+json",
        "application/json-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ];
    let Some((first, body)) = data.split_first() else { return };
    let content_type = TYPES[usize::from(*first) % TYPES.len()];
    let (method, uri) = match content_type {
        "application/json" | "application/yaml" | "application/vnd.kubernetes.protobuf" => {
            ("POST", "/api/v1/namespaces/default/configmaps")
        }
        _ => ("PATCH", "/apis/apps/v1/namespaces/default/deployments/web?fieldManager=fuzz"),
    };
    let runtime = runtime();
    let request = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(axum::body::Body::from(body.to_vec()))
        .expect("a request");
    let (code, answer) = runtime.block_on(async {
        // A fresh server for every input: each one starts from the same state.
        let router = server().await;
        let response = router.oneshot(request).await.expect("the Router answers");
        let code = response.status().as_u16();
        (code, response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default())
    });
    assert_ne!(code, 500, "{}", String::from_utf8_lossy(&answer));
}

/// The runtime every request of a run is sent on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime"))
}

/// A Router over an empty [`gitbacked_core::MemoryStorage`] holding a Deployment `web` to patch.
async fn server() -> axum::Router {
    use tower::ServiceExt;
    let storage = Arc::new(gitbacked_core::MemoryStorage::new(16));
    let endpoints = gitbacked_apiserver::Endpoints {
        metrics: Default::default(),
        health: Arc::new(NoChecks),
        webhook: Default::default(),
    };
    let router = gitbacked_apiserver::router(gitbacked_apiserver::Api::new(storage), endpoints);
    let web = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    let create = http::Request::post("/apis/apps/v1/namespaces/default/deployments")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(web.to_string()))
        .expect("a request");
    let created = router.clone().oneshot(create).await.expect("the Router answers");
    assert_eq!(created.status().as_u16(), 201);
    router
}

/// Readiness with nothing to check.
struct NoChecks;

impl gitbacked_core::Health for NoChecks {
    fn checks(&self) -> Vec<gitbacked_core::HealthCheck> {
        Vec::new()
    }
}

/// A mutation of `input` drawn from `seed`: bytes flipped, inserted, removed or copied from
/// `other`, as a fuzzer's mutator does, for runs on stable Rust without libFuzzer.
pub fn mutate(input: &[u8], other: &[u8], seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = input.to_vec();
    for _ in 0..1 + next() % 4 {
        let at = if out.is_empty() { 0 } else { (next() % out.len() as u64) as usize };
        match next() % 5 {
            0 if !out.is_empty() => out[at] ^= 1 << (next() % 8),
            1 => out.insert(at, b"{}[]:,-\n \"0a".get((next() % 13) as usize).copied().unwrap_or(b'x')),
            2 if !out.is_empty() => drop(out.remove(at)),
            3 if !other.is_empty() => {
                let from = (next() % other.len() as u64) as usize;
                let len = (next() % 32) as usize;
                let piece = &other[from..(from + len).min(other.len())];
                out.splice(at..at, piece.iter().copied());
            }
            _ => out.truncate(at),
        }
    }
    out
}
