"""Popularity recall: the non-ML status quo a shop replaces."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from replayrec.stages import (
    Candidate,
    FloatArray,
    Recall,
    Request,
    StageConfig,
    StageContext,
)

__all__ = ["Popularity", "PopularityConfig"]


class PopularityConfig(StageConfig):
    mode: Literal["all_time", "recent"] = "all_time"
    window_days: float = Field(default=30.0, gt=0, description="recent mode: window before the request time")


class Popularity(Recall):
    """Ranks items by how often they were consumed.

    ``all_time`` counts every fitted event; ``recent`` counts fitted events in ``[t - window, t)`` for a
    request at time ``t`` (never later events), ties broken by the all-time count, then the item id.
    """

    name: ClassVar[str] = "popularity"
    Config: ClassVar[type[StageConfig]] = PopularityConfig
    core_api: ClassVar[str] = "1.0"
    supports_full_ranking: ClassVar[bool] = True
    _CACHE = 64

    def __init__(self, config: StageConfig, context: StageContext) -> None:
        super().__init__(config, context)
        self.cfg = PopularityConfig.model_validate(config.model_dump())
        train = context.require_train(self.name)
        counts = train.item_counts.astype(np.float64)
        self._all_time = counts
        self._tiebreak = counts / (counts.max() + 1.0) if counts.size else counts
        order = train.time_order
        self._times = train.timestamp[order]
        self._items = train.item[order]
        self._window = int(self.cfg.window_days * 86_400)
        self._cache: OrderedDict[int, FloatArray] = OrderedDict()
        self._order: OrderedDict[int, tuple[FloatArray, npt.NDArray[np.int64]]] = OrderedDict()

    def _scores_at(self, t: int) -> FloatArray:
        if self.cfg.mode == "all_time":
            return self._all_time
        hit = self._cache.get(t)
        if hit is not None:
            self._cache.move_to_end(t)
            return hit
        lo = np.searchsorted(self._times, t - self._window, side="left")
        hi = np.searchsorted(self._times, t, side="left")
        scores = np.bincount(self._items[lo:hi], minlength=self.n_items).astype(np.float64) + self._tiebreak
        self._cache[t] = scores
        if len(self._cache) > self._CACHE:
            self._cache.popitem(last=False)
        return scores

    def _ranked_at(self, t: int) -> tuple[FloatArray, npt.NDArray[np.int64]]:
        """The scores at ``t`` and all items in their order (best first, ties by id), cached by ``t``."""
        key = t if self.cfg.mode == "recent" else 0
        hit = self._order.get(key)
        scores = self._scores_at(t)
        if hit is not None and hit[0] is scores:
            return scores, hit[1]
        order = np.lexsort((np.arange(scores.size), -scores)).astype(np.int64)
        self._order[key] = (scores, order)
        if len(self._order) > self._CACHE:
            self._order.popitem(last=False)
        return scores, order

    def retrieve(self, request: Request, k: int) -> list[Candidate]:
        """The first ``k`` items of the cached order that are not excluded: the same list as a top-k over the
        scores (ties by item id), without sorting the catalogue again for every request."""
        self.check_request(request)
        self.check_k(k)
        scores, order = self._ranked_at(request.timestamp)
        head = order[: k + request.exclude.size]
        if request.exclude.size:
            head = head[~np.isin(head, request.exclude)]
        return [Candidate(int(i), float(scores[i]), {self.name: float(scores[i])}) for i in head[:k].tolist()]

    def score_all(self, requests: Sequence[Request]) -> FloatArray:
        for r in requests:
            self.check_request(r)
        out = np.empty((len(requests), self.n_items), dtype=np.float64)
        for i, r in enumerate(requests):
            out[i] = self._scores_at(r.timestamp)
        return out
