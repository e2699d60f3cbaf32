//! One connection ([`Conn`]): its SQL session, PostgreSQL parameters and catalog state, and how it
//! runs a statement on top of [`SqlSession::execute`]. The protocols over it are in `query.rs`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use futures::{Sink, SinkExt, stream};
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::{ClientInfo, METADATA_DATABASE, METADATA_USER, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::response::NoticeResponse;

use super::ServerState;
use super::catalog::{self, CatalogState, Identity};
use super::classify::{self, Kind, Param, Sql};
use super::copy::{self, CopyFormat};
use super::cursor::Cursors;
use super::errors::{error, from_sql_error, state, user_error};
use super::{infer, settings, split, types};
use crate::options::RvbbitOptions;
use crate::session::SqlSession;

/// A connection's state (shared by its query handlers and its statement parser).
pub(crate) struct Conn {
    pub(super) session: SqlSession,
    pub(super) server: Arc<ServerState>,
    pub(super) catalog: CatalogState,
    /// PostgreSQL parameters changed by SET (lower-case names).
    pub(super) params: Mutex<BTreeMap<String, String>>,
    /// (database, user), known after startup.
    pub(super) identity: OnceLock<(String, String)>,
    /// Results of statements executed early to describe them (RVBBIT MAP), by their SQL.
    pub(super) early: Mutex<HashMap<String, crate::result::QueryResult>>,
    /// The `COPY … FROM STDIN` being received.
    pub(super) copy_in: copy::Pending,
    /// The open SQL cursors and the transaction block state.
    pub(super) cursors: Cursors,
    /// The session's semantic functions as `pg_proc` lists them.
    pub(super) procs: Vec<catalog::Proc>,
}

impl Conn {
    pub(crate) fn new(session: SqlSession, server: Arc<ServerState>) -> Conn {
        Conn {
            procs: catalog::procs(session.semantic_functions()),
            session,
            server,
            catalog: CatalogState::default(),
            params: Mutex::new(BTreeMap::new()),
            identity: OnceLock::new(),
            early: Mutex::new(HashMap::new()),
            copy_in: copy::Pending::default(),
            cursors: Cursors::default(),
        }
    }

    /// Install the catalog on first use (it needs the database and user names from the startup).
    pub(super) fn ensure_ready<C: ClientInfo>(&self, client: &C) -> PgWireResult<()> {
        if self.identity.get().is_some() {
            return Ok(());
        }
        let user = client
            .metadata()
            .get(METADATA_USER)
            .cloned()
            .unwrap_or_else(|| "rvbbit".into());
        let database = client
            .metadata()
            .get(METADATA_DATABASE)
            .cloned()
            .unwrap_or_else(|| user.clone());
        let (pid, _) = client.pid_and_secret_key();
        let identity = Identity {
            database: &database,
            user: &user,
            settings: Vec::new(),
            procs: &self.procs,
        };
        catalog::install(self.session.context(), &identity, pid).map_err(|e| {
            user_error(error(
                state::INTERNAL,
                format!("the catalog cannot be set up: {e}"),
                "",
            ))
        })?;
        // Set once, after the check above that it is unset: a lost race would set the same identity.
        let _ = self.identity.set((database, user));
        Ok(())
    }

    /// The value `SHOW name` gives: an `rvbbit.*` or `datafusion.*` setting of the session, else a
    /// PostgreSQL parameter of the connection.
    fn setting(&self, name: &str) -> Option<String> {
        if name.starts_with("rvbbit.") || name.starts_with("datafusion.") {
            self.session_entries()
                .into_iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v)
        } else {
            self.param(name)
        }
    }

    pub(super) fn param(&self, name: &str) -> Option<String> {
        let lower = name.to_ascii_lowercase();
        if let Some(v) = self.params.lock().unwrap_or_else(|p| p.into_inner()).get(&lower) {
            return Some(v.clone());
        }
        super::auth::defaults()
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&lower))
            .map(|(_, v)| v)
    }

    /// Every parameter and setting, for SHOW ALL and pg_settings.
    pub(super) fn all_settings(&self) -> Vec<(String, String)> {
        let mut all: BTreeMap<String, String> = super::auth::defaults()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        for (k, v) in self.params.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            all.insert(k.clone(), v.clone());
        }
        for entry in self.session_entries() {
            all.insert(entry.0, entry.1);
        }
        all.into_iter().collect()
    }

    /// The session's `datafusion.*` and `rvbbit.*` settings in force (unset options show as "").
    pub(super) fn session_entries(&self) -> Vec<(String, String)> {
        let state = self.session.context().state();
        state
            .config()
            .options()
            .entries()
            .into_iter()
            .map(|e| (e.key, e.value.unwrap_or_default()))
            .collect()
    }

    pub(super) async fn refresh_catalog(&self) -> PgWireResult<()> {
        let (database, user) = self.identity.get().cloned().unwrap_or_default();
        let identity = Identity {
            database: &database,
            user: &user,
            settings: self.all_settings(),
            procs: &self.procs,
        };
        catalog::refresh(self.session.context(), &self.catalog, &identity)
            .await
            .map_err(|e| {
                user_error(error(
                    state::INTERNAL,
                    format!("the catalog cannot be read: {e}"),
                    "",
                ))
            })
    }

    /// Split and classify a query string under the runtime's limits, on the SQL threads.
    pub(super) async fn parse(&self, sql: &str) -> Result<Vec<Kind>, Box<ErrorInfo>> {
        let limits = self.session.limits();
        let operators = self.session.operators();
        let text = sql.to_owned();
        self.session
            .on_sql_thread(move || split::parse_checked(&text, &limits, operators).map_err(Box::new))
            .await
            .unwrap_or_else(|e| Err(Box::new(from_sql_error(&e, sql))))
    }

    /// Run one statement; `format` is the result column format the client asked for.
    pub(super) async fn run<C>(
        &self,
        client: &mut C,
        kind: &Kind,
        params: &[Param],
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match kind {
            Kind::SetParam { name, value } => {
                let mut p = self.params.lock().unwrap_or_else(|p| p.into_inner());
                match value {
                    Some(v) => p.insert(name.clone(), v.clone()),
                    None => p.remove(name),
                };
                Ok(Response::Execution(Tag::new("SET")))
            }
            Kind::Reset(name) => {
                match name {
                    None => {
                        self.params.lock().unwrap_or_else(|p| p.into_inner()).clear();
                        for (key, value) in RvbbitDefaults::entries() {
                            self.set_session(&key, &value).await?;
                        }
                    }
                    Some(n) if n.starts_with("rvbbit.") || n.starts_with("datafusion.") => {
                        let default = RvbbitDefaults::entries().into_iter().find(|(k, _)| k == n);
                        let Some((key, value)) = default else {
                            return Err(user_error(error(
                                state::UNDEFINED_OBJECT,
                                format!("unrecognized configuration parameter \"{n}\""),
                                "the rvbbit settings are rvbbit.udf_errors, rvbbit.cache, rvbbit.map_default_limit, rvbbit.run_default_limit and rvbbit.semantic_context_bytes",
                            )));
                        };
                        self.set_session(&key, &value).await?;
                    }
                    Some(n) => {
                        self.params.lock().unwrap_or_else(|p| p.into_inner()).remove(n);
                    }
                }
                Ok(Response::Execution(Tag::new("RESET")))
            }
            Kind::Show(name) => self.show(name, format),
            Kind::Begin => {
                self.cursors.begin();
                Ok(Response::TransactionStart(Tag::new("BEGIN")))
            }
            Kind::Commit => {
                self.cursors.end(true);
                Ok(Response::TransactionEnd(Tag::new("COMMIT")))
            }
            Kind::Rollback => {
                self.cursors.end(false);
                Ok(Response::TransactionEnd(Tag::new("ROLLBACK")))
            }
            Kind::Ignored(tag) => {
                if *tag == "DISCARD ALL" {
                    self.close_cursor(None)?;
                }
                Ok(Response::Execution(Tag::new(tag)))
            }
            Kind::Declare(declare) => self.declare(declare, params).await,
            Kind::Fetch(fetch) => self.fetch(fetch, format).await,
            Kind::Close(name) => self.close_cursor(name.as_deref()),
            Kind::CopyOut { sql, format } => self.copy_out(client, sql, format).await,
            Kind::CopyIn(target) => copy::start(&self.session, &self.copy_in, target).await,
            Kind::Refused(refusal) => Err(user_error(refusal.error())),
            Kind::Sql(sql) => self.run_sql(client, sql, params, format).await,
        }
    }

    /// `COPY (query) TO STDOUT`: the query's rows, streamed (`copy/out.rs`).
    async fn copy_out<C>(&self, client: &mut C, sql: &Sql, format: &CopyFormat) -> PgWireResult<Response>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.check_open()?;
        if sql.reads_catalog {
            self.refresh_catalog().await?;
        }
        let text = sql.render(&[]).map_err(user_error)?;
        copy::send(&self.session, client, &text, format).await
    }

    /// Refuse new statements once shutdown began (57P01).
    pub(super) fn check_open(&self) -> PgWireResult<()> {
        if self.server.shutting_down.load(Ordering::SeqCst) {
            return Err(user_error(error(
                state::SHUTDOWN,
                "the server is shutting down and accepts no new statements",
                "reconnect when the server is back",
            )));
        }
        Ok(())
    }

    pub(super) async fn set_session(&self, key: &str, value: &str) -> PgWireResult<()> {
        let sql = format!("SET {key} = '{}'", value.replace('\'', "''"));
        self.session
            .execute(&sql)
            .await
            .map(|_| ())
            .map_err(|e| user_error(from_sql_error(&e, &sql)))
    }

    pub(super) fn show(&self, name: &str, format: &Format) -> PgWireResult<Response> {
        let name = match name {
            "transaction isolation level" => "transaction_isolation",
            "time zone" => "timezone",
            other => other,
        };
        if name == "all" {
            let all = self.all_settings();
            let schema = Schema::new(vec![
                Field::new("name", DataType::Utf8, false),
                Field::new("setting", DataType::Utf8, false),
                Field::new("description", DataType::Utf8, false),
            ]);
            let names: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
            let values: Vec<&str> = all.iter().map(|(_, v)| v.as_str()).collect();
            let batch = RecordBatch::try_new(
                Arc::new(schema),
                vec![
                    Arc::new(StringArray::from(names)),
                    Arc::new(StringArray::from(values)),
                    Arc::new(StringArray::from(vec![""; all.len()])),
                ],
            )
            .map_err(|e| user_error(error(state::INTERNAL, e.to_string(), "")))?;
            return rows_response(&[batch], batch_schema(&all_schema()), format, "SHOW");
        }
        let value = self.setting(name);
        let Some(value) = value else {
            return Err(user_error(error(
                state::UNDEFINED_OBJECT,
                format!("unrecognized configuration parameter \"{name}\""),
                "SHOW ALL lists the parameters; the rvbbit settings are rvbbit.udf_errors, rvbbit.cache, rvbbit.map_default_limit, rvbbit.run_default_limit and rvbbit.semantic_context_bytes",
            )));
        };
        let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec![value]))])
            .map_err(|e| user_error(error(state::INTERNAL, e.to_string(), "")))?;
        rows_response(&[batch], &schema, format, "SHOW")
    }

    pub(super) async fn run_sql<C>(
        &self,
        client: &mut C,
        sql: &Sql,
        params: &[Param],
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.check_open()?;
        let text = self.rendered(sql, params).await?;
        let early = self.early.lock().unwrap_or_else(|p| p.into_inner()).remove(&text);
        let result = match early {
            Some(r) => r,
            None => self.execute(sql, &text).await?,
        };
        for n in &result.notices {
            let info = ErrorInfo::new("NOTICE".into(), "00000".into(), n.clone());
            client
                .feed(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(info)))
                .await?;
        }
        let tag = classify::command_tag(&text);
        if result.schema.fields().is_empty() {
            return Ok(Response::Execution(Tag::new(&tag)));
        }
        if is_row_count(&tag, &result.schema) {
            let rows = copy::affected_rows(&result.batches);
            let t = Tag::new(&tag).with_rows(rows);
            return Ok(Response::Execution(if tag == "INSERT" {
                t.with_oid(0)
            } else {
                t
            }));
        }
        rows_response(&result.batches, &result.schema, format, "SELECT")
    }

    /// The text to run for `sql`: its `current_setting`/`set_config` calls answered (and their
    /// assignments made), `params` bound.
    pub(super) async fn rendered(&self, sql: &Sql, params: &[Param]) -> PgWireResult<String> {
        if !sql.calls_settings {
            return sql.render(params).map_err(user_error);
        }
        // Bound first: a setting's name may be a parameter.
        let bound = sql.bound(params).map_err(user_error)?;
        let (answered, sets) = self.answer_settings(&bound)?;
        for (name, value) in sets {
            self.assign(&name, &value).await?;
        }
        answered.render(&[]).map_err(user_error)
    }

    pub(super) async fn execute(&self, sql: &Sql, text: &str) -> PgWireResult<crate::result::QueryResult> {
        if sql.reads_catalog {
            self.refresh_catalog().await?;
        }
        self.session
            .execute(text)
            .await
            .map_err(|e| user_error(from_sql_error(&e, text)))
    }

    /// Describe a parsed statement: the types of its parameters (`infer.rs`) and the columns it returns.
    /// A statement calling `current_setting`/`set_config` is described with the calls' values (the
    /// assignments wait for Execute); an unknown setting describes no columns and fails at Execute.
    pub(super) async fn describe(&self, prepared: &mut Prepared) {
        if let Some(Kind::Sql(sql)) = &prepared.kind {
            if sql.reads_catalog && self.refresh_catalog().await.is_err() {
                prepared.fields = None;
                return;
            }
            let answered = match sql.calls_settings.then(|| self.answer_settings(sql)) {
                None => None,
                Some(Ok((answered, _))) => Some(answered),
                // With parameters, a setting's name may be one of them: described at Bind, by running.
                Some(Err(_)) => {
                    prepared.fields = (sql.params == 0).then(Vec::new);
                    return;
                }
            };
            let sql = answered.as_ref().unwrap_or(sql);
            prepared.types = self.param_types(sql, &prepared.types).await;
            let fields = match sql.render_unbound(&prepared.types) {
                Some(text) => self.session.plan_schema(&text).await.ok(),
                None => None,
            };
            // INSERT/UPDATE/DELETE answer with a command tag (`INSERT 0 n`), never rows: NoData, as
            // PostgreSQL describes them (psycopg's rowcount and pgjdbc's executeUpdate read the tag).
            let tag = classify::command_tag(&sql.text);
            prepared.fields = fields.map(|schema| {
                if is_row_count(&tag, &schema) || is_ddl(&tag) {
                    Vec::new()
                } else {
                    types::fields(&schema, &Format::UnifiedText)
                }
            });
            return;
        }
        if let Some(Kind::Declare(declare)) = &prepared.kind {
            prepared.types = self.param_types(&declare.sql, &prepared.types).await;
        }
        prepared.fields = self.plan_fields(prepared);
    }

    /// `sql` with its `current_setting`/`set_config` calls replaced by their values (`settings.rs`),
    /// and the assignments its `set_config` calls make.
    fn answer_settings(&self, sql: &Sql) -> PgWireResult<(Sql, Vec<(String, String)>)> {
        let mut answered = sql.clone();
        let Some(ast) = answered.ast.as_mut() else {
            return Ok((answered, Vec::new()));
        };
        let lookup = |name: &str| self.setting(name);
        let sets = settings::substitute(ast, &lookup).map_err(user_error)?;
        Ok((answered, sets))
    }

    /// Apply a `set_config` assignment as `SET` would.
    async fn assign(&self, name: &str, value: &str) -> PgWireResult<()> {
        if name.starts_with("rvbbit.") || name.starts_with("datafusion.") {
            return self.set_session(name, value).await;
        }
        self.params
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), value.to_owned());
        Ok(())
    }

    /// The types of `sql`'s parameters: `given` by the client where it gave one, else what the statement
    /// implies (None: unknown).
    async fn param_types(&self, sql: &Sql, given: &[Option<Type>]) -> Vec<Option<Type>> {
        let all_given = given.len() >= sql.params && given.iter().all(Option::is_some);
        let Some(ast) = sql.ast.as_ref().filter(|_| !all_given) else {
            return given.to_vec();
        };
        let hints = infer::hints(ast, &sql.casts);
        // A statement DataFusion cannot plan with its placeholders still gets the casts' types; its
        // error comes at Execute.
        let inferred = self
            .session
            .plan_parameter_types(&hints.sql)
            .await
            .unwrap_or_default();
        infer::resolve(sql.params, given, &hints, &inferred)
    }

    /// The columns a statement other than SQL for the session returns.
    fn plan_fields(&self, prepared: &Prepared) -> Option<Vec<FieldInfo>> {
        match &prepared.kind {
            None | Some(Kind::Sql(_)) => Some(Vec::new()),
            Some(Kind::Show(name)) => {
                if name == "all" {
                    Some(types::fields(&all_schema(), &Format::UnifiedText))
                } else {
                    let n = match name.as_str() {
                        "transaction isolation level" => "transaction_isolation",
                        other => other,
                    };
                    Some(vec![FieldInfo::new(
                        n.to_owned(),
                        None,
                        None,
                        Type::TEXT,
                        pgwire::api::results::FieldFormat::Text,
                    )])
                }
            }
            Some(Kind::Fetch(fetch)) => Some(self.fetch_fields(fetch)),
            Some(_) => Some(Vec::new()),
        }
    }
}

