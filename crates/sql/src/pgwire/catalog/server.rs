//! The server and its session: `pg_namespace` (the schemas), `pg_database` (the one database),
//! `pg_roles` and `pg_user` (the connected user), `pg_tablespace`, `pg_am`, `pg_collation`,
//! `pg_settings` (the session's parameters), and the empty `pg_auth_members` and `pg_stat_activity`.

use super::table::{Oid, TextArray, catalog_table};
use super::{DATABASE_OID, OWNER, PG_CATALOG_NS, Snapshot};

/// The `pg_default` tablespace.
const DEFAULT_TABLESPACE: Oid = 1663;
/// The `heap` access method.
const HEAP_AM: Oid = 2;
/// The `default` collation.
const DEFAULT_COLLATION: Oid = 100;
/// The password column's text.
const HIDDEN_PASSWORD: &str = "********";

catalog_table! {
    /// A row of `pg_namespace`: one per schema.
    PgNamespaceRow = "pg_namespace", oid 2615, rows = namespace_rows {
        oid: Oid,
        nspname: String,
        nspowner: Oid,
        nspacl: TextArray,
    }
}

fn namespace_rows(s: &Snapshot<'_>) -> Vec<PgNamespaceRow> {
    s.namespaces
        .iter()
        .map(|(oid, name)| PgNamespaceRow {
            oid: *oid,
            nspname: name.clone(),
            nspowner: OWNER,
            nspacl: None,
        })
        .collect()
}

catalog_table! {
    /// A row of `pg_database`.
    PgDatabaseRow = "pg_database", oid 1262, rows = database_rows {
        oid: Oid,
        datname: String,
        datdba: Oid,
        encoding: i32,
        datlocprovider: String,
        datistemplate: bool,
        datallowconn: bool,
        datconnlimit: i32,
        datfrozenxid: Oid,
        datminmxid: Oid,
        dattablespace: Oid,
        datcollate: String,
        datctype: String,
        daticulocale: Option<String>,
        datcollversion: Option<String>,
        datacl: TextArray,
    }
}

fn database_rows(s: &Snapshot<'_>) -> Vec<PgDatabaseRow> {
    vec![PgDatabaseRow {
        oid: DATABASE_OID,
        datname: s.identity.database.to_owned(),
        datdba: OWNER,
        // UTF8
        encoding: 6,
        datlocprovider: "c".into(),
        datistemplate: false,
        datallowconn: true,
        datconnlimit: -1,
        datfrozenxid: 0,
        datminmxid: 0,
        dattablespace: DEFAULT_TABLESPACE,
        datcollate: "C.UTF-8".into(),
        datctype: "C.UTF-8".into(),
        daticulocale: None,
        datcollversion: None,
        datacl: None,
    }]
}

catalog_table! {
    /// A row of the view `pg_roles`.
    PgRolesRow = "pg_roles", oid 1260, rows = roles_rows {
        oid: Oid,
        rolname: String,
        rolsuper: bool,
        rolinherit: bool,
        rolcreaterole: bool,
        rolcreatedb: bool,
        rolcanlogin: bool,
        rolreplication: bool,
        rolconnlimit: i32,
        rolpassword: String,
        rolvaliduntil: Option<String>,
        rolbypassrls: Option<bool>,
        rolconfig: TextArray,
    }
}

fn roles_rows(s: &Snapshot<'_>) -> Vec<PgRolesRow> {
    vec![PgRolesRow {
        oid: OWNER,
        rolname: s.identity.user.to_owned(),
        rolsuper: true,
        rolinherit: true,
        rolcreaterole: false,
        rolcreatedb: false,
        rolcanlogin: true,
        rolreplication: false,
        rolconnlimit: -1,
        rolpassword: HIDDEN_PASSWORD.into(),
        rolvaliduntil: None,
        rolbypassrls: None,
        rolconfig: None,
    }]
}

catalog_table! {
    /// A row of the view `pg_user`.
    PgUserRow = "pg_user", oid 12_001, rows = user_rows {
        usename: String,
        usesysid: Oid,
        usecreatedb: bool,
        usesuper: bool,
        userepl: bool,
        usebypassrls: bool,
        passwd: String,
        valuntil: Option<String>,
        useconfig: TextArray,
    }
}

