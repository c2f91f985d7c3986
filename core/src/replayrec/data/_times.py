"""Event times on a continuous clock: the replay controller and the streaming features share this."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["ACTION_OF", "DAY", "replay_times", "spread_within_days", "to_ms"]

DAY = 86_400
#: prepared-data actions → event-schema actions (what the bus carries and the features count)
ACTION_OF = {"rating": "rate", "review": "review", "click": "click", "view": "view", "purchase": "purchase"}


def spread_within_days(timestamps: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Unix seconds (float) for events given in dataset order (non-decreasing ``timestamps``).

    When every timestamp is a whole UTC day (the Amazon data), the ``n`` events of one day are spread evenly
    over that day in their dataset order: the ``j``-th happens at ``day + j * 86400 / n`` (so the first at
    midnight and none reaches the next day). Finer-grained timestamps are kept as they are.
    """
    ts = np.asarray(timestamps, dtype=np.int64)
    if ts.size and np.any(np.diff(ts) < 0):
        raise ValueError("timestamps must be in non-decreasing (dataset) order")
    out = ts.astype(np.float64)
    if ts.size == 0 or np.any(ts % DAY):
        return out
    _, first, counts = np.unique(ts, return_index=True, return_counts=True)
    rank = np.arange(ts.size) - np.repeat(first, counts)
    return out + rank * (DAY / np.repeat(counts, counts))


def replay_times(events: pd.DataFrame) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The replay's view of an events table: the row order (the global ``seq`` order) and each event's time
    on the continuous clock (:func:`spread_within_days`), in that order. The replay controller and the
    offline features both use it, so they agree on every event's time."""
    order = np.argsort(events["seq"].to_numpy(), kind="stable").astype(np.int64)
    return order, spread_within_days(events["timestamp"].to_numpy(np.int64)[order])


def to_ms(seconds: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Unix seconds → the integer milliseconds the bus carries (rounded to the nearest)."""
    return np.round(np.asarray(seconds, dtype=np.float64) * 1000).astype(np.int64)
