//! A YAML (and therefore JSON) document tree that keeps the source span of every node.
//!
//! Built from `saphyr-parser` events with an explicit stack, so hostile input cannot overflow the call
//! stack; nesting deeper than [`MAX_DEPTH`] is rejected. Scalars are resolved with the YAML 1.2 core schema
//! (plus PyYAML's `yes`/`no`/`on`/`off` booleans where a boolean is expected: see the schema walker).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as YamlSpan};

use crate::source::{SourceFile, Span};

/// Deepest nesting of sequences and mappings accepted.
pub const MAX_DEPTH: usize = 200;

/// How a string scalar was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Unquoted.
    Plain,
    /// `'single quoted'`.
    SingleQuoted,
    /// `"double quoted"`.
    DoubleQuoted,
    /// A `|` block.
    Literal,
    /// A `>` block.
    Folded,
}

/// One node of the tree.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The value.
    pub kind: NodeKind,
    /// Where it was written.
    pub span: Span,
}

/// The value of a [`Node`].
#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// `null`, `~` or nothing.
    Null,
    /// `true`/`false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string, with the style it was written in.
    Str(String, Style),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order. Keys are usually strings.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The string value, if this is a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Str(s, _) => Some(s),
            _ => None,
        }
    }

    /// The entries, if this is a mapping.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The items, if this is a sequence.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// Look up a key in a mapping (the key node and the value node).
    pub fn get(&self, key: &str) -> Option<(&Node, &Node)> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.key_text().as_deref() == Some(key))
            .map(|(k, v)| (k, v))
    }

    /// A mapping key as text (strings as written; numbers and booleans printed).
    pub fn key_text(&self) -> Option<String> {
        match &self.kind {
            NodeKind::Str(s, _) => Some(s.clone()),
            NodeKind::Int(i) => Some(i.to_string()),
            NodeKind::Float(f) => Some(f.to_string()),
            NodeKind::Bool(b) => Some(b.to_string()),
            NodeKind::Null => Some("null".into()),
            _ => None,
        }
    }

    /// A short name of the node's type for messages: "a string", "a mapping", ...
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) => "an integer",
            NodeKind::Float(_) => "a number",
            NodeKind::Str(..) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    /// Convert to a JSON value (mapping keys become strings).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Int(i) => Value::from(*i),
            NodeKind::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            NodeKind::Str(s, _) => Value::String(s.clone()),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .filter_map(|(k, v)| Some((k.key_text()?, v.to_json())))
                    .collect(),
            ),
        }
    }
}

/// A problem found while building the tree.
#[derive(Clone, Debug, PartialEq)]
pub enum YamlProblem {
    /// The parser stopped: the text is not well-formed.
    Syntax {
        /// Where.
        at: Span,
        /// The parser's message.
        message: String,
    },
    /// A mapping repeats a key; the later value wins.
    DuplicateKey {
        /// The key text.
        key: String,
        /// The first occurrence.
        first: Span,
        /// The repeated occurrence.
        again: Span,
    },
    /// More than one document; only the first is used.
    ExtraDocuments {
        /// Where the second document starts.
        at: Span,
    },
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep {
        /// Where the limit was crossed.
        at: Span,
    },
    /// An alias to an anchor that was never defined.
    UnknownAlias {
        /// Where.
        at: Span,
    },
}

/// The result of parsing: the first document's root (if any) and the problems found.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The root node; `None` for an empty stream or when the syntax error came before any node finished.
    pub root: Option<Node>,
    /// Problems, in source order.
    pub problems: Vec<YamlProblem>,
}

enum Frame {
    Seq {
        start: usize,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        start: usize,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
    },
}

fn to_span(source: &SourceFile, span: &YamlSpan) -> Span {
    let start = source.offset_of(span.start.line(), span.start.col());
    let end = source.offset_of(span.end.line(), span.end.col());
    Span::new(start, end)
}

