//! Versioned schema migrations for PostgreSQL. Each step runs in its own transaction under a
//! transaction-scoped advisory lock, so many processes opening one new database at once apply each step
//! exactly once; a failing step rolls back whole (PostgreSQL's DDL is transactional), so no partial
//! migration is ever left. A database whose schema is newer than this build is refused before anything
//! is written.
//!
//! The versions are this backend's own (the SQLite file has its own history); both hold the same
//! records.

use deadpool_postgres::Object;

use super::fail;
use crate::error::{Error, Result};

/// One migration step.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

/// The advisory lock key migrations hold (`rvbbit` in ASCII).
const LOCK_KEY: i64 = 0x7276_6262_6974;

/// Every migration, oldest first. Append only: never edit a released step.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: r#"
CREATE TABLE events (
    store_seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id BYTEA NOT NULL UNIQUE,
    seq BIGINT NOT NULL,
    ts_us BIGINT NOT NULL,
    kind TEXT NOT NULL,
    session_id TEXT NOT NULL,
    parent_session_id TEXT,
    root_session_id TEXT NOT NULL,
    caller_id TEXT,
    invocation_metadata JSONB NOT NULL,
    cascade_id TEXT,
    cell_name TEXT,
    trace_id TEXT,
    parent_trace_id TEXT,
    depth BIGINT NOT NULL,
    candidate_index INTEGER,
    attempt INTEGER,
    turn INTEGER,
    model TEXT,
    model_requested TEXT,
    provider TEXT,
    request_id TEXT,
    tokens_in BIGINT,
    tokens_out BIGINT,
    tokens_reasoning BIGINT,
    tokens_cached BIGINT,
    cost_micro_usd BIGINT,
    cost_status TEXT NOT NULL,
    duration_us BIGINT,
    content JSONB NOT NULL,
    request JSONB,
    response JSONB,
    error JSONB,
    metadata JSONB NOT NULL
);
CREATE INDEX events_session ON events (session_id, store_seq);
CREATE INDEX events_ts ON events (ts_us);
CREATE INDEX events_priced ON events (ts_us, session_id, model, cascade_id, caller_id, kind)
    INCLUDE (tokens_in, tokens_out, cost_micro_usd)
    WHERE (cost_micro_usd IS NOT NULL OR tokens_in IS NOT NULL OR tokens_out IS NOT NULL
           OR kind IN ('llm_response', 'llm_error'));
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    cascade_id TEXT,
    parent_session_id TEXT,
    root_session_id TEXT NOT NULL,
    caller_id TEXT,
    invocation_metadata JSONB NOT NULL,
    depth BIGINT NOT NULL,
    status TEXT NOT NULL,
    current_cell TEXT,
    input JSONB NOT NULL,
    output JSONB,
    error TEXT,
    cascade_file TEXT,
    cascade_text TEXT,
    cascade_hash TEXT,
    started_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    ended_at_us BIGINT,
    heartbeat_at_us BIGINT NOT NULL,
    cancel_requested BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX sessions_started ON sessions (started_at_us);
