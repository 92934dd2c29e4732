//! Snapshots of derived metadata: what a replay of the branch's history up to one commit derives,
//! written down so that a cold start need not replay that history.
//!
//! What the store serves of an object is its file plus metadata that comes from history (see the
//! module docs of [`super`]): the uid and creationTimestamp of the commit that created it, the
//! resourceVersion of the change that last touched it, a generation counting its spec's changes.
//! The objects a namespace implies carry the resourceVersion and time of the change that brought
//! them. A snapshot at commit X records all of it for every object in X's tree, with X's number on
//! the first-parent chain and the resourceVersion the store was at. Everything else (the claims of
//! files, documents waiting for their CRD, the types CRDs define, invalid files) is a function of X's
//! tree, and is rebuilt from it as an initial sync would: X's tree is applied as one commit with the
//! recorded metadata in place of what that commit would give ([`Store::restore`]).
//!
//! What a replay derives that a tree alone cannot give is checked, not trusted: after the rebuild,
//! every object must be the snapshot's, claimed by the same document. Where a replay keeps
//! something the tree does not show (objects of a file that stopped parsing are served as they last
//! were; a winner among documents claiming one key picked under an older schema), the rebuild
//! differs, the snapshot is not used and history is replayed. Writers do not write such snapshots.
//!
//! Format: `gitbacked snapshot 1 <parser version>\n`, then one record framed as the parse cache's
//! (see [`super::parsed`]): `[payload length: u64][CRC-32 of the payload: u32][payload]`. The
//! payload is the commit id (length-prefixed), its number, its committer time, the store's
//! resourceVersion, the subdirectory; then the objects in key order (group, kind, namespace, name,
//! path, document, item or `u32::MAX`, uid, creationTimestamp, resourceVersion, generation); then
//! the implied objects (group, kind, namespace, name, resourceVersion, time). Integers are little
//! endian, strings length-prefixed (u32) UTF-8. Anything that does not decode exactly (another
//! version, a flipped bit, a truncation, trailing bytes) is no snapshot.

use std::sync::Arc;

use gitbacked_core::object::{Derived, Location, ObjectKey};
use gitbacked_core::registry::{GroupKind, Home};
use gitbacked_core::uid::Uid;
use gix::ObjectId;
use tracing::warn;

use super::codec::{put_bytes, put_u32, take, take_bytes, take_str, take_u32, take_u64};
use super::{State, Store};
use crate::mirror::{CommitInfo, GitError, Mirror};

/// The first bytes of a snapshot: the format, and the parser whose reading of files it records (a
/// parser that reads documents differently would derive other objects).
fn header() -> Vec<u8> {
    format!("gitbacked snapshot 1 {}\n", gitbacked_core::document::PARSE_VERSION).into_bytes()
}

/// The derived metadata of one object at the snapshot's commit, and the document it was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    key: ObjectKey,
    location: Location,
    derived: Derived,
}

/// When an implied object appeared (see `gitbacked_core::bootstrap::Appeared`).
type Appeared = gitbacked_core::bootstrap::Appeared;

/// What a replay of the branch up to one commit derives (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The commit.
    pub commit: ObjectId,
    /// Its number on the first-parent chain (the root commit is 1).
    pub seq: u64,
    /// Its committer time, seconds since the epoch: how far back a shallow fetch must reach.
    pub time: i64,
    /// The store's resourceVersion at the commit.
    revision: u64,
    /// The subdirectory the objects were read from.
    subdir: String,
    /// In key order.
    objects: Vec<Record>,
    /// In key order.
    implied: Vec<(ObjectKey, Appeared)>,
}

impl Snapshot {
    /// The recorded metadata of an object.
    fn derived(&self, key: &ObjectKey) -> Option<&Record> {
        self.objects.binary_search_by(|r| r.key.cmp(key)).ok().map(|i| &self.objects[i])
    }

