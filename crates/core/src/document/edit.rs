//! Minimal edits of a document's text: from the value it holds to a new value, changing only the
//! text of the values that changed, adding lines for added entries and removing those of removed
//! ones. Comments, blank lines, key order, quoting, indentation and flow or block style stay.
//!
//! The text is read with the events of the parser serde-saphyr itself uses (`granit-parser`, whose
//! events carry byte spans), so the structure the edit works on is the structure the reader sees.
//! The edit is a proposal only: the caller re-reads it with the reader and keeps it only if it
//! yields the new value exactly. Whatever this module does not handle (complex or merge keys, a
//! change at the root, a change under an anchor that aliases share) makes it give up or fail that
//! check, and the caller re-serializes.

use serde_json::{Map, Value};
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, StructureStyle};

/// The syntax of the text being edited.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Syntax {
    /// A YAML document.
    Yaml,
    /// A JSON file: flow style only, strings and keys always double-quoted.
    Json,
}

/// Deeper documents are left to re-serialization (the reader's own budget is lower anyway).
const MAX_DEPTH: usize = 512;

/// The width folded (`>`) scalars are wrapped at when rewritten.
const FOLD_WIDTH: usize = 80;

/// Returns `text` edited from `old` (the value `text` reads as) to `new`, or `None` when a minimal
/// edit cannot be made. The result is not verified here: the caller re-reads it.
pub(super) fn edit(text: &str, old: &Value, new: &Value, syntax: Syntax) -> Option<String> {
    let root = build(text)?;
    let mut editor = Editor::new(text, syntax, &root);
    editor.diff(&root, old, new, Place::Root)?;
    editor.apply()
}

/// A node of the document with the byte range of its text.
struct Node {
    start: usize,
    /// The end of its content: a block scalar's trailing blank lines are not counted, nor, for a
    /// block collection, anything after its last child.
    end: usize,
    kind: Kind,
}

enum Kind {
    /// A scalar; `start == end` for an empty one (an implicit null).
    Scalar {
        style: ScalarStyle,
        value: String,
    },
    Map {
        flow: bool,
        entries: Vec<(Node, Node)>,
    },
    Seq {
        flow: bool,
        items: Vec<Node>,
    },
    /// `*name`: the value of an anchored node.
    Alias,
}

/// Reads the single document of `text` into nodes. `None` for anything this module does not edit:
/// non-scalar keys, several documents, a parse error. Anchors and tags stay where they are (a node
/// that holds one is edited like any other: an edit that changes what an alias reads, or drops an
/// anchor, does not read back and is not kept).
fn build(text: &str) -> Option<Node> {
    let mut events = Vec::new();
    let mut documents = 0;
    for result in Parser::new_from_str(text) {
        let (event, span) = result.ok()?;
        match event {
            Event::DocumentStart(..) => documents += 1,
            Event::Scalar(..)
            | Event::MappingStart(..)
            | Event::MappingEnd
            | Event::SequenceStart(..)
            | Event::SequenceEnd
            | Event::Alias(..)
            | Event::UnresolvedAlias(..)
            | Event::Anchor(..) => events.push((event, span.byte_range()?)),
            // Comments and the stream's and documents' ends.
            _ => {}
        }
    }
    if documents > 1 {
        return None;
    }
    let mut at = 0;
    let root = node(text, &events, &mut at, 0)?;
    (at == events.len()).then_some(root)
}

type Spanned<'t> = (Event<'t>, std::ops::Range<usize>);

