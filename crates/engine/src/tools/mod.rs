//! The tool registry: the [`Tool`] trait and the built-in tools.
//!
//! A tool is called by a deterministic cell (`tool:` with rendered `inputs`) or by the model of an LLM cell
//! (listed in `traits`). Other crates add tools by implementing [`Tool`] and calling
//! [`Registry::register`]; the registry also feeds the validator's [`rvbbit_cascade::Catalog`].

mod artifact;
mod cascade_tool;
mod chart;
mod declarative;
mod http;
mod human;
mod image;
mod polyglot;
mod process;
mod pyliteral;
mod python;
pub mod python_ref;
pub mod sandbox;
mod script;
mod shell;
mod signal;
pub(crate) mod spawn;
mod state;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rvbbit_cascade::Catalog;
use rvbbit_cascade::catalog::Origin;
use rvbbit_core::SessionId;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::outcome::Outcome;

pub use artifact::{CreateArtifact, CreateChart, CreateSpecChart};
pub use cascade_tool::CascadeTool;
pub use declarative::DeclarativeTool;
pub use http::HttpRequest;
pub use human::{AskHuman, AskHumanCustom, RequestDecision};
pub(crate) use image::IMAGES_KEY;
pub use image::ReadImage;
pub use polyglot::CodeData;
pub use python::{PythonData, RunCode};
pub use script::RunScript;
pub use shell::{BashData, LinuxShell};
pub use signal::{AwaitSignal, FireSignal};
pub use spawn::{MapCascade, SpawnCascade};
pub use state::{AppendState, SetState};

/// What calling a tool may do to the world; decides whether a retry or a cache hit is safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SideEffect {
    /// No effect outside the returned value; safe to cache and retry.
    Pure,
    /// Repeating the call has the same effect as calling once; safe to retry.
    Idempotent,
    /// May change the world each time (shell commands, HTTP POSTs).
    Irreversible,
}

/// Why a tool call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The arguments do not fit the tool's parameters.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The tool ran and failed.
    #[error("{0}")]
    Failed(String),
    /// The tool did not finish in time.
    #[error("timed out after {}", crate::error::humanize(*.0))]
    Timeout(Duration),
    /// The sandbox refused or stopped the process: unavailable (RVB-B010), a limit above its ceiling
    /// (RVB-B011) or a limit reached (RVB-B012 memory, RVB-B013 wall-clock time, RVB-B014 processes,
    /// RVB-B015 output).
    #[error("{} {message}", code.code)]
    Sandbox {
        /// The code.
        code: &'static rvbbit_core::ErrorCode,
        /// What happened: the limit, its value and how to raise it.
        message: String,
    },
}

/// What a tool sees of the run that calls it.
#[derive(Clone)]
pub struct ToolContext {
    /// The session.
    pub session_id: SessionId,
    /// The calling cell.
    pub cell_name: String,
    /// A private working directory of the session (created on first use by the tools that need it).
    pub session_dir: PathBuf,
    /// The session state; tools such as `set_state` write it. Never held across an `.await`.
    pub state: Arc<Mutex<Map<String, Value>>>,
    /// The outputs of the cells run so far, by cell name.
    pub outputs: Map<String, Value>,
    /// The output of the cell run just before, if any (`bash_data` feeds it to stdin as CSV).
    pub previous: Option<Value>,
    /// The cascade input.
    pub input: Value,
    /// The time limit of this call, when the cell set one.
    pub timeout: Option<Duration>,
    /// The idempotency key of this call, for tools that change the world ([`SideEffect::Irreversible`]):
    /// the same on every attempt of the same call of the same run, so a tool can deduplicate a repeat.
    /// Process tools get it as `RVBBIT_IDEMPOTENCY_KEY`, HTTP tools as an `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// Where child runs of the calling session start (cascade tools); `None` outside a run.
    /// [`ToolContext::child_runs`] (in `children.rs`) gives tools of other crates its public face.
    pub(crate) scope: Option<Arc<dyn ChildRunner>>,
    /// The sandbox the calling cell's processes run in, when the engine has one.
    pub(crate) sandbox: Option<sandbox::Scope>,
}

