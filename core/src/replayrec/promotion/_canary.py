"""*canary* gate: set the ``canary`` alias, then compare the candidate with prod on HR@k, latency and errors
with significance tests. A failing canary is rolled back automatically.

The numbers come from one of two sources (``canary.source``). ``simulate`` (the default, offline runs): replay
the newest held-out requests in time order, route each user by a deterministic hash (``fraction`` to the
candidate's cascade, the rest to prod's) and serve every request on its own. ``live``: read the running
service's per-arm counters (:mod:`replayrec.promotion._canary_live`)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from threadpoolctl import threadpool_limits

from replayrec.cascade import Cascade, CascadeConfig, trained_cascade
from replayrec.errors import ConfigError
from replayrec.evaluation import build_requests
from replayrec.promotion._canary_live import observe_live
from replayrec.promotion._context import FaultInjection, PipelineContext
from replayrec.promotion._gates import CanaryGate, Check, Decision
from replayrec.registry import VersionInfo
from replayrec.stages import Candidate, Request

__all__ = ["canary_bucket", "canary_step", "cascade_for"]


def canary_bucket(user: int | str, salt: str) -> float:
    """A user's position in [0, 1): the same user always lands in the same arm for a given salt. ``user`` is
    the dense id (what the pipeline and the service hash for known users) or a raw id (new users)."""
    digest = hashlib.sha256(f"{salt}:{user}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _swap(node: Any, plugin: str, model: str) -> Any:
    if isinstance(node, Mapping):
        out = {k: _swap(v, plugin, model) for k, v in node.items()}
        if out.get("type") == plugin:
            out["model"] = model
        return out
    if isinstance(node, list):
        return [_swap(v, plugin, model) for v in node]
    return node


def cascade_for(ctx: PipelineContext, model: Path) -> CascadeConfig:
    """The serving cascade with this plugin's stage on ``model``: ``ctx.cascade`` (a YAML, every stage of
    type ``plugin`` swapped), else the plugin alone for a recall, else the cascade it was trained in."""
    k = ctx.gates.canary.k
    if ctx.cascade is not None:
        raw = yaml.safe_load(ctx.cascade.read_text()) or {}
        if ctx.plugin not in yaml.safe_dump(raw):
            raise ConfigError(f"cascade {ctx.cascade} has no stage of type {ctx.plugin!r}")
        return CascadeConfig.from_mapping(_swap(raw, ctx.plugin, str(model)), source=str(ctx.cascade))
    if ctx.kind == "recall":
        layout = {
            "recall": {"k": k, "channels": [{"type": ctx.plugin, "model": str(model)}]},
            "rank": {"type": "passthrough", "k": k},
            "rerank": {"type": "passthrough", "k": k},
        }
        return CascadeConfig.from_mapping(layout, source=f"canary cascade of {model}")
    return trained_cascade(ctx.plugin, ctx.kind, model, {})


@dataclass
class _Arm:
    name: str
    cascade: Cascade
    fault: FaultInjection = field(default_factory=FaultInjection)
    latency_ms: list[float] = field(default_factory=list)
    hits: list[float] = field(default_factory=list)
    errors: int = 0
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    def serve(self, request: Request, targets: Sequence[int], k: int) -> None:
        t0 = time.perf_counter_ns()
        try:
            if self.fault.delay_ms:
                time.sleep(self.fault.delay_ms / 1000)
            if self.fault.error_rate and self.rng.random() < self.fault.error_rate:
                raise RuntimeError("injected fault")
            out: list[Candidate] = self.cascade.recommend(request, k)
        except Exception:
            self.errors += 1
            return
        finally:
            self.latency_ms.append((time.perf_counter_ns() - t0) / 1e6)
        got = {c.item for c in out[:k]}
        self.hits.append(float(any(int(t) in got for t in targets)))

    def summary(self) -> dict[str, Any]:
        lat = np.asarray(self.latency_ms) if self.latency_ms else np.zeros(1)
        n = len(self.latency_ms)
        return {
            "requests": n,
            "hits": int(sum(self.hits)),
            "events": len(self.hits),  # the requests HR is measured on (errors have no list)
            "hr": float(np.mean(self.hits)) if self.hits else float("nan"),
            "errors": self.errors,
            "error_rate": self.errors / n if n else 0.0,
            "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)),
        }


def _traffic(ctx: PipelineContext) -> tuple[list[Request], list[Any]]:
    test = ctx.split.test
    order = np.argsort(test.times, kind="stable")[-ctx.gates.canary.max_requests :].astype(np.int64)
    return build_requests(test, order, ctx.split.history_len), [test.targets(int(r)) for r in order]


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _hr_check(g: CanaryGate, canary: dict[str, Any], prod: dict[str, Any]) -> Check:
    """One-sided two-proportion z-test on hits / events: is the canary's HR@k significantly below prod's?"""
    from scipy import stats  # 0.6 s to import: only when a canary is judged

    name = f"HR@{g.k} not significantly below prod (α={g.alpha})"
    (h1, n1), (h2, n2) = (canary["hits"], canary["events"]), (prod["hits"], prod["events"])
    if n1 == 0 or n2 == 0:
        return Check(name, True, f"no events yet (canary n={n1}, prod n={n2})")
    p1, p2 = h1 / n1, h2 / n2
    pooled = (h1 + h2) / (n1 + n2)
    se = float(np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2)))
    p_hr = float(stats.norm.cdf((p1 - p2) / se)) if se > 0 else 0.5
    detail = f"{p1:.4f} (n={n1}) vs {p2:.4f} (n={n2}), one-sided p={p_hr:.3g}"
    return Check(name, not (p_hr < g.alpha), detail, {"p_value": p_hr})


def _latency_check(g: CanaryGate, canary: dict[str, Any], prod: dict[str, Any], p_lat: float | None) -> Check:
    """Canary p99 ≤ factor × prod p99 + slack; with samples (``p_lat``: Mann-Whitney) only if significant."""
    name = f"latency p99 ≤ {g.latency_factor}× prod + {g.latency_slack_ms} ms"
    c99, p99 = canary["p99_ms"], prod["p99_ms"]
    if c99 is None or p99 is None:
        return Check(name, True, f"no requests to compare (p99 {_ms(c99)} vs {_ms(p99)} ms)")
    limit = g.latency_factor * p99 + g.latency_slack_ms
    slow = c99 > limit and (p_lat is None or p_lat < g.alpha)
    test = "from latency buckets" if p_lat is None else f"Mann-Whitney one-sided p={p_lat:.3g}"
    numbers: dict[str, Any] = {"p_value": p_lat, "limit_ms": limit}
    return Check(name, not slow, f"p99 {c99:.2f} vs {p99:.2f} ms (limit {limit:.2f}), {test}", numbers)


def _error_check(g: CanaryGate, canary: dict[str, Any], prod: dict[str, Any]) -> Check:
    from scipy import stats

    table = [
        [canary["errors"], max(canary["requests"] - canary["errors"], 0)],
        [prod["errors"], max(prod["requests"] - prod["errors"], 0)],
    ]
    p_err = float(stats.fisher_exact(table, alternative="greater").pvalue)
    return Check(
        "errors not significantly above prod",
        not (p_err < g.alpha and canary["errors"] > 0),
        f"{canary['errors']} vs {prod['errors']} errors, Fisher one-sided p={p_err:.3g}",
        {"p_value": p_err},
    )


def _checks(
    g: CanaryGate,
    canary: dict[str, Any],
    prod: dict[str, Any] | None,
    p_lat: float | None = None,
    no_prod: str = "no prod cascade to compare with",
) -> list[Check]:
    """The checks both sources share: error rate and p99 budget, then (with a prod) the tests against it."""
    c99 = canary["p99_ms"]
    checks = [
        Check(
            f"error rate ≤ {g.max_error_rate:.2%}",
            canary["error_rate"] <= g.max_error_rate,
            f"{canary['errors']} of {canary['requests']} requests failed",
        ),
        Check(
            f"p99 ≤ {g.p99_budget_ms} ms",
            c99 is None or c99 <= g.p99_budget_ms,
            f"canary p50 {_ms(canary['p50_ms'])} / p99 {_ms(c99)} ms",
        ),
    ]
    if prod is None:
        return [*checks, Check(f"HR@{g.k} vs prod", True, no_prod)]
    return [
        *checks,
        _hr_check(g, canary, prod),
        _latency_check(g, canary, prod, p_lat),
        _error_check(g, canary, prod),
    ]


def _replay(ctx: PipelineContext, cand_arm: _Arm, prod_arm: _Arm | None, arms: str) -> None:
    g = ctx.gates.canary
    for arm in (cand_arm, prod_arm):
        if arm is not None:
            arm.cascade.warmup()
    requests, targets = _traffic(ctx)
    ctx.echo(
        f"[canary] replaying {len(requests):,} held-out requests, {g.fraction:.0%} of users to {arms}"
        + (f"; fault injection {ctx.fault}" if ctx.fault.active else "")
    )
    with threadpool_limits(1):
        for req, tgt in zip(requests, targets, strict=True):
            if canary_bucket(req.user, g.salt) < g.fraction:
                cand_arm.serve(req, tgt, g.k)
            elif prod_arm is not None:
                prod_arm.serve(req, tgt, g.k)


def _simulate(ctx: PipelineContext, candidate: VersionInfo) -> tuple[list[Check], dict[str, Any]]:
    """Replayed held-out traffic through the candidate's and prod's cascades."""
    from scipy import stats

    prod = ctx.registry.by_alias(ctx.plugin, "prod")
    if prod is not None and prod.version == candidate.version:
        prod = None
    build = ctx.resolver.context_for
    cand_arm = _Arm("canary", Cascade.build(cascade_for(ctx, candidate.artifact), build), ctx.fault)
    prod_arm = _Arm("prod", Cascade.build(cascade_for(ctx, prod.artifact), build)) if prod else None
    rest = f", the rest to prod v{prod.version}" if prod else " (no prod: the rest is not served)"
    _replay(ctx, cand_arm, prod_arm, f"v{candidate.version}{rest}")
    canary = cand_arm.summary()
    control = prod_arm.summary() if prod_arm is not None else None
    p_lat = None
    if prod_arm is not None:
        mw = stats.mannwhitneyu(cand_arm.latency_ms, prod_arm.latency_ms, alternative="greater")
        p_lat = float(mw.pvalue)
    checks = _checks(ctx.gates.canary, canary, control, p_lat)
    numbers = {"canary": canary, "prod": control, "prod_version": prod.version if prod else None}
    return checks, {**numbers, "source": "simulate"}


def _live(ctx: PipelineContext, candidate: VersionInfo) -> tuple[list[Check], dict[str, Any]]:
    """The running service's own per-arm numbers over an observation window."""
    seen = observe_live(ctx, candidate.version)
    if seen.observed is None or seen.canary is None:  # never served the candidate, or unreachable
        return [seen.served], seen.numbers
    judged = _checks(ctx.gates.canary, seen.canary, seen.prod, no_prod="the service has no prod arm")
    return [seen.served, seen.observed, *judged], seen.numbers


def _roll_back(ctx: PipelineContext, candidate: VersionInfo, before: VersionInfo | None) -> None:
    """The canary alias goes back to where it was before this gate set it."""
    if before is not None and before.version != candidate.version:
        ctx.registry.set_alias(ctx.plugin, "canary", before.version)
    else:
        ctx.registry.delete_alias(ctx.plugin, "canary")


def canary_step(ctx: PipelineContext, candidate: VersionInfo) -> Decision:
    """Point ``canary`` at the candidate, judge it on simulated or live traffic (``canary.source``), and roll
    the alias back when it fails (or the judging itself raises)."""
    reg = ctx.registry
    before = reg.by_alias(ctx.plugin, "canary")
    reg.set_alias(ctx.plugin, "canary", candidate.version)
    judge = _live if ctx.gates.canary.source == "live" else _simulate
    try:
        checks, numbers = judge(ctx, candidate)
    except BaseException:
        _roll_back(ctx, candidate, before)
        raise
    decision = Decision.from_checks("canary", ctx.plugin, candidate.version, checks, numbers)
    if not decision.passed:  # automatic rollback
        _roll_back(ctx, candidate, before)
    return decision
