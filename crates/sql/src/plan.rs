//! Planning client SQL in a session ([`Planner`]): the session's dialect and `rvbbit.*` settings, the
//! limits on the text and its depth, the file rule of the network doors, and the rows of a `USING`
//! query. `SqlSession`, `RVBBIT MAP` and `RVBBIT RUN` plan through it.

use std::sync::Arc;

use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Column;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, SortExpr};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::dialect::{Dialect, dialect_from_str};
use datafusion::sql::sqlparser::parser::ParserError;

use crate::async_join::calls_async;
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::options::RvbbitOptions;
use crate::semantic::{
    Ask, Callables, Dimensions, Lookup, Operators, SemanticDialect, Stages, dimension_sites,
    drop_stage_tables, expand_stages, resolve_dimension, rewrite_aggregates,
};
use crate::shared::Shared;

/// A session's context and shared state, borrowed to plan one statement.
#[derive(Clone, Copy)]
pub(crate) struct Planner<'a> {
    /// The session's DataFusion context.
    pub(crate) ctx: &'a SessionContext,
    /// The session's shared state (runtime, statement, schema).
    pub(crate) shared: &'a Shared,
    /// The session's semantic operators, parsed by its dialect.
    pub(crate) operators: &'a Arc<Operators>,
    /// The session's DIMENSION functions (`GROUP BY TOPICS(title, 5)`).
    pub(crate) dimensions: &'a Arc<Dimensions>,
    /// The session's pipeline stages (`… THEN FILTER 'x'`).
    pub(crate) stages: &'a Arc<Stages>,
    /// The session's semantic functions by name (`-- @` annotations).
    pub(crate) callables: &'a Arc<Callables>,
}

