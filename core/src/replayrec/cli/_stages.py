"""``replayrec report stages``: every stage of the cascade against the baselines, on the same test users."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from replayrec.cascade import CascadeConfig
from replayrec.cli._common import echo_json, info, resolve_dataset, settings_of
from replayrec.cli._eval import PUBLISHED, model_cascade, run_evaluation
from replayrec.config import Settings
from replayrec.data import DATASETS
from replayrec.errors import ConfigError
from replayrec.evaluation import EvalResult, markdown_table, paired_lift, write_report
from replayrec.plugins import kind_of
from replayrec.registry import resolve_model

__all__ = ["stages_cmd"]

_COLUMNS = ("ndcg@10", "hr@10", "ndcg@20", "recall@200", "mrr", "gauc")


def _model(settings: Settings, dataset: str, plugin: str, train: bool, config: dict[str, Any]) -> Path:
    """``<plugin>@latest``, trained now (with ``config``) when there is none and ``train`` is set."""
    try:
        return resolve_model(f"{plugin}@latest", settings, dataset, plugin)
    except ConfigError:
        if not train:
            raise
    from replayrec.cli._train import _train

    info(f"no trained {plugin} model for {dataset}: training one")
    out = _train(settings, plugin, dataset, None, None, config, None, 10_000)
    return Path(out["artifact"])


def _profile(path: Path | None) -> dict[str, dict[str, Any]]:
    if path is None:
        return {}
    if not path.is_file():
        raise ConfigError(f"training profile {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"training profile {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"training profile {path} must map plugin names to training configs")
    return data


def _row(res: EvalResult, label: str) -> dict[str, Any]:
    out = res.to_dict()
    out["label"] = label
    return out


def _lift(base: EvalResult, other: EvalResult, n_boot: int, seed: int) -> dict[str, list[float]]:
    return {
        m: [round(x, 4) for x in paired_lift(base.per_user[m], other.per_user[m], n_boot, seed=seed)]
        for m in ("ndcg@10", "hr@10")
    }


@click.command("stages")
@click.option("--dataset", "name", type=click.Choice(sorted(DATASETS)))
@click.option("--recall", "recall", default="lightgcn", show_default=True, help="trained recall plugin")
@click.option("--rank", "rank", default="din", show_default=True, help="trained rank plugin")
@click.option("--rank-model", help="rank model (artifact or PLUGIN@alias); default: RANK@latest")
@click.option(
    "--rerank", "rerank", default="ranknet", show_default=True, help="trained rerank plugin ('' for none)"
)
@click.option("--rerank-model", help="rerank model (artifact or PLUGIN@alias); default: RERANK@latest")
@click.option(
    "--train-missing/--no-train-missing",
    default=True,
    show_default=True,
    help="train models that are missing",
)
@click.option(
    "--train-config",
    "train_config",
    type=click.Path(path_type=Path),
    help="YAML {plugin: training config} for models trained here (e.g. configs/demo.yaml, a quick profile)",
)
@click.option("--bootstrap", "n_boot", type=int, default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def stages_cmd(
    ctx: click.Context,
    name: str | None,
    recall: str,
    rank: str,
    rank_model: str | None,
    rerank: str,
    rerank_model: str | None,
    train_missing: bool,
    train_config: Path | None,
    n_boot: int,
    as_json: bool,
) -> None:
    """Per-stage table on the dataset's own protocol: popularity, item-CF, the recall alone (its top-K
    ordering), recall → rank over the same candidates and recall → rank → rerank over the rank stage's top
    list, with bootstrap CIs and each model stage's paired lift over the stage before it."""
    settings = settings_of(ctx)
    profile = _profile(train_config)
    ds = resolve_dataset(settings, name)
    if kind_of(rank) != "rank" or kind_of(recall) != "recall":
        raise ConfigError(f"--recall must name a recall plugin and --rank a rank plugin ({recall}, {rank})")
    if rank_model is not None:
        rank_path = resolve_model(rank_model, settings, ds.name, rank)
    else:
        _model(settings, ds.name, recall, train_missing, profile.get(recall, {}))
        rec_spec = {"recall": {"type": recall, "model": f"{recall}@latest"}}
        rank_path = _model(settings, ds.name, rank, train_missing, {**profile.get(rank, {}), **rec_spec})
    stacked = model_cascade(rank, "rank", rank_path, {})
    depth = stacked.recall.k
    recall_only = CascadeConfig.from_mapping(
        {
            "recall": stacked.recall.model_dump(),
            "rank": {"type": "passthrough", "k": depth},
            "rerank": {"type": "passthrough", "k": depth},
        }
    )
    ks = (10, 20, 50, depth)
    common: dict[str, Any] = {"n_boot": n_boot, "ks": ks}
    res = {
        "popularity": run_evaluation(
            settings, ds, None, "popularity", {"mode": "recent", "window_days": 30}, **common
        ),
        "itemcf": run_evaluation(settings, ds, None, "itemcf", {}, **common),
        "recall": run_evaluation(settings, ds, None, None, {}, cascade_config=recall_only, **common),
        "recall+rank": run_evaluation(settings, ds, None, rank, {}, model=rank_path, **common),
    }
    labels = {
        "popularity": "popularity (recent 30d)",
        "itemcf": "item-CF (itemknn)",
        "recall": f"{recall} recall (top {depth} order)",
        "recall+rank": f"{recall} → {rank}",
    }
    if rerank:
        if kind_of(rerank) != "rerank":
            raise ConfigError(f"--rerank must name a rerank plugin, got {rerank!r}")
        if rerank_model is not None:
            rerank_path = resolve_model(rerank_model, settings, ds.name, rerank)
        else:
            ch = stacked.recall.channels[0]
            upstream = {
                "recall": {"type": ch.type, "model": ch.model, **ch.options},
                "rank": {"type": rank, "model": str(rank_path)},
            }
            rerank_path = _model(
                settings, ds.name, rerank, train_missing, {**profile.get(rerank, {}), **upstream}
            )
        res["recall+rank+rerank"] = run_evaluation(
            settings, ds, None, rerank, {}, model=rerank_path, n_boot=n_boot, ks=(10, 20, 50)
        )
        labels["recall+rank+rerank"] = f"{recall} → {rank} → {rerank}"
    out = {k: _row(v, labels[k]) for k, v in res.items()}
    out["recall+rank"]["lift_over_recall"] = _lift(res["recall"], res["recall+rank"], n_boot, settings.seed)
    out["recall+rank"]["model"] = str(rank_path)
    if rerank:
        full = res["recall+rank+rerank"]
        out["recall+rank+rerank"]["lift_over_rank"] = _lift(res["recall+rank"], full, n_boot, settings.seed)
        out["recall+rank+rerank"]["model"] = str(rerank_path)
    table = {labels[k]: v for k, v in out.items()}
    table.update(PUBLISHED.get(ds.name, {}))
    paths = write_report(
        table, settings.reports_dir, f"stages-{ds.name}", _COLUMNS, title=f"stages {ds.name}"
    )
    if as_json:
        echo_json(out)
        return
    protocol = out["recall"]["protocol"]
    click.echo(f"\n## {ds.name} — protocol {protocol}, 95% bootstrap CI over users\n")
    click.echo(markdown_table(table, _COLUMNS))
    lifts = [(f"{rank} over the {recall} ordering", out["recall+rank"]["lift_over_recall"])]
    if rerank:
        lifts.append((f"{rerank} over the {rank} ordering", out["recall+rank+rerank"]["lift_over_rank"]))
    for what, lift in lifts:
        click.echo(
            f"\n{what} (same users, paired bootstrap): "
            + ", ".join(f"{m} {v[0]:+.1%} [{v[1]:+.1%}, {v[2]:+.1%}]" for m, v in lift.items())
        )
    click.echo(f"gauc: popularity / item-CF over the catalogue; the cascade rows within the top-{depth} list")
    click.echo(f"report: {paths['md']} (+ .json, .png)")
