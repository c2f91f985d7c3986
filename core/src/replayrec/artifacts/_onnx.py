"""An artifact's ONNX graph run by ONNX Runtime: what an optimised artifact (``replayrec optimize``) serves
with. An ONNX file is a protobuf graph of operators and tensors: loading one executes no pickled code."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from replayrec.artifacts._files import ARTIFACT_META, artifact_meta
from replayrec.errors import ConfigError

__all__ = ["ARTIFACT_ONNX", "ORT_THREADS_ENV", "OnnxGraph", "has_graph", "optimization_of"]

ARTIFACT_ONNX = "model.onnx"  # the scorer as an ONNX graph (an optimised artifact; written by `optimize`)
#: threads one ONNX Runtime session may use (default 1: the service scales by worker processes, one core each)
ORT_THREADS_ENV = "REPLAYREC_ORT_THREADS"


def has_graph(path: Path | None) -> bool:
    """Whether the artifact directory holds an ONNX graph (it is served by ONNX Runtime)."""
    return path is not None and path.is_dir() and (path / ARTIFACT_ONNX).is_file()


def optimization_of(path: Path | None) -> dict[str, Any]:
    """The ``optimization`` record of an optimised artifact's ``meta.json`` (``{}`` for a trained one)."""
    if path is None or not (path / ARTIFACT_META).is_file():
        return {}
    found = artifact_meta(path).get("optimization") or {}
    return dict(found) if isinstance(found, Mapping) else {}


def _threads(explicit: int | None) -> int:
    raw = explicit if explicit is not None else os.environ.get(ORT_THREADS_ENV, "1")
    try:
        n = int(raw)
    except ValueError:
        raise ConfigError(f"{ORT_THREADS_ENV} must be a whole number of threads, got {raw!r}") from None
    if n < 1:
        raise ConfigError(f"{ORT_THREADS_ENV} must be at least 1, got {n}")
    return n


class OnnxGraph:
    """One ONNX Runtime inference session over an artifact's ``model.onnx``, CPU, sequential, every graph
    optimisation on, ``threads`` intra-op threads (default :data:`ORT_THREADS_ENV`, else 1).

    ``run(feeds)`` takes numpy arrays by input name and returns the outputs in the graph's order."""

    def __init__(self, path: Path, who: str, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError(f"{who}: {path} is an ONNX model; serving it needs onnxruntime") from None
        file = path / ARTIFACT_ONNX if path.is_dir() else path
        if not file.is_file():
            raise ConfigError(f"{who}: no ONNX graph at {file}")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.intra_op_num_threads = _threads(threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # warnings about unused initializers are not the caller's problem
        try:
            self._session = ort.InferenceSession(str(file), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a bad graph
            raise ConfigError(f"{who}: cannot load {file}: {type(exc).__name__}: {exc}") from None
        self.file = file
        self.inputs: tuple[str, ...] = tuple(i.name for i in self._session.get_inputs())
        self.outputs: tuple[str, ...] = tuple(o.name for o in self._session.get_outputs())

    def run(self, feeds: Mapping[str, npt.NDArray[Any]]) -> Sequence[npt.NDArray[Any]]:
        missing = [n for n in self.inputs if n not in feeds]
        if missing:
            raise ConfigError(
                f"{self.file}: inputs {missing} not given (the graph takes {list(self.inputs)})"
            )
        out = self._session.run(None, {n: np.ascontiguousarray(feeds[n]) for n in self.inputs})
        return [np.asarray(o) for o in out]
