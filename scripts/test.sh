#!/usr/bin/env bash
# The README's test command: install what the tests talk to (scripts/test-deps.sh, idempotent), then run
# the whole workspace's tests. Extra arguments go to `cargo test`; without any, the events-sink tests run a
# second time against a current ClickHouse release (scripts/clickhouse-current.sh), the first pass having
# run them on Debian's 18.16.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/test-deps.sh
. scripts/test-deps.sh
cargo test --workspace --locked --no-fail-fast "$@"
if [ "$#" -eq 0 ]; then
  scripts/clickhouse-current.sh cargo test --locked -p rvbbit-store --test it clickhouse
  scripts/clickhouse-current.sh cargo test --locked -p rvbbit --test it events_sink
fi
