//! What the store commands share: the runtime, opening the configured store, the common filters, signal
//! handling, error mapping and plain-text tables.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use rvbbit_core::{SessionStatus, Timestamp, codes};
use rvbbit_store::{EventFilter, SessionFilter, Store};

use super::{Coded, Failure, load_config};
use crate::cli::Cli;
use crate::output::Out;

/// Run `fut` on a fresh tokio runtime (the binary has none outside the store commands, so `validate`
/// never starts one).
pub(crate) fn block_on<T>(fut: impl Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            Failure::Coded(Coded::from_error(
                codes::INTERNAL,
                &e,
                "the async runtime could not start; check thread limits (ulimit -u)",
            ))
        })?;
    rt.block_on(fut)
}

/// A store error as a coded failure (its code decides the exit code; storage errors exit 5).
pub(crate) fn fail(err: rvbbit_store::Error) -> Failure {
    let hint = err.hint();
    Failure::Coded(Coded::from_error(err.code(), &err, hint))
}

/// The configured store and the directory its relative paths (and `.rvbbit/spill/`) are taken from.
/// A session and all of its events, in order (for `sessions show/export` and `debug trace/inputs`).
pub(crate) async fn session_with_events(
    store: &dyn Store,
    id: &rvbbit_core::SessionId,
) -> Result<(rvbbit_store::Session, Vec<rvbbit_store::StoredEvent>), Failure> {
    let session = store.session(id).await.map_err(fail)?;
    let filter = EventFilter {
        session_id: Some(id.clone()),
        ..EventFilter::default()
    };
    let events = store.events(&filter).await.map_err(fail)?;
    Ok((session, events))
}

pub(crate) struct Opened {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) base: PathBuf,
    /// The event sink's URL (`[store.events] url`), if one is configured.
    pub(crate) events_url: Option<String>,
}

impl Opened {
    /// Where spill files go: `.rvbbit/spill/` in the working directory.
    pub(crate) fn spill_dir(&self) -> PathBuf {
        self.base.join(".rvbbit").join("spill")
    }
}

/// Load configuration and open (creating and migrating if needed) the configured store.
pub(crate) async fn open(cli: &Cli, out: Out) -> Result<Opened, Failure> {
    let loaded = load_config(cli, out)?;
    let base = std::env::current_dir().unwrap_or_default();
    let store = rvbbit_store::open(&loaded.config.store.url, &base)
        .await
        .map_err(fail)?;
    Ok(Opened {
        store,
        base,
        events_url: loaded.config.store.events.url.clone(),
    })
}

/// Parse `--since`/`--until`: a duration back from now (`90s`, `30m`, `24h`, `7d`) or a UTC date/time.
pub(crate) fn parse_time(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse_relative(text)
}

/// Parse a duration such as `90s`, `30m`, `24h` or `7d` into microseconds.
pub(crate) fn parse_duration(text: &str) -> Option<i64> {
    rvbbit_core::event::parse_duration_micros(text)
}

/// Parse a duration flag (clap value parser).
pub(crate) fn duration_arg(text: &str) -> Result<i64, String> {
    parse_duration(text)
        .ok_or_else(|| format!("`{text}` is not a duration; write `90s`, `30m`, `24h` or `7d`"))
}

/// Parse a session status flag (clap value parser).
pub(crate) fn status_arg(text: &str) -> Result<SessionStatus, String> {
    text.parse::<SessionStatus>().map_err(|e| e.to_string())
}

/// The filters every listing takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct Filters {
    /// Only this cascade id.
    #[arg(long, value_name = "ID")]
    pub(crate) cascade: Option<String>,
    /// Only this caller id (such as cli-quiet-heron-…).
    #[arg(long, value_name = "ID")]
    pub(crate) caller: Option<String>,
    /// Only from this time: a UTC date/time (2026-11-23, 2026-11-23T09:00:00Z) or a duration back from
    /// now (30m, 24h, 7d).
    #[arg(long, value_name = "WHEN", value_parser = parse_time)]
    pub(crate) since: Option<Timestamp>,
    /// Only before this time (same forms as --since).
    #[arg(long, value_name = "WHEN", value_parser = parse_time)]
    pub(crate) until: Option<Timestamp>,
    /// Only sessions (for costs: events of sessions) in this status: running, waiting, completed,
    /// failed, cancelled.
    #[arg(long, value_name = "STATUS", value_parser = status_arg)]
    pub(crate) status: Option<SessionStatus>,
    /// At most this many rows.
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u64>,
}

