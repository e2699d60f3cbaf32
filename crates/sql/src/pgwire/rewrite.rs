//! Rewrites that make PostgreSQL client catalog SQL plannable by DataFusion ([`CatalogRewriter`]):
//! `pg_catalog.` names, `OPERATOR(pg_catalog.~)`, `COLLATE`, `::regclass`, correlated catalog
//! subqueries turned into joins, and the `$n` placeholders a statement uses.

// `ErrorInfo` is pgwire's own error message type, which the protocol layer consumes as is; a statement
// fails at most once, so its size on the error path does not matter.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    AccessExpr, ArrayElemTypeDef, BinaryOperator, DataType as SqlType, Expr, ObjectName, ObjectNamePart,
    Value, ValueWithSpan, VisitMut, VisitorMut,
};

use super::arrays;
use super::ast::{is_text_type, number, parse_expr, parse_type, string, type_name};
use super::catalog;
use super::infer;
use super::types::DUPLICATE_MARK;
use pgwire::api::Type;

/// Rewrites that make PostgreSQL client catalog SQL plannable by DataFusion.
#[derive(Default)]
pub(super) struct CatalogRewriter {
    /// Whether the statement reads `pg_catalog` tables.
    pub(super) reads_catalog: bool,
    /// The `$n` placeholders seen.
    pub(super) placeholders: BTreeSet<usize>,
    /// The types of placeholders cast explicitly (`$1::oid[]`), read before the casts are rewritten.
    pub(super) casts: BTreeMap<usize, Type>,
}

