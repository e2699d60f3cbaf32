#!/usr/bin/env bash
# Times `rvbbit validate` over the whole shared corpus with a release build and prints the numbers.
# Usage: scripts/bench-validate.sh [runs]   (default 20 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20}"
corpus="${RVBBIT_CORPUS_DIR:-../shared/corpus}"
target="${CARGO_TARGET_DIR:-target}"
cargo build -q --release -p rvbbit
bin="$target/release/rvbbit"
files=$(find "$corpus" -type f \( -name '*.yaml' -o -name '*.yml' -o -name '*.json' \) | wc -l)
bytes=$(find "$corpus" -type f \( -name '*.yaml' -o -name '*.yml' -o -name '*.json' \) -print0 | xargs -0 cat | wc -c)
"$bin" validate "$corpus" --output json >/dev/null || true   # warm the page cache
best=999999999; total=0
for _ in $(seq "$runs"); do
  start=$(date +%s%N)
  "$bin" validate "$corpus" --output json >/dev/null || true
  end=$(date +%s%N)
  ns=$((end - start)); total=$((total + ns))
  [ "$ns" -lt "$best" ] && best=$ns
done
mean_ms=$(awk "BEGIN {printf \"%.1f\", $total / $runs / 1e6}")
best_ms=$(awk "BEGIN {printf \"%.1f\", $best / 1e6}")
per_file_us=$(awk "BEGIN {printf \"%.0f\", $total / $runs / 1e3 / $files}")
echo "rvbbit validate over the corpus: $files files, $((bytes / 1024)) KiB, $runs runs (whole process, release build)"
echo "  mean ${mean_ms} ms, best ${best_ms} ms, ${per_file_us} µs per file"
