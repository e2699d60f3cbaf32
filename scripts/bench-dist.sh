#!/usr/bin/env bash
# The container image's binary (`--profile dist`: LTO, one codegen unit, stripped; Cargo.toml):
# its size, start time, peak memory on a deterministic run, and the crates that cost the most bytes.
# Numbers and what they mean: docs/deploy.md, "The dist binary".
#
#   scripts/bench-dist.sh            # builds first (40-60 min on 2 busy cores), then measures
#   RUNS=50 scripts/bench-dist.sh
#
# The build keeps the symbol table (CARGO_PROFILE_DIST_STRIP=false, the profile's only difference)
# so `cargo bloat` can attribute bytes to crates; the size, start time and memory are measured on a
# copy stripped with `strip`, which is what `strip = true` produces. Installs cargo-bloat (crates.io)
# and hyperfine (Debian) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rvbbit-target-dist}"
export CARGO_INCREMENTAL=0
export CARGO_PROFILE_DIST_STRIP=false
runs="${RUNS:-20}"
goal_mb=60

say() { printf '\n== %s\n' "$1"; }

say "build: cargo build --profile dist -p rvbbit --locked (target dir $CARGO_TARGET_DIR)"
started=$SECONDS
nice -n 19 cargo build --profile dist -p rvbbit --locked
build_secs=$((SECONDS - started))
unstripped="$CARGO_TARGET_DIR/dist/rvbbit"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
bin="$scratch/rvbbit"
strip -o "$bin" "$unstripped"
size=$(stat -c %s "$bin")
size_mb=$(python3 -c "print(f'{$size / 1e6:.1f}')")
unstripped_mb=$(python3 -c "print(f'{$(stat -c %s "$unstripped") / 1e6:.1f}')")
verdict=$(python3 -c "print('met' if $size / 1e6 < $goal_mb else 'NOT met')")

say "size"
echo "stripped: $size bytes ($size_mb MB; goal < $goal_mb MB: $verdict); with symbols: $unstripped_mb MB"

# A scratch project: the examples and a fresh SQLite store, as a first-time user would have.
work="$scratch/work"
mkdir -p "$work"
cp -r examples "$work/"
cd "$work"
run_cmd=("$bin" run examples/run_hello_shell.yaml --input '{"name": "Ada"}' --quiet)
"${run_cmd[@]}" >/dev/null  # creates the store, so every timed run finds it ready

say "start time ($runs runs each)"
if ! command -v hyperfine >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get install -y -qq hyperfine >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }
fi
if command -v hyperfine >/dev/null; then
  hyperfine --warmup 3 --runs "$runs" --shell=none --export-json "$scratch/start.json" \
    "$bin --version" "${run_cmd[*]@Q}" >/dev/null
  python3 - "$scratch/start.json" <<'EOF'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    cmd = "rvbbit --version" if r["command"].endswith("--version") else "rvbbit run examples/run_hello_shell.yaml"
    print(f"{cmd}: mean {r['mean'] * 1000:.1f} ms ± {r['stddev'] * 1000:.1f} ms "
          f"(min {r['min'] * 1000:.1f}, max {r['max'] * 1000:.1f})")
EOF
else
  for cmd in version run; do
    t0=$(date +%s%N)
    for _ in $(seq "$runs"); do
      if [ "$cmd" = version ]; then "$bin" --version >/dev/null; else "${run_cmd[@]}" >/dev/null; fi
    done
    echo "rvbbit $cmd: mean $(( ($(date +%s%N) - t0) / runs / 1000000 )) ms (shell loop; hyperfine not installed)"
  done
fi

say "peak memory (/usr/bin/time -v)"
/usr/bin/time -v "$bin" --version 2>"$scratch/time-version.txt" >/dev/null
/usr/bin/time -v "${run_cmd[@]}" 2>"$scratch/time-run.txt" >/dev/null
echo "rvbbit --version: $(awk -F': ' '/Maximum resident/ {print $2}' "$scratch/time-version.txt") KiB max RSS"
echo "rvbbit run examples/run_hello_shell.yaml: $(awk -F': ' '/Maximum resident/ {print $2}' "$scratch/time-run.txt") KiB max RSS"

say "bytes by crate (cargo bloat --crates, .text section; std is Rust's standard library)"
cd "$repo"
if ! command -v cargo-bloat >/dev/null; then
  cargo install cargo-bloat --locked --version 0.12.1
fi
# Same profile, target dir and environment as above: cargo bloat finds the build up to date.
nice -n 19 cargo bloat --profile dist -p rvbbit --bin rvbbit --crates -n 25

say "summary"
echo "dist build: ${build_secs}s; stripped size $size_mb MB (goal < $goal_mb MB: $verdict)"
