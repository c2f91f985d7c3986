"""BPR training batches: (user, positive item, sampled negative item), re-sampled every epoch."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset

from replayrec.data import Interactions
from replayrec_recall_lightgcn.model import sample_negatives

__all__ = ["BPRBatches"]


class BPRBatches(IterableDataset[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]):
    """Each pass shuffles the (deduplicated) training pairs and draws one negative per pair, never a
    positive of that user. Deterministic for a seed: pass ``k`` uses ``seed + k``."""

    def __init__(self, train: Interactions, batch_size: int, seed: int) -> None:
        keys = np.unique(train.user * train.n_items + train.item)
        self.users = keys // train.n_items
        self.items = keys % train.n_items
        self.keys = keys
        self.n_items = train.n_items
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return int(-(-self.users.size // self.batch_size))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        rng = np.random.default_rng(self.seed + self.epoch)
        self.epoch += 1
        perm = rng.permutation(self.users.size)
        users, pos = self.users[perm], self.items[perm]
        neg = sample_negatives(users, self.keys, self.n_items, rng)
        for lo in range(0, perm.size, self.batch_size):
            sl = slice(lo, lo + self.batch_size)
            yield torch.from_numpy(users[sl]), torch.from_numpy(pos[sl]), torch.from_numpy(neg[sl])
