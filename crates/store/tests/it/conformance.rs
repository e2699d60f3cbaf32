//! The store conformance suite. Every backend runs it through `store_conformance!`, given an async
//! function returning a fresh, empty store URL (plus a guard that keeps it alive) and the base directory.

use std::path::Path;
use std::sync::Arc;

use rvbbit_core::{SessionId, SessionStatus, Timestamp};
use rvbbit_store::{
    ApiKey, Checkpoint, CheckpointStatus, CostGroup, EventFilter, Session, SessionFilter, Signal,
    SignalStatus, Store,
};
use serde_json::json;

pub use crate::channels::{
    identities_link_by_fact_once_even_when_two_channels_race,
    integrations_are_put_replaced_listed_and_deleted,
};
pub use crate::conversations::conversations_are_opened_once_per_key_and_read_only_by_their_tenant;
use crate::events;
pub use crate::journal::{
    batch_records_round_trip_and_list_newest_first, concurrent_effect_claims_let_exactly_one_go_first,
    journal_steps_are_compare_and_set_per_run, worker_heartbeats_are_one_row_per_worker,
};
pub use crate::limits::spending_limits_are_set_listed_removed_and_count_what_was_spent;

/// Generate one `#[tokio::test]` per conformance check for a backend. `$fresh` is an async fn
/// `() -> (String /* url */, Guard)`.
macro_rules! store_conformance {
    ($backend:ident, $fresh:path) => {
        mod $backend {
            macro_rules! check {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let (url, _guard) = $fresh().await;
                        let store = rvbbit_store::open(&url, std::path::Path::new("/"))
                            .await
                            .unwrap();
                        $crate::conformance::$name(store, &url).await;
                    }
                };
            }
            check!(migrations_are_applied_once_and_reported);
            check!(events_round_trip_and_are_idempotent);
            check!(event_filters_and_costs);
            check!(sessions_upsert_list_cancel_and_cleanup);
            check!(cache_hits_and_ttl);
            check!(prune_removes_old_records_and_keeps_live_sessions);
            check!(signals_are_latched_and_fired_once);
            check!(checkpoints_round_trip_and_keep_waiting_sessions_alive);
            check!(concurrent_writers_lose_and_duplicate_nothing);
            check!(event_cursor_resumes_after_a_store_seq);
            check!(api_keys_authenticate_until_revoked);
            check!(a_session_id_is_created_once);
            check!(concurrent_claims_of_a_waiting_session_let_exactly_one_win);
            check!(concurrent_answers_to_one_signal_fire_it_once);
            check!(a_waiting_session_is_cancelled_at_once_and_a_finished_one_keeps_its_status);
            check!(journal_steps_are_compare_and_set_per_run);
            check!(concurrent_effect_claims_let_exactly_one_go_first);
            check!(worker_heartbeats_are_one_row_per_worker);
            check!(batch_records_round_trip_and_list_newest_first);
            check!(spending_limits_are_set_listed_removed_and_count_what_was_spent);
            check!(conversations_are_opened_once_per_key_and_read_only_by_their_tenant);
            check!(identities_link_by_fact_once_even_when_two_channels_race);
            check!(integrations_are_put_replaced_listed_and_deleted);
        }
    };
}

pub async fn migrations_are_applied_once_and_reported(store: Arc<dyn Store>, url: &str) {
    let status = store.status().await.unwrap();
    assert!(status.schema_version >= 1);
    assert_eq!(status.schema_version, status.latest_version);
    assert!(status.pending.is_empty());
    assert_eq!(store.migrate().await.unwrap(), Vec::<String>::new());
    // A second handle on the same store migrates nothing and sees the same version.
    let again = rvbbit_store::open(url, Path::new("/")).await.unwrap();
    assert_eq!(
        again.status().await.unwrap().schema_version,
        status.schema_version
    );
    store.ping().await.unwrap();
}

