//! `Store::prune` in SQLite: retention by age, in one write transaction.

use rusqlite::{Connection, TransactionBehavior, params};
use rvbbit_core::Timestamp;

use super::Fail;
use crate::model::Prune;

/// Finished sessions that ended before `?1`.
const OLD_SESSIONS: &str = "SELECT session_id FROM sessions WHERE status NOT IN ('running', 'waiting')
    AND coalesce(ended_at_us, updated_at_us) < ?1";
/// Events before `?1` filed under no session record (a SQL statement's events under its caller id).
const ORPHAN_EVENTS: &str = "FROM events WHERE ts_us < ?1
    AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = events.session_id)";
/// Signals no longer waiting, created before `?1`.
const OLD_SIGNALS: &str = "FROM signals WHERE status <> 'waiting' AND created_at_us < ?1";
/// Cache entries expired at `?1`.
const OLD_JOURNAL: &str = "FROM journal WHERE created_at_us < ?1";
const OLD_EFFECTS: &str = "FROM effects WHERE started_at_us < ?1";
const OLD_WORKERS: &str = "FROM workers WHERE heartbeat_at_us < ?1";
const OLD_BATCHES: &str = "FROM batches WHERE status NOT IN ('running', 'cancelling') AND updated_at_us < ?1";
const EXPIRED_CACHE: &str = "FROM result_cache WHERE expires_at_us IS NOT NULL AND expires_at_us <= ?1";

/// Delete (or with `dry_run` count) what is older than `before`; see [`crate::Store::prune`].
pub(crate) fn prune(
    c: &mut Connection,
    before: Timestamp,
    now: Timestamp,
    dry_run: bool,
) -> Result<Prune, Fail> {
    let t = before.micros();
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let count = |sql: &str, at: i64| -> Result<u64, Fail> {
        let n: i64 = tx.query_row(&format!("SELECT count(*) {sql}"), [at], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    };
    let of_old = format!("IN ({OLD_SESSIONS})");
    let report = Prune {
        sessions: count(&format!("FROM sessions WHERE session_id {of_old}"), t)?,
        events: count(&format!("FROM events WHERE session_id {of_old}"), t)? + count(ORPHAN_EVENTS, t)?,
        checkpoints: count(&format!("FROM checkpoints WHERE session_id {of_old}"), t)?,
        signals: count(OLD_SIGNALS, t)?,
        cache_entries: count(EXPIRED_CACHE, now.micros())?,
        journal: count(OLD_JOURNAL, t)? + count(OLD_EFFECTS, t)?,
        workers: count(OLD_WORKERS, t)?,
        batches: count(OLD_BATCHES, t)?,
    };
    if dry_run {
        return Ok(report);
    }
    // Children first: events and checkpoints name their session, so they go before it.
    tx.execute(
        &format!("DELETE FROM events WHERE session_id {of_old}"),
        params![t],
    )?;
    tx.execute(&format!("DELETE {ORPHAN_EVENTS}"), params![t])?;
    tx.execute(
        &format!("DELETE FROM checkpoints WHERE session_id {of_old}"),
        params![t],
    )?;
    tx.execute(
        &format!("DELETE FROM sessions WHERE session_id {of_old}"),
        params![t],
    )?;
    tx.execute(&format!("DELETE {OLD_SIGNALS}"), params![t])?;
    tx.execute(&format!("DELETE {EXPIRED_CACHE}"), params![now.micros()])?;
    tx.execute(&format!("DELETE {OLD_JOURNAL}"), params![t])?;
    tx.execute(&format!("DELETE {OLD_EFFECTS}"), params![t])?;
    tx.execute(&format!("DELETE {OLD_WORKERS}"), params![t])?;
    tx.execute(&format!("DELETE {OLD_BATCHES}"), params![t])?;
    tx.commit()?;
    Ok(report)
}
