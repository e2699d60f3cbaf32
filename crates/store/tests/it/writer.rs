//! The buffered writer: batching, flush, retry of a busy store with backoff (paused clock), spill and
//! replay exactly once.

use std::path::Path;

use rvbbit_store::{EventFilter, Writer, WriterOptions, spill};

use crate::events;
use crate::sqlite::fresh;

#[tokio::test]
async fn everything_sent_before_shutdown_is_stored() {
    let (url, dir) = fresh().await;
    let store = rvbbit_store::open(&url, Path::new("/")).await.unwrap();
    let mut options = WriterOptions::new(dir.path().join("spill"));
    options.capacity = 16;
    options.batch_size = 7;
    let writer = Writer::spawn(store.clone(), options);
    let h = writer.handle();
    for e in events("s", 100) {
        h.event(e).await.unwrap();
    }
    assert_eq!(h.flush().await.unwrap().events_written, 100);
    for e in events("t", 50) {
        h.event(e).await.unwrap();
    }
    let stats = writer.shutdown().await.unwrap();
    assert_eq!(
        (stats.accepted, stats.events_written, stats.spilled),
        (150, 150, 0)
    );
    assert_eq!(store.count_events(&EventFilter::default()).await.unwrap(), 150);
    assert!(
        h.event(events("u", 1).remove(0)).await.is_err(),
        "closed after shutdown"
    );
}

/// Another connection holds the write lock: the writer retries with backoff (on a paused clock), then
/// spills; replay loads the spill exactly once.
#[tokio::test(start_paused = true)]
async fn a_locked_store_is_retried_then_spilled_and_replayed_once() {
    let (url, dir) = fresh().await;
    let store = rvbbit_store::open(&format!("{url}?busy_timeout_ms=0"), Path::new("/"))
        .await
        .unwrap();
    let db = url.strip_prefix("sqlite://").unwrap().to_owned();
    let locker = rusqlite_lock(&db);
    let spill_dir = dir.path().join("spill");
    let writer = Writer::spawn(store.clone(), WriterOptions::new(spill_dir.clone()));
    let h = writer.handle();
    for e in events("s", 300) {
        h.event(e).await.unwrap();
    }
    let stats = writer.shutdown().await.unwrap();
    assert_eq!(stats.events_written, 0);
    assert_eq!(stats.spilled, 300);
    assert_eq!(stats.retries, 5);
    assert!(stats.last_error.unwrap().contains("busy"));
    drop(locker);
    let files = spill::pending(&spill_dir).unwrap();
    assert_eq!(files.len(), 1);
    let first = spill::replay(store.as_ref(), &spill_dir).await.unwrap();
    assert_eq!(first.events_inserted, 300);
    let second = spill::replay(store.as_ref(), &spill_dir).await.unwrap();
    assert_eq!(second.events_inserted, 0);
    assert_eq!(store.count_events(&EventFilter::default()).await.unwrap(), 300);
}

/// Hold SQLite's write lock from a separate connection (as another process would) until dropped.
fn rusqlite_lock(db: &str) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(db).unwrap();
    c.execute_batch("BEGIN EXCLUSIVE").unwrap();
    c
}

/// Heartbeats on a paused clock: the task beats once per interval and stops on request.
#[tokio::test(start_paused = true)]
async fn heartbeats_update_the_session_until_stopped() {
    let (url, _dir) = fresh().await;
    let store = rvbbit_store::open(&url, Path::new("/")).await.unwrap();
    let id: rvbbit_core::SessionId = "beating".parse().unwrap();
    let mut s = rvbbit_store::Session::new(id.clone());
    s.heartbeat_at = rvbbit_core::Timestamp::from_micros(0);
    store.put_sessions(&[s]).await.unwrap();
    let hb = rvbbit_store::Heartbeat::spawn(store.clone(), id.clone(), std::time::Duration::from_secs(30));
    tokio::time::sleep(std::time::Duration::from_secs(31)).await;
    let beats = hb.stop().await;
    assert!(beats >= 1, "at least the first beat landed");
    assert!(store.session(&id).await.unwrap().heartbeat_at.micros() > 0);
}

/// A read-only store is a permanent failure: no retries, the batch spills at once and replay (through a
/// writable handle) loads it.
#[tokio::test]
async fn a_read_only_store_spills_without_retrying() {
    let (url, dir) = fresh().await;
    let rw = rvbbit_store::open(&url, Path::new("/")).await.unwrap();
    let ro = rvbbit_store::open(&format!("{url}?mode=ro"), Path::new("/"))
        .await
        .unwrap();
    let spill_dir = dir.path().join("spill");
    let writer = Writer::spawn(ro, WriterOptions::new(spill_dir.clone()));
    for e in events("ro", 40) {
        writer.handle().event(e).await.unwrap();
    }
    let stats = writer.shutdown().await.unwrap();
    assert_eq!((stats.spilled, stats.retries, stats.lost), (40, 0, 0));
    assert!(stats.last_error.unwrap().contains("readonly"));
    assert_eq!(
        spill::replay(rw.as_ref(), &spill_dir)
            .await
            .unwrap()
            .events_inserted,
        40
    );
}

/// With no store at all (it could not be opened), everything spills and the error is kept.
#[tokio::test]
async fn a_spill_only_writer_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::spill_only(WriterOptions::new(dir.path().join("spill")), "store gone".into());
    for e in events("gone", 25) {
        writer.handle().event(e).await.unwrap();
    }
    let stats = writer.shutdown().await.unwrap();
    assert_eq!((stats.accepted, stats.spilled), (25, 25));
    assert_eq!(stats.last_error.as_deref(), Some("store gone"));
    assert_eq!(spill::pending(&dir.path().join("spill")).unwrap().len(), 1);
}

