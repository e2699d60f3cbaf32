//! The persistent result cache of rvbbit function calls: the statement's memo first, then one batched
//! store read for the calls it does not know ([`lookup`]); answers are kept in the memo at once and
//! written to the cache beside the statement's remaining work ([`remember`], [`cache_put`]: the
//! statement ends only once they are stored, see [`Statement::write_cache`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rvbbit_core::Timestamp;
use rvbbit_engine::Outcome;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use super::Call;
use crate::runtime::Runtime;
use crate::statement::{Answer, Statement};

/// Version of the cache value layout and of the `rvbbit_udf` prompt; bump to invalidate old entries.
pub(crate) const CACHE_LAYOUT: u32 = 1;

/// How many of `calls` the persistent cache would answer now (one read; nothing is logged).
pub(crate) async fn cached_count(runtime: &Runtime, calls: &[Call]) -> u64 {
    let Some(store) = &runtime.store else { return 0 };
    let keys: Vec<String> = calls.iter().filter(|c| c.cache).map(|c| c.key.clone()).collect();
    if keys.is_empty() {
        return 0;
    }
    match store.cache_get_many(&keys, Timestamp::now()).await {
        Ok(found) => found
            .iter()
            .flatten()
            .filter(|e| e.value.get("layout").and_then(Value::as_u64) == Some(u64::from(CACHE_LAYOUT)))
            .count() as u64,
        Err(_) => 0,
    }
}

/// The answers the statement's memo and the persistent cache hold for `calls` (one store read that
/// writes nothing: the hits are counted here and recorded once, when the statement ends); `None` for
/// the calls still to run.
pub(crate) async fn lookup(runtime: &Runtime, stmt: &Arc<Statement>, calls: &[Call]) -> Vec<Option<Answer>> {
    let cells = stmt.cells(calls.iter().map(|c| c.key.as_str()));
    let wanted: Vec<usize> = (0..calls.len())
        .filter(|&i| calls[i].cache && !cells[i].initialized())
        .collect();
    if let Some(store) = &runtime.store
        && !wanted.is_empty()
    {
        let keys: Vec<String> = wanted.iter().map(|&i| calls[i].key.clone()).collect();
        let started = Instant::now();
        match store.cache_peek_many(&keys, Timestamp::now()).await {
            Ok(found) => serve_hits(stmt, calls, &cells, &wanted, found),
            Err(e) => tracing::warn!(error = %e, "Result cache unreadable; running the calls"),
        }
        tracing::debug!(
            target: "rvbbit::timings",
            keys = keys.len(),
            ms = format!("{:.2}", started.elapsed().as_secs_f64() * 1000.0),
            "Result cache read"
        );
    }
    cells.iter().map(|c| c.get().cloned()).collect()
}

/// Who answered a call kept by [`remember`]: the run `session_id` of `cascade_id`, and the call's share
/// of that run's cost.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AnsweredBy<'a> {
    pub(crate) session_id: &'a str,
    pub(crate) cascade_id: &'a str,
    pub(crate) cost_micros: i64,
}

/// Keep `answered` (a call, its value and the run that answered it): the statement's memo answers them
/// from now on, and the persistent cache (one write for all) those that are cached. A call the memo
/// already answered keeps that first answer.
pub(crate) async fn remember(
    runtime: &Runtime,
    stmt: &Statement,
    answered: Vec<(&Call, Value, AnsweredBy<'_>)>,
) -> Vec<Answer> {
    let cells = stmt.cells(answered.iter().map(|(c, _, _)| c.key.as_str()));
    let now = Timestamp::now();
    // The calls of one function share their time to live.
    let expires = answered.first().and_then(|(c, _, _)| c.expires(Some(stmt), now));
    let mut entries = Vec::new();
    let mut out = Vec::with_capacity(answered.len());
    for ((call, value, by), cell) in answered.into_iter().zip(cells) {
        if let Some(first) = cell.get() {
            out.push(first.clone());
            continue;
        }
        if call.cache {
            let stored = cache_value(&value, by.session_id, by.cascade_id, by.cost_micros);
            entries.push((call.key.clone(), stored));
        }
        let answer = Answer::Ok(value);
        // Set between the check and here only by this statement's other batches, with the same answer.
        if let Err(e) = cell.set(answer.clone()) {
            tracing::trace!(error = %e, "The memo already had this answer");
        }
        out.push(answer);
    }
    if let Some(store) = &runtime.store
        && !entries.is_empty()
    {
        stmt.write_cache(store.clone(), entries, now, expires).await;
    }
    out
}

/// Serve the entries found for `wanted` calls: set their memo cells and count the hits (one lock).
fn serve_hits(
    stmt: &Statement,
    calls: &[Call],
    cells: &[Arc<OnceCell<Answer>>],
    wanted: &[usize],
    found: Vec<Option<rvbbit_store::CacheEntry>>,
) {
    let mut avoided_total = 0i64;
    let mut served = 0u64;
    let mut hits = stmt.hits.lock().unwrap_or_else(|p| p.into_inner());
    for (&i, entry) in wanted.iter().zip(found) {
        let Some((answer, avoided)) = entry.and_then(|e| cached_answer(e.value)) else {
            continue;
        };
        // Another batch of the statement may have set it meanwhile: same answer, counted there.
        if cells[i].set(answer).is_ok() {
            hits.add(calls[i].kind.function(), &calls[i].key);
            served += 1;
            avoided_total = avoided_total.saturating_add(avoided);
        }
    }
    drop(hits);
    stmt.counters.cache_hits.fetch_add(served, Ordering::Relaxed);
    stmt.counters
        .avoided_micros
        .fetch_add(avoided_total, Ordering::Relaxed);
}

/// The persistent cache's value for `value`, answered by run `session_id` of `cascade_id` at
/// `cost_micros` (the layout [`lookup`] reads back).
pub(crate) fn cache_value(value: &Value, session_id: &str, cascade_id: &str, cost_micros: i64) -> Value {
    // Built field by field: `json!` would copy `value` through a serializer (issue 24: a statement
    // stores hundreds of these).
    let mut stored = Map::with_capacity(5);
    stored.insert("layout".into(), Value::from(CACHE_LAYOUT));
    stored.insert("value".into(), value.clone());
    stored.insert("session_id".into(), Value::from(session_id));
    stored.insert("cascade_id".into(), Value::from(cascade_id));
    stored.insert("cost_micro_usd".into(), Value::from(cost_micros));
    Value::Object(stored)
}

pub(crate) async fn cache_put(
    runtime: &Runtime,
    stmt: &Statement,
    call: &Call,
    value: &Value,
    outcome: &Outcome,
) {
    let Some(store) = &runtime.store else { return };
    let stored = cache_value(
        value,
        outcome.session_id.as_str(),
        &outcome.cascade_id,
        outcome.cost.micros(),
    );
    let now = Timestamp::now();
    let expires = call.expires(Some(stmt), now);
    stmt.write_cache(store.clone(), vec![(call.key.clone(), stored)], now, expires)
        .await;
}

/// A cache entry as an answer and the cost it avoids, or `None` when it is of another layout or
/// unreadable (the call then runs).
fn cached_answer(mut stored: Value) -> Option<(Answer, i64)> {
    if stored.get("layout").and_then(Value::as_u64) != Some(u64::from(CACHE_LAYOUT)) {
        return None;
    }
    let avoided = stored.get("cost_micro_usd").and_then(Value::as_i64).unwrap_or(0);
    let value = stored.get_mut("value")?.take();
    Some((Answer::Ok(value), avoided))
}
