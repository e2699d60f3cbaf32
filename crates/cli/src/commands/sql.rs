//! `rvbbit sql "QUERY"`: run one SQL statement in a fresh session with rvbbit's functions and print the
//! rows as a table, JSON or CSV.

use rvbbit_engine::Engine;
use rvbbit_engine::tools::Registry;
use rvbbit_sql::{QueryResult, SqlRuntime};
use serde_json::json;

use super::setup::Recording;
use super::storage::{Signals, block_on};
use super::{Coded, Failure, Outcome, load_config, setup};
use crate::cli::Cli;
use crate::output::{self, Format, Out};

/// How rows are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RowFormat {
    /// A boxed text table.
    Table,
    /// One JSON document: columns, rows (objects), caller id, call statistics, notices.
    Json,
    /// CSV with a header line.
    Csv,
}

/// Arguments of `rvbbit sql`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The SQL statement (DataFusion dialect, with rvbbit_udf, rvbbit_run and the semantic operators).
    #[arg(
        value_name = "QUERY",
        required_unless_present_any = ["functions", "test_functions"],
        conflicts_with_all = ["functions", "test_functions"]
    )]
    query: Option<String>,
    /// List the semantic SQL functions of this directory instead (the built-ins and the `sql_function`
    /// cascades under `cascades/`; the `rvbbit_functions` table).
    #[arg(long, conflicts_with = "test_functions")]
    functions: bool,
    /// Run the `test_cases` of every semantic SQL function of this directory instead: each case's `sql`,
    /// its first value checked against `expect`. Exit 2 when a case fails.
    #[arg(long)]
    test_functions: bool,
    /// How to print the rows (the global `--output json` also selects json).
    #[arg(long, value_enum, default_value = "table")]
    format: RowFormat,
}

pub(crate) fn run(cli: &Cli, args: &Args, out: Out) -> Outcome {
    let config = load_config(cli, out)?.config;
    let format = if out.format == Format::Json {
        RowFormat::Json
    } else {
        args.format
    };
    block_on(async move {
        let mut signals = Signals::install()?;
        let provider = super::run::provider(&config, None, None).await?;
        let (writer, store) = setup::store_writer(&config).await;
        let mut registry = Registry::builtin();
        let batch_tables = rvbbit_sql::register_tools(&mut registry);
        let engine = Engine::new(registry)
            .with_provider(provider)
            .with_writer(writer.handle())
            .with_default_model(config.default_model.clone())
            .with_limits(config.limits.clone())
            .with_costs(config.costs.clone());
        let settings = setup::sql_settings(&config);
        let runtime = SqlRuntime::new(engine, store, Some(writer.handle()), settings, batch_tables)
            .map_err(|e| Failure::Coded(sql_failure(&e)))?;
        let runtime = super::sink::sql_reading_sink(runtime, config.store.events.url.as_deref())
            .await
            .map_err(|e| Failure::Coded(sql_failure(&e)))?;
        if args.test_functions {
            let results = runtime.test_functions().await;
            let stats = writer.shutdown().await.map_err(super::storage::fail)?;
            if let Some(f) = Recording::of(&stats).failure("the test cases' runs") {
                return Err(Failure::Coded(f));
            }
            return render_tests(&results, format, out);
        }
        let session = runtime.session();
        let query = match (&args.query, args.functions) {
            (Some(query), false) => query.as_str(),
            _ => FUNCTIONS_QUERY,
        };
        let mut statement = Box::pin(session.execute(query));
        let result = tokio::select! {
            r = &mut statement => r,
            s = signals.recv() => {
                // Dropping the statement cancels its runs; they stop and record `cancelled`, then
                // everything recorded is flushed.
                drop(statement);
                if !runtime.wait_for_runs(RUNS_GRACE).await && !out.quiet {
                    output::stderr("warning: some runs did not stop in time; `rvbbit sessions cleanup` marks them later\n");
                }
                let stats = writer.shutdown().await.map_err(super::storage::fail)?;
                if let Some(f) = Recording::of(&stats).failure("the interrupted statement") {
                    return Err(Failure::Coded(f));
                }
                return Ok(s.exit_code());
            }
        };
        let stats = writer.shutdown().await.map_err(super::storage::fail)?;
        let recording = Recording::of(&stats);
        match result {
            Ok(result) => {
                let exit = render(&result, format, out, &recording)?;
                match recording.failure("the statement's runs") {
                    Some(f) => {
                        if format != RowFormat::Json {
                            super::report_coded(&f, out);
                        }
                        Ok(f.code.exit_code())
                    }
                    None => Ok(exit),
                }
            }
            Err(e) => {
                let mut coded = sql_failure(&e);
                if let Some(mut lost) = recording.failure("the statement's runs") {
                    lost.causes
                        .push(format!("[{}] {}", coded.code.code, coded.message));
                    coded = lost;
                }
                Err(Failure::Coded(coded))
            }
        }
    })
}

