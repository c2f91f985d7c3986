"""The delivery workflow a forge runs on every commit to ``main`` (``.github/workflows/delivery.yml``),
checked offline, and what its jobs need from the project.

The check: actionlint over every workflow (with ShellCheck on each ``run:`` script; the runner labels and the
repository variables it may name are in ``.github/actionlint.yaml``), then replayrec's rules over the delivery
workflow, which actionlint does not know: the jobs and their ``needs:`` chain, the GitHub environments of the
deploy jobs, every action pinned by commit, least-privilege permissions, one delivery at a time, a time limit
on every job, no ``${{ }}`` expanded into a script, and every command of a ``run:`` script one a developer
runs too (``RUN_COMMANDS``) or shell plumbing (``SHELL_PLUMBING``).

What the jobs call: ``pin_project_images`` (the rendered manifests with the project's images at the commit's
tag: a moving version tag would not roll anything out) and ``load_gate`` (the load test's thresholds).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from replayrec.config import Settings
from replayrec.infra._check import CheckStep, deploy_tool
from replayrec.infra._images import DEFAULT_REGISTRY, IMAGES
from replayrec.infra._terraform import InfraError

__all__ = [
    "DELIVERY_CHAIN",
    "DELIVERY_ENVIRONMENTS",
    "DELIVERY_WORKFLOW",
    "RUN_COMMANDS",
    "SHELL_PLUMBING",
    "LoadCheck",
    "actionlint_errors",
    "check_delivery",
    "delivery_rules",
    "load_gate",
    "pin_project_images",
    "script_commands",
]

DELIVERY_WORKFLOW = ".github/workflows/delivery.yml"
#: the jobs, in order: each one ``needs:`` exactly the one before it
DELIVERY_CHAIN = ("test", "images", "manifests", "deploy-staging", "load-test-staging", "canary", "prod")
#: the GitHub environment of each deploy job (canary and prod: required reviewers, set on the forge)
DELIVERY_ENVIRONMENTS = {"deploy-staging": "staging", "canary": "canary", "prod": "prod"}
#: what a ``run:`` script may call besides shell plumbing: the commands a developer runs, and why each
RUN_COMMANDS = {
    "make": "the Makefile's entry points (make setup, make deploy-tools), as a developer runs them",
    "replayrec": "the project's CLI (.venv/bin/replayrec): build, render, check, load test, promotion gates",
    "kubectl": "the cluster, with the environment's kubeconfig (.venv-deploy/bin/kubectl)",
    ".ci/run": "the CI entry point: starts the services the tests need, then runs make test",
    "python argo/render.py": "the committed Argo YAML against its generator (argo/README.md)",
    "buildah login": "the registry's credentials for replayrec deploy build --push",
    "buildah logout": "forget them again",
    "apt-get": "a Debian package the runner lacks (wrk, the load test's driver), as .ci/run installs its own",
}
SHELL_PLUMBING = frozenset(
    {"[", "cat", "cd", "chmod", "command", "cp", "echo", "exit", "export", "kill", "ls", "mkdir", "printf",
     "rm", "set", "sleep", "test", "trap", "true", "umask"}
)  # fmt: skip

_SEPARATORS = frozenset({";", "&&", "||", "|", "|&", "&", "(", ")", ";;"})
_LEAD_KEYWORDS = frozenset({"if", "then", "else", "elif", "do", "while", "until", "!", "{", "}", "time"})
_CLOSERS = frozenset({"fi", "done", "esac"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_TOOL_PATH = re.compile(r"^(?:\./)?\.venv(?:-[a-z]+)?/bin/(.+)$")
_SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")
_PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")


def _line_commands(line: str) -> list[list[str]]:
    lex = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
    lex.whitespace_split = True
    tokens = list(lex)
    commands: list[list[str]] = []
    current: list[str] | None = []
    for token in tokens:
        if token in _SEPARATORS:
            if current:
                commands.append(current)
            current = []
        elif current is None:  # inside ``for NAME in WORDS``: no command until the separator
            continue
        elif not current and token == "for":
            current = None
        elif not current and (token in _LEAD_KEYWORDS or token in _CLOSERS or _ASSIGNMENT.match(token)):
            continue
        else:
            current.append(token)
    if current:
        commands.append(current)
    return commands


def script_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell script (each as its words, tool paths such as ``.venv/bin/replayrec``
    shortened to the tool's name), ``$( … )`` substitutions included. Raises ``InfraError`` on what it does
    not read: here-documents and backquotes."""
    if "<<" in script.replace("<<<", "") or "`" in script:
        raise InfraError("here-documents and backquotes are not read: use printf and $( … )")
    commands: list[list[str]] = []
    for line in script.replace("\\\n", " ").splitlines():
        try:
            found = _line_commands(line)
        except ValueError as exc:
            raise InfraError(f"cannot read {line.strip()!r}: {exc}") from None
        for words in found:
            m = _TOOL_PATH.match(words[0])
            commands.append([m.group(1) if m else words[0], *words[1:]])
            if words[0] == "trap" and len(words) > 1:  # the trap's command runs later
                commands += script_commands(words[1])
            for word in words:
                for inner in _SUBSTITUTION.findall(word):
                    commands += script_commands(inner)
    return commands


