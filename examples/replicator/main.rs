//! A kube-rs controller running on git.
//!
//! `Replicator` objects ask for `count` `Replicated` objects; the controller (see `controller.rs`)
//! keeps exactly that many, labeled and owned by their Replicator. Every object is a YAML file in
//! the repository, every write the controller makes is a commit: edit a Replicator's `count`, push,
//! and watch the copies appear in `git log`.
//!
//! ```text
//! cargo run --example replicator                          # ./gitbacked-data/state.git
//! cargo run --example replicator -- https://host/repo.git # or any URL or path git understands
//! cargo run --example replicator -- --repo URL --interval 5
//! ```
//!
//! Logs at info level by default; set `RUST_LOG` for more or less. Stops on Ctrl-C.

mod controller;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use gitbacked::{GitStore, Options};
use tracing::info;

/// The repository used when none is given: a bare repository next to the working directory.
const LOCAL_REPO: &str = "gitbacked-data/state.git";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();

    let (repo, interval) = parse_args()?;
    let url = match repo {
        Some(url) => url,
        None => init_local_repo(Path::new(LOCAL_REPO))?,
    };
    let mut options = Options::default();
    if let Some(interval) = interval {
        options.interval = interval;
    }
    info!(%url, interval = ?options.interval, "opening the repository");
    let store = GitStore::open(&url, options).await?;
    let client = store.client();

    controller::install_crds(&client).await?;
    info!("controller running; Ctrl-C to stop");
    controller::run(client, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;

    info!("stopping: waiting for the last writes");
    store.close().await?;
    Ok(())
}

/// `[URL] [--repo URL] [--interval SECONDS]`
fn parse_args() -> anyhow::Result<(Option<String>, Option<Duration>)> {
    let (mut repo, mut interval) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--repo" => repo = Some(args.next().context("--repo needs a URL")?),
            "--interval" => {
                let secs = args.next().and_then(|s| s.parse().ok());
                let secs = secs.context("--interval needs a number of seconds")?;
                interval = Some(Duration::try_from_secs_f64(secs)?);
            }
            "-h" | "--help" => {
                println!("usage: replicator [URL] [--repo URL] [--interval SECONDS]");
                std::process::exit(0);
            }
            flag if flag.starts_with('-') => anyhow::bail!("unknown option {flag}"),
            url => repo = Some(url.to_string()),
        }
    }
    Ok((repo, interval))
}

/// Creates an empty bare repository at `path` unless one is there; the store's first write makes
/// its root commit.
fn init_local_repo(path: &Path) -> anyhow::Result<String> {
    if !path.exists() {
        info!(path = %path.display(), "creating a local repository");
        let status = std::process::Command::new("git")
            .args(["init", "--quiet", "--bare", "--initial-branch=main"])
            .arg(path)
            .status()?;
        anyhow::ensure!(status.success(), "git init failed");
    }
    Ok(path.display().to_string())
}
