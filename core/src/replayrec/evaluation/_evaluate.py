"""Offline evaluation of a recall stage (exact full ranking) or any cascade (candidate lists)."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from replayrec.errors import ReplayrecError
from replayrec.evaluation._bootstrap import bootstrap_ci
from replayrec.evaluation._metrics import per_user_metrics
from replayrec.evaluation._protocols import EvalSet
from replayrec.features import FeatureSpec, history_window
from replayrec.stages import Candidate, Recall, Request

__all__ = ["DEFAULT_KS", "EvalResult", "ListFn", "build_requests", "evaluate", "target_ranks"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
DEFAULT_KS: tuple[int, ...] = (10, 20, 50, 200)

ListFn = Callable[[Sequence[Request], int], list[list[Candidate]]]


@dataclass
class EvalResult:
    """Mean metrics over users, bootstrap intervals and the per-user values they came from."""

    metrics: dict[str, float]
    ci: dict[str, tuple[float, float]]
    per_user: dict[str, F64] = field(repr=False)
    users: I64 = field(repr=False)
    n_users: int = 0
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)
    #: what AUC / GAUC rank the target against: the whole catalogue, or the returned candidate list
    auc_scope: str = "catalogue"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.meta)
        out.update({k: _clean(v) for k, v in self.metrics.items()})
        out["ci"] = {k: [_clean(lo), _clean(hi)] for k, (lo, hi) in self.ci.items()}
        out["auc_scope"] = self.auc_scope
        out["n_users"] = self.n_users
        out["seconds"] = round(self.seconds, 3)
        return out


def _clean(v: float) -> float | None:
    return None if not np.isfinite(v) else round(float(v), 6)


def build_requests(ev: EvalSet, rows: I64, history_len: int | None) -> list[Request]:
    """Requests for ``rows``: history = the newest ``history_len`` events (all with None; the window is
    :func:`replayrec.features.history_window`), exclusions per protocol."""
    rows = np.asarray(rows, dtype=np.int64)
    end = ev.hist_ptr[rows + 1]
    start = ev.hist_ptr[rows] if history_len is None else history_window(end, ev.hist_ptr[rows], history_len)
    return [
        Request(
            user=int(ev.users[r]),
            timestamp=int(ev.times[r]),
            history=ev.hist_items[lo:hi],
            history_times=ev.hist_times[lo:hi],
            exclude=ev.exclusions(r),
        )
        for r, lo, hi in zip(rows.tolist(), start.tolist(), end.tolist(), strict=True)
    ]


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="rank")


def _ranks_chunk(scores: F32 | F64, r: I64, it: I64) -> F64:
    block = scores[r]
    s = block[np.arange(r.size), it][:, None]
    greater = np.count_nonzero(block > s, axis=1)
    equal = np.count_nonzero(block == s, axis=1)
    for j in np.flatnonzero(equal > 1):  # exact ties are broken by the smaller item id
        greater[j] += np.count_nonzero(block[j, : it[j]] == s[j, 0])
    out: F64 = greater.astype(np.float64)
    return out


def target_ranks(scores: F32 | F64, rows: I64, items: I64, chunk: int = 128) -> F64:
    """0-based rank of ``items[p]`` in ``scores[rows[p]]`` (descending, ties by smaller id); NaN = masked.

    Chunks run on a thread pool (numpy releases the GIL in the comparisons)."""
    starts = range(0, rows.size, chunk)
    parts = list(
        _pool().map(lambda lo: _ranks_chunk(scores, rows[lo : lo + chunk], items[lo : lo + chunk]), starts)
    )
    return np.concatenate(parts) if parts else np.zeros(0)


def _full_batch(stage: Recall, ev: EvalSet, rows: I64, reqs: list[Request]) -> tuple[F64, I64]:
    scores = np.asarray(stage.score_all(reqs), dtype=np.float64)
    if scores.shape != (len(reqs), stage.n_items):
        raise ReplayrecError(
            f"{stage.name}.score_all returned shape {scores.shape}, expected {(len(reqs), stage.n_items)}"
        )
    if np.isnan(scores).any():
        raise ReplayrecError(f"{stage.name}.score_all returned NaN scores")
    n_cand = np.empty(len(reqs), dtype=np.int64)
    for i, q in enumerate(reqs):
        scores[i, q.exclude] = np.nan  # masked: neither above nor tied with anything
        n_cand[i] = stage.n_items - np.unique(q.exclude).size
    t_len = np.diff(ev.tgt_ptr)[rows]
    local = np.repeat(np.arange(rows.size), t_len)
    items = np.concatenate([ev.targets(int(r)) for r in rows])
    return target_ranks(scores, local, items), n_cand


def _list_batch(
    fn: ListFn, ev: EvalSet, rows: I64, reqs: list[Request], depth: int, n_items: int
) -> tuple[F64, I64]:
    lists = fn(reqs, depth)
    ranks: list[float] = []
    for r, lst in zip(rows, lists, strict=True):
        pos = {c.item: i for i, c in enumerate(lst)}
        ranks.extend(float(pos.get(int(t), np.inf)) for t in ev.targets(int(r)))
    n_cand = np.array([len(lst) for lst in lists], dtype=np.int64)  # AUC within each returned list
    return np.asarray(ranks, dtype=np.float64), n_cand


def evaluate(
    model: Recall | ListFn,
    ev: EvalSet,
    *,
    n_items: int,
    history_len: int | None = FeatureSpec().recent_events,
    ks: tuple[int, ...] = DEFAULT_KS,
    batch_size: int = 1024,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = False,
    desc: str = "evaluate",
) -> EvalResult:
    """Score every request of ``ev`` and compute per-user metrics with bootstrap intervals.

    A :class:`Recall` that supports full ranking is evaluated exactly over the whole catalogue; anything else
    (a cascade's ``recommend_batch``) through its top-``max(ks)`` candidate lists. For lists, AUC / GAUC are
    computed within each returned list, over the users whose target is in it (``auc_scope`` says which)."""
    started = time.perf_counter()
    recall = model if isinstance(model, Recall) else None
    ranks_all: list[F64] = []
    ncand_all: list[I64] = []
    n = len(ev)
    with tqdm(total=n, desc=desc, unit="user", disable=not progress, leave=False) as bar:
        for lo in range(0, n, batch_size):
            rows = np.arange(lo, min(n, lo + batch_size), dtype=np.int64)
            reqs = build_requests(ev, rows, history_len)
            if recall is not None and recall.supports_full_ranking:
                ranks, n_cand = _full_batch(recall, ev, rows, reqs)
            elif recall is not None:
                ranks, n_cand = _list_batch(recall.retrieve_batch, ev, rows, reqs, max(ks), recall.n_items)
            elif callable(model):
                ranks, n_cand = _list_batch(model, ev, rows, reqs, max(ks), n_items)
            else:
                raise TypeError(f"cannot evaluate a {type(model).__name__}")
            ranks_all.append(ranks)
            ncand_all.append(n_cand)
            bar.update(rows.size)
    ranks = np.concatenate(ranks_all) if ranks_all else np.zeros(0)
    pair_row = np.repeat(np.arange(n), np.diff(ev.tgt_ptr))
    per_user = per_user_metrics(
        pair_row, ranks, n, np.concatenate(ncand_all) if ncand_all else np.zeros(0, np.int64), ks
    )
    n_rel = per_user.pop("n_relevant")
    full = recall is not None and recall.supports_full_ranking
    metrics = {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for k, v in per_user.items()}
    with np.errstate(invalid="ignore"):
        auc = per_user["auc"]
        ok = np.isfinite(auc)
        metrics["gauc"] = float(np.sum(auc[ok] * n_rel[ok]) / np.sum(n_rel[ok])) if ok.any() else float("nan")
    per_user["gauc"] = per_user["auc"]
    ci = bootstrap_ci(per_user, {"gauc": n_rel}, n_boot=n_boot, seed=seed)
    scope = "catalogue" if full else "candidate list (users whose target is in it)"
    return EvalResult(metrics, ci, per_user, ev.users, n, time.perf_counter() - started, auc_scope=scope)
