//! Conversations, their messages and turns in SQLite (see [`crate::conversations`]).

use async_trait::async_trait;
use rusqlite::{Row, params};
use rvbbit_core::Timestamp;
use serde_json::Value;

use super::{Fail, SqliteStore, corrupt};
use crate::conversations::{Conversation, ConversationMessage, ConversationStore, TurnRecord};
use crate::error::Result;

const CONVERSATION: &str =
    "SELECT conversation_id, tenant, agent, interlocutor, channel, vars, created_at_us,
    updated_at_us FROM conversations";
const TURN: &str = "SELECT turn_id, conversation_id, tenant, status, attempts, messages, reply,
    run_session_id, started_at_us, ended_at_us FROM conversation_turns";

fn json(url: &str, what: &'static str, text: &str) -> Result<Value, Fail> {
    serde_json::from_str(text).map_err(|e| corrupt(url, what, e))
}

fn conversation(url: &str, r: &Row<'_>) -> Result<Conversation, Fail> {
    let vars: String = r.get(5)?;
    Ok(Conversation {
        id: r.get(0)?,
        tenant: r.get(1)?,
        agent: r.get(2)?,
        interlocutor: r.get(3)?,
        channel: r.get(4)?,
        vars: json(url, "conversation", &vars)?,
        created_at: Timestamp::from_micros(r.get(6)?),
        updated_at: Timestamp::from_micros(r.get(7)?),
    })
}

fn message(url: &str, r: &Row<'_>) -> Result<ConversationMessage, Fail> {
    let attachments: String = r.get(5)?;
    Ok(ConversationMessage {
        conversation_id: r.get(0)?,
        tenant: r.get(1)?,
        seq: r.get(2)?,
        role: r.get(3)?,
        text: r.get(4)?,
        attachments: json(url, "conversation message", &attachments)?,
        turn_id: r.get(6)?,
        at: Timestamp::from_micros(r.get(7)?),
    })
}

fn turn(r: &Row<'_>) -> Result<TurnRecord, Fail> {
    Ok(TurnRecord {
        turn_id: r.get(0)?,
        conversation_id: r.get(1)?,
        tenant: r.get(2)?,
        status: r.get(3)?,
        attempts: r.get(4)?,
        messages: r.get(5)?,
        reply: r.get(6)?,
        run_session_id: r.get(7)?,
        started_at: Timestamp::from_micros(r.get(8)?),
        ended_at: r.get::<_, Option<i64>>(9)?.map(Timestamp::from_micros),
    })
}

#[async_trait]
impl ConversationStore for SqliteStore {
    async fn conversation_open(&self, fresh: &Conversation) -> Result<Conversation> {
        let c = fresh.clone();
        self.with_conn("open a conversation", move |conn, url| {
            conn.execute(
                "INSERT INTO conversations (conversation_id, tenant, agent, interlocutor, channel, vars,
                 created_at_us, updated_at_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (tenant, agent, interlocutor, channel) DO NOTHING",
                params![
                    c.id,
                    c.tenant,
                    c.agent,
                    c.interlocutor,
                    c.channel,
                    c.vars.to_string(),
                    c.created_at.micros(),
                    c.updated_at.micros()
                ],
            )?;
            let sql = format!(
                "{CONVERSATION} WHERE tenant = ?1 AND agent = ?2 AND interlocutor = ?3 AND channel = ?4"
            );
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query(params![c.tenant, c.agent, c.interlocutor, c.channel])?;
            match rows.next()? {
                Some(r) => conversation(url, r),
                None => Err(corrupt(url, "conversation", "the row just opened is missing")),
            }
        })
        .await
    }

