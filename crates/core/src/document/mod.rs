//! Files as sequences of documents: parsing with line numbers, and rewriting one document while
//! leaving its neighbours byte-for-byte untouched, and the document itself as the person wrote it
//! but for the values that changed ([`edit`]).

mod edit;

use std::borrow::Cow;

use serde_json::Value;

use edit::Syntax;

/// One object found in a file.
#[derive(Clone, Debug, PartialEq)]
pub struct FoundObject {
    /// Index of the YAML document in the file (0 for JSON files).
    pub doc: u32,
    /// Index inside the `items` of a `kind: List` document.
    pub item: Option<u32>,
    /// The line the document starts on (from 1).
    pub line: u32,
    /// The object as written.
    pub value: Value,
}

/// A document that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentError {
    /// 1-based line where the problem is.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

/// What a file holds: its objects, and the documents that could not be parsed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParsedFile {
    /// Documents that are objects (apiVersion, kind and metadata.name), in file order.
    pub objects: Vec<FoundObject>,
    /// Documents that failed to parse; they are skipped.
    pub errors: Vec<DocumentError>,
}

/// The version of what [`parse_file`] returns for given bytes. The parse cache keeps results across
/// restarts under it: bump it whenever a change of this module or an upgrade of serde-saphyr may
/// change the result for some file.
pub const PARSE_VERSION: u32 = 3;

/// Whether the file is JSON (one document) rather than YAML.
pub fn is_json(path: &str) -> bool {
    path.ends_with(".json")
}

/// A document's byte range in the file, and the line it starts on.
struct Chunk {
    start: usize,
    end: usize,
    first_line: u64,
}

/// Splits a YAML file into documents at `---` and `...` marker lines. Every chunk counts, even an
/// empty one, so that a document's index is stable for rewriting. It works on bytes (the markers are
/// ASCII), so that a document that is not UTF-8 spoils only itself.
fn chunks(text: &[u8]) -> Vec<Chunk> {
    let mut out = Vec::new();
    let (mut start, mut first_line, mut offset, mut line_no) = (0usize, 1u64, 0usize, 0u64);
    let mut seen_content = false;
    while offset < text.len() {
        let end = memchr::memchr(b'\n', &text[offset..]).map_or(text.len(), |i| offset + i + 1);
        let line = &text[offset..end];
        line_no += 1;
        // Only a line starting with `-` or `.` may be a marker, and once a document has content,
        // more content changes nothing: most lines of a large file need no closer look.
        if seen_content && !matches!(line[0], b'-' | b'.') {
            offset = end;
            continue;
        }
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        let is_marker =
            |m: &[u8]| bare.strip_prefix(m).is_some_and(|rest| rest.is_empty() || rest[0] == b' ' || rest[0] == b'\t');
        if is_marker(b"---") {
            // A leading `---` before any content does not end an (empty) document.
            if seen_content || !out.is_empty() {
                out.push(Chunk { start, end: offset, first_line });
            }
            // Content on the marker line (`--- {a: 1}`) belongs to the next document.
            start = offset + 3;
            first_line = line_no;
            seen_content = true;
        } else if is_marker(b"...") {
            out.push(Chunk { start, end: offset, first_line });
            start = end;
            first_line = line_no + 1;
            seen_content = false;
        } else if !bare.trim_ascii().is_empty() && !bare.trim_ascii_start().starts_with(b"#") {
            seen_content = true;
        }
        offset = end;
    }
    if seen_content || out.is_empty() || start < text.len() {
        out.push(Chunk { start, end: text.len(), first_line });
    }
    out
}

fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    // Kubernetes (YAML 1.1) reads `0644` as octal 420: file modes in Secrets and ConfigMap volumes.
    options.legacy_octal_numbers = true;
    options.budget = Some(crate::limits::yaml_budget());
    options
}

/// Parses one YAML document to JSON.
pub fn parse_yaml(text: &str) -> Result<Value, DocumentError> {
    serde_saphyr::from_str_with_options::<Value>(text, yaml_options()).map_err(|e| DocumentError {
        line: e.location().map(|l| l.line()).unwrap_or(1),
        message: e.to_string().lines().next().unwrap_or_default().to_string(),
    })
}

/// Serializes an object as a YAML document (ending in a newline).
pub fn to_yaml(value: &Value) -> String {
    let mut text = serde_saphyr::to_string(value).unwrap_or_else(|e| unreachable!("JSON values serialize: {e}"));
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// Serializes an object as a JSON file.
pub fn to_json(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|e| unreachable!("JSON values serialize: {e}"));
    text.push('\n');
    text
}

/// Whether a document is an object: a mapping with apiVersion, kind and metadata.name.
pub fn is_object(value: &Value) -> bool {
    value.get("apiVersion").is_some_and(Value::is_string)
        && value.get("kind").is_some_and(Value::is_string)
        && value.pointer("/metadata/name").is_some_and(Value::is_string)
}

/// Whether a document is a list of objects (`kind: List` and friends).
fn list_items(value: &Value) -> Option<&Vec<Value>> {
    let kind = value.get("kind")?.as_str()?;
    if !kind.ends_with("List") {
        return None;
    }
    value.get("items")?.as_array()
}

