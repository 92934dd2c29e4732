//! Fetch, push and ref queries through the `git` CLI, run in the mirror.
//!
//! How git reaches the remote is kept in the mirror's config and read before every network
//! command: the URL (`remote.origin.url`), the ssh command (`gitbacked.sshCommand`) and where an
//! https token comes from (`gitbacked.tokenFile`, else the `GITBACKED_GIT_TOKEN` environment
//! variable). None of it is a secret: a token is read just before git runs and handed to it
//! through the environment only. git's stderr is mapped to [`RemoteError`]s for the failures people
//! must act on, with every credential scrubbed.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use gix::ObjectId;
use tokio::process::Command;
use tracing::{info, warn};

use super::GitError;
pub use super::credentials::redact_url;
use super::credentials::{self, Credentials, Token};

/// The name of the remote in the mirror's configuration.
const REMOTE: &str = "origin";

/// How long one git network command may take before it counts as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The mirror's config section holding how git reaches the remote.
const SECTION: &str = "gitbacked";
/// The ssh command git runs (`GIT_SSH_COMMAND`).
const SSH_COMMAND: &str = "sshCommand";
/// The file an https token is read from.
const TOKEN_FILE: &str = "tokenFile";

/// The outcome of a push.
#[derive(Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// The remote branch now points at the pushed commit.
    Pushed,
    /// The remote moved first (non-fast-forward): fetch, replay and try again.
    Rejected,
}

/// Failures to reach or write the remote that need someone to act. URLs are shown without
/// credentials, and git's messages (`detail`) have every credential scrubbed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// ssh did not find the server's host key in known_hosts, or found another one.
    #[error(
        "cannot verify the ssh host key of {url}: {detail} (add the server's host key to the known_hosts file: \
         option known_hosts, --known-hosts)"
    )]
    UnknownHostKey {
        /// The remote.
        url: String,
        /// What ssh said.
        detail: String,
    },
    /// The server refused the ssh key or the token, or none was given.
    #[error(
        "authentication to {url} failed: {detail} (check the ssh key: option ssh_key, --ssh-key; or the token: \
         option git_token_file, --git-token-file, {})",
        credentials::TOKEN_ENV
    )]
    AuthenticationFailed {
        /// The remote.
        url: String,
        /// What git or ssh said.
        detail: String,
    },
    /// Nothing is there, or it is not a git repository (some servers say so for forbidden ones too).
    #[error("repository not found at {url}: {detail}")]
    RepositoryNotFound {
        /// The remote.
        url: String,
        /// What git said.
        detail: String,
    },
    /// The remote has branches, but not the one asked for.
    #[error(
        "branch {branch:?} does not exist at {url}, which has {}; pass --create-branch (option create_branch) to \
         create it with the first write, or choose an existing branch with --branch",
        list(.existing)
    )]
    BranchMissing {
        /// The remote.
        url: String,
        /// The branch asked for.
        branch: String,
        /// The branches the remote has.
        existing: Vec<String>,
    },
    /// The remote is a non-bare repository with the branch checked out.
    #[error(
        "{url} refused the push to branch {branch:?}: refusing to update checked out branch of a non-bare \
         repository; serve from a bare repository (git clone --bare), or set receive.denyCurrentBranch=updateInstead \
         on it"
    )]
    CheckedOutBranch {
        /// The remote.
        url: String,
        /// The branch pushed to.
        branch: String,
    },
    /// The server could not be reached.
    #[error("cannot connect to {url}: {detail}")]
    Unreachable {
        /// The remote.
        url: String,
        /// What git or ssh said.
        detail: String,
    },
    /// The remote's lock file of the branch has been there longer than any push holds it: a git
    /// process died while moving the ref and left it. Nothing can be pushed until it is removed.
    #[error(
        "{lock} in the remote has been held for {age_secs} s: a git process that moved the branch died and left it \
         (remove the file if no git process is running on the remote)"
    )]
    StaleLock {
        /// The lock file, relative to the remote's directory (`refs/heads/main.lock`).
        lock: String,
        /// How long it has been there.
        age_secs: u64,
    },
    /// A credential option is not usable (a key or token file that cannot be read, …).
    #[error("{0}")]
    Credentials(String),
}

