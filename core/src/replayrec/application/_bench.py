"""Benchmarks that return numbers (medians over repeats) beside a baseline measured in the same run."""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from replayrec.application._datasets import open_dataset
from replayrec.application._evaluate import EvalOptions, evaluate_plugin
from replayrec.application._timing import one_core, percentiles, time_calls
from replayrec.application._train import TrainRequest, train_model
from replayrec.artifacts import artifact_stage_config
from replayrec.cascade import Cascade, load_cascade
from replayrec.config import Settings
from replayrec.data import DATASETS, Dataset, WorldConfig, generate_world
from replayrec.errors import ConfigError
from replayrec.evaluation import EvalSet, ProtocolSplit, build_requests, build_split, evaluate
from replayrec.features import FeatureSpec
from replayrec.plugins import build_stage, kind_of
from replayrec.registry import StageResolver, resolve_model
from replayrec.stages import Candidate, Rank, Recall, Request, Stage, StageContext

__all__ = [
    "bench_cascade",
    "bench_evaluate",
    "bench_rank",
    "bench_recall",
    "bench_synthetic",
    "bench_train",
]

log = logging.getLogger("replayrec.application")


def _per_user_reference(stage: Recall, ev: EvalSet, n_users: int, history_len: int | None) -> float:
    """The usual per-user loop: score, mask, full argsort, find the target; seconds for ``n_users``."""
    t0 = time.perf_counter()
    for r in range(n_users):
        req = build_requests(ev, np.array([r]), history_len)[0]
        s = np.asarray(stage.score_all([req])[0], dtype=np.float64).copy()
        s[req.exclude] = -np.inf
        order = np.argsort(-s, kind="stable")
        pos = np.flatnonzero(np.isin(order, ev.targets(r)))
        _ = (1.0 / np.log2(pos + 2.0))[pos < 10].sum()
    return time.perf_counter() - t0


def _stage(kind: str, plugin: str, ds: Dataset, split: ProtocolSplit, seed: int, path: Path | None) -> Stage:
    if kind_of(plugin) != kind:
        raise ConfigError(f"{plugin} is not a {kind} plugin")
    opts = artifact_stage_config(path, ds.name, plugin) if path is not None else {}
    return build_stage(kind, plugin, opts, StageContext(ds.catalog, split.fit, artifact=path, seed=seed))


def _recall(plugin: str, ds: Dataset, split: ProtocolSplit, seed: int, path: Path | None = None) -> Recall:
    stage = _stage("recall", plugin, ds, split, seed, path)
    if not isinstance(stage, Recall):
        raise ConfigError(f"{plugin} is not a recall plugin")
    return stage


def _rank(plugin: str, ds: Dataset, split: ProtocolSplit, seed: int, path: Path | None = None) -> Rank:
    stage = _stage("rank", plugin, ds, split, seed, path)
    if not isinstance(stage, Rank):
        raise ConfigError(f"{plugin} is not a rank plugin")
    return stage


def bench_evaluate(
    settings: Settings,
    dataset: str | None,
    plugin: str = "popularity",
    repeat: int = 3,
    reference_users: int = 500,
) -> dict[str, Any]:
    """Full-ranking evaluation speed (vectorised) against a per-user argsort loop, same model, same run."""
    ds = open_dataset(settings, dataset)
    protocol = DATASETS[ds.name].protocol
    split = build_split(ds, protocol)
    stage = _recall(plugin, ds, split, settings.seed)
    times = []
    for i in range(repeat):
        t0 = time.perf_counter()
        evaluate(stage, split.test, n_items=ds.n_items, history_len=split.history_len, n_boot=0)
        times.append(time.perf_counter() - t0)
        log.info(f"run {i + 1}/{repeat}: {times[-1]:.2f}s")
    n_ref = min(reference_users, len(split.test))
    ref = [_per_user_reference(stage, split.test, n_ref, split.history_len) for _ in range(repeat)]
    per_user_ref = statistics.median(ref) / n_ref
    med = statistics.median(times)
    return {
        "dataset": ds.name,
        "protocol": protocol,
        "plugin": plugin,
        "users": len(split.test),
        "items": ds.n_items,
        "repeats": repeat,
        "vectorised_median_s": round(med, 3),
        "vectorised_runs_s": [round(t, 3) for t in times],
        "reference_per_user_loop_s (extrapolated)": round(per_user_ref * len(split.test), 1),
        "reference_users_timed": n_ref,
        "speedup": round(per_user_ref * len(split.test) / med, 1),
    }


