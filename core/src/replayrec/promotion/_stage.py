"""*stage* gate: the candidate loads through the serving contract, passes its kind's contract checks
(:mod:`replayrec.conformance`) on the real catalogue, and its scoring meets a p99 latency budget on one
core. Passing sets the ``staging`` alias.

:func:`stage_checks` is the gate itself, a pure function of a stage factory and two worlds (no registry);
:func:`stage_step` builds those from the pipeline context and the registered candidate."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from replayrec.cascade import ChannelSpec, build_from_spec
from replayrec.conformance import MakeStage, TinyWorld, run_checks
from replayrec.evaluation import build_requests
from replayrec.plugins import check_stage_class
from replayrec.promotion._context import PipelineContext
from replayrec.promotion._gates import Check, Decision, StageGate
from replayrec.registry import VersionInfo
from replayrec.stages import Candidate, Request, Stage, StageContext

__all__ = ["stage_checks", "stage_step"]

LOADS = "loads through the serving contract"


def _world(ctx: PipelineContext, n: int, seed: int) -> TinyWorld:
    """``n`` sampled test requests (plus a cold, anonymous visitor) over the real catalogue and fit split."""
    test = ctx.split.test
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(test), size=min(n, len(test)), replace=False)).astype(np.int64)
    reqs = build_requests(test, rows, ctx.split.history_len)
    reqs.append(Request.create(-1, int(test.times.max())))  # a cold, anonymous visitor
    return TinyWorld(ctx.dataset.catalog, ctx.split.fit, reqs)


def _timed(kind: str, stage: Stage, world: TinyWorld, gate: StageGate) -> list[float]:
    """Milliseconds per request: recall asked for ``gate.candidates``, rank / rerank given that many."""
    out = []
    for r in world.requests:
        cands: list[Candidate] = world.candidates(r, gate.candidates) if kind != "recall" else []
        t0 = time.perf_counter_ns()
        if kind == "recall":
            stage.retrieve(r, gate.candidates)  # type: ignore[attr-defined]
        elif kind == "rank":
            stage.score(r, cands)  # type: ignore[attr-defined]
        else:
            stage.rerank(r, cands, 10)  # type: ignore[attr-defined]
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def _contract_check(kind: str, make_stage: MakeStage, world: TinyWorld) -> Check:
    results = run_checks(kind, make_stage, world)
    failed = [r for r in results if r.outcome == "failed"]
    counts = {o: sum(r.outcome == o for r in results) for o in ("passed", "failed", "skipped")}
    return Check(
        f"{kind} contract suite",
        not failed,
        f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
        + (": " + "; ".join(r.detail for r in failed[:3]) if failed else ""),
        {"results": [r.to_dict() for r in results]},
    )


def _latency_name(gate: StageGate) -> str:
    return f"p99 scoring latency ≤ {gate.p99_budget_ms} ms"


def _latency_check(kind: str, stage: Stage, world: TinyWorld, gate: StageGate) -> Check:
    with threadpool_limits(1):
        lat = np.asarray(_timed(kind, stage, world, gate))
    p50, p99 = (float(np.percentile(lat, q)) for q in (50, 99))
    return Check(
        _latency_name(gate),
        p99 <= gate.p99_budget_ms,
        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms over {lat.size} requests on one core",
        {"p50_ms": p50, "p99_ms": p99, "requests": int(lat.size)},
    )


def stage_checks(
    kind: str,
    make_stage: MakeStage,
    contract_world: TinyWorld,
    latency_world: TinyWorld,
    gate: StageGate,
    *,
    context: StageContext | None = None,
    source: str = "",
) -> list[Check]:
    """The *stage* gate's checks, in order: the stage built from ``context`` (default: the contract world's)
    is a valid ``kind`` plugin and warms up; it passes every contract check on ``contract_world``; its p99
    latency over ``latency_world`` on one core is within ``gate.p99_budget_ms``.

    Returns only the failed load check when the stage cannot be loaded. Never raises because of the stage
    (no ``assert``: the result is the same under ``python -O``). ``source`` (e.g. the artifact's name) is
    named in the load check's detail."""
    try:
        stage = make_stage(context if context is not None else contract_world.context(seed=0))
        check_stage_class(kind, type(stage))
        stage.warmup()
    except Exception as exc:
        return [Check(LOADS, False, f"{type(exc).__name__}: {exc}")]
    checks = [Check(LOADS, True, type(stage).__name__ + (f" from {source}" if source else ""))]
    checks.append(_contract_check(kind, make_stage, contract_world))
    try:
        checks.append(_latency_check(kind, stage, latency_world, gate))
    except Exception as exc:
        checks.append(Check(_latency_name(gate), False, f"{type(exc).__name__}: {exc}"))
    finally:
        stage.close()
    return checks


def stage_step(ctx: PipelineContext, candidate: VersionInfo) -> Decision:
    """Run :func:`stage_checks` on the candidate's artifact over the real data; set ``staging`` if passed."""
    g = ctx.gates.stage
    path = candidate.artifact
    spec = ChannelSpec(type=ctx.plugin)

    def make(c: StageContext) -> Stage:
        return build_from_spec(ctx.kind, spec, replace(c, artifact=path))

    checks = stage_checks(
        ctx.kind,
        make,
        _world(ctx, g.contract_requests, ctx.settings.seed),
        _world(ctx, g.latency_requests, ctx.settings.seed + 1),
        g,
        context=ctx.resolver.context,
        source=path.name,
    )
    latency = next((c.numbers for c in checks if "p99_ms" in c.numbers), {})
    numbers: dict[str, Any] = {k: latency[k] for k in ("p50_ms", "p99_ms") if k in latency}
    decision = Decision.from_checks("stage", ctx.plugin, candidate.version, checks, numbers)
    if decision.passed:
        ctx.registry.set_alias(ctx.plugin, "staging", candidate.version)
    return decision
