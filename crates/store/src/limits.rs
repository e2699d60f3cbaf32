//! Spending limits: how much everything, one caller or one tenant may spend per UTC day or month
//! (`rvbbit costs limit set 50/month --tenant acme`), and what was spent against each. What was spent is
//! read from the recorded events (LLM and compute cost), never kept apart, so every process that shares
//! the store sees the same totals. [`check`] is what runs before new work: it finds the limits that
//! apply to a caller and tenant and says which are used up and which are nearly so.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use rvbbit_core::{CallerId, MicroUsd, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Whose spending a limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LimitScope {
    /// Every run recorded in the store.
    All,
    /// Runs of one caller: the name is a caller id (`cli-quiet-heron-…`) or the start of one before a
    /// `-` (`cli`, `batch`, `http`, `sql`: every run through that door).
    Caller,
    /// Runs charged to one tenant (`costs.tenant`, recorded on the root session).
    Tenant,
}

impl LimitScope {
    /// The stable text form (as stored and printed).
    pub const fn as_str(self) -> &'static str {
        match self {
            LimitScope::All => "all",
            LimitScope::Caller => "caller",
            LimitScope::Tenant => "tenant",
        }
    }
}

impl FromStr for LimitScope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(LimitScope::All),
            "caller" => Ok(LimitScope::Caller),
            "tenant" => Ok(LimitScope::Tenant),
            other => Err(format!(
                "`{other}` is not a limit scope; expected all, caller or tenant"
            )),
        }
    }
}

/// The period a limit counts over, in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LimitPeriod {
    /// From midnight UTC today.
    Day,
    /// From midnight UTC on the first of this month.
    Month,
}

impl LimitPeriod {
    /// The stable text form (as stored and printed).
    pub const fn as_str(self) -> &'static str {
        match self {
            LimitPeriod::Day => "day",
            LimitPeriod::Month => "month",
        }
    }

    /// When the period that holds `now` began.
    pub fn start(self, now: Timestamp) -> Timestamp {
        match self {
            LimitPeriod::Day => now.start_of_utc_day(),
            LimitPeriod::Month => now.start_of_utc_month(),
        }
    }
}

impl FromStr for LimitPeriod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "day" => Ok(LimitPeriod::Day),
            "month" => Ok(LimitPeriod::Month),
            other => Err(format!("`{other}` is not a period; expected day or month")),
        }
    }
}

/// One spending limit. A limit is known by its scope, name and period: setting it again replaces its
/// amount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SpendLimit {
    /// Whose spending it counts.
    pub scope: LimitScope,
    /// The caller or tenant (empty for [`LimitScope::All`]).
    pub name: String,
    /// The period it counts over.
    pub period: LimitPeriod,
    /// The most that may be spent in one period.
    pub amount: MicroUsd,
    /// When it was set (or last changed).
    pub updated_at: Timestamp,
}

impl SpendLimit {
    /// A limit set now.
    pub fn new(scope: LimitScope, name: impl Into<String>, period: LimitPeriod, amount: MicroUsd) -> Self {
        SpendLimit {
            scope,
            name: name.into(),
            period,
            amount,
            updated_at: Timestamp::now(),
        }
    }

    /// Whether the limit counts the runs of `caller` charged to `tenant`.
    pub fn applies_to(&self, caller: &CallerId, tenant: Option<&str>) -> bool {
        match self.scope {
            LimitScope::All => true,
            LimitScope::Caller => caller_matches(&self.name, caller.as_str()),
            LimitScope::Tenant => tenant == Some(self.name.as_str()),
        }
    }

    /// The command-line flags that name this limit (`--caller cli`, `--tenant acme`, or nothing).
    pub fn flags(&self) -> String {
        match self.scope {
            LimitScope::All => String::new(),
            LimitScope::Caller => format!(" --caller {}", self.name),
            LimitScope::Tenant => format!(" --tenant {}", self.name),
        }
    }
}