fn list(names: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = names.iter().take(SHOWN).map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// git's messages (LC_ALL=C) for each kind of failure, tried in this order.
const HOST_KEY: &[&str] =
    &["Host key verification failed", "host key is known for", "has changed and you have requested strict checking"];
const AUTHENTICATION: &[&str] = &[
    "Permission denied (",
    "Authentication failed for",
    "could not read Username for",
    "could not read Password for",
    "returned error: 401",
    "returned error: 403",
    "HTTP Basic: Access denied",
];
const NOT_FOUND: &[&str] = &[
    "does not appear to be a git repository",
    "repository not exported",
    "Repository not found",
    "no such repository",
    "returned error: 404",
    "' not found",
];
const UNREACHABLE: &[&str] = &[
    "Connection refused",
    "Could not resolve host",
    "Failed to connect to",
    "unable to connect to",
    "Connection timed out",
    "No route to host",
    "Network is unreachable",
    "Connection reset by peer",
];
const CHECKED_OUT: &[&str] = &["refusing to update checked out branch", "branch is currently checked out"];

/// The lines of `stderr` holding one of `patterns`, joined; `None` when none does.
fn matching(stderr: &str, patterns: &[&str]) -> Option<String> {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| patterns.iter().any(|p| l.contains(p)))
        .map(|l| l.strip_prefix("fatal: ").unwrap_or(l))
        .collect();
    (!lines.is_empty()).then(|| lines.join(" "))
}

/// Maps git's stderr (already scrubbed) to a [`RemoteError`] when it is one people must act on.
fn classify(url: &str, stderr: &str) -> Option<RemoteError> {
    let url = url.to_string();
    if let Some(detail) = matching(stderr, HOST_KEY) {
        return Some(RemoteError::UnknownHostKey { url, detail });
    }
    if let Some(detail) = matching(stderr, AUTHENTICATION) {
        return Some(RemoteError::AuthenticationFailed { url, detail });
    }
    if let Some(detail) = matching(stderr, NOT_FOUND) {
        return Some(RemoteError::RepositoryNotFound { url, detail });
    }
    if let Some(detail) = matching(stderr, UNREACHABLE) {
        return Some(RemoteError::Unreachable { url, detail });
    }
    None
}

/// A git command in the mirror: C locale, no prompts, no stdin, and never gitbacked's own token
/// variable in the child's environment.
fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .env_remove(credentials::TOKEN_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn run(mut cmd: Command, what: &str, url: &str) -> Result<Output, GitError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, cmd.output()).await {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(e)) => Err(GitError::Command(format!("git {what}: {e}"))),
        Err(_) => Err(GitError::Command(format!("git {what} {url} timed out after {COMMAND_TIMEOUT:?}"))),
    }
}

/// A local git command (no network).
async fn git(dir: &Path, args: &[&str]) -> Result<Output, GitError> {
    run(command(dir, args), args.first().copied().unwrap_or_default(), "").await
}

fn parse_id(hex: &str) -> Result<ObjectId, GitError> {
    ObjectId::from_hex(hex.trim().as_bytes()).map_err(|e| GitError::Command(format!("bad object id {hex:?}: {e}")))
}

/// How one network command reaches the remote: read from the mirror's config just before it runs.
struct Access {
    url: String,
    ssh_command: Option<String>,
    token: Option<Token>,
}

impl Access {
    async fn load(dir: &Path) -> Result<Self, GitError> {
        let config = read_config(dir).await?;
        let get = |section: &str, subsection: Option<&str>, key: &str| {
            use gix::bstr::ByteSlice;
            config.string_by(section, subsection.map(|s| s.as_bytes().as_bstr()), key).map(|v| v.to_string())
        };
        let url = get("remote", Some(REMOTE), "url").unwrap_or_default();
        let ssh_command = get(SECTION, None, SSH_COMMAND);
        let token_file = get(SECTION, None, TOKEN_FILE).map(PathBuf::from);
        let token = if credentials::is_http(&url) && credentials::token_user(&url).is_some() {
            read_token(token_file.as_deref()).await?
        } else {
            None
        };
        Ok(Access { url, ssh_command, token })
    }

    /// The URL for messages.
    fn shown_url(&self) -> String {
        redact_url(&self.url)
    }

    /// Everything that must never show: the token and the header carrying it.
    fn secrets(&self) -> Vec<String> {
        match (&self.token, credentials::token_user(&self.url)) {
            (Some(token), Some(user)) => {
                let header = token.authorization(user);
                let encoded = header.trim_start_matches("Basic ").to_string();
                vec![token.expose().to_string(), encoded, header]
            }
            _ => Vec::new(),
        }
    }

