//! The simple and extended query protocols of one connection ([`Handler`], [`Parser`]): parse,
//! describe, bind and execute, each through the connection's [`Conn`].

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt, StreamExt, stream};
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler, send_describe_response};
use pgwire::api::results::{
    DescribePortalResponse, DescribeStatementResponse, FieldInfo, QueryResponse, Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, DEFAULT_NAME, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::data::{NoData, ParameterDescription};
use pgwire::messages::extendedquery::{
    Describe, Execute, TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};
use pgwire::messages::simplequery::Query;

use super::classify::{Kind, Param};
use super::copy;
use super::errors::{error, state, user_error};
use super::params;
use super::types;

use super::handler::{Conn, Prepared};

/// The handlers of one connection.
pub(crate) struct Handler {
    pub(crate) conn: Arc<Conn>,
    pub(crate) parser: Arc<Parser>,
}

/// The extended protocol's statement parser (plans to describe).
pub(crate) struct Parser {
    pub(crate) conn: Arc<Conn>,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        self.conn.ensure_ready(client)?;
        let mut kinds = self.conn.parse(sql).await.map_err(PgWireError::UserError)?;
        if kinds.len() > 1 {
            return Err(user_error(error(
                state::SYNTAX,
                "cannot insert multiple commands into a prepared statement",
                "send one statement per Parse, or use the simple query protocol",
            )));
        }
        let mut prepared = Prepared {
            kind: kinds.pop(),
            types: types.to_vec(),
            fields: None,
        };
        self.conn.describe(&mut prepared).await;
        Ok(Some(prepared))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        let count = match &stmt.kind {
            Some(Kind::Sql(sql)) => sql.params,
            Some(Kind::Declare(declare)) => declare.sql.params,
            _ => 0,
        };
        Ok((0..count.max(stmt.types.len()))
            .map(|i| stmt.types.get(i).cloned().flatten().unwrap_or(Type::TEXT))
            .collect())
    }

    fn get_result_schema(&self, stmt: &Prepared, format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        let fields = stmt.fields.clone().unwrap_or_default();
        Ok(with_format(fields, format))
    }
}

fn with_format(fields: Vec<FieldInfo>, format: Option<&Format>) -> Vec<FieldInfo> {
    let Some(format) = format else {
        return fields;
    };
    fields
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            FieldInfo::new(
                f.name().to_owned(),
                None,
                None,
                f.datatype().clone(),
                types::field_format(format, i),
            )
            .with_type_size(f.type_size())
        })
        .collect()
}

/// Decode the bound parameters to text (binary values of the common types are converted).
fn bound_params(portal: &Portal<Prepared>) -> PgWireResult<Vec<Param>> {
    let mut out = Vec::with_capacity(portal.parameters.len());
    for (i, raw) in portal.parameters.iter().enumerate() {
        let ty = portal
            .statement
            .statement
            .types
            .get(i)
            .cloned()
            .flatten()
            .unwrap_or(Type::UNKNOWN);
        let Some(bytes) = raw else {
            out.push(Param { value: None, ty });
            continue;
        };
        let value = if portal.parameter_format.is_binary(i) {
            params::decode_binary(bytes, &ty, i).map_err(user_error)?
        } else {
            String::from_utf8(bytes.to_vec()).map_err(|_| {
                user_error(error(
                    state::INVALID_TEXT,
                    format!("parameter ${} is not valid UTF-8", i + 1),
                    "send text parameters as UTF-8",
                ))
            })?
        };
        out.push(Param {
            value: Some(value),
            ty,
        });
    }
    Ok(out)
}

#[async_trait]
impl SimpleQueryHandler for Handler {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // Counted until the response (ReadyForQuery included) is written: shutdown waits for it.
        let _busy = self.conn.server.busy();
        self._on_query(client, query).await
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.conn.ensure_ready(client)?;
        let mut responses = Vec::new();
        let kinds = match self.conn.parse(query).await {
            Ok(kinds) => kinds,
            Err(info) => return Ok(vec![Response::Error(info)]),
        };
        // Several statements in one string run in PostgreSQL's implicit transaction block.
        let implicit = kinds.len() > 1;
        if implicit {
            self.conn.cursors.implicit(true);
        }
        let ran = self.run_all(client, &kinds, &mut responses).await;
        if implicit {
            self.conn.cursors.implicit(false);
        }
        ran?;
        if responses.is_empty() {
            responses.push(Response::EmptyQuery);
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Handler {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let _busy = self.conn.server.busy();
        let result = self._on_execute(client, message).await;
        client.flush().await?;
        result
    }

    /// A statement that returns no rows is described as ParameterDescription + NoData, as PostgreSQL
    /// does (pgwire sends an empty RowDescription when there are parameters, which pgjdbc takes for a
    /// query: `executeBatch` then reports 0 rows). Everything else is pgwire's default.
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // A Describe of a portal named like an open SQL cursor describes the cursor, as in PostgreSQL.
        if message.target_type == TARGET_TYPE_BYTE_PORTAL {
            let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
            let cursor = match client.portal_store().get_portal(name) {
                None => self.conn.cursor_fields(name),
                Some(_) => None,
            };
            if let Some(fields) = cursor {
                return send_describe_response(client, &DescribePortalResponse::new(fields)).await;
            }
        }
        if message.target_type == TARGET_TYPE_BYTE_STATEMENT {
            let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
            if let Some(Entry::Value(stmt)) = client.portal_store().get_statement(name) {
                let described = self.do_describe_statement(client, &stmt).await?;
                if described.fields.is_empty() {
                    let oids = described.parameters.iter().map(Type::oid).collect();
                    client
                        .send(PgWireBackendMessage::ParameterDescription(
                            ParameterDescription::new(oids),
                        ))
                        .await?;
                    client.send(PgWireBackendMessage::NoData(NoData::new())).await?;
                    return Ok(());
                }
                return send_describe_response(client, &described).await;
            }
        }
        self._on_describe(client, message).await
    }

