//! The embedded backend: one SQLite file (WAL, `busy_timeout`), safe with many processes writing at once.
//!
//! Each [`SqliteStore`] owns one connection behind a mutex; every call runs on tokio's blocking pool
//! (`spawn_blocking`) and never holds the mutex across an `.await`. Write transactions start with
//! `BEGIN IMMEDIATE`, so a writer waits for the lock up front (bounded by `busy_timeout`) instead of
//! failing when upgrading a read lock. A lock held longer than `busy_timeout` surfaces as
//! [`Error::Busy`], which callers may retry.

mod batches;
mod channels;
mod checkpoints;
mod conversations;
mod events;
mod journal;
mod keys;
mod limits;
pub(crate) mod migrations;
mod prune;
mod sessions;
mod workers;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use rvbbit_core::{Event, Timestamp};

use crate::error::{Error, Result};
use crate::model::{Prune, Session, StoreStatus};
use crate::traits::Store;

/// Options of the embedded store, read from the URL's query (`sqlite://PATH?busy_timeout_ms=200&mode=ro`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// The database file.
    pub path: PathBuf,
    /// How long a write waits for another writer's lock before [`Error::Busy`] (default 5000 ms).
    pub busy_timeout: Duration,
    /// Open read-only (`mode=ro`): nothing is created or migrated.
    pub read_only: bool,
}

impl SqliteOptions {
    /// Parse `sqlite://PATH[?busy_timeout_ms=N&mode=ro|rw]`; a relative `PATH` is taken from `base`.
    pub fn from_url(url: &str, base: &Path) -> Result<Self> {
        let unsupported = || Error::UnsupportedUrl {
            url: url.to_owned(),
            supported: vec!["sqlite://PATH"],
        };
        let rest = url.strip_prefix("sqlite://").ok_or_else(unsupported)?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() {
            return Err(unsupported());
        }
        let mut options = SqliteOptions {
            path: base.join(path),
            busy_timeout: Duration::from_millis(5000),
            read_only: false,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("busy_timeout_ms", v)) => {
                    options.busy_timeout = Duration::from_millis(v.parse().map_err(|_| unsupported())?);
                }
                Some(("mode", "ro")) => options.read_only = true,
                Some(("mode", "rw")) => options.read_only = false,
                _ => return Err(unsupported()),
            }
        }
        Ok(options)
    }
}

/// A file of the store that this process cannot write, found by [`SqliteOptions::check_files`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct FileProblem {
    /// The file or directory.
    pub path: PathBuf,
    /// What it is: `database file`, `write-ahead log (-wal)`, `shared-memory index (-shm)`, `directory`.
    pub role: &'static str,
    /// The OS error of the write attempt.
    pub error: String,
}

impl FileProblem {
    /// How to fix it, naming the file.
    pub fn fix(&self) -> String {
        let p = self.path.display();
        match self.role {
            "directory" => format!(
                "make `{p}` writable by the user running rvbbit (`chmod u+w {p}` or `chown`); SQLite creates its -wal and -shm files there"
            ),
            _ => format!(
                "make `{p}` writable by the user running rvbbit (`chmod u+w {p}` or `chown` it); a read-only -wal or -shm file keeps the store read-only even after the database file was fixed"
            ),
        }
    }
}

impl SqliteOptions {
    /// Check that this process can write the database file, its `-wal` and `-shm` companions (those
    /// that exist) and their directory, by opening each for writing (nothing is written; the directory
    /// gets a probe file that is removed at once). Root passes permission checks but not a read-only
    /// mount. Call it before opening the store: closing a descriptor of the database file drops this
    /// process's SQLite locks on it.
    pub fn check_files(&self) -> Vec<FileProblem> {
        let mut problems = Vec::new();
        if self.read_only {
            return problems;
        }
        let db = self.path.display().to_string();
        for (path, role) in [
            (PathBuf::from(&db), "database file"),
            (PathBuf::from(format!("{db}-wal")), "write-ahead log (-wal)"),
            (PathBuf::from(format!("{db}-shm")), "shared-memory index (-shm)"),
        ] {
            if !path.exists() {
                continue;
            }
            if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open(&path) {
                problems.push(FileProblem {
                    path,
                    role,
                    error: e.to_string(),
                });
            }
        }
        if let Some(dir) = self.path.parent().filter(|d| d.is_dir()) {
            let probe = dir.join(format!(".rvbbit-write-check-{}", std::process::id()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&probe)
            {
                Ok(_) => {
                    if let Err(e) = std::fs::remove_file(&probe) {
                        tracing::warn!(error = %e, path = %probe.display(), "Write probe not removed");
                    }
                }
                Err(e) => problems.push(FileProblem {
                    path: dir.to_owned(),
                    role: "directory",
                    error: e.to_string(),
                }),
            }
        }
        problems
    }
}

/// An error inside a blocking SQLite closure: SQLite's own, or one of ours.
#[derive(Debug)]
pub(crate) enum Fail {
    Sql(rusqlite::Error),
    Store(Error),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Sql(e)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Store(e)
    }
}

