"""Validation targets for early stopping never overlap the events a model fits on."""

from __future__ import annotations

import numpy as np
import pytest

from replayrec.testing import tiny_world
from replayrec.training import holdout_validation


def test_holdout_validation_withholds_exactly_the_targets() -> None:
    train = tiny_world(seed=4).train
    fit, valid = holdout_validation(train, seed=1, max_users=30)
    assert len(valid) == 30
    assert len(fit) == len(train) - 30
    fit_pairs = set(zip(fit.user.tolist(), fit.item.tolist(), strict=True))
    for r in range(len(valid)):
        u = int(valid.users[r])
        target = int(valid.targets(r)[0])
        assert (u, target) not in fit_pairs or np.sum((train.user == u) & (train.item == target)) > 1
        hist = valid.history(r)[0]
        assert target not in hist.tolist() or np.sum((train.user == u) & (train.item == target)) > 1
        assert len(hist) == np.sum(train.user == u) - 1
    again = holdout_validation(train, seed=1, max_users=30)[1]
    assert np.array_equal(again.tgt_items, valid.tgt_items), "deterministic for a seed"
    assert np.all(np.diff(fit.timestamp) >= 0)


def test_sharded_batches_split_evenly_and_disjointly() -> None:
    from replayrec.training._ray import ShardedBatches

    batches = list(range(11))
    shards = [list(ShardedBatches(batches, r, 3)) for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]  # the remainder is dropped: DDP needs equal step counts
    assert sorted(i for s in shards for i in s) == list(range(9))
    assert len(ShardedBatches(batches, 0, 3)) == 3
    with pytest.raises(ValueError, match="bad shard"):
        ShardedBatches(batches, 3, 3)