def bench_synthetic(events: int, users: int, items: int, repeat: int = 3) -> dict[str, Any]:
    """Time the synthetic world generator."""
    cfg = WorldConfig(n_events=events, n_users=users, n_items=items, n_topics=100)
    times, kept = [], 0
    for i in range(repeat):
        t0 = time.perf_counter()
        w = generate_world(cfg.model_copy(update={"seed": i}))
        times.append(time.perf_counter() - t0)
        kept = len(w.events)
        log.info(f"run {i + 1}/{repeat}: {times[-1]:.1f}s, {kept:,} events after de-duplication")
    med = statistics.median(times)
    return {
        "events_requested": events,
        "events_after_dedup": kept,
        "users": users,
        "items": items,
        "repeats": repeat,
        "median_s": round(med, 2),
        "runs_s": [round(t, 2) for t in times],
        "events_per_s": int(events / med),
    }


def _test_requests(split: ProtocolSplit, n: int, seed: int) -> list[Request]:
    rows = np.random.default_rng(seed).choice(len(split.test), min(n, len(split.test)), replace=False)
    return build_requests(
        split.test, np.sort(rows).astype(np.int64), split.history_len or FeatureSpec().recent_events
    )


def _retrieve(stage: Recall, k: int, request: Request) -> list[Candidate]:
    return stage.retrieve(request, k)


def _score(stage: Rank, work: tuple[Request, list[Candidate]]) -> list[Candidate]:
    return stage.score(work[0], work[1])


def bench_recall(
    settings: Settings,
    plugin: str,
    dataset: str | None = None,
    model: str | None = None,
    k: int = 200,
    n_requests: int = 2000,
    baseline: str = "itemcf",
) -> dict[str, Any]:
    """Per-request ``retrieve(request, k)`` latency on one core, beside a baseline recall plugin."""
    ds = open_dataset(settings, dataset)
    path = resolve_model(model, settings, ds.name, plugin) if model is not None else None
    split = build_split(ds, DATASETS[ds.name].protocol)
    requests = _test_requests(split, n_requests, settings.seed)
    result: dict[str, Any] = {"dataset": ds.name, "items": ds.n_items, "k": k, "requests": len(requests)}
    arms = ((plugin, plugin, path), (f"{baseline} (baseline)", baseline, None))
    stages = {label: _recall(name, ds, split, settings.seed, p) for label, name, p in arms}
    with one_core():  # after building: a stage that imports torch is limited too
        for label, stage in stages.items():
            result[label] = percentiles(time_calls(partial(_retrieve, stage, k), requests, 1))
    return result


def _rank_requests(
    split: ProtocolSplit, n: int, history: int, n_cands: int, n_items: int, seed: int
) -> list[tuple[Request, list[Candidate]]]:
    """Test requests with (preferably) ``history`` past items, each with ``n_cands`` allowed candidates."""
    ev = split.test
    rng = np.random.default_rng(seed)
    lens = np.diff(ev.hist_ptr)
    long_enough = np.flatnonzero(lens >= history)
    pool = long_enough if long_enough.size else np.arange(len(ev))
    rows = np.sort(rng.choice(pool, n, replace=pool.size < n)).astype(np.int64)
    out = []
    for req in build_requests(ev, rows, history):
        allowed = np.setdiff1d(np.arange(n_items), req.exclude)
        items = rng.choice(allowed, min(n_cands, allowed.size), replace=False)
        out.append((req, [Candidate(int(i), float(-j), {"recall": float(-j)}) for j, i in enumerate(items)]))
    return out


def bench_rank(
    settings: Settings,
    plugin: str,
    dataset: str | None = None,
    model: str | None = None,
    n_cands: int = 200,
    history: int = 50,
    n_requests: int = 1000,
    repeat: int = 3,
) -> dict[str, Any]:
    """Per-request ``score(request, candidates)`` latency of a rank plugin on one core, beside the
    pass-through rank (the cascade without a ranker) measured in the same run."""
    if kind_of(plugin) != "rank":
        raise ConfigError(f"{plugin} is not a rank plugin")
    ds = open_dataset(settings, dataset)
    path = resolve_model(model, settings, ds.name, plugin) if model is not None else None
    split = build_split(ds, DATASETS[ds.name].protocol)
    work = _rank_requests(split, n_requests, history, n_cands, ds.n_items, settings.seed)
    result: dict[str, Any] = {
        "dataset": ds.name,
        "candidates": n_cands,
        "history_median": float(np.median([r.history.size for r, _ in work])),
        "requests": len(work),
        "repeats": repeat,
    }
    arms = ((plugin, plugin, path), ("passthrough (baseline)", "passthrough", None))
    stages = {label: _rank(name, ds, split, settings.seed, p) for label, name, p in arms}
    with one_core():  # after building: a stage that imports torch is limited too
        for label, stage in stages.items():
            stage.warmup()
            result[label] = percentiles(time_calls(partial(_score, stage), work, repeat))
    return result


