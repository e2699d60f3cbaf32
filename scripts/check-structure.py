#!/usr/bin/env python3
"""The shape of the two crates issue 16 redesigns (`rvbbit-sql` and `rvbbit-engine`): module cycles, the
longest functions and the largest files, checked against a ratchet.

    scripts/check-structure.py              # report, and fail when a crate is worse than the baseline
    scripts/check-structure.py --bless      # write the current numbers as the new baseline

A module's edges are the `crate::x` and `super::x` paths its code names (comments and doc links do not
count), tests excluded; a cycle is
a strongly connected group of more than one module. The baseline (scripts/structure-baseline.json) holds
the cycles, the functions over MAX_FN_LINES and the files over MAX_FILE_LINES that exist today: CI fails
on a new cycle (or a larger one), on a function or file newly over its limit, and on one that grew past
its recorded length. Shrinking is always allowed; `--bless` records it so it cannot grow back.

In every crate (sources, tests and benches), a `let _ =` that drops a result must say why: a comment on
its line or on the lines just above it (one comment may cover a run of them). This rule has no baseline.
"""
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRATES = {"rvbbit-sql": ROOT / "crates/sql/src", "rvbbit-engine": ROOT / "crates/engine/src"}
BASELINE = ROOT / "scripts/structure-baseline.json"
MAX_FN_LINES = 120
MAX_FILE_LINES = 600
GENERATED = ("snapshots",)  # folders skipped; files starting `// @generated` skip the size rules

FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")
PATH = re.compile(r"\b(crate|super)::(\w+)(?:::(\w+))?")


def strip_tests(text):
    """The text before a file's `#[cfg(test)] mod tests` (unit tests are not the structure)."""
    m = re.search(r"^#\[cfg\(test\)\]\s*\nmod tests", text, re.M)
    return text[: m.start()] if m else text


def module_of(src, path):
    """`a` for src/a.rs and src/a/mod.rs, `a::b` for src/a/b.rs (two levels are enough here)."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return "::".join(parts[:2]) if parts else "lib"


def resolve(src, module, root, first, second):
    """The module a `crate::first::second` or `super::first::second` path names, or None."""
    if root == "super":
        parent = module.split("::")[:-1]
        if not parent:
            return None
        base = parent[0]
        if (src / base / f"{first}.rs").exists() or (src / base / first).is_dir():
            return f"{base}::{first}"
        return None
    if (src / first).is_dir():
        if second and ((src / first / f"{second}.rs").exists() or (src / first / second).is_dir()):
            return f"{first}::{second}"
        return first
    if (src / f"{first}.rs").exists():
        return first
    return None


def functions(path, text):
    """(name, first line, length) of each function, by brace matching from its `fn` line."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m:
            continue
        depth, started = 0, False
        for j in range(i, len(lines)):
            code = re.sub(r'"(\\.|[^"\\])*"|//.*', "", lines[j])
            if not started and ";" in code and "{" not in code:
                break  # a declaration without a body
            depth += code.count("{") - code.count("}")
            started = started or "{" in code
            if started and depth <= 0:
                out.append((m.group(6), i + 1, j - i + 1))
                break
    return out


def cycles(edges):
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(out)


def measure():
    result = {}
    for crate, src in CRATES.items():
        edges, long_fns, big_files = {}, {}, {}
        for path in sorted(src.rglob("*.rs")):
            if any(g in path.parts for g in GENERATED):
                continue
            text = path.read_text()
            body = strip_tests(text)
            rel = str(path.relative_to(ROOT))
            n = len(body.splitlines())
            # A generated file (first line `// @generated`) is measured by its generator, not by length;
            # its module edges still count.
            generated = text.startswith("// @generated")
            if n > MAX_FILE_LINES and not generated:
                big_files[rel] = n
            module = module_of(src, path)
            edges.setdefault(module, set())
            # Doc links and comments name modules without depending on them.
            code = "\n".join(re.sub(r"//.*", "", line) for line in body.splitlines())
            for root, first, second in PATH.findall(code):
                target = resolve(src, module, root, first, second)
                # A parent module naming its own children is not an edge of the cycle kind.
                if target and target != module and not target.startswith(module + "::"):
                    edges[module].add(target)
            for name, line, length in functions(path, body):
                if length > MAX_FN_LINES:
                    long_fns[f"{rel}::{name}"] = length
        result[crate] = {
            "cycles": cycles(edges),
            "long_functions": dict(sorted(long_fns.items())),
            "big_files": dict(sorted(big_files.items())),
        }
    return result


def unexplained_drops():
    """Every `let _ =` in the workspace's crates without a comment on its line or just above it."""
    found = []
    for path in sorted((ROOT / "crates").rglob("*.rs")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if not re.search(r"\blet _ =", line) or "//" in line:
                continue
            # A comment above a run of `let _ =` lines covers the run.
            j = i - 1
            while j >= 0 and (not lines[j].strip() or re.search(r"\blet _ =", lines[j])):
                j -= 1
            if j < 0 or not lines[j].strip().startswith("//"):
                found.append(f"{path.relative_to(ROOT)}:{i + 1}: {line.strip()}")
    return found


def report(now):
    for crate, m in now.items():
        print(f"{crate}: {len(m['cycles'])} module cycle(s), {len(m['long_functions'])} function(s) over "
              f"{MAX_FN_LINES} lines, {len(m['big_files'])} file(s) over {MAX_FILE_LINES} lines")
        for c in m["cycles"]:
            print(f"  cycle: {' <-> '.join(c)}")
        for name, n in sorted(m["long_functions"].items(), key=lambda kv: -kv[1])[:10]:
            print(f"  {n:5} lines  {name}")
        for name, n in sorted(m["big_files"].items(), key=lambda kv: -kv[1]):
            print(f"  {n:5} lines  {name} (file)")


def worse(now, base):
    problems = []
    for crate, m in now.items():
        b = base.get(crate, {"cycles": [], "long_functions": {}, "big_files": {}})
        known = [set(c) for c in b["cycles"]]
        for c in m["cycles"]:
            if not any(set(c) <= k for k in known):
                problems.append(f"{crate}: a new module cycle: {' <-> '.join(c)}")
        for kind, limit in (("long_functions", MAX_FN_LINES), ("big_files", MAX_FILE_LINES)):
            for name, n in m[kind].items():
                was = b[kind].get(name)
                if was is None:
                    problems.append(f"{crate}: {name} is {n} lines, over {limit}")
                elif n > was:
                    problems.append(f"{crate}: {name} grew from {was} to {n} lines (over {limit})")
    return problems


def main():
    now = measure()
    report(now)
    if "--bless" in sys.argv[1:]:
        BASELINE.write_text(json.dumps(now, indent=2, sort_keys=True) + "\n")
        print(f"wrote {BASELINE.relative_to(ROOT)}")
        return 0
    base = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    problems = worse(now, base)
    problems += [f"a dropped result without a comment saying why: {d}" for d in unexplained_drops()]
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if problems:
        print("split the function or module (docs/ARCHITECTURE.md); the baseline only shrinks "
              "(scripts/check-structure.py --bless after a reduction)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
