//! rvbbit-agents: cascades served as conversational agents.
//!
//! A conversation is keyed `tenant:agent:interlocutor:channel` ([`ConversationKey`]). Its messages are
//! taken one at a time, in arrival order, by one task per live conversation; different conversations
//! run concurrently. Rapid messages are gathered into one turn by an adaptive window ([`window`]).
//! A message arriving while a turn is in flight supersedes it (the engine run is cancelled and the turn
//! group restarts with all its messages) until the turn reaches its commit point: a call of a tool
//! whose policy ([`ToolPolicy`]) is `compensatable` or `irreversible`. After that, new messages queue
//! as the next turn group, and the committing call is made at most once per turn group ([`Gates`]).
//! Every step is an event in the store (`turn.started`, `turn.completed`, `turn.superseded`,
//! `turn.message_absorbed`, `commit.reached`).
//!
//! Boundary: above the engine (it runs cascades through [`rvbbit_engine::Engine`]) and below the
//! HTTP door (`rvbbit-server` turns requests into [`Agents::send`]). It never speaks HTTP. Time is
//! tokio's, so tests run on a paused clock.
//!
//! Main types: [`Agents`] (the router), [`Agent`] (a definition), [`Message`], [`Accepted`],
//! [`TurnReport`], [`Gates`] (the tool wrapper that enforces policies), [`window::wait_after`].
//!
//! See docs/agents.md for the guide and what is not built yet.

mod conversation;
mod definition;
mod error;
pub mod file;
mod gate;
mod key;
mod persist;
mod record;
mod runtime;
pub mod window;

pub use definition::{Agent, AgentLimits, ToolPolicy};
pub use error::{Error, Result};
pub use gate::Gates;
pub use key::{ConversationKey, MAX_FIELD_BYTES, Message};
pub use runtime::{Accepted, Agents, Disposition, TurnReport};
