//! Copy every record of one store into another (`rvbbit db copy --to URL`): the path from one laptop's
//! SQLite file to a team's PostgreSQL.
//!
//! Idempotent and resumable: events are inserted by event id (present ones are skipped), session records
//! by `updated_at` (never rolled back), checkpoints replaced by id, signals and API keys inserted when
//! absent, cache entries put by key (their hit counts start again at zero). Running it again after an interruption finishes the job and copies
//! nothing twice. Pages are bounded, so memory stays flat whatever the store's size.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{EventFilter, SessionFilter};
use crate::traits::Store;

/// Records read per page.
const PAGE: u64 = 2000;

/// What a copy did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CopyReport {
    /// Session records written (upserted).
    pub sessions: u64,
    /// Events read from the source.
    pub events: u64,
    /// Of those, events that were new in the destination.
    pub events_inserted: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// Signals written (present ones are left alone).
    pub signals: u64,
    /// API keys copied (present ones are left alone).
    pub api_keys: u64,
    /// API keys already present in the destination.
    pub api_keys_present: u64,
    /// Result cache entries written.
    pub cache_entries: u64,
}

/// Copy everything in `from` into `to`; `progress` is called after each page with the report so far.
///
/// Errors: a source and destination with the same URL ([`Error::Conflict`]), and any read or write
/// error of either store (the copy can simply be run again).
pub async fn copy_all(
    from: &dyn Store,
    to: &dyn Store,
    mut progress: impl FnMut(&CopyReport),
) -> Result<CopyReport> {
    if from.url() == to.url() {
        return Err(Error::Conflict {
            what: "store",
            id: to.url().to_owned(),
            state: "the source".into(),
            reason: "a store cannot be copied into itself; name another store with --to".into(),
        });
    }
    let mut report = CopyReport::default();
    // Sessions first, so a reader of the destination never sees events of an unknown session.
    let sessions = from.sessions(&SessionFilter::default()).await?;
    for page in sessions.chunks(PAGE as usize) {
        let records: Vec<_> = page.iter().map(|s| s.session.clone()).collect();
        to.put_sessions(&records).await?;
        report.sessions += records.len() as u64;
        progress(&report);
    }
    let mut after = None;
    loop {
        let page = from
            .events(&EventFilter {
                after_seq: after,
                limit: Some(PAGE),
                ..EventFilter::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.store_seq);
        let events: Vec<_> = page.into_iter().map(|s| s.event).collect();
        report.events += events.len() as u64;
        report.events_inserted += to.append(&events).await?;
        progress(&report);
    }
    for cp in from.checkpoints(None, None).await? {
        to.checkpoint_put(&cp).await?;
        report.checkpoints += 1;
    }
    for signal in from.signals(None).await? {
        to.signal_register(&signal).await?;
        report.signals += 1;
    }
    for key in from.keys().await? {
        match to.key_insert(&key).await {
            Ok(()) => report.api_keys += 1,
            Err(Error::Conflict { .. }) => report.api_keys_present += 1,
            Err(e) => return Err(e),
        }
    }
    let mut after: Option<String> = None;
    loop {
        let page = from.cache_entries(after.as_deref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        for entry in &page {
            to.cache_put(&entry.key, &entry.value, entry.created_at, entry.expires_at)
                .await?;
        }
        report.cache_entries += page.len() as u64;
        progress(&report);
    }
    Ok(report)
}