pub async fn events_round_trip_and_are_idempotent(store: Arc<dyn Store>, _url: &str) {
    let batch = events("s-one", 10);
    assert_eq!(store.append(&batch).await.unwrap(), 10);
    assert_eq!(
        store.append(&batch).await.unwrap(),
        0,
        "re-inserting the same ids adds nothing"
    );
    let read = store.events(&EventFilter::default()).await.unwrap();
    let back: Vec<_> = read.iter().map(|s| s.event.clone()).collect();
    assert_eq!(back, batch);
    assert!(read.windows(2).all(|w| w[0].store_seq < w[1].store_seq));
}

pub async fn event_filters_and_costs(store: Arc<dyn Store>, _url: &str) {
    store.append(&events("s-a", 9)).await.unwrap();
    let mut b = events("s-b", 3);
    for e in &mut b {
        e.cascade_id = Some("other".into());
        e.caller_id = Some("cli-x".parse().unwrap());
    }
    store.append(&b).await.unwrap();
    let only_b = EventFilter {
        session_id: Some("s-b".parse().unwrap()),
        ..EventFilter::default()
    };
    assert_eq!(store.count_events(&only_b).await.unwrap(), 3);
    let by_caller = EventFilter {
        caller_id: Some("cli-x".into()),
        ..EventFilter::default()
    };
    assert_eq!(store.count_events(&by_caller).await.unwrap(), 3);
    let future = EventFilter {
        since: Some(Timestamp::now().add_micros(3_600_000_000)),
        ..EventFilter::default()
    };
    assert_eq!(store.count_events(&future).await.unwrap(), 0);
    let total = store
        .costs(CostGroup::Total, &EventFilter::default())
        .await
        .unwrap();
    assert_eq!(total.len(), 1);
    assert_eq!(total[0].calls, 4);
    assert_eq!(total[0].cost.micros(), 400);
    assert_eq!(total[0].tokens_in, 40);
    assert_eq!(total[0].sessions, 2);
    let by_cascade = store
        .costs(CostGroup::Cascade, &EventFilter::default())
        .await
        .unwrap();
    let keys: Vec<_> = by_cascade
        .iter()
        .map(|r| (r.key.as_str(), r.cost.micros()))
        .collect();
    assert_eq!(keys, [("demo", 300), ("other", 100)]);
}

pub async fn sessions_upsert_list_cancel_and_cleanup(store: Arc<dyn Store>, _url: &str) {
    let id: SessionId = "s-live".parse().unwrap();
    let mut s = Session::new(id.clone());
    s.cascade_id = Some("demo".into());
    s.input = json!({"x": 1});
    store.put_sessions(std::slice::from_ref(&s)).await.unwrap();
    // An older record never rolls the session back.
    let mut old = s.clone();
    old.updated_at = old.updated_at.add_micros(-10);
    old.status = SessionStatus::Failed;
    store.put_sessions(&[old]).await.unwrap();
    assert_eq!(store.session(&id).await.unwrap().status, SessionStatus::Running);
    store.append(&events("s-live", 6)).await.unwrap();
    let list = store.sessions(&SessionFilter::default()).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].events, 6);
    assert_eq!(list[0].cost.micros(), 200);
    let cancelled = store.request_cancel(&id, "test").await.unwrap();
    assert!(cancelled.cancel_requested);
    // A later write from the running process keeps the cancel request.
    let mut later = s.clone();
    later.updated_at = later.updated_at.add_micros(5);
    store.put_sessions(&[later]).await.unwrap();
    assert!(store.session(&id).await.unwrap().cancel_requested);
    assert!(store.session(&"nope".parse().unwrap()).await.is_err());

    let mut done = Session::new("s-done".parse().unwrap());
    done.finish(SessionStatus::Completed, Some(json!("ok")), None);
    store.put_sessions(&[done]).await.unwrap();
    assert!(
        store
            .request_cancel(&"s-done".parse().unwrap(), "x")
            .await
            .is_err()
    );
    store.append(&events("s-done", 4)).await.unwrap();

    let future = Timestamp::now().add_micros(60_000_000);
    let dry = store.cleanup(future, Some(future), true).await.unwrap();
    assert_eq!(dry.orphaned, vec![id.clone()]);
    assert_eq!(dry.deleted, vec!["s-done".parse().unwrap()]);
    assert_eq!(dry.deleted_events, 4);
    assert_eq!(
        store.session(&id).await.unwrap().status,
        SessionStatus::Running,
        "dry run changes nothing"
    );
    store.cleanup(future, Some(future), false).await.unwrap();
    assert_eq!(store.session(&id).await.unwrap().status, SessionStatus::Failed);
    assert_eq!(store.count_events(&EventFilter::default()).await.unwrap(), 6);
    let failed = EventFilter {
        session_status: Some(SessionStatus::Failed),
        ..EventFilter::default()
    };
    assert_eq!(store.count_events(&failed).await.unwrap(), 6);
    let counts = store.session_counts().await.unwrap();
    assert_eq!(counts, vec![(SessionStatus::Failed, 1)]);
}

