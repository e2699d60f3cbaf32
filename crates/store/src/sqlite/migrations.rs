//! Versioned schema migrations, applied in order inside one `BEGIN IMMEDIATE` transaction each, so many
//! processes opening the same store at once apply each migration exactly once.

use rusqlite::{Connection, TransactionBehavior};

use super::Fail;
use crate::error::Error;

/// One migration step.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

/// Every migration, oldest first. Append only: never edit a released step.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: r#"
CREATE TABLE events (
    store_seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id BLOB NOT NULL UNIQUE,
    seq INTEGER NOT NULL,
    ts_us INTEGER NOT NULL,
    kind TEXT NOT NULL,
    session_id TEXT NOT NULL,
    parent_session_id TEXT,
    root_session_id TEXT NOT NULL,
    caller_id TEXT,
    invocation_metadata TEXT NOT NULL,
    cascade_id TEXT,
    cell_name TEXT,
    trace_id TEXT,
    parent_trace_id TEXT,
    depth INTEGER NOT NULL,
    candidate_index INTEGER,
    attempt INTEGER,
    turn INTEGER,
    model TEXT,
    model_requested TEXT,
    provider TEXT,
    request_id TEXT,
    tokens_in INTEGER,
    tokens_out INTEGER,
    tokens_reasoning INTEGER,
    tokens_cached INTEGER,
    cost_micro_usd INTEGER,
    cost_status TEXT NOT NULL,
    duration_us INTEGER,
    content TEXT NOT NULL,
    request TEXT,
    response TEXT,
    error TEXT,
    metadata TEXT NOT NULL
);
CREATE INDEX events_session ON events (session_id, store_seq);
CREATE INDEX events_ts ON events (ts_us);
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    cascade_id TEXT,
    parent_session_id TEXT,
    root_session_id TEXT NOT NULL,
    caller_id TEXT,
    invocation_metadata TEXT NOT NULL,
    depth INTEGER NOT NULL,
    status TEXT NOT NULL,
    current_cell TEXT,
    input TEXT NOT NULL,
    output TEXT,
    error TEXT,
    cascade_file TEXT,
    cascade_text TEXT,
    cascade_hash TEXT,
    started_at_us INTEGER NOT NULL,
    updated_at_us INTEGER NOT NULL,
    ended_at_us INTEGER,
    heartbeat_at_us INTEGER NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_started ON sessions (started_at_us);