    /// Hands the ssh command and the token to git, through the environment only.
    fn apply(&self, cmd: &mut Command) {
        if let Some(ssh) = &self.ssh_command {
            cmd.env("GIT_SSH_COMMAND", ssh);
        }
        if let (Some(token), Some(user)) = (&self.token, credentials::token_user(&self.url)) {
            // Keep configuration the user passes the same way: add ours after theirs.
            let base: usize = std::env::var("GIT_CONFIG_COUNT").ok().and_then(|n| n.trim().parse().ok()).unwrap_or(0);
            cmd.env("GIT_CONFIG_COUNT", (base + 1).to_string())
                .env(format!("GIT_CONFIG_KEY_{base}"), "http.extraHeader")
                .env(format!("GIT_CONFIG_VALUE_{base}"), format!("Authorization: {}", token.authorization(user)));
        }
    }

    fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = command(dir, args);
        self.apply(&mut cmd);
        cmd
    }

    /// The error for a failed command: a [`RemoteError`] when git's message is one we know.
    fn failed(&self, what: &str, output: &Output) -> GitError {
        let stderr = credentials::scrub(&String::from_utf8_lossy(&output.stderr), &self.secrets());
        let url = self.shown_url();
        match classify(&url, &stderr) {
            Some(e) => GitError::Remote(e),
            None => GitError::Command(format!("git {what} {url} failed: {}", stderr.trim())),
        }
    }
}

/// Runs a network command with the mirror's access settings.
async fn network(dir: &Path, args: &[&str]) -> Result<(Output, Access), GitError> {
    let access = Access::load(dir).await?;
    let what = args.first().copied().unwrap_or_default();
    let output = run(access.command(dir, args), what, &access.shown_url()).await?;
    Ok((output, access))
}

/// The token for an http(s) remote: from the file when one is configured, else from the environment.
async fn read_token(file: Option<&Path>) -> Result<Option<Token>, GitError> {
    let Some(path) = file else {
        return Ok(std::env::var(credentials::TOKEN_ENV).ok().as_deref().and_then(Token::new));
    };
    let text = tokio::fs::read_to_string(path).await.map_err(|e| {
        GitError::Remote(RemoteError::Credentials(format!("reading the git token file {}: {e}", path.display())))
    })?;
    match Token::new(&text) {
        Some(token) => Ok(Some(token)),
        None => {
            Err(GitError::Remote(RemoteError::Credentials(format!("the git token file {} is empty", path.display()))))
        }
    }
}

fn config_error(dir: &Path, e: impl std::fmt::Display) -> GitError {
    GitError::Mirror { path: dir.to_path_buf(), message: format!("config: {e}") }
}

async fn read_config(dir: &Path) -> Result<gix::config::File, GitError> {
    let mut bytes = tokio::fs::read(dir.join("config")).await.map_err(|e| config_error(dir, e))?;
    let meta = gix::config::file::Metadata::from(gix::config::Source::Local);
    gix::config::File::from_bytes_owned(&mut bytes, meta, Default::default()).map_err(|e| config_error(dir, e))
}

/// Edits the mirror's config file in place, behind git's own `config.lock`. Values never pass
/// through a command line.
fn write_config(
    dir: &Path,
    edit: impl FnOnce(&mut gix::config::File) -> Result<(), ConfigEditError>,
) -> Result<(), GitError> {
    let path = dir.join("config");
    let mut bytes = std::fs::read(&path).map_err(|e| config_error(dir, e))?;
    let meta = gix::config::file::Metadata::from(gix::config::Source::Local);
    let mut file =
        gix::config::File::from_bytes_owned(&mut bytes, meta, Default::default()).map_err(|e| config_error(dir, e))?;
    edit(&mut file).map_err(GitError::Config)?;
    let lock = dir.join("config.lock");
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&lock)
        .map_err(|e| config_error(dir, format!("{}: {e}", lock.display())))?;
    let written = file.write_to(&mut out).and_then(|()| out.sync_all()).and_then(|()| std::fs::rename(&lock, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&lock);
        return Err(config_error(dir, e));
    }
    Ok(())
}

/// Why an edit of the mirror's configuration failed.
type ConfigEditError = Box<dyn std::error::Error + Send + Sync>;

fn set_url_in(file: &mut gix::config::File, url: &str) -> Result<(), ConfigEditError> {
    use gix::bstr::ByteSlice;
    file.set_raw_value_by("remote", Some(REMOTE.as_bytes().as_bstr()), "url", url.as_bytes().as_bstr())?;
    Ok(())
}

