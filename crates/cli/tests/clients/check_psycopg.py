"""psycopg 3 against `rvbbit serve sql` (the server has `[sql.tables] animals = "animals.csv"`: id, name,
weight, three rows). Run by crates/cli/tests/it/clients.rs; see clientcheck.py for the output."""

import datetime
import decimal
import uuid

import psycopg

from clientcheck import HOST, PORT, Suite, expect, expect_error

suite = Suite("psycopg", psycopg.__version__)
conn = None


def connect(**kwargs):
    kwargs.setdefault("autocommit", True)
    return psycopg.connect(host=HOST, port=PORT, user="py", dbname="lab", **kwargs)


@suite.check("connect and server_version")
def _():
    global conn
    conn = connect()
    expect(conn.info.server_version >= 160000, True, "server_version")
    expect(conn.info.parameter_status("server_encoding"), "UTF8")


@suite.check("select with text parameters")
def _():
    row = conn.execute("SELECT %s::int AS n, %s AS s, %s AS f, %s AS z", (42, "it's", 1.5, None)).fetchone()
    expect(row, (42, "it's", 1.5, None))


@suite.check("result column types in the description")
def _():
    cur = conn.execute("SELECT 1::int4 AS a, 'x' AS b, 1.5::float8 AS c, true AS d, DATE '2024-01-02' AS e")
    expect([d.type_code for d in cur.description], [23, 25, 701, 16, 1082])


@suite.check("binary parameters and results of the common types")
def _():
    vals = (
        7,
        2**40,
        2.5,
        True,
        "text",
        decimal.Decimal("-12345.678"),
        datetime.date(2024, 1, 2),
        datetime.datetime(2024, 1, 2, 3, 4, 5, 123456),
        b"\x01\x02",
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
    )
    sql = "SELECT " + ", ".join(f"%b AS c{i}" for i in range(len(vals)))
    row = conn.cursor(binary=True).execute(sql, vals).fetchone()
    expect(row[:8], vals[:8])
    expect(bytes(row[8]), vals[8])
    expect(str(row[9]), str(vals[9]))


@suite.check("rows of a [sql.tables] file")
def _():
    rows = conn.execute("SELECT id, name FROM animals WHERE weight > %s ORDER BY id", (1.0,)).fetchall()
    expect(rows, [(1, "cat"), (2, "dog")])


@suite.check("fetchmany pages through a result")
def _():
    cur = conn.cursor()
    cur.execute("SELECT * FROM generate_series(1, 25) AS t(n)")
    pages = []
    while page := cur.fetchmany(10):
        pages.append(len(page))
    expect(pages, [10, 10, 5])


@suite.check("prepared statement reused (prepare=True)")
def _():
    got = [conn.execute("SELECT %s::int * 2 AS d", (i,), prepare=True).fetchone()[0] for i in range(6)]
    expect(got, [0, 2, 4, 6, 8, 10])


@suite.check("executemany into a session table")
def _():
    conn.execute("CREATE TABLE notes (id INT, body VARCHAR)")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO notes VALUES (%s, %s)", [(1, "a"), (2, "b"), (3, "c")])
    expect(conn.execute("SELECT count(*) FROM notes").fetchone()[0], 3)


@suite.check("rowcount of a parameterised INSERT")
def _():
    cur = conn.execute("INSERT INTO notes VALUES (%s, %s), (%s, %s)", (4, "d", 5, "e"))
    expect(cur.rowcount, 2)
    expect(cur.statusmessage, "INSERT 0 2")
    expect(cur.description, None, "an INSERT has no result columns")


@suite.check("rowcount of an INSERT … SELECT")
def _():
    cur = conn.execute("INSERT INTO notes SELECT id + 10, body FROM notes WHERE id <= %s", (2,))
    expect(cur.rowcount, 2)


@suite.check("rowcount of UPDATE and DELETE, executemany's rowcount")
def _():
    cur = conn.execute("UPDATE notes SET body = %s WHERE id > %s", ("z", 10))
    expect((cur.rowcount, cur.statusmessage), (2, "UPDATE 2"))
    cur = conn.execute("DELETE FROM notes WHERE id = %s", (12,))
    expect((cur.rowcount, cur.statusmessage), (1, "DELETE 1"))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO notes VALUES (%s, %s)", [(20, "x"), (21, "y")])
        expect(cur.rowcount, 2)


