//! issue_15: SQL cursors over the wire with psycopg 3 (its named cursors send `DECLARE … CURSOR FOR`,
//! Describe the portal of the cursor's name, then `FETCH FORWARD n FROM …`; binary cursors fetch through
//! the extended protocol): they stream, and their errors and limit leave the connection serving.

use tempfile::TempDir;

use crate::pgwire::{Server, llm, psycopg, runtime};

/// A cursor over 1,000,000 rows whose row 500,000 divides by zero: FETCH 10 answers 10 rows and MOVE
/// 400,000 more, which proves the query ran no further than they read (had DECLARE or FETCH computed
/// the whole result, they would have failed with 22012); the next FETCH reaches the row and fails.
#[test]
fn issue_15_a_cursor_over_a_million_rows_computes_only_what_fetch_reads() {
    let rt = runtime();
    let server = llm(&rt);
    let dir = TempDir::new().unwrap();
    let s = Server::start(dir.path(), &server.base_url(), "127.0.0.1");
    let doc = psycopg(s.port, STREAM_SCRIPT);
    // Without ORDER BY, DataFusion may hand out the series' batches in any order (they run in
    // parallel partitions): the rows read are checked as a set.
    let read = |key: &str| -> Vec<i64> {
        doc[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect()
    };
    let (first, next) = (read("first"), read("next"));
    assert_eq!((first.len(), next.len()), (10, 2), "{doc}");
    let mut all: Vec<i64> = first.iter().chain(&next).copied().collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 12, "a row was read twice: {doc}");
    assert!(
        all.iter().all(|n| (1..=1_000_000).contains(n) && *n != 500_000),
        "{doc}"
    );
    assert_eq!(doc["moved"], "MOVE 400000", "{doc}");
    assert_eq!(doc["rest"], "22012", "{doc}");
    assert_eq!(
        doc["binary"],
        serde_json::json!([[1, "x"], [2, "x"], [3, "x"]]),
        "{doc}"
    );
    assert_eq!(doc["after"], 1, "{doc}");
    assert_eq!(s.stop(), Some(0));
}

const STREAM_SCRIPT: &str = r#"
import json, os, psycopg
def connect(**kw):
    return psycopg.connect(host="127.0.0.1", port=int(os.environ["PORT"]), user="py", dbname="lab", **kw)
out = {}
with connect() as conn:
    cur = conn.cursor(name="big")
    cur.execute("SELECT n, 1 / (n - 500000) AS q FROM generate_series(1, 1000000) AS t(n)")
    out["first"] = [r[0] for r in cur.fetchmany(10)]
    out["moved"] = conn.execute('MOVE 400000 IN "big"').statusmessage
    out["next"] = [r[0] for r in cur.fetchmany(2)]
    try:
        cur.fetchall()
        out["rest"] = "no error"
    except psycopg.Error as e:
        out["rest"] = e.sqlstate
with connect() as conn:
    with conn.cursor(name="bin", binary=True) as cur:
        cur.execute("SELECT n::int4 AS n, 'x' AS s FROM generate_series(1, 3) AS t(n)")
        out["binary"] = [list(r) for r in cur.fetchmany(5)]
    out["after"] = conn.execute("SELECT 1").fetchone()[0]
print(json.dumps(out))
"#;

