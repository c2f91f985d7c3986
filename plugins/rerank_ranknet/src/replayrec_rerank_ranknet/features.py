"""Per-candidate features for RankNet, computed as of the request time (numpy only).

For a ranked list (the rank stage's order) each candidate gets:

==============  ==========================================================================================
``rank_score``  the rank stage's score (DIN's)
``recall``      the recall score (the first score recorded on the candidate)
``position``    log(1 + its position in the incoming order)
``pop_all``     log(1 + events of the item before the request time)
``pop_recent``  log(1 + events of the item in the ``window_days`` before the request time)
``age``         log(1 + days since the item's first event before the request time; 0 if none)
``last_seen``   log(1 + days since the item's latest event before the request time; 0 if none)
``sim_last``    cosine similarity of the item's vector to the user's newest history item
``sim_recent``  the largest cosine similarity to the newest ``recent_items`` history items
``redundancy``  the largest cosine similarity to the candidates placed above it (the diversity signal)
==============  ==========================================================================================

Only events strictly before the request time count, so features of a past request never see its future.

For attribution (``replayrec report ablation``) a model can be trained with some features held at zero
(``drop``: it learns without them) and scored with some columns permuted among the list's candidates
(``shuffle``: what the trained model loses when those features stop carrying information).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from replayrec.errors import ConfigError
from replayrec.features import ItemTimeline
from replayrec.stages import Candidate, Request

__all__ = [
    "FEATURES",
    "channel_feature_names",
    "feature_columns",
    "list_features",
    "n_features",
    "shuffle_columns",
    "unit_vectors",
]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
FEATURES = (
    "rank_score",
    "recall",
    "position",
    "pop_all",
    "pop_recent",
    "age",
    "last_seen",
    "sim_last",
    "sim_recent",
    "redundancy",
)
_DAY = 86_400.0


def _unit(v: F32) -> F32:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    out: F32 = v / np.maximum(norm, 1e-12)
    return out


def channel_feature_names(channels: Sequence[str]) -> list[str]:
    """The two features of each recall channel, after :data:`FEATURES`."""
    return [f"{kind}:{name}" for name in channels for kind in ("score", "proposed")]


def n_features(channels: Sequence[str] = ()) -> int:
    return len(FEATURES) + 2 * len(channels)


def feature_columns(names: Sequence[str], channels: Sequence[str] = ()) -> list[int]:
    """The columns of the named features (:data:`FEATURES` or :func:`channel_feature_names`); an unknown
    name is a :class:`~replayrec.errors.ConfigError` that lists the known ones."""
    known = [*FEATURES, *channel_feature_names(channels)]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"ranknet: unknown feature(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return sorted({known.index(n) for n in names})


def shuffle_columns(features: F32, columns: Sequence[int], seed: int | Sequence[int]) -> F32:
    """``features`` with the rows of ``columns`` permuted together among the list's candidates (seeded):
    each candidate keeps its other features and gets another one's values of these."""
    if not columns or features.shape[0] < 2:
        return features
    out = features.copy()
    perm = np.random.default_rng(seed).permutation(features.shape[0])
    cols = np.asarray(columns, dtype=np.int64)
    out[:, cols] = features[perm][:, cols]
    return out


def _channel_columns(ranked: Sequence[Candidate], channels: Sequence[str], out: F32) -> None:
    """Each channel's score min-max scaled over the items it proposed in this list (1 when it proposed
    one, or all tie), 0 elsewhere; and 1 / 0 for whether it proposed the item."""
    base = len(FEATURES)
    for j, name in enumerate(channels):
        raw = np.array([c.scores.get(name, np.nan) for c in ranked], dtype=np.float64)
        has = np.isfinite(raw)
        if not has.any():
            continue
        lo, hi = raw[has].min(), raw[has].max()
        scaled = np.where(has, (raw - lo) / (hi - lo) if hi > lo else 1.0, 0.0)
        out[:, base + 2 * j] = scaled
        out[:, base + 2 * j + 1] = has


def list_features(
    request: Request,
    ranked: Sequence[Candidate],
    clock: ItemTimeline,
    vectors: F32,
    rank_stage: str,
    window_days: float = 30.0,
    recent_items: int = 5,
    channels: Sequence[str] = (),
    drop: Sequence[int] = (),
) -> F32:
    """Features (len(ranked), n_features(channels)) of a list in its incoming order; ``vectors`` are unit
    item vectors (n_items, d); ``channels`` the recall channels whose scores are features; the columns
    ``drop`` (:func:`feature_columns`) are held at zero."""
    n = len(ranked)
    out = np.zeros((n, n_features(channels)), dtype=np.float32)
    if n == 0:
        return out
    _channel_columns(ranked, channels, out)
    items = np.array([c.item for c in ranked], dtype=np.int64)
    t = int(request.timestamp)
    out[:, 0] = [c.scores.get(rank_stage, c.score) for c in ranked]
    out[:, 1] = [next(iter(c.scores.values()), 0.0) for c in ranked]
    out[:, 2] = np.log1p(np.arange(n))
    # the item statistics as of t over [t - window_days, t) (core's offline definition, with the window
    # start given explicitly: window_days may be fractional and request times need not be at midnight)
    count, recent, first, last = clock.item_features(items, t, int(t - window_days * _DAY))
    out[:, 3] = np.log1p(count)
    out[:, 4] = np.log1p(recent)
    has = count > 0
    out[:, 5] = np.where(has, np.log1p(np.maximum(t - first, 0) / _DAY), 0.0)
    out[:, 6] = np.where(has, np.log1p(np.maximum(t - last, 0) / _DAY), 0.0)
    cand = vectors[items]
    hist = request.history[-recent_items:]
    if hist.size:
        sims = cand @ vectors[hist].T  # (n, h)
        out[:, 7] = sims[:, -1]
        out[:, 8] = sims.max(axis=1)
    pair = cand @ cand.T
    above = np.where(np.tri(n, k=-1, dtype=bool), pair, -1.0)  # candidates placed above each one
    out[1:, 9] = above[1:].max(axis=1)
    if drop:
        out[:, np.asarray(drop, dtype=np.int64)] = 0.0
    return out


def unit_vectors(vectors: npt.ArrayLike) -> F32:
    return _unit(np.asarray(vectors, dtype=np.float32))
