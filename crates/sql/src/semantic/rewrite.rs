//! Semantic calls rewritten on the parsed statement before planning. A score function (a SCALAR
//! function returning DOUBLE, `a ABOUT 'x'`) standing alone as a condition (a WHERE, HAVING or JOIN ON
//! term, under AND, OR and NOT) means `> 0.5` ([`threshold_scores`]). AGGREGATE semantic functions: on the parsed statement, a call `f(col [, extra…])` of
//! a loaded AGGREGATE function becomes `f(array_agg(col) [, extra…])`, so DataFusion collects each
//! group's values and then calls the async function once per group. A call whose first argument is
//! already an aggregate (or a window call, or one with `FILTER`) is left alone, so the rewrite is
//! idempotent.

use std::ops::ControlFlow;

use datafusion::sql::parser::{CopyToSource, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectName,
    ObjectNamePart, visit_expressions_mut,
};

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, JoinConstraint, JoinOperator, Query, SetExpr, Statement as SqlStatement, UnaryOperator,
};

use super::dialect::call_with;

/// The score a bare score function in a condition must pass.
const BARE_SCORE: &str = "0.5";

/// Make each bare call of a score function in a condition of `statement` (`WHERE a ABOUT 'x'`) a
/// comparison `> 0.5`; `is_score(name)` says whether a (lower-case) function name is one.
pub(crate) fn threshold_scores(statement: &mut DfStatement, is_score: &dyn Fn(&str) -> bool) {
    match statement {
        DfStatement::Statement(s) => match s.as_mut() {
            SqlStatement::Query(q) => query_scores(q, is_score),
            SqlStatement::CreateTable(c) => {
                if let Some(q) = c.query.as_mut() {
                    query_scores(q, is_score);
                }
            }
            SqlStatement::Insert(i) => {
                if let Some(q) = i.source.as_mut() {
                    query_scores(q, is_score);
                }
            }
            _ => {}
        },
        DfStatement::Explain(explain) => threshold_scores(&mut explain.statement, is_score),
        _ => {}
    }
}

fn query_scores(query: &mut Query, is_score: &dyn Fn(&str) -> bool) {
    if let Some(with) = query.with.as_mut() {
        for cte in &mut with.cte_tables {
            query_scores(&mut cte.query, is_score);
        }
    }
    set_scores(&mut query.body, is_score);
}

fn set_scores(body: &mut SetExpr, is_score: &dyn Fn(&str) -> bool) {
    match body {
        SetExpr::Select(select) => {
            for condition in [select.selection.as_mut(), select.having.as_mut()]
                .into_iter()
                .flatten()
            {
                condition_scores(condition, is_score);
            }
            for table in &mut select.from {
                for join in &mut table.joins {
                    let (JoinOperator::Join(constraint)
                    | JoinOperator::Inner(constraint)
                    | JoinOperator::Left(constraint)
                    | JoinOperator::LeftOuter(constraint)
                    | JoinOperator::Right(constraint)
                    | JoinOperator::RightOuter(constraint)
                    | JoinOperator::FullOuter(constraint)) = &mut join.join_operator
                    else {
                        continue;
                    };
                    if let JoinConstraint::On(on) = constraint {
                        condition_scores(on, is_score);
                    }
                }
            }
        }
        SetExpr::Query(q) => query_scores(q, is_score),
        SetExpr::SetOperation { left, right, .. } => {
            set_scores(left, is_score);
            set_scores(right, is_score);
        }
        _ => {}
    }
}

/// `expr` as a condition: through AND, OR, NOT and parentheses, a bare score call becomes `> 0.5`.
fn condition_scores(expr: &mut Expr, is_score: &dyn Fn(&str) -> bool) {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And | BinaryOperator::Or,
            right,
        } => {
            condition_scores(left, is_score);
            condition_scores(right, is_score);
        }
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr: inner,
        }
        | Expr::Nested(inner) => condition_scores(inner, is_score),
        Expr::Function(f) if f.over.is_none() && last_name(&f.name).is_some_and(|n| is_score(&n)) => {
            let call = std::mem::replace(expr, Expr::value(datafusion::sql::sqlparser::ast::Value::Null));
            *expr = Expr::BinaryOp {
                left: Box::new(call),
                op: BinaryOperator::Gt,
                right: Box::new(Expr::value(datafusion::sql::sqlparser::ast::Value::Number(
                    BARE_SCORE.to_owned(),
                    false,
                ))),
            };
        }
        _ => {}
    }
}

/// The name the rewrite wraps a group's values in.
const COLLECT: &str = "array_agg";

/// Rewrite the AGGREGATE calls of `statement`: `is_semantic_aggregate(name)` says whether a (lower-case)
/// function name is a loaded AGGREGATE function, `is_aggregate(name)` whether it is any aggregate.
pub(crate) fn rewrite_aggregates(
    statement: &mut DfStatement,
    is_semantic_aggregate: &dyn Fn(&str) -> bool,
    is_aggregate: &dyn Fn(&str) -> bool,
) {
    let mut rewrite = |expr: &mut Expr| {
        if let Expr::Function(f) = expr {
            wrap(f, is_semantic_aggregate, is_aggregate);
        }
        ControlFlow::<()>::Continue(())
    };
    // The visitor never breaks: the results carry nothing.
    let _ = match statement {
        DfStatement::Statement(s) => visit_expressions_mut(s.as_mut(), &mut rewrite),
        DfStatement::CopyTo(copy) => match &mut copy.source {
            CopyToSource::Query(q) => visit_expressions_mut(q.as_mut(), &mut rewrite),
            CopyToSource::Relation(_) => ControlFlow::Continue(()),
        },
        DfStatement::Explain(explain) => {
            rewrite_aggregates(&mut explain.statement, is_semantic_aggregate, is_aggregate);
            ControlFlow::Continue(())
        }
        DfStatement::CreateExternalTable(_) | DfStatement::Reset(_) => ControlFlow::Continue(()),
    };
}

