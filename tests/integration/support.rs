//! Test fixtures: a bare remote in a temp dir, a person's clone that commits and pushes with the
//! git CLI, and a GitStore opened on the remote.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gitbacked::{GitStore, Options};

/// Runs git and returns stdout; panics with stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out =
        Command::new("git").arg("-C").arg(dir).args(args).env("GIT_TERMINAL_PROMPT", "0").output().expect("git runs");
    assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A bare remote and a person's clone of it.
pub struct Remote {
    pub dir: tempfile::TempDir,
}

impl Remote {
    /// An empty bare remote with branch `main`, and a clone with one initial commit.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let remote = dir.path().join("remote.git");
        git(dir.path(), &["init", "--quiet", "--bare", "--initial-branch=main", remote.to_str().unwrap()]);
        git(dir.path(), &["clone", "--quiet", remote.to_str().unwrap(), "person"]);
        let r = Remote { dir };
        git(&r.person(), &["config", "user.name", "A Person"]);
        git(&r.person(), &["config", "user.email", "person@example.com"]);
        git(&r.person(), &["checkout", "--quiet", "-b", "main"]);
        r.commit(&[("README.md", Some("state repo\n"))], "initial");
        r
    }

    /// The remote's URL.
    pub fn url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    /// The bare remote's path.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("remote.git")
    }

    /// The person's clone.
    pub fn person(&self) -> PathBuf {
        self.dir.path().join("person")
    }

    /// The person writes (Some) or deletes (None) files, commits and pushes (pulling first).
    pub fn commit(&self, files: &[(&str, Option<&str>)], message: &str) {
        let p = self.person();
        let _ = Command::new("git").arg("-C").arg(&p).args(["pull", "--quiet", "--rebase", "origin", "main"]).output();
        self.stage(files);
        git(&p, &["commit", "--quiet", "--allow-empty", "-m", message]);
        git(&p, &["push", "--quiet", "origin", "main"]);
    }

    /// The person replaces the newest commit (`git commit --amend` + `git push --force`).
    pub fn amend(&self, files: &[(&str, Option<&str>)], message: &str) {
        let p = self.person();
        git(&p, &["pull", "--quiet", "--rebase", "origin", "main"]);
        self.stage(files);
        git(&p, &["commit", "--quiet", "--amend", "-m", message]);
        git(&p, &["push", "--quiet", "--force", "origin", "main"]);
    }

    /// Writes (Some) or deletes (None) files in the person's clone and stages them.
    fn stage(&self, files: &[(&str, Option<&str>)]) {
        let p = self.person();
        for (path, content) in files {
            let full = p.join(path);
            match content {
                Some(text) => {
                    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                    std::fs::write(&full, text).unwrap();
                    git(&p, &["add", path]);
                }
                None => {
                    git(&p, &["rm", "--quiet", path]);
                }
            }
        }
    }

    /// A file on the remote's main branch, `None` when missing.
    pub fn file(&self, path: &str) -> Option<String> {
        let out =
            Command::new("git").arg("-C").arg(self.path()).args(["show", &format!("main:{path}")]).output().unwrap();
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Subjects of the remote's commits on main, newest first.
    pub fn log(&self) -> Vec<String> {
        self.log_of("main")
    }

    /// Subjects of the commits of a remote ref, newest first (none when it does not exist).
    pub fn log_of(&self, reference: &str) -> Vec<String> {
        let out = Command::new("git").arg("-C").arg(self.path()).args(["log", "--format=%s", reference]).output();
        let out = out.expect("git runs");
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
    }

    /// Files on the remote's main branch.
    pub fn files(&self) -> Vec<String> {
        git(&self.path(), &["ls-tree", "-r", "--name-only", "main"]).lines().map(str::to_string).collect()
    }
}

/// Options for tests: fast polling.
pub fn options() -> Options {
    Options { interval: Duration::from_millis(100), write_timeout: Duration::from_secs(20), ..Default::default() }
}

/// Opens a store on the remote.
pub async fn open(remote: &Remote) -> GitStore {
    GitStore::open(&remote.url(), options()).await.expect("store opens")
}

/// Waits (bounded) until `check` holds.
pub async fn eventually<F: FnMut() -> bool>(what: &str, mut check: F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A ConfigMap manifest.
pub fn configmap(name: &str, data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n  key: \"{data}\"\n"
    )
}

// ---------------------------------------------------------------------------------------------
// Helpers for the watch, repo and semantics modules.

/// Runs a test body, failing it when it takes longer than `secs` seconds.
pub async fn within<F: std::future::Future>(secs: u64, body: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(secs), body).await {
        Ok(out) => out,
        Err(_) => panic!("the test did not finish within {secs}s"),
    }
}

/// Opens a store on the remote with options of one's own (fast polling unless overridden).
pub async fn open_with(remote: &Remote, options: Options) -> GitStore {
    GitStore::open(&remote.url(), options).await.expect("store opens")
}

/// The `Status` of a failed kube call; panics on success or on a non-API error.
pub fn status_of<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

impl Remote {
    /// The person runs `edit` in their clone (after pulling), then commits everything and pushes.
    pub fn commit_with(&self, message: &str, edit: impl FnOnce(&Path)) {
        let p = self.person();
        git(&p, &["pull", "--quiet", "--rebase", "origin", "main"]);
        edit(&p);
        git(&p, &["add", "--all"]);
        git(&p, &["commit", "--quiet", "--allow-empty", "-m", message]);
        git(&p, &["push", "--quiet", "origin", "main"]);
    }

    /// Number of commits on the remote's main branch.
    pub fn commit_count(&self) -> usize {
        self.log().len()
    }

    /// Paths changed by the remote's newest commit.
    pub fn last_changed_files(&self) -> Vec<String> {
        git(&self.path(), &["show", "--format=", "--name-only", "main"])
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }
}
