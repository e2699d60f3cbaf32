//! The semantic SQL functions in `pg_proc` (docs/semantic-sql.md), seen by a real PostgreSQL client:
//! psql's `\df` lists the built-in and the project's own functions with their argument and result
//! types over the wire (`RVBBIT_PSQL`, or `psql` on the PATH; missing fails under `CI=true`).

use std::process::Command;
use std::time::Duration;

use rvbbit_sql::pgwire::{WireAuth, WireServer};
use tokio::net::TcpListener;

use crate::support::Harness;

/// A project's own function.
const IS_SPAM: &str = "cascade_id: is_spam
sql_function:
  args: [{name: text}, {name: strictness, type: DOUBLE, optional: true, default: 0.5}]
  returns: BOOLEAN
  operators: ['{{ text }} IS_SPAM']
cells:
  - name: judge
    instructions: \"Is this spam? {{ input.text }}\"
";

/// The psql binary, or None (skip) outside CI when there is none.
fn psql() -> Option<String> {
    let psql = std::env::var("RVBBIT_PSQL").unwrap_or_else(|_| "psql".to_owned());
    if Command::new(&psql)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some(psql);
    }
    let reason = format!("no psql ({psql}): run `. scripts/test-deps.sh`, which installs postgresql-client");
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{reason}");
    eprintln!("skipped: {reason}");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_df_lists_the_semantic_functions_with_their_types() {
    let Some(psql) = psql() else { return };
    // No model is asked: listing functions runs none.
    let h = Harness::new("http://127.0.0.1:9", 2).await;
    h.write("cascades/is_spam.yaml", IS_SPAM);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = WireServer::new(h.runtime.clone(), WireAuth::Trust, Duration::from_secs(5));
    let serving = tokio::spawn(server.serve(listener, async {
        // Dropped sender or a stop signal: either way the server stops.
        let _ = stopped.await;
    }));
    let run = move |command: &str| {
        let output = Command::new(&psql)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "lab",
                "-d",
                "lab",
            ])
            .args(["-X", "-A", "-t", "-c", command])
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(output.status.success(), "psql -c {command}: {stderr}");
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    let listed = tokio::task::spawn_blocking(move || {
        (
            run("\\df semantic_matches"),
            run("\\df is_spam"),
            run("\\df summar*"),
        )
    })
    .await
    .unwrap();
    // The server may already be gone when a test failed; stopping is best effort.
    let _ = stop.send(());
    serving.await.unwrap();
    assert_eq!(
        listed.0.trim(),
        "public|semantic_matches|boolean|text text, criterion text|func"
    );
    assert_eq!(
        listed.1.trim(),
        "public|is_spam|boolean|text text, strictness double precision DEFAULT 0.5|func"
    );
    assert_eq!(listed.2.trim(), "public|summarize|text|texts text|agg");
}
