"""Model artifacts: the directory layout under the state directory, the files in an artifact, and reading
and writing weights without executing pickled code.

An artifact directory (``<state>/artifacts/<plugin>/<dataset>/<UTC stamp>-<run>``) holds
``model.safetensors`` (the weights, read with numpy: no torch needed to serve), ``meta.json`` (plugin,
dataset, training config, serving config, metrics), ``ids.json`` (dense id → the shop's raw id) and, for a
rank / rerank model, ``upstream.json`` (the stages it was trained behind). An optimised artifact
(``replayrec optimize``) may hold ``model.onnx`` (the scorer as an ONNX graph, run by ONNX Runtime) and
records its method and parent in ``meta.json``'s ``optimization``."""

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
from replayrec.artifacts._onnx import ARTIFACT_ONNX, ORT_THREADS_ENV, OnnxGraph, has_graph, optimization_of
from replayrec.artifacts._weights import load_weights, save_weights

__all__ = [
    "ARTIFACT_HISTORY",
    "ARTIFACT_IDS",
    "ARTIFACT_META",
    "ARTIFACT_ONNX",
    "ARTIFACT_UPSTREAM",
    "ARTIFACT_WEIGHTS",
    "LEGACY_WEIGHTS",
    "ORT_THREADS_ENV",
    "OnnxGraph",
    "artifact_meta",
    "artifact_stage_config",
    "artifacts_dir",
    "check_protocol",
    "has_graph",
    "latest_artifact",
    "load_weights",
    "new_artifact_dir",
    "optimization_of",
    "read_upstream",
    "save_weights",
]
