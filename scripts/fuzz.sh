#!/usr/bin/env bash
# Build and run every cargo-fuzz target in fuzz/fuzz_targets/ (libFuzzer, stable toolchain).
#
#   scripts/fuzz.sh                 # each target for 1,000,000 executions
#   scripts/fuzz.sh --runs N        # each target for N executions
#   scripts/fuzz.sh SECONDS         # each target for SECONDS
#   scripts/fuzz.sh --ci            # each target for 25 s (the bounded run for CI)
#
# Prints executions and crashes per target; exits 1 when a target crashed (the input is kept in
# fuzz/artifacts/<target>/; replay it with `RUSTC_BOOTSTRAP=1 cargo fuzz run -s none <target> <file>`).
# There is no nightly toolchain: RUSTC_BOOTSTRAP=1 lets stable rustc take cargo-fuzz's -Z flags, and
# `-s none` skips AddressSanitizer (safe Rust: unsafe_code is forbidden in our crates). Needs
# `cargo install cargo-fuzz` and a C++ compiler (libfuzzer-sys builds libFuzzer). A new target is one file in
# fuzz/fuzz_targets/ plus its [[bin]] in fuzz/Cargo.toml; seeds go in fuzz/seeds/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=1000000
seconds=0
case "${1:-}" in
  "") ;;
  --runs) runs="${2:?--runs needs a number}" ;;
  --ci) runs=0; seconds=25 ;;
  *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS | --runs N | --ci]" >&2; exit 2 ;;
  *) runs=0; seconds="$1" ;;
esac

export RUSTC_BOOTSTRAP=1
target_dir="${CARGO_TARGET_DIR:-$HOME/.cache/rvbbit}/fuzz"
fuzz=(--fuzz-dir fuzz)
build=(-s none --target-dir "$target_dir" --codegen-units 16)

cargo fuzz build "${fuzz[@]}" "${build[@]}"

seed() { # seed a target's working corpus from the repository (the working corpus is not committed)
  local t="$1" dir="fuzz/corpus/$1"
  mkdir -p "$dir"
  case "$t" in
    yaml|validate) find examples crates/cascade/tests -name '*.yaml' -o -name '*.json' 2>/dev/null \
                     | head -200 | while read -r f; do cp "$f" "$dir/$(echo "$f" | tr / _)"; done ;;
  esac
  if [ -d "fuzz/seeds/$t" ]; then cp fuzz/seeds/"$t"/* "$dir"/ 2>/dev/null || true; fi
}

status=0
summary=""
for t in $(cargo fuzz list "${fuzz[@]}"); do
  seed "$t"
  log="$target_dir/$t.log"
  mkdir -p "fuzz/artifacts/$t"
  before=$(find "fuzz/artifacts/$t" -type f | wc -l)
  args=(-print_final_stats=1 -max_len=8192 -timeout=10 -rss_limit_mb=2048)
  [ "$runs" -gt 0 ] && args+=(-runs="$runs")
  [ "$seconds" -gt 0 ] && args+=(-max_total_time="$seconds")
  start=$(date +%s)
  if ! cargo fuzz run "${fuzz[@]}" "${build[@]}" "$t" "fuzz/corpus/$t" -- "${args[@]}" >"$log" 2>&1; then
    status=1
  fi
  took=$(( $(date +%s) - start ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  crashes=$(( $(find "fuzz/artifacts/$t" -type f | wc -l) - before ))
  summary+=$(printf '%-10s %12s executions %3s crashes %6ss' "$t" "${execs:-?}" "$crashes" "$took")$'\n'
  [ "$crashes" -gt 0 ] && status=1
done
printf '%s' "$summary"
exit "$status"
