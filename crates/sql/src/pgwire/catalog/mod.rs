//! A `pg_catalog` schema for PostgreSQL clients (psql `\d`, JDBC/psycopg metadata, DBeaver): tables
//! rebuilt from the session's DataFusion catalog before each statement that reads them, and the
//! catalog functions (`format_type`, `pg_table_is_visible`, `current_database()`, …).
//!
//! Each table is data: a row struct with named fields, declared with its schema by
//! [`table::catalog_table!`], and a function from a [`Snapshot`] of the session's catalog to its
//! rows. [`TABLES`] lists them; one generic step ([`refresh`]) builds and registers them all. To add
//! a table, declare it in the file of its family and add it to [`TABLES`].

mod functions;
mod keywords;
mod objects;
mod pg_type;
mod procs;
mod relation;
mod relation_objects;
mod server;
mod table;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemTable, MemorySchemaProvider};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{ScalarUDF, TableType};
use datafusion::prelude::SessionContext;
use pgwire::api::Type;

use super::types::pg_type;
use pg_type::{TYPE_OIDS, type_sql_name};
use table::CatalogTable;

pub(crate) use procs::{Proc, procs};

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

/// A catalog table as the registry holds it: its name, oid, schema and how it is built.
struct Entry {
    name: &'static str,
    oid: i64,
    schema: fn() -> SchemaRef,
    build: fn(&Snapshot<'_>) -> Result<RecordBatch>,
}

impl Entry {
    const fn of<T: CatalogTable>() -> Self {
        Self {
            name: T::NAME,
            oid: T::OID,
            schema: T::schema,
            build: build::<T>,
        }
    }

    /// `v` for the catalog's views, `r` for its tables.
    fn kind(&self) -> &'static str {
        let view = self.name.starts_with("pg_stat")
            || matches!(
                self.name,
                "pg_roles" | "pg_user" | "pg_settings" | "pg_tables" | "pg_views"
            );
        if view { "v" } else { "r" }
    }
}

fn build<T: CatalogTable>(snapshot: &Snapshot<'_>) -> Result<RecordBatch> {
    T::batch(T::rows(snapshot))
}

/// The catalog tables, in `pg_class` order.
static TABLES: &[Entry] = &[
    Entry::of::<server::PgNamespaceRow>(),
    Entry::of::<relation::PgClassRow>(),
    Entry::of::<relation::PgAttributeRow>(),
    Entry::of::<pg_type::PgTypeRow>(),
    Entry::of::<server::PgDatabaseRow>(),
    Entry::of::<server::PgRolesRow>(),
    Entry::of::<server::PgUserRow>(),
    Entry::of::<server::PgAmRow>(),
    Entry::of::<relation_objects::PgAttrdefRow>(),
    Entry::of::<relation_objects::PgIndexRow>(),
    Entry::of::<relation_objects::PgConstraintRow>(),
    Entry::of::<relation_objects::PgInheritsRow>(),
    Entry::of::<relation_objects::PgOpclassRow>(),
    Entry::of::<objects::PgDescriptionRow>(),
    Entry::of::<objects::PgShdescriptionRow>(),
    Entry::of::<server::PgCollationRow>(),
    Entry::of::<procs::PgProcRow>(),
    Entry::of::<server::PgSettingsRow>(),
    Entry::of::<relation::PgTablesRow>(),
    Entry::of::<relation::PgViewsRow>(),
    Entry::of::<server::PgTablespaceRow>(),
    Entry::of::<relation_objects::PgPolicyRow>(),
    Entry::of::<relation_objects::PgStatisticExtRow>(),
    Entry::of::<objects::PgPublicationRow>(),
    Entry::of::<objects::PgPublicationRelRow>(),
    Entry::of::<objects::PgPublicationNamespaceRow>(),
    Entry::of::<relation_objects::PgTriggerRow>(),
    Entry::of::<relation_objects::PgRewriteRow>(),
    Entry::of::<relation_objects::PgForeignTableRow>(),
    Entry::of::<relation_objects::PgPartitionedTableRow>(),
    Entry::of::<objects::PgExtensionRow>(),
    Entry::of::<objects::PgEventTriggerRow>(),
    Entry::of::<relation_objects::PgDependRow>(),
    Entry::of::<relation_objects::PgSequenceRow>(),
    Entry::of::<pg_type::PgEnumRow>(),
    Entry::of::<server::PgAuthMembersRow>(),
    Entry::of::<server::PgStatActivityRow>(),
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

/// One relation of the snapshot.
struct Relation {
    oid: i64,
    schema_oid: i64,
    schema: String,
    name: String,
    kind: &'static str,
    /// (name, type, nullable)
    columns: Vec<(String, Type, bool)>,
}

/// What the catalog tables are built from: the session's schemas and relations (the catalog's own
/// tables last) and the connection.
pub(crate) struct Snapshot<'a> {
    /// (oid, name) of each schema.
    namespaces: Vec<(i64, String)>,
    relations: Vec<Relation>,
    identity: &'a Identity<'a>,
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
    /// The session's semantic functions, for `pg_proc`.
    pub(crate) procs: &'a [Proc],
}

