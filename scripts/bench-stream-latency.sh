#!/usr/bin/env bash
# Event-to-SSE latency (issue 17): `rvbbit serve` follows a session that a CLI process in another working
# directory writes (`rvbbit debug emit --every-ms`, through the same buffered writer as a run), and an SSE
# client on /api/v1/sessions/ID/events measures, for every event written after it connected, the time from
# the event's creation (its ts_us) to its arrival. Prints p50/p95/p99/max per store: SQLite (the server
# polls) and PostgreSQL (LISTEN/NOTIFY wakes the stream) on a throwaway server. Goal: p95 < 100 ms.
#
#   scripts/bench-stream-latency.sh [N] [EVERY_MS]     # default 400 events, one every 10 ms
#
# Uses $RVBBIT_BIN, else the release binary (built if missing; RVBBIT_BENCH_PROFILE=debug for the debug one).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
n="${1:-400}"
every="${2:-10}"
. "$root/scripts/lib/bench-bin.sh"
work="$(mktemp -d)"
serve_pid=
bench_cleanup() { if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; fi; }
. "$root/scripts/lib/throwaway-pg.sh"

client() { # client HTTP_PORT SESSION: follow the session's stream, print one latency (ms) per line
  python3 - "$1" "$2" <<'PY'
import http.client, json, sys, time
port, sid = int(sys.argv[1]), sys.argv[2]
deadline = time.time() + 60
while True:  # the session exists once the emitter's first flush lands
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", f"/api/v1/sessions/{sid}")
    r = c.getresponse(); r.read()
    if r.status == 200: break
    if time.time() > deadline: sys.exit(f"session {sid} never appeared (HTTP {r.status})")
    time.sleep(0.005)
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
c.request("GET", f"/api/v1/sessions/{sid}/events", headers={"accept": "text/event-stream"})
r = c.getresponse()
connected_us = time.time_ns() // 1000
kind = None
for raw in r:
    line = raw.decode().rstrip("\n")
    if line.startswith("event:"): kind = line[6:].strip()
    elif line.startswith("data:") and kind == "complete": break
    elif line.startswith("data:") and kind not in (None, "connected"):
        now = time.time_ns() // 1000
        ts = json.loads(line[5:])["ts_us"]
        if ts > connected_us: print(f"{(now - ts) / 1000:.3f}", flush=True)
PY
}

measure() { # measure NAME STORE_URL
  local name="$1" url="$2" http sid="bench-$1"
  mkdir -p "$work/serve-$name" "$work/emit-$name"
  http="$(free_port)"
  (cd "$work/serve-$name" && RVBBIT_STORE_URL="$url" exec "$bin" serve --port "$http" >"$work/serve-$name.log" 2>&1) &
  serve_pid=$!
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$http/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
  client "$http" "$sid" >"$work/lat-$name" &
  local client_pid=$!
  (cd "$work/emit-$name" && RVBBIT_STORE_URL="$url" "$bin" debug emit --count "$n" --every-ms "$every" --session "$sid" >/dev/null)
  wait "$client_pid"
  kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; serve_pid=
  python3 - "$name" "$work/lat-$name" <<'PY'
import sys
name, path = sys.argv[1], sys.argv[2]
xs = sorted(float(l) for l in open(path) if l.strip())
if not xs: sys.exit(f"{name}: no event arrived")
q = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]
print(f"{name:<10} {len(xs):>7} {q(.5):>9.1f} {q(.95):>9.1f} {q(.99):>9.1f} {xs[-1]:>9.1f}  {'met' if q(.95) < 100 else 'NOT met'}")
PY
}

"$pgbin/createdb" -h 127.0.0.1 -p "$port" -U postgres stream
printf '%-10s %7s %9s %9s %9s %9s  %s\n' store events "p50 ms" "p95 ms" "p99 ms" "max ms" "p95 < 100 ms"
measure sqlite "sqlite://$work/shared.db"
measure postgres "postgres://postgres@127.0.0.1:$port/stream"
printf '(%s events, one every %s ms, %s build; latency from event creation to the SSE client)\n' "$n" "$every" "$profile"