    async fn conversation(&self, tenant: &str, id: &str) -> Result<Option<Conversation>> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        self.with_conn("read a conversation", move |conn, url| {
            let sql = format!("{CONVERSATION} WHERE conversation_id = ?1 AND tenant = ?2");
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query(params![id, tenant])?;
            rows.next()?.map(|r| conversation(url, r)).transpose()
        })
        .await
    }

    async fn conversations(&self, tenant: &str, agent: &str, limit: u64) -> Result<Vec<Conversation>> {
        let (tenant, agent) = (tenant.to_owned(), agent.to_owned());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_conn("list conversations", move |conn, url| {
            let sql = format!(
                "{CONVERSATION} WHERE tenant = ?1 AND agent = ?2
                 ORDER BY updated_at_us DESC, conversation_id LIMIT ?3"
            );
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query(params![tenant, agent, limit])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(conversation(url, r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn conversation_vars(&self, id: &str, vars: &Value, at: Timestamp) -> Result<()> {
        let (id, vars) = (id.to_owned(), vars.to_string());
        self.with_conn("set a conversation's variables", move |conn, _| {
            conn.execute(
                "UPDATE conversations SET vars = ?2, updated_at_us = ?3 WHERE conversation_id = ?1",
                params![id, vars, at.micros()],
            )?;
            Ok(())
        })
        .await
    }

    async fn message_add(&self, m: &ConversationMessage) -> Result<()> {
        let m = m.clone();
        self.with_conn("add a conversation message", move |conn, _| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO conversation_messages (conversation_id, seq, tenant, role, text, attachments,
                 turn_id, at_us) VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM conversation_messages
                 WHERE conversation_id = ?1), ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    m.conversation_id,
                    m.tenant,
                    m.role,
                    m.text,
                    m.attachments.to_string(),
                    m.turn_id,
                    m.at.micros()
                ],
            )?;
            tx.execute(
                "UPDATE conversations SET updated_at_us = max(updated_at_us, ?2) WHERE conversation_id = ?1",
                params![m.conversation_id, m.at.micros()],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn messages(&self, tenant: &str, id: &str, last: u64) -> Result<Vec<ConversationMessage>> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        let last = i64::try_from(last).unwrap_or(i64::MAX);
        self.with_conn("read conversation messages", move |conn, url| {
            let mut stmt = conn.prepare(
                "SELECT * FROM (SELECT conversation_id, tenant, seq, role, text, attachments, turn_id, at_us
                 FROM conversation_messages WHERE conversation_id = ?1 AND tenant = ?2
                 ORDER BY seq DESC LIMIT ?3) ORDER BY seq",
            )?;
            let mut rows = stmt.query(params![id, tenant, last])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(message(url, r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn turn_put(&self, t: &TurnRecord) -> Result<()> {
        let t = t.clone();
        self.with_conn("record a turn", move |conn, _| {
            conn.execute(
                "INSERT INTO conversation_turns (turn_id, conversation_id, tenant, status, attempts, messages,
                 reply, run_session_id, started_at_us, ended_at_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (turn_id) DO UPDATE SET status = excluded.status, attempts = excluded.attempts,
                 messages = excluded.messages, reply = excluded.reply,
                 run_session_id = excluded.run_session_id, ended_at_us = excluded.ended_at_us",
                params![
                    t.turn_id,
                    t.conversation_id,
                    t.tenant,
                    t.status,
                    t.attempts,
                    t.messages,
                    t.reply,
                    t.run_session_id,
                    t.started_at.micros(),
                    t.ended_at.map(Timestamp::micros)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn turns(&self, tenant: &str, id: &str, last: u64) -> Result<Vec<TurnRecord>> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        let last = i64::try_from(last).unwrap_or(i64::MAX);
        self.with_conn("read conversation turns", move |conn, _| {
            let sql = format!(
                "SELECT * FROM ({TURN} WHERE conversation_id = ?1 AND tenant = ?2
                 ORDER BY started_at_us DESC, turn_id DESC LIMIT ?3) ORDER BY started_at_us, turn_id"
            );
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query(params![id, tenant, last])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(turn(r)?);
            }
            Ok(out)
        })
        .await
    }
}
