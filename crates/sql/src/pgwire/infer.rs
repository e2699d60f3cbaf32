//! The types of a statement's `$n` parameters, for ParameterDescription and for binding: what the client
//! gave at Parse, else an explicit cast (`$1::int`, `$1::text[]`), else what DataFusion infers from the
//! context (`id = $1`, `INSERT … VALUES ($1)`), else none (sent as `text`, bound as an untyped string).
//!
//! DataFusion infers nothing for `x = ANY($1)` (it plans `array_has($1, x)`), so the statement it plans
//! for inference is a copy with `x op ANY($n)` turned into `x op $n`, and `$n`'s type is the array type
//! of what it infers there.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use datafusion::arrow::datatypes::DataType;
use datafusion::sql::sqlparser::ast::{
    DataType as SqlType, Expr, Statement, Value, ValueWithSpan, VisitMut, VisitorMut,
};
use pgwire::api::Type;

use super::ast::type_name;
use super::types;

/// What the syntax tree says about the parameters, and the statement to plan for the rest.
#[derive(Debug, Default)]
pub(super) struct Hints {
    /// Parameters cast explicitly, by number (`$1` is 1).
    pub(super) casts: BTreeMap<usize, Type>,
    /// Parameters on the right of `ANY`/`ALL` (their type is an array of what is inferred).
    pub(super) arrays: BTreeSet<usize>,
    /// The statement for DataFusion's inference (`ANY($n)` unwrapped).
    pub(super) sql: String,
}

/// Read the casts and `ANY($n)` uses of `statement`; `casts` are those read before the catalog
/// rewrites changed them (`$1::oid[]` is planned as `bigint[]` but described as `oid[]`), and win.
pub(super) fn hints(statement: &Statement, casts: &BTreeMap<usize, Type>) -> Hints {
    let mut copy = statement.clone();
    let mut visitor = HintVisitor {
        casts: casts.clone(),
        ..HintVisitor::default()
    };
    // The visitor never breaks: what it finds is in its fields.
    let _ = copy.visit(&mut visitor);
    Hints {
        casts: visitor.casts,
        arrays: visitor.arrays,
        sql: copy.to_string(),
    }
}

/// The type of each of `count` parameters: `given` (the client's, at Parse) first, then the casts, then
/// `inferred` (DataFusion's, by placeholder id). None: no type is known.
pub(super) fn resolve(
    count: usize,
    given: &[Option<Type>],
    hints: &Hints,
    inferred: &std::collections::HashMap<String, Option<DataType>>,
) -> Vec<Option<Type>> {
    (1..=count.max(given.len()))
        .map(|n| {
            if let Some(ty) = given.get(n - 1).cloned().flatten() {
                return Some(ty);
            }
            if let Some(ty) = hints.casts.get(&n) {
                return Some(ty.clone());
            }
            let data_type = inferred.get(&format!("${n}")).cloned().flatten();
            let element = data_type
                .filter(|dt| *dt != DataType::Null)
                .map(|dt| types::scalar_type(&dt));
            if hints.arrays.contains(&n) {
                return Some(types::array_type(&element.unwrap_or(Type::TEXT)));
            }
            element
        })
        .collect()
}

