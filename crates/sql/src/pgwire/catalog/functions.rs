//! The catalog functions PostgreSQL clients call (`format_type`, `pg_table_is_visible`,
//! `current_database()`, `pg_get_userbyid`, …): constants of the connection or simple functions of
//! their first argument.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int32Array, Int64Array, ListBuilder, StringArray, StringBuilder,
    new_null_array,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::exec_err;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

use super::pg_type::type_sql_name;
use super::{Identity, SCHEMA, oid_of};

/// The catalog functions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Func {
    /// A constant text.
    Text(String),
    /// A constant boolean.
    Bool(bool),
    /// A constant int4.
    Int(i32),
    /// NULL text.
    NullText,
    /// The first argument as text.
    FirstArg,
    /// `format_type(oid, typmod)`.
    FormatType,
    /// `format_types(oid[])`: each type's name (what `x::regtype[]` is rewritten to).
    FormatTypes,
    /// `pg_get_userbyid(oid)`.
    UserById(String),
    /// `current_schemas(bool)`.
    CurrentSchemas,
    /// `information_schema._pg_expandarray(array)`: a set-returning function in PostgreSQL, called by
    /// pgjdbc's `getPrimaryKeys`/`getIndexInfo` over `pg_index`, which is empty here; a NULL `(x, n)`.
    ExpandArray,
    /// `quote_ident(text)`.
    QuoteIdent,
    /// `pg_encoding_to_char(int)`.
    Encoding,
    /// `to_regtype(text)`: the type's oid, NULL for a type this server does not have.
    ToRegtype,
    /// `json_in(text)`: the text checked as JSON, in a column sent as `json` (what `x::json` and
    /// `x::jsonb` are rewritten to).
    JsonIn,
    /// `json_build_object(key, value, …)`: a JSON object of the pairs (numbers and booleans as such).
    JsonBuildObject,
    /// `pg_table_size(oid)`, `pg_database_size(name)`, …: NULL bigint (the session's tables have no
    /// PostgreSQL storage to measure; psql's `\dt+` and `\l+` show an empty Size).
    NullSize,
    /// `pg_size_pretty(bigint)`: `123 bytes`, `16 kB`, `3 MB`, … as PostgreSQL rounds them.
    SizePretty,
    /// `pg_get_function_arguments(oid)` / `pg_get_function_result(oid)`: the text of a `pg_proc`
    /// function (by oid, sorted), NULL for another oid.
    ByOid(Vec<(i64, String)>),
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct PgFunction {
    name: &'static str,
    func: Func,
    signature: Signature,
}

pub(super) fn functions(id: &Identity<'_>, pid: i32) -> Vec<PgFunction> {
    let f = |name: &'static str, func: Func| PgFunction {
        name,
        func,
        signature: Signature::one_of(
            vec![
                TypeSignature::Nullary,
                TypeSignature::Any(1),
                TypeSignature::Any(2),
                TypeSignature::Any(3),
            ],
            Volatility::Stable,
        ),
    };
    let mut all = vec![
        f("current_database", Func::Text(id.database.to_owned())),
        f("current_catalog", Func::Text(id.database.to_owned())),
        f("current_schema", Func::Text("public".into())),
        f("current_user", Func::Text(id.user.to_owned())),
        f("session_user", Func::Text(id.user.to_owned())),
        f("user", Func::Text(id.user.to_owned())),
        f("version", Func::Text(version())),
        f("current_schemas", Func::CurrentSchemas),
        f("pg_get_userbyid", Func::UserById(id.user.to_owned())),
        f("format_type", Func::FormatType),
        f("format_types", Func::FormatTypes),
        f("pg_get_expr", Func::FirstArg),
        f("quote_ident", Func::QuoteIdent),
        f("pg_encoding_to_char", Func::Encoding),
        f("pg_backend_pid", Func::Int(pid)),
        f("pg_is_in_recovery", Func::Bool(false)),
        f("pg_relation_is_publishable", Func::Bool(false)),
        f("pg_size_pretty", Func::SizePretty),
        f("_pg_expandarray", Func::ExpandArray),
        f("to_regtype", Func::ToRegtype),
        f("json_in", Func::JsonIn),
        f("pg_get_serial_sequence", Func::NullText),
        PgFunction {
            name: "json_build_object",
            func: Func::JsonBuildObject,
            signature: Signature::one_of(
                vec![TypeSignature::Nullary, TypeSignature::VariadicAny],
                Volatility::Immutable,
            ),
        },
    ];
    for name in [
        "pg_table_is_visible",
        "pg_type_is_visible",
        "pg_function_is_visible",
        "pg_collation_is_visible",
        "has_table_privilege",
        "has_schema_privilege",
        "has_database_privilege",
        "has_column_privilege",
        "has_function_privilege",
        "has_any_column_privilege",
    ] {
        all.push(f(name, Func::Bool(true)));
    }
    for name in [
        "pg_table_size",
        "pg_relation_size",
        "pg_total_relation_size",
        "pg_indexes_size",
        "pg_database_size",
        "pg_tablespace_size",
    ] {
        all.push(f(name, Func::NullSize));
    }
    for name in [
        "obj_description",
        "col_description",
        "shobj_description",
        "pg_get_indexdef",
        "pg_get_constraintdef",
        "pg_get_viewdef",
        "pg_get_triggerdef",
        "pg_get_ruledef",
        "pg_get_partkeydef",
        "pg_get_statisticsobjdef_columns",
        "pg_tablespace_location",
    ] {
        all.push(f(name, Func::NullText));
    }
    all.push(f(
        "pg_get_function_arguments",
        Func::ByOid(id.procs.iter().map(|p| (p.oid, p.arguments.clone())).collect()),
    ));
    all.push(f(
        "pg_get_function_result",
        Func::ByOid(id.procs.iter().map(|p| (p.oid, p.result.clone())).collect()),
    ));
    all
}

