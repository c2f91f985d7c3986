from __future__ import annotations

import pytest

from replayrec.config import Settings
from replayrec.registry import StageResolver
from replayrec.testing import quick_fit, tiny_world
from replayrec.training import TrainData


def tiny_train_data(tmp_path_factory: pytest.TempPathFactory) -> TrainData:
    world = tiny_world(seed=3)
    settings = Settings(state_dir=tmp_path_factory.mktemp("state"), data_dir=tmp_path_factory.mktemp("data"))
    resolver = StageResolver(settings, "tiny", world.context(seed=0))
    return TrainData("tiny", "loo", world.catalog, world.train, None, 50, 0, resolver)


@pytest.fixture(scope="session")
def trained_job(tmp_path_factory: pytest.TempPathFactory):
    """A DIN job trained for a few epochs on the tiny world's item-CF candidates (plain Lightning)."""
    from replayrec_rank_din.train import build

    data = tiny_train_data(tmp_path_factory)
    config = {
        "recall": {"type": "itemcf"},
        "recall_k": 30,
        "item_dim": 16,
        "group_dim": 4,
        "mlp_hidden": [32, 16],
        "batch_size": 128,
        "lr": 0.01,
        "epochs": 6,
    }
    return data, quick_fit(build(config, data), 6)
