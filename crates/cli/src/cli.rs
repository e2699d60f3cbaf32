//! Command-line definitions (the single source for `--help` and `docs/cli.md`) and the exit-code mapping.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rvbbit_core::codes;

use crate::commands;
use crate::output::{Format, Out};

/// rvbbit: a declarative engine for LLM and compute workflows.
///
/// A cascade is a YAML file of cells: LLM cells, deterministic cells (SQL, shell, code, HTTP) and
/// human-in-the-loop cells. Exit codes: 0 ok, 1 validation, 2 execution, 3 tool, 4 LLM, 5 storage,
/// 6 configuration (see docs/exit-codes.md).
#[derive(Debug, Parser)]
#[command(name = "rvbbit", version, propagate_version = true, max_term_width = 100)]
pub(crate) struct Cli {
    /// Configuration file (default: rvbbit.toml in the current directory). Env: RVBBIT_CONFIG.
    #[arg(long, global = true, value_name = "PATH", env = "RVBBIT_CONFIG")]
    pub(crate) config: Option<PathBuf>,

    /// Override a setting for this command, such as `--set provider.max_concurrency=4` (repeatable;
    /// wins over rvbbit.toml and RVBBIT_* variables).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub(crate) set: Vec<String>,

    /// Output format: text for people, or one JSON document on stdout.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub(crate) output: Format,

    /// Print more detail (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    /// Print only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,

