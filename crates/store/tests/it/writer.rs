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
