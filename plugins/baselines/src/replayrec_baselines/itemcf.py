"""Item-to-item collaborative filtering recall (ItemKNN, RP3beta, EASE).

A user's score for item ``j`` is ``Σ_h w_h · S[h, j]`` over the request's history items ``h`` with recency
weights ``w_h = exp(-recency_decay · (steps from the newest item))`` — the request's history, so a new event
changes the recall at once. ``S`` is fitted on ``StageContext.train``:

* ``itemknn``: ``S_ij = c_ij / (n_i^α · n_j^(1-α) + shrink)`` with co-occurrence ``c`` and item counts ``n``
  (α = 0.5: cosine), keeping the top ``neighbours`` per item;
* ``rp3beta``: ``S_ij = (P_iu · P_uj)^{rp3_alpha} / n_j^{rp3_beta}`` (Paudel et al. 2017), top ``neighbours``;
* ``ease``: ``B = I - P·diag(1/diag(P))``, ``P = (XᵀX + λI)^{-1}`` (Steck 2019), dense.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from pydantic import Field

from replayrec.errors import ConfigError
from replayrec.stages import (
    Candidate,
    FloatArray,
    Recall,
    Request,
    StageConfig,
    StageContext,
    topk_candidates,
)

__all__ = ["ItemCF", "ItemCFConfig", "prune_rows"]

log = logging.getLogger(__name__)


class ItemCFConfig(StageConfig):
    algorithm: Literal["itemknn", "rp3beta", "ease"] = "itemknn"
    # defaults chosen on the amazon-books-2014-1m leave-one-out *validation* targets (never a test split)
    neighbours: int = Field(default=100, gt=0)
    shrink: float = Field(default=20.0, ge=0)
    alpha: float = Field(default=0.7, ge=0, le=1)
    rp3_alpha: float = Field(default=1.0, gt=0)
    rp3_beta: float = Field(default=0.5, ge=0)
    ease_lambda: float = Field(default=500.0, gt=0)
    max_ease_items: int = Field(default=30_000, gt=0)
    recency_decay: float = Field(default=0.0, ge=0)
    popularity_fallback: bool = True


def prune_rows(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of each row (ties by smaller column)."""
    m = m.tocsr()
    m.sort_indices()
    lengths = np.diff(m.indptr)
    keep = np.ones(m.nnz, dtype=bool)
    for r in np.flatnonzero(lengths > k):
        lo, hi = m.indptr[r], m.indptr[r + 1]
        row = m.data[lo:hi]
        top = np.lexsort((m.indices[lo:hi], -row))[:k]
        mask = np.zeros(hi - lo, dtype=bool)
        mask[top] = True
        keep[lo:hi] = mask
    rows = np.repeat(np.arange(m.shape[0]), lengths)[keep]
    return sp.csr_matrix((m.data[keep], (rows, m.indices[keep])), shape=m.shape)


def _row_normalise(m: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(m.sum(axis=1)).ravel()
    return sp.diags(1.0 / np.maximum(sums, 1e-12)) @ m


class ItemCF(Recall):
    name: ClassVar[str] = "itemcf"
    Config: ClassVar[type[StageConfig]] = ItemCFConfig
    core_api: ClassVar[str] = "1.0"
    supports_full_ranking: ClassVar[bool] = True

    def __init__(self, config: StageConfig, context: StageContext) -> None:
        super().__init__(config, context)
        self.cfg = ItemCFConfig.model_validate(config.model_dump())
        train = context.require_train(self.name)
        x = train.user_item.astype(np.float64)
        self._sim: sp.csr_matrix | None = None
        self._dense: npt.NDArray[np.float32] | None = None
        if self.cfg.algorithm == "itemknn":
            self._sim = self._fit_itemknn(x)
        elif self.cfg.algorithm == "rp3beta":
            self._sim = self._fit_rp3beta(x)
        else:
            self._dense = self._fit_ease(x)
        counts = train.item_counts.astype(np.float64)
        smallest = self._smallest_positive()
        self._prior = (
            (counts / max(counts.max(), 1.0)) * smallest * 1e-3 if self.cfg.popularity_fallback else None
        )

    def _smallest_positive(self) -> float:
        data = self._sim.data if self._sim is not None else self._dense
        if data is None:
            return 1.0
        pos = data[data > 0]
        return float(pos.min()) if pos.size else 1.0

    def _fit_itemknn(self, x: sp.csr_matrix) -> sp.csr_matrix:
        co = (x.T @ x).tocsr()
        co.setdiag(0)
        co.eliminate_zeros()
        n = np.asarray(x.sum(axis=0)).ravel()
        rows = np.repeat(np.arange(co.shape[0]), np.diff(co.indptr))
        a = self.cfg.alpha
        co.data = co.data / (n[rows] ** a * n[co.indices] ** (1 - a) + self.cfg.shrink)
        return prune_rows(co, self.cfg.neighbours).astype(np.float32)

    def _fit_rp3beta(self, x: sp.csr_matrix) -> sp.csr_matrix:
        p_ui = _row_normalise(x)
        p_iu = _row_normalise(x.T.tocsr())
        w = (p_iu @ p_ui).tocsr()
        w.setdiag(0)
        w.eliminate_zeros()
        n = np.asarray(x.sum(axis=0)).ravel()
        w.data = w.data**self.cfg.rp3_alpha / np.maximum(n[w.indices], 1.0) ** self.cfg.rp3_beta
        return prune_rows(w, self.cfg.neighbours).astype(np.float32)

    def _fit_ease(self, x: sp.csr_matrix) -> npt.NDArray[np.float32]:
        n_items = x.shape[1]
        if n_items > self.cfg.max_ease_items:
            raise ConfigError(
                f"itemcf: EASE needs a dense {n_items}x{n_items} matrix; raise max_ease_items "
                f"(now {self.cfg.max_ease_items}) or use algorithm itemknn / rp3beta"
            )
        g = (x.T @ x).toarray()
        g[np.diag_indices(n_items)] += self.cfg.ease_lambda
        p = np.linalg.inv(g)
        b = p / (-np.diag(p))
        b[np.diag_indices(n_items)] = 0.0
        out: npt.NDArray[np.float32] = b.astype(np.float32)
        return out

    def _history_matrix(self, requests: Sequence[Request]) -> sp.csr_matrix:
        rows, cols, vals = [], [], []
        for i, r in enumerate(requests):
            self.check_request(r)
            h = r.history
            if h.size == 0:
                continue
            w = np.exp(-self.cfg.recency_decay * np.arange(h.size - 1, -1, -1, dtype=np.float64))
            rows.append(np.full(h.size, i))
            cols.append(h)
            vals.append(w)
        if not rows:
            return sp.csr_matrix((len(requests), self.n_items))
        return sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(len(requests), self.n_items),
        )

    def score_all(self, requests: Sequence[Request]) -> FloatArray:
        h = self._history_matrix(requests)
        if self._sim is not None:
            scores = (h @ self._sim).toarray().astype(np.float64)
        else:
            scores = np.asarray(h @ self._dense, dtype=np.float64)
        if self._prior is not None:
            scores += self._prior
        out: FloatArray = scores
        return out

    def retrieve(self, request: Request, k: int) -> list[Candidate]:
        self.check_k(k)
        return topk_candidates(self.score_all([request])[0], k, request.exclude, self.name)
