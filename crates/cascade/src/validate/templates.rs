//! Template fields (syntax and output references), `output_schema` and tool definitions.

use std::collections::BTreeSet;

use rvbbit_core::codes;
use serde_json::Value;

use super::Ctx;
use crate::diagnostic::{Diagnostic, list_names, similar};
use crate::load::Document;
use crate::model::{Callouts, HumanInput, IntOrTemplate, OnError, ToolDefinition, ToolType};
use crate::source::Span;
use crate::template::{
    RefKind, ShellValues, UnquotedValue, check_syntax, map_range, output_refs, unquoted_shell_values,
};

/// A template field: its key path, its text, and the cell it belongs to.
struct Field<'a> {
    path: String,
    text: &'a str,
    cell: Option<&'a str>,
    check_refs: bool,
}

fn push_value_templates<'a>(out: &mut Vec<Field<'a>>, path: String, value: &'a Value, cell: Option<&'a str>) {
    match value {
        Value::String(s) => out.push(Field {
            path,
            text: s,
            cell,
            check_refs: true,
        }),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                push_value_templates(out, format!("{path}[{i}]"), item, cell);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                push_value_templates(out, format!("{path}.{k}"), v, cell);
            }
        }
        _ => {}
    }
}

fn template_fields<'a>(ctx: &Ctx<'a>) -> Vec<Field<'a>> {
    let mut out = Vec::new();
    let push = |out: &mut Vec<Field<'a>>, path: String, text: Option<&'a String>, cell: Option<&'a str>| {
        if let Some(text) = text {
            out.push(Field {
                path,
                text,
                cell,
                check_refs: true,
            });
        }
    };
    for (i, cell) in ctx.cascade.cells.iter().enumerate() {
        let name = Some(cell.name.as_str());
        let base = format!("cells[{i}]");
        push(
            &mut out,
            format!("{base}.instructions"),
            cell.instructions.as_ref(),
            name,
        );
        push(&mut out, format!("{base}.htmx"), cell.htmx.as_ref(), name);
        for (k, v) in cell.inputs.iter().flatten() {
            push_value_templates(&mut out, format!("{base}.inputs.{k}"), v, name);
        }
        if let Some(rules) = &cell.rules {
            push(
                &mut out,
                format!("{base}.rules.loop_until_prompt"),
                rules.loop_until_prompt.as_ref(),
                name,
            );
            push(
                &mut out,
                format!("{base}.rules.retry_instructions"),
                rules.retry_instructions.as_ref(),
                name,
            );
            push(
                &mut out,
                format!("{base}.rules.turn_prompt"),
                rules.turn_prompt.as_ref(),
                name,
            );
        }
        if let Some(HumanInput::Spec(h)) = &cell.human_input {
            push(
                &mut out,
                format!("{base}.human_input.prompt"),
                h.prompt.as_ref(),
                name,
            );
            push(
                &mut out,
                format!("{base}.human_input.condition"),
                h.condition.as_ref(),
                name,
            );
        }
        if let Some(context) = &cell.context {
            for (j, from) in context.from.iter().flatten().enumerate() {
                if let crate::model::ContextFrom::Source(s) = from {
                    push(
                        &mut out,
                        format!("{base}.context.from[{j}].condition"),
                        s.condition.as_ref(),
                        name,
                    );
                }
            }
        }
        if let Some(c) = &cell.candidates {
            push(
                &mut out,
                format!("{base}.candidates.evaluator_instructions"),
                c.evaluator_instructions.as_ref(),
                name,
            );
            push(
                &mut out,
                format!("{base}.candidates.aggregator_instructions"),
                c.aggregator_instructions.as_ref(),
                name,
            );
            if let Some(IntOrTemplate::Template(t)) = &c.factor {
                push(&mut out, format!("{base}.candidates.factor"), Some(t), name);
            }
            if let Some(r) = &c.reforge {
                push(
                    &mut out,
                    format!("{base}.candidates.reforge.honing_prompt"),
                    r.honing_prompt.as_ref(),
                    name,
                );
            }
        }
        match &cell.callouts {
            Some(Callouts::Label(l)) => push(&mut out, format!("{base}.callouts"), Some(l), name),
            Some(Callouts::Spec { output, messages, .. }) => {
                push(&mut out, format!("{base}.callouts.output"), output.as_ref(), name);
                push(
                    &mut out,
                    format!("{base}.callouts.messages"),
                    messages.as_ref(),
                    name,
                );
            }
            None => {}
        }
        if let Some(OnError::Spec(spec)) = &cell.on_error {
            push(
                &mut out,
                format!("{base}.on_error.instructions"),
                spec.instructions.as_ref(),
                name,
            );
        }
        if let Some(f) = &cell.for_each_row {
            push(
                &mut out,
                format!("{base}.for_each_row.instructions"),
                f.instructions.as_ref(),
                name,
            );
            for (k, v) in f.inputs.iter().flatten() {
                push_value_templates(&mut out, format!("{base}.for_each_row.inputs.{k}"), v, name);
            }
        }
    }
    for (name, v) in ctx.cascade.validators.iter().flatten() {
        out.push(Field {
            path: format!("validators.{name}.instructions"),
            text: &v.instructions,
            cell: None,
            check_refs: false,
        });
    }
    out
}

