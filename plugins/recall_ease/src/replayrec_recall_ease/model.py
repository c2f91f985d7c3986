"""EASE (Steck, WWW 2019): the closed form, its pruned sparse form and the weights it is saved as.

``B = I - P · diag(1 / diag(P))`` with ``P = (XᵀX + λI)^{-1}``, so ``diag(B) = 0``; a user's scores are
``x_u · B``. The inverse comes from one Cholesky factorisation and its in-place inverse (LAPACK ``potrf`` +
``potri``: n³ flops, one n × n work matrix besides the Gram matrix). numpy / scipy only: serving imports
this module, training adds nothing heavier.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.linalg import get_lapack_funcs

from replayrec.data import Interactions
from replayrec.errors import ConfigError

__all__ = [
    "WEIGHT_KEYS",
    "EaseWeights",
    "PrunedFit",
    "closed_form",
    "fit_ease",
    "gram",
    "prune",
    "prune_rows",
    "top_items",
]

I64 = npt.NDArray[np.int64]
Dense = npt.NDArray[np.floating[Any]]
#: the artifact's tensors: the kept items (m,), B's CSR arrays over them, every item's training count
WEIGHT_KEYS = ("items", "indptr", "indices", "data", "item_counts")
#: rows of B pruned at a time: (256, 38.5k) temporaries stay around 40 MB
_CHUNK = 256


def top_items(counts: I64, max_items: int) -> I64:
    """The (at most) ``max_items`` most-interacted items with at least one event, ties by smaller id,
    in ascending id order."""
    order = np.lexsort((np.arange(counts.size), -counts))
    keep = order[: min(max_items, int(np.count_nonzero(counts)))]
    return np.sort(keep).astype(np.int64)


def gram(x: sp.csr_matrix, items: I64, dtype: str = "float32") -> Dense:
    """``XᵀX`` over ``items`` (columns of the binary user × item matrix ``x``), dense, C order."""
    sub = x.tocsc()[:, items].astype(np.float32)  # co-occurrence counts: exact in float32 below 2**24
    out: Dense = np.ascontiguousarray((sub.T @ sub).toarray(), dtype=dtype)
    return out


def _symmetrise_from_lower(a: Dense) -> None:
    """Copy the lower triangle of ``a`` onto its upper one, in place, a block of rows at a time."""
    n = a.shape[0]
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        a[lo:hi, hi:] = a[hi:, lo:hi].T
        blk = a[lo:hi, lo:hi]
        upper = np.triu_indices(hi - lo, 1)
        blk[upper] = blk.T[upper]


def closed_form(g: Dense, lam: float) -> Dense:
    """EASE's dense ``B`` for the Gram matrix ``g`` (left untouched) and L2 weight ``lam``, in ``g``'s
    dtype: ``B[i, j] = -P[i, j] / P[j, j]`` off the diagonal, 0 on it."""
    n = g.shape[0]
    work = np.array(g, order="C", copy=True)
    work[np.diag_indices(n)] += lam
    potrf, potri = get_lapack_funcs(("potrf", "potri"), (work,))
    # work.T is the same symmetric matrix in Fortran order: LAPACK works in place on it; its upper
    # triangle is work's lower one
    c, info = potrf(work.T, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise ConfigError(f"ease: XᵀX + λI is not positive definite (potrf info {info}); raise lambda")
    p, info = potri(c, lower=False, overwrite_c=True)
    if info != 0:
        raise ConfigError(f"ease: cannot invert XᵀX + λI (potri info {info})")
    if not np.shares_memory(p, work):  # LAPACK wrappers copy when they cannot work in place
        work = np.ascontiguousarray(p.T)
    _symmetrise_from_lower(work)
    diag = work.diagonal().copy()
    for lo in range(0, n, _CHUNK):
        work[lo : lo + _CHUNK] /= -diag
    work[np.diag_indices(n)] = 0.0
    return work


def prune_rows(b: Dense, k: int) -> tuple[I64, npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    """The ``k`` largest entries of each row of the dense ``b`` (ties by smaller column) as CSR arrays
    ``(indptr, indices, data)``, columns ascending within a row; exact zeros are dropped (they add
    nothing to a score)."""
    n_rows, n_cols = b.shape
    k = min(k, n_cols)
    lengths = np.zeros(n_rows, dtype=np.int64)
    cols: list[npt.NDArray[np.int32]] = []
    vals: list[npt.NDArray[np.float32]] = []
    for lo in range(0, n_rows, _CHUNK):
        blk = b[lo : lo + _CHUNK]
        part = np.argpartition(-blk, k - 1, axis=1)[:, :k] if k < n_cols else None
        kth = (
            np.take_along_axis(blk, part, axis=1).min(axis=1, keepdims=True)
            if part is not None
            else np.full((blk.shape[0], 1), -np.inf)
        )
        above = blk > kth
        tied = blk == kth
        room = k - above.sum(axis=1, keepdims=True)
        keep = (above | (tied & (np.cumsum(tied, axis=1) <= room))) & (blk != 0)
        rows, c = np.nonzero(keep)  # row-major: columns ascending within each row
        lengths[lo : lo + blk.shape[0]] = np.bincount(rows, minlength=blk.shape[0])
        cols.append(c.astype(np.int32))
        vals.append(blk[rows, c].astype(np.float32))
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    empty_i, empty_f = np.zeros(0, np.int32), np.zeros(0, np.float32)
    return indptr, np.concatenate(cols) if cols else empty_i, np.concatenate(vals) if vals else empty_f


def _mass(b: Dense) -> tuple[float, float]:
    """``Σ|B|`` and ``Σ max(B, 0)``, a block of rows at a time."""
    total, positive = 0.0, 0.0
    for lo in range(0, b.shape[0], _CHUNK):
        blk = b[lo : lo + _CHUNK].astype(np.float64)
        total += float(np.abs(blk).sum())
        positive += float(np.clip(blk, 0, None).sum())
    return total, positive


@dataclass(frozen=True)
class EaseWeights:
    """A trained EASE recall: the pruned ``B`` over ``items`` (local index ``i`` is catalogue item
    ``items[i]``) in CSR form, and every catalogue item's training count (the popularity prior).

    Shapes: ``items`` (m,) int64, ``indptr`` (m + 1,) int64, ``indices`` (nnz,) int32 local columns,
    ``data`` (nnz,) float32, ``item_counts`` (n_items,) int64."""

    items: I64
    indptr: I64
    indices: npt.NDArray[np.int32]
    data: npt.NDArray[np.float32]
    item_counts: I64

    @property
    def n_items(self) -> int:
        return int(self.item_counts.size)

    def to_state(self) -> dict[str, npt.NDArray[Any]]:
        """The named arrays of ``model.safetensors``."""
        return {k: np.ascontiguousarray(getattr(self, k)) for k in WEIGHT_KEYS}

    @classmethod
    def from_state(cls, state: Mapping[str, npt.NDArray[Any]], who: str = "ease") -> EaseWeights:
        """Weights from the artifact's arrays, checked: a truncated or foreign file is refused."""
        missing = [k for k in WEIGHT_KEYS if k not in state]
        if missing:
            raise ConfigError(f"{who}: the model lacks tensors {missing} (not an ease artifact?)")
        for key in ("items", "indptr", "indices", "item_counts"):
            if not np.issubdtype(state[key].dtype, np.integer) or state[key].ndim != 1:
                raise ConfigError(f"{who}: corrupt model: {key} must be a 1-d integer array")
        if not np.issubdtype(state["data"].dtype, np.floating) or state["data"].ndim != 1:
            raise ConfigError(f"{who}: corrupt model: data must be a 1-d float array")
        w = cls(
            np.asarray(state["items"], dtype=np.int64),
            np.asarray(state["indptr"], dtype=np.int64),
            np.asarray(state["indices"], dtype=np.int32),
            np.asarray(state["data"], dtype=np.float32),
            np.asarray(state["item_counts"], dtype=np.int64),
        )
        problem = w._problem()
        if problem:
            raise ConfigError(f"{who}: corrupt model: {problem}")
        return w

    def _problem(self) -> str | None:
        m, nnz = self.items.size, self.data.size
        if self.items.size and (self.items.min() < 0 or self.items.max() >= self.n_items):
            return f"items outside the model's {self.n_items} items"
        if np.unique(self.items).size != m:
            return "repeated items"
        if self.indptr.size != m + 1 or self.indptr[0] != 0 or self.indptr[-1] != nnz:
            return f"indptr of {self.indptr.size} entries does not describe {m} rows of {nnz} entries"
        if np.any(np.diff(self.indptr) < 0):
            return "indptr decreases"
        if self.indices.size != nnz or (nnz and (self.indices.min() < 0 or self.indices.max() >= m)):
            return "indices outside the kept items"
        if not np.all(np.isfinite(self.data)):
            return "non-finite entries"
        if np.any(self.item_counts < 0):
            return "negative item counts"
        return None

    def matrix(self) -> sp.csr_matrix:
        """``B`` over the whole catalogue, (n_items, n_items) float64 CSR; items outside ``items`` have
        empty rows and columns."""
        rows = np.repeat(self.items, np.diff(self.indptr))
        out = sp.csr_matrix(
            (self.data.astype(np.float64), (rows, self.items[self.indices])),
            shape=(self.n_items, self.n_items),
        )
        out.sort_indices()
        return out


