//! The measurements, in the order of priority: writes, cold and warm sync, incremental sync, reads,
//! propagation and memory. Each baseline is measured in the same run on the same repository.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use gitbacked::{GitStore, Options};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};

mod latency;

use crate::repogen::{self, Repo};
use crate::report::{Report, median, percentile, progress};
use crate::{AllArgs, Measurement};

/// How much work each measurement does.
pub(crate) struct Plan {
    /// How many times each measurement runs.
    pub runs: usize,
    /// Writes per writer level and run.
    pub writes_per_level: usize,
    /// Writes per writer level and run over a link with latency.
    pub latency_writes: usize,
    /// `git push` samples of `t_push`, before and again after the writers.
    pub push_samples: usize,
    baseline_writes: usize,
    gets: usize,
    lists: usize,
    /// The `limit` of the paged LIST of every ConfigMap.
    page: usize,
    /// Person's commits of one object in the incremental sync (10 and 100 objects: `runs`).
    one_object_commits: usize,
    samples: usize,
    poll_samples: usize,
}

/// A duration in milliseconds.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Whether stores push to a local remote directly (`--push-with-git` turns it off).
static DIRECT_PUSH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// The stores' options: `interval`, a long write timeout, the direct push unless `--push-with-git`.
pub(crate) fn options(interval: Duration) -> Options {
    let direct_push = DIRECT_PUSH.load(std::sync::atomic::Ordering::Relaxed);
    Options { interval, write_timeout: Duration::from_secs(120), direct_push, ..Default::default() }
}

/// A poll interval long enough that only the bench's own calls reach the remote.
pub(crate) const HOUR: Duration = Duration::from_secs(3600);

/// Runs everything and returns the report.
pub async fn all(args: &AllArgs) -> Result<Report> {
    repogen::set_flat(args.flat);
    repogen::set_person(args.person);
    DIRECT_PUSH.store(!args.push_with_git, std::sync::atomic::Ordering::Relaxed);
    progress(&format!("gitbacked-bench on {}", crate::report::machine()));
    let plan = if args.quick {
        Plan {
            runs: args.runs.unwrap_or(2),
            writes_per_level: 16,
            latency_writes: 32,
            push_samples: 2,
            baseline_writes: 3,
            gets: 200,
            lists: 3,
            page: 50,
            one_object_commits: 3,
            samples: 4,
            poll_samples: 2,
        }
    } else {
        Plan {
            runs: args.runs.unwrap_or(3),
            writes_per_level: 256,
            latency_writes: 512,
            push_samples: 5,
            baseline_writes: 20,
            gets: 5000,
            lists: 10,
            page: 500,
            one_object_commits: 10,
            samples: 30,
            poll_samples: 15,
        }
    };
    let mut sizes = args.sizes.clone();
    if sizes.is_empty() {
        sizes = if args.quick { vec![300] } else { vec![1000, 10_000, 100_000] };
    }
    sizes.sort_unstable();
    sizes.dedup();
    let largest = *sizes.last().context("no sizes")?;
    // Writes, reads and memory run on the 10k and larger repositories (on the largest one when none is).
    let mut big: Vec<usize> = sizes.iter().copied().filter(|&n| n >= 10_000 || args.quick).collect();
    if big.is_empty() {
        big.push(largest);
    }
    let mut report = Report::default();
    if args.flat {
        report.notes.push("--flat: each namespace's files of a kind in one directory".into());
    }
    if args.person {
        report.notes.push("--person: files as people write them (flat directories, comments, flow maps)".into());
    }
    if args.push_with_git {
        report.notes.push("--push-with-git: every push to the local remote runs `git push`".into());
    }
    if args.quick {
        report
            .notes
            .push("--quick: a tiny repository and few runs; the numbers only show that the benchmark runs".into());
    }
    for &n in &sizes {
        progress(&format!("generating a repository of {n} objects"));
        let started = Instant::now();
        let repo = repogen::generate(n)?;
        progress(&format!(
            "generated {} objects in {} files, {:.1} MB of YAML ({:.0} bytes/object) in {:.1} s",
            repo.objects,
            repo.files.len(),
            repo.yaml_bytes() as f64 / 1e6,
            repo.yaml_bytes() as f64 / repo.objects as f64,
            started.elapsed().as_secs_f64()
        ));
        let runs = |m: Measurement| args.only.is_empty() || args.only.contains(&m);
        // The incremental baseline is the floor's parse, measured with the cold sync.
        if runs(Measurement::Cold) || (n == largest && runs(Measurement::Incremental)) {
            let parse = cold_sync(&repo, &plan, &mut report).await?;
            if n == largest && runs(Measurement::Incremental) {
                incremental(&repo, &plan, parse, &mut report).await?;
            }
        }
        if big.contains(&n) {
            if runs(Measurement::Writes) {
                let section = format!("Writes ({} objects, local bare remote)", repo.objects);
                writes(&repo, &repo.local_url(), &section, &plan, &mut report).await?;
                baseline_writes(&repo, &section, &plan, &mut report)?;
                let daemon = Daemon::start(&repo)?;
                let section = format!("Writes ({} objects, git daemon on 127.0.0.1)", repo.objects);
                writes(&repo, &daemon.url, &section, &plan, &mut report).await?;
            }
            if runs(Measurement::Reads) {
                reads(&repo, &plan, &mut report).await?;
            }
            if runs(Measurement::Memory) {
                memory(&repo, &plan, &mut report)?;
            }
        }
        if n == big[0] && runs(Measurement::Latency) {
            let rtts = if !args.rtts.is_empty() {
                args.rtts.clone()
            } else if args.quick {
                vec![10]
            } else {
                vec![10, 50]
            };
            latency::run(&repo, &plan, &rtts, &mut report).await?;
        }
        if n == big[0] && runs(Measurement::Propagation) {
            propagation(&repo, &plan, &mut report).await?;
        }
    }
    goals(&mut report, &sizes, &big, largest);
    Ok(report)
}

