//! The database-wide objects rvbbit does not have, so their tables are empty but present with
//! PostgreSQL's columns (clients join them): `pg_description`, `pg_shdescription`, the
//! publications, `pg_extension` and `pg_event_trigger`.

use super::table::{Oid, TextArray, catalog_table};

catalog_table! {
    /// A row of `pg_description` (none: no comments).
    PgDescriptionRow = "pg_description", oid 2609 {
        objoid: Oid,
        classoid: Oid,
        objsubid: i32,
        description: String,
    }
}

catalog_table! {
    /// A row of `pg_shdescription` (none: no comments).
    PgShdescriptionRow = "pg_shdescription", oid 2396 {
        objoid: Oid,
        classoid: Oid,
        description: String,
    }
}

catalog_table! {
    /// A row of `pg_publication` (none: no replication).
    PgPublicationRow = "pg_publication", oid 6104 {
        oid: Oid,
        pubname: String,
        pubowner: Oid,
        puballtables: bool,
        pubinsert: bool,
        pubupdate: bool,
        pubdelete: bool,
        pubtruncate: bool,
        pubviaroot: bool,
    }
}

catalog_table! {
    /// A row of `pg_publication_rel` (none).
    PgPublicationRelRow = "pg_publication_rel", oid 6106 {
        oid: Oid,
        prpubid: Oid,
        prrelid: Oid,
        prqual: String,
        prattrs: String,
    }
}

catalog_table! {
    /// A row of `pg_publication_namespace` (none).
    PgPublicationNamespaceRow = "pg_publication_namespace", oid 6237 {
        oid: Oid,
        pnpubid: Oid,
        pnnspid: Oid,
    }
}

catalog_table! {
    /// A row of `pg_extension` (none: no extensions).
    PgExtensionRow = "pg_extension", oid 3079 {
        oid: Oid,
        extname: String,
        extowner: Oid,
        extnamespace: Oid,
        extrelocatable: bool,
        extversion: String,
        extconfig: TextArray,
        extcondition: TextArray,
    }
}

catalog_table! {
    /// A row of `pg_event_trigger` (none: no event triggers).
    PgEventTriggerRow = "pg_event_trigger", oid 3466 {
        oid: Oid,
        evtname: String,
        evtevent: String,
        evtowner: Oid,
        evtfoid: Oid,
        evtenabled: String,
        evttags: TextArray,
    }
}
