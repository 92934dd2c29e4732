//! Minimal writes (issue 14): a corpus of real-world-shaped manifests, random single-value edits
//! written through `document::rewrite`, and how many of them change only the lines they must.
//!
//! `cargo run --release -p gitbacked-bench -- minimal-writes [--files 400] [--edits 4000] [--seed 14]`
//!
//! A diff is *minimal* when the line diff (longest common subsequence of lines) of the whole file
//! before and after the write has no more removed and added lines than the edit needs:
//! - a changed scalar: the one line holding it (1 removed, 1 added); a changed line of a block
//!   scalar likewise;
//! - an added entry or item: no removed line, at most the lines of the entry written in block
//!   style; into a flow collection its line instead (1 removed, 1 added);
//! - a removed entry or item: no added line, at most the entry's lines in block style (comment and
//!   blank lines inside it not counted, nor an empty flow collection on a line of its own); from a
//!   flow collection its line (1 removed, 1 added); when it was the first entry of a sequence
//!   item, the item's `- ` moves to the next entry's line (1 removed, 1 added); a map or list left
//!   empty may turn its key's line into `key: {}` (1 added);
//! - in JSON, the line before an added or removed entry may change for its comma (1 each);
//! - a write that changes no value changes no byte.
//!
//! Every write is also read back with the reader (`parse_file`) and must yield the intended object.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use gitbacked_core::document::{self, Fidelity};

use crate::compare;
use serde_json::{Value, json};

/// Options of `minimal-writes`.
#[derive(clap::Args, Clone, Debug)]
pub struct MinimalArgs {
    /// How many files the corpus has.
    #[arg(long, default_value_t = 400)]
    pub files: usize,
    /// How many random edits are written.
    #[arg(long, default_value_t = 4000)]
    pub edits: usize,
    /// The seed of the corpus and the edits.
    #[arg(long, default_value_t = 14)]
    pub seed: u64,
    /// Writes the corpus into this directory too (to look at, or to feed other tools).
    #[arg(long)]
    pub dump: Option<std::path::PathBuf>,
    /// Also runs the edits of YAML documents through the lossless editors of crates.io.
    #[arg(long)]
    pub compare: bool,
}

/// A small deterministic generator (xorshift64*): the corpus is the same for a seed everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const WORDS: [&str; 16] = [
    "web", "api", "cache", "worker", "frontend", "billing", "search", "auth", "queue", "metrics", "gateway", "store",
    "mailer", "report", "ingest", "admin",
];

/// How a person (or a tool) writes YAML.
struct Style {
    indent: usize,
    /// `- ` indented under its key, or at the key's column.
    seq_indented: bool,
    quote: char,
}

impl Style {
    fn pad(&self, level: usize) -> String {
        " ".repeat(self.indent * level)
    }

    fn seq(&self, level: usize) -> String {
        self.pad(level + usize::from(self.seq_indented))
    }

    fn q(&self, s: &str) -> String {
        format!("{0}{s}{0}", self.quote)
    }
}

/// A generated corpus: file paths and texts.
pub fn corpus(files: usize, seed: u64) -> Vec<(String, String)> {
    let mut rng = Rng(seed.max(1));
    (0..files)
        .map(|i| {
            let name = format!("{}-{i}", rng.pick(&WORDS));
            match i % 8 {
                0 | 1 => (format!("helm/{name}.yaml"), helm(&mut rng, &name)),
                2 => (format!("base/{name}/deployment.yaml"), kustomize(&mut rng, &name)),
                3 | 4 => (format!("hand/{name}.yaml"), hand(&mut rng, &name)),
                5 => (format!("crds/{name}.yaml"), crd(&mut rng, &name)),
                6 => (format!("lists/{name}.yaml"), list(&mut rng, &name)),
                _ => (format!("json/{name}.json"), json_file(&mut rng, &name)),
            }
        })
        .collect()
}