@suite.check("an error carries its SQLSTATE and the connection stays usable")
def _():
    error = None
    try:
        conn.execute("SELECT * FROM missing_table")
    except psycopg.Error as e:
        error = e
    expect_error("42P01", error)
    expect(conn.execute("SELECT 1 AS one").fetchone()[0], 1)


@suite.check("a bad parameter value is 22P02")
def _():
    error = None
    try:
        conn.execute("SELECT %s::int AS n", ("4x",))
    except psycopg.Error as e:
        error = e
    expect_error("22P02", error)


@suite.check("transaction status follows BEGIN and COMMIT")
def _():
    with connect(autocommit=False) as c:
        c.execute("SELECT 1")
        expect(c.info.transaction_status.name, "INTRANS")
        c.commit()
        expect(c.info.transaction_status.name, "IDLE")


@suite.check("rvbbit_udf through the wire")
def _():
    row = conn.execute("SELECT rvbbit_udf('Shout', %s) AS r", ("hey",)).fetchone()
    expect(row[0], "HEY")


@suite.check("= ANY(%s) with a list")
def _():
    rows = conn.execute("SELECT id FROM animals WHERE id = ANY(%s) ORDER BY id", ([1, 3],)).fetchall()
    expect(rows, [(1,), (3,)])


@suite.check("= ANY(%s::text[]) and an empty list")
def _():
    rows = conn.execute("SELECT id FROM animals WHERE name = ANY(%s::text[]) ORDER BY id", (["owl", "cat"],)).fetchall()
    expect(rows, [(1,), (3,)])
    expect(conn.execute("SELECT count(*) FROM animals WHERE id = ANY(%s)", ([],)).fetchone()[0], 0)


@suite.check("a malformed array parameter is 22P02, a nested one 0A000")
def _():
    error = None
    try:
        conn.execute("SELECT %s::int[] AS a", ("{1,2",))
    except psycopg.Error as e:
        error = e
    expect_error("22P02", error)
    error = None
    try:
        conn.execute("SELECT id FROM animals WHERE id = ANY(%s)", ([[1, 2], [3, 4]],))
    except psycopg.Error as e:
        error = e
    expect_error("0A000", error)
    expect(conn.execute("SELECT 1 AS one").fetchone()[0], 1)


@suite.check("a huge array parameter is refused with 54000, the connection stays usable")
def _():
    error = None
    try:
        conn.execute("SELECT count(*) FROM animals WHERE id = ANY(%s)", (list(range(400_000)),))
    except psycopg.Error as e:
        error = e
    expect_error("54000", error)
    expect(conn.execute("SELECT 1 AS one").fetchone()[0], 1)


@suite.check("::jsonb and ::json casts")
def _():
    row = conn.execute("SELECT %s::jsonb AS j, '[1,2]'::json AS k", ('{"a": 1}',)).fetchone()
    expect(row, ({"a": 1}, [1, 2]))


@suite.check("a bad json value is 22P02, a json parameter typed")
def _():
    error = None
    try:
        conn.execute("SELECT '{bad'::jsonb AS j")
    except psycopg.Error as e:
        error = e
    expect_error("22P02", error)
    from psycopg.types.json import Jsonb
    expect(conn.execute("SELECT %s::jsonb AS j", (Jsonb([1, {"b": None}]),)).fetchone()[0], [1, {"b": None}])


@suite.check("json_build_object, pg_get_serial_sequence, pg_sequence (SQLAlchemy's reflection uses them)")
def _():
    row = conn.execute(
        "SELECT json_build_object('a', 1, 'b', true, 'c', 'x', 'd', NULL) AS j, pg_get_serial_sequence('animals', 'id') AS s"
    ).fetchone()
    expect(row, ({"a": 1, "b": True, "c": "x", "d": None}, None))
    expect(conn.execute("SELECT seqmin, seqmax, seqcache FROM pg_catalog.pg_sequence").fetchall(), [])
    error = None
    try:
        conn.execute("SELECT json_build_object('a') AS j")
    except psycopg.Error as e:
        error = e
    expect(error is not None and error.sqlstate is not None, True, "an odd argument count fails cleanly")
    expect(conn.execute("SELECT 1 AS one").fetchone()[0], 1)


@suite.check("array literals in text ('{a,b}'::text[]) and array_upper")
def _():
    row = conn.execute("SELECT '{a,\"b c\",NULL}'::text[] AS t, '{1,2}'::int[] AS i, array_upper(make_array(1, 2, 3), 1) AS u").fetchone()
    expect(row, (["a", "b c", None], [1, 2], 3))
    rows = conn.execute("SELECT relname FROM pg_class WHERE relkind = ANY('{r}'::char[]) AND relname = 'animals'").fetchall()
    expect(rows, [("animals",)])


