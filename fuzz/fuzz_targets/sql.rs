//! SQL statement handling through a real `SqlSession` (the path of `rvbbit sql`, `POST /api/v1/sql` and
//! pgwire's simple queries) with small `[limits]`: every text either answers or fails with an error; none
//! panics, overflows a stack or runs past the per-input time bound. Each input gets a fresh session over
//! one SQLite store in a temporary directory (files confined to it); `rvbbit_udf` calls go to a closed
//! loopback port, so they fail fast instead of reaching a network.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use rvbbit_engine::Engine;
use rvbbit_engine::tools::Registry;
use rvbbit_llm::{Client, ProviderSettings};
use rvbbit_sql::{Limits, Settings, SqlRuntime};
use rvbbit_store::{Writer, WriterOptions};

struct World {
    rt: tokio::runtime::Runtime,
    sql: SqlRuntime,
    _dir: tempfile::TempDir,
    _writer: Writer,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let dir = tempfile::TempDir::new().expect("a temporary directory");
        std::fs::write(dir.path().join("t.csv"), "a,b\n1,x\n2,y\n").expect("a CSV file");
        let (sql, writer) = rt.block_on(async {
            let store = rvbbit_store::open("sqlite://rvbbit.db", dir.path())
                .await
                .expect("a SQLite store");
            let writer = Writer::spawn(store.clone(), WriterOptions::new(dir.path().join("spill")));
            let mut provider = ProviderSettings::new("http://127.0.0.1:9/v1");
            provider.retry.max_retries = 0;
            provider.default_model = "fuzz/model".into();
            let client = Client::new(provider).expect("a provider client");
            let mut registry = Registry::builtin();
            let batch_tables = rvbbit_sql::register_tools(&mut registry);
            let engine = Engine::new(registry)
                .with_provider(Arc::new(client))
                .with_writer(writer.handle())
                .with_default_model("fuzz/model");
            let mut settings = Settings::new(dir.path().to_path_buf());
            settings.default_model = "fuzz/model".into();
            settings.confine_files = true;
            let mut limits = Limits::default();
            limits.expression_depth = 64;
            limits.statements = 8;
            limits.query_bytes = 8192;
            settings.limits = limits;
            let sql = SqlRuntime::new(engine, Some(store), Some(writer.handle()), settings, batch_tables)
                .expect("a SQL runtime");
            (sql, writer)
        });
        World {
            rt,
            sql,
            _dir: dir,
            _writer: writer,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let w = world();
    w.rt.block_on(async {
        let session = w.sql.session();
        // A statement that is still working after the bound is dropped (cancelled), as a client's
        // CancelRequest would; the session must then still answer.
        let bounded = tokio::time::timeout(Duration::from_secs(2), session.execute(text)).await;
        if let Ok(Err(e)) = &bounded {
            // Errors are for users: they never carry a panic's or the temporary directory's text.
            let message = e.to_string();
            assert!(!message.contains("panicked"), "{message}");
        }
        let one = session.execute("SELECT 1").await;
        assert!(one.is_ok(), "the session stopped answering: {one:?}");
    });
});
