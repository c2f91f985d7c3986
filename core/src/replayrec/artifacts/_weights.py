"""Weights as named arrays: written as safetensors, read with numpy (serving needs no torch, and no
pickled code ever runs)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from replayrec.artifacts._files import ARTIFACT_WEIGHTS, LEGACY_WEIGHTS
from replayrec.errors import ConfigError

__all__ = ["load_weights", "save_weights"]


def _as_array(value: Any) -> npt.NDArray[Any]:
    if hasattr(value, "detach"):  # a torch tensor: no torch import needed to convert it
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(value)


def save_weights(directory: Path, state: Mapping[str, Any]) -> Path:
    """Write ``state`` (name → numpy array or torch tensor) as ``directory/model.safetensors``."""
    directory.mkdir(parents=True, exist_ok=True)
    file = directory / ARTIFACT_WEIGHTS
    save_file({str(k): _as_array(v) for k, v in state.items()}, str(file))
    return file


def load_weights(path: Path, who: str) -> dict[str, npt.NDArray[Any]]:
    """The weights of an artifact directory (or a ``.safetensors`` file) as numpy arrays, read without
    torch and without executing pickled code; ``who`` names the plugin in errors."""
    file = path / ARTIFACT_WEIGHTS if path.is_dir() else path
    if not file.is_file():
        legacy = path / LEGACY_WEIGHTS if path.is_dir() else path
        hint = (
            f" ({legacy.name} is an older torch state dict, no longer read: retrain the model)"
            if legacy.is_file()
            else ""
        )
        raise ConfigError(f"{who}: no model file at {file}{hint}")
    try:
        return dict(load_file(str(file)))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ConfigError(f"{who}: cannot load {file}: {type(exc).__name__}: {exc}") from None