/// `helm template` output: `# Source:` comments, `---` separators, quoted versions and values,
/// sequences indented under their key.
fn helm(rng: &mut Rng, name: &str) -> String {
    let s = Style { indent: 2, seq_indented: true, quote: '"' };
    let version = format!("1.{}.{}", rng.below(30), rng.below(10));
    let labels = format!(
        "    helm.sh/chart: {name}-0.1.{}\n    app.kubernetes.io/name: {name}\n    app.kubernetes.io/instance: release\n    app.kubernetes.io/version: \"{version}\"\n    app.kubernetes.io/managed-by: Helm\n",
        rng.below(9)
    );
    let port = 8000 + rng.below(1000);
    let mut out = format!(
        "---\n# Source: {name}/templates/serviceaccount.yaml\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: release-{name}\n  labels:\n{labels}---\n# Source: {name}/templates/service.yaml\napiVersion: v1\nkind: Service\nmetadata:\n  name: release-{name}\n  labels:\n{labels}spec:\n  type: ClusterIP\n  ports:\n{seq}- port: 80\n{seq}  targetPort: http\n{seq}  protocol: TCP\n{seq}  name: http\n  selector:\n    app.kubernetes.io/name: {name}\n    app.kubernetes.io/instance: release\n",
        seq = s.seq(1)
    );
    out += &format!(
        "---\n# Source: {name}/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: release-{name}\n  labels:\n{labels}spec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: {name}\n  template:\n    metadata:\n      annotations:\n        checksum/config: {checksum:016x}\n      labels:\n        app.kubernetes.io/name: {name}\n    spec:\n      serviceAccountName: release-{name}\n      securityContext:\n        {{}}\n      containers:\n        - name: {name}\n          image: \"registry.example.com/{name}:{version}\"\n          imagePullPolicy: IfNotPresent\n          args:\n            - \"--port={port}\"\n            - \"--log-level=info\"\n          env:\n            - name: LOG_FORMAT\n              value: \"json\"\n            - name: CACHE_SIZE\n              value: \"{cache}\"\n            - name: FEATURE_X\n              value: \"true\"\n          ports:\n            - name: http\n              containerPort: {port}\n              protocol: TCP\n          livenessProbe:\n            httpGet:\n              path: /healthz\n              port: http\n          resources:\n            limits:\n              cpu: {cpu}m\n              memory: {mem}Mi\n            requests:\n              cpu: 100m\n              memory: 128Mi\n",
        replicas = 1 + rng.below(5),
        checksum = rng.next(),
        cache = 64 * (1 + rng.below(8)),
        cpu = 250 * (1 + rng.below(4)),
        mem = 256 * (1 + rng.below(4)),
    );
    if rng.chance(50) {
        out += &format!(
            "---\n# Source: {name}/templates/configmap.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: release-{name}\n  labels:\n{labels}data:\n  LOG_LEVEL: \"info\"\n  MAX_CONNECTIONS: \"{}\"\n  config.yaml: |\n    server:\n      port: {port}\n    cache:\n      enabled: true\n",
            10 * (1 + rng.below(50))
        );
    }
    out
}

/// A kustomize base: kubectl's field order, two spaces, sequences at their key's column.
fn kustomize(rng: &mut Rng, name: &str) -> String {
    let s = Style { indent: 2, seq_indented: false, quote: '\'' };
    let q = s.q("8080");
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  labels:\n    app: {name}\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: {name}\n  strategy:\n    rollingUpdate:\n      maxSurge: 25%\n      maxUnavailable: 0\n    type: RollingUpdate\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - env:\n        - name: PORT\n          value: {q}\n        - name: MODE\n          value: production\n        image: {name}:v{major}.{minor}\n        name: {name}\n        ports:\n        - containerPort: 8080\n          name: http\n        readinessProbe:\n          httpGet:\n            path: /ready\n            port: http\n          periodSeconds: 10\n        volumeMounts:\n        - mountPath: /etc/{name}\n          name: config\n          readOnly: true\n      volumes:\n      - configMap:\n          defaultMode: 0644\n          name: {name}-config\n        name: config\n",
        replicas = 1 + rng.below(3),
        major = rng.below(4),
        minor = rng.below(20),
    )
}

