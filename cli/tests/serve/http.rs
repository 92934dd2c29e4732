//! Raw HTTP against `gitbacked serve`: metrics, health, and bad input answered with a `Status` that
//! commits nothing.

use serde_json::json;

use std::time::Duration;

use crate::support::{HttpResponse, ServeOptions, Server, eventually, try_http};

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const JSON: (&str, &str) = ("Content-Type", "application/json");

fn post(server: &Server, path: &str, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> HttpResponse {
    server.http("POST", path, headers, Some(body.into()))
}

/// Asserts a failure `Status` with `code` and `reason`.
fn assert_status(r: &HttpResponse, code: u16, reason: &str) {
    assert_eq!(r.status, code, "{}", r.text());
    let status = r.json();
    assert_eq!(status["kind"], "Status", "{status}");
    assert_eq!(status["status"], "Failure", "{status}");
    assert_eq!(status["code"], code, "{status}");
    assert_eq!(status["reason"], reason, "{status}");
    assert!(status["message"].as_str().is_some_and(|m| !m.is_empty()), "{status}");
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")), "{:?}", r.headers);
}

#[test]
fn health_and_version() {
    let server = Server::start();
    for path in ["/healthz", "/readyz", "/livez"] {
        let r = server.http("GET", path, &[], None);
        assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{path}");
    }
    let version = server.http("GET", "/version", &[], None).json();
    assert_eq!(version["major"], "1");
    assert!(version["gitVersion"].as_str().is_some_and(|v| v.starts_with("v1.")), "{version}");
}

#[test]
fn metrics_count_requests_and_objects() {
    let server = Server::start();
    server.create_configmap("default", "counted", &[("a", "b")]);
    server.kubectl_ok(&["get", "configmaps"]);
    let r = server.http("GET", "/metrics", &[], None);
    assert_eq!(r.status, 200);
    let metrics = r.text();
    let samples: Vec<&str> = metrics.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(
        samples.iter().any(|l| l.starts_with("gitbacked_apiserver_requests_total{")
            && l.contains("resource=\"configmaps\"")
            && l.contains("code=\"201\"")),
        "no request counted for the create:\n{metrics}"
    );
    assert!(
        samples.iter().any(|l| l.starts_with("gitbacked_apiserver_requests_total{")
            && l.contains("resource=\"configmaps\"")
            && l.contains("code=\"200\"")),
        "no request counted for the list:\n{metrics}"
    );
    let objects = samples
        .iter()
        .find(|l| l.starts_with("gitbacked_objects"))
        .unwrap_or_else(|| panic!("no gitbacked_objects:\n{metrics}"));
    let count: f64 = objects.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 1.0, "{objects}");
    // git operations are counted per reference: the create was pushed to the branch (directly: the
    // remote is a bare repository on this machine), and the lease ref is fetched at start like the
    // branch.
    let git = |reference: &str, operation: &str| {
        samples.iter().any(|l| {
            l.starts_with("gitbacked_git_operations_total{")
                && l.contains(&format!("reference=\"{reference}\""))
                && l.contains(&format!("operation=\"{operation}\""))
        })
    };
    assert!(git("refs/heads/main", "direct-push"), "no push counted for the branch:\n{metrics}");
    assert!(git("refs/gitbacked/leases/main", "fetch"), "no fetch counted for the lease ref:\n{metrics}");
}

#[test]
fn metrics_label_requests_by_verb() {
    let server = Server::start();
    server.create_configmap("default", "counted", &[("a", "b")]);
    server.kubectl_ok(&["get", "configmaps"]);
    server.kubectl_ok(&["get", "configmap", "counted"]);
    let metrics = server.http("GET", "/metrics", &[], None).text();
    for verb in ["create", "list", "get"] {
        let label = format!("verb=\"{verb}\",resource=\"configmaps\"");
        assert!(
            metrics.lines().any(|l| l.starts_with("gitbacked_apiserver_requests_total{") && l.contains(&label)),
            "no {label}:\n{metrics}"
        );
    }
    assert!(!metrics.contains("verb=\"unknown\",resource=\"configmaps\""), "{metrics}");
}

