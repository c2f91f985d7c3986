"""RankNet (Burges et al., ICML 2005): a scoring network over per-candidate features, trained with the
pairwise logistic loss on pairs from the same list. Plain ``nn.Module`` — no Lightning here."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["RankNet", "pairwise_loss"]


class RankNet(nn.Module):
    """features (B, C, F) → scores (B, C): standardisation with the training lists' statistics, then an MLP
    (ReLU) with one linear output."""

    mean: Tensor
    std: Tensor

    def __init__(self, n_features: int, hidden: Sequence[int] = (32, 16)) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def set_scaling(self, mean: Tensor, std: Tensor) -> None:
        with torch.no_grad():
            self.mean.copy_(mean)
            self.std.copy_(std.clamp_min(1e-6))

    def forward(self, features: Tensor) -> Tensor:
        scores: Tensor = self.net((features - self.mean) / self.std).squeeze(-1)
        return scores


def pairwise_loss(scores: Tensor, labels: Tensor, valid: Tensor) -> Tensor:
    """RankNet's loss: for every pair (i, j) of the same list with label_i > label_j,
    ``log(1 + exp(−(s_i − s_j)))``, averaged over pairs. scores, labels (B, C); valid (B, C) marks real
    candidates (lists are padded)."""
    diff = scores.unsqueeze(2) - scores.unsqueeze(1)  # (B, C, C): s_i - s_j
    better = (labels.unsqueeze(2) > labels.unsqueeze(1)) & valid.unsqueeze(2) & valid.unsqueeze(1)
    n = better.sum()
    if n == 0:
        return scores.sum() * 0.0
    return nn.functional.softplus(-diff)[better].sum() / n