/// Hostile cursors: past `limits.pgwire_cursors` a DECLARE is 54000 naming the setting (closing one
/// makes room); a FETCH of 2^63-1 rows answers the rows there are; a 200-byte name and a name of quotes
/// and semicolons work; unknown (34000), duplicate (42P03), backward (0A000) and out-of-block (25P01)
/// statements fail with their SQLSTATE and the connection keeps serving after each; a 600 KB
/// one-line statement that names a cursor verb is answered (54001, too deep) within the script's time.
#[test]
fn issue_15_hostile_cursors_are_refused_and_the_connection_keeps_serving() {
    let rt = runtime();
    let server = llm(&rt);
    let dir = TempDir::new().unwrap();
    let s = Server::start_with(
        dir.path(),
        &server.base_url(),
        "127.0.0.1",
        &["limits.pgwire_cursors=3"],
    );
    let doc = psycopg(s.port, HOSTILE_SCRIPT);
    let expect = serde_json::json!({
        "declared": 3, "fourth": "54000", "after_close": "DECLARE CURSOR", "huge": 5,
        "long": [[1]], "weird": [[2]], "unknown": "34000", "duplicate": "42P03",
        "backward": "0A000", "scroll": "0A000", "outside": "25P01", "long_line": "54001", "after": 1,
    });
    for (key, want) in expect.as_object().unwrap() {
        assert_eq!(&doc[key], want, "{key}: {doc}");
    }
    assert_eq!(
        doc["binary"],
        serde_json::json!([1, "00000001", "FETCH 1"]),
        "{doc}"
    );
    let texts = doc["texts"].to_string();
    assert!(texts.contains("limits.pgwire_cursors = 3"), "{texts}");
    assert!(texts.contains("FETCH BACKWARD is not supported"), "{texts}");
    assert!(
        texts.contains("DECLARE CURSOR can only be used in transaction blocks"),
        "{texts}"
    );
    assert_eq!(s.stop(), Some(0));
}

const HOSTILE_SCRIPT: &str = r#"
import json, os, psycopg
conn = psycopg.connect(host="127.0.0.1", port=int(os.environ["PORT"]), user="py", dbname="lab", autocommit=True)
out = {"texts": []}
def state(sql):
    try:
        return conn.execute(sql).statusmessage
    except psycopg.Error as e:
        out["texts"].append(str(e))
        assert conn.execute("SELECT 1").fetchone()[0] == 1
        return e.sqlstate
out["declared"] = sum(state(f"DECLARE h{i} CURSOR WITH HOLD FOR SELECT {i} AS x") == "DECLARE CURSOR" for i in range(3))
out["fourth"] = state("DECLARE h3 CURSOR WITH HOLD FOR SELECT 3 AS x")
state("CLOSE h0")
out["after_close"] = state("DECLARE h3 CURSOR WITH HOLD FOR SELECT n FROM generate_series(1, 5) AS t(n)")
out["huge"] = len(conn.execute("FETCH 9223372036854775807 FROM h3").fetchall())
state("CLOSE ALL")
long = "c" * 200
state(f"DECLARE {long} CURSOR WITH HOLD FOR SELECT 1 AS x")
out["long"] = [list(r) for r in conn.execute(f"FETCH ALL FROM {long}").fetchall()]
state('DECLARE "a;""b"" -- c" CURSOR WITH HOLD FOR SELECT 2 AS x')
out["weird"] = [list(r) for r in conn.execute('FETCH ALL FROM "a;""b"" -- c"').fetchall()]
out["unknown"] = state("FETCH 1 FROM nope")
out["duplicate"] = state('DECLARE "a;""b"" -- c" CURSOR WITH HOLD FOR SELECT 3 AS x')
out["backward"] = state('FETCH BACKWARD 1 FROM "a;""b"" -- c"')
out["scroll"] = state("DECLARE s SCROLL CURSOR WITH HOLD FOR SELECT 1 AS x")
out["outside"] = state("DECLARE o CURSOR FOR SELECT 1 AS x")
# A one-line string of 300,000 tokens that names a cursor verb is split in one pass (then refused as
# too deep, 54001), not in time quadratic in its length.
out["long_line"] = state("SELECT " + "+".join(["1"] * 300000) + " -- fetch")
# A BINARY cursor's rows come in binary over the simple protocol (PQexec): int4 1 is 4 bytes.
state("DECLARE b BINARY CURSOR WITH HOLD FOR SELECT 1::int4 AS n")
r = conn.pgconn.exec_(b"FETCH ALL FROM b")
out["binary"] = [r.fformat(0), r.get_value(0, 0).hex(), r.command_status.decode()]
state("CLOSE b")
out["after"] = conn.execute("SELECT 1").fetchone()[0]
print(json.dumps(out))
"#;
