//! Versioned schema migrations for the ClickHouse sink, recorded in a small `rvbbit_schema` table.
//!
//! Every statement is idempotent (`IF NOT EXISTS`), so processes opening one new database at once may
//! both run a step: ClickHouse has no transactions or locks to serialise them, and needs none here. A
//! database whose schema is newer than this build is refused before anything is written.
//!
//! The SQL keeps to what Debian's ClickHouse 18.16 understands, so the sink works there and on every
//! release since: no `DateTime64` (a `DateTime` of seconds plus `ts_ms`, and the full `ts_us`), no JSON
//! type or `JSONExtract` (JSON is kept as `String`), no `Map`, `TTL`, `CODEC`, `LowCardinality`, and no
//! `Nullable` (an absent text is `''`, an absent number `0` with a flag where 0 is meaningful).

use super::ClickHouseSink;
use crate::error::{Error, Result};

/// One migration step: statements run in order.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static [&'static str],
}

/// Every migration, oldest first. Append only: never edit a released step.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "events",
    sql: &[r#"
CREATE TABLE IF NOT EXISTS events (
    event_id String,
    ts DateTime,
    ts_ms UInt16,
    ts_us Int64,
    written DateTime,
    seq Int64,
    kind String,
    session_id String,
    parent_session_id String,
    root_session_id String,
    caller_id String,
    cascade_id String,
    cell_name String,
    model String,
    provider String,
    tokens_in Int64,
    tokens_out Int64,
    cost_micro_usd Int64,
    cost_known UInt8,
    priced UInt8,
    duration_us Int64,
    body String
) ENGINE = ReplacingMergeTree ORDER BY event_id"#],
}];

/// The newest schema version this build knows.
pub(crate) fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

const BOOKKEEPING: &str = "CREATE TABLE IF NOT EXISTS rvbbit_schema (version UInt32, name String, \
                           applied DateTime) ENGINE = MergeTree ORDER BY version";

/// The schema version in the sink's database (0 when empty).
pub(crate) async fn current(sink: &ClickHouseSink) -> Result<i64> {
    let action = "read its schema version";
    let exists = sink
        .run(
            "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'rvbbit_schema' \
             FORMAT TabSeparated",
            None,
            action,
        )
        .await?;
    if exists.trim() == "0" {
        return Ok(0);
    }
    let text = sink
        .run(
            "SELECT max(version) FROM rvbbit_schema FORMAT TabSeparated",
            None,
            action,
        )
        .await?;
    text.trim().parse::<i64>().map_err(|e| Error::Corrupt {
        url: sink.url().to_owned(),
        what: "schema version",
        detail: format!("`{}`: {e}", text.trim()),
    })
}

/// Apply every pending migration; returns the names applied.
pub(crate) async fn apply(sink: &ClickHouseSink) -> Result<Vec<String>> {
    let version = current(sink).await?;
    if version > latest() {
        return Err(Error::SchemaTooNew {
            url: sink.url().to_owned(),
            found: version,
            known: latest(),
        });
    }
    let mut applied = Vec::new();
    if version == latest() {
        return Ok(applied);
    }
    sink.run(BOOKKEEPING, None, "migrate its schema").await?;
    for m in MIGRATIONS.iter().filter(|m| m.version > version) {
        for sql in m.sql {
            sink.run(sql, None, "migrate its schema")
                .await
                .map_err(|e| Error::Migration {
                    url: sink.url().to_owned(),
                    version: m.version,
                    name: m.name,
                    source: Box::new(e),
                })?;
        }
        let row = serde_json::json!({
            "version": m.version,
            "name": m.name,
            "applied": rvbbit_core::Timestamp::now().micros() / 1_000_000,
        });
        sink.run(
            "INSERT INTO rvbbit_schema FORMAT JSONEachRow",
            Some(format!("{row}\n")),
            "migrate its schema",
        )
        .await?;
        applied.push(format!("{:04}_{}", m.version, m.name));
    }
    Ok(applied)
}
