"""``replayrec train`` and ``replayrec bench train``."""

from __future__ import annotations

from pathlib import Path

import click

from replayrec.application import TrainRequest, bench_train, read_training_config, train_model
from replayrec.cli._common import (
    dataset_option,
    echo_json,
    emit,
    is_tty,
    json_option,
    out_option,
    parse_sets,
    protocol_option,
    sets_option,
    settings_of,
    tracking_option,
)

__all__ = ["bench_train_cmd", "train_cmd"]


@click.command("train")
@click.argument("plugin")
@dataset_option
@protocol_option
@click.option("--epochs", type=int, help="maximum epochs (early stopping on validation may end sooner)")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="training config YAML")
@sets_option
@tracking_option
@click.option("--val-users", type=int, default=10_000, show_default=True, help="validation users (sampled)")
@click.option("--workers", type=int, help="train under Ray Train with N workers (DDP)")
@click.option("--ray-address", "address", help="an existing Ray cluster (e.g. ray://head:10001; KubeRay)")
@click.option("--gpu", "use_gpu", is_flag=True, help="Ray Train workers use one GPU each")
@json_option
@click.pass_context
def train_cmd(
    ctx: click.Context,
    plugin: str,
    name: str | None,
    protocol: str | None,
    epochs: int | None,
    config_path: Path | None,
    sets: tuple[str, ...],
    tracking: str | None,
    val_users: int,
    workers: int | None,
    address: str | None,
    use_gpu: bool,
    as_json: bool,
) -> None:
    """Train a plugin with Lightning, tracked in MLflow; saves a model artifact and registers a version.
    With --workers N (or --ray-address) the same LightningModule runs under Ray Train."""
    request = TrainRequest(
        plugin,
        name,
        read_training_config(config_path, parse_sets(sets)),
        protocol=protocol,
        epochs=epochs,
        val_users=val_users,
        tracking_uri=tracking,
        progress=is_tty(),
        workers=workers,
        ray_address=address,
        use_gpu=use_gpu,
    )
    out = train_model(settings_of(ctx), request).to_dict()
    if as_json:
        echo_json(out)
        return
    for k, v in out.items():
        click.echo(f"{k:>18}: {v}")


@click.command("train")
@click.argument("plugin")
@dataset_option
@click.option("--epochs", type=int)
@sets_option
@click.option("--repeat", type=int, default=1, show_default=True)
@json_option
@out_option
@click.pass_context
def bench_train_cmd(
    ctx: click.Context,
    plugin: str,
    name: str | None,
    epochs: int | None,
    sets: tuple[str, ...],
    repeat: int,
    as_json: bool,
    out: Path | None,
) -> None:
    """Seconds per epoch, peak memory, epochs to converge, validation and test metrics of a training run."""
    result = bench_train(settings_of(ctx), plugin, name, epochs, parse_sets(sets), repeat, progress=is_tty())
    emit(result, as_json, out)
