//! Writes to network remotes with latency (issue 15, item 7): git daemon and smart HTTP (nginx +
//! fcgiwrap + `git http-backend`) behind the delaying proxy of [`crate::proxy`], at each round-trip
//! time asked for. The yardstick is git itself: `t_push`, one `git push` of a one-file commit from
//! a work-tree clone over the same link, measured in the same run (before and after the writers).
//! Then 16 and 64 writers, in-process and over HTTP, through a store opened on the proxied URL with
//! one push at a time and with pushes that overlap, with their throughput and latencies as ratios
//! to `t_push`, and the round trips of a push on each transport as the proxy sees them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use gitbacked::{GitStore, Options};

use super::{Daemon, HOUR, Plan, Via, ms, options, write_level};
use crate::proxy::{Counts, Proxy};
use crate::repogen::{self, Repo};
use crate::report::{Report, median, percentile, progress};
use gitbacked_test_support::servers::GitHttp;

/// The writer levels measured over each link.
const WRITERS: [usize; 2] = [16, 64];

/// How many pushes may be under way at once: one at a time, and the default.
const PUSHES_IN_FLIGHT: [usize; 2] = [1, 4];

/// Runs the measurement at each of `rtts` (ms) over git daemon and, when nginx and fcgiwrap are
/// installed, smart HTTP.
pub async fn run(repo: &Repo, plan: &Plan, rtts: &[u64], report: &mut Report) -> Result<()> {
    let base = repo.remote.parent().context("the remote has a parent directory")?;
    // Anonymous pushes over smart HTTP: http-backend refuses them unless told otherwise.
    repogen::git(&repo.remote, &["config", "http.receivepack", "true"])?;
    let daemon = Daemon::start(repo)?;
    let http = GitHttp::start(base, None);
    if http.is_none() {
        report.skipped.push("writes over smart HTTP with latency: nginx or fcgiwrap does not start".into());
    }
    let mut links: Vec<(&str, SocketAddr, &str)> =
        vec![("git daemon", SocketAddr::from(([127, 0, 0, 1], daemon.port)), "git")];
    if let Some(http) = &http {
        links.push(("smart HTTP", SocketAddr::from(([127, 0, 0, 1], http.port())), "http"));
    }
    for &rtt in rtts {
        for &(transport, upstream, scheme) in &links {
            let proxy = Proxy::start(upstream, Duration::from_millis(rtt))?;
            let url = format!("{scheme}://127.0.0.1:{}/remote.git", proxy.port);
            let section = format!("Network remote with latency: {transport}, {rtt} ms RTT ({} objects)", repo.objects);
            link(repo, plan, &url, &proxy, &section, report).await?;
        }
    }
    Ok(())
}

