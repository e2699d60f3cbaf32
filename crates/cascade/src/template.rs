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
}
