//! The buffered writer: records go through a bounded channel to one task that writes them in batches,
//! retries a busy store with backoff, and spills to JSON Lines when the store fails, so a run never stops
//! because its store did.
//!
//! Ownership: [`Writer`] owns the task; [`WriterHandle`]s (cheap clones) send to it. [`Writer::shutdown`]
//! writes everything sent before it and waits for the task. Dropping a `Writer` without shutting down
//! aborts nothing by itself (the task ends once every handle is dropped), but records still buffered may be
//! lost if the process exits first: always call `shutdown` (the CLI does, also on SIGINT/SIGTERM).
//!
//! With a [`SinkOptions`] (the `[store.events] url`, ClickHouse), each batch of events is also sent to
//! that second destination after the store's write, in one call. A sink that fails never fails the run:
//! its events go to their own spill files (`.rvbbit/spill/events-sink/`), a warning naming the sink says
//! so once per writer, and the spill is replayed by the first batch the sink takes again (and by
//! `rvbbit db replay`). Only when such a spill file cannot be written are records counted as lost.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::model::{Record, Session};
use crate::traits::{EventSink, Store};

/// A second destination for events (the analytics warehouse), written after the store.
#[derive(Clone)]
pub struct SinkOptions {
    /// The sink.
    pub sink: Arc<dyn EventSink>,
    /// Its URL with the password masked, for messages.
    pub url: String,
    /// Where its spill files go (normally `.rvbbit/spill/events-sink/`).
    pub spill_dir: PathBuf,
}

impl std::fmt::Debug for SinkOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkOptions")
            .field("url", &self.url)
            .field("spill_dir", &self.spill_dir)
            .finish()
    }
}

/// The event sink as this writer saw it (for a server's health and metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SinkState {
    /// The sink's URL, password masked.
    pub url: String,
    /// When this writer last wrote a batch to it.
    pub last_write: Option<rvbbit_core::Timestamp>,
    /// Events this writer sent to it.
    pub written: u64,
    /// Events this writer spilled for it and has not replayed yet.
    pub pending: u64,
}

/// How the writer batches, retries and spills.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// Channel capacity: senders wait when this many records are queued (backpressure).
    pub capacity: usize,
    /// Most records written in one transaction.
    pub batch_size: usize,
    /// Where spill files go (normally `.rvbbit/spill/`).
    pub spill_dir: PathBuf,
    /// Retries of a busy store before spilling a batch.
    pub retries: u32,
    /// First backoff delay; doubles per retry up to `max_backoff`.
    pub backoff: Duration,
    /// Longest backoff delay.
    pub max_backoff: Duration,
    /// After a failed batch, how long to spill without trying the store (or the sink) again.
    pub reprobe_after: Duration,
    /// A second destination for events, if any (`[store.events] url`).
    pub sink: Option<SinkOptions>,
}

impl WriterOptions {
    /// Defaults: capacity 8192, batches of 2048, 5 retries from 50 ms to 2 s, reprobe after 5 s.
    pub fn new(spill_dir: PathBuf) -> Self {
        WriterOptions {
            capacity: 8192,
            batch_size: 2048,
            spill_dir,
            retries: 5,
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            reprobe_after: Duration::from_secs(5),
            sink: None,
        }
    }

    /// The delay before retry number `attempt` (0-based): `backoff * 2^attempt`, capped.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.backoff
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.max_backoff)
    }
}

