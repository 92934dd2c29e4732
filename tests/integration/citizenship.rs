//! Git citizenship (issue 14): writes through the API change only what changed in a person's
//! files. Comments, indentation, quotes, flow maps, key order and the neighbouring documents stay
//! byte for byte; a write that changes nothing commits nothing.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::support::{Remote, metrics, open, within};

/// A person's file: a Deployment written their way, and a ConfigMap after it.
const PERSON: &str = r#"# The web front end. Owned by the web team.
apiVersion: apps/v1
kind: Deployment
metadata:
    name: "web"
    labels: {app: web, tier: "front"}   # the selector below matches these
spec:
    replicas: 2 # raised for the launch
    selector:
        matchLabels: {app: web}

    # The pods.
    template:
        metadata:
            labels: {app: web, tier: "front"}
        spec:
            containers:
                - name: "web"
                  image: "registry.example.com/web:1.4.2"
                  args: ["--port", "8080"]
                  resources:
                      limits: {memory: "512Mi"}
---
# Settings, kept next to the workload.
apiVersion: v1
kind: ConfigMap
metadata:
    name: web-settings
data:
    mode: "0644"
"#;

const JSON_FILE: &str = "{\n    \"apiVersion\": \"v1\",\n    \"kind\": \"ConfigMap\",\n    \"metadata\": {\n        \"name\": \"flags\"\n    },\n    \"data\": {\n        \"beta\": \"off\",\n        \"color\": \"blue\"\n    }\n}\n";

/// The lines removed and added between two versions of a file (one hunk: the common head and
/// tail are left out).
fn hunk(before: &str, after: &str) -> (Vec<String>, Vec<String>) {
    let (a, b): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let room = a.len().min(b.len()) - head;
    let tail = a.iter().rev().zip(b.iter().rev()).take(room).take_while(|(x, y)| x == y).count();
    let owned = |lines: &[&str]| lines.iter().map(|l| l.to_string()).collect();
    (owned(&a[head..a.len() - tail]), owned(&b[head..b.len() - tail]))
}

fn lines(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|l| l.to_string()).collect()
}

#[tokio::test]
async fn writes_change_only_what_changed() {
    within(90, async {
        let remote = Remote::new();
        remote.commit(&[("apps/web.yaml", Some(PERSON)), ("apps/flags.json", Some(JSON_FILE))], "by hand");
        let store = open(&remote).await;
        let deployments: Api<Deployment> = Api::namespaced(store.client(), "default");
        let configmaps: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let params = PatchParams::default();
        let neighbour = &PERSON[PERSON.find("---").unwrap()..];

        // One value: one line, its comment kept; the namespace stays implicit.
        deployments.patch("web", &params, &Patch::Merge(json!({"spec": {"replicas": 3}}))).await.unwrap();
        let file = remote.must_file("apps/web.yaml");
        assert_eq!(
            hunk(PERSON, &file),
            (lines(&["    replicas: 2 # raised for the launch"]), lines(&["    replicas: 3 # raised for the launch"]))
        );

        // Counted as a document edited in place (`gitbacked_documents_written`).
        let edited = metrics(&store).await;
        assert!(
            edited.lines().any(|l| l.starts_with("gitbacked_documents_written_total{how=\"edited\"} ")),
            "{edited}"
        );
        assert!(!edited.contains("how=\"written-anew\""), "{edited}");

        // A label goes into the flow map it joins.
        let before = file;
        deployments
            .patch("web", &params, &Patch::Merge(json!({"metadata": {"labels": {"team": "web"}}})))
            .await
            .unwrap();
        let file = remote.must_file("apps/web.yaml");
        assert_eq!(
            hunk(&before, &file),
            (
                lines(&[r#"    labels: {app: web, tier: "front"}   # the selector below matches these"#]),
                lines(&[r#"    labels: {app: web, tier: "front", team: web}   # the selector below matches these"#])
            )
        );

        // A status goes last, in the file's indentation; the next one changes only its lines.
        let before = file;
        let status = json!({"status": {"observedGeneration": 2, "replicas": 3, "readyReplicas": 1}});
        deployments.patch_status("web", &params, &Patch::Merge(status)).await.unwrap();
        let file = remote.must_file("apps/web.yaml");
        let added = "status:\n    observedGeneration: 2\n    readyReplicas: 1\n    replicas: 3\n";
        let (removed, added_lines) = hunk(&before, &file);
        assert!(removed.is_empty(), "{file}");
        assert_eq!(added_lines.len(), 4, "{file}");
        assert!(file.starts_with(&before[..before.find("---").unwrap()]), "{file}");
        for line in added.lines() {
            assert!(added_lines.iter().any(|l| l == line), "{line:?} not in {added_lines:?}");
        }
        assert_eq!(added_lines[0], "status:");
        let before = file;
        deployments.patch_status("web", &params, &Patch::Merge(json!({"status": {"readyReplicas": 3}}))).await.unwrap();
        let file = remote.must_file("apps/web.yaml");
        assert_eq!(hunk(&before, &file), (lines(&["    readyReplicas: 1"]), lines(&["    readyReplicas: 3"])));

        // The neighbouring document is untouched, byte for byte, and the namespace stays implicit.
        assert!(file.ends_with(neighbour), "{file}");
        assert!(!file.contains("namespace"), "{file}");

        // Its own write: the quotes of a value that needs them are kept.
        let before = file;
        configmaps.patch("web-settings", &params, &Patch::Merge(json!({"data": {"mode": "0600"}}))).await.unwrap();
        let file = remote.must_file("apps/web.yaml");
        assert_eq!(hunk(&before, &file), (lines(&[r#"    mode: "0644""#]), lines(&[r#"    mode: "0600""#])));

        // JSON keeps its indentation and key order.
        configmaps.patch("flags", &params, &Patch::Merge(json!({"data": {"beta": "on"}}))).await.unwrap();
        let json_file = remote.must_file("apps/flags.json");
        assert_eq!(
            hunk(JSON_FILE, &json_file),
            (lines(&[r#"        "beta": "off","#]), lines(&[r#"        "beta": "on","#]))
        );

        // A write that changes nothing commits nothing, and leaves the bytes alone.
        let commits = remote.commit_count();
        deployments.patch("web", &params, &Patch::Merge(json!({"spec": {"replicas": 3}}))).await.unwrap();
        configmaps.patch("flags", &params, &Patch::Merge(json!({"data": {"beta": "on"}}))).await.unwrap();
        assert_eq!(remote.commit_count(), commits, "nothing committed");
        assert_eq!(remote.must_file("apps/web.yaml"), file);
        store.close().await.unwrap();
    })
    .await;
}
