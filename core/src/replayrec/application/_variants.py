"""``replayrec bench variants``: the trained cascade's serving variants (numpy FP32 as trained, FP16 tables,
ONNX Runtime FP32, ONNX Runtime INT8) on the same requests, in one run.

Each variant swaps every learned model of the cascade (LightGCN, DIN, RankNet) for its ``replayrec
optimize`` variant. In its own fresh process (so its memory is its own): per-stage latency on one core,
throughput with one process pinned to each of two cores, CPU-seconds per 1,000 requests, resident memory, and
NDCG@10 / HR@10 with bootstrap intervals on the same test users, plus the paired lift over the FP32 cascade.
Then every variant's whole cascade and each learned model alone, in one process, called in turn on the same
requests: the end-to-end ``p50_ms`` / ``p99_ms`` and the models' own latencies, free of the ±10–20%
process-to-process noise of this machine (the fresh-process figures are kept as ``own_process``)."""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import platform
import resource
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from replayrec.application._bench import _cascade_times, _test_requests
from replayrec.application._datasets import open_dataset
from replayrec.application._evaluate import EvalOptions, _cascade_lists, _prepare
from replayrec.application._optimize import artifact_size_mb, optimize_artifact
from replayrec.application._timing import one_core, percentiles
from replayrec.artifacts import artifact_meta, read_upstream
from replayrec.cascade import Cascade, CascadeConfig, recall_layout
from replayrec.config import Settings
from replayrec.errors import ConfigError
from replayrec.evaluation import evaluate, paired_lift
from replayrec.plugins import kind_of
from replayrec.registry import resolve_model
from replayrec.stages import Candidate, Rank, Recall, Request, Rerank, Stage

__all__ = ["VARIANTS", "VariantsRequest", "bench_variants", "cheapest_within", "variants_table"]

log = logging.getLogger("replayrec.application")

#: variant name → the ``replayrec optimize`` method applied to every learned model (``None``: as trained)
VARIANTS: dict[str, str | None] = {
    "numpy-fp32": None,
    "numpy-fp16": "fp16",
    "ort-fp32": "onnx",
    "ort-int8": "int8",
}
_METRICS = ("ndcg@10", "hr@10")
_BASE = "numpy-fp32"


@dataclass(frozen=True)
class VariantsRequest:
    dataset: str | None = None
    #: the trained rank / rerank model whose cascade (its ``upstream.json``) is served
    model: str = "ranknet@latest"
    variants: tuple[str, ...] = tuple(VARIANTS)
    #: timed requests (test users' requests, the same for every variant) and timed passes over them
    requests: int = 1000
    repeat: int = 3
    #: test users the accuracy is measured on (sampled with the seed; the same for every variant)
    eval_users: int = 5000
    n_boot: int = 1000
    #: the candidates each stage keeps, as served (recall → rank → the final list)
    counts: tuple[int, int, int] = (200, 50, 10)
    #: the accuracy bound the recommendation applies: the paired NDCG@10 interval at or above -max_loss
    max_loss: float = 0.01


def _layout(path: Path, plugin: str, counts: tuple[int, int, int]) -> dict[str, Any]:
    """The cascade ``path`` (a rank / rerank model) was trained in, at the served depths."""
    kind = kind_of(plugin)
    if kind == "recall":
        raise ConfigError(f"{plugin} is a recall model: give the rank or rerank model whose cascade to serve")
    up = read_upstream(path, kind)
    recall_k, rank_k, final = counts
    layout: dict[str, Any] = {"recall": recall_layout(up["recall"], recall_k)}
    if kind == "rank":
        layout.update(rank={"type": plugin, "model": str(path), "k": rank_k}, rerank={"type": "passthrough"})
        layout["rerank"]["k"] = final
    else:
        layout.update(
            rank={**up["rank"], "k": rank_k}, rerank={"type": plugin, "model": str(path), "k": final}
        )
    return layout


def _swap(node: Any, swap: Callable[[str], str]) -> Any:
    """``node`` with every ``model`` value replaced by ``swap(value)``."""
    if isinstance(node, Mapping):
        return {k: swap(str(v)) if k == "model" else _swap(v, swap) for k, v in node.items()}
    if isinstance(node, list):
        return [_swap(v, swap) for v in node]
    return node