/// Maps whose values Kubernetes reads as strings: YAML like `replicas: 3` or `enabled: true` there
/// is a mistake kube-apiserver would reject, and typed clients fail on the whole list it is in.
fn string_maps(value: &Value) -> Vec<&'static str> {
    let mut maps = vec!["/metadata/labels", "/metadata/annotations"];
    match (value.get("apiVersion").and_then(Value::as_str), value.get("kind").and_then(Value::as_str)) {
        (Some("v1"), Some("ConfigMap")) => maps.extend(["/data", "/binaryData"]),
        (Some("v1"), Some("Secret")) => maps.extend(["/data", "/stringData"]),
        _ => {}
    }
    maps
}

/// Why an object cannot be served as written, if it cannot.
fn shape_error(value: &Value) -> Option<String> {
    for map in string_maps(value) {
        let Some(entries) = value.pointer(map).and_then(Value::as_object) else { continue };
        if let Some((key, v)) = entries.iter().find(|(_, v)| !v.is_string()) {
            let field = map.trim_start_matches('/').replace('/', ".");
            return Some(format!("{field}.{key} must be a string, not {v} (quote it)"));
        }
    }
    None
}

/// Adds the objects of a document (several for a `kind: List`); reports those of the wrong shape.
fn collect(doc: u32, line: u64, value: Value, parsed: &mut ParsedFile) {
    let mut add = |item: Option<u32>, object: Value| match shape_error(&object) {
        None => {
            parsed.objects.push(FoundObject { doc, item, line: u32::try_from(line).unwrap_or(u32::MAX), value: object })
        }
        Some(message) => parsed.errors.push(DocumentError { line, message }),
    };
    if let Some(items) = list_items(&value) {
        for (i, item) in items.iter().enumerate().filter(|(_, item)| is_object(item)) {
            add(Some(i as u32), item.clone());
        }
    } else if is_object(&value) {
        add(None, value);
    }
}

/// Reads every object in a file. A broken document (one that does not parse, or is not UTF-8) is
/// reported and skipped; the others are kept.
pub fn parse_file(path: &str, bytes: &[u8]) -> ParsedFile {
    let mut parsed = ParsedFile::default();
    if is_json(path) {
        let Ok(text) = std::str::from_utf8(bytes) else {
            parsed.errors.push(not_utf8(bytes, 1));
            return parsed;
        };
        match serde_json::from_str::<Value>(text) {
            Ok(value) => collect(0, 1, value, &mut parsed),
            Err(e) => parsed.errors.push(DocumentError { line: e.line() as u64, message: e.to_string() }),
        }
        return parsed;
    }
    for (i, chunk) in chunks(bytes).iter().enumerate() {
        parse_chunk(i as u32, chunk, bytes, parse_yaml, &mut parsed);
    }
    parsed
}

/// Reads document `doc` of a file alone: what [`parse_file`] finds in that document, as it finds
/// it (the same indices and lines), without parsing the others. A JSON file is document 0.
pub fn parse_document(path: &str, bytes: &[u8], doc: u32) -> ParsedFile {
    if is_json(path) {
        return if doc == 0 { parse_file(path, bytes) } else { ParsedFile::default() };
    }
    let mut parsed = ParsedFile::default();
    if let Some(chunk) = chunks(bytes).get(doc as usize) {
        parse_chunk(doc, chunk, bytes, parse_recent, &mut parsed);
    }
    parsed
}

/// How many documents a file has, as [`parse_file`] counts them (a JSON file has one).
pub fn document_count(path: &str, bytes: &[u8]) -> usize {
    if is_json(path) { 1 } else { chunks(bytes).len() }
}

/// The only document in which two versions of a YAML file differ, when everything else (the
/// other documents, and the markers between them) is the same byte for byte; `None` otherwise,
/// and for JSON files. Then [`parse_document`] of the new version reads all that changed.
pub fn changed_document(path: &str, old: &[u8], new: &[u8]) -> Option<u32> {
    if is_json(path) {
        return None;
    }
    let (before, after) = (chunks(old), chunks(new));
    if before.len() != after.len() {
        return None;
    }
    let doc = before.iter().zip(&after).position(|(b, a)| old[b.start..b.end] != new[a.start..a.end])?;
    let (b, a) = (&before[doc], &after[doc]);
    (old[..b.start] == new[..a.start] && old[b.end..] == new[a.end..]).then_some(doc as u32)
}

/// [`parse_yaml`], remembering the last documents parsed on this thread with it. A write reads
/// the document it changes twice (to find it, to edit it) and its edit twice (the editor's check,
/// the read-back), one after the other; a parse costs many times a copy of its result.
fn parse_recent(text: &str) -> Result<Value, DocumentError> {
    /// The documents kept: the one being written and its edit.
    const KEPT: usize = 2;
    /// Larger documents are parsed each time: what is kept stays in memory until two more are parsed.
    const LARGEST: usize = 1 << 20;
    type Recent = std::collections::VecDeque<(Box<str>, Result<Value, DocumentError>)>;
    thread_local! {
        static RECENT: std::cell::RefCell<Recent> = const { std::cell::RefCell::new(Recent::new()) };
    }
    if text.len() > LARGEST {
        return parse_yaml(text);
    }
    RECENT.with_borrow_mut(|recent| {
        if let Some((_, read)) = recent.iter().find(|(t, _)| **t == *text) {
            return read.clone();
        }
        let read = parse_yaml(text);
        if recent.len() == KEPT {
            recent.pop_front();
        }
        recent.push_back((text.into(), read.clone()));
        read
    })
}

