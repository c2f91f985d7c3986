"""The LightningModule: BPR loss with L2 on ego embeddings, Adam."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from replayrec_recall_lightgcn.config import LightGCNTrainConfig
from replayrec_recall_lightgcn.model import LightGCN, bpr_loss

__all__ = ["LightGCNModule"]


class LightGCNModule(L.LightningModule):
    def __init__(self, model: LightGCN, config: LightGCNTrainConfig) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.save_hyperparameters(config.model_dump())

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        users, pos, neg = batch
        pos_s, neg_s, *ego = self.model(users, pos, neg)
        loss = bpr_loss(pos_s, neg_s, tuple(ego), self.config.reg)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=users.shape[0])
        return loss

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.parameters(), lr=self.config.lr)
        if self.config.lr_step_epoch is None:
            return opt
        step = torch.optim.lr_scheduler.MultiStepLR(
            opt, [self.config.lr_step_epoch], self.config.lr_step_factor
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": step, "interval": "epoch"}}
