//! `COPY table FROM STDIN`: the client's CopyData is buffered (at most `limits.pgwire_copy_bytes`),
//! and at CopyDone every row is parsed and checked, then appended with one `INSERT … SELECT` from a
//! table of strings, so DataFusion casts each value to its column's type. A malformed row, a value that
//! does not cast, CopyFail or a limit refuses the whole COPY: nothing is half-written.

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use futures::stream;
use pgwire::api::results::{CopyResponse, Response};
use pgwire::error::{ErrorInfo, PgWireResult};

use super::Target;
use super::format::{Place, parse};
use crate::pgwire::errors::{error, from_sql_error, state, user_error};
use crate::session::SqlSession;

/// The table of strings a COPY's rows are inserted from, registered only during that INSERT.
const STAGING: &str = "rvbbit_copy_in";

/// The `COPY … FROM STDIN` a connection is receiving, if any.
#[derive(Debug, Default)]
pub(crate) struct Pending(Mutex<Option<Receiving>>);

#[derive(Debug)]
struct Receiving {
    target: Target,
    /// The target columns, resolved (every column of the table when the statement named none).
    columns: Vec<String>,
    data: Vec<u8>,
    /// `limits.pgwire_copy_bytes`.
    limit: u64,
    /// Set when the data went over the limit (then it is dropped, and the error waits for CopyDone).
    refused: Option<ErrorInfo>,
}

/// Check that `target`'s table and columns exist and enter copy-in mode (CopyInResponse).
///
/// Errors: 42P01 for an unknown table, 42703 for an unknown column.
pub(in crate::pgwire) async fn start(
    session: &SqlSession,
    pending: &Pending,
    target: &Target,
) -> PgWireResult<Response> {
    let provider = session
        .context()
        .table_provider(target.table.as_str())
        .await
        .map_err(|e| {
            user_error(error(
                state::UNDEFINED_TABLE,
                format!("relation \"{}\" does not exist ({e})", target.table),
                "COPY FROM STDIN fills a table the connection created (CREATE TABLE)",
            ))
        })?;
    let schema = provider.schema();
    let columns: Vec<String> = if target.columns.is_empty() {
        schema.fields().iter().map(|f| f.name().clone()).collect()
    } else {
        for c in &target.columns {
            if schema.field_with_name(c).is_err() {
                return Err(user_error(error(
                    state::UNDEFINED_COLUMN,
                    format!("column \"{c}\" of relation \"{}\" does not exist", target.table),
                    "",
                )));
            }
        }
        target.columns.clone()
    };
    let count = columns.len();
    let limit = session.limits().copy_bytes;
    *lock(pending) = Some(Receiving {
        target: target.clone(),
        columns,
        data: Vec::new(),
        limit,
        refused: None,
    });
    Ok(Response::CopyIn(CopyResponse::new(
        target.format.code(),
        count,
        stream::empty(),
    )))
}

/// Keep one CopyData message (dropped once the COPY is over its byte limit).
pub(in crate::pgwire) fn receive(pending: &Pending, data: &[u8]) {
    let mut guard = lock(pending);
    let Some(r) = guard.as_mut() else {
        return;
    };
    if r.refused.is_some() {
        return;
    }
    let total = r.data.len() as u64 + data.len() as u64;
    if total > r.limit {
        let mut info = error(
            state::PROGRAM_LIMIT,
            format!(
                "COPY {} sent more than limits.pgwire_copy_bytes = {} bytes",
                r.target.table, r.limit
            ),
            "copy in smaller parts, or raise limits.pgwire_copy_bytes in rvbbit.toml [limits]; nothing was copied",
        );
        info.detail = Some("rvbbit error RVB-Q006".into());
        r.refused = Some(info);
        r.data = Vec::new();
        return;
    }
    r.data.extend_from_slice(data);
}

/// End copy-in mode without copying anything (CopyFail; 57014 as in PostgreSQL).
pub(in crate::pgwire) fn fail(pending: &Pending, message: &str) -> ErrorInfo {
    let table = lock(pending).take().map(|r| r.target.table).unwrap_or_default();
    error(
        "57014",
        format!("COPY from stdin failed: {message}"),
        format!("the client aborted the COPY; nothing was copied into {table}"),
    )
}

/// CopyDone: parse and check every row, then append them all; returns the number of rows copied.
///
/// Errors: 22P04 for a malformed row, 22P02 for a value that does not fit its column, 22021 for data
/// that is not UTF-8, 54000 over `limits.pgwire_copy_bytes` or a row over `limits.sql_query_bytes`,
/// 42501 for a table the door may not write. None of them copies a row.
pub(in crate::pgwire) async fn done(session: &SqlSession, pending: &Pending) -> PgWireResult<usize> {
    let Some(r) = lock(pending).take() else {
        return Err(user_error(error(
            state::PROTOCOL,
            "CopyDone without a COPY FROM STDIN in progress",
            "",
        )));
    };
    if let Some(info) = r.refused {
        return Err(user_error(info));
    }
    let place = Place {
        table: &r.target.table,
        columns: &r.columns,
        max_row: session.limits().query_bytes,
    };
    let mut builders = parse(&r.data, &r.target.format, &place).map_err(user_error)?;
    drop(r.data);
    let arrays: Vec<ArrayRef> = builders
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    let rows = arrays.first().map_or(0, |a| a.len());
    if rows == 0 {
        return Ok(0);
    }
    let staged: Vec<Field> = (0..arrays.len())
        .map(|i| Field::new(format!("c{i}"), DataType::Utf8, true))
        .collect();
    let schema = Arc::new(Schema::new(staged));
    let batch = RecordBatch::try_new(schema.clone(), arrays)
        .map_err(|e| user_error(error(state::INTERNAL, e.to_string(), "")))?;
    let table = MemTable::try_new(schema, vec![vec![batch]])
        .map_err(|e| user_error(error(state::INTERNAL, e.to_string(), "")))?;
    let ctx = session.context();
    ctx.register_table(STAGING, Arc::new(table))
        .map_err(|e| user_error(error(state::INTERNAL, e.to_string(), "")))?;
    let quoted: Vec<String> = r.columns.iter().map(|c| quote(c)).collect();
    let picked: Vec<String> = (0..r.columns.len()).map(|i| format!("c{i}")).collect();
    let sql = format!(
        "INSERT INTO {} ({}) SELECT {} FROM {STAGING}",
        r.target.table,
        quoted.join(", "),
        picked.join(", ")
    );
    let result = session.execute(&sql).await;
    // The staging table is this statement's own; a failure to drop it leaves rows nobody reads.
    let _ = ctx.deregister_table(STAGING);
    let result = result.map_err(|e| {
        let mut info = from_sql_error(&e, &sql);
        info.message = format!("COPY {}: {}", r.target.table, info.message);
        info.position = None;
        user_error(info)
    })?;
    Ok(affected_rows(&result.batches))
}

/// The row count of a DML result (one `count` column of UInt64), as a command tag reports it.
pub(crate) fn affected_rows(batches: &[RecordBatch]) -> usize {
    let n: u64 = batches
        .iter()
        .filter_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<UInt64Array>()
                .map(|a| a.iter().flatten().sum::<u64>())
        })
        .sum();
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// A double-quoted identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn lock(pending: &Pending) -> std::sync::MutexGuard<'_, Option<Receiving>> {
    pending.0.lock().unwrap_or_else(|p| p.into_inner())
}
