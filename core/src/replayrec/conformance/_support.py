"""Helpers the checks share: check labels, the expected-error helper, score order, calling any stage kind."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from replayrec.conformance._world import TinyWorld
from replayrec.errors import ContractViolation
from replayrec.stages import Candidate, Request, Stage, StageContext

__all__ = ["MakeStage", "call_stage", "expect_raises", "label", "require_sorted", "with_params"]

#: ``f(context) -> stage``: builds a fresh stage under test (checks of determinism build two).
MakeStage = Callable[[StageContext], Stage]


def label(kind: str, check: str, **params: object) -> str:
    """The name a check reports under: ``"<kind>.<check>"``, plus ``"[k=10]"`` style parameters."""
    return with_params(f"{kind}.{check}", params)


def with_params(name: str, params: Mapping[str, object]) -> str:
    """``name`` with its parameters appended as ``"[k=10]"`` (unchanged when there are none)."""
    return name + (f"[{','.join(f'{k}={v}' for k, v in params.items())}]" if params else "")


def expect_raises(
    check: str,
    error: type[BaseException],
    call: Callable[[], object],
    match: str | None = None,
    what: str = "",
) -> None:
    """Call ``call()`` and require it to raise ``error`` whose message matches the regex ``match``.

    Raises :class:`ContractViolation` (named ``check``) when nothing is raised, when another exception is
    raised, or when the message does not match. ``what`` describes the call in the message."""
    where = f"{what}: " if what else ""
    try:
        call()
    except error as exc:
        if match is not None and not re.search(match, str(exc)):
            raise ContractViolation(
                check,
                f"{where}{error.__name__} message {str(exc)!r} does not match {match!r}",
                {"expected": error.__name__, "match": match, "message": str(exc)},
            ) from exc
        return
    except Exception as exc:
        raise ContractViolation(
            check,
            f"{where}expected {error.__name__}, got {type(exc).__name__}: {exc}",
            {"expected": error.__name__, "raised": type(exc).__name__},
        ) from exc
    raise ContractViolation(
        check, f"{where}expected {error.__name__}, but nothing was raised", {"expected": error.__name__}
    )


def require_sorted(check: str, out: Sequence[Candidate], where: str = "") -> None:
    """Scores must be non-increasing (a NaN anywhere breaks the order)."""
    scores = [c.score for c in out]
    for i in range(1, len(scores)):
        if not scores[i - 1] >= scores[i]:
            prefix = f"{where}: " if where else ""
            raise ContractViolation(
                check,
                f"{prefix}scores not non-increasing at position {i}: {scores[i - 1]:.4g} < {scores[i]:.4g}",
                {"position": i, "previous": scores[i - 1], "score": scores[i]},
            )


def call_stage(kind: str, stage: Any, request: Any, world: TinyWorld, k: int) -> list[Candidate]:
    """Serve ``request`` with a stage of ``kind``; rank / rerank stages get the world's candidates."""
    if kind == "recall":
        return stage.retrieve(request, k)  # type: ignore[no-any-return]
    cands = world.candidates(request) if isinstance(request, Request) else []
    if kind == "rank":
        return stage.score(request, cands)  # type: ignore[no-any-return]
    return stage.rerank(request, cands, k)  # type: ignore[no-any-return]
