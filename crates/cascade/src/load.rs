//! Loading a file: read it safely, parse it with spans, normalise era aliases, type it.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use rvbbit_core::codes;
use rvbbit_core::config::LimitsConfig;
use serde_json::Value;

use crate::diagnostic::Diagnostic;
use crate::model::{Cascade, ToolDefinition};
use crate::schema::{cascade_schema, tool_definition_schema};
use crate::schema_check::Walker;
use crate::source::{SourceFile, Span};
use crate::yaml::{self, Node, NodeKind, YamlProblem};
use crate::{Severity, aliases};

/// Largest file rvbbit reads as a cascade.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// What a file turned out to be.
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    /// A cascade.
    Cascade(Box<Cascade>),
    /// A declarative tool definition (a file with `tool_id`).
    Tool(Box<ToolDefinition>),
}

/// A template file loaded through `@path`.
#[derive(Clone, Debug, PartialEq)]
pub struct Include {
    /// Key path of the field that named it (`cells[0].instructions`).
    pub field: String,
    /// The file it was loaded from.
    pub path: PathBuf,
    /// Where `@path` is written.
    pub span: Span,
}

/// A parsed and typed file, with its source and spanned tree.
#[derive(Clone, Debug)]
pub struct Document {
    /// The text.
    pub source: SourceFile,
    /// The spanned tree (keys as written, before alias renaming).
    pub root: Node,
    /// The typed content (after alias renaming and `@path` includes).
    pub content: Content,
    /// Templates loaded through `@path`.
    pub includes: Vec<Include>,
}

impl Document {
    /// The cascade, if this is one.
    pub fn cascade(&self) -> Option<&Cascade> {
        match &self.content {
            Content::Cascade(c) => Some(c),
            Content::Tool(_) => None,
        }
    }

    /// The node at a key path such as `cells[2].rules.max_turns`. Keys match their era aliases too.
    pub fn node_at(&self, path: &str) -> Option<&Node> {
        node_at(&self.root, path)
    }

    /// The span of the value at a key path.
    pub fn span_of(&self, path: &str) -> Option<Span> {
        self.node_at(path).map(|n| n.span)
    }

    /// The span of the key at a key path (the value's span for list items).
    pub fn key_span_of(&self, path: &str) -> Option<Span> {
        let (parent, last) = match path.rfind('.') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => ("", path),
        };
        if last.ends_with(']') {
            return self.span_of(path);
        }
        let parent_node = if parent.is_empty() {
            Some(&self.root)
        } else {
            self.node_at(parent)
        }?;
        find_key(parent_node, last).map(|(k, _)| k.span)
    }
}

/// Look a key up in a mapping, accepting any alias spelling of it.
fn find_key<'n>(map: &'n Node, key: &str) -> Option<(&'n Node, &'n Node)> {
    let entries = map.as_map()?;
    entries.iter().map(|(k, v)| (k, v)).find(|(k, _)| {
        let Some(text) = k.key_text() else { return false };
        text == key
            || aliases::ALIASES
                .iter()
                .any(|a| a.canonical == key && a.alias == text)
    })
}

fn node_at<'n>(root: &'n Node, path: &str) -> Option<&'n Node> {
    let mut node = root;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            node = find_key(node, key)?.1;
        }
        for idx in indexes.split(']').filter(|s| !s.is_empty()) {
            let i: usize = idx.trim_start_matches('[').parse().ok()?;
            node = node.as_seq()?.get(i)?;
        }
    }
    Some(node)
}

/// The outcome of loading one file: the document when it could be typed, and every problem found.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The path as given.
    pub path: PathBuf,
    /// The text, when it could be read.
    pub source: Option<SourceFile>,
    /// The typed document, when the file parsed into a mapping.
    pub document: Option<Document>,
    /// Problems found while loading, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// Whether any problem is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }
}

/// Read and load a file within the default `[limits]`. Never panics; every problem becomes a diagnostic.
pub fn load_file(path: &Path) -> Loaded {
    load_file_with(path, &LimitsConfig::default())
}

/// Read and load a file within `limits` (the `yaml_*` budgets: see [`crate::yaml::parse_with`]).
pub fn load_file_with(path: &Path, limits: &LimitsConfig) -> Loaded {
    match read_text(path) {
        Ok(text) => load_str_with(path, &text, limits),
        Err(diag) => Loaded {
            path: path.to_path_buf(),
            source: None,
            document: None,
            diagnostics: vec![*diag],
        },
    }
}

