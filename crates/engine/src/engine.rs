//! The engine: the handles every run shares (provider, tool registry, event writer, store, human,
//! limits, roots, default model), built once and cloned cheaply. Running a cascade is in
//! `session.rs` ([`Engine::run`]); resuming one in `resume.rs` ([`Engine::resume`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rvbbit_llm::Provider;
use rvbbit_store::{Session, Store, WriterHandle};

use crate::error::Result;
use crate::human::{Human, NoHuman};
use crate::request::RunRequest;
use crate::tools::Registry;

/// Most cells one run executes (handoff loops end here instead of running forever).
pub const MAX_STEPS: usize = 10_000;

/// Deepest nesting of child runs (sub-cascades, cascade tools, validator cascades); the root is depth 0.
pub const MAX_DEPTH: u32 = 16;

/// Runs cascades. Cheap to share; one engine serves many runs.
#[derive(Clone)]
pub struct Engine {
    pub(crate) provider: Option<Arc<dyn Provider>>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) writer: Option<WriterHandle>,
    pub(crate) default_model: String,
    pub(crate) heartbeat: Option<(Arc<dyn Store>, Duration)>,
    /// Extra directories searched for child cascades (configuration `roots`).
    pub(crate) roots: Vec<PathBuf>,
    /// The store for signals and checkpoints (human-in-the-loop waits and resume).
    pub(crate) store: Option<Arc<dyn Store>>,
    /// Who answers human-in-the-loop questions.
    pub(crate) human: Arc<dyn Human>,
    /// Budgets of templates (`template_fuel`, `template_output_bytes`) and cascade files.
    pub(crate) limits: rvbbit_core::config::LimitsConfig,
    /// The sandbox of the processes code and shell tools start (`None`: they run unsandboxed).
    pub(crate) sandbox: Option<Arc<crate::tools::sandbox::Sandbox>>,
    /// The price of compute and the tenant runs are charged to (`[costs]`; `spending.rs`).
    pub(crate) costs: rvbbit_core::config::CostsConfig,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("registry", &self.registry)
            .field("default_model", &self.default_model)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine with `registry`, no provider (LLM cells fail with a clear error) and no event writer.
    pub fn new(registry: Registry) -> Self {
        Engine {
            provider: None,
            registry: Arc::new(registry),
            writer: None,
            default_model: rvbbit_llm::DEFAULT_MODEL.to_owned(),
            heartbeat: None,
            roots: Vec::new(),
            store: None,
            human: Arc::new(NoHuman),
            limits: rvbbit_core::config::LimitsConfig::default(),
            sandbox: None,
            costs: rvbbit_core::config::CostsConfig::default(),
        }
    }

    /// Render templates within `limits` (`[limits]` of the configuration) and load child cascades
    /// within its `yaml_*` budgets.
    pub fn with_limits(mut self, limits: rvbbit_core::config::LimitsConfig) -> Self {
        self.limits = limits;
        self
    }

    /// Run every process a code or shell tool starts in `sandbox` (docs/sandbox.md).
    pub fn with_sandbox(mut self, sandbox: Arc<crate::tools::sandbox::Sandbox>) -> Self {
        self.sandbox = Some(sandbox);
        self
    }

    /// The sandbox of tool processes, if any.
    pub fn sandbox(&self) -> Option<&Arc<crate::tools::sandbox::Sandbox>> {
        self.sandbox.as_ref()
    }

    /// The configured `[limits]`.
    pub fn limits(&self) -> &rvbbit_core::config::LimitsConfig {
        &self.limits
    }

    /// Also search `roots` (configuration `roots`) for child cascades named by `ref` or cascade id.
    pub fn with_roots(mut self, roots: Vec<PathBuf>) -> Self {
        self.roots = roots;
        self
    }

    /// Record human-in-the-loop waits (signals, checkpoints) in `store`, so they can be answered from
    /// another process and the session resumed with [`Engine::resume`].
    pub fn with_store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Ask `human` when a run waits for an answer (default [`NoHuman`]: every wait suspends the run).
    pub fn with_human(mut self, human: Arc<dyn Human>) -> Self {
        self.human = human;
        self
    }

    /// Use `provider` for LLM cells (normally an [`rvbbit_llm::Client`], a recorder or a replay).
    pub fn with_provider(mut self, provider: Arc<dyn Provider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Record events and session records through `writer`.
    pub fn with_writer(mut self, writer: WriterHandle) -> Self {
        self.writer = Some(writer);
        self
    }

    /// Keep each session's heartbeat fresh in `store` every `every` while it runs, so a crashed run can be
    /// told apart from a slow one (`rvbbit sessions cleanup`, `rvbbit doctor`).
    pub fn with_heartbeat(mut self, store: Arc<dyn Store>, every: Duration) -> Self {
        self.heartbeat = Some((store, every));
        self
    }

    /// The model used when neither the cell, the request nor the cascade names one (§4.6).
    pub fn with_default_model(mut self, model: impl Into<String>) -> Self {
        self.default_model = model.into();
        self
    }

    /// The LLM provider, if one is set (the SQL door's embedding functions call it directly).
    pub fn provider(&self) -> Option<&Arc<dyn Provider>> {
        self.provider.as_ref()
    }

    /// The tool registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The event writer, if the engine records.
    pub fn writer(&self) -> Option<&WriterHandle> {
        self.writer.as_ref()
    }

    /// The store of human-in-the-loop waits (and, for the SQL door, the result cache), if any.
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.as_ref()
    }

    /// The configured roots searched for child cascades.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The model used when nothing else names one.
    pub fn default_model(&self) -> &str {
        &self.default_model
    }

    /// Reserve the session id a request names (`rvbbit run --session ID`) in the engine's store, before
    /// [`Engine::run`]: insert-if-absent, so a run never merges into an existing session (or into one
    /// another process starts with the same id at the same moment). Does nothing for a request without
    /// a session id or an engine without a store.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store) with a `Conflict` (RVB-S006, exit 5) naming the id when it exists; other store
    /// errors.
    pub async fn reserve_session(&self, request: &RunRequest) -> Result<()> {
        let (Some(store), Some(id)) = (&self.store, &request.session_id) else {
            return Ok(());
        };
        let mut session = Session::new(id.clone());
        session.cascade_id = Some(request.cascade.cascade_id.clone());
        session.caller_id = Some(request.caller_id.clone());
        session.input = request.input.clone();
        session.cascade_file = request.cascade_file.as_ref().map(|p| p.display().to_string());
        store.create_session(&session).await?;
        Ok(())
    }
}
