"""``replayrec data …``"""

from __future__ import annotations

import click

from replayrec.application import dataset_stats, download, open_dataset, prepare_dataset
from replayrec.cli._common import dataset_option, echo_json, json_option, settings_of
from replayrec.data import DATASETS

__all__ = ["data"]


@click.group()
def data() -> None:
    """Prepare, inspect and download datasets."""


@data.command("prepare")
@click.option(
    "--dataset", "name", type=click.Choice(sorted(DATASETS)), help="default: real Amazon Books if present"
)
@click.option("--force", is_flag=True, help="prepare again even when up to date")
@click.option("--events", type=int, help="synthetic: number of events to generate (before de-duplication)")
@click.option("--users", type=int, help="synthetic: number of users")
@click.option("--items", type=int, help="synthetic: number of items")
@click.option("--seed", type=int, help="synthetic: world seed")
@click.pass_context
def prepare_cmd(
    ctx: click.Context,
    name: str | None,
    force: bool,
    events: int | None,
    users: int | None,
    items: int | None,
    seed: int | None,
) -> None:
    """Build the canonical event table (Parquet) for a dataset."""
    world = {"n_events": events, "n_users": users, "n_items": items, "seed": seed}
    p = prepare_dataset(settings_of(ctx), name, force, world)
    state = "prepared" if p.fresh else "already up to date"
    click.echo(
        f"{p.name}: {state} at {p.path} ({p.counts['events']:,} events, {p.counts['users']:,} users, "
        f"{p.counts['items']:,} items)"
    )


@data.command("stats")
@dataset_option
@json_option
@click.pass_context
def stats_cmd(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Counts, sparsity, per-user and per-item distributions, time span."""
    out = dataset_stats(open_dataset(settings_of(ctx), name))
    if as_json:
        echo_json(out)
        return
    for key, val in out.items():
        click.echo(f"{key:>16}: {val}")


@data.command("download")
@click.option("--dataset", "name", required=True, type=click.Choice(sorted(DATASETS)))
@click.option("--base-url", help="mirror to download from instead of the public URL")
@click.option("--force", is_flag=True)
@click.pass_context
def download_cmd(ctx: click.Context, name: str, base_url: str | None, force: bool) -> None:
    """Download a dataset's public source files into the data directory."""
    for path in download(settings_of(ctx), name, base_url, force):
        click.echo(str(path))