fn node(text: &str, events: &[Spanned<'_>], at: &mut usize, depth: usize) -> Option<Node> {
    if depth > MAX_DEPTH {
        return None;
    }
    let (event, range) = events.get(*at)?;
    *at += 1;
    match event {
        Event::Scalar(value, style, ..) => {
            let end = match style {
                ScalarStyle::Literal | ScalarStyle::Folded => block_end(text, range.start, range.end),
                _ => range.end,
            };
            Some(Node { start: range.start, end, kind: Kind::Scalar { style: *style, value: value.to_string() } })
        }
        Event::MappingStart(style, ..) => {
            let mut entries = Vec::new();
            while !matches!(events.get(*at)?.0, Event::MappingEnd) {
                let key = node(text, events, at, depth + 1)?;
                if !matches!(key.kind, Kind::Scalar { .. }) || key.start == key.end {
                    return None;
                }
                let value = node(text, events, at, depth + 1)?;
                entries.push((key, value));
            }
            let end_range = &events[*at].1;
            *at += 1;
            let flow = *style == StructureStyle::Flow;
            let end = if flow { end_range.end } else { entries.last()?.1.end.max(entries.last()?.0.end) };
            Some(Node { start: range.start, end, kind: Kind::Map { flow, entries } })
        }
        Event::SequenceStart(style, ..) => {
            let mut items = Vec::new();
            while !matches!(events.get(*at)?.0, Event::SequenceEnd) {
                items.push(node(text, events, at, depth + 1)?);
            }
            let end_range = &events[*at].1;
            *at += 1;
            let flow = *style == StructureStyle::Flow;
            let end = if flow { end_range.end } else { items.last()?.end };
            Some(Node { start: range.start, end, kind: Kind::Seq { flow, items } })
        }
        // Replaced by the value it stands for when that changes.
        Event::Alias(_) => Some(Node { start: range.start, end: range.end, kind: Kind::Alias }),
        _ => None,
    }
}

/// The end of a block scalar's last content line (its span runs on over trailing blank lines).
fn block_end(text: &str, start: usize, end: usize) -> usize {
    let content_end = start + text[start..end].trim_end().len();
    match text[content_end..end].find('\n') {
        Some(n) => content_end + n - usize::from(text[..content_end + n].ends_with('\r')),
        None => end,
    }
}

/// Where a node is, which tells what text to replace when its kind changes.
#[derive(Clone, Copy)]
enum Place {
    Root,
    /// The value of a block mapping entry: the `:` after its key, and the key's column.
    Value {
        colon: Option<usize>,
        indent: usize,
    },
    /// An item of a block sequence: its `-` and the dash's column.
    Item {
        dash: Option<usize>,
        indent: usize,
    },
    /// Inside a flow collection (or anywhere in JSON): the column of the node and whether its
    /// collection spans several lines.
    Flow {
        indent: usize,
        multiline: bool,
    },
}

struct Editor<'t> {
    text: &'t str,
    syntax: Syntax,
    /// Indentation of a nested block (or multi-line JSON) level.
    step: usize,
    /// How much further a block sequence's dashes are indented than its key (0 or `step`).
    seq_indent: usize,
    /// The quotes new strings get when they must be quoted, as the document mostly uses.
    quote: ScalarStyle,
    newline: &'static str,
    edits: Vec<(usize, usize, String)>,
}

impl<'t> Editor<'t> {
    fn new(text: &'t str, syntax: Syntax, root: &Node) -> Self {
        let mut editor = Editor {
            text,
            syntax,
            step: 2,
            seq_indent: 2,
            quote: ScalarStyle::DoubleQuoted,
            newline: if text.contains("\r\n") { "\r\n" } else { "\n" },
            edits: Vec::new(),
        };
        let mut style = Style::default();
        editor.survey(root, &mut style);
        editor.step = style.step.unwrap_or(2);
        editor.seq_indent = style.seq_indent.unwrap_or(editor.step);
        if style.single > style.double {
            editor.quote = ScalarStyle::SingleQuoted;
        }
        editor
    }

