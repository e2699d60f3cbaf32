//! Tool names, validator names and cascade references.

use std::collections::BTreeSet;

use rvbbit_core::codes;

use super::Ctx;
use crate::catalog::{Origin, PYTHON_PREFIX, python_reference_problem};
use crate::diagnostic::{Diagnostic, list_names, similar};
use crate::load::{resolve_cascade_ref, search_bases};
use crate::model::{Cell, Traits, ValidatorSpec};

/// Names a cascade provides to its cells through cascade keys: the same for every cell, so computed once
/// (per cell it made validation quadratic in the cell count, issue 13).
fn provided_by_cascade(ctx: &Ctx<'_>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    names.insert("route_to".to_owned());
    if let Some(memory) = &ctx.cascade.memory {
        names.insert(memory.clone());
    }
    if ctx.cascade.research_db.is_some() {
        names.insert("research_query".to_owned());
        names.insert("research_execute".to_owned());
    }
    // RAG tools are registered for the session once any cell declares `rag`.
    if ctx.cascade.cells.iter().any(|c| c.rag.is_some()) {
        for n in ["rag_search", "rag_read_chunk", "rag_list_sources"] {
            names.insert(n.to_owned());
        }
    }
    names
}

/// The module of a well-formed `python:` reference when neither the cascade's directory nor the
/// working directory holds it (`a/b.py` or `a/b/__init__.py`); a run looks there, then on PYTHONPATH.
fn python_module_missing(ctx: &Ctx<'_>, name: &str) -> Option<String> {
    let (module, _) = name.strip_prefix(PYTHON_PREFIX)?.rsplit_once('.')?;
    let relative = module.replace('.', "/");
    let mut bases = vec![
        ctx.path
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default(),
    ];
    bases.extend(std::env::current_dir().ok());
    let found = bases.iter().any(|base| {
        base.join(format!("{relative}.py")).is_file() || base.join(&relative).join("__init__.py").is_file()
    });
    (!found).then(|| module.to_owned())
}

/// A tool name nobody provides. Offered to a model (`traits`), it is a warning: the cell runs without it
/// and only a call to it fails. Called by a deterministic cell (`tool:`), it is an error: the run
/// refuses the cell (RVB-E003), so validation must too.
fn tool_diag(ctx: &Ctx<'_>, name: &str, path: String, cell: &Cell, called: bool) -> Option<Diagnostic> {
    let span = ctx.document.span_of(&path).unwrap_or_default();
    let level = |message: String| {
        if called {
            Diagnostic::error(codes::V_UNKNOWN_TOOL, message)
        } else {
            Diagnostic::warning(codes::V_UNKNOWN_TOOL, message)
        }
    };
    match ctx.catalog.get(name) {
        Some(Origin::Unsupported) => Some(
            level(format!("the tool `{name}` is not provided by this rvbbit"))
                .at(span)
                .with_label("not available")
                .in_cell(Some(cell.name.clone()))
                .with_path(path)
                .with_hint(if called {
                    "a run refuses this cell (RVB-E003); provide the tool as a tool file or cascade in `traits/`, or use another tool"
                } else {
                    "the model is not offered it, and a call to it fails; remove it or provide it as a tool file in `traits/`"
                }),
        ),
        Some(Origin::Unavailable { reason }) => Some(
            level(format!("the tool `{name}` cannot run on this machine: {reason}"))
                .at(span)
                .with_label("not configured here")
                .in_cell(Some(cell.name.clone()))
                .with_path(path)
                .with_hint(if called {
                    "a run fails this cell (RVB-E003) until the runtime is installed; `rvbbit validate` checks again"
                } else {
                    "the model is offered it, and a call to it fails until the runtime is installed"
                }),
        ),
        Some(Origin::Broken { path: file, reason }) => Some(
            level(format!(
                "the tool `{name}` is defined in {}, which does not load ({reason})",
                file.display()
            ))
            .at(span)
            .with_label("its tool file has errors")
            .in_cell(Some(cell.name.clone()))
            .with_path(path)
            .with_hint(format!(
                "fix the tool file (`rvbbit validate {}` shows every error at its position){}",
                file.display(),
                if called {
                    "; until then a run refuses this cell (RVB-E003)"
                } else {
                    "; until then the model is not offered it, and a call to it fails"
                }
            )),
        ),
        Some(_) => None,
        // A well-formed `python:module.function` is a tool by itself (imported when called).
        None if name.starts_with(PYTHON_PREFIX) => match python_reference_problem(name) {
            Some(problem) => Some(
                level(format!("the tool reference `{name}` is malformed: {problem}"))
                    .at(span)
                    .with_label("not a Python function reference")
                    .in_cell(Some(cell.name.clone()))
                    .with_path(path)
                    .with_hint("write `python:module.function` (a module next to the cascade, in the working directory or on PYTHONPATH)"),
            ),
            None => python_module_missing(ctx, name).map(|module| {
                Diagnostic::warning(
                    codes::V_UNKNOWN_TOOL,
                    format!("the module `{module}` of `{name}` is not next to the cascade or in the working directory"),
                )
                .at(span)
                .with_label("module not found here")
                .in_cell(Some(cell.name.clone()))
                .with_path(path)
                .with_hint("a call imports it from PYTHONPATH, or fails with ModuleNotFoundError; put the module beside the cascade")
            }),
        },
        None if ["sql:", "shell:"].iter().any(|p| name.starts_with(p)) => Some(
            level(format!("the tool reference `{name}` is not supported by this rvbbit"))
                .at(span)
                .with_label("not supported")
                .in_cell(Some(cell.name.clone()))
                .with_path(path)
                .with_hint("`sql:` and `shell:` references are not built (a run refuses them, RVB-E003): use `sql_data` or `linux_shell` with the code in `inputs`, or a `python:module.function` reference"),
        ),
        None => {
            let known = ctx.catalog.names();
            let mut diag = level(format!("the tool `{name}` is not registered"))
                .at(span)
                .with_label("unknown tool")
                .in_cell(Some(cell.name.clone()))
                .with_path(path);
            diag = match similar(name, known.iter().copied(), 1).first() {
                Some(best) => diag.with_hint(format!("did you mean `{best}`? available tools: {}", short_list(&known))),
                None => diag.with_hint(format!(
                    "available tools: {}; cascades and `*.tool.json` files in `traits/` next to the cascade are tools too",
                    short_list(&known)
                )),
            };
            Some(diag)
        }
    }
}