@dataclass(frozen=True)
class PrunedFit:
    """One λ's pruned weights and how much of ``B`` the pruning kept (``|B|`` and positive mass)."""

    weights: EaseWeights
    lam: float
    mass_kept: float
    positive_mass_kept: float


def prune(b: Dense, items: I64, item_counts: I64, lam: float, neighbours: int) -> PrunedFit:
    """``b`` (dense, over ``items``) pruned to ``neighbours`` entries per row, with the mass it keeps."""
    total, positive = _mass(b)
    indptr, indices, data = prune_rows(b, neighbours)
    kept = float(np.abs(data.astype(np.float64)).sum())
    kept_pos = float(np.clip(data.astype(np.float64), 0, None).sum())
    w = EaseWeights(items, indptr, indices, data, item_counts.astype(np.int64))
    return PrunedFit(w, lam, kept / total if total else 1.0, kept_pos / positive if positive else 1.0)


def fit_ease(
    train: Interactions,
    lam: float,
    max_items: int = 20_000,
    neighbours: int = 200,
    dtype: str = "float32",
) -> PrunedFit:
    """EASE with a fixed ``lam`` on ``train``: the whole fit in one call (tests, small catalogues)."""
    items = top_items(train.item_counts, max_items)
    b = closed_form(gram(train.user_item, items, dtype), lam)
    return prune(b, items, train.item_counts, lam, neighbours)
