#!/usr/bin/env bash
# `rvbbit batch` throughput (issue 18): N inputs (default 10,000) of a deterministic two-cell cascade,
# then the same batch again (every input a cache hit, nothing executed). Prints inputs per minute, peak
# RSS and the rerun's time, and checks that every output was written.
#
#   scripts/bench-batch.sh                 # builds the release binary first
#   RVBBIT_BIN=target/debug/rvbbit N=2000 scripts/bench-batch.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-10000}"
PARALLEL="${PARALLEL:-$(nproc)}"
if [ -z "${RVBBIT_BIN:-}" ]; then
  cargo build --release -q -p rvbbit
  RVBBIT_BIN="${CARGO_TARGET_DIR:-target}/release/rvbbit"
fi
BIN="$(realpath "$RVBBIT_BIN")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
cat > two.yaml <<'YAML'
cascade_id: bench_two_cells
cells:
  - name: upper
    tool: linux_shell
    inputs:
      command: 'printf %s {{ input.text | q }} | tr a-z A-Z'
  - name: count
    tool: linux_shell
    inputs:
      command: 'printf %s {{ outputs.upper.stdout | q }} | wc -c'
YAML
python3 - "$N" > items.jsonl <<'PY'
import json, sys
for i in range(int(sys.argv[1])):
    print(json.dumps({"text": f"item number {i}"}))
PY
run() {
  /usr/bin/time -f '%e %M' -o time.txt "$BIN" --quiet --output json batch two.yaml --inputs items.jsonl \
    --parallel "$PARALLEL" > summary.json
  read -r secs rss_kb < time.txt
}
run
python3 - "$N" "$secs" "$rss_kb" <<'PY'
import json, sys
n, secs, rss = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
s = json.load(open("summary.json"))
assert s["completed"] == n, s["completed"]
print(f"first run: {n} inputs in {secs:.1f} s = {n / secs * 60:,.0f} inputs/min (goal >= 2,000/min), peak RSS {rss / 1024:.0f} MiB")
PY
outputs=$(find outputs -name output.json | wc -l)
[ "$outputs" -eq "$N" ] || { echo "only $outputs of $N outputs written" >&2; exit 1; }
sessions_before=$(python3 -c "import sqlite3; print(sqlite3.connect('.rvbbit/rvbbit.db').execute('select count(*) from sessions').fetchone()[0])")
run
python3 - "$N" "$secs" "$sessions_before" <<'PY'
import json, sqlite3, sys
n, secs, before = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
s = json.load(open("summary.json"))
after = sqlite3.connect(".rvbbit/rvbbit.db").execute("select count(*) from sessions").fetchone()[0]
assert s["cached"] == n and s["completed"] == 0, s
assert after == before, (before, after)
print(f"rerun: {n} cache hits, {after - before} executions, {secs:.1f} s (goal < 10 s)")
PY
