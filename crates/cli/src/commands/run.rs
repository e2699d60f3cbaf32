//! `rvbbit run CASCADE`: validate, then run the cascade as one session and print its outcome.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rvbbit_cascade::validate::{Options, validate_loaded};
use rvbbit_cascade::yaml::YamlProblem;
use rvbbit_cascade::{Catalog, Severity, load_file_with, render};
use rvbbit_core::config::ProviderKind;
use rvbbit_core::{CallerId, Origin, SessionId, SessionStatus, codes};
use rvbbit_engine::tools::Registry;
use rvbbit_engine::{CancellationToken, Engine, Outcome, Progress, RunRequest};
use rvbbit_llm::{
    Client, Limits, MockAnswers, MockProvider, Price, Provider, ProviderSettings, Recorder, ReplayProvider,
};
use serde::Serialize;
use serde_json::Value;

use super::hitl::{HumanArgs, ProgressLine, answer_commands};
use super::setup::Recording;
use super::storage::{Caught, Signals, block_on};
use super::timings::Phases;
use super::{Coded, Failure, Outcome as CmdOutcome, load_config};
use crate::cli::Cli;
use crate::output::{self, Format, Out};

/// How often a running session's heartbeat is refreshed.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

/// Arguments of `rvbbit run`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The cascade file (YAML or JSON), or a pushed bundle: `registry:NAME[:VERSION]` or
    /// `registry:sha256:HEX` (fetched from `artifacts.url`, docs/registry.md). It is validated first;
    /// errors exit 1.
    #[arg(value_name = "CASCADE")]
    cascade: PathBuf,
    /// The cascade input: a JSON object, or @FILE to read it from a file. Invalid JSON exits 6 (RVB-C006).
    #[arg(long, value_name = "JSON|@FILE")]
    input: Option<String>,
    /// Use this session id instead of a fresh woodland id ([A-Za-z0-9_.-], at most 128 characters).
    #[arg(long, value_name = "ID")]
    session: Option<String>,
    /// Model for LLM cells that name none (a cell's own model still wins; beats the cascade's `model`
    /// and the configured default).
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,
    /// Record every provider reply into FILE (JSON Lines) for a later --replay.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["replay", "provider", "mock_answers"])]
    record: Option<PathBuf>,
    /// Answer LLM calls from a recording made with --record; no network, no API key.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["provider", "mock_answers"])]
    replay: Option<PathBuf>,
    /// Run code and shell cells in the sandbox (docs/sandbox.md), as `sandbox.run = true` does.
    #[arg(long)]
    sandbox: bool,
    #[command(flatten)]
    mock: MockArgs,
    #[command(flatten)]
    human: HumanArgs,
}

/// `--provider` and `--mock-answers` (of `run` and `resume`).
#[derive(Debug, Default, clap::Args)]
pub(crate) struct MockArgs {
    /// Who answers LLM calls: `openai` (the configured endpoint) or `mock` (offline answers shaped by
    /// each cell: its output_schema, its routes, judges and validators; no key, cost zero). Beats
    /// `provider.kind`.
    #[arg(long, value_name = "KIND", value_parser = ["openai", "mock"])]
    provider: Option<String>,
    /// Scripted answers for the mock provider, by cell name (YAML, docs/llm.md); implies
    /// `--provider mock`. A bad file exits 4 (RVB-L010).
    #[arg(long, value_name = "FILE")]
    mock_answers: Option<PathBuf>,
}

impl MockArgs {
    /// `config` with these flags applied.
    pub(crate) fn apply(&self, config: &mut rvbbit_core::Config) {
        match self.provider.as_deref() {
            Some("mock") => config.provider.kind = ProviderKind::Mock,
            Some(_) => config.provider.kind = ProviderKind::Openai,
            None => {}
        }
        if let Some(path) = &self.mock_answers {
            config.provider.kind = ProviderKind::Mock;
            config.provider.mock_answers = Some(path.clone());
        }
    }
}

