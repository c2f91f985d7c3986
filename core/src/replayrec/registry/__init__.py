"""The model registry (MLflow: versions, aliases, provenance tags) and model references
(``<plugin>@<alias>`` or an artifact directory), and the resolver that builds cascade stages from them."""

from replayrec.registry._mlflow import (
    ALIASES,
    PREVIOUS_PROD,
    ModelRegistry,
    VersionInfo,
    git_commit,
    metric_tag,
    registered_model_name,
    tracking_uri,
)
from replayrec.registry._refs import REF_PATTERN, is_model_ref, resolve_model
from replayrec.registry._specs import StageResolver

__all__ = [
    "ALIASES",
    "PREVIOUS_PROD",
    "REF_PATTERN",
    "ModelRegistry",
    "StageResolver",
    "VersionInfo",
    "git_commit",
    "is_model_ref",
    "metric_tag",
    "registered_model_name",
    "resolve_model",
    "tracking_uri",
]
