"""*canary* gate: replay the newest held-out requests in time order, route each user by a deterministic
hash (``fraction`` to the candidate's cascade, the rest to prod's), serve every request on its own and
compare HR@k, latency and errors with significance tests. A failing canary is rolled back automatically."""

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
from replayrec.promotion._context import FaultInjection, PipelineContext
from replayrec.promotion._gates import Check, Decision
from replayrec.registry import VersionInfo
from replayrec.stages import Candidate, Request

__all__ = ["canary_bucket", "canary_step", "cascade_for"]


def canary_bucket(user: int, salt: str) -> float:
    """A user's position in [0, 1): the same user always lands in the same arm for a given salt."""
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


def _checks(
    ctx: PipelineContext, canary: dict[str, Any], prod: dict[str, Any] | None, arms: Any
) -> list[Check]:
    from scipy import stats  # 0.6 s to import: only when a canary is judged

    g = ctx.gates.canary
    k = g.k
    checks = [
        Check(
            f"error rate ≤ {g.max_error_rate:.2%}",
            canary["error_rate"] <= g.max_error_rate,
            f"{canary['errors']} of {canary['requests']} requests failed",
        ),
        Check(
            f"p99 ≤ {g.p99_budget_ms} ms",
            canary["p99_ms"] <= g.p99_budget_ms,
            f"canary p50 {canary['p50_ms']:.2f} / p99 {canary['p99_ms']:.2f} ms",
        ),
    ]
    if prod is None:
        checks.append(Check(f"HR@{k} vs prod", True, "no prod cascade to compare with"))
        return checks
    cand_arm, prod_arm = arms
    n1, n2 = len(cand_arm.hits), len(prod_arm.hits)
    p1, p2 = canary["hr"], prod["hr"]
    pooled = (p1 * n1 + p2 * n2) / max(n1 + n2, 1)
    se = float(np.sqrt(pooled * (1 - pooled) * (1 / max(n1, 1) + 1 / max(n2, 1))))
    p_hr = float(stats.norm.cdf((p1 - p2) / se)) if se > 0 else 0.5  # one-sided: canary worse
    checks.append(
        Check(
            f"HR@{k} not significantly below prod (α={g.alpha})",
            not (p_hr < g.alpha),
            f"{p1:.4f} (n={n1}) vs {p2:.4f} (n={n2}), one-sided p={p_hr:.3g}",
            {"p_value": p_hr},
        )
    )
    p_lat = float(stats.mannwhitneyu(cand_arm.latency_ms, prod_arm.latency_ms, alternative="greater").pvalue)
    limit = g.latency_factor * prod["p99_ms"] + g.latency_slack_ms
    slow = canary["p99_ms"] > limit and p_lat < g.alpha
    checks.append(
        Check(
            f"latency p99 ≤ {g.latency_factor}× prod + {g.latency_slack_ms} ms",
            not slow,
            f"p99 {canary['p99_ms']:.2f} vs {prod['p99_ms']:.2f} ms (limit {limit:.2f}), "
            f"Mann-Whitney one-sided p={p_lat:.3g}",
            {"p_value": p_lat, "limit_ms": limit},
        )
    )
    table = [
        [canary["errors"], canary["requests"] - canary["errors"]],
        [prod["errors"], prod["requests"] - prod["errors"]],
    ]
    p_err = float(stats.fisher_exact(table, alternative="greater").pvalue)
    checks.append(
        Check(
            "errors not significantly above prod",
            not (p_err < g.alpha and canary["errors"] > 0),
            f"{canary['errors']} vs {prod['errors']} errors, Fisher one-sided p={p_err:.3g}",
            {"p_value": p_err},
        )
    )
    return checks


def canary_step(ctx: PipelineContext, candidate: VersionInfo) -> Decision:
    g = ctx.gates.canary
    reg = ctx.registry
    before = reg.by_alias(ctx.plugin, "canary")
    reg.set_alias(ctx.plugin, "canary", candidate.version)
    prod = reg.by_alias(ctx.plugin, "prod")
    if prod is not None and prod.version == candidate.version:
        prod = None
    build = ctx.resolver.context_for
    cand_arm = _Arm("canary", Cascade.build(cascade_for(ctx, candidate.artifact), build), ctx.fault)
    prod_arm = _Arm("prod", Cascade.build(cascade_for(ctx, prod.artifact), build)) if prod else None
    for arm in (cand_arm, prod_arm):
        if arm is not None:
            arm.cascade.warmup()
    requests, targets = _traffic(ctx)
    ctx.echo(
        f"[canary] replaying {len(requests):,} held-out requests, "
        f"{g.fraction:.0%} of users to v{candidate.version}"
        + (f", the rest to prod v{prod.version}" if prod else " (no prod: the rest is not served)")
        + (f"; fault injection {ctx.fault}" if ctx.fault.active else "")
    )
    with threadpool_limits(1):
        for req, tgt in zip(requests, targets, strict=True):
            if canary_bucket(req.user, g.salt) < g.fraction:
                cand_arm.serve(req, tgt, g.k)
            elif prod_arm is not None:
                prod_arm.serve(req, tgt, g.k)
    canary = cand_arm.summary()
    control = prod_arm.summary() if prod_arm is not None else None
    checks = _checks(ctx, canary, control, (cand_arm, prod_arm))
    numbers = {"canary": canary, "prod": control, "prod_version": prod.version if prod else None}
    decision = Decision.from_checks("canary", ctx.plugin, candidate.version, checks, numbers)
    if not decision.passed:  # automatic rollback: the canary alias goes back to where it was
        if before is not None and before.version != candidate.version:
            reg.set_alias(ctx.plugin, "canary", before.version)
        else:
            reg.delete_alias(ctx.plugin, "canary")
    return decision