/// How a tool starts child runs of the run that calls it. Tools sit below the engine, so they see the
/// engine only through this trait; the engine implements it for the scope of each run (`children.rs`).
#[async_trait]
pub(crate) trait ChildRunner: std::any::Any + Send + Sync {
    /// The engine's `[limits]` (templates rendered by tools stay within them).
    fn limits(&self) -> &rvbbit_core::config::LimitsConfig;

    /// The calling run's cancellation.
    fn cancel(&self) -> &CancellationToken;

    /// The engine's tool registry (composite tools call their steps from it).
    fn registry(&self) -> Arc<Registry>;

    /// The calling run's cascade file, when it came from one.
    fn cascade_file(&self) -> Option<&Path>;

    /// The engine's configured roots (`roots`): directories tools may read files from.
    fn roots(&self) -> &[PathBuf];

    /// Run the cascade file at `path` as a child session `<base>_<6 hex digits>` of the calling run, with
    /// `input`: loaded and validated first (`what` names it in errors), its cost and calls added to the
    /// caller's totals. The outcome may be a failed or cancelled run.
    ///
    /// # Errors
    /// [`ToolError::Failed`] when the child cannot start (too deep, an invalid file) or its task failed.
    async fn run_cascade_file(
        &self,
        cell: &str,
        what: &str,
        path: &Path,
        base: &str,
        input: Value,
    ) -> Result<Outcome, ToolError>;

    /// Resolve a cascade `reference` the way sub-cascade refs are resolved (relative to the calling
    /// cascade's file and its parents or the engine's roots, contained; else a cascade id in the tool
    /// directories). The error says what was tried.
    fn resolve_cascade(&self, reference: &str) -> Result<PathBuf, String>;

    /// Load and validate the cascade at `path` as a child would be (depth included), without running it.
    ///
    /// # Errors
    /// [`ToolError::Failed`] with the code (RVB-E004, RVB-E006) when it could not start.
    fn check_cascade_file(&self, cell: &str, what: &str, path: &Path) -> Result<(), ToolError>;

    /// Start the cascade file at `path` as an async child session `spawned_<unix>_<6 hex digits>` of
    /// the calling run, with `input`, and return its session id at once. The calling run waits for it
    /// before it ends (as for `async_cascades`), adds its cost and calls, and reports its failure as a
    /// warning.
    ///
    /// # Errors
    /// [`ToolError::Failed`] when the child cannot start (too deep, an invalid file).
    fn spawn_cascade_file(
        &self,
        cell: &str,
        what: &str,
        path: &Path,
        input: Value,
    ) -> Result<SessionId, ToolError>;

    /// Record an event of `kind` for `cell` of the calling run, with `content` (an artifact).
    async fn record(&self, kind: rvbbit_core::EventKind, cell: &str, content: Value);
}

impl ToolContext {
    /// The environment every process tool gets: `SESSION_ID`, `CELL_NAME` and, for a call with an
    /// idempotency key, `RVBBIT_IDEMPOTENCY_KEY`.
    pub(crate) fn process_env(&self, cmd: &mut tokio::process::Command) {
        cmd.env("SESSION_ID", self.session_id.as_str())
            .env("CELL_NAME", &self.cell_name);
        if let Some(key) = &self.idempotency_key {
            cmd.env("RVBBIT_IDEMPOTENCY_KEY", key);
        }
    }
}

impl fmt::Debug for ToolContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolContext")
            .field("session_id", &self.session_id)
            .field("cell_name", &self.cell_name)
            .finish_non_exhaustive()
    }
}

