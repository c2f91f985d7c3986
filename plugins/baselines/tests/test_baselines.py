"""Behaviour of the baselines beyond the contract: no leakage, fold-in of fresh history, config errors."""

from __future__ import annotations

import numpy as np
import pytest

from replayrec.data import Catalog, Interactions
from replayrec.errors import ConfigError
from replayrec.stages import Request, StageContext
from replayrec.testing import tiny_world
from replayrec_baselines import ItemCF, Popularity


def _ctx(users, items, times, n_items=6) -> StageContext:
    inter = Interactions(np.array(users), np.array(items), np.array(times), max(users) + 1, n_items)
    return StageContext(Catalog.anonymous(n_items), inter)


def test_recent_popularity_counts_only_the_window_before_the_request() -> None:
    day = 86_400
    # item 0 is popular long ago, item 1 in the last week, item 2 only *after* the request time
    users = [0, 1, 2, 3, 0, 1, 2, 3, 4, 0, 1, 2, 3]
    items = [0, 0, 0, 0, 1, 1, 3, 3, 1, 2, 2, 2, 2]
    times = [
        0,
        0,
        0,
        0,
        95 * day,
        96 * day,
        97 * day,
        97 * day,
        98 * day,
        101 * day,
        101 * day,
        102 * day,
        103 * day,
    ]
    stage = Popularity(Popularity.Config(mode="recent", window_days=7), _ctx(users, items, times))
    top = [c.item for c in stage.retrieve(Request.create(-1, 100 * day), 3)]
    assert top[:2] == [1, 3], "recent window, nothing from after the request"
    assert top[2] == 2 or top[2] == 0
    assert 2 not in top[:2]
    all_time = Popularity(Popularity.Config(), _ctx(users, items, times))
    assert [c.item for c in all_time.retrieve(Request.create(-1, 100 * day), 2)] == [0, 2]


def test_itemcf_folds_in_a_new_event_at_once() -> None:
    """Adding an item to the request's history moves the recall toward that item's neighbours."""
    world = tiny_world(seed=2)
    stage = ItemCF(ItemCF.Config(neighbours=8), world.context())
    r = world.requests[0]
    new_item = next(int(i) for i in np.argsort(-world.train.item_counts) if i not in set(r.exclude.tolist()))
    before = [c.item for c in stage.retrieve(r, 10)]
    after_req = Request.create(r.user, r.timestamp, [*r.history.tolist(), new_item])
    after = [c.item for c in stage.retrieve(after_req, 10)]
    assert after != before
    neighbours = set(stage._sim[new_item].indices.tolist())  # type: ignore[index]
    assert len(set(after) & neighbours) > len(set(before) & neighbours)


def test_itemcf_recommends_co_consumed_items() -> None:
    # users 0-2 read items 0 and 1 together; user 3 read 2 and 3
    stage = ItemCF(ItemCF.Config(shrink=0), _ctx([0, 0, 1, 1, 2, 2, 3, 3], [0, 1, 0, 1, 0, 1, 2, 3], [0] * 8))
    assert stage.retrieve(Request.create(9, 1, [0]), 1)[0].item == 1
    assert stage.retrieve(Request.create(9, 1, [3]), 1)[0].item == 2


def test_ease_refuses_catalogues_too_large_for_a_dense_matrix() -> None:
    with pytest.raises(ConfigError, match="EASE needs a dense"):
        ItemCF(ItemCF.Config(algorithm="ease", max_ease_items=3), _ctx([0, 1], [0, 1], [0, 0]))


def test_popularity_needs_training_data() -> None:
    from replayrec.errors import StageInputError

    with pytest.raises(StageInputError, match="needs training interactions"):
        Popularity(Popularity.Config(), StageContext(Catalog.anonymous(4)))
