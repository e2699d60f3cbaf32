//! Binding `$n` parameters ([`Binder`]): each placeholder replaced by a literal of the parameter's type
//! in the syntax tree (never by text substitution).

// `ErrorInfo` is pgwire's own error message type, which the protocol layer consumes as is; a statement
// fails at most once, so its size on the error path does not matter.
#![allow(clippy::result_large_err)]

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    ArrayElemTypeDef, CastKind, DataType as SqlType, ExactNumberInfo, Expr, Value, ValueWithSpan, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Span, Token, Tokenizer};
use pgwire::api::Type;
use pgwire::error::ErrorInfo;

use super::ast::{number, parse_type, string};
use super::catalog;
use super::errors::{error, state};
use super::{arrays, params};

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

/// `text` with each `$n` placeholder token replaced by the literal of its parameter, as the syntax tree
/// binds it ([`Binder`]); everything else, comments included, stays as written. For statements whose
/// comments matter (`-- @` annotations): a `$1` inside a string, a quoted name or a comment is not a
/// placeholder token and is left alone.
pub(super) fn bind_text(text: &str, params: &[Param]) -> Result<String, ErrorInfo> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize_with_location()
        .map_err(|e| error(state::SYNTAX, e.to_string(), "fix the statement's syntax"))?;
    let mut out = String::with_capacity(text.len() + params.len() * 16);
    let mut last = 0;
    for (i, t) in tokens.iter().enumerate() {
        let Token::Placeholder(p) = &t.token else {
            continue;
        };
        let start = crate::with_clause::offset(text, t.span.start);
        let end = tokens.get(i + 1).map_or(text.len(), |next| {
            crate::with_clause::offset(text, next.span.start)
        });
        let mut expr = Expr::Value(ValueWithSpan {
            value: Value::Placeholder(p.clone()),
            span: Span::empty(),
        });
        let mut binder = Binder { params, error: None };
        // The binder keeps its error in `binder.error`; the visit's `ControlFlow` carries nothing.
        let _ = binder.post_visit_expr(&mut expr);
        if let Some(e) = binder.error {
            return Err(e);
        }
        out.push_str(&text[last..start]);
        out.push_str(&format!("({expr})"));
        last = end;
    }
    out.push_str(&text[last..]);
    Ok(out)
}

/// A parameter as a literal of its type (a string literal when the client gave no type).
/// `$1::regclass` bound to a name (SQLAlchemy's `CAST('pg_catalog.pg_constraint' AS REGCLASS)`): the
/// catalog table's oid, or the number given; an unknown name is 42P01, as in PostgreSQL.
fn regclass(value: &str) -> Result<Expr, ErrorInfo> {
    let oid = match value.trim().parse::<i64>() {
        Ok(oid) => Some(oid),
        Err(_) => catalog::oid_of("regclass", value),
    };
    let oid = oid.ok_or_else(|| {
        error(
            state::UNDEFINED_TABLE,
            format!("relation \"{value}\" does not exist"),
            "a regclass parameter names a pg_catalog table here, or is an oid",
        )
    })?;
    Ok(number(&oid.to_string()))
}

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
    if let Some(element) = arrays::element_type(&param.ty) {
        return array_literal(value, &element, &param.ty);
    }
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
        Type::REGCLASS => regclass(value)?,
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
                // a decimal of the value's own scale: what Describe said (numeric), never a float
                Ok(f) if f.is_finite() => cast(number(v), decimal_type(v).map_err(|e| *e)?),
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

/// Most digits a decimal parameter may have (DataFusion's `Decimal128`).
const DECIMAL_DIGITS: usize = 38;

/// `DECIMAL(38, s)` for a numeric parameter's text, `s` its digits after the point (fewer when the
/// whole value has more than 38 digits). An exponent form gets `DECIMAL(38, 10)`.
fn decimal_type(v: &str) -> Result<SqlType, Box<ErrorInfo>> {
    let digits = v.trim_start_matches(['-', '+']);
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if digits.contains(['e', 'E']) {
        return parse_type("DECIMAL(38, 10)").map_err(|e| Box::new(error(state::INTERNAL, e, "")));
    }
    let int_digits = int_part.trim_start_matches('0').len();
    if int_digits > DECIMAL_DIGITS {
        return Err(Box::new(error(
            state::OUT_OF_RANGE,
            format!(
                "numeric parameter \"{v}\" has {int_digits} digits before the point; this server holds at most {DECIMAL_DIGITS}"
            ),
            "bind a smaller value, or a float8",
        )));
    }
    let scale = frac_part.len().min(DECIMAL_DIGITS - int_digits);
    parse_type(&format!("DECIMAL({DECIMAL_DIGITS}, {scale})"))
        .map_err(|e| Box::new(error(state::INTERNAL, e, "")))
}

/// An array parameter (its text form, `{1,2}`) as `CAST(ARRAY[…] AS element[])`, each element a literal
/// of the element type (integers as plain numbers, which the cast types).
fn array_literal(value: &str, element: &Type, ty: &Type) -> Result<Expr, ErrorInfo> {
    let elements = arrays::parse_text(value).map_err(|refusal| match refusal {
        arrays::Refusal::Malformed(why) => error(
            state::INVALID_TEXT,
            format!("malformed array literal for type {}: {why}", ty.name()),
            "write an array as {1,2,3}, quoting elements with commas, braces or quotes (\"a,b\")",
        ),
        arrays::Refusal::Nested => error(
            state::NOT_SUPPORTED,
            format!("a multidimensional {} parameter is not supported", ty.name()),
            "send a flat list",
        ),
    })?;
    let mut items = Vec::with_capacity(elements.len());
    for value in elements {
        let integer = matches!(*element, Type::INT2 | Type::INT4 | Type::INT8 | Type::OID);
        items.push(match value {
            Some(v) if integer => {
                let v = v.trim();
                v.parse::<i64>().map_err(|_| {
                    error(
                        state::INVALID_TEXT,
                        format!("invalid input syntax for type {}: \"{v}\"", element.name()),
                        format!("bind a valid {} value", element.name()),
                    )
                })?;
                number(v)
            }
            value => literal(&Param {
                value,
                ty: element.clone(),
            })?,
        });
    }
    let array = Expr::Array(datafusion::sql::sqlparser::ast::Array {
        elem: items,
        named: true,
    });
    let Some(data_type) = sql_type(ty) else {
        return Ok(array);
    };
    Ok(Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(array),
        data_type,
        array: false,
        format: None,
    })
}

/// The SQL type a parameter type is cast to (None: leave the literal as it is).
fn sql_type(ty: &Type) -> Option<SqlType> {
    if let Some(element) = arrays::element_type(ty) {
        let inner = sql_type(&element)?;
        return Some(SqlType::Array(ArrayElemTypeDef::SquareBracket(
            Box::new(inner),
            None,
        )));
    }
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