/// The row type of `_pg_expandarray`: the element `x` and its 1-based position `n`.
fn expand_array_type() -> DataType {
    DataType::Struct(
        vec![
            Field::new("x", DataType::Int64, true),
            Field::new("n", DataType::Int64, true),
        ]
        .into(),
    )
}

/// A value of `array` (shown as `text`) in JSON: numbers and booleans as such, NULL as null.
fn json_value(array: &ArrayRef, text: Option<String>) -> serde_json::Value {
    use serde_json::Value;
    let Some(text) = text else {
        return Value::Null;
    };
    match array.data_type() {
        DataType::Boolean => Value::Bool(text == "true"),
        t if t.is_numeric() => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        _ => Value::String(text),
    }
}

/// PostgreSQL's `pg_size_pretty`: bytes below 10 kB, then kB, MB, GB, TB, PB, each unit kept while the
/// value is below 10240 of it (half-up rounding).
fn size_pretty(bytes: i64) -> String {
    if bytes.unsigned_abs() < 10 * 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes;
    for unit in ["kB", "MB", "GB", "TB"] {
        // Halve with rounding away from zero, as PostgreSQL's half_rounded.
        let next = value / 512;
        let rounded = if next >= 0 { (next + 1) / 2 } else { (next - 1) / 2 };
        if rounded.unsigned_abs() < 10 * 1024 {
            return format!("{rounded} {unit}");
        }
        value /= 1024;
    }
    let next = value / 512;
    format!("{} PB", if next >= 0 { (next + 1) / 2 } else { (next - 1) / 2 })
}

/// `pg_get_function_arguments` / `pg_get_function_result`: the text of each oid in `texts` (sorted by
/// oid), NULL for another.
fn by_oid(texts: &[(i64, String)], oids: impl Iterator<Item = Option<String>>) -> ArrayRef {
    Arc::new(
        oids.map(|oid| {
            let oid = oid?.parse::<i64>().ok()?;
            let at = texts.binary_search_by_key(&oid, |(o, _)| *o).ok()?;
            texts.get(at).map(|(_, t)| t.clone())
        })
        .collect::<StringArray>(),
    )
}

