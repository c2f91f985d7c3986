"""Validation targets for early stopping never overlap the events a model fits on."""

from __future__ import annotations

import numpy as np
import pytest

from replayrec.config import Settings
from replayrec.data import WorldConfig, ensure_prepared, load_dataset
from replayrec.evaluation import build_split
from replayrec.testing import tiny_world
from replayrec.training import holdout_validation, temporal_validation, validation_set


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


def test_temporal_validation_asks_at_a_cut_inside_the_training_window() -> None:
    train = tiny_world(seed=4).train
    fit, valid = temporal_validation(train, seed=1, max_users=20)
    assert 0 < len(valid) <= 20
    cut = int(valid.times[0])
    assert np.all(valid.times == cut), "every request is made at the one cut, as the test's are at T"
    assert cut > int(train.timestamp.min())
    for r in range(len(valid)):
        hist, times = valid.history(r)
        assert hist.size > 0
        assert np.all(times < cut), "no history event at or after the request"
        u = int(valid.users[r])
        later = set(train.item[(train.user == u) & (train.timestamp >= cut)].tolist())
        assert set(valid.targets(r).tolist()) <= later
        assert not set(valid.targets(r).tolist()) & set(hist.tolist()), "masked: no consumed item is a target"
    # only the sampled users' events after the cut are withheld; everyone else's newest events stay
    after = train.timestamp >= cut
    sampled = np.isin(train.user, valid.users)
    assert len(fit) == len(train) - int(np.sum(after & sampled))
    assert np.sum(fit.timestamp >= cut) == np.sum(after & ~sampled) > 0
    again = temporal_validation(train, seed=1, max_users=20)[1]
    assert np.array_equal(again.users, valid.users), "deterministic for a seed"


def test_validation_set_follows_the_protocol(settings: Settings) -> None:
    """The runner's choice per protocol: temporal asks at a cut, loo keeps its own second-to-last event."""
    world = WorldConfig(n_users=300, n_items=200, n_events=12_000, seed=5, horizon_days=60)
    ensure_prepared("synthetic", settings, world=world)
    ds = load_dataset("synthetic", settings)
    split = build_split(ds, "temporal")
    _, v = validation_set(split, seed=0, max_users=50)
    assert np.unique(v.times).size == 1
    assert int(v.times[0]) < int(split.test.times[0]), "the validation cut lies before the test's"
    split = build_split(ds, "loo")
    _, v = validation_set(split, seed=0, max_users=50)
    assert split.valid is not None
    assert set(v.users.tolist()) <= set(split.valid.users.tolist())
