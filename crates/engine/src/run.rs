//! The state of one run ([`Run`]): what every cell sees (input, state, outputs, lineage, templates,
//! the emitter, the engine's handles, cancellation) and the [`Totals`] it reports to. Executors read
//! the run and report through its methods ([`Run::count_llm_call`], [`Run::add_cost`], [`Run::warn`],
//! ...), never by writing its counters.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rvbbit_cascade::model::{Cascade, Cell};
use rvbbit_core::{CallerId, MicroUsd, SessionId, SessionStatus};
use rvbbit_store::Session;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{Continuation, HitlState, Resume, Stage};
use crate::emit::Emitter;
use crate::engine::Engine;
use crate::error::Error;
use crate::outcome::{LineageEntry, Outcome};
use crate::request::Sampling;
use crate::template::Templates;

/// What a cell produced: its output and, maybe, where to go next.
#[derive(Debug)]
pub(crate) struct CellResult {
    pub(crate) output: Value,
    pub(crate) route: Option<String>,
}

/// What a run spent and noticed so far: cost, provider calls, tool calls and warnings.
#[derive(Clone, Debug, Default)]
pub(crate) struct Totals {
    cost: MicroUsd,
    llm_calls: u32,
    tool_calls: u32,
    warnings: Vec<String>,
}

impl Totals {
    /// The known cost of the provider calls.
    pub(crate) fn cost(&self) -> MicroUsd {
        self.cost
    }

    /// Provider calls made.
    pub(crate) fn llm_calls(&self) -> u32 {
        self.llm_calls
    }

    /// Tool calls made.
    pub(crate) fn tool_calls(&self) -> u32 {
        self.tool_calls
    }

    /// Non-fatal problems, in order.
    pub(crate) fn warnings(&self) -> &[String] {
        &self.warnings
    }
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
    /// Cost, calls and warnings, written only through the methods below.
    totals: Totals,
    pub(crate) path: Vec<String>,
    pub(crate) cancel: CancellationToken,
    /// Set inside a candidate branch (`cells/takes.rs`): its index, the factor, sampling overrides.
    pub(crate) branch: Option<crate::cells::plans::Branch>,
    /// Child runs: the run tree position, child ids, async cascades in flight.
    pub(crate) compose: crate::children::Composition,
    /// The session record (updated when the run waits for a human).
    pub(crate) session: Session,
    /// Human-in-the-loop bookkeeping (a resumed wait, `ask_human` answers of the current cell).
    pub(crate) hitl: HitlState,
    /// The journal of a run with a run key (`journal.rs`).
    pub(crate) journal: Option<crate::durable::Journal>,
    /// Side-effecting calls made so far by the current cell (numbers their idempotency keys).
    pub(crate) effect_seq: u32,
}

/// The parts of a [`Run`] that differ between a session's run and a candidate branch of it.
pub(crate) struct Parts<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) cascade: &'a Cascade,
    pub(crate) emit: Emitter,
    pub(crate) templates: Templates,
    pub(crate) input: Value,
    pub(crate) state: Map<String, Value>,
    pub(crate) model_override: Option<String>,
    pub(crate) sampling: Sampling,
    pub(crate) session_id: SessionId,
    pub(crate) session_dir: PathBuf,
    pub(crate) cancel: CancellationToken,
    pub(crate) compose: crate::children::Composition,
    pub(crate) session: Session,
}

impl<'a> Run<'a> {
    /// A run with nothing done yet (no outputs, lineage, path or totals).
    pub(crate) fn new(parts: Parts<'a>) -> Self {
        Run {
            engine: parts.engine,
            cascade: parts.cascade,
            emit: parts.emit,
            templates: parts.templates,
            input: parts.input,
            state: Arc::new(Mutex::new(parts.state)),
            outputs: Map::new(),
            lineage: Vec::new(),
            model_override: parts.model_override,
            sampling: parts.sampling,
            session_id: parts.session_id,
            session_dir: parts.session_dir,
            totals: Totals::default(),
            path: Vec::new(),
            cancel: parts.cancel,
            branch: None,
            compose: parts.compose,
            session: parts.session,
            hitl: HitlState::default(),
            journal: None,
            effect_seq: 0,
        }
    }

    /// A copy of this run for candidate branch `branch`: the same engine, session, emitter sequence and
    /// cancellation, with its own snapshot of the state and its own totals.
    pub(crate) fn fork(&self, branch: crate::cells::plans::Branch) -> Run<'a> {
        Run {
            engine: self.engine,
            cascade: self.cascade,
            emit: self.emit.for_candidate(branch.index),
            templates: self.templates.clone(),
            input: self.input.clone(),
            state: Arc::new(Mutex::new(self.state_snapshot())),
            outputs: self.outputs.clone(),
            lineage: self.lineage.clone(),
            model_override: self.model_override.clone(),
            sampling: self.sampling,
            session_id: self.session_id.clone(),
            session_dir: self.session_dir.clone(),
            totals: Totals::default(),
            path: Vec::new(),
            cancel: self.cancel.clone(),
            compose: self.compose.for_branch(branch.index),
            session: self.session.clone(),
            hitl: HitlState::default(),
            journal: self.journal.clone(),
            effect_seq: 0,
            branch: Some(branch),
        }
    }
}

