//! What each part of a write costs (issue 15, item 9), and writes into one document of a large
//! multi-document file against writes into small files (issue 15, item 8).
//!
//! `cargo run --release -p gitbacked-bench -- write-costs [--objects 10000] [--writers 16] [--runs 3]`
//! `cargo run --release -p gitbacked-bench -- big-files [--writes 30]`
//!
//! The library wraps the parts of a write in `trace` spans of the target [`TARGET`] (`mutate`,
//! `admission` and its parts, `find_document`, `rewrite`, `read_back`, `commit`, `apply`, …);
//! [`Timing`] adds up the time spent inside each, and the push time comes from the store's
//! /metrics. The parts of a write, the push and the apply all run in the sync loop one after the
//! other, and every write waits for that loop: so the share of the loop's time a part takes is
//! the share of a write's latency it takes (Little's law: the mean latency at `n` closed-loop
//! writers is `n` / throughput). A part's share is its total time divided by the wall time of the
//! runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use gitbacked::GitStore;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};
use tracing::span::Id;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::measure::{ms, options, pushes};
use crate::repogen;
use crate::report::{median, percentile, progress};

/// The target of the library's spans around the parts of a write.
pub const TARGET: &str = "gitbacked::cost";

/// Time spent inside each span, and how many times it was entered, since the last [`take`].
static TOTALS: Mutex<BTreeMap<String, (Duration, u64)>> = Mutex::new(BTreeMap::new());

/// Adds up the time spent inside each span (see [`take`]), by name; a span inside others by
/// `outermost/name` (CEL rules are evaluated in admission, `admission/cel`, and by the store's
/// review of what a commit brought, beside the sync loop, `cel`).
pub struct Timing;

/// When the span was entered.
struct Entered(Instant);

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Timing {
    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().replace(Entered(Instant::now()));
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let Some(Entered(at)) = span.extensions_mut().remove::<Entered>() else { return };
        let name = match span.scope().last().filter(|root| root.id() != span.id()) {
            Some(root) => format!("{}/{}", root.name(), span.name()),
            None => span.name().to_string(),
        };
        let mut totals = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
        let total = totals.entry(name).or_default();
        total.0 += at.elapsed();
        total.1 += 1;
    }
}

