//! Bearer tokens and TLS: `--token-file`, `--tls-cert`/`--tls-key`, and the kubeconfigs that
//! `gitbacked kubeconfig` writes for them.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{COMMAND_TIMEOUT, ServeOptions, Server, have, run_bounded, self_signed_certificate};

const TOKEN: &str = "s3cret-t0ken";

#[test]
fn token_file_guards_the_api_but_not_health() {
    let server = Server::start_with(ServeOptions { token: Some(TOKEN.into()), ..Default::default() });
    for path in ["/healthz", "/readyz", "/livez"] {
        let r = server.http("GET", path, &[], None);
        assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{path}");
    }
    let r = server.http("GET", "/api/v1/namespaces/default/configmaps", &[], None);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["reason"], "Unauthorized");
    for bad in ["Bearer wrong", "Bearer ", TOKEN, "Basic czNjcmV0LXQwa2Vu"] {
        let r = server.http("GET", "/version", &[("Authorization", bad)], None);
        assert_eq!(r.status, 401, "{bad:?} was accepted");
    }
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"sneaky"}}"#;
    let r = server.http(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &[("Content-Type", "application/json"), ("Authorization", "Bearer wrong")],
        Some(cm.into()),
    );
    assert_eq!(r.status, 401);
    assert_eq!(server.remote.file("default/configmaps/sneaky.yaml"), None);

    let bearer = format!("Bearer {TOKEN}");
    let r = server.http("GET", "/api/v1/namespaces/default/configmaps", &[("Authorization", &bearer)], None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["kind"], "ConfigMapList");
    // The scheme is case-insensitive (RFC 7235), as client libraries that write `bearer` expect.
    let lower = format!("bearer {TOKEN}");
    let r = server.http("GET", "/api/v1/namespaces/default/configmaps", &[("Authorization", &lower)], None);
    assert_eq!(r.status, 200, "{}", r.text());
}