pub async fn cache_hits_and_ttl(store: Arc<dyn Store>, _url: &str) {
    let t0 = Timestamp::from_micros(1_000_000);
    store
        .cache_put("k", &json!({"v": 1}), t0, Some(t0.add_micros(10)))
        .await
        .unwrap();
    store.cache_put("forever", &json!(2), t0, None).await.unwrap();
    let hit = store.cache_get("k", t0).await.unwrap().unwrap();
    assert_eq!(hit.value, json!({"v": 1}));
    assert_eq!(hit.hits, 1);
    assert_eq!(store.cache_get("k", t0).await.unwrap().unwrap().hits, 2);
    assert!(
        store.cache_get("k", t0.add_micros(10)).await.unwrap().is_none(),
        "expired"
    );
    assert!(store.cache_get("missing", t0).await.unwrap().is_none());
    // A batch read answers in key order, counts a hit for each entry found and skips expired ones.
    let keys = ["forever", "missing", "k", "forever"].map(String::from);
    let many = store.cache_get_many(&keys, t0).await.unwrap();
    assert_eq!(many.len(), 4);
    assert_eq!(
        many[0].as_ref().map(|e| (e.value.clone(), e.hits)),
        Some((json!(2), 1))
    );
    assert!(many[1].is_none());
    assert_eq!(many[2].as_ref().map(|e| e.hits), Some(3));
    assert_eq!(many[3].as_ref().map(|e| e.hits), Some(2));
    let expired = store
        .cache_get_many(&keys[2..3], t0.add_micros(10))
        .await
        .unwrap();
    assert!(expired[0].is_none(), "expired");
    // A peek reads the same entries without counting a hit (nothing is written).
    let hits_before = store.status().await.unwrap().cache_hits;
    let peeked = store.cache_peek_many(&keys, t0).await.unwrap();
    let values: Vec<_> = peeked
        .iter()
        .map(|e| e.as_ref().map(|e| e.value.clone()))
        .collect();
    assert_eq!(
        values,
        vec![Some(json!(2)), None, Some(json!({"v": 1})), Some(json!(2))]
    );
    assert_eq!(
        store.status().await.unwrap().cache_hits,
        hits_before,
        "a peek counts no hit"
    );
    assert!(store.cache_peek_many(&[], t0).await.unwrap().is_empty());
    assert!(
        store
            .cache_peek_many(&keys[2..3], t0.add_micros(10))
            .await
            .unwrap()[0]
            .is_none(),
        "expired"
    );
    // Hits served by peeks are counted by one summary event per statement, which the status adds.
    let mut summary = rvbbit_core::Event::new(rvbbit_core::EventKind::CacheHit, "sql-s1".parse().unwrap(), 0);
    summary.cost = Some(rvbbit_core::MicroUsd::ZERO);
    summary.metadata = json!({"count": 5, "avoided_cost_micro_usd": 50});
    store.append(&[summary]).await.unwrap();
    assert_eq!(store.status().await.unwrap().cache_hits, hits_before + 5);
    assert_eq!(store.cache_purge(t0.add_micros(11)).await.unwrap(), 1);
    assert!(
        store
            .cache_get("forever", t0.add_micros(1 << 40))
            .await
            .unwrap()
            .is_some()
    );
}

