//! Audit events of chat commands, written to the store through the engine's event writer:
//! `command.attempt`, then one of `command.success`, `command.denied` or `command.failed`, under one
//! session id per attempt. `metadata` holds the integration, kind, tenant, user, command and reason.

use rvbbit_core::{Event, EventKind, SessionId};
use rvbbit_store::WriterHandle;
use serde_json::{Value, json};

/// Longest command text kept in an event, in characters.
const MAX_TEXT: usize = 1024;

/// Who sent a command, where.
#[derive(Clone, Debug)]
pub struct Who {
    /// The integration's name (`cli` for `rvbbit chat-control` without `--integration`).
    pub integration: String,
    /// Its kind (`slack`, `mattermost`, `webhook`, `cli`).
    pub kind: String,
    /// The tenant.
    pub tenant: String,
    /// The platform's user id.
    pub user: String,
    /// The user's name, when the platform sends one.
    pub user_name: Option<String>,
}

/// One attempt's audit trail.
#[derive(Debug)]
pub(crate) struct Trail {
    writer: Option<WriterHandle>,
    session: SessionId,
    metadata: Value,
    seq: i64,
}

impl Trail {
    /// Record `command.attempt` for `text` by `who` and return the trail for its outcome.
    pub(crate) async fn start(writer: Option<WriterHandle>, who: &Who, text: &str) -> Trail {
        let mut trail = Trail {
            writer,
            session: SessionId::new_woodland(),
            metadata: json!({"integration": who.integration, "kind": who.kind, "tenant": who.tenant,
                "user": who.user, "user_name": who.user_name}),
            seq: 0,
        };
        let shown: String = text.chars().take(MAX_TEXT).collect();
        trail
            .emit(EventKind::CommandAttempt, None, None, Value::String(shown))
            .await;
        trail
    }

    /// Record the outcome: `kind` is `CommandSuccess`, `CommandDenied` or `CommandFailed`.
    pub(crate) async fn end(&mut self, kind: EventKind, command: Option<&str>, reason: Option<&str>) {
        self.emit(kind, command, reason, Value::Null).await;
    }

    async fn emit(&mut self, kind: EventKind, command: Option<&str>, reason: Option<&str>, content: Value) {
        let Some(writer) = &self.writer else {
            return;
        };
        let mut e = Event::new(kind, self.session.clone(), self.seq);
        self.seq += 1;
        let mut metadata = self.metadata.clone();
        metadata["command"] = command.map_or(Value::Null, |c| Value::String(c.to_owned()));
        metadata["reason"] = reason.map_or(Value::Null, |r| Value::String(r.to_owned()));
        e.metadata = metadata;
        e.invocation_metadata = json!({"door": "chat", "tenant": self.metadata["tenant"]});
        e.content = content;
        if let Err(err) = writer.event(e).await {
            tracing::warn!(session_id = %self.session, error = %err, "A command audit event was not recorded.");
        }
    }
}
