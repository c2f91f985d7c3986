"""Validation targets for early stopping, carved so no test event is ever used."""

from __future__ import annotations

import numpy as np

from replayrec.data import Interactions
from replayrec.evaluation import EvalSet, ProtocolSplit

__all__ = ["holdout_validation", "validation_set"]


def holdout_validation(fit: Interactions, seed: int, max_users: int) -> tuple[Interactions, EvalSet]:
    """For splits without a validation target (``given``): for a seeded sample of at most ``max_users`` users
    with three or more training events, one random event becomes the validation target; the model fits on
    the rest (so only ``max_users`` events are withheld from training)."""
    rng = np.random.default_rng(seed)
    seqs = fit.sequences
    lengths = seqs.lengths
    eligible = np.flatnonzero(lengths >= 3)
    if eligible.size > max_users:
        eligible = np.sort(rng.choice(eligible, max_users, replace=False))
    pick = seqs.ptr[eligible] + (rng.random(eligible.size) * lengths[eligible]).astype(np.int64)
    held = np.zeros(len(fit), dtype=bool)
    held[seqs.order[pick]] = True
    keep_seq = np.ones(seqs.items.size, dtype=bool)
    keep_seq[pick] = False
    user_of = np.repeat(np.arange(fit.n_users), lengths)
    in_eval = np.isin(user_of, eligible) & keep_seq
    h_len = np.bincount(user_of[in_eval], minlength=fit.n_users)[eligible]
    h_ptr = np.concatenate([[0], np.cumsum(h_len)]).astype(np.int64)
    valid = EvalSet(
        users=eligible.astype(np.int64),
        times=seqs.times[pick],
        hist_ptr=h_ptr,
        hist_items=seqs.items[in_eval],
        hist_times=seqs.times[in_eval],
        tgt_ptr=np.arange(eligible.size + 1, dtype=np.int64),
        tgt_items=seqs.items[pick],
    )
    return fit.subset(~held), valid


def validation_set(split: ProtocolSplit, seed: int, max_users: int) -> tuple[Interactions, EvalSet]:
    """The events to fit and (at most ``max_users``, a seeded sample of) validation requests."""
    if split.valid is None:
        return holdout_validation(split.fit, seed, max_users)
    fit, valid = split.fit, split.valid
    if len(valid) > max_users:
        rows = np.sort(np.random.default_rng(seed).choice(len(valid), max_users, replace=False))
        valid = valid.subset(rows.astype(np.int64))
    return fit, valid
