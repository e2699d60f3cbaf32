//! Binding `$n` parameters ([`Binder`]): each placeholder replaced by a literal of the parameter's type
//! in the syntax tree (never by text substitution).

// `ErrorInfo` is pgwire's own error message type, which the protocol layer consumes as is; a statement
// fails at most once, so its size on the error path does not matter.
#![allow(clippy::result_large_err)]

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    CastKind, DataType as SqlType, ExactNumberInfo, Expr, Value, ValueWithSpan, VisitorMut,
};
use datafusion::sql::sqlparser::tokenizer::Span;
use pgwire::api::Type;
use pgwire::error::ErrorInfo;

use super::ast::{number, parse_type, string};
use super::errors::{error, state};
use super::params;

/// A bound parameter: its text form (None: NULL) and type.
#[derive(Clone, Debug)]
pub(crate) struct Param {
    /// The value as text (binary values are decoded to text first).
    pub(crate) value: Option<String>,
    /// The type the client gave (UNKNOWN when it gave none).
    pub(crate) ty: Type,
}

pub(super) struct Binder<'a> {
    /// The parameters, `$1` first.
    pub(super) params: &'a [Param],
    /// The first parameter that could not be bound.
    pub(super) error: Option<ErrorInfo>,
}

impl VisitorMut for Binder<'_> {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Value(ValueWithSpan {
            value: Value::Placeholder(p),
            ..
        }) = expr
        else {
            return ControlFlow::Continue(());
        };
        let Some(index) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) else {
            self.error = Some(error(
                state::SYNTAX,
                format!("`{p}` is not a parameter; parameters are written $1, $2, …"),
                "number the parameters from $1",
            ));
            return ControlFlow::Break(());
        };
        let Some(param) = index.checked_sub(1).and_then(|i| self.params.get(i)) else {
            self.error = Some(error(
                state::PROTOCOL,
                format!(
                    "there is no parameter ${index}: {} value(s) were bound",
                    self.params.len()
                ),
                "bind one value per $n placeholder",
            ));
            return ControlFlow::Break(());
        };
        match literal(param) {
            Ok(e) => *expr = e,
            Err(e) => {
                self.error = Some(e);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
}

/// A parameter as a literal of its type (a string literal when the client gave no type).
fn literal(param: &Param) -> Result<Expr, ErrorInfo> {
    let cast = |e: Expr, ty: SqlType| Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(e),
        data_type: ty,
        array: false,
        format: None,
    };
    let Some(value) = &param.value else {
        let null = Expr::Value(ValueWithSpan {
            value: Value::Null,
            span: Span::empty(),
        });
        return Ok(match sql_type(&param.ty) {
            Some(ty) => cast(null, ty),
            None => cast(null, SqlType::Text),
        });
    };
    let invalid = |what: &str| {
        error(
            state::INVALID_TEXT,
            format!("invalid input syntax for type {what}: \"{value}\""),
            format!("bind a valid {what} value"),
        )
    };
    Ok(match param.ty {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => {
            value
                .trim()
                .parse::<i64>()
                .map_err(|_| invalid(param.ty.name()))?;
            let ty = sql_type(&param.ty).unwrap_or(SqlType::BigInt(None));
            cast(number(value.trim()), ty)
        }
        Type::FLOAT4 | Type::FLOAT8 => {
            let v = value.trim();
            if v.parse::<f64>().is_err() {
                return Err(invalid(param.ty.name()));
            }
            let ty = sql_type(&param.ty).unwrap_or(SqlType::Text);
            cast(string(v), ty)
        }
        Type::NUMERIC => {
            let v = value.trim();
            match v.parse::<f64>() {
                Ok(f) if f.is_finite() => number(v),
                // NaN and ±Infinity have no decimal form
                Ok(_) => cast(string(v), SqlType::Double(ExactNumberInfo::None)),
                Err(_) => return Err(invalid("numeric")),
            }
        }
        Type::BYTEA => {
            let bytes = params::bytea_from_text(value).ok_or_else(|| invalid("bytea"))?;
            Expr::Value(ValueWithSpan {
                value: Value::HexStringLiteral(hex::encode(bytes)),
                span: Span::empty(),
            })
        }
        Type::DATE => {
            // pgjdbc's setDate adds the client's zone offset (`2024-01-02 +00`), which a date ignores
            let v = params::date_with_offset(value).unwrap_or(value);
            cast(string(v), SqlType::Date)
        }
        Type::UUID => {
            // psycopg sends a UUID's text as 32 hex digits; PostgreSQL shows it hyphenated
            let hex: String = value.chars().filter(|c| !matches!(c, '-' | '{' | '}')).collect();
            if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(invalid("uuid"));
            }
            let h = hex.to_ascii_lowercase();
            string(&format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            ))
        }
        Type::UNKNOWN if params::date_with_offset(value).is_some() => {
            let v = params::date_with_offset(value).unwrap_or(value);
            cast(string(v), SqlType::Date)
        }
        Type::BOOL => {
            let b = match value.trim().to_ascii_lowercase().as_str() {
                "t" | "true" | "1" | "yes" | "on" | "y" => true,
                "f" | "false" | "0" | "no" | "off" | "n" => false,
                _ => return Err(invalid("boolean")),
            };
            Expr::Value(ValueWithSpan {
                value: Value::Boolean(b),
                span: Span::empty(),
            })
        }
        Type::INTERVAL => cast(
            string(&params::interval_text(value)),
            SqlType::Interval {
                fields: None,
                precision: None,
            },
        ),
        Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::TIME => match sql_type(&param.ty) {
            Some(ty) => cast(string(value), ty),
            None => string(value),
        },
        _ => string(value),
    })
}

/// The SQL type a parameter type is cast to (None: leave the literal as it is).
fn sql_type(ty: &Type) -> Option<SqlType> {
    let name = match *ty {
        Type::INT2 => "SMALLINT",
        Type::INT4 => "INT",
        Type::INT8 | Type::OID => "BIGINT",
        Type::FLOAT4 => "REAL",
        Type::FLOAT8 => "DOUBLE",
        Type::BOOL => "BOOLEAN",
        Type::DATE => "DATE",
        Type::TIMESTAMP => "TIMESTAMP",
        Type::TIMESTAMPTZ => "TIMESTAMPTZ",
        Type::TIME => "TIME",
        Type::INTERVAL => "INTERVAL",
        Type::NUMERIC => "DECIMAL(38, 10)",
        Type::BYTEA => "BYTEA",
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::UNKNOWN => "TEXT",
        _ => return None,
    };
    parse_type(name).ok()
}