/// One transport at one round-trip time: `t_push`, then the writer levels, then `t_push` again.
async fn link(repo: &Repo, plan: &Plan, url: &str, proxy: &Proxy, section: &str, report: &mut Report) -> Result<()> {
    let mut clone = tokio::task::block_in_place(|| PushClone::new(repo, url))?;
    progress(&format!("{section}: t_push, {} git push before the writers", plan.push_samples));
    let mut before = Vec::new();
    let mut turns = Vec::new();
    for _ in 0..plan.push_samples {
        let (t, counts) = tokio::task::block_in_place(|| clone.push(proxy))?;
        before.push(t);
        turns.push(counts);
    }

    // Each level with pushes one at a time and with pushes that overlap, in-process and over
    // HTTP (`gitbacked serve`'s Router): the spread of the HTTP answers splits batches.
    let mut open = Vec::new();
    let mut levels = Vec::new();
    let mut open_loops = Vec::new();
    for in_flight in PUSHES_IN_FLIGHT {
        let t = Instant::now();
        let store = GitStore::open(url, Options { pushes_in_flight: in_flight, ..options(HOUR) }).await?;
        open.push(ms(t.elapsed()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(axum::serve(listener, store.router()).into_future());
        for via in [Via::InProcess(store.client()), Via::Http(addr)] {
            for writers in WRITERS {
                let (pushes_before, carried_before) = (super::pushes(&store).await?.0, proxy.counts());
                let starts_before = starts(&store).await?;
                let label = format!("{}, {in_flight} push(es) in flight", via.writers(writers));
                let level = write_level(&store, repo, &via, writers, plan.latency_writes, plan.runs, section).await?;
                let pushes = super::pushes(&store).await?.0 - pushes_before;
                let carried = proxy.counts() - carried_before;
                let started = starts(&store).await?.map(|n| n as i64);
                let started: [i64; 3] = std::array::from_fn(|i| started[i] - starts_before[i] as i64);
                levels.push((writers, label, level, pushes, carried, started));
            }
        }
        // Writes that do not wait for each other: the case pushes that overlap are for.
        let t_push = median(&before);
        let label = format!("open loop, {OPEN_LOOP_RATE} writes per t_push, {in_flight} push(es) in flight");
        progress(&format!("{section}: {label}"));
        let starts_before = starts(&store).await?;
        let mut latencies = Vec::new();
        for run in 0..plan.runs {
            let tag = format!("open-{in_flight}-{run}");
            latencies.push(open_loop(repo, &store.client(), t_push, plan.latency_writes, &tag).await?);
        }
        let started = starts(&store).await?;
        open_loops.push((label, latencies, std::array::from_fn::<f64, 3, _>(|i| started[i] - starts_before[i])));
        server.abort();
        store.close().await?;
    }

    progress(&format!("{section}: t_push, {} git push after the writers", plan.push_samples));
    tokio::task::block_in_place(|| clone.catch_up())?;
    let mut after = Vec::new();
    for _ in 0..plan.push_samples {
        let (t, counts) = tokio::task::block_in_place(|| clone.push(proxy))?;
        after.push(t);
        turns.push(counts);
    }

    let samples: Vec<f64> = before.iter().chain(&after).copied().collect();
    let t_push = median(&samples);
    report.add(
        section,
        "t_push: one git push of a one-file commit (git CLI, same link)",
        "ms",
        samples,
        format!("before the writers {:.0} ms, after {:.0} ms", median(&before), median(&after)),
    );
    let first = turns.first().copied().unwrap_or_default();
    report.add(
        section,
        "round trips of one git push (request → answer turn-arounds at the proxy)",
        "",
        turns.iter().map(|c| c.round_trips as f64).collect(),
        format!(
            "{} TCP connection(s), {} bytes up, {} down (first push)",
            first.connections, first.bytes_up, first.bytes_down
        ),
    );
    report.add(section, "GitStore::open over the link (cold sync)", "ms", open, String::new());
    for (label, runs, [alone, overlapping, again]) in open_loops {
        let of_t_push = |q: f64| runs.iter().map(|l| percentile(l, q) / t_push).collect::<Vec<_>>();
        let overlapped = overlapping / (alone + overlapping + again).max(1.0);
        let detail = format!("{alone} alone, {overlapping} overlapping, {again} sent again");
        report.add(
            section,
            format!("{label}: pushes that overlapped one under way (share)"),
            "",
            vec![overlapped],
            detail,
        );
        report.add(section, format!("{label}: p50 / t_push"), "", of_t_push(50.0), String::new());
        report.add(section, format!("{label}: p99 / t_push"), "", of_t_push(99.0), String::new());
    }
    for (writers, who, level, pushes, carried, [alone, overlapping, again]) in levels {
        let share = |rates: &[f64]| rates.iter().map(|r| r / (writers as f64 / t_push * 1000.0)).collect::<Vec<_>>();
        let of_t_push = |values: &[f64]| values.iter().map(|v| v / t_push).collect::<Vec<_>>();
        let (throughput, p50, p99) = (share(&level.rates), of_t_push(&level.p50s), of_t_push(&level.p99s));
        let (rate, p50_ms, p99_ms) = (median(&level.rates), median(&level.p50s), median(&level.p99s));
        level.add_to(report, section, &who);
        let per_push = |n: u64| if pushes > 0.0 { n as f64 / pushes } else { 0.0 };
        report.add(
            section,
            format!("{who}: round trips per store push (at the proxy)"),
            "",
            vec![per_push(carried.round_trips)],
            format!("{:.2} TCP connections per push, {pushes:.0} pushes", per_push(carried.connections)),
        );
        report.add(
            section,
            format!("{who}: pushes that overlapped one under way (share)"),
            "",
            vec![overlapping as f64 / (alone + overlapping + again).max(1) as f64],
            format!("{alone} alone, {overlapping} overlapping, {again} sent again"),
        );
        report.add(
            section,
            format!("{who}: throughput / (writers / t_push)"),
            "",
            throughput.clone(),
            "goal ≥ 0.9".into(),
        );
        report.add(section, format!("{who}: p50 / t_push"), "", p50.clone(), "goal ≤ 1.2".into());
        report.add(section, format!("{who}: p99 / t_push"), "", p99.clone(), "goal ≤ 2".into());
        let (throughput, p50, p99) = (median(&throughput), median(&p50), median(&p99));
        report.goal(
            format!("{section}, {who}: throughput ≥ 0.9 × writers / t_push, p50 ≤ 1.2 × t_push, p99 ≤ 2 × t_push"),
            format!(
                "t_push {t_push:.0} ms; {rate:.0} writes/s = {throughput:.2}×, p50 {p50_ms:.0} ms = {p50:.2}×, \
                 p99 {p99_ms:.0} ms = {p99:.2}×"
            ),
            throughput >= 0.9 && p50 <= 1.2 && p99 <= 2.0,
        );
    }
    Ok(())
}

/// How many writes arrive, on average, during one `t_push` in the open-loop level.
const OPEN_LOOP_RATE: f64 = 8.0;

/// `count` writes arriving at random ([`OPEN_LOOP_RATE`] per `t_push` ms on average, as a Poisson
/// process), each answered in a task of its own, so that none waits for another's answer; each on
/// one of 256 objects in turn, so that no object is written twice at once. Their latencies (ms).
async fn open_loop(repo: &Repo, client: &kube::Client, t_push: f64, count: usize, tag: &str) -> Result<Vec<f64>> {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, Patch, PatchParams};
    let total = repogen::configmap_count(repo.objects - 1);
    let objects = total.min(256);
    let mut next = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for j in 0..count {
        let uniform = (gitbacked_core::uid::random() >> 11) as f64 / (1u64 << 53) as f64;
        next += Duration::from_secs_f64(-(1.0 - uniform).ln() * t_push / OPEN_LOOP_RATE / 1000.0);
        tokio::time::sleep_until(next).await;
        let (name, ns, _, _) = repogen::configmap(repogen::spread(j % objects, objects, total), 0);
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let body = Patch::Merge(serde_json::json!({"data": {"bench": format!("{tag}-{j}")}}));
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            api.patch(&name, &PatchParams::default(), &body).await?;
            anyhow::Ok(ms(t.elapsed()))
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    for task in tasks {
        latencies.push(task.await??);
    }
    Ok(latencies)
}

/// How many pushes of batches the store started alone, overlapping one under way, and again.
async fn starts(store: &GitStore) -> Result<[f64; 3]> {
    let text = super::metrics(store).await?;
    let count = |start: &str| super::metric_sum(&text, "gitbacked_git_pushes_total", &format!("start=\"{start}\""));
    Ok([count("alone"), count("overlapping"), count("again")])
}

/// A work-tree clone whose `origin` is the proxied URL: the yardstick's `git push`.
struct PushClone {
    _dir: tempfile::TempDir,
    wt: PathBuf,
    round: usize,
    /// The file every push changes: the last single-file ConfigMap, which no writer has.
    file: (String, usize),
}

impl PushClone {
    fn new(repo: &Repo, url: &str) -> Result<PushClone> {
        let dir = tempfile::tempdir()?;
        let wt = dir.path().join("wt");
        // Cloned from the path (fast), then pointed at the link.
        repogen::git(dir.path(), &["clone", "--quiet", &repo.local_url(), wt.to_str().context("utf-8")?])?;
        repogen::git(&wt, &["remote", "set-url", "origin", url])?;
        repogen::git(&wt, &["config", "user.name", "Bench"])?;
        repogen::git(&wt, &["config", "user.email", "bench@localhost"])?;
        let last = repogen::configmap_count(repo.objects - 1) - 1;
        Ok(PushClone { _dir: dir, wt, round: 0, file: (repogen::configmap(last, 0).2, last) })
    }

    /// Commits a change of one file, then runs and times `git push` alone (ms); what the proxy
    /// carried meanwhile.
    fn push(&mut self, proxy: &Proxy) -> Result<(f64, Counts)> {
        self.round += 1;
        let (path, k) = &self.file;
        let (_, _, _, text) = repogen::configmap(*k, 9000 + self.round);
        std::fs::write(self.wt.join(path), text)?;
        repogen::git(&self.wt, &["commit", "--quiet", "-m", "t_push", "--", path])?;
        let carried = proxy.counts();
        let t = Instant::now();
        repogen::git(&self.wt, &["push", "--quiet", "origin", "HEAD:main"])?;
        Ok((ms(t.elapsed()), proxy.counts() - carried))
    }

    /// Brings the work tree to the remote's branch (the writers moved it).
    fn catch_up(&self) -> Result<()> {
        repogen::git(&self.wt, &["fetch", "--quiet", "origin"])?;
        repogen::git(&self.wt, &["reset", "--quiet", "--hard", "origin/main"])?;
        Ok(())
    }
}
