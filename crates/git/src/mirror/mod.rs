//! git I/O. Local object work (trees, blobs, tree diffs, new commits) goes through gix on a bare
//! mirror with no work tree; fetch and push go through the `git` CLI ([`remote`]), so ssh config,
//! agents and credential helpers work as they do for people.

pub mod credentials;
pub mod local;
pub mod remote;

use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::diff::tree::recorder::Change as TreeChange;
use gix::objs::tree::EntryKind;
use tracing::warn;

/// Errors from local git object work.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// Reading or writing an object in the mirror failed.
    #[error("git object database: {0}")]
    Objects(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The mirror repository could not be opened or created.
    #[error("local mirror at {path}: {message}")]
    Mirror {
        /// Where the mirror lives.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A file gitbacked must edit is not UTF-8 text.
    #[error("{path} is not UTF-8")]
    NotUtf8 {
        /// The file, relative to the subdirectory.
        path: String,
    },
    /// The mirror's configuration could not be edited.
    #[error("editing the mirror's configuration")]
    Config(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A git command failed.
    #[error("{0}")]
    Command(String),
    /// The remote could not be reached or written for a reason someone must act on.
    #[error(transparent)]
    Remote(#[from] remote::RemoteError),
}

impl GitError {
    /// What went wrong, without paths, URLs or git's own words: safe to show to anyone (`/readyz`
    /// answers unauthenticated callers). The full error goes to the log.
    pub fn summary(&self) -> String {
        use remote::RemoteError as R;
        match self {
            GitError::Remote(R::UnknownHostKey { .. }) => "the ssh host key of the remote cannot be verified".into(),
            GitError::Remote(R::AuthenticationFailed { .. }) => "authentication to the remote failed".into(),
            GitError::Remote(R::RepositoryNotFound { .. }) => "the repository was not found".into(),
            GitError::Remote(R::BranchMissing { branch, .. }) => format!("branch {branch:?} does not exist"),
            GitError::Remote(R::CheckedOutBranch { .. }) => {
                "the remote refused a push to its checked-out branch".into()
            }
            GitError::Remote(R::Unreachable { .. }) => "the remote cannot be reached".into(),
            GitError::Remote(R::Credentials(_)) => "a credential option is not usable".into(),
            GitError::Remote(R::StaleLock { lock, .. }) => format!("{lock} in the remote is held: pushes wait"),
            _ => "the remote could not be read (see the server's log)".into(),
        }
    }
}

fn objects(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> GitError {
    GitError::Objects(e.into())
}

/// Moves each named ref in `repo` to its new commit if it matches what is `expected` of it, all or
/// none (one transaction, under git's lock files); the reflog entries, when the repository keeps
/// them, say `push` by gitbacked.
fn update_refs(
    repo: &gix::Repository,
    updates: impl IntoIterator<Item = (gix::refs::FullName, gix::refs::transaction::PreviousValue, ObjectId)>,
) -> gix::Result<()> {
    use gix::refs::transaction::{Change, LogChange, RefEdit, RefLog};
    let edits = updates.into_iter().map(|(name, expected, new)| RefEdit {
        change: Change::Update {
            log: LogChange { mode: RefLog::AndReference, force_create_reflog: false, message: "push".into() },
            expected,
            new: gix::refs::Target::Object(new),
        },
        name,
        deref: false,
    });
    let time = format!("{} +0000", gitbacked_core::clock::now());
    let committer =
        gix::actor::SignatureRef { name: "gitbacked".into(), email: "gitbacked@localhost".into(), time: &time };
    repo.edit_references_as(edits, Some(committer)).map(drop)
}

/// A remote reference to move to a commit, in a push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefUpdate {
    /// The remote reference (`refs/heads/main`).
    pub reference: String,
    /// The commit it is to point at: a descendant of where it points now (never a force).
    pub commit: ObjectId,
}

/// A file that differs between two trees, with paths relative to the subdirectory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileChange {
    /// Path relative to the subdirectory.
    pub path: String,
    /// Blob before, `None` when the file was added.
    pub old: Option<ObjectId>,
    /// Blob after, `None` when the file was removed.
    pub new: Option<ObjectId>,
}

/// What the store needs to know about a commit.
#[derive(Clone, Debug)]
pub struct CommitInfo {
    /// The commit id.
    pub id: ObjectId,
    /// Its first parent.
    pub first_parent: Option<ObjectId>,
    /// The tree of the subdirectory, `None` when the subdirectory does not exist.
    pub subtree: Option<ObjectId>,
    /// Committer time, seconds since the epoch.
    pub time: i64,
}

/// A bare local mirror of the remote: where objects are read and new commits are built.
#[derive(Clone)]
pub struct Mirror {
    repo: gix::ThreadSafeRepository,
    dir: PathBuf,
    subdir: String,
}

impl Mirror {
    /// Opens the bare mirror at `dir`, creating it when missing.
    pub fn open_or_init(dir: &Path, subdir: &str) -> Result<Self, GitError> {
        let err = |e: &dyn std::fmt::Display| GitError::Mirror { path: dir.to_path_buf(), message: e.to_string() };
        let repo = if dir.join("HEAD").exists() {
            gix::open(dir).map_err(|e| err(&e))?
        } else {
            std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
            gix::init_bare(dir).map_err(|e| err(&e))?
        };
        Ok(Mirror { repo: repo.into_sync(), dir: dir.to_path_buf(), subdir: subdir.to_string() })
    }

    /// The mirror's directory, for the git CLI.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The subdirectory objects live in, `""` for the repository root.
    pub fn subdir(&self) -> &str {
        &self.subdir
    }

    /// The same mirror, its paths relative to the repository root: for the refs whose files are
    /// gitbacked's own (the snapshot ref).
    pub fn at_root(&self) -> Mirror {
        Mirror { subdir: String::new(), ..self.clone() }
    }

    /// Whether the mirror holds only part of the history (a shallow fetch): a commit's parents may
    /// be missing.
    pub fn is_shallow(&self) -> bool {
        self.dir.join("shallow").exists()
    }

    fn local(&self) -> gix::Repository {
        let mut repo = self.repo.to_thread_local();
        repo.object_cache_size_if_unset(16 * 1024 * 1024);
        repo
    }

    /// A reader for one operation on one thread: it keeps its object caches between calls.
    pub fn reader(&self) -> Reader {
        Reader { repo: self.local(), subdir: self.subdir.clone() }
    }

    /// A reader for `blobs` blobs that are read once each (the changed files of a commit): an
    /// object cache would only hold them, 16 MB for each parsing thread. Its cache of delta bases
    /// is an LRU by size instead of gix's 64 entries, sized by the number of blobs: git deltas a
    /// file against one alike in size and name, in another directory, and the more files there
    /// are the farther back in the pack that base is (84k objects back, ~23 MB of blobs, for half
    /// the files of a generated 1M-object repository). Per parsing thread, reading blobs took
    /// 0.48–0.59 s with 64 entries and 0.28–0.36 s with 4 MB at 100k files; at 860k files 5.0 s
    /// with 4 MB, 4.5 s with 16 MB, 3.6 s with 32 MB, and no less with 128 MB.
    pub fn blob_reader(&self, blobs: usize) -> Reader {
        /// Bytes of delta bases kept for each blob to read, and the least and most kept.
        const PER_BLOB: usize = 40;
        const DELTA_BASES: std::ops::RangeInclusive<usize> = 4 << 20..=64 << 20;
        let bytes = blobs.saturating_mul(PER_BLOB).clamp(*DELTA_BASES.start(), *DELTA_BASES.end());
        let mut repo = self.repo.to_thread_local();
        repo.object_cache_size(None);
        repo.objects.set_pack_cache(move || Box::new(gix::odb::pack::cache::lru::MemoryCappedHashmap::new(bytes)));
        Reader { repo, subdir: self.subdir.clone() }
    }

    /// Starts building commits on top of `parent` (`None` for the first commit of a branch).
    /// With `sign`, commits are made by `git commit-tree -S`, signed as git's own configuration
    /// says (`gpg.format`, `user.signingkey`).
    pub fn builder(&self, parent: Option<ObjectId>, sign: bool) -> CommitBuilder {
        CommitBuilder { reader: self.reader(), parent, files: Vec::new(), sign, dir: self.dir.clone() }
    }
}

/// Reads commits, trees and blobs of the mirror; one per operation and thread (see [`Mirror::reader`]).
pub struct Reader {
    repo: gix::Repository,
    subdir: String,
}

impl Reader {
    /// Reads what the store needs from a commit.
    pub fn commit_info(&self, id: ObjectId) -> Result<CommitInfo, GitError> {
        let repo = &self.repo;
        let commit = repo.find_commit(id).map_err(objects)?;
        let decoded = commit.decode().map_err(objects)?;
        let tree = decoded.tree();
        let first_parent = decoded.parents().next();
        let time = decoded.committer().map_err(objects)?.seconds();
        let subtree = subtree_of(repo, tree, &self.subdir)?;
        Ok(CommitInfo { id, first_parent, subtree, time })
    }

    /// The first-parent chain from `tip` back to (excluding) `stop`, oldest first.
    /// Returns `None` when `stop` is not on `tip`'s first-parent chain (history was rewritten).
    pub fn first_parent_chain(
        &self,
        stop: Option<ObjectId>,
        tip: ObjectId,
    ) -> Result<Option<Vec<CommitInfo>>, GitError> {
        let mut chain = Vec::new();
        let mut next = Some(tip);
        while let Some(id) = next {
            if Some(id) == stop {
                chain.reverse();
                return Ok(Some(chain));
            }
            let info = self.commit_info(id)?;
            next = info.first_parent;
            chain.push(info);
        }
        if stop.is_some() {
            return Ok(None);
        }
        chain.reverse();
        Ok(Some(chain))
    }

    /// The entries (files and trees, recursively) that differ between two trees.
    fn tree_changes(&self, old: ObjectId, new: ObjectId) -> Result<Vec<TreeChange>, GitError> {
        let repo = &self.repo;
        let (old_tree, new_tree) = (repo.find_tree(old).map_err(objects)?, repo.find_tree(new).map_err(objects)?);
        let mut recorder = gix::diff::tree::Recorder::default();
        gix::diff::tree(
            gix::objs::TreeRefIter::from_bytes(&old_tree.data, repo.object_hash()),
            gix::objs::TreeRefIter::from_bytes(&new_tree.data, repo.object_hash()),
            &mut gix::diff::tree::State::default(),
            &repo.objects,
            &mut recorder,
        )
        .map_err(objects)?;
        Ok(recorder.records)
    }

    /// The files that differ between two subdirectory trees, among those `wanted` (by path):
    /// cost proportional to the change.
    pub fn diff(
        &self,
        old: Option<ObjectId>,
        new: Option<ObjectId>,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<Vec<FileChange>, GitError> {
        if old == new {
            return Ok(Vec::new());
        }
        let empty = ObjectId::empty_tree(self.repo.object_hash());
        let records = self.tree_changes(old.unwrap_or(empty), new.unwrap_or(empty))?;
        // Only regular files count: a symlink is never followed, so it cannot expose a host file.
        let file = |mode: gix::objs::tree::EntryMode, id: ObjectId| {
            matches!(mode.kind(), EntryKind::Blob | EntryKind::BlobExecutable).then_some(id)
        };
        let mut changes: Vec<FileChange> = records
            .into_iter()
            .filter_map(|change| {
                let (path, old, new) = match change {
                    TreeChange::Addition { entry_mode, oid, path, .. } => (path, None, file(entry_mode, oid)),
                    TreeChange::Deletion { entry_mode, oid, path, .. } => (path, file(entry_mode, oid), None),
                    TreeChange::Modification { previous_entry_mode, previous_oid, entry_mode, oid, path } => {
                        (path, file(previous_entry_mode, previous_oid), file(entry_mode, oid))
                    }
                };
                let path = path.to_str().ok()?.to_string();
                if !checks_out(&path) {
                    warn!(file = %path, "skipping a path git would not check out (`.`, `..` or `.git` in it)");
                    return None;
                }
                ((old.is_some() || new.is_some()) && wanted(&path)).then_some(FileChange { path, old, new })
            })
            .collect();
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(changes)
    }

    /// Reads a blob.
    pub fn blob(&self, id: ObjectId) -> Result<Vec<u8>, GitError> {
        let repo = &self.repo;
        let blob = repo.find_blob(id).map_err(objects)?;
        Ok(blob.detach().data)
    }

    /// The hash kind of the mirror's objects.
    pub fn object_hash(&self) -> gix::hash::Kind {
        self.repo.object_hash()
    }

    /// The parent of a commit with at most one: `Some(None)` for a root commit, `None` for a merge.
    pub fn single_parent(&self, id: ObjectId) -> Result<Option<Option<ObjectId>>, GitError> {
        let commit = self.repo.find_commit(id).map_err(objects)?;
        let parents: Vec<ObjectId> = commit.parent_ids().map(|p| p.detach()).collect();
        Ok(match parents.as_slice() {
            [] => Some(None),
            [one] => Some(Some(*one)),
            _ => None,
        })
    }

    /// The objects a commit adds to its parent `old` (`None`: to nothing): its new trees and blobs,
    /// then the commit itself. What a push of `new` to a remote holding `old` must send.
    pub fn new_objects(&self, old: Option<ObjectId>, new: ObjectId) -> Result<Vec<ObjectId>, GitError> {
        let tree_of = |id: ObjectId| -> Result<ObjectId, GitError> {
            Ok(self.repo.find_commit(id).map_err(objects)?.tree_id().map_err(objects)?.detach())
        };
        let new_tree = tree_of(new)?;
        let old_tree = match old {
            Some(old) => tree_of(old)?,
            None => ObjectId::empty_tree(self.repo.object_hash()),
        };
        let mut ids: Vec<ObjectId> = self
            .tree_changes(old_tree, new_tree)?
            .into_iter()
            .filter_map(|change| match change {
                // A gitlink names a commit of another repository: nothing to send.
                TreeChange::Addition { entry_mode, oid, .. } | TreeChange::Modification { entry_mode, oid, .. } => {
                    (!entry_mode.is_commit()).then_some(oid)
                }
                TreeChange::Deletion { .. } => None,
            })
            .collect();
        ids.extend([new_tree, new]);
        Ok(ids)
    }

    /// An object's kind and data.
    pub fn raw_object(&self, id: ObjectId) -> Result<(gix::objs::Kind, Vec<u8>), GitError> {
        let object = self.repo.find_object(id).map_err(objects)?.detach();
        Ok((object.kind, object.data))
    }

    /// The mode and id of what `path` (relative to the subdirectory) names in the tree of `commit`.
    fn entry_at(&self, commit: ObjectId, path: &str) -> Result<Option<(EntryKind, ObjectId)>, GitError> {
        let repo = &self.repo;
        let mut tree = repo.find_commit(commit).map_err(objects)?.tree().map_err(objects)?;
        let full = in_subdir(&self.subdir, path);
        let entry = tree.peel_to_entry_by_path(&full).map_err(objects)?;
        Ok(entry.map(|e| (e.mode().kind(), e.object_id())))
    }

    /// The blob at `path` (relative to the subdirectory) in the tree of `commit`.
    pub fn file_at(&self, commit: ObjectId, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        match self.entry_at(commit, path)? {
            Some((EntryKind::Blob | EntryKind::BlobExecutable, id)) => Ok(Some(self.blob(id)?)),
            _ => Ok(None),
        }
    }

    /// How many files the directory `dir` (relative to the subdirectory) holds directly in the
    /// tree of `commit`; 0 when there is no such directory.
    pub fn files_in(&self, commit: ObjectId, dir: &str) -> Result<usize, GitError> {
        let Some((EntryKind::Tree, id)) = self.entry_at(commit, dir)? else {
            return Ok(0);
        };
        let tree = self.repo.find_tree(id).map_err(objects)?;
        let decoded = tree.decode().map_err(objects)?;
        Ok(decoded.entries.iter().filter(|e| e.mode.is_blob()).count())
    }
}

/// Whether git would check out `path`: none of its components is empty, `.`, `..` or `.git` (in any
/// case), which `git mktree` writes and a push accepts, but no work tree can hold.
fn checks_out(path: &str) -> bool {
    path.split('/').all(|c| !c.is_empty() && c != "." && c != ".." && !c.eq_ignore_ascii_case(".git"))
}

/// Joins the subdirectory and a relative path into a repository path.
fn in_subdir(subdir: &str, relative: &str) -> String {
    if subdir.is_empty() { relative.to_string() } else { format!("{subdir}/{relative}") }
}

fn subtree_of(repo: &gix::Repository, tree: ObjectId, subdir: &str) -> Result<Option<ObjectId>, GitError> {
    if subdir.is_empty() {
        return Ok(Some(tree));
    }
    let entry = repo.find_tree(tree).map_err(objects)?.peel_to_entry_by_path(subdir).map_err(objects)?;
    Ok(entry.filter(|e| e.mode().is_tree()).map(|e| e.object_id()))
}

/// Who a commit is from: `Name <email>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Display name.
    pub name: String,
    /// E-mail address.
    pub email: String,
}

impl Default for Identity {
    fn default() -> Self {
        Identity { name: "gitbacked".into(), email: "gitbacked@localhost".into() }
    }
}

/// Text that is not an identity `Name <email>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected \"Name <email>\", got {0:?}")]
pub struct InvalidIdentity(pub String);

impl std::str::FromStr for Identity {
    type Err = InvalidIdentity;

    /// Parses `Name <email>`.
    fn from_str(s: &str) -> Result<Self, InvalidIdentity> {
        let invalid = || InvalidIdentity(s.to_string());
        let (name, rest) = s.split_once('<').ok_or_else(invalid)?;
        let email = rest.strip_suffix('>').ok_or_else(invalid)?;
        if name.trim().is_empty() || email.contains(['<', '>', '\n']) || name.contains('\n') {
            return Err(invalid());
        }
        Ok(Identity { name: name.trim().to_string(), email: email.trim().to_string() })
    }
}

/// What is where a new file would go (see [`CommitBuilder::occupant`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Occupant {
    /// Nothing: the file can be written.
    Nothing,
    /// A regular file: a new document can be appended to it.
    File,
    /// Something a file must not replace: a directory, a symlink or a submodule at the path, or
    /// anything but a directory at one of its parent directories.
    Other {
        /// Where it is, relative to the subdirectory.
        path: String,
        /// What it is: `a directory`, `a symlink`, `a submodule`, `a file`.
        what: &'static str,
    },
}

fn describe(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Tree => "a directory",
        EntryKind::Link => "a symlink",
        EntryKind::Commit => "a submodule",
        EntryKind::Blob | EntryKind::BlobExecutable => "a file",
    }
}