impl Run<'_> {
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

    /// A copy of the state.
    pub(crate) fn state_snapshot(&self) -> Map<String, Value> {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Record a finished cell: its output by name, in `state.output_<cell>` and in the lineage.
    pub(crate) fn record(&mut self, cell: &Cell, output: Value) {
        self.outputs.insert(cell.name.clone(), output.clone());
        self.set_state(&format!("output_{}", cell.name), output.clone());
        self.lineage.push(LineageEntry {
            cell: cell.name.clone(),
            output,
        });
    }

    /// What the run spent and noticed so far.
    pub(crate) fn totals(&self) -> &Totals {
        &self.totals
    }

    /// One provider call was made.
    pub(crate) fn count_llm_call(&mut self) {
        self.totals.llm_calls += 1;
    }

    /// One tool call was made.
    pub(crate) fn count_tool_call(&mut self) {
        self.totals.tool_calls += 1;
    }

    /// A provider call's known cost.
    pub(crate) fn add_cost(&mut self, cost: MicroUsd) {
        self.totals.cost += cost;
    }

    /// A non-fatal problem, for the outcome's `warnings`.
    pub(crate) fn warn(&mut self, warning: String) {
        self.totals.warnings.push(warning);
    }

    /// Add the cost and calls of work done elsewhere (a child run, a candidate branch): the run's cost
    /// is its tree's cost.
    pub(crate) fn add_calls(&mut self, cost: MicroUsd, llm_calls: u32, tool_calls: u32) {
        self.totals.cost += cost;
        self.totals.llm_calls += llm_calls;
        self.totals.tool_calls += tool_calls;
    }

    /// Add a finished child run's cost and calls.
    pub(crate) fn absorb(&mut self, outcome: &Outcome) {
        self.add_calls(outcome.cost, outcome.llm_calls, outcome.tool_calls);
    }

    /// The continuation of this run waiting at `stage` (saved in its checkpoint).
    pub(crate) fn continuation(&self, stage: Stage) -> Continuation {
        Continuation {
            stage,
            state: self.state_snapshot(),
            outputs: self.outputs.clone(),
            lineage: self.lineage.clone(),
            path: self.path.clone(),
            cost: self.totals.cost,
            llm_calls: self.totals.llm_calls,
            tool_calls: self.totals.tool_calls,
            warnings: self.totals.warnings.clone(),
            model: self.model_override.clone(),
            next_seq: self.emit.next_seq(),
        }
    }

    /// Put back what a journaled earlier attempt of this run completed (`journal.rs`); the `totals` are
    /// (cost, provider calls, tool calls).
    pub(crate) fn continue_from(
        &mut self,
        state: Map<String, Value>,
        outputs: Map<String, Value>,
        lineage: Vec<LineageEntry>,
        path: Vec<String>,
        totals: (MicroUsd, u32, u32),
        warnings: Vec<String>,
    ) {
        if let Ok(mut s) = self.state.lock() {
            *s = state;
        }
        self.outputs = outputs;
        self.lineage = lineage;
        self.path = path;
        self.totals = Totals {
            cost: totals.0,
            llm_calls: totals.1,
            tool_calls: totals.2,
            warnings,
        };
    }

    /// The idempotency key of the next side-effecting call of `cell`: `<run key or session>/<step>.
    /// <cell>[.c<candidate>]/<n>`, the same on every attempt that makes the same call.
    pub(crate) fn next_effect_key(&mut self, cell: &Cell) -> String {
        self.effect_seq += 1;
        let base = self
            .journal
            .as_ref()
            .map_or(self.session_id.as_str(), |j| j.key.as_str());
        let branch = self
            .branch
            .as_ref()
            .map(|b| format!(".c{}", b.index))
            .unwrap_or_default();
        format!(
            "{base}/{}.{}{branch}/{}",
            self.path.len(),
            cell.name,
            self.effect_seq
        )
    }

    /// Put a saved run back; the run loop then starts at the waiting cell.
    pub(crate) fn restore(&mut self, resume: Box<Resume>) {
        let c = &resume.continuation;
        if let Ok(mut s) = self.state.lock() {
            *s = c.state.clone();
        }
        self.outputs = c.outputs.clone();
        self.lineage = c.lineage.clone();
        // The loop pushes the waiting cell again when it re-enters it.
        self.path = c.path.clone();
        self.path.pop();
        self.totals = Totals {
            cost: c.cost,
            llm_calls: c.llm_calls,
            tool_calls: c.tool_calls,
            warnings: c.warnings.clone(),
        };
        self.totals.warnings.extend(resume.warnings.iter().cloned());
        self.hitl.resume = Some(*resume);
    }

    /// The outcome of this run: `status`, `output` and `error`, with everything the run recorded.
    pub(crate) fn into_outcome(
        self,
        caller_id: CallerId,
        status: SessionStatus,
        output: Value,
        error: Option<Error>,
        duration: Duration,
    ) -> Outcome {
        let state = self.state_snapshot();
        let events = self.emit.count.load(std::sync::atomic::Ordering::Relaxed);
        Outcome {
            session_id: self.session_id,
            caller_id,
            cascade_id: self.cascade.cascade_id.clone(),
            status,
            output,
            outputs: self.outputs,
            state,
            lineage: self.lineage,
            path: self.path,
            error,
            warnings: self.totals.warnings,
            cost: self.totals.cost,
            duration,
            llm_calls: self.totals.llm_calls,
            tool_calls: self.totals.tool_calls,
            events,
        }
    }
}

/// Microseconds of `d`, saturating.
pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
