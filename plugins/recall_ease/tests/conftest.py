from __future__ import annotations

import pytest

from replayrec.testing import TinyWorld, quick_fit, tiny_world
from replayrec.training import TrainData, holdout_validation


@pytest.fixture(scope="session")
def world() -> TinyWorld:
    return tiny_world(seed=1)


@pytest.fixture(scope="session")
def train_data(world: TinyWorld) -> TrainData:
    """The tiny world's training events with a held-out validation event for 60 users."""
    fit, valid = holdout_validation(world.train, seed=0, max_users=60)
    return TrainData("tiny", "loo", world.catalog, fit, valid, 50, 0)


@pytest.fixture(scope="session")
def trained_job(train_data: TrainData):
    """An EASE job fitted with λ validated on a wide grid (plain Lightning, no MLflow)."""
    from replayrec_recall_ease.train import build

    job = build({"lambda_grid": [0.05, 0.5, 5.0, 50.0], "neighbours": 15, "max_items": 70}, train_data)
    quick_fit(job, 1)
    return job
