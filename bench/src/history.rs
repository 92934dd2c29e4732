//! Cold start through a long history (issue 15, item 8): a repository of many commits, some of
//! them changing one document of MB-sized multi-document files, against a repository holding only
//! its tip in one commit. Prints markdown.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gitbacked::{GitStore, Options};

use crate::repogen;

/// Options of `history`.
#[derive(clap::Args, Clone, Debug)]
pub struct HistoryArgs {
    /// Commits after the first.
    #[arg(long, default_value_t = 10_000)]
    pub commits: usize,
    /// Every how many commits one changes a document of a big file (the others a small file).
    #[arg(long, default_value_t = 50)]
    pub big_every: usize,
    /// Big files (argo-cd's `install.yaml` shape, 1.9 MB each).
    #[arg(long, default_value_t = 3)]
    pub big_files: usize,
    /// Small files (one ConfigMap each).
    #[arg(long, default_value_t = 1000)]
    pub small_files: usize,
    /// Cold starts of each repository.
    #[arg(long, default_value_t = 2)]
    pub runs: usize,
}

/// The files of the repository after `commit` commits of history (0: the first commit).
struct Tree {
    big: Vec<String>,
    small: Vec<String>,
}

impl Tree {
    fn new(args: &HistoryArgs) -> Self {
        // Copies in groups and namespaces of their own: no two documents claim one object.
        let copy = |i: usize| match i {
            0 => repogen::install_yaml(),
            i => repogen::install_yaml()
                .replace("argoproj.io", &format!("argoproj{i}.io"))
                .replace("argocd", &format!("argocd{i}")),
        };
        let big = (0..args.big_files).map(copy).collect();
        let small = (0..args.small_files).map(|i| repogen::small_configmap(&format!("cm-{i}"))).collect();
        Tree { big, small }
    }

    fn big_path(i: usize) -> String {
        format!("apps-{i}/install.yaml")
    }

    fn small_path(i: usize) -> String {
        format!("settings/cm-{i}.yaml")
    }

    /// Commit `c` changes one value: in a big file's `argocd-cm`, or in a small file.
    fn change(&mut self, c: usize, args: &HistoryArgs) -> (String, String) {
        let timeout = |text: &str, c: usize| {
            let start = text.find("timeout.reconciliation: ").expect("the ConfigMap has a timeout");
            let end = start + text[start..].find('\n').expect("a line");
            format!("{}timeout.reconciliation: {c}s{}", &text[..start], &text[end..])
        };
        if c.is_multiple_of(args.big_every) && !self.big.is_empty() {
            let i = (c / args.big_every) % self.big.len();
            self.big[i] = timeout(&self.big[i], c);
            (Tree::big_path(i), self.big[i].clone())
        } else {
            let i = c % self.small.len();
            self.small[i] = timeout(&self.small[i], c);
            (Tree::small_path(i), self.small[i].clone())
        }
    }

    fn files(&self) -> Vec<(String, String)> {
        let big = self.big.iter().enumerate().map(|(i, t)| (Tree::big_path(i), t.clone()));
        big.chain(self.small.iter().enumerate().map(|(i, t)| (Tree::small_path(i), t.clone()))).collect()
    }
}

/// Writes `commits` (each a list of files) as a chain on `main` of a new bare repository `remote`.
fn import(remote: &Path, commits: &[Vec<(String, String)>]) -> Result<()> {
    let parent = remote.parent().context("a parent directory")?;
    repogen::git(parent, &["init", "--quiet", "--bare", "--initial-branch=main", remote.to_str().context("path")?])?;
    let chain =
        commits.iter().enumerate().map(|(n, files)| (1_700_000_000 + n as u64, format!("commit {n}"), &files[..]));
    repogen::commits(remote, chain, false)
}

/// The median of `runs` cold starts (no cache) of `remote`, in ms, with the objects served.
async fn cold_start(remote: &Path, runs: usize) -> Result<(f64, usize)> {
    let mut times = Vec::new();
    let mut objects = 0;
    for _ in 0..runs {
        let options = Options { interval: Duration::from_secs(3600), ..Default::default() };
        let started = Instant::now();
        let store = GitStore::open(remote.to_str().context("path")?, options).await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        objects = store.report().objects;
        store.close().await?;
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], objects))
}

