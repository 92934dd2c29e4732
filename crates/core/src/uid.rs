//! Identifiers: stable uids derived from history, and random bits for generated names.

/// A stable UUID-shaped id from a string: the hex of git's blob hash of it, so that every process
/// derives the same uid from the same history.
pub fn stable_uid(seed: &str) -> Uid {
    use std::io::Write;
    let mut hasher = gix_hash::hasher(gix_hash::Kind::Sha1);
    // Written on the stack: an initial sync derives a uid for each of a repository's objects.
    let mut header = std::io::Cursor::new([0u8; 32]);
    write!(header, "blob {}\0", seed.len()).unwrap_or_else(|e| unreachable!("a length fits in 32 bytes: {e}"));
    let written = header.position() as usize;
    hasher.update(&header.get_ref()[..written]);
    hasher.update(seed.as_bytes());
    let id = hasher.try_finalize().unwrap_or_else(|e| unreachable!("hashing in memory cannot collide: {e}"));
    let mut hex = [0u8; 40];
    let hex = id.hex_to_buf(&mut hex).as_bytes();
    // UUID-shaped, version 5: 8-4-4-4-12 digits, the third group starting with `5`.
    let mut uid = [b'-'; 36];
    uid[0..8].copy_from_slice(&hex[0..8]);
    uid[9..13].copy_from_slice(&hex[8..12]);
    uid[14] = b'5';
    uid[15..18].copy_from_slice(&hex[13..16]);
    uid[19..23].copy_from_slice(&hex[16..20]);
    uid[24..36].copy_from_slice(&hex[20..32]);
    Uid(uid)
}

/// An object's uid: the 36 characters of a UUID, kept inline rather than as a string of its own,
/// as every stored object carries one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uid([u8; 36]);

impl Uid {
    /// The uid as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// A uid written down as text (by [`Uid::as_str`]): 36 hex digits and dashes, else `None`.
    pub fn parse(text: &str) -> Option<Uid> {
        let bytes: [u8; 36] = text.as_bytes().try_into().ok()?;
        bytes.iter().all(|b| b.is_ascii_hexdigit() || *b == b'-').then_some(Uid(bytes))
    }
}

impl std::ops::Deref for Uid {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for Uid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Uid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl serde::Serialize for Uid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl PartialEq<str> for Uid {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Uid {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Uid {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Uid> for String {
    fn eq(&self, other: &Uid) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Uid> for &str {
    fn eq(&self, other: &Uid) -> bool {
        *self == other.as_str()
    }
}

/// 64 random bits (std's per-process random hash keys, mixed with the clock): for names and delays,
/// not for secrets.
pub fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_stable_and_distinct() {
        assert_eq!(stable_uid("a"), stable_uid("a"));
        assert_ne!(stable_uid("a"), stable_uid("b"));
        assert_eq!(stable_uid("a").len(), 36);
        // `git hash-object` of "a" (no newline) is 2e65efe2a145dda7ee51d1741299f848e5bf752e: uids
        // written before the move to gix-hash stay the same.
        assert_eq!(stable_uid("a"), "2e65efe2-a145-5da7-ee51-d1741299f848");
        assert_eq!(stable_uid("a").to_string(), "2e65efe2-a145-5da7-ee51-d1741299f848");
    }

    #[test]
    fn a_uid_parses_back_from_its_text_and_nothing_else_does() {
        let uid = stable_uid("a");
        assert_eq!(Uid::parse(uid.as_str()), Some(uid));
        assert_eq!(Uid::parse("2e65efe2-a145-5da7-ee51-d1741299f84"), None, "35 characters");
        assert_eq!(Uid::parse("2e65efe2-a145-5da7-ee51-d1741299f8\u{e9}"), None, "not ASCII");
        assert_eq!(Uid::parse("2e65efe2-a145-5da7-ee51-d1741299f84z"), None, "not hex");
    }
}
