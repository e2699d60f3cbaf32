//! `rvbbit serve sql` as a process, driven by real PostgreSQL clients: psql (`RVBBIT_PSQL`), psycopg 3
//! (`RVBBIT_PYTHON`, a python with psycopg installed) and pgjdbc (`RVBBIT_PGJDBC_JAR`, with java/javac),
//! against the testkit LLM server.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::Value;
use tempfile::TempDir;

use crate::rvbbit;

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The testkit server: upper-cases the prompt's input; "boom" fails; "slow" takes 1.5 s.
pub(crate) fn llm(rt: &tokio::runtime::Runtime) -> TestServer {
    rt.block_on(TestServer::start(Script::rule(|body| {
        let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
        let input = prompt
            .lines()
            .find_map(|l| l.strip_prefix("Input: "))
            .unwrap_or_default()
            .to_owned();
        match input.as_str() {
            "boom" => Reply::error(400, "bad request for boom"),
            "slow" => Reply::text("SLOW").latency(Duration::from_millis(1500)),
            other => Reply::text(other.to_uppercase()).cost(0.001),
        }
    })))
}

/// A running `rvbbit serve sql` and the port it listens on.
pub(crate) struct Server {
    child: Child,
    pub(crate) port: u16,
}

impl Server {
    pub(crate) fn start(dir: &Path, base_url: &str, host: &str) -> Server {
        Server::start_with(dir, base_url, host, &[])
    }

    /// [`Server::start`] with more `--set key=value` settings.
    pub(crate) fn start_with(dir: &Path, base_url: &str, host: &str, sets: &[&str]) -> Server {
        let mut command = rvbbit(dir);
        for set in sets {
            command.args(["--set", set]);
        }
        command
            .env("RVBBIT_PROVIDER_BASE_URL", base_url)
            .env("OPENROUTER_API_KEY", "test-key")
            .env("RVBBIT_DEFAULT_MODEL", "test/model")
            .args(["--set", "provider.max_retries=0"])
            .args(["serve", "sql", "--host", host, "--port", "0"]);
        let (child, port, _) = crate::spawn_server(&mut command, "listening on ");
        Server { child, port }
    }

    /// SIGTERM, then wait for the exit code.
    pub(crate) fn stop(mut self) -> Option<i32> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.wait()
    }

    fn wait(&mut self) -> Option<i32> {
        let started = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the server did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Best-effort cleanup: the process may already have exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn program(var: &str, default: &str, hint: &str) -> String {
    let p = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    let ok = Command::new(&p)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "`{p}` is missing: {hint} (or set {var})");
    p
}

