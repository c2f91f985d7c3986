"""Run the ``replayrec`` CLI as a user would: a separate process with its own state and data directories."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["run_cli"]


def run_cli(
    args: Sequence[str], state_dir: Path | None = None, data_dir: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``python -m replayrec ARGS`` with ``REPLAYREC_STATE_DIR`` / ``REPLAYREC_DATA_DIR`` set when given and
    any ambient ``MLFLOW_TRACKING_URI`` removed; stdout and stderr are captured as text."""
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    if state_dir is not None:
        env["REPLAYREC_STATE_DIR"] = str(state_dir)
    if data_dir is not None:
        env["REPLAYREC_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "replayrec", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
