"""A synthetic behaviour world with known ground truth.

Users have a long-term taste (a sparse Dirichlet mixture over topics) that drifts linearly towards a second
taste over the horizon; they act in sessions, each with an intent topic drawn from their taste at that moment;
within a session most events follow the intent, the rest follow the taste. Items belong to one topic, have a
power-law (Zipf) popularity and a release time (a fraction of the catalogue appears during the horizon, and an
item is never consumed before its release). Timestamps have second granularity. Everything is vectorised
and deterministic for a seed; the world is returned with its ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["SyntheticWorld", "WorldConfig", "generate_world"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


class WorldConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    n_users: int = Field(default=20_000, ge=1)
    n_items: int = Field(default=10_000, ge=2)
    n_topics: int = Field(default=40, ge=1)
    n_events: int = Field(default=500_000, ge=1)
    seed: int = 0
    taste_concentration: float = Field(default=0.08, gt=0, description="Dirichlet alpha: small = focused")
    drift: float = Field(default=0.5, ge=0, le=1, description="weight of the second taste at the horizon")
    shift_day: int | None = Field(
        default=None,
        ge=1,
        description="an abrupt shift instead of the linear drift: from this day on every user follows the "
        "second taste with weight `drift`, and the new items (`new_item_fraction`) are released that day",
    )
    shift_boost: float = Field(
        default=1.0, gt=0, description="popularity multiplier of the items released at `shift_day` (the hits)"
    )
    zipf_exponent: float = Field(default=1.0, ge=0)
    new_item_fraction: float = Field(default=0.3, ge=0, lt=1)
    intent_prob: float = Field(default=0.8, ge=0, le=1, description="P(event follows the session intent)")
    mean_session_length: float = Field(default=5.0, ge=1)
    mean_gap_seconds: float = Field(default=90.0, gt=0)
    min_user_events: int = Field(default=5, ge=1)
    start: int = 1_600_000_000
    horizon_days: int = Field(default=365, ge=1)
    dedup: bool = True

    @model_validator(mode="after")
    def _enough_items(self) -> WorldConfig:
        if self.n_items < self.n_topics:
            raise ValueError(f"n_items ({self.n_items}) must be at least n_topics ({self.n_topics})")
        if self.shift_day is not None and self.shift_day >= self.horizon_days:
            raise ValueError(f"shift_day {self.shift_day} must fall inside the horizon ({self.horizon_days})")
        return self


@dataclass(frozen=True)
class SyntheticWorld:
    """Events (time-ordered) plus the ground truth that generated them."""

    config: WorldConfig
    events: pd.DataFrame  # user, item, timestamp, intent (topic the event followed), session
    item_topic: I64
    item_popularity: F64
    item_release: I64
    user_taste: F64  # (n_users, n_topics) taste at the start
    user_taste_end: F64  # taste at the horizon

    def taste_at(self, user: int, t: int) -> F64:
        f = self._frac(np.asarray([t]))[0]
        d = self.config.drift * f
        out: F64 = (1 - d) * self.user_taste[user] + d * self.user_taste_end[user]
        return out

    def _frac(self, t: npt.NDArray[np.int64]) -> F64:
        return _drift_frac(self.config, t)


def _drift_frac(cfg: WorldConfig, t: npt.NDArray[np.int64]) -> F64:
    """How far along the drift each time is: linear over the horizon, or a step at ``shift_day``."""
    if cfg.shift_day is not None:
        out: F64 = (t >= cfg.start + cfg.shift_day * 86_400).astype(np.float64)
        return out
    horizon = cfg.horizon_days * 86_400
    return np.clip((t - cfg.start) / horizon, 0.0, 1.0)


def _sample_rows(cum: F64, rows: I64, u: F64) -> I64:
    """Sample a column for each ``rows[i]`` from row-wise cumulative distributions ``cum`` (rows end at 1)."""
    n_cols = cum.shape[1]
    flat = (cum + np.arange(cum.shape[0])[:, None]).ravel()
    idx = np.searchsorted(flat, rows + u * cum[rows, -1], side="right") - rows * n_cols
    out: I64 = np.minimum(idx, n_cols - 1).astype(np.int64)
    return out


def _items(cfg: WorldConfig, rng: np.random.Generator) -> tuple[I64, F64, I64]:
    topic = rng.integers(0, cfg.n_topics, cfg.n_items)
    topic[rng.permutation(cfg.n_items)[: cfg.n_topics]] = np.arange(cfg.n_topics)  # no empty topic
    ranks = rng.permutation(cfg.n_items)
    pop: F64 = (1.0 / (ranks + 1.0) ** cfg.zipf_exponent).astype(np.float64)
    horizon = cfg.horizon_days * 86_400
    new = rng.random(cfg.n_items) < cfg.new_item_fraction
    released = rng.integers(1, horizon, cfg.n_items)
    if cfg.shift_day is not None:  # a new season's catalogue: every new item appears on the day of the shift
        released[:] = cfg.shift_day * 86_400
        pop = np.where(new, pop * cfg.shift_boost, pop)
    release = np.where(new, cfg.start + released, cfg.start).astype(np.int64)
    # every topic keeps its most popular item from the start, so every topic is always consumable
    for t in np.unique(topic):
        members = np.flatnonzero(topic == t)
        release[members[np.argmax(pop[members])]] = cfg.start
    return topic.astype(np.int64), pop, release


def _item_sampler(topic: I64, pop: F64, release: I64) -> tuple[I64, I64, F64, I64, I64]:
    """Items sorted by (topic, release) with a global popularity cumsum, for prefix sampling."""
    order = np.lexsort((release, topic))
    topic_s, rel_s = topic[order], release[order]
    cum = np.cumsum(pop[order])
    starts = np.searchsorted(topic_s, np.arange(topic.max() + 1), side="left")  # every topic is non-empty
    return order, topic_s, cum, rel_s, starts


def generate_world(cfg: WorldConfig) -> SyntheticWorld:
    rng = np.random.default_rng(cfg.seed)
    item_topic, item_pop, item_release = _items(cfg, rng)
    alpha = np.full(cfg.n_topics, cfg.taste_concentration)
    taste0 = rng.dirichlet(alpha, cfg.n_users)
    taste1 = rng.dirichlet(alpha, cfg.n_users)

    activity = rng.lognormal(0.0, 1.0, cfg.n_users)
    n_u = np.maximum(cfg.min_user_events, np.round(cfg.n_events * activity / activity.sum())).astype(np.int64)
    user = np.repeat(np.arange(cfg.n_users, dtype=np.int64), n_u)
    n = user.size
    first = np.ones(n, dtype=bool)
    first[1:] = user[1:] != user[:-1]
    new_session = first | (rng.random(n) < 1.0 / cfg.mean_session_length)
    session = np.cumsum(new_session) - 1
    sess_user = user[new_session]

    horizon = cfg.horizon_days * 86_400
    join = cfg.start + (rng.random(cfg.n_users) * 0.5 * horizon).astype(np.int64)
    sess_t = join[sess_user] + (rng.random(sess_user.size) * (cfg.start + horizon - join[sess_user])).astype(
        np.int64
    )
    sess_t = sess_t[np.lexsort((sess_t, sess_user))]  # chronological within each user's block of sessions

    gaps = rng.exponential(cfg.mean_gap_seconds, n).astype(np.int64) + 1
    gaps[new_session] = 0
    csum = np.cumsum(gaps)
    offset = csum - csum[new_session][session]
    t = sess_t[session] + offset

    frac = _drift_frac(cfg, t)
    cum0, cum1 = np.cumsum(taste0, 1), np.cumsum(taste1, 1)

    def taste_topic(users: I64, fr: F64) -> I64:
        second = rng.random(users.size) < cfg.drift * fr
        out = _sample_rows(cum0, users, rng.random(users.size))
        out[second] = _sample_rows(cum1, users[second], rng.random(int(second.sum())))
        return out

    sess_frac = frac[new_session]
    intent_of_session = taste_topic(sess_user, sess_frac)
    follows = rng.random(n) < cfg.intent_prob
    topic = np.where(follows, intent_of_session[session], taste_topic(user, frac))

    order, topic_s, cum, rel_s, starts = _item_sampler(item_topic, item_pop, item_release)
    lo = starts[topic]
    topic_end = np.searchsorted(topic_s, topic, side="right")
    # released items of the topic form a prefix [lo, hi) of the (topic, release)-sorted array
    key = topic_s.astype(np.float64) * (2.0 * horizon + cfg.start + 1) + rel_s
    hi = np.searchsorted(key, topic * (2.0 * horizon + cfg.start + 1) + t, side="right")
    hi = np.clip(hi, lo + 1, topic_end)
    base = np.where(lo > 0, cum[np.maximum(lo - 1, 0)], 0.0)
    target = base + rng.random(n) * (cum[hi - 1] - base)
    pos = np.clip(np.searchsorted(cum, target, side="right"), lo, hi - 1)
    item = order[pos]

    ev = pd.DataFrame({"user": user, "item": item, "timestamp": t, "intent": topic, "session": session})
    ev = ev.iloc[np.lexsort((np.arange(n), ev["timestamp"].to_numpy()))]
    if cfg.dedup:
        ev = ev.drop_duplicates(["user", "item"], keep="first")
    ev = ev.reset_index(drop=True)
    return SyntheticWorld(cfg, ev, item_topic, item_pop, item_release, taste0, taste1)