/// Register the empty `pg_catalog` schema and the catalog functions in a fresh session.
pub(crate) fn install(ctx: &SessionContext, identity: &Identity<'_>, pid: i32) -> Result<()> {
    let catalog_name = ctx.state().config().options().catalog.default_catalog.clone();
    let catalog = ctx
        .catalog(&catalog_name)
        .ok_or_else(|| DataFusionError::Plan(format!("no catalog {catalog_name}")))?;
    catalog.register_schema(SCHEMA, Arc::new(MemorySchemaProvider::new()))?;
    for f in functions::functions(identity, pid) {
        ctx.register_udf(ScalarUDF::new_from_impl(f));
    }
    ctx.register_udtf("pg_get_keywords", Arc::new(keywords::Keywords));
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
    let snapshot = snapshot(catalog.as_ref(), state, identity).await;
    for t in TABLES {
        let batch = (t.build)(&snapshot)?;
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        pg.deregister_table(t.name)?;
        pg.register_table(t.name.to_owned(), Arc::new(table))?;
    }
    Ok(())
}

/// The snapshot: user schemas and tables, then the catalog's own tables.
async fn snapshot<'a>(
    catalog: &dyn datafusion::catalog::CatalogProvider,
    state: &CatalogState,
    identity: &'a Identity<'a>,
) -> Snapshot<'a> {
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
            // The schema's word first: `[sql.tables]` files are base tables there (relkind `r`, what
            // psql's `\dt` and SQLAlchemy's `get_table_names` list), whatever provider reads them.
            let table_type = match schema.table_type(&name).await {
                Ok(Some(t)) => t,
                _ => table.table_type(),
            };
            let kind = match table_type {
                TableType::View => "v",
                _ if schema_name == "information_schema" => "v",
                _ => "r",
            };
            relations.push(Relation {
                oid: state.oid(&format!("{schema_name}.{name}")),
                schema_oid,
                schema: schema_name.clone(),
                name,
                kind,
                columns: columns(&table.schema()),
            });
        }
    }
    for t in TABLES {
        relations.push(Relation {
            oid: t.oid,
            schema_oid: PG_CATALOG_NS,
            schema: SCHEMA.to_owned(),
            name: t.name.to_owned(),
            kind: t.kind(),
            columns: columns(&(t.schema)()),
        });
    }
    Snapshot {
        namespaces,
        relations,
        identity,
    }
}

/// A relation's columns as the catalog lists them: (name, PostgreSQL type, nullable).
fn columns(schema: &SchemaRef) -> Vec<(String, Type, bool)> {
    schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), pg_type(f), f.is_nullable()))
        .collect()
}