/// Hand-written: comments above and after values, four (or two) spaces, flow maps and lists,
/// long strings, block scalars, sometimes a status, sometimes anchors.
fn hand(rng: &mut Rng, name: &str) -> String {
    let s = Style { indent: if rng.chance(60) { 4 } else { 2 }, seq_indented: rng.chance(50), quote: '"' };
    let (p1, p2) = (s.pad(1), s.pad(2));
    let seq2 = s.seq(2);
    let long_description = format!(
        "The {name} service answers requests from the {} service; it keeps a small cache and reports its metrics to the {} collector every minute.",
        rng.pick(&WORDS),
        rng.pick(&WORDS)
    );
    let mut out = format!(
        "# {name}: owned by the {team} team.\n# Change with care: production reads this.\n\napiVersion: v1\nkind: ConfigMap\nmetadata:\n{p1}name: {name}-settings   # referenced by the deployment\n{p1}labels: {{app: {name}, tier: {tier}}}\n{p1}annotations:\n{p2}description: {long}\n{p2}owner: {quoted}\n\n# Values the application reads at start.\ndata:\n{p1}timeout: {timeout}\n{p1}retries: \"{retries}\"\n{p1}enabled: \"true\"\n{p1}motd: >-\n{p2}Welcome to {name}. This message is shown to every person who logs in,\n{p2}so keep it short and friendly.\n{p1}startup.sh: |\n{p2}#!/bin/sh\n{p2}set -eu\n{p2}echo starting {name}\n{p2}exec /app/{name} --config /etc/{name}/config.yaml\n",
        team = rng.pick(&WORDS),
        tier = rng.pick(&["front", "back", "data"]),
        long = long_description,
        quoted = s.q(&format!("{}@example.com", rng.pick(&WORDS))),
        timeout = s.q(&format!("{}s", 5 * (1 + rng.below(12)))),
        retries = rng.below(6),
    );
    out += &format!(
        "---\n# The workload.\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n{p1}name: {name}\n{p1}namespace: {ns}\n{p1}labels:\n{p2}app: {name}\nspec:\n{p1}size: {size}    # in replicas\n{p1}storage: \"{gi}Gi\"\n{p1}ports: [80, 443]\n{p1}hosts: [{name}.example.com, \"www.{name}.example.com\"]\n{p1}selector: {{matchLabels: {{app: {name}}}}}\n{p1}rules:\n{seq2}- host: {name}.example.com\n{seq2}  paths:\n{seq2}{p1}- /\n{seq2}{p1}- /api\n{seq2}- host: admin.example.com\n{seq2}  paths: [/admin]\n{p1}paused: false\n",
        ns = rng.pick(&["default", "prod", "staging"]),
        size = 1 + rng.below(9),
        gi = 10 * (1 + rng.below(10)),
    );
    if rng.chance(50) {
        out += &format!(
            "status:\n{p1}phase: Running\n{p1}observedGeneration: {}\n{p1}conditions:\n{seq}- type: Ready\n{seq}  status: \"True\"\n{seq}  reason: AllGood\n",
            1 + rng.below(9),
            seq = s.seq(1),
        );
    }
    if rng.chance(20) {
        // Anchors and aliases: rare in manifests, but people use them for shared settings.
        out += &format!(
            "---\n# Shared resource settings.\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n{p1}name: {name}-pool\nspec:\n{p1}defaults: &defaults\n{p2}cpu: 100m\n{p2}memory: 128Mi\n{p1}small: *defaults\n{p1}large:\n{p2}cpu: {}\n{p2}memory: 4Gi\n",
            1 + rng.below(4)
        );
    }
    out
}

