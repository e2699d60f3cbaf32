//! SQL cursors (`DECLARE`, `FETCH`, `MOVE`, `CLOSE`), per connection and forward only. A cursor holds
//! its query's DataFusion stream and the rows left of a partly read batch: FETCH n pulls batches only
//! until it has n rows, and sends them as it goes, so no cursor ever holds its whole result.
//!
//! As in PostgreSQL, a cursor without `WITH HOLD` lives in a transaction block (an explicit `BEGIN`,
//! or the implicit block of a multi-statement query string) and closes when it ends; `WITH HOLD`
//! cursors stay until CLOSE or the connection ends (or a ROLLBACK of the block that declared them).
//! A connection holds at most `limits.pgwire_cursors` of them. The grammar is in `parse.rs`, the
//! statements' runs in `../cursor_run.rs`.

// `ErrorInfo` is pgwire's own error message type, which the protocol layer consumes as is.
#![allow(clippy::result_large_err)]

mod parse;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::{Stream, StreamExt, TryStreamExt, stream};
use pgwire::api::results::FieldInfo;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;

pub(crate) use parse::{Header, Piece, split};

use super::errors::{error, from_sql_error, state, user_error};
use super::types;
use crate::error::Error;

/// How many rows a FETCH or MOVE asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Count {
    /// `n`, `FORWARD n`, `NEXT` (1).
    Rows(u64),
    /// `ALL`, `FORWARD ALL`.
    All,
}

impl Count {
    fn rows(self) -> u64 {
        match self {
            Count::Rows(n) => n,
            Count::All => u64::MAX,
        }
    }
}

/// `FETCH` / `MOVE`.
#[derive(Clone, Debug)]
pub(crate) struct Fetch {
    pub(crate) name: String,
    pub(crate) count: Count,
    /// MOVE: skip the rows, answer their count only.
    pub(crate) moving: bool,
}

/// Rows a cursor hands out per pull at most (a FETCH's rows are encoded and sent in pieces this size).
const CHUNK: usize = 1024;

/// One open cursor.
pub(crate) struct Cursor {
    pub(crate) schema: SchemaRef,
    pub(crate) binary: bool,
    hold: bool,
    /// Declared inside the transaction block still open (a ROLLBACK closes it even WITH HOLD).
    in_block: AtomicBool,
    state: tokio::sync::Mutex<State>,
}

struct State {
    /// None once the query ended (or failed: then `failed` says why).
    stream: Option<SendableRecordBatchStream>,
    /// The unread rows of the last batch pulled.
    leftover: Option<RecordBatch>,
    /// The message of the error the query failed with.
    failed: Option<String>,
}

impl Cursor {
    pub(crate) fn new(header: &Header, stream: SendableRecordBatchStream, in_block: bool) -> Cursor {
        Cursor {
            schema: stream.schema(),
            binary: header.binary,
            hold: header.hold,
            in_block: AtomicBool::new(in_block),
            state: tokio::sync::Mutex::new(State {
                stream: Some(stream),
                leftover: None,
                failed: None,
            }),
        }
    }

    /// The next rows, at most `max` (at least one), or None at the end. A query error is returned once
    /// and then every later call fails with 24000.
    async fn take(&self, max: usize) -> Result<Option<RecordBatch>, ErrorInfo> {
        let mut state = self.state.lock().await;
        if let Some(failed) = &state.failed {
            return Err(error(
                state::INVALID_CURSOR_STATE,
                format!("the cursor's query failed earlier: {failed}"),
                "CLOSE the cursor (or ROLLBACK) and declare it again",
            ));
        }
        loop {
            if let Some(batch) = state.leftover.take() {
                let n = batch.num_rows().min(max.max(1));
                if n < batch.num_rows() {
                    state.leftover = Some(batch.slice(n, batch.num_rows() - n));
                }
                return Ok(Some(batch.slice(0, n)));
            }
            let Some(stream) = state.stream.as_mut() else {
                return Ok(None);
            };
            // Cancel-safe: a batch is stored before any await can drop this future.
            match stream.next().await {
                Some(Ok(batch)) => {
                    if batch.num_rows() > 0 {
                        state.leftover = Some(batch);
                    }
                }
                Some(Err(e)) => {
                    let info = from_sql_error(&Error::from_datafusion(e), "");
                    state.stream = None;
                    state.failed = Some(info.message.clone());
                    return Err(info);
                }
                None => state.stream = None,
            }
        }
    }

    /// MOVE: read and drop up to `count` rows; how many there were.
    pub(crate) async fn skip(&self, count: Count) -> Result<u64, ErrorInfo> {
        let mut left = count.rows();
        let mut moved = 0;
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX);
            let Some(batch) = self.take(want).await? else {
                break;
            };
            let n = batch.num_rows() as u64;
            moved += n;
            left = left.saturating_sub(n);
        }
        Ok(moved)
    }
}

