"""``replayrec plugins …``"""

from __future__ import annotations

from pathlib import Path

import click

from replayrec.cli._common import echo_json, json_option
from replayrec.plugins import list_plugins
from replayrec.scaffold import new_plugin

__all__ = ["plugins"]


@click.group()
def plugins() -> None:
    """Discover and scaffold stage plugins."""


@plugins.command("list")
@json_option
def list_cmd(as_json: bool) -> None:
    """Every installed stage plugin, by stage kind, with its package, version and status."""
    infos = list_plugins()
    if as_json:
        echo_json([p.as_dict() for p in infos])
        return
    for p in infos:
        status = "ok" if p.ok else f"BROKEN: {p.error}"
        click.echo(
            f"{p.kind:<7} {p.name:<14} {p.distribution or '-'} {p.version or ''} "
            f"core_api={p.core_api}  {status}"
        )


@plugins.command("new")
@click.argument("name")
@click.option("--kind", default="recall", show_default=True, type=click.Choice(["recall"]))
@click.option("--dest", type=click.Path(path_type=Path), default=Path("plugins"), show_default=True)
def new_cmd(name: str, kind: str, dest: Path) -> None:
    """Create a new plugin package from the template (config, stage, contract tests)."""
    folder = new_plugin(name, kind, dest)
    click.echo(f"created {folder}; install it with: pip install -e {folder}")
