"""``replayrec optimize din``: every float table in float16 (``fp16``), or the network exported to ONNX and
run by ONNX Runtime, FP32 (``onnx``) or dynamically quantised to INT8 (``int8``: embedding tables and
matrix products in int8, activations quantised per call). The graph is :class:`~replayrec_rank_din.model.DIN`
itself in eval mode, read back from the trained tensors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from replayrec.artifacts import save_weights
from replayrec.training import OptimizeJob, export_onnx, half_precision, quantize_int8
from replayrec_rank_din.model import DIN

__all__ = ["GRAPH_INPUTS", "GRAPH_OUTPUTS", "din_from_state", "optimize"]

GRAPH_INPUTS = ("hist_items", "hist_time", "hist_pos", "cand_items", "context")
GRAPH_OUTPUTS = ("logits", "attention")


def _widths(state: Mapping[str, npt.NDArray[Any]], prefix: str) -> list[int]:
    out, i = [], 0
    while f"{prefix}.linears.{i}.weight" in state:
        out.append(int(state[f"{prefix}.linears.{i}.weight"].shape[0]))
        i += 1
    return out


def din_from_state(state: Mapping[str, npt.NDArray[Any]]) -> DIN:
    """The trained network rebuilt from its tensors (their shapes are the architecture), in eval mode."""
    item = state["encoder.item.weight"]
    groups = np.asarray(state["encoder.item_group"], dtype=np.int64)[1:] - 1
    model = DIN(
        n_items=int(item.shape[0]) - 1,
        item_group=torch.from_numpy(groups),
        item_dim=int(item.shape[1]),
        group_dim=int(state["encoder.group.weight"].shape[1]),
        attention_hidden=[int(state["attention.first.weight"].shape[0]), *_widths(state, "attention")],
        mlp_hidden=_widths(state, "mlp"),
        max_history=int(state["position.weight"].shape[0]),
        context_dim=int(state["ctx_length.weight"].shape[1]),
    )
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}, strict=True)
    return model.eval()


class _WithAttention(nn.Module):
    """The network with its attention weights as a second output (the explanations read them)."""

    def __init__(self, din: DIN) -> None:
        super().__init__()
        self.din = din

    def forward(
        self, hist_items: Tensor, hist_time: Tensor, hist_pos: Tensor, cand_items: Tensor, context: Tensor
    ) -> Any:
        return self.din(hist_items, hist_time, hist_pos, cand_items, context, return_attention=True)


def optimize(job: OptimizeJob) -> dict[str, Any]:
    """The ``replayrec.optimizers`` entry point."""
    state = job.state()
    if job.method == "fp16":
        save_weights(job.out, half_precision(state))
        return {"tensors": "every float32 tensor as float16"}
    din = din_from_state(state)
    n, max_len = din.encoder.item.num_embeddings - 1, din.position.num_embeddings
    length = max(2, min(4, max_len))
    example = (
        torch.ones(2, length, dtype=torch.long),
        torch.zeros(2, length, dtype=torch.long),
        torch.arange(length).repeat(2, 1),
        torch.zeros(2, 3, dtype=torch.long),
        torch.zeros(2, 2, dtype=torch.long),
    )
    b, c = torch.export.Dim("B"), torch.export.Dim("C")
    hist = {0: b, 1: torch.export.Dim("L", max=max_len)}
    dynamic = {"hist_items": hist, "hist_time": hist, "hist_pos": hist, "cand_items": {0: b, 1: c}}
    dynamic["context"] = {0: b}
    fp32 = job.out / "din-fp32.onnx" if job.method == "int8" else job.graph
    export_onnx(_WithAttention(din), example, fp32, GRAPH_INPUTS, GRAPH_OUTPUTS, dynamic)
    info: dict[str, Any] = {"n_items": n, "max_history": max_len, "dim": din.encoder.dim}
    if job.method == "int8":
        info.update(quantize_int8(fp32, job.graph, job.bits))
        fp32.unlink()
    return info
