"""The promotion pipeline: train → evaluate → stage → canary → prod, each a plain function taking the
context and a model version and returning a :class:`Decision`; the pipeline stops at the first failed gate."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from replayrec.errors import ConfigError
from replayrec.promotion._canary import canary_step
from replayrec.promotion._context import PipelineContext
from replayrec.promotion._evaluate import evaluate_step
from replayrec.promotion._gates import Check, Decision
from replayrec.promotion._stage import stage_step
from replayrec.registry import REF_PATTERN, VersionInfo, artifact_meta, latest_artifact

__all__ = [
    "STEPS",
    "PipelineResult",
    "candidate_version",
    "manual_promote",
    "prod_step",
    "rollback",
    "run_pipeline",
    "train_step",
]


def train_step(
    ctx: PipelineContext,
    config: Mapping[str, Any],
    epochs: int | None = None,
    val_users: int = 10_000,
    accelerator: str = "cpu",
) -> tuple[Decision, VersionInfo]:
    """``replayrec train`` (the same runner) → a new registered version."""
    from replayrec.training._runner import TrainOptions, run_training

    opts = TrainOptions(
        config=config,
        epochs=epochs,
        val_users=val_users,
        tracking_uri=ctx.tracking_uri,
        progress=False,
        accelerator=accelerator,
    )
    out = run_training(ctx.plugin, ctx.dataset, ctx.settings, opts)
    version = ctx.registry.get(ctx.plugin, str(out["model_version"]))
    val = ", ".join(f"{k} {v:.4f}" for k, v in out["val"].items() if k in ("ndcg@10", "hr@10", "ndcg@20"))
    check = Check(
        "trained",
        True,
        f"{out['epochs_run']} epochs in {out['train_seconds']:.0f}s; validation {val}",
        out["val"],
    )
    numbers = {k: out[k] for k in ("artifact", "run_id", "epochs_run", "train_seconds")}
    return Decision.from_checks("train", ctx.plugin, version.version, [check], numbers), version


def candidate_version(ctx: PipelineContext, model: str) -> VersionInfo:
    """An existing candidate: a registry version number, ``<plugin>@<alias>``, or an artifact directory
    (registered now when it is not yet a version)."""
    reg = ctx.registry
    if model.isdigit():
        return reg.get(ctx.plugin, model)
    m = REF_PATTERN.match(model)
    path = Path(model)
    if m is not None and not path.exists():
        if m["plugin"] != ctx.plugin:
            raise ConfigError(f"{model!r} is not a {ctx.plugin} model")
        if m["alias"] == "latest":  # the newest artifact in the state directory
            path = latest_artifact(ctx.settings, ctx.plugin, ctx.dataset.name)
        else:
            found = reg.by_alias(ctx.plugin, m["alias"])
            if found is None:
                raise ConfigError(f"{ctx.plugin} has no alias {m['alias']!r}")
            return found
    path = path.resolve()
    meta = artifact_meta(path)
    if meta.get("plugin") != ctx.plugin or meta.get("dataset") != ctx.dataset.name:
        raise ConfigError(
            f"{path} is a {meta.get('plugin')!r} model for {meta.get('dataset')!r}, "
            f"not {ctx.plugin!r} for {ctx.dataset.name!r}"
        )
    for v in reg.versions(ctx.plugin):
        if v.tags.get("replayrec.artifact") == str(path):
            return v
    return reg.register(path)


def prod_step(ctx: PipelineContext, candidate: VersionInfo) -> Decision:
    """Move ``prod`` to the candidate; the old prod stays reachable as ``prod-previous`` for rollback."""
    previous = ctx.registry.move_prod(ctx.plugin, candidate.version)
    for alias in ("canary", "staging"):
        held = ctx.registry.by_alias(ctx.plugin, alias)
        if held is not None and held.version == candidate.version:
            ctx.registry.delete_alias(ctx.plugin, alias)
    detail = f"prod → v{candidate.version}" + (
        f" (v{previous} kept as prod-previous)" if previous else " (first prod version)"
    )
    return Decision.from_checks(
        "prod", ctx.plugin, candidate.version, [Check("alias moved", True, detail)], {"previous": previous}
    )


STEPS: dict[str, Callable[[PipelineContext, VersionInfo], Decision]] = {
    "evaluate": evaluate_step,
    "stage": stage_step,
    "canary": canary_step,
    "prod": prod_step,
}


@dataclass
class PipelineResult:
    plugin: str
    version: str
    decisions: list[Decision] = field(default_factory=list)

    @property
    def promoted(self) -> bool:
        return any(d.step == "prod" and d.passed for d in self.decisions)

    @property
    def stopped_at(self) -> str | None:
        return next((d.step for d in self.decisions if not d.passed), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "plugin": self.plugin,
            "version": self.version,
            "promoted": self.promoted,
            "stopped_at": self.stopped_at,
            "decisions": [d.to_dict() for d in self.decisions],
        }


def run_pipeline(
    ctx: PipelineContext,
    *,
    model: str | None = None,
    config: Mapping[str, Any] | None = None,
    epochs: int | None = None,
    val_users: int = 10_000,
) -> PipelineResult:
    """Train (or take ``model``), then evaluate → stage → canary → prod until a gate fails."""
    if model is None:
        decision, version = train_step(ctx, config or {}, epochs, val_users)
        ctx.record(decision)
    else:
        version = candidate_version(ctx, model)
        ctx.echo(f"[train] skipped: candidate {ctx.plugin} v{version.version} ({version.artifact})")
    result = PipelineResult(ctx.plugin, version.version)
    for name, step in STEPS.items():
        decision = step(ctx, version)
        outcome = "rolled_back" if name == "canary" and not decision.passed else None
        result.decisions.append(ctx.record(decision, outcome))
        if not decision.passed:
            ctx.echo(f"stopped at {name}: prod stays at {_prod_label(ctx)}")
            break
    else:
        ctx.echo(f"promoted: {ctx.plugin}@prod = v{version.version}")
    return result


def _prod_label(ctx: PipelineContext) -> str:
    prod = ctx.registry.by_alias(ctx.plugin, "prod")
    return f"v{prod.version}" if prod else "(none)"


def manual_promote(ctx: PipelineContext, version: str, alias: str, reason: str) -> Decision:
    """Set an alias by hand (an operator's decision, audited with its reason); ``prod`` keeps the
    previous version as ``prod-previous`` like the pipeline does."""
    if not reason.strip():
        raise ConfigError("a manual promotion needs --reason")
    info = ctx.registry.get(ctx.plugin, version)
    if alias == "prod":
        previous = ctx.registry.move_prod(ctx.plugin, info.version)
        nums: dict[str, Any] = {"previous": previous}
    else:
        ctx.registry.set_alias(ctx.plugin, alias, info.version)
        nums = {}
    check = Check(f"{alias} set by hand", True, reason)
    decision = Decision.from_checks(f"promote-{alias}", ctx.plugin, info.version, [check], nums)
    return ctx.record(replace(decision, reason=f"{alias} → v{info.version} by hand: {reason}"), "manual")


def rollback(ctx: PipelineContext, to: str | None, reason: str) -> Decision:
    frm, dest = ctx.registry.rollback(ctx.plugin, to)
    why = f"prod v{frm} → v{dest}: {reason or 'no reason given'}"
    decision = Decision.from_checks(
        "rollback", ctx.plugin, dest, [Check("prod rolled back", True, why)], {"from": frm, "to": dest}
    )
    return ctx.record(replace(decision, reason=why), "rolled_back")
