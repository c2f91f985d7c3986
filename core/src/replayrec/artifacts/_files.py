"""Where artifacts live and what their JSON files hold (the one place the layout is written down)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from replayrec.config import Settings
from replayrec.errors import ConfigError

__all__ = [
    "ARTIFACT_HISTORY",
    "ARTIFACT_IDS",
    "ARTIFACT_META",
    "ARTIFACT_UPSTREAM",
    "ARTIFACT_WEIGHTS",
    "LEGACY_WEIGHTS",
    "artifact_meta",
    "artifact_stage_config",
    "artifacts_dir",
    "check_protocol",
    "latest_artifact",
    "new_artifact_dir",
    "read_upstream",
]

ARTIFACT_WEIGHTS = "model.safetensors"  # tensors by name, read with numpy (safetensors: no pickle, no torch)
LEGACY_WEIGHTS = "model.pt"  # artifacts before core 0.5 (a torch state dict): refused with a hint
ARTIFACT_META = "meta.json"  # plugin, config, dataset, metrics (written by core)
ARTIFACT_IDS = "ids.json"  # {"items": [raw id of dense item 0, ...], "users": [...]} (written by core)
ARTIFACT_HISTORY = "history.json"  # the training curve, one row per epoch
#: a rank / rerank model's upstream stages, as resolved cascade specs: {"recall": {...}, "recall_k": 200, ...}
ARTIFACT_UPSTREAM = "upstream.json"


def artifacts_dir(settings: Settings, plugin: str, dataset: str) -> Path:
    """The folder holding every artifact of ``plugin`` trained on ``dataset``."""
    return settings.state_dir / "artifacts" / plugin / dataset


def new_artifact_dir(settings: Settings, plugin: str, dataset: str, stamp: str, run_id: str) -> Path:
    """A new artifact's directory: the UTC ``stamp`` first, so names sort by training time."""
    return artifacts_dir(settings, plugin, dataset) / f"{stamp}-{run_id[:8]}"


def latest_artifact(settings: Settings, plugin: str, dataset: str, protocol: str | None = None) -> Path:
    """The newest complete artifact (one with its ``meta.json``); with ``protocol``, the newest trained on
    that protocol's training events (an artifact that does not record its protocol counts for any)."""
    root = artifacts_dir(settings, plugin, dataset)
    found = sorted(p for p in root.glob("*") if (p / ARTIFACT_META).is_file()) if root.is_dir() else []
    if protocol is not None:
        found = [p for p in found if artifact_meta(p).get("protocol", protocol) == protocol]
    if not found:
        under = f" on the {protocol} protocol" if protocol is not None else ""
        flag = f" --protocol {protocol}" if protocol is not None else ""
        raise ConfigError(
            f"no trained {plugin!r} model for {dataset}{under} under {root}: run `replayrec train {plugin} "
            f"--dataset {dataset}{flag}`"
        )
    return found[-1]


def check_protocol(path: Path, protocol: str) -> None:
    """Refuse a model trained on another protocol's training events: a model trained under leave-one-out
    has seen other users' events of the temporal test period, one trained before the temporal cut has not
    seen what leave-one-out trains on, so neither is evaluated like for like on the other."""
    trained = artifact_meta(path).get("protocol")
    if trained is not None and trained != protocol:
        raise ConfigError(
            f"model {path} was trained on the {trained!r} protocol's training events, not {protocol!r}'s: "
            f"train one with --protocol {protocol}"
        )


def _json_object(file: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file} must hold a JSON object ({what})")
    return data


def artifact_meta(path: Path) -> dict[str, Any]:
    """``meta.json`` of an artifact directory, with a clear error when it is not one."""
    file = path / ARTIFACT_META
    if not file.is_file():
        raise ConfigError(f"{path} is not a replayrec model artifact (no {ARTIFACT_META})")
    return _json_object(file, "the artifact's metadata")


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


def read_upstream(path: Path, kind: str = "rank/rerank") -> dict[str, Any]:
    """``upstream.json`` of a trained rank / rerank model: the stages it was trained behind."""
    file = path / ARTIFACT_UPSTREAM
    if not file.is_file():
        raise ConfigError(f"{path} has no {ARTIFACT_UPSTREAM}: not a trained {kind} model")
    up = _json_object(file, "the upstream stages")
    if "recall" not in up or "recall_k" not in up:
        raise ConfigError(f"{file} lacks 'recall' / 'recall_k'")
    return up
