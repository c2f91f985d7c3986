"""``replayrec pipeline``, ``registry``, ``promote``, ``rollback``: promotion and the model registry."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from replayrec.cli._common import echo_json, info, resolve_dataset, settings_of
from replayrec.cli._train import _config
from replayrec.data import DATASETS
from replayrec.errors import ConfigError

__all__ = ["pipeline", "promote_cmd", "registry", "rollback_cmd"]

#: exit status of ``pipeline run`` when a gate stopped the candidate (0: promoted; 2: usage / input error)
EXIT_STOPPED = 3


def _ctx(
    ctx: click.Context,
    plugin: str,
    name: str | None,
    tracking: str | None,
    gates: Path | None = None,
    cascade: Path | None = None,
    delay_ms: float = 0.0,
    error_rate: float = 0.0,
    quiet: bool = False,
) -> Any:
    from replayrec.plugins import kind_of
    from replayrec.promotion import FaultInjection, PipelineContext, load_gates
    from replayrec.training._runner import tracking_uri

    settings = settings_of(ctx)
    kind_of(plugin)  # unknown plugin: fail before loading data
    gate_config = load_gates(gates)
    if cascade is not None and not cascade.is_file():
        raise ConfigError(f"cascade {cascade} does not exist")
    if not 0 <= error_rate <= 1 or delay_ms < 0:
        raise ConfigError("fault injection needs delay ≥ 0 ms and an error rate in [0, 1]")
    return PipelineContext(
        settings=settings,
        dataset=resolve_dataset(settings, name),
        plugin=plugin,
        tracking_uri=tracking_uri(settings, tracking),
        gates=gate_config,
        cascade=cascade,
        fault=FaultInjection(delay_ms, error_rate),
        echo=info if quiet else click.echo,
    )


_dataset = click.option("--dataset", "name", type=click.Choice(sorted(DATASETS)))
_tracking = click.option(
    "--tracking-uri",
    "tracking",
    help="MLflow URI [env MLFLOW_TRACKING_URI; default: sqlite in the state dir]",
)
_gates = click.option("--gates", type=click.Path(path_type=Path), help="gate thresholds YAML")
_cascade = click.option(
    "--cascade", type=click.Path(path_type=Path), help="serving cascade YAML the canary swaps the model into"
)
_delay = click.option("--inject-canary-delay-ms", "delay_ms", type=float, default=0.0, help="chaos drill")
_errors = click.option(
    "--inject-canary-error-rate", "error_rate", type=float, default=0.0, help="chaos drill"
)


@click.group()
def pipeline() -> None:
    """The promotion pipeline: train → evaluate → stage → canary → prod, with gates."""


@pipeline.command("run")
@click.argument("plugin")
@_dataset
@click.option("--model", help="skip training: a version number, PLUGIN@ALIAS or an artifact directory")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="training config YAML")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="training config value")
@click.option("--epochs", type=int)
@click.option("--val-users", type=int, default=10_000, show_default=True)
@_tracking
@_gates
@_cascade
@_delay
@_errors
@click.option("--json", "as_json", is_flag=True)
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
    as_json: bool,
) -> None:
    """Run every step; prints each gate's decision with its numbers. Exit 0 when promoted to prod, 3 when
    a gate stopped the candidate."""
    from replayrec.promotion import run_pipeline

    config = _config(config_path, sets)
    pctx = _ctx(ctx, plugin, name, tracking, gates, cascade, delay_ms, error_rate, quiet=as_json)
    result = run_pipeline(pctx, model=model, config=config, epochs=epochs, val_users=val_users)
    if as_json:
        echo_json(result.to_dict())
    if not result.promoted:
        sys.exit(EXIT_STOPPED)


@pipeline.command("step")
@click.argument("step", type=click.Choice(["train", "evaluate", "stage", "canary", "prod"]))
@click.argument("plugin")
@_dataset
@click.option("--model", help="the candidate (not for train): version, PLUGIN@ALIAS or artifact")
@click.option("--config", "config_path", type=click.Path(path_type=Path))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE")
@click.option("--epochs", type=int)
@_tracking
@_gates
@_cascade
@_delay
@_errors
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
    after: Path | None,
    accelerator: str,
    out: Path,
) -> None:
    """One step, as a workflow task runs it: writes ``<out>/version``, ``<out>/passed`` (true/false) and
    ``<out>/decision.json``; exits 0 whatever the gate decided (the workflow branches on ``passed``)."""
    from replayrec.promotion import STEPS, candidate_version, train_step

    pctx = _ctx(ctx, plugin, name, tracking, gates, cascade, delay_ms, error_rate)
    if step == "train":
        decision, version = train_step(pctx, _config(config_path, sets), epochs, accelerator=accelerator)
    else:
        if not model:
            raise ConfigError(f"step {step} needs --model (the candidate version)")
        version = candidate_version(pctx, model)
        if after is not None:
            _check_after(after, plugin, version.version)
        decision = STEPS[step](pctx, version)
    outcome = "rolled_back" if step == "canary" and not decision.passed else None
    pctx.record(decision, outcome)
    out.mkdir(parents=True, exist_ok=True)
    (out / "version").write_text(version.version)
    (out / "passed").write_text("true" if decision.passed else "false")
    (out / "decision.json").write_text(json.dumps(decision.to_dict(), indent=2, default=str))


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


@click.group()
def registry() -> None:
    """The MLflow model registry: versions, aliases, metrics, audit log."""


@registry.command("list")
@click.option("--plugin", help="one plugin (default: all)")
@_tracking
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_cmd(ctx: click.Context, plugin: str | None, tracking: str | None, as_json: bool) -> None:
    """Each plugin's versions with their aliases, dataset, commit and metrics."""
    from replayrec.registry import ModelRegistry
    from replayrec.training._runner import tracking_uri

    reg = ModelRegistry(tracking_uri(settings_of(ctx), tracking))
    plugins = [plugin] if plugin else reg.plugins()
    rows = {p: [v.to_dict() for v in reg.versions(p)] for p in plugins}
    if as_json:
        echo_json(rows)
        return
    for p, versions in rows.items():
        click.echo(f"{p}: {len(versions)} version(s)")
        for v in versions:
            aliases = ",".join(v["aliases"]) or "-"
            src, ev = ("eval", v["eval"]) if v["eval"] else ("val", v["val"])
            metrics = " ".join(
                f"{src}_{k}={ev[k]:.4f}" for k in ("ndcg_at_10", "hr_at_10") if isinstance(ev.get(k), float)
            )
            gates = " ".join(f"{k}={x}" for k, x in v["gates"].items() if not k.endswith(".reason"))
            click.echo(
                f"  v{v['version']:<4} {aliases:<22} {v['dataset']}  {(v['git_commit'] or '')[:12]:<12} "
                f"{metrics}  {gates}"
            )


