"""Evaluation protocols: which events a model may fit on, and which requests and targets it is scored on.

* ``loo`` — leave-one-out by time: each user's last event is the test target and the one before it the
  validation target; the model fits on everything else; the test request's history is every earlier event
  (the validation item included), capped at the last ``history_len`` items as model input (by default the
  ``recent_events`` of a user profile, :class:`replayrec.features.FeatureSpec`).
* ``given`` — a given train/test split (KGAT): fit on train, every test item of a user is relevant,
  history = the user's training items.
* ``temporal`` — a global time split: fit on events before ``T``; users active before ``T`` with events at or
  after it are evaluated on the items they consume in the hold-out window, at request time ``T``.

In every protocol the items of the user's full history are excluded from the ranking (``mask_history``),
except a target itself, which is never masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from replayrec.data import Dataset, Interactions
from replayrec.errors import ConfigError
from replayrec.features import FeatureSpec

__all__ = ["PROTOCOLS", "EvalSet", "ProtocolSplit", "build_split", "temporal_cutoff", "temporal_holdout"]

I64 = npt.NDArray[np.int64]
Protocol = Literal["loo", "given", "temporal"]
PROTOCOLS: tuple[str, ...] = ("loo", "given", "temporal")
#: history given to the model by default: the newest ``FeatureSpec().recent_events`` (50) items, the events
#: of a user profile (and the published protocol's 50); all of them for ``given``, whose training items have
#: no order
_RECENT = FeatureSpec().recent_events
DEFAULT_HISTORY: dict[str, int | None] = {"loo": _RECENT, "temporal": _RECENT, "given": None}


def _ptr(lengths: I64) -> I64:
    p = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=p[1:])
    return p


@dataclass(frozen=True)
class EvalSet:
    """Requests and their relevant items in CSR form (row ``r`` is one user's request)."""

    users: I64
    times: I64
    hist_ptr: I64
    hist_items: I64
    hist_times: I64
    tgt_ptr: I64
    tgt_items: I64
    mask_history: bool = True

    def __len__(self) -> int:
        return int(self.users.size)

    def history(self, r: int) -> tuple[I64, I64]:
        lo, hi = self.hist_ptr[r], self.hist_ptr[r + 1]
        return self.hist_items[lo:hi], self.hist_times[lo:hi]

    def targets(self, r: int) -> I64:
        return self.tgt_items[self.tgt_ptr[r] : self.tgt_ptr[r + 1]]

    def exclusions(self, r: int) -> I64:
        if not self.mask_history:
            return np.zeros(0, dtype=np.int64)
        hist = self.history(r)[0]
        tgt = self.targets(r)
        keep = hist != tgt[0] if tgt.size == 1 else ~np.isin(hist, tgt)
        out: I64 = hist[keep]
        return out

    def subset(self, rows: I64) -> EvalSet:
        """The requests ``rows`` (e.g. a slice of users)."""
        h_len = np.diff(self.hist_ptr)[rows]
        t_len = np.diff(self.tgt_ptr)[rows]
        h_idx = (
            np.concatenate([np.arange(self.hist_ptr[r], self.hist_ptr[r + 1]) for r in rows])
            if rows.size
            else np.zeros(0, np.int64)
        )
        t_idx = (
            np.concatenate([np.arange(self.tgt_ptr[r], self.tgt_ptr[r + 1]) for r in rows])
            if rows.size
            else np.zeros(0, np.int64)
        )
        return EvalSet(
            self.users[rows],
            self.times[rows],
            _ptr(h_len),
            self.hist_items[h_idx],
            self.hist_times[h_idx],
            _ptr(t_len),
            self.tgt_items[t_idx],
            self.mask_history,
        )


@dataclass(frozen=True)
class ProtocolSplit:
    protocol: str
    fit: Interactions
    test: EvalSet
    valid: EvalSet | None
    history_len: int | None  # items of history given to the model; None: all of them


def _loo(data: Interactions, mask: bool) -> tuple[Interactions, EvalSet, EvalSet]:
    seq = data.sequences
    n = seq.lengths
    eligible = np.flatnonzero(n >= 3)
    pos_in_user = np.arange(seq.items.size) - np.repeat(seq.ptr[:-1], n)
    from_end = np.repeat(n, n) - pos_in_user  # 1 for the last event
    user_of = np.repeat(np.arange(data.n_users), n)
    fit_mask = np.zeros(len(data), dtype=bool)
    fit_mask[seq.order] = (from_end > 2) | (np.repeat(n, n) < 3)
    fit = data.subset(fit_mask)  # keeps the global (time, source) order

    def at(drop: int) -> EvalSet:
        last = seq.ptr[eligible + 1] - drop  # index of the target
        h_len = (last - seq.ptr[eligible]).astype(np.int64)
        keep = np.isin(user_of, eligible) & (from_end > drop)
        return EvalSet(
            eligible.astype(np.int64),
            seq.times[last],
            _ptr(h_len),
            seq.items[keep],
            seq.times[keep],
            _ptr(np.ones(eligible.size, np.int64)),
            seq.items[last],
            mask,
        )

    return fit, at(1), at(2)


def _grouped(users: I64, items: I64, times: I64, n_users: int) -> tuple[I64, I64, I64, I64]:
    order = np.argsort(users, kind="stable")
    return _ptr(np.bincount(users, minlength=n_users).astype(np.int64)), items[order], times[order], order


def _given(dataset: Dataset, mask: bool) -> tuple[Interactions, EvalSet]:
    if "split" not in dataset.events.columns:
        raise ConfigError(
            f"dataset {dataset.name} has no given train/test split; use --protocol loo or temporal"
        )
    is_train = (dataset.events["split"] == "train").to_numpy()
    fit = dataset.interactions(is_train)
    test = dataset.interactions(~is_train)
    return fit, _holdout_set(fit, test, np.zeros(dataset.n_users, dtype=np.int64), mask)


def _holdout_set(fit: Interactions, held: Interactions, req_time: I64, mask: bool) -> EvalSet:
    h_ptr, h_items, h_times, _ = _grouped(fit.user, fit.item, fit.timestamp, fit.n_users)
    # relevant items: unique per user, in first-seen order
    pair = held.user * held.n_items + held.item
    _, first = np.unique(pair, return_index=True)
    first.sort()
    t_ptr, t_items, _, _ = _grouped(held.user[first], held.item[first], held.timestamp[first], held.n_users)
    if mask:  # a held-out item the user already had cannot be recommended: not a target
        keep = np.ones(t_items.size, dtype=bool)
        hist_pairs = np.repeat(np.arange(fit.n_users), np.diff(h_ptr)) * fit.n_items + h_items
        t_pairs = np.repeat(np.arange(fit.n_users), np.diff(t_ptr)) * fit.n_items + t_items
        keep &= ~np.isin(t_pairs, hist_pairs)
        t_users = np.repeat(np.arange(fit.n_users), np.diff(t_ptr))[keep]
        t_items = t_items[keep]
        t_ptr = _ptr(np.bincount(t_users, minlength=fit.n_users).astype(np.int64))
    rows = np.flatnonzero((np.diff(t_ptr) > 0) & (np.diff(h_ptr) > 0)).astype(np.int64)
    full = EvalSet(
        np.arange(fit.n_users, dtype=np.int64), req_time, h_ptr, h_items, h_times, t_ptr, t_items, mask
    )
    return full.subset(rows)


def temporal_cutoff(data: Interactions, holdout: float = 0.1) -> int:
    """The ``temporal`` protocol's cut ``T`` (Unix seconds): the events at or after it are the last
    ``holdout`` of the data; the models fit on the events before it."""
    if not 0 < holdout < 1:
        raise ConfigError(f"temporal hold-out fraction must be in (0, 1), got {holdout}")
    return int(np.quantile(data.timestamp, 1 - holdout))


def _temporal(
    data: Interactions, holdout: float, cutoff: int | None, mask: bool
) -> tuple[Interactions, EvalSet, int]:
    t = cutoff if cutoff is not None else temporal_cutoff(data, holdout)
    before = data.timestamp < t
    if not before.any() or before.all():
        raise ConfigError(f"temporal cutoff {t} leaves no training or no hold-out events")
    fit, held = data.subset(before), data.subset(~before)
    return fit, _holdout_set(fit, held, np.full(data.n_users, t, dtype=np.int64), mask), t


def temporal_holdout(
    data: Interactions, holdout: float = 0.1, cutoff: int | None = None, mask: bool = True
) -> tuple[Interactions, EvalSet, int]:
    """The ``temporal`` protocol on ``data``: the events before the cut ``T``, the requests at ``T`` (each
    user's history before it, the items first seen in the window after it as targets) and ``T``."""
    return _temporal(data, holdout, cutoff, mask)


def build_split(
    dataset: Dataset,
    protocol: str,
    *,
    history_len: int | None = None,
    mask_history: bool = True,
    holdout: float = 0.1,
    cutoff: int | None = None,
) -> ProtocolSplit:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    if history_len is None:
        history_len = DEFAULT_HISTORY[protocol]
    elif history_len <= 0:
        raise ConfigError(f"history length must be positive, got {history_len}")
    if protocol == "given":
        fit, test = _given(dataset, mask_history)
        return ProtocolSplit(protocol, fit, test, None, history_len)
    if "split" in dataset.events.columns:
        raise ConfigError(f"dataset {dataset.name} has no timestamps; use --protocol given")
    data = dataset.interactions()
    if protocol == "loo":
        fit, test, valid = _loo(data, mask_history)
        return ProtocolSplit(protocol, fit, test, valid, history_len)
    fit, test, _ = _temporal(data, holdout, cutoff, mask_history)
    return ProtocolSplit(protocol, fit, test, None, history_len)