/// A CRD as controller-gen writes it: long descriptions, plain and folded.
fn crd(rng: &mut Rng, name: &str) -> String {
    let plural = format!("{name}s");
    let mut props = String::new();
    for (i, field) in ["size", "image", "paused", "schedule"].iter().enumerate().take(2 + rng.below(3)) {
        let description = format!(
            "{field} of the {name}. It is read by the controller on every reconcile and copied into the pods it creates; changing it rolls them out again, one at a time, honouring the disruption budget."
        );
        let kind = ["integer", "string", "boolean", "string"][i];
        if rng.chance(50) {
            props += &format!(
                "                {field}:\n                  description: {description}\n                  type: {kind}\n"
            );
        } else {
            let half = description.len() / 2;
            let cut = description[..half].rfind(' ').unwrap_or(half);
            props += &format!(
                "                {field}:\n                  description: >-\n                    {}\n                    {}\n                  type: {kind}\n",
                &description[..cut],
                &description[cut + 1..]
            );
        }
    }
    format!(
        "---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  annotations:\n    controller-gen.kubebuilder.io/version: v0.{}.0\n  name: {plural}.example.com\nspec:\n  group: example.com\n  names:\n    kind: {kind}\n    listKind: {kind}List\n    plural: {plural}\n    singular: {name}\n  scope: Namespaced\n  versions:\n  - name: v1\n    schema:\n      openAPIV3Schema:\n        description: |-\n          {kind} is the Schema for the {plural} API.\n          It has a spec and a status.\n        properties:\n          spec:\n            properties:\n{props}            type: object\n        type: object\n    served: true\n    storage: true\n    subresources:\n      status: {{}}\n",
        10 + rng.below(8),
        kind = format!("{}{}", name[..1].to_uppercase(), name[1..].replace('-', "")),
    )
}

/// A `kind: List` of Secrets and ConfigMaps, as `kubectl get -o yaml` writes them.
fn list(rng: &mut Rng, name: &str) -> String {
    let mut out = "apiVersion: v1\nkind: List\nitems:\n".to_string();
    for i in 0..2 + rng.below(3) {
        out += &format!(
            "- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: {name}-{i}\n    namespace: default\n  data:\n    key: value-{}\n",
            rng.below(100)
        );
    }
    out
}

/// A JSON file, pretty-printed with two or four spaces, keys in the writer's order.
fn json_file(rng: &mut Rng, name: &str) -> String {
    let value = json!({
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"name": name, "labels": {"app": name, "team": rng.pick(&WORDS)}},
        "spec": {
            "ports": [{"name": "http", "port": 80, "targetPort": 8000 + rng.below(100)}],
            "selector": {"app": name},
            "type": "ClusterIP"
        }
    });
    let indent = if rng.chance(50) { "    " } else { "  " };
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(
        &mut out,
        serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes()),
    );
    serde::Serialize::serialize(&value, &mut serializer).expect("JSON serializes");
    String::from_utf8(out).expect("JSON is UTF-8") + "\n"
}

/// One kind of random edit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum EditKind {
    ChangeScalar,
    AmbiguousString,
    BlockScalarLine,
    AddKey,
    RemoveKey,
    AddItem,
    RemoveItem,
    SetLabel,
    SetAnnotation,
    Status,
    NoOp,
}

const KINDS: [EditKind; 11] = [
    EditKind::ChangeScalar,
    EditKind::AmbiguousString,
    EditKind::BlockScalarLine,
    EditKind::AddKey,
    EditKind::RemoveKey,
    EditKind::AddItem,
    EditKind::RemoveItem,
    EditKind::SetLabel,
    EditKind::SetAnnotation,
    EditKind::Status,
    EditKind::NoOp,
];

/// Values that read as something else unless quoted.
const AMBIGUOUS: [&str; 14] =
    ["0644", "yes", "no", "on", "off", "y", "1.10", "null", "~", "true", "012", "1e3", "a: b", "# not a comment"];

/// What an edit needs: at most this many removed and added lines.
struct Need {
    removed: Lines,
    added: Lines,
    /// Removed lines may also be flow collections' lines (or in JSON, comma lines).
    flow_extra: bool,
}

