#!/usr/bin/env bash
# Offline checks of the deployment files: Dockerfile, .dockerignore, deploy/compose.yaml and
# deploy/k8s/ (docs/deploy.md, "How CI checks them"). No Docker engine or cluster is needed.
#
#   scripts/check-deploy.sh                  # validators installed on first use
#   RVBBIT_BIN=path/to/rvbbit scripts/check-deploy.sh
#
# Installs its validators from PyPI, pinned, into a venv under ~/.cache (once), then runs
# deploy/check/validate.py: first --self-test (every broken fixture in deploy/check/broken/ must be
# refused with the errors it names), then the real files. Each rvbbit command line is checked against
# docs/cli.md and, when a binary is at hand (RVBBIT_BIN, else $CARGO_TARGET_DIR/debug/rvbbit), by
# letting that binary parse it (`rvbbit ARGS --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${RVBBIT_DEPLOY_VENV:-$HOME/.cache/rvbbit-deploy-venv}"
pins=(kubernetes-validate==1.37.0 jsonschema==4.26.0 pyyaml==6.0.3)
stamp="$venv/.rvbbit-pins"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${pins[*]}" ]; then
  echo "installing the deployment validators into $venv: ${pins[*]}" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
  echo "${pins[*]}" > "$stamp"
fi

bin="${RVBBIT_BIN:-${CARGO_TARGET_DIR:-target}/debug/rvbbit}"
args=()
if [ -x "$bin" ]; then
  args=(--rvbbit "$bin")
else
  echo "no rvbbit binary at $bin: command lines are checked against docs/cli.md only" >&2
fi

"$venv/bin/python" deploy/check/validate.py --self-test "${args[@]}"
"$venv/bin/python" deploy/check/validate.py "${args[@]}"
