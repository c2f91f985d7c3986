"""Item groups for datasets without categories, derived from training interactions only.

Method: the binary item × user matrix of the *training* events is row-normalised (cosine geometry) and
factorised with a truncated SVD (``dims`` factors, deterministic start vector); the L2-normalised item factors
are clustered with k-means++ (fixed seed, Lloyd iterations). Items with no training events get group ``-1``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from replayrec.data._interactions import Interactions

__all__ = ["derive_item_groups", "kmeans"]


def kmeans(x: npt.NDArray[np.float64], k: int, seed: int, iters: int = 30) -> npt.NDArray[np.int64]:
    """k-means++ initialisation then Lloyd iterations; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    k = min(k, n)
    centers = np.empty((k, x.shape[1]))
    centers[0] = x[rng.integers(n)]
    d2 = ((x - centers[0]) ** 2).sum(1)
    for c in range(1, k):
        total = d2.sum()
        idx = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
        centers[c] = x[idx]
        d2 = np.minimum(d2, ((x - centers[c]) ** 2).sum(1))
    labels = np.zeros(n, dtype=np.int64)
    sq = (x**2).sum(1)
    for _ in range(iters):
        dist = sq[:, None] - 2 * x @ centers.T + (centers**2).sum(1)[None, :]
        new = dist.argmin(1).astype(np.int64)
        if np.array_equal(new, labels) and _ > 0:
            break
        labels = new
        for c in range(k):
            members = labels == c
            if members.any():
                centers[c] = x[members].mean(0)
    return labels


def derive_item_groups(
    train: Interactions, n_groups: int = 64, dims: int = 32, seed: int = 0
) -> npt.NDArray[np.int64]:
    groups = np.full(train.n_items, -1, dtype=np.int64)
    seen = np.flatnonzero(train.item_counts > 0)
    if seen.size == 0:
        return groups
    m = train.user_item.T.tocsr()[seen].astype(np.float64)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(1)).ravel())
    m = sp.diags(1.0 / np.maximum(norms, 1e-12)) @ m
    k = min(dims, min(m.shape) - 1)
    if k >= 1:
        v0 = np.random.default_rng(seed).standard_normal(min(m.shape))
        u, s, _ = svds(m, k=k, v0=v0)
        emb = u * s
    else:
        emb = np.asarray(m.todense())
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    # fix each factor's sign so the result does not depend on the solver's sign convention
    emb *= np.sign(emb[np.abs(emb).argmax(0), np.arange(emb.shape[1])])
    groups[seen] = kmeans(emb, n_groups, seed)
    return groups
