//! AGGREGATE semantic functions before planning: on the parsed statement, a call `f(col [, extra…])` of
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

use super::dialect::call_with;

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

    fn rewritten(sql: &str) -> String {
        let mut statements = DFParserBuilder::new(sql)
            .build()
            .unwrap()
            .parse_statements()
            .unwrap();
        let mut statement = statements.pop_front().unwrap();
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