/// What the writer did so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WriterStats {
    /// Records accepted through the channel.
    pub accepted: u64,
    /// Events newly stored (duplicates by id are not counted).
    pub events_written: u64,
    /// Session records stored.
    pub sessions_written: u64,
    /// Records written to spill files instead of the store.
    pub spilled: u64,
    /// Records neither stored nor spilled (the spill file failed too). Anything above 0 means the
    /// store does not hold the whole run: the CLI fails with `RVB-S008` (exit 5).
    pub lost: u64,
    /// Why records were lost (the first loss): what failed with the store, and the OS error and path
    /// of the spill file that could not be written.
    pub lost_reason: Option<String>,
    /// Spill files written.
    pub spill_files: Vec<PathBuf>,
    /// Retries of a busy store.
    pub retries: u64,
    /// The last store or spill error, if any.
    pub last_error: Option<String>,
    /// Events sent to the event sink.
    pub sink_written: u64,
    /// Events spilled for the event sink (`.rvbbit/spill/events-sink/`) because it failed.
    pub sink_spilled: u64,
    /// Events of sink spill files replayed into the sink once it answered again.
    pub sink_replayed: u64,
    /// The last event-sink error, if any (its URL with the password masked).
    pub sink_error: Option<String>,
    /// The event sink's spill files written (apart from [`WriterStats::spill_files`], which are the
    /// store's).
    pub sink_spill_files: Vec<PathBuf>,
}

enum Msg {
    Record(Record),
    Flush(oneshot::Sender<WriterStats>),
    Shutdown(oneshot::Sender<WriterStats>),
}

/// Live counters of a writer, readable from any handle while it runs (a server's health and metrics).
#[derive(Debug, Default)]
struct Counters {
    spilled: AtomicU64,
    lost: AtomicU64,
    sink_written: AtomicU64,
    sink_pending: AtomicU64,
    /// Microseconds since the epoch of the last batch the sink took (0: none yet).
    sink_last_write: AtomicI64,
}

/// Sends records to the writer task. Cheap to clone.
#[derive(Clone, Debug)]
pub struct WriterHandle {
    tx: mpsc::Sender<Msg>,
    counters: Arc<Counters>,
    sink_url: Option<Arc<str>>,
}

impl WriterHandle {
    /// Queue a record, waiting while the channel is full. Once this returns `Ok`, the record is
    /// *accepted*: it will be stored or spilled by the next flush or shutdown.
    ///
    /// Cancel-safe: if the future is dropped before it completes, the record was not queued.
    /// Errors: [`Error::WriterClosed`] after shutdown.
    pub async fn send(&self, record: Record) -> Result<()> {
        self.tx
            .send(Msg::Record(record))
            .await
            .map_err(|_| Error::WriterClosed("it was shut down".into()))
    }

    /// How many records wait in the channel for the writer task (the write queue depth).
    pub fn queued(&self) -> usize {
        self.tx.max_capacity().saturating_sub(self.tx.capacity())
    }

    /// Records lost so far (neither stored nor spilled), counted as each batch fails. A long-lived
    /// process (`rvbbit serve`) reads it for its health and metrics; each loss is also logged at
    /// `error` level with `code = "RVB-S008"`.
    pub fn lost(&self) -> u64 {
        self.counters.lost.load(Ordering::Relaxed)
    }

    /// Records spilled to files so far (waiting for `rvbbit db replay`).
    pub fn spilled(&self) -> u64 {
        self.counters.spilled.load(Ordering::Relaxed)
    }

    /// The event sink as this writer sees it, or `None` without a sink.
    pub fn sink_state(&self) -> Option<SinkState> {
        let url = self.sink_url.as_ref()?;
        let last = self.counters.sink_last_write.load(Ordering::Relaxed);
        Some(SinkState {
            url: url.to_string(),
            last_write: (last > 0).then(|| rvbbit_core::Timestamp::from_micros(last)),
            written: self.counters.sink_written.load(Ordering::Relaxed),
            pending: self.counters.sink_pending.load(Ordering::Relaxed),
        })
    }

    /// Queue an event.
    pub async fn event(&self, event: rvbbit_core::Event) -> Result<()> {
        self.send(Record::Event(Box::new(event))).await
    }

    /// Queue a session record.
    pub async fn session(&self, session: Session) -> Result<()> {
        self.send(Record::Session(Box::new(session))).await
    }

