//! Parsed files in the compact form the store keeps until it applies a commit, and the parse cache
//! keeps across restarts: each file is one record in a large buffer, holding its objects as compact
//! JSON text. A `serde_json::Value` takes ten times the memory of its JSON, and many small
//! allocations made by the parsing threads would stay resident long after they are freed.
//!
//! A record is `[payload length: u32][CRC-32 of the payload: u32][payload]`, and the payload is
//! `[blob id length: u8][blob id][JSON file: u8][body]`. The body holds the objects (document index,
//! item index or `u32::MAX`, the document's first line, JSON text) and then the errors (line,
//! message); integers are little endian and strings are length-prefixed UTF-8.

use std::ops::Range;

use gix::ObjectId;

use super::codec::{put_u32, take, take_str, take_u32};
use gitbacked_core::document::{DocumentError, ParsedFile};

/// What a parse result depends on: the blob, and whether the file is read as JSON or YAML.
pub(crate) type BlobKey = (ObjectId, bool);

/// Bytes before a record's payload: its length and its checksum.
const FRAME: usize = 8;

/// One object of a file, as compact JSON text borrowed from a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ObjectRef<'a> {
    /// Index of the YAML document in the file.
    pub doc: u32,
    /// Index inside the `items` of a `kind: List` document.
    pub item: Option<u32>,
    /// The line the document starts on.
    pub line: u32,
    /// The object as written, serialized as compact JSON.
    pub json: &'a str,
}

/// What a file holds: its objects as JSON text, and the documents that could not be parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FileView<'a> {
    /// Documents that are objects, in file order.
    pub objects: Vec<ObjectRef<'a>>,
    /// Documents that failed to parse.
    pub errors: Vec<DocumentError>,
}

/// Appends the record of a parsed file; returns the range of its body in `out`.
pub(crate) fn write_record(out: &mut Vec<u8>, key: BlobKey, file: &ParsedFile) -> Range<usize> {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME]);
    let id = key.0.as_bytes();
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out.push(u8::from(key.1));
    let body = out.len();
    put_u32(out, file.objects.len() as u32);
    for o in &file.objects {
        put_u32(out, o.doc);
        put_u32(out, o.item.unwrap_or(u32::MAX));
        put_u32(out, o.line);
        let at = out.len();
        put_u32(out, 0);
        serde_json::to_writer(&mut *out, &o.value).unwrap_or_else(|e| unreachable!("JSON values serialize: {e}"));
        let len = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
    put_u32(out, file.errors.len() as u32);
    for e in &file.errors {
        out.extend_from_slice(&e.line.to_le_bytes());
        put_u32(out, e.message.len() as u32);
        out.extend_from_slice(e.message.as_bytes());
    }
    let payload = &out[start + FRAME..];
    let frame = [(payload.len() as u32).to_le_bytes(), crc32fast::hash(payload).to_le_bytes()].concat();
    out[start..start + FRAME].copy_from_slice(&frame);
    body..out.len()
}

/// Reads the record at offset `at` of `input`: its key and the range of its body, which ends where
/// the next record starts. `None` when the record is truncated or its checksum does not match.
pub(crate) fn read_record(input: &[u8], at: usize) -> Option<(BlobKey, Range<usize>)> {
    let mut frame = input.get(at..)?;
    let len = take_u32(&mut frame)? as usize;
    let crc = take_u32(&mut frame)?;
    let payload = frame.get(..len)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let mut p = payload;
    let id_len = *take(&mut p, 1)?.first()? as usize;
    let id = ObjectId::try_from(take(&mut p, id_len)?).ok()?;
    let json = *take(&mut p, 1)?.first()? != 0;
    let body = at + FRAME + (payload.len() - p.len());
    Some(((id, json), body..at + FRAME + len))
}

/// Reads a record body written by [`write_record`]; `None` when it is malformed.
pub(crate) fn decode(mut bytes: &[u8]) -> Option<FileView<'_>> {
    let input = &mut bytes;
    let objects = (0..take_u32(input)?)
        .map(|_| {
            let doc = take_u32(input)?;
            let item = Some(take_u32(input)?).filter(|&i| i != u32::MAX);
            let line = take_u32(input)?;
            Some(ObjectRef { doc, item, line, json: take_str(input)? })
        })
        .collect::<Option<Vec<_>>>()?;
    let errors = (0..take_u32(input)?)
        .map(|_| {
            let line = u64::from_le_bytes(take(input, 8)?.try_into().ok()?);
            Some(DocumentError { line, message: take_str(input)?.to_string() })
        })
        .collect::<Option<Vec<_>>>()?;
    input.is_empty().then_some(FileView { objects, errors })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitbacked_core::document::parse_file;

    #[test]
    fn records_round_trip_and_reject_damage() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: s}}\n---\nkey: [\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: \"é\"}\n";
        let file = parse_file("a.yaml", text.as_bytes());
        let key = (ObjectId::empty_blob(gix::hash::Kind::Sha1), false);
        let mut bytes = b"head".to_vec();
        let body = write_record(&mut bytes, key, &file);
        assert_eq!(read_record(&bytes, 4), Some((key, body.clone())));
        let view = decode(&bytes[body]).unwrap();
        assert_eq!(view.errors, file.errors);
        let objects: Vec<_> = view.objects.iter().map(|o| (o.doc, o.item, o.json.to_string())).collect();
        let expected: Vec<_> = file.objects.iter().map(|o| (o.doc, o.item, o.value.to_string())).collect();
        assert_eq!(objects, expected);
        for len in 4..bytes.len() {
            assert_eq!(read_record(&bytes[..len], 4), None, "truncated to {len}");
        }
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(read_record(&bytes, 4), None, "a flipped bit");
    }
}
