//! The parse cache: what each blob parsed to, kept in the cache directory so that a restart reads
//! the files it already knows without parsing them again. It is keyed by blob id (and whether the
//! file is JSON), so it can never be stale; a parser change is a new [`header`].
//!
//! One append-only file of records (see [`super::parsed`]). A record that is torn (a kill during a
//! write) or damaged fails its length or checksum: it and everything after it are dropped. The cache
//! never stops a sync: when it cannot be read or written, files are parsed as without it.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing::{debug, info, warn};

use super::parsed::{self, BlobKey};
use gitbacked_core::document;

/// The first bytes of the file: the format, and the versions of the parser that wrote it.
fn header() -> Vec<u8> {
    format!("gitbacked parse cache 1 {} {}\n", document::PARSE_VERSION, env!("CARGO_PKG_VERSION")).into_bytes()
}

/// The cache file's name in the cache directory.
pub(crate) const FILE_NAME: &str = "gitbacked-parse-cache";

/// The cached parse results loaded at start, for the initial sync.
#[derive(Default)]
pub(crate) struct Snapshot {
    /// The file as it was read, shared with the documents read from it until they are built (see
    /// the `ingest` module's `Json`).
    pub buffer: Arc<Vec<u8>>,
    /// Where each blob's record body is in `buffer`.
    pub index: HashMap<BlobKey, Range<usize>>,
}

/// A parse cache file and what this process knows of it.
pub(crate) struct ParseCache {
    path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    /// Dropped after the initial sync: later commits change few files.
    snapshot: Arc<Snapshot>,
    /// Blobs the file holds.
    stored: HashSet<BlobKey>,
    /// Blobs this process has read: what the next restart will look up.
    live: HashSet<BlobKey>,
}

impl ParseCache {
    /// Loads the cache file at `path`, dropping a damaged tail; a missing or unreadable file is an
    /// empty cache.
    pub fn open(path: PathBuf) -> Self {
        let snapshot = match load(&path) {
            Ok(snapshot) => snapshot,
            Err(e) => {
                warn!(cache = %path.display(), error = %e, "the parse cache cannot be read; parsing every file");
                Snapshot::default()
            }
        };
        let stored = snapshot.index.keys().copied().collect();
        let inner = Inner { snapshot: Arc::new(snapshot), stored, live: HashSet::new() };
        ParseCache { path, inner: Mutex::new(inner) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What was loaded at start (empty after the initial sync).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.lock().snapshot.clone()
    }

    /// Notes the blobs a commit read, and appends the records of those that were parsed (`chunks`
    /// hold the records of the blobs `parsed`, back to back).
    pub fn update(&self, read: impl IntoIterator<Item = BlobKey>, parsed: &[BlobKey], chunks: &[Vec<u8>]) {
        let mut inner = self.lock();
        inner.live.extend(read);
        if chunks.iter().all(Vec::is_empty) {
            return;
        }
        // Blobs already in the file (read again after the loaded file was freed, or under two paths)
        // are not written twice.
        let mut seen = HashSet::new();
        let new = parsed.iter().all(|k| !inner.stored.contains(k) && seen.insert(*k));
        let records: Vec<Cow<'_, [u8]>> = match new {
            true => chunks.iter().map(|c| Cow::Borrowed(&c[..])).collect(),
            false => vec![Cow::Owned(only_new(chunks, &inner.stored))],
        };
        let appended = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .and_then(|mut f| records.iter().try_for_each(|r| f.write_all(r)));
        match appended {
            Ok(()) => inner.stored.extend(parsed.iter().copied()),
            Err(e) => warn!(cache = %self.path.display(), error = %e, "cannot write the parse cache"),
        }
    }

    /// After the initial sync: frees what was loaded, and rewrites the file without the blobs this
    /// process did not read once they outnumber those it did (a rewritten history, another branch).
    pub fn finish_initial_sync(&self) {
        let mut inner = self.lock();
        inner.snapshot = Arc::new(Snapshot::default());
        let stale = inner.stored.iter().filter(|k| !inner.live.contains(k)).count();
        if stale <= inner.live.len() {
            return;
        }
        match compact(&self.path, &inner.live) {
            Ok(kept) => {
                info!(cache = %self.path.display(), dropped = stale, kept = kept.len(), "compacted the parse cache");
                inner.stored = kept;
            }
            Err(e) => warn!(cache = %self.path.display(), error = %e, "cannot compact the parse cache"),
        }
    }
}