/// The JSON document printed by `rvbbit run --output json` (documented in docs/engine.md).
#[derive(Debug, Serialize)]
struct JsonOutcome {
    /// The session status, or `spilled`/`lost` when the store does not hold the whole run.
    status: &'static str,
    /// The session's own status (equal to `status` unless records were spilled or lost).
    session_status: &'static str,
    exit_code: u8,
    session_id: String,
    caller_id: String,
    cascade_id: String,
    output: Value,
    outputs: serde_json::Map<String, Value>,
    path: Vec<String>,
    code: Option<&'static str>,
    message: Option<String>,
    hint: Option<String>,
    cost_usd: String,
    duration_ms: u64,
    llm_calls: u32,
    tool_calls: u32,
    warnings: Vec<String>,
    /// The run's own error when a recording failure took `code`, `message` and `hint`.
    run_error: Option<Value>,
    /// What became of the run's records.
    recording: Recording,
    /// Where the output was stored as an artifact (`[artifacts] url` set and the run completed).
    #[serde(skip_serializing_if = "Option::is_none")]
    output_artifact: Option<String>,
}

pub(crate) fn run(cli: &Cli, args: &Args, out: Out) -> CmdOutcome {
    let mut phases = Phases::start("run");
    let mut config = load_config(cli, out)?.config;
    args.mock.apply(&mut config);
    config.sandbox.run |= args.sandbox;
    phases.done("configuration");
    // `registry:NAME[:VERSION]`: fetch the bundle and run its cascade exactly as a file.
    let fetched = super::registry::prepare_run(&args.cascade, &mut config)?;
    let cascade_path = fetched.as_deref().unwrap_or(&args.cascade);
    let registry = run_registry(cascade_path, &config);
    phases.done("tool registry");

    // 1. Validate: a run never starts on an invalid file.
    let report = validate_for_run(load_file_with(cascade_path, &config.limits), &registry, &config);
    let (errors, _) = report.counts();
    if errors > 0 {
        return invalid(&report, out);
    }
    // Warnings do not stop the run, but a typo such as `timout:` must not pass silently: text mode prints
    // them as `rvbbit validate` does (once, before the run), JSON carries them in `warnings`.
    let warnings = validation_warnings(&report, out);
    let Some(cascade) = report.loaded.document.as_ref().and_then(|d| d.cascade().cloned()) else {
        return Err(usage(
            codes::V_SHAPE,
            format!("{} is a tool definition, not a cascade", cascade_path.display()),
            "pass a cascade file (with `cascade_id` and `cells`)",
        ));
    };
    let text = report.loaded.source.as_ref().map(|s| s.text().to_owned());
    phases.done("load and validate");

    // 2. Input and session id.
    let input = parse_input(args.input.as_deref())?;
    let session_id = match &args.session {
        Some(s) => Some(s.parse::<SessionId>().map_err(|e| {
            usage(
                codes::C_USAGE,
                format!("`--session {s}`: {e}"),
                "use letters, digits, `_`, `.` and `-` (at most 128)",
            )
        })?),
        None => None,
    };

    block_on(async move {
        phases.done("async runtime");
        let provider = provider(&config, args.record.as_deref(), args.replay.as_deref()).await?;
        phases.done("provider");
        let mut request = RunRequest::new(cascade);
        request.input = input;
        request.session_id = session_id;
        request.caller_id = CallerId::new(Origin::Cli);
        request.model = args.model.clone();
        request.cascade_file = Some(cascade_path.to_path_buf());
        request.cascade_text = text;
        execute(
            &config,
            registry,
            provider,
            out,
            &args.human,
            move |engine, cancel, progress| async move {
                // A spending limit used up refuses the run (RVB-B030) before anything is recorded;
                // one nearly used up is a warning.
                let mut admission = engine.admit(&request.caller_id).await?;
                // `--session ID` of an existing session is refused before anything runs.
                engine.reserve_session(&request).await?;
                request.cancel = cancel;
                request.progress = progress;
                let mut outcome = engine.run(request).await;
                let mut all = warnings;
                all.append(&mut admission.warnings);
                all.append(&mut outcome.warnings);
                outcome.warnings = all;
                Ok(outcome)
            },
        )
        .await
    })
}

