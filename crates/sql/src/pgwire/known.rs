//! Statements that known clients send verbatim and DataFusion cannot plan, swapped before parsing for
//! equivalents over this server's catalog (which holds only built-in types, so the equivalents can be
//! much simpler than the originals).

/// asyncpg's type introspection (`INTRO_LOOKUP_TYPES` in `asyncpg/introspection.py`, sent for a
/// parameter or column type it has no codec for, such as `int8[]`): a recursive walk from the asked
/// types to their element, base, range and attribute types, deepest first. Here every type is a
/// built-in base or array type, so the walk is the asked types (depth 0) and their element types
/// (depth 1). The columns keep asyncpg's names and use types asyncpg decodes without introspecting
/// (`int8`, `text`, `text[]`).
const ASYNCPG_TYPES: &str = "\
SELECT * FROM (
    SELECT t.oid AS oid, 'pg_catalog' AS ns, t.typname AS name, t.typtype AS kind,
        CAST(NULL AS BIGINT) AS basetype, t.typelem AS elemtype, e.typdelim AS elemdelim,
        CAST(NULL AS BIGINT) AS range_subtype, CAST(NULL AS TEXT[]) AS attrtypoids,
        CAST(NULL AS TEXT[]) AS attrnames, 0 AS depth, CAST(NULL AS TEXT) AS basetype_name,
        e.typname AS elemtype_name, CAST(NULL AS TEXT) AS range_subtype_name
    FROM pg_catalog.pg_type t LEFT JOIN pg_catalog.pg_type e ON t.typelem <> 0 AND e.oid = t.typelem
    WHERE t.oid = ANY($1::oid[])
    UNION ALL
    SELECT e.oid, 'pg_catalog', e.typname, e.typtype, CAST(NULL AS BIGINT), e.typelem, CAST(NULL AS TEXT),
        CAST(NULL AS BIGINT), CAST(NULL AS TEXT[]), CAST(NULL AS TEXT[]), 1, CAST(NULL AS TEXT),
        CAST(NULL AS TEXT), CAST(NULL AS TEXT)
    FROM pg_catalog.pg_type t JOIN pg_catalog.pg_type e ON e.oid = t.typelem
    WHERE t.oid = ANY($1::oid[]) AND t.typelem <> 0
) AS typeinfo_tree
ORDER BY depth DESC";

/// The equivalent to run instead of `sql`, when `sql` is a statement this module knows.
pub(super) fn substitute(sql: &str) -> Option<&'static str> {
    let text = sql.trim_start();
    (text.starts_with("WITH RECURSIVE typeinfo_tree(") && text.contains("ti.oid = any($1::oid[])"))
        .then_some(ASYNCPG_TYPES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asyncpg_introspection_is_recognised() {
        let sent = "WITH RECURSIVE typeinfo_tree(\n    oid, ns, name, kind, basetype, elemtype, elemdelim,\n    range_subtype, attrtypoids, attrnames, depth)\nAS (\n    SELECT ti.oid FROM x AS ti WHERE\n        ti.oid = any($1::oid[])\n) SELECT 1";
        assert_eq!(substitute(sent), Some(ASYNCPG_TYPES));
        assert_eq!(
            substitute("WITH RECURSIVE t(n) AS (SELECT 1) SELECT * FROM t"),
            None
        );
    }
}
