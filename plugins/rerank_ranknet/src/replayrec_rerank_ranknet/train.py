"""``build(config, data)``: the RankNet training job driven by core's ``replayrec train``.

Training lists are the rank stage's top ``rank_k`` for the protocol's *validation* requests (for ``loo``
each user's second-to-last event), which neither the recall nor the ranker was fitted on; features are
computed as of each request's time. A seeded ``holdout`` share of those requests is kept apart for early
stopping.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import DataLoader, TensorDataset

from replayrec.artifacts import ARTIFACT_UPSTREAM, save_weights
from replayrec.cascade import MergedRecall
from replayrec.errors import ConfigError
from replayrec.evaluation import EvalSet, ListFn, build_requests
from replayrec.features import ItemTimeline
from replayrec.stages import Candidate, Rank, Recall, Request, StageContext
from replayrec.training import TrainData
from replayrec_rerank_ranknet.config import RankNetConfig, RankNetTrainConfig
from replayrec_rerank_ranknet.features import feature_columns, list_features, n_features, unit_vectors
from replayrec_rerank_ranknet.model import RankNet
from replayrec_rerank_ranknet.module import RankNetModule
from replayrec_rerank_ranknet.stage import RankNetRerank, RankNetWeights

__all__ = ["RankNetJob", "build"]

log = logging.getLogger(__name__)
Lists = dict[tuple[int, int], list[Candidate]]


class RankNetJob:
    name = "ranknet"

    def __init__(self, config: RankNetTrainConfig, data: TrainData) -> None:
        self.config, self.data = config, data
        torch.manual_seed(config.seed)
        if data.resolver is None or data.valid is None:
            raise ConfigError("ranknet trains on ranked validation lists: TrainData needs resolver and valid")
        recall, self.recall_spec = data.resolver.build("recall", config.recall)
        rank, self.rank_spec = data.resolver.build("rank", config.rank)
        if not isinstance(recall, Recall) or not isinstance(rank, Rank):
            raise ConfigError("ranknet: 'recall' must name a recall stage and 'rank' a rank stage")
        vecs = recall.item_vectors()
        self.vectors = unit_vectors(vecs if vecs is not None else np.zeros((data.catalog.n_items, 1)))
        self.clock = ItemTimeline.from_interactions(data.fit)
        channels: list[str] = []
        if isinstance(recall, MergedRecall) and len(recall.channels) > 1 and config.channel_features:
            channels = list(recall.names)
        self.serving = RankNetConfig(
            rank_stage=rank.name,
            window_days=config.window_days,
            recent_items=config.recent_items,
            channels=channels,
            drop=list(config.drop_features),
        )
        self._drop = feature_columns(self.serving.drop, channels)
        rng = np.random.default_rng(config.seed)
        ev = data.valid
        held = rng.random(len(ev)) < config.holdout
        self.fit_set, self.valid_set = ev.subset(np.flatnonzero(~held)), ev.subset(np.flatnonzero(held))
        self.lists: Lists = {}
        for part, learnable in ((self.fit_set, True), (self.valid_set, False)):
            self.lists.update(self._ranked_lists(recall, rank, part, learnable))
        self.model = RankNet(n_features(self.serving.channels), config.hidden)
        self.tensors = self._training_tensors()
        self.module = RankNetModule(self.model, config)

    def _ranked_lists(self, recall: Recall, rank: Rank, ev: EvalSet, learnable: bool) -> Lists:
        """The rank stage's top ``rank_k`` for each request of ``ev``. ``learnable``: only the requests with
        a target among the recall's candidates (no other list can hold one, and a list without its target
        teaches nothing), so the ranker scores a fraction of the training requests."""
        reqs = build_requests(ev, np.arange(len(ev), dtype=np.int64), self.data.history_len)
        out: Lists = {}
        for lo in range(0, len(reqs), 256):
            chunk = reqs[lo : lo + 256]
            recalled = recall.retrieve_batch(chunk, self.config.recall_k)
            if learnable:
                keep = [
                    i
                    for i, cands in enumerate(recalled)
                    if np.isin(ev.targets(lo + i), [c.item for c in cands]).any()
                ]
                chunk, recalled = [chunk[i] for i in keep], [recalled[i] for i in keep]
            scored = rank.score_batch(chunk, recalled)
            out.update(
                {(r.user, r.timestamp): s[: self.config.rank_k] for r, s in zip(chunk, scored, strict=True)}
            )
        return out

    def _features(self, request: Request, ranked: Sequence[Candidate]) -> npt.NDArray[np.float32]:
        c = self.serving
        return list_features(
            request,
            ranked,
            self.clock,
            self.vectors,
            c.rank_stage,
            c.window_days,
            c.recent_items,
            c.channels,
            self._drop,
        )

    def _training_tensors(self) -> TensorDataset:
        ev, k = self.fit_set, self.config.rank_k
        reqs = build_requests(ev, np.arange(len(ev), dtype=np.int64), self.data.history_len)
        feats, labels, valid = [], [], []
        for r, row in zip(reqs, range(len(ev)), strict=True):
            ranked = self.lists.get((r.user, r.timestamp))
            if ranked is None:
                continue  # its target was not even among the recall's candidates (_ranked_lists)
            target = set(ev.targets(row).tolist())
            y = np.array([c.item in target for c in ranked], dtype=np.float32)
            if not y.any() or y.all():
                continue  # no pair to learn from
            f = np.zeros((k, n_features(self.serving.channels)), np.float32)
            f[: len(ranked)] = self._features(r, ranked)
            feats.append(f)
            labels.append(np.pad(y, (0, k - y.size)))
            valid.append(np.arange(k) < len(ranked))
        if not feats:
            raise ConfigError("ranknet: no training list holds its target; nothing to learn")
        x, yy, m = (torch.from_numpy(np.stack(a)) for a in (feats, labels, valid))
        flat = x[m]
        self.model.set_scaling(flat.mean(0), flat.std(0))
        log.info("ranknet: %d training lists with their target", len(feats))
        return TensorDataset(x, yy, m)

    def lightning_module(self) -> RankNetModule:
        return self.module

    def train_dataloader(self) -> DataLoader[Any]:
        gen = torch.Generator().manual_seed(self.config.seed)
        return DataLoader(self.tensors, batch_size=self.config.batch_size, shuffle=True, generator=gen)

    def state(self) -> dict[str, torch.Tensor]:
        out = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        out["item_vectors"] = torch.from_numpy(self.vectors)
        return out

    def stage(self) -> RankNetRerank:
        weights = RankNetWeights({k: v.numpy() for k, v in self.state().items()})
        ctx = StageContext(
            self.data.catalog, seed=self.config.seed, extras={"weights": weights, "clock": self.clock}
        )
        return RankNetRerank(self.serving, ctx)

    def validation_set(self) -> EvalSet:
        return self.valid_set

    def validation_model(self) -> ListFn:
        stage = self.stage()

        def lists(requests: Sequence[Request], depth: int) -> list[list[Candidate]]:
            return [stage.rerank(r, self.lists[(r.user, r.timestamp)], depth) for r in requests]

        return lists

    def export(self, directory: Path) -> Mapping[str, Any]:
        directory.mkdir(parents=True, exist_ok=True)
        save_weights(directory, self.state())
        upstream = {
            "recall": self.recall_spec,
            "recall_k": self.config.recall_k,
            "rank": self.rank_spec,
            "rank_k": self.config.rank_k,
        }
        (directory / ARTIFACT_UPSTREAM).write_text(json.dumps(upstream, indent=2))
        return self.serving.model_dump()


def build(config: Mapping[str, Any], data: TrainData) -> RankNetJob:
    """The ``replayrec.trainers`` entry point."""
    return RankNetJob(RankNetTrainConfig.model_validate(dict(config)), data)