CREATE INDEX sessions_status ON sessions (status, heartbeat_at_us);
CREATE TABLE result_cache (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at_us INTEGER NOT NULL,
    expires_at_us INTEGER,
    hits INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE signals (
    signal_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    session_id TEXT,
    created_at_us INTEGER NOT NULL,
    fired_at_us INTEGER,
    timeout_at_us INTEGER,
    payload TEXT,
    source TEXT
);
CREATE INDEX signals_name ON signals (name, status);
"#,
    },
    Migration {
        version: 2,
        name: "priced_events_index",
        // A partial covering index over the events that carry cost or tokens, so cost totals read a
        // narrow index instead of every row with its JSON content.
        sql: r#"
CREATE INDEX events_priced ON events (ts_us, session_id, model, cascade_id, caller_id, kind, tokens_in, tokens_out,
    cost_micro_usd)
    WHERE (cost_micro_usd IS NOT NULL OR tokens_in IS NOT NULL OR tokens_out IS NOT NULL
           OR kind IN ('llm_response', 'llm_error'));
"#,
    },
    Migration {
        version: 3,
        name: "checkpoints",
        // Human-in-the-loop waits with the continuation that lets `rvbbit resume` finish a run after its
        // process exited (OBSERVABILITY.md §7, Proposed).
        sql: r#"
CREATE TABLE checkpoints (
    checkpoint_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    cascade_id TEXT,
    cell_name TEXT NOT NULL,
    checkpoint_type TEXT NOT NULL,
    status TEXT NOT NULL,
    signal_name TEXT NOT NULL,
    signal_id TEXT,
    ui_spec TEXT NOT NULL,
    continuation TEXT NOT NULL,
    response TEXT,
    created_at_us INTEGER NOT NULL,
    responded_at_us INTEGER,
    timeout_at_us INTEGER
);
CREATE INDEX checkpoints_session ON checkpoints (session_id, status);
"#,
    },
    Migration {
        version: 4,
        name: "api_keys",
        sql: r#"
CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at_us INTEGER NOT NULL,
    revoked_at_us INTEGER,
    last_used_at_us INTEGER
);
"#,
    },
    Migration {
        version: 5,
        name: "journal",
        // Durable execution of queue jobs: the steps a run completed (so a redelivered job continues
        // after them) and its side effects under idempotency keys (crate::journal).
        sql: r#"
CREATE TABLE journal (
    run_key TEXT NOT NULL,
    step INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    cell_name TEXT NOT NULL,
    continuation TEXT NOT NULL,
    created_at_us INTEGER NOT NULL,
    PRIMARY KEY (run_key, step)
);
CREATE INDEX journal_created ON journal (created_at_us);
CREATE TABLE effects (
    effect_key TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    cell_name TEXT NOT NULL,
    tool TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    result TEXT,
    started_at_us INTEGER NOT NULL,
    finished_at_us INTEGER
);
CREATE INDEX effects_started ON effects (started_at_us);
"#,
    },
    Migration {
        version: 6,
        name: "workers",
        // The registry of queue workers and their heartbeats (crate::workers).
        sql: r#"
CREATE TABLE workers (
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    tags TEXT NOT NULL,
    slots INTEGER NOT NULL,
    in_flight INTEGER NOT NULL,
    settled INTEGER NOT NULL,
    state TEXT NOT NULL,
    started_at_us INTEGER NOT NULL,
    heartbeat_at_us INTEGER NOT NULL
);
CREATE INDEX workers_heartbeat ON workers (heartbeat_at_us);
"#,
    },
    Migration {
        version: 7,
        name: "batches",
        // Records of `rvbbit batch` runs (crate::batches).
        sql: r#"
CREATE TABLE batches (
    batch_id TEXT PRIMARY KEY,
    cascade_id TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at_us INTEGER NOT NULL,
    updated_at_us INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX batches_started ON batches (started_at_us);
"#,
    },
    Migration {
        version: 8,
        name: "spend_limits",
        // Spending limits per caller or tenant per UTC day or month (crate::limits).
        sql: r#"
CREATE TABLE spend_limits (
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    period TEXT NOT NULL,
    amount_micro_usd INTEGER NOT NULL,
    updated_at_us INTEGER NOT NULL,
    PRIMARY KEY (scope, name, period)
);
"#,
    },
    Migration {
        version: 9,
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
    created_at_us INTEGER NOT NULL,
    updated_at_us INTEGER NOT NULL,
    UNIQUE (tenant, agent, interlocutor, channel)
);
CREATE INDEX conversations_recent ON conversations (tenant, agent, updated_at_us);
CREATE TABLE conversation_messages (
    conversation_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    role TEXT NOT NULL,
    text TEXT NOT NULL,
    attachments TEXT NOT NULL,
    turn_id TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE TABLE conversation_turns (
    turn_id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    messages INTEGER NOT NULL,
    reply TEXT,
    run_session_id TEXT,
    started_at_us INTEGER NOT NULL,
    ended_at_us INTEGER
);
CREATE INDEX conversation_turns_by_conversation ON conversation_turns (conversation_id, started_at_us);
ALTER TABLE api_keys ADD COLUMN tenant TEXT;
"#,
    },
    Migration {
        version: 10,
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
    created_at_us INTEGER NOT NULL,
    PRIMARY KEY (tenant, kind, integration, user_id)
);
CREATE TABLE channel_links (
    tenant TEXT NOT NULL,
    fact TEXT NOT NULL,
    interlocutor TEXT NOT NULL,
    created_at_us INTEGER NOT NULL,
    PRIMARY KEY (tenant, fact)
);
"#,
    },
    Migration {
        version: 11,
        name: "channel_integrations",
        // Chat integrations configured through the HTTP API (crate::channels).
        sql: r#"
CREATE TABLE channel_integrations (
    name TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    config TEXT NOT NULL,
    updated_at_us INTEGER NOT NULL
);
"#,
    },
];