/// Points the mirror's `origin` at `url`.
pub async fn set_url(dir: &Path, url: &str) -> Result<(), GitError> {
    write_config(dir, |file| set_url_in(file, url))
}

/// Points the mirror's `origin` at `url` and records how git reaches it (see the module docs).
/// Checks that the key, known_hosts and token files can be read.
pub async fn configure(dir: &Path, url: &str, credentials: &Credentials) -> Result<(), GitError> {
    let invalid = |m: String| GitError::Remote(RemoteError::Credentials(m));
    let readable = |what: &str, path: &Path| {
        std::fs::File::open(path).map(drop).map_err(|e| invalid(format!("{what} {}: {e}", path.display())))
    };
    let shown = redact_url(url);
    let (key, known_hosts) = (credentials.ssh_key.as_deref(), credentials.known_hosts.as_deref());
    let ssh_command = if !credentials::is_ssh(url) {
        if key.is_some() || known_hosts.is_some() {
            warn!(url = %shown, "the ssh key and known_hosts options apply to ssh remotes only; ignored");
        }
        None
    } else if key.is_some() || known_hosts.is_some() {
        if let Some(key) = key {
            readable("the ssh key", key)?;
        }
        if let Some(known_hosts) = known_hosts {
            readable("the known_hosts file", known_hosts)?;
        }
        Some(credentials::ssh_command(key, known_hosts).map_err(|e| invalid(e.to_string()))?)
    } else if user_chose_ssh(dir).await? {
        None
    } else {
        Some(credentials::BATCH_SSH_COMMAND.to_string())
    };
    let token_file = match &credentials.token_file {
        Some(path) => {
            let path = std::path::absolute(path).map_err(|e| invalid(format!("the git token file: {e}")))?;
            if credentials::is_http(url) {
                read_token(Some(&path)).await?;
            } else {
                warn!(url = %shown, "the git token applies to http(s) remotes only; ignored");
            }
            Some(path)
        }
        None => None,
    };
    let has_token = token_file.is_some() || std::env::var(credentials::TOKEN_ENV).is_ok_and(|t| !t.trim().is_empty());
    if has_token && credentials::is_http(url) {
        if credentials::token_user(url).is_none() {
            warn!(url = %shown, "the URL carries its own credentials; the git token is not used");
        } else if !url.to_ascii_lowercase().starts_with("https://") {
            warn!(url = %shown, "the git token is sent over plain http");
        }
    }
    let token_path = token_file.as_ref().map(|p| p.to_str().ok_or("the git token file path is not UTF-8"));
    let token_path = token_path.transpose().map_err(|e| invalid(e.to_string()))?;
    write_config(dir, |file| {
        set_url_in(file, url)?;
        while file.remove_section(SECTION, None).is_some() {}
        if ssh_command.is_some() || token_path.is_some() {
            let mut section = file.new_section(SECTION, None)?;
            if let Some(ssh) = &ssh_command {
                section.push(SSH_COMMAND, Some(ssh.as_str().into()))?;
            }
            if let Some(path) = token_path {
                section.push(TOKEN_FILE, Some(path.into()))?;
            }
        }
        Ok(())
    })?;
    info!(
        url = %shown,
        ssh_key = ?key,
        known_hosts = ?known_hosts,
        token = if !has_token { "none" } else if token_file.is_some() { "file" } else { credentials::TOKEN_ENV },
        "remote configured"
    );
    Ok(())
}

/// Whether the user picked an ssh command of their own (`GIT_SSH_COMMAND`, `GIT_SSH` or
/// `core.sshCommand` in their git config): then gitbacked leaves ssh alone.
async fn user_chose_ssh(dir: &Path) -> Result<bool, GitError> {
    if std::env::var_os("GIT_SSH_COMMAND").is_some() || std::env::var_os("GIT_SSH").is_some() {
        return Ok(true);
    }
    let output = git(dir, &["config", "--get", "core.sshCommand"]).await?;
    Ok(output.status.success() && !output.stdout.trim_ascii().is_empty())
}

/// The remote's branches, and the one its HEAD points at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Branches {
    /// The branch HEAD points at, when HEAD is a symbolic ref to an existing branch.
    pub head: Option<String>,
    /// Every branch.
    pub branches: Vec<String>,
    /// Every reference (`refs/heads/main`, `refs/gitbacked/snapshots/main`, …).
    pub references: Vec<String>,
}

