"""Model references: an artifact directory, or ``<plugin>@<alias>``.

``<plugin>@latest`` is the newest artifact of that plugin trained on the dataset in the state directory;
any other alias is looked up in the MLflow model registry (registered model ``replayrec-<plugin>``), where
every ``replayrec train`` run registers its artifact as a new version.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy.typing as npt

from replayrec.config import Settings
from replayrec.errors import ConfigError

__all__ = [
    "REF_PATTERN",
    "artifact_meta",
    "artifact_stage_config",
    "artifacts_dir",
    "is_model_ref",
    "latest_artifact",
    "load_weights",
    "registered_model_name",
    "resolve_model",
]

REF_PATTERN = re.compile(r"^(?P<plugin>[A-Za-z][\w-]*)@(?P<alias>[A-Za-z][\w.-]*)$")
_META = "meta.json"


def registered_model_name(plugin: str) -> str:
    return f"replayrec-{plugin}"


def artifacts_dir(settings: Settings, plugin: str, dataset: str) -> Path:
    return settings.state_dir / "artifacts" / plugin / dataset


def is_model_ref(value: str) -> bool:
    return REF_PATTERN.match(value) is not None


def artifact_meta(path: Path) -> dict[str, Any]:
    """``meta.json`` of an artifact directory, with a clear error when it is not one."""
    file = path / _META
    if not file.is_file():
        raise ConfigError(f"{path} is not a replayrec model artifact (no {_META})")
    try:
        meta = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise ConfigError(f"{file} must hold a JSON object")
    return meta


def artifact_stage_config(
    path: Path, dataset: str | None = None, plugin: str | None = None
) -> dict[str, Any]:
    """The serving config saved with an artifact, after checking its dataset and plugin."""
    meta = artifact_meta(path)
    if dataset is not None and meta.get("dataset") != dataset:
        raise ConfigError(f"model {path} was trained on {meta.get('dataset')!r}, not {dataset!r}")
    if plugin is not None and meta.get("plugin") != plugin:
        raise ConfigError(f"model {path} is a {meta.get('plugin')!r} model, not {plugin!r}")
    return dict(meta.get("stage_config", {}))


def load_weights(path: Path, who: str) -> dict[str, npt.NDArray[Any]]:
    """``model.pt`` (an artifact directory holding it, or the file) as numpy arrays, read with
    ``torch.load(weights_only=True)`` so no pickled code runs; ``who`` names the plugin in errors."""
    import torch

    file = path / "model.pt" if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(f"{who}: no model file at {file}")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"{who}: cannot load {file}: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{who}: {file} is not a state dict of tensors")
    return {str(k): v.detach().cpu().numpy() for k, v in state.items()}


def latest_artifact(settings: Settings, plugin: str, dataset: str) -> Path:
    """The newest complete artifact (directory names start with a UTC timestamp)."""
    root = artifacts_dir(settings, plugin, dataset)
    found = sorted(p for p in root.glob("*") if (p / _META).is_file()) if root.is_dir() else []
    if not found:
        raise ConfigError(
            f"no trained {plugin!r} model for {dataset} under {root}: run `replayrec train {plugin} "
            f"--dataset {dataset}`"
        )
    return found[-1]


def _from_registry(settings: Settings, plugin: str, alias: str, tracking_uri: str | None) -> Path:
    from replayrec.registry._mlflow import ModelRegistry
    from replayrec.training._runner import tracking_uri as default_uri

    found = ModelRegistry(default_uri(settings, tracking_uri)).by_alias(plugin, alias)
    if found is None:
        raise ConfigError(
            f"model reference {plugin}@{alias}: no such alias in the registry "
            f"({registered_model_name(plugin)} has no alias {alias!r})"
        )
    return found.artifact


def resolve_model(
    ref: str | Path,
    settings: Settings,
    dataset: str,
    plugin: str | None = None,
    tracking_uri: str | None = None,
) -> Path:
    """The artifact directory ``ref`` names, checked to be a ``plugin`` model trained on ``dataset``."""
    text = str(ref)
    m = REF_PATTERN.match(text)
    if m is not None and not Path(text).exists():
        name, alias = m["plugin"], m["alias"]
        if plugin is not None and name != plugin:
            raise ConfigError(f"model reference {text!r} names plugin {name!r}, expected {plugin!r}")
        if alias == "latest":
            path = latest_artifact(settings, name, dataset)
        else:
            path = _from_registry(settings, name, alias, tracking_uri)
        plugin = name
    else:
        path = Path(text)
        if not path.exists():
            raise ConfigError(
                f"model {text!r} is neither an artifact directory nor a <plugin>@<alias> reference"
            )
    artifact_stage_config(path, dataset, plugin)
    return path.resolve()
