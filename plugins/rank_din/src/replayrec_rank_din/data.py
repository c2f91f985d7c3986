"""Training examples built from the cascade, in time order, without leakage.

Every event of a user that has at least ``min_history`` earlier events is a *target*. Its request is what
serving would have seen at that moment: the ``max_history`` events before it (never the target, never a later
event), request time = the target's time, exclusions = every earlier item of the user. The recall stage
answers that request; its candidates (the target removed) are the target's hard negatives, mixed with items
drawn uniformly from the catalogue. Label 1 goes to the true next item.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import IterableDataset

from replayrec.data import Interactions
from replayrec.features import history_window
from replayrec.stages import Candidate, Recall, Request
from replayrec_rank_din.features import history_block

__all__ = [
    "Candidates",
    "DINBatches",
    "Targets",
    "history_block",
    "recall_candidates",
    "target_requests",
    "training_targets",
]

log = logging.getLogger(__name__)
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Targets:
    """Training targets over ``fit.sequences``: the history of target ``n`` is
    ``items[start[n]:end[n]]`` and its item is ``items[end[n]]``; ``first[n]`` is the user's first event."""

    user: I64
    first: I64
    start: I64
    end: I64
    items: I64  # the user sequences' items (shared)
    times: I64  # the user sequences' times (shared)

    def __len__(self) -> int:
        return int(self.end.size)

    @property
    def item(self) -> I64:
        out: I64 = self.items[self.end]
        return out

    @property
    def time(self) -> I64:
        out: I64 = self.times[self.end]
        return out

    @property
    def history_len(self) -> I64:
        out: I64 = self.end - self.start
        return out


def training_targets(
    fit: Interactions, max_history: int, min_history: int = 1, max_targets: int | None = None
) -> Targets:
    """Every event with at least ``min_history`` earlier events of the same user (a repeat of an item the
    user already had is skipped: serving never recommends it); with ``max_targets``, the most recent ones."""
    seq = fit.sequences
    lengths = seq.lengths
    user_of = np.repeat(np.arange(fit.n_users, dtype=np.int64), lengths)
    first = seq.ptr[:-1][user_of]
    pos = np.arange(seq.items.size, dtype=np.int64) - first
    keep = pos >= min_history
    # first occurrence of each (user, item) pair only
    pair = user_of * np.int64(fit.n_items) + seq.items
    _, first_seen = np.unique(pair, return_index=True)
    is_first = np.zeros(seq.items.size, dtype=bool)
    is_first[first_seen] = True
    end = np.flatnonzero(keep & is_first).astype(np.int64)
    if max_targets is not None and end.size > max_targets:  # the latest events in the global order
        end = np.sort(end[np.argsort(seq.order[end], kind="stable")[-max_targets:]])
    start = history_window(end, first[end], max_history)
    return Targets(user_of[end], first[end], start, end, seq.items, seq.times)


def target_requests(t: Targets, rows: Sequence[int] | I64) -> list[Request]:
    """The request serving would have seen at each target's moment."""
    out = []
    for n in np.asarray(rows, dtype=np.int64):
        lo, hi = int(t.start[n]), int(t.end[n])
        out.append(
            Request(
                user=int(t.user[n]),
                timestamp=int(t.times[hi]),
                history=t.items[lo:hi],
                history_times=t.times[lo:hi],
                exclude=np.unique(t.items[int(t.first[n]) : hi]),
            )
        )
    return out


@dataclass(frozen=True)
class Candidates:
    """Recall output for a list of requests: ``items[n, :count[n]]`` best first (padding -1)."""

    items: I32
    scores: F32
    count: I64

    def of(self, n: int, stage: str = "recall") -> list[Candidate]:
        """Request ``n``'s candidates as cascade candidates (the recall score kept under ``stage``)."""
        c = int(self.count[n])
        return [
            Candidate(int(i), float(s), {stage: float(s)})
            for i, s in zip(self.items[n, :c], self.scores[n, :c], strict=True)
        ]


def _topk_rows(scores: npt.NDArray[Any], k: int) -> tuple[I64, F32]:
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)  # score desc, then item id
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1).astype(np.float32)


