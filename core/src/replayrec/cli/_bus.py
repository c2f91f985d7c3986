"""``replayrec bus …`` (the broker, live ingest) and ``replayrec replay …`` (the replay controller)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click

from replayrec import application as app
from replayrec.bus import ReplayState, event_json_schema, format_time, run_foreground
from replayrec.cli._common import (
    dataset_option,
    echo_json,
    emit,
    info,
    json_option,
    out_option,
    repeat_option,
    settings_of,
    stop_on_signals,
)

__all__ = ["bench_bus_cmd", "bus", "replay"]


@click.group()
def bus() -> None:
    """The Kafka event bus: the embedded broker and live ingest."""


@bus.command("start")
@click.option("--detach", is_flag=True, help="run in the background (stop with: replayrec bus stop)")
@click.pass_context
def bus_start(ctx: click.Context, detach: bool) -> None:
    """Start the embedded Tansu broker on 127.0.0.1 (the port of the bootstrap servers) and create the
    topics. Without --detach it runs until Ctrl-C."""
    settings = settings_of(ctx)
    handle = app.bus_start(settings)
    info(
        f"broker on {handle.address} (pid {handle.pid}); topics created in namespace {settings.bus_namespace}"
    )
    if detach:
        return
    info("Ctrl-C stops it")

    def _interrupt(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    rc = run_foreground(handle)
    info("broker stopped" if rc == 0 else f"the broker exited with status {rc}; see {handle.log}")
    sys.exit(rc)


@bus.command("stop")
@click.pass_context
def bus_stop(ctx: click.Context) -> None:
    """Stop the broker started by ``bus start --detach``."""
    pid = app.bus_stop(settings_of(ctx))
    info("no broker of ours was running" if pid is None else f"broker (pid {pid}) stopped")


@bus.command("status")
@json_option
@click.pass_context
def bus_status(ctx: click.Context, as_json: bool) -> None:
    """Is the broker up, and the project's topics with their message counts."""
    st = app.bus_status(settings_of(ctx))
    if as_json:
        echo_json(st)
    else:
        emb = st["embedded"]
        click.echo(
            f"bootstrap servers: {st['bootstrap_servers']} "
            f"({'reachable' if st['reachable'] else 'unreachable'})"
        )
        click.echo(
            f"embedded broker: {'running, pid ' + str(emb['pid']) if emb['running'] else 'not running'}"
        )
        for name, t in st["topics"].items():
            click.echo(f"  {name}: {t['partitions']} partitions, {t['messages']:,} messages")
    if not st["reachable"]:
        sys.exit(1)


@bus.command("ingest")
@click.argument("source", type=click.File("rb"), default="-")
@json_option
@click.pass_context
def bus_ingest(ctx: click.Context, source: Any, as_json: bool) -> None:
    """Produce live events from JSON lines (a file or - for stdin); bad lines go to the dead-letter topic."""
    lines = [line.rstrip(b"\r\n") for line in source if line.strip()]
    result = app.ingest_events(settings_of(ctx), lines)
    out = {"accepted": len(result.accepted), "rejected": [r.__dict__ for r in result.rejected]}
    if as_json:
        echo_json(out)
    else:
        click.echo(f"accepted {len(result.accepted)}, dead-lettered {len(result.rejected)}")
        for r in result.rejected:
            click.echo(f"  line {r.index + 1}: {r.reason}: {r.message}")


@bus.command("schema")
def bus_schema() -> None:
    """Print the event's JSON Schema (docs/event-schema.json is this output)."""
    click.echo(json.dumps(event_json_schema(), indent=2, sort_keys=True))


@click.group()
def replay() -> None:
    """The replay controller: a dataset's history onto the events topic, with a clock you can steer."""