    /// Never use colors (also honoured: the NO_COLOR environment variable).
    #[arg(long, global = true)]
    pub(crate) no_color: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a cascade: validate it, then execute its cells as one session, recording every step.
    ///
    /// Text mode prints the validator's warnings (stderr), then the final output (stdout; a tool's result
    /// as its text) and `session ID completed: rvbbit sessions show ID` (stderr, not with -q);
    /// --output json prints one JSON outcome document. Exit codes: 0 ok, 1 invalid cascade, 2 a cell
    /// failed, 3 a tool failed or timed out, 4 the LLM provider failed, 6 invalid --input or
    /// configuration, 10 waiting for a human (the session stays `waiting`; the message prints the
    /// `rvbbit signal send` and `rvbbit resume` commands), 130/143 interrupted (RVB-E013; the session is
    /// marked cancelled).
    ///
    /// Human-in-the-loop cells: in a terminal the question is asked on stderr and answered on stdin;
    /// otherwise the run polls the store for an answer sent with `rvbbit signal send` (up to --wait or
    /// the cell's timeout), and --detach exits 10 at once. A progress line (cell, turn, LLM calls, cost)
    /// is drawn on stderr when it is a terminal, never when piped or with -q.
    Run(commands::run::Args),
    /// Continue a `waiting` session at its waiting cell, without re-running the cells that completed.
    ///
    /// Uses the cascade text recorded on the session (a warning when the file changed since), the same
    /// session id and caller id. With --value, answers the pending question first. Exit codes as for
    /// `rvbbit run`; 5 when the session is not waiting (RVB-S006) or unknown (RVB-S005).
    Resume(commands::resume::Args),
    /// Run CASCADE once per input: the files of a glob, or the lines of a JSONL or rows of a CSV file.
    ///
    /// One batch id and `batch-…` caller for all; at most --parallel at once; a live progress display;
    /// each input's output in --output-dir/<input name>/; a result cache by content (a rerun is $0 for
    /// inputs that completed); --budget-dollars stops starting inputs before the cost would pass it.
    /// Exit 0 when every input completed, 11 when some failed (RVB-B001), 12 when all failed
    /// (RVB-B002). See docs/batch.md.
    Batch(commands::batch::Args),
    /// What `rvbbit batch` with the same arguments would do, without running anything.
    ///
    /// Counts the inputs (and the bad ones), looks each up in the result cache, and scales the store's
    /// history of completed runs of the cascade (its latest 50) to the inputs left to run: LLM calls,
    /// cost, and time at --parallel. Unknown when the cascade never completed here. See docs/batch.md.
    Estimate(commands::batch::Args),
    /// Run a plain script (.py, .sh, .js) in the sandbox, once or once per file of --batch GLOB.
    ///
    /// Arguments naming existing files or folders are mounted read-only and passed as absolute paths; a
    /// requirements.txt beside a Python script is installed into a venv cached by its hash; every file
    /// the script leaves in its work directory is an output (--output-dir/<name>/). Results are cached
    /// by content (script, requirements, arguments, input files). One run prints the script's stdout
    /// and stderr and exits 0, or 3 when it fails (RVB-B020); with --batch, exits as `rvbbit batch`.
    /// Options go before SCRIPT. See docs/exec.md.
    Exec(commands::batch::exec::ExecArgs),
    /// Enqueue a run of CASCADE on the job queue (`queue.url`) for any `rvbbit worker` to take.
    ///
    /// The cascade is validated here (errors exit 1); its text and input travel in the job. Prints the
    /// submission id; the same id submitted again within the duplicate window is one job. With --wait,
    /// waits for the outcome in the shared store and exits as `rvbbit run` would. Exit 5 when the queue
    /// is unreachable (RVB-S011). See docs/workers.md.
    Submit(commands::submit::Args),
    /// Pull jobs from the queue and run them against the configured store until SIGTERM or SIGINT.
    ///
    /// Each job runs as `rvbbit run` runs a file (caller id `queue-<submission id>`); the worker reports
    /// progress while a run lives and acks once its outcome is in the store. SIGTERM drains: no new
    /// jobs, runs in flight get `queue.drain_grace_seconds`, then the rest are cancelled and handed back;
    /// exit 0. A job that cannot start is dead-lettered on its last delivery. See docs/workers.md.
    Worker(commands::worker::Args),
    /// The job queue: its counts and dead letters, and retrying them.
    #[command(subcommand)]
    Queue(commands::queue::Command),
    /// The cascade registry on object storage (`artifacts.url`): push a cascade with everything it
    /// references as a content-addressed bundle, then `rvbbit run registry:NAME[:VERSION]` anywhere.
    /// See docs/registry.md.
    #[command(subcommand)]
    Cascade(commands::registry::Command),
    /// Answer waiting human-in-the-loop cells and list signals.
    #[command(subcommand)]
    Signal(commands::signal::Command),
    /// Run one SQL statement with rvbbit's LLM functions and print the rows.
    ///
    /// Each invocation is a fresh SQL session; its LLM calls are sessions under one caller id `sql-…`,
    /// results are cached in the store. Exit codes: 0 ok, 2 the statement failed (RVB-Q001 invalid,
    /// RVB-Q002 execution, RVB-Q003 a function failed with rvbbit.udf_errors = 'raise', RVB-Q004 a bad
    /// argument or setting), 6 configuration, 130/143 interrupted.
    Sql(commands::sql::Args),
    /// Check cascade files and directories without running them.
    ///
    /// Reports every problem, never stopping at the first: syntax, unknown keys (with "did you mean"),
    /// types, cell names and kinds, handoff/routing/on_error/context targets, tools, validators, handoff
    /// cycles, output_schema, and Jinja templates. Never contacts a provider or a store.
    /// Exit code 1 when any error is found (with --strict, any warning too).
    Validate(commands::validate::Args),
    /// Export the JSON Schema of the cascade language (for editors such as VS Code).
    #[command(subcommand)]
    Schema(commands::schema::Command),
    /// Inspect configuration.
    #[command(subcommand)]
    Config(commands::config::Command),
    /// Explain an error code (such as RVB-V004): what happened and how to fix it.
    Explain(commands::explain::Args),
    /// Manage the event store: init, status, migrate, compact, backup, replay spilled events.
    #[command(subcommand)]
    Db(commands::db::Command),
    /// List, inspect, cancel, clean up and export sessions (runs).
    #[command(subcommand)]
    Sessions(commands::sessions::Command),
    /// Cost and token totals: summary, by model, cascade or caller, CSV export.
    #[command(subcommand)]
    Costs(commands::costs::Command),
    /// Is the store reachable (and how fast), at the right schema, with a provider key configured, and the
    /// job queue reachable when `queue.url` is set? Exit 0 when healthy (fit for a Kubernetes probe).
    Health(commands::health::Args),
    /// Check configuration, the store, zombie sessions and waiting spill files; each finding has a fix.
    ///
    /// A zombie is a `running` session whose heartbeat is older than --stale-after (its process was
    /// killed or crashed); --repair marks each one `failed` with RVB-E014 (as `rvbbit sessions cleanup`
    /// does). Exit 0 when nothing is wrong (warnings included), 5 when the store fails, 6 for bad
    /// configuration.
    Doctor(commands::doctor::Args),
    /// Metrics from the store (run counts, costs, tokens, durations) for Prometheus.
    Metrics(commands::metrics::Args),
    /// Look inside sessions: the full trace tree, the inputs and messages sent.
    #[command(subcommand)]
    Debug(commands::debug::Command),
    /// Serve the HTTP API: runs, sessions, live event streams (SSE), costs, metrics and health.
    ///
    /// Binds to 127.0.0.1:5050 by default. Any other address requires API keys (`rvbbit keys create`);
    /// without one the server refuses to start (exit 6). SIGINT/SIGTERM stop it gracefully: in-flight
    /// runs get --shutdown-grace seconds, then are cancelled and their events flushed.
    Serve(commands::serve::Args),
    /// Run one chat command (`!run`, `!status`, `!cancel`, `!list`, `!agents`, `!help`) here, through the
    /// same chat-control code as Slack and Mattermost (docs/channels.md), and print the reply.
    ///
    /// With --integration, that `[channels.NAME]` integration's allowlist, rate limit and breaker apply;
    /// every attempt is recorded as `command.*` events in the store.
    ChatControl(commands::chat_control::Args),
    /// Manage API keys of the HTTP server (the secret is shown once; the store keeps only its hash).
    #[command(subcommand)]
    Keys(commands::keys::Command),
    /// Start a project: write a cascade, a recording of its model calls and rvbbit.toml into DIR.
    ///
    /// The printed next steps run offline (`--replay`), with no API key. Existing files are never
    /// overwritten without --force (RVB-C010, exit 6).
    Init(commands::init::Args),
    /// Print a shell completion script (bash, zsh or fish) on stdout.
    Completions(commands::completions::Args),
}

