"""``replayrec train``: drive a plugin's training job with Lightning, track it in MLflow, save the artifact.

Lightning, torch and MLflow are imported only here, inside the functions, so the rest of core (and serving)
never pays for them.
"""

from __future__ import annotations

import json
import logging
import resource
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from replayrec import CORE_API
from replayrec.artifacts import ARTIFACT_HISTORY, ARTIFACT_IDS, ARTIFACT_META, new_artifact_dir
from replayrec.config import Settings
from replayrec.data import DATASETS, Dataset, Interactions
from replayrec.errors import ConfigError, PluginError, describe_validation_error
from replayrec.evaluation import build_split, evaluate
from replayrec.plugins import load_trainer
from replayrec.registry import ModelRegistry, StageResolver, git_commit, registered_model_name, tracking_uri
from replayrec.stages import Recall, StageContext
from replayrec.training._contract import TrainData, TrainingJob
from replayrec.training._validation import validation_set

__all__ = [
    "TrainOptions",
    "finish_training",
    "make_callback",
    "make_logger",
    "prepare_job",
    "quiet_fit",
    "run_training",
    "trainer_kwargs",
]


@dataclass(frozen=True)
class TrainOptions:
    config: Mapping[str, Any] = field(default_factory=dict)
    epochs: int | None = None
    protocol: str | None = None
    val_users: int = 10_000
    tracking_uri: str | None = None
    progress: bool = True
    #: Lightning accelerator of the single-process path (``cpu``, ``gpu``, ``auto``)
    accelerator: str = "cpu"


def _experiment(uri: str, name: str, settings: Settings) -> str:
    import mlflow

    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    location = (settings.state_dir / "mlartifacts").resolve().as_uri() if uri.startswith("sqlite") else None
    return str(client.create_experiment(name, artifact_location=location))


def _build_job(plugin: str, config: Mapping[str, Any], data: TrainData) -> TrainingJob:
    build = load_trainer(plugin)
    try:
        job = build(dict(config), data)
    except ValidationError as exc:
        problems = describe_validation_error(exc)
        raise ConfigError(f"invalid training config for {plugin!r}: {problems}") from None
    if not isinstance(job, TrainingJob):
        raise PluginError(f"trainer {plugin!r} returned {type(job).__name__}, not a TrainingJob")
    return job


def _validation_callback(
    job: TrainingJob,
    data: TrainData,
    monitor: str,
    every: int,
    patience: int,
    history: list[dict[str, float]],
    lr_decay: float = 1.0,
) -> Any:
    import lightning as L
    import torch

    own = getattr(job, "validation_set", None)  # a job that trains on data.valid keeps its own hold-out
    valid = own() if callable(own) else data.valid

    class FullRankingValidation(L.Callback):
        """Every ``every`` epochs: exact full-ranking validation, logging, early stopping, best weights.

        Under data-parallel training (Ray Train) only rank 0 validates; whether the check improved is
        broadcast, so every rank decays its learning rate and stops at the same epoch."""

        def __init__(self) -> None:
            self.best = float("-inf")
            self.best_epoch = -1
            self.bad_checks = 0
            self.best_state: dict[str, Any] | None = None

        def _check(self, trainer: Any, pl_module: Any, row: dict[str, float]) -> bool:
            """Rank 0: validate, log, keep the best weights; returns whether ``monitor`` improved."""
            if valid is None:
                return False
            epoch = trainer.current_epoch
            res = evaluate(
                _validation_model(job),
                valid,
                n_items=data.catalog.n_items,
                history_len=data.history_len,
                ks=(10, 20, 200),
                n_boot=0,
            )
            vals = {f"val_{k}": v for k, v in res.metrics.items() if k != "auc"}
            row.update(vals)
            if trainer.logger is not None:  # MLflow metric names allow no '@'
                trainer.logger.log_metrics(
                    {k.replace("@", "_at_"): v for k, v in vals.items()}, step=epoch + 1
                )
            score = res.metrics[monitor]
            if score <= self.best:
                return False
            self.best, self.best_epoch = score, epoch + 1
            self.best_state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
            return True

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            epoch = trainer.current_epoch
            row: dict[str, float] = {"epoch": float(epoch + 1)}
            loss = trainer.callback_metrics.get("train_loss")
            if loss is not None:
                row["train_loss"] = float(loss)
            last = epoch + 1 >= (trainer.max_epochs or 0)
            if valid is not None and ((epoch + 1) % every == 0 or last):
                improved = self._check(trainer, pl_module, row) if trainer.global_rank == 0 else False
                if trainer.world_size > 1:
                    improved = bool(trainer.strategy.broadcast(improved, src=0))
                if improved:
                    self.bad_checks = 0
                else:
                    self.bad_checks += 1
                    if lr_decay < 1.0:  # reduce the learning rate on a plateau
                        for opt in trainer.optimizers:
                            for group in opt.param_groups:
                                group["lr"] *= lr_decay
                    if self.bad_checks >= patience:
                        trainer.should_stop = True
            history.append(row)

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            if self.best_state is not None:
                with torch.no_grad():
                    pl_module.load_state_dict(self.best_state)

    return FullRankingValidation()


