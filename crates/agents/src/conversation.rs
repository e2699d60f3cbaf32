//! One conversation's task: it takes the conversation's messages in arrival order from its channel and
//! runs one turn at a time.
//!
//! A turn group opens with a message, gathers more while the window ([`crate::window`]) stays open,
//! then runs the agent's cascade (an attempt). A message arriving during an attempt supersedes it while
//! its gate is open ([`crate::gate`]): the run is cancelled and the group gathers again and restarts
//! with all its messages (same turn group, next attempt). Once a committing tool ran, or when the group
//! already holds `window.max_messages`, new messages queue as the next turn group, which starts when
//! this one completes.

use std::collections::VecDeque;
use std::sync::Arc;

use rvbbit_core::{CallerId, EventKind, Origin, SessionId, SessionStatus, Timestamp};
use rvbbit_engine::{Engine, Outcome, RunRequest};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::definition::Agent;
use crate::error::{Error, Result};
use crate::gate::{Gate, Gates};
use crate::key::{ConversationKey, Message};
use crate::persist::{self, Rows, TurnUpdate};
use crate::record::Recorder;
use crate::runtime::{Accepted, Disposition, Shared, TurnReport};
use crate::window;

/// A message on its way to the conversation's task, with the answer to its sender.
#[derive(Debug)]
pub(crate) struct Envelope {
    pub(crate) message: Message,
    pub(crate) ack: oneshot::Sender<Result<Accepted>>,
}

/// What a conversation keeps between turns (and between two lives of its task).
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) recorder: Recorder,
    /// Earlier messages, oldest first: `{"role": "user"|"agent", "text", "turn_group"}`.
    pub(crate) history: VecDeque<Value>,
    /// The session variables: the state of the latest completed turn's run.
    pub(crate) vars: Map<String, Value>,
    /// The conversation's rows in the store (`None`: no store, or it failed when opened).
    pub(crate) rows: Option<Rows>,
    /// Whether the store was read (once per conversation per process).
    pub(crate) loaded: bool,
}

/// One message of a turn group.
#[derive(Debug)]
struct Received {
    text: String,
    attachments: Vec<Value>,
    at: Timestamp,
}

/// A turn group: the messages one logical turn answers.
#[derive(Debug)]
struct Group {
    id: String,
    caller: CallerId,
    messages: Vec<Received>,
    first: Instant,
    last: Instant,
    attempts: u32,
    started_at: Timestamp,
}

impl Group {
    fn new() -> Self {
        let now = Instant::now();
        Group {
            id: format!("turn-{}", rvbbit_core::woodland_name()),
            caller: CallerId::new(Origin::Agent),
            messages: Vec::new(),
            first: now,
            last: now,
            attempts: 0,
            started_at: Timestamp::now(),
        }
    }

    fn push(&mut self, m: Message) {
        let now = Instant::now();
        if self.messages.is_empty() {
            self.first = now;
        }
        self.last = now;
        self.messages.push(Received {
            text: m.text,
            attachments: m.attachments,
            at: Timestamp::now(),
        });
    }

    fn texts(&self) -> Vec<&str> {
        self.messages.iter().map(|m| m.text.as_str()).collect()
    }
}

/// An attempt in flight.
struct Attempt {
    handle: JoinHandle<Outcome>,
    cancel: CancellationToken,
    gate: Arc<Gate>,
    session: SessionId,
}

/// The task of one conversation.
pub(crate) struct Conversation {
    pub(crate) key: ConversationKey,
    pub(crate) agent: Arc<Agent>,
    pub(crate) engine: Engine,
    pub(crate) gates: Gates,
    pub(crate) shared: Arc<Shared>,
    pub(crate) rx: mpsc::Receiver<Envelope>,
    pub(crate) state: State,
    /// The request every attempt starts from (cascade, metadata).
    pub(crate) template: RunRequest,
}

