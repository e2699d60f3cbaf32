#!/usr/bin/env bash
# The README's test command: install what the tests talk to (scripts/test-deps.sh, idempotent), then run
# the whole workspace's tests. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/test-deps.sh
. scripts/test-deps.sh
exec cargo test --workspace --locked "$@"