/// The newest schema version this build knows.
pub(crate) fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

const BOOKKEEPING: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_us INTEGER NOT NULL)";

/// The schema version in the store (0 when empty).
pub(crate) fn current(conn: &Connection) -> Result<i64, Fail> {
    let exists: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
        [],
        |r| r.get(0),
    )?;
    if exists == 0 {
        return Ok(0);
    }
    Ok(conn.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?)
}

/// Apply every pending migration; returns the names applied.
pub(crate) fn apply(conn: &mut Connection, url: &str) -> Result<Vec<String>, Fail> {
    // The common case at start-up: the schema is current. One read and one empty write transaction
    // instead of one per migration (issue 21). The empty transaction stays: it takes the write lock, so
    // a store locked by another process is reported busy when it is opened (the run then spills from
    // the start) rather than at its first write.
    if current(conn)? == latest() {
        conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")?;
        return Ok(Vec::new());
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(BOOKKEEPING)?;
        let version = current(&tx)?;
        if version > latest() {
            return Err(Fail::Store(Error::SchemaTooNew {
                url: url.to_owned(),
                found: version,
                known: latest(),
            }));
        }
        if version >= m.version {
            continue;
        }
        tx.execute_batch(m.sql).map_err(|e| {
            Fail::Store(Error::Migration {
                url: url.to_owned(),
                version: m.version,
                name: m.name,
                source: Box::new(e),
            })
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at_us) VALUES (?1, ?2, ?3)",
            rusqlite::params![m.version, m.name, rvbbit_core::Timestamp::now().micros()],
        )?;
        tx.commit()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at_version_1() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(BOOKKEEPING).unwrap();
        c.execute_batch(MIGRATIONS[0].sql).unwrap();
        c.execute(
            "INSERT INTO schema_migrations (version, name, applied_at_us) VALUES (1, 'initial', 0)",
            [],
        )
        .unwrap();
        c
    }

    #[test]
    fn an_older_store_is_brought_forward_step_by_step() {
        let mut c = at_version_1();
        let expected = vec![
            "0002_priced_events_index".to_owned(),
            "0003_checkpoints".to_owned(),
            "0004_api_keys".to_owned(),
            "0005_journal".to_owned(),
            "0006_workers".to_owned(),
            "0007_batches".to_owned(),
            "0008_spend_limits".to_owned(),
            "0009_conversations".to_owned(),
            "0010_channel_identities".to_owned(),
            "0011_channel_integrations".to_owned(),
        ];
        assert_eq!(pending(1), expected);
        let applied = apply(&mut c, "sqlite://mem").map_err(|_| "apply failed").unwrap();
        assert_eq!(applied, expected);
        assert_eq!(current(&c).map_err(|_| "read failed").unwrap(), latest());
        assert!(
            apply(&mut c, "sqlite://mem")
                .map_err(|_| "apply failed")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_store_from_a_newer_rvbbit_is_refused() {
        let mut c = at_version_1();
        c.execute(
            "INSERT INTO schema_migrations (version, name, applied_at_us) VALUES (99, 'future', 0)",
            [],
        )
        .unwrap();
        match apply(&mut c, "sqlite://mem") {
            Err(Fail::Store(Error::SchemaTooNew { found: 99, .. })) => {}
            other => panic!(
                "expected SchemaTooNew, got {:?}",
                other.map_err(|e| format!("{e:?}"))
            ),
        }
    }
}