/// Set up the engine (provider, store, writer, heartbeat, who answers humans, the progress line), start
/// the run with `start`, cancel it on SIGINT/SIGTERM, flush the writer and render the outcome. Shared by
/// `rvbbit run` and `rvbbit resume`.
pub(crate) async fn execute<F, Fut>(
    config: &rvbbit_core::Config,
    registry: Registry,
    provider: Arc<dyn Provider>,
    out: Out,
    human: &HumanArgs,
    start: F,
) -> CmdOutcome
where
    F: FnOnce(Engine, CancellationToken, Option<tokio::sync::watch::Sender<Progress>>) -> Fut,
    Fut: Future<Output = Result<Outcome, rvbbit_engine::Error>>,
{
    let mut phases = Phases::start("execute");
    // Required and unusable is a coded error before anything starts, never an unsandboxed run.
    let sandbox = match config.sandbox.run {
        true => Some(super::sandbox::build(&config.sandbox, &Default::default()).await?),
        false => None,
    };
    let mut signals = Signals::install()?;
    // A store that cannot be opened does not stop the run; events spill (RVB-S003).
    let (writer, store) = super::setup::store_writer(config).await;
    phases.done("signals, store and writer");
    let line = ProgressLine::start(out);
    let mut engine = super::setup::configured_engine(registry, config, provider, writer.handle())
        .with_human(human.human(store.clone(), out, &line));
    if let Some(sandbox) = sandbox {
        engine = engine.with_sandbox(sandbox);
    }
    if let Some(store) = store {
        engine = engine
            .with_heartbeat(store.clone(), HEARTBEAT_EVERY)
            .with_store(store);
    }
    let cancel = CancellationToken::new();

    // A signal cancels the run, which then marks the session cancelled and flushes.
    let run = start(engine, cancel.clone(), line.tx.clone());
    let (outcome, caught) = signals.until(run, &cancel).await;
    line.finish().await;
    phases.done("cascade run");
    let stats = writer.shutdown().await.map_err(super::storage::fail)?;
    phases.done("writer flush");
    let recording = Recording::of(&stats);
    let mut outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            // Refused before running (not resumable, session id taken): still say when records of
            // what ran were lost or spilled, the run's own error then comes as a cause.
            let hint = e.hint();
            let mut coded = Coded::from_error(e.code(), &e, hint);
            if let Some(mut lost) = recording.failure("this command") {
                lost.causes
                    .push(format!("[{}] {}", coded.code.code, coded.message));
                coded = lost;
            }
            return Err(Failure::Coded(coded));
        }
    };
    // With `[artifacts]`, a completed run's output is also stored as `runs/<session>/output.json`.
    let artifact = super::registry::store_output(config, &mut outcome).await;
    render_outcome(&outcome, caught, out, &recording, artifact.as_deref())
}

/// Build the provider: the configured client, wrapped in a recorder, or a replay of a recording.
pub(crate) async fn provider(
    config: &rvbbit_core::Config,
    record: Option<&Path>,
    replay: Option<&Path>,
) -> Result<Arc<dyn Provider>, Failure> {
    if let Some(path) = replay {
        let replay = ReplayProvider::open(path).await.map_err(llm_failure)?;
        return Ok(Arc::new(replay));
    }
    if config.provider.kind == ProviderKind::Mock {
        let mock = match &config.provider.mock_answers {
            Some(path) => MockProvider::with_answers(mock_answers(path, &config.limits)?),
            None => MockProvider::new(),
        };
        return Ok(Arc::new(mock));
    }
    let client = configured_client(config)?;
    match record {
        Some(path) => Ok(Arc::new(
            Recorder::create(client, path).await.map_err(llm_failure)?,
        )),
        None => Ok(Arc::new(client)),
    }
}

