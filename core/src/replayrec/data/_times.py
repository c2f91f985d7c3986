"""Event times on a continuous clock: the replay controller and the streaming features share this."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["ACTION_OF", "DAY", "event_times_ms", "spread_within_days"]

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


def event_times_ms(timestamps: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """The events' times on the bus, in Unix milliseconds: :func:`spread_within_days`, rounded to the
    millisecond exactly as the replay encodes them."""
    return np.round(spread_within_days(timestamps) * 1000).astype(np.int64)