    /// Wait until every record sent before this call is stored or spilled; returns the stats so far.
    pub async fn flush(&self) -> Result<WriterStats> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Flush(tx))
            .await
            .map_err(|_| Error::WriterClosed("it was shut down".into()))?;
        rx.await
            .map_err(|_| Error::WriterClosed("its task ended during a flush".into()))
    }
}

/// Owns the writer task.
#[derive(Debug)]
pub struct Writer {
    handle: WriterHandle,
    task: JoinHandle<()>,
}

impl Writer {
    /// Start the writer task on the current tokio runtime.
    pub fn spawn(store: Arc<dyn Store>, options: WriterOptions) -> Self {
        Self::start(Some(store), options, None)
    }

    /// Start a writer that spills everything, for a run whose store could not be opened at all
    /// (`reason` is reported as the last error). `rvbbit db replay` loads the spill once the store is back.
    pub fn spill_only(options: WriterOptions, reason: String) -> Self {
        Self::start(None, options, Some(reason))
    }

    fn start(store: Option<Arc<dyn Store>>, options: WriterOptions, reason: Option<String>) -> Self {
        let (tx, rx) = mpsc::channel(options.capacity.max(1));
        let counters = Arc::new(Counters::default());
        let sink_url = options.sink.as_ref().map(|s| Arc::from(s.url.as_str()));
        let sink_dir = options
            .sink
            .as_ref()
            .map(|s| s.spill_dir.clone())
            .unwrap_or_default();
        let task = tokio::spawn(
            Task {
                store,
                spill: SpillFile::new(options.spill_dir.clone()),
                sink_spill: SpillFile::new(sink_dir),
                options,
                counters: counters.clone(),
                store_error: reason.clone(),
                stats: WriterStats {
                    last_error: reason,
                    ..WriterStats::default()
                },
                spill_until: None,
                sink_until: None,
                sink_warned: false,
                sink_replay_due: true,
                events: Vec::new(),
                sessions: Vec::new(),
            }
            .run(rx),
        );
        Writer {
            handle: WriterHandle {
                tx,
                counters,
                sink_url,
            },
            task,
        }
    }

    /// A handle for sending records.
    pub fn handle(&self) -> WriterHandle {
        self.handle.clone()
    }

    /// Write everything queued before this call, stop the task and wait for it. Records sent through
    /// other handles afterwards are refused with [`Error::WriterClosed`].
    pub async fn shutdown(self) -> Result<WriterStats> {
        let (tx, rx) = oneshot::channel();
        self.handle
            .tx
            .send(Msg::Shutdown(tx))
            .await
            .map_err(|_| Error::WriterClosed("its task already ended".into()))?;
        let stats = rx
            .await
            .map_err(|_| Error::WriterClosed("its task ended during shutdown".into()))?;
        self.task
            .await
            .map_err(|e| Error::Internal(format!("the writer task failed: {e}")))?;
        Ok(stats)
    }
}

