//! What to run: [`RunRequest`] and its [`Sampling`] settings.

use std::path::PathBuf;
use std::sync::Arc;

use rvbbit_cascade::model::Cascade;
use rvbbit_core::{CallerId, Origin, SessionId};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::checkpoint::Resume;
use crate::progress::Progress;

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
    /// Nesting depth (root 0); runs deeper than [`MAX_DEPTH`](crate::MAX_DEPTH) fail with RVB-E004.
    pub depth: u32,
    /// Live progress (current cell, turn, cost so far), derived from the events, for a display.
    pub progress: Option<tokio::sync::watch::Sender<Progress>>,
    /// Sampling settings for every LLM call of the run (a candidate branch's own settings win).
    pub sampling: Sampling,
    /// Details of the invocation (a JSON object: who triggered the run and how, such as the SQL
    /// statement and row of a `RVBBIT MAP`), recorded on the session and its `cascade_start` event.
    pub metadata: Value,
    /// A stable key of the logical run, the same for every attempt of it (a queue job's submission).
    /// With a store, the run journals each completed top-level cell under it, continues after the
    /// latest journaled cell of an earlier attempt, and records side-effecting tool calls under
    /// idempotency keys derived from it (see docs/workers.md, "At-least-once, exactly").
    pub run_key: Option<String>,
    /// Where a resumed run continues (set by [`Engine::resume`](crate::Engine::resume)).
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
            run_key: None,
            resume: None,
        }
    }

    /// Set the input.
    pub fn with_input(mut self, input: Value) -> Self {
        self.input = input;
        self
    }
}
