"""``replayrec bench …``: timings that print numbers (medians over repeats) and can write JSON."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from replayrec.cascade import Cascade, load_cascade
from replayrec.cli._common import echo_json, info, resolve_dataset, settings_of
from replayrec.data import DATASETS, WorldConfig, generate_world
from replayrec.evaluation import build_requests, build_split, evaluate
from replayrec.evaluation._protocols import EvalSet, ProtocolSplit
from replayrec.plugins import build_stage, kind_of
from replayrec.registry import StageResolver, artifact_stage_config, resolve_model
from replayrec.stages import Candidate, Rank, Recall, Request, StageContext

__all__ = ["bench"]


@click.group()
def bench() -> None:
    """Benchmarks (print medians over repeated runs; --json / --out for machine-readable results)."""


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


def _emit(result: dict[str, Any], as_json: bool, out: Path | None) -> None:
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
    if as_json:
        echo_json(result)
    else:
        for k, v in result.items():
            click.echo(f"{k:>28}: {v}")


@bench.command("evaluate")
@click.option("--dataset", "name", type=click.Choice(sorted(DATASETS)))
@click.option("--plugin", default="popularity", show_default=True)
@click.option("--repeat", type=int, default=3, show_default=True)
@click.option(
    "--reference-users",
    type=int,
    default=500,
    show_default=True,
    help="users timed with the per-user reference loop (extrapolated to all users)",
)
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path), help="also write the result as JSON here")
@click.pass_context
def bench_evaluate(
    ctx: click.Context,
    name: str | None,
    plugin: str,
    repeat: int,
    reference_users: int,
    as_json: bool,
    out: Path | None,
) -> None:
    """Full-ranking evaluation speed (vectorised) against a per-user argsort loop, same model, same run."""
    settings = settings_of(ctx)
    ds = resolve_dataset(settings, name)
    protocol = DATASETS[ds.name].protocol
    split = build_split(ds, protocol)
    hist = split.history_len
    stage = build_stage("recall", plugin, {}, StageContext(ds.catalog, split.fit, seed=settings.seed))
    if not isinstance(stage, Recall):
        raise click.UsageError(f"{plugin} is not a recall plugin")
    times = []
    for i in range(repeat):
        t0 = time.perf_counter()
        evaluate(stage, split.test, n_items=ds.n_items, history_len=hist, n_boot=0)
        times.append(time.perf_counter() - t0)
        info(f"run {i + 1}/{repeat}: {times[-1]:.2f}s")
    n_ref = min(reference_users, len(split.test))
    ref = [_per_user_reference(stage, split.test, n_ref, hist) for _ in range(repeat)]
    per_user_ref = statistics.median(ref) / n_ref
    med = statistics.median(times)
    _emit(
        {
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
        },
        as_json,
        out,
    )


@bench.command("synthetic")
@click.option("--events", type=int, default=10_000_000, show_default=True)
@click.option("--users", type=int, default=200_000, show_default=True)
@click.option("--items", type=int, default=100_000, show_default=True)
@click.option("--repeat", type=int, default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path))
def bench_synthetic(
    events: int, users: int, items: int, repeat: int, as_json: bool, out: Path | None
) -> None:
    """Time the synthetic world generator."""
    cfg = WorldConfig(n_events=events, n_users=users, n_items=items, n_topics=100)
    times, kept = [], 0
    for i in range(repeat):
        t0 = time.perf_counter()
        w = generate_world(cfg.model_copy(update={"seed": i}))
        times.append(time.perf_counter() - t0)
        kept = len(w.events)
        info(f"run {i + 1}/{repeat}: {times[-1]:.1f}s, {kept:,} events after de-duplication")
    med = statistics.median(times)
    _emit(
        {
            "events_requested": events,
            "events_after_dedup": kept,
            "users": users,
            "items": items,
            "repeats": repeat,
            "median_s": round(med, 2),
            "runs_s": [round(t, 2) for t in times],
            "events_per_s": int(events / med),
        },
        as_json,
        out,
    )


def _latencies(stage: Recall, requests: list[Any], k: int) -> dict[str, float]:
    for r in requests[:20]:  # warm caches
        stage.retrieve(r, k)
    times = []
    for r in requests:
        t0 = time.perf_counter()
        stage.retrieve(r, k)
        times.append((time.perf_counter() - t0) * 1000)
    arr = np.asarray(times)
    return {
        "p50_ms": round(float(np.percentile(arr, 50)), 3),
        "p99_ms": round(float(np.percentile(arr, 99)), 3),
        "mean_ms": round(float(arr.mean()), 3),
    }


@bench.command("recall")
@click.argument("plugin")
@click.option("--dataset", "name", type=click.Choice(sorted(DATASETS)))
@click.option("--model", "model", help="trained model of PLUGIN: artifact directory or PLUGIN@alias")
@click.option("-k", "--k", "k", type=int, default=200, show_default=True)
@click.option("--requests", "n_requests", type=int, default=2000, show_default=True)
@click.option("--baseline", default="itemcf", show_default=True, help="plugin timed in the same run")
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path))
@click.pass_context
def bench_recall(
    ctx: click.Context,
    plugin: str,
    name: str | None,
    model: str | None,
    k: int,
    n_requests: int,
    baseline: str,
    as_json: bool,
    out: Path | None,
) -> None:
    """Per-request retrieve(request, k) latency on one core (BLAS and torch limited to one thread)."""
    from threadpoolctl import threadpool_limits

    settings = settings_of(ctx)
    ds = resolve_dataset(settings, name)
    model_path = resolve_model(model, settings, ds.name, plugin) if model is not None else None
    split = build_split(ds, DATASETS[ds.name].protocol)
    rows = np.random.default_rng(settings.seed).choice(
        len(split.test), min(n_requests, len(split.test)), replace=False
    )
    requests = build_requests(split.test, np.sort(rows).astype(np.int64), split.history_len or 50)
    result: dict[str, Any] = {"dataset": ds.name, "items": ds.n_items, "k": k, "requests": len(requests)}
    with threadpool_limits(limits=1):
        _one_torch_thread()
        for label, name_, path in ((plugin, plugin, model_path), (f"{baseline} (baseline)", baseline, None)):
            opts = artifact_stage_config(path, ds.name, name_) if path is not None else {}
            ctx_ = StageContext(ds.catalog, split.fit, artifact=path, seed=settings.seed)
            stage = build_stage("recall", name_, opts, ctx_)
            if not isinstance(stage, Recall):
                raise click.UsageError(f"{name_} is not a recall plugin")
            result[label] = _latencies(stage, requests, k)
    _emit(result, as_json, out)


def _one_torch_thread() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


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


@bench.command("rank")
@click.argument("plugin")
@click.option("--dataset", "name", type=click.Choice(sorted(DATASETS)))
@click.option("--model", "model", help="trained model of PLUGIN: artifact directory or PLUGIN@alias")
@click.option("--candidates", "n_cands", type=int, default=200, show_default=True)
@click.option("--history", type=int, default=50, show_default=True, help="history items per request")
@click.option("--requests", "n_requests", type=int, default=1000, show_default=True)
@click.option("--repeat", type=int, default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path))
@click.pass_context
def bench_rank(
    ctx: click.Context,
    plugin: str,
    name: str | None,
    model: str | None,
    n_cands: int,
    history: int,
    n_requests: int,
    repeat: int,
    as_json: bool,
    out: Path | None,
) -> None:
    """Per-request score(request, candidates) latency of a rank plugin on one core; the pass-through rank
    (the cascade without a ranker) is timed in the same run."""
    from threadpoolctl import threadpool_limits

    if kind_of(plugin) != "rank":
        raise click.UsageError(f"{plugin} is not a rank plugin")
    settings = settings_of(ctx)
    ds = resolve_dataset(settings, name)
    model_path = resolve_model(model, settings, ds.name, plugin) if model is not None else None
    split = build_split(ds, DATASETS[ds.name].protocol)
    work = _rank_requests(split, n_requests, history, n_cands, ds.n_items, settings.seed)
    hist = [r.history.size for r, _ in work]
    result: dict[str, Any] = {
        "dataset": ds.name,
        "candidates": n_cands,
        "history_median": float(np.median(hist)),
        "requests": len(work),
        "repeats": repeat,
    }
    with threadpool_limits(limits=1):
        _one_torch_thread()
        for label, name_, path in (
            (plugin, plugin, model_path),
            ("passthrough (baseline)", "passthrough", None),
        ):
            opts = artifact_stage_config(path, ds.name, name_) if path is not None else {}
            stage = build_stage("rank", name_, opts, StageContext(ds.catalog, split.fit, path, settings.seed))
            if not isinstance(stage, Rank):
                raise click.UsageError(f"{name_} is not a rank plugin")
            stage.warmup()
            for req, cands in work[:20]:
                stage.score(req, cands)
            runs = []
            for _ in range(repeat):
                times = []
                for req, cands in work:
                    t0 = time.perf_counter()
                    stage.score(req, cands)
                    times.append((time.perf_counter() - t0) * 1e3)
                runs.append(np.asarray(times))
            result[label] = {
                "p50_ms": round(statistics.median(float(np.percentile(a, 50)) for a in runs), 3),
                "p99_ms": round(statistics.median(float(np.percentile(a, 99)) for a in runs), 3),
                "mean_ms": round(statistics.median(float(a.mean()) for a in runs), 3),
            }
    _emit(result, as_json, out)


def _cascade_times(cascade: Cascade, requests: list[Request], repeat: int) -> dict[str, dict[str, float]]:
    """Per-request milliseconds of each stage and of the whole cascade (medians over `repeat` runs)."""
    cfg = cascade.config
    for r in requests[:20]:
        cascade.recommend(r)
    runs: list[dict[str, list[float]]] = []
    for _ in range(repeat):
        t: dict[str, list[float]] = {"recall": [], "rank": [], "rerank+rules": [], "total": []}
        for r in requests:
            t0 = time.perf_counter()
            cands = cascade.recall.retrieve(r, cfg.recall.k)
            t1 = time.perf_counter()
            scored = cascade.rank.score(r, cands)[: cfg.rank.k]
            t2 = time.perf_counter()
            cascade._finish(r, scored, cfg.rerank.k)
            t3 = time.perf_counter()
            for key, v in (
                ("recall", t1 - t0),
                ("rank", t2 - t1),
                ("rerank+rules", t3 - t2),
                ("total", t3 - t0),
            ):
                t[key].append(v * 1e3)
        runs.append(t)
    return {
        key: {
            "p50_ms": round(statistics.median(float(np.percentile(run[key], 50)) for run in runs), 3),
            "p99_ms": round(statistics.median(float(np.percentile(run[key], 99)) for run in runs), 3),
        }
        for key in runs[0]
    }


@bench.command("cascade")
@click.option("--config", "cascade_path", type=click.Path(path_type=Path), required=True)
@click.option("--dataset", "name", type=click.Choice(sorted(DATASETS)))
@click.option(
    "--baseline", type=click.Path(path_type=Path), help="cascade timed in the same run (default: built-in)"
)
@click.option("--requests", "n_requests", type=int, default=1000, show_default=True)
@click.option("--repeat", type=int, default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path))
@click.pass_context
def bench_cascade(
    ctx: click.Context,
    cascade_path: Path,
    name: str | None,
    baseline: Path | None,
    n_requests: int,
    repeat: int,
    as_json: bool,
    out: Path | None,
) -> None:
    """End-to-end offline cascade latency per request (recall → rank → rerank + rules) on one core, with each
    stage's share, beside a baseline cascade measured in the same run."""
    from threadpoolctl import threadpool_limits

    settings = settings_of(ctx)
    ds = resolve_dataset(settings, name)
    split = build_split(ds, DATASETS[ds.name].protocol)
    rows = np.random.default_rng(settings.seed).choice(
        len(split.test), min(n_requests, len(split.test)), False
    )
    requests = build_requests(split.test, np.sort(rows).astype(np.int64), split.history_len or 50)
    resolver = StageResolver(settings, ds.name, StageContext(ds.catalog, split.fit, seed=settings.seed))
    result: dict[str, Any] = {"dataset": ds.name, "requests": len(requests), "repeats": repeat}
    with threadpool_limits(limits=1):
        _one_torch_thread()
        for label, path in (
            (str(cascade_path), cascade_path),
            (f"{baseline or 'built-in'} (baseline)", baseline),
        ):
            cascade = Cascade.build(load_cascade(path), resolver.context_for)
            cascade.warmup()
            cfg = cascade.config
            result[label] = {"counts": f"{cfg.recall.k} -> {cfg.rank.k} -> {cfg.rerank.k}"}
            result[label].update(_cascade_times(cascade, requests, repeat))
    _emit(result, as_json, out)