struct Task {
    store: Option<Arc<dyn Store>>,
    options: WriterOptions,
    counters: Arc<Counters>,
    /// Why the store last failed (or could not be opened), for the reason of a loss.
    store_error: Option<String>,
    stats: WriterStats,
    spill: SpillFile,
    /// The event sink's own spill file.
    sink_spill: SpillFile,
    spill_until: Option<Instant>,
    /// After a failed sink write, until when to spill its events without trying it.
    sink_until: Option<Instant>,
    /// Whether the sink's failure was already reported (once per writer).
    sink_warned: bool,
    /// Whether the next batch the sink takes should be followed by a replay of its spill files (at start,
    /// for files left by earlier processes, and after each failure).
    sink_replay_due: bool,
    events: Vec<rvbbit_core::Event>,
    sessions: Vec<Session>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        while let Some(msg) = rx.recv().await {
            let mut pending = Some(msg);
            loop {
                match pending.take() {
                    Some(Msg::Record(r)) => self.push(r),
                    Some(Msg::Flush(reply)) => {
                        self.write().await;
                        // The flusher may have given up waiting; nothing to do then.
                        let _ = reply.send(self.stats.clone());
                    }
                    Some(Msg::Shutdown(reply)) => {
                        rx.close();
                        while let Ok(m) = rx.try_recv() {
                            match m {
                                Msg::Record(r) => {
                                    self.push(r);
                                    if self.buffered() >= self.options.batch_size {
                                        self.write().await;
                                    }
                                }
                                Msg::Flush(f) | Msg::Shutdown(f) => {
                                    self.write().await;
                                    // The flusher may have stopped waiting (timeout); the events are written either way.
                                    let _ = f.send(self.stats.clone());
                                }
                            }
                        }
                        self.write().await;
                        // The caller may have stopped waiting; the stats are only informative.
                        let _ = reply.send(self.stats.clone());
                        return;
                    }
                    None => {}
                }
                if self.buffered() >= self.options.batch_size {
                    break;
                }
                match rx.try_recv() {
                    Ok(m) => pending = Some(m),
                    Err(_) => break,
                }
            }
            self.write().await;
        }
        // Every handle was dropped without a shutdown: still write what is buffered.
        self.write().await;
    }

    fn push(&mut self, r: Record) {
        self.stats.accepted += 1;
        match r {
            Record::Event(e) => self.events.push(*e),
            Record::Session(s) => self.sessions.push(*s),
        }
    }

    fn buffered(&self) -> usize {
        self.events.len() + self.sessions.len()
    }

    async fn write(&mut self) {
        if self.buffered() == 0 {
            return;
        }
        let events = Arc::new(std::mem::take(&mut self.events));
        let sessions = Arc::new(std::mem::take(&mut self.sessions));
        let sink_batch = self.options.sink.is_some().then(|| events.clone());
        self.write_store(events, sessions).await;
        if let Some(events) = sink_batch {
            self.write_sink(&events).await;
        }
    }

    /// Write a batch to the store, retrying while busy, spilling when it fails.
    async fn write_store(&mut self, events: Arc<Vec<rvbbit_core::Event>>, sessions: Arc<Vec<Session>>) {
        let Some(store) = self.store.clone() else {
            self.spill_records(events, sessions);
            return;
        };
        if self.spill_until.is_some_and(|t| Instant::now() < t) {
            self.spill_records(events, sessions);
            return;
        }
        let mut attempt = 0;
        loop {
            // Events before session records, in one transaction where the backend can: a reader that
            // sees a session finished (its final record) also sees every event written before it (live
            // streams rely on this).
            let result = store.write_batch(events.clone(), sessions.clone()).await;
            match result {
                Ok(n) => {
                    self.stats.events_written += n;
                    self.stats.sessions_written += sessions.len() as u64;
                    self.spill_until = None;
                    return;
                }
                Err(e) if e.is_transient() && attempt < self.options.retries => {
                    tracing::debug!(error = %e, attempt, "Store busy; retrying the batch.");
                    self.stats.retries += 1;
                    tokio::time::sleep(self.options.delay(attempt)).await;
                    attempt += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, records = events.len() + sessions.len(), "Store write failed; spilling.");
                    self.stats.last_error = Some(rvbbit_core::error_chain(&e));
                    self.store_error = self.stats.last_error.clone();
                    self.spill_until = Some(Instant::now() + self.options.reprobe_after);
                    self.spill_records(events, sessions);
                    return;
                }
            }
        }
    }

    /// Send a batch of events to the event sink (after the store, whatever became of it there). A
    /// failure spills them to the sink's own files; the next batch it takes replays those files.
    async fn write_sink(&mut self, events: &[rvbbit_core::Event]) {
        let Some(sink) = self.options.sink.clone() else {
            return;
        };
        if events.is_empty() {
            return;
        }
        if self.sink_until.is_some_and(|t| Instant::now() < t) {
            self.spill_sink(events);
            return;
        }
        match sink.sink.append(events).await {
            Ok(_) => {
                let n = events.len() as u64;
                self.stats.sink_written += n;
                self.counters.sink_written.fetch_add(n, Ordering::Relaxed);
                self.counters
                    .sink_last_write
                    .store(rvbbit_core::Timestamp::now().micros(), Ordering::Relaxed);
                self.sink_until = None;
                if self.sink_replay_due {
                    self.replay_sink(&sink).await;
                }
            }
            Err(e) => {
                let error = rvbbit_core::error_chain(&e);
                if !self.sink_warned {
                    self.sink_warned = true;
                    tracing::warn!(
                        url = %sink.url,
                        spill = %sink.spill_dir.display(),
                        error = %error,
                        "The events sink failed; the run goes on (the store has its events) and they wait in the spill directory until the sink answers again or `rvbbit db replay`."
                    );
                }
                self.stats.sink_error = Some(error);
                self.sink_until = Some(Instant::now() + self.options.reprobe_after);
                self.sink_replay_due = true;
                self.spill_sink(events);
            }
        }
    }

    /// Replay the sink's spill files (this writer's own included: its file is closed first, so a later
    /// failure starts a new one). Files other live processes write are left to them.
    async fn replay_sink(&mut self, sink: &SinkOptions) {
        self.sink_spill.close();
        match crate::spill::replay_events(sink.sink.as_ref(), &sink.spill_dir).await {
            Ok(report) => {
                self.sink_replay_due = false;
                self.stats.sink_replayed += report.records;
                let pending = self.counters.sink_pending.load(Ordering::Relaxed);
                self.counters
                    .sink_pending
                    .store(pending.saturating_sub(report.records), Ordering::Relaxed);
                if report.records > 0 {
                    tracing::info!(
                        events = report.records,
                        files = report.files.len(),
                        "Events sink spill replayed."
                    );
                }
            }
            Err(e) => {
                tracing::warn!(url = %sink.url, error = %rvbbit_core::error_chain(&e), "The events sink spill could not be replayed; it is tried again with the next batch.");
            }
        }
    }

    fn spill_sink(&mut self, events: &[rvbbit_core::Event]) {
        let mut text = String::new();
        let mut n = 0u64;
        for e in events {
            match serde_json::to_string(&Record::Event(Box::new(e.clone()))) {
                Ok(line) => {
                    text.push_str(&line);
                    text.push('\n');
                    n += 1;
                }
                Err(err) => self.lose(1, format!("an event cannot be encoded as JSON: {err}")),
            }
        }
        match self
            .sink_spill
            .append(text.as_bytes(), &mut self.stats.sink_spill_files)
        {
            Ok(()) => {
                self.stats.sink_spilled += n;
                self.counters.sink_pending.fetch_add(n, Ordering::Relaxed);
            }
            Err(reason) => {
                let sink = self.stats.sink_error.clone().unwrap_or_default();
                self.lose(n, format!("the events sink failed ({sink}) and {reason}"));
            }
        }
    }

    fn spill_records(&mut self, events: Arc<Vec<rvbbit_core::Event>>, sessions: Arc<Vec<Session>>) {
        let n = (events.len() + sessions.len()) as u64;
        // The store no longer holds the batch, so these are the only owners (a clone otherwise).
        let events = Arc::try_unwrap(events).unwrap_or_else(|shared| shared.as_ref().clone());
        let sessions = Arc::try_unwrap(sessions).unwrap_or_else(|shared| shared.as_ref().clone());
        let records = sessions
            .into_iter()
            .map(|s| Record::Session(Box::new(s)))
            .chain(events.into_iter().map(|e| Record::Event(Box::new(e))));
        let mut text = String::new();
        let mut unencodable = 0u64;
        for r in records {
            match serde_json::to_string(&r) {
                Ok(line) => {
                    text.push_str(&line);
                    text.push('\n');
                }
                Err(e) => {
                    unencodable += 1;
                    self.lose(1, format!("a record cannot be encoded as JSON: {e}"));
                }
            }
        }
        let n = n - unencodable;
        match self.spill.append(text.as_bytes(), &mut self.stats.spill_files) {
            Ok(()) => {
                self.stats.spilled += n;
                self.counters.spilled.fetch_add(n, Ordering::Relaxed);
            }
            Err(reason) => {
                let why = match &self.store_error {
                    Some(store) if self.store.is_some() => {
                        format!("the store failed ({store}) and {reason}")
                    }
                    Some(store) => format!("the store could not be opened ({store}) and {reason}"),
                    None => reason,
                };
                self.lose(n, why);
            }
        }
    }

    /// Count `n` records as lost for `reason`, and log it with its code.
    fn lose(&mut self, n: u64, reason: String) {
        if n == 0 {
            return;
        }
        tracing::error!(
            code = rvbbit_core::codes::S_LOST.code,
            records = n,
            reason = %reason,
            "Records lost: neither the store nor a spill file could take them."
        );
        self.stats.lost += n;
        self.counters.lost.fetch_add(n, Ordering::Relaxed);
        self.stats.lost_reason.get_or_insert(reason.clone());
        self.stats.last_error = Some(reason);
    }
}

