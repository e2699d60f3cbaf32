//! Semantic SQL (SQL interface spec §12): SQL functions defined by cascade files with an `sql_function`
//! block, and their operator syntax (`body MEANS 'refund request'`, `a ABOUT 'x' > 0.7`).
//!
//! - `builtin.rs`: the shipped operator files (`crates/sql/operators/*.yaml`), embedded;
//! - `files.rs`: the user's files under `cascades/`, bounded and contained;
//! - `registry.rs`: the functions of a session ([`Registry`]: built-ins, then user files, which override
//!   a built-in of the same name) and their operator table;
//! - `dialect.rs` + `dialect_delegate.rs` (generated): [`SemanticDialect`], the operators as a grammar
//!   extension of the session's SQL dialect;
//! - `udf.rs` + `coerce.rs`: SCALAR/ROW/AGGREGATE functions as async, batched UDFs with typed results;
//! - `batch/`: many rows per prompt (and a cheap model first) for SCALAR/ROW functions whose cascade is one plain LLM cell;
//! - `rewrite.rs`: an AGGREGATE call `f(col)` planned as `f(array_agg(col))`;
//! - `aggregate.rs` + `chunk.rs`: a group's values as the JSON array the function reads, map-reduced
//!   when they are over `rvbbit.semantic_context_bytes`.
//!
//! - `test_cases.rs`: the functions' `test_cases`, run by `rvbbit sql --test-functions`;
//! - `dimension.rs`: DIMENSION functions in GROUP BY (`GROUP BY TOPICS(title, 5)`), resolved before
//!   planning into a value → bucket lookup.
//!
//! - `pipeline/`: PIPELINE stages after a query (`SELECT … THEN FILTER 'x' THEN STATS`): the
//!   functions' `THEN …` templates and the relational stages (SAMPLE, TOP, STATS, PASS);
//! - `desugar.rs`: `SEMANTIC JOIN` and `SELECT SEMANTIC DISTINCT`, written out on the tokens
//!   (`tokens.rs`: the top-level `THEN`s both find).
//! - `annotate.rs`: `-- @` annotation lines (model, cheap model, batch size, text) for the next semantic
//!   call, which is planned as a function of its own (`name@k`) with them ([`Callables::annotate`]).
//! - `embed/`: embeddings (`a SIMILAR_TO b`, `rvbbit_embed`, `VECTOR_SEARCH`), native functions over the
//!   provider's `/embeddings` endpoint with the result cache.

mod aggregate;
mod annotate;
mod batch;
mod builtin;
mod chunk;
mod coerce;
mod desugar;
mod dialect;
mod dialect_delegate;
mod dimension;
mod embed;
mod files;
mod pipeline;
mod registry;
mod rewrite;
mod test_cases;
mod tokens;
mod udf;

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;
use datafusion::logical_expr::async_udf::AsyncScalarUDF;
use datafusion::prelude::SessionContext;
use rvbbit_cascade::model::SqlShape;

pub(crate) use annotate::present as has_annotations;
pub(crate) use desugar::desugar;
pub(crate) use dialect::{Operators, SemanticDialect};
pub(crate) use dimension::{
    Ask, Dimensions, Lookup, is_explain, resolve as resolve_dimension, sites as dimension_sites,
};
pub(crate) use embed::rewrite_vector_search;
pub(crate) use pipeline::{
    Stages, drop_tables as drop_stage_tables, expand as expand_stages, run as run_pipeline,
    split as split_pipeline,
};
pub(crate) use registry::{Builtins, Definition, Registry};
pub(crate) use rewrite::{rewrite_aggregates, threshold_scores};

/// How many prompts of `budget` bytes `values` take as JSON arrays.
pub(crate) fn chunk_count(values: &[String], budget: usize) -> usize {
    chunk::chunk(values, budget).arrays.len()
}
pub(crate) use test_cases::cases as test_cases;
pub use test_cases::{CaseResult, CaseStatus, check as check_expectation};

use crate::shared::Shared;

/// The session's semantic functions by every name they are called by, for `-- @` annotations and
/// `pg_proc`.
#[derive(Debug)]
pub(crate) struct Callables {
    by_name: std::collections::BTreeMap<String, Arc<Definition>>,
    /// The functions, each once, in name order.
    pub(crate) functions: Vec<Arc<Definition>>,
    shared: Arc<Shared>,
}

impl Callables {
    /// The functions of `registry`, registered for `shared`'s session.
    pub(crate) fn new(registry: &Registry, shared: &Arc<Shared>) -> Callables {
        let by_name = registry
            .functions
            .iter()
            .flat_map(|d| d.call_names().into_iter().map(move |n| (n, d.clone())))
            .collect();
        Callables {
            by_name,
            functions: registry.functions.clone(),
            shared: shared.clone(),
        }
    }

