"""The vectorised metrics agree with a naive per-user reference to 1e-9."""

from __future__ import annotations

import math

import numpy as np
import pytest

from replayrec.evaluation import group_auc, per_user_metrics, target_ranks

KS = (1, 3, 10, 20)


def naive(
    scores: np.ndarray, relevant: list[set[int]], masked: list[set[int]], ks=KS
) -> dict[str, np.ndarray]:
    """Sort every user's unmasked items by (-score, id) and read the metrics off the list."""
    out: dict[str, list[float]] = {}
    for u, rel in enumerate(relevant):
        ranked = sorted(
            (i for i in range(scores.shape[1]) if i not in masked[u]), key=lambda i: (-scores[u, i], i)
        )
        pos = {item: r for r, item in enumerate(ranked)}
        for k in ks:
            top = ranked[:k]
            hits = [r for r, i in enumerate(top) if i in rel]
            dcg = sum(1 / math.log2(r + 2) for r in hits)
            idcg = sum(1 / math.log2(r + 2) for r in range(min(len(rel), k)))
            out.setdefault(f"recall@{k}", []).append(len(hits) / len(rel))
            out.setdefault(f"ndcg@{k}", []).append(dcg / idcg)
            out.setdefault(f"hr@{k}", []).append(float(bool(hits)))
        out.setdefault("mrr", []).append(1 / (min(pos[i] for i in rel) + 1))
        negs = [i for i in ranked if i not in rel]
        pairs = sum(1 for p in rel for n in negs if pos[p] < pos[n])
        out.setdefault("auc", []).append(pairs / (len(rel) * len(negs)))
    return {k: np.asarray(v) for k, v in out.items()}


def vectorised(
    scores: np.ndarray, relevant: list[set[int]], masked: list[set[int]], ks=KS
) -> dict[str, np.ndarray]:
    s = scores.astype(np.float64).copy()
    for u, m in enumerate(masked):
        s[u, sorted(m)] = np.nan
    rows = np.concatenate([np.full(len(r), u) for u, r in enumerate(relevant)])
    items = np.concatenate([sorted(r) for r in relevant])
    ranks = target_ranks(s, rows, items, chunk=3)
    n_cand = np.array([scores.shape[1] - len(m) for m in masked])
    return per_user_metrics(rows, ranks, len(relevant), n_cand, ks)


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_metrics_match_naive_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_users, n_items = 25, 60
    # coarse scores force many exact ties, which the tie-break by item id must resolve identically
    scores = rng.integers(0, 8 if seed % 2 else 1000, size=(n_users, n_items)).astype(np.float64)
    relevant, masked = [], []
    for _ in range(n_users):
        perm = rng.permutation(n_items)
        n_rel = int(rng.integers(1, 6))
        relevant.append(set(perm[:n_rel].tolist()))
        masked.append(set(perm[n_rel : n_rel + int(rng.integers(0, 15))].tolist()))
    ref = naive(scores, relevant, masked)
    got = vectorised(scores, relevant, masked)
    for key, val in ref.items():
        np.testing.assert_allclose(got[key], val, atol=1e-9, rtol=0, err_msg=key)


def test_ideal_dcg_uses_min_of_relevant_and_k() -> None:
    scores = np.arange(10, dtype=np.float64)[::-1][None, :].copy()  # item 0 ranked first
    got = vectorised(scores, [{0, 5, 6, 7}], [set()], ks=(2,))
    # hits: item 0 at rank 0 only; ideal DCG over min(4, 2) = 2 positions
    assert got["ndcg@2"][0] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert got["recall@2"][0] == pytest.approx(0.25)


def test_unranked_targets_are_misses_and_auc_is_undefined() -> None:
    res = per_user_metrics(np.array([0, 1]), np.array([2.0, np.inf]), 2, np.array([10, 10]), (5,))
    assert res["hr@5"].tolist() == [1.0, 0.0]
    assert res["mrr"][1] == 0.0


def test_group_auc_matches_pairwise_counting() -> None:
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(30), 12)
    scores = rng.integers(0, 5, groups.size).astype(np.float64)
    labels = rng.random(groups.size) < 0.3
    pooled, gauc = group_auc(scores, labels, groups)
    per, weights, pairs = [], [], []
    for g in range(30):
        s, y = scores[groups == g], labels[groups == g]
        pos, neg = s[y], s[~y]
        if not pos.size or not neg.size:
            continue
        wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
        per.append(wins / (pos.size * neg.size))
        weights.append(pos.size)
        pairs.append(pos.size * neg.size)
    assert gauc == pytest.approx(np.average(per, weights=weights), abs=1e-12)
    assert pooled == pytest.approx(np.average(per, weights=pairs), abs=1e-12)
