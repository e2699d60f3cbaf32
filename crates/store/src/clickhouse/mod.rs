//! The ClickHouse event sink: a second destination for events (the analytics warehouse), beside the
//! primary store that keeps sessions, signals, checkpoints, the cache and events.
//!
//! [`ClickHouseSink`] talks ClickHouse's HTTP interface with `reqwest` (`FORMAT JSONEachRow` for rows,
//! `TabSeparated` for scalars), not the `clickhouse` crate: that crate's row format
//! (`RowBinaryWithNamesAndTypes`) and validation need servers far newer than Debian's 18.16, while plain
//! HTTP with JSON rows works on 18.16 and every release since. The schema keeps to that old subset
//! (see `clickhouse/migrations.rs`): plain `String`/`Int64`/`UInt8`/`UInt16` columns, `DateTime` seconds plus a
//! milliseconds column, JSON kept as `String`, `ReplacingMergeTree` ordered by event id.
//!
//! Exactly once: inserts are idempotent by event id only after ClickHouse merges parts, so every read
//! that must not double-count uses `FINAL` (`count() FINAL` equals `uniqExact(event_id)`).
//! [`crate::StoredEvent::store_seq`] is the event's timestamp in microseconds here (ClickHouse has no
//! sequence), so [`crate::EventFilter::after_seq`] means "after this time". The sink holds no sessions:
//! a filter on session status is refused.

mod events;
pub(crate) mod migrations;

use std::sync::Arc;
use std::time::Duration;

use rvbbit_core::Timestamp;
pub use rvbbit_core::config::mask_url;

use crate::error::{Error, Result};

/// The ClickHouse event sink. Cheap to clone (clones share one HTTP client).
#[derive(Clone)]
pub struct ClickHouseSink {
    /// The URL with its password masked, for messages.
    url: Arc<str>,
    /// `scheme://host:port/` without credentials or database.
    endpoint: Arc<str>,
    database: Arc<str>,
    user: Option<Arc<str>>,
    password: Option<Arc<str>>,
    http: reqwest::Client,
}

impl std::fmt::Debug for ClickHouseSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseSink").field("url", &self.url).finish()
    }
}

/// The longest an INSERT may take before the batch counts as failed (and spills).
const INSERT_TIMEOUT: Duration = Duration::from_secs(15);

/// The parts of an events URL: `http[s]://[user[:password]@]host[:port]/database`.
#[derive(Debug, PartialEq, Eq)]
struct Parts {
    endpoint: String,
    database: String,
    user: Option<String>,
    password: Option<String>,
}

/// Split an events URL. Errors name what is wrong, never the password.
fn parse_url(url: &str) -> std::result::Result<Parts, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("it has no scheme (expected http:// or https://)")?;
    if scheme != "http" && scheme != "https" {
        return Err(format!("its scheme is `{scheme}`, expected http or https"));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if host.is_empty() {
        return Err("it names no host".into());
    }
    let path = path
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    let database = if path.is_empty() { "default" } else { path };
    if !database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "its database `{database}` is not a plain name (letters, digits and `_`)"
        ));
    }
    let (user, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((u, p)) => (Some(decode(u)), Some(decode(p))),
            None => (Some(decode(u)), None),
        },
        None => (None, None),
    };
    Ok(Parts {
        endpoint: format!("{scheme}://{host}/"),
        database: database.to_owned(),
        user,
        password,
    })
}

/// Percent-decoding of URL user info (`%40` → `@`); anything malformed is kept as written.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `url` is a usable events URL; the reason when it is not (for config validation).
pub fn check_url(url: &str) -> std::result::Result<(), String> {
    parse_url(url).map(|_| ())
}

/// A quoted SQL string literal (backslash and quote escaped, as ClickHouse reads them).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// What the sink last did, for `rvbbit health`, `rvbbit doctor` and `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SinkLag {
    /// When the newest event the sink holds was written to it (any process), if any.
    pub last_write: Option<Timestamp>,
    /// Rows in the sink's events table as stored: cheap to count (no `FINAL`), so an event written
    /// twice counts twice until ClickHouse merges its parts.
    pub rows: u64,
}

impl ClickHouseSink {
    /// Connect to `url` (`http[s]://[user[:password]@]host[:port]/database`), create the database if
    /// missing, and migrate the schema.
    ///
    /// Errors: [`Error::Unavailable`] for a malformed URL, a server that cannot be reached, or refused
    /// credentials (the URL named with its password masked); [`Error::SchemaTooNew`] and
    /// [`Error::Migration`].
    pub async fn open(url: &str) -> Result<Self> {
        let sink = Self::connect(url)?;
        sink.run_on(
            None,
            &format!("CREATE DATABASE IF NOT EXISTS {}", sink.database),
            "connect",
        )
        .await?;
        migrations::apply(&sink).await?;
        Ok(sink)
    }

