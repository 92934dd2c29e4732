//! Trees of files for `check`, `log` and `diff`: a revision of a git repository (bare or with a
//! working tree), or the files of a working tree. git itself reads the repository.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{Context, bail};

/// Files as `check` and `diff` take them: path (relative to the subdirectory) and bytes.
pub type Files = Vec<(String, Vec<u8>)>;

/// A repository, or a directory of files, and the subdirectory objects live in.
pub struct Repo {
    dir: PathBuf,
    subdir: String,
}

/// Whether a path names a file that may hold objects.
fn holds_objects(path: &str) -> bool {
    [".yaml", ".yml", ".json"].iter().any(|ext| path.ends_with(ext))
}

impl Repo {
    /// `dir` (a repository, bare or not, or a plain directory), objects under `subdir`.
    pub fn new(dir: &Path, subdir: Option<&str>) -> Self {
        let subdir = subdir.unwrap_or_default().trim_matches('/').to_string();
        Repo { dir: dir.to_path_buf(), subdir }
    }

    fn git(&self, args: &[&str]) -> anyhow::Result<Vec<u8>> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(["-c", "core.quotePath=false"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running git")?;
        if !out.status.success() {
            bail!("git {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(out.stdout)
    }

    /// Whether the directory is inside a git repository (bare or not).
    pub fn is_git(&self) -> bool {
        self.git(&["rev-parse", "--git-dir"]).is_ok()
    }

    /// Whether the directory is a bare repository.
    pub fn is_bare(&self) -> bool {
        self.git(&["rev-parse", "--is-bare-repository"]).is_ok_and(|o| o.starts_with(b"true"))
    }

    /// The path relative to the subdirectory, `None` outside it.
    fn relative<'a>(&self, path: &'a str) -> Option<&'a str> {
        if self.subdir.is_empty() {
            return Some(path);
        }
        path.strip_prefix(&self.subdir)?.strip_prefix('/')
    }

    fn pathspec(&self) -> &str {
        if self.subdir.is_empty() { "." } else { &self.subdir }
    }

    /// The files that may hold objects at revision `rev`.
    pub fn at_revision(&self, rev: &str) -> anyhow::Result<Files> {
        let listing = self.git(&["ls-tree", "-r", "-z", "--full-tree", rev, "--", self.pathspec()])?;
        let mut paths = Vec::new();
        for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
            let entry = String::from_utf8_lossy(entry);
            let Some((meta, path)) = entry.split_once('\t') else { continue };
            if meta.split(' ').nth(1) == Some("blob") && holds_objects(path) && self.relative(path).is_some() {
                paths.push(path.to_string());
            }
        }
        let mut cat = CatFile::start(&self.dir)?;
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            if let Some(bytes) = cat.read(&format!("{rev}:{path}"))? {
                files.push((self.relative(&path).unwrap_or(&path).to_string(), bytes));
            }
        }
        Ok(files)
    }

    /// The files of the working tree that may hold objects: those git would commit (tracked, and
    /// untracked but not ignored), or every file when the directory is not in a repository.
    pub fn working_tree(&self) -> anyhow::Result<Files> {
        let paths: Vec<String> = if self.is_git() {
            let listing =
                self.git(&["ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", self.pathspec()])?;
            let listed = listing.split(|b| *b == 0).filter(|p| !p.is_empty());
            let mut paths: Vec<String> = listed.map(|p| String::from_utf8_lossy(p).into_owned()).collect();
            paths.dedup();
            paths
        } else {
            let mut paths = Vec::new();
            walk(&self.dir, &self.dir, &mut paths)?;
            paths
        };
        let mut files = Vec::new();
        for path in paths.into_iter().filter(|p| holds_objects(p)) {
            let Some(relative) = self.relative(&path) else { continue };
            // A tracked file deleted in the working tree is not there any more.
            let Ok(bytes) = std::fs::read(self.dir.join(&path)) else { continue };
            files.push((relative.to_string(), bytes));
        }
        Ok(files)
    }

    /// The commits of `rev`'s first-parent history that change the subdirectory, oldest first,
    /// with the files of it they change.
    pub fn history(&self, rev: &str) -> anyhow::Result<Vec<Commit>> {
        let format = "--format=%x1e%H%x1f%an <%ae>%x1f%aI%x1f%B%x1f";
        let log =
            self.git(&["log", "--first-parent", "--reverse", "--name-only", format, rev, "--", self.pathspec()])?;
        let text = String::from_utf8_lossy(&log);
        let mut commits = Vec::new();
        for record in text.split('\u{1e}').filter(|r| !r.trim().is_empty()) {
            let fields: Vec<&str> = record.splitn(5, '\u{1f}').collect();
            let [id, author, date, message, names] = fields[..] else { continue };
            let files = names.lines().filter(|l| !l.is_empty() && holds_objects(l)).map(str::to_string).collect();
            commits.push(Commit {
                id: id.to_string(),
                author: author.to_string(),
                date: date.to_string(),
                message: message.trim_end().to_string(),
                files,
            });
        }
        Ok(commits)
    }

    /// A reader of files at revisions.
    pub fn reader(&self) -> anyhow::Result<CatFile> {
        CatFile::start(&self.dir)
    }

    /// A path relative to the subdirectory.
    pub fn relative_path(&self, path: &str) -> Option<String> {
        self.relative(path).map(str::to_string)
    }
}

/// Every file under `dir`, relative to `root`, skipping `.git`.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_name() == ".git" {
            continue;
        }
        if entry.file_type()?.is_dir() {
            walk(root, &path, out)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            out.push(relative.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

/// One commit of a history.
pub struct Commit {
    /// Its id.
    pub id: String,
    /// `Name <email>` of its author.
    pub author: String,
    /// When it was authored (ISO 8601).
    pub date: String,
    /// Its message.
    pub message: String,
    /// The files holding objects it changes (paths from the repository's root).
    pub files: Vec<String>,
}

/// A running `git cat-file --batch`: reads blobs by `<rev>:<path>` without a process each.
pub struct CatFile {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl CatFile {
    fn start(dir: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("running git cat-file")?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("git cat-file has no pipes");
        };
        Ok(CatFile { child, stdin, stdout: BufReader::new(stdout) })
    }

    /// The blob `object` names (`<rev>:<path>`), `None` when there is none.
    pub fn read(&mut self, object: &str) -> anyhow::Result<Option<Vec<u8>>> {
        writeln!(self.stdin, "{object}")?;
        self.stdin.flush()?;
        let mut header = String::new();
        self.stdout.read_line(&mut header)?;
        let fields: Vec<&str> = header.split_whitespace().collect();
        match fields[..] {
            [_, "blob", size] => {
                let size: usize = size.parse().context("git cat-file answered an odd size")?;
                let mut bytes = vec![0; size + 1];
                self.stdout.read_exact(&mut bytes)?;
                bytes.pop();
                Ok(Some(bytes))
            }
            [_, "missing"] | [_, "ambiguous"] => Ok(None),
            [_, _, size] => {
                // Not a blob (a directory of that name): skip it.
                let size: usize = size.parse().context("git cat-file answered an odd size")?;
                std::io::copy(&mut (&mut self.stdout).take(size as u64 + 1), &mut std::io::sink())?;
                Ok(None)
            }
            _ => bail!("git cat-file answered {header:?}"),
        }
    }
}

impl Drop for CatFile {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
