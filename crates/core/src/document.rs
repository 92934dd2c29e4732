//! Files as sequences of documents: parsing with line numbers, and rewriting one document while
//! leaving its neighbours byte-for-byte untouched.

use serde_json::Value;

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
    for line in text.split_inclusive(|b| *b == b'\n') {
        line_no += 1;
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
            start = offset + line.len();
            first_line = line_no + 1;
            seen_content = false;
        } else if !bare.trim_ascii().is_empty() && !bare.trim_ascii_start().starts_with(b"#") {
            seen_content = true;
        }
        offset += line.len();
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
        let raw = &bytes[chunk.start..chunk.end];
        let Ok(body) = std::str::from_utf8(raw) else {
            parsed.errors.push(not_utf8(raw, chunk.first_line));
            continue;
        };
        if body.trim().is_empty() {
            continue;
        }
        match parse_yaml(body) {
            Ok(value) => collect(i as u32, chunk.first_line, value, &mut parsed),
            Err(mut e) => {
                e.line += chunk.first_line - 1;
                parsed.errors.push(e);
            }
        }
    }
    parsed
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

/// Replaces (or, with `None`, removes) the object at `doc`/`item` of a file. Returns the new text, or
/// `None` when the file holds nothing any more and should be deleted.
pub fn rewrite(
    path: &str,
    text: &str,
    doc: u32,
    item: Option<u32>,
    new: Option<&Value>,
) -> Result<Option<String>, RewriteError> {
    let edit_list = |mut list: Value| -> Result<Value, RewriteError> {
        let index = item.unwrap_or_default();
        let items = list.get_mut("items").and_then(Value::as_array_mut).ok_or(RewriteError::NoItem(index))?;
        let i = index as usize;
        if i >= items.len() {
            return Err(RewriteError::NoItem(index));
        }
        match new {
            Some(v) => items[i] = v.clone(),
            None => {
                items.remove(i);
            }
        }
        Ok(list)
    };
    if is_json(path) {
        let replaced = match (item, new) {
            (Some(_), _) => {
                let list = serde_json::from_str(text).map_err(|e| {
                    RewriteError::Unreadable(DocumentError { line: e.line() as u64, message: e.to_string() })
                })?;
                Some(edit_list(list)?)
            }
            (None, new) => new.cloned(),
        };
        return Ok(replaced.map(|v| to_json(&v)));
    }
    let chunks = chunks(text.as_bytes());
    let chunk = chunks.get(doc as usize).ok_or(RewriteError::NoDocument(doc))?;
    let body = &text[chunk.start..chunk.end];
    let replacement = match (item, new) {
        (Some(_), _) => Some(edit_list(parse_yaml(body).map_err(RewriteError::Unreadable)?)?),
        (None, new) => new.cloned(),
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..chunk.start]);
    match replacement {
        Some(v) => {
            // Comment and blank lines heading the document are the person's: keep them.
            let lead: usize = body
                .split_inclusive('\n')
                // A lone `\r` ends a line for YAML: what follows it on this line is content.
                .take_while(|l| {
                    let line = l.trim_end_matches(['\n', '\r']);
                    l.ends_with('\n')
                        && !line.contains('\r')
                        && (line.trim().is_empty() || line.trim_start().starts_with('#'))
                })
                .map(str::len)
                .sum();
            out.push_str(&body[..lead]);
            // Content that followed a `---` on its line needs a line of its own.
            if chunk.start > 0 && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&to_yaml(&v));
            out.push_str(&text[chunk.end..]);
        }
        None => {
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
        }
    }
    let empty = parse_file(path, out.as_bytes()).objects.is_empty()
        && chunks_of(&out).all(|c| c.trim().is_empty() || c.trim_start().starts_with('#'));
    Ok(if empty { None } else { Some(out) })
}

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
