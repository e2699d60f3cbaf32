#!/usr/bin/env python3
"""The speed figures of issue 21 beside their goals. Run through scripts/bench.sh (which builds the
binaries); see that file for what each figure is. Only the standard library and the `psql` client."""

import argparse
import hashlib
import json
import math
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROWS_CACHED = 100_000
UDF_ROWS = 1_000
UDF_LATENCY_MS = 200
CONCURRENCY = 32


def fail(message):
    print(f"bench: error: {message}", file=sys.stderr)
    sys.exit(1)


class Testkit:
    """`rvbbit-testkit serve --latency L`: prints its base URL on stdout."""

    def __init__(self, binary, latency):
        self.proc = subprocess.Popen(
            [binary, "serve", "--latency", latency],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.url = self.proc.stdout.readline().strip()
        if not self.url:
            fail("the testkit server did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def env_for(url, concurrency=CONCURRENCY):
    env = dict(os.environ)
    env.pop("RVBBIT_LOG", None)
    env.update(
        {
            "RVBBIT_PROVIDER_BASE_URL": url,
            "OPENROUTER_API_KEY": "bench",
            "RVBBIT_DEFAULT_MODEL": "bench/model",
            "RVBBIT_PROVIDER__MAX_CONCURRENCY": str(concurrency),
        }
    )
    return env


def store_bytes(work):
    """The database file's size after its write-ahead log is checkpointed into it and truncated: what the
    store holds (the WAL itself is a reused journal of whole 4 KiB pages, not data)."""
    db = os.path.join(work, ".rvbbit", "rvbbit.db")
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return os.path.getsize(db)


def udf_cascade_hash(root):
    """SHA-256 of the built-in `rvbbit_udf` cascade text, read from crates/sql/src/runtime.rs."""
    text = open(os.path.join(root, "crates/sql/src/runtime.rs"), encoding="utf-8").read()
    m = re.search(r'pub\(crate\) const UDF_CASCADE: &str = r#"(.*?)"#;', text, re.S)
    if not m:
        fail("UDF_CASCADE not found in crates/sql/src/runtime.rs")
    return hashlib.sha256(m.group(1).encode()).hexdigest()


def udf_key(cascade_hash, instructions, value, model):
    """The cache key of rvbbit_udf(instructions, value) as calls.rs computes it (canonical JSON)."""
    doc = {
        "cascade": cascade_hash,
        "fn": "rvbbit_udf",
        "instructions": instructions,
        "layout": 1,
        "max_tokens": None,
        "model": model,
        "temperature": 0.0,
        "value": value,
    }
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def cached_rows(args, results):
    """Figure 1: 100k cached rows through psql, and the store growth of that statement."""
    psql = shutil.which("psql")
    if not psql:
        results.append(("cached rows via psql", "not measured (no psql)", ">= 500,000 rows/s", None, False))
        return
    work = tempfile.mkdtemp(prefix="rvbbit-bench-")
    kit = Testkit(args.testkit, "0ms")
    try:
        env = env_for(kit.url)
        # One real call: proves the key derivation below and gives a value to copy.
        subprocess.run(
            [args.bin, "sql", "SELECT rvbbit_udf('Tag', 'v0')"], cwd=work, env=env, check=True,
            capture_output=True,
        )
        db = sqlite3.connect(os.path.join(work, ".rvbbit", "rvbbit.db"))
        h = udf_cascade_hash(args.root)
        (key, stored), = db.execute("SELECT key, value FROM result_cache").fetchall()
        if udf_key(h, "Tag", "v0", "bench/model") != key:
            fail("the bench's cache key differs from rvbbit's; update udf_key() in scripts/bench.py")
        entry = json.loads(stored)
        rows = []
        for i in range(1, ROWS_CACHED):
            entry["value"] = f"Tag:v{i}"
            rows.append((udf_key(h, "Tag", f"v{i}", "bench/model"), json.dumps(entry), 0, None, 0))
        db.executemany(
            "INSERT INTO result_cache (key, value, created_at_us, expires_at_us, hits) VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        server = subprocess.Popen(
            [args.bin, "serve", "sql", "--port", "0"], cwd=work, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        port = None
        for line in server.stderr:
            m = re.search(r"listening on [^ ]*:(\d+)", line)
            if m:
                port = m.group(1)
                break
        if port is None:
            fail("rvbbit serve sql did not start")
        query = (
            f"SELECT rvbbit_udf('Tag', 'v' || CAST(value AS VARCHAR)) FROM generate_series(0, {ROWS_CACHED - 1})"
        )
        cmd = [psql, "-X", "-A", "-t", "-q", "-h", "127.0.0.1", "-p", port, "-U", "bench", "-d", "rvbbit",
               "-o", os.devnull, "-c", query]
        pg_env = dict(os.environ, PGCONNECT_TIMEOUT="10")
        times, growth = [], []
        for _ in range(args.repeat):
            before = store_bytes(work)
            t0 = time.perf_counter()
            subprocess.run(cmd, env=pg_env, check=True)
            times.append(time.perf_counter() - t0)
            time.sleep(0.3)  # the writer flushes the statement's two events
            growth.append(store_bytes(work) - before)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        db = sqlite3.connect(os.path.join(work, ".rvbbit", "rvbbit.db"))
        runs = db.execute("SELECT count(*) FROM sessions").fetchone()[0]
        hits = db.execute("SELECT count(*) FROM events WHERE kind = 'cache_hit'").fetchone()[0]
        db.close()
        best = min(times)
        rate = ROWS_CACHED / best
        results.append(
            (f"cached rows via psql ({ROWS_CACHED:,} rows, best of {args.repeat})", f"{rate:,.0f} rows/s",
             ">= 500,000 rows/s", 500_000 / rate, rate >= 500_000)
        )
        worst = max(growth)
        results.append(
            ("store growth of that statement (db after checkpoint, worst)", f"{worst:,} bytes", "< 10,240 bytes",
             worst / 10_240, worst < 10_240)
        )
        results.append(
            ("  (check) sessions in store / cache_hit events", f"{runs} / {hits}",
             f"1 / {args.repeat}", None, runs == 1 and hits == args.repeat)
        )
    finally:
        kit.stop()
        shutil.rmtree(work, ignore_errors=True)


DETERMINISTIC = """cascade_id: bench_deterministic
cells:
  - name: shell
    tool: linux_shell
    inputs: {command: "echo 42"}
  - name: keep
    tool: set_state
    inputs: {key: answer, value: "{{ outputs.shell }}"}
  - name: note
    tool: append_state
    inputs: {key: notes, value: done}
"""

NO_SUBPROCESS = """cascade_id: bench_no_subprocess
cells:
  - name: first
    tool: set_state
    inputs: {key: a, value: "1"}
  - name: second
    tool: set_state
    inputs: {key: b, value: "{{ state.a }}"}
  - name: third
    tool: append_state
    inputs: {key: notes, value: done}
"""


def run_times(args, results):
    """Figure 2: median whole-process wall time of `rvbbit run`."""
    work = tempfile.mkdtemp(prefix="rvbbit-bench-")
    try:
        env = env_for("http://127.0.0.1:9/v1")
        for name, text, goal_ms in (("deterministic.yaml", DETERMINISTIC, 20), ("plain.yaml", NO_SUBPROCESS, 10)):
            path = os.path.join(work, name)
            open(path, "w").write(text)
            first = subprocess.run([args.bin, "run", name], cwd=work, env=env, capture_output=True, text=True)
            if first.returncode != 0:
                fail(f"rvbbit run {name} exited {first.returncode}: {first.stderr.strip()}")
            samples = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                subprocess.run([args.bin, "run", name], cwd=work, env=env, check=True, capture_output=True)
                samples.append((time.perf_counter() - t0) * 1000)
            med = statistics.median(samples)
            label = "3-cell deterministic (one shell cell)" if goal_ms == 20 else "3-cell, no subprocess"
            results.append(
                (f"rvbbit run, {label}, median of {args.runs}", f"{med:.1f} ms", f"< {goal_ms} ms",
                 med / goal_ms, med < goal_ms)
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def udf_ratio(args, results):
    """Figure 3: 1,000 distinct calls at 200 ms latency against the physical limit."""
    work = tempfile.mkdtemp(prefix="rvbbit-bench-")
    kit = Testkit(args.testkit, f"{UDF_LATENCY_MS}ms")
    try:
        query = (
            "SELECT count(r) AS n FROM (SELECT rvbbit_udf('Tag', 'v' || CAST(value AS VARCHAR)) AS r "
            f"FROM generate_series(1, {UDF_ROWS}))"
        )
        out = subprocess.run(
            [args.bin, "--output", "json", "sql", query], cwd=work, env=env_for(kit.url),
            check=True, capture_output=True, text=True,
        )
        doc = json.loads(out.stdout)
        ms = doc["duration_ms"]
        limit = math.ceil(UDF_ROWS / CONCURRENCY) * UDF_LATENCY_MS
        ratio = ms / limit
        results.append(
            (f"{UDF_ROWS:,}-row rvbbit_udf at {UDF_LATENCY_MS} ms, concurrency {CONCURRENCY}",
             f"{ms:,} ms = {ratio:.3f}x the {limit:,} ms limit", "<= 1.1x", ratio / 1.1, ratio <= 1.1)
        )
    finally:
        kit.stop()
        shutil.rmtree(work, ignore_errors=True)


def writer_rate(args, results):
    """Figure 4: the in-process writer: `rvbbit debug emit` sends N events through the buffered writer
    into a fresh SQLite store (whole process, including opening the store and the final flush)."""
    work = tempfile.mkdtemp(prefix="rvbbit-bench-")
    try:
        n = 100_000 if args.quick else 400_000
        env = env_for("http://127.0.0.1:9/v1")
        subprocess.run([args.bin, "db", "init"], cwd=work, env=env, check=True, capture_output=True)
        t0 = time.perf_counter()
        subprocess.run(
            [args.bin, "debug", "emit", "--count", str(n), "--session", "bench-writer"],
            cwd=work, env=env, check=True, capture_output=True,
        )
        secs = time.perf_counter() - t0
        db = sqlite3.connect(os.path.join(work, ".rvbbit", "rvbbit.db"))
        stored = db.execute("SELECT count(*) FROM events").fetchone()[0]
        db.close()
        rate = n / secs
        results.append(
            (f"in-process writer to SQLite ({n:,} events, {stored:,} stored)", f"{rate:,.0f} events/s",
             ">= 100,000 events/s", 100_000 / rate, rate >= 100_000 and stored >= n)
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def processes(args, results):
    """Figure 5: 8 processes x 25 runs into one store; every run stored, nothing lost."""
    work = tempfile.mkdtemp(prefix="rvbbit-bench-")
    try:
        open(os.path.join(work, "plain.yaml"), "w").write(NO_SUBPROCESS)
        env = env_for("http://127.0.0.1:9/v1")
        script = f'for i in $(seq {args.per_process}); do "$0" --output json run plain.yaml || echo FAILED; done'
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen(["bash", "-c", script, args.bin], cwd=work, env=env, stdout=subprocess.PIPE, text=True)
            for _ in range(args.processes)
        ]
        outputs = [p.communicate()[0] for p in procs]
        secs = time.perf_counter() - t0
        lost = spilled = failed = 0
        decoder = json.JSONDecoder()
        for text in outputs:
            failed += text.count("FAILED")
            text = text.replace("FAILED", "")
            pos = 0
            while True:
                while pos < len(text) and text[pos].isspace():
                    pos += 1
                if pos >= len(text):
                    break
                doc, pos = decoder.raw_decode(text, pos)
                lost += doc["recording"]["lost"]
                spilled += doc["recording"]["spilled"]
        db = sqlite3.connect(os.path.join(work, ".rvbbit", "rvbbit.db"))
        stored = db.execute("SELECT count(*) FROM sessions WHERE status = 'completed'").fetchone()[0]
        db.close()
        total = args.processes * args.per_process
        results.append(
            (f"{args.processes} processes x {args.per_process} runs at once ({total / secs:.0f} runs/s)",
             f"{stored} stored, {lost} lost, {spilled} spilled, {failed} failed", f"{total} stored, 0 lost",
             None, stored == total and lost == 0 and spilled == 0 and failed == 0)
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--testkit", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default="1,2,3,4,5", help="comma-separated figure numbers")
    args = p.parse_args()
    args.repeat = 2 if args.quick else 5
    args.runs = 10 if args.quick else 31
    args.processes, args.per_process = 8, 25
    results = []
    steps = {"1": cached_rows, "2": run_times, "3": udf_ratio, "4": writer_rate, "5": processes}
    for n in args.only.split(","):
        steps[n.strip()](args, results)
    version = subprocess.run([args.bin, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"{version}; {platform.node()} ({os.cpu_count()} cores, {platform.machine()}); "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {args.bin}")
    width = max(len(r[0]) for r in results)
    print(f"{'figure':<{width}}  {'measured':<40} {'goal':<22} ratio  result")
    for label, measured, goal, ratio, met in results:
        shown = f"{ratio:5.2f}" if ratio is not None else "    -"
        print(f"{label:<{width}}  {measured:<40} {goal:<22} {shown}  {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
