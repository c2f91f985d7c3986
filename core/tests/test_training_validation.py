"""Validation targets for early stopping never overlap the events a model fits on."""

from __future__ import annotations

import numpy as np

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