fn parse_branches(text: &str) -> Branches {
    let mut result = Branches::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("ref: refs/heads/") {
            if rest.ends_with("\tHEAD") {
                result.head = rest.split('\t').next().map(str::to_string);
            }
        } else if let Some(reference) = line.split('\t').nth(1).filter(|r| r.starts_with("refs/")) {
            if let Some(branch) = reference.strip_prefix("refs/heads/") {
                result.branches.push(branch.to_string());
            }
            result.references.push(reference.to_string());
        }
    }
    result
}

async fn list_branches(dir: &Path) -> Result<(Branches, Access), GitError> {
    let (output, access) = network(dir, &["ls-remote", "--symref", REMOTE]).await?;
    if !output.status.success() {
        return Err(access.failed("ls-remote", &output));
    }
    Ok((parse_branches(&String::from_utf8_lossy(&output.stdout)), access))
}

/// The remote's branches and default branch.
pub async fn branches(dir: &Path) -> Result<Branches, GitError> {
    list_branches(dir).await.map(|(branches, _)| branches)
}

/// The branch to use: `requested`, else the remote's default branch, else `main`, with what the
/// remote listed. When the remote has branches but not this one, that is an error unless `create`
/// is set (then the first write creates it, from nothing). An empty remote gets its first branch
/// from the first write.
pub async fn resolve_branch(dir: &Path, requested: Option<&str>, create: bool) -> Result<(String, Branches), GitError> {
    let (found, access) = list_branches(dir).await?;
    let branch = requested.map(str::to_string).or(found.head.clone()).unwrap_or_else(|| "main".into());
    if found.branches.is_empty() || found.branches.contains(&branch) {
        return Ok((branch, found));
    }
    if create {
        info!(url = %access.shown_url(), %branch, "the branch does not exist yet; the first write creates it");
        return Ok((branch, found));
    }
    Err(GitError::Remote(RemoteError::BranchMissing { url: access.shown_url(), branch, existing: found.branches }))
}

/// The branch the remote's HEAD points at, when it has one.
pub async fn default_branch(dir: &Path) -> Result<Option<String>, GitError> {
    let (output, access) = network(dir, &["ls-remote", "--symref", REMOTE, "HEAD"]).await?;
    if !output.status.success() {
        return Err(access.failed("ls-remote", &output));
    }
    Ok(parse_branches(&String::from_utf8_lossy(&output.stdout)).head)
}

/// The commits remote references (`refs/heads/main`) point at, `None` for one that does not exist:
/// a cheap check before fetching.
pub async fn remote_tips(dir: &Path, references: &[&str]) -> Result<Vec<Option<ObjectId>>, GitError> {
    let mut args = vec!["ls-remote", REMOTE];
    args.extend(references);
    let (output, access) = network(dir, &args).await?;
    if !output.status.success() {
        return Err(access.failed("ls-remote", &output));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let tip = |reference: &&str| {
        text.lines()
            .find(|l| l.split('\t').nth(1) == Some(*reference))
            .map(|l| parse_id(l.split('\t').next().unwrap_or_default()))
            .transpose()
    };
    references.iter().map(tip).collect()
}

/// Where the mirror keeps its copy of a remote reference: `refs/remotes/origin/<branch>` for a
/// branch, `refs/gitbacked-remote/<rest>` for any other reference.
fn tracking(reference: &str) -> String {
    match reference.strip_prefix("refs/heads/") {
        Some(branch) => format!("refs/remotes/{REMOTE}/{branch}"),
        None => format!("refs/gitbacked-remote/{}", reference.strip_prefix("refs/").unwrap_or(reference)),
    }
}

/// Records in the mirror that a remote reference now points at `commit`, as a fetch of it would.
/// Until then nothing in the mirror refers to the commits pushed, and git's maintenance in the
/// mirror (`gc --auto` after a fetch) prunes unreferenced objects once they are two weeks old.
pub fn record_push(mirror: &super::Mirror, reference: &str, commit: ObjectId) -> Result<(), GitError> {
    let any = gix::refs::transaction::PreviousValue::Any;
    let name = tracking(reference).try_into().map_err(super::objects)?;
    super::update_refs(&mirror.local(), [(name, any, commit)]).map_err(super::objects)
}

/// How much history a fetch brings (see [`fetch_with`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    /// All of it (what the mirror lacks).
    Full,
    /// The tips alone: a shallow mirror (`--depth=1`).
    Tip,
    /// Back to the commits after this time, seconds since the epoch (`--shallow-since`).
    Since(i64),
    /// This many commits deeper than the mirror's shallow boundary (`--deepen`).
    Deepen(u32),
    /// All of it, into a shallow mirror (`--unshallow`).
    Unshallow,
}

