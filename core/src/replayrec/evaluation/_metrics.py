"""Ranking metrics from the ranks of relevant items — exact, vectorised.

The rank of a relevant item is its 0-based position among the items that may be recommended (not masked),
ordered by score descending, ties broken by the smaller item id. From the ranks of every relevant item of a
user we get, per user:

* ``recall@K`` = hits@K / |relevant|;  ``hr@K`` = 1 if any hit in the top K;
* ``ndcg@K`` = Σ_{hits} 1/log2(rank+2) / Σ_{i < min(|relevant|, K)} 1/log2(i+2)  (standard ideal DCG);
* ``mrr`` = 1 / (best rank + 1);
* ``auc`` = fraction of (relevant, non-relevant) pairs ordered correctly; ``gauc`` weights the per-user AUC
  by the user's number of relevant items (the DIN paper's group AUC), ``auc`` is the unweighted mean.

A relevant item the stage did not return at all (a truncated candidate list) has rank ``inf``: it counts as a
miss, and AUC is then undefined (NaN).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["group_auc", "per_user_metrics"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def per_user_metrics(
    pair_row: I64, ranks: F64, n_rows: int, n_cand: I64, ks: tuple[int, ...]
) -> dict[str, F64]:
    """Per-row metrics from the ranks of every relevant (row, item) pair.

    Args:
        pair_row: row index of each relevant pair, shape (P,), sorted ascending.
        ranks: 0-based rank of each pair among the row's rankable items, ``inf`` if not ranked, shape (P,).
        n_rows: number of rows (users); every row must have at least one pair.
        n_cand: number of rankable items of each row, shape (n_rows,).
    Returns:
        ``{name: values}`` with values of shape (n_rows,), plus ``n_relevant``.
    """
    n_rel = np.bincount(pair_row, minlength=n_rows).astype(np.float64)
    if np.any(n_rel == 0):
        raise ValueError("every evaluated row needs at least one relevant item")
    out: dict[str, F64] = {}
    gain = np.where(np.isfinite(ranks), 1.0 / np.log2(np.where(np.isfinite(ranks), ranks, 0) + 2.0), 0.0)
    disc = 1.0 / np.log2(np.arange(max(ks)) + 2.0)
    cum_disc = np.concatenate([[0.0], np.cumsum(disc)])
    for k in ks:
        hit = ranks < k
        hits = np.bincount(pair_row, weights=hit.astype(np.float64), minlength=n_rows)
        dcg = np.bincount(pair_row, weights=np.where(hit, gain, 0.0), minlength=n_rows)
        idcg = cum_disc[np.minimum(n_rel, k).astype(np.int64)]
        out[f"recall@{k}"] = hits / n_rel
        out[f"ndcg@{k}"] = dcg / idcg
        out[f"hr@{k}"] = (hits > 0).astype(np.float64)
    best = np.full(n_rows, np.inf)
    np.minimum.at(best, pair_row, ranks)
    out["mrr"] = np.where(np.isfinite(best), 1.0 / (best + 1.0), 0.0)
    # AUC: sort each row's ranks; the j-th best relevant item has (rank - j) non-relevant items above it
    order = np.lexsort((ranks, pair_row))
    r_sorted = ranks[order]
    start = np.concatenate([[0], np.cumsum(n_rel)[:-1]]).astype(np.int64)
    j = np.arange(pair_row.size) - np.repeat(start, n_rel.astype(np.int64))
    neg_above = r_sorted - j
    n_neg = n_cand.astype(np.float64) - n_rel
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_above = np.bincount(pair_row[order], weights=neg_above, minlength=n_rows) / n_rel
        auc = np.where(n_neg > 0, 1.0 - mean_above / np.maximum(n_neg, 1), np.nan)
        unranked = (
            np.bincount(pair_row, weights=(~np.isfinite(ranks)).astype(np.float64), minlength=n_rows) > 0
        )
        out["auc"] = np.where(unranked, np.nan, auc)
    out["n_relevant"] = n_rel
    return out


def group_auc(scores: F64, labels: npt.NDArray[np.bool_], groups: I64) -> tuple[float, float]:
    """(AUC pooled over all pairs of each group, GAUC) for scored candidate lists.

    Per group, AUC is the Mann–Whitney statistic with ties counted half; GAUC weights each group's AUC by
    its number of positives (groups with only positives or only negatives are skipped)."""
    order = np.lexsort((scores, groups))
    g, s, y = groups[order], scores[order], labels[order].astype(np.float64)
    # average ranks within (group, score) ties
    new_g = np.r_[True, g[1:] != g[:-1]]
    new_val = new_g | np.r_[True, s[1:] != s[:-1]]
    tie_id = np.cumsum(new_val) - 1
    pos = np.arange(g.size, dtype=np.float64)
    g_start = np.maximum.accumulate(np.where(new_g, pos, 0))
    rank_in_g = pos - g_start + 1
    avg = np.bincount(tie_id, weights=rank_in_g) / np.bincount(tie_id)
    r = avg[tie_id]
    gid = np.cumsum(new_g) - 1
    n_pos = np.bincount(gid, weights=y)
    n_all = np.bincount(gid).astype(np.float64)
    n_negs = n_all - n_pos
    sum_r = np.bincount(gid, weights=r * y)
    ok = (n_pos > 0) & (n_negs > 0)
    auc_g = (sum_r[ok] - n_pos[ok] * (n_pos[ok] + 1) / 2) / (n_pos[ok] * n_negs[ok])
    if not ok.any():
        return float("nan"), float("nan")
    gauc = float(np.sum(auc_g * n_pos[ok]) / np.sum(n_pos[ok]))
    pooled = float(np.sum(auc_g * n_pos[ok] * n_negs[ok]) / np.sum(n_pos[ok] * n_negs[ok]))
    return pooled, gauc
