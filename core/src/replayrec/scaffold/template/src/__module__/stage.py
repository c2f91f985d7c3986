"""Serving-time stage ``__name__``: a seeded random scorer to replace with a real model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from replayrec.stages import Candidate, Recall, Request, StageConfig, StageContext, topk_candidates

from __module__.config import __Class__Config

__all__ = ["__Class__", "__Class__Config"]


class __Class__(Recall):
    name: ClassVar[str] = "__name__"
    Config: ClassVar[type[StageConfig]] = __Class__Config
    core_api: ClassVar[str] = "1.0"
    supports_full_ranking: ClassVar[bool] = True

    def __init__(self, config: StageConfig, context: StageContext) -> None:
        super().__init__(config, context)
        self.cfg = __Class__Config.model_validate(config.model_dump())
        self._base = np.random.default_rng(context.seed).random(context.n_items) * self.cfg.temperature

    def score_all(self, requests: Sequence[Request]) -> np.ndarray:
        for r in requests:
            self.check_request(r)
        return np.tile(self._base, (len(requests), 1))

    def retrieve(self, request: Request, k: int) -> list[Candidate]:
        self.check_request(request)
        self.check_k(k)
        return topk_candidates(self._base, k, request.exclude, self.name)
