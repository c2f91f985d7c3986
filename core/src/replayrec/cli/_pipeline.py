"""``replayrec pipeline``, ``registry``, ``promote``, ``rollback``: promotion and the model registry."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from replayrec.application import read_training_config
from replayrec.cli._common import (
    dataset_option,
    echo_json,
    info,
    json_option,
    parse_sets,
    sets_option,
    settings_of,
    tracking_option,
)
from replayrec.promotion import (
    FaultInjection,
    PipelineContext,
    audit_log,
    manual_promote,
    open_pipeline,
    rollback,
    run_pipeline,
    run_step,
)
from replayrec.registry import ModelRegistry, tracking_uri
from replayrec.training import convert_legacy_weights

__all__ = ["pipeline", "promote_cmd", "registry", "rollback_cmd"]

#: exit status of ``pipeline run`` when a gate stopped the candidate (0: promoted; 2: usage / input error)
EXIT_STOPPED = 3
_NO_FAULT = FaultInjection()

_gates = click.option("--gates", type=click.Path(path_type=Path), help="gate thresholds YAML")
_cascade = click.option(
    "--cascade", type=click.Path(path_type=Path), help="serving cascade YAML the canary swaps the model into"
)
_delay = click.option("--inject-canary-delay-ms", "delay_ms", type=float, default=0.0, help="chaos drill")
_errors = click.option(
    "--inject-canary-error-rate", "error_rate", type=float, default=0.0, help="chaos drill"
)
_optimize = click.option(
    "--optimize",
    "method",
    type=click.Choice(["fp16", "int8", "onnx"]),
    help="after evaluate: make this variant and gate its accuracy loss; it goes on in the candidate's place",
)
_bits = click.option("--bits", type=click.IntRange(2, 8), help="--optimize int8: the weight grid [default 8]")
_config = click.option(
    "--config", "config_path", type=click.Path(path_type=Path), help="training config YAML"
)


def _open(
    ctx: click.Context,
    plugin: str,
    name: str | None,
    tracking: str | None,
    gates: Path | None = None,
    cascade: Path | None = None,
    fault: FaultInjection = _NO_FAULT,
    quiet: bool = False,
    until: int | None = None,
    window_days: float | None = None,
) -> PipelineContext:
    echo = info if quiet else click.echo
    return open_pipeline(
        settings_of(ctx), plugin, name, tracking, gates, cascade, fault, echo, until, window_days
    )


@click.group()
def pipeline() -> None:
    """The promotion pipeline: train → evaluate → (optimize) → stage → canary → prod, with gates."""


@pipeline.command("run")
@click.argument("plugin")
@dataset_option
@click.option("--model", help="skip training: a version number, PLUGIN@ALIAS or an artifact directory")
@_config
@sets_option
@click.option("--epochs", type=int)
@click.option("--val-users", type=int, default=10_000, show_default=True)
@tracking_option
@_gates
@_cascade
@_delay
@_errors
@_optimize
@_bits
@click.option(
    "--until", type=click.IntRange(min=0), help="Unix seconds: train on the dataset as it stood then (drills)"
)
@click.option(
    "--window-days", type=click.FloatRange(min=0, min_open=True),
    help="train and evaluate on the last days of data only (before --until, else before the newest event)",
)  # fmt: skip
@json_option
@click.pass_context
def run_cmd(
    ctx: click.Context,
    plugin: str,
    name: str | None,
    model: str | None,
    config_path: Path | None,
    sets: tuple[str, ...],
    epochs: int | None,
    val_users: int,
    tracking: str | None,
    gates: Path | None,
    cascade: Path | None,
    delay_ms: float,
    error_rate: float,
    method: str | None,
    bits: int | None,
    until: int | None,
    window_days: float | None,
    as_json: bool,
) -> None:
    """Run every step; prints each gate's decision with its numbers. Exit 0 when promoted to prod, 3 when
    a gate stopped the candidate."""
    config = read_training_config(config_path, parse_sets(sets))
    fault = FaultInjection(delay_ms, error_rate)
    pctx = _open(ctx, plugin, name, tracking, gates, cascade, fault, as_json, until, window_days)
    result = run_pipeline(
        pctx, model=model, config=config, epochs=epochs, val_users=val_users, optimize=method, bits=bits
    )
    if as_json:
        echo_json(result.to_dict())
    if not result.promoted:
        sys.exit(EXIT_STOPPED)


@pipeline.command("step")
@click.argument("step", type=click.Choice(["train", "evaluate", "optimize", "stage", "canary", "prod"]))
@click.argument("plugin")
@dataset_option
@click.option("--model", help="the candidate (not for train): version, PLUGIN@ALIAS or artifact")
@_config
@sets_option
@click.option("--epochs", type=int)
@tracking_option
@_gates
@_cascade
@_delay
@_errors
@click.option(
    "--method",
    type=click.Choice(["fp16", "int8", "onnx"]),
    help="optimize: the variant (default: the gate config's optimize.method)",
)
@_bits
@click.option(
    "--after",
    type=click.Path(path_type=Path),
    help="the previous step's decision.json: refuse to run unless it passed for the same version",
)
@click.option(
    "--accelerator",
    type=click.Choice(["cpu", "gpu", "auto"]),
    default="cpu",
    show_default=True,
    help="train: Lightning accelerator",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="folder for the step's outputs: version, passed, decision.json",
)
@click.pass_context
def step_cmd(
    ctx: click.Context,
    step: str,
    plugin: str,
    name: str | None,
    model: str | None,
    config_path: Path | None,
    sets: tuple[str, ...],
    epochs: int | None,
    tracking: str | None,
    gates: Path | None,
    cascade: Path | None,
    delay_ms: float,
    error_rate: float,
    method: str | None,
    bits: int | None,
    after: Path | None,
    accelerator: str,
    out: Path,
) -> None:
    """One step, as a workflow task runs it: writes ``<out>/version``, ``<out>/passed`` (true/false) and
    ``<out>/decision.json``; exits 0 whatever the gate decided (the workflow branches on ``passed``)."""
    config = read_training_config(config_path, parse_sets(sets)) if step == "train" else None
    pctx = _open(ctx, plugin, name, tracking, gates, cascade, FaultInjection(delay_ms, error_rate))
    run_step(
        pctx,
        step,
        out,
        model=model,
        after=after,
        config=config,
        epochs=epochs,
        accelerator=accelerator,
        method=method,
        bits=bits,
    )


@click.group()
def registry() -> None:
    """The MLflow model registry: versions, aliases, metrics, audit log."""


def _version_line(v: dict[str, Any]) -> str:
    aliases = ",".join(v["aliases"]) or "-"
    src, ev = ("eval", v["eval"]) if v["eval"] else ("val", v["val"])
    keys = ("ndcg_at_10", "hr_at_10")
    metrics = " ".join(f"{src}_{k}={ev[k]:.4f}" for k in keys if isinstance(ev.get(k), float))
    gates = " ".join(f"{k}={x}" for k, x in v["gates"].items() if not k.endswith(".reason"))
    commit = (v["git_commit"] or "")[:12]
    return f"  v{v['version']:<4} {aliases:<22} {v['dataset']}  {commit:<12} {metrics}  {gates}"


@registry.command("list")
@click.option("--plugin", help="one plugin (default: all)")
@tracking_option
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, plugin: str | None, tracking: str | None, as_json: bool) -> None:
    """Each plugin's versions with their aliases, dataset, commit and metrics."""
    rows = ModelRegistry(tracking_uri(settings_of(ctx), tracking)).listing(plugin)
    if as_json:
        echo_json(rows)
        return
    for p, versions in rows.items():
        click.echo(f"{p}: {len(versions)} version(s)")
        for v in versions:
            click.echo(_version_line(v))


