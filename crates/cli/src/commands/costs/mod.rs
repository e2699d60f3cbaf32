//! `rvbbit costs summary|by-model|by-cascade|by-caller|export|limit`.

mod limit;

use rvbbit_core::Timestamp;
use rvbbit_store::{CostGroup, CostRow};
use serde_json::json;

use super::Outcome;
use super::storage::{Filters, block_on, fail, open, table};
use crate::cli::Cli;
use crate::output::{self, Format, Out};

/// `rvbbit costs` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Totals, and one row per UTC day.
    Summary {
        /// Only the last N days (same as --since Nd).
        #[arg(long, value_name = "N")]
        days: Option<i64>,
        #[command(flatten)]
        filters: Filters,
    },
    /// Totals per model.
    ByModel(Filters),
    /// Totals per cascade.
    ByCascade(Filters),
    /// Totals per caller (a CLI invocation, a SQL statement, ...).
    ByCaller(Filters),
    /// Spending limits per UTC day or month, for everything, a caller or a tenant (docs/costs.md).
    #[command(subcommand)]
    Limit(limit::Command),
    /// Every group of --by as CSV on stdout.
    Export {
        /// Output format (only csv).
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
        /// What rows are grouped by.
        #[arg(long, value_enum, default_value = "day")]
        by: By,
        #[command(flatten)]
        filters: Filters,
    },
}

/// Export formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    /// Comma-separated values with a header row; cost in micro-dollars and dollars.
    Csv,
}

/// Export grouping.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum By {
    Day,
    Model,
    Cascade,
    Caller,
}

fn rows_text(key: &str, rows: &[CostRow]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.key.clone(),
                r.sessions.to_string(),
                r.calls.to_string(),
                r.tokens_in.to_string(),
                r.tokens_out.to_string(),
                (r.cost - r.compute_cost).to_string(),
                r.compute_cost.to_string(),
                r.cost.to_string(),
                r.unknown_cost.to_string(),
            ]
        })
        .collect();
    table(
        &[
            key,
            "SESSIONS",
            "CALLS",
            "TOKENS IN",
            "TOKENS OUT",
            "LLM",
            "COMPUTE",
            "COST",
            "UNPRICED",
        ],
        &body,
    )
}

pub(crate) fn run(cli: &Cli, cmd: &Command, out: Out) -> Outcome {
    if let Command::Limit(cmd) = cmd {
        return limit::run(cli, cmd, out);
    }
    block_on(async {
        let opened = open(cli, out).await?;
        // With an events sink (ClickHouse), the costs come from it; the store (which holds every event
        // too) answers when the sink cannot.
        let sink = match &opened.events_url {
            Some(url) => super::sink::reading_sink(url).await,
            None => None,
        };
        let costs = Costs {
            store: opened.store.as_ref(),
            sink: sink.as_deref(),
            url: opened.events_url.as_deref(),
        };
        let (group, key, filters) = match cmd {
            Command::Summary { days, filters } => {
                let mut f = filters.events();
                if let Some(d) = days {
                    f.since = Some(Timestamp::now().add_micros(-d.saturating_mul(86_400_000_000)));
                }
                let total = costs.of(CostGroup::Total, &f).await.map_err(fail)?;
                let by_day = costs.of(CostGroup::Day, &f).await.map_err(fail)?;
                match out.format {
                    Format::Json => {
                        output::json(&json!({"status": "ok", "total": total.first(), "by_day": by_day}))?
                    }
                    Format::Text => {
                        let mut days = by_day;
                        days.sort_by(|a, b| a.key.cmp(&b.key));
                        let mut text = rows_text("TOTAL", &total);
                        text.push('\n');
                        text.push_str(&rows_text("DAY (UTC)", &days));
                        output::stdout(&text)?;
                    }
                }
                return Ok(0);
            }
            Command::ByModel(f) => (CostGroup::Model, "MODEL", f),
            Command::ByCascade(f) => (CostGroup::Cascade, "CASCADE", f),
            Command::ByCaller(f) => (CostGroup::Caller, "CALLER", f),
            // Answered above, before the store is opened for totals.
            Command::Limit(_) => return Ok(0),
            Command::Export {
                format: ExportFormat::Csv,
                by,
                filters,
            } => {
                let group = match by {
                    By::Day => CostGroup::Day,
                    By::Model => CostGroup::Model,
                    By::Cascade => CostGroup::Cascade,
                    By::Caller => CostGroup::Caller,
                };
                let rows = costs.of(group, &filters.events()).await.map_err(fail)?;
                let mut csv = String::from(
                    "key,sessions,calls,tokens_in,tokens_out,cost_micro_usd,cost_usd,unpriced,compute_cost_micro_usd\n",
                );
                for r in rows {
                    let key = if r.key.contains([',', '"', '\n']) {
                        format!("\"{}\"", r.key.replace('"', "\"\""))
                    } else {
                        r.key.clone()
                    };
                    csv.push_str(&format!(
                        "{key},{},{},{},{},{},{},{},{}\n",
                        r.sessions,
                        r.calls,
                        r.tokens_in,
                        r.tokens_out,
                        r.cost.micros(),
                        r.cost.to_decimal_string(),
                        r.unknown_cost,
                        r.compute_cost.micros()
                    ));
                }
                output::stdout(&csv)?;
                return Ok(0);
            }
        };
        let mut f = filters.events();
        f.limit = None;
        let mut rows = costs.of(group, &f).await.map_err(fail)?;
        if let Some(l) = filters.limit {
            rows.truncate(usize::try_from(l).unwrap_or(usize::MAX));
        }
        match out.format {
            Format::Json => output::json(&json!({"status": "ok", "rows": rows}))?,
            Format::Text => output::stdout(&rows_text(key, &rows))?,
        }
        Ok(0)
    })
}

/// Where cost queries go: the events sink when there is one, else (or when it fails) the store.
struct Costs<'a> {
    store: &'a dyn rvbbit_store::Store,
    sink: Option<&'a dyn rvbbit_store::EventSink>,
    url: Option<&'a str>,
}

impl Costs<'_> {
    async fn of(
        &self,
        group: CostGroup,
        filter: &rvbbit_store::EventFilter,
    ) -> Result<Vec<rvbbit_store::CostRow>, rvbbit_store::Error> {
        if let Some(sink) = self.sink {
            match sink.costs(group, filter).await {
                Ok(rows) => return Ok(rows),
                Err(e) => output::stderr(&format!(
                    "warning: the events sink {} failed ({}); reading the store instead\n",
                    rvbbit_core::config::mask_url(self.url.unwrap_or_default()),
                    rvbbit_core::error_chain(&e)
                )),
            }
        }
        self.store.costs(group, filter).await
    }
}
