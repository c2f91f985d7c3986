"""Population slices: who asks (cold / heavy users), what they went on to have (popular / long-tail items,
item groups), and each slice's mean read from the per-user values."""

from __future__ import annotations

import numpy as np
import pytest

from replayrec.data import Interactions
from replayrec.evaluation import COLD_MAX, HEAVY_MIN, EvalResult, EvalSet, slice_metrics, slice_rows


def _ev(hist_lengths: list[int], first_targets: list[int]) -> EvalSet:
    n = len(hist_lengths)
    ptr = np.concatenate([[0], np.cumsum(hist_lengths)]).astype(np.int64)
    return EvalSet(
        users=np.arange(n, dtype=np.int64),
        times=np.zeros(n, np.int64),
        hist_ptr=ptr,
        hist_items=np.zeros(int(ptr[-1]), np.int64),
        hist_times=np.zeros(int(ptr[-1]), np.int64),
        tgt_ptr=np.array([0, 2, *range(3, n + 2)], np.int64)[: n + 1],
        tgt_items=np.array([first_targets[0], 9, *first_targets[1:]], np.int64),
    )


def test_users_and_items_fall_in_the_documented_slices() -> None:
    # item 0: 50 training events (the most popular), items 1..19: one each, item 20: none
    items = np.array([0] * 50 + list(range(1, 20)))
    fit = Interactions(np.zeros(items.size, np.int64), items, np.arange(items.size), n_users=1, n_items=21)
    ev = _ev([COLD_MAX, COLD_MAX + 1, HEAVY_MIN, 3], [0, 5, 20, 0])
    groups = np.zeros(21, np.int64)
    groups[0] = 7
    s = slice_rows(ev, fit, groups)
    assert s["users:cold"].tolist() == [0, 3]
    assert s["users:heavy"].tolist() == [2]
    assert s["items:popular"].tolist() == [0, 3], "sliced by the first target (row 0's second is item 9)"
    assert s["items:long-tail"].tolist() == [1, 2], "an item never seen in training is long tail"
    assert not any(k.startswith("group:") for k in s), "groups with fewer than 50 requests are left out"


def test_slice_means_come_from_the_rows_of_each_slice() -> None:
    per_user = {"ndcg@10": np.array([1.0, 0.0, 0.5, 0.25]), "hr@10": np.array([1.0, 0.0, 1.0, 1.0])}
    res = EvalResult({}, {}, per_user, np.arange(4), 4)
    out = slice_metrics(
        res, {"a": np.array([0, 2]), "b": np.array([1]), "none": np.array([], np.int64)}, n_boot=50
    )
    assert out["a"]["ndcg@10"] == pytest.approx(0.75)
    assert out["a"]["hr@10"] == pytest.approx(1.0)
    assert out["a"]["n_users"] == 2
    lo, hi = out["a"]["ci"]["ndcg@10"]
    assert 0.5 <= lo <= 0.75 <= hi <= 1.0
    assert out["b"]["ndcg@10"] == 0.0
    assert out["none"] == {"n_users": 0, "ndcg@10": None, "hr@10": None, "ci": {}}