impl fmt::Display for SpendLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whose = match self.scope {
            LimitScope::All => "everything".to_owned(),
            LimitScope::Caller => format!("caller `{}`", self.name),
            LimitScope::Tenant => format!("tenant `{}`", self.name),
        };
        write!(
            f,
            "the limit of {} per {} for {whose}",
            self.amount,
            self.period.as_str()
        )
    }
}

/// Whether a caller-limit's `name` covers `caller_id`: the same id, or its start before a `-`.
pub fn caller_matches(name: &str, caller_id: &str) -> bool {
    caller_id == name
        || caller_id
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('-'))
}

/// The largest amount a limit may have: $1,000,000,000.
pub const MAX_LIMIT_DOLLARS: i64 = 1_000_000_000;

/// Read `AMOUNT/PERIOD` (`50/month`, `2.5/day`, `$0.75/day`): a plain decimal dollar amount from 0 to
/// [`MAX_LIMIT_DOLLARS`] with at most six decimals, and `day` or `month`. The error says what is wrong
/// and what is accepted.
pub fn parse_limit(text: &str) -> std::result::Result<(MicroUsd, LimitPeriod), String> {
    let shown: String = text.chars().take(64).collect();
    let Some((amount, period)) = text.trim().split_once('/') else {
        return Err(format!(
            "`{shown}` is not AMOUNT/PERIOD; write the dollars and the period, such as `50/month` or `2.5/day`"
        ));
    };
    let period: LimitPeriod = period.trim().parse()?;
    let amount = amount.trim();
    if amount.starts_with('-') {
        return Err(format!("`{shown}`: the amount must not be negative"));
    }
    let amount: MicroUsd = amount.parse().map_err(|e| format!("`{shown}`: {e}"))?;
    if amount > MicroUsd::from_dollars(MAX_LIMIT_DOLLARS) {
        return Err(format!(
            "`{shown}`: the amount is more than the largest limit, ${MAX_LIMIT_DOLLARS}"
        ));
    }
    Ok((amount, period))
}

/// Where spending limits live, and what was spent against them.
#[async_trait]
pub trait LimitStore: Send + Sync {
    /// Insert the limit, or replace the amount of the one with its scope, name and period.
    async fn limit_set(&self, limit: &SpendLimit) -> Result<()>;

    /// Every limit, by scope, name and period.
    async fn limits(&self) -> Result<Vec<SpendLimit>>;

    /// Remove the limit with this scope, name and period; false when there was none.
    async fn limit_remove(&self, scope: LimitScope, name: &str, period: LimitPeriod) -> Result<bool>;

    /// The known cost (LLM and compute) of the events recorded at or after `since` that `scope` and
    /// `name` count: every event ([`LimitScope::All`]), those whose caller id [`caller_matches`] `name`,
    /// or those whose root session's `invocation_metadata.tenant` is `name`.
    async fn spent(&self, scope: LimitScope, name: &str, since: Timestamp) -> Result<MicroUsd>;
}

/// One limit with what was spent against it in the current period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LimitUse {
    /// The limit.
    pub limit: SpendLimit,
    /// Spent since `since`.
    pub spent: MicroUsd,
    /// When the current period began.
    pub since: Timestamp,
}

impl LimitUse {
    /// What was spent, in percent of the limit (100 or more once used up; a zero limit is always used
    /// up).
    pub fn percent(&self) -> u64 {
        let amount = self.limit.amount.micros();
        if amount <= 0 {
            return 100;
        }
        let pct = i128::from(self.spent.micros()) * 100 / i128::from(amount);
        u64::try_from(pct.max(0)).unwrap_or(u64::MAX)
    }

    /// What is left before the limit is reached (zero once used up).
    pub fn left(&self) -> MicroUsd {
        MicroUsd::from_micros(
            self.limit
                .amount
                .micros()
                .saturating_sub(self.spent.micros())
                .max(0),
        )
    }
}

/// The percentage of a limit past which new work is started with a warning.
pub const WARN_PERCENT: u64 = 80;

