//! Async functions (`rvbbit_udf`, the semantic functions) in join conditions.
//!
//! DataFusion evaluates async functions in projections and filters only: a join condition that calls
//! one (`JOIN k ON t.body SAME_AS k.kind`, or a `WHERE` over two tables that the optimizer pushes
//! into the join) fails with "async functions should not be called directly". [`AsyncOutOfJoins`]
//! runs after DataFusion's own rules and takes such conditions out of an inner join into a filter
//! above it: the conjuncts without async calls stay in the join (an equi-join stays a hash join), the
//! others are evaluated on the joined rows, which is what an inner join's condition means. An outer,
//! semi or anti join cannot be rewritten so; its async condition is a plan error that says what to
//! write instead.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{Expr, Filter, JoinType, LogicalPlan};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

/// Whether `expr` calls an async function.
pub(crate) fn calls_async(expr: &Expr) -> bool {
    expr.exists(|e| Ok(matches!(e, Expr::ScalarFunction(f) if f.func.as_async().is_some())))
        .unwrap_or(false)
}

/// The optimizer rule: async join conditions of inner joins become a filter above the join.
#[derive(Debug, Default)]
pub(crate) struct AsyncOutOfJoins;

impl OptimizerRule for AsyncOutOfJoins {
    fn name(&self) -> &str {
        "rvbbit_async_out_of_joins"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        let mut join = match plan {
            LogicalPlan::Join(join) => join,
            other => return Ok(Transformed::no(other)),
        };
        let async_on = join.on.iter().any(|(l, r)| calls_async(l) || calls_async(r));
        let async_filter = join.filter.as_ref().is_some_and(calls_async);
        if !async_on && !async_filter {
            return Ok(Transformed::no(LogicalPlan::Join(join)));
        }
        if join.join_type != JoinType::Inner {
            return Err(DataFusionError::Plan(format!(
                "a {} JOIN's condition calls an rvbbit function (a semantic operator or rvbbit_udf), \
                 which runs only on joined rows: use an inner JOIN (or SEMANTIC JOIN), or compute the \
                 function in a subquery and join on its result",
                join_kind(join.join_type)
            )));
        }
        let mut lifted = Vec::new();
        join.on.retain(|(l, r)| {
            if calls_async(l) || calls_async(r) {
                lifted.push(l.clone().eq(r.clone()));
                false
            } else {
                true
            }
        });
        let mut kept = Vec::new();
        for conjunct in join
            .filter
            .take()
            .map(split_conjunction_owned)
            .unwrap_or_default()
        {
            if calls_async(&conjunct) {
                lifted.push(conjunct);
            } else {
                kept.push(conjunct);
            }
        }
        join.filter = conjunction(kept);
        let Some(predicate) = conjunction(lifted) else {
            return Ok(Transformed::no(LogicalPlan::Join(join)));
        };
        let filter = Filter::try_new(predicate, Arc::new(LogicalPlan::Join(join)))?;
        Ok(Transformed::yes(LogicalPlan::Filter(filter)))
    }
}

/// The SQL words of a join type, for messages.
fn join_kind(t: JoinType) -> &'static str {
    match t {
        JoinType::Inner => "INNER",
        JoinType::Left => "LEFT",
        JoinType::Right => "RIGHT",
        JoinType::Full => "FULL",
        JoinType::LeftSemi | JoinType::RightSemi => "semi (EXISTS/IN)",
        JoinType::LeftAnti | JoinType::RightAnti => "anti (NOT EXISTS/NOT IN)",
        JoinType::LeftMark | JoinType::RightMark => "mark (EXISTS in an OR)",
    }
}
