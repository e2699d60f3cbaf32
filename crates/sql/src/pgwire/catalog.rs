//! A `pg_catalog` schema for PostgreSQL clients (psql `\d`, JDBC/psycopg metadata, DBeaver): tables
//! rebuilt from the session's DataFusion catalog before each statement that reads them, and the
//! catalog functions (`format_type`, `pg_table_is_visible`, `current_database()`, …).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int32Array, ListBuilder, StringArray, StringBuilder, new_null_array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemTable, MemorySchemaProvider};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TableType, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;
use pgwire::api::Type;
use postgres_types::Kind;

use super::types::{pg_type, type_len};

/// The schema name.
pub(crate) const SCHEMA: &str = "pg_catalog";
const PG_CATALOG_NS: i64 = 11;
const PUBLIC_NS: i64 = 2200;
const INFORMATION_SCHEMA_NS: i64 = 13_000;
/// The one role: the connected user.
pub(crate) const OWNER: i64 = 10;
/// The database's oid.
const DATABASE_OID: i64 = 5;
/// First oid of user objects (as in PostgreSQL).
const FIRST_USER_OID: i64 = 16_384;

/// Column types of catalog tables.
#[derive(Clone, Copy)]
enum T {
    Oid,
    Text,
    Bool,
    I2,
    I4,
    F4,
    TextArray,
    /// int2vector / int2[] (`pg_index.indkey`, `indoption`)
    I2Array,
}

impl T {
    fn arrow(self) -> DataType {
        match self {
            T::Oid => DataType::Int64,
            T::Text => DataType::Utf8,
            T::Bool => DataType::Boolean,
            T::I2 => DataType::Int16,
            T::I4 => DataType::Int32,
            T::F4 => DataType::Float32,
            T::TextArray => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            T::I2Array => DataType::List(Arc::new(Field::new("item", DataType::Int16, true))),
        }
    }
}

/// A catalog table: name, oid and columns.
struct Table {
    name: &'static str,
    oid: i64,
    columns: &'static [(&'static str, T)],
}

use T::{Bool as B, F4, I2, I2Array as I2A, I4, Oid as O, Text as X, TextArray as XA};

