#!/usr/bin/env python3
"""Latency of `rvbbit serve sql` (the PostgreSQL wire server) as a psycopg 3 client sees it.

Run it with a python that has psycopg 3, for example the test venv:

    ~/.cache/rvbbit-venv/bin/python scripts/bench-pgwire.py RVBBIT_BINARY [--round-trips N] [--rows N]

(create that venv with `python3 -m venv ~/.cache/rvbbit-venv &&
~/.cache/rvbbit-venv/bin/pip install "psycopg[binary]"`).

It starts `RVBBIT_BINARY serve sql --port 0` in a fresh temporary directory (so the store
`.rvbbit/rvbbit.db` is new), with RVBBIT_PROVIDER_BASE_URL pointing at a closed port (no statement here
calls an LLM), connects over loopback (trust, no password) and measures on one connection:

  (a) N round trips of
        - `SELECT 1`            simple query protocol (psycopg without parameters, prepare=False)
        - `SELECT $1::int`      extended protocol, unnamed statement: Parse/Bind/Describe/Execute/Sync
                                every time (prepare=False)
        - `SELECT $1::int`      extended protocol, server-side prepared statement: Bind/Execute only
                                (prepare=True; what psycopg does by itself after 5 runs of a query)
      each as p50/p99/mean in ms;
  (b) fetching `SELECT * FROM generate_series(1, ROWS)` (median of 10);
  (c) connection setup: connect + close, and connect + `SELECT 1` + close (median of 20).

Then it sends SIGTERM and checks that the server exits 0. Exit status: 0 done, 1 the server or a
measurement failed, 2 bad usage or a missing binary or psycopg. The server is killed on any exit.
"""

import argparse
import math
import os
import platform
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
ROW_RUNS = 10
CONNECT_RUNS = 20
WARMUP = 50


def fail(message, status=1):
    print(f"bench-pgwire: error: {message}", file=sys.stderr)
    sys.exit(status)


def ms(ns):
    return ns / 1e6


def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary(samples_ns):
    s = sorted(samples_ns)
    return {
        "p50": ms(percentile(s, 50)),
        "p99": ms(percentile(s, 99)),
        "mean": ms(statistics.fmean(s)),
        "min": ms(s[0]),
        "max": ms(s[-1]),
    }


