//! The shared backend: one PostgreSQL database that many rvbbit processes on many hosts write at once.
//!
//! [`PostgresStore`] holds a pool of connections (tokio-postgres under deadpool). Every write that must
//! happen once is one conditional statement, so PostgreSQL's row locks decide the winner across hosts:
//! a claim of a waiting session is `UPDATE … WHERE status = 'waiting' AND <checkpoint pending>`, a signal
//! fires with `UPDATE … WHERE status = 'waiting' RETURNING`, a session id is created with
//! `INSERT … ON CONFLICT DO NOTHING`, and events are idempotent by event id (`ON CONFLICT DO NOTHING`).
//! Migrations run under a transaction-scoped advisory lock, so processes opening a new database at once
//! apply each step exactly once; a schema from a newer rvbbit is refused before anything is written.
//!
//! Transient conflicts (serialization failures, deadlocks, lock timeouts) surface as [`Error::Busy`];
//! a server that cannot be reached, or refuses the credentials, as [`Error::Unavailable`]. URLs in
//! messages have their password masked.

mod batches;
mod channels;
mod checkpoints;
mod conversations;
mod events;
mod journal;
mod keys;
mod limits;
pub(crate) mod migrations;
mod sessions;
mod tls;
mod workers;

use std::io::Write;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rvbbit_core::Timestamp;
use tokio::sync::broadcast;
use tokio_postgres::AsyncMessage;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Result};
use crate::model::{Prune, StoreStatus};
use crate::traits::Store;

/// The tables of the schema, in backup order.
const TABLES: &[&str] = &[
    "schema_migrations",
    "sessions",
    "events",
    "result_cache",
    "signals",
    "checkpoints",
    "api_keys",
    "journal",
    "effects",
    "workers",
    "batches",
    "spend_limits",
    "conversations",
    "conversation_messages",
    "conversation_turns",
    "channel_identities",
    "channel_links",
    "channel_integrations",
];

/// Connections a process keeps to the server at most.
const POOL_SIZE: usize = 16;

pub use rvbbit_core::config::mask_url;

/// An error from the server as the store's error: transient conflicts are [`Error::Busy`].
pub(crate) fn fail(url: &str, action: &str, e: tokio_postgres::Error) -> Error {
    let transient = e.code().is_some_and(|c| {
        *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::LOCK_NOT_AVAILABLE
    });
    if transient {
        Error::Busy {
            url: url.to_owned(),
            action: action.to_owned(),
            source: Box::new(e),
        }
    } else {
        Error::Unavailable {
            url: url.to_owned(),
            action: action.to_owned(),
            source: Box::new(e),
        }
    }
}

/// A corrupt-row error for `what`.
pub(crate) fn corrupt(url: &str, what: &'static str, detail: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        url: url.to_owned(),
        what,
        detail: detail.to_string(),
    }
}

/// A `u64` count from a `bigint`.
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Query parameters built alongside a WHERE clause (`$1`, `$2`, … in order).
#[derive(Default)]
pub(crate) struct Params {
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Params {
    /// Add a value; returns its placeholder.
    pub(crate) fn push(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.values.push(Box::new(v));
        format!("${}", self.values.len())
    }

    /// The values as the driver takes them.
    pub(crate) fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// The channel of change notifications (`NOTIFY rvbbit_changes, '<session id>'`).
pub(crate) const CHANGES: &str = "rvbbit_changes";

/// The sender of the listening connection, while it is connected.
type Listener = Arc<tokio::sync::Mutex<Option<broadcast::Sender<Arc<str>>>>>;

/// The shared PostgreSQL store. Cheap to clone (clones share one pool).
#[derive(Clone)]
pub struct PostgresStore {
    url: Arc<str>,
    pool: Pool,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    listener: Listener,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("url", &self.url).finish()
    }
}

impl PostgresStore {
    /// Connect to `url` (`postgres://user[:password]@host[:port]/database[?connect_timeout=S&…]`), check
    /// the server answers, and migrate the schema. TLS follows libpq's `sslmode` and `sslrootcert`
    /// parameters (see the `tls` module).
    ///
    /// Errors: [`Error::Unavailable`] for a malformed URL, an unreadable root certificate, a server that
    /// cannot be reached, refuses the credentials or fails the TLS checks (naming the URL with its
    /// password masked); [`Error::SchemaTooNew`] and [`Error::Migration`].
    pub async fn open(url: &str) -> Result<Self> {
        let masked: Arc<str> = Arc::from(mask_url(url));
        let bad_url = |source: Box<dyn std::error::Error + Send + Sync>| Error::Unavailable {
            url: masked.to_string(),
            action: "read its URL (expected postgres://user[:password]@host[:port]/database)".into(),
            source,
        };
        let (plain, verify, root_cert) = tls::split_url(url).map_err(|e| bad_url(e.into()))?;
        let mut config = tokio_postgres::Config::from_str(&plain).map_err(|e| bad_url(Box::new(e)))?;
        let tls = tls::connector(&tls::options(config.get_ssl_mode(), verify, root_cert)).map_err(|e| {
            Error::Unavailable {
                url: masked.to_string(),
                action: "set up TLS".into(),
                source: e.into(),
            }
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("rvbbit");
        }
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .build()
            .map_err(|e| Error::Internal(format!("the PostgreSQL pool could not be built: {e}")))?;
        let store = PostgresStore {
            url: masked,
            pool,
            config,
            tls,
            listener: Arc::default(),
        };
        // Connect first, so an unreachable server or refused credentials say "connect".
        drop(store.client("connect").await?);
        store.migrate().await?;
        Ok(store)
    }

    /// A pooled connection. Errors: [`Error::Unavailable`] naming why (refused, timed out, credentials).
    pub(crate) async fn client(&self, action: &str) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| {
            let source: Box<dyn std::error::Error + Send + Sync> = match e {
                deadpool_postgres::PoolError::Backend(e) => match tls::hint(&e) {
                    Some(fix) => Box::new(std::io::Error::other(format!(
                        "{}; {fix}",
                        rvbbit_core::error_chain(&e)
                    ))),
                    None => Box::new(e),
                },
                other => Box::new(std::io::Error::other(other.to_string())),
            };
            Error::Unavailable {
                url: self.url.to_string(),
                action: action.to_owned(),
                source,
            }
        })
    }

