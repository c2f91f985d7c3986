"""RankNet's item statistics are core's offline definition (``replayrec.features.ItemTimeline``), checked
against a brute-force count over the raw events so the definition cannot drift."""

from __future__ import annotations

import numpy as np
import pytest

from replayrec.data import Interactions
from replayrec.features import ItemTimeline
from replayrec.stages import Candidate, Request
from replayrec_rerank_ranknet.features import FEATURES, list_features, unit_vectors

DAY = 86_400
COL = {name: i for i, name in enumerate(FEATURES)}


def _events(rng: np.random.Generator, n: int, n_items: int, t0: int, span: int) -> Interactions:
    # times in seconds, anywhere within the day; some items never occur
    return Interactions(
        rng.integers(0, 50, n),
        rng.integers(0, n_items - 5, n),
        rng.integers(t0, t0 + span, n),
        n_users=50,
        n_items=n_items,
    )


def _brute(ev: Interactions, item: int, t: int, since: int) -> tuple[int, int, int, int]:
    """(events strictly before t, events in [since, t), first, last time before t; -1 without events)."""
    times = ev.timestamp[(ev.item == item) & (ev.timestamp < t)]
    recent = int(np.count_nonzero(times >= since))
    if not times.size:
        return 0, recent, -1, -1
    return int(times.size), recent, int(times.min()), int(times.max())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_item_timeline_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t0, span, n_items = 1_600_000_000, 120 * DAY, 60
    ev = _events(rng, 3_000, n_items, t0, span)
    tl = ItemTimeline.from_interactions(ev)
    items = np.arange(n_items, dtype=np.int64)
    for t in rng.integers(t0 - DAY, t0 + span + 40 * DAY, 40).tolist():
        since = t - 30 * DAY
        got = tl.item_features(items, t, since)
        want = np.array([_brute(ev, i, t, since) for i in range(n_items)], dtype=np.int64).T
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
        # an event exactly at t is not "before"; one exactly at the window start is inside
        hit = ev.timestamp[rng.integers(len(ev))]
        assert tl.item_features(items, int(hit), int(hit) - 30 * DAY)[0].sum() == np.count_nonzero(
            ev.timestamp < hit
        )


@pytest.mark.parametrize("window_days", [30.0, 7.0, 1.5])
def test_ranknet_item_features_match_brute_force(window_days: float) -> None:
    rng = np.random.default_rng(int(window_days * 10))
    t0, span, n_items = 1_500_000_000, 90 * DAY, 40
    ev = _events(rng, 2_000, n_items, t0, span)
    clock = ItemTimeline.from_interactions(ev)
    vecs = unit_vectors(rng.standard_normal((n_items, 4)))
    for t in rng.integers(t0, t0 + span + 10 * DAY, 30).tolist():
        ranked = [Candidate(int(i), 1.0) for i in rng.choice(n_items, 25, replace=False)]
        f = list_features(Request.create(0, t, [1]), ranked, clock, vecs, "din", window_days=window_days)
        since = int(t - window_days * DAY)
        for row, c in enumerate(ranked):
            count, recent, first, last = _brute(ev, c.item, t, since)
            assert f[row, COL["pop_all"]] == np.float32(np.log1p(count))
            assert f[row, COL["pop_recent"]] == np.float32(np.log1p(recent))
            assert f[row, COL["age"]] == np.float32(np.log1p((t - first) / DAY) if count else 0.0)
            assert f[row, COL["last_seen"]] == np.float32(np.log1p((t - last) / DAY) if count else 0.0)


def test_at_midnight_the_window_is_the_day_aligned_one() -> None:
    """Amazon request times are whole UTC days: there ``[t - 30d, t)`` is the day-aligned window the
    online store keeps (``replayrec.features.window_start_ms``)."""
    rng = np.random.default_rng(3)
    t0, n_items = 1_400_000_000 // DAY * DAY, 30
    ev = _events(rng, 1_500, n_items, t0, 100 * DAY)
    clock = ItemTimeline.from_interactions(ev)
    items = np.arange(n_items, dtype=np.int64)
    vecs = unit_vectors(rng.standard_normal((n_items, 3)))
    for day in rng.integers(1, 110, 10).tolist():
        t = t0 + day * DAY
        day_aligned = (t // DAY - 30) * DAY
        assert day_aligned == t - 30 * DAY
        recent = clock.item_features(items, t, day_aligned)[1]
        f = list_features(Request.create(0, t), [Candidate(int(i), 1.0) for i in items], clock, vecs, "din")
        np.testing.assert_array_equal(f[:, COL["pop_recent"]], np.log1p(recent).astype(np.float32))


def test_no_events_at_all() -> None:
    ev = Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), 1, 3)
    f = list_features(
        Request.create(0, DAY),
        [Candidate(0, 1.0), Candidate(2, 0.5)],
        ItemTimeline.from_interactions(ev),
        unit_vectors(np.eye(3)),
        "din",
    )
    assert not f[:, [COL["pop_all"], COL["pop_recent"], COL["age"], COL["last_seen"]]].any()