@registry.command("register")
@click.argument("artifact", type=click.Path(path_type=Path, exists=True, file_okay=False))
@_tracking
@click.pass_context
def register_cmd(ctx: click.Context, artifact: Path, tracking: str | None) -> None:
    """Register an artifact directory (e.g. trained elsewhere) as a new version."""
    from replayrec.registry import ModelRegistry
    from replayrec.training._runner import tracking_uri

    v = ModelRegistry(tracking_uri(settings_of(ctx), tracking)).register(artifact)
    click.echo(f"registered {artifact} as {v.plugin} v{v.version}")


@registry.command("audit")
@click.option("--plugin")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def audit_cmd(ctx: click.Context, plugin: str | None, as_json: bool) -> None:
    """The append-only promotion audit log."""
    from replayrec.promotion import AuditLog

    records = AuditLog(settings_of(ctx).state_dir / "audit" / "promotion.jsonl").read(plugin)
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
@_dataset
@_tracking
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
    from replayrec.promotion import manual_promote

    manual_promote(_ctx(ctx, plugin, name, tracking), version, alias, reason)


@click.command("rollback")
@click.argument("plugin")
@click.option("--to", "to", help="version to roll back to (default: prod-previous)")
@click.option("--reason", default="", help="why (recorded in the audit log)")
@_dataset
@_tracking
@click.pass_context
def rollback_cmd(
    ctx: click.Context, plugin: str, to: str | None, reason: str, name: str | None, tracking: str | None
) -> None:
    """Point prod back at the previous version (a second rollback rolls forward again)."""
    from replayrec.promotion import rollback

    rollback(_ctx(ctx, plugin, name, tracking), to, reason)