impl Planner<'_> {
    /// The `rvbbit.*` settings in force for the session's statement: the session's, with the
    /// statement's own `WITH (…)` options on top.
    pub(crate) fn rvbbit_options(&self) -> RvbbitOptions {
        let session = self
            .ctx
            .state()
            .config()
            .options()
            .extensions
            .get::<RvbbitOptions>()
            .cloned()
            .unwrap_or_default();
        match self.shared.current() {
            Some(stmt) => stmt.settings(session),
            None => session,
        }
    }

    /// Plan ordinary SQL ([`Planner::checked_plan`]) and make it a DataFrame (DDL runs here). The
    /// parenthesised queries with `THEN` stages run first, their results in their place
    /// ([`expand_stages`]).
    pub(crate) async fn plan_and_check(&self, sql: &str) -> Result<datafusion::dataframe::DataFrame> {
        let (sql, tables) = expand_stages(self, sql).await?;
        let planned = match self.checked_plan(&sql).await {
            Ok(plan) => self
                .ctx
                .execute_logical_plan(plan)
                .await
                .map_err(Error::from_datafusion),
            Err(e) => Err(e),
        };
        // The plan holds the tables it reads; the session's catalog keeps none.
        drop_stage_tables(self, &tables);
        planned
    }

    /// The session's SQL dialect (`datafusion.sql_parser.dialect`, with the semantic operators) and
    /// parser recursion limit
    /// (`datafusion.sql_parser.recursion_limit`, capped by the limits).
    pub(crate) fn dialect(&self) -> Result<(Box<dyn Dialect>, usize)> {
        let state = self.ctx.state();
        let options = &state.config().options().sql_parser;
        let dialect = dialect_from_str(options.dialect).ok_or_else(|| Error::Argument {
            message: format!(
                "the SQL dialect `{}` (datafusion.sql_parser.dialect) is not known; use generic or \
                 postgresql",
                options.dialect.as_ref()
            ),
        })?;
        let recursion = self.limits().parser_recursion(options.recursion_limit.get());
        Ok((
            Box::new(SemanticDialect::new(dialect, self.operators.clone())),
            recursion,
        ))
    }

    /// Refuse a text over `limits.sql_query_bytes` or `limits.sql_statements`, before parsing.
    pub(crate) fn check_text(&self, sql: &str) -> Result<()> {
        let (dialect, recursion) = self.dialect()?;
        self.limits().check_text(sql, dialect.as_ref(), recursion)
    }

    /// Parse one statement, check its depth against the limits, then plan it; in a network door's
    /// session vet the files it names and check the plan against the file rule
    /// ([`Settings::confine_files`](crate::runtime::Settings::confine_files)) before anything runs (DataFusion runs DDL while executing the plan).
    pub(crate) async fn checked_plan(&self, sql: &str) -> Result<datafusion::logical_expr::LogicalPlan> {
        let limits = self.limits();
        let (sql, with) = crate::with_clause::split(sql)?;
        // Kept by the statement being executed (a statement only described keeps none).
        if let (Some(with), Some(stmt)) = (with, self.shared.current()) {
            stmt.set_options(with);
        }
        let desugared = crate::semantic::desugar(&sql)?;
        let sql = desugared.as_deref().unwrap_or(&sql);
        let (mut statements, annotation_lines) = {
            // The dialect is not `Send`: it is gone before the first await.
            let (dialect, recursion) = self.dialect()?;
            limits.check_text(sql, dialect.as_ref(), recursion)?;
            // `-- @` lines are checked against their limits before anything is asked (DIMENSION
            // calls ask while planning).
            let annotation_lines = self.callables.lines(self.ctx, sql, dialect.as_ref())?;
            let statements = DFParserBuilder::new(sql)
                .with_dialect(dialect.as_ref())
                .with_recursion_limit(recursion)
                .build()
                .and_then(|mut parser| parser.parse_statements())
                .map_err(|e| match e {
                    DataFusionError::SQL(e, _) if matches!(*e, ParserError::RecursionLimitExceeded) => {
                        limits.parser_too_deep(recursion)
                    }
                    other => Error::from_datafusion(other),
                })?;
            (statements, annotation_lines)
        };
        // Every statement is checked (and a deep one taken apart) before any is dropped.
        let mut checked = Ok(());
        for statement in statements.iter_mut() {
            if let Err(e) = limits.check_statement(statement) {
                checked = Err(e);
            }
        }
        checked?;
        if statements.len() > 1 {
            return Err(Error::Invalid {
                message: "one statement at a time: this text holds several; send them one by one".into(),
            });
        }
        let Some(mut statement) = statements.pop_front() else {
            return Err(Error::Invalid {
                message: "no SQL statement was provided".into(),
            });
        };
        let sources = &self.shared.runtime.sources;
        if sources.is_confined() {
            sources.vet_statement(&mut statement)?;
        }
        let lookups = self.resolve_dimensions(&mut statement).await?;
        self.collect_aggregate_arguments(&mut statement);
        let operators = self.operators.clone();
        crate::semantic::threshold_scores(&mut statement, &|name| operators.is_score(name));
        let annotated = match self
            .callables
            .annotate(self.ctx, &mut statement, &annotation_lines)
        {
            Ok(names) => names,
            Err(e) => {
                for name in lookups {
                    self.ctx.deregister_udf(&name);
                }
                return Err(e);
            }
        };
        let plan = self
            .ctx
            .state()
            .statement_to_plan(statement)
            .await
            .map_err(Error::from_datafusion);
        // The plan holds the lookups it uses; the session's catalog keeps none.
        for name in lookups.iter().chain(&annotated) {
            self.ctx.deregister_udf(name);
        }
        let plan = plan?;
        sources.check_plan(&plan)?;
        sort_keys_computed_first(plan)
    }

    /// Resolve the DIMENSION calls in the statement's GROUP BY (`GROUP BY TOPICS(title, 5)`): ask each
    /// function for the buckets of its column's distinct values, register the value → bucket lookup and
    /// call it instead. Returns the names registered (to remove once planned).
    async fn resolve_dimensions(&self, statement: &mut DfStatement) -> Result<Vec<String>> {
        if self.dimensions.is_empty() {
            return Ok(Vec::new());
        }
        let sites = dimension_sites(statement, self.dimensions)?;
        let explaining = crate::semantic::is_explain(statement);
        let mut registered = Vec::new();
        for site in sites {
            let batches = self
                .ctx
                .sql(site.distinct_sql())
                .await
                .map_err(Error::from_datafusion)?
                .collect()
                .await
                .map_err(Error::from_datafusion)?;
            let mut values = Vec::new();
            for batch in &batches {
                let column = datafusion::arrow::compute::cast(
                    batch.column(0),
                    &datafusion::arrow::datatypes::DataType::Utf8,
                )
                .map_err(|e| Error::Execution {
                    message: e.to_string(),
                })?;
                if let Some(text) = column
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::StringArray>()
                {
                    values.extend(text.iter().flatten().map(str::to_owned));
                }
            }
            let options = self.rvbbit_options();
            let stmt = self.shared.statement();
            if stmt.is_estimating() || explaining {
                // Under EXPLAIN: one call per chunk of distinct values (and one for the sample), nothing
                // asked; every row in one NULL group.
                let chunks = crate::semantic::chunk_count(&values, options.semantic_context_bytes) as u64;
                stmt.estimate(
                    &site.definition.name,
                    crate::statement::Estimate {
                        rows: values.len() as u64,
                        distinct: values.len() as u64,
                        calls: if chunks > 1 { chunks + 1 } else { chunks },
                        rows_per_call: values.len().div_ceil(usize::try_from(chunks.max(1)).unwrap_or(1))
                            as u64,
                        prompt_bytes: values.iter().map(|v| v.len() as u64 + 3).sum(),
                        cascade: Some(site.definition.cascade.clone()),
                        ..crate::statement::Estimate::default()
                    },
                );
                let lookup = Lookup::new(std::collections::HashMap::new());
                let name = lookup.name().to_owned();
                site.replace(statement, &name);
                self.ctx
                    .register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(lookup));
                registered.push(name);
                continue;
            }
            let ask = Ask {
                runtime: &self.shared.runtime,
                stmt: &stmt,
                options: &options,
            };
            let lookup = Lookup::new(resolve_dimension(&site, &values, &ask).await?);
            let name = lookup.name().to_owned();
            site.replace(statement, &name);
            self.ctx
                .register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(lookup));
            registered.push(name);
        }
        Ok(registered)
    }

    /// Make each call of a loaded AGGREGATE semantic function read its group's values
    /// (`f(col)` → `f(array_agg(col))`, [`rewrite_aggregates`]).
    fn collect_aggregate_arguments(&self, statement: &mut DfStatement) {
        let state = self.ctx.state();
        let semantic = |name: &str| {
            self.operators.is_aggregate(name)
                && state
                    .scalar_functions()
                    .get(name)
                    .is_some_and(|f| f.as_async().is_some())
        };
        let aggregate = |name: &str| state.aggregate_functions().contains_key(name);
        rewrite_aggregates(statement, &semantic, &aggregate);
    }

    /// The limits on client SQL of the session's runtime.
    pub(crate) fn limits(&self) -> Limits {
        self.shared.runtime.settings.limits
    }

    /// The rows of `input_sql` (a query asking for one row more than `limit`): its columns, its rows cut
    /// at `limit`, and whether there were more.
    pub(crate) async fn limited_rows(
        &self,
        input_sql: &str,
        limit: u64,
    ) -> Result<(SchemaRef, RecordBatch, bool)> {
        let df = self.plan_and_check(input_sql).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(Error::from_datafusion)?;
        let mut input = concat_batches(&schema, &batches).map_err(|e| Error::Execution {
            message: e.to_string(),
        })?;
        let truncated = input.num_rows() as u64 > limit;
        if truncated {
            input = input.slice(0, usize::try_from(limit).unwrap_or(usize::MAX));
        }
        Ok((schema, input, truncated))
    }
}

