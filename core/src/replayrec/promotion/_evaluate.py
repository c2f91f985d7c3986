"""*evaluate* gate: absolute floors, and no significant regression against ``prod`` (and an optional
baseline) on all users and on the cold and heavy slices, nor, for a rank / rerank model, against the order
it receives, from paired bootstrap intervals."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from replayrec.application import EvalOptions, evaluate_input_order, evaluate_plugin
from replayrec.evaluation import EvalResult, paired_lift
from replayrec.promotion._context import PipelineContext
from replayrec.promotion._gates import Check, Decision
from replayrec.registry import VersionInfo, metric_tag

__all__ = ["evaluate_model", "evaluate_step"]

MIN_SLICE_USERS = 50


def _opts(ctx: PipelineContext) -> EvalOptions:
    return EvalOptions(protocol=ctx.protocol, n_boot=ctx.gates.evaluate.n_boot)


def evaluate_model(
    ctx: PipelineContext,
    model: str | None,
    plugin: str | None = None,
    options: dict[str, Any] | None = None,
) -> EvalResult:
    """The protocol's test split: a recall model by exact full ranking, a rank / rerank model in the
    cascade it was trained in; ``model=None`` fits an untrained plugin (a baseline) with ``options``."""
    name = plugin or ctx.plugin
    return evaluate_plugin(ctx.settings, ctx.dataset, name, options, model=model, opts=_opts(ctx))


def slices(ctx: PipelineContext) -> dict[str, npt.NDArray[np.int64]]:
    """Rows of the test split per slice: ``all``, ``cold`` (short histories), ``heavy`` (long ones)."""
    test = ctx.split.test
    hist = np.diff(test.hist_ptr)
    g = ctx.gates.evaluate
    heavy_from = float(np.quantile(hist, g.heavy_quantile)) if hist.size else 0.0
    return {
        "all": np.arange(hist.size, dtype=np.int64),
        "cold": np.flatnonzero(hist <= g.cold_max_history).astype(np.int64),
        "heavy": np.flatnonzero(hist >= heavy_from).astype(np.int64),
    }


def _compare(
    ctx: PipelineContext,
    base: EvalResult,
    cand: EvalResult,
    against: str,
    rows: dict[str, npt.NDArray[np.int64]],
    tolerance: float | None = None,
) -> list[Check]:
    """Paired lifts of ``cand`` over ``base`` per slice and metric; a check fails when the 95% interval
    lies entirely below ``-tolerance`` (default: the gate's, per slice)."""
    g = ctx.gates.evaluate
    checks = []
    for name, idx in rows.items():
        tol = tolerance if tolerance is not None else g.tolerance if name == "all" else g.slice_tolerance
        for m in g.metrics:
            label = f"{m} vs {against} ({name}, {idx.size:,} users)"
            if idx.size < MIN_SLICE_USERS:
                checks.append(Check(label, True, f"skipped: fewer than {MIN_SLICE_USERS} users"))
                continue
            b, c = base.per_user[m][idx], cand.per_user[m][idx]
            lift, lo, hi = paired_lift(b, c, n_boot=g.n_boot, seed=ctx.settings.seed)
            bad = bool(np.isfinite(hi) and hi < -tol)
            nums = {
                "base": float(np.nanmean(b)),
                "candidate": float(np.nanmean(c)),
                "lift": lift,
                "ci": [lo, hi],
                "tolerance": tol,
            }
            detail = (
                f"{nums['candidate']:.4f} vs {nums['base']:.4f}, lift {lift:+.1%} [{lo:+.1%}, {hi:+.1%}]"
                f"{' < ' if bad else ' within '}-{tol:.0%}"
            )
            checks.append(Check(label, not bad, detail, nums))
    return checks


def evaluate_step(ctx: PipelineContext, candidate: VersionInfo) -> Decision:
    g = ctx.gates.evaluate
    ctx.echo(
        f"[evaluate] {ctx.plugin} v{candidate.version} on {ctx.dataset.name} ({ctx.protocol} test split)"
    )
    cand = evaluate_model(ctx, str(candidate.artifact))
    checks: list[Check] = []
    for m, floor in g.minimum.items():
        v = cand.metrics.get(m, float("nan"))
        lo, hi = cand.ci.get(m, (float("nan"), float("nan")))
        checks.append(
            Check(
                f"{m} ≥ {floor}",
                bool(v >= floor),
                f"{v:.4f} [{lo:.4f}, {hi:.4f}]",
                {"value": v, "ci": [lo, hi], "minimum": floor},
            )
        )
    rows = slices(ctx)
    numbers: dict[str, Any] = {
        "candidate": {m: cand.metrics[m] for m in g.metrics},
        "candidate_ci": {m: list(cand.ci.get(m, ())) for m in g.metrics},
        "users": {k: int(v.size) for k, v in rows.items()},
    }
    baseline = g.baseline_spec()
    if baseline is not None:
        name, options = baseline
        base = evaluate_model(ctx, None, name, options)
        label = f"baseline {name}" + "".join(f" {k}={v}" for k, v in sorted(options.items()))
        checks += _compare(ctx, base, cand, label, {"all": rows["all"]})
        numbers["baseline"] = {"plugin": name, "options": options, **{m: base.metrics[m] for m in g.metrics}}
    if ctx.kind != "recall" and g.input_order:
        ctx.echo(f"[evaluate] against the order {ctx.plugin} receives, the same users")
        base = evaluate_input_order(ctx.settings, ctx.dataset, ctx.plugin, candidate.artifact, _opts(ctx))
        checks += _compare(ctx, base, cand, "its input order", {"all": rows["all"]}, g.input_tolerance)
        numbers["input_order"] = {m: base.metrics[m] for m in g.metrics}
    prod = ctx.registry.by_alias(ctx.plugin, "prod")
    if prod is not None and prod.version != candidate.version:
        ctx.echo(f"[evaluate] against prod v{prod.version}, the same users")
        base = evaluate_model(ctx, str(prod.artifact))
        checks += _compare(ctx, base, cand, f"prod v{prod.version}", rows)
        numbers["prod"] = {"version": prod.version, **{m: base.metrics[m] for m in g.metrics}}
    else:
        checks.append(Check("vs prod", True, "no other prod version to compare with"))
    tags = {metric_tag("eval", m): f"{cand.metrics[m]:.6f}" for m in g.metrics}
    tags.update({metric_tag("eval", m) + "_ci": "[{:.6f}, {:.6f}]".format(*cand.ci[m]) for m in g.metrics})
    ctx.registry.set_tags(ctx.plugin, candidate.version, tags)
    return Decision.from_checks("evaluate", ctx.plugin, candidate.version, checks, numbers)