/// kubectl sends a kubeconfig's token over https only, so the kubectl side of `--token-file` runs on TLS.
#[test]
fn token_file_with_kubectl() {
    let certs = tempfile::tempdir().unwrap();
    let Some(tls) = self_signed(certs.path()) else { return };
    let server = Server::start_with(ServeOptions { tls: Some(tls), token: Some(TOKEN.into()), ..Default::default() });
    // `kubeconfig` carries the token; `no-token` is what `gitbacked kubeconfig` writes without one.
    server.write_kubeconfig("no-token", None);
    server.write_kubeconfig("wrong-token", Some("not-the-token"));

    for kubeconfig in ["no-token", "wrong-token"] {
        let out = server.kubectl_as(kubeconfig, &["get", "configmaps"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{kubeconfig} was accepted");
        assert!(
            err.contains("Unauthorized") || err.contains("You must be logged in to the server"),
            "kubectl with {kubeconfig} should report Unauthorized: {err}"
        );
    }
    let sneaky = server.configmap_manifest("default", "sneaky", &[("a", "b")]);
    let out = server.kubectl_as("wrong-token", &["create", "-f", &sneaky]);
    assert!(!out.status.success(), "a wrong token created an object");
    assert_eq!(server.remote.file("default/configmaps/sneaky.yaml"), None);

    assert_eq!(server.create_configmap("default", "allowed", &[("a", "b")]), "configmap/allowed created\n");
    assert!(server.remote.must_file("default/configmaps/allowed.yaml").contains("a: b"));
    assert_eq!(server.kubectl_ok(&["get", "configmaps", "-o", "name"]), "configmap/allowed\n");
}

/// A self-signed certificate for 127.0.0.1, `None` (with a message) without openssl and curl.
fn self_signed(server_dir: &std::path::Path) -> Option<(PathBuf, PathBuf)> {
    if !have("curl") {
        eprintln!("SKIPPED: the TLS test needs curl on the PATH");
        return None;
    }
    self_signed_certificate(server_dir, "/CN=localhost", Some("IP:127.0.0.1"))
}

#[test]
fn tls_serves_kubectl() {
    let certs = tempfile::tempdir().unwrap();
    let Some(tls) = self_signed(certs.path()) else { return };
    let server = Server::start_with(ServeOptions { tls: Some(tls), token: Some(TOKEN.into()), ..Default::default() });
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);
    let kubeconfig = std::fs::read_to_string(server.path("kubeconfig")).unwrap();
    assert!(kubeconfig.contains("insecure-skip-tls-verify: true"), "{kubeconfig}");
    assert!(kubeconfig.contains(&format!("server: {}", server.url)), "{kubeconfig}");

    assert_eq!(server.create_configmap("default", "secure", &[("k", "v")]), "configmap/secure created\n");
    assert!(server.remote.must_file("default/configmaps/secure.yaml").contains("k: v"));
    let table = server.kubectl_ok(&["get", "configmaps"]);
    assert!(table.lines().nth(1).is_some_and(|l| l.starts_with("secure ")), "{table}");

    // Health endpoints answer over TLS without a token; plain HTTP is not served on the port.
    let curl = |url: &str| {
        let out = run_bounded(
            Command::new("curl").args(["-sk", "--max-time", "10", "-w", " %{http_code}"]).arg(url),
            COMMAND_TIMEOUT,
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl(&format!("{}/healthz", server.url)), "ok 200");
    assert_eq!(curl(&format!("{}/readyz", server.url)), "ok 200");
    assert!(curl(&format!("{}/api/v1/namespaces/default/configmaps", server.url)).ends_with(" 401"));
    let plain = curl(&format!("http://{}/healthz", server.addr));
    assert!(!plain.starts_with("ok"), "plain HTTP answered on the TLS port: {plain}");
}

/// Lists the ConfigMaps of `default` through a kubeconfig with kubectl, the Python client and
/// client-node; each answers the names it saw.
fn every_client_lists(server: &Server, kubeconfig: &str) {
    let path = server.path(kubeconfig);
    let kubectl = server.kubectl_ok_as(kubeconfig, &["get", "configmaps", "-o", "name"]);
    assert_eq!(kubectl, "configmap/seen\n", "kubectl with {kubeconfig}");
    let python = server.python(
        &format!("{kubeconfig}-python"),
        &format!(
            "import json\nfrom kubernetes import client, config\nconfig.load_kube_config(config_file={:?})\n\
             items = client.CoreV1Api().list_namespaced_config_map('default').items\n\
             print(json.dumps([i.metadata.name for i in items]))\n",
            path.display().to_string()
        ),
    );
    assert_eq!(python, serde_json::json!(["seen"]), "Python with {kubeconfig}");
    let node = server.node(
        &format!("{kubeconfig}-node"),
        "import * as k8s from '@kubernetes/client-node';\n\
         const kc = new k8s.KubeConfig();\nkc.loadFromFile(process.argv[2]);\n\
         const list = await kc.makeApiClient(k8s.CoreV1Api).listNamespacedConfigMap({ namespace: 'default' });\n\
         console.log(JSON.stringify(list.items.map((i) => i.metadata.name)));\n",
        &[path.as_os_str()],
    );
    assert_eq!(node.trim(), r#"["seen"]"#, "client-node with {kubeconfig}");
}

#[test]
fn kubeconfigs_serve_kubectl_python_and_client_node() {
    // Plain http (no token: kubectl sends tokens over https only); client-node refuses http unless
    // TLS verification is skipped.
    let server = Server::start();
    server.create_configmap("default", "seen", &[("a", "b")]);
    every_client_lists(&server, "kubeconfig");

    // https, verified against the server's own (self-signed) certificate.
    let certs = tempfile::tempdir().unwrap();
    let Some((cert, key)) = self_signed(certs.path()) else { return };
    let server = Server::start_with(ServeOptions {
        tls: Some((cert.clone(), key)),
        token: Some(TOKEN.into()),
        ..Default::default()
    });
    let ca = [std::ffi::OsStr::new("--certificate-authority"), cert.as_os_str()];
    let verified = server.write_kubeconfig_with("verified", Some(TOKEN), &ca);
    let text = std::fs::read_to_string(&verified).unwrap();
    assert!(text.contains("certificate-authority-data: ") && !text.contains("insecure"), "{text}");
    server.create_configmap("default", "seen", &[("a", "b")]);
    every_client_lists(&server, "verified");
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let mut server = Server::start();
    server.create_configmap("default", "before-stop", &[("a", "b")]);
    let status = server.terminate();
    assert!(status.success(), "exit status {status}: {}", server.log());
    assert!(server.log().contains("shutting down"), "{}", server.log());
    // What was acknowledged is in the remote.
    assert!(server.remote.file("default/configmaps/before-stop.yaml").is_some());
}
