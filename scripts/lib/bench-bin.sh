# Sourced by the bench scripts: sets $bin to the rvbbit binary to measure: $RVBBIT_BIN, else the release
# build (built if missing; RVBBIT_BENCH_PROFILE=debug for the debug one). Needs $root. Sets $profile.
target="${CARGO_TARGET_DIR:-$root/target}"
profile="${RVBBIT_BENCH_PROFILE:-release}"
if [ -z "${RVBBIT_BIN:-}" ]; then
  if [ "$profile" = release ]; then flag=--release; else flag=; fi
  cargo build $flag --locked -q -p rvbbit --manifest-path "$root/Cargo.toml"
fi
bin="$(realpath "${RVBBIT_BIN:-$target/$profile/rvbbit}")"