fn psql(port: u16, script: &str) -> Output {
    let psql = program(
        "RVBBIT_PSQL",
        "psql",
        "install Debian's postgresql-client (`apt-get install -y postgresql-client`)",
    );
    let mut child = Command::new(psql)
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "tester",
            "-d",
            "lab",
            "-f",
            "-",
        ])
        .env_remove("PGPASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn python() -> String {
    let python = program(
        "RVBBIT_PYTHON",
        "python3",
        "create a venv with psycopg: `python3 -m venv ~/.cache/rvbbit-venv && ~/.cache/rvbbit-venv/bin/pip install \"psycopg[binary]\"` and set RVBBIT_PYTHON=~/.cache/rvbbit-venv/bin/python",
    );
    let has = Command::new(&python)
        .args(["-c", "import psycopg"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        has,
        "`{python}` has no psycopg: `{python} -m pip install \"psycopg[binary]\"` (or set RVBBIT_PYTHON to a venv's python that has it)"
    );
    python
}

/// Run a psycopg script (`PORT` in its environment); its last stdout line is JSON. A script that has not
/// finished after five minutes is killed (`timeout`), so a hung server fails the test instead of CI.
pub(crate) fn psycopg(port: u16, script: &str) -> Value {
    let out = Command::new("timeout")
        .args(["300", &python(), "-c", script])
        .env("PORT", port.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "psycopg script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
}

#[test]
fn psql_lists_and_describes_tables_runs_udfs_and_shows_sqlstates() {
    let rt = runtime();
    let server = llm(&rt);
    let dir = TempDir::new().unwrap();
    let s = Server::start(dir.path(), &server.base_url(), "127.0.0.1");
    let out = psql(
        s.port,
        "\\set VERBOSITY verbose\n\
         CREATE TABLE animals (id INT NOT NULL, name VARCHAR, weight DOUBLE);\n\
         INSERT INTO animals VALUES (1, 'cat', 4.5), (2, 'dog', 20.0);\n\
         \\dt\n\
         \\d animals\n\
         SELECT name, weight FROM animals ORDER BY id;\n\
         SELECT rvbbit_udf('Shout', name) AS loud FROM animals ORDER BY id;\n\
         SELECT * FROM nope;\n\
         SELEC 1;\n\
         SHOW rvbbit.udf_errors;\n\
         SELECT current_database(), current_schema(), version() LIKE 'PostgreSQL 16%' AS pg;\n",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // \dt
    assert!(stdout.contains("List of relations"), "{stdout}\n{stderr}");
    assert!(stdout.contains(" public | animals | table | tester"), "{stdout}");
    // \d animals: the columns with their PostgreSQL types and nullability
    assert!(stdout.contains("Table \"public.animals\""), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(" id     | integer          |           | not null |"),
        "{stdout}"
    );
    assert!(stdout.contains(" name   | text             |"), "{stdout}");
    assert!(stdout.contains(" weight | double precision |"), "{stdout}");
    // plain query and the LLM function
    assert!(stdout.contains(" cat  |    4.5"), "{stdout}");
    assert!(stdout.contains(" CAT\n DOG\n"), "{stdout}");
    assert_eq!(server.requests(), 2);
    // errors: SQLSTATE, message, hint; the syntax error has its position
    assert!(
        stderr.contains("ERROR:  42P01: table 'datafusion.public.nope' not found"),
        "{stderr}"
    );
    assert!(stderr.contains("ERROR:  42601:"), "{stderr}");
    assert!(stderr.contains("LINE 1: SELEC 1;"), "{stderr}");
    assert!(stderr.contains("HINT:"), "{stderr}");
    assert!(!stderr.contains("src/"), "no internal paths: {stderr}");
    assert!(stdout.contains(" null\n"), "SHOW rvbbit.*: {stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(" lab ") && l.contains("| public ") && l.ends_with("| t")),
        "{stdout}"
    );
    assert_eq!(s.stop(), Some(0));
}

const PSYCOPG_SCRIPT: &str = r#"
import datetime, decimal, json, os, uuid, psycopg
conn = psycopg.connect(host="127.0.0.1", port=int(os.environ["PORT"]), user="py", dbname="lab", autocommit=True)
notices = []
conn.add_notice_handler(lambda d: notices.append((d.severity, d.message_primary)))
out = {}
with conn.cursor() as cur:
    cur.execute("SELECT %s::int AS n, %s AS s, %s AS f", (42, "it's", 1.5))
    out["params"] = list(cur.fetchone())
    out["types"] = [d.type_code for d in cur.description]
    cur.execute("SELECT x, rvbbit_udf('Shout', x) AS r FROM (VALUES (%s), (%s), (%s)) AS t(x) ORDER BY x", ("a", "b", "a"))
    out["rows"] = [list(r) for r in cur.fetchall()]
    cur.execute("SELECT caller_id, runs, protocol FROM sql_query_log ORDER BY timestamp")
    out["log"] = [list(r) for r in cur.fetchall()]
    cur.execute("SELECT rvbbit_udf('Shout', 'boom') AS r")
    out["failed"] = cur.fetchone()[0]
    out["notices"] = notices
    # psycopg raises with the SQLSTATE; the full list of statements and their SQLSTATEs is
    # crates/sql/tests/slt/errors.slt (run over the wire too)
    for sql in ["SELECT * FROM missing_table", "COPY (SELECT 1 AS x) TO 'written.csv' STORED AS CSV"]:
        try:
            cur.execute(sql)
            out.setdefault("errors", []).append(None)
        except psycopg.Error as e:
            out.setdefault("errors", []).append(e.sqlstate)
    cur.execute("SELECT 1")
    out["after_error"] = cur.fetchone()[0]
    cur.execute("BEGIN")
    out["in_tx"] = conn.info.transaction_status.name
    cur.execute("COMMIT")
    out["idle"] = conn.info.transaction_status.name
    cur.execute("SELECT %s::text AS t, %s::bigint AS b, %s::boolean AS flag", ("x", 10**12, True), binary=True)
    out["binary"] = list(cur.fetchone())
    # bytea results, text and binary format
    out["bytea"] = [list(cur.execute("SELECT X'0102ff' AS b").fetchone()[0]),
                    list(cur.execute("SELECT X'0102ff' AS b", binary=True).fetchone()[0])]
    # parameters psycopg sends in binary (%b) and in text (%t)
    vals = (datetime.date(2024, 1, 2), datetime.datetime(2024, 1, 2, 3, 4, 5, 123456),
            datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
            datetime.time(3, 4, 5, 500000), b"\x01\x02", uuid.UUID("12345678-1234-5678-1234-567812345678"),
            decimal.Decimal("-12345.678"), datetime.timedelta(days=2, seconds=3))
    sql = "SELECT {0} AS d, {0} AS ts, {0} AS tz, {0} AS t, {0} AS by, {0} AS u, {0} AS n, CAST({0} AS TEXT) AS iv"
    for fmt in ["%b", "%t"]:
        row = cur.execute(sql.format(fmt), vals).fetchone()
        out.setdefault("typed_params", []).append([x.hex() if isinstance(x, bytes) else str(x) for x in row])
print(json.dumps(out))
"#;

#[test]
fn psycopg_binds_parameters_gets_udf_rows_notices_sqlstates_and_one_caller_per_statement() {
    let rt = runtime();
    let server = llm(&rt);
    let dir = TempDir::new().unwrap();
    let s = Server::start(dir.path(), &server.base_url(), "127.0.0.1");
    let doc = psycopg(s.port, PSYCOPG_SCRIPT);
    assert_eq!(doc["params"], serde_json::json!([42, "it's", 1.5]), "{doc}");
    assert_eq!(
        doc["types"],
        serde_json::json!([23, 25, 701]),
        "int4, text, float8: {doc}"
    );
    assert_eq!(
        doc["rows"],
        serde_json::json!([["a", "A"], ["a", "A"], ["b", "B"]])
    );
    // One statement, one caller id shared by its two runs.
    let log = doc["log"].as_array().unwrap();
    assert_eq!(log.len(), 1, "{doc}");
    let caller = log[0][0].as_str().unwrap().to_owned();
    assert!(caller.starts_with("sql-"), "{caller}");
    assert_eq!(log[0][1], 2);
    assert_eq!(log[0][2], "postgresql_wire");
    assert_eq!(doc["failed"], Value::Null);
    let notices = doc["notices"].to_string();
    assert!(
        notices.contains("NOTICE") && notices.contains("failed"),
        "{notices}"
    );
    // an unknown table, and COPY … TO a file refused (the other SQLSTATEs: crates/sql/tests/slt/errors.slt)
    assert_eq!(doc["errors"], serde_json::json!(["42P01", "42501"]), "{doc}");
    assert_eq!(doc["after_error"], 1);
    assert!(
        !dir.path().join("written.csv").exists(),
        "COPY over the wire wrote a file"
    );
    assert_eq!(doc["in_tx"], "INTRANS", "{doc}");
    assert_eq!(doc["idle"], "IDLE", "{doc}");
    assert_eq!(
        doc["binary"],
        serde_json::json!(["x", 1_000_000_000_000i64, true])
    );
    assert_eq!(
        doc["bytea"],
        serde_json::json!([[1, 2, 255], [1, 2, 255]]),
        "{doc}"
    );
    let expected = serde_json::json!([
        "2024-01-02",
        "2024-01-02 03:04:05.123456",
        "2024-01-02 01:04:05",
        "03:04:05.500000",
        "0102",
        "12345678-1234-5678-1234-567812345678",
        "-12345.678",
        "2 days 3.000000000 secs"
    ]);
    assert_eq!(
        doc["typed_params"],
        serde_json::json!([expected, expected]),
        "{doc}"
    );
    assert_eq!(s.stop(), Some(0));

    // The store has both runs under that caller.
    let sessions = rvbbit(dir.path())
        .args(["--output", "json", "sessions", "list", "--caller", &caller])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&sessions.stdout);
    assert_eq!(text.matches(&caller).count(), 2, "{text}");
}

const JAVA: &str = r#"
import java.sql.*;
public class Jdbc {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/lab?user=java";
        try (Connection c = DriverManager.getConnection(url)) {
            try (Statement st = c.createStatement()) {
                st.execute("CREATE TABLE items (id INT, label VARCHAR)");
                st.execute("INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three')");
            }
            StringBuilder out = new StringBuilder();
            try (PreparedStatement ps = c.prepareStatement("SELECT label, id * 10 AS tens, ? AS tag FROM items WHERE id >= ? ORDER BY id")) {
                for (int i = 1; i <= 7; i++) {
                    ps.setString(1, "run" + i);
                    ps.setInt(2, (i % 3) + 1);
                    try (ResultSet rs = ps.executeQuery()) {
                        int n = 0;
                        while (rs.next()) { n++; if (i == 7) out.append(rs.getString(1)).append(':').append(rs.getInt(2)).append(':').append(rs.getString(3)).append(' '); }
                        out.append("n=").append(n).append(' ');
                    }
                }
            }
            out.append('|');
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT X'0102ff' AS b")) {
                rs.next();
                out.append("bytea=").append(java.util.Arrays.toString(rs.getBytes(1))).append(' ');
            }
            try (Statement st = c.createStatement()) {
                st.execute("CREATE TABLE days (id INT, day DATE)");
                st.execute("INSERT INTO days VALUES (1, DATE '2024-01-01'), (2, DATE '2024-01-02')");
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT id, day FROM days WHERE day = ?")) {
                ps.setDate(1, java.sql.Date.valueOf("2024-01-02"));
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) out.append("day=").append(rs.getInt(1)).append(':').append(rs.getDate(2)).append(' ');
                }
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT ? AS d, ? AS b")) {
                ps.setDate(1, java.sql.Date.valueOf("2024-03-04"));
                ps.setBytes(2, new byte[] {1, 2});
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    out.append("param=").append(rs.getDate(1)).append(':').append(java.util.Arrays.toString(rs.getBytes(2))).append(' ');
                }
            }
            out.append('|');
            // metadata calls over pg_index (empty here) and DBeaver's navigator form `x.oid, x.*`
            try (ResultSet rs = c.getMetaData().getPrimaryKeys(null, "public", "items")) {
                int n = 0; while (rs.next()) n++;
                out.append("pk=").append(n).append(' ');
            } catch (SQLException e) { out.append("pk=").append(e.getSQLState()).append(' ').append(e.getMessage()).append(' '); }
            try (ResultSet rs = c.getMetaData().getIndexInfo(null, "public", "items", false, true)) {
                int n = 0; while (rs.next()) n++;
                out.append("idx=").append(n).append(' ');
            } catch (SQLException e) { out.append("idx=").append(e.getSQLState()).append(' ').append(e.getMessage()).append(' '); }
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT x.oid, x.* FROM pg_catalog.pg_class x WHERE x.relname = 'items'")) {
                ResultSetMetaData md = rs.getMetaData();
                rs.next();
                out.append("dbeaver=").append(md.getColumnName(1)).append(',').append(md.getColumnName(2)).append(',').append(rs.getLong(1) == rs.getLong(2)).append(',').append(rs.getString("relname")).append(' ');
            } catch (SQLException e) { out.append("dbeaver=").append(e.getSQLState()).append(' ').append(e.getMessage()).append(' '); }
            out.append('|');
            ResultSet tables = c.getMetaData().getTables(null, null, "%", new String[] {"TABLE"});
            while (tables.next()) out.append(tables.getString("TABLE_SCHEM")).append('.').append(tables.getString("TABLE_NAME")).append(' ');
            System.out.println(out);
        }
    }
}
"#;

