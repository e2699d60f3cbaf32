//! A YAML (and therefore JSON) document tree that keeps the source span of every node.
//!
//! Built from `saphyr-parser` events with an explicit stack, so hostile input cannot overflow the call
//! stack. Three budgets from `[limits]` ([`LimitsConfig`]) are checked while the tree is built, before an
//! alias is copied, so a "billion laughs" file is refused after a few kilobytes of work instead of
//! growing to gigabytes: alias references expanded (`yaml_aliases`), nodes after expansion (`yaml_nodes`;
//! a string counts one node plus one per [`BYTES_PER_NODE`] bytes, so one long string aliased many times
//! is bounded too), and nesting depth after expansion (`yaml_depth`). Scalars are resolved with the YAML
//! 1.2 core schema (plus PyYAML's `yes`/`no`/`on`/`off` booleans where a boolean is expected: see the
//! schema walker).

use std::collections::HashMap;

use rvbbit_core::config::LimitsConfig;
use saphyr_parser::{Event, Parser, ScalarStyle, Span as YamlSpan};

use crate::source::{SourceFile, Span};

/// A string scalar costs one node of `limits.yaml_nodes` plus one per this many bytes of text.
pub const BYTES_PER_NODE: usize = 64;

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
    /// A `limits.yaml_*` budget was exceeded; the tree was not built further.
    OverLimit {
        /// Where the limit was crossed (the alias, or the collection that went too deep).
        at: Span,
        /// Which budget.
        limit: YamlLimit,
        /// Its configured value.
        max: u64,
    },
    /// An alias to an anchor that was never defined.
    UnknownAlias {
        /// Where.
        at: Span,
    },
}

/// The budgets of [`parse_with`], each named after its `[limits]` setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum YamlLimit {
    /// `limits.yaml_aliases`: alias references expanded.
    Aliases,
    /// `limits.yaml_nodes`: nodes after alias expansion.
    Nodes,
    /// `limits.yaml_depth`: nesting depth of sequences and mappings, aliases expanded.
    Depth,
}

impl YamlLimit {
    /// The setting, as written in `rvbbit.toml` (`limits.yaml_aliases`, ...).
    pub fn setting(self) -> &'static str {
        match self {
            YamlLimit::Aliases => "limits.yaml_aliases",
            YamlLimit::Nodes => "limits.yaml_nodes",
            YamlLimit::Depth => "limits.yaml_depth",
        }
    }

    /// What exceeding it means, for messages ("more than N ...").
    pub fn what(self) -> &'static str {
        match self {
            YamlLimit::Aliases => "alias references (`*name`) to expand",
            YamlLimit::Nodes => "nodes once its aliases are expanded",
            YamlLimit::Depth => "levels of nesting (aliases expanded)",
        }
    }
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
        cost: Cost,
    },
    Map {
        start: usize,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
        cost: Cost,
    },
}

impl Frame {
    fn cost_mut(&mut self) -> &mut Cost {
        match self {
            Frame::Seq { cost, .. } | Frame::Map { cost, .. } => cost,
        }
    }
}

/// What a subtree costs: its weight in `yaml_nodes` and its height in collections (0 for a scalar).
#[derive(Clone, Copy, Debug, Default)]
struct Cost {
    nodes: u64,
    height: u32,
}

impl Cost {
    /// A collection's own cost before its children.
    const COLLECTION: Cost = Cost { nodes: 1, height: 1 };

    fn scalar(text_len: usize) -> Cost {
        Cost {
            nodes: 1 + (text_len / BYTES_PER_NODE) as u64,
            height: 0,
        }
    }

    /// Add a finished child to a collection's cost.
    fn add_child(&mut self, child: Cost) {
        self.nodes = self.nodes.saturating_add(child.nodes);
        self.height = self.height.max(child.height.saturating_add(1));
    }
}

/// The running totals checked against the limits.
struct Budget<'l> {
    limits: &'l LimitsConfig,
    aliases: u64,
    nodes: u64,
}

impl Budget<'_> {
    /// Charge `cost` nodes; `Err` names the budget that ran out.
    fn charge(&mut self, cost: u64) -> Result<(), (YamlLimit, u64)> {
        self.nodes = self.nodes.saturating_add(cost);
        if self.nodes > self.limits.yaml_nodes {
            return Err((YamlLimit::Nodes, self.limits.yaml_nodes));
        }
        Ok(())
    }

    /// Charge one alias expanding a subtree of `cost` at nesting `depth`.
    fn expand(&mut self, cost: Cost, depth: usize) -> Result<(), (YamlLimit, u64)> {
        self.aliases += 1;
        if self.aliases > self.limits.yaml_aliases {
            return Err((YamlLimit::Aliases, self.limits.yaml_aliases));
        }
        self.check_depth(depth.saturating_add(cost.height as usize))?;
        self.charge(cost.nodes)
    }

    fn check_depth(&self, depth: usize) -> Result<(), (YamlLimit, u64)> {
        if depth > self.limits.yaml_depth as usize {
            return Err((YamlLimit::Depth, u64::from(self.limits.yaml_depth)));
        }
        Ok(())
    }
}

