//! Map entries in key order, as Go writes them. Go's protobuf code sorts the entries of every map
//! it marshals, so kube-apiserver answers the same bytes for the same object; prost-reflect keeps
//! a map in a `HashMap` and writes it in that map's order, which changes from one answer to the
//! next. Sorting the encoded entries in place changes no length, so it is done on the bytes.

use std::ops::Range;

use prost_reflect::{Kind, MessageDescriptor};

/// Puts the entries of every map of an encoded `descriptor` message, and of the messages in it,
/// in key order. Bytes that do not parse as the message are left as they are from there on.
pub(super) fn sort_entries(descriptor: &MessageDescriptor, bytes: &mut [u8]) {
    // Nothing to report: the bytes were just encoded from the message.
    let _ = sort_in(descriptor, bytes);
}

fn sort_in(descriptor: &MessageDescriptor, bytes: &mut [u8]) -> Option<()> {
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        let (number, Wire::Bytes(body)) = field(bytes, &mut at)? else { continue };
        let Some(field) = descriptor.get_field(number) else { continue };
        let Kind::Message(inner) = field.kind() else { continue };
        if field.is_map() {
            // The entries of one map are written one after the other: the run starts here.
            at = sort_run(&inner, bytes, start, number)?;
        } else {
            sort_in(&inner, &mut bytes[body])?;
        }
    }
    Some(())
}

/// Sorts the run of map entries of field `number` that starts at `start`, each entry's own maps
/// first; returns where the run ends.
fn sort_run(entry: &MessageDescriptor, bytes: &mut [u8], start: usize, number: u32) -> Option<usize> {
    let mut entries: Vec<(Key, Range<usize>)> = Vec::new();
    let mut at = start;
    while at < bytes.len() {
        let mut next = at;
        let (n, Wire::Bytes(body)) = field(bytes, &mut next)? else { break };
        if n != number {
            break;
        }
        sort_in(entry, &mut bytes[body.clone()])?;
        entries.push((key(&bytes[body])?, at..next));
        at = next;
    }
    let run = bytes[start..at].to_vec();
    entries.sort_by(|(a, _), (b, _)| a.cmp(b));
    let mut to = start;
    for (_, entry) in entries {
        let len = entry.len();
        bytes[to..to + len].copy_from_slice(&run[entry.start - start..entry.end - start]);
        to += len;
    }
    Some(at)
}

/// A map entry's key as Go orders it: strings byte by byte, integers by value. An absent key is
/// the default one; Kubernetes has no maps with fixed-size keys.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Integer(i64),
    Text(Vec<u8>),
}

fn key(entry: &[u8]) -> Option<Key> {
    let mut at = 0;
    while at < entry.len() {
        match field(entry, &mut at)? {
            // Two's complement, as int32 and int64 keys are written.
            (1, Wire::Varint(value)) => return Some(Key::Integer(value as i64)),
            (1, Wire::Bytes(body)) => return Some(Key::Text(entry[body].to_vec())),
            _ => {}
        }
    }
    Some(Key::Text(Vec::new()))
}

/// What a field holds, as far as sorting needs to know.
enum Wire {
    Varint(u64),
    Fixed,
    Bytes(Range<usize>),
}

/// Reads the field at `at` and moves past it: its number and value.
fn field(bytes: &[u8], at: &mut usize) -> Option<(u32, Wire)> {
    /// Wire types: varint, 64-bit, length-delimited, 32-bit.
    const VARINT: u64 = 0;
    const FIXED64: u64 = 1;
    const LEN: u64 = 2;
    const FIXED32: u64 = 5;
    let tag = varint(bytes, at)?;
    let number = u32::try_from(tag >> 3).ok()?;
    let wire = match tag & 7 {
        VARINT => Wire::Varint(varint(bytes, at)?),
        FIXED64 | FIXED32 => {
            *at = at.checked_add(if tag & 7 == FIXED64 { 8 } else { 4 })?;
            Wire::Fixed
        }
        LEN => {
            let len = usize::try_from(varint(bytes, at)?).ok()?;
            let body = *at..at.checked_add(len)?;
            *at = body.end;
            Wire::Bytes(body)
        }
        _ => return None,
    };
    (*at <= bytes.len()).then_some((number, wire))
}

fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut rest = bytes.get(*at..)?;
    let before = rest.len();
    let value = prost::encoding::decode_varint(&mut rest).ok()?;
    *at += before - rest.len();
    Some(value)
}