/// Adds the objects and errors of document `doc`, the `chunk` of `bytes`, read with `parse`.
fn parse_chunk(
    doc: u32,
    chunk: &Chunk,
    bytes: &[u8],
    parse: fn(&str) -> Result<Value, DocumentError>,
    parsed: &mut ParsedFile,
) {
    let raw = &bytes[chunk.start..chunk.end];
    let Ok(body) = std::str::from_utf8(raw) else {
        parsed.errors.push(not_utf8(raw, chunk.first_line));
        return;
    };
    if body.trim().is_empty() {
        return;
    }
    match parse(body) {
        Ok(value) => collect(doc, chunk.first_line, value, parsed),
        Err(mut e) => {
            e.line += chunk.first_line - 1;
            parsed.errors.push(e);
        }
    }
}

/// The error for bytes that are not UTF-8, at the line of the first bad byte.
fn not_utf8(bytes: &[u8], first_line: u64) -> DocumentError {
    let valid = std::str::from_utf8(bytes).err().map_or(0, |e| e.valid_up_to());
    let line = first_line + bytes[..valid].iter().filter(|b| **b == b'\n').count() as u64;
    DocumentError { line, message: "the document is not UTF-8".into() }
}

/// Why a document cannot be rewritten: the file no longer has it where it was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// The file has fewer documents.
    #[error("file has no document {0}")]
    NoDocument(u32),
    /// The document is not a `kind: List`, or its list is shorter.
    #[error("list has no item {0}")]
    NoItem(u32),
    /// The document does not parse any more.
    #[error("line {}: {}", .0.line, .0.message)]
    Unreadable(DocumentError),
}

/// How [`rewrite_detailed`] wrote a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fidelity {
    /// The new value is the one the document holds: the text is unchanged.
    Unchanged,
    /// Only the text of changed values changed, with lines for added and removed entries.
    Minimal,
    /// The document was serialized anew: the minimal edit could not be made, or did not read back
    /// as the new value. Its comments and style are lost, the other documents are kept.
    Reserialized,
    /// The object was removed.
    Removed,
}

/// A rewritten file, and how its document was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewritten {
    /// The new text; `None` when the file holds nothing any more and should be deleted.
    pub text: Option<String>,
    /// How the document was written.
    pub fidelity: Fidelity,
}

/// Replaces (or, with `None`, removes) the object at `doc`/`item` of a file. Returns the new text, or
/// `None` when the file holds nothing any more and should be deleted.
pub fn rewrite(
    path: &str,
    text: &str,
    doc: u32,
    item: Option<u32>,
    new: Option<&Value>,
) -> Result<Option<String>, RewriteError> {
    rewrite_detailed(path, text, doc, item, new).map(|r| r.text)
}

/// [`rewrite`], telling how the document was written. A replaced document is edited minimally
/// where that reads back (with the reader, [`parse_yaml`] or JSON's) as exactly the new value, and
/// serialized anew otherwise.
pub fn rewrite_detailed(
    path: &str,
    text: &str,
    doc: u32,
    item: Option<u32>,
    new: Option<&Value>,
) -> Result<Rewritten, RewriteError> {
    // Timed by the bench's `write-costs` (issue 15).
    let _cost = tracing::trace_span!(target: "gitbacked::cost", "rewrite").entered();
    let edit_list = |mut list: Value| -> Result<Value, RewriteError> {
        let index = item.unwrap_or_default();
        let items = list.get_mut("items").and_then(Value::as_array_mut).ok_or(RewriteError::NoItem(index))?;
        let i = index as usize;
        if i >= items.len() {
            return Err(RewriteError::NoItem(index));
        }
        match new {
            Some(v) => items[i] = implicit_namespace(&items[i], v).into_owned(),
            None => {
                items.remove(i);
            }
        }
        Ok(list)
    };
    if is_json(path) {
        let old = serde_json::from_str::<Value>(text)
            .map_err(|e| RewriteError::Unreadable(DocumentError { line: e.line() as u64, message: e.to_string() }));
        let replaced = match (item, new) {
            (Some(_), _) => Some(edit_list(old.clone()?)?),
            (None, Some(new)) => {
                Some(old.as_ref().map_or(Cow::Borrowed(new), |old| implicit_namespace(old, new)).into_owned())
            }
            (None, None) => None,
        };
        let Some(target) = replaced else { return Ok(Rewritten { text: None, fidelity: Fidelity::Removed }) };
        return Ok(match old {
            Ok(old) if old == target => Rewritten { text: Some(text.to_string()), fidelity: Fidelity::Unchanged },
            Ok(old) => match edit::edit(text, &old, &target, Syntax::Json)
                .filter(|t| serde_json::from_str::<Value>(t).is_ok_and(|v| v == target))
            {
                Some(edited) => Rewritten { text: Some(edited), fidelity: Fidelity::Minimal },
                None => Rewritten { text: Some(to_json(&target)), fidelity: Fidelity::Reserialized },
            },
            Err(_) => Rewritten { text: Some(to_json(&target)), fidelity: Fidelity::Reserialized },
        });
    }
    let chunks = chunks(text.as_bytes());
    let chunk = chunks.get(doc as usize).ok_or(RewriteError::NoDocument(doc))?;
    let body = &text[chunk.start..chunk.end];
    let old = parse_recent(body).map_err(RewriteError::Unreadable);
    let replacement = match (item, new) {
        (Some(_), _) => Some(edit_list(old.clone()?)?),
        (None, Some(new)) => {
            Some(old.as_ref().map_or(Cow::Borrowed(new), |old| implicit_namespace(old, new)).into_owned())
        }
        (None, None) => None,
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..chunk.start]);
    let fidelity = match (replacement, old) {
        (Some(v), Ok(old)) if old == v => {
            return Ok(Rewritten { text: Some(text.to_string()), fidelity: Fidelity::Unchanged });
        }
        (Some(v), old) => {
            let edited = old
                .ok()
                .and_then(|old| edit::edit(body, &old, &v, Syntax::Yaml))
                .filter(|t| parse_recent(t).is_ok_and(|r| r == v));
            match edited {
                Some(edited) => {
                    out.push_str(&edited);
                    out.push_str(&text[chunk.end..]);
                    Fidelity::Minimal
                }
                None => {
                    reserialize(&mut out, body, chunk.start, &v);
                    out.push_str(&text[chunk.end..]);
                    Fidelity::Reserialized
                }
            }
        }
        (None, _) => {
            // Drop the document together with the marker line that introduced it.
            let rest = &text[chunk.end..];
            if doc > 0 {
                let marker_start = out.rfind("---").unwrap_or(0);
                out.truncate(marker_start);
                out.push_str(rest);
            } else {
                // The next document's marker goes with it, unless content follows the marker on
                // its line: that content is the next document's, byte for byte.
                let bare = rest.strip_prefix("---").map(|r| r.trim_start_matches([' ', '\t']));
                match bare.filter(|r| r.is_empty() || r.starts_with(['\n', '\r'])) {
                    Some(after) => out.push_str(after),
                    None => out.push_str(rest),
                }
                out = out.trim_start_matches('\n').to_string();
            }
            Fidelity::Removed
        }
    };
    // A replaced document keeps content: only a removal (of a document or a list's item) may
    // leave the file with nothing in it.
    // The parse last: it is of the whole file, and a file with content needs none.
    let empty = (new.is_none() || item.is_some())
        && chunks_of(&out).all(|c| c.trim().is_empty() || c.trim_start().starts_with('#'))
        && parse_file(path, out.as_bytes()).objects.is_empty();
    Ok(Rewritten { text: (!empty).then_some(out), fidelity })
}

