//! The event sink (`[store.events] url`, ClickHouse) as the commands see it: the writer's
//! [`SinkOptions`] for commands that record events, and the sink's state and lag for `rvbbit health`
//! and `rvbbit doctor`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rvbbit_core::Timestamp;
use rvbbit_core::config::mask_url;
use rvbbit_store::clickhouse::ClickHouseSink;
use rvbbit_store::{EventSink, SinkOptions};
use serde::Serialize;

use crate::output;

/// Where the sink's spill files go: `.rvbbit/spill/events-sink/` below `base`.
pub(crate) fn spill_dir(base: &Path) -> PathBuf {
    base.join(".rvbbit")
        .join("spill")
        .join(rvbbit_store::spill::SINK_DIR)
}

/// The writer's sink for `url`. A sink that cannot be opened now does not stop the command: the writer
/// warns once (naming the URL, password masked) and spills its events until the sink answers (then they
/// are replayed).
pub(crate) async fn writer_sink(url: &str, base: &Path) -> Option<SinkOptions> {
    let shown = mask_url(url);
    // Bounded: a sink host that hangs must not hold the command's start.
    let opened = tokio::time::timeout(ANSWER_WITHIN, rvbbit_store::open_sink(url))
        .await
        .unwrap_or_else(|_| {
            Err(rvbbit_store::Error::Unavailable {
                url: shown.clone(),
                action: "connect".into(),
                source: format!("no answer within {} s", ANSWER_WITHIN.as_secs()).into(),
            })
        });
    let sink: Arc<dyn EventSink> = match opened {
        Ok(sink) => sink,
        // Unreachable now: the writer tries it with its batches (after its reprobe delay) and warns
        // once, naming the URL, when the first one fails; the events spill meanwhile.
        Err(e) => match ClickHouseSink::connect(url) {
            Ok(s) => {
                tracing::debug!(error = %e, "The events sink cannot be opened now.");
                Arc::new(s)
            }
            Err(e) => {
                output::stderr(&format!("warning: the events sink is not used: {e}\n"));
                return None;
            }
        },
    };
    Some(SinkOptions {
        sink,
        url: shown,
        spill_dir: spill_dir(base),
    })
}

/// The sink at `url` for reading events (`all_data`, `rvbbit costs`), or `None`, with a warning naming the
/// URL (password masked), when it cannot be opened now: reads then come from the store, which holds every
/// event too.
pub(crate) async fn reading_sink(url: &str) -> Option<Arc<dyn EventSink>> {
    let opened = tokio::time::timeout(ANSWER_WITHIN, rvbbit_store::open_sink(url)).await;
    match opened {
        Ok(Ok(sink)) => Some(sink),
        Ok(Err(e)) => {
            output::stderr(&format!(
                "warning: the events sink {} cannot be read ({}); reading the store instead\n",
                mask_url(url),
                rvbbit_core::error_chain(&e)
            ));
            None
        }
        Err(_) => {
            output::stderr(&format!(
                "warning: the events sink {} did not answer within {} s; reading the store instead\n",
                mask_url(url),
                ANSWER_WITHIN.as_secs()
            ));
            None
        }
    }
}

/// `runtime` reading `all_data` from the configured events sink, if there is one that answers.
pub(crate) async fn sql_reading_sink(
    runtime: rvbbit_sql::SqlRuntime,
    url: Option<&str>,
) -> Result<rvbbit_sql::SqlRuntime, rvbbit_sql::Error> {
    match url {
        Some(url) => match reading_sink(url).await {
            Some(sink) => runtime.with_events(sink),
            None => Ok(runtime),
        },
        None => Ok(runtime),
    }
}

