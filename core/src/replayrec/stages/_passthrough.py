"""Core's built-in pass-through stages, so a cascade can run with recall alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from replayrec.stages._base import Rank, Rerank, StageConfig
from replayrec.stages._types import Candidate, Request

__all__ = ["PassthroughRank", "PassthroughRerank"]


class PassthroughRank(Rank):
    """Keeps the recall order and score."""

    name: ClassVar[str] = "passthrough"
    Config: ClassVar[type[StageConfig]] = StageConfig
    core_api: ClassVar[str] = "1.0"

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[Candidate]:
        self.check_request(request)
        self.check_candidates(candidates)
        return sorted(candidates, key=lambda c: (-c.score, c.item))


class PassthroughRerank(Rerank):
    """Truncates to ``k`` in the incoming order."""

    name: ClassVar[str] = "passthrough"
    Config: ClassVar[type[StageConfig]] = StageConfig
    core_api: ClassVar[str] = "1.0"

    def rerank(self, request: Request, scored: Sequence[Candidate], k: int) -> list[Candidate]:
        self.check_request(request)
        self.check_k(k)
        self.check_candidates(scored)
        return list(scored)[:k]
