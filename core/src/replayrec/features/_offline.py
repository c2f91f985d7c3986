"""The offline feature store: every feature as of any moment, computed from an events table.

Point-in-time correct: a feature as of ``at_ms`` sees exactly the events with ``time_ms < at_ms``. The
table is in *log order* (the order the stream applies events in; a dataset's global order); a user's recent
list is the newest ``recent_events`` of those in that order, as the online store keeps it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from replayrec.data import ACTION_OF, Dataset, Interactions, replay_times, to_ms
from replayrec.errors import DataError
from replayrec.features._spec import (
    FeatureSpec,
    ItemStats,
    UserProfile,
    day_of,
    interest_vector,
    sort_recent,
    window_start_ms,
)

__all__ = ["ItemTimeline", "OfflineFeatures", "history_window"]

I64 = npt.NDArray[np.int64]


def history_window(end: I64, start: I64, n: int) -> I64:
    """First index of each request's history when its events are ``[start, end)`` of a sequence array and the
    model reads the newest ``n`` of them (the profile's recent list)."""
    out: I64 = np.maximum(np.asarray(start, dtype=np.int64), np.asarray(end, dtype=np.int64) - n)
    return out


@dataclass(frozen=True)
class ItemTimeline:
    """Every item's event times, sorted (CSR): the item statistics as of any time, vectorised.

    This is the offline side of :class:`~replayrec.features.ItemStats`; RankNet's popularity and recency
    features read it (``item_features``).
    """

    ptr: I64
    times: I64

    @classmethod
    def build(cls, item: I64, time: I64, n_items: int) -> ItemTimeline:
        item = np.asarray(item, dtype=np.int64)
        time = np.asarray(time, dtype=np.int64)
        order = np.lexsort((time, item))
        ptr = np.zeros(n_items + 1, dtype=np.int64)
        np.cumsum(np.bincount(item, minlength=n_items), out=ptr[1:])
        return cls(ptr, time[order])

    @classmethod
    def from_interactions(cls, events: Interactions, scale: int = 1) -> ItemTimeline:
        """From :class:`Interactions` (``scale`` multiplies their timestamps, e.g. 1000 for seconds → ms)."""
        return cls.build(events.item, events.timestamp * scale, events.n_items)

    def before(self, items: I64, t: int) -> tuple[I64, I64]:
        """(events of each item strictly before ``t``, index of the first of them in :attr:`times`)."""
        lo, hi = self.ptr[items], self.ptr[items + 1]
        n = np.array(
            [np.searchsorted(self.times[a:b], t, "left") for a, b in zip(lo, hi, strict=True)], dtype=np.int64
        )
        return n, lo

    def item_features(self, items: I64, at: int, window: int) -> tuple[I64, I64, I64, I64]:
        """(events before ``at``, events since ``window`` — a time in the same unit —, first time, last time;
        -1 for an item without events) of each item."""
        items = np.asarray(items, dtype=np.int64)
        count, lo = self.before(items, at)
        older, _ = self.before(items, window)
        has = count > 0
        last_i = np.maximum(lo + count - 1, 0)
        first = np.where(
            has, self.times[np.minimum(lo, max(self.times.size - 1, 0))] if self.times.size else 0, -1
        )
        last = np.where(has, self.times[last_i] if self.times.size else 0, -1)
        return count, count - older, first.astype(np.int64), last.astype(np.int64)


class OfflineFeatures:
    """Features as of any moment from an events table (parallel arrays in log order; times in ms)."""

    def __init__(
        self,
        users: Sequence[str],
        items: npt.ArrayLike,
        times_ms: npt.ArrayLike,
        actions: Sequence[str],
        groups: npt.ArrayLike,
        spec: FeatureSpec | None = None,
    ) -> None:
        self.spec = spec or FeatureSpec()
        self.items = np.asarray(items, dtype=np.int64)
        self.times = np.asarray(times_ms, dtype=np.int64)
        self.groups = np.asarray(groups, dtype=np.int64)
        self.n_items = int(self.groups.size)
        self.n_groups = int(self.groups.max()) + 1 if self.groups.size else 0
        if not (len(users) == self.items.size == self.times.size == len(actions)):
            raise DataError("users, items, times and actions must have the same length")
        if self.items.size and (int(self.items.min()) < 0 or int(self.items.max()) >= self.n_items):
            raise DataError("an event's item lies outside the catalogue")
        codes, self.user_ids = _codes(users)
        self.action_names, act = np.unique(np.asarray(actions, dtype=object).astype(str), return_inverse=True)
        self.actions = act.astype(np.int64)
        order = np.argsort(codes, kind="stable")  # per user, log order
        self._u_ptr = np.zeros(len(self.user_ids) + 1, dtype=np.int64)
        np.cumsum(np.bincount(codes, minlength=len(self.user_ids)), out=self._u_ptr[1:])
        self._u_order = order
        self._index = {u: i for i, u in enumerate(self.user_ids)}

    @classmethod
    def from_dataset(
        cls,
        dataset: Dataset,
        spec: FeatureSpec | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> OfflineFeatures:
        """The dataset's events as the replay puts them on the bus (raw user ids, times spread within days);
        with ``since_ms`` / ``until_ms``, only those of a replayed range ``[since, until)``."""
        ev = dataset.events
        order, seconds = replay_times(ev)
        times = to_ms(seconds)
        keep = np.ones(order.size, dtype=bool)
        if since_ms is not None:
            keep &= times >= since_ms
        if until_ms is not None:
            keep &= times < until_ms
        order, times = order[keep], times[keep]
        raw = dataset.users["raw_id"].astype(str).to_numpy()
        act = np.asarray([ACTION_OF[a] for a in ev["action"].astype(str).to_numpy()[order].tolist()])
        return cls(
            raw[ev["user"].to_numpy()[order]].tolist(),
            ev["item"].to_numpy(np.int64)[order],
            times,
            act.tolist(),
            dataset.catalog.groups,
            spec,
        )

    @cached_property
    def timeline(self) -> ItemTimeline:
        return ItemTimeline.build(self.items, self.times, self.n_items)

    @property
    def users(self) -> list[str]:
        return list(self.user_ids)

    def users_before(self, at_ms: int) -> list[str]:
        """Users with at least one event before ``at_ms``."""
        seen = np.unique(self._codes_of(self.times < at_ms))
        return [self.user_ids[int(c)] for c in seen]

    def _codes_of(self, mask: npt.NDArray[np.bool_]) -> I64:
        codes = np.empty(self.items.size, dtype=np.int64)
        codes[self._u_order] = np.repeat(np.arange(len(self.user_ids)), np.diff(self._u_ptr))
        out: I64 = codes[mask]
        return out

    def profile(self, user: str, at_ms: int) -> UserProfile:
        """``user``'s profile as of ``at_ms`` (an empty profile for a user without earlier events)."""
        code = self._index.get(user)
        rows = (
            self._u_order[self._u_ptr[code] : self._u_ptr[code + 1]]
            if code is not None
            else np.zeros(0, np.int64)
        )
        rows = rows[self.times[rows] < at_ms]
        items, times = self.items[rows], self.times[rows]
        acts = [str(self.action_names[a]) for a in self.actions[rows].tolist()]
        n = self.spec.recent_events
        r_items, r_times, r_acts = sort_recent(items[-n:], times[-n:], acts[-n:])
        g = self.groups[items] if items.size else np.zeros(0, np.int64)
        keys, counts = np.unique(np.stack([g, day_of(times)]).reshape(2, -1), axis=1, return_counts=True)
        return UserProfile(
            user=user,
            version=int(rows.size),
            recent_items=r_items,
            recent_times=r_times,
            recent_actions=r_acts,
            exclude=np.unique(items),
            interest=interest_vector(keys[0], keys[1], counts, at_ms, self.n_groups, self.spec),
            counts=dict(sorted(Counter(acts).items())),
            first_ms=int(times.min()) if times.size else None,
            last_ms=int(times.max()) if times.size else None,
        )

    def item_stats(self, items: npt.ArrayLike, at_ms: int) -> ItemStats:
        """Statistics of ``items`` as of ``at_ms``."""
        items = np.asarray(items, dtype=np.int64)
        tl = self.timeline
        total, first, last, ptr, days, counts = [], [], [], [0], [], []
        for it in items.tolist():
            t = tl.times[tl.ptr[it] : tl.ptr[it + 1]]
            t = t[t < at_ms]
            total.append(t.size)
            first.append(int(t[0]) if t.size else -1)
            last.append(int(t[-1]) if t.size else -1)
            d, c = np.unique(day_of(t), return_counts=True)
            days.extend(d.tolist())
            counts.extend(c.tolist())
            ptr.append(len(days))
        return ItemStats(
            items, *(np.asarray(x, dtype=np.int64) for x in (total, first, last, ptr, days, counts))
        )

    def item_features(self, items: npt.ArrayLike, at_ms: int, window_days: int) -> tuple[I64, I64, I64, I64]:
        """(total, events in the ``window_days`` window, first, last) of each item as of ``at_ms``."""
        return self.timeline.item_features(
            np.asarray(items, np.int64), at_ms, window_start_ms(at_ms, window_days)
        )

    def global_counts(self, at_ms: int) -> dict[str, int]:
        """The global counters: ``n`` (events), ``a:<action>`` and ``d:<day>`` (events per day)."""
        m = self.times < at_ms
        out = {"n": int(m.sum())}
        for a, c in zip(*np.unique(self.actions[m], return_counts=True), strict=True):
            out[f"a:{self.action_names[a]}"] = int(c)
        for d, c in zip(*np.unique(day_of(self.times[m]), return_counts=True), strict=True):
            out[f"d:{int(d)}"] = int(c)
        return out

    def popular(self, at_ms: int, window_days: int, k: int) -> list[tuple[int, int]]:
        """The ``k`` items with most events in the window as of ``at_ms``: ``(item, count)``, ties by id."""
        m = (self.times < at_ms) & (self.times >= window_start_ms(at_ms, window_days))
        counts = np.bincount(self.items[m], minlength=self.n_items)
        top = np.lexsort((np.arange(self.n_items), -counts))[:k]
        return [(int(i), int(counts[i])) for i in top if counts[i] > 0]


def _codes(users: Sequence[str]) -> tuple[I64, list[str]]:
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(u, len(index)) for u in users), dtype=np.int64, count=len(users))
    return codes, list(index)