    /// How many objects it records.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether it records no object.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The snapshot as bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut p = Vec::new();
        put_bytes(&mut p, self.commit.as_bytes());
        p.extend_from_slice(&self.seq.to_le_bytes());
        p.extend_from_slice(&self.time.to_le_bytes());
        p.extend_from_slice(&self.revision.to_le_bytes());
        put_bytes(&mut p, self.subdir.as_bytes());
        put_u32(&mut p, self.objects.len() as u32);
        for Record { key, location, derived } in &self.objects {
            put_key(&mut p, key);
            put_bytes(&mut p, location.path.as_bytes());
            put_u32(&mut p, location.doc);
            put_u32(&mut p, location.item.unwrap_or(u32::MAX));
            p.extend_from_slice(derived.uid.as_bytes());
            p.extend_from_slice(&derived.creation_timestamp.to_le_bytes());
            p.extend_from_slice(&derived.resource_version.to_le_bytes());
            p.extend_from_slice(&derived.generation.to_le_bytes());
        }
        put_u32(&mut p, self.implied.len() as u32);
        for (key, (resource_version, time)) in &self.implied {
            put_key(&mut p, key);
            p.extend_from_slice(&resource_version.to_le_bytes());
            p.extend_from_slice(&time.to_le_bytes());
        }
        let mut out = header();
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&p).to_le_bytes());
        out.extend_from_slice(&p);
        out
    }

    /// Reads a snapshot of the objects of `subdir`; `None` for anything else (see the module docs).
    pub fn decode(bytes: &[u8], subdir: &str) -> Option<Snapshot> {
        let mut input = bytes.strip_prefix(header().as_slice())?;
        let len = usize::try_from(u64::from_le_bytes(take(&mut input, 8)?.try_into().ok()?)).ok()?;
        let crc = take_u32(&mut input)?;
        if input.len() != len || crc32fast::hash(input) != crc {
            return None;
        }
        let input = &mut input;
        let commit = ObjectId::try_from(take_bytes(input)?).ok()?;
        let (seq, time, revision) = (take_u64(input)?, take_u64(input)? as i64, take_u64(input)?);
        if take_str(input)? != subdir {
            return None;
        }
        // Counts are checked against what is left, so that a damaged count allocates nothing.
        let count = |input: &mut &[u8], least: usize| take_u32(input).filter(|&n| n as usize <= input.len() / least);
        let objects = (0..count(input, 4 * 5 + 8 + 36 + 24)?)
            .map(|_| {
                let key = take_key(input)?;
                let path: Arc<str> = Arc::from(take_str(input)?);
                let doc = take_u32(input)?;
                let item = Some(take_u32(input)?).filter(|&i| i != u32::MAX);
                let uid = Uid::parse(std::str::from_utf8(take(input, 36)?).ok()?)?;
                let creation_timestamp = take_u64(input)? as i64;
                let resource_version = take_u64(input)?;
                let generation = take_u64(input)? as i64;
                let derived = Derived { resource_version, uid, creation_timestamp, generation };
                Some(Record { key, location: Location { path, doc, item }, derived })
            })
            .collect::<Option<Vec<_>>>()?;
        let implied = (0..count(input, 4 * 4 + 16)?)
            .map(|_| Some((take_key(input)?, (take_u64(input)?, take_u64(input)? as i64))))
            .collect::<Option<Vec<_>>>()?;
        let sorted = objects.windows(2).all(|w| w[0].key < w[1].key) && implied.windows(2).all(|w| w[0].0 < w[1].0);
        (input.is_empty() && sorted).then(|| Snapshot {
            commit,
            seq,
            time,
            revision,
            subdir: subdir.to_string(),
            objects,
            implied,
        })
    }
}

impl Store {
    /// The snapshot of this store at its tip (whose committer time is `time`), when what it derived
    /// is what a replay of the branch derives: not when steps of the status ref were numbered in
    /// between (their numbers are this process's, see [`super::clock_step`]), nor when an object is
    /// served from a file that no longer parses (the tree cannot give it back).
    pub(crate) fn snapshot(&self, time: i64, subdir: &str) -> Option<Snapshot> {
        let state = self.read();
        if state.home != Home::Branch || state.overlays.tip.is_some() {
            return None;
        }
        let commit = state.tip?;
        let mut objects = Vec::with_capacity(state.objects.values().map(|o| o.len()).sum());
        for entry in state.objects.values().flat_map(|o| o.values()) {
            let object = &entry.object;
            let location = object.location.clone().filter(|l| !state.invalid.contains_key(&l.path))?;
            objects.push(Record { key: object.key.clone(), location, derived: object.derived.clone() });
        }
        objects.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        let implied =
            state.implied.iter().map(|(k, o)| (k.clone(), (o.derived.resource_version, o.derived.creation_timestamp)));
        Some(Snapshot {
            commit,
            seq: state.seq,
            time,
            revision: state.log.revision(),
            subdir: subdir.to_string(),
            objects,
            implied: implied.collect(),
        })
    }

    /// Brings an empty store to the snapshot's commit (`info`) without replaying its history: its
    /// tree is read as an initial sync reads it, its objects take the recorded metadata, and the
    /// result is checked against the snapshot (see the module docs). Returns whether it matched;
    /// when it did not, the store is left as it was. Watches from before the commit get 410 Gone.
    pub(crate) fn restore(&self, mirror: &Mirror, snapshot: Snapshot, info: CommitInfo) -> Result<bool, GitError> {
        let commit = self.read_commit(mirror, info, snapshot.seq, None)?;
        let successor = self.successor();
        let snapshot = Arc::new(snapshot);
        let matched = {
            let mut state = successor.write();
            state.restoring = Some(snapshot.clone());
            state.apply_commit(mirror, commit, None);
            state.restoring = None;
            state.restored(&snapshot)
        };
        if matched {
            self.replace_with(successor);
        }
        Ok(matched)
    }
}

