"""The world contract checks run against: a catalogue, training interactions and requests.

:func:`tiny_world` builds a tiny deterministic synthetic one (pure numpy); the *stage* gate builds a
:class:`TinyWorld` from the real dataset's catalogue, fit split and sampled test requests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from replayrec.data import Catalog, Interactions, WorldConfig, generate_world
from replayrec.stages import Candidate, Request, StageContext

__all__ = ["TinyWorld", "tiny_world"]


@dataclass(frozen=True)
class TinyWorld:
    """What a stage is checked against.

    Attributes:
        catalog: the item catalogue (defines ``n_items``).
        train: interactions a stage may fit on.
        requests: the requests every check replays (warm users with histories and a cold, anonymous one).
    """

    catalog: Catalog
    train: Interactions
    requests: list[Request]

    def context(self, seed: int = 0) -> StageContext:
        """The context a stage under test is built from."""
        return StageContext(catalog=self.catalog, train=self.train, seed=seed)

    def candidates(self, request: Request, n: int = 30) -> list[Candidate]:
        """Deterministic candidates for ranking tests: not excluded, scores descending."""
        rng = np.random.default_rng(request.user + 7)
        allowed = np.setdiff1d(np.arange(self.catalog.n_items), request.exclude)
        items = rng.choice(allowed, size=min(n, allowed.size), replace=False)
        scores = np.sort(rng.random(items.size))[::-1]
        return [Candidate(int(i), float(s), {"recall": float(s)}) for i, s in zip(items, scores, strict=True)]


def tiny_world(seed: int = 0, n_users: int = 120, n_items: int = 80) -> TinyWorld:
    """A small synthetic world: the first 80% of events (by time) to train on, one request per tenth user
    at the cut (history = their last 20 training events; every item they trained on is excluded) and one
    cold, anonymous request."""
    cfg = WorldConfig(
        n_users=n_users, n_items=n_items, n_topics=6, n_events=4_000, seed=seed, horizon_days=30
    )
    w = generate_world(cfg)
    ev = w.events
    cut = int(np.quantile(ev["timestamp"], 0.8))
    train_ev = ev[ev["timestamp"] < cut]
    train = Interactions(
        train_ev["user"].to_numpy(),
        train_ev["item"].to_numpy(),
        train_ev["timestamp"].to_numpy(),
        n_users,
        n_items,
    )
    catalog = Catalog.anonymous(n_items, n_groups=6)
    seqs = train.sequences
    requests = []
    for u in range(0, n_users, 10):
        items, times = seqs.of(u)
        requests.append(Request.create(u, cut, items[-20:], times[-20:], exclude=items))
    requests.append(Request.create(-1, cut))  # a cold, anonymous user
    return TinyWorld(catalog, train, requests)