fn to_span(source: &SourceFile, span: &YamlSpan) -> Span {
    let start = source.offset_of(span.start.line(), span.start.col());
    let end = source.offset_of(span.end.line(), span.end.col());
    Span::new(start, end)
}

/// Parse `source` as YAML (JSON is parsed as the YAML it is a subset of) within the default limits.
pub fn parse(source: &SourceFile) -> Parsed {
    parse_with(source, &LimitsConfig::default())
}

/// Parse `source` within `limits` (`yaml_aliases`, `yaml_nodes`, `yaml_depth`). Exceeding one stops the
/// parse with a [`YamlProblem::OverLimit`] at the alias or collection that crossed it; nothing past that
/// point is built or copied.
pub fn parse_with(source: &SourceFile, limits: &LimitsConfig) -> Parsed {
    let mut parsed = Parsed::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, (Node, Cost)> = HashMap::new();
    let mut budget = Budget {
        limits,
        aliases: 0,
        nodes: 0,
    };
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
        let step = match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => Ok(None),
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    parsed.problems.push(YamlProblem::ExtraDocuments { at: span });
                    done = true;
                }
                Ok(None)
            }
            Event::Alias(id) => match anchors.get(&id) {
                // Charge before copying: the copy is what a "billion laughs" file makes explode.
                Some((node, cost)) => budget.expand(*cost, stack.len()).map(|()| {
                    Some((
                        Node {
                            kind: node.kind.clone(),
                            span,
                        },
                        *cost,
                    ))
                }),
                None => {
                    parsed.problems.push(YamlProblem::UnknownAlias { at: span });
                    Ok(Some((
                        Node {
                            kind: NodeKind::Null,
                            span,
                        },
                        Cost::scalar(0),
                    )))
                }
            },
            Event::Scalar(value, style, anchor, tag) => {
                let cost = Cost::scalar(value.len());
                budget.charge(cost.nodes).map(|()| {
                    let forced_str = tag.as_ref().is_some_and(|t| t.suffix == "str");
                    let node = Node {
                        kind: resolve_scalar(&value, style, forced_str),
                        span,
                    };
                    if anchor > 0 {
                        anchors.insert(anchor, (node.clone(), cost));
                    }
                    Some((node, cost))
                })
            }
            Event::SequenceStart(anchor, _) => budget
                .check_depth(stack.len() + 1)
                .and_then(|()| budget.charge(1))
                .map(|()| {
                    stack.push(Frame::Seq {
                        start: span.start,
                        anchor,
                        items: Vec::new(),
                        cost: Cost::COLLECTION,
                    });
                    None
                }),
            Event::MappingStart(anchor, _) => budget
                .check_depth(stack.len() + 1)
                .and_then(|()| budget.charge(1))
                .map(|()| {
                    stack.push(Frame::Map {
                        start: span.start,
                        anchor,
                        entries: Vec::new(),
                        pending_key: None,
                        cost: Cost::COLLECTION,
                    });
                    None
                }),
            Event::SequenceEnd | Event::MappingEnd => {
                Ok(stack.pop().map(|frame| finish(frame, span.end, &mut anchors)))
            }
        };
        let finished = match step {
            Ok(finished) => finished,
            Err((limit, max)) => {
                parsed
                    .problems
                    .push(YamlProblem::OverLimit { at: span, limit, max });
                break;
            }
        };
        if done {
            break;
        }
        if let Some((node, cost)) = finished {
            match stack.last_mut() {
                None => {
                    if parsed.root.is_none() {
                        parsed.root = Some(node);
                    }
                }
                Some(frame) => {
                    frame.cost_mut().add_child(cost);
                    attach(frame, node, &mut parsed.problems);
                }
            }
        }
    }
    parsed
}

/// Close a collection: build its node (applying merge keys) and remember it when it is anchored.
fn finish(frame: Frame, end: usize, anchors: &mut HashMap<usize, (Node, Cost)>) -> (Node, Cost) {
    let (node, anchor, cost) = match frame {
        Frame::Seq {
            start,
            anchor,
            items,
            cost,
        } => (
            Node {
                kind: NodeKind::Seq(items),
                span: Span::new(start, end.max(start)),
            },
            anchor,
            cost,
        ),
        Frame::Map {
            start,
            anchor,
            entries,
            cost,
            ..
        } => (
            Node {
                kind: NodeKind::Map(merge_keys(entries)),
                span: Span::new(start, end.max(start)),
            },
            anchor,
            cost,
        ),
    };
    if anchor > 0 {
        anchors.insert(anchor, (node.clone(), cost));
    }
    (node, cost)
}