/// One spill file, opened on first use in its directory and locked while this process lives.
struct SpillFile {
    dir: PathBuf,
    open: Option<(PathBuf, File)>,
    /// Bytes of whole records in the open file (a failed append is cut back to this).
    len: u64,
}

impl SpillFile {
    fn new(dir: PathBuf) -> Self {
        SpillFile {
            dir,
            open: None,
            len: 0,
        }
    }

    /// Close the file (releasing its lock), so a replay may take it; the next append opens a new one.
    fn close(&mut self) {
        self.open = None;
        self.len = 0;
    }

    /// Append whole records and sync them; a newly opened file is added to `files`. On failure the
    /// file is cut back to its last whole record (so a full disk leaves no torn line) and the reason
    /// names the OS error and path.
    fn append(&mut self, bytes: &[u8], files: &mut Vec<PathBuf>) -> Result<(), String> {
        self.open_file(files)?;
        let len = self.len;
        let Some((path, f)) = &mut self.open else {
            return Err("the spill file vanished (this is a bug)".into());
        };
        // Synced so a crash or SIGKILL right after a spill keeps the batch.
        match f.write_all(bytes).and_then(|()| f.sync_data()) {
            Ok(()) => {
                self.len = len + bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Best effort: a file that cannot be shortened keeps a torn last line, which
                // `rvbbit db replay` sets aside and reports.
                if let Err(cut) = f.set_len(len) {
                    tracing::warn!(error = %cut, path = %path.display(), "Spill file not cut back");
                }
                Err(format!(
                    "the spill file `{}` cannot be written: {e}",
                    path.display()
                ))
            }
        }
    }

    fn open_file(&mut self, files: &mut Vec<PathBuf>) -> Result<(), String> {
        if self.open.is_some() {
            return Ok(());
        }
        let dir = &self.dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("the spill directory `{}` cannot be created: {e}", dir.display()))?;
        let name = format!(
            "spill-{}-{}.jsonl",
            rvbbit_core::Timestamp::now().micros(),
            std::process::id()
        );
        let path = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| cannot("created", &path, &e))?;
        // Held until this process exits (or the file is closed), so `rvbbit db replay` leaves a file
        // still being written.
        file.lock().map_err(|e| cannot("locked", &path, &e))?;
        files.push(path.clone());
        self.open = Some((path, file));
        self.len = 0;
        Ok(())
    }
}

fn cannot(done: &str, path: &Path, e: &std::io::Error) -> String {
    format!("the spill file `{}` cannot be {done}: {e}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let o = WriterOptions::new(PathBuf::from("x"));
        let delays: Vec<u128> = (0..8).map(|a| o.delay(a).as_millis()).collect();
        assert_eq!(delays, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
    }
}