/// FETCH: up to `count` rows of `cursor` encoded as `fields`, pulled as the client reads them.
pub(crate) fn rows(
    cursor: Arc<Cursor>,
    count: Count,
    fields: Arc<Vec<FieldInfo>>,
) -> impl Stream<Item = PgWireResult<DataRow>> + Send + 'static {
    stream::try_unfold((cursor, count.rows()), move |(cursor, left)| {
        let fields = fields.clone();
        async move {
            if left == 0 {
                return Ok::<_, PgWireError>(None);
            }
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(CHUNK);
            let Some(batch) = cursor.take(want).await.map_err(user_error)? else {
                return Ok(None);
            };
            let n = batch.num_rows() as u64;
            let encoded = types::encode_rows(&[batch], &fields).map_err(|e| {
                user_error(error(
                    state::INTERNAL,
                    format!("a result value cannot be sent: {e}"),
                    "cast the column to text in the query",
                ))
            })?;
            let chunk = stream::iter(encoded.into_iter().map(Ok::<DataRow, PgWireError>));
            Ok(Some((chunk, (cursor, left.saturating_sub(n)))))
        }
    })
    .try_flatten()
}

/// A connection's open cursors and whether a transaction block is open.
#[derive(Default)]
pub(crate) struct Cursors {
    open: Mutex<BTreeMap<String, Arc<Cursor>>>,
    /// An explicit `BEGIN` … `COMMIT`/`ROLLBACK` block is open.
    explicit: AtomicBool,
    /// A multi-statement query string is running (PostgreSQL's implicit block).
    implicit: AtomicBool,
}

impl Cursors {
    fn open(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Cursor>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a transaction block (explicit or implicit) is open.
    pub(crate) fn in_block(&self) -> bool {
        self.explicit.load(Ordering::SeqCst) || self.implicit.load(Ordering::SeqCst)
    }

    /// Whether an explicit `BEGIN` block is open.
    pub(crate) fn explicit_block(&self) -> bool {
        self.explicit.load(Ordering::SeqCst)
    }

    /// `BEGIN`.
    pub(crate) fn begin(&self) {
        self.explicit.store(true, Ordering::SeqCst);
    }

    /// `COMMIT` (`commit`) or `ROLLBACK`: the block's cursors without HOLD close; a ROLLBACK closes the
    /// HOLD cursors it declared too.
    pub(crate) fn end(&self, commit: bool) {
        self.explicit.store(false, Ordering::SeqCst);
        self.open().retain(|_, c| {
            let keep = c.hold && (commit || !c.in_block.load(Ordering::SeqCst));
            c.in_block.store(false, Ordering::SeqCst);
            keep
        });
    }

    /// Start (`true`) or end a multi-statement query string; at its end, outside an explicit block,
    /// the cursors without HOLD it declared close.
    pub(crate) fn implicit(&self, on: bool) {
        self.implicit.store(on, Ordering::SeqCst);
        if !on && !self.explicit.load(Ordering::SeqCst) {
            self.open().retain(|_, c| c.hold);
        }
    }

    /// Refuse a new cursor `name` that exists (42P03) or that would be one too many (54000).
    pub(crate) fn check_new(&self, name: &str, limit: u32) -> Result<(), ErrorInfo> {
        let open = self.open();
        if open.contains_key(name) {
            return Err(error(
                state::DUPLICATE_CURSOR,
                format!("cursor \"{name}\" already exists"),
                "CLOSE it first, or pick another name",
            ));
        }
        if open.len() >= limit as usize {
            return Err(error(
                state::PROGRAM_LIMIT,
                format!(
                    "this connection already holds {} open cursors, the most limits.pgwire_cursors = {limit} allows",
                    open.len()
                ),
                "CLOSE a cursor (or CLOSE ALL) first, or raise limits.pgwire_cursors in rvbbit.toml [limits]",
            ));
        }
        Ok(())
    }

    /// Add a checked cursor.
    pub(crate) fn insert(&self, name: &str, cursor: Cursor, limit: u32) -> Result<(), ErrorInfo> {
        self.check_new(name, limit)?;
        self.open().insert(name.to_owned(), Arc::new(cursor));
        Ok(())
    }

    /// The open cursor `name` (34000 when there is none).
    pub(crate) fn get(&self, name: &str) -> Result<Arc<Cursor>, ErrorInfo> {
        self.open().get(name).cloned().ok_or_else(|| missing(name))
    }

    /// The columns of the open cursor `name`, if any.
    pub(crate) fn schema(&self, name: &str) -> Option<SchemaRef> {
        self.open().get(name).map(|c| c.schema.clone())
    }

    /// `CLOSE name` (34000 when there is none) or `CLOSE ALL` (None).
    pub(crate) fn close(&self, name: Option<&str>) -> Result<(), ErrorInfo> {
        let mut open = self.open();
        match name {
            None => open.clear(),
            Some(name) => {
                open.remove(name).ok_or_else(|| missing(name))?;
            }
        }
        Ok(())
    }
}

fn missing(name: &str) -> ErrorInfo {
    error(
        state::UNDEFINED_CURSOR,
        format!("cursor \"{name}\" does not exist"),
        "DECLARE it first (inside BEGIN … COMMIT unless WITH HOLD); cursors without HOLD close at the end of their transaction",
    )
}
