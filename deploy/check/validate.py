#!/usr/bin/env python3
"""Offline checks of the deployment files (run by scripts/check-deploy.sh, which installs the
validators; docs/deploy.md explains each check).

    validate.py [--rvbbit BIN]          # check Dockerfile, deploy/compose.yaml, deploy/k8s/
    validate.py --self-test             # every fixture in deploy/check/broken/ must be refused

No Docker engine or cluster is needed: Kubernetes core kinds are validated with kubernetes-validate
(strict: unknown fields are errors) against two Kubernetes versions, the KEDA ScaledObject against
the CRD's OpenAPI schema vendored in deploy/schemas/ (made strict the same way), the compose file
against the Compose specification's JSON schema (vendored too) after interpolating its variables as
`docker compose config` would. Every rvbbit command line in those files (and the one-off commands
of docs/deploy.md) is checked against the real CLI: `rvbbit ARGS --help` with the given binary (clap
parses every flag before it shows help, so an unknown flag or subcommand fails), and always against
docs/cli.md, which a test keeps equal to the CLI's --help.
"""
import argparse
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCHEMAS = DEPLOY / "schemas"
K8S_VERSIONS = ("1.30.0", "1.37.0")
IMAGE_UID = 10001
# The Secret every pod reads; created by hand (docs/deploy.md), never committed.
EXTERNAL_SECRET = "rvbbit"
SECRET_KEYS = {"store-url", "queue-url", "events-url", "openrouter-api-key"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|ACCESS_KEY", re.I)
URL_PASSWORD = re.compile(r"://[^/:@\s]+:([^@\s]+)@")
# KEDA's nats-jetstream scaler (keda.sh/docs/2.19/scalers/nats-jetstream): its metadata keys. KEDA
# ignores unknown keys, so a typo would silently fall back to a default: refuse it here.
JETSTREAM_KEYS = {"natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold",
                  "activationLagThreshold", "useHttps"}
JETSTREAM_REQUIRED = {"natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold"}


class Report:
    """Errors by file; each check adds to it and the caller decides what failing means."""

    def __init__(self):
        self.errors = []
        self.checks = 0

    def check(self, ok, where, message):
        self.checks += 1
        if not ok:
            self.errors.append(f"{where}: {message}")
        return ok

    def fail(self, where, message):
        return self.check(False, where, message)


def rel(path):
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# ---- rvbbit's own facts (read from the source, so the checks follow it) ----

def rvbbit_defaults():
    text = (ROOT / "crates/core/src/config.rs").read_text(encoding="utf-8")
    stream = re.search(r'stream: "([A-Z0-9_]+)"\.into\(\)', text)
    grace = re.search(r"drain_grace_seconds: (\d+),", text)
    return (stream.group(1) if stream else "RVBBIT_JOBS", int(grace.group(1)) if grace else 30)


def cli_spec():
    """{("serve", "sql"): {"flags": {...}, "shorts": {...}, "takes": {...}, "positionals": n}}
    from docs/cli.md (each command's --help)."""
    text = (ROOT / "docs/cli.md").read_text(encoding="utf-8")
    spec = {}
    for m in re.finditer(r"^## `rvbbit([^`]*)`\n\n```text\n(.*?)\n```", text, re.S | re.M):
        path = tuple(m.group(1).split())
        body = m.group(2)
        flags, shorts, takes = set(), set(), set()
        for line in body.splitlines():
            opt = re.match(r"^\s{2,}(?:-(\w), )?--([\w-]+)(\.\.\.)?(?: <[^>]+>)?", line)
            if opt:
                flags.add(opt.group(2))
                if opt.group(1):
                    shorts.add(opt.group(1))
                if "<" in line.split("--" + opt.group(2), 1)[1][:3]:
                    takes.add(opt.group(2))
                    if opt.group(1):
                        takes.add(opt.group(1))
        usage = re.search(r"^Usage: .*$", body, re.M)
        positionals = 0
        for name, many in re.findall(r"[<\[]([A-Z_]+)[>\]](\.\.\.)?", usage.group(0) if usage else ""):
            if name not in ("OPTIONS", "COMMAND"):
                positionals += 999 if many else 1
        spec[path] = {"flags": flags, "shorts": shorts, "takes": takes, "positionals": positionals}
    return spec


def check_argv(report, where, argv, spec, binary):
    """One rvbbit command line (without the program name) against docs/cli.md and the binary."""
    path = ()
    i = 0
    while i < len(argv) and (path + (argv[i],)) in spec:
        path += (argv[i],)
        i += 1
    # Only global flags (`--version`) may stand without a subcommand.
    if not report.check(path != () or (argv[:1] and argv[0].startswith("-")), where,
                        f"`{' '.join(argv)}`: not an rvbbit subcommand"):
        return
    cmd = spec[path]
    positionals = 0
    while i < len(argv):
        tok = argv[i]
        if tok.startswith("--"):
            name = tok[2:].split("=", 1)[0]
            report.check(name in cmd["flags"], where,
                         f"`rvbbit {' '.join(path)}` has no flag --{name} (docs/cli.md)")
            if name in cmd["takes"] and "=" not in tok:
                i += 1
        elif tok.startswith("-") and len(tok) == 2:
            report.check(tok[1] in cmd["shorts"], where,
                         f"`rvbbit {' '.join(path)}` has no flag {tok} (docs/cli.md)")
            if tok[1] in cmd["takes"]:
                i += 1
        else:
            positionals += 1
        i += 1
    report.check(positionals <= cmd["positionals"], where,
                 f"`rvbbit {' '.join(argv)}`: {positionals} argument(s), the command takes "
                 f"{cmd['positionals']}")
    if binary:
        env = {"PATH": "/usr/bin:/bin", "NO_COLOR": "1"}
        done = subprocess.run([binary, *argv, "--help"], capture_output=True, text=True, env=env,
                              cwd="/", timeout=60, check=False)
        report.check(done.returncode == 0, where,
                     f"`rvbbit {' '.join(argv)} --help` exited {done.returncode}: "
                     f"{done.stderr.strip()[:300]}")


def doc_commands(path):
    """rvbbit command lines in a document's ```sh blocks (or a YAML file's comments):
    `… run --rm cli ARGS` and `… exec POD -- rvbbit ARGS`."""
    found, in_sh = [], False
    markdown = str(path).endswith(".md")
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if markdown and line.lstrip().startswith("```"):
            in_sh = not in_sh and line.strip() in ("```sh", "```bash", "```shell")
            continue
        if (in_sh if markdown else line.lstrip().startswith("#")):
            m = re.search(r"(?:run --rm cli|exec \S+ -- rvbbit) (.+?)(?:\s+#.*)?$", line)
            if m:
                found.append((f"{rel(path)}:{n}", shlex.split(m.group(1).rstrip("\\ "))))
    return found


# ---- Kubernetes ----

def strict_crd_schema(node):
    """An OpenAPI v3 schema of a CRD as JSON Schema that refuses unknown fields, as the API server
    does with strict field validation (kubectl apply --validate=strict)."""
    if isinstance(node, list):
        return [strict_crd_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict_crd_schema(v) for k, v in node.items()}
    if (out.get("type") == "object" and "properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def scaledobject_validator():
    crd = load_all(SCHEMAS / "keda.sh_scaledobjects.yaml")[0]
    versions = {v["name"]: v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"]}
    group = crd["spec"]["group"]
    schema = strict_crd_schema(versions["v1alpha1"])
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
    return f"{group}/v1alpha1", jsonschema.Draft7Validator(schema)


def validate_k8s_doc(report, where, doc, keda):
    kind = doc.get("kind")
    if doc.get("apiVersion") == keda[0] and kind == "ScaledObject":
        errors = sorted(keda[1].iter_errors(doc), key=lambda e: list(e.absolute_path))
        for e in errors:
            report.fail(where, f"ScaledObject (KEDA CRD schema) at "
                        f"{'/'.join(map(str, e.absolute_path)) or '/'}: {e.message}")
        report.check(True, where, "")
        return
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
            report.check(True, where, "")
        except kubernetes_validate.ValidationError as e:
            report.fail(where, f"{kind} (Kubernetes {version}, strict) at "
                        f"{'/'.join(map(str, e.absolute_path)) or '/'}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError:
            report.fail(where, f"no schema for {doc.get('apiVersion')} {kind}: only core kinds and "
                        f"the vendored KEDA ScaledObject are validated")
            return


def pod_specs(doc):
    kind = doc.get("kind")
    if kind in ("Deployment", "Job"):
        return [doc["spec"]["template"]["spec"]]
    if kind == "CronJob":
        return [doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
    return []


def check_pod(report, where, doc, pod, names, spec, binary, drain_grace):
    sec = pod.get("securityContext", {})
    report.check(sec.get("runAsNonRoot") is True and sec.get("runAsUser") == IMAGE_UID, where,
                 f"pod must run as non-root uid {IMAGE_UID} (the image's user)")
    report.check(sec.get("seccompProfile", {}).get("type") == "RuntimeDefault", where,
                 "pod needs seccompProfile RuntimeDefault (Pod Security `restricted`)")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for c in pod.get("containers", []):
        cw = f"{where} container {c.get('name')}"
        if not str(c.get("image", "")).startswith("rvbbit"):
            continue
        csec = c.get("securityContext", {})
        report.check(csec.get("readOnlyRootFilesystem") is True
                     and csec.get("allowPrivilegeEscalation") is False
                     and "ALL" in csec.get("capabilities", {}).get("drop", []), cw,
                     "needs readOnlyRootFilesystem, allowPrivilegeEscalation false, capabilities drop ALL")
        res = c.get("resources", {})
        report.check("requests" in res and "memory" in res.get("limits", {}), cw,
                     "needs resource requests and a memory limit")
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        report.check("/var/lib/rvbbit" in mounts and "/tmp" in mounts, cw,
                     "needs writable volumes at /var/lib/rvbbit (working directory, spill) and /tmp")
        for m in mounts.values():
            vol = volumes.get(m["name"])
            if report.check(vol is not None, cw, f"mounts undefined volume {m['name']}") and "configMap" in vol:
                report.check(vol["configMap"]["name"] in names["ConfigMap"], cw,
                             f"volume {m['name']}: no ConfigMap {vol['configMap']['name']} in deploy/k8s")
        for ef in c.get("envFrom", []):
            if "configMapRef" in ef:
                report.check(ef["configMapRef"]["name"] in names["ConfigMap"], cw,
                             f"envFrom: no ConfigMap {ef['configMapRef']['name']} in deploy/k8s")
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                report.check(ref["name"] == EXTERNAL_SECRET and ref["key"] in SECRET_KEYS, cw,
                             f"env {e['name']}: secret {ref['name']}/{ref['key']} is not one of the "
                             f"documented keys of Secret `{EXTERNAL_SECRET}` ({', '.join(sorted(SECRET_KEYS))})")
            elif SECRET_NAME.search(e["name"]) or URL_PASSWORD.search(str(e.get("value", ""))):
                report.fail(cw, f"env {e['name']} holds a secret in the manifest: use a secretKeyRef")
        check_argv(report, cw, [str(a) for a in c.get("args", [])], spec, binary)
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            command = c.get(probe, {}).get("exec", {}).get("command")
            if command:
                report.check(command[0] == "/usr/local/bin/rvbbit", cw,
                             f"{probe} runs {command[0]}: the image has /usr/local/bin/rvbbit")
                check_argv(report, f"{cw} {probe}", command[1:], spec, binary)
        if doc["kind"] == "Deployment":
            report.check("livenessProbe" in c and "readinessProbe" in c, cw,
                         "a Deployment's container needs liveness and readiness probes")
            args = c.get("args", [])
            grace = pod.get("terminationGracePeriodSeconds", 30)
            if args[:1] == ["worker"]:
                report.check(grace >= drain_grace + 15, cw,
                             f"terminationGracePeriodSeconds {grace} must exceed the worker's drain "
                             f"grace ({drain_grace} s) by at least 15 s")
            if "--shutdown-grace" in args:
                shutdown = int(args[args.index("--shutdown-grace") + 1])
                report.check(grace > shutdown, cw,
                             f"terminationGracePeriodSeconds {grace} must exceed --shutdown-grace {shutdown}")


def check_k8s(report, directory, spec, binary):
    stream, default_grace = rvbbit_defaults()
    keda = scaledobject_validator()
    files = sorted(p for p in Path(directory).glob("*.yaml") if p.name != "kustomization.yaml")
    docs = [(f"{rel(p)}#{i + 1}", d) for p in files for i, d in enumerate(load_all(p))]
    names = {"ConfigMap": set(), "Deployment": {}}
    drain_grace = default_grace
    for where, d in docs:
        if d.get("kind") == "ConfigMap":
            names["ConfigMap"].add(d["metadata"]["name"])
            grace = d.get("data", {}).get("RVBBIT_QUEUE__DRAIN_GRACE_SECONDS")
            drain_grace = int(grace) if grace else drain_grace
            for key, value in d.get("data", {}).items():
                report.check(not SECRET_NAME.search(key) and not URL_PASSWORD.search(str(value)),
                             where, f"ConfigMap key {key} holds a secret: use the Secret `{EXTERNAL_SECRET}`")
        if d.get("kind") == "Deployment":
            names["Deployment"][d["metadata"]["name"]] = d
        report.check(d.get("kind") != "Secret", where, "no Secret is committed: docs/deploy.md creates it")
    for where, d in docs:
        validate_k8s_doc(report, where, d, keda)
        for pod in pod_specs(d):
            check_pod(report, where, d, pod, names, spec, binary, drain_grace)
        if d.get("kind") == "Service":
            targets = [dep for dep in names["Deployment"].values()
                       if all(dep["spec"]["template"]["metadata"]["labels"].get(k) == v
                              for k, v in d["spec"]["selector"].items())]
            if report.check(len(targets) == 1, where, "the Service's selector must match exactly one Deployment"):
                ports = {p.get("name") for c in targets[0]["spec"]["template"]["spec"]["containers"]
                         for p in c.get("ports", [])}
                for p in d["spec"]["ports"]:
                    report.check(p["targetPort"] in ports, where,
                                 f"targetPort {p['targetPort']} is not a named port of the Deployment")
        if d.get("kind") == "ScaledObject":
            check_scaledobject(report, where, d, names, stream)
    kustomization = Path(directory) / "kustomization.yaml"
    if kustomization.exists():
        listed = load_all(kustomization)[0].get("resources", [])
        report.check(sorted(listed) == sorted(p.name for p in files), rel(kustomization),
                     f"resources must list every manifest: listed {sorted(listed)}, "
                     f"present {sorted(p.name for p in files)}")


def check_scaledobject(report, where, d, names, stream):
    spec = d.get("spec", {})
    target = names["Deployment"].get(spec.get("scaleTargetRef", {}).get("name"))
    if report.check(target is not None, where, "scaleTargetRef names no Deployment in deploy/k8s"):
        report.check("replicas" not in target["spec"], where,
                     "the scaled Deployment must not set replicas (KEDA owns the count)")
    report.check(spec.get("minReplicaCount", 0) >= 1, where,
                 "minReplicaCount must be at least 1: a max-deliveries advisory sent while no worker "
                 "runs is lost (docs/workers.md)")
    for t in spec.get("triggers", []):
        if t.get("type") != "nats-jetstream":
            continue
        meta = t.get("metadata", {})
        report.check(set(meta) <= JETSTREAM_KEYS, where,
                     f"nats-jetstream metadata: unknown keys {sorted(set(meta) - JETSTREAM_KEYS)}")
        report.check(JETSTREAM_REQUIRED <= set(meta), where,
                     f"nats-jetstream metadata: missing {sorted(JETSTREAM_REQUIRED - set(meta))}")
        report.check(meta.get("stream") == stream and meta.get("consumer") == f"{stream}_WORKERS",
                     where, f"stream/consumer must be rvbbit's {stream} / {stream}_WORKERS "
                     f"(queue.stream, docs/workers.md)")


# ---- Compose ----

VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def read_env_file(path):
    env = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip()
    return env


def interpolate(node, env, report, where, seen):
    """Substitute variables as Compose does (`$$`, `${V}`, `${V:-d}`, `${V-d}`, `${V:?e}`, `${V?e}`)."""
    if isinstance(node, dict):
        return {k: interpolate(v, env, report, where, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env, report, where, seen) for v in node]
    if not isinstance(node, str):
        return node

    def sub(m):
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3)
        seen.add(name)
        value = env.get(name)
        empty = value is None or (value == "" and op and op.startswith(":"))
        if op in (":?", "?"):
            if empty:
                report.fail(where, f"required variable {name} is not set: {arg}")
                return ""
            return value
        if op in (":-", "-") and empty:
            return arg
        return value or ""

    return VAR.sub(sub, node)


def check_compose(report, path, env_example, spec, binary):
    where = rel(path)
    raw = load_all(path)[0]
    documented = read_env_file(env_example)
    # Values a user fills in: every required variable gets a placeholder, as a filled .env would.
    env = {k: (v or "placeholder") for k, v in documented.items()}
    seen = set()
    model = interpolate(raw, env, report, where, seen)
    for name in sorted(seen - set(documented)):
        report.fail(where, f"variable {name} is used but not listed in {rel(env_example)}")
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    for e in sorted(validator.iter_errors(model), key=lambda e: list(e.absolute_path)):
        report.fail(where, f"Compose specification at {'/'.join(map(str, e.absolute_path)) or '/'}: {e.message}")
    report.check(True, where, "")
    _, drain_grace = rvbbit_defaults()
    services = raw.get("services", {})
    for name, svc in services.items():
        sw = f"{where} service {name}"
        envs = svc.get("environment", {})
        for key, value in (envs.items() if isinstance(envs, dict) else []):
            value = str(value)
            literal = "${" not in value
            url = URL_PASSWORD.search(value)
            report.check(not (SECRET_NAME.search(key) and literal and value)
                         and not (url and not url.group(1).startswith("${")), sw,
                         f"environment {key} holds a literal secret: take it from deploy/.env as ${{VAR:?…}}")
        image = str(svc.get("image", ""))
        if "RVBBIT_IMAGE" not in image and not image.startswith("rvbbit"):
            continue
        command = svc.get("command", [])
        report.check(isinstance(command, list), sw, "command must be a list (exec form)")
        check_argv(report, sw, [str(a) for a in command], spec, binary)
        test = svc.get("healthcheck", {}).get("test", [])
        if test[:2] == ["CMD", "rvbbit"]:
            check_argv(report, f"{sw} healthcheck", test[2:], spec, binary)
        if command[:1] == ["worker"]:
            report.check(duration(svc.get("stop_grace_period", "10s")) >= drain_grace + 10, sw,
                         f"stop_grace_period must exceed the worker's drain grace ({drain_grace} s) by 10 s")
        if "--shutdown-grace" in command:
            shutdown = int(command[command.index("--shutdown-grace") + 1])
            report.check(duration(svc.get("stop_grace_period", "10s")) > shutdown, sw,
                         f"stop_grace_period must exceed --shutdown-grace {shutdown}")


def duration(text):
    total = 0
    for amount, unit in re.findall(r"(\d+)(h|m|s)", str(text)):
        total += int(amount) * {"h": 3600, "m": 60, "s": 1}[unit]
    return total


# ---- Dockerfile ----

def dockerfile_instructions(path):
    lines, current = [], ""
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        lines.append(current.strip())
        current = ""
    return [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l else "") for l in lines]


def ignore_patterns(path):
    pats = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        pat = line[1:] if neg else line
        pat = pat.strip("/")
        rx = re.escape(pat).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        rx = rx.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        pats.append((neg, re.compile(f"^{rx}$")))
    return pats


def ignored(relpath, pats):
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = relpath.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for neg, rx in pats:
        if any(rx.match(c) for c in candidates):
            excluded = not neg
    return excluded


def check_dockerfile(report, path, ignore_file, spec, binary, context=ROOT):
    where = rel(path)
    steps = dockerfile_instructions(path)
    pats = ignore_patterns(ignore_file)
    tracked = subprocess.run(["git", "ls-files"], cwd=context, capture_output=True, text=True,
                             check=False).stdout.split()
    froms = [args for op, args in steps if op == "FROM"]
    report.check(len(froms) >= 2, where, "must be multi-stage (a build stage and a runtime stage)")
    build = re.match(r"rust:(\d+)\.(\d+)(?:\.\d+)?-(\w+)", froms[0]) if froms else None
    want = re.search(r'^rust-version = "(\d+)\.(\d+)"', (context / "Cargo.toml").read_text(), re.M)
    if report.check(build is not None, where, f"the build stage must use the official rust image: {froms[:1]}"):
        report.check((int(build.group(1)), int(build.group(2))) >= (int(want.group(1)), int(want.group(2))),
                     where, f"rust {build.group(1)}.{build.group(2)} is older than the workspace's rust-version")
        report.check(froms[-1].split()[0] == f"debian:{build.group(3)}-slim", where,
                     f"the runtime stage must be {build.group(3)}-slim (the build's Debian release)")
    for op, args in steps:
        if op in ("COPY", "ADD") and "--from=" not in args:
            sources = [a for a in shlex.split(args) if not a.startswith("--")][:-1]
            for src in sources:
                under = [t for t in tracked if t == src or t.startswith(src.rstrip("/") + "/")]
                report.check(bool(under), where, f"COPY {src}: no such path in the repository")
                dropped = [t for t in under if ignored(t, pats)]
                report.check(not dropped, where, f"COPY {src}: excluded by {rel(ignore_file)}: {dropped[:3]}")
    users = [args for op, args in steps if op == "USER"]
    report.check(bool(users) and users[-1].split(":")[0] == str(IMAGE_UID), where,
                 f"the image must end as USER {IMAGE_UID} (non-root; the manifests' runAsUser)")
    text = Path(path).read_text(encoding="utf-8")
    report.check("--profile dist" in text and "target/dist/rvbbit" in text, where,
                 "the binary must be built with the dist profile")
    check_dist_profile(report, context / "Cargo.toml")
    entry = [json.loads(args) for op, args in steps if op == "ENTRYPOINT"]
    report.check(bool(entry) and entry[-1][-1] == "/usr/local/bin/rvbbit"
                 and "COPY --from=build /out/rvbbit /usr/local/bin/rvbbit" in text, where,
                 "ENTRYPOINT must run /usr/local/bin/rvbbit, where the binary is copied")
    health = [args for op, args in steps if op == "HEALTHCHECK"]
    if report.check(bool(health), where, "needs a HEALTHCHECK"):
        cmd = json.loads(health[-1].split("CMD", 1)[1])
        check_argv(report, f"{where} HEALTHCHECK", cmd[1:], spec, binary)


def check_dist_profile(report, cargo_toml):
    import tomllib
    profile = tomllib.loads(Path(cargo_toml).read_text()).get("profile", {}).get("dist", {})
    where = f"{rel(cargo_toml)} [profile.dist]"
    report.check(profile.get("inherits") == "release" and profile.get("lto") in ("fat", True)
                 and profile.get("codegen-units") == 1 and profile.get("strip") is True, where,
                 "must inherit release with lto, codegen-units = 1 and strip = true")
    report.check(profile.get("panic") != "abort", where,
                 "panic = \"abort\" would kill a worker on a cell's panic (it catches them)")


# ---- main ----

def check_vendored(report):
    """The vendored schemas are the files deploy/schemas/README.md names (by sha256)."""
    import hashlib
    readme = (SCHEMAS / "README.md").read_text(encoding="utf-8")
    for name, digest in re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", readme, re.M):
        actual = hashlib.sha256((SCHEMAS / name).read_bytes()).hexdigest()
        report.check(actual == digest, f"deploy/schemas/{name}",
                     f"sha256 {actual} differs from deploy/schemas/README.md: record the new source")
    report.check(len(re.findall(r"`[0-9a-f]{64}`", readme)) == 2, "deploy/schemas/README.md",
                 "must record both vendored schemas with their sha256")


def run_all(binary):
    report = Report()
    spec = cli_spec()
    check_vendored(report)
    check_dockerfile(report, ROOT / "Dockerfile", ROOT / ".dockerignore", spec, binary)
    check_compose(report, DEPLOY / "compose.yaml", DEPLOY / "env.example", spec, binary)
    check_k8s(report, DEPLOY / "k8s", spec, binary)
    cascade = load_all(DEPLOY / "k8s/cascades.yaml")[0]["data"]["run_hello_shell.yaml"]
    report.check(cascade == (ROOT / "examples/run_hello_shell.yaml").read_text(), "deploy/k8s/cascades.yaml",
                 "run_hello_shell.yaml differs from examples/run_hello_shell.yaml")
    for where, argv in doc_commands(ROOT / "docs/deploy.md") + doc_commands(DEPLOY / "compose.yaml"):
        check_argv(report, where, argv, spec, binary)
    return report


def self_test(binary):
    """Each fixture names the errors it must produce (`# expect: TEXT` lines)."""
    spec = cli_spec()
    results = []
    for fixture in sorted((DEPLOY / "check/broken").iterdir()):
        expects = re.findall(r"^# expect: (.+)$", fixture.read_text(encoding="utf-8"), re.M)
        report = Report()
        if fixture.name.startswith("Dockerfile"):
            check_dockerfile(report, fixture, DEPLOY / "check/broken/dockerignore", spec, binary)
        elif fixture.name.startswith("compose"):
            check_compose(report, fixture, DEPLOY / "env.example", spec, binary)
        elif fixture.name.endswith(".yaml"):
            keda = scaledobject_validator()
            stream, _ = rvbbit_defaults()
            names = {"ConfigMap": set(), "Deployment": {}}
            for i, d in enumerate(load_all(fixture)):
                w = f"{rel(fixture)}#{i + 1}"
                validate_k8s_doc(report, w, d, keda)
                if d.get("kind") == "ScaledObject":
                    check_scaledobject(report, w, d, names, stream)
                for pod in pod_specs(d):
                    check_pod(report, w, d, pod, names, spec, binary, 30)
        else:
            continue
        text = "\n".join(report.errors)
        missing = [e for e in expects if e not in text]
        ok = bool(expects) and bool(report.errors) and not missing
        results.append((fixture.name, ok, missing, report.errors))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rvbbit", help="an rvbbit binary to parse each command line with")
    parser.add_argument("--self-test", action="store_true", help="check the broken fixtures are refused")
    args = parser.parse_args()
    if args.self_test:
        results = self_test(args.rvbbit)
        for name, ok, missing, errors in results:
            print(f"{'ok  ' if ok else 'FAIL'}  refuses deploy/check/broken/{name}"
                  + ("" if ok else f": missing {missing}; got {errors}"))
        failed = sum(1 for r in results if not r[1])
        print(f"self-test: {len(results) - failed} passed, {failed} failed")
        return 1 if failed or not results else 0
    report = run_all(args.rvbbit)
    for e in report.errors:
        print(f"error: {e}", file=sys.stderr)
    print(f"deploy: {report.checks - len(report.errors)} passed, {len(report.errors)} failed")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
