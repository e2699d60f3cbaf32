//! The rvbbit execution engine: runs a validated cascade as one session.
//!
//! A run ([`Engine::run`]) creates a session (a woodland id or a given one), records a `cascade_start`
//! event, then executes cells in order with the routing precedence of the spec (§3.4 Proposed):
//! `route_to` → a deterministic route (`routing` map or single handoff) → `on_error` → the first handoff →
//! the next cell. Every cell, LLM call and tool call becomes events (with cost in [`rvbbit_core::MicroUsd`]
//! and duration) carrying the session and caller ids; the session's status moves from `running` to
//! `completed`, `failed` or `cancelled`, and the event writer is flushed before [`Engine::run`] returns.
//!
//! Cells: LLM cells (`cells/llm.rs`: instructions rendered with minijinja, `context.from`, the turn loop
//! with native or prompt-described tools, `output_schema` with corrective re-asks, `loop_until`) and
//! deterministic cells (`cells/deterministic.rs`: a [`tools::Tool`] with rendered inputs, `timeout`,
//! `retry`, `routing`). A cell's `candidates` (takes, soundings) run as concurrent branches, each on a
//! forked copy of the run, and an evaluator picks the winner (`cells/takes.rs`); the cascade's
//! `token_budget` is enforced before every model call (`cells/budget.rs`). Tools live in the [`tools::Registry`]; other crates add theirs with
//! [`tools::Registry::register`].
//!
//! Composition (`compose.rs`, `children.rs`, `cells/wards.rs`): `sub_cascades`, `async_cascades`,
//! cascades used as tools ([`tools::CascadeTool`]) and validator cascades run as child sessions through
//! the same [`Engine::run`] — with the parent's caller id, writer and (child) cancel token, a
//! `parent_session_id` link and a depth limited to [`MAX_DEPTH`]. Wards judge a cell's input, turns and
//! output.
//!
//! Humans in the loop (`cells/hitl.rs`): a cell's `human_input`, screen cells and the `ask_human` tool
//! wait through one path that records a signal and a checkpoint and asks the engine's [`human::Human`];
//! without an answer the run ends with the session `waiting` ([`Error::Waiting`]) and
//! [`Engine::resume`] continues it later, in any process, without re-running completed cells. Live
//! [`Progress`] (cell, turn, cost so far) is derived from the emitted events.
//!
//! This crate must not depend on clap, axum, pgwire or datafusion; it reaches the store through
//! [`rvbbit_store::WriterHandle`] (events, session records) and the store traits (signals, checkpoints,
//! heartbeats).
//!
//! ```no_run
//! # async fn demo() {
//! use rvbbit_engine::{Engine, RunRequest, tools::Registry};
//!
//! let loaded = rvbbit_cascade::load_file(std::path::Path::new("hello.yaml"));
//! let cascade = loaded.document.and_then(|d| d.cascade().cloned()).unwrap();
//! let outcome = Engine::new(Registry::builtin())
//!     .run(RunRequest::new(cascade).with_input(serde_json::json!({"name": "Ada"})))
//!     .await;
//! println!("{} {:?}", outcome.status, outcome.output);
//! # }
//! ```

mod cells;
mod checkpoint;
mod child_runs;
mod children;
mod compose;
mod durable;
mod emit;
mod engine;
mod error;
pub mod human;
mod journal;
mod outcome;
pub mod progress;
mod request;
mod resume;
mod run;
mod session;
pub mod spending;
mod table;
mod template;
pub mod tools;

pub use child_runs::ChildRuns;
pub use engine::{Engine, MAX_DEPTH, MAX_STEPS};
pub use error::{Error, Result};
pub use outcome::{LineageEntry, Outcome};
pub use progress::Progress;
pub use request::{RunRequest, Sampling};
pub use resume::{ClaimedResume, ResumeRequest};
pub use spending::Admission;
#[doc(hidden)]
pub use template::{render_for_fuzzing, render_template};
pub use tokio_util::sync::CancellationToken;