CREATE INDEX sessions_status ON sessions (status, heartbeat_at_us);
CREATE TABLE result_cache (
    key TEXT PRIMARY KEY,
    value JSONB NOT NULL,
    created_at_us BIGINT NOT NULL,
    expires_at_us BIGINT,
    hits BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE signals (
    signal_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    session_id TEXT,
    created_at_us BIGINT NOT NULL,
    fired_at_us BIGINT,
    timeout_at_us BIGINT,
    payload JSONB,
    source TEXT
);
CREATE INDEX signals_name ON signals (name, status);
CREATE TABLE checkpoints (
    checkpoint_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    cascade_id TEXT,
    cell_name TEXT NOT NULL,
    checkpoint_type TEXT NOT NULL,
    status TEXT NOT NULL,
    signal_name TEXT NOT NULL,
    signal_id TEXT,
    ui_spec JSONB NOT NULL,
    continuation JSONB NOT NULL,
    response JSONB,
    created_at_us BIGINT NOT NULL,
    responded_at_us BIGINT,
    timeout_at_us BIGINT
);
CREATE INDEX checkpoints_session ON checkpoints (session_id, status);
CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at_us BIGINT NOT NULL,
    revoked_at_us BIGINT,
    last_used_at_us BIGINT
);
"#,
    },
    Migration {
        version: 2,
        name: "journal",
        // Durable execution of queue jobs: the steps a run completed (so a redelivered job continues
        // after them) and its side effects under idempotency keys (crate::journal).
        sql: r#"
CREATE TABLE journal (
    run_key TEXT NOT NULL,
    step BIGINT NOT NULL,
    session_id TEXT NOT NULL,
    cell_name TEXT NOT NULL,
    continuation JSONB NOT NULL,
    created_at_us BIGINT NOT NULL,
    PRIMARY KEY (run_key, step)
);
CREATE INDEX journal_created ON journal (created_at_us);
CREATE TABLE effects (
    effect_key TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    cell_name TEXT NOT NULL,
    tool TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    result JSONB,
    started_at_us BIGINT NOT NULL,
    finished_at_us BIGINT
);
CREATE INDEX effects_started ON effects (started_at_us);
"#,
    },
    Migration {
        version: 3,
        name: "workers",
        // The registry of queue workers and their heartbeats (crate::workers).
        sql: r#"
CREATE TABLE workers (
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    tags JSONB NOT NULL,
    slots BIGINT NOT NULL,
    in_flight BIGINT NOT NULL,
    settled BIGINT NOT NULL,
    state TEXT NOT NULL,
    started_at_us BIGINT NOT NULL,
    heartbeat_at_us BIGINT NOT NULL
);
CREATE INDEX workers_heartbeat ON workers (heartbeat_at_us);
"#,
    },
    Migration {
        version: 4,
        name: "batches",
        // Records of `rvbbit batch` runs (crate::batches).
        sql: r#"
CREATE TABLE batches (
    batch_id TEXT PRIMARY KEY,
    cascade_id TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    body JSONB NOT NULL
);
CREATE INDEX batches_started ON batches (started_at_us);
"#,
    },
    Migration {
        version: 5,
        name: "spend_limits",
        // Spending limits per caller or tenant per UTC day or month (crate::limits).
        sql: r#"
CREATE TABLE spend_limits (
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    period TEXT NOT NULL,
    amount_micro_usd BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    PRIMARY KEY (scope, name, period)
);
"#,
    },
    Migration {
        version: 6,
        name: "conversations",
        // Conversations of agents, their messages and turns, each row with its tenant
        // (crate::conversations); the tenant of an API key.
        sql: r#"
CREATE TABLE conversations (
    conversation_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    agent TEXT NOT NULL,
    interlocutor TEXT NOT NULL,
    channel TEXT NOT NULL,
    vars TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    UNIQUE (tenant, agent, interlocutor, channel)
);
CREATE INDEX conversations_recent ON conversations (tenant, agent, updated_at_us);
CREATE TABLE conversation_messages (
    conversation_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    role TEXT NOT NULL,
    text TEXT NOT NULL,
    attachments TEXT NOT NULL,
    turn_id TEXT NOT NULL,
    at_us BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE TABLE conversation_turns (
    turn_id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    messages BIGINT NOT NULL,
    reply TEXT,
    run_session_id TEXT,
    started_at_us BIGINT NOT NULL,
    ended_at_us BIGINT
);
CREATE INDEX conversation_turns_by_conversation ON conversation_turns (conversation_id, started_at_us);
ALTER TABLE api_keys ADD COLUMN tenant TEXT;
"#,
    },
    Migration {
        version: 7,
        name: "channel_identities",
        // Chat identities per tenant and the verified facts linking them across channels
        // (crate::channels).
        sql: r#"
CREATE TABLE channel_identities (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    integration TEXT NOT NULL,
    user_id TEXT NOT NULL,
    interlocutor TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    PRIMARY KEY (tenant, kind, integration, user_id)
);
CREATE TABLE channel_links (
    tenant TEXT NOT NULL,
    fact TEXT NOT NULL,
    interlocutor TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    PRIMARY KEY (tenant, fact)
);
"#,
    },
    Migration {
        version: 8,
        name: "channel_integrations",
        // Chat integrations configured through the HTTP API (crate::channels).
        sql: r#"
CREATE TABLE channel_integrations (
    name TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    config TEXT NOT NULL,
    updated_at_us BIGINT NOT NULL
);
"#,
    },
];

/// The newest schema version this build knows.
pub(crate) fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

const BOOKKEEPING: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at_us BIGINT NOT NULL)";

/// The schema version in the store (0 when empty).
pub(crate) async fn current(c: &impl deadpool_postgres::GenericClient, url: &str) -> Result<i64> {
    let action = "read its schema version";
    let exists: bool = c
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .map_err(|e| fail(url, action, e))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(
        c.query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[])
            .await
            .map_err(|e| fail(url, action, e))?
            .get(0),
    )
}

/// Apply every pending migration; returns the names applied.
pub(crate) async fn apply(c: &mut Object, url: &str) -> Result<Vec<String>> {
    let action = "migrate its schema";
    // Cheap path: a store at the latest version needs no lock and no transaction.
    let version = current(&*c, url).await?;
    if version > latest() {
        return Err(Error::SchemaTooNew {
            url: url.to_owned(),
            found: version,
            known: latest(),
        });
    }
    if version == latest() {
        return Ok(Vec::new());
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS {
        let tx = c.transaction().await.map_err(|e| fail(url, action, e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await
            .map_err(|e| fail(url, action, e))?;
        tx.batch_execute(BOOKKEEPING)
            .await
            .map_err(|e| fail(url, action, e))?;
        let version = current(&tx, url).await?;
        if version > latest() {
            return Err(Error::SchemaTooNew {
                url: url.to_owned(),
                found: version,
                known: latest(),
            });
        }
        if version >= m.version {
            continue;
        }
        tx.batch_execute(m.sql).await.map_err(|e| Error::Migration {
            url: url.to_owned(),
            version: m.version,
            name: m.name,
            source: Box::new(e),
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at_us) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &rvbbit_core::Timestamp::now().micros()],
        )
        .await
        .map_err(|e| fail(url, action, e))?;
        tx.commit().await.map_err(|e| fail(url, action, e))?;
        applied.push(format!("{:04}_{}", m.version, m.name));
    }
    Ok(applied)
}

/// Names of migrations newer than `version`.
pub(crate) fn pending(version: i64) -> Vec<String> {
    MIGRATIONS
        .iter()
        .filter(|m| m.version > version)
        .map(|m| format!("{:04}_{}", m.version, m.name))
        .collect()
}