def _validation_model(job: TrainingJob) -> Any:
    make = getattr(job, "validation_model", None)
    if callable(make):
        return make()
    stage = job.stage()
    if not isinstance(stage, Recall):
        raise PluginError(f"{job.name}: a {stage.kind} stage needs validation_model() for validation")
    return stage


def _window(fit: Interactions) -> dict[str, int]:
    """The events a model was fitted on, as times (what the monitor compares the live traffic with)."""
    ts = fit.timestamp
    if not len(ts):
        return {"events": 0}
    return {"from": int(ts.min()), "until": int(ts.max()) + 1, "events": len(ts)}


def _curves(history: list[dict[str, float]], path: Path, monitor: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax1 = plt.subplots(figsize=(7, 4), dpi=110)
    ep = [h["epoch"] for h in history if "train_loss" in h]
    ax1.plot(
        ep, [h["train_loss"] for h in history if "train_loss" in h], color="tab:blue", label="train loss"
    )
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("train loss", color="tab:blue")
    ax2 = ax1.twinx()
    vals = [(h["epoch"], h[f"val_{monitor}"]) for h in history if f"val_{monitor}" in h]
    if vals:
        ax2.plot(*zip(*vals, strict=True), "o-", color="tab:orange", label=f"val {monitor}")
    ax2.set_ylabel(f"validation {monitor}", color="tab:orange")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plugin_version(job: TrainingJob) -> str | None:
    top = type(job).__module__.split(".")[0]
    try:
        return version(top.replace("_", "-"))
    except PackageNotFoundError:
        return None


@dataclass
class _Prepared:
    plugin: str
    ds: Dataset
    protocol: str
    data: TrainData
    job: TrainingJob
    cfg: dict[str, Any]
    monitor: str
    uri: str


def prepare_job(plugin: str, ds: Dataset, settings: Settings, opts: TrainOptions) -> _Prepared:
    """Split the data, build the plugin's job: the same in one process and in every Ray Train worker."""
    protocol = opts.protocol or DATASETS[ds.name].protocol
    split = build_split(ds, protocol)
    fit, valid = validation_set(split, settings.seed, opts.val_users)
    uri = tracking_uri(settings, opts.tracking_uri)
    context = StageContext(ds.catalog, fit, seed=settings.seed)
    resolver = StageResolver(settings, ds.name, context, uri, protocol)
    data = TrainData(ds.name, protocol, ds.catalog, fit, valid, split.history_len, settings.seed, resolver)
    config = dict(opts.config)
    if opts.epochs is not None:
        config["epochs"] = opts.epochs
    job = _build_job(plugin, config, data)
    cfg = job.config.model_dump() if hasattr(job.config, "model_dump") else dict(config)
    return _Prepared(plugin, ds, protocol, data, job, cfg, str(cfg.get("monitor", "ndcg@20")), uri)


def make_callback(p: _Prepared, history: list[dict[str, float]]) -> Any:
    cfg = p.cfg
    return _validation_callback(
        p.job,
        p.data,
        p.monitor,
        int(cfg.get("eval_every", 1)),
        int(cfg.get("patience", 5)),
        history,
        float(cfg.get("lr_decay_on_plateau", 1.0)),
    )


def make_logger(p: _Prepared, settings: Settings, stamp: str, extra: Mapping[str, Any]) -> Any:
    from lightning.pytorch.loggers import MLFlowLogger

    exp_name = f"replayrec-{p.plugin}"
    _experiment(p.uri, exp_name, settings)
    logger = MLFlowLogger(
        experiment_name=exp_name, tracking_uri=p.uri, run_name=f"{p.plugin}-{p.ds.name}-{stamp}"
    )
    logger.log_hyperparams(
        {
            "dataset": p.ds.name,
            "protocol": p.protocol,
            "fit_events": len(p.data.fit),
            "val_users": len(p.data.valid) if p.data.valid is not None else 0,
            "core_api": CORE_API,
            "plugin": p.plugin,
            **extra,
        }
    )
    return logger


def trainer_kwargs(p: _Prepared, progress: bool) -> dict[str, Any]:
    """Lightning ``Trainer`` arguments shared by the single-process and the Ray Train paths."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return {
        "max_epochs": int(p.cfg.get("epochs", 1)),
        "accelerator": "cpu",
        "enable_checkpointing": False,
        "num_sanity_val_steps": 0,
        "limit_val_batches": 0,
        "enable_model_summary": False,
        "enable_progress_bar": progress,
        "log_every_n_steps": 1,
        "deterministic": False,
    }


def quiet_fit(trainer: Any, p: _Prepared, loader: Any) -> float:
    """``trainer.fit`` with Lightning's known-harmless warnings silenced; returns seconds."""
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(does not have many workers|Sparse|IterableDataset).*")
        warnings.filterwarnings("ignore", message=".*(LeafSpec|litlogger).*")
        trainer.fit(p.job.lightning_module(), train_dataloaders=loader)
    return time.perf_counter() - started


def finish_training(
    p: _Prepared,
    settings: Settings,
    stamp: str,
    run_id: str,
    history: list[dict[str, float]],
    best_epoch: int,
    epochs_run: int,
    seconds: float,
    extra_meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Export the artifact, write its metadata, log it to the MLflow run and register a model version."""
    plugin, ds, monitor = p.plugin, p.ds, p.monitor
    artifact = new_artifact_dir(settings, plugin, ds.name, stamp, run_id)
    stage_config = dict(p.job.export(artifact))
    best = {
        k[4:]: v
        for k, v in max(
            (h for h in history if f"val_{monitor}" in h), key=lambda h: h[f"val_{monitor}"], default={}
        ).items()
        if k.startswith("val_")
    }
    meta = {
        "plugin": plugin,
        "plugin_version": _plugin_version(p.job),
        "core_api": CORE_API,
        "dataset": ds.name,
        "dataset_fingerprint": ds.fingerprint,
        "git_commit": git_commit(),
        "protocol": p.protocol,
        "train_config": p.cfg,
        "stage_config": stage_config,
        "val_metrics": best,
        "train_window": _window(p.data.fit),
        "best_epoch": best_epoch,
        "epochs_run": epochs_run,
        "mlflow_run_id": run_id,
        "tracking_uri": p.uri,
        "created": stamp,
        "train_seconds": round(seconds, 2),
        **(extra_meta or {}),
    }
    (artifact / ARTIFACT_META).write_text(json.dumps(meta, indent=2, sort_keys=True))
    (artifact / ARTIFACT_HISTORY).write_text(json.dumps(history, indent=2))
    # dense id -> the dataset's raw id, so the model can be served against the shop's own ids
    ids = {"items": [str(x) for x in ds.catalog.raw_ids], "users": [str(x) for x in ds.users["raw_id"]]}
    (artifact / ARTIFACT_IDS).write_text(json.dumps(ids))
    _curves(history, artifact / "curves.png", monitor)

    registry = ModelRegistry(p.uri)
    registry.client.log_artifacts(run_id, str(artifact))
    registry.client.set_tag(run_id, "replayrec.artifact", str(artifact))
    version = registry.register(artifact, run_id)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "artifact": str(artifact),
        "run_id": run_id,
        "tracking_uri": p.uri,
        "registered_model": registered_model_name(plugin),
        "model_version": version.version,
        "plugin": plugin,
        "dataset": ds.name,
        "protocol": p.protocol,
        "epochs_run": epochs_run,
        "best_epoch": best_epoch,
        "train_seconds": round(seconds, 2),
        "seconds_per_epoch": round(seconds / max(epochs_run, 1), 3),
        "peak_rss_mb": round(peak_mb, 1),
        "val": best,
        "history": history,
    }


def run_training(plugin: str, ds: Dataset, settings: Settings, opts: TrainOptions) -> dict[str, Any]:
    """Train ``plugin`` on ``ds`` in this process; returns a summary (artifact, run id, version, metrics)."""
    import lightning as L

    p = prepare_job(plugin, ds, settings, opts)
    history: list[dict[str, float]] = []
    callback = make_callback(p, history)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    logger = make_logger(p, settings, stamp, {"workers": 1})
    kwargs = trainer_kwargs(p, opts.progress)
    kwargs["accelerator"] = opts.accelerator
    trainer = L.Trainer(devices=1, logger=logger, callbacks=[callback], **kwargs)
    seconds = quiet_fit(trainer, p, p.job.train_dataloader())
    return finish_training(
        p,
        settings,
        stamp,
        str(logger.run_id),
        history,
        callback.best_epoch,
        int(trainer.current_epoch),
        seconds,
    )
