"""One user's recommendations from the configured cascade, offline: fitted on all of a dataset's events."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replayrec.application._datasets import open_dataset
from replayrec.cascade import Cascade, load_cascade
from replayrec.config import Settings
from replayrec.errors import ConfigError
from replayrec.features import FeatureSpec
from replayrec.registry import StageResolver
from replayrec.stages import Request, StageContext

__all__ = ["Recommendations", "recommend_for_user"]

HISTORY = FeatureSpec().recent_events  # the newest events of a user profile (50)
DAY = 86_400


@dataclass(frozen=True)
class Recommendations:
    user: str
    dataset: str
    history: int
    last_title: str | None
    rows: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "dataset": self.dataset,
            "history": self.history,
            "recommendations": self.rows,
        }


def recommend_for_user(
    settings: Settings,
    user: str,
    dataset: str | None = None,
    cascade: Path | None = None,
    k: int = 10,
    at: int | None = None,
) -> Recommendations:
    """The cascade (``cascade`` YAML, default: built-in) for the user with raw id ``user`` at time ``at``
    (default: a day after their last event), their newest 50 events as history, everything they consumed
    excluded. Each row: rank, raw item id, title, score, every stage's score, the reasons."""
    if k <= 0:
        raise ConfigError(f"-k must be positive, got {k}")
    config = load_cascade(cascade)
    ds = open_dataset(settings, dataset)
    uid = ds.user_id(user)
    data = ds.interactions()
    ctx = StageContext(catalog=ds.catalog, train=data, seed=settings.seed)
    engine = Cascade.build(config, StageResolver(settings, ds.name, ctx).context_for)
    items, times = data.sequences.of(uid)
    ts = at if at is not None else int(times.max()) + DAY if times.size else 0
    req = Request.create(uid, ts, items[-HISTORY:], times[-HISTORY:], exclude=items)
    rows = [
        {
            "rank": i + 1,
            "item": str(ds.catalog.raw_ids[c.item]),
            "title": ds.catalog.title(c.item),
            "score": round(c.score, 6),
            "scores": {s: round(v, 6) for s, v in c.scores.items()},
            "reasons": list(c.reasons),
        }
        for i, c in enumerate(engine.recommend(req, k=k))
    ]
    last = ds.catalog.title(int(items[-1])) if items.size else None
    return Recommendations(user, ds.name, int(items.size), last, rows)