    /// The `-- @` lines of `sql` (parsed with `dialect`), checked against `rvbbit.max_annotations` and
    /// `rvbbit.max_annotation_bytes`. Errors: over a limit (RVB-Q007).
    pub(crate) fn lines(
        &self,
        ctx: &SessionContext,
        sql: &str,
        dialect: &dyn datafusion::sql::sqlparser::dialect::Dialect,
    ) -> crate::error::Result<Vec<annotate::Line>> {
        let options = ctx
            .state()
            .config()
            .options()
            .extensions
            .get::<crate::options::RvbbitOptions>()
            .cloned()
            .unwrap_or_default();
        annotate::lines(
            sql,
            dialect,
            options.max_annotations,
            options.max_annotation_bytes,
        )
    }

    /// Apply the `-- @` `lines` of a statement's text to the semantic calls of `statement` (parsed
    /// from it): each annotated call is renamed `name@k` and registered in `ctx` as a function of its
    /// own. Returns the names registered (to remove once planned); notices go to the statement.
    /// Errors: a bad option value (RVB-Q004).
    pub(crate) fn annotate(
        &self,
        ctx: &SessionContext,
        statement: &mut datafusion::sql::parser::Statement,
        lines: &[annotate::Line],
    ) -> crate::error::Result<Vec<String>> {
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        let state = ctx.state();
        let is_semantic = |name: &str| {
            self.by_name.get(name).is_some_and(|d| d.takes_annotations())
                && state
                    .scalar_functions()
                    .get(name)
                    .is_some_and(|f| f.as_async().is_some())
        };
        let (annotated, notices) = annotate::attach(statement, lines, &is_semantic)?;
        drop(state);
        let stmt = self.shared.statement();
        for notice in notices {
            stmt.note(&notice);
        }
        let mut registered = Vec::new();
        for a in annotated {
            let Some(definition) = self.by_name.get(&a.function) else {
                continue;
            };
            let derived = definition.annotated(a.overrides.model.as_deref(), &a.overrides.text());
            stmt.annotated(a.overrides.describe(&a.call, &a.function));
            let udf = udf::SemanticUdf::annotated(
                a.call.clone(),
                Arc::new(derived),
                self.shared.clone(),
                a.overrides,
            );
            ctx.register_udf(AsyncScalarUDF::new(Arc::new(udf)).into_scalar_udf());
            registered.push(a.call);
        }
        Ok(registered)
    }
}

/// Register the functions of `registry` in `ctx` under each of their names; a name that is already a
/// SQL function of the session is left alone, with a warning (returned).
pub(crate) fn register(ctx: &SessionContext, registry: &Registry, shared: &Arc<Shared>) -> Vec<String> {
    let mut warnings = Vec::new();
    let state = ctx.state();
    let taken = |name: &str| {
        state.scalar_functions().contains_key(name)
            || state.aggregate_functions().contains_key(name)
            || state.window_functions().contains_key(name)
    };
    let is_dimension = |d: &Definition| d.spec.call_shape() == SqlShape::Dimension;
    // A DIMENSION call name may also be another function's (`TOPICS`, an aggregate): that one is the
    // function, and the name means the dimension only in GROUP BY.
    let others: std::collections::BTreeSet<String> = registry
        .functions
        .iter()
        .filter(|d| !is_dimension(d))
        .flat_map(|d| d.call_names())
        .collect();
    let mut names = Vec::new();
    for definition in &registry.functions {
        for name in definition.call_names() {
            if is_dimension(definition) && (taken(&name) || others.contains(&name)) {
                continue;
            }
            if taken(&name) {
                warnings.push(format!(
                    "semantic SQL: `{name}` of {} is not registered: it is already a SQL function",
                    definition.source
                ));
                continue;
            }
            names.push((name, definition.clone()));
        }
    }
    drop(state);
    // The native embedding functions, unless a loaded file took the name.
    let defined: std::collections::BTreeSet<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    if !defined.contains("semantic_similarity") {
        ctx.register_udf(
            AsyncScalarUDF::new(Arc::new(embed::SimilarityUdf::new(shared.clone()))).into_scalar_udf(),
        );
    }
    if !defined.contains("rvbbit_embed") {
        ctx.register_udf(
            AsyncScalarUDF::new(Arc::new(embed::EmbedUdf::new(shared.clone()))).into_scalar_udf(),
        );
    }
    for (name, definition) in names {
        let udf = match &definition.unsupported {
            None if definition.spec.call_shape() == SqlShape::Pipeline => {
                ScalarUDF::new_from_impl(udf::Unsupported::new(
                    name.clone(),
                    format!(
                        "`{name}` is a PIPELINE stage: write it after a query (`SELECT … {}`)",
                        definition.spec.operators.first().map_or("THEN …", String::as_str)
                    ),
                ))
            }
            None if is_dimension(&definition) => ScalarUDF::new_from_impl(udf::Unsupported::new(
                name.clone(),
                format!(
                    "`{name}` is a DIMENSION function: use it in GROUP BY (`GROUP BY {name}(column, …)`, \
                         and the same call in the select list for the bucket)"
                ),
            )),
            Some(message) => ScalarUDF::new_from_impl(udf::Unsupported::new(name, message.clone())),
            None => AsyncScalarUDF::new(Arc::new(udf::SemanticUdf::new(name, definition, shared.clone())))
                .into_scalar_udf(),
        };
        ctx.register_udf(udf);
    }
    warnings
}
