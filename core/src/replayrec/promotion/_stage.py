"""*stage* gate: the candidate loads through the serving contract, passes the contract suite on the real
catalogue, and its scoring meets a p99 latency budget on one core. Passing sets the ``staging`` alias."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np

from replayrec.cascade import ChannelSpec
from replayrec.cascade._cascade import build_from_spec
from replayrec.evaluation import build_requests
from replayrec.plugins import check_stage_class
from replayrec.promotion._context import PipelineContext
from replayrec.promotion._gates import Check, Decision
from replayrec.registry import VersionInfo
from replayrec.stages import Candidate, Request, Stage, StageContext

__all__ = ["stage_step"]


def _world(ctx: PipelineContext, n: int, seed: int) -> Any:
    from replayrec.testing import TinyWorld

    test = ctx.split.test
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(test), size=min(n, len(test)), replace=False)).astype(np.int64)
    reqs = build_requests(test, rows, ctx.split.history_len)
    reqs.append(Request.create(-1, int(test.times.max())))  # a cold, anonymous visitor
    return TinyWorld(ctx.dataset.catalog, ctx.split.fit, reqs)


def _timed(ctx: PipelineContext, stage: Stage, world: Any) -> list[float]:
    g = ctx.gates.stage
    out = []
    for r in world.requests:
        cands: list[Candidate] = world.candidates(r, g.candidates) if ctx.kind != "recall" else []
        t0 = time.perf_counter_ns()
        if ctx.kind == "recall":
            stage.retrieve(r, g.candidates)  # type: ignore[attr-defined]
        elif ctx.kind == "rank":
            stage.score(r, cands)  # type: ignore[attr-defined]
        else:
            stage.rerank(r, cands, 10)  # type: ignore[attr-defined]
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def stage_step(ctx: PipelineContext, candidate: VersionInfo) -> Decision:
    from threadpoolctl import threadpool_limits

    from replayrec.testing import run_contract_suite

    g = ctx.gates.stage
    path = candidate.artifact
    spec = ChannelSpec(type=ctx.plugin)

    def make(c: StageContext) -> Stage:
        return build_from_spec(ctx.kind, spec, replace(c, artifact=path))

    checks: list[Check] = []
    try:
        stage = make(ctx.resolver.context)
        check_stage_class(ctx.kind, type(stage))
        stage.warmup()
    except Exception as exc:
        checks.append(Check("loads through the serving contract", False, f"{type(exc).__name__}: {exc}"))
        return Decision.from_checks("stage", ctx.plugin, candidate.version, checks)
    checks.append(
        Check("loads through the serving contract", True, f"{type(stage).__name__} from {path.name}")
    )
    world = _world(ctx, g.contract_requests, ctx.settings.seed)
    results = run_contract_suite(ctx.kind, make, world)
    failed = [r for r in results if r.outcome == "failed"]
    checks.append(
        Check(
            f"{ctx.kind} contract suite",
            not failed,
            f"{sum(r.outcome == 'passed' for r in results)} passed, {len(failed)} failed, "
            f"{sum(r.outcome == 'skipped' for r in results)} skipped"
            + (": " + "; ".join(f"{r.test}: {r.detail}" for r in failed[:3]) if failed else ""),
            {"results": [r.__dict__ for r in results]},
        )
    )
    with threadpool_limits(1):
        lat = np.asarray(_timed(ctx, stage, _world(ctx, g.latency_requests, ctx.settings.seed + 1)))
    p50, p99 = (float(np.percentile(lat, q)) for q in (50, 99))
    checks.append(
        Check(
            f"p99 scoring latency ≤ {g.p99_budget_ms} ms",
            p99 <= g.p99_budget_ms,
            f"p50 {p50:.2f} ms, p99 {p99:.2f} ms over {lat.size} requests on one core",
            {"p50_ms": p50, "p99_ms": p99, "requests": int(lat.size)},
        )
    )
    stage.close()
    decision = Decision.from_checks(
        "stage", ctx.plugin, candidate.version, checks, {"p50_ms": p50, "p99_ms": p99}
    )
    if decision.passed:
        ctx.registry.set_alias(ctx.plugin, "staging", candidate.version)
    return decision
