//! The conformance suite on PostgreSQL (a throwaway server from the testkit, a fresh database per
//! test), plus what only a server has: masked URLs, unreachable servers, wrong credentials, migrations
//! racing from many processes, a schema from a newer rvbbit.

use std::path::Path;

use rvbbit_store::EventFilter;
use rvbbit_testkit::postgres;

/// A fresh, empty database on the shared throwaway server.
pub async fn fresh() -> (String, ()) {
    let url = tokio::task::spawn_blocking(postgres::fresh_database)
        .await
        .unwrap();
    (url, ())
}

store_conformance!(postgres_backend, crate::postgres::fresh);

#[tokio::test]
async fn an_unreachable_server_is_unavailable_naming_the_url_with_its_password_masked() {
    // A closed loopback port: connection refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://ada:hunter2@127.0.0.1:{port}/rvbbit");
    let err = rvbbit_store::open(&url, Path::new("/"))
        .await
        .err()
        .expect("open must fail");
    assert_eq!(err.code().code, "RVB-S001", "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("postgres://ada:****@127.0.0.1:{port}/rvbbit")),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        !format!("{err:?}").contains("hunter2"),
        "the debug form hides it too"
    );
}

#[tokio::test]
async fn a_malformed_url_is_refused_with_the_expected_shape() {
    let err = rvbbit_store::open("postgres://ada:pw@host:notaport/db", Path::new("/"))
        .await
        .err()
        .expect("open must fail");
    assert_eq!(err.code().code, "RVB-S001", "{err}");
    assert!(
        err.to_string()
            .contains("postgres://user[:password]@host[:port]/database"),
        "{err}"
    );
    assert!(!err.to_string().contains(":pw@"), "{err}");
}

#[tokio::test]
async fn wrong_credentials_and_a_missing_database_say_so() {
    let url = tokio::task::spawn_blocking(postgres::fresh_database)
        .await
        .unwrap();
    let missing = url.rsplit_once('/').unwrap().0.to_owned() + "/no_such_database";
    let err = rvbbit_store::open(&missing, Path::new("/"))
        .await
        .err()
        .expect("open must fail");
    assert_eq!(err.code().code, "RVB-S001");
    let chain = rvbbit_core::error_chain(&err);
    assert!(
        chain.contains("no_such_database") && chain.contains("does not exist"),
        "{chain}"
    );
    let nobody = url.replacen("postgres://postgres@", "postgres://nobody:pw@", 1);
    let err = rvbbit_store::open(&nobody, Path::new("/"))
        .await
        .err()
        .expect("open must fail");
    let chain = rvbbit_core::error_chain(&err);
    assert!(chain.contains("\"nobody\" does not exist"), "{chain}");
    assert!(!chain.contains(":pw@"), "{chain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_processes_opening_a_new_database_at_once_migrate_it_once() {
    let url = tokio::task::spawn_blocking(postgres::fresh_database)
        .await
        .unwrap();
    let opens = (0..8).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { rvbbit_store::open(&url, Path::new("/")).await.map(|_| ()) })
    });
    for o in opens {
        o.await.unwrap().unwrap();
    }
    let store = rvbbit_store::open(&url, Path::new("/")).await.unwrap();
    let status = store.status().await.unwrap();
    assert_eq!(status.schema_version, status.latest_version);
    assert!(status.size_bytes.unwrap() > 0);
    let backup = tempfile::tempdir().unwrap();
    let tables = store.backup(backup.path()).await.unwrap();
    let migrations = tables.iter().find(|(t, _)| t == "schema_migrations").unwrap();
    assert_eq!(
        migrations.1 as i64, status.latest_version,
        "each step recorded once"
    );
}

