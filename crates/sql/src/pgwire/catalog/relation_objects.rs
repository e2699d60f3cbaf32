//! The objects that hang off relations and that rvbbit does not have, so their tables are empty but
//! present with PostgreSQL's columns (clients join them): `pg_attrdef`, `pg_index`, `pg_constraint`,
//! `pg_inherits`, `pg_depend`, `pg_trigger`, `pg_rewrite`, `pg_policy`, `pg_statistic_ext`,
//! `pg_partitioned_table`, `pg_foreign_table`, `pg_sequence` and `pg_opclass`.

use super::table::{I2Array, Oid, OidArray, TextArray, catalog_table};

catalog_table! {
    /// A row of `pg_attrdef` (none: no column has a default).
    PgAttrdefRow = "pg_attrdef", oid 2604 {
        oid: Oid,
        adrelid: Oid,
        adnum: i16,
        adbin: String,
    }
}

catalog_table! {
    /// A row of `pg_index` (none: no indexes).
    PgIndexRow = "pg_index", oid 2610 {
        indexrelid: Oid,
        indrelid: Oid,
        indnatts: i16,
        indnkeyatts: i16,
        indisunique: bool,
        indnullsnotdistinct: bool,
        indisprimary: bool,
        indisexclusion: bool,
        indimmediate: bool,
        indisclustered: bool,
        indisvalid: bool,
        indcheckxmin: bool,
        indisready: bool,
        indislive: bool,
        indisreplident: bool,
        indkey: I2Array,
        indcollation: OidArray,
        indclass: OidArray,
        indoption: I2Array,
        indexprs: String,
        indpred: String,
    }
}

catalog_table! {
    /// A row of `pg_constraint` (none: no constraints).
    PgConstraintRow = "pg_constraint", oid 2606 {
        oid: Oid,
        conname: String,
        connamespace: Oid,
        contype: String,
        condeferrable: bool,
        condeferred: bool,
        convalidated: bool,
        conrelid: Oid,
        contypid: Oid,
        conindid: Oid,
        conparentid: Oid,
        confrelid: Oid,
        confupdtype: String,
        confdeltype: String,
        confmatchtype: String,
        conislocal: bool,
        coninhcount: i32,
        connoinherit: bool,
        conkey: I2Array,
        confkey: I2Array,
        conbin: String,
    }
}

catalog_table! {
    /// A row of `pg_inherits` (none: no inheritance).
    PgInheritsRow = "pg_inherits", oid 2611 {
        inhrelid: Oid,
        inhparent: Oid,
        inhseqno: i32,
        inhdetachpending: bool,
    }
}

catalog_table! {
    /// A row of `pg_opclass` (none: there are no indexes, so no operator classes to name).
    PgOpclassRow = "pg_opclass", oid 2616 {
        oid: Oid,
        opcmethod: Oid,
        opcname: String,
        opcnamespace: Oid,
        opcowner: Oid,
        opcfamily: Oid,
        opcintype: Oid,
        opcdefault: bool,
        opckeytype: Oid,
    }
}

catalog_table! {
    /// A row of `pg_depend` (none).
    PgDependRow = "pg_depend", oid 2608 {
        classid: Oid,
        objid: Oid,
        objsubid: i32,
        refclassid: Oid,
        refobjid: Oid,
        refobjsubid: i32,
        deptype: String,
    }
}

catalog_table! {
    /// A row of `pg_trigger` (none: no triggers).
    PgTriggerRow = "pg_trigger", oid 2620 {
        oid: Oid,
        tgrelid: Oid,
        tgparentid: Oid,
        tgname: String,
        tgfoid: Oid,
        tgtype: i16,
        tgenabled: String,
        tgisinternal: bool,
        tgconstrrelid: Oid,
        tgconstrindid: Oid,
        tgconstraint: Oid,
        tgdeferrable: bool,
        tginitdeferred: bool,
        tgnargs: i16,
        tgattr: String,
        tgargs: String,
        tgqual: String,
        tgoldtable: String,
        tgnewtable: String,
    }
}

catalog_table! {
    /// A row of `pg_rewrite` (none: no rules).
    PgRewriteRow = "pg_rewrite", oid 2618 {
        oid: Oid,
        rulename: String,
        ev_class: Oid,
        ev_type: String,
        ev_enabled: String,
        is_instead: bool,
        ev_qual: String,
        ev_action: String,
    }
}

catalog_table! {
    /// A row of `pg_policy` (none: no row security).
    PgPolicyRow = "pg_policy", oid 3256 {
        oid: Oid,
        polname: String,
        polrelid: Oid,
        polcmd: String,
        polpermissive: bool,
        polroles: String,
        polqual: String,
        polwithcheck: String,
    }
}

catalog_table! {
    /// A row of `pg_statistic_ext` (none: no extended statistics).
    PgStatisticExtRow = "pg_statistic_ext", oid 3381 {
        oid: Oid,
        stxrelid: Oid,
        stxname: String,
        stxnamespace: Oid,
        stxowner: Oid,
        stxstattarget: i32,
        stxkeys: String,
        stxkind: TextArray,
    }
}

catalog_table! {
    /// A row of `pg_partitioned_table` (none: no partitioning).
    PgPartitionedTableRow = "pg_partitioned_table", oid 3350 {
        partrelid: Oid,
        partstrat: String,
        partnatts: i16,
        partdefid: Oid,
        partattrs: String,
        partclass: String,
        partcollation: String,
        partexprs: String,
    }
}

catalog_table! {
    /// A row of `pg_foreign_table` (none: no foreign tables).
    PgForeignTableRow = "pg_foreign_table", oid 3118 {
        ftrelid: Oid,
        ftserver: Oid,
        ftoptions: TextArray,
    }
}

catalog_table! {
    /// A row of `pg_sequence` (none: no sequences).
    PgSequenceRow = "pg_sequence", oid 2224 {
        seqrelid: Oid,
        seqtypid: Oid,
        seqstart: Oid,
        seqincrement: Oid,
        seqmax: Oid,
        seqmin: Oid,
        seqcache: Oid,
        seqcycle: bool,
    }
}
