"""``replayrec train <plugin> --workers N``: the same job and LightningModule under Ray Train.

Every worker builds the plugin's job from the dataset (as the single-process runner does), trains it with
``RayDDPStrategy`` (gradients averaged across workers) on its shard of each epoch's batches, and runs the
same validation callback, so early-stopping decisions agree on every rank. Rank 0 logs to MLflow, exports
the artifact and registers the version. Locally Ray starts with N CPU workers; ``address`` joins an
existing cluster (KubeRay in production), where the state directory must be shared storage.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from replayrec.config import Settings
from replayrec.data import Dataset, load_dataset
from replayrec.errors import ConfigError, ReplayrecError
from replayrec.training._runner import (
    TrainOptions,
    finish_training,
    make_callback,
    make_logger,
    prepare_job,
    quiet_fit,
    trainer_kwargs,
)

__all__ = ["ShardedBatches", "run_training_ray"]


class ShardedBatches:
    """Worker ``rank``'s share of an iterable of batches: every ``world``-th batch, the remainder dropped so
    every worker takes the same number of steps (DDP waits for all of them at each step)."""

    def __init__(self, inner: Any, rank: int, world: int) -> None:
        if world < 1 or not 0 <= rank < world:
            raise ValueError(f"bad shard {rank} of {world}")
        self.inner, self.rank, self.world = inner, rank, world

    def __len__(self) -> int:
        return len(self.inner) // self.world

    def __iter__(self) -> Iterator[Any]:
        limit = len(self) * self.world
        for i, batch in enumerate(self.inner):
            if i >= limit:
                break
            if i % self.world == self.rank:
                yield batch


def _worker(config: dict[str, Any]) -> None:
    """Ray Train's ``train_loop_per_worker``."""
    import lightning as L
    import ray.train
    import torch
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, prepare_trainer

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(int(config["threads"]))
    settings = Settings(**config["settings"])
    ds = load_dataset(config["dataset"], settings)
    opts = TrainOptions(**config["opts"])
    p = prepare_job(config["plugin"], ds, settings, opts)
    history: list[dict[str, float]] = []
    callback = make_callback(p, history)
    stamp = config["stamp"]
    logger = make_logger(p, settings, stamp, {"workers": world}) if rank == 0 else False
    kwargs = trainer_kwargs(p, progress=False)
    kwargs["accelerator"] = "gpu" if config["use_gpu"] else "cpu"
    trainer = L.Trainer(
        devices="auto",
        strategy=RayDDPStrategy(),  # type: ignore[no-untyped-call]
        plugins=[RayLightningEnvironment()],  # type: ignore[no-untyped-call]
        logger=logger,
        callbacks=[callback],
        **kwargs,
    )
    trainer = prepare_trainer(trainer)
    seconds = quiet_fit(trainer, p, ShardedBatches(p.job.train_dataloader(), rank, world))
    metrics: dict[str, Any] = {"rank": rank}
    if rank == 0:
        summary = finish_training(
            p,
            settings,
            stamp,
            str(logger.run_id),  # type: ignore[union-attr]
            history,
            callback.best_epoch,
            int(trainer.current_epoch),
            seconds,
            {"workers": world, "distributed": "ray-train-ddp"},
        )
        summary["workers"] = world
        with open(config["summary"], "w") as fh:
            json.dump(summary, fh)
        metrics["train_seconds"] = summary["train_seconds"]
    ray.train.report(metrics)


def run_training_ray(
    plugin: str,
    ds: Dataset,
    settings: Settings,
    opts: TrainOptions,
    workers: int,
    address: str | None = None,
    use_gpu: bool = False,
) -> dict[str, Any]:
    """Train ``plugin`` with ``workers`` Ray Train workers; returns the same summary as ``run_training``."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    ray_dir = (settings.state_dir / "ray").resolve()
    ray_dir.mkdir(parents=True, exist_ok=True)
    summary = ray_dir / f"{plugin}-{stamp}.json"
    threads = max(1, (os.cpu_count() or 1) // workers)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=address,
            num_cpus=None if address else max(workers, os.cpu_count() or 1),
            include_dashboard=False,
            object_store_memory=None if address else 256 * 2**20,
            logging_level=logging.ERROR,
            log_to_driver=False,
        )
    config = {
        "plugin": plugin,
        "dataset": ds.name,
        "settings": {
            "data_dir": str(settings.data_dir),
            "state_dir": str(settings.state_dir),
            "seed": settings.seed,
        },
        "opts": {**asdict(opts), "progress": False, "config": dict(opts.config)},
        "stamp": stamp,
        "summary": str(summary),
        "threads": threads,
        "use_gpu": use_gpu,
    }
    try:
        trainer = TorchTrainer(
            _worker,
            train_loop_config=config,
            scaling_config=ScalingConfig(
                num_workers=workers, use_gpu=use_gpu, resources_per_worker={"CPU": 1}
            ),
            run_config=RunConfig(name=f"{plugin}-{stamp}", storage_path=str(ray_dir)),
        )
        result = trainer.fit()
    finally:
        if started_here:
            ray.shutdown()
    if getattr(result, "error", None) is not None:
        raise ReplayrecError(f"Ray Train failed: {result.error}")
    if not summary.is_file():
        raise ReplayrecError(f"Ray Train finished without rank 0's summary at {summary}")
    out: dict[str, Any] = json.loads(summary.read_text())
    return out
