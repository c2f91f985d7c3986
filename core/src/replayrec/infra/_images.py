"""The container images (``deploy/docker/*.Dockerfile``, build context = the repo root): what each one is,
hadolint and replayrec's own rules over their Dockerfiles, the build context that ``.dockerignore`` lets
through; building them without a Docker engine is ``replayrec.infra._image_build``.

replayrec's rules (codes ``RR1xx``) cover what hadolint cannot see: a ``FROM ${BASE_IMAGE}`` is never
checked by hadolint, so the ARG defaults are resolved here and every base must carry a digest.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from replayrec.config import Settings
from replayrec.infra._check import CheckStep, deploy_tool
from replayrec.infra._terraform import InfraError

__all__ = [
    "DEFAULT_REGISTRY",
    "IMAGES",
    "LOCAL_BASE",
    "Finding",
    "ImageSpec",
    "Instruction",
    "context_files",
    "dockerfile_policy",
    "hadolint",
    "image_spec",
    "lint_dockerfiles",
    "parse_dockerfile",
    "stage_bases",
]

#: where the images are pushed (the Kubernetes manifests under deploy/k8s name the same repositories)
DEFAULT_REGISTRY = "registry.replayrec.internal"
#: the tag of the locally made base image (``local_base_image``)
LOCAL_BASE = "localhost/replayrec-base:bookworm"
LOCK = "requirements/lock.txt"


@dataclass(frozen=True)
class ImageSpec:
    """One image: its Dockerfile, the package whose version tags it, build args, what it serves."""

    name: str
    dockerfile: str  # relative to the repo root
    version_from: str  # the pyproject.toml whose version is the default tag
    description: str
    build_args: Mapping[str, str] = field(default_factory=dict)
    tag_suffix: str = ""
    ports: tuple[int, ...] = ()
    health_path: str | None = None  # the HEALTHCHECK must hit it

    @property
    def repository(self) -> str:
        return self.repository_in(DEFAULT_REGISTRY)

    def repository_in(self, registry: str) -> str:
        """``<registry>/replayrec-<name>`` (the GPU variant shares the training repository)."""
        return f"{registry}/replayrec-{self.name.removesuffix('-gpu')}"

    def version(self, root: Path) -> str:
        data = tomllib.loads((root / self.version_from).read_text())
        return str(data["project"]["version"])

    def tag(self, root: Path, registry: str = DEFAULT_REGISTRY, label: str | None = None) -> str:
        """``<registry>/replayrec-<name>:<label><suffix>``, the label defaulting to the package version (e.g.
        ``…/replayrec-service:0.2.1``, the tag the manifests pin; ``…/replayrec-training:<commit>-cu128``)."""
        return f"{self.repository_in(registry)}:{label or self.version(root)}{self.tag_suffix}"


IMAGES: tuple[ImageSpec, ...] = (
    ImageSpec(
        "service",
        "deploy/docker/service.Dockerfile",
        "serving/pyproject.toml",
        "replayrec serve: the serving profile + mlflow-skinny",
        ports=(8000,),
        health_path="/healthz",
    ),
    ImageSpec(
        "stream",
        "deploy/docker/stream.Dockerfile",
        "core/pyproject.toml",
        "replayrec stream run: PySpark 4.3 on OpenJDK 17",
        ports=(9466,),
        health_path="/metrics",
    ),
    ImageSpec(
        "training",
        "deploy/docker/training.Dockerfile",
        "core/pyproject.toml",
        "replayrec train / pipeline: torch 2.13.0 CPU",
        build_args={"TORCH_VARIANT": "cpu"},
    ),
    ImageSpec(
        "training-gpu",
        "deploy/docker/training.Dockerfile",
        "core/pyproject.toml",
        "replayrec train / pipeline: torch 2.13.0 CUDA 12.8",
        build_args={"TORCH_VARIANT": "cu128"},
        tag_suffix="-cu128",
    ),
)


def image_spec(name: str) -> ImageSpec:
    """The image called ``name``; the names are listed when there is none."""
    for spec in IMAGES:
        if spec.name == name:
            return spec
    raise InfraError(f"no image {name!r}; the images: {', '.join(s.name for s in IMAGES)}")


# -- reading Dockerfiles -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined (``line``: where it starts)."""

    line: int
    keyword: str
    args: str


@dataclass(frozen=True)
class Finding:
    """One problem in a Dockerfile: hadolint's (``DLxxxx``, ``SCxxxx``) or replayrec's (``RR1xx``)."""

    file: str
    line: int
    code: str
    level: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} {self.code} {self.message}"


