#!/usr/bin/env bash
# Runs a command with RVBBIT_TEST_CLICKHOUSE_URL pointing at a throwaway *current* ClickHouse release: the
# engine of chdb-core (ClickHouse 26.x, from PyPI, installed by scripts/test-deps.sh into
# $RVBBIT_CHDB_PYTHON's venv) behind ClickHouse's HTTP interface (scripts/lib/clickhouse-current.py), on a
# free loopback port with a temporary data directory, stopped afterwards. scripts/test.sh runs the
# events-sink tests through it, so the sink's SQL is checked on 18.16 (Debian's server) and on a current
# release.
#
#   scripts/clickhouse-current.sh cargo test -p rvbbit-store --test it clickhouse
set -euo pipefail
cd "$(dirname "$0")/.."
python="${RVBBIT_CHDB_PYTHON:-$HOME/.cache/rvbbit-chdb/bin/python}"
if ! "$python" -c 'import chdb' 2>/dev/null; then
  echo "clickhouse-current: chdb-core is not installed for $python: run scripts/test-deps.sh" >&2
  exit 1
fi
dir=$(mktemp -d)
out="$dir/front.out"
"$python" scripts/lib/clickhouse-current.py "$dir/data" >"$out" 2>&1 &
front=$!
trap 'kill "$front" 2>/dev/null || true; wait "$front" 2>/dev/null || true; rm -rf "$dir"' EXIT
port=
for _ in $(seq 1 300); do
  port=$(awk '/^port /{print $2}' "$out")
  [ -n "$port" ] && break
  kill -0 "$front" 2>/dev/null || { cat "$out" >&2; echo "clickhouse-current: the front did not start" >&2; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "clickhouse-current: no port after 30 s" >&2; exit 1; }
version=$(curl -fsS --data-binary 'SELECT version()' "http://127.0.0.1:$port/")
echo "clickhouse-current: ClickHouse $version (chdb-core) on 127.0.0.1:$port" >&2
export RVBBIT_TEST_CLICKHOUSE_URL="http://default@127.0.0.1:$port"
"$@"
