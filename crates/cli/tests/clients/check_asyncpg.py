"""asyncpg against `rvbbit serve sql` (the server has `[sql.tables] animals = "animals.csv"`: id, name,
weight, three rows). asyncpg uses the extended protocol only, binary format for every type it knows,
and sends each parameter in the type the server's ParameterDescription names. Run by
crates/cli/tests/it/clients.rs; see clientcheck.py for the output."""

import datetime
import decimal

import asyncpg

from clientcheck import HOST, PORT, Suite, expect, expect_error

suite = Suite("asyncpg", asyncpg.__version__)
conn = None


async def connect():
    return await asyncpg.connect(host=HOST, port=PORT, user="apg", database="lab", ssl=False)


async def error_of(coro):
    try:
        await coro
    except asyncpg.PostgresError as e:
        return e
    return None


@suite.check("connect and fetchval")
async def _():
    global conn
    conn = await connect()
    expect(await conn.fetchval("SELECT 1 + 1 AS two"), 2)
    expect(conn.get_server_version().major, 16)


@suite.check("fetch('SELECT $1::int + 1', 41) returns 42")
async def _():
    rows = await conn.fetch("SELECT $1::int + 1 AS n", 41)
    expect(rows[0]["n"], 42)


@suite.check("a parameter compared with an int column is typed by inference")
async def _():
    rows = await conn.fetch("SELECT name FROM animals WHERE id = $1", 2)
    expect([r["name"] for r in rows], ["dog"])


@suite.check("WHERE id = ANY($1) with a list")
async def _():
    rows = await conn.fetch("SELECT id FROM animals WHERE id = ANY($1) ORDER BY id", [1, 2])
    expect([r["id"] for r in rows], [1, 2])


@suite.check("text[] parameter with = ANY($1)")
async def _():
    rows = await conn.fetch("SELECT id FROM animals WHERE name = ANY($1::text[]) ORDER BY id", ["cat", "owl"])
    expect([r["id"] for r in rows], [1, 3])


@suite.check("array parameters and results of other element types")
async def _():
    expect(await conn.fetchval("SELECT $1::float8[] AS a", [1.5, None, 2.5]), [1.5, None, 2.5])
    days = [datetime.date(2024, 1, 2), datetime.date(2024, 3, 4)]
    expect(await conn.fetchval("SELECT $1::date[] AS a", days), days)
    expect(await conn.fetchval("SELECT $1::bool[] AS a", [True, False]), [True, False])
    expect(await conn.fetchval("SELECT make_array(1, 2, 3) AS a"), [1, 2, 3])


@suite.check("current_setting and set_config")
async def _():
    expect(await conn.fetchval("SELECT current_setting('search_path') AS s"), "public")
    expect(await conn.fetchval("SELECT set_config('application_name', 'checks', false) AS s"), "checks")
    expect(await conn.fetchval("SELECT current_setting('application_name') AS s"), "checks")
    expect(await conn.fetchval("SELECT current_setting('no.such', true) AS s"), None)
    e = await error_of(conn.fetchval("SELECT current_setting('no_such_setting') AS s"))
    expect_error("42704", e)


@suite.check("typed parameters of the common types round-trip")
async def _():
    cases = [
        ("int2", 7),
        ("int4", -123456),
        ("int8", 2**40),
        ("float4", 1.5),
        ("float8", 2.25),
        ("bool", True),
        ("text", "it's"),
        ("varchar", "v"),
        ("numeric", decimal.Decimal("-12345.678")),
        ("date", datetime.date(2024, 1, 2)),
        ("timestamp", datetime.datetime(2024, 1, 2, 3, 4, 5, 123456)),
        ("bytea", b"\x01\x02\xff"),
    ]
    for ty, value in cases:
        got = await conn.fetchval(f"SELECT $1::{ty} AS v", value)
        expect(got, value, ty)


@suite.check("timestamptz parameter")
async def _():
    value = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    got = await conn.fetchval("SELECT $1::timestamptz = TIMESTAMPTZ '2024-01-02 03:04:05+00' AS same", value)
    expect(got, True)


@suite.check("NULL parameters")
async def _():
    expect(await conn.fetchval("SELECT $1::int IS NULL AS n", None), True)


@suite.check("prepared statement reused")
async def _():
    stmt = await conn.prepare("SELECT $1::int8 * 2 AS d")
    got = [await stmt.fetchval(i) for i in range(5)]
    expect(got, [0, 2, 4, 6, 8])
    expect([a.name for a in stmt.get_attributes()], ["d"])


@suite.check("execute of an INSERT returns its tag")
async def _():
    await conn.execute("CREATE TABLE notes (id INT, body VARCHAR)")
    expect(await conn.execute("INSERT INTO notes VALUES ($1, $2)", 1, "a"), "INSERT 0 1")


@suite.check("a prepared INSERT describes no columns")
async def _():
    stmt = await conn.prepare("INSERT INTO notes VALUES ($1, $2)")
    expect(stmt.get_attributes(), ())
    expect(stmt.get_statusmsg(), None)
    await stmt.fetch(9, "z")
    expect(stmt.get_statusmsg(), "INSERT 0 1")
    expect(await conn.execute("DELETE FROM notes WHERE id = $1", 9), "DELETE 1")


@suite.check("executemany")
async def _():
    await conn.executemany("INSERT INTO notes VALUES ($1, $2)", [(2, "b"), (3, "c")])
    expect(await conn.fetchval("SELECT count(*) FROM notes"), 3)


@suite.check("transaction block")
async def _():
    async with conn.transaction():
        expect(await conn.fetchval("SELECT 5 AS five"), 5)


@suite.check("cursor inside a transaction")
async def _():
    async with conn.transaction():
        got = [r["n"] async for r in conn.cursor("SELECT n FROM generate_series(1, 30) AS t(n)", prefetch=7)]
    expect(len(got), 30)


@suite.check("an error carries its SQLSTATE and the connection stays usable")
async def _():
    e = await error_of(conn.fetch("SELECT * FROM missing_table"))
    expect_error("42P01", e)
    expect(await conn.fetchval("SELECT 1 AS one"), 1)


@suite.check("a malformed array parameter is refused cleanly")
async def _():
    # asyncpg validates what it sends; a nested list where int4[] is expected fails on the client.
    try:
        await conn.fetch("SELECT id FROM animals WHERE id = ANY($1)", [[1], 2])
    except (asyncpg.PostgresError, asyncpg.DataError, TypeError, ValueError):
        pass
    expect(await conn.fetchval("SELECT 1 AS one"), 1)


@suite.check("copy_from_query")
async def _():
    import io

    buf = io.BytesIO()
    await conn.copy_from_query("SELECT 1 AS a", output=buf)
    expect(buf.getvalue(), b"1\n")


suite.main()
