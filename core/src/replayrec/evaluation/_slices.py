"""Population slices of an evaluation: who is asking (cold / heavy users) and what they went on to have
(popular / long-tail items, item groups), so a mean that hides a weak population can be read apart.

Slices are rows of the :class:`~replayrec.evaluation.EvalSet`; a request falls in the item slices of its
*first* target (leave-one-out has one; under ``temporal`` the first item the user had after ``T``)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from replayrec.data import Interactions
from replayrec.evaluation._bootstrap import bootstrap_ci
from replayrec.evaluation._evaluate import EvalResult
from replayrec.evaluation._protocols import EvalSet

__all__ = ["COLD_MAX", "HEAVY_MIN", "POPULAR_SHARE", "slice_metrics", "slice_rows"]

I64 = npt.NDArray[np.int64]
#: a cold user has at most this many history events before the request; a heavy user at least HEAVY_MIN
COLD_MAX = 4
HEAVY_MIN = 20
#: popular items: the most-interacted items of the training events, this share of the items that have any
#: (ties broken by the smaller item id); the rest, never-seen items included, are the long tail
POPULAR_SHARE = 0.1
#: an item group is reported when at least this many requests fall in it
MIN_GROUP_USERS = 50


def slice_rows(ev: EvalSet, fit: Interactions, groups: I64 | None = None) -> dict[str, I64]:
    """Row indices of ``ev`` per slice: ``users:cold``, ``users:heavy``, ``items:popular``,
    ``items:long-tail`` and ``group:<g>`` (``groups``: the catalogue's item groups; groups with fewer than
    :data:`MIN_GROUP_USERS` requests are left out)."""
    hist = np.diff(ev.hist_ptr)
    first = ev.tgt_items[ev.tgt_ptr[:-1]] if len(ev) else np.zeros(0, np.int64)
    counts = np.bincount(fit.item, minlength=fit.n_items)
    n_top = int(np.ceil(POPULAR_SHARE * np.count_nonzero(counts)))
    head = np.zeros(counts.size, dtype=bool)
    head[np.argsort(-counts, kind="stable")[:n_top]] = True  # ties broken by the smaller item id
    popular = head[first]
    out: dict[str, I64] = {
        "users:cold": np.flatnonzero(hist <= COLD_MAX),
        "users:heavy": np.flatnonzero(hist >= HEAVY_MIN),
        "items:popular": np.flatnonzero(popular),
        "items:long-tail": np.flatnonzero(~popular),
    }
    if groups is not None and len(ev):
        g = np.asarray(groups, dtype=np.int64)[first]
        values, n = np.unique(g, return_counts=True)
        for value in values[n >= MIN_GROUP_USERS]:
            out[f"group:{int(value)}"] = np.flatnonzero(g == value)
    return out


def slice_metrics(
    res: EvalResult,
    slices: Mapping[str, I64],
    metrics: tuple[str, ...] = ("ndcg@10", "hr@10"),
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, object]]:
    """Each slice's mean of ``metrics`` over its requests, with bootstrap CIs and its size."""
    out: dict[str, dict[str, object]] = {}
    for name, rows in slices.items():
        part = {m: res.per_user[m][rows] for m in metrics}
        ci = bootstrap_ci(part, {}, n_boot=n_boot, seed=seed) if rows.size else {}
        out[name] = {
            "n_users": int(rows.size),
            **{m: round(float(np.nanmean(v)), 6) if v.size else None for m, v in part.items()},
            "ci": {m: [round(float(lo), 6), round(float(hi), 6)] for m, (lo, hi) in ci.items()},
        }
    return out