/// Writes a document anew after `out`, keeping only the comment and blank lines heading it.
fn reserialize(out: &mut String, body: &str, chunk_start: usize, value: &Value) {
    let lead: usize = body
        .split_inclusive('\n')
        // A lone `\r` ends a line for YAML: what follows it on this line is content.
        .take_while(|l| {
            let line = l.trim_end_matches(['\n', '\r']);
            l.ends_with('\n') && !line.contains('\r') && (line.trim().is_empty() || line.trim_start().starts_with('#'))
        })
        .map(str::len)
        .sum();
    out.push_str(&body[..lead]);
    // Content that followed a `---` on its line needs a line of its own.
    if chunk_start > 0 && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&to_yaml(value));
}

/// The new value as it is to be written over `old`: a namespace the document leaves implicit stays
/// so when the new value's is the one the reader infers for it (`default`, see
/// `ObjectKey::of` in the object module; a cluster-scoped object's content has none).
pub fn implicit_namespace<'v>(old: &Value, new: &'v Value) -> Cow<'v, Value> {
    let implicit = old.pointer("/metadata/namespace").is_none() && old.get("metadata").is_some_and(Value::is_object);
    if !implicit || new.pointer("/metadata/namespace").and_then(Value::as_str) != Some(IMPLIED_NAMESPACE) {
        return Cow::Borrowed(new);
    }
    let mut new = new.clone();
    if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("namespace");
    }
    Cow::Owned(new)
}

/// The namespace of a namespaced object whose document names none.
pub const IMPLIED_NAMESPACE: &str = "default";

