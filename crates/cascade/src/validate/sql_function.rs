//! `sql_function`: argument names, operator templates and the shape's own keys.
//!
//! Unknown `returns` and `shape` values are reported by the schema walker (they are enums); this
//! module checks what the schema cannot say: duplicate argument names, templates that do not parse or
//! name an argument that is not declared, and a `context_arg` that is not an argument.

use std::collections::HashMap;

use rvbbit_core::codes;

use super::Ctx;
use crate::diagnostic::{Diagnostic, list_names};
use crate::model::SqlFunction;
use crate::operator;
use crate::source::Span;
use crate::template::map_range;

/// The largest `sql_function.batch_size`.
const MAX_BATCH_SIZE: u32 = 1000;

pub(super) fn check_sql_function(ctx: &Ctx<'_>, diags: &mut Vec<Diagnostic>) {
    let Some(function) = &ctx.cascade.sql_function else {
        return;
    };
    let doc = ctx.document;
    let span = |path: &str| doc.span_of(path).unwrap_or_default();
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, arg) in function.args.iter().enumerate() {
        let Some(&earlier) = first.get(arg.name.as_str()) else {
            first.insert(&arg.name, i);
            continue;
        };
        diags.push(
            Diagnostic::error(
                codes::V_TYPE,
                format!("two arguments of the SQL function are named `{}`", arg.name),
            )
            .at(span(&format!("sql_function.args[{i}].name")))
            .with_label("second argument with this name")
            .with_secondary(span(&format!("sql_function.args[{earlier}].name")), "first here")
            .with_path(format!("sql_function.args[{i}].name"))
            .with_hint("give every argument a unique name: it is the key of the cascade input"),
        );
    }
    let names: Vec<&str> = function.args.iter().map(|a| a.name.as_str()).collect();
    for (i, text) in function.operators.iter().enumerate() {
        check_operator(ctx, function, &names, i, text, diags);
    }
    if let Some(n) = function.batch_size
        && !(1..=MAX_BATCH_SIZE).contains(&n)
    {
        diags.push(
            Diagnostic::error(
                codes::V_TYPE,
                format!("`batch_size` is {n}; it must be between 1 and {MAX_BATCH_SIZE}"),
            )
            .at(span("sql_function.batch_size"))
            .with_path("sql_function.batch_size")
            .with_hint("the most rows asked in one prompt: 16 is a good start, 1 asks one row per call"),
        );
    }
    if let Some(context) = &function.context_arg
        && !names.contains(&context.as_str())
    {
        diags.push(
            Diagnostic::error(
                codes::V_TYPE,
                format!("`context_arg` names `{context}`, which is not an argument"),
            )
            .at(span("sql_function.context_arg"))
            .with_path("sql_function.context_arg")
            .with_hint(format!("name one of the arguments: {}", list_names(&names))),
        );
    }
}

fn check_operator(
    ctx: &Ctx<'_>,
    function: &SqlFunction,
    names: &[&str],
    i: usize,
    text: &str,
    diags: &mut Vec<Diagnostic>,
) {
    let doc = ctx.document;
    let path = format!("sql_function.operators[{i}]");
    let node = doc.node_at(&path);
    let locate = |range: std::ops::Range<usize>| match node {
        Some(n) => map_range(&doc.source, n, text, range),
        None => Span::default(),
    };
    let example = "operators:\n  - '{{ text }} MEANS {{ criterion }}'\n  - 'CONDENSE({{ text }})'";
    let template = match operator::parse(text) {
        Ok(t) => t,
        Err(e) => {
            diags.push(
                Diagnostic::error(
                    codes::V_TEMPLATE_SYNTAX,
                    format!("operator template `{text}` does not parse: {}", e.message),
                )
                .at(locate(e.offset..e.offset + 1))
                .with_label("here")
                .with_path(path)
                .with_hint(
                    "an operator is keywords and `{{ arg }}` placeholders of declared arguments: \
                     `{{ a }} KEYWORD {{ b }}`, `{{ a }} KEYWORD` or `NAME({{ a }}, {{ b }})`",
                )
                .with_example(example),
            );
            return;
        }
    };
    let is_stage = matches!(template.form, operator::Form::Stage { .. });
    let pipeline = function.call_shape() == crate::model::SqlShape::Pipeline;
    if is_stage != pipeline {
        let (message, hint) = if pipeline {
            (
                format!("operator template `{text}` of a PIPELINE function is not a stage"),
                "a PIPELINE stage is written after a query: `THEN KEYWORD {{ arg }}`, such as                  `THEN FILTER {{ criterion }}`",
            )
        } else {
            (
                format!("operator template `{text}` is a pipeline stage, but the function is not PIPELINE"),
                "set `shape: PIPELINE` (the cascade then reads the result table as `input._table`), or                  write the operator without `THEN`",
            )
        };
        diags.push(
            Diagnostic::error(codes::V_TYPE, message)
                .at(locate(0..text.len()))
                .with_path(path.clone())
                .with_hint(hint),
        );
    }
    for arg in &template.args {
        if names.contains(&arg.as_str()) {
            continue;
        }
        let at = text.find(arg.as_str()).unwrap_or(0);
        let hint = if names.is_empty() {
            "declare it under `sql_function.args`".to_owned()
        } else {
            format!(
                "declare it under `sql_function.args`, or use one of {}",
                list_names(names)
            )
        };
        diags.push(
            Diagnostic::error(
                codes::V_TYPE,
                format!(
                    "operator template `{text}` uses `{{{{ {arg} }}}}`, which is not an argument of `{}`",
                    function.sql_name(&ctx.cascade.cascade_id)
                ),
            )
            .at(locate(at..at + arg.len()))
            .with_label("not declared")
            .with_path(path.clone())
            .with_hint(hint)
            .with_example(format!("args:\n  - name: {arg}\n    type: VARCHAR")),
        );
    }
}
