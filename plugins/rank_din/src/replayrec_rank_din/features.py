"""Feature bucketing shared by training and serving (numpy only, no torch).

The history the network reads is the newest ``max_history`` events before the request (core's definition,
:func:`replayrec.features.history_window`; by default the profile's ``recent_events``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from replayrec.features import history_window

__all__ = ["N_LENGTH_BUCKETS", "N_TIME_BUCKETS", "history_block", "length_bucket", "time_bucket"]

I64 = npt.NDArray[np.int64]
#: time-gap buckets: 0 = under a day, then doubling spans of days (1-2, 2-4, ... days), the last open-ended
N_TIME_BUCKETS = 16
#: history-length buckets: 0 = empty, then 1, 2-3, 4-7, ... items
N_LENGTH_BUCKETS = 8
_DAY = 86_400


def time_bucket(gap_seconds: npt.ArrayLike) -> I64:
    """Bucket of ``request time - event time`` (negative gaps, clock skew, count as 0)."""
    days = np.maximum(np.asarray(gap_seconds, dtype=np.float64), 0.0) / _DAY
    with np.errstate(divide="ignore"):
        b = np.where(days < 1.0, 0, 1 + np.floor(np.log2(np.maximum(days, 1.0))))
    return np.minimum(b, N_TIME_BUCKETS - 1).astype(np.int64)


def length_bucket(n: npt.ArrayLike) -> I64:
    """Bucket of a history length: 0 for none, else ``1 + floor(log2 n)``, capped."""
    arr = np.asarray(n, dtype=np.float64)
    b = np.where(arr < 1, 0, 1 + np.floor(np.log2(np.maximum(arr, 1.0))))
    return np.minimum(b, N_LENGTH_BUCKETS - 1).astype(np.int64)


def history_block(
    items: I64, times: I64, start: I64, end: I64, at: I64, max_history: int
) -> dict[str, npt.NDArray[np.int64]]:
    """Left-padded history arrays of rows whose events are ``items[start:end]`` at request times ``at``:
    the newest ``max_history`` of them (:func:`~replayrec.features.history_window`)."""
    if items.size == 0:  # every history is empty: index a dummy element, masked out below
        items, times = np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
    lens = end - history_window(end, start, max_history)
    width = max(int(lens.max()) if lens.size else 0, 1)
    col = np.arange(width)[None, :]
    offset = width - lens[:, None]  # left padding
    valid = col >= offset
    idx = np.where(valid, (end - lens)[:, None] + (col - offset), 0)
    h_items = np.where(valid, items[idx] + 1, 0)
    gaps = np.where(valid, at[:, None] - times[idx], 0)
    last_gap = np.where(lens > 0, at - times[np.maximum(end - 1, 0)], 0)
    return {
        "hist_items": h_items.astype(np.int64),
        "hist_time": np.where(valid, time_bucket(gaps), 0),
        "hist_pos": np.where(valid, width - 1 - col, 0).astype(np.int64),
        "context": np.stack([length_bucket(lens), time_bucket(last_gap)], axis=1).astype(np.int64),
    }
