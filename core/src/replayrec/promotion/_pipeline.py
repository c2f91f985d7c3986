"""The promotion pipeline: train → evaluate → (optimize) → stage → canary → prod, each a plain function taking
the context and a model version and returning a :class:`Decision`; the pipeline stops at the first failed
gate. The optional *optimize* step replaces the candidate by its serving variant for the steps after it."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from replayrec.application import TrainRequest, train_model
from replayrec.artifacts import artifact_meta, latest_artifact
from replayrec.errors import ConfigError
from replayrec.promotion._canary import canary_step
from replayrec.promotion._context import PipelineContext
from replayrec.promotion._evaluate import evaluate_step
from replayrec.promotion._gates import Check, Decision
from replayrec.promotion._optimize import optimize_step
from replayrec.promotion._stage import stage_step
from replayrec.registry import REF_PATTERN, VersionInfo

__all__ = [
    "STEPS",
    "PipelineResult",
    "candidate_version",
    "manual_promote",
    "prod_step",
    "rollback",
    "run_pipeline",
    "run_step",
    "train_step",
]


def train_step(
    ctx: PipelineContext,
    config: Mapping[str, Any],
    epochs: int | None = None,
    val_users: int = 10_000,
    accelerator: str = "cpu",
) -> tuple[Decision, VersionInfo]:
    """``replayrec train`` (the same operation) → a new registered version."""
    request = TrainRequest(
        ctx.plugin,
        ctx.dataset.name,
        config,
        epochs=epochs,
        val_users=val_users,
        tracking_uri=ctx.tracking_uri,
        accelerator=accelerator,
    )
    out = train_model(ctx.settings, request, ctx.dataset)
    version = ctx.registry.get(ctx.plugin, out.model_version)
    val = ", ".join(f"{k} {v:.4f}" for k, v in out.val.items() if k in ("ndcg@10", "hr@10", "ndcg@20"))
    check = Check(
        "trained", True, f"{out.epochs_run} epochs in {out.train_seconds:.0f}s; validation {val}", out.val
    )
    numbers = {
        "artifact": str(out.artifact),
        "run_id": out.run_id,
        "epochs_run": out.epochs_run,
        "train_seconds": out.train_seconds,
    }
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
            path = latest_artifact(ctx.settings, ctx.plugin, ctx.dataset.name, ctx.protocol)
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
    optimize: str | None = None,
    bits: int | None = None,
) -> PipelineResult:
    """Train (or take ``model``), then evaluate → stage → canary → prod until a gate fails; with
    ``optimize`` (else the gate config's ``optimize.method``) the candidate's variant is made and gated
    after *evaluate* and goes on in its place."""
    method = optimize or ctx.gates.optimize.method
    bits = bits if bits is not None else ctx.gates.optimize.bits
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
        if decision.passed and name == "evaluate" and method is not None:
            decision, version = optimize_step(ctx, version, method, bits)
            result.decisions.append(ctx.record(decision))
            result.version = version.version
            name = "optimize"
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


def _check_after(path: Path, plugin: str, version: str) -> None:
    """Defence in depth beside the workflow's ``when``: the previous decision must have passed for this
    plugin and version."""
    try:
        prev = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--after {path}: not a decision file ({exc})") from None
    if not isinstance(prev, dict) or prev.get("plugin") != plugin or str(prev.get("version")) != version:
        raise ConfigError(f"--after {path} is a decision about another model, not {plugin} v{version}")
    if prev.get("passed") is not True:
        raise ConfigError(f"--after {path}: step {prev.get('step')!r} did not pass; refusing to continue")


def run_step(
    ctx: PipelineContext,
    step: str,
    out: Path,
    *,
    model: str | None = None,
    after: Path | None = None,
    config: Mapping[str, Any] | None = None,
    epochs: int | None = None,
    accelerator: str = "cpu",
    method: str | None = None,
    bits: int | None = None,
) -> Decision:
    """One step as a workflow task runs it: ``train`` (a new version) or a gate on the candidate ``model``
    (refused unless ``after``, the previous step's decision, passed for it); the decision is recorded and
    written to ``<out>/version``, ``<out>/passed`` (true/false) and ``<out>/decision.json``. ``optimize``
    (``method``, else the gate config's) writes the variant's version, the later steps' candidate (with
    neither, it passes the candidate on unchanged)."""
    if step == "train":
        decision, version = train_step(ctx, config or {}, epochs, accelerator=accelerator)
    else:
        if step not in STEPS and step != "optimize":
            raise ConfigError(f"unknown step {step!r}; expected train, optimize or one of {', '.join(STEPS)}")
        if not model:
            raise ConfigError(f"step {step} needs --model (the candidate version)")
        version = candidate_version(ctx, model)
        if after is not None:
            _check_after(after, ctx.plugin, version.version)
        if step == "optimize":
            how = method or ctx.gates.optimize.method
            n_bits = bits if bits is not None else ctx.gates.optimize.bits
            if how is None:  # a workflow's optimize task with nothing to make: the candidate goes on as is
                why = (
                    "no method (--method, or optimize.method in the gate config): the candidate goes on as is"
                )
                decision = Decision.from_checks(
                    "optimize", ctx.plugin, version.version, [Check("skipped", True, why)]
                )
            else:
                decision, version = optimize_step(ctx, version, how, n_bits)
        else:
            decision = STEPS[step](ctx, version)
    ctx.record(decision, "rolled_back" if step == "canary" and not decision.passed else None)
    out.mkdir(parents=True, exist_ok=True)
    (out / "version").write_text(version.version)
    (out / "passed").write_text("true" if decision.passed else "false")
    (out / "decision.json").write_text(json.dumps(decision.to_dict(), indent=2, default=str))
    return decision