impl VisitorMut for CatalogRewriter {
    type Break = ();

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<()> {
        let parts: Vec<String> = relation
            .0
            .iter()
            .map(|p| match p {
                ObjectNamePart::Identifier(i) => i.value.to_ascii_lowercase(),
                other => other.to_string(),
            })
            .collect();
        match parts.as_slice() {
            [table] if catalog::is_catalog_table(table) => {
                relation.0.insert(
                    0,
                    ObjectNamePart::Identifier(datafusion::sql::sqlparser::ast::Ident::new("pg_catalog")),
                );
                self.reads_catalog = true;
            }
            // a table function (pg_get_keywords()) is registered by its bare name
            [schema, function] if schema == "pg_catalog" && function == "pg_get_keywords" => {
                relation.0.remove(0);
            }
            [schema, _] if schema == "pg_catalog" => self.reads_catalog = true,
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut datafusion::sql::sqlparser::ast::Select) -> ControlFlow<()> {
        // PostgreSQL allows two unnamed columns with the same text (`SELECT NULL, NULL`); DataFusion
        // needs unique names: alias the repeats.
        use datafusion::sql::sqlparser::ast::{Ident, SelectItem};
        // With `*` in the list, a column named before it (`SELECT c.oid, c.*`, DBeaver's navigator) would
        // appear twice: alias it with a marked name that the wire's row description drops.
        let wildcard = select
            .projection
            .iter()
            .any(|i| matches!(i, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)));
        if wildcard {
            for item in select.projection.iter_mut() {
                if let SelectItem::UnnamedExpr(e @ (Expr::Identifier(_) | Expr::CompoundIdentifier(_))) = item
                {
                    let name = match &*e {
                        Expr::Identifier(i) => i.value.clone(),
                        Expr::CompoundIdentifier(parts) => {
                            parts.last().map(|i| i.value.clone()).unwrap_or_default()
                        }
                        _ => String::new(),
                    };
                    *item = SelectItem::ExprWithAlias {
                        expr: e.clone(),
                        alias: Ident::with_quote(
                            '"',
                            format!("{}{DUPLICATE_MARK}", name.to_ascii_lowercase()),
                        ),
                    };
                }
            }
        }
        let mut seen = BTreeSet::new();
        for (i, item) in select.projection.iter_mut().enumerate() {
            if let SelectItem::UnnamedExpr(e) = item {
                let name = e.to_string();
                if !seen.insert(name) {
                    *item = SelectItem::ExprWithAlias {
                        expr: e.clone(),
                        alias: Ident::with_quote('"', format!("?column?{}", i + 1)),
                    };
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        // x::regtype::text → format_type(x, NULL)
        if let Expr::Cast {
            expr: inner,
            data_type,
            ..
        } = expr
            && is_text_type(data_type)
            && let Expr::Cast {
                expr: inner2,
                data_type: inner_type,
                ..
            } = inner.as_ref()
            && type_name(inner_type) == "regtype"
            && let Ok(call) = parse_expr(&format!("format_type({inner2}, NULL)"))
        {
            *expr = call;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Subquery(_) => rewrite_catalog_subquery(expr),
            Expr::Collate { expr: inner, .. } => {
                *expr = (**inner).clone();
            }
            // x = ANY('{r,p}') (an untyped array literal, psycopg's ClientCursor binding of a list, as
            // pgspecial's `\dt` sends it): ARRAY['r', 'p']
            Expr::AnyOp { right, .. } | Expr::AllOp { right, .. } => {
                if let Expr::Value(ValueWithSpan {
                    value: Value::SingleQuotedString(text),
                    ..
                }) = right.as_ref()
                    && text.starts_with('{')
                    && let Some(array) = text_array(text)
                {
                    **right = array;
                }
            }
            Expr::BinaryOp { op, .. } => {
                if let BinaryOperator::PGCustomBinaryOperator(parts) = op
                    && let Some(plain) = parts.last().and_then(|o| plain_operator(o))
                {
                    *op = plain;
                }
            }
            // array_upper(a, 1) of a one-dimensional array (lower bound 1) is its length
            Expr::Function(f)
                if f.name.0.len() == 1 && f.name.to_string().eq_ignore_ascii_case("array_upper") =>
            {
                f.name = ObjectName::from(vec![datafusion::sql::sqlparser::ast::Ident::new("array_length")]);
                // signed, as PostgreSQL's (array_length is unsigned); bigint, which generate_series takes
                *expr = Expr::Cast {
                    kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
                    expr: Box::new(expr.clone()),
                    data_type: SqlType::BigInt(None),
                    array: false,
                    format: None,
                };
            }
            // ARRAY(subquery) is not plannable by DataFusion; psql uses it only over catalog tables that
            // are always empty here (pg_policy, pg_publication), where it is never evaluated.
            Expr::Function(f)
                if self.reads_catalog
                    && f.name.to_string().eq_ignore_ascii_case("array")
                    && matches!(
                        f.args,
                        datafusion::sql::sqlparser::ast::FunctionArguments::Subquery(_)
                    ) =>
            {
                if let Ok(null) = parse_expr("CAST(NULL AS TEXT[])") {
                    *expr = null;
                }
            }
            Expr::Function(f)
                if f.name.0.len() == 2
                    && f.name.0.first().is_some_and(|p| {
                        let schema = p.to_string();
                        schema.eq_ignore_ascii_case("pg_catalog")
                            || schema.eq_ignore_ascii_case("information_schema")
                                && f.name
                                    .0
                                    .last()
                                    .is_some_and(|n| n.to_string() == "_pg_expandarray")
                    }) =>
            {
                f.name.0.remove(0);
            }
            // `(expr).field` → get_field(expr, 'field') (DataFusion reads only `column.field`)
            Expr::CompoundFieldAccess { root, access_chain } => {
                if let [AccessExpr::Dot(Expr::Identifier(field))] = access_chain.as_slice() {
                    let mut base = root.as_ref();
                    while let Expr::Nested(inner) = base {
                        base = inner;
                    }
                    let field = field.value.to_ascii_lowercase().replace('\'', "''");
                    if let Ok(call) = parse_expr(&format!("get_field({base}, '{field}')")) {
                        *expr = call;
                    }
                }
            }
            Expr::Value(ValueWithSpan {
                value: Value::Placeholder(p),
                ..
            }) => {
                if let Some(n) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
                    self.placeholders.insert(n);
                }
            }
            Expr::Cast { .. } => self.rewrite_cast(expr),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

impl CatalogRewriter {
    /// The casts: a placeholder's type recorded, `'{…}'::T[]` as `ARRAY[…]`, `::regclass` and friends
    /// on literals as oids, catalog-only types as DataFusion's, `::json` as `json_in`.
    fn rewrite_cast(&mut self, expr: &mut Expr) {
        let Expr::Cast {
            expr: inner,
            data_type,
            ..
        } = expr
        else {
            return;
        };
        if let (Some(n), Some(ty)) = (infer::placeholder(inner), infer::pg_type_of(data_type)) {
            self.casts.entry(n).or_insert(ty);
        }
        // '{a,b}'::text[] (an array literal in text): ARRAY['a', 'b'], cast below
        if let (
            SqlType::Array(_),
            Expr::Value(ValueWithSpan {
                value: Value::SingleQuotedString(text),
                ..
            }),
        ) = (&*data_type, inner.as_ref())
            && let Some(array) = text_array(text)
        {
            **inner = array;
        }
        let name = type_name(data_type);
        if matches!(
            name.as_str(),
            "regclass" | "regtype" | "regproc" | "regprocedure" | "regnamespace" | "regrole" | "regoper"
        ) {
            if let Expr::Value(ValueWithSpan {
                value: Value::SingleQuotedString(s),
                ..
            }) = inner.as_ref()
            {
                if matches!(name.as_str(), "regproc" | "regprocedure") {
                    // pg_type's typinput/typoutput/… hold function names as text here
                    *expr = string(s);
                } else {
                    let oid = catalog::oid_of(&name, s).unwrap_or(0);
                    *expr = number(&oid.to_string());
                }
            } else {
                *data_type = SqlType::BigInt(None);
            }
        } else if matches!(name.as_str(), "oid" | "xid" | "cid" | "tid") {
            *data_type = SqlType::BigInt(None);
        } else if matches!(name.as_str(), "json" | "jsonb") {
            // DataFusion has no json type: a text checked as JSON, sent as `json`
            if let Ok(call) = parse_expr(&format!("json_in(CAST({inner} AS TEXT))")) {
                *expr = call;
            }
        } else if matches!(name.as_str(), "oid[]" | "regtype[]" | "regclass[]") {
            *data_type = SqlType::Array(ArrayElemTypeDef::SquareBracket(
                Box::new(SqlType::BigInt(None)),
                None,
            ));
        } else if matches!(
            name.as_str(),
            "name" | "\"char\"" | "char" | "int2vector" | "oidvector" | "text"
        ) {
            *data_type = SqlType::Text;
        } else if let SqlType::Custom(obj, _) = data_type
            && obj.0.len() == 2
            && let Ok(plain) = parse_type(&name)
        {
            *data_type = plain;
        }
    }
}

/// PostgreSQL allows a correlated scalar subquery that returns one row; DataFusion wants it aggregated
/// and correlated by equalities only. For subqueries over catalog tables only (psql's `\d`): wrap the
/// one selected value in `max(…)`, and lift conditions on the outer row out of the subquery into
/// `CASE WHEN cond THEN (subquery) END` (a column of an inner table joined by `key = outer` in such a
/// condition is read by its own subquery).
/// An array literal in text (`{a,"b c",NULL}`) as `ARRAY['a', 'b c', NULL]`; None when malformed.
fn text_array(text: &str) -> Option<Expr> {
    let elements = arrays::parse_text(text).ok()?;
    let elem = elements
        .iter()
        .map(|e| match e {
            Some(v) => string(v),
            None => Expr::Value(ValueWithSpan {
                value: Value::Null,
                span: datafusion::sql::sqlparser::tokenizer::Span::empty(),
            }),
        })
        .collect();
    Some(Expr::Array(datafusion::sql::sqlparser::ast::Array {
        elem,
        named: true,
    }))
}

fn rewrite_catalog_subquery(expr: &mut Expr) {
    use datafusion::sql::sqlparser::ast::{SelectItem, SetExpr};
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
    /// Plain `pg_catalog` tables: (alias, table name) of each.
    Tables(Vec<(String, String)>),
    /// A set-returning function over the outer row: DataFusion cannot run it; the subquery is NULL.
    Null,
    /// Anything else: the subquery stays as it is.
    Keep,
}

/// The `pg_catalog` tables a subquery reads, or why it is not rewritten.
fn inner_from(select: &datafusion::sql::sqlparser::ast::Select) -> InnerFrom {
    use datafusion::sql::sqlparser::ast::TableFactor;
    let mut inner: Vec<(String, String)> = Vec::new();
    for t in &select.from {
        let TableFactor::Table { name, alias, .. } = &t.relation else {
            // A set-returning function over the outer row (psql's publication query over the always
            // empty pg_publication_rel): DataFusion cannot run it; it would be NULL here.
            if matches!(
                &t.relation,
                TableFactor::Function { .. } | TableFactor::TableFunction { .. }
            ) || matches!(&t.relation, TableFactor::Table { args: Some(_), .. })
            {
                return InnerFrom::Null;
            }
            return InnerFrom::Keep;
        };
        if name
            .0
            .first()
            .is_some_and(|p| p.to_string().eq_ignore_ascii_case("pg_catalog"))
            && matches!(&t.relation, TableFactor::Table { args: Some(_), .. })
        {
            return InnerFrom::Null;
        }
        if !t.joins.is_empty()
            || !name
                .0
                .first()
                .is_some_and(|p| p.to_string().eq_ignore_ascii_case("pg_catalog"))
        {
            return InnerFrom::Keep;
        }
        let alias = alias
            .as_ref()
            .map(|a| a.name.value.to_ascii_lowercase())
            .unwrap_or_else(|| {
                name.0
                    .last()
                    .map(|p| p.to_string().to_ascii_lowercase())
                    .unwrap_or_default()
            });
        inner.push((alias, name.to_string()));
    }
    InnerFrom::Tables(inner)
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
    use datafusion::sql::sqlparser::ast::Visit;
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
    let _ = e.visit(&mut q);
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
    let _ = e.visit(&mut R(alias, table, key, outer));
    e
}

fn plain_operator(op: &str) -> Option<BinaryOperator> {
    Some(match op {
        "~" => BinaryOperator::PGRegexMatch,
        "~*" => BinaryOperator::PGRegexIMatch,
        "!~" => BinaryOperator::PGRegexNotMatch,
        "!~*" => BinaryOperator::PGRegexNotIMatch,
        "=" => BinaryOperator::Eq,
        "<>" | "!=" => BinaryOperator::NotEq,
        "<" => BinaryOperator::Lt,
        "<=" => BinaryOperator::LtEq,
        ">" => BinaryOperator::Gt,
        ">=" => BinaryOperator::GtEq,
        "||" => BinaryOperator::StringConcat,
        "~~" => return None,
        _ => return None,
    })
}