/// The LLM client the configuration describes (endpoint, key, timeouts, retries, limits).
pub(crate) fn configured_client(config: &rvbbit_core::Config) -> Result<Client, Failure> {
    let p = &config.provider;
    let mut settings = ProviderSettings::new(p.base_url.clone());
    settings.api_key_env = p.api_key_env.clone();
    let key = p
        .api_key
        .clone()
        .or_else(|| std::env::var(&p.api_key_env).ok())
        .filter(|k| !k.trim().is_empty());
    if let Some(key) = key {
        settings = settings.with_api_key(key);
    }
    settings.default_model = config.default_model.clone();
    settings.timeouts.total = Duration::from_secs(p.timeout_seconds.max(1));
    settings.timeouts.first_byte = Duration::from_secs(p.first_byte_timeout_seconds.max(1));
    settings.retry.max_retries = p.max_retries;
    settings.chains = config.chains.clone();
    for (model, price) in &config.prices {
        // `config::load` already refused prices that are not dollar amounts.
        if let Ok([Some(input), Some(output), cached, write, reasoning]) = price.micros() {
            let mut price = Price::new(input, output);
            if let Some(c) = cached {
                price = price.with_cached_input(c);
            }
            if let Some(w) = write {
                price = price.with_cache_write(w);
            }
            if let Some(r) = reasoning {
                price = price.with_reasoning(r);
            }
            settings.prices.set(model.clone(), price);
        }
    }
    let mut limits = Limits::unlimited();
    if p.max_concurrency > 0 {
        limits = limits.with_max_concurrency(p.max_concurrency as usize);
    }
    if p.requests_per_minute > 0 {
        limits = limits.with_requests_per_minute(p.requests_per_minute);
    }
    if p.tokens_per_minute > 0 {
        limits = limits.with_tokens_per_minute(p.tokens_per_minute);
    }
    settings.limits = limits;
    Client::new(settings).map_err(llm_failure)
}

/// The largest scripted-answers file read.
const MOCK_ANSWERS_MAX_BYTES: u64 = 4 * 1024 * 1024;

/// Read and check a scripted-answers file (YAML within the `limits.yaml_*` budgets).
fn mock_answers(path: &Path, limits: &rvbbit_core::config::LimitsConfig) -> Result<MockAnswers, Failure> {
    let fail = |message: String, hint: &str| {
        Failure::Coded(Coded {
            code: codes::L_MOCK_ANSWERS,
            message,
            hint: hint.into(),
            causes: Vec::new(),
        })
    };
    let shown = path.display();
    let size = std::fs::metadata(path)
        .map_err(|e| {
            fail(
                format!("cannot read the mock answers {shown}: {e}"),
                "check the path given to --mock-answers (or provider.mock_answers)",
            )
        })?
        .len();
    if size > MOCK_ANSWERS_MAX_BYTES {
        return Err(fail(
            format!("the mock answers {shown} are {size} bytes, more than the {MOCK_ANSWERS_MAX_BYTES} read"),
            "script only the cells you need; the others get default answers",
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        fail(
            format!("cannot read the mock answers {shown}: {e}"),
            "check the path and that the file is UTF-8 text",
        )
    })?;
    let source = rvbbit_cascade::source::SourceFile::new(path, text);
    let parsed = rvbbit_cascade::yaml::parse_with(&source, limits);
    if let Some(problem) = parsed.problems.iter().find(|p| {
        !matches!(
            p,
            YamlProblem::DuplicateKey { .. } | YamlProblem::ExtraDocuments { .. }
        )
    }) {
        let (at, what) = match problem {
            YamlProblem::Syntax { at, message } => (at, message.clone()),
            YamlProblem::OverLimit { at, limit, max } => (
                at,
                format!("more than {max} {} (`{}`)", limit.what(), limit.setting()),
            ),
            YamlProblem::UnknownAlias { at } => (at, "an alias to an anchor that is not defined".into()),
            YamlProblem::DuplicateKey { again, .. } => (again, "a repeated key".into()),
            YamlProblem::ExtraDocuments { at } => (at, "a second document".into()),
        };
        let at = source.line_col(at.start);
        return Err(fail(
            format!("{shown}:{}:{}: {what}", at.line, at.col),
            "fix the YAML at that place",
        ));
    }
    let value = parsed
        .root
        .as_ref()
        .map_or(Value::Object(serde_json::Map::new()), |n| n.to_json());
    serde_json::from_value(value).map_err(|e| {
        fail(
            format!("{shown} is not a mock script: {e}"),
            "map each cell name to `answers`, `routes`, `verdicts` or `winners` lists (docs/llm.md)",
        )
    })
}

fn llm_failure(e: rvbbit_llm::Error) -> Failure {
    let hint = e.hint();
    Failure::Coded(Coded::from_error(e.code(), &e, hint))
}

fn usage(code: &'static rvbbit_core::ErrorCode, message: String, hint: &str) -> Failure {
    Failure::Coded(Coded {
        code,
        message,
        hint: hint.into(),
        causes: Vec::new(),
    })
}

/// `--input`: a JSON text or `@FILE`; invalid JSON is RVB-C006 (exit 6).
pub(crate) fn parse_input(arg: Option<&str>) -> Result<Value, Failure> {
    let Some(arg) = arg else {
        return Ok(Value::Object(serde_json::Map::new()));
    };
    let (text, from) = match arg.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(Path::new(path)).map_err(|e| {
                usage(
                    codes::C_INPUT,
                    format!("cannot read the input file {path}: {e}"),
                    "check the path after `@`",
                )
            })?,
            format!("the input file {path}"),
        ),
        None => (arg.to_owned(), "--input".to_owned()),
    };
    serde_json::from_str(&text).map_err(|e| {
        usage(
            codes::C_INPUT,
            format!("{from} is not valid JSON: {e}"),
            "pass a JSON object, such as --input '{\"name\": \"Ada\"}', or @file.json",
        )
    })
}

