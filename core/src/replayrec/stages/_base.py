"""The stage contracts: :class:`Recall`, :class:`Rank`, :class:`Rerank`.

A plugin subclasses one of them, declares ``name``, ``Config`` (a pydantic model with ``extra="forbid"``) and
``core_api``, and implements one abstract method. Everything else has a default.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from replayrec.data import Catalog, Interactions
from replayrec.errors import StageInputError
from replayrec.stages._types import Candidate, Request

__all__ = [
    "FloatArray",
    "Rank",
    "Recall",
    "Rerank",
    "Stage",
    "StageConfig",
    "StageContext",
    "topk_candidates",
]

FloatArray = npt.NDArray[np.floating[Any]]


class StageConfig(BaseModel):
    """Base for plugin configs: closed (unknown keys are an error) and immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class StageContext:
    """What a stage is built from.

    Attributes:
        catalog: the item catalogue (defines ``n_items``).
        train: interactions the stage may fit on (``None`` at serving time for pre-trained models).
        artifact: path of a trained model file, when the stage loads one.
        seed: seed for anything random.
    """

    catalog: Catalog
    train: Interactions | None = None
    artifact: Path | None = None
    seed: int = 0
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return self.catalog.n_items

    def require_train(self, who: str) -> Interactions:
        if self.train is None:
            raise StageInputError(f"{who} needs training interactions but none were given")
        return self.train


class Stage(ABC):
    """Common base: identity, config and lifecycle hooks."""

    kind: ClassVar[str]
    name: ClassVar[str]
    Config: ClassVar[type[StageConfig]] = StageConfig
    core_api: ClassVar[str] = "1.0"

    def __init__(self, config: StageConfig, context: StageContext) -> None:
        self.config = config
        self.context = context

    @property
    def n_items(self) -> int:
        return self.context.n_items

    def warmup(self) -> None:  # noqa: B027 - optional hook
        """Prepare caches before the first request (serving calls this once)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""

    # validation helpers shared by every plugin -------------------------------------------------------
    def check_k(self, k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k <= 0:
            raise StageInputError(f"{self.name}: k must be a positive integer, got {k!r}")

    def check_request(self, request: Request) -> None:
        if not isinstance(request, Request):
            raise StageInputError(f"{self.name}: expected a Request, got {type(request).__name__}")
        for label, ids in (("history", request.history), ("exclude", request.exclude)):
            if ids.size and int(ids.max()) >= self.n_items:
                raise StageInputError(
                    f"{self.name}: request.{label} holds item {int(ids.max())}, "
                    f"outside the catalogue of {self.n_items} items"
                )

    def check_candidates(self, candidates: Sequence[Candidate]) -> None:
        for c in candidates:
            if not isinstance(c, Candidate):
                raise StageInputError(f"{self.name}: candidates must be Candidate, got {type(c).__name__}")
            if not 0 <= c.item < self.n_items:
                raise StageInputError(f"{self.name}: candidate item {c.item} is outside the catalogue")


class Recall(Stage):
    """Retrieves candidates from the whole catalogue."""

    kind: ClassVar[str] = "recall"
    #: True when :meth:`score_all` is implemented (enables exact full-ranking evaluation).
    supports_full_ranking: ClassVar[bool] = False

    @abstractmethod
    def retrieve(self, request: Request, k: int) -> list[Candidate]:
        """Return at most ``k`` candidates, best first, none of them in ``request.exclude``."""

    def retrieve_batch(self, requests: Sequence[Request], k: int) -> list[list[Candidate]]:
        return [self.retrieve(r, k) for r in requests]

    def score_all(self, requests: Sequence[Request]) -> FloatArray:
        """Scores of every catalogue item for each request, shape ``(len(requests), n_items)``.

        Excluded items may hold any value; the evaluator masks them. Optional capability.
        """
        raise NotImplementedError(f"{self.name} does not score the whole catalogue")

    def item_vectors(self) -> FloatArray | None:
        """Dense item representations the stage learned, shape ``(n_items, dim)``, or ``None``.

        Optional: later stages may warm-start their item embeddings from them."""
        return None


class Rank(Stage):
    """Scores a candidate list precisely."""

    kind: ClassVar[str] = "rank"

    @abstractmethod
    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[Candidate]:
        """Return the candidates re-scored, best first (same items, no additions)."""

    def score_batch(
        self, requests: Sequence[Request], candidates: Sequence[Sequence[Candidate]]
    ) -> list[list[Candidate]]:
        return [self.score(r, c) for r, c in zip(requests, candidates, strict=True)]


class Rerank(Stage):
    """Orders the final slate (list-wise objectives, diversity, business rules)."""

    kind: ClassVar[str] = "rerank"

    @abstractmethod
    def rerank(self, request: Request, scored: Sequence[Candidate], k: int) -> list[Candidate]:
        """Return at most ``k`` of ``scored``, in display order."""


def topk_candidates(
    scores: FloatArray,
    k: int,
    exclude: npt.NDArray[np.int64],
    stage: str,
    valid: npt.NDArray[np.bool_] | None = None,
) -> list[Candidate]:
    """Top-``k`` of a full score vector as candidates, skipping ``exclude`` and non-``valid`` items.

    Ties are broken by the smaller item id, so results are deterministic.
    """
    s = np.array(scores, dtype=np.float64, copy=True)
    if exclude.size:
        s[exclude] = -np.inf
    if valid is not None:
        s[~valid] = -np.inf
    allowed = int(np.count_nonzero(np.isfinite(s)))
    k = min(k, allowed)
    if k <= 0:
        return []
    part = np.argpartition(-s, k - 1)[:k] if k < s.size else np.arange(s.size)
    kth = s[part].min()
    # include every item tied with the k-th score so the tie-break by id is exact
    pool = np.flatnonzero(s >= kth)
    order = np.lexsort((pool, -s[pool]))[:k]
    top = pool[order]
    return [Candidate(int(i), float(s[i]), {stage: float(s[i])}) for i in top]