/// The paths in a value: (JSON pointer, value), depth first.
fn paths(value: &Value, at: String, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                paths(v, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                paths(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push((at, value.clone()));
}

/// Paths an edit may touch: not the object's identity.
fn editable(path: &str) -> bool {
    !path.is_empty()
        && !matches!(path, "/apiVersion" | "/kind" | "/metadata" | "/metadata/name" | "/metadata/namespace")
        && !path.starts_with("/metadata/name")
}

/// How many lines something takes, in YAML and in JSON.
#[derive(Clone, Copy)]
struct Lines {
    yaml: usize,
    json: usize,
}

impl Lines {
    const fn same(n: usize) -> Self {
        Lines { yaml: n, json: n }
    }

    fn plus(self, n: usize) -> Self {
        Lines { yaml: self.yaml + n, json: self.json + n }
    }

    fn of(self, json: bool) -> usize {
        if json { self.json } else { self.yaml }
    }
}

/// The lines of an entry (`{key: value}`) or item (`[value]`): in block style, and pretty-printed
/// JSON less its wrapping braces.
fn block_lines(value: &Value) -> Lines {
    let json = serde_json::to_string_pretty(value).map_or(0, |t| t.lines().count().saturating_sub(2));
    Lines { yaml: document::to_yaml(value).lines().count(), json }
}

/// Applies a random edit of `kind` to `object`; returns what it needs, `None` when the object has
/// nothing to edit so.
fn apply(rng: &mut Rng, kind: EditKind, object: &mut Value) -> Option<Need> {
    let mut all = Vec::new();
    paths(object, String::new(), &mut all);
    let all: Vec<(String, Value)> = all.into_iter().filter(|(p, _)| editable(p)).collect();
    let string_map =
        |p: &str| p.starts_with("/metadata/labels") || p.starts_with("/metadata/annotations") || p.starts_with("/data");
    let one = Need { removed: Lines::same(1), added: Lines::same(1), flow_extra: false };
    match kind {
        EditKind::ChangeScalar | EditKind::AmbiguousString => {
            let leaves: Vec<&(String, Value)> = all
                .iter()
                .filter(|(p, v)| match v {
                    Value::String(s) => !s.contains('\n') && s.len() < 60,
                    Value::Number(_) | Value::Bool(_) => kind == EditKind::ChangeScalar && !string_map(p),
                    _ => false,
                })
                .collect();
            let (path, value) = (*rng.pick(&leaves)).clone();
            let new = match (&value, kind) {
                (Value::String(_), EditKind::AmbiguousString) => json!(rng.pick(&AMBIGUOUS)),
                (Value::String(s), _) => json!(format!("{s}-{}", rng.below(100))),
                (Value::Number(n), _) => json!(n.as_i64().unwrap_or(1) + 1),
                (Value::Bool(b), _) => json!(!b),
                _ => return None,
            };
            *object.pointer_mut(&path)? = new;
            Some(one)
        }
        EditKind::BlockScalarLine => {
            let blocks: Vec<&(String, Value)> =
                all.iter().filter(|(_, v)| v.as_str().is_some_and(|s| s.trim_end().contains('\n'))).collect();
            if blocks.is_empty() {
                return None;
            }
            let (path, value) = (*rng.pick(&blocks)).clone();
            let text = value.as_str()?;
            let lines: Vec<&str> = text.lines().collect();
            let at = rng.below(lines.len());
            let changed: Vec<String> = lines
                .iter()
                .enumerate()
                .map(|(i, l)| if i == at { format!("{l} # changed") } else { l.to_string() })
                .collect();
            let tail = if text.ends_with('\n') { "\n" } else { "" };
            *object.pointer_mut(&path)? = json!(changed.join("\n") + tail);
            Some(one)
        }
        EditKind::AddKey | EditKind::RemoveKey => {
            let maps: Vec<&(String, Value)> = all
                .iter()
                .filter(|(p, v)| {
                    v.as_object().is_some_and(|m| kind == EditKind::AddKey || !m.is_empty()) && !p.is_empty()
                })
                .collect();
            if maps.is_empty() {
                return None;
            }
            let (path, map) = (*rng.pick(&maps)).clone();
            let target = object.pointer_mut(&path)?.as_object_mut()?;
            if kind == EditKind::AddKey {
                let value = if string_map(&path) || rng.chance(50) {
                    json!(format!("added-{}", rng.below(1000)))
                } else {
                    rng.pick(&[json!(3), json!(true), json!({"nested": "value", "count": 2}), json!(["one", "two"])])
                        .clone()
                };
                let lines = block_lines(&json!({"k": value}));
                target.insert(format!("added{}", rng.below(1000)), value);
                Some(Need { removed: Lines::same(0), added: lines, flow_extra: true })
            } else {
                let keys: Vec<&String> = map.as_object()?.keys().collect();
                let key = rng.pick(&keys).to_string();
                if format!("{path}/{key}") == "/metadata/name" {
                    return None;
                }
                let removed = target.remove(&key)?;
                let emptied = usize::from(target.is_empty());
                Some(Need {
                    removed: block_lines(&json!({ key: removed })).plus(emptied),
                    added: Lines::same(emptied),
                    flow_extra: true,
                })
            }
        }
        EditKind::AddItem | EditKind::RemoveItem => {
            let lists: Vec<&(String, Value)> = all
                .iter()
                .filter(|(p, v)| {
                    v.as_array().is_some_and(|a| !a.is_empty()) && p != "/items" && !p.starts_with("/items/")
                })
                .collect();
            if lists.is_empty() {
                return None;
            }
            let (path, list) = (*rng.pick(&lists)).clone();
            let list = list.as_array()?;
            let target = object.pointer_mut(&path)?.as_array_mut()?;
            if kind == EditKind::AddItem {
                let item = match &list[0] {
                    Value::String(s) => json!(format!("{s}-added")),
                    Value::Number(n) => json!(n.as_i64().unwrap_or(0) + 1000),
                    other => other.clone(),
                };
                let lines = block_lines(&json!([item]));
                let at = rng.below(target.len() + 1);
                target.insert(at, item);
                Some(Need { removed: Lines::same(0), added: lines, flow_extra: true })
            } else {
                let at = rng.below(target.len());
                let removed = target.remove(at);
                let emptied = usize::from(target.is_empty());
                Some(Need {
                    removed: block_lines(&json!([removed])).plus(emptied),
                    added: Lines::same(emptied),
                    flow_extra: true,
                })
            }
        }
        EditKind::SetLabel | EditKind::SetAnnotation => {
            let field = if kind == EditKind::SetLabel { "labels" } else { "annotations" };
            let metadata = object.get_mut("metadata")?.as_object_mut()?;
            let created = !metadata.contains_key(field);
            let map = metadata.entry(field).or_insert_with(|| json!({})).as_object_mut()?;
            let key = format!("example.com/{}", rng.pick(&WORDS));
            let existed = map.contains_key(&key);
            map.insert(key, json!(format!("v{}", rng.below(50))));
            let added = if created { 2 } else { 1 };
            Some(Need { removed: Lines::same(usize::from(existed)), added: Lines::same(added), flow_extra: true })
        }
        EditKind::Status => {
            let generation = json!(rng.below(1000));
            match object.get_mut("status").and_then(Value::as_object_mut) {
                Some(status) => {
                    let existed = status.contains_key("observedGeneration");
                    status.insert("observedGeneration".into(), generation);
                    Some(Need { removed: Lines::same(usize::from(existed)), added: Lines::same(1), flow_extra: true })
                }
                None => {
                    let status = json!({"observedGeneration": generation, "phase": "Ready"});
                    let lines = block_lines(&json!({"status": status}));
                    object.as_object_mut()?.insert("status".into(), status);
                    Some(Need { removed: Lines::same(0), added: lines, flow_extra: true })
                }
            }
        }
        EditKind::NoOp => Some(Need { removed: Lines::same(0), added: Lines::same(0), flow_extra: false }),
    }
}

/// The lines removed from `a` and added in `b` (longest common subsequence of lines).
fn line_diff<'t>(a: &'t str, b: &'t str) -> (Vec<&'t str>, Vec<&'t str>) {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let room = a.len().min(b.len()) - prefix;
    let suffix = a.iter().rev().zip(b.iter().rev()).take(room).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut removed, mut added) = (0, 0, Vec::new(), Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            (i, j) = (i + 1, j + 1);
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            added.push(b[j]);
            j += 1;
        } else {
            removed.push(a[i]);
            i += 1;
        }
    }
    (removed, added)
}

