//! Semantic validation of a loaded document: everything the schema cannot say.
//!
//! Checks never stop at the first problem and never touch the network. Each check lives in its own
//! module: cell names and kinds, routing targets and cycles (`cells`), tools and validators (`tools`),
//! templates and output schemas (`templates`), SQL function arguments and operators (`sql_function`).

mod cells;
mod sql_function;
mod templates;
mod tools;

use std::path::Path;

use crate::Severity;
use crate::catalog::Catalog;
use crate::diagnostic::Diagnostic;
use crate::load::{Content, Document, Loaded, clamp_spans, load_file, search_bases, sort};
use crate::model::Cascade;

/// Options for validation.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Treat warnings as errors.
    pub strict: bool,
    /// Extra directories to search for tools, validator cascades and sub-cascades.
    pub roots: Vec<std::path::PathBuf>,
}

/// The validation result of one file.
#[derive(Clone, Debug)]
pub struct Report {
    /// The file as loaded (source, document, load diagnostics).
    pub loaded: Loaded,
}

impl Report {
    /// All diagnostics of the file, sorted by position.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.loaded.diagnostics
    }

    /// Count of errors and warnings.
    pub fn counts(&self) -> (usize, usize) {
        let errors = self
            .loaded
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        let warnings = self
            .loaded
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count();
        (errors, warnings)
    }
}

/// Load and validate one file, discovering tools next to it.
pub fn validate_file(path: &Path, catalog: &mut Catalog, options: &Options) -> Report {
    let loaded = load_file(path);
    validate_loaded(loaded, catalog, options)
}

/// Validate an already loaded file.
pub fn validate_loaded(mut loaded: Loaded, catalog: &mut Catalog, options: &Options) -> Report {
    for base in search_bases(&loaded.path).iter().chain(options.roots.iter()) {
        catalog.discover_under(base);
    }
    if let Some(document) = &loaded.document {
        let mut diags = Vec::new();
        match &document.content {
            Content::Cascade(cascade) => {
                let ctx = Ctx {
                    document,
                    cascade,
                    catalog,
                    path: &loaded.path,
                    roots: &options.roots,
                };
                check_cascade(&ctx, &mut diags);
            }
            Content::Tool(tool) => templates::check_tool_definition(document, tool, &mut diags),
        }
        loaded.diagnostics.extend(diags);
    }
    if options.strict {
        for d in &mut loaded.diagnostics {
            if d.severity == Severity::Warning {
                d.severity = Severity::Error;
            }
        }
    }
    clamp_spans(&mut loaded.diagnostics, loaded.source.as_ref());
    sort(&mut loaded.diagnostics);
    Report { loaded }
}

/// Everything a check needs.
pub(crate) struct Ctx<'a> {
    pub(crate) document: &'a Document,
    pub(crate) cascade: &'a Cascade,
    pub(crate) catalog: &'a Catalog,
    pub(crate) path: &'a Path,
    pub(crate) roots: &'a [std::path::PathBuf],
}

impl Ctx<'_> {
    /// Names of the cells that have a name, in order.
    pub(crate) fn cell_names(&self) -> Vec<&str> {
        self.cascade
            .cells
            .iter()
            .map(|c| c.name.as_str())
            .filter(|n| !n.is_empty())
            .collect()
    }
}

fn check_cascade(ctx: &Ctx<'_>, diags: &mut Vec<Diagnostic>) {
    cells::check_cells(ctx, diags);
    cells::check_targets(ctx, diags);
    cells::check_cycles(ctx, diags);
    tools::check_tools(ctx, diags);
    tools::check_validators(ctx, diags);
    tools::check_cascade_refs(ctx, diags);
    templates::check_templates(ctx, diags);
    templates::check_output_schemas(ctx, diags);
    sql_function::check_sql_function(ctx, diags);
    check_refusals(ctx, diags);
}

/// Features a run refuses (RVB-E003, [`crate::support`]): errors at their keys, so validation
/// predicts the run.
fn check_refusals(ctx: &Ctx<'_>, diags: &mut Vec<Diagnostic>) {
    for r in crate::support::refusals(ctx.cascade) {
        let span = ctx.document.span_of(&r.path).unwrap_or_default();
        diags.push(
            Diagnostic::error(
                rvbbit_core::codes::E_UNSUPPORTED,
                format!("{} is not built in this rvbbit: a run refuses it", r.feature),
            )
            .at(span)
            .with_label("not built")
            .in_cell(r.cell)
            .with_path(r.path)
            .with_hint("remove the key or rewrite the cell without it (docs/engine.md, \"Not built yet\")"),
        );
    }
}
