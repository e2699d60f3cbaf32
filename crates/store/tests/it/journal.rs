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