/// Whether a write's diff is minimal for what the edit needs (see the module's documentation).
fn minimal(before: &str, after: &str, need: &Need, json: bool) -> bool {
    let (need_removed, need_added) = (need.removed.of(json), need.added.of(json));
    if need_removed == 0 && need_added == 0 {
        return before == after;
    }
    let (removed, added) = line_diff(before, after);
    // Comment and blank lines inside a removed entry go with it, as does a lone `{}` under its key.
    let content = |l: &&str| !matches!(l.trim(), "" | "{}" | "[]") && !l.trim_start().starts_with('#');
    let extra = if json {
        // The line before an added or removed entry gains or loses its comma.
        usize::from(need.flow_extra)
    } else {
        // A flow collection's line changes instead of lines being added or removed; or the
        // `- ` of a sequence item moves to the next entry when its first one goes.
        let flow_line = |l: &&str| l.contains(['{', '[']);
        let dash_line = |l: &&str| l.trim_start().starts_with("- ");
        let flow = removed.iter().any(flow_line) && added.iter().any(flow_line);
        let dash = removed.iter().any(dash_line) && added.iter().any(dash_line);
        usize::from(need.flow_extra && (flow || dash))
    };
    removed.iter().filter(|l| content(l)).count() <= need_removed + extra && added.len() <= need_added + extra
}