@registry.command("register")
@click.argument("artifact", type=click.Path(path_type=Path, exists=True, file_okay=False))
@tracking_option
@click.pass_context
def register_cmd(ctx: click.Context, artifact: Path, tracking: str | None) -> None:
    """Register an artifact directory (e.g. trained elsewhere) as a new version."""
    v = ModelRegistry(tracking_uri(settings_of(ctx), tracking)).register(artifact)
    click.echo(f"registered {artifact} as {v.plugin} v{v.version}")


@registry.command("upgrade")
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(path_type=Path, file_okay=False))
def upgrade_cmd(artifacts: tuple[Path, ...]) -> None:
    """Give artifacts from before core 0.5 (``model.pt``) the ``model.safetensors`` serving reads (needs
    torch: the training install)."""
    for artifact in artifacts:
        click.echo(f"{artifact}: {convert_legacy_weights(artifact)}")


@registry.command("audit")
@click.option("--plugin")
@json_option
@click.pass_context
def audit_cmd(ctx: click.Context, plugin: str | None, as_json: bool) -> None:
    """The append-only promotion audit log."""
    records = audit_log(settings_of(ctx)).read(plugin)
    if as_json:
        echo_json(records)
        return
    for r in records:
        click.echo(
            f"{r['time']} {r['actor']} {r['plugin']} v{r['version']} {r['step']} {r['outcome']}: "
            f"{r['reason']}"
        )


@click.command("promote")
@click.argument("plugin")
@click.option("--version", "version", required=True)
@click.option("--to", "alias", type=click.Choice(["staging", "canary", "prod"]), required=True)
@click.option("--reason", required=True, help="why (recorded in the audit log)")
@dataset_option
@tracking_option
@click.pass_context
def promote_cmd(
    ctx: click.Context,
    plugin: str,
    version: str,
    alias: str,
    reason: str,
    name: str | None,
    tracking: str | None,
) -> None:
    """Set an alias by hand, bypassing the gates (audited)."""
    manual_promote(_open(ctx, plugin, name, tracking), version, alias, reason)


@click.command("rollback")
@click.argument("plugin")
@click.option("--to", "to", help="version to roll back to (default: prod-previous)")
@click.option("--reason", default="", help="why (recorded in the audit log)")
@dataset_option
@tracking_option
@click.pass_context
def rollback_cmd(
    ctx: click.Context, plugin: str, to: str | None, reason: str, name: str | None, tracking: str | None
) -> None:
    """Point prod back at the previous version (a second rollback rolls forward again)."""
    rollback(_open(ctx, plugin, name, tracking), to, reason)
