//! Table and JSON output of every store command on a seeded store (fixed ids and times), as snapshots.

use std::path::Path;

use insta_cmd::assert_cmd_snapshot;
use rvbbit_core::event::EventId;
use rvbbit_core::{CostStatus, Event, EventKind, MicroUsd, SessionId, SessionStatus, Timestamp};
use rvbbit_store::Session;
use serde_json::json;

use crate::{filters, rvbbit};

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// Two finished sessions with cells, LLM and tool calls, and one zombie (running, stale heartbeat).
fn seed(dir: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = rvbbit_store::open("sqlite://.rvbbit/rvbbit.db", dir)
            .await
            .unwrap();
        let mut next_id = 1u128;
        let mut sessions = Vec::new();
        let mut events = Vec::new();
        for (sid, cascade, caller, model, day, status) in [
            (
                "quiet-heron-01",
                "summarise",
                "cli-calm-otter-01",
                "openai/gpt-4.1",
                "2026-01-01",
                SessionStatus::Completed,
            ),
            (
                "brave-stoat-02",
                "triage",
                "sql-bold-wren-02",
                "anthropic/claude-sonnet",
                "2026-01-02",
                SessionStatus::Failed,
            ),
            (
                "lost-vole-03",
                "triage",
                "sql-bold-wren-02",
                "anthropic/claude-sonnet",
                "2026-01-03",
                SessionStatus::Running,
            ),
        ] {
            let id: SessionId = sid.parse().unwrap();
            let t0 = at(&format!("{day}T10:00:00Z"));
            let mut s = Session::new(id.clone());
            s.cascade_id = Some(cascade.into());
            s.caller_id = Some(caller.parse().unwrap());
            s.input = json!({"text": "the quarterly report"});
            s.started_at = t0;
            s.updated_at = t0;
            s.heartbeat_at = t0;
            let mut seq = 0;
            let mut push = |kind: EventKind, cell: Option<&str>, offset_ms: i64, f: &dyn Fn(&mut Event)| {
                let mut e = Event::new(kind, id.clone(), seq);
                seq += 1;
                e.event_id = EventId::from_u128(next_id);
                next_id += 1;
                e.ts_us = t0.add_micros(offset_ms * 1000);
                e.cascade_id = Some(cascade.into());
                e.caller_id = Some(caller.parse().unwrap());
                e.cell_name = cell.map(str::to_owned);
                f(&mut e);
                events.push(e);
            };
            push(EventKind::CascadeStart, None, 0, &|e| {
                e.content = json!({"text": "the quarterly report"})
            });
            for (cell, start) in [("extract", 10), ("write", 2000)] {
                push(EventKind::CellStart, Some(cell), start, &|_| {});
                push(EventKind::Prompt, Some(cell), start + 1, &|e| {
                    e.content = json!(format!("Do the {cell} step."))
                });
                push(EventKind::LlmResponse, Some(cell), start + 900, &|e| {
                    e.model = Some(model.into());
                    e.model_requested = Some(model.into());
                    e.tokens.input = Some(1200);
                    e.tokens.output = Some(300);
                    e.cost = Some(MicroUsd::from_micros(4_250));
                    e.cost_status = CostStatus::Exact;
                    e.duration_us = Some(880_000);
                    e.request = Some(json!({"messages": [{"role": "user", "content": "Do the step."}]}));
                    e.content = json!("a draft");
                });
                push(EventKind::ToolCall, Some(cell), start + 950, &|e| {
                    e.metadata = json!({"tool": "sql_query"});
                    e.content = json!({"query": "select 1"});
                });
                push(EventKind::ToolResult, Some(cell), start + 990, &|e| {
                    e.metadata = json!({"tool": "sql_query"});
                    e.duration_us = Some(40_000);
                    e.content = json!({"rows": 1});
                });
                push(EventKind::CellComplete, Some(cell), start + 1000, &|e| {
                    e.duration_us = Some(990_000)
                });
            }
            if status != SessionStatus::Running {
                push(EventKind::CascadeComplete, None, 2100, &|e| {
                    e.content = json!("done")
                });
                let end = t0.add_micros(2_100_000);
                s.status = status;
                s.ended_at = Some(end);
                s.updated_at = end;
                s.heartbeat_at = end;
                s.output = Some(json!("done"));
                if status == SessionStatus::Failed {
                    s.error = Some("cell `write` failed: the tool timed out".into());
                }
            }
            sessions.push(s);
        }
        store.put_sessions(&sessions).await.unwrap();
        store.append(&events).await.unwrap();
    });
}