static TABLES: &[Table] = &[
    Table {
        name: "pg_namespace",
        oid: 2615,
        columns: &[("oid", O), ("nspname", X), ("nspowner", O), ("nspacl", XA)],
    },
    Table {
        name: "pg_class",
        oid: 1259,
        columns: &[
            ("oid", O),
            ("relname", X),
            ("relnamespace", O),
            ("reltype", O),
            ("reloftype", O),
            ("relowner", O),
            ("relam", O),
            ("relfilenode", O),
            ("reltablespace", O),
            ("relpages", I4),
            ("reltuples", F4),
            ("relallvisible", I4),
            ("reltoastrelid", O),
            ("relhasindex", B),
            ("relisshared", B),
            ("relpersistence", X),
            ("relkind", X),
            ("relnatts", I2),
            ("relchecks", I2),
            ("relhasrules", B),
            ("relhastriggers", B),
            ("relhassubclass", B),
            ("relrowsecurity", B),
            ("relforcerowsecurity", B),
            ("relispopulated", B),
            ("relreplident", X),
            ("relispartition", B),
            ("relrewrite", O),
            ("relfrozenxid", O),
            ("relminmxid", O),
            ("relacl", XA),
            ("reloptions", XA),
            ("relpartbound", X),
        ],
    },
    Table {
        name: "pg_attribute",
        oid: 1249,
        columns: &[
            ("attrelid", O),
            ("attname", X),
            ("atttypid", O),
            ("attstattarget", I4),
            ("attlen", I2),
            ("attnum", I2),
            ("attndims", I4),
            ("attcacheoff", I4),
            ("atttypmod", I4),
            ("attbyval", B),
            ("attalign", X),
            ("attstorage", X),
            ("attcompression", X),
            ("attnotnull", B),
            ("atthasdef", B),
            ("atthasmissing", B),
            ("attidentity", X),
            ("attgenerated", X),
            ("attisdropped", B),
            ("attislocal", B),
            ("attinhcount", I4),
            ("attcollation", O),
            ("attacl", XA),
            ("attoptions", XA),
            ("attfdwoptions", XA),
        ],
    },
    Table {
        name: "pg_type",
        oid: 1247,
        columns: &[
            ("oid", O),
            ("typname", X),
            ("typnamespace", O),
            ("typowner", O),
            ("typlen", I2),
            ("typbyval", B),
            ("typtype", X),
            ("typcategory", X),
            ("typispreferred", B),
            ("typisdefined", B),
            ("typdelim", X),
            ("typrelid", O),
            ("typsubscript", X),
            ("typelem", O),
            ("typarray", O),
            ("typinput", X),
            ("typoutput", X),
            ("typreceive", X),
            ("typsend", X),
            ("typmodin", X),
            ("typmodout", X),
            ("typanalyze", X),
            ("typalign", X),
            ("typstorage", X),
            ("typnotnull", B),
            ("typbasetype", O),
            ("typtypmod", I4),
            ("typndims", I4),
            ("typcollation", O),
            ("typdefaultbin", X),
            ("typdefault", X),
            ("typacl", XA),
        ],
    },
    Table {
        name: "pg_database",
        oid: 1262,
        columns: &[
            ("oid", O),
            ("datname", X),
            ("datdba", O),
            ("encoding", I4),
            ("datlocprovider", X),
            ("datistemplate", B),
            ("datallowconn", B),
            ("datconnlimit", I4),
            ("datfrozenxid", O),
            ("datminmxid", O),
            ("dattablespace", O),
            ("datcollate", X),
            ("datctype", X),
            ("daticulocale", X),
            ("datcollversion", X),
            ("datacl", XA),
        ],
    },
    Table {
        name: "pg_roles",
        oid: 1260,
        columns: &[
            ("oid", O),
            ("rolname", X),
            ("rolsuper", B),
            ("rolinherit", B),
            ("rolcreaterole", B),
            ("rolcreatedb", B),
            ("rolcanlogin", B),
            ("rolreplication", B),
            ("rolconnlimit", I4),
            ("rolpassword", X),
            ("rolvaliduntil", X),
            ("rolbypassrls", B),
            ("rolconfig", XA),
        ],
    },
    Table {
        name: "pg_user",
        oid: 12_001,
        columns: &[
            ("usename", X),
            ("usesysid", O),
            ("usecreatedb", B),
            ("usesuper", B),
            ("userepl", B),
            ("usebypassrls", B),
            ("passwd", X),
            ("valuntil", X),
            ("useconfig", XA),
        ],
    },
    Table {
        name: "pg_am",
        oid: 2601,
        columns: &[("oid", O), ("amname", X), ("amhandler", X), ("amtype", X)],
    },
    Table {
        name: "pg_attrdef",
        oid: 2604,
        columns: &[("oid", O), ("adrelid", O), ("adnum", I2), ("adbin", X)],
    },
    Table {
        name: "pg_index",
        oid: 2610,
        columns: &[
            ("indexrelid", O),
            ("indrelid", O),
            ("indnatts", I2),
            ("indnkeyatts", I2),
            ("indisunique", B),
            ("indnullsnotdistinct", B),
            ("indisprimary", B),
            ("indisexclusion", B),
            ("indimmediate", B),
            ("indisclustered", B),
            ("indisvalid", B),
            ("indcheckxmin", B),
            ("indisready", B),
            ("indislive", B),
            ("indisreplident", B),
            ("indkey", I2A),
            ("indcollation", X),
            ("indclass", X),
            ("indoption", I2A),
            ("indexprs", X),
            ("indpred", X),
        ],
    },
    Table {
        name: "pg_constraint",
        oid: 2606,
        columns: &[
            ("oid", O),
            ("conname", X),
            ("connamespace", O),
            ("contype", X),
            ("condeferrable", B),
            ("condeferred", B),
            ("convalidated", B),
            ("conrelid", O),
            ("contypid", O),
            ("conindid", O),
            ("conparentid", O),
            ("confrelid", O),
            ("confupdtype", X),
            ("confdeltype", X),
            ("confmatchtype", X),
            ("conislocal", B),
            ("coninhcount", I4),
            ("connoinherit", B),
            ("conkey", XA),
            ("confkey", XA),
            ("conbin", X),
        ],
    },
    Table {
        name: "pg_inherits",
        oid: 2611,
        columns: &[
            ("inhrelid", O),
            ("inhparent", O),
            ("inhseqno", I4),
            ("inhdetachpending", B),
        ],
    },
    Table {
        name: "pg_description",
        oid: 2609,
        columns: &[
            ("objoid", O),
            ("classoid", O),
            ("objsubid", I4),
            ("description", X),
        ],
    },
    Table {
        name: "pg_shdescription",
        oid: 2396,
        columns: &[("objoid", O), ("classoid", O), ("description", X)],
    },
    Table {
        name: "pg_collation",
        oid: 3456,
        columns: &[
            ("oid", O),
            ("collname", X),
            ("collnamespace", O),
            ("collowner", O),
            ("collprovider", X),
            ("collisdeterministic", B),
            ("collencoding", I4),
            ("collcollate", X),
            ("collctype", X),
        ],
    },
    Table {
        name: "pg_proc",
        oid: 1255,
        columns: &[
            ("oid", O),
            ("proname", X),
            ("pronamespace", O),
            ("proowner", O),
            ("prolang", O),
            ("prokind", X),
            ("prorettype", O),
            ("proargtypes", X),
            ("proargnames", XA),
            ("proretset", B),
        ],
    },
    Table {
        name: "pg_settings",
        oid: 12_002,
        columns: &[
            ("name", X),
            ("setting", X),
            ("unit", X),
            ("category", X),
            ("short_desc", X),
            ("extra_desc", X),
            ("context", X),
            ("vartype", X),
            ("source", X),
            ("min_val", X),
            ("max_val", X),
            ("enumvals", XA),
            ("boot_val", X),
            ("reset_val", X),
            ("pending_restart", B),
        ],
    },
    Table {
        name: "pg_tables",
        oid: 12_003,
        columns: &[
            ("schemaname", X),
            ("tablename", X),
            ("tableowner", X),
            ("tablespace", X),
            ("hasindexes", B),
            ("hasrules", B),
            ("hastriggers", B),
            ("rowsecurity", B),
        ],
    },
    Table {
        name: "pg_views",
        oid: 12_004,
        columns: &[
            ("schemaname", X),
            ("viewname", X),
            ("viewowner", X),
            ("definition", X),
        ],
    },
    Table {
        name: "pg_tablespace",
        oid: 1213,
        columns: &[
            ("oid", O),
            ("spcname", X),
            ("spcowner", O),
            ("spcacl", XA),
            ("spcoptions", XA),
        ],
    },
    Table {
        name: "pg_policy",
        oid: 3256,
        columns: &[
            ("oid", O),
            ("polname", X),
            ("polrelid", O),
            ("polcmd", X),
            ("polpermissive", B),
            ("polroles", X),
            ("polqual", X),
            ("polwithcheck", X),
        ],
    },
    Table {
        name: "pg_statistic_ext",
        oid: 3381,
        columns: &[
            ("oid", O),
            ("stxrelid", O),
            ("stxname", X),
            ("stxnamespace", O),
            ("stxowner", O),
            ("stxstattarget", I4),
            ("stxkeys", X),
            ("stxkind", XA),
        ],
    },
    Table {
        name: "pg_publication",
        oid: 6104,
        columns: &[
            ("oid", O),
            ("pubname", X),
            ("pubowner", O),
            ("puballtables", B),
            ("pubinsert", B),
            ("pubupdate", B),
            ("pubdelete", B),
            ("pubtruncate", B),
            ("pubviaroot", B),
        ],
    },
    Table {
        name: "pg_publication_rel",
        oid: 6106,
        columns: &[
            ("oid", O),
            ("prpubid", O),
            ("prrelid", O),
            ("prqual", X),
            ("prattrs", X),
        ],
    },
    Table {
        name: "pg_publication_namespace",
        oid: 6237,
        columns: &[("oid", O), ("pnpubid", O), ("pnnspid", O)],
    },
    Table {
        name: "pg_trigger",
        oid: 2620,
        columns: &[
            ("oid", O),
            ("tgrelid", O),
            ("tgparentid", O),
            ("tgname", X),
            ("tgfoid", O),
            ("tgtype", I2),
            ("tgenabled", X),
            ("tgisinternal", B),
            ("tgconstrrelid", O),
            ("tgconstrindid", O),
            ("tgconstraint", O),
            ("tgdeferrable", B),
            ("tginitdeferred", B),
            ("tgnargs", I2),
            ("tgattr", X),
            ("tgargs", X),
            ("tgqual", X),
            ("tgoldtable", X),
            ("tgnewtable", X),
        ],
    },
    Table {
        name: "pg_rewrite",
        oid: 2618,
        columns: &[
            ("oid", O),
            ("rulename", X),
            ("ev_class", O),
            ("ev_type", X),
            ("ev_enabled", X),
            ("is_instead", B),
            ("ev_qual", X),
            ("ev_action", X),
        ],
    },
    Table {
        name: "pg_foreign_table",
        oid: 3118,
        columns: &[("ftrelid", O), ("ftserver", O), ("ftoptions", XA)],
    },
    Table {
        name: "pg_partitioned_table",
        oid: 3350,
        columns: &[
            ("partrelid", O),
            ("partstrat", X),
            ("partnatts", I2),
            ("partdefid", O),
            ("partattrs", X),
            ("partclass", X),
            ("partcollation", X),
            ("partexprs", X),
        ],
    },
    Table {
        name: "pg_extension",
        oid: 3079,
        columns: &[
            ("oid", O),
            ("extname", X),
            ("extowner", O),
            ("extnamespace", O),
            ("extrelocatable", B),
            ("extversion", X),
            ("extconfig", XA),
            ("extcondition", XA),
        ],
    },
    Table {
        name: "pg_event_trigger",
        oid: 3466,
        columns: &[
            ("oid", O),
            ("evtname", X),
            ("evtevent", X),
            ("evtowner", O),
            ("evtfoid", O),
            ("evtenabled", X),
            ("evttags", XA),
        ],
    },
    Table {
        name: "pg_depend",
        oid: 2608,
        columns: &[
            ("classid", O),
            ("objid", O),
            ("objsubid", I4),
            ("refclassid", O),
            ("refobjid", O),
            ("refobjsubid", I4),
            ("deptype", X),
        ],
    },
    Table {
        name: "pg_sequence",
        oid: 2224,
        columns: &[
            ("seqrelid", O),
            ("seqtypid", O),
            ("seqstart", O),
            ("seqincrement", O),
            ("seqcycle", B),
        ],
    },
    Table {
        name: "pg_enum",
        oid: 3501,
        columns: &[
            ("oid", O),
            ("enumtypid", O),
            ("enumsortorder", F4),
            ("enumlabel", X),
        ],
    },
    Table {
        name: "pg_auth_members",
        oid: 1261,
        columns: &[("roleid", O), ("member", O), ("grantor", O), ("admin_option", B)],
    },
    Table {
        name: "pg_stat_activity",
        oid: 12_005,
        columns: &[
            ("datid", O),
            ("datname", X),
            ("pid", I4),
            ("usesysid", O),
            ("usename", X),
            ("application_name", X),
            ("client_addr", X),
            ("state", X),
            ("query", X),
        ],
    },
];

