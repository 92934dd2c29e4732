//! Fixtures shared by gitbacked's test suites: a bare remote and a person's clone of it, driven
//! with the real git CLI, every command bounded in time.

pub mod servers;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long one git (or other) command of a test may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs `cmd` (stdin closed) and kills it when it takes longer than `timeout`.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Output {
    let described = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {described}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let (out, err) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
            panic!(
                "{described} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() }
}

/// Runs git in `dir` and returns stdout; panics with stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = try_git(dir, args);
    assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs git in `dir` with `input` on its standard input (`mktree`, `fast-import`) and returns
/// stdout; panics on failure.
pub fn git_with_input(dir: &Path, args: &[&str], input: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("git runs");
    child.stdin.take().expect("piped").write_all(input).expect("git reads its input");
    let out = child.wait_with_output().expect("git ends");
    assert!(out.status.success(), "git {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs git in `dir`, whatever its outcome.
pub fn try_git(dir: &Path, args: &[&str]) -> Output {
    run_bounded(Command::new("git").arg("-C").arg(dir).args(args).env("GIT_TERMINAL_PROMPT", "0"), COMMAND_TIMEOUT)
}

/// A bare remote (`remote.git`) with branch `main`, and a person's clone (`person`) of it.
pub struct Remote {
    dir: PathBuf,
    _owned: Option<tempfile::TempDir>,
}

impl Default for Remote {
    fn default() -> Self {
        Self::new()
    }
}

impl Remote {
    /// A remote in a temporary directory removed on drop, with one initial commit.
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut remote = Remote::in_dir(tmp.path());
        remote._owned = Some(tmp);
        remote
    }

    /// A remote in `dir`, with one initial commit.
    pub fn in_dir(dir: &Path) -> Self {
        let remote = dir.join("remote.git");
        git(dir, &["init", "--quiet", "--bare", "--initial-branch=main", remote.to_str().expect("UTF-8 path")]);
        git(dir, &["clone", "--quiet", remote.to_str().expect("UTF-8 path"), "person"]);
        let r = Remote { dir: dir.to_path_buf(), _owned: None };
        git(&r.person(), &["config", "user.name", "A Person"]);
        git(&r.person(), &["config", "user.email", "person@example.com"]);
        git(&r.person(), &["checkout", "--quiet", "-b", "main"]);
        r.commit(&[("README.md", Some("state repo\n"))], "initial");
        r
    }

    /// The directory holding the remote and the clone.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The remote's URL.
    pub fn url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    /// The bare remote's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join("remote.git")
    }

    /// The person's clone.
    pub fn person(&self) -> PathBuf {
        self.dir.join("person")
    }

    /// The person writes (Some) or removes with `git rm` (None) files, commits and pushes, pulling
    /// the server's commits first.
    pub fn commit(&self, files: &[(&str, Option<&str>)], message: &str) {
        self.commit_with(message, |_| self.stage(files));
    }

    /// The person runs `edit` in their clone (after pulling), then commits everything and pushes.
    pub fn commit_with(&self, message: &str, edit: impl FnOnce(&Path)) {
        let p = self.person();
        if self.head().is_some() {
            git(&p, &["pull", "--quiet", "--rebase", "origin", "main"]);
        }
        edit(&p);
        git(&p, &["add", "--all"]);
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
            match content {
                Some(text) => {
                    let full = p.join(path);
                    std::fs::create_dir_all(full.parent().expect("a file has a parent")).expect("mkdir");
                    std::fs::write(&full, text).expect("write");
                    git(&p, &["add", path]);
                }
                None => {
                    git(&p, &["rm", "--quiet", path]);
                }
            }
        }
    }

    /// The remote's main commit, `None` before the first push.
    pub fn head(&self) -> Option<String> {
        let out = try_git(&self.path(), &["rev-parse", "--verify", "--quiet", "main"]);
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// A file on the remote's main branch, `None` when missing.
    pub fn file(&self, path: &str) -> Option<String> {
        let out = try_git(&self.path(), &["show", &format!("main:{path}")]);
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A file on the remote that must exist.
    pub fn must_file(&self, path: &str) -> String {
        self.file(path).unwrap_or_else(|| panic!("{path} is not on the remote's main; files: {:?}", self.files()))
    }

    /// Subjects of the remote's commits on main, newest first.
    pub fn log(&self) -> Vec<String> {
        self.log_of("main")
    }

    /// Subjects of the commits of a remote ref, newest first (none when it does not exist).
    pub fn log_of(&self, reference: &str) -> Vec<String> {
        let out = try_git(&self.path(), &["log", "--format=%s", reference]);
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
    }

    /// Number of commits on the remote's main branch.
    pub fn commit_count(&self) -> usize {
        self.log().len()
    }

    /// Files on the remote's main branch.
    pub fn files(&self) -> Vec<String> {
        git(&self.path(), &["-c", "core.quotePath=false", "ls-tree", "-r", "--name-only", "main"])
            .lines()
            .map(str::to_string)
            .collect()
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
