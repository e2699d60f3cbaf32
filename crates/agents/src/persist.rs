//! A conversation's rows in the store ([`rvbbit_store::ConversationStore`]): the conversation, its
//! messages and its turns, each with the tenant. A store that fails is a warning in the log: the turn
//! goes on, and its events still say what happened.

use std::collections::VecDeque;
use std::sync::Arc;

use rvbbit_core::{SessionId, Timestamp};
use rvbbit_store::{Conversation, ConversationMessage, Store, TurnRecord};
use serde_json::{Map, Value, json};

use crate::key::ConversationKey;

/// The store side of one conversation.
#[derive(Clone)]
pub(crate) struct Rows {
    store: Arc<dyn Store>,
    pub(crate) conversation: Conversation,
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows")
            .field("conversation", &self.conversation.id)
            .finish_non_exhaustive()
    }
}

/// What a conversation had before this task: its id, history and variables.
pub(crate) struct Loaded {
    pub(crate) rows: Rows,
    pub(crate) history: VecDeque<Value>,
    pub(crate) vars: Map<String, Value>,
}

/// Open (or create, as `fresh_id`) the conversation of `key` and read its latest `history` messages.
pub(crate) async fn open(
    store: Arc<dyn Store>,
    key: &ConversationKey,
    fresh_id: &SessionId,
    history: usize,
) -> Option<Loaded> {
    let fresh = Conversation::new(
        fresh_id.as_str(),
        &key.tenant,
        &key.agent,
        &key.interlocutor,
        &key.channel,
    );
    let conversation = match store.conversation_open(&fresh).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(conversation_key = %key, error = %e, "The conversation cannot be opened in the store; it is kept in memory only.");
            return None;
        }
    };
    let last = u64::try_from(history).unwrap_or(u64::MAX);
    let messages = store
        .messages(&key.tenant, &conversation.id, last)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(conversation_key = %key, error = %e, "The conversation's history cannot be read.");
            Vec::new()
        });
    let history = messages
        .into_iter()
        .map(|m| json!({"role": m.role, "text": m.text, "turn_group": m.turn_id}))
        .collect();
    let vars = conversation.vars.as_object().cloned().unwrap_or_default();
    Some(Loaded {
        rows: Rows { store, conversation },
        history,
        vars,
    })
}

impl Rows {
    pub(crate) async fn message(&self, role: &str, text: &str, attachments: &[Value], turn: &str) {
        let m = ConversationMessage::new(
            &self.conversation,
            role,
            text,
            Value::Array(attachments.to_vec()),
            turn,
        );
        if let Err(e) = self.store.message_add(&m).await {
            tracing::warn!(conversation_id = %self.conversation.id, error = %e, "A conversation message was not stored.");
        }
    }

    pub(crate) async fn turn(&self, update: TurnUpdate<'_>) {
        let mut t = TurnRecord::new(&self.conversation, update.turn_id);
        t.started_at = update.started_at;
        t.status = update.status.to_owned();
        t.attempts = i64::from(update.attempts);
        t.messages = i64::try_from(update.messages).unwrap_or(i64::MAX);
        t.reply = update.reply.map(str::to_owned);
        t.run_session_id = update.run_session_id.map(str::to_owned);
        t.ended_at = update.ended.then(Timestamp::now);
        if let Err(e) = self.store.turn_put(&t).await {
            tracing::warn!(conversation_id = %self.conversation.id, error = %e, "A turn was not stored.");
        }
    }

    pub(crate) async fn vars(&self, vars: &Map<String, Value>) {
        let v = Value::Object(vars.clone());
        if let Err(e) = self
            .store
            .conversation_vars(&self.conversation.id, &v, Timestamp::now())
            .await
        {
            tracing::warn!(conversation_id = %self.conversation.id, error = %e, "The conversation's variables were not stored.");
        }
    }
}

/// One state of a turn, for [`Rows::turn`].
pub(crate) struct TurnUpdate<'a> {
    pub(crate) turn_id: &'a str,
    pub(crate) started_at: Timestamp,
    pub(crate) status: &'a str,
    pub(crate) attempts: u32,
    pub(crate) messages: usize,
    pub(crate) reply: Option<&'a str>,
    pub(crate) run_session_id: Option<&'a str>,
    pub(crate) ended: bool,
}