def _cascade_times(cascade: Cascade, requests: list[Request], repeat: int) -> dict[str, dict[str, float]]:
    """Per-request milliseconds of each stage and of the whole cascade (medians over ``repeat`` runs)."""
    cfg = cascade.config
    for r in requests[:20]:
        cascade.recommend(r)
    parts = ("recall", "rank", "rerank+rules", "total")
    runs: dict[str, list[list[float]]] = {key: [] for key in parts}
    for _ in range(repeat):
        t: dict[str, list[float]] = {key: [] for key in parts}
        for r in requests:
            t0 = time.perf_counter()
            cands = cascade.recall.retrieve(r, cfg.recall.k)
            t1 = time.perf_counter()
            scored = cascade.rank.score(r, cands)[: cfg.rank.k]
            t2 = time.perf_counter()
            cascade.finish(r, scored, cfg.rerank.k)
            t3 = time.perf_counter()
            for key, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
                t[key].append(v * 1e3)
        for key in parts:
            runs[key].append(t[key])
    return {key: {k: v for k, v in percentiles(runs[key]).items() if k != "mean_ms"} for key in parts}


def bench_cascade(
    settings: Settings,
    config: Path,
    dataset: str | None = None,
    baseline: Path | None = None,
    n_requests: int = 1000,
    repeat: int = 3,
) -> dict[str, Any]:
    """End-to-end offline cascade latency per request (recall → rank → rerank + rules) on one core, with
    each stage's share, beside a baseline cascade (default: the built-in one) measured in the same run."""
    configs = [
        (str(config), load_cascade(config)),
        (f"{baseline or 'built-in'} (baseline)", load_cascade(baseline)),
    ]
    ds = open_dataset(settings, dataset)
    split = build_split(ds, DATASETS[ds.name].protocol)
    requests = _test_requests(split, n_requests, settings.seed)
    resolver = StageResolver(settings, ds.name, StageContext(ds.catalog, split.fit, seed=settings.seed))
    result: dict[str, Any] = {"dataset": ds.name, "requests": len(requests), "repeats": repeat}
    cascades = {label: Cascade.build(cfg, resolver.context_for) for label, cfg in configs}
    with one_core():  # after building: a stage that imports torch is limited too
        for label, cascade in cascades.items():
            cascade.warmup()
            cfg = cascade.config
            result[label] = {"counts": f"{cfg.recall.k} -> {cfg.rank.k} -> {cfg.rerank.k}"}
            result[label].update(_cascade_times(cascade, requests, repeat))
    return result


def bench_train(
    settings: Settings,
    plugin: str,
    dataset: str | None = None,
    epochs: int | None = None,
    config: dict[str, Any] | None = None,
    repeat: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """Seconds per epoch, peak memory, epochs to converge, validation and test metrics of training runs
    (tracked in a throw-away MLflow store)."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="replayrec-bench-") as tmp:
        tracking = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        request = TrainRequest(
            plugin, dataset, config or {}, epochs=epochs, tracking_uri=tracking, progress=progress
        )
        for _ in range(repeat):
            runs.append(train_model(settings, request))
    last = runs[-1]
    ds = open_dataset(settings, last.dataset)
    opts = EvalOptions(protocol=last.protocol, n_boot=200, progress=progress)
    test = evaluate_plugin(settings, ds, plugin, model=last.artifact, opts=opts).to_dict()
    return {
        "plugin": plugin,
        "dataset": last.dataset,
        "protocol": last.protocol,
        "repeats": repeat,
        "seconds_per_epoch_median": statistics.median(r.seconds_per_epoch for r in runs),
        "train_seconds_median": statistics.median(r.train_seconds for r in runs),
        "epochs_run": last.epochs_run,
        "best_epoch": last.best_epoch,
        "peak_rss_mb": max(r.peak_rss_mb for r in runs),
        "val": last.val,
        "test": {k: test[k] for k in ("ndcg@10", "hr@10", "recall@20", "ndcg@20", "recall@200") if k in test},
        "test_ci": {
            k: test["ci"][k] for k in ("ndcg@10", "hr@10", "recall@20", "ndcg@20") if k in test["ci"]
        },
        "artifact": str(last.artifact),
    }
