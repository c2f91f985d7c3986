"""`replayrec plugins new` renders a plugin whose own contract tests pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from replayrec.errors import ConfigError
from replayrec.scaffold import core_range, new_plugin


def test_template_renders_a_working_plugin(tmp_path: Path) -> None:
    folder = new_plugin("coldstart", "recall", tmp_path)
    assert (folder / "pyproject.toml").read_text().count(
        'coldstart = "replayrec_recall_coldstart.stage:ColdstartRecall"'
    ) == 1
    assert (folder / "CHANGELOG.md").is_file()
    assert f'"replayrec-core{core_range()}"' in (folder / "pyproject.toml").read_text()
    assert core_range("0.5.0") == ">=0.5,<0.6"
    env = {**os.environ, "PYTHONPATH": str(folder / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " passed" in proc.stdout


def test_template_refuses_to_overwrite_or_bad_names(tmp_path: Path) -> None:
    new_plugin("abc", "recall", tmp_path)
    with pytest.raises(ConfigError, match="already exists"):
        new_plugin("abc", "recall", tmp_path)
    with pytest.raises(ConfigError, match="must match"):
        new_plugin("Bad-Name", "recall", tmp_path)