def recall_candidates(recall: Recall, requests: Sequence[Request], k: int, batch: int = 512) -> Candidates:
    """The recall stage's top ``k`` for each request (exact full ranking when the stage supports it)."""
    n = len(requests)
    items = np.full((n, k), -1, dtype=np.int32)
    scores = np.full((n, k), -np.inf, dtype=np.float32)
    count = np.zeros(n, dtype=np.int64)
    started = time.perf_counter()
    for lo in range(0, n, batch):
        reqs = requests[lo : lo + batch]
        if recall.supports_full_ranking:
            s = np.asarray(recall.score_all(reqs), dtype=np.float32).copy()
            rows = np.concatenate([np.full(r.exclude.size, i) for i, r in enumerate(reqs)]).astype(np.int64)
            cols = np.concatenate([r.exclude for r in reqs]).astype(np.int64)
            s[rows, cols] = -np.inf
            top, val = _topk_rows(s, k)
            for i in range(len(reqs)):
                ok = np.isfinite(val[i])
                c = int(ok.sum())
                items[lo + i, :c], scores[lo + i, :c], count[lo + i] = top[i][ok], val[i][ok], c
        else:
            for i, cands in enumerate(recall.retrieve_batch(reqs, k)):
                c = len(cands)
                items[lo + i, :c] = [x.item for x in cands]
                scores[lo + i, :c] = [x.score for x in cands]
                count[lo + i] = c
        if lo // batch % 100 == 99:
            log.info(
                "recall candidates: %d/%d requests, %.0fs", lo + len(reqs), n, time.perf_counter() - started
            )
    return Candidates(items, scores, count)


class DINBatches(IterableDataset[dict[str, torch.Tensor]]):
    """One epoch of shuffled batches, grouped by history length (little padding), negatives redrawn every
    epoch: ``hard_negatives`` from the target's recall candidates and ``random_negatives`` from the catalogue.

    Each batch: ``hist_items``, ``hist_time``, ``hist_pos`` (B, L), ``context`` (B, 2), ``cand_items``
    (B, 1 + N) with the target in column 0, ``valid`` (B, 1 + N) false where a negative is the target."""

    def __init__(
        self,
        targets: Targets,
        candidates: Candidates,
        n_items: int,
        batch_size: int,
        hard: int,
        random: int,
        max_history: int,
        seed: int,
    ) -> None:
        self.t = targets
        self.c = candidates
        self.n_items = n_items
        self.batch_size = batch_size
        self.hard = hard
        self.random = random
        self.max_history = max_history
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return (len(self.t) + self.batch_size - 1) // self.batch_size

    def _order(self, rng: np.random.Generator) -> list[I64]:
        perm = rng.permutation(len(self.t))
        span = self.batch_size * 50
        lens = self.t.history_len
        batches: list[I64] = []
        for lo in range(0, perm.size, span):
            chunk = perm[lo : lo + span]
            chunk = chunk[np.argsort(lens[chunk], kind="stable")]
            batches.extend(chunk[i : i + self.batch_size] for i in range(0, chunk.size, self.batch_size))
        return [batches[i] for i in rng.permutation(len(batches))]

    def batch(self, rows: I64, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        t = self.t
        target = t.item[rows]
        block = history_block(t.items, t.times, t.start[rows], t.end[rows], t.time[rows], self.max_history)
        count = self.c.count[rows]
        pick = (rng.random((rows.size, self.hard)) * np.maximum(count, 1)[:, None]).astype(np.int64)
        hard = self.c.items[rows[:, None], pick].astype(np.int64)
        rand = rng.integers(0, self.n_items, size=(rows.size, self.hard + self.random))
        hard = np.where(count[:, None] > 0, hard, rand[:, : self.hard])  # no candidates: random instead
        cands = np.concatenate([target[:, None], hard, rand[:, self.hard :]], axis=1)
        valid = np.ones(cands.shape, dtype=bool)
        valid[:, 1:] = cands[:, 1:] != target[:, None]
        out = {k: torch.from_numpy(v) for k, v in block.items()}
        out["cand_items"] = torch.from_numpy(cands)
        out["valid"] = torch.from_numpy(valid)
        seen = block["hist_items"][block["hist_items"] > 0] - 1
        out["items_in_batch"] = torch.from_numpy(np.unique(np.concatenate([cands.ravel(), seen])))
        return out

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        for rows in self._order(rng):
            yield self.batch(rows, rng)
