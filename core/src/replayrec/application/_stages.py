"""``report stages``: every stage of the cascade against the baselines, on the same test users, every row
built on the same upstream models (the rank row is the ranker the reranker re-ranks), each row also
without history masking so published (unmasked) numbers compare like for like."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from replayrec.application._datasets import open_dataset
from replayrec.application._evaluate import EvalOptions, evaluate_cascade, evaluate_plugin
from replayrec.application._published import PUBLISHED
from replayrec.application._train import TrainRequest, read_training_profile, train_model
from replayrec.artifacts import artifacts_dir, check_protocol, read_upstream
from replayrec.cascade import CascadeConfig, ranker_recall, trained_cascade
from replayrec.config import Settings
from replayrec.data import DATASETS, Dataset
from replayrec.errors import ConfigError
from replayrec.evaluation import (
    COLD_MAX,
    HEAVY_MIN,
    POPULAR_SHARE,
    EvalResult,
    build_split,
    markdown_table,
    paired_lift,
    slice_metrics,
    slice_rows,
    write_report,
)
from replayrec.plugins import kind_of
from replayrec.registry import resolve_model

__all__ = ["SLICE_NOTE", "STAGE_COLUMNS", "StagesReport", "StagesRequest", "stages_report"]

log = logging.getLogger("replayrec.application")

STAGE_COLUMNS = ("ndcg@10", "hr@10", "ndcg@20", "recall@200", "mrr", "gauc")
_LIFT_METRICS = ("ndcg@10", "hr@10")


@dataclass(frozen=True)
class StagesRequest:
    dataset: str | None = None
    #: the recall the ranker is trained behind: a plugin name, or ``None`` for the training profile's own
    #: (``din: {recall: …}``, one stage or several channels), else the rankers' default three channels
    recall: str | None = None
    rank: str = "din"
    rank_model: str | None = None
    rerank: str = "ranknet"  # "" for none
    rerank_model: str | None = None
    #: the evaluation protocol (default: the dataset's own); every model is trained on its training events
    protocol: str | None = None
    train_missing: bool = True
    train_profile: Path | None = None
    n_boot: int = 1000
    #: also evaluate every row with consumed items allowed (``--no-mask``), beside the masked one
    unmasked: bool = True
    progress: bool = False


@dataclass(frozen=True)
class StagesReport:
    dataset: str
    protocol: str
    depth: int
    rows: dict[str, dict[str, Any]]
    labels: dict[str, str]
    markdown: str
    lifts: list[tuple[str, dict[str, list[float]]]] = field(default_factory=list)
    report: dict[str, Path] = field(default_factory=dict)
    #: NDCG@10 per population slice (rows: slices, columns: stages), Markdown
    slices_markdown: str = ""


SLICE_NOTE = (
    f"cold users: at most {COLD_MAX} history events; heavy: at least {HEAVY_MIN}; popular items: the top "
    f"{POPULAR_SHARE:.0%} of items by training events, the rest long tail (a request is sliced by its first "
    "target); groups: the catalogue's item groups with 50+ requests"
)


def _slices(
    ds: Dataset,
    protocol: str,
    results: dict[str, EvalResult],
    rows: dict[str, dict[str, Any]],
    n_boot: int,
    seed: int,
) -> str:
    """Every row's NDCG@10 / HR@10 per population slice (``rows[key]["slices"]``); the Markdown summary."""
    split = build_split(ds, protocol)
    slices = slice_rows(split.test, split.fit, ds.catalog.groups)
    for key, res in results.items():
        if res.n_users != len(split.test):  # not evaluated on this split's requests: nothing to slice
            continue
        rows[key]["slices"] = slice_metrics(res, slices, n_boot=n_boot, seed=seed)
    keys = [k for k in results if "slices" in rows[k]]
    shown = [s for s in slices if not s.startswith("group:")]
    lines = [
        "| slice | users | " + " | ".join(rows[k]["label"] for k in keys) + " |",
        "|---|---:|" + "---:|" * len(keys),
    ]
    for s in shown:
        cells = [rows[k]["slices"][s]["ndcg@10"] for k in keys]
        n = rows[keys[0]]["slices"][s]["n_users"] if keys else 0
        lines.append(f"| {s} | {n:,} | " + " | ".join("–" if c is None else f"{c:.4f}" for c in cells) + " |")
    return "\n".join(lines)


