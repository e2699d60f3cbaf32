//! The relations and their columns: `pg_class` (one row per table or view, the catalog's own
//! included), `pg_attribute` (one row per column), and the views `pg_tables` and `pg_views`.

use pgwire::api::Type;
use postgres_types::Kind;

use super::super::types::type_len;
use super::table::{Oid, TextArray, catalog_table};
use super::{OWNER, SCHEMA, Snapshot};

catalog_table! {
    /// A row of `pg_class`.
    PgClassRow = "pg_class", oid 1259, rows = class_rows {
        oid: Oid,
        relname: String,
        relnamespace: Oid,
        reltype: Oid,
        reloftype: Oid,
        relowner: Oid,
        relam: Oid,
        relfilenode: Oid,
        reltablespace: Oid,
        relpages: i32,
        reltuples: f32,
        relallvisible: i32,
        reltoastrelid: Oid,
        relhasindex: bool,
        relisshared: bool,
        relpersistence: String,
        relkind: String,
        relnatts: i16,
        relchecks: i16,
        relhasrules: bool,
        relhastriggers: bool,
        relhassubclass: bool,
        relrowsecurity: bool,
        relforcerowsecurity: bool,
        relispopulated: bool,
        relreplident: String,
        relispartition: bool,
        relrewrite: Oid,
        relfrozenxid: Oid,
        relminmxid: Oid,
        relacl: TextArray,
        reloptions: TextArray,
        relpartbound: Option<String>,
    }
}

fn class_rows(s: &Snapshot<'_>) -> Vec<PgClassRow> {
    s.relations
        .iter()
        .map(|r| PgClassRow {
            oid: r.oid,
            relname: r.name.clone(),
            relnamespace: r.schema_oid,
            reltype: 0,
            reloftype: 0,
            relowner: OWNER,
            relam: if r.kind == "r" { 2 } else { 0 },
            relfilenode: r.oid,
            reltablespace: 0,
            relpages: 0,
            reltuples: -1.0,
            relallvisible: 0,
            reltoastrelid: 0,
            relhasindex: false,
            relisshared: false,
            relpersistence: "p".into(),
            relkind: r.kind.into(),
            relnatts: i16::try_from(r.columns.len()).unwrap_or(i16::MAX),
            relchecks: 0,
            relhasrules: false,
            relhastriggers: false,
            relhassubclass: false,
            relrowsecurity: false,
            relforcerowsecurity: false,
            relispopulated: true,
            relreplident: "d".into(),
            relispartition: false,
            relrewrite: 0,
            relfrozenxid: 0,
            relminmxid: 0,
            relacl: None,
            reloptions: None,
            relpartbound: None,
        })
        .collect()
}

catalog_table! {
    /// A row of `pg_attribute`.
    PgAttributeRow = "pg_attribute", oid 1249, rows = attribute_rows {
        attrelid: Oid,
        attname: String,
        atttypid: Oid,
        attstattarget: i32,
        attlen: i16,
        attnum: i16,
        attndims: i32,
        attcacheoff: i32,
        atttypmod: i32,
        attbyval: bool,
        attalign: String,
        attstorage: String,
        attcompression: String,
        attnotnull: bool,
        atthasdef: bool,
        atthasmissing: bool,
        attidentity: String,
        attgenerated: String,
        attisdropped: bool,
        attislocal: bool,
        attinhcount: i32,
        attcollation: Oid,
        attacl: TextArray,
        attoptions: TextArray,
        attfdwoptions: TextArray,
    }
}

fn attribute_rows(s: &Snapshot<'_>) -> Vec<PgAttributeRow> {
    s.relations
        .iter()
        .flat_map(|r| {
            r.columns
                .iter()
                .enumerate()
                .map(move |(i, (name, ty, nullable))| {
                    let len = type_len(ty);
                    PgAttributeRow {
                        attrelid: r.oid,
                        attname: name.clone(),
                        atttypid: i64::from(ty.oid()),
                        attstattarget: -1,
                        attlen: len,
                        attnum: i16::try_from(i + 1).unwrap_or(i16::MAX),
                        attndims: i32::from(matches!(ty.kind(), Kind::Array(_))),
                        attcacheoff: -1,
                        atttypmod: -1,
                        attbyval: len > 0,
                        attalign: if len == 8 { "d" } else { "i" }.into(),
                        attstorage: if len > 0 { "p" } else { "x" }.into(),
                        attcompression: String::new(),
                        attnotnull: !nullable,
                        atthasdef: false,
                        atthasmissing: false,
                        attidentity: String::new(),
                        attgenerated: String::new(),
                        attisdropped: false,
                        attislocal: true,
                        attinhcount: 0,
                        attcollation: if matches!(*ty, Type::TEXT | Type::VARCHAR) {
                            100
                        } else {
                            0
                        },
                        attacl: None,
                        attoptions: None,
                        attfdwoptions: None,
                    }
                })
        })
        .collect()
}

catalog_table! {
    /// A row of the view `pg_tables`: one per ordinary table.
    PgTablesRow = "pg_tables", oid 12_003, rows = tables_rows {
        schemaname: String,
        tablename: String,
        tableowner: String,
        tablespace: Option<String>,
        hasindexes: bool,
        hasrules: bool,
        hastriggers: bool,
        rowsecurity: bool,
    }
}

fn tables_rows(s: &Snapshot<'_>) -> Vec<PgTablesRow> {
    s.relations
        .iter()
        .filter(|r| r.kind == "r")
        .map(|r| PgTablesRow {
            schemaname: r.schema.clone(),
            tablename: r.name.clone(),
            tableowner: s.identity.user.to_owned(),
            tablespace: None,
            hasindexes: false,
            hasrules: false,
            hastriggers: false,
            rowsecurity: false,
        })
        .collect()
}

catalog_table! {
    /// A row of the view `pg_views`: one per view outside `pg_catalog` (no definitions).
    PgViewsRow = "pg_views", oid 12_004, rows = views_rows {
        schemaname: String,
        viewname: String,
        viewowner: String,
        definition: Option<String>,
    }
}

fn views_rows(s: &Snapshot<'_>) -> Vec<PgViewsRow> {
    s.relations
        .iter()
        .filter(|r| r.kind == "v" && r.schema != SCHEMA)
        .map(|r| PgViewsRow {
            schemaname: r.schema.clone(),
            viewname: r.name.clone(),
            viewowner: s.identity.user.to_owned(),
            definition: None,
        })
        .collect()
}
