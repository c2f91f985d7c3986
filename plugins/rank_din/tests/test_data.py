"""Training examples: built in time order from the cascade's candidates, with no leakage."""

from __future__ import annotations

import numpy as np
import pytest

from replayrec.data import Interactions
from replayrec.plugins import build_stage
from replayrec.stages import Recall
from replayrec.testing import tiny_world
from replayrec_rank_din.data import DINBatches, recall_candidates, target_requests, training_targets


@pytest.fixture(scope="module")
def world():
    return tiny_world(seed=5)


def test_no_target_or_later_event_is_ever_in_its_own_history(world) -> None:
    fit: Interactions = world.train
    t = training_targets(fit, max_history=8, min_history=1)
    assert len(t) > 500
    seq = fit.sequences
    global_pos = seq.order  # position of each sequence entry in the global (time, source) event order
    user_of = np.repeat(np.arange(fit.n_users), seq.lengths)
    for n in range(len(t)):
        lo, hi = int(t.start[n]), int(t.end[n])
        hist = np.arange(lo, hi)
        assert hist.size >= 1
        assert (user_of[hist] == t.user[n]).all(), "history events belong to the user"
        assert (global_pos[hist] < global_pos[hi]).all(), "every history event precedes the target"
        assert (seq.times[hist] <= seq.times[hi]).all()
        assert t.item[n] not in seq.items[int(t.first[n]) : hi], "the target is never an earlier item"
        assert hi - lo == min(8, hi - int(t.first[n])), "the most recent events, capped"
    reqs = target_requests(t, np.arange(0, len(t), 97))
    for n, r in zip(range(0, len(t), 97), reqs, strict=True):
        assert r.timestamp == t.time[n]
        assert t.item[n] not in r.history
        assert t.item[n] not in r.exclude
        later = seq.items[int(t.end[n]) : int(seq.ptr[t.user[n] + 1])]
        assert not np.isin(
            r.history, later[~np.isin(later, seq.items[int(t.first[n]) : int(t.end[n])])]
        ).any()


def test_hard_negatives_are_the_recall_candidates_at_that_moment(world) -> None:
    fit = world.train
    t = training_targets(fit, max_history=20)
    recall = build_stage("recall", "itemcf", {}, world.context())
    assert isinstance(recall, Recall)
    rows = np.arange(0, len(t), 50)
    reqs = target_requests(t, rows)
    cands = recall_candidates(recall, reqs, 15)
    for i, r in enumerate(reqs):
        expect = [c.item for c in recall.retrieve(r, 15)]
        assert cands.items[i, : cands.count[i]].tolist() == expect
        assert not np.isin(cands.items[i, : cands.count[i]], r.exclude).any()

    sub = type(t)(t.user[rows], t.first[rows], t.start[rows], t.end[rows], t.items, t.times)
    batches = DINBatches(sub, cands, fit.n_items, 16, hard=6, random=3, max_history=20, seed=0)
    rng = np.random.default_rng(0)
    b = batches.batch(np.arange(len(sub)), rng)
    c = b["cand_items"].numpy()
    assert c.shape == (len(sub), 10)
    assert (c[:, 0] == sub.item).all(), "column 0 is the true next item"
    for i in range(len(sub)):
        pool = set(cands.items[i, : cands.count[i]].tolist())
        assert set(c[i, 1:7].tolist()) <= pool or cands.count[i] == 0
    valid = b["valid"].numpy()
    np.testing.assert_array_equal(valid[:, 1:], c[:, 1:] != c[:, :1])
    assert not valid[:, 1:].all(), "the recall often retrieves the target; it is never a negative"
    h = b["hist_items"].numpy()
    assert (h[:, -1] > 0).all(), "left padding: the newest item is last"
    assert not (h == c[:, :1] + 1).any(), "no target is in its own history block"


def test_epochs_are_reshuffled_but_reproducible(world) -> None:
    fit = world.train
    t = training_targets(fit, max_history=20)
    recall = build_stage("recall", "popularity", {}, world.context())
    assert isinstance(recall, Recall)
    cands = recall_candidates(recall, target_requests(t, np.arange(len(t))), 10)

    def first_batch(seed: int, epochs: int):
        ds = DINBatches(t, cands, fit.n_items, 64, 4, 2, 20, seed)
        for _ in range(epochs - 1):
            list(ds)
        return next(iter(ds))["cand_items"].numpy()

    np.testing.assert_array_equal(first_batch(1, 1), first_batch(1, 1))
    assert not np.array_equal(first_batch(1, 1), first_batch(1, 2))
    assert len(DINBatches(t, cands, fit.n_items, 64, 4, 2, 20, 0)) == -(-len(t) // 64)


@pytest.mark.realdata
def test_no_leakage_on_the_real_books_training_events(books) -> None:
    """Every one of the ~400k books training targets, checked vectorised against the global event order."""
    from replayrec.evaluation import build_split

    fit = build_split(books, "loo").fit
    t = training_targets(fit, max_history=50)
    seq = fit.sequences
    n_hist = t.end - t.start
    assert len(t) > 300_000
    assert (n_hist >= 1).all()
    assert (n_hist <= 50).all()
    rows = np.repeat(np.arange(len(t)), n_hist)
    pos = np.arange(n_hist.sum()) - np.repeat(np.cumsum(n_hist) - n_hist, n_hist) + np.repeat(t.start, n_hist)
    user_of = np.repeat(np.arange(fit.n_users), seq.lengths)
    assert (user_of[pos] == t.user[rows]).all()
    assert (seq.order[pos] < seq.order[t.end[rows]]).all(), "history events precede their target"
    assert (seq.items[pos] != t.item[rows]).all(), "no target is in its own history"
    # the targets come from training events only: never a user's last two (the loo validation / test targets)
    assert (t.end < seq.ptr[t.user + 1]).all()
    assert len(fit) == len(books.events) - 2 * int((np.diff(books.interactions().sequences.ptr) >= 3).sum())


def test_max_targets_keeps_the_most_recent(world) -> None:
    fit = world.train
    every = training_targets(fit, max_history=8)
    some = training_targets(fit, max_history=8, max_targets=100)
    assert len(some) == 100
    order = fit.sequences.order
    assert order[some.end].min() >= np.sort(order[every.end])[-100], "the latest 100 in the global order"
    assert set(some.end.tolist()) <= set(every.end.tolist())