#[test]
fn pgjdbc_prepared_statements_switch_to_server_side_and_metadata_lists_tables() {
    let jar = PathBuf::from(
        std::env::var("RVBBIT_PGJDBC_JAR").unwrap_or_else(|_| "/usr/share/java/postgresql.jar".into()),
    );
    assert!(
        jar.is_file(),
        "{} is missing: install Debian's libpostgresql-jdbc-java (or set RVBBIT_PGJDBC_JAR)",
        jar.display()
    );
    let javac = program(
        "javac",
        "javac",
        "install a JDK (`apt-get install -y default-jdk-headless`)",
    );
    let rt = runtime();
    let server = llm(&rt);
    let dir = TempDir::new().unwrap();
    let src = TempDir::new().unwrap();
    std::fs::write(src.path().join("Jdbc.java"), JAVA).unwrap();
    let compiled = Command::new(javac)
        .args(["-d", &src.path().to_string_lossy()])
        .arg(src.path().join("Jdbc.java"))
        .output()
        .unwrap();
    assert!(
        compiled.status.success(),
        "{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    let s = Server::start(dir.path(), &server.base_url(), "127.0.0.1");
    let classpath = format!("{}:{}", src.path().display(), jar.display());
    let out = Command::new("java")
        .args(["-cp", &classpath, "Jdbc", &s.port.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // i % 3 + 1 for i = 1..7: 2, 3, 1, 2, 3, 1, 2 → rows 2, 1, 3, 2, 1, 3, 2; the 7th run (server-side
    // prepared by then: prepareThreshold is 5) prints its rows.
    assert!(
        stdout.starts_with("n=2 n=1 n=3 n=2 n=1 n=3 two:20:run7 three:30:run7 n=2 |"),
        "{stdout}"
    );
    assert!(stdout.contains("public.items"), "{stdout}");
    // bytea in text format, setDate (an untyped `2024-01-02 +00`) and setBytes (binary bytea)
    assert!(
        stdout.contains("|bytea=[1, 2, -1] day=2:2024-01-02 param=2024-03-04:[1, 2] |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("|pk=0 idx=0 dbeaver=oid,oid,true,items |"),
        "{stdout}"
    );
    assert_eq!(s.stop(), Some(0));
}

const AUTH_SCRIPT: &str = r#"
import json, os, psycopg
out = {}
try:
    psycopg.connect(host="127.0.0.1", port=int(os.environ["PORT"]), user="u", dbname="lab", password="rvb_wrong")
    out["wrong"] = None
except psycopg.OperationalError as e:
    out["wrong"] = str(e)
with psycopg.connect(host="127.0.0.1", port=int(os.environ["PORT"]), user="u", dbname="lab", password=os.environ["KEY"]) as c:
    out["right"] = c.execute("SELECT 1 + 1").fetchone()[0]
print(json.dumps(out))
"#;

#[test]
fn a_network_bind_needs_keys_and_checks_the_password() {
    let rt = runtime();
    let server = llm(&rt);
    let dir = TempDir::new().unwrap();
    let refused = rvbbit(dir.path())
        .args(["serve", "sql", "--host", "0.0.0.0", "--port", "0"])
        .env("OPENROUTER_API_KEY", "test-key")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains("RVB-C008") && stderr.contains("rvbbit keys create"),
        "{stderr}"
    );

    let created = rvbbit(dir.path())
        .args(["--output", "json", "keys", "create", "--name", "sql"])
        .output()
        .unwrap();
    let key: Value = serde_json::from_slice(&created.stdout).unwrap();
    let secret = key["secret"].as_str().unwrap().to_owned();
    let s = Server::start(dir.path(), &server.base_url(), "0.0.0.0");
    let out = Command::new(python())
        .args(["-c", AUTH_SCRIPT])
        .env("PORT", s.port.to_string())
        .env("KEY", &secret)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let wrong = doc["wrong"].as_str().unwrap_or_default();
    assert!(wrong.contains("password authentication failed"), "{doc}");
    assert_eq!(doc["right"], 2);
    assert_eq!(s.stop(), Some(0));
}

const SLOW_SCRIPT: &str = r#"
import json, os, sys, psycopg
with psycopg.connect(host="127.0.0.1", port=int(os.environ["PORT"]), user="u", dbname="lab", autocommit=True) as c:
    print("connected", flush=True)
    row = c.execute("SELECT rvbbit_udf('Shout', 'slow') AS r").fetchone()
    print(json.dumps({"row": row[0]}), flush=True)
"#;

#[test]
fn sigterm_lets_a_running_statement_finish_and_exits_zero() {
    let rt = runtime();
    let server = llm(&rt);
    let dir = TempDir::new().unwrap();
    let s = Server::start(dir.path(), &server.base_url(), "127.0.0.1");
    let mut client = Command::new(python())
        .args(["-c", SLOW_SCRIPT])
        .env("PORT", s.port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "connected");
    // Let the statement reach the slow LLM call, then stop the server.
    let started = Instant::now();
    while server.requests() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the statement never called the LLM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let code = s.stop();
    let last = lines.next().unwrap().unwrap();
    let status = client.wait().unwrap();
    assert!(status.success(), "client failed: {last}");
    assert_eq!(last, r#"{"row": "SLOW"}"#);
    assert_eq!(code, Some(0), "a graceful stop exits 0");
}

#[test]
fn cancel_request_stops_the_statement_and_records_its_runs_as_cancelled() {
    let rt = runtime();
    let server = llm(&rt);
    let dir = TempDir::new().unwrap();
    let s = Server::start(dir.path(), &server.base_url(), "127.0.0.1");
    let out = psycopg(
        s.port,
        r#"
import json, os, threading, time, psycopg
conn = psycopg.connect(host="127.0.0.1", port=int(os.environ["PORT"]), user="rvbbit", dbname="rvbbit", autocommit=True)
def cancel():
    time.sleep(0.5)
    conn.cancel_safe()
threading.Thread(target=cancel).start()
started = time.monotonic()
try:
    conn.execute("SELECT rvbbit_udf('Shout', 'slow')").fetchall()
    code = None
except psycopg.Error as e:
    code = e.sqlstate
took = time.monotonic() - started
deadline = time.monotonic() + 10
while True:
    rows = conn.execute("SELECT status, count(*) FROM sessions GROUP BY status ORDER BY status").fetchall()
    statuses = {s: n for s, n in rows}
    if statuses.get("cancelled") or time.monotonic() > deadline:
        break
    time.sleep(0.05)
print(json.dumps({"code": code, "took": took, "statuses": statuses}))
"#,
    );
    assert_eq!(out["code"], "57014", "{out}");
    assert!(
        out["took"].as_f64().unwrap() < 1.4,
        "cancelled before the 1.5 s call ended: {out}"
    );
    assert_eq!(out["statuses"]["cancelled"], 1, "{out}");
    assert!(out["statuses"].get("running").is_none(), "{out}");
    assert_eq!(s.stop(), Some(0));
}

/// issue_13: hostile statements over the wire, simple and extended protocol. Chains up to
/// `limits.sql_expression_depth` run, one more is refused with 54001 (RVB-Q006); the statements of the
/// report that aborted `rvbbit serve sql` (and ones 500,000 levels deep) are refused; nesting past the
/// parser's recursion limit is 54001; 50,000 statements in one message and a message over
/// `limits.sql_query_bytes` are 54000, without running any; folders with a link that leads outside and
/// `rvbbit.toml` are 42501; connections past `limits.pgwire_connections` get 53300 and the server goes
/// on. After each, the same connection and a new one answer `SELECT 1`.
#[test]
fn issue_13_hostile_statements_and_connections_are_refused_and_the_server_keeps_serving() {
    let rt = runtime();
    let server = llm(&rt);
    let dir = TempDir::new().unwrap();
    let outside = TempDir::new().unwrap();
    std::fs::write(outside.path().join("secret.csv"), "a\nSECRET-OUTSIDE\n").unwrap();
    std::fs::create_dir_all(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/good.csv"), "a\nfine\n").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.csv"), dir.path().join("sub/evil.csv")).unwrap();
    std::fs::create_dir_all(dir.path().join("conf")).unwrap();
    std::fs::write(dir.path().join("conf/rvbbit.toml"), "a\napi-key-SECRET\n").unwrap();
    let s = Server::start_with(
        dir.path(),
        &server.base_url(),
        "127.0.0.1",
        &["limits.pgwire_connections=3"],
    );
    let doc = psycopg(s.port, HOSTILE_SCRIPT);
    let expect = serde_json::json!({
        "simple_below": "255", "simple_above": "54001", "and_above": "54001", "reported_case": "1",
        "case_below": "1", "case_above": "54001", "parens_below": "1", "parens_above": "54001",
        "calls_below": "1", "calls_above": "54001", "huge": "54001", "huge_case": "54001",
        "statements": "54000", "bytes_below": "1", "bytes_above": "54000",
        "extended_below": 255, "extended_above": "54001", "describe_above": "54001",
        "folder": "42501", "folder_table": "42501", "toml_folder": "42501", "toml": "42501",
        "after_same": 1, "after_new": 1,
    });
    for (key, want) in expect.as_object().unwrap() {
        assert_eq!(&doc[key], want, "{key}: {doc}");
    }
    let texts = doc["texts"].to_string();
    assert!(texts.contains("limits.sql_expression_depth = 256"), "{texts}");
    assert!(texts.contains("limits.sql_statements = 64"), "{texts}");
    assert!(texts.contains("evil.csv") && !texts.contains("SECRET"), "{texts}");
    // Three connections are served; a fourth is refused with 53300; once one closes, a new one is served.
    let refused = doc["fourth"].as_str().unwrap_or_default();
    assert!(
        refused.contains("too many clients") && refused.contains("limits.pgwire_connections = 3"),
        "{doc}"
    );
    assert_eq!(doc["after_close"], 1, "{doc}");
    assert_eq!(s.stop(), Some(0));
}

const HOSTILE_SCRIPT: &str = r#"
import json, os, time, psycopg
from psycopg import pq
dsn = dict(host="127.0.0.1", port=int(os.environ["PORT"]), user="py", dbname="lab", autocommit=True)
conn = psycopg.connect(**dsn)
out = {"texts": []}
def simple(sql):
    # One simple-query message (PQexec): several statements stay one message.
    r = conn.pgconn.exec_(sql.encode())
    if r.status == pq.ExecStatus.FATAL_ERROR:
        out["texts"].append((r.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"").decode())
        return r.error_field(pq.DiagnosticField.SQLSTATE).decode()
    return r.get_value(0, 0).decode()
def extended(sql, params=None, prepare=False):
    # With parameters or prepare=True psycopg uses the extended protocol (Parse, Describe, Bind, Execute).
    try:
        return conn.execute(sql, params, prepare=prepare).fetchone()[0]
    except psycopg.Error as e:
        out["texts"].append(str(e))
        return e.sqlstate
chain = lambda n: "SELECT " + "+".join(["1"] * n)
case = lambda n: "SELECT " + "CASE WHEN true THEN " * n + "1" + " ELSE 0 END" * n
parens = lambda n: "SELECT " + "(" * n + "1" + ")" * n
calls = lambda n: "SELECT " + "abs(" * n + "1" + ")" * n
out["simple_below"] = simple(chain(255))
out["simple_above"] = simple(chain(256))
out["and_above"] = simple("SELECT " + " AND ".join(["true"] * 256))
out["reported_case"] = simple(case(20))
out["case_below"] = simple(case(47))
out["case_above"] = simple(case(48))
out["parens_below"] = simple(parens(47))
out["parens_above"] = simple(parens(48))
out["calls_below"] = simple(calls(12))
out["calls_above"] = simple(calls(13))
out["huge"] = simple(chain(500000))
out["huge_case"] = simple(case(20000))
out["statements"] = simple("SELECT 1;" * 50000)
head = "SELECT 1 -- "
out["bytes_below"] = simple(head + "x" * (1048576 - len(head)))
out["bytes_above"] = simple(head + "x" * (1048577 - len(head)))
out["extended_below"] = extended(chain(254) + "+%s::int", (1,))
out["extended_above"] = extended(chain(255) + "+%s::int", (1,))
out["describe_above"] = extended(chain(256), prepare=True)
out["folder"] = simple("SELECT * FROM read_csv('sub/')")
out["folder_table"] = simple("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION 'sub/'")
out["toml_folder"] = simple("SELECT * FROM read_csv('conf/')")
out["toml"] = simple("SELECT * FROM read_csv('conf/rvbbit.toml')")
out["after_same"] = conn.execute("SELECT 1").fetchone()[0]
second = psycopg.connect(**dsn)
out["after_new"] = second.execute("SELECT 1").fetchone()[0]
third = psycopg.connect(**dsn)
try:
    psycopg.connect(**dsn)
    out["fourth"] = "connected"
except psycopg.OperationalError as e:
    out["fourth"] = str(e)
third.close()
for _ in range(100):
    try:
        fifth = psycopg.connect(**dsn)
        out["after_close"] = fifth.execute("SELECT 1").fetchone()[0]
        break
    except psycopg.OperationalError:
        time.sleep(0.05)
print(json.dumps(out))
"#;

/// issue_15: `COPY … FROM STDIN` over `limits.pgwire_copy_bytes` is 54000 naming the setting, a client's
/// CopyFail is 57014 (as in PostgreSQL), a malformed row 22P04; none of them writes a row, and the
/// connection stays usable. COPY to a server file stays 42501.
#[test]
fn issue_15_copy_from_stdin_is_bounded_and_all_or_nothing() {
    let rt = runtime();
    let server = llm(&rt);
    let dir = TempDir::new().unwrap();
    let s = Server::start_with(
        dir.path(),
        &server.base_url(),
        "127.0.0.1",
        &["limits.pgwire_copy_bytes=1000"],
    );
    let doc = psycopg(s.port, COPY_SCRIPT);
    let expect = serde_json::json!({
        "small": 2, "over_limit": "54000", "aborted": "57014", "malformed": "22P04",
        "to_file": "42501", "rows": 2, "after": 1,
    });
    for (key, want) in expect.as_object().unwrap() {
        assert_eq!(&doc[key], want, "{key}: {doc}");
    }
    let texts = doc["texts"].to_string();
    assert!(texts.contains("limits.pgwire_copy_bytes = 1000"), "{texts}");
    assert!(texts.contains("line 2: missing data for column"), "{texts}");
    assert!(!dir.path().join("out.csv").exists());
    assert_eq!(s.stop(), Some(0));
}

const COPY_SCRIPT: &str = r#"
import json, os, psycopg
from psycopg import pq
conn = psycopg.connect(host="127.0.0.1", port=int(os.environ["PORT"]), user="py", dbname="lab", autocommit=True)
out = {"texts": []}
def copy_in(data):
    try:
        with conn.cursor() as cur:
            with cur.copy("COPY t FROM STDIN") as copy:
                copy.write(data)
            return cur.rowcount
    except psycopg.Error as e:
        out["texts"].append(str(e))
        return e.sqlstate
conn.execute("CREATE TABLE t (n INT, s TEXT)")
out["small"] = copy_in("1\ta\n2\tb\n")
out["over_limit"] = copy_in("3\tx\n" * 400)
out["malformed"] = copy_in("4\tok\n5\n")
# CopyFail through libpq (psycopg's copy() raises the client's own exception instead of the server's).
pg = conn.pgconn
pg.send_query(b"COPY t FROM STDIN")
assert pg.get_result().status == pq.ExecStatus.COPY_IN
pg.put_copy_data(b"6\tz\n")
pg.put_copy_end(b"client gives up")
r = pg.get_result()
out["aborted"] = (r.error_field(pq.DiagnosticField.SQLSTATE) or b"none").decode()
while pg.get_result() is not None:
    pass
try:
    conn.execute("COPY (SELECT 1 AS a) TO 'out.csv'")
    out["to_file"] = "written"
except psycopg.Error as e:
    out["to_file"] = e.sqlstate
out["rows"] = conn.execute("SELECT count(*) FROM t").fetchone()[0]
out["after"] = conn.execute("SELECT 1 AS one").fetchone()[0]
print(json.dumps(out))
"#;

/// psycopg 3 binds `%s` server-side (`$1`, extended protocol) in a statement with `-- @` annotations and
/// in one with its own `WITH (cascade = …)` options (issue 24): the annotated call asks its model and
/// the statement's cheap model answers first, each with the bound criterion.
#[test]
fn psycopg_binds_parameters_in_annotated_statements_and_with_statement_options() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start(Script::rule(|body| {
        let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
        let rows = rvbbit_testkit::batch_rows(prompt).unwrap_or_default();
        let cheap = body["model"] == "cheap/model";
        let items: Vec<Value> = rows
            .iter()
            .map(|(id, one)| {
                let red = one.contains("Text: red") || one.contains("Text: navy");
                let colour = one.contains("Criterion: a colour") && red;
                serde_json::json!({"id": id, "answer": colour, "confidence": if cheap { 0.95 } else { 1.0 }})
            })
            .collect();
        Reply::text(Value::Array(items).to_string())
    })));
    let dir = TempDir::new().unwrap();
    let s = Server::start(dir.path(), &server.base_url(), "127.0.0.1");
    let doc = psycopg(
        s.port,
        r#"
import json, os, psycopg
with psycopg.connect(host="127.0.0.1", port=int(os.environ["PORT"]), user="lab", dbname="lab", autocommit=True) as conn:
    annotated = conn.execute(
        "SELECT x FROM (VALUES ('red hat'), ('plain hat')) AS t(x)\nWHERE -- @ model: wire/model\n x MEANS %s ORDER BY x",
        ("a colour",),
    ).fetchall()
    options = conn.execute(
        "SELECT x FROM (VALUES ('navy cap'), ('grey cap')) AS t(x) WHERE x MEANS %s ORDER BY x WITH (cascade = 'cheap/model')",
        ("a colour",),
    ).fetchall()
    print(json.dumps({"annotated": annotated, "options": options}))
"#,
    );
    assert_eq!(
        doc,
        serde_json::json!({"annotated": [["red hat"]], "options": [["navy cap"]]})
    );
    let models: Vec<String> = server
        .bodies()
        .iter()
        .map(|b| b["model"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(models, ["wire/model", "cheap/model"], "{models:?}");
    drop(s);
}
