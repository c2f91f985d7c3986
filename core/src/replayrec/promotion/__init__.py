"""Promotion: train → evaluate → stage → canary → prod with gates, audited in MLflow tags and a log."""

from replayrec.promotion._audit import AuditLog
from replayrec.promotion._canary import canary_bucket, canary_step, cascade_for
from replayrec.promotion._canary_live import ServiceError, arm_window, bucket_quantile, fetch_arms
from replayrec.promotion._context import (
    FaultInjection,
    PipelineContext,
    audit_log,
    format_decision,
    open_pipeline,
)
from replayrec.promotion._evaluate import evaluate_model, evaluate_step
from replayrec.promotion._gates import (
    CanaryGate,
    Check,
    Decision,
    EvaluateGate,
    GateConfig,
    OptimizeGate,
    StageGate,
    load_gates,
)
from replayrec.promotion._optimize import optimize_step
from replayrec.promotion._pipeline import (
    STEPS,
    PipelineResult,
    candidate_version,
    manual_promote,
    prod_step,
    rollback,
    run_pipeline,
    run_step,
    train_step,
)
from replayrec.promotion._stage import stage_checks, stage_step

__all__ = [
    "STEPS",
    "AuditLog",
    "CanaryGate",
    "Check",
    "Decision",
    "EvaluateGate",
    "FaultInjection",
    "GateConfig",
    "OptimizeGate",
    "PipelineContext",
    "PipelineResult",
    "ServiceError",
    "StageGate",
    "arm_window",
    "audit_log",
    "bucket_quantile",
    "canary_bucket",
    "canary_step",
    "candidate_version",
    "cascade_for",
    "evaluate_model",
    "evaluate_step",
    "fetch_arms",
    "format_decision",
    "load_gates",
    "manual_promote",
    "open_pipeline",
    "optimize_step",
    "prod_step",
    "rollback",
    "run_pipeline",
    "run_step",
    "stage_checks",
    "stage_step",
    "train_step",
]