def _models(node: Any) -> list[str]:
    if isinstance(node, Mapping):
        found = [str(node["model"])] if "model" in node else []
        return found + [m for k, v in node.items() if k != "model" for m in _models(v)]
    if isinstance(node, list):
        return [m for v in node for m in _models(v)]
    return []


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _serve(cascade: Cascade, requests: Sequence[Request], repeat: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``repeat`` passes over ``requests``."""
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        for r in requests:
            cascade.recommend(r)
    return time.perf_counter() - t0, time.process_time() - c0


def _throughput(
    cascade: Cascade, requests: Sequence[Request], repeat: int, cores: Sequence[int]
) -> dict[str, float]:
    """Two copies of the process (fork), each pinned to its own core, serving half the requests each at
    once: requests per second, and CPU-seconds per 1,000 requests."""
    if len(cores) < 2:
        wall, cpu = _serve(cascade, requests, repeat)
        n = len(requests) * repeat
        return {"qps": n / wall, "cpu_s_per_1k": 1000 * cpu / n, "processes": 1}
    read_fd, write_fd = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the second server process
        try:
            os.close(read_fd)
            os.sched_setaffinity(0, {cores[1]})
            os.read(go_r, 1)
            wall, cpu = _serve(cascade, requests[1::2], repeat)
            os.write(write_fd, json.dumps([wall, cpu]).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    os.sched_setaffinity(0, {cores[0]})
    os.write(go_w, b"x")
    wall, cpu = _serve(cascade, requests[0::2], repeat)
    with os.fdopen(read_fd) as f:
        other_wall, other_cpu = json.loads(f.read())
    os.waitpid(pid, 0)
    os.close(go_r)
    os.close(go_w)
    n = len(requests) * repeat
    return {"qps": n / max(wall, other_wall), "cpu_s_per_1k": 1000 * (cpu + other_cpu) / n, "processes": 2}


def _measure(job: dict[str, Any]) -> dict[str, Any]:
    """One variant in a fresh process: build, time on one core, serve on two, evaluate."""
    os.environ["REPLAYREC_ORT_THREADS"] = "1"
    settings = Settings(**job["settings"])
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[0]})
    ds = open_dataset(settings, job["dataset"], prepare=False)
    p = _prepare(settings, ds, EvalOptions(n_boot=job["n_boot"]))
    requests = _test_requests(p.split, job["requests"], settings.seed)
    before = _rss_mb()
    cascade = Cascade.build(CascadeConfig.from_mapping(job["layout"]), p.resolver.context_for)
    cascade.warmup()
    built = _rss_mb()
    with one_core():
        stages = _cascade_times(cascade, requests, job["repeat"])
        served = _throughput(cascade, requests, job["repeat"], cores[:2])
        rows = np.sort(
            np.random.default_rng(settings.seed).choice(
                len(p.ev), min(job["eval_users"], len(p.ev)), replace=False
            )
        )
        res = evaluate(
            _cascade_lists(cascade),
            p.ev.subset(rows.astype(np.int64)),
            n_items=ds.n_items,
            history_len=p.split.history_len,
            ks=(10,),
            n_boot=job["n_boot"],
            seed=settings.seed,
        )
    return {
        "stages": stages,
        **served,
        "rss_mb": round(_rss_mb(), 1),
        "model_rss_mb": round(built - before, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "metrics": {m: float(res.metrics[m]) for m in _METRICS},
        "ci": {m: [float(x) for x in res.ci[m]] for m in _METRICS},
        "per_user": {m: np.asarray(res.per_user[m], dtype=np.float64) for m in _METRICS},
    }


def _learned(layout: Mapping[str, Any]) -> list[tuple[str, dict[str, Any], int]]:
    """(kind, spec, k) of each learned model of a cascade layout: the recall channels with a model (k: their
    quota), the rank and rerank stages with one (k: their depth)."""
    out = []
    for ch in layout["recall"].get("channels", []):
        if "model" in ch:
            spec = {k: v for k, v in ch.items() if k not in ("quota", "weight", "k")}
            out.append(("recall", spec, int(ch.get("quota") or layout["recall"]["k"])))
    for kind in ("rank", "rerank"):
        if "model" in layout[kind]:
            out.append((kind, {k: v for k, v in layout[kind].items() if k != "k"}, int(layout[kind]["k"])))
    return out


def _call(stage: Stage, k: int, r: Request, cands: list[Candidate], ranked: list[Candidate]) -> None:
    """The learned model's own call: a recall channel's retrieve, a ranker's score, a reranker's rerank."""
    if isinstance(stage, Recall):
        stage.retrieve(r, k)
    elif isinstance(stage, Rank):
        stage.score(r, cands)
    elif isinstance(stage, Rerank):
        stage.rerank(r, ranked, k)


Inputs = list[tuple[Request, list[Candidate], list[Candidate]]]


def _recommend(cascade: Cascade, inputs: Inputs, i: int) -> None:
    cascade.recommend(inputs[i][0])


def _model(stage: Stage, k: int, inputs: Inputs, i: int) -> None:
    _call(stage, k, *inputs[i])


def _model_times(job: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Every variant's whole cascade and each of its learned models alone, in one process on one core,
    called in turn on the same requests (the models on the FP32 cascade's candidates): latencies that compare
    without process-to-process noise. ``{variant: {"cascade" | <model>: {p50_ms, p99_ms}}}``."""
    settings = Settings(**job["settings"])
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    ds = open_dataset(settings, job["dataset"], prepare=False)
    p = _prepare(settings, ds, EvalOptions(n_boot=50))
    requests = _test_requests(p.split, job["requests"], settings.seed)
    layouts: dict[str, Any] = job["layouts"]
    cascades = {
        n: Cascade.build(CascadeConfig.from_mapping(lay), p.resolver.context_for)
        for n, lay in layouts.items()
    }
    base = cascades[_BASE]
    cfg = base.config
    inputs: Inputs = []
    for r in requests:
        cands = base.recall.retrieve(r, cfg.recall.k)
        inputs.append((r, cands, base.rank.score(r, cands)[: cfg.rank.k]))
    calls: dict[str, dict[str, Callable[[int], object]]] = {}
    for n, lay in layouts.items():
        cascade = cascades[n]
        calls[n] = {"cascade": partial(_recommend, cascade, inputs)}
        for kind, spec, k in _learned(lay):
            stage = p.resolver.build(kind, spec)[0]
            calls[n][str(spec["type"])] = partial(_model, stage, k, inputs)
    names = list(calls)
    runs: dict[str, dict[str, list[list[float]]]] = {n: {m: [] for m in calls[n]} for n in names}
    with one_core():
        for n in names:
            for i in range(min(20, len(inputs))):
                calls[n]["cascade"](i)
        for _ in range(job["repeat"]):
            run: dict[str, dict[str, list[float]]] = {n: {m: [] for m in calls[n]} for n in names}
            for i in range(len(inputs)):
                for n in names[i % len(names) :] + names[: i % len(names)]:
                    for m, fn in calls[n].items():
                        t0 = time.perf_counter()
                        fn(i)
                        run[n][m].append((time.perf_counter() - t0) * 1e3)
            for n in names:
                for m in calls[n]:
                    runs[n][m].append(run[n][m])
    return {
        n: {m: {k: v for k, v in percentiles(t).items() if k != "mean_ms"} for m, t in ms.items()}
        for n, ms in runs.items()
    }


def _in_process(fn: Callable[[dict[str, Any]], Any], job: dict[str, Any]) -> Any:
    """``fn(job)`` in a fresh (spawned) process."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, (job,))


def _row(name: str, out: dict[str, Any], size_mb: float, sizes: dict[str, float]) -> dict[str, Any]:
    total = out["stages"]["total"]
    row = {
        "p50_ms": total["p50_ms"],
        "p99_ms": total["p99_ms"],
        "qps": round(out["qps"], 1),
        "cpu_s_per_1k": round(out["cpu_s_per_1k"], 3),
        "rss_mb": out["rss_mb"],
        "model_rss_mb": out["model_rss_mb"],
        "size_mb": round(size_mb, 2),
        "sizes_mb": sizes,
        "stages": {k: v for k, v in out["stages"].items() if k != "total"},
        "processes": out["processes"],
    }
    for m in _METRICS:
        row[m] = round(out["metrics"][m], 5)
        row[f"{m}_ci"] = [round(x, 5) for x in out["ci"][m]]
    log.info(
        f"{name}: p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, {row['qps']} QPS, ndcg@10 {row['ndcg@10']}"
    )
    return row


def cheapest_within(variants: Mapping[str, Mapping[str, Any]], max_loss: float) -> str | None:
    """The variant with the fewest CPU-seconds per 1,000 requests among those whose paired NDCG@10 interval
    against FP32 lies at or above ``-max_loss`` (FP32 itself always qualifies)."""
    ok = [
        n
        for n, v in variants.items()
        if n == _BASE or v.get("lift_vs_fp32", {}).get("ndcg@10", [0, -1.0, 0])[1] >= -max_loss
    ]
    return min(ok, key=lambda n: float(variants[n]["cpu_s_per_1k"])) if ok else None


def _skipped() -> dict[str, str]:
    return {
        "gpu-torch": "not measured: no GPU is lent to this machine (the device tool lends one to some tasks "
        "only)",
        "on-device": "not built: an onnxruntime-web bundle would ship the item tables to each client (Books: "
        "38k x 64 floats per table); the ONNX graphs above are what it would run",
    }


def bench_variants(settings: Settings, req: VariantsRequest) -> dict[str, Any]:
    """Every variant of the trained cascade of ``req.model`` on the same requests and users (see the module
    docstring); optimised artifacts are made when missing (``replayrec optimize``) and reused otherwise."""
    unknown = [v for v in req.variants if v not in VARIANTS]
    if unknown:
        raise ConfigError(f"unknown variants {unknown}; expected some of {', '.join(VARIANTS)}")
    if _BASE not in req.variants:
        raise ConfigError(f"the variants are compared with {_BASE}: include it")
    if len(os.sched_getaffinity(0)) < 2:
        log.warning("fewer than two cores: the throughput is one process's")
    ds = open_dataset(settings, req.dataset)
    plugin = str(req.model).split("@")[0] if "@" in str(req.model) else None
    path = resolve_model(req.model, settings, ds.name, plugin)
    plugin = str(artifact_meta(path)["plugin"])
    base = _layout(path, plugin, req.counts)
    job = {
        "settings": json.loads(settings.model_dump_json()),
        "dataset": ds.name,
        "requests": req.requests,
        "repeat": req.repeat,
        "eval_users": req.eval_users,
        "n_boot": req.n_boot,
    }
    rows: dict[str, dict[str, Any]] = {}
    per_user: dict[str, dict[str, np.ndarray]] = {}
    layouts: dict[str, Any] = {}
    for name in req.variants:
        method = VARIANTS[name]
        made = {m: m if method is None else str(optimize_artifact(Path(m), method)[0]) for m in _models(base)}
        layouts[name] = _swap(base, made.__getitem__)
        sizes = {artifact_meta(Path(m))["plugin"]: artifact_size_mb(Path(m)) for m in made.values()}
        log.info(f"variant {name}: measuring in a fresh process")
        out = _in_process(_measure, {**job, "layout": layouts[name]})
        per_user[name] = out.pop("per_user")
        rows[name] = _row(name, out, sum(sizes.values()), sizes)
    log.info("every variant's cascade and models, interleaved in one process")
    for name, timed in _in_process(_model_times, {**job, "layouts": layouts}).items():
        own = {k: rows[name][k] for k in ("p50_ms", "p99_ms")}
        rows[name].update(timed.pop("cascade"), own_process=own, models=timed)
    for name, row in rows.items():
        if name != _BASE:
            row["lift_vs_fp32"] = {
                m: [
                    round(x, 5)
                    for x in paired_lift(
                        per_user[_BASE][m], per_user[name][m], req.n_boot, seed=settings.seed
                    )
                ]
                for m in _METRICS
            }
    return {
        "dataset": ds.name,
        "model": str(path),
        "cascade": " → ".join(f"{s}" for s in _models(base)),
        "counts": "{} -> {} -> {}".format(*req.counts),
        "requests": req.requests,
        "repeats": req.repeat,
        "eval_users": req.eval_users,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": len(os.sched_getaffinity(0))},
        "variants": rows,
        "recommended": cheapest_within(rows, req.max_loss),
        "max_loss": req.max_loss,
        "skipped": _skipped(),
    }


def variants_table(result: Mapping[str, Any]) -> str:
    """The variants as a Markdown table (the README's), with the recommendation under it."""
    head = (
        "| variant | p50 ms | p99 ms | recall / rank / rerank p50 ms | models alone p50 ms | QPS (2 cores) "
        "| CPU-s / 1k req | RSS MB (models) | size MB | NDCG@10 [95% CI] | HR@10 [95% CI] | NDCG@10 vs FP32 |"
    )
    lines = [head, "|" + "---|" * 12]
    for name, v in result["variants"].items():
        st = v["stages"]
        parts = " / ".join(f"{st[k]['p50_ms']:.2f}" for k in ("recall", "rank", "rerank+rules"))
        alone = " / ".join(f"{m} {t['p50_ms']:.2f}" for m, t in v.get("models", {}).items())
        lift = v.get("lift_vs_fp32", {}).get("ndcg@10")
        vs = "—" if lift is None else f"{lift[0]:+.2%} [{lift[1]:+.2%}, {lift[2]:+.2%}]"
        nd, hr = v["ndcg@10_ci"], v["hr@10_ci"]
        lines.append(
            f"| {name} | {v['p50_ms']:.2f} | {v['p99_ms']:.2f} | {parts} | {alone} | {v['qps']:.0f} | "
            f"{v['cpu_s_per_1k']:.2f} | {v['rss_mb']:.0f} ({v['model_rss_mb']:.0f}) | {v['size_mb']:.1f} | "
            f"{v['ndcg@10']:.4f} [{nd[0]:.4f}, {nd[1]:.4f}] | "
            f"{v['hr@10']:.4f} [{hr[0]:.4f}, {hr[1]:.4f}] | {vs} |"
        )
    lines.append("")
    lines.append(
        f"cheapest within -{result['max_loss']:.0%} NDCG@10 of FP32 (paired 95% interval): "
        f"**{result['recommended']}**"
    )
    lines += [f"not measured: {k}: {why}" for k, why in result.get("skipped", {}).items()]
    return "\n".join(lines)
