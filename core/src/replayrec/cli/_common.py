"""Shared CLI helpers: settings, dataset resolution, output."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from replayrec.config import Settings
from replayrec.data import Dataset, default_dataset, ensure_prepared, load_dataset
from replayrec.errors import ConfigError

__all__ = ["echo_json", "info", "parse_sets", "resolve_dataset", "settings_of"]


def settings_of(ctx: click.Context) -> Settings:
    obj: Settings = ctx.ensure_object(dict)["settings"]
    return obj


def info(msg: str) -> None:
    """Progress / provenance messages go to stderr so ``--json`` output stays clean."""
    click.echo(msg, err=True)


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False, default=_default))


def _default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def resolve_dataset(settings: Settings, name: str | None, prepare: bool = True) -> Dataset:
    """Load ``name`` (or the default dataset, saying which), preparing it first when needed."""
    if name is None:
        name, why = default_dataset(settings)
        info(why)
    if prepare:
        path, fresh = ensure_prepared(name, settings)
        if fresh:
            info(f"prepared {name} into {path}")
    return load_dataset(name, settings)


def parse_sets(values: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs; values are parsed as YAML scalars (``3``, ``0.5``, ``true``, ``recent``)."""
    out: dict[str, Any] = {}
    for item in values:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(raw)
    return out


def is_tty() -> bool:
    return sys.stderr.isatty()
