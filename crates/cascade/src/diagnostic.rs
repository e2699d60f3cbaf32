//! Diagnostics: what is wrong, where, and how to fix it.

use std::path::{Path, PathBuf};

use rvbbit_core::ErrorCode;
use serde::Serialize;

use crate::source::{SourceFile, Span};

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Must be fixed; `rvbbit validate` exits 1.
    Error,
    /// Probably a mistake; an error with `--strict`.
    Warning,
    /// Information.
    Note,
    /// A suggestion.
    Help,
}

/// A secondary location with its own message ("first defined here").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What it shows.
    pub message: String,
}

/// One problem found in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// How serious.
    pub severity: Severity,
    /// The stable error code (decides the docs page and the exit code).
    pub code: &'static ErrorCode,
    /// What is wrong, in one sentence.
    pub message: String,
    /// The primary location, when there is one.
    pub span: Option<Span>,
    /// The text shown under the primary location.
    pub label: Option<String>,
    /// Other locations.
    pub secondary: Vec<Label>,
    /// The cell the problem is in.
    pub cell: Option<String>,
    /// Where in the document, as a key path (`cells[2].rules.max_turns`).
    pub path: Option<String>,
    /// How to fix it.
    pub hint: Option<String>,
    /// An example of the fixed text.
    pub example: Option<String>,
}

impl Diagnostic {
    /// A new diagnostic with a severity, a code and a message.
    pub fn new(severity: Severity, code: &'static ErrorCode, message: impl Into<String>) -> Self {
        Diagnostic {
            severity,
            code,
            message: message.into(),
            span: None,
            label: None,
            secondary: Vec::new(),
            cell: None,
            path: None,
            hint: None,
            example: None,
        }
    }

    /// An error.
    pub fn error(code: &'static ErrorCode, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, message)
    }

    /// A warning.
    pub fn warning(code: &'static ErrorCode, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, code, message)
    }

    /// Set the primary location.
    pub fn at(mut self, span: Span) -> Self {
        self.span = Some(span);
        self
    }

    /// Set the text under the primary location.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Add a secondary location.
    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Self {
        self.secondary.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    /// Set the cell.
    pub fn in_cell(mut self, cell: Option<String>) -> Self {
        self.cell = cell;
        self
    }

    /// Set the key path.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Set the hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Set the example fix.
    pub fn with_example(mut self, example: impl Into<String>) -> Self {
        self.example = Some(example.into());
        self
    }

    /// The JSON form of this diagnostic, with positions resolved against `source`.
    pub fn to_json(&self, file: &Path, source: Option<&SourceFile>) -> DiagnosticJson {
        let (start, end) = match (self.span, source) {
            (Some(span), Some(src)) => (Some(src.line_col(span.start)), Some(src.line_col(span.end))),
            _ => (None, None),
        };
        DiagnosticJson {
            severity: self.severity,
            code: self.code.code.to_owned(),
            file: file.to_path_buf(),
            line: start.map(|p| p.line),
            column: start.map(|p| p.col),
            end_line: end.map(|p| p.line),
            end_column: end.map(|p| p.col),
            cell: self.cell.clone(),
            path: self.path.clone(),
            message: self.message.clone(),
            hint: self.hint.clone(),
            example: self.example.clone(),
            labels: self
                .secondary
                .iter()
                .map(|l| {
                    let at = source.map(|s| s.line_col(l.span.start));
                    LabelJson {
                        line: at.map(|p| p.line),
                        column: at.map(|p| p.col),
                        message: l.message.clone(),
                    }
                })
                .collect(),
        }
    }
}

/// The documented JSON shape of a diagnostic (`rvbbit validate --output json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiagnosticJson {
    /// `error`, `warning`, `note` or `help`.
    pub severity: Severity,
    /// The error code, such as `RVB-V004`.
    pub code: String,
    /// The file.
    pub file: PathBuf,
    /// 1-based line of the start, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters) of the start, when known.
    pub column: Option<usize>,
    /// 1-based line of the end.
    pub end_line: Option<usize>,
    /// 1-based column of the end.
    pub end_column: Option<usize>,
    /// The cell, when the problem is inside one.
    pub cell: Option<String>,
    /// Key path, such as `cells[2].rules.max_turns`.
    pub path: Option<String>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
    /// An example fix.
    pub example: Option<String>,
    /// Other related locations.
    pub labels: Vec<LabelJson>,
}

/// A secondary location in JSON form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LabelJson {
    /// 1-based line.
    pub line: Option<usize>,
    /// 1-based column.
    pub column: Option<usize>,
    /// What it shows.
    pub message: String,
}

/// Up to `max` names from `candidates` similar to `word`, best first.
pub fn similar<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>, max: usize) -> Vec<String> {
    let lower = word.to_ascii_lowercase();
    let mut scored: Vec<(f64, &str)> = candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| {
            let cl = c.to_ascii_lowercase();
            let jw = strsim::jaro_winkler(&lower, &cl);
            let lev = strsim::levenshtein(&lower, &cl);
            // Accept close edits, or prefixes/suffixes of reasonable length ("turns" ~ "max_turns").
            let contains = lower.len() >= 4 && (cl.contains(&lower) || lower.contains(&cl));
            let score = if lev <= 2 || contains { jw + 1.0 } else { jw };
            (score, c)
        })
        .filter(|(s, _)| *s >= 0.88)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(max).map(|(_, c)| c.to_owned()).collect()
}

/// Join names as `` `a`, `b` and `c` ``.
pub fn list_names<S: AsRef<str>>(names: &[S]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{}`", n.as_ref())).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        n => format!("{} and {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_finds_typos() {
        let keys = ["max_turns", "max_attempts", "loop_until", "turn_prompt"];
        assert_eq!(similar("max_turn", keys, 3)[0], "max_turns");
        assert_eq!(similar("loop_untill", keys, 3), vec!["loop_until"]);
        assert!(similar("zebra", keys, 3).is_empty());
    }

    #[test]
    fn names_are_listed() {
        assert_eq!(list_names(&["a"]), "`a`");
        assert_eq!(list_names(&["a", "b", "c"]), "`a`, `b` and `c`");
    }
}
