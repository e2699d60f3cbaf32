#!/usr/bin/env bash
# Bounded load test of `rvbbit serve` on loopback (issue 7): one run of a ~30 s cascade followed live by
# SSE clients, plus a steady rate of API reads, for SECONDS. Prints latency percentiles, and fails on any
# error or on any stream that missed, repeated or reordered an event.
#
#   scripts/bench-server-load.sh [SSE=200] [RATE=500] [SECONDS=30]
#
# Builds the release binaries (rvbbit, rvbbit-loadgen) unless RVBBIT_BIN / LOADGEN_BIN name them.
set -euo pipefail
cd "$(dirname "$0")/.."
sse="${1:-200}" rate="${2:-500}" seconds="${3:-30}"
target="${CARGO_TARGET_DIR:-target}"
if [ -z "${RVBBIT_BIN:-}" ] || [ -z "${LOADGEN_BIN:-}" ]; then
  cargo build --release --locked -p rvbbit -p rvbbit-testkit >&2
fi
bin="$(realpath "${RVBBIT_BIN:-$target/release/rvbbit}")"
loadgen="$(realpath "${LOADGEN_BIN:-$target/release/rvbbit-loadgen}")"

work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/cascades"
{
  echo "cascade_id: steady"
  echo "cells:"
  cells=$(( seconds * 2 ))
  for i in $(seq 1 "$cells"); do
    printf '  - name: c%s\n    tool: linux_shell\n    inputs: {command: "sleep 0.5; echo %s"}\n' "$i" "$i"
  done
} > "$work/cascades/steady.yaml"

( cd "$work" && exec "$bin" serve --port 0 --root cascades ) 2> "$work/server.log" &
server=$!
for _ in $(seq 1 100); do
  addr=$(grep -o 'http://[0-9.:]*' "$work/server.log" | head -1 || true)
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "${addr:-}" ] || { echo "the server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
echo "rvbbit serve at $addr ($(nproc) cores; $("$bin" --version))"
"$loadgen" "$addr" steady.yaml "$sse" "$rate" "$seconds"
