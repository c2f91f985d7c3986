from __future__ import annotations

import pytest

from replayrec.evaluation import build_split
from replayrec.testing import quick_fit, tiny_world
from replayrec.training import TrainData, validation_set


@pytest.fixture(scope="session")
def trained_job():
    """A LightGCN job trained for a few epochs on the tiny world (plain Lightning, no MLflow)."""
    from replayrec_recall_lightgcn.train import build

    world = tiny_world(seed=1)
    data = TrainData("tiny", "loo", world.catalog, world.train, None, 50, 0)
    job = build({"dim": 16, "layers": 2, "batch_size": 256, "lr": 0.05, "epochs": 15}, data)
    quick_fit(job, 15)
    return world, job


__all__ = ["build_split", "validation_set"]