    /// Learns the document's indentation and quoting from its nodes.
    fn survey(&self, node: &Node, style: &mut Style) {
        match &node.kind {
            Kind::Scalar { style: ScalarStyle::SingleQuoted, .. } => style.single += 1,
            Kind::Scalar { style: ScalarStyle::DoubleQuoted, .. } => style.double += 1,
            Kind::Scalar { .. } => {}
            Kind::Map { flow, entries } => {
                if let Some((first, _)) = entries.first()
                    && *flow
                    && self.syntax == Syntax::Json
                    && style.step.is_none()
                    && self.line_start(first.start) > node.start
                {
                    style.step = self.col(first.start).checked_sub(self.col(node.start)).filter(|s| *s > 0);
                }
                for (key, value) in entries {
                    let nested = match &value.kind {
                        Kind::Map { entries, flow } if !*flow || self.syntax == Syntax::Json => {
                            entries.first().map(|e| &e.0)
                        }
                        _ => None,
                    };
                    if let Some(child) = nested
                        && style.step.is_none()
                        && self.line_start(child.start) > key.start
                    {
                        style.step = self.col(child.start).checked_sub(self.col(key.start)).filter(|s| *s > 0);
                    }
                    if let Kind::Seq { flow: false, .. } = value.kind
                        && style.seq_indent.is_none()
                        && let Some(dash) = self.dash(value)
                    {
                        style.seq_indent = self.col(dash).checked_sub(self.col(key.start));
                    }
                    self.survey(key, style);
                    self.survey(value, style);
                }
            }
            Kind::Seq { items, .. } => items.iter().for_each(|item| self.survey(item, style)),
            Kind::Alias => {}
        }
    }

    fn line_start(&self, pos: usize) -> usize {
        self.text[..pos].rfind('\n').map_or(0, |n| n + 1)
    }

    fn col(&self, pos: usize) -> usize {
        pos - self.line_start(pos)
    }

    /// The start of the line after the one `pos` is on.
    fn after_eol(&self, pos: usize) -> usize {
        self.text[pos..].find('\n').map_or(self.text.len(), |n| pos + n + 1)
    }

    /// Whether only spaces and tabs are between `from` and `to` (false when `to` is before `from`:
    /// odd layouts, as fuzzing finds, are left to re-serialization).
    fn blank(&self, from: usize, to: usize) -> bool {
        self.text.get(from..to).is_some_and(|t| t.bytes().all(|b| b == b' ' || b == b'\t'))
    }

    /// The `:` that follows a block mapping key.
    fn colon(&self, key: &Node) -> Option<usize> {
        let rest = &self.text[key.end..];
        let skipped = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        rest[skipped..].starts_with(':').then_some(key.end + skipped)
    }

    /// The `-` that introduces a block sequence item.
    fn dash(&self, item: &Node) -> Option<usize> {
        let mut before = self.text[..item.start].trim_end_matches([' ', '\t']);
        if let Kind::Scalar { style: ScalarStyle::Literal | ScalarStyle::Folded, .. } = item.kind {
            // The item's text starts on the line after its `- |` header.
            let header = before.strip_suffix('\n')?;
            let header = header.strip_suffix('\r').unwrap_or(header);
            let line = &header[header.rfind('\n').map_or(0, |n| n + 1)..];
            let indent = line.len() - line.trim_start_matches(' ').len();
            before = header.get(..header.len() - line.len() + indent + 1)?;
        }
        before.ends_with('-').then(|| before.len() - 1)
    }

    fn push(&mut self, start: usize, end: usize, text: String) {
        self.edits.push((start, end, text));
    }

    fn apply(mut self) -> Option<String> {
        self.edits.sort_by_key(|(start, end, _)| (*start, *end));
        let mut out = String::with_capacity(self.text.len() + 64);
        let mut at = 0;
        for (start, end, text) in &self.edits {
            if *start < at || end < start {
                return None;
            }
            out.push_str(&self.text[at..*start]);
            out.push_str(text);
            at = *end;
        }
        out.push_str(&self.text[at..]);
        Some(out)
    }

    /// Edits `node`, which reads as `old`, into `new`.
    fn diff(&mut self, node: &Node, old: &Value, new: &Value, place: Place) -> Option<()> {
        if old == new {
            return Some(());
        }
        match (&node.kind, old, new) {
            (Kind::Map { flow, entries }, Value::Object(old), Value::Object(new)) if *flow || !new.is_empty() => {
                self.diff_map(node, *flow, entries, old, new)
            }
            (Kind::Seq { flow, items }, Value::Array(old), Value::Array(new)) if *flow || !new.is_empty() => {
                self.diff_seq(node, *flow, items, old, new)
            }
            _ => self.replace(node, new, place),
        }
    }