/// Built-in tools first, then others, at most 16 names.
fn short_list(known: &[&str]) -> String {
    let mut ordered: Vec<&str> = known
        .iter()
        .copied()
        .filter(|n| crate::catalog::BUILTIN_TOOLS.contains(n))
        .collect();
    ordered.extend(
        known
            .iter()
            .copied()
            .filter(|n| !crate::catalog::BUILTIN_TOOLS.contains(n)),
    );
    if ordered.len() <= 16 {
        return list_names(&ordered);
    }
    let shown: Vec<String> = ordered[..16].iter().map(|n| format!("`{n}`")).collect();
    format!("{}, … and {} more", shown.join(", "), ordered.len() - 16)
}

pub(super) fn check_tools(ctx: &Ctx<'_>, diags: &mut Vec<Diagnostic>) {
    let provided = provided_by_cascade(ctx);
    for (i, cell) in ctx.cascade.cells.iter().enumerate() {
        match &cell.traits {
            Some(Traits::List(names)) => {
                for (j, name) in names.iter().enumerate() {
                    if provided.contains(name) || name == "manifest" {
                        continue;
                    }
                    diags.extend(tool_diag(
                        ctx,
                        name,
                        format!("cells[{i}].traits[{j}]"),
                        cell,
                        false,
                    ));
                }
            }
            Some(Traits::One(name)) if name != "manifest" && !provided.contains(name) => {
                diags.extend(tool_diag(ctx, name, format!("cells[{i}].traits"), cell, false));
            }
            _ => {}
        }
        if let Some(tool) = &cell.tool
            && !provided.contains(tool)
        {
            diags.extend(tool_diag(ctx, tool, format!("cells[{i}].tool"), cell, true));
        }
    }
}

/// Every validator spec of the cascade with its key path and cell.
fn validator_specs<'a>(ctx: &Ctx<'a>) -> Vec<(String, &'a ValidatorSpec, Option<&'a Cell>)> {
    let mut out = Vec::new();
    for (i, cell) in ctx.cascade.cells.iter().enumerate() {
        if let Some(v) = cell.rules.as_ref().and_then(|r| r.loop_until.as_ref()) {
            out.push((format!("cells[{i}].rules.loop_until"), v, Some(cell)));
        }
        if let Some(wards) = &cell.wards {
            for (side, list) in [("pre", &wards.pre), ("post", &wards.post), ("turn", &wards.turn)] {
                for (j, ward) in list.iter().flatten().enumerate() {
                    out.push((
                        format!("cells[{i}].wards.{side}[{j}].validator"),
                        &ward.validator,
                        Some(cell),
                    ));
                }
            }
        }
        if let Some(c) = &cell.candidates {
            if let Some(v) = &c.validator {
                out.push((format!("cells[{i}].candidates.validator"), v, Some(cell)));
            }
            if let Some(t) = c.reforge.as_ref().and_then(|r| r.threshold.as_ref()) {
                out.push((
                    format!("cells[{i}].candidates.reforge.threshold.validator"),
                    &t.validator,
                    Some(cell),
                ));
            }
        }
    }
    if let Some(c) = &ctx.cascade.candidates
        && let Some(v) = &c.validator
    {
        out.push(("candidates.validator".to_owned(), v, None));
    }
    out
}