fn read_text(path: &Path) -> Result<String, Box<Diagnostic>> {
    let shown = path.display();
    let read_err =
        |message: String, hint: &str| Box::new(Diagnostic::error(codes::V_READ, message).with_hint(hint));
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => read_err(
            format!("`{shown}` does not exist"),
            "check the path; relative paths are resolved against the current directory",
        ),
        std::io::ErrorKind::PermissionDenied => read_err(
            format!("`{shown}` cannot be read: permission denied"),
            "check the file's permissions",
        ),
        _ => read_err(format!("`{shown}` cannot be read: {e}"), "check the path"),
    })?;
    if meta.is_dir() {
        return Err(read_err(
            format!("`{shown}` is a directory"),
            "pass the directory to `rvbbit validate` to check every cascade in it, or name a file",
        ));
    }
    if !meta.is_file() {
        return Err(read_err(
            format!("`{shown}` is not a regular file"),
            "pass a `.yaml`, `.yml` or `.json` file",
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(read_err(
            format!(
                "`{shown}` is {:.1} MiB; cascade files are limited to {} MiB",
                meta.len() as f64 / 1_048_576.0,
                MAX_FILE_BYTES / 1_048_576
            ),
            "a cascade this large is almost certainly not a cascade; move data into files the cascade reads",
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| {
            read_err(
                format!("`{shown}` cannot be read: {e}"),
                "check the path and permissions",
            )
        })?;
    if bytes.contains(&0) {
        return Err(read_err(
            format!("`{shown}` is a binary file, not YAML or JSON text"),
            "pass a `.yaml`, `.yml` or `.json` cascade file",
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        read_err(
            format!(
                "`{shown}` is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
            "save the file as UTF-8",
        )
    })
}

/// Load text as if read from `path` (used for files, stdin and HTTP uploads) within the default
/// `[limits]`.
pub fn load_str(path: &Path, text: &str) -> Loaded {
    load_str_with(path, text, &LimitsConfig::default())
}

/// `text` with each JSON surrogate-pair escape (`\uD83D\uDC0D`) written as YAML's `\U0001F40D`; `None`
/// when there is none. An escaped backslash (`\\u…`) is left alone.
fn join_surrogates(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let hex4 = |at: usize| -> Option<u32> {
        let s = text.get(at..at + 4)?;
        u32::from_str_radix(s, 16)
            .ok()
            .filter(|_| s.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    let mut out: Option<String> = None;
    let (mut i, mut copied) = (0, 0);
    while i + 1 < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        if bytes[i + 1] == b'u'
            && let Some(high) = hex4(i + 2).filter(|h| (0xD800..0xDC00).contains(h))
            && text.get(i + 6..i + 8) == Some("\\u")
            && let Some(low) = hex4(i + 8).filter(|l| (0xDC00..0xE000).contains(l))
        {
            let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
            let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
            o.push_str(&text[copied..i]);
            o.push_str(&format!("\\U{c:08X}"));
            i += 12;
            copied = i;
            continue;
        }
        // Any other escape (an escaped backslash included) is two characters.
        i += 2;
    }
    let mut o = out?;
    o.push_str(&text[copied..]);
    Some(o)
}

/// Load text as if read from `path` within `limits`. A file over a `yaml_*` budget gets one `RVB-V024`
/// error at the point where the budget ran out, and no document.
pub fn load_str_with(path: &Path, text: &str, limits: &LimitsConfig) -> Loaded {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let source = SourceFile::new(path, text);
    let mut diagnostics = Vec::new();
    // JSON files must be strict JSON (YAML would accept trailing commas and comments).
    if path.extension().is_some_and(|e| e == "json")
        && let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text)
    {
        let at = source.offset_of(e.line(), e.column().saturating_sub(1));
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
        let before = text[..at.min(text.len())].trim_end();
        let hint = if message.contains("trailing comma") || before.ends_with(',') {
            "JSON allows no comma after the last item of an object or array"
        } else if message.contains("EOF") {
            "the file ends early: check for an unclosed `{` or `[`"
        } else {
            "fix the JSON at this position (or write the cascade in YAML, which is more forgiving)"
        };
        diagnostics.push(
            Diagnostic::error(codes::V_SYNTAX, format!("JSON syntax error: {message}"))
                .at(Span::point(at))
                .with_label("the parser stopped here")
                .with_hint(hint),
        );
        return Loaded {
            path: path.to_path_buf(),
            source: Some(source),
            document: None,
            diagnostics,
        };
    }
    // A JSON file's surrogate-pair escapes (`\ud83d\udc0d`, as Python's `json.dumps` writes every
    // emoji) are valid JSON but not YAML: they are read as the one character they stand for.
    let source = match path.extension().is_some_and(|e| e == "json") {
        true => match join_surrogates(text) {
            Some(joined) => SourceFile::new(path, joined.as_str()),
            None => source,
        },
        false => source,
    };
    let parsed = yaml::parse_with(&source, limits);
    for problem in &parsed.problems {
        diagnostics.push(yaml_problem(problem));
    }
    let syntax_failed = parsed
        .problems
        .iter()
        .any(|p| matches!(p, YamlProblem::Syntax { .. } | YamlProblem::OverLimit { .. }));
    let mut loaded = Loaded {
        path: path.to_path_buf(),
        source: Some(source.clone()),
        document: None,
        diagnostics,
    };
    if syntax_failed {
        return loaded;
    }
    let Some(root) = parsed.root else {
        loaded.diagnostics.push(
            Diagnostic::error(codes::V_SHAPE, "the file is empty")
                .at(Span::point(0))
                .with_hint("a cascade needs at least `cascade_id` and `cells`")
                .with_example("cascade_id: hello\ncells:\n  - name: greet\n    instructions: \"Say hello to {{ input.name }}\""),
        );
        return loaded;
    };
    if !matches!(root.kind, NodeKind::Map(_)) {
        let mut diag = Diagnostic::error(
            codes::V_SHAPE,
            format!(
                "the top level is {}, but a cascade is a mapping",
                root.type_name()
            ),
        )
        .at(root.span)
        .with_label("expected `cascade_id: ...` and `cells: ...` here");
        if matches!(root.kind, NodeKind::Seq(_)) {
            diag = diag
                .with_hint("this looks like a list of cells; wrap it in a cascade")
                .with_example("cascade_id: my_cascade\ncells:\n  - name: ...");
        } else {
            diag = diag.with_hint("a cascade needs at least `cascade_id` and `cells`");
        }
        loaded.diagnostics.push(diag);
        return loaded;
    }
    let is_tool =
        root.get("tool_id").is_some() && root.get("cells").is_none() && root.get("phases").is_none();
    let (schema, def) = if is_tool {
        (tool_definition_schema(), "ToolDefinition")
    } else {
        (cascade_schema(), "Cascade")
    };
    let (value, diags) = Walker::new(schema, &source).run(&root, def);
    loaded.diagnostics.extend(diags);
    let value = value.unwrap_or(Value::Null);
    let content = if is_tool {
        serde_json::from_value::<ToolDefinition>(value).map(|t| Content::Tool(Box::new(t)))
    } else {
        serde_json::from_value::<Cascade>(value).map(|c| Content::Cascade(Box::new(c)))
    };
    match content {
        Ok(content) => {
            let mut document = Document {
                source,
                root,
                content,
                includes: Vec::new(),
            };
            resolve_includes(path, &mut document, &mut loaded.diagnostics);
            loaded.document = Some(document);
        }
        // Errors already reported (an unknown `type`, say) are why the typing failed: they say it, at
        // their position. Typing a document the checks passed is a bug.
        Err(_) if loaded.diagnostics.iter().any(|d| d.severity == Severity::Error) => {}
        Err(e) => loaded.diagnostics.push(
            Diagnostic::error(
                codes::INTERNAL,
                format!("the checked document could not be typed: {e}"),
            )
            .with_hint("this is a bug in rvbbit; please report it with the file"),
        ),
    }
    clamp_spans(&mut loaded.diagnostics, loaded.source.as_ref());
    sort(&mut loaded.diagnostics);
    loaded
}

/// Keep every span inside the file and on character boundaries.
pub(crate) fn clamp_spans(diags: &mut [Diagnostic], source: Option<&SourceFile>) {
    let Some(source) = source else { return };
    for d in diags {
        d.span = d.span.map(|s| source.clamp(s));
        for l in &mut d.secondary {
            l.span = source.clamp(l.span);
        }
    }
}

/// Sort diagnostics by position (those without a position first), keeping insertion order otherwise.
pub(crate) fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by_key(|d| d.span.map_or(0, |s| s.start + 1));
}

fn yaml_problem(problem: &YamlProblem) -> Diagnostic {
    match problem {
        YamlProblem::Syntax { at, message } => {
            let hint = if message.contains("quoted scalar") {
                "a quoted string is not closed on this line: close the quote, or use a `|` block for multi-line text"
            } else if message.contains("tab") {
                "YAML indentation must use spaces, not tabs"
            } else if message.contains("mapping values are not allowed") {
                "quote values that contain `: ` (a colon followed by a space)"
            } else if message.contains("did not find expected") || message.contains("while parsing a flow") {
                "check for an unclosed quote, bracket or brace before this point"
            } else {
                "fix the syntax at this position"
            };
            Diagnostic::error(codes::V_SYNTAX, format!("syntax error: {message}"))
                .at(*at)
                .with_label("the parser stopped here")
                .with_hint(hint)
        }
        YamlProblem::DuplicateKey { key, first, again } => Diagnostic::error(
            codes::V_DUPLICATE_KEY,
            format!("the key `{key}` appears twice in one mapping"),
        )
        .at(*again)
        .with_label("repeated here")
        .with_secondary(*first, "first here")
        .with_hint("keep one and merge their contents; YAML readers disagree about which one wins"),
        YamlProblem::ExtraDocuments { at } => Diagnostic::warning(
            codes::V_MULTI_DOCUMENT,
            "the file has more than one YAML document; only the first is read",
        )
        .at(*at)
        .with_label("a second document starts here")
        .with_hint("move the rest into its own file, or turn it into comments"),
        YamlProblem::OverLimit { at, limit, max } => Diagnostic::error(
            codes::V_TOO_LARGE,
            format!(
                "the file has more than {max} {} ({} = {max})",
                limit.what(),
                limit.setting()
            ),
        )
        .at(*at)
        .with_label("the limit was crossed here")
        .with_hint(format!(
            "write the repeated part once (a sub-cascade or an `@path` include) and flatten the nesting; \
             if the file is legitimate, raise {} in rvbbit.toml [limits]",
            limit.setting()
        )),
        YamlProblem::UnknownAlias { at } => {
            Diagnostic::error(codes::V_SYNTAX, "alias to an anchor that is not defined")
                .at(*at)
                .with_hint("define the anchor (`&name`) before using it (`*name`)")
        }
    }
}

/// Directories searched for relative references from `file`: its directory, then up to three ancestors.
///
/// Ancestors are computed lexically (`a/b` → `a` → `.` → `..`) so messages show the paths as the user
/// wrote them.
pub fn search_bases(file: &Path) -> Vec<PathBuf> {
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut current = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    let mut out = vec![current.clone()];
    for _ in 0..3 {
        let Some(next) = lexical_parent(&current) else {
            break;
        };
        out.push(next.clone());
        current = next;
    }
    out
}

fn lexical_parent(path: &Path) -> Option<PathBuf> {
    match path.components().next_back() {
        Some(Component::CurDir) => Some(PathBuf::from("..")),
        Some(Component::ParentDir) => Some(path.join("..")),
        Some(Component::RootDir | Component::Prefix(_)) | None => None,
        Some(Component::Normal(_)) => match path.parent() {
            Some(p) if p.as_os_str().is_empty() => Some(PathBuf::from(".")),
            Some(p) => Some(p.to_path_buf()),
            None => None,
        },
    }
}

/// Resolve a relative reference against `bases`, keeping it inside the base it was found under.
///
/// Absolute paths and paths that climb out of their base (`..`, symlinks) are refused.
pub fn resolve_contained(reference: &str, bases: &[PathBuf]) -> Result<Option<PathBuf>, String> {
    let rel = Path::new(reference);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| matches!(c, Component::Prefix(_) | Component::RootDir))
    {
        return Err(format!(
            "`{reference}` is an absolute path; references must be relative to the file"
        ));
    }
    for base in bases {
        let Ok(base_canon) = fs::canonicalize(base) else {
            continue;
        };
        let candidate = base_canon.join(rel);
        let Ok(canon) = fs::canonicalize(&candidate) else {
            continue;
        };
        if !canon.starts_with(&base_canon) {
            return Err(format!("`{reference}` leaves the directory `{}`", base.display()));
        }
        if canon.is_file() {
            return Ok(Some(canon));
        }
    }
    Ok(None)
}

/// Resolve a cascade reference (`sub_cascades`/`async_cascades` `ref`) like [`resolve_contained`]; a
/// `.json`, `.yaml` or `.yml` reference that is not found is also tried with the other two extensions
/// (RVBBIT's files moved from JSON to YAML while their refs kept saying `child.json`).
pub fn resolve_cascade_ref(reference: &str, bases: &[PathBuf]) -> Result<Option<PathBuf>, String> {
    if let Some(found) = resolve_contained(reference, bases)? {
        return Ok(Some(found));
    }
    let path = Path::new(reference);
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if !matches!(ext, "json" | "yaml" | "yml") {
        return Ok(None);
    }
    for other in ["yaml", "yml", "json"] {
        if other == ext {
            continue;
        }
        let alt = path.with_extension(other);
        if let Some(found) = resolve_contained(&alt.to_string_lossy(), bases)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

fn resolve_includes(path: &Path, document: &mut Document, diags: &mut Vec<Diagnostic>) {
    let Content::Cascade(cascade) = &mut document.content else {
        return;
    };
    let bases = search_bases(path);
    for (i, cell) in cascade.cells.iter_mut().enumerate() {
        let Some(text) = &cell.instructions else { continue };
        let trimmed = text.trim();
        let Some(reference) = trimmed.strip_prefix('@') else {
            continue;
        };
        if reference.is_empty() || reference.contains(char::is_whitespace) {
            continue;
        }
        let field = format!("cells[{i}].instructions");
        let span = node_at(&document.root, &field).map_or_else(Span::default, |n| n.span);
        let fail = |message: String| {
            Diagnostic::error(codes::V_INCLUDE, message)
                .at(span)
                .with_label("included here")
                .in_cell(Some(cell.name.clone()))
                .with_path(field.clone())
        };
        match resolve_contained(reference, &bases) {
            Ok(Some(found)) => match fs::read_to_string(&found) {
                Ok(content) => {
                    cell.instructions = Some(content);
                    document.includes.push(Include {
                        field,
                        path: found,
                        span,
                    });
                }
                Err(e) => diags.push(fail(format!("cannot read `{reference}`: {e}"))),
            },
            Ok(None) => diags.push(
                fail(format!("the include `{reference}` was not found")).with_hint(format!(
                    "paths are looked up relative to the cascade's directory and its parents: {}",
                    bases
                        .iter()
                        .map(|b| format!("`{}`", b.display()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            ),
            Err(message) => diags.push(fail(message).with_hint("use a relative path inside the project")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_surrogate_pairs_become_one_character() {
        assert_eq!(join_surrogates(r#"{"a": "x"}"#), None);
        assert_eq!(
            join_surrogates(r#"{"a": "snake \ud83d\udc0d!"}"#).as_deref(),
            Some(r#"{"a": "snake \U0001F40D!"}"#)
        );
        // An escaped backslash before `u` is not an escape.
        assert_eq!(join_surrogates(r#"{"a": "\\ud83d\udc0d"}"#), None);
        let loaded = load_str(
            Path::new("emoji.json"),
            r#"{"cascade_id": "e", "description": "\ud83d\udc0d snake", "cells": [{"name": "a", "tool": "set_state", "inputs": {"key": "k", "value": "\ud83d\ude00"}}]}"#,
        );
        let errors: Vec<_> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.severity == crate::diagnostic::Severity::Error)
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        let cascade = loaded.document.and_then(|d| d.cascade().cloned()).unwrap();
        assert_eq!(cascade.description.as_deref(), Some("\u{1F40D} snake"));
    }

    #[test]
    fn cascade_refs_find_the_yaml_twin_of_a_json_ref_and_stay_contained() {
        let dir = tempfile::TempDir::new().unwrap();
        let project = dir.path().join("project");
        fs::create_dir_all(project.join("sub")).unwrap();
        fs::write(project.join("sub/child.yaml"), "cascade_id: c\ncells: []\n").unwrap();
        fs::write(dir.path().join("outside.yaml"), "cascade_id: o\ncells: []\n").unwrap();
        let bases = vec![project];
        let found = resolve_cascade_ref("sub/child.json", &bases).unwrap().unwrap();
        assert!(found.ends_with("sub/child.yaml"), "{}", found.display());
        assert_eq!(resolve_cascade_ref("sub/missing.json", &bases), Ok(None));
        let escape = resolve_cascade_ref("../outside.json", &bases).unwrap_err();
        assert!(escape.contains("leaves the directory"), "{escape}");
        assert!(resolve_cascade_ref("/etc/passwd", &bases).is_err());
    }
}
