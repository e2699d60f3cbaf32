//! The PostgreSQL wire server (`rvbbit serve sql`): psql, JDBC, psycopg and BI tools talk to rvbbit's
//! SQL sessions over the PostgreSQL protocol (crate `pgwire`).
//!
//! - One [`SqlSession`](crate::SqlSession) per connection (`sql-…` caller ids, protocol
//!   `postgresql_wire` in `sql_query_log`); every statement goes through `SqlSession::execute`.
//! - Simple and extended query protocols; `$n` parameters are bound as typed literals in the syntax
//!   tree (never by text substitution); results in text format, binary on request for the common types.
//! - `SET`/`RESET`/`SHOW` of PostgreSQL parameters and `rvbbit.*` settings; `BEGIN`/`COMMIT`/`ROLLBACK`
//!   accepted (no transactions: status tracked only, and cursors without HOLD close at the block's end).
//! - Forward-only SQL cursors (`DECLARE`/`FETCH`/`MOVE`/`CLOSE`) that stream their query (`cursor/`).
//! - A `pg_catalog` schema rebuilt from the session's catalog when a statement reads it (psql `\d`,
//!   JDBC `getTables`), and the catalog functions clients call.
//! - Authentication: trust on a loopback bind; otherwise a cleartext password that is an API key.
//! - CancelRequest cancels the running statement; shutdown lets running statements finish.

mod arrays;
mod ast;
mod auth;
mod bind;
mod catalog;
mod classify;
mod copy;
mod cursor;
mod cursor_run;
mod errors;
mod handler;
mod infer;
mod known;
mod params;
mod query;
mod rewrite;
mod settings;
mod split;
mod subquery;
mod types;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::{ConnectionManager, PgWireServerHandlers, RandomPidSecretKeyGenerator};
use rvbbit_core::Origin;
use rvbbit_store::Store;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::session::SqlRuntime;

pub use auth::server_version;

/// The rows of `result` exactly as this server sends them in text format (`None` for NULL): booleans
/// `t`/`f`, floats `Infinity`/`NaN`, bytea `\\x…`, arrays `{…}`. With [`sqlstate`] it holds an
/// in-process run to the wire's answers (the `.slt` tests run every file both ways).
///
/// Errors: [`crate::Error::Execution`] for a value the encoder cannot write.
pub fn text_rows(result: &crate::QueryResult) -> crate::Result<Vec<Vec<Option<String>>>> {
    types::text_rows(&result.batches).map_err(|message| crate::Error::Execution { message })
}

/// The SQLSTATE this server reports for `err` (e.g. `42P01` for an unknown table).
pub fn sqlstate(err: &crate::Error) -> String {
    errors::from_sql_error(err, "").code
}

/// How the wire server authenticates clients.
#[derive(Clone)]
pub enum WireAuth {
    /// Every client is let in (for loopback binds only).
    Trust,
    /// Clients send a cleartext password that must be an active API key of this store
    /// (`rvbbit keys create`); a wrong one fails with SQLSTATE 28P01.
    ApiKeys(Arc<dyn Store>),
}

impl std::fmt::Debug for WireAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireAuth::Trust => f.write_str("Trust"),
            WireAuth::ApiKeys(_) => f.write_str("ApiKeys"),
        }
    }
}

/// What the server did, for the caller's log line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireStats {
    /// Connections accepted.
    pub connections: usize,
    /// Statements still running when the shutdown grace ran out (they were abandoned).
    pub abandoned: usize,
}

/// Shared by every connection: the busy counter and the shutdown flag.
#[derive(Debug, Default)]
pub(crate) struct ServerState {
    busy: AtomicUsize,
    idle: Notify,
    pub(crate) shutting_down: AtomicBool,
}

/// Held while a statement runs and its response is written.
pub(crate) struct Busy(Arc<ServerState>);

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl ServerState {
    pub(crate) fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }
}

/// The PostgreSQL wire server over a [`SqlRuntime`].
#[derive(Debug)]
pub struct WireServer {
    runtime: SqlRuntime,
    auth: WireAuth,
    grace: Duration,
}

struct Handlers {
    handler: Arc<query::Handler>,
    startup: Arc<auth::Startup>,
    cancel: Arc<DefaultCancelHandler>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl pgwire::api::query::SimpleQueryHandler> {
        self.handler.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl pgwire::api::query::ExtendedQueryHandler> {
        self.handler.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.startup.clone()
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.cancel.clone()
    }

    fn copy_handler(&self) -> Arc<impl pgwire::api::copy::CopyHandler> {
        self.handler.clone()
    }
}

impl WireServer {
    /// A server making one session of `runtime` per connection; `grace` is how long running
    /// statements may take to finish on shutdown.
    pub fn new(runtime: SqlRuntime, auth: WireAuth, grace: Duration) -> WireServer {
        WireServer { runtime, auth, grace }
    }