/// Whether a bare table name is a catalog table (PostgreSQL searches `pg_catalog` first).
pub(crate) fn is_catalog_table(name: &str) -> bool {
    TABLES.iter().any(|t| t.name == name)
}

/// The oid a `'name'::regclass` / `'name'::regtype` literal stands for (catalog tables and types).
pub(crate) fn oid_of(kind: &str, name: &str) -> Option<i64> {
    let name = name.trim().trim_matches('"').to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    match kind {
        "regclass" => TABLES.iter().find(|t| t.name == name).map(|t| t.oid),
        "regtype" => TYPE_OIDS
            .iter()
            .filter_map(|oid| Type::from_oid(*oid))
            .find(|t| t.name() == name || type_sql_name(t.oid()) == name)
            .map(|t| i64::from(t.oid())),
        "regnamespace" => match name {
            "pg_catalog" => Some(PG_CATALOG_NS),
            "public" => Some(PUBLIC_NS),
            _ => None,
        },
        _ => None,
    }
}

/// The types `pg_type` lists.
const TYPE_OIDS: &[u32] = &[
    16, 17, 18, 19, 20, 21, 23, 25, 26, 114, 700, 701, 705, 1042, 1043, 1082, 1083, 1114, 1184, 1186, 1700,
    2950, 3802, 2205, 1000, 1001, 1002, 1003, 1005, 1007, 1009, 1014, 1015, 1016, 1021, 1022, 1028, 1115,
    1182, 1183, 1185, 1187, 1231, 199, 2951, 3807,
];