pub(super) fn check_validators(ctx: &Ctx<'_>, diags: &mut Vec<Diagnostic>) {
    let inline: Vec<&str> = ctx
        .cascade
        .validators
        .iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect();
    for (path, spec, cell) in validator_specs(ctx) {
        let cell_name = cell.map(|c| c.name.clone());
        match spec {
            ValidatorSpec::Name(name) => {
                if inline.contains(&name.as_str()) || ctx.catalog.get(name).is_some_and(Origin::usable) {
                    continue;
                }
                let span = ctx.document.span_of(&path).unwrap_or_default();
                let mut candidates: Vec<&str> = inline.clone();
                candidates.extend(ctx.catalog.names());
                let mut diag = Diagnostic::error(
                    codes::V_UNKNOWN_VALIDATOR,
                    format!("the validator `{name}` is not defined"),
                )
                .at(span)
                .with_label("unknown validator")
                .in_cell(cell_name)
                .with_path(path.clone())
                .with_example(format!(
                    "validators:\n  {name}:\n    instructions: |\n      Is this acceptable? {{{{ input.content }}}}\n      Reply with JSON: {{\"valid\": true, \"reason\": \"...\"}}"
                ));
                diag = match similar(name, candidates.iter().copied(), 1).first() {
                    Some(best) => diag.with_hint(format!(
                        "did you mean `{best}`? RVBBIT treated unknown validators as passing; rvbbit refuses to run them"
                    )),
                    None => diag.with_hint(
                        "define it under the cascade's `validators:` key, or add a validator cascade to `traits/`",
                    ),
                };
                diags.push(diag);
            }
            ValidatorSpec::Inline(inline_spec) => {
                let languages = inline_spec.languages();
                if languages.len() != 1 {
                    let span = ctx.document.span_of(&path).unwrap_or_default();
                    let message = if languages.is_empty() {
                        "the inline validator has no code".to_owned()
                    } else {
                        format!(
                            "the inline validator has {}; give exactly one",
                            list_names(&languages)
                        )
                    };
                    diags.push(
                        Diagnostic::error(codes::V_VALIDATOR_SHAPE, message)
                            .at(span)
                            .with_label("expected one of `python`, `javascript`, `sql`, `clojure`, `bash`, `tool`")
                            .in_cell(cell_name)
                            .with_path(path)
                            .with_example("validator:\n  python: |\n    result = {'valid': len(content) < 500, 'reason': 'too long'}"),
                    );
                }
            }
        }
    }
}

pub(super) fn check_cascade_refs(ctx: &Ctx<'_>, diags: &mut Vec<Diagnostic>) {
    let mut bases = search_bases(ctx.path);
    bases.extend(ctx.roots.iter().cloned());
    for (i, cell) in ctx.cascade.cells.iter().enumerate() {
        let mut refs: Vec<(String, &str)> = Vec::new();
        for (j, s) in cell.sub_cascades.iter().flatten().enumerate() {
            refs.push((format!("cells[{i}].sub_cascades[{j}].ref"), s.reference.as_str()));
        }
        for (j, s) in cell.async_cascades.iter().flatten().enumerate() {
            refs.push((
                format!("cells[{i}].async_cascades[{j}].ref"),
                s.reference.as_str(),
            ));
        }
        if let Some(c) = cell.for_each_row.as_ref().and_then(|f| f.cascade.as_deref()) {
            refs.push((format!("cells[{i}].for_each_row.cascade"), c));
        }
        for (path, reference) in refs {
            if reference.contains("{{") || ctx.catalog.get(reference).is_some() {
                continue;
            }
            let span = ctx.document.span_of(&path).unwrap_or_default();
            match resolve_cascade_ref(reference, &bases) {
                Ok(Some(_)) => {}
                Ok(None) => diags.push(
                    Diagnostic::warning(
                        codes::V_UNKNOWN_CASCADE,
                        format!("the cascade `{reference}` was not found"),
                    )
                    .at(span)
                    .with_label("not found")
                    .in_cell(Some(cell.name.clone()))
                    .with_path(path)
                    .with_hint(format!(
                        "references are resolved against the referring file's directory and its parents ({})",
                        bases
                            .iter()
                            .map(|b| format!("`{}`", b.display()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                ),
                Err(message) => diags.push(
                    Diagnostic::error(codes::V_UNKNOWN_CASCADE, message)
                        .at(span)
                        .in_cell(Some(cell.name.clone()))
                        .with_path(path)
                        .with_hint("use a path relative to this file that stays inside the project"),
                ),
            }
        }
    }
}
