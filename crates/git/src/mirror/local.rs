//! A remote that is a bare repository on this machine. Its tip is read without running git, and a
//! push is written straight into it when nothing would tell the difference from `git push`.
//!
//! A `git push` to a local path runs nine git processes and a connectivity check over the whole
//! tree, about 20 ms before the repository grows; a direct push copies the new loose objects into
//! the remote (never hard links: the mirror is a disposable cache) and moves the ref under git's own lock file with a compare-and-swap on the old
//! tip, as receive-pack does. It is used only when receive-pack would do nothing more (see
//! [`LocalRemote::needs_git`]): a bare repository with the files ref backend, none of the hooks
//! receive-pack runs and no `core.hooksPath`, no object checks, hidden refs, shared permissions,
//! explicit fsync settings or `receive.updateServerInfo`. Otherwise the push goes through
//! `git push`. Like receive-pack, it starts `git gc --auto` in the remote now and then (unless
//! `receive.autogc` is false).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use gix::ObjectId;
use gix::refs::transaction::PreviousValue;
use tracing::debug;

use super::remote::PushOutcome;
use super::{GitError, Mirror, RefUpdate, objects};

/// A direct push starts `git gc --auto` in the remote once in this many pushes; receive-pack does
/// after every push, but the check itself costs a process, and `gc --auto` does nothing until
/// thousands of loose objects pile up.
const GC_EVERY: u64 = 64;

/// A bare repository on this machine that the mirror's remote points at.
pub struct LocalRemote {
    dir: PathBuf,
    opened: std::sync::Mutex<Opened>,
    pushes: AtomicU64,
}

/// The remote as last opened, and the modification time of its config when it was.
struct Opened {
    repo: gix::ThreadSafeRepository,
    config_modified: Option<SystemTime>,
}

fn config_modified(dir: &Path) -> Option<SystemTime> {
    std::fs::metadata(dir.join("config")).and_then(|m| m.modified()).ok()
}

impl LocalRemote {
    /// Opens the repository at `dir`; `None` when it is not one.
    pub fn open(dir: &Path) -> Option<Self> {
        let config_modified = config_modified(dir);
        let repo = gix::open(dir).ok()?.into_sync();
        let opened = std::sync::Mutex::new(Opened { repo, config_modified });
        Some(LocalRemote { dir: dir.to_path_buf(), opened, pushes: AtomicU64::new(0) })
    }

    /// The repository, opened again when its config changed since (hooks and checks may have been
    /// turned on).
    fn repo(&self) -> Result<gix::Repository, GitError> {
        let mut opened = self.opened.lock().unwrap_or_else(|e| e.into_inner());
        let modified = config_modified(&self.dir);
        if modified != opened.config_modified {
            opened.repo = gix::open(&self.dir).map_err(objects)?.into_sync();
            opened.config_modified = modified;
        }
        Ok(opened.repo.to_thread_local())
    }

    /// The commit `reference` points at, `None` when it does not exist or cannot be read.
    pub fn tip(&self, reference: &str) -> Option<ObjectId> {
        let repo = self.repo().ok()?;
        let mut reference = repo.try_find_reference(reference).ok()??;
        reference.peel_to_id().ok().map(|id| id.detach())
    }

    /// Why a push must go through `git push`, `None` when a direct push does what receive-pack would.
    pub fn needs_git(&self) -> Option<String> {
        let repo = match self.repo() {
            Ok(repo) => repo,
            Err(e) => return Some(format!("cannot open it: {e}")),
        };
        if !repo.is_bare() {
            return Some("it is not bare".into());
        }
        let config = repo.config_snapshot();
        let set = |key: &str| config.string(key).is_some();
        let on = |key: &str| config.boolean(key).unwrap_or(false);
        if config.string("extensions.refStorage").is_some_and(|v| v.as_slice() != b"files") {
            return Some("it keeps refs in a reftable".into());
        }
        // `core.fsync`: whoever sets it wants git's own durability for what it receives.
        let settings =
            ["core.hooksPath", "receive.hideRefs", "transfer.hideRefs", "core.sharedRepository", "core.fsync"];
        for key in settings {
            if set(key) {
                return Some(format!("{key} is set"));
            }
        }
        for key in ["receive.fsckObjects", "transfer.fsckObjects", "receive.updateServerInfo", "core.fsyncObjectFiles"]
        {
            if on(key) {
                return Some(format!("{key} is on"));
            }
        }
        hook(&self.dir.join("hooks")).map(|name| format!("it has the hook {name}"))
    }