/// `format_type` names.
fn type_sql_name(oid: u32) -> String {
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

/// One relation of the snapshot.
struct Relation {
    oid: i64,
    schema_oid: i64,
    schema: String,
    name: String,
    kind: &'static str,
    columns: Vec<(String, Type, bool)>,
}

/// Per-connection catalog state: stable oids for the session's schemas and tables.
#[derive(Debug, Default)]
pub(crate) struct CatalogState {
    oids: Mutex<HashMap<String, i64>>,
}

impl CatalogState {
    fn oid(&self, key: &str) -> i64 {
        let mut oids = self.oids.lock().unwrap_or_else(|p| p.into_inner());
        let next = FIRST_USER_OID + i64::try_from(oids.len()).unwrap_or(0);
        *oids.entry(key.to_owned()).or_insert(next)
    }
}

/// What the connection tells the catalog.
pub(crate) struct Identity<'a> {
    /// The database name the client connected to.
    pub(crate) database: &'a str,
    /// The user name.
    pub(crate) user: &'a str,
    /// PostgreSQL parameters (name, value) for `pg_settings`.
    pub(crate) settings: Vec<(String, String)>,
}

/// Register the empty `pg_catalog` schema and the catalog functions in a fresh session.
pub(crate) fn install(ctx: &SessionContext, identity: &Identity<'_>, pid: i32) -> Result<()> {
    let catalog_name = ctx.state().config().options().catalog.default_catalog.clone();
    let catalog = ctx
        .catalog(&catalog_name)
        .ok_or_else(|| DataFusionError::Plan(format!("no catalog {catalog_name}")))?;
    catalog.register_schema(SCHEMA, Arc::new(MemorySchemaProvider::new()))?;
    for f in functions(identity, pid) {
        ctx.register_udf(ScalarUDF::new_from_impl(f));
    }
    Ok(())
}

