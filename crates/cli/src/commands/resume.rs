//! `rvbbit resume SESSION [--value JSON]`: continue a `waiting` session at its waiting cell.

use rvbbit_core::{SessionId, codes};
use rvbbit_engine::ResumeRequest;
use rvbbit_engine::tools::Registry;
use serde_json::Value;

use super::hitl::HumanArgs;
use super::run::{MockArgs, execute, provider};
use super::storage::block_on;
use super::{Coded, Failure, Outcome, load_config};
use crate::cli::Cli;
use crate::output::Out;

/// Arguments of `rvbbit resume`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The waiting session.
    #[arg(value_name = "SESSION")]
    session: SessionId,
    /// Answer its pending question with this JSON value (checked against the question; `true`/`false`
    /// for a confirmation, an option value for a choice, a "string" for text). Invalid JSON exits 6
    /// (RVB-C006), an answer of the wrong shape exits 6 (RVB-C007).
    #[arg(long, value_name = "JSON")]
    value: Option<String>,
    #[command(flatten)]
    human: HumanArgs,
    #[command(flatten)]
    mock: MockArgs,
}

pub(crate) fn run(cli: &Cli, args: &Args, out: Out) -> Outcome {
    let mut config = load_config(cli, out)?.config;
    args.mock.apply(&mut config);
    let answer = args.value.as_deref().map(parse_value).transpose()?;
    block_on(async move {
        let provider = provider(&config, None, None).await?;
        let registry = registry_for(&config, &args.session).await;
        let mut request = ResumeRequest::new(args.session.clone());
        request.answer = answer;
        execute(
            &config,
            registry,
            provider,
            out,
            &args.human,
            move |engine, cancel, progress| async move {
                request.cancel = cancel;
                request.progress = progress;
                engine.resume(request).await
            },
        )
        .await
    })
}

/// The built-in tools plus the cascade and declarative tools found beside the session's cascade file
/// (when the store still names it and it exists), as `rvbbit run` registered them.
async fn registry_for(config: &rvbbit_core::Config, session: &SessionId) -> Registry {
    let mut registry = Registry::builtin();
    rvbbit_sql::register_tools_with(&mut registry, super::setup::sql_settings(config));
    let base = std::env::current_dir().unwrap_or_default();
    if let Ok(store) = rvbbit_store::open(&config.store.url, &base).await
        && let Ok(s) = store.session(session).await
        && let Some(file) = s.cascade_file.map(std::path::PathBuf::from)
        && file.exists()
    {
        registry.add_cascade_tools(&file, &config.roots);
    }
    registry
}

/// A `--value`: any JSON text; invalid JSON is RVB-C006 (exit 6).
pub(crate) fn parse_value(text: &str) -> Result<Value, Failure> {
    serde_json::from_str(text).map_err(|e| {
        Failure::Coded(Coded {
            code: codes::C_INPUT,
            message: format!("--value is not valid JSON: {e}"),
            hint: "pass a JSON value: true, false, a number, \"quoted text\" (with the quotes, e.g. \
                   --value '\"Rust\"') or an object"
                .into(),
            causes: Vec::new(),
        })
    })
}
