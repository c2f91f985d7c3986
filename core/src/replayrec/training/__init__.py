"""Training: the contract between core and trainable plugins, the Lightning + MLflow runner, and the
optimisation tools (``replayrec optimize``: FP16, ONNX export, INT8).

Importing this package is cheap; the runner imports Lightning, torch and MLflow only when it runs."""

from replayrec.training._contract import TrainData, TrainingJob
from replayrec.training._legacy import convert_legacy_weights
from replayrec.training._optimize import (
    METHODS,
    OPTIMIZER_GROUP,
    Method,
    OptimizeJob,
    export_onnx,
    half_precision,
    optimize_graph,
    quantize_int8,
    snap_to_bits,
)
from replayrec.training._ray import run_training_ray
from replayrec.training._runner import TrainOptions, run_training
from replayrec.training._validation import holdout_validation, temporal_validation, validation_set

__all__ = [
    "METHODS",
    "OPTIMIZER_GROUP",
    "Method",
    "OptimizeJob",
    "TrainData",
    "TrainOptions",
    "TrainingJob",
    "convert_legacy_weights",
    "export_onnx",
    "half_precision",
    "holdout_validation",
    "optimize_graph",
    "quantize_int8",
    "run_training",
    "run_training_ray",
    "snap_to_bits",
    "temporal_validation",
    "validation_set",
]
