//! `pg_proc`: the session's semantic SQL functions (built-in and from `cascades/`), so a PostgreSQL
//! client's function listing (psql's `\df`, `SELECT proname FROM pg_proc`) sees them with their
//! argument and result types; `pg_get_function_arguments(oid)` and `pg_get_function_result(oid)` read
//! the same list.

use std::sync::Arc;

use rvbbit_cascade::model::{SqlShape, SqlType};

use super::table::{Oid, OidArray, TextArray, catalog_table};
use super::{PUBLIC_NS, Snapshot};
use crate::semantic::Definition;

/// The first oid of the functions: above the ones the connection gives its schemas and tables.
const FIRST_PROC_OID: i64 = 900_000;
/// `pg_language` oid of `internal`: the functions are not SQL or C.
const LANG_INTERNAL: i64 = 12;

/// One function as `pg_proc` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Proc {
    pub(crate) oid: Oid,
    pub(crate) name: String,
    /// `f` (a function) or `a` (an aggregate).
    pub(crate) kind: &'static str,
    pub(crate) rettype: Oid,
    pub(crate) argtypes: Vec<Oid>,
    pub(crate) argnames: Vec<String>,
    /// `pg_get_function_arguments`: `text text, criterion text`, optional ones with `DEFAULT …`.
    pub(crate) arguments: String,
    /// `pg_get_function_result`: `boolean`.
    pub(crate) result: String,
}

/// The PostgreSQL type (oid, name) of a declared SQL type name (`VARCHAR` when not given).
fn pg_type_of(name: Option<&str>) -> (Oid, &'static str) {
    match name.unwrap_or("VARCHAR").trim().to_ascii_uppercase().as_str() {
        "BOOLEAN" | "BOOL" => (16, "boolean"),
        "INTEGER" | "INT" | "BIGINT" | "INT8" => (20, "bigint"),
        "DOUBLE" | "FLOAT" | "REAL" | "DOUBLE PRECISION" | "FLOAT8" => (701, "double precision"),
        "JSON" | "JSONB" => (114, "json"),
        _ => (25, "text"),
    }
}

fn result_type(returns: SqlType) -> (Oid, &'static str) {
    match returns {
        SqlType::Boolean => (16, "boolean"),
        SqlType::Integer => (20, "bigint"),
        SqlType::Double => (701, "double precision"),
        SqlType::Json => (114, "json"),
        SqlType::Varchar | SqlType::DoubleList | SqlType::Table => (25, "text"),
    }
}

/// The callable functions of `functions` (not PIPELINE stages, nor those this version cannot run),
/// under each name they are called by, sorted by name, with stable oids.
pub(crate) fn procs(functions: &[Arc<Definition>]) -> Vec<Proc> {
    let mut out: Vec<Proc> = Vec::new();
    for d in functions {
        let shape = d.spec.call_shape();
        if d.unsupported.is_some() || shape == SqlShape::Pipeline {
            continue;
        }
        let args: Vec<(String, Oid, String)> = d
            .spec
            .args
            .iter()
            .map(|a| {
                let (oid, pg) = pg_type_of(a.sql_type.as_deref());
                let default = match (&a.optional, &a.default) {
                    (Some(true), Some(serde_json::Value::String(s))) => {
                        format!(" DEFAULT '{}'::text", s.replace('\'', "''"))
                    }
                    (Some(true), Some(v)) => format!(" DEFAULT {v}"),
                    (Some(true), None) => " DEFAULT ''::text".to_owned(),
                    _ => String::new(),
                };
                (a.name.clone(), oid, format!("{} {pg}{default}", a.name))
            })
            .collect();
        let (rettype, result) = result_type(d.returns());
        for name in d.call_names() {
            if out.iter().any(|p| p.name == name) {
                continue;
            }
            out.push(Proc {
                oid: 0,
                name,
                kind: if shape == SqlShape::Aggregate { "a" } else { "f" },
                rettype,
                argtypes: args.iter().map(|a| a.1).collect(),
                argnames: args.iter().map(|a| a.0.clone()).collect(),
                arguments: args.iter().map(|a| a.2.as_str()).collect::<Vec<_>>().join(", "),
                result: result.to_owned(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    for (i, p) in out.iter_mut().enumerate() {
        p.oid = FIRST_PROC_OID + i64::try_from(i).unwrap_or(0);
    }
    out
}

catalog_table! {
    /// A row of `pg_proc`: one per semantic function name.
    PgProcRow = "pg_proc", oid 1255, rows = proc_rows {
        oid: Oid,
        proname: String,
        pronamespace: Oid,
        proowner: Oid,
        prolang: Oid,
        prokind: String,
        prorettype: Oid,
        proargtypes: OidArray,
        proallargtypes: OidArray,
        proargmodes: TextArray,
        proargnames: TextArray,
        proargdefaults: String,
        proretset: bool,
        pronargs: i16,
        pronargdefaults: i16,
        provolatile: String,
        proisstrict: bool,
        prosrc: String,
    }
}

fn proc_rows(snapshot: &Snapshot<'_>) -> Vec<PgProcRow> {
    snapshot
        .identity
        .procs
        .iter()
        .map(|p| PgProcRow {
            oid: p.oid,
            proname: p.name.clone(),
            pronamespace: PUBLIC_NS,
            proowner: super::OWNER,
            prolang: LANG_INTERNAL,
            prokind: p.kind.to_owned(),
            prorettype: p.rettype,
            proargtypes: Some(p.argtypes.clone()),
            proallargtypes: None,
            proargmodes: None,
            proargnames: Some(p.argnames.clone()),
            proargdefaults: String::new(),
            proretset: false,
            pronargs: i16::try_from(p.argtypes.len()).unwrap_or(i16::MAX),
            pronargdefaults: i16::try_from(p.arguments.matches(" DEFAULT ").count()).unwrap_or(0),
            provolatile: "v".to_owned(),
            proisstrict: false,
            prosrc: p.name.clone(),
        })
        .collect()
}
