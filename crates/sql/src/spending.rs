//! Admission of a statement's runs: `rvbbit.max_calls` ([`admit`]) and the spending limits
//! (docs/costs.md), read once per statement before its first model call or run ([`check`]).

use std::sync::atomic::Ordering;

use crate::error::Error;
use crate::runtime::Runtime;
use crate::statement::Statement;

/// May the statement start runs under the spending limits (docs/costs.md)? Read once per statement,
/// before its first run, so a statement answered from the memo and the cache is never refused; limits
/// at 80 % or more become notices, one at 100 % fails the statement with RVB-B030 before anything runs.
///
/// # Errors
/// [`Error::SpendLimit`] naming the limit.
pub(crate) async fn check(runtime: &Runtime, stmt: &Statement) -> Result<(), Error> {
    let verdict = stmt
        .spending
        .get_or_init(|| async {
            let admitted = match (runtime.engine.store(), &runtime.store) {
                (None, Some(store)) => runtime.engine.admit_in(&**store, &stmt.caller_id).await,
                _ => runtime.engine.admit(&stmt.caller_id).await,
            };
            match admitted {
                Ok(admission) => {
                    for warning in &admission.warnings {
                        stmt.note(&format!("warning: {warning}"));
                    }
                    Ok(())
                }
                Err(e) => Err((e.to_string(), e.hint())),
            }
        })
        .await;
    verdict
        .clone()
        .map_err(|(message, hint)| Error::SpendLimit { message, hint })
}

/// Count `n` more runs of the statement against `max_calls`; over it, count none and say so.
pub(crate) fn admit(stmt: &Statement, n: usize, max_calls: u64) -> Result<(), Error> {
    let n = n as u64;
    if n == 0 {
        return Ok(());
    }
    let admitted = stmt.counters.admitted.fetch_add(n, Ordering::Relaxed);
    if admitted.saturating_add(n) <= max_calls {
        return Ok(());
    }
    stmt.counters.admitted.fetch_sub(n, Ordering::Relaxed);
    Err(Error::Limit {
        message: format!(
            "the statement needs more than {max_calls} model calls (rvbbit.max_calls; {admitted} started, \
             {n} more wanted); narrow the query with WHERE or LIMIT, or raise it with SET rvbbit.max_calls = n"
        ),
    })
}