impl Depth {
    fn arg(self) -> Option<String> {
        match self {
            Depth::Full => None,
            Depth::Tip => Some("--depth=1".into()),
            Depth::Since(time) => Some(format!("--shallow-since={time}")),
            Depth::Deepen(n) => Some(format!("--deepen={n}")),
            Depth::Unshallow => Some("--unshallow".into()),
        }
    }
}

/// Fetches remote references (`refs/heads/main`, then any companions such as its status ref) into
/// the mirror in one round and returns their tips (`None` for one that does not exist).
pub async fn fetch(dir: &Path, references: &[&str]) -> Result<Vec<Option<ObjectId>>, GitError> {
    fetch_with(dir, references, Depth::Full).await
}

/// [`fetch`], bringing as much history as `depth` says.
pub async fn fetch_with(dir: &Path, references: &[&str], depth: Depth) -> Result<Vec<Option<ObjectId>>, GitError> {
    let mut wanted: Vec<&str> = references.to_vec();
    let depth = depth.arg();
    loop {
        // A companion is fetched as a pattern, which may match nothing: git refuses a whole fetch
        // for one named reference that does not exist, and most remotes have no status ref.
        let refspec = |r: &&str| match Some(*r) == references.first().copied() {
            true => format!("+{r}:{}", tracking(r)),
            false => format!("+{r}*:{}*", tracking(r)),
        };
        let refspecs: Vec<String> = wanted.iter().map(refspec).collect();
        let mut args = vec!["fetch", "--quiet", "--no-tags", "--no-write-fetch-head"];
        // Without the named reference (a branch still to be created) only patterns are left, and a
        // shallow fetch whose patterns match nothing fails without a word: there is no history to
        // cut short then anyway.
        if wanted.first() == references.first() {
            args.extend(depth.as_deref());
        }
        args.push(REMOTE);
        args.extend(refspecs.iter().map(String::as_str));
        let (output, access) = network(dir, &args).await?;
        if output.status.success() {
            break;
        }
        // git names the first reference it could not find; the others are fetched without it.
        let stderr = String::from_utf8_lossy(&output.stderr);
        let missing = wanted.iter().position(|r| stderr.contains(&format!("couldn't find remote ref {r}")));
        match missing {
            Some(i) => drop(wanted.remove(i)),
            None => return Err(access.failed("fetch", &output)),
        }
        if wanted.is_empty() {
            break;
        }
    }
    let mut tips = Vec::with_capacity(references.len());
    for reference in references {
        let tip = match wanted.contains(reference) {
            true => tracked(dir, reference).await?,
            false => None,
        };
        tips.push(tip);
    }
    Ok(tips)
}

/// Where the mirror's copy of a remote reference points (see [`fetch`]), `None` when it has none.
pub async fn tracked(dir: &Path, reference: &str) -> Result<Option<ObjectId>, GitError> {
    let output = git(dir, &["rev-parse", "--verify", "--quiet", &tracking(reference)]).await?;
    let found = output.status.success();
    found.then(|| parse_id(&String::from_utf8_lossy(&output.stdout))).transpose()
}

