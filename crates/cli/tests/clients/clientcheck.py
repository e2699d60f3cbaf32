"""The harness of the client conformance suite (crates/cli/tests/it/clients.rs).

A check script registers its checks with `Suite.check` and ends with `suite.main()`, which runs them in
order against the server at 127.0.0.1:$PORT and prints one line per check:

    ok   name
    FAIL name: what went wrong
    gap  name: the known gap (what went wrong)

first `version V` (the client's version, for the client matrix of docs/sql-server.md), then the summary
`client: N passed, M failed` (`, K known gaps` when some are marked). A check marked
`gap="…"` is one the server does not pass yet: its failure is expected and counted apart, and its
passing is a failure (remove the mark). The exit code is 1 when any check failed.

A check is a function of no arguments, sync or async (async ones run on one event loop the harness
owns). It fails by raising; `expect` raises with both values.
"""

import asyncio
import os
import sys

PORT = int(os.environ.get("PORT", "5433"))
HOST = "127.0.0.1"


def expect(actual, expected, what=""):
    """Raise AssertionError unless actual == expected."""
    if actual != expected:
        label = f"{what}: " if what else ""
        raise AssertionError(f"{label}expected {expected!r}, got {actual!r}")


def expect_error(sqlstate, error):
    """Raise unless `error` (an exception, or None when nothing was raised) carries `sqlstate`."""
    if error is None:
        raise AssertionError(f"expected an error with SQLSTATE {sqlstate}, the statement succeeded")
    got = getattr(error, "sqlstate", None)
    if got != sqlstate:
        raise AssertionError(f"expected SQLSTATE {sqlstate}, got {got!r}: {error}")


def one_line(text):
    return " ".join(str(text).split())[:400]


class Suite:
    """The checks of one client, run in the order they were registered."""

    def __init__(self, client, version):
        self.client = client
        self.version = version
        self.checks = []

    def check(self, name, gap=None):
        """Register the decorated function as the check `name`; `gap` marks a known gap."""

        def register(fn):
            self.checks.append((name, fn, gap))
            return fn

        return register

    def main(self):
        print(f"version {self.version}", flush=True)
        loop = asyncio.new_event_loop()
        passed = failed = gaps = 0
        for name, fn, gap in self.checks:
            error = None
            try:
                result = fn()
                if asyncio.iscoroutine(result):
                    loop.run_until_complete(asyncio.wait_for(result, 60))
            except Exception as e:  # every failure of a check is reported, none stops the suite
                error = f"{type(e).__name__}: {one_line(e)}"
            if gap is None and error is None:
                passed += 1
                print(f"ok   {name}", flush=True)
            elif gap is None:
                failed += 1
                print(f"FAIL {name}: {error}", flush=True)
            elif error is None:
                failed += 1
                print(f"FAIL {name}: passes now; remove its gap mark ({gap})", flush=True)
            else:
                gaps += 1
                print(f"gap  {name}: {gap} ({error})", flush=True)
        loop.close()
        summary = f"{self.client}: {passed} passed, {failed} failed"
        if gaps:
            summary += f", {gaps} known gaps"
        print(summary, flush=True)
        sys.exit(1 if failed else 0)