#[test]
fn bad_input_is_refused_and_commits_nothing() {
    let server = Server::start();
    let before = server.remote.log();

    // Malformed JSON.
    let r = post(&server, CONFIGMAPS, &[JSON], r#"{"apiVersion": "v1", "kind": "#);
    assert_status(&r, 400, "BadRequest");
    // A body whose kind does not match the URL.
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}});
    let r = post(&server, CONFIGMAPS, &[JSON], secret.to_string());
    assert_status(&r, 400, "BadRequest");
    // A body that is not an object.
    let r = post(&server, CONFIGMAPS, &[JSON], "[1, 2]");
    assert_status(&r, 400, "BadRequest");
    // A namespace in the body that differs from the URL's.
    let elsewhere = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "other"}});
    let r = post(&server, CONFIGMAPS, &[JSON], elsewhere.to_string());
    assert!(r.status == 400 || r.status == 422, "{}", r.text());

    // Invalid names, including ones that would escape the directory.
    for name in ["Bad_Name", "../escape", "a/b", ""] {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
        let r = post(&server, CONFIGMAPS, &[JSON], cm.to_string());
        assert_status(&r, 422, "Invalid");
        let status = r.json();
        assert_eq!(status["details"]["kind"], "ConfigMap", "{status}");
        assert!(
            status["details"]["causes"].as_array().is_some_and(|c| c.iter().any(|c| c["field"] == "metadata.name")),
            "{status}"
        );
    }
    let r = post(
        &server,
        "/api/v1/namespaces/Not_A_Namespace/configmaps",
        &[JSON],
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok"}}).to_string(),
    );
    assert!(r.status == 422 || r.status == 400 || r.status == 404, "{}", r.text());

    // A body over 3 MiB.
    let big = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"k": "x".repeat(3 * 1024 * 1024 + 16)}});
    let r = post(&server, CONFIGMAPS, &[JSON], big.to_string());
    assert_status(&r, 413, "RequestEntityTooLarge");

    // Unknown resources, groups and paths.
    let r = server.http("GET", "/api/v1/namespaces/default/gadgets", &[], None);
    assert_status(&r, 404, "NotFound");
    let r = post(&server, "/apis/nope.example.com/v1/namespaces/default/things", &[JSON], "{}");
    assert_status(&r, 404, "NotFound");
    let r = server.http("GET", "/not/an/api/path", &[], None);
    assert_status(&r, 404, "NotFound");
    let r = server.http("GET", &format!("{CONFIGMAPS}/missing"), &[], None);
    assert_status(&r, 404, "NotFound");

    // Unsupported media types, on create and on patch.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "typed"}});
    let r = post(&server, CONFIGMAPS, &[("Content-Type", "text/plain")], cm.to_string());
    assert_status(&r, 415, "UnsupportedMediaType");
    let r = post(&server, CONFIGMAPS, &[("Content-Type", "application/cbor")], cm.to_string());
    assert_status(&r, 415, "UnsupportedMediaType");
    // A protobuf body that is not protobuf (JSON sent under the protobuf type).
    let r = post(&server, CONFIGMAPS, &[("Content-Type", "application/vnd.kubernetes.protobuf")], cm.to_string());
    assert_status(&r, 400, "BadRequest");
    let r =
        server.http("PATCH", &format!("{CONFIGMAPS}/typed"), &[("Content-Type", "text/plain")], Some(b"{}".to_vec()));
    assert_status(&r, 415, "UnsupportedMediaType");

    // Bad query parameters.
    let r = server.http("GET", &format!("{CONFIGMAPS}?limit=many"), &[], None);
    assert_status(&r, 400, "BadRequest");
    let r = post(&server, &format!("{CONFIGMAPS}?dryRun=Some"), &[JSON], cm.to_string());
    assert_status(&r, 400, "BadRequest");
    let r = server.http("GET", &format!("{CONFIGMAPS}?labelSelector=a%20in%20("), &[], None);
    assert_status(&r, 400, "BadRequest");

    // A dry run validates and writes nothing.
    let r = post(&server, &format!("{CONFIGMAPS}?dryRun=All"), &[JSON], cm.to_string());
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["metadata"]["name"], "typed");
    let r = server.http("GET", &format!("{CONFIGMAPS}/typed"), &[], None);
    assert_status(&r, 404, "NotFound");

    assert_eq!(server.remote.log(), before, "bad requests committed something");
    assert_eq!(server.remote.files(), ["README.md"]);
}

#[test]
fn post_without_content_type_is_json() {
    // What the Python client sends.
    let server = Server::start();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "untyped"}, "data": {"a": "b"}});
    let r = post(&server, CONFIGMAPS, &[], cm.to_string());
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["metadata"]["name"], "untyped");
    assert!(server.remote.must_file("default/configmaps/untyped.yaml").contains("a: b"));
    assert_eq!(server.remote.log()[0], "create v1 ConfigMap default/untyped");

    // YAML bodies are accepted with their media type.
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yamled\ndata:\n  c: d\n";
    let r = post(&server, CONFIGMAPS, &[("Content-Type", "application/yaml")], yaml);
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(server.remote.must_file("default/configmaps/yamled.yaml").contains("c: d"));
}

/// Reads from a connection until the server closes it; `true` when it did within `within`.
fn closed_by_server(stream: &mut std::net::TcpStream, within: Duration) -> bool {
    use std::io::Read;
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 256];
    let started = std::time::Instant::now();
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return started.elapsed() < within,
        }
    }
}

#[test]
fn slow_headers_time_out_and_connections_are_capped() {
    use std::io::Write;
    let args = ["--max-connections", "4", "--request-header-timeout", "1s"].map(String::from).to_vec();
    let server = Server::start_with(ServeOptions { args, ..Default::default() });

    // Headers that never end: the connection is closed after the header timeout.
    let mut slow = std::net::TcpStream::connect(server.addr).unwrap();
    slow.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n").unwrap();
    assert!(closed_by_server(&mut slow, Duration::from_secs(5)), "the slow request was not cut off");

    // Idle connections up to the cap; the next one is closed at once, and the refusal is logged.
    let idle: Vec<std::net::TcpStream> = (0..4).map(|_| std::net::TcpStream::connect(server.addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut over = std::net::TcpStream::connect(server.addr).unwrap();
    assert!(closed_by_server(&mut over, Duration::from_millis(800)), "a connection over the cap was kept");
    eventually("the refusal is logged", || server.log().contains("connection limit is reached"));
    // The idle ones time out too, and the server answers again.
    drop(idle);
    eventually("/livez answers", || {
        try_http(server.addr, "GET", "/livez", &[], None, Duration::from_secs(2)).is_ok_and(|r| r.status == 200)
    });
}