/// `format_types(oids)`: each row's list of type oids as their names (NULL stays NULL).
fn format_types(oids: Option<&ArrayRef>, rows: usize) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    let list = oids.and_then(|a| a.as_any().downcast_ref::<datafusion::arrow::array::ListArray>());
    for r in 0..rows {
        let Some(list) = list.filter(|l| r < l.len() && !l.is_null(r)) else {
            b.append_null();
            continue;
        };
        let values = list.value(r);
        let cast = datafusion::arrow::compute::cast(&values, &DataType::Int64).ok();
        let ints = cast
            .as_ref()
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>());
        for i in 0..values.len() {
            match ints.filter(|a| !a.is_null(i)).map(|a| a.value(i)) {
                Some(oid) => b
                    .values()
                    .append_value(u32::try_from(oid).map_or_else(|_| oid.to_string(), type_sql_name)),
                None => b.values().append_null(),
            }
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

/// What `version()` returns.
pub(crate) fn version() -> String {
    format!(
        "PostgreSQL 16.0 (rvbbit {}) on DataFusion {}",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION
    )
}

impl ScalarUDFImpl for PgFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.func {
            Func::Bool(_) => DataType::Boolean,
            Func::Int(_) => DataType::Int32,
            Func::CurrentSchemas | Func::FormatTypes => {
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
            }
            Func::ExpandArray => expand_array_type(),
            Func::ToRegtype | Func::NullSize => DataType::Int64,
            _ => DataType::Utf8,
        })
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs<'_>) -> Result<FieldRef> {
        if matches!(self.func, Func::JsonIn | Func::JsonBuildObject) {
            return Ok(Arc::new(crate::result::json_field(self.name)));
        }
        let types: Vec<DataType> = args.arg_fields.iter().map(|f| f.data_type().clone()).collect();
        Ok(Arc::new(Field::new(self.name, self.return_type(&types)?, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let arg_text = |i: usize, row: usize| -> Option<String> {
            let a = arrays.get(i)?;
            // a NullArray (an untyped NULL) has no null buffer: `is_null` says false
            if a.is_null(row) || *a.data_type() == DataType::Null {
                return None;
            }
            let options = datafusion::arrow::util::display::FormatOptions::new();
            datafusion::arrow::util::display::ArrayFormatter::try_new(a.as_ref(), &options)
                .ok()
                .map(|f| f.value(row).to_string())
        };
        let array: ArrayRef = match &self.func {
            Func::Text(s) => Arc::new(StringArray::from(vec![s.as_str(); rows])),
            Func::Bool(b) => Arc::new(BooleanArray::from(vec![*b; rows])),
            Func::Int(i) => Arc::new(Int32Array::from(vec![*i; rows])),
            Func::NullText => Arc::new(StringArray::from(vec![None::<&str>; rows])),
            Func::FirstArg => Arc::new((0..rows).map(|r| arg_text(0, r)).collect::<StringArray>()),
            Func::UserById(user) => Arc::new(
                (0..rows)
                    .map(|r| arg_text(0, r).map(|_| user.clone()))
                    .collect::<StringArray>(),
            ),
            Func::Encoding => Arc::new(StringArray::from(vec!["UTF8"; rows])),
            Func::ToRegtype => Arc::new(
                (0..rows)
                    .map(|r| arg_text(0, r).and_then(|s| oid_of("regtype", &s)))
                    .collect::<Int64Array>(),
            ),
            Func::JsonBuildObject => {
                if arrays.len() % 2 != 0 {
                    return exec_err!("json_build_object takes an even number of arguments (key, value, …)");
                }
                let mut out = StringBuilder::new();
                for r in 0..rows {
                    let mut object = serde_json::Map::new();
                    for (pair, chunk) in arrays.chunks(2).enumerate() {
                        let Some(key) = arg_text(pair * 2, r) else {
                            return exec_err!("json_build_object: a key is NULL");
                        };
                        object.insert(key, json_value(&chunk[1], arg_text(pair * 2 + 1, r)));
                    }
                    out.append_value(serde_json::Value::Object(object).to_string());
                }
                Arc::new(out.finish())
            }
            Func::JsonIn => {
                let mut out = StringBuilder::new();
                for r in 0..rows {
                    match arg_text(0, r) {
                        None => out.append_null(),
                        Some(text) => {
                            if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&text) {
                                return exec_err!("invalid input syntax for type json: {e}");
                            }
                            out.append_value(text);
                        }
                    }
                }
                Arc::new(out.finish())
            }
            Func::ExpandArray => new_null_array(&expand_array_type(), rows),
            Func::ByOid(texts) => by_oid(texts, (0..rows).map(|r| arg_text(0, r))),
            Func::NullSize => new_null_array(&DataType::Int64, rows),
            Func::SizePretty => Arc::new(
                (0..rows)
                    .map(|r| {
                        arg_text(0, r)
                            .and_then(|s| s.parse::<i64>().ok())
                            .map(size_pretty)
                    })
                    .collect::<StringArray>(),
            ),
            Func::QuoteIdent => Arc::new(
                (0..rows)
                    .map(|r| {
                        arg_text(0, r).map(|s| {
                            let plain = s
                                .chars()
                                .next()
                                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                                && s.chars()
                                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                            if plain {
                                s
                            } else {
                                format!("\"{}\"", s.replace('"', "\"\""))
                            }
                        })
                    })
                    .collect::<StringArray>(),
            ),
            Func::FormatType => Arc::new(
                (0..rows)
                    .map(|r| {
                        arg_text(0, r)
                            .and_then(|s| s.parse::<u32>().ok())
                            .map(type_sql_name)
                    })
                    .collect::<StringArray>(),
            ),
            Func::FormatTypes => format_types(arrays.first(), rows),
            Func::CurrentSchemas => {
                let mut b = ListBuilder::new(StringBuilder::new());
                for r in 0..rows {
                    if arg_text(0, r).as_deref() == Some("true") {
                        b.values().append_value(SCHEMA);
                    }
                    b.values().append_value("public");
                    b.append(true);
                }
                Arc::new(b.finish())
            }
        };
        Ok(ColumnarValue::Array(array))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_pretty_rounds_as_postgresql() {
        assert_eq!(size_pretty(10239), "10239 bytes");
        assert_eq!(size_pretty(10240), "10 kB");
        assert_eq!(size_pretty(1_000_000), "977 kB");
        assert_eq!(size_pretty(10 * 1024 * 1024), "10 MB");
        assert_eq!(size_pretty(20 * 1024 * 1024 * 1024), "20 GB");
    }
}