/// The totals since the last call, and starts counting anew.
fn take() -> BTreeMap<String, (Duration, u64)> {
    std::mem::take(&mut *TOTALS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The parts reported, in the order of a write, with what each is. A part indented with `·` is
/// inside the one above it. `push` is from the store's /metrics.
const PARTS: &[(&str, &str)] = &[
    ("mutate", "the request's change worked out on the stored object (patch, metadata)"),
    ("admission", "admission, all of it"),
    ("admission/types", "· types of built-in kinds (their schema)"),
    (
        "admission/defaults",
        "· defaults (built-in kinds: worked out on the new and old object; CRDs: pruning and defaults)",
    ),
    ("admission/validate", "· schema validation and the kind's rules"),
    ("admission/cel", "· · CEL rules (x-kubernetes-validations)"),
    ("admission/strip", "· built-in defaults left out of what is written"),
    ("read_text", "the file read from the commit being built"),
    ("find_document", "the object's document found in its file"),
    ("rewrite", "the minimal edit of the document (with its own check)"),
    ("read_back", "the file read back with the reader"),
    ("commit", "the batch's commit written (blobs, trees, commit)"),
    ("push", "the push (direct, to the local remote)"),
    ("apply", "the pushed commit applied to the store (diff, parse, index, events)"),
];

/// What some writes of one kind measured.
struct Measured {
    label: String,
    writes: usize,
    wall: Duration,
    latencies: Vec<f64>,
    rates: Vec<f64>,
    parts: BTreeMap<String, Duration>,
}

impl Measured {
    fn new(label: String) -> Self {
        Measured {
            label,
            writes: 0,
            wall: Duration::ZERO,
            latencies: Vec::new(),
            rates: Vec::new(),
            parts: BTreeMap::new(),
        }
    }

    /// Adds a run: its latencies (ms), wall time, span totals and push seconds.
    fn add(&mut self, latencies: Vec<f64>, wall: Duration, spans: BTreeMap<String, (Duration, u64)>, push: f64) {
        self.writes += latencies.len();
        self.rates.push(latencies.len() as f64 / wall.as_secs_f64());
        self.latencies.extend(latencies);
        self.wall += wall;
        for (name, (time, _)) in spans {
            *self.parts.entry(name).or_default() += time;
        }
        *self.parts.entry("push".into()).or_default() += Duration::from_secs_f64(push);
    }

    /// µs per write of a part.
    fn per_write(&self, part: &str) -> f64 {
        self.parts.get(part).map_or(0.0, |t| t.as_secs_f64() * 1e6 / self.writes.max(1) as f64)
    }

    /// The share of the write latency a part takes: its time over the wall time.
    fn share(&self, part: &str) -> f64 {
        self.parts.get(part).map_or(0.0, |t| t.as_secs_f64() / self.wall.as_secs_f64())
    }

    fn mean_latency(&self) -> f64 {
        self.latencies.iter().sum::<f64>() / self.latencies.len().max(1) as f64
    }
}

/// Markdown: one column per measured set, a row for the throughput and latencies, then per part
/// µs per write and its share of the write latency.
fn table(sets: &[Measured], writers: usize) -> String {
    let mut out = String::from("| part |");
    for m in sets {
        let _ = write!(out, " {} |", m.label);
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(sets.len()));
    let row = |out: &mut String, name: &str, cell: &dyn Fn(&Measured) -> String| {
        let _ = write!(out, "\n| {name} |");
        for m in sets {
            let _ = write!(out, " {} |", cell(m));
        }
    };
    row(&mut out, &format!("acknowledged writes/s ({writers} writers)"), &|m| format!("{:.0}", median(&m.rates)));
    row(&mut out, "latency: mean / p50 / p99 (ms)", &|m| {
        let l = &m.latencies;
        format!("{:.1} / {:.1} / {:.1}", m.mean_latency(), percentile(l, 50.0), percentile(l, 99.0))
    });
    for (part, what) in PARTS {
        if sets.iter().all(|m| m.per_write(part) == 0.0) {
            continue;
        }
        row(&mut out, &format!("`{part}`: {what}"), &|m| match m.per_write(part) {
            0.0 => "–".into(),
            us => format!("{us:.0} µs, {:.1}%", m.share(part) * 100.0),
        });
    }
    row(&mut out, "admission + minimal edit (`admission`, `rewrite`)", &|m| {
        let us = m.per_write("admission") + m.per_write("rewrite");
        format!("{us:.0} µs, {:.1}%", (m.share("admission") + m.share("rewrite")) * 100.0)
    });
    out.push('\n');
    out
}

/// One object to write, and how.
struct Target {
    resource: ApiResource,
    namespace: String,
    name: String,
    /// The merge patch of the `j`-th write.
    patch: fn(usize, &str) -> Value,
}

impl Target {
    /// Writes `count` merge patches; their latencies (ms).
    async fn write(self, client: kube::Client, count: usize, tag: String) -> Result<Vec<f64>> {
        let api: Api<DynamicObject> = Api::namespaced_with(client, &self.namespace, &self.resource);
        let mut latencies = Vec::with_capacity(count);
        for j in 0..count {
            let t = Instant::now();
            api.patch(&self.name, &PatchParams::default(), &Patch::Merge((self.patch)(j, &tag))).await?;
            latencies.push(ms(t.elapsed()));
        }
        Ok(latencies)
    }
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn configmap_patch(j: usize, tag: &str) -> Value {
    json!({"data": {"bench": format!("{tag}-{j}")}})
}

/// A rollout restart, as `kubectl rollout restart` writes it.
fn deployment_patch(j: usize, tag: &str) -> Value {
    json!({"spec": {"template": {"metadata": {"annotations": {"bench/restartedAt": format!("{tag}-{j}")}}}}})
}

fn widget_patch(j: usize, _: &str) -> Value {
    let color = if j.is_multiple_of(2) { "blue" } else { "green" };
    json!({"spec": {"replicas": j % 50, "color": color}})
}

/// Runs `runs` × `writes` writes (over `writers` writers) of the objects `targets(w)` gives for
/// writer `w`, on a store opened on `url`, and measures them.
async fn measure(
    client: &kube::Client,
    store: &GitStore,
    label: &str,
    writers: usize,
    writes: usize,
    runs: usize,
    targets: &dyn Fn(usize) -> Target,
) -> Result<Measured> {
    let per_writer = writes.div_ceil(writers).max(2);
    let mut measured = Measured::new(label.to_string());
    for run in 0..runs {
        progress(&format!("{label}: {writers} writers × {per_writer} writes, run {}/{runs}", run + 1));
        let (_, push_before) = pushes(store).await?;
        take();
        let started = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|w| tokio::spawn(targets(w).write(client.clone(), per_writer, format!("{label}-{run}"))))
            .collect();
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await??);
        }
        let wall = started.elapsed();
        let spans = take();
        let (_, push_after) = pushes(store).await?;
        measured.add(latencies, wall, spans, push_after - push_before);
    }
    Ok(measured)
}

