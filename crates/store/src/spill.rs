//! Spill files: JSON Lines of [`Record`]s written when the store failed, loaded back by
//! `rvbbit db replay` exactly once (event ids make inserts idempotent; replayed files move to
//! `replayed/`).

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{Record, Session};
use crate::traits::Store;

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
}

const BATCH: usize = 2000;

/// Load every pending spill file in `dir` into `store`, then move each to `dir/replayed/`. Files a live
/// process is still writing (it holds their lock) are skipped and listed in [`ReplayReport::in_use`].
///
/// Idempotent: a file interrupted half-way can be replayed again; events already present are skipped.
/// Errors: [`Error::File`], [`Error::SpillLine`] (the file stays where it is), and store errors.
pub async fn replay(store: &dyn Store, dir: &Path) -> Result<ReplayReport> {
    let mut report = ReplayReport::default();
    for path in pending(dir)? {
        let file = std::fs::File::open(&path).map_err(|source| Error::File {
            action: "open the spill file",
            path: path.clone(),
            source,
        })?;
        // A writer holds an exclusive lock on its spill file for as long as its process lives.
        match file.try_lock_shared() {
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
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|source| Error::File {
                action: "read the spill file",
                path: path.clone(),
                source,
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let record: Record = serde_json::from_str(&line).map_err(|source| Error::SpillLine {
                path: path.clone(),
                line: i + 1,
                source,
            })?;
            report.records += 1;
            match record {
                Record::Event(e) => events.push(*e),
                Record::Session(s) => sessions.push(*s),
            }
            if events.len() >= BATCH {
                report.events_inserted += store.append(&events).await?;
                report.events_already_present += events.len() as u64;
                events.clear();
            }
        }
        store.put_sessions(&sessions).await?;
        report.sessions += sessions.len() as u64;
        report.events_inserted += store.append(&events).await?;
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