fn chunks_of(text: &str) -> impl Iterator<Item = &str> {
    chunks(text.as_bytes()).into_iter().map(move |c| &text[c.start..c.end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MULTI: &str = "# leading comment\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: \"1\"\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b  # keep me\n---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n";

    #[test]
    fn multi_document_files_keep_indices() {
        let parsed = parse_file("x.yaml", MULTI.as_bytes());
        let names: Vec<(u32, &str)> =
            parsed.objects.iter().map(|o| (o.doc, o.value["metadata"]["name"].as_str().unwrap())).collect();
        assert_eq!(names, [(0, "a"), (1, "b"), (3, "c")]);
        assert!(parsed.errors.is_empty());
    }

    /// Files whose documents are split in every way the reader knows.
    const SPLITS: &[&str] = &[
        MULTI,
        "",
        "---\n---\n",
        "# only a comment\n",
        "--- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n---\tkey: [unclosed\n...\n# after the end\n",
        "apiVersion: v1\r\nkind: ConfigMap\r\nmetadata:\r\n  name: a\r\n---\r\napiVersion: v1\r\nkind: List\r\nitems: []\r\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n...\n---\n--- # marker\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata:\n  k: 0\n---x\n....\n-- -\n",
        "a: |\n  ---\n  ...\n---  \nb: 1",
    ];

    #[test]
    fn each_document_reads_alone_as_in_the_whole_file() {
        for text in SPLITS {
            let whole = parse_file("f.yaml", text.as_bytes());
            let mut alone = ParsedFile::default();
            for doc in 0..document_count("f.yaml", text.as_bytes()) {
                let one = parse_document("f.yaml", text.as_bytes(), doc as u32);
                alone.objects.extend(one.objects);
                alone.errors.extend(one.errors);
            }
            assert_eq!(alone, whole, "{text:?}");
        }
        let json_file = br#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}"#;
        assert_eq!(parse_document("n.json", json_file, 0), parse_file("n.json", json_file));
        assert_eq!(parse_document("n.json", json_file, 1), ParsedFile::default());
    }

    #[test]
    fn the_changed_document_is_found_only_when_nothing_else_changed() {
        let changed = |new: &str| changed_document("x.yaml", MULTI.as_bytes(), new.as_bytes());
        assert_eq!(changed(&MULTI.replace("name: b  # keep me", "name: b2")), Some(1));
        assert_eq!(changed(&MULTI.replace("k: \"1\"", "k: \"2\"\n  j: x")), Some(0));
        assert_eq!(changed(&MULTI.replace("name: c", "name: c\ndata: {}")), Some(3));
        // Nothing changed, two documents changed, a document more or less: not one document.
        assert_eq!(changed(MULTI), None);
        assert_eq!(changed(&MULTI.replace("name: a", "name: a2").replace("name: c", "name: c2")), None);
        assert_eq!(changed(&MULTI.replace("# only a comment\n", "a: 1\n---\nb: 2\n")), None);
        assert_eq!(changed(&MULTI.replace("---\n# only a comment\n", "")), None);
        // A change to a marker line is a change of the document it starts.
        assert_eq!(changed(&MULTI.replacen("---\n", "--- # b\n", 1)), Some(1));
        assert_eq!(changed(&MULTI.replacen("---\n", "...\n---\n", 1)), None);
        assert_eq!(changed_document("x.json", b"{}", b"{\"a\": 1}"), None);
    }

    #[test]
    fn rewriting_one_document_leaves_neighbours_untouched() {
        let new = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "y"}});
        let out = rewrite("x.yaml", MULTI, 3, None, Some(&new)).unwrap().unwrap();
        assert!(out.starts_with(&MULTI[..MULTI.rfind("apiVersion").unwrap()]), "{out}");
        let parsed = parse_file("x.yaml", out.as_bytes());
        assert_eq!(parsed.objects[2].value, new);

        let out = rewrite("x.yaml", MULTI, 1, None, None).unwrap().unwrap();
        assert!(!out.contains("name: b"));
        assert!(out.contains("# leading comment") && out.contains("# only a comment"));
        let names: Vec<_> =
            parse_file("x.yaml", out.as_bytes()).objects.iter().map(|o| o.value["metadata"]["name"].clone()).collect();
        assert_eq!(names, [json!("a"), json!("c")]);

        let out = rewrite("x.yaml", MULTI, 0, None, None).unwrap().unwrap();
        assert!(out.contains("name: b  # keep me") && !out.contains("name: a"));
        assert_eq!(parse_file("x.yaml", out.as_bytes()).objects.len(), 2);
    }

    #[test]
    fn removing_the_last_object_empties_the_file() {
        let one = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n";
        assert_eq!(rewrite("a.yaml", one, 0, None, None).unwrap(), None);
        assert_eq!(rewrite("a.json", "{}", 0, None, None).unwrap(), None);
    }

    #[test]
    fn lists_and_json_files() {
        let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: s1}\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: s2}\n";
        let parsed = parse_file("l.yml", list.as_bytes());
        assert_eq!(parsed.objects.iter().map(|o| o.item).collect::<Vec<_>>(), [Some(0), Some(1)]);
        let out = rewrite("l.yml", list, 0, Some(0), None).unwrap().unwrap();
        let parsed = parse_file("l.yml", out.as_bytes());
        assert_eq!(parsed.objects.len(), 1);
        assert_eq!(parsed.objects[0].value["metadata"]["name"], "s2");

        let json_file = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"n"}}"#;
        assert_eq!(parse_file("n.json", json_file.as_bytes()).objects.len(), 1);
    }

    #[test]
    fn broken_documents_are_reported_with_their_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n---\nkey: [unclosed\nmore: 1\n";
        let parsed = parse_file("b.yaml", text.as_bytes());
        assert_eq!(parsed.objects.len(), 1);
        assert_eq!(parsed.errors.len(), 1);
        assert!(parsed.errors[0].line >= 6, "{:?}", parsed.errors);
    }

    #[test]
    fn removing_the_first_document_leaves_content_on_the_next_marker_line_alone() {
        // Found by the `document` fuzz target: `---\t<content>` lost its tab with the marker, and a
        // broken neighbour became an object.
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\tkey: value\n";
        let removed = rewrite("f.yaml", text, 0, None, None).unwrap().unwrap();
        assert_eq!(removed, "---\tkey: value\n");
        let plain = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---  \nb: 1\n";
        assert_eq!(rewrite("f.yaml", plain, 0, None, None).unwrap().unwrap(), "b: 1\n");
    }

    #[test]
    fn a_comment_ended_by_a_lone_carriage_return_is_not_taken_for_a_whole_line() {
        // Found by the `document` fuzz target: `# note\rapiVersion: v1` is a comment, then content.
        let text = "# note\rapiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n";
        let found = &parse_file("f.yaml", text.as_bytes()).objects[0];
        let written = rewrite("f.yaml", text, found.doc, found.item, Some(&found.value)).unwrap().unwrap();
        assert_eq!(parse_file("f.yaml", written.as_bytes()).objects[0].value, found.value, "{written:?}");
    }

    #[test]
    fn a_document_that_is_not_utf8_hides_only_itself() {
        let mut bytes = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndata:\n  k: \"".to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        bytes.extend_from_slice(b"\"\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: also-ok\n");
        let parsed = parse_file("m.yaml", &bytes);
        let names: Vec<&str> = parsed.objects.iter().map(|o| o.value["metadata"]["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["ok", "also-ok"]);
        assert_eq!(parsed.errors, [DocumentError { line: 11, message: "the document is not UTF-8".into() }]);
        assert_eq!(parse_file("m.json", &[b'{', 0xff]).errors[0].line, 1);
    }

    #[test]
    fn unquoted_values_where_strings_belong_are_reported() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: 0\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  labels: {on: yes}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: '0'\n";
        let parsed = parse_file("x.yaml", text.as_bytes());
        let names: Vec<_> = parsed.objects.iter().map(|o| o.value["metadata"]["name"].clone()).collect();
        assert_eq!(names, [json!("c")]);
        assert_eq!(parsed.errors.len(), 2);
        assert!(parsed.errors[0].message.contains("data.k must be a string"), "{:?}", parsed.errors);
        assert_eq!(parsed.errors[1].line, 7);
    }

    #[test]
    fn octal_modes_read_as_kubernetes_does() {
        let v = parse_yaml("mode: 0644\nname: '0644'\n").unwrap();
        assert_eq!(v["mode"], 420);
        assert_eq!(v["name"], "0644");
    }
}