pub(super) fn check_templates(ctx: &Ctx<'_>, diags: &mut Vec<Diagnostic>) {
    let names: BTreeSet<&str> = ctx.cell_names().into_iter().collect();
    for field in template_fields(ctx) {
        let include = ctx.document.includes.iter().find(|i| i.field == field.path);
        let node = ctx.document.node_at(&field.path);
        let locate = |range: std::ops::Range<usize>| -> Span {
            match (include, node) {
                (Some(inc), _) => inc.span,
                (None, Some(node)) => map_range(&ctx.document.source, node, field.text, range),
                (None, None) => Span::default(),
            }
        };
        let key = field.path.rsplit('.').next().unwrap_or("template").to_owned();
        if let Err(err) = check_syntax(field.text) {
            let mut message = format!("template syntax error in `{key}`: {}", err.message);
            if let Some(inc) = include {
                let line = field.text[..err.range.start.min(field.text.len())]
                    .matches('\n')
                    .count()
                    + 1;
                message = format!(
                    "template syntax error in `{}` line {line}: {}",
                    inc.path.display(),
                    err.message
                );
            }
            diags.push(
                Diagnostic::error(codes::V_TEMPLATE_SYNTAX, message)
                    .at(locate(err.range))
                    .with_label("here")
                    .in_cell(field.cell.map(str::to_owned))
                    .with_path(field.path.clone())
                    .with_hint(template_hint(&err.message)),
            );
            continue;
        }
        if !field.check_refs {
            continue;
        }
        for reference in output_refs(field.text) {
            if names.contains(reference.cell.as_str()) {
                continue;
            }
            let written = match reference.via {
                RefKind::Outputs => format!("outputs.{}", reference.cell),
                RefKind::StateOutput => format!("state.output_{}", reference.cell),
            };
            let list: Vec<&str> = names.iter().copied().collect();
            let mut diag = match reference.via {
                RefKind::Outputs => Diagnostic::error(
                    codes::V_TEMPLATE_REF,
                    format!("`{written}` refers to a cell that does not exist"),
                ),
                // `set_state` can write any key, so this is only a warning.
                RefKind::StateOutput => Diagnostic::warning(
                    codes::V_TEMPLATE_REF,
                    format!("`{written}` refers to a cell that does not exist"),
                ),
            }
            .at(locate(reference.range))
            .with_label("no cell has this name")
            .in_cell(field.cell.map(str::to_owned))
            .with_path(field.path.clone());
            diag = match similar(&reference.cell, list.iter().copied(), 1).first() {
                Some(best) => diag.with_hint(format!("did you mean `{best}`? cells: {}", list_names(&list))),
                None => diag.with_hint(format!(
                    "it would always render empty; cells: {}",
                    list_names(&list)
                )),
            };
            diags.push(diag);
        }
    }
    check_regexes(ctx, diags);
    check_shell_quoting(ctx, diags);
}

/// Built-in tools whose input is a shell command, and which input.
const SHELL_INPUTS: &[(&str, &str)] = &[("linux_shell", "command"), ("bash_data", "script")];

/// `RVB-V025`: a shell command of a `linux_shell`/`bash_data` cell that inserts `input.*`, `outputs.*` or
/// `state.*` without `| q`.
fn check_shell_quoting(ctx: &Ctx<'_>, diags: &mut Vec<Diagnostic>) {
    for (i, cell) in ctx.cascade.cells.iter().enumerate() {
        let Some(tool) = cell.tool.as_deref() else {
            continue;
        };
        let Some((_, key)) = SHELL_INPUTS.iter().find(|(t, _)| *t == tool) else {
            continue;
        };
        let Some(Value::String(text)) = cell.inputs.as_ref().and_then(|m| m.get(*key)) else {
            continue;
        };
        let path = format!("cells[{i}].inputs.{key}");
        let found = unquoted_shell_values(text, ShellValues::Run);
        let node = ctx.document.node_at(&path);
        for diag in unquoted_diagnostics(&ctx.document.source, node, text, &found, &path) {
            diags.push(diag.in_cell(Some(cell.name.clone())));
        }
    }
}