    /// Where the children of a collection are.
    fn child_place(&self, parent: &Node, flow: bool, child: &Node, key: Option<&Node>) -> Place {
        if flow || self.syntax == Syntax::Json {
            let multiline = self.line_start(child.start) > parent.start;
            return Place::Flow { indent: self.col(key.unwrap_or(child).start), multiline };
        }
        match key {
            Some(key) => Place::Value { colon: self.colon(key), indent: self.col(key.start) },
            None => {
                let dash = self.dash(child);
                Place::Item { dash, indent: dash.map_or(0, |d| self.col(d)) }
            }
        }
    }

    fn diff_map(
        &mut self,
        node: &Node,
        flow: bool,
        entries: &[(Node, Node)],
        old: &Map<String, Value>,
        new: &Map<String, Value>,
    ) -> Option<()> {
        let key_of = |key: &Node| match &key.kind {
            Kind::Scalar { value, .. } => Some(value.clone()),
            _ => None,
        };
        let keys: Vec<String> = entries.iter().map(|(k, _)| key_of(k)).collect::<Option<_>>()?;
        // Duplicate or merge (`<<`) keys: the text and the value do not line up.
        if keys.len() != old.len() || keys.iter().any(|k| !old.contains_key(k)) {
            return None;
        }
        let mut removed = vec![false; entries.len()];
        for (i, ((key, value), name)) in entries.iter().zip(&keys).enumerate() {
            match new.get(name) {
                Some(v) => {
                    let place = self.child_place(node, flow, value, Some(key));
                    self.diff(value, &old[name], v, place)?;
                }
                None => removed[i] = true,
            }
        }
        let added: Vec<(&String, &Value)> = new.iter().filter(|(k, _)| !old.contains_key(*k)).collect();
        if flow {
            let spans: Vec<(usize, usize)> = entries.iter().map(|(k, v)| (k.start, v.end.max(k.end))).collect();
            self.remove_flow(&spans, &removed);
            let rendered: Vec<String> = added.iter().map(|(k, v)| self.flow_entry(node, entries, k, v)).collect();
            self.insert_flow(node, &spans, spans.len().checked_sub(1), &rendered);
            return Some(());
        }
        for (i, (key, value)) in entries.iter().enumerate().filter(|(i, _)| removed[*i]) {
            let line = self.line_start(key.start);
            if self.blank(line, key.start) {
                let end = self.after_eol(value.end.max(key.end));
                self.push(line, end, String::new());
            } else {
                // The first entry of a sequence item (`- name: a`): the next entry moves up.
                let (next, _) = entries.get(i + 1).filter(|_| !removed[i + 1])?;
                let end = self.after_eol(value.end.max(key.end));
                if !self.text.get(end..next.start)?.trim().is_empty() {
                    return None;
                }
                self.push(key.start, next.start, String::new());
            }
        }
        if !added.is_empty() {
            let (first, _) = entries.first()?;
            let (last_key, last) = entries.last()?;
            let indent = self.col(first.start);
            let prefer = sibling_quotes(entries, old);
            let at = self.after_eol(last.end.max(last_key.end));
            let mut text = String::new();
            if at == self.text.len() && !self.text.ends_with('\n') {
                text.push_str(self.newline);
            }
            for (k, v) in added {
                text.push_str(&format!(
                    "{}{}:{}{}",
                    spaces(indent),
                    self.key(k, false),
                    self.after_colon(v, indent, prefer),
                    self.newline
                ));
            }
            self.push(at, at, text);
        }
        Some(())
    }

