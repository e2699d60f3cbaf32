//! `COPY (query) TO STDOUT`: the query's DataFusion stream is sent batch by batch, one CopyData per
//! row, with a flush after each batch, so the server holds one batch at a time whatever the row count.

use std::fmt::Debug;

use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{Response, Tag};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyOutResponse};

use super::CopyFormat;
use super::format::RowEncoder;
use crate::error::Error;
use crate::pgwire::errors::{error, from_sql_error, state, user_error};
use crate::pgwire::types;
use crate::session::SqlSession;

/// Plan `text` (a query), answer CopyOutResponse and stream its rows in `format`; the response is the
/// `COPY n` tag. Errors before the first row are plain statement errors; an error while streaming ends
/// the copy with an ErrorResponse (the client drops the partial data, as with PostgreSQL).
///
/// The statement's rvbbit function calls run as in any statement, but the statement is not recorded
/// in `sql_query_log` (it is never collected into one result).
pub(in crate::pgwire) async fn send<C>(
    session: &SqlSession,
    client: &mut C,
    text: &str,
    format: &CopyFormat,
) -> PgWireResult<Response>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let fail = |e: Error| user_error(from_sql_error(&e, text));
    let planner = session.planner();
    planner.check_text(text).map_err(fail)?;
    let frame = planner.plan_and_check(text).await.map_err(fail)?;
    let schema = frame.schema().as_arrow().clone();
    let mut stream = frame
        .execute_stream()
        .await
        .map_err(|e| fail(Error::from_datafusion(e)))?;
    let fields = types::fields(&schema, &Format::UnifiedText);
    let names: Vec<String> = fields.iter().map(|f| f.name().to_owned()).collect();
    let pg_types: Vec<Type> = fields.iter().map(|f| f.datatype().clone()).collect();
    let columns = i16::try_from(names.len()).map_err(|_| {
        user_error(error(
            state::PROGRAM_LIMIT,
            "COPY cannot send more than 32767 columns",
            "",
        ))
    })?;
    let code = format.code();
    client
        .send(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
            code,
            columns,
            vec![i16::from(code); names.len()],
        )))
        .await?;
    let mut encoder = RowEncoder::new(format.clone(), pg_types);
    if let Some(header) = encoder.header(&names) {
        client
            .feed(PgWireBackendMessage::CopyData(CopyData::new(header)))
            .await?;
    }
    let mut rows = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| fail(Error::from_datafusion(e)))?;
        let encoded = encoder.batch(&batch).map_err(|e| {
            user_error(error(
                state::INTERNAL,
                format!("a result value cannot be sent: {e}"),
                "cast the column to text in the query",
            ))
        })?;
        rows += encoded.len();
        for row in encoded {
            client
                .feed(PgWireBackendMessage::CopyData(CopyData::new(row)))
                .await?;
        }
        // Waits for the socket: a slow client slows the query instead of growing a buffer.
        client.flush().await?;
    }
    if let Some(trailer) = encoder.finish() {
        client
            .feed(PgWireBackendMessage::CopyData(CopyData::new(trailer)))
            .await?;
    }
    client
        .send(PgWireBackendMessage::CopyDone(CopyDone::new()))
        .await?;
    Ok(Response::Execution(Tag::new("COPY").with_rows(rows)))
}
