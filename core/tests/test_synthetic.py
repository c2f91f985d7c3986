"""The synthetic world behaves as specified and exposes its ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from replayrec.data import Interactions, WorldConfig, generate_world


@pytest.fixture(scope="module")
def world():
    return generate_world(WorldConfig(n_users=2_000, n_items=3_000, n_topics=20, n_events=120_000, seed=11))


def test_deterministic_by_seed() -> None:
    cfg = WorldConfig(n_users=200, n_items=300, n_events=5_000, seed=3)
    a, b = generate_world(cfg), generate_world(cfg)
    assert a.events.equals(b.events)
    c = generate_world(cfg.model_copy(update={"seed": 4}))
    assert not a.events.equals(c.events)


def test_time_ordered_second_granularity_and_no_item_before_release(world) -> None:
    ev = world.events
    t = ev["timestamp"].to_numpy()
    assert np.all(np.diff(t) >= 0)
    assert np.mean(t % 86_400 != 0) > 0.99, "second-granularity, not day-granular"
    assert np.all(t >= world.item_release[ev["item"].to_numpy()])
    assert ev[["user", "item"]].duplicated().sum() == 0


def test_new_items_appear_over_time(world) -> None:
    ev = world.events
    first_seen = ev.groupby("item")["timestamp"].min()
    late = world.item_release > world.config.start
    assert late.mean() == pytest.approx(world.config.new_item_fraction, abs=0.05)
    late_items = np.flatnonzero(late)
    seen_late = first_seen.reindex(late_items).dropna()
    assert (seen_late.to_numpy() >= world.item_release[seen_late.index.to_numpy()]).all()
    assert seen_late.size > 100


def test_power_law_popularity(world) -> None:
    counts = np.sort(np.bincount(world.events["item"], minlength=world.config.n_items))[::-1]
    top1 = counts[: len(counts) // 100].sum() / counts.sum()
    assert top1 > 0.10, f"top 1% of items take {top1:.1%} of events"
    assert counts[-len(counts) // 2 :].sum() / counts.sum() < 0.25


def test_events_follow_intents_and_tastes(world) -> None:
    ev = world.events
    item_topic = world.item_topic[ev["item"].to_numpy()]
    assert np.array_equal(item_topic, ev["intent"].to_numpy())
    # per session, the share of events on the session's modal topic reflects intent_prob
    modal = ev.groupby("session")["intent"].agg(lambda s: s.value_counts().iloc[0] / len(s))
    sizes = ev.groupby("session").size()
    assert modal[sizes >= 4].mean() > 0.7
    # users consume their taste topics far more than chance
    taste = world.user_taste[ev["user"].to_numpy(), item_topic]
    assert taste.mean() > 3 / world.config.n_topics


def test_item_cf_recovers_the_topic_structure(world) -> None:
    """A co-occurrence model fitted on the events puts same-topic items together (ground truth check)."""
    ev = world.events
    inter = Interactions(
        ev["user"].to_numpy(),
        ev["item"].to_numpy(),
        ev["timestamp"].to_numpy(),
        world.config.n_users,
        world.config.n_items,
    )
    x = inter.user_item
    co = (x.T @ x).toarray()
    np.fill_diagonal(co, 0)
    popular = np.argsort(-inter.item_counts)[:200]
    nn = co[popular].argmax(1)
    same = np.mean(world.item_topic[nn] == world.item_topic[popular])
    assert same > 0.5, f"nearest neighbours share the topic {same:.0%} of the time (chance 5%)"
