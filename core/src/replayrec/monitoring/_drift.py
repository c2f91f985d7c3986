"""Data drift: the live window's events against the training window's, as distributions.

Three distributions, each over the *events* of a window:

* ``item_group`` — the catalogue group (category) of each event's item;
* ``item_popularity`` — the popularity class of each event's item (deciles of the historical event mass,
  heaviest first; items never seen before are a class of their own);
* ``user_activity`` — the activity class of each event's user (1, 2–3, 4–7, … historical events; users
  never seen before are a class of their own).

Each pair is compared with the population stability index (PSI, natural log, both sides smoothed by
``EPS``) and the Jensen–Shannon divergence (base 2, in [0, 1]). The share of live events on items (users)
absent from the training window is reported beside them: the models cannot have learned anything about those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from replayrec.errors import DataError

__all__ = [
    "EPS",
    "DriftReport",
    "DriftThresholds",
    "Window",
    "compute_drift",
    "jensen_shannon",
    "psi",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

#: probability floor of each bin before PSI (an empty bin would make it infinite)
EPS = 1e-4
_ACTIVITY_EDGES = (1, 2, 4, 8, 16, 32, 64, 128)  # class c holds counts in [edge[c], edge[c + 1])


class DriftThresholds(BaseModel):
    """Alert thresholds. PSI 0.2 and JS 0.1 are the usual "significant shift" marks (PSI < 0.1: stable,
    0.1–0.25: moderate, > 0.25: major); the unseen shares are the product's own choice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    psi: float = Field(default=0.2, gt=0)
    js: float = Field(default=0.1, gt=0, le=1)
    unseen_item: float = Field(default=0.2, gt=0, le=1)
    unseen_user: float = Field(default=0.5, gt=0, le=1)
    #: fewer live events than this: no verdict (a handful of events says nothing about a distribution)
    min_events: int = Field(default=500, ge=1)


@dataclass(frozen=True)
class Window:
    """The events of a window as dense ids (``users``, ``items``) and times."""

    users: I64
    items: I64
    times: I64

    def __post_init__(self) -> None:
        if not (self.users.shape == self.items.shape == self.times.shape):
            raise DataError("a window needs as many users as items and times")

    def __len__(self) -> int:
        return int(self.items.size)


@dataclass(frozen=True)
class DriftReport:
    """Scores per feature (``{"item_group": {"psi": .., "js": ..}, ..}``), unseen shares, the verdicts."""

    scores: dict[str, dict[str, float]]
    unseen: dict[str, float]
    events: dict[str, int]
    thresholds: DriftThresholds
    histograms: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    @property
    def enough(self) -> bool:
        return self.events["live"] >= self.thresholds.min_events

    @property
    def alarms(self) -> list[str]:
        """What is over its threshold (empty while the live window is too small to judge)."""
        if not self.enough:
            return []
        t = self.thresholds
        out = [
            f"{feature} {score} {value:.3f} > {getattr(t, score)}"
            for feature, by_score in self.scores.items()
            for score, value in by_score.items()
            if value > getattr(t, score)
        ]
        limits = {"item": t.unseen_item, "user": t.unseen_user}
        out += [
            f"unseen {kind} share {share:.3f} > {limits[kind]}"
            for kind, share in self.unseen.items()
            if share > limits[kind]
        ]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "scores": self.scores,
            "unseen_share": self.unseen,
            "events": self.events,
            "thresholds": self.thresholds.model_dump(),
            "enough_events": self.enough,
            "alarms": self.alarms,
            "drifted": bool(self.alarms),
        }


def _probabilities(counts: F64) -> F64:
    total = counts.sum()
    if total <= 0:
        raise DataError("an empty distribution cannot be compared")
    out: F64 = counts / total
    return out


def psi(expected: F64, actual: F64, eps: float = EPS) -> float:
    """Population stability index of two histograms (counts or probabilities) over the same bins."""
    p = np.maximum(_probabilities(np.asarray(expected, dtype=np.float64)), eps)
    q = np.maximum(_probabilities(np.asarray(actual, dtype=np.float64)), eps)
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(expected: F64, actual: F64) -> float:
    """Jensen–Shannon divergence (base 2: 0 identical, 1 disjoint) of two histograms over the same bins."""
    p = _probabilities(np.asarray(expected, dtype=np.float64))
    q = _probabilities(np.asarray(actual, dtype=np.float64))
    m = (p + q) / 2

    def kl(a: F64) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return max(0.0, min(1.0, 0.5 * kl(p) + 0.5 * kl(q)))