/// A spill file still held by a live writer is left alone by replay, then loaded once the writer is done.
#[tokio::test]
async fn replay_skips_a_spill_file_that_is_still_being_written() {
    let (url, dir) = fresh().await;
    let rw = rvbbit_store::open(&url, Path::new("/")).await.unwrap();
    let spill_dir = dir.path().join("spill");
    let writer = Writer::spill_only(WriterOptions::new(spill_dir.clone()), "down".into());
    for e in events("live", 10) {
        writer.handle().event(e).await.unwrap();
    }
    writer.handle().flush().await.unwrap();
    let busy = spill::replay(rw.as_ref(), &spill_dir).await.unwrap();
    assert_eq!(
        (busy.files.len(), busy.in_use.len(), busy.events_inserted),
        (0, 1, 0)
    );
    writer.shutdown().await.unwrap();
    let done = spill::replay(rw.as_ref(), &spill_dir).await.unwrap();
    assert_eq!((done.files.len(), done.events_inserted), (1, 10));
}

/// Neither the store (it could not be opened) nor the spill directory (a regular file sits where it
/// should be) can take records: every record is counted lost, with the OS error and the path, and the
/// live counter a server reads agrees.
#[tokio::test]
async fn records_that_can_be_neither_stored_nor_spilled_are_counted_lost_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blocker"), "").unwrap();
    let spill_dir = dir.path().join("blocker/spill");
    let writer = Writer::spill_only(WriterOptions::new(spill_dir.clone()), "store gone".into());
    let h = writer.handle();
    for e in events("doomed", 30) {
        h.event(e).await.unwrap();
    }
    h.flush().await.unwrap();
    assert_eq!((h.lost(), h.spilled()), (30, 0), "the live counters");
    let stats = writer.shutdown().await.unwrap();
    assert_eq!((stats.accepted, stats.spilled, stats.lost), (30, 0, 30));
    let reason = stats.lost_reason.unwrap();
    assert!(
        reason.contains("store could not be opened (store gone)"),
        "{reason}"
    );
    assert!(reason.contains(&spill_dir.display().to_string()), "{reason}");
    assert!(reason.contains("os error"), "{reason}");
}

/// Nothing is lost on the happy path (the counter stays 0, the proof each test needs to be able to fail).
#[tokio::test]
async fn a_working_spill_counts_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::spill_only(WriterOptions::new(dir.path().join("spill")), "down".into());
    let h = writer.handle();
    for e in events("kept", 5) {
        h.event(e).await.unwrap();
    }
    let stats = writer.shutdown().await.unwrap();
    assert_eq!((h.lost(), h.spilled()), (0, 5));
    assert_eq!((stats.lost, stats.lost_reason), (0, None));
}

/// A spill file whose last line was torn (a crash mid-write) and which holds a damaged line in the
/// middle: replay loads every other record exactly once, reports both lines with their numbers, and
/// keeps them in `rejected/`; a second replay adds nothing.
#[tokio::test]
async fn a_torn_spill_line_is_set_aside_and_the_rest_replays_exactly_once() {
    let (url, dir) = fresh().await;
    let store = rvbbit_store::open(&url, Path::new("/")).await.unwrap();
    let spill_dir = dir.path().join("spill");
    let writer = Writer::spill_only(WriterOptions::new(spill_dir.clone()), "down".into());
    for e in events("torn", 10) {
        writer.handle().event(e).await.unwrap();
    }
    let stats = writer.shutdown().await.unwrap();
    let file = stats.spill_files[0].clone();
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 10);
    lines[4] = "{\"type\":\"event\", oops".into();
    let torn = lines.pop().unwrap();
    let mut damaged = lines.join("\n");
    damaged.push('\n');
    damaged.push_str(&torn[..torn.len() / 2]);
    std::fs::write(&file, damaged.as_bytes()).unwrap();

    let first = spill::replay(store.as_ref(), &spill_dir).await.unwrap();
    assert_eq!(first.events_inserted, 8);
    assert_eq!(first.records, 8);
    let lines: Vec<usize> = first.rejected.iter().map(|r| r.line).collect();
    assert_eq!(lines, [5, 10]);
    let kept = std::fs::read_to_string(&first.rejected[0].kept_in).unwrap();
    assert_eq!(kept.lines().count(), 2);
    assert!(kept.starts_with("{\"type\":\"event\", oops"));
    assert!(first.rejected[0].kept_in.starts_with(spill_dir.join("rejected")));
    let second = spill::replay(store.as_ref(), &spill_dir).await.unwrap();
    assert_eq!((second.events_inserted, second.rejected.len()), (0, 0));
    assert_eq!(store.count_events(&EventFilter::default()).await.unwrap(), 8);
}

/// A file that only stops being intact at its very last byte (no newline, valid JSON) still replays:
/// the boundary of "torn".
#[tokio::test]
async fn a_last_line_without_its_newline_still_replays() {
    let (url, dir) = fresh().await;
    let store = rvbbit_store::open(&url, Path::new("/")).await.unwrap();
    let spill_dir = dir.path().join("spill");
    let writer = Writer::spill_only(WriterOptions::new(spill_dir.clone()), "down".into());
    for e in events("whole", 3) {
        writer.handle().event(e).await.unwrap();
    }
    let file = writer.shutdown().await.unwrap().spill_files[0].clone();
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.trim_end()).unwrap();
    let r = spill::replay(store.as_ref(), &spill_dir).await.unwrap();
    assert_eq!((r.events_inserted, r.rejected.len()), (3, 0));
}
