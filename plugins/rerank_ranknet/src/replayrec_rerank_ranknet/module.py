"""The LightningModule: RankNet's pairwise logistic loss over each list, Adam."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor

from replayrec_rerank_ranknet.config import RankNetTrainConfig
from replayrec_rerank_ranknet.model import RankNet, pairwise_loss

__all__ = ["RankNetModule"]


class RankNetModule(L.LightningModule):
    def __init__(self, model: RankNet, config: RankNetTrainConfig) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.save_hyperparameters(config.model_dump())

    def training_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> Tensor:
        features, labels, valid = batch
        loss = pairwise_loss(self.model(features), labels, valid)
        self.log(
            "train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=features.shape[0]
        )
        return loss

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.model.parameters(), lr=self.config.lr)