def _model(settings: Settings, ds: Dataset, plugin: str, req: StagesRequest, config: dict[str, Any]) -> Path:
    """``<plugin>@latest``, trained now (with ``config``) when there is none and ``train_missing`` is set."""
    protocol = _protocol(ds, req)
    try:
        return resolve_model(f"{plugin}@latest", settings, ds.name, plugin, protocol=protocol)
    except ConfigError:
        if not req.train_missing:
            raise
    log.info(f"no trained {plugin} model for {ds.name} ({protocol}): training one")
    request = TrainRequest(plugin, ds.name, config, protocol=protocol, progress=req.progress)
    return train_model(settings, request, ds).artifact


def _protocol(ds: Dataset, req: StagesRequest) -> str:
    return req.protocol or DATASETS[ds.name].protocol


def _same_stage(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two resolved stage specs name the same plugin, the same model directory and the same options."""

    def norm(spec: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in spec.items() if k not in ("k", "quota")}
        if out.get("model"):
            out["model"] = str(Path(str(out["model"])).resolve())
        if "channels" in out:  # a multi-channel recall: the same channels, quotas included
            out["channels"] = [{**norm(c), "quota": c.get("quota")} for c in out["channels"]]
        return out

    return norm(a) == norm(b)


def _mismatch(rerank_path: Path, rank: str, rank_path: Path, rank_up: dict[str, Any]) -> str | None:
    """Why ``rerank_path`` does not re-rank exactly the rank row's model and recall (``None``: it does)."""
    up = read_upstream(rerank_path, "rerank")
    if int(up["recall_k"]) != int(rank_up["recall_k"]):
        return (
            f"{rerank_path} was trained on the top {up['recall_k']} recall candidates, the rank row ranks "
            f"the top {rank_up['recall_k']}"
        )
    theirs = up.get("rank", {})
    if not _same_stage(theirs, {"type": rank, "model": str(rank_path)}):
        return (
            f"{rerank_path} re-ranks {theirs.get('type')} model {theirs.get('model')}, but the rank row is "
            f"{rank} model {rank_path}"
        )
    if not _same_stage(up["recall"], rank_up["recall"]):
        return (
            f"{rerank_path} was trained behind recall {up['recall']}, the rank row behind {rank_up['recall']}"
        )
    return None


def _rerank_model(
    settings: Settings, ds: Dataset, req: StagesRequest, rank_path: Path, profile: dict[str, Any]
) -> Path:
    """The reranker over exactly the rank row's model: the one given (refused when it re-ranks another
    model), else the newest such artifact, else one trained now on it."""
    rank_up = read_upstream(rank_path, "rank")
    if req.rerank_model is not None:
        path = resolve_model(req.rerank_model, settings, ds.name, req.rerank, protocol=_protocol(ds, req))
        why = _mismatch(path, req.rank, rank_path, rank_up)
        if why:
            raise ConfigError(f"not like for like: {why}")
        return path
    root = artifacts_dir(settings, req.rerank, ds.name)
    for cand in sorted(root.glob("*/meta.json"), reverse=True) if root.is_dir() else []:
        try:
            check_protocol(cand.parent, _protocol(ds, req))
            why = _mismatch(cand.parent, req.rank, rank_path, rank_up)
        except ConfigError as exc:  # an unreadable artifact is passed over, not fatal to the search
            log.info(f"skipping {cand.parent}: {exc}")
            continue
        if why is None:
            return cand.parent.resolve()
    if not req.train_missing:
        raise ConfigError(
            f"not like for like: no trained {req.rerank} model re-ranks {req.rank} model {rank_path}; "
            f"train one (--train-missing) or give --rerank-model"
        )
    upstream = {
        "recall": rank_up["recall"],
        "recall_k": rank_up["recall_k"],
        "rank": {"type": req.rank, "model": str(rank_path)},
    }
    log.info(f"no {req.rerank} model over {rank_path.name}: training one")
    config = {**profile.get(req.rerank, {}), **upstream}
    request = TrainRequest(req.rerank, ds.name, config, protocol=_protocol(ds, req), progress=req.progress)
    return train_model(settings, request, ds).artifact


def _lift(base: EvalResult, other: EvalResult, n_boot: int, seed: int) -> dict[str, list[float]]:
    return {
        m: [round(x, 4) for x in paired_lift(base.per_user[m], other.per_user[m], n_boot, seed=seed)]
        for m in _LIFT_METRICS
    }


def _row(res: EvalResult, label: str, unmasked: EvalResult | None) -> dict[str, Any]:
    out = res.to_dict()
    out["label"] = label
    if unmasked is not None:
        d = unmasked.to_dict()
        out["unmasked"] = {k: d[k] for k in (*STAGE_COLUMNS, "ci") if k in d}
    return out


def _check_kinds(req: StagesRequest) -> None:
    if kind_of(req.rank) != "rank" or (req.recall is not None and kind_of(req.recall) != "recall"):
        raise ConfigError(
            f"--recall must name a recall plugin and --rank a rank plugin ({req.recall}, {req.rank})"
        )
    if req.rerank and kind_of(req.rerank) != "rerank":
        raise ConfigError(f"--rerank must name a rerank plugin, got {req.rerank!r}")


def _recall_spec(req: StagesRequest, profile: dict[str, Any]) -> dict[str, Any]:
    if req.recall is not None:
        return {"type": req.recall, "model": f"{req.recall}@latest"}
    given = profile.get(req.rank, {}).get("recall")
    if given is None:
        return ranker_recall()
    if not isinstance(given, dict):
        raise ConfigError(f"the training profile's {req.rank}.recall must be a mapping, got {given!r}")
    return dict(given)


def _rank_model(settings: Settings, ds: Dataset, req: StagesRequest, profile: dict[str, Any]) -> Path:
    if req.rank_model is not None:
        return resolve_model(req.rank_model, settings, ds.name, req.rank, protocol=_protocol(ds, req))
    recall = _recall_spec(req, profile)
    for channel in recall.get("channels", [recall]):  # train every channel's missing @latest model
        ref = str(channel.get("model") or "")
        if ref.endswith("@latest"):
            plugin = ref.removesuffix("@latest")
            _model(settings, ds, plugin, req, profile.get(plugin, {}))
    spec = {"recall": recall}
    return _model(settings, ds, req.rank, req, {**profile.get(req.rank, {}), **spec})


def _table(rows: dict[str, dict[str, Any]], labels: dict[str, str], ds_name: str) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for key, row in rows.items():
        table[labels[key]] = row
        if "unmasked" in row:
            table[f"{labels[key]}, consumed not masked"] = row["unmasked"]
    table.update(PUBLISHED.get(ds_name, {}))
    return table


def stages_report(settings: Settings, req: StagesRequest) -> StagesReport:
    """Popularity, item-CF, the recall alone (its top-K order), recall → rank over the same candidates and
    recall → rank → rerank over the rank stage's top list, on the same test users, with bootstrap CIs and
    each model stage's paired lift over the stage before it."""
    profile = read_training_profile(req.train_profile)
    _check_kinds(req)
    ds = open_dataset(settings, req.dataset)
    rank_path = _rank_model(settings, ds, req, profile)
    stacked = trained_cascade(req.rank, "rank", rank_path, {})
    depth = stacked.recall.k
    recall_name = " + ".join(c.type for c in stacked.recall.channels)
    recall_only = CascadeConfig.from_mapping(
        {
            "recall": stacked.recall.model_dump(),
            "rank": {"type": "passthrough", "k": depth},
            "rerank": {"type": "passthrough", "k": depth},
        }
    )
    base = EvalOptions(
        protocol=req.protocol, ks=(10, 20, 50, depth), n_boot=req.n_boot, progress=req.progress
    )
    runs: dict[str, tuple[str, Any]] = {
        "popularity": (
            "popularity (recent 30d)",
            lambda o: evaluate_plugin(
                settings, ds, "popularity", {"mode": "recent", "window_days": 30}, opts=o
            ),
        ),
        "itemcf": ("item-CF (itemknn)", lambda o: evaluate_plugin(settings, ds, "itemcf", opts=o)),
        "recall": (
            f"{recall_name} recall (top {depth} order)",
            lambda o: evaluate_cascade(settings, ds, recall_only, o, label="recall"),
        ),
        "recall+rank": (
            f"{recall_name} → {req.rank}",
            lambda o: evaluate_plugin(settings, ds, req.rank, model=rank_path, opts=o),
        ),
    }
    models = {"recall+rank": rank_path}
    if req.rerank:
        rerank_path = _rerank_model(settings, ds, req, rank_path, profile)
        models["recall+rank+rerank"] = rerank_path
        runs["recall+rank+rerank"] = (
            f"{recall_name} → {req.rank} → {req.rerank}",
            lambda o: evaluate_plugin(settings, ds, req.rerank, model=rerank_path, opts=o),
        )
    results: dict[str, EvalResult] = {}
    rows: dict[str, dict[str, Any]] = {}
    for key, (label, run) in runs.items():
        opts = base if key != "recall+rank+rerank" else replace(base, ks=(10, 20, 50))
        results[key] = run(opts)
        unmasked = run(replace(opts, mask=False)) if req.unmasked else None
        rows[key] = _row(results[key], label, unmasked)
    for key, path in models.items():
        rows[key]["model"] = str(path)
    lifts = [(f"{req.rank} over the {recall_name} ordering", "recall", "recall+rank", "lift_over_recall")]
    if req.rerank:
        lifts.append(
            (
                f"{req.rerank} over the {req.rank} ordering",
                "recall+rank",
                "recall+rank+rerank",
                "lift_over_rank",
            )
        )
    final = "recall+rank+rerank" if req.rerank else "recall+rank"
    for base_key, name in (("popularity", "recent popularity"), ("itemcf", "item-CF")):
        lifts.append((f"the full cascade over {name}", base_key, final, f"lift_over_{base_key}"))
    printed = []
    for what, before, after, key in lifts:
        rows[after][key] = _lift(results[before], results[after], req.n_boot, settings.seed)
        printed.append((what, rows[after][key]))
    # the quality bar: the full cascade above both baselines, the paired interval's lower end above zero
    lows = {m: [rows[final][f"lift_over_{b}"][m][1] for b in ("popularity", "itemcf")] for m in _LIFT_METRICS}
    rows[final]["beats_baselines"] = {m: all(lo > 0 for lo in lo_s) for m, lo_s in lows.items()}
    labels = {k: v[0] for k, v in runs.items()}
    protocol = str(rows["recall"]["protocol"])
    slices_md = _slices(ds, protocol, results, rows, req.n_boot, settings.seed)
    table = _table(rows, labels, ds.name)
    paths = write_report(
        table, settings.reports_dir, f"stages-{ds.name}", STAGE_COLUMNS, title=f"stages {ds.name}"
    )
    return StagesReport(
        ds.name,
        protocol,
        depth,
        rows,
        labels,
        markdown_table(table, STAGE_COLUMNS),
        printed,
        paths,
        slices_md,
    )
