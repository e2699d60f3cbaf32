//! Running the cursor statements on a connection: DECLARE plans the query and keeps its stream, FETCH
//! answers a row set pulled from it as the client reads (`FETCH n`), MOVE skips rows (`MOVE n`), CLOSE
//! drops cursors.

use std::sync::Arc;

use pgwire::api::portal::Format;
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::error::PgWireResult;

use super::classify::{Declare, Param};
use super::cursor::{self, Cursor, Fetch};
use super::errors::{error, from_sql_error, state, user_error};
use super::handler::Conn;
use super::types;
use crate::error::Error;

impl Conn {
    /// `DECLARE`: refused outside a transaction block without HOLD (25P01), for a name already open
    /// (42P03) or past `limits.pgwire_cursors` (54000), all before the query is planned.
    pub(in crate::pgwire) async fn declare(
        &self,
        declare: &Declare,
        params: &[Param],
    ) -> PgWireResult<Response> {
        self.check_open()?;
        let header = &declare.header;
        if !header.hold && !self.cursors.in_block() {
            return Err(user_error(error(
                state::NO_TRANSACTION,
                "DECLARE CURSOR can only be used in transaction blocks",
                "run BEGIN first, or declare the cursor WITH HOLD",
            )));
        }
        let limit = self.session.limits().cursors;
        self.cursors.check_new(&header.name, limit).map_err(user_error)?;
        let text = self.rendered(&declare.sql, params).await?;
        if declare.sql.reads_catalog {
            self.refresh_catalog().await?;
        }
        let fail = |e: Error| user_error(from_sql_error(&e, &text));
        let planner = self.session.planner();
        planner.check_text(&text).map_err(fail)?;
        let frame = planner.plan_and_check(&text).await.map_err(fail)?;
        let stream = frame
            .execute_stream()
            .await
            .map_err(|e| fail(Error::from_datafusion(e)))?;
        let cursor = Cursor::new(header, stream, self.cursors.explicit_block());
        self.cursors
            .insert(&header.name, cursor, limit)
            .map_err(user_error)?;
        Ok(Response::Execution(Tag::new("DECLARE CURSOR")))
    }

    /// `FETCH` (rows in `format`; a BINARY cursor's are binary unless the client asked for a format)
    /// or `MOVE`.
    pub(in crate::pgwire) async fn fetch(&self, fetch: &Fetch, format: &Format) -> PgWireResult<Response> {
        self.check_open()?;
        let cursor = self.cursors.get(&fetch.name).map_err(user_error)?;
        if fetch.moving {
            let moved = cursor.skip(fetch.count).await.map_err(user_error)?;
            let moved = usize::try_from(moved).unwrap_or(usize::MAX);
            return Ok(Response::Execution(Tag::new("MOVE").with_rows(moved)));
        }
        let format = match format {
            Format::UnifiedText if cursor.binary => Format::UnifiedBinary,
            other => other.clone(),
        };
        let fields = Arc::new(types::fields(&cursor.schema, &format));
        let rows = cursor::rows(cursor, fetch.count, fields.clone());
        let mut response = QueryResponse::new(fields, rows);
        response.set_command_tag("FETCH");
        Ok(Response::Query(response))
    }

    /// `CLOSE name` / `CLOSE ALL` (None).
    pub(in crate::pgwire) fn close_cursor(&self, name: Option<&str>) -> PgWireResult<Response> {
        self.cursors.close(name).map_err(user_error)?;
        let tag = if name.is_some() {
            "CLOSE CURSOR"
        } else {
            "CLOSE CURSOR ALL"
        };
        Ok(Response::Execution(Tag::new(tag)))
    }

    /// The columns a FETCH answers (text format; none for MOVE or a cursor not open yet).
    pub(in crate::pgwire) fn fetch_fields(&self, fetch: &Fetch) -> Vec<FieldInfo> {
        if fetch.moving {
            return Vec::new();
        }
        self.cursors
            .schema(&fetch.name)
            .map(|s| types::fields(&s, &Format::UnifiedText))
            .unwrap_or_default()
    }

    /// The columns of the open cursor `name` in its own format, for a Describe of the portal of that
    /// name (psycopg's named cursors describe the cursor they declared).
    pub(in crate::pgwire) fn cursor_fields(&self, name: &str) -> Option<Vec<FieldInfo>> {
        let cursor = self.cursors.get(name).ok()?;
        let format = if cursor.binary {
            Format::UnifiedBinary
        } else {
            Format::UnifiedText
        };
        Some(types::fields(&cursor.schema, &format))
    }
}
