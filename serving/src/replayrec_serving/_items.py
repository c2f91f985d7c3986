"""Item statistics for the stages that read them (RankNet's popularity and recency features), from the online
store — what the stream job keeps in Redis — summed there in one round trip, reused for a moment per item and
window, and the offline timeline (the events the service started with) whenever the store cannot answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import redis

from replayrec.features import DAY_MS, ItemTimeline, OnlineFeatures, StoreNotReadyError

__all__ = ["OnlineItemClock"]

I64 = npt.NDArray[np.int64]


class OnlineItemClock:
    """``item_features(items, at, window)`` (times in Unix seconds) as :class:`ItemTimeline` has it, read from
    the online store. The window counts whole days (the store keeps events per day); an item's numbers are
    reused for ``ttl_s`` (the stream itself is about a second behind)."""

    def __init__(
        self,
        store: OnlineFeatures,
        offline: ItemTimeline,
        ttl_s: float = 5.0,
        on_fallback: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.offline = offline
        self.ttl_s = ttl_s
        self.on_fallback = on_fallback  # told each time the offline timeline answered instead
        self._cache: dict[tuple[int, int, int], tuple[float, int, int, int, int]] = {}
        self._lock = threading.Lock()

    def item_features(self, items: I64, at: int, window: int) -> tuple[I64, I64, I64, I64]:
        items = np.asarray(items, dtype=np.int64)
        lo, hi = (int(window) * 1000) // DAY_MS, (int(at) * 1000) // DAY_MS + 1
        now = time.monotonic()
        rows: dict[int, tuple[int, int, int, int]] = {}
        with self._lock:
            for it in items.tolist():
                hit = self._cache.get((it, lo, hi))
                if hit is not None and now - hit[0] < self.ttl_s:
                    rows[it] = hit[1:]
        missing = [it for it in items.tolist() if it not in rows]
        if missing:
            try:
                got = self.store.item_features_between(missing, lo, hi)
            except (redis.RedisError, StoreNotReadyError):
                if self.on_fallback is not None:
                    self.on_fallback()
                return self.offline.item_features(items, at, window)
            with self._lock:
                if len(self._cache) > 200_000:
                    self._cache.clear()
                for j, it in enumerate(missing):
                    row = (int(got[0][j]), int(got[1][j]), int(got[2][j]), int(got[3][j]))
                    self._cache[(it, lo, hi)] = (now, *row)
                    rows[it] = row
        a = np.array([rows[it] for it in items.tolist()], dtype=np.int64).reshape(items.size, 4)
        first = np.where(a[:, 2] >= 0, a[:, 2] // 1000, -1)
        last = np.where(a[:, 3] >= 0, a[:, 3] // 1000, -1)
        return a[:, 0].copy(), a[:, 1].copy(), first.astype(np.int64), last.astype(np.int64)
