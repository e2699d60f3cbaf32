//! The magic tables over the store: `sessions`, `cascade_runs`, `checkpoints`, `signals`, and the
//! `caller_id` pushdown of `sql_query_log`.

use rvbbit_store::{Checkpoint, Signal};
use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::json;

use crate::support::{Harness, column};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_runs_with_pushed_filters() {
    let server = TestServer::start(Script::rule(|_| Reply::text("ok").cost(0.002))).await;
    let h = Harness::new(&server.base_url(), 4).await;
    let q = h.runtime.session();
    let first = q
        .execute("SELECT rvbbit_udf('Say ok', x) FROM (VALUES ('a'), ('b')) AS t(x)")
        .await
        .unwrap();
    let caller = first.caller_id.to_string();
    q.execute("SELECT rvbbit_udf('Say ok', 'c')").await.unwrap();

    let r = q
        .execute(&format!(
            "SELECT session_id, cascade_id, status, caller_id, cost_micro_usd, cost, events, duration_ms \
             FROM sessions WHERE caller_id = '{caller}' ORDER BY session_id"
        ))
        .await
        .unwrap();
    assert_eq!(r.row_count(), 2);
    assert!(
        column(&r, 0)
            .iter()
            .all(|s| s.as_deref().unwrap().starts_with("udf-"))
    );
    assert!(column(&r, 1).iter().all(|s| s.as_deref() == Some("sql_udf")));
    assert!(column(&r, 2).iter().all(|s| s.as_deref() == Some("completed")));
    assert!(column(&r, 4).iter().all(|s| s.as_deref() == Some("2000")));
    assert!(column(&r, 5).iter().all(|s| s.as_deref() == Some("0.002")));
    assert!(
        column(&r, 6)
            .iter()
            .all(|s| s.as_deref().unwrap().parse::<i64>().unwrap() > 0)
    );

    // Status and cascade filters, a session id, and a status that is not one: no rows.
    let count = |sql: String| {
        let q = &q;
        async move { column(&q.execute(&sql).await.unwrap(), 0)[0].clone().unwrap() }
    };
    assert_eq!(
        count("SELECT count(*) FROM sessions WHERE status = 'completed' AND cascade_id = 'sql_udf'".into())
            .await,
        "3"
    );
    assert_eq!(
        count("SELECT count(*) FROM sessions WHERE status = 'sleepy'".into()).await,
        "0"
    );
    let one = column(&r, 0)[0].clone().unwrap();
    assert_eq!(
        count(format!(
            "SELECT count(*) FROM sessions WHERE session_id = '{one}'"
        ))
        .await,
        "1"
    );
    assert_eq!(
        count("SELECT count(*) FROM (SELECT * FROM sessions LIMIT 1)".into()).await,
        "1"
    );
    // Time ranges on when sessions started, pushed to the store.
    for (filter, want) in [
        ("started_at >= '2000-01-01'", "3"),
        ("started_at < '2000-01-01'", "0"),
        ("CAST(started_at AS TIMESTAMP) > now() - INTERVAL '1 hour'", "3"),
        ("CAST(started_at AS TIMESTAMP) > now() + INTERVAL '1 hour'", "0"),
    ] {
        assert_eq!(
            count(format!("SELECT count(*) FROM sessions WHERE {filter}")).await,
            want,
            "{filter}"
        );
    }
    assert_eq!(
        count("SELECT count(*) FROM cascade_runs WHERE created_at >= '2000-01-01' LIMIT 1".into()).await,
        "3"
    );

    // cascade_runs: what ran, for replay.
    let runs = q
        .execute(&format!(
            "SELECT cascade_definition, input_data, cascade_hash FROM cascade_runs WHERE session_id = '{one}'"
        ))
        .await
        .unwrap();
    assert!(
        column(&runs, 0)[0]
            .as_deref()
            .unwrap()
            .contains("cascade_id: sql_udf")
    );
    assert!(column(&runs, 1)[0].as_deref().unwrap().contains("Say ok"));
    assert_eq!(column(&runs, 2)[0].as_deref().unwrap().len(), 64);

    // sql_query_log filtered by caller (pushed down to the store).
    let log = q
        .execute(&format!(
            "SELECT runs FROM sql_query_log WHERE caller_id = '{caller}'"
        ))
        .await
        .unwrap();
    assert_eq!(column(&log, 0), [Some("2".into())]);
    // The same answers would come back if the filters were applied after a full scan: the plans show that
    // the filters reach the tables' scans (the store query), which is the point of the pushdown.
    for (sql, table, pushed) in [
        (
            format!("SELECT session_id FROM sessions WHERE caller_id = '{caller}'"),
            "sessions",
            format!("sessions.caller_id = Utf8(\"{caller}\")"),
        ),
        (
            "SELECT session_id FROM sessions WHERE status = 'completed'".to_owned(),
            "sessions",
            "sessions.status = Utf8(\"completed\")".to_owned(),
        ),
        (
            format!("SELECT runs FROM sql_query_log WHERE caller_id = '{caller}'"),
            "sql_query_log",
            format!("sql_query_log.caller_id = Utf8(\"{caller}\")"),
        ),
        (
            "SELECT runs FROM sql_query_log WHERE timestamp >= '2000-01-01'".to_owned(),
            "sql_query_log",
            "sql_query_log.timestamp >=".to_owned(),
        ),
    ] {
        let plan = q.execute(&format!("EXPLAIN {sql}")).await.unwrap();
        let logical = column(&plan, 1)[0].clone().unwrap_or_default();
        let scan = logical
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("TableScan: {table}")))
            .unwrap_or_else(|| panic!("no scan of {table} in {logical}"));
        assert!(
            scan.contains("filters=[") && scan.contains(&pushed),
            "{sql}: the filter did not reach the scan: {scan}"
        );
    }
    // ... and by time (a range pushed to the store).
    for (filter, want) in [
        ("timestamp >= '2000-01-01'", "2"),
        ("timestamp < '2000-01-01'", "0"),
        ("CAST(timestamp AS TIMESTAMP) > now() - INTERVAL '1 hour'", "2"),
    ] {
        assert_eq!(
            count(format!("SELECT count(*) FROM sql_query_log WHERE {filter}")).await,
            want,
            "{filter}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_and_signals() {
    let server = TestServer::start(Script::echo()).await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session: rvbbit_core::SessionId = "cp-session-one".parse().unwrap();
    let mut cp = Checkpoint::pending(session.clone(), "ask", "confirmation", "approve");
    cp.cascade_id = Some("review".into());
    cp.ui_spec = json!({"prompt": "Ship it?"});
    let cp_id = cp.checkpoint_id.clone();
    h.store.checkpoint_put(&cp).await.unwrap();
    h.store
        .signal_register(&Signal::waiting("approve", Some(session.clone())))
        .await
        .unwrap();
    h.store
        .signal_register(&Signal::waiting("other", None))
        .await
        .unwrap();
    let q = h.runtime.session();
    let r = q
        .execute(
            "SELECT checkpoint_id, status, ui_spec FROM checkpoints \
             WHERE session_id = 'cp-session-one' AND status = 'pending'",
        )
        .await
        .unwrap();
    assert_eq!(column(&r, 0), [Some(cp_id)]);
    assert!(column(&r, 2)[0].as_deref().unwrap().contains("Ship it?"));
    let none = q
        .execute("SELECT count(*) FROM checkpoints WHERE status = 'responded'")
        .await
        .unwrap();
    assert_eq!(column(&none, 0), [Some("0".into())]);
    let s = q
        .execute("SELECT name, status, session_id FROM signals WHERE name = 'approve'")
        .await
        .unwrap();
    assert_eq!(column(&s, 0), [Some("approve".into())]);
    assert_eq!(column(&s, 1), [Some("waiting".into())]);
    assert_eq!(column(&s, 2), [Some("cp-session-one".into())]);
    let all = q.execute("SELECT count(*) FROM signals").await.unwrap();
    assert_eq!(column(&all, 0), [Some("2".into())]);
}

/// Time filters on `all_data` (pushed to the store as a range) return exactly the rows they name, in
/// every form: microseconds, UTC text, `now() - INTERVAL`, a zone the store cannot push, and with LIMIT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_data_time_filters_return_exactly_their_rows() {
    use rvbbit_core::{Event, EventKind, SessionId, Timestamp};

    let server = TestServer::start(Script::echo()).await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session: SessionId = "time-filter-test".parse().unwrap();
    let stamps = [
        "2025-01-01T00:00:00Z",
        "2025-06-01T12:00:00.250000Z",
        "2025-12-01T00:00:00Z",
        "2025-12-01T00:00:00.500000Z",
        "2025-12-02T08:00:00Z",
    ];
    for (i, t) in stamps.iter().enumerate() {
        let mut e = Event::new(EventKind::Retry, session.clone(), i as i64);
        e.ts_us = t.parse::<Timestamp>().unwrap();
        e.cascade_id = Some("timed".into());
        h.writer.handle().event(e).await.unwrap();
    }
    // An event now, for `now() - INTERVAL`.
    let mut recent = Event::new(EventKind::Retry, session.clone(), 9);
    recent.cascade_id = Some("timed".into());
    h.writer.handle().event(recent).await.unwrap();
    h.flush().await;
    let q = h.runtime.session();
    let count = |sql: String| {
        let q = &q;
        async move {
            let r = q.execute(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            column(&r, 0)[0].clone().unwrap()
        }
    };
    let dec1 = "2025-12-01T00:00:00Z".parse::<Timestamp>().unwrap().micros();
    let base = "SELECT count(*) FROM all_data WHERE cascade_id = 'timed'";
    for (filter, want) in [
        (format!("ts_us >= {dec1}"), "4"),
        (format!("ts_us > {dec1}"), "3"),
        (format!("ts_us < {dec1}"), "2"),
        (format!("ts_us <= {dec1}"), "3"),
        ("timestamp >= '2025-12-01'".to_owned(), "4"),
        ("timestamp < '2025-12-01'".to_owned(), "2"),
        // Text order: the stored `…T00:00:00.000000Z` and `…T00:00:00.500000Z` sort before `…T00:00:00Z`,
        // and the answer follows SQL's string comparison, not the store's time order.
        ("timestamp < '2025-12-01T00:00:00Z'".to_owned(), "4"),
        (
            "timestamp > '2025-06-01' AND timestamp < '2025-12-02'".to_owned(),
            "3",
        ),
        ("timestamp > '2025-06-01T07:00:00-05:00'".to_owned(), "5"),
        (
            "CAST(timestamp AS TIMESTAMP) > now() - INTERVAL '1 day'".to_owned(),
            "1",
        ),
        (
            "CAST(timestamp AS TIMESTAMP) < TIMESTAMP '2025-06-01 12:00:00.250'".to_owned(),
            "1",
        ),
        (
            "CAST(timestamp AS TIMESTAMP) <= TIMESTAMP '2025-06-01 12:00:00.250'".to_owned(),
            "2",
        ),
        (format!("ts_us >= {dec1} AND ts_us < {dec1}"), "0"),
    ] {
        assert_eq!(count(format!("{base} AND {filter}")).await, want, "{filter}");
    }
    // LIMIT with a time filter: the filter decides, then the limit.
    let r = q
        .execute("SELECT ts_us FROM all_data WHERE cascade_id = 'timed' AND timestamp >= '2025-06-01' ORDER BY ts_us LIMIT 2")
        .await
        .unwrap();
    assert_eq!(r.row_count(), 2);
    let r = q
        .execute("SELECT ts_us FROM all_data WHERE timestamp < '2025-06-02' AND cascade_id = 'timed' LIMIT 5")
        .await
        .unwrap();
    assert_eq!(r.row_count(), 2);
}