/// The PostgreSQL type a cast names (None for a type this server does not map).
pub(super) fn pg_type_of(ty: &SqlType) -> Option<Type> {
    if let SqlType::Array(def) = ty {
        use datafusion::sql::sqlparser::ast::ArrayElemTypeDef;
        let inner = match def {
            ArrayElemTypeDef::SquareBracket(inner, _)
            | ArrayElemTypeDef::AngleBracket(inner)
            | ArrayElemTypeDef::Parenthesis(inner) => inner,
            ArrayElemTypeDef::None => return Some(Type::TEXT_ARRAY),
        };
        return pg_type_of(inner).map(|t| types::array_type(&t));
    }
    let name = type_name(ty);
    if let Some(element) = name.strip_suffix("[]") {
        let inner = super::ast::parse_type(element).ok()?;
        return pg_type_of(&inner).map(|t| types::array_type(&t));
    }
    let base = name.split('(').next().unwrap_or_default().trim();
    Some(match base {
        "smallint" | "int2" => Type::INT2,
        "int" | "integer" | "int4" => Type::INT4,
        "bigint" | "int8" => Type::INT8,
        "real" | "float4" => Type::FLOAT4,
        "double" | "double precision" | "float8" | "float" => Type::FLOAT8,
        "bool" | "boolean" => Type::BOOL,
        "text" | "string" | "name" => Type::TEXT,
        "varchar" | "character varying" => Type::VARCHAR,
        "char" | "character" | "bpchar" => Type::BPCHAR,
        "numeric" | "decimal" => Type::NUMERIC,
        "date" => Type::DATE,
        "timestamp" | "timestamp without time zone" => Type::TIMESTAMP,
        "timestamptz" | "timestamp with time zone" => Type::TIMESTAMPTZ,
        "time" | "time without time zone" => Type::TIME,
        "interval" => Type::INTERVAL,
        "bytea" => Type::BYTEA,
        "uuid" => Type::UUID,
        "oid" => Type::OID,
        "regclass" => Type::REGCLASS,
        "json" => Type::JSON,
        "jsonb" => Type::JSONB,
        _ => return None,
    })
}

#[derive(Default)]
struct HintVisitor {
    casts: BTreeMap<usize, Type>,
    arrays: BTreeSet<usize>,
}

/// The number of a `$n` placeholder expression (through parentheses).
pub(super) fn placeholder(expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Nested(inner) => placeholder(inner),
        Expr::Value(ValueWithSpan {
            value: Value::Placeholder(p),
            ..
        }) => p.strip_prefix('$')?.parse().ok(),
        _ => None,
    }
}

impl VisitorMut for HintVisitor {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Cast {
                expr: inner,
                data_type,
                ..
            } => {
                if let (Some(n), Some(ty)) = (placeholder(inner), pg_type_of(data_type)) {
                    self.casts.entry(n).or_insert(ty);
                }
            }
            Expr::AnyOp {
                left,
                compare_op,
                right,
                ..
            }
            | Expr::AllOp {
                left,
                compare_op,
                right,
            } => {
                if let Some(n) = placeholder(right) {
                    self.arrays.insert(n);
                    *expr = Expr::BinaryOp {
                        left: left.clone(),
                        op: compare_op.clone(),
                        right: right.clone(),
                    };
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn hints_of(sql: &str) -> Hints {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        hints(&statement, &BTreeMap::new())
    }

    #[test]
    fn casts_and_any_are_read() {
        let h = hints_of("SELECT $1::int + 1, CAST($2 AS text[]) FROM t WHERE id = ANY($3) AND x = $4");
        assert_eq!(h.casts.get(&1), Some(&Type::INT4));
        assert_eq!(h.casts.get(&2), Some(&Type::TEXT_ARRAY));
        assert!(h.arrays.contains(&3));
        assert!(h.sql.contains("id = $3"), "{}", h.sql);
        let inferred = HashMap::from([
            ("$3".to_owned(), Some(DataType::Int64)),
            ("$4".to_owned(), Some(DataType::Utf8)),
        ]);
        let types = resolve(5, &[None, None, None, None, Some(Type::INT2)], &h, &inferred);
        assert_eq!(
            types,
            vec![
                Some(Type::INT4),
                Some(Type::TEXT_ARRAY),
                Some(Type::INT8_ARRAY),
                Some(Type::TEXT),
                Some(Type::INT2)
            ]
        );
    }

    #[test]
    fn type_names_map() {
        let of = |s: &str| pg_type_of(&super::super::ast::parse_type(s).unwrap());
        assert_eq!(of("double precision"), Some(Type::FLOAT8));
        assert_eq!(of("numeric(10, 2)"), Some(Type::NUMERIC));
        assert_eq!(of("varchar(3)"), Some(Type::VARCHAR));
        assert_eq!(of("timestamp with time zone"), Some(Type::TIMESTAMPTZ));
        assert_eq!(of("integer[]"), Some(Type::INT4_ARRAY));
        assert_eq!(of("mystery"), None);
    }
}
