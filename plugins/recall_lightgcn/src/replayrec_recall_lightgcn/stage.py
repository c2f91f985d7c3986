"""Serving-time LightGCN recall: exact top-K over all items, one matrix product per chunk of requests.

The user vector is folded in from the request's history (LightGCN's own aggregation with the trained item
layer embeddings), so an event that was never in the training graph changes the recall at once. No
Lightning, no training code. An optimised artifact (``replayrec optimize lightgcn``) with ``model.onnx``
scores through ONNX Runtime instead (FP32 or INT8 item table), in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from replayrec.artifacts import OnnxGraph, has_graph
from replayrec.artifacts import load_weights as read_weights
from replayrec.errors import ConfigError
from replayrec.stages import (
    Candidate,
    FloatArray,
    Recall,
    Request,
    StageConfig,
    StageContext,
    topk_candidates,
)
from replayrec_recall_lightgcn.config import LightGCNConfig

__all__ = ["WEIGHT_KEYS", "LightGCNRecall", "load_weights"]

F32 = npt.NDArray[np.float32]
#: the artifact's tensors: final user (U, D) and item (I, D) embeddings, item fold-in vectors (I, D)
WEIGHT_KEYS = ("user_embedding", "item_embedding", "item_fold_in")
#: requests retrieved together: their (64, I) float64 scores stay below glibc's mmap threshold (books: 20 MB)
_BATCH = 64


def load_weights(path: Path) -> dict[str, F32]:
    """Read the weights (an artifact directory, or a weights file) without executing pickled code."""
    state = read_weights(path, "lightgcn")
    missing = [k for k in WEIGHT_KEYS if k not in state]
    if missing:
        raise ConfigError(f"lightgcn: {path} lacks tensors {missing}")
    return {k: np.ascontiguousarray(state[k], dtype=np.float32) for k in WEIGHT_KEYS}


class LightGCNRecall(Recall):
    name: ClassVar[str] = "lightgcn"
    Config: ClassVar[type[StageConfig]] = LightGCNConfig
    core_api: ClassVar[str] = "1.0"
    supports_full_ranking: ClassVar[bool] = True

    def __init__(self, config: StageConfig, context: StageContext) -> None:
        super().__init__(config, context)
        self.cfg = LightGCNConfig.model_validate(config.model_dump())
        weights = context.extras.get("weights")
        if weights is None:
            if context.artifact is None:
                raise ConfigError(
                    "lightgcn needs a trained model: pass --model <artifact> (replayrec train lightgcn)"
                )
            weights = load_weights(context.artifact)
        self._users: F32 = weights["user_embedding"]
        self._items: F32 = weights["item_embedding"]
        #: an optimised artifact's scoring graph (users (B, D) → scores (B, I)), else the exact product
        path = context.artifact
        self._graph = OnnxGraph(path, "lightgcn") if path is not None and has_graph(path) else None
        self._items_t64 = (  # (D, I), for retrieve
            np.ascontiguousarray(self._items.T, dtype=np.float64) if self._graph is None else None
        )
        self._fold: F32 = weights["item_fold_in"]
        self._mean_user: F32 = self._users.mean(axis=0).astype(np.float32)
        if self._items.shape[0] != context.n_items:
            raise ConfigError(
                f"lightgcn: the model has {self._items.shape[0]} items, the catalogue {context.n_items}; "
                "was it trained on another dataset?"
            )

    def _user_vector(self, request: Request) -> F32:
        h = request.history
        fold = self._mean_user  # no history: the average user, a popularity-like prior
        if h.size:
            w = np.exp(-self.cfg.recency_decay * np.arange(h.size - 1, -1, -1, dtype=np.float32))
            fold = (w @ self._fold[h]) / np.float32(np.sqrt(w.sum()))
        known = 0 <= request.user < self._users.shape[0]
        if self.cfg.user_vector == "trained" and known:
            trained: F32 = self._users[request.user]
            return trained
        if self.cfg.user_vector == "blend" and known:
            out: F32 = fold + np.float32(self.cfg.blend_weight) * self._users[request.user]
            return out
        return fold

    def score_all(self, requests: Sequence[Request]) -> FloatArray:
        for r in requests:
            self.check_request(r)
        users = (
            np.stack([self._user_vector(r) for r in requests])
            if requests
            else np.zeros((0, self._items.shape[1]))
        )
        if self._graph is None:
            out: FloatArray = users.astype(np.float32) @ self._items.T
            return out
        return self._scores(users)

    def _scores(self, users: npt.NDArray[np.floating]) -> FloatArray:
        """(B, D) user vectors → (B, I) scores: the ONNX graph, else in float64 (every float32 product
        exact, so a request's candidates do not depend on the requests it is batched with)."""
        if self._graph is not None:
            out: FloatArray = self._graph.run({"users": users.astype(np.float32)})[0]
            return out
        if self._items_t64 is None:
            raise RuntimeError("lightgcn: neither a graph nor the item table")
        exact: FloatArray = users.astype(np.float64) @ self._items_t64
        return exact

    def item_vectors(self) -> FloatArray:
        """The final (layer-mean) item embeddings."""
        return self._items

    def retrieve(self, request: Request, k: int) -> list[Candidate]:
        return self.retrieve_batch([request], k)[0]

    def retrieve_batch(self, requests: Sequence[Request], k: int) -> list[list[Candidate]]:
        """One product per chunk of ``_BATCH`` requests instead of a pass over the item matrix per request
        (:meth:`_scores`)."""
        self.check_k(k)
        for r in requests:
            self.check_request(r)
        out: list[list[Candidate]] = []
        for lo in range(0, len(requests), _BATCH):
            chunk = requests[lo : lo + _BATCH]
            scores = self._scores(np.stack([self._user_vector(r) for r in chunk]))
            out.extend(
                topk_candidates(s, k, r.exclude, self.name) for s, r in zip(scores, chunk, strict=True)
            )
        return out
