"""Run a stage contract suite outside pytest, against any world (e.g. the real dataset at a stage gate).

The suites are the same classes plugins subclass in their tests; here each ``test_*`` method is called with
the fixtures it names (``stage``, ``world``, ``make_stage``) and every ``parametrize`` value it declares."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from replayrec.stages import StageContext
from replayrec.testing._contract import RankContract, RecallContract, RerankContract
from replayrec.testing._world import TinyWorld

__all__ = ["SuiteResult", "run_contract_suite"]

_SUITES: dict[str, type[Any]] = {"recall": RecallContract, "rank": RankContract, "rerank": RerankContract}


@dataclass(frozen=True)
class SuiteResult:
    test: str
    outcome: str  # "passed" | "failed" | "skipped"
    detail: str = ""


def _params(method: Any) -> list[dict[str, Any]]:
    grids = [
        [{m.args[0]: v} for v in m.args[1]]
        for m in getattr(method, "pytestmark", [])
        if m.name == "parametrize" and isinstance(m.args[0], str) and "," not in m.args[0]
    ]
    combos = []
    for parts in itertools.product(*grids) if grids else [()]:
        merged: dict[str, Any] = {}
        for p in parts:
            merged.update(p)
        combos.append(merged)
    return combos


def run_contract_suite(
    kind: str, make_stage: Callable[[StageContext], Any], world: TinyWorld
) -> list[SuiteResult]:
    """Every test of the ``kind`` contract suite; failures carry the assertion or exception text."""
    suite = _SUITES[kind]()
    stage = make_stage(world.context(seed=0))
    stage.warmup()
    fixtures = {"stage": stage, "world": world, "make_stage": make_stage}
    results = []
    for name in sorted(n for n in dir(suite) if n.startswith("test_")):
        method = getattr(suite, name)
        wanted = [p for p in inspect.signature(method).parameters if p in fixtures]
        for params in _params(method):
            label = name + (f"[{','.join(f'{k}={v}' for k, v in params.items())}]" if params else "")
            try:
                method(**{p: fixtures[p] for p in wanted}, **params)
            except pytest.skip.Exception as exc:
                results.append(SuiteResult(label, "skipped", str(exc)))
            except (pytest.fail.Exception, Exception) as exc:  # pytest.raises failures are BaseException
                results.append(SuiteResult(label, "failed", f"{type(exc).__name__}: {exc}"[:300]))
            else:
                results.append(SuiteResult(label, "passed"))
    return results
