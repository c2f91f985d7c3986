"""The LightningModule: EASE's closed form as a one-step Lightning run.

Core's runner drives every trainer through Lightning (MLflow logger, the full-ranking validation callback,
the artifact); EASE has no parameters and no optimiser, so its single training step is the whole fit."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import lightning as L

from replayrec_recall_ease.config import EaseTrainConfig

__all__ = ["EaseModule", "MetricLog"]

#: ``log(metrics, step)``: what the fit reports (to the run's logger, when there is one)
MetricLog = Callable[[Mapping[str, float], int], None]


class EaseModule(L.LightningModule):
    def __init__(self, config: EaseTrainConfig, fit: Callable[[MetricLog], None]) -> None:
        super().__init__()
        self.automatic_optimization = False  # nothing to optimise: the step returns no loss
        self.config = config
        self.save_hyperparameters(config.model_dump())
        self._fit = fit

    def setup(self, stage: str) -> None:
        # the closed form has no optimiser: Lightning's warning saying so is expected (the runner fits
        # inside warnings.catch_warnings, which drops this filter afterwards)
        warnings.filterwarnings("ignore", message=r".*configure_optimizers.* returned `None`.*")

    def training_step(self, batch: Any, batch_idx: int) -> None:
        self._fit(self._log)

    def _log(self, metrics: Mapping[str, float], step: int) -> None:
        if self.logger is not None:
            self.logger.log_metrics(dict(metrics), step=step)

    def configure_optimizers(self) -> None:
        return None
