//! Cell names, cell kinds, routing targets and handoff cycles.

use std::collections::{BTreeSet, HashMap};

use rvbbit_core::codes;

use super::Ctx;
use crate::diagnostic::{Diagnostic, list_names, similar};
use crate::model::{Cell, ContextFrom, OnError};
use crate::source::Span;

/// `context.from` keywords that are not cell names.
const CONTEXT_KEYWORDS: &[&str] = &["all", "first", "previous", "prev"];

pub(super) fn check_cells(ctx: &Ctx<'_>, diags: &mut Vec<Diagnostic>) {
    let doc = ctx.document;
    if ctx.cascade.cells.is_empty() && doc.node_at("cells").is_some() {
        diags.push(
            Diagnostic::error(codes::V_NO_CELLS, "the cascade has no cells")
                .at(doc.span_of("cells").unwrap_or_default())
                .with_label("empty")
                .with_hint("add at least one cell")
                .with_example("cells:\n  - name: first\n    instructions: \"...\""),
        );
    }
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for (i, cell) in ctx.cascade.cells.iter().enumerate() {
        let path = format!("cells[{i}]");
        if !cell.name.is_empty() {
            if let Some(&first) = first_seen.get(cell.name.as_str()) {
                let span = doc.span_of(&format!("{path}.name")).unwrap_or_default();
                let first_span = doc.span_of(&format!("cells[{first}].name")).unwrap_or_default();
                diags.push(
                    Diagnostic::error(
                        codes::V_DUPLICATE_CELL,
                        format!("two cells are named `{}`", cell.name),
                    )
                    .at(span)
                    .with_label("second cell with this name")
                    .with_secondary(first_span, "first defined here")
                    .in_cell(Some(cell.name.clone()))
                    .with_path(format!("{path}.name"))
                    .with_hint("give every cell a unique name")
                    .with_example(format!("name: {}_2", cell.name)),
                );
            } else {
                first_seen.insert(&cell.name, i);
            }
        }
        check_kind(ctx, cell, &path, diags);
    }
}

fn check_kind(ctx: &Ctx<'_>, cell: &Cell, path: &str, diags: &mut Vec<Diagnostic>) {
    let primary = cell.primary_keys();
    if primary.len() == 1 || (primary.is_empty() && cell.htmx.is_some()) {
        return;
    }
    let doc = ctx.document;
    let cell_name = (!cell.name.is_empty()).then(|| cell.name.clone());
    if primary.is_empty() {
        let span = doc
            .key_span_of(&format!("{path}.name"))
            .or_else(|| doc.span_of(path))
            .unwrap_or_default();
        diags.push(
            Diagnostic::error(
                codes::V_CELL_KIND,
                format!(
                    "cell `{}` has no `instructions`, `tool`, `for_each_row` or `htmx`",
                    cell.name
                ),
            )
            .at(span)
            .with_label("this cell does nothing")
            .in_cell(cell_name)
            .with_path(path.to_owned())
            .with_hint("add `instructions` for an LLM cell or `tool` for a deterministic cell")
            .with_example(format!(
                "- name: {}\n  instructions: \"Summarize {{{{ input.text }}}}\"",
                cell.name
            )),
        );
    } else {
        let second = primary[1];
        let span = doc.key_span_of(&format!("{path}.{second}")).unwrap_or_default();
        let first_span = doc
            .key_span_of(&format!("{path}.{}", primary[0]))
            .unwrap_or_default();
        diags.push(
            Diagnostic::error(
                codes::V_CELL_KIND,
                format!(
                    "cell `{}` has {}; a cell has exactly one kind",
                    cell.name,
                    list_names(&primary)
                ),
            )
            .at(span)
            .with_label(format!("`{second}` makes it a second kind"))
            .with_secondary(
                first_span,
                format!("`{}` already makes it a cell of one kind", primary[0]),
            )
            .in_cell(cell_name)
            .with_path(path.to_owned())
            .with_hint("split it into two cells: one runs the tool, the next one asks the LLM"),
        );
    }
}