/// Rebuild every `pg_catalog` table from the session's current catalog.
pub(crate) async fn refresh(
    ctx: &SessionContext,
    state: &CatalogState,
    identity: &Identity<'_>,
) -> Result<()> {
    let catalog_name = ctx.state().config().options().catalog.default_catalog.clone();
    let catalog = ctx
        .catalog(&catalog_name)
        .ok_or_else(|| DataFusionError::Plan(format!("no catalog {catalog_name}")))?;
    let Some(pg) = catalog.schema(SCHEMA) else {
        return Ok(());
    };
    // The snapshot: user schemas and tables, then the catalog's own tables.
    let mut namespaces: Vec<(i64, String)> = vec![
        (PG_CATALOG_NS, SCHEMA.to_owned()),
        (PUBLIC_NS, "public".to_owned()),
        (INFORMATION_SCHEMA_NS, "information_schema".to_owned()),
    ];
    let mut relations = Vec::new();
    let mut schema_names = catalog.schema_names();
    schema_names.sort();
    for schema_name in schema_names {
        if schema_name == SCHEMA {
            continue;
        }
        let schema_oid = match schema_name.as_str() {
            "public" => PUBLIC_NS,
            "information_schema" => INFORMATION_SCHEMA_NS,
            other => {
                let oid = state.oid(&format!("schema:{other}"));
                namespaces.push((oid, other.to_owned()));
                oid
            }
        };
        let Some(schema) = catalog.schema(&schema_name) else {
            continue;
        };
        let mut names = schema.table_names();
        names.sort();
        for name in names {
            let Ok(Some(table)) = schema.table(&name).await else {
                continue;
            };
            let kind = match table.table_type() {
                TableType::View => "v",
                _ if schema_name == "information_schema" => "v",
                _ => "r",
            };
            let columns = table
                .schema()
                .fields()
                .iter()
                .map(|f| (f.name().clone(), pg_type(f), f.is_nullable()))
                .collect();
            relations.push(Relation {
                oid: state.oid(&format!("{schema_name}.{name}")),
                schema_oid,
                schema: schema_name.clone(),
                name,
                kind,
                columns,
            });
        }
    }
    for t in TABLES {
        relations.push(Relation {
            oid: t.oid,
            schema_oid: PG_CATALOG_NS,
            schema: SCHEMA.to_owned(),
            name: t.name.to_owned(),
            kind: if t.name.starts_with("pg_stat")
                || matches!(
                    t.name,
                    "pg_roles" | "pg_user" | "pg_settings" | "pg_tables" | "pg_views"
                ) {
                "v"
            } else {
                "r"
            },
            columns: t
                .columns
                .iter()
                .map(|(n, ty)| ((*n).to_owned(), pg_type(&Field::new(*n, ty.arrow(), true)), true))
                .collect(),
        });
    }
    for t in TABLES {
        let rows = rows(t.name, &namespaces, &relations, identity);
        let table = build(t, rows)?;
        pg.deregister_table(t.name)?;
        pg.register_table(t.name.to_owned(), Arc::new(table))?;
    }
    Ok(())
}

