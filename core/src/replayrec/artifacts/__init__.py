"""Model artifacts: the directory layout under the state directory, the files in an artifact, and reading
and writing weights without executing pickled code.

An artifact directory (``<state>/artifacts/<plugin>/<dataset>/<UTC stamp>-<run>``) holds
``model.safetensors`` (the weights, read with numpy: no torch needed to serve), ``meta.json`` (plugin,
dataset, training config, serving config, metrics), ``ids.json`` (dense id → the shop's raw id) and, for a
rank / rerank model, ``upstream.json`` (the stages it was trained behind)."""

from replayrec.artifacts._files import (
    ARTIFACT_HISTORY,
    ARTIFACT_IDS,
    ARTIFACT_META,
    ARTIFACT_UPSTREAM,
    ARTIFACT_WEIGHTS,
    LEGACY_WEIGHTS,
    artifact_meta,
    artifact_stage_config,
    artifacts_dir,
    check_protocol,
    latest_artifact,
    new_artifact_dir,
    read_upstream,
)
from replayrec.artifacts._weights import load_weights, save_weights

__all__ = [
    "ARTIFACT_HISTORY",
    "ARTIFACT_IDS",
    "ARTIFACT_META",
    "ARTIFACT_UPSTREAM",
    "ARTIFACT_WEIGHTS",
    "LEGACY_WEIGHTS",
    "artifact_meta",
    "artifact_stage_config",
    "artifacts_dir",
    "check_protocol",
    "latest_artifact",
    "load_weights",
    "new_artifact_dir",
    "read_upstream",
    "save_weights",
]
