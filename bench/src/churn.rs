//! What a controller's bookkeeping costs the branch's history (issue 14): the replicator example
//! under a steady load with `status` and `managedFields` inline and on the status ref, and the lines
//! a server-side apply adds to a person's file in both modes. Prints markdown.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use gitbacked::{GitStore, Options, Placement};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

#[path = "../../examples/replicator/controller.rs"]
#[allow(dead_code, missing_docs)]
mod controller;

/// Options of `churn`.
#[derive(clap::Args, Clone, Debug)]
pub struct ChurnArgs {
    /// How long the load runs in each mode, in seconds.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// How many Replicators.
    #[arg(long, default_value_t = 10)]
    pub replicators: usize,
    /// The pause between two spec changes of the load, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
}

/// A person's Deployment, written their way.
const PERSON: &str = "# The web front end.\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\n  labels: {app: web}\nspec:\n  replicas: 2  # for the launch\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: web\n          image: registry.example.com/web:1.4.2\n";

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("git").arg("-C").arg(dir).args(args).output()?;
    ensure!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// How many commits `reference` of the bare repository `dir` has (0 when it does not exist).
fn commits(dir: &Path, reference: &str) -> usize {
    git(dir, &["rev-list", "--count", reference]).ok().and_then(|n| n.trim().parse().ok()).unwrap_or(0)
}

/// The options of one mode: both parts inline, or both on the status ref.
fn options(placement: Placement) -> Options {
    Options { status: placement, managed_fields: placement, interval: Duration::from_millis(200), ..Default::default() }
}

fn name(placement: Placement) -> &'static str {
    match placement {
        Placement::Inline => "inline",
        Placement::Ref => "ref",
    }
}

/// A bare remote with a person's first commit (the Deployment), in a temporary directory.
fn remote(tmp: &Path) -> Result<std::path::PathBuf> {
    let remote = tmp.join("remote.git");
    git(tmp, &["init", "--quiet", "--bare", "--initial-branch=main", remote.to_str().context("path")?])?;
    let work = tmp.join("person");
    git(tmp, &["clone", "--quiet", remote.to_str().context("path")?, work.to_str().context("path")?])?;
    std::fs::create_dir_all(work.join("apps"))?;
    std::fs::write(work.join("apps/web.yaml"), PERSON)?;
    git(&work, &["add", "."])?;
    git(&work, &["-c", "user.name=person", "-c", "user.email=p@example.com", "commit", "--quiet", "-m", "web"])?;
    git(&work, &["push", "--quiet", "origin", "main"])?;
    Ok(remote)
}

/// Commits per hour on the branch and on the status ref with the replicator under load.
struct Churn {
    spec_changes: usize,
    branch: f64,
    status_ref: f64,
}

async fn churn(args: &ChurnArgs, placement: Placement) -> Result<Churn> {
    let tmp = tempfile::tempdir()?;
    let remote = remote(tmp.path())?;
    let store = GitStore::open(remote.to_str().context("path")?, options(placement)).await?;
    let client = store.client();
    controller::install_crds(&client).await?;
    let replicators: Api<controller::Replicator> = Api::namespaced(client.clone(), "default");
    for i in 0..args.replicators {
        let spec = controller::ReplicatorSpec { count: 1, selector: [("app".into(), format!("r{i}"))].into() };
        replicators.create(&PostParams::default(), &controller::Replicator::new(&format!("r{i}"), spec)).await?;
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(controller::run(client, async move { drop(stopped.await) }));
    let settled = |replicators: Api<controller::Replicator>| async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let list = replicators.list(&Default::default()).await?;
            let done = list
                .items
                .iter()
                .all(|r| r.status.as_ref().is_some_and(|s| s.observed_generation == r.metadata.generation));
            if done {
                return anyhow::Ok(());
            }
            ensure!(Instant::now() < deadline, "the controller did not settle within 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    settled(replicators.clone()).await?;
    let status_ref = gitbacked::status_ref("main");
    let before = (commits(&remote, "main"), commits(&remote, &status_ref));
    let started = Instant::now();
    let mut spec_changes = 0;
    while started.elapsed() < Duration::from_secs(args.seconds) {
        let i = spec_changes % args.replicators;
        let count = 1 + (spec_changes / args.replicators) % 2;
        let patch = Patch::Merge(json!({"spec": {"count": count}}));
        replicators.patch(&format!("r{i}"), &PatchParams::default(), &patch).await?;
        spec_changes += 1;
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
    }
    settled(replicators).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let after = (commits(&remote, "main"), commits(&remote, &status_ref));
    let _ = stop.send(());
    running.await?;
    store.close().await?;
    let per_hour = |n: usize| n as f64 * 3600.0 / elapsed;
    Ok(Churn { spec_changes, branch: per_hour(after.0 - before.0), status_ref: per_hour(after.1 - before.1) })
}

/// The lines a first and a second server-side apply of the person's Deployment add to their file.
async fn apply_lines(placement: Placement) -> Result<(usize, usize)> {
    let tmp = tempfile::tempdir()?;
    let remote = remote(tmp.path())?;
    let store = GitStore::open(remote.to_str().context("path")?, options(placement)).await?;
    let deployments: Api<Deployment> = Api::namespaced(store.client(), "default");
    let manifest: serde_json::Value = serde_saphyr::from_str(PERSON)?;
    let file = || git(&remote, &["show", "main:apps/web.yaml"]);
    let before = file()?;
    deployments.patch("web", &PatchParams::apply("kubectl").force(), &Patch::Apply(&manifest)).await?;
    let first = file()?;
    let mut changed = manifest.clone();
    changed["spec"]["replicas"] = json!(3);
    deployments.patch("web", &PatchParams::apply("kubectl").force(), &Patch::Apply(&changed)).await?;
    let second = file()?;
    store.close().await?;
    Ok((added_lines(&before, &first), added_lines(&first, &second)))
}

/// Lines of `after` that are not in `before` (one hunk: the common head and tail left out).
fn added_lines(before: &str, after: &str) -> usize {
    let (a, b): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let room = a.len().min(b.len()) - head;
    let tail = a.iter().rev().zip(b.iter().rev()).take(room).take_while(|(x, y)| x == y).count();
    b.len() - head - tail
}

/// Runs both modes and returns the markdown.
pub async fn run(args: &ChurnArgs) -> Result<String> {
    let mut out = format!(
        "Replicator example, {} Replicators, one spec change (`count` 1 ↔ 2) every {} ms for {} s per mode; \
         commits per hour extrapolated from the run.\n\n\
         | mode | spec changes | branch commits/h | status ref commits/h | first apply: lines added to the file | \
         second apply (1 value): lines changed |\n|---|---:|---:|---:|---:|---:|\n",
        args.replicators, args.interval_ms, args.seconds
    );
    for placement in [Placement::Inline, Placement::Ref] {
        let churn = churn(args, placement).await?;
        let (first, second) = apply_lines(placement).await?;
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {first} | {second} |\n",
            name(placement),
            churn.spec_changes,
            churn.branch,
            churn.status_ref
        ));
    }
    Ok(out)
}