/// The validator's warnings (and notes) of a cascade about to run. In text mode they are rendered to
/// stderr now, as `rvbbit validate` renders them (not with `-q`), and nothing is returned; with
/// `--output json` they are returned as one line each (`FILE:LINE:COL: warning[CODE]: message (hint)`)
/// for the outcome's `warnings`.
fn validation_warnings(report: &rvbbit_cascade::validate::Report, out: Out) -> Vec<String> {
    let warnings = report
        .diagnostics()
        .iter()
        .filter(|d| d.severity != Severity::Error);
    match out.format {
        Format::Text => {
            if !out.quiet {
                let mut text = String::new();
                for d in warnings {
                    text.push_str(&render(
                        d,
                        &report.loaded.path,
                        report.loaded.source.as_ref(),
                        out.color,
                    ));
                }
                output::stderr(&text);
            }
            Vec::new()
        }
        Format::Json => warnings
            .map(|d| {
                let j = d.to_json(&report.loaded.path, report.loaded.source.as_ref());
                let at = match (j.line, j.column) {
                    (Some(l), Some(c)) => format!("{}:{l}:{c}", j.file.display()),
                    _ => j.file.display().to_string(),
                };
                let severity = match d.severity {
                    Severity::Warning => "warning",
                    Severity::Note => "note",
                    _ => "help",
                };
                let hint = j.hint.map(|h| format!(" ({h})")).unwrap_or_default();
                format!("{at}: {severity}[{}]: {}{hint}", j.code, j.message)
            })
            .collect(),
    }
}

