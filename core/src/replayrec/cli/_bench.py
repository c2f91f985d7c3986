"""``replayrec bench …``: timings that print numbers (medians over repeats) and can write JSON."""

from __future__ import annotations

from pathlib import Path

import click

from replayrec import application as app
from replayrec.cli._common import dataset_option, emit, json_option, out_option, repeat_option, settings_of

__all__ = ["bench"]


@click.group()
def bench() -> None:
    """Benchmarks (print medians over repeated runs; --json / --out for machine-readable results)."""


@bench.command("evaluate")
@dataset_option
@click.option("--plugin", default="popularity", show_default=True)
@repeat_option
@click.option(
    "--reference-users",
    type=int,
    default=500,
    show_default=True,
    help="users timed with the per-user reference loop (extrapolated to all users)",
)
@json_option
@out_option
@click.pass_context
def bench_evaluate(
    ctx: click.Context,
    name: str | None,
    plugin: str,
    repeat: int,
    reference_users: int,
    as_json: bool,
    out: Path | None,
) -> None:
    """Full-ranking evaluation speed (vectorised) against a per-user argsort loop, same model, same run."""
    emit(app.bench_evaluate(settings_of(ctx), name, plugin, repeat, reference_users), as_json, out)


@bench.command("synthetic")
@click.option("--events", type=int, default=10_000_000, show_default=True)
@click.option("--users", type=int, default=200_000, show_default=True)
@click.option("--items", type=int, default=100_000, show_default=True)
@repeat_option
@json_option
@out_option
def bench_synthetic(
    events: int, users: int, items: int, repeat: int, as_json: bool, out: Path | None
) -> None:
    """Time the synthetic world generator."""
    emit(app.bench_synthetic(events, users, items, repeat), as_json, out)


@bench.command("recall")
@click.argument("plugin")
@dataset_option
@click.option("--model", "model", help="trained model of PLUGIN: artifact directory or PLUGIN@alias")
@click.option("-k", "--k", "k", type=int, default=200, show_default=True)
@click.option("--requests", "n_requests", type=int, default=2000, show_default=True)
@click.option("--baseline", default="itemcf", show_default=True, help="plugin timed in the same run")
@json_option
@out_option
@click.pass_context
def bench_recall(
    ctx: click.Context,
    plugin: str,
    name: str | None,
    model: str | None,
    k: int,
    n_requests: int,
    baseline: str,
    as_json: bool,
    out: Path | None,
) -> None:
    """Per-request retrieve(request, k) latency on one core (BLAS limited to one thread)."""
    emit(app.bench_recall(settings_of(ctx), plugin, name, model, k, n_requests, baseline), as_json, out)


@bench.command("rank")
@click.argument("plugin")
@dataset_option
@click.option("--model", "model", help="trained model of PLUGIN: artifact directory or PLUGIN@alias")
@click.option("--candidates", "n_cands", type=int, default=200, show_default=True)
@click.option("--history", type=int, default=50, show_default=True, help="history items per request")
@click.option("--requests", "n_requests", type=int, default=1000, show_default=True)
@repeat_option
@json_option
@out_option
@click.pass_context
def bench_rank(
    ctx: click.Context,
    plugin: str,
    name: str | None,
    model: str | None,
    n_cands: int,
    history: int,
    n_requests: int,
    repeat: int,
    as_json: bool,
    out: Path | None,
) -> None:
    """Per-request score(request, candidates) latency of a rank plugin on one core; the pass-through rank
    (the cascade without a ranker) is timed in the same run."""
    result = app.bench_rank(settings_of(ctx), plugin, name, model, n_cands, history, n_requests, repeat)
    emit(result, as_json, out)


@bench.command("cascade")
@click.option("--config", "cascade_path", type=click.Path(path_type=Path), required=True)
@dataset_option
@click.option(
    "--baseline", type=click.Path(path_type=Path), help="cascade timed in the same run (default: built-in)"
)
@click.option("--requests", "n_requests", type=int, default=1000, show_default=True)
@repeat_option
@json_option
@out_option
@click.pass_context
def bench_cascade(
    ctx: click.Context,
    cascade_path: Path,
    name: str | None,
    baseline: Path | None,
    n_requests: int,
    repeat: int,
    as_json: bool,
    out: Path | None,
) -> None:
    """End-to-end offline cascade latency per request (recall → rank → rerank + rules) on one core, with each
    stage's share, beside a baseline cascade measured in the same run."""
    result = app.bench_cascade(settings_of(ctx), cascade_path, name, baseline, n_requests, repeat)
    emit(result, as_json, out)


@bench.command("serving-profile")
@dataset_option
@click.option(
    "--model", default="ranknet@latest", show_default=True, help="the trained model whose cascade is served"
)
@click.option(
    "--venv", type=click.Path(path_type=Path), help="an existing serving environment (default: build one)"
)
@click.option("--source", type=click.Path(path_type=Path), help="the source checkout to install from")
@click.option("--repeat", type=int, default=5, show_default=True, help="cold starts per environment")
@json_option
@out_option
@click.pass_context
def bench_serving_profile(
    ctx: click.Context,
    name: str | None,
    model: str,
    venv: Path | None,
    source: Path | None,
    repeat: int,
    as_json: bool,
    out: Path | None,
) -> None:
    """Size of the serving install (no torch, Lightning, MLflow, Ray, pytest) and the cascade's cold start
    there (fresh process to first answer), beside the environment this command runs in."""
    emit(app.bench_serving_profile(settings_of(ctx), name, model, venv, source, repeat), as_json, out)
