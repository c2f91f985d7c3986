"""Train a plugin: in this process (Lightning + MLflow) or under Ray Train, with a typed summary."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from replayrec.application._datasets import open_dataset
from replayrec.config import Settings
from replayrec.data import Dataset
from replayrec.errors import ConfigError
from replayrec.plugins import load_trainer
from replayrec.training import TrainOptions, run_training, run_training_ray

__all__ = ["TrainRequest", "TrainResult", "read_training_config", "read_training_profile", "train_model"]

log = logging.getLogger("replayrec.application")


def _yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{what} {path} must be a mapping of keys to values")
    return loaded


def read_training_config(path: Path | None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A training config YAML (a mapping of keys to values) with ``overrides`` on top."""
    config = _yaml_mapping(path, "training config") if path is not None else {}
    config.update(overrides or {})
    return config


def read_training_profile(path: Path | None) -> dict[str, dict[str, Any]]:
    """A training profile YAML: ``{plugin: training config}`` (e.g. ``configs/demo.yaml``)."""
    if path is None:
        return {}
    data = _yaml_mapping(path, "training profile")
    if not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"training profile {path} must map plugin names to training configs")
    return data


@dataclass(frozen=True)
class TrainRequest:
    """What to train: the plugin, the dataset (default: the default dataset), its config, and where."""

    plugin: str
    dataset: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    protocol: str | None = None
    epochs: int | None = None
    val_users: int = 10_000
    tracking_uri: str | None = None
    progress: bool = False
    accelerator: str = "cpu"
    #: Ray Train with this many workers (``None`` and no ``ray_address``: one process)
    workers: int | None = None
    ray_address: str | None = None
    use_gpu: bool = False


@dataclass(frozen=True)
class TrainResult:
    """A finished training run: the artifact, its MLflow run and registry version, and its numbers."""

    plugin: str
    dataset: str
    protocol: str
    artifact: Path
    run_id: str
    tracking_uri: str
    registered_model: str
    model_version: str
    epochs_run: int
    best_epoch: int
    train_seconds: float
    seconds_per_epoch: float
    peak_rss_mb: float
    val: dict[str, float]
    history: list[dict[str, float]] = field(repr=False)
    workers: int = 1

    @classmethod
    def from_summary(cls, s: Mapping[str, Any]) -> TrainResult:
        keys = cls.__dataclass_fields__
        values = {k: s[k] for k in keys if k in s}
        values["artifact"] = Path(s["artifact"])
        values["model_version"] = str(s["model_version"])
        return cls(**values)

    def to_dict(self, history: bool = False) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if history or k != "history"}
        out["artifact"] = str(self.artifact)
        return out


def train_model(settings: Settings, request: TrainRequest, dataset: Dataset | None = None) -> TrainResult:
    """Train ``request.plugin``; the artifact is saved under the state directory and registered.
    ``dataset``: the already loaded dataset (default: ``request.dataset`` is opened, prepared if needed)."""
    if request.workers is not None and request.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {request.workers}")
    load_trainer(request.plugin)  # fail fast on an unknown plugin, before loading data
    ds = dataset if dataset is not None else open_dataset(settings, request.dataset)
    log.info(f"training {request.plugin} on {ds.name}; tracking in MLflow")
    opts = TrainOptions(
        config=dict(request.config),
        epochs=request.epochs,
        protocol=request.protocol,
        val_users=request.val_users,
        tracking_uri=request.tracking_uri,
        progress=request.progress,
        accelerator=request.accelerator,
    )
    if request.workers is None and request.ray_address is None:
        return TrainResult.from_summary(run_training(request.plugin, ds, settings, opts))
    workers = request.workers or 1
    where = f"on {request.ray_address}" if request.ray_address else "started locally"
    log.info(f"Ray Train: {workers} worker(s) {where}")
    summary = run_training_ray(
        request.plugin, ds, settings, opts, workers, request.ray_address, request.use_gpu
    )
    return TrainResult.from_summary(summary)
