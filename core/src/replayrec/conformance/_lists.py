"""Checks of the list stages: :class:`~replayrec.stages.Rank` re-scores exactly the candidates it is given,
best first; :class:`~replayrec.stages.Rerank` returns at most ``k`` of them, each once.

Each check raises :class:`~replayrec.errors.ContractViolation` when violated, otherwise returns ``None``."""

from __future__ import annotations

from collections import Counter

from replayrec.conformance._support import expect_raises, label, require_sorted
from replayrec.conformance._world import TinyWorld
from replayrec.errors import ContractViolation, StageInputError
from replayrec.stages import Candidate, Rank, Rerank

__all__ = [
    "RERANK_K",
    "check_empty_candidates",
    "check_empty_input",
    "check_rejects_unknown_candidate",
    "check_returns_the_same_items_sorted",
    "check_subset_of_input_at_most_k",
]

#: the ``k`` values :func:`check_subset_of_input_at_most_k` is run with (1, a slate, more than the list)
RERANK_K: tuple[int, ...] = (1, 5, 100)


def check_returns_the_same_items_sorted(stage: Rank, world: TinyWorld) -> None:
    """For each request, ``score`` returns exactly its 30 candidates (none added, dropped or doubled),
    scores non-increasing."""
    check = label("rank", "returns_the_same_items_sorted")
    for r in world.requests:
        cands = world.candidates(r)
        out = stage.score(r, cands)
        got, given = Counter(c.item for c in out), Counter(c.item for c in cands)
        if got != given:
            extra, lost = sorted((got - given).elements()), sorted((given - got).elements())
            raise ContractViolation(
                check,
                f"request user={r.user}: {len(out)} items returned for {len(cands)} candidates "
                f"(added or doubled: {extra[:5]}, dropped: {lost[:5]})",
                {"user": r.user, "returned": len(out), "given": len(cands), "extra": extra, "dropped": lost},
            )
        require_sorted(check, out, f"request user={r.user}")


def check_empty_candidates(stage: Rank, world: TinyWorld) -> None:
    """An empty candidate list scores to an empty list."""
    out = stage.score(world.requests[0], [])
    if out != []:
        raise ContractViolation(
            label("rank", "empty_candidates"),
            f"returned {len(out)} candidates for an empty list",
            {"returned": len(out)},
        )


def check_rejects_unknown_candidate(stage: Rank, world: TinyWorld) -> None:
    """A candidate outside the catalogue raises StageInputError."""
    item = world.catalog.n_items + 1
    expect_raises(
        label("rank", "rejects_unknown_candidate"),
        StageInputError,
        lambda: stage.score(world.requests[0], [Candidate(item, 1.0)]),
        what=f"candidate item {item} of a {world.catalog.n_items}-item catalogue",
    )


def check_subset_of_input_at_most_k(stage: Rerank, world: TinyWorld, k: int) -> None:
    """For each request, ``rerank`` returns at most ``k`` of its candidates, each at most once."""
    check = label("rerank", "subset_of_input_at_most_k", k=k)
    for r in world.requests:
        cands = world.candidates(r)
        out = stage.rerank(r, cands, k)
        if len(out) > k:
            raise ContractViolation(
                check,
                f"request user={r.user} returned {len(out)} candidates for k={k}",
                {"user": r.user, "k": k, "returned": len(out)},
            )
        given, seen = {c.item for c in cands}, set()
        for c in out:
            if c.item not in given:
                raise ContractViolation(
                    check,
                    f"request user={r.user}: item {c.item} is not among the input candidates",
                    {"item": c.item},
                )
            if c.item in seen:
                raise ContractViolation(
                    check, f"request user={r.user} returned item {c.item} twice", {"item": c.item}
                )
            seen.add(c.item)


def check_empty_input(stage: Rerank, world: TinyWorld) -> None:
    """An empty input list reranks to an empty list."""
    out = stage.rerank(world.requests[0], [], 5)
    if out != []:
        raise ContractViolation(
            label("rerank", "empty_input"),
            f"returned {len(out)} candidates for an empty list",
            {"returned": len(out)},
        )