    /// The server's error as the store's, for `action`.
    pub(crate) fn fail(&self, action: &str, e: tokio_postgres::Error) -> Error {
        fail(&self.url, action, e)
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn url(&self) -> &str {
        &self.url
    }

    async fn migrate(&self) -> Result<Vec<String>> {
        let mut c = self.client("migrate").await?;
        migrations::apply(&mut c, &self.url).await
    }

    async fn status(&self) -> Result<StoreStatus> {
        let action = "read its status";
        let c = self.client(action).await?;
        let version = migrations::current(&c, &self.url).await?;
        let row = c
            .query_one(
                "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM sessions),
                 (SELECT count(*) FROM result_cache),
                 (SELECT coalesce(sum(hits), 0)::bigint FROM result_cache)
                   + (SELECT coalesce(sum((metadata->>'count')::bigint), 0)::bigint FROM events
                      WHERE kind = 'cache_hit' AND cost_micro_usd IS NOT NULL),
                 (SELECT count(*) FROM signals), (SELECT count(*) FROM checkpoints),
                 (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
                  JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = current_schema() AND c.relkind = 'r'
                  AND c.relname = ANY($1))",
                &[&TABLES],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        Ok(StoreStatus {
            url: self.url.to_string(),
            schema_version: version,
            latest_version: migrations::latest(),
            pending: migrations::pending(version),
            events: count(row.get(0)),
            sessions: count(row.get(1)),
            cache_entries: count(row.get(2)),
            cache_hits: count(row.get(3)),
            signals: count(row.get(4)),
            checkpoints: count(row.get(5)),
            size_bytes: Some(count(row.get(6))),
        })
    }

    async fn ping(&self) -> Result<()> {
        let c = self.client("answer a ping").await?;
        c.query_one("SELECT count(*) FROM schema_migrations", &[])
            .await
            .map_err(|e| self.fail("answer a ping", e))?;
        Ok(())
    }

    async fn subscribe(&self) -> Result<Option<broadcast::Receiver<Arc<str>>>> {
        let action = "listen for changes";
        let mut slot = self.listener.lock().await;
        if let Some(tx) = slot.as_ref() {
            return Ok(Some(tx.subscribe()));
        }
        // One dedicated connection (outside the pool) per process listens for every session.
        let (client, mut connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| self.fail(action, e))?;
        let (tx, rx) = broadcast::channel(4096);
        let forward = tx.clone();
        let listener = self.listener.clone();
        let url = self.url.clone();
        tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        // An error only means nobody listens right now: nothing to deliver.
                        let _nobody = forward.send(Arc::from(n.payload()));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(url = %url, error = %e, "the change listener lost its connection; live feeds poll");
                        break;
                    }
                    None => break,
                }
            }
            // Dropping the last sender closes every receiver, so feeds know to poll.
            *listener.lock().await = None;
        });
        client
            .batch_execute(&format!("LISTEN {CHANGES}"))
            .await
            .map_err(|e| self.fail(action, e))?;
        // The client must live as long as the connection task delivers; leak it into that task's
        // lifetime by keeping it in a detached task that ends when the connection does.
        let mut closed = tx.subscribe();
        tokio::spawn(async move {
            while !matches!(closed.recv().await, Err(broadcast::error::RecvError::Closed)) {}
            drop(client);
        });
        *slot = Some(tx);
        Ok(Some(rx))
    }

    async fn server_version(&self) -> Result<Option<String>> {
        let action = "read its version";
        let c = self.client(action).await?;
        let row = c
            .query_one("SHOW server_version", &[])
            .await
            .map_err(|e| self.fail(action, e))?;
        Ok(Some(row.get(0)))
    }

    async fn compact(&self) -> Result<()> {
        let c = self.client("compact").await?;
        // VACUUM cannot run inside a transaction: one simple statement per table.
        for table in TABLES {
            c.batch_execute(&format!("VACUUM (ANALYZE) {table}"))
                .await
                .map_err(|e| self.fail("compact", e))?;
        }
        Ok(())
    }

    async fn prune(&self, before: Timestamp, now: Timestamp, dry_run: bool) -> Result<Prune> {
        let action = "prune";
        let mut c = self.client(action).await?;
        let tx = c.transaction().await.map_err(|e| self.fail(action, e))?;
        let t = before.micros();
        let old = "IN (SELECT session_id FROM sessions WHERE status NOT IN ('running', 'waiting')
                   AND coalesce(ended_at_us, updated_at_us) < $1)";
        // Events before the cutoff filed under no session record (a SQL statement's, under its caller).
        let orphan_events = "FROM events WHERE ts_us < $1
            AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = events.session_id)";
        let old_signals = "FROM signals WHERE status <> 'waiting' AND created_at_us < $1";
        let old_journal = "FROM journal WHERE created_at_us < $1";
        let old_effects = "FROM effects WHERE started_at_us < $1";
        let old_workers = "FROM workers WHERE heartbeat_at_us < $1";
        let old_batches = "FROM batches WHERE status NOT IN ('running', 'cancelling') AND updated_at_us < $1";
        let expired = "FROM result_cache WHERE expires_at_us IS NOT NULL AND expires_at_us <= $1";
        let counted = |sql: String, at: i64| {
            let tx = &tx;
            async move {
                let row = tx
                    .query_one(&format!("SELECT count(*) {sql}"), &[&at])
                    .await
                    .map_err(|e| self.fail(action, e))?;
                Ok::<u64, Error>(count(row.get(0)))
            }
        };
        let report = Prune {
            sessions: counted(format!("FROM sessions WHERE session_id {old}"), t).await?,
            events: counted(format!("FROM events WHERE session_id {old}"), t).await?
                + counted(orphan_events.to_owned(), t).await?,
            checkpoints: counted(format!("FROM checkpoints WHERE session_id {old}"), t).await?,
            signals: counted(old_signals.to_owned(), t).await?,
            cache_entries: counted(expired.to_owned(), now.micros()).await?,
            journal: counted(old_journal.to_owned(), t).await? + counted(old_effects.to_owned(), t).await?,
            workers: counted(old_workers.to_owned(), t).await?,
            batches: counted(old_batches.to_owned(), t).await?,
        };
        if dry_run {
            return Ok(report);
        }
        // Children first: events and checkpoints name their session, so they go before it.
        for (sql, at) in [
            (format!("DELETE FROM events WHERE session_id {old}"), t),
            (format!("DELETE {orphan_events}"), t),
            (format!("DELETE FROM checkpoints WHERE session_id {old}"), t),
            (format!("DELETE FROM sessions WHERE session_id {old}"), t),
            (format!("DELETE {old_signals}"), t),
            (format!("DELETE {expired}"), now.micros()),
            (format!("DELETE {old_journal}"), t),
            (format!("DELETE {old_effects}"), t),
            (format!("DELETE {old_workers}"), t),
            (format!("DELETE {old_batches}"), t),
        ] {
            tx.execute(&sql, &[&at]).await.map_err(|e| self.fail(action, e))?;
        }
        tx.commit().await.map_err(|e| self.fail(action, e))?;
        Ok(report)
    }

    async fn backup(&self, dir: &Path) -> Result<Vec<(String, u64)>> {
        let action = "back up";
        std::fs::create_dir_all(dir).map_err(|source| Error::File {
            action: "create the backup directory",
            path: dir.to_owned(),
            source,
        })?;
        let c = self.client(action).await?;
        let mut done = Vec::new();
        for table in TABLES {
            let path = dir.join(format!("{table}.jsonl"));
            let file_err = |source| Error::File {
                action: "write the backup file",
                path: path.clone(),
                source,
            };
            // One JSON object per row, column names as keys (bytea as hex, as the SQLite backup writes).
            let rows = c
                .query(&format!("SELECT row_to_json(t)::text FROM {table} t"), &[])
                .await
                .map_err(|e| self.fail(action, e))?;
            let file = std::fs::File::create(&path).map_err(file_err)?;
            let mut w = std::io::BufWriter::new(file);
            for row in &rows {
                let line: String = row.get(0);
                writeln!(w, "{line}").map_err(file_err)?;
            }
            w.flush().map_err(file_err)?;
            done.push(((*table).to_owned(), rows.len() as u64));
        }
        Ok(done)
    }
}