impl Conversation {
    /// Run turns until the conversation has been idle for `limits.idle_ms` or the agents shut down.
    pub(crate) async fn run(mut self) {
        self.load().await;
        let mut next: Option<Group> = None;
        loop {
            let group = match next.take() {
                Some(g) => g,
                None => match self.idle().await {
                    Some(env) => {
                        let mut g = Group::new();
                        self.accept(&mut g, env, Disposition::NewTurn).await;
                        g
                    }
                    None => return,
                },
            };
            next = self.turn(group).await;
            if self.shared.shutdown.is_cancelled() {
                return;
            }
        }
    }

    /// Wait for the next message; `None` when idle too long (the task then ends and parks its state)
    /// or at shutdown.
    async fn idle(&mut self) -> Option<Envelope> {
        let idle = std::time::Duration::from_millis(self.agent.limits.idle_ms);
        tokio::select! {
            env = self.rx.recv() => env,
            // Leave only when nothing raced in: the sender map is locked while `retire` looks.
            () = tokio::time::sleep(idle) => self.shared.retire(&self.key, &mut self.rx, &self.state),
            () = self.shared.shutdown.cancelled() => None,
        }
    }

    /// Read the conversation's id, history and variables from the store, once.
    async fn load(&mut self) {
        if self.state.loaded {
            return;
        }
        self.state.loaded = true;
        let Some(store) = self.engine.store().cloned() else {
            return;
        };
        let fresh = self.state.recorder.session_id.clone();
        let history = self.agent.limits.history_messages;
        let Some(loaded) = persist::open(store, &self.key, &fresh, history).await else {
            return;
        };
        if let Ok(id) = loaded.rows.conversation.id.parse::<SessionId>()
            && id != fresh
        {
            self.state.recorder = Recorder::new(
                self.engine.writer().cloned(),
                id,
                &self.key,
                &self.agent.cascade.cascade_id,
            );
        }
        self.state.history = loaded.history;
        self.state.vars = loaded.vars;
        self.state.rows = Some(loaded.rows);
    }

    /// Take `env` into `group`, store it and answer its sender.
    async fn accept(&self, group: &mut Group, env: Envelope, disposition: Disposition) {
        if let Some(rows) = &self.state.rows {
            let m = &env.message;
            rows.message("user", &m.text, &m.attachments, &group.id).await;
            if matches!(disposition, Disposition::NewTurn | Disposition::Queued) && group.messages.is_empty()
            {
                let status = if disposition == Disposition::Queued {
                    "queued"
                } else {
                    "gathering"
                };
                self.store_turn(group, status, None, None, false).await;
            }
        }
        group.push(env.message);
        self.ack(env.ack, &group.id, disposition);
    }

    async fn store_turn(
        &self,
        group: &Group,
        status: &str,
        reply: Option<&str>,
        run: Option<&SessionId>,
        ended: bool,
    ) {
        if let Some(rows) = &self.state.rows {
            rows.turn(TurnUpdate {
                turn_id: &group.id,
                started_at: group.started_at,
                status,
                attempts: group.attempts,
                messages: group.messages.len(),
                reply,
                run_session_id: run.map(SessionId::as_str),
                ended,
            })
            .await;
        }
    }

    fn ack(&self, ack: oneshot::Sender<Result<Accepted>>, turn: &str, disposition: Disposition) {
        // The sender may have given up waiting (its request was dropped): the message is still taken.
        let _ = ack.send(Ok(Accepted {
            turn_id: turn.to_owned(),
            conversation_id: self.state.recorder.session_id.clone(),
            disposition,
        }));
    }

    /// Run one turn group to its end; returns the next group when messages queued behind it.
    async fn turn(&mut self, mut group: Group) -> Option<Group> {
        let mut queued: Option<Group> = None;
        loop {
            if !self.gather(&mut group).await {
                return None;
            }
            let mut attempt = self.start(&mut group).await;
            loop {
                tokio::select! {
                    outcome = &mut attempt.handle => {
                        self.gates.remove(&attempt.session);
                        self.complete(&group, outcome).await;
                        return queued;
                    }
                    env = self.rx.recv() => {
                        let Some(env) = env else { continue };
                        if self.pending(&group, queued.as_ref()) >= self.agent.limits.max_pending_messages {
                            self.refuse(env);
                            continue;
                        }
                        let full = group.messages.len() >= self.agent.window.max_messages;
                        if !full && attempt.gate.try_supersede() {
                            self.supersede(&mut group, attempt, env).await;
                            break;
                        }
                        let next = queued.get_or_insert_with(Group::new);
                        self.accept(next, env, Disposition::Queued).await;
                    }
                    () = self.shared.shutdown.cancelled() => {
                        attempt.cancel.cancel();
                        // Shutting down: the cancelled run's outcome is recorded by the engine itself.
                        let _ = attempt.handle.await;
                        self.gates.remove(&attempt.session);
                        return None;
                    }
                }
            }
        }
    }

