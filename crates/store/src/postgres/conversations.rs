//! Conversations, their messages and turns in PostgreSQL (see [`crate::conversations`]).

use async_trait::async_trait;
use rvbbit_core::Timestamp;
use serde_json::Value;
use tokio_postgres::Row;

use super::{PostgresStore, corrupt};
use crate::conversations::{Conversation, ConversationMessage, ConversationStore, TurnRecord};
use crate::error::Result;

const CONVERSATION: &str =
    "SELECT conversation_id, tenant, agent, interlocutor, channel, vars, created_at_us,
    updated_at_us FROM conversations";
const TURN: &str = "SELECT turn_id, conversation_id, tenant, status, attempts, messages, reply,
    run_session_id, started_at_us, ended_at_us FROM conversation_turns";

fn json(url: &str, what: &'static str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| corrupt(url, what, e))
}

fn conversation(url: &str, r: &Row) -> Result<Conversation> {
    Ok(Conversation {
        id: r.get(0),
        tenant: r.get(1),
        agent: r.get(2),
        interlocutor: r.get(3),
        channel: r.get(4),
        vars: json(url, "conversation", r.get(5))?,
        created_at: Timestamp::from_micros(r.get(6)),
        updated_at: Timestamp::from_micros(r.get(7)),
    })
}

fn message(url: &str, r: &Row) -> Result<ConversationMessage> {
    Ok(ConversationMessage {
        conversation_id: r.get(0),
        tenant: r.get(1),
        seq: r.get(2),
        role: r.get(3),
        text: r.get(4),
        attachments: json(url, "conversation message", r.get(5))?,
        turn_id: r.get(6),
        at: Timestamp::from_micros(r.get(7)),
    })
}

