#!/usr/bin/env bash
# Events per second into each store backend, side by side (issue 17): `rvbbit debug emit --count N`
# sends N events through the buffered writer into a fresh SQLite file and into a fresh database on a
# throwaway PostgreSQL server (initdb + pg_ctl on a free loopback port, fsync off, stopped at exit).
# Whole processes are timed, best of 3.
#
#   scripts/bench-store-backends.sh [N]          # default N = 100000
#
# Uses $RVBBIT_BIN, else the release binary (built if missing; RVBBIT_BENCH_PROFILE=debug for the
# debug one). ClickHouse is not a backend yet, so it is not measured.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
n="${1:-100000}"
target="${CARGO_TARGET_DIR:-$root/target}"
profile="${RVBBIT_BENCH_PROFILE:-release}"
if [ -z "${RVBBIT_BIN:-}" ]; then
  if [ "$profile" = release ]; then flag=--release; else flag=; fi
  cargo build $flag --locked -q -p rvbbit --manifest-path "$root/Cargo.toml"
fi
bin="$(realpath "${RVBBIT_BIN:-$target/$profile/rvbbit}")"
work="$(mktemp -d)"
. "$root/scripts/lib/throwaway-pg.sh"

best() { # best events/s of 3 runs of `debug emit` into store URL $1 (a fresh store each run)
  local url="$1" best=0
  for i in 1 2 3; do
    local dir="$work/run-$RANDOM-$i"; mkdir -p "$dir"
    local u="${url//@DB@/b$RANDOM$i}"
    case "$u" in postgres://*) "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U postgres "${u##*/}" ;; esac
    local start end
    start=$(date +%s.%N)
    (cd "$dir" && RVBBIT_STORE_URL="$u" "$bin" debug emit --count "$n" --session bench >/dev/null)
    end=$(date +%s.%N)
    best=$(python3 -c "print(max($best, $n / ($end - $start)))")
  done
  printf '%.0f' "$best"
}
sqlite=$(best "sqlite://.rvbbit/rvbbit.db")
pg=$(best "postgres://postgres@127.0.0.1:$port/@DB@")
printf '%-12s %14s %10s\n' backend events/s "vs SQLite"
printf '%-12s %14s %10s\n' sqlite "$sqlite" 1.00
printf '%-12s %14s %10s\n' postgres "$pg" "$(python3 -c "print(f'{$pg / $sqlite:.2f}')")"
printf '(%s events per run, best of 3, %s build, %s)\n' "$n" "$profile" "$("$pgbin/postgres" --version)"
