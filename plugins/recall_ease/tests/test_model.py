"""The closed form, the pruning and the weights' checks, on tiny matrices."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from replayrec.errors import ConfigError
from replayrec_recall_ease.model import (
    EaseWeights,
    closed_form,
    fit_ease,
    gram,
    prune_rows,
    top_items,
)


def _binary(seed: int, users: int = 200, items: int = 30, p: float = 0.15) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    return sp.csr_matrix((rng.random((users, items)) < p).astype(np.float32))


@pytest.mark.parametrize(("dtype", "atol"), [("float64", 1e-12), ("float32", 2e-6)])
def test_closed_form_matches_the_dense_solution(dtype: str, atol: float) -> None:
    x = _binary(0)
    lam = 4.0
    g = x.T.toarray().astype(np.float64) @ x.toarray()
    p = np.linalg.solve(g + lam * np.eye(g.shape[0]), np.eye(g.shape[0]))
    want = np.eye(g.shape[0]) - p / np.diag(p)  # column j divided by P_jj
    np.fill_diagonal(want, 0.0)
    g_in = gram(x, np.arange(30), dtype)
    before = g_in.copy()
    got = closed_form(g_in, lam)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(g_in, before)  # the Gram matrix is left untouched
    np.testing.assert_allclose(got, want, atol=atol)
    assert np.all(np.diag(got) == 0)


def test_gram_is_the_co_occurrence_of_the_chosen_items() -> None:
    x = _binary(1)
    items = np.array([2, 5, 7, 20])
    dense = x.toarray()[:, items]
    np.testing.assert_array_equal(gram(x, items, "float64"), dense.T @ dense)


def _top_k_brute(row: np.ndarray, k: int) -> list[int]:
    order = np.lexsort((np.arange(row.size), -row))[:k]  # by value, ties by smaller column
    return sorted(int(c) for c in order if row[c] != 0)


def test_pruning_keeps_exactly_the_top_k_of_each_row() -> None:
    rng = np.random.default_rng(3)
    b = np.round(rng.normal(size=(40, 25)), 1).astype(np.float32)  # rounding makes many ties
    b[3] = 0.5  # a row of ties only: the k smallest columns win
    b[4, :20] = 0.0  # a row with fewer non-zeros than k: zeros are not stored
    for k in (1, 4, 7, 25, 100):
        indptr, indices, data = prune_rows(b, k)
        for r in range(b.shape[0]):
            cols = indices[indptr[r] : indptr[r + 1]]
            assert cols.tolist() == _top_k_brute(b[r], k), (k, r)
            np.testing.assert_array_equal(data[indptr[r] : indptr[r + 1]], b[r, cols])
    indptr, indices, _ = prune_rows(b, 4)
    assert indices[indptr[3] : indptr[4]].tolist() == [0, 1, 2, 3]


def test_top_items_are_the_most_interacted_ties_by_smaller_id() -> None:
    counts = np.array([5, 0, 7, 5, 1, 7, 0])
    assert top_items(counts, 3).tolist() == [0, 2, 5]
    assert top_items(counts, 4).tolist() == [0, 2, 3, 5]
    assert top_items(counts, 100).tolist() == [0, 2, 3, 4, 5], "items without events are never fitted"


def test_unpruned_fit_keeps_all_of_b_and_maps_items_to_the_catalogue(world) -> None:
    train = world.train
    full = fit_ease(train, 2.0, max_items=50, neighbours=10_000)
    assert full.mass_kept == pytest.approx(1.0)
    assert full.positive_mass_kept == pytest.approx(1.0)
    w = full.weights
    items = w.items
    assert items.tolist() == top_items(train.item_counts, 50).tolist()
    dense = closed_form(gram(train.user_item, items, "float32"), 2.0)
    m = w.matrix().toarray()
    np.testing.assert_allclose(m[np.ix_(items, items)], dense, atol=1e-7)
    outside = np.setdiff1d(np.arange(train.n_items), items)
    assert not m[outside].any()
    assert not m[:, outside].any()
    pruned = fit_ease(train, 2.0, max_items=50, neighbours=5)
    assert np.diff(pruned.weights.indptr).max() <= 5
    assert 0 < pruned.mass_kept < 1


def test_weights_round_trip_and_corrupt_states_are_refused(world) -> None:
    w = fit_ease(world.train, 2.0, max_items=50, neighbours=5).weights
    state = w.to_state()
    back = EaseWeights.from_state(state)
    for key, value in state.items():
        np.testing.assert_array_equal(getattr(back, key), value)

    def broken(**changes: np.ndarray) -> dict[str, np.ndarray]:
        return {**state, **changes}

    cases = {
        "lacks tensors": {k: v for k, v in state.items() if k != "indptr"},
        "indptr": broken(indptr=state["indptr"][:-1]),
        "indices outside": broken(indices=state["indices"] + 60),
        "integer array": broken(indices=state["indices"].astype(np.float32)),
        "items outside": broken(items=state["items"] + 1000),
        "non-finite": broken(data=np.full_like(state["data"], np.nan)),
    }
    for message, bad in cases.items():
        with pytest.raises(ConfigError, match=message):
            EaseWeights.from_state(bad)