/// Counts of one kind of edit.
#[derive(Default)]
struct Tally {
    edits: usize,
    minimal: usize,
    reserialized: usize,
    read_back: usize,
    time: Duration,
}

/// Runs the measurement and returns its report as markdown.
pub fn run(args: &MinimalArgs) -> Result<String> {
    let files = corpus(args.files, args.seed);
    if let Some(dir) = &args.dump {
        for (path, text) in &files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap_or(dir))?;
            std::fs::write(path, text)?;
        }
    }
    let mut rng = Rng(args.seed.wrapping_mul(31).max(1));
    let mut tallies: BTreeMap<EditKind, Tally> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut compared: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut wrong: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut objects = 0;
    for (path, text) in &files {
        objects += document::parse_file(path, text.as_bytes()).objects.len();
    }
    let mut done = 0;
    while done < args.edits {
        let (path, text) = rng.pick(&files);
        let parsed = document::parse_file(path, text.as_bytes());
        if !parsed.errors.is_empty() {
            bail!("the corpus file {path} does not parse: {:?}", parsed.errors);
        }
        let found = rng.pick(&parsed.objects);
        let kind = *rng.pick(&KINDS);
        let mut new = found.value.clone();
        let Some(need) = apply(&mut rng, kind, &mut new) else { continue };
        done += 1;
        let started = Instant::now();
        let written = document::rewrite_detailed(path, text, found.doc, found.item, Some(&new))?;
        let tally = tallies.entry(kind).or_default();
        tally.time += started.elapsed();
        tally.edits += 1;
        let out = written.text.unwrap_or_default();
        let intended = document::implicit_namespace(&found.value, &new);
        let again = document::parse_file(path, out.as_bytes());
        let read_back =
            again.objects.iter().any(|o| (o.doc, o.item) == (found.doc, found.item) && o.value == *intended);
        tally.read_back += usize::from(read_back);
        tally.reserialized += usize::from(written.fidelity == Fidelity::Reserialized);
        if minimal(text, &out, &need, path.ends_with(".json")) {
            tally.minimal += 1;
        } else if failures.len() < 5 {
            let (removed, added) = line_diff(text, &out);
            let diff = format!("-{removed:?} +{added:?}");
            failures.push(format!("{kind:?} in {path}: {}", diff.chars().take(300).collect::<String>()));
        }
        if args.compare
            && !path.ends_with(".json")
            && found.item.is_none()
            && let Some(body) = text.split("---\n").find(|d| document::parse_yaml(d).is_ok_and(|v| v == found.value))
        {
            compare(&mut compared, &mut wrong, body, &found.value, &intended, &need);
        }
    }
    let mut md = format!(
        "Corpus: {} files ({} objects), seed {}; {} random single-value edits through `document::rewrite`.\n\n| edit | writes | minimal diff | re-serialized (fallback) | reads back as intended | mean time per write |\n| --- | ---: | ---: | ---: | ---: | ---: |\n",
        files.len(),
        objects,
        args.seed,
        args.edits
    );
    let mut total = Tally::default();
    for (kind, t) in &tallies {
        md += &row(&format!("{kind:?}"), t);
        total.edits += t.edits;
        total.minimal += t.minimal;
        total.reserialized += t.reserialized;
        total.read_back += t.read_back;
        total.time += t.time;
    }
    md += &row("**all**", &total);
    if !failures.is_empty() {
        md += "\nFirst diffs that were not minimal:\n\n";
        for f in &failures {
            md += &format!("- {f}\n");
        }
    }
    if args.compare {
        md += &format!(
            "\nThe same edits of YAML documents (each document's text alone, {} of them), by editor; a failure is an error or a panic of the library:\n\n| editor | writes | minimal diff | failed | reads back as intended | mean time per write |\n| --- | ---: | ---: | ---: | ---: | ---: |\n",
            compared.values().next().map_or(0, |t| t.edits)
        );
        for (name, t) in &compared {
            md += &row(name, t);
        }
        md += "\nFirst writes of each editor that did not read back as intended (lines removed and added):\n\n";
        for (name, examples) in &wrong {
            for example in examples {
                md += &format!("- {name}: {example}\n");
            }
        }
    }
    if total.read_back != total.edits {
        bail!("{} writes did not read back as intended\n{md}", total.edits - total.read_back);
    }
    Ok(md)
}

