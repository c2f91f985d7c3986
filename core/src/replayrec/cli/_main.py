"""Entry point: global options, sub-commands, one-line errors."""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points
from pathlib import Path

import click

from replayrec import __version__
from replayrec.cli._ab import ab
from replayrec.cli._bench import bench
from replayrec.cli._bus import bench_bus_cmd, bus, replay
from replayrec.cli._data import data
from replayrec.cli._deploy import deploy_group
from replayrec.cli._eval import evaluate_cmd, recommend_cmd, report
from replayrec.cli._infra import argo_group, infra_group
from replayrec.cli._monitor import monitor
from replayrec.cli._optimize import bench_variants_cmd, optimize_cmd
from replayrec.cli._pipeline import pipeline, promote_cmd, registry, rollback_cmd
from replayrec.cli._plugins import plugins
from replayrec.cli._stages import ablation_cmd, stages_cmd
from replayrec.cli._stream import bench_stream_cmd, stream
from replayrec.cli._train import bench_train_cmd, train_cmd
from replayrec.config import Settings
from replayrec.errors import ReplayrecError

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="replayrec")
@click.option(
    "--data-dir", type=click.Path(path_type=Path), help="public data folder [env REPLAYREC_DATA_DIR]"
)
@click.option(
    "--state-dir", type=click.Path(path_type=Path), help="prepared data, reports [env REPLAYREC_STATE_DIR]"
)
@click.option(
    "--bootstrap-servers", metavar="HOST:PORT[,…]", help="Kafka brokers [env REPLAYREC_BOOTSTRAP_SERVERS]"
)
@click.option("-v", "--verbose", is_flag=True)
@click.pass_context
def cli(
    ctx: click.Context,
    data_dir: Path | None,
    state_dir: Path | None,
    bootstrap_servers: str | None,
    verbose: bool,
) -> None:
    """replayrec: a real-time streaming recommender — data, models, the event bus and its replay."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    _progress_to_stderr()
    # kafka-python logs every refused connection at ERROR; the bus reports outages itself
    logging.getLogger("kafka").setLevel(logging.INFO if verbose else logging.CRITICAL)
    given = {"data_dir": data_dir, "state_dir": state_dir, "bootstrap_servers": bootstrap_servers}
    overrides = {k: v for k, v in given.items() if v is not None}
    ctx.ensure_object(dict)["settings"] = Settings(**overrides)  # type: ignore[arg-type]


class _ToStderr(logging.Handler):
    """Writes each record as a plain line to the current ``sys.stderr`` (looked up at every record, so a
    redirected or captured stderr is honoured)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=True)


def _progress_to_stderr() -> None:
    """The operations' progress messages (logger ``replayrec.application``) as plain lines on stderr, so
    ``--json`` output on stdout stays clean."""
    log = logging.getLogger("replayrec.application")
    if not any(isinstance(h, _ToStderr) for h in log.handlers):
        log.addHandler(_ToStderr())
    log.setLevel(logging.INFO)
    log.propagate = False


cli.add_command(data)
cli.add_command(plugins)
cli.add_command(evaluate_cmd)
cli.add_command(recommend_cmd)
cli.add_command(report)
cli.add_command(bench)
cli.add_command(train_cmd)
cli.add_command(optimize_cmd)
bench.add_command(bench_train_cmd)
bench.add_command(bench_variants_cmd)
report.add_command(stages_cmd)
report.add_command(ablation_cmd)
cli.add_command(pipeline)
cli.add_command(registry)
cli.add_command(promote_cmd)
cli.add_command(rollback_cmd)
cli.add_command(ab)
cli.add_command(bus)
cli.add_command(replay)
bench.add_command(bench_bus_cmd)
cli.add_command(stream)
cli.add_command(infra_group)
cli.add_command(argo_group)
cli.add_command(deploy_group)
cli.add_command(monitor)
bench.add_command(bench_stream_cmd)


def _extensions() -> None:
    """Commands other installed packages add (entry points ``replayrec.cli``: ``register(cli)``), e.g.
    replayrec-serving's ``serve``; a broken one is skipped with a warning naming it."""
    for ep in entry_points(group="replayrec.cli"):
        try:
            ep.load()(cli)
        except Exception as exc:  # a broken extension must not take the core commands down with it
            click.echo(f"warning: CLI extension {ep.name} ({ep.value}) not loaded: {exc}", err=True)


def main() -> None:
    _extensions()
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ReplayrecError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
