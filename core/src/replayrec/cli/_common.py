"""Shared CLI pieces: the option sets every command reuses (defined once), settings, output."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import click
import yaml

from replayrec.config import Settings
from replayrec.data import DATASETS
from replayrec.errors import ConfigError
from replayrec.evaluation import PROTOCOLS

__all__ = [
    "bootstrap_option",
    "dataset_option",
    "echo_json",
    "emit",
    "info",
    "is_tty",
    "json_option",
    "out_option",
    "parse_ks",
    "parse_sets",
    "protocol_option",
    "repeat_option",
    "report_files",
    "sets_option",
    "settings_of",
    "stop_on_signals",
    "tracking_option",
]


dataset_option = click.option("--dataset", "name", type=click.Choice(sorted(DATASETS)))
protocol_option = click.option(
    "--protocol", type=click.Choice(PROTOCOLS), help="default: the dataset's own (loo, or given for KGAT)"
)
json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")
out_option = click.option("--out", type=click.Path(path_type=Path), help="also write the result as JSON here")
bootstrap_option = click.option(
    "--bootstrap", "n_boot", type=int, default=1000, show_default=True, help="bootstrap resamples (0: none)"
)
repeat_option = click.option("--repeat", type=int, default=3, show_default=True, help="timed runs (median)")
sets_option = click.option(
    "--set", "sets", multiple=True, metavar="KEY=VALUE", help="config value, parsed as YAML (repeatable)"
)
tracking_option = click.option(
    "--tracking-uri",
    "tracking",
    help="MLflow URI [env MLFLOW_TRACKING_URI; default: sqlite in the state dir]",
)


def settings_of(ctx: click.Context) -> Settings:
    obj: Settings = ctx.ensure_object(dict)["settings"]
    return obj


def info(msg: str) -> None:
    """Progress / provenance messages go to stderr so ``--json`` output stays clean."""
    click.echo(msg, err=True)


def _default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False, default=_default))


def emit(result: dict[str, Any], as_json: bool, out: Path | None = None) -> None:
    """A benchmark's result: written to ``out`` as JSON when given, printed as JSON or as key: value."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=_default))
    if as_json:
        echo_json(result)
    else:
        for k, v in result.items():
            click.echo(f"{k:>28}: {v}")


def report_files(paths: dict[str, Path]) -> str:
    """``<stem>.md (+ .json, .png)``: the report files that were written."""
    others = ", ".join(f".{k}" for k in paths if k != "md")
    return f"{paths['md']} (+ {others})" if others else str(paths["md"])


def parse_sets(values: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs; values are parsed as YAML scalars (``3``, ``0.5``, ``true``, ``recent``)."""
    out: dict[str, Any] = {}
    for item in values:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(raw)
    return out


def parse_ks(raw: str) -> tuple[int, ...]:
    """``10,20,50`` → (10, 20, 50): sorted, unique, positive."""
    try:
        ks = tuple(sorted({int(x) for x in raw.split(",") if x.strip()}))
    except ValueError:
        raise ConfigError(f"--ks expects comma-separated integers, got {raw!r}") from None
    if not ks or ks[0] <= 0:
        raise ConfigError(f"--ks needs positive cut-offs, got {raw!r}")
    return ks


def is_tty() -> bool:
    return sys.stderr.isatty()


def stop_on_signals() -> threading.Event:
    """An event SIGTERM and Ctrl-C set (a foreground service finishes its step and stops cleanly)."""
    stop = threading.Event()

    def _term(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)
    return stop