#[tokio::test]
async fn a_schema_from_a_newer_rvbbit_is_refused_before_anything_is_written() {
    let url = tokio::task::spawn_blocking(postgres::fresh_database)
        .await
        .unwrap();
    let store = rvbbit_store::open(&url, Path::new("/")).await.unwrap();
    store.append(&crate::events("s-new", 3)).await.unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .execute(
            "INSERT INTO schema_migrations (version, name, applied_at_us) VALUES (99, 'future', 0)",
            &[],
        )
        .await
        .unwrap();
    let err = rvbbit_store::open(&url, Path::new("/"))
        .await
        .err()
        .expect("open must fail");
    assert_eq!(err.code().code, "RVB-S002", "{err}");
    assert!(err.to_string().contains("schema version 99"), "{err}");
    assert_eq!(store.count_events(&EventFilter::default()).await.unwrap(), 3);
}

#[tokio::test]
async fn compaction_and_backup_work_on_a_server() {
    let (url, ()) = fresh().await;
    let store = rvbbit_store::open(&url, Path::new("/")).await.unwrap();
    store.append(&crate::events("s-bk", 9)).await.unwrap();
    store.compact().await.unwrap();
    store.ping().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tables = store.backup(dir.path()).await.unwrap();
    assert_eq!(tables.iter().find(|(t, _)| t == "events").unwrap().1, 9);
    let text = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["session_id"], "s-bk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_laptop_store_is_copied_into_postgres_once_even_when_copied_twice() {
    use rvbbit_core::{SessionId, Timestamp};
    use rvbbit_store::{ApiKey, Checkpoint, Session, Signal};

    let (sqlite_url, _dir) = crate::sqlite::fresh().await;
    let laptop = rvbbit_store::open(&sqlite_url, Path::new("/")).await.unwrap();
    let sessions: Vec<Session> = (0..3)
        .map(|i| Session::new(format!("copy-{i}").parse::<SessionId>().unwrap()))
        .collect();
    laptop.put_sessions(&sessions).await.unwrap();
    for i in 0..3 {
        laptop
            .append(&crate::events(&format!("copy-{i}"), 2500))
            .await
            .unwrap();
    }
    let sid: SessionId = "copy-0".parse().unwrap();
    laptop
        .checkpoint_put(&Checkpoint::pending(sid.clone(), "gate", "choice", "gate"))
        .await
        .unwrap();
    laptop
        .signal_register(&Signal::waiting("gate", Some(sid)))
        .await
        .unwrap();
    laptop
        .key_insert(&ApiKey::new("key_1", "ci", "hash-1"))
        .await
        .unwrap();
    let now = Timestamp::now();
    for k in 0..2500 {
        laptop
            .cache_put(&format!("k{k:05}"), &serde_json::json!(k), now, None)
            .await
            .unwrap();
    }
    let (pg_url, ()) = fresh().await;
    let team = rvbbit_store::open(&pg_url, Path::new("/")).await.unwrap();
    let mut pages = 0;
    let first = rvbbit_store::copy_all(laptop.as_ref(), team.as_ref(), |_| pages += 1)
        .await
        .unwrap();
    assert!(pages > 3, "progress is reported page by page");
    assert_eq!(
        (first.sessions, first.events, first.events_inserted),
        (3, 7500, 7500)
    );
    assert_eq!((first.checkpoints, first.signals, first.api_keys), (1, 1, 1));
    assert_eq!(first.cache_entries, 2500);
    // Again, as after an interruption: nothing is copied twice.
    let second = rvbbit_store::copy_all(laptop.as_ref(), team.as_ref(), |_| {})
        .await
        .unwrap();
    assert_eq!((second.events, second.events_inserted), (7500, 0));
    assert_eq!((second.api_keys, second.api_keys_present), (0, 1));
    let status = team.status().await.unwrap();
    assert_eq!(
        (
            status.sessions,
            status.events,
            status.checkpoints,
            status.signals,
            status.cache_entries
        ),
        (3, 7500, 1, 1, 2500)
    );
    assert_eq!(
        team.count_events(&EventFilter::default()).await.unwrap(),
        laptop.count_events(&EventFilter::default()).await.unwrap()
    );
    let same = rvbbit_store::copy_all(team.as_ref(), team.as_ref(), |_| {})
        .await
        .unwrap_err();
    assert!(
        same.to_string().contains("cannot be copied into itself"),
        "{same}"
    );
}
