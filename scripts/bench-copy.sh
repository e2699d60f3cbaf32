#!/usr/bin/env bash
# Memory and speed of `COPY (query) TO STDOUT` and of cursors through `rvbbit serve sql` (issue 15): the rows
# are streamed batch by batch, so the server's peak RSS must stay flat however many rows the query makes,
# and a cursor computes only the rows FETCH reads.
#
#   scripts/bench-copy.sh [ROWS]          # default 1000000
#
# The binary: $RVBBIT_BIN, else the release build if it exists, else the debug build (under
# $CARGO_TARGET_DIR or target/); nothing is built. psql: $RVBBIT_PSQL or `psql`. It starts
# `rvbbit serve sql --port 0` in a fresh temporary directory, runs the COPY through psql into `wc`, and
# prints rows, seconds and the server's peak RSS (VmHWM of /proc/PID/status) against the goal of
# 200 MiB. The steps, in this order (the allocator keeps what a step freed, so each starts from the RSS
# the last left): a cursor over the query (`DECLARE … ; FETCH 10`), `FETCH ALL` of a fresh cursor, the
# COPY, then the same rows fetched by a plain SELECT (collected before sending), for comparison.
# Each step's peak is its own: VmHWM is reset before it (`echo 5 > /proc/PID/clear_refs`).
# Exit 0 when the COPY and the cursors stayed under the goal, 1 otherwise, 2 on a setup problem.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
rows="${1:-1000000}"
goal_mib=200
target="${CARGO_TARGET_DIR:-$root/target}"
bin="${RVBBIT_BIN:-}"
if [ -z "$bin" ]; then
  for profile in release debug; do
    if [ -x "$target/$profile/rvbbit" ]; then bin="$target/$profile/rvbbit"; break; fi
  done
fi
[ -n "$bin" ] && [ -x "$bin" ] || { echo "bench-copy: no rvbbit binary (build one, or set RVBBIT_BIN)" >&2; exit 2; }
psql_bin="${RVBBIT_PSQL:-psql}"
command -v "$psql_bin" >/dev/null || { echo "bench-copy: no psql (set RVBBIT_PSQL)" >&2; exit 2; }

work="$(mktemp -d)"
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
(cd "$work" && RVBBIT_PROVIDER_BASE_URL=http://127.0.0.1:9/v1 exec "$bin" serve sql --port 0 2>"$work/stderr") &
pid=$!
port=
for _ in $(seq 1 300); do
  port="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/stderr" | head -1)"
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "bench-copy: the server did not start:" >&2; cat "$work/stderr" >&2; exit 2; }

hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$pid/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
run() { "$psql_bin" -X -q -h 127.0.0.1 -p "$port" -U bench -d bench "$@"; }
query="SELECT n, 'row number ' || n AS label, n * 0.5 AS half FROM generate_series(1, $rows) AS t(n)"

# Reset the peak so that each step's VmHWM is its own (Linux 4.0+; without it the peaks only grow).
reset_hwm() { echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true; }
seconds() { echo "$2 - $1" | bc; }

run -c "SELECT 1" >/dev/null
start_kib="$(hwm_kib)"

reset_hwm
t2="$(date +%s.%N)"
fetched10="$(run -A -t -c "BEGIN" -c "DECLARE c CURSOR FOR $query" -c "FETCH 10 FROM c" -c "COMMIT" | wc -l)"
t3="$(date +%s.%N)"
fetch10_kib="$(hwm_kib)"

reset_hwm
t4="$(date +%s.%N)"
fetched_all="$(run -A -t -c "BEGIN" -c "DECLARE c CURSOR FOR $query" -c "FETCH ALL FROM c" -c "COMMIT" | wc -l)"
t5="$(date +%s.%N)"
fetch_all_kib="$(hwm_kib)"

reset_hwm
t0="$(date +%s.%N)"
copied="$(run -c "COPY ($query) TO STDOUT" | wc -l)"
t1="$(date +%s.%N)"
copy_kib="$(hwm_kib)"

reset_hwm
t6="$(date +%s.%N)"
selected="$(run -A -t -c "$query" | wc -l)"
t7="$(date +%s.%N)"
select_kib="$(hwm_kib)"

echo "binary: $bin"
echo "server peak RSS after start-up: $(mib "$start_kib") MiB"
awk -v r="$copied" -v s="$(seconds "$t0" "$t1")" -v m="$(mib "$copy_kib")" -v g="$goal_mib" \
  'BEGIN { printf "COPY (query) TO STDOUT: %d rows in %.2f s (%.0f rows/s); server peak RSS %s MiB (goal < %d MiB)\n", r, s, r / s, m, g }'
awk -v r="$fetched10" -v s="$(seconds "$t2" "$t3")" -v m="$(mib "$fetch10_kib")" \
  'BEGIN { printf "cursor, DECLARE + FETCH 10: %d rows in %.3f s; server peak RSS %s MiB\n", r, s, m }'
awk -v r="$fetched_all" -v s="$(seconds "$t4" "$t5")" -v m="$(mib "$fetch_all_kib")" \
  'BEGIN { printf "cursor, DECLARE + FETCH ALL: %d rows in %.2f s; server peak RSS %s MiB\n", r, s, m }'
awk -v r="$selected" -v s="$(seconds "$t6" "$t7")" -v m="$(mib "$select_kib")" \
  'BEGIN { printf "SELECT (collected, for comparison): %d rows in %.2f s; server peak RSS %s MiB\n", r, s, m }'
[ "$copied" -eq "$rows" ] || { echo "bench-copy: expected $rows rows, got $copied" >&2; exit 1; }
[ "$fetched10" -eq 10 ] || { echo "bench-copy: FETCH 10 gave $fetched10 rows" >&2; exit 1; }
[ "$fetched_all" -eq "$rows" ] || { echo "bench-copy: FETCH ALL gave $fetched_all rows, expected $rows" >&2; exit 1; }
[ "$copy_kib" -lt $((goal_mib * 1024)) ] && [ "$fetch10_kib" -lt $((goal_mib * 1024)) ] \
  && [ "$fetch_all_kib" -lt $((goal_mib * 1024)) ]