// ---------------------------------------------------------------------------------------------
// Writes

/// `git daemon` serving the repository's remote with push enabled, on a free loopback port; stopped on drop.
pub(crate) struct Daemon {
    child: std::process::Child,
    /// `git://127.0.0.1:<port>/remote.git`.
    pub url: String,
    /// The port it listens on.
    pub port: u16,
}

impl Daemon {
    /// Starts it and waits until it listens.
    pub fn start(repo: &Repo) -> Result<Daemon> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let base = repo.remote.parent().context("the remote has a parent directory")?;
        use std::os::unix::process::CommandExt;
        // In a process group of its own: `git daemon` runs `git-daemon` as a child, which killing
        // `git` alone would leave running.
        let child = std::process::Command::new("git")
            .process_group(0)
            .args(["daemon", "--reuseaddr", "--listen=127.0.0.1", "--export-all", "--enable=receive-pack"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("git daemon starts")?;
        let daemon = Daemon { child, url: format!("git://127.0.0.1:{port}/remote.git"), port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("git daemon did not listen on port {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(daemon)
    }
}

impl Drop for Daemon {
    /// Stops the whole process group: `git` and the `git-daemon` it started.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = std::process::Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// How the writers reach the store: in-process through its kube client, or over HTTP with
/// keep-alive connections to its Router served on loopback.
#[derive(Clone)]
pub(crate) enum Via {
    /// Through the store's own kube client.
    InProcess(kube::Client),
    /// Over HTTP to the store's Router served at this address.
    Http(std::net::SocketAddr),
}

impl Via {
    /// What a row calls `n` writers this way.
    pub fn writers(&self, n: usize) -> String {
        match self {
            Via::InProcess(_) => format!("{n} writers"),
            Via::Http(_) => format!("HTTP, {n} keep-alive clients"),
        }
    }

    /// One writer: `count` merge patches of ConfigMap `ns/name`; their latencies (ms).
    async fn write(self, ns: String, name: String, count: usize, tag: String) -> Result<Vec<f64>> {
        let mut latencies = Vec::with_capacity(count);
        let body = |j: usize| serde_json::json!({"data": {"bench": format!("{tag}-{j}")}});
        match self {
            Via::InProcess(client) => {
                let api: Api<ConfigMap> = Api::namespaced(client, &ns);
                for j in 0..count {
                    let t = Instant::now();
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(body(j))).await?;
                    latencies.push(ms(t.elapsed()));
                }
            }
            Via::Http(addr) => {
                let mut conn = crate::http::Conn::connect(addr).await?;
                let path = format!("/api/v1/namespaces/{ns}/configmaps/{name}");
                for j in 0..count {
                    let patch = serde_json::to_vec(&body(j))?;
                    let t = Instant::now();
                    let (status, _) =
                        conn.request("PATCH", &path, Some("application/merge-patch+json"), &patch).await?;
                    if status != 200 {
                        bail!("PATCH answered {status}");
                    }
                    latencies.push(ms(t.elapsed()));
                }
            }
        }
        Ok(latencies)
    }
}

/// Acknowledged writes through the store opened on `url`: in-process at 1, 4, 16 and 64
/// concurrent writers, then over HTTP (`gitbacked serve`'s Router) at 16 and 64 clients.
async fn writes(repo: &Repo, url: &str, section: &str, plan: &Plan, report: &mut Report) -> Result<()> {
    let store = GitStore::open(url, options(HOUR)).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(axum::serve(listener, store.router()).into_future());
    let in_process = Via::InProcess(store.client());
    let levels =
        [1usize, 4, 16, 64].map(|n| (in_process.clone(), n)).into_iter().chain([16, 64].map(|n| (Via::Http(addr), n)));
    for (via, writers) in levels {
        let who = via.writers(writers);
        let level = write_level(&store, repo, &via, writers, plan.writes_per_level, plan.runs, section).await?;
        level.add_to(report, section, &who);
    }
    server.abort();
    store.close().await?;
    Ok(())
}

/// The runs of one writer level, one value per run.
pub(crate) struct LevelRuns {
    /// Acknowledged writes per second.
    pub rates: Vec<f64>,
    /// Median latency (ms).
    pub p50s: Vec<f64>,
    /// 99th percentile latency (ms).
    pub p99s: Vec<f64>,
    /// Writes per push (group commit).
    pub batches: Vec<f64>,
    /// Mean time of a push (ms), from the store's /metrics.
    pub push_ms: Vec<f64>,
    /// Pushes the store made, from its /metrics.
    pub pushes: Vec<f64>,
}

impl LevelRuns {
    /// Adds the rows of this level (`who`: "16 writers") to `section`.
    pub fn add_to(self, report: &mut Report, section: &str, who: &str) {
        report.add(section, format!("{who}: writes per git push (group commit)"), "", self.batches, String::new());
        report.add(section, format!("{who}: mean git push time (store /metrics)"), "ms", self.push_ms, String::new());
        report.add(section, format!("{who}: acknowledged writes/s"), "1/s", self.rates, String::new());
        report.add(section, format!("{who}: p50 latency"), "ms", self.p50s, String::new());
        report.add(section, format!("{who}: p99 latency"), "ms", self.p99s, String::new());
    }
}

/// `runs` runs of `writers` concurrent writers through `via` into `store`, `writes` writes in all
/// per run (at least 2 per writer), each writer on an object of its own.
pub(crate) async fn write_level(
    store: &GitStore,
    repo: &Repo,
    via: &Via,
    writers: usize,
    writes: usize,
    runs: usize,
    section: &str,
) -> Result<LevelRuns> {
    let total_cms = repogen::configmap_count(repo.objects - 1);
    let per_writer = writes.div_ceil(writers).max(2);
    let mut level = LevelRuns {
        rates: Vec::new(),
        p50s: Vec::new(),
        p99s: Vec::new(),
        batches: Vec::new(),
        push_ms: Vec::new(),
        pushes: Vec::new(),
    };
    let who = via.writers(writers);
    for run in 0..runs {
        let (pushes_before, push_seconds_before) = pushes(store).await?;
        progress(&format!("{section}: {who} × {per_writer} writes, run {}/{runs}", run + 1));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..writers {
            // Each writer has an object of its own: writer w in namespace w % 10, the writers'
            // objects spread over the whole repository.
            let (name, ns, _, _) = repogen::configmap(repogen::spread(w, writers, total_cms), 0);
            tasks.push(tokio::spawn(via.clone().write(ns, name, per_writer, format!("{who}-{run}"))));
        }
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await??);
        }
        record_run(&latencies, started, [&mut level.rates, &mut level.p50s, &mut level.p99s]);
        let (pushes_after, push_seconds_after) = pushes(store).await?;
        let count = (pushes_after - pushes_before).max(1.0);
        level.pushes.push(pushes_after - pushes_before);
        level.batches.push(latencies.len() as f64 / count);
        level.push_ms.push((push_seconds_after - push_seconds_before) * 1000.0 / count);
    }
    Ok(level)
}

/// The prototype's approach, one `git add && git commit && git push` per write, and its ratio to
/// each writer level of `section`.
fn baseline_writes(repo: &Repo, section: &str, plan: &Plan, report: &mut Report) -> Result<()> {
    let total_cms = repogen::configmap_count(repo.objects - 1);
    // Baseline: the prototype's approach, one `git add && git commit && git push` per write.
    let dir = tempfile::tempdir()?;
    let wt = dir.path().join("wt");
    progress(&format!("{section}: baseline, cloning a work tree"));
    repogen::git(dir.path(), &["clone", "--quiet", &repo.local_url(), wt.to_str().context("utf-8")?])?;
    repogen::git(&wt, &["config", "user.name", "Bench"])?;
    repogen::git(&wt, &["config", "user.email", "bench@localhost"])?;
    let mut latencies = Vec::new();
    for j in 0..plan.baseline_writes {
        let (_, _, path, text) = repogen::configmap(j % total_cms, 1000 + j);
        let t = Instant::now();
        std::fs::write(wt.join(&path), text)?;
        repogen::git(&wt, &["add", &path])?;
        repogen::git(&wt, &["commit", "--quiet", "-m", "baseline write"])?;
        repogen::git(&wt, &["push", "--quiet", "origin", "main"])?;
        latencies.push(ms(t.elapsed()));
    }
    let rate = 1000.0 / median(&latencies);
    let ratio = |name: &str, report: &Report| {
        report.get(section, name).map(|v| format!("{:.1}× the git CLI baseline", v / rate)).unwrap_or_default()
    };
    for w in [1, 4, 16, 64] {
        let name = format!("{w} writers: acknowledged writes/s");
        let note = ratio(&name, report);
        if let Some(row) = report.rows.iter_mut().find(|r| r.section == section && r.name == name) {
            row.note = note;
        }
    }
    report.add(
        section,
        "baseline: git add && commit && push per write (1 writer)",
        "ms",
        latencies.clone(),
        format!("{rate:.1} writes/s"),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Cold sync and warm restart

/// Returns the median time to parse every YAML file on all cores (the full-rescan baseline).
async fn cold_sync(repo: &Repo, plan: &Plan, report: &mut Report) -> Result<f64> {
    let section = format!("Cold sync and warm restart ({} objects)", repo.objects);
    let (mut opens, mut reviews) = (Vec::new(), Vec::new());
    for run in 0..plan.runs {
        progress(&format!("{section}: cold GitStore::open, run {}/{}", run + 1, plan.runs));
        let t = Instant::now();
        let store = GitStore::open(&repo.local_url(), options(HOUR)).await?;
        opens.push(ms(t.elapsed()));
        // The report waits for the review of what the sync brought (validation, run beside it).
        let t = Instant::now();
        let objects = store.report().objects;
        reviews.push(ms(t.elapsed()));
        if objects < repo.objects {
            bail!("the store holds {objects} objects, the repository {}", repo.objects);
        }
        store.close().await?;
    }
    let mut clones = Vec::new();
    for _ in 0..plan.runs {
        clones.push(ms(clone_bare(repo)?));
    }
    let mut parses = Vec::new();
    for _ in 0..plan.runs {
        let files = repo.files.clone();
        let t = Instant::now();
        tokio::task::spawn_blocking(move || parse_all(&files, false)).await??;
        parses.push(ms(t.elapsed()));
    }
    let floor = median(&clones) + median(&parses);
    let cold = median(&opens);
    report.add(
        &section,
        "cold: GitStore::open → ready (empty cache)",
        "ms",
        opens,
        format!("{:.2}× the floor", cold / floor),
    );
    report.add(
        &section,
        "review: validate what the sync brought (after ready, beside the sync)",
        "ms",
        reviews,
        "what remains of it when the store is ready".into(),
    );
    report.add(&section, "floor: git clone --bare --no-local", "ms", clones.clone(), String::new());
    report.add(&section, "floor: parse every YAML file (serde-saphyr, all cores)", "ms", parses.clone(), String::new());
    report.add(&section, "floor: clone + parse", "ms", vec![floor], "sum of the medians".into());

    let dir = tempfile::tempdir()?;
    let cache = dir.path().join("mirror.git");
    let warm_options = || Options { cache_dir: Some(cache.clone()), ..options(HOUR) };
    GitStore::open(&repo.local_url(), warm_options()).await?.close().await?;
    let mut warm = Vec::new();
    for run in 0..plan.runs {
        progress(&format!("{section}: warm GitStore::open, run {}/{}", run + 1, plan.runs));
        let t = Instant::now();
        let store = GitStore::open(&repo.local_url(), warm_options()).await?;
        warm.push(ms(t.elapsed()));
        // Let the review finish, so that it does not run into the next measurement.
        store.report();
        store.close().await?;
    }
    let ratio = median(&warm) / median(&clones);
    report.add(
        &section,
        "warm: GitStore::open with the cache of a previous run, no upstream change",
        "ms",
        warm,
        format!("{ratio:.2}× git clone --bare"),
    );
    Ok(median(&parses))
}

fn clone_bare(repo: &Repo) -> Result<Duration> {
    let dir = tempfile::tempdir()?;
    let t = Instant::now();
    repogen::git(dir.path(), &["clone", "--quiet", "--bare", "--no-local", &repo.local_url(), "copy.git"])?;
    Ok(t.elapsed())
}

/// Parses every document of every file on all cores; returns the total JSON size when asked.
fn parse_all(files: &[(String, String)], json_size: bool) -> Result<usize> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let chunk = files.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || -> Result<usize> {
                    let mut bytes = 0;
                    for (path, text) in part {
                        for doc in text.split("\n---\n") {
                            let value: serde_json::Value =
                                serde_saphyr::from_str(doc).with_context(|| format!("parsing {path}"))?;
                            if json_size {
                                bytes += serde_json::to_vec(&value)?.len();
                            }
                        }
                    }
                    Ok(bytes)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("parser thread")).sum()
    })
}

