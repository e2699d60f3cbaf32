//! Spending limits: the conformance checks every backend runs through `store_conformance!`.

use std::sync::Arc;

use rvbbit_core::{Event, EventKind, MicroUsd, SessionId, Timestamp};
use rvbbit_store::limits::{self, LimitPeriod, LimitScope, SpendLimit};
use rvbbit_store::{CostGroup, EventFilter, Session, Store};
use serde_json::json;

fn priced(kind: EventKind, session: &str, caller: &str, micros: i64, at: Timestamp) -> Event {
    let sid: SessionId = session.parse().unwrap();
    let mut e = Event::new(kind, sid, 0);
    e.caller_id = Some(caller.parse().unwrap());
    e.cost = Some(MicroUsd::from_micros(micros));
    e.ts_us = at;
    e
}

pub async fn spending_limits_are_set_listed_removed_and_count_what_was_spent(
    store: Arc<dyn Store>,
    _url: &str,
) {
    let usd = MicroUsd::from_micros;
    assert!(store.limits().await.unwrap().is_empty());
    store
        .limit_set(&SpendLimit::new(
            LimitScope::Tenant,
            "acme",
            LimitPeriod::Day,
            usd(250),
        ))
        .await
        .unwrap();
    store
        .limit_set(&SpendLimit::new(
            LimitScope::Caller,
            "cli",
            LimitPeriod::Month,
            usd(125),
        ))
        .await
        .unwrap();
    store
        .limit_set(&SpendLimit::new(
            LimitScope::All,
            "",
            LimitPeriod::Day,
            usd(1_000),
        ))
        .await
        .unwrap();
    // Setting a limit again changes its amount; it stays one limit.
    store
        .limit_set(&SpendLimit::new(
            LimitScope::Tenant,
            "acme",
            LimitPeriod::Day,
            usd(220),
        ))
        .await
        .unwrap();
    let all = store.limits().await.unwrap();
    let shown: Vec<_> = all
        .iter()
        .map(|l| (l.scope, l.name.as_str(), l.period, l.amount.micros()))
        .collect();
    assert_eq!(
        shown,
        [
            (LimitScope::All, "", LimitPeriod::Day, 1_000),
            (LimitScope::Caller, "cli", LimitPeriod::Month, 125),
            (LimitScope::Tenant, "acme", LimitPeriod::Day, 220),
        ]
    );

    // Spend: a CLI run's LLM call, a batch run's compute charged to tenant `acme`, and an old call.
    let now = Timestamp::now();
    let mut tenant_session = Session::new("s-batch".parse().unwrap());
    tenant_session.invocation_metadata = json!({"tenant": "acme"});
    store.put_sessions(&[tenant_session]).await.unwrap();
    store
        .append(&[
            priced(EventKind::LlmResponse, "s-cli", "cli-quiet-heron-1", 100, now),
            priced(EventKind::ComputeCost, "s-batch", "batch-bold-fox-2", 200, now),
            priced(
                EventKind::LlmResponse,
                "s-old",
                "cli-old-owl-3",
                5_000,
                now.add_micros(-40 * 86_400_000_000),
            ),
        ])
        .await
        .unwrap();
    let today = now.start_of_utc_day();
    assert_eq!(store.spent(LimitScope::All, "", today).await.unwrap(), usd(300));
    assert_eq!(
        store.spent(LimitScope::Caller, "cli", today).await.unwrap(),
        usd(100)
    );
    assert_eq!(
        store
            .spent(LimitScope::Caller, "cli-quiet-heron-1", today)
            .await
            .unwrap(),
        usd(100)
    );
    assert_eq!(
        store.spent(LimitScope::Caller, "cl", today).await.unwrap(),
        usd(0)
    );
    assert_eq!(
        store.spent(LimitScope::Caller, "batch", today).await.unwrap(),
        usd(200)
    );
    assert_eq!(
        store.spent(LimitScope::Tenant, "acme", today).await.unwrap(),
        usd(200)
    );
    assert_eq!(
        store.spent(LimitScope::Tenant, "globex", today).await.unwrap(),
        usd(0)
    );
    assert_eq!(
        store
            .spent(LimitScope::All, "", Timestamp::from_micros(0))
            .await
            .unwrap(),
        usd(5_300)
    );
    // The compute part of the cost totals.
    let total = store
        .costs(CostGroup::Total, &EventFilter::default())
        .await
        .unwrap();
    assert_eq!(
        (total[0].cost.micros(), total[0].compute_cost.micros()),
        (5_300, 200)
    );

    // What applies to whom: a CLI caller meets the global and the `cli` limits (100 of 125: 80 %).
    let cli = "cli-quiet-heron-1".parse().unwrap();
    let v = limits::check(&*store, &cli, None, now).await.unwrap();
    assert!(v.reached.is_empty());
    assert_eq!(v.near.len(), 1);
    assert_eq!(v.near[0].limit.scope, LimitScope::Caller);
    assert_eq!(v.near[0].percent(), 80);
    assert_eq!(v.applicable.len(), 2);
    assert_eq!(v.tightest().unwrap().left(), usd(25));
    // A batch charged to `acme` (200 of 220: 90 %) is near; at 220 it is reached.
    let batch = "batch-bold-fox-9".parse().unwrap();
    let v = limits::check(&*store, &batch, Some("acme"), now).await.unwrap();
    assert_eq!(v.near.len(), 1);
    store
        .append(&[priced(
            EventKind::ComputeCost,
            "s-batch",
            "batch-bold-fox-2",
            20,
            now,
        )])
        .await
        .unwrap();
    let v = limits::check(&*store, &batch, Some("acme"), now).await.unwrap();
    assert_eq!(v.reached.len(), 1);
    assert_eq!(v.reached[0].limit.name, "acme");
    assert_eq!(v.reached[0].spent, usd(220));

    assert!(
        store
            .limit_remove(LimitScope::Tenant, "acme", LimitPeriod::Day)
            .await
            .unwrap()
    );
    assert!(
        !store
            .limit_remove(LimitScope::Tenant, "acme", LimitPeriod::Day)
            .await
            .unwrap()
    );
    assert!(
        !store
            .limit_remove(LimitScope::Caller, "cli", LimitPeriod::Day)
            .await
            .unwrap()
    );
    assert_eq!(store.limits().await.unwrap().len(), 2);
}
