"""``replayrec train`` and ``replayrec bench train``."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

import click
import yaml

from replayrec.cli._common import echo_json, info, is_tty, parse_sets, resolve_dataset, settings_of
from replayrec.config import Settings
from replayrec.data import DATASETS
from replayrec.errors import ConfigError
from replayrec.evaluation import PROTOCOLS

__all__ = ["bench_train_cmd", "train_cmd"]


def _config(path: Path | None, sets: tuple[str, ...]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"training config {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"training config {path} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"training config {path} must be a mapping of keys to values")
        config.update(loaded)
    config.update(parse_sets(sets))
    return config


def _train(
    settings: Settings,
    plugin: str,
    name: str | None,
    protocol: str | None,
    epochs: int | None,
    config: dict[str, Any],
    tracking: str | None,
    val_users: int,
    workers: int | None = None,
    address: str | None = None,
    use_gpu: bool = False,
) -> dict[str, Any]:
    from replayrec.plugins import load_trainer
    from replayrec.training._runner import TrainOptions, run_training

    load_trainer(plugin)  # fail fast on an unknown plugin, before loading data
    ds = resolve_dataset(settings, name)
    info(f"training {plugin} on {ds.name}; tracking in MLflow")
    opts = TrainOptions(
        config=config,
        epochs=epochs,
        protocol=protocol,
        val_users=val_users,
        tracking_uri=tracking,
        progress=is_tty(),
    )
    if workers is None and address is None:
        return run_training(plugin, ds, settings, opts)
    from replayrec.training._ray import run_training_ray

    info(f"Ray Train: {workers or 1} worker(s) " + (f"on {address}" if address else "started locally"))
    return run_training_ray(plugin, ds, settings, opts, workers or 1, address, use_gpu)


@click.command("train")
@click.argument("plugin")
@click.option("--dataset", "name", type=click.Choice(sorted(DATASETS)))
@click.option("--protocol", type=click.Choice(PROTOCOLS), help="default: the dataset's own")
@click.option("--epochs", type=int, help="maximum epochs (early stopping on validation may end sooner)")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="training config YAML")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="training config value (repeatable)")
@click.option(
    "--tracking-uri", help="MLflow tracking URI [env MLFLOW_TRACKING_URI; default: sqlite in the state dir]"
)
@click.option("--val-users", type=int, default=10_000, show_default=True, help="validation users (sampled)")
@click.option("--workers", type=int, help="train under Ray Train with N workers (DDP)")
@click.option("--ray-address", "address", help="an existing Ray cluster (e.g. ray://head:10001; KubeRay)")
@click.option("--gpu", "use_gpu", is_flag=True, help="Ray Train workers use one GPU each")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def train_cmd(
    ctx: click.Context,
    plugin: str,
    name: str | None,
    protocol: str | None,
    epochs: int | None,
    config_path: Path | None,
    sets: tuple[str, ...],
    tracking_uri: str | None,
    val_users: int,
    workers: int | None,
    address: str | None,
    use_gpu: bool,
    as_json: bool,
) -> None:
    """Train a plugin with Lightning, tracked in MLflow; saves a model artifact and registers a version.
    With --workers N (or --ray-address) the same LightningModule runs under Ray Train."""
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    out = _train(
        settings_of(ctx),
        plugin,
        name,
        protocol,
        epochs,
        _config(config_path, sets),
        tracking_uri,
        val_users,
        workers,
        address,
        use_gpu,
    )
    out.pop("history")
    if as_json:
        echo_json(out)
        return
    for k, v in out.items():
        click.echo(f"{k:>18}: {v}")


@click.command("train")
@click.argument("plugin")
@click.option("--dataset", "name", type=click.Choice(sorted(DATASETS)))
@click.option("--epochs", type=int)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE")
@click.option("--repeat", type=int, default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path))
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
    from replayrec.cli._eval import run_evaluation

    settings = settings_of(ctx)
    runs = []
    with tempfile.TemporaryDirectory(prefix="replayrec-bench-") as tmp:
        tracking = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        for _ in range(repeat):
            runs.append(_train(settings, plugin, name, None, epochs, parse_sets(sets), tracking, 10_000))
    last = runs[-1]
    ds = resolve_dataset(settings, last["dataset"])
    test = run_evaluation(
        settings, ds, last["protocol"], plugin, {}, model=last["artifact"], n_boot=200
    ).to_dict()
    result = {
        "plugin": plugin,
        "dataset": last["dataset"],
        "protocol": last["protocol"],
        "repeats": repeat,
        "seconds_per_epoch_median": statistics.median(r["seconds_per_epoch"] for r in runs),
        "train_seconds_median": statistics.median(r["train_seconds"] for r in runs),
        "epochs_run": last["epochs_run"],
        "best_epoch": last["best_epoch"],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "val": last["val"],
        "test": {k: test[k] for k in ("ndcg@10", "hr@10", "recall@20", "ndcg@20", "recall@200") if k in test},
        "test_ci": {
            k: test["ci"][k] for k in ("ndcg@10", "hr@10", "recall@20", "ndcg@20") if k in test["ci"]
        },
        "artifact": last["artifact"],
    }
    from replayrec.cli._bench import _emit

    _emit(result, as_json, out)
