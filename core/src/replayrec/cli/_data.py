"""``replayrec data …``"""

from __future__ import annotations

import click
import numpy as np

from replayrec.cli._common import echo_json, info, resolve_dataset, settings_of
from replayrec.data import (
    DATASETS,
    WorldConfig,
    default_dataset,
    download_dataset,
    ensure_prepared,
    get_spec,
    load_dataset,
)

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
    settings = settings_of(ctx)
    if name is None:
        name, why = default_dataset(settings)
        info(why)
    world = None
    if get_spec(name).kind == "synthetic":
        opts = {"n_events": events, "n_users": users, "n_items": items, "seed": seed}
        world = WorldConfig(**{k: v for k, v in opts.items() if v is not None})
    path, fresh = ensure_prepared(name, settings, force=force, world=world)
    ds = load_dataset(name, settings)
    counts = ds.manifest["counts"]
    state = "prepared" if fresh else "already up to date"
    click.echo(
        f"{name}: {state} at {path} ({counts['events']:,} events, {counts['users']:,} users, "
        f"{counts['items']:,} items)"
    )


@data.command("stats")
@click.option("--dataset", "name", type=click.Choice(sorted(DATASETS)))
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def stats_cmd(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Counts, sparsity, per-user and per-item distributions, time span."""
    ds = resolve_dataset(settings_of(ctx), name)
    ev = ds.events
    per_user = np.bincount(ev["user"].to_numpy(), minlength=ds.n_users)
    per_item = np.bincount(ev["item"].to_numpy(), minlength=ds.n_items)
    ts = ev["timestamp"].to_numpy()
    top = np.argsort(-per_item, kind="stable")[:5]
    out = {
        "dataset": ds.name,
        "events": len(ev),
        "users": ds.n_users,
        "items": ds.n_items,
        "density": len(ev) / max(ds.n_users * ds.n_items, 1),
        "events_per_user": {
            "min": int(per_user.min()),
            "median": float(np.median(per_user)),
            "mean": float(per_user.mean()),
            "max": int(per_user.max()),
        },
        "events_per_item": {
            "min": int(per_item.min()),
            "median": float(np.median(per_item)),
            "max": int(per_item.max()),
        },
        "item_groups": int(ds.items["group"].max()) + 1,
        "time_span": [str(np.datetime64(int(ts.min()), "s")), str(np.datetime64(int(ts.max()), "s"))]
        if ds.manifest["has_time"]
        else None,
        "top_items": [
            {"item": ds.catalog.raw_ids[i], "title": ds.catalog.title(int(i)), "events": int(per_item[i])}
            for i in top
        ],
    }
    if "split" in ev.columns:
        out["split"] = {str(k): int(v) for k, v in ev["split"].value_counts().sort_index().items()}
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
    settings = settings_of(ctx)
    for path in download_dataset(get_spec(name), settings.data_dir, base_url=base_url, force=force):
        click.echo(str(path))
