#!/usr/bin/env bash
# Throughput of distributed SQL on 1, 2 and 4 workers (issue 22): `RVBBIT MAP … WITH (distributed = true)`
# of JOBS rows, each one LLM call that the testkit server answers after DELAY (an LLM-latency-bound job:
# near-linear scaling is expected, since the jobs wait on I/O), with W real `rvbbit worker` processes of
# CONCURRENCY slots each on a throwaway NATS server (JetStream) and a throwaway PostgreSQL store; then the
# same MAP run locally (`rvbbit sql`, no queue) at the same total concurrency as 1 worker, for the queue's
# overhead per job.
#
#   scripts/bench-workers.sh [JOBS] [DELAY] [CONCURRENCY]     # defaults 200, 200ms, 4
#
# Each run maps fresh rows (no cache hits) onto its own stream. Times are the statement's own duration
# (`duration_ms` of `rvbbit --output json sql`): enqueueing, the workers' runs and gathering from the
# store. `ideal` is ceil(JOBS / (W x CONCURRENCY)) x DELAY. Overhead per job = (distributed on 1 worker -
# local) x CONCURRENCY / JOBS: the extra time each job holds a slot for the queue round trip and the store
# reads (the slots run in parallel, so the wall-clock cost per job is that divided by the slots).
# RVBBIT_BIN and TESTKIT_BIN name prebuilt binaries; else they are built (RVBBIT_BENCH_PROFILE=debug for
# the debug build). Needs nats-server and PostgreSQL's server binaries (scripts/test-deps.sh lists them).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
jobs="${1:-200}"
delay="${2:-200ms}"
concurrency="${3:-4}"
. "$root/scripts/lib/bench-bin.sh"
if [ -z "${TESTKIT_BIN:-}" ]; then
  if [ "$profile" = release ]; then flag=--release; else flag=; fi
  cargo build $flag --locked -q -p rvbbit-testkit --manifest-path "$root/Cargo.toml"
fi
testkit="$(realpath "${TESTKIT_BIN:-$target/$profile/rvbbit-testkit}")"
natsbin="$(command -v nats-server || echo /usr/sbin/nats-server)"
[ -x "$natsbin" ] || { echo "bench-workers: nats-server not found (apt-get install nats-server)" >&2; exit 1; }
work="$(mktemp -d)"
pids=()
bench_cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
. "$root/scripts/lib/throwaway-pg.sh"

natsport="$(free_port)"
"$natsbin" -js -a 127.0.0.1 -p "$natsport" -sd "$work/nats" >"$work/nats.log" 2>&1 &
pids+=($!)
"$testkit" serve --latency "$delay" >"$work/llm-url" 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/llm-url" ] && break; sleep 0.1; done
mkdir -p "$work/run"
cat >"$work/run/bench.yaml" <<'YAML'
cascade_id: bench_workers
cells:
  - name: tag
    instructions: 'Tag row {{ input.n }} of run {{ input.run }}'
    rules:
      max_turns: 1
YAML
export RVBBIT_PROVIDER_BASE_URL="$(cat "$work/llm-url")" OPENROUTER_API_KEY=bench RVBBIT_DEFAULT_MODEL=bench/model
export RVBBIT_PROVIDER__MAX_CONCURRENCY=256 RVBBIT_PROVIDER__MAX_RETRIES=0
export RVBBIT_STORE_URL="postgres://postgres@127.0.0.1:$port/postgres"
export RVBBIT_QUEUE_URL="nats://127.0.0.1:$natsport"
cd "$work/run"

# One MAP statement over fresh rows tagged `$1`, distributed when $2 = true; prints its duration in ms.
map_ms() {
  local options="parallel = 256"
  [ "$2" = true ] && options="distributed = true, $options"
  "$bin" --output json sql "RVBBIT MAP 'bench.yaml' USING (SELECT value AS n, '$1' AS run FROM generate_series(1, $jobs)) WITH ($options)" \
    | python3 -c 'import json, sys
d = json.load(sys.stdin)
assert d["row_count"] == '"$jobs"' and all(r["result"] for r in d["rows"]), "a row has no result"
print(d["duration_ms"])'
}

# Warm up: the store's tables, the queue's streams, one worker's first run.
RVBBIT_QUEUE__STREAM=BENCH_WARM "$bin" worker --concurrency 1 >/dev/null 2>&1 &
warm=$!
RVBBIT_QUEUE__STREAM=BENCH_WARM "$bin" --output json sql "RVBBIT MAP 'bench.yaml' USING (SELECT 0 AS n, 'warm' AS run) WITH (distributed = true)" >/dev/null
kill "$warm"; wait "$warm" 2>/dev/null || true

echo "distributed RVBBIT MAP: $jobs jobs, one LLM call each at $delay, $concurrency slot(s) per worker ($profile build)"
printf '%8s %10s %10s %9s %9s %11s\n' workers 'time ms' 'jobs/s' 'ideal ms' speedup efficiency
one=
for w in 1 2 4; do
  export RVBBIT_QUEUE__STREAM="BENCH_W$w"
  workers=()
  for _ in $(seq "$w"); do
    "$bin" worker --concurrency "$concurrency" >/dev/null 2>&1 &
    workers+=($!); pids+=($!)
  done
  ms="$(map_ms "w$w" true)"
  for p in "${workers[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  [ -z "$one" ] && one="$ms"
  python3 - "$w" "$ms" "$one" "$jobs" "$concurrency" "$delay" <<'PY'
import math, sys
w, ms, one, jobs, conc = (float(x) for x in sys.argv[1:6])
delay = float(sys.argv[6].removesuffix("ms"))
ideal = math.ceil(jobs / (w * conc)) * delay
speedup = one / ms
print(f"{int(w):>8} {ms:>10.0f} {jobs / ms * 1000:>10.1f} {ideal:>9.0f} {speedup:>8.2f}x {speedup / w:>10.0%}")
PY
done
unset RVBBIT_QUEUE__STREAM
local_ms="$(unset RVBBIT_QUEUE_URL; RVBBIT_PROVIDER__MAX_CONCURRENCY="$concurrency" map_ms local false)"
python3 - "$one" "$local_ms" "$jobs" "$concurrency" <<'PY'
import sys
one, local, jobs, conc = (float(x) for x in sys.argv[1:5])
print(f"local MAP at concurrency {int(conc)}: {local:.0f} ms ({jobs / local * 1000:.1f} jobs/s); "
      f"1 worker: {one:.0f} ms ({one / local:.2f}x local)")
print(f"queue overhead per job: {(one - local) * conc / jobs:.1f} ms in its slot "
      f"({(one - local) / jobs:.1f} ms of wall time per job at {int(conc)} slots)")
PY
