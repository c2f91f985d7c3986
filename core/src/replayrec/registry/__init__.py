"""Model artifacts and references (``<plugin>@<alias>``), backed by the state directory and MLflow."""

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
    "REF_PATTERN",
    "StageResolver",
    "artifact_meta",
    "artifact_stage_config",
    "artifacts_dir",
    "is_model_ref",
    "latest_artifact",
    "load_weights",
    "registered_model_name",
    "resolve_model",
]
