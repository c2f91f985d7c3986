"""LightGCN building blocks: the normalised graph, the symmetric sparse product, negative sampling, BPR."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from replayrec_recall_lightgcn.model import LightGCN, bpr_loss, normalised_adjacency, sample_negatives


def test_adjacency_is_symmetric_and_degree_normalised() -> None:
    users = np.array([0, 0, 1, 1, 1, 0])  # (0, 1) repeated: counts once
    items = np.array([0, 1, 1, 2, 0, 1])
    a = normalised_adjacency(users, items, 2, 3).to_dense()
    assert torch.allclose(a, a.T)
    deg = np.array([2, 3, 2, 2, 1], dtype=np.float32)  # users 0, 1; items 0, 1, 2
    # entry (user 0, item 1) = 1 / sqrt(d_u0 * d_i1)
    assert a[0, 2 + 1].item() == pytest.approx(1 / np.sqrt(deg[0] * deg[3]))
    assert a[0, 2 + 2].item() == 0.0
    assert torch.all(a[:2, :2] == 0)


def test_symmetric_product_gradient_matches_dense_autograd() -> None:
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 20, 120), rng.integers(0, 30, 120)
    model = LightGCN(20, 30, dim=8, layers=3, seed=1)
    model.set_graph(normalised_adjacency(users, items, 20, 30))
    dense = model.graph.to_dense()
    u, i = model.propagate()
    (u.sum() + (i**2).sum()).backward()
    fast = model.embedding.grad.clone()

    e = model.embedding.detach().clone().requires_grad_(True)
    acc, cur = e, e
    for _ in range(3):
        cur = dense @ cur
        acc = acc + cur
    out = acc / 4
    (out[:20].sum() + (out[20:] ** 2).sum()).backward()
    assert torch.allclose(fast, e.grad, atol=1e-5)


def test_negatives_are_never_positives() -> None:
    rng = np.random.default_rng(3)
    n_items = 12
    users = np.repeat(np.arange(50), 9)
    items = np.concatenate([rng.choice(n_items, 9, replace=False) for _ in range(50)])
    keys = np.unique(users * n_items + items)
    for seed in range(5):
        neg = sample_negatives(users, keys, n_items, np.random.default_rng(seed))
        assert not np.isin(users * n_items + neg, keys).any()
        assert neg.min() >= 0
        assert neg.max() < n_items


def test_bpr_loss_prefers_the_positive() -> None:
    ego = (torch.zeros(4, 2),)
    good = bpr_loss(torch.full((4,), 3.0), torch.zeros(4), ego, reg=0.0)
    bad = bpr_loss(torch.zeros(4), torch.full((4,), 3.0), ego, reg=0.0)
    assert good < 0.1 < bad
    assert bpr_loss(torch.zeros(4), torch.zeros(4), (torch.ones(4, 2),), reg=1.0) > bpr_loss(
        torch.zeros(4), torch.zeros(4), (torch.ones(4, 2),), reg=0.0
    )