/// Parse `source` as YAML (JSON is parsed as the YAML it is a subset of).
pub fn parse(source: &SourceFile) -> Parsed {
    let mut parsed = Parsed::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut documents = 0usize;
    let mut done = false;

    for item in Parser::new_from_str(source.text()) {
        let (event, yspan) = match item {
            Ok(pair) => pair,
            Err(err) => {
                let m = err.marker();
                let at = source.offset_of(m.line(), m.col());
                parsed.problems.push(YamlProblem::Syntax {
                    at: Span::point(at),
                    message: err.info().to_owned(),
                });
                break;
            }
        };
        let span = to_span(source, &yspan);
        let finished: Option<Node> = match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => None,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    parsed.problems.push(YamlProblem::ExtraDocuments { at: span });
                    done = true;
                }
                None
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some(node) => Some(Node {
                    kind: node.kind.clone(),
                    span,
                }),
                None => {
                    parsed.problems.push(YamlProblem::UnknownAlias { at: span });
                    Some(Node {
                        kind: NodeKind::Null,
                        span,
                    })
                }
            },
            Event::Scalar(value, style, anchor, tag) => {
                let forced_str = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let node = Node {
                    kind: resolve_scalar(&value, style, forced_str),
                    span,
                };
                if anchor > 0 {
                    anchors.insert(anchor, node.clone());
                }
                Some(node)
            }
            Event::SequenceStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    parsed.problems.push(YamlProblem::TooDeep { at: span });
                    break;
                }
                stack.push(Frame::Seq {
                    start: span.start,
                    anchor,
                    items: Vec::new(),
                });
                None
            }
            Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    parsed.problems.push(YamlProblem::TooDeep { at: span });
                    break;
                }
                stack.push(Frame::Map {
                    start: span.start,
                    anchor,
                    entries: Vec::new(),
                    pending_key: None,
                });
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq { start, anchor, items }) => {
                    let node = Node {
                        kind: NodeKind::Seq(items),
                        span: Span::new(start, span.end.max(start)),
                    };
                    if anchor > 0 {
                        anchors.insert(anchor, node.clone());
                    }
                    Some(node)
                }
                _ => None,
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map {
                    start,
                    anchor,
                    entries,
                    ..
                }) => {
                    let entries = merge_keys(entries);
                    let node = Node {
                        kind: NodeKind::Map(entries),
                        span: Span::new(start, span.end.max(start)),
                    };
                    if anchor > 0 {
                        anchors.insert(anchor, node.clone());
                    }
                    Some(node)
                }
                _ => None,
            },
        };
        if done {
            break;
        }
        if let Some(node) = finished {
            match stack.last_mut() {
                None => {
                    if parsed.root.is_none() {
                        parsed.root = Some(node);
                    }
                }
                Some(Frame::Seq { items, .. }) => items.push(node),
                Some(Frame::Map {
                    entries, pending_key, ..
                }) => match pending_key.take() {
                    None => *pending_key = Some(node),
                    Some(key) => {
                        if let Some(text) = key.key_text()
                            && text != "<<"
                            && let Some(pos) = entries
                                .iter()
                                .position(|(k, _)| k.key_text().as_deref() == Some(&text))
                        {
                            parsed.problems.push(YamlProblem::DuplicateKey {
                                key: text,
                                first: entries[pos].0.span,
                                again: key.span,
                            });
                            entries[pos] = (key, node);
                        } else {
                            entries.push((key, node));
                        }
                    }
                },
            }
        }
    }
    parsed
}

/// Apply YAML merge keys (`<<: *base`): entries of the merged mappings that are not already present.
fn merge_keys(entries: Vec<(Node, Node)>) -> Vec<(Node, Node)> {
    if !entries.iter().any(|(k, _)| k.as_str() == Some("<<")) {
        return entries;
    }
    let mut own = Vec::new();
    let mut merged = Vec::new();
    for (k, v) in entries {
        if k.as_str() == Some("<<") {
            match v.kind {
                NodeKind::Map(m) => merged.extend(m),
                NodeKind::Seq(items) => {
                    for item in items {
                        if let NodeKind::Map(m) = item.kind {
                            merged.extend(m);
                        }
                    }
                }
                other => own.push((
                    k,
                    Node {
                        kind: other,
                        span: v.span,
                    },
                )),
            }
        } else {
            own.push((k, v));
        }
    }
    for (k, v) in merged {
        let text = k.key_text();
        if !own.iter().any(|(ok, _)| ok.key_text() == text) {
            own.push((k, v));
        }
    }
    own
}

