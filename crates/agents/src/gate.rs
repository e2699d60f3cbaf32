//! The commit point of a turn attempt, and the tool wrapper that reaches it.
//!
//! Each attempt of a turn has a [`Gate`]. A newer message may supersede the attempt only while the gate
//! is open; a call of a tool whose policy commits (`compensatable`, `irreversible`) closes it for good
//! first. Both moves are one compare-and-set under the gate's lock, so a message and a committing call
//! never both win: either the attempt is superseded and the call is refused before it is made, or the
//! call is made and the message queues as a new turn group.
//!
//! [`Gates::wrap`] wraps every tool of an engine's registry. A wrapped tool called by an agent turn's
//! run (found by the run's session id) goes through the gate; called by any other run it is the tool
//! as before. A committing call also claims the idempotency key `tool:business_key:turn_group` in the
//! store (the business key: the first 16 hex digits of the SHA-256 of its arguments), so a turn group
//! makes each such call at most once, whichever attempt reaches it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rvbbit_core::{CallerId, EventKind, SessionId, Timestamp};
use rvbbit_engine::tools::{Registry, SideEffect, Tool, ToolContext, ToolError};
use rvbbit_store::{Effect, EffectBegin, EffectStatus, Store};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::definition::ToolPolicy;
use crate::record::Recorder;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    Committed,
    Superseded,
}

/// The commit point of one turn attempt.
pub(crate) struct Gate {
    state: Mutex<State>,
    policies: Arc<BTreeMap<String, ToolPolicy>>,
    pub(crate) turn_group: String,
    caller: CallerId,
    recorder: Recorder,
    store: Option<Arc<dyn Store>>,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("turn_group", &self.turn_group)
            .finish_non_exhaustive()
    }
}

impl Gate {
    pub(crate) fn new(
        policies: Arc<BTreeMap<String, ToolPolicy>>,
        turn_group: String,
        caller: CallerId,
        recorder: Recorder,
        store: Option<Arc<dyn Store>>,
    ) -> Self {
        Gate {
            state: Mutex::new(State::Open),
            policies,
            turn_group,
            caller,
            recorder,
            store,
        }
    }

    fn swap(&self, from: State, to: State) -> State {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let was = *state;
        if was == from {
            *state = to;
        }
        was
    }

    /// Supersede the attempt unless it committed; true when superseded (the caller cancels its run).
    pub(crate) fn try_supersede(&self) -> bool {
        self.swap(State::Open, State::Superseded) != State::Committed
    }

    /// Commit the attempt unless it was superseded; true when the committing call may go ahead.
    fn try_commit(&self) -> (bool, bool) {
        match self.swap(State::Open, State::Committed) {
            State::Open => (true, true),
            State::Committed => (true, false),
            State::Superseded => (false, false),
        }
    }

    fn policy(&self, tool: &dyn Tool) -> ToolPolicy {
        self.policies
            .get(tool.name())
            .copied()
            .unwrap_or_else(|| ToolPolicy::of_side_effect(tool.side_effect()))
    }
}

/// The gates of the turn attempts in flight, by the session id of their engine run. Cheap to clone.
#[derive(Clone, Default)]
pub struct Gates {
    by_session: Arc<Mutex<HashMap<SessionId, Arc<Gate>>>>,
}

impl fmt::Debug for Gates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gates").finish_non_exhaustive()
    }
}

impl Gates {
    /// A registry with every tool of `registry` wrapped so agent turns reach their commit point
    /// through it. Build the engine that [`crate::Agents`] uses with it.
    pub fn wrap(&self, registry: &Registry) -> Registry {
        let mut out = registry.clone();
        for name in registry.names() {
            if let Some(tool) = registry.get(name) {
                out.register(Arc::new(GatedTool {
                    inner: tool.clone(),
                    gates: self.clone(),
                }));
            }
        }
        out
    }

    pub(crate) fn insert(&self, session: SessionId, gate: Arc<Gate>) {
        self.lock().insert(session, gate);
    }

    pub(crate) fn remove(&self, session: &SessionId) {
        self.lock().remove(session);
    }

    fn get(&self, session: &SessionId) -> Option<Arc<Gate>> {
        self.lock().get(session).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Arc<Gate>>> {
        self.by_session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A tool behind the gate of the agent turn that calls it.
struct GatedTool {
    inner: Arc<dyn Tool>,
    gates: Gates,
}

#[async_trait]
impl Tool for GatedTool {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn description(&self) -> &str {
        self.inner.description()
    }
    fn parameters(&self) -> Value {
        self.inner.parameters()
    }
    fn side_effect(&self) -> SideEffect {
        self.inner.side_effect()
    }
    fn default_timeout(&self) -> Option<Duration> {
        self.inner.default_timeout()
    }
    fn compute(&self) -> bool {
        self.inner.compute()
    }
    fn raw_inputs(&self) -> &[&str] {
        self.inner.raw_inputs()
    }
    fn cascade_path(&self) -> Option<&std::path::Path> {
        self.inner.cascade_path()
    }

    async fn execute(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let Some(gate) = self.gates.get(&ctx.session_id) else {
            return self.inner.execute(args, ctx).await;
        };
        let policy = gate.policy(self.inner.as_ref());
        if !policy.commits() {
            return self.inner.execute(args, ctx).await;
        }
        let (allowed, first) = gate.try_commit();
        if !allowed {
            return Err(ToolError::Failed(format!(
                "`{}` was not called: a newer message superseded this turn before its commit point",
                self.name()
            )));
        }
        if first {
            gate.recorder
                .emit(
                    EventKind::AgentCommitReached,
                    &gate.caller,
                    &gate.turn_group,
                    json!({"tool": self.name(), "policy": policy.as_str(),
                           "run_session_id": ctx.session_id.as_str()}),
                    Value::Null,
                )
                .await;
        }
        self.once(&gate, args, ctx).await
    }
}

impl GatedTool {
    /// Make the call at most once per turn group: claim `tool:business_key:turn_group` first.
    async fn once(&self, gate: &Gate, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let Some(store) = &gate.store else {
            return self.inner.execute(args, ctx).await;
        };
        let key = effect_key(self.name(), &args, &gate.turn_group);
        let effect = Effect::start(&key, ctx.session_id.clone(), &ctx.cell_name, self.name());
        match store.effect_begin(&effect).await {
            Ok(EffectBegin::Done(done)) => return Ok(done.result.unwrap_or(Value::Null)),
            Ok(_) => {}
            Err(e) => {
                return Err(ToolError::Failed(format!(
                    "`{}` was not called: its idempotency key {key} cannot be recorded in the store ({e})",
                    self.name()
                )));
            }
        }
        let result = self.inner.execute(args, ctx).await;
        let (status, value) = match &result {
            Ok(v) => (EffectStatus::Done, v.clone()),
            Err(e) => (EffectStatus::Failed, json!({"error": e.to_string()})),
        };
        if let Err(e) = store.effect_finish(&key, status, &value, Timestamp::now()).await {
            tracing::warn!(session_id = %ctx.session_id, error = %e, key, "The end of an agent tool call was not recorded.");
        }
        result
    }
}

/// `tool:business_key:turn_group`, the business key being the first 16 hex digits of the SHA-256 of
/// the arguments' JSON.
pub(crate) fn effect_key(tool: &str, args: &Value, turn_group: &str) -> String {
    let digest = Sha256::digest(args.to_string().as_bytes());
    format!("{tool}:{}:{turn_group}", &hex::encode(digest)[..16])
}
