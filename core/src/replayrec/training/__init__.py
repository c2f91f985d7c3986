"""Training: the contract between core and trainable plugins, and the Lightning + MLflow runner.

Importing this package is cheap; the runner imports Lightning, torch and MLflow only when it runs."""

from replayrec.training._contract import TrainData, TrainingJob
from replayrec.training._legacy import convert_legacy_weights
from replayrec.training._ray import run_training_ray
from replayrec.training._runner import TrainOptions, run_training
from replayrec.training._validation import holdout_validation, temporal_validation, validation_set

__all__ = [
    "TrainData",
    "TrainOptions",
    "TrainingJob",
    "convert_legacy_weights",
    "holdout_validation",
    "run_training",
    "run_training_ray",
    "temporal_validation",
    "validation_set",
]
