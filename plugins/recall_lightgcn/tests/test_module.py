"""The LightningModule's optimiser and learning-rate step."""

from __future__ import annotations

import torch

from replayrec_recall_lightgcn.config import LightGCNTrainConfig
from replayrec_recall_lightgcn.model import LightGCN
from replayrec_recall_lightgcn.module import LightGCNModule


def test_constant_learning_rate_by_default() -> None:
    module = LightGCNModule(LightGCN(3, 4, dim=2), LightGCNTrainConfig(lr=0.02))
    opt = module.configure_optimizers()
    assert isinstance(opt, torch.optim.Adam)
    assert opt.param_groups[0]["lr"] == 0.02


def test_learning_rate_step() -> None:
    module = LightGCNModule(
        LightGCN(3, 4, dim=2), LightGCNTrainConfig(lr=0.02, lr_step_epoch=3, lr_step_factor=0.1)
    )
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    for _ in range(3):
        opt.step()
        sched.step()
    assert abs(opt.param_groups[0]["lr"] - 0.002) < 1e-12