/// Validation failed: the rendered diagnostics (or the validate JSON shape), exit 1.
pub(crate) fn invalid(report: &rvbbit_cascade::validate::Report, out: Out) -> CmdOutcome {
    let exit = codes::V_SYNTAX.exit_code();
    match out.format {
        Format::Json => {
            let diagnostics: Vec<_> = report
                .diagnostics()
                .iter()
                .map(|d| d.to_json(&report.loaded.path, report.loaded.source.as_ref()))
                .collect();
            let first = report
                .diagnostics()
                .iter()
                .find(|d| d.severity == Severity::Error);
            output::json(&serde_json::json!({
                "status": "invalid",
                "exit_code": exit,
                "code": first.map(|d| d.code.code),
                "message": first.map(|d| d.message.clone()),
                "hint": first.and_then(|d| d.hint.clone()),
                "diagnostics": diagnostics,
            }))?;
        }
        Format::Text => {
            let mut text = String::new();
            for d in report.diagnostics() {
                text.push_str(&render(
                    d,
                    &report.loaded.path,
                    report.loaded.source.as_ref(),
                    out.color,
                ));
            }
            text.push_str("✗ the cascade is invalid; nothing was run\n");
            output::stderr(&text);
        }
    }
    Ok(exit)
}

/// Print the outcome of a run. When the store does not hold the whole run (records spilled or lost),
/// that failure decides the exit code (5) and the JSON `status`/`code`/`message`/`hint`, over the
/// run's own result: nothing lost silently.
pub(crate) fn render_outcome(
    outcome: &Outcome,
    caught: Option<Caught>,
    out: Out,
    recording: &Recording,
    artifact: Option<&str>,
) -> CmdOutcome {
    let run_exit = match (outcome.status, caught, &outcome.error) {
        (SessionStatus::Completed, _, _) => 0,
        (SessionStatus::Cancelled, Some(c), _) => c.exit_code(),
        (_, _, Some(e)) => e.code().exit_code(),
        _ => codes::E_CELL_FAILED.exit_code(),
    };
    let failure = recording.failure(&format!("session {}", outcome.session_id));
    let exit = failure.as_ref().map_or(run_exit, |f| f.code.exit_code());
    match out.format {
        Format::Json => {
            let run_error = outcome.error.as_ref().map(
                |e| serde_json::json!({"code": e.code().code, "message": e.to_string(), "hint": e.hint()}),
            );
            let (code, message, hint, run_error) = match &failure {
                Some(f) => (
                    Some(f.code.code),
                    Some(format!("{}: {}", f.message, f.causes.join("; "))),
                    Some(f.hint.clone()),
                    run_error,
                ),
                None => (
                    outcome.error.as_ref().map(|e| e.code().code),
                    outcome.error.as_ref().map(ToString::to_string),
                    outcome.error.as_ref().map(|e| e.hint()),
                    None,
                ),
            };
            let doc = JsonOutcome {
                status: recording.status().unwrap_or(outcome.status.as_str()),
                session_status: outcome.status.as_str(),
                exit_code: exit,
                session_id: outcome.session_id.to_string(),
                caller_id: outcome.caller_id.to_string(),
                cascade_id: outcome.cascade_id.clone(),
                output: outcome.output.clone(),
                outputs: outcome.outputs.clone(),
                path: outcome.path.clone(),
                code,
                message,
                hint,
                cost_usd: outcome.cost.to_decimal_string(),
                duration_ms: u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX),
                llm_calls: outcome.llm_calls,
                tool_calls: outcome.tool_calls,
                warnings: outcome.warnings.clone(),
                run_error,
                recording: recording.clone(),
                output_artifact: artifact.map(str::to_owned),
            };
            output::json(&doc)?;
        }
        Format::Text => {
            if !out.quiet {
                for w in &outcome.warnings {
                    output::stderr(&format!("warning: {w}\n"));
                }
            }
            match &outcome.error {
                None => {
                    let text = output_text(&outcome.output);
                    if !text.is_empty() {
                        output::stdout(&format!("{}\n", text.trim_end_matches('\n')))?;
                    }
                    // The next step: stderr, so `rvbbit run … > out.txt` and pipes read only the output.
                    if !out.quiet && !out.verbose {
                        output::stderr(&format!(
                            "session {id} {}: rvbbit sessions show {id}\n",
                            outcome.status,
                            id = outcome.session_id
                        ));
                    }
                    if let Some(at) = artifact
                        && !out.quiet
                    {
                        output::stderr(&format!("output stored at {at}\n"));
                    }
                }
                Some(rvbbit_engine::Error::Waiting {
                    cell,
                    signal,
                    session_id,
                }) => {
                    output::stderr(&format!(
                        "session {session_id} is waiting for a human at cell `{cell}` ({}, exit {exit})\n{}",
                        codes::H_WAITING.code,
                        answer_commands(session_id.as_str(), signal)
                    ));
                }
                Some(e) => {
                    output::stderr(&format!(
                        "error[{}]: {e}\n  hint: {}\n  session: {} ({})\n  see: rvbbit explain {}\n",
                        e.code().code,
                        e.hint(),
                        outcome.session_id,
                        outcome.status,
                        e.code().code
                    ));
                }
            }
            if let Some(f) = &failure {
                super::report_coded(f, out);
            }
            if out.verbose {
                output::stderr(&format!(
                    "session {} {} in {} ms, {} LLM call(s), {} tool call(s), cost ${}: rvbbit sessions show {0}\n",
                    outcome.session_id,
                    outcome.status,
                    outcome.duration.as_millis(),
                    outcome.llm_calls,
                    outcome.tool_calls,
                    outcome.cost.to_decimal_string()
                ));
            }
        }
    }
    Ok(exit)
}

