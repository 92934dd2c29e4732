//! Watch fan-out (issue 15, item 5): many watchers of one kind, half of them with a label selector,
//! and a person's commit changing thousands of objects. How long until the first and the last
//! watcher have every event meant for them, and what an idle watch costs in memory. Prints
//! markdown.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use gitbacked::{GitStore, Options};
use tower::ServiceExt;

use crate::repogen;

/// Options of `fanout`.
#[derive(clap::Args, Clone, Debug)]
pub struct FanoutArgs {
    /// Objects in the generated repository (half of them single-file ConfigMaps).
    #[arg(long, default_value_t = 20_000)]
    pub objects: usize,
    /// Watchers of ConfigMaps; every second one selects `team=team-<n % 7>`.
    #[arg(long, default_value_t = 1000)]
    pub watchers: usize,
    /// ConfigMaps the person's commit changes.
    #[arg(long, default_value_t = 10_000)]
    pub changes: usize,
}

/// The resident set of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// One watcher: when it received its first event and all it waits for, after the sync started.
struct Delivery {
    selected: bool,
    first: Duration,
    last: Duration,
}

/// Starts a watch from `revision` on the store's Router; resolves once it is established, with a
/// task that counts its events (one JSON line each) until `expected` arrived.
async fn watch(
    store: &GitStore,
    revision: u64,
    selector: Option<String>,
    expected: usize,
    start: std::sync::Arc<tokio::sync::OnceCell<Instant>>,
) -> Result<tokio::task::JoinHandle<Result<(Duration, Duration)>>> {
    let mut uri = format!("/api/v1/configmaps?watch=1&resourceVersion={revision}&timeoutSeconds=600");
    if let Some(selector) = &selector {
        uri.push_str(&format!("&labelSelector={selector}"));
    }
    let request = axum::http::Request::get(uri).body(axum::body::Body::empty())?;
    let response = store.router().oneshot(request).await?;
    if !response.status().is_success() {
        bail!("watch refused: {}", response.status());
    }
    let mut body = response.into_body().into_data_stream();
    Ok(tokio::spawn(async move {
        let (mut seen, mut first) = (0, None);
        while seen < expected {
            let chunk = body.next().await.context("the watch ended")??;
            let started = *start.get().context("an event before the commit")?;
            first.get_or_insert_with(|| started.elapsed());
            seen += chunk.iter().filter(|b| **b == b'\n').count();
        }
        let started = *start.get().context("no start")?;
        Ok((first.unwrap_or_default(), started.elapsed()))
    }))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs the measurement; returns the markdown.
pub async fn run(args: &FanoutArgs) -> Result<String> {
    let repo = tokio::task::block_in_place(|| repogen::generate(args.objects))?;
    let total = repogen::configmap_count(args.objects);
    let changes = args.changes.min(total);
    // A URL the store does not treat as local, polled once an hour: only `sync()` brings the commit.
    let options = Options { interval: Duration::from_secs(3600), ..Default::default() };
    let store = GitStore::open(&repo.polled_url(), options).await?;
    let revision = store.report().resource_version;
    // Which teams the changed ConfigMaps belong to (`team-<index % 7>`).
    let mut per_team = [0usize; 7];
    for k in 0..changes {
        per_team[repogen::configmap_index(k) % 7] += 1;
    }
    let start = std::sync::Arc::new(tokio::sync::OnceCell::new());
    let before = rss_kib();
    let mut watchers = Vec::with_capacity(args.watchers);
    for w in 0..args.watchers {
        let selected = w % 2 == 1;
        let (selector, expected) = match selected {
            true => (Some(format!("team%3Dteam-{}", w % 7)), per_team[w % 7]),
            false => (None, changes),
        };
        watchers.push((selected, watch(&store, revision, selector, expected, start.clone()).await?));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_watch = (rss_kib().saturating_sub(before)) as f64 * 1024.0 / args.watchers as f64;

    tokio::task::block_in_place(|| repogen::change_configmaps(&repo, 0, changes, 1))?;
    let _ = start.set(Instant::now());
    let sync = Instant::now();
    store.sync().await?;
    let synced = sync.elapsed();
    let mut deliveries = Vec::with_capacity(watchers.len());
    for (selected, task) in watchers {
        let (first, last) = tokio::time::timeout(Duration::from_secs(600), task).await.context("600 s")???;
        deliveries.push(Delivery { selected, first, last });
    }
    store.close().await?;

    let mut out = format!(
        "{} watchers of ConfigMaps ({} with a label selector matching 1/7 of them), a person's commit \
         changing {changes} ConfigMaps of a {}-object repository; times from `store.sync()`.\n\n\
         | watchers | first event at the first watcher (ms) | all events at the first watcher (ms) | \
         all events at the last watcher (ms) | last / first |\n|---|---:|---:|---:|---:|\n",
        args.watchers,
        args.watchers / 2,
        args.objects
    );
    for (name, filter) in [("all", None), ("without selector", Some(false)), ("with selector", Some(true))] {
        let group: Vec<&Delivery> = deliveries.iter().filter(|d| filter.is_none_or(|s| d.selected == s)).collect();
        let first_event = group.iter().map(|d| d.first).min().unwrap_or_default();
        let first_done = group.iter().map(|d| d.last).min().unwrap_or_default();
        let last_done = group.iter().map(|d| d.last).max().unwrap_or_default();
        out.push_str(&format!(
            "| {name} ({}) | {:.0} | {:.0} | {:.0} | {:.2} |\n",
            group.len(),
            ms(first_event),
            ms(first_done),
            ms(last_done),
            ms(last_done) / ms(first_done).max(0.001)
        ));
    }
    out.push_str(&format!(
        "\n`store.sync()` (fetch and apply the commit, events into the log): {:.0} ms. Memory per idle watch \
         (VmRSS growth while {} watches were opened, before the commit): {:.1} KiB.\n",
        ms(synced),
        args.watchers,
        per_watch / 1024.0
    ));
    Ok(out)
}