/// Parse arguments, run the command, and turn the outcome into an exit code.
pub(crate) fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
                _ => codes::C_USAGE.exit_code(),
            };
            // clap renders its own message and usage.
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let out = Out::new(cli.output, cli.no_color, cli.quiet, cli.verbose > 0);
    init_tracing(cli.verbose, cli.quiet, out.color);
    let result = match &cli.command {
        Command::Run(args) => commands::run::run(&cli, args, out),
        Command::Resume(args) => commands::resume::run(&cli, args, out),
        Command::Batch(args) => commands::batch::run(&cli, args, out),
        Command::Estimate(args) => commands::batch::estimate(&cli, args, out),
        Command::Exec(args) => commands::batch::exec::run(&cli, args, out),
        Command::Submit(args) => commands::submit::run(&cli, args, out),
        Command::Worker(args) => commands::worker::run(&cli, args, out),
        Command::Queue(cmd) => commands::queue::run(&cli, cmd, out),
        Command::Cascade(cmd) => commands::registry::run(&cli, cmd, out),
        Command::Signal(cmd) => commands::signal::run(&cli, cmd, out),
        Command::Sql(args) => commands::sql::run(&cli, args, out),
        Command::Validate(args) => commands::validate::run(&cli, args, out),
        Command::Schema(cmd) => commands::schema::run(cmd, out),
        Command::Config(cmd) => commands::config::run(&cli, cmd, out),
        Command::Explain(args) => commands::explain::run(args, out),
        Command::Db(cmd) => commands::db::run(&cli, cmd, out),
        Command::Sessions(cmd) => commands::sessions::run(&cli, cmd, out),
        Command::Costs(cmd) => commands::costs::run(&cli, cmd, out),
        Command::Health(args) => commands::health::run(&cli, args, out),
        Command::Doctor(args) => commands::doctor::run(&cli, args, out),
        Command::Metrics(args) => commands::metrics::run(&cli, args, out),
        Command::Debug(cmd) => commands::debug::run(&cli, cmd, out),
        Command::Serve(args) => commands::serve::run(&cli, args, out),
        Command::ChatControl(args) => commands::chat_control::run(&cli, args, out),
        Command::Keys(cmd) => commands::keys::run(&cli, cmd, out),
        Command::Init(args) => commands::init::run(args, out),
        Command::Completions(args) => commands::completions::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(commands::Failure::BrokenPipe) => ExitCode::SUCCESS,
        Err(commands::Failure::Config(err)) => {
            commands::report_config_error(&err, out);
            ExitCode::from(codes::C_INVALID.exit_code())
        }
        Err(commands::Failure::Coded(err)) => {
            commands::report_coded(&err, out);
            ExitCode::from(err.code.exit_code())
        }
    }
}

/// Logs go to stderr, coloured only when our own output is (`--no-color`, `NO_COLOR` and a piped stderr
/// all turn the ANSI escapes off).
fn init_tracing(verbose: u8, quiet: bool, color: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RVBBIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // A second initialisation (never expected) only means logs go to the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color)
        // A log line that cannot be written (stderr closed: `2>&1 | head -1`) is dropped. Left on,
        // tracing reports it with `eprintln!`, which panics on the same closed stderr.
        .log_internal_errors(false)
        .with_target(false)
        .try_init();
}

#[cfg(test)]
/// The clap command, for docs generation.
pub(crate) fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[cfg(test)]
/// Write `docs/cli.md` content: every command's `--help`.
pub(crate) fn render_cli_doc() -> String {
    let mut doc = String::from(
        "# Command-line reference\n\nGenerated from the clap definitions in `crates/cli/src`; a test fails when this file is stale (run `RVBBIT_BLESS=1 cargo test -p rvbbit` to regenerate).\n\n",
    );
    fn walk(cmd: &mut clap::Command, path: &str, doc: &mut String) {
        let full = if path.is_empty() {
            cmd.get_name().to_owned()
        } else {
            format!("{path} {}", cmd.get_name())
        };
        let help = cmd.render_long_help().to_string();
        doc.push_str(&format!("## `{full}`\n\n```text\n{}\n```\n\n", help.trim_end()));
        let names: Vec<String> = cmd.get_subcommands().map(|s| s.get_name().to_owned()).collect();
        for name in names {
            if name == "help" {
                continue;
            }
            if let Some(sub) = cmd.find_subcommand_mut(&name) {
                walk(sub, &full, doc);
            }
        }
    }
    let mut cmd = command();
    cmd.build();
    walk(&mut cmd, "", &mut doc);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definitions_are_consistent() {
        command().debug_assert();
    }

    #[test]
    fn cli_doc_is_current() {
        let expected = render_cli_doc();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md");
        if std::env::var_os("RVBBIT_BLESS").is_some() {
            std::fs::write(&path, &expected).unwrap();
        }
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            actual == expected,
            "docs/cli.md is stale: run `RVBBIT_BLESS=1 cargo test -p rvbbit`"
        );
    }
}
