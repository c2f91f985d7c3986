"""``replayrec train``: drive a plugin's training job with Lightning, track it in MLflow, save the artifact.

Lightning, torch and MLflow are imported only here, inside the functions, so the rest of core (and serving)
never pays for them.
"""

from __future__ import annotations

import json
import logging
import os
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
from replayrec.config import Settings
from replayrec.data import DATASETS, Dataset
from replayrec.errors import ConfigError, PluginError
from replayrec.evaluation import build_split, evaluate
from replayrec.plugins import load_trainer
from replayrec.registry import StageResolver, registered_model_name
from replayrec.stages import Recall, StageContext
from replayrec.training._contract import ARTIFACT_IDS, ARTIFACT_META, TrainData, TrainingJob
from replayrec.training._validation import validation_set

__all__ = ["TrainOptions", "run_training", "tracking_uri"]


@dataclass(frozen=True)
class TrainOptions:
    config: Mapping[str, Any] = field(default_factory=dict)
    epochs: int | None = None
    protocol: str | None = None
    val_users: int = 10_000
    tracking_uri: str | None = None
    progress: bool = True


def tracking_uri(settings: Settings, explicit: str | None = None) -> str:
    """``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else a sqlite store in the state directory."""
    if explicit:
        return explicit
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(settings.state_dir / 'mlflow.db').resolve()}"


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
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {'unknown key' if e['type'] == 'extra_forbidden' else e['msg']}"
            for e in exc.errors()
        )
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
        """Every ``every`` epochs: exact full-ranking validation, logging, early stopping, best weights."""

        def __init__(self) -> None:
            self.best = float("-inf")
            self.best_epoch = -1
            self.bad_checks = 0
            self.best_state: dict[str, Any] | None = None

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            epoch = trainer.current_epoch
            row: dict[str, float] = {"epoch": float(epoch + 1)}
            loss = trainer.callback_metrics.get("train_loss")
            if loss is not None:
                row["train_loss"] = float(loss)
            last = epoch + 1 >= (trainer.max_epochs or 0)
            if valid is not None and ((epoch + 1) % every == 0 or last):
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
                if score > self.best:
                    self.best, self.best_epoch, self.bad_checks = score, epoch + 1, 0
                    self.best_state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
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


def _register(client: Any, plugin: str, run_id: str, artifact: Path, meta: Mapping[str, Any]) -> str:
    """Register the artifact as a new version of ``replayrec-<plugin>`` in the MLflow model registry."""
    from mlflow.exceptions import MlflowException

    name = registered_model_name(plugin)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=f"replayrec {plugin} models")
    tags = {
        "replayrec.artifact": str(artifact.resolve()),
        "dataset": str(meta["dataset"]),
        "protocol": str(meta["protocol"]),
        "plugin_version": str(meta["plugin_version"]),
        "core_api": str(meta["core_api"]),
    }
    tags.update({f"val_{k.replace('@', '_at_')}": f"{v:.6f}" for k, v in dict(meta["val_metrics"]).items()})
    mv = client.create_model_version(name, source=f"runs:/{run_id}", run_id=run_id, tags=tags)
    return str(mv.version)


