//! Check a spanned document against the JSON Schema generated from the model, collecting every problem.
//!
//! The walker renames era aliases, reports unknown keys (with "did you mean" and "belongs under"
//! suggestions), wrong types, bad choices and missing keys, each at its source span, and returns a cleaned
//! JSON value (offending entries removed, required keys given placeholders) that deserialises into the
//! typed model, so later semantic checks still see the rest of the file.
//!
//! Coercions follow what RVBBIT (PyYAML + pydantic in lax mode) accepted, so valid files in every era
//! stay valid: numbers where text is expected become their source text, numeric strings become numbers,
//! and `yes`/`no`/`on`/`off` become booleans where a boolean is expected.

use std::collections::HashMap;

use rvbbit_core::codes;
use serde_json::{Map, Value};

use crate::aliases;
use crate::diagnostic::{Diagnostic, list_names, similar};
use crate::source::{SourceFile, Span};
use crate::yaml::{Node, NodeKind};

#[derive(Clone)]
struct Ctx {
    path: String,
    cell: Option<String>,
}

impl Ctx {
    fn key(&self, key: &str) -> Ctx {
        let path = if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        };
        Ctx {
            path,
            cell: self.cell.clone(),
        }
    }

    fn index(&self, i: usize) -> Ctx {
        Ctx {
            path: format!("{}[{i}]", self.path),
            cell: self.cell.clone(),
        }
    }

    fn where_(&self) -> String {
        if self.path.is_empty() {
            "at the top level".to_owned()
        } else {
            format!("in `{}`", self.path)
        }
    }
}

/// Walks a node tree against a schema.
pub(crate) struct Walker<'a> {
    root: &'a Value,
    source: &'a SourceFile,
    diags: Vec<Diagnostic>,
}

impl<'a> Walker<'a> {
    pub(crate) fn new(root: &'a Value, source: &'a SourceFile) -> Self {
        Walker {
            root,
            source,
            diags: Vec::new(),
        }
    }

    /// Check `node` against the root schema (whose type name is `def`); returns the cleaned value and the
    /// diagnostics.
    pub(crate) fn run(mut self, node: &Node, def: &str) -> (Option<Value>, Vec<Diagnostic>) {
        let ctx = Ctx {
            path: String::new(),
            cell: None,
        };
        let value = self.check_with_def(node, self.root, Some(def), &ctx);
        (value, self.diags)
    }

    fn resolve(&self, schema: &'a Value) -> (&'a Value, Option<&'a str>) {
        let mut current = schema;
        let mut def = None;
        for _ in 0..32 {
            let Some(reference) = current.get("$ref").and_then(Value::as_str) else {
                break;
            };
            let Some(name) = reference.strip_prefix("#/$defs/") else {
                break;
            };
            match self.root.get("$defs").and_then(|d| d.get(name)) {
                Some(target) => {
                    current = target;
                    def = Some(name);
                }
                None => break,
            }
        }
        (current, def)
    }

    fn check(&mut self, node: &Node, schema: &'a Value, ctx: &Ctx) -> Option<Value> {
        let (resolved, def) = self.resolve(schema);
        self.check_with_def(node, resolved, def, ctx)
    }

