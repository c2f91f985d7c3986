"""Serving-time RankNet re-ranking in numpy: features as of the request time, the MLP, the final order. An
optimised artifact (``replayrec optimize ranknet``) with ``model.onnx`` scores through ONNX Runtime."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from replayrec.artifacts import OnnxGraph, has_graph, load_weights
from replayrec.errors import ConfigError
from replayrec.features import ItemTimeline
from replayrec.stages import Candidate, Request, Rerank, StageConfig, StageContext
from replayrec_rerank_ranknet.config import RankNetConfig
from replayrec_rerank_ranknet.features import feature_columns, list_features, n_features, shuffle_columns

__all__ = ["RankNetRerank", "RankNetWeights"]

F32 = npt.NDArray[np.float32]


class RankNetWeights:
    """The scorer's tensors (``RankNet.state_dict()`` plus ``item_vectors``), read by name."""

    def __init__(self, state: Mapping[str, npt.NDArray[Any]], graph: OnnxGraph | None = None) -> None:
        for key in ("mean", "std", "item_vectors"):
            if key not in state:
                raise ConfigError(f"ranknet: the model lacks tensor {key!r}")
        self.mean = np.asarray(state["mean"], dtype=np.float32)
        self.std = np.asarray(state["std"], dtype=np.float32)
        self.vectors = np.ascontiguousarray(state["item_vectors"], dtype=np.float32)
        #: an optimised artifact's scorer (features (C, F) → scores (C,)); the layers are then not read
        self.graph = graph
        idx = sorted({int(k.split(".")[1]) for k in state if k.startswith("net.") and k.endswith(".weight")})
        self.layers = [
            (np.ascontiguousarray(state[f"net.{i}.weight"].T, dtype=np.float32), state[f"net.{i}.bias"])
            for i in idx
        ]

    def score(self, features: F32) -> F32:
        if self.graph is not None:
            scores: F32 = self.graph.run({"features": features.astype(np.float32)})[0].astype(np.float32)
            return scores
        z = (features - self.mean) / self.std
        for n, (w, b) in enumerate(self.layers):
            z = z @ w + b
            if n < len(self.layers) - 1:
                np.maximum(z, 0, out=z)
        out: F32 = z[..., 0].astype(np.float32)
        return out


class RankNetRerank(Rerank):
    name: ClassVar[str] = "ranknet"
    Config: ClassVar[type[StageConfig]] = RankNetConfig
    core_api: ClassVar[str] = "1.0"

    def __init__(self, config: StageConfig, context: StageContext) -> None:
        super().__init__(config, context)
        self.cfg = RankNetConfig.model_validate(config.model_dump())
        weights = context.extras.get("weights")
        if weights is None:
            if context.artifact is None:
                raise ConfigError(
                    "ranknet needs a trained model: pass --model <artifact> (replayrec train ranknet)"
                )
            path = context.artifact
            graph = OnnxGraph(path, "ranknet") if has_graph(path) else None
            weights = RankNetWeights(load_weights(path, "ranknet"), graph)
        self.w: RankNetWeights = weights
        if self.w.mean.shape[-1] != n_features(self.cfg.channels):
            raise ConfigError(
                f"ranknet: the model scores {self.w.mean.shape[-1]} features, the config names "
                f"{n_features(self.cfg.channels)} ({len(self.cfg.channels)} recall channels)"
            )
        if self.w.vectors.shape[0] != context.n_items:
            raise ConfigError(
                f"ranknet: the model has {self.w.vectors.shape[0]} items, the catalogue {context.n_items}"
            )
        self._drop = feature_columns(self.cfg.drop, self.cfg.channels)
        self._shuffle = feature_columns(self.cfg.shuffle, self.cfg.channels)
        clock = context.extras.get("clock")
        if clock is None:
            clock = ItemTimeline.from_interactions(
                context.require_train("ranknet (item popularity and recency)")
            )
        self.clock: ItemTimeline = clock

    def features(self, request: Request, scored: Sequence[Candidate]) -> F32:
        out = list_features(
            request,
            scored,
            self.clock,
            self.w.vectors,
            self.cfg.rank_stage,
            self.cfg.window_days,
            self.cfg.recent_items,
            self.cfg.channels,
            self._drop,
        )
        if self._shuffle:
            seed = [self.cfg.shuffle_seed, request.user, max(int(request.timestamp), 0)]
            out = shuffle_columns(out, self._shuffle, seed)
        return out

    def rerank(self, request: Request, scored: Sequence[Candidate], k: int) -> list[Candidate]:
        self.check_request(request)
        self.check_k(k)
        self.check_candidates(scored)
        if not scored:
            return []
        s = self.w.score(self.features(request, scored))
        order = np.lexsort((np.arange(len(scored)), -s.astype(np.float64)))[:k]
        return [scored[i].with_score(self.name, float(s[i])) for i in order]
