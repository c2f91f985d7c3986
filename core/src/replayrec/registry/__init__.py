"""Model artifacts and references (``<plugin>@<alias>``), backed by the state directory and MLflow."""

from replayrec.registry._mlflow import (
    ALIASES,
    PREVIOUS_PROD,
    ModelRegistry,
    VersionInfo,
    git_commit,
    metric_tag,
)
from replayrec.registry._refs import (
    REF_PATTERN,
    artifact_meta,
    artifact_stage_config,
    artifacts_dir,
    is_model_ref,
    latest_artifact,
    load_weights,
    registered_model_name,
    resolve_model,
)
from replayrec.registry._specs import StageResolver

__all__ = [
    "ALIASES",
    "PREVIOUS_PROD",
    "REF_PATTERN",
    "ModelRegistry",
    "StageResolver",
    "VersionInfo",
    "artifact_meta",
    "artifact_stage_config",
    "artifacts_dir",
    "git_commit",
    "is_model_ref",
    "latest_artifact",
    "load_weights",
    "metric_tag",
    "registered_model_name",
    "resolve_model",
]