    /// Writes each update's commit into the remote and moves its reference from the commit's parent
    /// to it, all or none, failing (as [`PushOutcome::Rejected`]) when a reference points elsewhere
    /// or is being moved. Each commit must be a commit of the mirror whose only parent is the
    /// remote's tip as last fetched (or none when the reference does not exist yet). `None` when
    /// the push must go through `git push`.
    pub fn push(&self, mirror: &Mirror, updates: &[RefUpdate]) -> Result<Option<PushOutcome>, GitError> {
        if let Some(why) = self.needs_git() {
            debug!(remote = %self.dir.display(), why, "pushing with git");
            return Ok(None);
        }
        let reader = mirror.reader();
        let repo = self.repo()?;
        if repo.object_hash() != reader.object_hash() {
            return Ok(None);
        }
        let mut edits = Vec::with_capacity(updates.len());
        for RefUpdate { reference, commit } in updates {
            let Some(old) = reader.single_parent(*commit)? else {
                return Ok(None);
            };
            for id in reader.new_objects(old, *commit)? {
                self.copy(mirror, &reader, &repo, id)?;
            }
            let expected = match old {
                Some(old) => PreviousValue::MustExistAndMatch(gix::refs::Target::Object(old)),
                None => PreviousValue::MustNotExist,
            };
            edits.push((reference.as_str().try_into().map_err(objects)?, expected, *commit));
        }
        // Another writer holds a lock (it is moving a ref now) or moved a ref first.
        match super::update_refs(&repo, edits) {
            Ok(()) => {}
            Err(e) if e.is_conflict() || e.is_retryable() => return Ok(Some(PushOutcome::Rejected)),
            Err(e) => {
                let references: Vec<&str> = updates.iter().map(|u| u.reference.as_str()).collect();
                let references = references.join(", ");
                return Err(GitError::Command(format!("updating {references} in {}: {e}", self.dir.display())));
            }
        }
        if self.pushes.fetch_add(1, Ordering::Relaxed) % GC_EVERY == GC_EVERY - 1 {
            self.auto_gc(&repo);
        }
        Ok(Some(PushOutcome::Pushed))
    }

    /// Puts one object of the mirror into the remote: a copy of the mirror's loose object file,
    /// renamed into place so that no reader ever sees half an object, or the object written anew
    /// when the mirror holds it in a pack. Never a hard link: the mirror is a disposable cache, and
    /// truncating one of its files must not damage the remote's history.
    fn copy(
        &self,
        mirror: &Mirror,
        reader: &super::Reader,
        repo: &gix::Repository,
        id: ObjectId,
    ) -> Result<(), GitError> {
        let hex = id.to_hex().to_string();
        let relative = Path::new("objects").join(&hex[..2]).join(&hex[2..]);
        let (source, target) = (mirror.dir().join(&relative), self.dir.join(&relative));
        let io = |e: std::io::Error| GitError::Command(format!("writing object {hex} to {}: {e}", self.dir.display()));
        if !source.exists() {
            if !repo.has_object(id) {
                let (kind, data) = reader.raw_object(id)?;
                gix::objs::Write::write_buf(&repo.objects, kind, &data).map_err(objects)?;
            }
            return Ok(());
        }
        if target.exists() {
            return Ok(());
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let temporary = target.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::copy(&source, &temporary).map_err(io)?;
        std::fs::rename(&temporary, &target).map_err(io)
    }

    /// Starts `git gc --auto` in the remote, as receive-pack does after a push; it returns at once
    /// when there is nothing to pack and goes to the background when there is.
    fn auto_gc(&self, repo: &gix::Repository) {
        if !repo.config_snapshot().boolean("receive.autogc").unwrap_or(true) {
            return;
        }
        let child = std::process::Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(["gc", "--auto", "--quiet"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        match child {
            // Reaped on a thread of its own: the push does not wait for it.
            Ok(mut child) => drop(std::thread::spawn(move || child.wait())),
            Err(e) => debug!(error = %e, "git gc --auto could not start"),
        }
    }
}

/// The hooks receive-pack runs (`git help githooks`).
const RECEIVE_HOOKS: &[&str] =
    &["pre-receive", "update", "proc-receive", "reference-transaction", "post-receive", "post-update"];

/// The first hook in `dir` that receive-pack would run: an executable file of that name.
fn hook(dir: &Path) -> Option<&'static str> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |name: &str| {
        std::fs::metadata(dir.join(name)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    RECEIVE_HOOKS.iter().copied().find(|name| executable(name))
}