impl State {
    /// The metadata the snapshot being restored records for `key`, if one is.
    pub(super) fn restored_derived(&self, key: &ObjectKey) -> Option<Derived> {
        Some(self.restoring.as_ref()?.derived(key)?.derived.clone())
    }

    /// After a snapshot's commit was applied: whether the objects are the snapshot's; if so, the
    /// implied objects take their recorded metadata and the store its recorded resourceVersion.
    fn restored(&mut self, snapshot: &Snapshot) -> bool {
        let objects: usize = self.objects.values().map(|o| o.len()).sum();
        let same = |r: &Record| self.entry(&r.key).is_some_and(|e| e.object.location.as_ref() == Some(&r.location));
        let mismatch = match snapshot.objects.iter().find(|r| !same(r)) {
            Some(r) => Some(format!("{} is not as recorded", r.key)),
            None if objects != snapshot.objects.len() => {
                Some(format!("the tree holds {objects} objects, the snapshot {}", snapshot.objects.len()))
            }
            None if !self.implied.keys().eq(snapshot.implied.iter().map(|(k, _)| k)) => {
                Some("the implied objects differ".into())
            }
            None => None,
        };
        if let Some(why) = mismatch {
            warn!(commit = %snapshot.commit, %why, "the snapshot does not match its commit's tree; replaying history");
            return false;
        }
        for (key, appeared) in &snapshot.implied {
            self.implied.insert(key.clone(), Arc::new(super::implied::implied_object(key, *appeared)));
        }
        // The events of the rebuild are not history's (the implied objects' were numbered after
        // every object of the tree): the log starts at the recorded resourceVersion, empty.
        self.log = gitbacked_core::watch::WatchLog::new(self.log.capacity());
        self.log.advance_to(snapshot.revision);
        true
    }
}

fn put_key(out: &mut Vec<u8>, key: &ObjectKey) {
    for part in [key.gk.group.as_str(), key.gk.kind.as_str(), &key.namespace, key.name.as_str()] {
        put_bytes(out, part.as_bytes());
    }
}

fn take_key(input: &mut &[u8]) -> Option<ObjectKey> {
    let (group, kind) = (take_str(input)?.to_string(), take_str(input)?.to_string());
    Some(ObjectKey::new(GroupKind { group, kind }, take_str(input)?, take_str(input)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        let gk = |group: &str, kind: &str| GroupKind { group: group.into(), kind: kind.into() };
        let record = |name: &str, rv: u64| Record {
            key: ObjectKey::new(gk("", "ConfigMap"), "default", name),
            location: Location { path: Arc::from(format!("default/{name}.yaml")), doc: 0, item: None },
            derived: Derived {
                resource_version: rv,
                uid: gitbacked_core::uid::stable_uid(name),
                creation_timestamp: 1_700_000_000,
                generation: 1,
            },
        };
        let mut listed = record("b", 3_000_002);
        listed.location.item = Some(2);
        listed.location.doc = 1;
        Snapshot {
            commit: ObjectId::from_bytes_or_panic(&[7; 20]),
            seq: 4,
            time: 1_700_000_003,
            revision: 4_000_001,
            subdir: "clusters/dev".into(),
            objects: vec![record("a", 2_000_001), listed],
            implied: vec![(ObjectKey::new(gk("", "Namespace"), "", "default"), (2_000_002, 1_700_000_001))],
        }
    }

    #[test]
    fn a_snapshot_round_trips_and_damage_or_another_subdirectory_is_no_snapshot() {
        let snapshot = sample();
        let bytes = snapshot.encode();
        assert_eq!(Snapshot::decode(&bytes, "clusters/dev"), Some(snapshot));
        assert_eq!(Snapshot::decode(&bytes, ""), None, "another subdirectory's");
        for len in 0..bytes.len() {
            assert_eq!(Snapshot::decode(&bytes[..len], "clusters/dev"), None, "truncated to {len}");
        }
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            assert_eq!(Snapshot::decode(&flipped, "clusters/dev"), None, "a flipped bit at {at}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Snapshot::decode(&longer, "clusters/dev"), None, "trailing bytes");
        assert_eq!(Snapshot::decode(b"garbage", "clusters/dev"), None);
    }

    #[test]
    fn a_well_framed_snapshot_with_a_lying_count_or_order_is_no_snapshot() {
        // Framed with a valid checksum, but its count claims more objects than there are bytes.
        let frame = |payload: &[u8]| {
            let mut out = header();
            out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
            out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
            out.extend_from_slice(payload);
            out
        };
        // After the header, the payload's length (8 bytes) and checksum (4).
        let payload = sample().encode()[header().len() + 12..].to_vec();
        let counts_at = 4 + 20 + 24 + 4 + "clusters/dev".len();
        let mut lying = payload.clone();
        lying[counts_at..counts_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Snapshot::decode(&frame(&lying), "clusters/dev"), None);

        let mut unsorted = sample();
        unsorted.objects.reverse();
        assert_eq!(Snapshot::decode(&unsorted.encode(), "clusters/dev"), None, "objects out of key order");
    }
}
