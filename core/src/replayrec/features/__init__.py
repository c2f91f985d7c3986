"""Features: one definition of what the models read at request time — a user's profile and the items'
statistics — with an offline implementation (as of any moment, from an events table) and an online one
(Redis, kept by the stream job). See ``docs/stream.md`` for the Redis key layout.
"""

from replayrec.features._batch import (
    FROM_THE_FUTURE,
    TOO_LATE,
    UNKNOWN_ITEM,
    EventColumns,
    Payload,
    build_payload,
    canonical_offsets,
    parse_offsets,
    screen,
)
from replayrec.features._offline import ItemTimeline, OfflineFeatures, history_window
from replayrec.features._online import (
    ApplyOutcome,
    OnlineFeatures,
    StoreMeta,
    StoreNotReadyError,
    feature_prefix,
    view_namespace,
)
from replayrec.features._spec import (
    DAY_MS,
    FeatureSpec,
    ItemStats,
    UserProfile,
    day_of,
    interest_vector,
    window_start_ms,
)

__all__ = [
    "DAY_MS",
    "FROM_THE_FUTURE",
    "TOO_LATE",
    "UNKNOWN_ITEM",
    "ApplyOutcome",
    "EventColumns",
    "FeatureSpec",
    "ItemStats",
    "ItemTimeline",
    "OfflineFeatures",
    "OnlineFeatures",
    "Payload",
    "StoreMeta",
    "StoreNotReadyError",
    "UserProfile",
    "build_payload",
    "canonical_offsets",
    "day_of",
    "feature_prefix",
    "history_window",
    "interest_vector",
    "parse_offsets",
    "screen",
    "view_namespace",
    "window_start_ms",
]