fn resolve_scalar(value: &str, style: ScalarStyle, forced_str: bool) -> NodeKind {
    let style = match style {
        ScalarStyle::Plain => Style::Plain,
        ScalarStyle::SingleQuoted => Style::SingleQuoted,
        ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
        ScalarStyle::Literal => Style::Literal,
        ScalarStyle::Folded => Style::Folded,
    };
    if style != Style::Plain || forced_str {
        return NodeKind::Str(value.to_owned(), style);
    }
    match value {
        "" | "~" | "null" | "Null" | "NULL" => return NodeKind::Null,
        "true" | "True" | "TRUE" => return NodeKind::Bool(true),
        "false" | "False" | "FALSE" => return NodeKind::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return NodeKind::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return NodeKind::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return NodeKind::Float(f64::NAN),
        _ => {}
    }
    if let Some(i) = parse_int(value) {
        return NodeKind::Int(i);
    }
    if looks_like_float(value)
        && let Ok(f) = value.parse::<f64>()
    {
        return NodeKind::Float(f);
    }
    NodeKind::Str(value.to_owned(), Style::Plain)
}

fn parse_int(value: &str) -> Option<i64> {
    let (neg, digits) = match value.as_bytes().first()? {
        b'-' => (true, &value[1..]),
        b'+' => (false, &value[1..]),
        _ => (false, value),
    };
    let parsed = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse::<i64>().ok()
    } else {
        None
    }?;
    Some(if neg { -parsed } else { parsed })
}

fn looks_like_float(value: &str) -> bool {
    let body = value.trim_start_matches(['-', '+']);
    let mut saw_digit = false;
    for b in body.bytes() {
        match b {
            b'0'..=b'9' => saw_digit = true,
            b'.' | b'e' | b'E' | b'-' | b'+' => {}
            _ => return false,
        }
    }
    saw_digit
        && body
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> (SourceFile, Parsed) {
        let f = SourceFile::new("t.yaml", text);
        let p = parse(&f);
        (f, p)
    }

    #[test]
    fn scalars_resolve_like_yaml_1_2() {
        let (_, p) = parse_str("a: 1\nb: 1.5\nc: true\nd: ~\ne: '1'\nf: hello\ng: 0x10\nh: 1e3\ni: 1.2.3\n");
        let json = p.root.unwrap().to_json();
        assert_eq!(
            json,
            serde_json::json!({"a": 1, "b": 1.5, "c": true, "d": null, "e": "1", "f": "hello", "g": 16, "h": 1000.0, "i": "1.2.3"})
        );
    }

    #[test]
    fn spans_point_at_values() {
        let (f, p) = parse_str("cascade_id: demo\ncells:\n  - name: a\n");
        let root = p.root.unwrap();
        let (_, cells) = root.get("cells").unwrap();
        let (_, name) = cells.as_seq().unwrap()[0].get("name").unwrap();
        assert_eq!(f.slice(name.span), "a");
        assert_eq!(f.line_col(name.span.start).line, 3);
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let (_, p) = parse_str("a: 1\na: 2\n");
        assert!(matches!(&p.problems[0], YamlProblem::DuplicateKey { key, .. } if key == "a"));
        assert_eq!(p.root.unwrap().to_json(), serde_json::json!({"a": 2}));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let (f, p) = parse_str("a: [1, 2\nb: 3\n");
        let YamlProblem::Syntax { at, .. } = &p.problems[0] else {
            panic!("{:?}", p.problems)
        };
        assert!(f.line_col(at.start).line >= 1);
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let (_, p) = parse_str("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\nagain: *b\n");
        assert_eq!(
            p.root.unwrap().to_json(),
            serde_json::json!({"base": {"x": 1, "y": 2}, "use": {"y": 3, "x": 1}, "again": {"x": 1, "y": 2}})
        );
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let text = "[".repeat(100_000);
        let (_, p) = parse_str(&text);
        assert!(
            p.problems
                .iter()
                .any(|x| matches!(x, YamlProblem::TooDeep { .. } | YamlProblem::Syntax { .. }))
        );
    }

    #[test]
    fn json_parses_too() {
        let (_, p) = parse_str("{\"cascade_id\": \"x\", \"cells\": [{\"name\": \"a\", \"tool\": \"t\"}]}");
        assert_eq!(p.root.unwrap().to_json()["cells"][0]["tool"], "t");
    }

    #[test]
    fn extra_documents_are_noted() {
        let (_, p) = parse_str("a: 1\n---\nb: 2\n");
        assert!(matches!(p.problems[0], YamlProblem::ExtraDocuments { .. }));
        assert_eq!(p.root.unwrap().to_json(), serde_json::json!({"a": 1}));
    }
}