class Server:
    """`rvbbit serve sql --port 0` in its own directory; stderr is drained by a thread."""

    def __init__(self, binary, workdir):
        env = dict(os.environ)
        env["RVBBIT_PROVIDER_BASE_URL"] = "http://127.0.0.1:9/v1"
        env.pop("RVBBIT_LOG", None)
        self.lines = queue.Queue()
        self.stderr = []
        self.proc = subprocess.Popen(
            [binary, "serve", "sql", "--port", "0"],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))
            self.lines.put(line)
        self.lines.put(None)

    def wait_port(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                fail(
                    f"the server did not print `listening on …` within {START_TIMEOUT_S:.0f} s; "
                    f"its stderr so far:\n{self.stderr_text()}"
                )
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=5)
                fail(
                    f"the server exited with status {self.proc.returncode} before listening; "
                    f"its stderr:\n{self.stderr_text()}"
                )
            if "listening on " in line:
                addr = line.split("listening on ", 1)[1].split()[0]
                try:
                    return int(addr.rsplit(":", 1)[1])
                except (IndexError, ValueError):
                    fail(f"no port in the server's line `{line.strip()}`")

    def stderr_text(self):
        return "\n".join("    " + l for l in self.stderr) or "    (nothing)"

    def stop(self):
        """SIGTERM, then the exit status (None when it did not stop in time)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


def round_trips(conn, n, sql, params, prepare):
    samples = []
    expected = 1
    with conn.cursor() as cur:
        for _ in range(n):
            t0 = time.perf_counter_ns()
            cur.execute(sql, params, prepare=prepare)
            row = cur.fetchone()
            samples.append(time.perf_counter_ns() - t0)
            if row is None or row[0] != expected:
                fail(f"`{sql}` returned {row!r}, expected ({expected},)")
    return summary(samples)


def fetch_rows(conn, rows):
    sql = f"SELECT * FROM generate_series(1, {rows})"
    samples = []
    with conn.cursor() as cur:
        for _ in range(ROW_RUNS):
            t0 = time.perf_counter_ns()
            cur.execute(sql, prepare=False)
            got = cur.fetchall()
            samples.append(time.perf_counter_ns() - t0)
            if len(got) != rows or got[0][0] != 1 or got[-1][0] != rows:
                fail(f"`{sql}` returned {len(got)} rows (first {got[:1]!r}, last {got[-1:]!r})")
    return ms(statistics.median(samples)), sql


def connect_times(psycopg, dsn, query):
    samples = []
    for _ in range(CONNECT_RUNS):
        t0 = time.perf_counter_ns()
        c = psycopg.connect(dsn, autocommit=True)
        if query:
            c.execute("SELECT 1", prepare=False).fetchone()
        c.close()
        samples.append(time.perf_counter_ns() - t0)
    return ms(statistics.median(samples))


def main():
    parser = argparse.ArgumentParser(
        description="Latency of `rvbbit serve sql` measured with psycopg 3 (see the docstring)."
    )
    parser.add_argument("binary", metavar="RVBBIT_BINARY", help="the rvbbit executable to start")
    parser.add_argument("--round-trips", type=int, default=2000, metavar="N",
                        help="round trips per protocol (default 2000)")
    parser.add_argument("--rows", type=int, default=1000, metavar="N",
                        help="rows of the fetched result (default 1000)")
    args = parser.parse_args()
    if args.round_trips < 1 or args.rows < 1:
        fail("--round-trips and --rows must be at least 1", 2)

    try:
        import psycopg
    except ImportError:
        fail(
            f"`{sys.executable}` has no psycopg 3; run this script with a python that has it, e.g. "
            "`~/.cache/rvbbit-venv/bin/python scripts/bench-pgwire.py …` (create it with "
            "`python3 -m venv ~/.cache/rvbbit-venv && ~/.cache/rvbbit-venv/bin/pip install \"psycopg[binary]\"`)",
            2,
        )

    binary = shutil.which(args.binary) if os.sep not in args.binary else args.binary
    if not binary or not os.path.isfile(binary):
        fail(f"`{args.binary}` does not exist; build it (`cargo build -p rvbbit`) or pass its path", 2)
    if not os.access(binary, os.X_OK):
        fail(f"`{binary}` is not executable", 2)
    binary = os.path.abspath(binary)

    workdir = tempfile.mkdtemp(prefix="rvbbit-bench-pgwire-")
    server = None
    conn = None
    try:
        started = time.monotonic()
        try:
            server = Server(binary, workdir)
        except OSError as e:
            fail(f"cannot start `{binary}`: {e}", 2)
        port = server.wait_port()
        startup_s = time.monotonic() - started
        dsn = f"host=127.0.0.1 port={port} user=rvbbit dbname=rvbbit"
        try:
            conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            fail(f"cannot connect to {dsn}: {e}")

        version = conn.execute("SHOW server_version", prepare=False).fetchone()[0]
        print(f"server:  {binary} ({version}), 127.0.0.1:{port}, fresh store in {workdir}")
        print(f"client:  psycopg {psycopg.__version__} (libpq {psycopg.pq.version()}), "
              f"python {platform.python_version()}, {os.cpu_count()} CPUs")
        print(f"startup: {startup_s * 1000:.0f} ms until `listening on`")

        # Warm up every path once (the catalog, the planner, the prepared statement).
        for _ in range(WARMUP):
            conn.execute("SELECT 1", prepare=False).fetchone()
            conn.execute("SELECT %s::int", (1,), prepare=False).fetchone()
            conn.execute("SELECT %s::int", (1,), prepare=True).fetchone()
        conn.execute(f"SELECT * FROM generate_series(1, {args.rows})", prepare=False).fetchall()

        n = args.round_trips
        print(f"\n(a) {n} round trips on one connection (ms)")
        print(f"    {'':47} {'p50':>8} {'p99':>8} {'mean':>8} {'min':>8} {'max':>8}")
        results = {}
        for label, sql, params, prepare in [
            ("simple    SELECT 1", "SELECT 1", None, False),
            ("extended  SELECT $1::int (unnamed, Parse each)", "SELECT %s::int", (1,), False),
            ("extended  SELECT $1::int (prepared)", "SELECT %s::int", (1,), True),
        ]:
            r = round_trips(conn, n, sql, params, prepare)
            results[label.split()[0] + ("-prepared" if prepare else "")] = r
            print(f"    {label:47} {r['p50']:8.3f} {r['p99']:8.3f} {r['mean']:8.3f} "
                  f"{r['min']:8.3f} {r['max']:8.3f}")

        rows_ms, rows_sql = fetch_rows(conn, args.rows)
        print(f"\n(b) `{rows_sql}`: median {rows_ms:.2f} ms of {ROW_RUNS} "
              f"({args.rows / rows_ms * 1000:,.0f} rows/s)")

        connect_ms = connect_times(psycopg, dsn, query=False)
        connect_query_ms = connect_times(psycopg, dsn, query=True)
        print(f"\n(c) connection setup, median of {CONNECT_RUNS}: connect + close {connect_ms:.2f} ms; "
              f"connect + SELECT 1 + close {connect_query_ms:.2f} ms")

        logged = conn.execute("SELECT count(*) FROM sql_query_log", prepare=False).fetchone()[0]
        print(f"\nsql_query_log rows after the bench: {logged} "
              "(only statements that call rvbbit functions are logged)")
        conn.close()
        conn = None

        code = server.stop()
        if code is None:
            fail(f"the server did not exit within {STOP_TIMEOUT_S:.0f} s of SIGTERM")
        if code != 0:
            fail(f"the server exited with status {code} after SIGTERM (expected 0); "
                 f"its stderr:\n{server.stderr_text()}")
        print("shutdown: SIGTERM → exit 0")

        simple = results["simple"]
        ext = results["extended"]
        prep = results["extended-prepared"]
        print(
            f"\nSUMMARY rvbbit serve sql: SELECT 1 p50 {simple['p50']:.3f} ms (simple), "
            f"{ext['p50']:.3f} ms (extended), {prep['p50']:.3f} ms (prepared); "
            f"{args.rows} rows {rows_ms:.2f} ms; connect {connect_ms:.2f} ms; exit 0"
        )
        return 0
    except psycopg.Error as e:
        detail = f" [SQLSTATE {e.sqlstate}]" if getattr(e, "sqlstate", None) else ""
        stderr = f"; the server's stderr:\n{server.stderr_text()}" if server else ""
        fail(f"a statement failed: {e}{detail}{stderr}")
    finally:
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass
        if server is not None:
            server.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
