#!/usr/bin/env bash
# Whole-process timing of `rvbbit run` on a deterministic 3-cell cascade (bash_data → set_state →
# linux_shell), on the embedded SQLite store in a temp dir. Goal (issue 5): < 30 ms per run.
#
#   crates/engine/bench/run-cli.sh [RUNS]        # builds the release binary first
#
# Prints min / median / mean / p95 wall time per run, and, for scale, `rvbbit --version`
# (process start only) and a bare `bash -c true` (what one shell cell costs at least).
set -euo pipefail
runs="${1:-30}"
root="$(cd "$(dirname "$0")/../../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release -q -p rvbbit --manifest-path "$root/Cargo.toml"
bin="$target/release/rvbbit"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
"$bin" run "$root/examples/run_hello_shell.yaml" --input '{"name":"bench"}' >/dev/null # warm-up, creates the store

python3 - "$bin" "$root/examples/run_hello_shell.yaml" "$runs" <<'PY'
import statistics, subprocess, sys, time
bin, cascade, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
def measure(cmd):
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        ts.append((time.perf_counter() - t) * 1000)
    ts.sort()
    return ts
def show(name, ts):
    p95 = ts[min(len(ts) - 1, int(len(ts) * 0.95))]
    print(f"{name:<34} min {ts[0]:6.1f} ms  median {statistics.median(ts):6.1f} ms  mean {statistics.mean(ts):6.1f} ms  p95 {p95:6.1f} ms")
    return statistics.median(ts)
run = show("rvbbit run (3 cells, store)", measure([bin, "run", cascade, "--input", '{"name":"bench"}']))
ver = show("rvbbit --version (start only)", measure([bin, "--version"]))
sh = show("bash -c true (one subprocess)", measure(["bash", "-c", "true"]))
print(f"runs={runs}  run/start ratio {run / ver:.1f}x  goal < 30 ms: {'met' if run < 30 else 'NOT met'}")
PY
