//! Conversations of agents (`rvbbit-agents`), their messages and their turns, each row with its tenant.
//!
//! A conversation is one `tenant:agent:interlocutor:channel` key; [`ConversationStore::conversation_open`]
//! finds or creates it in one step, so two processes opening the same key get the same row. Reads
//! always name the tenant: a conversation of another tenant is not found.

use async_trait::async_trait;
use rvbbit_core::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;

/// One conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Conversation {
    /// Its id (the session id of its turn events).
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// The agent's name.
    pub agent: String,
    /// Who the agent talks to.
    pub interlocutor: String,
    /// The channel.
    pub channel: String,
    /// The session variables (a JSON object): the state of the latest completed turn.
    pub vars: Value,
    /// When it was opened.
    pub created_at: Timestamp,
    /// When it last changed (a message, a turn, its variables).
    pub updated_at: Timestamp,
}

impl Conversation {
    /// A new conversation `id` of this key, opened now, without variables.
    pub fn new(
        id: impl Into<String>,
        tenant: impl Into<String>,
        agent: impl Into<String>,
        interlocutor: impl Into<String>,
        channel: impl Into<String>,
    ) -> Self {
        let now = Timestamp::now();
        Conversation {
            id: id.into(),
            tenant: tenant.into(),
            agent: agent.into(),
            interlocutor: interlocutor.into(),
            channel: channel.into(),
            vars: Value::Object(serde_json::Map::new()),
            created_at: now,
            updated_at: now,
        }
    }
}

/// One message of a conversation, from the interlocutor (`user`) or the agent (`agent`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConversationMessage {
    /// The conversation.
    pub conversation_id: String,
    /// The tenant.
    pub tenant: String,
    /// Its place in the conversation (1, 2, …), given by the store.
    pub seq: i64,
    /// `user` or `agent`.
    pub role: String,
    /// The text.
    pub text: String,
    /// Attachments as sent (a JSON array).
    pub attachments: Value,
    /// The turn group it belongs to.
    pub turn_id: String,
    /// When it arrived (or, for a reply, when the turn ended).
    pub at: Timestamp,
}

impl ConversationMessage {
    /// A message of `role` in `turn_id`, at now; `seq` is given when it is stored.
    pub fn new(
        conversation: &Conversation,
        role: impl Into<String>,
        text: impl Into<String>,
        attachments: Value,
        turn_id: impl Into<String>,
    ) -> Self {
        ConversationMessage {
            conversation_id: conversation.id.clone(),
            tenant: conversation.tenant.clone(),
            seq: 0,
            role: role.into(),
            text: text.into(),
            attachments,
            turn_id: turn_id.into(),
            at: Timestamp::now(),
        }
    }
}

/// One turn group of a conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TurnRecord {
    /// The turn group's id.
    pub turn_id: String,
    /// The conversation.
    pub conversation_id: String,
    /// The tenant.
    pub tenant: String,
    /// `gathering`, `running`, `queued`, or the last attempt's run status once it ended
    /// (`completed`, `failed`, `cancelled`).
    pub status: String,
    /// Attempts so far (1 + supersedes).
    pub attempts: i64,
    /// Messages in the turn.
    pub messages: i64,
    /// The reply, once completed.
    pub reply: Option<String>,
    /// The latest attempt's engine session.
    pub run_session_id: Option<String>,
    /// When its first message arrived.
    pub started_at: Timestamp,
    /// When it ended.
    pub ended_at: Option<Timestamp>,
}

impl TurnRecord {
    /// A turn of `conversation` that starts now, gathering its first message.
    pub fn new(conversation: &Conversation, turn_id: impl Into<String>) -> Self {
        TurnRecord {
            turn_id: turn_id.into(),
            conversation_id: conversation.id.clone(),
            tenant: conversation.tenant.clone(),
            status: "gathering".into(),
            attempts: 0,
            messages: 0,
            reply: None,
            run_session_id: None,
            started_at: Timestamp::now(),
            ended_at: None,
        }
    }
}

/// Conversations, their messages and turns.
///
/// # Example
///
/// ```no_run
/// # async fn demo(store: &dyn rvbbit_store::ConversationStore) -> rvbbit_store::Result<()> {
/// use rvbbit_store::{Conversation, ConversationMessage};
/// let c = store
///     .conversation_open(&Conversation::new("conv-1", "acme", "travel", "u-17", "web"))
///     .await?;
/// let m = ConversationMessage::new(&c, "user", "Book Paris", serde_json::json!([]), "turn-1");
/// store.message_add(&m).await?;
/// assert_eq!(store.messages("acme", &c.id, 10).await?.len(), 1);
/// # Ok(()) }
/// ```
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// The conversation of `fresh`'s key (tenant, agent, interlocutor, channel): the stored one when
    /// it exists, else `fresh`, stored now.
    async fn conversation_open(&self, fresh: &Conversation) -> Result<Conversation>;

    /// The conversation `id` of `tenant` (`None`: no such conversation for this tenant).
    async fn conversation(&self, tenant: &str, id: &str) -> Result<Option<Conversation>>;

    /// The conversations of `tenant` with `agent`, the most recently changed first, at most `limit`.
    async fn conversations(&self, tenant: &str, agent: &str, limit: u64) -> Result<Vec<Conversation>>;

    /// Replace a conversation's variables.
    async fn conversation_vars(&self, id: &str, vars: &Value, at: Timestamp) -> Result<()>;

    /// Append a message (its `seq` is the next of the conversation).
    async fn message_add(&self, message: &ConversationMessage) -> Result<()>;

    /// The latest `last` messages of a conversation of `tenant`, oldest first.
    async fn messages(&self, tenant: &str, id: &str, last: u64) -> Result<Vec<ConversationMessage>>;

    /// Insert or replace a turn (by its id).
    async fn turn_put(&self, turn: &TurnRecord) -> Result<()>;

    /// The latest `last` turns of a conversation of `tenant`, oldest first.
    async fn turns(&self, tenant: &str, id: &str, last: u64) -> Result<Vec<TurnRecord>>;
}
