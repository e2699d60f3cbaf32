//! Rendering diagnostics for people: a header, the source excerpt with a caret, the hint and an example.

use std::path::Path;

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label as CsLabel, Severity as CsSeverity};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::termcolor::Buffer;
use codespan_reporting::term::{self, Config, Styles, StylesWriter};

use crate::diagnostic::{Diagnostic, Severity};
use crate::source::SourceFile;

/// Render one diagnostic, with a source excerpt when `source` is given. `color` adds ANSI colors.
pub fn render(diag: &Diagnostic, file: &Path, source: Option<&SourceFile>, color: bool) -> String {
    let severity = match diag.severity {
        Severity::Error => CsSeverity::Error,
        Severity::Warning => CsSeverity::Warning,
        Severity::Note => CsSeverity::Note,
        Severity::Help => CsSeverity::Help,
    };
    let mut message = diag.message.clone();
    if let Some(cell) = &diag.cell
        && !cell.is_empty()
    {
        message = format!("{message} (cell `{cell}`)");
    }
    let mut notes = Vec::new();
    if let Some(hint) = &diag.hint {
        notes.push(format!("hint: {hint}"));
    }
    if let Some(example) = &diag.example {
        let indented: Vec<String> = example.lines().map(|l| format!("    {l}")).collect();
        notes.push(format!("example:\n{}", indented.join("\n")));
    }
    notes.push(format!("see: rvbbit explain {}", diag.code.code));

    let name = file.display().to_string();
    let text = source.map_or("", SourceFile::text);
    let files = SimpleFile::new(name.clone(), text);
    let mut cs = CsDiagnostic::new(severity)
        .with_code(diag.code.code)
        .with_message(message)
        .with_notes(notes);
    match (diag.span, source) {
        (Some(span), Some(src)) => {
            let end = span
                .end
                .min(src.text().len())
                .max(span.start.min(src.text().len()));
            let start = span.start.min(end);
            let mut labels =
                vec![CsLabel::primary((), start..end).with_message(diag.label.clone().unwrap_or_default())];
            for l in &diag.secondary {
                let e = l.span.end.min(src.text().len());
                labels.push(CsLabel::secondary((), l.span.start.min(e)..e).with_message(l.message.clone()));
            }
            cs = cs.with_labels(labels);
        }
        _ => {
            // No position: name the file in the message instead (unless the message already does).
            if !cs.message.contains(&name) {
                cs.message = format!("{}: {}", name, cs.message);
            }
        }
    }
    let config = Config::default();
    if color {
        let styles = Styles::default();
        let mut buffer = Buffer::ansi();
        let mut writer = StylesWriter::new(&mut buffer, &styles);
        if term::emit_to_write_style(&mut writer, &config, &files, &cs).is_ok() {
            return String::from_utf8_lossy(buffer.as_slice()).into_owned();
        }
    }
    match term::emit_into_string(&config, &files, &cs) {
        Ok(s) => s,
        Err(_) => format!(
            "{}[{}]: {}\n",
            severity_word(diag.severity),
            diag.code.code,
            diag.message
        ),
    }
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
        Severity::Help => "help",
    }
}