def parse_dockerfile(path: Path) -> list[Instruction]:
    """The instructions of ``path``: comments and blank lines dropped, ``\\`` continuations joined."""
    out: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        if not parts:
            start = number
        parts.append(text.removesuffix("\\").strip())
        if not text.endswith("\\"):
            keyword, _, args = " ".join(parts).partition(" ")
            out.append(Instruction(start, keyword.upper(), args.strip()))
            parts = []
    return out


_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def stage_bases(instructions: Sequence[Instruction]) -> list[tuple[Instruction, str, str | None]]:
    """Each stage's ``FROM``, its base with the global ``ARG`` defaults substituted, and its name."""
    args: dict[str, str] = {}
    stages: list[tuple[Instruction, str, str | None]] = []
    for ins in instructions:
        if ins.keyword == "ARG" and not stages:
            key, _, default = ins.args.partition("=")
            args[key.strip()] = default.strip().strip('"')
        elif ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--platform")]
            base = _VAR.sub(lambda m: args.get(m.group(1) or m.group(2), m.group(0)), words[0])
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append((ins, base, name))
    return stages


# -- replayrec's rules ---------------------------------------------------------------------------------------
def _json_form(args: str) -> bool:
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return False
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _base_findings(rel: str, instructions: Sequence[Instruction]) -> list[Finding]:
    stages = stage_bases(instructions)
    if not stages:
        return [Finding(rel, 1, "RR103", "error", "no FROM")]
    names = {name for _, _, name in stages if name}
    found = [
        Finding(rel, ins.line, "RR101", "error", f"base image {base!r} is not pinned by digest (@sha256:…)")
        for ins, base, _ in stages
        if base not in names and base != "scratch" and not re.search(r"@sha256:[0-9a-f]{64}$", base)
    ]
    if len(stages) < 2:
        found.append(
            Finding(rel, stages[0][0].line, "RR103", "error", "single stage: build in a builder stage")
        )
    return found


def _final_stage(instructions: Sequence[Instruction]) -> list[Instruction]:
    starts = [i for i, ins in enumerate(instructions) if ins.keyword == "FROM"]
    return list(instructions[starts[-1] :]) if starts else []


def _runtime_findings(
    rel: str, instructions: Sequence[Instruction], health_path: str | None
) -> list[Finding]:
    final = _final_stage(instructions)
    line = final[0].line if final else 1
    users = [ins for ins in final if ins.keyword == "USER"]
    found: list[Finding] = []
    if not users or not re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", users[-1].args):
        what = f"USER {users[-1].args}" if users else "no USER"
        found.append(
            Finding(
                rel,
                users[-1].line if users else line,
                "RR102",
                "error",
                f"the final stage must run as a numeric non-root user (uid:gid), found {what}",
            )
        )
    for ins in final:
        body = ins.args.split("CMD", 1)[1].strip() if ins.keyword == "HEALTHCHECK" else ins.args
        if ins.keyword in ("ENTRYPOINT", "CMD", "HEALTHCHECK") and body != "NONE" and not _json_form(body):
            found.append(
                Finding(rel, ins.line, "RR105", "error", f"{ins.keyword} in shell form: use exec form")
            )
    checks = [ins for ins in final if ins.keyword == "HEALTHCHECK"]
    if health_path and not any("127.0.0.1" in c.args and health_path in c.args for c in checks):
        found.append(
            Finding(rel, line, "RR106", "error", f"no HEALTHCHECK on http://127.0.0.1:…{health_path}")
        )
    return found


def _pip_findings(rel: str, instructions: Sequence[Instruction]) -> list[Finding]:
    lock = re.compile(rf"(-c|--constraint)[ =]{re.escape(LOCK)}\b")
    return [
        Finding(rel, ins.line, "RR104", "error", f"pip install without -c {LOCK}")
        for ins in instructions
        if ins.keyword == "RUN" and re.search(r"\bpip3? install\b", ins.args) and not lock.search(ins.args)
    ]


def _copy_findings(rel: str, instructions: Sequence[Instruction], context: set[str]) -> list[Finding]:
    found: list[Finding] = []
    for ins in instructions:
        if ins.keyword not in ("COPY", "ADD") or "--from" in ins.args:
            continue
        for src in [w for w in ins.args.split() if not w.startswith("--")][:-1]:
            prefix = src.rstrip("/") + "/"
            if not any(f == src or f.startswith(prefix) for f in context):
                message = f"{ins.keyword} {src}: not in the build context (see .dockerignore)"
                found.append(Finding(rel, ins.line, "RR107", "error", message))
    return found


def dockerfile_policy(
    path: Path, root: Path, health_path: str | None = None, context: set[str] | None = None
) -> list[Finding]:
    """replayrec's rules: every base pinned by digest (RR101), a numeric non-root USER last (RR102),
    multi-stage (RR103), every pip install constrained by the lock file (RR104), exec-form ENTRYPOINT / CMD /
    HEALTHCHECK (RR105), the health check on ``health_path`` (RR106), COPY sources in ``context`` (RR107)."""
    rel = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    instructions = parse_dockerfile(path)
    return [
        *_base_findings(rel, instructions),
        *_runtime_findings(rel, instructions, health_path),
        *_pip_findings(rel, instructions),
        *(_copy_findings(rel, instructions, context) if context is not None else []),
    ]