/// How long `rvbbit health` and `rvbbit doctor` wait for the sink, and a command for it to open.
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The sink's state: reachable, its schema, its newest write, and what waits in its spill.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct SinkReport {
    /// The URL, password masked.
    pub(crate) url: String,
    pub(crate) reachable: bool,
    pub(crate) server_version: Option<String>,
    /// One round trip (`SELECT version()`), in milliseconds.
    pub(crate) latency_ms: Option<f64>,
    pub(crate) schema_version: Option<i64>,
    /// Rows in the sink's events table as stored (an event written twice counts twice until
    /// ClickHouse merges its parts; `SELECT count() FROM events FINAL` counts each once).
    pub(crate) rows: Option<u64>,
    /// When the newest event was written to it (any process), RFC 3339.
    pub(crate) last_write: Option<String>,
    /// Seconds since then.
    pub(crate) lag_seconds: Option<i64>,
    /// Events spilled for the sink and not replayed yet (in `.rvbbit/spill/events-sink/`).
    pub(crate) pending_events: u64,
    pub(crate) error: Option<String>,
}

/// Ask the sink at `url` how far it is, and count its waiting spill below `base`.
pub(crate) async fn report(url: &str, base: &Path) -> SinkReport {
    let pending = rvbbit_store::spill::pending_records(&spill_dir(base));
    let mut r = SinkReport {
        url: mask_url(url),
        reachable: false,
        server_version: None,
        latency_ms: None,
        schema_version: None,
        rows: None,
        last_write: None,
        lag_seconds: None,
        pending_events: *pending.as_ref().unwrap_or(&0),
        error: pending.err().map(|e| e.to_string()),
    };
    // A probe must answer quickly even when the sink's host hangs (the HTTP client waits up to 60 s).
    let asked = tokio::time::timeout(ANSWER_WITHIN, async {
        let sink = ClickHouseSink::open(url).await?;
        let started = std::time::Instant::now();
        let version = sink.server_version().await.ok();
        let latency = started.elapsed().as_secs_f64() * 1000.0;
        let schema = sink.schema_version().await.ok();
        Ok::<_, rvbbit_store::Error>((version.map(|v| (v, latency)), schema, sink.lag().await))
    })
    .await;
    let (version, schema, lag) = match asked {
        Ok(Ok(answers)) => answers,
        Ok(Err(e)) => {
            r.error = Some(rvbbit_core::error_chain(&e));
            return r;
        }
        Err(_) => {
            r.error = Some(format!("no answer within {} s", ANSWER_WITHIN.as_secs()));
            return r;
        }
    };
    r.reachable = true;
    r.latency_ms = version.as_ref().map(|(_, ms)| *ms);
    r.server_version = version.map(|(v, _)| v);
    r.schema_version = schema;
    match lag {
        Ok(lag) => {
            r.rows = Some(lag.rows);
            r.last_write = lag.last_write.map(Timestamp::to_rfc3339);
            r.lag_seconds = lag
                .last_write
                .map(|t| (Timestamp::now().micros() - t.micros()).max(0) / 1_000_000);
        }
        Err(e) => r.error = Some(rvbbit_core::error_chain(&e)),
    }
    r
}

impl SinkReport {
    /// Healthy: reachable and nothing waiting.
    pub(crate) fn ok(&self) -> bool {
        self.reachable && self.pending_events == 0 && self.error.is_none()
    }

    /// One line for text output (without the status word).
    pub(crate) fn line(&self) -> String {
        if !self.reachable {
            return format!(
                "events sink {} unreachable: {}; {} event(s) wait in .rvbbit/spill/{}/",
                self.url,
                self.error.as_deref().unwrap_or("unknown error"),
                self.pending_events,
                rvbbit_store::spill::SINK_DIR
            );
        }
        format!(
            "events sink {} (clickhouse{}) reachable{}, schema version {}, {} rows, last write {}, {} event(s) waiting in its spill",
            self.url,
            self.server_version
                .as_deref()
                .map_or(String::new(), |v| format!(" {v}")),
            self.latency_ms
                .map_or(String::new(), |ms| format!(" in {ms:.1} ms")),
            self.schema_version.unwrap_or(0),
            self.rows.unwrap_or(0),
            match (&self.last_write, self.lag_seconds) {
                (Some(t), Some(s)) => format!("{t} ({s}s ago)"),
                _ => "never".into(),
            },
            self.pending_events
        )
    }
}