#[cfg(test)]
mod minimal_tests {
    //! Writes change only what changed (issue 14).
    use super::*;
    use serde_json::json;

    /// Rewrites the first object of `text` changed by `change`; checks that it reads back.
    fn edited(path: &str, text: &str, change: impl FnOnce(&mut Value)) -> (String, Fidelity) {
        let parsed = parse_file(path, text.as_bytes());
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let found = &parsed.objects[0];
        let mut new = found.value.clone();
        change(&mut new);
        let written = rewrite_detailed(path, text, found.doc, found.item, Some(&new)).unwrap();
        let out = written.text.unwrap();
        let again = parse_file(path, out.as_bytes());
        let back = again.objects.iter().find(|o| (o.doc, o.item) == (found.doc, found.item)).expect(&out);
        assert_eq!(back.value, *implicit_namespace(&found.value, &new), "{out}");
        (out, written.fidelity)
    }

    const STYLED: &str = r#"# The web front end.
apiVersion: example.com/v1
kind: Widget
metadata:
    name: "web"   # do not rename
    labels: {app: web, tier: 'front'}
    annotations:
        owner: alice

# Settings read at start.
data:
    size: "10Gi"
    mode: '0644'
    script: |
        echo one
        echo two
    list: [a, b]
"#;

    #[test]
    fn one_changed_value_changes_one_line() {
        let (out, fidelity) = edited("c.yaml", STYLED, |v| v["data"]["size"] = json!("20Gi"));
        assert_eq!(fidelity, Fidelity::Minimal);
        assert_eq!(out, STYLED.replace(r#"size: "10Gi""#, r#"size: "20Gi""#));
        let (out, _) = edited("c.yaml", STYLED, |v| v["metadata"]["annotations"]["owner"] = json!("bob"));
        assert_eq!(out, STYLED.replace("owner: alice", "owner: bob"));
    }

    #[test]
    fn a_write_that_changes_nothing_changes_no_byte() {
        let (out, fidelity) = edited("c.yaml", STYLED, |_| {});
        assert_eq!((out.as_str(), fidelity), (STYLED, Fidelity::Unchanged));
        let json_file =
            "{\n    \"apiVersion\": \"v1\",\n    \"kind\": \"ConfigMap\",\n    \"metadata\": {\"name\": \"a\"}\n}";
        let (out, fidelity) = edited("c.json", json_file, |_| {});
        assert_eq!((out.as_str(), fidelity), (json_file, Fidelity::Unchanged));
    }

    #[test]
    fn a_label_goes_into_the_flow_map() {
        let (out, _) = edited("c.yaml", STYLED, |v| v["metadata"]["labels"]["version"] = json!("1.10"));
        assert_eq!(out, STYLED.replace("tier: 'front'}", r#"tier: 'front', version: "1.10"}"#));
    }

    #[test]
    fn a_new_key_goes_after_its_siblings_with_their_indent() {
        let (out, _) = edited("c.yaml", STYLED, |v| v["metadata"]["annotations"]["team"] = json!("web"));
        assert_eq!(out, STYLED.replace("owner: alice\n", "owner: alice\n        team: web\n"));
        let (out, _) = edited("c.yaml", STYLED, |v| v["data"]["nested"] = json!({"a": {"b": [1, {"c": "d"}]}}));
        let added = "    nested:\n        a:\n            b:\n                - 1\n                - c: d\n";
        assert_eq!(out, format!("{STYLED}{added}"));
    }

    #[test]
    fn status_goes_last_and_a_second_write_changes_only_its_lines() {
        let (out, _) = edited("c.yaml", STYLED, |v| v["status"] = json!({"phase": "Ready", "replicas": 2}));
        assert_eq!(out, format!("{STYLED}status:\n    phase: Ready\n    replicas: 2\n"));
        let (again, _) = edited("c.yaml", &out, |v| v["status"]["replicas"] = json!(3));
        assert_eq!(again, out.replace("replicas: 2", "replicas: 3"));
    }

    #[test]
    fn ambiguous_strings_are_quoted() {
        for (value, written) in [
            ("0644", "\"0644\""),
            ("yes", "\"yes\""),
            ("on", "\"on\""),
            ("1.10", "\"1.10\""),
            ("~", "\"~\""),
            ("null", "\"null\""),
            ("12", "\"12\""),
            (" padded", "\" padded\""),
            ("a: b", "\"a: b\""),
            ("a #b", "\"a #b\""),
            ("plain words", "plain words"),
            ("-Xmx512m", "-Xmx512m"),
        ] {
            // A plain value stays plain where it can, else takes the document's quotes (as many
            // double as single: double).
            let (out, _) = edited("c.yaml", STYLED, |v| v["metadata"]["annotations"]["owner"] = json!(value));
            assert_eq!(out, STYLED.replace("owner: alice", &format!("owner: {written}")), "{value}");
        }
        // A quoted value keeps its quotes; a number is written as one.
        let (out, _) = edited("c.yaml", STYLED, |v| v["data"]["mode"] = json!("it's"));
        assert!(out.contains("mode: 'it''s'\n"), "{out}");
        let (out, _) = edited("c.yaml", STYLED, |v| v["data"]["mode"] = json!(420));
        assert!(out.contains("mode: 420\n"), "{out}");
    }

    #[test]
    fn removing_entries_removes_their_lines() {
        let (out, _) = edited("c.yaml", STYLED, |v| {
            v["metadata"].as_object_mut().unwrap().remove("annotations");
        });
        assert_eq!(out, STYLED.replace("    annotations:\n        owner: alice\n", ""));
        // A map left empty in the new value is written empty.
        let (out, _) = edited("c.yaml", STYLED, |v| {
            v["metadata"]["annotations"].as_object_mut().unwrap().remove("owner");
        });
        assert_eq!(out, STYLED.replace("    annotations:\n        owner: alice\n", "    annotations: {}\n"));
        let (out, _) = edited("c.yaml", STYLED, |v| v["data"]["list"] = json!(["b"]));
        assert!(out.contains("list: [b]\n"), "{out}");
        let (out, _) = edited("c.yaml", STYLED, |v| {
            v["data"].as_object_mut().unwrap().remove("script");
        });
        assert_eq!(out, STYLED.replace("    script: |\n        echo one\n        echo two\n", ""));
    }

    #[test]
    fn block_sequences_gain_and_lose_items() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  template:\n    spec:\n      containers:\n      - name: a # first\n        image: a:1\n      - name: b\n        image: b:1\n";
        let (out, _) = edited("d.yaml", text, |v| {
            v["spec"]["template"]["spec"]["containers"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "c", "image": "c:1"}));
        });
        assert_eq!(out, format!("{text}      - name: c\n        image: c:1\n"));
        let (out, _) = edited("d.yaml", text, |v| {
            v["spec"]["template"]["spec"]["containers"].as_array_mut().unwrap().remove(0);
        });
        assert_eq!(out, text.replace("      - name: a # first\n        image: a:1\n", ""));
        let (out, _) =
            edited("d.yaml", text, |v| v["spec"]["template"]["spec"]["containers"][1]["image"] = json!("b:2"));
        assert_eq!(out, text.replace("b:1", "b:2"));
    }

    #[test]
    fn multi_line_strings_stay_block_scalars() {
        let (out, _) = edited("c.yaml", STYLED, |v| v["data"]["script"] = json!("echo one\necho three\n"));
        assert_eq!(out, STYLED.replace("echo two", "echo three"));
        let crd = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  description: >-\n    A long description that a person folded over\n    two lines.\n  other: x\n";
        let (out, _) = edited("c.yaml", crd, |v| v["data"]["other"] = json!("z"));
        assert_eq!(out, crd.replace("other: x", "other: z"));
        let (out, _) = edited("c.yaml", crd, |v| {
            v["data"]["description"] = json!("A long description that a person folded over three lines.")
        });
        assert!(out.contains("description: >-\n    A long"), "{out}");
    }

    #[test]
    fn json_files_keep_their_indentation_and_order() {
        let text = "{\n    \"kind\": \"Widget\",\n    \"apiVersion\": \"example.com/v1\",\n    \"metadata\": {\n        \"name\": \"a\",\n        \"labels\": {\"app\": \"x\"}\n    },\n    \"data\": {\n        \"k\": \"v\"\n    }\n}\n";
        let (out, fidelity) = edited("c.json", text, |v| v["data"]["k"] = json!("w"));
        assert_eq!((out.as_str(), fidelity), (text.replace("\"v\"", "\"w\"").as_str(), Fidelity::Minimal));
        let (out, _) = edited("c.json", text, |v| v["data"]["n"] = json!({"deep": [1]}));
        assert_eq!(
            out,
            text.replace("\"k\": \"v\"\n", "\"k\": \"v\",\n        \"n\": {\n            \"deep\": [\n                1\n            ]\n        }\n")
        );
        let (out, _) = edited("c.json", text, |v| v["metadata"]["labels"]["tier"] = json!("web"));
        assert!(out.contains("{\"app\": \"x\", \"tier\": \"web\"}"), "{out}");
        let (out, _) = edited("c.json", text, |v| {
            v["metadata"].as_object_mut().unwrap().remove("labels");
        });
        assert_eq!(out, text.replace(",\n        \"labels\": {\"app\": \"x\"}", ""));
    }

    #[test]
    fn neighbour_documents_stay_byte_for_byte() {
        let text = format!(
            "{STYLED}---\n# Source: chart/templates/b.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \"b\"\n"
        );
        let found = &parse_file("m.yaml", text.as_bytes()).objects[1];
        let mut new = found.value.clone();
        new["data"] = json!({"k": "v"});
        let out = rewrite("m.yaml", &text, found.doc, None, Some(&new)).unwrap().unwrap();
        assert_eq!(out, format!("{text}data:\n  k: v\n"));
        let (out, _) = edited("m.yaml", &text, |v| v["data"]["size"] = json!("1Gi"));
        assert!(out.ends_with(&text[STYLED.len()..]), "{out}");
    }

    #[test]
    fn an_implicit_namespace_stays_implicit() {
        let (out, fidelity) = edited("c.yaml", STYLED, |v| v["metadata"]["namespace"] = json!("default"));
        assert_eq!((out.as_str(), fidelity), (STYLED, Fidelity::Unchanged));
        let (out, _) = edited("c.yaml", STYLED, |v| v["metadata"]["namespace"] = json!("web"));
        // A new key takes the quotes of its siblings' strings.
        assert!(out.contains("    annotations:\n        owner: alice\n    namespace: \"web\"\n"), "{out}");
    }

    #[test]
    fn items_of_a_list_are_edited_in_place() {
        let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: s1}  # one\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: s2}\n";
        let found = &parse_file("l.yaml", list.as_bytes()).objects[1];
        let mut new = found.value.clone();
        new["metadata"]["labels"] = json!({"a": "b"});
        let out = rewrite("l.yaml", list, 0, Some(1), Some(&new)).unwrap().unwrap();
        assert_eq!(out, list.replace("{name: s2}", "{name: s2, labels: {a: b}}"));
    }

