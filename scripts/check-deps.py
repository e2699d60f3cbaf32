#!/usr/bin/env python3
"""Fail when a crate gains a dependency edge that docs/ARCHITECTURE.md forbids.

Reads `cargo metadata`; checks rvbbit-to-rvbbit edges against the picture (arrows point down only) and that
heavy dependencies live only in the crate that owns them.
"""
import json
import subprocess
import sys

# crate -> rvbbit crates it may depend on (normal and build deps; dev-deps are free except testkit rules).
ALLOWED = {
    "rvbbit-core": set(),
    "rvbbit-cascade": {"rvbbit-core"},
    "rvbbit-llm": {"rvbbit-core"},
    "rvbbit-store": {"rvbbit-core"},
    "rvbbit-engine": {"rvbbit-core", "rvbbit-cascade", "rvbbit-llm", "rvbbit-store"},
    "rvbbit-sql": {"rvbbit-core", "rvbbit-cascade", "rvbbit-llm", "rvbbit-store", "rvbbit-engine"},
    # Conversational agents sit above the engine and below the server (no axum, no llm client of its own).
    "rvbbit-agents": {"rvbbit-core", "rvbbit-cascade", "rvbbit-store", "rvbbit-engine"},
    # Channels (Slack, Mattermost, webhooks, chat control) sit above the agents and below the server (no axum).
    "rvbbit-channels": {"rvbbit-core", "rvbbit-cascade", "rvbbit-store", "rvbbit-engine", "rvbbit-agents"},
    "rvbbit-server": {"rvbbit-core", "rvbbit-cascade", "rvbbit-llm", "rvbbit-store", "rvbbit-engine", "rvbbit-sql", "rvbbit-agents", "rvbbit-channels"},
    "rvbbit": None,  # the binary may depend on anything
    "rvbbit-testkit": {"rvbbit-core", "rvbbit-llm"},
}
# external crate -> the only rvbbit crates allowed to depend on it directly (normal deps).
HEAVY = {
    "datafusion": {"rvbbit-sql"},
    "pgwire": {"rvbbit-sql"},
    "axum": {"rvbbit-server", "rvbbit-testkit"},
    "tower-http": {"rvbbit-server"},
    "tokio": {"rvbbit-llm", "rvbbit-store", "rvbbit-engine", "rvbbit-agents", "rvbbit-channels", "rvbbit-sql", "rvbbit-server", "rvbbit", "rvbbit-testkit"},
    "rusqlite": {"rvbbit-store"},
    "sqlx": {"rvbbit-store"},
    "tokio-postgres": {"rvbbit-store"},
    "deadpool-postgres": {"rvbbit-store"},
    # External tables (rvbbit-sql) and the artifact store (rvbbit-store, feature `artifacts`).
    "object_store": {"rvbbit-sql", "rvbbit-store"},
}

def main() -> int:
    meta = json.loads(subprocess.check_output(["cargo", "metadata", "--format-version", "1", "--no-deps", "--locked"]))
    problems = []
    for pkg in meta["packages"]:
        name = pkg["name"]
        if name not in ALLOWED:
            problems.append(f"{name}: unknown workspace crate; add it to scripts/check-deps.py and docs/ARCHITECTURE.md")
            continue
        for dep in pkg["dependencies"]:
            dep_name, kind = dep["name"], dep.get("kind")
            if dep_name == "rvbbit-testkit" and kind != "dev":
                problems.append(f"{name} -> rvbbit-testkit must be a dev-dependency")
            if kind == "dev":
                continue
            allowed = ALLOWED[name]
            if dep_name.startswith("rvbbit") and allowed is not None and dep_name not in allowed:
                problems.append(f"{name} -> {dep_name} is not allowed by the architecture")
            if dep_name in HEAVY and name not in HEAVY[dep_name] and name != "rvbbit":
                problems.append(f"{name} -> {dep_name}: this dependency belongs only in {sorted(HEAVY[dep_name])}")
    for p in problems:
        print(f"check-deps: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"check-deps: {len(meta['packages'])} crates, all edges allowed")
    return 0

if __name__ == "__main__":
    sys.exit(main())
