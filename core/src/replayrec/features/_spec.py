"""The feature definitions: what a user profile and an item's statistics are, and the read-time arithmetic
both stores share (so the offline and the online value of a feature are the same numbers, bit for bit).

Times are Unix **milliseconds** (int64) and a *day* is ``time_ms // 86_400_000`` (UTC). Everything stored is
an integer or an id — counts, times, item ids — and the one floating-point feature (the interest vector) is
derived from stored integer counts by :func:`interest_vector`, the same function on both sides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DAY_MS",
    "FeatureSpec",
    "ItemStats",
    "UserProfile",
    "day_of",
    "interest_vector",
    "window_start_ms",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
DAY_MS = 86_400_000


class FeatureSpec(BaseModel):
    """The knobs of the feature definitions (one per deployment; the stream job and every reader share it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recent_events: int = Field(50, ge=1, le=1000, description="events kept in a profile's recent list")
    interest_half_life_days: float = Field(30.0, gt=0, description="half-life of the interest decay")
    interest_horizon_days: int = Field(
        365, ge=1, description="days of a user's activity the interest vector looks back over"
    )
    lateness_s: int = Field(
        3600,
        ge=0,
        description="an event older than this behind the newest earlier event of its partition is refused",
    )
    max_ahead_s: int = Field(
        3600,
        ge=0,
        description="an event dated more than this after its record was produced is refused (a clock error "
        "would otherwise hold back every later event of its partition)",
    )

    @property
    def lateness_ms(self) -> int:
        return self.lateness_s * 1000

    @property
    def max_ahead_ms(self) -> int:
        return self.max_ahead_s * 1000

    def fingerprint(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self.model_dump().items()))


def day_of(time_ms: int | npt.ArrayLike) -> I64:
    """UTC day numbers of Unix-millisecond times."""
    return np.floor_divide(np.asarray(time_ms, dtype=np.int64), DAY_MS)


def window_start_ms(at_ms: int, days: int) -> int:
    """Start of a ``days``-day window as of ``at_ms``: the ``days`` whole UTC days before ``at_ms``'s day,
    plus that day up to ``at_ms`` (so at midnight it is exactly ``[at - days, at)``)."""
    return int((at_ms // DAY_MS - days) * DAY_MS)


def interest_vector(groups: I64, days: I64, counts: I64, at_ms: int, n_groups: int, spec: FeatureSpec) -> F64:
    """The decayed interest over item groups as of ``at_ms`` from ``(group, day) → count`` buckets.

    ``interest[g] = Σ count · 2^(-(day(at) - day) / half_life)`` over the buckets of the last
    ``interest_horizon_days`` days (``day(at) - day < horizon``), normalised to sum 1 (all zeros when empty).
    Buckets are summed in ``(group, day)`` order, so equal inputs give equal bits.
    """
    g = np.asarray(groups, dtype=np.int64)
    d = np.asarray(days, dtype=np.int64)
    c = np.asarray(counts, dtype=np.int64)
    age = int(at_ms // DAY_MS) - d
    keep = (age >= 0) & (age < spec.interest_horizon_days) & (g >= 0) & (g < n_groups)
    g, d, c, age = g[keep], d[keep], c[keep], age[keep]
    order = np.lexsort((d, g))
    w = c[order].astype(np.float64) * np.exp2(-age[order].astype(np.float64) / spec.interest_half_life_days)
    vec: F64 = np.bincount(g[order], weights=w, minlength=n_groups).astype(np.float64)
    total = float(vec.sum())
    if total > 0:
        vec = vec / total
    return vec


_NO_COUNTS: Mapping[str, int] = MappingProxyType({})


@dataclass(frozen=True, eq=False)
class UserProfile:
    """One user's profile as of a moment: everything the models read about the user at request time.

    Attributes:
        user: the shop's user id.
        version: events applied to this profile so far (changes with every event: the cache key).
        recent_items, recent_times, recent_actions: the newest ``recent_events`` events (in the order they
            were applied), sorted by time (stable): the request history, oldest first.
        exclude: every distinct item the user has an event with (sorted dense ids).
        interest: the decayed interest over item groups (:func:`interest_vector`).
        counts: events per action; ``total``: all of them.
        first_ms, last_ms: times of the user's earliest and newest event (None without events).
    """

    user: str
    version: int
    recent_items: I64
    recent_times: I64
    recent_actions: tuple[str, ...]
    exclude: I64
    interest: F64
    counts: Mapping[str, int] = field(default_factory=lambda: _NO_COUNTS)
    first_ms: int | None = None
    last_ms: int | None = None

    @property
    def total(self) -> int:
        return int(sum(self.counts.values()))

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view (explanations, the CLI, tests)."""
        return {
            "user": self.user,
            "version": self.version,
            "recent": [
                {"item": int(i), "time_ms": int(t), "action": a}
                for i, t, a in zip(self.recent_items, self.recent_times, self.recent_actions, strict=True)
            ],
            "exclude": [int(i) for i in self.exclude],
            "interest": [float(x) for x in self.interest],
            "counts": dict(sorted(self.counts.items())),
            "first_ms": self.first_ms,
            "last_ms": self.last_ms,
        }

    def same_as(self, other: UserProfile) -> bool:
        """Exact equality of every feature (arrays compared element-wise, floats bit for bit)."""
        return (
            self.user == other.user
            and self.version == other.version
            and np.array_equal(self.recent_items, other.recent_items)
            and np.array_equal(self.recent_times, other.recent_times)
            and self.recent_actions == other.recent_actions
            and np.array_equal(self.exclude, other.exclude)
            and np.array_equal(self.interest, other.interest)
            and dict(self.counts) == dict(other.counts)
            and self.first_ms == other.first_ms
            and self.last_ms == other.last_ms
        )


def sort_recent(items: I64, times: I64, actions: list[str]) -> tuple[I64, I64, tuple[str, ...]]:
    """A recent list in application order → sorted by time, stable."""
    order = np.argsort(times, kind="stable")
    return items[order], times[order], tuple(actions[i] for i in order.tolist())


@dataclass(frozen=True, eq=False)
class ItemStats:
    """Statistics of a set of items as of a moment (parallel arrays, one entry per asked item).

    Attributes:
        items: the dense item ids asked for.
        total: events of each item so far.
        first_ms, last_ms: times of its earliest and newest event (-1 without events).
        days, day_counts: CSR per item (``day_ptr``): the days with events and the events on each.
    """

    items: I64
    total: I64
    first_ms: I64
    last_ms: I64
    day_ptr: I64
    days: I64
    day_counts: I64

    def window(self, at_ms: int, days: int) -> I64:
        """Events of each item in the ``days``-day window as of ``at_ms`` (:func:`window_start_ms`)."""
        lo_day = window_start_ms(at_ms, days) // DAY_MS
        keep = (self.days >= lo_day).astype(np.int64) * self.day_counts
        csum = np.concatenate([[0], np.cumsum(keep)])
        out: I64 = (csum[self.day_ptr[1:]] - csum[self.day_ptr[:-1]]).astype(np.int64)
        return out

    def same_as(self, other: ItemStats) -> bool:
        return all(
            np.array_equal(getattr(self, k), getattr(other, k))
            for k in ("items", "total", "first_ms", "last_ms", "day_ptr", "days", "day_counts")
        )