fn unknown_target(
    ctx: &Ctx<'_>,
    name: &str,
    span: Span,
    what: &str,
    cell: &Cell,
    path: String,
) -> Diagnostic {
    let names = ctx.cell_names();
    let mut diag = Diagnostic::error(
        codes::V_UNKNOWN_TARGET,
        format!("{what} is not a cell of this cascade"),
    )
    .at(span)
    .with_label("no cell has this name")
    .in_cell(Some(cell.name.clone()))
    .with_path(path);
    if matches!(
        name.to_ascii_lowercase().as_str(),
        "end" | "stop" | "done" | "finish" | "exit"
    ) {
        return diag.with_hint(format!(
            "there is no built-in `{name}` cell: a cascade ends after a cell with no handoffs that is last in order; remove this handoff (cells: {})",
            list_names(&names)
        ));
    }
    match similar(name, names.iter().copied(), 1).first() {
        Some(best) => {
            diag = diag.with_hint(format!("did you mean `{best}`? cells: {}", list_names(&names)));
        }
        None => diag = diag.with_hint(format!("cells: {}", list_names(&names))),
    }
    diag
}

pub(super) fn check_targets(ctx: &Ctx<'_>, diags: &mut Vec<Diagnostic>) {
    let names: BTreeSet<&str> = ctx.cell_names().into_iter().collect();
    let doc = ctx.document;
    for (i, cell) in ctx.cascade.cells.iter().enumerate() {
        let base = format!("cells[{i}]");
        for (j, handoff) in cell.handoffs.iter().flatten().enumerate() {
            let target = handoff.target();
            if !names.contains(target) {
                let path = format!("{base}.handoffs[{j}]");
                let span = doc
                    .span_of(&format!("{path}.target"))
                    .or_else(|| doc.span_of(&path))
                    .unwrap_or_default();
                diags.push(unknown_target(
                    ctx,
                    target,
                    span,
                    &format!("handoff target `{target}`"),
                    cell,
                    path,
                ));
            }
        }
        for (key, target) in cell.routing.iter().flatten() {
            if !names.contains(target.as_str()) {
                let path = format!("{base}.routing.{key}");
                let span = doc.span_of(&path).unwrap_or_default();
                diags.push(unknown_target(
                    ctx,
                    target,
                    span,
                    &format!("routing target `{target}` (for `{key}`)"),
                    cell,
                    path,
                ));
            }
        }
        if let Some(OnError::Target(target)) = &cell.on_error
            && target != "auto_fix"
            && !names.contains(target.as_str())
        {
            let path = format!("{base}.on_error");
            let span = doc.span_of(&path).unwrap_or_default();
            diags.push(
                unknown_target(
                    ctx,
                    target,
                    span,
                    &format!("`on_error` target `{target}`"),
                    cell,
                    path,
                )
                .with_example("on_error: auto_fix   # or the name of a cell that handles the failure"),
            );
        }
        if let Some(context) = &cell.context {
            for (j, from) in context.from.iter().flatten().enumerate() {
                let name = from.name();
                if CONTEXT_KEYWORDS.contains(&name) || names.contains(name) {
                    continue;
                }
                let path = match from {
                    ContextFrom::Name(_) => format!("{base}.context.from[{j}]"),
                    ContextFrom::Source(_) => format!("{base}.context.from[{j}].cell"),
                };
                let span = doc.span_of(&path).unwrap_or_default();
                diags.push(
                    unknown_target(ctx, name, span, &format!("context source `{name}`"), cell, path)
                        .with_label("no cell has this name (keywords: `all`, `first`, `previous`)"),
                );
            }
            for (j, name) in context.exclude.iter().flatten().enumerate() {
                if !names.contains(name.as_str()) {
                    let path = format!("{base}.context.exclude[{j}]");
                    let span = doc.span_of(&path).unwrap_or_default();
                    diags.push(unknown_target(
                        ctx,
                        name,
                        span,
                        &format!("excluded cell `{name}`"),
                        cell,
                        path,
                    ));
                }
            }
        }
    }
}