/// A row: one value per column, in the table's column order (missing trailing values are NULL).
type Row = Vec<ScalarValue>;

fn text(s: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(s.to_owned()))
}
fn oid(v: i64) -> ScalarValue {
    ScalarValue::Int64(Some(v))
}
fn boolean(b: bool) -> ScalarValue {
    ScalarValue::Boolean(Some(b))
}
fn i2(v: i16) -> ScalarValue {
    ScalarValue::Int16(Some(v))
}
fn i4(v: i32) -> ScalarValue {
    ScalarValue::Int32(Some(v))
}
fn null() -> ScalarValue {
    ScalarValue::Null
}

fn rows(table: &str, namespaces: &[(i64, String)], relations: &[Relation], id: &Identity<'_>) -> Vec<Row> {
    match table {
        "pg_namespace" => namespaces
            .iter()
            .map(|(o, n)| vec![oid(*o), text(n), oid(OWNER), null()])
            .collect(),
        "pg_class" => relations
            .iter()
            .map(|r| {
                vec![
                    oid(r.oid),
                    text(&r.name),
                    oid(r.schema_oid),
                    oid(0),
                    oid(0),
                    oid(OWNER),
                    oid(if r.kind == "r" { 2 } else { 0 }),
                    oid(r.oid),
                    oid(0),
                    i4(0),
                    ScalarValue::Float32(Some(-1.0)),
                    i4(0),
                    oid(0),
                    boolean(false),
                    boolean(false),
                    text("p"),
                    text(r.kind),
                    i2(i16::try_from(r.columns.len()).unwrap_or(i16::MAX)),
                    i2(0),
                    boolean(false),
                    boolean(false),
                    boolean(false),
                    boolean(false),
                    boolean(false),
                    boolean(true),
                    text("d"),
                    boolean(false),
                    oid(0),
                    oid(0),
                    oid(0),
                ]
            })
            .collect(),
        "pg_attribute" => relations
            .iter()
            .flat_map(|r| {
                r.columns
                    .iter()
                    .enumerate()
                    .map(move |(i, (name, ty, nullable))| {
                        let len = type_len(ty);
                        vec![
                            oid(r.oid),
                            text(name),
                            oid(i64::from(ty.oid())),
                            i4(-1),
                            i2(len),
                            i2(i16::try_from(i + 1).unwrap_or(i16::MAX)),
                            i4(i32::from(matches!(ty.kind(), Kind::Array(_)))),
                            i4(-1),
                            i4(-1),
                            boolean(len > 0),
                            text(if len == 8 { "d" } else { "i" }),
                            text(if len > 0 { "p" } else { "x" }),
                            text(""),
                            boolean(!nullable),
                            boolean(false),
                            boolean(false),
                            text(""),
                            text(""),
                            boolean(false),
                            boolean(true),
                            i4(0),
                            oid(if matches!(*ty, Type::TEXT | Type::VARCHAR) {
                                100
                            } else {
                                0
                            }),
                        ]
                    })
            })
            .collect(),
        "pg_type" => TYPE_OIDS
            .iter()
            .filter_map(|o| Type::from_oid(*o))
            .map(|t| {
                let (category, elem) = match t.kind() {
                    Kind::Array(e) => ("A", i64::from(e.oid())),
                    _ => (category(&t), 0),
                };
                let array = TYPE_OIDS
                    .iter()
                    .filter_map(|o| Type::from_oid(*o))
                    .find(|a| matches!(a.kind(), Kind::Array(e) if *e == t))
                    .map(|a| i64::from(a.oid()))
                    .unwrap_or(0);
                let len = type_len(&t);
                vec![
                    oid(i64::from(t.oid())),
                    text(t.name()),
                    oid(PG_CATALOG_NS),
                    oid(OWNER),
                    i2(len),
                    boolean(len > 0 && len <= 8),
                    text("b"),
                    text(category),
                    boolean(false),
                    boolean(true),
                    text(","),
                    oid(0),
                    text("-"),
                    oid(elem),
                    oid(array),
                    text(&format!("{}in", t.name())),
                    text(&format!("{}out", t.name())),
                    text(&format!("{}recv", t.name())),
                    text(&format!("{}send", t.name())),
                    text("-"),
                    text("-"),
                    text("-"),
                    text(if len == 8 { "d" } else { "i" }),
                    text(if len > 0 { "p" } else { "x" }),
                    boolean(false),
                    oid(0),
                    i4(-1),
                    i4(0),
                    oid(if category == "S" { 100 } else { 0 }),
                ]
            })
            .collect(),
        "pg_database" => vec![vec![
            oid(DATABASE_OID),
            text(id.database),
            oid(OWNER),
            i4(6),
            text("c"),
            boolean(false),
            boolean(true),
            i4(-1),
            oid(0),
            oid(0),
            oid(1663),
            text("C.UTF-8"),
            text("C.UTF-8"),
        ]],
        "pg_roles" => vec![vec![
            oid(OWNER),
            text(id.user),
            boolean(true),
            boolean(true),
            boolean(false),
            boolean(false),
            boolean(true),
            boolean(false),
            i4(-1),
            text("********"),
        ]],
        "pg_user" => vec![vec![
            text(id.user),
            oid(OWNER),
            boolean(false),
            boolean(true),
            boolean(false),
            boolean(false),
            text("********"),
        ]],
        "pg_am" => vec![vec![
            oid(2),
            text("heap"),
            text("heap_tableam_handler"),
            text("t"),
        ]],
        "pg_collation" => vec![vec![
            oid(100),
            text("default"),
            oid(PG_CATALOG_NS),
            oid(OWNER),
            text("d"),
            boolean(true),
            i4(-1),
        ]],
        "pg_tablespace" => vec![
            vec![oid(1663), text("pg_default"), oid(OWNER)],
            vec![oid(1664), text("pg_global"), oid(OWNER)],
        ],
        "pg_settings" => id
            .settings
            .iter()
            .map(|(n, v)| {
                vec![
                    text(n),
                    text(v),
                    null(),
                    text("Client Connection Defaults"),
                    text(n),
                ]
            })
            .collect(),
        "pg_tables" => relations
            .iter()
            .filter(|r| r.kind == "r")
            .map(|r| {
                vec![
                    text(&r.schema),
                    text(&r.name),
                    text(id.user),
                    null(),
                    boolean(false),
                    boolean(false),
                    boolean(false),
                    boolean(false),
                ]
            })
            .collect(),
        "pg_views" => relations
            .iter()
            .filter(|r| r.kind == "v" && r.schema != SCHEMA)
            .map(|r| vec![text(&r.schema), text(&r.name), text(id.user)])
            .collect(),
        _ => Vec::new(),
    }
}

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

