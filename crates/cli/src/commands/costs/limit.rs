//! `rvbbit costs limit set|list|remove`: spending limits per UTC day or month (docs/costs.md).

use rvbbit_core::{Timestamp, codes};
use rvbbit_store::limits::{self, LimitPeriod, LimitScope, LimitUse, SpendLimit};
use serde_json::{Value, json};

use super::super::storage::{block_on, fail, open, table};
use super::super::{Coded, Failure, Outcome};
use crate::cli::Cli;
use crate::output::{self, Format, Out};

/// `rvbbit costs limit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Set (or change) a limit: `50/month`, `2.5/day`. Without --caller or --tenant it counts everything.
    Set {
        /// Dollars per period: `AMOUNT/day` or `AMOUNT/month` (UTC), such as `50/month`.
        #[arg(value_name = "AMOUNT/PERIOD", allow_hyphen_values = true)]
        limit: String,
        #[command(flatten)]
        whose: Whose,
    },
    /// Every limit with what it has spent in its current period.
    List,
    /// Remove the limit of a period (`day` or `month`), with the --caller or --tenant it was set with.
    Remove {
        /// `day` or `month`.
        #[arg(value_name = "PERIOD")]
        period: String,
        #[command(flatten)]
        whose: Whose,
    },
}

/// Whose spending a limit counts.
#[derive(Debug, clap::Args)]
pub(crate) struct Whose {
    /// Only runs of this caller: a caller id, or its door (`cli`, `batch`, `http`, `sql`) for every run
    /// through it.
    #[arg(long, value_name = "CALLER", conflicts_with = "tenant")]
    caller: Option<String>,
    /// Only runs charged to this tenant (`costs.tenant` of the process that ran them).
    #[arg(long, value_name = "TENANT")]
    tenant: Option<String>,
}

impl Whose {
    fn scope(&self) -> Result<(LimitScope, String), Failure> {
        let (scope, name, flag) = match (&self.caller, &self.tenant) {
            (Some(c), _) => (LimitScope::Caller, c.as_str(), "--caller"),
            (None, Some(t)) => (LimitScope::Tenant, t.as_str(), "--tenant"),
            (None, None) => return Ok((LimitScope::All, String::new())),
        };
        if let Some(why) = rvbbit_core::config::limit_name_problem(name) {
            let shown: String = name.chars().take(64).collect();
            return Err(bad(
                format!("`{flag} {shown}` is not a {} name: {why}", scope.as_str()),
                "use 1 to 128 letters, digits, `_`, `.` or `-`, such as `--tenant acme` or `--caller cli`",
            ));
        }
        Ok((scope, name.to_owned()))
    }
}

fn bad(message: String, hint: &str) -> Failure {
    Failure::Coded(Coded {
        code: codes::B_SPEND_LIMIT_USAGE,
        message,
        hint: hint.into(),
        causes: Vec::new(),
    })
}

pub(crate) fn run(cli: &Cli, cmd: &Command, out: Out) -> Outcome {
    // Arguments are checked before the store is opened.
    let change = match cmd {
        Command::Set { limit, whose } => {
            let (amount, period) = limits::parse_limit(limit).map_err(|e| {
                bad(
                    e,
                    "write the limit as AMOUNT/PERIOD in dollars, such as `50/month` or `2.5/day` (0 to 1000000000, at most six decimals)",
                )
            })?;
            let (scope, name) = whose.scope()?;
            Some(Ok(SpendLimit::new(scope, name, period, amount)))
        }
        Command::Remove { period, whose } => {
            let period: LimitPeriod = period.parse().map_err(|e: String| {
                bad(
                    e,
                    "name the period: `rvbbit costs limit remove month --tenant acme`",
                )
            })?;
            let (scope, name) = whose.scope()?;
            Some(Err((scope, name, period)))
        }
        Command::List => None,
    };
    block_on(async {
        let opened = open(cli, out).await?;
        let store = opened.store.as_ref();
        match change {
            Some(Ok(limit)) => {
                store.limit_set(&limit).await.map_err(fail)?;
                let used = limits::uses(store, Timestamp::now()).await.map_err(fail)?;
                let mine = used
                    .into_iter()
                    .find(|u| same(&u.limit, limit.scope, &limit.name, limit.period));
                match out.format {
                    Format::Json => output::json(&json!({"status": "ok", "limit": mine.as_ref().map(doc)}))?,
                    Format::Text => output::stdout(&format!(
                        "Set {}{}.\n",
                        limit,
                        mine.map(|u| format!(" ({} spent since {})", u.spent, u.since.to_rfc3339()))
                            .unwrap_or_default()
                    ))?,
                }
                Ok(0)
            }
            Some(Err((scope, name, period))) => {
                if !store.limit_remove(scope, &name, period).await.map_err(fail)? {
                    let flags = SpendLimit::new(scope, name, period, rvbbit_core::MicroUsd::ZERO).flags();
                    return Err(bad(
                        format!("there is no limit per {}{flags} to remove", period.as_str()),
                        "`rvbbit costs limit list` shows the limits with the flags that name them",
                    ));
                }
                match out.format {
                    Format::Json => output::json(&json!({"status": "ok", "removed": true}))?,
                    Format::Text => output::stdout("Removed.\n")?,
                }
                Ok(0)
            }
            None => {
                let used = limits::uses(store, Timestamp::now()).await.map_err(fail)?;
                match out.format {
                    Format::Json => output::json(
                        &json!({"status": "ok", "limits": used.iter().map(doc).collect::<Vec<_>>()}),
                    )?,
                    Format::Text if used.is_empty() => output::stdout(
                        "No spending limits. Set one with `rvbbit costs limit set 50/month`.\n",
                    )?,
                    Format::Text => output::stdout(&list_text(&used))?,
                }
                Ok(0)
            }
        }
    })
}

fn same(l: &SpendLimit, scope: LimitScope, name: &str, period: LimitPeriod) -> bool {
    l.scope == scope && l.name == name && l.period == period
}

/// One limit in `--output json`.
fn doc(u: &LimitUse) -> Value {
    json!({
        "scope": u.limit.scope.as_str(),
        "name": u.limit.name,
        "period": u.limit.period.as_str(),
        "amount_micro_usd": u.limit.amount.micros(),
        "spent_micro_usd": u.spent.micros(),
        "percent": u.percent(),
        "since": u.since.to_rfc3339(),
        "updated_at": u.limit.updated_at.to_rfc3339(),
    })
}

fn list_text(used: &[LimitUse]) -> String {
    let rows: Vec<Vec<String>> = used
        .iter()
        .map(|u| {
            vec![
                u.limit.scope.as_str().to_owned(),
                if u.limit.name.is_empty() {
                    "-".to_owned()
                } else {
                    u.limit.name.clone()
                },
                u.limit.period.as_str().to_owned(),
                u.limit.amount.to_string(),
                u.spent.to_string(),
                format!("{}%", u.percent()),
            ]
        })
        .collect();
    table(&["SCOPE", "NAME", "PERIOD", "LIMIT", "SPENT", "USED"], &rows)
}
