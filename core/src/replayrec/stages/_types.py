"""Request and candidate types shared by every stage.

Item and user ids inside the cascade are the dataset's *dense* indices (``0 .. n_items-1``); mapping to the
shop's raw ids happens at the edges (CLI, serving).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from replayrec.errors import StageInputError

__all__ = ["Candidate", "IntArray", "Request"]

IntArray = npt.NDArray[np.int64]
_EMPTY: IntArray = np.zeros(0, dtype=np.int64)
_EMPTY.setflags(write=False)


def _as_ids(name: str, values: Any) -> IntArray:
    arr = np.asarray(values if values is not None else _EMPTY)
    if arr.ndim != 1:
        raise StageInputError(f"request.{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise StageInputError(f"request.{name} must hold integers, got dtype {arr.dtype}")
    out = arr.astype(np.int64, copy=False)
    if out.size and int(out.min()) < 0:
        raise StageInputError(f"request.{name} holds a negative id ({int(out.min())})")
    return out


@dataclass(frozen=True, slots=True)
class Request:
    """One recommendation request.

    Attributes:
        user: dense user index, or -1 for an anonymous / unknown user.
        timestamp: request time, Unix seconds.
        history: the user's recent items, oldest first (dense item ids).
        history_times: Unix seconds of each history item, non-decreasing, same length as ``history``.
        exclude: items that must not be returned (by default the history; empty when the caller allows
            already-consumed items to be recommended).
        context: free-form request context (device, page, ...).
    """

    user: int
    timestamp: int
    history: IntArray = field(default_factory=lambda: _EMPTY)
    history_times: IntArray = field(default_factory=lambda: _EMPTY)
    exclude: IntArray = field(default_factory=lambda: _EMPTY)
    context: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        hist = _as_ids("history", self.history)
        times = np.asarray(self.history_times if self.history_times is not None else _EMPTY)
        if times.size == 0 and hist.size:
            times = np.full(hist.size, int(self.timestamp), dtype=np.int64)
        times = times.astype(np.int64, copy=False)
        if times.shape != hist.shape:
            raise StageInputError(
                f"request.history_times has {times.size} entries but history has {hist.size}"
            )
        if times.size > 1 and bool(np.any(np.diff(times) < 0)):
            raise StageInputError("request.history_times must be non-decreasing (oldest item first)")
        object.__setattr__(self, "history", hist)
        object.__setattr__(self, "history_times", times)
        object.__setattr__(self, "exclude", _as_ids("exclude", self.exclude))
        object.__setattr__(self, "context", MappingProxyType(dict(self.context)))

    @classmethod
    def create(
        cls,
        user: int,
        timestamp: int,
        history: Any = None,
        history_times: Any = None,
        *,
        exclude_history: bool = True,
        exclude: Any = None,
        context: Mapping[str, Any] | None = None,
    ) -> Request:
        """Build a request whose ``exclude`` defaults to the history (``exclude_history=True``)."""
        hist = _as_ids("history", history)
        if exclude is None:
            exclude = hist if exclude_history else _EMPTY
        return cls(
            user=int(user),
            timestamp=int(timestamp),
            history=hist,
            history_times=_EMPTY if history_times is None else np.asarray(history_times),
            exclude=exclude,
            context=context or {},
        )


@dataclass(frozen=True, slots=True)
class Candidate:
    """An item moving through the cascade.

    ``score`` is the score of the stage that produced this candidate (higher is better); ``scores`` keeps
    every stage's and recall channel's score by name; ``reasons`` carries human-readable explanations.
    """

    item: int
    score: float
    scores: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    reasons: tuple[str, ...] = ()

    def with_score(self, stage: str, score: float, reason: str | None = None) -> Candidate:
        """A copy with ``score`` replaced and recorded under ``stage``."""
        scores = dict(self.scores)
        scores[stage] = float(score)
        reasons = (*self.reasons, reason) if reason else self.reasons
        return Candidate(self.item, float(score), MappingProxyType(scores), reasons)
