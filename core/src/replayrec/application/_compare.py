"""A/B comparison of two cascade configurations (a plugin swap) on the same users, with paired CIs."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from replayrec.application._datasets import open_dataset
from replayrec.application._evaluate import EvalOptions, evaluate_cascade
from replayrec.cascade import load_cascade
from replayrec.config import Settings
from replayrec.errors import ConfigError
from replayrec.evaluation import EvalResult, paired_lift, write_report

__all__ = ["AB_METRICS", "ABReport", "compare_arms"]

log = logging.getLogger("replayrec.application")

AB_METRICS = ("ndcg@10", "hr@10", "mrr")
_AB_OPTIONS = EvalOptions(ks=(10,))


@dataclass(frozen=True)
class ABReport:
    """Both arms' metrics and B's difference over A per metric: ``delta``, relative ``lift``, its 95%
    paired bootstrap ``ci`` and whether it excludes zero."""

    dataset: str
    split: str
    users: int
    arms: dict[str, dict[str, Any]]
    b_over_a: dict[str, dict[str, Any]]
    means: dict[str, tuple[float, float]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "users": self.users,
            "arms": self.arms,
            "b_over_a": self.b_over_a,
        }


def _difference(base: EvalResult, other: EvalResult, n_boot: int, seed: int) -> dict[str, dict[str, Any]]:
    diff: dict[str, dict[str, Any]] = {}
    for m in AB_METRICS:
        lift, lo, hi = paired_lift(base.per_user[m], other.per_user[m], n_boot=n_boot, seed=seed)
        delta = float(np.nanmean(other.per_user[m]) - np.nanmean(base.per_user[m]))
        diff[m] = {"delta": delta, "lift": lift, "ci": [lo, hi], "significant": bool(lo > 0 or hi < 0)}
    return diff


def compare_arms(
    settings: Settings,
    arms: tuple[Path, Path],
    dataset: str | None = None,
    opts: EvalOptions = _AB_OPTIONS,
    out: Path | None = None,
) -> ABReport:
    """Evaluate arm A and arm B (cascade YAMLs, models as ``<plugin>@<alias>``) on the same users; the
    report is written under the reports directory (and as JSON to ``out`` when given)."""
    for a in arms:
        if not a.is_file():
            raise ConfigError(f"arm {a} does not exist")
    configs = [load_cascade(a) for a in arms]
    ds = open_dataset(settings, dataset)
    results = []
    for a, config in zip(arms, configs, strict=True):
        log.info(f"arm {a}: evaluating")
        results.append(evaluate_cascade(settings, ds, config, opts, label=f"cascade:{a}"))
    base, other = results
    if not np.array_equal(base.users, other.users):
        raise ConfigError("the arms were evaluated on different users")  # same split: cannot happen
    rows: dict[str, dict[str, Any]] = {}
    for label, a, res in zip(("A", "B"), arms, results, strict=True):
        d = res.to_dict()
        rows[f"{label}: {a.name}"] = {m: d.get(m) for m in AB_METRICS} | {"ci": d["ci"]}
    means = {
        m: (float(np.nanmean(base.per_user[m])), float(np.nanmean(other.per_user[m]))) for m in AB_METRICS
    }
    report = ABReport(
        ds.name,
        opts.split,
        int(base.n_users),
        rows,
        _difference(base, other, opts.n_boot, settings.seed),
        means,
    )
    write_report(rows, settings.reports_dir, f"ab-{ds.name}-{arms[0].stem}-vs-{arms[1].stem}")
    if out is not None:
        out.write_text(json.dumps(report.to_dict(), indent=2))
    return report
