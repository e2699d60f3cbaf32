"""A current ClickHouse release for the events-sink tests: the engine of chdb-core (ClickHouse 26.x,
in process, from PyPI) behind ClickHouse's HTTP interface, as much of it as the sink and the testkit use.

Debian ships ClickHouse 18.16, which the test suite runs as a real `clickhouse-server`; no newer server
binary can be installed on these machines (no Docker engine, no ClickHouse apt repository). chdb-core is
the same ClickHouse code built as a library, so the sink's SQL (its DDL, `INSERT … FORMAT JSONEachRow`,
the `FINAL` reads and the cost aggregates) runs on a current release's parser, analyzer and storage.

What this front does, following https://clickhouse.com/docs/interfaces/http:
- `GET /ping` answers `Ok.`;
- `GET|POST /?query=…&database=…` runs the `query` parameter followed by the request body (the
  interface's rule: the start of the statement in the URL, the rest, such as INSERT rows, in the body);
  with no `query` parameter the body is the statement;
- the default output format is TabSeparated; errors answer HTTP 500 with ClickHouse's exception text.
What it does not do: users and passwords (any are accepted: the credential tests run on 18.16 only),
sessions, compression, settings in the URL. Statements run one at a time.

Usage: python clickhouse-current.py DATA_DIR   (prints `port N` once listening on 127.0.0.1)
"""

import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from chdb import session

LOCK = threading.Lock()
MAX_BODY = 256 * 1024 * 1024


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    db = None

    def log_message(self, *args):
        pass

    def answer(self, status, text):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def run(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/ping":
            return self.answer(200, "Ok.\n")
        params = urllib.parse.parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self.answer(413, f"Code: 1001. the body is over {MAX_BODY} bytes\n")
        body = self.rfile.read(length).decode() if length else ""
        query = params.get("query", [""])[0]
        sql = f"{query}\n{body}" if query and body else (query or body)
        database = params.get("database", ["default"])[0]
        with LOCK:
            try:
                self.db.query(f"USE `{database}`")
                out = self.db.query(sql, "TabSeparated")
            except Exception as e:  # chdb raises its own error type with ClickHouse's message
                return self.answer(500, f"{e}\n")
        return self.answer(200, out.bytes().decode() if hasattr(out, "bytes") else str(out))

    do_GET = run
    do_POST = run


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: clickhouse-current.py DATA_DIR")
    Handler.db = session.Session(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