    #[test]
    fn odd_layouts_read_back_as_written_or_fall_back() {
        // Explicit keys, keys on a sequence item's line, anchors, CRLF: found by the `document`
        // fuzz target (a removal's range ran backwards) and their like.
        let texts = [
            "apiVersion: v1\nkind: W\nmetadata: {name: a}\n? data\n: {k: v}\nx: 1\n",
            "apiVersion: v1\nkind: W\nmetadata: {name: a}\nspec: {? a : 1, b: 2}\n",
            "apiVersion: v1\nkind: W\nmetadata: {name: a}\nspec:\n  - ? x\n    : 1\n    y: 2\n",
            "apiVersion: v1\nkind: W\nmetadata: {name: a}\nspec: &s {a: 1}\nother: *s\n",
            "apiVersion: v1\r\nkind: W\r\nmetadata:\r\n  name: a\r\nspec:\r\n  a: 1\r\n",
            "apiVersion: v1\nkind: W\nmetadata:\n  name: a\nspec:\n- a: 1\n  b: 2\n- - x\n  - y\n",
            "apiVersion: v1\nkind: W\nmetadata:\n  name: a\nspec: |+\n  kept\n\n",
        ];
        for text in texts {
            edited("o.yaml", text, |v| {
                v["metadata"]["annotations"] = json!({"mode": "0644"});
                v.as_object_mut().unwrap().remove("spec");
            });
            edited("o.yaml", text, |v| {
                if let Some(spec) = v["spec"].as_array_mut() {
                    spec.remove(0);
                } else if let Some(spec) = v["spec"].as_object_mut() {
                    let first = spec.keys().next().cloned().unwrap_or_default();
                    spec.remove(&first);
                } else {
                    v["spec"] = json!("changed");
                }
                v["status"] = json!({"ok": true});
            });
        }
    }

