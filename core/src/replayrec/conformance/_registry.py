"""The checks of each stage kind with their parameter grids, and :func:`run_checks`, which runs them all
against one stage and reports every outcome without raising."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

from replayrec.conformance import _common as common
from replayrec.conformance import _lists as lists
from replayrec.conformance import _recall as recall
from replayrec.conformance._support import MakeStage, label, with_params
from replayrec.conformance._world import TinyWorld
from replayrec.errors import ContractViolation
from replayrec.stages import Rank, Recall, Rerank, Stage

__all__ = ["CHECKS", "CheckResult", "CheckTarget", "ContractCheck", "Outcome", "run_checks"]

Outcome = Literal["passed", "failed", "skipped"]
#: a failure's detail is cut to this many characters
DETAIL_LIMIT = 300


@dataclass(frozen=True)
class CheckTarget:
    """What a check runs against: the kind, a warmed-up stage, its factory and the world."""

    kind: str
    stage: Stage
    make_stage: MakeStage
    world: TinyWorld


@dataclass(frozen=True)
class ContractCheck:
    """One registered check: ``run(target, params)`` is called once per entry of ``grid``; it raises
    :class:`ContractViolation` when violated and returns a skip reason when it does not apply."""

    name: str
    run: Callable[[CheckTarget, Mapping[str, int]], str | None]
    grid: tuple[Mapping[str, int], ...] = ({},)


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: ``check`` names it with its parameters (``recall.length_sorted_unique[k=10]``);
    ``detail`` is the violation or exception message (starting with the check name) or the skip reason."""

    check: str
    outcome: Outcome
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _common(kind: str) -> tuple[ContractCheck, ...]:
    return (
        ContractCheck(
            label(kind, "declares_a_valid_plugin"),
            lambda t, _: common.check_declares_a_valid_plugin(kind, t.stage),
        ),
        ContractCheck(
            label(kind, "rejects_a_malformed_request"),
            lambda t, _: common.check_rejects_a_malformed_request(kind, t.stage, t.world),
        ),
        ContractCheck(
            label(kind, "rejects_bad_k"), lambda t, _: common.check_rejects_bad_k(kind, t.stage, t.world)
        ),
        ContractCheck(
            label(kind, "deterministic_under_a_seed"),
            lambda t, _: common.check_deterministic_under_a_seed(kind, t.make_stage, t.world),
        ),
    )


def _recall(t: CheckTarget) -> Recall:
    return cast(Recall, t.stage)


def _rank(t: CheckTarget) -> Rank:
    return cast(Rank, t.stage)


def _rerank(t: CheckTarget) -> Rerank:
    return cast(Rerank, t.stage)


_RECALL = (
    ContractCheck(
        "recall.length_sorted_unique",
        lambda t, p: recall.check_length_sorted_unique(_recall(t), t.world, p["k"]),
        tuple({"k": k} for k in recall.RECALL_K),
    ),
    ContractCheck(
        "recall.never_returns_excluded", lambda t, _: recall.check_never_returns_excluded(_recall(t), t.world)
    ),
    ContractCheck(
        "recall.empty_history_is_served",
        lambda t, _: recall.check_empty_history_is_served(_recall(t), t.world),
    ),
    ContractCheck(
        "recall.history_items_allowed_when_asked",
        lambda t, _: recall.check_history_items_allowed_when_asked(_recall(t), t.world),
    ),
    ContractCheck(
        "recall.batch_matches_single_requests",
        lambda t, _: recall.check_batch_matches_single_requests(_recall(t), t.world),
    ),
    ContractCheck(
        "recall.full_scores_agree_with_retrieve",
        lambda t, _: recall.check_full_scores_agree_with_retrieve(_recall(t), t.world),
    ),
)
_RANK = (
    ContractCheck(
        "rank.returns_the_same_items_sorted",
        lambda t, _: lists.check_returns_the_same_items_sorted(_rank(t), t.world),
    ),
    ContractCheck("rank.empty_candidates", lambda t, _: lists.check_empty_candidates(_rank(t), t.world)),
    ContractCheck(
        "rank.rejects_unknown_candidate",
        lambda t, _: lists.check_rejects_unknown_candidate(_rank(t), t.world),
    ),
)
_RERANK = (
    ContractCheck(
        "rerank.subset_of_input_at_most_k",
        lambda t, p: lists.check_subset_of_input_at_most_k(_rerank(t), t.world, p["k"]),
        tuple({"k": k} for k in lists.RERANK_K),
    ),
    ContractCheck("rerank.empty_input", lambda t, _: lists.check_empty_input(_rerank(t), t.world)),
)

#: every check of each stage kind, in the order :func:`run_checks` runs them
CHECKS: Mapping[str, tuple[ContractCheck, ...]] = {
    "recall": _common("recall") + _RECALL,
    "rank": _common("rank") + _RANK,
    "rerank": _common("rerank") + _RERANK,
}


def _failed(check: str, exc: Exception) -> CheckResult:
    text = str(exc) if isinstance(exc, ContractViolation) else f"{check}: {type(exc).__name__}: {exc}"
    if len(text) > DETAIL_LIMIT:
        text = text[: DETAIL_LIMIT - 1] + "…"
    return CheckResult(check, "failed", text)


def _run_one(spec: ContractCheck, target: CheckTarget, params: Mapping[str, int]) -> CheckResult:
    name = with_params(spec.name, params)
    try:
        skipped = spec.run(target, params)
    except Exception as exc:  # a violation, or the stage itself crashed: both fail the check
        return _failed(name, exc)
    return CheckResult(name, "skipped", skipped) if skipped is not None else CheckResult(name, "passed")


def run_checks(kind: str, make_stage: MakeStage, world: TinyWorld) -> list[CheckResult]:
    """Every check of ``kind`` (each value of its grid) against ``make_stage(world.context(seed=0))``.

    Never raises because of the stage: a violation or any exception it raises becomes a ``"failed"``
    result; a stage that cannot be built or warmed up yields the single failed ``<kind>.builds`` result.
    Raises ValueError for an unknown ``kind``."""
    if kind not in CHECKS:
        raise ValueError(f"unknown stage kind {kind!r}; expected one of {', '.join(CHECKS)}")
    try:
        stage = make_stage(world.context(seed=0))
        stage.warmup()
    except Exception as exc:
        return [_failed(label(kind, "builds"), exc)]
    target = CheckTarget(kind, stage, make_stage, world)
    results = [_run_one(spec, target, params) for spec in CHECKS[kind] for params in spec.grid]
    try:
        stage.close()
    except Exception as exc:
        results.append(_failed(label(kind, "closes"), exc))
    return results
