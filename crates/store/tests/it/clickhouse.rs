//! The ClickHouse event sink against a real server (a throwaway `clickhouse-server` from the testkit, a
//! fresh database per test): round trips, exactly once after `FINAL`, migrations, bad URLs and
//! credentials, and the writer spilling while the server is killed, then replaying once it is back.

use std::path::Path;
use std::sync::Arc;

use rvbbit_core::Timestamp;
use rvbbit_store::clickhouse::ClickHouseSink;
use rvbbit_store::{CostGroup, EventFilter, EventSink, SinkOptions, Writer, WriterOptions, spill};
use rvbbit_testkit::clickhouse::{self, TestClickHouse};

use crate::events;

/// A fresh database on the shared server, or `None` (test skipped) when ClickHouse is missing outside CI.
async fn fresh() -> Option<String> {
    if !clickhouse::available() {
        return None;
    }
    Some(
        tokio::task::spawn_blocking(clickhouse::fresh_database)
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn events_round_trip_with_filters_counts_and_costs() {
    let Some(url) = fresh().await else { return };
    let sink = ClickHouseSink::open(&url).await.unwrap();
    let batch = events("s-a", 9);
    assert_eq!(sink.append(&batch).await.unwrap(), 9);
    let mut b = events("s-b", 3);
    for e in &mut b {
        e.cascade_id = Some("other".into());
        e.caller_id = Some("cli-x".parse().unwrap());
    }
    sink.append(&b).await.unwrap();

    let only_a = EventFilter {
        session_id: Some("s-a".parse().unwrap()),
        ..EventFilter::default()
    };
    let read = sink.events(&only_a).await.unwrap();
    let back: Vec<_> = read.iter().map(|s| s.event.clone()).collect();
    assert_eq!(back, batch, "every field survives the round trip, in order");
    assert_eq!(sink.count_events(&EventFilter::default()).await.unwrap(), 12);
    let by_caller = EventFilter {
        caller_id: Some("cli-x".into()),
        ..EventFilter::default()
    };
    assert_eq!(sink.count_events(&by_caller).await.unwrap(), 3);
    let future = EventFilter {
        since: Some(Timestamp::now().add_micros(3_600_000_000)),
        ..EventFilter::default()
    };
    assert_eq!(sink.count_events(&future).await.unwrap(), 0);
    let limited = EventFilter {
        limit: Some(2),
        ..EventFilter::default()
    };
    assert_eq!(sink.events(&limited).await.unwrap().len(), 2);

    let total = sink
        .costs(CostGroup::Total, &EventFilter::default())
        .await
        .unwrap();
    assert_eq!(total.len(), 1);
    assert_eq!(
        (
            total[0].calls,
            total[0].cost.micros(),
            total[0].tokens_in,
            total[0].sessions
        ),
        (4, 400, 40, 2)
    );
    let by_cascade = sink
        .costs(CostGroup::Cascade, &EventFilter::default())
        .await
        .unwrap();
    let keys: Vec<_> = by_cascade
        .iter()
        .map(|r| (r.key.as_str(), r.cost.micros()))
        .collect();
    assert_eq!(keys, [("demo", 300), ("other", 100)]);
    let by_day = sink.costs(CostGroup::Day, &EventFilter::default()).await.unwrap();
    let today = chrono_day(Timestamp::now());
    assert!(
        by_day.iter().any(|r| r.key == today),
        "days are UTC dates: {by_day:?} vs {today}"
    );
    let lag = sink.lag().await.unwrap();
    assert_eq!(lag.rows, 12);
    assert!(lag.last_write.is_some());
}

/// `YYYY-MM-DD` of a timestamp in UTC (civil-from-days, to avoid a date crate in tests).
fn chrono_day(t: Timestamp) -> String {
    let days = t.micros().div_euclid(86_400_000_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[tokio::test]
async fn the_same_batch_appended_twice_is_one_row_per_event_id_after_final() {
    let Some(url) = fresh().await else { return };
    let sink = ClickHouseSink::open(&url).await.unwrap();
    let batch = events("s-twice", 25);
    sink.append(&batch).await.unwrap();
    sink.append(&batch).await.unwrap();
    let (rows, distinct, final_rows) = sink.exactly_once().await.unwrap();
    assert_eq!((distinct, final_rows), (25, 25), "rows as stored: {rows}");
    assert_eq!(sink.count_events(&EventFilter::default()).await.unwrap(), 25);
    assert_eq!(sink.events(&EventFilter::default()).await.unwrap().len(), 25);
    let total = sink
        .costs(CostGroup::Total, &EventFilter::default())
        .await
        .unwrap();
    assert_eq!(total[0].calls, 9, "costs are not double-counted");
}

#[tokio::test]
async fn migrations_are_recorded_and_a_newer_schema_is_refused() {
    let Some(url) = fresh().await else { return };
    let sink = ClickHouseSink::open(&url).await.unwrap();
    assert_eq!(sink.schema_version().await.unwrap(), 1);
    // Opening again applies nothing.
    let again = ClickHouseSink::open(&url).await.unwrap();
    assert_eq!(again.schema_version().await.unwrap(), 1);
    let db = sink.database().to_owned();
    tokio::task::spawn_blocking(move || {
        clickhouse::shared().query(&format!(
            "INSERT INTO {db}.rvbbit_schema (version, name, applied) VALUES (99, 'future', now())"
        ))
    })
    .await
    .unwrap();
    let err = ClickHouseSink::open(&url)
        .await
        .expect_err("a newer schema is refused");
    assert_eq!(err.code().code, "RVB-S002", "{err}");
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_naming_the_url_with_its_password_masked() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://ada:hunter2@127.0.0.1:{port}/rvbbit");
    let err = ClickHouseSink::open(&url).await.expect_err("open must fail");
    assert_eq!(err.code().code, "RVB-S001", "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("http://ada:****@127.0.0.1:{port}/rvbbit")),
        "{text}"
    );
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
}

#[tokio::test]
async fn wrong_credentials_say_so() {
    let Some(url) = fresh().await else { return };
    if clickhouse::is_external() {
        eprintln!("skipped: needs the throwaway server's users");
        return;
    }
    let wrong = url.replacen("http://default@", "http://rvbbit:hunter3@", 1);
    let err = ClickHouseSink::open(&wrong).await.expect_err("open must fail");
    assert_eq!(err.code().code, "RVB-S001", "{err}");
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(chain.contains("refused the credentials"), "{chain}");
    assert!(chain.contains("rvbbit:****@"), "{chain}");
    assert!(!chain.contains("hunter3"), "{chain}");
    let right = url.replacen("http://default@", "http://rvbbit:secret@", 1);
    ClickHouseSink::open(&right).await.unwrap();
}

/// The writer sends every batch to the sink after the store; while the server is killed (SIGKILL) the
/// sink's events spill to their own files and the run goes on; once the server is back on the same data
/// and port, the next batch replays the spill: every event is in ClickHouse exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_spills_then_the_next_batch_replays_exactly_once() {
    if !clickhouse::startable() {
        return;
    }
    let server = Arc::new(
        tokio::task::spawn_blocking(TestClickHouse::start)
            .await
            .unwrap()
            .unwrap(),
    );
    let s = server.clone();
    let url = tokio::task::spawn_blocking(move || s.create_database())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rvbbit_store::open(
        &format!("sqlite://{}", dir.path().join("rvbbit.db").display()),
        Path::new("/"),
    )
    .await
    .unwrap();
    let sink: Arc<dyn EventSink> = Arc::new(ClickHouseSink::open(&url).await.unwrap());
    let sink_dir = dir.path().join("spill").join(spill::SINK_DIR);
    let mut options = WriterOptions::new(dir.path().join("spill"));
    options.reprobe_after = std::time::Duration::ZERO;
    options.sink = Some(SinkOptions {
        sink: sink.clone(),
        url: rvbbit_store::clickhouse::mask_url(&url),
        spill_dir: sink_dir.clone(),
    });
    let writer = Writer::spawn(store.clone(), options);
    let h = writer.handle();
    let mut sent = 0;
    for round in 0..6 {
        if round == 2 {
            let s = server.clone();
            tokio::task::spawn_blocking(move || s.kill())
                .await
                .unwrap()
                .unwrap();
        }
        if round == 4 {
            let s = server.clone();
            tokio::task::spawn_blocking(move || s.restart())
                .await
                .unwrap()
                .unwrap();
        }
        for e in events(&format!("s-{round}"), 40) {
            h.event(e).await.unwrap();
            sent += 1;
        }
        let stats = h.flush().await.unwrap();
        if round == 3 {
            assert_eq!(stats.sink_spilled, 80, "rounds 2 and 3 spilled");
            assert_eq!(h.sink_state().unwrap().pending, 80);
            assert_eq!(spill::pending_records(&sink_dir).unwrap(), 80);
            assert!(stats.sink_error.unwrap().contains("127.0.0.1"));
        }
    }
    let stats = writer.shutdown().await.unwrap();
    assert_eq!((stats.events_written, stats.spilled, stats.lost), (sent, 0, 0));
    assert_eq!(stats.sink_replayed, 80);
    assert_eq!(stats.sink_written, sent - 80);
    assert_eq!(
        spill::pending_records(&sink_dir).unwrap(),
        0,
        "the sink spill is emptied"
    );
    let sink = ClickHouseSink::connect(&url).unwrap();
    let (_, distinct, final_rows) = sink.exactly_once().await.unwrap();
    let primary = store.count_events(&EventFilter::default()).await.unwrap();
    assert_eq!((distinct, final_rows, primary), (sent, sent, sent));
}

/// Nothing lost silently: when the sink fails and its spill directory cannot be written either (a
/// regular file sits where it should be), the events are counted lost with both reasons, so the command
/// fails as it does for the store's spill (RVB-S008); the store still has every event.
#[tokio::test]
async fn a_sink_whose_spill_cannot_be_written_counts_the_events_lost() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://ada:hunter2@127.0.0.1:{port}/rvbbit");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blocker"), "").unwrap();
    let store = rvbbit_store::open(
        &format!("sqlite://{}", dir.path().join("rvbbit.db").display()),
        Path::new("/"),
    )
    .await
    .unwrap();
    let mut options = WriterOptions::new(dir.path().join("spill"));
    options.sink = Some(SinkOptions {
        sink: Arc::new(ClickHouseSink::connect(&url).unwrap()),
        url: rvbbit_store::clickhouse::mask_url(&url),
        spill_dir: dir.path().join("blocker").join("events-sink"),
    });
    let writer = Writer::spawn(store.clone(), options);
    for e in events("s-lost", 30) {
        writer.handle().event(e).await.unwrap();
    }
    let h = writer.handle();
    let stats = writer.shutdown().await.unwrap();
    assert_eq!(
        (stats.events_written, stats.sink_spilled, stats.lost),
        (30, 0, 30)
    );
    assert_eq!(h.lost(), 30);
    let reason = stats.lost_reason.unwrap();
    assert!(
        reason.contains("the events sink failed") && reason.contains("blocker"),
        "{reason}"
    );
    assert!(
        reason.contains("ada:****@") && !reason.contains("hunter2"),
        "{reason}"
    );
    assert_eq!(store.count_events(&EventFilter::default()).await.unwrap(), 30);
}