/// Issue 21: `db prune --older-than` removes finished sessions, their events and checkpoints, orphan
/// events and old signals before the cutoff, and never a running or waiting session.
pub async fn prune_removes_old_records_and_keeps_live_sessions(store: Arc<dyn Store>, _url: &str) {
    let mut old = Session::new("old-done".parse().unwrap());
    old.finish(SessionStatus::Completed, None, None);
    let running = Session::new("old-running".parse().unwrap());
    store.put_sessions(&[old, running]).await.unwrap();
    store.append(&events("old-done", 4)).await.unwrap();
    store.append(&events("old-running", 3)).await.unwrap();
    // A SQL statement's events live under its caller id, which has no session record.
    store.append(&events("sql-statement", 2)).await.unwrap();
    let mut fired = Signal::waiting("done", None);
    fired.status = SignalStatus::Fired;
    store.signal_register(&fired).await.unwrap();
    store
        .signal_register(&Signal::waiting("pending", None))
        .await
        .unwrap();
    let t0 = Timestamp::now();
    store
        .cache_put("expired", &json!(1), t0, Some(t0.add_micros(1)))
        .await
        .unwrap();
    store.cache_put("kept", &json!(2), t0, None).await.unwrap();

    let cutoff = Timestamp::now().add_micros(1_000_000);
    let later = t0.add_micros(2);
    // Before the records: nothing to do.
    let none = store
        .prune(t0.add_micros(-60_000_000), later, true)
        .await
        .unwrap();
    assert_eq!((none.sessions, none.events, none.signals), (0, 0, 0));
    let dry = store.prune(cutoff, later, true).await.unwrap();
    assert_eq!(
        (
            dry.sessions,
            dry.events,
            dry.checkpoints,
            dry.signals,
            dry.cache_entries
        ),
        (1, 6, 0, 1, 1)
    );
    assert_eq!(
        store.count_events(&EventFilter::default()).await.unwrap(),
        9,
        "a dry run deletes nothing"
    );
    assert_eq!(store.prune(cutoff, later, false).await.unwrap(), dry);
    // The running session and its events stay; so do the waiting signal and the live cache entry.
    assert_eq!(store.count_events(&EventFilter::default()).await.unwrap(), 3);
    assert!(store.session(&"old-running".parse().unwrap()).await.is_ok());
    assert!(store.session(&"old-done".parse().unwrap()).await.is_err());
    let names: Vec<String> = store
        .signals(None)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, vec!["pending".to_owned()]);
    assert!(store.cache_get("kept", later).await.unwrap().is_some());
    assert_eq!(store.status().await.unwrap().cache_entries, 1);
}

pub async fn signals_are_latched_and_fired_once(store: Arc<dyn Store>, _url: &str) {
    let a = Signal::waiting("approve", Some("s-1".parse().unwrap()));
    let b = Signal::waiting("approve", Some("s-2".parse().unwrap()));
    store.signal_register(&a).await.unwrap();
    store.signal_register(&b).await.unwrap();
    let now = Timestamp::now();
    let only_one = store
        .signal_fire(
            "approve",
            &json!({"ok": true}),
            "cli",
            Some(&"s-1".parse().unwrap()),
            now,
        )
        .await
        .unwrap();
    assert_eq!(only_one.len(), 1);
    assert_eq!(only_one[0].payload, Some(json!({"ok": true})));
    let rest = store
        .signal_fire("approve", &json!(null), "cli", None, now)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert!(
        store
            .signal_fire("approve", &json!(null), "cli", None, now)
            .await
            .unwrap()
            .is_empty()
    );
    let all = store.signals(Some("approve")).await.unwrap();
    assert!(
        all.iter()
            .all(|s| s.status == SignalStatus::Fired && s.fired_at.is_some())
    );
    let c = Signal::waiting("other", None);
    store.signal_register(&c).await.unwrap();
    store.signal_cancel(&c.signal_id).await.unwrap();
    assert_eq!(
        store.signals(Some("other")).await.unwrap()[0].status,
        SignalStatus::Cancelled
    );
    assert!(store.signal_cancel("missing").await.is_err());
}