@replay.command("start")
@dataset_option
@click.option("--from", "start", metavar="DATE", help="first event time (YYYY-MM-DD, ISO 8601, Unix s)")
@click.option("--until", metavar="DATE", help="stop before this time")
@click.option("--speed", default="86400", show_default=True, help="simulated seconds per second, or max")
@click.option("--detach", is_flag=True, help="run in the background")
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=9465,
    show_default=True,
    help="Prometheus /metrics on 127.0.0.1",
)
@click.option("--no-metrics", is_flag=True, help="do not serve metrics")
@click.option(
    "--chunk",
    type=click.IntRange(min=1),
    default=5000,
    show_default=True,
    help="events produced between flushes",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="ignore the saved state (skipped ranges, clock); the log still decides what was sent",
)
@click.pass_context
def replay_start(
    ctx: click.Context,
    name: str | None,
    start: str | None,
    until: str | None,
    speed: str,
    detach: bool,
    metrics_port: int,
    no_metrics: bool,
    chunk: int,
    fresh: bool,
) -> None:
    """Publish the dataset's events in their global order, event time mapped to wall time by --speed
    (86400 = one day per second). A restarted replay resumes where it stopped, sending nothing twice."""
    settings = settings_of(ctx)
    req = app.ReplayRequest(name, start, until, speed, None if no_metrics else metrics_port, chunk, not fresh)
    if detach:
        pid = app.replay_start_detached(settings, req)
        info(f"replay controller running (pid {pid}); replayrec replay status | pause | seek | stop")
        return
    stop = stop_on_signals()
    state = app.run_replay(settings, req, stop, _progress if sys.stderr.isatty() else None)
    info(
        f"\nreplay {state.status}: {state.published:,} events published, {state.skipped:,} skipped, "
        f"{state.already:,} already on the log; clock {format_time(state.clock)}"
    )


def _progress(st: ReplayState) -> None:
    click.echo(
        f"\r{st.status:<18} {format_time(st.clock)}  {st.position:,}/{st.total:,}  lag {st.lag_s:.1f}s ",
        err=True,
        nl=False,
    )


def _control(name: str, help_text: str, arg: str | None = None) -> click.Command:
    @click.pass_context
    def cmd(ctx: click.Context, /, **kwargs: str) -> None:
        state = app.replay_command(settings_of(ctx), name, kwargs.get("value"))
        click.echo(f"{state.status}; clock {format_time(state.clock)}; speed {state.speed}")

    command = click.command(name, help=help_text)(cmd)
    if arg is not None:
        command = click.argument("value", metavar=arg)(command)
    return command


replay.add_command(_control("pause", "Pause the replay (the clock stops)."))
replay.add_command(_control("resume", "Resume a paused replay."))
replay.add_command(
    _control(
        "seek",
        "Move the clock to DATE: forward skips the events before it; backward re-sends nothing.",
        "DATE",
    )
)
replay.add_command(_control("speed", "Change the speed (simulated seconds per second, or max).", "S"))


@replay.command("stop")
@click.pass_context
def replay_stop(ctx: click.Context) -> None:
    """Stop the running controller (it saves its state; ``replay start`` resumes)."""
    state = app.replay_stop(settings_of(ctx))
    info("no replay controller answered" if state is None else f"stopped at {format_time(state.clock)}")


@replay.command("status")
@json_option
@click.pass_context
def replay_status(ctx: click.Context, as_json: bool) -> None:
    """The replay clock and progress (from Redis, else the control topic, else the state file)."""
    st = app.replay_status(settings_of(ctx))
    if as_json:
        echo_json(st)
        return
    if st["state"] is None:
        click.echo("no replay has run in this namespace")
        return
    s = st["state"]
    click.echo(
        f"{s['status']} ({'controller running' if st['running'] else 'no controller'}); "
        f"clock {st['clock_iso']}; "
        f"speed {s['speed']}; {s['position']:,}/{s['total']:,} events ({s['published']:,} published, "
        f"{s['skipped']:,} skipped); lag {s['lag_s']} s; from {st['source']}"
    )


@click.command("bus")
@dataset_option
@repeat_option
@click.option("--limit", type=int, help="only the first N events (a quick run)")
@json_option
@out_option
@click.pass_context
def bench_bus_cmd(
    ctx: click.Context, name: str | None, repeat: int, limit: int | None, as_json: bool, out: Path | None
) -> None:
    """Producer throughput replaying the whole dataset at max speed (one core) and the read-back rate;
    starts a broker when none answers and stops it after."""
    emit(app.bench_bus(settings_of(ctx), name, repeat, limit), as_json, out)