/// The lower-case last part of a function name.
fn last_name(name: &ObjectName) -> Option<String> {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(ident)) => Some(ident.value.to_lowercase()),
        _ => None,
    }
}

/// Wrap the first argument of `f` in `array_agg(…)` when `f` is a semantic aggregate not yet rewritten.
fn wrap(f: &mut Function, is_semantic_aggregate: &dyn Fn(&str) -> bool, is_aggregate: &dyn Fn(&str) -> bool) {
    if f.over.is_some() || f.filter.is_some() {
        return;
    }
    if !last_name(&f.name).is_some_and(|n| is_semantic_aggregate(&n)) {
        return;
    }
    let FunctionArguments::List(list) = &mut f.args else {
        return;
    };
    let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(first))) = list.args.first_mut() else {
        return;
    };
    if let Expr::Function(inner) = &*first
        && last_name(&inner.name).is_some_and(|n| is_aggregate(&n) || is_semantic_aggregate(&n))
    {
        return;
    }
    let values = std::mem::replace(first, Expr::value(datafusion::sql::sqlparser::ast::Value::Null));
    // `f(DISTINCT x)` collects the distinct values.
    let distinct = matches!(
        list.duplicate_treatment.take(),
        Some(DuplicateTreatment::Distinct)
    );
    *first = call_with(
        COLLECT,
        vec![values],
        distinct.then_some(DuplicateTreatment::Distinct),
    );
}

#[cfg(test)]
mod tests {
    use datafusion::sql::parser::DFParserBuilder;

    use super::*;

    fn parsed(sql: &str) -> DfStatement {
        let mut statements = DFParserBuilder::new(sql)
            .build()
            .unwrap()
            .parse_statements()
            .unwrap();
        statements.pop_front().unwrap()
    }

    fn rewritten(sql: &str) -> String {
        let mut statement = parsed(sql);
        let semantic = |n: &str| n == "summarize" || n == "best";
        let aggregate = |n: &str| n == "array_agg" || n == "string_agg" || n == "count";
        rewrite_aggregates(&mut statement, &semantic, &aggregate);
        statement.to_string()
    }

    #[test]
    fn the_first_argument_of_a_semantic_aggregate_is_collected() {
        assert_eq!(
            rewritten("SELECT tag, SUMMARIZE(body) FROM t GROUP BY tag"),
            "SELECT tag, SUMMARIZE(array_agg(body)) FROM t GROUP BY tag"
        );
        assert_eq!(
            rewritten("SELECT best(body, 'clearest') FROM t"),
            "SELECT best(array_agg(body), 'clearest') FROM t"
        );
        assert_eq!(
            rewritten("SELECT summarize(DISTINCT body) FROM t"),
            "SELECT summarize(array_agg(DISTINCT body)) FROM t"
        );
    }

    fn thresholded(sql: &str) -> String {
        let mut statement = parsed(sql);
        threshold_scores(&mut statement, &|n: &str| n == "semantic_score");
        statement.to_string()
    }

    #[test]
    fn a_bare_score_in_a_condition_must_pass_one_half() {
        assert_eq!(
            thresholded("SELECT a FROM t WHERE semantic_score(a, 'x') AND NOT (semantic_score(b, 'y'))"),
            "SELECT a FROM t WHERE semantic_score(a, 'x') > 0.5 AND NOT (semantic_score(b, 'y') > 0.5)"
        );
        assert_eq!(
            thresholded(
                "SELECT a FROM t JOIN u ON semantic_score(t.a, u.b) GROUP BY a HAVING semantic_score(a, 'z')"
            ),
            "SELECT a FROM t JOIN u ON semantic_score(t.a, u.b) > 0.5 GROUP BY a HAVING semantic_score(a, 'z') > 0.5"
        );
        // A compared score, a score as a value and other functions are left alone.
        for sql in [
            "SELECT semantic_score(a, 'x') FROM t WHERE semantic_score(a, 'x') > 0.7",
            "SELECT a FROM t WHERE upper(a) = 'X'",
        ] {
            assert_eq!(thresholded(sql), sql);
        }
    }

    #[test]
    fn the_rewrite_is_idempotent_and_leaves_other_calls_alone() {
        for sql in [
            "SELECT summarize(array_agg(body)) FROM t",
            "SELECT summarize(string_agg(body, ',')) FROM t",
            "SELECT upper(body), count(body) FROM t",
            "SELECT summarize(body) OVER () FROM t",
        ] {
            assert_eq!(rewritten(sql), sql);
        }
        let once = rewritten("SELECT summarize(body) FROM t");
        assert_eq!(rewritten(&once), once);
    }
}
