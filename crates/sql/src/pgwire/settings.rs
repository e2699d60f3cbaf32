//! `current_setting(name [, missing_ok])` and `set_config(name, value, is_local)`, which clients call
//! (asyncpg before its type introspection, ORMs reading `search_path`): the connection answers them
//! from the parameters `SET` and `SHOW` use, by replacing each call with its value in the statement's
//! tree before it is bound ([`substitute`]); the `set_config` assignments are returned for the
//! connection to apply when the statement runs.

// `ErrorInfo` is pgwire's own error message type (see bind.rs).
#![allow(clippy::result_large_err)]

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    CastKind, DataType as SqlType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments,
    Statement, Value, ValueWithSpan, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::tokenizer::Span;
use pgwire::error::ErrorInfo;

use super::ast::string;
use super::errors::{error, state};

/// Whether a statement's text may call the setting functions (a cheap test before [`substitute`]).
pub(super) fn calls_settings(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("current_setting") || lower.contains("set_config")
}

/// Replace the setting calls of `statement` by their values: `lookup` reads a setting by its lower-case
/// name (None: unknown). Returns the `(name, value)` pairs its `set_config` calls assign.
///
/// Errors: 42704 for an unknown setting without `missing_ok`; 0A000 for an argument that is not a
/// literal.
pub(super) fn substitute(
    statement: &mut Statement,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, ErrorInfo> {
    let mut visitor = Calls {
        lookup,
        sets: Vec::new(),
        error: None,
    };
    // The visitor keeps its error in `visitor.error`; the visit's `ControlFlow` carries nothing.
    let _ = statement.visit(&mut visitor);
    match visitor.error {
        Some(e) => Err(e),
        None => Ok(visitor.sets),
    }
}

struct Calls<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    sets: Vec<(String, String)>,
    error: Option<ErrorInfo>,
}

/// A literal argument: a string, a boolean or NULL (None for anything else).
enum Literal {
    Text(String),
    Bool(bool),
    Null,
}

fn literal(arg: &FunctionArg) -> Option<Literal> {
    let FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) = arg else {
        return None;
    };
    // A bound parameter arrives cast to its type (SQLAlchemy's `current_setting($1::VARCHAR)`).
    let mut expr = expr;
    while let Expr::Cast { expr: inner, .. } | Expr::Nested(inner) = expr {
        expr = inner;
    }
    let Expr::Value(ValueWithSpan { value, .. }) = expr else {
        return None;
    };
    match value {
        Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Some(Literal::Text(s.clone())),
        Value::Boolean(b) => Some(Literal::Bool(*b)),
        Value::Null => Some(Literal::Null),
        _ => None,
    }
}

fn unrecognized(name: &str) -> ErrorInfo {
    error(
        state::UNDEFINED_OBJECT,
        format!("unrecognized configuration parameter \"{name}\""),
        "SHOW ALL lists the parameters",
    )
}

impl Calls<'_> {
    /// The value replacing a call of `function` with `args`.
    fn answer(&mut self, function: &str, args: &[FunctionArg]) -> Result<Expr, ErrorInfo> {
        let literals: Option<Vec<Literal>> = args.iter().map(literal).collect();
        let not_literal = || {
            error(
                state::NOT_SUPPORTED,
                format!("{function}(…) takes literal arguments here"),
                format!("write the setting's name as a string: {function}('search_path'…)"),
            )
        };
        let literals = literals.ok_or_else(not_literal)?;
        match (function, literals.as_slice()) {
            ("current_setting", [Literal::Text(name)]) => self.current(name, false),
            ("current_setting", [Literal::Text(name), Literal::Bool(missing_ok)]) => {
                self.current(name, *missing_ok)
            }
            ("set_config", [Literal::Text(name), value, Literal::Bool(_)]) => {
                let value = match value {
                    Literal::Text(v) => v.clone(),
                    Literal::Null => String::new(),
                    Literal::Bool(_) => return Err(not_literal()),
                };
                self.sets.push((name.to_ascii_lowercase(), value.clone()));
                Ok(string(&value))
            }
            _ => Err(error(
                state::UNDEFINED_FUNCTION,
                format!("{function} does not take these arguments"),
                "current_setting(name [, missing_ok]) and set_config(name, value, is_local)",
            )),
        }
    }

    fn current(&self, name: &str, missing_ok: bool) -> Result<Expr, ErrorInfo> {
        match (self.lookup)(&name.to_ascii_lowercase()) {
            Some(v) => Ok(string(&v)),
            None if missing_ok => Ok(Expr::Cast {
                kind: CastKind::Cast,
                expr: Box::new(Expr::Value(ValueWithSpan {
                    value: Value::Null,
                    span: Span::empty(),
                })),
                data_type: SqlType::Text,
                array: false,
                format: None,
            }),
            None => Err(unrecognized(name)),
        }
    }
}

impl VisitorMut for Calls<'_> {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Function(Function {
            name,
            args: FunctionArguments::List(list),
            ..
        }) = expr
        else {
            return ControlFlow::Continue(());
        };
        let Some(last) = name.0.last() else {
            return ControlFlow::Continue(());
        };
        let function = last.to_string().to_ascii_lowercase();
        if !matches!(function.as_str(), "current_setting" | "set_config") {
            return ControlFlow::Continue(());
        }
        match self.answer(&function, &list.args) {
            Ok(value) => *expr = value,
            Err(e) => {
                self.error = Some(e);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn run(sql: &str) -> Result<(String, Vec<(String, String)>), ErrorInfo> {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        let lookup = |name: &str| (name == "search_path").then(|| "public".to_owned());
        let sets = substitute(&mut statement, &lookup)?;
        Ok((statement.to_string(), sets))
    }

    #[test]
    fn setting_calls_become_values() {
        let (sql, sets) =
            run("SELECT current_setting('search_path') AS a, set_config('jit', 'off', false) AS b").unwrap();
        assert_eq!(sql, "SELECT 'public' AS a, 'off' AS b");
        assert_eq!(sets, vec![("jit".to_owned(), "off".to_owned())]);
        let (sql, _) = run("SELECT pg_catalog.current_setting('nope', true)").unwrap();
        assert_eq!(sql, "SELECT CAST(NULL AS TEXT)");
        assert!(calls_settings("select CURRENT_SETTING('x')"));
        assert!(!calls_settings("select 1"));
    }

    #[test]
    fn bad_setting_calls_are_refused() {
        assert_eq!(run("SELECT current_setting('jit')").unwrap_err().code, "42704");
        assert_eq!(
            run("SELECT current_setting(name) FROM t").unwrap_err().code,
            "0A000"
        );
        assert_eq!(run("SELECT set_config('a', 'b')").unwrap_err().code, "42883");
    }
}
