#!/usr/bin/env bash
# Installs, idempotently, the programs the test suite talks to, and prints the environment the tests read
# (source it: `. scripts/test-deps.sh`). Debian packages come from apt, Playwright from the npm registry.
#
#   chromium                the Studio's real-browser tests   -> RVBBIT_CHROMIUM
#   node + playwright-core  e2e/studio.mjs (npm ci in e2e/)    -> RVBBIT_E2E_DIR
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v node >/dev/null || need_apt+=(nodejs npm)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "test-deps: installing ${need_apt[*]} (Debian packages)" >&2
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if [ ! -d "$repo/e2e/node_modules/playwright-core" ] \
   || [ "$repo/e2e/package-lock.json" -nt "$repo/e2e/node_modules/.package-lock.json" ]; then
  echo "test-deps: npm ci in e2e/ (playwright-core)" >&2
  npm ci --prefix "$repo/e2e" --no-audit --no-fund --loglevel=error >&2
fi

export RVBBIT_CHROMIUM="${RVBBIT_CHROMIUM:-$(command -v chromium)}"
export RVBBIT_E2E_DIR="$repo/e2e"
echo "test-deps: RVBBIT_CHROMIUM=$RVBBIT_CHROMIUM ($("$RVBBIT_CHROMIUM" --version 2>/dev/null | head -1))" >&2
echo "test-deps: node $(node --version), playwright-core $(node -p "require('$repo/e2e/node_modules/playwright-core/package.json').version")" >&2