/// The text a finished run prints on stdout: a string as it is; a tool's result as its text (a shell's
/// `stdout`, a Python cell's `result`) rather than the raw record with `returncode`, `truncated` and
/// `_route`; any other value as pretty JSON without the routing keys (those starting with `_`).
pub(crate) fn output_text(output: &Value) -> String {
    match output {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Object(m) => {
            if let Some(Value::String(stdout)) = m.get("stdout")
                && m.contains_key("returncode")
            {
                return stdout.clone();
            }
            if let Some(result) = m.get("result")
                && m.contains_key("type")
            {
                return output_text(result);
            }
            let visible: serde_json::Map<String, Value> = m
                .iter()
                .filter(|(k, _)| !k.starts_with('_'))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            serde_json::to_string_pretty(&visible).unwrap_or_default()
        }
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// The tools of a run of `cascade`: the built-ins, the SQL door's, and the cascades in the tool
/// directories next to it and under the configured roots (the names the validator accepts). `rvbbit
/// run`, `rvbbit submit` and `rvbbit worker` share it.
pub(crate) fn run_registry(cascade: &Path, config: &rvbbit_core::Config) -> Registry {
    let mut registry = Registry::builtin();
    // The SQL tools see `[sql.tables]` and keep to `[limits]`.
    rvbbit_sql::register_tools_with(&mut registry, super::setup::sql_settings(config));
    registry.add_cascade_tools(cascade, &config.roots);
    registry
}

/// Validate `loaded` as a run does: not strict (warnings do not stop it), against `registry`'s tools and
/// the configured roots.
pub(crate) fn validate_for_run(
    loaded: rvbbit_cascade::Loaded,
    registry: &Registry,
    config: &rvbbit_core::Config,
) -> rvbbit_cascade::validate::Report {
    let mut catalog = Catalog::builtin();
    let provided = registry.names();
    catalog.provided_only(&provided);
    registry.fill_catalog(&mut catalog);
    let options = Options {
        strict: false,
        roots: config.roots.clone(),
    };
    validate_loaded(loaded, &mut catalog, &options)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::output_text;

    #[test]
    fn tool_results_print_as_their_text() {
        let shell = json!({"stdout": "Hello Ada\n", "stderr": "", "returncode": 0, "truncated": false, "_route": "success"});
        assert_eq!(output_text(&shell), "Hello Ada\n");
        assert_eq!(
            output_text(&json!({"result": "42", "type": "str", "_route": "success"})),
            "42"
        );
        assert_eq!(
            output_text(&json!({"a": 1, "_route": "success"})),
            "{\n  \"a\": 1\n}"
        );
        assert_eq!(output_text(&json!("plain")), "plain");
        assert_eq!(output_text(&json!(null)), "");
    }
}
