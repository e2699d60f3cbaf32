//! Conformance checks of run journals and side-effect records (`rvbbit_store::journal`), run on every
//! backend through `store_conformance!`.

use std::sync::Arc;

use rvbbit_core::{SessionId, Timestamp};
use rvbbit_store::{Effect, EffectBegin, EffectStatus, JournalEntry, Store};
use serde_json::json;

fn sid(s: &str) -> SessionId {
    s.parse().unwrap()
}

/// Steps are compare-and-set per (run key, step): the same session may record a step again, another
/// session may not; the latest step wins reads; prune removes old ones.
pub async fn journal_steps_are_compare_and_set_per_run(store: Arc<dyn Store>, _url: &str) {
    assert_eq!(store.journal_latest("queue-a").await.unwrap(), None);
    let first = JournalEntry::new("queue-a", 1, sid("first-attempt"), "prepare", json!({"n": 1}));
    store.journal_put(&first).await.unwrap();
    store.journal_put(&first).await.unwrap(); // the same session again: a no-op
    let other = JournalEntry::new("queue-a", 1, sid("second-attempt"), "prepare", json!({"n": 9}));
    match store.journal_put(&other).await {
        Err(rvbbit_store::Error::Conflict { what, reason, .. }) => {
            assert_eq!(what, "run journal");
            assert!(reason.contains("first-attempt"), "{reason}");
        }
        other => panic!("a second session recording step 1 must conflict, got {other:?}"),
    }
    let latest = store.journal_latest("queue-a").await.unwrap().unwrap();
    assert_eq!((latest.step, latest.session_id.as_str()), (1, "first-attempt"));
    assert_eq!(latest.continuation, json!({"n": 1}));
    let next = JournalEntry::new("queue-a", 2, sid("second-attempt"), "think", json!({"n": 2}));
    store.journal_put(&next).await.unwrap();
    let latest = store.journal_latest("queue-a").await.unwrap().unwrap();
    assert_eq!((latest.step, latest.cell_name.as_str()), (2, "think"));
    assert_eq!(
        store.journal_latest("queue-b").await.unwrap(),
        None,
        "keys do not mix"
    );

    let effect = Effect::start(
        "queue-a/1.prepare/1",
        sid("first-attempt"),
        "prepare",
        "linux_shell",
    );
    assert_eq!(store.effect_begin(&effect).await.unwrap(), EffectBegin::First);
    let later = Timestamp::from_micros(Timestamp::now().micros() + 1_000_000);
    let pruned = store.prune(later, later, false).await.unwrap();
    assert_eq!(
        pruned.journal, 3,
        "two journal steps and one effect were older than the cutoff"
    );
    assert_eq!(store.journal_latest("queue-a").await.unwrap(), None);
    assert!(store.effects("queue-a/").await.unwrap().is_empty());
}

/// Of many attempts claiming one side effect at once exactly one is first; a finished effect is
/// replayed, never restarted; a failed one is restarted; its end is recorded once.
pub async fn concurrent_effect_claims_let_exactly_one_go_first(store: Arc<dyn Store>, _url: &str) {
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let e = Effect::start(
                "job-1/3.effect/1",
                sid(&format!("attempt-{i}")),
                "effect",
                "linux_shell",
            );
            store.effect_begin(&e).await.unwrap()
        }));
    }
    let mut firsts = 0;
    let mut agains = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            EffectBegin::First => firsts += 1,
            EffectBegin::Again { attempts } => agains.push(attempts),
            other => panic!("nothing finished yet, got {other:?}"),
        }
    }
    agains.sort_unstable();
    assert_eq!(firsts, 1, "exactly one claim is the first");
    assert_eq!(
        agains,
        (2..=8).collect::<Vec<i64>>(),
        "every other claim counts one more start"
    );

    let now = Timestamp::now();
    let result = json!({"stdout": "appended\n", "returncode": 0});
    store
        .effect_finish("job-1/3.effect/1", EffectStatus::Done, &result, now)
        .await
        .unwrap();
    // A late report of a cut-off start does not overwrite the recorded end.
    store
        .effect_finish(
            "job-1/3.effect/1",
            EffectStatus::Failed,
            &json!({"error": "late"}),
            now,
        )
        .await
        .unwrap();
    let again = Effect::start("job-1/3.effect/1", sid("attempt-9"), "effect", "linux_shell");
    match store.effect_begin(&again).await.unwrap() {
        EffectBegin::Done(done) => {
            assert_eq!(done.status, EffectStatus::Done);
            assert_eq!(done.result, Some(result));
            assert_eq!(done.attempts, 8);
            assert_eq!(done.tool, "linux_shell");
        }
        other => panic!("a finished effect must be replayed, got {other:?}"),
    }

    let failing = Effect::start("job-2/1.prepare/1", sid("attempt-0"), "prepare", "http_request");
    assert_eq!(store.effect_begin(&failing).await.unwrap(), EffectBegin::First);
    store
        .effect_finish(
            "job-2/1.prepare/1",
            EffectStatus::Failed,
            &json!({"error": "503"}),
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        store.effect_begin(&failing).await.unwrap(),
        EffectBegin::Again { attempts: 2 },
        "a failed effect is made again"
    );
    let listed = store.effects("job-").await.unwrap();
    let keys: Vec<&str> = listed.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&"job-1/3.effect/1") && keys.contains(&"job-2/1.prepare/1"));
    assert!(store.effects("job-3").await.unwrap().is_empty());
}