    #[test]
    fn anchors_and_aliases_stay_unless_what_they_share_changes() {
        let text = "apiVersion: v1\nkind: W\nmetadata:\n  name: a\nspec:\n  base: &b {cpu: 1}  # shared\n  other: *b\n  size: 1\n";
        let (out, fidelity) = edited("a.yaml", text, |v| v["spec"]["size"] = json!(2));
        assert_eq!((out, fidelity), (text.replace("size: 1", "size: 2"), Fidelity::Minimal));
        // The alias alone changes: it becomes the value it now holds.
        let (out, fidelity) = edited("a.yaml", text, |v| v["spec"]["other"]["cpu"] = json!(2));
        assert_eq!((out, fidelity), (text.replace("other: *b", "other:\n    cpu: 2"), Fidelity::Minimal));
        // The anchored value alone changes: editing it would change the alias too.
        let (_, fidelity) = edited("a.yaml", text, |v| v["spec"]["base"]["cpu"] = json!(2));
        assert_eq!(fidelity, Fidelity::Reserialized);
    }

    #[test]
    fn crlf_files_and_emptied_lists() {
        let text = "apiVersion: v1\r\nkind: W\r\nmetadata:\r\n  name: a\r\nspec:\r\n  a: 1\r\n  items:\r\n  - x\r\n";
        let (out, fidelity) = edited("c.yaml", text, |v| {
            v["spec"]["a"] = json!(2);
            v["spec"]["b"] = json!("new");
        });
        assert_eq!(
            (out.as_str(), fidelity),
            (
                text.replace("a: 1\r\n", "a: 2\r\n").replace("- x\r\n", "- x\r\n  b: new\r\n").as_str(),
                Fidelity::Minimal
            )
        );
        let (out, _) = edited("c.yaml", text, |v| v["spec"]["items"] = json!([]));
        assert_eq!(out, text.replace("  items:\r\n  - x\r\n", "  items: []\r\n"));
        let (out, _) = edited("c.yaml", text, |v| {
            v["spec"].as_object_mut().unwrap().remove("items");
        });
        assert_eq!(out, text.replace("  items:\r\n  - x\r\n", ""));
    }
}