/// Builds a chain of commits, one per [`CommitBuilder::commit`] call, in the mirror's object database.
pub struct CommitBuilder {
    reader: Reader,
    sign: bool,
    dir: PathBuf,
    parent: Option<ObjectId>,
    files: Vec<(String, Option<Vec<u8>>)>,
}

impl CommitBuilder {
    /// Stages a new content for `path` (relative to the subdirectory); `None` removes the file.
    pub fn stage(&mut self, path: &str, content: Option<Vec<u8>>) {
        self.files.push((path.to_string(), content));
    }

    /// How many changes are staged: a mark to [`CommitBuilder::unstage`] back to.
    pub fn staged(&self) -> usize {
        self.files.len()
    }

    /// Drops the changes staged after `mark` (see [`CommitBuilder::staged`]).
    pub fn unstage(&mut self, mark: usize) {
        self.files.truncate(mark);
    }

    /// The current content of `path` (relative to the subdirectory), staged changes included.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        if let Some((_, content)) = self.files.iter().rev().find(|(p, _)| p == path) {
            return Ok(content.clone());
        }
        match self.parent {
            Some(parent) => self.reader.file_at(parent, path),
            None => Ok(None),
        }
    }

    /// The content of `path` before its latest staged change: what an earlier change of this
    /// commit staged, else the parent commit's (as [`CommitBuilder::read`] gave it before).
    pub fn previous(&self, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        match self.files.iter().rev().filter(|(p, _)| p == path).nth(1) {
            Some((_, content)) => Ok(content.clone()),
            None => self.parent.map_or(Ok(None), |parent| self.reader.file_at(parent, path)),
        }
    }

    /// What a new file at `path` (relative to the subdirectory) would replace in the commit the next
    /// one is built on, staged changes included.
    pub fn occupant(&self, path: &str) -> Result<Occupant, GitError> {
        if let Some((_, content)) = self.files.iter().rev().find(|(p, _)| p == path) {
            return Ok(if content.is_some() { Occupant::File } else { Occupant::Nothing });
        }
        let Some(parent) = self.parent else { return Ok(Occupant::Nothing) };
        let kind = |path: &str| self.reader.entry_at(parent, path).map(|e| e.map(|(kind, _)| kind));
        match kind(path)? {
            Some(EntryKind::Blob | EntryKind::BlobExecutable) => return Ok(Occupant::File),
            Some(other) => return Ok(Occupant::Other { path: path.to_string(), what: describe(other) }),
            None => {}
        }
        // A file (or link) where a directory of the path should be would be replaced by a tree.
        let mut ancestor = path;
        while let Some((dir, _)) = ancestor.rsplit_once('/') {
            match kind(dir)? {
                None => {}
                Some(EntryKind::Tree) => break,
                Some(other) => return Ok(Occupant::Other { path: dir.to_string(), what: describe(other) }),
            }
            ancestor = dir;
        }
        Ok(Occupant::Nothing)
    }

    /// How many files the directory `dir` (relative to the subdirectory) holds directly in the
    /// commit the next one is built on; 0 when it does not exist.
    pub fn files_in(&self, dir: &str) -> Result<usize, GitError> {
        match self.parent {
            Some(parent) => self.reader.files_in(parent, dir),
            None => Ok(0),
        }
    }

    /// The commit the next one will be built on.
    pub fn head(&self) -> Option<ObjectId> {
        self.parent
    }

    /// Writes the staged files as one commit on top of the previous one, and returns its id.
    pub fn commit(&mut self, message: &str, author: &Identity, time: i64) -> Result<ObjectId, GitError> {
        // Timed by the bench's `write-costs` (issue 15).
        let _cost = tracing::trace_span!(target: "gitbacked::cost", "commit").entered();
        let repo = &self.reader.repo;
        let base = match self.parent {
            Some(p) => repo.find_commit(p).map_err(objects)?.tree_id().map_err(objects)?.detach(),
            None => ObjectId::empty_tree(repo.object_hash()),
        };
        // Without gix's validation of every entry of every tree written: entries a person pushed
        // that git would not check out (`..`, `.git`) stay as they are, instead of failing every
        // write. The paths written here are gitbacked's own, of validated names.
        let mut editor = repo.edit_tree(base).map_err(objects)?.detach();
        for (path, content) in self.files.drain(..) {
            let full = in_subdir(&self.reader.subdir, &path);
            match content {
                Some(bytes) => {
                    let blob = repo.write_blob(&bytes).map_err(objects)?.detach();
                    editor.upsert(full.split('/'), EntryKind::Blob, blob).map_err(objects)?;
                }
                None => {
                    editor.remove(full.split('/')).map_err(objects)?;
                }
            }
        }
        let tree = editor.write(|tree| repo.write_object(tree).map(|id| id.detach())).map_err(objects)?;
        let id = if self.sign {
            self.signed_commit(tree, message, author, time)?
        } else {
            self.plain_commit(tree, message, author, time)?
        };
        self.parent = Some(id);
        Ok(id)
    }

    fn plain_commit(&self, tree: ObjectId, message: &str, author: &Identity, time: i64) -> Result<ObjectId, GitError> {
        let repo = &self.reader.repo;
        let signature = gix::actor::Signature {
            name: author.name.as_str().into(),
            email: author.email.as_str().into(),
            time: gix::date::Time { seconds: time, offset: 0 },
        };
        let commit = gix::objs::Commit {
            tree,
            parents: self.parent.into_iter().collect(),
            author: signature.clone(),
            committer: signature,
            encoding: None,
            message: format!("{message}\n").into(),
            extra_headers: Vec::new(),
        };
        Ok(repo.write_object(&commit).map_err(objects)?.detach())
    }

    /// The same commit, made and signed by git.
    fn signed_commit(&self, tree: ObjectId, message: &str, author: &Identity, time: i64) -> Result<ObjectId, GitError> {
        let date = format!("{time} +0000");
        let mut command = std::process::Command::new("git");
        command.arg("-C").arg(&self.dir).args(["commit-tree", "-S", "-m", message]).arg(tree.to_string());
        if let Some(parent) = self.parent {
            command.arg("-p").arg(parent.to_string());
        }
        for who in ["AUTHOR", "COMMITTER"] {
            command.env(format!("GIT_{who}_NAME"), &author.name).env(format!("GIT_{who}_EMAIL"), &author.email);
            command.env(format!("GIT_{who}_DATE"), &date);
        }
        let output = command
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| GitError::Command(format!("git commit-tree: {e}")))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(GitError::Command(format!("signing the commit failed: {}", stderr.trim())));
        }
        ObjectId::from_hex(String::from_utf8_lossy(&output.stdout).trim().as_bytes()).map_err(objects)
    }
}
