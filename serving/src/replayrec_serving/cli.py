"""The serving commands, added to the ``replayrec`` CLI through the ``replayrec.cli`` entry point:
``replayrec serve``, ``replayrec ab set | show | clear``, ``replayrec bench serve``, ``replayrec replay
evaluate`` and ``replayrec demo`` (the live system)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from replayrec.cli._common import echo_json, json_option, settings_of
from replayrec.infra import deploy_dir
from replayrec.monitoring import check_dashboards, registry_metric_names, write_dashboards
from replayrec_serving._metrics import ServiceMetrics
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


def _train_config(path: Path | None) -> Path | None:
    """``--train-config``, else the repository's quick profile when run from a checkout."""
    if path is not None:
        return path
    quick = Path("configs/demo.yaml")
    return quick if quick.is_file() else None


F = TypeVar("F", bound=Callable[..., Any])

_live_options: list[Callable[[Any], Any]] = [
    click.option("--dataset", help="the dataset (default: the prepared one)"),
    click.option(
        "--train-config",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        help="training profile for the models trained before the cut (default: configs/demo.yaml "
        "when present, else the plugins' defaults)",
    ),
    click.option("--retrain", is_flag=True, help="train the models again even if the live registry has them"),
    click.option(
        "--retrain-from",
        type=click.Choice(["lightgcn", "din", "ranknet"]),
        help="train this model and the ones after it again (the others are reused)",
    ),
    click.option(
        "--workers", type=click.IntRange(1, 16), default=2, show_default=True, help="service workers"
    ),
]


def _with(options: list[Callable[[Any], Any]]) -> Callable[[F], F]:
    def wrap(fn: F) -> F:
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return wrap


@click.command("evaluate")
@_with(_live_options)
@click.option(
    "--users", type=click.IntRange(1), default=300, show_default=True, help="evaluated users (sampled)"
)
@click.option("--max-events-per-user", type=click.IntRange(1), default=20, show_default=True)
@click.option("--days", type=click.FloatRange(min=0, min_open=True), help="only the window's first days")
@click.option("--no-item-cf", is_flag=True, help="leave out the item-CF arm")
@click.option("--seed", type=int, default=0, show_default=True, help="user sampling and bootstrap seed")
@json_option
@click.pass_context
def replay_evaluate_cmd(ctx: click.Context, /, **o: Any) -> None:
    """Real-time vs nightly vs frozen features vs popularity, on the live path: models trained before the
    temporal cut, the events after it replayed through the bus, the stream job and Redis, every arm asked
    over HTTP just before each evaluated event. Starts (and stops) its own broker, job and service in the
    namespace <namespace>-eval."""
    from replayrec_serving._replay_eval import ReplayEvalRequest, evaluate_replay, format_replay_eval
    from replayrec_serving._system import SystemRequest, live_system, sigterm_interrupts

    base = _service_settings(ctx)
    settings = base.model_copy(update={"bus_namespace": f"{base.bus_namespace}-eval"})
    req = SystemRequest(dataset=o["dataset"], train_config=_train_config(o["train_config"]),
                        retrain=o["retrain"], retrain_from=o["retrain_from"], workers=o["workers"],
                        clear_store_at_exit=True)  # fmt: skip
    ev = ReplayEvalRequest(users=o["users"], max_events_per_user=o["max_events_per_user"], days=o["days"],
                           item_cf=not o["no_item_cf"], seed=o["seed"])  # fmt: skip
    ev.check()
    say = (lambda m: click.echo(m, err=True)) if o["as_json"] else click.echo
    with sigterm_interrupts(), live_system(settings, req, say) as system:
        result = evaluate_replay(system, ev, say)
        result["setup_seconds"] = {k: round(v, 1) for k, v in system.timings.items()}
    if o["as_json"]:
        echo_json(result)
    else:
        click.echo(format_replay_eval(result))