// ---------------------------------------------------------------------------------------------
// Incremental sync

/// The store's own /metrics text.
async fn metrics(store: &GitStore) -> Result<String> {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let request = axum::http::Request::get("/metrics").body(axum::body::Body::empty())?;
    let response = store.router().oneshot(request).await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Sums the samples of a metric whose line starts with `prefix` and contains `label`.
fn metric_sum(text: &str, prefix: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The label of the branch's git operations in the store's /metrics (the lease ref has its own).
const BRANCH: &str = "reference=\"refs/heads/main\"";

/// Total seconds the store spent in git operations on the branch, from its /metrics.
async fn git_seconds(store: &GitStore) -> Result<f64> {
    Ok(metric_sum(&metrics(store).await?, "gitbacked_git_operation_duration_seconds_sum", BRANCH))
}

/// git pushes so far and the seconds they took, from the store's /metrics.
pub(crate) async fn pushes(store: &GitStore) -> Result<(f64, f64)> {
    let text = metrics(store).await?;
    // Both ways of pushing: `git push`, and a direct push into a bare repository on this machine.
    let sum = |metric: &str| {
        ["operation=\"push\"", "operation=\"direct-push\""].iter().map(|label| metric_sum(&text, metric, label)).sum()
    };
    Ok((sum("gitbacked_git_operation_duration_seconds_count"), sum("gitbacked_git_operation_duration_seconds_sum")))
}

type Watch = futures::stream::BoxStream<'static, kube::Result<WatchEvent<ConfigMap>>>;

async fn watch_configmaps(store: &GitStore) -> Result<Watch> {
    let api: Api<ConfigMap> = Api::all(store.client());
    let revision = store.report().resource_version.to_string();
    Ok(api.watch(&WatchParams::default().timeout(290), &revision).await?.boxed())
}

/// Waits until every object in `names` was modified.
async fn await_events(watch: &mut Watch, names: &[String]) -> Result<()> {
    let mut waiting: HashSet<&str> = names.iter().map(String::as_str).collect();
    let wait = async {
        while !waiting.is_empty() {
            match watch.try_next().await? {
                Some(WatchEvent::Modified(cm)) | Some(WatchEvent::Added(cm)) => {
                    waiting.remove(cm.metadata.name.as_deref().unwrap_or_default());
                }
                Some(WatchEvent::Error(e)) => bail!("watch error: {e:?}"),
                Some(_) => {}
                None => bail!("the watch ended"),
            }
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(60), wait).await.context("no event within 60 s")?
}

async fn incremental(repo: &Repo, plan: &Plan, parse_ms: f64, report: &mut Report) -> Result<()> {
    let section = format!("Incremental sync ({} objects)", repo.objects);
    // A URL the store does not recognize as local: only `sync()` brings the commit in.
    let store = GitStore::open(&repo.polled_url(), options(HOUR)).await?;
    let mut watch = watch_configmaps(&store).await?;
    let (mut first, mut round) = (0, 1);
    for count in [1usize, 10, 100] {
        // One object, the goal's case, gets more samples: the first one after the open may differ.
        let runs = if count == 1 { plan.one_object_commits.max(plan.runs) } else { plan.runs };
        let (mut totals, mut after_fetch) = (Vec::new(), Vec::new());
        for run in 0..runs {
            progress(&format!("{section}: a commit changing {count} objects, run {}/{runs}", run + 1));
            let names = tokio::task::block_in_place(|| repogen::change_configmaps(repo, first, count, round))?;
            first += count;
            round += 1;
            let git_before = git_seconds(&store).await?;
            let t = Instant::now();
            store.sync().await?;
            await_events(&mut watch, &names).await?;
            let total = ms(t.elapsed());
            let git = (git_seconds(&store).await? - git_before) * 1000.0;
            totals.push(total);
            after_fetch.push((total - git).max(0.0));
        }
        let ratio = parse_ms / median(&after_fetch).max(0.001);
        let samples: Vec<String> = after_fetch.iter().map(|v| format!("{v:.1}")).collect();
        report.add(&section, format!("{count} objects: sync() → events at a watcher"), "ms", totals, String::new());
        report.add(
            &section,
            format!("{count} objects: fetch done → events at a watcher"),
            "ms",
            after_fetch,
            format!("full re-parse takes {ratio:.1}× as long; in order: {} ms", samples.join(", ")),
        );
    }
    report.add(
        &section,
        "baseline: full rescan (re-parse of the whole tree, all cores)",
        "ms",
        vec![parse_ms],
        "a lower bound: reading the blobs is not counted".into(),
    );
    store.close().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reads

async fn reads(repo: &Repo, plan: &Plan, report: &mut Report) -> Result<()> {
    let section = format!("Reads ({} objects)", repo.objects);
    let store = GitStore::open(&repo.local_url(), options(HOUR)).await?;
    let client = store.client();
    let (name, ns, _, _) = repogen::configmap(3, 0);
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let (mut gets, mut gets99, mut routed) = (Vec::new(), Vec::new(), Vec::new());
    let router = store.router();
    let uri = format!("/api/v1/namespaces/{ns}/configmaps/{name}");
    for run in 0..plan.runs {
        progress(&format!("{section}: in-process GET × {}, run {}/{}", plan.gets, run + 1, plan.runs));
        let mut latencies = Vec::with_capacity(plan.gets);
        for _ in 0..plan.gets {
            let t = Instant::now();
            api.get(&name).await?;
            latencies.push(t.elapsed().as_secs_f64() * 1e6);
        }
        gets.push(median(&latencies));
        gets99.push(percentile(&latencies, 99.0));
        // The server side alone: the same request through the Router, body read, no kube client.
        let mut latencies = Vec::with_capacity(plan.gets);
        for _ in 0..plan.gets {
            use tower::ServiceExt;
            let request = axum::http::Request::get(uri.as_str()).body(axum::body::Body::empty())?;
            let t = Instant::now();
            let response = router.clone().oneshot(request).await?;
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
            latencies.push(t.elapsed().as_secs_f64() * 1e6);
            std::hint::black_box(body);
        }
        routed.push(median(&latencies));
    }
    report.add(&section, "in-process GET (kube Api::get on store.client()), p50", "µs", gets, String::new());
    report.add(&section, "in-process GET, p99", "µs", gets99, String::new());
    report.add(&section, "GET through store.router() alone (no kube client), p50", "µs", routed, String::new());

    // Over HTTP: the same Router served by axum on loopback, a keep-alive load loop.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(axum::serve(listener, store.router()).into_future());
    let path = Arc::new(format!("/api/v1/namespaces/{ns}/configmaps/{name}"));
    let connections = 8;
    let (mut p50s, mut p99s, mut rates) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..plan.runs {
        progress(&format!(
            "{section}: HTTP GET × {} on {connections} connections, run {}/{}",
            plan.gets,
            run + 1,
            plan.runs
        ));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let path = path.clone();
            let per = plan.gets / connections;
            tasks.push(tokio::spawn(async move {
                let mut conn = crate::http::Conn::connect(addr).await?;
                let mut latencies = Vec::with_capacity(per);
                for _ in 0..per {
                    let t = Instant::now();
                    let (status, _) = conn.get(&path).await?;
                    if status != 200 {
                        bail!("GET answered {status}");
                    }
                    latencies.push(t.elapsed().as_secs_f64() * 1e6);
                }
                Ok(latencies)
            }));
        }
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await??);
        }
        record_run(&latencies, started, [&mut rates, &mut p50s, &mut p99s]);
    }
    report.add(&section, format!("HTTP GET, {connections} connections: p50"), "µs", p50s, String::new());
    report.add(&section, format!("HTTP GET, {connections} connections: p99"), "µs", p99s, String::new());
    report.add(&section, format!("HTTP GET, {connections} connections: throughput"), "1/s", rates, String::new());
    wrk_gets(addr, &path, plan, &section, report).await?;
    // LISTs, in-process (typed) and over HTTP: 10,000 ConfigMaps of the whole cluster (the first
    // page of `limit=10000`), one namespace whole (the tenant's 10,000 ConfigMaps when the repository
    // has them), and every ConfigMap in pages of `plan.page` to the end.
    let listed = if repo.objects - 1 < repogen::TENANT_FROM { ns.as_str() } else { repogen::TENANT };
    for mut lister in [Lister::InProcess(client.clone()), Lister::Http(crate::http::Conn::connect(addr).await?)] {
        let (via, typed) = lister.names();
        let (lists, page) = lister.repeat(None, Some(10_000), plan.runs * plan.lists).await?;
        let name = format!("{via} LIST of {} ConfigMaps{typed}", page.items);
        report.add(&section, name, "ms", lists, page.size());
        let (lists, page) = lister.repeat(Some(listed), None, plan.runs * plan.lists).await?;
        let name = format!("{via} LIST of namespace {listed}: {} ConfigMaps, no limit{typed}", page.items);
        report.add(&section, name, "ms", lists, page.size());
        let (mut totals, mut p50s, mut p99s, mut pages, mut items) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0);
        for run in 0..plan.runs {
            progress(&format!("{section}: {via} LIST in pages of {}, run {}/{}", plan.page, run + 1, plan.runs));
            (pages, items) = lister.paged(plan.page).await?;
            totals.push(pages.iter().sum());
            p50s.push(percentile(&pages, 50.0));
            p99s.push(percentile(&pages, 99.0));
        }
        let (first, max) = (pages[0], pages.iter().copied().fold(0.0, f64::max));
        let limit = plan.page;
        report.add(
            &section,
            format!("{via} paged LIST of every ConfigMap, limit={limit} to the end{typed}: all pages"),
            "ms",
            totals,
            format!("{} pages, {items} ConfigMaps; the sum of the pages' times", pages.len()),
        );
        report.add(&section, format!("{via} paged LIST (limit={limit}): page p50"), "ms", p50s, String::new());
        report.add(
            &section,
            format!("{via} paged LIST (limit={limit}): page p99"),
            "ms",
            p99s,
            format!("last run: first page {first:.1} ms (it takes the snapshot), slowest {max:.1} ms"),
        );
    }
    server.abort();
    store.close().await?;
    Ok(())
}