    fn check_with_def(
        &mut self,
        node: &Node,
        schema: &'a Value,
        def: Option<&str>,
        ctx: &Ctx,
    ) -> Option<Value> {
        if schema.as_bool() == Some(true) {
            return Some(node.to_json());
        }
        let Some(obj) = schema.as_object() else {
            return Some(node.to_json());
        };
        if let Some(branches) = obj
            .get("anyOf")
            .or_else(|| obj.get("oneOf"))
            .and_then(Value::as_array)
        {
            return self.check_union(node, branches, ctx);
        }
        let types = type_list(schema);
        if types.is_empty() && !obj.contains_key("const") && !obj.contains_key("enum") {
            return Some(node.to_json());
        }
        if matches!(node.kind, NodeKind::Null) && types.contains(&"null") {
            return Some(Value::Null);
        }
        for ty in types.iter().filter(|t| **t != "null") {
            match (*ty, &node.kind) {
                ("object", NodeKind::Map(_)) => return self.check_object(node, schema, def, ctx),
                ("array", NodeKind::Seq(items)) => {
                    let item_schema = obj.get("items");
                    let mut out = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        let child = ctx.index(i);
                        let value = match item_schema {
                            Some(s) => self.check(item, s, &child),
                            None => Some(item.to_json()),
                        };
                        if let Some(v) = value {
                            out.push(v);
                        }
                    }
                    return Some(Value::Array(out));
                }
                _ => {}
            }
            if let Some(value) = self.coerce(node, ty) {
                return self.check_scalar_constraints(node, value, schema, ctx);
            }
        }
        if types.is_empty() {
            // `const`/`enum` without a type.
            let value = node.to_json();
            return self.check_scalar_constraints(node, value, schema, ctx);
        }
        self.type_error(node, schema, ctx);
        None
    }

    fn check_union(&mut self, node: &Node, branches: &'a [Value], ctx: &Ctx) -> Option<Value> {
        let resolved: Vec<&'a Value> = branches.iter().map(|b| self.resolve(b).0).collect();
        if matches!(node.kind, NodeKind::Null) && resolved.iter().any(|b| accepts_null(b)) {
            return Some(Value::Null);
        }
        let non_null: Vec<&'a Value> = branches
            .iter()
            .zip(&resolved)
            .filter(|(_, r)| type_list(r) != ["null"])
            .map(|(b, _)| b)
            .collect();
        // A union of constants is a choice.
        let consts: Vec<&str> = non_null
            .iter()
            .filter_map(|b| self.resolve(b).0.get("const").and_then(Value::as_str))
            .collect();
        if !consts.is_empty() && consts.len() == non_null.len() {
            return self.check_choice(node, &consts, ctx);
        }
        if non_null.len() == 1 {
            return self.check(node, non_null[0], ctx);
        }
        let mut best: Option<(bool, usize, Vec<Diagnostic>, Option<Value>)> = None;
        for branch in &non_null {
            let saved = std::mem::take(&mut self.diags);
            let value = self.check(node, branch, ctx);
            let found = std::mem::replace(&mut self.diags, saved);
            let errors = found
                .iter()
                .filter(|d| d.severity == crate::Severity::Error)
                .count();
            if value.is_some() && errors == 0 {
                self.diags.extend(found);
                return value;
            }
            let shape = shape_matches(node, self.resolve(branch).0);
            let better = match &best {
                None => true,
                Some((best_shape, best_errors, ..)) => {
                    (shape && !best_shape) || (shape == *best_shape && errors < *best_errors)
                }
            };
            if better {
                best = Some((shape, errors, found, value));
            }
        }
        match best {
            Some((true, _, found, value)) => {
                self.diags.extend(found);
                value
            }
            _ => {
                let expected: Vec<String> = non_null.iter().map(|b| self.describe(b)).collect();
                let expected = dedup(expected).join(" or ");
                self.diags.push(
                    Diagnostic::error(
                        codes::V_TYPE,
                        format!("expected {expected}, found {}", found_text(node)),
                    )
                    .at(node.span)
                    .with_label(format!("expected {expected}"))
                    .in_cell(ctx.cell.clone())
                    .with_path(ctx.path.clone()),
                );
                None
            }
        }
    }

    fn check_choice(&mut self, node: &Node, choices: &[&str], ctx: &Ctx) -> Option<Value> {
        let text = match &node.kind {
            NodeKind::Str(s, _) => Some(s.clone()),
            NodeKind::Bool(_) | NodeKind::Int(_) | NodeKind::Float(_) => {
                Some(self.source.slice(node.span).to_owned())
            }
            _ => None,
        };
        if let Some(t) = &text
            && choices.contains(&t.as_str())
        {
            return Some(Value::String(t.clone()));
        }
        let key = ctx.path.rsplit('.').next().unwrap_or("").to_owned();
        let mut diag = Diagnostic::error(
            codes::V_TYPE,
            match &text {
                Some(t) => format!("`{t}` is not one of {}", list_names(choices)),
                None => format!(
                    "expected one of {}, found {}",
                    list_names(choices),
                    node.type_name()
                ),
            },
        )
        .at(node.span)
        .with_label(format!("expected one of {}", list_names(choices)))
        .in_cell(ctx.cell.clone())
        .with_path(ctx.path.clone());
        if let Some(t) = &text
            && let Some(best) = similar(t, choices.iter().copied(), 1).first()
        {
            diag = diag.with_hint(format!("did you mean `{best}`?"));
            if !key.is_empty() && !key.ends_with(']') {
                diag = diag.with_example(format!("{key}: {best}"));
            }
        } else {
            diag = diag.with_hint(format!("use one of {}", list_names(choices)));
        }
        self.diags.push(diag);
        None
    }

    fn check_object(
        &mut self,
        node: &Node,
        schema: &'a Value,
        def: Option<&str>,
        ctx: &Ctx,
    ) -> Option<Value> {
        let entries = node.as_map().unwrap_or(&[]);
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        let props = schema
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or_else(|| EMPTY.get_or_init(Map::new));
        let additional = schema.get("additionalProperties");
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map_or_else(Vec::new, |r| r.iter().filter_map(Value::as_str).collect());
        let mut ctx = ctx.clone();
        if def == Some("Cell")
            && let Some((_, name)) = node.get("name")
            && let Some(n) = name.as_str()
        {
            ctx.cell = Some(n.to_owned());
        }
        let mut seen: HashMap<String, (String, Span)> = HashMap::new();
        let mut out = Map::new();
        for (k, v) in entries {
            let Some(key) = k.key_text() else {
                self.diags.push(
                    Diagnostic::error(codes::V_TYPE, "mapping keys must be text")
                        .at(k.span)
                        .in_cell(ctx.cell.clone())
                        .with_path(ctx.path.clone()),
                );
                continue;
            };
            let mut canonical = key.clone();
            if let Some(d) = def
                && let Some(alias) = aliases::for_def(d).find(|a| a.alias == key)
            {
                canonical = alias.canonical.to_owned();
            }
            if let Some((first, first_span)) = seen.get(&canonical) {
                if *first != key {
                    self.diags.push(
                        Diagnostic::error(
                            codes::V_ALIAS_CONFLICT,
                            format!(
                                "`{key}` and `{first}` are two spellings of `{canonical}`; give only one"
                            ),
                        )
                        .at(k.span)
                        .with_label("second spelling")
                        .with_secondary(*first_span, "first spelling")
                        .in_cell(ctx.cell.clone())
                        .with_path(ctx.key(&canonical).path)
                        .with_hint(format!("keep `{canonical}` and merge the two lists")),
                    );
                }
                continue;
            }
            seen.insert(canonical.clone(), (key.clone(), k.span));
            let child = ctx.key(&canonical);
            if let Some(prop_schema) = props.get(&canonical) {
                if let Some(value) = self.check(v, prop_schema, &child) {
                    out.insert(canonical, value);
                } else if required.contains(&canonical.as_str()) {
                    out.insert(canonical.clone(), self.placeholder(prop_schema));
                }
                continue;
            }
            match additional {
                Some(Value::Bool(false)) => self.unknown_key(k, &key, props, def, &ctx),
                Some(extra) if extra.is_object() => {
                    if let Some(value) = self.check(v, extra, &child) {
                        out.insert(key, value);
                    }
                }
                _ => {
                    out.insert(key, v.to_json());
                }
            }
        }
        for key in required {
            if !seen.contains_key(key) {
                let prop_schema = props.get(key);
                let mut diag = Diagnostic::error(
                    codes::V_MISSING_KEY,
                    format!("missing required key `{key}` {}", ctx.where_()),
                )
                .at(Span::point(node.span.start))
                .with_label(format!("`{key}` is missing here"))
                .with_hint(format!("add `{key}` {}", ctx.where_()))
                .in_cell(ctx.cell.clone())
                .with_path(ctx.key(key).path);
                if let Some(example) = missing_example(def, key) {
                    diag = diag.with_example(example);
                }
                self.diags.push(diag);
                if let Some(ps) = prop_schema {
                    out.insert(key.to_owned(), self.placeholder(ps));
                }
            }
        }
        Some(Value::Object(out))
    }

    fn unknown_key(
        &mut self,
        key_node: &Node,
        key: &str,
        props: &'a Map<String, Value>,
        def: Option<&str>,
        ctx: &Ctx,
    ) {
        let mut known: Vec<&str> = props.keys().map(String::as_str).collect();
        if let Some(d) = def {
            known.extend(aliases::for_def(d).map(|a| a.alias));
        }
        let mut diag = Diagnostic::warning(
            codes::V_UNKNOWN_KEY,
            format!("unknown key `{key}` {}", ctx.where_()),
        )
        .at(key_node.span)
        .with_label("not a key here")
        .in_cell(ctx.cell.clone())
        .with_path(ctx.key(key).path);
        // Does the key belong one level down (`max_turns` on a cell belongs under `rules`)?
        let mut home = None;
        for (prop, prop_schema) in props {
            if let Some(child_props) = self.object_properties(prop_schema)
                && child_props.contains_key(key)
            {
                home = Some(prop.clone());
                break;
            }
        }
        if let Some(parent) = home {
            diag = diag
                .with_hint(format!("`{key}` belongs under `{parent}`"))
                .with_example(format!("{parent}:\n  {key}: ..."));
        } else {
            let suggestions = similar(key, known.iter().copied(), 3);
            if let Some(best) = suggestions.first() {
                diag = diag.with_hint(format!("did you mean `{best}`?"));
                diag = diag.with_example(format!("{best}: ..."));
            } else {
                let mut names: Vec<&str> = props
                    .keys()
                    .map(String::as_str)
                    .filter(|k| !k.starts_with('_'))
                    .collect();
                names.sort_unstable();
                diag = diag.with_hint(format!("keys allowed here: {}", list_names(&names)));
            }
        }
        self.diags.push(diag);
    }

    /// The properties of an object schema, looking through `$ref` and `anyOf` with null.
    fn object_properties(&self, schema: &'a Value) -> Option<&'a Map<String, Value>> {
        let (resolved, _) = self.resolve(schema);
        if let Some(props) = resolved.get("properties").and_then(Value::as_object) {
            return Some(props);
        }
        let branches = resolved
            .get("anyOf")
            .or_else(|| resolved.get("oneOf"))?
            .as_array()?;
        branches
            .iter()
            .find_map(|b| self.resolve(b).0.get("properties").and_then(Value::as_object))
    }

    fn coerce(&self, node: &Node, ty: &str) -> Option<Value> {
        match (ty, &node.kind) {
            ("string", NodeKind::Str(s, _)) => Some(Value::String(s.clone())),
            ("string", NodeKind::Int(_) | NodeKind::Float(_) | NodeKind::Bool(_)) => {
                Some(Value::String(self.source.slice(node.span).trim().to_owned()))
            }
            ("integer", NodeKind::Int(i)) => Some(Value::from(*i)),
            ("integer", NodeKind::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                Some(Value::from(*f as i64))
            }
            ("integer", NodeKind::Str(s, _)) => s.trim().parse::<i64>().ok().map(Value::from),
            ("number", NodeKind::Int(i)) => Some(Value::from(*i)),
            ("number", NodeKind::Float(f)) => serde_json::Number::from_f64(*f).map(Value::Number),
            ("number", NodeKind::Str(s, _)) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number),
            ("boolean", NodeKind::Bool(b)) => Some(Value::Bool(*b)),
            ("boolean", NodeKind::Str(s, _)) => match s.trim().to_ascii_lowercase().as_str() {
                "yes" | "y" | "on" | "true" => Some(Value::Bool(true)),
                "no" | "n" | "off" | "false" => Some(Value::Bool(false)),
                _ => None,
            },
            ("null", NodeKind::Null) => Some(Value::Null),
            _ => None,
        }
    }

    fn check_scalar_constraints(
        &mut self,
        node: &Node,
        value: Value,
        schema: &Value,
        ctx: &Ctx,
    ) -> Option<Value> {
        if let Some(c) = schema.get("const")
            && *c != value
        {
            let choices: Vec<&str> = c.as_str().into_iter().collect();
            return self.check_choice(node, &choices, ctx);
        }
        if let Some(choices) = schema.get("enum").and_then(Value::as_array)
            && !choices.contains(&value)
        {
            let names: Vec<&str> = choices.iter().filter_map(Value::as_str).collect();
            return self.check_choice(node, &names, ctx);
        }
        if let Some(n) = value.as_f64() {
            let min = schema.get("minimum").and_then(Value::as_f64);
            let max = match schema.get("format").and_then(Value::as_str) {
                Some("uint8") => Some(f64::from(u8::MAX)),
                Some("uint16") => Some(f64::from(u16::MAX)),
                Some("uint32") => Some(f64::from(u32::MAX)),
                _ => schema.get("maximum").and_then(Value::as_f64),
            };
            let key = ctx.path.rsplit('.').next().unwrap_or("value").to_owned();
            if let Some(min) = min
                && n < min
            {
                self.diags.push(
                    Diagnostic::error(
                        codes::V_TYPE,
                        format!("`{key}` must be at least {min}, found {n}"),
                    )
                    .at(node.span)
                    .with_label(format!("must be ≥ {min}"))
                    .in_cell(ctx.cell.clone())
                    .with_path(ctx.path.clone())
                    .with_example(format!("{key}: {min}")),
                );
                return None;
            }
            if let Some(max) = max
                && n > max
            {
                self.diags.push(
                    Diagnostic::error(codes::V_TYPE, format!("`{key}` must be at most {max}, found {n}"))
                        .at(node.span)
                        .with_label(format!("must be ≤ {max}"))
                        .in_cell(ctx.cell.clone())
                        .with_path(ctx.path.clone()),
                );
                return None;
            }
        }
        Some(value)
    }

    fn type_error(&mut self, node: &Node, schema: &'a Value, ctx: &Ctx) {
        let expected = self.describe(schema);
        let key = ctx.path.rsplit('.').next().unwrap_or("").to_owned();
        let mut diag = Diagnostic::error(
            codes::V_TYPE,
            format!("expected {expected}, found {}", found_text(node)),
        )
        .at(node.span)
        .with_label(format!("expected {expected}"))
        .in_cell(ctx.cell.clone())
        .with_path(ctx.path.clone());
        let named = !key.is_empty() && !key.ends_with(']');
        if named {
            diag = diag.with_hint(format!("`{key}` takes {expected}"));
        }
        if type_list(schema).contains(&"array")
            && let NodeKind::Str(s, _) = &node.kind
        {
            diag = diag.with_hint("write a single item as a one-item list");
            if named {
                diag = diag.with_example(format!("{key}: [{s}]"));
            }
        } else if let Some(example) = example_value(schema)
            && named
        {
            diag = diag.with_example(format!("{key}: {example}"));
        }
        self.diags.push(diag);
    }

    /// A short description of what a schema accepts: "an integer", "a list", "a mapping or a string".
    fn describe(&self, schema: &'a Value) -> String {
        let (resolved, _) = self.resolve(schema);
        if let Some(branches) = resolved
            .get("anyOf")
            .or_else(|| resolved.get("oneOf"))
            .and_then(Value::as_array)
        {
            let consts: Vec<&str> = branches
                .iter()
                .filter_map(|b| self.resolve(b).0.get("const").and_then(Value::as_str))
                .collect();
            if !consts.is_empty() {
                return format!("one of {}", list_names(&consts));
            }
            let parts: Vec<String> = branches
                .iter()
                .filter(|b| type_list(self.resolve(b).0) != ["null"])
                .map(|b| self.describe(b))
                .collect();
            return dedup(parts).join(" or ");
        }
        let types: Vec<&str> = type_list(resolved).into_iter().filter(|t| *t != "null").collect();
        let names: Vec<&str> = types
            .iter()
            .map(|t| match *t {
                "string" => "a string",
                "integer" => "an integer",
                "number" => "a number",
                "boolean" => "true or false",
                "array" => "a list",
                "object" => "a mapping",
                _ => "a value",
            })
            .collect();
        if names.is_empty() {
            "a value".to_owned()
        } else {
            names.join(" or ")
        }
    }

    fn placeholder(&self, schema: &'a Value) -> Value {
        let (resolved, _) = self.resolve(schema);
        match type_list(resolved).first().copied() {
            Some("array") => Value::Array(Vec::new()),
            Some("object") => Value::Object(Map::new()),
            Some("integer" | "number") => Value::from(0),
            Some("boolean") => Value::Bool(false),
            Some("null") => Value::Null,
            _ => Value::String(String::new()),
        }
    }
}