/// A worker's heartbeat row is one per name, replaced by each beat; the list is latest heartbeat first;
/// a stale or stopped worker is not live; prune removes rows last seen before the cutoff.
pub async fn worker_heartbeats_are_one_row_per_worker(store: Arc<dyn Store>, _url: &str) {
    use rvbbit_store::{WorkerRecord, WorkerState};
    assert!(store.workers().await.unwrap().is_empty());
    let mut a = WorkerRecord::start("worker-h-1", "h", 1, json!({"region": "eu"}), 4);
    store.worker_beat(&a).await.unwrap();
    let mut b = WorkerRecord::start("worker-h-2", "h", 2, json!({}), 1);
    b.heartbeat_at = Timestamp::from_micros(a.heartbeat_at.micros() - 60_000_000);
    store.worker_beat(&b).await.unwrap();
    a.in_flight = 3;
    a.settled = 17;
    a.state = WorkerState::Draining;
    a.heartbeat_at = Timestamp::from_micros(a.heartbeat_at.micros() + 1_000);
    store.worker_beat(&a).await.unwrap();
    let listed = store.workers().await.unwrap();
    assert_eq!(listed.len(), 2, "one row per worker name: {listed:?}");
    assert_eq!(listed[0], a, "the latest beat replaced the row and comes first");
    assert_eq!(listed[1].name, "worker-h-2");
    let now = a.heartbeat_at;
    let stale = std::time::Duration::from_secs(30);
    assert!(listed[0].is_live(now, stale));
    assert!(
        !listed[1].is_live(now, stale),
        "a minute without a heartbeat is not live"
    );
    a.state = WorkerState::Stopped;
    store.worker_beat(&a).await.unwrap();
    assert!(
        !store.workers().await.unwrap()[0].is_live(now, stale),
        "a stopped worker is not live"
    );
    let cutoff = Timestamp::from_micros(now.micros() - 30_000_000);
    let pruned = store.prune(cutoff, now, false).await.unwrap();
    assert_eq!(pruned.workers, 1, "only the worker last seen before the cutoff");
    let left: Vec<String> = store
        .workers()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(left, ["worker-h-1"]);
}

/// A batch record is one row per id, replaced by each put; the list is newest first without bodies;
/// an unknown id is not found; prune keeps running batches and removes finished old ones.
pub async fn batch_records_round_trip_and_list_newest_first(store: Arc<dyn Store>, _url: &str) {
    use rvbbit_store::BatchRecord;
    let mut first = BatchRecord::start("b-1", "flow", json!({"inputs": "in/*.txt", "results": []}));
    first.started_at = Timestamp::from_micros(first.started_at.micros() - 5_000_000);
    store.batch_put(&first).await.unwrap();
    let second = BatchRecord::start("b-2", "flow", json!({"inputs": "rows.jsonl"}));
    store.batch_put(&second).await.unwrap();
    first.status = "partial".into();
    first.body = json!({"inputs": "in/*.txt", "results": [{"name": "a", "status": "failed"}]});
    store.batch_put(&first).await.unwrap();
    assert_eq!(store.batch("b-1").await.unwrap(), first);
    let listed = store.batches(10).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|b| b.batch_id.as_str()).collect();
    assert_eq!(ids, ["b-2", "b-1"]);
    assert_eq!(listed[1].status, "partial");
    assert_eq!(listed[1].body, serde_json::Value::Null, "lists leave bodies out");
    assert_eq!(store.batches(1).await.unwrap().len(), 1);
    match store.batch("b-9").await {
        Err(rvbbit_store::Error::NotFound { what, .. }) => assert_eq!(what, "batch"),
        other => panic!("an unknown batch is not found, got {other:?}"),
    }
    // Progress replaces the body of a running batch only (compare-and-set on the status).
    let live = json!({"progress": {"done": 3}});
    assert!(store.batch_progress("b-2", &live).await.unwrap());
    assert_eq!(store.batch("b-2").await.unwrap().body, live);
    assert!(
        !store.batch_progress("b-1", &live).await.unwrap(),
        "b-1 has ended"
    );
    // A cancel is compare-and-set: only a running batch, only once.
    assert!(!store.batch_cancel("b-1").await.unwrap(), "b-1 is not running");
    assert!(!store.batch_cancel("b-9").await.unwrap(), "no such batch");
    let (one, two) = tokio::join!(store.batch_cancel("b-2"), store.batch_cancel("b-2"));
    assert!(
        one.unwrap() ^ two.unwrap(),
        "exactly one of two cancels makes the change"
    );
    assert_eq!(store.batch("b-2").await.unwrap().status, "cancelling");
    assert!(
        !store.batch_progress("b-2", &json!({})).await.unwrap(),
        "progress never overwrites a cancel"
    );
    assert_eq!(store.batch("b-2").await.unwrap().status, "cancelling");
    let later = Timestamp::from_micros(Timestamp::now().micros() + 1_000_000);
    let pruned = store.prune(later, later, false).await.unwrap();
    assert_eq!(
        pruned.batches, 1,
        "the finished batch goes, the cancelling one stays"
    );
    assert_eq!(store.batches(10).await.unwrap()[0].batch_id, "b-2");
}