# -- the build context ---------------------------------------------------------------------------------------
def _pattern(text: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(text):
        if text.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif text.startswith("**", i):
            out, i = out + ".*", i + 2
        elif text[i] in "*?":
            out, i = out + ("[^/]*" if text[i] == "*" else "[^/]"), i + 1
        elif text[i] == "[":
            end = text.index("]", i)
            out, i = out + text[i : end + 1], end + 1
        else:
            out, i = out + re.escape(text[i]), i + 1
    return re.compile(out + r"\Z")


def _ignore_rules(root: Path) -> list[tuple[re.Pattern[str], bool, str]]:
    rules = []
    for raw in (root / ".dockerignore").read_text().splitlines():
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        negate = text.startswith("!")
        text = os.path.normpath(text.removeprefix("!").strip()).lstrip("/")
        rules.append((_pattern(text), negate, text))
    return rules


def context_files(root: Path) -> set[str]:
    """The files (relative, ``/``-separated) a build with context ``root`` receives: ``.dockerignore`` read
    as Docker reads it (a pattern matching a path or a parent folder decides; the last match wins)."""
    rules = _ignore_rules(root)
    reincluded = [text for _, negate, text in rules if negate]

    def excluded(rel: str) -> bool:
        parents = [rel] + ["/".join(rel.split("/")[:n]) for n in range(1, rel.count("/") + 1)]
        verdict = False
        for pattern, negate, _ in rules:
            if any(pattern.match(p) for p in parents):
                verdict = not negate
        return verdict

    files: set[str] = set()
    for folder, dirs, names in os.walk(root):
        base = Path(folder).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        dirs[:] = [
            d
            for d in dirs
            if not excluded(prefix + d) or any(t.startswith(prefix + d + "/") for t in reincluded)
        ]
        files.update(prefix + n for n in names if not excluded(prefix + n))
    return files


# -- hadolint ------------------------------------------------------------------------------------------------
def hadolint(settings: Settings, root: Path, paths: Sequence[Path]) -> list[Finding]:
    """hadolint (``settings.deploy_tools_bin``) over ``paths`` with the repo's ``.hadolint.yaml``."""
    binary, config = deploy_tool(settings, "hadolint"), root / ".hadolint.yaml"
    if not config.is_file():
        raise InfraError(f"the hadolint configuration is missing: {config}")
    proc = subprocess.run(
        [str(binary), "--config", str(config), "--format", "json", "--no-color", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=root,
    )
    try:
        raw = json.loads(proc.stdout or "null")
    except json.JSONDecodeError:
        raw = None
    if proc.returncode not in (0, 1) or not isinstance(raw, list):
        raise InfraError(f"hadolint failed (status {proc.returncode}): {(proc.stderr or proc.stdout)[-800:]}")
    return [
        Finding(
            str(f.get("file")),
            int(f.get("line", 0)),
            str(f.get("code")),
            str(f.get("level")),
            str(f.get("message")),
        )
        for f in raw
    ]


def _step(step: str, target: str, action: Callable[[], list[Finding]]) -> CheckStep:
    start = time.perf_counter()
    try:
        found = action()
        detail = "\n".join(map(str, found)) or "no findings"
        ok, numbers = not found, {"findings": len(found)}
    except InfraError as exc:
        detail, ok, numbers = str(exc), False, {}
    return CheckStep(step, target, ok, round(time.perf_counter() - start, 2), detail, numbers)


def lint_dockerfiles(settings: Settings, root: Path) -> list[CheckStep]:
    """hadolint and replayrec's rules (``dockerfile_policy``) over each image's Dockerfile; a step fails on
    any finding, its detail lists them as ``file:line code message``. Raises ``InfraError`` when hadolint or
    its configuration is missing (nothing could be checked)."""
    for need in (settings.deploy_tools_bin / "hadolint", root / ".hadolint.yaml", root / ".dockerignore"):
        if not need.is_file():
            raise InfraError(f"{need} is missing (hadolint: make deploy-tools)")
    context = context_files(root)
    steps: list[CheckStep] = []
    for rel in dict.fromkeys(spec.dockerfile for spec in IMAGES):
        health = next((s.health_path for s in IMAGES if s.dockerfile == rel and s.health_path), None)
        steps.append(_step("hadolint", rel, partial(hadolint, settings, root, [Path(rel)])))
        steps.append(_step("policy", rel, partial(dockerfile_policy, root / rel, root, health, context)))
    return steps
