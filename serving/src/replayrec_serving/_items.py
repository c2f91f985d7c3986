"""Item statistics for the stages that read them (RankNet's popularity and recency features), from the online
store — what the stream job keeps in Redis — with a short per-item cache, and the offline timeline (the
events the service was started with) whenever the store cannot answer."""

from __future__ import annotations

import threading
import time

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

    def __init__(self, store: OnlineFeatures, offline: ItemTimeline, ttl_s: float = 1.0) -> None:
        self.store = store
        self.offline = offline
        self.ttl_s = ttl_s
        self._cache: dict[int, tuple[float, int, int, int, I64, I64]] = {}
        self._lock = threading.Lock()
        self.fallbacks = 0

    def _stats(self, items: I64) -> dict[int, tuple[int, int, int, I64, I64]]:
        now = time.monotonic()
        out: dict[int, tuple[int, int, int, I64, I64]] = {}
        missing: list[int] = []
        with self._lock:
            for it in items.tolist():
                hit = self._cache.get(it)
                if hit is not None and now - hit[0] < self.ttl_s:
                    out[it] = hit[1:]
                else:
                    missing.append(it)
        if missing:
            st = self.store.item_stats(missing)
            with self._lock:
                if len(self._cache) > 200_000:
                    self._cache.clear()
                for j, it in enumerate(missing):
                    a, b = int(st.day_ptr[j]), int(st.day_ptr[j + 1])
                    row = (
                        int(st.total[j]),
                        int(st.first_ms[j]),
                        int(st.last_ms[j]),
                        st.days[a:b],
                        st.day_counts[a:b],
                    )
                    self._cache[it] = (now, *row)
                    out[it] = row
        return out

    def item_features(self, items: I64, at: int, window: int) -> tuple[I64, I64, I64, I64]:
        items = np.asarray(items, dtype=np.int64)
        try:
            stats = self._stats(items)
        except (redis.RedisError, StoreNotReadyError):
            self.fallbacks += 1
            return self.offline.item_features(items, at, window)
        lo_day = (int(window) * 1000) // DAY_MS
        n = items.size
        total, recent, first, last = (np.empty(n, dtype=np.int64) for _ in range(4))
        for j, it in enumerate(items.tolist()):
            t, f, la, days, counts = stats[it]
            total[j] = t
            recent[j] = int(counts[days >= lo_day].sum()) if days.size else 0
            first[j] = f // 1000 if f >= 0 else -1
            last[j] = la // 1000 if la >= 0 else -1
        return total, recent, first, last