fn turn(r: &Row) -> TurnRecord {
    TurnRecord {
        turn_id: r.get(0),
        conversation_id: r.get(1),
        tenant: r.get(2),
        status: r.get(3),
        attempts: r.get(4),
        messages: r.get(5),
        reply: r.get(6),
        run_session_id: r.get(7),
        started_at: Timestamp::from_micros(r.get(8)),
        ended_at: r.get::<_, Option<i64>>(9).map(Timestamp::from_micros),
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl ConversationStore for PostgresStore {
    async fn conversation_open(&self, c: &Conversation) -> Result<Conversation> {
        let action = "open a conversation";
        let client = self.client(action).await?;
        client
            .execute(
                "INSERT INTO conversations (conversation_id, tenant, agent, interlocutor, channel, vars,
                 created_at_us, updated_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (tenant, agent, interlocutor, channel) DO NOTHING",
                &[
                    &c.id,
                    &c.tenant,
                    &c.agent,
                    &c.interlocutor,
                    &c.channel,
                    &c.vars.to_string(),
                    &c.created_at.micros(),
                    &c.updated_at.micros(),
                ],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        let sql =
            format!("{CONVERSATION} WHERE tenant = $1 AND agent = $2 AND interlocutor = $3 AND channel = $4");
        let row = client
            .query_one(&sql, &[&c.tenant, &c.agent, &c.interlocutor, &c.channel])
            .await
            .map_err(|e| self.fail(action, e))?;
        conversation(&self.url, &row)
    }

    async fn conversation(&self, tenant: &str, id: &str) -> Result<Option<Conversation>> {
        let action = "read a conversation";
        let sql = format!("{CONVERSATION} WHERE conversation_id = $1 AND tenant = $2");
        let row = self
            .client(action)
            .await?
            .query_opt(&sql, &[&id, &tenant])
            .await
            .map_err(|e| self.fail(action, e))?;
        row.map(|r| conversation(&self.url, &r)).transpose()
    }

    async fn conversations(&self, tenant: &str, agent: &str, limit: u64) -> Result<Vec<Conversation>> {
        let action = "list conversations";
        let sql = format!(
            "{CONVERSATION} WHERE tenant = $1 AND agent = $2
             ORDER BY updated_at_us DESC, conversation_id LIMIT $3"
        );
        let rows = self
            .client(action)
            .await?
            .query(&sql, &[&tenant, &agent, &count(limit)])
            .await
            .map_err(|e| self.fail(action, e))?;
        rows.iter().map(|r| conversation(&self.url, r)).collect()
    }

    async fn conversation_vars(&self, id: &str, vars: &Value, at: Timestamp) -> Result<()> {
        let action = "set a conversation's variables";
        self.client(action)
            .await?
            .execute(
                "UPDATE conversations SET vars = $2, updated_at_us = $3 WHERE conversation_id = $1",
                &[&id, &vars.to_string(), &at.micros()],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        Ok(())
    }

    async fn message_add(&self, m: &ConversationMessage) -> Result<()> {
        let action = "add a conversation message";
        // One statement: the next seq and the conversation's time change together. Two writers of one
        // conversation at once would collide on the primary key and one would fail, never duplicate.
        self.client(action)
            .await?
            .execute(
                "WITH added AS (
                   INSERT INTO conversation_messages (conversation_id, seq, tenant, role, text, attachments,
                   turn_id, at_us) VALUES ($1, (SELECT coalesce(max(seq), 0) + 1 FROM conversation_messages
                   WHERE conversation_id = $1), $2, $3, $4, $5, $6, $7) RETURNING conversation_id)
                 UPDATE conversations SET updated_at_us = greatest(updated_at_us, $7)
                 WHERE conversation_id IN (SELECT conversation_id FROM added)",
                &[
                    &m.conversation_id,
                    &m.tenant,
                    &m.role,
                    &m.text,
                    &m.attachments.to_string(),
                    &m.turn_id,
                    &m.at.micros(),
                ],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        Ok(())
    }

    async fn messages(&self, tenant: &str, id: &str, last: u64) -> Result<Vec<ConversationMessage>> {
        let action = "read conversation messages";
        let rows = self
            .client(action)
            .await?
            .query(
                "SELECT * FROM (SELECT conversation_id, tenant, seq, role, text, attachments, turn_id, at_us
                 FROM conversation_messages WHERE conversation_id = $1 AND tenant = $2
                 ORDER BY seq DESC LIMIT $3) m ORDER BY seq",
                &[&id, &tenant, &count(last)],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        rows.iter().map(|r| message(&self.url, r)).collect()
    }

    async fn turn_put(&self, t: &TurnRecord) -> Result<()> {
        let action = "record a turn";
        self.client(action)
            .await?
            .execute(
                "INSERT INTO conversation_turns (turn_id, conversation_id, tenant, status, attempts, messages,
                 reply, run_session_id, started_at_us, ended_at_us)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (turn_id) DO UPDATE SET status = excluded.status, attempts = excluded.attempts,
                 messages = excluded.messages, reply = excluded.reply,
                 run_session_id = excluded.run_session_id, ended_at_us = excluded.ended_at_us",
                &[
                    &t.turn_id,
                    &t.conversation_id,
                    &t.tenant,
                    &t.status,
                    &t.attempts,
                    &t.messages,
                    &t.reply,
                    &t.run_session_id,
                    &t.started_at.micros(),
                    &t.ended_at.map(Timestamp::micros),
                ],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        Ok(())
    }

    async fn turns(&self, tenant: &str, id: &str, last: u64) -> Result<Vec<TurnRecord>> {
        let action = "read conversation turns";
        let sql = format!(
            "SELECT * FROM ({TURN} WHERE conversation_id = $1 AND tenant = $2
             ORDER BY started_at_us DESC, turn_id DESC LIMIT $3) t ORDER BY started_at_us, turn_id"
        );
        let rows = self
            .client(action)
            .await?
            .query(&sql, &[&id, &tenant, &count(last)])
            .await
            .map_err(|e| self.fail(action, e))?;
        Ok(rows.iter().map(turn).collect())
    }
}
