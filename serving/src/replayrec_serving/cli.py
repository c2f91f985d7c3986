"""The serving commands, added to the ``replayrec`` CLI through the ``replayrec.cli`` entry point:
``replayrec serve``, ``replayrec ab set | show | clear``, ``replayrec bench serve``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from replayrec.cli._common import echo_json, json_option, settings_of
from replayrec_serving._ops import clear_experiment, serve, set_experiment, show_experiment
from replayrec_serving._settings import ServiceSettings

__all__ = ["register"]


def _service_settings(ctx: click.Context, **overrides: Any) -> ServiceSettings:
    base = settings_of(ctx)
    given = {k: v for k, v in overrides.items() if v is not None}
    core = {k: getattr(base, k) for k in type(base).model_fields}
    return ServiceSettings(**{**core, **given})


@click.command("serve")
@click.option("--host", help="interface to bind [env REPLAYREC_HOST; default 127.0.0.1]")
@click.option("--port", type=click.IntRange(1, 65535), help="[env REPLAYREC_PORT; default 8000]")
@click.option(
    "--workers", type=click.IntRange(1, 64), help="worker processes [env REPLAYREC_WORKERS; default 1]"
)
@click.option("--dataset", help="the catalogue served [env REPLAYREC_DATASET; default: the prepared one]")
@click.option("--cascade", type=click.Path(path_type=Path, dir_okay=False), help="serving cascade YAML")
@click.option(
    "--cache-ttl", "cache_ttl_s", type=click.IntRange(0, 86_400), help="result cache TTL, s (0: off)"
)
@click.option("--canary-fraction", type=click.FloatRange(0, 1), help="share of users on a canary")
@click.pass_context
def serve_cmd(ctx: click.Context, /, **options: Any) -> None:
    """Run the recommendation service (FastAPI on uvicorn) until Ctrl-C. The admin token comes from the
    environment only (REPLAYREC_ADMIN_TOKEN), never from the command line. OpenAPI docs at /docs."""
    settings = _service_settings(ctx, **options)
    click.echo(
        f"serving on http://{settings.host}:{settings.port} ({settings.workers} worker(s)); Ctrl-C stops",
        err=True,
    )
    serve(settings)


@click.command("set")
@click.argument("name")
@click.option("--arm", "arms", multiple=True, required=True, metavar="NAME=CASCADE.yaml[:WEIGHT]",
              help="an arm: its cascade and traffic weight (repeat; 1 to 8 arms)")  # fmt: skip
@click.option("--salt", help="hash salt (default: replayrec-ab-<name>); a new salt reshuffles users")
@click.option("--shadow", metavar="NAME=CASCADE.yaml", help="score this cascade on live traffic, never shown")
@json_option
@click.pass_context
def ab_set(
    ctx: click.Context, name: str, arms: tuple[str, ...], salt: str | None, shadow: str | None, as_json: bool
) -> None:
    """Start (or replace) the live A/B experiment: every service worker applies it within about a second."""
    exp = set_experiment(_service_settings(ctx), name, list(arms), salt, shadow)
    if as_json:
        echo_json(exp.model_dump(mode="json"))
        return
    split = ", ".join(f"{a.name} {a.weight:g}" for a in exp.arms)
    click.echo(
        f"experiment {exp.name} set (salt {exp.salt}): {split}"
        + (f"; shadow {exp.shadow.name}" if exp.shadow else "")
    )


@click.command("show")
@json_option
@click.pass_context
def ab_show(ctx: click.Context, as_json: bool) -> None:
    """The live A/B experiment, if any."""
    exp = show_experiment(_service_settings(ctx))
    if as_json:
        echo_json(None if exp is None else exp.model_dump(mode="json"))
    elif exp is None:
        click.echo("no experiment: every user gets the prod cascade (and a canary, when one is set)")
    else:
        click.echo(f"{exp.name} (salt {exp.salt}): " + ", ".join(f"{a.name} {a.weight:g}" for a in exp.arms))


@click.command("clear")
@click.pass_context
def ab_clear(ctx: click.Context) -> None:
    """End the live A/B experiment (everyone back on prod)."""
    click.echo("experiment cleared" if clear_experiment(_service_settings(ctx)) else "no experiment was set")


def register(root: click.Group) -> None:
    """Add the serving commands to the ``replayrec`` CLI."""
    root.add_command(serve_cmd)
    ab = root.commands.get("ab")
    if isinstance(ab, click.Group):
        for cmd in (ab_set, ab_show, ab_clear):
            ab.add_command(cmd)
    bench = root.commands.get("bench")
    if isinstance(bench, click.Group):
        from replayrec_serving._bench import bench_serve_cmd

        bench.add_command(bench_serve_cmd)