/// Add a finished node to the open collection: an item, a mapping key, or the value of the pending key.
fn attach(frame: &mut Frame, node: Node, problems: &mut Vec<YamlProblem>) {
    match frame {
        Frame::Seq { items, .. } => items.push(node),
        Frame::Map {
            entries, pending_key, ..
        } => match pending_key.take() {
            None => *pending_key = Some(node),
            Some(key) => {
                if let Some(text) = key.key_text()
                    && text != "<<"
                    && let Some(pos) = entries
                        .iter()
                        .position(|(k, _)| k.key_text().as_deref() == Some(&text))
                {
                    problems.push(YamlProblem::DuplicateKey {
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
        let at = f.line_col(at.start);
        // The unclosed flow sequence is noticed at the `:` of `b: 3` (line 2, column 2).
        assert_eq!((at.line, at.col), (2, 2), "{:?}", p.problems);
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
                .any(|x| matches!(x, YamlProblem::OverLimit { .. } | YamlProblem::Syntax { .. }))
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

    fn limits(aliases: u64, nodes: u64, depth: u32) -> LimitsConfig {
        LimitsConfig {
            yaml_aliases: aliases,
            yaml_nodes: nodes,
            yaml_depth: depth,
            ..LimitsConfig::default()
        }
    }

    /// The limit that stopped the parse, if any.
    fn over(text: &str, limits: &LimitsConfig) -> Option<YamlLimit> {
        let p = parse_with(&SourceFile::new("t.yaml", text), limits);
        p.problems.iter().find_map(|x| match x {
            YamlProblem::OverLimit { limit, .. } => Some(*limit),
            _ => None,
        })
    }

    /// The classic "billion laughs": nine levels of nine aliases each (9^9 strings once expanded).
    pub(crate) fn billion_laughs() -> String {
        let mut text = String::from("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..9 {
            let refs = vec![format!("*l{}", i - 1); 9].join(", ");
            text.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
        }
        text
    }

    #[test]
    fn alias_count_is_probed_below_and_above() {
        let text = "a: &x 1\nb: [*x, *x, *x]\n";
        assert_eq!(over(text, &limits(3, 100, 10)), None);
        assert_eq!(over(text, &limits(2, 100, 10)), Some(YamlLimit::Aliases));
    }

    #[test]
    fn node_count_includes_expanded_aliases() {
        // outer seq + inner seq + 2 items + the alias's copy of 3 nodes = 7
        let text = "- &a [1, 2]\n- *a\n";
        assert_eq!(over(text, &limits(10, 7, 10)), None);
        assert_eq!(over(text, &limits(10, 6, 10)), Some(YamlLimit::Nodes));
        assert_eq!(over("[1, 2, 3]", &limits(10, 4, 10)), None);
        assert_eq!(over("[1, 2, 3]", &limits(10, 3, 10)), Some(YamlLimit::Nodes));
    }

    #[test]
    fn long_strings_weigh_by_their_bytes() {
        let long = "x".repeat(BYTES_PER_NODE * 100);
        // root map 1 + key 1 + string 101 + key 1 + seq 1 + two aliases of 101 = 307
        let text = format!("a: &a {long}\nb: [*a, *a]\n");
        assert_eq!(over(&text, &limits(10, 307, 10)), None);
        assert_eq!(over(&text, &limits(10, 306, 10)), Some(YamlLimit::Nodes));
    }

    #[test]
    fn depth_counts_expanded_aliases() {
        assert_eq!(over("[[1]]", &limits(10, 100, 2)), None);
        assert_eq!(over("[[1]]", &limits(10, 100, 1)), Some(YamlLimit::Depth));
        // `a` nests 3 deep; `b: [*a]` nests 4 deep once `*a` is expanded.
        let text = "a: &a [[1]]\nb: [*a]\n";
        assert_eq!(over(text, &limits(10, 100, 4)), None);
        assert_eq!(over(text, &limits(10, 100, 3)), Some(YamlLimit::Depth));
    }

    #[test]
    fn billion_laughs_stops_on_nodes_without_expanding() {
        let text = billion_laughs();
        let started = std::time::Instant::now();
        let p = parse(&SourceFile::new("bomb.yaml", text.as_str()));
        assert!(p.root.is_none());
        assert!(
            matches!(
                p.problems[..],
                [YamlProblem::OverLimit {
                    limit: YamlLimit::Nodes,
                    max: 1_000_000,
                    ..
                }]
            ),
            "{:?}",
            p.problems
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }
}