/// What [`check`] found: the applicable limits that are used up and those nearly so.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verdict {
    /// The limits at or past 100 %: no new work may start.
    pub reached: Vec<LimitUse>,
    /// The limits at or past [`WARN_PERCENT`] and under 100 %.
    pub near: Vec<LimitUse>,
    /// Every applicable limit, tightest (least left) first.
    pub applicable: Vec<LimitUse>,
}

impl Verdict {
    /// The applicable limit with the least left, if any.
    pub fn tightest(&self) -> Option<&LimitUse> {
        self.applicable.first()
    }
}

/// Every limit with what was spent against it at `now`.
///
/// Errors: the store's.
pub async fn uses<S: LimitStore + ?Sized>(store: &S, now: Timestamp) -> Result<Vec<LimitUse>> {
    let mut out = Vec::new();
    for limit in store.limits().await? {
        let since = limit.period.start(now);
        let spent = store.spent(limit.scope, &limit.name, since).await?;
        out.push(LimitUse { limit, spent, since });
    }
    Ok(out)
}

/// The limits that count the runs of `caller` charged to `tenant`, with what each has spent at `now`.
/// Reads the (small) limits table first, and the events only for limits that apply.
///
/// Errors: the store's.
pub async fn check<S: LimitStore + ?Sized>(
    store: &S,
    caller: &CallerId,
    tenant: Option<&str>,
    now: Timestamp,
) -> Result<Verdict> {
    let mut verdict = Verdict::default();
    for limit in store.limits().await? {
        if !limit.applies_to(caller, tenant) {
            continue;
        }
        let since = limit.period.start(now);
        let spent = store.spent(limit.scope, &limit.name, since).await?;
        let used = LimitUse { limit, spent, since };
        match used.percent() {
            p if p >= 100 => verdict.reached.push(used.clone()),
            p if p >= WARN_PERCENT => verdict.near.push(used.clone()),
            _ => {}
        }
        verdict.applicable.push(used);
    }
    verdict.applicable.sort_by_key(LimitUse::left);
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_limits_cover_an_id_or_its_door() {
        assert!(caller_matches("cli", "cli-quiet-heron-0c1d"));
        assert!(caller_matches("cli-quiet-heron-0c1d", "cli-quiet-heron-0c1d"));
        assert!(!caller_matches("cl", "cli-quiet-heron-0c1d"));
        assert!(!caller_matches("batch", "cli-quiet-heron-0c1d"));
    }

    #[test]
    fn limits_parse_strictly() {
        let (amount, period) = parse_limit("50/month").unwrap();
        assert_eq!((amount.micros(), period), (50_000_000, LimitPeriod::Month));
        assert_eq!(parse_limit(" $2.5 / day ").unwrap().0.micros(), 2_500_000);
        assert_eq!(parse_limit("0/day").unwrap().0, MicroUsd::ZERO);
        for bad in [
            "-5/day",
            "abc",
            "1e99/month",
            "5/week",
            "NaN/day",
            "inf/day",
            "/day",
            "5/",
            "1000000001/day",
            "0.0000001/day",
        ] {
            assert!(parse_limit(bad).is_err(), "{bad}");
        }
        assert!(parse_limit("5/week").unwrap_err().contains("day or month"));
    }

    #[test]
    fn percent_and_left_never_overflow() {
        let mut used = LimitUse {
            limit: SpendLimit::new(
                LimitScope::All,
                "",
                LimitPeriod::Day,
                MicroUsd::from_micros(1_000),
            ),
            spent: MicroUsd::from_micros(800),
            since: Timestamp::from_micros(0),
        };
        assert_eq!(used.percent(), 80);
        assert_eq!(used.left().micros(), 200);
        used.spent = MicroUsd::from_micros(i64::MAX);
        assert!(used.percent() >= 100);
        assert_eq!(used.left().micros(), 0);
        used.limit.amount = MicroUsd::ZERO;
        assert_eq!(used.percent(), 100);
    }
}
