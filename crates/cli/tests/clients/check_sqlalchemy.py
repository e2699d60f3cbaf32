"""SQLAlchemy 2 (its psycopg 3 dialect) against `rvbbit serve sql` (the server has `[sql.tables] animals =
"animals.csv"`: id, name, weight, three rows). Run by crates/cli/tests/it/clients.rs; see
clientcheck.py for the output."""

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from clientcheck import HOST, PORT, Suite, expect

suite = Suite("sqlalchemy", sa.__version__)
engine = sa.create_engine(f"postgresql+psycopg://sa@{HOST}:{PORT}/lab", pool_size=1, max_overflow=0)
animals = sa.table("animals", sa.column("id"), sa.column("name"), sa.column("weight"))


class Base(DeclarativeBase):
    pass


class Animal(Base):
    __tablename__ = "animals"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    weight: Mapped[float]


@suite.check("connect (the dialect's start-up queries)")
def _():
    with engine.connect() as c:
        expect(c.execute(sa.text("SELECT 1 AS one")).scalar(), 1)
    expect(engine.dialect.server_version_info[0], 16)


@suite.check("text() with a bound parameter")
def _():
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT name FROM animals WHERE id = :i"), {"i": 2}).all()
    expect(rows, [("dog",)])


@suite.check("Core select with where, order and limit")
def _():
    query = sa.select(animals.c.name).where(animals.c.weight > 1.0).order_by(animals.c.id.desc()).limit(1)
    with engine.connect() as c:
        expect(c.execute(query).scalars().all(), ["dog"])


@suite.check("Core select with in_()")
def _():
    query = sa.select(animals.c.id).where(animals.c.name.in_(["cat", "owl"])).order_by(animals.c.id)
    with engine.connect() as c:
        expect(c.execute(query).scalars().all(), [1, 3])


@suite.check("ORM select of a mapped class")
def _():
    with Session(engine) as s:
        got = s.scalars(sa.select(Animal).where(Animal.id >= 2).order_by(Animal.id)).all()
        expect([(a.id, a.name) for a in got], [(2, "dog"), (3, "owl")])


@suite.check("ORM get by primary key")
def _():
    with Session(engine) as s:
        expect(s.get(Animal, 3).name, "owl")


@suite.check("Core insert and update of a table of the connection, update rowcount")
def _():
    # The pool holds one connection, so the table (per connection) outlives this check.
    with engine.begin() as c:
        c.execute(sa.text("CREATE TABLE notes (id INT, body VARCHAR)"))
        notes = sa.table("notes", sa.column("id"), sa.column("body"))
        # SQLAlchemy 2.1 reports -1 for an INSERT's rowcount (PostgreSQL 15 gives the same)
        c.execute(sa.insert(notes).values(id=1, body="a"))
        c.execute(sa.insert(notes), [{"id": 2, "body": "b"}, {"id": 3, "body": "c"}])
        expect(c.execute(sa.update(notes).where(notes.c.id >= 2).values(body="z")).rowcount, 2)
        expect(c.execute(sa.select(sa.func.count()).select_from(notes)).scalar(), 3)


@suite.check("inspector has_table")
def _():
    expect(sa.inspect(engine).has_table("animals"), True)


@suite.check("inspector get_table_names lists the [sql.tables] file")
def _():
    expect("animals" in sa.inspect(engine).get_table_names(), True)


@suite.check("Table reflection")
def _():
    table = sa.Table("animals", sa.MetaData(), autoload_with=engine)
    expect(list(table.c.keys()), ["id", "name", "weight"])
    expect([type(c.type).__name__ for c in table.c], ["BIGINT", "TEXT", "DOUBLE_PRECISION"])
    expect([c.server_default for c in table.c], [None, None, None])
    expect(table.primary_key.columns.keys(), [])
    expect(sa.inspect(engine).get_indexes("animals"), [])


@suite.check("stream_results")
def _():
    with engine.connect() as c:
        result = c.execution_options(stream_results=True).execute(sa.text("SELECT n FROM generate_series(1, 100) AS t(n)"))
        expect(len(result.fetchmany(10)), 10)


@suite.check("pandas.read_sql_table of the [sql.tables] file")
def _():
    import pandas as pd

    frame = pd.read_sql_table("animals", engine)
    expect(list(frame.columns), ["id", "name", "weight"])
    expect(frame.sort_values("id")["name"].tolist(), ["cat", "dog", "owl"])


@suite.check("pandas to_sql into a table of the connection, read back")
def _():
    import pandas as pd

    with engine.begin() as c:
        pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}).to_sql("pandas_out", c, index=False)
        back = pd.read_sql_query("SELECT a, b FROM pandas_out ORDER BY a", c)
    expect(back.to_dict("records"), [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}])


suite.main()
