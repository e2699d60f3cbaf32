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
    Value, ValueWithSpan, VisitorMut,
};

use super::arrays;
use super::ast::{is_text_type, number, parse_expr, parse_type, string, type_name};
use super::catalog;
use super::infer;
use super::subquery;
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
        // x::regtype[] (pgcli's argument types) → format_types(x): the type names, as PostgreSQL's
        // regtype[] prints them
        if let Expr::Cast {
            expr: inner,
            data_type,
            ..
        } = expr
            && type_name(data_type) == "regtype[]"
            && !matches!(inner.as_ref(), Expr::Value(_))
            && let Ok(call) = parse_expr(&format!("format_types({inner})"))
        {
            *expr = call;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &mut datafusion::sql::sqlparser::ast::Query) -> ControlFlow<()> {
        if self.reads_catalog {
            subquery::null_unevaluated(query);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Subquery(_) => subquery::rewrite(expr),
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
            // generate_subscripts(a, dim) beside unnest(a) in a select list (SQLAlchemy's constraint
            // reflection, pgcli's foreign keys): the subscripts 1..n of a one-dimensional array (lower
            // bound 1, as every array here), one row each, in step with unnest(a)
            Expr::Function(f)
                if f.name.0.len() == 1
                    && f.name.to_string().eq_ignore_ascii_case("generate_subscripts")
                    && let datafusion::sql::sqlparser::ast::FunctionArguments::List(list) = &f.args
                    && let [array, dim] = list.args.as_slice() =>
            {
                if let Ok(call) = parse_expr(&format!(
                    "unnest(range(1, CAST(array_length({array}, {dim}) AS BIGINT) + 1))"
                )) {
                    *expr = call;
                }
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
