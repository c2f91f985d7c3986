"""Checks every stage kind must pass: a valid plugin class, input validation, determinism under a seed.

Each check raises :class:`~replayrec.errors.ContractViolation` when violated; one that does not apply to
the stage returns the reason (a ``str``), otherwise it returns ``None``."""

from __future__ import annotations

from functools import partial
from typing import NoReturn

from replayrec.conformance._support import MakeStage, call_stage, expect_raises, label
from replayrec.conformance._world import TinyWorld
from replayrec.errors import ContractViolation, PluginError, StageInputError
from replayrec.plugins import check_stage_class
from replayrec.stages import Request, Stage

__all__ = [
    "check_declares_a_valid_plugin",
    "check_deterministic_under_a_seed",
    "check_rejects_a_malformed_request",
    "check_rejects_bad_k",
]


def check_declares_a_valid_plugin(kind: str, stage: Stage) -> None:
    """The stage's class is a usable ``kind`` plugin (name, closed Config, compatible ``core_api``)."""
    check = label(kind, "declares_a_valid_plugin")
    try:
        check_stage_class(kind, type(stage))
    except PluginError as exc:
        raise ContractViolation(check, str(exc), {"class": type(stage).__name__}) from exc


def check_rejects_a_malformed_request(kind: str, stage: Stage, world: TinyWorld) -> None:
    """A request holding an item outside the catalogue, or no request at all, raises StageInputError."""
    check = label(kind, "rejects_a_malformed_request")
    outside = world.catalog.n_items + 5
    bad = Request.create(0, 0, [outside])
    expect_raises(
        check,
        StageInputError,
        lambda: call_stage(kind, stage, bad, world, 5),
        match="outside the catalogue",
        what=f"a request whose history holds item {outside} of a {world.catalog.n_items}-item catalogue",
    )
    expect_raises(
        check,
        StageInputError,
        lambda: call_stage(kind, stage, "not a request", world, 5),
        what="a str request",
    )


def check_rejects_bad_k(kind: str, stage: Stage, world: TinyWorld) -> str | None:
    """``k`` of 0 or below raises StageInputError naming it (rank stages take no ``k``: skipped)."""
    if kind == "rank":
        return "rank stages take no k"
    for k in (0, -3):
        expect_raises(
            label(kind, "rejects_bad_k"),
            StageInputError,
            partial(call_stage, kind, stage, world.requests[0], world, k),
            match="k must be a positive integer",
            what=f"k={k}",
        )
    return None


def check_deterministic_under_a_seed(kind: str, make_stage: MakeStage, world: TinyWorld) -> None:
    """Two stages built with the same seed serve every request identically (items, scores to 1e-9)."""
    a, b = make_stage(world.context(seed=3)), make_stage(world.context(seed=3))
    try:
        for r in world.requests:
            ra = [(c.item, round(c.score, 9)) for c in call_stage(kind, a, r, world, 10)]
            rb = [(c.item, round(c.score, 9)) for c in call_stage(kind, b, r, world, 10)]
            if ra != rb:
                _differ(label(kind, "deterministic_under_a_seed"), r.user, ra, rb)
    finally:
        a.close()
        b.close()


def _differ(check: str, user: int, ra: list[tuple[int, float]], rb: list[tuple[int, float]]) -> NoReturn:
    pos = next((i for i, (x, y) in enumerate(zip(ra, rb, strict=False)) if x != y), min(len(ra), len(rb)))
    first, second = (ra[pos] if pos < len(ra) else None), (rb[pos] if pos < len(rb) else None)
    raise ContractViolation(
        check,
        f"request user={user}: two stages built with seed 3 differ at position {pos}: "
        f"{_entry(first)} vs {_entry(second)} ({len(ra)} vs {len(rb)} candidates)",
        {"user": user, "position": pos, "lengths": [len(ra), len(rb)]},
    )


def _entry(e: tuple[int, float] | None) -> str:
    return "nothing" if e is None else f"item {e[0]} ({e[1]:.4g})"