fn build(table: &Table, rows: Vec<Row>) -> Result<MemTable> {
    let schema = Arc::new(Schema::new(
        table
            .columns
            .iter()
            .map(|(n, t)| Field::new(*n, t.arrow(), true))
            .collect::<Vec<_>>(),
    ));
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(table.columns.len());
    for (i, (_, t)) in table.columns.iter().enumerate() {
        let dt = t.arrow();
        if let T::TextArray = t {
            let mut b = ListBuilder::new(StringBuilder::new());
            for _ in &rows {
                b.append_null();
            }
            columns.push(Arc::new(b.finish()));
            continue;
        }
        let values = rows.iter().map(|r| match r.get(i) {
            Some(ScalarValue::Null) | None => ScalarValue::try_from(&dt),
            Some(v) => Ok(v.clone()),
        });
        let values = values.collect::<Result<Vec<_>>>()?;
        let array = if values.is_empty() {
            datafusion::arrow::array::new_empty_array(&dt)
        } else {
            ScalarValue::iter_to_array(values)?
        };
        columns.push(array);
    }
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    MemTable::try_new(schema, vec![vec![batch]])
}

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
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgFunction {
    name: &'static str,
    func: Func,
    signature: Signature,
}

fn functions(id: &Identity<'_>, pid: i32) -> Vec<PgFunction> {
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
        f("pg_get_expr", Func::FirstArg),
        f("quote_ident", Func::QuoteIdent),
        f("pg_encoding_to_char", Func::Encoding),
        f("pg_backend_pid", Func::Int(pid)),
        f("pg_is_in_recovery", Func::Bool(false)),
        f("pg_relation_is_publishable", Func::Bool(false)),
        f("pg_size_pretty", Func::FirstArg),
        f("_pg_expandarray", Func::ExpandArray),
    ];
    for name in [
        "pg_table_is_visible",
        "pg_type_is_visible",
        "pg_function_is_visible",
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
        "obj_description",
        "col_description",
        "shobj_description",
        "pg_get_indexdef",
        "pg_get_constraintdef",
        "pg_get_viewdef",
        "pg_get_triggerdef",
        "pg_get_ruledef",
        "pg_get_partkeydef",
        "pg_get_function_result",
        "pg_get_function_arguments",
        "pg_get_statisticsobjdef_columns",
        "pg_tablespace_location",
    ] {
        all.push(f(name, Func::NullText));
    }
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
            Func::CurrentSchemas => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            Func::ExpandArray => expand_array_type(),
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let arg_text = |i: usize, row: usize| -> Option<String> {
            let a = arrays.get(i)?;
            if a.is_null(row) {
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
            Func::ExpandArray => new_null_array(&expand_array_type(), rows),
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
