//! Correlated scalar subqueries over `pg_catalog` tables (psql's `\\d`, SQLAlchemy's reflection),
//! rewritten into the form DataFusion plans: PostgreSQL allows one that returns at most one row,
//! DataFusion wants it aggregated and correlated by equalities only.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, JoinOperator, Query, Select, SelectItem, SetExpr, TableFactor,
    TableWithJoins, Visit, VisitMut, Visitor, VisitorMut,
};

use super::ast::parse_expr;

/// Catalog tables that never have rows here, whatever the session holds: DataFusion columns have no
/// defaults (`pg_attrdef`), there are no sequences (`pg_sequence`) and the catalog lists no
/// constraints (`pg_constraint`; see `catalog/relation_objects.rs`). A subquery reading one of them
/// (alone or inner-joined) returns no row, so its value is NULL, as in PostgreSQL with an empty table;
/// a query reading one that way never evaluates its select list ([`null_unevaluated`]).
const NO_ROWS: [&str; 3] = ["pg_attrdef", "pg_sequence", "pg_constraint"];

/// A SELECT that inner-joins a [`NO_ROWS`] table (or has one as the base of left joins) and does not
/// aggregate returns no rows, so its select list is never evaluated: its subqueries become NULL.
/// pgcli's foreign-key query has subqueries over the outer row's arrays that DataFusion cannot plan.
pub(super) fn null_unevaluated(query: &mut Query) {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty());
    if grouped || select.having.is_some() || !select.from.iter().any(has_no_rows) {
        return;
    }
    if select.projection.iter().any(aggregates) {
        return;
    }
    struct Nulls;
    impl VisitorMut for Nulls {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            let replacement = match e {
                Expr::Subquery(_) => "NULL",
                // unnest takes no untyped NULL: pgcli unnests an array_agg of names
                Expr::Function(f)
                    if f.name.to_string().eq_ignore_ascii_case("unnest")
                        && matches!(f.args.to_string().trim(), "(NULL)" | "((NULL))") =>
                {
                    "unnest(CAST(NULL AS TEXT[]))"
                }
                _ => return ControlFlow::Continue(()),
            };
            if let Ok(null) = parse_expr(replacement) {
                *e = null;
            }
            ControlFlow::Continue(())
        }
    }
    for item in &mut select.projection {
        // The replacer never breaks: the visit's `ControlFlow` carries nothing.
        let _ = VisitMut::visit(item, &mut Nulls);
    }
}

/// Whether a FROM item yields no rows for sure: its base or an inner-joined table is a [`NO_ROWS`]
/// table, and it has no right or full joins (which could bring rows back).
fn has_no_rows(t: &TableWithJoins) -> bool {
    let empty = |r: &TableFactor| matches!(catalog_table(r), Some(Ok((_, table))) if NO_ROWS.contains(&table.as_str()));
    let mut no_rows = empty(&t.relation);
    for join in &t.joins {
        match join.join_operator {
            JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::CrossJoin(_) => {
                no_rows |= empty(&join.relation);
            }
            JoinOperator::Left(_) | JoinOperator::LeftOuter(_) => {}
            _ => return false,
        }
    }
    no_rows
}

/// Whether a select item calls an aggregate outside its subqueries (an aggregate over no rows still
/// gives a row).
fn aggregates(item: &SelectItem) -> bool {
    struct Found {
        depth: usize,
        found: bool,
    }
    impl Visitor for Found {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Subquery(_) => self.depth += 1,
                Expr::Function(f) if self.depth == 0 => {
                    let name = f.name.to_string().to_ascii_lowercase();
                    let name = name.rsplit('.').next().unwrap_or_default();
                    self.found |= f.over.is_none() && AGGREGATES.contains(&name);
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if matches!(e, Expr::Subquery(_)) {
                self.depth -= 1;
            }
            ControlFlow::Continue(())
        }
    }
    let mut found = Found {
        depth: 0,
        found: false,
    };
    // The finder never breaks: the visit's `ControlFlow` carries nothing.
    let _ = Visit::visit(item, &mut found);
    found.found
}

/// Aggregate functions clients use in catalog queries.
const AGGREGATES: [&str; 12] = [
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "every",
    "json_agg",
    "jsonb_agg",
];