/// Leaves a snapshot on `remote`'s snapshot ref, as a writer does after its pushes: a process
/// that writes every commit's snapshot creates a ConfigMap and deletes it again (the objects stay
/// those of the tip). Its snapshot is at the first of the two commits: one commit behind the tip.
async fn write_snapshot(remote: &Path) -> Result<()> {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, DeleteParams, PostParams};
    let url = remote.to_str().context("path")?;
    let snapshot =
        || repogen::git(remote, &["rev-parse", "--verify", "--quiet", &gitbacked::snapshot_ref("main")]).ok();
    let options = Options { interval: Duration::from_secs(3600), snapshot_every: 1, ..Default::default() };
    let store = GitStore::open(url, options).await?;
    let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": "snapshot-writer"}}))?;
    api.create(&PostParams::default(), &cm).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while snapshot().is_none() {
        if Instant::now() > deadline {
            bail!("no snapshot was written");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    api.delete("snapshot-writer", &DeleteParams::default()).await?;
    store.close().await?;
    Ok(())
}

/// How long `git clone --bare --no-local` of `remote` takes, in ms: git's own cost of the history.
fn clone_ms(remote: &Path) -> Result<f64> {
    let into = tempfile::Builder::new().prefix("gitbacked-bench-").tempdir()?;
    let started = Instant::now();
    let target = into.path().join("clone.git");
    repogen::git(
        into.path(),
        &[
            "clone",
            "--quiet",
            "--bare",
            "--no-local",
            remote.to_str().context("path")?,
            target.to_str().context("path")?,
        ],
    )?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// Runs the measurement; returns the markdown.
pub async fn run(args: &HistoryArgs) -> Result<String> {
    let dir = tempfile::Builder::new().prefix("gitbacked-bench-").tempdir()?;
    let generated = Instant::now();
    let mut tree = Tree::new(args);
    let first = tree.files();
    let changes: Vec<(String, String)> = (1..=args.commits).map(|c| tree.change(c, args)).collect();
    let history = dir.path().join("history.git");
    let chain: Vec<Vec<(String, String)>> =
        std::iter::once(first).chain(changes.into_iter().map(|change| vec![change])).collect();
    import(&history, &chain)?;
    let tip = dir.path().join("tip.git");
    import(&tip, &[tree.files()])?;
    let generated = generated.elapsed();
    let (with_history, objects) = cold_start(&history, args.runs).await?;
    let (tip_alone, tip_objects) = cold_start(&tip, args.runs).await?;
    ensure_same(objects, tip_objects)?;
    write_snapshot(&history).await?;
    let (from_snapshot, snapshot_objects) = cold_start(&history, args.runs).await?;
    ensure_same(snapshot_objects, tip_objects)?;
    let (clone_history, clone_tip) = (clone_ms(&history)?, clone_ms(&tip)?);
    Ok(format!(
        "{} commits after the first ({} of them changing one document of one of {} files of 1.9 MB, \
         the others one of {} small files), {objects} objects; generated in {:.1} s. Cold start \
         (`GitStore::open`, no cache, median of {}):\n\n\
         | repository | cold start | ratio (goal ≤ 2×) | `git clone --bare --no-local` |\n|---|---:|---:|---:|\n\
         | the history, replayed (no snapshot) | {with_history:.0} ms | {:.2}× | {clone_history:.0} ms |\n\
         | the history, from a snapshot one commit behind its tip (shallow fetch) | {from_snapshot:.0} ms | {:.2}× | |\n\
         | its tip alone, one commit | {tip_alone:.0} ms | 1 | {clone_tip:.0} ms |\n",
        args.commits,
        args.commits / args.big_every,
        args.big_files,
        args.small_files,
        generated.as_secs_f64(),
        args.runs,
        with_history / tip_alone.max(0.001),
        from_snapshot / tip_alone.max(0.001),
    ))
}

fn ensure_same(history: usize, tip: usize) -> Result<()> {
    if history != tip {
        bail!("the history serves {history} objects, its tip {tip}");
    }
    Ok(())
}
