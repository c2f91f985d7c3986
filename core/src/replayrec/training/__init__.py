"""Training: the contract between core and trainable plugins, and the Lightning + MLflow runner.

Importing this package is cheap; the runner imports Lightning, torch and MLflow only when it runs."""

from replayrec.training._contract import (
    ARTIFACT_IDS,
    ARTIFACT_META,
    ARTIFACT_UPSTREAM,
    ARTIFACT_WEIGHTS,
    TrainData,
    TrainingJob,
)
from replayrec.training._validation import holdout_validation, validation_set

__all__ = [
    "ARTIFACT_IDS",
    "ARTIFACT_META",
    "ARTIFACT_UPSTREAM",
    "ARTIFACT_WEIGHTS",
    "TrainData",
    "TrainingJob",
    "holdout_validation",
    "validation_set",
]