pub async fn checkpoints_round_trip_and_keep_waiting_sessions_alive(store: Arc<dyn Store>, _url: &str) {
    let id: SessionId = "wait-1".parse().unwrap();
    let mut cp = Checkpoint::pending(id.clone(), "approve", "confirmation", "approve");
    assert!(cp.checkpoint_id.starts_with("cp_") && cp.checkpoint_id.len() == 15);
    cp.ui_spec = json!({"prompt": "Ship it?"});
    cp.continuation = json!({"state": {"a": 1}});
    store.checkpoint_put(&cp).await.unwrap();
    let pending = store
        .checkpoints(Some(&id), Some(CheckpointStatus::Pending))
        .await
        .unwrap();
    assert_eq!(pending, vec![cp.clone()]);

    // A waiting session with a pending checkpoint survives the stale-heartbeat sweep; a running one not.
    let mut waiting = Session::new(id.clone());
    waiting.status = SessionStatus::Waiting;
    waiting.heartbeat_at = Timestamp::from_micros(1);
    let mut running = Session::new("run-1".parse().unwrap());
    running.heartbeat_at = Timestamp::from_micros(1);
    store.put_sessions(&[waiting, running]).await.unwrap();
    let swept = store.cleanup(Timestamp::now(), None, false).await.unwrap();
    assert_eq!(swept.orphaned, vec!["run-1".parse::<SessionId>().unwrap()]);
    assert_eq!(store.session(&id).await.unwrap().status, SessionStatus::Waiting);

    cp.status = CheckpointStatus::Responded;
    cp.response = Some(json!({"confirmed": true}));
    cp.responded_at = Some(Timestamp::now());
    store.checkpoint_put(&cp).await.unwrap();
    assert!(
        store
            .checkpoints(Some(&id), Some(CheckpointStatus::Pending))
            .await
            .unwrap()
            .is_empty()
    );
    let all = store.checkpoints(None, None).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].response, Some(json!({"confirmed": true})));
    assert_eq!(store.status().await.unwrap().checkpoints, 1);
}

pub async fn concurrent_writers_lose_and_duplicate_nothing(_store: Arc<dyn Store>, url: &str) {
    let mut tasks = Vec::new();
    for w in 0..4 {
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            // Each writer has its own handle (its own connection), as separate processes would.
            let store = rvbbit_store::open(&url, Path::new("/")).await.unwrap();
            let all = events(&format!("w-{w}"), 2000);
            for chunk in all.chunks(100) {
                store.append(chunk).await.unwrap();
            }
            // Retrying a batch (as after a lost acknowledgement) must not duplicate it.
            store.append(&all[..100]).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let store = rvbbit_store::open(url, Path::new("/")).await.unwrap();
    assert_eq!(store.count_events(&EventFilter::default()).await.unwrap(), 8000);
    for w in 0..4 {
        let f = EventFilter {
            session_id: Some(format!("w-{w}").parse().unwrap()),
            ..EventFilter::default()
        };
        let seqs: Vec<i64> = store
            .events(&f)
            .await
            .unwrap()
            .iter()
            .map(|e| e.event.seq)
            .collect();
        assert_eq!(seqs, (0..2000).collect::<Vec<_>>());
    }
}

pub async fn event_cursor_resumes_after_a_store_seq(store: Arc<dyn Store>, _url: &str) {
    store.append(&events("s-cur", 6)).await.unwrap();
    let all = store.events(&EventFilter::default()).await.unwrap();
    let cursor = all[2].store_seq;
    let page = EventFilter {
        session_id: Some("s-cur".parse().unwrap()),
        after_seq: Some(cursor),
        limit: Some(2),
        ..EventFilter::default()
    };
    let next = store.events(&page).await.unwrap();
    assert_eq!(
        next.iter().map(|e| e.store_seq).collect::<Vec<_>>(),
        [all[3].store_seq, all[4].store_seq]
    );
    let rest = EventFilter {
        after_seq: Some(all[5].store_seq),
        ..EventFilter::default()
    };
    assert!(store.events(&rest).await.unwrap().is_empty());
}

pub async fn api_keys_authenticate_until_revoked(store: Arc<dyn Store>, _url: &str) {
    assert_eq!(store.active_keys().await.unwrap(), 0);
    store
        .key_insert(&ApiKey::new("key_1", "ci", "hash-one"))
        .await
        .unwrap();
    let dup = store
        .key_insert(&ApiKey::new("key_2", "dup", "hash-one"))
        .await
        .unwrap_err();
    assert_eq!(dup.code().code, "RVB-S006", "{dup}");
    let now = Timestamp::now();
    let key = store.key_authenticate("hash-one", now).await.unwrap().unwrap();
    assert_eq!((key.key_id.as_str(), key.name.as_str()), ("key_1", "ci"));
    assert!(store.key_authenticate("hash-two", now).await.unwrap().is_none());
    let listed = store.keys().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_used_at, Some(now), "the use is recorded");
    let revoked = store.key_revoke("key_1", now).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(store.key_authenticate("hash-one", now).await.unwrap().is_none());
    assert_eq!(store.active_keys().await.unwrap(), 0);
    let missing = store.key_revoke("key_9", now).await.unwrap_err();
    assert!(missing.hint().contains("rvbbit keys list"), "{}", missing.hint());
    // A key may belong to a tenant, which authentication hands back.
    assert_eq!(key.tenant, None);
    let mut tenant_key = ApiKey::new("key_3", "acme-app", "hash-three");
    tenant_key.tenant = Some("acme".into());
    store.key_insert(&tenant_key).await.unwrap();
    let found = store.key_authenticate("hash-three", now).await.unwrap().unwrap();
    assert_eq!(found.tenant.as_deref(), Some("acme"));
}