    fn diff_seq(&mut self, node: &Node, flow: bool, items: &[Node], old: &[Value], new: &[Value]) -> Option<()> {
        if items.len() != old.len() {
            return None;
        }
        let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
        let room = old.len().min(new.len()) - prefix;
        let suffix = old.iter().rev().zip(new.iter().rev()).take(room).take_while(|(a, b)| a == b).count();
        let (old_mid, new_mid) = (prefix..old.len() - suffix, prefix..new.len() - suffix);
        let paired = old_mid.len().min(new_mid.len());
        for i in prefix..prefix + paired {
            let place = self.child_place(node, flow, &items[i], None);
            self.diff(&items[i], &old[i], &new[i - prefix + new_mid.start], place)?;
        }
        let mut removed = vec![false; items.len()];
        removed[old_mid.start + paired..old_mid.end].iter_mut().for_each(|r| *r = true);
        let added = &new[new_mid.start + paired..new_mid.end];
        // Added items go after the last paired (or prefix) item, or first.
        let after = (old_mid.start + paired).checked_sub(1);
        if flow {
            let spans: Vec<(usize, usize)> = items.iter().map(|n| (n.start, n.end)).collect();
            self.remove_flow(&spans, &removed);
            let rendered: Vec<String> = added
                .iter()
                .map(|v| {
                    let indent = items.first().map_or(self.col(node.start) + self.step, |i| self.col(i.start));
                    self.flow_value(v, indent, self.multiline(node, items.first()))
                })
                .collect();
            self.insert_flow(node, &spans, after, &rendered);
            return Some(());
        }
        for item in items.iter().zip(&removed).filter(|(_, r)| **r).map(|(item, _)| item) {
            let dash = self.dash(item)?;
            let line = self.line_start(dash);
            if !self.blank(line, dash) {
                return None;
            }
            self.push(line, self.after_eol(item.end), String::new());
        }
        if !added.is_empty() {
            let dash = self.dash(items.first()?)?;
            let indent = self.col(dash);
            let at = match after {
                Some(i) => self.after_eol(items[i].end),
                None if self.blank(self.line_start(dash), dash) => self.line_start(dash),
                None => return None,
            };
            let mut text = String::new();
            if at == self.text.len() && !self.text.ends_with('\n') {
                text.push_str(self.newline);
            }
            for v in added {
                text.push_str(&format!("{}-{}{}", spaces(indent), self.after_dash(v, indent), self.newline));
            }
            self.push(at, at, text);
        }
        Some(())
    }

    fn multiline(&self, node: &Node, first: Option<&Node>) -> bool {
        first.is_some_and(|f| self.line_start(f.start) > node.start)
    }

    /// Removes flow items (`(start, end)` of each, a map entry from its key): a removed run goes
    /// with the separator before it, or, at the start, with the one after it.
    fn remove_flow(&mut self, spans: &[(usize, usize)], removed: &[bool]) {
        let mut i = 0;
        while i < spans.len() {
            if !removed[i] {
                i += 1;
                continue;
            }
            let run = i;
            while i < spans.len() && removed[i] {
                i += 1;
            }
            let range = match (run.checked_sub(1), spans.get(i)) {
                (Some(before), _) => (spans[before].1, spans[i - 1].1),
                (None, Some(next)) => (spans[0].0, next.0),
                (None, None) => (spans[0].0, spans[i - 1].1),
            };
            self.push(range.0, range.1, String::new());
        }
    }

    /// Inserts rendered flow items after item `after` (first with `None`).
    fn insert_flow(&mut self, node: &Node, spans: &[(usize, usize)], after: Option<usize>, rendered: &[String]) {
        if rendered.is_empty() {
            return;
        }
        let separator = self.separator(node, spans);
        match after {
            Some(i) => {
                let text: String = rendered.iter().map(|r| format!("{separator}{r}")).collect();
                self.push(spans[i].1, spans[i].1, text);
            }
            None if spans.is_empty() => {
                let text = rendered.join(", ");
                self.push(node.start + 1, node.start + 1, text);
            }
            None => {
                let text: String = rendered.iter().map(|r| format!("{r}{separator}")).collect();
                self.push(spans[0].0, spans[0].0, text);
            }
        }
    }