    async fn do_describe_statement<C>(
        &self,
        client: &mut C,
        target: &StoredStatement<Prepared>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &target.statement;
        let params = self.parser.get_parameter_types(prepared)?;
        let fields = match &prepared.fields {
            Some(f) => f.clone(),
            None => self.describe_by_running(client, prepared, &[]).await?,
        };
        Ok(DescribeStatementResponse::new(params, fields))
    }

    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        let fields = match &prepared.fields {
            Some(f) => f.clone(),
            None => {
                let params = bound_params(portal)?;
                self.describe_by_running(client, prepared, &params).await?
            }
        };
        Ok(DescribePortalResponse::new(with_format(
            fields,
            Some(&portal.result_column_format),
        )))
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.conn.ensure_ready(client)?;
        let prepared = &portal.statement.statement;
        let Some(kind) = &prepared.kind else {
            return Ok(Response::EmptyQuery);
        };
        let params = bound_params(portal)?;
        self.conn
            .run(client, kind, &params, &portal.result_column_format)
            .await
    }
}

/// A row set read to its end (a FETCH that more statements follow).
async fn read_rows(mut query: QueryResponse) -> PgWireResult<Response> {
    let mut rows = Vec::new();
    while let Some(row) = query.data_rows.next().await {
        rows.push(row?);
    }
    let mut read = QueryResponse::new(query.row_schema.clone(), stream::iter(rows.into_iter().map(Ok)));
    read.set_command_tag(query.command_tag());
    Ok(Response::Query(read))
}

/// The data of a `COPY … FROM STDIN` (`copy/input.rs`).
#[async_trait]
impl CopyHandler for Handler {
    async fn on_copy_data<C>(&self, _client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        copy::receive(&self.conn.copy_in, &data.data);
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let _busy = self.conn.server.busy();
        let rows = copy::done(&self.conn.session, &self.conn.copy_in).await?;
        let tag = Tag::new("COPY").with_rows(rows);
        client
            .send(PgWireBackendMessage::CommandComplete(tag.into()))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        user_error(copy::fail(&self.conn.copy_in, &fail.message))
    }
}

impl Handler {
    /// Run a query string's statements until one fails. The rows of a FETCH followed by more
    /// statements are read before those run (a later MOVE or CLOSE must not overtake them); the last
    /// statement's rows stream as the client reads them.
    async fn run_all<C>(
        &self,
        client: &mut C,
        kinds: &[Kind],
        responses: &mut Vec<Response>,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        for (i, kind) in kinds.iter().enumerate() {
            let ran = match self.conn.run(client, kind, &[], &Format::UnifiedText).await {
                Ok(Response::Query(query)) if matches!(kind, Kind::Fetch(_)) && i + 1 < kinds.len() => {
                    read_rows(query).await
                }
                other => other,
            };
            match ran {
                Ok(r) => responses.push(r),
                Err(PgWireError::UserError(info)) => {
                    responses.push(Response::Error(info));
                    break;
                }
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    /// Run a statement whose columns are only known by running it (RVBBIT MAP); keep the result for
    /// the Execute that follows.
    async fn describe_by_running<C>(
        &self,
        _client: &mut C,
        prepared: &Prepared,
        params: &[Param],
    ) -> PgWireResult<Vec<FieldInfo>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let Some(Kind::Sql(sql)) = &prepared.kind else {
            return Ok(Vec::new());
        };
        if sql.params > params.len() {
            return Ok(Vec::new());
        }
        let text = self.conn.rendered(sql, params).await?;
        let result = self.conn.execute(sql, &text).await?;
        let fields = types::fields(&result.schema, &Format::UnifiedText);
        self.conn
            .early
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(text, result);
        Ok(fields)
    }
}
