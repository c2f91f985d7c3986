"""``report baselines``: popularity and item-CF on each dataset's own protocol, beside published results."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replayrec.application._datasets import open_dataset
from replayrec.application._evaluate import EvalOptions, evaluate_plugin
from replayrec.application._published import PUBLISHED
from replayrec.config import Settings
from replayrec.data import DATASETS, default_dataset
from replayrec.evaluation import markdown_table, write_report

__all__ = ["BASELINE_COLUMNS", "BaselineTable", "baselines_report"]

log = logging.getLogger("replayrec.application")

BASELINE_COLUMNS = ("ndcg@10", "hr@10", "recall@20", "ndcg@20", "recall@200", "mrr", "gauc")


@dataclass(frozen=True)
class BaselineTable:
    dataset: str
    protocol: str
    rows: dict[str, Any]
    markdown: str
    report: dict[str, Path] = field(default_factory=dict)


def _runs(ds_name: str) -> list[tuple[str, str, dict[str, Any]]]:
    runs: list[tuple[str, str, dict[str, Any]]] = [
        ("popularity (all-time)", "popularity", {"mode": "all_time"})
    ]
    if DATASETS[ds_name].protocol != "given":
        runs.append(("popularity (recent 30d)", "popularity", {"mode": "recent", "window_days": 30}))
    runs.append(("itemcf (itemknn)", "itemcf", {}))
    return runs


def _default_names(settings: Settings) -> tuple[str, ...]:
    first, why = default_dataset(settings)
    log.info(why)
    kgat = DATASETS["amazon-book-kgat"]
    present = all((kgat.directory(settings.data_dir) / f.name).is_file() for f in kgat.files)
    return (first, "amazon-book-kgat") if present and first != "amazon-book-kgat" else (first,)


def baselines_report(
    settings: Settings, names: tuple[str, ...] = (), n_boot: int = 1000, progress: bool = False
) -> list[BaselineTable]:
    """Each dataset (default: the default one, plus KGAT when its files are present) on its protocol."""
    tables = []
    for name in names or _default_names(settings):
        ds = open_dataset(settings, name)
        rows: dict[str, Any] = {}
        for label, plugin, config in _runs(name):
            res = evaluate_plugin(
                settings, ds, plugin, config, opts=EvalOptions(n_boot=n_boot, progress=progress)
            )
            rows[label] = res.to_dict()
        rows.update(PUBLISHED.get(name, {}))
        protocol = DATASETS[name].protocol
        paths = write_report(
            rows, settings.reports_dir, f"baselines-{name}", BASELINE_COLUMNS, title=f"{name} ({protocol})"
        )
        tables.append(BaselineTable(name, protocol, rows, markdown_table(rows, BASELINE_COLUMNS), paths))
    return tables
