"""Validation targets for early stopping, carved so no test event is ever used, and shaped like the test:
under ``temporal`` the validation requests are made at a cut inside the training window, as the test's are at
``T`` (a request at a random past moment whose history holds the user's later events would teach a model
features it never has at ``T``)."""

from __future__ import annotations

import numpy as np

from replayrec.data import Interactions
from replayrec.errors import ConfigError
from replayrec.evaluation import EvalSet, ProtocolSplit, temporal_holdout

__all__ = ["holdout_validation", "temporal_validation", "validation_set"]


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


def temporal_validation(
    fit: Interactions, seed: int, max_users: int, holdout: float = 0.1
) -> tuple[Interactions, EvalSet]:
    """For the ``temporal`` protocol: the protocol again inside the training events. A cut ``T'`` leaves the
    last ``holdout`` of them after it; for a seeded sample of at most ``max_users`` users with history
    before ``T'`` and a new item after it, a request at ``T'`` (history: their events before ``T'``;
    targets: the items they first had in ``[T', T)``). Only those users' events after ``T'`` are withheld
    from the fit, so the models still learn from everyone else's newest events. Falls back to
    :func:`holdout_validation` when the cut leaves no such user."""
    try:
        _, valid, cut = temporal_holdout(fit, holdout)
    except ConfigError:
        return holdout_validation(fit, seed, max_users)
    if len(valid) == 0:
        return holdout_validation(fit, seed, max_users)
    if len(valid) > max_users:
        rows = np.sort(np.random.default_rng(seed).choice(len(valid), max_users, replace=False))
        valid = valid.subset(rows.astype(np.int64))
    withheld = (fit.timestamp >= cut) & np.isin(fit.user, valid.users)
    return fit.subset(~withheld), valid


def validation_set(split: ProtocolSplit, seed: int, max_users: int) -> tuple[Interactions, EvalSet]:
    """The events to fit and (at most ``max_users``, a seeded sample of) validation requests: the split's
    own, else (``temporal``) :func:`temporal_validation`, else (``given``) :func:`holdout_validation`."""
    if split.valid is None and split.protocol == "temporal":
        return temporal_validation(split.fit, seed, max_users)
    if split.valid is None:
        return holdout_validation(split.fit, seed, max_users)
    fit, valid = split.fit, split.valid
    if len(valid) > max_users:
        rows = np.sort(np.random.default_rng(seed).choice(len(valid), max_users, replace=False))
        valid = valid.subset(rows.astype(np.int64))
    return fit, valid
