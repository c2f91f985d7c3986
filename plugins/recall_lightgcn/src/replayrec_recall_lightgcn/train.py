"""``build(config, data)``: the LightGCN training job driven by core's ``replayrec train``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import DataLoader

from replayrec.artifacts import save_weights
from replayrec.stages import StageContext
from replayrec.training import TrainData
from replayrec_recall_lightgcn.config import LightGCNConfig, LightGCNTrainConfig
from replayrec_recall_lightgcn.data import BPRBatches
from replayrec_recall_lightgcn.model import LightGCN, normalised_adjacency
from replayrec_recall_lightgcn.module import LightGCNModule
from replayrec_recall_lightgcn.stage import LightGCNRecall

__all__ = ["LightGCNJob", "build"]


class LightGCNJob:
    name = "lightgcn"

    def __init__(self, config: LightGCNTrainConfig, data: TrainData) -> None:
        self.config = config
        self.data = data
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        fit = data.fit
        self.batches = BPRBatches(fit, config.batch_size, config.seed)
        self.model = LightGCN(fit.n_users, fit.n_items, config.dim, config.layers, seed=config.seed)
        self.model.set_graph(
            normalised_adjacency(self.batches.users, self.batches.items, fit.n_users, fit.n_items)
        )
        self.item_degree = np.bincount(self.batches.items, minlength=fit.n_items)
        self.module = LightGCNModule(self.model, config)

    def lightning_module(self) -> LightGCNModule:
        return self.module

    def train_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.batches, batch_size=None)

    def weights(self) -> dict[str, npt.NDArray[np.float32]]:
        """Final user / item embeddings and the items' fold-in vectors
        ``F_i = Σ_{l<L} E_l[i] / ((L + 1) · sqrt(deg i))`` (LightGCN's aggregation of a user's items)."""
        n_users, layers = self.model.n_users, self.model.layers
        with torch.no_grad():
            embs = self.model.layer_embeddings()
            final = (torch.stack(embs).sum(0) / (layers + 1)).numpy()
            partial = (torch.stack(embs[:-1]).sum(0)[n_users:] / (layers + 1)).numpy()
        scale = 1.0 / np.sqrt(np.maximum(self.item_degree, 1)).astype(np.float32)
        return {
            "user_embedding": np.ascontiguousarray(final[:n_users], dtype=np.float32),
            "item_embedding": np.ascontiguousarray(final[n_users:], dtype=np.float32),
            "item_fold_in": np.ascontiguousarray(partial * scale[:, None], dtype=np.float32),
        }

    def stage(self) -> LightGCNRecall:
        ctx = StageContext(
            catalog=self.data.catalog, seed=self.config.seed, extras={"weights": self.weights()}
        )
        return LightGCNRecall(LightGCNConfig(), ctx)

    def export(self, directory: Path) -> Mapping[str, Any]:
        directory.mkdir(parents=True, exist_ok=True)
        save_weights(directory, self.weights())
        return LightGCNConfig().model_dump()


def build(config: Mapping[str, Any], data: TrainData) -> LightGCNJob:
    """The ``replayrec.trainers`` entry point."""
    return LightGCNJob(LightGCNTrainConfig.model_validate(dict(config)), data)