    fn pending(&self, group: &Group, queued: Option<&Group>) -> usize {
        group.messages.len() + queued.map_or(0, |q| q.messages.len())
    }

    fn refuse(&self, env: Envelope) {
        // A sender that stopped waiting needs no answer.
        let _ = env.ack.send(Err(Error::Busy {
            key: self.key.to_string(),
            limit: self.agent.limits.max_pending_messages,
        }));
    }

    /// Gather messages while the window is open; false at shutdown.
    async fn gather(&mut self, group: &mut Group) -> bool {
        let settings = &self.agent.window;
        let max_wait = std::time::Duration::from_millis(settings.max_wait_ms);
        loop {
            let wait = window::wait_after(settings, &self.key.channel, &group.texts());
            if wait.is_zero() {
                return true;
            }
            let deadline = (group.last + wait).min(group.first + max_wait);
            tokio::select! {
                () = sleep_until(deadline) => return true,
                env = self.rx.recv() => {
                    let Some(env) = env else { return true };
                    let text = env.message.text.clone();
                    self.accept(group, env, Disposition::Absorbed).await;
                    self.absorbed(group, &text, "window").await;
                }
                () = self.shared.shutdown.cancelled() => return false,
            }
        }
    }

    async fn absorbed(&self, group: &Group, text: &str, why: &str) {
        self.state
            .recorder
            .emit(
                EventKind::AgentMessageAbsorbed,
                &group.caller,
                &group.id,
                json!({"reason": why, "messages": group.messages.len()}),
                json!(text),
            )
            .await;
    }

    /// Start the next attempt of `group`.
    async fn start(&mut self, group: &mut Group) -> Attempt {
        group.attempts += 1;
        let session = SessionId::new_woodland();
        let gate = Arc::new(Gate::new(
            Arc::new(self.agent.tools.clone()),
            group.id.clone(),
            group.caller.clone(),
            self.state.recorder.clone(),
            self.engine.store().cloned(),
        ));
        self.gates.insert(session.clone(), gate.clone());
        let mut request = self.template.clone();
        let cancel = CancellationToken::new();
        request.cancel = cancel.clone();
        request.session_id = Some(session.clone());
        request.caller_id = group.caller.clone();
        // Each attempt journals under its own key: a superseded attempt made no committing call (the
        // gate refused it), and the next attempt must run every cell again with the new messages.
        request.run_key = Some(format!("{}/a{}", group.id, group.attempts));
        request.input = self.input(group);
        request.metadata = json!({"door": "agent", "conversation_key": self.key.to_string(),
            "conversation_id": self.state.recorder.session_id.as_str(), "tenant": self.key.tenant,
            "turn_group": group.id, "attempt": group.attempts});
        self.store_turn(group, "running", None, Some(&session), false)
            .await;
        self.state
            .recorder
            .emit(
                EventKind::AgentTurnStarted,
                &group.caller,
                &group.id,
                json!({"attempt": group.attempts, "run_session_id": session.as_str(),
                       "messages": group.messages.len()}),
                json!(group.texts()),
            )
            .await;
        let engine = self.engine.clone();
        let handle = tokio::spawn(async move { engine.run(request).await });
        Attempt {
            handle,
            cancel,
            gate,
            session,
        }
    }