/// One warning per unquoted value, each with the whole template fixed as its example.
fn unquoted_diagnostics(
    source: &crate::source::SourceFile,
    node: Option<&crate::yaml::Node>,
    text: &str,
    found: &[UnquotedValue],
    path: &str,
) -> Vec<Diagnostic> {
    if found.is_empty() {
        return Vec::new();
    }
    let mut fixed = String::with_capacity(text.len() + 8 * found.len());
    let mut at = 0;
    for u in found {
        fixed.push_str(&text[at..u.range.start]);
        fixed.push_str(&format!("{{{{ {} | q }}}}", u.expression));
        at = u.range.end;
    }
    fixed.push_str(&text[at..]);
    found
        .iter()
        .map(|u| {
            let span = node.map_or_else(Span::default, |n| map_range(source, n, text, u.range.clone()));
            Diagnostic::warning(
                codes::V_UNQUOTED_SHELL,
                format!(
                    "`{{{{ {} }}}}` inserts a value into a shell command without quoting it",
                    u.expression
                ),
            )
            .at(span)
            .with_label("a value such as `x'; id; echo '` would run commands here")
            .with_path(path.to_owned())
            .with_hint(format!(
                "end the expression with `| q` (POSIX shell quoting): `{{{{ {} | q }}}}`",
                u.expression
            ))
            .with_example(fixed.clone())
        })
        .collect()
}

fn template_hint(message: &str) -> &'static str {
    if message.contains("end of variable block") {
        "close `{{` with `}}`; to write a literal `{{`, use `{{ '{{' }}`"
    } else if message.contains("end of block") || message.contains("unknown statement") {
        "close every `{% if %}` with `{% endif %}` and every `{% for %}` with `{% endfor %}`"
    } else {
        "templates use Jinja syntax: `{{ expression }}` and `{% statement %}`"
    }
}

fn check_regexes(ctx: &Ctx<'_>, diags: &mut Vec<Diagnostic>) {
    for (i, cell) in ctx.cascade.cells.iter().enumerate() {
        let Some(extraction) = &cell.output_extraction else {
            continue;
        };
        if let Err(e) = regex::RegexBuilder::new(&extraction.pattern)
            .size_limit(1 << 20)
            .build()
        {
            let path = format!("cells[{i}].output_extraction.pattern");
            let message = e
                .to_string()
                .lines()
                .last()
                .unwrap_or("invalid pattern")
                .trim()
                .to_owned();
            diags.push(
                Diagnostic::error(
                    codes::V_TYPE,
                    format!("`output_extraction.pattern` is not a valid regular expression: {message}"),
                )
                .at(ctx.document.span_of(&path).unwrap_or_default())
                .with_label("invalid pattern")
                .in_cell(Some(cell.name.clone()))
                .with_path(path)
                .with_hint("escape special characters such as `(`, `[` and `{` with a backslash"),
            );
        }
    }
}

const KNOWN_DRAFTS: &[&str] = &[
    "http://json-schema.org/draft-04/schema#",
    "http://json-schema.org/draft-06/schema#",
    "http://json-schema.org/draft-07/schema#",
    "http://json-schema.org/draft-07/schema",
    "https://json-schema.org/draft/2019-09/schema",
    "https://json-schema.org/draft/2020-12/schema",
];

