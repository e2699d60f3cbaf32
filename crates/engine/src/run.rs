//! A run of a cascade: the session, the sequential loop and routing (§3.2, §3.4 Proposed).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rvbbit_cascade::model::{Cascade, Cell, OnError};
use rvbbit_core::{CallerId, EventKind, MicroUsd, Origin, SessionId, SessionStatus};
use rvbbit_llm::Provider;
use rvbbit_store::{Heartbeat, Session, Store, WriterHandle};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::checkpoint::Resume;
use crate::emit::Emitter;
use crate::error::{Error, Result};
use crate::human::{Human, NoHuman};
use crate::progress::Progress;
use crate::template::Templates;
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
        }
    }

    /// Render templates within `limits` (`[limits]` of the configuration) and load child cascades
    /// within its `yaml_*` budgets.
    pub fn with_limits(mut self, limits: rvbbit_core::config::LimitsConfig) -> Self {
        self.limits = limits;
        self
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
    /// [`Error::Store`] with a `Conflict` (RVB-S006, exit 5) naming the id when it exists; other store
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

    /// Run a cascade to the end. Never returns early with an error: failures are in [`Outcome::error`]
    /// with the session marked failed (or cancelled), and every event is flushed to the writer first.
    ///
    /// # Cancel safety
    /// Cancel through [`RunRequest::cancel`] rather than dropping the future, so the session is marked
    /// cancelled and its events flushed.
    pub async fn run(&self, request: RunRequest) -> Outcome {
        let session_id = request.session_id.clone().unwrap_or_else(SessionId::new_woodland);
        let span = tracing::info_span!(
            "run",
            session_id = %session_id,
            caller_id = %request.caller_id,
            cascade_id = %request.cascade.cascade_id
        );
        self.run_inner(request, session_id).instrument(span).await
    }

    pub(crate) async fn run_inner(&self, mut request: RunRequest, session_id: SessionId) -> Outcome {
        let started = Instant::now();
        let cascade = request.cascade.clone();
        let resume = request.resume.take();
        let emit = Emitter::new(
            self.writer.clone(),
            session_id.clone(),
            request.caller_id.clone(),
            cascade.cascade_id.clone(),
        )
        .with_parent(
            request.parent_session_id.clone(),
            request
                .root_session_id
                .clone()
                .unwrap_or_else(|| session_id.clone()),
            request.depth,
        )
        .with_progress(request.progress.clone());
        let mut session = Session::new(session_id.clone());
        session.parent_session_id = request.parent_session_id.clone();
        session.root_session_id = request
            .root_session_id
            .clone()
            .unwrap_or_else(|| session_id.clone());
        session.depth = request.depth;
        session.cascade_id = Some(cascade.cascade_id.clone());
        session.caller_id = Some(request.caller_id.clone());
        session.input = request.input.clone();
        session.cascade_file = request.cascade_file.as_ref().map(|p| p.display().to_string());
        session.cascade_text = request.cascade_text.clone();
        let has_metadata = request.metadata.as_object().is_some_and(|m| !m.is_empty());
        if has_metadata {
            session.invocation_metadata = request.metadata.clone();
        }
        // A resumed session keeps its record and goes on numbering its events (no second cascade_start).
        let emit = match &resume {
            Some(r) => {
                session = r.session.clone();
                session.status = SessionStatus::Running;
                session.updated_at = rvbbit_core::Timestamp::now();
                emit.start_at(r.continuation.next_seq)
            }
            None => emit,
        };
        emit.session(session.clone()).await;
        if resume.is_none() {
            let mut start = emit.event(EventKind::CascadeStart, None);
            start.content = request.input.clone();
            if has_metadata {
                start.invocation_metadata = request.metadata.clone();
            }
            emit.send(start).await;
        }

        let mut state = Map::new();
        state.insert("input".into(), request.input.clone());
        let session_dir = std::env::temp_dir().join(format!("rvbbit-{}", session_id.as_str()));
        let mut run = Run {
            engine: self,
            cascade: &cascade,
            emit,
            templates: Templates::new(&self.limits, request.cancel.clone()),
            input: request.input.clone(),
            state: Arc::new(Mutex::new(state)),
            outputs: Map::new(),
            lineage: Vec::new(),
            model_override: request.model.clone(),
            sampling: request.sampling,
            session_id: session_id.clone(),
            session_dir: session_dir.clone(),
            cost: MicroUsd::ZERO,
            llm_calls: 0,
            tool_calls: 0,
            warnings: Vec::new(),
            path: Vec::new(),
            cancel: request.cancel.clone(),
            branch: None,
            compose: crate::compose::Composition::new(&request, &session_id),
            session: session.clone(),
            hitl: crate::cells::hitl::HitlState::default(),
        };
        if let Some(r) = resume {
            r.restore(&mut run);
        }
        let heartbeat = self
            .heartbeat
            .as_ref()
            .map(|(store, every)| Heartbeat::spawn(store.clone(), session_id.clone(), *every));
        run.check_inputs().await;
        let result = match request.depth {
            d if d > MAX_DEPTH => Err(Error::MaxDepth {
                cell: cascade.cells.first().map(|c| c.name.clone()).unwrap_or_default(),
                what: format!("cascade `{}`", cascade.cascade_id),
                depth: d,
                limit: MAX_DEPTH,
            }),
            _ => run.run_loop().await,
        };
        // Async cascades finish (or are cancelled with the run) before the session ends.
        crate::compose::join_async(&mut run).await;
        if let Some(h) = heartbeat {
            h.stop().await;
        }
        if let Err(e @ Error::ResumedElsewhere { .. }) = result {
            // The session belongs to the process that resumed it: record nothing more.
            return crate::checkpoint::elsewhere(run, request, cascade.cascade_id.clone(), e, started);
        }
        let (status, error) = match result {
            Ok(()) => (SessionStatus::Completed, None),
            Err(Error::Cancelled) => (SessionStatus::Cancelled, Some(Error::Cancelled)),
            Err(e @ Error::Waiting { .. }) => (SessionStatus::Waiting, Some(e)),
            Err(e) => (SessionStatus::Failed, Some(e)),
        };
        if status == SessionStatus::Waiting {
            return crate::checkpoint::suspended(
                run,
                session,
                request,
                cascade.cascade_id.clone(),
                error,
                started,
            )
            .await;
        }
        crate::cells::hitl::abandon(&run).await;
        let output = run
            .lineage
            .last()
            .map(|l| l.output.clone())
            .unwrap_or(Value::Null);
        let duration = started.elapsed();
        let kind = match status {
            SessionStatus::Completed => EventKind::CascadeComplete,
            SessionStatus::Cancelled => EventKind::CascadeCancelled,
            _ => EventKind::CascadeError,
        };
        let mut end = run.emit.event(kind, None);
        end.content = output.clone();
        end.duration_us = Some(micros(duration));
        // The total goes in metadata, not `cost`: cost rollups sum the `llm_response` events, and a
        // priced `cascade_complete` would count every call twice (and children once more).
        end.metadata = json!({
            "status": status.as_str(),
            "llm_calls": run.llm_calls,
            "tool_calls": run.tool_calls,
            "cost_micro_usd": run.cost.micros(),
            "parent_session_id": request.parent_session_id,
        });
        if let Some(e) = &error {
            end.error = Some(json!({"code": e.code().code, "message": e.to_string(), "hint": e.hint()}));
        }
        run.emit.send(end).await;
        session.finish(
            status,
            Some(output.clone()),
            error.as_ref().map(ToString::to_string),
        );
        run.emit.session(session).await;
        run.emit.flush().await;
        // The session directory only holds scratch files of shell tools.
        if tokio::fs::try_exists(&session_dir).await.unwrap_or(false)
            && let Err(e) = tokio::fs::remove_dir_all(&session_dir).await
        {
            tracing::warn!(error = %e, dir = %session_dir.display(), "Session directory not removed");
        }
        let state = run.state.lock().map(|s| s.clone()).unwrap_or_default();
        Outcome {
            session_id,
            caller_id: request.caller_id,
            cascade_id: cascade.cascade_id.clone(),
            status,
            output,
            outputs: run.outputs,
            state,
            lineage: run.lineage,
            path: run.path,
            error,
            warnings: run.warnings,
            cost: run.cost,
            duration,
            llm_calls: run.llm_calls,
            tool_calls: run.tool_calls,
            events: run.emit.count.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct RunRequest {
    /// The validated cascade.
    pub cascade: Arc<Cascade>,
    /// The cascade input (an object, normally).
    pub input: Value,
    /// Use this session id instead of a fresh woodland id.
    pub session_id: Option<SessionId>,
    /// Who asked for the run (every event carries it).
    pub caller_id: CallerId,
    /// The `--model` override (§4.6: below a cell's own model, above the cascade's).
    pub model: Option<String>,
    /// Where the cascade came from (recorded on the session).
    pub cascade_file: Option<PathBuf>,
    /// The cascade text (recorded on the session, for replay).
    pub cascade_text: Option<String>,
    /// Cancelling this token stops the run between steps and marks the session cancelled.
    pub cancel: CancellationToken,
    /// The run that started this one (sub-cascade, cascade tool, validator or async cascade).
    pub parent_session_id: Option<SessionId>,
    /// The root of the run tree (`None`: this run is the root).
    pub root_session_id: Option<SessionId>,
    /// Nesting depth (root 0); runs deeper than [`MAX_DEPTH`] fail with RVB-E004.
    pub depth: u32,
    /// Live progress (current cell, turn, cost so far), derived from the events, for a display.
    pub progress: Option<tokio::sync::watch::Sender<Progress>>,
    /// Sampling settings for every LLM call of the run (a candidate branch's own settings win).
    pub sampling: Sampling,
    /// Details of the invocation (a JSON object: who triggered the run and how, such as the SQL
    /// statement and row of a `RVBBIT MAP`), recorded on the session and its `cascade_start` event.
    pub metadata: Value,
    /// Where a resumed run continues (set by [`Engine::resume`]).
    pub(crate) resume: Option<Box<Resume>>,
}

/// Sampling settings sent with LLM calls; `None` leaves the provider's default.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sampling {
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Most output tokens per call.
    pub max_tokens: Option<u32>,
}

impl RunRequest {
    /// A request for `cascade` with an empty input, a fresh CLI caller and no overrides.
    pub fn new(cascade: Cascade) -> Self {
        RunRequest {
            cascade: Arc::new(cascade),
            input: Value::Object(Map::new()),
            session_id: None,
            caller_id: CallerId::new(Origin::Cli),
            model: None,
            cascade_file: None,
            cascade_text: None,
            cancel: CancellationToken::new(),
            parent_session_id: None,
            root_session_id: None,
            depth: 0,
            progress: None,
            sampling: Sampling::default(),
            metadata: Value::Object(Map::new()),
            resume: None,
        }
    }

    /// Set the input.
    pub fn with_input(mut self, input: Value) -> Self {
        self.input = input;
        self
    }
}

/// One executed cell in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineageEntry {
    /// The cell.
    pub cell: String,
    /// Its output.
    pub output: Value,
}

/// How a run ended.
#[derive(Debug)]
#[non_exhaustive]
pub struct Outcome {
    /// The session.
    pub session_id: SessionId,
    /// The caller.
    pub caller_id: CallerId,
    /// The cascade.
    pub cascade_id: String,
    /// `completed`, `failed`, `cancelled`, or `waiting` (stopped at a human-in-the-loop cell; the error is
    /// [`Error::Waiting`] and [`Engine::resume`] continues it).
    pub status: SessionStatus,
    /// The final output: the last lineage entry's output (`null` when no cell finished).
    pub output: Value,
    /// Every cell's output by name (the last one when a cell ran several times).
    pub outputs: Map<String, Value>,
    /// The final session state.
    pub state: Map<String, Value>,
    /// Every executed cell in order.
    pub lineage: Vec<LineageEntry>,
    /// Cell names in execution order, including a failed last cell.
    pub path: Vec<String>,
    /// Why it failed or was cancelled.
    pub error: Option<Error>,
    /// Non-fatal problems (inputs not in `inputs_schema`, ...).
    pub warnings: Vec<String>,
    /// Sum of the known costs of the LLM calls.
    pub cost: MicroUsd,
    /// Wall time of the run.
    pub duration: Duration,
    /// Provider calls made.
    pub llm_calls: u32,
    /// Tool calls made (deterministic cells and model tool calls).
    pub tool_calls: u32,
    /// Events emitted.
    pub events: i64,
}

/// What a cell produced: its output and, maybe, where to go next.
#[derive(Debug)]
pub(crate) struct CellResult {
    pub(crate) output: Value,
    pub(crate) route: Option<String>,
}

/// The state of one run.
pub(crate) struct Run<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) cascade: &'a Cascade,
    pub(crate) emit: Emitter,
    pub(crate) templates: Templates,
    pub(crate) input: Value,
    pub(crate) state: Arc<Mutex<Map<String, Value>>>,
    pub(crate) outputs: Map<String, Value>,
    pub(crate) lineage: Vec<LineageEntry>,
    pub(crate) model_override: Option<String>,
    pub(crate) sampling: Sampling,
    pub(crate) session_id: SessionId,
    pub(crate) session_dir: PathBuf,
    pub(crate) cost: MicroUsd,
    pub(crate) llm_calls: u32,
    pub(crate) tool_calls: u32,
    pub(crate) warnings: Vec<String>,
    pub(crate) path: Vec<String>,
    pub(crate) cancel: CancellationToken,
    /// Set inside a candidate branch (`cells/takes.rs`): its index, the factor, sampling overrides.
    pub(crate) branch: Option<crate::cells::plans::Branch>,
    /// Child runs: the run tree position, child ids, async cascades in flight.
    pub(crate) compose: crate::compose::Composition,
    /// The session record (updated when the run waits for a human).
    pub(crate) session: Session,
    /// Human-in-the-loop bookkeeping (a resumed wait, `ask_human` answers of the current cell).
    pub(crate) hitl: crate::cells::hitl::HitlState,
}

