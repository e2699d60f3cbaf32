//! The types: `pg_type` (one row per type the server sends, arrays included), the empty `pg_enum`,
//! and the type names `format_type` and `'name'::regtype` use.

use pgwire::api::Type;
use postgres_types::Kind;

use super::super::types::type_len;
use super::table::{Oid, TextArray, catalog_table};
use super::{OWNER, PG_CATALOG_NS, Snapshot};

/// The types `pg_type` lists.
pub(super) const TYPE_OIDS: &[u32] = &[
    16, 17, 18, 19, 20, 21, 23, 25, 26, 114, 700, 701, 705, 1042, 1043, 1082, 1083, 1114, 1184, 1186, 1700,
    2950, 3802, 2205, 1000, 1001, 1002, 1003, 1005, 1007, 1009, 1014, 1015, 1016, 1021, 1022, 1028, 1115,
    1182, 1183, 1185, 1187, 1231, 199, 2951, 3807,
];

/// `format_type` names.
pub(super) fn type_sql_name(oid: u32) -> String {
    match oid {
        16 => "boolean".into(),
        20 => "bigint".into(),
        21 => "smallint".into(),
        23 => "integer".into(),
        700 => "real".into(),
        701 => "double precision".into(),
        1043 => "character varying".into(),
        1042 => "character".into(),
        1083 => "time without time zone".into(),
        1114 => "timestamp without time zone".into(),
        1184 => "timestamp with time zone".into(),
        18 => "\"char\"".into(),
        other => match Type::from_oid(other) {
            Some(t) => match t.kind() {
                Kind::Array(e) => format!("{}[]", type_sql_name(e.oid())),
                _ => t.name().to_owned(),
            },
            None => "???".into(),
        },
    }
}

catalog_table! {
    /// A row of `pg_type`.
    PgTypeRow = "pg_type", oid 1247, rows = type_rows {
        oid: Oid,
        typname: String,
        typnamespace: Oid,
        typowner: Oid,
        typlen: i16,
        typbyval: bool,
        typtype: String,
        typcategory: String,
        typispreferred: bool,
        typisdefined: bool,
        typdelim: String,
        typrelid: Oid,
        typsubscript: String,
        typelem: Oid,
        typarray: Oid,
        typinput: String,
        typoutput: String,
        typreceive: String,
        typsend: String,
        typmodin: String,
        typmodout: String,
        typanalyze: String,
        typalign: String,
        typstorage: String,
        typnotnull: bool,
        typbasetype: Oid,
        typtypmod: i32,
        typndims: i32,
        typcollation: Oid,
        typdefaultbin: Option<String>,
        typdefault: Option<String>,
        typacl: TextArray,
    }
}

fn type_rows(_: &Snapshot<'_>) -> Vec<PgTypeRow> {
    let types = || TYPE_OIDS.iter().filter_map(|o| Type::from_oid(*o));
    types()
        .map(|t| {
            let (category, elem) = match t.kind() {
                Kind::Array(e) => ("A", i64::from(e.oid())),
                _ => (category(&t), 0),
            };
            let array = types()
                .find(|a| matches!(a.kind(), Kind::Array(e) if *e == t))
                .map(|a| i64::from(a.oid()))
                .unwrap_or(0);
            let len = type_len(&t);
            let name = t.name();
            PgTypeRow {
                oid: i64::from(t.oid()),
                typname: name.to_owned(),
                typnamespace: PG_CATALOG_NS,
                typowner: OWNER,
                typlen: len,
                typbyval: len > 0 && len <= 8,
                typtype: "b".into(),
                typcategory: category.into(),
                typispreferred: false,
                typisdefined: true,
                typdelim: ",".into(),
                typrelid: 0,
                typsubscript: "-".into(),
                typelem: elem,
                typarray: array,
                typinput: format!("{name}in"),
                typoutput: format!("{name}out"),
                typreceive: format!("{name}recv"),
                typsend: format!("{name}send"),
                typmodin: "-".into(),
                typmodout: "-".into(),
                typanalyze: "-".into(),
                typalign: if len == 8 { "d" } else { "i" }.into(),
                typstorage: if len > 0 { "p" } else { "x" }.into(),
                typnotnull: false,
                typbasetype: 0,
                typtypmod: -1,
                typndims: 0,
                typcollation: if category == "S" { 100 } else { 0 },
                typdefaultbin: None,
                typdefault: None,
                typacl: None,
            }
        })
        .collect()
}

/// The type's `typcategory`.
fn category(t: &Type) -> &'static str {
    match *t {
        Type::BOOL => "B",
        Type::INT2
        | Type::INT4
        | Type::INT8
        | Type::FLOAT4
        | Type::FLOAT8
        | Type::NUMERIC
        | Type::OID
        | Type::REGCLASS => "N",
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::CHAR => "S",
        Type::DATE | Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ => "D",
        Type::INTERVAL => "T",
        Type::UNKNOWN => "X",
        _ => "U",
    }
}

catalog_table! {
    /// A row of `pg_enum` (none: there are no enum types).
    PgEnumRow = "pg_enum", oid 3501 {
        oid: Oid,
        enumtypid: Oid,
        enumsortorder: f32,
        enumlabel: String,
    }
}