    /// What the cascade sees: the turn's raw messages (a list), their attachments, the history, the
    /// session variables and the conversation.
    fn input(&self, group: &Group) -> Value {
        let attachments: Vec<Value> = group
            .messages
            .iter()
            .enumerate()
            .flat_map(|(i, m)| {
                m.attachments
                    .iter()
                    .map(move |a| json!({"message": i, "value": a}))
            })
            .collect();
        json!({
            "messages": group.texts(),
            "sent_at": group.messages.iter().map(|m| m.at.to_rfc3339()).collect::<Vec<_>>(),
            "attachments": attachments,
            "history": self.state.history,
            "vars": self.state.vars,
            "conversation": {
                "id": self.state.recorder.session_id.as_str(),
                "tenant": self.key.tenant, "agent": self.key.agent,
                "interlocutor": self.key.interlocutor, "channel": self.key.channel,
                "turn_group": group.id, "attempt": group.attempts,
            },
        })
    }

    /// Cancel `attempt` for the newer message in `env`, which joins the group.
    async fn supersede(&mut self, group: &mut Group, attempt: Attempt, env: Envelope) {
        attempt.cancel.cancel();
        let status = match attempt.handle.await {
            Ok(o) => o.status.as_str(),
            Err(_) => "failed",
        };
        self.gates.remove(&attempt.session);
        self.state
            .recorder
            .emit(
                EventKind::AgentTurnSuperseded,
                &group.caller,
                &group.id,
                json!({"attempt": group.attempts, "run_session_id": attempt.session.as_str(),
                       "run_status": status}),
                Value::Null,
            )
            .await;
        let text = env.message.text.clone();
        self.accept(group, env, Disposition::Superseded).await;
        self.absorbed(group, &text, "supersede").await;
    }

    /// Record the end of `group`: history, variables, `turn.completed`, the report.
    async fn complete(
        &mut self,
        group: &Group,
        outcome: std::result::Result<Outcome, tokio::task::JoinError>,
    ) {
        let (status, reply, run_session) = match outcome {
            Ok(o) => {
                if o.status == SessionStatus::Completed {
                    self.state.vars = o.state.clone();
                }
                let error = o.error.as_ref().map(ToString::to_string);
                let reply = reply_text(&o.output);
                (o.status, reply.or(error), Some(o.session_id))
            }
            Err(e) => (
                SessionStatus::Failed,
                Some(format!("the turn's task failed: {e}")),
                None,
            ),
        };
        for m in &group.messages {
            self.remember(json!({"role": "user", "text": m.text, "turn_group": group.id}));
        }
        if status == SessionStatus::Completed {
            let text = reply.clone().unwrap_or_default();
            self.remember(json!({"role": "agent", "text": text, "turn_group": group.id}));
        }
        self.store_turn(
            group,
            status.as_str(),
            reply.as_deref(),
            run_session.as_ref(),
            true,
        )
        .await;
        if let (Some(rows), Some(text)) = (&self.state.rows, reply.as_deref())
            && status == SessionStatus::Completed
        {
            rows.message("agent", text, &[], &group.id).await;
            rows.vars(&self.state.vars).await;
        }
        self.state
            .recorder
            .emit(
                EventKind::AgentTurnCompleted,
                &group.caller,
                &group.id,
                json!({"attempts": group.attempts, "status": status.as_str(),
                       "run_session_id": run_session.as_ref().map(SessionId::as_str),
                       "messages": group.messages.len()}),
                json!(reply),
            )
            .await;
        // Nobody listening is fine: reports are for observers that subscribed.
        let _ = self.shared.reports.send(TurnReport {
            key: self.key.clone(),
            conversation_id: self.state.recorder.session_id.clone(),
            turn_id: group.id.clone(),
            attempts: group.attempts,
            messages: group.texts().into_iter().map(str::to_owned).collect(),
            status,
            reply,
            run_session_id: run_session,
        });
    }

    fn remember(&mut self, entry: Value) {
        self.state.history.push_back(entry);
        while self.state.history.len() > self.agent.limits.history_messages {
            self.state.history.pop_front();
        }
    }
}

/// The reply of a run's final output: a string as is; an object's `reply`, `text` or `message`
/// string; anything else as JSON text.
fn reply_text(output: &Value) -> Option<String> {
    match output {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => ["reply", "text", "message"]
            .iter()
            .find_map(|k| o.get(*k).and_then(Value::as_str).map(str::to_owned))
            .or_else(|| Some(output.to_string())),
        other => Some(other.to_string()),
    }
}