/// Reads the file and indexes its valid records; leaves the file ready for appends: created with
/// its header when missing or of another version, cut after its last valid record when damaged.
fn load(path: &Path) -> std::io::Result<Snapshot> {
    let buffer = match std::fs::read(path) {
        Ok(buffer) => buffer,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let header = header();
    if !buffer.starts_with(&header) {
        if !buffer.is_empty() {
            info!(cache = %path.display(), "the parse cache is of another version; starting a new one");
        }
        File::create(path)?.write_all(&header)?;
        return Ok(Snapshot::default());
    }
    let mut index = HashMap::new();
    let valid = scan(&buffer, |key, body| {
        index.entry(key).or_insert(body);
    });
    if valid < buffer.len() {
        warn!(cache = %path.display(), ignored = buffer.len() - valid, "dropping a damaged tail of the parse cache");
        OpenOptions::new().write(true).open(path)?.set_len(valid as u64)?;
    }
    debug!(cache = %path.display(), blobs = index.len(), bytes = valid, "parse cache loaded");
    Ok(Snapshot { buffer: Arc::new(buffer), index })
}

/// Calls `found` for each valid record after the header; returns where the valid records end.
fn scan(buffer: &[u8], mut found: impl FnMut(BlobKey, Range<usize>)) -> usize {
    let mut at = header().len();
    while let Some((key, body)) = parsed::read_record(buffer, at) {
        at = body.end;
        found(key, body);
    }
    at
}

/// The records of blobs not in `stored`, each once.
fn only_new(chunks: &[Vec<u8>], stored: &HashSet<BlobKey>) -> Vec<u8> {
    let (mut out, mut seen) = (Vec::new(), HashSet::new());
    for records in chunks {
        let mut at = 0;
        while let Some((key, body)) = parsed::read_record(records, at) {
            if !stored.contains(&key) && seen.insert(key) {
                out.extend_from_slice(&records[at..body.end]);
            }
            at = body.end;
        }
    }
    out
}

/// Rewrites the file with one record for each blob of `keep`; returns the blobs it then holds.
fn compact(path: &Path, keep: &HashSet<BlobKey>) -> std::io::Result<HashSet<BlobKey>> {
    let buffer = std::fs::read(path)?;
    let mut out = header();
    let mut kept = HashSet::new();
    if buffer.starts_with(&out) {
        let mut start = out.len();
        scan(&buffer, |key, body| {
            if keep.contains(&key) && kept.insert(key) {
                out.extend_from_slice(&buffer[start..body.end]);
            }
            start = body.end;
        });
    }
    let tmp = path.with_extension("tmp");
    File::create(&tmp)?.write_all(&out)?;
    std::fs::rename(&tmp, path)?;
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use gix::ObjectId;

    use super::*;
    use gitbacked_core::document::parse_file;

    fn record(out: &mut Vec<u8>, n: u8) -> BlobKey {
        let key = (ObjectId::from_bytes_or_panic(&[n; 20]), false);
        let text = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{n}\n");
        parsed::write_record(out, key, &parse_file("c.yaml", text.as_bytes()));
        key
    }

    #[test]
    fn a_torn_tail_is_dropped_and_appends_follow_the_valid_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let cache = ParseCache::open(path.clone());
        let mut records = Vec::new();
        let keys = [record(&mut records, 1), record(&mut records, 2)];
        cache.update(keys, &keys, &[records]);
        // A kill in the middle of the second record.
        let len = std::fs::metadata(&path).unwrap().len();
        OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 3).unwrap();

        let cache = ParseCache::open(path.clone());
        let snapshot = cache.snapshot();
        assert_eq!(snapshot.index.keys().collect::<Vec<_>>(), [&keys[0]]);
        let view = parsed::decode(&snapshot.buffer[snapshot.index[&keys[0]].clone()]).unwrap();
        assert!(view.objects[0].json.contains("\"c1\""), "{view:?}");
        let mut more = Vec::new();
        let third = record(&mut more, 3);
        cache.update([third], &[third], &[more]);
        let index = ParseCache::open(path).snapshot().index.keys().copied().collect::<HashSet<_>>();
        assert_eq!(index, HashSet::from([keys[0], third]));
    }

    #[test]
    fn a_blob_is_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let cache = ParseCache::open(path.clone());
        let mut records = Vec::new();
        let one = record(&mut records, 1);
        cache.update([one], &[one], &[records]);
        let size = std::fs::metadata(&path).unwrap().len();
        // Parsed again by two threads, and a new one.
        let mut again = Vec::new();
        let keys = [record(&mut again, 1), record(&mut again, 1), record(&mut again, 2)];
        let mut third = Vec::new();
        let keys = [keys[0], keys[1], keys[2], record(&mut third, 2)];
        let grown_by = again.len() / 3;
        cache.update(keys, &keys, &[again, third]);
        let grown = std::fs::metadata(&path).unwrap().len() - size;
        assert_eq!(grown, grown_by as u64, "only the new blob is appended, once over two chunks");
        assert_eq!(ParseCache::open(path).snapshot().index.len(), 2);
    }

    #[test]
    fn garbage_and_other_versions_start_an_empty_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, b"gitbacked parse cache 0 old\n\x01\x02garbage").unwrap();
        assert!(ParseCache::open(path.clone()).snapshot().index.is_empty());
        assert_eq!(std::fs::read(&path).unwrap(), header());
    }

    #[test]
    fn compaction_keeps_the_blobs_read_since_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let cache = ParseCache::open(path.clone());
        let mut records = Vec::new();
        let keys: Vec<BlobKey> = (1..=5).map(|n| record(&mut records, n)).collect();
        cache.update(keys.clone(), &keys, &[records]);

        let cache = ParseCache::open(path.clone());
        cache.update([keys[4]], &[], &[]);
        cache.finish_initial_sync();
        assert!(cache.snapshot().index.is_empty(), "the loaded file is freed");
        let index = ParseCache::open(path).snapshot().index.keys().copied().collect::<Vec<_>>();
        assert_eq!(index, [keys[4]]);
    }
}