/// Options of `write-costs`.
#[derive(clap::Args, Clone, Debug)]
pub struct CostArgs {
    /// Objects in the generated repository (the layout of `all`).
    #[arg(long, default_value_t = 10_000)]
    pub objects: usize,
    /// Concurrent writers, each on an object of its own.
    #[arg(long, default_value_t = 16)]
    pub writers: usize,
    /// Writes per run and kind.
    #[arg(long, default_value_t = 512)]
    pub writes: usize,
    /// Runs per kind.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// `write-costs`: ConfigMaps, Deployments and custom resources (a CRD with a schema, defaults and
/// a CEL rule) written by `writers` concurrent writers; the parts of each write (markdown).
pub async fn write_costs(args: &CostArgs) -> Result<String> {
    let n = args.objects;
    if n < 20 * args.writers {
        bail!("--objects must be at least 20 × --writers");
    }
    progress(&format!("generating a repository of {n} objects"));
    let repo = repogen::generate(n)?;
    let store = GitStore::open(&repo.local_url(), options(Duration::from_secs(3600))).await?;
    let client = store.client();
    let total_cms = repogen::configmap_count(n);
    let blocks = repogen::mix(n) / 20;
    // Writer w's Deployment and Widget: in block w·blocks/writers of 20 objects (see `repogen::files`).
    let block = move |w: usize| w * blocks / args.writers * 20;
    let configmaps = move |w: usize| {
        let (name, namespace, _, _) = repogen::configmap(repogen::spread(w, args.writers, total_cms), 0);
        Target { resource: resource("", "v1", "ConfigMap", "configmaps"), namespace, name, patch: configmap_patch }
    };
    let deployments = move |w: usize| {
        let i = block(w) + 10 + w % 4;
        Target {
            resource: resource("apps", "v1", "Deployment", "deployments"),
            namespace: repogen::namespace(i),
            name: format!("web-{i}"),
            patch: deployment_patch,
        }
    };
    let widgets = move |w: usize| {
        let i = block(w) + 14 + w % 3;
        Target {
            resource: resource("bench.gitbacked.dev", "v1", "Widget", "widgets"),
            namespace: repogen::namespace(i),
            name: format!("w-{i}"),
            patch: widget_patch,
        }
    };
    let (w, writes, runs) = (args.writers, args.writes, args.runs);
    // The first writes into a fresh repository create the mirror's object directories: not timed.
    measure(&client, &store, "warm-up", w, writes, 1, &configmaps).await?;
    let sets = vec![
        measure(&client, &store, "ConfigMap", w, writes, runs, &configmaps).await?,
        measure(&client, &store, "Deployment", w, writes, runs, &deployments).await?,
        measure(&client, &store, "Widget (CRD with CEL)", w, writes, runs, &widgets).await?,
    ];
    store.close().await?;
    Ok(format!(
        "{} objects ({} files), {w} writers, {runs} runs of {writes} writes per kind, local bare remote; \
         per part: µs per write and share of the write latency.\n\n{}",
        repo.objects,
        repo.files.len(),
        table(&sets, w)
    ))
}

/// Options of `big-files`.
#[derive(clap::Args, Clone, Debug)]
pub struct BigArgs {
    /// Writes per object.
    #[arg(long, default_value_t = 30)]
    pub writes: usize,
}

/// `big-files`: one writer writes a ConfigMap and a Deployment inside a 59-document, 1.9 MB
/// file (argo-cd's `install.yaml` shape: CRDs with long descriptions, then the RBAC, ConfigMaps,
/// Services and Deployments), and the same kinds in small files of their own (markdown).
pub async fn big_files(args: &BigArgs) -> Result<String> {
    let big = repogen::install_yaml();
    let documents = big.matches("\n---\n").count() + 1;
    let files = vec![
        ("argocd/install.yaml".to_string(), big.clone()),
        ("argocd/small/settings.yaml".to_string(), repogen::small_configmap("settings")),
        ("argocd/small/web.yaml".to_string(), repogen::small_deployment("web")),
    ];
    let repo = repogen::generate_files(files)?;
    let store = GitStore::open(&repo.local_url(), options(Duration::from_secs(3600))).await?;
    let report = store.report();
    if !report.invalid_files.is_empty() || !report.invalid_objects.is_empty() || report.unknown_documents > 0 {
        bail!(
            "the generated files are not all served as valid objects: {:?} {:?}",
            report.invalid_files,
            report.invalid_objects
        );
    }
    let client = store.client();
    let one = |name: &'static str, kind: &'static str| {
        move |_: usize| match kind {
            "ConfigMap" => Target {
                resource: resource("", "v1", "ConfigMap", "configmaps"),
                namespace: "argocd".into(),
                name: name.into(),
                patch: configmap_patch,
            },
            _ => Target {
                resource: resource("apps", "v1", "Deployment", "deployments"),
                namespace: "argocd".into(),
                name: name.into(),
                patch: deployment_patch,
            },
        }
    };
    let writes = args.writes;
    let sets = vec![
        measure(&client, &store, "ConfigMap, big file", 1, writes, 1, &one("argocd-cm", "ConfigMap")).await?,
        measure(&client, &store, "ConfigMap, small file", 1, writes, 1, &one("settings", "ConfigMap")).await?,
        measure(&client, &store, "Deployment, big file", 1, writes, 1, &one("argocd-server", "Deployment")).await?,
        measure(&client, &store, "Deployment, small file", 1, writes, 1, &one("web", "Deployment")).await?,
    ];
    store.close().await?;
    let ratio = |big: &Measured, small: &Measured| median(&big.latencies) / median(&small.latencies);
    // What reading the whole file costs, for comparison with the parts above.
    let parses: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            gitbacked_core::document::parse_file("install.yaml", big.as_bytes());
            ms(t.elapsed())
        })
        .collect();
    Ok(format!(
        "`argocd/install.yaml`: {documents} documents, {:.2} MB; one writer, {writes} writes of each object.\n\n{}\n\
         Median latency, big file / small file: ConfigMap {:.2}×, Deployment {:.2}×. Parsing the whole \
         big file once (`document::parse_file`): {:.1} ms.\n",
        big.len() as f64 / 1e6,
        table(&sets, 1),
        ratio(&sets[0], &sets[1]),
        ratio(&sets[2], &sets[3]),
        median(&parses),
    ))
}