@suite.check("pg_get_keywords()")
def _():
    rows = conn.execute("SELECT word, catcode FROM pg_catalog.pg_get_keywords() WHERE word IN ('select', 'analyze') ORDER BY word").fetchall()
    expect(rows, [("analyze", "R"), ("select", "R")])


@suite.check("to_regtype")
def _():
    expect(conn.execute("SELECT to_regtype('int4')::oid AS t").fetchone()[0], 23)
    expect(conn.execute("SELECT to_regtype('no_such_type') AS t").fetchone()[0], None)
    # psycopg's TypeInfo.fetch (what SQLAlchemy's hstore lookup calls): an unknown type is None
    from psycopg.types import TypeInfo
    expect(TypeInfo.fetch(conn, "hstore"), None)
    expect(TypeInfo.fetch(conn, "int8").array_oid, 1016)


@suite.check("server-side cursor")
def _():
    with connect(autocommit=False) as c:
        with c.cursor(name="big") as cur:
            cur.execute("SELECT * FROM generate_series(1, 1000) AS t(n)")
            expect(len(cur.fetchmany(10)), 10)


@suite.check("COPY (query) TO STDOUT")
def _():
    with conn.cursor() as cur:
        with cur.copy("COPY (SELECT 1 AS a, 'x' AS b) TO STDOUT") as copy:
            rows = list(copy.rows())
    expect(rows, [("1", "x")])


@suite.check("COPY TO STDOUT in CSV with a header, and binary, streamed over 20000 rows")
def _():
    with conn.cursor() as cur:
        with cur.copy("COPY (SELECT n, 'a,b' AS s, NULL AS z FROM generate_series(1, 20000) AS t(n)) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
            data = b"".join(bytes(b) for b in copy)
    lines = data.decode().splitlines()
    expect(lines[:2], ["n,s,z", '1,"a,b",'])
    expect(len(lines), 20001)
    with conn.cursor(binary=True) as cur:
        with cur.copy("COPY (SELECT n::int4 AS n, 'x' AS s FROM generate_series(1, 3) AS t(n)) TO STDOUT (FORMAT binary)") as copy:
            copy.set_types(["int4", "text"])
            rows = list(copy.rows())
    expect(rows, [(1, "x"), (2, "x"), (3, "x")])


@suite.check("COPY … FROM STDIN (text and CSV) into a session table")
def _():
    conn.execute("CREATE TABLE pets (id INT, name VARCHAR, weight DOUBLE)")
    with conn.cursor() as cur:
        with cur.copy("COPY pets (id, name, weight) FROM STDIN") as copy:
            copy.write_row((1, "rex", 4.5))
            copy.write_row((2, "tab\tby", None))
        expect(cur.rowcount, 2)
        with cur.copy("COPY pets FROM STDIN WITH (FORMAT csv, HEADER)") as copy:
            copy.write('id,name,weight\n3,"a,b",1\n4,,\n')
    rows = conn.execute("SELECT id, name, weight FROM pets ORDER BY id").fetchall()
    expect(rows, [(1, "rex", 4.5), (2, "tab\tby", None), (3, "a,b", 1.0), (4, None, None)])


@suite.check("a malformed COPY stream is 22P04 (a bad value 22P02), nothing is written, the connection stays usable")
def _():
    for data, state in [("5\tfive\n6\n", "22P04"), ("7\tx\t1\textra\n", "22P04"), ("8\tok\t1\nnine\tbad\t2\n", "22P02")]:
        error = None
        try:
            with conn.cursor() as cur:
                with cur.copy("COPY pets FROM STDIN") as copy:
                    copy.write(data)
        except psycopg.Error as e:
            error = e
        expect_error(state, error)
    error = None
    try:
        with conn.cursor() as cur:
            with cur.copy("COPY pets FROM STDIN") as copy:
                copy.write("10\tten\t1\n")
                raise RuntimeError("client gives up")
    except (psycopg.Error, RuntimeError) as e:
        error = e
    expect(error is not None, True, "the aborted copy raised")
    expect(conn.execute("SELECT count(*) FROM pets").fetchone()[0], 4)
    expect(conn.execute("SELECT 1 AS one").fetchone()[0], 1)


suite.main()
