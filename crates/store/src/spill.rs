//! Spill files: JSON Lines of [`Record`]s written when the store failed, loaded back by
//! `rvbbit db replay` exactly once (event ids make inserts idempotent; replayed files move to
//! `replayed/`). A damaged line (a torn last line after a crash, an edit by hand) does not stop the
//! replay: it is set aside in `rejected/<file>.rejected` and reported with its line number.
//!
//! The event sink (`[store.events] url`) has spill files of its own, in `events-sink/` below the store's
//! spill directory, holding only events: [`replay_events`] sends them to the sink, and
//! [`pending_records`] counts what waits there (the sink's lag).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{Record, Session};
use crate::traits::{EventSink, Store};

/// The folder of the event sink's spill files below a spill directory.
pub const SINK_DIR: &str = "events-sink";

/// Where a replay sends records: the store (events and sessions), or the event sink (events only).
#[derive(Clone, Copy)]
enum Target<'a> {
    Store(&'a dyn Store),
    Sink(&'a dyn EventSink),
}

impl Target<'_> {
    async fn append(self, events: &[rvbbit_core::Event]) -> Result<u64> {
        match self {
            Target::Store(s) => s.append(events).await,
            Target::Sink(s) => s.append(events).await,
        }
    }
}

/// Records (lines) waiting in the spill files of `dir`: for the event sink's lag.
pub fn pending_records(dir: &Path) -> Result<u64> {
    let mut n = 0;
    for path in pending(dir)? {
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            // Replayed (moved) meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(Error::File {
                    action: "read the spill file",
                    path,
                    source,
                });
            }
        };
        for line in std::io::BufReader::new(file).split(b'\n') {
            let line = line.map_err(|source| Error::File {
                action: "read the spill file",
                path: path.clone(),
                source,
            })?;
            if !line.iter().all(u8::is_ascii_whitespace) {
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Load every pending event-sink spill file in `dir` into `sink`, then move each to `dir/replayed/`.
/// Session records (there are none in sink files) are ignored. Files a live process holds are skipped
/// ([`ReplayReport::in_use`]); a file another replay moved meanwhile is skipped too.
///
/// Idempotent: the sink keeps each event id once (ClickHouse: `ReplacingMergeTree`, read with `FINAL`).
/// Errors: as [`replay`].
pub async fn replay_events(sink: &dyn EventSink, dir: &Path) -> Result<ReplayReport> {
    replay_into(Target::Sink(sink), dir).await
}

/// Spill files waiting in `dir` (oldest first); an absent directory has none.
pub fn pending(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::File {
                action: "list the spill directory",
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    Ok(files)
}

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ReplayReport {
    /// Files replayed (now under `replayed/`).
    pub files: Vec<PathBuf>,
    /// Files skipped because a running process is still writing them (replay again once it ends).
    pub in_use: Vec<PathBuf>,
    /// Records read.
    pub records: u64,
    /// Events newly inserted.
    pub events_inserted: u64,
    /// Events already in the store (skipped by id).
    pub events_already_present: u64,
    /// Session records applied (older ones are ignored by the store).
    pub sessions: u64,
    /// Damaged lines that were not replayed, each kept in a `.rejected` file.
    pub rejected: Vec<Rejected>,
}

/// A spill line that is not a record (torn by a crash, or edited): skipped, and kept for the operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Rejected {
    /// The spill file it came from (as named before the replay moved it).
    pub file: PathBuf,
    /// Its 1-based line number.
    pub line: usize,
    /// Why it is not a record.
    pub error: String,
    /// Where the raw line was kept: `rejected/<file>.rejected` beside the spill files, one damaged
    /// line per line. Fix it and save it as a `.jsonl` file in the spill directory to replay it.
    pub kept_in: PathBuf,
}

const BATCH: usize = 2000;

/// Load every pending spill file in `dir` into `store`, then move each to `dir/replayed/`. Files a live
/// process is still writing (it holds their lock) are skipped and listed in [`ReplayReport::in_use`].
///
/// Idempotent: a file interrupted half-way can be replayed again; events already present are skipped.
/// A damaged line is skipped, written to `dir/rejected/<file>.rejected` and listed in
/// [`ReplayReport::rejected`]; the rest of its file is replayed.
/// Errors: [`Error::File`] (the file stays where it is), and store errors.
pub async fn replay(store: &dyn Store, dir: &Path) -> Result<ReplayReport> {
    replay_into(Target::Store(store), dir).await
}

async fn replay_into(target: Target<'_>, dir: &Path) -> Result<ReplayReport> {
    let mut report = ReplayReport::default();
    for path in pending(dir)? {
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            // Another replay of the sink's files moved it meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && matches!(target, Target::Sink(_)) => {
                continue;
            }
            Err(source) => {
                return Err(Error::File {
                    action: "open the spill file",
                    path: path.clone(),
                    source,
                });
            }
        };
        // A writer holds an exclusive lock on its spill file for as long as its process lives. Sink
        // files are replayed by writers too, automatically, so those take the lock exclusively: two
        // replays never send one file at once.
        let locked = match target {
            Target::Store(_) => file.try_lock_shared(),
            Target::Sink(_) => file.try_lock(),
        };
        match locked {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                report.in_use.push(path);
                continue;
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(Error::File {
                    action: "lock the spill file",
                    path,
                    source,
                });
            }
        }
        let mut events = Vec::new();
        let mut sessions: Vec<Session> = Vec::new();
        let mut damaged: Vec<(usize, String, Vec<u8>)> = Vec::new();
        // Split on bytes, not `lines()`: a torn line may end inside a UTF-8 sequence.
        for (i, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
            let line = line.map_err(|source| Error::File {
                action: "read the spill file",
                path: path.clone(),
                source,
            })?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let record: Record = match serde_json::from_slice(&line) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(file = %path.display(), line = i + 1, error = %e, "Damaged spill line set aside.");
                    damaged.push((i + 1, e.to_string(), line));
                    continue;
                }
            };
            report.records += 1;
            match record {
                Record::Event(e) => events.push(*e),
                Record::Session(s) => sessions.push(*s),
            }
            if events.len() >= BATCH {
                report.events_inserted += target.append(&events).await?;
                report.events_already_present += events.len() as u64;
                events.clear();
            }
        }
        if !damaged.is_empty() {
            report.rejected.extend(keep_rejected(dir, &path, damaged)?);
        }
        if let Target::Store(store) = target {
            store.put_sessions(&sessions).await?;
            report.sessions += sessions.len() as u64;
        }
        report.events_inserted += target.append(&events).await?;
        report.events_already_present += events.len() as u64;
        let done = dir.join("replayed");
        let target = done.join(path.file_name().unwrap_or_default());
        std::fs::create_dir_all(&done)
            .and_then(|()| std::fs::rename(&path, &target))
            .map_err(|source| Error::File {
                action: "move the replayed spill file",
                path: path.clone(),
                source,
            })?;
        report.files.push(target);
    }
    report.events_already_present = report
        .events_already_present
        .saturating_sub(report.events_inserted);
    Ok(report)
}

/// Write the damaged lines of `path` to `dir/rejected/<name>.rejected` (replacing an earlier attempt,
/// so replaying an interrupted file again does not repeat them).
fn keep_rejected(dir: &Path, path: &Path, damaged: Vec<(usize, String, Vec<u8>)>) -> Result<Vec<Rejected>> {
    let folder = dir.join("rejected");
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".rejected");
    let kept_in = folder.join(name);
    let file_err = |source| Error::File {
        action: "keep the damaged spill lines in",
        path: kept_in.clone(),
        source,
    };
    std::fs::create_dir_all(&folder).map_err(file_err)?;
    let mut out = std::fs::File::create(&kept_in).map_err(file_err)?;
    let mut rejected = Vec::with_capacity(damaged.len());
    for (line, error, raw) in damaged {
        out.write_all(&raw)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(file_err)?;
        rejected.push(Rejected {
            file: path.to_owned(),
            line,
            error,
            kept_in: kept_in.clone(),
        });
    }
    out.sync_data().map_err(file_err)?;
    Ok(rejected)
}
