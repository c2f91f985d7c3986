"""Artifacts from before core 0.5 hold ``model.pt`` (a torch state dict); serving reads only
``model.safetensors``. The conversion needs torch, so it lives on the training side."""

from __future__ import annotations

from pathlib import Path

from replayrec.artifacts import ARTIFACT_WEIGHTS, LEGACY_WEIGHTS, artifact_meta, save_weights
from replayrec.errors import ConfigError

__all__ = ["convert_legacy_weights"]


def convert_legacy_weights(artifact: Path) -> Path:
    """Write ``model.safetensors`` beside an artifact's ``model.pt`` (read with
    ``torch.load(weights_only=True)``: tensors only, no pickled code); the ``model.pt`` is kept."""
    import torch

    artifact_meta(artifact)  # a clear error when it is not an artifact directory
    target = artifact / ARTIFACT_WEIGHTS
    if target.is_file():
        return target
    legacy = artifact / LEGACY_WEIGHTS
    if not legacy.is_file():
        raise ConfigError(f"{artifact} has neither {ARTIFACT_WEIGHTS} nor {LEGACY_WEIGHTS}")
    try:
        state = torch.load(legacy, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"cannot load {legacy}: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{legacy} is not a state dict of tensors")
    return save_weights(artifact, state)