def run_training(plugin: str, ds: Dataset, settings: Settings, opts: TrainOptions) -> dict[str, Any]:
    """Train ``plugin`` on ``ds``; returns a summary (artifact path, run id, metrics, timings)."""
    import lightning as L
    from lightning.pytorch.loggers import MLFlowLogger

    protocol = opts.protocol or DATASETS[ds.name].protocol
    split = build_split(ds, protocol)
    fit, valid = validation_set(split, settings.seed, opts.val_users)
    uri = tracking_uri(settings, opts.tracking_uri)
    resolver = StageResolver(settings, ds.name, StageContext(ds.catalog, fit, seed=settings.seed), uri)
    data = TrainData(ds.name, protocol, ds.catalog, fit, valid, split.history_len, settings.seed, resolver)
    config = dict(opts.config)
    if opts.epochs is not None:
        config["epochs"] = opts.epochs
    job = _build_job(plugin, config, data)
    cfg = job.config.model_dump() if hasattr(job.config, "model_dump") else dict(config)
    monitor = str(cfg.get("monitor", "ndcg@20"))
    history: list[dict[str, float]] = []
    callback = _validation_callback(
        job,
        data,
        monitor,
        int(cfg.get("eval_every", 1)),
        int(cfg.get("patience", 5)),
        history,
        float(cfg.get("lr_decay_on_plateau", 1.0)),
    )
    exp_name = f"replayrec-{plugin}"
    _experiment(uri, exp_name, settings)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    logger = MLFlowLogger(experiment_name=exp_name, tracking_uri=uri, run_name=f"{plugin}-{ds.name}-{stamp}")
    logger.log_hyperparams(
        {
            "dataset": ds.name,
            "protocol": protocol,
            "fit_events": len(fit),
            "val_users": len(valid),
            "core_api": CORE_API,
            "plugin": plugin,
        }
    )
    trainer = L.Trainer(
        max_epochs=int(cfg.get("epochs", 1)),
        accelerator="cpu",
        devices=1,
        logger=logger,
        callbacks=[callback],
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        enable_model_summary=False,
        enable_progress_bar=opts.progress,
        log_every_n_steps=1,
        deterministic=False,
    )
    started = time.perf_counter()
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(does not have many workers|Sparse|IterableDataset).*")
        warnings.filterwarnings("ignore", message=".*(LeafSpec|litlogger).*")
        trainer.fit(job.lightning_module(), train_dataloaders=job.train_dataloader())
    seconds = time.perf_counter() - started
    epochs_run = int(trainer.current_epoch)
    run_id = str(logger.run_id)

    artifact = settings.state_dir / "artifacts" / plugin / ds.name / f"{stamp}-{run_id[:8]}"
    stage_config = dict(job.export(artifact))
    best = {
        k[4:]: v
        for k, v in max(
            (h for h in history if f"val_{monitor}" in h), key=lambda h: h[f"val_{monitor}"], default={}
        ).items()
        if k.startswith("val_")
    }
    meta = {
        "plugin": plugin,
        "plugin_version": _plugin_version(job),
        "core_api": CORE_API,
        "dataset": ds.name,
        "protocol": protocol,
        "train_config": cfg,
        "stage_config": stage_config,
        "val_metrics": best,
        "best_epoch": callback.best_epoch,
        "epochs_run": epochs_run,
        "mlflow_run_id": run_id,
        "tracking_uri": uri,
        "created": stamp,
        "train_seconds": round(seconds, 2),
    }
    (artifact / ARTIFACT_META).write_text(json.dumps(meta, indent=2, sort_keys=True))
    (artifact / "history.json").write_text(json.dumps(history, indent=2))
    # dense id -> the dataset's raw id, so the model can be served against the shop's own ids
    ids = {"items": [str(x) for x in ds.catalog.raw_ids], "users": [str(x) for x in ds.users["raw_id"]]}
    (artifact / ARTIFACT_IDS).write_text(json.dumps(ids))
    _curves(history, artifact / "curves.png", monitor)

    import mlflow

    client = mlflow.MlflowClient(uri)
    client.log_artifacts(run_id, str(artifact))
    client.set_tag(run_id, "replayrec.artifact", str(artifact))
    model_version = _register(client, plugin, run_id, artifact, meta)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "artifact": str(artifact),
        "run_id": run_id,
        "tracking_uri": uri,
        "registered_model": registered_model_name(plugin),
        "model_version": model_version,
        "plugin": plugin,
        "dataset": ds.name,
        "protocol": protocol,
        "epochs_run": epochs_run,
        "best_epoch": callback.best_epoch,
        "train_seconds": round(seconds, 2),
        "seconds_per_epoch": round(seconds / max(epochs_run, 1), 3),
        "peak_rss_mb": round(peak_mb, 1),
        "val": best,
        "history": history,
    }
