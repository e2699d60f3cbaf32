//! The conformance suite on the embedded SQLite backend, plus SQLite-specific checks.

use std::path::Path;

use rvbbit_store::EventFilter;
use rvbbit_store::sqlite::SqliteOptions;

/// A fresh store in its own temporary directory.
pub async fn fresh() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("nested/rvbbit.db").display());
    (url, dir)
}

store_conformance!(sqlite_backend, crate::sqlite::fresh);

#[test]
fn urls_parse_options_and_reject_the_rest() {
    let o = SqliteOptions::from_url(
        "sqlite://.rvbbit/rvbbit.db?busy_timeout_ms=20&mode=ro",
        Path::new("/w"),
    )
    .unwrap();
    assert_eq!(o.path, Path::new("/w/.rvbbit/rvbbit.db"));
    assert_eq!(o.busy_timeout.as_millis(), 20);
    assert!(o.read_only);
    assert!(SqliteOptions::from_url("sqlite://x.db?color=red", Path::new("/")).is_err());
    assert!(SqliteOptions::from_url("postgres://h/db", Path::new("/")).is_err());
}

#[tokio::test]
async fn a_read_only_store_refuses_writes_as_unavailable() {
    let (url, _dir) = fresh().await;
    rvbbit_store::open(&url, Path::new("/")).await.unwrap();
    let ro = rvbbit_store::open(&format!("{url}?mode=ro"), Path::new("/"))
        .await
        .unwrap();
    let err = ro.append(&crate::events("s", 1)).await.unwrap_err();
    assert!(!err.is_transient());
    assert_eq!(err.code().code, "RVB-S001");
    assert_eq!(ro.count_events(&EventFilter::default()).await.unwrap(), 0);
}

#[tokio::test]
async fn backup_writes_every_table_as_json_lines() {
    let (url, dir) = fresh().await;
    let store = rvbbit_store::open(&url, Path::new("/")).await.unwrap();
    store.append(&crate::events("s", 5)).await.unwrap();
    store.compact().await.unwrap();
    let out = dir.path().join("backup");
    let tables = store.backup(&out).await.unwrap();
    assert!(tables.contains(&("events".to_owned(), 5)));
    // The chat identities and integrations (issue 20) are backed up like the rest.
    for table in ["channel_identities", "channel_links", "channel_integrations"] {
        assert!(
            tables.iter().any(|(t, _)| t == table),
            "{table} missing from {tables:?}"
        );
        assert!(out.join(format!("{table}.jsonl")).is_file());
    }
    let text = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 5);
}
