//! Jinja template checks: syntax errors mapped back to the file, and references to cell outputs.

use minijinja::machinery::{self, Token};
use minijinja::syntax::SyntaxConfig;

use crate::source::{SourceFile, Span};
use crate::yaml::{Node, NodeKind, Style};

/// A syntax error inside a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    /// The engine's description.
    pub message: String,
    /// Byte range inside the template text.
    pub range: std::ops::Range<usize>,
}

/// A reference to a cell's output found in a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputRef {
    /// The referenced cell name.
    pub cell: String,
    /// How it was written: `outputs` or `state.output_`.
    pub via: RefKind,
    /// Byte range inside the template text.
    pub range: std::ops::Range<usize>,
}

/// How a template reads a cell's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind {
    /// `outputs.<cell>` or `outputs['<cell>']`.
    Outputs,
    /// `state.output_<cell>`.
    StateOutput,
}

/// Parse a template; `Err` describes the first syntax error.
pub fn check_syntax(text: &str) -> Result<(), TemplateError> {
    match machinery::parse(text, "<template>", SyntaxConfig::default()) {
        Ok(_) => Ok(()),
        Err(err) => {
            let range = err.range().unwrap_or_else(|| {
                let line = err.line().unwrap_or(1);
                let start = line_start(text, line);
                start..start
            });
            let message = match err.detail() {
                Some(detail) => detail.to_owned(),
                None => err.kind().to_string(),
            };
            Err(TemplateError { message, range })
        }
    }
}

fn line_start(text: &str, line: usize) -> usize {
    if line <= 1 {
        return 0;
    }
    text.match_indices('\n')
        .nth(line - 2)
        .map_or(text.len(), |(i, _)| i + 1)
}

/// Every `outputs.X`, `outputs['X']` and `state.output_X` in a template (empty if it does not tokenize).
pub fn output_refs(text: &str) -> Vec<OutputRef> {
    let mut tokens = Vec::new();
    for item in machinery::tokenize(text, false, SyntaxConfig::default()) {
        match item {
            Ok((token, span)) => tokens.push((token, span.start_offset as usize..span.end_offset as usize)),
            Err(_) => return Vec::new(),
        }
    }
    let mut refs = Vec::new();
    for window in tokens.windows(3) {
        let [(first, _), (sep, _), (third, range)] = window else {
            continue;
        };
        let Token::Ident(base) = first else { continue };
        match (*base, sep, third) {
            ("outputs", Token::Dot, Token::Ident(name)) => refs.push(OutputRef {
                cell: (*name).to_owned(),
                via: RefKind::Outputs,
                range: range.clone(),
            }),
            ("outputs", Token::BracketOpen, Token::Str(name)) => refs.push(OutputRef {
                cell: (*name).to_owned(),
                via: RefKind::Outputs,
                range: range.clone(),
            }),
            ("state", Token::Dot, Token::Ident(name)) => {
                if let Some(cell) = name.strip_prefix("output_") {
                    refs.push(OutputRef {
                        cell: cell.to_owned(),
                        via: RefKind::StateOutput,
                        range: range.clone(),
                    })
                }
            }
            _ => {}
        }
    }
    refs
}

/// Filters that quote a value for the shell (the engine's `shell_quote` and its alias `q`).
pub const SHELL_QUOTE_FILTERS: &[&str] = &["shell_quote", "q"];

/// Which names bring outside values into a shell command template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShellValues {
    /// A cell's command: `input`, `outputs` and `state`.
    Run,
    /// A declarative tool's command: any variable (the tool's arguments).
    ToolArguments,
}

/// A `{{ ... }}` in a shell command that inserts an outside value without quoting it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnquotedValue {
    /// The expression inside the braces, trimmed (`input.name`).
    pub expression: String,
    /// Byte range of the whole `{{ ... }}` inside the template text.
    pub range: std::ops::Range<usize>,
}

