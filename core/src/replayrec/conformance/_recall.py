"""Checks of the :class:`~replayrec.stages.Recall` contract: at most ``k`` unique in-catalogue candidates,
best first, none excluded; cold users served; batches and full-catalogue scores agree with ``retrieve``.

Each check raises :class:`~replayrec.errors.ContractViolation` when violated; one that does not apply to
the stage returns the reason (a ``str``), otherwise it returns ``None``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from replayrec.conformance._support import label, require_sorted
from replayrec.conformance._world import TinyWorld
from replayrec.errors import ContractViolation
from replayrec.stages import Candidate, Recall, Request, topk_candidates

__all__ = [
    "RECALL_K",
    "check_batch_matches_single_requests",
    "check_empty_history_is_served",
    "check_full_scores_agree_with_retrieve",
    "check_history_items_allowed_when_asked",
    "check_length_sorted_unique",
    "check_never_returns_excluded",
]

#: the ``k`` values :func:`check_length_sorted_unique` is run with (1, a slate, more than the catalogue)
RECALL_K: tuple[int, ...] = (1, 10, 10_000)


def _at_most(check: str, out: Sequence[Candidate], k: int, user: int) -> None:
    if len(out) > k:
        raise ContractViolation(
            check,
            f"request user={user} returned {len(out)} candidates for k={k}",
            {"user": user, "k": k, "returned": len(out)},
        )


def _well_formed(check: str, out: Sequence[Candidate], k: int, user: int, n_items: int) -> None:
    _at_most(check, out, k, user)
    require_sorted(check, out, f"request user={user}")
    seen: set[int] = set()
    for c in out:
        if c.item in seen:
            raise ContractViolation(
                check, f"request user={user} returned item {c.item} twice", {"item": c.item}
            )
        if not 0 <= c.item < n_items:
            raise ContractViolation(
                check,
                f"request user={user} returned item {c.item}, outside the catalogue of {n_items} items",
                {"user": user, "item": c.item, "n_items": n_items},
            )
        seen.add(c.item)


def check_length_sorted_unique(stage: Recall, world: TinyWorld, k: int) -> None:
    """Every request gets at most ``k`` candidates, scores non-increasing, no duplicates, all of them in
    the catalogue."""
    check = label("recall", "length_sorted_unique", k=k)
    for r in world.requests:
        _well_formed(check, stage.retrieve(r, k), k, r.user, world.catalog.n_items)


def check_never_returns_excluded(stage: Recall, world: TinyWorld) -> None:
    """No candidate (of 50 asked) is in ``request.exclude``."""
    check = label("recall", "never_returns_excluded")
    for r in world.requests:
        excluded = set(r.exclude.tolist())
        for c in stage.retrieve(r, 50):
            if c.item in excluded:
                raise ContractViolation(
                    check,
                    f"request user={r.user}: item {c.item} is excluded but was returned",
                    {"user": r.user, "item": c.item, "excluded": len(excluded)},
                )


def check_empty_history_is_served(stage: Recall, world: TinyWorld) -> None:
    """An anonymous request without history gets at most 5 candidates, best first."""
    check = label("recall", "empty_history_is_served")
    out = stage.retrieve(Request.create(-1, int(world.train.timestamp.max())), 5)
    _at_most(check, out, 5, -1)
    require_sorted(check, out, "request user=-1")


def check_history_items_allowed_when_asked(stage: Recall, world: TinyWorld) -> None:
    """With ``exclude_history=False`` history items may come back; a full-ranking stage filters nothing
    on its own initiative (asked for the whole catalogue, it returns every item)."""
    check = label("recall", "history_items_allowed_when_asked")
    r, n = world.requests[1], world.catalog.n_items
    asked = Request.create(r.user, r.timestamp, r.history, r.history_times, exclude_history=False)
    out = stage.retrieve(asked, n)
    _at_most(check, out, n, r.user)
    if not stage.supports_full_ranking:
        return
    if len(out) != n:
        raise ContractViolation(
            check,
            f"request user={r.user} with exclude_history=False returned {len(out)} of {n} items",
            {"user": r.user, "returned": len(out), "n_items": n},
        )
    missing = sorted(set(r.history.tolist()) - {c.item for c in out})
    if missing:
        raise ContractViolation(
            check,
            f"request user={r.user}: history item {missing[0]} is missing although exclude_history=False",
            {"user": r.user, "missing": missing[:10]},
        )


def check_batch_matches_single_requests(stage: Recall, world: TinyWorld) -> None:
    """``retrieve_batch`` returns the same items, in the same order, as ``retrieve`` per request (k=7)."""
    check = label("recall", "batch_matches_single_requests")
    batch = stage.retrieve_batch(world.requests, 7)
    if len(batch) != len(world.requests):
        raise ContractViolation(
            check, f"{len(batch)} lists for {len(world.requests)} requests", {"lists": len(batch)}
        )
    for r, got in zip(world.requests, batch, strict=True):
        _same_items(check, r.user, [c.item for c in got], [c.item for c in stage.retrieve(r, 7)], "retrieve")


def check_full_scores_agree_with_retrieve(stage: Recall, world: TinyWorld) -> str | None:
    """``score_all`` has shape ``(requests, n_items)``, no NaN, and its top 10 (excluded items masked) is
    what ``retrieve`` returns. Skipped for stages that do not score the whole catalogue."""
    if not stage.supports_full_ranking:
        return "stage does not score the whole catalogue"
    check = label("recall", "full_scores_agree_with_retrieve")
    scores = np.asarray(stage.score_all(world.requests))
    want = (len(world.requests), world.catalog.n_items)
    if scores.shape != want:
        raise ContractViolation(
            check, f"score_all has shape {scores.shape}, expected {want}", {"shape": want}
        )
    if np.isnan(scores).any():
        bad = np.argwhere(np.isnan(scores))
        raise ContractViolation(
            check,
            f"score_all holds {len(bad)} NaN scores (first at {tuple(bad[0].tolist())})",
            {"nan": len(bad)},
        )
    for row, r in zip(scores, world.requests, strict=True):
        expect = [c.item for c in topk_candidates(row, 10, r.exclude, "x")]
        _same_items(check, r.user, [c.item for c in stage.retrieve(r, 10)], expect, "the top 10 of score_all")
    return None


def _same_items(check: str, user: int, got: list[int], want: list[int], source: str) -> None:
    if got == want:
        return
    pos = next(
        (i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want))
    )
    raise ContractViolation(
        check,
        f"request user={user}: {len(got)} items {got[: pos + 3]}… differ from {source} ({len(want)} items "
        f"{want[: pos + 3]}…) at position {pos}",
        {"user": user, "position": pos, "got": got[:20], "expected": want[:20]},
    )