fn store_filters() -> Vec<(&'static str, &'static str)> {
    let mut f = filters();
    f.extend([
        (r"\d+ bytes", "[SIZE] bytes"),
        (r#""size_bytes": \d+"#, r#""size_bytes": "[SIZE]""#),
        (r"reachable in \d+\.\d+ ms", "reachable in [LATENCY] ms"),
        (r#""latency_ms": [0-9.e-]+"#, r#""latency_ms": "[LATENCY]""#),
    ]);
    f
}

#[test]
fn store_commands_render_tables_and_json() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    let cases: &[(&str, &[&str])] = &[
        ("db_status", &["db", "status"]),
        ("db_status_json", &["db", "status", "--output", "json"]),
        ("db_migrate", &["db", "migrate"]),
        ("sessions_list", &["sessions", "list"]),
        (
            "sessions_list_json",
            &["sessions", "list", "--output", "json", "--status", "failed"],
        ),
        (
            "sessions_list_filtered",
            &[
                "sessions",
                "list",
                "--cascade",
                "triage",
                "--since",
                "2026-01-02",
                "--until",
                "2026-01-03",
                "--limit",
                "5",
            ],
        ),
        ("sessions_show", &["sessions", "show", "brave-stoat-02"]),
        (
            "sessions_show_json",
            &["sessions", "show", "quiet-heron-01", "--output", "json"],
        ),
        ("sessions_show_missing", &["sessions", "show", "no-such-session"]),
        ("sessions_export", &["sessions", "export", "quiet-heron-01"]),
        (
            "sessions_cleanup_dry_run",
            &["sessions", "cleanup", "--dry-run", "--older-than", "1d"],
        ),
        (
            "sessions_cancel_finished",
            &["sessions", "cancel", "quiet-heron-01"],
        ),
        ("costs_summary", &["costs", "summary"]),
        ("costs_summary_json", &["costs", "summary", "--output", "json"]),
        ("costs_by_model", &["costs", "by-model"]),
        ("costs_by_cascade", &["costs", "by-cascade", "--output", "json"]),
        ("costs_by_caller", &["costs", "by-caller"]),
        (
            "costs_export_csv",
            &["costs", "export", "--format", "csv", "--by", "model"],
        ),
        ("health", &["health", "--no-provider"]),
        ("health_json", &["health", "--output", "json"]),
        ("doctor", &["doctor"]),
        ("doctor_json", &["doctor", "--output", "json"]),
        ("metrics", &["metrics", "--format", "prometheus"]),
        ("debug_trace", &["debug", "trace", "brave-stoat-02"]),
        ("debug_inputs", &["debug", "inputs", "quiet-heron-01"]),
        (
            "debug_inputs_json",
            &["debug", "inputs", "quiet-heron-01", "--output", "json"],
        ),
    ];
    for (name, args) in cases {
        insta::with_settings!({filters => store_filters(), snapshot_suffix => *name}, {
            assert_cmd_snapshot!(rvbbit(dir.path()).args(*args));
        });
    }
}

#[test]
fn cancel_kill_all_and_cleanup_change_the_store() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    let out = rvbbit(dir.path())
        .args(["sessions", "kill-all", "--output", "json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["cancel_requested"], json!(["lost-vole-03"]));
    let out = rvbbit(dir.path())
        .args(["sessions", "cleanup", "--output", "json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["cleanup"]["orphaned"], json!(["lost-vole-03"]));
    let out = rvbbit(dir.path())
        .args(["sessions", "list", "--status", "running", "--output", "json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["sessions"], json!([]));
    let out = rvbbit(dir.path())
        .args(["db", "backup", "--to", "bk"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("bk/events.jsonl"))
            .unwrap()
            .lines()
            .count(),
        41
    );
    assert_eq!(
        rvbbit(dir.path())
            .args(["db", "compact"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(0)
    );
}

/// Issue 21: `db prune --older-than` deletes finished sessions and their events, keeps the running one.
#[test]
fn db_prune_deletes_old_finished_sessions_and_keeps_running_ones() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    let prune = |extra: &[&str]| {
        let out = rvbbit(dir.path())
            .args(["db", "prune", "--older-than", "1d", "--output", "json"])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let dry = prune(&["--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["pruned"]["sessions"], 2);
    assert_eq!(dry["pruned"]["events"], 28, "14 events in each finished session");
    let done = prune(&[]);
    assert_eq!(done["pruned"], dry["pruned"]);
    assert!(done["size_bytes"].as_u64().is_some());
    let out = rvbbit(dir.path())
        .args(["sessions", "list", "--output", "json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = doc["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["session"]["session_id"].as_str())
        .collect();
    assert_eq!(ids, vec!["lost-vole-03"]);
    // Nothing older is left: a second prune deletes nothing.
    assert_eq!(prune(&[])["pruned"]["events"], 0);
}

#[test]
fn an_unopenable_store_exits_five_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the store's directory should be: the store cannot be created.
    std::fs::write(dir.path().join("blocker"), "").unwrap();
    let out = rvbbit(dir.path())
        .args(["sessions", "list"])
        .env("RVBBIT_STORE__URL", "sqlite://blocker/rvbbit.db")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RVB-S001") && err.contains("hint:"), "{err}");
}

/// The documented JSON shapes: any added, renamed or removed field fails here.
mod shapes {
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub(super) struct CostRow {
        pub(super) key: String,
        pub(super) sessions: u64,
        pub(super) calls: u64,
        pub(super) tokens_in: i64,
        pub(super) tokens_out: i64,
        pub(super) cost: i64,
        pub(super) unknown_cost: u64,
        pub(super) compute_cost: i64,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub(super) struct Costs {
        pub(super) status: String,
        pub(super) rows: Vec<CostRow>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub(super) struct Summary {
        pub(super) status: String,
        pub(super) total: Option<CostRow>,
        pub(super) by_day: Vec<CostRow>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub(super) struct HealthStore {
        pub(super) url: String,
        /// `sqlite` or `postgres`.
        pub(super) backend: String,
        /// The database server's version (`null` for the embedded file).
        pub(super) server_version: Option<String>,
        pub(super) reachable: bool,
        pub(super) latency_ms: f64,
        pub(super) schema_version: Option<i64>,
        pub(super) error: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub(super) struct HealthProvider {
        pub(super) kind: String,
        pub(super) api_key_env: String,
        pub(super) key_configured: bool,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub(super) struct Health {
        pub(super) status: String,
        pub(super) exit_code: u8,
        pub(super) store: HealthStore,
        pub(super) provider: HealthProvider,
        /// `null` without `[store.events] url`.
        pub(super) events_sink: Option<HealthSink>,
        /// `null` without `[queue] url`.
        pub(super) queue: Option<HealthQueue>,
    }

    /// The job queue (`[queue] url`): reachable, and its counts when it is.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub(super) struct HealthQueue {
        pub(super) url: String,
        pub(super) reachable: bool,
        pub(super) depth: Option<u64>,
        pub(super) in_flight: Option<u64>,
        pub(super) dead_letters: Option<u64>,
        pub(super) error: Option<String>,
    }

    /// The event sink (`[store.events] url`): reachable, how far it is, what waits in its spill.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub(super) struct HealthSink {
        pub(super) url: String,
        pub(super) reachable: bool,
        pub(super) server_version: Option<String>,
        pub(super) schema_version: Option<i64>,
        pub(super) rows: Option<u64>,
        pub(super) last_write: Option<String>,
        pub(super) lag_seconds: Option<i64>,
        pub(super) pending_events: u64,
        pub(super) error: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub(super) struct Finding {
        pub(super) check: String,
        pub(super) level: String,
        pub(super) message: String,
        pub(super) fix: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub(super) struct Doctor {
        pub(super) status: String,
        pub(super) exit_code: u8,
        pub(super) findings: Vec<Finding>,
    }
}

#[test]
fn json_outputs_have_their_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    let json = |args: &[&str]| -> Vec<u8> {
        let out = rvbbit(dir.path())
            .args(args)
            .args(["--output", "json"])
            .output()
            .unwrap();
        out.stdout
    };
    for by in ["by-model", "by-cascade", "by-caller"] {
        let doc: shapes::Costs = serde_json::from_slice(&json(&["costs", by])).unwrap();
        assert_eq!(doc.rows.iter().map(|r| r.cost).sum::<i64>(), 25_500);
    }
    let doc: shapes::Summary = serde_json::from_slice(&json(&["costs", "summary"])).unwrap();
    assert_eq!(doc.total.unwrap().calls, 6);
    assert_eq!(doc.by_day.len(), 3);
    let doc: shapes::Health = serde_json::from_slice(&json(&["health"])).unwrap();
    assert!(doc.store.reachable && !doc.provider.key_configured);
    assert!(doc.events_sink.is_none(), "no sink configured");
    assert!(doc.queue.is_none(), "no queue configured");
    assert_eq!(
        (doc.store.backend.as_str(), doc.store.server_version),
        ("sqlite", None)
    );
    let doc: shapes::Doctor = serde_json::from_slice(&json(&["doctor"])).unwrap();
    assert!(
        doc.findings
            .iter()
            .any(|f| f.fix.as_deref() == Some("rvbbit doctor --repair (marks them failed, RVB-E014)"))
    );
}
