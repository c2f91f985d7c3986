"""The LightningModule: loss over each target's candidate group, optimiser, mini-batch aware regulariser."""

from __future__ import annotations

from typing import Any, cast

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from replayrec_rank_din.config import DINTrainConfig
from replayrec_rank_din.model import DIN

__all__ = ["DINModule"]


class DINModule(L.LightningModule):
    def __init__(self, model: DIN, config: DINTrainConfig, item_counts: Tensor) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.save_hyperparameters(config.model_dump())
        # n_j of DIN's mini-batch aware regulariser: how often item j occurs in the training events
        self.inv_freq = 1.0 / item_counts.float().clamp_min(1.0)

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        logits = cast(
            Tensor,
            self.model(
                batch["hist_items"],
                batch["hist_time"],
                batch["hist_pos"],
                batch["cand_items"],
                batch["context"],
            ),
        )
        valid = batch["valid"]
        if self.config.loss == "softmax":
            masked = logits.masked_fill(~valid, float("-inf"))
            loss = F.cross_entropy(masked, torch.zeros(logits.shape[0], dtype=torch.long))
        else:
            labels = torch.zeros_like(logits)
            labels[:, 0] = 1.0
            per = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
            loss = (per * valid).sum() / valid.sum()
        if self.config.mba_reg > 0:
            items = batch["items_in_batch"]
            w = self.model.encoder.item.weight[items + 1]
            loss = loss + self.config.mba_reg * (self.inv_freq[items] * w.pow(2).sum(1)).sum()
        return loss

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self.loss(batch)
        self.log(
            "train_loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=batch["valid"].shape[0],
        )
        return loss

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.model.parameters(), lr=self.config.lr)