def _popularity_class(train: Window, n_items: int, bins: int = 10) -> I64:
    """Each item's class: deciles of the training event mass (0 = the items of the heaviest tenth of events),
    ``bins`` for items with no training event."""
    counts = np.bincount(train.items, minlength=n_items).astype(np.float64)
    order = np.argsort(-counts, kind="stable")
    cum = np.cumsum(counts[order]) / max(counts.sum(), 1.0)
    cls = np.empty(n_items, dtype=np.int64)
    cls[order] = np.minimum((cum * bins - 1e-9).astype(np.int64), bins - 1).clip(0)
    cls[counts == 0] = bins
    return cls


def _activity_class(train: Window, n_users: int) -> I64:
    counts = np.bincount(train.users, minlength=n_users)
    # 0: no training event (a new user), 1: one event, 2: 2-3, ...
    return np.searchsorted(np.asarray(_ACTIVITY_EDGES), counts, side="right").astype(np.int64)


def _reference(train: Window, n: int) -> tuple[Window, Window]:
    """The training window split in two: its history and its last ``n`` events (the reference window: the
    same statistic, measured the way the monitor measures the live window, at the end of training)."""
    order = np.argsort(train.times, kind="stable")
    n = max(1, min(n, len(train) // 2))
    head, tail = order[:-n], order[-n:]
    return (
        Window(train.users[head], train.items[head], train.times[head]),
        Window(train.users[tail], train.items[tail], train.times[tail]),
    )


def _classes(history: Window, n_items: int, n_users: int) -> tuple[I64, I64, npt.NDArray[np.bool_]]:
    pop = _popularity_class(history, n_items)
    act = _activity_class(history, n_users)
    seen_items = np.zeros(n_items, dtype=bool)
    seen_items[history.items] = True
    return pop, act, seen_items


def compute_drift(
    train: Window,
    live: Window,
    item_groups: I64,
    n_users: int,
    thresholds: DriftThresholds | None = None,
) -> DriftReport:
    """Compare ``live`` with ``train`` (see the module docstring). ``item_groups``: each item's group
    (negative: no group, a bin of its own).

    The group mix is compared with the whole training window. Popularity and activity classes are relative
    to a history, so they are compared like with like: the training window's last ``len(live)`` events (the
    reference) against the live window, each classed by the training events before the reference — a
    stationary stream scores near zero, however its users accumulate history."""
    t = thresholds or DriftThresholds()
    if not len(train):
        raise DataError("the training window holds no event")
    n_items = int(item_groups.size)
    groups = np.where(item_groups < 0, item_groups.max(initial=0) + 1, item_groups)
    history, ref = _reference(train, len(live))
    pop, act, _ = _classes(history, n_items, n_users)
    features = {
        "item_group": (groups[train.items], groups[live.items], int(groups.max(initial=0)) + 1),
        "item_popularity": (pop[ref.items], pop[live.items], 11),
        "user_activity": (act[ref.users], act[live.users], len(_ACTIVITY_EDGES) + 1),
    }
    scores: dict[str, dict[str, float]] = {}
    hists: dict[str, dict[str, list[float]]] = {}
    for name, (a, b, n_bins) in features.items():
        h_train = np.bincount(a, minlength=n_bins).astype(np.float64)
        h_live = np.bincount(b, minlength=n_bins).astype(np.float64)
        if len(live):
            scores[name] = {"psi": psi(h_train, h_live), "js": jensen_shannon(h_train, h_live)}
        else:
            scores[name] = {"psi": 0.0, "js": 0.0}
        hists[name] = {
            "train": (h_train / h_train.sum()).round(4).tolist(),
            "live": (h_live / max(h_live.sum(), 1.0)).round(4).tolist(),
        }
    seen_items = np.zeros(n_items, dtype=bool)
    seen_items[train.items] = True
    seen_users = np.zeros(n_users, dtype=bool)
    seen_users[train.users] = True
    unseen = {
        "item": float((~seen_items[live.items]).mean()) if len(live) else 0.0,
        "user": float((~seen_users[live.users]).mean()) if len(live) else 0.0,
    }
    events = {"train": len(train), "live": len(live), "reference": len(ref)}
    return DriftReport(scores, unseen, events, t, hists)