/// Runs one edit of a document through `document::rewrite` and the editors of [`compare`].
fn compare<'n>(
    tallies: &mut BTreeMap<&'n str, Tally>,
    wrong: &mut BTreeMap<&'n str, Vec<String>>,
    body: &str,
    old: &Value,
    new: &Value,
    need: &Need,
) {
    let ours: compare::Editor = |body, _, new| document::rewrite("doc.yaml", body, 0, None, Some(new)).ok().flatten();
    let ours_name: &'n str = "gitbacked (granit-parser events)";
    for (name, editor) in [(ours_name, ours)].into_iter().chain(compare::EDITORS) {
        let started = Instant::now();
        let out = compare::run(editor, body, old, new);
        let tally = tallies.entry(name).or_default();
        tally.time += started.elapsed();
        tally.edits += 1;
        match out {
            None => tally.reserialized += 1,
            Some(out) => {
                let read_back = document::parse_yaml(&out).is_ok_and(|v| v == *new);
                tally.read_back += usize::from(read_back);
                tally.minimal += usize::from(minimal(body, &out, need, false));
                let examples = wrong.entry(name).or_default();
                if !read_back && examples.len() < 3 {
                    let (removed, added) = line_diff(body, &out);
                    examples.push(format!("-{removed:?} +{added:?}"));
                }
            }
        }
    }
}

fn row(name: &str, t: &Tally) -> String {
    let pct = |n: usize| 100.0 * n as f64 / t.edits.max(1) as f64;
    format!(
        "| {name} | {} | {:.1}% | {} | {:.1}% | {:.0} µs |\n",
        t.edits,
        pct(t.minimal),
        t.reserialized,
        pct(t.read_back),
        t.time.as_secs_f64() * 1e6 / t.edits.max(1) as f64
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_parses_and_a_small_run_reads_back() {
        for (path, text) in corpus(16, 3) {
            let parsed = document::parse_file(&path, text.as_bytes());
            assert!(parsed.errors.is_empty() && !parsed.objects.is_empty(), "{path}: {:?}\n{text}", parsed.errors);
        }
        let report = run(&MinimalArgs { files: 16, edits: 200, seed: 3, dump: None, compare: true }).unwrap();
        assert!(report.contains("**all**"), "{report}");
    }

    #[test]
    fn line_diffs() {
        assert_eq!(line_diff("a\nb\nc\n", "a\nx\nc\n"), (vec!["b"], vec!["x"]));
        assert_eq!(line_diff("a\nc\n", "a\nb\nc\n"), (vec![], vec!["b"]));
    }
}