    /// The separator between flow items, as the collection writes it.
    fn separator(&self, node: &Node, spans: &[(usize, usize)]) -> String {
        if let [.., (_, end), (start, _)] = spans
            && let Some(between) = self.text.get(*end..*start)
            && between.trim() == ","
        {
            return between.to_string();
        }
        match spans.first() {
            Some((start, _)) if self.line_start(*start) > node.start => {
                format!(",{}{}", self.newline, spaces(self.col(*start)))
            }
            _ => ", ".to_string(),
        }
    }

    /// A new entry of a flow map, `key: value`.
    fn flow_entry(&self, node: &Node, entries: &[(Node, Node)], key: &str, value: &Value) -> String {
        let indent = entries.first().map_or(self.col(node.start) + self.step, |(k, _)| self.col(k.start));
        // The separator between key and value as the last entry writes it (`"a":1` or `a: 1`).
        let colon = entries
            .last()
            .map(|(k, v)| &self.text[k.end..v.start.max(k.end)])
            .filter(|s| s.trim() == ":")
            .unwrap_or(": ");
        let multiline = self.multiline(node, entries.first().map(|(k, _)| k));
        format!("{}{colon}{}", self.key(key, true), self.flow_value(value, indent, multiline))
    }

    /// Replaces a node's value wholesale: a changed scalar, or a change of kind.
    fn replace(&mut self, node: &Node, new: &Value, place: Place) -> Option<()> {
        let (start, end) = (node.start, node.end);
        let inline = match &node.kind {
            Kind::Scalar { style, .. } => {
                !matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) && start < end && is_scalar(new)
            }
            _ => false,
        };
        let style = match &node.kind {
            Kind::Scalar { style, .. } => Some(*style),
            _ => None,
        };
        let multiline_string = new.as_str().is_some_and(|s| s.contains('\n'));
        match place {
            Place::Flow { indent, multiline } => {
                if start == end {
                    return None;
                }
                let text = match (new, style) {
                    (Value::String(s), Some(style)) if self.syntax == Syntax::Yaml => self.string(s, Some(style), true),
                    _ => self.flow_value(new, indent, multiline),
                };
                self.push(start, end, text);
            }
            _ if inline && !(multiline_string && self.syntax == Syntax::Yaml) => {
                let text = self.scalar(new, style, false);
                self.push(start, end, text);
            }
            Place::Value { colon, indent } => {
                let colon = colon?;
                let text = self.after_colon(new, indent, style);
                self.push(colon + 1, end.max(colon + 1), text);
            }
            Place::Item { dash, indent } => {
                let dash = dash?;
                let text = self.after_dash(new, indent);
                self.push(dash + 1, end.max(dash + 1), text);
            }
            Place::Root => return None,
        }
        Some(())
    }

    /// What follows `key:` in block style for a value, its key at column `indent`.
    fn after_colon(&self, value: &Value, indent: usize, prefer: Option<ScalarStyle>) -> String {
        let nl = self.newline;
        match value {
            Value::Object(map) if !map.is_empty() => format!("{nl}{}", self.block_map(map, indent + self.step)),
            Value::Array(items) if !items.is_empty() => {
                format!("{nl}{}", self.block_seq(items, indent + self.seq_indent))
            }
            Value::Object(_) => " {}".into(),
            Value::Array(_) => " []".into(),
            Value::String(s) => match self.block_scalar(s, indent + self.step, prefer) {
                Some(block) => format!(" {block}"),
                None => format!(" {}", self.string(s, prefer, false)),
            },
            scalar => format!(" {}", self.scalar(scalar, prefer, false)),
        }
    }

    /// What follows `-` for a sequence item, the dash at column `indent`.
    fn after_dash(&self, value: &Value, indent: usize) -> String {
        let inner = indent + 2;
        match value {
            Value::Object(map) if !map.is_empty() => format!(" {}", &self.block_map(map, inner)[inner..]),
            Value::Array(items) if !items.is_empty() => format!(" {}", &self.block_seq(items, inner)[inner..]),
            Value::Object(_) => " {}".into(),
            Value::Array(_) => " []".into(),
            Value::String(s) => match self.block_scalar(s, inner, None) {
                Some(block) => format!(" {block}"),
                None => format!(" {}", self.string(s, None, false)),
            },
            scalar => format!(" {}", self.scalar(scalar, None, false)),
        }
    }

    /// A non-empty map in block style, each line indented by `indent`, without a final newline.
    fn block_map(&self, map: &Map<String, Value>, indent: usize) -> String {
        let lines: Vec<String> = map
            .iter()
            .map(|(k, v)| format!("{}{}:{}", spaces(indent), self.key(k, false), self.after_colon(v, indent, None)))
            .collect();
        lines.join(self.newline)
    }

    /// A non-empty sequence in block style, its dashes at `indent`, without a final newline.
    fn block_seq(&self, items: &[Value], indent: usize) -> String {
        let lines: Vec<String> =
            items.iter().map(|v| format!("{}-{}", spaces(indent), self.after_dash(v, indent))).collect();
        lines.join(self.newline)
    }

    /// A multi-line string as a literal block scalar (`|`), or a long one that was folded as a
    /// folded one (`>-`), its lines at `indent`; `None` when it cannot be written so.
    fn block_scalar(&self, s: &str, indent: usize, prefer: Option<ScalarStyle>) -> Option<String> {
        let (body, chomp) = match s.strip_suffix('\n') {
            Some(body) => (body, ""),
            None => (s, "-"),
        };
        let printable = body.chars().all(|c| c == '\n' || c == '\t' || printable(c));
        if !printable || body.ends_with('\n') || body.starts_with([' ', '\t']) || body.is_empty() {
            return None;
        }
        let nl = self.newline;
        if body.contains('\n') {
            let lines: Vec<String> = body
                .split('\n')
                .map(|l| if l.is_empty() { String::new() } else { format!("{}{l}", spaces(indent)) })
                .collect();
            return Some(format!("|{chomp}{nl}{}", lines.join(nl)));
        }
        if prefer != Some(ScalarStyle::Folded) || body.contains('\t') || body.ends_with(' ') {
            return None;
        }
        // Fold only at single spaces: a line starting with a space would not fold back.
        let width = FOLD_WIDTH.saturating_sub(indent).max(40);
        let bytes = body.as_bytes();
        let breaks = (1..bytes.len().saturating_sub(1))
            .filter(|&i| bytes[i] == b' ' && bytes[i - 1] != b' ' && bytes[i + 1] != b' ');
        let (mut lines, mut start, mut previous) = (Vec::new(), 0, None::<usize>);
        for at in breaks.chain([body.len()]) {
            if at - start > width
                && let Some(b) = previous.filter(|b| *b > start)
            {
                lines.push(&body[start..b]);
                start = b + 1;
            }
            previous = Some(at);
        }
        lines.push(&body[start..]);
        let lines: Vec<String> = lines.iter().map(|l| format!("{}{l}", spaces(indent))).collect();
        Some(format!(">{chomp}{nl}{}", lines.join(nl)))
    }

    /// A value written inline in flow context (or as JSON).
    fn flow_value(&self, value: &Value, indent: usize, multiline: bool) -> String {
        if self.syntax == Syntax::Json {
            if multiline && (value.is_object() || value.is_array()) {
                let pretty = pretty_json(value, self.step);
                return pretty.replace('\n', &format!("{}{}", self.newline, spaces(indent)));
            }
            return serde_json::to_string(value).unwrap_or_default();
        }
        match value {
            Value::Object(map) => {
                let entries: Vec<String> = map
                    .iter()
                    .map(|(k, v)| format!("{}: {}", self.key(k, true), self.flow_value(v, indent, false)))
                    .collect();
                format!("{{{}}}", entries.join(", "))
            }
            Value::Array(items) => {
                let items: Vec<String> = items.iter().map(|v| self.flow_value(v, indent, false)).collect();
                format!("[{}]", items.join(", "))
            }
            scalar => self.scalar(scalar, None, true),
        }
    }

    fn key(&self, key: &str, flow: bool) -> String {
        match self.syntax {
            Syntax::Json => serde_json::to_string(key).unwrap_or_default(),
            Syntax::Yaml => self.string(key, None, flow),
        }
    }

    fn scalar(&self, value: &Value, prefer: Option<ScalarStyle>, flow: bool) -> String {
        match (value, self.syntax) {
            (Value::String(s), Syntax::Yaml) => self.string(s, prefer, flow),
            (Value::Null, Syntax::Yaml) => "null".into(),
            (value, _) => serde_json::to_string(value).unwrap_or_default(),
        }
    }

    /// A string as a scalar the reader reads back as that string: in the preferred style when it
    /// allows, plain when that reads as the string, else quoted.
    fn string(&self, s: &str, prefer: Option<ScalarStyle>, flow: bool) -> String {
        if self.syntax == Syntax::Json {
            return serde_json::to_string(s).unwrap_or_default();
        }
        match prefer {
            Some(ScalarStyle::SingleQuoted) if single_ok(s) => single(s),
            Some(ScalarStyle::DoubleQuoted) => double(s),
            _ if plain_ok(s, flow) => s.to_string(),
            _ if self.quote == ScalarStyle::SingleQuoted && single_ok(s) => single(s),
            _ => double(s),
        }
    }
}

