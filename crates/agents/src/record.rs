//! Turn events of one conversation, written through the engine's event writer: `turn.started`,
//! `turn.completed`, `turn.superseded`, `turn.message_absorbed` and `commit.reached`.
//!
//! Every event carries the conversation's session id (one per conversation, numbered by `seq`), the
//! turn group's caller id (shared with the engine runs of that turn group) and the agent's cascade id,
//! so they sit beside the runs they caused. The key and tenant are in `invocation_metadata`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use rvbbit_core::{CallerId, Event, EventKind, SessionId};
use rvbbit_store::WriterHandle;
use serde_json::{Value, json};

use crate::key::ConversationKey;

/// Writes one conversation's turn events (cheap to clone; clones share the sequence).
#[derive(Clone, Debug)]
pub(crate) struct Recorder {
    writer: Option<WriterHandle>,
    pub(crate) session_id: SessionId,
    cascade_id: String,
    invocation: Value,
    seq: Arc<AtomicI64>,
}

impl Recorder {
    pub(crate) fn new(
        writer: Option<WriterHandle>,
        session_id: SessionId,
        key: &ConversationKey,
        cascade_id: &str,
    ) -> Self {
        Recorder {
            writer,
            session_id,
            cascade_id: cascade_id.to_owned(),
            invocation: json!({
                "door": "agent", "tenant": key.tenant, "agent": key.agent,
                "interlocutor": key.interlocutor, "channel": key.channel,
                "conversation_key": key.to_string(),
            }),
            seq: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Record one event of `kind` for the turn group `caller`; `metadata` is merged over
    /// `{turn_group}`.
    pub(crate) async fn emit(
        &self,
        kind: EventKind,
        caller: &CallerId,
        turn_group: &str,
        metadata: Value,
        content: Value,
    ) {
        let Some(writer) = &self.writer else {
            return;
        };
        let seq = self.seq.fetch_add(1, Ordering::SeqCst);
        let mut e = Event::new(kind, self.session_id.clone(), seq);
        e.caller_id = Some(caller.clone());
        e.cascade_id = Some(self.cascade_id.clone());
        e.invocation_metadata = self.invocation.clone();
        let mut meta = json!({"turn_group": turn_group});
        if let (Some(m), Value::Object(extra)) = (meta.as_object_mut(), metadata) {
            m.extend(extra);
        }
        e.metadata = meta;
        e.content = content;
        if let Err(err) = writer.event(e).await {
            tracing::warn!(session_id = %self.session_id, error = %err, "A turn event was not recorded.");
        }
    }
}
