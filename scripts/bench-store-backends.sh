#!/usr/bin/env bash
# Events per second into each store backend, side by side (issue 17): `rvbbit debug emit --count N`
# sends N events through the buffered writer into a fresh SQLite file and into a fresh database on a
# throwaway PostgreSQL server (initdb + pg_ctl on a free loopback port, fsync off, stopped at exit).
# Whole processes are timed, best of 3. ClickHouse is not a store but the events sink
# (`[store.events] url`): its row is SQLite plus the sink, every batch also INSERTed into a throwaway
# clickhouse-server (generated config on free loopback ports, killed at exit), and each run checks that
# ClickHouse holds all N events once (`count() FINAL`). Without clickhouse-server that row says n/a.
#
#   scripts/bench-store-backends.sh [N]          # default N = 100000
#
# Uses $RVBBIT_BIN, else the release binary (built if missing; RVBBIT_BENCH_PROFILE=debug for the
# debug one).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
n="${1:-100000}"
. "$root/scripts/lib/bench-bin.sh"
work="$(mktemp -d)"
chpid=
bench_cleanup() { if [ -n "$chpid" ]; then kill -9 "$chpid" 2>/dev/null || true; wait "$chpid" 2>/dev/null || true; fi; }
. "$root/scripts/lib/throwaway-pg.sh"

chbin="$(command -v clickhouse-server || ls /usr/sbin/clickhouse-server 2>/dev/null || true)"
chport=
if [ -n "$chbin" ]; then
  chport="$(free_port)"; chtcp="$(free_port)"; ch="$work/ch"
  mkdir -p "$ch"/{data,tmp,user_files,format_schemas,log}
  cat >"$ch/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$ch/log/server.log</log><errorlog>$ch/log/error.log</errorlog></logger>
  <listen_host>127.0.0.1</listen_host><http_port>$chport</http_port><tcp_port>$chtcp</tcp_port>
  <path>$ch/data/</path><tmp_path>$ch/tmp/</tmp_path><user_files_path>$ch/user_files/</user_files_path>
  <format_schema_path>$ch/format_schemas/</format_schema_path><users_config>$ch/users.xml</users_config>
  <default_profile>default</default_profile><default_database>default</default_database>
  <mark_cache_size>5368709120</mark_cache_size>
</yandex>
XML
  cat >"$ch/users.xml" <<XML
<?xml version="1.0"?>
<yandex><profiles><default></default></profiles><quotas><default></default></quotas>
<users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users></yandex>
XML
  "$chbin" --config-file="$ch/config.xml" >/dev/null 2>&1 &
  chpid=$!
  for _ in $(seq 1 300); do
    [ "$(curl -s "http://127.0.0.1:$chport/ping" 2>/dev/null)" = "Ok." ] && break
    sleep 0.1
  done
fi
ch_query() { curl -sS "http://127.0.0.1:$chport/" --data-binary "$1"; }

best() { # best events/s of 3 runs of `debug emit` into store URL $1 (a fresh store each run), with the
         # events sink at $2 if given (a fresh ClickHouse database each run)
  local url="$1" sink="${2:-}" best=0
  for i in 1 2 3; do
    local dir="$work/run-$RANDOM-$i"; mkdir -p "$dir"
    local u="${url//@DB@/b$RANDOM$i}"
    case "$u" in postgres://*) "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U postgres "${u##*/}" ;; esac
    local s="${sink//@DB@/b$RANDOM$i}" start end
    start=$(date +%s.%N)
    if [ -n "$s" ]; then
      (cd "$dir" && RVBBIT_STORE_URL="$u" RVBBIT_STORE_EVENTS_URL="$s" "$bin" debug emit --count "$n" --session bench >/dev/null)
    else
      (cd "$dir" && RVBBIT_STORE_URL="$u" "$bin" debug emit --count "$n" --session bench >/dev/null)
    fi
    end=$(date +%s.%N)
    if [ -n "$s" ]; then
      local got; got="$(ch_query "SELECT count() FROM ${s##*/}.events FINAL")"
      [ "$got" = "$n" ] || { echo "ClickHouse holds $got events, expected $n" >&2; exit 1; }
    fi
    best=$(python3 -c "print(max($best, $n / ($end - $start)))")
  done
  printf '%.0f' "$best"
}
sqlite=$(best "sqlite://.rvbbit/rvbbit.db")
pg=$(best "postgres://postgres@127.0.0.1:$port/@DB@")
if [ -n "$chport" ]; then
  chs=$(best "sqlite://.rvbbit/rvbbit.db" "http://default@127.0.0.1:$chport/@DB@")
  chratio="$(python3 -c "print(f'{$chs / $sqlite:.2f}')")"
  chversion="ClickHouse $(ch_query 'SELECT version()')"
else
  chs=n/a; chratio=n/a; chversion="no clickhouse-server"
fi
printf '%-20s %14s %10s\n' backend events/s "vs SQLite"
printf '%-20s %14s %10s\n' sqlite "$sqlite" 1.00
printf '%-20s %14s %10s\n' postgres "$pg" "$(python3 -c "print(f'{$pg / $sqlite:.2f}')")"
printf '%-20s %14s %10s\n' "sqlite+clickhouse" "$chs" "$chratio"
printf '(%s events per run, best of 3, %s build, %s, %s)\n' "$n" "$profile" "$("$pgbin/postgres" --version)" "$chversion"