/// PostgreSQL allows a correlated scalar subquery that returns one row; DataFusion wants it aggregated
/// and correlated by equalities only. For subqueries over catalog tables only (psql's `\d`): wrap the
/// one selected value in `max(…)`, and lift conditions on the outer row out of the subquery into
/// `CASE WHEN cond THEN (subquery) END` (a column of an inner table joined by `key = outer` in such a
/// condition is read by its own subquery).
pub(super) fn rewrite(expr: &mut Expr) {
    let Expr::Subquery(query) = expr else {
        return;
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    // inner alias → table name
    let inner = match inner_from(select) {
        InnerFrom::Tables(inner) => inner,
        InnerFrom::Null => {
            if let Ok(null) = parse_expr("NULL") {
                *expr = null;
            }
            return;
        }
        InnerFrom::Keep => return,
    };
    let grouped = !matches!(&select.group_by, datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(e, _) if e.is_empty());
    if inner.is_empty() || select.projection.len() != 1 || grouped {
        return;
    }
    let (SelectItem::UnnamedExpr(projected) | SelectItem::ExprWithAlias { expr: projected, .. }) =
        &mut select.projection[0]
    else {
        return;
    };
    let aggregated = matches!(projected, Expr::Function(f) if matches!(f.name.to_string().to_ascii_lowercase().as_str(),
        "max" | "min" | "count" | "sum" | "avg" | "array_agg" | "string_agg" | "bool_or" | "bool_and"));
    if !aggregated && let Ok(wrapped) = parse_expr(&format!("max({projected})")) {
        *projected = wrapped;
    }
    let Some(selection) = select.selection.take() else {
        return;
    };
    let (kept, guard) = split_correlated(selection, &inner);
    select.selection = join_and(kept);
    if guard.is_empty() {
        return;
    }
    if let Ok(case) = parse_expr(&format!("CASE WHEN {} THEN ({query}) END", guard.join(" AND "))) {
        *expr = case;
    }
}

/// What the FROM of a catalog subquery allows.
enum InnerFrom {
    /// Plain `pg_catalog` tables, inner-joined: (alias, table name) of each.
    Tables(Vec<(String, String)>),
    /// No row can come out: a set-returning function over the outer row (DataFusion cannot run it;
    /// psql's publication query over the always empty pg_publication_rel) or a [`NO_ROWS`] table.
    Null,
    /// Anything else: the subquery stays as it is.
    Keep,
}

/// The `pg_catalog` tables a subquery reads (its FROM items and their inner joins), or why it is not
/// rewritten.
fn inner_from(select: &Select) -> InnerFrom {
    let mut inner: Vec<(String, String)> = Vec::new();
    for t in &select.from {
        let mut relations = vec![&t.relation];
        for join in &t.joins {
            if !matches!(
                join.join_operator,
                JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::CrossJoin(_)
            ) {
                return InnerFrom::Keep;
            }
            relations.push(&join.relation);
        }
        for relation in relations {
            match catalog_table(relation) {
                Some(Ok((_, table))) if NO_ROWS.contains(&table.as_str()) => return InnerFrom::Null,
                Some(Ok((alias, table))) => inner.push((alias, format!("pg_catalog.{table}"))),
                Some(Err(())) => return InnerFrom::Null,
                None => return InnerFrom::Keep,
            }
        }
    }
    InnerFrom::Tables(inner)
}

/// A `pg_catalog` table of a FROM: Ok((alias, table name)), both lower case; Err for a set-returning
/// function; None for anything else.
fn catalog_table(relation: &TableFactor) -> Option<Result<(String, String), ()>> {
    let TableFactor::Table {
        name, alias, args, ..
    } = relation
    else {
        return matches!(
            relation,
            TableFactor::Function { .. } | TableFactor::TableFunction { .. }
        )
        .then_some(Err(()));
    };
    let in_catalog = name
        .0
        .first()
        .is_some_and(|p| p.to_string().eq_ignore_ascii_case("pg_catalog"));
    if args.is_some() {
        return in_catalog.then_some(Err(()));
    }
    if !in_catalog || name.0.len() != 2 {
        return None;
    }
    let table = name.0.last()?.to_string().to_ascii_lowercase();
    let alias = alias
        .as_ref()
        .map_or_else(|| table.clone(), |a| a.name.value.to_ascii_lowercase());
    Some(Ok((alias, table)))
}

/// The conditions of a correlated subquery over the `inner` tables, split into those it keeps and the
/// guards on the outer row (`CASE WHEN guards THEN (subquery) END`).
fn split_correlated(selection: Expr, inner: &[(String, String)]) -> (Vec<Expr>, Vec<String>) {
    let is_inner = |q: &str| inner.iter().any(|(a, _)| a == q);
    let mut conjuncts = Vec::new();
    split_and(selection, &mut conjuncts);
    let mut kept = Vec::new();
    let mut guard = Vec::new();
    let mut mixed = Vec::new();
    for c in conjuncts {
        let quals = qualifiers(&c);
        let has_inner = quals.iter().any(|q| is_inner(q));
        let has_outer = quals.iter().any(|q| !is_inner(q));
        let equality = matches!(&c, Expr::BinaryOp { op: BinaryOperator::Eq, left, right }
            if qualifiers(left).iter().all(|q| is_inner(q)) != qualifiers(right).iter().all(|q| is_inner(q)));
        if has_outer && !has_inner {
            guard.push(c.to_string());
        } else if has_outer && !equality {
            mixed.push(c);
        } else {
            kept.push(c);
        }
    }
    // `outer <op> t.col` where t is joined by `t.key = outer2`: read t.col by its own subquery.
    for c in mixed {
        let mut text = c.to_string();
        let mut resolved = true;
        for q in qualifiers(&c).into_iter().filter(|q| is_inner(q)) {
            let Some(key) = kept.iter().find_map(|k| match k {
                Expr::BinaryOp {
                    op: BinaryOperator::Eq,
                    left,
                    right,
                } => {
                    let (l, r) = (qualifiers(left), qualifiers(right));
                    if l.len() == 1 && l[0] == q && r.iter().all(|x| !is_inner(x)) {
                        Some((left.to_string(), right.to_string()))
                    } else if r.len() == 1 && r[0] == q && l.iter().all(|x| !is_inner(x)) {
                        Some((right.to_string(), left.to_string()))
                    } else {
                        None
                    }
                }
                _ => None,
            }) else {
                resolved = false;
                break;
            };
            let table = inner
                .iter()
                .find(|(a, _)| *a == q)
                .map(|(_, t)| t.clone())
                .unwrap_or_default();
            let Ok(parsed) = parse_expr(&text) else {
                resolved = false;
                break;
            };
            text = replace_inner_columns(parsed, &q, &table, &key.0, &key.1).to_string();
        }
        if resolved {
            guard.push(text);
        } else {
            kept.push(c);
        }
    }
    (kept, guard)
}

fn split_and(e: Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            split_and(*left, out);
            split_and(*right, out);
        }
        Expr::Nested(inner)
            if matches!(
                inner.as_ref(),
                Expr::BinaryOp {
                    op: BinaryOperator::And,
                    ..
                }
            ) =>
        {
            split_and(*inner, out)
        }
        other => out.push(other),
    }
}