impl Fail {
    fn into_error(self, url: &str, action: &str) -> Error {
        match self {
            Fail::Store(e) => e,
            Fail::Sql(e) => {
                let busy = matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                );
                if busy {
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
        }
    }
}

/// A corrupt-row error for `what`.
pub(crate) fn corrupt(url: &str, what: &'static str, detail: impl std::fmt::Display) -> Fail {
    Fail::Store(Error::Corrupt {
        url: url.to_owned(),
        what,
        detail: detail.to_string(),
    })
}

/// The embedded SQLite store. Cheap to clone (clones share one connection).
#[derive(Clone)]
pub struct SqliteStore {
    url: Arc<str>,
    options: SqliteOptions,
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("url", &self.url).finish()
    }
}

impl SqliteStore {
    /// Open (creating the file and its directory if needed) and migrate the store.
    ///
    /// Errors: [`Error::Unavailable`] when the file cannot be created or opened, [`Error::Busy`] when
    /// another process holds the lock longer than `busy_timeout`, [`Error::SchemaTooNew`] and
    /// [`Error::Migration`].
    pub async fn open(url: &str, options: SqliteOptions) -> Result<Self> {
        let url: Arc<str> = Arc::from(url);
        let (u, o) = (url.clone(), options.clone());
        let conn = tokio::task::spawn_blocking(move || open_blocking(&u, &o))
            .await
            .map_err(|e| Error::Internal(format!("the SQLite open task failed: {e}")))??;
        Ok(SqliteStore {
            url,
            options,
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.options.path
    }

    /// Run `f` with the connection on the blocking pool.
    pub(crate) async fn with_conn<T, F>(&self, action: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &str) -> Result<T, Fail> + Send + 'static,
    {
        let conn = self.conn.clone();
        let url = self.url.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| Error::Internal("the SQLite connection mutex is poisoned".into()))?;
            f(&mut guard, &url).map_err(|e| e.into_error(&url, action))
        })
        .await
        .map_err(|e| Error::Internal(format!("a SQLite task failed: {e}")))?
    }
}

fn open_blocking(url: &str, options: &SqliteOptions) -> Result<Connection> {
    let unavailable = |action: &str, e: Box<dyn std::error::Error + Send + Sync>| Error::Unavailable {
        url: url.to_owned(),
        action: action.to_owned(),
        source: e,
    };
    let flags = if options.read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        if let Some(dir) = options.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| unavailable("create its directory", Box::new(e)))?;
        }
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let mut conn = Connection::open_with_flags(&options.path, flags)
        .map_err(|e| unavailable("open the database file", Box::new(e)))?;
    let setup = |conn: &mut Connection| -> Result<(), Fail> {
        conn.busy_timeout(options.busy_timeout)?;
        if !options.read_only {
            // WAL lets readers run beside one writer; NORMAL sync is durable across process crashes
            // (the case that matters here) and far faster than FULL.
            let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
            migrations::apply(conn, url)?;
        } else {
            let found = migrations::current(conn)?;
            if found > migrations::latest() {
                return Err(Fail::Store(Error::SchemaTooNew {
                    url: url.to_owned(),
                    found,
                    known: migrations::latest(),
                }));
            }
        }
        conn.set_prepared_statement_cache_capacity(64);
        Ok(())
    };
    setup(&mut conn).map_err(|e| e.into_error(url, "prepare the database"))?;
    Ok(conn)
}