/// Check every `output_schema` against the JSON Schema meta-schema.
pub(super) fn check_output_schemas(ctx: &Ctx<'_>, diags: &mut Vec<Diagnostic>) {
    for (i, cell) in ctx.cascade.cells.iter().enumerate() {
        let Some(schema) = &cell.output_schema else {
            continue;
        };
        let path = format!("cells[{i}].output_schema");
        let cell_name = Some(cell.name.clone());
        let mut schema = schema.clone();
        if !schema.is_object() && !schema.is_boolean() {
            diags.push(
                Diagnostic::error(codes::V_OUTPUT_SCHEMA, "`output_schema` must be a JSON Schema object")
                    .at(ctx.document.span_of(&path).unwrap_or_default())
                    .in_cell(cell_name)
                    .with_path(path)
                    .with_example("output_schema:\n  type: object\n  properties:\n    answer: {type: string}\n  required: [answer]"),
            );
            continue;
        }
        if let Some(declared) = schema.get("$schema").and_then(Value::as_str)
            && !KNOWN_DRAFTS.contains(&declared)
            && let Value::Object(map) = &mut schema
        {
            map.remove("$schema");
        }
        let validator = match jsonschema::meta::validator_for(&schema) {
            Ok(v) => v,
            Err(e) => {
                diags.push(
                    Diagnostic::error(
                        codes::V_OUTPUT_SCHEMA,
                        format!("`output_schema` cannot be checked: {e}"),
                    )
                    .at(ctx.document.span_of(&path).unwrap_or_default())
                    .in_cell(cell_name)
                    .with_path(path),
                );
                continue;
            }
        };
        let mut found = false;
        for error in validator.iter_errors(&schema).take(10) {
            found = true;
            let pointer = error.instance_path().as_str().to_owned();
            let sub = pointer_to_path(&pointer);
            let full = if sub.is_empty() {
                path.clone()
            } else {
                format!("{path}{sub}")
            };
            let span = nearest_span(ctx.document, &full).unwrap_or_default();
            diags.push(
                Diagnostic::error(codes::V_OUTPUT_SCHEMA, format!("`output_schema` is not a valid JSON Schema: {error}"))
                    .at(span)
                    .with_label("invalid here")
                    .in_cell(cell_name.clone())
                    .with_path(full)
                    .with_hint("JSON Schema types are `object`, `array`, `string`, `number`, `integer`, `boolean` and `null`; `required` is a list"),
            );
        }
        if !found && let Err(e) = jsonschema::validator_for(&schema) {
            diags.push(
                Diagnostic::error(codes::V_OUTPUT_SCHEMA, format!("`output_schema` cannot be used: {e}"))
                    .at(ctx.document.span_of(&path).unwrap_or_default())
                    .in_cell(cell_name)
                    .with_path(path)
                    .with_hint("check `pattern` regular expressions and `$ref` targets (remote references are not fetched)"),
            );
        }
    }
}

/// `/properties/a/required/0` → `.properties.a.required[0]`.
fn pointer_to_path(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        let part = part.replace("~1", "/").replace("~0", "~");
        if part.parse::<usize>().is_ok() {
            out.push_str(&format!("[{part}]"));
        } else {
            out.push('.');
            out.push_str(&part);
        }
    }
    out
}

/// The span at `path`, or of its nearest ancestor that exists in the source.
fn nearest_span(doc: &Document, path: &str) -> Option<Span> {
    let mut current = path.to_owned();
    loop {
        if let Some(span) = doc.span_of(&current) {
            return Some(span);
        }
        let cut = current.rfind(['.', '['])?;
        current.truncate(cut);
    }
}

/// Check a declarative tool definition: what its type needs, and its templates.
pub(super) fn check_tool_definition(doc: &Document, tool: &ToolDefinition, diags: &mut Vec<Diagnostic>) {
    let needs: &[(&str, bool)] = match tool.kind {
        ToolType::Shell => &[("command", tool.command.is_some())],
        ToolType::Http => &[("url", tool.url.is_some())],
        ToolType::Python => &[("function", tool.function.is_some())],
        ToolType::Gradio => &[("space", tool.space.is_some())],
        ToolType::Composite => &[("steps", tool.steps.as_ref().is_some_and(|s| !s.is_empty()))],
    };
    for (key, present) in needs {
        if !present {
            diags.push(
                Diagnostic::error(
                    codes::V_TOOL_DEFINITION,
                    format!("a `{:?}` tool needs `{key}`", tool.kind).to_lowercase(),
                )
                .at(doc.span_of("type").unwrap_or_default())
                .with_label("this type")
                .with_path(key.to_string())
                .with_example(format!("\"{key}\": \"...\"")),
            );
        }
    }
    let mut fields: Vec<(String, &str)> = Vec::new();
    if let Some(c) = &tool.command {
        fields.push(("command".into(), c));
    }
    if let Some(u) = &tool.url {
        fields.push(("url".into(), u));
    }
    for (i, step) in tool.steps.iter().flatten().enumerate() {
        if let Some(c) = &step.condition {
            fields.push((format!("steps[{i}].condition"), c));
        }
        for (k, v) in step.args.iter().flatten() {
            if let Some(s) = v.as_str() {
                fields.push((format!("steps[{i}].args.{k}"), s));
            }
        }
    }
    if let (ToolType::Shell, Some(command)) = (&tool.kind, &tool.command) {
        let found = unquoted_shell_values(command, ShellValues::ToolArguments);
        diags.extend(unquoted_diagnostics(
            &doc.source,
            doc.node_at("command"),
            command,
            &found,
            "command",
        ));
    }
    for (path, text) in fields {
        if let Err(err) = check_syntax(text) {
            let span = doc
                .node_at(&path)
                .map_or_else(Span::default, |n| map_range(&doc.source, n, text, err.range));
            diags.push(
                Diagnostic::error(
                    codes::V_TEMPLATE_SYNTAX,
                    format!("template syntax error in `{path}`: {}", err.message),
                )
                .at(span)
                .with_label("here")
                .with_path(path),
            );
        }
    }
}