@click.command("demo")
@_with(_live_options)
@click.option(
    "--seconds", type=click.FloatRange(min=0), help="run this long, then stop (default: until Ctrl-C)"
)
@click.option("--port", type=click.IntRange(1, 65535), help="the service's port [default 8000]")
@click.option("--speed", default="3600", show_default=True, help="replay speed after the evaluated days")
@click.option("--eval-users", type=click.IntRange(1), default=100, show_default=True)
@click.option("--eval-days", type=click.FloatRange(min=0, min_open=True), default=7.0, show_default=True)
@click.pass_context
def demo_cmd(ctx: click.Context, /, **o: Any) -> None:
    """The live system end to end: models (trained before the cut, or reused), broker, stream job, service
    and web UI, a short replay evaluation, then a watchable replay — until Ctrl-C or --seconds."""
    from replayrec_serving._demo import DemoRequest, run_demo

    settings = _service_settings(ctx, port=o["port"])
    req = DemoRequest(dataset=o["dataset"], train_config=_train_config(o["train_config"]),
                      seconds=o["seconds"], eval_users=o["eval_users"], eval_days=o["eval_days"],
                      speed=o["speed"], retrain=o["retrain"], retrain_from=o["retrain_from"],
                      workers=o["workers"],
                      admin_token=os.environ.get("REPLAYREC_ADMIN_TOKEN") or None)  # fmt: skip
    run_demo(settings, req, click.echo)


@click.command("drill")
@click.option("--events", type=click.IntRange(1000), default=90_000, show_default=True, help="world size")
@click.option("--users", type=click.IntRange(50), default=600, show_default=True)
@click.option("--items", type=click.IntRange(50), default=1500, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--no-prometheus", is_flag=True, help="run on the monitor's own verdicts only")
@json_option
@click.pass_context
def drill_cmd(ctx: click.Context, /, **o: Any) -> None:
    """Drift detected → alert → retrain → promotion gates → the service switches → online HR recovers, on
    the synthetic world with an abrupt shift, end to end on the live path (broker, Spark job, service,
    Prometheus, the monitor); the timeline with its numbers. Its own state folder and namespace."""
    from replayrec_serving._drill import DrillRequest, format_drill, run_drill
    from replayrec_serving._system import sigterm_interrupts

    req = DrillRequest(events=o["events"], users=o["users"], items=o["items"], seed=o["seed"],
                       prometheus=not o["no_prometheus"])  # fmt: skip
    say = (lambda m: click.echo(m, err=True)) if o["as_json"] else click.echo
    with sigterm_interrupts():
        result = run_drill(_service_settings(ctx), req, say)
    if o["as_json"]:
        echo_json(result)
    else:
        click.echo(format_drill(result))


@click.command("dashboards")
@click.option("--write", is_flag=True, help="regenerate the committed JSON (else: check it)")
@click.pass_context
def dashboards_cmd(ctx: click.Context, write: bool) -> None:
    """The Grafana dashboards as code (system, stream, models): --write regenerates
    deploy/monitoring/grafana/dashboards/*.json; without it, check that the committed files are what the
    generator makes and lint them (panels, layout, every PromQL metric name known to the service, the stream
    job, the bus, the monitor or the recording rules). Exit 1 on a problem."""
    deploy = deploy_dir(settings_of(ctx))
    folder = deploy / "monitoring" / "grafana" / "dashboards"
    if write:
        for path in write_dashboards(folder):
            click.echo(f"wrote {path}")
        return
    known = registry_metric_names(ServiceMetrics().registry)
    problems = check_dashboards(
        folder, known, rules=deploy / "monitoring" / "prometheus" / "rules" / "recording.yml"
    )
    for p in problems:
        click.echo(p, err=True)
    if problems:
        raise SystemExit(1)
    click.echo(f"dashboards in {folder}: generated and clean")


def register(root: click.Group) -> None:
    """Add the serving commands to the ``replayrec`` CLI."""
    root.add_command(serve_cmd)
    root.add_command(demo_cmd)
    replay = root.commands.get("replay")
    if isinstance(replay, click.Group):
        replay.add_command(replay_evaluate_cmd)
    monitor = root.commands.get("monitor")
    if isinstance(monitor, click.Group):
        monitor.add_command(drill_cmd)
        monitor.add_command(dashboards_cmd)
    ab = root.commands.get("ab")
    if isinstance(ab, click.Group):
        for cmd in (ab_set, ab_show, ab_clear):
            ab.add_command(cmd)
    bench = root.commands.get("bench")
    if isinstance(bench, click.Group):
        from replayrec_serving._bench import bench_serve_cmd

        bench.add_command(bench_serve_cmd)
