//! Small builders of sqlparser expressions and types shared by the catalog rewrites and the binder.

use datafusion::sql::sqlparser::ast::{DataType as SqlType, Expr, Value, ValueWithSpan};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Span;

/// A type's name without `pg_catalog.`, lower case.
pub(super) fn type_name(ty: &SqlType) -> String {
    let s = ty.to_string().to_ascii_lowercase();
    s.strip_prefix("pg_catalog.").map(str::to_owned).unwrap_or(s)
}

pub(super) fn is_text_type(ty: &SqlType) -> bool {
    matches!(type_name(ty).as_str(), "text" | "varchar" | "name") || matches!(ty, SqlType::Text)
}

pub(super) fn parse_expr(sql: &str) -> Result<Expr, String> {
    let dialect = PostgreSqlDialect {};
    Parser::new(&dialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| e.to_string())
}

pub(super) fn parse_type(sql: &str) -> Result<SqlType, String> {
    let dialect = PostgreSqlDialect {};
    Parser::new(&dialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_data_type())
        .map_err(|e| e.to_string())
}

pub(super) fn number(n: &str) -> Expr {
    Expr::Value(ValueWithSpan {
        value: Value::Number(n.to_owned(), false),
        span: Span::empty(),
    })
}

pub(super) fn string(s: &str) -> Expr {
    Expr::Value(ValueWithSpan {
        value: Value::SingleQuotedString(s.to_owned()),
        span: Span::empty(),
    })
}
