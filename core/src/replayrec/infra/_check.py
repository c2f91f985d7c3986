"""The offline Terraform checks: ``fmt``, ``init`` + ``validate`` against the schema-only provider stub,
``terraform test`` with mocked providers, and a checkov scan — what ``replayrec infra check`` and CI run.

Nothing here reaches a cloud: the OpenStack provider is the stub (``infra/testing/openstack_stub.py``) served
from a filesystem mirror in the state directory. The checks run on a fresh copy of the tree in the state
directory (``check_tree``), without the operators' own files (``terraform.tfvars``, the active lease's
``gpu_lease.auto.tfvars.json``, state): the result does not depend on them, and the stub's lock files never
land in ``infra/``, where they would clash with the real provider's checksums.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from replayrec.config import Settings
from replayrec.infra._terraform import InfraError, TerraformEnv

__all__ = [
    "CheckStep",
    "check_offline",
    "check_tree",
    "configurations",
    "deploy_cache_dir",
    "deploy_tool",
    "install_stub",
    "scan",
    "steps_as_dicts",
    "stub_schema_path",
    "timed_step",
]

_TEST_SUMMARY = re.compile(r"(\d+) passed, (\d+) failed")


@dataclass
class CheckStep:
    """One step of the check: what ran, on which folder, whether it passed, and its numbers."""

    step: str
    target: str
    ok: bool
    seconds: float
    detail: str = ""
    numbers: dict[str, int] = field(default_factory=dict)


def stub_schema_path(settings: Settings) -> Path:
    """The recorded OpenStack provider schema (``../shared/schemas/terraform-provider-openstack``)."""
    return settings.data_dir.parent / "schemas" / "terraform-provider-openstack" / "schema.json"


def install_stub(settings: Settings, schema: Path | None = None) -> Path:
    """Write the stub provider's filesystem mirror under the state directory; returns the CLI config file."""
    schema = schema or stub_schema_path(settings)
    script = settings.infra_dir / "testing" / "openstack_stub.py"
    python = settings.infra_tools_python
    for path, what in (
        (schema, "provider schema"),
        (script, "stub provider"),
        (python, "infra tools Python"),
    ):
        if not path.exists():
            hint = " (make infra-tools)" if path == python else ""
            raise InfraError(f"the {what} is missing: {path}{hint}")
    mirror = settings.state_dir / "infra" / "stub" / "mirror"
    proc = subprocess.run(
        [str(python), str(script), "install", "--schema", str(schema), "--mirror", str(mirror)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise InfraError(f"installing the OpenStack stub provider failed:\n{proc.stderr.strip()}")
    return Path(proc.stdout.strip().splitlines()[-1])


_OPERATOR_FILES = (
    ".terraform",
    ".terraform.lock.hcl",
    "*.tfstate",
    "*.tfstate.*",
    "*.tfplan",
    "terraform.tfvars",
)


def check_tree(settings: Settings) -> Path:
    """A fresh copy of the infra tree under the state directory, without the operators' files."""
    copy = settings.state_dir / "infra" / "check" / "infra"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(
        settings.infra_dir,
        copy,
        ignore=shutil.ignore_patterns(*_OPERATOR_FILES, "gpu_lease.auto.tfvars.json"),
    )
    return copy


def configurations(infra_dir: Path) -> list[Path]:
    """Every Terraform configuration: each module and each environment folder, in a stable order."""
    found = [
        p for kind in ("modules", "envs") for p in sorted((infra_dir / kind).glob("*")) if any(p.glob("*.tf"))
    ]
    if not found:
        raise InfraError(f"no Terraform configurations under {infra_dir}/modules or {infra_dir}/envs")
    return found


def _needs_aliases(folder: Path) -> bool:
    """A module with ``configuration_aliases`` validates only inside a root passing them (its tests do)."""
    return any("configuration_aliases" in p.read_text() for p in folder.glob("*.tf"))


def deploy_tool(settings: Settings, name: str) -> Path:
    """A tool of the deployment tools environment (``settings.deploy_tools_bin``, ``make deploy-tools``):
    kubectl, kubernetes-validate, hadolint, ansible-playbook, ansible-lint."""
    path = settings.deploy_tools_bin / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise InfraError(f"{name} is missing: {path} (make deploy-tools)")
    return path


def deploy_cache_dir() -> Path:
    """Where the deployment's expensive inputs are cached (the debootstrapped roots, the image base):
    ``REPLAYREC_DEBOOTSTRAP_CACHE``, else ``$XDG_CACHE_HOME/replayrec`` (``~/.cache/replayrec``)."""
    if os.environ.get("REPLAYREC_DEBOOTSTRAP_CACHE"):
        return Path(os.environ["REPLAYREC_DEBOOTSTRAP_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "replayrec"


def timed_step(step: str, target: str, action: Callable[[], tuple[str, dict[str, int]]]) -> CheckStep:
    """Run ``action`` (→ detail, numbers) as one check step; an ``InfraError`` makes it a failed step."""
    start = time.perf_counter()
    try:
        detail, numbers = action()
        ok = True
    except InfraError as exc:
        detail, numbers, ok = str(exc), {}, False
    return CheckStep(step, target, ok, round(time.perf_counter() - start, 2), detail, numbers)


def check_offline(
    settings: Settings, *, targets: Sequence[str] | None = None, with_scan: bool = True
) -> list[CheckStep]:
    """Run every offline check on a copy of the infra tree; never raises for a failed check.

    ``targets``: configuration folders relative to ``infra/`` (e.g. ``modules/network``); default: all.
    """
    infra = settings.infra_dir
    steps = [timed_step("fmt", str(infra), lambda: _fmt(settings, infra))]
    cli_config = install_stub(settings)
    tree = check_tree(settings)
    work = settings.state_dir / "infra" / "tfdata"
    folders = [tree / t for t in targets] if targets else configurations(tree)
    for folder in folders:
        rel = str(folder.relative_to(tree))
        env = TerraformEnv(settings, folder, cli_config=cli_config, data_dir=work / rel.replace("/", "__"))
        init = timed_step("init", rel, partial(_init, env))
        steps.append(init)
        if not init.ok:
            continue
        if not _needs_aliases(folder):
            steps.append(timed_step("validate", rel, partial(_validate, env)))
        if (folder / "tests").is_dir():
            steps.append(timed_step("test", rel, partial(_test, env)))
    if with_scan:
        steps.append(timed_step("scan", str(infra), lambda: _scan_step(settings, infra)))
    return steps


def _fmt(settings: Settings, infra: Path) -> tuple[str, dict[str, int]]:
    env = TerraformEnv(settings, infra)
    proc = env.run("fmt", "-check", "-recursive", "-diff", check=False)
    if proc.returncode != 0:
        raise InfraError(f"terraform fmt -check: these files need `terraform fmt`:\n{proc.stdout.strip()}")
    return "formatted", {}


def _init(env: TerraformEnv) -> tuple[str, dict[str, int]]:
    return _last_line(env.init(backend=False).stdout), {}


def _validate(env: TerraformEnv) -> tuple[str, dict[str, int]]:
    report = env.validate()
    return "valid", {"warnings": int(report.get("warning_count", 0))}


def _test(env: TerraformEnv) -> tuple[str, dict[str, int]]:
    result = env.run("test", check=False)
    match = _TEST_SUMMARY.search(result.stdout)
    numbers = {"passed": int(match.group(1)), "failed": int(match.group(2))} if match else {}
    if result.returncode != 0 or not match:
        raise InfraError(
            f"terraform test in {env.directory} failed:\n{_failures(result.stdout + result.stderr)}"
        )
    return _last_line(result.stdout), numbers


def _failures(output: str) -> str:
    keep = [line for line in output.splitlines() if "fail" in line or line.startswith(("Error", "  on "))]
    return "\n".join(keep[-40:]) or output[-2000:]


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def scan(settings: Settings, folder: Path) -> dict[str, Any]:
    """checkov over ``folder`` (Terraform and secrets, offline): its summary and each failed check."""
    binary = settings.checkov_binary
    if not binary.exists():
        raise InfraError(f"checkov is missing: {binary} (make infra-tools)")
    proc = subprocess.run(
        [str(binary), "-d", str(folder), "--framework", "terraform", "secrets", "--skip-download",
         "--quiet", "--compact", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    try:
        raw = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise InfraError(
            f"checkov printed no JSON (status {proc.returncode}): {proc.stderr.strip()[-500:]}"
        ) from exc
    reports = raw if isinstance(raw, list) else [raw]
    summary = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0}
    failed: list[dict[str, Any]] = []
    for report in reports:
        for key in summary:
            summary[key] += int(report.get("summary", {}).get(key, 0))
        for check in report.get("results", {}).get("failed_checks", []):
            failed.append(
                {
                    "check": check.get("check_id"),
                    "name": check.get("check_name"),
                    "file": check.get("file_path"),
                    "lines": check.get("file_line_range"),
                    "resource": check.get("resource"),
                }
            )
    return {"summary": summary, "failed": failed}


def _scan_step(settings: Settings, infra: Path) -> tuple[str, dict[str, int]]:
    result = scan(settings, infra)
    summary = result["summary"]
    if result["failed"] or summary["parsing_errors"]:
        listing = "\n".join(
            f"{f['check']} {f['file']}:{f['lines']} {f['resource']}: {f['name']}" for f in result["failed"]
        )
        raise InfraError(
            f"checkov: {summary['failed']} failed, {summary['parsing_errors']} files it could not parse"
            f"\n{listing}"
        )
    return f"{summary['passed']} passed, {summary['skipped']} skipped (justified in place)", summary


def steps_as_dicts(steps: Sequence[CheckStep]) -> list[dict[str, Any]]:
    """The steps as plain dicts (for ``--json``)."""
    return [asdict(s) for s in steps]