/// Where the reads' LISTs of ConfigMaps go: the store's kube client (typed), or one keep-alive
/// HTTP connection to its Router.
enum Lister {
    InProcess(kube::Client),
    Http(crate::http::Conn),
}

/// One page of a LIST.
#[derive(Default)]
struct Page {
    /// The items it held.
    items: usize,
    /// Its size as sent, when it went over HTTP.
    bytes: Option<usize>,
    /// The continue token of the next page, if there is one.
    next: Option<String>,
}

impl Page {
    /// Its size as a row's note.
    fn size(&self) -> String {
        self.bytes.map(|b| format!("{:.1} MB of JSON", b as f64 / 1e6)).unwrap_or_default()
    }
}

/// Of a page read over HTTP, what the bench needs: its continue token and how many items it held.
#[derive(serde::Deserialize)]
struct HttpPage {
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta,
    items: Vec<serde::de::IgnoredAny>,
}

impl Lister {
    /// How a row names it, and what it adds to the name of a LIST (in-process LISTs are typed).
    fn names(&self) -> (&'static str, &'static str) {
        match self {
            Lister::InProcess(_) => ("in-process", " (typed, kube Api::list)"),
            Lister::Http(_) => ("HTTP", ""),
        }
    }

    /// One LIST of ConfigMaps (of `namespace`, or of every namespace) with `limit`, from the
    /// continue token `from` on: its time (ms; over HTTP, reading the answer's items is not
    /// counted) and the page.
    async fn page(&mut self, namespace: Option<&str>, limit: Option<usize>, from: Option<&str>) -> Result<(f64, Page)> {
        match self {
            Lister::InProcess(client) => {
                let api: Api<ConfigMap> = match namespace {
                    Some(ns) => Api::namespaced(client.clone(), ns),
                    None => Api::all(client.clone()),
                };
                let params = ListParams {
                    limit: limit.map(u32::try_from).transpose()?,
                    continue_token: from.map(str::to_string),
                    ..ListParams::default()
                };
                let t = Instant::now();
                let list = api.list(&params).await?;
                let took = ms(t.elapsed());
                let next = list.metadata.continue_.filter(|c| !c.is_empty());
                Ok((took, Page { items: list.items.len(), bytes: None, next }))
            }
            Lister::Http(conn) => {
                let mut path = match namespace {
                    Some(ns) => format!("/api/v1/namespaces/{ns}/configmaps?"),
                    None => "/api/v1/configmaps?".to_string(),
                };
                if let Some(limit) = limit {
                    path.push_str(&format!("limit={limit}&"));
                }
                // gitbacked's tokens (`<id>.<offset>.<revision>`) need no escaping in a query.
                if let Some(token) = from {
                    path.push_str(&format!("continue={token}"));
                }
                let t = Instant::now();
                let (status, body) = conn.get_body(&path).await?;
                let took = ms(t.elapsed());
                if status != 200 {
                    bail!("LIST {path} answered {status}");
                }
                let page: HttpPage = serde_json::from_slice(&body)?;
                let next = page.metadata.continue_.filter(|c| !c.is_empty());
                Ok((took, Page { items: page.items.len(), bytes: Some(body.len()), next }))
            }
        }
    }

