"""``replayrec optimize ranknet``: every float tensor in float16 (``fp16``), or the scoring network
(standardisation and MLP) exported to ONNX and run by ONNX Runtime, FP32 (``onnx``) or dynamically quantised
to INT8 (``int8``). The item vectors the features are computed from stay numpy beside the graph (float32;
float16 in the INT8 variant)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from replayrec.artifacts import save_weights
from replayrec.training import OptimizeJob, export_onnx, half_precision, quantize_int8
from replayrec_rerank_ranknet.model import RankNet

__all__ = ["optimize", "ranknet_from_state"]


def ranknet_from_state(state: dict[str, np.ndarray]) -> RankNet:
    """The trained scorer rebuilt from its tensors (their shapes are the architecture), in eval mode."""
    idx = sorted({int(k.split(".")[1]) for k in state if k.startswith("net.") and k.endswith(".weight")})
    hidden = [int(state[f"net.{i}.weight"].shape[0]) for i in idx[:-1]]
    model = RankNet(int(state["mean"].shape[-1]), hidden)
    own = {k: v for k, v in state.items() if k != "item_vectors"}
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in own.items()}, strict=True)
    return model.eval()


def optimize(job: OptimizeJob) -> dict[str, Any]:
    """The ``replayrec.optimizers`` entry point."""
    state = job.state()
    if job.method == "fp16":
        save_weights(job.out, half_precision(state))
        return {"tensors": "every float32 tensor as float16"}
    net = ranknet_from_state(state)
    example = (torch.zeros(3, int(state["mean"].shape[-1])),)
    fp32 = job.out / "ranknet-fp32.onnx" if job.method == "int8" else job.graph
    export_onnx(net, example, fp32, ["features"], ["scores"], {"features": {0: torch.export.Dim("C")}})
    info: dict[str, Any] = {"graph": "features (C, F) → scores (C,)"}
    if job.method == "int8":
        info.update(quantize_int8(fp32, job.graph, job.bits))
        fp32.unlink()
    side = {k: state[k] for k in ("mean", "std", "item_vectors")}
    if job.method == "int8":  # a compressed variant throughout: the item vectors in float16 too
        side["item_vectors"] = side["item_vectors"].astype(np.float16)
    save_weights(job.out, side)
    return info
