"""Datasets as the operations see them: resolved by name (or the default), prepared on first use."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from replayrec.config import Settings
from replayrec.data import (
    Dataset,
    WorldConfig,
    default_dataset,
    download_dataset,
    ensure_prepared,
    get_spec,
    load_dataset,
)

__all__ = ["PreparedDataset", "dataset_stats", "download", "open_dataset", "prepare_dataset"]

log = logging.getLogger("replayrec.application")


def open_dataset(settings: Settings, name: str | None, prepare: bool = True) -> Dataset:
    """``name`` (or the default dataset, saying which), prepared first when needed."""
    if name is None:
        name, why = default_dataset(settings)
        log.info(why)
    if prepare:
        path, fresh = ensure_prepared(name, settings)
        if fresh:
            log.info(f"prepared {name} into {path}")
    return load_dataset(name, settings)


@dataclass(frozen=True)
class PreparedDataset:
    name: str
    path: Path
    fresh: bool
    counts: dict[str, int]


def prepare_dataset(
    settings: Settings, name: str | None, force: bool = False, world: dict[str, int | None] | None = None
) -> PreparedDataset:
    """Build the canonical tables of ``name``; ``world`` overrides the synthetic world's size and seed."""
    if name is None:
        name, why = default_dataset(settings)
        log.info(why)
    config = None
    if get_spec(name).kind == "synthetic":
        config = WorldConfig(**{k: v for k, v in (world or {}).items() if v is not None})
    path, fresh = ensure_prepared(name, settings, force=force, world=config)
    counts = load_dataset(name, settings).manifest["counts"]
    return PreparedDataset(name, path, fresh, {k: int(v) for k, v in counts.items()})


def download(settings: Settings, name: str, base_url: str | None, force: bool) -> list[Path]:
    """A dataset's public source files, into the data directory (md5-checked)."""
    return download_dataset(get_spec(name), settings.data_dir, base_url=base_url, force=force)


def dataset_stats(ds: Dataset) -> dict[str, Any]:
    """Counts, sparsity, per-user and per-item distributions, time span, the most consumed items."""
    ev = ds.events
    per_user = np.bincount(ev["user"].to_numpy(), minlength=ds.n_users)
    per_item = np.bincount(ev["item"].to_numpy(), minlength=ds.n_items)
    ts = ev["timestamp"].to_numpy()
    top = np.argsort(-per_item, kind="stable")[:5]
    out: dict[str, Any] = {
        "dataset": ds.name,
        "events": len(ev),
        "users": ds.n_users,
        "items": ds.n_items,
        "density": len(ev) / max(ds.n_users * ds.n_items, 1),
        "events_per_user": {
            "min": int(per_user.min()),
            "median": float(np.median(per_user)),
            "mean": float(per_user.mean()),
            "max": int(per_user.max()),
        },
        "events_per_item": {
            "min": int(per_item.min()),
            "median": float(np.median(per_item)),
            "max": int(per_item.max()),
        },
        "item_groups": int(ds.items["group"].max()) + 1,
        "time_span": [str(np.datetime64(int(ts.min()), "s")), str(np.datetime64(int(ts.max()), "s"))]
        if ds.manifest["has_time"]
        else None,
        "top_items": [
            {"item": ds.catalog.raw_ids[i], "title": ds.catalog.title(int(i)), "events": int(per_item[i])}
            for i in top
        ],
    }
    if "split" in ev.columns:
        out["split"] = {str(k): int(v) for k, v in ev["split"].value_counts().sort_index().items()}
    return out
