"""``replayrec optimize lightgcn``: the item tables in float16 (``fp16``), or the full-catalogue scoring
product as an ONNX graph run by ONNX Runtime, FP32 (``onnx``) or with its item table quantised to INT8
(``int8``).

The fold-in (a user vector from the request's history) stays numpy in every variant; beside the graph, the
ONNX variant keeps the user and fold-in tables in float32, the INT8 one in float16, and both the item table in
float16 (read only for ``item_vectors``: the rules' and the rerankers' item similarities)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from replayrec.artifacts import save_weights
from replayrec.training import OptimizeJob, export_onnx, half_precision, quantize_int8
from replayrec_recall_lightgcn.stage import load_weights

__all__ = ["ScoreProduct", "optimize"]


class ScoreProduct(nn.Module):
    """users (B, D) → scores (B, I) against the fixed item table (I, D)."""

    items_t: Tensor

    def __init__(self, items: Tensor) -> None:
        super().__init__()
        self.register_buffer("items_t", items.T.contiguous())

    def forward(self, users: Tensor) -> Tensor:
        scores: Tensor = users @ self.items_t
        return scores


def optimize(job: OptimizeJob) -> dict[str, Any]:
    """The ``replayrec.optimizers`` entry point."""
    state = load_weights(job.source)
    if job.method == "fp16":
        save_weights(job.out, half_precision(state))
        return {"tensors": dict.fromkeys(state, "float16")}
    items = torch.from_numpy(state["item_embedding"])
    fp32 = job.out / "scores-fp32.onnx" if job.method == "int8" else job.graph
    example = (torch.zeros(2, items.shape[1]),)
    export_onnx(
        ScoreProduct(items), example, fp32, ["users"], ["scores"], {"users": {0: torch.export.Dim("B")}}
    )
    info: dict[str, Any] = {"graph": "users (B, D) → scores (B, I)", "item_table": "float32"}
    if job.method == "int8":
        info.update(quantize_int8(fp32, job.graph, job.bits), item_table="int8")
        fp32.unlink()
    side = {k: state[k] for k in ("user_embedding", "item_fold_in")}
    if job.method == "int8":  # a compressed variant throughout: the fold-in tables in float16 too
        side = half_precision(side)
    side["item_embedding"] = state["item_embedding"].astype(np.float16)
    save_weights(job.out, side)
    return info