/// `create_session` is insert-if-absent: a second run with the same id is refused, naming it.
pub async fn a_session_id_is_created_once(store: Arc<dyn Store>, _url: &str) {
    let id: SessionId = "taken-1".parse().unwrap();
    let mut first = Session::new(id.clone());
    first.cascade_id = Some("one".into());
    store.create_session(&first).await.unwrap();
    let mut second = Session::new(id.clone());
    second.cascade_id = Some("two".into());
    let err = store.create_session(&second).await.unwrap_err();
    assert_eq!(err.code().code, "RVB-S006");
    assert!(err.to_string().contains("taken-1"), "{err}");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(
        store.session(&id).await.unwrap().cascade_id.as_deref(),
        Some("one"),
        "the refused run changed nothing"
    );
}

/// 20 rounds of two claims racing for one waiting session (each through its own connection, as two
/// processes would): exactly one wins every round, the loser is told the session is being resumed,
/// and a claim with a checkpoint that is no longer pending loses too.
pub async fn concurrent_claims_of_a_waiting_session_let_exactly_one_win(store: Arc<dyn Store>, url: &str) {
    let other = rvbbit_store::open(url, Path::new("/")).await.unwrap();
    for round in 0..20 {
        let id: SessionId = format!("claim-{round}").parse().unwrap();
        let cp = Checkpoint::pending(id.clone(), "gate", "choice", "gate");
        store.checkpoint_put(&cp).await.unwrap();
        let mut waiting = Session::new(id.clone());
        waiting.status = SessionStatus::Waiting;
        store.put_sessions(&[waiting]).await.unwrap();
        let (a, b) = tokio::join!(
            store.claim_waiting(&id, &cp.checkpoint_id, Timestamp::now()),
            other.claim_waiting(&id, &cp.checkpoint_id, Timestamp::now()),
        );
        let (won, lost) = match (a, b) {
            (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
            (a, b) => panic!("round {round}: exactly one claim must win: {a:?} / {b:?}"),
        };
        assert_eq!(won.status, SessionStatus::Running);
        assert_eq!(lost.code().code, "RVB-S006");
        assert!(
            lost.to_string()
                .contains("already being resumed by another process"),
            "{lost}"
        );
        assert_eq!(store.session(&id).await.unwrap().status, SessionStatus::Running);
    }
    // Waiting again at a new checkpoint: a claim still holding the old one loses.
    let id: SessionId = "claim-0".parse().unwrap();
    let old = store.checkpoints(Some(&id), None).await.unwrap().remove(0);
    let mut answered = old.clone();
    answered.status = CheckpointStatus::Responded;
    store.checkpoint_put(&answered).await.unwrap();
    let mut waiting = store.session(&id).await.unwrap();
    waiting.status = SessionStatus::Waiting;
    waiting.updated_at = Timestamp::now();
    store.put_sessions(&[waiting]).await.unwrap();
    let stale = store
        .claim_waiting(&id, &old.checkpoint_id, Timestamp::now())
        .await
        .unwrap_err();
    assert!(stale.to_string().contains("answered or replaced"), "{stale}");
    // Unknown sessions and finished ones are refused with their own reasons.
    let missing = store
        .claim_waiting(&"nobody".parse().unwrap(), "cp_x", Timestamp::now())
        .await
        .unwrap_err();
    assert_eq!(missing.code().code, "RVB-S005");
}

/// Two answers to one waiting signal at once (two connections): exactly one fires it.
pub async fn concurrent_answers_to_one_signal_fire_it_once(store: Arc<dyn Store>, url: &str) {
    let other = rvbbit_store::open(url, Path::new("/")).await.unwrap();
    for round in 0..20 {
        let sid: SessionId = format!("answer-{round}").parse().unwrap();
        store
            .signal_register(&Signal::waiting("gate", Some(sid.clone())))
            .await
            .unwrap();
        let (go, stop) = (json!("go"), json!("stop"));
        let (a, b) = tokio::join!(
            store.signal_fire("gate", &go, "a", Some(&sid), Timestamp::now()),
            other.signal_fire("gate", &stop, "b", Some(&sid), Timestamp::now()),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.len() + b.len(), 1, "round {round}: {a:?} / {b:?}");
        let winner = a.first().or(b.first()).unwrap();
        let stored = store.signals(Some("gate")).await.unwrap();
        let stored = stored
            .iter()
            .find(|s| s.session_id.as_ref() == Some(&sid))
            .unwrap();
        assert_eq!(
            stored.payload, winner.payload,
            "the stored answer is the winner's"
        );
    }
}

/// Cancelling a waiting session (no process runs it) ends it at once with its open questions; a late
/// write from a process that did not know cannot revive it, and a running one is only asked to stop.
pub async fn a_waiting_session_is_cancelled_at_once_and_a_finished_one_keeps_its_status(
    store: Arc<dyn Store>,
    _url: &str,
) {
    let id: SessionId = "cancel-waiting".parse().unwrap();
    let cp = Checkpoint::pending(id.clone(), "gate", "choice", "gate");
    store.checkpoint_put(&cp).await.unwrap();
    store
        .signal_register(&Signal::waiting("gate", Some(id.clone())))
        .await
        .unwrap();
    let mut waiting = Session::new(id.clone());
    waiting.status = SessionStatus::Waiting;
    store.put_sessions(&[waiting.clone()]).await.unwrap();
    let cancelled = store.request_cancel(&id, "no longer needed").await.unwrap();
    assert_eq!(cancelled.status, SessionStatus::Cancelled);
    assert!(cancelled.ended_at.is_some());
    let open = store
        .checkpoints(Some(&id), Some(CheckpointStatus::Pending))
        .await
        .unwrap();
    assert!(open.is_empty(), "its questions closed with it");
    let signals = store.signals(Some("gate")).await.unwrap();
    let ours = signals
        .iter()
        .find(|s| s.session_id.as_ref() == Some(&id))
        .unwrap();
    assert_eq!(ours.status, SignalStatus::Cancelled);
    let claim = store
        .claim_waiting(&id, &cp.checkpoint_id, Timestamp::now())
        .await
        .unwrap_err();
    assert_eq!(claim.code().code, "RVB-S006", "{claim}");
    // A late record from the process that was waiting cannot revive it.
    waiting.status = SessionStatus::Running;
    waiting.updated_at = Timestamp::now().add_micros(1_000_000);
    store.put_sessions(&[waiting]).await.unwrap();
    assert_eq!(store.session(&id).await.unwrap().status, SessionStatus::Cancelled);
    // A running session is only asked.
    let run: SessionId = "cancel-running".parse().unwrap();
    store.put_sessions(&[Session::new(run.clone())]).await.unwrap();
    let asked = store.request_cancel(&run, "stop").await.unwrap();
    assert_eq!(
        (asked.status, asked.cancel_requested),
        (SessionStatus::Running, true)
    );
    assert_eq!(store.session(&run).await.unwrap().status, SessionStatus::Running);
}
