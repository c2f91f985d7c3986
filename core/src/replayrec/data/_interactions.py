"""In-memory views of prepared data handed to stages: :class:`Interactions` and :class:`Catalog`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

__all__ = ["Catalog", "Interactions", "UserSequences"]

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class UserSequences:
    """Per-user event sequences (CSR): user ``u``'s events are ``items[ptr[u]:ptr[u+1]]``, oldest first."""

    ptr: I64
    items: I64
    times: I64
    order: I64  # position in the global event order of each sequence entry

    def of(self, user: int) -> tuple[I64, I64]:
        lo, hi = int(self.ptr[user]), int(self.ptr[user + 1])
        return self.items[lo:hi], self.times[lo:hi]

    @property
    def lengths(self) -> I64:
        return np.diff(self.ptr)


@dataclass(frozen=True, eq=False)
class Interactions:
    """Implicit-feedback events, ordered by the global sequence number (time, then source order).

    Attributes:
        user, item, timestamp: int64 arrays of equal length.
        n_users, n_items: sizes of the dense id spaces (ids may be absent from the events).
    """

    user: I64
    item: I64
    timestamp: I64
    n_users: int
    n_items: int

    def __post_init__(self) -> None:
        for name in ("user", "item", "timestamp"):
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.int64))
        if not (self.user.shape == self.item.shape == self.timestamp.shape):
            raise ValueError("user, item and timestamp arrays must have the same length")

    def __len__(self) -> int:
        return int(self.user.size)

    @cached_property
    def user_item(self) -> sp.csr_matrix:
        """Binary user × item CSR matrix (float32); repeated pairs count once."""
        m = sp.csr_matrix(
            (np.ones(len(self), dtype=np.float32), (self.user, self.item)),
            shape=(self.n_users, self.n_items),
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    @cached_property
    def item_counts(self) -> I64:
        return np.bincount(self.item, minlength=self.n_items).astype(np.int64)

    @cached_property
    def sequences(self) -> UserSequences:
        """Each user's events in time order (stable with respect to the global order)."""
        order = np.argsort(self.user, kind="stable")
        counts = np.bincount(self.user, minlength=self.n_users)
        ptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        return UserSequences(ptr, self.item[order], self.timestamp[order], order.astype(np.int64))

    @cached_property
    def time_order(self) -> I64:
        """Permutation sorting events by timestamp (stable, so ties keep the global order)."""
        return np.argsort(self.timestamp, kind="stable")

    def subset(self, mask: npt.NDArray[np.bool_]) -> Interactions:
        return Interactions(
            self.user[mask], self.item[mask], self.timestamp[mask], self.n_users, self.n_items
        )


@dataclass(frozen=True, eq=False)
class Catalog:
    """The item catalogue: raw ids, titles and item groups, indexed by dense item id."""

    raw_ids: npt.NDArray[Any]
    titles: list[str | None]
    groups: I64
    name: str = "catalog"

    @property
    def n_items(self) -> int:
        return len(self.raw_ids)

    def title(self, item: int) -> str:
        t = self.titles[item] if 0 <= item < len(self.titles) else None
        return t if t else f"item {self.raw_ids[item]}"

    @classmethod
    def anonymous(cls, n_items: int, n_groups: int = 1) -> Catalog:
        """A catalogue with ids ``0..n_items-1`` and no titles (tests, synthetic data)."""
        return cls(
            raw_ids=np.arange(n_items).astype(str),
            titles=[None] * n_items,
            groups=(np.arange(n_items) % max(n_groups, 1)).astype(np.int64),
        )