/// Every `{{ ... }}` of a shell command template that reads an outside value (see [`ShellValues`]) and
/// does not end in `| q` or `| shell_quote`. Empty when the template does not tokenize (its syntax
/// error is reported on its own).
pub fn unquoted_shell_values(text: &str, values: ShellValues) -> Vec<UnquotedValue> {
    let mut tokens = Vec::new();
    for item in machinery::tokenize(text, false, SyntaxConfig::default()) {
        match item {
            Ok((token, span)) => tokens.push((token, span.start_offset as usize..span.end_offset as usize)),
            Err(_) => return Vec::new(),
        }
    }
    let mut out = Vec::new();
    let mut open: Option<usize> = None;
    for (i, (token, range)) in tokens.iter().enumerate() {
        match token {
            Token::VariableStart => open = Some(i),
            Token::VariableEnd => {
                let Some(start) = open.take() else { continue };
                let inner = &tokens[start + 1..i];
                if reads_outside_value(inner, values) && !ends_quoted(inner) {
                    let from = tokens[start].1.end;
                    out.push(UnquotedValue {
                        expression: text[from.min(range.start)..range.start].trim().to_owned(),
                        range: tokens[start].1.start..range.end,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

fn reads_outside_value(inner: &[(Token<'_>, std::ops::Range<usize>)], values: ShellValues) -> bool {
    // Names in the condition of `a if cond else b` decide which value is inserted, not what it is.
    let mut in_condition = false;
    inner.iter().enumerate().any(|(j, (token, _))| {
        match token {
            Token::Ident("if") => in_condition = true,
            Token::Ident("else") => in_condition = false,
            _ => {}
        }
        let Token::Ident(name) = token else { return false };
        if in_condition {
            return false;
        }
        let after = inner.get(j + 1).map(|(t, _)| t);
        let before = j.checked_sub(1).and_then(|b| inner.get(b)).map(|(t, _)| t);
        // Not an attribute (`x.name`), a filter or test name (`| name`, `is name`), or a call (`name(`).
        let is_variable = !matches!(before, Some(Token::Dot | Token::Pipe))
            && !matches!(after, Some(Token::ParenOpen))
            && !matches!(before, Some(Token::Ident("is")))
            && !matches!(
                *name,
                "true"
                    | "false"
                    | "none"
                    | "True"
                    | "False"
                    | "None"
                    | "is"
                    | "not"
                    | "and"
                    | "or"
                    | "in"
                    | "if"
                    | "else"
            );
        match values {
            ShellValues::Run => is_variable && matches!(*name, "input" | "outputs" | "state"),
            ShellValues::ToolArguments => is_variable,
        }
    })
}

fn ends_quoted(inner: &[(Token<'_>, std::ops::Range<usize>)]) -> bool {
    matches!(
        inner,
        [.., (Token::Pipe, _), (Token::Ident(name), _)] if SHELL_QUOTE_FILTERS.contains(name)
    )
}

/// Map a byte range inside a template string back to the file the string was written in.
///
/// Exact for `|` blocks and for single-line scalars without escapes; otherwise the text around the
/// position is searched for in the scalar's source, falling back to the scalar's start.
pub fn map_range(source: &SourceFile, node: &Node, template: &str, range: std::ops::Range<usize>) -> Span {
    let NodeKind::Str(_, style) = &node.kind else {
        return node.span;
    };
    let raw = source.slice(node.span);
    let start = range.start.min(template.len());
    let len = range.end.saturating_sub(range.start).min(template.len() - start);
    if *style == Style::Literal
        && let Some(offset) = map_literal(source, node, template, start)
    {
        return Span::new(offset, offset + len);
    }
    let quote = usize::from(matches!(style, Style::SingleQuoted | Style::DoubleQuoted));
    if !template.contains('\n') && !raw.contains('\n') && !raw.contains('\\') && !raw.contains("''") {
        let offset = node.span.start + quote + start;
        return Span::new(offset, offset + len);
    }
    // Search for the text at the position in the scalar's source.
    for width in [16usize, 8, 4] {
        let snippet: String = template
            .get(start..)
            .unwrap_or("")
            .chars()
            .take_while(|c| *c != '\n')
            .take(width)
            .collect();
        if snippet.trim().len() < 2 {
            continue;
        }
        let hits: Vec<usize> = raw.match_indices(&snippet).map(|(i, _)| i).collect();
        if hits.len() == 1 {
            let offset = node.span.start + hits[0];
            return Span::new(offset, offset + len.max(1).min(snippet.len()));
        }
    }
    Span::point(node.span.start)
}

fn map_literal(source: &SourceFile, node: &Node, template: &str, offset: usize) -> Option<usize> {
    // The scalar's span may start at the `|` indicator or at its first content line.
    let at_indicator = source
        .text()
        .get(node.span.start..)
        .is_some_and(|t| t.starts_with(['|', '>']));
    let first_line = source.line_col(node.span.start).line + usize::from(at_indicator);
    let header = first_line - 1;
    let before = template.get(..offset)?;
    let line_in_template = before.matches('\n').count();
    let col_bytes = offset - before.rfind('\n').map_or(0, |i| i + 1);
    // Indentation of the block: the first non-blank line after the header.
    let indent = (header + 1..=source.line_count())
        .map(|l| source.line_text(l))
        .find(|t| !t.trim().is_empty())
        .map(|t| t.len() - t.trim_start_matches(' ').len())?;
    let line = header + 1 + line_in_template;
    let line_text = source.line_text(line);
    let byte_col = (indent + col_bytes).min(line_text.len());
    let char_col = line_text.get(..byte_col)?.chars().count();
    Some(source.offset_of(line, char_col))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_have_ranges() {
        assert!(check_syntax("Hello {{ name }}").is_ok());
        let err = check_syntax("Hello {{ name ").unwrap_err();
        assert!(!err.message.is_empty());
        assert!(check_syntax("{% for x in y %}no end").is_err());
    }

    #[test]
    fn finds_output_references() {
        let refs = output_refs(
            "{{ outputs.draft }} {{ outputs['plan'].x }} {{ state.output_load }} {{ state.other }}",
        );
        let names: Vec<(&str, RefKind)> = refs.iter().map(|r| (r.cell.as_str(), r.via)).collect();
        assert_eq!(
            names,
            vec![
                ("draft", RefKind::Outputs),
                ("plan", RefKind::Outputs),
                ("load", RefKind::StateOutput)
            ]
        );
    }

    #[test]
    fn unquoted_shell_values_are_found_and_quoted_ones_are_not() {
        let found = unquoted_shell_values(
            "echo {{ input.x }} {{ input.y | q }} {{ outputs.a.rows | length }} {{ state.k | shell_quote }} {{ 'lit' }}",
            ShellValues::Run,
        );
        let exprs: Vec<&str> = found.iter().map(|u| u.expression.as_str()).collect();
        assert_eq!(exprs, ["input.x", "outputs.a.rows | length"]);
        assert_eq!(found[0].range, 5..18);
        // `| tojson` is not shell quoting.
        assert_eq!(
            unquoted_shell_values("run {{ input.x | tojson }}", ShellValues::Run).len(),
            1
        );
        // Tool commands: any variable is an argument; functions and literals are not.
        let tool = unquoted_shell_values(
            "wc -w < {{ path }} {{ range(3) | join }} {{ name | q }}",
            ShellValues::ToolArguments,
        );
        assert_eq!(
            tool.iter().map(|u| u.expression.as_str()).collect::<Vec<_>>(),
            ["path"]
        );
        assert!(unquoted_shell_values("echo {{ broken", ShellValues::Run).is_empty());
    }
}