fn join_and(parts: Vec<Expr>) -> Option<Expr> {
    parts.into_iter().reduce(|a, b| Expr::BinaryOp {
        left: Box::new(a),
        op: BinaryOperator::And,
        right: Box::new(b),
    })
}

/// The qualifiers (`a` in `a.col`) of the compound identifiers in an expression, lower case; a bare
/// column counts as inner (qualifier "").
fn qualifiers(e: &Expr) -> Vec<String> {
    struct Q(Vec<String>);
    impl datafusion::sql::sqlparser::ast::Visitor for Q {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Expr::CompoundIdentifier(parts) = e
                && parts.len() >= 2
            {
                self.0.push(parts[parts.len() - 2].value.to_ascii_lowercase());
            }
            ControlFlow::Continue(())
        }
    }
    let mut q = Q(Vec::new());
    // The collector never breaks: the visit's `ControlFlow` carries nothing.
    let _ = Visit::visit(e, &mut q);
    q.0
}

/// Replace `alias.col` by `(SELECT max(alias.col) FROM table alias WHERE key = outer)`.
fn replace_inner_columns(mut e: Expr, alias: &str, table: &str, key: &str, outer: &str) -> Expr {
    struct R<'a>(&'a str, &'a str, &'a str, &'a str);
    impl VisitorMut for R<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::CompoundIdentifier(parts) = e
                && parts.len() == 2
                && parts[0].value.eq_ignore_ascii_case(self.0)
                && let Ok(sub) = parse_expr(&format!(
                    "(SELECT max({e}) FROM {} {} WHERE {} = {})",
                    self.1, self.0, self.2, self.3
                ))
            {
                *e = sub;
            }
            ControlFlow::Continue(())
        }
    }
    // The replacer never breaks: the visit's `ControlFlow` carries nothing.
    let _ = VisitMut::visit(&mut e, &mut R(alias, table, key, outer));
    e
}