/// A callable tool.
///
/// # Example
///
/// A complete tool that upper-cases its `text` argument:
///
/// ```
/// use async_trait::async_trait;
/// use rvbbit_engine::tools::{Registry, SideEffect, Tool, ToolContext, ToolError};
/// use serde_json::{Value, json};
///
/// struct Upper;
///
/// #[async_trait]
/// impl Tool for Upper {
///     fn name(&self) -> &str { "upper" }
///     fn description(&self) -> &str { "Upper-case a text." }
///     fn parameters(&self) -> Value {
///         json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]})
///     }
///     fn side_effect(&self) -> SideEffect { SideEffect::Pure }
///     async fn execute(&self, args: Value, _ctx: &ToolContext) -> Result<Value, ToolError> {
///         let text = args["text"].as_str().ok_or_else(|| ToolError::InvalidArguments("`text` must be a string".into()))?;
///         Ok(json!(text.to_uppercase()))
///     }
/// }
///
/// let mut registry = Registry::builtin();
/// registry.register(std::sync::Arc::new(Upper));
/// assert!(registry.get("upper").is_some());
/// ```
#[async_trait]
pub trait Tool: Send + Sync {
    /// The name cascades use (`tool: name`, `traits: [name]`).
    fn name(&self) -> &str;
    /// What it does, for the model.
    fn description(&self) -> &str;
    /// JSON Schema of the arguments object.
    fn parameters(&self) -> Value;
    /// What calling it may do to the world.
    fn side_effect(&self) -> SideEffect;
    /// The time limit when the cell sets none (`None`: no limit).
    fn default_timeout(&self) -> Option<Duration> {
        None
    }
    /// Whether a call runs a process on this machine (code, shell, script), priced by its wall time at
    /// `costs.compute_micro_dollars_per_second` (a `compute_cost` event). Default false.
    fn compute(&self) -> bool {
        false
    }
    /// Why this tool cannot run on this machine (a runtime it needs is not installed or not
    /// configured), as the run's RVB-E003 message says it; `None` (the default) when it can. The
    /// validator reports it at the cells that use the tool, so `validate` predicts the run.
    fn unavailable(&self) -> Option<String> {
        None
    }
    /// Run the tool with `args` (an object).
    ///
    /// # Errors
    /// [`ToolError`] when the arguments are wrong or the tool fails.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the call; subprocess tools kill their process.
    async fn execute(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError>;
    /// The `inputs` keys a deterministic cell passes to this tool unrendered, because the tool renders
    /// them itself (`map_cascade`'s `input_mapping`, rendered once per item with `row`). Default none.
    fn raw_inputs(&self) -> &[&str] {
        &[]
    }
    /// The cascade file behind this tool, for cascades used as tools (validators run such a tool as a
    /// validator cascade).
    fn cascade_path(&self) -> Option<&Path> {
        None
    }
}

/// Tools by name. Cheap to share behind an `Arc`.
#[derive(Clone, Default)]
pub struct Registry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.tools.keys()).finish()
    }
}

impl Registry {
    /// The built-in tools: `set_state`, `append_state`, `linux_shell`, `bash_data`, `python_data`,
    /// `run_code`, `js_data`, `clojure_data`, `run_script`, `http_request`, `ask_human`,
    /// `request_decision`, `ask_human_custom`, `await_signal`, `fire_signal`, `map_cascade`,
    /// `spawn_cascade`, `read_image`, the artifact and chart tools.
    pub fn builtin() -> Self {
        let mut r = Registry::default();
        r.register(Arc::new(SetState));
        r.register(Arc::new(AppendState));
        r.register(Arc::new(LinuxShell));
        r.register(Arc::new(BashData));
        r.register(Arc::new(PythonData));
        r.register(Arc::new(RunCode));
        r.register(Arc::new(CodeData::javascript()));
        r.register(Arc::new(CodeData::clojure()));
        r.register(Arc::new(ReadImage));
        r.register(Arc::new(RunScript));
        r.register(Arc::new(HttpRequest::default()));
        r.register(Arc::new(AskHuman));
        r.register(Arc::new(RequestDecision));
        r.register(Arc::new(AskHumanCustom));
        r.register(Arc::new(AwaitSignal));
        r.register(Arc::new(FireSignal));
        r.register(Arc::new(MapCascade));
        r.register(Arc::new(SpawnCascade));
        r.register(Arc::new(CreateArtifact));
        r.register(Arc::new(CreateChart));
        r.register(Arc::new(CreateSpecChart::plotly()));
        r.register(Arc::new(CreateSpecChart::vega_lite()));
        r
    }

