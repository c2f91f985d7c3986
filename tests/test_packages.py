"""Cross-package checks: every installed plugin loads; each package has one version source and a CHANGELOG."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

from replayrec.plugins import list_plugins

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [ROOT / "core", *sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))]


def test_every_installed_stage_plugin_loads() -> None:
    broken = [p for p in list_plugins() if not p.ok]
    assert not broken, broken


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_package_has_version_changelog_and_is_installed(package: Path) -> None:
    meta = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    assert version(meta["name"]) == meta["version"], "installed version matches the one version source"
    assert f"## {meta['version']}" in (package / "CHANGELOG.md").read_text()
    if package.name != "core":
        core_req = [d for d in meta["dependencies"] if d.startswith("replayrec-core")]
        assert core_req, "plugins declare the core range they need"
        assert ">=" in core_req[0]
        assert "<" in core_req[0]