    /// Accept connections on `listener` until `shutdown` completes; then stop accepting, refuse new
    /// statements (SQLSTATE 57P01), wait up to the grace period for running ones to finish and return.
    ///
    /// Errors: none once listening; an accept error is logged and the loop goes on.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> WireStats {
        let state = Arc::new(ServerState::default());
        let manager = Arc::new(ConnectionManager::new());
        let startup = Arc::new(auth::Startup {
            auth: match &self.auth {
                WireAuth::Trust => auth::Auth::Trust,
                WireAuth::ApiKeys(store) => auth::Auth::ApiKeys(store.clone()),
            },
            manager: manager.clone(),
            pids: Arc::new(RandomPidSecretKeyGenerator::default()),
        });
        let cancel = Arc::new(DefaultCancelHandler::new(manager));
        let mut stats = WireStats::default();
        let mut tasks = tokio::task::JoinSet::new();
        let cap = self.runtime.limits().connections;
        let open = Arc::new(AtomicUsize::new(0));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => {
                    let (socket, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    // Disabling Nagle is an optimisation: a socket that refuses it still serves the client.
                    let _ = socket.set_nodelay(true);
                    if open.load(Ordering::SeqCst) >= cap as usize {
                        tracing::warn!(%peer, cap, "Connection refused: limits.pgwire_connections reached");
                        tasks.spawn(refuse_connection(socket, cap));
                        continue;
                    }
                    let slot = Slot::take(&open);
                    stats.connections += 1;
                    let session = self.runtime.session_for(Origin::Sql, "postgresql_wire");
                    let conn = Arc::new(handler::Conn::new(session, state.clone()));
                    let handlers = Handlers {
                        handler: Arc::new(query::Handler {
                            conn: conn.clone(),
                            parser: Arc::new(query::Parser { conn }),
                        }),
                        startup: startup.clone(),
                        cancel: cancel.clone(),
                    };
                    // On the big-stack SQL threads: a connection binds, prints, clones and drops statement
                    // trees as deep as `limits.sql_expression_depth`, which recurses.
                    tasks.spawn_on(async move {
                        let _slot = slot;
                        if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                    }, self.runtime.sql_threads());
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        drop(listener);
        state.shutting_down.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + self.grace;
        loop {
            let idle = state.idle.notified();
            if state.busy.load(Ordering::SeqCst) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                stats.abandoned = state.busy.load(Ordering::SeqCst);
                break;
            }
        }
        tasks.abort_all();
        stats
    }
}

/// One open connection, counted against `limits.pgwire_connections` until dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(open: &Arc<AtomicUsize>) -> Slot {
        open.fetch_add(1, Ordering::SeqCst);
        Slot(open.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Seconds a refused client gets to send its startup packet before it is dropped.
const REFUSE_SECONDS: u64 = 5;

/// Refuse a connection over `limits.pgwire_connections` as PostgreSQL does: read the startup packet
/// (answering `N` to an SSL or GSS encryption request first), send a FATAL ErrorResponse with SQLSTATE
/// 53300 `too_many_connections`, close. Bounded by [`REFUSE_SECONDS`].
async fn refuse_connection(mut socket: tokio::net::TcpStream, cap: u32) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const SSL_REQUEST: u32 = 80_877_103;
    const GSS_REQUEST: u32 = 80_877_104;
    let exchange = async {
        loop {
            let len = socket.read_u32().await? as usize;
            if !(8..=10_000).contains(&len) {
                break;
            }
            let mut body = vec![0u8; len - 4];
            socket.read_exact(&mut body).await?;
            let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
            if code == SSL_REQUEST || code == GSS_REQUEST {
                socket.write_all(b"N").await?;
                continue;
            }
            break;
        }
        let message = format!(
            "sorry, too many clients already: this server serves at most {cap} connections at once \
             (limits.pgwire_connections = {cap}); retry later, or raise it in rvbbit.toml [limits]"
        );
        socket
            .write_all(&error_response(errors::state::TOO_MANY_CONNECTIONS, &message))
            .await?;
        socket.shutdown().await
    };
    let timed = tokio::time::timeout(Duration::from_secs(REFUSE_SECONDS), exchange).await;
    if let Ok(Err(e)) = timed {
        tracing::debug!(error = %e, "refused connection ended with an error");
    }
}

/// A FATAL ErrorResponse message (before any session exists, so it is encoded here).
fn error_response(sqlstate: &str, message: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (tag, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', sqlstate),
        (b'M', message),
    ] {
        fields.push(tag);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut out = vec![b'E'];
    let len = u32::try_from(fields.len() + 4).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&fields);
    out
}