    /// Add (or replace) a tool under its name.
    pub fn register(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.name().to_owned(), tool);
    }

    /// The tool with this name.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name)
    }

    /// The tool a cell names: a registered one, else a well-formed `python:module.function` reference
    /// as a tool ([`python_ref::PythonRef`]).
    pub fn resolve(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.tools
            .get(name)
            .cloned()
            .or_else(|| python_ref::PythonRef::parse(name).map(|t| Arc::new(t) as Arc<dyn Tool>))
    }

    /// Every tool name, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.tools.keys().map(String::as_str).collect()
    }

    /// Register every cascade found in the tool directories (`traits/`, `tackle/`, `skills/`,
    /// `cascades/`) next to `file` and its parents and under `roots` as a [`CascadeTool`], by cascade id
    /// and by file stem, and every declarative tool file (`*.tool.json`) there as a [`DeclarativeTool`]:
    /// exactly the names the validator's catalog accepts. Names already registered win. Returns how many
    /// tools were added.
    pub fn add_cascade_tools(&mut self, file: &Path, roots: &[PathBuf]) -> usize {
        let mut catalog = Catalog::default();
        for base in rvbbit_cascade::search_bases(file).iter().chain(roots) {
            catalog.discover_under(base);
        }
        let mut added = 0;
        for name in catalog.names() {
            if self.tools.contains_key(name) {
                continue;
            }
            match catalog.get(name) {
                Some(Origin::Cascade(path)) => {
                    if let Some(tool) = CascadeTool::from_file(name, path) {
                        self.register(Arc::new(tool));
                        added += 1;
                    }
                }
                Some(Origin::ToolFile(path)) => {
                    if let Some(tool) = DeclarativeTool::from_file(path) {
                        self.register(Arc::new(tool));
                        added += 1;
                    }
                }
                _ => {}
            }
        }
        added
    }

    /// Register every tool of this registry in a validation catalog; a tool that cannot run on this
    /// machine ([`Tool::unavailable`]) is entered as [`Origin::Unavailable`] with its reason.
    pub fn fill_catalog(&self, catalog: &mut Catalog) {
        for (name, tool) in &self.tools {
            match tool.unavailable() {
                Some(reason) => catalog.set_tool(name.clone(), Origin::Unavailable { reason }),
                None => catalog.add_tool(name.clone(), Origin::Registered),
            }
        }
    }
}

/// A string argument, or an invalid-arguments error naming it.
pub(crate) fn str_arg<'a>(args: &'a Value, key: &str) -> Result<&'a str, ToolError> {
    args.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| ToolError::InvalidArguments(format!("`{key}` is required and must be a string")))
}

/// Run Python code the way `python_data` does (for inline validators).
pub(crate) async fn python_runner(
    code: &str,
    ctx: &ToolContext,
    extra: Value,
    timeout: Option<Duration>,
) -> Result<(Value, String), ToolError> {
    python::run_python(code, ctx, extra, timeout).await
}

/// Run `cmd` as `process::run` does, inside the calling cell's sandbox when the engine has one
/// (`sandbox`): the session directory is its writable work directory, `read_only` paths (the
/// tool's own files) are visible read-only.
pub(crate) async fn run_process(
    ctx: &ToolContext,
    cmd: tokio::process::Command,
    stdin: Vec<u8>,
    timeout: Option<Duration>,
    read_only: &[std::path::PathBuf],
) -> Result<process::Finished, ToolError> {
    match &ctx.sandbox {
        None => process::run(cmd, stdin, timeout).await,
        Some(scope) => sandbox::run(scope, cmd, stdin, timeout, &ctx.session_dir, read_only).await,
    }
}

/// Run a subprocess the way the shell tools do (in the cell's sandbox, when there is one); returns
/// (stdout, exit code).
pub(crate) async fn process_runner(
    ctx: &ToolContext,
    cmd: tokio::process::Command,
    stdin: Vec<u8>,
    timeout: Option<Duration>,
) -> Result<(String, i32), ToolError> {
    run_process(ctx, cmd, stdin, timeout, &[])
        .await
        .map(|f| (f.stdout, f.code))
}
