from __future__ import annotations

import pytest

from replayrec.config import Settings
from replayrec.registry import StageResolver
from replayrec.testing import quick_fit, tiny_world
from replayrec.training import TrainData, holdout_validation


@pytest.fixture(scope="session")
def trained_job(tmp_path_factory: pytest.TempPathFactory):
    """RankNet over item-CF → pass-through lists of the tiny world's held-out requests (plain Lightning)."""
    from replayrec_rerank_ranknet.train import build

    world = tiny_world(seed=4)
    fit, valid = holdout_validation(world.train, 0, 1000)
    settings = Settings(state_dir=tmp_path_factory.mktemp("state"), data_dir=tmp_path_factory.mktemp("data"))
    ctx = world.context(seed=0)
    resolver = StageResolver(settings, "tiny", type(ctx)(ctx.catalog, fit, seed=0))
    data = TrainData("tiny", "given", world.catalog, fit, valid, None, 0, resolver)
    config = {
        "recall": {"type": "itemcf"},
        "rank": {"type": "passthrough"},
        "recall_k": 40,
        "rank_k": 20,
        "holdout": 0.3,
        "epochs": 8,
        "lr": 0.01,
    }
    return world, data, quick_fit(build(config, data), 8)