def _allowed(words: Sequence[str]) -> bool:
    name = words[0]
    pair = f"{name} {words[1]}" if len(words) > 1 else ""
    return name in SHELL_PLUMBING or name in RUN_COMMANDS or pair in RUN_COMMANDS


def _needs(job: Mapping[str, Any]) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else [str(n) for n in needs]


def _environment(job: Mapping[str, Any]) -> str | None:
    env = job.get("environment")
    return str(env.get("name")) if isinstance(env, dict) else (str(env) if env else None)


def _trigger_rules(doc: Mapping[Any, Any]) -> list[str]:
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on:` key as true
    on = {on: None} if isinstance(on, str) else on
    if not isinstance(on, dict):
        return ["on: expected push (branches: [main]) and workflow_dispatch"]
    errors = []
    branches = (on.get("push") or {}).get("branches") or []
    if "main" not in branches:
        errors.append("on.push.branches: the workflow must run on every commit to main")
    if "workflow_dispatch" not in on:
        errors.append("on: workflow_dispatch is missing (a delivery must be startable by hand)")
    return errors


def _workflow_rules(doc: Mapping[Any, Any]) -> list[str]:
    errors = _trigger_rules(doc)
    perms = doc.get("permissions")
    if not isinstance(perms, dict):
        errors.append("permissions: set them per scope at the top (least privilege: contents: read)")
    concurrency = doc.get("concurrency")
    if not isinstance(concurrency, dict) or not concurrency.get("group"):
        errors.append("concurrency: a group is needed so that two commits never deploy at once")
    elif concurrency.get("cancel-in-progress") not in (None, False):
        errors.append("concurrency.cancel-in-progress: a newer commit waits, it never cancels a deploy")
    for scope, value in [("permissions", perms)] + [
        (f"jobs.{name}.permissions", job.get("permissions")) for name, job in (doc.get("jobs") or {}).items()
    ]:
        granted = value.items() if isinstance(value, dict) else []
        errors += [
            f"{scope}.{k}: write (the delivery needs no write access)" for k, v in granted if v == "write"
        ]
    return errors


def _chain_rules(jobs: Mapping[str, Any]) -> list[str]:
    errors = []
    chain = " → ".join(DELIVERY_CHAIN)
    if set(jobs) != set(DELIVERY_CHAIN):
        missing, extra = sorted(set(DELIVERY_CHAIN) - set(jobs)), sorted(set(jobs) - set(DELIVERY_CHAIN))
        errors.append(f"jobs: expected exactly {chain}; missing {missing or '-'}, unexpected {extra or '-'}")
    for previous, name in zip((None, *DELIVERY_CHAIN), DELIVERY_CHAIN, strict=False):
        if name not in jobs:
            continue
        want = [previous] if previous else []
        if (needs := _needs(jobs[name])) != want:
            errors.append(f"jobs.{name}.needs: {needs or 'none'}, expected {want or 'none'} ({chain})")
        env = _environment(jobs[name])
        if env != DELIVERY_ENVIRONMENTS.get(name):
            errors.append(f"jobs.{name}.environment: {env}, expected {DELIVERY_ENVIRONMENTS.get(name)}")
        if not isinstance(jobs[name].get("timeout-minutes"), int):
            errors.append(f"jobs.{name}: timeout-minutes is missing")
    return errors


def _step_rules(where: str, step: Mapping[str, Any]) -> list[str]:
    uses, run = step.get("uses"), step.get("run")
    if uses is not None and not (str(uses).startswith("./") or _PINNED.match(str(uses))):
        return [f"{where}: {uses} is not pinned by a full commit SHA (owner/repo@<40 hex> # vX.Y.Z)"]
    if run is None:
        return []
    if "${{" in str(run):
        return [f"{where}: a ${{{{ }}}} expression expanded into the script; pass it through env:"]
    try:
        commands = script_commands(str(run))
    except InfraError as exc:
        return [f"{where}: {exc}"]
    return [
        f"{where}: {' '.join(words[:2])!r} is neither a developer's command ({', '.join(RUN_COMMANDS)}) "
        "nor shell plumbing"
        for words in commands
        if not _allowed(words)
    ]


def delivery_rules(doc: Mapping[Any, Any]) -> list[str]:
    """replayrec's rules for the delivery workflow (a parsed YAML document): one message per violation."""
    jobs = doc.get("jobs")
    if not isinstance(jobs, dict) or not jobs:
        return ["jobs: none"]
    errors = _workflow_rules(doc) + _chain_rules(jobs)
    for name, job in jobs.items():
        steps = job.get("steps") or []
        for i, step in enumerate(steps):
            errors += _step_rules(f"jobs.{name}.steps[{i}] ({step.get('name') or step.get('uses')})", step)
    test_commands = [
        " ".join(words[:2])
        for step in (jobs.get("test") or {}).get("steps") or []
        if step.get("run")
        for words in script_commands(str(step["run"]))
    ]
    if "test" in jobs and not {"make test", ".ci/run"} & set(test_commands):
        errors.append("jobs.test: runs neither make test nor .ci/run (the developer's test command)")
    return errors


def actionlint_errors(settings: Settings, files: Sequence[Path], root: Path) -> list[str]:
    """actionlint over ``files`` with ShellCheck on the scripts (``root``/.github/actionlint.yaml its
    configuration): ``file:line:column: message [kind]`` for each error."""
    config = root / ".github" / "actionlint.yaml"
    cmd = [str(deploy_tool(settings, "actionlint")), "-format", "{{json .}}", "-no-color",
           "-shellcheck", str(deploy_tool(settings, "shellcheck")), "-pyflakes", ""]  # fmt: skip
    cmd += ["-config-file", str(config)] if config.is_file() else []
    proc = subprocess.run([*cmd, *map(str, files)], capture_output=True, text=True, cwd=root, timeout=120,
                          check=False)  # fmt: skip
    if proc.returncode not in (0, 1):
        raise InfraError(f"actionlint failed (status {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    try:
        found = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise InfraError(f"actionlint printed no JSON: {proc.stdout[-500:]}") from exc
    return [f"{e['filepath']}:{e['line']}:{e['column']}: {e['message']} [{e['kind']}]" for e in found or []]


def _checked(step: str, target: str, errors_of: Any, numbers: dict[str, int]) -> CheckStep:
    start = time.perf_counter()
    try:
        errors: list[str] = errors_of()
    except InfraError as exc:
        errors = [str(exc)]
    detail = "\n".join(errors) if errors else "clean"
    numbers = {**numbers, "errors": len(errors)}
    return CheckStep(step, target, not errors, round(time.perf_counter() - start, 2), detail, numbers)


def check_delivery(settings: Settings) -> list[CheckStep]:
    """actionlint (+ ShellCheck) over ``.github/workflows/*.y[a]ml``, then the delivery workflow's rules."""
    root = settings.infra_dir.parent
    files = sorted((root / ".github" / "workflows").glob("*.y*ml"))
    lint = _checked("actionlint", ".github/workflows", lambda: actionlint_errors(settings, files, root),
                    {"workflows": len(files)})  # fmt: skip
    if not files:
        lint = CheckStep("actionlint", ".github/workflows", False, 0.0, "no workflow files", {})
    path = root / DELIVERY_WORKFLOW

    def rules() -> list[str]:
        if not path.is_file():
            return [f"{DELIVERY_WORKFLOW} is missing"]
        return delivery_rules(yaml.safe_load(path.read_text()) or {})

    return [lint, _checked("delivery", DELIVERY_WORKFLOW, rules, {"jobs": len(DELIVERY_CHAIN)})]


# -- what the jobs call --------------------------------------------------------------------------------------
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,119}$")
_REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9._-]+)*$")
_PROJECT_IMAGE = re.compile(rf"^{re.escape(DEFAULT_REGISTRY)}/(replayrec-[a-z0-9-]+):([^@\s]+)$")


def pin_project_images(
    docs: Sequence[dict[str, Any]], tag: str, registry: str = DEFAULT_REGISTRY
) -> list[dict[str, Any]]:
    """``docs`` with every image of the project (``<DEFAULT_REGISTRY>/replayrec-*:<version>[-cu128]``)
    renamed to ``<registry>/replayrec-*:<tag>[-cu128]``, the tags ``replayrec deploy build --extra-tag``
    pushes; other images (Redis, Kafka, PostgreSQL) stay as they are."""
    if not _TAG.match(tag):
        raise InfraError(f"--image-tag {tag!r} is not a valid image tag")
    if not _REGISTRY.match(registry):
        raise InfraError(f"--registry {registry!r} is not a registry host[:port][/path]")
    suffixes = sorted({s.tag_suffix for s in IMAGES if s.tag_suffix}, key=len, reverse=True)

    def pin(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _image(v) if k == "image" else pin(v) for k, v in value.items()}
        return [pin(v) for v in value] if isinstance(value, list) else value

    def _image(value: Any) -> Any:
        m = _PROJECT_IMAGE.match(value) if isinstance(value, str) else None
        if m is None:
            return pin(value)
        suffix = next((s for s in suffixes if m.group(2).endswith(s)), "")
        return f"{registry}/{m.group(1)}:{tag}{suffix}"

    return [pin(d) for d in docs]


@dataclass(frozen=True)
class LoadCheck:
    """One scenario of a load test against the thresholds."""

    scenario: str
    passed: bool
    detail: str


def load_gate(
    result: Mapping[str, Any],
    *,
    min_qps: float,
    max_p99_ms: float,
    max_error_rate: float,
    scenarios: Sequence[str] = ("uncached",),
) -> list[LoadCheck]:
    """The scenarios of a ``replayrec bench serve --json`` result against the thresholds: throughput at
    least ``min_qps``, p99 below ``max_p99_ms``, errors at most ``max_error_rate`` of the requests."""
    checks = []
    for name in scenarios:
        row = result.get(name)
        if not isinstance(row, dict) or not {"qps", "p99_ms", "errors"} <= set(row):
            has = ", ".join(map(str, result)) or "nothing"
            raise InfraError(
                f"not a `replayrec bench serve --json` result: no scenario {name!r} with qps, p99_ms and "
                f"errors (it has {has})"
            )
        requests = sum(int(r.get("requests", 0)) for r in row.get("runs") or [])
        rate = row["errors"] / requests if requests else (1.0 if row["errors"] else 0.0)
        bad = [
            *([f"{row['qps']:,.1f} QPS < {min_qps:g}"] if row["qps"] < min_qps else []),
            *([f"p99 {row['p99_ms']:.1f} ms ≥ {max_p99_ms:g}"] if row["p99_ms"] >= max_p99_ms else []),
            *([f"error rate {rate:.2%} > {max_error_rate:.2%}"] if rate > max_error_rate else []),
        ]
        numbers = (f"{row['qps']:,.1f} QPS, p99 {row['p99_ms']:.1f} ms, {row['errors']} errors in "
                   f"{requests:,} requests")  # fmt: skip
        verdict = "; ".join(bad) if bad else f"≥ {min_qps:g} QPS, p99 < {max_p99_ms:g} ms"
        checks.append(LoadCheck(name, not bad, f"{numbers}: {verdict}"))
    return checks