    /// The sink for `url` without any round trip (nothing is checked or created).
    ///
    /// Errors: [`Error::Unavailable`] for a malformed URL.
    pub fn connect(url: &str) -> Result<Self> {
        let masked: Arc<str> = Arc::from(mask_url(url));
        let parts = parse_url(url).map_err(|why| Error::Unavailable {
            url: masked.to_string(),
            action: "read its URL (expected http://[user[:password]@]host:8123/database)".into(),
            source: why.into(),
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Internal(format!("the HTTP client could not be built: {e}")))?;
        Ok(ClickHouseSink {
            url: masked,
            endpoint: parts.endpoint.into(),
            database: parts.database.into(),
            user: parts.user.map(Into::into),
            password: parts.password.map(Into::into),
            http,
        })
    }

    /// The URL, password masked.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database the sink writes.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Run `sql` in the sink's database with `body` as its data (INSERT rows) and return the response
    /// text. Errors: [`Error::Unavailable`] naming `action`, with the server's message.
    pub(crate) async fn run(&self, sql: &str, body: Option<String>, action: &str) -> Result<String> {
        self.request(Some(&self.database), sql, body, action).await
    }

    async fn run_on(&self, database: Option<&str>, sql: &str, action: &str) -> Result<String> {
        self.request(database, sql, None, action).await
    }

    async fn request(
        &self,
        database: Option<&str>,
        sql: &str,
        body: Option<String>,
        action: &str,
    ) -> Result<String> {
        let mut req = self.http.post(&*self.endpoint);
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(db) = database {
            query.push(("database", db));
        }
        // With rows to send, the statement goes in the URL and the rows in the body.
        let is_insert = body.is_some();
        let body = match body {
            Some(rows) => {
                query.push(("query", sql));
                rows
            }
            None => sql.to_owned(),
        };
        req = req.query(&query).body(body);
        if is_insert {
            // A batch takes well under a second; a host that hangs must not hold the writer for the
            // client's whole 60 s (reads of many rows may need them).
            req = req.timeout(INSERT_TIMEOUT);
        }
        if let Some(user) = &self.user {
            req = req.basic_auth(&**user, self.password.as_deref());
        }
        let fail = |source: Box<dyn std::error::Error + Send + Sync>| Error::Unavailable {
            url: self.url.to_string(),
            action: action.to_owned(),
            source,
        };
        let resp = req.send().await.map_err(|e| fail(Box::new(e)))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| fail(Box::new(e)))?;
        if status.is_success() {
            return Ok(text);
        }
        let message = text.trim();
        // 18.16 answers 401 (codes 192/193), newer servers 516 AUTHENTICATION_FAILED.
        let credentials = status.as_u16() == 401
            || status.as_u16() == 403
            || ["Code: 192,", "Code: 193,", "Code: 516", "Code: 194,"]
                .iter()
                .any(|c| message.contains(c));
        if credentials {
            return Err(fail(
                format!(
                    "the server refused the credentials (HTTP {status}): {message}; check the user and password in `store.events.url`"
                )
                .into(),
            ));
        }
        Err(fail(format!("HTTP {status}: {message}").into()))
    }

    /// A cheap round trip proving the server answers and takes the credentials.
    pub async fn ping(&self) -> Result<()> {
        self.run_on(None, "SELECT 1", "ping").await.map(drop)
    }

    /// The server's version (`SELECT version()`).
    pub async fn server_version(&self) -> Result<String> {
        Ok(self
            .run_on(None, "SELECT version()", "read its version")
            .await?
            .trim()
            .to_owned())
    }

    /// The schema version in the sink's database (0 when empty).
    pub async fn schema_version(&self) -> Result<i64> {
        migrations::current(self).await
    }

    /// How far the sink has come: its newest write and its row count. Cheap on a large table (no
    /// `FINAL`): health checks call it.
    pub async fn lag(&self) -> Result<SinkLag> {
        let text = self
            .run(
                "SELECT toUInt64(max(written)), count() FROM events FORMAT TabSeparated",
                None,
                "read its lag",
            )
            .await?;
        let mut cols = text.trim().split('\t');
        let last: u64 = cols.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let rows = cols.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(SinkLag {
            last_write: (last > 0)
                .then(|| Timestamp::from_micros(i64::try_from(last).unwrap_or(0).saturating_mul(1_000_000))),
            rows,
        })
    }

    /// Rows and distinct event ids as stored, and rows after `FINAL`: `(rows, distinct, final)`. The
    /// sink holds every event exactly once when `distinct == final` (and `rows` falls to it as
    /// ClickHouse merges parts).
    pub async fn exactly_once(&self) -> Result<(u64, u64, u64)> {
        let text = self
            .run(
                "SELECT count(), uniqExact(event_id), (SELECT count() FROM events FINAL) FROM events \
                 FORMAT TabSeparated",
                None,
                "count its events",
            )
            .await?;
        let n: Vec<u64> = text.trim().split('\t').map(|v| v.parse().unwrap_or(0)).collect();
        match n.as_slice() {
            [a, b, c] => Ok((*a, *b, *c)),
            _ => Err(Error::Corrupt {
                url: self.url.to_string(),
                what: "event count",
                detail: format!("unexpected answer `{}`", text.trim()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_endpoint_database_and_credentials() {
        let p = parse_url("http://u:p%40ss@ch.example:8123/analytics").unwrap();
        assert_eq!(p.endpoint, "http://ch.example:8123/");
        assert_eq!(p.database, "analytics");
        assert_eq!(p.user.as_deref(), Some("u"));
        assert_eq!(p.password.as_deref(), Some("p@ss"));
        assert_eq!(parse_url("https://h:8443").unwrap().database, "default");
        assert!(parse_url("ftp://h/db").unwrap_err().contains("ftp"));
        assert!(parse_url("h:8123/db").is_err());
        assert!(parse_url("http:///db").unwrap_err().contains("no host"));
        assert!(parse_url("http://h/db;drop").unwrap_err().contains("plain name"));
    }

    #[test]
    fn literals_are_escaped() {
        assert_eq!(quote("a'b\\c"), "'a\\'b\\\\c'");
    }
}
