"""Promotion: train → evaluate → stage → canary → prod with gates, audited in MLflow tags and a log."""

from replayrec.promotion._audit import AuditLog
from replayrec.promotion._canary import canary_bucket, canary_step, cascade_for
from replayrec.promotion._context import FaultInjection, PipelineContext, format_decision
from replayrec.promotion._evaluate import evaluate_model, evaluate_step
from replayrec.promotion._gates import (
    CanaryGate,
    Check,
    Decision,
    EvaluateGate,
    GateConfig,
    StageGate,
    load_gates,
)
from replayrec.promotion._pipeline import (
    STEPS,
    PipelineResult,
    candidate_version,
    manual_promote,
    prod_step,
    rollback,
    run_pipeline,
    train_step,
)
from replayrec.promotion._stage import stage_step

__all__ = [
    "STEPS",
    "AuditLog",
    "CanaryGate",
    "Check",
    "Decision",
    "EvaluateGate",
    "FaultInjection",
    "GateConfig",
    "PipelineContext",
    "PipelineResult",
    "StageGate",
    "canary_bucket",
    "canary_step",
    "candidate_version",
    "cascade_for",
    "evaluate_model",
    "evaluate_step",
    "format_decision",
    "load_gates",
    "manual_promote",
    "prod_step",
    "rollback",
    "run_pipeline",
    "stage_step",
    "train_step",
]
