# Sourced by the bench scripts: a throwaway PostgreSQL server for one script run (initdb + pg_ctl on a free
# loopback port, fsync off, data in "$work/pg"), stopped and removed at exit. Needs $work (a temporary
# directory the script owns). Sets $pgbin, $port and as_pg (runs a command as `postgres` when root).
pgbin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
if [ "$(id -u)" -eq 0 ]; then as_pg=(runuser -u postgres --); chown postgres "$work"; else as_pg=(); fi
cleanup() {
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg" stop -m immediate >/dev/null 2>&1 || true
  if declare -F bench_cleanup >/dev/null; then bench_cleanup; fi
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port="$(free_port)"
"${as_pg[@]}" "$pgbin/initdb" -D "$work/pg" -A trust -U postgres --no-sync >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -w -D "$work/pg" -l "$work/pg.log" \
  -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off" start >/dev/null
