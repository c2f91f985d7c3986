"""*optimize* gate (optional, between *evaluate* and *stage*): the candidate turned into a serving variant
(FP16, ONNX Runtime, INT8), registered as a new version, and compared with the version it was made from on
the same test users; the variant goes on through the pipeline in its parent's place only when the paired
interval shows it loses at most ``max_loss``."""

from __future__ import annotations

import numpy as np

from replayrec.application import OptimizeRequest, optimize_model
from replayrec.evaluation import paired_lift
from replayrec.promotion._context import PipelineContext
from replayrec.promotion._evaluate import evaluate_model
from replayrec.promotion._gates import Check, Decision
from replayrec.registry import VersionInfo, metric_tag

__all__ = ["optimize_step"]


def _loss_checks(
    ctx: PipelineContext, base_per_user: dict[str, np.ndarray], cand_per_user: dict[str, np.ndarray]
) -> list[Check]:
    g = ctx.gates.optimize
    checks = []
    for m in g.metrics:
        b, c = base_per_user[m], cand_per_user[m]
        lift, lo, hi = paired_lift(b, c, n_boot=g.n_boot, seed=ctx.settings.seed)
        ok = bool(np.isfinite(lo) and lo >= -g.max_loss)
        nums = {
            "parent": float(np.nanmean(b)),
            "variant": float(np.nanmean(c)),
            "lift": lift,
            "ci": [lo, hi],
            "max_loss": g.max_loss,
        }
        detail = (
            f"{nums['variant']:.4f} vs {nums['parent']:.4f}, lift {lift:+.2%} [{lo:+.2%}, {hi:+.2%}]: "
            f"lower bound {'≥' if ok else '<'} -{g.max_loss:.0%}"
        )
        checks.append(Check(f"{m} vs the unoptimised version ({b.size:,} users)", ok, detail, nums))
    return checks


def optimize_step(
    ctx: PipelineContext, candidate: VersionInfo, method: str, bits: int = 8
) -> tuple[Decision, VersionInfo]:
    """Make the ``method`` variant of ``candidate`` (a new registered version naming its parent), evaluate
    both on the protocol's test split, and gate the variant's paired loss. Returns the decision about the
    variant and the variant itself (what the later steps take)."""
    ctx.echo(
        f"[optimize] {ctx.plugin} v{candidate.version} → {method}" + (f" ({bits}-bit)" if bits < 8 else "")
    )
    request = OptimizeRequest(
        ctx.plugin, str(candidate.artifact), method, bits, ctx.dataset.name, ctx.tracking_uri
    )
    made = optimize_model(ctx.settings, request)
    variant = ctx.registry.get(ctx.plugin, str(made.version))
    base = evaluate_model(ctx, str(candidate.artifact))
    cand = evaluate_model(ctx, str(made.artifact))
    checks = _loss_checks(ctx, base.per_user, cand.per_user)
    size = f"{made.parent_size_mb:.2f} MB → {made.size_mb:.2f} MB"
    checks.append(
        Check("artifact size", True, size, {"parent": made.parent_size_mb, "variant": made.size_mb})
    )
    metrics = ctx.gates.evaluate.metrics
    tags = {metric_tag("eval", m): f"{cand.metrics[m]:.6f}" for m in metrics if m in cand.metrics}
    ctx.registry.set_tags(ctx.plugin, variant.version, tags)
    numbers = {
        "method": method,
        "bits": bits,
        "parent_version": candidate.version,
        "variant_version": variant.version,
        "artifact": str(made.artifact),
        "parent": {m: base.metrics[m] for m in metrics if m in base.metrics},
        "variant": {m: cand.metrics[m] for m in metrics if m in cand.metrics},
    }
    return Decision.from_checks("optimize", ctx.plugin, variant.version, checks, numbers), variant
