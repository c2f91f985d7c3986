"""``replayrec stream …``: the Spark job that keeps the online feature store in Redis; the store's reads."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from replayrec import application as app
from replayrec.cli._common import (
    dataset_option,
    echo_json,
    emit,
    info,
    json_option,
    out_option,
    settings_of,
    stop_on_signals,
)

__all__ = ["bench_stream_cmd", "stream"]


@click.group()
def stream() -> None:
    """The streaming job (Spark Structured Streaming → Redis features) and the online store."""


@stream.command("run")
@dataset_option
@click.option("--detach", is_flag=True, help="run in the background (stop with: replayrec stream stop)")
@click.option("--trigger-ms", type=int, default=500, show_default=True, help="micro-batch interval")
@click.option(
    "--max-records", type=int, default=20_000, show_default=True, help="records per micro-batch at most"
)
@click.option(
    "--metrics-port", type=int, default=9466, show_default=True, help="Prometheus /metrics on 127.0.0.1"
)
@click.option("--no-metrics", is_flag=True, help="do not serve metrics")
@click.pass_context
def stream_run(
    ctx: click.Context,
    name: str | None,
    detach: bool,
    trigger_ms: int,
    max_records: int,
    metrics_port: int,
    no_metrics: bool,
) -> None:
    """Read the events topic with Spark Structured Streaming and keep user profiles, item statistics and the
    popularity counters in Redis, exactly once (checkpoint under the state directory). Ctrl-C stops it."""
    settings = settings_of(ctx)
    req = app.StreamRequest(name, trigger_ms, max_records, None if no_metrics else metrics_port)
    if detach:
        pid = app.stream_start_detached(settings, req)
        info(f"stream job running (pid {pid}); replayrec stream status | stop")
        return
    stop = stop_on_signals()
    sys.exit(app.run_stream(settings, req, stop))


@stream.command("stop")
@click.pass_context
def stream_stop(ctx: click.Context) -> None:
    """Stop the job started by ``stream run --detach`` (the driver and its JVM)."""
    pid = app.stream_stop(settings_of(ctx))
    info("no stream job was running" if pid is None else f"stream job (pid {pid}) stopped")


@stream.command("status")
@dataset_option
@click.option(
    "--wait", "wait_s", type=float, help="first wait up to this many seconds for the store to catch up"
)
@json_option
@click.pass_context
def stream_status(ctx: click.Context, name: str | None, wait_s: float | None, as_json: bool) -> None:
    """The job, the store's epoch / status / position, and the consumer lag."""
    settings = settings_of(ctx)
    if wait_s is not None:
        app.wait_for_stream(settings, app.online_store(settings, app.open_dataset(settings, name)), wait_s)
    st = app.stream_status(settings, name)
    if as_json:
        echo_json(st)
        return
    store = st["store"]
    job = "running" if st["running"] else f"not running (last state: {st['job']})"
    click.echo(f"stream job {job}; {st['batches'] or 0} batches")
    if store is None:
        click.echo(
            f"no online store in namespace {st['namespace']}"
            + (f" ({st['store_error']})" if "store_error" in st else "")
        )
        return
    click.echo(
        f"store {store['status']} (epoch {store['epoch'][:8]}): {store['applied']:,} events applied, "
        f"{store['dead']:,} dead letters, batch {store['batch']}; lag {st['lag']}"
    )


@stream.command("reset")
@dataset_option
@click.pass_context
def stream_reset(ctx: click.Context, name: str | None) -> None:
    """Delete this namespace's online store and the job's checkpoint (the next run rebuilds from the log)."""
    r = app.stream_reset(settings_of(ctx), name)
    info(f"deleted {r['keys_deleted']:,} keys" + (" and the checkpoint" if r["checkpoint_deleted"] else ""))


@stream.command("profile")
@dataset_option
@click.argument("user", required=False)
@json_option
@click.pass_context
def stream_profile(ctx: click.Context, name: str | None, user: str | None, as_json: bool) -> None:
    """A user's online profile as serving reads it; without USER, the dataset's most active user's."""
    p = app.online_profile(settings_of(ctx), user, name)
    if as_json:
        echo_json(p)
        return
    interest = sorted(enumerate(p["interest"]), key=lambda x: -x[1])[:3]
    click.echo(
        f"user {p['user']} (store {p['store']}): version {p['version']}, "
        f"{len(p['exclude'])} items to exclude, counts {p['counts']}; top interest groups "
        + ", ".join(f"{g} ({w:.2f})" for g, w in interest if w > 0)
    )
    for r, title in list(zip(p["recent"], p["titles"], strict=True))[-5:]:
        when = datetime.fromtimestamp(r["time_ms"] / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        click.echo(f"  {when}  {r['action']:<8} {title}")
    if not p["recent"]:
        click.echo("  (no events)")


@click.command("stream")
@dataset_option
@click.option("--rate", type=int, default=2000, show_default=True, help="events per second, steady phase")
@click.option("--seconds", type=int, default=300, show_default=True, help="length of the steady phase")
@click.option("--backlog", type=int, default=200_000, show_default=True, help="events of the drain phase")
@json_option
@out_option
@click.pass_context
def bench_stream_cmd(
    ctx: click.Context,
    name: str | None,
    rate: int,
    seconds: int,
    backlog: int,
    as_json: bool,
    out: Path | None,
) -> None:
    """End-to-end freshness at a steady event rate, and the drain rate of a backlog; starts a broker and the
    job when they are not running, and stops what it started."""
    emit(app.bench_stream(settings_of(ctx), name, rate, seconds, backlog), as_json, out)
