"""``replayrec evaluate``, ``replayrec recommend``, ``replayrec report baselines``."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from replayrec.cascade import Cascade, CascadeConfig, load_cascade
from replayrec.cli._common import echo_json, info, is_tty, parse_sets, resolve_dataset, settings_of
from replayrec.config import Settings
from replayrec.data import DATASETS, Dataset, default_dataset
from replayrec.errors import ConfigError
from replayrec.evaluation import (
    DEFAULT_KS,
    PROTOCOLS,
    EvalResult,
    ListFn,
    build_split,
    evaluate,
    markdown_table,
    write_report,
)
from replayrec.plugins import build_stage, kind_of, load_stage_class, parse_config
from replayrec.registry import StageResolver, artifact_stage_config, resolve_model
from replayrec.stages import Candidate, Recall, Request, StageContext
from replayrec.training import ARTIFACT_UPSTREAM

__all__ = ["evaluate_cmd", "recommend_cmd", "report"]

#: published results on exactly these files (``../shared/data/README.md``)
PUBLISHED: dict[str, dict[str, dict[str, float]]] = {
    "amazon-books-2014-1m": {
        "SASRec++ (published)": {"ndcg@10": 0.0301, "hr@10": 0.0664},
        "HSTU (published)": {"ndcg@10": 0.0327, "hr@10": 0.0572},
        "SPRINT, KDD 2026 (published)": {"ndcg@10": 0.0389, "hr@10": 0.0709},
    },
    "amazon-book-kgat": {
        "BPR-MF (published)": {"recall@20": 0.1244, "ndcg@20": 0.0658},
        "LightGCN (published)": {"recall@20": 0.1398, "ndcg@20": 0.0736},
        "SGL (published)": {"recall@20": 0.1445, "ndcg@20": 0.0766},
    },
}


def _ks(raw: str) -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(x) for x in raw.split(",") if x.strip()}))
    except ValueError:
        raise ConfigError(f"--ks expects comma-separated integers, got {raw!r}") from None
    if not ks or ks[0] <= 0:
        raise ConfigError(f"--ks needs positive cut-offs, got {raw!r}")
    return ks


def model_cascade(plugin: str, kind: str, model: Path, options: dict[str, Any]) -> CascadeConfig:
    """The cascade a trained rank / rerank model runs in: the upstream stages it was trained on (its
    ``upstream.json``), itself with ``options`` on top, pass-through after it; every stage keeps all
    ``recall_k`` candidates so the whole list is evaluated."""
    file = model / ARTIFACT_UPSTREAM
    if not file.is_file():
        raise ConfigError(f"{model} has no {ARTIFACT_UPSTREAM}: not a trained {kind} model")
    up = json.loads(file.read_text())
    depth = int(up["recall_k"])
    layout: dict[str, Any] = {"recall": {"k": depth, "channels": [up["recall"]]}}
    if kind == "rank":
        spec: dict[str, Any] = {"type": plugin, "model": str(model), "k": depth, **options}
        layout.update(rank=spec, rerank={"type": "passthrough", "k": depth})
    else:  # a reranker reorders the rank stage's top rank_k
        depth = int(up["rank_k"])
        spec = {"type": plugin, "model": str(model), "k": depth, **options}
        layout.update(rank={**up["rank"], "k": depth}, rerank=spec)
    return CascadeConfig.from_mapping(layout, source=f"cascade of {model}")


def run_evaluation(
    settings: Settings,
    ds: Dataset,
    protocol: str | None,
    plugin: str | None,
    options: dict[str, Any],
    *,
    cascade_path: Path | None = None,
    cascade_config: CascadeConfig | None = None,
    split_name: str = "test",
    ks: tuple[int, ...] = DEFAULT_KS,
    model: str | Path | None = None,
    history_len: int | None = None,
    mask: bool = True,
    n_boot: int = 1000,
    holdout: float = 0.1,
) -> EvalResult:
    """Fit ``plugin`` (or the cascade) on the protocol's training events and evaluate it.

    A recall plugin is evaluated by exact full ranking; a rank / rerank plugin (``model`` required) in the
    cascade of the recall it was trained on, over the whole candidate list; a cascade YAML as configured."""
    protocol = protocol or DATASETS[ds.name].protocol
    split = build_split(ds, protocol, history_len=history_len, mask_history=mask, holdout=holdout)
    hist = split.history_len
    ev = split.test if split_name == "test" else split.valid
    if ev is None:
        raise ConfigError(f"protocol {protocol} has no {split_name} split")
    ctx = StageContext(catalog=ds.catalog, train=split.fit, seed=settings.seed)
    resolver = StageResolver(settings, ds.name, ctx)
    model_path = resolve_model(model, settings, ds.name, plugin) if model is not None else None
    kind = kind_of(plugin) if plugin is not None else None
    t0 = time.perf_counter()
    evaluated: Recall | ListFn
    if cascade_path is not None:
        cascade_config = load_cascade(cascade_path)
        label = f"cascade:{cascade_path}"
    elif cascade_config is not None:
        label = "cascade"
    elif plugin is None:
        raise ConfigError("give --plugin NAME or --config cascade.yaml")
    elif kind == "recall":
        if model_path is not None:
            options = {**artifact_stage_config(model_path, ds.name, plugin), **options}
        stage = build_stage("recall", plugin, options, replace(ctx, artifact=model_path))
        if not isinstance(stage, Recall):
            raise ConfigError(f"{plugin} is not a recall plugin")
        evaluated, label = stage, plugin
    else:
        if model_path is None:
            raise ConfigError(f"{kind} plugin {plugin!r} needs --model <artifact | {plugin}@<alias>>")
        cascade_config = model_cascade(plugin, str(kind), model_path, options)
        label = plugin
    if cascade_config is not None:
        cascade = Cascade.build(cascade_config, resolver.context_for)
        depth = cascade_config.rerank.k
        ks = tuple(k for k in ks if k <= depth) or (depth,)
        evaluated = _cascade_lists(cascade)
    fit_s = time.perf_counter() - t0
    info(
        f"{label}: fitted on {len(split.fit):,} events in {fit_s:.1f}s; "
        f"evaluating {len(ev):,} users ({protocol})"
    )
    res = evaluate(
        evaluated,
        ev,
        n_items=ds.n_items,
        history_len=hist,
        ks=ks,
        n_boot=n_boot,
        seed=settings.seed,
        progress=is_tty(),
        desc=label,
    )
    res.meta = {
        "dataset": ds.name,
        "protocol": protocol,
        "split": split_name,
        "plugin": label,
        "config": options,
        "model": str(model_path) if model_path is not None else None,
        "history_len": hist,
        "mask_history": mask,
        "fit_seconds": round(fit_s, 3),
    }
    return res


def _cascade_lists(cascade: Cascade) -> ListFn:
    def run(requests: Sequence[Request], depth: int) -> list[list[Candidate]]:
        return cascade.recommend_batch(requests, k=depth)

    return run


@click.command("evaluate")
@click.option("--dataset", "name", type=click.Choice(sorted(DATASETS)))
@click.option(
    "--protocol", type=click.Choice(PROTOCOLS), help="default: the dataset's own (loo, or given for KGAT)"
)
@click.option(
    "--plugin", help="plugin to evaluate: a recall plugin, or a trained rank/rerank plugin in its cascade"
)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="plugin config value (repeatable)")
@click.option(
    "--config", "cascade_path", type=click.Path(path_type=Path), help="evaluate a whole cascade YAML"
)
@click.option(
    "--split", "split_name", type=click.Choice(["test", "valid"]), default="test", show_default=True
)
@click.option("--ks", default=",".join(map(str, DEFAULT_KS)), show_default=True)
@click.option(
    "--history-len", type=int, help="history items given to the model (default 50; all for 'given')"
)
@click.option("--no-mask", is_flag=True, help="allow already-consumed items in the ranking")
@click.option(
    "--bootstrap", "n_boot", type=int, default=1000, show_default=True, help="bootstrap resamples (0: none)"
)
@click.option("--holdout", type=float, default=0.1, show_default=True, help="temporal: held-out fraction")
@click.option(
    "--model", "model", help="trained model: an artifact directory or <plugin>@<alias> (e.g. din@latest)"
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def evaluate_cmd(
    ctx: click.Context,
    name: str | None,
    protocol: str | None,
    plugin: str | None,
    sets: tuple[str, ...],
    cascade_path: Path | None,
    split_name: str,
    ks: str,
    history_len: int | None,
    no_mask: bool,
    n_boot: int,
    holdout: float,
    model: str | None,
    as_json: bool,
) -> None:
    """Evaluate a recall plugin (exact full ranking), a trained rank/rerank model in its cascade, or a
    cascade YAML, on a dataset and protocol."""
    settings = settings_of(ctx)
    options = parse_sets(sets)
    if plugin is not None and model is None:  # fail fast, before any data is loaded
        parse_config(load_stage_class(kind_of(plugin), plugin), options)
    ds = resolve_dataset(settings, name)
    res = run_evaluation(
        settings,
        ds,
        protocol,
        plugin,
        options,
        cascade_path=cascade_path,
        split_name=split_name,
        ks=_ks(ks),
        history_len=history_len,
        mask=not no_mask,
        n_boot=n_boot,
        holdout=holdout,
        model=model,
    )
    out = res.to_dict()
    stem = f"evaluate-{ds.name}-{out['protocol']}-{(plugin or 'cascade')}"
    paths = write_report({out["plugin"]: out}, settings.reports_dir, stem, title=stem)
    if as_json:
        echo_json(out)
    else:
        click.echo(markdown_table({out["plugin"]: out}))
        click.echo(f"{res.n_users:,} users, {res.seconds:.1f}s; report: {paths['md']}")


@click.command("recommend")
@click.option("--user", "user", required=True, help="the user's id as in the dataset (raw id)")
@click.option("--dataset", "name", type=click.Choice(sorted(DATASETS)))
@click.option(
    "--config", "cascade_path", type=click.Path(path_type=Path), help="cascade YAML (default: built-in)"
)
@click.option("-k", "--k", "k", type=int, default=10, show_default=True)
@click.option(
    "--at", "at", type=int, help="request time, Unix seconds (default: after the user's last event)"
)
@click.option("--explain", is_flag=True, help="each stage's score and the reasons (model, business rules)")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def recommend_cmd(
    ctx: click.Context,
    user: str,
    name: str | None,
    cascade_path: Path | None,
    k: int,
    at: int | None,
    explain: bool,
    as_json: bool,
) -> None:
    """Run the configured cascade offline for one user, fitted on all of the dataset's events."""
    settings = settings_of(ctx)
    ds = resolve_dataset(settings, name)
    uid = ds.user_id(user)
    if k <= 0:
        raise ConfigError(f"-k must be positive, got {k}")
    data = ds.interactions()
    sctx = StageContext(catalog=ds.catalog, train=data, seed=settings.seed)
    cascade = Cascade.build(load_cascade(cascade_path), StageResolver(settings, ds.name, sctx).context_for)
    items, times = data.sequences.of(uid)
    ts = at if at is not None else int(times.max()) + 86_400 if times.size else 0
    req = Request.create(uid, ts, items[-50:], times[-50:], exclude=items)
    recs = cascade.recommend(req, k=k)
    rows: list[dict[str, Any]] = [
        {
            "rank": i + 1,
            "item": str(ds.catalog.raw_ids[c.item]),
            "title": ds.catalog.title(c.item),
            "score": round(c.score, 6),
            "scores": {s: round(v, 6) for s, v in c.scores.items()},
            "reasons": list(c.reasons),
        }
        for i, c in enumerate(recs)
    ]
    if as_json:
        echo_json({"user": user, "dataset": ds.name, "history": len(items), "recommendations": rows})
        return
    click.echo(
        f"user {user} ({len(items)} past events, "
        f"last: {ds.catalog.title(int(items[-1])) if items.size else '-'})"
    )
    for r in rows:
        click.echo(f"{r['rank']:>3}. {r['title'][:70]:<70} score {r['score']:.4f}  [{r['item']}]")
        if explain:
            click.echo("       " + " · ".join(f"{s} {v:.4f}" for s, v in r["scores"].items()))
            for why in r["reasons"]:
                click.echo(f"       {why}")