fn count(conn: &Connection, table: &str) -> Result<u64, Fail> {
    let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

#[async_trait]
impl Store for SqliteStore {
    fn url(&self) -> &str {
        &self.url
    }

    async fn migrate(&self) -> Result<Vec<String>> {
        self.with_conn("migrate", migrations::apply).await
    }

    async fn status(&self) -> Result<StoreStatus> {
        let path = self.options.path.clone();
        self.with_conn("read its status", move |c, url| {
            let version = migrations::current(c)?;
            let tables_exist = version > 0;
            let n = |t: &str| if tables_exist { count(c, t) } else { Ok(0) };
            let size = ["", "-wal"]
                .iter()
                .filter_map(|s| std::fs::metadata(format!("{}{s}", path.display())).ok())
                .map(|m| m.len())
                .sum();
            Ok(StoreStatus {
                url: url.to_owned(),
                schema_version: version,
                latest_version: migrations::latest(),
                pending: migrations::pending(version),
                events: n("events")?,
                sessions: n("sessions")?,
                cache_entries: n("result_cache")?,
                cache_hits: if tables_exist {
                    let hits: i64 =
                        c.query_row("SELECT coalesce(sum(hits), 0) FROM result_cache", [], |r| {
                            r.get(0)
                        })?;
                    // Summary events (one per SQL statement) carry their hits as `count`; the
                    // `cost_micro_usd` term lets SQLite read the narrow `events_priced` index.
                    let summarized: i64 = c.query_row(
                        "SELECT coalesce(sum(json_extract(metadata, '$.count')), 0) FROM events
                         WHERE kind = 'cache_hit' AND cost_micro_usd IS NOT NULL",
                        [],
                        |r| r.get(0),
                    )?;
                    u64::try_from(hits.saturating_add(summarized)).unwrap_or(0)
                } else {
                    0
                },
                signals: n("signals")?,
                checkpoints: if version >= 3 { count(c, "checkpoints")? } else { 0 },
                size_bytes: Some(size),
            })
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.with_conn("answer a ping", |c, _| {
            let _one: i64 = c.query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))?;
            Ok(())
        })
        .await
    }

    async fn compact(&self) -> Result<()> {
        self.with_conn("compact", |c, _| {
            c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA optimize;")?;
            Ok(())
        })
        .await
    }

    async fn write_batch(&self, events: Arc<Vec<Event>>, sessions: Arc<Vec<Session>>) -> Result<u64> {
        if events.is_empty() && sessions.is_empty() {
            return Ok(0);
        }
        self.with_conn("write a batch", move |c, _| {
            // Events before session records, in one transaction: a reader that sees a session finished
            // also sees its events.
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let n = events::insert_events(&tx, &events)?;
            sessions::upsert_sessions(&tx, &sessions)?;
            tx.commit()?;
            Ok(n)
        })
        .await
    }

    async fn prune(&self, before: Timestamp, now: Timestamp, dry_run: bool) -> Result<Prune> {
        self.with_conn("prune", move |c, _| prune::prune(c, before, now, dry_run))
            .await
    }

    async fn backup(&self, dir: &Path) -> Result<Vec<(String, u64)>> {
        let dir = dir.to_owned();
        self.with_conn("back up", move |c, _| {
            std::fs::create_dir_all(&dir).map_err(|source| Error::File {
                action: "create the backup directory",
                path: dir.clone(),
                source,
            })?;
            let mut done = Vec::new();
            for table in [
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
            ] {
                let path = dir.join(format!("{table}.jsonl"));
                let file_err = |source| Error::File {
                    action: "write the backup file",
                    path: path.clone(),
                    source,
                };
                let file = std::fs::File::create(&path).map_err(file_err)?;
                let mut w = std::io::BufWriter::new(file);
                let mut stmt = c.prepare(&format!("SELECT * FROM {table}"))?;
                let names: Vec<String> = stmt.column_names().iter().map(|s| (*s).to_owned()).collect();
                let mut rows = stmt.query([])?;
                let mut n = 0u64;
                while let Some(row) = rows.next()? {
                    let mut obj = serde_json::Map::new();
                    for (i, name) in names.iter().enumerate() {
                        obj.insert(name.clone(), events::sql_to_json(row.get_ref(i)?));
                    }
                    let line = serde_json::Value::Object(obj).to_string();
                    writeln!(w, "{line}").map_err(file_err)?;
                    n += 1;
                }
                w.flush().map_err(file_err)?;
                done.push((table.to_owned(), n));
            }
            Ok(done)
        })
        .await
    }
}