/// Pushes commits to remote references as fast-forwards, all or none (`--atomic` when there are
/// several). Never forces.
pub async fn push(dir: &Path, updates: &[super::RefUpdate]) -> Result<PushOutcome, GitError> {
    let refspecs: Vec<String> = updates.iter().map(|u| format!("{}:{}", u.commit, u.reference)).collect();
    let mut args = vec!["push", "--porcelain", "--quiet"];
    if updates.len() > 1 {
        args.push("--atomic");
    }
    args.push(REMOTE);
    args.extend(refspecs.iter().map(String::as_str));
    let (output, access) = network(dir, &args).await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let reference = updates.first().map(|u| u.reference.as_str()).unwrap_or_default();
    let branch = reference.strip_prefix("refs/heads/").unwrap_or(reference).to_string();
    let checked_out = || GitError::Remote(RemoteError::CheckedOutBranch { url: access.shown_url(), branch });
    // Porcelain lines: `<flag>\t<from>:<to>\t<summary>`; `!` is a rejected ref. Of an atomic push
    // refused for one reference, the others say `atomic push failed`: the one that says why counts.
    let lines: Vec<&str> = updates
        .iter()
        .filter_map(|u| {
            let to = &u.reference;
            stdout.lines().find(|l| l.ends_with(&format!(":{to}")) || l.contains(&format!(":{to}\t")))
        })
        .collect();
    let refused = lines.iter().filter(|l| l.starts_with('!'));
    let line = refused.clone().find(|l| !l.contains("atomic push failed")).or(refused.clone().next()).or(lines.first());
    match line.and_then(|l| l.chars().next()) {
        Some(' ' | '+' | '=' | '*' | '-') if output.status.success() => Ok(PushOutcome::Pushed),
        Some('!') => {
            let summary = line.copied().unwrap_or_default();
            // Another writer moved the branch first, or updated it at the same moment (the remote
            // could not lock or update the ref): fetch and replay.
            let raced = ["fetch first", "non-fast-forward", "stale info", "failed to update ref", "failed to lock"];
            if raced.iter().any(|r| summary.contains(r)) {
                Ok(PushOutcome::Rejected)
            } else if CHECKED_OUT.iter().any(|p| summary.contains(p)) {
                Err(checked_out())
            } else {
                let summary = summary.split('\t').next_back().unwrap_or(summary);
                let summary = credentials::scrub(summary, &access.secrets());
                Err(GitError::Command(format!("push to {} rejected: {summary}", access.shown_url())))
            }
        }
        _ if output.status.success() => Ok(PushOutcome::Pushed),
        _ if CHECKED_OUT.iter().any(|p| String::from_utf8_lossy(&output.stderr).contains(p)) => Err(checked_out()),
        _ => Err(access.failed("push", &output)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(stderr: &str) -> String {
        match classify("URL", stderr) {
            Some(e) => format!("{e:?}").split([' ', '(', '{']).next().unwrap_or_default().to_string(),
            None => "none".into(),
        }
    }

    const COULD_NOT_READ: &str = "fatal: Could not read from remote repository.\n\nPlease make sure you have the \
                                  correct access rights\nand the repository exists.\n";

    #[test]
    fn git_messages_are_classified() {
        let unknown = "No ED25519 host key is known for [127.0.0.1]:19422 and you have requested strict \
                       checking.\nHost key verification failed.\n";
        assert_eq!(kind(&format!("{unknown}{COULD_NOT_READ}")), "UnknownHostKey");
        let changed = "@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key for \
                       [127.0.0.1]:19422 has changed and you have requested strict checking.\nHost key \
                       verification failed.\n";
        assert_eq!(kind(&format!("{changed}{COULD_NOT_READ}")), "UnknownHostKey");
        assert_eq!(
            kind(&format!("root@127.0.0.1: Permission denied (publickey).\n{COULD_NOT_READ}")),
            "AuthenticationFailed"
        );
        assert_eq!(
            kind("fatal: could not read Username for 'http://127.0.0.1:1': terminal prompts disabled"),
            "AuthenticationFailed"
        );
        assert_eq!(kind("fatal: Authentication failed for 'http://127.0.0.1:1/r.git/'"), "AuthenticationFailed");
        assert_eq!(kind("fatal: repository 'http://127.0.0.1:1/missing.git/' not found"), "RepositoryNotFound");
        assert_eq!(
            kind(&format!("fatal: '/srv/missing.git' does not appear to be a git repository\n{COULD_NOT_READ}")),
            "RepositoryNotFound"
        );
        assert_eq!(
            kind("fatal: remote error: access denied or repository not exported: /missing.git"),
            "RepositoryNotFound"
        );
        assert_eq!(
            kind("fatal: unable to connect to 127.0.0.1:\n127.0.0.1[0: 127.0.0.1]: errno=Connection refused"),
            "Unreachable"
        );
        assert_eq!(
            kind(&format!("ssh: connect to host 127.0.0.1 port 1: Connection refused\n{COULD_NOT_READ}")),
            "Unreachable"
        );
        assert_eq!(kind("fatal: something else"), "none");
        let e = classify("URL", &format!("root@h: Permission denied (publickey).\n{COULD_NOT_READ}")).unwrap();
        assert!(e.to_string().starts_with("authentication to URL failed: root@h: Permission denied (publickey)."));
    }

    #[test]
    fn branch_listings_are_parsed() {
        let text =
            "ref: refs/heads/main\tHEAD\nabc\tHEAD\nabc\trefs/heads/main\ndef\trefs/heads/dev\nabc\trefs/tags/v1\n";
        let parsed = parse_branches(text);
        assert_eq!(parsed.head.as_deref(), Some("main"));
        assert_eq!(parsed.branches, ["main", "dev"]);
        assert_eq!(parsed.references, ["refs/heads/main", "refs/heads/dev", "refs/tags/v1"]);
        let missing = RemoteError::BranchMissing { url: "u".into(), branch: "x".into(), existing: parsed.branches };
        assert!(missing.to_string().contains("which has \"main\", \"dev\"; pass --create-branch"));
    }

    /// The token reaches git through the environment only: never its arguments.
    #[test]
    fn the_token_is_never_an_argument() {
        let access =
            Access { url: "https://git.example.com/r.git".into(), ssh_command: None, token: Token::new("tok-123") };
        let cmd = access.command(Path::new("/mirror"), &["fetch", REMOTE]);
        let std = cmd.as_std();
        let args: Vec<String> = std.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert!(
            args.iter().all(|a| !a.contains("tok-123") && !a.contains(&credentials::base64(b"x-access-token:tok-123")))
        );
        let envs: Vec<(String, String)> = std
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_string_lossy().into_owned(), v?.to_string_lossy().into_owned())))
            .collect();
        let base: usize = std::env::var("GIT_CONFIG_COUNT").ok().and_then(|n| n.parse().ok()).unwrap_or(0);
        let value = envs.iter().find(|(k, _)| *k == format!("GIT_CONFIG_VALUE_{base}")).map(|(_, v)| v.as_str());
        let expected = format!("Authorization: Basic {}", credentials::base64(b"x-access-token:tok-123"));
        assert_eq!(value, Some(expected.as_str()));
        assert!(
            std.get_envs().any(|(k, v)| k == credentials::TOKEN_ENV && v.is_none()),
            "the token variable is removed"
        );
        let failure = Output {
            status: std::process::ExitStatus::default(),
            stdout: Vec::new(),
            stderr: format!("fatal: weird tok-123 {}", expected).into_bytes(),
        };
        let message = access.failed("fetch", &failure).to_string();
        assert!(!message.contains("tok-123") && !message.contains(&credentials::base64(b"x-access-token:tok-123")));
    }

    #[tokio::test]
    async fn configuration_holds_no_secret_and_git_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let mirror = dir.path().join("m.git");
        let status = std::process::Command::new("git").args(["init", "--quiet", "--bare"]).arg(&mirror).status();
        assert!(status.unwrap().success());
        let token = dir.path().join("token");
        std::fs::write(&token, "tok-456\n").unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "not really a key").unwrap();
        let url = "https://host.example/r;x.git";
        let credentials = Credentials { token_file: Some(token.clone()), ..Default::default() };
        configure(&mirror, url, &credentials).await.unwrap();
        let config = std::fs::read_to_string(mirror.join("config")).unwrap();
        assert!(!config.contains("tok-456"), "{config}");
        let get = |key: &str| {
            let out = std::process::Command::new("git").arg("-C").arg(&mirror).args(["config", "--get", key]).output();
            String::from_utf8(out.unwrap().stdout).unwrap().trim_end().to_string()
        };
        assert_eq!(get("remote.origin.url"), url);
        assert_eq!(get("gitbacked.tokenFile"), token.display().to_string());
        let access = Access::load(&mirror).await.unwrap();
        assert_eq!(access.token.as_ref().map(Token::expose), Some("tok-456"));

        // ssh: the command is recorded; reconfiguring drops what is no longer asked for.
        let ssh = Credentials { ssh_key: Some(key.clone()), ..Default::default() };
        configure(&mirror, "ssh://git@host.example/r.git", &ssh).await.unwrap();
        assert_eq!(get("gitbacked.sshCommand"), credentials::ssh_command(Some(&key), None).unwrap());
        assert_eq!(get("gitbacked.tokenFile"), "");
        let missing = Credentials { ssh_key: Some(dir.path().join("nope")), ..Default::default() };
        let e = configure(&mirror, "ssh://git@host.example/r.git", &missing).await.unwrap_err();
        assert!(e.to_string().contains("the ssh key") && e.to_string().contains("nope"), "{e}");
    }
}
