"""What an environment would create, counted offline: a one-run ``terraform test`` plan with mocked
providers (the schema-only stub supplies the schema), read from its verbose plan output."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from replayrec.config import Settings
from replayrec.infra._check import check_tree, install_stub
from replayrec.infra._terraform import InfraError, TerraformEnv

__all__ = ["footprint"]

_CREATED = re.compile(r"# (\S+) will be created")
_READ = re.compile(r"# (\S+) will be read during apply")
_ALIAS = re.compile(r'provider\s+"openstack"\s*\{[^}]*?alias\s*=\s*"(\w+)"', re.S)
_FILE = "zz_footprint.tftest.hcl"


def _resource_type(address: str) -> str:
    parts = [p for p in re.sub(r"\[[^\]]*\]", "", address).split(".") if p.startswith("openstack_")]
    return parts[0] if parts else address


def footprint(
    settings: Settings,
    env: str,
    *,
    var_files: Sequence[Path] = (),
    variables: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Resources and data sources ``env`` plans from scratch, by type, with the given variables.

    Without ``var_files`` the environment's ``example.tfvars`` is used (the documented example values).
    """
    TerraformEnv(settings, env)  # the environment must exist
    folder = check_tree(settings) / "envs" / env
    aliases = sorted({a for p in folder.glob("*.tf") for a in _ALIAS.findall(p.read_text())})
    mocks = 'mock_provider "openstack" {}\n' + "".join(
        f'mock_provider "openstack" {{\n  alias = "{a}"\n}}\n' for a in aliases
    )
    (folder / "tests").mkdir(exist_ok=True)
    (folder / "tests" / _FILE).write_text(mocks + 'run "footprint" {\n  command = plan\n}\n')
    files = [p.resolve() for p in var_files] or (
        [folder / "example.tfvars"] if (folder / "example.tfvars").is_file() else []
    )
    tf = TerraformEnv(
        settings,
        folder,
        cli_config=install_stub(settings),
        data_dir=settings.state_dir / "infra" / "tfdata" / f"fp__{env}",
    )
    tf.init(backend=False)
    options: dict[str, Any] = {"var_file": [str(p) for p in files]} if files else {}
    if variables:
        options["var"] = [f"{k}={v}" for k, v in variables.items()]
    result = tf.run("test", "-verbose", f"-filter=tests/{_FILE}", check=False, **options)
    if result.returncode != 0:
        raise InfraError(
            f"planning {env} with mocked providers failed:\n{(result.stdout + result.stderr)[-3000:]}"
        )
    created = _CREATED.findall(result.stdout)
    reads = _READ.findall(result.stdout)
    by_type = Counter(_resource_type(a) for a in created)
    return {
        "env": env,
        "var_files": [str(p) for p in files],
        "resources": dict(sorted(by_type.items())),
        "total": sum(by_type.values()),
        "data_sources": dict(sorted(Counter(_resource_type(a) for a in reads).items())),
        "addresses": sorted(created),
    }
