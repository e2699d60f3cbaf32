//! `rvbbit metrics --format prometheus`: run counts by status, cost and token totals, session duration
//! histogram, read from the store.

use rvbbit_store::{CostGroup, EventFilter, SessionFilter};

use super::Outcome;
use super::storage::{block_on, fail, open};
use crate::cli::Cli;
use crate::output::{self, Out};

/// `rvbbit metrics` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Exposition format.
    #[arg(long, value_enum, default_value = "prometheus")]
    pub(crate) format: MetricsFormat,
}

/// Metrics formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum MetricsFormat {
    /// The Prometheus text exposition format.
    Prometheus,
}

/// Upper bounds of the session duration histogram, in seconds.
const BUCKETS: &[f64] = &[1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0];

pub(crate) fn run(cli: &Cli, _args: &Args, out: Out) -> Outcome {
    block_on(async {
        let opened = open(cli, out).await?;
        let store = opened.store.as_ref();
        let counts = store.session_counts().await.map_err(fail)?;
        let models = store
            .costs(CostGroup::Model, &EventFilter::default())
            .await
            .map_err(fail)?;
        let sessions = store.sessions(&SessionFilter::default()).await.map_err(fail)?;
        let events = store.count_events(&EventFilter::default()).await.map_err(fail)?;
        let mut t = String::new();
        t.push_str("# HELP rvbbit_sessions Sessions in the store by status.\n# TYPE rvbbit_sessions gauge\n");
        for (status, n) in &counts {
            t.push_str(&format!("rvbbit_sessions{{status=\"{status}\"}} {n}\n"));
        }
        t.push_str("# HELP rvbbit_events Events in the store.\n# TYPE rvbbit_events gauge\n");
        t.push_str(&format!("rvbbit_events {events}\n"));
        t.push_str("# HELP rvbbit_cost_usd Known cost by model, in dollars.\n# TYPE rvbbit_cost_usd gauge\n");
        for r in &models {
            t.push_str(&format!(
                "rvbbit_cost_usd{{model=\"{}\"}} {}\n",
                escape(&r.key),
                r.cost.to_decimal_string()
            ));
        }
        t.push_str("# HELP rvbbit_llm_calls LLM calls by model.\n# TYPE rvbbit_llm_calls gauge\n");
        for r in &models {
            t.push_str(&format!(
                "rvbbit_llm_calls{{model=\"{}\"}} {}\n",
                escape(&r.key),
                r.calls
            ));
        }
        t.push_str("# HELP rvbbit_tokens Tokens by model and class.\n# TYPE rvbbit_tokens gauge\n");
        for r in &models {
            let m = escape(&r.key);
            t.push_str(&format!(
                "rvbbit_tokens{{model=\"{m}\",class=\"input\"}} {}\n",
                r.tokens_in
            ));
            t.push_str(&format!(
                "rvbbit_tokens{{model=\"{m}\",class=\"output\"}} {}\n",
                r.tokens_out
            ));
        }
        let durations: Vec<f64> = sessions
            .iter()
            .filter_map(|s| {
                s.session
                    .ended_at
                    .map(|e| (e.micros() - s.session.started_at.micros()) as f64 / 1e6)
            })
            .collect();
        t.push_str(
            "# HELP rvbbit_session_duration_seconds Duration of finished sessions.\n# TYPE rvbbit_session_duration_seconds histogram\n",
        );
        for b in BUCKETS {
            let n = durations.iter().filter(|d| **d <= *b).count();
            t.push_str(&format!(
                "rvbbit_session_duration_seconds_bucket{{le=\"{b}\"}} {n}\n"
            ));
        }
        t.push_str(&format!(
            "rvbbit_session_duration_seconds_bucket{{le=\"+Inf\"}} {}\n",
            durations.len()
        ));
        t.push_str(&format!(
            "rvbbit_session_duration_seconds_sum {}\n",
            durations.iter().sum::<f64>()
        ));
        t.push_str(&format!(
            "rvbbit_session_duration_seconds_count {}\n",
            durations.len()
        ));
        output::stdout(&t)?;
        Ok(0)
    })
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