/// DataFusion runs async functions (`rvbbit_udf`, the semantic functions) in projections and filters
/// only: an `ORDER BY x RELEVANCE TO 'y'` would fail with "async functions should not be called
/// directly". A sort whose keys call one is planned as a projection computing those keys (named
/// `__rvbbit_sort_<i>`), the sort on them, and a projection back to the sort's own columns.
fn sort_keys_computed_first(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up(|node| {
        let LogicalPlan::Sort(sort) = &node else {
            return Ok(Transformed::no(node));
        };
        if !sort.expr.iter().any(|k| calls_async(&k.expr)) {
            return Ok(Transformed::no(node));
        }
        let columns: Vec<Expr> = sort
            .input
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        let mut computed = columns.clone();
        let mut keys = Vec::with_capacity(sort.expr.len());
        for (i, key) in sort.expr.iter().enumerate() {
            if calls_async(&key.expr) {
                let name = format!("__rvbbit_sort_{i}");
                computed.push(key.expr.clone().alias(&name));
                keys.push(SortExpr::new(
                    Expr::Column(Column::from_name(name)),
                    key.asc,
                    key.nulls_first,
                ));
            } else {
                keys.push(key.clone());
            }
        }
        let rebuilt = LogicalPlanBuilder::from(sort.input.as_ref().clone())
            .project(computed)?
            .sort_with_limit(keys, sort.fetch)?
            .project(columns)?
            .build()?;
        Ok(Transformed::yes(rebuilt))
    })
    .map(|t| t.data)
    .map_err(Error::from_datafusion)
}
