"""pgcli against `rvbbit serve sql` (the server has `[sql.tables] animals = "animals.csv"`: id, name,
weight, three rows), driven without a terminal: its `PGExecute` runs the catalog queries of the
completion refresher (what pgcli sends at start-up) and `\\dt` through pgspecial. Run by
crates/cli/tests/it/clients.rs; see clientcheck.py for the output."""

import pgcli
from pgcli.pgexecute import PGExecute
from pgspecial.main import PGSpecial

from clientcheck import HOST, PORT, Suite, expect

suite = Suite("pgcli", pgcli.__version__)
ex = None


@suite.check("connect")
def _():
    global ex
    ex = PGExecute(database="lab", user="cli", password="", host=HOST, port=PORT, dsn=None)
    expect(ex.server_version.startswith("16"), True, "server_version")


@suite.check("search_path and schemata")
def _():
    expect("public" in ex.search_path(), True, "search_path")
    expect("public" in list(ex.schemata()), True, "schemata")


@suite.check("tables and views (relkind = ANY(%s))")
def _():
    tables = list(ex.tables())
    expect(("public", "animals") in tables, True, f"tables {tables}")
    views = list(ex.views())
    expect(("public", "sessions") in views, True, f"views {views}")


@suite.check("table columns")
def _():
    cols = [(t, c) for (_, t, c, *_rest) in ex.table_columns()]
    expect(("animals", "weight") in cols, True, f"columns {cols[:10]}")


@suite.check("datatypes")
def _():
    list(ex.datatypes())


@suite.check("databases")
def _():
    expect("lab" in ex.databases(), True, "databases")


@suite.check("foreign keys")
def _():
    # its query unnests generate_subscripts over pg_constraint, which has no rows here
    expect(list(ex.foreignkeys()), [], "foreign keys")


@suite.check("functions")
def _():
    # pg_proc lists the semantic SQL functions (issue 24); pgcli reads their argument types through
    # proallargtypes/proargtypes cast to regtype[]
    functions = {f.func_name: f for f in ex.functions()}
    expect("semantic_matches" in functions, True, f"functions {sorted(functions)[:5]}")


@suite.check("\\dt through pgspecial")
def _():
    results = list(ex.run("\\dt", pgspecial=PGSpecial()))
    rows = [list(r) for r in (results[0][1] or [])]
    expect(any("animals" in row for row in rows), True, f"\\dt rows {rows}")


@suite.check("a query through run()")
def _():
    results = list(ex.run("SELECT name FROM animals WHERE id = 2"))
    expect([tuple(r) for r in results[0][1]], [("dog",)])


suite.main()
