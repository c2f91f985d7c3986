"""One request through a loaded cascade, stage by stage, each under its time budget.

A stage that raises or overruns its budget is dropped for that request: the previous stage's order answers
(recall failing → the popularity fallback). The outcome records what every stage did, so the response says
``degraded`` and the metrics count it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from replayrec.cascade import Cascade
from replayrec.data import Catalog
from replayrec.stages import Candidate, Request
from replayrec_serving._settings import FaultSpec

__all__ = ["LoadedArm", "Outcome", "StageRun", "explain", "popularity_candidates", "run_cascade"]

T = TypeVar("T")


@dataclass(eq=False)
class LoadedArm:
    """A cascade ready to serve: its name, the model versions it runs and a key that changes with them."""

    name: str
    cascade: Cascade
    versions: dict[str, str]
    key: str
    loaded_at: float = field(default_factory=time.time)
    vectors: np.ndarray | None = None  # the recall model's item vectors (explanations), when it has them
    features: str | None = None  # the online-store view it reads (None: the live store)

    def describe(self) -> dict[str, Any]:
        return {
            "arm": self.name,
            "versions": dict(self.versions),
            "key": self.key,
            "loaded_at": self.loaded_at,
            "features": self.features or "live",
        }


@dataclass(frozen=True)
class StageRun:
    stage: str
    status: str  # ok | error | timeout | skipped
    ms: float
    detail: str = ""


@dataclass
class Outcome:
    items: list[Candidate]
    stages: list[StageRun]
    recall_order: dict[int, int]
    rank_order: dict[int, int]

    @property
    def degraded(self) -> bool:
        return any(s.status not in ("ok", "skipped") for s in self.stages)


def _with_fault(fault: FaultSpec | None, fn: Callable[[], T], rng: random.Random) -> Callable[[], T]:
    if fault is None or (fault.delay_ms == 0 and fault.error_rate == 0):
        return fn

    def drilled() -> T:
        if fault.delay_ms:
            time.sleep(fault.delay_ms / 1000)
        if fault.error_rate and rng.random() < fault.error_rate:
            raise RuntimeError("injected fault (chaos drill)")
        return fn()

    return drilled


def _timed(
    pool: ThreadPoolExecutor, stage: str, fn: Callable[[], T], budget_ms: float
) -> tuple[T | None, StageRun]:
    t0 = time.perf_counter()
    future = pool.submit(fn)
    try:
        value = future.result(timeout=budget_ms / 1000)
    except FutureTimeout:
        future.cancel()
        ms = (time.perf_counter() - t0) * 1000
        return None, StageRun(stage, "timeout", ms, f"over its {budget_ms:g} ms budget")
    except Exception as exc:  # a stage's failure must not fail the request: the previous order answers
        ms = (time.perf_counter() - t0) * 1000
        return None, StageRun(stage, "error", ms, f"{type(exc).__name__}: {exc}"[:300])
    return value, StageRun(stage, "ok", (time.perf_counter() - t0) * 1000)


def run_cascade(
    arm: LoadedArm,
    request: Request,
    k: int,
    pool: ThreadPoolExecutor,
    budgets: Mapping[str, float],
    fallback: Callable[[Request, int], list[Candidate]],
    faults: Mapping[str, FaultSpec] | None = None,
    rng: random.Random | None = None,
) -> Outcome:
    """recall → rank → rerank (+ rules) for one request; ``fallback`` answers when recall fails."""
    c = arm.cascade
    cfg = c.config
    faults = faults or {}
    rng = rng or random.Random(0)
    runs: list[StageRun] = []

    recall_fn = _with_fault(faults.get("recall"), lambda: c.recall.retrieve(request, cfg.recall.k), rng)
    cands, run = _timed(pool, "recall", recall_fn, budgets.get("recall", 1e9))
    runs.append(run)
    if cands is None:
        cands = fallback(request, max(k, cfg.rank.k))
    recall_order = {x.item: i for i, x in enumerate(cands)}

    def rank() -> list[Candidate]:
        return c.rank.score(request, cands)[: cfg.rank.k]

    if run.status == "ok":
        scored, run = _timed(
            pool, "rank", _with_fault(faults.get("rank"), rank, rng), budgets.get("rank", 1e9)
        )
    else:
        scored, run = None, StageRun("rank", "skipped", 0.0, "recall failed")
    runs.append(run)
    if scored is None:
        scored = list(cands[: cfg.rank.k])
    rank_order = {x.item: i for i, x in enumerate(scored)}

    def rerank() -> list[Candidate]:
        return c.finish(request, scored, k)

    final, run = _timed(
        pool, "rerank", _with_fault(faults.get("rerank"), rerank, rng), budgets.get("rerank", 1e9)
    )
    runs.append(run)
    if final is None:
        final = list(scored[:k])
    return Outcome(final, runs, recall_order, rank_order)


def explain(
    outcome: Outcome, request: Request, catalog: Catalog, vectors: np.ndarray | None
) -> list[dict[str, Any]]:
    """Per item: every stage's score, where recall and rank had put it, and the reasons — the history item
    it is most similar to in the recall model's item space ("because you read …"), and any rule's move."""
    out: list[dict[str, Any]] = []
    hist = np.asarray(request.history, dtype=np.int64)
    unit = None
    if vectors is not None and hist.size:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit = vectors / np.maximum(norms, 1e-12)
    for pos, cand in enumerate(outcome.items):
        reasons: list[str] = []
        if hist.size:
            if unit is not None:
                sims = unit[hist] @ unit[cand.item]
                best = int(hist[int(np.argmax(sims))])
                reasons.append(f"because you read {catalog.title(best)}")
            else:
                reasons.append(f"because you recently read {catalog.title(int(hist[-1]))}")
        else:
            reasons.append("popular right now")
        r_at = outcome.recall_order.get(cand.item)
        k_at = outcome.rank_order.get(cand.item)
        if k_at is not None and k_at != pos:
            reasons.append(f"the reranker moved it from #{k_at + 1} to #{pos + 1}")
        reasons.extend(cand.reasons)
        out.append(
            {
                "stages": {s: round(float(v), 6) for s, v in cand.scores.items()},
                "recall_position": None if r_at is None else r_at + 1,
                "rank_position": None if k_at is None else k_at + 1,
                "reasons": reasons,
            }
        )
    return out


def popularity_candidates(
    items: Sequence[int], scores: Sequence[float], exclude: set[int], k: int
) -> list[Candidate]:
    """The first ``k`` of a popularity list that the user has not consumed."""
    out: list[Candidate] = []
    for i, s in zip(items, scores, strict=True):
        if i in exclude:
            continue
        out.append(Candidate(int(i), float(s), {"popularity": float(s)}))
        if len(out) >= k:
            break
    return out
