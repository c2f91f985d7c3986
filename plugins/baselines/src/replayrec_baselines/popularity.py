"""Popularity recall: the non-ML status quo a shop replaces."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from replayrec.stages import (
    Candidate,
    FloatArray,
    Recall,
    Request,
    StageConfig,
    StageContext,
    topk_candidates,
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

    def retrieve(self, request: Request, k: int) -> list[Candidate]:
        self.check_request(request)
        self.check_k(k)
        return topk_candidates(self._scores_at(request.timestamp), k, request.exclude, self.name)

    def score_all(self, requests: Sequence[Request]) -> FloatArray:
        for r in requests:
            self.check_request(r)
        out = np.empty((len(requests), self.n_items), dtype=np.float64)
        for i, r in enumerate(requests):
            out[i] = self._scores_at(r.timestamp)
        return out