impl Filters {
    /// As a session filter (newest first), with `default_limit` when no --limit is given.
    pub(crate) fn sessions(&self, default_limit: Option<u64>) -> SessionFilter {
        SessionFilter {
            cascade_id: self.cascade.clone(),
            caller_id: self.caller.clone(),
            since: self.since,
            until: self.until,
            status: self.status,
            limit: self.limit.or(default_limit),
        }
    }

    /// As an event filter.
    pub(crate) fn events(&self) -> EventFilter {
        EventFilter {
            cascade_id: self.cascade.clone(),
            caller_id: self.caller.clone(),
            since: self.since,
            until: self.until,
            limit: self.limit,
            session_status: self.status,
            ..EventFilter::default()
        }
    }
}

/// Waits for SIGINT or SIGTERM.
pub(crate) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

/// Which signal arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Caught {
    Interrupt,
    Terminate,
}

impl Caught {
    /// The exit code of a run stopped by this signal (130 or 143).
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Caught::Interrupt => rvbbit_core::ExitClass::Interrupted.exit_code(),
            Caught::Terminate => rvbbit_core::ExitClass::Terminated.exit_code(),
        }
    }
}

impl Signals {
    /// Install the handlers (from now on SIGINT/SIGTERM no longer kill the process outright).
    pub(crate) fn install() -> Result<Self, Failure> {
        use tokio::signal::unix::{SignalKind, signal};
        let err = |e: std::io::Error| {
            Failure::Coded(Coded::from_error(
                codes::INTERNAL,
                &e,
                "signal handlers could not be installed",
            ))
        };
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(err)?,
            int: signal(SignalKind::interrupt()).map_err(err)?,
        })
    }

    /// Drive `work` to its end. The first SIGINT or SIGTERM cancels `cancel` (so the work winds down,
    /// marking what it ran as cancelled) and is returned beside the work's result.
    pub(crate) async fn until<T>(
        &mut self,
        work: impl Future<Output = T>,
        cancel: &rvbbit_engine::CancellationToken,
    ) -> (T, Option<Caught>) {
        tokio::pin!(work);
        let mut caught = None;
        let out = loop {
            tokio::select! {
                o = &mut work => break o,
                s = self.recv(), if caught.is_none() => {
                    caught = Some(s);
                    cancel.cancel();
                }
            }
        };
        (out, caught)
    }

    /// The next signal. Cancel-safe.
    pub(crate) async fn recv(&mut self) -> Caught {
        tokio::select! {
            _ = self.term.recv() => Caught::Terminate,
            _ = self.int.recv() => Caught::Interrupt,
        }
    }
}

/// A plain-text table: a header row, then rows, columns padded to their widest cell.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:w$}  "));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// A duration in microseconds for people: `850µs`, `12ms`, `3.4s`, `2m05s`.
pub(crate) fn human_duration(us: i64) -> String {
    match us {
        i64::MIN..1_000 => format!("{us}µs"),
        1_000..1_000_000 => format!("{}ms", us / 1000),
        1_000_000..60_000_000 => format!("{:.1}s", us as f64 / 1e6),
        _ => format!("{}m{:02}s", us / 60_000_000, (us / 1_000_000) % 60),
    }
}

/// A time for tables: `2026-11-23 09:44:06` (UTC).
pub(crate) fn short_time(t: Timestamp) -> String {
    let s = t.to_rfc3339();
    format!("{} {}", &s[..10], &s[11..19])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_parse() {
        assert_eq!(parse_duration("90s"), Some(90_000_000));
        assert_eq!(parse_duration("7d"), Some(7 * 86_400_000_000));
        assert_eq!(parse_duration("7"), None);
        assert_eq!(parse_duration("xh"), None);
        assert!(parse_time("2026-01-02").is_ok());
        assert!(parse_time("last tuesday").unwrap_err().contains("7d"));
    }

    #[test]
    fn tables_pad_columns_and_humans_read_durations() {
        let t = table(&["A", "LONG"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    LONG\nxyz  1\n");
        assert_eq!(human_duration(850), "850µs");
        assert_eq!(human_duration(12_000), "12ms");
        assert_eq!(human_duration(3_400_000), "3.4s");
        assert_eq!(human_duration(125_000_000), "2m05s");
    }
}