#[derive(Default)]
struct Style {
    step: Option<usize>,
    seq_indent: Option<usize>,
    single: usize,
    double: usize,
}

/// The quotes every string value of a map is written in, if they all share them: a new entry
/// gets them too (Helm output quotes every label).
fn sibling_quotes(entries: &[(Node, Node)], old: &Map<String, Value>) -> Option<ScalarStyle> {
    let mut styles = entries.iter().filter_map(|(key, value)| match (&key.kind, &value.kind) {
        (Kind::Scalar { value: name, .. }, Kind::Scalar { style, .. })
            if old.get(name).is_some_and(Value::is_string) =>
        {
            Some(*style)
        }
        _ => None,
    });
    let first = styles.next()?;
    (matches!(first, ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted) && styles.all(|s| s == first))
        .then_some(first)
}

fn is_scalar(value: &Value) -> bool {
    !value.is_object() && !value.is_array()
}

fn spaces(n: usize) -> String {
    " ".repeat(n)
}

fn pretty_json(value: &Value, step: usize) -> String {
    use serde::Serialize;
    let indent = spaces(step);
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(
        &mut out,
        serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes()),
    );
    match value.serialize(&mut serializer) {
        Ok(()) => String::from_utf8(out).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Characters YAML allows unescaped (`c-printable`, less the line breaks and tab).
fn printable(c: char) -> bool {
    matches!(c, ' '..='~')
        || (c >= '\u{a0}' && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'))
}

/// Whether a plain scalar would read as exactly this string: it parses as a plain scalar here, and
/// the reader resolves it to a string (not a number, a boolean of YAML 1.1 or 1.2, a null, …).
fn plain_ok(s: &str, flow: bool) -> bool {
    let Some(first) = s.chars().next() else { return false };
    let second = s[first.len_utf8()..].chars().next();
    // An indicator, or `- ` (a sequence entry), cannot start a plain scalar.
    let indicator = "?:,[]{}#&*!|>'\"%@`".contains(first) || (first == '-' && second.is_none_or(|c| c == ' '));
    let marker = s.starts_with("---") || s.starts_with("...") || s.contains(": ") || s.contains(" #");
    let unfit = indicator
        || marker
        || first == ' '
        || s.ends_with([' ', ':'])
        || !s.chars().all(printable)
        || (flow && s.contains([',', '[', ']', '{', '}']));
    !unfit
        && matches!(super::parse_yaml(&format!("k: {s}\n")), Ok(Value::Object(m)) if m.get("k").and_then(Value::as_str) == Some(s))
}

fn single_ok(s: &str) -> bool {
    s.chars().all(printable)
}

fn single(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A double-quoted scalar, escaping what YAML does not allow as is.
fn double(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if printable(c) => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{:04x}", c as u32)),
        }
    }
    out.push('"');
    out
}