    /// The same first page `times` times: their times (ms) and the last of them.
    async fn repeat(
        &mut self,
        namespace: Option<&str>,
        limit: Option<usize>,
        times: usize,
    ) -> Result<(Vec<f64>, Page)> {
        let (mut lists, mut last) = (Vec::with_capacity(times), Page::default());
        for _ in 0..times {
            let (took, page) = self.page(namespace, limit, None).await?;
            lists.push(took);
            last = page;
        }
        Ok((lists, last))
    }

    /// Every ConfigMap in pages of `limit`, following the continue tokens to the end: each page's
    /// time (ms) and how many items they held.
    async fn paged(&mut self, limit: usize) -> Result<(Vec<f64>, usize)> {
        let (mut pages, mut items, mut from) = (Vec::new(), 0, None);
        loop {
            let (took, page) = self.page(None, Some(limit), from.as_deref()).await?;
            pages.push(took);
            items += page.items;
            match page.next {
                Some(next) => from = Some(next),
                None => return Ok((pages, items)),
            }
        }
    }
}

/// The same GETs from `wrk` (2 threads, 8 keep-alive connections), when it is installed.
async fn wrk_gets(
    addr: std::net::SocketAddr,
    path: &str,
    plan: &Plan,
    section: &str,
    report: &mut Report,
) -> Result<()> {
    let seconds = if plan.gets < 1000 { 1 } else { 5 };
    let url = format!("http://{addr}{path}");
    let (mut p50s, mut p99s, mut rates) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..plan.runs {
        progress(&format!("{section}: wrk for {seconds} s, run {}/{}", run + 1, plan.runs));
        let duration = format!("{seconds}s");
        let args = ["-t2", "-c8", "-d", duration.as_str(), "--latency", url.as_str()];
        let output = match tokio::process::Command::new("wrk").args(args).output().await {
            Ok(output) if output.status.success() => output,
            Ok(output) => bail!("wrk failed: {}", String::from_utf8_lossy(&output.stderr)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                report.skipped.push("HTTP GET with wrk: wrk is not installed".into());
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let text = String::from_utf8_lossy(&output.stdout);
        let field = |label: &str| text.lines().find_map(|l| l.trim().strip_prefix(label).map(str::trim));
        p50s.push(field("50%").and_then(wrk_micros).context("wrk printed no 50% latency")?);
        p99s.push(field("99%").and_then(wrk_micros).context("wrk printed no 99% latency")?);
        rates.push(field("Requests/sec:").and_then(|v| v.parse().ok()).context("wrk printed no rate")?);
    }
    report.add(section, "HTTP GET with wrk (2 threads, 8 connections): p50", "µs", p50s, String::new());
    report.add(section, "HTTP GET with wrk: p99", "µs", p99s, String::new());
    report.add(section, "HTTP GET with wrk: throughput", "1/s", rates, String::new());
    Ok(())
}

/// A latency as wrk prints it (`812.00us`, `1.23ms`, `2.00s`), in µs.
fn wrk_micros(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        _ => return None,
    };
    Some(number.parse::<f64>().ok()? * scale)
}

// ---------------------------------------------------------------------------------------------
// Propagation

/// The shared secret of the webhook in the propagation measurement.
const WEBHOOK_SECRET: &str = "gitbacked-bench-secret";

/// Delivers a GitLab-style push webhook to the store's Router (in-process); returns the status.
async fn deliver_webhook(store: &GitStore) -> Result<u16> {
    use tower::ServiceExt;
    let request = axum::http::Request::post("/hooks/git")
        .header("x-gitlab-token", WEBHOOK_SECRET)
        .header("x-gitlab-event", "Push Hook")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(r#"{"object_kind":"push","ref":"refs/heads/main"}"#))?;
    Ok(store.router().oneshot(request).await?.status().as_u16())
}

async fn propagation(repo: &Repo, plan: &Plan, report: &mut Report) -> Result<()> {
    let section = format!("Propagation: a person's push → event at a kube watcher ({} objects)", repo.objects);
    let modes: [(&str, String, Duration, bool, usize); 3] = [
        ("local-path remote (watched every 50 ms)", repo.local_url(), HOUR, false, plan.samples),
        ("webhook (POST /hooks/git right after the push)", repo.polled_url(), HOUR, true, plan.samples),
        ("polling every 1 s", repo.polled_url(), Duration::from_secs(1), false, plan.poll_samples),
    ];
    // Objects far from the ones the other measurements change.
    let mut first = repogen::configmap_count(repo.objects - 1) / 2;
    for (mode, url, interval, webhook, samples) in modes {
        let secret = webhook.then(|| WEBHOOK_SECRET.to_string());
        let store = GitStore::open(&url, Options { webhook_secret: secret, ..options(interval) }).await?;
        let mut watch = watch_configmaps(&store).await?;
        let mut latencies = Vec::new();
        for s in 0..samples {
            progress(&format!("{section}: {mode}, sample {}/{samples}", s + 1));
            let names = tokio::task::block_in_place(|| repogen::change_configmaps(repo, first, 1, 5000 + s))?;
            first += 1;
            let t = Instant::now();
            if webhook {
                let status = deliver_webhook(&store).await?;
                if status != 200 {
                    bail!("the webhook answered {status}");
                }
            }
            await_events(&mut watch, &names).await?;
            latencies.push(ms(t.elapsed()));
            // Not in lockstep with the poll interval.
            tokio::time::sleep(Duration::from_millis(37 * (s as u64 % 7))).await;
        }
        let p99 = percentile(&latencies, 99.0);
        report.add(&section, mode, "ms", latencies, format!("p99 {p99:.0} ms"));
        store.close().await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Memory

fn memory(repo: &Repo, plan: &Plan, report: &mut Report) -> Result<()> {
    let section = format!("Memory ({} objects)", repo.objects);
    let json = parse_all(&repo.files, true)? as f64 / 1e6;
    let runs = plan.runs.min(2);
    let mut peaks = Vec::new();
    for run in 0..runs {
        progress(&format!("{section}: a fresh process opens the store, run {}/{runs}", run + 1));
        peaks.push(child_peak(&repo.local_url())?);
    }
    let empty = repogen::generate(0)?;
    let fixed = child_peak(&empty.local_url())?;
    let peak = median(&peaks);
    report.add(
        &section,
        "peak RSS (VmHWM) of a process that opened the store",
        "MB",
        peaks,
        format!("{:.1}× the JSON; (peak − fixed cost) = {:.1}× the JSON", peak / json, (peak - fixed) / json),
    );
    report.add(
        &section,
        "peak RSS of the same process on a repository with no objects (fixed cost)",
        "MB",
        vec![fixed],
        String::new(),
    );
    report.add(&section, "JSON size of the objects (as written, compact)", "MB", vec![json], String::new());
    Ok(())
}

/// Runs `child-open` in a fresh process; returns its peak RSS in MB.
fn child_peak(url: &str) -> Result<f64> {
    let out = std::process::Command::new(std::env::current_exe()?).args(["child-open", url]).output()?;
    if !out.status.success() {
        bail!("child-open failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let kb: f64 = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("hwm_kb="))
        .and_then(|v| v.parse().ok())
        .context("child output")?;
    Ok(kb * 1024.0 / 1e6)
}

/// The hidden subcommand: opens the store and prints the peak RSS of this process.
pub async fn child_open(url: &str) -> Result<()> {
    let store = GitStore::open(url, options(HOUR)).await?;
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("0")
            .to_string()
    };
    println!("hwm_kb={} rss_kb={} objects={}", field("VmHWM:"), field("VmRSS:"), store.report().objects);
    store.close().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Goals

fn goals(report: &mut Report, sizes: &[usize], big: &[usize], largest: usize) {
    let objects = |n: usize| n + 1;
    if let (Some(cold), Some(floor)) = (
        report.get(&cold_section(largest), "cold: GitStore::open → ready (empty cache)"),
        report.get(&cold_section(largest), "floor: clone + parse"),
    ) {
        let ratio = cold / floor;
        report.goal(
            format!("cold sync ≤ 1.3× the floor ({} objects)", objects(largest)),
            format!("{cold:.0} ms vs floor {floor:.0} ms = {ratio:.2}×"),
            ratio <= 1.3,
        );
    }
    for &n in sizes {
        let section = cold_section(n);
        let warm = "warm: GitStore::open with the cache of a previous run, no upstream change";
        if let (Some(w), Some(c)) =
            (report.get(&section, warm), report.get(&section, "floor: git clone --bare --no-local"))
        {
            report.goal(
                format!("warm restart ≤ 2× git clone --bare ({} objects)", objects(n)),
                format!("{w:.0} ms vs {c:.0} ms = {:.2}×", w / c),
                w / c <= 2.0,
            );
        }
    }
    let inc = format!("Incremental sync ({} objects)", objects(largest));
    if let (Some(one), Some(hundred)) = (
        report.get(&inc, "1 objects: fetch done → events at a watcher"),
        report.get(&inc, "100 objects: fetch done → events at a watcher"),
    ) {
        report.goal(
            "incremental sync proportional to the change (100 objects vs 1 object; ≤ 100×, far below a rescan)",
            format!("{one:.1} ms for 1, {hundred:.1} ms for 100"),
            hundred <= one * 100.0
                && report
                    .get(&inc, "baseline: full rescan (re-parse of the whole tree, all cores)")
                    .is_some_and(|r| hundred < r),
        );
    }
    if let Some(row) =
        report.rows.iter().find(|r| r.section == inc && r.name == "1 objects: fetch done → events at a watcher")
    {
        let (p50, (_, max)) = (row.median(), row.range());
        report.goal(
            format!("a person's commit of 1 object: fetch done → events ≤ 10 ms ({} objects)", objects(largest)),
            format!("p50 {p50:.1} ms, max {max:.1} ms (n={})", row.values.len()),
            p50 <= 10.0,
        );
    }
    for &n in big {
        // The goal is set for a local remote; the git daemon rows show what a network push adds.
        let section = format!("Writes ({} objects, local bare remote)", objects(n));
        if let (Some(rate), Some(p99)) =
            (report.get(&section, "16 writers: acknowledged writes/s"), report.get(&section, "16 writers: p99 latency"))
        {
            report.goal(
                format!("≥ 500 writes/s and p99 ≤ 100 ms at 16 writers ({} objects, local bare remote)", objects(n)),
                format!("{rate:.0} writes/s, p99 {p99:.0} ms"),
                rate >= 500.0 && p99 <= 100.0,
            );
        }
        let section = format!("Reads ({} objects)", objects(n));
        if let Some(get) = report.get(&section, "in-process GET (kube Api::get on store.client()), p50") {
            report.goal(
                format!("in-process GET ≤ 20 µs ({} objects)", objects(n)),
                format!("{get:.1} µs"),
                get <= 20.0,
            );
        }
        // The whole cluster's first 10,000 and one namespace's (10,000 from `repogen::TENANT_FROM` on).
        let lists: Vec<(String, f64)> = (report.rows.iter())
            .filter(|r| r.section == section && r.name.starts_with("HTTP LIST of"))
            .map(|r| (r.name.clone(), r.median()))
            .collect();
        for (name, v) in lists {
            report.goal(format!("{name} ≤ 50 ms ({} objects)", objects(n)), format!("{v:.1} ms"), v <= 50.0);
        }
        let section = format!("Memory ({} objects)", objects(n));
        if let (Some(peak), Some(json)) = (
            report.get(&section, "peak RSS (VmHWM) of a process that opened the store"),
            report.get(&section, "JSON size of the objects (as written, compact)"),
        ) {
            report.goal(
                format!("peak RSS ≤ 3× the JSON size ({} objects)", objects(n)),
                format!("{peak:.0} MB vs {json:.1} MB = {:.1}×", peak / json),
                peak <= 3.0 * json,
            );
        }
    }
}

fn cold_section(n: usize) -> String {
    format!("Cold sync and warm restart ({} objects)", n + 1)
}

/// Adds one run's throughput (per second since `started`), p50 and p99 of `latencies` to the series.
fn record_run(latencies: &[f64], started: Instant, [rates, p50s, p99s]: [&mut Vec<f64>; 3]) {
    rates.push(latencies.len() as f64 / started.elapsed().as_secs_f64());
    p50s.push(percentile(latencies, 50.0));
    p99s.push(percentile(latencies, 99.0));
}