/// Whether a statement with command tag `tag` returning `schema` is DML reporting its row count
/// (DataFusion's one `count` column), which the wire sends as the tag's count.
fn is_row_count(tag: &str, schema: &Schema) -> bool {
    matches!(tag, "INSERT" | "UPDATE" | "DELETE")
        && schema.fields().len() == 1
        && schema.field(0).name() == "count"
}

/// Whether a statement with command tag `tag` changes the schema (`CREATE TABLE`, `DROP VIEW`, …): it
/// answers with its tag only, though DataFusion plans `CREATE TABLE` with the new table's columns.
fn is_ddl(tag: &str) -> bool {
    ["CREATE", "DROP", "ALTER"]
        .iter()
        .any(|verb| tag.starts_with(verb))
}

pub(super) fn all_schema() -> Schema {
    Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("setting", DataType::Utf8, false),
        Field::new("description", DataType::Utf8, false),
    ])
}

pub(super) fn batch_schema(s: &Schema) -> &Schema {
    s
}

/// The defaults of the `rvbbit.*` settings (RESET).
pub(super) struct RvbbitDefaults;

impl RvbbitDefaults {
    pub(super) fn entries() -> Vec<(String, String)> {
        use datafusion::common::config::ExtensionOptions;
        RvbbitOptions::default()
            .entries()
            .into_iter()
            .map(|e| (e.key, e.value.unwrap_or_default()))
            .collect()
    }
}

/// Rows as a query response in the asked format.
pub(super) fn rows_response(
    batches: &[RecordBatch],
    schema: &Schema,
    format: &Format,
    tag: &str,
) -> PgWireResult<Response> {
    let fields = Arc::new(types::fields(schema, format));
    let rows = types::encode_rows(batches, &fields).map_err(|e| {
        user_error(error(
            state::INTERNAL,
            format!("a result value cannot be sent: {e}"),
            "cast the column to text in the query",
        ))
    })?;
    let mut response = QueryResponse::new(fields, stream::iter(rows.into_iter().map(Ok)));
    response.set_command_tag(tag);
    Ok(Response::Query(response))
}

/// A parsed statement of the extended protocol.
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    /// None: an empty query.
    pub(super) kind: Option<Kind>,
    /// Parameter types: the client's at Parse, else what the statement implies (None: unknown).
    pub(super) types: Vec<Option<Type>>,
    /// The result columns (text format), when known without running.
    pub(super) fields: Option<Vec<FieldInfo>>,
}
