//! TLS to the PostgreSQL store, against a throwaway server that takes only TLS connections (its
//! `pg_hba.conf` rejects plain ones), its certificate signed by a test authority for `localhost` only:
//! each `sslmode` behaves as libpq's, and every refusal is RVB-S001 saying why.

use std::path::Path;

use rvbbit_testkit::postgres::{self, TestPostgres};

/// `open` on `url`: `Ok(())` once the store answers a ping, else the error with its cause.
async fn try_open(url: &str) -> Result<(), String> {
    match rvbbit_store::open(url, Path::new("/")).await {
        Ok(store) => store.ping().await.map_err(|e| format!("ping: {e}")),
        Err(e) => {
            assert_eq!(e.code().code, "RVB-S001", "{e}");
            // What the CLI prints: the error and its causes.
            let chain = rvbbit_core::error_chain(&e);
            eprintln!("{chain}");
            Err(chain)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sslmode_connects_or_refuses_as_libpq_does() {
    let server = tokio::task::spawn_blocking(TestPostgres::start_tls)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let files = server.tls_files().unwrap().clone();
    let ca = files.ca.display().to_string();
    let other = files.other_ca.display().to_string();
    let ip = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port());
    let name = format!("postgres://postgres@localhost:{}/postgres", server.port());

    // Encrypted without checking the certificate: require, and prefer (the default).
    try_open(&format!("{ip}?sslmode=require")).await.unwrap();
    try_open(&ip).await.unwrap();
    try_open(&format!("{ip}?sslmode=prefer&application_name=tls-test"))
        .await
        .unwrap();

    // Plain TCP is refused by this server: the cause is the server's.
    let err = try_open(&format!("{ip}?sslmode=disable")).await.unwrap_err();
    assert!(
        err.contains("no encryption") || err.contains("pg_hba.conf"),
        "{err}"
    );

    // The authority is checked: verify-ca, and require with a root certificate.
    try_open(&format!("{ip}?sslmode=verify-ca&sslrootcert={ca}"))
        .await
        .unwrap();
    try_open(&format!("{ip}?sslmode=require&sslrootcert={ca}"))
        .await
        .unwrap();
    for mode in ["verify-ca", "verify-full", "require"] {
        let err = try_open(&format!("{ip}?sslmode={mode}&sslrootcert={other}"))
            .await
            .unwrap_err();
        assert!(
            err.contains("UnknownIssuer") && err.contains("sslrootcert=PATH"),
            "{mode}: {err}"
        );
    }

    // verify-full checks the name too: the certificate is for localhost, not 127.0.0.1.
    let err = try_open(&format!("{ip}?sslmode=verify-full&sslrootcert={ca}"))
        .await
        .unwrap_err();
    assert!(
        err.contains("not valid for name") && err.contains("verify-ca"),
        "{err}"
    );
    try_open(&format!("{name}?sslmode=verify-full&sslrootcert={ca}"))
        .await
        .unwrap();

    // The store works over TLS, not only the ping: migrations ran, and a second open finds them.
    let store = rvbbit_store::open(
        &format!("{name}?sslmode=verify-full&sslrootcert={ca}"),
        Path::new("/"),
    )
    .await
    .unwrap();
    let status = store.status().await.unwrap();
    assert_eq!(status.schema_version, status.latest_version);
}

#[tokio::test]
async fn bad_tls_parameters_name_the_parameter_and_the_fix() {
    let url = tokio::task::spawn_blocking(postgres::fresh_database)
        .await
        .unwrap();
    let err = try_open(&format!(
        "{url}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"
    ))
    .await
    .unwrap_err();
    assert!(
        err.contains("/nonexistent/ca.pem") && err.contains("sslrootcert"),
        "{err}"
    );
    let err = try_open(&format!("{url}?sslmode=sometimes")).await.unwrap_err();
    assert!(err.contains("sslmode"), "{err}");
    let err = try_open(&format!("{url}?sslmode=verify-ca&sslmode=disable"))
        .await
        .unwrap_err();
    assert!(err.contains("twice"), "{err}");
    // The shared test server has no TLS: require says so rather than falling back to plain text.
    let err = try_open(&format!("{url}?sslmode=require")).await.unwrap_err();
    assert!(
        err.contains("does not support TLS") && err.contains("sslmode=prefer"),
        "{err}"
    );
    // prefer (the default) falls back to plain text on it, as libpq does.
    try_open(&format!("{url}?sslmode=prefer")).await.unwrap();
}