fn type_list(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn accepts_null(schema: &Value) -> bool {
    type_list(schema).contains(&"null")
}

fn shape_matches(node: &Node, schema: &Value) -> bool {
    let types = type_list(schema);
    match &node.kind {
        NodeKind::Map(_) => types.contains(&"object"),
        NodeKind::Seq(_) => types.contains(&"array"),
        NodeKind::Str(..) => types.contains(&"string"),
        NodeKind::Int(_) => types.contains(&"integer") || types.contains(&"number"),
        NodeKind::Float(_) => types.contains(&"number"),
        NodeKind::Bool(_) => types.contains(&"boolean"),
        NodeKind::Null => types.contains(&"null"),
    }
}

fn found_text(node: &Node) -> String {
    match &node.kind {
        NodeKind::Str(s, _) => {
            let short: String = s.chars().take(40).collect();
            let ellipsis = if s.chars().count() > 40 { "…" } else { "" };
            format!("the string \"{short}{ellipsis}\"")
        }
        NodeKind::Int(i) => format!("the integer {i}"),
        NodeKind::Float(f) => format!("the number {f}"),
        NodeKind::Bool(b) => format!("`{b}`"),
        NodeKind::Null => "nothing (null)".to_owned(),
        _ => node.type_name().to_owned(),
    }
}

fn example_value(schema: &Value) -> Option<String> {
    let types: Vec<&str> = type_list(schema).into_iter().filter(|t| *t != "null").collect();
    match types.first().copied()? {
        "integer" => Some(
            schema
                .get("minimum")
                .and_then(Value::as_i64)
                .map_or(1, |m| m.max(1))
                .to_string(),
        ),
        "number" => Some("0.5".to_owned()),
        "boolean" => Some("true".to_owned()),
        "string" => Some("\"...\"".to_owned()),
        "array" => Some("[a, b]".to_owned()),
        _ => None,
    }
}

fn missing_example(def: Option<&str>, key: &str) -> Option<String> {
    match (def, key) {
        (Some("Cascade"), "cascade_id") => Some("cascade_id: my_cascade".to_owned()),
        (Some("Cascade"), "cells") => Some("cells:\n  - name: first\n    instructions: \"...\"".to_owned()),
        (Some("Cell"), "name") => Some("- name: summarize\n  instructions: \"...\"".to_owned()),
        (Some("ToolDefinition"), "tool_id") => Some("\"tool_id\": \"my_tool\"".to_owned()),
        (_, key) => Some(format!("{key}: ...")),
    }
}

fn dedup(mut items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items.retain(|i| seen.insert(i.clone()));
    items
}