/// Cells whose every path of handoffs loops among themselves, never reaching the end of the cascade.
pub(super) fn check_cycles(ctx: &Ctx<'_>, diags: &mut Vec<Diagnostic>) {
    let cells = &ctx.cascade.cells;
    if cells.is_empty() {
        return;
    }
    let index: HashMap<&str, usize> = cells
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let end = cells.len();
    // Successors per routing precedence (spec §3.4): with handoffs, only handoffs (and routing/on_error
    // targets); without, routing targets plus the next cell in order (or the end).
    let successors: Vec<Vec<usize>> = cells
        .iter()
        .enumerate()
        .map(|(i, cell)| {
            let mut next: Vec<usize> = cell
                .handoff_targets()
                .iter()
                .filter_map(|t| index.get(t).copied())
                .collect();
            next.extend(
                cell.routing
                    .iter()
                    .flatten()
                    .filter_map(|(_, t)| index.get(t.as_str()).copied()),
            );
            if let Some(OnError::Target(t)) = &cell.on_error
                && let Some(&j) = index.get(t.as_str())
            {
                next.push(j);
            }
            let has_handoffs = cell.handoffs.as_ref().is_some_and(|h| !h.is_empty());
            let has_unresolved_handoffs = cell.handoff_targets().iter().any(|t| !index.contains_key(t));
            if !has_handoffs || has_unresolved_handoffs {
                next.push(i + 1);
            }
            next
        })
        .collect();
    // Which cells can reach the end: one walk of the reversed edges from the end (linear; a fixed point
    // over the cells in order took one pass per cell of a forward chain, issue 13).
    let mut predecessors: Vec<Vec<usize>> = vec![Vec::new(); end + 1];
    for (i, next) in successors.iter().enumerate() {
        for &s in next {
            predecessors[s.min(end)].push(i);
        }
    }
    let mut can_end = vec![false; end + 1];
    can_end[end] = true;
    let mut stack = vec![end];
    while let Some(j) = stack.pop() {
        for &i in &predecessors[j] {
            if !can_end[i] {
                can_end[i] = true;
                stack.push(i);
            }
        }
    }
    // Cells reachable from the start.
    let mut reachable = vec![false; end + 1];
    let mut stack = vec![0usize];
    while let Some(i) = stack.pop() {
        if i >= end || reachable[i] {
            continue;
        }
        reachable[i] = true;
        stack.extend(successors[i].iter().copied());
    }
    let trapped: Vec<usize> = (0..end).filter(|&i| reachable[i] && !can_end[i]).collect();
    if trapped.is_empty() {
        return;
    }
    let names: Vec<&str> = trapped.iter().map(|&i| cells[i].name.as_str()).collect();
    let first = trapped[0];
    let doc = ctx.document;
    let path = format!("cells[{first}].handoffs");
    let mut diag = Diagnostic::warning(
        codes::V_HANDOFF_CYCLE,
        format!("the handoffs of {} form a cycle that never reaches the end of the cascade", list_names(&names)),
    )
    .at(doc.span_of(&path).unwrap_or_default())
    .with_label("every path from here loops back")
    .in_cell(Some(cells[first].name.clone()))
    .with_path(path)
    .with_hint("add a handoff to a cell that ends the run, or let one of these cells end it (no handoffs on the last cell)");
    for &i in trapped.iter().skip(1).take(3) {
        if let Some(span) = doc.span_of(&format!("cells[{i}].handoffs")) {
            diag = diag.with_secondary(span, format!("`{}` hands off here", cells[i].name));
        }
    }
    diags.push(diag);
}
