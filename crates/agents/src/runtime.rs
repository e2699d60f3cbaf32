//! [`Agents`]: the agents of one process and the router of their conversations.
//!
//! Each active conversation key has one task fed by a bounded channel ([`crate::conversation`]), so a
//! conversation's messages are taken in arrival order and its turns never overlap, while different
//! conversations run concurrently. There is no global lock held across an `.await`: the map of live
//! conversations is locked only to find or start a task. A task idle for `limits.idle_ms` ends and
//! parks the conversation's state (history, variables, event sequence) until its next message.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};

use rvbbit_core::{SessionId, SessionStatus};
use rvbbit_engine::{Engine, RunRequest};
use serde::Serialize;
use serde_json::Map;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::conversation::{Conversation, Envelope, State};
use crate::definition::Agent;
use crate::error::{Error, Result};
use crate::gate::Gates;
use crate::key::{ConversationKey, Message};
use crate::record::Recorder;

/// Capacity of a conversation's channel (senders wait when it is full).
const CHANNEL: usize = 64;
/// Capacity of the turn report stream (a slow subscriber misses the oldest).
const REPORTS: usize = 4096;

/// What became of an accepted message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Disposition {
    /// It opened a new turn group.
    NewTurn,
    /// It joined a turn group still gathering messages.
    Absorbed,
    /// It cancelled the turn in flight, which restarts with it (same turn group).
    Superseded,
    /// The turn in flight had committed (or was full): it waits as the next turn group.
    Queued,
}

/// The answer to [`Agents::send`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Accepted {
    /// The turn group the message belongs to.
    pub turn_id: String,
    /// The conversation's id (the session id of its turn events).
    pub conversation_id: SessionId,
    /// What became of it.
    pub disposition: Disposition,
}

/// One turn group's end, for subscribers ([`Agents::subscribe`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TurnReport {
    /// The conversation.
    pub key: ConversationKey,
    /// The conversation's id.
    pub conversation_id: SessionId,
    /// The turn group.
    pub turn_id: String,
    /// Attempts (1 + supersedes).
    pub attempts: u32,
    /// The turn's raw messages.
    pub messages: Vec<String>,
    /// The last attempt's status.
    pub status: SessionStatus,
    /// The reply (or the error of a failed run).
    pub reply: Option<String>,
    /// The last attempt's engine session.
    pub run_session_id: Option<SessionId>,
}

/// What the conversation tasks share with the router.
pub(crate) struct Shared {
    live: Mutex<HashMap<ConversationKey, mpsc::Sender<Envelope>>>,
    parked: Mutex<HashMap<ConversationKey, State>>,
    pub(crate) reports: broadcast::Sender<TurnReport>,
    pub(crate) shutdown: CancellationToken,
}

impl Shared {
    /// End a conversation's task unless a message raced in: under the lock of the live map, take a
    /// waiting message if there is one (the task goes on with it), else leave the map and park the
    /// state.
    pub(crate) fn retire(
        &self,
        key: &ConversationKey,
        rx: &mut mpsc::Receiver<Envelope>,
        state: &State,
    ) -> Option<Envelope> {
        let mut live = lock(&self.live);
        if let Ok(env) = rx.try_recv() {
            return Some(env);
        }
        live.remove(key);
        rx.close();
        lock(&self.parked).insert(
            key.clone(),
            State {
                recorder: state.recorder.clone(),
                history: state.history.clone(),
                vars: state.vars.clone(),
                rows: state.rows.clone(),
                loaded: state.loaded,
            },
        );
        None
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The agents of one process and their live conversations. Cheap to clone.
///
/// ```no_run
/// # async fn demo(engine: rvbbit_engine::Engine, cascade: rvbbit_cascade::model::Cascade) {
/// use rvbbit_agents::{Agent, Agents, ConversationKey, Gates, Message, ToolPolicy};
/// use rvbbit_engine::tools::Registry;
///
/// // Build the engine on a registry whose tools go through the agents' gates.
/// let gates = Gates::default();
/// let engine = rvbbit_engine::Engine::new(gates.wrap(&Registry::builtin()));
/// let agents = Agents::new(engine, gates);
/// agents.add(Agent::new("travel", cascade).with_tool("book_flight", ToolPolicy::Irreversible)).unwrap();
/// let key = ConversationKey::new("acme", "travel", "user-1", "web").unwrap();
/// let accepted = agents.send(Message::text(key, "Book Paris")).await.unwrap();
/// println!("turn {}", accepted.turn_id);
/// agents.shutdown().await;
/// # }
/// ```
#[derive(Clone)]
pub struct Agents {
    engine: Engine,
    gates: Gates,
    agents: Arc<RwLock<BTreeMap<String, Arc<Agent>>>>,
    shared: Arc<Shared>,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl fmt::Debug for Agents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agents")
            .field("agents", &self.names())
            .finish_non_exhaustive()
    }
}

impl Agents {
    /// Agents running turns on `engine`, whose registry should be `gates.wrap(..)` of its tools (else
    /// tool policies are not enforced).
    pub fn new(engine: Engine, gates: Gates) -> Self {
        let (reports, _) = broadcast::channel(REPORTS);
        Agents {
            engine,
            gates,
            agents: Arc::new(RwLock::new(BTreeMap::new())),
            shared: Arc::new(Shared {
                live: Mutex::new(HashMap::new()),
                parked: Mutex::new(HashMap::new()),
                reports,
                shutdown: CancellationToken::new(),
            }),
            tasks: Arc::new(Mutex::new(JoinSet::new())),
        }
    }

