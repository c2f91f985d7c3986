"""The training job: λ chosen on validation, the fixed-λ path, the config."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from replayrec.errors import ConfigError
from replayrec.testing import quick_fit
from replayrec.training import TrainData, TrainingJob
from replayrec_recall_ease.config import EaseTrainConfig
from replayrec_recall_ease.model import fit_ease
from replayrec_recall_ease.train import build


def test_lambda_validation_picks_the_grids_best(trained_job, train_data) -> None:
    assert isinstance(trained_job, TrainingJob)
    report = trained_job.report
    grid = report["grid"]
    mean_diag = report["mean_diag"]
    assert [round(row["lambda_relative"], 6) for row in grid] == [0.05, 0.5, 5.0, 50.0]
    assert [row["lambda"] for row in grid] == pytest.approx([r * mean_diag for r in (0.05, 0.5, 5.0, 50.0)])
    scores = [row["val_ndcg@10"] for row in grid]
    assert len(set(scores)) > 1, "the grid must discriminate for this test to mean anything"
    best = grid[int(np.argmax(scores))]  # argmax: the first of equal scores, as the job breaks ties
    assert report["lambda"] == best["lambda"]
    assert report["mass_kept"] == best["mass_kept"]
    assert {"val_hr@10", "val_recall@200", "mass_kept", "positive_mass_kept", "seconds"} <= set(best)
    want = fit_ease(train_data.fit, best["lambda"], max_items=70, neighbours=15).weights
    got = trained_job.result.weights
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_allclose(got.data, want.data, rtol=1e-6)


def test_a_fixed_lambda_fits_once_without_validating(train_data) -> None:
    job = build({"lambda": 3.0, "neighbours": 10}, train_data)
    quick_fit(job, 1)
    (row,) = job.report["grid"]
    assert row["lambda"] == 3.0
    assert not any(k.startswith("val_") for k in row)
    assert np.diff(job.result.weights.indptr).max() <= 10


def test_the_training_config_is_closed_and_checked(train_data: TrainData) -> None:
    assert EaseTrainConfig.model_validate({"lambda": 10}).lambda_ == 10
    assert EaseTrainConfig.model_validate({"lambda_": "validate"}).lambda_ == "validate"
    for bad in (
        {"lambda": 0},
        {"lambda": "best"},
        {"lambda_grid": []},
        {"lambda_grid": [1, -2]},
        {"monitor": "ndcg@7"},
        {"depth": 3},
        {"max_items": 1},
    ):
        with pytest.raises(ValidationError):
            EaseTrainConfig.model_validate(bad)
    no_valid = TrainData("tiny", "loo", train_data.catalog, train_data.fit, None, 50, 0)
    with pytest.raises(ConfigError, match="needs validation requests"):
        build({}, no_valid)
    job = build({"lambda": 1.0}, no_valid)
    with pytest.raises(ConfigError, match="not fitted yet"):
        job.stage()