/// Print the results of `--test-functions`; exit 2 when a case failed.
fn render_tests(results: &[rvbbit_sql::CaseResult], format: RowFormat, out: Out) -> Outcome {
    use rvbbit_sql::CaseStatus;
    let count = |s: CaseStatus| results.iter().filter(|r| r.status == s).count();
    let (passed, failed, skipped) = (
        count(CaseStatus::Passed),
        count(CaseStatus::Failed),
        count(CaseStatus::Skipped),
    );
    let exit = if failed > 0 {
        rvbbit_core::ExitClass::Execution.exit_code()
    } else {
        0
    };
    if format == RowFormat::Json {
        output::json(&json!({
            "status": if failed > 0 { "failed" } else { "ok" },
            "exit_code": exit,
            "passed": passed,
            "failed": failed,
            "skipped": skipped,
            "cases": results,
        }))?;
        return Ok(exit);
    }
    let mut text = String::new();
    for r in results {
        let tag = match r.status {
            CaseStatus::Passed => "pass",
            CaseStatus::Failed => "FAIL",
            CaseStatus::Skipped => "skip",
        };
        let about = r
            .description
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        let why = if r.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", r.detail)
        };
        text.push_str(&format!(
            "{tag} {} #{}{about} [{}]{why}\n",
            r.function, r.case, r.source
        ));
    }
    text.push_str(&format!(
        "{passed} of {} test case(s) passed ({failed} failed, {skipped} skipped)\n",
        results.len()
    ));
    output::stdout(&text)?;
    if failed > 0 && !out.quiet {
        output::stderr("error: a semantic function's test case failed; the lines marked FAIL say why\n");
    }
    Ok(exit)
}

/// What `rvbbit sql --functions` runs.
const FUNCTIONS_QUERY: &str =
    "SELECT name, shape, returns, args, operators, source, description FROM rvbbit_functions ORDER BY name";

/// How long an interrupted `rvbbit sql` waits for its cancelled runs to record how they ended.
const RUNS_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

fn sql_failure(e: &rvbbit_sql::Error) -> Coded {
    Coded {
        code: e.code(),
        message: e.to_string(),
        hint: e.hint(),
        causes: Vec::new(),
    }
}

/// Print the rows. With JSON, a recording failure (records spilled or lost) sets `status` and adds
/// `code`, `message` and `hint`; `recording` is always there.
fn render(result: &QueryResult, format: RowFormat, out: Out, recording: &Recording) -> Outcome {
    let fail = |e: rvbbit_sql::Error| Failure::Coded(sql_failure(&e));
    match format {
        RowFormat::Json => {
            let columns: Vec<_> = result
                .columns()
                .into_iter()
                .map(|(name, ty)| json!({"name": name, "type": ty}))
                .collect();
            let failure = recording.failure("the statement's runs");
            output::json(&json!({
                "status": recording.status().unwrap_or("ok"),
                "exit_code": failure.as_ref().map_or(0, |f| f.code.exit_code()),
                "code": failure.as_ref().map(|f| f.code.code),
                "message": failure.as_ref().map(|f| format!("{}: {}", f.message, f.causes.join("; "))),
                "hint": failure.as_ref().map(|f| f.hint.clone()),
                "recording": recording,
                "columns": columns,
                "rows": result.to_json_rows().map_err(fail)?,
                "row_count": result.row_count(),
                "caller_id": result.caller_id.as_str(),
                "stats": {
                    "runs": result.stats.runs,
                    "llm_calls": result.stats.llm_calls,
                    "cache_hits": result.stats.cache_hits,
                    "errors": result.stats.errors,
                    "cost_usd": result.stats.cost.to_decimal_string(),
                    "avoided_cost_usd": result.stats.avoided_cost.to_decimal_string(),
                },
                "notices": result.notices,
                "duration_ms": u64::try_from(result.duration.as_millis()).unwrap_or(u64::MAX),
            }))?;
        }
        RowFormat::Table => {
            let table = result.to_table().map_err(fail)?;
            if !table.is_empty() {
                output::stdout(&format!("{table}\n"))?;
            }
        }
        RowFormat::Csv => output::stdout(&result.to_csv().map_err(fail)?)?,
    }
    if format != RowFormat::Json && !out.quiet {
        for n in &result.notices {
            output::stderr(&format!("notice: {n}\n"));
        }
        if out.verbose {
            let s = &result.stats;
            output::stderr(&format!(
                "{} row(s) in {} ms; caller {}; {} run(s), {} LLM call(s), {} cache hit(s), {} error(s), cost ${} (avoided ${})\n",
                result.row_count(),
                result.duration.as_millis(),
                result.caller_id,
                s.runs,
                s.llm_calls,
                s.cache_hits,
                s.errors,
                s.cost.to_decimal_string(),
                s.avoided_cost.to_decimal_string()
            ));
        }
    }
    Ok(0)
}
