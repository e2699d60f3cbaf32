#!/usr/bin/env bash
# The speed figures of issue 21, each beside its goal, from release binaries.
#
#   scripts/bench.sh [--quick]
#
# Builds the release binaries (rvbbit, rvbbit-testkit) unless RVBBIT_BIN and TESTKIT_BIN name prebuilt
# ones, then prints one table: figure, measured, goal, ratio (measured ÷ goal for "at most" goals, goal ÷
# measured for "at least" goals: <= 1.00 means met) and met/NOT met. The figures:
#
#   1. cached rows through psql: 100,000 distinct `rvbbit_udf` rows already in the result cache, fetched
#      by `psql` from `rvbbit serve sql` (goal >= 500,000 rows/s), and the store growth of that statement
#      (the database file after a WAL checkpoint, goal < 10 KB);
#   2. `rvbbit run` median wall time (whole process) of a 3-cell deterministic cascade with one shell
#      cell (goal < 20 ms) and of a 3-cell cascade without subprocess (goal < 10 ms);
#   3. 1,000 distinct `rvbbit_udf` calls at 200 ms testkit latency, concurrency 32, against the physical
#      limit ceil(1000 / 32) x 200 ms (goal <= 1.1x);
#   4. the in-process writer to SQLite: `rvbbit debug emit --count N` sends N events through the
#      buffered writer into a fresh store, whole process timed (goal >= 100,000 events/s;
#      `cargo bench -p rvbbit-store --bench store` measures the same without process start);
#   5. 8 processes x 25 runs at once into one store: runs stored and records lost (goal: 200 and 0).
#
# --quick runs fewer repetitions. The cache for figure 1 is seeded straight into the store's
# `result_cache` with keys computed as rvbbit does (checked against one real call first), so the
# benchmark does not spend minutes filling it. RVBBIT_BENCH_PROFILE=debug measures the debug build.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
profile="${RVBBIT_BENCH_PROFILE:-release}"
if [ -n "${RVBBIT_BIN:-}" ] && [ -n "${TESTKIT_BIN:-}" ]; then
  :  # binaries given: measure them as they are
elif [ "$profile" = release ]; then
  cargo build --release --locked -q -p rvbbit -p rvbbit-testkit --manifest-path "$root/Cargo.toml"
else
  cargo build --locked -q -p rvbbit -p rvbbit-testkit --manifest-path "$root/Cargo.toml"
fi
bin="$(realpath "${RVBBIT_BIN:-$target/$profile/rvbbit}")"
testkit="$(realpath "${TESTKIT_BIN:-$target/$profile/rvbbit-testkit}")"
exec python3 "$root/scripts/bench.py" --bin "$bin" --testkit "$testkit" --root "$root" "$@"