@click.group()
def report() -> None:
    """Reports that combine several evaluations."""


def _baseline_runs(ds_name: str) -> list[tuple[str, str, dict[str, Any]]]:
    runs: list[tuple[str, str, dict[str, Any]]] = [
        ("popularity (all-time)", "popularity", {"mode": "all_time"})
    ]
    if DATASETS[ds_name].protocol != "given":
        runs.append(("popularity (recent 30d)", "popularity", {"mode": "recent", "window_days": 30}))
    runs.append(("itemcf (itemknn)", "itemcf", {}))
    return runs


@report.command("baselines")
@click.option(
    "--dataset",
    "names",
    multiple=True,
    type=click.Choice(sorted(DATASETS)),
    help="default: the default dataset, plus amazon-book-kgat when its files are present",
)
@click.option("--bootstrap", "n_boot", type=int, default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def baselines_cmd(ctx: click.Context, names: tuple[str, ...], n_boot: int, as_json: bool) -> None:
    """Evaluate the baselines on each dataset's own protocol, beside the published results."""
    settings = settings_of(ctx)
    if not names:
        first, why = default_dataset(settings)
        info(why)
        kgat = DATASETS["amazon-book-kgat"]
        extra = (
            ["amazon-book-kgat"]
            if all((kgat.directory(settings.data_dir) / f.name).is_file() for f in kgat.files)
            else []
        )
        names = (first, *extra)
    everything: dict[str, Any] = {}
    for name in names:
        ds = resolve_dataset(settings, name)
        rows: dict[str, Any] = {}
        for label, plugin, opts in _baseline_runs(name):
            rows[label] = run_evaluation(settings, ds, None, plugin, opts, n_boot=n_boot).to_dict()
        rows.update(PUBLISHED.get(name, {}))
        protocol = DATASETS[name].protocol
        cols = ("ndcg@10", "hr@10", "recall@20", "ndcg@20", "recall@200", "mrr", "gauc")
        paths = write_report(
            rows, settings.reports_dir, f"baselines-{name}", cols, title=f"{name} ({protocol})"
        )
        everything[name] = rows
        if not as_json:
            click.echo(f"\n## {name} — protocol {protocol}, 95% bootstrap CI over users\n")
            click.echo(markdown_table(rows, cols))
            click.echo(f"\nreport: {paths['md']} (+ .json, .png)")
    if as_json:
        echo_json(everything)
