#!/usr/bin/env bash
# psql (RVBBIT_PSQL, Debian's postgresql-client) against `rvbbit serve sql` on 127.0.0.1:$PORT (the server
# has `[sql.tables] animals = "animals.csv"`: id, name, weight, three rows). Run by
# crates/cli/tests/it/clients.rs; prints the same lines as clientcheck.py (one per check, then the summary).
set -uo pipefail
psql_bin="${RVBBIT_PSQL:-psql}"
passed=0 failed=0 gaps=0
echo "version $("$psql_bin" --version | awk '{print $3}')"

run() { "$psql_bin" -X -q -h 127.0.0.1 -p "$PORT" -U checks -d lab "$@" 2>&1; }

# check NAME GAP COMMAND...: the command's success is the check's
check() {
  local name="$1" gap="$2"
  shift 2
  local out
  if out="$("$@" 2>&1)"; then
    if [ -z "$gap" ]; then passed=$((passed + 1)); echo "ok   $name"
    else failed=$((failed + 1)); echo "FAIL $name: passes now; remove its gap mark ($gap)"; fi
  else
    local why
    why="$(printf '%s' "$out" | tr '\n' ' ' | cut -c1-400)"
    if [ -z "$gap" ]; then failed=$((failed + 1)); echo "FAIL $name: $why"
    else gaps=$((gaps + 1)); echo "gap  $name: $gap ($why)"; fi
  fi
}

# has TEXT COMMAND...: the command's output contains TEXT
has() {
  local text="$1" out
  shift
  out="$("$@")"
  # A here-string, not a pipe: `grep -q` leaves at the first match, and with pipefail a writer cut
  # off by that (SIGPIPE) would fail the check.
  if grep -qF -- "$text" <<< "$out"; then return 0; fi
  printf 'expected %s in: %s' "$text" "$out"
  return 1
}

check "select" "" has " dog" run -c "SELECT name FROM animals WHERE id = 2"
check "\\dt lists the [sql.tables] file as a table" "" has "animals | table" run -c '\dt'
check "\\dv lists the magic tables as views" "" has "sessions         | view" run -c '\dv'
check "\\d animals shows its columns" "" has "weight | double precision" run -c '\d animals'
check "\\l lists the database" "" has "lab" run -c '\l'
check "an error shows its SQLSTATE" "" has "ERROR:  42P01" run -v VERBOSITY=verbose -c "SELECT * FROM missing_table"
check "\\copy … to stdout" "" has "1,cat" run -c "\\copy (SELECT id, name FROM animals ORDER BY id) to stdout with csv"
check "\\copy … from stdin into a session table" "" has "2 | b" run -c "CREATE TABLE t (n INT, s TEXT)" -c "\\copy t from stdin with csv" -c "SELECT * FROM t ORDER BY n" <<< $'1,a\n2,b\n\\.'
check "\\dt+ lists tables with their size column" "" has "animals | table" run -c '\dt+'
check "\\dv+ lists the magic tables" "" has "sessions " run -c '\dv+'
check "\\l+ lists the database" "" has "lab " run -c '\l+'
check "pg_size_pretty and the size functions" "" has "977 kB|" run -A -t -c "SELECT pg_size_pretty(1000000::bigint) || '|' || coalesce(pg_table_size('animals'::regclass)::text, '')"

summary="psql: $passed passed, $failed failed"
[ "$gaps" -gt 0 ] && summary="$summary, $gaps known gaps"
echo "$summary"
[ "$failed" -eq 0 ]