    /// Add (or replace) an agent.
    ///
    /// # Errors
    /// [`Error::BadDefinition`] listing every problem of its window settings and limits.
    pub fn add(&self, agent: Agent) -> Result<()> {
        let problems = agent.problems();
        if !problems.is_empty() {
            return Err(Error::BadDefinition {
                agent: agent.name,
                problems: problems.join("; "),
            });
        }
        let mut agents = self
            .agents
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        agents.insert(agent.name.clone(), Arc::new(agent));
        Ok(())
    }

    /// The agent named `name`.
    pub fn agent(&self, name: &str) -> Option<Arc<Agent>> {
        self.agents
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// The agents' names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.agents
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// Turn reports from now on (every turn group's end, across conversations).
    pub fn subscribe(&self) -> broadcast::Receiver<TurnReport> {
        self.shared.reports.subscribe()
    }

    /// Hand `message` to its conversation and say which turn it joined. Waits while the
    /// conversation's channel is full.
    ///
    /// # Errors
    /// [`Error::UnknownAgent`], [`Error::MessageTooLarge`], [`Error::BadField`] before anything is
    /// queued; [`Error::Busy`] when the conversation holds `limits.max_pending_messages`;
    /// [`Error::Unavailable`] during shutdown.
    ///
    /// # Cancel safety
    /// Dropping the future before it returns may still deliver the message (it is then answered to
    /// nobody).
    pub async fn send(&self, message: Message) -> Result<Accepted> {
        let agent = self
            .agent(&message.key.agent)
            .ok_or_else(|| Error::UnknownAgent {
                agent: message.key.agent.clone(),
                known: match self.names().join(", ") {
                    s if s.is_empty() => "none".into(),
                    s => s,
                },
            })?;
        message.check(&agent.limits)?;
        let mut envelope = {
            let (ack, answer) = oneshot::channel();
            (Envelope { message, ack }, answer)
        };
        // A task that retires between our lookup and our send closes its channel: start another.
        for _ in 0..3 {
            if self.shared.shutdown.is_cancelled() {
                return Err(Error::Unavailable);
            }
            let tx = self.sender(&envelope.0.message.key, &agent);
            match tx.send(envelope.0).await {
                Ok(()) => return envelope.1.await.map_err(|_| Error::Unavailable)?,
                Err(mpsc::error::SendError(back)) => envelope.0 = back,
            }
        }
        Err(Error::Unavailable)
    }

    /// The live task's sender for `key`, starting the task when there is none.
    fn sender(&self, key: &ConversationKey, agent: &Arc<Agent>) -> mpsc::Sender<Envelope> {
        let mut live = lock(&self.shared.live);
        if let Some(tx) = live.get(key).filter(|tx| !tx.is_closed()) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(CHANNEL);
        live.insert(key.clone(), tx.clone());
        let state = lock(&self.shared.parked).remove(key).unwrap_or_else(|| State {
            recorder: Recorder::new(
                self.engine.writer().cloned(),
                SessionId::new_woodland(),
                key,
                &agent.cascade.cascade_id,
            ),
            history: VecDeque::new(),
            vars: Map::new(),
            rows: None,
            loaded: false,
        });
        let mut template = RunRequest::new((*agent.cascade).clone());
        template.cascade = agent.cascade.clone();
        let conversation = Conversation {
            key: key.clone(),
            agent: agent.clone(),
            engine: self.engine.clone(),
            gates: self.gates.clone(),
            shared: self.shared.clone(),
            rx,
            state,
            template,
        };
        let mut tasks = lock(&self.tasks);
        // Reap finished tasks so the set stays as large as the live conversations.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(conversation.run());
        tx
    }

    /// How many conversations have a live task.
    pub fn live_conversations(&self) -> usize {
        lock(&self.shared.live).len()
    }

    /// Stop every conversation: runs in flight are cancelled (their sessions marked cancelled), queued
    /// messages are dropped, and this returns once every task has ended.
    pub async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        let mut tasks = std::mem::take(&mut *lock(&self.tasks));
        while tasks.join_next().await.is_some() {}
    }
}