impl Run<'_> {
    /// Warn (never fail) on inputs missing from or not named in `inputs_schema`.
    async fn check_inputs(&mut self) {
        let Some(schema) = &self.cascade.inputs_schema else {
            return;
        };
        let given = self.input.as_object().cloned().unwrap_or_default();
        let mut warnings = Vec::new();
        for key in schema.keys() {
            if !given.contains_key(key) {
                warnings.push(format!("input `{key}` (declared in inputs_schema) was not given"));
            }
        }
        for key in given.keys() {
            if !schema.contains_key(key) {
                warnings.push(format!("input `{key}` is not declared in inputs_schema"));
            }
        }
        for w in warnings {
            let mut e = self.emit.event(EventKind::Validation, None);
            e.metadata = json!({"check": "inputs_schema", "severity": "warning", "passed": false});
            e.content = json!(w);
            self.emit.send(e).await;
            // Info, not warn: the outcome's `warnings` reach the caller, which shows them once.
            tracing::info!(session_id = %self.session_id, "{w}");
            self.warnings.push(w);
        }
    }

    /// The variables every template sees (§9.3), as JSON.
    pub(crate) fn template_ctx(&self) -> Value {
        let state = self
            .state
            .lock()
            .map(|s| Value::Object(s.clone()))
            .unwrap_or_default();
        let (index, factor, inside) = match &self.branch {
            Some(b) => (json!(b.index), json!(b.factor), true),
            None => (json!(0), Value::Null, false),
        };
        json!({
            "input": self.input,
            "state": state,
            "outputs": self.outputs,
            "lineage": self.lineage,
            "history": [],
            "candidate_index": index,
            "sounding_index": index,
            "take_index": index,
            "candidate_factor": factor,
            "sounding_factor": factor,
            "take_factor": factor,
            "is_sounding": inside,
            "is_candidate": inside,
            "is_take": inside,
        })
    }

    /// Set `state[key] = value`.
    pub(crate) fn set_state(&self, key: &str, value: Value) {
        if let Ok(mut s) = self.state.lock() {
            s.insert(key.to_owned(), value);
        }
    }

    async fn run_loop(&mut self) -> Result<()> {
        let cascade = self.cascade;
        let Some(mut idx) = (!cascade.cells.is_empty()).then_some(0) else {
            return Ok(());
        };
        if let Some(i) = self.hitl.resume_cell(cascade) {
            idx = i;
        }
        // Cascade-level candidates run the whole cascade as branches (not on resume: a resumed run
        // continues the branch that waited).
        else if crate::cells::cascade_takes::applies(cascade) {
            return crate::cells::cascade_takes::run(self).await;
        }
        for _step in 0..MAX_STEPS {
            if self.cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let cell = &cascade.cells[idx];
            self.path.push(cell.name.clone());
            let cancel = self.cancel.clone();
            let result = tokio::select! {
                biased;
                _ = cancel.cancelled() => Err(Error::Cancelled),
                r = crate::cells::run_cell(self, cell) => r,
            };
            let route = match result {
                Ok(r) => {
                    self.record(cell, r.output).await;
                    r.route
                }
                Err(Error::Cancelled) => return Err(Error::Cancelled),
                // A blocking ward is a hard stop (§6.4): `on_error` does not apply; a wait is not an error.
                Err(
                    e @ (Error::WardBlocked { .. }
                    | Error::MaxDepth { .. }
                    | Error::Waiting { .. }
                    | Error::ResumedElsewhere { .. }),
                ) => {
                    return Err(e);
                }
                Err(e) => match &cell.on_error {
                    Some(OnError::Target(t)) if t != "auto_fix" => {
                        self.set_state(
                            "last_deterministic_error",
                            json!({"cell": cell.name, "tool": cell.tool, "error": e.to_string(), "code": e.code().code}),
                        );
                        Some(t.clone())
                    }
                    Some(OnError::Spec(spec)) if spec.instructions.is_some() => {
                        self.set_state(
                            "last_deterministic_error",
                            json!({"cell": cell.name, "tool": cell.tool, "error": e.to_string(), "code": e.code().code}),
                        );
                        let fallback = Cell {
                            name: format!("{}_fallback", cell.name),
                            instructions: spec.instructions.clone(),
                            model: spec.model.clone(),
                            traits: spec.traits.clone(),
                            rules: spec.rules.clone(),
                            output_schema: spec.output_schema.clone(),
                            context: spec.context.clone(),
                            use_native_tools: spec.use_native_tools,
                            ..Cell::default()
                        };
                        let r = Box::pin(crate::cells::with_events(self, &fallback)).await?;
                        self.record(cell, r.output).await;
                        None
                    }
                    Some(_) => {
                        return Err(Error::Unsupported {
                            cell: cell.name.clone(),
                            feature: "on_error: auto_fix".into(),
                        });
                    }
                    None if cell.continue_on_error == Some(true) => {
                        self.record(cell, Value::String(String::new())).await;
                        None
                    }
                    None => return Err(e),
                },
            };
            let next = route.or_else(|| cell.handoff_targets().first().map(|s| (*s).to_owned()));
            match next {
                Some(name) => match cascade.cells.iter().position(|c| c.name == name) {
                    Some(i) => idx = i,
                    None => {
                        return Err(Error::CellFailed {
                            cell: cell.name.clone(),
                            message: format!(
                                "routes to `{name}`, which is not a cell; cells: {}",
                                cascade.cell_names().collect::<Vec<_>>().join(", ")
                            ),
                        });
                    }
                },
                None if idx + 1 < cascade.cells.len() => idx += 1,
                None => return Ok(()),
            }
        }
        Err(Error::CellFailed {
            cell: cascade.cells[idx].name.clone(),
            message: format!(
                "the run exceeded {MAX_STEPS} cell executions (a handoff loop that never exits?)"
            ),
        })
    }

    async fn record(&mut self, cell: &Cell, output: Value) {
        self.outputs.insert(cell.name.clone(), output.clone());
        self.set_state(&format!("output_{}", cell.name), output.clone());
        self.lineage.push(LineageEntry {
            cell: cell.name.clone(),
            output,
        });
    }
}

/// Microseconds of `d`, saturating.
pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
