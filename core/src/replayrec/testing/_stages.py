"""Tiny stand-in stages for tests of cascades and tooling (not registered as entry points)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from replayrec.stages import (
    Candidate,
    FloatArray,
    Rank,
    Recall,
    Request,
    Rerank,
    StageConfig,
    StageContext,
    topk_candidates,
)

__all__ = ["FixedRecall", "ReverseRank", "TruncateRerank"]


class FixedRecall(Recall):
    """Scores every item with a fixed pseudo-random vector drawn from the context's seed."""

    name: ClassVar[str] = "fixed"
    supports_full_ranking: ClassVar[bool] = True

    def __init__(self, config: StageConfig, context: StageContext) -> None:
        super().__init__(config, context)
        self.scores = np.random.default_rng(context.seed).random(context.n_items)

    def retrieve(self, request: Request, k: int) -> list[Candidate]:
        self.check_request(request)
        self.check_k(k)
        return topk_candidates(self.scores, k, request.exclude, self.name)

    def score_all(self, requests: Sequence[Request]) -> FloatArray:
        for r in requests:
            self.check_request(r)
        return np.tile(self.scores, (len(requests), 1))


class ReverseRank(Rank):
    """Reverses the incoming order (score = minus the recall score): makes a rank stage's effect visible."""

    name: ClassVar[str] = "reverse"

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[Candidate]:
        self.check_request(request)
        self.check_candidates(candidates)
        out = [c.with_score(self.name, -c.score) for c in candidates]
        return sorted(out, key=lambda c: (-c.score, c.item))


class TruncateRerank(Rerank):
    name: ClassVar[str] = "truncate"

    def rerank(self, request: Request, scored: Sequence[Candidate], k: int) -> list[Candidate]:
        self.check_request(request)
        self.check_k(k)
        self.check_candidates(scored)
        return list(scored)[:k]
