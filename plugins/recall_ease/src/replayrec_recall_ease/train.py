"""``build(config, data)``: the EASE training job driven by core's ``replayrec train``.

The fit (in the module's single training step): ``XᵀX`` over the ``max_items`` most-interacted items of
``data.fit``; then for each λ (the configured one, or ``lambda_grid`` × the mean diagonal under
``validate``) one Cholesky inverse, ``B``, its pruning to ``neighbours`` per row and, under ``validate``,
full-ranking validation of the pruned (served) ``B`` on the validation requests; the best λ by ``monitor``
is kept. Per-λ numbers go to the MLflow run (``grid_*`` metrics, step = grid position) and to the
artifact's ``ease_fit.json``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from replayrec.artifacts import save_weights
from replayrec.errors import ConfigError
from replayrec.evaluation import EvalSet, evaluate
from replayrec.stages import StageContext
from replayrec.training import TrainData
from replayrec_recall_ease.config import EaseConfig, EaseTrainConfig
from replayrec_recall_ease.model import PrunedFit, closed_form, gram, prune, top_items
from replayrec_recall_ease.module import EaseModule, MetricLog
from replayrec_recall_ease.stage import EaseRecall

__all__ = ["FIT_REPORT", "EaseJob", "build"]

#: the artifact file with the fit's numbers: items kept, λ grid with validation metrics, mass kept, times
FIT_REPORT = "ease_fit.json"
#: validation cut-offs: the runner's
_KS = (10, 20, 200)

log = logging.getLogger(__name__)


class EaseJob:
    name = "ease"

    def __init__(self, config: EaseTrainConfig, data: TrainData) -> None:
        self.config = config
        self.data = data
        self.valid = _sample(data.valid, config.valid_users, data.seed)
        if config.lambda_ == "validate" and self.valid is None:
            raise ConfigError("ease: lambda 'validate' needs validation requests; give lambda=<number>")
        self.module = EaseModule(config, self.fit)
        self.result: PrunedFit | None = None
        self.report: dict[str, Any] = {}

    def lightning_module(self) -> EaseModule:
        return self.module

    def train_dataloader(self) -> list[torch.Tensor]:
        """One placeholder batch: the closed form is one training step."""
        return [torch.zeros(1)]

    def fit(self, log_metrics: MetricLog) -> None:
        """The closed-form fit (see the module docstring); ``log_metrics(metrics, step)`` reports it."""
        cfg, fit = self.config, self.data.fit
        started = time.perf_counter()
        with threadpool_limits(limits=cfg.threads or None):
            items = top_items(fit.item_counts, cfg.max_items)
            if items.size < 2:
                raise ConfigError("ease: fewer than two items with training events")
            g = gram(fit.user_item, items, cfg.dtype)
            gram_seconds = time.perf_counter() - started
            mean_diag = float(np.mean(np.diagonal(g)))
            grid: list[dict[str, float]] = []
            best: tuple[float, PrunedFit] | None = None
            for step, lam in enumerate(self._lambdas(mean_diag), start=1):
                row, pruned = self._one_lambda(g, items, lam, mean_diag)
                log_metrics({f"grid_{k}".replace("@", "_at_"): v for k, v in row.items()}, step)
                grid.append(row)
                score = row.get(f"val_{cfg.monitor}", 0.0)
                if best is None or score > best[0]:  # ties: the earlier (smaller) λ
                    best = (score, pruned)
            del g
        if best is None:  # unreachable: the grid has at least one λ
            raise ConfigError("ease: no lambda to fit")
        self.result = best[1]
        self.report = self._report(items, mean_diag, grid, gram_seconds, time.perf_counter() - started)
        summary = ("lambda", "lambda_relative", "mass_kept", "positive_mass_kept", "gram_seconds")
        log_metrics({k: float(self.report[k]) for k in (*summary, "fit_seconds")}, len(grid))
        log.info(
            "ease: %d items, lambda %.1f (%.2f x mean diag %.1f), mass kept %.3f, %.1fs",
            items.size,
            self.result.lam,
            self.result.lam / mean_diag,
            mean_diag,
            self.result.mass_kept,
            self.report["fit_seconds"],
        )

    def _report(
        self,
        items: np.ndarray[Any, Any],
        mean_diag: float,
        grid: list[dict[str, float]],
        gram_seconds: float,
        seconds: float,
    ) -> dict[str, Any]:
        """What ``ease_fit.json`` holds: the items fitted, the chosen λ, the pruning, the grid, times."""
        chosen, fit = self.result, self.data.fit
        if chosen is None:  # unreachable: called after the fit
            raise ConfigError("ease: not fitted yet")
        return {
            "items_fitted": int(items.size),
            "items_in_catalogue": int(fit.n_items),
            "fit_events_of_fitted_items": int(fit.item_counts[items].sum()),
            "fit_events": len(fit),
            "mean_diag": mean_diag,
            "dtype": self.config.dtype,
            "threads": self.config.threads,
            "lambda": chosen.lam,
            "lambda_relative": chosen.lam / mean_diag,
            "neighbours": self.config.neighbours,
            "nnz": int(chosen.weights.data.size),
            "mass_kept": chosen.mass_kept,
            "positive_mass_kept": chosen.positive_mass_kept,
            "gram_seconds": round(gram_seconds, 2),
            "fit_seconds": round(seconds, 2),
            "grid": grid,
        }

    def _lambdas(self, mean_diag: float) -> list[float]:
        if self.config.lambda_ != "validate":
            return [float(self.config.lambda_)]
        return [r * mean_diag for r in self.config.lambda_grid]

    def _one_lambda(
        self, g: np.ndarray[Any, Any], items: np.ndarray[Any, Any], lam: float, mean_diag: float
    ) -> tuple[dict[str, float], PrunedFit]:
        t0 = time.perf_counter()
        b = closed_form(g, lam)
        inverse_seconds = time.perf_counter() - t0
        pruned = prune(b, items, self.data.fit.item_counts, lam, self.config.neighbours)
        del b
        row = {
            "lambda": lam,
            "lambda_relative": lam / mean_diag,
            "inverse_seconds": round(inverse_seconds, 2),
            "seconds": round(time.perf_counter() - t0, 2),
            "mass_kept": pruned.mass_kept,
            "positive_mass_kept": pruned.positive_mass_kept,
        }
        if self.config.lambda_ == "validate" and self.valid is not None:
            res = evaluate(
                self._stage(pruned),
                self.valid,
                n_items=self.data.catalog.n_items,
                history_len=self.data.history_len,
                ks=_KS,
                n_boot=0,
            )
            row.update({f"val_{k}": v for k, v in res.metrics.items() if k != "auc"})
            row["val_seconds"] = round(res.seconds, 2)
            log.info(
                "ease: lambda %.1f: %s %.4f", lam, self.config.monitor, row[f"val_{self.config.monitor}"]
            )
        return row, pruned

    def _stage(self, fitted: PrunedFit) -> EaseRecall:
        ctx = StageContext(
            catalog=self.data.catalog, seed=self.config.seed, extras={"weights": fitted.weights}
        )
        return EaseRecall(EaseConfig(), ctx)

    def stage(self) -> EaseRecall:
        if self.result is None:
            raise ConfigError("ease: not fitted yet (the fit is the module's training step)")
        return self._stage(self.result)

    def export(self, directory: Path) -> Mapping[str, Any]:
        if self.result is None:
            raise ConfigError("ease: not fitted yet: nothing to export")
        directory.mkdir(parents=True, exist_ok=True)
        save_weights(directory, self.result.weights.to_state())
        (directory / FIT_REPORT).write_text(json.dumps(self.report, indent=2))
        return EaseConfig().model_dump()


def _sample(ev: EvalSet | None, n: int | None, seed: int) -> EvalSet | None:
    if ev is None or n is None or len(ev) <= n:
        return ev
    rows = np.sort(np.random.default_rng(seed).choice(len(ev), n, replace=False))
    return ev.subset(rows.astype(np.int64))


def build(config: Mapping[str, Any], data: TrainData) -> EaseJob:
    """The ``replayrec.trainers`` entry point."""
    return EaseJob(EaseTrainConfig.model_validate(dict(config)), data)
