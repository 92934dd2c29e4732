//! Fetch, push and ref queries through the `git` CLI, run in the mirror.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use gix::ObjectId;
use tokio::process::Command;

use super::GitError;

/// The name of the remote in the mirror's configuration.
const REMOTE: &str = "origin";

/// How long one git network command may take before it counts as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The outcome of a push.
#[derive(Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// The remote branch now points at the pushed commit.
    Pushed,
    /// The remote moved first (non-fast-forward): fetch, replay and try again.
    Rejected,
}

async fn git(dir: &Path, args: &[&str]) -> Result<std::process::Output, GitError> {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let what = args.first().copied().unwrap_or_default();
    match tokio::time::timeout(COMMAND_TIMEOUT, cmd.output()).await {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(e)) => Err(GitError::Command(format!("git {what}: {e}"))),
        Err(_) => Err(GitError::Command(format!("git {what} timed out after {COMMAND_TIMEOUT:?}"))),
    }
}

fn failed(what: &str, output: &std::process::Output) -> GitError {
    let stderr = String::from_utf8_lossy(&output.stderr);
    GitError::Command(format!("git {what} failed: {}", stderr.trim()))
}

fn parse_id(hex: &str) -> Result<ObjectId, GitError> {
    ObjectId::from_hex(hex.trim().as_bytes()).map_err(|e| GitError::Command(format!("bad object id {hex:?}: {e}")))
}

/// Points the mirror's `origin` at `url`.
pub async fn set_url(dir: &Path, url: &str) -> Result<(), GitError> {
    let output = git(dir, &["config", &format!("remote.{REMOTE}.url"), url]).await?;
    if !output.status.success() {
        return Err(failed("config", &output));
    }
    Ok(())
}

/// The branch the remote's HEAD points at, when it has one.
pub async fn default_branch(dir: &Path) -> Result<Option<String>, GitError> {
    let output = git(dir, &["ls-remote", "--symref", REMOTE, "HEAD"]).await?;
    if !output.status.success() {
        return Err(failed("ls-remote", &output));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("ref: refs/heads/"))
        .and_then(|rest| rest.split('\t').next())
        .map(str::to_string))
}

/// The commit the remote branch points at, `None` when the branch does not exist: a cheap check
/// before fetching.
pub async fn remote_tip(dir: &Path, branch: &str) -> Result<Option<ObjectId>, GitError> {
    let refname = format!("refs/heads/{branch}");
    let output = git(dir, &["ls-remote", REMOTE, &refname]).await?;
    if !output.status.success() {
        return Err(failed("ls-remote", &output));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find(|l| l.split('\t').nth(1) == Some(refname.as_str()))
        .map(|l| parse_id(l.split('\t').next().unwrap_or_default()))
        .transpose()
}

/// Fetches the branch into the mirror and returns its tip (`None` when the branch does not exist).
pub async fn fetch(dir: &Path, branch: &str) -> Result<Option<ObjectId>, GitError> {
    let tracking = format!("refs/remotes/{REMOTE}/{branch}");
    let refspec = format!("+refs/heads/{branch}:{tracking}");
    let output = git(dir, &["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", REMOTE, &refspec]).await?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("couldn't find remote ref") {
            return Ok(None);
        }
        return Err(failed("fetch", &output));
    }
    let output = git(dir, &["rev-parse", "--verify", "--quiet", &tracking]).await?;
    if !output.status.success() {
        return Ok(None);
    }
    parse_id(&String::from_utf8_lossy(&output.stdout)).map(Some)
}

/// Pushes `commit` to the branch as a fast-forward. Never forces.
pub async fn push(dir: &Path, commit: ObjectId, branch: &str) -> Result<PushOutcome, GitError> {
    let refspec = format!("{commit}:refs/heads/{branch}");
    let output = git(dir, &["push", "--porcelain", "--quiet", REMOTE, &refspec]).await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Porcelain lines: `<flag>\t<from>:<to>\t<summary>`; `!` is a rejected ref.
    let line = stdout
        .lines()
        .find(|l| l.ends_with(&format!(":refs/heads/{branch}")) || l.contains(&format!(":refs/heads/{branch}\t")));
    match line.and_then(|l| l.chars().next()) {
        Some(' ' | '+' | '=' | '*' | '-') if output.status.success() => Ok(PushOutcome::Pushed),
        Some('!') => {
            let summary = line.unwrap_or_default();
            if summary.contains("fetch first") || summary.contains("non-fast-forward") || summary.contains("stale info")
            {
                Ok(PushOutcome::Rejected)
            } else {
                Err(GitError::Command(format!("push rejected: {}", summary.split('\t').next_back().unwrap_or(summary))))
            }
        }
        _ if output.status.success() => Ok(PushOutcome::Pushed),
        _ => Err(failed("push", &output)),
    }
}