fn user_rows(s: &Snapshot<'_>) -> Vec<PgUserRow> {
    vec![PgUserRow {
        usename: s.identity.user.to_owned(),
        usesysid: OWNER,
        usecreatedb: false,
        usesuper: true,
        userepl: false,
        usebypassrls: false,
        passwd: HIDDEN_PASSWORD.into(),
        valuntil: None,
        useconfig: None,
    }]
}

catalog_table! {
    /// A row of `pg_am`: the one access method.
    PgAmRow = "pg_am", oid 2601, rows = am_rows {
        oid: Oid,
        amname: String,
        amhandler: String,
        amtype: String,
    }
}

fn am_rows(_: &Snapshot<'_>) -> Vec<PgAmRow> {
    vec![PgAmRow {
        oid: HEAP_AM,
        amname: "heap".into(),
        amhandler: "heap_tableam_handler".into(),
        amtype: "t".into(),
    }]
}

catalog_table! {
    /// A row of `pg_collation`: the default collation.
    PgCollationRow = "pg_collation", oid 3456, rows = collation_rows {
        oid: Oid,
        collname: String,
        collnamespace: Oid,
        collowner: Oid,
        collprovider: String,
        collisdeterministic: bool,
        collencoding: i32,
        collcollate: Option<String>,
        collctype: Option<String>,
    }
}

fn collation_rows(_: &Snapshot<'_>) -> Vec<PgCollationRow> {
    vec![PgCollationRow {
        oid: DEFAULT_COLLATION,
        collname: "default".into(),
        collnamespace: PG_CATALOG_NS,
        collowner: OWNER,
        collprovider: "d".into(),
        collisdeterministic: true,
        collencoding: -1,
        collcollate: None,
        collctype: None,
    }]
}

catalog_table! {
    /// A row of `pg_settings`: one per session parameter.
    PgSettingsRow = "pg_settings", oid 12_002, rows = settings_rows {
        name: String,
        setting: String,
        unit: Option<String>,
        category: String,
        short_desc: String,
        extra_desc: Option<String>,
        context: Option<String>,
        vartype: Option<String>,
        source: Option<String>,
        min_val: Option<String>,
        max_val: Option<String>,
        enumvals: TextArray,
        boot_val: Option<String>,
        reset_val: Option<String>,
        pending_restart: Option<bool>,
    }
}

fn settings_rows(s: &Snapshot<'_>) -> Vec<PgSettingsRow> {
    s.identity
        .settings
        .iter()
        .map(|(name, value)| PgSettingsRow {
            name: name.clone(),
            setting: value.clone(),
            unit: None,
            category: "Client Connection Defaults".into(),
            short_desc: name.clone(),
            extra_desc: None,
            context: None,
            vartype: None,
            source: None,
            min_val: None,
            max_val: None,
            enumvals: None,
            boot_val: None,
            reset_val: None,
            pending_restart: None,
        })
        .collect()
}

catalog_table! {
    /// A row of `pg_tablespace`.
    PgTablespaceRow = "pg_tablespace", oid 1213, rows = tablespace_rows {
        oid: Oid,
        spcname: String,
        spcowner: Oid,
        spcacl: TextArray,
        spcoptions: TextArray,
    }
}

fn tablespace_rows(_: &Snapshot<'_>) -> Vec<PgTablespaceRow> {
    [(DEFAULT_TABLESPACE, "pg_default"), (1664, "pg_global")]
        .into_iter()
        .map(|(oid, name)| PgTablespaceRow {
            oid,
            spcname: name.into(),
            spcowner: OWNER,
            spcacl: None,
            spcoptions: None,
        })
        .collect()
}

catalog_table! {
    /// A row of `pg_auth_members` (none: one role).
    PgAuthMembersRow = "pg_auth_members", oid 1261 {
        roleid: Oid,
        member: Oid,
        grantor: Oid,
        admin_option: bool,
    }
}

catalog_table! {
    /// A row of the view `pg_stat_activity` (none).
    PgStatActivityRow = "pg_stat_activity", oid 12_005 {
        datid: Oid,
        datname: String,
        pid: i32,
        usesysid: Oid,
        usename: String,
        application_name: String,
        client_addr: String,
        state: String,
        query: String,
    }
}
