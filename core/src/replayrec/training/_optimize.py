"""The tools behind ``replayrec optimize``: half-precision tables, ONNX export with ONNX Runtime's offline
graph optimisation, and dynamic INT8 quantisation (optionally on a coarser weight grid, to study loss).

A plugin's optimizer (entry point group ``replayrec.optimizers``, keyed like its stage) decides what each
method does to its model, with these tools; core copies the artifact's files, records the lineage and
registers the result (``replayrec.application.optimize_model``)."""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from replayrec.artifacts import ARTIFACT_ONNX, artifact_meta, load_weights
from replayrec.errors import ConfigError

__all__ = [
    "METHODS",
    "OPTIMIZER_GROUP",
    "Method",
    "OptimizeJob",
    "export_onnx",
    "half_precision",
    "optimize_graph",
    "quantize_int8",
    "snap_to_bits",
]

log = logging.getLogger("replayrec.training")

Method = Literal["fp16", "int8", "onnx"]
METHODS: tuple[Method, ...] = ("fp16", "int8", "onnx")
OPTIMIZER_GROUP = "replayrec.optimizers"
#: the operators dynamic INT8 quantisation rewrites: matrix products and embedding lookups
INT8_OPS = ("MatMul", "Gemm", "Gather")


@dataclass(frozen=True)
class OptimizeJob:
    """What a plugin's optimizer is given: the trained artifact ``source``, the new artifact directory
    ``out`` (its JSON files already copied; the optimizer writes the weights / graph), the ``method`` and,
    for ``int8``, the weight grid ``bits`` (8: plain INT8; fewer: a coarser grid stored as int8)."""

    source: Path
    out: Path
    method: Method
    bits: int = 8

    @property
    def plugin(self) -> str:
        return str(artifact_meta(self.source).get("plugin"))

    def state(self) -> dict[str, npt.NDArray[Any]]:
        """The trained weights by name (read without executing pickled code)."""
        return load_weights(self.source, self.plugin)

    @property
    def graph(self) -> Path:
        return self.out / ARTIFACT_ONNX


def half_precision(
    state: Mapping[str, npt.NDArray[Any]], keep: Sequence[str] = ()
) -> dict[str, npt.NDArray[Any]]:
    """Every float32 tensor as float16 (integer tensors and the names in ``keep`` untouched)."""
    out = {}
    for k, v in state.items():
        half = v.dtype == np.float32 and k not in keep
        out[k] = v.astype(np.float16) if half else v
    return out


def snap_to_bits(w: npt.NDArray[Any], bits: int, axis: int) -> npt.NDArray[np.float32]:
    """``w`` on a symmetric grid of ``2**(bits-1) - 1`` levels each side of zero, one scale per slice along
    ``axis`` (the channel axis: a weight's output column, a table's row); the values a ``bits``-bit
    quantiser keeps. ``bits`` ≥ 8 returns ``w`` unchanged (INT8 quantisation itself is then the grid)."""
    if not 2 <= bits <= 8:
        raise ConfigError(f"weight bits must lie in [2, 8], got {bits}")
    w = np.asarray(w, dtype=np.float32)
    if bits >= 8:
        return w
    levels = float(2 ** (bits - 1) - 1)
    other = tuple(i for i in range(w.ndim) if i != axis % w.ndim)
    scale = np.abs(w).max(axis=other, keepdims=True) / levels
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    out: npt.NDArray[np.float32] = (np.clip(np.round(w / scale), -levels, levels) * scale).astype(np.float32)
    return out


def export_onnx(
    module: Any,
    args: tuple[Any, ...],
    path: Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic: Mapping[str, Mapping[int, Any]],
) -> Path:
    """``torch.onnx.export`` of an ``nn.Module`` in eval mode (the torch.export-based exporter, opset 18+),
    with ``dynamic`` axes per input name (``torch.export.Dim``), then :func:`optimize_graph`."""
    import torch

    module.eval()
    shapes = tuple(dict(dynamic.get(n, {})) for n in input_names)
    quiet = logging.getLogger("torch.onnx")  # its notes about torchvision operators it does not register
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_shapes=shapes,
                dynamo=True,
                optimize=True,
                verbose=False,
                external_data=False,
            )
    finally:
        quiet.setLevel(level)
    optimize_graph(path)
    return path


def optimize_graph(path: Path) -> None:
    """ONNX Runtime's offline graph optimisation written back to ``path``: constant folding, redundant node
    elimination and operator fusions (level *extended*: portable across CPUs, unlike *all*'s layout
    transforms, which a session applies again when it loads the graph)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        optimized = Path(tmp) / "optimized.onnx"
        opts.optimized_model_filepath = str(optimized)
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        optimized.replace(path)


def _consumers(model: Any) -> dict[str, set[str]]:
    """Initializer name → the operator types reading it."""
    out: dict[str, set[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            out.setdefault(name, set()).add(node.op_type)
    return out


def _snap_graph(src: Path, dst: Path, bits: int) -> None:
    """The graph with every weight matrix (read by MatMul / Gemm: per output column) and embedding table
    (read by Gather: per row) on a ``bits``-bit grid."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    readers = _consumers(model)
    for init in model.graph.initializer:
        ops = readers.get(init.name, set())
        w = numpy_helper.to_array(init)
        if w.dtype != np.float32 or w.ndim != 2 or not ops & set(INT8_OPS):
            continue
        axis = 0 if "Gather" in ops else 1
        init.CopyFrom(numpy_helper.from_array(snap_to_bits(w, bits, axis), init.name))
    onnx.save(model, str(dst))


def quantize_int8(src: Path, dst: Path, bits: int = 8) -> dict[str, Any]:
    """Dynamic INT8 quantisation of an FP32 graph: weights (matrix products per output channel, embedding
    tables) stored as int8 with their scales, activations quantised on the fly per call; with ``bits`` < 8
    the weights are first put on that coarser grid. Returns what was quantised."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            if bits < 8:
                _snap_graph(pre, pre, bits)
            quantize_dynamic(
                pre,
                dst,
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=list(INT8_OPS),
                extra_options={"MatMulConstBOnly": True},
            )
    return {"weight_type": "int8", "per_channel": True, "ops": list(INT8_OPS), "bits": bits}
