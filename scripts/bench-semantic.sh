#!/usr/bin/env bash
# Benchmark of many rows per prompt (issue 24) against the testkit server at 200 ms latency.
#
#   scripts/bench-semantic.sh [CONCURRENCY]      # builds the release binaries first
#
# Runs `SELECT count(*) FROM products WHERE name MEANS 'a fruit'` over ../shared/fixtures/products.csv
# (1,000 rows, 795 distinct names) with K = 1, 4, 16 and 64 rows per prompt (the built-in operator file
# copied to cascades/ with `batch_size: K`), each in a fresh working directory (empty cache), and prints
# side by side: calls, tokens (the testkit's `--semantic`
# model reports a quarter of the characters), the statement's time, the bound
# 1.2 x ceil(calls / CONCURRENCY) x 200 ms and whether it was met, the matching rows (equal for every K)
# and the calls and time of a rerun (0 calls: every row from the cache; its time is the statement's cost
# without the model). `met` compares the statement's whole time with the bound; `model ms` (the first
# run's time less the rerun's) is shown beside it as the time spent on calls.
# Times are the statement's own duration (`duration_ms` of `rvbbit --output json sql`).
# RVBBIT_BENCH_PROFILE=debug uses the debug build; RVBBIT_BIN and TESTKIT_BIN name prebuilt binaries.
set -euo pipefail
concurrency="${1:-32}"
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
profile="${RVBBIT_BENCH_PROFILE:-release}"
fixture="$root/../shared/fixtures/products.csv"
[ -f "$fixture" ] || { echo "missing $fixture (shared/ beside the repository)" >&2; exit 1; }
if [ -n "${RVBBIT_BIN:-}" ] && [ -n "${TESTKIT_BIN:-}" ]; then
  :  # binaries given: measure them as they are
elif [ "$profile" = release ]; then
  cargo build --release -q -p rvbbit -p rvbbit-testkit --manifest-path "$root/Cargo.toml"
else
  cargo build -q -p rvbbit -p rvbbit-testkit --manifest-path "$root/Cargo.toml"
fi
bin="$(realpath "${RVBBIT_BIN:-$target/$profile/rvbbit}")"
testkit="$(realpath "${TESTKIT_BIN:-$target/$profile/rvbbit-testkit}")"
work="$(mktemp -d)"
"$testkit" serve --latency 200ms --semantic >"$work/url" 2>/dev/null &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do [ -s "$work/url" ] && break; sleep 0.1; done
export RVBBIT_PROVIDER_BASE_URL="$(cat "$work/url")" OPENROUTER_API_KEY=bench RVBBIT_DEFAULT_MODEL=bench/model
export RVBBIT_PROVIDER__MAX_CONCURRENCY="$concurrency"

python3 - "$bin" "$work" "$fixture" "$concurrency" "$root/crates/sql/operators/semantic_matches.yaml" <<'PY'
import json, math, os, shutil, subprocess, sys
bin, work, fixture, concurrency, operator = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
query = "SELECT count(*) AS n FROM read_csv('products.csv') WHERE name MEANS 'a fruit'"
def sql(cwd, text):
    out = subprocess.run([bin, "--output", "json", "sql", text], cwd=cwd, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout)
print(f"{'K':>3} {'calls':>6} {'tokens':>8} {'time ms':>8} {'model ms':>9} {'bound ms':>9} {'met':>4} {'rows':>5} "
      f"{'rerun calls':>12} {'rerun ms':>9}")
for k in (1, 4, 16, 64):
    cwd = os.path.join(work, f"k{k}")
    os.makedirs(cwd)
    shutil.copy(fixture, cwd)
    os.makedirs(os.path.join(cwd, "cascades"))
    text = open(operator).read().replace("sql_function:\n", f"sql_function:\n  batch_size: {k}\n", 1)
    with open(os.path.join(cwd, "cascades", "semantic_matches.yaml"), "w") as f:
        f.write(text)
    first = sql(cwd, query)
    calls = first["stats"]["runs"]
    rows = first["rows"][0]["n"] if first.get("rows") else None
    ms = first["duration_ms"]
    bound = 1.2 * math.ceil(calls / concurrency) * 200
    tokens = sql(cwd, "SELECT coalesce(sum(tokens_in), 0) + coalesce(sum(tokens_out), 0) AS t FROM sessions")
    again = sql(cwd, query)
    model = ms - again["duration_ms"]
    print(f"{k:>3} {calls:>6} {tokens['rows'][0]['t']:>8} {ms:>8} {model:>9} {bound:>9.0f} "
          f"{'yes' if ms <= bound else 'NO':>4} {rows:>5} {again['stats']['runs']:>12} {again['duration_ms']:>9}")
PY
