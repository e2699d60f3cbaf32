//! Money around runs (docs/costs.md): the compute cost of code, shell and script tool calls, the tenant
//! recorded on root sessions, and the spending limits checked before new work starts
//! ([`Engine::admit`]).

use std::time::Duration;

use rvbbit_cascade::model::Cell;
use rvbbit_core::{CallerId, CostStatus, EventKind, MicroUsd, Timestamp};
use rvbbit_store::limits::{self, LimitUse, Verdict};
use serde_json::{Value, json};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::request::RunRequest;
use crate::run::{Run, micros};
use crate::tools::Tool;

/// What [`Engine::admit`] found when new work may start: warnings for limits nearly used up, and the
/// limits that apply (tightest first), so a batch can stop before passing one.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Admission {
    /// One line per limit at or past 80 % (without a `warning:` prefix).
    pub warnings: Vec<String>,
    /// The applicable limits with what each has spent.
    pub verdict: Verdict,
}

impl Engine {
    /// Price code, shell and script tool calls at `costs.compute_micro_dollars_per_second`, and charge
    /// root runs to `costs.tenant` (docs/costs.md).
    pub fn with_costs(mut self, costs: rvbbit_core::config::CostsConfig) -> Self {
        self.costs = costs;
        self
    }

    /// The configured `[costs]`.
    pub fn costs(&self) -> &rvbbit_core::config::CostsConfig {
        &self.costs
    }

    /// May new work of `caller` start under the spending limits in the engine's store? Reads the limits
    /// that apply to `caller` and the configured tenant, and what each has spent in its current UTC day
    /// or month. Without a store there is nothing to check. A store that cannot be read does not stop
    /// the work: the admission then carries a warning saying the limits were not checked.
    ///
    /// # Errors
    /// [`Error::SpendLimit`] (RVB-B030) naming the first limit used up.
    pub async fn admit(&self, caller: &CallerId) -> Result<Admission> {
        match &self.store {
            Some(store) => self.admit_in(&**store, caller).await,
            None => Ok(Admission::default()),
        }
    }

    /// [`Engine::admit`] against `store` (for a door whose engine runs without a store of its own, as
    /// the SQL door's does), with the engine's `[costs]` tenant.
    ///
    /// # Errors
    /// [`Error::SpendLimit`] (RVB-B030) naming the first limit used up.
    pub async fn admit_in(&self, store: &dyn rvbbit_store::Store, caller: &CallerId) -> Result<Admission> {
        let verdict = match limits::check(store, caller, self.costs.tenant.as_deref(), Timestamp::now()).await
        {
            Ok(v) => v,
            Err(e) => {
                return Ok(Admission {
                    warnings: vec![format!(
                        "spending limits could not be checked ({}); the work starts anyway",
                        rvbbit_core::error_chain(&e)
                    )],
                    verdict: Verdict::default(),
                });
            }
        };
        if let Some(used) = verdict.reached.first() {
            return Err(refusal(used));
        }
        let warnings = verdict.near.iter().map(warning).collect();
        Ok(Admission { warnings, verdict })
    }

    /// Record `costs.tenant` on a root request's invocation metadata (where tenant limits look).
    pub(crate) fn stamp_tenant(&self, request: &mut RunRequest) {
        let Some(tenant) = &self.costs.tenant else {
            return;
        };
        if request.depth > 0 || request.parent_session_id.is_some() {
            return;
        }
        if !request.metadata.is_object() {
            request.metadata = json!({});
        }
        if let Some(m) = request.metadata.as_object_mut() {
            m.entry("tenant").or_insert_with(|| Value::String(tenant.clone()));
        }
    }
}

/// The error for a limit used up.
pub fn refusal(used: &LimitUse) -> Error {
    Error::SpendLimit {
        limit: used.limit.to_string(),
        spent: used.spent,
        since: used.since.to_rfc3339(),
        percent: used.percent(),
        period: used.limit.period.as_str(),
        flags: used.limit.flags(),
    }
}

/// The warning for a limit nearly used up.
pub fn warning(used: &LimitUse) -> String {
    format!(
        "{} is {}% used ({} spent since {}); new work is refused at 100% (RVB-B030)",
        used.limit,
        used.percent(),
        used.spent,
        used.since.to_rfc3339()
    )
}

/// The compute cost of `elapsed` at `rate` micro-dollars a second, rounded to the nearest micro-dollar.
pub(crate) fn compute_cost(elapsed: Duration, rate: u64) -> MicroUsd {
    let cost = elapsed
        .as_micros()
        .saturating_mul(u128::from(rate))
        .saturating_add(500_000)
        / 1_000_000;
    MicroUsd::from_micros(i64::try_from(cost).unwrap_or(i64::MAX))
}

/// After a code, shell or script tool call that took `elapsed`: a `compute_cost` event and the cost in
/// the run's totals, when a rate is configured.
pub(crate) async fn charge_compute(run: &mut Run<'_>, cell: &Cell, tool: &dyn Tool, elapsed: Duration) {
    let rate = run.engine.costs.compute_micro_dollars_per_second;
    if rate == 0 || !tool.compute() {
        return;
    }
    let cost = compute_cost(elapsed, rate);
    let mut e = run.emit.event(EventKind::ComputeCost, Some(&cell.name));
    e.duration_us = Some(micros(elapsed));
    e.cost = Some(cost);
    e.cost_status = CostStatus::Exact;
    e.metadata = json!({"tool": tool.name(), "micro_dollars_per_second": rate});
    run.emit.send(e).await;
    run.add_cost(cost);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_cost_is_duration_times_rate() {
        assert_eq!(
            compute_cost(Duration::from_millis(1500), 1_000_000).micros(),
            1_500_000
        );
        assert_eq!(compute_cost(Duration::from_micros(1), 1).micros(), 0);
        assert_eq!(compute_cost(Duration::from_micros(1), 500_000).micros(), 1);
        assert_eq!(compute_cost(Duration::MAX, u64::MAX).micros(), i64::MAX);
    }
}
